"""What differs between image and text condensation: models, inputs, features, initial data.

A domain builds fresh networks, reads features from them, and makes the initial synthetic
samples of a class. Synthetic images are (n, C, H, W) (stored with multi-formation when
``factor > 1``); synthetic text is input embeddings (n, L, hidden) with attention masks.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData
from mdcli.condense.decode import check_factor, encode
from mdcli.condense.text_training import as_embeddings
from mdcli.errors import InputError
from mdcli.models.classifier import build_classifier, linear_layers, with_data_shape
from mdcli.models.mlp import ACTIVATIONS


def draw_samples(members: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` of ``members`` without replacement (with replacement if there are fewer)."""
    if count <= len(members):
        return members[torch.randperm(len(members), generator=gen)[:count]]
    return members[torch.randint(len(members), (count,), generator=gen)]


def image_features(model: nn.Module, x: torch.Tensor, layer_index: list[int]) -> list[torch.Tensor]:
    """Features of images ``x`` (N, C, H, W), each flattened to (N, d).

    Empty ``layer_index``: the network's embedding (``model.embed``, a ConvNet's conv features)
    or, without one, the input of the last linear layer. Otherwise the outputs of the
    activations numbered ``layer_index`` (1-based, in forward order).
    """
    if not layer_index and hasattr(model, "embed"):
        return [model.embed(x).flatten(1)]
    captured: dict[int, torch.Tensor] = {}
    handles = []
    if not layer_index:
        last = linear_layers(model)[-1]
        handles.append(last.register_forward_pre_hook(
            lambda _m, args: captured.__setitem__(0, args[0])))
        wanted = [0]
    else:
        acts = [m for m in model.modules() if isinstance(m, tuple(ACTIVATIONS.values()))]
        if max(layer_index) > len(acts):
            raise InputError(f"config key 'network.layer_index': {layer_index} names layers past "
                             f"the network's {len(acts)} activation layers")
        for k in layer_index:
            handles.append(acts[k - 1].register_forward_hook(
                lambda _m, _a, out, k=k: captured.__setitem__(k, out)))
        wanted = list(layer_index)
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[k].flatten(1) for k in wanted]


class ImageDomain:
    """ConvNet / MLP classifiers from ``network.model`` on image data."""

    modality = "image"

    def __init__(self, cfg: CondenseConfig, data: RealData) -> None:
        self.cfg, self.data = cfg, data
        self.sample_shape = tuple(data.x_train.shape[1:])
        self.model_cfg = with_data_shape(cfg.network.model, self.sample_shape, data.nclass)
        check_factor(self.sample_shape, cfg.condense.factor, cfg.condense.decode_type)

    def new_model(self, seed: int, arch: str | None = None) -> nn.Module:
        """A fresh network from torch seed ``seed``; ``arch`` another architecture with the
        same widths (cross-architecture evaluation)."""
        cfg = self.model_cfg if arch is None else dataclasses.replace(self.model_cfg, arch=arch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_classifier(cfg)

    def features(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
                 layer_index: list[int]) -> list[torch.Tensor]:
        return image_features(model, x, layer_index)

    def logits(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return model(x)

    def initial(self, c: int, ipc: int, init: str, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Initial stored images of class ``c`` (ipc, C, H, W) and no mask."""
        members = self.data.class_members(c)
        factor = self.cfg.condense.factor
        if init == "noise":
            real = self.data.x_train[members]
            noise = torch.randn((ipc, *self.sample_shape), generator=gen)
            return real.mean(0) + real.std(0, unbiased=False) * noise, None
        if init == "mix":
            picked = draw_samples(members, ipc * factor * factor, gen)
            return encode(self.data.x_train[picked], factor), None
        return self.data.x_train[draw_samples(members, ipc, gen)].clone(), None


class TextDomain:
    """A BERT-style encoder with a linear head; synthetic data are input embeddings."""

    modality = "text"

    def __init__(self, cfg: CondenseConfig, data: RealData) -> None:
        from mdcli.models.text import load_text_classifier

        self.cfg, self.data = cfg, data
        if cfg.condense.factor != 1:
            raise InputError(f"config key 'condense.factor': {cfg.condense.factor}, but "
                             f"multi-formation applies to images only; use 1 for text")
        if cfg.condense.init == "mix":
            raise InputError("config key 'condense.init': 'mix' shrinks factor x factor real "
                             "images into one stored image, which applies to images only; use "
                             "random or noise for text")
        self.base = load_text_classifier(cfg.network.model_path, data.nclass)
        layers = cfg.network.layer_index
        if layers and max(layers) > self.base.num_layers:
            raise InputError(f"config key 'network.layer_index': {layers} names layers past the "
                             f"encoder's {self.base.num_layers}")

    def new_model(self, seed: int) -> nn.Module:
        model = copy.deepcopy(self.base)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.head.reset_parameters()
        return model

    def features(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
                 layer_index: list[int]) -> list[torch.Tensor]:
        return model.features(as_embeddings(model, x), mask, layer_index)

    def logits(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return model(as_embeddings(model, x), mask)

    def initial(self, c: int, ipc: int, init: str, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial embeddings of class ``c`` (ipc, L, hidden) and their masks (ipc, L)."""
        members = self.data.class_members(c)
        picked = draw_samples(members, ipc, gen)
        mask = self.data.mask_train[picked].clone()
        with torch.no_grad():
            if init == "noise":
                table = self.base.encoder.get_input_embeddings().weight
                noise = torch.randn((ipc, mask.shape[1], table.shape[1]), generator=gen)
                return (table.mean(0) + table.std(0, unbiased=False) * noise,
                        torch.ones_like(mask))
            return self.base.embed_tokens(self.data.x_train[picked]).clone(), mask


def make_domain(cfg: CondenseConfig, data: RealData) -> ImageDomain | TextDomain:
    return TextDomain(cfg, data) if data.modality == "text" else ImageDomain(cfg, data)

