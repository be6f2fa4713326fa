"""Build models by architecture name, recording how so checkpoints can rebuild them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ddq_edge.models.mobilenet_v1 import mobilenet_v1
from ddq_edge.models.mobilenet_v2 import mobilenet_v2
from ddq_edge.models.resnet import resnet

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v1": mobilenet_v1,
    "resnet": resnet,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build architecture `name` with `kwargs`; the result's ``ddq_arch`` records both.

    ``ddq_arch`` is ``{"name": name, "kwargs": kwargs}``, enough for
    ``build_model(arch["name"], **arch["kwargs"])`` to rebuild the model.
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {name!r}; known architectures: {', '.join(ARCHITECTURES)}"
        )
    factory = ARCHITECTURES[name]
    accepted = inspect.signature(factory).parameters
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise TypeError(
            f"{name} got unknown keyword argument(s) {', '.join(unknown)}; "
            f"expected some of: {', '.join(accepted)}"
        )
    model = factory(**kwargs)
    model.ddq_arch = {"name": name, "kwargs": dict(kwargs)}
    return model
