from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_path, atomic_write_text
from mdcli.storage.cache import cache_key, load_or_build, read_cache, write_cache
from mdcli.storage.checkpoint import FORMAT, load_checkpoint, save_checkpoint


def test_checkpoint_round_trip_keeps_tensors_and_primitives(tmp_path):
    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3,
               "model_config": {"widths": [4, 2], "act": "relu"}, "metrics": {"loss": 0.5}}
    path = save_checkpoint(tmp_path / "a.pt", payload)
    record = load_checkpoint(path)
    assert record["format"] == FORMAT and record["epoch"] == 3
    assert torch.equal(record["state_dict"]["w"], payload["state_dict"]["w"])
    assert record["model_config"] == payload["model_config"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left behind


def test_missing_checkpoint_is_input_error(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found: .*none.pt"):
        load_checkpoint(tmp_path / "none.pt")


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", {"w": torch.randn(100, 100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_garbage_file_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "a.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_foreign_checkpoint_without_tag_is_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an mdcli checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_newer_format_version_is_refused(tmp_path):
    torch.save({"format": FORMAT, "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(InputError, match="newer than this mdcli"):
        load_checkpoint(tmp_path / "new.pt")


class _Exploit:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_crafted_to_run_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "format_version": 1, "x": _Exploit(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # The same file *would* run code under a plain pickle load: the test is meaningful.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_kill_during_atomic_write_leaves_old_file_intact(tmp_path):
    target = tmp_path / "ckpt.pt"
    save_checkpoint(target, {"epoch": 1, "w": torch.ones(3)})
    script = textwrap.dedent(f"""
        import time, torch
        from mdcli.storage.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"partial" * 1000)
                f.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    record = load_checkpoint(target)
    assert record["epoch"] == 1 and torch.equal(record["w"], torch.ones(3))


def test_cache_is_built_once_then_reused(tmp_path):
    path = tmp_path / "feat.h5"
    calls = []

    def build():
        calls.append(1)
        return {"features": np.arange(12, dtype=np.float32).reshape(3, 4),
                "labels": np.array([0, 1, 2])}

    prov = {"checkpoint": "abc", "layer": "fc1", "n": 3, "seed": 0}
    first = load_or_build(path, prov, build)
    second = load_or_build(path, prov, build)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["features"], second["features"])
    with h5py.File(path) as handle:
        assert handle.attrs["layer"] == "fc1" and handle.attrs["key"] == cache_key(prov)


def test_cache_with_other_key_is_rebuilt(tmp_path):
    path = tmp_path / "feat.h5"
    write_cache(path, {"x": np.zeros(3)}, {"layer": "a"})
    assert read_cache(path, cache_key({"layer": "b"})) is None
    out = load_or_build(path, {"layer": "b"}, lambda: {"x": np.ones(3)})
    np.testing.assert_array_equal(out["x"], np.ones(3))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    path = tmp_path / "feat.h5"
    prov = {"layer": "a"}
    write_cache(path, {"x": np.arange(4096, dtype=np.float64)}, prov)
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    else:
        with h5py.File(path, "r+") as handle:
            handle["x"][5] = -1.0  # contents no longer match the stored checksum
    assert read_cache(path, cache_key(prov)) is None
    out = load_or_build(path, prov, lambda: {"x": np.full(2, 7.0)})
    np.testing.assert_array_equal(out["x"], [7.0, 7.0])
    assert read_cache(path, cache_key(prov)) is not None


def _cache_worker(path: str, counter: str) -> None:
    def build():
        with open(counter, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return {"x": np.arange(1000, dtype=np.float32)}

    load_or_build(path, {"layer": "shared"}, build)


def test_two_processes_writing_one_cache_build_it_once(tmp_path):
    path, counter = str(tmp_path / "feat.h5"), str(tmp_path / "calls.txt")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_cache_worker, args=(path, counter)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    assert len(Path(counter).read_text().split()) == 1
    np.testing.assert_array_equal(
        read_cache(path, cache_key({"layer": "shared"}))["x"], np.arange(1000))


def test_reading_a_cache_never_unpickles(tmp_path, monkeypatch):
    # Caches are plain HDF5: reading one works with every unpickling entry point disabled.
    write_cache(tmp_path / "c.h5", {"x": np.arange(3.0)}, {"layer": "a"})

    def refuse(*args, **kwargs):
        raise AssertionError("a cache read unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    key = cache_key({"layer": "a"})
    assert np.array_equal(read_cache(tmp_path / "c.h5", key)["x"], np.arange(3.0))
