"""The on-disk format of a dataset store (format version :data:`FORMAT_VERSION`).

A store (:mod:`sinotriage.io.store`) has this layout::

    DIR.zarr/
      zarr.json                root group; its attributes are listed below
      manifest.json            gathered manifest {study_id: record} (see Store.write_manifest)
      manifest.csv             the manifest as a table, one row per study (scalar fields)
      studies/
        zarr.json
        <study_id>/            one group per study; its attributes are the study's record
          hu        int16   (D, H, W)  Hounsfield units, rounded to 1 HU
          sinogram  float32 (D, V, C)  line integrals of mu (dimensionless) at the full view count
          tissues   uint8   (D, H, W)  tissue class per voxel (synthetic data only)
          mask      uint8   (D, H, W)  hemorrhage subtype per voxel, 0 none, 1..5 (RSNA order)
          labels    uint8   (D, 6)     slice labels: any, epidural, intraparenchymal,
                                       intraventricular, subarachnoid, subdural
          derived/             written by ``sinotriage preprocess``
            v0246/             key derived_key(views, photons); attributes: views, photons, geometry
              sinogram  float32 (D, 246, C)  the sinogram subsampled to 246 views
              recon     int16   (D, H, W)    its FBP reconstruction in HU, rounded to 1 HU
      .partial/                temporary groups of writes in progress (gone when a write succeeds)

A study may lack some arrays (a DICOM series has no ``tissues``/``mask``; an unlabeled one has no
``labels``). Volumes and sinograms are chunked one slice per chunk (``(1, H, W)``, ``(1, V, C)``) and
compressed with Blosc/Zstd, so reading one slice reads one chunk. Slices are ordered inferior to
superior.

Root attributes
---------------
``sinotriage_store`` (format version, 1), ``label_names`` (the six RSNA names), ``units``,
``geometry`` (``geometry.to_dict()`` of the full-view scanner geometry, or ``None``), ``mu_water``
(mm^-1, used for HU <-> mu), ``source`` (e.g. ``"synthetic"``, ``"rsna"``), ``settings`` (generator
or ingest settings), ``splits`` ({study_id: "train"|"val"|"test"}, written by
:meth:`Store.assign_splits`), plus anything the writer adds.

Names and checks
----------------
This module holds the array names, dtypes, units and ids of the format, and the checks and casts
applied before anything is written; changing one of them is a new format version.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from sinotriage.errors import InputError
from sinotriage.vocabulary import LABEL_NAMES

__all__ = [
    "DERIVED_ARRAYS",
    "FORMAT_VERSION",
    "MODES",
    "STUDY_ARRAYS",
    "UNITS",
    "check_json",
    "check_study_id",
    "coerce",
    "derived_key",
    "positive_int",
    "prepare_arrays",
    "verify_complete",
    "write_array",
]

#: store format version written to the root attribute ``sinotriage_store``
FORMAT_VERSION = 1

#: per-study arrays with a fixed dtype and layout: name -> (dtype, number of dimensions)
STUDY_ARRAYS: dict[str, tuple[str, int]] = {
    "hu": ("int16", 3),
    "sinogram": ("float32", 3),
    "tissues": ("uint8", 3),
    "mask": ("uint8", 3),
    "labels": ("uint8", 2),
}
#: arrays of a derived group (``sinotriage preprocess``)
DERIVED_ARRAYS: dict[str, tuple[str, int]] = {
    "sinogram": ("float32", 3),
    "recon": ("int16", 3),
}

#: the ``units`` attribute of each stored array
UNITS: dict[str, str] = {
    "hu": "HU",
    "recon": "HU",
    "sinogram": "line integral of mu (dimensionless)",
    "tissues": "class index",
    "mask": "subtype index (0 none, 1..5 RSNA order)",
    "labels": "0/1",
}

#: modes a store can be opened in: read only, or read and write
MODES: tuple[str, ...] = ("r", "r+")
#: a study id (also an array name): letters, digits, ``.``, ``_``, ``-``; at most 128 characters
STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: the key of a derived group, see :func:`derived_key`
DERIVED_KEY = re.compile(r"^v(\d{4,})(?:_p(\d+))?$")
#: the compressor of every array
COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
#: folder names inside a store: the studies, writes in progress, a study's derived groups
STUDIES_DIR = "studies"
PARTIAL_DIR = ".partial"
DERIVED_DIR = "derived"


def derived_key(views: int, photons: float | None = None) -> str:
    """Name of the derived group for ``views`` views (and optional extra noise at ``photons``).

    >>> derived_key(246), derived_key(61, 1e5)
    ('v0246', 'v0061_p100000')
    """
    views = positive_int(views, "views")
    if photons is None:
        return f"v{views:04d}"
    if not isinstance(photons, int | float) or not np.isfinite(photons) or photons <= 0:
        raise InputError(f"photons must be a positive number or None, got {photons!r}")
    return f"v{views:04d}_p{round(float(photons))}"


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_study_id(study_id: Any) -> None:
    if not isinstance(study_id, str) or not STUDY_ID.match(study_id):
        raise InputError(
            "study_id must be 1-128 characters of letters, digits, '.', '_' or '-' "
            f"(not starting with '.', '_' or '-'), got {study_id!r}"
        )


def check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must hold JSON values only: {exc}") from None


def to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def coerce(name: str, value: Any, spec: tuple[str, int] | None) -> np.ndarray:
    arr = to_numpy(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"array {name!r} must be numeric, got dtype {arr.dtype}")
    if spec is None:
        if arr.ndim < 1:
            raise InputError(f"array {name!r} needs a leading slice axis, got shape {arr.shape}")
        return np.ascontiguousarray(arr)
    dtype, ndim = spec
    if arr.ndim != ndim:
        raise InputError(f"array {name!r} must have {ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"array {name!r} holds NaN or infinite values")
    target = np.dtype(dtype)
    if target.kind in "iu":
        info = np.iinfo(target)
        if arr.dtype.kind == "f":
            arr = np.rint(arr)
        if name in ("hu", "recon"):
            arr = np.clip(arr, info.min, info.max)
        elif arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise InputError(
                f"array {name!r} has values in [{arr.min()}, {arr.max()}], outside {dtype}"
            )
    return np.ascontiguousarray(arr.astype(target, copy=False))


def write_array(group: zarr.Group, name: str, arr: np.ndarray) -> None:
    chunks = (1, *arr.shape[1:]) if arr.ndim >= 3 else arr.shape
    z = group.create_array(
        name,
        shape=arr.shape,
        dtype=arr.dtype,
        chunks=chunks,
        compressors=COMPRESSOR,
        fill_value=0,
        attributes={"units": UNITS.get(name, "")},
    )
    z[...] = arr


def verify_complete(tmp: Path, names: Sequence[str]) -> None:
    """Refuse to commit a temporary group that lost files while being written.

    Guards against a writer whose ``.partial`` directory was removed under it (e.g. by
    :meth:`Store.clean_partial` of a new run while an orphaned worker of a killed run still
    writes): zarr would recreate the directories of the later arrays only.
    """
    missing = [n for n in ["", *names] if not (tmp / n / "zarr.json").is_file()]
    if missing:
        raise RuntimeError(
            f"temporary group {tmp} lost {missing or 'files'} while being written "
            "(was .partial cleaned by another run?); not committed"
        )


def prepare_arrays(study_id: str, arrays: Mapping[str, Any], geometry: Any,
                   where: str | os.PathLike[str] = "") -> dict[str, np.ndarray]:
    """Check and cast the arrays of one study for :meth:`Store.write_study`.

    Known names are cast to their stored dtype (:data:`STUDY_ARRAYS`); slice counts must agree,
    image-like arrays must share a shape, and shapes must match ``geometry`` (when not None).
    ``where`` (the store path) prefixes the messages about the geometry.
    """
    if not isinstance(arrays, Mapping) or not arrays:
        raise InputError(f"study {study_id!r}: arrays must be a non-empty mapping of name -> array")
    if "hu" not in arrays and "sinogram" not in arrays:
        raise InputError(f"study {study_id!r}: arrays need 'hu' and/or 'sinogram', got {sorted(arrays)}")
    data: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not STUDY_ID.match(name) or name == DERIVED_DIR:
            raise InputError(f"study {study_id!r}: bad array name {name!r}")
        data[name] = coerce(name, value, STUDY_ARRAYS.get(name))
    depth = {name: arr.shape[0] for name, arr in data.items()}
    if len(set(depth.values())) != 1:
        raise InputError(f"study {study_id!r}: arrays differ in slice count: {depth}")
    if depth[next(iter(depth))] == 0:
        raise InputError(f"study {study_id!r}: arrays have no slices")
    geom = geometry
    shapes = {name: arr.shape for name, arr in data.items()}
    image_like = [n for n in ("hu", "tissues", "mask") if n in data]
    if len({shapes[n] for n in image_like}) > 1:
        raise InputError(f"study {study_id!r}: hu/tissues/mask shapes differ: {shapes}")
    if "labels" in data and data["labels"].shape[1] != len(LABEL_NAMES):
        raise InputError(
            f"study {study_id!r}: labels must be (D, {len(LABEL_NAMES)}), got {shapes['labels']}"
        )
    if geom is not None:
        if "sinogram" in data and data["sinogram"].shape[1:] != tuple(geom.sinogram_shape):
            raise InputError(
                f"store {where}: study {study_id!r} sinogram is {shapes['sinogram']}, the "
                f"store geometry expects (D, {geom.sinogram_shape[0]}, {geom.sinogram_shape[1]})"
            )
        for n in image_like:
            if data[n].shape[1:] != tuple(geom.image_shape):
                raise InputError(
                    f"store {where}: study {study_id!r} {n} is {shapes[n]}, the store "
                    f"geometry expects (D, {geom.image_shape[0]}, {geom.image_shape[1]})"
                )
    return data
