"""Lowering passes, installed as ``ddq_edge.converters``.

Home of the converters from a DDQ PyTorch model to the integer graph and from float models
to ONNX / TFLite baselines.
"""
