"""The cron and Slurm scripts in examples/: they parse, build the command lines docs/pipelines.md
describes (fake mdcli, torchrun, srun and scontrol first on PATH, so these tests take
milliseconds), act on the exit codes, and the single-node sbatch script really trains with two
CPU processes without Slurm."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NIGHTLY = EXAMPLES / "nightly_check.sh"
SLURM = EXAMPLES / "slurm"
SCRIPTS = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".sh", ".sbatch"))
SEP = "\x1f"  # the fakes write one line per call, arguments separated by this

# A fake command: appends its name and arguments to $FAKE_LOG, then runs the per-command part.
FAKE_HEAD = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\037%s' "$a"; done; echo; } \
    >> "$FAKE_LOG"
"""
FAKES = {
    "mdcli": """for cmd in "$@"; do case "$cmd" in tsne|align|agop) break ;; esac; done
case "$cmd" in
  tsne) exit "${FAKE_TSNE_RC:-0}" ;;
  align) [ -z "$FAKE_GRADE" ] || printf '{"grade": "%s", "sets": {"16": {"grade": "%s"}}}\\n' \
             "$FAKE_GRADE" "$FAKE_GRADE"
         exit "${FAKE_ALIGN_RC:-0}" ;;
  agop) exit "${FAKE_AGOP_RC:-0}" ;;
esac
exit 99
""",
    # writes $FAKE_SUMMARY (a run's summary.json) with status $FAKE_STATUS, like rank 0 would
    "torchrun": """if [ -n "$FAKE_STATUS" ]; then
  mkdir -p "$(dirname "$FAKE_SUMMARY")"
  printf '{"status": "%s"}\\n' "$FAKE_STATUS" > "$FAKE_SUMMARY"
fi
exit "${FAKE_TORCHRUN_RC:-0}"
""",
    # srun OPTIONS... COMMAND ARGS...: runs the command
    "srun": """while [ "${1#-}" != "$1" ]; do shift; done
exec "$@"
""",
    "scontrol": 'printf "node-a\\nnode-b\\n"\n',
    "logger": "exit 0\n",
}


