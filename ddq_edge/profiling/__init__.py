"""Profiling: the runtime against float and int8 baselines, natively and on emulated devices."""
