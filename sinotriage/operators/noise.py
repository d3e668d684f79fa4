"""Transmission-domain noise: Poisson photon counts plus optional Gaussian electronic noise."""

from __future__ import annotations

import math

import torch

from sinotriage.errors import InputError
from sinotriage.operators._checks import check_float_tensor

#: Accepted unattenuated photons per ray: below 1 a ray has no expected count; far above
#: any scanner (1e15) ``torch.poisson`` loses precision and near 2e19 it overflows.
PHOTON_RANGE = (1.0, 1e15)


def add_poisson_noise(sino: torch.Tensor, photons: float | torch.Tensor,
                      generator: torch.Generator | None = None,
                      electronic_noise: float = 0.0) -> torch.Tensor:
    """Noisy line integrals from a monoenergetic transmission model.

    ``counts ~ Poisson(photons * exp(-sino)) + Normal(0, electronic_noise^2)``, clamped to at
    least 1 count, and the result is ``-log(counts / photons)``, at most ``log(photons)``.
    With ``photons >= 1`` the clamp never makes a line integral negative; values below zero
    come only from the counting noise of rays through (almost) no attenuation, a few
    ``1 / sqrt(photons)`` deep, as in measured data, and they keep the noise unbiased there
    (no floor at zero).

    Parameters
    ----------
    sino : torch.Tensor
        ``(..., V, C)`` line integrals (dimensionless), floating point.
    photons : float or torch.Tensor
        Unattenuated photons per ray, in :data:`PHOTON_RANGE` (``[1, 1e15]``); a tensor
        broadcasts against ``sino`` (e.g. a bowtie profile ``(C,)``).
    generator : torch.Generator, optional
        On the device of ``sino``, for reproducible noise.
    electronic_noise : float
        Standard deviation of the additive Gaussian noise, in photons (>= 0).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``sino``.
    """
    check_float_tensor(sino, "sino", finite=True)
    if isinstance(photons, torch.Tensor):
        if photons.device != sino.device:
            raise ValueError(f"photons is on device {photons.device} but sino is on "
                             f"{sino.device}")
        check_float_tensor(photons, "photons", finite=True)
        lo, hi = ((float(photons.min()), float(photons.max())) if photons.numel()
                  else (1.0, 1.0))
        if lo < PHOTON_RANGE[0] or hi > PHOTON_RANGE[1]:
            raise InputError(f"photons must be in [{PHOTON_RANGE[0]:g}, {PHOTON_RANGE[1]:g}] per "
                             f"ray everywhere, got values in [{lo:g}, {hi:g}]")
        i0 = photons.to(device=sino.device, dtype=torch.float64)
    else:
        if isinstance(photons, bool) or not isinstance(photons, int | float):
            raise TypeError(f"photons must be a number or tensor, got {type(photons).__name__}")
        if not math.isfinite(photons) or not PHOTON_RANGE[0] <= photons <= PHOTON_RANGE[1]:
            raise InputError(f"photons must be in [{PHOTON_RANGE[0]:g}, {PHOTON_RANGE[1]:g}] "
                             f"(unattenuated photons per ray), got {photons}")
        i0 = torch.tensor(float(photons), dtype=torch.float64, device=sino.device)
    if isinstance(electronic_noise, bool) or not isinstance(electronic_noise, int | float):
        raise TypeError("electronic_noise must be a number (photons), got "
                        f"{type(electronic_noise).__name__}")
    if not math.isfinite(electronic_noise) or electronic_noise < 0:
        raise ValueError(f"electronic_noise must be finite and >= 0, got {electronic_noise}")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != sino.device.type:
            raise ValueError(f"generator is on {generator.device} but sino is on {sino.device}")
    mean = i0 * torch.exp(-sino.detach().to(torch.float64))
    counts = torch.poisson(mean, generator=generator)
    if electronic_noise > 0:
        counts = counts + electronic_noise * torch.randn(
            counts.shape, generator=generator, dtype=counts.dtype, device=counts.device)
    counts = counts.clamp_min(1.0)
    return (-torch.log(counts / i0)).to(sino.dtype)
