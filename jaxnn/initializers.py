"""Weight initializers: one signature, one variance-scaling core, named schemes on top.

Contract. An *initializer* is a pure function::

    init(key, shape, dtype=jnp.float32) -> Array   # shape == tuple(shape), dtype == dtype

that draws its values from the explicit PRNG ``key`` only (same key, same array;
nothing is seeded globally). ``zeros`` and ``ones`` are initializers themselves; every
other public name is a *factory* that checks its arguments eagerly and returns an
initializer, as in :mod:`jax.nn.initializers` (``he_normal()`` returns an initializer).

The core is :func:`variance_scaling`. For a weight ``W`` with fans ``fan_in`` and
``fan_out`` (see :func:`compute_fans`) it draws i.i.d. entries with

    E[W] = 0,    Var[W] = scale / n,
    n = fan_in | fan_out | (fan_in + fan_out) / 2      (mode "fan_in" | "fan_out" | "fan_avg")

from one of three distributions of that exact variance:

* ``"normal"``: ``N(0, scale / n)``.
* ``"truncated_normal"``: a normal truncated at two of its standard deviations and
  rescaled so that the variance stays exactly ``scale / n``: the untruncated
  standard deviation is ``sqrt(scale / n) / 0.8796...``, where ``0.8796...`` is the
  standard deviation of a standard normal truncated to ``(-2, 2)``.
* ``"uniform"``: ``U(-limit, limit)`` with ``limit = sqrt(3 * scale / n)``.

The named schemes are variance scaling with fixed arguments, identical in
distribution to the :mod:`jax.nn.initializers` functions of the same name (the
``*_normal`` ones use the truncated normal, as jax and Keras do; PyTorch's
``kaiming_normal_`` uses the untruncated normal of the same variance):

=================================  =======  ==========  ===========================
name (alias)                       scale    mode        reference
=================================  =======  ==========  ===========================
glorot_normal / xavier_normal      1        fan_avg     Glorot & Bengio (2010)
glorot_uniform / xavier_uniform    1        fan_avg     Glorot & Bengio (2010)
he_normal / kaiming_normal         2        fan_in      He et al. (2015)
he_uniform / kaiming_uniform       2        fan_in      He et al. (2015)
lecun_normal                       1        fan_in      LeCun et al. (1998)
lecun_uniform                      1        fan_in      LeCun et al. (1998)
=================================  =======  ==========  ===========================

Also: ``normal(stddev=0.01)``, ``uniform(scale=0.05)`` (``U(-scale, scale)``),
``orthogonal(scale=1.0)`` (Saxe et al., 2014), ``constant(value)``, ``zeros``, ``ones``;
the registry :func:`get` / :func:`names` / :func:`serialize`; and :func:`gain`, the
recommended scale factor for an activation.

Dtypes. Random initializers accept real floating dtypes only (float16, bfloat16,
float32, float64). For dtypes narrower than 32 bits the sample is drawn in float32 and
rounded once to the requested dtype (``jax.random`` in bfloat16 draws from only 2^7
mantissa values, which distorts the distribution); bounded draws (uniform, truncated
normal) are then clipped to the largest value of that dtype inside the documented
support, so rounding never lands a value beyond ``limit`` or the truncation bound.
``zeros``/``ones``/``constant`` accept any dtype.

References:
  * X. Glorot and Y. Bengio, "Understanding the difficulty of training deep
    feedforward neural networks", AISTATS 2010.
  * K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers: surpassing
    human-level performance on ImageNet classification", ICCV 2015.
  * Y. LeCun, L. Bottou, G. Orr and K.-R. Mueller, "Efficient BackProp", in
    Neural Networks: Tricks of the Trade, Springer 1998.
  * A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to the nonlinear
    dynamics of learning in deep linear neural networks", ICLR 2014.
  * F. Mezzadri, "How to generate random matrices from the classical compact
    groups", Notices of the AMS 54(5), 2007 (sign fix that makes QR samples Haar).
  * G. Klambauer, T. Unterthiner, A. Mayr and S. Hochreiter, "Self-normalizing
    neural networks", NeurIPS 2017 (SELU).
"""

from __future__ import annotations

import difflib
import inspect
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DISTRIBUTIONS",
    "Initializer",
    "MODES",
    "compute_fans",
    "constant",
    "gain",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "names",
    "normal",
    "ones",
    "orthogonal",
    "serialize",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Array = jax.Array
DTypeLike = Any
Axis = int | Sequence[int]
Initializer = Callable[..., Array]
"""``(key, shape, dtype=jnp.float32) -> Array``."""

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


def _truncated_std(a: float) -> float:
    """Std of a standard normal conditioned on ``|z| < a``.

    ``Var = 1 - 2 a phi(a) / (2 Phi(a) - 1)``, with ``phi``/``Phi`` the standard normal
    pdf/cdf (``2 Phi(a) - 1 = erf(a / sqrt(2))``); 0.87962566... for ``a = 2``.
    """
    pdf = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
    mass = math.erf(a / math.sqrt(2.0))
    return math.sqrt(1.0 - 2.0 * a * pdf / mass)


