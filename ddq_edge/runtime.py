"""The C runtime from Python: ``ddq_edge.Runtime(path, threads=1).run(x)``.

One call runs the whole graph in C (``ddq_edge._runtime``, built from ``runtime/`` by
``pip install``) with the GIL released; outputs are bit-identical to
:func:`ddq_edge.reference.run` for every bundle the runtime accepts.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bundle import BundleError

__all__ = ["Runtime", "RuntimeLoadError", "OpTiming", "cpu_features"]

# ddq_status codes (runtime/include/ddq/ddq.h)
_IO, _FORMAT, _VERSION, _GRAPH, _UNSUPPORTED, _ARGUMENT = 1, 2, 3, 4, 5, 6


class RuntimeLoadError(ValueError):
    """The runtime cannot run this bundle: the graph is invalid or uses what it does not implement."""


def _extension():
    try:
        from . import _runtime
    except ImportError as error:  # pragma: no cover - only without a built extension
        raise ImportError("ddq_edge._runtime is not built; reinstall with `pip install -e .` "
                          "(needs a C compiler and cmake)") from error
    return _runtime


def _translate(error: Exception) -> Exception:
    message, status = error.args
    if status == _IO:
        return OSError(message)
    if status in (_FORMAT, _VERSION):
        return BundleError(message)
    if status == _ARGUMENT:
        return ValueError(message)
    return RuntimeLoadError(message)


def cpu_features() -> str:
    """The CPU features the runtime's kernel dispatch sees (e.g. ``"sse4.1 avx2"``)."""
    return _extension().cpu_features()


@dataclass(frozen=True)
class OpTiming:
    name: str
    kind: str
    seconds: float


class Runtime:
    """A loaded ``.ddqb`` bundle with a session (arena and ``threads`` worker threads).

    ``kernels`` forces a kernel set (``"neon"`` on aarch64, ``"generic"``, ``"reference"``); by
    default the runtime picks the best one for this CPU, or the one named by the ``DDQ_KERNELS``
    environment variable. One Runtime runs one inference at a time; use one per Python thread.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1, kernels: str | None = None) -> None:
        ext = _extension()
        try:
            self._impl = ext.Runtime(os.fspath(path), int(threads), kernels)
        except ext.LoadError as error:
            raise _translate(error) from None
        self._info = self._impl.info()
        self.path = os.fspath(path)

    # -- running -----------------------------------------------------------------------------
    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW input (with or without the batch dimension) → float32 output (N, ...)."""
        x = np.asarray(x)
        if x.dtype != np.float32:
            raise TypeError(f"input: expected float32, got {x.dtype}")
        expected = self.input_shape
        if x.ndim == len(expected) - 1:
            x = x[None]
        if x.ndim != len(expected) or x.shape[1:] != expected[1:] or x.shape[0] < 1:
            raise ValueError(f"input: expected shape (N, {', '.join(map(str, expected[1:]))}), got {x.shape}")
        x = np.ascontiguousarray(x)
        out = np.empty((x.shape[0],) + self.output_shape[1:], np.float32)
        self._impl.run_into(x, x.shape[0], out)
        return out

    __call__ = run

    # -- what it holds -----------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._info["input_shape"]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._info["output_shape"]

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self._info["metadata_json"])

    @property
    def arena_bytes(self) -> int:
        """Bytes of the activation arena, allocated once when the Runtime is created."""
        return self._info["arena_bytes"]

    @property
    def liveness_bound(self) -> int:
        """The most activation bytes alive at any one op: the least any arena could be."""
        return self._info["liveness_bound"]

    @property
    def kernels(self) -> str:
        return self._info["kernels"]

    @property
    def threads(self) -> int:
        return self._info["threads"]

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def op_timings(self) -> list[OpTiming]:
        """Each op's wall time in the last :meth:`run` (summed over the batch)."""
        ns = self._impl.op_nanoseconds()
        return [OpTiming(name, kind, t * 1e-9) for (name, kind), t in zip(self._info["ops"], ns)]

    def memory_plan(self) -> list[tuple[int, int, int, int, int]]:
        """(tensor index, arena offset, bytes, first op, last op) for every tensor in the arena."""
        return self._impl.memory_plan()

    def __repr__(self) -> str:
        return (f"Runtime({self.path!r}, threads={self.threads}, kernels={self.kernels!r}, "
                f"arena={self.arena_bytes} B)")
