"""The model zoo: registry, shapes, forward/backward, mini U-Net checkpointing, RADnet, masks."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from sinotriage import models
from sinotriage.models.mini_unet import MiniUNet
from sinotriage.models.radnet import RadNetOutput, radnet_loss

# models whose construction + backward on CPU takes several seconds (tens of millions of
# parameters): run with -m slow
HEAVY = {
    "densenet121",
    "deit_small",
    "deit_small_distilled",
    "deit_base",
    "deit_base_distilled",
    "resnet50",
    "resnet101",
    "densenet121_tv",
    "alexnet",
    "se_resnext50",
}


def _case(name: str) -> tuple[dict, torch.Tensor, tuple[int, ...]]:
    """Options, a tiny input of the model's intended shape, and the expected output shape."""
    torch.manual_seed(0)
    s = models.spec(name)
    kwargs: dict = {"in_channels": 3, "num_classes": 6}
    if name.startswith("deit"):
        kwargs["img_size"] = 32
    if name in ("cnn_lstm", "slice_fusion"):
        kwargs["backbone"] = "resnet18"
    if s.domain == "slice sequence":
        depth = 7 if name == "slice_fusion" else 3
        x = torch.randn(2, depth, 3, 32, 32)
        out = (2, 6) if name == "slice_fusion" else (2, depth, 6)
    elif s.domain == "descriptors":
        x, out = torch.rand(2, 7, 6), (2, 6)
    elif name == "learned_fbp":  # a raw sinogram of a small fan-beam geometry
        from sinotriage.geometry import sinoct

        g = sinoct(image_size=32, n_views=24, n_det=21)
        kwargs = {"in_channels": 1, "num_classes": 6, "geometry": g.to_dict()}
        x, out = torch.rand(2, 1, 24, 21), (2, 6)
    elif name == "alexnet":  # its feature stack needs >= 63 pixels
        x, out = torch.randn(2, 3, 64, 64), (2, 6)
    else:
        x, out = torch.randn(2, 3, 32, 32), (2, 6)
    return kwargs, x, out


def _all_names() -> list:
    return [
        pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in models.available()
    ]


def test_available_lists_the_issue_models():
    names = set(models.available())
    wanted = {
        "mini_unet", "mini_unet_slim", "densenet121", "densenet_slim", "deit_tiny", "deit_small",
        "deit_base", "deit_tiny_distilled", "resnet18", "resnet50", "resnet101",
        "densenet121_tv", "alexnet", "se_resnext50", "cnn_lstm", "slice_fusion", "radnet",
    }  # fmt: skip
    assert wanted <= names


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown model 'unet9000'.*mini_unet.*radnet"):
        models.create("unet9000")


def test_bad_options_are_named():
    with pytest.raises(TypeError, match="unexpected option.*'colour'.*checkpointing"):
        models.create("mini_unet", colour="red")
    with pytest.raises(ValueError, match=r"supports spatial_dims in \[2\]"):
        models.create("resnet18", spatial_dims=3)
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        models.create("mini_unet", in_channels=0)
    with pytest.raises(ValueError, match="img_size must be a multiple of patch_size"):
        models.create("deit_tiny", img_size=40)


@pytest.mark.parametrize("name", _all_names())
def test_forward_backward_shapes(name):
    kwargs, x, expected = _case(name)
    model = models.create(name, **kwargs)
    assert isinstance(model, torch.nn.Module)
    y = model(x)
    logits = y.logits if isinstance(y, RadNetOutput) else y
    assert tuple(logits.shape) == expected
    assert torch.isfinite(logits).all()
    loss = logits.square().mean()
    if isinstance(y, RadNetOutput):
        loss = loss + sum(a.square().mean() for a in y.aux)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize(
    ("name", "x", "expected"),
    [
        ("mini_unet", torch.randn(1, 1, 6, 20, 18), (1, 2)),
        ("mini_unet_slim", torch.randn(2, 1, 3, 17, 33), (2, 2)),
        ("densenet_slim", torch.randn(2, 1, 16, 16, 16), (2, 2)),
    ],
)
def test_3d_models(name, x, expected):
    model = models.create(name, in_channels=1, num_classes=2, spatial_dims=3)
    y = model(x)
    assert tuple(y.shape) == expected
    y.sum().backward()


def test_mini_unet_any_size_runs_unpadded():
    model = MiniUNet(1, 1, 2, base_channels=4)
    # 984 x 888 / 8 = 123 x 111: odd, so the last pooling rounds up and the decoder crops
    assert model(torch.randn(1, 1, 123, 111)).shape == (1, 1)
    assert model._pad(torch.zeros(1, 1, 123, 111)).shape[-2:] == (123, 111)  # not padded
    assert model._pad(torch.zeros(1, 1, 40, 984, 888)).shape[-3:] == (40, 984, 888)
    assert model._pad(torch.zeros(1, 1, 3, 16)).shape[-2:] == (3, 17)  # bottleneck 1 x 2
    assert model(torch.randn(1, 1, 3, 16)).shape == (1, 1)
    with pytest.raises(ValueError, match="x must have 4 dims"):
        model(torch.zeros(1, 1, 4, 16, 16))


