"""The dataset store: one zarr (v3) directory per dataset, written once and read by many experiments.

Every dataset, synthetic (``sinotriage synth``) or real (``sinotriage ingest``), becomes a store with
this layout::

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

The manifest
------------
One record per study: ``study_id``, ``split``, ``label`` (scan level: 1 abnormal, 0 normal,
-1 unknown), one 0/1 flag per subtype name (``epidural`` ... ``subdural``; -1 unknown),
``n_slices``, plus writer-specific keys (JSON values). Each study keeps its own record in its group's
attributes, so concurrent writers (dask tasks) never share a file; the root ``manifest.json`` and
``manifest.csv`` are gathered from the study groups by :meth:`Store.write_manifest` at the end of a
run, and :attr:`Store.manifest` re-reads any study that the gathered file does not list yet.

Atomicity
---------
:meth:`Store.write_study` and :meth:`Store.write_derived` write into a fresh group under
``.partial/`` and rename its directory into place as the last step (one ``os.rename``), so a study
(or a derived view set) is either complete or absent: an interrupted write leaves at most a
directory under ``.partial/``, which :meth:`Store.clean_partial` removes. Writers are idempotent:
a study that is already present is not rewritten (``overwrite=False``).

Examples
--------
>>> store = create_store("demo.zarr", {"source": "synthetic"}, geometry=g)   # doctest: +SKIP
>>> store.write_study("s00000", {"hu": hu, "sinogram": sino, "labels": labels})  # doctest: +SKIP
>>> store = open_store("demo.zarr")                                             # doctest: +SKIP
>>> store.study_ids(split="train")[:2], store.read("s00000", "hu", slices=slice(3, 5)).shape
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from sinotriage.errors import InputError, StoreError, StoreKeyError
from sinotriage.vocabulary import LABEL_NAMES, MU_WATER, SPLITS, SUBTYPE_NAMES

__all__ = [
    "LABEL_NAMES",
    "SPLITS",
    "STUDY_ARRAYS",
    "DERIVED_ARRAYS",
    "FORMAT_VERSION",
    "Store",
    "create_store",
    "open_store",
    "derived_key",
    "stratified_splits",
]

#: store format version written to the root attribute ``sinotriage_store``
FORMAT_VERSION = 1

UNASSIGNED = "unassigned"

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

UNITS: dict[str, str] = {
    "hu": "HU",
    "recon": "HU",
    "sinogram": "line integral of mu (dimensionless)",
    "tissues": "class index",
    "mask": "subtype index (0 none, 1..5 RSNA order)",
    "labels": "0/1",
}

MODES: tuple[str, ...] = ("r", "r+")
_STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DERIVED_KEY = re.compile(r"^v(\d{4,})(?:_p(\d+))?$")
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
_STUDIES = "studies"
_PARTIAL = ".partial"
_DERIVED = "derived"


def derived_key(views: int, photons: float | None = None) -> str:
    """Name of the derived group for ``views`` views (and optional extra noise at ``photons``).

    >>> derived_key(246), derived_key(61, 1e5)
    ('v0246', 'v0061_p100000')
    """
    views = _positive_int(views, "views")
    if photons is None:
        return f"v{views:04d}"
    if not isinstance(photons, int | float) or not np.isfinite(photons) or photons <= 0:
        raise InputError(f"photons must be a positive number or None, got {photons!r}")
    return f"v{views:04d}_p{round(float(photons))}"


def stratified_splits(
    study_ids: Sequence[str],
    labels: Sequence[int],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, str]:
    """Assign each study to train/val/test, stratified by label, reproducibly.

    Within each label stratum the studies (sorted by id) are shuffled with
    ``numpy.random.default_rng([seed, label])`` and cut by cumulative ``fractions``
    (largest-remainder rounding), so the result depends only on the set of (id, label) pairs
    and the seed, never on the order the studies were written.

    Parameters
    ----------
    study_ids : sequence of str
        Study identifiers (unique).
    labels : sequence of int
        Scan label of each study (any integers; each value is a stratum).
    fractions : 3 floats
        Train, validation and test fractions; non-negative, summing to 1.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    dict
        ``{study_id: "train" | "val" | "test"}``.
    """
    if len(study_ids) != len(labels):
        raise InputError(f"study_ids and labels differ in length: {len(study_ids)} != {len(labels)}")
    if len(set(study_ids)) != len(study_ids):
        raise InputError("study_ids must be unique")
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise InputError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions!r}")
    out: dict[str, str] = {}
    strata: dict[int, list[str]] = {}
    for sid, lab in zip(study_ids, labels, strict=True):
        strata.setdefault(int(lab), []).append(sid)
    for lab in sorted(strata):
        ids = sorted(strata[lab])
        rng = np.random.default_rng([int(seed), lab + 1])  # +1: label -1 (unknown) stays >= 0
        order = rng.permutation(len(ids))
        counts = _largest_remainder(fr * len(ids))
        bounds = np.cumsum(counts)
        for rank, idx in enumerate(order):
            out[ids[idx]] = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
    return out


def _largest_remainder(quotas: np.ndarray) -> np.ndarray:
    counts = np.floor(quotas).astype(int)
    short = int(round(quotas.sum())) - int(counts.sum())
    if short > 0:
        counts[np.argsort(-(quotas - counts), kind="stable")[:short]] += 1
    return counts


def create_store(
    path: str | os.PathLike[str],
    attrs: Mapping[str, Any] | None = None,
    *,
    geometry: Any = None,
    overwrite: bool = False,
) -> Store:
    """Create an empty store at ``path`` and return it open for writing (mode ``"r+"``).

    The root group is built under a temporary name beside ``path`` and renamed into place, so a
    store directory either has its root attributes or does not exist.

    Parameters
    ----------
    path : path-like
        Directory to create (conventionally ``NAME.zarr``).
    attrs : mapping, optional
        Root attributes (JSON values), e.g. ``source`` and ``settings``.
    geometry : FanBeamGeometry or ParallelBeamGeometry, optional
        Scanner geometry of the full-view sinograms; stored as ``attrs["geometry"]``.
    overwrite : bool
        Remove an existing directory at ``path`` first. Otherwise an existing path raises.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"store {path} already exists (open it with open_store, or overwrite)")
        shutil.rmtree(path)
    root_attrs: dict[str, Any] = {
        "sinotriage_store": FORMAT_VERSION,
        "label_names": list(LABEL_NAMES),
        "units": dict(UNITS),
        "geometry": None,
        "mu_water": MU_WATER,
        "source": "unknown",
        "settings": {},
        "splits": {},
    }
    root_attrs.update(dict(attrs or {}))
    if geometry is not None:
        root_attrs["geometry"] = geometry.to_dict()
    _check_json(root_attrs, "attrs")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    try:
        _build_root(tmp, root_attrs)
        _publish_root(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Store(path, mode="r+")


def _build_root(tmp: Path, root_attrs: dict[str, Any]) -> None:
    """Write the root group of a new store at the temporary path ``tmp``."""
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3, attributes=root_attrs)
    root.create_group(_STUDIES)


