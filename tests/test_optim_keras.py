"""Tests for jaxnn.optim.keras: Keras presets against the Keras update rules in numpy.

The references below transcribe the Keras 3 update steps (plus Keras 2's legacy
``decay``: ``lr_t = lr / (1 + decay * t)``, ``t`` = updates done before this one) in plain
numpy, float64. Metric: per trajectory, the largest absolute difference divided by the
largest magnitude of the reference. Tolerances: <= 1e-10 for float64 parameters (x64 is
on in the test suite), <= 2e-5 for float32 parameters against the float64 reference.
"""

from __future__ import annotations

import inspect
import math
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn.optim as jo
from jaxnn.optim import keras

STEPS = 60
SHAPE = (5,)


def _gradients(seed=0):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(STEPS, *SHAPE)) * 10.0 ** rng.uniform(-3, 1, size=(STEPS, *SHAPE))
    g[rng.uniform(size=g.shape) < 0.2] = 0.0
    return g


P0 = np.linspace(-1.0, 1.0, SHAPE[0])

# ------------------------------------------------------------ numpy references (Keras)


def ref_sgd(grads, learning_rate=0.01, momentum=0.0, nesterov=False, decay=0.0):
    p, v, out = P0.copy(), np.zeros(SHAPE), []
    for t, g in enumerate(grads):
        lr = learning_rate / (1.0 + decay * t)
        v = momentum * v - lr * g
        p = p + (momentum * v - lr * g if nesterov else v)
        out.append(p.copy())
    return np.array(out)


def ref_adagrad(grads, learning_rate=0.01, initial_accumulator_value=0.1, epsilon=1e-7,
                decay=0.0):
    p, acc, out = P0.copy(), np.full(SHAPE, initial_accumulator_value), []
    for t, g in enumerate(grads):
        lr = learning_rate / (1.0 + decay * t)
        acc = acc + g * g
        p = p - lr * g / np.sqrt(acc + epsilon)
        out.append(p.copy())
    return np.array(out)


def ref_rmsprop(grads, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                centered=False, decay=0.0):
    p, v, mg, mom, out = P0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE), []
    for t, g in enumerate(grads):
        lr = learning_rate / (1.0 + decay * t)
        v = rho * v + (1.0 - rho) * g * g
        if centered:
            mg = rho * mg + (1.0 - rho) * g
            denominator = v - mg * mg + epsilon
        else:
            denominator = v + epsilon
        increment = lr * g / np.sqrt(denominator)
        if momentum > 0:
            mom = momentum * mom + increment
            p = p - mom
        else:
            p = p - increment
        out.append(p.copy())
    return np.array(out)


def ref_adam(grads, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
             amsgrad=False, decay=0.0):
    p, m, v, v_hat, out = P0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE), []
    for t, g in enumerate(grads):
        lr = learning_rate / (1.0 + decay * t)
        step = t + 1
        alpha = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
        m = m + (g - m) * (1.0 - beta_1)
        v = v + (g * g - v) * (1.0 - beta_2)
        if amsgrad:
            v_hat = np.maximum(v_hat, v)
            denominator_moment = v_hat
        else:
            denominator_moment = v
        p = p - (m * alpha) / (np.sqrt(denominator_moment) + epsilon)
        out.append(p.copy())
    return np.array(out)


CASES = {
    "sgd": (keras.sgd, ref_sgd, {}),
    "sgd_momentum_decay": (keras.sgd, ref_sgd, dict(momentum=0.9, decay=0.01)),
    "sgd_nesterov_decay": (keras.sgd, ref_sgd, dict(momentum=0.8, nesterov=True, decay=0.05)),
    "adagrad": (keras.adagrad, ref_adagrad, {}),
    "adagrad_zero_init_decay": (
        keras.adagrad,
        ref_adagrad,
        dict(learning_rate=0.1, initial_accumulator_value=0.0, decay=0.05),
    ),
    "rmsprop": (keras.rmsprop, ref_rmsprop, {}),
    "rmsprop_centered": (keras.rmsprop, ref_rmsprop, dict(centered=True, rho=0.8)),
    "rmsprop_momentum_decay": (keras.rmsprop, ref_rmsprop, dict(momentum=0.9, decay=0.02)),
    "rmsprop_centered_momentum": (
        keras.rmsprop,
        ref_rmsprop,
        dict(learning_rate=0.01, centered=True, momentum=0.5, epsilon=1e-3),
    ),
    "adam": (keras.adam, ref_adam, {}),
    "adam_options_decay": (
        keras.adam,
        ref_adam,
        dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3, decay=0.1),
    ),
    "amsgrad_decay": (keras.adam, ref_adam, dict(amsgrad=True, decay=0.01)),
}


