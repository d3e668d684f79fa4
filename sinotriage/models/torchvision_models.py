"""Transfer-learning baselines: torchvision ResNets, DenseNet121, AlexNet and timm SE-ResNeXt50.

Built with ``weights=None`` / ``pretrained=False`` (never a download); ``pretrained_path`` loads a
local ImageNet weight file (the first convolution is adapted to ``in_channels``, the classifier
is re-initialized when ``num_classes`` differs) and ``freeze_backbone=True`` leaves only the head
trainable (the first phase of the one-cycle recipe; :func:`sinotriage.models.unfreeze` ends it).
Inputs ``(B, in_channels, H, W)`` (three windows in the papers), logits ``(B, num_classes)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from sinotriage.models._backbone import finish
from sinotriage.models._registry import register

PAPER_TL = "Khandelwal & Ganguli: ICH subtypes with transfer learning and the one-cycle policy"
PAPER_CNN_LSTM = "Nguyen et al. 2020: CNN-LSTM for ICH (ResNet-50 / SE-ResNeXt-50 backbones)"


def _replace_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if conv.in_channels == in_channels:
        return conv
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )


def _resnet(arch: str) -> Callable[[int, int], tuple[nn.Module, str, str]]:
    def build(in_channels: int, num_classes: int) -> tuple[nn.Module, str, str]:
        import torchvision

        model = getattr(torchvision.models, arch)(weights=None)
        model.conv1 = _replace_conv(model.conv1, in_channels)
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        return model, "fc", "conv1.weight"

    return build


def _densenet_tv(in_channels: int, num_classes: int) -> tuple[nn.Module, str, str]:
    import torchvision

    model = torchvision.models.densenet121(weights=None)
    model.features.conv0 = _replace_conv(model.features.conv0, in_channels)
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    return model, "classifier", "features.conv0.weight"


def _alexnet(in_channels: int, num_classes: int) -> tuple[nn.Module, str, str]:
    import torchvision

    model = torchvision.models.alexnet(weights=None)
    model.features[0] = _replace_conv(model.features[0], in_channels)
    model.classifier[6] = nn.Linear(model.classifier[6].in_features, num_classes)
    return model, "classifier.6", "features.0.weight"


def _se_resnext50(in_channels: int, num_classes: int) -> tuple[nn.Module, str, str]:
    import timm

    model = timm.create_model(
        "seresnext50_32x4d", pretrained=False, in_chans=in_channels, num_classes=num_classes
    )
    return model, "fc", "conv1.weight"


_BASELINES: dict[str, tuple[Callable[[int, int], tuple[nn.Module, str, str]], str, str]] = {
    "resnet18": (_resnet("resnet18"), PAPER_TL, "torchvision ResNet-18"),
    "resnet50": (_resnet("resnet50"), f"{PAPER_TL}; {PAPER_CNN_LSTM}", "torchvision ResNet-50"),
    "resnet101": (_resnet("resnet101"), PAPER_TL, "torchvision ResNet-101"),
    "densenet121_tv": (_densenet_tv, PAPER_TL, "torchvision DenseNet-121"),
    "alexnet": (_alexnet, PAPER_TL, "torchvision AlexNet"),
    "se_resnext50": (_se_resnext50, PAPER_CNN_LSTM, "timm seresnext50_32x4d"),
}


def _make(name: str) -> None:
    build, paper, description = _BASELINES[name]

    @register(
        name,
        spatial_dims=(2,),
        domain="image",
        input_shape="(B, C, H, W)",
        output_shape="(B, num_classes)",
        paper=paper,
        description=description,
    )
    def builder(
        in_channels: int,
        num_classes: int,
        spatial_dims: int,
        pretrained_path: str | Path | None = None,
        freeze_backbone: bool = False,
    ) -> nn.Module:
        model, head, input_conv = build(in_channels, num_classes)
        return finish(
            model,
            head_name=head,
            input_conv=input_conv,
            pretrained_path=pretrained_path,
            freeze_backbone=freeze_backbone,
        )

    builder.__name__ = name
    builder.__doc__ = f"{description}; local weights via ``pretrained_path``, no download."


for _name in _BASELINES:
    _make(_name)
