"""Input validation shared by the operators: one place, errors name the argument."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_geometry(g: object, name: str = "geometry") -> FanBeamGeometry | ParallelBeamGeometry:
    if not isinstance(g, FanBeamGeometry | ParallelBeamGeometry):
        raise TypeError(f"{name} must be a FanBeamGeometry or ParallelBeamGeometry, "
                        f"got {type(g).__name__}")
    return g


def check_float_tensor(x: object, name: str, *, finite: bool = False) -> torch.Tensor:
    """``x`` must be a floating-point torch tensor (optionally all finite)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype (float32, float64, float16 or "
                        f"bfloat16), got {x.dtype}")
    if finite and x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on a cpu or cuda device, got {x.device}")
    if finite and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


def check_trailing_shape(x: torch.Tensor, name: str, expected: tuple[int, int],
                         what: str) -> None:
    """The last two dims of ``x`` must equal ``expected``."""
    if x.ndim < 2 or tuple(x.shape[-2:]) != tuple(expected):
        raise ValueError(f"{name} must have shape (..., {expected[0]}, {expected[1]}) "
                         f"({what} of the geometry), got {tuple(x.shape)}")


def check_same_device(**tensors: torch.Tensor) -> None:
    devices = {n: t.device for n, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors must be on one device, got {devices}")
