"""The derived groups of a store's studies (``sinotriage preprocess`` output).

``studies/<id>/derived/<key>/`` holds ``sinogram`` float32 (D, V, C) and/or ``recon`` int16 HU
(D, H, W) at ``V`` views (and optional extra noise), with the derived geometry in the group
attributes; ``<key>`` is :func:`~sinotriage.io.store_format.derived_key`. A group is written
atomically like a study. :class:`DerivedGroups` adds the methods on derived groups to
:class:`sinotriage.io.store.Store`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from sinotriage.errors import InputError, StoreKeyError
from sinotriage.io.store_format import (
    DERIVED_ARRAYS,
    DERIVED_DIR,
    DERIVED_KEY,
    coerce,
    derived_key,
    verify_complete,
    write_array,
)

__all__ = ["DerivedGroups"]


class DerivedGroups:
    """Methods of :class:`~sinotriage.io.store.Store` on derived groups (a mixin).

    Uses the store's ``path``, ``geometry``, ``has_study``, ``study_ids``, ``_attr``,
    ``_study_dir``, ``_study_group``, ``_require_write``, ``_partial_group`` and ``_commit``.
    """

    path: Path

    def derived_keys(self, study_id: str) -> list[str]:
        """Keys of the complete derived groups of one study (e.g. ``["v0246", "v0492"]``)."""
        d = self._study_dir(study_id) / DERIVED_DIR
        if not d.is_dir():
            return []
        return sorted(
            n for n in os.listdir(d) if DERIVED_KEY.match(n) and (d / n / "zarr.json").is_file()
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
                m = DERIVED_KEY.match(key)
                assert m is not None
                p = int(m.group(2)) if m.group(2) else None
                want = None if photons is None else round(float(photons))
                if p == want and (self._study_dir(sid) / DERIVED_DIR / key / name).is_dir():
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

                return geometry_from_dict(self._study_group(sid)[DERIVED_DIR][key].attrs["geometry"])
        raise StoreKeyError(f"store {self.path}: no study has derived group {key!r}")

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
            arr = coerce(name, value, DERIVED_ARRAYS[name])
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
        derived = self._study_dir(study_id) / DERIVED_DIR
        if not (derived / "zarr.json").is_file():
            zarr.open_group(str(derived), mode="a", zarr_format=3)
        final = derived / key
        if final.exists() and not overwrite:
            return False
        with self._partial_group(meta) as (grp, tmp):
            for name, arr in data.items():
                write_array(grp, name, arr)
            verify_complete(tmp, list(data))
            return self._commit(tmp, final, overwrite)
