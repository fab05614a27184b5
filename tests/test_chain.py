"""The chain's reuse rule: a finished identical step is reused, a changed one runs afresh in
its own folder, an interrupted resumable one is resumed."""

from __future__ import annotations

import json
from pathlib import Path

from mdcli.chain import Step, run_step


class FakeCommand:
    """Records argv and writes the result folder a real command would, with ``status``."""

    def __init__(self, work_dir: Path, status: str = "completed") -> None:
        self.work_dir, self.status, self.calls = work_dir, status, []

    def __call__(self, argv):
        self.calls.append(list(argv))
        if "--out" in argv:
            Path(argv[argv.index("--out") + 1]).write_text("data")
            return
        run = self.work_dir / argv[0] / argv[argv.index("--name") + 1]
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run / "checkpoints" / "last.pt").write_text("ckpt")
        (run / "summary.json").write_text(json.dumps({"status": self.status, "x": 1}))


def test_identical_finished_step_is_reused_and_a_changed_input_runs_again(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("a: 1\n")
    fake = FakeCommand(tmp_path)
    step = Step("teacher", ["train", "-c", str(config)], inputs=[config], resumable=True)
    first = run_step(step, "qs", tmp_path, fake)
    again = run_step(step, "qs", tmp_path, fake)
    assert (first.reused, again.reused, len(fake.calls)) == (False, True, 1)
    assert again.path == first.path and again.summary["x"] == 1
    config.write_text("a: 2\n")
    changed = run_step(step, "qs", tmp_path, fake)
    assert not changed.reused and changed.path != first.path and len(fake.calls) == 2
    assert (first.path / "summary.json").is_file()  # the earlier result is left alone


def test_interrupted_resumable_step_is_resumed_and_other_args_change_the_key(tmp_path):
    fake = FakeCommand(tmp_path, status="interrupted")
    step = Step("student", ["distill", "--set", "a=1"], resumable=True)
    run_step(step, "qs", tmp_path, fake)
    fake.status = "completed"
    result = run_step(step, "qs", tmp_path, fake)
    assert "--resume" not in fake.calls[0] and fake.calls[1][-1] == "--resume"
    assert not result.reused and result.summary["status"] == "completed"
    other = Step("student", ["distill", "--set", "a=2"], resumable=True)
    assert other.key() != step.key()


def test_file_step_is_keyed_into_its_output_name_and_reused_when_present(tmp_path):
    fake = FakeCommand(tmp_path)
    step = Step("data", ["data", "synth-tc", "--seed", "0"], output=tmp_path / "d" / "tc.h5")
    (tmp_path / "d").mkdir()
    first = run_step(step, "qs", tmp_path, fake)
    again = run_step(step, "qs", tmp_path, fake)
    assert first.path.name == f"tc_{step.key()[:10]}.h5" and first.path.read_text() == "data"
    assert again.reused and len(fake.calls) == 1
    seeded = Step("data", ["data", "synth-tc", "--seed", "1"], output=tmp_path / "d" / "tc.h5")
    assert run_step(seeded, "qs", tmp_path, fake).path != first.path


def test_quickstart_with_an_unusable_device_is_exit_2_before_any_step(run_cli, tmp_path):
    result = run_cli("quickstart", "--work-dir", tmp_path, "--device", "cuda:7")
    assert result.code == 2 and "--device" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
