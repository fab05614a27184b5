"""The held-out windows of a forecast evaluation, in memory, with their controls.

The control "another storm's ERA5" gives window (storm s, time L) the ERA5 of window
(storm p(s), time L), where p is a fixed derangement of the split's storms (each storm's
successor in id order, the last one's is the first): every window gets a *different* storm's
fields at the *same* time index, never its own storm's at another time. On synthetic data,
where the generator can split a field into the environment and the storm's own part,
``era5_swap`` holds the partner's environment with the window's own storm (the intervention
of the response estimator, :mod:`mdcli.forecast.response`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mdcli.data.synth_tc import environment_swapped_era5, synth_config
from mdcli.errors import InputError
from mdcli.logs import log


@dataclass
class HeldOut:
    """``N`` windows: ``cond [N,K,H,W]``, ``era5 [N,4,E,H,W]``, ``era5_other`` (another
    storm's at the same time), ``era5_swap`` (synthetic data only: the other storm's
    environment with the window's own storm part), ``target [N,P,H,W]``, true
    ``center [N,P,2]`` (row, col pixels; None for real data), ``storm``/``partner``/``time``
    ``[N]`` (``time``: index of the first target frame) and the pixel size ``pixel_km``."""

    cond: torch.Tensor
    era5: torch.Tensor
    era5_other: torch.Tensor | None
    era5_swap: torch.Tensor | None
    target: torch.Tensor
    center: torch.Tensor | None
    storm: torch.Tensor
    partner: torch.Tensor | None
    time: torch.Tensor
    pixel_km: float | None

    def __len__(self) -> int:
        return int(self.cond.shape[0])

    def batches(self, size: int) -> list[slice]:
        return [slice(i, min(i + size, len(self))) for i in range(0, len(self), size)]

    def era5_variant(self, which: str, rows: slice) -> torch.Tensor:
        """ERA5 of ``rows`` as the model ``which`` sees it: ``true``, ``other_storm``, ``zero``."""
        if which == "true":
            return self.era5[rows]
        if which == "other_storm" and self.era5_other is not None:
            return self.era5_other[rows]
        if which == "zero":
            return torch.zeros_like(self.era5[rows])
        raise ValueError(f"unknown ERA5 variant {which!r}")


def spread_indices(n: int, count: int | None) -> np.ndarray:
    """``count`` indices spread evenly over ``range(n)`` (all when ``count`` is None)."""
    if count is None or count >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, count).round().astype(np.int64))


def storm_derangement(storms: np.ndarray) -> dict[int, int]:
    """Each storm id's successor in sorted order (the last one's is the first)."""
    ids = np.unique(storms)
    if len(ids) < 2:
        raise InputError(f"held-out split: {len(ids)} storm(s), the other-storm ERA5 control "
                         f"needs at least 2 (use more storms or turn eval.controls off)")
    return {int(a): int(b) for a, b in zip(ids, np.roll(ids, -1), strict=True)}


def environment_swap(attrs, storm: np.ndarray, partner: np.ndarray, times: np.ndarray,
                     stored: np.ndarray) -> np.ndarray | None:
    """The partner's environment with each window's own storm part (``[N, 4, E, H, W]``), or
    None (with a log line) when this mdcli's generator cannot re-run the file: its config is
    not one this version reads, or the re-run does not give the ``stored`` fields back."""
    try:
        return environment_swapped_era5(synth_config(attrs), storm, partner, times, stored)
    except InputError as exc:
        log.info(f"{exc}: the response swaps whole fields")
        return None


def load_heldout(data, max_samples: int | None = None, controls: bool = True) -> HeldOut:
    """The windows of a :class:`~mdcli.data.tc_dataset.TCWindows` split (``max_samples``
    spread evenly over it) and, with ``controls``, another storm's ERA5 at the same time."""
    pick = spread_indices(len(data), max_samples)
    rows, last = data.windows[pick, 0], data.windows[pick, 1]
    storm = data.storm_id[rows]
    other_rows = None
    if controls:
        successor = storm_derangement(data.storm_id[data.windows[:, 0]])
        row_of = {int(s): int(r) for r, s in enumerate(data.storm_id)}
        other_rows = np.array([row_of[successor[int(s)]] for s in storm], dtype=np.int64)
    k, p, e = data.cond_frames, data.pred_frames, data.era5_steps
    past = last[:, None] + np.arange(-k + 1, 1)
    ahead = last[:, None] + np.arange(1, p + 1)
    fields = last[:, None] + np.arange(-e + 1, 1)

    def era5_of(r: np.ndarray) -> np.ndarray:  # [N, E, 4, H, W] -> [N, 4, E, H, W]
        return data.era5[r[:, None], :, fields].transpose(0, 2, 1, 3, 4)

    attrs = data.attrs
    synthetic = "causal_links" in attrs
    swap = None
    if other_rows is not None and synthetic and "config" in attrs:
        swap = environment_swap(attrs, storm, data.storm_id[other_rows], fields,
                                era5_of(rows))
    pixel_km = (float(attrs["domain_km"]) / float(attrs["size"])
                if "domain_km" in attrs and "size" in attrs else None)

    def stack(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    return HeldOut(cond=stack(data.ir[rows[:, None], past]), era5=stack(era5_of(rows)),
                   era5_other=None if other_rows is None else stack(era5_of(other_rows)),
                   era5_swap=None if swap is None else stack(swap),
                   target=stack(data.ir[rows[:, None], ahead]),
                   center=stack(data.center[rows[:, None], ahead]) if synthetic else None,
                   storm=torch.from_numpy(storm.astype(np.int64)),
                   partner=None if other_rows is None
                   else torch.from_numpy(data.storm_id[other_rows].astype(np.int64)),
                   time=torch.from_numpy(last.astype(np.int64) + 1), pixel_km=pixel_km)
