"""Device-free estimate of the peak CUDA memory of one training step (fake tensors).

Kept beside the benchmarks, not in the package: while it runs it registers Python autocast
kernels for the AutocastCPU dispatch key process-wide (:func:`cuda_autocast_on_cpu`) and
patches ``torch.autograd.graph.save_on_cpu``, which a library must not do to its users.

- :func:`estimate_step_memory` / :func:`estimate_step_peak_bytes`: the peak bytes of live tensor
  storage over one training step (forward, loss, backward, optimizer step), estimated without
  running a kernel and without a GPU, by running the step on fake tensors
  (:class:`torch._subclasses.fake_tensor.FakeTensorMode`) and counting their storages. On a GPU
  this is what ``torch.cuda.max_memory_allocated`` measures, less what the estimate leaves out
  (see :func:`estimate_step_memory`).

The exact count of the tensors saved for backward stays in the package:
:func:`sinotriage.models.memory.saved_activation_bytes`.

Import it as ``memory_estimate`` with ``benchmarks/`` on ``sys.path`` (the benchmark scripts
run from there; tests add it).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

__all__ = [
    "CUDA_BLOCK_BYTES",
    "StepMemoryEstimate",
    "cuda_autocast_on_cpu",
    "estimate_step_memory",
    "estimate_step_peak_bytes",
]

#: the CUDA caching allocator rounds every request up to a multiple of this (``kMinBlockSize``)
CUDA_BLOCK_BYTES = 512


# --------------------------------------------------------------------------------------------
# storage tracking


class _StorageTracker(TorchDispatchMode):
    """Counts the bytes of live tensor storages created by aten ops, with their peak.

    A storage is counted when an op returns it for the first time (outputs that alias an input,
    i.e. views and in-place results, are not new) and uncounted when it is freed (a weakref
    callback on the storage object, whose Python object lives as long as the storage). Sizes
    are rounded up to ``round_to`` bytes. Storages created while :meth:`on_host` is active are
    host memory: counted apart (``host_current``), not in ``current``.
    """

    def __init__(self, round_to: int = 1, timeline: bool = False) -> None:
        super().__init__()
        self.round_to = max(1, int(round_to))
        self._live: dict[int, tuple[int, bool, weakref.ref]] = {}
        self.current = 0
        self.peak = 0
        self.host_current = 0
        self.host_peak = 0
        self.phase = ""
        self.peak_where = ""
        self._host = False
        self.timeline: list[tuple[str, str, int]] | None = [] if timeline else None

    def _rounded(self, nbytes: int) -> int:
        return 0 if nbytes <= 0 else -(-nbytes // self.round_to) * self.round_to

    @contextlib.contextmanager
    def on_host(self) -> Iterator[None]:
        prev, self._host = self._host, True
        try:
            yield
        finally:
            self._host = prev

    def reset_peak(self) -> None:
        self.peak, self.peak_where = self.current, "start"
        self.host_peak = self.host_current

    def _free(self, key: int, _ref: weakref.ref) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            size, host, _ = entry
            if host:
                self.host_current -= size
            else:
                self.current -= size

    def track(self, st: torch.UntypedStorage, where: str = "") -> None:
        """Count the storage ``st`` if it is not counted yet (or count its new size)."""
        key = id(st)
        entry = self._live.get(key)
        size = self._rounded(st.nbytes())
        if entry is not None:
            if entry[0] != size and not entry[1]:  # resized in place (resize_, out=)
                self.current += size - entry[0]
                self._live[key] = (size, entry[1], entry[2])
            else:
                return
        else:
            self._live[key] = (
                size,
                self._host,
                weakref.ref(st, functools.partial(self._free, key)),
            )
            if self._host:
                self.host_current += size
                self.host_peak = max(self.host_peak, self.host_current)
                return
            self.current += size
        if self.current > self.peak:
            self.peak = self.current
            self.peak_where = f"{self.phase}: {where}"
        if self.timeline is not None:
            self.timeline.append((self.phase, where, self.current))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {id(st) for st in map(_storage, tree_leaves((args, kwargs))) if st is not None}
        name = str(func)
        for st in map(_storage, tree_leaves(out)):
            if st is not None and (id(st) not in inputs or id(st) in self._live):
                self.track(st, name)
        return out


def _storage(t: Any) -> torch.UntypedStorage | None:
    """The storage of a tensor; None for non-tensors and tensors without one (sparse, nested)."""
    if not isinstance(t, torch.Tensor):
        return None
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


# --------------------------------------------------------------------------------------------
# CUDA autocast on CPU tensors

#: ops that CPU autocast casts (to float32; ``cat``/``stack`` to the widest input type) and CUDA
#: autocast leaves alone: they run in their input dtypes
_CUDA_PASS_THROUGH = (
    "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d", "adaptive_max_pool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "max_unpool2d", "max_unpool3d",
    "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "grid_sampler_2d", "grid_sampler_3d", "cat", "stack",
)  # fmt: skip
#: ops that CUDA autocast casts to float32 and CPU autocast leaves alone
_CUDA_FP32 = (
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log1p", "log2",
    "reciprocal", "rsqrt", "sinh", "tan", "pow.Scalar", "pow.Tensor_Scalar", "pow.Tensor_Tensor",
    "softplus", "layer_norm", "native_layer_norm", "group_norm", "rms_norm", "cosine_similarity",
    "dist", "pdist", "renorm", "logsumexp", "nuclear_norm", "nuclear_norm.dim",
    "frobenius_norm.dim", "norm.Scalar", "norm.ScalarOpt_dim", "upsample_nearest1d",
    "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d", "upsample_bilinear2d",
    "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_nearest_exact1d",
    "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "_upsample_bilinear2d_aa",
    "_upsample_bicubic2d_aa",
)  # fmt: skip
#: ops that CUDA autocast runs with ``dtype=float32`` unless a dtype is given
_CUDA_FP32_OPT_DTYPE = (
    "softmax.int", "log_softmax.int", "cumsum", "cumprod", "sum", "sum.dim_IntList",
    "linalg_vector_norm", "linalg_matrix_norm", "linalg_matrix_norm.str_ord",
)  # fmt: skip
#: ops that CUDA autocast casts to the autocast dtype and CPU autocast leaves alone
_CUDA_LOWER = (
    "convolution", "_convolution", "addmv", "addr", "mv", "dot", "vdot", "einsum",
    "chain_matmul", "linalg_multi_dot", "tensordot", "bilinear", "lstm_cell", "gru_cell",
    "rnn_tanh_cell", "rnn_relu_cell",
)  # fmt: skip
#: ops that CUDA autocast runs in the widest floating dtype of their inputs
_CUDA_PROMOTE = ("addcdiv", "addcmul", "atan2", "cross", "index_put", "scatter_add")


def _eligible(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64


def _autocast_kernel(op: Any, policy: str) -> Callable[..., Any]:
    exclude = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)
    names = [a.name for a in op._schema.arguments]

    def kernel(*args: Any, **kwargs: Any) -> Any:
        with torch._C._ExcludeDispatchKeyGuard(exclude):
            if policy == "pass":
                return op(*args, **kwargs)
            if policy == "fp32_opt_dtype":
                if args and _eligible(args[0]):
                    i = names.index("dtype")
                    if i < len(args):
                        if args[i] is None:
                            args = (*args[:i], torch.float32, *args[i + 1 :])
                    elif kwargs.get("dtype") is None:
                        kwargs = {**kwargs, "dtype": torch.float32}
                return op(*args, **kwargs)
            floats = [t for t in tree_leaves((args, kwargs)) if _eligible(t)]
            if policy == "fp32":
                to = torch.float32
            elif policy == "lower":
                to = torch.get_autocast_dtype("cpu")
            else:  # promote
                to = (
                    functools.reduce(
                        torch.promote_types, [t.dtype for t in floats], floats[0].dtype
                    )
                    if floats
                    else None
                )
            if to is not None:
                args, kwargs = tree_map(lambda t: t.to(to) if _eligible(t) else t, (args, kwargs))
            return op(*args, **kwargs)

    return kernel


@contextlib.contextmanager
def cuda_autocast_on_cpu() -> Iterator[None]:
    """Make CPU autocast follow CUDA autocast's op lists while the context is open.

    CUDA and CPU autocast cast different ops: e.g. CPU autocast runs ``max_pool3d`` and 3D
    padding in float32 where CUDA runs them in the input dtype, and CUDA runs ``layer_norm``,
    ``group_norm``, ``softmax``, ``exp``, ``sum`` and upsampling in float32 where CPU autocast
    does not. Inside this context, ``torch.autocast("cpu", dtype=...)`` behaves like CUDA
    autocast for those ops (the aten ops with an autocast kernel for one device and not the
    other, torch 2.14): the AutocastCPU dispatch key gets Python kernels with CUDA's cast
    policy (pass-through, float32, float32 output dtype, lower precision, widest type). Ops
    with an autocast kernel on both devices (convolutions, matmuls, linear, the losses) already
    agree. Differences left: the lower-precision casts added here do not use autocast's weight
    cache, and ``norm`` casts to float32 instead of passing a dtype. Process-wide while open
    (every thread's CPU autocast sees it); not reentrant.
    """
    lib = torch.library.Library("aten", "IMPL")
    policies = (
        [(n, "pass") for n in _CUDA_PASS_THROUGH]
        + [(n, "fp32") for n in _CUDA_FP32]
        + [(n, "fp32_opt_dtype") for n in _CUDA_FP32_OPT_DTYPE]
        + [(n, "lower") for n in _CUDA_LOWER]
        + [(n, "promote") for n in _CUDA_PROMOTE]
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
            for name, policy in policies:
                base, _, overload = name.partition(".")
                packet = getattr(torch.ops.aten, base, None)
                op = getattr(packet, overload or "default", None) if packet is not None else None
                if op is None:
                    continue
                lib.impl(name, _autocast_kernel(op, policy), "AutocastCPU")
        yield
    finally:
        lib._destroy()


# --------------------------------------------------------------------------------------------
# the estimate


@dataclass
class StepMemoryEstimate:
    """Result of :func:`estimate_step_memory` (bytes)."""

    #: peak bytes of live device tensors over the measured step
    peak_bytes: int
    #: bytes live when the measured step starts (weights, optimizer state, input, target)
    start_bytes: int
    #: parameters (bytes, counted in ``start_bytes``)
    param_bytes: int
    #: peak bytes of host tensors (offloaded saved tensors), not in ``peak_bytes``
    host_peak_bytes: int
    #: phase and aten op at which the peak was reached
    peak_where: str
    #: (phase, op, live bytes) after every allocation, when asked for
    timeline: list[tuple[str, str, int]] | None = field(default=None, repr=False)


def _bce_loss(out: Any, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(out.float(), target)


def _offload_hooks(tracker: _StorageTracker) -> Callable[..., Any]:
    """Stand-in for ``torch.autograd.graph.save_on_cpu`` with device = CUDA, host = CPU."""

    def save_on_cpu(pin_memory: bool = False, device_type: str = "cuda") -> Any:
        def pack(t: torch.Tensor) -> torch.Tensor:
            with tracker.on_host():
                packed = torch.empty(t.size(), dtype=t.dtype, layout=t.layout)
            packed.copy_(t)
            return packed

        def unpack(packed: torch.Tensor) -> torch.Tensor:
            return packed.clone()  # the copy back to the device

        return torch.autograd.graph.saved_tensors_hooks(pack, unpack)

    return save_on_cpu


def estimate_step_memory(
    model_factory: Callable[[], torch.nn.Module],
    input_shape: Sequence[int],
    autocast_dtype: torch.dtype | None = None,
    device: str = "cuda",
    *,
    target_shape: Sequence[int] | None = None,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    optimizer_factory: Callable[[Any], torch.optim.Optimizer] | None = None,
    warmup_steps: int = 1,
    timeline: bool = False,
) -> StepMemoryEstimate:
    """Estimate the peak device memory of one training step, without a GPU and without compute.

    The step is the one of ``benchmarks/unet_memory.py``: ``optimizer.zero_grad(set_to_none=True)``;
    forward under ``torch.autocast`` when ``autocast_dtype`` is given; loss (default
    binary cross-entropy with logits of ``output.float()`` against a target of ones); backward;
    ``optimizer.step()`` (default Adam, lr 1e-3, the ``foreach`` implementation CUDA uses).
    ``warmup_steps`` steps run first (creating the optimizer state), then the peak is taken over
    the next step, as ``torch.cuda.reset_peak_memory_stats`` + ``max_memory_allocated`` would.

    Everything runs on fake tensors (:class:`~torch._subclasses.fake_tensor.FakeTensorMode`):
    every aten op computes the shape, dtype and strides of its outputs and allocates nothing,
    so a step that needs 50 GiB on a GPU takes seconds on a CPU. Fake ``"cuda"`` tensors can be
    created without a GPU and run a forward pass under CUDA autocast, but torch 2.14's autograd
    engine refuses to run a backward pass on them without a CUDA device ("hasPrimaryContext
    expects a valid device index"), so the step runs on fake CPU tensors; for
    ``device="cuda"``, CPU autocast is made to follow CUDA autocast's op lists
    (:func:`cuda_autocast_on_cpu`; e.g. ``max_pool3d`` stays in bf16 as on CUDA, where CPU
    autocast would run it in float32) and saved tensors offloaded with
    ``torch.autograd.graph.save_on_cpu`` are counted as host memory (their copies back in the
    backward pass as device memory).

    **What is counted**: every tensor storage an aten op creates, from its creation until its
    last reference goes (the autograd graph's saved tensors, gradients, the autocast weight
    cache, optimizer state and temporaries, the inputs, the weights), each rounded up to 512
    bytes for ``device="cuda"`` (the CUDA caching allocator's block size); the peak of their
    sum over the measured step.

    **What is not counted**, though ``torch.cuda.max_memory_allocated`` counts it: cuDNN and
    cuBLAS workspaces and other buffers that CUDA kernels allocate internally (a 3D
    convolution's workspace can be hundreds of MB); the allocator's rounding of a block that is
    not split (a request served from a cached block up to 1 MiB larger counts the whole block);
    tensors the CUDA kernels of an op create that its fake (meta) implementation does not (e.g.
    cuDNN batch norm's reserve space). Nor is anything outside ``max_memory_allocated``:
    allocator fragmentation and cached blocks (``memory_reserved``), the CUDA context (about
    0.5 GiB). So the estimate is a lower bound of the measured peak, close to it when
    activations dominate. Validated against ``max_memory_allocated`` of the 3D mini U-Net's
    step on an H100 (docs/models.md): within 0.3% without checkpointing, 7-8% low with
    checkpointing (about one full-resolution feature map), 23% low with offload alone.

    Fake tensors of the estimate's own: the model is built inside the fake mode; real tensors
    from outside (e.g. weights captured by the factory) are refused. CUDA emulation and the
    offload stand-in change process-wide state while the estimate runs: not thread-safe.

    Parameters
    ----------
    model_factory : callable
        Returns the model (built on the default device, CPU). Called inside the fake mode, so
        its weights are fake and cost nothing.
    input_shape : sequence of int
        Shape of the float32 input.
    autocast_dtype : torch.dtype, optional
        Run the forward pass under autocast to this dtype (e.g. ``torch.bfloat16``).
    device : {"cuda", "cpu"}
        ``"cuda"``: estimate a CUDA device (512-byte rounding, CUDA autocast rules, foreach
        Adam, offload to host). ``"cpu"``: the plain CPU step, no rounding.
    target_shape : sequence of int, optional
        Shape of the target (ones, float32), default the output's shape.
    loss_fn : callable, optional
        ``loss_fn(output, target) -> scalar``, default BCE with logits on ``output.float()``.
    optimizer_factory : callable, optional
        ``optimizer_factory(params) -> optimizer``, default Adam.
    warmup_steps : int
        Steps before the measured one (1: the benchmark's warm-up step).
    timeline : bool
        Keep ``(phase, op, live bytes)`` after every allocation of the measured step.

    Returns
    -------
    StepMemoryEstimate
        ``peak_bytes`` and the bytes at the start of the step, of the parameters, of host
        memory, and where the peak was reached.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    cuda = device == "cuda"
    tracker = _StorageTracker(round_to=CUDA_BLOCK_BYTES if cuda else 1, timeline=timeline)
    loss_fn = loss_fn or _bce_loss
    if optimizer_factory is None:

        def optimizer_factory(params: Any) -> torch.optim.Optimizer:
            return torch.optim.Adam(params, lr=1e-3, foreach=cuda)

    with contextlib.ExitStack() as stack:
        if cuda:
            stack.enter_context(cuda_autocast_on_cpu())
            stack.enter_context(
                mock.patch.object(torch.autograd.graph, "save_on_cpu", _offload_hooks(tracker))
            )
        stack.enter_context(FakeTensorMode(allow_non_fake_inputs=False))
        stack.enter_context(torch.device("cpu"))
        stack.enter_context(tracker)
        tracker.phase = "build"
        model = model_factory()
        model.train()
        param_bytes = sum(
            tracker._rounded(p.untyped_storage().nbytes()) for p in model.parameters()
        )
        opt = optimizer_factory(model.parameters())
        x = torch.randn(*input_shape)
        target: list[torch.Tensor] = [torch.ones(*target_shape)] if target_shape else []

        def step() -> None:
            tracker.phase = "zero_grad"
            opt.zero_grad(set_to_none=True)
            tracker.phase = "forward"
            with torch.autocast(
                "cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None
            ):
                out = model(x)
            tracker.phase = "loss"
            if not target:  # made once, in the first step, like the benchmark's target
                target.append(torch.ones(out.shape))
            loss = loss_fn(out, target[0])
            tracker.phase = "backward"
            loss.backward()
            tracker.phase = "optimizer"
            opt.step()

        for _ in range(warmup_steps):
            step()
        if tracker.timeline is not None:
            tracker.timeline.clear()
        tracker.phase = "start"
        tracker.reset_peak()
        start = tracker.current
        step()
        return StepMemoryEstimate(
            peak_bytes=tracker.peak,
            start_bytes=start,
            param_bytes=param_bytes,
            host_peak_bytes=tracker.host_peak,
            peak_where=tracker.peak_where,
            timeline=tracker.timeline,
        )


def estimate_step_peak_bytes(
    model_factory: Callable[[], torch.nn.Module],
    input_shape: Sequence[int],
    autocast_dtype: torch.dtype | None = None,
    device: str = "cuda",
    **kwargs: Any,
) -> int:
    """Estimated peak device bytes of one training step: :func:`estimate_step_memory`'s
    ``peak_bytes`` (see there for what is counted and what is not: cuDNN workspaces and
    allocator fragmentation are not)."""
    return estimate_step_memory(
        model_factory, input_shape, autocast_dtype, device, **kwargs
    ).peak_bytes
