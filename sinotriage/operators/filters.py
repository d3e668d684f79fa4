"""FBP ramp filters: the discrete ramp of Kak & Slaney times an apodisation window.

The ramp is the band-limited spatial-domain kernel of Kak & Slaney, *Principles of
Computerized Tomographic Imaging* (1988), ch. 3 eq. (61): ``h(0) = 1/(4 tau^2)``,
``h(n) = -1/(n pi tau)^2`` for odd ``n``, 0 for even ``n``; its FFT (zero padded to at least
``2C - 1``) avoids the DC offset of a sampled ``|f|``. Windows act on ``x = |f| / (cutoff *
f_Nyquist)`` and zero the frequencies above the cutoff.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from sinotriage.operators._checks import check_choice

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def check_filter(name: object, cutoff: object) -> tuple[str, float]:
    """Validate a filter name (one of :data:`FILTERS`) and ``0 < cutoff <= 1``."""
    check_choice("filter", name, FILTERS)
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | float):
        raise TypeError(f"cutoff must be a number in (0, 1], got {type(cutoff).__name__}")
    if not (0.0 < float(cutoff) <= 1.0):
        raise ValueError(f"cutoff must be in (0, 1] (fraction of the Nyquist frequency), "
                         f"got {cutoff}")
    return str(name), float(cutoff)


def padded_length(n_det: int) -> int:
    """FFT length: the power of two at least ``2 * n_det``."""
    return 1 << max(6, math.ceil(math.log2(2 * n_det)))


@lru_cache(maxsize=64)
def _filter_cpu64(n_det: int, name: str, cutoff: float) -> torch.Tensor:
    p = padded_length(n_det)
    n = torch.arange(p, dtype=torch.float64)
    n = torch.where(n < p // 2, n, n - p)  # circular index in [-P/2, P/2)
    h = torch.zeros(p, dtype=torch.float64)
    h[0] = 0.25
    odd = (n.abs() % 2) == 1
    h[odd] = -1.0 / (math.pi * n[odd]) ** 2
    ramp = torch.fft.rfft(h).real  # tau = 1: scaled by 1/tau at use
    x = torch.fft.rfftfreq(p, dtype=torch.float64) / (0.5 * cutoff)
    if name == "ram-lak":
        w = torch.ones_like(x)
    elif name == "shepp-logan":
        w = torch.sinc(x / 2)
    elif name == "cosine":
        w = torch.cos(math.pi * x / 2)
    elif name == "hamming":
        w = 0.54 + 0.46 * torch.cos(math.pi * x)
    else:  # hann
        w = 0.5 * (1.0 + torch.cos(math.pi * x))
    return ramp * torch.where(x <= 1.0, w, torch.zeros_like(w))


def filter_response(n_det: int, name: str = "ram-lak", cutoff: float = 1.0) -> torch.Tensor:
    """Frequency response ``(P // 2 + 1,)`` float64 for rows of ``n_det`` samples of unit
    spacing (``P = padded_length(n_det)``)."""
    name, cutoff = check_filter(name, cutoff)
    return _filter_cpu64(int(n_det), name, cutoff)


def scaled_response(n_det: int, spacing: float, name: str, cutoff: float,
                    device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """:func:`filter_response` divided by ``spacing`` (mm), on ``device`` in ``dtype``."""
    return (filter_response(n_det, name, cutoff) / spacing).to(device=device, dtype=dtype)


def ramp_filter(rows: torch.Tensor, spacing: float, name: str = "ram-lak",
                cutoff: float = 1.0, response: torch.Tensor | None = None) -> torch.Tensor:
    """Filter the last axis of ``rows`` (samples ``spacing`` mm apart) with the ramp.

    Returns ``spacing * (h * rows)``, i.e. the convolution integral of Kak & Slaney eq. (60)
    with ``h`` in units of 1/spacing^2: the result has units of ``rows`` per mm. Same shape.
    ``response``: :func:`scaled_response` for these rows (built if None).

    The response is real and even, so the zero-padded circular convolution followed by the
    crop is a symmetric matrix: the filter is its own adjoint (autograd's gradient of this
    function is the same filter applied to the incoming gradient).
    """
    c = rows.shape[-1]
    p = padded_length(c)
    dtype = torch.float64 if rows.dtype == torch.float64 else torch.float32
    h = (scaled_response(c, spacing, name, cutoff, rows.device, dtype) if response is None
         else response)
    spec = torch.fft.rfft(rows.to(dtype), n=p, dim=-1)
    return torch.fft.irfft(spec * h, n=p, dim=-1)[..., :c]
