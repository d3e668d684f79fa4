"""Data-efficient image transformers (DeiT, Touvron et al. 2021) through timm, offline.

``deit_tiny``, ``deit_small``, ``deit_base`` and their distillation-token variants
(``deit_*_distilled``; in both training and eval mode they return one tensor, the mean of the
class-token and distillation-token heads). Inputs ``(B, in_channels, img_size, img_size)``,
logits ``(B, num_classes)``. Weights come only from ``pretrained_path`` (a local file, e.g. the
ImageNet DeiT weights saved as safetensors); the position embedding is resampled to ``img_size``
and the patch embedding adapted to ``in_channels`` by timm's checkpoint filter.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sinotriage.models._backbone import finish
from sinotriage.models._registry import register
from sinotriage.models._weights import load_state_dict_file

PAPER = (
    "Stanford CS231n report (DeiT fine-tuned on windowed reconstructions); "
    "Touvron et al. 2021 (DeiT)"
)
SIZES = ("tiny", "small", "base")


def _build(
    timm_name: str,
    in_channels: int,
    num_classes: int,
    img_size: int,
    patch_size: int,
    drop_rate: float,
    pretrained_path: str | Path | None,
    freeze_backbone: bool,
) -> nn.Module:
    import timm

    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < patch_size:
        raise ValueError(f"img_size must be an int >= patch_size ({patch_size}), got {img_size!r}")
    if img_size % patch_size:
        raise ValueError(f"img_size must be a multiple of patch_size={patch_size}, got {img_size}")
    model = timm.create_model(
        timm_name,
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_channels,
        img_size=img_size,
        patch_size=patch_size,
        drop_rate=drop_rate,
    )
    distilled = hasattr(model, "head_dist")
    weights = None
    if pretrained_path is not None:
        from timm.models.vision_transformer import checkpoint_filter_fn

        # resamples pos_embed to img_size and the patch embedding to patch_size
        weights = checkpoint_filter_fn(load_state_dict_file(pretrained_path), model)
    return finish(
        model,
        head_name="head",
        input_conv="patch_embed.proj.weight",
        pretrained_path=weights,
        freeze_backbone=freeze_backbone,
        extra_head_prefixes=("head_dist.",) if distilled else (),
    )


def _make(size: str, distilled: bool) -> None:
    timm_name = f"deit_{size}_{'distilled_' if distilled else ''}patch16_224"
    name = f"deit_{size}{'_distilled' if distilled else ''}"

    @register(
        name,
        spatial_dims=(2,),
        domain="image",
        input_shape="(B, C, img_size, img_size)",
        output_shape="(B, num_classes)",
        paper=PAPER,
        description=f"timm {timm_name}" + (" (distillation token)" if distilled else ""),
    )
    def builder(
        in_channels: int,
        num_classes: int,
        spatial_dims: int,
        img_size: int = 224,
        patch_size: int = 16,
        drop_rate: float = 0.0,
        pretrained_path: str | Path | None = None,
        freeze_backbone: bool = False,
    ) -> nn.Module:
        return _build(
            timm_name,
            in_channels,
            num_classes,
            img_size,
            patch_size,
            drop_rate,
            pretrained_path,
            freeze_backbone,
        )

    builder.__name__ = name
    builder.__doc__ = (
        f"timm ``{timm_name}`` with ``pretrained=False``; ``pretrained_path`` loads a local "
        "weight file (never a download)."
    )


for _size in SIZES:
    for _distilled in (False, True):
        _make(_size, _distilled)
