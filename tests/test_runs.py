from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import pytest
import yaml

from mdcli.logs import log, setup_logging
from mdcli.runs import resolve_run_dir, start_run


@dataclass
class Cfg:
    seed: int = 7
    device: str = "cpu"
    lr: float = 0.1


def test_result_folder_has_the_standard_layout(tmp_path):
    setup_logging()
    with start_run("train", Cfg(), work_dir=tmp_path, config_name="configs/x/demo.yml") as run:
        log.info("hello from the run")
        run.log_metrics({"epoch": 1, "loss": 0.5})
        run.log_metrics({"epoch": 2, "loss": 0.25})
        run.update_summary(eval={"dsm_loss": {"teacher": 0.1}})
        run.update_summary(eval={"dsm_loss": {"student": 0.2}})
        (run.checkpoints / "last.pt").write_bytes(b"x")
        run.figures, run.cache  # noqa: B018 - created on first use
    assert run.path.parent == tmp_path / "train"
    assert re.fullmatch(r"demo_\d{8}-\d{6}", run.path.name)
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "meta.json", "log.txt", "metrics.jsonl", "summary.json",
            "checkpoints", "figures", "cache"} <= names
    assert yaml.safe_load((run.path / "config.yaml").read_text()) == {
        "seed": 7, "device": "cpu", "lr": 0.1}
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["eval"]["dsm_loss"] == {"teacher": 0.1, "student": 0.2}
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 7 and meta["end"]
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert "hello from the run" in (run.path / "log.txt").read_text()


def test_failure_and_interrupt_are_recorded(tmp_path):
    with pytest.raises(ValueError):
        with start_run("x", Cfg(), work_dir=tmp_path, name="bad"):
            raise ValueError("broken input")
    summary = json.loads((tmp_path / "x" / "bad" / "summary.json").read_text())
    assert summary["status"] == "failed" and "broken input" in summary["error"]
    with pytest.raises(KeyboardInterrupt):
        with start_run("x", Cfg(), work_dir=tmp_path, name="stop"):
            raise KeyboardInterrupt
    summary = json.loads((tmp_path / "x" / "stop" / "summary.json").read_text())
    assert summary["status"] == "interrupted"


def test_reopening_a_named_run_keeps_its_summary_and_metrics(tmp_path):
    with start_run("x", Cfg(), work_dir=tmp_path, name="r") as run:
        run.log_metrics({"step": 1})
        run.update_summary(best=1.0)
    with start_run("x", Cfg(), work_dir=tmp_path, name="r") as run:
        run.log_metrics({"step": 2})
    assert json.loads((run.path / "summary.json").read_text())["best"] == 1.0
    assert len((run.path / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((run.path / "meta.json").read_text())["resumed"] is True


def test_non_main_rank_writes_nothing(tmp_path):
    with start_run("x", Cfg(), work_dir=tmp_path, name="r", enabled=False) as run:
        run.log_metrics({"a": 1})
        run.update_summary(a=1)
        run.checkpoints  # noqa: B018
    assert not (tmp_path / "x").exists()


def test_timestamped_names_do_not_collide(tmp_path):
    first = resolve_run_dir(tmp_path, "x", None, "a.yml")
    first.mkdir(parents=True)
    assert resolve_run_dir(tmp_path, "x", None, "a.yml") != first


def test_log_file_has_no_ansi_codes(tmp_path):
    setup_logging()
    with start_run("x", Cfg(), work_dir=tmp_path, name="r"):
        logging.getLogger("mdcli").warning("careful")
    text = (tmp_path / "x" / "r" / "log.txt").read_text()
    assert "careful" in text and "\x1b[" not in text
