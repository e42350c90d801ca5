"""Tests for jaxnn.activations.

What is compared, and how tightly:

* Every hand-written derivative ``<name>_grad`` against ``jax.grad`` of the forward
  function (``vmap`` over elements), on a fixed grid and on hypothesis-generated arrays
  with magnitudes up to 1000 and exact kinks. Tolerances: float32 ``rtol=1e-5,
  atol=1e-6``; float64 ``rtol=1e-12, atol=1e-13``. Kinks are excluded from the autodiff
  comparison and the documented value is asserted there instead.
* In float64 away from kinks, against central differences and ``jax.test_util.check_grads``
  applied to the forward function carrying the hand-written derivative as its VJP.
* ``prelu`` (both derivatives), ``maxout_vjp``, ``softmax_vjp`` and ``log_softmax_vjp``
  against ``jax.vjp``; forward values against ``jax.nn`` where it has the same function.

Compiled functions are cached per (name, params) so each is traced once per dtype.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.test_util import check_grads

from jaxnn import activations as A

F32, F64 = jnp.float32, jnp.float64
DTYPES = [F32, F64]
TOL = {F32: dict(rtol=1e-5, atol=1e-6), F64: dict(rtol=1e-12, atol=1e-13)}

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

ELEMENTWISE = [n for n in A.names() if A.is_elementwise(n)]
NON_ELEMENTWISE = ["prelu", "maxout", "softmax", "log_softmax"]

# (name, kwargs): every elementwise name with its defaults, plus non-default parameters.
CASES = [(n, {}) for n in ELEMENTWISE] + [
    ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("swish", {"beta": 1.7}),
    ("swish", {"beta": 0.0}),
    ("gelu", {"approximate": True}),
]
CASE_IDS = [n + "".join(f"-{k}={v}" for k, v in kw.items()) for n, kw in CASES]

# Documented derivative at each kink: (name, kwargs, x, value of the derivative, value of f).
KINK_TABLE = [
    ("step", {}, 0.0, 0.0, 0.0),
    ("relu", {}, 0.0, 0.0, 0.0),
    ("relu6", {}, 0.0, 0.0, 0.0),
    ("relu6", {}, 6.0, 0.0, 6.0),
    ("hard_sigmoid", {}, -3.0, 0.0, 0.0),
    ("hard_sigmoid", {}, 3.0, 0.0, 1.0),
    ("leaky_relu", {}, 0.0, 0.01, 0.0),
    ("leaky_relu", {"negative_slope": 0.2}, 0.0, 0.2, 0.0),
    ("elu", {}, 0.0, 1.0, 0.0),
    ("elu", {"alpha": 0.5}, 0.0, 0.5, 0.0),
    ("selu", {}, 0.0, SELU_SCALE * SELU_ALPHA, 0.0),
]


def kinks(name: str) -> tuple[float, ...]:
    return tuple(sorted({x for n, _, x, _, _ in KINK_TABLE if n == name}))


@functools.cache
def compiled(name: str, kw_items: tuple) -> tuple:
    """(forward, hand-written derivative, autodiff derivative), jitted once."""
    kw = dict(kw_items)
    f = A.get(name, **kw)
    return jax.jit(f), jax.jit(A.get_grad(name, **kw)), jax.jit(jax.vmap(jax.grad(f)))


def fns(name: str, kw: dict) -> tuple:
    return compiled(name, tuple(sorted(kw.items())))


def compare_with_autodiff(name: str, kw: dict, x: np.ndarray, dtype) -> None:
    """Hand vs autodiff away from kinks; the documented value at kinks."""
    xj = jnp.asarray(x, dtype)
    _, hand, auto = fns(name, kw)
    g_hand, g_auto = np.asarray(hand(xj)), np.asarray(auto(xj))
    assert g_hand.dtype == np.dtype(dtype)
    xs = np.asarray(xj)
    at_kink = np.isin(xs, kinks(name))
    np.testing.assert_allclose(
        g_hand[~at_kink], g_auto[~at_kink], **TOL[dtype], err_msg=f"{name} {kw} {dtype}"
    )
    for n, k, point, deriv, _ in KINK_TABLE:
        if n == name and k == kw:
            np.testing.assert_array_equal(g_hand[xs == point], np.asarray(deriv, dtype))


GRID = np.concatenate(
    [
        np.linspace(-8.0, 8.0, 161),
        [-1000.0, -300.0, -100.0, -30.0, -10.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
        [-3.0, 3.0, 6.0, 0.0, 1e-3, -1e-3, 5.999, 6.001, 2.999, -2.999],
    ]
)


# ----------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
def test_grad_matches_autodiff_on_grid(name, kw, dtype):
    compare_with_autodiff(name, kw, GRID, dtype)


def _flush_subnormals(x: np.ndarray, dtype) -> np.ndarray:
    # XLA flushes float subnormals to zero on CPU; keep inputs normal (or exactly 0).
    x = np.asarray(x, dtype)
    return np.where(np.abs(x) < np.finfo(dtype).tiny, np.zeros_like(x), x)


ELEMENTS = st.one_of(
    st.floats(-1000.0, 1000.0, allow_nan=False, allow_subnormal=False),
    st.floats(-10.0, 10.0, allow_subnormal=False),
    st.sampled_from([0.0, -0.0, 6.0, -3.0, 3.0]),
)
ARRAYS = hnp.arrays(np.float64, (16,), elements=ELEMENTS)


@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
@given(x=ARRAYS)
def test_grad_matches_autodiff_hypothesis(name, kw, x):
    for dtype in DTYPES:
        compare_with_autodiff(name, kw, _flush_subnormals(x, dtype), dtype)


@pytest.mark.parametrize("name, kw, point, deriv, value", KINK_TABLE)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_documented_kink_values(name, kw, point, deriv, value, dtype):
    x = jnp.asarray([point], dtype)
    f = A.get(name, **kw)
    g = A.get_grad(name, **kw)
    np.testing.assert_array_equal(np.asarray(g(x)), np.asarray([deriv], dtype))
    np.testing.assert_array_equal(np.asarray(f(x)), np.asarray([value], dtype))
    # The forward functions are written so that autodiff follows the same convention.
    auto = jax.grad(lambda v: f(v)[0])(x)
    np.testing.assert_allclose(np.asarray(auto), np.asarray([deriv], dtype), rtol=1e-6)
    # The convention is one-sided: the derivative just left or right of the kink equals it.
    eps = 1e-3
    sides = np.asarray(g(jnp.asarray([point - eps, point + eps], F64)))
    assert np.any(np.isclose(sides, deriv, rtol=1e-2, atol=1e-2)), (sides, deriv)


def _away_from_kinks(name: str, x: np.ndarray, margin: float = 0.05) -> np.ndarray:
    for k in kinks(name):
        close = np.abs(x - k) < margin
        x = np.where(close, k + np.where(x >= k, margin, -margin), x)
    return x


def _with_hand_vjp(f, vjp):
    """``f`` whose reverse-mode derivative is ``vjp(x, cotangent)`` (for check_grads)."""

    @jax.custom_vjp
    def g(x):
        return f(x)

    g.defvjp(lambda x: (f(x), x), lambda x, ct: (vjp(x, ct),))
    return g


@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
def test_grad_matches_central_differences_f64(name, kw):
    x = 3.0 * np.asarray(jax.random.normal(jax.random.key(1), (64,), F64))
    x = jnp.asarray(_away_from_kinks(name, x))
    f, g = A.get(name, **kw), A.get_grad(name, **kw)
    h = 1e-6
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(g(x), numeric, rtol=1e-6, atol=1e-8)
    if name != "step":  # piecewise constant: nothing to check in one direction
        check_grads(_with_hand_vjp(f, lambda x, ct: ct * g(x)), (x,), order=1, modes=["rev"])


def test_step_is_heaviside_with_zero_derivative():
    x = jnp.asarray([-2.0, -0.0, 0.0, 1e-30, 3.0], F32)
    np.testing.assert_array_equal(A.step(x), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(A.step_grad(x), np.zeros(5, np.float32))


# ----------------------------------------------------------------------------- values

REFERENCE = {
    "step": lambda x: jnp.heaviside(x, 0.0),
    "linear": jax.nn.identity,
    "identity": jax.nn.identity,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "swish": jax.nn.swish,
    "silu": jax.nn.silu,
    "mish": jax.nn.mish,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "exponential": jnp.exp,
}


def test_reference_table_covers_every_elementwise_name():
    assert set(REFERENCE) == set(ELEMENTWISE)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_values_match_jax_nn(name, dtype):
    x = jnp.asarray(GRID[np.abs(GRID) <= 100], dtype)
    got = A.get(name)(x)
    assert got.dtype == dtype and got.shape == x.shape
    # jax's tanh-form GELU loses the far left tail to cancellation (1 + tanh(u) -> 0).
    atol = {F32: 1e-6, F64: 1e-14}[dtype]
    np.testing.assert_allclose(got, REFERENCE[name](x), rtol=TOL[dtype]["rtol"], atol=atol)


def test_parameters_change_values_as_documented():
    x = jnp.asarray([-2.0, -0.5, 0.5, 2.0], F64)
    np.testing.assert_allclose(A.leaky_relu(x, 0.2), jax.nn.leaky_relu(x, 0.2))
    np.testing.assert_allclose(A.elu(x, 0.5), jax.nn.elu(x, 0.5))
    np.testing.assert_allclose(A.swish(x, 1.7), x * jax.nn.sigmoid(1.7 * x))
    np.testing.assert_allclose(A.swish(x, 0.0), x / 2)
    np.testing.assert_allclose(A.gelu_tanh(x), A.gelu(x, approximate=True))
    np.testing.assert_allclose(A.silu(x), A.swish(x))
    np.testing.assert_allclose(A.selu(x), SELU_SCALE * jax.nn.elu(x, SELU_ALPHA), rtol=1e-15)


def test_selu_constants_are_the_published_ones():
    assert A.SELU_ALPHA == SELU_ALPHA and A.SELU_SCALE == SELU_SCALE
    # Self-normalizing fixed point: mean 0 and variance 1 in, mean 0 and variance 1 out.
    z = np.linspace(-12, 12, 200001)
    w = np.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    y = np.asarray(A.selu(jnp.asarray(z)))
    assert abs(np.sum(w * y)) < 1e-6 and abs(np.sum(w * y * y) - 1) < 1e-6


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_nan_in_nan_out(name):
    x = jnp.asarray([np.nan, 1.0, -1.0], F32)
    assert np.isnan(A.get(name)(x)[0]) and np.isnan(A.get_grad(name)(x)[0])
    assert not np.any(np.isnan(A.get(name)(x)[1:]))


# ----------------------------------------------------------------------------- prelu

PRELU_ALPHAS = {
    "per_unit": (4,),
    "shared": (),
    "shared_1": (1,),
    "full": (5, 4),
}


def _sum_to_shape(g: jax.Array, shape: tuple) -> jax.Array:
    lead = g.ndim - len(shape)
    g = jnp.sum(g, axis=tuple(range(lead)))
    keep = tuple(i for i, d in enumerate(shape) if d == 1)
    return jnp.sum(g, axis=keep, keepdims=True) if keep else g


@functools.partial(jax.jit, static_argnums=3)
def _prelu_both(x, alpha, ct, alpha_shape):
    y, vjp = jax.vjp(A.prelu, x, alpha)
    dx_auto, dalpha_auto = vjp(ct)
    dx = ct * A.prelu_grad(x, alpha)
    dalpha = _sum_to_shape(ct * A.prelu_grad_alpha(x, alpha), alpha_shape)
    return y, (dx, dx_auto), (dalpha, dalpha_auto), A.prelu_grad(x, alpha), \
        A.prelu_grad_alpha(x, alpha)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("alpha_shape", PRELU_ALPHAS.values(), ids=PRELU_ALPHAS.keys())
def test_prelu_grads_match_vjp(alpha_shape, dtype):
    kx, ka, kg = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(kx, (5, 4), dtype).at[0, 0].set(0.0)
    alpha = jax.random.uniform(ka, alpha_shape, dtype, 0.05, 0.5)
    ct = jax.random.normal(kg, (5, 4), dtype)
    y, pair_x, pair_alpha, gx, galpha = _prelu_both(x, alpha, ct, alpha_shape)
    np.testing.assert_allclose(y, np.where(x > 0, x, np.asarray(alpha) * np.asarray(x)),
                               **TOL[dtype])
    for got, want in (pair_x, pair_alpha):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])
    # Convention at x = 0: dy/dx = alpha, dy/dalpha = 0.
    assert gx[0, 0] == np.broadcast_to(alpha, x.shape)[0, 0]
    assert galpha[0, 0] == 0


def test_prelu_check_grads_f64():
    x = jnp.asarray([[-1.5, -0.3, 0.4, 2.0], [0.7, -2.2, 1.1, -0.6]], F64)
    alpha = jnp.asarray([0.1, 0.25, -0.2, 0.3], F64)

    @jax.custom_vjp
    def f(x, a):
        return A.prelu(x, a)

    def bwd(res, ct):
        x, a = res
        return ct * A.prelu_grad(x, a), _sum_to_shape(ct * A.prelu_grad_alpha(x, a), a.shape)

    f.defvjp(lambda x, a: (A.prelu(x, a), (x, a)), bwd)
    check_grads(f, (x, alpha), order=1, modes=["rev"])


def test_prelu_rejects_alpha_that_does_not_broadcast():
    with pytest.raises(ValueError, match=r"alpha.*\(3,\)"):
        A.prelu(jnp.ones((2, 4)), jnp.ones(3))
    with pytest.raises(ValueError, match="alpha"):
        A.prelu_grad_alpha(jnp.ones((4,)), jnp.ones((2, 4)))  # would grow x


# ----------------------------------------------------------------------------- maxout


def test_maxout_groups_with_piece_index_fastest():
    x = jnp.asarray([[1.0, 5.0, 2.0, -1.0, -3.0, -2.0]], F32)  # units=2, pieces=3
    np.testing.assert_array_equal(A.maxout(x, 3), [[5.0, -1.0]])
    np.testing.assert_array_equal(A.maxout(x, 2), [[5.0, 2.0, -2.0]])
    np.testing.assert_array_equal(A.maxout(x, 1), x)
    assert A.maxout(x, 3).dtype == F32


@functools.partial(jax.jit, static_argnums=2)
def _maxout_both(x, ct, pieces):
    (dx_auto,) = jax.vjp(lambda x: A.maxout(x, pieces), x)[1](ct)
    return A.maxout_vjp(x, ct, pieces), dx_auto


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, pieces", [((5, 6), 1), ((5, 6), 3), ((2, 3, 8), 4)])
def test_maxout_vjp_matches_jax_vjp(shape, pieces, dtype):
    kx, kg = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, shape, dtype)  # continuous: no ties
    ct = jax.random.normal(kg, (*shape[:-1], shape[-1] // pieces), dtype)
    dx, dx_auto = _maxout_both(x, ct, pieces)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, dx_auto, **TOL[dtype])


def test_maxout_vjp_check_grads_f64():
    x = jax.random.normal(jax.random.key(3), (3, 6), F64)
    f = _with_hand_vjp(lambda x: A.maxout(x, 2), lambda x, ct: A.maxout_vjp(x, ct, 2))
    check_grads(f, (x,), order=1, modes=["rev"])


def test_maxout_vjp_ties_go_to_the_first_max():
    x = jnp.asarray([[2.0, 2.0, 1.0, 0.0, 3.0, 3.0]], F64)  # groups (2,2,1), (0,3,3)
    dx = A.maxout_vjp(x, jnp.asarray([[10.0, 20.0]]), 3)
    np.testing.assert_array_equal(dx, [[10.0, 0.0, 0.0, 0.0, 20.0, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_maxout_vjp_nan_input_gives_nan_like_jax_vjp(dtype):
    nan, inf = np.nan, np.inf
    # Groups of 3: NaN first, NaN last with a zero cotangent, finite, two NaNs, NaN beside
    # +-inf, and a finite group with infinities.
    x = jnp.asarray([[nan, 1.0, 0.0, 2.0, 5.0, nan, 2.0, 5.0, 1.0, nan, nan, 3.0,
                      -inf, nan, inf, -inf, 1.0, inf]], dtype)
    ct = jnp.asarray([[1.0, 0.0, 3.0, -2.0, 4.0, 0.5]], dtype)
    # Op by op, jax.vjp of the max gives the whole group cotangent / 0 * 0 = NaN. Not under
    # jit: XLA rewrites that product with the indicator as a select and drops the NaN.
    (dx_auto,) = jax.vjp(lambda x: A.maxout(x, 3), x)[1](ct)
    dx = A.maxout_vjp(x, ct, 3)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(jax.jit(A.maxout_vjp, static_argnums=2)(x, ct, 3), dx)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(dx_auto))
    np.testing.assert_array_equal(
        np.isnan(dx)[0], np.repeat([True, True, False, True, True, False], 3)
    )
    np.testing.assert_array_equal(dx, dx_auto)  # NaN at the same places, equal elsewhere


@pytest.mark.parametrize("pieces", [0, -2, 2.0, True, "2"])
def test_maxout_rejects_bad_num_pieces(pieces):
    with pytest.raises(ValueError, match="num_pieces"):
        A.maxout(jnp.ones((2, 4)), pieces)


def test_maxout_rejects_indivisible_last_axis_and_bad_cotangent():
    with pytest.raises(ValueError, match=r"num_pieces=3.*\(2, 4\)"):
        A.maxout(jnp.ones((2, 4)), 3)
    with pytest.raises(ValueError, match="cotangent"):
        A.maxout_vjp(jnp.ones((2, 4)), jnp.ones((2, 4)), 2)


# ----------------------------------------------------------------------------- softmax

AXES = [-1, 0, (0, 2)]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _softmax_all(x, ct, which, axis):
    f, vjp_fn = getattr(A, which), getattr(A, which + "_vjp")
    reference = getattr(jax.nn, which)
    y, vjp = jax.vjp(lambda x: f(x, axis), x)
    (dx_auto,) = vjp(ct)
    # jax.nn's own function too (independent of our forward).
    y_ref, vjp_ref = jax.vjp(lambda x: reference(x, axis=axis), x)
    (dx_ref,) = vjp_ref(ct)
    return (y, y_ref), vjp_fn(x, ct, axis), dx_auto, dx_ref


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_vjps_match_jax_vjp(which, axis, dtype):
    kx, kg = jax.random.split(jax.random.key(4))
    x = 3.0 * jax.random.normal(kx, (3, 4, 5), dtype)
    ct = jax.random.normal(kg, (3, 4, 5), dtype)
    (y, y_ref), dx, dx_auto, dx_ref = _softmax_all(x, ct, which, axis)
    assert y.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    np.testing.assert_allclose(dx, dx_auto, **TOL[dtype])
    np.testing.assert_allclose(dx, dx_ref, **TOL[dtype])


@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_vjps_check_grads_f64(which):
    x = 2.0 * jax.random.normal(jax.random.key(5), (4, 6), F64)
    f = getattr(A, which)
    vjp_fn = getattr(A, which + "_vjp")
    for axis in (-1, 0):
        g = _with_hand_vjp(
            functools.partial(f, axis=axis), functools.partial(vjp_fn, axis=axis)
        )
        check_grads(g, (x,), order=1, modes=["rev"])


def test_softmax_rows_sum_to_one_and_mask_with_minus_inf():
    x = jnp.asarray([[0.0, -jnp.inf, 1.0], [-jnp.inf, -jnp.inf, 2.0]], F32)
    s = A.softmax(x)
    np.testing.assert_allclose(jnp.sum(s, -1), [1.0, 1.0], rtol=1e-6)
    assert s[0, 1] == 0 and s[1, 2] == 1
    assert np.all(np.isfinite(A.softmax_vjp(x, jnp.ones_like(x))))


NON_FINITE_ROWS = {
    "plus_inf": [np.inf, 0.0, 0.0],
    "two_plus_inf": [np.inf, np.inf, 0.0],
    "plus_and_minus_inf": [np.inf, -np.inf, 0.0],
    "minus_inf": [-np.inf, 0.0, 0.0],
    "all_minus_inf": [-np.inf, -np.inf, -np.inf],
    "nan": [np.nan, 0.0, 0.0],
}


@pytest.mark.parametrize("row", list(NON_FINITE_ROWS), ids=str)
@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_non_finite_logits_match_jax_nn(which, row):
    # e.g. jax.nn.softmax([inf, 0, 0]) is all NaN (inf - inf), not [nan, 0, 0].
    x = jnp.asarray([NON_FINITE_ROWS[row], [0.5, -1.0, 2.0]], F32)
    ct = jnp.asarray([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]], F32)
    (y, y_ref), dx, dx_auto, dx_ref = _softmax_all(x, ct, which, -1)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx_auto, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, **TOL[F32])  # NaN and inf at the same places


@pytest.mark.parametrize("shape,axis", [((2, 0), -1), ((2, 0, 3), 1), ((0, 3), -1),
                                        ((2, 0), (0, 1))], ids=str)
@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_axis_is_empty_as_in_jax_nn(which, shape, axis):
    # A zero-length axis has no maximum to shift by: this raised numpy's "zero-size array
    # to reduction operation max" where jax.nn returns an empty array.
    x = jnp.zeros(shape, F32)
    y = getattr(A, which)(x, axis=axis)
    assert y.shape == getattr(jax.nn, which)(x, axis=axis).shape == shape
    assert getattr(A, f"{which}_vjp")(x, x, axis=axis).shape == shape


# ----------------------------------------------------------------------------- stability

EXTREME = jnp.asarray([-1e4, -1000.0, -100.0, -1.0, 0.0, 1.0, 100.0, 1000.0, 1e4], F32)
STABLE = ["sigmoid", "tanh", "softplus", "swish", "silu", "mish", "elu", "selu", "gelu",
          "gelu_tanh"]


@pytest.mark.parametrize("name", STABLE)
def test_stable_elementwise_at_extremes_f32(name):
    f, g = A.get(name), A.get_grad(name)
    for out in (f(EXTREME), g(EXTREME), jax.vmap(jax.grad(f))(EXTREME)):
        assert out.dtype == F32
        assert np.all(np.isfinite(out)), (name, out)


def test_stable_values_at_extremes_are_exact_limits():
    x = jnp.asarray([-1000.0, 1000.0], F32)
    np.testing.assert_array_equal(A.sigmoid(x), [0.0, 1.0])
    np.testing.assert_array_equal(A.softplus(x), [0.0, 1000.0])
    np.testing.assert_array_equal(A.swish(x), [0.0, 1000.0])
    np.testing.assert_array_equal(A.mish(x), [0.0, 1000.0])
    np.testing.assert_array_equal(A.elu(x), [-1.0, 1000.0])
    np.testing.assert_array_equal(A.softplus_grad(x), [0.0, 1.0])
    np.testing.assert_array_equal(A.elu_grad(x), [0.0, 1.0])


def test_tanh_grad_keeps_relative_precision_in_saturation():
    # 1 - tanh(x)^2 is exactly 0 in float32 from |x| ~ 9 on (and 80x too large at |x| = 20
    # in float64), while the derivative 1 / cosh(x)^2 is a normal number there.
    x = np.asarray([-40.0, -20.0, -10.0, -0.5, 0.0, 2.0, 9.5, 15.0, 20.0, 40.0])
    ref = 1.0 / np.cosh(x) ** 2
    for dtype, rtol in ((F32, 1e-5), (F64, 1e-13)):
        g = A.tanh_grad(jnp.asarray(x, dtype))
        assert g.dtype == dtype
        np.testing.assert_allclose(g, ref.astype(dtype), rtol=rtol)


@pytest.mark.parametrize("dtype, x, beta", [(jnp.float16, 1e4, 10.0), (F32, 2e38, 2.0)],
                         ids=["f16", "f32"])
def test_swish_grad_finite_where_beta_x_overflows(dtype, x, beta):
    # beta * x is +-inf for these finite x; the derivative is 1 (x > 0) and 0 (x < 0) there,
    # as jax.grad of the forward function gives.
    xs = jnp.asarray([x, -x], dtype)
    expected = np.asarray([1.0, 0.0], dtype)
    np.testing.assert_array_equal(A.swish_grad(xs, beta=beta), expected)
    np.testing.assert_array_equal(jax.vmap(jax.grad(lambda t: A.swish(t, beta)))(xs), expected)


@pytest.mark.parametrize("dtype, big", [(jnp.float16, 300.0), (jnp.bfloat16, 1e20), (F32, 1e20)],
                         ids=["f16", "bf16", "f32"])
def test_gelu_tanh_finite_for_large_finite_inputs(dtype, big):
    # x^2 overflows (float16 from |x| ~ 256, float32 from ~1.8e19): the derivative was
    # inf * 0 = NaN, by hand and by jax.grad, where it is 1 (x > 0) or 0 (x < 0).
    xs = jnp.asarray([big, -big], dtype)
    expected = np.asarray([1.0, 0.0], dtype)
    np.testing.assert_array_equal(A.gelu_tanh_grad(xs), expected)
    np.testing.assert_array_equal(A.gelu_grad(xs, approximate=True), expected)
    np.testing.assert_array_equal(jax.vmap(jax.grad(A.gelu_tanh))(xs), expected)
    np.testing.assert_array_equal(A.gelu_tanh(xs), np.asarray([big, 0.0], dtype))


@pytest.mark.parametrize("dtype", [jnp.float16, F32, F64])
def test_softsign_at_infinity_is_its_limit(dtype):
    # x / (1 + |x|) is inf / inf = nan at +-inf (jax.nn.soft_sign too); the limit is +-1,
    # and the derivative 1 / (1 + |x|)^2 goes to 0 there.
    xs = jnp.asarray([np.inf, -np.inf, 3.0, -2.0, 0.0], dtype)
    y = A.softsign(xs)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y[:2], np.asarray([1.0, -1.0], dtype))
    np.testing.assert_allclose(y[2:], np.asarray([0.75, -2 / 3, 0.0], dtype), rtol=1e-3)
    np.testing.assert_array_equal(A.softsign_grad(xs)[:2], np.zeros(2, dtype))
    np.testing.assert_allclose(jax.vmap(jax.grad(A.softsign))(xs[2:]),
                               A.softsign_grad(xs[2:]), rtol=2e-3 if dtype == jnp.float16
                               else 1e-6)


INF = math.inf
# (name, kwargs, f(-inf), f(+inf), f'(-inf), f'(+inf)): the limits of the function and of
# its derivative (exponential' diverges with it).
INF_LIMITS = [
    ("step", {}, 0.0, 1.0, 0.0, 0.0),
    ("linear", {}, -INF, INF, 1.0, 1.0),
    ("identity", {}, -INF, INF, 1.0, 1.0),
    ("sigmoid", {}, 0.0, 1.0, 0.0, 0.0),
    ("hard_sigmoid", {}, 0.0, 1.0, 0.0, 0.0),
    ("tanh", {}, -1.0, 1.0, 0.0, 0.0),
    ("relu", {}, 0.0, INF, 0.0, 1.0),
    ("relu6", {}, 0.0, 6.0, 0.0, 0.0),
    ("leaky_relu", {}, -INF, INF, 0.01, 1.0),
    ("leaky_relu", {"negative_slope": 0.2}, -INF, INF, 0.2, 1.0),
    ("elu", {}, -1.0, INF, 0.0, 1.0),
    ("elu", {"alpha": 0.5}, -0.5, INF, 0.0, 1.0),
    ("selu", {}, -SELU_SCALE * SELU_ALPHA, INF, 0.0, SELU_SCALE),
    ("exponential", {}, 0.0, INF, 0.0, INF),
    ("softplus", {}, 0.0, INF, 0.0, 1.0),
    ("softsign", {}, -1.0, 1.0, 0.0, 0.0),
    ("swish", {}, 0.0, INF, 0.0, 1.0),
    ("swish", {"beta": 1.7}, 0.0, INF, 0.0, 1.0),
    ("swish", {"beta": 0.0}, -INF, INF, 0.5, 0.5),  # x / 2
    ("swish", {"beta": -1.0}, -INF, 0.0, 1.0, 0.0),
    ("silu", {}, 0.0, INF, 0.0, 1.0),
    ("mish", {}, 0.0, INF, 0.0, 1.0),
    ("gelu", {}, 0.0, INF, 0.0, 1.0),
    ("gelu", {"approximate": True}, 0.0, INF, 0.0, 1.0),
    ("gelu_tanh", {}, 0.0, INF, 0.0, 1.0),
]
HALF_TOL = dict(rtol=1e-2, atol=0.0)
INF_DTYPES = {"f16": (jnp.float16, HALF_TOL), "bf16": (jnp.bfloat16, HALF_TOL),
              "f32": (F32, dict(rtol=1e-6, atol=0.0)), "f64": (F64, dict(rtol=1e-12, atol=0.0))}


def test_inf_limits_table_covers_every_elementwise_name():
    assert {n for n, *_ in INF_LIMITS} == set(ELEMENTWISE)


@pytest.mark.parametrize("dtype_id", INF_DTYPES)
@pytest.mark.parametrize("name, kw, f_lo, f_hi, g_lo, g_hi", INF_LIMITS,
                         ids=[n + "".join(f"-{k}={v}" for k, v in kw.items())
                              for n, kw, *_ in INF_LIMITS])
def test_value_and_derivative_at_infinity_are_the_limits(name, kw, f_lo, f_hi, g_lo, g_hi,
                                                         dtype_id):
    # gelu'(+inf) was inf * 0 = NaN (and gelu(-inf), swish(-inf), mish(-inf) too), while
    # the derivative tends to 1 at +inf and 0 at -inf.
    dtype, tol = INF_DTYPES[dtype_id]
    x = jnp.asarray([-np.inf, np.inf], dtype)
    f, g = A.get(name, **kw), A.get_grad(name, **kw)
    for fn, expected in ((f, [f_lo, f_hi]), (g, [g_lo, g_hi])):
        # A fresh lambda: jax.jit(fn) would share its compilation cache with other tests
        # that count compilations of the same function (test_jit_and_vmap).
        for out in (fn(x), jax.jit(lambda t, fn=fn: fn(t))(x)):
            assert out.dtype == dtype
            got = np.asarray(out, np.float64)
            want = np.asarray(np.asarray(expected, dtype), np.float64)  # the limit, rounded
            assert not np.isnan(got).any(), (name, kw, got)
            np.testing.assert_allclose(got, want, **tol, err_msg=f"{name} {kw}")


def test_softsign_grad_does_not_underflow_to_zero_in_float16():
    # (1 + |x|)^2 overflows float16 from |x| = 255 on, so 1 / (1 + |x|)^2 read 0 there
    # although the derivative (1.1e-5 at 300, 1e-6 at 1000) is representable.
    xs = np.asarray([255.0, 300.0, -1000.0], np.float64)
    g = A.softsign_grad(jnp.asarray(xs, jnp.float16))
    assert g.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(g, np.float64), 1.0 / (1.0 + np.abs(xs)) ** 2,
                               rtol=2e-2)

@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_stable_at_extremes_f32(which):
    x = jnp.asarray([[1000.0, -1000.0, 0.0, -1e4], [-1e4, -1e4, -1e4 + 1.0, -1000.0]], F32)
    f, vjp_fn = getattr(A, which), getattr(A, which + "_vjp")
    ct = jnp.asarray([[1.0, -2.0, 0.5, 3.0], [0.3, 0.1, -1.0, 2.0]], F32)
    (dx_auto,) = jax.vjp(f, x)[1](ct)
    for out in (f(x), vjp_fn(x, ct), dx_auto):
        assert out.dtype == F32 and np.all(np.isfinite(out)), out
    if which == "log_softmax":
        np.testing.assert_allclose(f(x)[0], [0.0, -2000.0, -1000.0, -11000.0])
    else:
        np.testing.assert_allclose(f(x)[1], [0.0, 0.0, 0.0, 1.0])


# ----------------------------------------------------------------------------- registry

EXPECTED_NAMES = {
    "step", "linear", "identity", "sigmoid", "hard_sigmoid", "tanh", "relu", "relu6",
    "leaky_relu", "elu", "selu", "gelu", "gelu_tanh", "swish", "silu", "mish", "softplus",
    "softsign", "exponential", "prelu", "maxout", "softmax", "log_softmax",
}


def test_names_are_the_contract():
    assert set(A.names()) == EXPECTED_NAMES
    assert len(A.names()) == len(EXPECTED_NAMES)
    assert set(ELEMENTWISE) == EXPECTED_NAMES - set(NON_ELEMENTWISE)
    assert all(name in A.__all__ for name in A.names())


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_get_serialize_round_trip(name):
    fn = A.get(name)
    assert fn is getattr(A, name)
    assert A.serialize(fn) == name
    assert A.get(A.serialize(fn)) is fn
    if A.is_elementwise(name):
        assert A.get_grad(name) is getattr(A, name + "_grad")
    else:
        with pytest.raises(ValueError, match=r"_vjp|_grad"):
            A.get_grad(name)


@pytest.mark.parametrize(
    "name, kw, direct",
    [
        ("leaky_relu", {"negative_slope": 0.2}, lambda x: A.leaky_relu(x, 0.2)),
        ("elu", {"alpha": 0.5}, lambda x: A.elu(x, 0.5)),
        ("swish", {"beta": 1.7}, lambda x: A.swish(x, 1.7)),
        ("gelu", {"approximate": True}, lambda x: A.gelu_tanh(x)),
        ("maxout", {"num_pieces": 2}, lambda x: A.maxout(x, 2)),
        ("softmax", {"axis": 0}, lambda x: A.softmax(x, 0)),
        ("prelu", {"alpha": jnp.asarray([0.1, 0.2, 0.3, 0.4])},
         lambda x: A.prelu(x, jnp.asarray([0.1, 0.2, 0.3, 0.4]))),
    ],
)
def test_get_binds_parameters(name, kw, direct):
    x = jax.random.normal(jax.random.key(6), (3, 4), F32)
    fn = A.get(name, **kw)
    np.testing.assert_array_equal(fn(x), direct(x))
    assert A.serialize(fn) == name and fn.keywords == kw
    assert fn(x).dtype == F32
    if A.is_elementwise(name):
        g = A.get_grad(name, **kw)
        np.testing.assert_array_equal(g(x), getattr(A, name + "_grad")(x, **kw))
        with pytest.raises(ValueError, match="derivative"):
            A.serialize(g)


def test_bound_functions_compare_by_value():
    assert A.get("elu", alpha=0.5) == A.get("elu", alpha=0.5)
    assert hash(A.get("elu", alpha=0.5)) == hash(A.get("elu", alpha=0.5))
    assert A.get("elu", alpha=0.5) != A.get("elu", alpha=0.6)


@pytest.mark.parametrize("lookup", [A.get, A.get_grad, A.is_elementwise])
def test_unknown_name_suggests_close_matches(lookup):
    with pytest.raises(ValueError, match=r"'rleu'.*'relu'"):
        lookup("rleu")
    with pytest.raises(ValueError, match=r"'sigmiod'.*'sigmoid'"):
        lookup("sigmiod")
    with pytest.raises(ValueError, match="valid names"):
        lookup("no_such_activation")
    with pytest.raises(TypeError, match="name"):
        lookup(3)


@pytest.mark.parametrize(
    "name, kw, pattern",
    [
        ("relu", {"alpha": 1.0}, r"'alpha'.*'relu'.*allowed: none"),
        ("leaky_relu", {"negativ_slope": 0.2}, r"'negativ_slope'.*did you mean 'negative_slope'"),
        ("leaky_relu", {"negative_slope": "big"}, r"negative_slope.*'big'"),
        ("elu", {"alpha": float("nan")}, r"alpha.*nan"),
        ("swish", {"beta": True}, r"beta.*True"),
        ("gelu", {"approximate": 1}, r"approximate.*bool"),
        ("maxout", {"num_pieces": 0}, r"num_pieces.*>= 1"),
        ("softmax", {"axis": 1.5}, r"axis.*1.5"),
        ("silu", {"beta": 2.0}, r"'beta'.*'silu'"),
        ("gelu_tanh", {"approximate": False}, r"'approximate'.*'gelu_tanh'"),
    ],
)
def test_bad_kwargs_are_named(name, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        A.get(name, **kw)


@pytest.mark.parametrize(
    "call, pattern",
    [
        # A truthy non-bool must not silently pick the tanh approximation.
        (lambda x: A.gelu(x, approximate="False"), r"gelu: gelu argument approximate.*bool"),
        (lambda x: A.gelu_grad(x, approximate=1), r"gelu_grad: .*approximate.*bool"),
        # An empty axis tuple would "normalize" over nothing: all ones / all zeros.
        (lambda x: A.softmax(x, axis=()), r"softmax: softmax argument axis.*\(\)"),
        (lambda x: A.log_softmax(x, axis=()), r"log_softmax: .*axis"),
        (lambda x: A.softmax_vjp(x, x, axis=1.0), r"softmax_vjp: .*axis.*1.0"),
        (lambda x: A.log_softmax_vjp(x, x, axis=()), r"log_softmax_vjp: .*axis"),
    ],
)
def test_direct_calls_check_their_arguments_like_get(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(jnp.asarray([[-1.0, 0.0, 2.0]], jnp.float32))


def test_array_parameters_are_checked_by_value_not_by_type():
    x = jnp.asarray([-1.0, 2.0], F32)
    # A 0-d numpy array (e.g. read from a config array) is a valid slope...
    np.testing.assert_allclose(A.get("leaky_relu", negative_slope=np.array(0.2))(x), [-0.2, 2.0])
    np.testing.assert_allclose(A.get("elu", alpha=np.float32(0.5))(x)[1], 2.0)
    # ...and a concrete jax or numpy array holding nan / inf is rejected like a float.
    for bad in (jnp.array(float("nan")), np.array(np.inf), jnp.array([0.5, np.nan])):
        with pytest.raises(ValueError, match=r"alpha.*finite"):
            A.get("elu", alpha=bad)
    with pytest.raises(ValueError, match=r"beta.*finite"):
        A.get("swish", beta=jnp.array(True))
    # Traced values cannot be inspected and still pass (a slope swept with vmap).
    out = jax.vmap(lambda a: A.get("leaky_relu", negative_slope=a)(x))(jnp.array([0.1, 0.3]))
    np.testing.assert_allclose(out, [[-0.1, 2.0], [-0.3, 2.0]], rtol=1e-6)


@pytest.mark.parametrize("pieces", [np.array(2), jnp.array(2), np.int32(2)])
def test_maxout_accepts_concrete_integer_arrays(pieces):
    x = jnp.asarray([[1.0, 3.0, -2.0, -1.0]], F32)
    np.testing.assert_array_equal(A.maxout(x, pieces), [[3.0, -1.0]])
    np.testing.assert_array_equal(A.get("maxout", num_pieces=pieces)(x), [[3.0, -1.0]])
    np.testing.assert_array_equal(A.maxout_vjp(x, jnp.ones((1, 2), F32), pieces),
                                  [[0.0, 1.0, 0.0, 1.0]])


def test_maxout_rejects_traced_or_non_integer_num_pieces():
    x = jnp.ones((1, 4), F32)
    for bad in (np.array(2.0), jnp.array(True), np.array([2])):
        with pytest.raises(ValueError, match="num_pieces must be an int >= 1"):
            A.maxout(x, bad)
    with pytest.raises(ValueError, match="num_pieces must be a static int"):
        jax.jit(A.maxout)(x, 2)

def test_serialize_rejects_unregistered_functions():
    for fn in (jax.nn.relu, lambda x: x, A.relu_grad, A.softmax_vjp):
        with pytest.raises(ValueError, match="serialize"):
            A.serialize(fn)


# ----------------------------------------------------------------------------- jit, vmap, dtypes


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_float32_stays_float32_and_ints_become_float(name):
    x = jnp.asarray([-2.0, 0.5, 3.0], F32)
    for out in (A.get(name)(x), A.get_grad(name)(x)):
        assert out.dtype == F32 and out.shape == x.shape
    # A float64 parameter value must not promote float32 inputs either.
    if name in ("leaky_relu", "elu", "swish"):
        param = {"leaky_relu": "negative_slope", "elu": "alpha", "swish": "beta"}[name]
        kw = {param: np.float64(0.3)}
        assert A.get(name, **kw)(x).dtype == F32 and A.get_grad(name, **kw)(x).dtype == F32
    out = A.get(name)(jnp.asarray([-2, 0, 3]))
    assert jnp.issubdtype(out.dtype, jnp.floating)


def test_non_elementwise_keep_float32():
    x = jnp.ones((2, 6), F32)
    alpha64 = jnp.full((6,), 0.2, F64)
    outs = [
        A.prelu(x, alpha64), A.prelu_grad(x, alpha64), A.prelu_grad_alpha(x, alpha64),
        A.maxout(x, 3), A.maxout_vjp(x, jnp.ones((2, 2), F64), 3),
        A.softmax(x), A.log_softmax(x), A.softmax_vjp(x, x), A.log_softmax_vjp(x, x),
    ]
    assert all(o.dtype == F32 for o in outs)


def test_jit_and_vmap():
    x = jax.random.normal(jax.random.key(7), (4, 6), F32)
    # jit: identical to eager, and compiled once per shape.
    f = jax.jit(A.get("gelu"))
    np.testing.assert_allclose(f(x), A.gelu(x), rtol=1e-6)
    np.testing.assert_allclose(f(2 * x), A.gelu(2 * x), rtol=1e-6)
    assert f._cache_size() == 1
    np.testing.assert_array_equal(
        jax.jit(A.maxout, static_argnums=1)(x, 3), A.maxout(x, 3)
    )
    np.testing.assert_allclose(
        jax.jit(A.log_softmax_vjp, static_argnums=2)(x, x, 0), A.log_softmax_vjp(x, x, 0),
        rtol=1e-6,
    )
    # vmap over a traced parameter (a sweep of slopes) and over a batch axis.
    slopes = jnp.asarray([0.0, 0.1, 0.3], F32)
    swept = jax.vmap(A.leaky_relu_grad, in_axes=(None, 0))(x, slopes)
    for i, s in enumerate(slopes):
        np.testing.assert_array_equal(swept[i], A.leaky_relu_grad(x, s))
    np.testing.assert_allclose(
        jax.vmap(A.softmax_vjp)(x, 2 * x), A.softmax_vjp(x, 2 * x), rtol=1e-6
    )
    np.testing.assert_array_equal(
        jax.vmap(lambda r, g: A.maxout_vjp(r, g, 2))(x, x[:, :3]), A.maxout_vjp(x, x[:, :3], 2)
    )
    np.testing.assert_array_equal(
        jax.vmap(A.prelu_grad_alpha, in_axes=(0, None))(x, slopes[1]),
        A.prelu_grad_alpha(x, slopes[1]),
    )


@pytest.mark.parametrize("beta", [0.0, 1.0, -1.5])
def test_swish_keeps_nan_and_its_beta_derivative_at_zero(beta):
    # The +-inf limits came with a select that turned a NaN input into s (0.5 for beta = 0)
    # and a beta * x of 0 for beta = 0, whose d/dbeta (x) was then lost.
    x = jnp.array([jnp.nan, 2.0, -3.0], jnp.float32)
    assert np.isnan(float(A.swish(x, beta)[0])) and np.isnan(float(A.swish_grad(x, beta)[0]))
    for xv in (2.0, -3.0):
        s = 1.0 / (1.0 + np.exp(-beta * xv))
        got = float(jax.grad(A.swish, argnums=1)(jnp.float32(xv), jnp.float32(beta)))
        assert got == pytest.approx(xv * xv * s * (1 - s), rel=1e-5)


COMPLEX_CALLS = [(n, lambda z, n=n: A.get(n)(z)) for n in ELEMENTWISE] + [
    (f"{n}_grad", lambda z, n=n: A.get_grad(n)(z)) for n in ELEMENTWISE
] + [
    ("prelu", lambda z: A.prelu(z, 0.1)),
    ("prelu_grad", lambda z: A.prelu_grad(z, 0.1)),
    ("prelu_grad_alpha", lambda z: A.prelu_grad_alpha(z, 0.1)),
    ("maxout", lambda z: A.maxout(z, 2)),
    ("maxout_vjp", lambda z: A.maxout_vjp(z, jnp.ones(1), 2)),
    ("softmax", A.softmax),
    ("log_softmax", A.log_softmax),
    ("softmax_vjp", lambda z: A.softmax_vjp(z, z)),
    ("log_softmax_vjp", lambda z: A.log_softmax_vjp(z, z)),
]


@pytest.mark.parametrize("fn, call", COMPLEX_CALLS, ids=[c[0] for c in COMPLEX_CALLS])
def test_complex_inputs_are_refused_by_name(fn, call):
    # They used to give silently wrong numbers: tanh_grad(1+1j) a real array (|x| taken),
    # relu(1+1j) = 1+1j, softmax a complex "distribution".
    z = jnp.asarray([1 + 1j, -1 - 2j], jnp.complex64)
    with pytest.raises(TypeError, match=rf"activations\.{fn}: x must be real.*complex64"):
        call(z)
