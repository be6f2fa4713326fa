"""Write a :class:`~ddq_edge.baselines.float_graph.FloatGraph` as a float32 or an int8 ``.tflite``.

The flatbuffer is built with the TFLite schema module that the ``ai_edge_litert`` wheel ships
(``ai_edge_litert.schema_py_generated``; ``tflite_runtime``'s if that is what is installed) and
``flatbuffers``; no TensorFlow.

Layout: TFLite models are NHWC. The model input is float32 ``[1, H, W, C]`` (shape signature
``[-1, H, W, C]``: resize the batch with ``Interpreter.resize_tensor_input``); 4-D outputs are
NHWC, 2-D outputs ``(N, features)``. The harness transposes NCHW → NHWC before feeding
(:func:`ddq_edge.baselines.to_engine_input`) and back for 4-D outputs
(:func:`ddq_edge.baselines.from_engine_output`).

Op mapping (XNNPACK-delegable in float and in int8, except the two corner cases noted):

* conv: CONV_2D with OHWI filters; depthwise (groups = C) DEPTHWISE_CONV_2D with 1HWO filters
  and ``depth_multiplier = O / C``; grouped convolutions (1 < groups < C) become a CONV_2D with
  block-diagonal (zero-filled) dense filters, same result, more MACs. Padding is SAME when the
  graph's [t, l, b, r] is exactly TensorFlow's SAME padding, VALID when zero, and otherwise an
  explicit PAD op before a VALID conv (e.g. PyTorch's symmetric padding on stride-2 convs);
* fully connected: FULLY_CONNECTED; add: ADD; global average pool: MEAN over H, W (keep dims);
* avg_pool (exclude-pad average): float AVERAGE_POOL_2D (SAME averages the valid positions
  only, like the integer graph); a non-SAME padding is PAD + VALID AVERAGE_POOL_2D + MUL by the
  constant per-position factor ``kh·kw / count``. int8: XNNPACK does not delegate an int8
  AVERAGE_POOL_2D, so it is a DEPTHWISE_CONV_2D with weights ``1/(kh·kw)`` on the zero-padded
  input (times the same MUL factor when there is padding);
* max_pool: MAX_POOL_2D (SAME / VALID); a non-SAME padding is a zero PAD before a VALID pool,
  on the input shifted by ADDs to be ≥ 0 when it can be negative (``maxpool(pad0(x − L)) + L``,
  L a lower bound: the clamp bounds in float, the grid's lowest value in int8, where the shift
  moves no code). Without a known bound (float, ``clamp="relu"``) it falls back to PADV2 with
  the lowest float, which XNNPACK does not delegate;
* reshape: RESHAPE when NHWC storage order already is the NCHW reshape's order (e.g. a
  (N, C, 1, 1) → (N, C) flatten), otherwise TRANSPOSE to NCHW, RESHAPE, TRANSPOSE back;
* clamps: a fused RELU / RELU6 / RELU_N1_TO_1 when the clamp is exactly one of those, else the
  fused part plus MINIMUM / MAXIMUM with a scalar constant (float; < 1 % of the MobileNetV2
  time under XNNPACK). In int8
  the output's quantization range implements a clamp by saturating (to within one step); only a
  clamp interval that excludes 0 needs int8 MINIMUM / MAXIMUM, which XNNPACK does not delegate.

int8 (TFLite's int8 spec): activations int8 with a zero point, from (min, max) ranges (extended
to contain 0: ``scale = (max − min)/255``, ``zp = round(−128 − min/scale)``); conv, depthwise
and FC weights symmetric per-channel int8 (``s_w[o] = max|w[o]|/127``, zero point 0), biases
int32 at ``s_in · s_w[o]``; max pools, PAD, RESHAPE, TRANSPOSE, MINIMUM/MAXIMUM keep their
input's parameters. The weights are re-quantized from the dequantized float weights, as a
post-training quantization of the float model would (not copied from the DDQ codes). The float
input is converted by a QUANTIZE first and the output by a DEQUANTIZE last.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ddq_edge.files import atomic_write_bytes

from .float_graph import FloatGraph, FloatOp
from ..names import fresh_name

__all__ = ["build_tflite", "load_schema", "write_tflite"]

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
BUFFER_ALIGNMENT = 16
MIN_RANGE = 1e-6  # an activation range narrower than this (a constant tensor) is widened


def load_schema():
    """The TFLite flatbuffer schema module shipped with the installed LiteRT runtime."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tflite_runtime import schema_py_generated as schema  # type: ignore
        except ImportError as error:
            raise ImportError("writing .tflite needs the TFLite schema module of ai-edge-litert "
                              "(pip install 'ai-edge-litert>=2.1' flatbuffers)") from error
    return schema


