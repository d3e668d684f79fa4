"""The shared part of every layout adapter: study specs, header scans, resampling, the per-study
ingest task."""

from __future__ import annotations

import logging
import os
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.dicom import DicomError, DicomWarning, list_files, read_dicom_series, read_header
from sinotriage.progress import ProgressCallback, counting
from sinotriage.vocabulary import LABEL_NAMES, MU_WATER

logger = logging.getLogger("sinotriage.io.layouts")

#: air, the value outside the scanned field after resampling (HU)
AIR_HU = -1000.0

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class StudySpec:
    """What one ingest task reads and writes (picklable; sent to dask workers).

    Attributes
    ----------
    study_id : str
        Store id of the study.
    files : list of str
        DICOM files of the series (empty: no reconstructed images).
    series_uid : str or None
        The series to read among ``files`` (None: the reading policy decides).
    slice_labels : dict or None
        ``{SOPInstanceUID: [6 flags]}`` (RSNA order) for slice labels; None: no slice labels.
    record : dict
        Manifest fields known before reading (scan labels, split, source paths, ...).
    sinogram_files : list of str or None
        Measured sinogram slices, inferior to superior (SinoCT); None: simulate them.
    sinogram_format : str
        ``"npy"`` or ``"dicom"``.
    sinogram_scale : float
        Factor from stored sinogram values to line integrals of mu.
    """

    study_id: str
    files: list[str] = field(default_factory=list)
    series_uid: str | None = None
    slice_labels: dict[str, list[int]] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    sinogram_files: list[str] | None = None
    sinogram_format: str = "npy"
    sinogram_scale: float = 1.0


def safe_id(text: str) -> str:
    """A valid store study id from any text (other characters become ``_``, at most 128)."""
    out = _UNSAFE.sub("_", str(text)).lstrip("._-")[:128]
    if not out:
        raise InputError(f"cannot make a study id from {text!r}")
    return out


def warn(message: str) -> None:
    """A :class:`DicomWarning` that is also logged (dask workers' logs keep it)."""
    logger.warning(message)
    warnings.warn(message, DicomWarning, stacklevel=3)


#: header fields kept by the scan (all the adapters need to group and choose series)
HEADER_TAGS: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SeriesDescription",
    "ConvolutionKernel",
    "SliceThickness",
    "Modality",
    "Rows",
)

#: files per header-scan task on dask (larger trees than this are scanned in parallel)
SCAN_CHUNK = 2000


