"""Tests for jaxnn.initializers.

Statistical tolerances. For ``n`` i.i.d. draws with variance ``v`` and kurtosis ``k``
the sample variance has standard error ``v * sqrt((k - 1) / n)``. The three
distributions used have ``k = 3`` (normal), ``k ~ 2.37`` (normal truncated at 2 std) and
``k = 9/5`` (uniform), so ``v * sqrt(2 / n)`` bounds the standard error for all of them.
The sample mean has standard error ``sqrt(v / n)``. Every statistical check allows
``Z = 6`` standard errors (a false failure has probability ~1e-9 per check; the keys are
fixed anyway, so the suite is deterministic), and each sample is large enough
(``n >= 7e4``) that 6 standard errors stay below ~3.2% of the variance, well below the
smallest ratio between two different modes on the test shapes (4/3).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import initializers as I

KEY = jax.random.key(0)
Z = 6.0
# Std of a standard normal truncated to (-2, 2), as published (e.g. in jax.nn.initializers).
TRUNCATED_STD = 0.87962566103423978

# name -> (scale, mode, distribution) from the papers / jax.nn.initializers.
SCHEMES = {
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "xavier_normal": (1.0, "fan_avg", "truncated_normal"),
    "xavier_uniform": (1.0, "fan_avg", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "kaiming_normal": (2.0, "fan_in", "truncated_normal"),
    "kaiming_uniform": (2.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
}
CANONICAL = [
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
]
# A dense shape with fan_in != fan_out and a conv kernel (3x3, 64 -> 128 channels).
DENSE = (384, 768)  # n = 294912, fans (384, 768)
CONV = (3, 3, 64, 128)  # n = 73728, fans (576, 1152)
STAT_SHAPES = [DENSE, CONV]

# Arguments that make get(name) usable for every registered name.
REQUIRED_KWARGS = {
    "constant": {"value": 0.5},
    "variance_scaling": {"scale": 2.0, "mode": "fan_in", "distribution": "normal"},
}
ALIASES = ("xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform")
# Aliases are the same functions (tested in test_get_gives_right_variance_and_aliases), so the
# per-name grids below skip them.
DISTINCT_NAMES = [n for n in I.names() if n not in ALIASES]
RANDOM_NAMES = [n for n in DISTINCT_NAMES if n not in ("zeros", "ones", "constant")]


def _fans(shape):
    """Independent re-statement of the fan convention for the default axes."""
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


def _expected_var(scale, mode, shape):
    fan_in, fan_out = _fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return scale / n


def _assert_stats(w, var, extra_rel=0.0):
    """Mean ~ 0 and variance ~ var within Z standard errors (+ extra_rel * var)."""
    x = np.asarray(w, np.float64).ravel()
    n = x.size
    assert abs(x.mean()) <= Z * math.sqrt(var / n) + extra_rel * math.sqrt(var), (x.mean(), var)
    tol = Z * var * math.sqrt(2.0 / n) + extra_rel * var
    assert abs(x.var() - var) <= tol, (x.var(), var, tol)


def _assert_support(w, distribution, var, dtype_eps=1e-6):
    """Bounds of each distribution, and that the sample reaches near them."""
    a = np.abs(np.asarray(w, np.float64))
    std = math.sqrt(var)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * var)
        assert a.max() <= limit * (1 + dtype_eps)
        assert a.max() >= 0.99 * limit
    elif distribution == "truncated_normal":
        bound = 2.0 * std / TRUNCATED_STD
        assert a.max() <= bound * (1 + dtype_eps)
        assert a.max() >= 0.97 * bound
    else:  # untruncated normal: with n >= 7e4 draws some exceed 2.5 std (P(miss) ~ e^-900)
        assert a.max() > 2.5 * std


# --------------------------------------------------------------------------------------
# Fans
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ((), {}, (1, 1)),
        ((7,), {}, (7, 7)),
        ((5, 3), {}, (5, 3)),
        ((3, 3, 64, 128), {}, (576, 1152)),
        ((5, 7, 16, 32), {}, (35 * 16, 35 * 32)),
        ((4, 5, 3), {"batch_axis": 0}, (5, 3)),
        ((2, 3, 5, 7), {"in_axis": (0, 1), "out_axis": -1}, (30, 35)),
        ((6, 10), {"in_axis": -1, "out_axis": -2}, (10, 6)),
    ],
)
def test_compute_fans(shape, kwargs, expected):
    assert I.compute_fans(shape, **kwargs) == expected


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_axis": 2}, "in_axis=2"),
        ({"in_axis": -1}, "distinct"),
        ({"batch_axis": (0, -2)}, "distinct"),
        ({"out_axis": 1.5}, "out_axis"),
    ],
)
def test_compute_fans_bad_axes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        I.compute_fans((4, 5), **kwargs)


# --------------------------------------------------------------------------------------
# Statistics of the named schemes and of variance_scaling
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", STAT_SHAPES, ids=["dense", "conv"])
@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_named_scheme_statistics(name, shape):
    scale, mode, distribution = SCHEMES[name]
    var = _expected_var(scale, mode, shape)
    w = I.get(name)(KEY, shape)
    assert w.shape == shape and w.dtype == jnp.float32
    _assert_stats(w, var)
    _assert_support(w, distribution, var)


def test_named_scheme_literal_values():
    # Hand-computed for DENSE = (384, 768): he_uniform limit sqrt(6/384) = 0.125,
    # glorot_uniform limit sqrt(6/1152), lecun_normal var 1/384.
    assert np.abs(np.asarray(I.he_uniform()(KEY, DENSE))).max() <= 0.125
    assert np.abs(np.asarray(I.he_uniform()(KEY, DENSE))).max() > 0.124
    assert np.abs(np.asarray(I.glorot_uniform()(KEY, DENSE))).max() <= math.sqrt(6 / 1152)
    assert np.asarray(I.lecun_normal()(KEY, DENSE), np.float64).var() == pytest.approx(
        1 / 384, rel=Z * math.sqrt(2 / (384 * 768))
    )


@pytest.mark.parametrize("distribution", I.DISTRIBUTIONS)
@pytest.mark.parametrize("mode", I.MODES)
def test_variance_scaling_grid(mode, distribution):
    scale = 0.5
    var = _expected_var(scale, mode, CONV)
    w = I.variance_scaling(scale, mode, distribution)(KEY, CONV)
    _assert_stats(w, var)
    _assert_support(w, distribution, var)


def test_variance_scaling_batch_axis():
    # 16 stacked (64, 32) kernels: fans must be (64, 32), not multiplied by 16.
    w = I.variance_scaling(1.0, "fan_in", "normal", batch_axis=0)(KEY, (16, 64, 32))
    _assert_stats(w, 1.0 / 64)


@pytest.mark.parametrize("name", CANONICAL)
def test_named_scheme_in_axis_out_axis(name):
    # A kernel stored as (out, in): swapping the axes must give the (in, out) variance.
    scale, mode, _ = SCHEMES[name]
    w = getattr(I, name)(in_axis=-1, out_axis=-2)(KEY, (768, 384))
    _assert_stats(w, _expected_var(scale, mode, DENSE))


def test_low_rank_shapes():
    # 1-D: fan_in = fan_out = n. 0-D: fans 1 (checked over many keys).
    w = I.he_normal()(KEY, (100_000,))
    _assert_stats(w, 2.0 / 100_000)
    keys = jax.random.split(KEY, 100_000)
    scalars = jax.vmap(lambda k: I.lecun_uniform()(k, ()))(keys)
    assert scalars.shape == (100_000,)
    _assert_stats(scalars, 1.0)


# --------------------------------------------------------------------------------------
# Same distribution as jax.nn.initializers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", STAT_SHAPES, ids=["dense", "conv"])
@pytest.mark.parametrize("name", CANONICAL)
def test_matches_jax_nn_initializers(name, shape):
    """Compared: sample variance and largest |w| of ours and of jax.nn.initializers.<name>.

    Samples are drawn with different keys (identical samples are not part of the
    contract). Both sample variances must agree with each other within Z standard
    errors of a difference (sqrt(2) times that of one sample) and with our formula;
    both samples must respect the same support bound (uniform limit / truncation at
    2 std), so jax's bound and ours coincide.
    """
    scale, mode, distribution = SCHEMES[name]
    var = _expected_var(scale, mode, shape)
    ours = np.asarray(I.get(name)(jax.random.key(1), shape), np.float64)
    theirs = np.asarray(
        getattr(jax.nn.initializers, name)()(jax.random.key(2), shape, jnp.float32), np.float64
    )
    n = ours.size
    assert abs(ours.var() - theirs.var()) <= Z * math.sqrt(2) * var * math.sqrt(2.0 / n)
    _assert_stats(theirs, var)
    _assert_support(theirs, distribution, var)
    _assert_support(ours, distribution, var)


def test_normal_matches_jax_nn_normal():
    """Compared: sample variance of normal(0.02) vs jax.nn.initializers.normal(0.02)."""
    shape = DENSE
    ours = np.asarray(I.normal(0.02)(jax.random.key(1), shape), np.float64)
    theirs = np.asarray(jax.nn.initializers.normal(0.02)(jax.random.key(2), shape, jnp.float32))
    _assert_stats(ours, 0.02**2)
    _assert_stats(theirs, 0.02**2)


def test_orthogonal_matches_jax_nn_orthogonal():
    """Compared: both are orthogonal, and their entries have variance scale^2 / n_rows."""
    shape, scale = (512, 128), 1.5
    for w in (
        I.orthogonal(scale)(jax.random.key(1), shape),
        jax.nn.initializers.orthogonal(scale)(jax.random.key(2), shape, jnp.float32),
    ):
        w = np.asarray(w, np.float64)
        np.testing.assert_allclose(w.T @ w, scale**2 * np.eye(128), atol=1e-4)
        _assert_stats(w, scale**2 / 512)


# --------------------------------------------------------------------------------------
# normal, uniform, orthogonal, constants
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stddev", [0.01, 1.0, 3.0])
def test_normal_statistics(stddev):
    w = I.normal(stddev)(KEY, DENSE)
    _assert_stats(w, stddev**2)
    _assert_support(w, "normal", stddev**2)
    assert I.normal()(KEY, (2, 2)).dtype == jnp.float32
    assert I.serialize(I.normal()) == ("normal", {"stddev": 0.01})  # documented default


@pytest.mark.parametrize("scale", [0.05, 2.0])
def test_uniform_statistics_and_bounds(scale):
    # U(-scale, scale): variance scale^2 / 3, support [-scale, scale) (not jax's U(0, scale)).
    w = np.asarray(I.uniform(scale)(KEY, DENSE), np.float64)
    _assert_stats(w, scale**2 / 3)
    assert w.max() < scale and w.min() >= -scale
    assert w.min() < -0.99 * scale and w.max() > 0.99 * scale
    assert I.serialize(I.uniform()) == ("uniform", {"scale": 0.05})


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("distribution", ["uniform", "truncated_normal"])
def test_narrow_dtype_draws_respect_the_documented_bound(distribution, dtype):
    """Values rounded to float16/bfloat16 must not step past the support bound.

    The bound is put just below 1.0 (a grid point of both dtypes, between it and the
    largest value below 1 in the dtype, and past their midpoint), so a draw in the top
    quarter-ulp below the bound used to round *up* to 1.0, beyond the bound (tens of
    draws in 2e5). Uniform support is ``[-limit, limit)``, truncated ``|w| < bound``.
    """
    bound = 1.0 - float(jnp.finfo(dtype).eps) / 8  # a quarter ulp below 1.0 in dtype
    if distribution == "uniform":
        scale = bound**2 / 3.0  # limit = sqrt(3 scale / fan_in), fan_in = 1
    else:
        scale = (bound * TRUNCATED_STD / 2.0) ** 2  # bound = 2 sqrt(scale) / 0.8796...
    init = I.variance_scaling(scale, "fan_in", distribution)
    w = np.asarray(init(KEY, (1, 200_000), dtype).astype(jnp.float32), np.float64)
    assert w.max() < bound, (w.max(), bound)
    assert w.min() >= -bound if distribution == "uniform" else w.min() > -bound
    assert np.abs(w).max() >= 0.99 * bound  # still reaches the bound
    # Same with the scale traced (a vmap sweep), where the bound is only known in float32.
    traced = jax.vmap(
        lambda s: I.variance_scaling(s, "fan_in", distribution)(KEY, (1, 200_000), dtype)
    )(jnp.array([scale], jnp.float32))
    wt = np.asarray(traced.astype(jnp.float32), np.float64)
    assert wt.max() < bound and wt.min() >= -bound


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
@pytest.mark.parametrize(
    "name, bound",
    [
        ("glorot_uniform", math.sqrt(6.0 / 2000)),
        ("he_uniform", math.sqrt(6.0 / 1000)),
        ("glorot_normal", 2.0 * math.sqrt(1.0 / 1000) / TRUNCATED_STD),
        ("he_normal", 2.0 * math.sqrt(2.0 / 1000) / TRUNCATED_STD),
    ],
)
def test_named_schemes_respect_bound_in_every_dtype(name, bound, dtype):
    """glorot_uniform in float16 had 156 draws of 1e6 one float16 step beyond
    sqrt(6 / 2000); he_uniform in bfloat16 had 835."""
    w = np.abs(np.asarray(I.get(name)(KEY, (1000, 1000), dtype).astype(jnp.float32), np.float64))
    if name.endswith("uniform"):
        assert w.max() <= bound, (w.max(), bound)
    else:
        assert w.max() < bound, (w.max(), bound)


def test_uniform_respects_scale_in_narrow_dtypes():
    # uniform(0.05) in bfloat16 had 1443 of 5e5 draws at 0.050048828125 > 0.05.
    for dtype in (jnp.float16, jnp.bfloat16):
        w = np.asarray(I.uniform(0.05)(KEY, (500, 1000), dtype).astype(jnp.float32), np.float64)
        assert w.max() < 0.05 and w.min() >= -0.05, (dtype, w.min(), w.max())


def _flatten(w, column_axis=-1):
    w = np.moveaxis(np.asarray(w, np.float64), column_axis, -1)
    return w.reshape(-1, w.shape[-1])


@pytest.mark.parametrize(
    "shape, column_axis, scale",
    [
        ((64, 32), -1, 1.0),  # tall
        ((32, 64), -1, 2.0),  # wide
        ((48, 48), -1, 1.0),  # square
        ((3, 3, 16, 8), -1, 2.0),  # conv kernel, flattened (144, 8): tall
        ((2, 4, 32), -1, 1.0),  # flattened (8, 32): wide
        ((32, 5, 3), 0, 0.5),  # columns on axis 0: flattened (15, 32): wide
    ],
)
def test_orthogonal(shape, column_axis, scale):
    w = I.orthogonal(scale, column_axis=column_axis)(KEY, shape)
    assert w.shape == shape and w.dtype == jnp.float32
    m = _flatten(w, column_axis)
    rows, cols = m.shape
    if rows >= cols:
        np.testing.assert_allclose(m.T @ m, scale**2 * np.eye(cols), atol=1e-5 * scale**2)
    else:
        np.testing.assert_allclose(m @ m.T, scale**2 * np.eye(rows), atol=1e-5 * scale**2)


def test_orthogonal_is_haar():
    """Sign fix: without multiplying by sign(diag(R)), QR-based samples have biased diagonals
    (LAPACK makes Q[0, 0] negative for every key). Haar matrices have symmetric entries."""
    keys = jax.random.split(KEY, 4000)
    q = np.asarray(jax.vmap(lambda k: I.orthogonal()(k, (4, 4)))(keys), np.float64)
    # Each entry of a Haar 4x4 orthogonal matrix has mean 0 and variance 1/4.
    for i in range(4):
        assert abs(q[:, i, i].mean()) <= Z * math.sqrt(0.25 / len(keys))
        frac_positive = (q[:, i, i] > 0).mean()
        assert abs(frac_positive - 0.5) <= Z * math.sqrt(0.25 / len(keys))


def test_orthogonal_float64_and_bfloat16():
    w64 = np.asarray(I.orthogonal()(KEY, (40, 20), jnp.float64))
    np.testing.assert_allclose(w64.T @ w64, np.eye(20), atol=1e-12)
    w16 = I.orthogonal()(KEY, (40, 20), jnp.bfloat16)
    assert w16.dtype == jnp.bfloat16
    m = np.asarray(w16, np.float64)
    np.testing.assert_allclose(m.T @ m, np.eye(20), atol=3e-2)  # bf16 rounding, 2^-8 relative


def test_orthogonal_needs_rank_2():
    with pytest.raises(ValueError, match=r"rank >= 2.*\(5,\)"):
        I.orthogonal()(KEY, (5,))


def test_zeros_ones_constant():
    assert I.zeros(None, (2, 3)).dtype == jnp.float32
    np.testing.assert_array_equal(I.zeros(KEY, (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(I.ones(KEY, (4,), jnp.int32), np.ones(4, np.int32))
    assert I.ones(KEY, (4,), jnp.int32).dtype == jnp.int32
    c = I.constant(0.25)(KEY, (3, 2), jnp.bfloat16)
    assert c.dtype == jnp.bfloat16 and c.shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(c, np.float32), np.full((3, 2), 0.25))
    per_unit = I.constant(jnp.array([1.0, 2.0, 3.0]))(None, (2, 3))
    assert per_unit.dtype == jnp.float32  # value's float64 is cast to the requested dtype
    np.testing.assert_array_equal(per_unit, np.array([[1, 2, 3], [1, 2, 3]]))
    with pytest.raises(ValueError, match=r"does not broadcast to shape \(4,\)"):
        I.constant(jnp.ones(3))(KEY, (4,))
    with pytest.raises(ValueError, match="value"):
        I.constant("one")


@pytest.mark.parametrize(
    "value_shape, shape",
    [((3, 1), (3,)), ((1, 3), (3,)), ((2, 3), (3,)), ((1,), ()), ((3,), (3, 2))],
    ids=str,
)
def test_constant_value_must_broadcast_to_the_requested_shape(value_shape, shape):
    # broadcast_to semantics: value (3, 1) and shape (3,) broadcast together, to (3, 3),
    # but not to (3,); the library's ValueError, not one from inside jnp.broadcast_to.
    init = I.constant(jnp.ones(value_shape))
    with pytest.raises(
        ValueError,
        match=rf"constant: value of shape {re.escape(str(value_shape))} does not broadcast "
        rf"to shape {re.escape(str(shape))}",
    ):
        init(KEY, shape)


@pytest.mark.parametrize(
    "value_shape, shape", [((), (2, 3)), ((3,), (2, 3)), ((2, 1), (2, 3)), ((1,), (0,))],
    ids=str,
)
def test_constant_broadcasts_to_the_requested_shape(value_shape, shape):
    assert I.constant(jnp.ones(value_shape))(KEY, shape).shape == shape


@pytest.mark.parametrize(
    "value, dtype, what",
    [(0.5, jnp.int32, "0.5"), ([1.0, 2.7], jnp.int8, "2.7"), (1e5, jnp.float16, "100000.0"),
     (np.asarray([-1, 2]), jnp.uint8, "-1"), (300, jnp.int8, "300")],
    ids=["half-to-int32", "fraction-to-int8", "overflow-float16", "negative-to-uint8",
         "overflow-int8"],
)
def test_constant_value_not_representable_in_the_dtype_is_refused(value, dtype, what):
    # constant(0.5) in int32 came back as zeros, 1e5 in float16 as inf, -1 in uint8 as 255
    # (NumPy arrays wrap): silently another value than the one asked for.
    init = I.constant(value)
    with pytest.raises(ValueError, match=rf"constant: value {re.escape(what)} is not "
                                         rf"representable in {jnp.dtype(dtype).name}"):
        init(KEY, (2,), dtype)
    # Rounding to the nearest representable float is not a change of value.
    assert float(I.constant(0.1)(KEY, (2,), jnp.float16)[0]) == float(np.float16(0.1))
    assert I.constant(3.0)(KEY, (2,), jnp.int8).tolist() == [3, 3]
    assert I.constant(True)(KEY, (2,), jnp.float32).tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "value, dtype, what",
    [(1e39, jnp.bfloat16, "1e+39"), (jnp.bfloat16(1e38), jnp.float16, "9.969209968386869e+37"),
     (jnp.bfloat16(0.5), jnp.int32, "0.5")],
    ids=["overflow-bfloat16", "bfloat16-to-float16", "bfloat16-fraction-to-int32"],
)
def test_constant_bfloat16_is_checked_as_a_float(value, dtype, what):
    # bfloat16's numpy dtype kind is "V", not "f": a bfloat16 target or value was not
    # checked at all (1e39 came back as inf in bfloat16, bfloat16(0.5) as 0 in int32).
    with pytest.raises(ValueError, match=rf"constant: value {re.escape(what)} is not "
                                         rf"representable in {jnp.dtype(dtype).name}"):
        I.constant(value)(KEY, (2,), dtype)
    assert float(I.constant(3e38)(KEY, (2,), jnp.bfloat16)[0]) == float(jnp.bfloat16(3e38))


# --------------------------------------------------------------------------------------
# Shapes, dtypes, determinism, transformations
# --------------------------------------------------------------------------------------


def _init(name):
    return I.get(name, **REQUIRED_KWARGS.get(name, {}))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
@pytest.mark.parametrize("name", DISTINCT_NAMES)
def test_shape_and_dtype(name, dtype):
    w = _init(name)(KEY, (8, 6), dtype)
    assert w.shape == (8, 6)
    assert w.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(w)))
    assert _init(name)(KEY, (8, 6)).dtype == jnp.float32  # default dtype even with x64 on


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_empty_shape(name):
    w = _init(name)(KEY, (0, 5))
    assert w.shape == (0, 5) and w.dtype == jnp.float32


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform"])
def test_bfloat16_statistics(name):
    # Drawn in float32 then rounded: bf16 keeps 8 significant bits, so each value moves by
    # at most 2^-8 relative; the variance by at most ~2 * 2^-8 < 1% (extra tolerance).
    scale, mode, distribution = SCHEMES[name]
    var = _expected_var(scale, mode, DENSE)
    w = I.get(name)(KEY, DENSE, jnp.bfloat16)
    assert w.dtype == jnp.bfloat16
    assert I.get(name)(KEY, (3, 2), jnp.float16).dtype == jnp.float16
    _assert_stats(w, var, extra_rel=0.01)
    _assert_support(w, distribution, var, dtype_eps=2.0**-8)


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_determinism_and_key_dependence(name):
    init = _init(name)
    a = init(KEY, (8, 6))
    b = init(KEY, (8, 6))
    c = init(jax.random.key(1), (8, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    # Legacy uint32 keys work too.
    d = init(jax.random.PRNGKey(0), (8, 6))
    assert d.shape == (8, 6)


@pytest.mark.parametrize("name", ["he_normal", "orthogonal"])
def test_jit_and_vmap_over_keys(name):
    init = _init(name)
    jitted = jax.jit(init, static_argnums=(1, 2))
    np.testing.assert_allclose(jitted(KEY, (8, 6), jnp.float32), init(KEY, (8, 6)), rtol=1e-6)
    keys = jax.random.split(KEY, 3)
    batch = jax.vmap(lambda k: init(k, (8, 6)))(keys)
    assert batch.shape == (3, 8, 6)
    for i in range(3):
        np.testing.assert_allclose(batch[i], init(keys[i], (8, 6)), rtol=1e-6, atol=1e-7)


def test_traced_scale_under_vmap():
    # A sweep over scales: same key, so the draws differ exactly by the std ratio (2x).
    scales = jnp.array([1.0, 4.0], jnp.float32)
    out = jax.vmap(lambda s: I.variance_scaling(s, "fan_in", "normal")(KEY, (8, 6)))(scales)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out[1], 2.0 * out[0], rtol=1e-6)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_names_cover_the_contract():
    expected = {
        "glorot_normal",
        "glorot_uniform",
        "xavier_normal",
        "xavier_uniform",
        "he_normal",
        "he_uniform",
        "kaiming_normal",
        "kaiming_uniform",
        "lecun_normal",
        "lecun_uniform",
        "normal",
        "uniform",
        "orthogonal",
        "zeros",
        "ones",
        "constant",
        "variance_scaling",
    }
    assert set(I.names()) == expected
    assert list(I.names()) == sorted(I.names())
    for name in I.__all__:
        assert hasattr(I, name)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_get_gives_right_variance_and_aliases(name):
    scale, mode, _ = SCHEMES[name]
    init = I.get(name)
    _assert_stats(init(KEY, CONV), _expected_var(scale, mode, CONV))
    # An alias is the same scheme: same key, same sample.
    canonical = I.serialize(init)[0]
    np.testing.assert_array_equal(init(KEY, (5, 7)), I.get(canonical)(KEY, (5, 7)))


@pytest.mark.parametrize("name", I.names())
def test_serialize_round_trip(name):
    init = _init(name)
    spec_name, kwargs = I.serialize(init)
    assert spec_name in I.names()
    rebuilt = I.get(spec_name, **kwargs)
    assert I.serialize(rebuilt) == (spec_name, kwargs)
    np.testing.assert_array_equal(rebuilt(KEY, (5, 7)), init(KEY, (5, 7)))


def test_serialize_aliases_and_kwargs():
    assert I.serialize(I.get("xavier_uniform"))[0] == "glorot_uniform"
    assert I.serialize(I.get("kaiming_normal"))[0] == "he_normal"
    assert I.serialize(I.get("normal", stddev=0.2)) == ("normal", {"stddev": 0.2})
    assert I.serialize(I.zeros) == ("zeros", {})
    assert I.get("zeros") is I.zeros
    with pytest.raises(ValueError, match="not an initializer built by"):
        I.serialize(jax.nn.initializers.zeros)


def test_get_with_kwargs():
    init = I.get("normal", stddev=0.5)
    _assert_stats(init(KEY, DENSE), 0.25)
    init = I.get("he_normal", in_axis=-1, out_axis=-2)
    _assert_stats(init(KEY, (768, 384)), 2.0 / 384)


@pytest.mark.parametrize(
    "name, suggestion",
    [("he_norml", "he_normal"), ("xavier_unifrom", "xavier_uniform"), ("orthogonl", "orthogonal")],
)
def test_get_unknown_name_suggests(name, suggestion):
    with pytest.raises(ValueError, match=f"'{name}'.*did you mean '{suggestion}'"):
        I.get(name)


def test_get_bad_inputs():
    with pytest.raises(ValueError, match="valid names"):
        I.get("nothing_like_it")
    with pytest.raises(TypeError, match="name must be a string"):
        I.get(None)
    with pytest.raises(ValueError, match=r"unexpected argument 'stdev'.*did you mean 'stddev'"):
        I.get("normal", stdev=0.1)
    with pytest.raises(ValueError, match="unexpected argument 'scale' for initializer 'zeros'"):
        I.get("zeros", scale=1.0)
    with pytest.raises(ValueError, match="needs argument.*value"):
        I.get("constant")
    with pytest.raises(ValueError, match="needs argument.*scale.*mode.*distribution"):
        I.get("variance_scaling")
    with pytest.raises(ValueError, match="stddev"):
        I.get("normal", stddev=-1.0)


# --------------------------------------------------------------------------------------
# Argument errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: I.variance_scaling(-1.0, "fan_in", "normal"), r"variance_scaling: scale.*-1\.0"),
        (lambda: I.variance_scaling(0.0, "fan_in", "normal"), r"scale.*> 0.*0\.0"),
        (lambda: I.variance_scaling(float("nan"), "fan_in", "normal"), r"scale.*nan"),
        (lambda: I.variance_scaling(float("inf"), "fan_in", "normal"), r"scale.*inf"),
        (lambda: I.variance_scaling(True, "fan_in", "normal"), r"scale.*True"),
        (lambda: I.variance_scaling("2", "fan_in", "normal"), r"scale.*'2'"),
        (lambda: I.variance_scaling(1.0, "fan_inn", "normal"), r"mode.*'fan_inn'.*'fan_in'"),
        (lambda: I.variance_scaling(1.0, "fan_sum", "normal"), r"mode must be one of.*'fan_sum'"),
        (lambda: I.variance_scaling(1.0, "fan_in", "gaussian"), r"distribution.*'gaussian'"),
        (lambda: I.variance_scaling(1.0, "fan_in", "normal", in_axis="0"), r"in_axis.*'0'"),
        (lambda: I.normal(-0.1), r"normal: stddev.*-0\.1"),
        (lambda: I.normal(0.0), r"stddev.*0\.0"),
        (lambda: I.uniform(-1.0), r"uniform: scale.*-1\.0"),
        (lambda: I.orthogonal(-2.0), r"orthogonal: scale.*-2\.0"),
        (lambda: I.orthogonal(1.0, column_axis=1.5), r"column_axis.*1\.5"),
        (lambda: I.he_normal(in_axis=None), r"in_axis.*None"),
    ],
)
def test_bad_factory_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_call_arguments():
    init = I.he_normal()
    with pytest.raises(ValueError, match=r"dtype must be a real floating dtype.*int32"):
        init(KEY, (3, 3), jnp.int32)
    with pytest.raises(ValueError, match="complex"):
        init(KEY, (3, 3), jnp.complex64)
    with pytest.raises(ValueError, match=r"non-negative ints.*-3"):
        init(KEY, (3, -3))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        init(KEY, 3)
    with pytest.raises(ValueError, match=r"in_axis=-3 is out of range.*rank 2"):
        I.he_normal(in_axis=-3)(KEY, (3, 3))


# Every factory built on variance_scaling, and the name its errors must carry: the
# function the user called (an alias is the same function as its canonical name).
VARIANCE_SCALING_FACTORIES = [
    ("variance_scaling", lambda **kw: I.variance_scaling(1.0, "fan_in", "normal", **kw)),
    *[(name, getattr(I, name)) for name in
      ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
       "lecun_uniform")],
]


@pytest.mark.parametrize("name, factory", VARIANCE_SCALING_FACTORIES,
                         ids=[n for n, _ in VARIANCE_SCALING_FACTORIES])
def test_errors_name_the_function_the_user_called(name, factory):
    # glorot_uniform()(key, shape, jnp.int32) used to blame
    # "jaxnn.initializers.variance_scaling", a function the user never called.
    fn = re.escape(f"jaxnn.initializers.{name}:")
    init = factory()
    with pytest.raises(ValueError, match=rf"^{fn} dtype must be a real floating dtype.*int32"):
        init(KEY, (3, 3), jnp.int32)
    with pytest.raises(ValueError, match=rf"^{fn} dtype must be a real floating dtype"):
        init(KEY, (3, 3), "not a dtype")
    with pytest.raises(ValueError, match=rf"^{fn} shape must be .*-3"):
        init(KEY, (3, -3))
    with pytest.raises(TypeError, match=rf"^{fn} shape must be a tuple"):
        init(KEY, 3)
    # Fans are computed for the initializer: their errors name it too.
    with pytest.raises(ValueError, match=rf"^{fn} in_axis=-3 is out of range.*rank 2"):
        factory(in_axis=-3)(KEY, (3, 3))
    with pytest.raises(ValueError, match=rf"^{fn} .*must name distinct axes"):
        factory(in_axis=-1)(KEY, (3, 3))
    # Factory arguments are checked by the factory the user called.
    with pytest.raises(ValueError, match=rf"^{fn} in_axis must be an int.*None"):
        factory(in_axis=None)
    with pytest.raises(ValueError, match=rf"^{fn} batch_axis must be an int.*'0'"):
        factory(batch_axis="0")


def test_compute_fans_called_directly_names_itself():
    with pytest.raises(ValueError, match=r"^jaxnn\.initializers\.compute_fans: in_axis=2"):
        I.compute_fans((4, 5), in_axis=2)


# --------------------------------------------------------------------------------------
# gain
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "activation, kwargs, expected",
    [
        ("linear", {}, 1.0),
        ("identity", {}, 1.0),
        ("sigmoid", {}, 1.0),
        ("tanh", {}, 5.0 / 3.0),
        ("relu", {}, math.sqrt(2.0)),
        ("leaky_relu", {}, math.sqrt(2.0 / (1.0 + 0.01**2))),
        ("leaky_relu", {"negative_slope": 0.2}, math.sqrt(2.0 / 1.04)),
        ("leaky_relu", {"negative_slope": 1.0}, 1.0),  # slope 1 is linear
        ("prelu", {}, math.sqrt(2.0 / (1.0 + 0.25**2))),
        ("prelu", {"alpha": 0.0}, math.sqrt(2.0)),  # alpha 0 is relu
        ("selu", {}, 0.75),
    ],
)
def test_gain_values(activation, kwargs, expected):
    g = I.gain(activation, **kwargs)
    assert isinstance(g, float)
    assert g == pytest.approx(expected, rel=1e-12)


def test_gain_with_variance_scaling_and_orthogonal():
    g = I.gain("tanh")
    w = I.variance_scaling(g**2, "fan_avg", "uniform")(KEY, DENSE)  # torch xavier_uniform_(gain)
    _assert_stats(w, g**2 * 2 / (384 + 768))
    m = np.asarray(I.orthogonal(I.gain("relu"))(KEY, (64, 32)), np.float64)
    np.testing.assert_allclose(m.T @ m, 2.0 * np.eye(32), atol=1e-5)


def test_gain_errors():
    with pytest.raises(ValueError, match=r"gain: unknown activation.*'tanhh'.*did you mean 'tanh'"):
        I.gain("tanhh")
    with pytest.raises(ValueError, match=r"'mish'.*valid names"):
        I.gain("mish")  # no published recommendation: no guess
    with pytest.raises(ValueError, match=r"unexpected argument 'negative_slope' for .*'relu'"):
        I.gain("relu", negative_slope=0.1)
    with pytest.raises(ValueError, match=r"negative_slope.*nan"):
        I.gain("leaky_relu", negative_slope=float("nan"))
    with pytest.raises(ValueError, match="gain"):
        I.gain(None)


# ---------------------------------------------------------------- aliases and misuse

ALIASES = {"xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform",
           "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform"}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_is_its_scheme_but_its_errors_name_the_alias(alias):
    canonical = ALIASES[alias]
    a, c = getattr(I, alias), getattr(I, canonical)
    np.testing.assert_array_equal(a()(KEY, (5, 7)), c()(KEY, (5, 7)))
    np.testing.assert_array_equal(a(in_axis=0, out_axis=1)(KEY, (4, 3, 2)),
                                  c(in_axis=0, out_axis=1)(KEY, (4, 3, 2)))
    assert I.serialize(a()) == I.serialize(c())  # serialized under the canonical name
    assert I.serialize(I.get(alias))[0] == canonical
    # The user called the alias: the error must not send them looking for another name.
    with pytest.raises(ValueError, match=rf"jaxnn\.initializers\.{alias}: dtype") as e:
        a()(KEY, (3, 3), jnp.int32)
    assert canonical not in str(e.value)
    with pytest.raises(ValueError, match=rf"jaxnn\.initializers\.{alias}: in_axis"):
        a(in_axis="rows")


@pytest.mark.parametrize("name,call", [
    ("glorot_normal", "glorot_normal()"),
    ("xavier_uniform", "xavier_uniform()"),
    ("he_normal", "he_normal()"),
    ("lecun_uniform", "lecun_uniform()"),
    ("normal", "normal()"),
    ("uniform", "uniform()"),
    ("orthogonal", "orthogonal()"),
    ("variance_scaling", "variance_scaling(scale, mode, distribution)"),
    ("constant", "constant(value)"),
])
@pytest.mark.parametrize("key", [jax.random.key(3), jax.random.PRNGKey(3)],
                         ids=["typed_key", "raw_key"])
def test_a_factory_called_with_a_key_says_how_to_call_it(name, call, key):
    """PyTorch's initializers take the tensor; ours are factories (as jax.nn's). A key
    passed to the factory used to be judged as its first argument ("in_axis must be an
    int ..., got Array(key<fry>)"); it now names the call that works."""
    if name == "constant" and key.dtype == jnp.uint32:
        return  # a uint32 array of 2 is a valid constant (next test)
    rest = ("fan_in", "normal") if name == "variance_scaling" else ()
    with pytest.raises(TypeError) as e:
        getattr(I, name)(key, *rest)
    msg = str(e.value)
    assert f"jaxnn.initializers.{name}: got a PRNG key for" in msg
    assert f"jaxnn.initializers.{call}(key, shape)" in msg and "\n" not in msg
    if name.endswith(("_normal", "_uniform")):
        with pytest.raises(TypeError, match="makes an initializer and takes no key"):
            getattr(I, name)(key, (3, 4))


def test_a_uint32_pair_is_still_a_constant():
    # A raw key is a uint32 jax array of shape (2,): constant() must not take one for a key.
    value = jnp.array([7, 9], jnp.uint32)
    np.testing.assert_array_equal(I.constant(value)(None, (3, 2), jnp.uint32),
                                  np.array([[7, 9]] * 3, np.uint32))


def test_a_scale_whose_dtype_numpy_cannot_read_is_not_taken_for_a_key():
    # _is_prng_key asked jax.dtypes.issubdtype about any .dtype: a scalar of another
    # library (a torch tensor's torch.float32) raised "Cannot interpret ... as a data type"
    # where it was accepted as the number it holds before.
    class Scalar:
        dtype = object()

        def __float__(self):
            return 2.0

    np.testing.assert_array_equal(I.orthogonal(Scalar())(KEY, (3, 3)),
                                  I.orthogonal(2.0)(KEY, (3, 3)))
    assert I.normal(Scalar()) is not None
