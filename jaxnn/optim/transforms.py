"""Gradient transformations: the pieces every jaxnn optimizer is chained from.

Contract
--------
Every public function here is a *factory*: it checks its arguments eagerly (outside
``jit``) and returns an :class:`optax.GradientTransformationExtraArgs` built from two
closures::

    init(params) -> state
    update(updates, state, params=None, **extra_args) -> (new_updates, new_state)

so it can be used anywhere optax expects a transformation (``optax.chain``,
``optax.MultiSteps``, ``optax.masked``, ``optax.partition``,
``optax.inject_hyperparams``, ``optax.apply_updates``). The state ``NamedTuple`` of a
transformation is declared right above its factory.

Properties every transformation here keeps:

* **Stable state.** The state is built with ``jax.tree.map`` over the parameters and
  has the same tree structure, shapes and dtypes after every update, so ``update``
  may run inside ``lax.cond``/``lax.scan`` (``optax.MultiSteps`` relies on this).
* **Dtypes follow the gradients.** Scalar hyperparameters, learning rates and
  bias corrections are cast to each gradient leaf's dtype, so bfloat16 parameters
  give bfloat16 updates and float32 stays float32 even with 64-bit types enabled.
  Bias corrections ``1 - beta**t`` are computed first in the widest float precision
  in play and only then cast (in low precision ``beta**t`` would round to 1).
* **Traceable hyperparameters.** No Python ``if`` ever looks at the value of a
  numeric hyperparameter given as an array, so ``optax.inject_hyperparams(factory)(...)``
  works and hyperparameters may be traced arrays. A traced value cannot be checked when
  the transformation is built (``jax.jit(tx.init)``, or a rate changed in an injected
  state under ``jit``), so an out-of-range one becomes NaN instead: the updates are NaN,
  never silently wrong (a negative learning rate would ascend). The one branch on a
  value: :func:`add_decayed_weights` with a Python or NumPy constant 0 adds nothing, as
  in optax.
* **Own buffers.** A state never holds one of the caller's arrays (a learning rate given
  as a jax array is copied into it), so it may be donated (``donate_argnums``) without
  deleting an array the optimizer or the caller still uses.
* **Saturating counters.** Step counts are ``int32`` and advance with
  :func:`optax.safe_increment`, which stops at the largest ``int32`` instead of
  wrapping around.
* **Extra arguments** passed to ``update`` (``value=``, ``loss=``, ...) are accepted
  and ignored.

The formulas, argument names and defaults match the optax transformation of the same
name, so the numbers agree with optax to float32 rounding; every difference is listed
in the docstring concerned. Notation: ``g`` is the incoming update (usually the
gradient), ``t`` the step count *after* the increment (1 on the first update), and all
operations are element-wise.

Errors: a bad argument raises ``ValueError`` (or ``TypeError`` for a wrong type) naming
the function, the argument, the value received and what is allowed. One check waits for
``init``: a decay rate in [0, 1) that rounds to 1 in the dtype of the moment it decays (the
parameters', or ``mu_dtype``) is refused there, since that moving average would never
decay -- ``b2=1 - 1e-8`` for float32 (or narrower) parameters (float64 parameters under
``jax_enable_x64`` take it; without x64 none can be float64 and the factory refuses it at
once), and Adam's default ``b2=0.999`` for bfloat16 parameters, where the largest number
below 1 is 0.99609375 (optax runs on, its bfloat16 second moment only growing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "AddDecayedWeightsState",
    "ScaleByAdaDeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByRmsState",
    "ScaleByStddevState",
    "TraceState",
    "add_decayed_weights",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_rms",
    "scale_by_stddev",
    "trace",
]

Schedule = Callable[[jax.Array], jax.typing.ArrayLike]
ScalarOrSchedule = float | jax.Array | Schedule

_MODULE = "jaxnn.optim"


# --------------------------------------------------------------------------------------
# Eager argument checks (shared with aliases.py and keras.py).
# --------------------------------------------------------------------------------------

_TRACED_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)


def _concrete(fn: str, name: str, value: Any) -> float | None:
    """Returns a scalar hyperparameter as a Python float, or None when it is traced.

    Raises TypeError for a non-numeric value and ValueError for a non-scalar array.
    """
    if isinstance(value, bool | np.bool_) or value is None:
        raise TypeError(f"{_MODULE}.{fn}: {name} must be a real number, got {value!r}.")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        if np.ndim(value) != 0:
            raise ValueError(
                f"{_MODULE}.{fn}: {name} must be a scalar, got an array of shape "
                f"{np.shape(value)}."
            )
        dtype = value.dtype
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
            raise TypeError(
                f"{_MODULE}.{fn}: {name} must be a real number, got an array of dtype {dtype}."
            )
        try:
            return float(value)
        except _TRACED_ERRORS:
            return None  # traced (e.g. under inject_hyperparams + jit): checked when concrete
    raise TypeError(
        f"{_MODULE}.{fn}: {name} must be a real number, got {value!r} "
        f"of type {type(value).__name__}."
    )


def _poisoned(value: Any, ok: jax.Array) -> jax.Array:
    """A traced hyperparameter that cannot be checked when the transformation is built
    (``optax.inject_hyperparams`` under ``jit``): NaN where it is out of range, so a bad
    value makes the updates NaN -- loud, and caught by a training loop's divergence check
    -- instead of silently changing them (a negative learning rate ascends)."""
    return jnp.where(ok, value, jnp.nan)


def _check_nonnegative(fn: str, name: str, value: Any) -> Any:
    """Checks that a scalar hyperparameter is a finite number >= 0; returns it (a traced
    one :func:`_poisoned`)."""
    x = _concrete(fn, name, value)
    if x is None:
        return _poisoned(value, jnp.isfinite(value) & (value >= 0))
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{_MODULE}.{fn}: {name} must be a finite number >= 0, got {value!r}.")
    return value


def _check_unit_interval(fn: str, name: str, value: Any, *, include_one: bool = False) -> Any:
    """Checks that a decay rate lies in [0, 1) (or [0, 1] with ``include_one``); returns it
    (a traced one :func:`_poisoned`).

    A rate in [0, 1) that rounds to 1 in float32 is refused here only without x64; with
    x64 the parameters' dtypes decide, at ``init`` (:func:`_with_rate_check`).
    """
    x = _concrete(fn, name, value)
    if x is None:
        return _poisoned(value, (value >= 0) & ((value <= 1) if include_one else (value < 1)))
    ok = 0.0 <= x <= 1.0 if include_one else 0.0 <= x < 1.0
    if not ok:
        allowed = "[0, 1]" if include_one else "[0, 1)"
        hint = ""
        dtype = getattr(value, "dtype", None)
        if (x == 1.0 and dtype is not None and jnp.issubdtype(dtype, jnp.floating)
                and jnp.finfo(dtype).eps > np.finfo(np.float32).eps):
            # optax.inject_hyperparams casts hyperparameters to the params' dtype. Asking
            # for float32 hyperparameters would not help: the moment of such parameters
            # has their dtype, and the rate is cast to it.
            name_ = jnp.dtype(dtype).name
            top = float(np.nextafter(np.asarray(1, dtype), np.asarray(0, dtype)))
            hint = (f" (optax.inject_hyperparams casts hyperparameters to the parameters' "
                    f"dtype, and a rate below 1 such as 0.999 rounds to 1 in {name_}, where "
                    f"a moving average never decays: keep the parameters in float32, or take "
                    f"{name} <= {top!r})")
        raise ValueError(f"{_MODULE}.{fn}: {name} must be in {allowed}, got {value!r}{hint}.")
    if not include_one and np.float32(x) == 1.0 and not _x64_enabled():
        # Without x64 the update computes in float32 (no parameter can be wider), where the
        # rate is 1: 1 - b**t = 0, updates 0 or inf. With x64 the parameters' dtype decides,
        # so the check waits for init (_with_rate_check).
        raise _rounds_to_one(
            fn, name, value, "without jax_enable_x64 the update computes in float32, where "
            f"it is 1 and 1 - {name}**t is 0 (float64 parameters under jax_enable_x64 accept it)"
        )
    return value


def _x64_enabled() -> bool:
    """Whether float64 arrays exist (``jax_enable_x64``)."""
    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


def _rounds_to_one(fn: str, name: str, value: Any, why: str,
                   dtype: Any = np.float32) -> ValueError:
    real = jnp.finfo(dtype).dtype  # complex64 -> float32
    top = float(np.nextafter(np.asarray(1, real), np.asarray(0, real)))
    return ValueError(
        f"{_MODULE}.{fn}: {name} must be in [0, 1) and below 1 in {real.name} (at most "
        f"{top!r}), got {value!r}: {why}."
    )


def _rounds_to_one_in(x: float, dtype: Any) -> bool:
    """Whether the rate ``x`` is 1 once cast to ``dtype`` (its real part's dtype)."""
    return bool(np.asarray(x, jnp.finfo(dtype).dtype) == 1)


def _with_rate_check(
    fn: str, transformation: optax.GradientTransformation, rates: dict[str, tuple[Any, Any]]
) -> optax.GradientTransformationExtraArgs:
    """``transformation`` whose ``init`` first checks that decay rates in [0, 1) stay below 1
    in the precision they are applied in.

    ``rates`` maps an argument name to ``(value, moment_dtype)``; ``moment_dtype`` is the
    dtype of the moment the rate decays (``mu_dtype``), ``None`` for the parameters'. The
    rate is cast to the moment's dtype, and a rate that rounds to 1 there leaves a moving
    average that never decays: ``1 - 1e-8`` in float32, Adam's default ``b2 = 0.999`` in
    bfloat16 (whose largest number below 1 is 0.99609375; optax silently runs so). Only
    the parameters' dtypes, known at ``init``, say whether that happens, so the check waits
    for them (without x64, :func:`_check_unit_interval` has already refused a rate that
    rounds to 1 in float32 when the factory was called). A traced rate (from
    ``optax.inject_hyperparams`` under ``jit``) is not looked at.
    """

    def check(params: Any) -> None:
        leaf_dtypes = []
        for leaf in jax.tree.leaves(params):
            if hasattr(leaf, "dtype") or isinstance(leaf, int | float | complex):
                leaf_dtypes.append(jax.dtypes.canonicalize_dtype(_dtype(leaf)))
        for name, (value, moment_dtype) in rates.items():
            x = _concrete(fn, name, value)
            if x is None or not 0.0 <= x < 1.0:
                continue
            if moment_dtype is not None:
                dtypes = [jax.dtypes.canonicalize_dtype(moment_dtype)]
                where = "a {} moment (mu_dtype)"
            else:
                dtypes = [d for d in leaf_dtypes if jnp.issubdtype(d, jnp.inexact)]
                where = "{} parameters"
            stuck = [d for d in dtypes if _rounds_to_one_in(x, d)]
            if not stuck:
                continue
            d = min(stuck, key=lambda d: jnp.finfo(d).bits)
            if np.float32(x) == 1.0:
                way_out = ("a float64 mu_dtype accepts it" if moment_dtype is not None
                           else "float64 parameters accept it") + " under jax_enable_x64"
            else:
                top = float(np.nextafter(np.asarray(1, jnp.finfo(d).dtype),
                                         np.asarray(0, jnp.finfo(d).dtype)))
                way_out = ("keep the moment in float32: mu_dtype=jnp.float32"
                           if moment_dtype is not None else
                           "keep the parameters in float32, casting a copy to "
                           f"{jnp.finfo(d).dtype.name} where the model needs it")
                way_out += f", or take {name} <= {top!r}"
            raise _rounds_to_one(
                fn, name, value, f"for {where.format(d.name)} it rounds to 1 and the "
                f"moving average never decays ({way_out})", dtype=d)

    def init_fn(params):
        check(params)
        return transformation.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, transformation.update)


