"""``quantize(model, config)``: turn a float nn.Module into a DDQ model."""
from __future__ import annotations

import copy
import warnings
from typing import Any, Sequence

import torch
from torch import fx, nn

from .config import DDQConfig
from .layers import DDQ_LAYERS, DDQConv2d, DDQLinear
from .placement import DDQTracer, place_activation_quantizers

def _parent(root: nn.Module, qualname: str) -> tuple[nn.Module, str]:
    *path, name = qualname.split(".")
    parent = root.get_submodule(".".join(path)) if path else root
    return parent, name


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d | nn.Linear, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> None:
    """Fold an eval-mode BatchNorm into the preceding conv/linear weights and bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else \
        1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale if bn.affine else -bn.running_mean * scale
    conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
    if conv.bias is None:
        conv.bias = nn.Parameter(shift.clone())
    else:
        conv.bias.copy_(conv.bias * scale + shift)


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return type(module) is nn.Conv2d and module.padding_mode == "zeros"
    return type(module) is nn.Linear


def _to_ddq(module: nn.Module, config: DDQConfig) -> nn.Module:
    cls = DDQConv2d if isinstance(module, nn.Conv2d) else DDQLinear
    return cls.from_float(module, config)


def _fold_bn_in_graph(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = gm.get_submodule(node.target)
        if not isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm1d)):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        layer = gm.get_submodule(src.target)
        if not _supported(layer) or layer.weight.shape[0] != bn.num_features:
            continue
        fold_batchnorm(layer, bn)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        parent, name = _parent(gm, node.target)
        setattr(parent, name, nn.Identity())
    gm.graph.eliminate_dead_code()
    gm.recompile()


def _fold_bn_eager(model: nn.Module) -> None:
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, first), (bn_name, second) in zip(children, children[1:]):
            if _supported(first) and isinstance(second, (nn.BatchNorm2d, nn.BatchNorm1d)):
                fold_batchnorm(first, second)
                setattr(module, bn_name, nn.Identity())


def _swap_layers(model: nn.Module, config: DDQConfig) -> list[str]:
    """Replace every supported layer in place; returns the names of skipped ones."""
    skipped = []
    for qualname, module in list(model.named_modules()):
        if not qualname or isinstance(module, DDQ_LAYERS):
            continue
        if _supported(module):
            parent, name = _parent(model, qualname)
            new = _to_ddq(module, config)
            new.ddq_name = qualname
            setattr(parent, name, new)
        elif any(True for _ in module.parameters(recurse=False)):
            skipped.append(f"{qualname} ({type(module).__name__})")
    return skipped


def quantize(model: nn.Module, config: DDQConfig | None = None,
             example_inputs: torch.Tensor | Sequence[Any] | None = None,
             inplace: bool = False) -> nn.Module:
    """Return a DDQ version of ``model``: every Conv2d and Linear learns its bits.

    The model is traced with torch.fx when possible so that each tensor the integer graph
    will store is quantized exactly once (see ``placement``); a model fx cannot trace is
    quantized module by module instead (each layer quantizes its own input). BatchNorm that
    directly follows a conv/linear is folded into it first (``config.fold_bn``), so pass a
    trained float model. ``example_inputs`` (a batch) initialises ranges and element counts;
    without it they are set on the first forward. Layers left in float are named in a
    warning and in ``model.ddq_skipped``.
    """
    config = config or DDQConfig()
    config.validate()
    if not inplace:
        model = copy.deepcopy(model)
    arch = getattr(model, "ddq_arch", None)
    training = model.training
    model.eval()
    try:
        gm = fx.GraphModule(model, DDQTracer().trace(model), class_name=type(model).__name__)
    except Exception as error:  # fx cannot trace data-dependent Python: fall back to eager
        gm, trace_error = None, f"{type(error).__name__}: {error}"
    if gm is not None:
        if config.fold_bn:
            _fold_bn_in_graph(gm)
        skipped = _swap_layers(gm, config)
        placement = place_activation_quantizers(gm)
        model, mode = gm, "graph"
    else:
        if config.fold_bn:
            _fold_bn_eager(model)
        skipped = _swap_layers(model, config)
        placement, mode = None, f"eager (torch.fx could not trace: {trace_error})"
    model.ddq_config = config
    model.ddq_arch = arch
    model.ddq_placement = placement
    model.ddq_mode = mode
    model.ddq_skipped = skipped
    if skipped:
        warnings.warn("ddq_edge.quantize left these layers in float: " + ", ".join(skipped),
                      stacklevel=2)
    if not any(isinstance(m, DDQ_LAYERS) for m in model.modules()):
        raise ValueError(f"ddq_edge.quantize: {type(model).__name__} has no Conv2d or Linear "
                         "layer to quantize")
    if example_inputs is not None:
        inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        with torch.no_grad():
            model(*inputs)
    model.train(training)
    return model
