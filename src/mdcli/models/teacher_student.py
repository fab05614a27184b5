"""The ERA5 teacher and the satellite-only student, and rebuilding them from a checkpoint.

Both wrap the same :class:`~mdcli.models.ncsnpp.ConditionalUNet`. At its two fusion sites
(``"low"`` and ``"high"``, see :mod:`mdcli.models.sites`) the teacher attends from its ERA5
encoder features to the U-Net state; the student first predicts those encoder features from
the U-Net state, then runs the causal cross-attention (attention, then the per-sample
:class:`~mdcli.models.causal.CausalMaskNet`). ``return_feat=True`` returns the features
``{"attn16", "attn32", "enc16", "enc32"}``, each ``[B, V=4, C, h, w]`` in the variable order
of :data:`mdcli.data.synth_tc.VARIABLES`; the student's attention features are those before
the mask (the seed's ``feat_32[var] = attn_feat``).

The student's causal loss is computed inside its forward (so that a DDP-wrapped student
reduces the projection heads' gradients): its :class:`~mdcli.models.mi_heads.MIProjection`
heads embed the causal features and the target, and the loss function given as
``Student(cfg, causal_loss=...)`` (e.g. :func:`mdcli.losses.distill.causal_loss_fn`) turns
the embeddings into the loss; models do not import losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mdcli.config import from_dict, param
from mdcli.data.synth_tc import VARIABLES
from mdcli.errors import InputError
from mdcli.models.causal import CausalMaskNet, InternalSensitivity
from mdcli.models.cross_attention import CrossModalFusion
from mdcli.models.era5_encoder import EncoderPredictor, ERA5Encoder, softmax_weights
from mdcli.models.mi_heads import MIProjection
from mdcli.models.ncsnpp import ConditionalUNet
from mdcli.models.sites import FEATURE_KEYS, SITE_SUFFIX
from mdcli.storage.checkpoint import load_checkpoint

CausalLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(anchors [S, V, B, D], targets [B, D]) -> scalar``: the student's causal loss of the
embedded causal features of ``S`` sites and ``V`` variables and the embedded targets."""


@dataclass
class ModelConfig:
    image_size: int = param(128, ge=8, help="frame height and width")
    cond_frames: int = param(4, ge=1, help="K past frames stacked as input channels")
    pred_frames: int = param(5, ge=1, help="P frames predicted")
    era5_steps: int = param(4, ge=1, help="T ERA5 time steps")
    ch: int = param(64, ge=4)
    ch_mult: list[int] = param([1, 1, 2, 2], ge=1)
    num_res_blocks: int = param(2, ge=1)
    attn_resolutions: list[int] = param([16], ge=1)
    dropout: float = param(0.1, ge=0, lt=1)
    enc_base_channels: int = param(32, ge=1, help="ERA5 encoder hidden width per variable")
    enc_channels: int = param(384, ge=1, help="encoder feature width per variable (E)")
    heads: int = param(6, ge=1)
    dim_head: int = param(64, ge=1)
    mask_ratio: float = param(0.7, gt=0, le=1, help="share of channels kept as causal")
    proj_dim: int = param(128, ge=1, help="projection width of the causal InfoNCE heads")


def check_model_config(cfg: ModelConfig, key: str = "model") -> None:
    """Shape rules the schema's bounds cannot say; errors name the key."""
    levels = len(cfg.ch_mult)
    if levels < 2:
        raise InputError(f"config key '{key}.ch_mult': got {cfg.ch_mult}, expected at least "
                         f"two levels (the fusion sites are the two lowest resolutions)")
    if cfg.image_size % 2 ** (levels - 1) or not math.log2(cfg.image_size).is_integer():
        raise InputError(f"config key '{key}.image_size': got {cfg.image_size}, expected a "
                         f"power of two divisible by 2^(len(ch_mult)-1) = {2 ** (levels - 1)}")


def _unet(cfg: ModelConfig) -> ConditionalUNet:
    return ConditionalUNet(cfg.cond_frames + cfg.pred_frames, cfg.pred_frames, cfg.image_size,
                           cfg.ch, cfg.ch_mult, cfg.num_res_blocks, cfg.attn_resolutions,
                           cfg.dropout)


