"""Backend registry and the measured ``"auto"`` choice.

A backend module exposes ``available() -> bool``, ``supports(op, g, device) -> str | None``
(None when it can run ``op``, else the reason), ``project``, ``backproject`` and
``fbp_backproject`` (see :mod:`sinotriage.operators._torch_backend`).
"""

from __future__ import annotations

import importlib
import threading
import time
from types import ModuleType

import torch

from sinotriage.operators._checks import check_choice

BACKENDS = ("torch", "numba", "astra", "triton")
_MODULES = {
    "torch": "sinotriage.operators._torch_backend",
    "numba": "sinotriage.operators._numba",
    "astra": "sinotriage.operators._astra",
    "triton": "sinotriage.operators._triton",
}
_AUTO_CACHE: dict[tuple, str] = {}
_LOCK = threading.Lock()


def get(name: str) -> ModuleType:
    return importlib.import_module(_MODULES[name])


def usable(name: str, op: str, g: object, device: torch.device) -> str | None:
    """None if backend ``name`` can run ``op`` here, else the reason."""
    mod = get(name)
    if not mod.available():
        return f"backend {name!r} is not available (package missing or failed to load)"
    return mod.supports(op, g, device)


def candidates(op: str, g: object, device: torch.device) -> list[str]:
    return [b for b in BACKENDS if usable(b, op, g, device) is None]


def _key(op: str, g: object, x: torch.Tensor) -> tuple:
    batch = x.shape[0]
    bucket = 1 if batch == 1 else (8 if batch <= 8 else 32)
    return (op, type(g).__name__, getattr(g, "detector", ""), x.device.type,
            g.image_size >= 256, bucket)


def resolve(backend: str, op: str, g: object, x: torch.Tensor) -> str:
    """Validate ``backend`` and turn ``"auto"`` into a concrete backend for this input."""
    check_choice("backend", backend, ("auto", *BACKENDS))
    if backend != "auto":
        reason = usable(backend, op, g, x.device)
        if reason is not None:
            raise ValueError(f"backend={backend!r} cannot run {op}: {reason}; usable here: "
                             f"{candidates(op, g, x.device) or ['torch']}")
        return backend
    key = _key(op, g, x)
    with _LOCK:
        if key in _AUTO_CACHE:
            return _AUTO_CACHE[key]
    names = candidates(op, g, x.device)
    best = names[0] if len(names) == 1 else _measure(names, op, g, x)
    with _LOCK:
        _AUTO_CACHE[key] = best
    return best


def _measure(names: list[str], op: str, g: object, x: torch.Tensor) -> str:
    """Time each candidate on the input's kind of problem: same image grid and detector,
    up to 96 views and 2 slices; best of two runs after a warm-up (JIT, FFT plans)."""
    from sinotriage.operators import _api  # local: _api imports this module

    small_views = min(g.n_views, 96)
    small_views -= small_views % 2 if g.n_views % 2 == 0 else 0
    gs = g.with_views(max(small_views, 2))
    b = min(x.shape[0], 2)
    shape = gs.image_shape if op == "project" else gs.sinogram_shape
    probe = torch.rand(b, *shape, device=x.device, dtype=x.dtype)
    fn = {"project": _api.project, "backproject": _api.backproject, "fbp": _api.fbp}[op]
    times = {}
    for name in names:
        try:
            fn(probe, gs, backend=name)
            best = float("inf")
            for _ in range(2):
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                t0 = time.perf_counter()
                fn(probe, gs, backend=name)
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                best = min(best, time.perf_counter() - t0)
            times[name] = best
        except (RuntimeError, ValueError):  # a backend that fails here is skipped
            continue
    return min(times, key=times.get) if times else "torch"


def auto_choices() -> dict[tuple, str]:
    """A copy of the cached ``"auto"`` decisions (key -> backend)."""
    with _LOCK:
        return dict(_AUTO_CACHE)
