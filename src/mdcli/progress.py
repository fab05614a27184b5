"""Progress reporting: rich bars on a terminal, plain periodic log lines otherwise.

Under cron or Slurm (stderr not a terminal) a bar prints one ANSI-free line every
``every`` seconds and one at the end, through the ``mdcli`` logger (so into log.txt too).
On a terminal, a bar opened while another is showing joins its display as a line below it,
so a chain of commands (``mdcli quickstart``) shows one view.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mdcli.logs import err_console, log, state, stderr_is_terminal

_live: list[Progress] = []  # the display the outermost open bar owns, if any


def _format_postfix(postfix: dict) -> str:
    parts = []
    for key, value in postfix.items():
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


class Bar:
    """One progress bar; call :meth:`advance` as work completes."""

    def __init__(self, total: int | None, description: str, every: float = 10.0,
                 enabled: bool = True) -> None:
        self.total, self.description, self.every = total, description, every
        self.done = 0
        self.postfix: dict = {}
        self._logged: tuple[int, dict] | None = None  # (done, postfix) of the last line logged
        self._start = self._last = time.monotonic()
        self._rich: Progress | None = None
        self._owner = False
        if enabled and stderr_is_terminal() and not state.quiet:
            if not _live:
                _live.append(Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      TimeRemainingColumn(), TextColumn("{task.fields[postfix]}"),
                                      console=err_console, transient=False))
                _live[0].start()
                self._owner = True
            self._rich = _live[0]
            self._task = self._rich.add_task(description, total=total, postfix="")
        self.enabled = enabled

    def advance(self, n: int = 1, **postfix: object) -> None:
        self.done += n
        self.postfix.update(postfix)
        if self._rich is not None:
            self._rich.update(self._task, advance=n, postfix=_format_postfix(self.postfix))
        elif self.enabled and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._log()

    def _log(self) -> None:
        self._logged = (self.done, dict(self.postfix))
        log.info(self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            pct = 100.0 * self.done / self.total
            eta = f"{(self.total - self.done) / rate:.0f}s" if rate > 0 else "?"
            head = (f"{self.description}: {self.done}/{self.total} ({pct:.0f}%) "
                    f"{rate:.2f} it/s eta {eta}")
        else:
            head = f"{self.description}: {self.done} {rate:.2f} it/s"
        tail = _format_postfix(self.postfix)
        return f"{head} {tail}".rstrip()

    def close(self) -> None:
        if self._owner:
            _live.pop().stop()
        elif self._rich is not None:
            self._rich.remove_task(self._task)
        if self.enabled and self._logged != (self.done, self.postfix):
            self._log()


@contextmanager
def progress(total: int | None, description: str, every: float = 10.0,
             enabled: bool = True) -> Iterator[Bar]:
    """A progress bar for ``total`` steps (``enabled=False`` on non-zero ranks)."""
    bar = Bar(total, description, every=every, enabled=enabled)
    try:
        yield bar
    finally:
        bar.close()
