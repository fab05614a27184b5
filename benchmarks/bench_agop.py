"""Benchmark: batched AGOP/H/G statistics against a per-sample reference loop.

A random 5-layer MLP (width 512, 1000 samples, 10 outputs, float32) is analysed by
``mdcli.analysis.agop.layer_statistics`` and by a loop with one ``torch.autograd.grad`` per
sample and output and an outer product for each (and by the same loop with each sample's C
gradients stacked into one matrix product, a stronger baseline). Prints the times, speed-ups,
the max relative error (Frobenius, over layers and the AGOP, G and H matrices) of float32
against a float64 computation, and the library's achieved GFLOP/s
against a plain ``torch.mm`` of similar size measured in the same run. Then trains the default
digits model (configs/train/mlp_digits_adam.yml, 20 epochs) and times a full analysis of it:
5 layers, all 1797 samples, 21 checkpoints (epochs 0-20), no cache. Every timing uses the
torch thread count ``mdcli agop`` would pick (``MDCLI_THREADS`` if set, else fewer
threads when the machine is busy).
Targets: >= 10x the loop, >= 50% of the matmul rate, relative error <= 1e-4, digits < 30 s.

    PYTHONPATH=src python benchmarks/bench_agop.py [--samples 1000] [--width 512] [--no-digits]

``--scale seed`` instead times the seed's scale: a bias-free 3072 -> 1024 x4 -> 10 MLP on
10,000 samples of 32x32x3 made here; mdcli's full analysis of one checkpoint (what
``mdcli agop`` does per checkpoint: ``agop_runs.checkpoint_values``, all statistics of the 5
layers, every similarity and the init baseline) against the per-sample loop (one
autograd.grad per sample and output) timed on ``--loop-samples`` samples and scaled linearly
to all of them, in the same run; prints the split between statistics and similarities, the
statistics' GFLOP/s against ``torch.mm`` in the same run, the speed-up, the peak resident
memory, and the time of a 21-checkpoint model: measured over ``--checkpoints K``
checkpoints (weights drifted from the initial ones), scaled to 21 where K < 21.
Target: >= 50x, a 21-checkpoint model < 60 s.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from mdcli.analysis.agop import SPLIT_GRAM, layer_statistics, z_space
from mdcli.analysis.agop_runs import AgopConfig, analyse_model, plan_model, threads_for_load
from mdcli.config import load_config
from mdcli.losses.classification import per_sample_loss
from mdcli.models.classifier import linear_layers
from mdcli.models.mlp import MLP
from mdcli.runs import start_run
from mdcli.threads import apply_thread_policy
from mdcli.training.classifier import ClassifierConfig, train_classifier

TARGET_SPEEDUP, TARGET_MATMUL_SHARE, TARGET_ERROR, TARGET_DIGITS_S = 10.0, 0.5, 1e-4, 30.0


def reference_loop(model, x, y, stacked: bool):
    """One autograd.grad per sample and output, float64 sums of outer products: one per
    (sample, output) as the definition reads, or (``stacked``) one matrix product per sample
    of its C stacked gradients (a stronger baseline)."""
    layers = linear_layers(model)
    store: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, a, o: store.append(a[0])) for m in layers]
    sums = {k: [torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for m in layers]
            for k in ("H", "G", "agop")}
    for n in range(len(x)):
        store.clear()
        out = model(x[n:n + 1].clone().requires_grad_(True))[0]
        hs = list(store)
        rows = [torch.autograd.grad(out[c], hs, retain_graph=True) for c in range(len(out))]
        loss = per_sample_loss("cross_entropy", out[None], y[n:n + 1])[0]
        grads = torch.autograd.grad(-loss, hs)
        for i, h in enumerate(hs):
            if stacked:
                jac = torch.cat([row[i] for row in rows])            # (C, d)
                sums["agop"][i] += (jac.T @ jac).double()
            else:
                for row in rows:
                    sums["agop"][i] += torch.outer(row[i][0], row[i][0])
            sums["G"][i] += torch.outer(grads[i][0], grads[i][0])
            sums["H"][i] += torch.outer(h[0].detach(), h[0].detach())
    for hook in hooks:
        hook.remove()
    return {k: [v / len(x) for v in vs] for k, vs in sums.items()}


class FixedMask(nn.Module):
    """A ReLU whose on/off pattern is given: ``z * mask``."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.mask


