"""The real data a condensation matches: training part per class, and the test part.

Images come from :mod:`mdcli.data.arrays` (digits, .npz, HDF5); text from
:mod:`mdcli.data.text`, tokenised with the encoder's tokenizer. Labels are class indices
``(N,)`` for single-label data and 0/1 vectors ``(N, C)`` for multi-label data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mdcli.condense.config import CondenseConfig
from mdcli.data.arrays import DataConfig, load_split, split_indices
from mdcli.errors import InputError


@dataclass
class RealData:
    """``x_*``: images (N, C, H, W) float32 or token ids (N, L) int64; ``mask_*``: text only."""

    modality: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    nclass: int
    classes: list[str]
    multilabel: bool
    mask_train: torch.Tensor | None = None
    mask_test: torch.Tensor | None = None

    def class_members(self, c: int) -> torch.Tensor:
        """Indices (into the training part) of the samples of class ``c`` (label ``c`` set)."""
        hit = self.y_train[:, c] > 0 if self.multilabel else self.y_train == c
        return torch.nonzero(hit).flatten()

    def check_classes(self, needed: int) -> None:
        """Every class needs at least one training sample (and ``needed`` for random init)."""
        for c in range(self.nclass):
            count = len(self.class_members(c))
            if count < max(1, needed):
                raise InputError(f"dataset.source: class {self.classes[c]!r} has {count} "
                                 f"training samples, the condensation needs at least "
                                 f"{max(1, needed)}")


def image_data_config(cfg: CondenseConfig) -> DataConfig:
    """The ``data`` section a classifier trained on this dataset uses."""
    d = cfg.dataset
    return DataConfig(source=d.source, x_key=d.x_key, y_key=d.y_key, val_fraction=d.val_fraction,
                      split_seed=d.split_seed, normalize=d.normalize)


def _check_nclass(cfg: CondenseConfig, found: int) -> int:
    if cfg.dataset.nclass and cfg.dataset.nclass != found:
        raise InputError(f"config key 'dataset.nclass': {cfg.dataset.nclass}, but the data has "
                         f"{found} classes")
    return found


def load_image_data(cfg: CondenseConfig) -> RealData:
    split = load_split(image_data_config(cfg))
    nclass = _check_nclass(cfg, split.num_classes)
    if split.x_train.ndim == 2:
        raise InputError(f"dataset.source {cfg.dataset.source}: condensing images needs samples "
                         f"of shape (C, H, W) or (H, W), got {tuple(split.x_train.shape[1:])}")
    x_train, x_test = split.x_train, split.x_val
    if x_train.ndim == 3:
        x_train, x_test = x_train[:, None], x_test[:, None]
    return RealData("image", x_train, split.y_train, x_test, split.y_val, nclass,
                    [str(c) for c in range(nclass)], multilabel=False)


def load_text_data(cfg: CondenseConfig) -> RealData:
    from mdcli.data.text import load_text_corpus
    from mdcli.models.text import load_tokenizer, tokenize

    d = cfg.dataset
    corpus = load_text_corpus(d.source, d.text_key, d.labels_key, seed=d.split_seed)
    if d.test_source:
        test = load_text_corpus(d.test_source, d.text_key, d.labels_key, corpus.classes)
        train_texts, y_train = corpus.texts, corpus.labels
        test_texts, y_test = test.texts, test.labels
    else:
        train, val = split_indices(len(corpus.texts), d.val_fraction, d.split_seed)
        train_texts = [corpus.texts[i] for i in train]
        test_texts = [corpus.texts[i] for i in val]
        y_train, y_test = corpus.labels[train], corpus.labels[val]
    nclass = _check_nclass(cfg, len(corpus.classes))
    if not d.is_multilabel and np.any(y_train.sum(1) != 1):
        raise InputError("config key 'dataset.is_multilabel': false, but some documents have "
                         "several labels (set it to true)")
    tokenizer = load_tokenizer(cfg.network.model_path)
    ids_train, mask_train = tokenize(tokenizer, train_texts, cfg.network.max_length)
    ids_test, mask_test = tokenize(tokenizer, test_texts, cfg.network.max_length)
    y_tr, y_te = torch.from_numpy(y_train), torch.from_numpy(y_test)
    if not d.is_multilabel:
        y_tr, y_te = y_tr.argmax(1), y_te.argmax(1)
    return RealData("text", ids_train, y_tr, ids_test, y_te, nclass, corpus.classes,
                    d.is_multilabel, mask_train, mask_test)


def load_real_data(cfg: CondenseConfig) -> RealData:
    """Images or text, as ``dataset.modality`` says."""
    if cfg.dataset.modality == "text":
        return load_text_data(cfg)
    if cfg.dataset.is_multilabel:
        raise InputError("config key 'dataset.is_multilabel': image data here holds one class "
                         "index per sample; set it to false")
    return load_image_data(cfg)
