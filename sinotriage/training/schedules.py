"""Learning-rate schedules as pure functions of the optimizer step (so resuming is exact)."""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "lr_at"]

SCHEDULES: tuple[str, ...] = ("constant", "cosine", "onecycle", "step")


def lr_at(schedule: str, step: int, total_steps: int, lr: float,
          warmup_steps: int = 0) -> float:
    """Learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    Parameters
    ----------
    schedule : {"constant", "cosine", "onecycle", "step"}
        ``constant``: ``lr`` (after an optional linear warm-up). ``cosine``: linear warm-up from
        ``lr / warmup_steps`` to ``lr`` over ``warmup_steps``, then a half cosine to 0.
        ``onecycle`` (Smith 2018, as in fastai/torch ``OneCycleLR`` with cosine annealing):
        from ``lr / 25`` up to ``lr`` over the first 30 % of the steps, then down to
        ``lr / 25e4``. ``step``: ``lr``, ``0.1 lr`` from 1/3 of the steps, ``0.01 lr`` from 2/3.
    step, total_steps : int
    lr : float
        Peak learning rate.
    warmup_steps : int
        Linear warm-up (constant and cosine).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    step = min(max(step, 0), total_steps - 1)
    if schedule in ("constant", "cosine") and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        return 0.5 * lr * (1.0 + math.cos(math.pi * (step - warmup_steps) / span))
    if schedule == "step":
        return lr * (0.1 ** int(3 * step // total_steps))
    up_end = max(0.3 * total_steps - 1.0, 1.0)  # last step of the rising phase (as torch)
    start, end = lr / 25.0, lr / 25e4
    if step <= up_end:
        return end_cos(start, lr, step / up_end)
    return end_cos(lr, end, (step - up_end) / max(total_steps - 1 - up_end, 1.0))


def end_cos(a: float, b: float, frac: float) -> float:
    """Cosine interpolation from ``a`` (frac 0) to ``b`` (frac 1)."""
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * frac))
