"""The two denoising objectives: DDPM (eps, v or x0 prediction) and NCSN score matching.

A network is always called as ``net(x_noisy, noise_level, ...)`` with a continuous noise
level per sample: DDPM passes the noise-to-signal ratio ``sqrt((1 - abar_t) / abar_t)`` of step
``t`` (``x_t / sqrt(abar_t) = x + level * eps``, so the level spreads over 0.01..157 and
the last steps stay distinguishable), NCSN passes ``sigma``. A DDPM network predicts, per
``DiffusionConfig.prediction``, the noise ``eps``, the velocity ``v = a eps - s x`` or the
clean frame ``x`` (``x_t = a x + s eps``, ``a = sqrt(abar_t)``, ``s = sqrt(1 - abar_t)``;
Salimans & Ho 2022); an NCSN network's output divided by ``sigma`` is the score (NCSN++'s
``scale_by_sigma``). Samplers convert any output with ``denoise`` and ``eps_from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from mdcli.config import from_dict, param
from mdcli.diffusion.schedules import ddpm_betas, ncsn_sigmas
from mdcli.losses.dsm import annealed_dsm_loss, prediction_loss

Prediction = Literal["eps", "v", "x0"]


@dataclass
class DiffusionConfig:
    objective: Literal["ddpm", "ncsn"] = "ddpm"
    prediction: Prediction = param(
        "v", help="what a DDPM network predicts: eps (noise), v (a eps - s x) or x0 (clean "
                  "frame); ignored by NCSN")
    num_steps: int = param(1000, ge=2, help="DDPM steps")
    beta_start: float = param(1e-4, gt=0, lt=1)
    beta_end: float = param(0.02, gt=0, lt=1)
    sigma_begin: float = param(50.0, gt=0, help="NCSN largest sigma")
    sigma_end: float = param(0.01, gt=0, help="NCSN smallest sigma")
    num_sigmas: int = param(232, ge=2)
    anneal_power: float = param(2.0, ge=0)


def diffusion_config(record: dict[str, Any]) -> DiffusionConfig:
    """The ``diffusion`` section stored in a checkpoint as a validated config.

    Checkpoints written before ``prediction`` existed predicted the noise, so a missing
    ``prediction`` reads as ``"eps"`` (not the current default ``"v"``).
    """
    return from_dict(DiffusionConfig, {"prediction": "eps", **record}, "diffusion")


class Objective:
    """A noise schedule plus its loss. ``levels[i]`` is the network's noise level of index i."""

    name: str
    levels: torch.Tensor

    @property
    def num_levels(self) -> int:
        return int(self.levels.shape[0])

    def draw(self, x: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random level indices ``[B]`` and standard normal noise like ``x``."""
        idx = torch.randint(0, self.num_levels, (x.shape[0],), generator=generator)
        noise = torch.randn(x.shape, generator=generator)
        return idx.to(x.device), noise.to(device=x.device, dtype=x.dtype)

    def noise_level(self, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.levels.to(like.device)[idx].to(like.dtype)

    def eval_indices(self, count: int) -> torch.Tensor:
        """The middle level of each of ``count`` equal bins of the schedule (low to high
        noise): their mean loss is a midpoint estimate of the training objective's mean
        over uniformly drawn levels."""
        count = min(count, self.num_levels)
        mids = (torch.arange(count, dtype=torch.float64) + 0.5) * self.num_levels / count - 0.5
        return mids.round().long().clamp(0, self.num_levels - 1).unique()

    def perturb(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_noisy, noise_level)`` of clean ``x`` ``[B, ...]`` at level indices ``[B]``."""
        raise NotImplementedError

    def loss(self, output: torch.Tensor, x: torch.Tensor, x_noisy: torch.Tensor,
             noise: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The training loss ``[B]`` of the network ``output`` at ``x_noisy``."""
        raise NotImplementedError

    def denoise(self, output: torch.Tensor, x_noisy: torch.Tensor, idx: torch.Tensor
                ) -> torch.Tensor:
        """The clean-sample estimate ``[B, ...]`` implied by ``output``."""
        raise NotImplementedError

    def eps_from(self, output: torch.Tensor, x_noisy: torch.Tensor, idx: torch.Tensor
                 ) -> torch.Tensor:
        """The standard-normal noise estimate ``[B, ...]`` implied by ``output``."""
        raise NotImplementedError


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(device=like.device, dtype=like.dtype).view((-1,) + (1,) * (like.ndim - 1))


class DDPMObjective(Objective):
    """``x_t = a x + s eps`` with ``a = sqrt(abar_t)``, ``s = sqrt(1 - abar_t)``; the loss is
    the MSE between the output and its target: ``eps``, ``v = a eps - s x`` or ``x``."""

    name = "ddpm"

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 prediction: Prediction = "v"):
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction {prediction!r}: expected 'eps', 'v' or 'x0'")
        self.prediction = prediction
        self.betas = ddpm_betas(num_steps, beta_start, beta_end)
        self.alphas_bar = torch.cumprod(1.0 - self.betas, dim=0)
        self.levels = torch.sqrt((1.0 - self.alphas_bar) / self.alphas_bar).float()

    def coefficients(self, idx: torch.Tensor, like: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, s)`` of level indices ``idx`` ``[B]``, shaped to broadcast against ``like``."""
        abar = self.alphas_bar.to(like.device)[idx]
        return _col(abar.sqrt(), like), _col((1 - abar).sqrt(), like)

    def perturb(self, x, idx, noise):
        a, s = self.coefficients(idx, x)
        return a * x + s * noise, self.noise_level(idx, x)

    def target(self, x: torch.Tensor, noise: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """What the network should output for clean ``x`` perturbed by ``noise`` at ``idx``."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x
        a, s = self.coefficients(idx, x)
        return a * noise - s * x

    def loss(self, output, x, x_noisy, noise, idx):
        return prediction_loss(output, self.target(x, noise, idx))

    def denoise(self, output, x_noisy, idx):
        if self.prediction == "x0":
            return output
        a, s = self.coefficients(idx, x_noisy)
        if self.prediction == "eps":
            return (x_noisy - s * output) / a
        return a * x_noisy - s * output

    def eps_from(self, output, x_noisy, idx):
        if self.prediction == "eps":
            return output
        a, s = self.coefficients(idx, x_noisy)
        if self.prediction == "x0":
            return (x_noisy - a * output) / s
        return s * x_noisy + a * output


class NCSNObjective(Objective):
    """``x_noisy = x + sigma z``; score = output / sigma; annealed DSM loss."""

    name = "ncsn"

    def __init__(self, sigma_begin: float = 50.0, sigma_end: float = 0.01, num_sigmas: int = 232,
                 anneal_power: float = 2.0):
        self.sigmas = ncsn_sigmas(sigma_begin, sigma_end, num_sigmas)
        self.levels = self.sigmas.flip(0).float()  # index 0 = least noise, as for DDPM
        self.anneal_power = anneal_power

    def perturb(self, x, idx, noise):
        sigma = self.noise_level(idx, x)
        return x + _col(sigma, x) * noise, sigma

    def score(self, output: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return output / _col(sigma, output)

    def loss(self, output, x, x_noisy, noise, idx):
        sigma = self.noise_level(idx, x)
        return annealed_dsm_loss(self.score(output, sigma), x_noisy, x, sigma, self.anneal_power)

    def denoise(self, output, x_noisy, idx):
        sigma = self.noise_level(idx, x_noisy)
        return x_noisy + _col(sigma, x_noisy) ** 2 * self.score(output, sigma)

    def eps_from(self, output, x_noisy, idx):
        return -output  # z = -sigma * score


def build_objective(cfg: DiffusionConfig) -> Objective:
    if cfg.objective == "ddpm":
        return DDPMObjective(cfg.num_steps, cfg.beta_start, cfg.beta_end, cfg.prediction)
    return NCSNObjective(cfg.sigma_begin, cfg.sigma_end, cfg.num_sigmas, cfg.anneal_power)