_TRUNCATION = 2.0  # truncated normals are cut at 2 of their standard deviations
_TRUNCATED_STD = _truncated_std(_TRUNCATION)

# Attribute holding (registry name, keyword arguments) on every initializer built here.
_SPEC_ATTR = "_jaxnn_initializer_spec"


# --------------------------------------------------------------------------------------
# Argument checks (eager, outside jit)
# --------------------------------------------------------------------------------------


def _is_prng_key(value: Any, raw: bool) -> bool:
    """A typed PRNG key (``jax.random.key``), or with ``raw`` also a raw one
    (``jax.random.PRNGKey``: a uint32 jax array of shape ``(2,)``)."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or isinstance(value, jax.core.Tracer):
        return False
    try:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return True
    except TypeError:  # a dtype numpy cannot read (another library's scalar): no key
        return False
    return (raw and isinstance(value, jax.Array) and dtype == jnp.uint32
            and np.shape(value) == (2,))


def _refuse_key(fn: str, argname: str, value: Any, raw: bool = True) -> None:
    """A factory called as if it were the initializer (``glorot_normal(key, shape)``, the
    PyTorch habit) gets the call that works, not a complaint about ``argname``. ``raw``:
    also a raw uint32 key (not where such an array is a valid argument: constant's value)."""
    if _is_prng_key(value, raw):
        name = fn.rsplit(".", 1)[-1]
        factory = globals().get(name)
        required = [
            p.name for p in inspect.signature(factory).parameters.values()
            if p.default is inspect.Parameter.empty
        ] if callable(factory) else []
        raise TypeError(
            f"{fn}: got a PRNG key for {argname}: {name}(...) makes an initializer and "
            f"takes no key; call what it returns with the key: "
            f"{fn}({', '.join(required)})(key, shape)"
        )


def _check_positive(fn: str, argname: str, value: Any) -> Any:
    """``value`` as a Python float after checking it is a finite real > 0.

    A JAX tracer (e.g. a scale swept with ``vmap``) cannot be inspected and is
    returned unchecked.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    _refuse_key(fn, argname, value)
    if isinstance(value, (bool, str, bytes)) or np.ndim(value) != 0:
        raise ValueError(f"{fn}: {argname} must be a real scalar > 0, got {value!r}")
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {argname} must be a real scalar > 0, got {value!r}") from None
    if not math.isfinite(as_float) or as_float <= 0.0:
        raise ValueError(f"{fn}: {argname} must be a finite real > 0, got {value!r}")
    return as_float


def _check_choice(fn: str, argname: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{fn}: {argname} must be one of {', '.join(map(repr, allowed))}, got {value!r}{hint}"
        )
    return value


def _check_axis_arg(fn: str, argname: str, axis: Any) -> int | tuple[int, ...]:
    def is_int(a: Any) -> bool:
        return not isinstance(a, bool) and isinstance(a, (int, np.integer))

    if is_int(axis):
        return int(axis)
    _refuse_key(fn, argname, axis)
    if isinstance(axis, Sequence) and not isinstance(axis, str) and all(map(is_int, axis)):
        return tuple(int(a) for a in axis)
    raise ValueError(f"{fn}: {argname} must be an int or a sequence of ints, got {axis!r}")


def _canonical_shape(fn: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"{fn}: shape must be a tuple of non-negative ints, got {shape!r}")
    dims = []
    for d in shape:
        try:
            dims.append(operator.index(d))
        except TypeError:
            raise TypeError(
                f"{fn}: shape must be a tuple of non-negative ints, got {shape!r}"
            ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{fn}: shape must be a tuple of non-negative ints, got {shape!r}")
    return tuple(dims)


def _float_dtype(fn: str, dtype: DTypeLike) -> np.dtype:
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"{fn}: dtype must be a real floating dtype, got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(
            f"{fn}: dtype must be a real floating dtype (float16, bfloat16, float32, "
            f"float64), got {dt}"
        )
    return dt


def _sampling_dtype(dtype: np.dtype) -> np.dtype:
    """Draw in at least float32; narrower dtypes are rounded from a float32 sample."""
    return dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)


def _inner_bound(bound: Any, dtype: np.dtype, strict: bool) -> Any:
    """The largest value of ``dtype`` that is ``< bound`` (``strict``) or ``<= bound``.

    Rounding a float32 sample to float16/bfloat16 rounds to nearest, so a draw just below
    the bound could land one step of the narrow dtype beyond it; clipping to this value
    keeps the documented support. ``bound`` is a Python float (compared exactly) or, for a
    traced scale, an array of the sampling dtype (compared at that precision).
    """
    if isinstance(bound, float):
        b = np.asarray(bound, dtype)
        zero = np.zeros((), dtype)
        while float(b) > bound or (strict and float(b) == bound):
            b = np.nextafter(b, zero)
        return b
    ref = jnp.asarray(bound)
    b = ref.astype(dtype)
    back = b.astype(ref.dtype)
    past = back >= ref if strict else back > ref
    return jnp.where(past, jnp.nextafter(b, jnp.zeros_like(b)), b)


def _round_within(w: Array, dtype: np.dtype, bound: Any, lower_inclusive: bool) -> Array:
    """``w`` rounded to ``dtype`` and clipped into ``[-bound, bound)`` (``lower_inclusive``)
    or ``(-bound, bound)``, exactly in ``dtype``."""
    hi = _inner_bound(bound, dtype, strict=True)
    lo = -_inner_bound(bound, dtype, strict=not lower_inclusive)
    return jnp.clip(w.astype(dtype), lo, hi)


def _tag(init: Initializer, name: str, kwargs: dict[str, Any]) -> Initializer:
    setattr(init, _SPEC_ATTR, (name, dict(kwargs)))
    init.__name__ = init.__qualname__ = name
    return init


# --------------------------------------------------------------------------------------
# Fans and variance scaling
# --------------------------------------------------------------------------------------


def _normalize_axes(fn: str, argname: str, axis: int | tuple[int, ...], rank: int) -> list[int]:
    axes = [axis] if isinstance(axis, int) else list(axis)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"{fn}: {argname}={axis!r} is out of range for a shape of rank {rank}")
        out.append(a % rank)
    return out


def compute_fans(
    shape: Sequence[int],
    in_axis: Axis = -2,
    out_axis: Axis = -1,
    batch_axis: Axis = (),
) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of the given shape.

    For rank >= 2 the axes that are neither input, output nor batch axes form the
    receptive field (e.g. a convolution kernel's spatial axes)::

        rf      = prod(shape[a] for a not in in_axis, out_axis, batch_axis)
        fan_in  = prod(shape[in_axis])  * rf
        fan_out = prod(shape[out_axis]) * rf

    With the default axes, a dense kernel ``(in, out)`` has fans ``(in, out)`` and a
    convolution kernel ``(*spatial, in, out)`` has ``rf = prod(spatial)``, so
    ``(3, 3, 64, 128)`` gives ``(576, 1152)``. Batch axes (e.g. stacked per-head
    kernels) count in neither fan.

    Lower ranks (the axis arguments are ignored): a 0-D shape has ``fan_in = fan_out =
    1``; a 1-D shape ``(n,)`` has ``fan_in = fan_out = n`` (the convention of Keras;
    :mod:`jax.nn.initializers` raises instead).

    Args:
      shape: the weight's shape.
      in_axis: axis or axes of the inputs (default ``-2``).
      out_axis: axis or axes of the outputs (default ``-1``).
      batch_axis: axis or axes excluded from both fans (default none).

    Returns:
      ``(fan_in, fan_out)`` as Python ints.
    """
    return _compute_fans("jaxnn.initializers.compute_fans", shape, in_axis, out_axis, batch_axis)


def _compute_fans(
    fn: str, shape: Sequence[int], in_axis: Axis, out_axis: Axis, batch_axis: Axis
) -> tuple[int, int]:
    """:func:`compute_fans`, its errors naming ``fn`` (the initializer the user called)."""
    shape = _canonical_shape(fn, shape)
    rank = len(shape)
    if rank == 0:
        return 1, 1
    if rank == 1:
        return shape[0], shape[0]
    ins = _normalize_axes(fn, "in_axis", _check_axis_arg(fn, "in_axis", in_axis), rank)
    outs = _normalize_axes(fn, "out_axis", _check_axis_arg(fn, "out_axis", out_axis), rank)
    batch = _normalize_axes(fn, "batch_axis", _check_axis_arg(fn, "batch_axis", batch_axis), rank)
    used = ins + outs + batch
    if len(set(used)) != len(used):
        raise ValueError(
            f"{fn}: in_axis={in_axis!r}, out_axis={out_axis!r} and batch_axis="
            f"{batch_axis!r} must name distinct axes of a rank-{rank} shape {shape}"
        )
    receptive = math.prod(d for a, d in enumerate(shape) if a not in used)
    fan_in = math.prod(shape[a] for a in ins) * receptive
    fan_out = math.prod(shape[a] for a in outs) * receptive
    return fan_in, fan_out


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: Axis = -2,
    out_axis: Axis = -1,
    batch_axis: Axis = (),
) -> Initializer:
    """Initializer with zero mean and variance ``scale / n``, ``n`` chosen by ``mode``.

        Var[W] = scale / n,   n = fan_in                   (mode "fan_in")
                                  fan_out                  (mode "fan_out")
                                  (fan_in + fan_out) / 2   (mode "fan_avg")

    Distributions, each with exactly that variance ``v = scale / n``:

    * ``"normal"``: ``N(0, v)``.
    * ``"truncated_normal"``: ``N(0, s^2)`` conditioned on ``|W| < 2 s``, with
      ``s = sqrt(v) / 0.87962566...`` (0.8796... = std of a standard normal truncated
      to ``(-2, 2)``), so ``|W| < 2 sqrt(v) / 0.8796...`` always.
    * ``"uniform"``: ``U(-sqrt(3 v), sqrt(3 v))``.

    Fans come from :func:`compute_fans` (receptive field = the axes that are neither
    ``in_axis``, ``out_axis`` nor ``batch_axis``; 0-D and 1-D shapes are documented
    there). Empty shapes give an empty array.

    Example: PyTorch's ``xavier_uniform_(w, gain=g)`` is
    ``variance_scaling(g**2, "fan_avg", "uniform")``.

    Args:
      scale: variance multiplier, a finite real > 0 (e.g. ``gain(activation) ** 2``).
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
      in_axis, out_axis, batch_axis: see :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Raises:
      ValueError: ``scale`` not a finite real > 0, unknown ``mode`` or
        ``distribution``, bad axes.
    """
    return _variance_scaling(
        "variance_scaling", scale, mode, distribution, in_axis, out_axis, batch_axis
    )


