"""The ``mdcli`` application: global options, command registration, exit codes."""

from __future__ import annotations

import signal
import sys
import traceback
from typing import Annotated

import typer
from typer.exceptions import TyperException

from mdcli import __version__
from mdcli.cli.agop import agop
from mdcli.cli.align import align
from mdcli.cli.completion import completion
from mdcli.cli.condense import condense
from mdcli.cli.data import app as data_app
from mdcli.cli.distill import distill
from mdcli.cli.quickstart import quickstart
from mdcli.cli.train import train
from mdcli.cli.tsne import TsneCommand, tsne
from mdcli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, InputError, RunFailure
from mdcli.logs import setup_logging, state
from mdcli.threads import THREADS_ENV, apply_thread_policy, parse_threads

app = typer.Typer(
    name="mdcli",
    help="Multimodal diffusion distillation, t-SNE/alignment checks, NCFM condensation and "
         "AGOP analysis, from one command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mdcli {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Debug messages; tracebacks on errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    threads: Annotated[str | None, typer.Option(
        "--threads", metavar="N",
        help=f"torch CPU threads (also {THREADS_ENV}); default: the CPUs granted "
             "(SLURM_CPUS_PER_TASK, OMP_NUM_THREADS, affinity) less those other processes "
             "keep busy.")] = None,
) -> None:
    setup_logging(verbose=verbose, quiet=quiet)
    apply_thread_policy(None if threads is None else parse_threads(threads, "--threads"))


app.command("quickstart")(quickstart)
app.command("completion")(completion)
app.add_typer(data_app, name="data")
app.command("train")(train)
app.command("distill")(distill)
app.command("agop")(agop)
app.command("tsne", cls=TsneCommand)(tsne)
app.command("align")(align)
app.command("condense")(condense)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _error(message: str) -> None:
    if state.verbose:
        traceback.print_exc()
    print(f"mdcli: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Run the app and map outcomes onto exit codes 0 / 1 / 2 / 130."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = app(args=argv, prog_name="mdcli", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        print("mdcli: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except InputError as exc:
        _error(str(exc))
        sys.exit(EXIT_USAGE)
    except RunFailure as exc:
        _error(str(exc))
        sys.exit(EXIT_FAILURE)
    except TyperException as exc:  # usage errors (exit 2) and other parser errors
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        _error(f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_FAILURE)
    sys.exit(result if isinstance(result, int) else 0)
