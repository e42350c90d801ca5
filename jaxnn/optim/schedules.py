"""Learning-rate schedules: plain ``step -> value`` functions.

Contract
--------
Every factory here checks its arguments eagerly (outside any ``jit``) and returns a
*schedule*: a pure function ``schedule(step) -> jax.Array`` that

* accepts a Python or JAX integer step (or a float step), concrete or traced, so it can be
  called inside ``jax.jit``, ``lax.scan`` and ``jax.vmap``;
* is applied elementwise: an array of steps gives an array of values of the same shape
  (``schedule(jnp.arange(100))`` tabulates a schedule);
* always returns ``float32`` values, whatever ``jax_enable_x64`` says;
* can be passed as the ``learning_rate`` of any optax or :mod:`jaxnn.optim` optimizer.

Schedules that optax also defines take the same argument names and give the same values
(to float32 rounding) for the same valid arguments. Arguments optax accepts silently but
which make no sense (``transition_steps <= 0``, ``decay_rate <= 0``, a negative
``transition_begin``) raise :class:`ValueError` here instead of falling back to a constant;
so do two that give optax a wrong curve: an exponential decay's ``end_value`` on the wrong
side of its ``init_value``, and a linear one-cycle whose rise and fall end at the same step.
Steps are meant to be ``>= 0``; where a formula would misbehave for negative steps (as
when :func:`join_schedules` evaluates a later piece before its boundary) it is held at
its step-0 value.

Two kinds of arguments:

* *values* (``init_value``, ``peak_value``, ``end_value``, ``base_lr``, ``max_lr``,
  ``value``) may be Python numbers or JAX scalars, even traced ones (e.g. when
  ``vmap``-ing a sweep over learning rates); they are checked when concrete;
* *shape* arguments (step counts, rates, factors, exponents, modes) fix the form of the
  curve and must be concrete: Python numbers or concrete 0-d arrays (a traced one raises
  :class:`ValueError` saying so).

Neither kind takes a bool: ``True`` would read as 1 (a YAML ``yes``, a swapped argument),
so it raises :class:`ValueError`, as does a complex value.

The formulas are arranged to avoid cancellation in float32 (e.g. ``1 + cos(pi t/T)`` is
evaluated as ``2 sin^2(pi (T - t) / 2T)``), so values stay accurate to a few ulps even
where a schedule approaches its end value.

Configs name schedules: :func:`names`, :func:`get` and :func:`get_factory` form a
registry with the usual close-match error messages.

:func:`reduce_on_plateau` (an optax transform rather than a schedule) lives in
:mod:`jaxnn.optim.plateau` and is re-exported here.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn._static import static_scalar
from jaxnn.optim.plateau import ReduceLROnPlateauState, reduce_on_plateau

__all__ = [
    "Schedule",
    "constant_schedule",
    "piecewise_constant_schedule",
    "step_decay",
    "exponential_decay",
    "inverse_time_decay",
    "polynomial_schedule",
    "linear_schedule",
    "cosine_decay_schedule",
    "linear_warmup",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "warmup_linear_decay_schedule",
    "cyclic_schedule",
    "CYCLIC_MODES",
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
    "sgdr_schedule",
    "cosine_warm_restarts",
    "join_schedules",
    "names",
    "get",
    "get_factory",
    "reduce_on_plateau",
    "ReduceLROnPlateauState",
]

Schedule = Callable[[ArrayLike], jax.Array]
"""A function mapping a step count to a float32 value."""

_F32 = jnp.float32
_HALF_PI = math.pi / 2.0
# Tables of restart points (cosine_warm_restarts with period_mult > 1) stop here: steps
# are int32 in practice.
_MAX_TABLE_STEP = 2**31 - 1


# --------------------------------------------------------------------------- checks


def _fail(fn: str, arg: str, value: Any, allowed: str) -> None:
    if _is_bool(value):  # a number was expected: say why True (1.0 in arithmetic) is wrong
        allowed += " (not a bool)"
    raise ValueError(f"{fn}: {arg} must be {allowed}, got {value!r}")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_) or getattr(value, "dtype", None) == np.bool_


def _python_scalar(fn: str, arg: str, value: Any, expected: str) -> Any:
    """A shape argument read by :func:`jaxnn._static.static_scalar`: a concrete 0-d array
    (``jnp.float32(0.5)``, ``np.asarray(10)``) as the Python scalar it holds, as optax
    accepts; a traced one is an error saying that it fixes the form of the curve."""
    return static_scalar(
        value, fn, arg, expected=expected, reason="it fixes the shape of the schedule",
        hint="only value arguments (init_value, peak_value, end_value, ...) may be traced",
    )


def _int_arg(fn: str, arg: str, value: Any, *, minimum: int) -> int:
    """A concrete integer in ``[minimum, 2**31 - 1]`` (integral floats such as ``1e3`` are
    accepted). Steps are int32 in practice: a larger step count would wrap around."""
    allowed = f"an integer in [{minimum}, 2**31 - 1]"
    value = _python_scalar(fn, arg, value, "integer")
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(fn, arg, value, allowed)
    if not math.isfinite(value) or float(value) != int(value) or not (
        minimum <= int(value) <= _MAX_TABLE_STEP
    ):
        _fail(fn, arg, value, allowed)
    return int(value)


def _bool_arg(fn: str, arg: str, value: Any) -> bool:
    """A Python (or NumPy) bool: a string such as "False" from a config must not be read
    by its truthiness."""
    value = _python_scalar(fn, arg, value, "bool")
    if not isinstance(value, bool):
        _fail(fn, arg, value, "true or false (a bool)")
    return bool(value)


def _real_arg(
    fn: str,
    arg: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A concrete finite real number within the given (open or closed) bounds."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    allowed = "a finite real number" + (" " + " and ".join(parts) if parts else "")
    value = _python_scalar(fn, arg, value, "real number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(fn, arg, value, allowed)
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        _fail(fn, arg, value, allowed)
    return v


def _concrete(value: Any) -> float | None:
    """The float value of a concrete real scalar, or None for a traced value.

    Anything but a 0-d integer or floating value (a bool, a complex number, a string, an
    array of another shape) reads as NaN, which the caller reports as invalid; a traced
    bool or complex value too, since its dtype is known.
    """
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not (jnp.issubdtype(dtype, jnp.integer)
                                  or jnp.issubdtype(dtype, jnp.floating)):
        return float("nan")
    try:
        arr = np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
    if arr.ndim != 0 or not (np.issubdtype(arr.dtype, np.integer)
                             or np.issubdtype(arr.dtype, np.floating)):
        return float("nan")
    return float(arr)


def _value_arg(fn: str, arg: str, value: Any, *, nonnegative: bool = False) -> Any:
    """A value argument: checked when concrete (a finite real scalar, optionally >= 0).

    A bool (``True``, ``np.True_``, a bool array, traced or not) is refused, as by the
    shape arguments: ``True`` read as 1.0 is almost always a mistake.
    """
    v = _concrete(value)
    if v is not None and (not math.isfinite(v) or (nonnegative and v < 0)):
        _fail(fn, arg, value, "a finite real number" + (" >= 0" if nonnegative else ""))
    return value


def _f32(x: Any) -> jax.Array:
    return jnp.asarray(x, _F32)


# --------------------------------------------------------------------------- helpers


def _step(step: ArrayLike) -> jax.Array:
    """The step as a JAX array: integers stay integers (exact arithmetic; narrower than 32
    bits widen to int32), floats -> f32. An unsigned step too large for the signed
    integer it becomes (uint32 past 2**31 - 1 without x64) saturates at its largest value,
    as optax's int32 counters do, instead of wrapping around to a negative step."""
    t = jnp.asarray(step)
    # Boundaries and lengths are compared and subtracted in the step's dtype: int8/int16
    # (or uint8/uint16) would wrap them around (int8(300) is 44), so narrow integers widen.
    if t.dtype == jnp.bool_:
        return t.astype(jnp.int32)
    if jnp.issubdtype(t.dtype, jnp.unsignedinteger):
        signed = jnp.dtype(jnp.int32 if t.dtype.itemsize < 4 else jax.dtypes.canonicalize_dtype(
            np.int64))
        if t.dtype.itemsize >= signed.itemsize:
            t = jnp.minimum(t, jnp.asarray(jnp.iinfo(signed).max, t.dtype))
        return t.astype(signed)
    if jnp.issubdtype(t.dtype, jnp.integer):
        return t.astype(jnp.int32) if t.dtype.itemsize < 4 else t
    if jnp.issubdtype(t.dtype, jnp.floating):
        return t.astype(_F32)
    raise TypeError(f"schedule: step must be an integer or real number, got dtype {t.dtype}")