def _parses(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_script_parses_and_is_documented(script):
    assert _parses(script).returncode == 0, _parses(script).stderr
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert os.access(script, os.X_OK), f"chmod +x {script}"
    assert f"examples/{script.relative_to(EXAMPLES)}" in (ROOT / "docs/pipelines.md").read_text()
    if script.suffix == ".sbatch":
        # sbatch reads #SBATCH lines only above the first command
        first_command = next(i for i, line in enumerate(lines)
                             if line.strip() and not line.startswith("#"))
        assert not [line for line in lines[first_command:] if line.startswith("#SBATCH")]
        assert any(line.startswith("#SBATCH") for line in lines)


def test_every_example_the_docs_name_exists_and_every_script_is_documented():
    root = EXAMPLES.parent
    text = "\n".join(p.read_text(encoding="utf-8")
                     for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    named = set(re.findall(r"examples/[A-Za-z0-9_./-]*[A-Za-z0-9_]", text))
    missing = sorted(n for n in named if not (root / n).exists())
    assert not missing, f"docs name examples that do not exist: {missing}"
    undocumented = sorted(str(p.relative_to(root)) for p in SCRIPTS
                          if str(p.relative_to(root)) not in named)
    assert not undocumented, f"example scripts no doc names: {undocumented}"


def test_bash_n_catches_a_broken_script(tmp_path):
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/usr/bin/env bash\nif true; then\n  echo missing fi\n")
    assert _parses(broken).returncode != 0


@pytest.fixture
def fakes(tmp_path):
    """A bin folder of fake commands (first on PATH) and a reader of the calls they logged."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text(FAKE_HEAD + body)
        path.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MDCLI_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", FAKE_LOG=str(log),
               MDCLI_PYTHON=sys.executable)

    def calls() -> list[list[str]]:
        if not log.exists():
            return []
        return [line.split(SEP) for line in log.read_text().splitlines()]

    return env, calls, bin_dir


def _run(script: Path, env: dict, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env={**env, **extra_env},
                          capture_output=True, text=True, timeout=60)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# ---------------------------------------------------------------------------------------------
# nightly_check.sh


@pytest.fixture
def work(tmp_path):
    """A work dir (with a space in its path) holding two distill runs; `new` is the newer."""
    root = tmp_path / "work dir"
    for name, mtime in (("new", 2_000_000_000), ("zzz_old", 1_000_000_000)):
        ckpt = root / "distill" / name / "checkpoints" / "last.pt"
        ckpt.parent.mkdir(parents=True)
        ckpt.write_bytes(b"")
        os.utime(ckpt, (mtime, mtime))
    return root


def _nightly(env, work, tmp_path, **extra):
    alerts = tmp_path / "alerts.log"
    result = _run(NIGHTLY, env, MDCLI_WORK_DIR=str(work),
                  MDCLI_ALERT_CMD='printf "%s|%s|%s\\n" "$1" "$2" "$(cat)" >> "$ALERT_LOG"',
                  ALERT_LOG=str(alerts), **extra)
    sent = alerts.read_text().splitlines() if alerts.exists() else []
    return result, sent


@pytest.mark.parametrize("align_rc, grade, code, alert", [
    (0, "good", 0, None),
    (3, "poor", 3, "alignment below good"),
    (2, "", 2, "align: bad input"),
    (1, "", 1, "align failed"),
    (130, "", 130, "align: interrupted"),
])
def test_nightly_check_alerts_on_the_align_exit_code(fakes, work, tmp_path, align_rc, grade,
                                                     code, alert):
    env, calls, _ = fakes
    result, sent = _nightly(env, work, tmp_path, FAKE_ALIGN_RC=str(align_rc), FAKE_GRADE=grade)
    assert result.returncode == code, result.stderr
    newest = str(work / "distill" / "new" / "checkpoints" / "last.pt")
    (tsne, align) = calls()
    assert tsne[:4] == ["mdcli", "tsne", "--ckpt", newest]
    assert align[:4] == ["mdcli", "align", "--ckpt", newest]
    assert _option(align, "--fail-under") == "good" and "--json" in align
    assert _option(align, "--work-dir") == str(work)
    assert _option(tsne, "--name") == _option(align, "--name")
    assert _option(align, "--name").startswith("nightly_new_")
    if alert is None:
        assert sent == []
        assert "grade good" in result.stderr
    else:
        assert len(sent) == 1, sent
        subject, message, stdin = sent[0].split("|")
        assert subject == f"mdcli nightly check: {alert}"
        assert message == stdin and newest in message
    if align_rc == 3:
        assert "grade poor (16 poor)" in message and "alignment.json" in message


def test_nightly_check_stops_after_a_failed_tsne(fakes, work, tmp_path):
    env, calls, _ = fakes
    result, sent = _nightly(env, work, tmp_path, FAKE_TSNE_RC="1")
    assert result.returncode == 1
    assert [call[1] for call in calls()] == ["tsne"]
    assert len(sent) == 1 and sent[0].startswith("mdcli nightly check: tsne failed|")


def test_nightly_check_alerts_when_there_is_no_checkpoint(fakes, tmp_path):
    env, calls, _ = fakes
    empty = tmp_path / "empty"
    (empty / "distill" / "run" / "checkpoints").mkdir(parents=True)
    result, sent = _nightly(env, empty, tmp_path)
    assert result.returncode == 2
    assert calls() == []
    assert len(sent) == 1 and "no checkpoint" in sent[0]
    result, sent = _nightly(env, tmp_path / "missing", tmp_path)
    assert result.returncode == 2 and "no such folder" in sent[-1]


def test_nightly_check_default_alert_goes_to_stderr_and_syslog(fakes, work):
    env, calls, _ = fakes
    result = _run(NIGHTLY, env, MDCLI_WORK_DIR=str(work), FAKE_ALIGN_RC="3", FAKE_GRADE="poor",
                  MDCLI_FAIL_UNDER="excellent")
    assert result.returncode == 3
    assert "ALERT mdcli nightly check: alignment below excellent" in result.stderr
    logger = [call for call in calls() if call[0] == "logger"]
    assert len(logger) == 1 and "-t" in logger[0] and "grade poor" in logger[0][-1]
    assert _option(calls()[1], "--fail-under") == "excellent"


def test_nightly_check_keeps_its_exit_code_when_the_alert_command_fails(fakes, work):
    env, _, _ = fakes
    result = _run(NIGHTLY, env, MDCLI_WORK_DIR=str(work), FAKE_ALIGN_RC="3", FAKE_GRADE="poor",
                  MDCLI_ALERT_CMD="exit 7")
    assert result.returncode == 3
    assert "the alert command failed" in result.stderr


def test_nightly_check_passes_extra_arguments_without_expanding_them(fakes, work, tmp_path):
    env, calls, _ = fakes
    result, _ = _nightly(env, work, tmp_path, MDCLI_DEVICE="cpu",
                         MDCLI_TSNE_ARGS="--perplexity 5 --save-dir 'figs of $HOME'",
                         MDCLI_ALIGN_ARGS='--set "data.path=/data/a b.h5" $(touch PWNED) *',
                         FAKE_GRADE="good")
    assert result.returncode == 0, result.stderr
    tsne, align = calls()
    assert tsne[-4:] == ["--perplexity", "5", "--save-dir", "figs of $HOME"]
    assert align[-4:] == ["data.path=/data/a b.h5", "$(touch", "PWNED)", "*"]
    assert _option(tsne, "--device") == "cpu" == _option(align, "--device")
    assert not list(tmp_path.rglob("PWNED"))


def test_nightly_check_rejects_unbalanced_quotes(fakes, work, tmp_path):
    env, calls, _ = fakes
    result, sent = _nightly(env, work, tmp_path, MDCLI_ALIGN_ARGS="--set 'a=b")
    assert result.returncode == 2 and calls() == []
    assert "unbalanced quotes" in sent[0]


def test_nightly_check_finds_mdcli_from_MDCLI_BIN(fakes, work, tmp_path):
    env, calls, bin_dir = fakes
    result, _ = _nightly(env, work, tmp_path, FAKE_GRADE="good",
                         MDCLI_BIN=f"{shlex.quote(str(bin_dir / 'mdcli'))} --flag")
    assert result.returncode == 0, result.stderr
    assert [call[1:3] for call in calls()] == [["--flag", "tsne"], ["--flag", "align"]]


# ---------------------------------------------------------------------------------------------
# Slurm scripts (fake srun, scontrol and torchrun)


@pytest.fixture
def teacher(tmp_path):
    path = tmp_path / "t dir" / "last.pt"
    path.parent.mkdir()
    path.write_bytes(b"")
    return path


def _distill_env(tmp_path, teacher, **extra):
    return {"MDCLI_WORK_DIR": str(tmp_path / "w"), "MDCLI_TEACHER": str(teacher),
            "MDCLI_CONFIG": "distill/tc_tiny", **extra}


def test_distill_1node_runs_torchrun_here_without_slurm(fakes, tmp_path, teacher):
    env, calls, _ = fakes  # srun is on PATH, but this is no Slurm job
    result = _run(SLURM / "distill_1node.sbatch", env, "--seed", "3",
                  **_distill_env(tmp_path, teacher, MDCLI_NPROC="2", MDCLI_DEVICE="cpu",
                                 MDCLI_RUN_NAME="r1",
                                 MDCLI_EXTRA_ARGS="--set 'data.path=/d/a b.h5' --set x=$HOME"))
    assert result.returncode == 0, result.stderr
    (torchrun,) = calls()
    assert torchrun == ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=2",
                        "-m", "mdcli", "distill", "--work-dir", str(tmp_path / "w"),
                        "--name", "r1", "--config", "distill/tc_tiny", "--teacher", str(teacher),
                        "--device", "cpu", "--set", "data.path=/d/a b.h5", "--set", "x=$HOME",
                        "--seed", "3"]


def test_distill_1node_under_slurm_runs_srun_torchrun(fakes, tmp_path, teacher):
    env, calls, _ = fakes
    slurm = {"SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "mdcli-distill", "SLURM_GPUS_ON_NODE": "4",
             "SLURM_CPUS_PER_TASK": "32"}
    result = _run(SLURM / "distill_1node.sbatch", env, **slurm, **_distill_env(tmp_path, teacher))
    assert result.returncode == 0, result.stderr
    srun, torchrun = calls()
    assert srun[0] == "srun" and srun[srun.index("torchrun") + 1:] == torchrun[1:]
    assert "--nproc_per_node=4" in torchrun
    assert _option(torchrun, "--name") == "mdcli-distill_42"
    assert "--device" not in torchrun
    calls_before = len(calls())
    local = _run(SLURM / "distill_1node.sbatch", env, MDCLI_LAUNCHER="local", **slurm,
                 **_distill_env(tmp_path, teacher, MDCLI_RUN_NAME="r2"))
    assert local.returncode == 0 and [c[0] for c in calls()[calls_before:]] == ["torchrun"]


def test_distill_2nodes_meets_at_the_first_node_of_the_job(fakes, tmp_path, teacher):
    env, calls, _ = fakes
    result = _run(SLURM / "distill_2nodes.sbatch", env, SLURM_JOB_ID="7", SLURM_NNODES="2",
                  SLURM_JOB_NODELIST="node-[a-b]", SLURM_GPUS_ON_NODE="4",
                  **_distill_env(tmp_path, teacher))
    assert result.returncode == 0, result.stderr
    scontrol, srun, torchrun = calls()
    assert scontrol == ["scontrol", "show", "hostnames", "node-[a-b]"]
    assert "--nodes=2" in srun and "--ntasks-per-node=1" in srun
    assert torchrun[1:14] == ["--nnodes=2", "--nproc_per_node=4", "--rdzv_id", "7",
                              "--rdzv_backend", "c10d", "--rdzv_endpoint", "node-a:29500",
                              "-m", "mdcli", "distill", "--work-dir", str(tmp_path / "w")]
    here = _run(SLURM / "distill_2nodes.sbatch", env, MDCLI_MASTER_PORT="29601",
                **_distill_env(tmp_path, teacher, MDCLI_RUN_NAME="here"))
    assert here.returncode == 0, here.stderr
    assert calls()[-1][1:9] == ["--nnodes=1", "--nproc_per_node=1", "--rdzv_id", "local",
                                "--rdzv_backend", "c10d", "--rdzv_endpoint", "127.0.0.1:29601"]


@pytest.mark.parametrize("script", ["distill_1node.sbatch", "distill_2nodes.sbatch",
                                    "sweep_array.sbatch"])
@pytest.mark.parametrize("status, code", [("interrupted", 130), ("failed", 1), ("", 1)])
def test_sbatch_restores_the_exit_code_torchrun_hides(fakes, tmp_path, teacher, script, status,
                                                      code):
    env, _, _ = fakes
    name = "sweep_0" if script.startswith("sweep") else "r"
    result = _run(SLURM / script, env, FAKE_TORCHRUN_RC="1", FAKE_STATUS=status,
                  FAKE_SUMMARY=str(tmp_path / "w" / "distill" / name / "summary.json"),
                  **_distill_env(tmp_path, teacher, MDCLI_RUN_NAME=name))
    assert result.returncode == code, result.stderr
    assert f"run status: {status or 'none'}" in result.stderr


def test_distill_1node_resumes_or_skips_an_existing_run(fakes, tmp_path, teacher):
    env, calls, _ = fakes
    run = tmp_path / "w" / "distill" / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    (run / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    options = _distill_env(tmp_path, teacher, MDCLI_RUN_NAME="r")
    result = _run(SLURM / "distill_1node.sbatch", env, "--set", "train.epochs=9", **options)
    assert result.returncode == 0, result.stderr
    argv = calls()[-1]
    assert argv[argv.index("distill"):] == ["distill", "--work-dir", str(tmp_path / "w"),
                                            "--name", "r", "--resume", "--set", "train.epochs=9"]
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    done = _run(SLURM / "distill_1node.sbatch", env, **options)
    assert done.returncode == 0 and "completed already" in done.stderr and len(calls()) == 1
    forced = _run(SLURM / "distill_1node.sbatch", env, MDCLI_RESUME="1", **options)
    assert forced.returncode == 0 and "--resume" in calls()[-1]
    fresh = _run(SLURM / "distill_1node.sbatch", env, MDCLI_RESUME="0", **options)
    assert fresh.returncode == 0 and "--resume" not in calls()[-1]  # mdcli then refuses: exit 2


@pytest.mark.parametrize("options, message", [
    ({"MDCLI_TEACHER": "/nowhere/last.pt"}, "no such checkpoint"),
    ({"MDCLI_LAUNCHER": "mpirun"}, "expected auto, srun or local"),
    ({"MDCLI_NPROC": "two"}, "expected a positive number"),
    ({"MDCLI_EXTRA_ARGS": "--set 'a=b"}, "unbalanced quotes"),
    ({"MDCLI_RESUME": "1"}, "to resume from"),
])
def test_distill_1node_rejects_bad_settings_before_starting(fakes, tmp_path, teacher, options,
                                                            message):
    env, calls, _ = fakes
    result = _run(SLURM / "distill_1node.sbatch", env, **{**_distill_env(tmp_path, teacher),
                                                          **options})
    assert result.returncode == 2
    assert message in result.stderr and calls() == []


def test_sweep_array_task_runs_its_overrides_under_its_index(fakes, tmp_path, teacher):
    env, calls, _ = fakes
    result = _run(SLURM / "sweep_array.sbatch", env, SLURM_JOB_ID="9", SLURM_ARRAY_TASK_ID="4",
                  **_distill_env(tmp_path, teacher))
    assert result.returncode == 0, result.stderr
    torchrun = calls()[-1]
    assert torchrun[torchrun.index("distill"):] == [
        "distill", "--work-dir", str(tmp_path / "w"), "--name", "sweep_4",
        "--config", "distill/tc_tiny", "--set", "loss.feat=10", "--set", "loss.causal=0",
        "--teacher", str(teacher)]
    listing = _run(SLURM / "sweep_array.sbatch", env, MDCLI_SWEEP_LIST="1")
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert [row[1] for row in rows] == [f"sweep_{i}" for i in range(6)]
    assert {row[2] for row in rows} == {f"loss.feat={f} loss.causal={c}"
                                        for f in (0, 1, 10) for c in (0, 1)}
    outside = _run(SLURM / "sweep_array.sbatch", env, SLURM_ARRAY_TASK_ID="6",
                   **_distill_env(tmp_path, teacher))
    assert outside.returncode == 2 and "6 tasks, 0-5" in outside.stderr


def test_sweep_array_reads_a_sweep_file_and_trains_classifiers(fakes, tmp_path):
    env, calls, _ = fakes
    sweep = tmp_path / "opt.sweep"
    sweep.write_text("# optimizers\n\noptim.name=sgd 'optim.lr=0.5'\n  optim.name=adam\n")
    result = _run(SLURM / "sweep_array.sbatch", env, MDCLI_COMMAND="train",
                  MDCLI_SWEEP_FILE=str(sweep), MDCLI_SWEEP_NAME="opt", MDCLI_TASK_ID="0",
                  MDCLI_WORK_DIR=str(tmp_path / "w"), MDCLI_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    torchrun = calls()[-1]
    assert torchrun[torchrun.index("train"):] == [
        "train", "--work-dir", str(tmp_path / "w"), "--name", "opt_0",
        "--config", "train/mlp_digits_adam", "--set", "optim.name=sgd", "--set", "optim.lr=0.5",
        "--device", "cpu"]
    default = _run(SLURM / "sweep_array.sbatch", env, MDCLI_COMMAND="train", MDCLI_SWEEP_LIST="1")
    assert [row.split("\t")[2].split()[0] for row in default.stdout.splitlines()] == [
        "optim.name=sgd", "optim.name=adam", "optim.name=muon"]
    sweep.write_text("optim.name=sgd lr\n")
    bad = _run(SLURM / "sweep_array.sbatch", env, MDCLI_COMMAND="train",
               MDCLI_SWEEP_FILE=str(sweep))
    assert bad.returncode == 2 and "'lr' is not key=value" in bad.stderr


def _classifier_runs(root: Path, statuses: dict[str, str]) -> None:
    for name, status in statuses.items():
        (root / "train" / name).mkdir(parents=True)
        (root / "train" / name / "summary.json").write_text(json.dumps({"status": status}))


def test_agop_sweep_analyses_the_completed_runs_in_task_order(fakes, tmp_path):
    env, calls, _ = fakes
    work = tmp_path / "w"
    _classifier_runs(work, {"sweep_0": "completed", "sweep_1": "failed", "sweep_2": "completed",
                            "sweep_10": "completed", "other_0": "completed"})
    result = _run(SLURM / "agop_sweep.sbatch", env, "--epochs", "1,2", MDCLI_WORK_DIR=str(work),
                  MDCLI_DEVICE="cpu", SLURM_JOB_ID="5", SLURM_CPUS_PER_TASK="8")
    assert result.returncode == 0, result.stderr
    srun, agop = calls()
    assert srun[0] == "srun"
    assert agop == ["mdcli", "agop", "--models", "sweep_0", "sweep_2", "sweep_10",
                    "--experiments-dir", str(work / "train"), "--work-dir", str(work),
                    "--name", "agop_sweep", "--device", "cpu", "--epochs", "1,2"]
    assert "skipping" in result.stderr and "sweep_1" in result.stderr
    chosen = _run(SLURM / "agop_sweep.sbatch", env, MDCLI_WORK_DIR=str(work),
                  MDCLI_MODELS="other_0 sweep_1", FAKE_AGOP_RC="2")
    assert chosen.returncode == 2
    assert calls()[-1][:5] == ["mdcli", "agop", "--models", "other_0", "sweep_1"]
    none = _run(SLURM / "agop_sweep.sbatch", env, MDCLI_WORK_DIR=str(work),
                MDCLI_SWEEP_NAME="absent")
    assert none.returncode == 2 and "no completed run" in none.stderr


# ---------------------------------------------------------------------------------------------
# The real thing: a tiny teacher, distill_1node.sbatch with 2 CPU processes, the nightly check

SMALL = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
         "--set", "train.batch_size=4", "--set", "eval.max_samples=4",
         "--set", "eval.noise_levels=2", "--set", "sampling.method=ddim",
         "--set", "sampling.steps=2", "--set", "sampling.num_samples=2"]
TINY_MODEL = ["--set", "model.ch=8", "--set", "model.enc_channels=8", "--set", "model.dim_head=4",
              "--set", "model.enc_base_channels=4"]


def _real_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MDCLI_"))}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = f"{src}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else src
    return env


def _mdcli(*args: object, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "mdcli", "-q", *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """A teacher trained for 2 steps, then distilled by distill_1node.sbatch: 2 gloo ranks."""
    root = tmp_path_factory.mktemp("pipeline")
    work, data = root / "work dir", root / "data dir" / "tc.h5"
    env = _real_env()
    _mdcli("data", "synth-tc", "--out", data, "--n-storms", "20", "--frames", "6", env=env)
    _mdcli("train", "-c", "train/tc_teacher_tiny", "--work-dir", work, "--name", "teacher",
           "--device", "cpu", "--set", f"data.path={data}", *SMALL, *TINY_MODEL, env=env)
    teacher = work / "train" / "teacher" / "checkpoints" / "last.pt"
    assert teacher.is_file()
    env.update(MDCLI_CONFIG="distill/tc_tiny", MDCLI_TEACHER=str(teacher),
               MDCLI_WORK_DIR=str(work), MDCLI_RUN_NAME="student", MDCLI_DEVICE="cpu",
               MDCLI_NPROC="2", MDCLI_PYTHON=sys.executable,
               MDCLI_TORCHRUN=shlex.join([sys.executable, "-m", "torch.distributed.run"]),
               MDCLI_EXTRA_ARGS=shlex.join(["--set", f"data.path={data}", *SMALL]))
    result = subprocess.run(["bash", str(SLURM / "distill_1node.sbatch"),
                             "--set", "eval.baseline=false"], env=env, capture_output=True,
                            text=True, timeout=300)
    return work, data, result


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_distill_1node_sbatch_trains_with_two_cpu_processes_without_slurm(distilled):
    work, data, result = distilled
    assert result.returncode == 0, result.stderr[-3000:]
    (launch,) = [line for line in result.stderr.splitlines()
                 if line.startswith("distill_1node.sbatch: ") and "--nproc_per_node=2" in line]
    assert "torch.distributed.run --standalone" in launch and " srun " not in launch
    run = work / "distill" / "student"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == 2 and set(summary["eval"]["clean_estimate"]) == {
        "teacher", "teacher_other_storm_era5", "teacher_zero_era5", "teacher_no_era5",
        "student", "persistence", "extrapolation"}
    config = (run / "config.yaml").read_text()
    assert str(data) in config and "baseline: false" in config
    assert (run / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_nightly_check_grades_the_newest_real_checkpoint(distilled, tmp_path):
    work, _, result = distilled
    assert result.returncode == 0
    alerts = tmp_path / "alerts.log"
    env = {**_real_env(), "MDCLI_WORK_DIR": str(work), "MDCLI_DEVICE": "cpu",
           "MDCLI_PYTHON": sys.executable,
           "MDCLI_BIN": shlex.join([sys.executable, "-m", "mdcli"]),
           "MDCLI_TSNE_ARGS": "--max-samples 8 --perplexity 3 --n-iter 300",
           "MDCLI_ALIGN_ARGS": "--max-samples 8",
           "MDCLI_ALERT_CMD": 'printf "%s\\n" "$1" >> "$ALERT_LOG"', "ALERT_LOG": str(alerts)}
    nightly = subprocess.run(["bash", str(NIGHTLY)], env=env, capture_output=True, text=True,
                             timeout=300)
    (align_dir,) = (work / "align").iterdir()
    (tsne_dir,) = (work / "tsne").iterdir()
    assert json.loads((tsne_dir / "summary.json").read_text())["status"] == "completed"
    assert len(list(tsne_dir.glob("tsne_*_features.png"))) == 4
    report = json.loads((align_dir / "alignment.json").read_text())
    assert report["source"]["ckpt"] == str(work / "distill" / "student" / "checkpoints" / "last.pt")
    # a 2-step student is graded by the script exactly as align graded it
    below = report["grade"] not in ("good", "excellent")
    assert nightly.returncode == (3 if below else 0), nightly.stderr[-3000:]
    sent = alerts.read_text().splitlines() if alerts.exists() else []
    assert sent == (["mdcli nightly check: alignment below good"] if below else [])


def test_shellcheck_is_clean_where_installed():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(["shellcheck", "-S", "warning", *map(str, SCRIPTS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
