"""How much condensed data is worth: fresh networks trained on it, on a random real subset of
the same size, and on the full training set, each with several seeds, scored on the test part
at the *final* epoch (accuracy, or micro-F1 for multi-label data).

The random subset holds ``ipc`` real samples per class, as many samples as the condensed set
stores (with multi-formation each stored image decodes into ``factor**2`` training images).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData, image_data_config
from mdcli.condense.decode import decode, decode_labels
from mdcli.condense.domains import ImageDomain, TextDomain, draw_samples
from mdcli.condense.streams import stream
from mdcli.logs import log, state

SETS = ("condensed", "random_subset", "full")


@contextmanager
def _muted() -> Iterator[None]:
    """Silence the per-epoch lines and bars of the many short trainings."""
    level, quiet = log.level, state.quiet
    log.setLevel(logging.WARNING)
    state.quiet = True
    try:
        yield
    finally:
        log.setLevel(level)
        state.quiet = quiet


def random_subset(data: RealData, ipc: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``ipc`` random training samples per class (inputs, labels, masks or None)."""
    idx = torch.cat([draw_samples(data.class_members(c), ipc, stream(seed, "subset", c))
                     for c in range(data.nclass)])
    mask = data.mask_train[idx] if data.mask_train is not None else None
    return data.x_train[idx], data.y_train[idx], mask


def _train_and_score(cfg: CondenseConfig, data: RealData, domain: ImageDomain | TextDomain,
                     x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, seed: int,
                     epochs: int, device: torch.device) -> float:
    ev = cfg.evaluation
    if isinstance(domain, TextDomain):
        from mdcli.condense.text_training import fit_text, score_text

        model = domain.new_model(seed).to(device)
        fit_text(model, x.to(device), mask.to(device), y.to(device), epochs=epochs,
                 batch_size=ev.batch_size, lr=ev.optim.lr, seed=seed,
                 train_encoder=cfg.network.train_encoder)
        return score_text(model, *(t.to(device) for t in (data.x_test, data.mask_test,
                                                           data.y_test)))
    from mdcli.data.arrays import ArraySplit
    from mdcli.training.classifier import ClassifierConfig, TrainLoopConfig, train_classifier

    ccfg = ClassifierConfig(seed=seed, device=str(device), data=image_data_config(cfg),
                            model=domain.model_cfg, optim=ev.optim,
                            train=TrainLoopConfig(epochs=epochs, batch_size=ev.batch_size))
    split = ArraySplit(x.float(), y, data.x_test, data.y_test, data.nclass)
    _, history = train_classifier(ccfg, data=split)
    return float(history[-1]["val_acc"])


def summarise(scores: list[float]) -> dict[str, float | list[float]]:
    """``{mean, std, runs}`` (population std over the runs)."""
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "runs": list(scores)}


def evaluate_condensed(cfg: CondenseConfig, data: RealData, domain: ImageDomain | TextDomain,
                       syn: dict[str, torch.Tensor], device: torch.device) -> dict:
    """Scores of the three training sets over ``evaluation.seeds``; see the module doc."""
    ev, factor = cfg.evaluation, int(syn.get("factor", cfg.condense.factor))
    x_syn, y_syn = decode(syn["data"], factor), decode_labels(syn["labels"], factor)
    mask_syn = syn.get("mask")
    ipc = len(syn["data"]) // data.nclass
    result: dict = {"metric": "micro_f1" if data.multilabel else "accuracy",
                    "ipc": ipc, "seeds": list(ev.seeds), "epochs": ev.epochs}
    runs: dict[str, list[float]] = {name: [] for name in SETS}
    for seed in ev.seeds:
        x_sub, y_sub, mask_sub = random_subset(data, ipc, seed)
        jobs = {"condensed": (x_syn, y_syn, mask_syn, ev.epochs),
                "random_subset": (x_sub, y_sub, mask_sub, ev.epochs)}
        if ev.full:
            jobs["full"] = (data.x_train, data.y_train, data.mask_train, ev.full_epochs)
        for name, (x, y, mask, epochs) in jobs.items():
            with _muted():
                runs[name].append(_train_and_score(cfg, data, domain, x, y, mask, seed, epochs,
                                                   device))
        log.info("evaluation seed %d: %s", seed, " ".join(
            f"{k}={v[-1]:.4f}" for k, v in runs.items() if v))
    for name in SETS:
        if runs[name]:
            result[name] = summarise(runs[name])
    return result


def evaluation_table(result: dict):
    """A rich table: one row per training set, mean ± std over the seeds."""
    from rich.table import Table

    table = Table(title=f"test {result['metric']} (final epoch), ipc {result['ipc']}, "
                        f"{len(result['seeds'])} seeds")
    for column in ("trained on", "mean", "std", "runs"):
        table.add_column(column)
    for name in SETS:
        if name in result:
            r = result[name]
            table.add_row(name, f"{r['mean']:.4f}", f"{r['std']:.4f}",
                          " ".join(f"{v:.3f}" for v in r["runs"]))
    return table
