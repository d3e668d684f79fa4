"""``sinotriage ingest``: a public dataset copy or a DICOM tree -> a dataset store."""

from __future__ import annotations

from pathlib import Path

import typer

from sinotriage.cli._common import console, user_errors

LAYOUT_HELP = "Dataset layout: sinoct, rsna, cq500 or dicom (plain DICOM tree, unlabeled)."


def ingest(
    layout: str = typer.Argument(..., help=LAYOUT_HELP),
    src: Path = typer.Argument(..., help="The dataset folder."),
    out: Path = typer.Option(..., "--out", help="Store directory to write or resume (NAME.zarr)."),
    preset: str = typer.Option(
        "sinoct", help="Store grid and geometry: tiny, quick, standard or sinoct."),
    mapping: Path | None = typer.Option(
        None, help="YAML mapping of a SinoCT copy (see docs/data.md)."),
    labels_csv: Path | None = typer.Option(
        None, "--labels-csv", help="RSNA label file (default SRC/stage_2_train.csv)."),
    photons: float | None = typer.Option(
        None, help="Poisson noise on simulated sinograms (photons per bin; default none)."),
    strict: bool = typer.Option(
        False, help="Refuse odd files (corrupt, other series, duplicates, gaps) instead of "
                    "skipping them with a warning."),
    backend: str | None = typer.Option(
        None, help="Projector for simulated sinograms: numba or torch (default numba)."),
    device: str = typer.Option(
        "cpu", help="Project simulated sinograms on cpu or cuda (torch backend on the GPU)."),
    seed: int = typer.Option(0, min=0, help="Seed of the train/val/test split."),
    workers: int = typer.Option(
        2, min=0, help="Local dask worker processes (0: run in this process)."),
    scheduler: str | None = typer.Option(
        None, help="Address of a running dask scheduler (tcp://host:8786); overrides --workers."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Ingest SinoCT, RSNA 2019, CQ500 or plain DICOM into a dataset store.

    Studies already in the store are skipped, so an interrupted run resumes.
    """
    import logging
    import time

    from sinotriage.io.layouts import ingest as run_ingest
    from sinotriage.progress import progress_bar
    from sinotriage.vocabulary import SPLITS

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    with user_errors(), progress_bar(f"ingest {layout}", 0, enabled=None if progress else False
                                     ) as bar:
        result = run_ingest(layout, src, out, preset=preset, mapping=mapping,
                            labels_csv=labels_csv, photons=photons, strict=strict,
                            backend=backend, device=device, seed=seed, workers=workers,
                            scheduler=scheduler, progress=bar)
    manifest = result.store.manifest
    counts = {s: sum(r["split"] == s for r in manifest) for s in SPLITS}
    labels = {v: sum(r["label"] == v for r in manifest) for v in (1, 0, -1)}
    console.print(
        f"{out}: {len(manifest)} studies ({result.written} written, {result.present} already "
        f"present) of {result.found} found; labels positive/negative/unknown "
        f"{labels[1]}/{labels[0]}/{labels[-1]}; splits {counts}; {result.skipped_files} files "
        f"skipped; {time.perf_counter() - t0:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
