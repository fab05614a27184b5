"""``mdcli completion SHELL``: print a shell completion script.

Typer's ``--install-completion`` guesses the shell from the parent process, which fails in CI
and containers; this prints the script for the shell named.
"""

from __future__ import annotations

from enum import Enum

import typer
from typer._completion_shared import get_completion_script

PROG_NAME = "mdcli"
COMPLETE_VAR = "_MDCLI_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)


def completion(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the completion script for SHELL (e.g. `mdcli completion bash > ~/.mdcli.bash`)."""
    typer.echo(completion_script(shell.value))