def act_quant(lo: float, hi: float) -> tuple[float, int]:
    """int8 (scale, zero point) of a real range, extended to contain 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < MIN_RANGE:
        hi = lo + MIN_RANGE
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return scale, zp


def _same_pads(size: int, extent: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _storage_order(shape_nchw: tuple[int, ...]) -> np.ndarray:
    """Logical (NCHW row-major) element indices in the order an NHWC tensor stores them."""
    idx = np.arange(int(np.prod(shape_nchw))).reshape(shape_nchw)
    return (idx.transpose(0, 2, 3, 1) if idx.ndim == 4 else idx).ravel()


def _nhwc(shape: tuple[int, ...]) -> list[int]:
    return [shape[0], shape[2], shape[3], shape[1]] if len(shape) == 4 else list(shape)


class _Value:
    """A TFLite tensor holding a float-graph value: index, NHWC shape, int8 params or None."""

    def __init__(self, index: int, shape: list[int], quant: tuple[float, int] | None):
        self.index, self.shape, self.quant = index, shape, quant


class _Writer:
    def __init__(self, fg: FloatGraph, int8: bool, ranges: dict[str, tuple[float, float]] | None):
        self.s = load_schema()
        self.fg = fg
        self.int8 = int8
        self.ranges = ranges or {}
        if int8:
            missing = [n for n in [fg.input] + [op.output for op in fg.ops] if n not in self.ranges]
            if missing:
                raise ValueError(f"int8 .tflite needs a calibrated range for every tensor; "
                                 f"missing {missing[:5]}")
        self.buffers: list[Any] = [self._buffer_t(None)]
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.opcodes: dict[tuple[int, int], int] = {}
        self.names: set[str] = set()
        self.values: dict[str, _Value] = {}
        self.int8_of: dict[str, _Value] = {}  # float graph input -> its QUANTIZE'd tensor
        self.clamps = {op.output: op.clamp for op in fg.ops}

    # ------------------------------------------------------------------ flatbuffer pieces
    def _buffer_t(self, data: bytes | None):
        s = self.s

        class AlignedBuffer(s.BufferT):  # data 16-byte aligned in the file (mmap-friendly)
            def Pack(self, builder):
                off = None
                if self.data is not None:
                    raw = bytes(self.data)
                    builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                    builder.head -= len(raw)
                    builder.Bytes[builder.head:builder.head + len(raw)] = raw
                    off = builder.EndVector()
                s.BufferStart(builder)
                if off is not None:
                    s.BufferAddData(builder, off)
                return s.BufferEnd(builder)

        b = AlignedBuffer()
        b.data = data
        return b

    def fresh(self, base: str) -> str:
        return fresh_name(self.names, base)

    def tensor(self, name: str, shape, ttype: int, data: np.ndarray | None = None,
               quant: tuple | None = None, signature=None) -> int:
        t = self.s.TensorT()
        t.name = self.fresh(name)
        t.shape = [int(d) for d in shape]
        t.type = ttype
        t.buffer = 0
        if signature is not None:
            t.shapeSignature = [int(d) for d in signature]
        if data is not None:
            self.buffers.append(self._buffer_t(np.ascontiguousarray(data).tobytes()))
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = self.s.QuantizationParametersT()
            scale, zp = quant[0], quant[1]
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zp)]
            q.quantizedDimension = int(quant[2]) if len(quant) > 2 else 0
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const_i32(self, name: str, values) -> int:
        v = np.asarray(values, np.int32)
        return self.tensor(name, v.shape, self.s.TensorType.INT32, v)

    def op(self, code_name: str, inputs: list[int], outputs: list[int], options=None,
           version: int = 1) -> None:
        s = self.s
        code = getattr(s.BuiltinOperator, code_name)
        key = (code, version)
        if key not in self.opcodes:
            self.opcodes[key] = len(self.opcodes)
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[key]
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)

    def v(self, float_version: int, int8_version: int) -> int:
        return int8_version if self.int8 else float_version

    # ------------------------------------------------------------------ activations
    @property
    def act_type(self) -> int:
        return self.s.TensorType.INT8 if self.int8 else self.s.TensorType.FLOAT32

    def quant_of(self, name: str) -> tuple[float, int] | None:
        if not self.int8:
            return None
        lo, hi = self.ranges[name]
        if max(hi, 0.0) - min(lo, 0.0) < MIN_RANGE:
            # constant (e.g. all clamped to 0) over the calibration data: any grid is exact for
            # it; take the clamp's span, or [-1, 1], so requantization multipliers stay sane
            c_lo, c_hi = self.clamps.get(name, (None, None))
            lo, hi = (c_lo if c_lo is not None else -1.0), (c_hi if c_hi is not None else 1.0)
            if max(hi, 0.0) - min(lo, 0.0) < MIN_RANGE:
                lo, hi = -1.0, 1.0
        return act_quant(lo, hi)

    def new_value(self, name: str, shape: list[int], quant) -> _Value:
        """A fresh activation tensor (the graph output gets a ``_int8`` suffix in int8 mode:
        the float DEQUANTIZE result takes its name)."""
        base = f"{name}_int8" if (self.int8 and name == self.fg.output) else name
        idx = self.tensor(base, shape, self.act_type, quant=(quant if quant is None else
                                                             (quant[0], quant[1])))
        return _Value(idx, shape, quant)

    def scratch(self, like: _Value, name: str, shape: list[int]) -> _Value:
        """An intermediate tensor on ``like``'s int8 grid (PAD, TRANSPOSE, pre-clamp, ...)."""
        idx = self.tensor(name, shape, self.act_type, quant=like.quant)
        return _Value(idx, shape, like.quant)

    def value(self, name: str) -> _Value:
        """The (int8 in int8 mode) tensor of float-graph value ``name``."""
        val = self.values[name]
        if self.int8 and val.quant is None:  # the float graph input: QUANTIZE it once
            if name not in self.int8_of:
                q = self.quant_of(name)
                out = self.scratch(_Value(0, val.shape, q), f"{name}_int8", val.shape)
                self.op("QUANTIZE", [val.index], [out.index], self.s.QuantizeOptionsT(), 2)
                self.int8_of[name] = out
            return self.int8_of[name]
        return val

    # ------------------------------------------------------------------ clamps
    def fused(self, clamp) -> tuple[int, tuple]:
        """(fused activation, the rest of the clamp) for ``clamp``."""
        A = self.s.ActivationFunctionType
        lo, hi = clamp
        if lo == 0.0 and hi is None:
            return A.RELU, (None, None)
        if lo == 0.0 and hi == 6.0:
            return A.RELU6, (None, None)
        if lo == -1.0 and hi == 1.0:
            return A.RELU_N1_TO_1, (None, None)
        if lo == 0.0:
            return A.RELU, (None, hi)
        return A.NONE, (lo, hi)

    def residual(self, rest, quant) -> tuple:
        """The part of a clamp the int8 output range does not already implement."""
        lo, hi = rest
        if not self.int8:
            return rest
        scale, zp = quant  # within one step of the bound: below the int8 resolution
        rlo, rhi = (-128 - zp) * scale, (127 - zp) * scale
        return (lo if lo is not None and rlo < lo - scale else None,
                hi if hi is not None and rhi > hi + scale else None)

    def scalar_const(self, name: str, value: float, quant) -> int:
        if self.int8:
            scale, zp = quant
            code = int(np.clip(np.round(value / scale) + zp, -128, 127))
            return self.tensor(name, [], self.s.TensorType.INT8, np.array(code, np.int8), (scale, zp))
        return self.tensor(name, [], self.s.TensorType.FLOAT32, np.array(value, np.float32))

    def min_max(self, x: _Value, out: _Value, rest, name: str) -> None:
        """MAXIMUM / MINIMUM with scalar constants from ``x`` to ``out`` (same grid)."""
        lo, hi = rest
        steps = [(k, b) for k, b in (("MAXIMUM", lo), ("MINIMUM", hi)) if b is not None]
        cur = x
        for i, (kind, bound) in enumerate(steps):
            dst = out if i == len(steps) - 1 else self.scratch(x, f"{name}_{kind.lower()}", x.shape)
            c = self.scalar_const(f"{name}_{kind.lower()}_bound", bound, x.quant)
            self.op(kind, [cur.index, c], [dst.index], self.s.MaximumMinimumOptionsT(), self.v(1, 2))
            cur = dst

    def emit_with_clamp(self, op: FloatOp, shape: list[int], quant, emit) -> None:
        """``emit(out_index, fused_activation)`` writes the op; the clamp is fused where TFLite
        can and finished with MINIMUM / MAXIMUM where it cannot."""
        act, rest = self.fused(op.clamp)
        rest = self.residual(rest, quant)
        out = self.new_value(op.output, shape, quant)
        if rest == (None, None):
            emit(out.index, act)
        else:
            pre = self.scratch(out, f"{op.output}_preclamp", shape)
            emit(pre.index, act)
            self.min_max(pre, out, rest, op.output)
        self.values[op.output] = out

    # ------------------------------------------------------------------ padding
    def padding(self, x: _Value, kernel, stride, dilation, pads, name: str, pad_value: str = "zero"):
        """(input value, TFLite padding) realising [t, l, b, r]; an explicit PAD when needed."""
        P = self.s.Padding
        t, l, b, r = pads
        _, h, w, c = x.shape
        eh = dilation[0] * (kernel[0] - 1) + 1
        ew = dilation[1] * (kernel[1] - 1) + 1
        if (t, l, b, r) == (0, 0, 0, 0):
            return x, P.VALID
        if (t, b) == _same_pads(h, eh, stride[0]) and (l, r) == _same_pads(w, ew, stride[1]):
            return x, P.SAME
        if pad_value == "none":
            return None, P.VALID
        shape = [x.shape[0], h + t + b, w + l + r, c]
        out = self.scratch(x, f"{name}_pad", shape)
        paddings = self.const_i32(f"{name}_paddings", [[0, 0], [t, b], [l, r], [0, 0]])
        if pad_value == "zero":
            self.op("PAD", [x.index, paddings], [out.index], self.s.PadOptionsT(), self.v(1, 2))
        else:  # the lowest representable value: padded positions never win a max
            low = -128 if self.int8 else float(np.finfo(np.float32).min)
            if self.int8:
                cval = self.tensor(f"{name}_padvalue", [], self.s.TensorType.INT8,
                                   np.array(low, np.int8), x.quant)
            else:
                cval = self.tensor(f"{name}_padvalue", [], self.s.TensorType.FLOAT32,
                                   np.array(low, np.float32))
            self.op("PADV2", [x.index, paddings, cval], [out.index], self.s.PadV2OptionsT(),
                    self.v(1, 2))
        return out, P.VALID

    # ------------------------------------------------------------------ ops
    def conv(self, op: FloatOp) -> None:
        s, a = self.s, op.attrs
        x = self.value(op.inputs[0])
        w = op.weight
        o, ig, kh, kw = w.shape
        c = x.shape[3]
        groups = int(a["groups"])
        depthwise = groups > 1 and groups == c and ig == 1
        if groups > 1 and not depthwise:  # grouped: block-diagonal dense filters
            dense = np.zeros((o, c, kh, kw), np.float32)
            per_group = o // groups
            for oc in range(o):
                g = oc // per_group
                dense[oc, g * ig:(g + 1) * ig] = w[oc]
            w = dense
        x, pad = self.padding(x, (kh, kw), a["stride"], a["dilation"], a["padding"], op.name)
        filt = w.transpose(1, 2, 3, 0) if depthwise else w.transpose(0, 2, 3, 1)
        qdim = 3 if depthwise else 0
        out_shape = _nhwc(self.fg.shapes[op.output])
        quant = self.quant_of(op.output)
        wi, bi = self.weights(op.name, filt, op.bias, qdim, x.quant)

        def emit(out_index: int, act: int) -> None:
            if depthwise:
                opt = s.DepthwiseConv2DOptionsT()
                opt.depthMultiplier = o // c
                code, version = "DEPTHWISE_CONV_2D", self.v(2, 3)
            else:
                opt = s.Conv2DOptionsT()
                code, version = "CONV_2D", self.v(1, 3)
            opt.padding = pad
            opt.strideH, opt.strideW = (int(v) for v in a["stride"])
            opt.dilationHFactor, opt.dilationWFactor = (int(v) for v in a["dilation"])
            opt.fusedActivationFunction = act
            self.op(code, [x.index, wi, bi], [out_index], opt, version)

        self.emit_with_clamp(op, out_shape, quant, emit)

    def weights(self, name: str, filt: np.ndarray, bias: np.ndarray, qdim: int,
                in_quant) -> tuple[int, int]:
        s = self.s
        o = filt.shape[qdim]
        if not self.int8:
            wi = self.tensor(f"{name}_weight", filt.shape, s.TensorType.FLOAT32, filt.astype(np.float32))
            bi = self.tensor(f"{name}_bias", [o], s.TensorType.FLOAT32, bias.astype(np.float32))
            return wi, bi
        axes = tuple(i for i in range(filt.ndim) if i != qdim)
        m = np.abs(filt).max(axis=axes).astype(np.float64)
        sw = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)
        shape = [1] * filt.ndim
        shape[qdim] = -1
        codes = np.clip(np.round(filt / sw.reshape(shape)), -127, 127).astype(np.int8)
        sb = (np.float32(in_quant[0]) * sw).astype(np.float32)
        bcodes = np.clip(np.round(bias.astype(np.float64) / sb.astype(np.float64)),
                         INT32_MIN, INT32_MAX).astype(np.int32)
        zeros = np.zeros(o, np.int64)
        wi = self.tensor(f"{name}_weight", filt.shape, s.TensorType.INT8, codes, (sw, zeros, qdim))
        bi = self.tensor(f"{name}_bias", [o], s.TensorType.INT32, bcodes, (sb, zeros, 0))
        return wi, bi

    def fc(self, op: FloatOp) -> None:
        s = self.s
        x = self.value(op.inputs[0])
        wi, bi = self.weights(op.name, op.weight, op.bias, 0, x.quant)

        def emit(out_index: int, act: int) -> None:
            opt = s.FullyConnectedOptionsT()
            opt.fusedActivationFunction = act
            self.op("FULLY_CONNECTED", [x.index, wi, bi], [out_index], opt, self.v(1, 4))

        self.emit_with_clamp(op, _nhwc(self.fg.shapes[op.output]), self.quant_of(op.output), emit)

    def add(self, op: FloatOp) -> None:
        a, b = (self.value(n) for n in op.inputs)

        def emit(out_index: int, act: int) -> None:
            opt = self.s.AddOptionsT()
            opt.fusedActivationFunction = act
            self.op("ADD", [a.index, b.index], [out_index], opt, self.v(1, 2))

        self.emit_with_clamp(op, a.shape, self.quant_of(op.output), emit)

    def pool(self, op: FloatOp) -> None:
        if op.kind == "avg_pool":
            self.avg_pool(op)
        else:
            self.max_pool(op)

    def pool_op(self, code: str, x: _Value, out_index: int, a: dict, pad: int, act: int) -> None:
        opt = self.s.Pool2DOptionsT()
        opt.padding = pad
        opt.strideH, opt.strideW = (int(v) for v in a["stride"])
        opt.filterHeight, opt.filterWidth = (int(v) for v in a["kernel"])
        opt.fusedActivationFunction = act
        self.op(code, [x.index], [out_index], opt, self.v(1, 2))

    def avg_pool(self, op: FloatOp) -> None:
        """Exclude-pad average pooling. float: AVERAGE_POOL_2D (SAME / VALID), or PAD + VALID
        AVERAGE_POOL_2D + MUL by ``kh·kw / count``. int8 (XNNPACK does not delegate an int8
        AVERAGE_POOL_2D): a DEPTHWISE_CONV_2D with weights ``1/(kh·kw)`` on the zero-padded
        input, times the same MUL factor when there is padding."""
        s, a = self.s, op.attrs
        x = self.value(op.inputs[0])
        kh, kw = a["kernel"]
        sh, sw = a["stride"]
        pads = a["padding"]
        out_shape = _nhwc(self.fg.shapes[op.output])
        xp, pad = self.padding(x, (kh, kw), (sh, sw), (1, 1), pads, op.name)
        if not self.int8 and xp is x:  # SAME averages the valid positions only
            self.emit_with_clamp(op, out_shape, None,
                                 lambda o, act: self.pool_op("AVERAGE_POOL_2D", xp, o, a, pad, act))
            return
        c = x.shape[3]
        padded = any(int(p) for p in pads)

        def zero_padded_mean(out_index: int, act: int) -> None:
            if not self.int8:
                self.pool_op("AVERAGE_POOL_2D", xp, out_index, a, pad, act)
                return
            filt = np.full((1, kh, kw, c), 1.0 / (kh * kw), np.float32)
            wi, bi = self.weights(f"{op.name}_mean", filt, np.zeros(c, np.float32), 3, xp.quant)
            opt = s.DepthwiseConv2DOptionsT()
            opt.depthMultiplier = 1
            opt.padding = pad
            opt.strideH, opt.strideW = int(sh), int(sw)
            opt.dilationHFactor = opt.dilationWFactor = 1
            opt.fusedActivationFunction = act
            self.op("DEPTHWISE_CONV_2D", [xp.index, wi, bi], [out_index], opt, 3)

        if not padded:
            self.emit_with_clamp(op, out_shape, self.quant_of(op.output), zero_padded_mean)
            return
        t, l, b, r = (int(p) for p in pads)
        _, h, w, _ = x.shape
        ones = np.pad(np.ones((h, w)), ((t, b), (l, r)))
        oh, ow = out_shape[1], out_shape[2]
        count = np.array([[ones[i * sh:i * sh + kh, j * sw:j * sw + kw].sum() for j in range(ow)]
                          for i in range(oh)])
        factor = (kh * kw / count).astype(np.float32).reshape(1, oh, ow, 1)
        # the zero-padded mean lies between the input's values and 0: the input's grid fits it
        mean = self.scratch(x, f"{op.output}_zeropad_mean", out_shape)
        zero_padded_mean(mean.index, s.ActivationFunctionType.NONE)
        if self.int8:
            fs = float(np.float32(factor.max() / 127.0))
            fcodes = np.clip(np.round(factor / fs), -127, 127).astype(np.int8)
            fi = self.tensor(f"{op.output}_count_factor", factor.shape, s.TensorType.INT8, fcodes, (fs, 0))
        else:
            fi = self.tensor(f"{op.output}_count_factor", factor.shape, s.TensorType.FLOAT32, factor)

        def mul_into(out_index: int, act: int) -> None:
            opt = s.MulOptionsT()
            opt.fusedActivationFunction = act
            self.op("MUL", [mean.index, fi], [out_index], opt, self.v(1, 2))

        self.emit_with_clamp(op, out_shape, self.quant_of(op.output), mul_into)

    def max_pool(self, op: FloatOp) -> None:
        """MAX_POOL_2D (SAME / VALID; int8 keeps the input's grid). An explicit padding is a zero
        PAD before a VALID pool, on the input shifted to be ≥ 0 when it can be negative:
        ``maxpool(pad0(x − L)) + L`` with L a lower bound of x (float: the clamp bounds; int8: the
        lowest value of the grid, where the shift moves no code). Without a known bound (float
        graphs with clamp="relu") the padding falls back to PADV2 with the lowest float, which
        XNNPACK does not delegate."""
        s, a = self.s, op.attrs
        x = self.value(op.inputs[0])
        out_shape = _nhwc(self.fg.shapes[op.output])
        kernel, stride, pads = a["kernel"], a["stride"], a["padding"]
        xp, pad = self.padding(x, kernel, stride, (1, 1), pads, op.name, pad_value="none")
        if xp is not None:  # no explicit padding needed
            self.emit_with_clamp(op, out_shape, x.quant,
                                 lambda o, act: self.pool_op("MAX_POOL_2D", xp, o, a, pad, act))
            return
        if self.int8:
            scale, zp = x.quant
            low = (-128 - zp) * scale
        else:
            low = self.fg.bounds.get(op.inputs[0], (None, None))[0]
        if low is not None and low >= 0.0:
            xp, pad = self.padding(x, kernel, stride, (1, 1), pads, op.name)
            self.emit_with_clamp(op, out_shape, x.quant,
                                 lambda o, act: self.pool_op("MAX_POOL_2D", xp, o, a, pad, act))
            return
        if low is None:
            xp, pad = self.padding(x, kernel, stride, (1, 1), pads, op.name, pad_value="lowest")
            self.emit_with_clamp(op, out_shape, x.quant,
                                 lambda o, act: self.pool_op("MAX_POOL_2D", xp, o, a, pad, act))
            return
        shifted_q = None if not self.int8 else (x.quant[0], -128)
        shifted = _Value(self.tensor(f"{op.output}_shifted", x.shape, self.act_type,
                                     quant=shifted_q), x.shape, shifted_q)
        self.add_const(x, -low, shifted.index, f"{op.output}_shift")
        xp, pad = self.padding(shifted, kernel, stride, (1, 1), pads, op.name)
        pooled = self.scratch(shifted, f"{op.output}_pooled", out_shape)
        self.pool_op("MAX_POOL_2D", xp, pooled.index, a, pad, s.ActivationFunctionType.NONE)
        self.emit_with_clamp(op, out_shape, x.quant,
                             lambda o, act: self.add_const(pooled, low, o, f"{op.output}_unshift", act))

    def add_const(self, x: _Value, value: float, out_index: int, name: str, act: int = 0) -> None:
        """ADD of a scalar constant (int8: on ``x``'s scale, exactly representable)."""
        s = self.s
        if self.int8:
            scale = x.quant[0]
            n = int(round(value / scale))  # value is a whole number of steps
            zp = int(np.clip(-n, -128, 127))
            code = n + zp
            c = self.tensor(f"{name}_value", [], s.TensorType.INT8, np.array(code, np.int8), (scale, zp))
        else:
            c = self.tensor(f"{name}_value", [], s.TensorType.FLOAT32, np.array(value, np.float32))
        opt = s.AddOptionsT()
        opt.fusedActivationFunction = act
        self.op("ADD", [x.index, c], [out_index], opt, self.v(1, 2))

    def global_avg_pool(self, op: FloatOp) -> None:
        x = self.value(op.inputs[0])
        axes = self.const_i32(f"{op.name}_axes", [1, 2])
        out_shape = _nhwc(self.fg.shapes[op.output])

        def emit(out_index: int, act: int) -> None:  # MEAN has no fused activation
            opt = self.s.ReducerOptionsT()
            opt.keepDims = True
            self.op("MEAN", [x.index, axes], [out_index], opt, self.v(1, 2))

        self.unfused(op, out_shape, self.quant_of(op.output), emit)

    def unfused(self, op: FloatOp, shape: list[int], quant, emit) -> None:
        """An op without a fused activation: its clamp entirely as separate ops."""
        A = self.s.ActivationFunctionType
        rest = self.residual(op.clamp, quant)
        out = self.new_value(op.output, shape, quant)
        if rest == (None, None):
            emit(out.index, A.NONE)
        else:
            pre = self.scratch(out, f"{op.output}_preclamp", shape)
            emit(pre.index, A.NONE)
            self.standalone_clamp(pre, out, rest, op.output)
        self.values[op.output] = out

    def standalone_clamp(self, x: _Value, out: _Value, clamp, name: str) -> None:
        """Clamp ``x`` into ``out`` (same grid): a RELU / RELU6 / RELU_N1_TO_1 op when the clamp
        is exactly that, MAXIMUM / MINIMUM otherwise."""
        lo, hi = clamp
        kind = {(0.0, None): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}.get((lo, hi))
        if kind is not None:
            self.op(kind, [x.index], [out.index], None, self.v(1, 2))
        else:
            self.min_max(x, out, clamp, name)

    def reshape(self, op: FloatOp) -> None:
        s = self.s
        x = self.value(op.inputs[0])
        in_nchw = self.fg.shapes[op.inputs[0]]
        out_nchw = self.fg.shapes[op.output]
        out_shape = _nhwc(out_nchw)

        def reshape_op(src: _Value, dst_index: int, target: list[int]) -> None:
            new_shape = [-1] + [int(d) for d in target[1:]]
            shape_t = self.const_i32(f"{op.name}_shape", new_shape)
            opt = s.ReshapeOptionsT()
            opt.newShape = new_shape
            self.op("RESHAPE", [src.index, shape_t], [dst_index], opt, 1)

        def transpose(src: _Value, perm: list[int], name: str, shape: list[int]) -> _Value:
            dst = self.scratch(src, name, shape)
            self.op("TRANSPOSE", [src.index, self.const_i32(f"{name}_perm", perm)], [dst.index],
                    s.TransposeOptionsT(), self.v(1, 2))
            return dst

        out = self.new_value(op.output, out_shape, x.quant)
        if np.array_equal(_storage_order(in_nchw), _storage_order(out_nchw)):
            reshape_op(x, out.index, out_shape)
        else:
            src = x
            if len(in_nchw) == 4:
                src = transpose(x, [0, 3, 1, 2], f"{op.output}_nchw_in", list(in_nchw))
            if len(out_nchw) == 4:
                mid = self.scratch(x, f"{op.output}_nchw", list(out_nchw))
                reshape_op(src, mid.index, list(out_nchw))
                self.op("TRANSPOSE", [mid.index, self.const_i32(f"{op.output}_perm", [0, 2, 3, 1])],
                        [out.index], s.TransposeOptionsT(), self.v(1, 2))
            else:
                reshape_op(src, out.index, list(out_nchw))
        self.values[op.output] = out

    def clip(self, op: FloatOp) -> None:
        src = self.values[op.inputs[0]]
        shape = src.shape
        if not self.int8:
            out = self.new_value(op.output, shape, None)
            self.standalone_clamp(src, out, op.clamp, op.output)
            self.values[op.output] = out
            return
        quant = self.quant_of(op.output)
        rest = self.residual(op.clamp, quant)
        if src.quant is not None and tuple(src.quant) == tuple(quant):
            if rest == (None, None):  # the grid already implements the clamp: nothing to do
                self.values[op.output] = src
                return
            out = self.new_value(op.output, shape, quant)
            self.standalone_clamp(src, out, rest, op.output)
            self.values[op.output] = out
            return
        out = self.new_value(op.output, shape, quant)
        if src.quant is None:  # the float input: QUANTIZE saturates onto the clamped range
            mid = out if rest == (None, None) else self.scratch(out, f"{op.output}_preclamp", shape)
            self.op("QUANTIZE", [src.index], [mid.index], self.s.QuantizeOptionsT(), 2)
        else:  # an int8 → int8 requantization onto the clamped range
            mid = out if rest == (None, None) else self.scratch(out, f"{op.output}_preclamp", shape)
            self.op("QUANTIZE", [src.index], [mid.index], self.s.QuantizeOptionsT(), 2)
        if rest != (None, None):
            self.standalone_clamp(mid, out, rest, op.output)
        self.values[op.output] = out

    # ------------------------------------------------------------------ the model
    def build(self, description: str) -> bytes:
        import flatbuffers

        s, fg = self.s, self.fg
        in_shape = _nhwc(fg.shapes[fg.input])
        inp = self.tensor(fg.input, in_shape, s.TensorType.FLOAT32,
                          signature=[-1] + in_shape[1:])
        self.values[fg.input] = _Value(inp, in_shape, None)
        handlers = {"conv": self.conv, "fc": self.fc, "add": self.add, "avg_pool": self.pool,
                    "max_pool": self.pool, "global_avg_pool": self.global_avg_pool,
                    "reshape": self.reshape, "clip": self.clip}
        for op in fg.ops:
            if op.kind not in handlers:
                raise ValueError(f"op {op.name!r}: no TFLite mapping for {op.kind!r}")
            handlers[op.kind](op)
        out = self.values[fg.output]
        if self.int8:
            f_out = self.tensor(fg.output, out.shape, s.TensorType.FLOAT32)
            self.op("DEQUANTIZE", [out.index], [f_out], s.DequantizeOptionsT(), 2)
            out_index = f_out
        else:
            out_index = out.index

        sub = s.SubGraphT()
        sub.tensors = self.tensors
        sub.inputs = [inp]
        sub.outputs = [out_index]
        sub.operators = self.operators
        sub.name = "main"
        model = s.ModelT()
        model.version = 3
        model.description = description
        model.subgraphs = [sub]
        model.buffers = self.buffers
        codes = []
        for (code, version), _ in sorted(self.opcodes.items(), key=lambda kv: kv[1]):
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)  # PLACEHOLDER_FOR_GREATER_OP_CODES = 127
            oc.version = version
            codes.append(oc)
        model.operatorCodes = codes
        size = sum(len(b.data) for b in self.buffers if b.data is not None)
        builder = flatbuffers.Builder(size + (1 << 20))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def build_tflite(fg: FloatGraph, int8: bool = False,
                 ranges: dict[str, tuple[float, float]] | None = None) -> bytes:
    """The ``.tflite`` flatbuffer of ``fg``: float32, or int8 with activation ``ranges``
    ((min, max) per float-graph tensor, e.g. from
    :func:`ddq_edge.baselines.float_onnx.activation_ranges`)."""
    kind = "int8" if int8 else "float32"
    return _Writer(fg, int8, ranges).build(f"ddq_edge baseline ({kind}, clamp={fg.clamp_policy})")


def write_tflite(fg: FloatGraph, path, int8: bool = False, ranges=None) -> Path:
    return atomic_write_bytes(Path(path), build_tflite(fg, int8, ranges))
