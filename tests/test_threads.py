from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from mdcli import threads
from mdcli.errors import InputError
from mdcli.threads import (
    CpuSnapshot,
    apply_thread_policy,
    choose_threads,
    granted_cpus,
    load_between,
    other_load,
)

ENV = ("MDCLI_THREADS", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
       "LOCAL_WORLD_SIZE")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """No thread variables; the torch thread count and the environment restored after."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


def machine(monkeypatch, cpus: int, allowed: int | None = None) -> None:
    """Pretend the machine has ``cpus`` CPUs, ``allowed`` of them in this process's mask."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed or cpus)))


@pytest.mark.parametrize(("env", "override", "expected"), [
    ({}, None, 6),                                              # affinity mask
    ({"OMP_NUM_THREADS": "3"}, None, 3),
    ({"OMP_NUM_THREADS": "3,1"}, None, 3),                      # nested OpenMP list
    ({"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "5"}, None, 5),
    ({"SLURM_CPUS_PER_TASK": "5", "MDCLI_THREADS": "4"}, None, 4),
    ({"SLURM_CPUS_PER_TASK": "5", "MDCLI_THREADS": "4"}, 7, 7),  # --threads wins
    ({"LOCAL_WORLD_SIZE": "4"}, None, 1),                       # 6 // 4
    ({"LOCAL_WORLD_SIZE": "2", "SLURM_CPUS_PER_TASK": "10"}, None, 5),
    ({"LOCAL_WORLD_SIZE": "8"}, None, 1),                       # at least one
    ({"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "3"}, None, 3),  # per process already
    ({"LOCAL_WORLD_SIZE": "2", "MDCLI_THREADS": "3"}, None, 3),
    ({"OMP_NUM_THREADS": "lots"}, None, 6),                     # ignored, with a warning
])
def test_granted_cpus_precedence(clean, env, override, expected):
    machine(clean, 8, allowed=6)
    for name, value in env.items():
        clean.setenv(name, value)
    assert granted_cpus(override) == expected


def test_granted_cpus_without_affinity_uses_cpu_count(clean):
    clean.setattr(os, "cpu_count", lambda: 3)
    clean.delattr(os, "sched_getaffinity")
    assert granted_cpus() == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_bad_mdcli_threads_is_an_input_error(clean, bad):
    clean.setenv("MDCLI_THREADS", bad)
    with pytest.raises(InputError, match="MDCLI_THREADS"):
        granted_cpus()


@pytest.mark.parametrize(("cpus", "workers", "load", "expected"), [
    (2, 1, 0.0, 2), (2, 1, 0.4, 2), (2, 1, 1.0, 1), (2, 1, 1.6, 1), (2, 1, 5.0, 1),
    (8, 2, 1.0, 4),   # 7 free cores, a share of 4
    (8, 2, 6.0, 2),   # 2 free cores
])
def test_choice_takes_busy_cores_off_the_affinity_grant(clean, cpus, workers, load, expected):
    machine(clean, cpus)
    clean.setenv("LOCAL_WORLD_SIZE", str(workers))
    choice = choose_threads(load=load)
    assert (choice.threads, choice.granted, choice.source) == (expected, cpus // workers,
                                                               "affinity")
    assert choice.describe().startswith(f"using {expected} thread")


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "2"}, {"SLURM_CPUS_PER_TASK": "2"},
                                 {"MDCLI_THREADS": "2"}])
def test_explicit_or_scheduler_grants_ignore_load(clean, env):
    machine(clean, 2)
    for name, value in env.items():
        clean.setenv(name, value)
    assert choose_threads(load=2.0).threads == 2
    assert choose_threads(1, load=0.0).threads == 1


def test_load_between_is_busy_cores_less_our_own():
    before = CpuSnapshot(cpus=2, busy=1000, total=4000, own_s=10.0)
    after = CpuSnapshot(cpus=2, busy=1150, total=4200, own_s=10.5)  # 75 % of 2 cores busy
    assert load_between(before, after, wall_s=1.0) == pytest.approx(2 * 150 / 200 - 0.5)
    assert load_between(before, before, wall_s=1.0) is None


def test_cpu_jiffies_sums_only_the_allowed_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\n"
                    "cpu0 10 1 5 100 2 1 1 3 0 0\n"
                    "cpu1 20 0 10 50 0 0 0 0 0 0\n"
                    "cpu2 1000 0 0 0 0 0 0 0 0 0\nintr 5 6\n")
    busy = (10 + 1 + 5 + 1 + 1 + 3) + (20 + 10)
    assert threads._cpu_jiffies({0, 1}, str(stat)) == (busy, busy + 100 + 2 + 50)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")
def test_other_load_sees_a_busy_process():
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        load = other_load(window=0.3)
    finally:
        burner.kill()
        burner.wait()
    assert load is not None and load >= 0.7


def test_apply_sets_torch_and_exports_the_count(clean):
    machine(clean, 2)
    for count in (1, 2):
        assert apply_thread_policy(count) == count
        assert torch.get_num_threads() == count
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == str(count)
    # a later call keeps the exported count instead of counting this process as load
    assert apply_thread_policy(load=2.0) == 2


FRESH = textwrap.dedent("""
    import sys
    from mdcli.threads import apply_thread_policy
    apply_thread_policy(1)
    assert "torch" not in sys.modules
    import torch
    print(torch.get_num_threads())
    apply_thread_policy(1)  # torch imported now: sets the inter-op pool too
    print(torch.get_num_interop_threads())
    apply_thread_policy(3)  # torch refuses a second inter-op setting; intra-op still changes
    print(torch.get_num_threads(), torch.get_num_interop_threads())
""")


def test_count_reaches_torch_imported_later_and_interop_is_set_once():
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    out = subprocess.run([sys.executable, "-c", FRESH], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "3", "1"]


@pytest.mark.parametrize(("args", "env", "name"), [
    (["--threads", "0"], {}, "--threads"),
    (["--threads", "-1"], {}, "--threads"),
    (["--threads", "many"], {}, "--threads"),
    ([], {"MDCLI_THREADS": "0"}, "MDCLI_THREADS"),
])
def test_bad_thread_count_exits_2_with_one_line(clean, run_cli, args, env, name):
    for key, value in env.items():
        clean.setenv(key, value)
    result = run_cli(*args, "data", "info", "no-such-file.h5")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"mdcli: error: {name}: got {(args[1:] or [env.get('MDCLI_THREADS')])[0]!r}, "
        f"expected a positive whole number of threads"]


RUNNER = textwrap.dedent("""
    import sys, torch
    from dataclasses import dataclass
    from mdcli.cli.app import app, main
    from mdcli.runs import start_run

    @dataclass
    class Cfg:
        seed: int = 0
        device: str = "cpu"

    @app.command("probe")
    def probe(work_dir: str) -> None:
        print("threads", torch.get_num_threads())
        with start_run("probe", Cfg(), work_dir=work_dir, name="r"):
            pass

    main(sys.argv[1:])
""")


@pytest.mark.parametrize(("args", "env"), [(["--threads", "1"], {}),
                                           ([], {"MDCLI_THREADS": "1"})])
def test_threads_apply_before_the_command_and_reach_meta_json(tmp_path, args, env):
    base = {k: v for k, v in os.environ.items() if k not in ENV}
    out = subprocess.run([sys.executable, "-c", RUNNER, *args, "probe", str(tmp_path)],
                         env={**base, "OMP_NUM_THREADS": "2", **env}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "threads 1" in out.stdout
    assert json.loads((tmp_path / "probe" / "r" / "meta.json").read_text())["threads"] == 1
