"""Training speed and peak memory of the cyclone teacher and the distillation step.

For the tiny and the full (128x128) shipped configs, times a teacher training step and a
distillation step (frozen teacher forward + student forward/backward) on random tensors, on
the CPU and, when present, on CUDA (optionally with bf16 autocast).

    PYTHONPATH=src python benchmarks/bench_distill.py [--configs tiny full] [--amp]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch
import yaml

from mdcli.diffusion.objectives import DiffusionConfig, build_objective
from mdcli.losses.distill import DistillLossConfig, causal_loss_fn, distill_loss
from mdcli.models.teacher_student import ModelConfig, Student, Teacher

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"tiny": "configs/train/tc_teacher_tiny.yml", "full": "configs/train/tc_teacher.yml"}


def _setup(name: str, device: torch.device, batch: int):
    raw = yaml.safe_load((ROOT / CONFIGS[name]).read_text())
    cfg = ModelConfig(**raw["model"])
    objective = build_objective(DiffusionConfig(**raw["diffusion"]))
    g = torch.Generator().manual_seed(0)
    s = cfg.image_size
    data = [torch.randn(shape, generator=g).to(device) for shape in (
        (batch, cfg.cond_frames, s, s), (batch, 4, cfg.era5_steps, s, s),
        (batch, cfg.pred_frames, s, s))]
    return cfg, objective, data


def _time(step, steps: int, device: torch.device) -> float:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def bench(name: str, device: torch.device, batch: int, steps: int, amp: bool) -> dict:
    cfg, objective, (cond, era5, target) = _setup(name, device, batch)
    teacher = Teacher(cfg).to(device)
    student = Student(cfg, causal_loss_fn(DistillLossConfig())).to(device)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=1e-4)
    opt_s = torch.optim.Adam(student.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def noisy():
        idx, noise = objective.draw(target)
        x_noisy, sigma = objective.perturb(target, idx, noise)
        return idx, noise, x_noisy, sigma

    def teacher_step():
        idx, noise, x_noisy, sigma = noisy()
        with autocast:
            out = teacher(x_noisy, sigma, cond, era5)
        loss = objective.loss(out.float(), target, x_noisy, noise, idx).mean()
        opt_t.zero_grad()
        loss.backward()
        opt_t.step()

    def distill_step():
        idx, noise, x_noisy, sigma = noisy()
        with autocast:
            with torch.no_grad():
                t_out, t_feats = teacher(x_noisy, sigma, cond, era5, return_feat=True)
            s_out, s_feats, causal = student(x_noisy, sigma, cond, return_feat=True,
                                             target=target)
        score = objective.loss(s_out.float(), target, x_noisy, noise, idx).mean()
        total, _ = distill_loss(score, s_out.float(), t_out.float(),
                                {k: v.float() for k, v in s_feats.items()},
                                {k: v.float() for k, v in t_feats.items()}, causal.float(),
                                DistillLossConfig())
        opt_s.zero_grad()
        total.backward()
        opt_s.step()

    row = {"config": name, "device": str(device), "batch": batch, "amp": amp,
           "params_teacher": sum(p.numel() for p in teacher.parameters()),
           "params_student": sum(p.numel() for p in student.parameters())}
    for label, step in (("teacher", teacher_step), ("distill", distill_step)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        row[f"{label}_steps_per_s"] = _time(step, steps, device)
        row[f"{label}_peak_mib"] = (torch.cuda.max_memory_allocated(device) / 2**20
                                    if device.type == "cuda" else
                                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "full"], choices=list(CONFIGS))
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    batches = {("tiny", "cpu"): 16, ("full", "cpu"): 2, ("tiny", "cuda"): 64, ("full", "cuda"): 16}
    print(f"{'config':6} {'device':6} {'batch':>5} {'amp':>5} {'teacher it/s':>12} "
          f"{'peak MiB':>9} {'distill it/s':>12} {'peak MiB':>9}  (peak: CUDA allocated; CPU: "
          f"process max RSS)")
    for device in devices:
        for name in args.configs:
            amp = args.amp and device.type == "cuda"
            steps = 2 if (name, device.type) == ("full", "cpu") else args.steps
            r = bench(name, device, batches[(name, device.type)], steps, amp)
            print(f"{name:6} {device.type:6} {r['batch']:>5} {str(amp):>5} "
                  f"{r['teacher_steps_per_s']:>12.2f} {r['teacher_peak_mib']:>9.0f} "
                  f"{r['distill_steps_per_s']:>12.2f} {r['distill_peak_mib']:>9.0f}")


if __name__ == "__main__":
    main()
