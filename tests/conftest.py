"""Shared fixtures: ``run_cli`` runs ``mdcli`` in-process and returns code, stdout, stderr;
``one_thread`` keeps a module's torch on one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Call ``mdcli.cli.app.main(args)`` and capture its exit code and output."""
    from mdcli.cli.app import main

    def _run(*args: object) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        code = exc.value.code if isinstance(exc.value.code, int) else 0
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP overhead on a shared CPU, also for the commands
    ``run_cli`` starts (``MDCLI_THREADS``). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before, env = torch.get_num_threads(), os.environ.get("MDCLI_THREADS")
    torch.set_num_threads(1)
    os.environ["MDCLI_THREADS"] = "1"
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("MDCLI_THREADS", None)
    else:
        os.environ["MDCLI_THREADS"] = env


@pytest.fixture
def torchrun():
    """Run ``mdcli ARGS`` under ``torchrun --standalone --nproc_per_node 2`` (gloo on CPU)."""
    src = Path(__file__).resolve().parents[1] / "src"

    def _run(*args: object, timeout: float = 200) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             "2", "-m", "mdcli", "-q", *map(str, args)],
            env=env, capture_output=True, text=True, timeout=timeout)

    return _run
