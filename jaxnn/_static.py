"""Reading static arguments: hyper-parameters that must be known before tracing.

Some arguments fix the form of a computation rather than flow through it: a schedule's
step counts, a dropout rate (branched on in Python), batch-norm's momentum, a layer size,
maxout's ``num_pieces`` (an output shape). They may be given as Python numbers, NumPy
scalars or concrete 0-d arrays (``jnp.float32(0.5)``, a value read back from a
checkpoint), but not as traced values: under ``jax.jit``, ``vmap`` or ``grad`` their
value is unknown, and ``float(tracer)`` would fail with an error that names neither the
function nor the argument. :func:`static_scalar` reads such an argument once, the same
way for every caller, and leaves the range checks (and their messages) to the caller.

:func:`real_array` and :func:`float_array` read the array arguments of the real-valued
building blocks (activations, losses) the same way: complex input refused by name.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["float_array", "real_array", "static_scalar"]


def static_scalar(
    value: Any,
    fn: str,
    arg: str,
    *,
    expected: str = "number",
    reason: str = "",
    hint: str = "",
) -> Any:
    """The Python scalar that a static argument holds, for the caller to check.

    * A Python number, a NumPy scalar or a concrete 0-d NumPy/JAX array of a bool,
      integer, floating (bfloat16 and float16 included) or complex dtype becomes the
      Python ``bool``, ``int``, ``float`` or ``complex`` it holds: ``np.int64(7)``,
      ``np.asarray(7)`` and ``jnp.asarray(7)`` all read as ``7``. Bools stay bools, so a
      caller can refuse ``True`` where it wants a number.
    * Anything else (strings, ``None``, arrays with other shapes or dtypes, other
      ``numbers.Real`` types) is returned unchanged: the caller refuses it with its own
      message (which shows the value received).

    Args:
      value: the argument as received.
      fn: the function to name in the error (e.g. ``"jaxnn.activations.maxout"``).
      arg: the argument's name.
      expected: what a valid value is (``"int"``, ``"real number in [0, 1)"``), read as
        "``arg`` must be a static <expected>".
      reason: why it must be static (``"it sets the output shape"``); optional.
      hint: appended to the error after ``"; "``; optional.

    Returns:
      A Python scalar, or ``value`` itself.

    Raises:
      ValueError: ``value`` is traced (a ``jax.core.Tracer``, of any shape). The message
        names ``fn`` and ``arg``, says what would be valid and how to pass it.
    """
    if isinstance(value, jax.core.Tracer):
        why = f" ({reason})" if reason else ""
        more = f"; {hint}" if hint else ""
        raise ValueError(
            f"{fn}: {arg} must be a static {expected}{why}, got the traced value {value!r}; "
            "pass a Python number or a concrete 0-d array, and under jax.jit mark it static "
            f"(static_argnums / static_argnames) or close over it{more}"
        )
    if isinstance(value, bool | int | float | complex):
        return value
    if not isinstance(value, np.ndarray | np.generic | jax.Array) or np.ndim(value) != 0:
        return value
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):  # no number: np.asarray fails
        return value
    arr = np.asarray(value)
    dtype = arr.dtype
    # jnp.issubdtype knows the ml_dtypes floats (bfloat16, float8_*) that numpy's .item()
    # would return as numpy scalars rather than Python floats.
    if dtype == np.bool_:
        return bool(arr)
    if jnp.issubdtype(dtype, jnp.integer):
        return int(arr)
    if jnp.issubdtype(dtype, jnp.floating):
        return float(arr)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return complex(arr)
    return value


def real_array(x: Any, where: str, arg: str, hint: str = "") -> jax.Array:
    """``x`` as an array; a complex one raises ``TypeError`` naming ``where`` and ``arg``
    (kinks, ``|x|``, sign tests and squared errors are real-only: ``tanh_grad(1+1j)`` came
    back real, a complex mse summed ``(p - t)^2``, complex targets lost their imaginary
    part)."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{where}: {arg} must be real (floating, integer or bool), got dtype "
                        f"{x.dtype}{hint}")
    return x


def float_array(x: Any, where: str, arg: str, hint: str = "") -> jax.Array:
    """:func:`real_array`, with integer or boolean input converted to the default floating
    dtype (floating input keeps its own)."""
    x = real_array(x, where, arg, hint)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x
