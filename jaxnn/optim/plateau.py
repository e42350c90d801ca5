"""Reduce-on-plateau: scale updates down when a monitored value stops improving.

Contract: :func:`reduce_on_plateau` returns an ``optax.GradientTransformationExtraArgs``
whose ``update(updates, state, params=None, *, value)`` takes the monitored quantity (a
validation loss, say) as the extra argument ``value``, updates its
:class:`ReduceLROnPlateauState` and returns ``scale * updates``. It is meant to be placed
*after* an optimizer in ``optax.chain`` (``optax.chain`` forwards ``value=`` to every
member that accepts extra arguments), or to be stepped on its own once per epoch with
dummy updates, reading ``state.scale`` as a learning-rate multiplier.

Everything inside ``update`` is branch-free (``jnp.where``), so it runs under ``jit``,
``lax.scan`` and ``vmap``; state leaves keep their dtypes and shapes across updates.

The improvement test is sign-aware: a new value improves on the best one when
``value < best - rtol * |best| - atol``. ``optax.contrib.reduce_on_plateau`` (0.2.8) uses
``value < (1 - rtol) * best - atol``, which equals ours for ``best >= 0`` but, for a
negative best (a negative log-likelihood bound, a negated reward), *loosens* the test:
with ``best = -10`` and ``rtol = 1e-4`` a worse value of ``-9.9995`` counts as an
improvement and resets patience, so the scale may never drop.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxnn._static import static_scalar

__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]


class ReduceLROnPlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau` (same fields as optax's).

    Attributes:
      scale: current multiplier of the updates (starts at 1; dtype of the lowest-precision
        floating parameter).
      best_value: best (lowest) accumulated value seen so far (starts at ``+inf``; dtype of
        the highest-precision floating parameter).
      plateau_count: int32, consecutive evaluations without improvement.
      cooldown_count: int32, evaluations left in the current cooldown.
      count: int32, values accumulated towards the next evaluation.
      avg_value: running mean of the values accumulated so far (reset after each evaluation).
    """

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array
    avg_value: jax.Array