def _publish_root(tmp: Path, path: Path) -> None:
    """Rename the new store into place; another process that got there first is a StoreError."""
    try:
        os.rename(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise StoreError(
                f"store {path} was created by another process while this one was creating it; "
                "run the command again to resume that store, or choose another path"
            ) from None
        raise


def open_store(path: str | os.PathLike[str], mode: str = "r") -> Store:
    """Open an existing store.

    Parameters
    ----------
    path : path-like
        The store directory.
    mode : {"r", "r+"}
        ``"r"`` read only; ``"r+"`` read and write studies, derived arrays and attributes.

    Raises
    ------
    FileNotFoundError
        No store at ``path``.
    ValueError
        ``path`` is not a sinotriage store, or ``mode`` is not one of the choices.
    """
    return Store(path, mode=mode)


class Store:
    """A dataset store on disk (see the module docstring for the layout).

    Use :func:`open_store` / :func:`create_store` to get one. A ``Store`` is cheap to create and
    picklable (it holds the path and mode; zarr handles are opened lazily), so it can be sent to
    dask workers and DataLoader worker processes.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "r") -> None:
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        if not self.path.is_dir():
            raise FileNotFoundError(f"no dataset store at {self.path}")
        if not (self.path / "zarr.json").is_file() or not (self.path / _STUDIES).is_dir():
            raise StoreError(f"{self.path} is not a sinotriage store (no zarr.json / {_STUDIES}/)")
        self._root = zarr.open_group(str(self.path), mode="r" if mode == "r" else "r+")
        version = self._root.attrs.get("sinotriage_store")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{self.path} is not a sinotriage store of format {FORMAT_VERSION} "
                f"(attribute sinotriage_store = {version!r})"
            )
        self._groups: dict[str, zarr.Group] = {}
        self._arrays: dict[tuple[Any, ...], zarr.Array] = {}  # read-only mode only
        self._attrs: dict[str, Any] | None = None

    # -- pickling: zarr handles are reopened in the receiving process ------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "mode": self.mode}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["mode"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, mode={self.mode!r})"

    def __len__(self) -> int:
        return len(self._listed_ids())

    def __contains__(self, study_id: object) -> bool:
        return isinstance(study_id, str) and self.has_study(study_id)

    # -- attributes ---------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes (a copy; change them with :meth:`update_attrs`).

        A read-only store reads them once; a writable one re-reads them on every access.
        """
        if self.mode == "r":
            if self._attrs is None:
                self._attrs = json.loads(json.dumps(dict(self._root.attrs)))
            return json.loads(json.dumps(self._attrs))
        return json.loads(json.dumps(dict(self._reload_root().attrs)))

    def _attr(self, key: str, default: Any = None) -> Any:
        """One root attribute, uncopied (callers must not modify it)."""
        if self.mode == "r":
            if self._attrs is None:
                self._attrs = json.loads(json.dumps(dict(self._root.attrs)))
            return self._attrs.get(key, default)
        return self._reload_root().attrs.get(key, default)

    def update_attrs(self, **values: Any) -> None:
        """Set root attributes (JSON values). Single writer only: call it from the driver."""
        self._require_write()
        _check_json(values, "attribute values")
        self._reload_root().attrs.update(values)

    @property
    def geometry(self) -> Any:
        """The full-view scanner geometry (``sinotriage.geometry`` object), or ``None``."""
        d = self._attr("geometry")
        if d is None:
            return None
        from sinotriage.geometry import geometry_from_dict

        return geometry_from_dict(dict(d))

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self._attr("label_names", LABEL_NAMES))

    # -- studies and the manifest ----------------------------------------------------------
    def _listed_ids(self) -> list[str]:
        studies = self.path / _STUDIES
        return sorted(
            name
            for name in os.listdir(studies)
            if not name.startswith(".") and (studies / name / "zarr.json").is_file()
        )

    def has_study(self, study_id: str) -> bool:
        """True when the study is completely written."""
        return bool(_STUDY_ID.match(study_id)) and (self._study_dir(study_id) / "zarr.json").is_file()

    def study_ids(self, split: str | None = None) -> list[str]:
        """Sorted ids of the complete studies, optionally only those of one split.

        Parameters
        ----------
        split : {"train", "val", "test", "unassigned"} or None
        """
        if split is None:
            return self._listed_ids()
        choices = (*SPLITS, UNASSIGNED)
        if split not in choices:
            raise InputError(f"split must be one of {choices} or None, got {split!r}")
        return [r["study_id"] for r in self.manifest if r["split"] == split]

    def record(self, study_id: str) -> dict[str, Any]:
        """The manifest record of one study (its group attributes plus its split)."""
        rec = dict(self._study_group(study_id).attrs)
        rec["split"] = self._attr("splits", {}).get(study_id, rec.get("split", UNASSIGNED))
        return rec

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """One record per complete study, sorted by study id.

        Read from the gathered ``manifest.json`` where it lists a study, from the study's own
        attributes otherwise; the split comes from the root attribute ``splits``.
        """
        ids = self._listed_ids()
        cached: dict[str, Any] = {}
        mfile = self.path / "manifest.json"
        if mfile.is_file():
            with contextlib.suppress(ValueError, OSError):
                cached = json.loads(mfile.read_text())["studies"]
        splits = self._attr("splits", {})
        out = []
        for sid in ids:
            rec = dict(cached[sid]) if sid in cached else dict(self._study_group(sid).attrs)
            rec["split"] = splits.get(sid, rec.get("split", UNASSIGNED))
            out.append(rec)
        return out

    def write_manifest(self) -> list[dict[str, Any]]:
        """Gather the study records into ``manifest.json`` and ``manifest.csv`` (atomically).

        Call once at the end of a run, from the driver. Returns the manifest.
        """
        self._require_write()
        splits = self.attrs.get("splits", {})
        records = []
        for sid in self._listed_ids():
            rec = dict(self._study_group(sid).attrs)
            rec["split"] = splits.get(sid, rec.get("split", UNASSIGNED))
            records.append(rec)
        _atomic_write_text(
            self.path / "manifest.json",
            json.dumps({"studies": {r["study_id"]: r for r in records}}, indent=1, sort_keys=True),
        )
        _atomic_write_text(self.path / "manifest.csv", _manifest_csv(records))
        return records

    def assign_splits(
        self, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
    ) -> dict[str, str]:
        """Assign every complete study to train/val/test, stratified by scan label.

        See :func:`stratified_splits`. Studies whose record carries a split chosen by the writer
        (``record["split"]`` in train/val/test, e.g. an official split) keep it. Writes the root
        attribute ``splits`` and returns it.
        """
        self._require_write()
        fixed: dict[str, str] = {}
        free_ids, free_labels = [], []
        for sid in self._listed_ids():
            rec = dict(self._study_group(sid).attrs)
            if rec.get("split") in SPLITS:
                fixed[sid] = rec["split"]
            else:
                free_ids.append(sid)
                free_labels.append(int(rec.get("label", -1)))
        splits = stratified_splits(free_ids, free_labels, fractions, seed) if free_ids else {}
        splits.update(fixed)
        splits = dict(sorted(splits.items()))
        self.update_attrs(splits=splits)
        return splits

    # -- reading ----------------------------------------------------------------------------
    def arrays(self, study_id: str) -> list[str]:
        """Names of the arrays stored for a study (not counting derived ones)."""
        grp = self._study_group(study_id)
        return sorted(name for name, _ in grp.arrays())

    def array(
        self, study_id: str, name: str, views: int | None = None, photons: float | None = None
    ) -> zarr.Array:
        """The zarr array (lazy; index it to read) of one study.

        Parameters
        ----------
        study_id : str
        name : str
            A study array (``hu``, ``sinogram``, ``tissues``, ``mask``, ``labels``, ...) when
            ``views`` is None; ``sinogram`` or ``recon`` of the derived group otherwise.
        views : int, optional
            View count of a derived array. ``sinogram`` at the store's full view count (and no
            ``photons``) is the original sinogram.
        photons : float, optional
            Extra-noise level of the derived group (see ``sinotriage preprocess --noise-photons``).

        Raises
        ------
        KeyError
            The study, derived group or array does not exist (the message names store and study).
        """
        cache_key = (study_id, name, views, photons)
        if cache_key in self._arrays:
            return self._arrays[cache_key]
        arr = self._find_array(study_id, name, views, photons)
        if self.mode == "r":
            self._arrays[cache_key] = arr
        return arr

    def _find_array(
        self, study_id: str, name: str, views: int | None, photons: float | None
    ) -> zarr.Array:
        grp = self._study_group(study_id)
        if views is not None:
            geom = self._attr("geometry") or {}
            if name == "sinogram" and photons is None and views == geom.get("n_views"):
                views = None
        if views is None:
            if photons is not None:
                raise InputError("photons needs views (a derived group)")
            if name not in grp or not isinstance(grp[name], zarr.Array):
                raise StoreKeyError(
                    f"store {self.path}: study {study_id!r} has no array {name!r} "
                    f"(it has {self.arrays(study_id)})"
                )
            return grp[name]
        key = derived_key(views, photons)
        if _DERIVED not in grp or key not in grp[_DERIVED]:
            have = self.derived_keys(study_id)
            raise StoreKeyError(
                f"store {self.path}: study {study_id!r} has no derived group {key!r} "
                f"(it has {have}; run `sinotriage preprocess {self.path} --views {views}`)"
            )
        sub = grp[_DERIVED][key]
        if name not in sub:
            raise StoreKeyError(
                f"store {self.path}: study {study_id!r} derived group {key!r} has no array {name!r} "
                f"(it has {sorted(n for n, _ in sub.arrays())})"
            )
        return sub[name]

    def read(
        self,
        study_id: str,
        name: str,
        views: int | None = None,
        photons: float | None = None,
        slices: int | slice | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read (part of) an array of one study into memory.

        Parameters
        ----------
        study_id, name, views, photons
            As in :meth:`array`.
        slices : int, slice or sequence of int, optional
            Slice selection along the first axis (D); default all. Reading one slice reads one
            chunk.

        Returns
        -------
        numpy.ndarray
            The stored dtype: ``hu``/``recon`` int16 HU (D, H, W), ``sinogram`` float32 (D, V, C),
            ``labels`` uint8 (D, 6), ...
        """
        arr = self.array(study_id, name, views=views, photons=photons)
        if slices is None:
            return arr[...]
        if isinstance(slices, int | np.integer | slice):
            return arr[slices]
        idx = np.asarray(slices, dtype=int)
        return arr.get_orthogonal_selection((idx,) + (slice(None),) * (arr.ndim - 1))

    def has_array(
        self, study_id: str, name: str, views: int | None = None, photons: float | None = None
    ) -> bool:
        """True when :meth:`array` would find the array (a cheap check of the directories)."""
        if not self.has_study(study_id):
            return False
        base = self._study_dir(study_id)
        if views is not None:
            geom = self._attr("geometry") or {}
            if not (name == "sinogram" and photons is None and views == geom.get("n_views")):
                base = base / _DERIVED / derived_key(views, photons)
        return (base / name / "zarr.json").is_file()

    def derived_keys(self, study_id: str) -> list[str]:
        """Keys of the complete derived groups of one study (e.g. ``["v0246", "v0492"]``)."""
        d = self._study_dir(study_id) / _DERIVED
        if not d.is_dir():
            return []
        return sorted(
            n for n in os.listdir(d) if _DERIVED_KEY.match(n) and (d / n / "zarr.json").is_file()
        )

    def has_derived(self, study_id: str, views: int, photons: float | None = None) -> bool:
        """True when the derived group for (views, photons) of the study is complete."""
        return derived_key(views, photons) in self.derived_keys(study_id)

    def views_available(
        self, study_id: str | None = None, name: str = "recon", photons: float | None = None
    ) -> list[int]:
        """View counts at which ``name`` can be read, for one study or for every study.

        Parameters
        ----------
        study_id : str, optional
            One study; default: the counts available for *all* complete studies.
        name : {"recon", "sinogram"}
            ``sinogram`` also counts the original full-view sinogram.
        photons : float, optional
            Only derived groups with this extra-noise level (None: without extra noise).
        """
        if name not in DERIVED_ARRAYS:
            raise InputError(f"name must be one of {tuple(DERIVED_ARRAYS)}, got {name!r}")
        ids = [study_id] if study_id is not None else self.study_ids()
        common: set[int] | None = None
        full = (self._attr("geometry") or {}).get("n_views")
        for sid in ids:
            have: set[int] = set()
            for key in self.derived_keys(sid):
                m = _DERIVED_KEY.match(key)
                assert m is not None
                p = int(m.group(2)) if m.group(2) else None
                want = None if photons is None else round(float(photons))
                if p == want and (self._study_dir(sid) / _DERIVED / key / name).is_dir():
                    have.add(int(m.group(1)))
            if name == "sinogram" and photons is None and full is not None:
                if (self._study_dir(sid) / "sinogram").is_dir():
                    have.add(int(full))
            common = have if common is None else common & have
        return sorted(common or ())

    def derived_geometry(self, views: int, photons: float | None = None) -> Any:
        """Geometry of the derived sinograms at ``views`` (the full geometry at the full count)."""
        full = self.geometry
        if full is not None and views == full.n_views and photons is None:
            return full
        key = derived_key(views, photons)
        for sid in self.study_ids():
            if key in self.derived_keys(sid):
                from sinotriage.geometry import geometry_from_dict

                return geometry_from_dict(self._study_group(sid)[_DERIVED][key].attrs["geometry"])
        raise StoreKeyError(f"store {self.path}: no study has derived group {key!r}")

    # -- writing ----------------------------------------------------------------------------
    def write_study(
        self,
        study_id: str,
        arrays: Mapping[str, Any],
        record: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ) -> bool:
        """Write one study atomically (complete or absent). Safe to call from many processes.

        Parameters
        ----------
        study_id : str
            Letters, digits, ``.``, ``_``, ``-`` (at most 128 characters, no leading dot).
        arrays : mapping of name -> array-like (numpy or torch)
            At least one of ``hu`` (D, H, W) HU, ``sinogram`` (D, V, C); optional ``tissues``,
            ``mask`` (D, H, W), ``labels`` (D, 6), and extra arrays with a leading slice axis.
            Known names are cast to their stored dtype (HU rounded to the nearest integer and
            clipped to the int16 range); shapes are checked against each other and against the
            store geometry.
        record : mapping, optional
            Manifest fields (JSON values). ``label`` and the subtype flags are computed from
            ``labels`` when given (a contradicting ``label`` raises); without ``labels`` they
            default to -1 (unknown). ``n_slices`` is set from the arrays.
        overwrite : bool
            Replace an existing study. Otherwise an existing study is left alone.

        Returns
        -------
        bool
            True when this call wrote the study, False when it already existed.
        """
        self._require_write()
        _check_study_id(study_id)
        final = self._study_dir(study_id)
        if final.exists() and not overwrite:
            return False
        data = self._prepare_arrays(study_id, arrays)
        rec = self._make_record(study_id, data, record)
        with self._partial_group(rec) as (grp, tmp):
            for name, arr in data.items():
                _write_array(grp, name, arr)
            grp.create_group(_DERIVED)
            _verify_complete(tmp, [*data, _DERIVED])
            return self._commit(tmp, final, overwrite)

    def write_derived(
        self,
        study_id: str,
        views: int,
        arrays: Mapping[str, Any],
        geometry: Any,
        *,
        photons: float | None = None,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> bool:
        """Write a derived group (``sinotriage preprocess`` output) of one study atomically.

        Parameters
        ----------
        study_id : str
            An existing study.
        views : int
            View count of the derived sinogram; must equal ``geometry.n_views``.
        arrays : mapping
            ``sinogram`` float32 (D, views, C) and/or ``recon`` (D, H, W) HU (stored as int16,
            rounded).
        geometry : geometry object
            Geometry of the derived sinogram (stored as the group attribute ``geometry``).
        photons : float, optional
            Extra-noise level, part of the group key (see :func:`derived_key`).
        attrs : mapping, optional
            More group attributes (e.g. the FBP filter).
        overwrite : bool
            Replace an existing group. Otherwise an existing group is left alone.

        Returns
        -------
        bool
            True when written, False when it already existed.
        """
        self._require_write()
        if not self.has_study(study_id):
            raise StoreKeyError(f"store {self.path}: no study {study_id!r} to derive from")
        key = derived_key(views, photons)
        if geometry.n_views != views:
            raise InputError(f"geometry.n_views ({geometry.n_views}) != views ({views})")
        n_slices = int(self._study_group(study_id).attrs.get("n_slices", -1))
        data: dict[str, np.ndarray] = {}
        for name, value in arrays.items():
            if name not in DERIVED_ARRAYS:
                raise InputError(
                    f"derived array name must be one of {tuple(DERIVED_ARRAYS)}, got {name!r}"
                )
            arr = _coerce(name, value, DERIVED_ARRAYS[name])
            expected = geometry.sinogram_shape if name == "sinogram" else geometry.image_shape
            if arr.shape[1:] != tuple(expected) or (n_slices > 0 and arr.shape[0] != n_slices):
                raise InputError(
                    f"store {self.path}: study {study_id!r} derived {name!r} has shape {arr.shape}, "
                    f"expected ({n_slices}, {', '.join(map(str, expected))})"
                )
            data[name] = arr
        if not data:
            raise InputError("arrays must hold 'sinogram' and/or 'recon'")
        meta = {"views": int(views), "photons": photons, "geometry": geometry.to_dict()}
        meta.update(dict(attrs or {}))
        derived = self._study_dir(study_id) / _DERIVED
        if not (derived / "zarr.json").is_file():
            zarr.open_group(str(derived), mode="a", zarr_format=3)
        final = derived / key
        if final.exists() and not overwrite:
            return False
        with self._partial_group(meta) as (grp, tmp):
            for name, arr in data.items():
                _write_array(grp, name, arr)
            _verify_complete(tmp, list(data))
            return self._commit(tmp, final, overwrite)

    def clean_partial(self) -> int:
        """Remove leftovers of interrupted writes (``.partial/``); returns how many were removed.

        Call it from the driver before a run, not while other writers work on the same store.
        """
        self._require_write()
        part = self.path / _PARTIAL
        if not part.is_dir():
            return 0
        names = os.listdir(part)
        for n in names:
            shutil.rmtree(part / n, ignore_errors=True)
        return len(names)

    # -- internals --------------------------------------------------------------------------
    def _require_write(self) -> None:
        if self.mode == "r":
            raise StoreError(f"store {self.path} is open read-only (open it with mode='r+')")

    def _reload_root(self) -> zarr.Group:
        self._root = zarr.open_group(str(self.path), mode="r" if self.mode == "r" else "r+")
        return self._root

    def _study_dir(self, study_id: str) -> Path:
        return self.path / _STUDIES / study_id

    def _study_group(self, study_id: str) -> zarr.Group:
        if not isinstance(study_id, str):
            raise TypeError(f"study_id must be a str, got {type(study_id).__name__}")
        grp = self._groups.get(study_id)
        if grp is None:
            if not self.has_study(study_id):
                n = len(self._listed_ids())
                raise StoreKeyError(f"store {self.path}: no study {study_id!r} ({n} studies stored)")
            grp = zarr.open_group(str(self._study_dir(study_id)), mode="r")
            self._groups[study_id] = grp
        return grp

    def _prepare_arrays(self, study_id: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(arrays, Mapping) or not arrays:
            raise InputError(f"study {study_id!r}: arrays must be a non-empty mapping of name -> array")
        if "hu" not in arrays and "sinogram" not in arrays:
            raise InputError(f"study {study_id!r}: arrays need 'hu' and/or 'sinogram', got {sorted(arrays)}")
        data: dict[str, np.ndarray] = {}
        for name, value in arrays.items():
            if not isinstance(name, str) or not _STUDY_ID.match(name) or name == _DERIVED:
                raise InputError(f"study {study_id!r}: bad array name {name!r}")
            data[name] = _coerce(name, value, STUDY_ARRAYS.get(name))
        depth = {name: arr.shape[0] for name, arr in data.items()}
        if len(set(depth.values())) != 1:
            raise InputError(f"study {study_id!r}: arrays differ in slice count: {depth}")
        if depth[next(iter(depth))] == 0:
            raise InputError(f"study {study_id!r}: arrays have no slices")
        geom = self.geometry
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
                    f"store {self.path}: study {study_id!r} sinogram is {shapes['sinogram']}, the "
                    f"store geometry expects (D, {geom.sinogram_shape[0]}, {geom.sinogram_shape[1]})"
                )
            for n in image_like:
                if data[n].shape[1:] != tuple(geom.image_shape):
                    raise InputError(
                        f"store {self.path}: study {study_id!r} {n} is {shapes[n]}, the store "
                        f"geometry expects (D, {geom.image_shape[0]}, {geom.image_shape[1]})"
                    )
        return data

    def _make_record(
        self, study_id: str, data: Mapping[str, np.ndarray], record: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        rec: dict[str, Any] = dict(record or {})
        rec["study_id"] = study_id
        rec["n_slices"] = int(next(iter(data.values())).shape[0])
        if "labels" in data:
            flags = data["labels"].max(axis=0).astype(int)
            if "label" in rec and int(rec["label"]) != int(flags[0]):
                raise InputError(
                    f"study {study_id!r}: record label {rec['label']} contradicts the slice labels "
                    f"(any slice positive = {int(flags[0])})"
                )
            rec["label"] = int(flags[0])
            for name, flag in zip(SUBTYPE_NAMES, flags[1:], strict=True):
                rec[name] = int(flag)
        else:
            rec["label"] = int(rec.get("label", -1))
            for name in SUBTYPE_NAMES:
                rec[name] = int(rec.get(name, -1))
        if rec["label"] not in (-1, 0, 1):
            raise InputError(f"study {study_id!r}: label must be 0, 1 or -1, got {rec['label']}")
        rec.setdefault("split", UNASSIGNED)
        _check_json(rec, f"record of study {study_id!r}")
        return rec

    @contextlib.contextmanager
    def _partial_group(self, attrs: Mapping[str, Any]) -> Iterator[tuple[zarr.Group, Path]]:
        part = self.path / _PARTIAL
        part.mkdir(exist_ok=True)
        tmp = part / f"{os.getpid()}-{uuid.uuid4().hex}"
        try:
            grp = zarr.open_group(str(tmp), mode="w", zarr_format=3, attributes=dict(attrs))
            yield grp, tmp
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _commit(self, tmp: Path, final: Path, overwrite: bool) -> bool:
        if overwrite and final.exists():
            trash = self.path / _PARTIAL / f"old-{uuid.uuid4().hex}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if (final / "zarr.json").is_file():  # another writer finished it first
                return False
            raise
        self._groups.pop(final.name, None)
        return True


# -- module helpers ----------------------------------------------------------------------------
def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_study_id(study_id: Any) -> None:
    if not isinstance(study_id, str) or not _STUDY_ID.match(study_id):
        raise InputError(
            "study_id must be 1-128 characters of letters, digits, '.', '_' or '-' "
            f"(not starting with '.', '_' or '-'), got {study_id!r}"
        )


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must hold JSON values only: {exc}") from None


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _coerce(name: str, value: Any, spec: tuple[str, int] | None) -> np.ndarray:
    arr = _to_numpy(value)
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


def _write_array(group: zarr.Group, name: str, arr: np.ndarray) -> None:
    chunks = (1, *arr.shape[1:]) if arr.ndim >= 3 else arr.shape
    z = group.create_array(
        name,
        shape=arr.shape,
        dtype=arr.dtype,
        chunks=chunks,
        compressors=_COMPRESSOR,
        fill_value=0,
        attributes={"units": UNITS.get(name, "")},
    )
    z[...] = arr


def _verify_complete(tmp: Path, names: Sequence[str]) -> None:
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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _manifest_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """The manifest as CSV: the standard columns, then every other key with scalar values only
    (nested values such as the generator settings stay in ``manifest.json``)."""
    first = ["study_id", "split", "label", *SUBTYPE_NAMES, "n_slices"]
    nested = {k for r in records for k, v in r.items() if isinstance(v, dict | list)}
    extra = sorted({k for r in records for k in r} - set(first) - nested)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=first + extra, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow(r)
    return buf.getvalue()
