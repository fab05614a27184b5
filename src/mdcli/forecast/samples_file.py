"""``eval_samples.h5``: the held-out windows and every model's sampled frames, so anyone can
recompute the forecast skill with their own code.

Layout: ``/cond [N,K,H,W]``, ``/target [N,P,H,W]``, ``/center [N,P,2]`` (true centre, row and
col in pixels; synthetic data only), ``/storm_id [N]``, ``/time [N]`` (index of the first
target frame), ``/samples/<model> [N,P,H,W]`` (the first ensemble member, drawn with seed
``seed``) and, with more than one member, ``/ensemble/<model> [M,N,P,H,W]`` (member m drawn
with ``seed + m``), all normalised IR as the models see it (cold = high); attributes
``sampler``, ``steps``, ``eta``, ``seed``, ``members``, ``pixel_km`` and ``fingerprints``
(JSON ``{model: sha256}`` of everything that fixes a model's frames, :func:`fingerprint`).

A later evaluation of the same model on the same windows with the same sampler, seeds,
batches, device and threads (``distill`` re-scores the teacher and its controls) reads its
frames back instead of sampling them again (:func:`reusable_ensembles`): they are the same
bits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import torch

from mdcli.config import to_dict
from mdcli.forecast.config import SamplingConfig
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import HeldOut
from mdcli.logs import log
from mdcli.storage.atomic import atomic_path


def _update(h: hashlib._Hash, tensor: torch.Tensor) -> None:
    h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def fingerprint(model: Forecaster, held: HeldOut, objective, sampling: SamplingConfig,
                seeds: list[int], batch_size: int, device: torch.device) -> str:
    """sha256 of what fixes ``model``'s sampled frames of ``held``: its weights and the ERA5
    it is given, the windows, the objective, the sampler, the seeds, the batches, the device
    and torch's thread count."""
    h = hashlib.sha256()
    scalars = {k: v for k, v in vars(objective).items() if not isinstance(v, torch.Tensor)}
    h.update(json.dumps({"era5": model.era5, "objective": type(objective).__name__, **scalars,
                         "sampling": to_dict(sampling), "seeds": seeds,
                         "batch_size": batch_size, "device": str(device),
                         "threads": torch.get_num_threads()}, sort_keys=True,
                        default=str).encode())
    for value in vars(objective).values():
        if isinstance(value, torch.Tensor):
            _update(h, value)
    for name, value in sorted(model.net.state_dict().items()):
        h.update(name.encode())
        _update(h, value)
    for value in (held.cond, held.era5, held.era5_other, held.era5_swap, held.target):
        if value is not None:
            _update(h, value)
    return h.hexdigest()


def reusable_ensembles(path: Path, fingerprints: dict[str, str], members: int
                       ) -> dict[str, torch.Tensor]:
    """``{model: [M, N, P, H, W]}`` read from the ``eval_samples.h5`` at ``path`` for every
    model whose recorded fingerprint equals ``fingerprints[model]`` (none when the file is
    missing, unreadable or from an older mdcli)."""
    try:
        with h5py.File(path, "r") as h5:
            stored = json.loads(h5.attrs.get("fingerprints", "{}"))
            if int(h5.attrs.get("members", 0)) != members:
                return {}
            found = {}
            for name, value in fingerprints.items():
                if stored.get(name) == value:
                    key = f"ensemble/{name}" if members > 1 else f"samples/{name}"
                    frames = torch.from_numpy(h5[key][()])
                    found[name] = frames if members > 1 else frames[None]
    except (OSError, KeyError, ValueError) as exc:
        log.info(f"not reusing samples from {path}: {exc}")
        return {}
    if found:
        log.info(f"reusing the sampled frames of {', '.join(found)} from {path}")
    return found


def write_eval_samples(path: Path, held: HeldOut, ensemble: dict[str, torch.Tensor],
                       sampling: SamplingConfig, seeds: list[int],
                       fingerprints: dict[str, str] | None = None) -> Path:
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
                         "normalisation": "clip((240 K - Tb) / 60 K, -1, 1): cold = high",
                         "fingerprints": json.dumps(fingerprints or {})})
    return path
