"""``mdcli quickstart``: the whole tiny chain, reusing the steps that already finished.
The steps are in :mod:`mdcli.quickstart`, the reuse rule in :mod:`mdcli.chain`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated

import typer

from mdcli.cli.options import DEFAULT_WORK_DIR, DeviceOpt, NameOpt, SeedOpt, WorkDirOpt
from mdcli.errors import EXIT_INTERRUPTED, InputError, RunFailure

COMMAND = "quickstart"

SeedsOpt = Annotated[str | None, typer.Option(
    "--seeds", metavar="LIST",
    help="Comma-separated training seeds (e.g. 0,1,2): run teacher and student per seed and "
         "report mean ± standard error; overrides --seed.")]
AblationsOpt = Annotated[bool, typer.Option(
    "--ablations", help="Also distil with the loss ablations (output only, + features, "
                        "+ causal) per seed.")]


@dataclass
class QuickstartConfig:
    seed: int = 0
    device: str = "auto"
    seeds: list[int] = field(default_factory=list)
    ablations: bool = False


def parse_seeds(text: str | None) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; distinct integers or an InputError naming --seeds."""
    if text is None:
        return []
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--seeds {text!r}: expected comma-separated integers such as "
                         f"0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds {text!r}: expected distinct integers such as 0,1,2")
    return seeds


def _invoke(root: typer.Context, argv: Sequence[str]) -> None:
    """Run one mdcli command in this process, with the console flags of this one, through
    ``root``, the context of the running ``mdcli`` (so this module needs no import of the app)."""
    from mdcli.logs import log, state

    flags = ["-v"] * state.verbose + ["-q"] * state.quiet
    log.info("$ mdcli %s", " ".join(argv))
    code = root.command.main(args=[*flags, *argv], prog_name="mdcli", standalone_mode=False)
    if code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt(f"step 'mdcli {argv[0]}' was interrupted")
    if isinstance(code, int) and code != 0:
        raise RunFailure(f"step 'mdcli {argv[0]}' exited with code {code}")


def _print_report(rep: dict) -> None:
    from mdcli.forecast.evaluate import FIGURES, HEADLINE, format_table
    from mdcli.forecast.seeds import format_aggregate
    from mdcli.logs import console

    steps = "\n".join(f"  {name:16s} {s['path']}{'  (reused)' if s['reused'] else ''}"
                      for name, s in rep["steps"].items())
    lines = [f"steps:\n{steps}", "forecast skill on held-out storms (lower is better):",
             format_table(rep["skill"])]
    for control, gains in rep["era5_value"].items():
        lines.append(f"teacher vs {control} ERA5: " + ", ".join(
            f"{k} {100 * v:+.1f}%" for k, v in gains.items()))
    if "seeds" in rep:
        agg = rep["seeds"]
        lines += [f"over seeds {agg['seeds']} (mean ± standard error):",
                  format_aggregate(agg["skill"], [f for f in FIGURES if f[0] in HEADLINE])]
        gains = agg.get("distillation_gain", {})
        if gains:
            lines.append("distillation gain (undistilled - student, paired per seed): " + ", ".join(
                f"{k} {g['mean']:.4g} ± {g['se']:.2g} (z = {g['z']:.1f})"
                for k, g in gains.items()))
    lines.append(f"alignment grade: {rep['grade']} ({rep['alignment']})")
    lines.append("figures:\n" + "\n".join(f"  {p}" for p in [*rep["figures"], rep["samples"]]))
    console.print("\n".join(lines))


def quickstart(ctx: typer.Context, work_dir: WorkDirOpt = DEFAULT_WORK_DIR, name: NameOpt = None,
               device: DeviceOpt = None, seed: SeedOpt = None, seeds: SeedsOpt = None,
               ablations: AblationsOpt = False) -> None:
    """Generate synthetic cyclones, train the teacher, distil the student, run tsne and align
    (tiny configs, a few minutes on a CPU). A re-run reuses the finished steps."""
    from mdcli import quickstart as qs
    from mdcli.chain import Step, StepResult, run_step
    from mdcli.devices import resolve_device
    from mdcli.progress import progress
    from mdcli.runs import start_run

    cfg = QuickstartConfig(seed=0 if seed is None else seed, device=device or "auto",
                           seeds=parse_seeds(seeds), ablations=ablations)
    resolve_device(cfg.device)  # a bad --device fails here, before any step runs
    train_seeds = cfg.seeds or [cfg.seed]
    per_seed_steps = 2 + (len(qs.ABLATIONS) if ablations else 0)
    chain = name or COMMAND
    work = work_dir.resolve()
    with start_run(COMMAND, cfg, work_dir=work, name=chain) as run, \
            progress(3 + per_seed_steps * len(train_seeds), "quickstart", every=0.0) as bar:
        listed: dict[str, StepResult] = {}

        def step(made: Step, label: str) -> StepResult:
            bar.advance(0, step=label)
            listed[label] = result = run_step(made, chain, work, partial(_invoke, ctx.find_root()))
            bar.advance(1, step=f"{label} {'reused' if result.reused else 'done'}")
            return result

        tag = (lambda s: f"@{s}") if len(train_seeds) > 1 else (lambda s: "")
        data = step(qs.data_step(work), "data").path
        per_seed: dict[int, dict[str, StepResult]] = {}
        for s in train_seeds:
            res = per_seed[s] = {}
            res["teacher"] = step(qs.teacher_step(data, s, cfg.device), f"teacher{tag(s)}")
            teacher = qs.last_checkpoint(res["teacher"])
            res["student"] = step(qs.student_step(data, teacher, s, cfg.device),
                                  f"student{tag(s)}")
            for made in qs.ablation_steps(data, teacher, s, cfg.device) if ablations else []:
                res[made.name] = step(made, f"{made.name}{tag(s)}")
        first = per_seed[train_seeds[0]]
        student = qs.last_checkpoint(first["student"])
        first["tsne"] = step(qs.tsne_step(student, data, train_seeds[0], cfg.device), "tsne")
        first["align"] = step(qs.align_step(student, data, train_seeds[0], cfg.device), "align")
        rep = qs.report(first)
        rep["steps"] = {label: {"path": str(r.path), "reused": r.reused}
                        for label, r in listed.items()}
        if len(train_seeds) > 1:
            rep["seeds"] = qs.seeds_report(per_seed)
        run.update_summary(**rep)
    _print_report(rep)
