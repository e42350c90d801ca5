"""Tests for jaxnn.regularizers: values, hand-written gradients vs jax.grad, predicates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxnn import regularizers as R


def _params(dtype=jnp.float32):
    """A two-layer MLP-like pytree with hand-picked values (sums computed in the tests)."""
    a = lambda x: jnp.asarray(x, dtype)
    return {
        "layers": [
            {"w": a([[1.0, -2.0], [0.5, 0.0]]), "b": a([3.0, -4.0])},
            {
                "w": a([[-1.5], [2.0]]),
                "b": a([10.0]),
                "alpha": a([0.25]),
                "bn": {"gamma": a([1.0, -1.0]), "beta": a([0.5, 0.0])},
            },
        ],
        "counts": jnp.ones((2, 2), jnp.int32),  # not a parameter: never penalized
    }


# Kernels only: sum |W| = (1 + 2 + 0.5 + 0) + (1.5 + 2) = 7; sum W^2 = 5.25 + 6.25 = 11.5.
ABS_W, SQ_W = 7.0, 11.5


def _random_params(seed, dtype):
    """Float-only pytree (jax.grad needs float leaves) with every |x| >= 0.1 (numpy-drawn:
    cheaper than compiling jax.random for each shape)."""
    rng = np.random.default_rng(seed)

    def draw(*shape):
        x = rng.standard_normal(shape)
        return jnp.asarray(np.where(x >= 0, x + 0.1, x - 0.1), dtype)

    return {
        "dense": {"w": draw(4, 3), "b": draw(3)},
        "conv": {"w": draw(2, 2, 3, 5), "b": draw(5)},
        "out": [{"w": draw(5, 2)}, {"scale": draw(2)}],
    }


# --------------------------------------------------------------------------------------
# Values on the hand-made pytree
# --------------------------------------------------------------------------------------


def test_values_default_predicate():
    p = _params()
    assert float(R.l1(p, 0.1)) == pytest.approx(0.1 * ABS_W, rel=1e-6)
    assert float(R.l2(p, 0.1)) == pytest.approx(0.5 * 0.1 * SQ_W, rel=1e-6)
    assert float(R.elastic_net(p, 0.1, 0.2)) == pytest.approx(0.7 + 0.5 * 0.2 * SQ_W, rel=1e-6)
    for value in (R.l1(p, 0.1), R.l2(p, 0.1), R.elastic_net(p, 0.1, 0.2)):
        assert value.shape == () and value.dtype == jnp.float32


def test_grads_default_predicate():
    p = _params()
    g1 = R.l1_grad(p, 0.1)
    g2 = R.l2_grad(p, 0.1)
    ge = R.elastic_net_grad(p, 0.1, 0.2)
    for g in (g1, g2, ge):
        assert jtu.tree_structure(g) == jtu.tree_structure(p)
        for leaf, ref in zip(jtu.tree_leaves(g), jtu.tree_leaves(p), strict=True):
            assert leaf.shape == ref.shape and leaf.dtype == ref.dtype
    w0 = np.array([[1.0, -2.0], [0.5, 0.0]])
    np.testing.assert_allclose(g1["layers"][0]["w"], 0.1 * np.sign(w0), rtol=1e-6)
    np.testing.assert_allclose(g2["layers"][0]["w"], 0.1 * w0, rtol=1e-6)
    np.testing.assert_allclose(ge["layers"][0]["w"], 0.1 * np.sign(w0) + 0.2 * w0, rtol=1e-6)
    np.testing.assert_allclose(g2["layers"][1]["w"], [[-0.15], [0.2]], rtol=1e-6)
    # Excluded leaves (biases, PReLU alpha, batch norm, integer counters) get zeros.
    for g in (g1, g2, ge):
        for path in (("layers", 0, "b"), ("layers", 1, "b"), ("layers", 1, "alpha")):
            layer = g[path[0]][path[1]][path[2]]
            np.testing.assert_array_equal(layer, np.zeros_like(layer))
        np.testing.assert_array_equal(g["layers"][1]["bn"]["gamma"], [0.0, 0.0])
        np.testing.assert_array_equal(g["counts"], np.zeros((2, 2), np.int32))


def test_l1_grad_sign_zero_convention():
    # W[1, 1] == 0: the subgradient sign(0) = 0, by hand and under jax.grad alike (jax.grad
    # of jnp.abs alone gives 1 at 0, and autodiff and manual training used to differ there).
    p = {"w": jnp.array([[1.0, -2.0], [0.5, 0.0]], jnp.float32)}
    ours = R.l1_grad(p, 0.3)["w"]
    assert float(ours[1, 1]) == 0.0
    autodiff = jax.grad(lambda q: R.l1(q, 0.3))(p)["w"]
    np.testing.assert_array_equal(autodiff, ours)
    assert float(jax.grad(lambda w: jnp.sum(jnp.abs(w)))(jnp.zeros(1))[0]) == 1.0  # jnp's own
    # elastic net: the l2 part vanishes at 0 as well.
    assert float(R.elastic_net_grad(p, 0.3, 0.5)["w"][1, 1]) == 0.0
    np.testing.assert_array_equal(jax.grad(lambda q: R.elastic_net(q, 0.3, 0.5))(p)["w"],
                                  R.elastic_net_grad(p, 0.3, 0.5)["w"])
    # and under jit and in forward mode
    np.testing.assert_array_equal(jax.jit(jax.grad(lambda q: R.l1(q, 0.3)))(p)["w"], ours)
    np.testing.assert_array_equal(jax.jacfwd(lambda q: R.l1(q, 0.3))(p)["w"], ours)


def test_mlp_autodiff_and_manual_gradients_agree_with_l1_at_zero_weights():
    from jaxnn import backprop, mlp

    cfg = mlp.MLPConfig((4, 8, 3), hidden_activation="tanh", initializer="zeros", l1=0.01)
    params, state = mlp.init(cfg, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 4))
    y = jnp.array([0, 1, 2, 0, 1])
    loss = "softmax_cross_entropy_with_integer_labels"
    args = (params, state, x, y, jax.random.key(2), True)
    (_, _), g_auto = jax.value_and_grad(mlp.make_loss_fn(cfg, loss), has_aux=True)(*args)
    (_, _), g_manual = backprop.value_and_grad(cfg, loss)(*args)
    w_auto, w_manual = g_auto["layers"][0]["w"], g_manual["layers"][0]["w"]
    assert float(jnp.max(jnp.abs(w_auto))) == 0.0  # zero weights: no L1 push, no data signal
    np.testing.assert_allclose(w_manual, w_auto, atol=1e-7)


def test_is_weight():
    p = _params()
    chosen = {
        jtu.keystr(path) for path, leaf in jtu.tree_leaves_with_path(p) if R.is_weight(path, leaf)
    }
    assert chosen == {"['layers'][0]['w']", "['layers'][1]['w']"}
    assert not R.is_weight((), jnp.ones((3, 3), jnp.int32))  # integer matrix: not a weight
    assert R.is_weight((), np.ones((2, 2, 2)))  # numpy arrays and rank > 2 (conv kernels)
    assert not R.is_weight((), 0.5)


# --------------------------------------------------------------------------------------
# Predicates
# --------------------------------------------------------------------------------------


def test_exclude_names_biases_only():
    # Every floating leaf except those under a "b" key: kernels, alpha, gamma and beta
    # (whole-entry matching: "bn" and "beta" are not "b").
    p = _params()
    pred = R.exclude_names("b")
    expected_abs = ABS_W + 0.25 + 2.0 + 0.5
    assert float(R.l1(p, 1.0, predicate=pred)) == pytest.approx(expected_abs, rel=1e-6)
    g = R.l1_grad(p, 1.0, predicate=pred)
    np.testing.assert_array_equal(g["layers"][1]["bn"]["gamma"], [1.0, -1.0])
    np.testing.assert_array_equal(g["layers"][1]["alpha"], [1.0])
    np.testing.assert_array_equal(g["layers"][0]["b"], [0.0, 0.0])
    np.testing.assert_array_equal(g["counts"], np.zeros((2, 2)))  # int leaves: never


def test_exclude_names_index_and_base():
    p = _params()
    # List index written as a string: drop the first layer.
    only_second = R.exclude_names("0", base=R.is_weight)
    assert float(R.l1(p, 1.0, predicate=only_second)) == pytest.approx(3.5, rel=1e-6)
    assert float(R.l2(p, 1.0, predicate=R.exclude_names("w", base=R.is_weight))) == 0.0
    # Several names at once: everything but the kernels, batch norm and alpha -> biases.
    biases = R.exclude_names("w", "bn", "alpha")
    assert float(R.l1(p, 1.0, predicate=biases)) == pytest.approx(3 + 4 + 10, rel=1e-6)


def test_custom_predicate_and_attribute_paths():
    p = _params()
    last_layer = lambda path, leaf: jtu.keystr(path).startswith("['layers'][1]")
    assert float(R.l1(p, 1.0, predicate=last_layer)) == pytest.approx(
        1.5 + 2 + 10 + 0.25 + 2 + 0.5, rel=1e-6
    )
    # Attribute keys (e.g. a NamedTuple) match by field name.
    from typing import NamedTuple

    class Layer(NamedTuple):
        kernel: jax.Array
        bias: jax.Array

    q = Layer(jnp.full((2, 2), 2.0), jnp.ones((2, 2)))
    assert float(R.l1(q, 1.0, predicate=R.exclude_names("bias"))) == pytest.approx(8.0)


def test_bad_predicates():
    p = _params()
    with pytest.raises(TypeError, match="predicate must be a function"):
        R.l1(p, 0.1, predicate="w")
    with pytest.raises(TypeError, match=r"concrete bool.*\['layers'\]\[0\]\['b'\]"):
        R.l2(p, 0.1, predicate=lambda path, leaf: leaf > 0)  # decides on values: refused
    with pytest.raises(TypeError, match="names must be strings"):
        R.exclude_names("b", 3)
    with pytest.raises(TypeError, match="base must be a predicate"):
        R.exclude_names("b", base="w")


# --------------------------------------------------------------------------------------
# Hand-written gradients vs jax.grad
# --------------------------------------------------------------------------------------

CASES = {
    "l1": (
        lambda p, pred: R.l1(p, 0.3, predicate=pred),
        lambda p, pred: R.l1_grad(p, 0.3, predicate=pred),
    ),
    "l2": (
        lambda p, pred: R.l2(p, 0.7, predicate=pred),
        lambda p, pred: R.l2_grad(p, 0.7, predicate=pred),
    ),
    "elastic_net": (
        lambda p, pred: R.elastic_net(p, 0.3, 0.7, predicate=pred),
        lambda p, pred: R.elastic_net_grad(p, 0.3, 0.7, predicate=pred),
    ),
}
PREDICATES = {"default": None, "no_bias": R.exclude_names("b"), "all": lambda path, leaf: True}


@pytest.mark.parametrize("pred_name", sorted(PREDICATES))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_grad_matches_autodiff(name, dtype, pred_name):
    value_fn, grad_fn = CASES[name]
    pred = PREDICATES[pred_name]
    p = _random_params(3, dtype)
    ours = grad_fn(p, pred)
    ref = jax.grad(value_fn)(p, pred)
    tol = 1e-6 if dtype == jnp.float32 else 1e-14
    for a, b in zip(jtu.tree_leaves(ours), jtu.tree_leaves(ref), strict=True):
        assert a.dtype == dtype and b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert value_fn(p, pred).dtype == dtype


@given(
    w=st.lists(st.floats(0.01, 100.0) | st.floats(-100.0, -0.01), min_size=6, max_size=6),
    weight=st.floats(0.0, 10.0, allow_subnormal=False),  # refused if FTZ is on (see test_bench)
)
def test_grad_matches_autodiff_property(w, weight):
    p = {"k": jnp.asarray(w, jnp.float64).reshape(2, 3), "b": jnp.asarray(w[:3], jnp.float64)}
    for value_fn, grad_fn in ((R.l1, R.l1_grad), (R.l2, R.l2_grad)):
        ours = grad_fn(p, weight)
        ref = jax.grad(value_fn)(p, weight)
        np.testing.assert_allclose(ours["k"], ref["k"], rtol=1e-12, atol=1e-300)
        np.testing.assert_array_equal(ours["b"], np.zeros(3))
    # The value is linear in the weight and in the penalty's homogeneity degree.
    assert float(R.l1(p, weight)) == pytest.approx(weight * np.abs(w).sum(), rel=1e-12)
    assert float(R.l2(p, weight)) == pytest.approx(0.5 * weight * np.square(w).sum(), rel=1e-12)


# --------------------------------------------------------------------------------------
# Dtypes, weights, edge cases
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtype_kept_with_float64_weight(dtype):
    p = _params(dtype)
    weight = jnp.float64(0.1)  # a strongly-typed float64 weight must not promote
    for fn in (R.l1, R.l2):
        assert fn(p, weight).dtype == dtype
        assert fn(p, np.float64(0.1)).dtype == dtype
    assert R.elastic_net(p, weight, weight).dtype == dtype
    for grad_fn in (R.l1_grad, R.l2_grad):
        for leaf, ref in zip(jtu.tree_leaves(grad_fn(p, weight)), jtu.tree_leaves(p), strict=True):
            assert leaf.dtype == ref.dtype


def test_zero_weight_gives_zero():
    p = _params()
    assert float(R.l1(p, 0.0)) == 0.0
    assert float(R.l2(p, 0)) == 0.0
    assert float(R.elastic_net(p, 0.0, 0.0)) == 0.0
    for g in (R.l1_grad(p, 0.0), R.l2_grad(p, 0.0), R.elastic_net_grad(p, 0.0, 0.0)):
        assert all(not np.any(np.asarray(leaf)) for leaf in jtu.tree_leaves(g))


def test_nothing_selected():
    only_biases = {"b": jnp.ones(3, jnp.float32), "gamma": jnp.ones(3, jnp.float32)}
    value = R.l2(only_biases, 1.0)
    assert float(value) == 0.0 and value.dtype == jnp.float32
    assert R.l1({"b": jnp.ones(3, jnp.float64)}, 1.0).dtype == jnp.float64
    empty = R.l1({}, 1.0)
    assert float(empty) == 0.0 and empty.dtype == jnp.float32
    assert R.l1_grad({}, 1.0) == {}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: R.l1(p, -0.1), r"regularizers\.l1: weight.*>= 0.*-0\.1"),
        (lambda p: R.l2(p, -1), r"regularizers\.l2: weight.*-1"),
        (lambda p: R.l1_grad(p, -0.5), r"l1_grad: weight.*-0\.5"),
        (lambda p: R.l2_grad(p, float("nan")), r"l2_grad: weight.*nan"),
        (lambda p: R.l2(p, float("inf")), r"weight.*inf"),
        (lambda p: R.elastic_net(p, 0.1, -0.2), r"elastic_net: l2_weight.*-0\.2"),
        (lambda p: R.elastic_net(p, -0.1, 0.2), r"elastic_net: l1_weight.*-0\.1"),
        (lambda p: R.elastic_net_grad(p, 0.1, -3.0), r"elastic_net_grad: l2_weight.*-3\.0"),
        (lambda p: R.l1(p, jnp.array([0.1, 0.2])), r"weight must be a real scalar"),
        (lambda p: R.l1(p, True), r"weight.*True"),
        (lambda p: R.l1(p, "0.1"), r"weight.*'0\.1'"),
    ],
)
def test_bad_weights(call, match):
    with pytest.raises(ValueError, match=match):
        call(_params())


# --------------------------------------------------------------------------------------
# jit and vmap
# --------------------------------------------------------------------------------------


def test_jit_with_traced_weight():
    p = _params()
    l2_jit = jax.jit(R.l2)
    assert float(l2_jit(p, 0.1)) == pytest.approx(0.5 * 0.1 * SQ_W, rel=1e-6)
    assert float(l2_jit(p, 0.3)) == pytest.approx(0.5 * 0.3 * SQ_W, rel=1e-6)  # no re-trace
    assert l2_jit._cache_size() == 1
    grads = jax.jit(R.elastic_net_grad, static_argnames="predicate")(
        p, 0.1, 0.2, predicate=R.exclude_names("b")
    )
    np.testing.assert_allclose(grads["layers"][1]["alpha"], [0.1 + 0.2 * 0.25], rtol=1e-6)
    np.testing.assert_array_equal(grads["layers"][1]["b"], [0.0])


def test_vmap_over_params_and_weights():
    p = _params()
    floats = {"layers": p["layers"]}  # vmap over a stack of models
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x, -3 * x]), floats)
    values = jax.vmap(lambda q: R.l1(q, 0.1))(stacked)
    np.testing.assert_allclose(values, 0.1 * ABS_W * np.array([1, 2, 3]), rtol=1e-6)
    grads = jax.vmap(lambda q: R.l2_grad(q, 0.5))(stacked)
    np.testing.assert_allclose(grads["layers"][0]["w"], 0.5 * stacked["layers"][0]["w"])
    np.testing.assert_array_equal(grads["layers"][0]["b"], np.zeros((3, 2)))
    # A sweep over regularization strengths: the weight is traced and stays float32.
    weights = jnp.array([0.0, 0.5, 2.0], jnp.float64)
    swept = jax.vmap(lambda w: R.elastic_net(p, w, w))(weights)
    assert swept.dtype == jnp.float32
    np.testing.assert_allclose(swept, np.array([0.0, 0.5, 2.0]) * (ABS_W + 0.5 * SQ_W), rtol=1e-6)


def test_float16_penalty_does_not_overflow_before_weighting():
    # sum |W| = 180000 and sum W^2 = 360000 exceed float16's 65504, but the weighted
    # penalties (18 each) are representable: accumulate wide, round once.
    p = {"w": jnp.full((300, 300), 2.0, jnp.float16), "b": jnp.ones(300, jnp.float16)}
    for value in (R.l1(p, 1e-4), R.l2(p, 1e-4), 0.5 * R.elastic_net(p, 1e-4, 1e-4)):
        assert value.dtype == jnp.float16
        assert float(value) == pytest.approx(18.0, rel=1e-3)


def test_float16_grads_round_once_like_autodiff():
    # weight * W in float16 rounded the weight first: 1e-7 is the subnormal 1.19e-7 there,
    # so l2_grad gave 1.19e-4 for W = 1000 (19% off) while jax.grad of l2 gives 1e-4.
    p = {"w": jnp.array([[1000.0, -300.0], [2.0, 0.5]], jnp.float16)}
    for weight in (1e-7, 3e-7, 1e-6):
        auto = jax.grad(lambda q, w=weight: R.l2(q, w))(p)["w"]
        hand = R.l2_grad(p, weight)["w"]
        assert hand.dtype == jnp.float16
        np.testing.assert_array_equal(hand, auto)
        exact = np.float16(np.float64(weight) * np.asarray(p["w"], np.float64))
        np.testing.assert_array_equal(hand, exact)
        net = R.elastic_net_grad(p, 0.0, weight)["w"]
        np.testing.assert_array_equal(net, exact)