def _run(opt, dtype, grads):
    params = jnp.asarray(P0, dtype)

    def step(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), p

    _, trajectory = jax.jit(lambda p, gs: jax.lax.scan(step, (p, opt.init(p)), gs))(
        params, jnp.asarray(grads, dtype)
    )
    return np.asarray(trajectory, np.float64)


def _rel_err(x, reference):
    return float(np.max(np.abs(x - reference)) / np.max(np.abs(reference)))


@pytest.mark.parametrize("case", list(CASES))
def test_matches_keras_formulas(case):
    factory, reference, kwargs = CASES[case]
    grads = _gradients()
    expected = reference(grads, **kwargs)
    opt = factory(**kwargs)
    assert _rel_err(_run(opt, jnp.float64, grads), expected) <= 1e-10
    trajectory32 = _run(opt, jnp.float32, grads)
    assert _rel_err(trajectory32, expected) <= 2e-5


def test_keras_defaults():
    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()}

    assert defaults(keras.sgd) == dict(learning_rate=0.01, momentum=0.0, nesterov=False,
                                       decay=0.0)
    assert defaults(keras.adagrad) == dict(learning_rate=0.01, initial_accumulator_value=0.1,
                                           epsilon=1e-7, decay=0.0)
    assert defaults(keras.rmsprop) == dict(learning_rate=0.001, rho=0.9, momentum=0.0,
                                           epsilon=1e-7, centered=False, decay=0.0)
    assert defaults(keras.adam) == dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                                        epsilon=1e-7, amsgrad=False, decay=0.0)


def test_legacy_decay_is_inverse_time_per_update():
    steps = jnp.arange(6)
    np.testing.assert_array_equal(keras.legacy_decay(0.1, 0.0)(steps), np.full(6, 0.1))
    np.testing.assert_allclose(keras.legacy_decay(0.1, 0.5)(steps), 0.1 / (1 + 0.5 * np.arange(6)))
    halving = lambda count: 0.1 * 0.5**count
    np.testing.assert_allclose(
        keras.legacy_decay(halving, 1.0)(steps), 0.1 * 0.5 ** np.arange(6) / (1 + np.arange(6))
    )
    opt = keras.sgd(learning_rate=0.2, decay=1.0)
    state = opt.init(jnp.zeros(2))
    for t in range(4):
        _, state = opt.update(jnp.ones(2), state)
        assert float(jo.current_learning_rate(state)) == pytest.approx(0.2 / (1 + t))


def test_keras_adam_epsilon_is_epsilon_hat():
    """Keras' eps equals optax's eps / sqrt(1 - b2^t): check on the first step."""
    g = jnp.array([1e-6, 3e-5, 0.2, -1e-7], jnp.float64)
    eps, b2 = 1e-5, 0.999
    ours, _ = keras.adam(0.1, epsilon=eps).update(g, keras.adam(0.1).init(g))
    optax_style, _ = jo.adam(0.1, eps=eps / math.sqrt(1 - b2)).update(g, jo.adam(0.1).init(g))
    np.testing.assert_allclose(ours, optax_style, rtol=1e-12)
    plain, _ = jo.adam(0.1, eps=eps).update(g, jo.adam(0.1).init(g))
    assert abs(float(ours[0])) < abs(float(plain[0]))  # tiny gradients move less under Keras


