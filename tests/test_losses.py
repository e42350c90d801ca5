"""Tests for jaxnn.losses.

What is compared, and how tightly:

* Every ``<loss>_grad`` against ``jax.grad`` of the loss for each reduction (for
  ``"none"``, the gradient of the sum of the per-example losses), in float32
  (``rtol=1e-5, atol=1e-6``) and float64 (``rtol=1e-12, atol=1e-14``), on rank-1/2/3
  inputs, and in float64 against ``jax.test_util.check_grads`` (finite differences)
  applied to the loss carrying the hand-written gradient as its VJP.
* Values against closed forms and against optax's losses of the same name.
* The fused softmax cross-entropy gradient ``(softmax(z) - y) / N``; the integer-label
  loss against the one-hot one; stability at logits of +-1000 and -1e4 in float32.

Each comparison runs inside one jitted function per case, compiled once.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from jaxnn import losses as L

F32, F64 = jnp.float32, jnp.float64
DTYPES = [F32, F64]
DTYPE_IDS = ["f32", "f64"]
TOL = {F32: dict(rtol=1e-5, atol=1e-6), F64: dict(rtol=1e-12, atol=1e-14)}
REDUCTIONS = ["mean", "sum", "none"]
INT_CE = "softmax_cross_entropy_with_integer_labels"


def make_problem(name: str, shape: tuple, dtype, seed: int = 0):
    """(predictions or logits, targets) for loss ``name`` with predictions of ``shape``."""
    kp, kt = jax.random.split(jax.random.key(seed))
    z = 3.0 * jax.random.normal(kp, shape, dtype)
    z = z.at[(0,) * len(shape)].set(0.0)  # an exact 0, where max/abs have kinks
    if name == "mse":
        return z, jax.random.normal(kt, shape, dtype)
    if name == "sigmoid_binary_cross_entropy":
        return z, jax.random.uniform(kt, shape, dtype)  # soft labels in [0, 1]
    if name == "softmax_cross_entropy":
        return z, jax.nn.softmax(jax.random.normal(kt, shape, dtype))  # soft labels
    return z, jax.random.randint(kt, shape[:-1], 0, shape[-1])


SHAPES = {
    "mse": [(5,), (5, 3), (4, 2, 3)],
    "sigmoid_binary_cross_entropy": [(5,), (5, 3), (4, 2, 3)],
    "softmax_cross_entropy": [(5, 4), (3, 2, 4)],
    INT_CE: [(5, 4), (3, 2, 4)],
}
CASES = [(name, shape) for name in L.names() for shape in SHAPES[name]]
CASE_IDS = [f"{n}-{'x'.join(map(str, s))}" for n, s in CASES]


@functools.partial(jax.jit, static_argnums=(2, 3))
def values_and_grads(p, t, name, reduction):
    loss, grad = L.get(name), L.get_grad(name)
    value = loss(p, t, reduction=reduction)
    auto = jax.grad(lambda p: jnp.sum(loss(p, t, reduction=reduction)))(p)
    return value, grad(p, t, reduction=reduction), auto, loss(p, t, reduction="none")


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, shape", CASES, ids=CASE_IDS)
def test_grad_matches_autodiff(name, shape, reduction, dtype):
    p, t = make_problem(name, shape, dtype)
    value, hand, auto, per_example = values_and_grads(p, t, name, reduction)
    assert value.dtype == dtype and hand.dtype == dtype
    assert hand.shape == p.shape
    assert per_example.shape == (shape[0],)
    np.testing.assert_allclose(hand, auto, **TOL[dtype])
    reduced = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](
        np.asarray(per_example, np.float64)
    )
    assert value.shape == np.shape(reduced)
    np.testing.assert_allclose(value, reduced, **TOL[dtype])


def _with_hand_vjp(name: str, t, reduction: str):
    loss, grad = L.get(name), L.get_grad(name)

    @jax.custom_vjp
    def f(p):
        return jnp.sum(loss(p, t, reduction=reduction))

    f.defvjp(lambda p: (f(p), p), lambda p, ct: (ct * grad(p, t, reduction=reduction),))
    return f


@pytest.mark.parametrize("name", L.names())
def test_grad_check_grads_f64(name):
    p, t = make_problem(name, (4, 3), F64, seed=1)
    for reduction in REDUCTIONS:
        check_grads(_with_hand_vjp(name, t, reduction), (p,), order=1, modes=["rev"])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_fused_softmax_cross_entropy_grad(dtype):
    z, y = make_problem("softmax_cross_entropy", (6, 5), dtype)
    n = z.shape[0]
    expected = (jax.nn.softmax(z) - y) / n
    np.testing.assert_allclose(L.softmax_cross_entropy_grad(z, y), expected, **TOL[dtype])
    np.testing.assert_allclose(
        L.softmax_cross_entropy_grad(z, y, reduction="sum"), expected * n, **TOL[dtype]
    )
    # Unnormalized labels: the general fused form softmax(z) * sum(y) - y.
    y2 = 2.0 * y
    np.testing.assert_allclose(
        L.softmax_cross_entropy_grad(z, y2),
        (jax.nn.softmax(z) * 2.0 - y2) / n,
        **TOL[dtype],
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES[INT_CE], ids=str)
def test_integer_labels_equal_one_hot(shape, dtype):
    z, labels = make_problem(INT_CE, shape, dtype)
    one_hot = jax.nn.one_hot(labels, shape[-1], dtype=dtype)
    for reduction in REDUCTIONS:
        kw = dict(reduction=reduction)
        np.testing.assert_allclose(
            L.softmax_cross_entropy_with_integer_labels(z, labels, **kw),
            L.softmax_cross_entropy(z, one_hot, **kw),
            **TOL[dtype],
        )
        np.testing.assert_allclose(
            L.softmax_cross_entropy_with_integer_labels_grad(z, labels, **kw),
            L.softmax_cross_entropy_grad(z, one_hot, **kw),
            **TOL[dtype],
        )


# ----------------------------------------------------------------------------- values


def test_values_match_closed_forms_and_optax():
    p, t = make_problem("mse", (5, 3), F64)
    np.testing.assert_allclose(L.mse(p, t), np.mean((np.asarray(p) - np.asarray(t)) ** 2))
    np.testing.assert_allclose(L.mse(p, t, reduction="none"), 2 * optax.l2_loss(p, t).mean(1))

    z, y = make_problem("sigmoid_binary_cross_entropy", (5, 3), F64)
    s = 1 / (1 + np.exp(-np.asarray(z)))
    by_hand = -(np.asarray(y) * np.log(s) + (1 - np.asarray(y)) * np.log(1 - s)).mean(1)
    got = L.sigmoid_binary_cross_entropy(z, y, reduction="none")
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    np.testing.assert_allclose(got, optax.sigmoid_binary_cross_entropy(z, y).mean(1), rtol=1e-12)

    z, y = make_problem("softmax_cross_entropy", (5, 4), F64)
    np.testing.assert_allclose(
        L.softmax_cross_entropy(z, y, reduction="none"), optax.softmax_cross_entropy(z, y),
        rtol=1e-12,
    )
    z, labels = make_problem(INT_CE, (5, 4), F64)
    np.testing.assert_allclose(
        L.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none"),
        optax.softmax_cross_entropy_with_integer_labels(z, labels),
        rtol=1e-12,
    )


def test_rank3_softmax_averages_middle_positions():
    z, labels = make_problem(INT_CE, (3, 2, 4), F64)
    per_position = optax.softmax_cross_entropy_with_integer_labels(z, labels)  # (3, 2)
    np.testing.assert_allclose(
        L.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none"),
        per_position.mean(1),
        rtol=1e-12,
    )


def test_masked_classes_with_minus_inf_logits():
    z = jnp.asarray([[0.0, -jnp.inf, 1.0]], F32)
    y = jnp.asarray([[0.3, 0.0, 0.7]], F32)
    value = L.softmax_cross_entropy(z, y)
    grad = L.softmax_cross_entropy_grad(z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, -(0.3 * np.log(1 / (1 + np.e)) + 0.7 * np.log(
        np.e / (1 + np.e))), rtol=1e-6)


def test_fully_masked_position_has_zero_loss_and_zero_gradient():
    # Rank-3 logits (N, T, C) where position 1 is padding: all logits -inf, all labels 0.
    z = jnp.asarray([[[0.0, 1.0, 2.0], [-jnp.inf] * 3]], F32)
    y = jnp.asarray([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]], F32)
    value = L.softmax_cross_entropy(z, y)
    grad = L.softmax_cross_entropy_grad(z, y)
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(value, -np.log(p[2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad[0, 0], (p - [0, 0, 1]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(grad[0, 1], np.zeros(3, F32))


@pytest.mark.parametrize("labels", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.7, 0.0]],
                         ids=["on_inf", "off_inf", "soft"])
def test_plus_inf_logit_gives_nan_like_optax(labels):
    # As jax.nn.log_softmax: a +inf logit makes the position NaN, loss and gradient alike
    # (it was inf or NaN depending on the label, with a half-finite gradient).
    z = jnp.asarray([[jnp.inf, 0.0, 0.0], [0.0, 1.0, 2.0]], F32)
    y = jnp.asarray([labels, [0.0, 0.0, 1.0]], F32)
    ref = optax.softmax_cross_entropy(z, y)
    ref_grad = jax.grad(lambda z: optax.softmax_cross_entropy(z, y).sum())(z)
    value = L.softmax_cross_entropy(z, y, reduction="none")
    grad = L.softmax_cross_entropy_grad(z, y, reduction="sum")
    np.testing.assert_allclose(value, ref, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-7)
    assert np.all(np.isnan(value[0])) and np.all(np.isnan(grad[0]))
    if labels != [0.3, 0.7, 0.0]:  # integer labels give the same as one-hot labels
        labels_int = jnp.argmax(y, axis=-1)
        np.testing.assert_array_equal(
            L.softmax_cross_entropy_with_integer_labels(z, labels_int, reduction="none"), value
        )
        np.testing.assert_array_equal(
            L.softmax_cross_entropy_with_integer_labels_grad(z, labels_int, reduction="sum"),
            grad,
        )


@pytest.mark.parametrize(
    "dtype, classes, labels",
    [(jnp.int8, 200, [5, 100]), (jnp.uint8, 300, [5, 255]), (jnp.int16, 50257, [5, 1000])],
    ids=["int8", "uint8", "int16"],
)
def test_integer_labels_in_a_type_too_small_for_the_class_count(dtype, classes, labels):
    # num_classes does not fit the labels' type: comparing in that type would wrap around
    # (in int8, `y < 200` is `y < -56`) and make every loss NaN.
    z = jax.random.normal(jax.random.key(0), (2, classes), F32)
    y = jnp.asarray(labels, dtype)
    y32 = y.astype(jnp.int32)
    for fn in (L.softmax_cross_entropy_with_integer_labels,
               L.softmax_cross_entropy_with_integer_labels_grad):
        got, want = fn(z, y), fn(z, y32)
        assert np.all(np.isfinite(got))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(jax.jit(fn)(z, y), want)
    with pytest.raises(ValueError, match=r"labels.*\[0, 200\).*\[-3\]"):
        L.softmax_cross_entropy_with_integer_labels(z[:, :200], jnp.asarray([1, -3], jnp.int8))


# ----------------------------------------------------------------------------- stability


def test_sigmoid_bce_stable_at_large_logits_f32():
    z = jnp.asarray([[1000.0, -1000.0, 1000.0, -1000.0, 1e4, -1e4]], F32)
    y = jnp.asarray([[1.0, 0.0, 0.0, 1.0, 0.5, 0.5]], F32)
    per_entry = [
        float(L.sigmoid_binary_cross_entropy(z[:, i:i + 1], y[:, i:i + 1])) for i in range(6)
    ]
    np.testing.assert_allclose(per_entry, [0.0, 0.0, 1000.0, 1000.0, 5000.0, 5000.0])
    grad = L.sigmoid_binary_cross_entropy_grad(z, y)
    auto = jax.grad(L.sigmoid_binary_cross_entropy)(z, y)
    np.testing.assert_allclose(grad, np.asarray([[0, 0, 1, -1, 0.5, -0.5]]) / 6, atol=1e-7)
    assert grad.dtype == F32 and np.all(np.isfinite(auto))


@pytest.mark.parametrize("dtype", [F32, jnp.float64])
def test_sigmoid_bce_at_infinite_logits_is_the_limit_not_nan(dtype):
    inf = np.inf
    z = jnp.asarray([[inf], [-inf], [inf], [-inf], [inf], [0.0]], dtype)
    y = jnp.asarray([[1.0], [0.0], [0.0], [1.0], [0.25], [1.0]], dtype)
    per_example = L.sigmoid_binary_cross_entropy(z, y, reduction="none")
    np.testing.assert_array_equal(per_example[:5], [0.0, 0.0, inf, inf, inf])
    np.testing.assert_allclose(per_example[5], np.log(2.0), rtol=1e-6)
    # a saturated, correct prediction adds nothing to the mean (was nan)
    ok = slice(0, 2)
    assert float(L.sigmoid_binary_cross_entropy(z[ok], y[ok])) == 0.0
    # the gradient: the hand-written one and autodiff agree, finite, the sigmoid's limits
    want = np.asarray([[0.0], [0.0], [1.0], [-1.0], [0.75], [-0.5]])
    hand = L.sigmoid_binary_cross_entropy_grad(z, y, reduction="sum")
    auto = jax.grad(lambda q: L.sigmoid_binary_cross_entropy(q, y, reduction="sum"))(z)
    np.testing.assert_allclose(hand, want, atol=1e-7)
    np.testing.assert_allclose(auto, want, atol=1e-7)
    # smoothed labels are never exactly 0 or 1: the loss is inf, as in the limit
    smoothed = L.sigmoid_binary_cross_entropy(z[:2], y[:2], reduction="none",
                                              label_smoothing=0.1)
    np.testing.assert_array_equal(smoothed, [inf, inf])


def test_integer_label_ce_gradient_has_no_scatter_even_vmapped():
    # The label's log-probability is picked by a select, so autodiff's gradient is a select
    # too: no scatter (a gather's transpose), which vmap would turn into a batched scatter.
    z = jax.random.normal(jax.random.key(0), (3, 16, 10))  # 3 models x 16 rows x 10 classes
    y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
    loss = lambda logits: L.softmax_cross_entropy_with_integer_labels(logits, y)
    grad = jax.jit(jax.vmap(jax.grad(loss)))
    text = grad.lower(z).as_text()
    assert "scatter" not in text and "gather" not in text
    want = jax.vmap(lambda q: L.softmax_cross_entropy_with_integer_labels_grad(q, y))(z)
    np.testing.assert_allclose(grad(z), want, rtol=1e-6, atol=1e-8)
    # the same values as picking with take_along_axis (bit for bit)
    log_p = jax.nn.log_softmax(z[0], axis=-1)
    np.testing.assert_array_equal(
        L.softmax_cross_entropy_with_integer_labels(z[0], y, reduction="none"),
        -jnp.take_along_axis(log_p, y[:, None], axis=-1)[:, 0])


def test_softmax_losses_stable_at_extreme_logits_f32():
    z = jnp.asarray([[1000.0, -1000.0, -1e4], [-1e4, -1e4, -1000.0]], F32)
    labels = jnp.asarray([1, 0])
    one_hot = jax.nn.one_hot(labels, 3, dtype=F32)
    values = L.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none")
    np.testing.assert_allclose(values, [2000.0, 9000.0])
    np.testing.assert_allclose(L.softmax_cross_entropy(z, one_hot, reduction="none"), values)
    for name, t in ((INT_CE, labels), ("softmax_cross_entropy", one_hot)):
        for out in (
            L.get(name)(z, t),
            L.get_grad(name)(z, t),
            jax.grad(L.get(name))(z, t),
        ):
            assert out.dtype == F32 and np.all(np.isfinite(out)), (name, out)


def test_mse_finite_at_large_values_f32():
    p = jnp.asarray([[1000.0, -1000.0]], F32)
    assert float(L.mse(p, -p)) == 4e6
    np.testing.assert_array_equal(L.mse_grad(p, -p), [[2000.0, -2000.0]])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", L.names())
def test_shape_mismatch_names_the_argument(name):
    p, t = make_problem(name, (4, 3), F32)
    bad_t = t[:3]
    what = "labels" if name != "mse" else "targets"
    for fn in (L.get(name), L.get_grad(name)):
        with pytest.raises(ValueError, match=rf"{name}.*{what}.*\(3,"):
            fn(p, bad_t)


@pytest.mark.parametrize("name", L.names())
@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 1])
def test_bad_reduction_names_the_argument(name, reduction):
    p, t = make_problem(name, (4, 3), F32)
    for fn in (L.get(name), L.get_grad(name)):
        with pytest.raises(ValueError, match=rf"reduction.*'mean', 'sum', 'none'.*{reduction!r}"):
            fn(p, t, reduction=reduction)


def test_integer_label_errors():
    z = jnp.zeros((3, 4), F32)
    for fn in (L.softmax_cross_entropy_with_integer_labels,
               L.softmax_cross_entropy_with_integer_labels_grad):
        with pytest.raises(ValueError, match=r"labels.*\[0, 4\).*\[4\]"):
            fn(z, jnp.asarray([0, 4, 1]))
        with pytest.raises(ValueError, match=r"labels.*\[-1\]"):
            fn(z, np.asarray([0, -1, 1]))
        with pytest.raises(ValueError, match=r"labels.*integer.*float32"):
            fn(z, jnp.asarray([0.0, 1.0, 2.0], F32))
        with pytest.raises(ValueError, match=r"labels.*\(3,\).*\(3, 1\)"):
            fn(z, jnp.zeros((3, 1), jnp.int32))


@pytest.mark.parametrize("labels", [
    np.asarray([0, 2**32 + 1, 1]),  # int64: 2**32 + 1 read as the valid class 1
    np.asarray([0, -(2**32) + 2, 1]),  # read as the valid class 2
    np.asarray([0, 2**32 + 1, 1], np.uint64),
    [0, 2**32 + 1, 1],  # a Python list: OverflowError naming neither function nor argument
], ids=["int64", "negative-int64", "uint64", "list"])
def test_integer_labels_too_large_for_int32_are_refused_without_x64(labels):
    # Without jax_enable_x64 (the default) NumPy int64 labels become int32: out-of-range
    # values wrapped around into valid classes and gave a finite, wrong loss.
    z = jnp.zeros((3, 4), F32)
    with jax.enable_x64(False):
        for fn in (L.softmax_cross_entropy_with_integer_labels,
                   L.softmax_cross_entropy_with_integer_labels_grad):
            with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\).*got values \[-?4"):
                fn(z, labels)
            fn(z, np.asarray([0, 3, 1]))  # in range: accepted


@pytest.mark.parametrize("labels, what", [
    ([0, 2**70, 1], "1180591620717411303424"),  # beyond int64: a NumPy object array
    (["0", "1", "2"], "'0'"),
    (np.asarray(["0", "1", "2"]), "'0'"),
], ids=["huge-int", "str-list", "str-array"])
def test_integer_labels_that_are_not_numbers_are_named(labels, what):
    # Read as NumPy first (to range-check int64 labels), these became "Error interpreting
    # argument to stage as a JAX value", naming neither the function nor the labels.
    z = jnp.zeros((3, 4), F32)
    for fn in (L.softmax_cross_entropy_with_integer_labels,
               L.softmax_cross_entropy_with_integer_labels_grad):
        with pytest.raises(ValueError, match=rf"{fn.__name__}: labels must be integer class "
                                             rf"indices, got {re.escape(what)}$"):
            fn(z, labels)


def test_rank_and_empty_errors():
    with pytest.raises(ValueError, match=r"logits.*rank >= 2.*\(4,\)"):
        L.softmax_cross_entropy(jnp.zeros(4), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"logits.*rank >= 2"):
        L.softmax_cross_entropy_with_integer_labels(jnp.zeros(4), jnp.zeros((), jnp.int32))
    with pytest.raises(ValueError, match=r"predictions.*rank >= 1"):
        L.mse(jnp.zeros(()), jnp.zeros(()))
    with pytest.raises(ValueError, match=r"predictions.*empty.*\(0, 3\)"):
        L.mse_grad(jnp.zeros((0, 3)), jnp.zeros((0, 3)))


# ----------------------------------------------------------------------------- jit, vmap, dtypes


def test_jit_vmap_and_traced_labels():
    z, labels = make_problem(INT_CE, (6, 4), F32)
    loss = jax.jit(L.softmax_cross_entropy_with_integer_labels, static_argnames="reduction")
    np.testing.assert_allclose(loss(z, labels), L.softmax_cross_entropy_with_integer_labels(
        z, labels), rtol=1e-6)
    np.testing.assert_allclose(loss(z, labels, reduction="sum"), 6 * loss(z, labels), rtol=1e-6)
    # Traced out-of-range labels cannot be checked: NaN, never a wrapped-around class.
    bad = labels.at[2].set(4).at[3].set(-1)
    per = np.asarray(loss(z, bad, reduction="none"))
    assert np.isnan(per[2]) and np.isnan(per[3]) and np.all(np.isfinite(per[[0, 1, 4, 5]]))
    g = jax.jit(L.softmax_cross_entropy_with_integer_labels_grad)(z, bad)
    assert np.all(np.isnan(g[2])) and np.all(np.isfinite(g[0]))
    # vmap over a stack of independent problems (e.g. an ensemble or a seed sweep).
    zs = jnp.stack([z, 2 * z, -z])
    ys = jnp.stack([labels, labels[::-1], labels])
    for fn in (L.softmax_cross_entropy_with_integer_labels,
               L.softmax_cross_entropy_with_integer_labels_grad):
        batched = jax.vmap(fn)(zs, ys)
        for i in range(3):
            np.testing.assert_allclose(batched[i], fn(zs[i], ys[i]), rtol=1e-6, atol=1e-7)
    p, t = make_problem("mse", (6, 3), F32)
    np.testing.assert_allclose(
        jax.vmap(L.mse_grad)(jnp.stack([p, t]), jnp.stack([t, p])),
        jnp.stack([L.mse_grad(p, t), L.mse_grad(t, p)]),
        rtol=1e-6,
    )


@pytest.mark.parametrize("name", L.names())
def test_float32_in_float32_out_even_with_float64_targets(name):
    p, t = make_problem(name, (4, 3), F32)
    if name != INT_CE:
        t = t.astype(F64)
    for reduction in REDUCTIONS:
        assert L.get(name)(p, t, reduction=reduction).dtype == F32
        assert L.get_grad(name)(p, t, reduction=reduction).dtype == F32


# ----------------------------------------------------------------------------- registry


def test_names_and_identity():
    assert L.names() == (
        "mse",
        "sigmoid_binary_cross_entropy",
        "softmax_cross_entropy",
        INT_CE,
    )
    for name in L.names():
        assert L.get(name) is getattr(L, name)
        assert L.get_grad(name) is getattr(L, name + "_grad")
        assert L.serialize(L.get(name)) == name
        assert L.get(L.serialize(L.get(name))) is L.get(name)
        with pytest.raises(ValueError, match="gradient"):
            L.serialize(L.get_grad(name))


def test_get_binds_reduction():
    p, t = make_problem("mse", (4, 3), F32)
    fn = L.get("mse", reduction="sum")
    np.testing.assert_allclose(fn(p, t), L.mse(p, t, reduction="sum"))
    np.testing.assert_allclose(L.get_grad("mse", reduction="none")(p, t),
                               L.mse_grad(p, t, reduction="none"))
    assert L.serialize(fn) == "mse" and fn.keywords == {"reduction": "sum"}
    assert fn == L.get("mse", reduction="sum") and fn != L.get("mse", reduction="mean")
    np.testing.assert_allclose(jax.jit(fn)(p, t), fn(p, t), rtol=1e-6)


@pytest.mark.parametrize("lookup", [L.get, L.get_grad])
def test_registry_errors(lookup):
    with pytest.raises(ValueError, match=r"'mes'.*'mse'"):
        lookup("mes")
    with pytest.raises(ValueError, match=r"'softmax_crossentropy'.*'softmax_cross_entropy'"):
        lookup("softmax_crossentropy")
    with pytest.raises(TypeError, match="name"):
        lookup(None)
    with pytest.raises(ValueError, match=r"'reductoin'.*did you mean 'reduction'"):
        lookup("mse", reductoin="sum")
    with pytest.raises(ValueError, match=r"reduction.*'avg'"):
        lookup("mse", reduction="avg")


def test_serialize_rejects_foreign_functions():
    for fn in (optax.l2_loss, lambda p, t: p, L.get_grad("mse", reduction="sum")):
        with pytest.raises(ValueError, match="serialize"):
            L.serialize(fn)


def test_mse_float16_squares_do_not_overflow_before_the_mean():
    # One difference of 300 squares to 90000 > 65504 (float16's maximum), but the
    # per-example mean (900) and the batch mean (225) are representable.
    p = jnp.zeros((4, 100), jnp.float16).at[0, 0].set(300.0)
    t = jnp.zeros((4, 100), jnp.float16)
    mean = L.mse(p, t)
    assert mean.dtype == jnp.float16 and float(mean) == 225.0
    np.testing.assert_array_equal(L.mse(p, t, reduction="none"), [900.0, 0.0, 0.0, 0.0])
    assert float(L.mse(p, t, reduction="sum")) == 900.0
    grad = jax.grad(L.mse)(p, t)
    assert grad.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(grad, np.float32), L.mse_grad(p, t), rtol=1e-3)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_grad_float16_scale_is_not_rounded_to_a_subnormal(reduction):
    # With N * D = 1e7 entries the factor 2 / (N D) = 2e-7 is a float16 subnormal (3
    # significant bits: 1.79e-7); multiplying p - t = 1000 by it gave 1.79e-4 for the
    # representable 2e-4 (-11%, and exactly 0 from N D ~ 7e7 on), while jax.grad of mse,
    # computed in float32, is right. The factor for "sum" (2 / D = 2e-6) was 1.3% off.
    p = jnp.full((10, 10**6), 1000.0, jnp.float16)
    t = jnp.zeros_like(p)
    got = L.mse_grad(p, t, reduction=reduction)
    want = jax.grad(lambda q: L.mse(q, t, reduction=reduction))(p)
    assert got.dtype == want.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(got[0, :3], np.float32),
                               np.asarray(want[0, :3], np.float32), rtol=1e-3)
    expected = 2000.0 / (p.size if reduction == "mean" else p.shape[1])
    np.testing.assert_allclose(np.asarray(got, np.float32).min(), expected, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(got, np.float32).max(), expected, rtol=1e-3)


@pytest.mark.parametrize("name", L.names())
@pytest.mark.parametrize("grad", [False, True], ids=["loss", "grad"])
def test_complex_predictions_are_refused_by_name(name, grad):
    # mse of complex p summed (p - t)^2 (mse([1+1j], [0]) was 2j), not |p - t|^2.
    z = jnp.asarray([[1 + 1j, -1 - 2j]], jnp.complex64)
    t = jnp.asarray([0], jnp.int32) if name.endswith("integer_labels") else jnp.zeros_like(z)
    fn = (L.get_grad if grad else L.get)(name)
    argname = "predictions" if name == "mse" else "logits"
    with pytest.raises(TypeError, match=rf"losses\.{fn.__name__}: {argname} must be real.*"
                                        rf"complex64"):
        fn(z, t)
    if not name.endswith("integer_labels"):  # complex targets were cast to real, silently
        target = "targets" if name == "mse" else "labels"
        with pytest.raises(TypeError, match=rf"losses\.{fn.__name__}: {target} must be real"):
            fn(jnp.real(z), z)


# ----------------------------------------------------------------------------- label smoothing

SMOOTHABLE = ("sigmoid_binary_cross_entropy", "softmax_cross_entropy", INT_CE)
ALPHAS = [0.1, 0.9]


def _smoothed_reference(name, z, t, alpha):
    """Per-example reference from optax: its losses on optax.smooth_labels targets
    (Keras' ``y (1 - a) + a / 2`` for the binary loss), averaged over middle axes."""
    if name == "sigmoid_binary_cross_entropy":
        per_entry = optax.sigmoid_binary_cross_entropy(z, t * (1 - alpha) + alpha / 2)
        return per_entry.reshape(per_entry.shape[0], -1).mean(1)
    if name == INT_CE:
        t = jax.nn.one_hot(t, z.shape[-1], dtype=z.dtype)
    per_position = optax.softmax_cross_entropy(z, optax.smooth_labels(t, alpha))
    return per_position.reshape(per_position.shape[0], -1).mean(1)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def smoothed_values_and_grads(p, t, name, reduction, alpha):
    loss, grad = L.get(name), L.get_grad(name)
    kw = dict(reduction=reduction, label_smoothing=alpha)
    auto = jax.grad(lambda p: jnp.sum(loss(p, t, **kw)))(p)
    return loss(p, t, **kw), grad(p, t, **kw), auto


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name, shape", [c for c in CASES if c[0] in SMOOTHABLE],
                         ids=[i for c, i in zip(CASES, CASE_IDS, strict=True)
                              if c[0] in SMOOTHABLE])
