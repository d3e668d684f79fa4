"""Read CT DICOM slices and series into Hounsfield units (pydicom 3).

:func:`read_dicom_slice` reads one file; :func:`read_dicom_series` reads a folder (or a list of
files) into a :class:`DicomVolume` ``(D, H, W)`` float32 HU volume with slices ordered along the
slice normal.

HU
--
``hu = stored * RescaleSlope + RescaleIntercept`` through :func:`pydicom.pixels.apply_modality_lut`
(float64, cast to float32). **RSNA 2019 quirk**: some slices of the RSNA intracranial-hemorrhage
challenge store signed 12-bit values as unsigned. When ``BitsStored == 12``,
``PixelRepresentation == 0`` and ``RescaleIntercept > -100``, the stored values are corrected
the way the top public RSNA pipelines do: add 1000, subtract 4096 from those ``>= 4096``, and use
intercept -1000 (``hu = ((stored + 1000) mod 4096) * slope - 1000``). The fix is applied
automatically and logged (logger ``sinotriage.io.dicom``, level INFO) with the file name.

Geometry
--------
The slice normal is ``n = row x col`` of ``ImageOrientationPatient`` (the first three and last
three numbers). Slices are sorted by ``ImagePositionPatient . n`` ascending, which for the usual
axial orientation (``1,0,0,0,1,0``: ``n = +z``, the patient's head) is inferior to superior. The
slice spacing ``dz`` is the median difference of the sorted projections; ``(dy, dx)`` is
``PixelSpacing`` (row spacing, column spacing). A single slice takes ``dz`` from
``SpacingBetweenSlices``, else ``SliceThickness``, else 0 (unknown).

Reading policy
--------------
Every file that cannot contribute to the volume has a *reason*; ``strict=True`` raises
:class:`DicomError` (a ``ValueError``) naming the file and the reason, ``strict=False`` skips it
with a :class:`DicomWarning` naming the file, and lists it in ``vol.skipped`` (``vol.n_skipped``
counts them). A corrupt file never crashes the process: every exception of pydicom on one file
becomes a reason.

==================  ==============================================================================
reason              what
==================  ==============================================================================
``unreadable``      not DICOM, truncated or corrupt (pydicom cannot parse it, or its pixel data
                    is shorter than the header says)
``no-pixels``       a DICOM file without an image (structured report, RT structure set, DICOMDIR)
``multi-frame``     more than one frame per file (enhanced CT is not supported)
``needs-plugin``    a compressed transfer syntax whose decoder is not installed; the message names
                    the plugins: ``pylibjpeg`` with ``pylibjpeg-libjpeg`` / ``pylibjpeg-openjpeg``
                    / ``pylibjpeg-rle``, or ``python-gdcm``
``no-geometry``     no ``ImagePositionPatient`` / ``ImageOrientationPatient`` / ``PixelSpacing``
``other-series``    the folder holds several ``SeriesInstanceUID``; without ``series_uid`` the
                    series with the most slices is read (ties: the smallest UID) and the others
                    are skipped (strict: an error listing the series and their file counts)
``image-size``      ``Rows x Columns`` (or the orientation or pixel spacing) differ from the
                    series' majority; the minority files are skipped
``duplicate``       two slices at the same position (within 1 % of the spacing, at least 1 um);
                    the first by ``(InstanceNumber, file name)`` is kept
==================  ==============================================================================

Gaps larger than ``1.5 x`` the median slice spacing (missing slices) cannot be repaired by
skipping: ``strict=True`` raises naming the files on both sides, ``strict=False`` keeps the
slices, warns, and lists them in ``vol.gaps`` (``DicomError.reason`` is then ``"gap"``). An empty
result (every file skipped) always raises.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DicomError",
    "DicomWarning",
    "DicomSlice",
    "DicomVolume",
    "Skipped",
    "REASONS",
    "read_dicom_slice",
    "read_dicom_series",
    "read_header",
    "rsna_quirk_applies",
    "list_files",
]

logger = logging.getLogger(__name__)


class _RsnaUidFilter(logging.Filter):
    """Drop pydicom's log line about RSNA-style UIDs (``ID_1a2b3c``, not valid UI values but the
    identifiers of the RSNA 2019 files): one per tag per file would flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("Invalid value for VR UI: 'ID_")


logging.getLogger("pydicom").addFilter(_RsnaUidFilter())