def _check_bool(fn: str, name: str, value: Any) -> None:
    """Structural flags must be Python booleans (they select code paths)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(
            f"{_MODULE}.{fn}: {name} must be a Python bool, got {value!r} "
            f"of type {type(value).__name__}."
        )


def _check_learning_rate(fn: str, value: Any, name: str = "learning_rate") -> Any:
    """A learning rate is a finite number >= 0 or a schedule ``step -> rate``; returns it
    (a traced number :func:`_poisoned`)."""
    if callable(value):
        return value
    return _check_nonnegative(fn, name, value)


def _is_bool_leaf(leaf: Any) -> bool:
    """A mask leaf: a Python/NumPy bool or a scalar bool array (possibly traced)."""
    if isinstance(leaf, bool | np.bool_):
        return True
    if isinstance(leaf, jax.Array | np.ndarray):
        return leaf.dtype == np.bool_ and np.ndim(leaf) == 0
    return False


def _check_mask(fn: str, name: str, mask: Any) -> None:
    """A weight-decay mask is None, a function, or a pytree of booleans.

    As in :func:`optax.masked`, the pytree has the structure of the parameters or of a
    prefix of it, so a bare ``True`` (decay every leaf) or ``False`` (decay none) is a
    valid mask. Anything else (``3``, ``"yes"``, ``1.5``, an int or a non-scalar array)
    would be read by optax as a truth value (``"no"``, ``2`` and ``-1`` decay): write
    ``True`` / ``False``. A function's pytree is checked when ``init`` / ``update`` call it
    (:func:`_checked_mask`).
    """
    if mask is None or callable(mask):
        return
    _check_mask_tree(fn, name, mask)


def _check_mask_tree(fn: str, name: str, mask: Any, returned: bool = False) -> None:
    """A pytree mask (``returned``: the one a mask function returned) of scalar bools."""
    bad = [leaf for leaf in jax.tree.leaves(mask) if not _is_bool_leaf(leaf)]
    if not bad:
        return
    leaf = bad[0]
    if isinstance(leaf, jax.Array | np.ndarray) and np.ndim(leaf) > 0:
        shown = f"an array of shape {np.shape(leaf)} and dtype {leaf.dtype}"
    else:
        shown = f"{leaf!r} of type {type(leaf).__name__}"
    got = shown if leaf is mask else f"a {type(mask).__name__} with the leaf {shown}"
    if returned:
        raise TypeError(
            f"{_MODULE}.{fn}: {name} is a function that must return a pytree of booleans "
            "(one scalar bool per leaf) with the structure of (a prefix of) the params; it "
            f"returned {got}."
        )
    raise TypeError(
        f"{_MODULE}.{fn}: {name} must be None, a pytree of booleans (one scalar bool per "
        "leaf) with the structure of (a prefix of) the params, or a function params -> "
        f"such a pytree; got {got}."
    )


def _checked_mask(fn: str, name: str, mask: Any) -> Any:
    """``mask`` for :func:`optax.masked`; a function's result is checked as a pytree mask
    each time it is called (at trace time under ``jit``: leaves' dtypes are known)."""
    if not callable(mask):
        return mask

    def checked(params: Any) -> Any:
        tree = mask(params)
        _check_mask_tree(fn, name, tree, returned=True)
        return tree

    return checked


def _is_static_zero(value: Any) -> bool:
    """True for a concrete Python or NumPy scalar equal to 0 (never for jax arrays).

    jax arrays (what ``optax.inject_hyperparams`` passes, possibly traced) and schedules
    are not looked at, so the computation never depends on a traced value.
    """
    if isinstance(value, bool | np.bool_) or callable(value):
        return False
    if isinstance(value, int | float | np.generic) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    ):
        return bool(value == 0)
    return False


