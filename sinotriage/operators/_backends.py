"""Backend registry, the fixed dispatch rule and the opt-in timing-based choice.

A backend module exposes ``available() -> bool``, ``supports(op, g, device) -> str | None``
(None when it can run ``op``, else the reason), and ``project``, ``backproject`` and
``fbp_backproject`` taking a :class:`~sinotriage.operators._plan.Plan` last (see
:mod:`sinotriage.operators._torch_backend`); optionally ``fbp_backproject_adjoint``,
``rebin`` and ``rebin_adjoint``.

Default dispatch (``backend=None`` or ``"auto"``) is :data:`RULES`: a fixed table, so the
same call picks the same backend, and gives the same bits, in every process. Timing is
used only on request: ``backend="fastest"`` or :func:`tune`.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from types import ModuleType

import torch

from sinotriage.operators._checks import check_choice

LOG = logging.getLogger("sinotriage.operators")

BACKENDS = ("torch", "numba", "astra", "triton")
#: backend arguments besides the names in :data:`BACKENDS`
SPECIAL = ("auto", "fastest")
_MODULES = {
    "torch": "sinotriage.operators._torch_backend",
    "numba": "sinotriage.operators._numba",
    "astra": "sinotriage.operators._astra",
    "triton": "sinotriage.operators._triton",
}

#: The default rule: ``(device, operation, geometry, input, preference)`` rows, the first
#: matching row wins and the first usable backend of its preference is taken; ``"*"``
#: matches anything. ``input`` is ``"float64"`` or ``"*"`` (triton computes in float32, so
#: float64 on CUDA stays on torch). Measured on the benchmarks of ``docs/operators.md``:
#: numba is 2.5-50x faster than torch on the CPU at every size from 64 px up; ASTRA runs
#: only parallel and flat fans, one thread per slice, at best about as fast as numba for one
#: slice and slower in batches; triton is the fastest on CUDA.
RULES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("cpu", "*", "*", "*", ("numba", "torch")),
    ("cuda", "*", "*", "float64", ("torch",)),
    ("cuda", "*", "*", "*", ("triton", "torch")),
)

_FASTEST: dict[tuple, str] = {}
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


def rule_backend(op: str, g: object, device: torch.device, dtype: torch.dtype) -> str:
    """The backend :data:`RULES` gives for ``op`` on geometry ``g``, ``device``, ``dtype``."""
    kind = "fan" if hasattr(g, "sid") else "parallel"
    inp = "float64" if dtype == torch.float64 else "other"
    for dev, rop, geo, rinp, prefs in RULES:
        if (dev in ("*", device.type) and rop in ("*", op) and geo in ("*", kind)
                and rinp in ("*", inp)):
            for name in prefs:
                if usable(name, op, g, device) is None:
                    return name
    return "torch"


def check_backend(backend: object) -> str | None:
    """Validate a ``backend`` argument (None, "auto", "fastest" or a name)."""
    if backend is None:
        return None
    return check_choice("backend", backend, (*SPECIAL, *BACKENDS))


def resolve(backend: str | None, op: str, g: object, x: torch.Tensor,
            measure=None) -> str:
    """A concrete backend for ``op`` on ``x``: the rule for None / ``"auto"``, the cached
    measurement for ``"fastest"`` (``measure(names) -> {name: seconds}`` runs it), or the
    given name after checking that it can run here."""
    check_backend(backend)
    if backend is None or backend == "auto":
        return rule_backend(op, g, x.device, x.dtype)
    if backend == "fastest":
        return _fastest(op, g, x, measure)
    reason = usable(backend, op, g, x.device)
    if reason is not None:
        raise ValueError(f"backend={backend!r} cannot run {op}: {reason}; usable here: "
                         f"{candidates(op, g, x.device) or ['torch']}")
    return backend


def fastest_key(op: str, g: object, x: torch.Tensor) -> tuple:
    batch = x.shape[0]
    bucket = 1 if batch == 1 else (8 if batch <= 8 else 32)
    return (op, type(g).__name__, getattr(g, "detector", ""), x.device.type, str(x.dtype),
            g.image_size >= 256, bucket)


def _fastest(op: str, g: object, x: torch.Tensor, measure) -> str:
    key = fastest_key(op, g, x)
    with _LOCK:
        if key in _FASTEST:
            return _FASTEST[key]
    names = candidates(op, g, x.device)
    times = measure(names) if len(names) > 1 else {names[0]: 0.0}
    best = min(times, key=times.get) if times else rule_backend(op, g, x.device, x.dtype)
    with _LOCK:
        _FASTEST[key] = best
    LOG.info("backend='fastest' for %s %s: %s (seconds per call %s)", op, key[1:], best,
             {k: round(v, 4) for k, v in times.items()})
    return best


def time_call(fn, device: torch.device, repeats: int = 2) -> float:
    """Best of ``repeats`` timed calls after one warm-up (JIT, FFT plans)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def fastest_choices() -> dict[tuple, str]:
    """A copy of the choices ``backend="fastest"`` and :func:`tune` made in this process
    (key ``(op, geometry type, detector, device, dtype, large image, batch bucket)``)."""
    with _LOCK:
        return dict(_FASTEST)


def forget_fastest() -> None:
    """Drop the cached ``"fastest"`` choices (the next such call measures again)."""
    with _LOCK:
        _FASTEST.clear()
