"""Samplers: ancestral DDPM, DDIM with few steps, annealed Langevin dynamics (NCSN).

Each takes ``net(x, noise_level) -> output`` (conditioning already bound), the shape to draw
and a ``torch.Generator``, and returns the final sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mdcli.diffusion.objectives import DDPMObjective, NCSNObjective

Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _randn(shape, generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(device)


def _full(value: torch.Tensor, n: int, device) -> torch.Tensor:
    return torch.full((n,), float(value), device=device)


def _predict(net: Net, objective: DDPMObjective, x: torch.Tensor, t: int,
             clip: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's ``(x0, eps)`` estimates at ``x`` (step ``t``), whatever it predicts;
    with ``clip``, x0 is clipped to ``[-clip, clip]`` and eps re-derived from it."""
    idx = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    out = net(x, _full(objective.levels[t], x.shape[0], x.device))
    x0 = objective.denoise(out, x, idx)
    if clip is None:
        return x0, objective.eps_from(out, x, idx)
    x0 = x0.clamp(-clip, clip)
    a, s = objective.coefficients(idx, x)
    return x0, (x - a * x0) / s


@torch.no_grad()
def ddpm_ancestral(net: Net, objective: DDPMObjective, shape: tuple[int, ...],
                   generator: torch.Generator, device="cpu", clip: float | None = None
                   ) -> torch.Tensor:
    """Ho et al.'s ancestral sampler over every step, ``sigma_t^2 = beta_t``: the mean of
    ``q(x_{t-1} | x_t, x0)`` at the network's (optionally clipped) x0 estimate."""
    betas, abar = objective.betas, objective.alphas_bar
    x = _randn(shape, generator, device)
    for t in range(len(betas) - 1, -1, -1):
        x0, _ = _predict(net, objective, x, t, clip)
        abar_prev = float(abar[t - 1]) if t > 0 else 1.0
        c_x0 = abar_prev ** 0.5 * float(betas[t]) / float(1 - abar[t])
        c_xt = float((1 - betas[t]).sqrt()) * (1 - abar_prev) / float(1 - abar[t])
        x = (c_x0 * x0 + c_xt * x).float()
        if t > 0:
            x = x + float(betas[t].sqrt()) * _randn(shape, generator, device)
    return x


@torch.no_grad()
def ddim(net: Net, objective: DDPMObjective, shape: tuple[int, ...], generator: torch.Generator,
         steps: int = 50, eta: float = 0.0, device="cpu", clip: float | None = None
         ) -> torch.Tensor:
    """Song et al.'s DDIM over ``steps`` evenly spaced steps (``eta=0``: deterministic)."""
    abar = objective.alphas_bar
    n = len(abar)
    times = torch.linspace(n - 1, 0, min(steps, n)).round().long().unique().flip(0).tolist()
    x = _randn(shape, generator, device)
    for i, t in enumerate(times):
        x0, eps = _predict(net, objective, x, t, clip)
        a_t = abar[t]
        a_prev = abar[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0, dtype=abar.dtype)
        s = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = float(a_prev.sqrt()) * x0 + float((1 - a_prev - s**2).clamp(min=0).sqrt()) * eps
        x = x.float()
        if float(s) > 0:
            x = x + float(s) * _randn(shape, generator, device)
    return x


@torch.no_grad()
def annealed_langevin(net: Net, objective: NCSNObjective, shape: tuple[int, ...],
                      generator: torch.Generator, n_steps_each: int = 5, step_lr: float = 3e-6,
                      denoise: bool = True, device="cpu", init: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """Song & Ermon's annealed Langevin dynamics from the largest sigma down.

    At each sigma, ``n_steps_each`` updates ``x += a s(x) + sqrt(2 a) z`` with
    ``a = step_lr (sigma / sigma_min)^2``; ``denoise`` adds a final ``sigma_min^2 s(x)``.
    """
    sigmas = objective.sigmas.float()
    x = init.to(device) if init is not None else \
        float(sigmas[0]) * _randn(shape, generator, device)
    for sigma in sigmas:
        level = _full(sigma, shape[0], device)
        step = step_lr * float((sigma / sigmas[-1]) ** 2)
        for _ in range(n_steps_each):
            score = objective.score(net(x, level), level)
            x = x + step * score + (2 * step) ** 0.5 * _randn(shape, generator, device)
    if denoise:
        level = _full(sigmas[-1], shape[0], device)
        x = x + float(sigmas[-1]) ** 2 * objective.score(net(x, level), level)
    return x


def check_sampler(method: str, objective_name: str) -> None:
    """DDPM/DDIM need the DDPM objective, Langevin the NCSN one."""
    from mdcli.errors import InputError

    wanted = {"ddpm": "ddpm", "ddim": "ddpm", "langevin": "ncsn"}.get(method)
    if wanted is not None and wanted != objective_name:
        raise InputError(f"config key 'sampling.method': {method!r} does not fit the "
                         f"{objective_name!r} objective (use "
                         f"{'ddim or ddpm' if objective_name == 'ddpm' else 'langevin'})")


def _net_calls(objective, method: str, steps: int, n_steps_each: int) -> int:
    if method == "ddpm":
        return len(objective.betas)
    if method == "ddim":
        return min(steps, len(objective.alphas_bar))
    return len(objective.sigmas) * n_steps_each + 1


def sample(net: Net, objective, shape: tuple[int, ...], method: str, generator: torch.Generator,
           device="cpu", steps: int = 50, eta: float = 0.0, clip: float | None = 1.0,
           n_steps_each: int = 5, step_lr: float = 3e-6, description: str = "sampling"
           ) -> torch.Tensor:
    """Draw with the sampler ``method`` (``ddpm``, ``ddim`` or ``langevin``), showing progress
    (one step per network call) as ``description``."""
    from mdcli.progress import progress

    check_sampler(method, objective.name)
    with progress(_net_calls(objective, method, steps, n_steps_each), description) as bar:
        def counted(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
            bar.advance(1)
            return net(x, level)

        if method == "ddpm":
            return ddpm_ancestral(counted, objective, shape, generator, device, clip)
        if method == "ddim":
            return ddim(counted, objective, shape, generator, steps, eta, device, clip)
        return annealed_langevin(counted, objective, shape, generator, n_steps_each, step_lr,
                                 device=device)
