"""Options every command shares, and the config resolution they feed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from typer.core import TyperCommand

from mdcli.config import apply_override, load_config, read_yaml, resolve_config_path
from mdcli.errors import InputError

T = TypeVar("T")

ConfigOpt = Annotated[str | None, typer.Option(
    "--config", "-c", metavar="FILE",
    help="YAML config: a path, or a packaged name such as train/mlp_digits_adam.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY.PATH=VALUE",
    help="Override one config value (value parsed as YAML); repeatable.")]
WorkDirOpt = Annotated[Path, typer.Option(
    "--work-dir", help="Where result folders go: WORK_DIR/<command>/<run-name>/.")]
NameOpt = Annotated[str | None, typer.Option(
    "--name", help="Run folder name (default: <config-stem>_<UTC timestamp>).")]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", metavar="auto|cpu|cuda[:N]", help="Compute device (default: the config's, auto).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (default: the config's).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue the run named by --name from its last checkpoint.")]

DEFAULT_WORK_DIR = Path("runs")


def config_overrides(sets: list[str] | None, seed: int | None = None,
                     device: str | None = None) -> list[str]:
    """The ``--set`` overrides, then ``seed=``/``device=`` for a given ``--seed``/``--device``."""
    overrides = list(sets or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if device is not None:
        overrides.append(f"device={device}")
    return overrides


def resolve_config(schema: type[T], config: str | None, sets: list[str] | None,
                   seed: int | None = None, device: str | None = None) -> T:
    """Load ``schema`` from ``--config``, then ``--set`` overrides, then ``--seed``/``--device``."""
    return load_config(schema, config, config_overrides(sets, seed, device))


def config_mapping(config: str | None, sets: list[str] | None, seed: int | None = None,
                   device: str | None = None) -> dict:
    """The raw mapping :func:`resolve_config` would validate (empty without ``--config``), for
    commands that read keys from it before choosing or filling the schema."""
    data = read_yaml(resolve_config_path(config)) if config else {}
    for override in config_overrides(sets, seed, device):
        apply_override(data, override)
    return data


def config_source(command: str, config: str | None, work_dir: Path, name: str | None,
                  resume: bool, example: str) -> str:
    """The config to run: ``--config``, else (with ``--resume``) the named run's own
    ``config.yaml``. Refuses a resume without a checkpoint and a fresh run over one;
    ``example`` is the packaged config the missing ``--config`` error suggests."""
    run_dir = work_dir / command / name if name else None
    if resume:
        if run_dir is None:
            raise InputError("--resume: needs --name RUN, the run folder under "
                             f"{work_dir / command} to continue")
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise InputError(f"--resume: no checkpoint to resume from at "
                             f"{run_dir / 'checkpoints' / 'last.pt'}")
        return config or str(run_dir / "config.yaml")
    if run_dir is not None and (run_dir / "checkpoints" / "last.pt").is_file():
        raise InputError(f"--name {name}: {run_dir} already holds checkpoints; pass --resume to "
                         f"continue it or choose another name")
    if not config:
        raise InputError(f"--config: required, a YAML file or a packaged name such as {example}")
    return config


def key_value(word: str) -> bool:
    """Whether ``word`` is a ``KEY=VALUE`` value (not an option)."""
    return "=" in word and not word.startswith("-")


def not_option(word: str) -> bool:
    """Whether ``word`` is a value, not an option."""
    return not word.startswith("-")


def spread_values(args: list[str], option: str, takes: Callable[[str], bool] = key_value
                  ) -> list[str]:
    """``option a=1 b=2`` rewritten as ``option a=1 option b=2``: every word after the
    option's own value that ``takes`` accepts is one more value of it (argparse's
    ``nargs='+'``, as MMPretrain reads ``--cfg-options`` and ``--class-idx``); the first word
    it refuses, or ``--``, ends the run."""
    out: list[str] = []
    state = None  # "own": the next word is the option's own value; "more": further values
    for index, arg in enumerate(args):
        if arg == "--":
            return [*out, *args[index:]]
        if state == "more" and takes(arg):
            out += [option, arg]
            continue
        out.append(arg)
        if arg == option:
            state = "own"
        elif state == "own" or arg.startswith(f"{option}="):
            state = "more"
        else:
            state = None
    return out


class SeveralValues(TyperCommand):
    """A command whose options in ``several_values`` (name, which words are its values) take
    several values after one flag (:func:`spread_values`) as well as a repeated flag."""

    several_values: tuple[tuple[str, Callable[[str], bool]], ...] = ()

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        for option, takes in self.several_values:
            args = spread_values(args, option, takes)
        return super().parse_args(ctx, args)
