"""Training augmentations: MONAI transforms and CutMix for images, physical ones for sinograms.

Images (``(B, K, H, W)`` batches in HU or windowed [0, 1]) get MONAI random transforms per sample
(flip, rotation within +-``rotate_deg``, Gaussian noise, Gaussian blur, random zoom = crop and
resize back) and CutMix per batch (Yun et al. 2019). Sinograms (``(B, 1, V, C)`` line integrals of
a full 2π fan-beam scan) only get transforms that correspond to a physical object:

* **circular view shift** by ``s`` views (:func:`shift_views`): view ``k`` of the result is view
  ``k - s`` of the input, the sinogram of the object rotated counter-clockwise by ``2π s / V``
  (the source turns counter-clockwise and its positions are equally spaced over the full
  circle, :mod:`sinotriage.geometry`). Exact: no interpolation.
* **mirror** (:func:`mirror_sinogram`): a reflection of the object about the line through the
  isocentre at the source angle ``β_0`` of view 0 maps the source circle onto itself with the
  orientation reversed, so ray ``(β, γ)`` of the mirrored object is ray ``(2β_0 - β, -γ)`` of the
  original. Views map as ``k -> (-k) mod V`` (exact). Channel ``m`` has
  ``γ_m ∝ m - (C-1)/2 + o`` with the detector offset ``o``, so ``-γ_m`` is channel
  ``C - 1 - m - 2o``: reversing the channels is exact only when ``2o`` is an integer (0 for a
  centred detector). Our presets keep SinoCT's quarter-channel offset (``o = 1.25`` channels at
  888 channels, ``0.15625`` at 111), so the remaining fractional shift of ``2o`` channels is
  applied by band-limited (Fourier) interpolation with zero (air) padding: exact for a
  band-limited sinogram, and it keeps the noise spectrum (an all-pass filter). Reversing both
  axes without it would mirror the object *and* move the detector by ``-2o`` channels.
  Other mirror axes are a mirror followed by a view shift.
* **Poisson noise** at ``sinogram_photons`` incident photons per ray
  (:func:`sinotriage.operators.add_poisson_noise`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sinotriage.training.config import AugmentConfig

__all__ = ["ImageAugment", "SinogramAugment", "check_full_turn", "cutmix", "mirror_sinogram",
           "shift_channels", "shift_views"]


def shift_views(sino: torch.Tensor, shift: int) -> torch.Tensor:
    """Circularly shift the views (dim -2) of ``(..., V, C)`` full-turn sinograms by ``shift``.

    View ``k`` of the result is view ``(k - shift) mod V`` of the input: the sinogram of the object
    rotated counter-clockwise by ``shift * 2π / V`` rad (fan beam over the full ``2π``).
    """
    return torch.roll(sino, shifts=int(shift), dims=-2)


def shift_channels(sino: torch.Tensor, shift: float) -> torch.Tensor:
    """Band-limited shift of the channels (dim -1): ``out[..., m] = sino[..., m + shift]``.

    Integer shifts move the samples (zeros enter at the ends); the fractional part is applied in
    the Fourier domain after zero padding to twice the length (no wrap-around), an all-pass filter.

    Parameters
    ----------
    sino : torch.Tensor, shape (..., V, C)
    shift : float
        Channels; positive reads from higher channel indices.
    """
    whole = int(round(shift))  # the fractional rest is in [-0.5, 0.5]: the smaller phase ramp
    frac = float(shift) - whole
    out = _shift_whole(sino, whole)
    if frac == 0.0:
        return out
    n = sino.shape[-1]
    size = 2 * n
    spec = torch.fft.rfft(out.double(), n=size, dim=-1)
    freq = torch.fft.rfftfreq(size, device=sino.device, dtype=torch.float64)
    spec = spec * torch.exp(2j * math.pi * freq * frac)
    spec[..., -1] = spec[..., -1].real * math.cos(math.pi * frac)  # Nyquist bin stays real
    return torch.fft.irfft(spec, n=size, dim=-1)[..., :n].to(sino.dtype)


def _shift_whole(sino: torch.Tensor, whole: int) -> torch.Tensor:
    """``out[..., m] = sino[..., m + whole]``, zeros where that is off the detector."""
    if whole == 0:
        return sino
    n = sino.shape[-1]
    out = torch.zeros_like(sino)
    if abs(whole) < n:
        if whole > 0:
            out[..., : n - whole] = sino[..., whole:]
        else:
            out[..., -whole:] = sino[..., : n + whole]
    return out


def mirror_sinogram(sino: torch.Tensor, det_offset: float = 0.0) -> torch.Tensor:
    """Sinogram of the object mirrored about the isocentre line at the view-0 source angle.

    Views ``k -> (-k) mod V`` and channel ``m -> C - 1 - m - 2 det_offset`` (see the module
    docstring for the derivation); exact when ``2 det_offset`` is an integer, band-limited
    interpolation of the fractional part otherwise.

    Parameters
    ----------
    sino : torch.Tensor, shape (..., V, C)
        Full-turn fan-beam sinograms.
    det_offset : float
        The geometry's detector offset in channels (``FanBeamGeometry.det_offset`` at the
        sinogram's channel count).

    Returns
    -------
    torch.Tensor, same shape and dtype.

    Examples
    --------
    With ``start_angle = 0`` the mirror axis is the x axis, i.e. rows of the image reversed:
    ``mirror_sinogram(project(img, g), g.det_offset) ≈ project(img.flip(-2), g)``.
    """
    n_views = sino.shape[-2]
    idx = (-torch.arange(n_views, device=sino.device)) % n_views
    out = sino.flip(-1).index_select(-2, idx)
    return shift_channels(out, 2.0 * float(det_offset)) if det_offset else out


def check_full_turn(geometry: Any) -> None:
    """Raise ``ValueError`` unless ``geometry`` is a fan beam over a full ``2π`` turn.

    View shifts and the view mirror are exact only there (a short scan or a parallel-beam
    ``π`` scan does not wrap around).
    """
    from sinotriage.geometry import FanBeamGeometry

    if not isinstance(geometry, FanBeamGeometry) or not math.isclose(
            geometry.arc, 2 * math.pi, rel_tol=1e-9):
        raise ValueError("sinogram view-shift and mirror augmentation need a full-turn (2 pi) "
                         f"fan-beam geometry, got {geometry!r}")


class SinogramAugment:
    """Random physical augmentations of a ``(B, K, V, C)`` batch of full-turn fan sinograms.

    Parameters
    ----------
    cfg : AugmentConfig
        ``view_shift`` (uniform shift in ``[0, V)``), ``detector_flip_prob`` (the mirror of
        :func:`mirror_sinogram`), ``sinogram_photons`` (Poisson noise).
    geometry : FanBeamGeometry, optional
        The sinograms' geometry: checked to be a full turn, and its ``det_offset`` makes the
        mirror exact. Without it the detector is taken as centred (``det_offset = 0``).
    """

    def __init__(self, cfg: AugmentConfig, geometry: Any = None) -> None:
        self.cfg = cfg
        self.det_offset = 0.0
        if geometry is not None and (cfg.view_shift or cfg.detector_flip_prob > 0):
            check_full_turn(geometry)
            self.det_offset = float(geometry.det_offset)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = []
        for sample in x:
            if self.cfg.view_shift:
                shift = int(torch.randint(sample.shape[-2], (1,), generator=generator))
                sample = shift_views(sample, shift)
            if self.cfg.detector_flip_prob > 0:
                if float(torch.rand(1, generator=generator)) < self.cfg.detector_flip_prob:
                    sample = mirror_sinogram(sample, self.det_offset)
            out.append(sample)
        x = torch.stack(out)
        if self.cfg.sinogram_photons is not None:
            from sinotriage.operators import add_poisson_noise

            x = add_poisson_noise(x, self.cfg.sinogram_photons, generator=generator)
        return x


class ImageAugment:
    """MONAI random transforms applied per sample of a ``(B, K, H, W)`` batch."""

    def __init__(self, cfg: AugmentConfig) -> None:
        from monai.transforms import (
            Compose,
            RandFlip,
            RandGaussianNoise,
            RandGaussianSmooth,
            RandRotate,
            RandZoom,
        )

        ops = []
        if cfg.flip_prob > 0:
            ops.append(RandFlip(prob=cfg.flip_prob, spatial_axis=1))
        if cfg.rotate_deg > 0:
            r = math.radians(cfg.rotate_deg)
            ops.append(RandRotate(range_x=r, prob=cfg.rotate_prob, keep_size=True,
                                  padding_mode="border"))
        if cfg.zoom > 0:
            ops.append(RandZoom(prob=cfg.zoom_prob, min_zoom=1.0, max_zoom=1.0 + cfg.zoom,
                                keep_size=True))
        if cfg.blur_sigma > 0:
            ops.append(RandGaussianSmooth(sigma_x=(0.25, cfg.blur_sigma),
                                          sigma_y=(0.25, cfg.blur_sigma), prob=cfg.blur_prob))
        if cfg.noise_std > 0:
            ops.append(RandGaussianNoise(prob=cfg.noise_prob, std=cfg.noise_std))
        self.transform = Compose(ops) if ops else None

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.transform is None:
            return x
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        self.transform.set_random_state(seed=seed)
        out = [torch.as_tensor(self.transform(sample)).float() for sample in x]
        return torch.stack(out)


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019): paste a random box of a shuffled batch, mix the labels by area.

    Parameters
    ----------
    x : torch.Tensor, shape (B, K, H, W)
    y : torch.Tensor, shape (B,) or (B, L)
    alpha : float
        The box area fraction is ``1 - lam`` with ``lam ~ Beta(alpha, alpha)``.

    Returns
    -------
    (x_mixed, y_mixed) : the mixed batch and the area-weighted labels.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    lam = float(rng.beta(alpha, alpha))
    h, w = x.shape[-2:]
    cut_h, cut_w = int(round(h * math.sqrt(1 - lam))), int(round(w * math.sqrt(1 - lam)))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, w)
    perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    area = (y1 - y0) * (x1 - x0) / float(h * w)
    return mixed, (1 - area) * y + area * y[perm]
