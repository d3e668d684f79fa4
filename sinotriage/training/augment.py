"""Training augmentations: MONAI transforms and CutMix for images, physical ones for sinograms.

Images (``(B, K, H, W)`` batches in HU or windowed [0, 1]) get MONAI random transforms per sample
(flip, rotation within +-``rotate_deg``, Gaussian noise, Gaussian blur, random zoom = crop and
resize back) and CutMix per batch (Yun et al. 2019). Sinograms (``(B, 1, V, C)`` line integrals of
a full 2π fan-beam scan) only get transforms that correspond to a physical object:

* **circular view shift** by ``s`` views: the sinogram of the object rotated by ``2π s / V``
  (the source positions are equally spaced over the full circle);
* **detector flip with the matching geometry**: reversing the channels (``γ -> -γ``) together with
  the views (``β_k -> β_{-k}``) gives the sinogram of the object mirrored about the axis through
  the isocentre at angle ``β_0`` (ray ``(β, γ)`` of the mirrored object is ray ``(-β, -γ)`` of the
  original). With a detector offset (quarter-channel shift) the channel grid is mirrored about
  ``-offset`` instead of 0, so the result is exact up to a shift of ``2 * offset`` channels;
* **Poisson noise** at ``sinogram_photons`` incident photons per ray
  (:func:`sinotriage.operators.add_poisson_noise`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sinotriage.training.config import AugmentConfig

__all__ = ["ImageAugment", "SinogramAugment", "cutmix", "mirror_sinogram", "shift_views"]


def shift_views(sino: torch.Tensor, shift: int) -> torch.Tensor:
    """Circularly shift the views (dim -2) of ``(..., V, C)`` sinograms by ``shift``."""
    return torch.roll(sino, shifts=int(shift), dims=-2)


def mirror_sinogram(sino: torch.Tensor) -> torch.Tensor:
    """Sinogram of the mirrored object: channels reversed and views ``k -> (-k) mod V``."""
    n_views = sino.shape[-2]
    idx = (-torch.arange(n_views, device=sino.device)) % n_views
    return sino.flip(-1).index_select(-2, idx)


class SinogramAugment:
    """Random physical augmentations of a ``(B, C, V, Cdet)`` batch of sinograms."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = []
        for sample in x:
            if self.cfg.view_shift:
                shift = int(torch.randint(sample.shape[-2], (1,), generator=generator))
                sample = shift_views(sample, shift)
            if self.cfg.detector_flip_prob > 0:
                if float(torch.rand(1, generator=generator)) < self.cfg.detector_flip_prob:
                    sample = mirror_sinogram(sample)
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
