"""``sinotriage preprocess``: sinograms at fewer views and their FBP reconstructions, per study."""

from __future__ import annotations

from pathlib import Path

import typer

from sinotriage.cli._common import console, parse_int_list, user_errors


def preprocess(
    store: Path = typer.Argument(..., help="The dataset store (NAME.zarr)."),
    views: str = typer.Option(
        "984,492,246,123,61", help="Comma-separated view counts, each at most the stored count."),
    noise_photons: float | None = typer.Option(
        None, "--noise-photons", help="Add Poisson noise at this many photons per bin (lower dose)."),
    filter: str = typer.Option("ram-lak", "--filter", help="FBP ramp window."),
    cutoff: float = typer.Option(1.0, help="FBP cutoff as a fraction of Nyquist, in (0, 1]."),
    seed: int = typer.Option(0, min=0, help="Seed of the extra noise."),
    backend: str | None = typer.Option(
        None, help="FBP backend: numba, torch, astra or auto (default numba where installed)."),
    device: str = typer.Option("cpu", help="Reconstruct on cpu or cuda."),
    split: str | None = typer.Option(None, help="Only this split: train, val or test."),
    workers: int = typer.Option(
        2, min=0, help="Local dask worker processes (0: run in this process)."),
    scheduler: str | None = typer.Option(
        None, help="Address of a running dask scheduler (tcp://host:8786); overrides --workers."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Derive sinograms at each view count and their FBP reconstructions (HU) for every study.

    View counts above the stored count are refused; counts that do not divide it keep the nearest
    measured views. Resumable: a rerun computes only what is missing.
    """
    import time

    from sinotriage.preprocess import preprocess as run
    from sinotriage.progress import progress_bar

    counts = parse_int_list(views, "--views")
    t0 = time.perf_counter()
    with user_errors(), progress_bar("preprocess studies", 0, enabled=None if progress else False
                                     ) as bar:
        if not store.exists():
            raise FileNotFoundError(f"no dataset store at {store}")
        result = run(store, counts, photons=noise_photons, filter=filter, cutoff=cutoff,
                     seed=seed, backend=backend, device=device, split=split, workers=workers,
                     scheduler=scheduler, progress=bar)
    console.print(
        f"{store}: {result.written} derived groups written, {result.studies_done_before} studies "
        f"already complete; views {sorted(set(counts), reverse=True)}; "
        f"{time.perf_counter() - t0:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("preprocess")(preprocess)