def _canonical_dtype(fn: str, name: str, dtype: Any) -> Any:
    """Canonicalizes an optional accumulator dtype (float64 -> float32 without x64)."""
    if dtype is None:
        return None
    try:
        canonical = jax.dtypes.canonicalize_dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{_MODULE}.{fn}: {name} must be a dtype or None, got {dtype!r}.") from err
    if not jnp.issubdtype(canonical, jnp.inexact):
        # An integer accumulator would truncate the moments (momentum lost, silently).
        raise TypeError(
            f"{_MODULE}.{fn}: {name} must be a floating dtype (e.g. float32, bfloat16) or "
            f"None, got {dtype!r}."
        )
    return canonical


# --------------------------------------------------------------------------------------
# Small numerical helpers.
# --------------------------------------------------------------------------------------


def _dtype(x: jax.typing.ArrayLike) -> np.dtype:
    """The dtype of a leaf; a Python scalar leaf gets the one ``jnp.asarray`` gives it.

    ``x.dtype`` first: ``jnp.result_type`` widens a weakly typed array (float32 to
    float64 under x64), which would promote the updates.
    """
    return x.dtype if hasattr(x, "dtype") else jnp.result_type(x)


def _as(value: jax.typing.ArrayLike, x: jax.Array) -> jax.Array:
    """``value`` in the dtype of ``x``.

    For a Python float this is exactly what JAX's weak typing does (round to x's dtype);
    for an array hyperparameter (``inject_hyperparams``) it stops a wider dtype from
    promoting the result, which would change the state's dtype.

    ``x`` may be a Python scalar leaf (as optax allows): its dtype is the one
    ``jnp.asarray`` gives it.

    Raises TypeError for a non-floating ``x``: cast to an integer dtype, a learning rate
    of 0.1 would become 0 and the update silently vanish (or turn into ``0 / 0``).
    """
    dtype = _dtype(x)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"{_MODULE}: updates, params and optimizer states must have a floating dtype, "
            f"got a leaf of dtype {dtype}; cast it to a float dtype or leave it out of the "
            "optimizer (e.g. with optax.masked)."
        )
    return jnp.asarray(value, dtype=dtype)


def _abs_sq(g: jax.Array) -> jax.Array:
    """``|g|**2`` (the same HLO as ``g * g`` for real ``g``; real-valued for complex)."""
    if jnp.iscomplexobj(g):
        return (g.conj() * g).real
    return g * g


