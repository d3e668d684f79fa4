"""``sinotriage synth``: write a synthetic head-CT dataset store (seeded, resumable, on dask)."""

from __future__ import annotations

from pathlib import Path

import typer

from sinotriage.cli._common import console, user_errors


def synth(
    out: Path = typer.Option(..., "--out", help="Store directory to write or resume (NAME.zarr)."),
    studies: int = typer.Option(..., "--studies", min=1, help="Number of studies."),
    preset: str = typer.Option("quick", help="Data preset: tiny, quick, standard or sinoct."),
    seed: int = typer.Option(0, min=0, help="Seed of the whole dataset."),
    prevalence: float = typer.Option(0.55, help="Fraction of studies with hemorrhage (0..1)."),
    photons: float | None = typer.Option(
        None, help="Unattenuated photons per detector bin (default: the preset's)."),
    backend: str | None = typer.Option(
        None, help="Projector backend: numba or torch (default numba where installed)."),
    device: str = typer.Option("cpu", help="Project on cpu or cuda (torch backend on the GPU)."),
    workers: int = typer.Option(
        2, min=0, help="Local dask worker processes (0: run in this process)."),
    scheduler: str | None = typer.Option(
        None, help="Address of a running dask scheduler (tcp://host:8786); overrides --workers."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Generate N seeded synthetic head CT studies with simulated sinograms into a zarr store.

    A rerun with the same arguments writes only the studies that are missing.
    """
    import time

    from sinotriage.progress import progress_bar
    from sinotriage.synth import synthesize
    from sinotriage.vocabulary import SPLITS

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with user_errors(), progress_bar("synth studies", 0, enabled=None if progress else False
                                     ) as bar:
        result = synthesize(out, studies, preset=preset, seed=seed, prevalence=prevalence,
                            photons=photons, backend=backend, device=device, workers=workers,
                            scheduler=scheduler, progress=bar)
    manifest = result.store.manifest
    counts = {s: sum(r["split"] == s for r in manifest) for s in SPLITS}
    positive = sum(r["label"] == 1 for r in manifest)
    console.print(
        f"{out}: {len(manifest)} studies ({result.written} written, {result.skipped} already "
        f"present), {positive} with hemorrhage; splits {counts}; "
        f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU (driver)"
    )


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
