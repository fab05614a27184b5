"""``mdcli condense``: NCFM dataset condensation (images or text), then its evaluation.

Under ``torchrun --nproc_per_node=N -m mdcli condense ...`` the classes are split over the
ranks; rank 0 writes the run folder. ``--evaluate syn_data_XXX.pth`` only evaluates a saved
synthetic set (with the config stored in it, or ``--config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from mdcli.cli.options import (
    DEFAULT_WORK_DIR,
    ConfigOpt,
    DeviceOpt,
    NameOpt,
    SeedOpt,
    SetOpt,
    WorkDirOpt,
    config_overrides,
)
from mdcli.errors import InputError

COMMAND = "condense"
InitName = Literal["random", "noise", "mix", "load"]


def _overrides(sets: list[str] | None, seed: int | None, device: str | None, ipc: int | None,
               init: str | None, load_path: Path | None, sampling_net: bool | None) -> list[str]:
    out = config_overrides(sets, seed, device)
    if ipc is not None:
        out.append(f"condense.ipc={ipc}")
    if load_path is not None:
        if not load_path.is_file():
            raise InputError(f"--load-path {load_path}: file not found (expected a syn_data_*.pth)")
        if init not in (None, "load"):
            raise InputError(f"--load-path: starts from a saved set, so it needs --init load, "
                             f"not --init {init}")
        out.append(f"condense.load_path={load_path}")
        init = "load"
    if init is not None:
        out.append(f"condense.init={init}")
    if sampling_net is not None:
        out.append(f"condense.sampling_net={str(sampling_net).lower()}")
    return out


def condense(
    config: ConfigOpt = None, sets: SetOpt = None, work_dir: WorkDirOpt = DEFAULT_WORK_DIR,
    name: NameOpt = None, device: DeviceOpt = None, seed: SeedOpt = None,
    ipc: Annotated[int | None, typer.Option(
        "--ipc", min=1, help="Synthetic samples per class (condense.ipc).")] = None,
    init: Annotated[str | None, typer.Option(
        "--init", metavar="random|noise|mix|load",
        help="How synthetic data start (condense.init).")] = None,
    load_path: Annotated[Path | None, typer.Option(
        "--load-path", help="syn_data_*.pth to start from (implies --init load).")] = None,
    sampling_net: Annotated[bool | None, typer.Option(
        "--sampling-net/--no-sampling-net",
        help="Learn the frequencies adversarially (condense.sampling_net).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log every iteration.")] = False,
    tf32: Annotated[bool, typer.Option(
        "--tf32/--no-tf32", help="Allow TF32 matmuls on CUDA.")] = True,
    evaluate: Annotated[Path | None, typer.Option(
        "--evaluate", metavar="SYN_DATA.pth",
        help="Only evaluate this saved synthetic set.")] = None,
) -> None:
    """Condense a dataset with NCFM (or MMD) and evaluate the condensed set."""
    import torch

    from mdcli import dist
    from mdcli.condense.config import CondenseConfig
    from mdcli.condense.evaluate import evaluation_table
    from mdcli.condense.reference import load_condense_config
    from mdcli.config import apply_override, from_dict
    from mdcli.logs import console
    from mdcli.runs import start_run

    if init is not None and init not in InitName.__args__:
        raise InputError(f"--init {init!r}: expected one of random, noise, mix, load")
    overrides = _overrides(sets, seed, device, ipc, init, load_path, sampling_net)
    if evaluate is not None:
        from mdcli.condense.synfile import load_syn

        if config:
            cfg = load_condense_config(config, overrides)
        else:
            raw = load_syn(evaluate)["config"]
            for override in overrides:
                apply_override(raw, override)
            cfg = from_dict(CondenseConfig, raw)
    else:
        if not config:
            raise InputError("--config: required, a YAML file or a packaged name such as "
                             "condense/digits_ipc10 (or --evaluate FILE)")
        cfg = load_condense_config(config, overrides)
        if cfg.condense.init == "load" and not cfg.condense.load_path:
            raise InputError("--init load: needs --load-path FILE (a syn_data_*.pth) or "
                             "condense.load_path in the config")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if debug:
        from mdcli.logs import setup_logging

        setup_logging(verbose=True)
    ctx = dist.init_distributed(cfg.device)
    try:
        from mdcli.runs import resolve_run_dir

        stem = config or (evaluate.stem if evaluate else None)
        path = dist.broadcast_object(resolve_run_dir(work_dir, COMMAND, name, stem)
                                     if ctx.is_main else None)
        with start_run(COMMAND, cfg, path=path, enabled=ctx.is_main,
                       device=str(ctx.device)) as run:
            if evaluate is not None:
                from mdcli.condense.pipeline import evaluate_file

                result = {"evaluation": evaluate_file(cfg, evaluate, run, ctx.device)} \
                    if ctx.is_main else {}
            else:
                from mdcli.condense.pipeline import condense as run_condense

                result = run_condense(cfg, run, ctx, work_dir, debug=debug)
        if ctx.is_main:
            if "evaluation" in result:
                console.print(evaluation_table(result["evaluation"]))
            if result.get("syn_data"):
                console.print(f"condensed data: {result['syn_data']}")
            console.print(f"run folder: {run.path}")
    finally:
        dist.cleanup()
