"""Tests for jaxnn.optim.plateau.reduce_on_plateau."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax.contrib import reduce_on_plateau as optax_reduce_on_plateau

from jaxnn.optim import plateau, schedules
from jaxnn.optim.plateau import ReduceLROnPlateauState, reduce_on_plateau

PARAMS = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros((3,), jnp.float32)}


def _run(tx, values, params=PARAMS):
    """Feed ``values`` one by one (jitted update); return the per-call scales and last state."""
    state = tx.init(params)
    update = jax.jit(tx.update)
    scales = []
    for v in values:
        _, state = update(params, state, value=jnp.asarray(v, jnp.float32))
        scales.append(float(state.scale))
    return np.asarray(scales), state


def _scan_scales(tx, values):
    """The same through ``lax.scan`` (one compilation for the whole sequence)."""

    def body(state, v):
        _, state = tx.update(PARAMS, state, value=v)
        return state, state.scale

    _, scales = jax.lax.scan(body, tx.init(PARAMS), jnp.asarray(values, jnp.float32))
    return np.asarray(scales)


# --------------------------------------------------------------------------- basic behaviour


def test_scale_drops_after_patience_non_improving_evaluations():
    tx = reduce_on_plateau(factor=0.5, patience=3)
    # 1st value improves on +inf; then three non-improvements -> drop at the 4th call.
    scales, state = _run(tx, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(scales, [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
    assert float(state.best_value) == 1.0
    assert int(state.plateau_count) == 0


def test_improvement_resets_patience():
    tx = reduce_on_plateau(factor=0.5, patience=2)
    scales, state = _run(tx, [5.0, 5.0, 4.0, 4.0, 3.0, 3.0, 3.0])
    np.testing.assert_array_equal(scales, [1, 1, 1, 1, 1, 1, 0.5])
    assert float(state.best_value) == 3.0


def test_tolerances_decide_what_counts_as_improvement():
    # rtol: 0.5 % of |best|; atol: 0.01.
    tx = reduce_on_plateau(factor=0.5, patience=1, rtol=5e-3, atol=0.01)
    # best 2.0 -> must go below 2 - 0.01 - 0.01 = 1.98
    scales, state = _run(tx, [2.0, 1.985])
    np.testing.assert_array_equal(scales, [1, 0.5])
    assert float(state.best_value) == 2.0
    scales, state = _run(tx, [2.0, 1.97])
    np.testing.assert_array_equal(scales, [1, 1])
    assert float(state.best_value) == pytest.approx(1.97)


def test_cooldown_is_respected():
    tx = reduce_on_plateau(factor=0.5, patience=1, cooldown=2)
    # drop at call 2, then 2 cooldown calls ignored, next drop at call 5, then 8.
    scales, state = _run(tx, [1.0] * 9)
    np.testing.assert_array_equal(scales, [1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125])
    # the best value is still tracked during cooldown
    scales, state = _run(tx, [1.0, 1.0, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(scales, [1, 0.5, 0.5, 0.5, 0.25])
    assert float(state.best_value) == 0.5


def test_min_scale_floor():
    tx = reduce_on_plateau(factor=0.1, patience=1, min_scale=0.05)
    scales, _ = _run(tx, [1.0] * 6)
    np.testing.assert_allclose(scales, [1, 0.1, 0.05, 0.05, 0.05, 0.05], rtol=1e-6)
    assert scales.min() >= np.float32(0.05)


def test_patience_zero_drops_at_every_non_improvement():
    tx = reduce_on_plateau(factor=0.5, patience=0)
    scales, _ = _run(tx, [3.0, 2.0, 2.0, 1.0, 1.0])
    np.testing.assert_array_equal(scales, [1, 1, 0.5, 0.5, 0.25])


def test_accumulation_averages_values():
    tx = reduce_on_plateau(factor=0.5, patience=1, accumulation_size=3)
    # means of the three blocks: 2.0, 2.0 (no improvement -> drop), 1.0
    values = [1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.5, 1.5, 1.0]
    scales, state = _run(tx, values)
    np.testing.assert_array_equal(scales, [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5])
    assert float(state.best_value) == 1.0
    assert int(state.count) == 0 and float(state.avg_value) == 0.0
    _, state = _run(tx, values[:2])
    assert int(state.count) == 2 and float(state.avg_value) == pytest.approx(1.5)


def test_nan_value_is_not_an_improvement():
    tx = reduce_on_plateau(factor=0.5, patience=2)
    scales, state = _run(tx, [1.0, float("nan"), float("nan")])
    np.testing.assert_array_equal(scales, [1, 1, 0.5])
    assert float(state.best_value) == 1.0


# --------------------------------------------------------------------------- signs


def test_negative_values_use_relative_tolerance_of_abs_best():
    tx = reduce_on_plateau(factor=0.5, patience=1, rtol=0.01)
    # best -10: an improvement must go below -10 - 0.01 * 10 = -10.1
    scales, state = _run(tx, [-10.0, -10.05])
    np.testing.assert_array_equal(scales, [1, 0.5])
    assert float(state.best_value) == -10.0
    scales, state = _run(tx, [-10.0, -10.2])
    np.testing.assert_array_equal(scales, [1, 1])
    assert float(state.best_value) == pytest.approx(-10.2)


def test_slowly_worsening_negative_values_trigger_a_drop():
    """The optax pitfall: with (1 - rtol) * best, a worse negative value 'improves'."""
    values = -10.0 + 2e-4 * np.arange(8)  # each value slightly worse than the previous
    tx = reduce_on_plateau(factor=0.5, patience=3, rtol=1e-4)
    scales, state = _run(tx, values)
    np.testing.assert_array_equal(scales, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    assert float(state.best_value) == -10.0
    # The mirrored positive sequence behaves identically (and so does optax there).
    mirrored, _ = _run(tx, 10.0 + 2e-4 * np.arange(8))
    np.testing.assert_array_equal(mirrored, scales)
    ref, _ = _run(optax_reduce_on_plateau(factor=0.5, patience=3, rtol=1e-4),
                  10.0 + 2e-4 * np.arange(8))
    np.testing.assert_array_equal(ref, scales)


@pytest.mark.parametrize("shift", [-1000.0, -5.0, 0.0, 7.0])
def test_absolute_tolerance_is_shift_invariant(shift):
    """With rtol=0 only differences matter: shifting every value changes nothing."""
    rng = np.random.default_rng(0)
    base = np.concatenate([np.linspace(3.0, 1.0, 6), 1.0 + 0.002 * rng.standard_normal(20)])
    tx = reduce_on_plateau(factor=0.5, patience=2, cooldown=1, rtol=0.0, atol=0.01)
    np.testing.assert_array_equal(_scan_scales(tx, base + shift), _scan_scales(tx, base))


# --------------------------------------------------------------------------- optax parity

PARITY_CONFIGS = [
    dict(),
    dict(factor=0.5, patience=2, cooldown=1),
    dict(factor=0.5, patience=3, cooldown=2, accumulation_size=3, min_scale=0.1, atol=1e-3),
    dict(factor=0.2, patience=1, rtol=0.0, atol=0.05),
]


@pytest.mark.parametrize("config", PARITY_CONFIGS)
def test_matches_optax_contrib_for_non_negative_values(config):
    rng = np.random.default_rng(1)
    values = np.concatenate([
        np.linspace(5.0, 1.0, 20), 1.0 + 1e-3 * rng.standard_normal(40),
        np.linspace(1.0, 0.5, 10), np.full(30, 0.5), np.zeros(5),
    ]).astype(np.float32)
    ours, ref = reduce_on_plateau(**config), optax_reduce_on_plateau(**config)

    def states(tx):
        def body(state, v):
            _, state = tx.update(PARAMS, state, value=v)
            return state, state

        return jax.lax.scan(body, tx.init(PARAMS), jnp.asarray(values))[1]

    a, b = states(ours), states(ref)
    assert a._fields == b._fields
    for field in a._fields:
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype, field
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, err_msg=field)
    assert float(a.scale[-1]) < 1.0  # the sequence does trigger reductions


# --------------------------------------------------------------------------- transform contract


def test_state_dtypes_and_shapes_are_kept():
    tx = reduce_on_plateau(patience=1, cooldown=1, accumulation_size=2)
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(3, jnp.float64)}
    state = tx.init(params)
    assert isinstance(state, ReduceLROnPlateauState)
    assert state.scale.dtype == jnp.bfloat16  # lowest-precision parameter
    assert state.best_value.dtype == jnp.float64 and state.avg_value.dtype == jnp.float64
    for name in ("plateau_count", "cooldown_count", "count"):
        assert getattr(state, name).dtype == jnp.int32
    structure = jax.tree.structure(state)
    kinds = [(x.shape, x.dtype) for x in jax.tree.leaves(state)]
    update = jax.jit(tx.update)
    for v in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
        updates, state = update(params, state, value=v)
        assert jax.tree.structure(state) == structure
        assert [(x.shape, x.dtype) for x in jax.tree.leaves(state)] == kinds
        assert updates["a"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float64
    assert float(state.scale) < 1.0
    assert tx.init(jnp.zeros(3, jnp.int32)).scale.dtype == jnp.float32  # no float leaves


def test_jitted_update_compiles_once():
    tx = reduce_on_plateau(factor=0.5, patience=1)
    traces = []

    def update(updates, state, value):
        traces.append(None)
        return tx.update(updates, state, value=value)

    update = jax.jit(update)
    state = tx.init(PARAMS)
    for v in [1.0, 1.0, 0.5, 0.5, 0.5]:
        _, state = update(PARAMS, state, jnp.float32(v))
    assert len(traces) == 1
    assert float(state.scale) == 0.125  # drops at calls 2, 4 and 5


def test_chain_with_sgd_passes_value_through():
    lr = 0.1
    tx = optax.chain(optax.sgd(lr), reduce_on_plateau(factor=0.5, patience=1))
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    params = {"w": jnp.asarray([1.0, -2.0], jnp.float32)}
    grads = {"w": jnp.asarray([0.5, 1.0], jnp.float32)}
    state = tx.init(params)
    step = jax.jit(lambda g, s, p, v: tx.update(g, s, p, value=v))
    expected_scales = [1.0, 0.5, 0.5, 0.25]
    for v, scale in zip([1.0, 1.0, 0.2, 0.3], expected_scales, strict=True):
        updates, state = step(grads, state, params, jnp.float32(v))
        assert updates["w"].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(updates["w"]), -lr * scale * np.asarray([0.5, 1.0]),
                                   rtol=1e-6)
        params = optax.apply_updates(params, updates)
    assert float(state[1].scale) == 0.25
    with pytest.raises(TypeError, match="value"):
        tx.update(grads, state, params)  # the monitored value is required


def test_chain_with_adam_and_a_schedule_trains():
    """reduce_on_plateau composes with a scheduled optimizer inside a scanned loop."""
    tx = optax.chain(optax.adam(schedules.cosine_decay_schedule(0.05, 200)),
                     reduce_on_plateau(factor=0.5, patience=5, rtol=0.0, atol=1e-3))
    target = jnp.asarray([1.0, -1.0, 2.0], jnp.float32)
    loss_fn = lambda p: jnp.sum((p - target) ** 2)

    def body(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params, value=loss)
        return (optax.apply_updates(params, updates), state), loss

    params = jnp.zeros(3, jnp.float32)
    (params, state), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=200)
    assert params.dtype == jnp.float32
    assert float(losses[-1]) < 1e-2 * float(losses[0])
    assert state[1].scale.dtype == jnp.float32


def test_vmap_over_independent_monitors():
    tx = reduce_on_plateau(factor=0.5, patience=1)
    values = jnp.asarray([[1.0, 1.0, 1.0], [3.0, 2.0, 1.0]], jnp.float32)

    def run(vs):
        def body(state, v):
            _, state = tx.update(jnp.zeros(()), state, value=v)
            return state, None

        return jax.lax.scan(body, tx.init(jnp.zeros((), jnp.float32)), vs)[0].scale

    np.testing.assert_array_equal(np.asarray(jax.vmap(run)(values)), [0.25, 1.0])


def test_reexported_from_schedules():
    assert schedules.reduce_on_plateau is reduce_on_plateau
    assert schedules.ReduceLROnPlateauState is ReduceLROnPlateauState
    assert "reduce_on_plateau" not in schedules.names()  # a transform, not a schedule


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs,arg,value", [
    (dict(factor=1.0), "factor", "1.0"),
    (dict(factor=0.0), "factor", "0.0"),
    (dict(factor=-0.5), "factor", "-0.5"),
    (dict(patience=-1), "patience", "-1"),
    (dict(patience=2.5), "patience", "2.5"),
    (dict(rtol=-1e-4), "rtol", "-0.0001"),
    (dict(rtol=1.5), "rtol", "1.5"),
    (dict(atol=-1.0), "atol", "-1.0"),
    (dict(rtol=0.0, atol=0.0), "rtol", "0.0"),
    (dict(cooldown=-2), "cooldown", "-2"),
    (dict(accumulation_size=0), "accumulation_size", "0"),
    (dict(min_scale=-0.1), "min_scale", "-0.1"),
    (dict(min_scale=2.0), "min_scale", "2.0"),
])
def test_invalid_arguments_raise_eagerly(kwargs, arg, value):
    with pytest.raises(ValueError) as info:
        reduce_on_plateau(**kwargs)
    message = str(info.value)
    assert "reduce_on_plateau" in message and arg in message and value in message


def test_non_scalar_value_is_rejected():
    tx = reduce_on_plateau()
    with pytest.raises(ValueError, match="scalar"):
        tx.update(PARAMS, tx.init(PARAMS), value=jnp.ones(3))


def test_docstring_example():
    result = doctest.testmod(plateau)
    assert result.attempted >= 5 and result.failed == 0


def test_arguments_may_be_concrete_arrays():
    # optax.contrib.reduce_on_plateau takes them (e.g. values read back from a checkpoint).
    config = dict(factor=0.5, patience=2, cooldown=1, rtol=1e-4, atol=1e-3, min_scale=0.1,
                  accumulation_size=2)
    as_arrays = {k: jnp.asarray(v) for k, v in config.items()}
    values = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    expected, _ = _run(reduce_on_plateau(**config), values)
    got, _ = _run(reduce_on_plateau(**as_arrays), values)
    np.testing.assert_array_equal(got, expected)
    assert expected[-1] < 1.0
    _run(optax_reduce_on_plateau(**as_arrays), values)  # optax accepts them too


def test_traced_argument_is_a_clear_error():
    with pytest.raises(ValueError) as info:
        jax.jit(lambda f: reduce_on_plateau(factor=f).init(PARAMS))(0.5)
    message = str(info.value)
    assert "reduce_on_plateau" in message and "factor" in message and "concrete" in message


@pytest.mark.parametrize("kwargs, error, needle", [
    ({}, TypeError, "needs the monitored value, update(updates, state, params, value=loss)"),
    ({"value": "1.0"}, TypeError, "value must be a real number (the monitored metric), "
                                  "got '1.0'"),
    ({"value": True}, TypeError, "got True"),
    ({"value": jnp.asarray([1.0, 2.0])}, ValueError, "value must be a scalar"),
])
def test_update_without_a_real_scalar_value_is_named(kwargs, error, needle):
    # No value= gave Python's bare "update_fn() missing 1 required keyword-only argument";
    # a string '1.0' was taken as 1.0 and a bool as 0 or 1.
    tx = optax.chain(optax.sgd(0.1), reduce_on_plateau())
    params = jnp.ones(2)
    with pytest.raises(error) as info:
        tx.update(params, tx.init(params), params, **kwargs)
    assert needle in str(info.value)