def test_label_smoothing_values_match_optax_and_grads_match_autodiff(name, shape, alpha, dtype):
    p, t = make_problem(name, shape, dtype)
    if name == "softmax_cross_entropy":  # one-hot rows, the usual case, plus soft rows below
        t = jax.nn.one_hot(jnp.argmax(t, -1), shape[-1], dtype=dtype)
    ref = _smoothed_reference(name, p, t, alpha)
    for reduction in REDUCTIONS:
        value, hand, auto = smoothed_values_and_grads(p, t, name, reduction, alpha)
        want = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[reduction](ref)
        np.testing.assert_allclose(value, want, **TOL[dtype])
        assert hand.dtype == dtype and hand.shape == p.shape
        np.testing.assert_allclose(hand, auto, **TOL[dtype])


@pytest.mark.parametrize("alpha", ALPHAS)
def test_label_smoothing_soft_labels_and_integer_labels_agree(alpha):
    z, y = make_problem("softmax_cross_entropy", (5, 4), F64)
    np.testing.assert_allclose(
        L.softmax_cross_entropy(z, y, reduction="none", label_smoothing=alpha),
        optax.softmax_cross_entropy(z, optax.smooth_labels(y, alpha)), rtol=1e-12,
    )
    z, labels = make_problem(INT_CE, (3, 2, 4), F64)
    one_hot = jax.nn.one_hot(labels, 4, dtype=F64)
    for reduction in REDUCTIONS:
        kw = dict(reduction=reduction, label_smoothing=alpha)
        np.testing.assert_allclose(L.softmax_cross_entropy_with_integer_labels(z, labels, **kw),
                                   L.softmax_cross_entropy(z, one_hot, **kw), rtol=1e-12)
        np.testing.assert_allclose(
            L.softmax_cross_entropy_with_integer_labels_grad(z, labels, **kw),
            L.softmax_cross_entropy_grad(z, one_hot, **kw), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_label_smoothing_matches_torch_cross_entropy(alpha):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, labels = make_problem(INT_CE, (6, 5), F64)
    zt = torch.tensor(np.asarray(z), requires_grad=True)
    ref = F.cross_entropy(zt, torch.tensor(np.asarray(labels)), label_smoothing=alpha)
    ref.backward()
    np.testing.assert_allclose(
        L.softmax_cross_entropy_with_integer_labels(z, labels, label_smoothing=alpha),
        ref.item(), rtol=1e-12)
    np.testing.assert_allclose(
        L.softmax_cross_entropy_with_integer_labels_grad(z, labels, label_smoothing=alpha),
        zt.grad.numpy(), rtol=1e-10, atol=1e-15)
    _, y = make_problem("softmax_cross_entropy", (6, 5), F64)  # probabilities as targets
    ref = F.cross_entropy(torch.tensor(np.asarray(z)), torch.tensor(np.asarray(y)),
                          label_smoothing=alpha, reduction="none")
    np.testing.assert_allclose(
        L.softmax_cross_entropy(z, y, reduction="none", label_smoothing=alpha), ref.numpy(),
        rtol=1e-12)


@pytest.mark.parametrize("name", SMOOTHABLE)
def test_label_smoothing_zero_is_the_unsmoothed_loss_bit_for_bit(name):
    p, t = make_problem(name, (4, 2, 3), F32)
    for fn in (L.get(name), L.get_grad(name)):
        for reduction in REDUCTIONS:
            np.testing.assert_array_equal(fn(p, t, reduction=reduction, label_smoothing=0.0),
                                          fn(p, t, reduction=reduction))
            np.testing.assert_array_equal(fn(p, t, reduction=reduction, label_smoothing=0),
                                          fn(p, t, reduction=reduction))


def test_label_smoothing_keeps_a_fully_masked_position_at_zero():
    # Padding (all logits -inf, all labels 0) stays padding: the smoothed mass is
    # alpha * sum(y) / C, which is optax.smooth_labels for labels summing to 1 and 0 here.
    z = jnp.asarray([[[0.0, 1.0, 2.0], [-jnp.inf] * 3]], F32)
    y = jnp.asarray([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]], F32)
    value = L.softmax_cross_entropy(z, y, label_smoothing=0.3)
    grad = L.softmax_cross_entropy_grad(z, y, label_smoothing=0.3)
    ref = optax.softmax_cross_entropy(z[:, 0], optax.smooth_labels(y[:, 0], 0.3))
    np.testing.assert_allclose(value, ref[0] / 2, rtol=1e-6)
    np.testing.assert_array_equal(grad[0, 1], np.zeros(3, F32))
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", SMOOTHABLE)
@pytest.mark.parametrize("alpha", [1.0, -0.1, 1.5, float("nan"), True, "0.1", None,
                                   jnp.asarray([0.1])],
                         ids=["1", "-0.1", "1.5", "nan", "True", "str", "None", "vector"])
