"""The ``mdcli condense`` config: sections ``dataset``, ``network``, ``optimization``,
``condense`` and ``evaluation`` (names follow the NCFM reference's YAML files)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from mdcli.config import param
from mdcli.models.classifier import ModelConfig
from mdcli.training.optim import OptimConfig


@dataclass
class DatasetConfig:
    """``dataset``: the real data to condense, and the held-out part evaluation tests on."""

    modality: Literal["image", "text"] = "image"
    source: str = param("digits", help="image: 'digits', .npz or .h5; text: 'topics', .jsonl "
                                       "or .csv with text and labels")
    test_source: str = param("", help="text: held-out file (empty: split off val_fraction)")
    x_key: str = "x"
    y_key: str = "y"
    text_key: str = "text"
    labels_key: str = "labels"
    val_fraction: float = param(0.2, gt=0.0, lt=1.0, help="share held out as the test set")
    split_seed: int = 0
    normalize: Literal["none", "max", "standard"] = "max"
    nclass: int = param(0, ge=0, help="number of classes; 0: from the data")
    batch_real: int = param(256, ge=1, help="real samples drawn per class and iteration")
    is_multilabel: bool = param(False, help="label vectors (text); micro-F1 in evaluation")


@dataclass
class NetworkConfig:
    """``network``: the feature extractors (trained on first use unless ``pretrained``)."""

    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(
        arch="convnet", hidden=[128], channels=[32, 64], bias=True))
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=0.002))
    batch_size: int = param(128, ge=1, help="batch size when training feature extractors")
    pretrained: list[str] = param([], help="'mdcli train' run folders to use as extractors")
    cache: bool = param(True, help="keep trained extractors in WORK_DIR/premodels for reuse")
    layer_index: list[int] = param([], ge=1, help="match these layers (1-based); empty: the "
                                                  "penultimate features / the pooler")
    model_path: str = param("", help="text: local Hugging Face model directory (BERT-style)")
    max_length: int = param(32, ge=2, help="text: tokens per sample")
    train_encoder: bool = param(True, help="text: fine-tune the encoder, not only the head")


@dataclass
class OptimizationConfig:
    """``optimization``: how the synthetic data and the sampling network are updated."""

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr_img: float = param(0.01, gt=0)
    mom_img: float = param(0.5, ge=0, lt=1)
    lr_scale_adam: float = param(0.1, gt=0, help="Adam's/AdamW's learning rate is lr_img * this")
    lr_sampling_net: float = param(1e-3, gt=0)


@dataclass
class CondenseSection:
    """``condense``: the NCFM loop."""

    ipc: int = param(10, ge=1, help="synthetic samples per class")
    num_premodel: int = param(5, ge=1, help="feature extractors to pick from")
    niter: int = param(400, ge=1)
    iter_calib: int = param(1, ge=0, help="calibration steps after each matching step")
    calib_weight: float = param(1.0, ge=0)
    sampling_net: bool = param(False, help="learn the frequencies adversarially (min-max)")
    num_freqs: int = param(4096, ge=1)
    freq_scale: float = param(1.0, gt=0, help="standard deviation of the Gaussian frequencies")
    dis_metrics: Literal["NCFM", "MMD"] = "NCFM"
    mmd_variant: Literal["normalised", "dm"] = param(
        "normalised", help="MMD: of L2-normalised features times loss_scale, or DM's (raw "
                           "features, no scale)")
    factor: int = param(1, ge=1, help="each stored image holds factor x factor smaller ones")
    decode_type: Literal["single", "multi", "bound"] = param(
        "single", help="multi-formation decoding: factor only, every factor 1..factor, or "
                       "factors from large to small within decode_bound images")
    decode_bound: int = param(128, ge=1, help="decode_type bound: most decoded images per class")
    step_schedule: Literal["iteration", "class"] = param(
        "iteration", help="one synthetic-data step per iteration, or one per class (reference)")
    alpha_for_loss: float = param(0.5, ge=0)
    beta_for_loss: float = param(0.5, ge=0)
    loss_scale: float = param(300.0, gt=0, help="multiplies the matching loss (reference: 300)")
    teacher_model_epoch: int = param(20, ge=1, help="epoch of the trained extractor weights")
    init: Literal["random", "noise", "mix", "load"] = param(
        "mix", help="real samples, noise, real + noise, or a syn_data file (load_path)")
    load_path: str = ""
    save_every: int = param(100, ge=1, help="write distilled_data/syn_data_<iter>.pth this often")


@dataclass
class EvaluationConfig:
    """``evaluation``: fresh networks trained on condensed / random subset / full data."""

    enabled: bool = True
    seeds: list[int] = param([0, 1, 2, 3, 4], help="one network per seed and data set; each "
                             "names a seed of a stream disjoint from the extractors' seeds")
    cross_arch: list[Literal["mlp", "convnet"]] = param(
        ["mlp", "convnet"], help="images: also evaluate on these architectures (the one "
                                 "condensed with is skipped)")
    epochs: int = param(300, ge=1, help="epochs on the condensed data and the random subset")
    full_epochs: int = param(20, ge=1, help="epochs on the full training set")
    batch_size: int = param(256, ge=1)
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=0.002))
    full: bool = param(True, help="also train on the full training set")


@dataclass
class AugmentationConfig:
    """``augmentation``: NCFM's differentiable siamese augmentation (images only)."""

    dsa: bool = param(True, help="augment (DSA) in matching, calibration and evaluation")
    dsa_strategy: str = param("color_crop_cutout_flip_scale_rotate",
                              help="DSA transforms when training evaluation networks")
    aug_type: str = param("color_crop_cutout", help="DSA transforms in matching/calibration")
    mixup: Literal["cut", "none"] = param("cut", help="CutMix in evaluation training")
    beta: float = param(1.0, gt=0, help="CutMix: Beta(beta, beta) of the kept share")
    mix_p: float = param(0.5, ge=0, le=1, help="CutMix: probability per batch")


@dataclass
class CondenseConfig:
    """The whole ``mdcli condense`` config."""

    seed: int = 0
    device: str = "auto"
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    optimization: OptimizationConfig = dataclasses.field(default_factory=OptimizationConfig)
    condense: CondenseSection = dataclasses.field(default_factory=CondenseSection)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    augmentation: AugmentationConfig = dataclasses.field(default_factory=AugmentationConfig)
