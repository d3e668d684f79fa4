"""Open one DICOM file safely and validate the header values a CT volume depends on.

Everything here works before any pixel is decoded:

- :func:`open_dataset` refuses a file over the size limit, rejects obvious non-DICOM from its first
  bytes (no ``DICM`` marker and no plausible first element), and inflates a deflated dataset with a
  byte cap (a deflate bomb stops at the cap instead of filling memory).
- :func:`check_header` turns every header value the volume depends on into a finite, in-range
  Python number (:class:`ImageHeader`), or raises :class:`DicomError` naming the file, the tag, the
  value and the reason. It also refuses files that are not CT (``Modality`` and SOP class) unless
  the caller opts in.

The reading policy and the reasons are described in :mod:`sinotriage.io.dicom`.
"""

from __future__ import annotations

import io
import math
import os
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sinotriage.errors import InputError

__all__ = [
    "CT_SOP_CLASSES",
    "DEFAULT_MAX_PIXEL_BYTES",
    "HEADER_ALLOWANCE",
    "REASONS",
    "DicomError",
    "DicomWarning",
    "ImageHeader",
    "Skipped",
    "check_header",
    "check_modality",
    "is_ct_image_class",
    "open_dataset",
    "reason_counts",
]

#: reasons a file is skipped or refused (see :mod:`sinotriage.io.dicom`)
REASONS: tuple[str, ...] = (
    "unreadable",
    "too-large",
    "bad-header",
    "not-ct",
    "no-pixels",
    "multi-frame",
    "needs-plugin",
    "no-geometry",
    "other-series",
    "image-size",
    "duplicate",
)

#: default cap on one file's decoded image, bytes (counted at max(4, BitsAllocated / 8) bytes a
#: pixel, i.e. at least the size of its float32 HU image): 64 MiB = 4096 x 4096 pixels
DEFAULT_MAX_PIXEL_BYTES = 64 * 2**20

#: bytes a file may hold beyond ``max_pixel_bytes`` (header, overlays, private tags)
HEADER_ALLOWANCE = 4 * 2**20

#: SOP classes read as CT: CT Image, Enhanced CT, Legacy Converted Enhanced CT Image Storage
CT_SOP_CLASSES: frozenset[str] = frozenset({
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.2.2",
})

_DEFLATED = "1.2.840.10008.1.2.1.99"
#: plausible first tag groups of a file without the ``DICM`` preamble (file meta, identification)
_FIRST_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
#: inflate step, bytes
_CHUNK = 2**20
#: bytes a header scan reads first (the whole file when the header is longer)
_HEAD_BYTES = 2**18

#: limits of the header values (mm for lengths); outside them a file is "bad-header"
POSITION_LIMIT_MM = 1e6
SPACING_RANGE_MM = (1e-4, 1e3)
THICKNESS_RANGE_MM = (0.0, 1e4)
SLOPE_RANGE = (1e-6, 1e4)
INTERCEPT_LIMIT = 1e6
ORIENTATION_TOL = 1e-2


