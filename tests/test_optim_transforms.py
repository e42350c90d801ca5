"""Tests for jaxnn.optim.transforms: the scale_by_* pieces, one by one.

Parity metric (used throughout): for each leaf, the largest absolute difference over the
whole trajectory divided by the largest magnitude of the reference leaf over the
trajectory. Normalizing by the leaf's scale (rather than element by element) keeps
near-zero entries from blowing the metric up, while any error visible at the leaf's scale
is caught. float32 runs must agree with optax to <= 1e-6 in this metric.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn.optim as jo
from jaxnn.optim import transforms as tr

STEPS = 30
INT32_MAX = np.iinfo(np.int32).max


def _params(dtype=jnp.float32):
    """A nested tree with a matrix, a vector and a scalar."""
    return {
        "dense": {
            "w": jax.random.normal(jax.random.PRNGKey(0), (3, 4), dtype),
            "b": jnp.full((4,), 0.3, dtype),
        },
        "scale": [jnp.asarray(2.0, dtype)],
    }


def _gradients(params, steps=STEPS, seed=1):
    """Random gradients over several orders of magnitude, about 20% exact zeros."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), 3 * len(leaves)).reshape(
        len(leaves), 3, -1
    )
    out = []
    for leaf, (kn, ks, kz) in zip(leaves, keys, strict=True):
        shape = (steps, *leaf.shape)
        magnitude = 10.0 ** jax.random.uniform(ks, shape, minval=-3, maxval=1)
        g = jax.random.normal(kn, shape) * magnitude
        g = jnp.where(jax.random.uniform(kz, shape) < 0.2, 0.0, g)
        out.append(g.astype(leaf.dtype))
    return jax.tree.unflatten(treedef, out)


def _trajectory(tx, params, grads):
    """Updates of every step (stacked) and final params, jitted with lax.scan."""

    def step(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), u

    @jax.jit
    def run(p, gs):
        (p, _), us = jax.lax.scan(step, (p, tx.init(p)), gs)
        return us, p

    return run(params, grads)


def _rel_err(a, b) -> float:
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        scale = max(np.max(np.abs(y)), np.finfo(np.float32).tiny)
        worst = max(worst, float(np.max(np.abs(x - y)) / scale))
    return worst


def _not_scalar(params):
    return jax.tree.map(lambda x: x.ndim > 0, params)


def _schedule(count):
    return 0.1 * 0.9 ** count.astype(jnp.float32)


