"""Decode one validated DICOM image into Hounsfield units with bounded memory.

The header has been checked by :func:`sinotriage.io.dicom_header.check_header`, so the decoded
image is at most ``max_pixel_bytes``; this module checks that native pixel data is as long as the
header declares, decodes (pydicom's handlers; compressed syntaxes need a plugin) and applies the
modality LUT in row blocks of float64 (the same arithmetic as
:func:`pydicom.pixels.apply_modality_lut`, without a full float64 copy of the image).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from sinotriage.io.dicom_header import DicomError, ImageHeader

__all__ = ["PLUGIN_HINT", "decode_hu", "rsna_quirk_applies"]

logger = logging.getLogger("sinotriage.io.dicom")

PLUGIN_HINT = (
    "install a decoder plugin: `pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
    "pylibjpeg-rle` or `pip install python-gdcm`"
)

#: float64 elements per block of the modality LUT (8 MiB)
_BLOCK = 2**20


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


def _quirk(head: ImageHeader) -> bool:
    return head.bits_stored == 12 and head.pixel_representation == 0 and head.intercept > -100


def decode_hu(ds: Any, head: ImageHeader, path: str) -> tuple[np.ndarray, bool]:
    """The (H, W) float32 HU image of a validated dataset and whether the RSNA fix was applied.

    Raises
    ------
    DicomError
        ``unreadable`` (pixel data shorter than declared, or the decoder fails),
        ``needs-plugin`` (a compressed transfer syntax without its decoder), ``no-pixels`` (the
        decoded array is not one ``Rows x Columns`` image).
    """
    stored = _decode(ds, head, path)
    if stored.shape != (head.rows, head.columns):
        raise DicomError(f"{path}: pixel data of shape {stored.shape} is not one "
                         f"{head.rows} x {head.columns} grayscale image", path, "no-pixels")
    if _quirk(head):
        logger.info("%s: RSNA 2019 quirk (BitsStored 12, PixelRepresentation 0, RescaleIntercept "
                    "%s): stored + 1000, wrapped at 4096, intercept -1000", path, head.intercept)
        return _blocks(stored, lambda px: np.mod(px.astype(np.int64) + 1000, 4096)
                       * head.slope - 1000.0), True
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        try:
            return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32), False
        except Exception as exc:  # noqa: BLE001 - a broken LUT is this file's problem
            raise DicomError(f"{path}: unusable ModalityLUTSequence ({type(exc).__name__}: "
                             f"{exc})", path, "bad-header") from None
    return _blocks(stored, lambda px: px.astype(np.float64) * head.slope + head.intercept), False


def _blocks(stored: np.ndarray, fn: Any) -> np.ndarray:
    """``fn`` applied to row blocks of ``stored``, written into one float32 array."""
    out = np.empty(stored.shape, dtype=np.float32)
    step = max(1, _BLOCK // max(1, stored.shape[1]))
    for r in range(0, stored.shape[0], step):
        out[r:r + step] = fn(stored[r:r + step])
    return out


def _decode(ds: Any, head: ImageHeader, path: str) -> np.ndarray:
    from pydicom.uid import UID

    tsyntax = UID(head.transfer_syntax) if head.transfer_syntax else None
    compressed = tsyntax is not None and tsyntax.is_compressed
    if not compressed:
        try:
            n = len(ds.PixelData)
        except Exception as exc:  # noqa: BLE001
            raise DicomError(f"{path}: unreadable pixel data ({type(exc).__name__})", path,
                             "unreadable") from None
        if n < head.stored_bytes:
            raise DicomError(f"{path}: pixel data of {n} bytes is shorter than the "
                             f"{head.stored_bytes} bytes the header declares (truncated?)", path,
                             "unreadable")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem
        if compressed and _is_missing_plugin(exc):
            raise DicomError(
                f"{path}: compressed pixel data ({tsyntax.name}) needs a decoder plugin that is "
                f"not installed; {PLUGIN_HINT}", path, "needs-plugin") from None
        raise DicomError(f"{path}: unreadable pixel data ({type(exc).__name__}: "
                         f"{str(exc)[:200]})", path, "unreadable") from None


def _is_missing_plugin(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | NotImplementedError | ImportError) and (
        "plugin" in text or "missing" in text or "unable to decompress" in text
        or "no pixel data handler" in text
    )
