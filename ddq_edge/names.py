"""Unique names for the nodes and tensors the exporters add to a graph."""
from __future__ import annotations


def fresh_name(taken: set[str], base: str) -> str:
    """``base``, or ``base_1``, ``base_2``, ... — the first not in ``taken``; it is added to ``taken``."""
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name