class DicomError(InputError):
    """A DICOM file or series cannot be read under the policy (the message names the file).

    Attributes
    ----------
    path : str or None
        The file (or folder) concerned.
    reason : str or None
        One of :data:`REASONS`, or ``"gap"``.
    skipped : list of Skipped
        Files skipped before the error (a series with nothing left lists every file here).
    """

    def __init__(self, message: str, path: str | None = None, reason: str | None = None,
                 skipped: list[Skipped] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.skipped = list(skipped or [])


class DicomWarning(UserWarning):
    """A file was skipped, or a series has gaps (``strict=False``)."""


@dataclass(frozen=True)
class Skipped:
    """A file left out of a volume: its path, the reason (one of :data:`REASONS`), a message."""

    path: str
    reason: str
    message: str


def reason_counts(skipped: Iterable[Skipped | str]) -> dict[str, int]:
    """``{reason: number of files}`` of skipped files (:class:`Skipped` or reason strings, e.g.
    ``DicomError.reason`` of a header scan), in the order of :data:`REASONS`."""
    counts = Counter(s if isinstance(s, str) else s.reason for s in skipped)
    order = {r: i for i, r in enumerate(REASONS)}
    return {r: counts[r] for r in sorted(counts, key=lambda r: (order.get(r, len(order)), r))}


def _error(path: str, reason: str, what: str) -> DicomError:
    return DicomError(f"{path}: {what}", path, reason)


# -- opening a file ------------------------------------------------------------------------------
def open_dataset(path: str, *, stop_before_pixels: bool = False,
                 max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> Any:
    """Parse one file with pydicom after cheap checks; any failure is a :class:`DicomError`.

    The file is read into memory once (it is at most ``max_pixel_bytes + HEADER_ALLOWANCE``
    bytes) and parsed from there, so an element whose length field claims gigabytes costs only
    the bytes the file has.

    Parameters
    ----------
    path : str
        The file.
    stop_before_pixels : bool
        Stop at the pixel data (header only).
    max_pixel_bytes : int
        The decoded-image cap; the file (and an inflated deflate dataset) may hold at most
        ``max_pixel_bytes + HEADER_ALLOWANCE`` bytes ("too-large").

    Returns
    -------
    pydicom.dataset.FileDataset

    Raises
    ------
    DicomError
        ``too-large`` over the byte limit; ``unreadable`` not DICOM, or pydicom cannot parse it.
    """
    limit = int(max_pixel_bytes) + HEADER_ALLOWANCE
    size = os.path.getsize(path)
    if size > limit:
        raise _error(path, "too-large", f"file of {size} bytes is over the limit of {limit} bytes "
                     "(max_pixel_bytes + header allowance)")
    partial = stop_before_pixels and size > _HEAD_BYTES  # a header scan reads the head only
    data = _read(path, limit, _HEAD_BYTES if partial else None)
    start, tsyntax = _sniff(path, data)
    try:
        with warnings.catch_warnings():
            # non-standard UIDs (the RSNA files use "ID_1a2b3c") are read as they are; other
            # pydicom warnings about odd values are the header check's business
            warnings.simplefilter("ignore")
            if tsyntax == _DEFLATED:
                data = _read(path, limit) if partial else data
                ds = _parse_deflated(path, data, start, stop_before_pixels, limit)
            else:
                ds = _parse(data, stop_before_pixels, partial)
                if ds is None:  # the header is longer than the head read
                    ds = _parse(_read(path, limit), stop_before_pixels, False)
            _check_lengths(ds, path)
            for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
                ds.get(key)  # decoded now, while the warnings are silenced
    except DicomError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of one file is "unreadable"
        raise _error(path, "unreadable", f"unreadable ({type(exc).__name__}: {exc})") from None
    ds.buffer, ds.filename = None, path  # keep the path, not the bytes
    return ds


def _read(path: str, limit: int, head: int | None = None) -> bytes:
    """The file's bytes (the first ``head`` only, if given)."""
    with open(path, "rb") as fp:
        data = fp.read(head) if head else fp.read()  # read(n) allocates n bytes up front
    if len(data) > limit:  # grew since the size check
        raise _error(path, "too-large", f"file of {len(data)} bytes is over the limit of {limit} "
                     "bytes (max_pixel_bytes + header allowance)")
    return data


def _sniff(path: str, data: bytes) -> tuple[int, str | None]:
    """Reject obvious non-DICOM from the first bytes (before pydicom's forced parse, which takes
    about 0.35 s per MiB of zeros); returns where the dataset starts and the transfer syntax
    (files with the ``DICM`` preamble; else ``(0, None)``)."""
    if data[128:132] == b"DICM":
        if data[132:134] != b"\x02\x00":
            raise _error(path, "unreadable", "unreadable (DICM marker without a file meta group)")
        start, tsyntax = _scan_meta(data)
        if data[start:start + 4] == b"\x00\x00\x00\x00":
            raise _error(path, "unreadable", "unreadable (the dataset after the file meta "
                         "starts with zero bytes)")
        return start, tsyntax
    if len(data) < 8 or data[:2] not in _FIRST_GROUPS:
        raise _error(path, "unreadable", "unreadable (not DICOM: no DICM marker and no "
                     f"plausible first element, first bytes {data[:8].hex()})")
    return 0, None


_LONG_VRS = (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
             b"UV")


def _scan_meta(data: bytes) -> tuple[int, str | None]:
    """Walk the file meta group (0002,eeee) after the preamble: (offset after it, transfer
    syntax UID or None)."""
    pos, tsyntax = 132, None
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":
        elem, vr = int.from_bytes(data[pos + 2:pos + 4], "little"), data[pos + 4:pos + 6]
        if not vr.isalpha() or not vr.isupper():  # implicit VR: 4-byte length
            length, pos = int.from_bytes(data[pos + 4:pos + 8], "little"), pos + 8
        elif vr in _LONG_VRS:
            length, pos = int.from_bytes(data[pos + 8:pos + 12], "little"), pos + 12
        else:
            length, pos = int.from_bytes(data[pos + 6:pos + 8], "little"), pos + 8
        if elem == 0x0010:
            tsyntax = data[pos:pos + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos += length
    return pos, tsyntax


def _parse(data: bytes, stop_before_pixels: bool, partial: bool) -> Any:
    """pydicom's parse of ``data``; files without the preamble/meta header are accepted when
    they parse into a dataset with an SOP class, UIDs or a modality. ``partial``: ``data`` is the
    head of the file; None when the parse did not stop at the pixel data inside it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    fp = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as first:
        fp = io.BytesIO(data)
        ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=True)
        if not any(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "Modality")):
            if partial:
                return None
            raise first from None
    if partial and fp.tell() >= len(data) - 16:
        return None
    return ds


def _check_lengths(ds: Any, path: str) -> None:
    """"unreadable" when a value is shorter than its element says: pydicom silently keeps the
    bytes a truncated file still has."""
    from pydicom.dataelem import RawDataElement

    meta = getattr(ds, "file_meta", None)
    for part in (ds, meta) if meta is not None else (ds,):
        for tag in part.keys():
            elem = part.get_item(tag)
            if not isinstance(elem, RawDataElement) or elem.length == 0xFFFFFFFF:
                continue
            if elem.value is not None and len(elem.value) < elem.length:
                raise _error(path, "unreadable", f"unreadable (element {tag} holds "
                             f"{len(elem.value)} of its {elem.length} bytes; truncated?)")


def _parse_deflated(path: str, data: bytes, start: int, stop_before_pixels: bool,
                    limit: int) -> Any:
    """A deflated dataset inflated to at most ``limit`` bytes (pydicom would inflate all)."""
    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    meta = pydicom.dcmread(io.BytesIO(data[:start])).file_meta
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    buffer = io.BytesIO()
    pending = data[start:]
    checked = False
    while pending and not inflater.eof:
        buffer.write(inflater.decompress(pending, _CHUNK))
        pending = inflater.unconsumed_tail
        if not checked:  # the header is in the first chunk: refuse a declared bomb right away
            checked = True
            limit = min(limit, _declared_limit(buffer.getvalue(), path, limit))
        if buffer.tell() > limit:
            raise _error(path, "too-large", f"deflated dataset inflates to more than {limit} "
                         "bytes (max_pixel_bytes + header allowance)")
    del pending
    buffer.seek(0)

    def stop(tag: Any, vr: Any, length: int) -> bool:
        return stop_before_pixels and int(tag) in _PIXEL_TAGS

    dataset = read_dataset(buffer, False, True, stop_when=stop)
    return FileDataset(path, dataset, data[:128], meta, False, True)


def _declared_limit(prefix: bytes, path: str, limit: int) -> int:
    """Bytes a deflated dataset may inflate to, from the image size its header declares
    (``too-large`` when the declared image is over the cap); ``limit`` when the header is not
    in ``prefix`` or does not parse."""
    from pydicom.filereader import read_dataset

    def stop(tag: Any, vr: Any, length: int) -> bool:
        return int(tag) in _PIXEL_TAGS

    try:
        fp = io.BytesIO(prefix)
        ds = read_dataset(fp, False, True, stop_when=stop)
        end = fp.tell()
        dims = [int(ds.get(k) or 1) for k in ("Rows", "Columns", "NumberOfFrames",
                                              "SamplesPerPixel")]
        bits = int(ds.get("BitsAllocated") or 16)
    except Exception:  # noqa: BLE001 - the full parse reports what is wrong with the header
        return limit
    pixels = math.prod(dims)
    declared = pixels * max(4, bits // 8)
    cap = limit - HEADER_ALLOWANCE
    if declared > cap:
        raise _error(path, "too-large", f"deflated image of {' x '.join(map(str, dims))} "
                     f"pixels ({declared} bytes decoded) is over max_pixel_bytes {cap}")
    return end + pixels * max(1, bits // 8) + HEADER_ALLOWANCE


# -- header values -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageHeader:
    """The validated header values of one image (all finite and in range).

    Attributes
    ----------
    rows, columns, frames, samples : int
    bits_allocated, bits_stored, pixel_representation : int
    slope, intercept : float
        ``RescaleSlope`` (default 1) and ``RescaleIntercept`` (default 0).
    position : tuple of float
        (3,) ``ImagePositionPatient`` mm.
    orientation : tuple of float
        (6,) ``ImageOrientationPatient``.
    pixel_spacing : tuple of float
        (dy, dx) mm.
    slice_thickness, spacing_between_slices : float or None
        mm, None when absent.
    transfer_syntax : str or None
    """

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    slope: float
    intercept: float
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    spacing_between_slices: float | None
    transfer_syntax: str | None

    @property
    def pixel_bytes(self) -> int:
        """Decoded bytes counted against the cap: pixels x max(4, BitsAllocated / 8)."""
        per = max(4, self.bits_allocated // 8)
        return self.rows * self.columns * self.frames * self.samples * per

    @property
    def stored_bytes(self) -> int:
        """Bytes of native (uncompressed) pixel data the header declares."""
        return self.rows * self.columns * self.frames * self.samples * self.bits_allocated // 8


def _numbers(ds: Any, keyword: str, path: str) -> list[float] | None:
    """The values of a numeric tag as floats; None when absent, [] when empty; "bad-header" when
    they do not parse ('abc', '1A', bytes of a wrong VR, ...)."""
    try:
        if keyword not in ds:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's "Invalid value for VR": reported here
            value = ds.get(keyword)
        if value is None:
            return []
        if isinstance(value, bytes | bytearray):
            value = value.decode("ascii").strip("\x00 ")
        if isinstance(value, str):
            parts: list[Any] = value.split("\\")
        elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            parts = list(value)
        else:
            parts = [value]
        parts = [p.strip() if isinstance(p, str) else p for p in parts]
        if all(p == "" or p is None for p in parts):
            return []
        return [float(p) for p in parts]
    except Exception as exc:  # noqa: BLE001 - any conversion failure of a value is a bad header
        raise _error(path, "bad-header", f"{keyword} does not parse as numbers "
                     f"({type(exc).__name__}: {_short(exc)})") from None


def _short(value: Any, n: int = 80) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n] + "..."


def _get(ds: Any, keyword: str, path: str, *, count: int = 1, default: float | None = None,
         lo: float = -math.inf, hi: float = math.inf, integer: bool = False,
         required_reason: str = "bad-header", empty_ok: bool = False) -> list[float]:
    """``count`` finite values of ``keyword`` in ``[lo, hi]`` (integers if asked); ``default``
    when absent (or empty, if ``empty_ok``)."""
    values = _numbers(ds, keyword, path)
    if values == [] and not empty_ok:
        raise _error(path, "bad-header", f"{keyword} is present but empty")
    if not values:
        if default is None:
            raise _error(path, required_reason, f"{keyword} is missing")
        return [default] * count
    bad = (
        f"has {len(values)} values, expected {count}" if len(values) != count
        else "is not finite" if not all(math.isfinite(v) for v in values)
        else "is not an integer" if integer and not all(v == int(v) for v in values)
        else f"is out of range [{lo:g}, {hi:g}]" if not all(lo <= v <= hi for v in values)
        else ""
    )
    if bad:
        raise _error(path, "bad-header", f"{keyword} {_short(values)} {bad}")
    return values


def is_ct_image_class(ds: Any) -> bool:
    """Whether the SOP class (dataset or file meta) is a CT image storage class."""
    try:
        return _sop_class(ds) in CT_SOP_CLASSES
    except Exception:  # noqa: BLE001
        return False


def _sop_class(ds: Any) -> str:
    for value in (ds.get("SOPClassUID"),
                  getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")):
        if value:
            return str(value).strip()
    return ""


def check_modality(ds: Any, path: str) -> None:
    """``not-ct`` unless ``Modality`` is CT (when present) and the SOP class is a CT image class
    (when present); a file with neither is not CT."""
    try:
        modality = str(ds.get("Modality") or "").strip().upper()
        sop = _sop_class(ds)
    except Exception as exc:  # noqa: BLE001
        raise _error(path, "bad-header", f"Modality / SOPClassUID do not parse "
                     f"({type(exc).__name__})") from None
    if modality and modality != "CT" or sop and sop not in CT_SOP_CLASSES or not (modality or sop):
        try:
            from pydicom.uid import UID

            name = UID(sop).name if sop else "none"
        except Exception:  # noqa: BLE001 - a name is only decoration
            name = sop
        raise _error(path, "not-ct", f"not a CT image (Modality {modality or 'none'}, SOP class "
                     f"{_short(name)}); pass allow_non_ct=True to read it anyway")


def check_header(ds: Any, path: str, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
                 allow_non_ct: bool = False) -> ImageHeader:
    """Validate every header value the HU image and its geometry depend on.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset with ``PixelData``.
    path : str
        The file (for messages).
    max_pixel_bytes : int
        Cap on :attr:`ImageHeader.pixel_bytes`.
    allow_non_ct : bool
        Skip the Modality / SOP class check.

    Returns
    -------
    ImageHeader

    Raises
    ------
    DicomError
        ``not-ct``, ``bad-header`` (a value that does not parse, is not finite or out of range,
        or a transfer syntax UID that is not one), ``multi-frame``, ``too-large`` (the declared
        image is over ``max_pixel_bytes``), ``no-geometry`` (position, orientation or pixel
        spacing missing).
    """
    if not allow_non_ct:
        check_modality(ds, path)
    tsyntax = _transfer_syntax(ds, path)
    (frames,) = _get(ds, "NumberOfFrames", path, default=1, lo=1, hi=2**31, integer=True,
                     empty_ok=True)
    if frames > 1:
        raise _error(path, "multi-frame", f"multi-frame image ({int(frames)} frames) is not "
                     "supported; export single-frame slices")
    (samples,) = _get(ds, "SamplesPerPixel", path, default=1, lo=1, hi=4, integer=True)
    if samples != 1:
        raise _error(path, "bad-header", f"SamplesPerPixel {int(samples)}: not one grayscale "
                     "image")
    (rows,) = _get(ds, "Rows", path, lo=1, hi=65535, integer=True)
    (cols,) = _get(ds, "Columns", path, lo=1, hi=65535, integer=True)
    (alloc,) = _get(ds, "BitsAllocated", path, lo=8, hi=32, integer=True)
    if alloc not in (8, 16, 32):
        raise _error(path, "bad-header", f"BitsAllocated {int(alloc)} is not 8, 16 or 32")
    (stored,) = _get(ds, "BitsStored", path, default=alloc, lo=1, hi=alloc, integer=True)
    (rep,) = _get(ds, "PixelRepresentation", path, default=0, lo=0, hi=1, integer=True)
    (slope,) = _get(ds, "RescaleSlope", path, default=1.0, lo=SLOPE_RANGE[0], hi=SLOPE_RANGE[1])
    (intercept,) = _get(ds, "RescaleIntercept", path, default=0.0, lo=-INTERCEPT_LIMIT,
                        hi=INTERCEPT_LIMIT)
    head = ImageHeader(
        rows=int(rows), columns=int(cols), frames=1, samples=1, bits_allocated=int(alloc),
        bits_stored=int(stored), pixel_representation=int(rep), slope=slope, intercept=intercept,
        position=(0.0, 0.0, 0.0), orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        pixel_spacing=(1.0, 1.0), slice_thickness=None, spacing_between_slices=None,
        transfer_syntax=tsyntax,
    )
    if head.pixel_bytes > max_pixel_bytes:
        raise _error(path, "too-large", f"image of {head.rows} x {head.columns} pixels "
                     f"({head.pixel_bytes} bytes decoded) is over max_pixel_bytes "
                     f"{max_pixel_bytes}")
    geometry = _geometry(ds, path)
    thickness = _optional(ds, "SliceThickness", path)
    between = _optional(ds, "SpacingBetweenSlices", path)
    return ImageHeader(**{**head.__dict__, **geometry, "slice_thickness": thickness,
                          "spacing_between_slices": between})


def _optional(ds: Any, keyword: str, path: str) -> float | None:
    if not _numbers(ds, keyword, path):  # absent or empty (type 2)
        return None
    return _get(ds, keyword, path, lo=THICKNESS_RANGE_MM[0], hi=THICKNESS_RANGE_MM[1])[0]


def _geometry(ds: Any, path: str) -> dict[str, Any]:
    lim = POSITION_LIMIT_MM
    position = _get(ds, "ImagePositionPatient", path, count=3, lo=-lim, hi=lim,
                    required_reason="no-geometry")
    o = _get(ds, "ImageOrientationPatient", path, count=6, lo=-1.0 - ORIENTATION_TOL,
             hi=1.0 + ORIENTATION_TOL, required_reason="no-geometry")
    norms = (math.hypot(*o[:3]), math.hypot(*o[3:]))
    dot = sum(a * b for a, b in zip(o[:3], o[3:], strict=True))
    if any(abs(n - 1.0) > ORIENTATION_TOL for n in norms) or abs(dot) > ORIENTATION_TOL:
        raise _error(path, "bad-header", f"ImageOrientationPatient {o} is not two orthogonal "
                     f"unit vectors (norms {norms[0]:.3g}, {norms[1]:.3g}, dot {dot:.3g})")
    spacing = _get(ds, "PixelSpacing", path, count=2, lo=SPACING_RANGE_MM[0],
                   hi=SPACING_RANGE_MM[1], required_reason="no-geometry")
    return {"position": tuple(position), "orientation": tuple(o),
            "pixel_spacing": (spacing[0], spacing[1])}


def _transfer_syntax(ds: Any, path: str) -> str | None:
    meta = getattr(ds, "file_meta", None)
    try:
        value = meta.get("TransferSyntaxUID") if meta is not None else None
        if value is None:
            return None
        from pydicom.uid import UID

        uid = UID(str(value).strip())
        ok = uid.is_transfer_syntax
    except Exception:  # noqa: BLE001 - a UID that cannot be classified is not a transfer syntax
        ok = False
    if not ok:
        raise _error(path, "bad-header", f"TransferSyntaxUID {_short(value)!s} is not a "
                     "transfer syntax")
    return str(uid)
