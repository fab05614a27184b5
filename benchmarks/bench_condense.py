"""Benchmark: time and peak memory per condensation iteration, NCFM vs MMD.

Runs the digits config (configs/condense/digits_ipc10.yml: 10 classes, ipc 10, ConvNet
extractors, batch_real 128) for ``--iters`` iterations after ``--warmup`` ones, with
``dis_metrics`` NCFM at ``num_freqs`` 1024 and 4096 and MMD (which has no frequencies, so
its two rows differ only by noise), calibration off. Each setting runs in its own process and
prints the mean seconds per iteration (after the warm-up) and the peak memory the iterations
add above what was held before the first one: on CUDA ``torch.cuda.max_memory_allocated``; on
CPU the peak resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``).

    PYTHONPATH=src python benchmarks/bench_condense.py [--iters 20] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mdcli.condense.classes import distribute_classes
from mdcli.condense.condenser import Condenser
from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import load_real_data
from mdcli.condense.domains import make_domain
from mdcli.condense.premodels import load_premodels, premodel_folders
from mdcli.config import load_config
from mdcli.devices import resolve_device
from mdcli.dist import DistContext

SETTINGS = [("NCFM", 1024), ("NCFM", 4096), ("MMD", 1024), ("MMD", 4096)]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak(device: torch.device) -> int:
    """Reset the peak counter; return the memory (bytes) held now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _status_kib("VmHWM") * 1024


def measure(cfg: CondenseConfig, metric: str, num_freqs: int, iters: int, warmup: int,
            work_dir: Path) -> dict:
    c = dataclasses.replace(cfg.condense, dis_metrics=metric, num_freqs=num_freqs, iter_calib=0)
    cfg = dataclasses.replace(cfg, condense=c)
    device = resolve_device(cfg.device)
    ctx = DistContext(0, 1, 0, device)
    data = load_real_data(cfg)
    domain = make_domain(cfg, data)
    folders = premodel_folders(cfg, data, domain, work_dir, work_dir, ctx)
    premodels = load_premodels(folders, c.teacher_model_epoch, device)
    condenser = Condenser(cfg, data, domain, premodels, ctx,
                          distribute_classes(data.nclass, 1, 0))
    held = _reset_peak(device)
    for it in range(1, warmup + 1):
        condenser.step(it)
    start = time.perf_counter()
    for it in range(warmup + 1, warmup + iters + 1):
        condenser.step(it)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / iters
    return {"metric": metric, "num_freqs": num_freqs, "s_per_iter": seconds,
            "peak_extra_mib": max(0, _peak(device) - held) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="condense/digits_ipc10")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--one", nargs=2, metavar=("METRIC", "NUM_FREQS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    cfg = load_config(CondenseConfig, args.config, [f"device={args.device}",
                                                    "condense.num_premodel=2",
                                                    "condense.teacher_model_epoch=2"])
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(cfg, args.one[0], int(args.one[1]), args.iters, args.warmup, Path(tmp))
        print(json.dumps(row))
        return
    rows = []
    for metric, freqs in SETTINGS:
        out = subprocess.run([sys.executable, __file__, "--config", args.config, "--iters",
                              str(args.iters), "--warmup", str(args.warmup), "--device",
                              args.device, "--one", metric, str(freqs)],
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"digits, ipc {cfg.condense.ipc}, batch_real {cfg.dataset.batch_real}, "
          f"{args.iters} iterations on {args.device} (calibration off)")
    by = {(r["metric"], r["num_freqs"]): r for r in rows}
    print(f"{'num_freqs':>9} {'NCFM ms/it':>11} {'MMD ms/it':>10} {'NCFM MiB':>9} "
          f"{'MMD MiB':>8}")
    for freqs in sorted({f for _, f in SETTINGS}):
        ncfm, mmd = by[("NCFM", freqs)], by[("MMD", freqs)]
        print(f"{freqs:>9} {1000 * ncfm['s_per_iter']:>11.1f} {1000 * mmd['s_per_iter']:>10.1f} "
              f"{ncfm['peak_extra_mib']:>9.1f} {mmd['peak_extra_mib']:>8.1f}")


if __name__ == "__main__":
    main()