PARITY = [
    ("trace", lambda: tr.trace(0.9), lambda: optax.trace(0.9)),
    ("trace_nesterov", lambda: tr.trace(0.8, True), lambda: optax.trace(0.8, True)),
    (
        "trace_bf16_buffer",
        lambda: tr.trace(0.9, accumulator_dtype=jnp.bfloat16),
        lambda: optax.trace(0.9, accumulator_dtype=jnp.bfloat16),
    ),
    ("adagrad", lambda: tr.scale_by_adagrad(), lambda: optax.scale_by_rss()),
    (
        "adagrad_zero_init",
        lambda: tr.scale_by_adagrad(0.0, 1e-5),
        lambda: optax.scale_by_rss(0.0, 1e-5),
    ),
    ("rms", lambda: tr.scale_by_rms(), lambda: optax.scale_by_rms()),
    (
        "rms_options",
        lambda: tr.scale_by_rms(0.95, 1e-6, 0.5, eps_in_sqrt=False, bias_correction=True),
        lambda: optax.scale_by_rms(0.95, 1e-6, 0.5, eps_in_sqrt=False, bias_correction=True),
    ),
    ("stddev", lambda: tr.scale_by_stddev(), lambda: optax.scale_by_stddev()),
    (
        "stddev_options",
        lambda: tr.scale_by_stddev(0.95, 1e-6, 0.5, eps_in_sqrt=False, bias_correction=True),
        lambda: optax.scale_by_stddev(0.95, 1e-6, 0.5, eps_in_sqrt=False, bias_correction=True),
    ),
    ("adam", lambda: tr.scale_by_adam(), lambda: optax.scale_by_adam()),
    (
        "adam_options",
        lambda: tr.scale_by_adam(0.8, 0.99, 1e-6, 1e-8, mu_dtype=jnp.bfloat16),
        lambda: optax.scale_by_adam(0.8, 0.99, 1e-6, 1e-8, mu_dtype=jnp.bfloat16),
    ),
    (
        "nadam",
        lambda: tr.scale_by_adam(nesterov=True),
        lambda: optax.scale_by_adam(nesterov=True),
    ),
    ("amsgrad", lambda: tr.scale_by_amsgrad(), lambda: optax.scale_by_amsgrad()),
    (
        "amsgrad_no_correction",
        lambda: tr.scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False),
        lambda: optax.scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False),
    ),
    ("adamax", lambda: tr.scale_by_adamax(), lambda: optax.scale_by_adamax()),
    ("adadelta", lambda: tr.scale_by_adadelta(), lambda: optax.scale_by_adadelta()),
    ("lion", lambda: tr.scale_by_lion(), lambda: optax.scale_by_lion()),
    (
        "decayed_weights",
        lambda: tr.add_decayed_weights(0.1),
        lambda: optax.add_decayed_weights(0.1),
    ),
    (
        "decayed_weights_schedule_mask",
        lambda: tr.add_decayed_weights(_schedule, mask=_not_scalar),
        lambda: optax.add_decayed_weights(_schedule, mask=_not_scalar),
    ),
    ("lr", lambda: tr.scale_by_learning_rate(0.1), lambda: optax.scale_by_learning_rate(0.1)),
    (
        "lr_schedule_no_flip",
        lambda: tr.scale_by_learning_rate(_schedule, flip_sign=False),
        lambda: optax.scale_by_learning_rate(_schedule, flip_sign=False),
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), PARITY, ids=[p[0] for p in PARITY])
def test_matches_optax_transform(name, ours, theirs):
    params = _params()
    grads = _gradients(params)
    u1, p1 = _trajectory(ours(), params, grads)
    u2, p2 = _trajectory(theirs(), params, grads)
    assert _rel_err(u1, u2) <= 1e-6
    assert _rel_err(p1, p2) <= 1e-6
    for leaf in jax.tree.leaves(u1):
        assert leaf.dtype == jnp.float32


# Transforms built with default arguments, for the property tests.
ALL = {
    "trace": lambda: tr.trace(0.9),
    "scale_by_adagrad": tr.scale_by_adagrad,
    "scale_by_rms": tr.scale_by_rms,
    "scale_by_stddev": tr.scale_by_stddev,
    # b2 = 0.99: the default 0.999 is 1 in bfloat16 and refused for bfloat16 parameters.
    "scale_by_adam": lambda: tr.scale_by_adam(b2=0.99),
    "scale_by_amsgrad": lambda: tr.scale_by_amsgrad(b2=0.99),
    "scale_by_adamax": lambda: tr.scale_by_adamax(b2=0.99),
    "scale_by_adadelta": tr.scale_by_adadelta,
    "scale_by_lion": tr.scale_by_lion,
    "add_decayed_weights": lambda: tr.add_decayed_weights(0.1),
    "scale_by_learning_rate": lambda: tr.scale_by_learning_rate(0.1),
}


@pytest.mark.parametrize("name", list(ALL))
def test_dtypes_and_state_structure_are_stable(name):
    """A tree mixing bfloat16 and float32 leaves keeps every dtype, in updates and state."""
    tx = ALL[name]()
    params = _params()
    params["dense"]["w"] = params["dense"]["w"].astype(jnp.bfloat16)
    grads = jax.tree.map(lambda g: g[0], _gradients(params, steps=1))
    state = tx.init(params)
    updates, new_state = jax.jit(tx.update)(grads, state, params, unused_extra=1.0)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        assert (old.shape, old.dtype) == (new.shape, new.dtype)
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
        assert u.dtype == g.dtype


