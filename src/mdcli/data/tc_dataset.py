"""Windows of an ``mdcli-tc`` HDF5 file as a torch Dataset, split by storm.

A window ends its ``cond_frames`` (K) IR condition frames at time L; its targets are the
``pred_frames`` (P) IR frames L+1..L+P and its ERA5 fields the ``era5_steps`` (E) times
L-E+1..L, so the ERA5 fields never see the target frames. Storms are split into
train / val / test with a seeded permutation: no storm is in two splits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from mdcli.data.layout import FORMAT, FORMAT_VERSION, VARIABLES
from mdcli.errors import InputError

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]


def split_storms(storm_ids: np.ndarray, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Assign unique ``storm_ids`` to train/val/test by a permutation seeded by ``seed``.

    Returns sorted id arrays per split. Val and test get ``round(fraction * n)`` storms (at
    least one each when their fraction is positive and there are enough storms), train the rest.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"split fractions: got {fractions}, expected three non-negative "
                         f"numbers (train, val, test) summing to 1")
    ids = np.unique(np.asarray(storm_ids))
    order = np.random.default_rng(seed).permutation(ids)
    counts = []
    for f in fractions[1:]:
        k = int(round(f * len(ids)))
        counts.append(max(k, 1) if f > 0 and len(ids) >= 3 else k)
    n_val, n_test = counts
    if n_val + n_test >= len(ids) and fractions[0] > 0:
        raise InputError(f"split fractions {fractions}: {len(ids)} storms are too few to leave "
                         f"any for training")
    return {"val": np.sort(order[:n_val]), "test": np.sort(order[n_val:n_val + n_test]),
            "train": np.sort(order[n_val + n_test:])}


def read_tc_file(path: str | Path, split: tuple[str, tuple, int] | None = None) -> dict:
    """The arrays of an ``mdcli-tc`` file: ``ir [S,T,H,W]``, ``era5 [S,4,T,H,W]``, ``meta``
    (``storm_id``, ``intensity``, ``category``, ``center``) and the root attributes.

    ``split = (name, fractions, seed)`` reads only the storms of that split (see
    :func:`split_storms`); ``None`` reads all.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cyclone file not found: {path} (write one with `mdcli data synth-tc`)")
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            if attrs.get("format") != FORMAT:
                raise InputError(f"{path}: not an {FORMAT} file (root attribute format="
                                 f"{attrs.get('format')!r}, expected {FORMAT!r})")
            if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
                raise InputError(f"{path}: {FORMAT} format version {attrs['format_version']} "
                                 f"is newer than this mdcli reads ({FORMAT_VERSION})")
            missing = [k for k in ("ir", *(f"era5/{v}" for v in VARIABLES), "meta/storm_id",
                                   "meta/intensity", "meta/category", "meta/center")
                       if k not in h5]
            if missing:
                raise InputError(f"{path}: missing dataset /{missing[0]} of the {FORMAT} layout")
            _check_shapes(path, h5)
            ids = h5["meta/storm_id"][()]
            rows = np.arange(len(ids))
            if split is not None:
                name, fractions, seed = split
                rows = np.flatnonzero(np.isin(ids, split_storms(ids, fractions, seed)[name]))
                if len(rows) == 0:
                    raise InputError(f"{path}: split {name!r} has no storms (fractions "
                                     f"{tuple(fractions)}, {len(ids)} storms)")
            data = {"ir": h5["ir"][rows].astype(np.float32, copy=False),
                    "era5": np.stack([h5[f"era5/{v}"][rows] for v in VARIABLES], axis=1
                                     ).astype(np.float32, copy=False),
                    "meta": {k: h5[f"meta/{k}"][rows]
                             for k in ("storm_id", "intensity", "category", "center")},
                    "attrs": attrs}
    except OSError as exc:
        raise InputError(f"{path}: corrupt or truncated HDF5 file ({exc})") from None
    return data