def _variance_scaling(
    name: str,
    scale: float,
    mode: str,
    distribution: str,
    in_axis: Axis,
    out_axis: Axis,
    batch_axis: Axis,
) -> Initializer:
    """:func:`variance_scaling` built for the public factory ``name``: its argument checks
    and the errors of the initializer it returns (dtype, shape, fans) name
    ``jaxnn.initializers.<name>``, the function the user called, not this core."""
    fn = f"jaxnn.initializers.{name}"
    scale = _check_positive(fn, "scale", scale)
    mode = _check_choice(fn, "mode", mode, MODES)
    distribution = _check_choice(fn, "distribution", distribution, DISTRIBUTIONS)
    in_axis = _check_axis_arg(fn, "in_axis", in_axis)
    out_axis = _check_axis_arg(fn, "out_axis", out_axis)
    batch_axis = _check_axis_arg(fn, "batch_axis", batch_axis)

    def init(key: Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
        shape = _canonical_shape(fn, shape)
        dtype = _float_dtype(fn, dtype)
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype)
        fan_in, fan_out = _compute_fans(fn, shape, in_axis, out_axis, batch_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        std = (scale / n) ** 0.5  # a Python float unless scale is traced: no promotion
        sample_dtype = _sampling_dtype(dtype)
        if distribution == "normal":
            w = jax.random.normal(key, shape, sample_dtype) * std
            return w.astype(dtype)
        if distribution == "truncated_normal":
            z = jax.random.truncated_normal(key, -_TRUNCATION, _TRUNCATION, shape, sample_dtype)
            w = z * (std / _TRUNCATED_STD)
            return _round_within(w, dtype, _TRUNCATION * std / _TRUNCATED_STD, False)
        u = jax.random.uniform(key, shape, sample_dtype, -1.0, 1.0)
        limit = std * math.sqrt(3.0)
        return _round_within(u * limit, dtype, limit, True)

    return _tag(
        init,
        "variance_scaling",
        dict(
            scale=scale,
            mode=mode,
            distribution=distribution,
            in_axis=in_axis,
            out_axis=out_axis,
            batch_axis=batch_axis,
        ),
    )


def _scheme(
    name: str,
    scale: float,
    mode: str,
    distribution: str,
    axes: tuple[Axis, Axis, Axis],
    called: str | None = None,
) -> Initializer:
    """The named scheme ``name``; its errors name ``called``, the alias the user called
    (``xavier_normal``), when it is not ``name`` itself."""
    init = _variance_scaling(called or name, scale, mode, distribution, *axes)
    in_axis, out_axis, batch_axis = axes
    return _tag(init, name, dict(in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis))


def glorot_normal(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """Glorot (Xavier) normal initializer: ``Var[W] = 2 / (fan_in + fan_out)``.

    ``variance_scaling(1.0, "fan_avg", "truncated_normal")``: ``W`` is ``N(0, s^2)``
    truncated to ``(-2 s, 2 s)`` with ``s = sqrt(2 / (fan_in + fan_out)) / 0.8796...``.
    Equal forward and backward variance can only both hold when ``fan_in == fan_out``;
    the harmonic compromise keeps activations and gradients of a linear(ized) network
    at roughly constant variance through depth. Same distribution as
    ``jax.nn.initializers.glorot_normal``.

    Args:
      in_axis, out_axis, batch_axis: axes for :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Reference:
      X. Glorot and Y. Bengio, Understanding the difficulty of training deep
      feedforward neural networks, AISTATS 2010.
    """
    return _scheme(
        "glorot_normal", 1.0, "fan_avg", "truncated_normal", (in_axis, out_axis, batch_axis)
    )


def glorot_uniform(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """Glorot (Xavier) uniform initializer: ``W ~ U(-limit, limit)``.

    ``variance_scaling(1.0, "fan_avg", "uniform")``:
    ``limit = sqrt(6 / (fan_in + fan_out))``, so ``Var[W] = 2 / (fan_in + fan_out)``
    (the "normalized initialization", eq. 16 of the paper). Same distribution as
    ``jax.nn.initializers.glorot_uniform``.

    Args:
      in_axis, out_axis, batch_axis: axes for :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Reference:
      X. Glorot and Y. Bengio, Understanding the difficulty of training deep
      feedforward neural networks, AISTATS 2010.
    """
    return _scheme("glorot_uniform", 1.0, "fan_avg", "uniform", (in_axis, out_axis, batch_axis))


def he_normal(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """He (Kaiming) normal initializer: ``Var[W] = 2 / fan_in``.

    ``variance_scaling(2.0, "fan_in", "truncated_normal")``: ``W`` is ``N(0, s^2)``
    truncated to ``(-2 s, 2 s)`` with ``s = sqrt(2 / fan_in) / 0.8796...``. A ReLU
    zeroes half of its input's second moment; the factor 2 compensates, so the
    variance of the pre-activations stays constant through depth. Same distribution
    as ``jax.nn.initializers.he_normal`` (PyTorch's ``kaiming_normal_`` uses the
    untruncated normal of the same variance).

    Args:
      in_axis, out_axis, batch_axis: axes for :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Reference:
      K. He, X. Zhang, S. Ren and J. Sun, Delving deep into rectifiers: surpassing
      human-level performance on ImageNet classification, ICCV 2015.
    """
    return _scheme("he_normal", 2.0, "fan_in", "truncated_normal", (in_axis, out_axis, batch_axis))


def he_uniform(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """He (Kaiming) uniform initializer: ``W ~ U(-limit, limit)``, ``limit = sqrt(6 / fan_in)``.

    ``variance_scaling(2.0, "fan_in", "uniform")``, so ``Var[W] = 2 / fan_in``. Same
    distribution as ``jax.nn.initializers.he_uniform``.

    Args:
      in_axis, out_axis, batch_axis: axes for :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Reference:
      K. He, X. Zhang, S. Ren and J. Sun, Delving deep into rectifiers: surpassing
      human-level performance on ImageNet classification, ICCV 2015.
    """
    return _scheme("he_uniform", 2.0, "fan_in", "uniform", (in_axis, out_axis, batch_axis))


def lecun_normal(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """LeCun normal initializer: ``Var[W] = 1 / fan_in``.

    ``variance_scaling(1.0, "fan_in", "truncated_normal")``: ``W`` is ``N(0, s^2)``
    truncated to ``(-2 s, 2 s)`` with ``s = sqrt(1 / fan_in) / 0.8796...``. Inputs of
    unit variance then give pre-activations of unit variance (the recommended
    initialization of "Efficient BackProp", and the one SELU networks need). Same
    distribution as ``jax.nn.initializers.lecun_normal``.

    Args:
      in_axis, out_axis, batch_axis: axes for :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Reference:
      Y. LeCun, L. Bottou, G. Orr and K.-R. Mueller, Efficient BackProp, in Neural
      Networks: Tricks of the Trade, Springer 1998.
    """
    return _scheme(
        "lecun_normal", 1.0, "fan_in", "truncated_normal", (in_axis, out_axis, batch_axis)
    )


def lecun_uniform(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """LeCun uniform initializer: ``W ~ U(-limit, limit)``, ``limit = sqrt(3 / fan_in)``.

    ``variance_scaling(1.0, "fan_in", "uniform")``, so ``Var[W] = 1 / fan_in``. Same
    distribution as ``jax.nn.initializers.lecun_uniform``.

    Args:
      in_axis, out_axis, batch_axis: axes for :func:`compute_fans`.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Reference:
      Y. LeCun, L. Bottou, G. Orr and K.-R. Mueller, Efficient BackProp, in Neural
      Networks: Tricks of the Trade, Springer 1998.
    """
    return _scheme("lecun_uniform", 1.0, "fan_in", "uniform", (in_axis, out_axis, batch_axis))


def xavier_normal(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """:func:`glorot_normal` under PyTorch's name (same initializer, same serialized name
    ``glorot_normal``; its errors name ``xavier_normal``)."""
    return _scheme("glorot_normal", 1.0, "fan_avg", "truncated_normal",
                   (in_axis, out_axis, batch_axis), called="xavier_normal")


def xavier_uniform(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """:func:`glorot_uniform` under PyTorch's name (same initializer, same serialized name
    ``glorot_uniform``; its errors name ``xavier_uniform``)."""
    return _scheme("glorot_uniform", 1.0, "fan_avg", "uniform",
                   (in_axis, out_axis, batch_axis), called="xavier_uniform")


def kaiming_normal(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """:func:`he_normal` under PyTorch's name (same initializer -- jax's truncated normal,
    not PyTorch's untruncated one -- and serialized name ``he_normal``; its errors name
    ``kaiming_normal``)."""
    return _scheme("he_normal", 2.0, "fan_in", "truncated_normal",
                   (in_axis, out_axis, batch_axis), called="kaiming_normal")


def kaiming_uniform(in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()) -> Initializer:
    """:func:`he_uniform` under PyTorch's name (same initializer, same serialized name
    ``he_uniform``; its errors name ``kaiming_uniform``)."""
    return _scheme("he_uniform", 2.0, "fan_in", "uniform",
                   (in_axis, out_axis, batch_axis), called="kaiming_uniform")


# --------------------------------------------------------------------------------------
# Simple distributions, orthogonal, constants
# --------------------------------------------------------------------------------------


def normal(stddev: float = 0.01) -> Initializer:
    """Initializer drawing ``W ~ N(0, stddev^2)`` regardless of the fans.

    Args:
      stddev: standard deviation, a finite real > 0 (use :func:`zeros` for zeros).

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Raises:
      ValueError: ``stddev`` not a finite real > 0.
    """
    fn = "jaxnn.initializers.normal"
    stddev = _check_positive(fn, "stddev", stddev)

    def init(key: Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
        shape = _canonical_shape(fn, shape)
        dtype = _float_dtype(fn, dtype)
        return (jax.random.normal(key, shape, _sampling_dtype(dtype)) * stddev).astype(dtype)

    return _tag(init, "normal", dict(stddev=stddev))


def uniform(scale: float = 0.05) -> Initializer:
    """Initializer drawing ``W ~ U(-scale, scale)`` (variance ``scale^2 / 3``).

    Note the symmetric interval, as in Keras' ``RandomUniform(-0.05, 0.05)``;
    ``jax.nn.initializers.uniform(scale)`` draws from ``U(0, scale)`` instead.

    Args:
      scale: half-width of the interval, a finite real > 0.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Raises:
      ValueError: ``scale`` not a finite real > 0.
    """
    fn = "jaxnn.initializers.uniform"
    scale = _check_positive(fn, "scale", scale)

    def init(key: Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
        shape = _canonical_shape(fn, shape)
        dtype = _float_dtype(fn, dtype)
        u = jax.random.uniform(key, shape, _sampling_dtype(dtype), -1.0, 1.0)
        return _round_within(u * scale, dtype, scale, True)

    return _tag(init, "uniform", dict(scale=scale))


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Initializer:
    """Initializer drawing a (semi-)orthogonal matrix times ``scale``, Haar-distributed.

    The weight is viewed as a matrix ``M`` of shape ``(n_rows, n_cols)`` with
    ``n_cols = shape[column_axis]`` and ``n_rows`` the product of the other axes.
    Then

        M^T M = scale^2 I_{n_cols}    if n_rows >= n_cols   (orthonormal columns),
        M M^T = scale^2 I_{n_rows}    if n_rows <  n_cols   (orthonormal rows).

    Sampling: ``A ~ N(0, 1)`` of shape ``(max, min)``, reduced QR ``A = Q R``, and the
    columns of ``Q`` multiplied by ``sign(diag(R))`` so that ``Q`` is uniformly (Haar)
    distributed rather than biased by the QR algorithm's sign convention (Mezzadri,
    2007); ``Q`` is transposed for wide matrices. Computed in float32 for dtypes
    narrower than 32 bits, so orthogonality then holds to the output dtype's rounding.

    Orthogonal weights preserve the norm of every vector through a linear layer,
    which gives depth-independent learning dynamics in deep linear networks
    (Saxe et al., 2014). Use ``scale=gain(activation)`` for nonlinear layers.

    Args:
      scale: multiplier, a finite real > 0.
      column_axis: the axis holding the matrix columns (default ``-1``; the others
        are flattened, in order, into rows).

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``; it raises
      ValueError for shapes of rank < 2.

    Reference:
      A. M. Saxe, J. L. McClelland and S. Ganguli, Exact solutions to the nonlinear
      dynamics of learning in deep linear neural networks, ICLR 2014.
    """
    fn = "jaxnn.initializers.orthogonal"
    scale = _check_positive(fn, "scale", scale)
    if isinstance(column_axis, bool) or not isinstance(column_axis, (int, np.integer)):
        raise ValueError(f"{fn}: column_axis must be an int, got {column_axis!r}")
    column_axis = int(column_axis)

    def init(key: Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
        shape = _canonical_shape(fn, shape)
        dtype = _float_dtype(fn, dtype)
        rank = len(shape)
        if rank < 2:
            raise ValueError(f"{fn}: shape must have rank >= 2, got {shape} (rank {rank})")
        (axis,) = _normalize_axes(fn, "column_axis", column_axis, rank)
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype)
        n_cols = shape[axis]
        n_rows = math.prod(shape) // n_cols
        a = jax.random.normal(
            key, (max(n_rows, n_cols), min(n_rows, n_cols)), _sampling_dtype(dtype)
        )
        q, r = jnp.linalg.qr(a)  # reduced: q has orthonormal columns
        q = jnp.where(jnp.diagonal(r) < 0, -q, q)  # Haar fix; never multiplies by 0
        if n_rows < n_cols:
            q = q.T
        rows_shape = shape[:axis] + shape[axis + 1 :]
        q = jnp.moveaxis(q.reshape(rows_shape + (n_cols,)), -1, axis)
        return (q * scale).astype(dtype)

    return _tag(init, "orthogonal", dict(scale=scale, column_axis=column_axis))


def zeros(key: Array | None, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
    """Initializer returning ``0`` everywhere (``key`` is ignored and may be None).

    Args:
      key: unused.
      shape: output shape.
      dtype: any dtype.

    Returns:
      ``jnp.zeros(shape, dtype)``.
    """
    return jnp.zeros(_canonical_shape("jaxnn.initializers.zeros", shape), dtype)


def ones(key: Array | None, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
    """Initializer returning ``1`` everywhere (``key`` is ignored and may be None).

    Args:
      key: unused.
      shape: output shape.
      dtype: any dtype.

    Returns:
      ``jnp.ones(shape, dtype)``.
    """
    return jnp.ones(_canonical_shape("jaxnn.initializers.ones", shape), dtype)


_tag(zeros, "zeros", {})
_tag(ones, "ones", {})


def _check_representable(fn: str, value: Any, dtype: np.dtype) -> None:
    """Refuse a concrete ``value`` that casting to ``dtype`` would change, not just round:
    a fraction or an out-of-range number for an integer dtype (0.5 became 0, -1 in uint8
    255), a finite number beyond a float dtype's range (1e5 became inf in float16)."""
    try:
        values = np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return  # a traced value cannot be inspected
    # bfloat16 and the other ml_dtypes floats have numpy kind "V", not "f".
    value_float = jnp.issubdtype(values.dtype, jnp.floating)
    if values.size == 0 or not (values.dtype.kind in "biu" or value_float):
        return
    v = values.astype(np.float64) if values.dtype.kind == "b" or value_float else values
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        bad = (v < info.min) | (v > info.max)
        if v.dtype.kind == "f":
            bad |= ~np.isfinite(v) | (v != np.trunc(v))
    elif jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 8:
        # A finite value the cast makes inf (or nan, in a float8 without inf).
        with np.errstate(over="ignore", invalid="ignore"):
            cast = v.astype(np.float64).astype(dtype).astype(np.float64)
        bad = np.isfinite(v) & ~np.isfinite(cast)
    else:
        return
    if np.any(bad):
        raise ValueError(
            f"{fn}: value {values[bad].flat[0].item()!r} is not representable in "
            f"{dtype.name}; pass a value that fits the dtype or another dtype"
        )


def constant(value: Any) -> Initializer:
    """Initializer returning ``value`` broadcast to the requested shape and dtype.

    Args:
      value: a scalar, or an array broadcastable to the shapes it will be used with
        (e.g. a per-unit vector for shape ``(units,)``), with numpy's ``broadcast_to``
        rule: the result has exactly the requested shape, so a value of shape ``(3, 1)``
        does not fit shape ``(3,)``.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array`` (``key`` ignored);
      it raises ValueError when ``value`` does not broadcast to ``shape``, or when casting
      it to ``dtype`` would change it rather than round it (a fraction or an out-of-range
      number for an integer dtype, a finite number beyond a float dtype's range).

    Raises:
      ValueError: ``value`` is not numeric.
    """
    fn = "jaxnn.initializers.constant"
    _refuse_key(fn, "value", value, raw=False)
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"{fn}: value must be a number or an array, got {value!r}")
    try:
        value_shape = np.shape(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: value must be a number or an array, got {value!r}") from None

    def init(key: Array | None, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
        shape = _canonical_shape(fn, shape)
        try:
            # Broadcasting must give `shape` itself: value (3, 1) with shape (3,) would
            # broadcast to (3, 3), which np.broadcast_shapes accepts but broadcast_to refuses.
            fits = np.broadcast_shapes(value_shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{fn}: value of shape {value_shape} does not broadcast to shape {shape}"
            )
        _check_representable(fn, value, jnp.dtype(dtype))
        return jnp.broadcast_to(jnp.asarray(value, dtype), shape)

    return _tag(init, "constant", dict(value=value))


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

# name -> (factory or initializer, is_factory)
_REGISTRY: dict[str, tuple[Callable[..., Any], bool]] = {
    "variance_scaling": (variance_scaling, True),
    "glorot_normal": (glorot_normal, True),
    "glorot_uniform": (glorot_uniform, True),
    "xavier_normal": (xavier_normal, True),
    "xavier_uniform": (xavier_uniform, True),
    "he_normal": (he_normal, True),
    "he_uniform": (he_uniform, True),
    "kaiming_normal": (kaiming_normal, True),
    "kaiming_uniform": (kaiming_uniform, True),
    "lecun_normal": (lecun_normal, True),
    "lecun_uniform": (lecun_uniform, True),
    "normal": (normal, True),
    "uniform": (uniform, True),
    "orthogonal": (orthogonal, True),
    "constant": (constant, True),
    "zeros": (zeros, False),
    "ones": (ones, False),
}


def names() -> tuple[str, ...]:
    """All names accepted by :func:`get`, aliases included, sorted."""
    return tuple(sorted(_REGISTRY))


def _unknown(fn: str, what: str, name: Any, valid: Sequence[str]) -> ValueError:
    close = difflib.get_close_matches(name, valid, n=3) if isinstance(name, str) else []
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return ValueError(f"{fn}: unknown {what} {name!r}; {hint}valid names: {', '.join(valid)}")


def get(name: str, **kwargs: Any) -> Initializer:
    """The initializer registered as ``name``, built with ``kwargs``.

    Factories are called with ``kwargs`` (``get("normal", stddev=0.02)`` is
    ``normal(stddev=0.02)``, ``get("he_normal")`` is ``he_normal()``); ``"zeros"`` and
    ``"ones"`` are returned as they are and take no keyword arguments.

    Args:
      name: one of :func:`names`.
      **kwargs: the factory's keyword arguments.

    Returns:
      An initializer ``(key, shape, dtype=jnp.float32) -> Array``.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown name (the message lists the closest valid names), an
        unexpected or missing keyword argument, or a bad argument value.
    """
    fn = "jaxnn.initializers.get"
    if not isinstance(name, str):
        raise TypeError(f"{fn}: name must be a string from names(), got {name!r}")
    if name not in _REGISTRY:
        raise _unknown(fn, "initializer", name, names())
    target, is_factory = _REGISTRY[name]
    params = inspect.signature(target).parameters if is_factory else {}
    allowed = list(params)
    for key in kwargs:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{fn}: unexpected argument {key!r} for initializer {name!r}{hint}; "
                f"allowed: {', '.join(allowed) if allowed else 'none'}"
            )
    missing = [
        p.name
        for p in params.values()
        if p.default is inspect.Parameter.empty and p.name not in kwargs
    ]
    if missing:
        raise ValueError(
            f"{fn}: initializer {name!r} needs argument(s) {', '.join(missing)}, "
            f"got {sorted(kwargs)}"
        )
    return target(**kwargs) if is_factory else target


def serialize(init: Initializer) -> tuple[str, dict[str, Any]]:
    """Inverse of :func:`get`: ``(name, kwargs)`` with ``get(name, **kwargs)`` equivalent.

    Aliases resolve to their canonical names (``xavier_normal`` -> ``glorot_normal``)
    and ``kwargs`` holds every argument, defaults included.

    Args:
      init: an initializer built by this module.

    Returns:
      ``(name, kwargs)``.

    Raises:
      ValueError: ``init`` was not built by this module.
    """
    spec = getattr(init, _SPEC_ATTR, None)
    if spec is None:
        raise ValueError(
            f"jaxnn.initializers.serialize: {init!r} is not an initializer built by "
            "jaxnn.initializers"
        )
    name, kwargs = spec
    return name, dict(kwargs)


# --------------------------------------------------------------------------------------
# Gains
# --------------------------------------------------------------------------------------


def _real(fn: str, argname: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or np.ndim(value) != 0:
        raise ValueError(f"{fn}: {argname} must be a finite real scalar, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {argname} must be a finite real scalar, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{fn}: {argname} must be a finite real scalar, got {value!r}")
    return out


def _rectifier_gain(slope: float) -> float:
    return math.sqrt(2.0 / (1.0 + slope**2))


# name -> (gain function of its keyword arguments, {kwarg: default})
_GAINS: dict[str, tuple[Callable[..., float], dict[str, float]]] = {
    "linear": (lambda: 1.0, {}),
    "identity": (lambda: 1.0, {}),
    "sigmoid": (lambda: 1.0, {}),
    "tanh": (lambda: 5.0 / 3.0, {}),
    "relu": (lambda: math.sqrt(2.0), {}),
    "leaky_relu": (
        lambda negative_slope: _rectifier_gain(negative_slope),
        {"negative_slope": 0.01},
    ),
    "prelu": (lambda alpha: _rectifier_gain(alpha), {"alpha": 0.25}),
    "selu": (lambda: 0.75, {}),
}


def gain(activation: str, **kwargs: float) -> float:
    """Recommended scale factor ``g`` of the weight standard deviation for an activation.

    Use it as ``variance_scaling(g**2, mode, distribution)`` (PyTorch's
    ``gain`` argument) or ``orthogonal(scale=g)``:

    ===============================  =========================  ===========================
    activation                       g                          source
    ===============================  =========================  ===========================
    linear, identity, sigmoid        1                          PyTorch ``calculate_gain``
    tanh                             5/3                        PyTorch ``calculate_gain``
    relu                             sqrt(2)                    He et al. (2015)
    leaky_relu(negative_slope=0.01)  sqrt(2 / (1 + slope^2))    He et al. (2015)
    prelu(alpha=0.25)                sqrt(2 / (1 + alpha^2))    He et al. (2015)
    selu                             3/4                        PyTorch ``calculate_gain``
    ===============================  =========================  ===========================

    For ``selu``, PyTorch documents 3/4 as a compromise for stable gradients;
    self-normalizing networks in the sense of Klambauer et al. (2017) use ``g = 1`` with
    ``lecun_normal``. Activations without a published recommendation (elu, gelu, swish,
    ...) raise ValueError rather than return a guess.

    Args:
      activation: one of the names above.
      **kwargs: ``negative_slope`` for ``leaky_relu``, ``alpha`` for ``prelu``.

    Returns:
      ``g`` as a Python float.

    Raises:
      ValueError: unknown activation (with the closest names), or a keyword argument
        the activation does not take, or a non-finite slope.
    """
    fn = "jaxnn.initializers.gain"
    if not isinstance(activation, str) or activation not in _GAINS:
        raise _unknown(fn, "activation (no recommended gain)", activation, sorted(_GAINS))
    compute, defaults = _GAINS[activation]
    for key in kwargs:
        if key not in defaults:
            raise ValueError(
                f"{fn}: unexpected argument {key!r} for activation {activation!r}; "
                f"allowed: {', '.join(defaults) if defaults else 'none'}"
            )
    args = {k: _real(fn, k, kwargs.get(k, v)) for k, v in defaults.items()}
    return float(compute(**args))