COUNTED = {
    "scale_by_rms": (tr.scale_by_rms, dict(bias_correction=True)),
    "scale_by_stddev": (tr.scale_by_stddev, dict(bias_correction=True)),
    "scale_by_adam": (tr.scale_by_adam, {}),
    "scale_by_amsgrad": (tr.scale_by_amsgrad, {}),
    "scale_by_adamax": (tr.scale_by_adamax, {}),
    "scale_by_lion": (tr.scale_by_lion, {}),
    "add_decayed_weights": (tr.add_decayed_weights, dict(weight_decay=0.1)),
    "scale_by_learning_rate": (tr.scale_by_learning_rate, dict(learning_rate=0.1)),
}


@pytest.mark.parametrize("name", list(COUNTED))
def test_step_counter_saturates(name):
    factory, kwargs = COUNTED[name]
    tx = factory(**kwargs)
    params = {"w": jnp.ones(3, jnp.float32)}
    state = tx.init(params)
    state = state._replace(count=jnp.asarray(INT32_MAX, jnp.int32))
    updates, state = tx.update({"w": jnp.full(3, 0.5, jnp.float32)}, state, params)
    assert int(state.count) == INT32_MAX
    assert state.count.dtype == jnp.int32
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_learning_rate_state_records_count_and_rate():
    tx = tr.scale_by_learning_rate(_schedule)
    params = {"w": jnp.zeros(2, jnp.bfloat16)}
    state = tx.init(params)
    assert int(state.count) == 0
    np.testing.assert_allclose(state.learning_rate, 0.1, rtol=1e-6)
    assert state.learning_rate.dtype == jnp.float32  # at least float32, even for bf16 params
    update = jax.jit(tx.update)
    for k in range(4):
        updates, state = update({"w": jnp.ones(2, jnp.bfloat16)}, state)
        expected = 0.1 * 0.9**k
        assert int(state.count) == k + 1
        np.testing.assert_allclose(state.learning_rate, expected, rtol=1e-6)
        assert updates["w"].dtype == jnp.bfloat16
        np.testing.assert_allclose(
            np.asarray(updates["w"], np.float32), -expected, rtol=2**-8
        )
        np.testing.assert_allclose(jo.current_learning_rate(state), expected, rtol=1e-6)


def test_learning_rate_is_recorded_in_float64_for_float64_params():
    tx = tr.scale_by_learning_rate(0.1)
    state = tx.init(jnp.zeros(2, jnp.float64))
    assert state.learning_rate.dtype == jnp.float64
    updates, state = tx.update(jnp.ones(2, jnp.float64), state)
    assert updates.dtype == jnp.float64
    assert float(updates[0]) == -0.1


@pytest.mark.parametrize("learning_rate", ["array", "schedule of a captured array"])
def test_state_never_holds_the_callers_learning_rate_array(learning_rate):
    """Donating the state (``donate_argnums``) must not delete the caller's rate array.

    The rate used to be stored with ``jnp.asarray``, which hands back a float32 array as
    it is: the state's leaf *was* the caller's array, so donating the state deleted it,
    and every later update (which multiplies by that array) failed.
    """
    rate = jnp.float32(0.1)
    lr = rate if learning_rate == "array" else (lambda count: rate)
    tx = jo.adam(lr)
    params = jnp.ones(3, jnp.float32)
    state = tx.init(params)
    _, eager_state = tx.update(params, state, params)  # eager update: same rule
    for s in (state, eager_state):
        assert not any(leaf is rate for leaf in jax.tree.leaves(s))
    donate = jax.jit(lambda s: jax.tree.map(lambda x: x + 0, s), donate_argnums=0)
    state = donate(donate(state))
    eager_state = donate(eager_state)
    assert not rate.is_deleted()
    updates, state = tx.update(params, state, params)
    np.testing.assert_allclose(updates, -0.1, rtol=1e-6)
    np.testing.assert_allclose(jo.current_learning_rate(state), 0.1, rtol=1e-6)


