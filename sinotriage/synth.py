"""Build a synthetic dataset store: seeded head CT volumes with simulated SinoCT sinograms.

:func:`synthesize` is the library side of ``sinotriage synth``. Study ``i`` of a store built with
seed ``S`` is named ``s{i:05d}`` and depends only on ``(S, i)``: its slice count, phantom seed and
noise seed come from ``numpy.random.SeedSequence([S, i])``, so the arrays do not depend on the
number of workers, the order tasks run in, or on interruptions. Per study (one dask task):

1. ``case = head_ct(phantom_seed, n_slices=D, image_size=N, pixel_size=250/N, prevalence=p)``;
2. ``hu`` rounded to int16 (the stored volume);
3. ``sinogram = add_poisson_noise(project(hu_to_mu(hu), geometry), photons, generator)``, float32
   line integrals of mu at the preset's full view count, Poisson noise seeded per study; the
   projector backend is fixed for the store (``numba`` where installed) and recorded, so the
   arrays do not depend on the operators' default rule table;
4. ``store.write_study`` (atomic) with ``hu``, ``sinogram``, ``tissues``, ``mask``, ``labels``.

Counterfactual stores (``counterfactual=True``, off by default; ``sinotriage synth
--counterfactual``) add, for every study with hemorrhage, its lesion-free twin
(:func:`sinotriage.phantoms.without_lesions`: same seed, same anatomy and image noise, no blood
and no mass effect) and the lesion's band in sinogram coordinates:

* ``hu_normal`` (D, N, N) int16: the twin's HU volume;
* ``sinogram_normal`` (D, V, C) float32: the twin's sinogram with the *same* noise realization,
  ``sinogram + (project(twin) - project(case))``, so that the pair differs by the lesion (and its
  mass effect) only;
* ``band`` (D, V, C) uint8: 1 where the ray crosses at least :data:`BAND_MIN_CHORD` pixels of
  blood, i.e. the projection of the lesion mask (chord length, mm) thresholded at
  ``BAND_MIN_CHORD * pixel_size``.

Normal studies have no twin (they are their own counterfactual; their band is empty).

At the end the studies are split train/val/test (stratified by scan label, seeded by ``S``) and the
manifest is gathered. A rerun with the same arguments writes only the missing studies; a rerun with
other settings (preset, seed, prevalence, photons) is refused.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinotriage.errors import InputError, StoreError
from sinotriage.io.store import Store, create_store, open_store
from sinotriage.parallel import check_workers, resolve_backend, run_tasks
from sinotriage.presets import Preset, get_preset
from sinotriage.vocabulary import MU_WATER

__all__ = ["BAND_MIN_CHORD", "COUNTERFACTUAL_ARRAYS", "SynthResult", "lesion_band", "synthesize",
           "synth_study", "study_seeds", "study_id"]

#: a ray is in the lesion band when its chord through blood is at least this many pixels
BAND_MIN_CHORD = 0.5
#: the arrays a counterfactual store adds to each study with hemorrhage
COUNTERFACTUAL_ARRAYS = ("hu_normal", "sinogram_normal", "band")

#: settings that must match when a store is resumed
_RESUME_KEYS = ("preset", "seed", "prevalence", "photons", "difficulty", "mu_water", "backend",
                "device")


def study_id(index: int) -> str:
    """Id of the synthetic study number ``index`` (``s00042``)."""
    return f"s{index:05d}"


def study_seeds(seed: int, index: int, preset: Preset) -> dict[str, int]:
    """The per-study seeds and slice count, a function of ``(seed, index)`` only.

    Returns
    -------
    dict
        ``phantom_seed`` (for ``head_ct``), ``noise_seed`` (torch generator of the Poisson noise)
        and ``n_slices`` (uniform in the preset's ``[min_slices, max_slices]``).
    """
    ss = np.random.SeedSequence([int(seed), int(index)])
    phantom_seed, noise_seed, slice_seed = (int(v) for v in ss.generate_state(3, dtype=np.uint32))
    rng = np.random.default_rng(slice_seed)
    n_slices = int(rng.integers(preset.min_slices, preset.max_slices + 1))
    return {"phantom_seed": phantom_seed, "noise_seed": noise_seed, "n_slices": n_slices}


def lesion_band(mask: Any, geometry: Any, backend: str = "torch") -> Any:
    """The lesion's band in sinogram coordinates: rays crossing blood.

    Parameters
    ----------
    mask : torch.Tensor, (D, N, N)
        Hemorrhage mask (any value > 0 is blood).
    geometry : Geometry
        The scanner; ``pixel_size`` sets the threshold.
    backend : str
        Projector backend.

    Returns
    -------
    torch.Tensor, (D, V, C) uint8
        1 where the chord through blood (the projection of the mask, mm) is at least
        ``BAND_MIN_CHORD * geometry.pixel_size``.
    """
    import torch

    from sinotriage.operators import project

    chord = project((mask > 0).float(), geometry, backend=backend)
    return (chord >= BAND_MIN_CHORD * geometry.pixel_size).to(torch.uint8)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads (fixed so that float sums are the same in every process)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def synth_study(
    index: int,
    *,
    path: str,
    preset: str,
    seed: int,
    prevalence: float,
    photons: float,
    mu_water: float = MU_WATER,
    backend: str = "torch",
    device: str = "cpu",
    difficulty: str | None = None,
    counterfactual: bool = False,
) -> bool:
    """Generate and write synthetic study ``index`` of the store at ``path`` (one dask task).

    ``difficulty`` overrides the named preset's lesion difficulty (a custom :class:`Preset`);
    ``counterfactual`` adds the lesion-free twin and the band (module docstring).
    Returns True when written, False when the study was already complete.
    """
    import torch

    from sinotriage.operators import add_poisson_noise, hu_to_mu, project
    from sinotriage.phantoms import head_ct, without_lesions

    store = open_store(path, mode="r+")
    sid = study_id(index)
    if store.has_study(sid):
        return False
    p = get_preset(preset)
    geometry = store.geometry
    seeds = study_seeds(seed, index, p)
    case = head_ct(
        seed=seeds["phantom_seed"],
        n_slices=seeds["n_slices"],
        image_size=p.image_size,
        pixel_size=p.pixel_size,
        difficulty=p.difficulty if difficulty is None else difficulty,
        prevalence=prevalence,
    )
    hu = np.clip(np.rint(np.asarray(case.hu, dtype=np.float32)), -32768, 32767).astype(np.int16)
    with _torch_threads(1), torch.no_grad():
        mu = hu_to_mu(torch.from_numpy(hu.astype(np.float32)).to(device), mu_water=mu_water)
        clean = project(mu, geometry, backend=backend)
        generator = torch.Generator(device=device).manual_seed(seeds["noise_seed"])
        sino = add_poisson_noise(clean, photons, generator=generator)
        twin = None
        if counterfactual and case.label:
            normal = without_lesions(case)
            hu_normal = np.clip(np.rint(np.asarray(normal.hu, dtype=np.float32)), -32768,
                                32767).astype(np.int16)
            mu_n = hu_to_mu(torch.from_numpy(hu_normal.astype(np.float32)).to(device),
                            mu_water=mu_water)
            sino_normal = sino + (project(mu_n, geometry, backend=backend) - clean)
            band = lesion_band(torch.from_numpy(np.array(case.mask)).to(device), geometry,
                               backend=backend)
            twin = {"hu_normal": hu_normal,
                    "sinogram_normal": sino_normal.cpu().numpy().astype(np.float32, copy=False),
                    "band": band.cpu().numpy()}
        sino = sino.cpu()
    record = {
        "index": int(index),
        "source": "synthetic",
        "phantom_seed": seeds["phantom_seed"],
        "noise_seed": seeds["noise_seed"],
        "spacing": [float(s) for s in case.spacing],
        "tissue_names": [str(n) for n in getattr(case, "tissue_names", ())],
        "phantom": json.loads(json.dumps(getattr(case, "settings", {}), default=str)),
        "counterfactual": twin is not None,
    }
    arrays = {
        "hu": hu,
        "sinogram": sino.numpy().astype(np.float32, copy=False),
        "tissues": np.asarray(case.tissues),
        "mask": np.asarray(case.mask),
        "labels": np.asarray(case.labels),
        **(twin or {}),
    }
    return store.write_study(sid, arrays, record)


@dataclass(frozen=True)
class SynthResult:
    """What :func:`synthesize` did: the store, how many studies it wrote and skipped."""

    store: Store
    written: int
    skipped: int


def synthesize(
    out: str | os.PathLike[str],
    n_studies: int,
    preset: str | Preset = "quick",
    seed: int = 0,
    *,
    prevalence: float = 0.55,
    photons: float | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    backend: str | None = None,
    device: str = "cpu",
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    counterfactual: bool = False,
) -> SynthResult:
    """Write (or complete) a synthetic dataset store of ``n_studies`` head CT studies.

    Parameters
    ----------
    out : path-like
        Store directory (``NAME.zarr``); created, or resumed when it exists.
    n_studies : int
        Number of studies (``s00000`` ... ``s{n-1}``). A rerun with a larger number adds studies.
    preset : {"tiny", "quick", "standard", "sinoct"} or Preset
        Image grid, geometry, slice count and dose (:mod:`sinotriage.presets`).
    seed : int
        Seed of the whole dataset (phantoms, noise, slice counts, splits).
    prevalence : float
        Probability that a study holds hemorrhage (0..1; SinoCT: 0.55).
    photons : float, optional
        Unattenuated photons per detector bin; default the preset's.
    fractions : 3 floats
        Train/val/test fractions of the stratified split.
    backend : {"numba", "torch", "astra"}, optional
        Projector backend (default :func:`sinotriage.parallel.default_backend`); must support
        the curved fan-beam geometry. Part of the settings a resumed store must match.
    device : {"cpu", "cuda"}
        Where the projection and the noise run (``cuda``: the ``torch`` backend on the GPU, for
        the ``standard`` and ``sinoct`` presets). The noise stream differs between devices, so
        the device is part of the settings a resumed store must match.
    workers, scheduler, progress
        Where and how the per-study tasks run (:func:`sinotriage.parallel.run_tasks`).
    counterfactual : bool
        Also store each lesion study's lesion-free twin and lesion band (module docstring;
        off by default). Part of the settings a resumed store must match.

    Returns
    -------
    SynthResult
    """
    if isinstance(n_studies, bool) or not isinstance(n_studies, int) or n_studies < 1:
        raise InputError(f"n_studies must be a positive integer, got {n_studies!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= float(prevalence) <= 1.0:
        raise InputError(f"prevalence must be in [0, 1], got {prevalence!r}")
    check_workers(workers, scheduler)
    from sinotriage.operators import BACKENDS

    backend = resolve_backend(device, backend)
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    p = get_preset(preset)  # an unknown name is an InputError
    photons = float(p.photons if photons is None else photons)
    if not np.isfinite(photons) or photons <= 0:
        raise InputError(f"photons must be a positive number, got {photons!r}")
    settings: dict[str, Any] = {
        "generator": "sinotriage.phantoms.head_ct",
        "preset": p.name,
        "preset_settings": p.to_dict(),
        "seed": int(seed),
        "prevalence": float(prevalence),
        "photons": photons,
        "difficulty": p.difficulty,
        "mu_water": MU_WATER,
        "n_studies": int(n_studies),
        "backend": backend,
        "device": device,
        "split_fractions": [float(f) for f in fractions],
        "noise": "transmission Poisson (sinotriage.operators.add_poisson_noise)",
        "counterfactual": bool(counterfactual),
    }
    out = Path(out)
    store = _open_or_create(out, p, settings)
    store.clean_partial()
    todo = [i for i in range(n_studies) if not store.has_study(study_id(i))]
    task = functools.partial(
        synth_study, path=str(out), preset=p.name, difficulty=p.difficulty, seed=int(seed),
        prevalence=float(prevalence),
        photons=photons, backend=backend, device=device, counterfactual=bool(counterfactual),
    )
    written = run_tasks(task, todo, workers=workers, scheduler=scheduler,
                        labels=[study_id(i) for i in todo], description="synth studies",
                        progress=progress)
    store.assign_splits(fractions, seed=seed)
    store.write_manifest()
    n_written = sum(bool(w) for w in written)
    return SynthResult(store=store, written=n_written, skipped=n_studies - n_written)


def _open_or_create(out: Path, p: Preset, settings: dict[str, Any]) -> Store:
    if not out.exists():
        return create_store(out, {"source": "synthetic", "settings": settings,
                                  "mu_water": settings["mu_water"]}, geometry=p.geometry())
    store = open_store(out, mode="r+")
    old = store.attrs.get("settings", {})
    if store.attrs.get("source") != "synthetic":
        raise StoreError(f"store {out} exists and is not a synthetic store "
                         f"(source {store.attrs.get('source')!r}); choose another --out")
    for key in _RESUME_KEYS:
        if old.get(key) != settings[key]:
            raise StoreError(
                f"store {out} was built with {key}={old.get(key)!r}, not {settings[key]!r}; "
                "resume it with the same settings or choose another --out"
            )
    if bool(old.get("counterfactual", False)) != settings["counterfactual"]:
        raise ValueError(
            f"store {out} was built with counterfactual={bool(old.get('counterfactual', False))}, "
            f"not {settings['counterfactual']}; resume it with the same settings or choose "
            "another --out")
    if int(old.get("n_studies", 0)) < settings["n_studies"]:
        store.update_attrs(settings={**old, "n_studies": settings["n_studies"]})
    return store
