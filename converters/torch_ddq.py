"""Lower a DDQ model (``ddq_edge.quantize`` output, traced with torch.fx) to the integer graph.

Every tensor the graph stores is on exactly one grid, the one a DDQ quantizer learned for it
(see ``ddq_edge.quant.placement``). The lowering walks the traced graph once, keeping for each
node either an integer tensor on its grid or a *pending* integer op (conv, fully connected,
add, global average pool) whose output grid is not known yet: the quantizer that reads it
decides the requantization, and ReLU/ReLU6 in between fold into its clamp.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from ddq_edge.ir import Graph, Op, QuantParams, Tensor
from ddq_edge.quant import DDQConv2d, DDQLinear, DDQQuantizer
from ddq_edge.quant.budget import unwrap
from ddq_edge.quant.layers import bias_codes
from ddq_edge.reference.ops import act_range

INT32_MAX = 2**31 - 1


class ConversionError(ValueError):
    """The model cannot be lowered; the message names the op and the node."""


@dataclass
class IntValue:
    """An integer tensor in the graph, on the grid ``qp``."""

    tensor: str
    qp: QuantParams


@dataclass
class FloatInput:
    tensor: str


@dataclass
class Pending:
    """An integer op waiting for its output grid; ``emit(out_name, qp, act_min, act_max)``."""

    emit: Callable[[str, QuantParams, int, int], None]
    shape: tuple[int, ...]
    name: str
    relu: bool = False
    relu6: bool = False
    reshape_to: tuple[int, ...] | None = None


def grid_of(quantizer: DDQQuantizer) -> QuantParams:
    grid = quantizer.integer_grid()
    return QuantParams(scale=grid.scale.numpy(), zero_point=grid.zero_point, bits=grid.bits,
                       qmin=grid.qmin, qmax=grid.qmax)


def _same_grid(a: QuantParams, b: QuantParams) -> bool:
    return (a.zero_point == b.zero_point and a.qmin == b.qmin and a.qmax == b.qmax
            and np.array_equal(a.scale, b.scale))


@dataclass
class Lowering:
    gm: fx.GraphModule
    graph: Graph = field(default_factory=Graph)
    values: dict[fx.Node, Any] = field(default_factory=dict)
    layer_bits: dict[str, list[int]] = field(default_factory=dict)  # layer -> [w, a] bits

    # -- helpers --------------------------------------------------------------------------
    def fail(self, node: fx.Node, what: str) -> ConversionError:
        where = node.meta.get("nn_module_stack")
        module = f" (in {list(where)[-1]})" if where else ""
        return ConversionError(f"node {node.name!r}{module}: {what}")

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            raise self.fail(node, "no shape recorded (is it a tensor?)")
        return (1, *tuple(meta.shape)[1:])

    def new_tensor(self, name: str, shape, dtype: str, qp: QuantParams | None = None,
                   data: np.ndarray | None = None) -> str:
        name = name.removeprefix("tensor_quantizers_").replace("_input_quantizer", "_input")
        base, n = name, 1
        while name in self.graph.tensors:
            n += 1
            name = f"{base}_{n}"
        self.graph.add_tensor(Tensor(name, tuple(shape), dtype, qp, data))
        return name

    def emit(self, kind: str, name: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        self.graph.add_op(Op(kind, name, inputs, outputs, attrs))

    def on_grid(self, node: fx.Node, value: Any, qp: QuantParams, name: str) -> IntValue:
        """``value`` as an integer tensor on grid ``qp`` (quantize, materialize or requantize)."""
        if isinstance(value, FloatInput):
            out = self.new_tensor(name, self.graph.tensors[value.tensor].shape, "uint8", qp)
            self.emit("quantize", f"quantize_{name}", [value.tensor], [out])
            return IntValue(out, qp)
        if isinstance(value, Pending):
            lo, hi = act_range(qp, relu=value.relu, relu6=value.relu6)
            shape = value.shape
            out = self.new_tensor(name if value.reshape_to is None else f"{name}_4d", shape, "uint8", qp)
            value.emit(out, qp, lo, hi)
            if value.reshape_to is not None:
                flat = self.new_tensor(name, value.reshape_to, "uint8", qp)
                self.emit("reshape", f"reshape_{name}", [out], [flat], shape=list(value.reshape_to))
                out = flat
            return IntValue(out, qp)
        if isinstance(value, IntValue):
            if _same_grid(value.qp, qp):
                return value
            out = self.new_tensor(name, self.graph.tensors[value.tensor].shape, "uint8", qp)
            self.emit("requantize", f"requantize_{name}", [value.tensor], [out],
                      act_min=qp.qmin, act_max=qp.qmax)
            return IntValue(out, qp)
        raise self.fail(node, f"cannot quantize a {type(value).__name__}")

    def int_input(self, node: fx.Node, arg: Any) -> IntValue:
        value = self.values.get(arg)
        if not isinstance(value, IntValue):
            raise self.fail(node, f"input {getattr(arg, 'name', arg)!r} is not an integer tensor "
                                  "(every input of an integer op must be quantized)")
        return value

    # -- layers -----------------------------------------------------------------------------
    def lower_layer(self, node: fx.Node, layer: DDQConv2d | DDQLinear) -> Pending:
        if layer.quantize_input:
            x = self.on_grid(node, self.values[node.args[0]], grid_of(layer.input_quantizer),
                             f"{node.name}_input")
        else:  # quantized upstream by a quantizer shared with the tensor's other readers
            x = self.int_input(node, node.args[0])
        w_qp = grid_of(layer.weight_quantizer)
        with torch.no_grad():
            codes = layer.weight_quantizer.quantize_to_int(layer.weight.detach().float())
        codes = codes.numpy().astype(np.int8)
        w_name = self.new_tensor(f"{node.name}_weight", codes.shape, "int8", w_qp, codes)
        if layer.bias is not None:
            bias = bias_codes(layer.bias, layer.input_quantizer.step(), layer.weight_quantizer.step())
            bias = bias.double().numpy()
        else:
            bias = np.zeros(codes.shape[0])
        fan_in = int(np.prod(codes.shape[1:]))
        x_span = max(x.qp.zero_point - x.qp.qmin, x.qp.qmax - x.qp.zero_point)
        bound = fan_in * (2 ** (w_qp.bits - 1) - 1) * x_span + float(np.abs(bias).max())
        if bound > INT32_MAX:
            raise self.fail(node, f"the int32 accumulator could overflow: {fan_in} products of "
                                  f"{w_qp.bits}-bit weights and {x.qp.bits}-bit activations plus "
                                  f"bias reach {bound:.3g} > 2^31-1")
        b_name = self.new_tensor(f"{node.name}_bias", codes.shape[:1], "int32", None,
                                 bias.astype(np.int32))
        self.layer_bits[node.target] = [w_qp.bits, x.qp.bits]
        out_shape = self.shape(node)
        if isinstance(layer, nn.Conv2d):
            if layer.dilation != (1, 1):
                raise self.fail(node, f"conv2d with dilation {layer.dilation} is not supported (1 only)")
            if isinstance(layer.padding, str):
                raise self.fail(node, f"conv2d padding={layer.padding!r}: give explicit integers")
            ph, pw = layer.padding
            attrs = {"stride": list(layer.stride), "padding": [ph, pw, ph, pw], "dilation": [1, 1],
                     "groups": layer.groups}
            kind = "conv2d"
        else:
            attrs, kind = {}, "fully_connected"

        def emit(out: str, qp: QuantParams, lo: int, hi: int) -> None:
            self.emit(kind, node.name, [x.tensor, w_name, b_name], [out], act_min=lo, act_max=hi, **attrs)

        return Pending(emit, out_shape, node.name)

    # -- the walk ---------------------------------------------------------------------------
    def run(self, example: torch.Tensor) -> Graph:
        ShapeProp(self.gm).propagate(example)
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                name = self.new_tensor("input", self.shape(node), "float32")
                self.graph.inputs.append(name)
                self.values[node] = FloatInput(name)
            elif node.op == "output":
                self.lower_output(node)
            elif node.op == "call_module":
                self.values[node] = self.lower_module(node, self.gm.get_submodule(node.target))
            elif node.op in ("call_function", "call_method"):
                self.values[node] = self.lower_function(node)
            else:
                raise self.fail(node, f"unsupported graph node kind {node.op!r}")
        self.graph.validate()
        return self.graph

    def lower_output(self, node: fx.Node) -> None:
        result = node.args[0]
        if isinstance(result, (tuple, list)):
            raise self.fail(node, "models with several outputs are not supported yet")
        value = self.values[result]
        if not isinstance(value, IntValue):
            raise self.fail(node, "the model output is not quantized (quantize() places an "
                                  "8-bit quantizer on it; was the model built by quantize()?)")
        out = self.new_tensor("output", self.graph.tensors[value.tensor].shape, "float32")
        self.emit("dequantize", "dequantize_output", [value.tensor], [out])
        self.graph.outputs.append(out)

    def lower_module(self, node: fx.Node, module: nn.Module) -> Any:
        if isinstance(module, DDQQuantizer):
            return self.on_grid(node, self.values[node.args[0]], grid_of(module), node.name)
        if isinstance(module, (DDQConv2d, DDQLinear)):
            return self.lower_layer(node, module)
        value = self.values.get(node.args[0]) if node.args else None
        if isinstance(module, (nn.ReLU, nn.ReLU6)) or (
                isinstance(module, nn.Hardtanh) and (module.min_val, module.max_val) == (0.0, 6.0)):
            return self.activation(node, value, relu6=not isinstance(module, nn.ReLU))
        if isinstance(module, (nn.Identity, nn.Dropout)):
            return value
        if isinstance(module, nn.Flatten):
            return self.reshape(node, value)
        if isinstance(module, nn.MaxPool2d):
            return self.max_pool(node, module.kernel_size, module.stride, module.padding,
                                 module.dilation, module.ceil_mode)
        if isinstance(module, nn.AdaptiveAvgPool2d):
            size = module.output_size
            if size not in (1, (1, 1)):
                raise self.fail(node, f"AdaptiveAvgPool2d to {size} is not supported (1 only)")
            return self.global_pool(node, keep_dims=True)
        if isinstance(module, nn.AvgPool2d):
            return self.avg_pool(node, module)
        raise self.fail(node, f"unsupported module {type(module).__name__} ({node.target})")

    def lower_function(self, node: fx.Node) -> Any:
        target = node.target
        value = self.values.get(node.args[0]) if node.args else None
        if target in (F.relu, torch.relu, "relu"):
            return self.activation(node, value, relu6=False)
        if target is F.relu6:
            return self.activation(node, value, relu6=True)
        if target in (F.dropout, "contiguous"):
            return value
        if target in (torch.flatten, torch.reshape, "flatten", "view", "reshape"):
            return self.reshape(node, value)
        if target in (operator.add, torch.add, "add"):
            return self.add(node)
        if target in ("mean", torch.mean):
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            rank = len(self.shape(node.args[0]))
            if sorted(d % rank for d in (dims if isinstance(dims, (tuple, list)) else [dims])) == [2, 3]:
                return self.global_pool(node, keep_dims=bool(node.kwargs.get("keepdim", False)))
            raise self.fail(node, f"mean over dims {dims} is not supported (spatial mean only)")
        if target is F.max_pool2d:
            args = list(node.args[1:]) + [None] * 4
            kernel = args[0]
            stride = node.kwargs.get("stride", args[1]) or kernel
            return self.max_pool(node, kernel, stride, node.kwargs.get("padding", args[2] or 0), 1, False)
        if target is F.adaptive_avg_pool2d and node.args[1] in (1, (1, 1)):
            return self.global_pool(node, keep_dims=True)
        name = getattr(target, "__name__", str(target))
        raise self.fail(node, f"unsupported op {name!r}")

    # -- op lowerings -----------------------------------------------------------------------
    def activation(self, node: fx.Node, value: Any, relu6: bool) -> Any:
        if isinstance(value, Pending):
            value.relu = True
            value.relu6 = value.relu6 or relu6
            return value
        if isinstance(value, IntValue):
            lo, hi = act_range(value.qp, relu=True, relu6=relu6)
            if (lo, hi) == (value.qp.qmin, value.qp.qmax):
                return value  # the grid already excludes what the activation would clip
            out = self.new_tensor(node.name, self.graph.tensors[value.tensor].shape, "uint8", value.qp)
            self.emit("requantize", node.name, [value.tensor], [out], act_min=lo, act_max=hi)
            return IntValue(out, value.qp)
        raise self.fail(node, "activation applied to a float tensor")

    def reshape(self, node: fx.Node, value: Any) -> Any:
        shape = self.shape(node)
        if isinstance(value, Pending):
            value.reshape_to = shape
            return value
        if isinstance(value, IntValue):
            out = self.new_tensor(node.name, shape, "uint8", value.qp)
            self.emit("reshape", node.name, [value.tensor], [out], shape=list(shape))
            return IntValue(out, value.qp)
        raise self.fail(node, "reshape of a float tensor")

    def add(self, node: fx.Node) -> Pending:
        if len(node.args) != 2 or node.kwargs:
            raise self.fail(node, "add takes exactly two tensors")
        a, b = (self.int_input(node, arg) for arg in node.args)

        def emit(out: str, qp: QuantParams, lo: int, hi: int) -> None:
            self.emit("add", node.name, [a.tensor, b.tensor], [out], act_min=lo, act_max=hi)

        return Pending(emit, self.shape(node), node.name)

    def global_pool(self, node: fx.Node, keep_dims: bool) -> Pending:
        x = self.int_input(node, node.args[0])
        n, c = self.graph.tensors[x.tensor].shape[:2]

        def emit(out: str, qp: QuantParams, lo: int, hi: int) -> None:
            self.emit("global_avg_pool", node.name, [x.tensor], [out], act_min=lo, act_max=hi)

        return Pending(emit, (1, c, 1, 1), node.name, reshape_to=None if keep_dims else (1, c))

    def max_pool(self, node: fx.Node, kernel, stride, padding, dilation, ceil_mode) -> IntValue:
        x = self.int_input(node, node.args[0])
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
        if pair(dilation) != [1, 1] or ceil_mode:
            raise self.fail(node, "max_pool with dilation or ceil_mode is not supported")
        ph, pw = pair(padding)
        out = self.new_tensor(node.name, self.shape(node), "uint8", x.qp)
        self.emit("max_pool", node.name, [x.tensor], [out], kernel=pair(kernel),
                  stride=pair(stride or kernel), padding=[ph, pw, ph, pw])
        return IntValue(out, x.qp)

    def avg_pool(self, node: fx.Node, module: nn.AvgPool2d) -> IntValue:
        x = self.int_input(node, node.args[0])
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
        ph, pw = pair(module.padding)
        if module.ceil_mode or module.divisor_override or ((ph or pw) and module.count_include_pad):
            raise self.fail(node, "AvgPool2d needs ceil_mode=False, no divisor_override, and "
                                  "count_include_pad=False when padded")
        out = self.new_tensor(node.name, self.shape(node), "uint8", x.qp)
        self.emit("avg_pool", node.name, [x.tensor], [out], kernel=pair(module.kernel_size),
                  stride=pair(module.stride or module.kernel_size), padding=[ph, pw, ph, pw],
                  act_min=x.qp.qmin, act_max=x.qp.qmax)
        return IntValue(out, x.qp)


def lower(model: nn.Module, example_input: torch.Tensor) -> tuple[Graph, dict[str, list[int]]]:
    """The integer graph of a DDQ model and its per-layer [weight, activation] bits.

    ``example_input`` fixes the input shape (its batch size does not matter).
    """
    model = unwrap(model)
    if getattr(model, "ddq_config", None) is None:
        raise ConversionError(f"{type(model).__name__} is not a DDQ model: call ddq_edge.quantize first")
    if getattr(model, "ddq_mode", "") != "graph" or not isinstance(model, fx.GraphModule):
        raise ConversionError("conversion needs a model torch.fx could trace when it was quantized "
                              f"(this one was quantized in mode: {getattr(model, 'ddq_mode', '?')})")
    was_training = model.training
    model.eval()
    try:
        lowering = Lowering(model)
        graph = lowering.run(example_input[:1])
    finally:
        model.train(was_training)
    return graph, lowering.layer_bits
