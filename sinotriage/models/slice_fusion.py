"""Two-stage adjacent-slice descriptor fusion (Nguyen et al., MIDL 2020 submission).

Stage 1 is any per-slice classifier of the zoo giving a descriptor of ``num_classes`` (6)
probabilities per slice. Stage 2 stacks the descriptors of ``context`` (7) consecutive slices into
a ``context x num_classes`` map and a small CNN (2 conv layers + 1 linear layer) re-predicts the
middle slice.

- ``slice_fusion``: both stages; input ``(B, context, C, H, W)`` (a block of slices centred on the
  slice to predict), output the middle slice's logits ``(B, num_classes)``.
- ``slice_fusion_head``: stage 2 alone; input descriptors ``(B, context, num_classes)``
  (probabilities in [0, 1]), output ``(B, num_classes)``: trained on stage-1 outputs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sinotriage.models._registry import register
from sinotriage.models.cnn_lstm import build_backbone

PAPER = (
    "Nguyen et al. 2020: Slice-level detection of ICH on CT using deep descriptors of "
    "adjacent slices"
)


class FusionCNN(nn.Module):
    """Stage 2: two 3x3 conv layers (ReLU) on the ``(1, context, classes)`` map, then a linear.

    Parameters
    ----------
    num_classes : int
        Descriptor length and output logits (6).
    context : int
        Slices per block (odd; 7 in the paper).
    channels : int
        Channels of the two conv layers.
    """

    def __init__(self, num_classes: int = 6, context: int = 7, channels: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.context = context
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(channels * context * num_classes, num_classes)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of the middle slice from ``(B, context, num_classes)``."""
        expected = (self.context, self.num_classes)
        if descriptors.dim() != 3 or tuple(descriptors.shape[1:]) != expected:
            raise ValueError(
                f"descriptors must be (B, {expected[0]}, {expected[1]}), "
                f"got shape {tuple(descriptors.shape)}"
            )
        x = self.conv(descriptors[:, None].float())
        return self.fc(x.flatten(1))


class SliceFusion(nn.Module):
    """Stage 1 (a per-slice classifier) feeding stage 2 (:class:`FusionCNN`).

    Parameters
    ----------
    stage1 : nn.Module
        Per-slice classifier ``(N, C, H, W) -> (N, num_classes)`` logits.
    num_classes, context, channels
        As in :class:`FusionCNN`.
    freeze_stage1 : bool
        Two-stage training as in the paper: stage 1 is trained first, then frozen (no gradients,
        eval mode) while stage 2 learns from its descriptors.
    """

    def __init__(
        self,
        stage1: nn.Module,
        num_classes: int = 6,
        context: int = 7,
        channels: int = 32,
        freeze_stage1: bool = False,
    ) -> None:
        super().__init__()
        self.stage1 = stage1
        self.fusion = FusionCNN(num_classes, context, channels)
        self.freeze_stage1 = bool(freeze_stage1)
        if self.freeze_stage1:
            for p in self.stage1.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> SliceFusion:
        super().train(mode)
        if self.freeze_stage1:
            self.stage1.eval()
        return self

    def descriptors(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-1 probabilities ``(B, K, num_classes)`` of slices ``x (B, K, C, H, W)``."""
        if x.dim() != 5:
            raise ValueError(f"x must be (B, K, C, H, W), got shape {tuple(x.shape)}")
        b, k = x.shape[:2]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_stage1):
            logits = self.stage1(x.reshape(b * k, *x.shape[2:]))
        return torch.sigmoid(logits.float()).reshape(b, k, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Middle-slice logits ``(B, num_classes)`` of a block ``x (B, context, C, H, W)``."""
        if x.dim() != 5 or x.shape[1] != self.fusion.context:
            raise ValueError(
                f"x must be (B, {self.fusion.context}, C, H, W), got shape {tuple(x.shape)}"
            )
        return self.fusion(self.descriptors(x))


def _check_context(context: int) -> None:
    if isinstance(context, bool) or not isinstance(context, int) or context < 1 or context % 2 == 0:
        raise ValueError(f"context must be a positive odd int, got {context!r}")


@register(
    "slice_fusion",
    spatial_dims=(2,),
    domain="slice sequence",
    input_shape="(B, 7, C, H, W)",
    output_shape="(B, num_classes)",
    paper=PAPER,
    description="stage-1 zoo classifier -> 7 x 6 descriptor map -> 2 conv + 1 linear",
)
def slice_fusion(
    in_channels: int,
    num_classes: int,
    spatial_dims: int,
    backbone: str = "resnet50",
    context: int = 7,
    channels: int = 32,
    freeze_stage1: bool = False,
    pretrained_path: str | Path | None = None,
    backbone_kwargs: dict | None = None,
) -> SliceFusion:
    """Build a :class:`SliceFusion` on the zoo's 2D classifier ``backbone``.

    Stage 1 outputs ``num_classes`` logits per slice; ``pretrained_path`` loads local weights
    into it (e.g. a stage-1 model trained alone, or ImageNet weights).
    """
    _check_context(context)
    stage1 = build_backbone(backbone, in_channels, pretrained_path, backbone_kwargs, num_classes)
    return SliceFusion(stage1, num_classes, context, channels, freeze_stage1)


@register(
    "slice_fusion_head",
    spatial_dims=(2,),
    domain="descriptors",
    input_shape="(B, 7, num_classes)",
    output_shape="(B, num_classes)",
    paper=PAPER,
    description="stage 2 alone: 2 conv + 1 linear on 7 x 6 stage-1 descriptors",
)
def slice_fusion_head(
    in_channels: int,
    num_classes: int,
    spatial_dims: int,
    context: int = 7,
    channels: int = 32,
) -> FusionCNN:
    """Build the stage-2 :class:`FusionCNN` (``in_channels`` is unused: the input is a map)."""
    _check_context(context)
    return FusionCNN(num_classes, context, channels)
