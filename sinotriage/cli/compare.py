"""``sinotriage compare``: the sinogram-vs-reconstruction study in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from sinotriage.cli._common import console, user_errors

_PRESETS = ("tiny", "quick", "standard", "sinoct")


def compare(
    out: Path = typer.Option(..., "--out", help="Results directory (created; a rerun resumes)."),
    preset: str = typer.Option("quick", help=f"Study preset: {', '.join(_PRESETS)}."),
    config: Path | None = typer.Option(
        None, "--config", help="Study YAML; its keys override the preset's."
    ),
    store: Path | None = typer.Option(
        None, "--store", help="Dataset store (DIR.zarr); default: synthesize the preset's data."
    ),
    device: str = typer.Option("cpu", help="Torch device of training: cpu, cuda, cuda:N."),
    workers: int = typer.Option(2, min=0, help="Worker processes for synthesis / preprocessing."),
    report_only: bool = typer.Option(
        False, "--report-only", help="Re-render report.md / report.html from results.json."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train every arm (sinogram / reconstruction / windowed, at several view counts) on the same
    splits and budget, then write results.json, report.md, report.html and the figures."""
    with user_errors():
        from sinotriage.experiments import load_study_config, rerender, run_study, study_preset

        if report_only:
            results = rerender(out)
            console.print(f"re-rendered {out / 'report.md'} and {out / 'report.html'}")
            _print_table(results)
            return
        if preset not in _PRESETS:
            raise ValueError(f"--preset must be one of {_PRESETS}, got {preset!r}")
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"--device {device}: CUDA is not available on this machine")
        elif device != "cpu":
            raise ValueError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
        cfg = study_preset(preset)
        if config is not None:
            cfg = load_study_config(config, base=cfg)
        console.print(f"study [bold]{cfg.name}[/]: {len(cfg.arms)} arms "
                      f"({', '.join(a.name for a in cfg.arms)}) -> {out}")
        results = run_study(cfg, out, store=store, device=device, workers=workers,
                            progress=progress)
    _print_table(results)
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}, {out / 'report.html'} "
                  f"in {results['timing'].get('total_seconds', 0):.0f} s")


def _print_table(results: dict) -> None:
    from rich.table import Table

    from sinotriage.experiments.report import COLUMNS, table_rows

    table = Table(title=f"test AUC per arm (reference {results['study']['reference_arm']})")
    for title, _, kind in COLUMNS:
        table.add_column(title, justify="left" if kind == "text" else "right")
    for row in table_rows(results):
        table.add_row(*row)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
