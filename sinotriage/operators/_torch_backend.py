"""The pure-torch backend: always available, CPU and CUDA, any geometry.

Every step is made of differentiable torch operations, so autograd differentiates FBP
through it directly (``fbp_backproject_adjoint`` is not needed).
"""

from __future__ import annotations

import numpy as np
import torch

from sinotriage.operators import _torch
from sinotriage.operators._plan import Plan


def available() -> bool:
    return True


def supports(op: str, g: object, device: torch.device) -> str | None:
    return None


def _rays(g, x: torch.Tensor, plan: Plan) -> torch.Tensor:
    dt = _torch.work_dtype(x.dtype)
    return plan.get(("torch-rays", str(x.device), dt),
                    lambda: _torch.ray_table(g, x.device, dt))


def project(x: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    return _torch.joseph_project(x, g, _rays(g, x, plan))


def backproject(y: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    return _torch.joseph_backproject(y, g, _rays(g, y, plan))


def fbp_backproject(q: torch.Tensor, angles: np.ndarray, u0: float, du: float, n: int,
                    d: float, weight: float, plan: Plan) -> torch.Tensor:
    return _torch.parallel_fbp_backproject(q, angles, u0, du, n, d, weight)
