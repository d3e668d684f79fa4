"""The model registry: one factory that builds every network of the zoo by name.

Family modules (``mini_unet``, ``densenet``, ...) register builders with :func:`register`;
:func:`create` checks the arguments against the builder's specification and calls it.
Family modules are imported the first time the registry is consulted, so importing
:mod:`sinotriage.models` stays cheap and never imports timm or MONAI by itself.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

#: the family modules whose import registers the zoo's models, in display order
FAMILY_MODULES: tuple[str, ...] = (
    "sinotriage.models.mini_unet",
    "sinotriage.models.densenet",
    "sinotriage.models.deit",
    "sinotriage.models.torchvision_models",
    "sinotriage.models.cnn_lstm",
    "sinotriage.models.slice_fusion",
    "sinotriage.models.radnet",
    "sinotriage.models.sino_cnn",
    "sinotriage.models.learned_fbp",
)

#: the input domains a model is meant for (documentation only; every model takes any tensor)
DOMAINS = frozenset({"sinogram", "image", "sinogram|image", "slice sequence", "descriptors"})


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"mini_unet"``.
    builder : callable
        ``builder(in_channels=, num_classes=, spatial_dims=, **kwargs) -> nn.Module``.
    spatial_dims : tuple of int
        The values of ``spatial_dims`` the model supports (2, 3 or both).
    domain : str
        The input domain it is meant for (one of :data:`DOMAINS`).
    input_shape : str
        The input layout, e.g. ``"(B, C, H, W)"``.
    output_shape : str
        The output layout, e.g. ``"(B, num_classes)"``.
    paper : str
        The paper (or papers) the model comes from.
    description : str
        One line for listings and the docs table.
    defaults : dict
        Options passed to the builder unless the caller gives them.
    """

    name: str
    builder: Callable[..., nn.Module]
    spatial_dims: tuple[int, ...]
    domain: str
    input_shape: str
    output_shape: str
    paper: str
    description: str
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}
_LOADED = False


def register(
    name: str,
    *,
    spatial_dims: tuple[int, ...],
    domain: str,
    input_shape: str,
    output_shape: str,
    paper: str,
    description: str,
    defaults: dict | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``name`` (a decorator).

    ``defaults`` are keyword arguments passed to the builder unless the caller overrides them
    (one builder can back several names, e.g. ``mini_unet`` and ``mini_unet_slim``).

    Raises
    ------
    ValueError
        If ``name`` is already registered, ``domain`` is unknown or ``spatial_dims`` is empty.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {domain!r}")
    if not spatial_dims or any(d not in (2, 3) for d in spatial_dims):
        raise ValueError(
            f"spatial_dims must be a non-empty tuple of 2 and/or 3, got {spatial_dims}"
        )

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            spatial_dims=tuple(spatial_dims),
            domain=domain,
            input_shape=input_shape,
            output_shape=output_shape,
            paper=paper,
            description=description,
            defaults=dict(defaults or {}),
        )
        return builder

    return decorator


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for module in FAMILY_MODULES:
        importlib.import_module(module)
    _LOADED = True


def available() -> list[str]:
    """The registered model names, in registration order."""
    _load()
    return list(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model.

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the registered names).
    """
    _load()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create(
    name: str,
    in_channels: int = 1,
    num_classes: int = 1,
    spatial_dims: int = 2,
    **kwargs,
) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    in_channels : int
        Input channels (1 for a sinogram or an HU image, 3 for three windows).
    num_classes : int
        Output logits per sample (1 for normal/abnormal, 6 for the RSNA labels).
    spatial_dims : int
        2 (one slice) or 3 (a stack of slices), where the model supports it.
    **kwargs
        Model-specific options (see each builder's docstring), e.g. ``checkpointing=True``,
        ``pretrained_path=...``, ``freeze_backbone=True``. Every model also takes
        ``window=``: a learnable window (:func:`sinotriage.models.learned_window.window_layer`:
        names, ``(level, width)`` pairs in HU, or a mapping of its arguments) in front of it;
        ``in_channels`` then counts the HU channels and the model sees ``in_channels * K``.

    Returns
    -------
    torch.nn.Module
        A plain module; ``model(x)`` returns logits (``radnet`` returns a
        :class:`~sinotriage.models.radnet.RadNetOutput` with ``.logits`` and ``.aux``).

    Raises
    ------
    ValueError
        Unknown name, unsupported ``spatial_dims`` or a non-positive channel/class count.
    TypeError
        An option the model does not accept (the message lists those it does).
    """
    s = spec(name)
    for arg, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{arg} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{arg} must be >= 1, got {value}")
    if spatial_dims not in s.spatial_dims:
        raise ValueError(
            f"model {name!r} supports spatial_dims in {list(s.spatial_dims)}, got {spatial_dims!r}"
        )
    params = inspect.signature(s.builder).parameters
    window = None if "window" in params else kwargs.pop("window", None)
    accepted = [p for p in params if p not in ("in_channels", "num_classes", "spatial_dims")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} got unexpected option(s) {unknown}; it accepts: {', '.join(accepted)}"
        )
    options = {**s.defaults, **kwargs}
    if window is not None:
        from sinotriage.models.learned_window import WindowedModel, window_layer

        layer = window_layer(window)
        net = s.builder(in_channels=in_channels * layer.k, num_classes=num_classes,
                        spatial_dims=spatial_dims, **options)
        return WindowedModel(layer, net)
    return s.builder(
        in_channels=in_channels, num_classes=num_classes, spatial_dims=spatial_dims, **options
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