def _check_shapes(path: Path, h5: h5py.File) -> None:
    shape = h5["ir"].shape
    if len(shape) != 4:
        raise InputError(f"{path}: /ir has shape {shape}, expected [storms, times, H, W]")
    s, t = shape[:2]
    expected = {**{f"era5/{v}": shape for v in VARIABLES}, "meta/storm_id": (s,),
                "meta/intensity": (s, t), "meta/category": (s, t), "meta/center": (s, t, 2)}
    for key, want in expected.items():
        if h5[key].shape != want:
            raise InputError(f"{path}: /{key} has shape {h5[key].shape}, expected {want} "
                             f"to match /ir {shape}")


class TCWindows(Dataset):
    """``(cond [K,H,W], era5 [4,E,H,W], target [P,H,W], labels)`` windows of one split.

    ``labels``: ``storm`` (int64 id), ``time`` (int64 index of the first target frame),
    ``intensity`` (float32 m/s) and ``category`` (int64) at the first target frame.
    """

    def __init__(self, path: str | Path, split: Split = "train", cond_frames: int = 4,
                 pred_frames: int = 5, era5_steps: int = 3,
                 split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 split_seed: int = 0) -> None:
        if split not in SPLITS:
            raise InputError(f"split: got {split!r}, expected one of {', '.join(SPLITS)}")
        for name, value in (("cond_frames", cond_frames), ("pred_frames", pred_frames),
                            ("era5_steps", era5_steps)):
            if int(value) < 1:
                raise InputError(f"{name}: got {value}, expected an integer >= 1")
        data = read_tc_file(path, (split, tuple(split_fractions), split_seed))
        self.path, self.split = Path(path), split
        self.cond_frames, self.pred_frames, self.era5_steps = cond_frames, pred_frames, era5_steps
        self.attrs = data["attrs"]
        frames = data["ir"].shape[1]
        first = max(cond_frames, era5_steps) - 1
        last = frames - 1 - pred_frames
        if last < first:
            raise InputError(
                f"{path}: windows of {max(cond_frames, era5_steps)} condition/ERA5 + "
                f"{pred_frames} target frames need at least "
                f"{max(cond_frames, era5_steps) + pred_frames} frames, the file has {frames}")
        meta = data["meta"]
        self.ir, self.era5 = data["ir"], data["era5"]
        self.storm_id = meta["storm_id"].astype(np.int64)
        self.intensity = meta["intensity"].astype(np.float32)
        self.category = meta["category"].astype(np.int64)
        self.center = meta["center"].astype(np.float32)
        times = np.arange(first, last + 1)
        # windows[i] = (row in this split, time L of the last condition frame)
        self.windows = np.stack(np.meshgrid(np.arange(len(self.ir)), times, indexing="ij"),
                                axis=-1).reshape(-1, 2)

    @property
    def variables(self) -> list[str]:
        return list(VARIABLES)

    @property
    def image_size(self) -> int:
        return int(self.ir.shape[-1])

    @property
    def causal_links(self) -> dict:
        """The generator's true links (``causal_links`` attribute), or ``{}`` for real data."""
        return json.loads(self.attrs.get("causal_links", "{}"))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        row, last = self.windows[index]
        k, p, e = self.cond_frames, self.pred_frames, self.era5_steps
        cond = torch.from_numpy(self.ir[row, last - k + 1:last + 1].copy())
        era5 = torch.from_numpy(self.era5[row, :, last - e + 1:last + 1].copy())
        target = torch.from_numpy(self.ir[row, last + 1:last + 1 + p].copy())
        labels = {"storm": torch.tensor(self.storm_id[row], dtype=torch.int64),
                  "time": torch.tensor(last + 1, dtype=torch.int64),
                  "intensity": torch.tensor(self.intensity[row, last + 1], dtype=torch.float32),
                  "category": torch.tensor(self.category[row, last + 1], dtype=torch.int64)}
        return cond, era5, target, labels
