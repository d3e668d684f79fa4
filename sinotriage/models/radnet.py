"""RADnet (Grewal et al. 2018): recurrent attention DenseNet for hemorrhage detection.

A 40-layer DenseNet (3 dense blocks of 12 BN-ReLU-3x3 conv layers, growth rate 12) on each
slice; after each dense block an auxiliary segmentation head (1x1 conv + transposed conv back to
the input size, x2 / x4 / x8 as in the paper's figure) is trained on hemorrhage masks, which
directs the network's attention to the bleed; the globally pooled features of all slices go
through a bidirectional LSTM before the per-slice classifier.

Input ``(B, D, C, H, W)`` (optional ``mask (B, D)``, True for real slices, padding at the end);
output a :class:`RadNetOutput` named tuple ``(logits, aux)`` with ``logits (B, D, num_classes)``
and ``aux`` a tuple of three maps ``(B, D, aux_classes, H, W)`` (logits). The loss is
:func:`radnet_loss`: classification cross-entropy plus weighted auxiliary segmentation losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sinotriage.models._registry import register
from sinotriage.models.cnn_lstm import BiLSTMHead, sequence_lengths

PAPER = "Grewal et al. 2018: RADnet, radiologist-level accuracy for hemorrhage detection in CT"


class RadNetOutput(NamedTuple):
    """What :class:`RadNet` returns.

    Attributes
    ----------
    logits : torch.Tensor
        Per-slice class logits ``(B, D, num_classes)`` (0 at padded slices).
    aux : tuple of torch.Tensor
        Three segmentation logit maps ``(B, D, aux_classes, H, W)``, one after each dense block.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, growth, kernel_size=3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.dropout(self.conv(F.relu(self.norm(x))))
        return torch.cat([x, new], dim=1)


class _Transition(nn.Sequential):
    def __init__(self, c: int) -> None:
        super().__init__(
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, kernel_size=1, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


class _AuxHead(nn.Sequential):
    """1x1 convolution to ``aux_classes`` maps, then a transposed conv upsampling by ``factor``."""

    def __init__(self, c_in: int, aux_classes: int, factor: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, aux_classes, kernel_size=1),
            nn.ConvTranspose2d(aux_classes, aux_classes, kernel_size=factor, stride=factor),
        )


