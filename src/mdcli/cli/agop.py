"""``mdcli agop``: AGOP/NFM and H-G-M alignment across the checkpoints of training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mdcli.cli.options import (
    DEFAULT_WORK_DIR,
    ConfigOpt,
    DeviceOpt,
    NameOpt,
    SeedOpt,
    SetOpt,
    WorkDirOpt,
    config_mapping,
)
from mdcli.config import from_dict
from mdcli.errors import InputError

COMPARISON_FILE = "agop_comparison.png"
TABLE_COLUMNS = (("agop_vs_nfm", "AGOP/NFM"), ("sqrt_agop_vs_nfm", "AGOP^1/2/NFM"),
                 ("g_vs_h", "G vs H"), ("g_vs_m", "G vs M"), ("h_vs_m", "H vs M"))


def _int_list(option: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated integers, "
                         f"e.g. 0,1,2,3,4") from None


def _keys(cfg: Any) -> dict[str, str]:
    from mdcli.analysis.agop_runs import display_key

    return {key: display_key(key, cfg) for key, _ in TABLE_COLUMNS if key != "sqrt_agop_vs_nfm"}


def _print_table(results: list[dict[str, Any]], keys: dict[str, str]) -> None:
    from rich.table import Table

    from mdcli.logs import console

    table = Table(title=f"AGOP / H-G-M similarities at the final epoch "
                        f"({keys['agop_vs_nfm']}, ...)")
    for column in ("model", "epoch", "layer", *(label for _, label in TABLE_COLUMNS)):
        table.add_column(column, justify="left" if column == "model" else "right")
    for result in results:
        for layer, entry in result["layers"].items():
            cells = [f"{entry[keys.get(key, key)][-1]:.3f}" for key, _ in TABLE_COLUMNS]
            table.add_row(result["model"], str(result["epochs"][-1]), layer, *cells)
    console.print(table)


def _final_values(result: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    return {"final_epoch": result["epochs"][-1], "seconds": result["computed"]["seconds"],
            "samples": result["computed"]["samples"], "metric": keys["agop_vs_nfm"],
            "layers": {layer: {key: entry[keys.get(key, key)][-1] for key, _ in TABLE_COLUMNS}
                       for layer, entry in result["layers"].items()}}


def agop(
    model_args: Annotated[list[str] | None, typer.Argument(
        metavar="MODEL", help="Model run folders (same as --models).",
        show_default=False)] = None,
    models: Annotated[list[str] | None, typer.Option(
        "--models", metavar="NAME", show_default=False,
        help="Run folder names under --experiments-dir, or paths: --models a b c.")] = None,
    experiments_dir: Annotated[Path | None, typer.Option(
        "--experiments-dir", "--experiments_dir", show_default=False,
        help="Where the runs are (default WORK_DIR/train).")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", "--output_dir", show_default=False,
        help="Write the outputs here (default: a run folder WORK_DIR/agop/<name>/).")] = None,
    layers: Annotated[str | None, typer.Option(
        "--layers", metavar="0,1,2,3,4", help="Linear layer indices (default: all).")] = None,
    epochs: Annotated[str | None, typer.Option(
        "--epochs", metavar="1,5,10|all", help="Epochs to analyse; 0 is always added.")] = None,
    max_samples: Annotated[int | None, typer.Option(
        "--max-samples", "--max_samples", help="Use a seeded subset of N samples (default: all).",
        show_default=False)] = None,
    split: Annotated[str | None, typer.Option(
        "--split", metavar="train|val|all", help="Which samples (default: train).")] = None,
    remove_init: Annotated[bool | None, typer.Option(
        "--remove-init/--keep-init", help="NFM of W - W(epoch 0) instead of W.",
        show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Samples per batched pass (default 512).",
        show_default=False)] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", metavar="cosine|pearson_sqrt",
        help="Similarity in the table, plots and summary (default cosine).",
        show_default=False)] = None,
    centred_agop: Annotated[bool | None, typer.Option(
        "--centred-agop/--plain-agop", help="Show the Jacobian-centred AGOP.",
        show_default=False)] = None,
    config: ConfigOpt = None, sets: SetOpt = None, work_dir: WorkDirOpt = DEFAULT_WORK_DIR,
    name: NameOpt = None, device: DeviceOpt = None, seed: SeedOpt = None,
) -> None:
    """AGOP vs NFM, G vs H, G vs M and H vs M per layer and epoch, for each model."""
    import torch

    from mdcli.analysis.agop_runs import AgopConfig, analyse_model, plan_model, threads_for_load
    from mdcli.devices import resolve_device
    from mdcli.logs import log
    from mdcli.plots.agop import plot_comparison, plot_enhanced_analysis
    from mdcli.runs import dump_json, start_run

    raw = config_mapping(config, sets)
    given = {"models": [*(models or []), *(model_args or [])] or None,
             "experiments_dir": str(experiments_dir) if experiments_dir else None,
             "layers": _int_list("--layers", layers) if layers else None,
             "epochs": [] if epochs == "all" else _int_list("--epochs", epochs) if epochs else None,
             "max_samples": max_samples, "split": split, "remove_init": remove_init,
             "batch_size": batch_size, "device": device, "seed": seed, "metric": metric,
             "centred_agop": centred_agop}
    raw.update({k: v for k, v in given.items() if v is not None})
    cfg = from_dict(AgopConfig, raw)
    if not cfg.models:
        raise InputError("--models: name at least one model run folder, e.g. --models adam_run")
    names = [Path(m).name for m in cfg.models]
    if len(set(names)) != len(names):
        raise InputError(f"--models: two models share a folder name ({names}); outputs would clash")
    root = Path(cfg.experiments_dir) if cfg.experiments_dir else work_dir / "train"
    plans = [plan_model(m, root, cfg) for m in cfg.models]
    keys = _keys(cfg)
    compute_device = resolve_device(cfg.device)
    torch_threads = threads_for_load()
    with start_run("agop", cfg, work_dir=work_dir, name=name, path=output_dir,
                   config_name=config, device=str(compute_device)) as run:
        results = []
        if torch_threads != torch.get_num_threads():
            log.info("busy machine: computing with %d torch thread(s)", torch_threads)
            torch.set_num_threads(torch_threads)
        for plan in plans:
            result = analyse_model(plan, cfg, run.path / "cache", compute_device)
            dump_json(run.path / f"{result['model']}_similarities.json", result)
            plot_enhanced_analysis(result, run.path / f"{result['model']}_enhanced_analysis.png",
                                   keys)
            results.append(result)
            run.update_summary(models={result["model"]: _final_values(result, keys)})
        if len(results) > 1:
            plot_comparison(results, run.path / COMPARISON_FILE, keys)
        _print_table(results, keys)
    from mdcli.logs import console

    console.print(f"outputs: {run.path}")
