"""Feature extractors: ``num_premodel`` networks with initial and trained weights.

Each extractor is a folder with ``checkpoints/epoch_0000.pt`` (initial weights) and
``checkpoints/epoch_<teacher_model_epoch>.pt`` (trained weights). Image extractors are
``mdcli train`` run folders (classifier task, per-epoch checkpoints); ``network.pretrained``
names existing ones, otherwise they are trained here on first use: under
``WORK_DIR/premodels/<key>/`` when ``network.cache`` (``key`` digests everything that shapes
the network, so a later run reuses it), else inside the run folder. Text extractors are the
pretrained encoder plus a head, fine-tuned on the training part. Under ``torchrun`` rank 0
trains and the others wait.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from mdcli import dist
from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData, image_data_config
from mdcli.condense.domains import ImageDomain, TextDomain
from mdcli.config import to_dict
from mdcli.dist import DistContext
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.runs import dump_json
from mdcli.storage.checkpoint import load_checkpoint, save_checkpoint

TEXT_KIND = "text-classifier"


def checkpoint_file(folder: Path, epoch: int) -> Path:
    return Path(folder) / "checkpoints" / f"epoch_{epoch:04d}.pt"


def premodel_key(cfg: CondenseConfig, index: int) -> str:
    """Digest of what shapes extractor ``index``: data, network, epochs and its seed."""
    network = {k: v for k, v in to_dict(cfg.network).items()
               if k not in ("pretrained", "cache", "layer_index")}
    dataset = {k: v for k, v in to_dict(cfg.dataset).items() if k not in ("batch_real", "nclass")}
    spec = {"dataset": dataset, "network": network, "seed": index,
            "epochs": cfg.condense.teacher_model_epoch}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _train_image(cfg: CondenseConfig, data: RealData, domain: ImageDomain, index: int,
                 folder: Path, device: torch.device) -> None:
    from mdcli.data.arrays import ArraySplit
    from mdcli.runs import start_run
    from mdcli.training.classifier import ClassifierConfig, TrainLoopConfig, train_classifier

    ccfg = ClassifierConfig(seed=index, device=str(device), data=image_data_config(cfg),
                            model=domain.model_cfg, optim=cfg.network.optim,
                            train=TrainLoopConfig(epochs=cfg.condense.teacher_model_epoch,
                                                  batch_size=cfg.network.batch_size))
    split = ArraySplit(data.x_train, data.y_train, data.x_test, data.y_test, data.nclass)
    with start_run("train", ccfg, path=folder) as run:
        _, history = train_classifier(ccfg, run, data=split)
        run.update_summary(task="classifier", final=history[-1])


def _train_text(cfg: CondenseConfig, data: RealData, domain: TextDomain, index: int,
                folder: Path, device: torch.device) -> None:
    from mdcli.condense.text_training import fit_text, score_text

    model = domain.new_model(index).to(device)
    epochs = cfg.condense.teacher_model_epoch

    def save(epoch: int, net: torch.nn.Module) -> None:
        if epoch in (0, epochs):
            save_checkpoint(checkpoint_file(folder, epoch),
                            {"kind": TEXT_KIND, "epoch": epoch, "state_dict": net.state_dict()})

    save(0, model)
    x, mask, y = (t.to(device) for t in (data.x_train, data.mask_train, data.y_train))
    fit_text(model, x, mask, y, epochs=epochs,
             batch_size=cfg.network.batch_size, lr=cfg.network.optim.lr, seed=index,
             train_encoder=cfg.network.train_encoder, on_epoch=save)
    score = score_text(model, *(t.to(device) for t in (data.x_test, data.mask_test, data.y_test)))
    log.info("text extractor %d: test score %.4f after %d epochs", index, score, epochs)


def _build(cfg: CondenseConfig, data: RealData, domain: ImageDomain | TextDomain, index: int,
           folder: Path, device: torch.device) -> None:
    """Train extractor ``index`` into a temporary folder, then move it to ``folder``."""
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("training feature extractor %d/%d (%d epochs) into %s", index + 1,
             cfg.condense.num_premodel, cfg.condense.teacher_model_epoch, folder)
    if isinstance(domain, TextDomain):
        _train_text(cfg, data, domain, index, tmp, device)
    else:
        _train_image(cfg, data, domain, index, tmp, device)
    summary = tmp / "summary.json"
    if summary.is_file():  # the train run's record names its final folder
        dump_json(summary, {**json.loads(summary.read_text()), "run_dir": str(folder)})
    try:
        os.replace(tmp, folder)
    except OSError:  # another run finished the same extractor first
        shutil.rmtree(tmp, ignore_errors=True)


def premodel_folders(cfg: CondenseConfig, data: RealData, domain: ImageDomain | TextDomain,
                     work_dir: Path, run_path: Path, ctx: DistContext) -> list[Path]:
    """The ``num_premodel`` extractor folders, training missing ones on rank 0."""
    n, epoch = cfg.condense.num_premodel, cfg.condense.teacher_model_epoch
    if cfg.network.pretrained:
        folders = [Path(p) for p in cfg.network.pretrained]
        if len(folders) < n:
            raise InputError(f"config key 'network.pretrained': {len(folders)} folders, but "
                             f"condense.num_premodel is {n}")
        for folder in folders[:n]:
            for e in (0, epoch):
                if not checkpoint_file(folder, e).is_file():
                    raise InputError(f"config key 'network.pretrained': {folder} has no "
                                     f"{checkpoint_file(folder, e).relative_to(folder)} (train it "
                                     f"with 'mdcli train' for >= {epoch} epochs)")
        return folders[:n]
    root = Path(work_dir) / "premodels" if cfg.network.cache else Path(run_path) / "premodels"
    folders = [root / f"{domain.modality}_{premodel_key(cfg, i)}" for i in range(n)]
    if ctx.is_main:
        for i, folder in enumerate(folders):
            if checkpoint_file(folder, epoch).is_file():
                log.info("feature extractor %d/%d: cached in %s", i + 1, n, folder)
            else:
                _build(cfg, data, domain, i, folder, ctx.device)
    dist.barrier()
    return folders


@dataclasses.dataclass
class Premodel:
    """Initial and trained weights (state dicts) of one extractor."""

    init: dict[str, torch.Tensor]
    final: dict[str, torch.Tensor]


def load_premodels(folders: list[Path], epoch: int, device: torch.device) -> list[Premodel]:
    """Read ``epoch_0000.pt`` and ``epoch_<epoch>.pt`` of each folder."""
    return [Premodel(load_checkpoint(checkpoint_file(f, 0), device)["state_dict"],
                     load_checkpoint(checkpoint_file(f, epoch), device)["state_dict"])
            for f in folders]


def blend(premodel: Premodel, a: float) -> dict[str, torch.Tensor]:
    """``init + a * (final - init)`` for floating tensors; other entries from ``final``."""
    return {k: premodel.init[k] + a * (v - premodel.init[k]) if v.is_floating_point() else v
            for k, v in premodel.final.items()}
