"""The main job on built-in defaults: synthetic cyclones -> teacher -> student -> tsne -> align.

The ``*_step`` functions build the chain's steps (tiny configs, a few minutes on a 2-core CPU);
each is the command a researcher would type, so its result folder is the usual one. Over
several training seeds the chain also runs the ablations of the distillation loss and
:func:`seed_table` / :func:`mdcli.forecast.seeds.aggregate` turn the runs into the
mean ± standard-error tables of docs/distill.md. The data are the same for every seed (the
data config's own seed): seeds vary the training, never the held-out storms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdcli.chain import Step, StepResult
from mdcli.config import resolve_config_path

DATA_CONFIG = "data/tc_tiny"
TEACHER_CONFIG = "train/tc_teacher_tiny"
STUDENT_CONFIG = "distill/tc_tiny"
# distill variants beside the full loss (whose run also trains the undistilled student)
ABLATIONS = {
    "student_output_only": ["loss.feat=0", "loss.causal=0"],
    "student_output_features": ["loss.causal=0"],
    "student_output_causal": ["loss.feat=0"],
}
ABLATION_SETS = ["eval.baseline=false", "eval.controls=false"]


def _common(seed: int, device: str) -> list[str]:
    return ["--seed", str(seed), "--device", device]


def _sets(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def data_step(work_dir: Path) -> Step:
    """Generate the tiny synthetic cyclone file under ``work_dir/data``."""
    config = resolve_config_path(DATA_CONFIG)
    return Step("data", ["data", "synth-tc", "-c", str(config)], inputs=[config],
                output=(work_dir / "data" / "tc_tiny.h5").resolve())


def teacher_step(data: Path, seed: int, device: str) -> Step:
    """Train the ERA5 teacher (and its ERA5-free twin) on ``data``."""
    config = resolve_config_path(TEACHER_CONFIG)
    return Step("teacher", ["train", "-c", str(config), "--set", f"data.path={data}",
                            *_common(seed, device)],
                inputs=[config, data], resumable=True)


def student_step(data: Path, teacher: Path, seed: int, device: str, name: str = "student",
                 sets: list[str] | None = None) -> Step:
    """Distil ``teacher`` into the satellite-only student (``sets``: an ablation)."""
    config = resolve_config_path(STUDENT_CONFIG)
    return Step(name, ["distill", "-c", str(config), "--teacher", str(teacher),
                       "--set", f"data.path={data}", *_sets(sets or []), *_common(seed, device)],
                inputs=[config, data, teacher], resumable=True)


def ablation_steps(data: Path, teacher: Path, seed: int, device: str) -> list[Step]:
    """The distillation-loss ablations (same seed, data, teacher and budget as the student)."""
    return [student_step(data, teacher, seed, device, name, [*sets, *ABLATION_SETS])
            for name, sets in ABLATIONS.items()]


def tsne_step(student: Path, data: Path, seed: int, device: str) -> Step:
    """The four t-SNE figures of teacher vs student features."""
    return Step("tsne", ["tsne", "--ckpt", str(student), *_common(seed, device)],
                inputs=[student, data])


def align_step(student: Path, data: Path, seed: int, device: str) -> Step:
    """The alignment metrics and grade of the student's features."""
    return Step("align", ["align", "--ckpt", str(student), *_common(seed, device)],
                inputs=[student, data])


def last_checkpoint(result: StepResult) -> Path:
    return result.path / "checkpoints" / "last.pt"


def seed_table(results: dict[str, StepResult]) -> dict[str, dict[str, float]]:
    """One seed's skill table: the teacher run's models and controls, the student and the
    undistilled student, and each ablation's student under its own name."""
    from mdcli.forecast.evaluate import skill_table

    table = dict(skill_table(results["teacher"].summary["eval"]))
    table.update(skill_table(results["student"].summary["eval"]))
    for name in ABLATIONS:
        if name in results:
            table[name] = skill_table(results[name].summary["eval"])["student"]
    return table


def report(results: dict[str, StepResult]) -> dict[str, Any]:
    """Where the figures, the alignment grade and the forecast skill are, and their values."""
    teacher, student = results["teacher"].summary["eval"], results["student"].summary["eval"]
    out: dict[str, Any] = {
        "steps": {name: {"path": str(r.path), "reused": r.reused} for name, r in results.items()},
        "skill": seed_table(results),
        "era5_value": teacher.get("era5_value", {}),
        "lead_closed": student.get("lead_closed", {}),
        "response": teacher.get("response", {}),
        "samples": str(results["student"].path / "figures" / "samples.png"),
        "eval_samples": str(results["student"].path / "eval_samples.h5"),
    }
    if "align" in results:
        out.update(grade=results["align"].summary.get("grade"),
                   alignment=str(results["align"].path / "alignment.json"),
                   figures=sorted(str(p) for p in results["tsne"].path.glob("*.png")))
    return out


def seeds_report(per_seed: dict[int, dict[str, StepResult]]) -> dict[str, Any]:
    """Mean ± SE over seeds of every model's skill and of the claims docs/distill.md makes:
    the teacher's gain over each ERA5 control, the student's paired lead over the
    undistilled student, the share of the teacher's lead it closes, the response AUROC."""
    from mdcli.forecast.evaluate import HEADLINE
    from mdcli.forecast.seeds import aggregate, mean_se, paired_difference

    tables = [seed_table(results) for results in per_seed.values()]
    teacher = [r["teacher"].summary["eval"] for r in per_seed.values()]
    student = [r["student"].summary["eval"] for r in per_seed.values()]
    controls = {c for t in teacher for c in t.get("era5_value", {})}
    return {
        "seeds": list(per_seed),
        "skill": aggregate(tables),
        "era5_value": {c: {k: mean_se([t["era5_value"][c][k] for t in teacher
                                       if k in t.get("era5_value", {}).get(c, {})])
                           for k in HEADLINE} for c in sorted(controls)},
        "distillation_gain": {k: paired_difference(tables, "student",
                                                          "student_no_distill", k)
                                     for k in HEADLINE},
        "lead_closed": {k: mean_se([s["lead_closed"][k] for s in student
                                    if k in s.get("lead_closed", {})]) for k in HEADLINE},
        "response_auroc": mean_se([t["response"]["auroc"] for t in teacher
                                   if "auroc" in t.get("response", {})]),
        "strongest_driver": [t["response"]["strongest_driver"] for t in teacher
                             if "response" in t],
    }
