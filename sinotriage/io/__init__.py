"""Reading and writing data: DICOM series, public dataset layouts, the zarr dataset store.

Names are resolved lazily so that importing one reader does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "read_dicom_series": "sinotriage.io.dicom",
    "read_dicom_slice": "sinotriage.io.dicom",
    "DicomVolume": "sinotriage.io.dicom",
    "open_store": "sinotriage.io.store",
    "create_store": "sinotriage.io.store",
    "Store": "sinotriage.io.store",
    "Predictions": "sinotriage.io.predictions",
    "read_predictions": "sinotriage.io.predictions",
    "write_predictions": "sinotriage.io.predictions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sinotriage.io' has no attribute {name!r}")
