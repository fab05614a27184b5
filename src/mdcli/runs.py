"""The standard result folder: ``WORK_DIR/<command>/<run-name>/``.

::

    config.yaml     fully resolved config
    meta.json       mdcli version, argv, host, python/torch versions, device, seed, threads,
                    start/end, status
    log.txt         the same lines the console showed
    metrics.jsonl   one JSON object per logged step/epoch
    summary.json    final figures (status: completed | failed | interrupted)
    checkpoints/    figures/    cache/

Only the main rank writes; other ranks get a :class:`Run` whose writers do nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from mdcli import __version__
from mdcli.config import to_dict
from mdcli.logs import attach_log_file, detach, log
from mdcli.storage.atomic import atomic_write_text

STATUS_COMPLETED, STATUS_FAILED, STATUS_INTERRUPTED = "completed", "failed", "interrupted"


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().tolist())
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dump_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (tensors/arrays become lists)."""
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2) + "\n")


def deep_update(target: dict, values: dict) -> dict:
    """Merge ``values`` into ``target`` recursively (nested dicts merge, others replace)."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = value
    return target


class Run:
    """One result folder. ``enabled=False`` (non-main ranks) makes every write a no-op."""

    def __init__(self, path: Path, command: str, enabled: bool = True) -> None:
        self.path, self.command, self.enabled = path, command, enabled
        self.summary: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}

    def _sub(self, name: str) -> Path:
        folder = self.path / name
        if self.enabled:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def checkpoints(self) -> Path:
        return self._sub("checkpoints")

    @property
    def figures(self) -> Path:
        return self._sub("figures")

    @property
    def cache(self) -> Path:
        return self._sub("cache")

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON object (a step or an epoch) to ``metrics.jsonl``."""
        if self.enabled:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(_jsonable(record)) + "\n")

    def update_summary(self, **values: Any) -> None:
        """Merge final figures into ``summary.json`` (written now and at the end)."""
        deep_update(self.summary, values)
        self.write_summary()

    def write_summary(self) -> None:
        if self.enabled:
            dump_json(self.path / "summary.json", self.summary)

    def finish(self, status: str, error: str | None = None) -> None:
        self.summary["status"] = status
        if error:
            self.summary["error"] = error
        self.meta.update(status=status, end=_utc_now())
        if self.enabled:
            self.write_summary()
            dump_json(self.path / "meta.json", self.meta)


def run_name(config_name: str | Path | None, command: str) -> str:
    stem = Path(str(config_name)).stem if config_name else command
    return f"{stem}_{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def resolve_run_dir(work_dir: Path, command: str, name: str | None,
                    config_name: str | Path | None) -> Path:
    """The folder for this run: ``--name`` as given, else a fresh timestamped name."""
    base = Path(work_dir) / command
    if name:
        return base / name
    path = base / run_name(config_name, command)
    suffix = 1
    while path.exists():
        suffix += 1
        path = base / f"{run_name(config_name, command)}_{suffix}"
    return path


@contextmanager
def start_run(command: str, config: Any, *, work_dir: str | Path = "runs", name: str | None = None,
              config_name: str | Path | None = None, path: Path | None = None,
              enabled: bool = True, device: str | None = None) -> Iterator[Run]:
    """Create (or reopen, when ``name`` names an existing run) the result folder.

    On exit the status is ``completed``, ``interrupted`` (KeyboardInterrupt, which SIGTERM
    becomes) or ``failed`` (any other exception, re-raised after recording it).
    """
    run_dir = Path(path) if path else resolve_run_dir(Path(work_dir), command, name, config_name)
    run = Run(run_dir, command, enabled)
    handler = None
    resumed = (run_dir / "meta.json").is_file()
    if enabled:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_dict = to_dict(config) if config is not None else {}
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config_dict, sort_keys=False))
        if resumed:
            previous = json.loads((run_dir / "summary.json").read_text()) \
                if (run_dir / "summary.json").is_file() else {}
            run.summary.update({k: v for k, v in previous.items() if k not in ("status", "error")})
        handler = attach_log_file(run_dir / "log.txt")
    run.meta = {
        "mdcli_version": __version__, "command": command, "argv": sys.argv,
        "host": socket.gethostname(), "python": platform.python_version(),
        "torch": torch.__version__, "device": device or getattr(config, "device", None),
        "seed": getattr(config, "seed", None), "threads": torch.get_num_threads(),
        "start": _utc_now(), "end": None,
        "status": "running", "resumed": resumed,
    }
    run.summary.update(status="running", command=command, run_dir=str(run_dir))
    if enabled:
        dump_json(run_dir / "meta.json", run.meta)
        run.write_summary()
        log.info("run folder: %s", run_dir)
    try:
        yield run
    except KeyboardInterrupt:
        log.warning("interrupted; status saved to %s", run_dir / "summary.json")
        run.finish(STATUS_INTERRUPTED)
        raise
    except BaseException as exc:
        run.finish(STATUS_FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        run.finish(STATUS_COMPLETED)
    finally:
        if handler is not None:
            detach(handler)
