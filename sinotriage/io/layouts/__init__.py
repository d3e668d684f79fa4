"""Public dataset layouts -> the dataset store (``sinotriage ingest``).

:func:`ingest` finds the studies of a dataset copy (one adapter per layout: :mod:`.rsna`,
:mod:`.cq500`, :mod:`.sinoct`, :mod:`.folder`), then writes each study with one task
(:func:`sinotriage.parallel.run_tasks`: in-process, a local dask cluster or a running scheduler)
into the same store layout as ``sinotriage synth`` (:mod:`sinotriage.io.store`):

- ``hu`` int16 (D, N, N): the DICOM series read by :func:`sinotriage.io.read_dicom_series`
  (ordered along the slice normal, HU, RSNA quirk fixed), resampled in-plane onto the store grid
  (N x N pixels of ``250 / N`` mm, centred on the image centre; air outside the field; the slices
  are kept as they are, their spacing is in the record);
- ``sinogram`` float32 (D, V, C): SinoCT's measured sinograms, or, for the datasets without
  sinograms (RSNA, CQ500, plain DICOM), ``project(hu_to_mu(hu), geometry)`` in the store's SinoCT
  fan-beam geometry (noise-free unless ``photons`` is given), as in the SinoCT study;
- ``labels`` uint8 (D, 6): RSNA slice labels (RSNA only); scan labels in the record;
- the record: ``source``, UIDs, DICOM and store spacing, files skipped under the reading policy,
  gaps, slices corrected for the RSNA quirk, the dataset's own fields.

Ingest is resumable and idempotent: studies already in the store are not read again, and a study
is written atomically, so an interrupted run is completed by running the same command again
(with other settings it is refused). At the end the studies are split train/val/test
(stratified by scan label; a split given by the dataset is kept) and the manifest is gathered.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinotriage.errors import InputError, StoreError
from sinotriage.io.layouts._common import StudySpec, ingest_study, resample_to_grid
from sinotriage.io.store import Store, create_store, open_store
from sinotriage.parallel import TaskError, check_workers, resolve_backend, run_tasks
from sinotriage.progress import ProgressCallback
from sinotriage.vocabulary import MU_WATER

__all__ = ["LAYOUTS", "IngestResult", "StudySpec", "discover", "ingest", "resample_to_grid"]

#: the supported layouts
LAYOUTS: tuple[str, ...] = ("sinoct", "rsna", "cq500", "dicom")

_RESUME_KEYS = ("layout", "preset", "photons", "backend", "device", "strict", "mapping",
                "mu_water")


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` did: the store, studies found / written / already present, and the
    number of files skipped under the reading policy (while scanning and inside studies)."""

    store: Store
    found: int
    written: int
    present: int
    skipped_files: int


def discover(layout: str, src: str | os.PathLike[str], *, strict: bool = False,
             mapping: str | os.PathLike[str] | None = None,
             labels_csv: str | os.PathLike[str] | None = None,
             progress: ProgressCallback | bool = True, workers: int = 0,
             scheduler: str | None = None) -> tuple[list[StudySpec], int, dict[str, Any]]:
    """The studies of a dataset copy: (specs, files skipped while scanning, layout settings).

    ``workers`` / ``scheduler`` parallelize the header scan of large trees (see
    :func:`sinotriage.io.layouts._common.scan_headers`).
    """
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if mapping is not None and layout != "sinoct":
        raise InputError(f"mapping is only used by the sinoct layout, not {layout!r}")
    if not Path(src).exists():
        raise FileNotFoundError(f"dataset folder {src} does not exist")
    if layout == "rsna":
        from sinotriage.io.layouts.rsna import discover_rsna

        specs, n = discover_rsna(src, strict=strict, labels_csv=labels_csv, progress=progress,
                            workers=workers, scheduler=scheduler)
        return specs, n, {"mapping": None}
    if labels_csv is not None:
        raise InputError(f"labels_csv is only used by the rsna layout, not {layout!r}")
    if layout == "cq500":
        from sinotriage.io.layouts.cq500 import discover_cq500

        specs, n = discover_cq500(src, strict=strict, progress=progress,
                            workers=workers, scheduler=scheduler)
        return specs, n, {"mapping": None}
    if layout == "sinoct":
        from sinotriage.io.layouts.sinoct import discover_sinoct, load_mapping

        m = load_mapping(mapping)
        specs, n = discover_sinoct(src, m, strict=strict)
        return specs, n, {"mapping": m.model_dump(mode="json")}
    from sinotriage.io.layouts.folder import discover_folder

    specs, n = discover_folder(src, strict=strict, progress=progress,
                            workers=workers, scheduler=scheduler)
    return specs, n, {"mapping": None}


def _require_studies(specs: list[StudySpec], layout: str, src: str | os.PathLike[str],
                     skipped: int) -> None:
    if not specs:
        raise InputError(f"{src}: no studies of layout {layout!r} found ({skipped} files skipped "
                         "while scanning); nothing to ingest")


