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
:class:`DicomError` (an :class:`~sinotriage.errors.InputError`, so a ``ValueError``) naming the
file and the reason, ``strict=False`` skips it with a :class:`DicomWarning` naming the file, and
lists it in ``vol.skipped`` (``vol.n_skipped`` counts them). A corrupt or hostile file never
crashes the process nor aborts the series: every failure on one file becomes a reason.

==================  ==============================================================================
reason              what
==================  ==============================================================================
``unreadable``      not DICOM (checked from the first bytes before any forced parse), truncated or
                    corrupt (pydicom cannot parse it, or its pixel data is shorter than the header
                    says)
``too-large``       the file is over ``max_pixel_bytes`` + 16 MiB, a deflated dataset inflates to
                    more, or the header declares an image over ``max_pixel_bytes`` (checked
                    before decoding)
``bad-header``      a value the volume depends on does not parse, is not finite or is out of range
                    (RescaleSlope/Intercept, ImagePositionPatient, ImageOrientationPatient,
                    PixelSpacing, SliceThickness, SpacingBetweenSlices, Rows, Columns, Bits*,
                    PixelRepresentation, SamplesPerPixel, NumberOfFrames, TransferSyntaxUID);
                    the message names the tag and the value
``not-ct``          ``Modality`` is not CT or the SOP class is not a CT image class (MR, RTDOSE,
                    secondary captures); ``allow_non_ct=True`` reads them
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

Header checks and the byte caps live in :mod:`sinotriage.io.dicom_header`, decoding in
:mod:`sinotriage.io.dicom_pixels`. ``vol.skipped_by_reason`` (and
:func:`~sinotriage.io.dicom_header.reason_counts`) count skipped files by reason; a
:class:`DicomError` raised because nothing is left carries the skipped files in ``.skipped``.

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

from sinotriage.io.dicom_header import (
    DEFAULT_MAX_PIXEL_BYTES,
    REASONS,
    DicomError,
    DicomWarning,
    Skipped,
    check_header,
    is_ct_image_class,
    open_dataset,
    reason_counts,
)
from sinotriage.io.dicom_pixels import decode_hu, rsna_quirk_applies

__all__ = [
    "DEFAULT_MAX_PIXEL_BYTES",
    "DicomError",
    "DicomWarning",
    "DicomSlice",
    "DicomVolume",
    "Skipped",
    "REASONS",
    "read_dicom_slice",
    "read_dicom_series",
    "read_header",
    "reason_counts",
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

GAP_FACTOR = 1.5


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
        ``InstanceNumber`` (0 when absent or not an integer).
    meta : dict
        Selected header values (:data:`META_TAGS`), JSON-able.
    path : str
    rsna_fixed : bool
        Whether the RSNA 2019 quirk fix was applied.
    slice_thickness, spacing_between_slices : float or None
        Validated ``SliceThickness`` / ``SpacingBetweenSlices`` in mm (None: absent).
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
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None

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
    def skipped_by_reason(self) -> dict[str, int]:
        """``{reason: number of files skipped}`` (reasons in the order of :data:`REASONS`)."""
        return reason_counts(self.skipped)

    @property
    def files(self) -> list[str]:
        """Path of each slice, in slice order."""
        return list(self.meta["files"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]


# -- one file ------------------------------------------------------------------------------------
def read_header(path: str | os.PathLike[str], *,
                max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> Any:
    """Read a file's header without pixel data (pydicom dataset).

    The file size cap, the quick non-DICOM check and the deflate cap of
    :func:`~sinotriage.io.dicom_header.open_dataset` apply.

    Raises
    ------
    DicomError
        ``unreadable`` or ``too-large``; the message names the file.
    """
    return open_dataset(str(path), stop_before_pixels=True, max_pixel_bytes=max_pixel_bytes)


def read_dicom_slice(path: str | os.PathLike[str], *,
                     max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
                     allow_non_ct: bool = False) -> DicomSlice:
    """Read one CT DICOM file into HU.

    Parameters
    ----------
    path : path-like
        A single-frame DICOM image.
    max_pixel_bytes : int
        Cap on the decoded image, bytes, counted at ``max(4, BitsAllocated / 8)`` bytes a pixel
        (at least the float32 HU image) and checked from the header before decoding; the file
        itself may hold at most ``max_pixel_bytes + 16 MiB``. Reading one file holds at most about
        three times this (file bytes, decoded array, HU image).
    allow_non_ct : bool
        Read images whose ``Modality`` / SOP class is not CT (MR, RTDOSE, ...) as they are
        (the modality LUT then gives that modality's units, not HU).

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
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DICOM file {path} does not exist")
    ds = open_dataset(path, max_pixel_bytes=max_pixel_bytes)
    if "PixelData" not in ds:
        if "Rows" in ds or "BitsAllocated" in ds or is_ct_image_class(ds):
            raise DicomError(f"{path}: unreadable (an image header without pixel data; "
                             "truncated?)", path, "unreadable")
        kind = _uid_name(ds, "SOPClassUID")
        raise DicomError(f"{path}: no image (no PixelData; SOP class {kind})", path, "no-pixels")
    head = check_header(ds, path, max_pixel_bytes=max_pixel_bytes, allow_non_ct=allow_non_ct)
    hu, fixed = decode_hu(ds, head, path)
    uids = {key: _text(ds, tag) for key, tag in
            (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID"),
             ("sop", "SOPInstanceUID"))}
    return DicomSlice(hu=hu, position=np.asarray(head.position, dtype=np.float64),
                      orientation=np.asarray(head.orientation, dtype=np.float64),
                      pixel_spacing=head.pixel_spacing, uids=uids,
                      instance=_int(_safe_get(ds, "InstanceNumber")), meta=_meta(ds), path=path,
                      rsna_fixed=fixed, slice_thickness=head.slice_thickness,
                      spacing_between_slices=head.spacing_between_slices)


def _safe_get(ds: Any, keyword: str) -> Any:
    """``ds.get(keyword)``, None when pydicom cannot convert the value."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.get(keyword)
    except Exception:  # noqa: BLE001 - an unconvertible optional value is treated as absent
        return None


def _text(ds: Any, keyword: str) -> str:
    value = _safe_get(ds, keyword)
    return "" if value is None else str(value)


def _uid_name(ds: Any, keyword: str) -> str:
    value = _safe_get(ds, keyword)
    return str(getattr(value, "name", value or "unknown"))


def _meta(ds: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in META_TAGS:
        value = _safe_get(ds, tag)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            out[tag] = str(value)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            out[tag] = str(value)
            continue
        if not np.isfinite(number):
            out[tag] = str(value)
        else:
            out[tag] = int(value) if isinstance(value, int) else number
    return out


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
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
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
    allow_non_ct: bool = False,
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
    max_pixel_bytes : int
        Cap on each file's decoded image (:func:`read_dicom_slice`); over it: ``too-large``.
    allow_non_ct : bool
        Read non-CT images too (:func:`read_dicom_slice`); default: ``not-ct``.

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
        left (then ``.skipped`` lists every skipped file).
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
            s = read_dicom_slice(f, max_pixel_bytes=max_pixel_bytes, allow_non_ct=allow_non_ct)
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
        counts = ", ".join(f"{r} {n}" for r, n in reason_counts(policy.skipped).items())
        raise DicomError(f"DICOM series {where}: no readable image left "
                         f"({len(policy.skipped)} files skipped: {counts or 'none'})", where,
                         "unreadable", skipped=policy.skipped)
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
        s = slices[0]
        for value in (s.spacing_between_slices, s.slice_thickness):
            if value:
                return float(value), []
        return 0.0, []
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
