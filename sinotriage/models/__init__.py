"""The model zoo: sinogram-domain and image-domain classifiers from the head-CT literature.

Every model is a plain :class:`torch.nn.Module` built by name::

    from sinotriage import models
    models.available()                    # the registered names
    net = models.create("mini_unet", in_channels=1, num_classes=1, spatial_dims=3,
                        checkpointing=True)
    logits = net(torch.randn(1, 1, 8, 64, 48))      # (B, num_classes)

``create`` returns a module whose forward gives one logits tensor, except ``radnet``, which
returns a :class:`RadNetOutput` named tuple ``(logits, aux)``. Weights are never downloaded:
``pretrained_path=`` loads a local safetensors or ``torch.save`` file (``weights_only=True``).
See ``docs/models.md`` for the table of models, papers, shapes and parameter counts.
"""

from __future__ import annotations

from sinotriage.models._registry import (
    ModelSpec,
    available,
    count_parameters,
    create,
    register,
    spec,
)
from sinotriage.models._weights import freeze_backbone, load_state_dict_file, load_weights, unfreeze

__all__ = [
    "ModelSpec",
    "RadNetOutput",
    "available",
    "count_parameters",
    "create",
    "freeze_backbone",
    "load_state_dict_file",
    "load_weights",
    "register",
    "spec",
    "unfreeze",
]


def __getattr__(name: str):
    if name == "RadNetOutput":
        from sinotriage.models.radnet import RadNetOutput

        return RadNetOutput
    raise AttributeError(f"module 'sinotriage.models' has no attribute {name!r}")
