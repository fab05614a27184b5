"""Training speed by torch thread count, on an idle machine and beside a CPU-burning process.

Times forward + backward + Adam steps of the tiny cyclone teacher
(``configs/train/tc_teacher_tiny.yml``'s model, batch 16, random tensors) with each thread
count, first alone, then with ``--burners`` busy-looping processes, and prints steps/s, the
ratio to the best count under the same load, and the count :mod:`mdcli.threads` chooses there.

    PYTHONPATH=src python benchmarks/bench_threads.py [--threads 1 2] [--burners 1] [--seconds 5]
        [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from mdcli.config import from_dict
from mdcli.models.teacher_student import ModelConfig, Teacher
from mdcli.threads import choose_threads, cpu_snapshot, load_between, other_load

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/train/tc_teacher_tiny.yml"
BURN = "while True:\n    pass\n"


def teacher_step(batch: int):
    """A closure running one training step of the tiny teacher on fixed random tensors."""
    raw = yaml.safe_load(CONFIG.read_text())["model"]
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = from_dict(ModelConfig, {k: v for k, v in raw.items() if k in known})
    torch.manual_seed(0)
    model = Teacher(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    s = cfg.image_size
    x, cond = torch.randn(batch, cfg.pred_frames, s, s), torch.randn(batch, cfg.cond_frames, s, s)
    era5, level = torch.randn(batch, 4, cfg.era5_steps, s, s), torch.rand(batch)

    def step() -> None:
        loss = (model(x, level, cond, era5) - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def steps_per_second(step, threads: int, seconds: float) -> tuple[float, float | None]:
    """Steps/s with ``threads`` torch threads over about ``seconds`` (at least 3 steps), and
    the cores other processes kept busy meanwhile."""
    torch.set_num_threads(threads)
    step()  # warm-up
    count, start, before = 0, time.perf_counter(), cpu_snapshot()
    while count < 3 or time.perf_counter() - start < seconds:
        step()
        count += 1
    wall = time.perf_counter() - start
    return count / wall, load_between(before, cpu_snapshot(), wall)


def measure(step, counts: list[int], burners: int, seconds: float) -> dict:
    """Beside ``burners`` busy processes: the other load the policy sees, its choice, and per
    thread count (steps/s, other load during the timing)."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(burners)]
    try:
        time.sleep(1.0)
        load = other_load()
        timings = {t: steps_per_second(step, t, seconds) for t in counts}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return {"load": load, "policy": choose_threads(load=load).threads, "timings": timings}


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--burners", type=int, nargs="+", default=[1],
                        help="busy processes beside the benchmark (0, alone, is always run)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of the whole sweep")
    args = parser.parse_args()
    for name in ("MDCLI_THREADS", "OMP_NUM_THREADS"):  # report the policy's own choice
        os.environ.pop(name, None)
    step = teacher_step(args.batch)
    print(f"tiny teacher, batch {args.batch}, forward+backward+Adam; "
          f"idle choice now: {choose_threads().describe()}")
    print("load: other cores busy before (what the policy saw) / during the timing")
    print(f"{'round':>5} {'burners':>7} {'threads':>7} {'steps/s':>8} {'vs best':>7} "
          f"{'load':>5} {'during':>6} {'policy':>6}")
    for round_ in range(args.rounds):
        for burners in sorted({0, *args.burners}):
            result = measure(step, args.threads, burners, args.seconds)
            best = max(rate for rate, _ in result["timings"].values())
            for threads, (rate, during) in result["timings"].items():
                print(f"{round_:>5} {burners:>7} {threads:>7} {rate:>8.2f} {rate / best:>7.2f} "
                      f"{_f(result['load']):>5} {_f(during):>6} {result['policy']:>6}",
                      flush=True)

if __name__ == "__main__":
    main()
