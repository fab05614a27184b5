"""How many torch threads to use: the CPUs this process was granted, less the cores other
processes keep busy.

The grant comes from, in order: an explicit count (``--threads`` or ``MDCLI_THREADS``),
``SLURM_CPUS_PER_TASK``, ``OMP_NUM_THREADS``, the CPU affinity mask (``os.cpu_count()`` where
there is none). Slurm's and the affinity's CPUs are shared by a node's torchrun workers, so
they are divided by ``LOCAL_WORLD_SIZE``; an explicit count and ``OMP_NUM_THREADS`` are per
process already. A grant from the affinity mask is cut by the cores of that mask other
processes keep busy (``/proc/stat`` over 0.1 s): an OpenMP region with more threads than free
cores waits on descheduled threads, which on a shared 2-core machine made training several
times slower than one thread (``benchmarks/bench_threads.py``).

:func:`apply_thread_policy` also exports the count as ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``,
so a later call and child processes keep it instead of counting this process as load.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass

from mdcli.errors import InputError
from mdcli.logs import log

THREADS_ENV = "MDCLI_THREADS"
PROC_STAT = "/proc/stat"
LOAD_WINDOW_S = 0.1


@dataclass(frozen=True)
class ThreadChoice:
    """The count chosen, and why: ``granted`` CPUs from ``source``, ``other_load`` busy cores
    (None where load is not considered)."""

    threads: int
    granted: int
    source: str
    other_load: float | None = None

    def describe(self) -> str:
        load = "" if self.other_load is None else f", other load {self.other_load:.1f}"
        plural = "" if self.threads == 1 else "s"
        return (f"using {self.threads} thread{plural} "
                f"(granted {self.granted} by {self.source}{load})")


def parse_threads(value: str | int, name: str) -> int:
    """``value`` as a positive thread count; ``name`` (option or variable) names it in errors."""
    text = str(value).strip()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise InputError(f"{name}: got {text!r}, expected a positive whole number of threads")
    return count


def _env_count(name: str) -> int | None:
    """A positive count from environment variable ``name`` (``OMP_NUM_THREADS=4,2`` -> 4);
    None when unset, and (with a warning) when it is not a positive integer."""
    text = os.environ.get(name, "").split(",")[0].strip()
    if not text:
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    log.warning("ignoring %s=%r: not a positive integer", name, os.environ[name])
    return None


def _local_workers() -> int:
    return _env_count("LOCAL_WORLD_SIZE") or 1


def affinity_cpus() -> int:
    """CPUs this process may run on (``os.cpu_count()`` where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _grant(override: int | None) -> tuple[int, str]:
    if override is not None:
        return parse_threads(override, "--threads"), "--threads"
    if THREADS_ENV in os.environ:
        return parse_threads(os.environ[THREADS_ENV], THREADS_ENV), THREADS_ENV
    workers = _local_workers()
    if (slurm := _env_count("SLURM_CPUS_PER_TASK")) is not None:
        return max(1, slurm // workers), "SLURM_CPUS_PER_TASK"
    if (omp := _env_count("OMP_NUM_THREADS")) is not None:
        return omp, "OMP_NUM_THREADS"
    return max(1, affinity_cpus() // workers), "affinity"


def granted_cpus(override: int | None = None) -> int:
    """CPUs granted to this process: ``override``, ``MDCLI_THREADS``, ``SLURM_CPUS_PER_TASK``
    (divided by ``LOCAL_WORLD_SIZE``), ``OMP_NUM_THREADS``, the affinity mask (divided by
    ``LOCAL_WORLD_SIZE``). A bad ``override``/``MDCLI_THREADS`` raises :class:`InputError`."""
    return _grant(override)[0]


def _cpu_jiffies(cpus: set[int], path: str = PROC_STAT) -> tuple[int, int]:
    """(busy, total) jiffies since boot summed over ``cpus``, from ``/proc/stat``."""
    busy = total = 0
    with open(path, encoding="ascii") as handle:
        for line in handle:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, values[:8])
                busy += user + nice + system + irq + softirq + steal
                total += user + nice + system + idle + iowait + irq + softirq + steal
    return busy, total


@dataclass(frozen=True)
class CpuSnapshot:
    """Busy and total jiffies of this process's affinity CPUs, and its own CPU seconds."""

    cpus: int
    busy: int
    total: int
    own_s: float


def cpu_snapshot() -> CpuSnapshot:
    """Now, for :func:`load_between`; OSError/AttributeError where ``/proc/stat`` or the
    affinity mask is not available."""
    cpus = os.sched_getaffinity(0)
    busy, total = _cpu_jiffies(cpus)
    return CpuSnapshot(len(cpus), busy, total, time.process_time())


def load_between(before: CpuSnapshot, after: CpuSnapshot, wall_s: float) -> float | None:
    """Cores other processes kept busy between two snapshots ``wall_s`` seconds apart (the
    CPUs' busy share times their count, less this process's own CPU seconds per second)."""
    if after.total <= before.total or wall_s <= 0:
        return None
    busy = (after.busy - before.busy) / (after.total - before.total) * before.cpus
    return max(0.0, busy - (after.own_s - before.own_s) / wall_s)


def other_load(window: float = LOAD_WINDOW_S) -> float | None:
    """Cores of this process's affinity set that other processes keep busy, measured over
    ``window`` seconds from ``/proc/stat``.

    Without ``/proc/stat``: the 1-minute load average where the affinity set is the whole
    machine, else None (unknown). The load average is the fallback only: it lags a new job
    by a minute and still counts, for a minute, the command that ran just before this one.
    """
    try:
        before = cpu_snapshot()
        time.sleep(window)
        return load_between(before, cpu_snapshot(), window)
    except (AttributeError, OSError, ValueError):
        if affinity_cpus() != (os.cpu_count() or 1):
            return None
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return None


def choose_threads(threads: int | None = None, load: float | None = None) -> ThreadChoice:
    """The thread count for ``threads`` (explicit: used as given) or the policy above.

    Only a grant from the affinity mask is cut for load: the affinity CPUs less the cores
    other processes keep busy (``load``, default :func:`other_load`), within the grant.
    """
    granted, source = _grant(threads)
    if source != "affinity":
        return ThreadChoice(granted, granted, source)
    busy = other_load() if load is None else load
    if busy is None:
        return ThreadChoice(granted, granted, source)
    free = affinity_cpus() - round(busy)
    return ThreadChoice(max(1, min(granted, free)), granted, source, busy)


def apply_thread_policy(threads: int | None = None, load: float | None = None) -> int:
    """Choose the count (:func:`choose_threads`), give it to torch and export it as
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``; returns it.

    torch gets it at once when already imported, else through those variables when a command
    imports it (so ``--help`` does not pay for importing torch). Inter-op threads are set too
    unless parallel work has started, after which torch refuses to change them.
    """
    choice = choose_threads(threads, load)
    reduced = choice.threads < choice.granted
    log.log(logging.INFO if reduced else logging.DEBUG, "%s", choice.describe())
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(choice.threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(choice.threads)
        if torch.get_num_interop_threads() != choice.threads:
            try:
                torch.set_num_interop_threads(choice.threads)
            except RuntimeError:  # parallel work has started: the pool is fixed now
                log.debug("inter-op threads stay at %d", torch.get_num_interop_threads())
    return choice.threads