def test_mini_unet_docstring_parameter_counts():
    text = MiniUNet.__doc__
    rows = re.findall(r"base_channels=(\d+), spatial_dims=(\d): ([\d,]+) parameters", text)
    assert len(rows) == 4
    for base, dims, count in rows:
        model = MiniUNet(1, 1, int(dims), base_channels=int(base))
        assert models.count_parameters(model) == int(count.replace(",", ""))
    # U-Net / 4: the encoder's channels are 16, 32, 64, 128 and the bottleneck 256
    model = MiniUNet(1, 1, 2)
    assert [e[0].out_channels for e in model.encoders] == [16, 32, 64, 128]
    assert model.bottleneck[0].out_channels == 256
    norms = [m for m in model.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    convs = [m for m in model.modules() if type(m) is torch.nn.Conv2d]
    assert len(norms) == len(convs) == 19  # a norm after every 3x3 convolution


def _step(model, x):
    model.zero_grad(set_to_none=True)
    y = model(x)
    y.sum().backward()
    return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 1, 24, 21)), (3, (1, 1, 5, 18, 17))])
def test_mini_unet_checkpointing_same_outputs_and_gradients(dims, shape):
    torch.manual_seed(1)
    model = MiniUNet(1, 3, dims, base_channels=4)
    x = torch.randn(*shape)
    y0, g0 = _step(model, x)
    model.checkpointing = True
    y1, g1 = _step(model, x)
    # the same float32 operations in the same order: equal to float rounding
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-6, msg=name)


def test_mini_unet_offload_same_outputs_and_gradients():
    torch.manual_seed(7)
    model = MiniUNet(1, 2, 2, base_channels=4)
    x = torch.randn(2, 1, 20, 19)
    y0, g0 = _step(model, x)
    model.offload = True
    y1, g1 = _step(model, x)
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)  # saved tensors copied, not changed
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=0, atol=0, msg=name)


def test_mini_unet_checkpointing_under_bf16_autocast():
    torch.manual_seed(2)
    model = MiniUNet(1, 1, 2, base_channels=4)
    x = torch.randn(1, 1, 21, 18)
    outs, grads = [], []
    for ckpt in (False, True):
        model.checkpointing = ckpt
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
        assert y.dtype == torch.bfloat16
        y.float().sum().backward()
        outs.append(y.float())
        grads.append(model.fc.weight.grad.clone())
    # recomputation repeats the same bf16 kernels: equal up to bf16 rounding (2^-8 relative)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(grads[1], grads[0], rtol=2e-2, atol=1e-3)


def test_radnet_returns_logits_and_aux_maps():
    torch.manual_seed(3)
    model = models.create("radnet", in_channels=1, num_classes=6, layers_per_block=2)
    x = torch.randn(2, 3, 1, 36, 30)  # not a multiple of 8: padded inside, maps cropped back
    out = model(x)
    assert isinstance(out, RadNetOutput)
    assert out.logits.shape == (2, 3, 6)
    assert len(out.aux) == 3
    for a in out.aux:
        assert a.shape == (2, 3, 1, 36, 30)
    seg = (torch.rand(2, 3, 36, 30) > 0.8).float()
    labels = (torch.rand(2, 3, 6) > 0.5).float()
    loss = radnet_loss(out, labels, seg, aux_weights=(0.5, 0.25, 0.125))
    # reference: the same weighted sum written out with plain means
    ref = F.binary_cross_entropy_with_logits(out.logits, labels)
    for w, a in zip((0.5, 0.25, 0.125), out.aux, strict=True):
        ref = ref + w * F.binary_cross_entropy_with_logits(a[:, :, 0], seg)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.aux_heads[0][0].weight.grad is not None


