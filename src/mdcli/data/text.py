"""Text classification data: JSONL / CSV files with ``text`` and ``labels``, multi-label.

A JSONL line is ``{"text": "...", "labels": ["earn", "acq"]}`` (a list, or one label); a CSV
file has a header with the two columns and labels separated by ``;``. Labels may be names or
integers. ``'topics'`` is a built-in generated multi-label corpus (five topics, one or two per
document) for tests and tiny examples, in the same form a file gives.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_write_text

TEXT_SUFFIXES = (".jsonl", ".csv")
CSV_LABEL_SEPARATOR = ";"
TOPICS: dict[str, list[str]] = {
    "sports": "match goal team coach league score season player referee stadium".split(),
    "finance": "market stock bank profit shares investor earnings dividend bond trade".split(),
    "weather": "rain storm wind forecast cloud temperature humidity snow sunny flood".split(),
    "science": "experiment theory physics molecule laboratory research data cell atom lens".split(),
    "music": "guitar concert album song melody rhythm band singer piano chorus".split(),
}
FILLER = "the a of and to in on with for today report said new was is about".split()


@dataclass
class TextCorpus:
    """Documents and their label vectors ``labels (N, C)`` (0/1 float32) over ``classes``."""

    texts: list[str]
    labels: np.ndarray
    classes: list[str]


def generate_topics(n: int = 400, seed: int = 0,
                    length: int = 14) -> tuple[list[str], list[list[str]]]:
    """``n`` documents, each mixing the words of one or two topics with filler words."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    texts, labels = [], []
    for _ in range(n):
        k = 1 + int(rng.random() < 0.35)
        chosen = [names[i] for i in sorted(rng.choice(len(names), size=k, replace=False))]
        vocab = [w for name in chosen for w in TOPICS[name]]
        words = [str(rng.choice(vocab)) if rng.random() < 0.6 else str(rng.choice(FILLER))
                 for _ in range(length)]
        texts.append(" ".join(words))
        labels.append(chosen)
    return texts, labels


def write_jsonl(path: str | Path, texts: list[str], labels: list[list[str]]) -> Path:
    """Write documents as JSONL lines ``{"text": ..., "labels": [...]}``."""
    path = Path(path)
    lines = [json.dumps({"text": t, "labels": y}) for t, y in zip(texts, labels, strict=True)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _as_label_list(value: object, where: str) -> list[str]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"{where}: 'labels' must be a label or a list of labels, got {value!r}")


def read_text_file(path: str | Path, text_key: str = "text",
                   labels_key: str = "labels") -> tuple[list[str], list[list[str]]]:
    """Documents and their label lists from a ``.jsonl`` or ``.csv`` file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"text data file not found: {path} (expected .jsonl or .csv)")
    suffix = path.suffix.lower()
    texts, labels = [], []
    if suffix == ".jsonl":
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{where}: not valid JSON") from None
            if not isinstance(record, dict) or text_key not in record or labels_key not in record:
                raise InputError(f"{where}: expected an object with '{text_key}' and "
                                 f"'{labels_key}'")
            texts.append(str(record[text_key]))
            labels.append(_as_label_list(record[labels_key], where))
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [k for k in (text_key, labels_key) if k not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{path}: no column '{missing[0]}' in the CSV header")
            for row in reader:
                texts.append(row[text_key])
                labels.append([s.strip() for s in row[labels_key].split(CSV_LABEL_SEPARATOR)
                               if s.strip()])
    else:
        raise InputError(f"config key 'dataset.source': {path} has suffix {suffix!r}, expected "
                         f"'topics', .jsonl or .csv")
    if not texts:
        raise InputError(f"{path}: no documents")
    return texts, labels


def to_corpus(texts: list[str], labels: list[list[str]],
              classes: list[str] | None = None) -> TextCorpus:
    """Label lists -> 0/1 label vectors over ``classes`` (default: the sorted label names)."""
    names = classes or sorted({y for ys in labels for y in ys},
                              key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(texts), len(names)), dtype=np.float32)
    for row, ys in enumerate(labels):
        for y in ys:
            if y not in index:
                raise InputError(f"text data: label {y!r} of document {row} is not one of the "
                                 f"training labels {names}")
            matrix[row, index[y]] = 1.0
    return TextCorpus(list(texts), matrix, list(names))


def load_text_corpus(source: str, text_key: str = "text", labels_key: str = "labels",
                     classes: list[str] | None = None, seed: int = 0) -> TextCorpus:
    """``'topics'`` (generated with ``seed``) or a JSONL / CSV file, as a :class:`TextCorpus`."""
    if source == "topics":
        texts, labels = generate_topics(seed=seed)
        return to_corpus(texts, labels, classes or list(TOPICS))
    return to_corpus(*read_text_file(source, text_key, labels_key), classes)
