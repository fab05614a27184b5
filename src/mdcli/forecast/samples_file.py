"""``eval_samples.h5``: the held-out windows and every model's sampled frames, so anyone can
recompute the forecast skill with their own code.

Layout: ``/cond [N,K,H,W]``, ``/target [N,P,H,W]``, ``/center [N,P,2]`` (true centre, row and
col in pixels; synthetic data only), ``/storm_id [N]``, ``/time [N]`` (index of the first
target frame), ``/samples/<model> [N,P,H,W]`` (the first ensemble member, drawn with seed
``seed``) and, with more than one member, ``/ensemble/<model> [M,N,P,H,W]`` (member m drawn
with ``seed + m``), all normalised IR as the models see it (cold = high); attributes
``sampler``, ``steps``, ``eta``, ``seed``, ``members``, ``pixel_km``, ``fingerprints``
(JSON ``{model: sha256}`` of everything that fixes a model's frames, :func:`fingerprint`) and
``frame_digests`` (JSON ``{model: sha256}`` of its ``[M, N, P, H, W]`` float32 frames).

A later evaluation of the same model on the same windows with the same sampler, seeds,
batches, device, threads, code, torch build and CPU (``distill`` re-scores the teacher and
its controls) reads its frames back instead of sampling them again
(:func:`reusable_ensembles`): they are the same bits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

import h5py
import numpy as np
import torch

from mdcli.config import to_dict
from mdcli.forecast.config import SamplingConfig
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import HeldOut
from mdcli.logs import log
from mdcli.storage.atomic import atomic_path
from mdcli.storage.cache import cache_key


def _update(h: hashlib._Hash, tensor: torch.Tensor) -> None:
    h.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


@functools.cache
def _code_and_machine() -> str:
    """sha256 of mdcli's source, the torch build and the CPU: a change of any of them may
    change sampled frames at the rounding level."""
    h = hashlib.sha256(f"{torch.__version__}|{platform.machine()}|{_cpu_model()}".encode())
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def evaluation_digest(held: HeldOut, objective, sampling: SamplingConfig, seeds: list[int],
                      batch_size: int, device: torch.device) -> str:
    """sha256 of what every model's sampled frames of ``held`` share: the windows, the
    objective, the sampler, the seeds, the batches, the device, torch's thread count, and
    mdcli's source, the torch build and the CPU."""
    scalars = {k: v for k, v in vars(objective).items() if not isinstance(v, torch.Tensor)}
    h = hashlib.sha256(cache_key({
        "code": _code_and_machine(), "objective": type(objective).__name__, **scalars,
        "sampling": to_dict(sampling), "seeds": seeds, "batch_size": batch_size,
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda" else ""),
        "threads": torch.get_num_threads(), "autocast": torch.is_autocast_enabled(),
    }).encode())
    for value in vars(objective).values():
        if isinstance(value, torch.Tensor):
            _update(h, value)
    for value in (held.cond, held.era5, held.era5_other, held.era5_swap, held.target):
        h.update(b"-" if value is None else b"+")
        if value is not None:
            _update(h, value)
    return h.hexdigest()


def fingerprint(model: Forecaster, evaluation: str) -> str:
    """sha256 of what fixes ``model``'s sampled frames: its class, configuration and weights,
    the ERA5 it is given and the :func:`evaluation_digest` ``evaluation``."""
    net = model.net
    h = hashlib.sha256(cache_key({
        "evaluation": evaluation, "net": f"{type(net).__module__}.{type(net).__qualname__}",
        "net_config": repr(getattr(net, "cfg", None)), "era5": model.era5}).encode())
    for name, value in sorted(net.state_dict().items()):
        h.update(name.encode())
        _update(h, value)
    return h.hexdigest()


def _digest(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames, dtype=np.float32).tobytes()).hexdigest()


def reusable_ensembles(path: Path, fingerprints: dict[str, str], shape: tuple[int, ...]
                       ) -> dict[str, torch.Tensor]:
    """``{model: [M, N, P, H, W]}`` read from the ``eval_samples.h5`` at ``path`` for every
    model whose recorded fingerprint equals ``fingerprints[model]`` and whose frames have
    ``shape`` and their recorded digest (none when the file is missing, unreadable, damaged
    or from an older mdcli: those models are sampled afresh)."""
    found = {}
    try:
        with h5py.File(path, "r") as h5:
            stored = json.loads(h5.attrs["fingerprints"])
            digests = json.loads(h5.attrs["frame_digests"])
            members = shape[0]
            for name, value in fingerprints.items():
                if stored.get(name) != value:
                    continue
                frames = h5[f"ensemble/{name}" if members > 1 else f"samples/{name}"][()]
                frames = frames if members > 1 else frames[None]
                if (frames.shape == shape and frames.dtype == np.float32
                        and digests.get(name) == _digest(frames)):
                    found[name] = torch.from_numpy(frames)
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
        log.info(f"not reusing sampled frames from {path}: {exc}")
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
        digests = {}
        for name, members in ensemble.items():
            frames = members.float().numpy()
            h5[f"samples/{name}"] = frames[0]
            if len(members) > 1:
                h5[f"ensemble/{name}"] = frames
            digests[name] = _digest(frames)
        h5.attrs.update({"sampler": sampling.method, "steps": sampling.steps,
                         "eta": sampling.eta, "seed": seeds[0], "members": len(seeds),
                         "pixel_km": held.pixel_km if held.pixel_km is not None else -1.0,
                         "normalisation": "clip((240 K - Tb) / 60 K, -1, 1): cold = high",
                         "fingerprints": json.dumps(fingerprints or {}),
                         "frame_digests": json.dumps(digests)})
    return path
