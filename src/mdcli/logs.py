"""Console and log-file output.

Messages go through the ``mdcli`` logger to stderr: rich formatting on a terminal, plain
timestamped lines (no ANSI codes) otherwise. A run attaches ``log.txt`` so the file holds the
same lines. Results (tables, JSON) go to stdout through :data:`console`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

log = logging.getLogger("mdcli")
console = Console(soft_wrap=True)
err_console = Console(stderr=True)
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _State:
    verbose: bool = False
    quiet: bool = False


state = _State()


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Send ``mdcli`` log records to stderr at INFO (DEBUG with -v, WARNING with -q)."""
    state.verbose, state.quiet = verbose, quiet
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for handler in [h for h in log.handlers if getattr(h, "_mdcli_console", False)]:
        log.removeHandler(handler)
    if stderr_is_terminal():
        handler: logging.Handler = RichHandler(console=err_console, show_path=False,
                                               markup=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT, DATE_FORMAT))
    handler._mdcli_console = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False


def attach_log_file(path: Path) -> logging.Handler:
    """Mirror every ``mdcli`` log line at the console's level into ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT, DATE_FORMAT))
    handler.setLevel(logging.DEBUG if state.verbose else logging.INFO)
    log.addHandler(handler)
    return handler


def detach(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()
