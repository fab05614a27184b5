from __future__ import annotations

from mdcli.logs import setup_logging
from mdcli.progress import progress


def test_plain_progress_lines_without_a_terminal(capsys):
    setup_logging()  # stderr is captured: not a terminal
    with progress(4, "train epoch 1", every=0.0) as bar:
        for step in range(4):
            bar.advance(1, loss=1.0 / (step + 1))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "train epoch 1" in line]
    assert len(lines) >= 4
    assert "4/4 (100%)" in lines[-1] and "loss=0.25" in lines[-1]
    assert "\x1b[" not in err


def test_plain_progress_respects_its_cadence(capsys):
    setup_logging()
    with progress(1000, "fast", every=3600.0) as bar:
        for _ in range(1000):
            bar.advance()
    lines = [line for line in capsys.readouterr().err.splitlines() if "fast" in line]
    assert len(lines) == 1  # only the closing line


def test_disabled_bar_prints_nothing(capsys):
    setup_logging()
    with progress(3, "rank1", every=0.0, enabled=False) as bar:
        bar.advance(3)
    assert "rank1" not in capsys.readouterr().err


def test_closing_line_is_not_repeated_and_eta_is_never_nan(capsys):
    setup_logging()
    with progress(2, "chain", every=0.0) as bar:
        bar.advance(0, step="a")
        bar.advance(2, step="a done")
    lines = [line for line in capsys.readouterr().err.splitlines() if "chain:" in line]
    assert len(lines) == 2 and lines[-1].endswith("step=a done")
    assert "eta ?" in lines[0] and "nan" not in "".join(lines)


def test_a_bar_opened_inside_another_joins_its_display(monkeypatch):
    import io

    from rich.console import Console

    from mdcli import progress as progress_module

    monkeypatch.setattr(progress_module, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(progress_module, "err_console", Console(file=io.StringIO()))
    setup_logging()
    with progress(2, "outer") as outer:
        with progress(3, "inner") as inner:
            assert inner._rich is outer._rich and len(outer._rich.tasks) == 2
            inner.advance(3)
        assert len(outer._rich.tasks) == 1  # the inner line is removed when it closes
    assert progress_module._live == []
