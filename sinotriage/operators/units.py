"""Hounsfield units <-> linear attenuation (mm^-1): ``mu = mu_water * (1 + hu / 1000)``."""

from __future__ import annotations

import math

import torch

from sinotriage.operators._checks import check_float_tensor
from sinotriage.vocabulary import MU_WATER


def _check_mu_water(mu_water: float) -> None:
    if isinstance(mu_water, bool) or not isinstance(mu_water, int | float):
        raise TypeError(f"mu_water must be a number (mm^-1), got {type(mu_water).__name__}")
    if not math.isfinite(mu_water) or mu_water <= 0:
        raise ValueError(f"mu_water must be a finite number > 0 (mm^-1), got {mu_water}")


def hu_to_mu(hu: torch.Tensor, mu_water: float = MU_WATER) -> torch.Tensor:
    """Hounsfield units to linear attenuation.

    Parameters
    ----------
    hu : torch.Tensor
        Any shape, floating point, HU.
    mu_water : float
        Attenuation of water (mm^-1), 0.0192 by default (about 70 keV).

    Returns
    -------
    torch.Tensor
        ``mu_water * (1 + hu / 1000)`` in mm^-1, same shape, dtype and device.
    """
    check_float_tensor(hu, "hu")
    _check_mu_water(mu_water)
    return mu_water * (1.0 + hu / 1000.0)


def mu_to_hu(mu: torch.Tensor, mu_water: float = MU_WATER) -> torch.Tensor:
    """Linear attenuation (mm^-1) to Hounsfield units, ``1000 * (mu / mu_water - 1)``.

    Parameters
    ----------
    mu : torch.Tensor
        Any shape, floating point, mm^-1.
    mu_water : float
        Attenuation of water (mm^-1).

    Returns
    -------
    torch.Tensor
        HU, same shape, dtype and device.
    """
    check_float_tensor(mu, "mu")
    _check_mu_water(mu_water)
    return 1000.0 * (mu / mu_water - 1.0)
