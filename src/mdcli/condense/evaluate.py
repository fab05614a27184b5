"""How much condensed data is worth: fresh networks trained on it, on a random real subset of
the same size, and on the full training set, each with several seeds, scored on the test part
at the *final* epoch (accuracy, or micro-F1 for multi-label data).

The random subset holds ``ipc`` real samples per class, as many samples as the condensed set
stores (with multi-formation each stored image decodes into ``factor**2`` training images).
Evaluation seed ``s`` seeds its network with :func:`~mdcli.condense.streams.evaluation_seed`,
a stream disjoint from the extractors' seeds (and checked against their initial weights when
they are known), so no evaluation network starts where the condensed data were optimised.
Image networks train with NCFM's evaluation augmentation (DSA and CutMix, ``augmentation``);
``evaluation.cross_arch`` names further architectures the condensed set and the random subset
are also evaluated on. Each result is ``{mean, std, ci95, runs}`` (sample std, Student-t 95 %
interval of the mean) with the training budget it had (samples, epochs, optimiser steps).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData
from mdcli.condense.decode import decode_set
from mdcli.condense.domains import ImageDomain, TextDomain, draw_samples
from mdcli.condense.eval_training import fit_image, score_image
from mdcli.condense.premodels import Premodel
from mdcli.condense.streams import evaluation_seed, stream
from mdcli.errors import RunFailure
from mdcli.logs import log, state
from mdcli.threads import apply_thread_policy

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
                     epochs: int, device: torch.device, arch: str | None = None) -> float:
    ev = cfg.evaluation
    torch_seed = evaluation_seed(seed)
    if isinstance(domain, TextDomain):
        from mdcli.condense.text_training import fit_text, score_text

        model = domain.new_model(torch_seed).to(device)
        fit_text(model, x.to(device), mask.to(device), y.to(device), epochs=epochs,
                 batch_size=ev.batch_size, lr=ev.optim.lr, seed=torch_seed,
                 train_encoder=cfg.network.train_encoder)
        return score_text(model, *(t.to(device) for t in (data.x_test, data.mask_test,
                                                           data.y_test)))
    model = domain.new_model(torch_seed, arch).to(device)
    fit_image(model, x.float().to(device), y.to(device), epochs=epochs,
              batch_size=ev.batch_size, optim=ev.optim,
              gen=stream(seed, "eval_train", epochs, len(x)), augmentation=cfg.augmentation)
    return score_image(model, data.x_test.to(device), data.y_test.to(device))


def summarise(scores: list[float]) -> dict[str, float | list[float]]:
    """``{mean, std, ci95, runs}``: sample std and the Student-t 95 % interval of the mean
    (``[mean, mean]`` for one run)."""
    from scipy import stats

    values = np.asarray(scores, dtype=float)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(values) - 1) * std / np.sqrt(len(values))) \
        if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "runs": list(scores)}


def budget(samples: int, epochs: int, batch_size: int) -> dict[str, int]:
    """What a training run had: samples, epochs and optimiser steps."""
    return {"samples": samples, "epochs": epochs,
            "steps": epochs * -(-samples // batch_size)}


def check_disjoint(domain: ImageDomain | TextDomain, seeds: list[int],
                   premodels: list[Premodel]) -> None:
    """Refuse evaluation networks whose initial weight matrices equal an extractor's (text: the
    heads, the encoder being the shared pretrained one)."""
    text = isinstance(domain, TextDomain)
    for seed in seeds:
        init = {k: v.detach().cpu() for k, v in domain.new_model(evaluation_seed(seed))
                .state_dict().items() if not text or k.startswith("head.")}
        for i, premodel in enumerate(premodels):
            same = [k for k, v in premodel.init.items() if v.is_floating_point() and v.ndim > 1
                    and k in init and torch.equal(v.cpu(), init[k])]
            if same:
                raise RunFailure(f"evaluation seed {seed}: its network starts with extractor "
                                 f"{i}'s initial weights ({same[0]}); the comparison would "
                                 f"not be fair")


def _architectures(cfg: CondenseConfig, domain: ImageDomain | TextDomain) -> list[str]:
    if isinstance(domain, TextDomain):
        return []
    return [a for a in dict.fromkeys(cfg.evaluation.cross_arch) if a != domain.model_cfg.arch]


def evaluate_condensed(cfg: CondenseConfig, data: RealData, domain: ImageDomain | TextDomain,
                       syn: dict[str, torch.Tensor], device: torch.device,
                       premodels: list[Premodel] | None = None) -> dict:
    """Scores of the training sets over ``evaluation.seeds``; see the module doc."""
    apply_thread_policy()  # many small trainings: never more threads than idle cores
    ev, factor = cfg.evaluation, int(syn.get("factor", cfg.condense.factor))
    c = cfg.condense
    x_syn, y_syn = decode_set(syn["data"], syn["labels"], data.nclass, factor, c.decode_type,
                              c.decode_bound)
    mask_syn = syn.get("mask")
    ipc = len(syn["data"]) // data.nclass
    if premodels:
        check_disjoint(domain, ev.seeds, premodels)
    archs = _architectures(cfg, domain)
    aug = cfg.augmentation
    image = isinstance(domain, ImageDomain)
    result: dict = {"metric": "micro_f1" if data.multilabel else "accuracy",
                    "ipc": ipc, "seeds": list(ev.seeds), "epochs": ev.epochs,
                    "architecture": getattr(domain.model_cfg, "arch", "text") if image
                    else "text",
                    "augmentation": {"dsa": aug.dsa_strategy if aug.dsa else "none",
                                     "mixup": aug.mixup} if image else None}
    runs: dict[str, list[float]] = {}
    budgets: dict[str, dict[str, int]] = {}
    for seed in ev.seeds:
        x_sub, y_sub, mask_sub = random_subset(data, ipc, seed)
        jobs = {"condensed": (x_syn, y_syn, mask_syn, ev.epochs, None),
                "random_subset": (x_sub, y_sub, mask_sub, ev.epochs, None)}
        if ev.full:
            jobs["full"] = (data.x_train, data.y_train, data.mask_train, ev.full_epochs, None)
        for arch in archs:
            jobs[f"condensed@{arch}"] = (x_syn, y_syn, mask_syn, ev.epochs, arch)
            jobs[f"random_subset@{arch}"] = (x_sub, y_sub, mask_sub, ev.epochs, arch)
        for name, (x, y, mask, epochs, arch) in jobs.items():
            with _muted():
                score = _train_and_score(cfg, data, domain, x, y, mask, seed, epochs, device,
                                         arch)
            runs.setdefault(name, []).append(score)
            budgets[name] = budget(len(x), epochs, ev.batch_size)
        log.info("evaluation seed %d: %s", seed, " ".join(
            f"{k}={v[-1]:.4f}" for k, v in runs.items()))
    for name, scores in runs.items():
        target = result.setdefault("cross_arch", {}).setdefault(name.split("@")[1], {}) \
            if "@" in name else result
        target[name.split("@")[0]] = {**summarise(scores), "budget": budgets[name]}
    return result


def _rows(result: dict) -> list[tuple[str, dict]]:
    rows = [(name, result[name]) for name in SETS if name in result]
    for arch, sets in result.get("cross_arch", {}).items():
        rows += [(f"{name} ({arch})", sets[name]) for name in SETS if name in sets]
    return rows


def evaluation_table(result: dict):
    """A rich table: one row per training set, mean ± std, 95 % interval and budget."""
    from rich.table import Table

    table = Table(title=f"test {result['metric']} (final epoch), ipc {result['ipc']}, "
                        f"{len(result['seeds'])} seeds, {result.get('architecture', '')}")
    for column in ("trained on", "mean ± std", "95% interval", "budget", "runs"):
        table.add_column(column)
    for name, r in _rows(result):
        b = r["budget"]
        table.add_row(name, f"{r['mean']:.4f} ± {r['std']:.4f}",
                      f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]",
                      f"{b['samples']} samples x {b['epochs']} epochs = {b['steps']} steps",
                      " ".join(f"{v:.3f}" for v in r["runs"]))
    return table
