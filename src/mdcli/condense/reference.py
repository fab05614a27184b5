"""Loading NCFM reference YAML files (``config/ipc10/cifar10.yaml``, ``reuters.yaml``) as is.

A config is taken for a reference file when it has one of the reference's own keys
(``dataset.dataset``, ``dataset.data_dir``, ``network.net_type``, ``train``, ``save_path``,
``distibution_train``). Then the keys mdcli understands are translated (``dataset.dataset``
-> ``dataset.source``; ``network.net_type`` BERT -> text modality, convnet / mlp ->
``network.model.arch``), every key mdcli does not use is dropped and all of them are named in
one warning. mdcli's own configs stay strict: an unknown key there is an error.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from mdcli.condense.config import CondenseConfig
from mdcli.config import apply_override, from_dict, read_yaml, resolve_config_path
from mdcli.logs import log

MARKERS = (("dataset", "dataset"), ("dataset", "data_dir"), ("network", "net_type"),
           ("train",), ("save_path",), ("distibution_train",))


def is_reference(raw: dict) -> bool:
    """Whether ``raw`` has one of the reference's own keys."""
    def has(path: tuple[str, ...]) -> bool:
        node: Any = raw
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True
    return any(has(m) for m in MARKERS)


def _translate(raw: dict) -> dict:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    dataset, network = raw.get("dataset"), raw.get("network")
    if isinstance(dataset, dict) and "dataset" in dataset and "source" not in dataset:
        dataset["source"] = dataset.pop("dataset")
    if isinstance(network, dict) and "net_type" in network:
        net = str(network["net_type"]).lower()
        if net == "bert":
            network.pop("net_type")
            raw.setdefault("dataset", {}).setdefault("modality", "text")
            condense = raw.setdefault("condense", {})
            if "init" not in condense:  # the reference's default 'mix' is for images only
                condense["init"] = "random"
                log.info("reference config with net_type BERT: condense.init set to random")
        elif net in ("convnet", "mlp"):
            network.pop("net_type")
            network.setdefault("model", {}).setdefault("arch", net)
    return raw


def _split_known(raw: dict, schema: type, prefix: str, unused: list[str]) -> dict:
    """``raw`` without the keys ``schema`` lacks (their dotted names go to ``unused``)."""
    hints = typing.get_type_hints(schema)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(schema)}
    kept = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in fields:
            unused.append(name)
        elif dataclasses.is_dataclass(fields[key]) and isinstance(value, dict):
            kept[key] = _split_known(value, fields[key], f"{name}.", unused)
        else:
            kept[key] = value
    return kept


def adapt_reference(raw: dict) -> dict:
    """A reference mapping translated to mdcli's schema, unused keys dropped (one warning)."""
    unused: list[str] = []
    kept = _split_known(_translate(raw), CondenseConfig, "", unused)
    if unused:
        log.warning("reference NCFM config: mdcli does not use %s", ", ".join(unused))
    return kept


def load_condense_config(source: str | Path, overrides: list[str]) -> CondenseConfig:
    """``--config`` (mdcli's or a reference file) with ``--set``-style ``overrides``."""
    raw = read_yaml(resolve_config_path(source))
    if is_reference(raw):
        raw = adapt_reference(raw)
    for override in overrides:
        apply_override(raw, override)
    return from_dict(CondenseConfig, raw)
