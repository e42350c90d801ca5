"""The default device's memory, and the size of a tree of arrays, for checks made before
anything big is allocated.

On a CPU, an allocation past the machine's RAM is not always an out-of-memory error: the
process can be killed by the system mid-allocation (exit 137, no message), so the
command-line tools size the big arrays first and refuse with a one-line error.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax

__all__ = ["device_memory_limit", "tree_bytes"]


def device_memory_limit() -> int | None:
    """The default device's memory in bytes (its allocator limit on a GPU/TPU, the
    physical RAM on a CPU), or None when unknown."""
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        return stats.get("bytes_limit")
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def tree_bytes(tree: Any) -> int:
    """Bytes of every array leaf of ``tree`` (arrays or ``jax.ShapeDtypeStruct`` s, e.g. from
    ``jax.eval_shape``), counted exactly as Python integers (no overflow)."""
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize  # typed keys have one too
               for leaf in jax.tree.leaves(tree) if hasattr(leaf, "shape"))
