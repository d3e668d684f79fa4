"""Local weight files for the zoo: loading, adaptation, freezing, and never a download."""

from __future__ import annotations

import socket
import urllib.request

import pytest
import torch
from safetensors.torch import save_file

from sinotriage import models
from sinotriage.models._weights import adapt_input_conv, load_state_dict_file, unfreeze


@pytest.fixture
def no_network(monkeypatch):
    """Make every route to the network fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    try:
        import huggingface_hub

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    except ImportError:  # pragma: no cover - timm brings it, but it is optional
        pass


def _random_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize(
    ("name", "kwargs", "fmt"),
    [
        ("resnet18", {}, "safetensors"),
        ("resnet18", {}, "pt"),
        ("deit_tiny", {"img_size": 32}, "safetensors"),
        ("densenet_slim", {}, "pt"),
    ],
)
def test_local_weights_load_exactly(tmp_path, no_network, name, kwargs, fmt):
    source = models.create(name, in_channels=3, num_classes=4, **kwargs)
    state = _random_state(source, seed=0)
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)  # nested, as training checkpoints often are
    model = models.create(name, in_channels=3, num_classes=4, pretrained_path=path, **kwargs)
    loaded = model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_imagenet_style_weights_adapt_input_and_reset_head(tmp_path, no_network):
    """3-channel 1000-class weights into a 1-channel, 1-logit ResNet-18."""
    imagenet = models.create("resnet18", in_channels=3, num_classes=1000)
    state = _random_state(imagenet, seed=1)
    path = tmp_path / "resnet18_imagenet.safetensors"
    save_file(state, str(path))
    model = models.create("resnet18", in_channels=1, num_classes=1, pretrained_path=path)
    got = model.state_dict()
    torch.testing.assert_close(got["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(got["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert got["fc.weight"].shape == (1, 512)


def test_deit_weights_resampled_to_another_image_size(tmp_path, no_network):
    source = models.create("deit_tiny_distilled", in_channels=3, num_classes=1000, img_size=64)
    state = _random_state(source, seed=2)
    path = tmp_path / "deit.safetensors"
    save_file(state, str(path))
    model = models.create(
        "deit_tiny_distilled", in_channels=1, num_classes=2, img_size=32, pretrained_path=path
    )
    got = model.state_dict()
    assert got["pos_embed"].shape == (1, 2 + 4, 192)  # cls + dist tokens + (32/16)^2 patches
    torch.testing.assert_close(got["blocks.11.mlp.fc2.weight"], state["blocks.11.mlp.fc2.weight"])
    torch.testing.assert_close(
        got["patch_embed.proj.weight"], state["patch_embed.proj.weight"].sum(1, keepdim=True)
    )
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 2)


def test_weight_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        models.create("resnet18", pretrained_path=tmp_path / "missing.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_state_dict_file(tmp_path / "list.pt")
    other = models.create("densenet_slim", in_channels=1, num_classes=1)
    save_file(_random_state(other, 3), str(tmp_path / "dense.safetensors"))
    with pytest.raises(ValueError, match="does not match the model: missing keys"):
        models.create("resnet18", pretrained_path=tmp_path / "dense.safetensors")
    wide = models.create("densenet_slim", in_channels=1, num_classes=1)
    state = _random_state(wide, 4)
    key = next(k for k in state if k.startswith("features.denseblock1") and k.endswith("weight"))
    state[key] = torch.zeros(3, 3, 1, 1)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="has shape"):
        models.create("densenet_slim", pretrained_path=tmp_path / "bad.safetensors")


def test_adapt_input_conv_keeps_constant_image_response():
    w = torch.randn(8, 3, 3, 3)
    for c in (1, 3, 6):  # 1 or a multiple of the source's channels
        a = adapt_input_conv(w, c)
        assert a.shape == (8, c, 3, 3)
        # a constant image of value 1 on every channel gives the same response
        torch.testing.assert_close(a.sum(dim=(1, 2, 3)), w.sum(dim=(1, 2, 3)))


@pytest.mark.parametrize(
    ("name", "kwargs", "head"),
    [
        ("resnet18", {}, ("fc.",)),
        ("deit_tiny_distilled", {"img_size": 32}, ("head.", "head_dist.")),
        ("densenet_slim", {}, ("class_layers.out.",)),
    ],
)
def test_freeze_backbone_leaves_only_the_head_trainable(name, kwargs, head):
    model = models.create(name, in_channels=3, num_classes=2, freeze_backbone=True, **kwargs)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(head) for n in trainable)
    assert len(trainable) == 2 * len(head)  # weight and bias of each head linear
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith(head))
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
