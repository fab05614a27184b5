"""``mdcli condense`` as library calls: condense (then evaluate), or evaluate a saved set.

Inside the run folder a condensation writes, as the NCFM reference did,
``distilled_data/syn_data_<iter>.pth``, ``images/loss_curve.png``, ``images/syn_grid.png``
(image data), ``print.log`` (the log lines) and ``args.log`` (command line and config).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml

from mdcli import dist
from mdcli.condense import figures
from mdcli.condense.classes import distribute_classes
from mdcli.condense.condenser import Condenser
from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData, load_real_data
from mdcli.condense.domains import make_domain
from mdcli.condense.evaluate import evaluate_condensed
from mdcli.condense.premodels import load_premodels, premodel_folders
from mdcli.condense.synfile import load_syn, save_syn
from mdcli.config import to_dict
from mdcli.dist import DistContext
from mdcli.errors import InputError
from mdcli.logs import attach_log_file, detach, log
from mdcli.progress import progress
from mdcli.runs import Run
from mdcli.storage.atomic import atomic_write_text


def _write_args(run: Run, cfg: CondenseConfig) -> None:
    text = "argv: " + " ".join(sys.argv) + "\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False)
    atomic_write_text(run.path / "args.log", text)


def _save(run: Run, cfg: CondenseConfig, data: RealData, syn: dict, iteration: int,
          history: list[dict]) -> Path:
    path = run.path / "distilled_data" / f"syn_data_{iteration}.pth"
    save_syn(path, syn, modality=data.modality, factor=cfg.condense.factor, ipc=cfg.condense.ipc,
             nclass=data.nclass, classes=data.classes, iteration=iteration, config=to_dict(cfg))
    images = run.path / "images"
    images.mkdir(exist_ok=True)
    if history:
        figures.loss_curve(history, images / "loss_curve.png")
    if data.modality == "image":
        figures.image_grid(syn["data"], data.nclass, images / "syn_grid.png", data.classes)
    return path


def condense(cfg: CondenseConfig, run: Run, ctx: DistContext, work_dir: Path,
             debug: bool = False) -> dict:
    """Condense ``cfg``'s dataset; rank 0 writes the outputs. Returns the summary figures."""
    handler = attach_log_file(run.path / "print.log") if run.enabled else None
    try:
        if run.enabled:
            _write_args(run, cfg)
        start = None
        if cfg.condense.init == "load":  # before the extractors are trained: fail fast
            if not cfg.condense.load_path:
                raise InputError("config key 'condense.init': 'load' needs condense.load_path "
                                 "(or --load-path FILE), a syn_data_*.pth")
            start = load_syn(cfg.condense.load_path)
        data = load_real_data(cfg)
        domain = make_domain(cfg, data)
        data.check_classes(1)
        folders = premodel_folders(cfg, data, domain, work_dir, run.path, ctx)
        premodels = load_premodels(folders, cfg.condense.teacher_model_epoch, ctx.device)
        classes = distribute_classes(data.nclass, ctx.world_size, ctx.rank)
        log.info("condensing %d classes x ipc %d with %s (%d iterations, %d rank(s)); rank %d "
                 "has classes %s", data.nclass, cfg.condense.ipc, cfg.condense.dis_metrics,
                 cfg.condense.niter, ctx.world_size, ctx.rank, classes)
        condenser = Condenser(cfg, data, domain, premodels, ctx, classes, start)
        history: list[dict] = []
        niter, every = cfg.condense.niter, cfg.condense.save_every
        syn = condenser.gather()
        last = _save(run, cfg, data, syn, 0, history) if run.enabled else None
        with progress(niter, "condense", every=1.0 if debug else 10.0,
                      enabled=ctx.is_main) as bar:
            for it in range(1, niter + 1):
                try:
                    record = {"iteration": it, **condenser.step(it)}
                except KeyboardInterrupt:
                    if ctx.world_size == 1 and history:
                        path = _save(run, cfg, data, condenser.gather(), it - 1, history)
                        log.warning("interrupted; synthetic data saved to %s (continue with "
                                    "--load-path)", path)
                    raise
                history.append(record)
                run.log_metrics(record)
                bar.advance(1, match=record["match_loss"], calib=record["calib_loss"])
                if debug and ctx.is_main:
                    log.debug("iteration %d %s", it, record)
                if it % every == 0 or it == niter:
                    syn = condenser.gather()
                    if run.enabled:
                        last = _save(run, cfg, data, syn, it, history)
        summary = {"syn_data": str(last) if last else None, "iterations": niter,
                   "final_match_loss": history[-1]["match_loss"],
                   "final_calib_loss": history[-1]["calib_loss"], "ipc": cfg.condense.ipc,
                   "nclass": data.nclass, "modality": data.modality}
        run.update_summary(**summary)
        if cfg.evaluation.enabled and ctx.is_main:
            syn["factor"] = cfg.condense.factor
            evaluation = evaluate_condensed(cfg, data, domain, syn, ctx.device, premodels)
            run.update_summary(evaluation=evaluation)
            summary["evaluation"] = evaluation
        dist.barrier()
        return summary
    finally:
        if handler is not None:
            detach(handler)


def evaluate_file(cfg: CondenseConfig, path: Path, run: Run, device: torch.device) -> dict:
    """Evaluate the synthetic set saved in ``path`` (``--evaluate``)."""
    record = load_syn(path)
    data = load_real_data(cfg)
    domain = make_domain(cfg, data)
    if record["data"].shape[0] % data.nclass:
        raise InputError(f"--evaluate {path}: {record['data'].shape[0]} samples do not split "
                         f"into the data's {data.nclass} classes")
    evaluation = evaluate_condensed(cfg, data, domain, record, device)
    run.update_summary(evaluation=evaluation, syn_data=str(path))
    return evaluation
