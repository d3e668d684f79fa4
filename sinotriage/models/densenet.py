"""MONAI DenseNets: ``densenet121`` (the SinoCT study's classifier) and ``densenet_slim``.

Both work in 2D (a slice ``(B, C, H, W)``) and 3D (a stack ``(B, C, D, H, W)``), on sinograms or
reconstructions, and return logits ``(B, num_classes)``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sinotriage.models._backbone import finish
from sinotriage.models._registry import register

PAPER_SINOCT = (
    "Hooper et al. 2021 (SinoCT): DenseNet on sinograms vs reconstructions; "
    "Huang et al. 2017 (DenseNet)"
)
#: MONAI DenseNet's final linear layer and first convolution
HEAD = "class_layers.out"
INPUT_CONV = "features.conv0.weight"


def monai_densenet(
    in_channels: int,
    num_classes: int,
    spatial_dims: int,
    *,
    init_features: int,
    growth_rate: int,
    block_config: tuple[int, ...],
    dropout_prob: float = 0.0,
    pretrained_path: str | Path | None = None,
    freeze_backbone: bool = False,
) -> nn.Module:
    """MONAI ``DenseNet`` with a zero-initialised head, built for the registry.

    ``densenet121`` and ``densenet_slim`` are this builder with the registry's defaults for
    ``init_features``, ``growth_rate`` and ``block_config`` (which a caller may override).

    Parameters
    ----------
    in_channels, num_classes, spatial_dims : int
        Input channels, output logits, 2 (slice) or 3 (stack).
    init_features, growth_rate : int
        Channels of the first convolution, channels each dense layer adds.
    block_config : tuple of int
        Dense layers per block.
    dropout_prob : float
        Dropout after each dense layer.
    pretrained_path : str or Path, optional
        A local file saved from the same model (no download).
    freeze_backbone : bool
        Train the head only.

    Returns
    -------
    torch.nn.Module
        Logits ``(B, num_classes)``.
    """
    from monai.networks.nets import DenseNet

    model = DenseNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=num_classes,
        init_features=init_features,
        growth_rate=growth_rate,
        block_config=block_config,
        dropout_prob=dropout_prob,
    )
    return finish(
        model,
        head_name=HEAD,
        input_conv=INPUT_CONV,
        pretrained_path=pretrained_path,
        freeze_backbone=freeze_backbone,
    )


_SPEC = dict(
    spatial_dims=(2, 3),
    domain="sinogram|image",
    input_shape="(B, C, H, W) or (B, C, D, H, W)",
    output_shape="(B, num_classes)",
    paper=PAPER_SINOCT,
)


register(
    "densenet121",
    description="MONAI DenseNet121 (64 features, growth 32, blocks 6-12-24-16)",
    defaults={"init_features": 64, "growth_rate": 32, "block_config": (6, 12, 24, 16)},
    **_SPEC,
)(monai_densenet)
register(
    "densenet_slim",
    description="MONAI DenseNet, 16 features, growth 12, blocks 4-8-8 (CPU budget)",
    defaults={"init_features": 16, "growth_rate": 12, "block_config": (4, 8, 8)},
    **_SPEC,
)(monai_densenet)
