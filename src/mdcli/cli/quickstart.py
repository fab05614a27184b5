"""``mdcli quickstart``: the whole tiny chain, reusing the steps that already finished.
The steps are in :mod:`mdcli.quickstart`, the reuse rule in :mod:`mdcli.chain`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mdcli.cli.options import DEFAULT_WORK_DIR, DeviceOpt, NameOpt, SeedOpt, WorkDirOpt
from mdcli.errors import EXIT_INTERRUPTED, RunFailure

COMMAND = "quickstart"


@dataclass
class QuickstartConfig:
    seed: int = 0
    device: str = "auto"


def _invoke(argv: Sequence[str]) -> None:
    """Run one mdcli command in this process, with the console flags of this one."""
    from mdcli.cli.app import app
    from mdcli.logs import log, state

    flags = ["-v"] * state.verbose + ["-q"] * state.quiet
    log.info("$ mdcli %s", " ".join(argv))
    code = app(args=[*flags, *argv], prog_name="mdcli", standalone_mode=False)
    if code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt(f"step 'mdcli {argv[0]}' was interrupted")
    if isinstance(code, int) and code != 0:
        raise RunFailure(f"step 'mdcli {argv[0]}' exited with code {code}")


def _print_report(rep: dict) -> None:
    from mdcli.logs import console

    losses = ", ".join(f"{k} {v:.4f}" for k, v in rep["dsm_loss"].items())
    steps = "\n".join(f"  {name:8s} {s['path']}{'  (reused)' if s['reused'] else ''}"
                      for name, s in rep["steps"].items())
    figures = "\n".join(f"  {path}" for path in [*rep["figures"], rep["samples"]])
    console.print(f"steps:\n{steps}\nheld-out denoising loss: {losses}\n"
                  f"alignment grade: {rep['grade']} ({rep['alignment']})\nfigures:\n{figures}")


def quickstart(work_dir: WorkDirOpt = DEFAULT_WORK_DIR, name: NameOpt = None,
               device: DeviceOpt = None, seed: SeedOpt = None) -> None:
    """Generate synthetic cyclones, train the teacher, distil the student, run tsne and align
    (tiny configs, a few minutes on a CPU). A re-run reuses the finished steps."""
    from mdcli import quickstart as qs
    from mdcli.chain import Step, StepResult, run_step
    from mdcli.devices import resolve_device
    from mdcli.progress import progress
    from mdcli.runs import start_run

    cfg = QuickstartConfig(seed=0 if seed is None else seed, device=device or "auto")
    resolve_device(cfg.device)  # a bad --device fails here, before any step runs
    chain = name or COMMAND
    work = work_dir.resolve()
    with start_run(COMMAND, cfg, work_dir=work, name=chain) as run, \
            progress(5, "quickstart", every=0.0) as bar:
        results = {}

        def step(made: Step) -> StepResult:
            bar.advance(0, step=made.name)
            results[made.name] = result = run_step(made, chain, work, _invoke)
            bar.advance(1, step=f"{made.name} {'reused' if result.reused else 'done'}")
            return result

        data = step(qs.data_step(work, cfg.seed)).path
        teacher = qs.last_checkpoint(step(qs.teacher_step(data, cfg.seed, cfg.device)))
        student = qs.last_checkpoint(step(qs.student_step(data, teacher, cfg.seed, cfg.device)))
        step(qs.tsne_step(student, data, cfg.seed, cfg.device))
        step(qs.align_step(student, data, cfg.seed, cfg.device))
        rep = qs.report(results)
        run.update_summary(**rep)
    _print_report(rep)
