"""The cyclone data of the diffusion trainers: the ``data:`` config section, generating the
file on first use, opening a split, and the deterministic batching shared by one process and
DDP (the epoch order comes from ``seed + epoch``; each rank keeps rows ``rank::world_size`` of
every global batch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from mdcli.config import param
from mdcli.dist import DistContext, barrier
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.models.teacher_student import ModelConfig
from mdcli.seeding import seed_everything
from mdcli.training.loop import flush_denormals


@dataclass
class TCDataConfig:
    path: str = param("data/tc_tiny.h5", help="HDF5 cyclone file")
    generate: str | None = param(
        "data/tc_tiny", help="synth-tc config that generates 'path' when it is missing (null: "
                             "a missing file is an error)")
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    num_workers: int = param(0, ge=0)




def ensure_data(cfg: TCDataConfig, main: bool = True) -> Path:
    """The cyclone file, generated from ``cfg.generate`` on first use when missing."""
    path = Path(cfg.path)
    if path.is_file():
        return path
    if cfg.generate is None:
        raise InputError(f"config key 'data.path': {path} not found (set data.generate to a "
                         f"synth-tc config to generate it)")
    if main:
        from mdcli.data.synth_tc import generate_from_config

        log.info("generating %s from %s", path, cfg.generate)
        generate_from_config(cfg.generate, path)
    return path


def open_split(cfg: TCDataConfig, model: ModelConfig, split: str) -> Dataset:
    """A ``TCWindows`` split whose frame size must match ``model.image_size``."""
    from mdcli.data.tc_dataset import TCWindows

    data = TCWindows(cfg.path, split, cond_frames=model.cond_frames,
                     pred_frames=model.pred_frames, era5_steps=model.era5_steps)
    cond, era5, _, _ = data[0]
    if tuple(cond.shape[-2:]) != (model.image_size, model.image_size):
        raise InputError(f"config key 'model.image_size': {model.image_size}, but {cfg.path} "
                         f"holds {tuple(cond.shape[-2:])} frames")
    return data


def _collate(items: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cond, era5, target = (torch.stack([torch.as_tensor(it[i]) for it in items]).float()
                          for i in range(3))
    return cond, era5, target


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int,
                  limit: int | None = None) -> list[list[int]]:
    """Global batches of epoch ``epoch``: a permutation seeded by ``seed + epoch``, last
    incomplete batch dropped."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    count = n // batch_size if limit is None else min(n // batch_size, limit)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def rank_loader(data: Dataset, batches: list[list[int]], ctx: DistContext, workers: int
                ) -> DataLoader:
    """This rank's rows ``[rank::world_size]`` of every global batch."""
    mine = [b[ctx.rank::ctx.world_size] for b in batches]
    return DataLoader(data, batch_sampler=mine, collate_fn=_collate, num_workers=workers)


def eval_loader(data: Dataset, batch_size: int, indices: list[int] | None = None,
                workers: int = 0) -> DataLoader:
    """Batches of ``batch_size`` over ``indices`` (default: every window), in order."""
    idx = list(range(len(data))) if indices is None else list(indices)
    return DataLoader(data, batch_sampler=[idx[i:i + batch_size]
                                           for i in range(0, len(idx), batch_size)],
                      collate_fn=_collate, num_workers=workers)


def prepare_data(cfg: Any, model: ModelConfig, ctx: DistContext) -> tuple[Dataset, Dataset]:
    """Seed, generate the data file on first use (main rank, the others wait) and return the
    training and validation splits; ``cfg`` has ``seed`` and ``data``."""
    seed_everything(cfg.seed)
    flush_denormals()
    ensure_data(cfg.data, ctx.is_main)
    barrier()
    return (open_split(cfg.data, model, cfg.data.train_split),
            open_split(cfg.data, model, cfg.data.val_split))


