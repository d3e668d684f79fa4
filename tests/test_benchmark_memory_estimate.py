"""The device-free estimate of a training step's peak memory (benchmarks/memory_estimate.py)."""

from __future__ import annotations

import contextlib
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from sinotriage.models.mini_unet import MiniUNet

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from memory_estimate import (  # noqa: E402
    cuda_autocast_on_cpu,
    estimate_step_memory,
    estimate_step_peak_bytes,
)


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1, foreach=False)


def _sum(out, target):
    return out.sum()


def test_known_answer_linear_step():
    """Linear(16, 8), input (4, 16), loss = output.sum(), plain SGD; the measured step follows a
    warm-up step. Float32 bytes: weight 512, bias 32, input 256, target (ones like the output,
    4 x 8) 128, and the warm-up's gradients 512 + 32: 1472 at the start. zero_grad frees the
    gradients (928); forward: output 128 (1056); loss: a scalar, 4 (1060); backward: its seed
    gradient 4 (1064), the weight's gradient 512 (1576) and the bias's 32 (1608, the peak, before
    the output and the loss go); SGD updates in place. On "cuda" every one of these 11
    allocations is one 512-byte block: 6 at the start, 9 at the peak."""
    kw = dict(loss_fn=_sum, optimizer_factory=_sgd)
    make = partial(torch.nn.Linear, 16, 8)
    cpu = estimate_step_memory(make, (4, 16), device="cpu", **kw)
    assert (cpu.start_bytes, cpu.peak_bytes, cpu.param_bytes) == (1472, 1608, 544)
    assert cpu.peak_where.startswith("backward")
    cuda = estimate_step_memory(make, (4, 16), device="cuda", **kw)
    assert (cuda.start_bytes, cuda.peak_bytes, cuda.param_bytes) == (6 * 512, 9 * 512, 2 * 512)
    assert estimate_step_peak_bytes(make, (4, 16), device="cuda", **kw) == 9 * 512


def test_mini_unet_estimate_checkpointing_bf16_and_offload():
    """At a small size (fake tensors: no compute), checkpointing and bf16 lower the estimate and
    offload moves saved tensors to host memory."""
    shape = (1, 1, 16, 64, 64)

    def peak(ckpt, bf16, offload=False):
        make = partial(MiniUNet, 1, 1, 3, 4, ckpt, offload)
        return estimate_step_memory(make, shape, torch.bfloat16 if bf16 else None)

    plain, ckpt, bf16 = peak(False, False), peak(True, False), peak(False, True)
    assert ckpt.peak_bytes < 0.6 * plain.peak_bytes
    assert bf16.peak_bytes < 0.75 * plain.peak_bytes
    off = peak(False, True, offload=True)
    assert off.host_peak_bytes > 0 and off.peak_bytes < bf16.peak_bytes
    assert plain.host_peak_bytes == 0


class _Dtypes(TorchDispatchMode):
    """Records (op, dtype of its first tensor output) for every aten op."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        first = next(
            (t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)), None
        )
        if first is not None:
            self.ops.append((str(func), first.dtype))
        return out


@contextlib.contextmanager
def _cuda_autocast_bf16():
    """CUDA autocast switched on below ``torch.autocast``, which would disable itself here."""
    prev, prev_dtype = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", torch.bfloat16)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        torch.set_autocast_enabled("cuda", prev)
        torch.set_autocast_dtype("cuda", prev_dtype)
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()


def _run(fn, device):
    """Forward of ``fn`` on fake tensors of ``device`` under that device's bf16 autocast (CPU:
    with CUDA's op lists); returns the (op, output dtype) sequence."""
    with FakeTensorMode(), torch.device(device):
        args = fn.make()
        log = _Dtypes()
        if device == "cuda":
            ctx = _cuda_autocast_bf16()
        else:
            ctx = contextlib.ExitStack()
            ctx.enter_context(cuda_autocast_on_cpu())
            ctx.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        with ctx, log:
            fn(*args)
    return [(op, dt) for op, dt in log.ops if not op.startswith("prim.")]


def _case(f, make):
    f.make = make
    return f


def test_cuda_autocast_emulation_matches_cuda_dispatch():
    """Fake CUDA tensors run a forward pass under CUDA autocast without a GPU (only backward
    needs one), so the emulation on CPU is checked against CUDA's own autocast dispatch, op by
    op: the 3D mini U-Net, and ops on which CPU and CUDA autocast differ."""
    x5 = lambda: (torch.randn(1, 4, 4, 8, 8),)  # noqa: E731
    cases = [
        _case(lambda x: F.max_pool3d(x.bfloat16(), 2), x5),
        _case(lambda x: F.avg_pool3d(x.bfloat16(), 2), x5),
        _case(lambda x: F.pad(x.bfloat16(), (1, 1, 1, 1, 1, 1), mode="replicate"), x5),
        _case(lambda x: F.layer_norm(x.bfloat16(), (8,)), x5),
        _case(lambda x: F.group_norm(x.bfloat16(), 2), x5),
        _case(lambda x: F.softmax(x.bfloat16(), -1), x5),
        _case(lambda x: x.bfloat16().sum(), x5),
        _case(lambda x: torch.exp(x.bfloat16()), x5),
        _case(lambda x: F.interpolate(x.bfloat16(), scale_factor=2), x5),
        _case(lambda x: torch.cat([x.bfloat16(), x], 1), x5),
    ]
    for case in cases:
        assert _run(case, "cuda") == _run(case, "cpu")

    torch.manual_seed(0)
    unet = _case(
        lambda m, x: m(x),
        lambda: (MiniUNet(1, 1, 3, base_channels=2), torch.randn(1, 1, 4, 20, 16)),
    )
    cuda, cpu = _run(unet, "cuda"), _run(unet, "cpu")
    assert cuda == cpu
    assert ("aten.max_pool3d_with_indices.default", torch.bfloat16) in cuda

    # outside the context CPU autocast is itself again: max_pool3d in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.max_pool3d(torch.randn(1, 1, 2, 2, 2).bfloat16(), 2).dtype == torch.float32


def test_unet_memory_estimate_table():
    """The benchmark's --estimate table (figures from the estimator; here a synthetic row)."""
    import unet_memory as bench
    row = {"checkpointing": True, "bf16": True, "offload": False,
           "estimated_peak_bytes": 9 * 2**30, "estimated_host_peak_bytes": 0,
           "step_tflop": 25.46, "under_target": {"8 GiB": False, "8e9 B": False}}  # fmt: skip
    val = {"checkpointing": True, "bf16": True, "offload": False,
           "measured_h100_bytes": 17.57 * 2**30, "estimated_peak_bytes": 16.23 * 2**30,
           "relative_error": 16.23 / 17.57 - 1, "step_tflop": None}  # fmt: skip
    info = {"input_shape": [1, 1, 40, 984, 888], "padded_shape": [1, 1, 48, 992, 896],
            "torch": "x", "method": "m", "rows": [row], "validation": [val]}  # fmt: skip
    table = bench.markdown_estimate(info)
    assert table.startswith("**Estimate, not a measurement.**")
    assert "| on | on | off | 9.00 | 9.66 | no | no | 0.00 | 25.5 |" in table
    assert "| on | on | off | 17.57 | 16.23 | -7.6% | - |" in table
    assert set(bench.H100_MEASURED_GIB) == set(bench.CONFIGS + bench.CUDA_EXTRA)
