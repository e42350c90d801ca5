"""Tests of jaxnn.layers: every backward equals jax.vjp of its forward; mode semantics."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import initializers, layers

KEY = jax.random.PRNGKey(0)


def _normal(seed, shape, dtype=jnp.float64):
    return jax.random.normal(jax.random.PRNGKey(seed), shape, dtype)


# ----------------------------------------------------------------------------- dense


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dense_init_shapes_and_dtype(use_bias, dtype):
    p = layers.dense_init(
        KEY, 5, 3, kernel_init=initializers.get("glorot_normal"), use_bias=use_bias, dtype=dtype
    )
    assert p["w"].shape == (5, 3) and p["w"].dtype == dtype
    assert ("b" in p) == use_bias
    if use_bias:
        assert p["b"].shape == (3,) and p["b"].dtype == dtype
        np.testing.assert_array_equal(p["b"], 0.0)
    # Different keys give different kernels; the same key the same kernel.
    q = layers.dense_init(KEY, 5, 3, kernel_init="glorot_normal", use_bias=use_bias, dtype=dtype)
    np.testing.assert_array_equal(p["w"], q["w"])
    r = layers.dense_init(
        jax.random.PRNGKey(1), 5, 3, kernel_init="glorot_normal", use_bias=use_bias, dtype=dtype
    )
    assert not np.allclose(p["w"], r["w"])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_dense_init_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="dense_init: in_features"):
        layers.dense_init(KEY, bad, 3, kernel_init=initializers.zeros)


def test_dense_init_rejects_non_callable_initializer():
    with pytest.raises(TypeError, match="kernel_init"):
        layers.dense_init(KEY, 2, 3, kernel_init=3.0)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("x_shape", [(6, 4), (2, 3, 4)])
def test_dense_backward_matches_vjp(use_bias, x_shape):
    p = layers.dense_init(
        KEY, 4, 3, kernel_init="lecun_normal", bias_init=initializers.normal(1.0),
        use_bias=use_bias, dtype=jnp.float64,
    )
    x = _normal(1, x_shape)
    y, vjp = jax.vjp(layers.dense_forward, p, x)
    xw = x @ p["w"]
    expected_y = xw + (jnp.broadcast_to(p["b"], xw.shape) if use_bias else 0.0)
    np.testing.assert_allclose(y, expected_y, rtol=1e-12)
    g = _normal(2, y.shape)
    gp_ref, gx_ref = vjp(g)
    gp, gx = layers.dense_backward(p, x, g)
    assert set(gp) == set(p)
    for k in p:
        np.testing.assert_allclose(gp[k], gp_ref[k], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-12)


def test_dense_keeps_float32():
    p = layers.dense_init(KEY, 4, 3, kernel_init="he_normal", dtype=jnp.float32)
    x = _normal(1, (5, 4), jnp.float32)
    y = layers.dense_forward(p, x)
    gp, gx = layers.dense_backward(p, x, jnp.ones_like(y))
    assert y.dtype == gx.dtype == gp["w"].dtype == gp["b"].dtype == jnp.float32


@pytest.mark.parametrize(
    "x_shape, g_shape, match",
    [
        ((4, 5), None, r"dense_forward: x must have shape \(\.\.\., 3\).*got \(4, 5\)"),
        ((), None, r"dense_forward: x must have shape \(\.\.\., 3\).*got \(\)"),
        # Same number of rows, other leading shape: x^T G silently paired wrong rows.
        ((2, 3, 3), (3, 2, 2),
         r"dense_backward: grad_out must have shape \(2, 3, 2\).*\(3, 2, 2\)"),
        ((4, 3), (4, 5), r"dense_backward: grad_out must have shape \(4, 2\).*\(4, 5\)"),
        ((4, 5), (4, 2), r"dense_backward: x must have shape \(\.\.\., 3\).*got \(4, 5\)"),
    ],
)
def test_dense_rejects_inputs_of_the_wrong_shape(x_shape, g_shape, match):
    p = layers.dense_init(KEY, 3, 2, kernel_init="he_normal")
    x = jnp.ones(x_shape)
    with pytest.raises(ValueError, match=match):
        if g_shape is None:
            layers.dense_forward(p, x)
        else:
            layers.dense_backward(p, x, jnp.ones(g_shape))


@pytest.mark.parametrize("x_dtype, p_dtype", [(jnp.float16, jnp.float32),
                                              (jnp.float32, jnp.bfloat16)])
def test_dense_backward_dtypes_match_vjp_with_mixed_dtypes(x_dtype, p_dtype):
    # jax.vjp gives each cotangent its primal's dtype; x^T G and G W^T promoted instead.
    p = layers.dense_init(KEY, 4, 3, kernel_init="he_normal", dtype=p_dtype)
    x = _normal(1, (5, 4), x_dtype)
    y, vjp = jax.vjp(layers.dense_forward, p, x)
    g = _normal(2, y.shape, y.dtype)
    gp_ref, gx_ref = vjp(g)
    gp, gx = layers.dense_backward(p, x, g)
    assert gx.dtype == gx_ref.dtype == x_dtype
    for k in p:
        assert gp[k].dtype == gp_ref[k].dtype == p_dtype
        np.testing.assert_allclose(np.asarray(gp[k], np.float32), np.asarray(gp_ref[k], np.float32),
                                   rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(np.asarray(gx, np.float32), np.asarray(gx_ref, np.float32),
                               rtol=1e-2, atol=1e-2)


def test_dense_backward_of_integer_inputs_keeps_a_float_input_gradient():
    # Raw uint8 pixels: grad_x cast to x's dtype came back as zeros in uint8.
    p = layers.dense_init(KEY, 4, 3, kernel_init="he_normal")
    x = jnp.arange(20, dtype=jnp.uint8).reshape(5, 4)
    g = _normal(2, (5, 3), jnp.float32)
    gp, gx = layers.dense_backward(p, x, g)
    assert gx.dtype == jnp.float32
    np.testing.assert_allclose(gx, g @ p["w"].T, rtol=1e-6)
    np.testing.assert_allclose(gp["w"], x.astype(jnp.float32).T @ g, rtol=1e-6)


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rejects_rate_outside_unit_interval(rate):
    x = jnp.ones((3, 4))
    with pytest.raises(ValueError, match=r"dropout_forward: rate must be in \[0, 1\)"):
        layers.dropout_forward(KEY, x, rate, train=True)
    with pytest.raises(ValueError, match="dropout_backward: rate"):
        layers.dropout_backward(x, x, rate, train=True)


def test_dropout_scale_that_overflows_the_dtype_is_refused():
    # float16's largest finite value is 65504: at rate 0.99999 the inverted scale 1e5 is
    # inf there, so kept units were inf and dropped ones 0 * inf = nan.
    x = jnp.ones((4, 8), jnp.float16)
    with pytest.raises(ValueError, match=r"dropout_forward: rate 0\.99999 .*float16 \(65504\)"):
        layers.dropout_forward(jax.random.key(0), x, 0.99999, train=True)
    with pytest.raises(ValueError, match=r"dropout_backward: rate 0\.99999 .*float16"):
        layers.dropout_backward(jnp.ones_like(x), x, 0.99999, train=True)
    # The same rate in float32, a rate that fits float16, textbook dropout and evaluation
    # mode are all fine (and finite).
    y, _ = layers.dropout_forward(jax.random.key(0), x.astype(jnp.float32), 0.99999, train=True)
    assert bool(jnp.all(jnp.isfinite(y)))
    y, mask = layers.dropout_forward(jax.random.key(0), x, 0.9999, train=True)
    assert bool(jnp.all(jnp.isfinite(y)))
    assert bool(jnp.all(jnp.isfinite(layers.dropout_backward(mask, x, 0.9999, train=True))))
    y, _ = layers.dropout_forward(jax.random.key(0), x, 0.99999, train=True, inverted=False)
    assert bool(jnp.all(jnp.isfinite(y)))
    assert layers.dropout_forward(None, x, 0.99999, train=False)[0].dtype == jnp.float16


def test_dropout_requires_key_in_training():
    with pytest.raises(ValueError, match="key is required"):
        layers.dropout_forward(None, jnp.ones((3, 4)), 0.5, train=True)
    # ... but not in evaluation mode or with rate 0.
    layers.dropout_forward(None, jnp.ones((3, 4)), 0.5, train=False)
    layers.dropout_forward(None, jnp.ones((3, 4)), 0.0, train=True)


@pytest.mark.parametrize("inverted", [True, False])
def test_dropout_train_mode(inverted):
    rate = 0.3
    x = _normal(3, (200, 50), jnp.float32)
    y, mask = layers.dropout_forward(KEY, x, rate, train=True, inverted=inverted)
    assert y.dtype == mask.dtype == jnp.float32
    assert set(np.unique(np.asarray(mask))) <= {0.0, 1.0}
    # The keep fraction is 1 - rate (10000 Bernoulli draws: std ~ 0.005).
    assert abs(float(mask.mean()) - (1 - rate)) < 0.02
    scale = 1 / (1 - rate) if inverted else 1.0
    np.testing.assert_allclose(y, x * mask * scale, rtol=1e-6)
    # Same key, same mask; another key, another mask.
    _, mask2 = layers.dropout_forward(KEY, x, rate, train=True, inverted=inverted)
    np.testing.assert_array_equal(mask, mask2)
    _, mask3 = layers.dropout_forward(jax.random.PRNGKey(9), x, rate, train=True)
    assert not np.array_equal(mask, mask3)


def test_dropout_mask_depends_on_the_key_only():
    x64 = _normal(3, (50, 40), jnp.float64)
    _, m64 = layers.dropout_forward(KEY, x64, 0.3, train=True)
    _, m32 = layers.dropout_forward(KEY, x64.astype(jnp.float32), 0.3, train=True)
    with jax.enable_x64(False):
        _, m_off = layers.dropout_forward(KEY, jnp.ones((50, 40), jnp.float32), 0.3, train=True)
    np.testing.assert_array_equal(m64, m32)
    np.testing.assert_array_equal(m64, np.asarray(m_off))


def test_dropout_eval_mode():
    x = _normal(3, (4, 5), jnp.float32)
    y, mask = layers.dropout_forward(KEY, x, 0.25, train=False)  # inverted: identity
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(mask, 1.0)
    y, _ = layers.dropout_forward(KEY, x, 0.25, train=False, inverted=False)  # textbook
    np.testing.assert_allclose(y, 0.75 * x, rtol=1e-7)
    assert y.dtype == jnp.float32


def test_dropout_expectation_matches_between_modes():
    # Both variants keep E[train output] == eval output.
    x = jnp.full((400, 400), 2.0)
    for inverted in (True, False):
        y_train, _ = layers.dropout_forward(KEY, x, 0.4, train=True, inverted=inverted)
        y_eval, _ = layers.dropout_forward(KEY, x, 0.4, train=False, inverted=inverted)
        assert abs(float(y_train.mean()) - float(y_eval.mean())) < 0.02


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("inverted", [True, False])
def test_dropout_backward_matches_vjp(train, inverted):
    x = _normal(4, (6, 7))
    f = lambda x: layers.dropout_forward(KEY, x, 0.4, train=train, inverted=inverted)[0]
    y, vjp = jax.vjp(f, x)
    _, mask = layers.dropout_forward(KEY, x, 0.4, train=train, inverted=inverted)
    g = _normal(5, y.shape)
    (gx_ref,) = vjp(g)
    gx = layers.dropout_backward(mask, g, 0.4, train=train, inverted=inverted)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-13)


@pytest.mark.parametrize("mask_shape", [(1, 7), (7,), (6, 1)])
def test_dropout_backward_rejects_a_mask_of_the_wrong_shape(mask_shape):
    # A broadcastable mask of another shape silently dropped the same units in every row.
    g = _normal(5, (6, 7))
    with pytest.raises(ValueError, match=rf"dropout_backward: mask must have the shape of "
                                         rf"grad_out \(6, 7\).*{re.escape(str(mask_shape))}"):
        layers.dropout_backward(jnp.ones(mask_shape), g, 0.4, train=True)


# ----------------------------------------------------------------------------- batch norm


def test_batch_norm_init():
    params, state = layers.batch_norm_init(4, jnp.float32)
    np.testing.assert_array_equal(params["gamma"], 1.0)
    np.testing.assert_array_equal(params["beta"], 0.0)
    np.testing.assert_array_equal(state["mean"], 0.0)
    np.testing.assert_array_equal(state["var"], 1.0)
    assert all(v.shape == (4,) and v.dtype == jnp.float32 for v in (*params.values(),
                                                                    *state.values()))
    with pytest.raises(ValueError, match="batch_norm_init: features"):
        layers.batch_norm_init(0)


def _bn_problem(dtype=jnp.float64):
    x = 3.0 + 2.0 * _normal(6, (8, 5), dtype)
    params = {"gamma": 1.0 + 0.5 * _normal(7, (5,), dtype), "beta": _normal(8, (5,), dtype)}
    state = {"mean": _normal(9, (5,), dtype), "var": 0.5 + jnp.abs(_normal(10, (5,), dtype))}
    return params, state, x


def test_batch_norm_train_forward_and_running_update():
    params, state, x = _bn_problem()
    unit = {"gamma": jnp.ones(5), "beta": jnp.zeros(5)}
    y, _, new_state = layers.batch_norm_forward(unit, state, x, train=True, momentum=0.8, eps=1e-5)
    # Batch statistics: each feature of the output has mean 0 and (biased) variance ~1.
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), x.var(0) / (x.var(0) + 1e-5), rtol=1e-12)
    # Running statistics: new = momentum * old + (1 - momentum) * batch (unbiased variance).
    n = x.shape[0]
    np.testing.assert_allclose(new_state["mean"], 0.8 * state["mean"] + 0.2 * x.mean(0),
                               rtol=1e-12)
    np.testing.assert_allclose(
        new_state["var"], 0.8 * state["var"] + 0.2 * x.var(0) * n / (n - 1), rtol=1e-12
    )
    # gamma and beta scale and shift.
    y2, _, _ = layers.batch_norm_forward(params, state, x, train=True, momentum=0.8)
    g, b = np.asarray(params["gamma"]), np.asarray(params["beta"])
    np.testing.assert_allclose(y2, g * np.asarray(y) + b, rtol=1e-12)


def test_batch_norm_eval_uses_running_statistics():
    params, state, x = _bn_problem()
    # reference in numpy: explicit about broadcasting (strict rank promotion is on)
    y, _, new_state = layers.batch_norm_forward(params, state, x, train=False, eps=1e-3)
    p_np, s_np = jax.tree.map(np.asarray, (params, state))
    expected = p_np["gamma"] * (np.asarray(x) - s_np["mean"]) / np.sqrt(s_np["var"] + 1e-3) \
        + p_np["beta"]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert new_state is state


def test_batch_norm_keeps_float32():
    params, state, x = _bn_problem(jnp.float32)
    for train in (True, False):
        y, cache, new_state = layers.batch_norm_forward(params, state, x, train=train)
        grads, gx = layers.batch_norm_backward(cache, jnp.ones_like(y))
        leaves = [y, gx, *grads.values(), *new_state.values()]
        assert all(v.dtype == jnp.float32 for v in leaves)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_backward_matches_vjp(train):
    params, state, x = _bn_problem()
    f = lambda p, x: layers.batch_norm_forward(p, state, x, train=train)[0]
    y, vjp = jax.vjp(f, params, x)
    g = _normal(11, y.shape)
    gp_ref, gx_ref = vjp(g)
    _, cache, _ = layers.batch_norm_forward(params, state, x, train=train)
    gp, gx = layers.batch_norm_backward(cache, g)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)
    for k in ("gamma", "beta"):
        np.testing.assert_allclose(gp[k], gp_ref[k], rtol=1e-10, atol=1e-12)
    if train:
        # The full backward (through the batch mean) makes dL/dx sum to zero over the batch;
        # a simplified backward (statistics held constant) would not.
        np.testing.assert_allclose(gx.sum(0), 0.0, atol=1e-10)
        _, gx_simplified = layers.batch_norm_backward(
            layers.BatchNormCache(cache.x_hat, cache.inv_std, cache.gamma, train=False), g)
        assert np.abs(np.asarray(gx_simplified).sum(0)).max() > 1e-3


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("g_shape", [(1, 5), (5,), (8, 1), (9, 5)])
def test_batch_norm_backward_rejects_grad_out_of_the_wrong_shape(train, g_shape):
    # A (1, 5) or (5,) grad_out used to broadcast against x_hat (8, 5) and come back as a
    # wrong (8, 5) dL/dx (in training the batch size was read from grad_out: N = 1);
    # (8, 1) and (9, 5) failed inside jax with messages naming neither the function nor
    # the argument.
    params, state, x = _bn_problem()
    _, cache, _ = layers.batch_norm_forward(params, state, x, train=train)
    with pytest.raises(ValueError, match=re.escape(
            f"batch_norm_backward: grad_out must have the shape of the forward input "
            f"(8, 5), got {g_shape}")):
        layers.batch_norm_backward(cache, jnp.ones(g_shape))


def test_batch_norm_cache_is_a_pytree_usable_across_jit():
    params, state, x = _bn_problem()
    fwd = jax.jit(lambda p, s, x: layers.batch_norm_forward(p, s, x, train=True))
    y, cache, _ = fwd(params, state, x)
    assert isinstance(cache, layers.BatchNormCache) and cache.train is True
    assert len(jax.tree.leaves(cache)) == 3  # x_hat, inv_std, gamma; `train` is static
    grads, gx = jax.jit(layers.batch_norm_backward)(cache, jnp.ones_like(y))
    _, gx_ref = layers.batch_norm_backward(cache, jnp.ones_like(y))
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kw, match",
    [({"momentum": 1.5}, "momentum"), ({"eps": 0.0}, "eps"), ({"eps": float("inf")}, "eps")],
)
def test_batch_norm_rejects_bad_arguments(kw, match):
    params, state, x = _bn_problem()
    with pytest.raises(ValueError, match=f"batch_norm_forward: {match}"):
        layers.batch_norm_forward(params, state, x, train=True, **kw)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("tree, name", [(0, "gamma"), (0, "beta"), (1, "mean"), (1, "var")])
def test_batch_norm_rejects_statistics_of_the_wrong_shape(tree, name, train):
    # A (1,) gamma for 5 features would broadcast silently, and the backward pass would
    # then return (5,) gradients for a (1,) parameter.
    params, state, x = _bn_problem()
    trees = [dict(params), dict(state)]
    trees[tree][name] = trees[tree][name][:1]
    where = ("params", "state")[tree]
    with pytest.raises(ValueError, match=rf"{where}\['{name}'\].*\(5,\).*got \(1,\)"):
        layers.batch_norm_forward(*trees, x, train=train)
    with pytest.raises(ValueError, match=r"x must have shape \(N, features...\)"):
        layers.batch_norm_forward(params, state, x[0], train=train)


def test_dense_rejects_a_bias_of_the_wrong_shape():
    x = _normal(0, (4, 3), jnp.float64)
    params = {"w": _normal(1, (3, 2), jnp.float64), "b": jnp.zeros((1,), jnp.float64)}
    with pytest.raises(ValueError, match=r"dense_forward: params\['b'\].*\(2,\).*got \(1,\)"):
        layers.dense_forward(params, x)


def test_sizes_accept_numpy_integers():
    # e.g. ``int(labels.max()) + 1`` forgotten: np.int64 is an integer (MLPConfig takes it).
    p = layers.dense_init(KEY, np.int64(5), np.int32(3), kernel_init="glorot_normal")
    assert p["w"].shape == (5, 3) and p["b"].shape == (3,)
    params, state = layers.batch_norm_init(np.int64(4))
    assert params["gamma"].shape == state["var"].shape == (4,)
    with pytest.raises(ValueError, match="batch_norm_init: features"):
        layers.batch_norm_init(np.float64(4.0))


@pytest.mark.parametrize("rate", ["0.5", False, True, None, np.array([0.5])])
def test_dropout_rate_must_be_a_real_number(rate):
    # float("0.5") and float(False) used to pass: a string rate silently dropped units.
    x = jnp.ones((4,), jnp.float32)
    with pytest.raises(ValueError, match="dropout_forward: rate"):
        layers.dropout_forward(KEY, x, rate, train=True)
    with pytest.raises(ValueError, match="dropout_backward: rate"):
        layers.dropout_backward(x, x, rate, train=True)


def test_dropout_rate_accepts_numpy_and_concrete_jax_scalars():
    x = jnp.ones((1000,), jnp.float32)
    y_ref, m_ref = layers.dropout_forward(KEY, x, 0.25, train=True)
    for rate in (np.float32(0.25), jnp.asarray(0.25)):
        y, m = layers.dropout_forward(KEY, x, rate, train=True)
        np.testing.assert_array_equal(m, m_ref)
        np.testing.assert_allclose(y, y_ref, rtol=1e-6)


@pytest.mark.parametrize("kw", [{"momentum": "0.5"}, {"momentum": True}, {"eps": "1e-5"}])
def test_batch_norm_rejects_non_numeric_hyper_parameters(kw):
    params, state, x = _bn_problem()
    with pytest.raises(ValueError, match="batch_norm_forward: (momentum|eps)"):
        layers.batch_norm_forward(params, state, x, train=True, **kw)


# ------------------------------------------------------------ batch norm in narrow floats


def _wide_half(dtype=jnp.float16, scale=400.0):
    """A batch whose features have std ~ ``scale``: in float16 ``(x - mu)^2`` passes 65504
    from a std of ~256 on, so a float16 variance would be inf."""
    return (jax.random.normal(jax.random.PRNGKey(3), (64, 3)) * scale).astype(dtype)


def _bn_reference(x, state, momentum=0.9, eps=1e-5):
    """Training-mode batch norm of ``x`` with unit params, in float64 numpy."""
    x = np.asarray(x, np.float64)
    mu, var, n = x.mean(0), x.var(0), x.shape[0]
    y = (x - mu) / np.sqrt(var + eps)
    new_mean = momentum * np.asarray(state["mean"], np.float64) + (1 - momentum) * mu
    new_var = momentum * np.asarray(state["var"], np.float64) \
        + (1 - momentum) * var * n / (n - 1)
    return y, new_mean, new_var


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_batch_norm_init_keeps_running_statistics_in_at_least_float32(dtype):
    params, state = layers.batch_norm_init(4, dtype)
    assert params["gamma"].dtype == params["beta"].dtype == dtype
    wide = jnp.promote_types(dtype, jnp.float32)
    assert state["mean"].dtype == state["var"].dtype == wide


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_batch_norm_narrow_input_with_a_large_std_trains(dtype):
    # float16 used to give var = inf, inv_std = 0, y == beta and a running variance of inf.
    x = _wide_half(dtype)
    params, state = layers.batch_norm_init(3, dtype)
    y, cache, new_state = layers.batch_norm_forward(params, state, x, train=True)
    assert y.dtype == dtype
    y_ref, mean_ref, var_ref = _bn_reference(x, state)
    np.testing.assert_allclose(np.asarray(y, np.float64), y_ref, rtol=2e-2, atol=2e-2)
    assert new_state["mean"].dtype == new_state["var"].dtype == jnp.float32
    np.testing.assert_allclose(new_state["mean"], mean_ref, rtol=1e-5)
    np.testing.assert_allclose(new_state["var"], var_ref, rtol=1e-5)
    assert np.all(np.asarray(cache.inv_std) > 0) and np.all(np.isfinite(cache.inv_std))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_batch_norm_eval_with_narrow_input_and_float32_state(dtype):
    # A running variance of ~1.6e5 (std 400) does not fit float16: the state stays float32
    # and the output comes back in the input dtype.
    x = _wide_half(dtype)
    params, state = layers.batch_norm_init(3, dtype)
    _, _, trained = layers.batch_norm_forward(params, state, x, train=True, momentum=0.0)
    y, cache, same = layers.batch_norm_forward(params, trained, x, train=False)
    assert same is trained and y.dtype == dtype
    _, mean_ref, var_ref = _bn_reference(x, state, momentum=0.0)
    np.testing.assert_allclose(trained["var"], var_ref, rtol=1e-5)
    expected = (np.asarray(x, np.float64) - mean_ref) / np.sqrt(var_ref + 1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=2e-2, atol=2e-2)
    _, gx = layers.batch_norm_backward(cache, jnp.ones_like(y))
    assert gx.dtype == dtype


def test_batch_norm_narrow_state_saturates_instead_of_overflowing():
    # A float16 state passed in by hand keeps its dtype (a scan carry must not change
    # type); a statistic past 65504 is stored as 65504, never inf.
    x = _wide_half(jnp.float16)
    params, _ = layers.batch_norm_init(3, jnp.float16)
    state = {"mean": jnp.zeros(3, jnp.float16), "var": jnp.ones(3, jnp.float16)}
    _, _, new_state = layers.batch_norm_forward(params, state, x, train=True, momentum=0.0)
    assert new_state["mean"].dtype == new_state["var"].dtype == jnp.float16
    np.testing.assert_array_equal(new_state["var"], 65504.0)
    _, mean_ref, _ = _bn_reference(x, state, momentum=0.0)
    np.testing.assert_allclose(new_state["mean"], mean_ref, rtol=1e-3)
    y, _, _ = layers.batch_norm_forward(params, new_state, x, train=False)
    assert y.dtype == jnp.float16 and np.all(np.isfinite(np.asarray(y, np.float32)))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(
    "x_dtype, p_dtype, scale, rtol",
    [
        (jnp.float16, jnp.float16, 400.0, 1e-2),
        (jnp.float16, jnp.float16, 1.0, 1e-2),
        (jnp.bfloat16, jnp.bfloat16, 400.0, 5e-2),
        (jnp.float16, jnp.float32, 400.0, 1e-2),
        (jnp.float32, jnp.float32, 400.0, 1e-5),
    ],
    ids=["f16_wide", "f16_unit", "bf16_wide", "f16_x_f32_params", "f32_wide"],
)
def test_batch_norm_backward_matches_vjp_in_narrow_floats(train, x_dtype, p_dtype, scale, rtol):
    x = _wide_half(x_dtype, scale)
    params, state = layers.batch_norm_init(3, p_dtype)
    params = {"gamma": (1.0 + 0.5 * _normal(7, (3,), jnp.float32)).astype(p_dtype),
              "beta": _normal(8, (3,), jnp.float32).astype(p_dtype)}
    _, _, state = layers.batch_norm_forward(params, state, x, train=True, momentum=0.0)
    f = lambda p, x: layers.batch_norm_forward(p, state, x, train=train)[0]
    y, vjp = jax.vjp(f, params, x)
    g = _normal(11, y.shape, jnp.float32).astype(y.dtype)
    gp_ref, gx_ref = vjp(g)
    _, cache, _ = layers.batch_norm_forward(params, state, x, train=train)
    gp, gx = layers.batch_norm_backward(cache, g)
    assert gx.dtype == gx_ref.dtype == x_dtype
    for k in ("gamma", "beta"):
        assert gp[k].dtype == gp_ref[k].dtype == p_dtype
    for got, ref in ((gx, gx_ref), (gp["gamma"], gp_ref["gamma"]), (gp["beta"], gp_ref["beta"])):
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        assert np.all(np.isfinite(ref)) and np.all(np.isfinite(got))
        # judged against the leaf's scale: entries near 0 carry the rounding of the others
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    # ... and against the same vjp in float64 on the same values (not a vjp that is wrong
    # the same way: a float16 variance of inf made both paths return zeros).
    to64 = lambda t: jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), t)
    f64 = lambda p, x: layers.batch_norm_forward(p, to64(state), x, train=train)[0]
    _, vjp64 = jax.vjp(f64, to64(params), to64(x))
    gp64, gx64 = vjp64(to64(g))
    for got, ref in ((gx, gx64), (gp["gamma"], gp64["gamma"]), (gp["beta"], gp64["beta"])):
        ref = np.asarray(ref)
        np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=2 * rtol,
                                   atol=2 * rtol * np.abs(ref).max())
    if train:
        # the exact dL/dx sums to 0 over the batch; a float16 g can only nearly do so
        tol = 50 * rtol * np.abs(np.asarray(gx, np.float64)).sum(0)
        assert np.all(np.abs(np.asarray(gx, np.float64).sum(0)) <= tol)


# ------------------------------------------------------------ dropout dtypes, static arguments


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
@pytest.mark.parametrize("train, rate", [(True, 0.5), (True, 0.0), (False, 0.5)])
@pytest.mark.parametrize("inverted", [True, False])
def test_dropout_refuses_non_floating_inputs(dtype, train, rate, inverted):
    # x * m / (1 - rate) cannot be an integer: an int32 x used to come back as a float
    # output with an int32 mask in training, and unchanged (still int32) in evaluation.
    x = jnp.ones((3, 4), dtype)
    pattern = rf"dropout_forward: x must have a floating dtype.*got {jnp.dtype(dtype).name}"
    with pytest.raises(TypeError, match=pattern):
        layers.dropout_forward(KEY, x, rate, train=train, inverted=inverted)
    mask = jnp.ones((3, 4), jnp.float32)
    pattern = rf"dropout_backward: grad_out must have a floating dtype.*got {jnp.dtype(dtype).name}"
    with pytest.raises(TypeError, match=pattern):
        layers.dropout_backward(mask, x, rate, train=train, inverted=inverted)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
@pytest.mark.parametrize("train", [True, False])
def test_dropout_keeps_floating_dtypes(dtype, train):
    x = jnp.ones((3, 4), dtype)
    for inverted in (True, False):
        y, mask = layers.dropout_forward(KEY, x, 0.5, train=train, inverted=inverted)
        assert y.dtype == mask.dtype == dtype
        assert layers.dropout_backward(mask, x, 0.5, train=train, inverted=inverted).dtype == dtype


def test_traced_hyper_parameters_are_named_errors():
    x = jnp.ones((4, 3), jnp.float32)
    with pytest.raises(ValueError, match=r"dropout_forward: rate must be a static real number "
                                         r"in \[0, 1\).*traced"):
        jax.jit(lambda r: layers.dropout_forward(KEY, x, r, train=True))(0.5)
    params, state = layers.batch_norm_init(3)
    with pytest.raises(ValueError, match=r"batch_norm_forward: momentum must be a static real "
                                         r"number in \[0, 1\].*traced"):
        jax.jit(lambda m: layers.batch_norm_forward(params, state, x, train=True,
                                                    momentum=m))(0.5)
    with pytest.raises(ValueError, match=r"dense_init: out_features must be a static int.*traced"):
        jax.jit(lambda n: layers.dense_init(KEY, 3, n, kernel_init="zeros"))(4)


def test_sizes_accept_concrete_integer_arrays():
    # As maxout's num_pieces and the schedules' step counts do (a size read back from a
    # checkpoint or computed with jnp); a float or bool array is still refused.
    p = layers.dense_init(KEY, np.asarray(5), jnp.asarray(3), kernel_init="zeros")
    assert p["w"].shape == (5, 3)
    assert layers.batch_norm_init(jnp.asarray(4))[0]["gamma"].shape == (4,)
    for bad in (np.asarray(4.0), jnp.asarray(True), np.asarray([4])):
        with pytest.raises(ValueError, match="batch_norm_init: features must be an int >= 1"):
            layers.batch_norm_init(bad)
