"""Sinogram-native classifiers: periodic view axis, pooling that keeps a small lesion's sinusoid.

A full-turn fan-beam sinogram ``(B, K, V, C)`` is periodic along the views (view ``V`` is view 0)
and a circular view shift is an exact rotation of the object (:mod:`sinotriage.training.augment`).
The networks here

* pad the view axis circularly and the channel axis with zeros (air outside the detector), so
  convolutions see no seam at view 0 and, with a view count divisible by the total pooling
  stride, the features shift with the views (rotation equivariance);
* end in a global pooling that does not average a lesion away: a lesion's band covers a few
  percent of the sinogram, and a global mean divides its evidence by the other 97 %. ``"max"``,
  ``"topk"`` (mean of the largest ``topk_fraction`` of positions, per feature) and
  ``"attention"`` (gated attention pooling, Ilse et al. 2018) are offered, ``"mean"`` for the
  ablation;
* optionally return a per-pixel **band** map (``forward(x, return_band=True)``): a hypercolumn
  head (1x1 convolutions of every block, upsampled to ``(V, C)`` and summed) trained against the
  lesion band in sinogram coordinates (:mod:`sinotriage.training.paired`).

Three trunks (``stem`` / ``block``), registered as three names:

``sino_cnn``
    3x3 blocks (two conv + instance norm + ReLU), 2x2 max-pooling between blocks.
``sino_viewconv``
    View-wise design: each block is a 1D convolution along the channels of every view (a
    projection is processed on its own, weights shared across views) followed by a 1D circular
    convolution along the views (how each detector position evolves as the source turns);
    pooling halves only the channels, so every view keeps its own features to the end.
``sino_net``
    A SinoNet-like multi-scale stem in front of the ``sino_cnn`` trunk: parallel rectangular
    kernels along the detector (1x7), along the views (7x1, circular) and a 3x3, concatenated
    (after the Inception-style, sinogram-shaped filters of Lee et al. 2019, "Machine friendly
    machine learning: interpretation of computed tomography without image reconstruction",
    Sci. Rep. 9, 15540, the SinoNet cited by Hooper et al. 2021).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sinotriage.models._registry import register

__all__ = ["POOLINGS", "VIEW_PADDINGS", "SinoCNN", "SinoOutput", "circular_view_pad"]

#: global pooling choices
POOLINGS: tuple[str, ...] = ("max", "topk", "attention", "mean")
#: padding of the view axis: periodic (a full turn), or zeros as for an image (the ablation)
VIEW_PADDINGS: tuple[str, ...] = ("circular", "zeros")
_TRUNKS = ("conv", "viewconv", "sinonet")


class SinoOutput(NamedTuple):
    """``forward(x, return_band=True)``: class logits ``(B, K)`` and band logits ``(B, 1, V, C)``."""

    logits: torch.Tensor
    band: torch.Tensor


def circular_view_pad(x: torch.Tensor, views: int, channels: int) -> torch.Tensor:
    """Pad ``(B, F, V, C)`` by ``views`` circularly along V and ``channels`` zeros along C."""
    if channels:
        x = F.pad(x, (channels, channels, 0, 0))
    if views:
        if views > x.shape[-2]:
            reps = -(-views // x.shape[-2])
            x = torch.cat([x] * (2 * reps + 1), dim=-2)[..., reps * x.shape[-2] - views:
                                                          (reps + 1) * x.shape[-2] + views, :]
        else:
            x = torch.cat([x[..., -views:, :], x, x[..., :views, :]], dim=-2)
    return x


class _CircConv(nn.Module):
    """Convolution ``(kv, kc)`` with circular (or zero) view padding and zero channel padding
    ("same")."""

    def __init__(self, c_in: int, c_out: int, kv: int, kc: int,
                 view_padding: str = "circular") -> None:
        super().__init__()
        self.pad = (kv // 2, kc // 2)
        self.circular = view_padding == "circular"
        self.conv = nn.Conv2d(c_in, c_out, (kv, kc))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.circular:
            return self.conv(circular_view_pad(x, *self.pad))
        return self.conv(F.pad(x, (self.pad[1], self.pad[1], self.pad[0], self.pad[0])))


def _unit(c_in: int, c_out: int, kv: int, kc: int, view_padding: str = "circular"
          ) -> nn.Sequential:
    return nn.Sequential(_CircConv(c_in, c_out, kv, kc, view_padding),
                         nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(inplace=True))


class _Stem(nn.Module):
    """SinoNet-like stem: 1x7 (detector), 7x1 (views) and 3x3 kernels side by side."""

    def __init__(self, c_in: int, c_out: int, view_padding: str = "circular") -> None:
        super().__init__()
        a = c_out // 3
        self.branches = nn.ModuleList([_unit(c_in, a, 1, 7, view_padding),
                                       _unit(c_in, a, 7, 1, view_padding),
                                       _unit(c_in, c_out - 2 * a, 3, 3, view_padding)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class _GlobalPool(nn.Module):
    """``(B, F, V, C) -> (B, F)`` by max, top-k mean, gated attention or mean."""

    def __init__(self, mode: str, features: int, topk_fraction: float) -> None:
        super().__init__()
        self.mode, self.topk_fraction = mode, topk_fraction
        if mode == "attention":  # Ilse, Tomczak & Welling 2018, gated attention
            hidden = max(features // 2, 8)
            self.att_v = nn.Conv2d(features, hidden, 1)
            self.att_u = nn.Conv2d(features, hidden, 1)
            self.att_w = nn.Conv2d(hidden, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        if self.mode == "max":
            return flat.amax(dim=2)
        if self.mode == "mean":
            return flat.mean(dim=2)
        if self.mode == "topk":
            k = max(1, round(self.topk_fraction * flat.shape[2]))
            return flat.topk(k, dim=2).values.mean(dim=2)
        a = self.att_w(torch.tanh(self.att_v(x)) * torch.sigmoid(self.att_u(x))).flatten(2)
        return (flat * torch.softmax(a, dim=2)).sum(dim=2)


class SinoCNN(nn.Module):
    """Sinogram classifier with circular view padding (see the module docstring).

    Parameters
    ----------
    in_channels, num_classes : int
        Input channels ``K`` and output logits.
    widths : tuple of int
        Features of each block (a pooling step between blocks).
    trunk : {"conv", "viewconv", "sinonet"}
        ``sino_cnn``, ``sino_viewconv`` or ``sino_net`` (module docstring).
    pooling : {"max", "topk", "attention", "mean"}
        Global pooling of the last block's features.
    topk_fraction : float
        Fraction of positions averaged by ``"topk"`` (0.03: a lesion band's order).
    dropout : float
        Dropout before the linear layer.
    band_head : bool
        Add the per-pixel band head (``forward(x, return_band=True)``).
    view_padding : {"circular", "zeros"}
        Padding of the view axis: periodic (the default, right for a full turn), or zeros as
        an image network would pad (for the ablation).

    Input ``(B, K, V, C)``; output ``(B, num_classes)`` logits, or :class:`SinoOutput` with
    ``return_band=True``.
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 64),
                 trunk: str = "conv", pooling: str = "max", topk_fraction: float = 0.03,
                 dropout: float = 0.0, band_head: bool = False,
                 view_padding: str = "circular") -> None:
        super().__init__()
        if view_padding not in VIEW_PADDINGS:
            raise ValueError(f"view_padding must be one of {VIEW_PADDINGS}, got {view_padding!r}")
        if trunk not in _TRUNKS:
            raise ValueError(f"trunk must be one of {_TRUNKS}, got {trunk!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not 0 < topk_fraction <= 1:
            raise ValueError(f"topk_fraction must be in (0, 1], got {topk_fraction}")
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be positive ints, got {widths}")
        widths = tuple(int(w) for w in widths)
        self.trunk = trunk
        blocks = []
        c, pad = in_channels, view_padding
        for i, w in enumerate(widths):
            if trunk == "viewconv":
                blocks.append(nn.Sequential(_unit(c, w, 1, 5, pad), _unit(w, w, 3, 1, pad)))
            elif trunk == "sinonet" and i == 0:
                blocks.append(nn.Sequential(_Stem(c, w, pad), _unit(w, w, 3, 3, pad)))
            else:
                blocks.append(nn.Sequential(_unit(c, w, 3, 3, pad), _unit(w, w, 3, 3, pad)))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.band_heads = nn.ModuleList([nn.Conv2d(w, 1, 1) for w in widths]) if band_head \
            else None
        self.pool = _GlobalPool(pooling, c, topk_fraction)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk == "viewconv":
            return F.max_pool2d(x, (1, 2), ceil_mode=True)
        return F.max_pool2d(x, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor, return_band: bool = False) -> torch.Tensor | SinoOutput:
        size = x.shape[-2:]
        feats = []
        for i, block in enumerate(self.blocks):
            if i:
                x = self._down(x)
            x = block(x)
            feats.append(x)
        logits = self.fc(self.drop(self.pool(x)))
        if not return_band:
            return logits
        if self.band_heads is None:
            raise ValueError("return_band=True needs a model built with band_head=True")
        band = sum(F.interpolate(head(f), size=size, mode="bilinear", align_corners=False)
                   if f.shape[-2:] != size else head(f)
                   for head, f in zip(self.band_heads, feats, strict=True))
        return SinoOutput(logits, band)


def _builder(trunk: str):
    def build(in_channels: int = 1, num_classes: int = 1, spatial_dims: int = 2,
              widths: tuple[int, ...] = (16, 32, 64, 64), pooling: str = "max",
              topk_fraction: float = 0.03, dropout: float = 0.0,
              band_head: bool = False, view_padding: str = "circular") -> SinoCNN:
        """Build a :class:`SinoCNN` (2D only; options as its parameters)."""
        return SinoCNN(in_channels, num_classes, widths=tuple(widths), trunk=trunk,
                       pooling=pooling, topk_fraction=topk_fraction, dropout=dropout,
                       band_head=band_head, view_padding=view_padding)

    return build


_COMMON = dict(spatial_dims=(2,), domain="sinogram", input_shape="(B, C, V, Cdet)",
               output_shape="(B, num_classes)")
register("sino_cnn", paper="sinotriage (circular view padding, lesion-preserving pooling)",
         description="3x3 blocks, circular view padding, max/top-k/attention pooling, band head",
         **_COMMON)(_builder("conv"))
register("sino_viewconv", paper="sinotriage (view-wise 1D convolutions)",
         description="per-view 1D conv along channels + circular 1D conv along views",
         **_COMMON)(_builder("viewconv"))
register("sino_net", paper="SinoNet-like stem (Lee et al. 2019) + sino_cnn trunk",
         description="multi-scale rectangular stem (1x7, 7x1, 3x3) then the sino_cnn trunk",
         **_COMMON)(_builder("sinonet"))
