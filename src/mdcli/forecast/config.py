"""The ``eval:`` and ``sampling:`` config sections of ``train`` (tc_teacher) and ``distill``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mdcli.config import param


@dataclass
class EvalConfig:
    noise_levels: int = param(10, ge=1, help="levels spread over the schedule")
    top_levels: int = param(2, ge=1, help="the highest of those levels whose clean-estimate "
                                          "MSE is the headline forecast skill")
    pool: int = param(4, ge=1, help="storm-scale pooling (pixels) of the pooled MSE")
    batch_size: int = param(32, ge=1)
    max_samples: int | None = param(None, ge=2, help="held-out windows, spread evenly over "
                                                     "the split (null: all)")
    seed: int = param(1234, help="seed of the evaluation noise draws; never a training seed")
    controls: bool = param(True, help="also evaluate the teacher with another storm's and "
                                      "with zeroed ERA5")
    baseline: bool = param(True, help="distill: also train an undistilled student")
    era5_free: bool = param(True, help="train: also train an ERA5-free network of the "
                                       "teacher's architecture with the same budget")
    response: bool = param(True, help="train: the teacher's response to swapping one ERA5 "
                                      "variable for another storm's (sampled)")
    members: int = param(4, ge=1, help="sampled forecasts per window (seeds eval.seed, "
                                       "eval.seed + 1, ...): sample figures are member means, "
                                       "track_error_ensemble_px the error of the mean centre")
    response_draws: int = param(4, ge=1, help="noise draws (seeds eval.seed, eval.seed + 1, "
                                              "...) the response is averaged over")
    response_steps: Literal["all", "last"] = param(
        "all", help="ERA5 steps the response swap replaces: all (the other storm's field "
                    "history) or the last only (what the generator's fork changes: the step "
                    "that drives t -> t+1; the earlier steps drove frames the model sees)")
    val_windows: int | None = param(32, ge=2, help="validation windows per epoch, spread "
                                                   "over the split (null: all)")


@dataclass
class SamplingConfig:
    method: Literal["ddim", "ddpm", "langevin", "none"] = "ddim"
    steps: int = param(20, ge=1, help="DDIM steps")
    eta: float = param(0.0, ge=0)
    num_samples: int = param(4, ge=1, help="windows shown in samples.png")
    n_steps_each: int = param(5, ge=1, help="Langevin steps per sigma")
    step_lr: float = param(3e-6, gt=0, help="Langevin step size")
    clip: float | None = param(1.0, gt=0, help="clip predicted clean frames (DDPM/DDIM)")