def test_label_smoothing_out_of_range_or_not_a_number_is_refused_by_name(name, alpha):
    p, t = make_problem(name, (4, 3), F32)
    for fn in (L.get(name), L.get_grad(name)):
        with pytest.raises(ValueError, match=rf"losses\.{fn.__name__}: label_smoothing must be "
                                             rf"a real number in \[0, 1\), got "
                                             rf"{re.escape(repr(alpha))}"):
            fn(p, t, label_smoothing=alpha)
    with pytest.raises(ValueError, match=r"losses\.get: label_smoothing must be a real number"):
        L.get(name, label_smoothing=alpha)


@pytest.mark.parametrize("name", SMOOTHABLE)
def test_label_smoothing_is_static_concrete_scalars_read_and_traced_refused(name):
    p, t = make_problem(name, (4, 3), F32)
    fn = L.get(name)
    np.testing.assert_array_equal(fn(p, t, label_smoothing=jnp.float32(0.25)),
                                  fn(p, t, label_smoothing=0.25))
    np.testing.assert_array_equal(fn(p, t, label_smoothing=np.asarray(0.25)),
                                  fn(p, t, label_smoothing=0.25))
    with pytest.raises(ValueError, match=r"label_smoothing must be a static .*traced"):
        jax.jit(lambda a: fn(p, t, label_smoothing=a))(0.1)


