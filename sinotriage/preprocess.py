"""Derive sinograms at fewer views and their FBP reconstructions, per study, for a whole store.

:func:`preprocess` is the library side of ``sinotriage preprocess``. For each study (one dask task)
and each requested view count ``V`` it

1. takes the stored full-view sinogram ``(D, V0, C)`` and keeps ``V`` of its views
   (:func:`sinotriage.operators.select_views`);
2. optionally adds transmission Poisson noise at ``photons`` per bin (a lower-dose scan on top of
   the stored one), seeded by ``(seed, study_id, V)``;
3. reconstructs it with FBP (:func:`sinotriage.operators.fbp`) and converts to HU;
4. writes ``studies/<id>/derived/v{V:04d}[_p{photons}]/`` with ``sinogram`` (float32, omitted at
   ``V == V0`` without extra noise, where it equals the stored one) and ``recon`` (int16 HU), and
   the derived geometry in the group attributes (atomic, like every store write).

View selection
--------------
When ``V`` divides ``V0`` the views ``0, k, 2k, ...`` (``k = V0 / V``) are kept
(:func:`sinotriage.operators.subsample_views`): evenly spaced over the full rotation, exact.
Otherwise (e.g. 61 of 984, as in the SinoCT study's 984/492/246/123/61 ladder) the measured view
nearest to each of ``V`` evenly spaced angles is kept, ``floor(j * V0 / V + 1/2)`` for
``j < V``, and the sinogram is labelled with the evenly spaced geometry ``g.with_views(V)``; the
angle error is at most half the original view step (0.18 degrees at ``V0 = 984``), recorded as ``max_angle_error`` in the
group attributes. Fan-beam FBP needs the full rotation, which both rules keep.

A rerun computes only the missing (study, view count) pairs, so an interrupted run resumes and a
repeated run does nothing. Each task uses one torch thread and a fixed ``backend`` (``numba``
where installed, the CPU row of :data:`sinotriage.operators.RULES`; recorded in the attributes)
so that the arrays do not depend on where the task runs.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sinotriage.errors import InputError, StoreError
from sinotriage.io.store import Store, derived_key, open_store
from sinotriage.operators import select_views
from sinotriage.parallel import check_workers, resolve_backend, run_tasks
from sinotriage.vocabulary import MU_WATER

__all__ = ["PreprocessResult", "preprocess", "preprocess_study", "select_views"]

#: slices reconstructed at once (bounds memory at the 984 x 888 SinoCT size)
SLICE_BATCH = 8


def preprocess_study(
    study_id: str,
    *,
    path: str,
    views: Sequence[int],
    photons: float | None = None,
    filter: str = "ram-lak",
    cutoff: float = 1.0,
    seed: int = 0,
    backend: str | None = None,
    device: str = "cpu",
) -> int:
    """Derive the missing view counts of one study (one dask task); returns how many it wrote."""
    import torch

    from sinotriage.operators import add_poisson_noise, fbp, mu_to_hu

    backend = resolve_backend(device, backend)
    store = open_store(path, mode="r+")
    todo = [v for v in views if not store.has_derived(study_id, v, photons)]
    if not todo:
        return 0
    g = store.geometry
    if g is None:
        raise InputError(f"store {path} has no geometry attribute; cannot reconstruct")
    mu_water = float(store.attrs.get("mu_water", MU_WATER))
    full = torch.from_numpy(store.read(study_id, "sinogram")).to(device)
    written = 0
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for v in todo:
                sub, g2, error = select_views(full, g, v)
                sub = sub.contiguous()
                if photons is not None:
                    gen = torch.Generator(device=device).manual_seed(_noise_seed(seed, study_id, v))
                    sub = add_poisson_noise(sub, float(photons), generator=gen)
                recon = torch.cat([
                    mu_to_hu(fbp(sub[i:i + SLICE_BATCH], g2, filter=filter, cutoff=cutoff,
                                 backend=backend), mu_water=mu_water)
                    for i in range(0, sub.shape[0], SLICE_BATCH)
                ])
                arrays: dict[str, Any] = {"recon": recon.cpu().numpy()}
                if v != g.n_views or photons is not None:
                    arrays["sinogram"] = sub.cpu().numpy().astype(np.float32, copy=False)
                attrs = {"filter": filter, "cutoff": float(cutoff), "backend": backend,
                         "device": device,
                         "selection": "every-k" if error == 0.0 else "nearest",
                         "max_angle_error": error, "seed": int(seed)}
                written += store.write_derived(study_id, v, arrays, g2, photons=photons,
                                               attrs=attrs)
    finally:
        torch.set_num_threads(old_threads)
    return written


def _noise_seed(seed: int, study_id: str, views: int) -> int:
    ss = np.random.SeedSequence([int(seed), zlib.crc32(study_id.encode()), int(views)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class PreprocessResult:
    """What :func:`preprocess` did: the store, derived groups written, studies already done."""

    store: Store
    written: int
    studies_done_before: int


def preprocess(
    path: str | os.PathLike[str],
    views: Sequence[int],
    *,
    photons: float | None = None,
    filter: str = "ram-lak",
    cutoff: float = 1.0,
    seed: int = 0,
    backend: str | None = None,
    device: str = "cpu",
    split: str | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Derive sinograms at each view count and their FBP reconstructions for every study.

    Parameters
    ----------
    path : path-like
        An existing store with full-view sinograms.
    views : sequence of int
        View counts, each in ``[1, V0]`` (see :func:`select_views`).
    photons : float, optional
        Extra transmission Poisson noise at this many photons per bin (None: none).
    filter, cutoff
        FBP ramp window and cutoff (:func:`sinotriage.operators.fbp`).
    seed : int
        Seed of the extra noise.
    backend : {"numba", "torch", "astra", "auto"}, optional
        FBP backend; default :func:`sinotriage.parallel.default_backend`. ``"auto"`` is the
        fixed rule table :data:`sinotriage.operators.RULES` (the same backend on the CPU).
    device : {"cpu", "cuda"}
        Where FBP (and the extra noise) run; ``cuda`` uses the ``torch`` backend by default.
    split : {"train", "val", "test"}, optional
        Only the studies of this split.
    workers, scheduler, progress
        As in :func:`sinotriage.parallel.run_tasks`.

    Returns
    -------
    PreprocessResult
    """
    from sinotriage.operators import BACKENDS, FILTERS

    check_workers(workers, scheduler)
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | float) \
            or not 0.0 < float(cutoff) <= 1.0:
        raise InputError(f"cutoff must be a number in (0, 1] (fraction of the Nyquist frequency), "
                         f"got {cutoff!r}")
    backend = resolve_backend(device, backend)
    store = open_store(path, mode="r+")
    g = store.geometry
    if g is None:
        raise StoreError(f"store {path} has no geometry attribute; nothing to reconstruct")
    if isinstance(views, int) or not views:
        raise InputError(f"views must be a non-empty sequence of integers, got {views!r}")
    views = sorted({int(v) for v in views}, reverse=True)
    for v in views:
        if not 1 <= v <= g.n_views:
            raise InputError(f"views must lie in [1, {g.n_views}] (the stored view count), got {v}")
    if photons is not None and (not math.isfinite(photons) or photons <= 0):
        raise InputError(f"photons must be a positive number, got {photons!r}")
    if filter not in FILTERS:
        raise InputError(f"filter must be one of {tuple(FILTERS)}, got {filter!r}")
    if backend not in (*BACKENDS, "auto"):
        raise InputError(f"backend must be one of {(*BACKENDS, 'auto')}, got {backend!r}")
    ids = store.study_ids(split=split)
    missing = [s for s in ids if not store.has_array(s, "sinogram")]
    if missing:
        raise InputError(f"store {path}: studies without a sinogram: {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}")
    store.clean_partial()
    todo = [s for s in ids if any(not store.has_derived(s, v, photons) for v in views)]
    task = functools.partial(preprocess_study, path=str(path), views=views, photons=photons,
                             filter=filter, cutoff=float(cutoff), seed=int(seed), backend=backend,
                             device=device)
    counts = run_tasks(task, todo, workers=workers, scheduler=scheduler,
                       description="preprocess studies", progress=progress)
    done = dict(store.attrs.get("derived", {}))
    for v in views:
        done[derived_key(v, photons)] = {"views": v, "photons": photons, "filter": filter,
                                         "cutoff": float(cutoff)}
    store.update_attrs(derived=dict(sorted(done.items())))
    store.write_manifest()
    return PreprocessResult(store=store, written=int(sum(counts)),
                            studies_done_before=len(ids) - len(todo))