class RadNet(nn.Module):
    """DenseNet-40 with auxiliary segmentation heads and a bidirectional LSTM over slices.

    Parameters
    ----------
    in_channels : int
        Channels per slice (1: brain-windowed slice in the paper).
    num_classes : int
        Logits per slice.
    growth_rate : int
        DenseNet growth rate (12).
    layers_per_block : int
        Layers per dense block (12: 3 x 12 + stem + 2 transitions + classifier = 40 layers).
    init_features : int
        Channels of the stem convolution (16; stride 2, so the blocks run at 1/2, 1/4, 1/8).
    lstm_hidden : int
        Hidden units per direction of the single bidirectional LSTM layer.
    aux_classes : int
        Channels of each auxiliary map (1: hemorrhage vs background).
    dropout : float
        Dropout after each dense layer's convolution.
    spatial_dims : int
        Must be 2 (the registry passes it to every model; RadNet reads 2D slices).
    """

    #: spatial size multiple (three halvings); inputs are padded to it and maps cropped back
    multiple = 8

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        growth_rate: int = 12,
        layers_per_block: int = 12,
        init_features: int = 16,
        lstm_hidden: int = 128,
        aux_classes: int = 1,
        dropout: float = 0.0,
        *,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:  # the registry's common argument: slices are 2D
            raise ValueError(f"RadNet runs on 2D slices: spatial_dims must be 2, got {spatial_dims!r}")
        self.stem = nn.Conv2d(in_channels, init_features, kernel_size=3, stride=2, padding=1)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        self.aux_heads = nn.ModuleList()
        c = init_features
        for i, factor in enumerate((2, 4, 8)):
            layers = []
            for _ in range(layers_per_block):
                layers.append(_DenseLayer(c, growth_rate, dropout))
                c += growth_rate
            self.blocks.append(nn.Sequential(*layers))
            self.aux_heads.append(_AuxHead(c, aux_classes, factor))
            if i < 2:
                self.transitions.append(_Transition(c))
        self.final_norm = nn.BatchNorm2d(c)
        self.num_features = c
        self.head = BiLSTMHead(c, num_classes, lstm_hidden, layers=1, dropout=0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> RadNetOutput:
        """Run on slices ``x (B, D, C, H, W)``; see :class:`RadNetOutput`."""
        if x.dim() != 5:
            raise ValueError(f"x must be (B, D, C, H, W), got shape {tuple(x.shape)}")
        b, d, _, h, w = x.shape
        lengths = sequence_lengths(mask, b, d)
        flat = x.reshape(b * d, *x.shape[2:])
        keep = None if mask is None else mask.reshape(-1).to(torch.bool)
        if keep is not None:
            flat = flat[keep]
        flat = F.pad(flat, [0, (-w) % self.multiple, 0, (-h) % self.multiple])
        feats = self.stem(flat)
        aux = []
        for i, block in enumerate(self.blocks):
            feats = block(feats)
            aux.append(self.aux_heads[i](feats)[..., :h, :w])
            if i < len(self.transitions):
                feats = self.transitions[i](feats)
        pooled = F.relu(self.final_norm(feats)).mean(dim=(2, 3))
        pooled = _unflatten(pooled, keep, b, d)
        logits = self.head(pooled, lengths)
        if mask is not None:
            logits = logits * mask[..., None].to(logits.dtype)
        return RadNetOutput(logits, tuple(_unflatten(a, keep, b, d) for a in aux))


def _unflatten(t: torch.Tensor, keep: torch.Tensor | None, b: int, d: int) -> torch.Tensor:
    if keep is None:
        return t.reshape(b, d, *t.shape[1:])
    out = t.new_zeros(b * d, *t.shape[1:])
    out[keep] = t
    return out.reshape(b, d, *t.shape[1:])


def radnet_loss(
    output: RadNetOutput,
    labels: torch.Tensor,
    seg_masks: torch.Tensor,
    mask: torch.Tensor | None = None,
    aux_weights: Sequence[float] = (0.25, 0.25, 0.25),
) -> torch.Tensor:
    """Classification BCE plus weighted auxiliary segmentation BCE losses (a scalar).

    Parameters
    ----------
    output : RadNetOutput
        The model's output.
    labels : torch.Tensor
        Per-slice targets ``(B, D, num_classes)`` in {0, 1}.
    seg_masks : torch.Tensor
        Hemorrhage masks ``(B, D, H, W)`` (binary, used when ``aux_classes == 1``) or
        ``(B, D, aux_classes, H, W)``.
    mask : torch.Tensor, optional
        ``(B, D)`` bool, True for real slices; padded slices do not count.
    aux_weights : sequence of 3 floats
        Weights of the three auxiliary losses (the paper does not state them).
    """
    if len(aux_weights) != len(output.aux):
        raise ValueError(f"aux_weights must have {len(output.aux)} values, got {len(aux_weights)}")
    if labels.shape != output.logits.shape:
        raise ValueError(
            f"labels must have shape {tuple(output.logits.shape)}, got {tuple(labels.shape)}"
        )
    target = seg_masks.float()
    if target.dim() == 4:
        target = (target > 0).float()[:, :, None]
    if target.shape != output.aux[0].shape:
        raise ValueError(
            f"seg_masks must have shape {tuple(output.aux[0].shape[:2] + output.aux[0].shape[3:])}"
            f" or {tuple(output.aux[0].shape)}, got {tuple(seg_masks.shape)}"
        )
    weight = torch.ones(labels.shape[:2], device=labels.device) if mask is None else mask.float()
    n = weight.sum().clamp_min(1.0)
    cls = F.binary_cross_entropy_with_logits(
        output.logits.float(), labels.float(), reduction="none"
    ).mean(dim=-1)
    loss = (cls * weight).sum() / n
    for w, aux in zip(aux_weights, output.aux, strict=True):
        seg = F.binary_cross_entropy_with_logits(aux.float(), target, reduction="none")
        loss = loss + w * (seg.mean(dim=(2, 3, 4)) * weight).sum() / n
    return loss


register(
    "radnet",
    spatial_dims=(2,),
    domain="slice sequence",
    input_shape="(B, D, C, H, W) [+ mask (B, D)]",
    output_shape="RadNetOutput(logits (B, D, K), aux 3 x (B, D, A, H, W))",
    paper=PAPER,
    description="DenseNet-40 (3 blocks) + aux segmentation heads + BiLSTM over slices",
)(RadNet)
