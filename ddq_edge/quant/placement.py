"""Where activations are quantized: one quantizer per tensor the integer graph stores.

In deployment every tensor between integer ops is stored once, on one grid, and all its
consumers read that. Training must see the same values, so on a traced model:

* a tensor read by a DDQ layer is quantized by that layer's input quantizer; if other
  ops read it too (a residual skip, a second branch), the quantizer runs once in the
  graph and every consumer reads its output (later DDQ consumers share the quantizer);
* a tensor stored by the integer graph but read by no DDQ layer (a projection output
  entering an add, the logits) gets a fixed 8-bit quantizer with a learned range;
* ops that deployment fuses into their producer (ReLU, ReLU6, dropout, flatten, views)
  do not store their input, so nothing is inserted there.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn import functional as F

from .config import DDQConfig
from .layers import DDQ_LAYERS
from .quantizer import DDQQuantizer

# Consumers that deployment fuses into the producer, so they never read a stored tensor.
FUSED_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Flatten)
FUSED_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardtanh, F.dropout, torch.flatten,
                   torch.reshape}
FUSED_METHODS = {"relu", "relu_", "view", "reshape", "flatten", "size", "dim", "contiguous"}
# Producers whose output stays on their input's grid (max, ReLU, layout changes).
GRID_KEEPING_MODULES = (nn.MaxPool2d, nn.ReLU, nn.Identity, nn.Dropout, nn.Flatten)
GRID_KEEPING_FUNCTIONS = {F.max_pool2d, F.relu, torch.relu, torch.flatten, torch.reshape,
                          F.dropout, operator.getitem}
GRID_KEEPING_METHODS = {"relu", "view", "reshape", "flatten", "contiguous"}

TENSOR_QUANTIZERS = "tensor_quantizers"


def tensor_quantizer_config() -> DDQConfig:
    """Fixed 8-bit, learned-range quantizers for tensors no DDQ layer reads."""
    return DDQConfig(max_bits=8, min_bits=8, target_bits=8.0, learn_bits=False)


class DDQTracer(fx.Tracer):
    """Traces through user modules but keeps DDQ layers and quantizers as single calls."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, DDQ_LAYERS + (DDQQuantizer,)) or super().is_leaf_module(m, qualname)


@dataclass
class PlacementReport:
    shared_inputs: dict[str, list[str]] = field(default_factory=dict)  # owner -> sharing layers
    tensor_quantizers: list[str] = field(default_factory=list)


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _is_fused(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(_module(gm, node), FUSED_MODULES)
    if node.op == "call_function":
        return node.target in FUSED_FUNCTIONS
    return node.op == "call_method" and node.target in FUSED_METHODS


def _keeps_grid(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(_module(gm, node), GRID_KEEPING_MODULES)
    if node.op == "call_function":
        return node.target in GRID_KEEPING_FUNCTIONS
    return node.op == "call_method" and node.target in GRID_KEEPING_METHODS


def _is_ddq_layer(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(_module(gm, node), DDQ_LAYERS)


def _insert_after(gm: fx.GraphModule, node: fx.Node, target: str) -> fx.Node:
    with gm.graph.inserting_after(node):
        quant = gm.graph.call_module(target, (node,))
    node.replace_all_uses_with(quant, delete_user_cb=lambda user: user is not quant)
    return quant


def place_activation_quantizers(gm: fx.GraphModule) -> PlacementReport:
    """Rewrite ``gm`` so every stored tensor is quantized exactly once (see module doc)."""
    report = PlacementReport()
    on_grid: set[fx.Node] = set()
    store = nn.ModuleDict()
    gm.add_module(TENSOR_QUANTIZERS, store)
    for node in list(gm.graph.nodes):
        if node.op in ("output", "get_attr"):
            continue
        readers = [u for u in node.users if not _is_fused(gm, u)]
        if not readers:
            continue
        ddq_readers = [u for u in node.users if _is_ddq_layer(gm, u)]
        if ddq_readers:
            if len(node.users) > 1:
                owner = _module(gm, ddq_readers[0])
                quant = _insert_after(gm, node, f"{ddq_readers[0].target}.input_quantizer")
                on_grid.add(quant)
                for reader in ddq_readers:
                    layer = _module(gm, reader)
                    layer.quantize_input = False
                    layer.input_quantizer = owner.input_quantizer
                report.shared_inputs[ddq_readers[0].target] = [r.target for r in ddq_readers[1:]]
            continue
        inputs = node.all_input_nodes
        if _keeps_grid(gm, node) and inputs and inputs[0] in on_grid:
            on_grid.add(node)
            continue
        name = node.name.replace(".", "_")
        store[name] = DDQQuantizer("activation", tensor_quantizer_config())
        on_grid.add(_insert_after(gm, node, f"{TENSOR_QUANTIZERS}.{name}"))
        report.tensor_quantizers.append(name)
    if not len(store):
        delattr(gm, TENSOR_QUANTIZERS)
    gm.graph.lint()
    gm.recompile()
    return report
