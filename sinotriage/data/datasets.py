"""Torch datasets over a dataset store: slice-level and scan-level items in four domains.

Domains (``domain=``)
---------------------
``"hu"``
    The stored HU volume (ground truth of synthetic data; the DICOM reconstruction of real data):
    ``(1, H, W)`` per slice, float32 HU.
``"sinogram"``
    Line integrals ``(1, V, C)`` per slice: the stored full-view sinogram (``views=None`` or the
    full count) or a derived one (``views=246``; run ``sinotriage preprocess`` first).
``"recon"``
    The FBP reconstruction in HU at ``views`` views (derived; ``views=None`` means the full count),
    ``(1, H, W)``.
``"windowed"``
    Named windows stacked as channels, ``(K, H, W)`` in [0, 1]: a shorthand for the HU volume
    (``views`` None) or the FBP reconstruction at ``views`` through the
    :class:`sinotriage.transforms.MultiWindow` transform, the same class the training engine
    passes as ``transform=MultiWindowd("image", windows)`` on the stored domain.

Datasets return the stored domain; windowing, HU scaling (:class:`~sinotriage.transforms.ScaleHU`),
detector binning (:class:`~sinotriage.transforms.BinDetectors`) and resizing
(:class:`~sinotriage.transforms.ResizeSlices`) are transforms.

Items are dicts::

    SliceDataset:  image  float32 (C, H, W)  [(C, V, C_det) for sinograms]
                   label  float32 (6,) slice labels (target="multilabel") or () any-hemorrhage
                          (target="binary")
                   study_id str, slice int, split str
    ScanDataset:   image  float32 (C, D, H, W)  [(C, D, V, C_det)]
                   label  float32 () scan label (target="binary") or (6,) scan flags
                          (target="multilabel"; -1 where unknown)
                   slice_labels float32 (D, 6), present when the study has slice labels
                   study_id str, n_slices int, split str

``context=k`` (slice items) stacks the ``2k + 1`` neighbouring slices (clamped at the ends) as
channels, neighbours first in slice order: ``(C * (2k + 1), H, W)``. ``depth=n`` (scan items)
resamples every scan to ``n`` slices by nearest-slice selection so that scans batch together.
Reads are lazy (one chunk per slice); ``cache=True`` keeps each study's array in memory after its
first read (small stores). ``transform`` is applied to the item dict last.

Examples
--------
>>> from sinotriage.data import SliceDataset, ScanDataset
>>> ds = SliceDataset("quick.zarr", split="train", domain="windowed",
...                   windows=("brain", "subdural", "bone"))            # doctest: +SKIP
>>> item = ds[0]; item["image"].shape, item["label"].shape              # doctest: +SKIP
(torch.Size([3, 128, 128]), torch.Size([6]))
>>> scans = ScanDataset("quick.zarr", split="test", domain="sinogram", views=246,
...                     target="binary", depth=16)                      # doctest: +SKIP
>>> scans[0]["image"].shape                                             # doctest: +SKIP
torch.Size([1, 16, 246, 222])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sinotriage.io.store import SPLITS, SUBTYPE_NAMES, Store, open_store

__all__ = ["DOMAINS", "TARGETS", "SliceDataset", "ScanDataset"]

DOMAINS: tuple[str, ...] = ("hu", "sinogram", "recon", "windowed")
TARGETS: tuple[str, ...] = ("binary", "multilabel")


class _StoreDataset(Dataset):
    """Shared option checking, study selection and (cached) reading."""

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        *,
        split: str | None,
        domain: str,
        views: int | None,
        photons: float | None,
        windows: Sequence[str],
        target: str,
        study_ids: Sequence[str] | None,
        cache: bool,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None,
    ) -> None:
        self.store = store if isinstance(store, Store) else open_store(store)
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        if domain == "hu" and (views is not None or photons is not None):
            raise ValueError("domain 'hu' takes no views/photons (use domain='recon')")
        if domain == "windowed":
            from sinotriage.windowing import CHANNEL_NAMES

            windows = (windows,) if isinstance(windows, str) else tuple(windows)
            if not windows:
                raise ValueError("windows must name at least one window")
            for w in windows:
                if w not in CHANNEL_NAMES:
                    raise ValueError(f"window must be one of {tuple(CHANNEL_NAMES)}, got {w!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.domain, self.views, self.photons = domain, views, photons
        self.windows = tuple(windows)
        self.target, self.split, self.cache, self.transform = target, split, cache, transform
        manifest = {r["study_id"]: r for r in self.store.manifest}
        if study_ids is None:
            ids = [s for s, r in manifest.items() if split is None or r["split"] == split]
        else:
            unknown = [s for s in study_ids if s not in manifest]
            if unknown:
                raise KeyError(f"store {self.store.path}: no studies {unknown[:5]}")
            ids = [s for s in study_ids if split is None or manifest[s]["split"] == split]
        self.records = [manifest[s] for s in ids]
        self._name, self._views = self._array_name()
        for r in self.records:  # fail now, not in a DataLoader worker
            if not self.store.has_array(r["study_id"], self._name, self._views, photons):
                self.store.array(r["study_id"], self._name, views=self._views, photons=photons)
        self._cache: dict[str, np.ndarray] = {}
        self._windowing = None
        if domain == "windowed":
            from sinotriage.transforms import MultiWindow

            self._windowing = MultiWindow(self.windows)

    def _array_name(self) -> tuple[str, int | None]:
        if self.domain == "hu" or (self.domain == "windowed" and self.views is None):
            return "hu", None
        if self.domain == "sinogram":
            return "sinogram", self.views
        views = self.views
        if views is None:
            geometry = self.store.geometry
            if geometry is None:
                raise ValueError(f"store {self.store.path} has no geometry; give views=")
            views = geometry.n_views
        return "recon", views

    def _read(self, study_id: str, slices: Any = None) -> np.ndarray:
        if self.cache:
            arr = self._cache.get(study_id)
            if arr is None:
                arr = self.store.read(study_id, self._name, views=self._views, photons=self.photons)
                self._cache[study_id] = arr
            return arr if slices is None else arr[slices]
        return self.store.read(study_id, self._name, views=self._views, photons=self.photons,
                               slices=slices)

    def _to_image(self, arr: np.ndarray, scan: bool) -> torch.Tensor:
        """(n, H, W) stored slices -> float32 channel-first image: ``(n * K, H, W)`` with the
        ``n`` slices as channels (slice items), or ``(K, n, H, W)`` (scan items); ``K`` is 1
        except for the windowed domain."""
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if scan:
            t = t.unsqueeze(0)
        return self._windowing(t) if self._windowing is not None else t

    def _finish(self, item: dict[str, Any]) -> dict[str, Any]:
        return self.transform(item) if self.transform is not None else item

    @property
    def study_ids(self) -> list[str]:
        return [r["study_id"] for r in self.records]


class SliceDataset(_StoreDataset):
    """One item per slice of the selected studies.

    Parameters
    ----------
    store : Store or path
        The dataset store.
    split : {"train", "val", "test"}, optional
        Only the studies of this split (default all).
    domain : {"hu", "sinogram", "recon", "windowed"}
        See the module docstring.
    views : int, optional
        View count of ``sinogram`` / ``recon`` / windowed-recon items.
    photons : float, optional
        Extra-noise level of the derived arrays (``sinotriage preprocess --noise-photons``).
    windows : sequence of str
        Window names of the ``windowed`` domain (keys of ``sinotriage.windowing.WINDOWS`` or
        ``"histeq"``).
    target : {"multilabel", "binary"}
        ``label`` is the (6,) slice label vector, or the scalar "any" label.
    context : int
        Neighbouring slices on each side stacked as channels.
    study_ids : sequence of str, optional
        Restrict to these studies.
    cache : bool
        Keep read studies in memory.
    transform : callable, optional
        Applied to the item dict.

    Raises
    ------
    ValueError
        An option outside its choices, or a selected study without slice ``labels``.
    KeyError
        A requested array (e.g. a view count that was not preprocessed) is missing.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        split: str | None = None,
        *,
        domain: str = "hu",
        views: int | None = None,
        photons: float | None = None,
        windows: Sequence[str] = ("brain", "subdural", "bone"),
        target: str = "multilabel",
        context: int = 0,
        study_ids: Sequence[str] | None = None,
        cache: bool = False,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if isinstance(context, bool) or not isinstance(context, int) or context < 0:
            raise ValueError(f"context must be an integer >= 0, got {context!r}")
        super().__init__(store, split=split, domain=domain, views=views, photons=photons,
                         windows=windows, target=target, study_ids=study_ids, cache=cache,
                         transform=transform)
        self.context = context
        for r in self.records:
            if not self.store.has_array(r["study_id"], "labels"):
                raise ValueError(f"store {self.store.path}: study {r['study_id']!r} has no slice "
                                 "labels; use ScanDataset for scan-level labels")
        self.index: list[tuple[int, int]] = [
            (k, s) for k, r in enumerate(self.records) for s in range(int(r["n_slices"]))
        ]
        self._labels: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def slice_labels(self, study_id: str) -> np.ndarray:
        """(D, 6) uint8 slice labels of a study (kept in memory; they are small)."""
        lab = self._labels.get(study_id)
        if lab is None:
            lab = self.store.read(study_id, "labels")
            self._labels[study_id] = lab
        return lab

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} slices")
        k, s = self.index[i]
        rec = self.records[k]
        sid, depth = rec["study_id"], int(rec["n_slices"])
        if self.context:
            idx = np.clip(np.arange(s - self.context, s + self.context + 1), 0, depth - 1)
            arr = self._read(sid, idx)
        else:
            arr = self._read(sid, slice(s, s + 1))
        image = self._to_image(arr, scan=False)  # (n * K, ...)
        lab = torch.from_numpy(self.slice_labels(sid)[s].astype(np.float32))
        item = {
            "image": image,
            "label": lab if self.target == "multilabel" else lab[0],
            "study_id": sid,
            "slice": s,
            "split": rec["split"],
        }
        return self._finish(item)


