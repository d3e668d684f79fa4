"""``sinotriage compare``: the sinogram-vs-reconstruction study in one command."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import typer

from sinotriage.cli._common import check_device, console, user_errors
from sinotriage.errors import InputError
from sinotriage.experiments.presets import STUDY_PRESETS

_PRESET_HELP = "; ".join(f"{p.name} ({p.purpose}; data preset {p.data_preset})"
                         for p in STUDY_PRESETS.values())


def compare(
    out: Path = typer.Option(..., "--out", help="Results directory (created; a rerun resumes)."),
    preset: str = typer.Option("quick", help=f"Study preset: {_PRESET_HELP}."),
    config: Path | None = typer.Option(
        None, "--config", help="Study YAML; its keys override the preset's."
    ),
    store: Path | None = typer.Option(
        None, "--store", help="Dataset store (DIR.zarr); default: synthesize the preset's data."
    ),
    device: str = typer.Option("cpu", help="Torch device of training: cpu, cuda, cuda:N."),
    data_workers: int = typer.Option(
        2, "--data-workers", min=0, help="Worker processes for synthesis / preprocessing."
    ),
    workers: int = typer.Option(
        0, "--workers", min=0,
        help="Train the runs on a local dask cluster of this many 1-thread worker processes "
             "(0: the study's run_workers on the CPU - 2 for the quick preset - or one after "
             "the other in this process).",
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler",
        help="Train the runs on the dask cluster at this address (tcp://host:8786); workers "
             "started with --resources GPU=1 each train one run at a time on their GPU.",
    ),
    report_only: bool = typer.Option(
        False, "--report-only", help="Re-render report.md / report.html from results.json."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train every arm (sinogram / reconstruction / windowed, at several view counts) once per
    seed and training size on the same splits, then write results.json, report.md, report.html
    and the figures."""
    with user_errors():
        from sinotriage.experiments import load_study_config, rerender, run_study, study_preset
        from sinotriage.progress import progress_bar, wants_bars

        if report_only:
            results = rerender(out)
            console.print(f"re-rendered {out / 'report.md'} and {out / 'report.html'}")
            print_tables(results)
            return
        if workers and scheduler:
            raise InputError("give --workers or --scheduler, not both")
        if scheduler is None:
            check_device(device)  # the runs happen here: the device must exist here
        elif device != "cpu" and device != "cuda" and not (
                device.startswith("cuda:") and device[5:].isdigit()):
            raise InputError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
        cfg = study_preset(preset)
        if config is not None:
            cfg = load_study_config(config, base=cfg)
        n_runs = len(cfg.arms) * len(cfg.seeds) * max(1, len(cfg.train_sizes))
        if not workers and scheduler is None and device == "cpu" and n_runs > 1:
            workers = min(cfg.run_workers, os.cpu_count() or 1, n_runs)
            workers = workers if workers > 1 else 0
        console.print(f"study [bold]{cfg.name}[/]: {len(cfg.arms)} arms "
                      f"({', '.join(a.name for a in cfg.arms)}) x {len(cfg.seeds)} seeds x "
                      f"{max(1, len(cfg.train_sizes))} sizes = {n_runs} runs -> {out}")
        with contextlib.ExitStack() as stack:
            cluster: Any = scheduler
            if workers:
                from sinotriage.experiments.cluster import local_cluster

                cluster = stack.enter_context(local_cluster(workers))
            if progress and not wants_bars():  # a log: one plain line per finished run
                def bar(done: int, total: int, text: str = "") -> None:
                    console.print(f"[{done}/{total}] {text}", markup=False, highlight=False)
            else:
                bar = stack.enter_context(progress_bar("runs", n_runs,
                                                       enabled=None if progress else False))
            results = run_study(cfg, out, store=store, device=device, workers=data_workers,
                                progress=bar, data_progress=progress and console.is_terminal,
                                cluster=cluster)
    print_tables(results)
    if results.get("failed"):
        console.print(f"{len(results['failed'])} runs failed: {', '.join(results['failed'])}; "
                      "rerun the same command to retry them")
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}, {out / 'report.html'} "
                  f"in {results['timing'].get('total_seconds', 0):.0f} s")


def print_tables(results: dict[str, Any]) -> None:
    """The AUC table: a rich table on a terminal, plain text with every digit otherwise (so a
    log of ``sinotriage compare ... | tee log`` holds the numbers)."""
    from sinotriage.experiments.report import COLUMNS, plain_table, table_rows

    title = f"test AUC per arm (reference {results['study']['reference_arm']})"
    if not console.is_terminal:
        print(title)
        print(plain_table(results, "arms"))
        print()
        print("runs (per seed and training size)")
        print(plain_table(results, "runs"))
        if results.get("curve"):
            print()
            print("data-scaling curve")
            print(plain_table(results, "curve"))
        return
    from rich.table import Table

    table = Table(title=title)
    for title_, _, kind in COLUMNS:
        table.add_column(title_, justify="left" if kind == "text" else "right")
    for row in table_rows(results):
        table.add_row(*row)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