class Header(dict):
    """The scanned fields of one file (:data:`HEADER_TAGS`), as strings; ``h.get(name)`` and
    ``h.Name`` read them (small and picklable, unlike a pydicom Dataset)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Scan:
    """Headers of a file tree: ``headers`` [(path, Header)] of image files, ``skipped``
    [(path, message)] of files that are not usable DICOM images, and ``reasons`` the reason
    of each skipped file (:data:`sinotriage.io.dicom.REASONS`)."""

    headers: list[tuple[str, Header]]
    skipped: list[tuple[str, str]]
    reasons: list[str] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        """``{reason: number of files skipped}``, most frequent first."""
        return dict(Counter(self.reasons).most_common())


def nothing_found(src: str | os.PathLike[str], what: str, n_files: int, scan: Scan | None = None,
                  left_out: str = "") -> InputError:
    """The error of a dataset folder in which no study was found, with the skip counts.

    Parameters
    ----------
    src
        The folder.
    what
        What was looked for (e.g. ``"CT series"``).
    n_files
        Files looked at.
    scan
        The header scan, for the counts of files skipped by reason.
    left_out
        Why groups of readable files were left out (e.g. ``"2 series with fewer than 2 slices"``).
    """
    parts = [f"{src}: no {what} found among {n_files} file{'s' if n_files != 1 else ''}"]
    if scan is not None and scan.reasons:
        counts = ", ".join(f"{r} {n}" for r, n in scan.skipped_by_reason().items())
        parts.append(f"{len(scan.reasons)} skipped ({counts})")
    if left_out:
        parts.append(f"left out: {left_out}")
    return InputError("; ".join(parts) + "; nothing to ingest")


def _scan_one(path: str) -> tuple[Header | None, str | None, str]:
    """(header, None, "") or (None, message, reason) for one file."""
    try:
        ds = read_header(path)
    except DicomError as exc:
        return None, str(exc), exc.reason or "unreadable"
    if "Rows" not in ds or "SeriesInstanceUID" not in ds:
        return None, f"{path}: no image (no Rows / SeriesInstanceUID); not part of any series", \
            "no-pixels"
    return Header({t: str(ds.get(t)) for t in HEADER_TAGS if ds.get(t) is not None}), None, ""


def _scan_chunk(paths: Sequence[str]) -> list[tuple[Header | None, str | None, str]]:
    return [_scan_one(p) for p in paths]


def scan_headers(paths: Iterable[str], strict: bool,
                 progress: ProgressCallback | bool | None = False,
                 workers: int = 0, scheduler: str | None = None) -> Scan:
    """Read the header of every file (no pixel data); non-DICOM and non-image files are skipped
    with a warning naming the file (``strict``: :class:`DicomError`).

    Trees of more than :data:`SCAN_CHUNK` files are scanned as dask tasks of that many files
    when ``workers > 0`` or a ``scheduler`` is given (:func:`sinotriage.parallel.run_tasks`).
    """
    from sinotriage.parallel import run_tasks

    paths = list(paths)
    if len(paths) > SCAN_CHUNK and (workers > 0 or scheduler is not None):
        chunks = [paths[i:i + SCAN_CHUNK] for i in range(0, len(paths), SCAN_CHUNK)]
        results = [r for part in run_tasks(_scan_chunk, chunks, workers=workers,
                                           scheduler=scheduler, description="reading headers",
                                           progress=progress) for r in part]
    else:
        results = []
        with counting(progress if len(paths) > 200 else False, "reading headers",
                      len(paths)) as advance:
            for p in paths:
                results.append(_scan_one(p))
                advance()
    scan = Scan([], [], [])
    for p, (header, message, reason) in zip(paths, results, strict=True):
        if header is not None:
            scan.headers.append((p, header))
            continue
        if strict:
            raise DicomError(message or p, p, reason)
        scan.skipped.append((p, message or p))
        scan.reasons.append(reason or "unreadable")
        warn(f"skipped {message}")
    return scan


_NOT_IMAGES = (".csv", ".yaml", ".yml", ".md")


def tree_files(folder: str | os.PathLike[str],
               exclude: Sequence[str] = _NOT_IMAGES) -> list[str]:
    """All files under ``folder`` (sorted; hidden files and the given suffixes excluded)."""
    return [f for f in list_files(folder, recursive=True) if not f.lower().endswith(tuple(exclude))]


# -- resampling ----------------------------------------------------------------------------------
def resample_to_grid(hu: np.ndarray, pixel_spacing: Sequence[float], size: int,
                     pixel_size: float, fill: float = AIR_HU) -> np.ndarray:
    """Resample slices onto the store's ``size x size`` grid of ``pixel_size`` mm.

    Both grids are centred on the image centre (taken as the scanner isocentre). Where the
    target pixel is larger than the source pixel by a factor ``f > 1``, the slice is first smoothed
    with a Gaussian of ``sigma = (f - 1) / 2`` source pixels (anti-aliasing), then interpolated
    linearly; outside the source field the value is ``fill`` (air).

    Parameters
    ----------
    hu : numpy.ndarray
        (D, H, W) HU.
    pixel_spacing : (dy, dx)
        Source pixel spacing in mm.
    size : int
        Target N.
    pixel_size : float
        Target pixel size in mm.

    Returns
    -------
    numpy.ndarray
        (D, N, N) float32 HU.
    """
    from scipy import ndimage

    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim != 3:
        raise ValueError(f"hu must be (D, H, W), got shape {hu.shape}")
    dy, dx = (float(v) for v in pixel_spacing)
    if dy <= 0 or dx <= 0:
        raise ValueError(f"pixel_spacing must be positive, got {pixel_spacing!r}")
    d, h, w = hu.shape
    if h == w == size and np.isclose(dy, pixel_size) and np.isclose(dx, pixel_size):
        return hu.copy()
    fy, fx = pixel_size / dy, pixel_size / dx
    sigma = (0.0, max(0.0, (fy - 1) / 2), max(0.0, (fx - 1) / 2))
    src = ndimage.gaussian_filter(hu, sigma, mode="nearest") if max(sigma) > 0 else hu
    offset = (0.0, (h - 1) / 2 - (size - 1) / 2 * fy, (w - 1) / 2 - (size - 1) / 2 * fx)
    out = ndimage.affine_transform(src, (1.0, fy, fx), offset=offset, output_shape=(d, size, size),
                                   order=1, mode="constant", cval=fill)
    return out.astype(np.float32, copy=False)


# -- the per-study task --------------------------------------------------------------------------
def _load_sinograms(spec: StudySpec, shape: tuple[int, int]) -> np.ndarray:
    out = []
    for f in spec.sinogram_files or []:
        if spec.sinogram_format == "npy":
            try:
                arr = np.load(f, allow_pickle=False)
            except Exception as exc:  # noqa: BLE001
                raise InputError(
                    f"{f}: unreadable sinogram ({type(exc).__name__}: {exc})") from None
        else:
            import pydicom
            from pydicom.pixels import apply_modality_lut

            try:
                ds = pydicom.dcmread(f)
                arr = apply_modality_lut(ds.pixel_array, ds)
            except Exception as exc:  # noqa: BLE001
                raise InputError(
                    f"{f}: unreadable sinogram ({type(exc).__name__}: {exc})") from None
        arr = np.asarray(arr, dtype=np.float64) * spec.sinogram_scale
        if arr.shape != tuple(shape):
            raise InputError(f"{f}: sinogram slice of shape {arr.shape}, expected {tuple(shape)} "
                             "(views x channels; see sinogram_shape in the mapping)")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{f}: sinogram holds NaN or infinite values")
        out.append(arr.astype(np.float32))
    return np.stack(out)


def ingest_study(spec: StudySpec, *, path: str, strict: bool, photons: float | None,
                 backend: str, mu_water: float = MU_WATER, device: str = "cpu") -> dict[str, Any]:
    """Read, resample, label, (simulate) and write one study (one dask task).

    Returns ``{"study_id", "written", "skipped"}`` (files skipped under the reading policy).
    """
    import torch

    from sinotriage.io.store import open_store

    store = open_store(path, mode="r+")
    if store.has_study(spec.study_id):
        return {"study_id": spec.study_id, "written": False, "skipped": 0}
    g = store.geometry
    n = int(g.image_shape[0])
    record: dict[str, Any] = dict(spec.record)
    arrays: dict[str, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    if spec.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DicomWarning)
            vol = read_dicom_series(spec.files, strict=strict, series_uid=spec.series_uid)
        for w in caught:
            logger.warning("%s: %s", spec.study_id, w.message)
        skipped = [{"path": s.path, "reason": s.reason} for s in vol.skipped]
        hu = resample_to_grid(vol.hu, vol.spacing[1:], n, float(g.pixel_size))
        arrays["hu"] = hu
        record.update({
            "study_uid": vol.uids["study"],
            "series_uid": vol.uids["series"],
            "dicom_spacing": [float(v) for v in vol.spacing],
            "dicom_shape": [int(v) for v in vol.hu.shape],
            "spacing": [float(vol.spacing[0]), float(g.pixel_size), float(g.pixel_size)],
            "n_rsna_fixed": int(vol.meta["n_rsna_fixed"]),
            "gaps": [[int(i), float(gap)] for i, gap in vol.gaps],
            "dicom_meta": {k: v for k, v in vol.meta.items() if k != "files"},
        })
        if spec.slice_labels is not None:
            rows = [spec.slice_labels.get(sop) for sop in vol.uids["sop"]]
            missing = [sop for sop, r in zip(vol.uids["sop"], rows, strict=True) if r is None]
            if missing:
                msg = (f"study {spec.study_id}: {len(missing)} of {len(rows)} slices have no "
                       f"labels (e.g. SOP {missing[0]}); written without slice labels")
                if strict:
                    raise InputError(msg)
                warn(msg)
            else:
                arrays["labels"] = np.asarray(rows, dtype=np.uint8).reshape(-1, len(LABEL_NAMES))
    if spec.sinogram_files is not None:
        sino = _load_sinograms(spec, tuple(g.sinogram_shape))
        if "hu" in arrays and sino.shape[0] != arrays["hu"].shape[0]:
            raise InputError(f"study {spec.study_id}: {sino.shape[0]} sinogram slices but "
                             f"{arrays['hu'].shape[0]} reconstructed slices")
        record["sinogram_source"] = "measured"
    else:
        from sinotriage.operators import add_poisson_noise, hu_to_mu, project

        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                hu_t = torch.from_numpy(np.rint(arrays["hu"]).astype(np.float32)).to(device)
                sino_t = project(hu_to_mu(hu_t, mu_water=mu_water), g, backend=backend)
                if photons is not None:
                    gen = torch.Generator(device=device).manual_seed(
                        zlib.crc32(spec.study_id.encode()))
                    sino_t = add_poisson_noise(sino_t, photons, generator=gen)
                sino_t = sino_t.cpu()
        finally:
            torch.set_num_threads(old)
        sino = sino_t.numpy().astype(np.float32, copy=False)
        record["sinogram_source"] = "simulated"
    arrays["sinogram"] = sino
    record["n_skipped_files"] = len(skipped)
    record["skipped_files"] = skipped
    written = store.write_study(spec.study_id, arrays, record)
    return {"study_id": spec.study_id, "written": bool(written), "skipped": len(skipped)}
