"""``eval_samples.h5``: the held-out windows and every model's sampled frames, so anyone can
recompute the forecast skill with their own code.

Layout: ``/cond [N,K,H,W]``, ``/target [N,P,H,W]``, ``/center [N,P,2]`` (true centre, row and
col in pixels; synthetic data only), ``/storm_id [N]``, ``/time [N]`` (index of the first
target frame), ``/samples/<model> [N,P,H,W]`` (the first ensemble member, drawn with seed
``seed``) and, with more than one member, ``/ensemble/<model> [M,N,P,H,W]`` (member m drawn
with ``seed + m``), all normalised IR as the models see it (cold = high); attributes
``sampler``, ``steps``, ``eta``, ``seed``, ``members``, ``pixel_km``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import torch

from mdcli.forecast.config import SamplingConfig
from mdcli.forecast.heldout import HeldOut
from mdcli.storage.atomic import atomic_path


def write_eval_samples(path: Path, held: HeldOut, ensemble: dict[str, torch.Tensor],
                       sampling: SamplingConfig, seeds: list[int]) -> Path:
    """Write ``path`` atomically from ``{model: [M, N, P, H, W]}`` drawn with ``seeds``
    (layout in the module docstring)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5["cond"], h5["target"] = held.cond.numpy(), held.target.numpy()
        if held.center is not None:
            h5["center"] = held.center.numpy()
        h5["storm_id"], h5["time"] = held.storm.numpy(), held.time.numpy()
        for name, members in ensemble.items():
            h5[f"samples/{name}"] = members[0].float().numpy()
            if len(members) > 1:
                h5[f"ensemble/{name}"] = members.float().numpy()
        h5.attrs.update({"sampler": sampling.method, "steps": sampling.steps,
                         "eta": sampling.eta, "seed": seeds[0], "members": len(seeds),
                         "pixel_km": held.pixel_km if held.pixel_km is not None else -1.0,
                         "normalisation": "clip((240 K - Tb) / 60 K, -1, 1): cold = high"})
    return path
