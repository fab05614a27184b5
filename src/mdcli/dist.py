"""torch.distributed set-up from torchrun's or Slurm's environment variables.

Under ``torchrun`` the variables RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
are set. Under ``srun`` without torchrun, SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID are
mapped onto them (MASTER_ADDR defaults to the first host of SLURM_NODELIST's simple form).
The backend is gloo on CPU and nccl on CUDA. A single process needs no set-up at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mdcli.devices import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun or Slurm variables; (0, 1, 0) alone."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return 0, 1, 0


def _slurm_master() -> str:
    nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST") or ""
    match = re.match(r"([^,\[]+)(?:\[(\d+))?", nodes)
    if not match:
        return "127.0.0.1"
    return match.group(1) + (match.group(2) or "")


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group when launched with several processes; pick this rank's device."""
    rank, world_size, local_rank = env_world()
    resolved = resolve_device(device)
    if resolved.type == "cuda" and world_size > 1:
        resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", _slurm_master())
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("WORLD_SIZE", str(world_size))
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, resolved)


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files."""
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (returns a new tensor; the input is unchanged)."""
    if not dist.is_initialized():
        return tensor.clone()
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def broadcast_object(obj: object, src: int = 0) -> object:
    """Send a picklable Python object from ``src`` to every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
