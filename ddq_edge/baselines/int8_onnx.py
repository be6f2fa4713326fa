"""The int8 ONNX baseline: onnxruntime's static post-training quantization of the float ONNX.

``quantize_static`` in the QDQ format, per-channel symmetric int8 weights, uint8 activations,
``reduce_range=True`` (7-bit weights: x86 CPUs without VNNI saturate the u8·s8 pair sums of
``vpmaddubsw`` otherwise), MinMax calibration on the given float32 NCHW batch.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ddq_edge.files import atomic_write_bytes

__all__ = ["quantize_int8_onnx"]


def quantize_int8_onnx(float_path, out_path, calibration: np.ndarray, input_name: str,
                       chunk: int = 1) -> Path:
    """Write the QDQ int8 model of the float ONNX at ``float_path`` to ``out_path``, calibrated
    on ``calibration`` (float32, NCHW, fed ``chunk`` samples at a time)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    x = np.asarray(calibration, np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: x[i:i + chunk]} for i in range(0, len(x), chunk)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="ddq-int8-onnx-") as tmp:
        tmp_out = Path(tmp) / "model-int8.onnx"
        quantize_static(str(float_path), str(tmp_out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        return atomic_write_bytes(Path(out_path), tmp_out.read_bytes())