def _ema(updates: Any, moments: Any, decay: jax.typing.ArrayLike, *, square: bool) -> Any:
    """Exponential moving average ``(1 - decay) * x + decay * m`` with ``x = g`` or ``|g|**2``."""

    def one(g, m):
        x = _abs_sq(g) if square else g
        return _as(1 - decay, x) * x + _as(decay, m) * m

    return jax.tree.map(one, updates, moments)


def _debias(moments: Any, decay: jax.typing.ArrayLike, count: jax.Array) -> Any:
    """Divides by ``1 - decay**count``, computed wide and then cast to each leaf's dtype."""
    correction = 1 - decay**count
    return jax.tree.map(lambda m: m / correction.astype(_dtype(m)), moments)


def _cast_like(tree: Any, like: Any) -> Any:
    """Casts every leaf of ``tree`` to the dtype of the matching leaf of ``like``."""
    return jax.tree.map(lambda x, y: x.astype(y.dtype), tree, like)


def _zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def _transformation(init_fn, update_fn) -> optax.GradientTransformationExtraArgs:
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------------------
# Momentum.
# --------------------------------------------------------------------------------------


class TraceState(NamedTuple):
    """State of :func:`trace`: the momentum buffer, one leaf per parameter."""

    trace: optax.Params


def trace(
    decay: jax.typing.ArrayLike,
    nesterov: bool = False,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Heavy-ball (or Nesterov) momentum: a decaying sum of past updates.

    .. math::

        m_t = g_t + \beta\, m_{t-1}, \qquad
        u_t = \begin{cases} m_t & \text{heavy ball} \\
                             g_t + \beta\, m_t & \text{Nesterov} \end{cases}

    with :math:`m_0 = 0`. This is a *sum* (no :math:`1 - \beta` factor): the steady-state
    step on a constant gradient is :math:`g / (1 - \beta)`. Placed before the learning
    rate (as in :func:`jaxnn.optim.sgd`) it is the textbook momentum
    :math:`v \leftarrow \beta v - \eta g` for a constant :math:`\eta`.

    Args:
      decay: momentum coefficient :math:`\beta`, in [0, 1].
      nesterov: use the Nesterov look-ahead form (Sutskever et al., 2013).
      accumulator_dtype: dtype of the buffer (e.g. ``jnp.bfloat16`` to save memory);
        ``None`` uses the parameters' dtype.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state :class:`TraceState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import trace
      >>> tx = trace(0.9)
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.ones(2), state)
      >>> u, state = tx.update(jnp.ones(2), state)
      >>> u
      Array([1.9, 1.9], dtype=float32)

    References:
      Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
      Sutskever, Martens, Dahl & Hinton, *On the importance of initialization and
      momentum in deep learning*, ICML 2013.
    """
    fn = "trace"
    decay = _check_unit_interval(fn, "decay", decay, include_one=True)
    _check_bool(fn, "nesterov", nesterov)
    accumulator_dtype = _canonical_dtype(fn, "accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        return TraceState(trace=optax.tree.zeros_like(params, dtype=accumulator_dtype))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        momentum = lambda g, m: g + _as(decay, m) * m
        new_trace = jax.tree.map(momentum, updates, state.trace)
        if nesterov:
            updates = jax.tree.map(momentum, updates, new_trace)
        else:
            updates = new_trace
        return updates, TraceState(trace=_cast_like(new_trace, state.trace))

    return _transformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------
# Adaptive per-coordinate scalings.
# --------------------------------------------------------------------------------------


class ScaleByAdagradState(NamedTuple):
    """State of :func:`scale_by_adagrad`: the running sum of squared gradients."""

    sum_of_squares: optax.Updates


def scale_by_adagrad(
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    eps: jax.typing.ArrayLike = 1e-7,
) -> optax.GradientTransformationExtraArgs:
    r"""Adagrad scaling: divide by the root of the sum of all squared gradients so far.

    .. math::

        s_t = s_{t-1} + g_t^2, \qquad
        u_t = \begin{cases} g_t / \sqrt{s_t + \epsilon} & s_t > 0 \\ 0 & s_t = 0
              \end{cases}

    with :math:`s_0` = ``initial_accumulator_value``. :math:`\epsilon` sits *inside* the
    square root (as in optax's ``scale_by_rss``); coordinates that never saw a gradient
    and started at 0 get a zero update rather than ``0 / sqrt(eps)``.

    Args:
      initial_accumulator_value: starting value :math:`s_0` of the accumulator, >= 0.
      eps: small constant inside the square root, >= 0.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByAdagradState`.

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization*, JMLR 2011.
    """
    fn = "scale_by_adagrad"
    initial_accumulator_value = _check_nonnegative(
        fn, "initial_accumulator_value", initial_accumulator_value)
    eps = _check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        return ScaleByAdagradState(
            sum_of_squares=optax.tree.full_like(params, initial_accumulator_value)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        sum_of_squares = jax.tree.map(
            lambda g, s: _abs_sq(g) + s, updates, state.sum_of_squares
        )
        inverse_root = jax.tree.map(
            lambda s: jnp.where(s > 0, jax.lax.rsqrt(s + _as(eps, s)), 0.0), sum_of_squares
        )
        updates = jax.tree.map(lambda r, g: r * g, inverse_root, updates)
        sum_of_squares = _cast_like(sum_of_squares, state.sum_of_squares)
        return updates, ScaleByAdagradState(sum_of_squares=sum_of_squares)

    return _transformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms`: step count and EMA of squared gradients."""

    count: jax.Array  # int32 scalar, saturating
    nu: optax.Updates


def _inverse_root(nu: jax.Array, eps: jax.typing.ArrayLike, eps_in_sqrt: bool) -> jax.Array:
    """``1 / sqrt(nu + eps)`` or ``1 / (sqrt(nu) + eps)``."""
    if eps_in_sqrt:
        return jax.lax.rsqrt(nu + _as(eps, nu))
    return 1 / (jnp.sqrt(nu) + _as(eps, nu))


def scale_by_rms(
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp scaling: divide by the root of an EMA of squared gradients.

    .. math::

        \nu_t = \rho\, \nu_{t-1} + (1 - \rho)\, g_t^2, \qquad
        \hat\nu_t = \begin{cases} \nu_t / (1 - \rho^t) & \text{bias correction} \\
                                   \nu_t & \text{otherwise} \end{cases}

    .. math::

        u_t = \frac{g_t}{\sqrt{\hat\nu_t + \epsilon}} \quad (\texttt{eps\_in\_sqrt})
        \qquad\text{or}\qquad u_t = \frac{g_t}{\sqrt{\hat\nu_t} + \epsilon},

    with :math:`\nu_0` = ``initial_scale``.

    Args:
      decay: EMA rate :math:`\rho` of the squared gradients, in [0, 1).
      eps: stabilizing constant, >= 0.
      initial_scale: starting value :math:`\nu_0`, >= 0 (TensorFlow 1's RMSProp used 1).
      eps_in_sqrt: put :math:`\epsilon` inside the square root (default) or outside.
      bias_correction: divide :math:`\nu_t` by :math:`1 - \rho^t` (then
        ``scale_by_rms(b2, eps_in_sqrt=False, bias_correction=True)`` is Adam with
        ``b1 = 0``).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByRmsState`. Unlike optax (whose state has no count unless
      ``bias_correction``), the state always carries the step count.

    References:
      Tieleman & Hinton, *Lecture 6.5 - RMSProp*, COURSERA: Neural Networks for
      Machine Learning, 2012.
    """
    fn = "scale_by_rms"
    decay = _check_unit_interval(fn, "decay", decay)
    eps = _check_nonnegative(fn, "eps", eps)
    initial_scale = _check_nonnegative(fn, "initial_scale", initial_scale)
    _check_bool(fn, "eps_in_sqrt", eps_in_sqrt)
    _check_bool(fn, "bias_correction", bias_correction)

    def init_fn(params):
        return ScaleByRmsState(
            count=_zero_count(), nu=optax.tree.full_like(params, initial_scale)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = optax.safe_increment(state.count)
        nu = _ema(updates, state.nu, decay, square=True)
        nu_hat = _debias(nu, decay, count) if bias_correction else nu
        updates = jax.tree.map(
            lambda n, g: _inverse_root(n, eps, eps_in_sqrt) * g, nu_hat, updates
        )
        return updates, ScaleByRmsState(count=count, nu=_cast_like(nu, state.nu))

    transformation = _transformation(init_fn, update_fn)
    return _with_rate_check(fn, transformation, {"decay": (decay, None)})


class ScaleByStddevState(NamedTuple):
    """State of :func:`scale_by_stddev`: count, EMA of gradients and of their squares."""

    count: jax.Array  # int32 scalar, saturating
    mu: optax.Updates
    nu: optax.Updates


def scale_by_stddev(
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Centered RMSProp scaling: divide by an estimate of the gradient's standard deviation.

    .. math::

        \mu_t = \rho\,\mu_{t-1} + (1-\rho)\, g_t, \qquad
        \nu_t = \rho\,\nu_{t-1} + (1-\rho)\, g_t^2,

    .. math::

        u_t = \frac{g_t}{\sqrt{\hat\nu_t - \hat\mu_t^2 + \epsilon}}
        \quad (\texttt{eps\_in\_sqrt})
        \qquad\text{or}\qquad
        u_t = \frac{g_t}{\sqrt{\hat\nu_t - \hat\mu_t^2} + \epsilon},

    where the hats divide by :math:`1 - \rho^t` when ``bias_correction`` is set and are
    the plain averages otherwise; :math:`\mu_0 = 0`, :math:`\nu_0` = ``initial_scale``.

    Args:
      decay: EMA rate :math:`\rho`, in [0, 1).
      eps: stabilizing constant, >= 0.
      initial_scale: starting value :math:`\nu_0`, >= 0.
      eps_in_sqrt: put :math:`\epsilon` inside the square root (default) or outside.
      bias_correction: bias-correct both averages.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByStddevState` (which always carries the step count).

    References:
      Graves, *Generating Sequences With Recurrent Neural Networks*, 2013 (eq. 38-45).
    """
    fn = "scale_by_stddev"
    decay = _check_unit_interval(fn, "decay", decay)
    eps = _check_nonnegative(fn, "eps", eps)
    initial_scale = _check_nonnegative(fn, "initial_scale", initial_scale)
    _check_bool(fn, "eps_in_sqrt", eps_in_sqrt)
    _check_bool(fn, "bias_correction", bias_correction)

    def init_fn(params):
        return ScaleByStddevState(
            count=_zero_count(),
            mu=optax.tree.zeros_like(params),
            nu=optax.tree.full_like(params, initial_scale),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = optax.safe_increment(state.count)
        mu = _ema(updates, state.mu, decay, square=False)
        nu = _ema(updates, state.nu, decay, square=True)
        if bias_correction:
            mu_hat, nu_hat = _debias(mu, decay, count), _debias(nu, decay, count)
        else:
            mu_hat, nu_hat = mu, nu
        updates = jax.tree.map(
            lambda m, n, g: _inverse_root(n - _abs_sq(m), eps, eps_in_sqrt) * g,
            mu_hat,
            nu_hat,
            updates,
        )
        new_state = ScaleByStddevState(
            count=count, mu=_cast_like(mu, state.mu), nu=_cast_like(nu, state.nu)
        )
        return updates, new_state

    transformation = _transformation(init_fn, update_fn)
    return _with_rate_check(fn, transformation, {"decay": (decay, None)})


# --------------------------------------------------------------------------------------
# The Adam family.
# --------------------------------------------------------------------------------------


def _check_adam_args(fn: str, b1, b2, eps, eps_root) -> tuple[Any, Any, Any, Any]:
    return (_check_unit_interval(fn, "b1", b1), _check_unit_interval(fn, "b2", b2),
            _check_nonnegative(fn, "eps", eps), _check_nonnegative(fn, "eps_root", eps_root))


def _adam_ratio(m: jax.Array, v: jax.Array, eps, eps_root) -> jax.Array:
    """``m / (sqrt(v + eps_root) + eps)``."""
    return m / (jnp.sqrt(v + _as(eps_root, v)) + _as(eps, v))


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`: count, first moment ``mu``, second moment ``nu``."""

    count: jax.Array  # int32 scalar, saturating
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam scaling (and Nadam with ``nesterov=True``).

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \qquad
        \hat v_t = \frac{v_t}{1-\beta_2^t},

    .. math::

        \hat m_t = \frac{m_t}{1-\beta_1^t} \;\text{(Adam)}, \qquad
        \hat m_t = \beta_1 \frac{m_t}{1-\beta_1^{t+1}}
                   + (1-\beta_1)\frac{g_t}{1-\beta_1^t} \;\text{(Nadam)},

    .. math::

        u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}.

    :math:`\epsilon` is added *outside* the square root of the *bias-corrected*
    :math:`\hat v_t` (Algorithm 1 of Kingma & Ba); Keras adds it to the uncorrected
    :math:`\sqrt{v_t}` instead, see :mod:`jaxnn.optim.keras`. As in optax, the Nadam
    variant omits the extra :math:`\beta_2` factor of Dozat's Algorithm 2.

    Args:
      b1: EMA rate :math:`\beta_1` of the gradients, in [0, 1).
      b2: EMA rate :math:`\beta_2` of the squared gradients, in [0, 1).
      eps: constant added outside the square root, >= 0.
      eps_root: constant added inside the square root, >= 0 (useful when
        differentiating through the update, e.g. in meta-learning).
      mu_dtype: dtype of the first moment ``mu`` (``None``: the parameters' dtype).
      nesterov: use Nesterov momentum (Nadam, Dozat 2016).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByAdamState`.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """
    fn = "scale_by_adam"
    b1, b2, eps, eps_root = _check_adam_args(fn, b1, b2, eps, eps_root)
    _check_bool(fn, "nesterov", nesterov)
    mu_dtype = _canonical_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=_zero_count(),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        mu = _ema(updates, state.mu, b1, square=False)
        nu = _ema(updates, state.nu, b2, square=True)
        count = optax.safe_increment(state.count)
        if nesterov:
            mu_hat = jax.tree.map(
                lambda m, g: _as(b1, m) * m + _as(1 - b1, g) * g,
                _debias(mu, b1, optax.safe_increment(count)),
                _debias(updates, b1, count),
            )
        else:
            mu_hat = _debias(mu, b1, count)
        nu_hat = _debias(nu, b2, count)
        updates = jax.tree.map(lambda m, v: _adam_ratio(m, v, eps, eps_root), mu_hat, nu_hat)
        new_state = ScaleByAdamState(
            count=count, mu=_cast_like(mu, state.mu), nu=_cast_like(nu, state.nu)
        )
        return updates, new_state

    transformation = _transformation(init_fn, update_fn)
    return _with_rate_check(fn, transformation, {"b1": (b1, mu_dtype), "b2": (b2, None)})


class ScaleByAmsgradState(NamedTuple):
    """State of :func:`scale_by_amsgrad`: count, moments and the running max ``nu_max``."""

    count: jax.Array  # int32 scalar, saturating
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


def scale_by_amsgrad(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Any | None = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad scaling: Adam with a non-decreasing second-moment estimate.

    With :math:`m_t, v_t` as in :func:`scale_by_adam`,

    .. math::

        \tilde v_t = \max\!\Big(\tilde v_{t-1},\ \frac{v_t}{1-\beta_2^t}\Big), \qquad
        u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{\tilde v_t + \epsilon_{root}} + \epsilon},

    where each bias correction can be switched off (both off is the paper's version).
    Keras takes the maximum of the *uncorrected* :math:`v_t` instead.

    Args:
      b1: EMA rate of the gradients, in [0, 1).
      b2: EMA rate of the squared gradients, in [0, 1).
      eps: constant added outside the square root, >= 0.
      eps_root: constant added inside the square root, >= 0.
      mu_dtype: dtype of the first moment (``None``: the parameters' dtype).
      bias_correction_mu: divide :math:`m_t` by :math:`1-\beta_1^t`.
      bias_correction_nu: divide :math:`v_t` by :math:`1-\beta_2^t` before the maximum.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByAmsgradState`.

    References:
      Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """
    fn = "scale_by_amsgrad"
    b1, b2, eps, eps_root = _check_adam_args(fn, b1, b2, eps, eps_root)
    _check_bool(fn, "bias_correction_mu", bias_correction_mu)
    _check_bool(fn, "bias_correction_nu", bias_correction_nu)
    mu_dtype = _canonical_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByAmsgradState(
            count=_zero_count(),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=optax.tree.zeros_like(params),
            nu_max=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        mu = _ema(updates, state.mu, b1, square=False)
        nu = _ema(updates, state.nu, b2, square=True)
        count = optax.safe_increment(state.count)
        mu_hat = _debias(mu, b1, count) if bias_correction_mu else mu
        nu_seen = _debias(nu, b2, count) if bias_correction_nu else nu
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_seen)
        updates = jax.tree.map(lambda m, v: _adam_ratio(m, v, eps, eps_root), mu_hat, nu_max)
        new_state = ScaleByAmsgradState(
            count=count,
            mu=_cast_like(mu, state.mu),
            nu=_cast_like(nu, state.nu),
            nu_max=_cast_like(nu_max, state.nu_max),
        )
        return updates, new_state

    transformation = _transformation(init_fn, update_fn)
    return _with_rate_check(fn, transformation, {"b1": (b1, mu_dtype), "b2": (b2, None)})


class ScaleByAdamaxState(NamedTuple):
    """State of :func:`scale_by_adamax`: count, first moment and infinity-norm moment."""

    count: jax.Array  # int32 scalar, saturating
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adamax(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    r"""Adamax scaling: Adam with the infinity norm in place of the second moment.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
        u^{\max}_t = \max(|g_t| + \epsilon,\ \beta_2\, u^{\max}_{t-1}), \qquad
        u_t = \frac{m_t / (1-\beta_1^t)}{u^{\max}_t}.

    The exponentially weighted infinity norm needs no bias correction. :math:`\epsilon`
    is added to :math:`|g_t|` inside the maximum (as optax does), which keeps the
    denominator positive.

    Args:
      b1: EMA rate of the gradients, in [0, 1).
      b2: decay rate of the weighted infinity norm, in [0, 1).
      eps: constant added to :math:`|g_t|`, >= 0.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByAdamaxState`.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 7.1.
    """
    fn = "scale_by_adamax"
    b1 = _check_unit_interval(fn, "b1", b1)
    b2 = _check_unit_interval(fn, "b2", b2)
    eps = _check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        return ScaleByAdamaxState(
            count=_zero_count(),
            mu=optax.tree.zeros_like(params),
            nu=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = optax.safe_increment(state.count)
        mu = _ema(updates, state.mu, b1, square=False)
        nu = jax.tree.map(
            lambda g, n: jnp.maximum(jnp.abs(g) + _as(eps, n), _as(b2, n) * n),
            updates,
            state.nu,
        )
        updates = jax.tree.map(lambda m, n: m / n, _debias(mu, b1, count), nu)
        new_state = ScaleByAdamaxState(
            count=count, mu=_cast_like(mu, state.mu), nu=_cast_like(nu, state.nu)
        )
        return updates, new_state

    transformation = _transformation(init_fn, update_fn)
    return _with_rate_check(fn, transformation, {"b1": (b1, None), "b2": (b2, None)})


class ScaleByAdaDeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`: EMAs of squared gradients and squared steps."""

    e_g: optax.Updates
    e_x: optax.Updates


def scale_by_adadelta(
    rho: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-6,
) -> optax.GradientTransformationExtraArgs:
    r"""Adadelta scaling: a unit-consistent step from two running averages.

    .. math::

        E[g^2]_t = \rho\, E[g^2]_{t-1} + (1-\rho)\, g_t^2, \qquad
        \Delta_t = \frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t,

    .. math::

        E[\Delta^2]_t = \rho\, E[\Delta^2]_{t-1} + (1-\rho)\, \Delta_t^2, \qquad u_t = \Delta_t.

    For complex gradients the squares are :math:`|g_t|^2` and :math:`|\Delta_t|^2`, as in
    every other transform here; optax 0.2.8 squares the complex numbers themselves (its
    averages become complex), so the two differ for complex parameters only.

    Args:
      rho: EMA rate of both averages, in [0, 1).
      eps: constant inside both square roots, >= 0 (it also sets the size of the first
        steps, about :math:`\sqrt{\epsilon / (1-\rho)}`).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByAdaDeltaState`.

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """
    fn = "scale_by_adadelta"
    rho = _check_unit_interval(fn, "rho", rho)
    eps = _check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        return ScaleByAdaDeltaState(
            e_g=optax.tree.zeros_like(params), e_x=optax.tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        e_g = _ema(updates, state.e_g, rho, square=True)
        updates = jax.tree.map(
            lambda g, eg, ex: (jnp.sqrt(ex + _as(eps, ex)) / jnp.sqrt(eg + _as(eps, eg))) * g,
            updates,
            e_g,
            state.e_x,
        )
        e_x = _ema(updates, state.e_x, rho, square=True)
        new_state = ScaleByAdaDeltaState(
            e_g=_cast_like(e_g, state.e_g), e_x=_cast_like(e_x, state.e_x)
        )
        return updates, new_state

    transformation = _transformation(init_fn, update_fn)
    return _with_rate_check(fn, transformation, {"rho": (rho, None)})


class ScaleByLionState(NamedTuple):
    """State of :func:`scale_by_lion`: count and the momentum ``mu``."""

    count: jax.Array  # int32 scalar, saturating
    mu: optax.Updates


def scale_by_lion(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.99,
    mu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Lion scaling: the sign of an interpolation between momentum and gradient.

    .. math::

        u_t = \operatorname{sign}\!\big(\beta_1 m_{t-1} + (1-\beta_1)\, g_t\big), \qquad
        m_t = \beta_2 m_{t-1} + (1-\beta_2)\, g_t.

    Every coordinate moves by exactly the learning rate (or not at all), so Lion
    usually wants a learning rate 3-10x smaller than Adam's. Only optax's default
    ``mode='hard'`` (the sign) is provided.

    Args:
      b1: interpolation weight of the momentum in the step, in [0, 1].
      b2: EMA rate of the momentum, in [0, 1].
      mu_dtype: dtype of the momentum (``None``: the parameters' dtype).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByLionState`.

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023.
    """
    fn = "scale_by_lion"
    b1 = _check_unit_interval(fn, "b1", b1, include_one=True)
    b2 = _check_unit_interval(fn, "b2", b2, include_one=True)
    mu_dtype = _canonical_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByLionState(
            count=_zero_count(), mu=optax.tree.zeros_like(params, dtype=mu_dtype)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        new_updates = jax.tree.map(
            lambda g, m: jnp.sign(_as(1.0 - b1, g) * g + _as(b1, m) * m), updates, state.mu
        )
        mu = _ema(updates, state.mu, b2, square=False)
        new_state = ScaleByLionState(
            count=optax.safe_increment(state.count), mu=_cast_like(mu, state.mu)
        )
        return new_updates, new_state

    return _transformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------
# Weight decay and the learning rate.
# --------------------------------------------------------------------------------------


class AddDecayedWeightsState(NamedTuple):
    """State of :func:`add_decayed_weights`: step count (read by a weight-decay schedule)."""

    count: jax.Array  # int32 scalar, saturating


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Add the parameters scaled by a weight-decay rate: :math:`u_t = g_t + \lambda_t\, p_t`.

    Chained *after* an adaptive scaling and before the learning rate, this is the
    decoupled weight decay of AdamW (the decay is not divided by
    :math:`\sqrt{\hat v}`); chained before, it is L2 regularization.

    Args:
      weight_decay: rate :math:`\lambda >= 0`, or a schedule ``step -> rate`` read at
        the count of updates done so far (0 on the first update). A Python or NumPy
        constant 0 adds nothing: the updates pass through unchanged, as in optax, so an
        ``inf`` parameter does not turn its update into ``nan`` (:math:`0 \cdot \infty`).
        A zero given as a jax array (e.g. by ``optax.inject_hyperparams``) or returned
        by a schedule is still multiplied in.
      mask: which leaves to decay: ``None`` (all), a pytree of booleans with the
        structure of (a prefix of) the parameters, or a function ``params -> such a
        tree``. Typically biases and normalization scales are left undecayed. A bare
        ``True`` decays every leaf and ``False`` none (a one-leaf prefix, as in
        :func:`optax.masked`, which implements the mask). Any other value (``3``,
        ``"yes"``, an int leaf) raises ``TypeError`` -- also in the pytree a function
        returns, when it is called: optax would read it as a truth value (``2``, ``-1``
        and ``"no"`` decay).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`; ``update`` requires ``params``.

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    fn = "add_decayed_weights"
    weight_decay = _check_learning_rate(fn, weight_decay, name="weight_decay")
    _check_mask(fn, "mask", mask)
    skip = _is_static_zero(weight_decay)

    def init_fn(params):
        del params
        return AddDecayedWeightsState(count=_zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                f"{_MODULE}.{fn}: update needs the current params (pass params=...) "
                "to add the decayed weights."
            )
        new_state = AddDecayedWeightsState(count=optax.safe_increment(state.count))
        if skip:
            return updates, new_state
        rate = weight_decay(state.count) if callable(weight_decay) else weight_decay
        updates = jax.tree.map(lambda g, p: g + _as(rate, p) * p, updates, params)
        return updates, new_state

    transformation = _transformation(init_fn, update_fn)
    if mask is not None:
        return optax.masked(transformation, _checked_mask(fn, "mask", mask))
    return transformation


class ScaleByLearningRateState(NamedTuple):
    """State of :func:`scale_by_learning_rate`.

    Attributes:
      count: number of updates done so far (int32, saturating).
      learning_rate: the learning rate used by the latest update (before any update:
        the one the first update will use). Read it with
        :func:`jaxnn.optim.current_learning_rate`.
    """

    count: jax.Array
    learning_rate: jax.Array


def _record_dtype(params: Any) -> jnp.dtype:
    """dtype in which the learning rate is recorded: at least float32."""
    dtypes = [
        jnp.result_type(x)
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    widest = jnp.result_type(*dtypes) if dtypes else jnp.float32
    return jnp.promote_types(widest, jnp.float32)


def _fresh_scalar(value: jax.typing.ArrayLike, dtype: Any) -> jax.Array:
    """``value`` as a new array of ``dtype``, never the caller's own array.

    ``jnp.asarray`` returns a jax array of the right dtype as it is, so a learning rate
    given as ``jnp.float32(0.1)`` (or a schedule returning a captured array) would become
    a leaf of the state: donating the state to a jitted function
    (``donate_argnums``) would then delete the caller's array, and with it the rate the
    optimizer multiplies by, failing every later update with "Array has been deleted".
    """
    return jnp.array(value, dtype=dtype, copy=True)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule,
    *,
    flip_sign: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Multiply by the (negated) learning rate: :math:`u_t = -\eta_t\, g_t`.

    :math:`\eta_t` is ``learning_rate`` itself, or ``learning_rate(count)`` for a
    schedule, where ``count`` is the number of updates done so far (0 on the first
    update). The rate is cast to each gradient leaf's dtype before multiplying.
    Unlike optax (whose constant-rate version keeps no state), the state always records
    the step count *and* the rate used by the latest update, so training code can log
    it at any step (:func:`jaxnn.optim.current_learning_rate`).

    Args:
      learning_rate: a finite number >= 0, or a schedule ``step -> rate``. Required:
        optax's default ``None`` means no scaling at all, which also skips the sign flip
        (the updates would ascend); here ``None`` raises ``TypeError``.
      flip_sign: negate (the default), so that ``optax.apply_updates`` descends.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ScaleByLearningRateState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import scale_by_learning_rate
      >>> tx = scale_by_learning_rate(optax.exponential_decay(0.1, 1, 0.5))
      >>> state = tx.init(jnp.zeros(2))
      >>> for _ in range(3):
      ...     u, state = tx.update(jnp.ones(2), state)
      >>> u, state.learning_rate  # the third update used 0.1 * 0.5**2
      (Array([-0.025, -0.025], dtype=float32), Array(0.025, dtype=float32))
    """
    fn = "scale_by_learning_rate"
    if learning_rate is None:
        raise TypeError(
            f"{_MODULE}.{fn}: learning_rate must be a number >= 0 or a schedule, got None."
        )
    learning_rate = _check_learning_rate(fn, learning_rate)
    _check_bool(fn, "flip_sign", flip_sign)
    sign = -1 if flip_sign else 1

    def rate_at(count):
        return learning_rate(count) if callable(learning_rate) else learning_rate

    def init_fn(params):
        count = _zero_count()
        return ScaleByLearningRateState(
            count=count, learning_rate=_fresh_scalar(rate_at(count), _record_dtype(params))
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        rate = rate_at(state.count)
        step = sign * rate  # negation is exact: no double rounding before the cast
        updates = jax.tree.map(lambda g: _as(step, g) * g, updates)
        new_state = ScaleByLearningRateState(
            count=optax.safe_increment(state.count),
            learning_rate=_fresh_scalar(rate, state.learning_rate.dtype),
        )
        return updates, new_state

    return _transformation(init_fn, update_fn)