def test_trace_before_constant_rate_is_textbook_momentum():
    """chain(trace(b), lr) == v <- b v - lr g; p <- p + v (Goodfellow et al., alg. 8.2)."""
    lr, b = 0.05, 0.9
    tx = optax.chain(tr.trace(b), tr.scale_by_learning_rate(lr))
    grads = np.random.default_rng(0).normal(size=(20, 3))
    p = np.zeros(3)
    v = np.zeros(3)
    params = jnp.zeros(3, jnp.float64)
    state = tx.init(params)
    for g in grads:
        v = b * v - lr * g
        p = p + v
        updates, state = tx.update(jnp.asarray(g), state)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, p, rtol=1e-12)


def test_rms_with_bias_correction_is_adam_without_momentum():
    """scale_by_rms(b2, eps outside, bias-corrected) == scale_by_adam(b1=0, b2)."""
    params = _params()
    grads = _gradients(params)
    u1, _ = _trajectory(
        tr.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False, bias_correction=True), params, grads
    )
    u2, _ = _trajectory(tr.scale_by_adam(b1=0.0, b2=0.99, eps=1e-8), params, grads)
    assert _rel_err(u1, u2) <= 1e-6


def test_adam_first_step_is_sign_of_gradient():
    """With m_1 = (1-b1) g and v_1 = (1-b2) g^2, the bias-corrected ratio is g / |g|."""
    g = jnp.array([3.0, -0.5, 1e-2], jnp.float32)
    tx = tr.scale_by_adam(eps=0.0)
    updates, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(updates, jnp.sign(g), rtol=1e-6)


def test_adagrad_zero_accumulator_gives_zero_step():
    tx = tr.scale_by_adagrad(initial_accumulator_value=0.0)
    g = jnp.array([0.0, 2.0], jnp.float32)
    updates, state = tx.update(g, tx.init(g))
    assert float(updates[0]) == 0.0
    np.testing.assert_allclose(updates[1], 2.0 / np.sqrt(4.0 + 1e-7), rtol=1e-6)
    np.testing.assert_allclose(state.sum_of_squares, [0.0, 4.0])


def test_add_decayed_weights_needs_params():
    tx = tr.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match=r"add_decayed_weights.*params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_add_decayed_weights_mask_skips_leaves():
    params = {"w": jnp.ones(2, jnp.float32), "b": jnp.ones(2, jnp.float32)}
    tx = tr.add_decayed_weights(0.5, mask={"w": True, "b": False})
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], [0.5, 0.5])
    np.testing.assert_array_equal(updates["b"], [0.0, 0.0])


def _inf_params():
    return {"w": jnp.array([jnp.inf, -1.0], jnp.float32), "b": jnp.array([jnp.nan], jnp.float32)}


@pytest.mark.parametrize("decay", [0, 0.0, -0.0, np.float32(0.0), np.array(0.0)], ids=repr)
@pytest.mark.parametrize("mask", [None, {"w": True, "b": False}])
def test_add_decayed_weights_static_zero_passes_updates_through(decay, mask):
    """A constant 0 adds nothing (as in optax): inf/nan params do not give nan updates."""
    params = _inf_params()
    grads = {"w": jnp.array([0.5, 2.0], jnp.float32), "b": jnp.array([0.25], jnp.float32)}
    ours = tr.add_decayed_weights(decay, mask)
    theirs = optax.add_decayed_weights(0.0, mask)
    for update in (ours.update, jax.jit(ours.update)):
        updates, state = update(grads, ours.init(params), params)
        expected, _ = theirs.update(grads, theirs.init(params), params)
        for u, e, g in zip(*map(jax.tree.leaves, (updates, expected, grads)), strict=True):
            np.testing.assert_array_equal(u, e)
            np.testing.assert_array_equal(u, g)
        count = state.count if mask is None else state.inner_state.count
        assert int(count) == 1