def float64_references(model: MLP, x: torch.Tensor, y: torch.Tensor):
    """float64 statistics of ``model``: as is, and with the float32 model's ReLU pattern
    (which isolates the rounding of the batched computation from ReLU units whose
    pre-activation is within float32 resolution of 0). Also the number of such flipped units."""
    masks: list[torch.Tensor] = []
    relus = [m for m in model.net if isinstance(m, nn.ReLU)]
    hooks = [m.register_forward_hook(lambda mod, a, o: masks.append(o > 0)) for m in relus]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    plain = copy.deepcopy(model).double()
    exact = layer_statistics(plain, None, x.double(), y, batch_size=len(x))
    masked = copy.deepcopy(plain)
    flips = 0
    for k, module in enumerate(masked.net):
        if isinstance(module, nn.ReLU):
            mask = masks.pop(0)
            with torch.no_grad():
                h = x.double().flatten(1)
                for layer in masked.net[:k]:
                    h = layer(h)
            flips += int(((h > 0) != mask).sum())
            masked.net[k] = FixedMask(mask.double())
    same_pattern = layer_statistics(masked, None, x.double(), y, batch_size=len(x))
    return exact, same_pattern, flips


def gram_flops(rows: int, d: int) -> float:
    """Flops of ``X^T X`` for X (rows, d) as layer_statistics forms it (wide ones from their
    upper block strips of SPLIT_GRAM columns)."""
    if d < SPLIT_GRAM:
        return 2.0 * rows * d * d
    return sum(2.0 * rows * min(SPLIT_GRAM, d - s) * (d - s) for s in range(0, d, SPLIT_GRAM))


def flops(model, n: int, classes: int) -> float:
    """The work layer_statistics does: forward, the C-direction backward (input gradients,
    down to the first layer's input or output), the outer products of H (h space) and of AGOP
    and G (h or z space, the latter followed by ``W^T K W``), and M."""
    layers = linear_layers(model)
    total = 0.0
    for m, zspace in zip(layers, z_space(model, layers), strict=True):
        d_in, d_out = m.in_features, m.out_features
        backward = 0 if (zspace and m is layers[0]) else classes
        total += 2 * n * d_in * d_out * (1 + backward) + gram_flops(n, d_in)
        d = d_out if zspace else d_in
        total += gram_flops(n * classes, d) + gram_flops(n, d)
        if zspace:  # W^T (K W) for AGOP and G
            total += 2 * (2 * d_out ** 2 * d_in + gram_flops(d_out, d_in))
        total += gram_flops(d_out, d_in)  # M
    return total


