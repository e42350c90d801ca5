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

__all__ = ["check_host_rows", "device_memory_limit", "host_memory_bytes", "tree_bytes"]


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


def host_memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None when unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_host_rows(fn: str, arg: str, value: Any, rows: int, row_bytes: int,
                    working: int = 8) -> None:
    """Refuse (``ValueError`` naming ``arg`` and ``value``) a data set of ``rows`` rows of
    ``row_bytes`` bytes each whose generation would not fit in this machine's memory:
    ``working`` times its final size, for the float64 temporaries and copies made while
    it is generated (measured: 1-7x for the synthetic sets). numpy raised a bare
    ``MemoryError`` for a 36 TiB set; a few times the RAM got the process killed."""
    limit = host_memory_bytes()
    size = rows * row_bytes
    if limit is not None and size * working > limit:
        raise ValueError(
            f"{fn}: {arg}={value!r} makes {rows} rows, ~{size / 2**30:.3g} GiB (and about "
            f"{working}x that while they are generated), more than this machine's "
            f"{limit / 2**30:.3g} GiB of memory; use a smaller {arg}")