#: reasons a file is skipped or refused (see the module docstring)
REASONS: tuple[str, ...] = (
    "unreadable",
    "no-pixels",
    "multi-frame",
    "needs-plugin",
    "no-geometry",
    "other-series",
    "image-size",
    "duplicate",
)

#: header tags kept in ``DicomSlice.meta`` / ``DicomVolume.meta`` (no patient identifiers)
META_TAGS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "KVP",
    "SliceThickness",
    "ConvolutionKernel",
    "SeriesDescription",
    "BodyPartExamined",
    "ContrastBolusAgent",
)

_PLUGIN_HINT = (
    "install a decoder plugin: `pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
    "pylibjpeg-rle` or `pip install python-gdcm`"
)

GAP_FACTOR = 1.5


class DicomError(ValueError):
    """A DICOM file or series cannot be read under the policy (the message names the file)."""

    def __init__(self, message: str, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


class DicomWarning(UserWarning):
    """A file was skipped, or a series has gaps (``strict=False``)."""


@dataclass(frozen=True)
class Skipped:
    """A file left out of a volume: its path, the reason (one of :data:`REASONS`), a message."""

    path: str
    reason: str
    message: str


@dataclass
class DicomSlice:
    """One CT slice.

    Attributes
    ----------
    hu : numpy.ndarray
        (H, W) float32 Hounsfield units.
    position : numpy.ndarray
        (3,) ``ImagePositionPatient`` in mm (centre of the first transmitted pixel).
    orientation : numpy.ndarray
        (6,) ``ImageOrientationPatient`` (row and column direction cosines).
    pixel_spacing : tuple of float
        (dy, dx) mm: row spacing, column spacing.
    uids : dict
        ``study``, ``series``, ``sop`` instance UIDs.
    instance : int
        ``InstanceNumber`` (0 when absent).
    meta : dict
        Selected header values (:data:`META_TAGS`), JSON-able.
    path : str
    rsna_fixed : bool
        Whether the RSNA 2019 quirk fix was applied.
    """

    hu: np.ndarray
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    uids: dict[str, str]
    instance: int
    meta: dict[str, Any]
    path: str
    rsna_fixed: bool = False

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit slice normal ``row x col``."""
        return _normal(self.orientation)


@dataclass
class DicomVolume:
    """A CT series as a HU volume.

    Attributes
    ----------
    hu : numpy.ndarray
        (D, H, W) float32 HU, slices ordered along the slice normal (ascending
        ``ImagePositionPatient . normal``; inferior to superior for axial scans).
    spacing : tuple of float
        (dz, dy, dx) mm.
    positions : numpy.ndarray
        (D, 3) ``ImagePositionPatient`` of each slice, mm.
    orientation : numpy.ndarray
        (6,) ``ImageOrientationPatient``.
    uids : dict
        ``study`` and ``series`` UIDs (str) and ``sop`` (list of D SOP instance UIDs, slice order).
    meta : dict
        Header values of the first slice (:data:`META_TAGS`), ``n_rsna_fixed`` (slices corrected
        for the RSNA quirk) and ``files`` (D paths, slice order).
    skipped : list of Skipped
        Files left out (``strict=False``).
    gaps : list of tuple
        ``(index, gap_mm)``: a gap larger than 1.5 x the median spacing between slice ``index``
        and ``index + 1``.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    positions: np.ndarray
    orientation: np.ndarray
    uids: dict[str, Any]
    meta: dict[str, Any]
    skipped: list[Skipped] = field(default_factory=list)
    gaps: list[tuple[int, float]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        """Number of files skipped."""
        return len(self.skipped)

    @property
    def files(self) -> list[str]:
        """Path of each slice, in slice order."""
        return list(self.meta["files"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]


# -- one file ------------------------------------------------------------------------------------
def rsna_quirk_applies(ds: Any) -> bool:
    """True when the RSNA 2019 fix applies: BitsStored 12, unsigned pixels, intercept > -100."""
    try:
        return (
            int(ds.get("BitsStored", 0)) == 12
            and int(ds.get("PixelRepresentation", -1)) == 0
            and float(ds.get("RescaleIntercept", -1024)) > -100
        )
    except (TypeError, ValueError):
        return False


def read_header(path: str | os.PathLike[str]) -> Any:
    """Read a file's header without pixel data; :class:`DicomError` ("unreadable") on failure."""
    return _dcmread(str(path), stop_before_pixels=True)


def _dcmread(path: str, stop_before_pixels: bool = False) -> Any:
    """``dcmread``; files without the preamble/meta header are accepted when they parse into a
    dataset with an SOP class, UIDs or a modality; any failure is "unreadable". The UIDs are
    decoded here (pydicom decodes lazily) with the non-standard-UID warning silenced."""
    try:
        with warnings.catch_warnings():
            # non-standard UIDs (the RSNA files use "ID_1a2b3c") are read as they are
            warnings.filterwarnings("ignore", message="Invalid value for VR UI")
            return _dcmread_uids(path, stop_before_pixels)
    except Exception as exc:  # noqa: BLE001 - any parse failure of one file is "unreadable"
        raise DicomError(f"{path}: unreadable ({type(exc).__name__}: {exc})", path,
                         "unreadable") from None


def _dcmread_uids(path: str, stop_before_pixels: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as first:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
        if not any(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "Modality")):
            raise first from None
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        ds.get(key)  # decoded now, while the warning is silenced
    return ds


def read_dicom_slice(path: str | os.PathLike[str]) -> DicomSlice:
    """Read one CT DICOM file into HU.

    Parameters
    ----------
    path : path-like
        A single-frame DICOM image.

    Returns
    -------
    DicomSlice
        ``hu`` (H, W) float32 HU (modality LUT; RSNA quirk fixed), geometry, UIDs, meta.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DicomError
        The file cannot be used; ``.reason`` is one of :data:`REASONS` (see the module docstring)
        and the message names the file.
    """
    from pydicom.pixels import apply_modality_lut

    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DICOM file {path} does not exist")
    ds = _dcmread(path)
    if "PixelData" not in ds:
        kind = getattr(ds.get("SOPClassUID"), "name", ds.get("SOPClassUID", "unknown"))
        raise DicomError(f"{path}: no image (no PixelData; SOP class {kind})", path, "no-pixels")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise DicomError(f"{path}: multi-frame image ({ds.NumberOfFrames} frames) is not "
                         "supported; export single-frame slices", path, "multi-frame")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        file_meta = getattr(ds, "file_meta", None)
        tsyntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
        if tsyntax is not None and tsyntax.is_compressed and _is_missing_plugin(exc):
            raise DicomError(
                f"{path}: compressed pixel data ({tsyntax.name}) needs a decoder plugin that is "
                f"not installed; {_PLUGIN_HINT}", path, "needs-plugin") from None
        raise DicomError(f"{path}: unreadable pixel data ({type(exc).__name__}: {exc})", path,
                         "unreadable") from None
    try:
        position = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
        spacing = tuple(float(v) for v in ds.PixelSpacing)
        if position.shape != (3,) or orientation.shape != (6,) or len(spacing) != 2:
            raise ValueError("wrong number of values")
        _normal(orientation)
    except Exception as exc:  # noqa: BLE001
        raise DicomError(f"{path}: no usable geometry (ImagePositionPatient, "
                         f"ImageOrientationPatient, PixelSpacing: {exc})", path,
                         "no-geometry") from None
    if stored.ndim != 2:
        raise DicomError(f"{path}: pixel data of shape {stored.shape} is not one grayscale image",
                         path, "no-pixels")
    fixed = rsna_quirk_applies(ds)
    if fixed:
        px = stored.astype(np.int32) + 1000
        px[px >= 4096] -= 4096
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        hu = (px * slope - 1000.0).astype(np.float32)
        logger.info("%s: RSNA 2019 quirk (BitsStored 12, PixelRepresentation 0, RescaleIntercept "
                    "%s): stored + 1000, wrapped at 4096, intercept -1000", path,
                    ds.get("RescaleIntercept"))
    else:
        hu = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    uids = {
        "study": str(ds.get("StudyInstanceUID", "")),
        "series": str(ds.get("SeriesInstanceUID", "")),
        "sop": str(ds.get("SOPInstanceUID", "")),
    }
    return DicomSlice(hu=hu, position=position, orientation=orientation,
                      pixel_spacing=(spacing[0], spacing[1]), uids=uids,
                      instance=_int(ds.get("InstanceNumber")), meta=_meta(ds), path=path,
                      rsna_fixed=fixed)


def _is_missing_plugin(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | NotImplementedError | ImportError) and (
        "plugin" in text or "missing" in text or "unable to decompress" in text
        or "no pixel data handler" in text
    )


def _meta(ds: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in META_TAGS:
        value = ds.get(tag)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            out[tag] = str(value)
        elif isinstance(value, int):
            out[tag] = int(value)
        elif isinstance(value, float):
            out[tag] = float(value)
        else:
            try:
                out[tag] = float(value)
            except (TypeError, ValueError):
                out[tag] = str(value)
    return out


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _normal(orientation: np.ndarray) -> np.ndarray:
    n = np.cross(orientation[:3], orientation[3:])
    norm = float(np.linalg.norm(n))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError(f"ImageOrientationPatient {list(orientation)} has parallel rows/columns")
    return n / norm


# -- a series ------------------------------------------------------------------------------------
def list_files(folder: str | os.PathLike[str], recursive: bool = False) -> list[str]:
    """Files of a folder (sorted, hidden files excluded), optionally of its whole tree."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    if recursive:
        found = [
            os.path.join(root, n)
            for root, dirs, names in os.walk(folder)
            for n in names
            if not n.startswith(".")
        ]
    else:
        found = [str(folder / n) for n in os.listdir(folder)
                 if not n.startswith(".") and (folder / n).is_file()]
    return sorted(found, key=_natural_key)


def _natural_key(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


class _Policy:
    """Collects skipped files; raises in strict mode."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skipped: list[Skipped] = []

    def skip(self, path: str, reason: str, message: str) -> None:
        if self.strict:
            raise DicomError(message, path, reason)
        self.skipped.append(Skipped(path, reason, message))
        warnings.warn(f"skipped {message}", DicomWarning, stacklevel=3)


def read_dicom_series(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    strict: bool = False,
    series_uid: str | None = None,
) -> DicomVolume:
    """Read a CT series (a folder or a list of files) into a HU volume.

    Parameters
    ----------
    source : path-like or iterable of path-like
        A folder (its files, not sub-folders; hidden files ignored) or the files of the series.
    strict : bool
        True: any file that cannot be used, and any gap, raises :class:`DicomError`. False: such
        files are skipped with a :class:`DicomWarning` naming the file and listed in
        ``vol.skipped``; gaps are warned about and listed in ``vol.gaps``.
    series_uid : str, optional
        Read this ``SeriesInstanceUID`` only (files of other series are skipped silently, not
        counted). Default: the only series, or the largest one (see the policy).

    Returns
    -------
    DicomVolume
        ``hu`` (D, H, W) float32 HU, ``spacing`` (dz, dy, dx) mm, ``positions`` (D, 3) mm, ...

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    DicomError
        ``strict`` and a file or the series breaks the policy (module docstring), or no slice is
        left.
    """
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"DICOM series {p} does not exist")
        files = list_files(p) if p.is_dir() else [str(p)]
        where = str(p)
    else:
        files = [str(f) for f in source]
        where = f"{len(files)} files" + (f" in {Path(files[0]).parent}" if files else "")
    if not files:
        raise DicomError(f"DICOM series {where}: no files", where, "unreadable")
    policy = _Policy(strict)
    slices: list[DicomSlice] = []
    for f in files:
        try:
            s = read_dicom_slice(f)
        except FileNotFoundError:
            raise
        except DicomError as exc:
            policy.skip(f, exc.reason or "unreadable", str(exc))
            continue
        if series_uid is not None and s.uids["series"] != series_uid:
            continue
        slices.append(s)
    slices = _one_series(slices, policy)
    slices = _one_shape(slices, policy)
    if not slices:
        raise DicomError(f"DICOM series {where}: no readable image left "
                         f"({len(policy.skipped)} files skipped)", where, "unreadable")
    normal = slices[0].normal
    proj = np.asarray([float(s.position @ normal) for s in slices])
    order = sorted(range(len(slices)), key=lambda i: (proj[i], slices[i].instance,
                                                      _natural_key(slices[i].path)))
    slices = [slices[i] for i in order]
    proj = proj[order]
    slices, proj = _drop_duplicates(slices, proj, policy)
    dz, gaps = _slice_spacing(slices, proj, policy)
    dy, dx = slices[0].pixel_spacing
    meta = dict(slices[0].meta)
    meta["n_rsna_fixed"] = int(sum(s.rsna_fixed for s in slices))
    meta["files"] = [s.path for s in slices]
    return DicomVolume(
        hu=np.stack([s.hu for s in slices]).astype(np.float32, copy=False),
        spacing=(dz, float(dy), float(dx)),
        positions=np.stack([s.position for s in slices]),
        orientation=slices[0].orientation.copy(),
        uids={"study": slices[0].uids["study"], "series": slices[0].uids["series"],
              "sop": [s.uids["sop"] for s in slices]},
        meta=meta,
        skipped=policy.skipped,
        gaps=gaps,
    )


def _one_series(slices: list[DicomSlice], policy: _Policy) -> list[DicomSlice]:
    counts = Counter(s.uids["series"] for s in slices)
    if len(counts) <= 1:
        return slices
    listing = ", ".join(f"{uid or '<none>'} ({n} files)" for uid, n in sorted(counts.items()))
    keep = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    if policy.strict:
        first = next(s.path for s in slices if s.uids["series"] != keep)
        raise DicomError(f"{first}: the folder holds {len(counts)} series ({listing}); pass "
                         "series_uid to choose one", first, "other-series")
    for s in slices:
        if s.uids["series"] != keep:
            policy.skip(s.path, "other-series",
                        f"{s.path}: series {s.uids['series']} is not the series read ({keep}; "
                        f"the folder holds {listing})")
    return [s for s in slices if s.uids["series"] == keep]


def _one_shape(slices: list[DicomSlice], policy: _Policy) -> list[DicomSlice]:
    def key(s: DicomSlice) -> tuple[Any, ...]:
        return (s.hu.shape, tuple(np.round(s.orientation, 4)), tuple(np.round(s.pixel_spacing, 4)))

    counts = Counter(key(s) for s in slices)
    if len(counts) <= 1:
        return slices
    keep = max(counts, key=lambda k: counts[k])
    out = []
    for s in slices:
        if key(s) == keep:
            out.append(s)
            continue
        policy.skip(s.path, "image-size",
                    f"{s.path}: image {s.hu.shape[0]}x{s.hu.shape[1]}, orientation "
                    f"{list(key(s)[1])}, pixel spacing {list(key(s)[2])} differ from the series' "
                    f"{keep[0][0]}x{keep[0][1]}, {list(keep[1])}, {list(keep[2])}")
    return out


def _drop_duplicates(slices: list[DicomSlice], proj: np.ndarray,
                     policy: _Policy) -> tuple[list[DicomSlice], np.ndarray]:
    if len(slices) < 2:
        return slices, proj
    steps = np.diff(proj)
    positive = steps[steps > 1e-3]
    tol = max(1e-3, 0.01 * float(np.median(positive))) if positive.size else 1e-3
    keep_idx = [0]
    for i in range(1, len(slices)):
        prev = keep_idx[-1]
        if proj[i] - proj[prev] <= tol:
            policy.skip(slices[i].path, "duplicate",
                        f"{slices[i].path}: same position ({proj[i]:.3f} mm along the normal) "
                        f"as {slices[prev].path}")
            continue
        keep_idx.append(i)
    return [slices[i] for i in keep_idx], proj[keep_idx]


def _slice_spacing(slices: list[DicomSlice], proj: np.ndarray,
                   policy: _Policy) -> tuple[float, list[tuple[int, float]]]:
    if len(slices) == 1:
        meta = slices[0].meta
        return float(meta.get("SpacingBetweenSlices", meta.get("SliceThickness", 0.0)) or 0.0), []
    steps = np.diff(proj)
    dz = float(np.median(steps))
    gaps = [(int(i), float(steps[i])) for i in np.flatnonzero(steps > GAP_FACTOR * dz)]
    for i, gap in gaps:
        message = (f"{slices[i + 1].path}: gap of {gap:.2f} mm after {slices[i].path} "
                   f"(median spacing {dz:.2f} mm; missing slices?)")
        if policy.strict:
            raise DicomError(message, slices[i + 1].path, "gap")
        warnings.warn(message, DicomWarning, stacklevel=3)
    return dz, gaps


def group_by_series(headers: Sequence[tuple[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """Group ``(path, header)`` pairs by ``(StudyInstanceUID, SeriesInstanceUID)``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path, ds in headers:
        key = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")))
        groups.setdefault(key, []).append(path)
    return groups
