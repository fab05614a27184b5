"""What is evaluated: a network and the ERA5 it is given.

The teacher is evaluated with its true ERA5 and, as controls, with another storm's ERA5 at the
same time (:mod:`mdcli.forecast.heldout`) and with zeroed ERA5; an ERA5-free network of the
teacher's architecture is always given zeros; a student gets no ERA5 at all.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mdcli.forecast.heldout import HeldOut


class Forecaster(NamedTuple):
    """``net`` called with ERA5 ``era5`` (``true``, ``other_storm``, ``zero``) or, when
    ``era5`` is None, without any (a satellite-only student)."""

    net: nn.Module
    era5: str | None = "true"

    def __call__(self, x_noisy: torch.Tensor, level: torch.Tensor, held: HeldOut, rows: slice,
                 era5: torch.Tensor | None = None) -> torch.Tensor:
        """The network output for the windows ``rows``; ``era5`` overrides the variant."""
        cond = held.cond[rows].to(x_noisy.device)
        if self.era5 is None:
            return self.net(x_noisy, level, cond)
        fields = held.era5_variant(self.era5, rows) if era5 is None else era5
        return self.net(x_noisy, level, cond, fields.to(x_noisy.device))


def teacher_forecasters(teacher: nn.Module, controls: bool,
                        era5_free: nn.Module | None = None) -> dict[str, Forecaster]:
    """``teacher`` and, with ``controls``, ``teacher_other_storm_era5``, ``teacher_zero_era5``;
    ``teacher_no_era5`` when an ERA5-free network is given."""
    out = {"teacher": Forecaster(teacher, "true")}
    if controls:
        out["teacher_other_storm_era5"] = Forecaster(teacher, "other_storm")
        out["teacher_zero_era5"] = Forecaster(teacher, "zero")
    if era5_free is not None:
        out["teacher_no_era5"] = Forecaster(era5_free, "zero")
    return out
