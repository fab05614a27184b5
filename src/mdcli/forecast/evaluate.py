"""One held-out forecast evaluation: the skill table of every model and control, the
sampled frames (``eval_samples.h5``), the figures and, for the teacher, its response to each
ERA5 variable. Shared by ``train`` (tc_teacher) and ``distill``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mdcli.forecast.config import EvalConfig, SamplingConfig
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import HeldOut
from mdcli.forecast.response import response_report, teacher_responses
from mdcli.forecast.samples_file import (
    evaluation_digest,
    fingerprint,
    reusable_ensembles,
    write_eval_samples,
)
from mdcli.forecast.sampling import sample_forecasts
from mdcli.forecast.skill import (
    baseline_skill,
    baselines,
    denoising_skill,
    extractor_skill,
    sample_skill,
)

HEADLINE = ("clean_mse_pooled_top", "track_error_px", "track_error_ensemble_px")
CONTROLS = {"teacher_other_storm_era5": "other_storm", "teacher_zero_era5": "zero",
            "teacher_no_era5": "no_era5"}


def gain(model: float, control: float) -> float:
    """Relative improvement of ``model`` over ``control`` (lower is better): 1 - m / c."""
    return 1.0 - model / control if control else float("nan")


def skill_table(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{model: {figure: value}}``: clean-estimate and sample figures side by side."""
    table: dict[str, dict[str, float]] = {}
    for name, values in result["clean_estimate"].items():
        table.setdefault(name, {}).update(values)
    for name, values in result.get("samples", {}).items():
        table.setdefault(name, {}).update(values)
    return table


def era5_value(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The teacher's gain over each ERA5 control on the headline figures."""
    teacher = table.get("teacher", {})
    return {short: {k: gain(teacher[k], table[name][k]) for k in HEADLINE
                    if k in teacher and k in table[name]}
            for name, short in CONTROLS.items() if name in table}


def evaluate_forecasts(models: dict[str, Forecaster], held: HeldOut, objective,
                       cfg: EvalConfig, sampling: SamplingConfig, device: torch.device,
                       run_path: Path, attrs: dict, causal_links: dict,
                       respond: bool = False, reuse: Path | None = None) -> dict[str, Any]:
    """Evaluate ``models`` on ``held`` and write ``eval_samples.h5`` and ``figures/`` under
    ``run_path``; ``respond``: also the teacher's response to each ERA5 variable."""
    from mdcli.plots.samples import plot_frames, plot_per_level

    per_level = denoising_skill(models, held, objective, cfg, device, sampling.clip)
    fixed = baselines(held)
    fixed_skill = {name: baseline_skill(f, held, cfg.pool) for name, f in fixed.items()}
    floor = fixed_skill["persistence"]
    result: dict[str, Any] = {
        "windows": len(held), "objective": objective.name,
        "prediction": getattr(objective, "prediction", None),
        "clean_estimate": {**{name: {k: v[k] for k in ("clean_mse_top", "clean_mse_pooled_top",
                                                         "eps_mse_mean")}
                              for name, v in per_level.items()}, **fixed_skill},
        "per_level": {"noise_level": next(iter(per_level.values()))["noise_level"],
                      **{name: {k: v[k] for k in ("eps_mse", "clean_mse", "clean_mse_pooled")}
                         for name, v in per_level.items()}},
    }
    figures = run_path / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot_per_level(result["per_level"], figures / "skill_per_level.png",
                   floor={"clean_mse": floor["clean_mse_top"],
                          "clean_mse_pooled": floor["clean_mse_pooled_top"]})
    if sampling.method != "none":
        seeds = list(range(cfg.seed, cfg.seed + cfg.members))
        shared = evaluation_digest(held, objective, sampling, seeds, cfg.batch_size, device)
        prints = {name: fingerprint(m, shared) for name, m in models.items()}
        shape = (len(seeds), *held.target.shape)
        ensemble = reusable_ensembles(reuse, prints, shape) if reuse else {}
        fresh = {name: m for name, m in models.items() if name not in ensemble}
        new = [sample_forecasts(fresh, held, objective, sampling, device, seed,
                                cfg.batch_size) for seed in seeds]
        ensemble = {name: ensemble[name] if name in ensemble
                    else torch.stack([d[name] for d in new]) for name in models}
        draws = [{name: f[i] for name, f in ensemble.items()} for i in range(len(seeds))]
        result["samples"] = {name: sample_skill(f, held, cfg.pool) for name, f in ensemble.items()}
        result["samples"].update({name: sample_skill(f, held, cfg.pool)
                                  for name, f in fixed.items()})
        result["extractor_on_truth"] = extractor_skill(held)
        write_eval_samples(run_path / "eval_samples.h5", held, ensemble, sampling, seeds, prints)
        n = min(sampling.num_samples, len(held))
        plot_frames({"last condition": held.cond[:n, -1], "truth": held.target[:n, 0],
                     **{name: f[:n, 0] for name, f in draws[0].items()}},
                    figures / "samples.png")
        if respond and "teacher" in models:
            seeds = list(range(cfg.seed, cfg.seed + cfg.response_draws))
            responses = teacher_responses(models["teacher"], held, objective, sampling, device,
                                          seeds, [d["teacher"] for d in draws], cfg.batch_size,
                                          cfg.response_steps)
            result["response"] = response_report(responses, held, attrs, causal_links,
                                                 cfg.response_steps)
    result["era5_value"] = era5_value(skill_table(result))
    return result


FIGURES = (("clean_mse_pooled_top", "pooled clean MSE", "{:.4f}"),
           ("clean_mse_top", "clean MSE", "{:.4f}"),
           ("track_error_px", "track px", "{:.2f}"),
           ("track_error_km", "track km", "{:.0f}"),
           ("track_error_ensemble_px", "ens. track px", "{:.2f}"),
           ("coldness_error_k", "cold K", "{:.2f}"),
           ("cloudy_area_error", "area km2", "{:.0f}"))


def format_table(table: dict[str, dict[str, float]]) -> str:
    """The skill table as aligned text (lower is better everywhere)."""
    cols = [f for f in FIGURES if any(f[0] in row for row in table.values())]
    width = max(len(n) for n in table) + 2
    lines = ["".ljust(width) + "".join(f"{label:>17s}" for _, label, _ in cols)]
    for name, row in table.items():
        cells = "".join(f"{(fmt.format(row[key]) if key in row else '-'):>17s}"
                        for key, _, fmt in cols)
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines)


def skill_report(result: dict[str, Any]) -> str:
    """What ``train``/``distill`` print: the skill table and the gains that matter."""
    lines = [f"forecast skill on {result['windows']} held-out windows (lower is better):",
             format_table(skill_table(result))]
    for control, gains in result.get("era5_value", {}).items():
        text = ", ".join(f"{k} {100 * v:+.1f}%" for k, v in gains.items())
        lines.append(f"teacher vs {control} ERA5: {text}")
    if result.get("lead_closed"):
        text = ", ".join(f"{k} {100 * v:.0f}%" for k, v in result["lead_closed"].items())
        lines.append(f"share of the teacher's lead the distillation closes: {text}")
    if "response" in result:
        drivers = ", ".join(f"{k}: {v}" for k, v in result["response"]["strongest_driver"].items())
        auroc = result["response"].get("auroc")
        lines.append(f"strongest ERA5 driver of {drivers}"
                     + (f" (AUROC {auroc:.2f} against the generator's links)"
                        if auroc is not None else ""))
    return "\n".join(lines)