def _fractions(t: jax.Array, begin: Any, length: Any) -> tuple[jax.Array, jax.Array]:
    """``(remaining, elapsed)`` fractions of ``[begin, begin + length]`` at step ``t``.

    ``elapsed = clip(t - begin, 0, length) / length`` and ``remaining = 1 - elapsed`` are
    each computed from an exact difference, so both are accurate to one rounding even when
    the other is close to 1.
    """
    c = jnp.clip(t - begin, 0, length)
    length_f = _f32(length)
    remaining = (length - c).astype(_F32) / length_f
    elapsed = c.astype(_F32) / length_f
    return remaining, elapsed


def _cosine_weights(
    remaining: jax.Array, elapsed: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``((1 + cos(pi e)) / 2, (1 - cos(pi e)) / 2, sqrt of the first)`` without cancellation.

    ``(1 + cos(pi e)) / 2 = sin^2(pi (1 - e) / 2)`` and ``(1 - cos(pi e)) / 2 = sin^2(pi e / 2)``.
    """
    root = jnp.sin(_HALF_PI * remaining)
    move = jnp.square(jnp.sin(_HALF_PI * elapsed))
    return jnp.square(root), move, root


def _blend(
    start: Any,
    end: Any,
    keep: jax.Array,
    move: jax.Array,
    power: float,
    keep_sqrt: jax.Array | None = None,
) -> jax.Array:
    """``start * keep**power + end * (1 - keep**power)`` where ``move = 1 - keep``.

    ``1 - keep**p`` is never formed by subtraction of nearly equal numbers: for an integer
    ``p`` it is ``move * (1 + keep + ... + keep**(p-1))``; otherwise, for ``keep > 1/2`` it
    is ``-expm1(p * log1p(-move))``, and for ``keep <= 1/2`` it is ``1 - keep**p`` with
    ``keep**p = x**k * exp((q - k) log x)`` (``x = keep``, ``q = p``, or ``x = keep_sqrt``,
    ``q = 2p`` when given; ``k = round(q)``), so the exponential's argument stays small
    and ``keep**p`` keeps its relative accuracy even when ``keep`` is tiny.
    """
    if power == 1.0:
        return start * keep + end * move
    if float(power).is_integer() and 1 < power <= 16:
        k = int(power)
        a = keep**k
        s = jnp.ones_like(keep)
        for _ in range(k - 1):
            s = 1.0 + keep * s
        b = move * s
    else:
        near_one = move < 0.5
        log_near = power * jnp.log1p(-jnp.where(near_one, move, 0.0))
        x, q = (keep, power) if keep_sqrt is None else (keep_sqrt, 2.0 * power)
        k = round(q)
        safe_x = jnp.where(near_one | (x <= 0), 1.0, x)
        far = jnp.exp((q - k) * jnp.log(safe_x))
        if k:
            far = far * safe_x**k
        far = jnp.where(x <= 0, 0.0, far)
        a = jnp.where(near_one, jnp.exp(log_near), far)
        b = jnp.where(near_one, -jnp.expm1(log_near), 1.0 - far)
    return start * a + end * b


def _join(schedules: Sequence[Callable], boundaries: Sequence[int]) -> Schedule:
    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        out = jnp.asarray(schedules[0](t), _F32)
        for boundary, piece in zip(boundaries, schedules[1:], strict=True):
            out = jnp.where(t < boundary, out, jnp.asarray(piece(t - boundary), _F32))
        return out

    return schedule


def _interpolated(
    peak_value: Any,
    boundaries_and_factors: Mapping[int, float],
    first_factor: float,
    kind: str,
) -> Schedule:
    """Piecewise linear/cosine interpolation between ``peak_value * factor`` knots.

    Knots sit at step 0 (factor ``first_factor``) and at each boundary, whose factor is the
    running product of the scales given for it (optax's ``piecewise_interpolate_schedule``
    convention). Segment ``i`` covers ``[b_i, b_{i+1})``; past the last boundary the last
    knot's value holds.
    """
    items = sorted(boundaries_and_factors.items())
    bounds = [0] + [int(b) for b, _ in items]
    factors = [first_factor]
    for _, s in items:
        factors.append(factors[-1] * float(s))
    m = len(items)
    lengths = [max(bounds[i + 1] - bounds[i], 1) for i in range(m)]
    bounds_arr = np.asarray(bounds[1:], np.int64)
    start_tab = np.asarray(factors[:-1], np.float64)
    end_tab = np.asarray(factors[1:], np.float64)
    begin_tab = np.asarray(bounds[:-1], np.int64)
    length_tab = np.asarray(lengths, np.int64)
    last = factors[-1]

    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        peak = _f32(peak_value)
        seg = jnp.searchsorted(jnp.asarray(bounds_arr, t.dtype), t, side="right")
        i = jnp.minimum(seg, m - 1)
        begin = jnp.asarray(begin_tab, t.dtype)[i]
        length = jnp.asarray(length_tab, t.dtype)[i]
        c = jnp.clip(t - begin, 0, length)
        length_f = length.astype(_F32)
        remaining = (length - c).astype(_F32) / length_f
        elapsed = c.astype(_F32) / length_f
        if kind == "cosine":
            keep, move, _ = _cosine_weights(remaining, elapsed)
        else:
            keep, move = remaining, elapsed
        start = jnp.asarray(start_tab, _F32)[i]
        end = jnp.asarray(end_tab, _F32)[i]
        value = peak * (start * keep + end * move)
        return jnp.where(seg >= m, peak * _f32(last), value).astype(_F32)

    return schedule


# --------------------------------------------------------------------------- constant & steps


def constant_schedule(value: ArrayLike) -> Schedule:
    r"""A schedule that always returns ``value``.

    .. math:: \eta_t = v

    Args:
      value: the value held at every step.

    Returns:
      A schedule ``step -> value`` (float32, shaped like ``step``).

    Example:
      >>> sched = constant_schedule(0.01)
      >>> round(float(sched(1000)), 6)
      0.01

    Matches ``optax.constant_schedule``.
    """
    _value_arg("constant_schedule", "value", value)

    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        return jnp.full(t.shape, value, _F32)

    return schedule


def piecewise_constant_schedule(
    init_value: ArrayLike, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    r"""Piecewise constant: multiply by ``s_i`` from step ``b_i`` on.

    .. math:: \eta_t = \eta_0 \prod_{i:\, t \ge b_i} s_i

    Args:
      init_value: the value before the first boundary, :math:`\eta_0`.
      boundaries_and_scales: ``{b_i: s_i}`` with integer steps ``b_i >= 0`` and scales
        ``s_i >= 0``; ``None`` or ``{}`` gives a constant schedule.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = piecewise_constant_schedule(1.0, {100: 0.1, 200: 0.5})
      >>> [round(float(sched(s)), 6) for s in (99, 100, 199, 200)]
      [1.0, 0.1, 0.1, 0.05]

    Matches ``optax.piecewise_constant_schedule``.
    """
    fn = "piecewise_constant_schedule"
    _value_arg(fn, "init_value", init_value)
    items: list[tuple[int, float]] = []
    if boundaries_and_scales is not None:
        if not isinstance(boundaries_and_scales, Mapping):
            _fail(fn, "boundaries_and_scales", boundaries_and_scales,
                  "a mapping {step: scale} or None")
        for b, s in boundaries_and_scales.items():
            bi = _int_arg(fn, f"boundaries_and_scales key {b!r}", b, minimum=0)
            si = _real_arg(fn, f"boundaries_and_scales[{b!r}]", s, low=0.0)
            items.append((bi, si))
    items.sort()
    bounds = np.asarray([b for b, _ in items], np.int64)
    cumulative = np.cumprod([1.0] + [s for _, s in items])

    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        init = _f32(init_value)
        if not items:
            return jnp.broadcast_to(init, t.shape)
        idx = jnp.searchsorted(jnp.asarray(bounds, t.dtype), t, side="right")
        return init * jnp.asarray(cumulative, _F32)[idx]

    return schedule


def _exponential(
    fn: str,
    init_value: ArrayLike,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int,
    staircase: bool,
    end_value: ArrayLike | None,
) -> Schedule:
    _value_arg(fn, "init_value", init_value)
    steps_name = "step_size" if fn == "step_decay" else "transition_steps"
    period = _int_arg(fn, steps_name, transition_steps, minimum=1)
    rate = _real_arg(fn, "decay_rate", decay_rate, low=0.0, low_open=True)
    begin = _int_arg(fn, "transition_begin", transition_begin, minimum=0)
    staircase = _bool_arg(fn, "staircase", staircase)
    if end_value is not None:
        _value_arg(fn, "end_value", end_value)
        _check_end_side(fn, init_value, end_value, rate)
    log_rate = math.log(rate)
    # decay_rate 1 holds init_value: no bound applies (optax would clip it with minimum,
    # turning the whole schedule into an end_value below init_value).
    clip = jnp.maximum if rate < 1.0 else jnp.minimum if rate > 1.0 else None

    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        init = _f32(init_value)
        d = t - begin
        if staircase:
            exponent = jnp.floor_divide(d, period).astype(_F32) * _f32(log_rate)
        else:
            # d * (log(rate) / period): one rounding of the constant, one of the product.
            exponent = d.astype(_F32) * _f32(log_rate / period)
        value = jnp.where(d <= 0, init, init * jnp.exp(exponent))
        if end_value is not None and clip is not None:
            value = clip(value, _f32(end_value))
        return value.astype(_F32)

    return schedule


def _check_end_side(fn: str, init_value: Any, end_value: Any, rate: float) -> None:
    """``end_value`` bounds a decay from below and a growth from above: on the other side
    of ``init_value`` it would replace the whole schedule, step 0 included (as optax does).
    Checked when both values are concrete."""
    init, end = _concrete(init_value), _concrete(end_value)
    if init is None or end is None or rate == 1.0:
        return
    if rate < 1.0 and end > init:
        _fail(fn, "end_value", end_value, f"<= init_value ({init_value!r}) for a decay_rate "
              f"below 1 ({rate!r}): it is the floor the value decays to")
    if rate > 1.0 and end < init:
        _fail(fn, "end_value", end_value, f">= init_value ({init_value!r}) for a decay_rate "
              f"above 1 ({rate!r}): it is the ceiling the value grows to")


def exponential_decay(
    init_value: ArrayLike,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: ArrayLike | None = None,
) -> Schedule:
    r"""Exponential decay, continuous or in steps (staircase).

    With :math:`d = t - B` (``transition_begin``) and :math:`T` = ``transition_steps``:

    .. math::
       \eta_t = \begin{cases} \eta_0 & d \le 0 \\
                \eta_0\, r^{\,d / T} & \text{otherwise} \end{cases}

    (:math:`\lfloor d / T \rfloor` when ``staircase``), then clipped from below at
    ``end_value`` when :math:`r < 1` (from above when :math:`r > 1`; :math:`r = 1` holds
    :math:`\eta_0`, whatever ``end_value``).

    Args:
      init_value: the initial value :math:`\eta_0`.
      transition_steps: :math:`T > 0`, the steps over which the value is multiplied by
        :math:`r` once.
      decay_rate: :math:`r > 0` (``< 1`` decays, ``> 1`` grows).
      transition_begin: :math:`B \ge 0`, steps during which the value is held at
        ``init_value`` before decaying.
      staircase: decay in discrete jumps every ``transition_steps`` steps.
      end_value: optional bound the value never passes: at most ``init_value`` when
        :math:`r < 1`, at least ``init_value`` when :math:`r > 1`.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = exponential_decay(1.0, transition_steps=10, decay_rate=0.5)
      >>> [round(float(sched(s)), 6) for s in (0, 10, 20, 5)]
      [1.0, 0.5, 0.25, 0.707107]

    Matches ``optax.exponential_decay`` for valid arguments (optax returns a constant
    schedule for ``transition_steps <= 0`` or ``decay_rate == 0``, and ``end_value`` at
    every step for an ``end_value`` on the wrong side of ``init_value``; we raise
    ValueError). With :math:`r = 1` optax returns ``min(init_value, end_value)``; we
    return ``init_value``.
    """
    return _exponential("exponential_decay", init_value, transition_steps, decay_rate,
                        transition_begin, staircase, end_value)


def step_decay(
    init_value: ArrayLike, decay_rate: float, step_size: int, staircase: bool = True
) -> Schedule:
    r"""Step decay: multiply by ``decay_rate`` every ``step_size`` steps.

    .. math:: \eta_t = \eta_0\, r^{\lfloor t / S \rfloor}

    (:math:`r^{t/S}` when ``staircase=False``). The same curve as PyTorch's ``StepLR``
    (``gamma = decay_rate``) and Keras' ``ExponentialDecay(staircase=True)``; a friendlier
    spelling of ``exponential_decay(init_value, step_size, decay_rate, staircase=True)``.

    Args:
      init_value: the initial value :math:`\eta_0`.
      decay_rate: the drop factor :math:`r > 0` (e.g. 0.1 or 0.5).
      step_size: :math:`S > 0`, steps between drops.
      staircase: drop in jumps (default) or decay continuously.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = step_decay(0.1, decay_rate=0.5, step_size=100)
      >>> [round(float(sched(s)), 6) for s in (0, 99, 100, 250)]
      [0.1, 0.1, 0.05, 0.025]
    """
    return _exponential("step_decay", init_value, step_size, decay_rate, 0, staircase, None)


def inverse_time_decay(
    init_value: ArrayLike, decay_rate: float, decay_steps: int = 1, staircase: bool = False
) -> Schedule:
    r"""Inverse-time decay.

    .. math:: \eta_t = \frac{\eta_0}{1 + r\, t / T}

    (:math:`\lfloor t / T \rfloor` when ``staircase``). With ``decay_steps=1`` this is the
    legacy Keras ``decay`` argument of its optimizers, ``lr / (1 + decay * iterations)``.

    Args:
      init_value: the initial value :math:`\eta_0`.
      decay_rate: :math:`r \ge 0`.
      decay_steps: :math:`T > 0`.
      staircase: use :math:`\lfloor t / T \rfloor`.

    Returns:
      A schedule ``step -> value`` (negative steps read as step 0).

    Example:
      >>> sched = inverse_time_decay(1.0, decay_rate=0.5, decay_steps=10)
      >>> [round(float(sched(s)), 6) for s in (0, 10, 20)]
      [1.0, 0.666667, 0.5]

    Reference: Keras ``InverseTimeDecay``; the ``1/t`` step sizes of stochastic
    approximation (Robbins & Monro, 1951).
    """
    fn = "inverse_time_decay"
    _value_arg(fn, "init_value", init_value)
    rate = _real_arg(fn, "decay_rate", decay_rate, low=0.0)
    period = _int_arg(fn, "decay_steps", decay_steps, minimum=1)
    staircase = _bool_arg(fn, "staircase", staircase)

    def schedule(step: ArrayLike) -> jax.Array:
        t = jnp.maximum(_step(step), 0)
        init = _f32(init_value)
        if staircase:
            denom = 1.0 + _f32(rate) * jnp.floor_divide(t, period).astype(_F32)
        else:
            denom = 1.0 + _f32(rate / period) * t.astype(_F32)
        return (init / denom).astype(_F32)

    return schedule


# --------------------------------------------------------------------------- polynomial & cosine


def _polynomial(
    fn: str,
    init_value: ArrayLike,
    end_value: ArrayLike,
    power: float,
    transition_steps: int,
    transition_begin: int,
) -> Schedule:
    _value_arg(fn, "init_value", init_value)
    _value_arg(fn, "end_value", end_value)
    p = _real_arg(fn, "power", power, low=0.0, low_open=True)
    period = _int_arg(fn, "transition_steps", transition_steps, minimum=1)
    begin = _int_arg(fn, "transition_begin", transition_begin, minimum=0)

    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        remaining, elapsed = _fractions(t, begin, period)
        return _blend(_f32(init_value), _f32(end_value), remaining, elapsed, p).astype(_F32)

    return schedule


def polynomial_schedule(
    init_value: ArrayLike,
    end_value: ArrayLike,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Polynomial transition from ``init_value`` to ``end_value``.

    With :math:`u = \mathrm{clip}(t - B, 0, T) / T`:

    .. math:: \eta_t = (\eta_0 - \eta_\infty)(1 - u)^p + \eta_\infty

    Args:
      init_value: :math:`\eta_0`, held for ``t <= transition_begin``.
      end_value: :math:`\eta_\infty`, reached at ``transition_begin + transition_steps``
        and held afterwards.
      power: :math:`p > 0` (1 is linear; ``> 1`` falls fast first).
      transition_steps: :math:`T > 0`.
      transition_begin: :math:`B \ge 0`.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = polynomial_schedule(1.0, 0.0, power=2, transition_steps=10)
      >>> [round(float(sched(s)), 6) for s in (0, 5, 10, 20)]
      [1.0, 0.25, 0.0, 0.0]

    Matches ``optax.polynomial_schedule`` (which returns a constant schedule for
    ``transition_steps <= 0``; we raise ValueError).
    """
    return _polynomial("polynomial_schedule", init_value, end_value, power,
                       transition_steps, transition_begin)


def linear_schedule(
    init_value: ArrayLike,
    end_value: ArrayLike,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Linear transition from ``init_value`` to ``end_value``.

    With :math:`u = \mathrm{clip}(t - B, 0, T) / T`:

    .. math:: \eta_t = (1 - u)\,\eta_0 + u\,\eta_\infty

    Args:
      init_value: :math:`\eta_0`, held for ``t <= transition_begin``.
      end_value: :math:`\eta_\infty`, held from ``transition_begin + transition_steps``.
      transition_steps: :math:`T > 0`.
      transition_begin: :math:`B \ge 0`.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = linear_schedule(1.0, 0.0, transition_steps=4)
      >>> [round(float(sched(s)), 6) for s in (0, 1, 4, 9)]
      [1.0, 0.75, 0.0, 0.0]

    Matches ``optax.linear_schedule``.
    """
    return _polynomial("linear_schedule", init_value, end_value, 1.0,
                       transition_steps, transition_begin)


def cosine_decay_schedule(
    init_value: ArrayLike, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    r"""Cosine decay from ``init_value`` to ``alpha * init_value``.

    With :math:`c_t = \tfrac12\left(1 + \cos(\pi \min(t, T) / T)\right)`:

    .. math:: \eta_t = \eta_0 \left[(1 - \alpha)\, c_t^{\,p} + \alpha\right]

    Args:
      init_value: :math:`\eta_0`.
      decay_steps: :math:`T > 0`; the value is :math:`\alpha \eta_0` from step ``T`` on.
      alpha: :math:`\alpha \in [0, 1]`, the final value as a fraction of ``init_value``.
      exponent: :math:`p > 0` (default 1).

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
      >>> [round(float(sched(s)), 6) for s in (0, 50, 100, 500)]
      [1.0, 0.55, 0.1, 0.1]

    Matches ``optax.cosine_decay_schedule``.

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017, https://arxiv.org/abs/1608.03983.
    """
    fn = "cosine_decay_schedule"
    _value_arg(fn, "init_value", init_value)
    period = _int_arg(fn, "decay_steps", decay_steps, minimum=1)
    a = _real_arg(fn, "alpha", alpha, low=0.0, high=1.0)
    p = _real_arg(fn, "exponent", exponent, low=0.0, low_open=True)

    def schedule(step: ArrayLike) -> jax.Array:
        t = _step(step)
        keep, move, root = _cosine_weights(*_fractions(t, 0, period))
        init = _f32(init_value)
        return _blend(init, init * a, keep, move, p, root).astype(_F32)

    return schedule


# --------------------------------------------------------------------------- warm-up


def linear_warmup(
    peak_value: ArrayLike, warmup_steps: int, init_value: ArrayLike = 0.0
) -> Schedule:
    r"""Linear warm-up from ``init_value`` to ``peak_value``, then constant.

    .. math:: \eta_t = \eta_0 + (\eta_{\max} - \eta_0)\,\min(t, W) / W

    Args:
      peak_value: :math:`\eta_{\max}`, reached at step ``W`` and held afterwards.
      warmup_steps: :math:`W \ge 0`; ``0`` means no warm-up (constant ``peak_value``).
      init_value: :math:`\eta_0` at step 0 (default 0).

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = linear_warmup(0.1, warmup_steps=10)
      >>> [round(float(sched(s)), 6) for s in (0, 5, 10, 100)]
      [0.0, 0.05, 0.1, 0.1]

    Reference: Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
    2017, https://arxiv.org/abs/1706.02677 (gradual warm-up).
    """
    return _warmup("linear_warmup", init_value, peak_value, warmup_steps)


def _warmup(fn: str, init_value: ArrayLike, peak_value: ArrayLike, warmup_steps: int) -> Schedule:
    _value_arg(fn, "init_value", init_value)
    _value_arg(fn, "peak_value", peak_value)
    steps = _int_arg(fn, "warmup_steps", warmup_steps, minimum=0)
    if steps == 0:
        return constant_schedule(peak_value)
    return _polynomial(fn, init_value, peak_value, 1.0, steps, 0)


def warmup_constant_schedule(
    init_value: ArrayLike, peak_value: ArrayLike, warmup_steps: int
) -> Schedule:
    r"""Linear warm-up then constant; optax's name and argument order for :func:`linear_warmup`.

    .. math:: \eta_t = \eta_0 + (\eta_{\max} - \eta_0)\,\min(t, W) / W

    Args:
      init_value: :math:`\eta_0` at step 0.
      peak_value: :math:`\eta_{\max}` from step ``W`` on.
      warmup_steps: :math:`W \ge 0`; ``0`` gives a constant ``peak_value`` (optax would
        give a constant ``init_value``).

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = warmup_constant_schedule(0.0, 1.0, warmup_steps=4)
      >>> [round(float(sched(s)), 6) for s in (0, 1, 4, 8)]
      [0.0, 0.25, 1.0, 1.0]

    Matches ``optax.warmup_constant_schedule`` for ``warmup_steps > 0``.
    """
    return _warmup("warmup_constant_schedule", init_value, peak_value, warmup_steps)


def _check_total(fn: str, warmup_steps: Any, decay_steps: Any) -> tuple[int, int]:
    w = _int_arg(fn, "warmup_steps", warmup_steps, minimum=0)
    d = _int_arg(fn, "decay_steps", decay_steps, minimum=1)
    if d <= w:
        raise ValueError(
            f"{fn}: decay_steps must be greater than warmup_steps (decay_steps counts the "
            f"warm-up too), got decay_steps={decay_steps!r} and warmup_steps={warmup_steps!r}"
        )
    return w, d


def warmup_cosine_decay_schedule(
    init_value: ArrayLike,
    peak_value: ArrayLike,
    warmup_steps: int,
    decay_steps: int,
    end_value: ArrayLike = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    r"""Linear warm-up to ``peak_value``, then cosine decay to ``end_value``.

    .. math::
       \eta_t = \begin{cases}
         \eta_0 + (\eta_{\max} - \eta_0)\, t / W & t < W \\
         \eta_{\mathrm{end}} + (\eta_{\max} - \eta_{\mathrm{end}})\, c_{t-W}^{\,p} & t \ge W
       \end{cases}

    with :math:`c_s = \tfrac12 (1 + \cos(\pi \min(s, D - W) / (D - W)))`.

    Args:
      init_value: :math:`\eta_0` at step 0.
      peak_value: :math:`\eta_{\max}` at step ``W``.
      warmup_steps: :math:`W \ge 0`.
      decay_steps: :math:`D > W`, the *total* length including the warm-up; the value is
        ``end_value`` from step ``D`` on.
      end_value: :math:`\eta_{\mathrm{end}}`.
      exponent: :math:`p > 0`.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=110)
      >>> [round(float(sched(s)), 6) for s in (0, 5, 10, 60, 110)]
      [0.0, 0.5, 1.0, 0.5, 0.0]

    Matches ``optax.warmup_cosine_decay_schedule`` (except for the degenerate
    ``peak_value == 0`` with ``end_value != 0``, where optax ignores ``end_value``).

    Reference: Loshchilov & Hutter, SGDR, ICLR 2017; Goyal et al. 2017 (warm-up).
    """
    fn = "warmup_cosine_decay_schedule"
    _value_arg(fn, "init_value", init_value)
    _value_arg(fn, "peak_value", peak_value)
    _value_arg(fn, "end_value", end_value)
    w, d = _check_total(fn, warmup_steps, decay_steps)
    p = _real_arg(fn, "exponent", exponent, low=0.0, low_open=True)
    length = d - w

    def decay(step: ArrayLike) -> jax.Array:
        keep, move, root = _cosine_weights(*_fractions(_step(step), 0, length))
        return _blend(_f32(peak_value), _f32(end_value), keep, move, p, root).astype(_F32)

    if w == 0:
        return decay
    return _join([_warmup(fn, init_value, peak_value, w), decay], [w])


def warmup_exponential_decay_schedule(
    init_value: ArrayLike,
    peak_value: ArrayLike,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: ArrayLike | None = None,
) -> Schedule:
    r"""Linear warm-up to ``peak_value``, then :func:`exponential_decay` from it.

    .. math::
       \eta_t = \begin{cases}
         \eta_0 + (\eta_{\max} - \eta_0)\, t / W & t < W \\
         \mathrm{exponential\_decay}(\eta_{\max}, T, r, B)(t - W) & t \ge W
       \end{cases}

    Args:
      init_value: :math:`\eta_0` at step 0.
      peak_value: :math:`\eta_{\max}` at step ``W``.
      warmup_steps: :math:`W \ge 0`.
      transition_steps: :math:`T > 0` (see :func:`exponential_decay`).
      decay_rate: :math:`r > 0`.
      transition_begin: :math:`B \ge 0`, steps held at ``peak_value`` after the warm-up.
      staircase: decay in jumps.
      end_value: optional bound of the decay.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = warmup_exponential_decay_schedule(0.0, 1.0, warmup_steps=10,
      ...                                           transition_steps=10, decay_rate=0.5)
      >>> [round(float(sched(s)), 6) for s in (5, 10, 20, 30)]
      [0.5, 1.0, 0.5, 0.25]

    Matches ``optax.warmup_exponential_decay_schedule``.
    """
    fn = "warmup_exponential_decay_schedule"
    _value_arg(fn, "init_value", init_value)
    _value_arg(fn, "peak_value", peak_value)
    w = _int_arg(fn, "warmup_steps", warmup_steps, minimum=0)
    decay = _exponential(fn, peak_value, transition_steps, decay_rate, transition_begin,
                         staircase, end_value)
    if w == 0:
        return decay
    return _join([_warmup(fn, init_value, peak_value, w), decay], [w])


def warmup_linear_decay_schedule(
    init_value: ArrayLike,
    peak_value: ArrayLike,
    warmup_steps: int,
    decay_steps: int,
    end_value: ArrayLike = 0.0,
) -> Schedule:
    r"""Linear warm-up to ``peak_value``, then linear decay to ``end_value`` (a triangle).

    .. math::
       \eta_t = \begin{cases}
         \eta_0 + (\eta_{\max} - \eta_0)\, t / W & t < W \\
         \eta_{\max} + (\eta_{\mathrm{end}} - \eta_{\max})\,\min(t - W, D - W) / (D - W)
           & t \ge W
       \end{cases}

    Args:
      init_value: :math:`\eta_0` at step 0.
      peak_value: :math:`\eta_{\max}` at step ``W``.
      warmup_steps: :math:`W \ge 0`.
      decay_steps: :math:`D > W`, the total length including the warm-up.
      end_value: :math:`\eta_{\mathrm{end}}`, held from step ``D`` on.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = warmup_linear_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=30)
      >>> [round(float(sched(s)), 6) for s in (5, 10, 20, 30, 40)]
      [0.5, 1.0, 0.5, 0.0, 0.0]

    Equals ``optax.join_schedules([linear_schedule(init, peak, W),
    linear_schedule(peak, end, D - W)], [W])``; the schedule of BERT-style training.
    """
    fn = "warmup_linear_decay_schedule"
    _value_arg(fn, "init_value", init_value)
    _value_arg(fn, "peak_value", peak_value)
    _value_arg(fn, "end_value", end_value)
    w, d = _check_total(fn, warmup_steps, decay_steps)
    decay = _polynomial(fn, peak_value, end_value, 1.0, d - w, 0)
    if w == 0:
        return decay
    return _join([_warmup(fn, init_value, peak_value, w), decay], [w])


# --------------------------------------------------------------------------- cyclic & one-cycle

CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def cyclic_schedule(
    base_lr: ArrayLike,
    max_lr: ArrayLike,
    step_size: int,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    r"""Cyclical learning rate (CLR): a triangle wave between ``base_lr`` and ``max_lr``.

    With half-cycle :math:`S` = ``step_size``, cycle index :math:`k = \lfloor t / 2S
    \rfloor` and triangle :math:`x_t = 1 - |\,(t \bmod 2S) - S\,| / S \in [0, 1]`:

    .. math:: \eta_t = \eta_{\mathrm{base}} + (\eta_{\max} - \eta_{\mathrm{base}})\,x_t\,a_t

    with amplitude scale :math:`a_t = 1` (``"triangular"``), :math:`2^{-k}`
    (``"triangular2"``: halved every cycle) or :math:`\gamma^{t}` (``"exp_range"``:
    shrunk by :math:`\gamma` every *step*, from step 0, rising ramps included).
    The value is ``base_lr`` at :math:`t = 2kS` (troughs) and peaks at :math:`t = (2k+1)S`
    with the value :math:`\eta_{\mathrm{base}} + (\eta_{\max} - \eta_{\mathrm{base}})
    \,a_{(2k+1)S}`. So ``max_lr`` is reached at every peak in ``"triangular"``, only at the
    first peak (:math:`t = S`) in ``"triangular2"``, and never in ``"exp_range"`` with
    :math:`\gamma < 1`: even its first peak is
    :math:`\eta_{\mathrm{base}} + (\eta_{\max} - \eta_{\mathrm{base}})\,\gamma^{S}`.

    Args:
      base_lr: lower bound :math:`\eta_{\mathrm{base}} \ge 0`.
      max_lr: upper bound :math:`\eta_{\max} \ge \eta_{\mathrm{base}}` of the
        undecayed triangle (see above for the peaks each mode actually reaches).
      step_size: :math:`S > 0`, half a cycle in steps (Smith suggests 2-10 epochs).
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: :math:`\gamma \in (0, 1]`, the per-step amplitude factor of ``"exp_range"``;
        must stay 1 in the other modes.

    Returns:
      A schedule ``step -> value`` (negative steps read as step 0).

    Example:
      >>> sched = cyclic_schedule(0.1, 1.0, step_size=10, mode="triangular2")
      >>> [round(float(sched(s)), 6) for s in (0, 5, 10, 20, 30, 50)]
      [0.1, 0.55, 1.0, 0.1, 0.55, 0.325]
      >>> sched = cyclic_schedule(0.1, 1.0, step_size=10, mode="exp_range", gamma=0.99)
      >>> round(float(sched(10)), 6)  # first peak: 0.1 + 0.9 * 0.99**10, not 1.0
      0.913944

    Reference: Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
    https://arxiv.org/abs/1506.01186.
    """
    fn = "cyclic_schedule"
    _value_arg(fn, "base_lr", base_lr, nonnegative=True)
    _value_arg(fn, "max_lr", max_lr, nonnegative=True)
    lo, hi = _concrete(base_lr), _concrete(max_lr)
    if lo is not None and hi is not None and hi < lo:
        raise ValueError(f"{fn}: max_lr must be >= base_lr, got max_lr={max_lr!r} and "
                         f"base_lr={base_lr!r}")
    half = _int_arg(fn, "step_size", step_size, minimum=1)
    if mode not in CYCLIC_MODES:
        close = difflib.get_close_matches(str(mode), CYCLIC_MODES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{fn}: mode must be one of {', '.join(map(repr, CYCLIC_MODES))}, "
                         f"got {mode!r}{hint}")
    g = _real_arg(fn, "gamma", gamma, low=0.0, high=1.0, low_open=True)
    if mode != "exp_range" and g != 1.0:
        raise ValueError(f"{fn}: gamma is only used with mode='exp_range'; it must be 1.0 "
                         f"with mode={mode!r}, got {gamma!r}")
    log_gamma = math.log(g)

    def schedule(step: ArrayLike) -> jax.Array:
        t = jnp.maximum(_step(step), 0)
        if jnp.issubdtype(t.dtype, jnp.integer) and 2 * half > jnp.iinfo(t.dtype).max:
            # 2 * half does not fit t's dtype, and no step of that dtype ends a cycle.
            pos, cycle = t, jnp.zeros_like(t)
        else:
            period = jnp.asarray(2 * half, t.dtype)  # a Python int > 2**31 - 1 overflows
            pos = jnp.remainder(t, period)
            cycle = jnp.floor_divide(t, period)
        tri = (half - jnp.abs(pos - half)).astype(_F32) / _f32(half)
        base = _f32(base_lr)
        amplitude = _f32(max_lr) - base
        if mode == "triangular2":
            # Halved 1024 times, any float32 amplitude is 0: clipping first keeps an int64
            # cycle count (x64) past 2**31 from wrapping around in the int32 exponent.
            amplitude = jnp.ldexp(amplitude, -jnp.minimum(cycle, 1024).astype(jnp.int32))
        elif mode == "exp_range":
            amplitude = amplitude * jnp.exp(t.astype(_F32) * _f32(log_gamma))
        return (base + amplitude * tri).astype(_F32)

    return schedule


def _check_onecycle(fn: str, transition_steps: Any, peak_value: Any, pct_start: Any,
                    div_factor: Any, final_div_factor: Any) -> tuple[int, float, float, float]:
    steps = _int_arg(fn, "transition_steps", transition_steps, minimum=1)
    _value_arg(fn, "peak_value", peak_value, nonnegative=True)
    ps = _real_arg(fn, "pct_start", pct_start, low=0.0, high=1.0, low_open=True, high_open=True)
    div = _real_arg(fn, "div_factor", div_factor, low=0.0, low_open=True)
    final = _real_arg(fn, "final_div_factor", final_div_factor, low=0.0, low_open=True)
    return steps, ps, div, final


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: ArrayLike,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    r"""One-cycle policy with cosine phases.

    With :math:`T` = ``transition_steps``, :math:`P = \lfloor p_s T \rfloor`,
    :math:`\eta_0 = \eta_{\max} / d` and :math:`\eta_{\mathrm{end}} = \eta_0 / f`:
    cosine rise from :math:`\eta_0` to :math:`\eta_{\max}` over :math:`[0, P)`, cosine fall
    to :math:`\eta_{\mathrm{end}}` over :math:`[P, T)`, then constant. A cosine segment
    from :math:`a` to :math:`b` is :math:`b + (a - b)(1 + \cos(\pi u)) / 2`, :math:`u` the
    fraction of the segment elapsed.

    Args:
      transition_steps: :math:`T > 0`, the length of the cycle.
      peak_value: :math:`\eta_{\max} \ge 0`.
      pct_start: :math:`p_s \in (0, 1)`, the fraction of the cycle spent rising.
      div_factor: :math:`d > 0`; the initial value is ``peak_value / div_factor``.
      final_div_factor: :math:`f > 0`; the final value is ``peak_value / (d f)``.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = cosine_onecycle_schedule(100, peak_value=1.0, pct_start=0.5)
      >>> [round(float(sched(s)), 6) for s in (0, 50, 100)]
      [0.04, 1.0, 4e-06]

    Matches ``optax.cosine_onecycle_schedule``. PyTorch's ``OneCycleLR(anneal_strategy=
    "cos", three_phase=False)`` draws a slightly different curve: it peaks at step
    :math:`p_s T - 1` and reaches the final value at :math:`T - 1` (here :math:`P` and
    :math:`T`), e.g. with :math:`T = 100` it peaks at step 29 instead of 30 and ends at
    4e-6 instead of 5.1e-4 at step 99 (peak 1).

    Reference: Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks
    Using Large Learning Rates", 2017, https://arxiv.org/abs/1708.07120.
    """
    fn = "cosine_onecycle_schedule"
    steps, ps, div, final = _check_onecycle(fn, transition_steps, peak_value, pct_start,
                                            div_factor, final_div_factor)
    knots = {int(ps * steps): div, steps: 1.0 / (div * final)}
    return _interpolated(peak_value, knots, 1.0 / div, "cosine")


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: ArrayLike,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    r"""One-cycle policy with three linear phases.

    With :math:`\eta_0 = \eta_{\max} / d`: linear rise :math:`\eta_0 \to \eta_{\max}` over
    :math:`[0, \lfloor p_s T \rfloor)`, linear fall back to :math:`\eta_0` until
    :math:`\lfloor p_f T \rfloor`, then linear annihilation to :math:`\eta_0 / f` at
    :math:`T`, constant afterwards.

    Args:
      transition_steps: :math:`T > 0`.
      peak_value: :math:`\eta_{\max} \ge 0`.
      pct_start: :math:`p_s \in (0, 1)`, the fraction of the cycle spent rising.
      pct_final: :math:`p_f \in (p_s, 1)`, where the fall back to :math:`\eta_0` ends;
        :math:`\lfloor p_f T \rfloor` must exceed :math:`\lfloor p_s T \rfloor`.
      div_factor: :math:`d > 0`.
      final_div_factor: :math:`f > 0`; the final value is ``peak_value / (d f)``.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> sched = linear_onecycle_schedule(100, peak_value=1.0, pct_start=0.25,
      ...                                  pct_final=0.75, div_factor=10.0)
      >>> [round(float(sched(s)), 6) for s in (0, 25, 50, 75, 100)]
      [0.1, 1.0, 0.55, 0.1, 1e-05]

    Matches ``optax.linear_onecycle_schedule``, except where the rise and the fall end at
    the same step (:math:`\lfloor p_s T \rfloor = \lfloor p_f T \rfloor`, e.g. ``T = 10``,
    ``pct_start=0.3``, ``pct_final=0.35``): optax then never reaches the peak and ends
    ``div_factor`` times below its final value; we raise ValueError.

    Raises:
      ValueError: a bad argument, or a cycle too short for the two fractions.

    Reference: Smith & Topin, "Super-Convergence", 2017, https://arxiv.org/abs/1708.07120.
    """
    fn = "linear_onecycle_schedule"
    steps, ps, div, final = _check_onecycle(fn, transition_steps, peak_value, pct_start,
                                            div_factor, final_div_factor)
    pf = _real_arg(fn, "pct_final", pct_final, low=ps, high=1.0, low_open=True,
                   high_open=True)
    rise_end, fall_end = int(ps * steps), int(pf * steps)
    if rise_end == fall_end:
        # optax's dict of knots loses the peak here: the curve falls from the start and
        # ends div_factor times too low.
        raise ValueError(
            f"{fn}: transition_steps={steps} is too short for pct_start={pct_start!r} and "
            f"pct_final={pct_final!r}: the rise and the fall would both end at step "
            f"{rise_end} (floor(pct * transition_steps)), leaving the fall no step; use "
            "more transition_steps or a pct_final farther from pct_start"
        )
    knots = {rise_end: div, fall_end: 1.0 / div, steps: 1.0 / final}
    return _interpolated(peak_value, knots, 1.0 / div, "linear")


# --------------------------------------------------------------------------- restarts & joins


def join_schedules(
    schedules: Sequence[Callable[[Any], Any]], boundaries: Sequence[int]
) -> Schedule:
    r"""Run ``schedules[i + 1]`` from step ``boundaries[i]`` on, with its step restarted at 0.

    .. math:: \eta_t = s_{i}(t - b_{i-1}) \quad \text{for } b_{i-1} \le t < b_i

    (:math:`b_{-1} = 0`; the first schedule sees the raw step).

    Args:
      schedules: ``n >= 1`` schedules (ours or any ``step -> value`` function).
      boundaries: ``n - 1`` non-decreasing integer steps ``>= 0``.

    Returns:
      A schedule ``step -> value`` (float32).

    Example:
      >>> sched = join_schedules([constant_schedule(1.0), linear_schedule(1.0, 0.0, 10)], [5])
      >>> [round(float(sched(s)), 6) for s in (4, 5, 10, 15)]
      [1.0, 1.0, 0.5, 0.0]

    Matches ``optax.join_schedules``.
    """
    fn = "join_schedules"
    schedules = list(schedules)
    boundaries = list(boundaries)
    if not schedules or not all(callable(s) for s in schedules):
        _fail(fn, "schedules", schedules, "a non-empty sequence of callables")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"{fn}: boundaries must have len(schedules) - 1 = "
                         f"{len(schedules) - 1} entries, got {len(boundaries)}: {boundaries!r}")
    bounds = [_int_arg(fn, f"boundaries[{i}]", b, minimum=0) for i, b in enumerate(boundaries)]
    if any(b1 < b0 for b0, b1 in zip(bounds, bounds[1:], strict=False)):
        _fail(fn, "boundaries", boundaries, "non-decreasing")
    return _join(schedules, bounds)


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
    r"""SGDR as a list of cycles, each a :func:`warmup_cosine_decay_schedule`.

    Cycle ``i`` runs ``warmup_cosine_decay_schedule(**cosine_kwargs[i])`` for its
    ``decay_steps`` steps, restarted at 0; the last cycle continues past its end.

    Args:
      cosine_kwargs: one mapping of :func:`warmup_cosine_decay_schedule` arguments
        (``init_value``, ``peak_value``, ``warmup_steps``, ``decay_steps``, optional
        ``end_value``, ``exponent``) per cycle.

    Returns:
      A schedule ``step -> value``.

    Raises:
      ValueError: an invalid cycle (named by its index), or restarts past step
        :math:`2^{31}-1` (the cycles before the last longer than that in all): steps are
        int32, so such a restart would never come.

    Example:
      >>> cycle = dict(init_value=1.0, peak_value=1.0, warmup_steps=0, decay_steps=10)
      >>> sched = sgdr_schedule([cycle, cycle])
      >>> [round(float(sched(s)), 6) for s in (0, 5, 10, 15)]
      [1.0, 0.5, 1.0, 0.5]

    Matches ``optax.sgdr_schedule``; :func:`cosine_warm_restarts` is the compact form.

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017, https://arxiv.org/abs/1608.03983.
    """
    fn = "sgdr_schedule"
    cycles = list(cosine_kwargs)
    if not cycles:
        _fail(fn, "cosine_kwargs", cycles, "a non-empty sequence of mappings")
    pieces, boundaries, total = [], [], 0
    for i, kw in enumerate(cycles):
        if not isinstance(kw, Mapping) or "decay_steps" not in kw:
            _fail(fn, f"cosine_kwargs[{i}]", kw,
                  "a mapping of warmup_cosine_decay_schedule arguments with decay_steps")
        try:
            pieces.append(warmup_cosine_decay_schedule(**kw))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{fn}: cosine_kwargs[{i}]: {e}") from None
        if i and total > _MAX_TABLE_STEP:
            # Steps are int32 (optax's counter stops at 2**31 - 1): this restart would never
            # come, and the boundary would not even fit the comparison with an int32 step.
            raise ValueError(
                f"{fn}: cosine_kwargs[{i}] would start at step {total}, past 2**31 - 1 = "
                f"{_MAX_TABLE_STEP}, the last step an int32 step counter reaches; the "
                "decay_steps of the cycles before the last must sum to at most 2**31 - 1"
            )
        boundaries.append(total)
        total += int(kw["decay_steps"])
    return _join(pieces, boundaries[1:])


def cosine_warm_restarts(
    init_value: ArrayLike,
    first_period: int,
    period_mult: float = 1.0,
    alpha: float = 0.0,
    decay_factor: float = 1.0,
) -> Schedule:
    r"""Cosine annealing with warm restarts (SGDR), for any number of cycles.

    Cycle :math:`i = 0, 1, \dots` lasts :math:`T_i = T_0 m^i` steps and starts at
    :math:`S_i = \sum_{j<i} T_j`; inside it, with :math:`\tau = t - S_i`,

    .. math::
       \eta_t = \alpha\,\eta^{(i)} + (1 - \alpha)\,\eta^{(i)}\,
                \tfrac12\left(1 + \cos(\pi \tau / T_i)\right),
       \qquad \eta^{(i)} = \eta_0\, \delta^{\,i}

    so every cycle is a :func:`cosine_decay_schedule` with peak :math:`\eta^{(i)}` and
    floor :math:`\alpha\eta^{(i)}` (the floor decays with the peak, unlike Keras'
    ``CosineDecayRestarts`` whose floor stays at :math:`\alpha\eta_0`).

    Args:
      init_value: :math:`\eta_0`, the value at step 0.
      first_period: :math:`T_0 > 0`, the length of the first cycle.
      period_mult: :math:`m \ge 1`, each cycle is ``m`` times longer than the previous
        (Loshchilov & Hutter use 1 or 2). Non-integral periods restart between steps.
      alpha: :math:`\alpha \in [0, 1]`, the floor as a fraction of the cycle's peak.
      decay_factor: :math:`\delta > 0`, the peak of each cycle relative to the previous.

    Returns:
      A schedule ``step -> value``. With ``period_mult > 1`` restart points are tabulated
      up to step :math:`2^{31}-1`.

    Example:
      >>> sched = cosine_warm_restarts(1.0, first_period=10, period_mult=2.0, decay_factor=0.5)
      >>> [round(float(sched(s)), 6) for s in (0, 5, 10, 20, 30, 50)]
      [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017, https://arxiv.org/abs/1608.03983.
    """
    fn = "cosine_warm_restarts"
    _value_arg(fn, "init_value", init_value)
    period = _int_arg(fn, "first_period", first_period, minimum=1)
    mult = _real_arg(fn, "period_mult", period_mult, low=1.0)
    a = _real_arg(fn, "alpha", alpha, low=0.0, high=1.0)
    df = _real_arg(fn, "decay_factor", decay_factor, low=0.0, low_open=True)
    log_df = math.log(df)

    starts_tab = lengths_tab = None
    integral = mult == 1.0 or mult.is_integer()
    if mult != 1.0:
        starts, lengths, s, length = [], [], 0.0, float(period)
        while s <= _MAX_TABLE_STEP:
            starts.append(s)
            lengths.append(length)
            s += length
            length *= mult
        kind = np.int64 if integral else np.float64
        starts_tab = np.asarray(starts, kind)
        # The last cycle tabulated starts by 2**31 - 1 but can end far beyond it: its
        # length would wrap around in int32, so integral lengths that big are held as floats
        # (those below 2**24, every cycle a real run reaches, are exact in float32 too).
        if integral and lengths[-1] > _MAX_TABLE_STEP:
            kind = np.float64
        lengths_tab = np.asarray(lengths, kind)

    def schedule(step: ArrayLike) -> jax.Array:
        t = jnp.maximum(_step(step), 0)
        if starts_tab is None:
            cycle = jnp.floor_divide(t, period)
            tau = t - cycle * period
            length = period
        else:
            work = t.dtype if (integral and jnp.issubdtype(t.dtype, jnp.integer)) else _F32
            t = t.astype(work)
            cycle = jnp.searchsorted(jnp.asarray(starts_tab, work), t, side="right") - 1
            tau = t - jnp.asarray(starts_tab, work)[cycle]
            length_dtype = work if lengths_tab.dtype == starts_tab.dtype else _F32
            length = jnp.asarray(lengths_tab, length_dtype)[cycle]
        remaining, elapsed = _fractions(tau, 0, length)
        keep, move, _ = _cosine_weights(remaining, elapsed)
        peak = _f32(init_value)
        if df != 1.0:
            peak = peak * jnp.exp(cycle.astype(_F32) * _f32(log_df))
        return _blend(peak, peak * a, keep, move, 1.0).astype(_F32)

    return schedule


# --------------------------------------------------------------------------- registry

_FACTORIES: dict[str, Callable[..., Schedule]] = {
    f.__name__: f
    for f in (
        constant_schedule,
        piecewise_constant_schedule,
        step_decay,
        exponential_decay,
        inverse_time_decay,
        polynomial_schedule,
        linear_schedule,
        cosine_decay_schedule,
        linear_warmup,
        warmup_constant_schedule,
        warmup_cosine_decay_schedule,
        warmup_exponential_decay_schedule,
        warmup_linear_decay_schedule,
        cyclic_schedule,
        cosine_onecycle_schedule,
        linear_onecycle_schedule,
        sgdr_schedule,
        cosine_warm_restarts,
    )
}

_ALIASES: dict[str, str] = {
    "constant": "constant_schedule",
    "piecewise_constant": "piecewise_constant_schedule",
    "step": "step_decay",
    "exponential": "exponential_decay",
    "inverse_time": "inverse_time_decay",
    "polynomial": "polynomial_schedule",
    "linear": "linear_schedule",
    "cosine": "cosine_decay_schedule",
    "cosine_decay": "cosine_decay_schedule",
    "warmup": "linear_warmup",
    "warmup_constant": "warmup_constant_schedule",
    "warmup_cosine": "warmup_cosine_decay_schedule",
    "warmup_cosine_decay": "warmup_cosine_decay_schedule",
    "warmup_exponential": "warmup_exponential_decay_schedule",
    "warmup_exponential_decay": "warmup_exponential_decay_schedule",
    "warmup_linear": "warmup_linear_decay_schedule",
    "warmup_linear_decay": "warmup_linear_decay_schedule",
    "cyclic": "cyclic_schedule",
    "clr": "cyclic_schedule",
    "onecycle": "cosine_onecycle_schedule",
    "one_cycle": "cosine_onecycle_schedule",
    "cosine_onecycle": "cosine_onecycle_schedule",
    "linear_onecycle": "linear_onecycle_schedule",
    "sgdr": "sgdr_schedule",
    "warm_restarts": "cosine_warm_restarts",
}


def names() -> tuple[str, ...]:
    """All registered schedule names (function names and short aliases), sorted.

    Returns:
      A tuple of names accepted by :func:`get` and :func:`get_factory`.
    """
    return tuple(sorted({*_FACTORIES, *_ALIASES}))


def get_factory(name: str) -> Callable[..., Schedule]:
    """The factory function registered under ``name`` (a function name or an alias).

    Args:
      name: a schedule name, e.g. ``"cosine"`` or ``"warmup_cosine_decay_schedule"``
        (case and ``-``/``_`` are ignored).

    Returns:
      The factory, e.g. :func:`cosine_decay_schedule`; inspect its signature to see its
      arguments.

    Raises:
      ValueError: for an unknown name, listing the closest valid names, or a name that is
        not a string.
    """
    return _lookup(name, "get_factory")


def _lookup(name: Any, fn: str) -> Callable[..., Schedule]:
    """The factory of ``name``; errors name ``fn``, the function the user called."""
    if not isinstance(name, str):
        raise ValueError(f"schedules.{fn}: name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    factory = _FACTORIES.get(key)
    if factory is None:
        close = difflib.get_close_matches(name.strip().lower(), names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
        raise ValueError(f"schedules.{fn}: unknown schedule {name!r}{hint} "
                         f"Valid names: {', '.join(names())}")
    return factory


def get(name: str, **kwargs: Any) -> Schedule:
    """Build the schedule registered under ``name`` with keyword arguments.

    Args:
      name: a schedule name (see :func:`names`).
      **kwargs: the factory's arguments by name.

    Returns:
      The schedule ``step -> value``.

    Raises:
      ValueError: unknown name (with close matches), unknown or missing arguments (listing
        the valid ones), or invalid argument values.

    Example:
      >>> sched = get("cosine", init_value=0.1, decay_steps=100)
      >>> round(float(sched(50)), 6)
      0.05
    """
    factory = _lookup(name, "get")
    params = inspect.signature(factory).parameters
    valid = list(params)
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"schedules.get({name!r}): unknown argument(s) {', '.join(hints)}; "
                         f"{factory.__name__} takes: {', '.join(valid)}")
    missing = [k for k, p in params.items()
               if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ValueError(f"schedules.get({name!r}): missing required argument(s) "
                         f"{', '.join(missing)}; {factory.__name__} takes: {', '.join(valid)}")
    return factory(**kwargs)
