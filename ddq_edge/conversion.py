"""``ddq_edge.convert``: a DDQ model or checkpoint in, one edge bundle (.ddqb) out."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .bundle import write_bundle
from .checkpoint import load_checkpoint
from .ir import Graph
from .quant import bit_report
from .quant.budget import unwrap


def _input_shape(model: nn.Module, example_input: torch.Tensor | None) -> torch.Tensor:
    if example_input is not None:
        return example_input
    task = getattr(model, "ddq_task", None) or {}
    shape = task.get("input_shape")
    if not shape:
        raise ValueError("convert needs example_input= (the model carries no input shape)")
    return torch.zeros(1, *shape)


def to_graph(model: nn.Module, example_input: torch.Tensor | None = None,
             source: str = "") -> Graph:
    """Lower a DDQ model to the integer graph, with the metadata a deployment needs."""
    from ddq_edge.converters.torch_ddq import lower

    model = unwrap(model)
    example = _input_shape(model, example_input)
    graph, layers = lower(model, example)
    task: dict[str, Any] = getattr(model, "ddq_task", None) or {}
    report = bit_report(model)
    graph.metadata = {
        "source": source or type(model).__name__,
        "architecture": getattr(model, "ddq_arch", None),
        "input_shape": list(example.shape[1:]),
        "layout": "NCHW",
        "preprocessing": {"mean": task.get("mean"), "std": task.get("std"),
                          "input_range": [0.0, 1.0]},
        "labels": task.get("labels"),
        "task": task.get("name"),
        "bits": layers,  # layer -> [weight bits, activation bits]
        "budget": {k: report[k] for k in ("average_weight_bits", "average_act_bits",
                                          "effective_bops_bits", "target_bits",
                                          "target_act_bits", "budget", "budget_met")},
        "converter_version": __version__,
    }
    return graph


def convert(model_or_checkpoint: nn.Module | str | Path, out_path: str | Path,
            example_input: torch.Tensor | None = None) -> Path:
    """Write the edge bundle of a DDQ model (or of the checkpoint at that path).

    The input shape comes from ``example_input`` or, for checkpoints written by
    ``ddq-edge train``, from the task stored with the model. Nothing is written if the
    model cannot be converted.
    """
    source = ""
    model = model_or_checkpoint
    if isinstance(model_or_checkpoint, (str, Path)):
        source = Path(model_or_checkpoint).name
        model = load_checkpoint(model_or_checkpoint)
    graph = to_graph(model, example_input, source)
    return write_bundle(graph, out_path)