def test_add_decayed_weights_traced_or_scheduled_zero_is_still_multiplied_in():
    """Only a Python/NumPy constant is looked at: arrays and schedules stay traceable."""
    params, grads = jnp.array([jnp.inf, 2.0], jnp.float32), jnp.ones(2, jnp.float32)
    for decay in (jnp.asarray(0.0), lambda count: 0.0 * count):
        tx = tr.add_decayed_weights(decay)
        updates, _ = tx.update(grads, tx.init(params), params)
        assert np.isnan(updates[0]) and float(updates[1]) == 1.0  # g + 0 * inf, as optax

    injected = optax.inject_hyperparams(tr.add_decayed_weights)(weight_decay=0.0)
    state = injected.init(params)
    for rate in (0.0, 0.5):
        state = state._replace(hyperparams={"weight_decay": jnp.asarray(rate)})
        updates, _ = jax.jit(injected.update)(grads, state, jnp.array([1.0, 2.0]))
        np.testing.assert_allclose(updates, [1.0 + rate, 1.0 + 2.0 * rate], rtol=1e-6)


BAD_MASKS = [3, "yes", 1.5, 0, {"w": True, "b": 1}, np.array([True, False]), jnp.int32(1)]


@pytest.mark.parametrize("mask", BAD_MASKS, ids=repr)
def test_add_decayed_weights_rejects_a_mask_that_is_not_boolean(mask):
    """optax.masked would read 3 or "yes" as True and decay every leaf, silently."""
    with pytest.raises(TypeError) as info:
        tr.add_decayed_weights(0.1, mask)
    message = str(info.value)
    assert message.startswith("jaxnn.optim.add_decayed_weights: mask must be None, a pytree")
    assert "function params -> such a pytree" in message
    shown = "shape (2,)" if isinstance(mask, np.ndarray) else repr(
        mask["b"] if isinstance(mask, dict) else mask
    )
    assert shown in message


@pytest.mark.parametrize("jit", [False, True])
def test_a_mask_function_returning_non_booleans_is_refused_when_called(jit):
    # The pytree a mask function returns went to optax.masked unchecked: {"w": 3, "b": "no"}
    # decayed both leaves, the very case the check on a pytree mask exists for.
    params = {"w": jnp.ones(2, jnp.float32), "b": jnp.ones(1, jnp.float32)}
    tx = tr.add_decayed_weights(0.1, lambda p: {"w": 3, "b": "no"})
    with pytest.raises(TypeError, match=r"^jaxnn\.optim\.add_decayed_weights: mask is a "
                                        r"function that must return a pytree of booleans .* it "
                                        r"returned a dict with the leaf 'no' of type str\."):
        (jax.jit(tx.init) if jit else tx.init)(params)
    good = tr.add_decayed_weights(0.5, lambda p: {"w": True, "b": p["b"].ndim > 1})
    zeros = jax.tree.map(jnp.zeros_like, params)
    update = jax.jit(good.update) if jit else good.update
    updates, _ = update(zeros, (jax.jit(good.init) if jit else good.init)(params), params)
    np.testing.assert_array_equal(updates["w"], [0.5, 0.5])
    np.testing.assert_array_equal(updates["b"], [0.0])


