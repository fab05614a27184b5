"""Training loop for classifiers (MLP / ConvNet), usable from the CLI or a notebook.

>>> from mdcli.training.classifier import ClassifierConfig, train_classifier
>>> model, history = train_classifier(ClassifierConfig())          # digits, in memory
>>> history[-1]["val_acc"]

With a :class:`~mdcli.runs.Run` it writes ``checkpoints/epoch_0000.pt`` (the initial weights),
``epoch_0001.pt`` ... and ``last.pt`` (plus optimizer state, for ``resume=True``), and one
``metrics.jsonl`` record per epoch (epoch 0 included). Each epoch visits the training samples
in a permutation seeded by ``(seed, epoch)``; under DDP every rank takes an interleaved shard
of each global batch and the loss is scaled so the averaged gradient equals one process's.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mdcli.config import param, to_dict
from mdcli.data.arrays import ArraySplit, DataConfig, load_split
from mdcli.devices import resolve_device
from mdcli.dist import DistContext, all_reduce_mean
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.losses.classification import LossName, per_sample_loss
from mdcli.models.classifier import CHECKPOINT_KIND, ModelConfig, build_classifier, with_data_shape
from mdcli.progress import progress
from mdcli.runs import Run
from mdcli.seeding import seed_everything
from mdcli.storage.checkpoint import load_checkpoint, save_checkpoint
from mdcli.training.optim import OptimConfig, OptimizerGroup, build_optimizer


@dataclass
class TrainLoopConfig:
    """The ``train`` section."""

    epochs: int = param(20, ge=1)
    batch_size: int = param(128, ge=1, help="global batch size (split over DDP ranks)")
    loss: LossName = param("cross_entropy", help="cross_entropy or mse (to one-hot targets)")
    eval_batch_size: int = param(2048, ge=1)


@dataclass
class ClassifierConfig:
    """A ``task: classifier`` config for ``mdcli train``."""

    task: Literal["classifier"] = "classifier"
    seed: int = 0
    device: str = "auto"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainLoopConfig = dataclasses.field(default_factory=TrainLoopConfig)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which epoch ``epoch`` visits ``n`` training samples (same on every rank)."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossName,
             batch_size: int, ctx: DistContext) -> tuple[float, float]:
    """(mean loss, accuracy) over ``x`` (N, ...) and ``y`` (N,), sharded over ranks."""
    was_training = model.training
    model.eval()
    idx = torch.arange(ctx.rank, len(x), ctx.world_size, device=x.device)
    totals = torch.zeros(3, dtype=torch.float64, device=x.device)
    for chunk in idx.split(batch_size):
        logits = model(x[chunk])
        totals[0] += per_sample_loss(loss, logits, y[chunk]).sum().double()
        totals[1] += (logits.argmax(1) == y[chunk]).sum()
        totals[2] += len(chunk)
    totals = all_reduce_mean(totals) if ctx.distributed else totals
    model.train(was_training)
    return (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()


def _epoch_record(epoch: int, model: nn.Module, split: ArraySplit, cfg: ClassifierConfig,
                  ctx: DistContext, seconds: float, lr: float) -> dict[str, Any]:
    record: dict[str, Any] = {"epoch": epoch}
    batch = cfg.train.eval_batch_size
    record["train_loss"], record["train_acc"] = evaluate(
        model, split.x_train, split.y_train, cfg.train.loss, batch, ctx)
    if len(split.x_val):
        record["val_loss"], record["val_acc"] = evaluate(
            model, split.x_val, split.y_val, cfg.train.loss, batch, ctx)
    record.update(lr=lr, seconds=round(seconds, 4))
    return record


class _Checkpointer:
    """Writes ``epoch_NNNN.pt`` (weights) and ``last.pt`` (weights + optimizer + history)."""

    def __init__(self, run: Run | None, ctx: DistContext, cfg: ClassifierConfig,
                 model_cfg: ModelConfig) -> None:
        self.enabled = run is not None and run.enabled and ctx.is_main
        self.folder = run.checkpoints if self.enabled else None
        self.base = {"kind": CHECKPOINT_KIND, "model_config": to_dict(model_cfg),
                     "config": to_dict(cfg)}

    def save(self, model: nn.Module, optimizer: OptimizerGroup, epoch: int, batch: int,
             history: list[dict[str, Any]], epoch_file: bool) -> None:
        if not self.enabled:
            return
        record = {**self.base, "state_dict": model.state_dict(), "epoch": epoch, "batch": batch,
                  "metrics": history[-1] if history else {}}
        if epoch_file:
            save_checkpoint(self.folder / f"epoch_{epoch:04d}.pt", record)
        save_checkpoint(self.folder / "last.pt",
                        {**record, "optimizer": optimizer.state_dict(), "history": history})


def _resume_state(run: Run | None, model: nn.Module, optimizer: OptimizerGroup,
                  model_cfg: ModelConfig, device: torch.device) -> tuple[int, int, list]:
    if run is None:
        raise InputError("--resume: needs a run folder to resume from")
    path = run.path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise InputError(f"--resume: no checkpoint to resume from at {path}")
    record = load_checkpoint(path, map_location=device)
    if record.get("model_config") != to_dict(model_cfg):
        raise InputError(f"--resume: the config's model section differs from the one in {path}")
    model.load_state_dict(record["state_dict"])
    optimizer.load_state_dict(record["optimizer"])
    log.info("resuming from %s (epoch %d, batch %d)", path, record["epoch"], record["batch"])
    return int(record["epoch"]), int(record["batch"]), list(record["history"])


def train_classifier(cfg: ClassifierConfig, run: Run | None = None, *,
                     data: ArraySplit | None = None, ctx: DistContext | None = None,
                     resume: bool = False) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train the classifier ``cfg`` describes; return (model in eval mode, per-epoch history).

    Seeds Python's, NumPy's and torch's global generators with ``cfg.seed`` first.

    Parameters
    ----------
    cfg : ClassifierConfig
        Data, model, optimizer and loop settings.
    run : Run, optional
        Result folder for checkpoints and ``metrics.jsonl``; ``None`` trains in memory.
    data : ArraySplit, optional
        Arrays to train on instead of loading ``cfg.data``.
    ctx : DistContext, optional
        From :func:`mdcli.dist.init_distributed`; with ``world_size > 1`` the model is wrapped
        in DDP. Default: one process on ``cfg.device``.
    resume : bool
        Continue from ``run``'s ``checkpoints/last.pt`` (mid-epoch if it was interrupted).

    Returns
    -------
    model : nn.Module
        The trained model (unwrapped), in eval mode.
    history : list of dict
        One record per epoch from 0: ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``.
    """
    ctx = ctx or DistContext(0, 1, 0, resolve_device(cfg.device))
    device = ctx.device
    seed_everything(cfg.seed)
    split = data or load_split(cfg.data)
    split = ArraySplit(*(t.to(device) for t in (split.x_train, split.y_train, split.x_val,
                                                 split.y_val)), split.num_classes)
    model_cfg = with_data_shape(cfg.model, split.input_shape, split.num_classes)
    model = build_classifier(model_cfg).to(device)
    optimizer = build_optimizer(cfg.optim, model)
    saver = _Checkpointer(run, ctx, cfg, model_cfg)
    lr = float(optimizer.param_groups[0]["lr"])
    if resume:
        done_epochs, done_batches, history = _resume_state(run, model, optimizer, model_cfg, device)
    else:
        done_epochs, done_batches = 0, 0
        history = [_epoch_record(0, model, split, cfg, ctx, 0.0, lr)]
        if run is not None:
            run.log_metrics(history[0])
        saver.save(model, optimizer, 0, 0, history, epoch_file=True)
    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    epochs, n_train = cfg.train.epochs, len(split.x_train)
    for epoch in range(done_epochs + 1, epochs + 1):
        start = time.monotonic()
        batches = epoch_order(n_train, cfg.seed, epoch).to(device).split(cfg.train.batch_size)
        skip = done_batches if epoch == done_epochs + 1 else 0
        step = skip
        try:
            with progress(len(batches), f"epoch {epoch}/{epochs}", enabled=ctx.is_main) as bar:
                bar.advance(skip)
                for step in range(skip, len(batches)):
                    batch = batches[step]
                    shard = batch[ctx.rank::ctx.world_size]
                    losses = per_sample_loss(cfg.train.loss, net(split.x_train[shard]),
                                             split.y_train[shard])
                    loss = losses.sum() * (ctx.world_size / len(batch))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    bar.advance(1, loss=loss.item() / ctx.world_size)
                step = len(batches)
        except KeyboardInterrupt:
            saver.save(model, optimizer, epoch - 1, step, history, epoch_file=False)
            log.warning("interrupted in epoch %d after %d batches; resumable last.pt saved",
                        epoch, step)
            raise
        record = _epoch_record(epoch, model, split, cfg, ctx, time.monotonic() - start, lr)
        history.append(record)
        if run is not None:
            run.log_metrics(record)
        saver.save(model, optimizer, epoch, 0, history, epoch_file=True)
        if ctx.is_main:
            log.info("epoch %d/%d %s", epoch, epochs, " ".join(
                f"{k}={v:.4f}" for k, v in record.items() if k.endswith(("loss", "acc"))))
    return model.eval(), history
