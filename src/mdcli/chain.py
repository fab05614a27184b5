"""A chain of mdcli commands whose finished steps are reused.

Each :class:`Step` is one command line. Its key is a hash of the command, its arguments, the
bytes of its input files (configs, data, checkpoints) and the mdcli version, so a step whose
config or inputs changed runs again in a fresh folder, and an unchanged one is reused. A step
writes its normal result folder, named ``<chain>_<step>_<key[:10]>``; a step that was
interrupted part-way is resumed from its last checkpoint when its command supports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mdcli import __version__
from mdcli.runs import STATUS_COMPLETED
from mdcli.storage.cache import cache_key, file_digest


@dataclass
class Step:
    """One command of a chain.

    ``args`` follow the command words (``["train", "-c", ...]``); ``inputs`` are the files
    whose content decides whether an earlier result can be reused; ``output`` is the file the
    step produces when it is not a run folder (``data synth-tc``), else ``None``.
    """

    name: str
    args: list[str]
    inputs: list[Path] = field(default_factory=list)
    output: Path | None = None
    resumable: bool = False

    @property
    def command(self) -> str:
        return self.args[0]

    def key(self) -> str:
        """SHA-256 of what the step does and reads."""
        return cache_key({"args": self.args, "version": __version__,
                          "inputs": [file_digest(path) for path in self.inputs]})


@dataclass
class StepResult:
    """Where a step's results are and whether this call ran it."""

    name: str
    path: Path
    reused: bool
    summary: dict


def read_summary(run_dir: Path) -> dict:
    """A run folder's ``summary.json`` (empty when missing or unreadable)."""
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def run_step(step: Step, chain: str, work_dir: Path,
             invoke: Callable[[Sequence[str]], None]) -> StepResult:
    """Run ``step`` through ``invoke(argv)`` unless an identical finished run exists."""
    key = step.key()[:10]
    if step.output is not None:
        output = step.output.with_name(f"{step.output.stem}_{key}{step.output.suffix}")
        reused = output.is_file()  # written atomically: present means complete
        if not reused:
            invoke([*step.args, "--out", str(output)])
        return StepResult(step.name, output, reused, {})
    name = f"{chain}_{step.name}_{key}"
    run_dir = work_dir / step.command / name
    summary = read_summary(run_dir)
    if summary.get("status") == STATUS_COMPLETED:
        return StepResult(step.name, run_dir, True, summary)
    argv = [*step.args, "--work-dir", str(work_dir), "--name", name]
    if step.resumable and (run_dir / "checkpoints" / "last.pt").is_file():
        argv.append("--resume")
    invoke(argv)
    return StepResult(step.name, run_dir, False, read_summary(run_dir))
