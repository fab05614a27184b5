"""``TCWindows`` and ``split_storms``: window contents, storm splits, bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mdcli.config import load_config
from mdcli.data.synth_tc import SynthTCConfig, write_synth_tc
from mdcli.data.tc_dataset import TCWindows, split_storms
from mdcli.errors import InputError

N_STORMS, FRAMES, SIZE = 20, 12, 32


@pytest.fixture(scope="module")
def tc_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tcw") / "tc.h5"
    cfg = load_config(SynthTCConfig, None, [f"n_storms={N_STORMS}", f"frames={FRAMES}",
                                            f"size={SIZE}", "seed=5"])
    return write_synth_tc(cfg, path)


def test_items_have_the_documented_shapes_and_dtypes(tc_file):
    data = TCWindows(tc_file, "train", cond_frames=4, pred_frames=5, era5_steps=3)
    cond, era5, target, labels = data[0]
    assert cond.shape == (4, SIZE, SIZE) and era5.shape == (4, 3, SIZE, SIZE)
    assert target.shape == (5, SIZE, SIZE)
    assert cond.dtype == era5.dtype == target.dtype == torch.float32
    assert labels["storm"].dtype == labels["time"].dtype == labels["category"].dtype == torch.int64
    assert labels["intensity"].dtype == torch.float32
    assert data.variables == ["sst", "msl", "z", "r"] and data.image_size == SIZE
    assert data.causal_links["targets"][0] == "intensity_change"


def test_windows_match_the_file_slice_by_slice(tc_file):
    k, p, e = 3, 2, 4
    data = TCWindows(tc_file, "val", cond_frames=k, pred_frames=p, era5_steps=e)
    with h5py.File(tc_file) as h5:
        ir = h5["ir"][()]
        era5 = {v: h5[f"era5/{v}"][()] for v in ("sst", "msl", "z", "r")}
        storm_ids = h5["meta/storm_id"][()]
        intensity, cat = h5["meta/intensity"][()], h5["meta/category"][()]
    seen = set()
    for i in range(len(data)):
        cond, fields, target, labels = data[i]
        row = int(np.flatnonzero(storm_ids == int(labels["storm"]))[0])
        first = int(labels["time"])  # the first target frame
        seen.add((row, first))
        assert torch.equal(cond, torch.from_numpy(ir[row, first - k:first]))
        assert torch.equal(target, torch.from_numpy(ir[row, first:first + p]))
        for j, v in enumerate(("sst", "msl", "z", "r")):
            assert torch.equal(fields[j], torch.from_numpy(era5[v][row, first - e:first]))
        assert float(labels["intensity"]) == pytest.approx(float(intensity[row, first]))
        assert int(labels["category"]) == cat[row, first]
    # every storm of the split, every first-target time from max(K, E) to T - P
    per_storm = FRAMES - p - max(k, e) + 1
    assert len(data) == len(seen) == len(split_storms(storm_ids)["val"]) * per_storm
    assert {t for _, t in seen} == set(range(max(k, e), FRAMES - p + 1))


def test_splits_hold_disjoint_storms_that_cover_the_file(tc_file):
    storms = {split: {int(data[i][3]["storm"]) for i in range(len(data))}
              for split in ("train", "val", "test")
              for data in [TCWindows(tc_file, split, cond_frames=2, pred_frames=1, era5_steps=2)]}
    assert not storms["train"] & storms["val"] and not storms["train"] & storms["test"]
    assert not storms["val"] & storms["test"]
    assert storms["train"] | storms["val"] | storms["test"] == set(range(N_STORMS))
    assert (len(storms["train"]), len(storms["val"]), len(storms["test"])) == (16, 2, 2)


def test_split_storms_is_seeded_and_checks_fractions():
    ids = np.arange(100, 150)
    a, b, c = split_storms(ids, (0.6, 0.2, 0.2), 1), split_storms(ids, (0.6, 0.2, 0.2), 1), \
        split_storms(ids, (0.6, 0.2, 0.2), 2)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["test"], c["test"])
    assert [len(a[s]) for s in ("train", "val", "test")] == [30, 10, 10]
    assert sorted(np.concatenate(list(a.values())).tolist()) == ids.tolist()
    small = split_storms(np.arange(5), (0.8, 0.1, 0.1), 0)  # val/test still get one storm
    assert [len(small[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    for bad in ((0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)):
        with pytest.raises(InputError, match="fractions"):
            split_storms(ids, bad, 0)
    with pytest.raises(InputError, match="too few"):
        split_storms(np.arange(2), (0.4, 0.3, 0.3), 0)


def test_default_collate_batches_windows(tc_file):
    data = TCWindows(tc_file, "train", cond_frames=4, pred_frames=5, era5_steps=3)
    cond, era5, target, labels = next(iter(DataLoader(data, batch_size=6, shuffle=False)))
    assert cond.shape == (6, 4, SIZE, SIZE) and era5.shape == (6, 4, 3, SIZE, SIZE)
    assert target.shape == (6, 5, SIZE, SIZE) and labels["intensity"].shape == (6,)


def test_bad_files_and_windows_are_input_errors(tc_file, tmp_path):
    with pytest.raises(InputError, match="not found"):
        TCWindows(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(InputError, match="not an mdcli-tc file"):
        TCWindows(other)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="corrupt"):
        TCWindows(junk)
    with pytest.raises(InputError, match="at least 13 frames"):
        TCWindows(tc_file, cond_frames=8, pred_frames=5)
    with pytest.raises(InputError, match="split"):
        TCWindows(tc_file, "validation")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cond_frames"):
        TCWindows(tc_file, cond_frames=0)
    with pytest.raises(InputError, match="no storms"):
        TCWindows(tc_file, "test", split_fractions=(0.9, 0.1, 0.0))


def test_mismatched_shapes_are_input_errors(tc_file, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(tc_file.read_bytes())
    with h5py.File(broken, "r+") as h5:
        del h5["meta/intensity"]
        h5["meta/intensity"] = np.zeros((N_STORMS, FRAMES - 1), np.float32)
    with pytest.raises(InputError, match="/meta/intensity has shape"):
        TCWindows(broken)
