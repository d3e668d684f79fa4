"""mini_unet's per-level size handling: no up-front padding, max-pools rounding up, the
up-convolution cropped to the skip, and a pad only where the bottleneck would hold one
element."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sinotriage.models.mini_unet import MiniUNet


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _level_shapes(model: MiniUNet, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Spatial sizes of the encoder blocks' outputs and of the bottleneck (forward hooks)."""
    shapes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[2:])))
        for m in (*model.encoders, model.bottleneck)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _ceil_half(size: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-(-n // 2) for n in size)


@pytest.mark.parametrize(
    "spatial",
    [(15, 111), (61, 111), (246, 111), (123, 111), (8, 8), (3, 16), (1, 1), (17, 1), (1, 2, 3),
     (5, 18, 17), (40, 20, 18)],
)  # fmt: skip
def test_levels_round_up_and_the_input_is_not_padded(spatial):
    model = MiniUNet(1, 1, len(spatial), base_channels=1).eval()
    shapes = _level_shapes(model, torch.randn(1, 1, *spatial))
    expected = [MiniUNet.padded_shape(spatial)]
    for _ in range(4):
        expected.append(_ceil_half(expected[-1]))
    assert shapes == expected
    if max(spatial) > 16:
        assert shapes[0] == spatial  # the full resolution is the input's own
    bottleneck = shapes[-1]
    assert torch.Size(bottleneck).numel() > 1  # instance norm needs more than one element


def test_padded_shape_pads_only_tiny_inputs_minimally():
    assert MiniUNet.padded_shape((40, 984, 888)) == (40, 984, 888)
    assert MiniUNet.padded_shape((984, 888)) == (984, 888)
    assert MiniUNet.padded_shape((15, 111)) == (15, 111)
    assert MiniUNet.padded_shape((17, 1)) == (17, 1)
    # every axis <= 16: the largest (the last of equals) goes to 17, a bottleneck of 2
    assert MiniUNet.padded_shape((8, 8)) == (8, 17)
    assert MiniUNet.padded_shape((16, 3)) == (17, 3)
    assert MiniUNet.padded_shape((1, 16, 16)) == (1, 16, 17)
    x = torch.randn(2, 1, 8, 8)
    padded = MiniUNet(1, 1, 2)._pad(x)
    assert padded.shape == (2, 1, 8, 17)
    assert torch.equal(padded[..., :8], x) and not padded[..., 8:].any()
    y = torch.randn(1, 1, 20, 5)
    assert MiniUNet(1, 1, 2)._pad(y) is y


def _reference_forward(model: MiniUNet, x: torch.Tensor) -> torch.Tensor:
    """The same network written out with explicit zero padding of the odd axes before each
    floor-mode max-pool (what ``ceil_mode`` does on the non-negative ReLU outputs) and an
    explicit crop of the up-convolution to the skip."""
    x = model._pad(x)
    skips = []
    for enc in model.encoders:
        x = enc(x)
        skips.append(x)
        pad: list[int] = []
        for n in reversed(x.shape[2:]):
            pad += [0, n % 2]
        x = F.max_pool2d(F.pad(x, pad), 2) if x.dim() == 4 else F.max_pool3d(F.pad(x, pad), 2)
    x = model.bottleneck(x)
    for dec, skip in zip(model.decoders, reversed(skips), strict=True):
        up = dec.up(x)
        for axis, n in enumerate(skip.shape[2:], start=2):
            assert up.shape[axis] in (n, n + 1)
            up = up.narrow(axis, 0, n)
        x = dec.conv(torch.cat([skip, up], dim=1))
    x = model.head_conv(x)
    return model.fc(x.mean(dim=tuple(range(2, x.dim()))))


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 1, 37, 23)), (3, (1, 1, 5, 19, 13))])
def test_matches_explicit_pad_before_pool_and_crop(dims, shape):
    torch.manual_seed(3)
    model = MiniUNet(1, 2, dims, base_channels=2)
    x = torch.randn(*shape)
    torch.testing.assert_close(model(x), _reference_forward(model, x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("dims", "shape"),
    [(2, (4, 1, 15, 111)), (2, (2, 1, 8, 8)), (2, (1, 1, 3, 35)), (3, (1, 1, 1, 20, 18)),
     (3, (1, 1, 3, 17, 9)), (3, (1, 1, 7, 9, 11))],
)  # fmt: skip
def test_checkpointing_same_outputs_and_gradients_at_odd_sizes(dims, shape):
    torch.manual_seed(5)
    model = MiniUNet(1, 2, dims, base_channels=2)
    x = torch.randn(*shape)

    def step():
        model.zero_grad(set_to_none=True)
        y = model(x)
        y.sum().backward()
        return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    y0, g0 = step()
    model.checkpointing = True
    y1, g1 = step()
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("spatial", [(246, 111), (15, 111)])
def test_sinogram_batches_forward_backward(spatial, checkpointing):
    """Batches of 2D sinogram slices at the SinoCT sizes downsampled by 4 and by 64 in views."""
    torch.manual_seed(0)
    model = MiniUNet(1, 1, 2, base_channels=4, checkpointing=checkpointing)
    x = torch.randn(4, 1, *spatial)
    y = model(x)
    assert y.shape == (4, 1) and torch.isfinite(y).all()
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_full_slice_runs_at_its_own_size():
    model = MiniUNet(1, 1, 2, base_channels=1)
    shapes = _level_shapes(model, torch.randn(1, 1, 984, 888))
    assert shapes == [(984, 888), (492, 444), (246, 222), (123, 111), (62, 56)]


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 7, 16, 17, 40])
def test_3d_stacks_of_any_depth(depth):
    torch.manual_seed(depth)
    model = MiniUNet(1, 1, 3, base_channels=1)
    x = torch.randn(1, 1, depth, 18, 20)
    y = model(x)
    assert y.shape == (1, 1) and torch.isfinite(y).all()
    y.sum().backward()


def test_full_sinoct_stack_shapes_on_fake_tensors():
    """The full stack (1, 1, 40, 984, 888) runs at its own size: the first block's output is
    40 x 984 x 888, not 48 x 992 x 896 (fake tensors: shapes only, no compute)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        model = MiniUNet(1, 1, 3, base_channels=16, checkpointing=True)
        shapes = _level_shapes(model, torch.randn(1, 1, 40, 984, 888))
        y = model(torch.randn(1, 1, 40, 984, 888))
        y.sum().backward()
    assert shapes == [
        (40, 984, 888), (20, 492, 444), (10, 246, 222), (5, 123, 111), (3, 62, 56)
    ]  # fmt: skip
    assert tuple(y.shape) == (1, 1)