def test_radnet_full_depth_is_densenet40():
    model = models.create("radnet", in_channels=1, num_classes=1)
    convs = [m for m in model.blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 36  # 3 blocks x 12 layers; + stem + 2 transitions + classifier = 40
    assert model.num_features == 16 + 36 * 12


@pytest.mark.parametrize("name", ["cnn_lstm", "radnet"])
def test_padding_mask_matches_shorter_sequence(name):
    """A padded sequence with its mask gives the logits of the unpadded, shorter sequence."""
    torch.manual_seed(4)
    kwargs = {"backbone": "densenet_slim", "hidden": 16} if name == "cnn_lstm" else {
        "layers_per_block": 2, "lstm_hidden": 8}  # fmt: skip
    model = models.create(name, in_channels=3, num_classes=6, **kwargs).eval()
    x = torch.randn(2, 5, 3, 16, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        padded = model(x, mask)
        short = model(x[1:, :3])
        full = model(x[:1])
    p = padded.logits if name == "radnet" else padded
    s = short.logits if name == "radnet" else short
    f = full.logits if name == "radnet" else full
    torch.testing.assert_close(p[1, :3], s[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(p[0], f[0], rtol=1e-4, atol=1e-5)
    assert torch.all(p[1, 3:] == 0)
    with pytest.raises(ValueError, match="padding at the end"):
        model(x, torch.tensor([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool))


def test_slice_fusion_two_stages():
    torch.manual_seed(5)
    model = models.create(
        "slice_fusion", in_channels=3, num_classes=6, backbone="densenet_slim", freeze_stage1=True
    )
    x = torch.randn(2, 7, 3, 16, 16)
    model.train()
    assert not model.stage1.training  # a frozen stage 1 stays in eval mode
    y = model(x)
    with torch.no_grad():
        desc = torch.sigmoid(model.stage1(x.reshape(14, 3, 16, 16))).reshape(2, 7, 6)
    torch.testing.assert_close(y, model.fusion(desc))
    y.sum().backward()
    assert all(p.grad is None for p in model.stage1.parameters())
    assert all(p.grad is not None for p in model.fusion.parameters())
    head = models.create("slice_fusion_head", num_classes=6)
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert (len(convs), len(linears)) == (2, 1)
    with pytest.raises(ValueError, match=r"descriptors must be \(B, 7, 6\)"):
        head(torch.rand(2, 5, 6))
    with pytest.raises(ValueError, match="positive odd int"):
        models.create("slice_fusion_head", context=6)


def test_cnn_lstm_rejects_sequence_backbone():
    with pytest.raises(ValueError, match="2D per-slice classifier"):
        models.create("cnn_lstm", backbone="radnet")


@pytest.mark.gpu
def test_mini_unet_cuda_checkpointing_bf16():
    torch.manual_seed(6)
    model = MiniUNet(1, 1, 3, base_channels=8).cuda()
    x = torch.randn(1, 1, 8, 100, 90, device="cuda")
    y0, g0 = _step(model, x)
    model.checkpointing = True
    y1, g1 = _step(model, x)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-3, atol=1e-4, msg=name)
    model.offload = True  # saved tensors in pinned host memory
    y2, g2 = _step(model, x)
    torch.testing.assert_close(y2, y0, rtol=1e-4, atol=1e-5)
    for name in g0:
        torch.testing.assert_close(g2[name], g0[name], rtol=1e-3, atol=1e-4, msg=name)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = model(x)
    y.float().sum().backward()
    assert torch.isfinite(y.float()).all()


def test_unet_memory_benchmark_runs_and_reports(tmp_path):
    """The benchmark's step and table at a tiny size (the figures come from real runs)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "unet_memory.py"
    spec = importlib.util.spec_from_file_location("unet_memory", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.run_config((2, 16, 32), False, False, "cpu", base_channels=2, repeats=1)
    assert row["peak_bytes"] >= 0 and row["step_s"] > 0
    assert 0 < row["loss"] < 10
    info = {
        "input_shape": [1, 1, 2, 16, 32],
        "padded_shape": [1, 1, 2, 16, 32],
        "device": "cpu",
        "device_name": "x",
        "torch": torch.__version__,
        "method": "m",
        "rows": [
            {**row, "peak_bytes": 3 * 2**30, "step_s": 1.5, "saved_activation_bytes": 2**29},
            {"checkpointing": True, "bf16": False, "offload": False, "oom": True},
        ],
        "ratio_checkpointing_on_off": {"fp32": 0.5},
    }
    table = bench.markdown(info)
    assert row["saved_activation_bytes"] > 0
    assert "| off | off | off | 3.00 | 0.500 | 1.50 |" in table
    assert "| on | off | off | OOM | - | - |" in table
    assert "(fp32): 0.50" in table


def test_saved_activation_bytes_known_answer_and_checkpointing_ratio():
    """Known answer: Linear(10, 20) -> ReLU -> Linear(20, 5) on a (4, 10) float32 input saves the
    input (160 B) and the ReLU output (320 B, kept by ReLU and by the second Linear: counted
    once); parameters are not counted. The 3D mini U-Net with checkpointing keeps well under half
    the activations it keeps without (measured 0.20 at this size)."""
    from sinotriage.models.memory import saved_activation_bytes

    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    assert saved_activation_bytes(lin, torch.randn(4, 10)) == 4 * 10 * 4 + 4 * 20 * 4

    net = models.create("mini_unet_slim", in_channels=1, num_classes=1, spatial_dims=3)
    x = torch.randn(1, 1, 8, 32, 32)
    off = saved_activation_bytes(net, x)
    net.checkpointing = True
    on = saved_activation_bytes(net, x)
    assert off > 8 * 32 * 32 * 8 * 4  # at least one full-resolution feature map
    assert on / off < 0.5