def best_times(fns, repeats: int) -> list[float]:
    """Best wall time of each function, run interleaved so both see the same machine load."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [min(record) for record in times]


def digits_analysis_seconds() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ClassifierConfig, "train/mlp_digits_adam", ["device=cpu"])
        run_dir = Path(tmp) / "train" / "digits_adam"
        with start_run("train", cfg, path=run_dir) as run:
            train_classifier(cfg, run)
        agop_cfg = AgopConfig(device="cpu", split="all")
        start = time.perf_counter()
        plan = plan_model("digits_adam", Path(tmp) / "train", agop_cfg)
        result = analyse_model(plan, agop_cfg, Path(tmp) / "cache", torch.device("cpu"))
        seconds = time.perf_counter() - start
    return {"digits_seconds": round(seconds, 2), "digits_samples": result["computed"]["samples"],
            "digits_checkpoints": len(result["epochs"]), "digits_layers": len(result["layers"])}


def seed_scale(samples: int, loop_samples: int, checkpoints: int) -> int:
    """The ``--scale seed`` benchmark (see the module doc)."""
    import resource

    import numpy as np

    from mdcli.analysis import agop_runs

    stats_times: list[float] = []

    def timed_statistics(*args, **kwargs):  # the statistics' share of checkpoint_values
        start = time.perf_counter()
        out = layer_statistics(*args, **kwargs)
        stats_times.append(time.perf_counter() - start)
        return out

    agop_runs.layer_statistics = timed_statistics
    torch.set_num_threads(threads_for_load())
    torch.manual_seed(0)
    init = MLP(3072, [1024] * 4, 10, bias=False)
    w0 = [m.weight.detach().clone() for m in linear_layers(init)]
    x = torch.rand(samples, 3, 32, 32).flatten(1)
    y = torch.randint(0, 10, (samples,))
    layers = list(range(len(w0)))
    a, b = torch.randn(1024, 10240), torch.randn(10240, 1024)
    mm_s = best_times([lambda: torch.mm(a, b)], 3)[0]
    mm_rate = 2 * 1024 * 10240 * 1024 / mm_s / 1e9
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    model = copy.deepcopy(init)
    for _ in range(checkpoints):
        with torch.no_grad():  # a checkpoint: the weights drift from the initial ones
            for m, w in zip(linear_layers(model), w0, strict=True):
                m.weight.add_(0.05 * w.std() * torch.randn_like(w))
        start = time.perf_counter()
        values = agop_runs.checkpoint_values(model, layers, w0, x, y, "mse",
                                             AgopConfig().batch_size, torch.device("cpu"))
        times.append(time.perf_counter() - start)
        assert np.isfinite(values[:4]).all()
    lib_s, stats_s = float(np.mean(times)), float(np.mean(stats_times))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    reference_loop(model, x[:loop_samples], y[:loop_samples], stacked=False)
    loop_s = (time.perf_counter() - start) * samples / loop_samples
    speedup = loop_s / lib_s
    rate = flops(model, samples, 10) / stats_s / 1e9
    model_s = sum(times) * 21 / checkpoints
    how = "measured" if checkpoints >= 21 else f"{checkpoints} measured, scaled to 21"
    print(f"seed scale: 3072 -> 1024 x4 -> 10, {samples} samples, "
          f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.2f}")
    print(f"mdcli, one checkpoint  {lib_s:8.2f} s   (mean of {checkpoints}) peak RSS "
          f"{peak:.0f} MiB (+{peak - before:.0f} MiB)")
    print(f"  statistics           {stats_s:8.2f} s   {rate:.0f} GFLOP/s, torch.mm "
          f"{mm_rate:.0f} GFLOP/s in this run; similarities and baseline "
          f"{lib_s - stats_s:.2f} s")
    print(f"per-sample loop        {loop_s:8.1f} s   (timed on {loop_samples} samples, scaled)")
    print(f"speed-up               {speedup:8.1f}x  (target >= 50x)")
    print(f"21-checkpoint model    {model_s:8.1f} s   ({how}; target < 60 s)")
    return 0 if speedup >= 50 and model_s < 60 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int,
                        help="samples (default 1000; --scale seed: 10,000, the seed's scale)")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-digits", action="store_true", help="skip the digits analysis")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--scale", choices=["default", "seed"], default="default")
    parser.add_argument("--loop-samples", type=int, default=50,
                        help="--scale seed: samples the per-sample loop is timed on")
    parser.add_argument("--checkpoints", type=int, default=1,
                        help="--scale seed: checkpoints analysed (scaled to 21 if fewer)")
    args = parser.parse_args()
    apply_thread_policy()  # as the mdcli command does: MDCLI_THREADS, Slurm, OMP_NUM_THREADS
    if args.scale == "seed":
        return seed_scale(args.samples or 10_000, args.loop_samples, args.checkpoints)

    args.samples = args.samples or 1000
    torch.set_num_threads(threads_for_load())  # as `mdcli agop` does, for every timing below
    torch.manual_seed(0)
    model = MLP(args.width, [args.width] * 4, args.classes)
    x, y = torch.randn(args.samples, args.width), torch.randint(0, args.classes, (args.samples,))

    a = torch.randn(args.width, args.classes * args.samples)
    b = torch.randn(args.classes * args.samples, args.width)
    lib_s, mm_s = best_times([lambda: layer_statistics(model, None, x, y, batch_size=args.samples),
                              lambda: torch.mm(a, b)], args.repeats)
    ours = layer_statistics(model, None, x, y, batch_size=args.samples)
    exact, same_pattern, flips = float64_references(model, x, y)
    start = time.perf_counter()
    loop = reference_loop(model, x, y, stacked=False)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    reference_loop(model, x, y, stacked=True)
    stacked_s = time.perf_counter() - start

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    def max_error(stats, reference):
        return max(rel(getattr(o, k).double(), getattr(e, k))
                   for o, e in zip(stats, reference, strict=True) for k in ("H", "G", "agop"))

    error = max_error(ours, same_pattern)
    forward_error = max_error(ours, exact)
    loop_error = max(rel(loop[k][i], getattr(exact[i], k))
                     for i in range(len(ours)) for k in ("H", "G", "agop"))

    mm_rate = 2 * a.shape[0] * a.shape[1] * b.shape[1] / mm_s / 1e9
    lib_rate = flops(model, args.samples, args.classes) / lib_s / 1e9

    result = {"samples": args.samples, "width": args.width, "library_s": round(lib_s, 4),
              "loop_s": round(loop_s, 3), "speedup": round(loop_s / lib_s, 1),
              "stacked_loop_s": round(stacked_s, 3),
              "speedup_vs_stacked": round(stacked_s / lib_s, 1),
              "max_rel_error_float32": error, "max_rel_error_vs_float64_forward": forward_error,
              "relu_units_flipped_float32_vs_float64": flips,
              "loop_max_rel_error_float32": loop_error,
              "library_gflops": round(lib_rate, 1), "matmul_gflops": round(mm_rate, 1),
              "matmul_share": round(lib_rate / mm_rate, 3), "threads": torch.get_num_threads()}
    checks = [result["speedup"] >= TARGET_SPEEDUP, result["matmul_share"] >= TARGET_MATMUL_SHARE,
              error <= TARGET_ERROR]
    print(f"library (batched)   {lib_s:8.3f} s   {lib_rate:7.1f} GFLOP/s")
    print(f"reference loop      {loop_s:8.3f} s   ({args.samples} x {args.classes} autograd.grad, "
          f"an outer product each)")
    print(f"speed-up            {loop_s / lib_s:8.1f}x  (target >= {TARGET_SPEEDUP:g}x)")
    print(f"stacked loop        {stacked_s:8.3f} s   (same grads, one X^T X per sample): "
          f"library {stacked_s / lib_s:.1f}x faster")
    print(f"torch.mm            {mm_rate:8.1f} GFLOP/s ({a.shape[0]}x{a.shape[1]} @ "
          f"{b.shape[0]}x{b.shape[1]}); library at {100 * lib_rate / mm_rate:.0f}% "
          f"(target >= {100 * TARGET_MATMUL_SHARE:.0f}%)")
    print(f"max rel. error      {error:.2e} float32 library vs float64, same ReLU pattern "
          f"(target <= {TARGET_ERROR:g})")
    print(f"                    {forward_error:.2e} vs a float64 forward pass, where {flips} of "
          f"{4 * args.samples * args.width} ReLU units flip; loop vs float64: {loop_error:.2e}")
    if not args.no_digits:
        result.update(digits_analysis_seconds())
        checks.append(result["digits_seconds"] < TARGET_DIGITS_S)
        print(f"digits analysis     {result['digits_seconds']:8.2f} s   "
              f"({result['digits_layers']} layers, {result['digits_samples']} samples, "
              f"{result['digits_checkpoints']} checkpoints; target < {TARGET_DIGITS_S:g} s)")
    result["passed"] = all(checks)
    print("PASS" if result["passed"] else "FAIL")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
