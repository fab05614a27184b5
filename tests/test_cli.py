from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mdcli import __version__
from mdcli.cli.completion import completion_script

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_help(run_cli):
    result = run_cli("--version")
    assert result.code == 0 and result.out.strip() == f"mdcli {__version__}"
    result = run_cli("--help")
    assert result.code == 0 and "completion" in result.out and "data" in result.out


def test_unknown_command_is_usage_error(run_cli):
    result = run_cli("no-such-command")
    assert result.code == 2 and "No such command" in result.err


def test_python_dash_m_runs_the_app():
    out = subprocess.run([sys.executable, "-m", "mdcli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"mdcli {__version__}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completion_scripts_are_up_to_date(run_cli, shell):
    result = run_cli("completion", shell)
    assert result.code == 0 and "_MDCLI_COMPLETE" in result.out
    committed = (ROOT / "completions" / f"mdcli.{shell}").read_text()
    assert committed == completion_script(shell) + "\n", (
        f"completions/mdcli.{shell} is stale: "
        f"run `mdcli completion {shell} > completions/mdcli.{shell}`")


def test_completion_of_unknown_shell_is_usage_error(run_cli):
    assert run_cli("completion", "tcsh").code == 2


RUNNER = textwrap.dedent("""
    import sys, time
    from dataclasses import dataclass
    from mdcli.cli.app import app, main
    from mdcli.errors import InputError
    from mdcli.logs import log
    from mdcli.runs import start_run

    @dataclass
    class Cfg:
        seed: int = 0
        device: str = "cpu"

    @app.command("sleepy")
    def sleepy(work_dir: str, fail: str = "") -> None:
        if fail == "input":
            raise InputError("--thing: expected a positive number, got -1")
        if fail == "crash":
            raise ZeroDivisionError("division by zero")
        with start_run("sleepy", Cfg(), work_dir=work_dir, name="r"):
            log.info("started")
            print("ready", flush=True)
            time.sleep(60)

    main(sys.argv[1:])
""")


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUNNER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_gives_exit_130_and_interrupted_status(tmp_path, sig):
    proc = _spawn("sleepy", str(tmp_path))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads((tmp_path / "sleepy" / "r" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert "Traceback" not in err


def test_input_error_is_one_line_and_exit_2():
    proc = _spawn("sleepy", "x", "--fail", "input")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().splitlines() == ["mdcli: error: --thing: expected a positive number, got -1"]


def test_unexpected_failure_is_exit_1_with_traceback_only_when_verbose():
    proc = _spawn("sleepy", "x", "--fail", "crash")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err and "ZeroDivisionError" in err
    proc = _spawn("-v", "sleepy", "x", "--fail", "crash")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" in err
