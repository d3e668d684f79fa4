"""The pure-torch backend: always available, CPU and CUDA, any geometry."""

from __future__ import annotations

import numpy as np
import torch

from sinotriage.operators import _torch


def available() -> bool:
    return True


def supports(op: str, g: object, device: torch.device) -> str | None:
    return None


def project(x: torch.Tensor, g) -> torch.Tensor:
    return _torch.joseph_project(x, g)


def backproject(y: torch.Tensor, g) -> torch.Tensor:
    return _torch.joseph_backproject(y, g)


def fbp_backproject(q: torch.Tensor, angles: np.ndarray, u0: float, du: float, n: int,
                    d: float, weight: float) -> torch.Tensor:
    return _torch.parallel_fbp_backproject(q, angles, u0, du, n, d, weight)