@pytest.mark.parametrize("flag", [True, False, np.bool_(True), jnp.asarray(False)], ids=repr)
def test_add_decayed_weights_bare_bool_mask_decays_all_or_nothing(flag):
    """A bare bool is a one-leaf prefix of the params tree, as in optax.masked."""
    params = {"w": jnp.ones(2, jnp.float32), "b": jnp.full(1, 2.0, jnp.float32)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    ours = tr.add_decayed_weights(0.5, flag)
    theirs = optax.add_decayed_weights(0.5, bool(flag))
    updates, _ = jax.jit(ours.update)(zeros, ours.init(params), params)
    expected, _ = theirs.update(zeros, theirs.init(params), params)
    want = jax.tree.map(lambda p: 0.5 * p if flag else jnp.zeros_like(p), params)
    for u, e, w in zip(*map(jax.tree.leaves, (updates, expected, want)), strict=True):
        np.testing.assert_array_equal(u, e)
        np.testing.assert_array_equal(u, w)


def test_wider_hyperparameter_arrays_do_not_promote():
    """float64 hyperparameter arrays (inject_hyperparams under x64) keep float32 updates."""
    f64 = lambda x: jnp.asarray(x, jnp.float64)
    params = _params()
    grads = jax.tree.map(lambda g: g[0], _gradients(params, steps=1))
    for tx in (
        tr.scale_by_adam(f64(0.9), f64(0.999), f64(1e-8), f64(0.0)),
        tr.scale_by_rms(f64(0.9), f64(1e-8), f64(0.0)),
        tr.trace(f64(0.9)),
        tr.scale_by_learning_rate(f64(0.1)),
        tr.add_decayed_weights(f64(0.1)),
        tr.scale_by_lion(f64(0.9), f64(0.99)),
    ):
        state = tx.init(params)
        updates, new_state = tx.update(grads, state, params)
        assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
        assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(
            lambda x: x.dtype, state
        )


def test_traced_hyperparameters_are_accepted_and_vmappable():
    """No Python branch on values: factories run on tracers (jit, vmap over rates)."""
    g = jnp.array([1.0, -2.0], jnp.float32)

    def first_update(b1, lr):
        tx = optax.chain(tr.scale_by_adam(b1=b1), tr.scale_by_learning_rate(lr))
        return tx.update(g, tx.init(g))[0]

    rates = jnp.array([0.1, 0.2, 0.4], jnp.float32)
    out = jax.jit(jax.vmap(first_update, in_axes=(None, 0)))(jnp.float32(0.9), rates)
    np.testing.assert_allclose(out, -rates[:, None] * jnp.sign(g)[None, :], rtol=1e-5)


BAD_ARGUMENTS = [
    (tr.trace, dict(decay=-0.1), "decay", "-0.1"),
    (tr.trace, dict(decay=1.5), "decay", "1.5"),
    (tr.scale_by_adagrad, dict(initial_accumulator_value=-1), "initial_accumulator_value", "-1"),
    (tr.scale_by_adagrad, dict(eps=-1e-7), "eps", "-1e-07"),
    (tr.scale_by_rms, dict(decay=1.0), "decay", "1.0"),
    (tr.scale_by_rms, dict(initial_scale=-1.0), "initial_scale", "-1.0"),
    (tr.scale_by_stddev, dict(eps=float("nan")), "eps", "nan"),
    (tr.scale_by_adam, dict(b1=1.0), "b1", "1.0"),
    (tr.scale_by_adam, dict(b2=-0.5), "b2", "-0.5"),
    (tr.scale_by_adam, dict(eps=-1.0), "eps", "-1.0"),
    (tr.scale_by_adam, dict(eps_root=-1.0), "eps_root", "-1.0"),
    (tr.scale_by_amsgrad, dict(b2=2.0), "b2", "2.0"),
    (tr.scale_by_adamax, dict(b1=-0.1), "b1", "-0.1"),
    (tr.scale_by_adadelta, dict(rho=1.0), "rho", "1.0"),
    (tr.scale_by_lion, dict(b1=1.1), "b1", "1.1"),
    (tr.add_decayed_weights, dict(weight_decay=-0.1), "weight_decay", "-0.1"),
    (tr.scale_by_learning_rate, dict(learning_rate=-0.1), "learning_rate", "-0.1"),
    (tr.scale_by_learning_rate, dict(learning_rate=float("inf")), "learning_rate", "inf"),
    (tr.scale_by_adam, dict(b1=jnp.array([0.9, 0.9])), "b1", "scalar"),
]


@pytest.mark.parametrize(("factory", "kwargs", "arg", "shown"), BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error_naming_them(factory, kwargs, arg, shown):
    with pytest.raises(ValueError) as info:
        factory(**kwargs)
    message = str(info.value)
    assert f"jaxnn.optim.{factory.__name__}" in message
    assert arg in message and shown in message


@pytest.mark.parametrize(
    ("factory", "kwargs", "arg"),
    [
        (tr.scale_by_adam, dict(b2=1 - 1e-9), "b2"),
        (tr.scale_by_amsgrad, dict(b1=1 - 1e-9), "b1"),
        (tr.scale_by_adamax, dict(b2=1 - 1e-9), "b2"),
        (tr.scale_by_rms, dict(decay=1 - 1e-9, bias_correction=True), "decay"),
        (tr.scale_by_stddev, dict(decay=1 - 1e-9), "decay"),
        (tr.scale_by_adadelta, dict(rho=1 - 1e-9), "rho"),
    ],
)
def test_a_rate_below_one_that_rounds_to_one_in_float32(factory, kwargs, arg):
    # Below 1, but 1 in float32. The tests run with x64: float64 params take it (finite
    # updates, the rate applied in float64); init refuses it for float32 params.
    tx = factory(**kwargs)
    params = {"w": jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float64)}
    updates, _ = tx.update(params, tx.init(params), params)
    assert updates["w"].dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(updates["w"])))
    with pytest.raises(ValueError) as info:
        tx.init({"w": jnp.ones(4, jnp.float32)})
    message = str(info.value)
    assert message.startswith(f"jaxnn.optim.{factory.__name__}: {arg} must be in [0, 1) and "
                              "below 1 in float32 (at most 0.9999999403953552), got "
                              f"{1 - 1e-9!r}: for float32 parameters it rounds to 1"), message
    # Without x64 every parameter is float32 at most: refused at once.
    with jax.enable_x64(False), pytest.raises(ValueError, match="without jax_enable_x64"):
        factory(**kwargs)