def _without_variable(x: torch.Tensor, variable: int | None) -> torch.Tensor:
    """``x`` ``[B, V, ., ., .]`` with variable ``variable`` zeroed (a counterfactual); ``x``
    itself when ``variable`` is None."""
    if variable is None:
        return x
    keep = torch.ones(x.shape[1], device=x.device, dtype=x.dtype)
    keep[variable] = 0.0
    return x * keep.view(1, -1, 1, 1, 1)


class _FusionNet(nn.Module):
    """What the teacher and the student share: the checked config, the U-Net, and the
    softmax weights of the ``variable_logits`` each registers (after its own modules)."""

    variable_logits: nn.Parameter

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        check_model_config(cfg)
        self.cfg = cfg
        self.unet = _unet(cfg)

    def variable_weights(self) -> torch.Tensor:
        return softmax_weights(self.variable_logits)


class Teacher(_FusionNet):
    """U-Net + ERA5 encoder + cross-modal attention at 16 and 32."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        v = len(VARIABLES)
        self.encoder = ERA5Encoder(v, cfg.era5_steps, cfg.image_size, 2 * self.unet.low_res,
                                   cfg.enc_base_channels, cfg.enc_channels)
        channels = {"low": self.unet.low_channels, "high": self.unet.high_channels}
        self.fusion = nn.ModuleDict({site: CrossModalFusion(cfg.enc_channels, c, cfg.heads,
                                                            cfg.dim_head)
                                     for site, c in channels.items()})
        self.variable_logits = nn.Parameter(torch.zeros(v))

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: torch.Tensor,
                era5: torch.Tensor, return_feat: bool = False, intervene: int | None = None):
        """``[B, P, H, W]``, ``[B]``, ``[B, K, H, W]``, ``[B, 4, T, H, W]`` -> ``[B, P, H, W]``.

        ``intervene=v`` replaces ERA5 variable ``v`` by zero (a counterfactual).
        With ``return_feat`` returns ``(output, feats)``.
        """
        enc_high, enc_low = self.encoder(_without_variable(era5, intervene))
        enc = {"low": enc_low, "high": enc_high}
        weights = self.variable_weights()
        feats: dict[str, torch.Tensor] = {}

        def fuse(site: str, h: torch.Tensor) -> torch.Tensor:
            h, attn, _ = self.fusion[site](h, enc[site], weights)
            feats["attn" + SITE_SUFFIX[site]] = attn
            return h

        out = self.unet(x_noisy, noise_level, cond, fuse)
        if not return_feat:
            return out
        feats.update(enc16=enc_low, enc32=enc_high)
        return out, {key: feats[key] for key in FEATURE_KEYS}


class Student(_FusionNet):
    """U-Net + encoder-feature predictor + causal cross-attention; no ERA5 input.

    ``causal_loss`` (a :data:`CausalLoss`) is needed only to call it with a ``target``.
    """

    def __init__(self, cfg: ModelConfig, causal_loss: CausalLoss | None = None) -> None:
        super().__init__(cfg)
        v = len(VARIABLES)
        channels = {"low": self.unet.low_channels, "high": self.unet.high_channels}
        self.predictor = nn.ModuleDict({site: EncoderPredictor(c, v, cfg.enc_channels)
                                        for site, c in channels.items()})
        self.fusion = nn.ModuleDict({
            site: CrossModalFusion(cfg.enc_channels, c, cfg.heads, cfg.dim_head,
                                   CausalMaskNet(v, cfg.enc_channels, cfg.mask_ratio))
            for site, c in channels.items()})
        self.variable_logits = nn.Parameter(torch.zeros(v))
        self.mi_heads = MIProjection(cfg.enc_channels, cfg.pred_frames, cfg.proj_dim,
                                     tuple(channels))
        self.internal_sensitivity = InternalSensitivity(v)
        self.causal_loss_fn = causal_loss

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: torch.Tensor,
                return_feat: bool = False, target: torch.Tensor | None = None,
                intervene: int | None = None):
        """``[B, P, H, W]``, ``[B]``, ``[B, K, H, W]`` -> ``[B, P, H, W]``.

        With ``return_feat`` returns ``(output, feats, causal_loss)``; ``causal_loss`` is the
        causal loss of the causal features against the clean ``target`` ``[B, P, H, W]``
        (zero when ``target`` is None). ``intervene=v`` zeroes the predicted encoder
        features of variable ``v``.
        """
        if target is not None and self.causal_loss_fn is None:
            raise ValueError("Student(cfg) was built without causal_loss; build it as "
                             "Student(cfg, causal_loss=...) to pass a target")
        weights = self.variable_weights()
        feats: dict[str, torch.Tensor] = {}
        anchors = []

        def fuse(site: str, h: torch.Tensor) -> torch.Tensor:
            enc = _without_variable(self.predictor[site](h), intervene)
            h, attn, (causal, _) = self.fusion[site](h, enc, weights)
            feats["attn" + SITE_SUFFIX[site]] = attn
            feats["enc" + SITE_SUFFIX[site]] = enc
            if target is not None:
                anchors.append(self.mi_heads.anchor(site, causal).transpose(0, 1))
            return h

        out = self.unet(x_noisy, noise_level, cond, fuse)
        if not return_feat:
            return out
        if target is not None:
            causal_loss = self.causal_loss_fn(torch.stack(anchors), self.mi_heads.target(target))
        else:
            causal_loss = out.new_zeros(())
        return out, {key: feats[key] for key in FEATURE_KEYS}, causal_loss


RETIRED_KEYS = ("noncausal_weight", "margin", "temperature")  # settings of the old MI loss


def model_config(data: dict[str, Any] | ModelConfig) -> ModelConfig:
    """A :class:`ModelConfig` from a checkpoint's ``model_config`` dict (validated).

    Checkpoints written before the InfoNCE loss hold the old MI loss's settings
    (:data:`RETIRED_KEYS`); they configured no weights and are dropped.
    """
    if isinstance(data, ModelConfig):
        return data
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
    return from_dict(ModelConfig, data, "model_config")


def build_diffusion_model(model_cfg: dict[str, Any] | ModelConfig, role: str = "teacher"
                          ) -> Teacher | Student:
    """Build the ``"teacher"`` or ``"student"`` network from a model config (dict or object)."""
    cfg = model_config(model_cfg)
    if role == "teacher":
        return Teacher(cfg)
    if role == "student":
        return Student(cfg)
    raise InputError(f"model role {role!r}: expected 'teacher' or 'student'")


def distill_models(record: dict[str, Any], ema: bool = True,
                   device: str | torch.device = "cpu", source: str = "checkpoint"
                   ) -> tuple[Teacher, Student]:
    """Teacher and student (eval mode, on ``device``) of a ``distill`` checkpoint record.

    ``ema=True`` loads the student's EMA weights (``student_ema``), else ``student``;
    ``source`` names the record in errors.
    """
    missing = [k for k in ("model_config", "teacher", "student", "student_ema") if k not in record]
    if missing:
        raise InputError(f"{source}: not a distill checkpoint (missing {', '.join(missing)})")
    teacher = build_diffusion_model(record["model_config"], "teacher")
    student = build_diffusion_model(record["model_config"], "student")
    teacher.load_state_dict(record["teacher"])
    student.load_state_dict(record["student_ema" if ema else "student"])
    return teacher.to(device).eval(), student.to(device).eval()


def load_distill_models(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
                        ) -> tuple[Teacher, Student, dict[str, Any]]:
    """:func:`distill_models` of the checkpoint at ``path``, and the record."""
    record = load_checkpoint(path, map_location=device)
    return (*distill_models(record, ema, device, f"checkpoint {path}"), record)


def variable_dict(values: torch.Tensor) -> dict[str, float]:
    """``{"sst": ., "msl": ., "z": ., "r": .}`` from a ``[4]`` tensor."""
    return dict(zip(VARIABLES, map(float, values.detach().cpu()), strict=True))