def _is_real(value: Any) -> bool:
    """A real number: a Python int or float, or an integer or floating array (traced or
    not); not a bool, a string or a complex number."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return bool(jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))


def _fail(arg: str, value: Any, allowed: str) -> None:
    raise ValueError(f"reduce_on_plateau: {arg} must be {allowed}, got {value!r}")


def _python_scalar(arg: str, value: Any, expected: str) -> Any:
    """A concrete 0-d array (``jnp.float32(0.5)``) as the Python scalar it holds, as optax
    accepts; a traced one is an error saying that the argument must be concrete."""
    return static_scalar(value, "reduce_on_plateau", arg, expected=expected,
                         reason="it is fixed when the transform is built")


def _real(arg: str, value: Any) -> float:
    value = _python_scalar(arg, value, "real number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(arg, value, "a finite real number")
    if not math.isfinite(float(value)):
        _fail(arg, value, "a finite real number")
    return float(value)


def _integer(arg: str, value: Any, minimum: int) -> int:
    allowed = f"an integer >= {minimum}"
    value = _python_scalar(arg, value, "integer")
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(arg, value, allowed)
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) < minimum:
        _fail(arg, value, allowed)
    return int(value)


def _param_dtypes(params: Any) -> tuple[jnp.dtype, jnp.dtype]:
    """(lowest, highest) floating dtype among the leaves of ``params`` (float32 if none)."""
    dtypes = []
    for leaf in jax.tree.leaves(params):
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.floating):
            dtypes.append(jnp.dtype(dtype))
    if not dtypes:
        return jnp.dtype(jnp.float32), jnp.dtype(jnp.float32)
    return min(dtypes, key=lambda d: d.itemsize), max(dtypes, key=lambda d: d.itemsize)


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Multiply updates by a scale that drops by ``factor`` when ``value`` plateaus.

    Each ``update`` call adds ``value`` to a running mean; every ``accumulation_size``
    calls the mean :math:`\bar v` is *evaluated* against the best value :math:`v^*`:

    .. math::
       \text{improved} \iff \bar v < v^* - \mathrm{rtol}\,|v^*| - \mathrm{atol}

    An improvement sets :math:`v^* \leftarrow \bar v` and resets the plateau counter;
    otherwise the counter grows. Outside a cooldown, when the counter reaches ``patience``
    (or at every non-improving evaluation if ``patience == 0``), the scale becomes
    :math:`\max(s\,\cdot\,\mathrm{factor},\ \mathrm{min\_scale})`, the counter resets and a
    cooldown of ``cooldown`` evaluations starts, during which non-improvements are not
    counted (the best value is still tracked). The returned updates are
    :math:`s \cdot u` with the scale *after* this call's evaluation. A NaN value never
    counts as an improvement.

    Args:
      factor: multiplier applied at each reduction, in ``(0, 1)``.
      patience: evaluations without improvement before a reduction, ``>= 0``.
      rtol: relative tolerance ``>= 0`` (``<= 1``), applied to ``|best|``.
      atol: absolute tolerance ``>= 0``; ``rtol`` and ``atol`` cannot both be 0.
      cooldown: evaluations ignored after a reduction, ``>= 0``.
      accumulation_size: values averaged per evaluation, ``>= 1`` (1 when ``value`` is
        already an epoch-level validation loss; larger for noisy minibatch losses).
      min_scale: floor of the scale, in ``[0, 1]``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` requires the keyword
      argument ``value`` (a scalar) and whose state is a :class:`ReduceLROnPlateauState`.

    Example:
      >>> import optax, jax.numpy as jnp
      >>> tx = optax.chain(optax.sgd(0.1), reduce_on_plateau(factor=0.5, patience=2))
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> for loss in (1.0, 1.0, 1.0):
      ...     updates, state = tx.update(params, state, params, value=loss)
      >>> float(state[1].scale)
      0.5

    Differences from ``optax.contrib.reduce_on_plateau``: the sign-aware tolerance above
    (identical for non-negative values), ``patience=0`` reduces at every non-improving
    evaluation (optax 0.2.8 instead reduces at every *improving* one and never at a
    non-improving one), and updates keep their own dtype.

    Reference: Keras ``ReduceLROnPlateau`` / PyTorch ``ReduceLROnPlateau`` callbacks.
    """
    factor = _real("factor", factor)
    if not 0.0 < factor < 1.0:
        _fail("factor", factor, "in (0, 1)")
    patience = _integer("patience", patience, 0)
    rtol = _real("rtol", rtol)
    if not 0.0 <= rtol <= 1.0:
        _fail("rtol", rtol, "in [0, 1]")
    atol = _real("atol", atol)
    if atol < 0.0:
        _fail("atol", atol, ">= 0")
    if rtol == 0.0 and atol == 0.0:
        raise ValueError("reduce_on_plateau: at least one of rtol and atol must be positive, "
                         "got rtol=0.0 and atol=0.0")
    cooldown = _integer("cooldown", cooldown, 0)
    accumulation_size = _integer("accumulation_size", accumulation_size, 1)
    min_scale = _real("min_scale", min_scale)
    if not 0.0 <= min_scale <= 1.0:
        _fail("min_scale", min_scale, "in [0, 1]")

    def init_fn(params: Any) -> ReduceLROnPlateauState:
        lowest, highest = _param_dtypes(params)
        return ReduceLROnPlateauState(
            scale=jnp.ones((), lowest),
            best_value=jnp.full((), jnp.inf, highest),
            plateau_count=jnp.zeros((), jnp.int32),
            cooldown_count=jnp.zeros((), jnp.int32),
            count=jnp.zeros((), jnp.int32),
            avg_value=jnp.zeros((), highest),
        )

    def update_fn(
        updates: Any,
        state: ReduceLROnPlateauState,
        params: Any = None,
        *,
        value: ArrayLike | None = None,
        **extra_args: Any,
    ) -> tuple[Any, ReduceLROnPlateauState]:
        del params, extra_args
        if value is None:  # a bare "missing 1 required keyword-only argument" before
            raise TypeError("reduce_on_plateau.update: needs the monitored value, "
                            "update(updates, state, params, value=loss) (optax.chain passes "
                            "it on to every transformation)")
        if not _is_real(value):  # a string '1.0' was read as 1.0, a bool as 0 or 1
            raise TypeError(f"reduce_on_plateau.update: value must be a real number (the "
                            f"monitored metric), got {value!r}")
        if jnp.ndim(value) != 0:
            raise ValueError(f"reduce_on_plateau.update: value must be a scalar, got shape "
                             f"{jnp.shape(value)}")
        dtype = state.avg_value.dtype
        v = jnp.asarray(value, dtype)

        # Running mean of the accumulated values.
        count = state.count + 1
        avg = state.avg_value + (v - state.avg_value) / count.astype(dtype)
        ready = count >= accumulation_size

        # Evaluation (used only where `ready`).
        best = state.best_value
        margin = rtol * jnp.abs(best) + atol
        threshold = jnp.where(jnp.isinf(best), best, best - margin)
        improved = avg < threshold
        new_best = jnp.where(improved, avg.astype(best.dtype), best)
        in_cooldown = state.cooldown_count > 0
        plateau = jnp.where(improved, 0, state.plateau_count + 1)
        reduce = ~in_cooldown & ~improved & (plateau >= patience)
        new_scale = jnp.maximum(jnp.where(reduce, state.scale * factor, state.scale), min_scale)
        new_plateau = jnp.where(in_cooldown | reduce, 0, plateau)
        new_cooldown = jnp.where(in_cooldown, state.cooldown_count - 1,
                                 jnp.where(reduce, cooldown, 0))

        new_state = ReduceLROnPlateauState(
            scale=jnp.where(ready, new_scale, state.scale).astype(state.scale.dtype),
            best_value=jnp.where(ready, new_best, best).astype(best.dtype),
            plateau_count=jnp.where(ready, new_plateau, state.plateau_count).astype(jnp.int32),
            cooldown_count=jnp.where(ready, new_cooldown, state.cooldown_count).astype(
                jnp.int32),
            count=jnp.where(ready, 0, count).astype(jnp.int32),
            avg_value=jnp.where(ready, jnp.zeros_like(avg), avg).astype(dtype),
        )
        scale = new_state.scale
        updates = jax.tree.map(lambda u: u * scale.astype(jnp.result_type(u)), updates)
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