def test_label_smoothing_is_not_defined_for_mse():
    p, t = make_problem("mse", (4, 3), F32)
    with pytest.raises(TypeError):
        L.mse(p, t, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"'label_smoothing' for loss 'mse'.*allowed: reduction"):
        L.get("mse", label_smoothing=0.1)


def test_get_binds_label_smoothing():
    z, labels = make_problem(INT_CE, (5, 4), F32)
    fn = L.get(INT_CE, label_smoothing=0.2)
    grad = L.get_grad(INT_CE, label_smoothing=0.2, reduction="sum")
    np.testing.assert_array_equal(
        fn(z, labels), L.softmax_cross_entropy_with_integer_labels(z, labels, label_smoothing=0.2))
    np.testing.assert_array_equal(grad(z, labels), L.softmax_cross_entropy_with_integer_labels_grad(
        z, labels, label_smoothing=0.2, reduction="sum"))
    assert L.serialize(fn) == INT_CE and fn != L.get(INT_CE, label_smoothing=0.1)


def test_smoothable_names_are_the_losses_that_take_label_smoothing():
    # config validation and mlp.check_loss both read this one list
    assert set(L.smoothable_names()) == {
        "sigmoid_binary_cross_entropy", "softmax_cross_entropy",
        "softmax_cross_entropy_with_integer_labels"}
    for name in L.names():
        if name in L.smoothable_names():
            L.get(name, label_smoothing=0.1)
        else:
            with pytest.raises(ValueError):
                L.get(name, label_smoothing=0.1)