def ingest(
    layout: str,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    preset: str = "sinoct",
    mapping: str | os.PathLike[str] | None = None,
    labels_csv: str | os.PathLike[str] | None = None,
    photons: float | None = None,
    strict: bool = False,
    backend: str | None = None,
    device: str = "cpu",
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    workers: int = 2,
    scheduler: str | None = None,
    progress: ProgressCallback | bool = True,
) -> IngestResult:
    """Ingest a dataset copy into a store (created, or resumed when it exists).

    Parameters
    ----------
    layout : {"sinoct", "rsna", "cq500", "dicom"}
    src : path-like
        The dataset folder (layouts: docs/data.md, "Real datasets", and the adapter modules).
    out : path-like
        Store directory (``NAME.zarr``).
    preset : {"tiny", "quick", "standard", "sinoct"}
        Image grid and scanner geometry of the store (:mod:`sinotriage.presets`). For ``sinoct``
        the views x channels come from the mapping's ``sinogram_shape`` (984 x 888 by default).
    mapping : path-like, optional
        YAML mapping of a SinoCT copy (:mod:`sinotriage.io.layouts.sinoct`).
    labels_csv : path-like, optional
        RSNA label file (default ``SRC/stage_2_train.csv``).
    photons : float, optional
        Add transmission Poisson noise at this many photons per bin to simulated sinograms
        (seeded by the study id); default noise-free.
    strict : bool
        Reading policy of :mod:`sinotriage.io.dicom`: True turns every skipped file, gap and
        missing label into an error (the study's task fails; the others go on).
    backend : {"numba", "torch", "astra"}, optional
        Projector of the simulated sinograms (default numba where installed, else torch; torch
        with ``device="cuda"``).
    device : {"cpu", "cuda"}
        Where simulated sinograms are projected (``cuda``: the torch backend on the GPU; use
        ``workers=0`` or 1 per GPU).
    fractions, seed
        Stratified train/val/test split of the studies without a split of their own.
    workers, scheduler, progress
        Where and how the per-study tasks run (:func:`sinotriage.parallel.run_tasks`).

    Returns
    -------
    IngestResult

    Raises
    ------
    InputError
        Bad options, a malformed label file, no studies in ``src``, or a store made with
        other settings (:class:`~sinotriage.errors.StoreError`).
    sinotriage.parallel.TaskError
        Some studies failed (after all ran; the others are written, the manifest is gathered).
    """
    from sinotriage.geometry import sinoct
    from sinotriage.operators import BACKENDS
    from sinotriage.presets import get_preset

    check_workers(workers, scheduler)
    p = get_preset(preset)  # an unknown name is an InputError
    backend = resolve_backend(device, backend)
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if photons is not None and (not float(photons) > 0):
        raise InputError(f"photons must be a positive number or None, got {photons!r}")
    specs, scan_skipped, extra = discover(layout, src, strict=strict, mapping=mapping,
                                          labels_csv=labels_csv, progress=progress,
                                          workers=workers, scheduler=scheduler)
    _require_studies(specs, layout, src, scan_skipped)
    if extra["mapping"] is not None:
        v, c = extra["mapping"]["sinogram_shape"]
        geometry = sinoct(image_size=p.image_size, n_views=int(v), n_det=int(c))
    else:
        geometry = p.geometry()
    settings: dict[str, Any] = {
        "layout": layout,
        "src": str(Path(src).resolve()),
        "preset": p.name,
        "photons": None if photons is None else float(photons),
        "backend": backend,
        "device": device,
        "strict": bool(strict),
        "mapping": extra["mapping"],
        "mu_water": MU_WATER,
        "split_fractions": [float(f) for f in fractions],
        "resampling": "in-plane Gaussian anti-aliasing + linear, centred; slices kept",
    }
    store = _open_or_create(Path(out), layout, settings, geometry)
    store.clean_partial()
    ids = [s.study_id for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dupes:
        raise InputError(f"{src}: several studies map to the same id {dupes[:3]}")
    todo = [s for s in specs if not store.has_study(s.study_id)]
    task = functools.partial(ingest_study, path=str(Path(out)), strict=bool(strict),
                             photons=settings["photons"], backend=backend, device=device)
    failure: TaskError | None = None
    results: list[dict[str, Any]] = []
    try:
        results = run_tasks(task, todo, workers=workers, scheduler=scheduler,
                            labels=[s.study_id for s in todo],
                            description=f"ingest {layout}", progress=progress)
    except TaskError as exc:
        failure = exc
    if store.study_ids():
        store.assign_splits(fractions, seed=seed)
        store.write_manifest()
    in_studies = sum(int(r.get("n_skipped_files", 0)) for r in store.manifest)
    store.update_attrs(ingest_report={"found": len(specs), "files_skipped_scanning": scan_skipped,
                                      "files_skipped_in_studies": in_studies})
    if failure is not None:
        raise failure
    written = sum(bool(r["written"]) for r in results)
    return IngestResult(store=store, found=len(specs), written=written,
                        present=len(specs) - written, skipped_files=scan_skipped + in_studies)


def _open_or_create(out: Path, layout: str, settings: dict[str, Any], geometry: Any) -> Store:
    if not out.exists():
        return create_store(out, {"source": layout, "settings": settings,
                                  "mu_water": settings["mu_water"]}, geometry=geometry)
    store = open_store(out, mode="r+")
    if store.attrs.get("source") != layout:
        raise StoreError(f"store {out} exists with source {store.attrs.get('source')!r}, not "
                         f"{layout!r}; choose another --out")
    old = store.attrs.get("settings", {})
    for key in _RESUME_KEYS:
        if old.get(key) != settings[key]:
            raise StoreError(f"store {out} was ingested with {key}={old.get(key)!r}, not "
                             f"{settings[key]!r}; resume with the same settings or choose "
                             "another --out")
    if store.attrs.get("geometry") != geometry.to_dict():
        raise StoreError(f"store {out} has another geometry than preset {settings['preset']!r}")
    return store