class ScanDataset(_StoreDataset):
    """One item per study (whole scan).

    Parameters
    ----------
    store, split, domain, views, photons, windows, study_ids, cache, transform
        As in :class:`SliceDataset`.
    target : {"binary", "multilabel"}
        ``label`` is the scalar scan label, or the (6,) scan flags (any + subtypes; -1 unknown).
    depth : int, optional
        Resample every scan to this many slices (nearest slice) so that scans batch together.

    Items hold ``slice_labels`` (D, 6) float32 when the study has slice labels.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        split: str | None = None,
        *,
        domain: str = "hu",
        views: int | None = None,
        photons: float | None = None,
        windows: Sequence[str] = ("brain", "subdural", "bone"),
        target: str = "binary",
        depth: int | None = None,
        study_ids: Sequence[str] | None = None,
        cache: bool = False,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)
                                  or depth < 1):
            raise ValueError(f"depth must be a positive integer or None, got {depth!r}")
        super().__init__(store, split=split, domain=domain, views=views, photons=photons,
                         windows=windows, target=target, study_ids=study_ids, cache=cache,
                         transform=transform)
        self.depth = depth
        self._has_labels = {r["study_id"] for r in self.records
                            if self.store.has_array(r["study_id"], "labels")}

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> np.ndarray:
        """Scan labels of all items, int (N,), -1 where unknown (no reads)."""
        return np.array([int(r["label"]) for r in self.records], dtype=np.int64)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} scans")
        rec = self.records[i]
        sid, n = rec["study_id"], int(rec["n_slices"])
        idx = None
        if self.depth is not None and self.depth != n:
            idx = np.rint(np.linspace(0, n - 1, self.depth)).astype(np.int64)
        arr = self._read(sid) if idx is None or self.cache else self._read(sid, idx)
        if idx is not None and self.cache:
            arr = arr[idx]
        image = self._to_image(arr, scan=True)  # (K, D, ...)
        if self.target == "binary":
            label = torch.tensor(float(rec["label"]), dtype=torch.float32)
        else:
            label = torch.tensor([float(rec["label"])]
                                 + [float(rec.get(name, -1)) for name in SUBTYPE_NAMES],
                                 dtype=torch.float32)
        item: dict[str, Any] = {"image": image, "label": label, "study_id": sid,
                                "n_slices": n, "split": rec["split"]}
        if sid in self._has_labels:
            lab = self.store.read(sid, "labels")
            item["slice_labels"] = torch.from_numpy(
                (lab if idx is None else lab[idx]).astype(np.float32))
        return self._finish(item)
