"""The dataset store: one zarr (v3) directory per dataset, written once and read by many experiments.

Every dataset, synthetic (``sinotriage synth``) or real (``sinotriage ingest``), becomes a store:
a directory ``DIR.zarr`` with one group per study under ``studies/``, the gathered manifest, and
the root attributes. The layout, array dtypes and root attributes are described in
:mod:`sinotriage.io.store_format`.

The manifest
------------
One record per study (:mod:`sinotriage.io.manifest`), kept in the study group's attributes and
gathered into ``manifest.json`` / ``manifest.csv`` by :meth:`Store.write_manifest`. The split of
each study is the root attribute ``splits`` (:mod:`sinotriage.io.splits`). Array names, dtypes,
ids and the checks before a write are in :mod:`sinotriage.io.store_format`; derived groups in
:mod:`sinotriage.io.store_derived`.

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
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from sinotriage.errors import InputError, StoreError, StoreKeyError
from sinotriage.io.manifest import UNASSIGNED, make_record, read_gathered, write_gathered
from sinotriage.io.splits import stratified_splits
from sinotriage.io.store_derived import DerivedGroups
from sinotriage.io.store_format import (
    DERIVED_ARRAYS,
    DERIVED_DIR,
    FORMAT_VERSION,
    MODES,
    PARTIAL_DIR,
    STUDIES_DIR,
    STUDY_ARRAYS,
    STUDY_ID,
    UNITS,
    check_json,
    check_study_id,
    derived_key,
    prepare_arrays,
    verify_complete,
)
from sinotriage.io.store_format import write_array as _write_array
from sinotriage.vocabulary import LABEL_NAMES, MU_WATER, SPLITS, SUBTYPE_NAMES

__all__ = [
    "LABEL_NAMES",
    "SPLITS",
    "SUBTYPE_NAMES",
    "STUDY_ARRAYS",
    "DERIVED_ARRAYS",
    "FORMAT_VERSION",
    "UNASSIGNED",
    "Store",
    "create_store",
    "open_store",
    "derived_key",
    "stratified_splits",
]


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
    check_json(root_attrs, "attrs")
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
    root.create_group(STUDIES_DIR)


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


class Store(DerivedGroups):
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
        if not (self.path / "zarr.json").is_file() or not (self.path / STUDIES_DIR).is_dir():
            raise StoreError(f"{self.path} is not a sinotriage store (no zarr.json / {STUDIES_DIR}/)")
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
        check_json(values, "attribute values")
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
        studies = self.path / STUDIES_DIR
        return sorted(
            name
            for name in os.listdir(studies)
            if not name.startswith(".") and (studies / name / "zarr.json").is_file()
        )

    def has_study(self, study_id: str) -> bool:
        """True when the study is completely written."""
        return bool(STUDY_ID.match(study_id)) and (self._study_dir(study_id) / "zarr.json").is_file()

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
        cached = read_gathered(self.path)
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
        write_gathered(self.path, records)
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
        if DERIVED_DIR not in grp or key not in grp[DERIVED_DIR]:
            have = self.derived_keys(study_id)
            raise StoreKeyError(
                f"store {self.path}: study {study_id!r} has no derived group {key!r} "
                f"(it has {have}; run `sinotriage preprocess {self.path} --views {views}`)"
            )
        sub = grp[DERIVED_DIR][key]
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
                base = base / DERIVED_DIR / derived_key(views, photons)
        return (base / name / "zarr.json").is_file()

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
        check_study_id(study_id)
        final = self._study_dir(study_id)
        if final.exists() and not overwrite:
            return False
        data = prepare_arrays(study_id, arrays, self.geometry, self.path)
        rec = make_record(study_id, data, record)
        with self._partial_group(rec) as (grp, tmp):
            for name, arr in data.items():
                _write_array(grp, name, arr)
            grp.create_group(DERIVED_DIR)
            verify_complete(tmp, [*data, DERIVED_DIR])
            return self._commit(tmp, final, overwrite)

    def clean_partial(self) -> int:
        """Remove leftovers of interrupted writes (``.partial/``); returns how many were removed.

        Call it from the driver before a run, not while other writers work on the same store.
        """
        self._require_write()
        part = self.path / PARTIAL_DIR
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
        return self.path / STUDIES_DIR / study_id

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

    @contextlib.contextmanager
    def _partial_group(self, attrs: Mapping[str, Any]) -> Iterator[tuple[zarr.Group, Path]]:
        part = self.path / PARTIAL_DIR
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
            trash = self.path / PARTIAL_DIR / f"old-{uuid.uuid4().hex}"
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
