"""Shims for the JAX versions that ``pyproject.toml`` accepts (``jax>=0.6``)."""

from __future__ import annotations

import contextlib
from typing import Any

import jax


def enable_x64(new_val: bool = True) -> contextlib.AbstractContextManager[Any]:
    """A context manager that sets ``jax_enable_x64`` to ``new_val`` inside it.

    ``jax.enable_x64`` from JAX 0.8 on; ``jax.experimental.enable_x64`` before that (it was
    removed later). The last JAX for Python 3.10 is 0.6.2, which has only the latter.
    """
    cm = getattr(jax, "enable_x64", None)
    if cm is not None:
        return cm(new_val)
    from jax import experimental  # JAX < 0.8

    return experimental.enable_x64(new_val)