@pytest.mark.parametrize(
    ("factory", "kwargs", "arg"),
    [
        (tr.trace, dict(decay=0.9, nesterov="yes"), "nesterov"),
        (tr.scale_by_rms, dict(bias_correction=1), "bias_correction"),
        (tr.scale_by_adam, dict(b1="0.9"), "b1"),
        (tr.scale_by_learning_rate, dict(learning_rate=None), "learning_rate"),
        (tr.scale_by_adam, dict(mu_dtype="not-a-dtype"), "mu_dtype"),
        # Integer moments would truncate (momentum lost): a floating dtype is required.
        (tr.scale_by_adam, dict(mu_dtype=jnp.int32), "mu_dtype.*floating"),
        (tr.trace, dict(decay=0.9, accumulator_dtype=jnp.int32), "accumulator_dtype.*floating"),
    ],
)
def test_wrong_types_raise_type_error(factory, kwargs, arg):
    with pytest.raises(TypeError, match=arg):
        factory(**kwargs)


def test_jitted_update_compiles_once():
    traces = []
    tx = tr.scale_by_adam()

    @jax.jit
    def step(g, state):
        traces.append(None)  # Python side effect: runs only while tracing
        return tx.update(g, state)

    g = jnp.ones(3, jnp.float32)
    state = tx.init(g)
    _, state = step(g, state)
    _, state = step(2 * g, state)
    assert len(traces) == 1


@pytest.mark.parametrize(
    "name", ["sgd", "adagrad", "rmsprop", "adam", "adamw", "adadelta", "amsgrad", "adamax", "lion"]
)
def test_integer_leaves_raise_instead_of_silently_wrong_updates(name):
    # Casting the learning rate 0.1 to int32 gave all-zero updates (sgd, lion), 0/0 = nan
    # (adam family) or a raw rsqrt dtype error (adagrad, rmsprop).
    opt = getattr(jo, name)(0.1)
    params = {"w": jnp.asarray([1, -2, 3], jnp.int32)}
    state = opt.init(params)
    with pytest.raises(TypeError, match="floating dtype.*int32"):
        opt.update(params, state, params)