def test_keras_rmsprop_equals_optax_rmsprop_with_keras_epsilon():
    """Keras 3 RMSprop (eps inside, momentum after the rate) is optax's with eps=1e-7."""
    grads = _gradients(1)
    for kwargs in (dict(), dict(momentum=0.9), dict(centered=True, momentum=0.5)):
        keras_kwargs = dict(kwargs)
        ours = _run(keras.rmsprop(0.01, **keras_kwargs), jnp.float64, grads)
        theirs = _run(optax.rmsprop(0.01, decay=0.9, eps=1e-7, **kwargs), jnp.float64, grads)
        assert _rel_err(ours, theirs) <= 1e-12


def test_keras_sgd_momentum_differs_from_optax_only_under_a_changing_rate():
    grads = _gradients(2)
    constant_keras = _run(keras.sgd(0.05, momentum=0.9), jnp.float64, grads)
    constant_optax = _run(jo.sgd(0.05, momentum=0.9), jnp.float64, grads)
    assert _rel_err(constant_keras, constant_optax) <= 1e-12
    schedule = keras.legacy_decay(0.05, 0.1)
    decayed_keras = _run(keras.sgd(0.05, momentum=0.9, decay=0.1), jnp.float64, grads)
    decayed_optax = _run(jo.sgd(schedule, momentum=0.9), jnp.float64, grads)
    assert _rel_err(decayed_keras, decayed_optax) > 1e-3


@pytest.mark.parametrize(
    ("factory", "kwargs", "arg"),
    [
        (keras.sgd, dict(momentum=1.5), "momentum"),
        (keras.sgd, dict(learning_rate=-0.01), "learning_rate"),
        (keras.adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
        (keras.rmsprop, dict(epsilon=-1.0), "epsilon"),
        (keras.adam, dict(beta_2=1.0), "beta_2"),
        (keras.adam, dict(decay=-1e-3), "decay"),
        (keras.legacy_decay, dict(learning_rate=0.1, decay=-1.0), "decay"),
    ],
)
def test_keras_arguments_are_checked_with_keras_names(factory, kwargs, arg):
    with pytest.raises(ValueError, match=rf"jaxnn\.optim\.keras\.\w+: {arg} "):
        factory(**kwargs)


def test_keras_presets_keep_bfloat16():
    params = jnp.ones(3, jnp.bfloat16)
    # Keras' beta_2 = 0.999 is 1.0 in bfloat16 (a second moment that never decays): refused.
    with pytest.raises(ValueError, match=r"keras\.adam: beta_2 must be .* below 1 in bfloat16"):
        keras.adam().init(params)
    for opt in (keras.sgd(momentum=0.9, decay=0.1), keras.adagrad(decay=0.1),
                keras.rmsprop(momentum=0.9, centered=True),
                keras.adam(beta_2=0.99, amsgrad=True, decay=0.1)):
        state = opt.init(params)
        updates, new_state = jax.jit(opt.update)(jnp.full(3, 0.5, jnp.bfloat16), state, params)
        assert updates.dtype == jnp.bfloat16
        assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(
            lambda x: x.dtype, state
        )


# ------------------------------------------------------- the comparison table is in sync


def _rst_table(text):
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"=+(  =+)+", line)]
    assert len(rules) == 3
    spans = [m.span() for m in re.finditer(r"=+", lines[rules[0]])]
    rows = []
    for line in lines[rules[0] + 1 : rules[2]]:
        if line.startswith("="):
            continue
        padded = line.ljust(spans[-1][1])
        cells = [padded[a:b].strip() for a, b in spans[:-1]]
        cells.append(padded[spans[-1][0]:].strip())
        rows.append(cells)
    return rows


def _markdown_table(text):
    rows = []
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| quantity |"))
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if set(line) <= set("|-"):
            continue
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_docs_table_matches_module_docstring():
    docs = pathlib.Path(__file__).resolve().parents[1] / "docs" / "optimizers.md"
    rst = _rst_table(keras.__doc__)
    markdown = _markdown_table(docs.read_text())
    assert rst == markdown
    assert len(rst) == 14 and rst[0][0] == "quantity"
