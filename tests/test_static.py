"""Tests for jaxnn._static: reading static (build-time) scalar arguments."""

from __future__ import annotations

import fractions

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn._static import static_scalar

# value -> (expected Python scalar, its type)
CONCRETE = [
    (3, 3, int),
    (0.25, 0.25, float),
    (True, True, bool),
    (np.int64(7), 7, int),
    (np.uint8(7), 7, int),
    (np.float32(0.5), 0.5, float),
    (np.bool_(False), False, bool),
    (np.asarray(10), 10, int),
    (np.asarray(2.5, np.float64), 2.5, float),
    (np.asarray(True), True, bool),
    (jnp.asarray(10), 10, int),
    (jnp.float32(0.5), 0.5, float),
    (jnp.asarray(0.5, jnp.bfloat16), 0.5, float),
    (jnp.asarray(0.5, jnp.float16), 0.5, float),
    (jnp.asarray(False), False, bool),
    (np.asarray(1 + 2j), 1 + 2j, complex),
]


@pytest.mark.parametrize("value, expected, kind", CONCRETE,
                         ids=[f"{type(v).__name__}-{v!r}" for v, _, _ in CONCRETE])
def test_concrete_scalars_become_python_scalars(value, expected, kind):
    out = static_scalar(value, "f", "arg")
    assert type(out) is kind  # bools stay bools so callers can refuse them by type
    assert out == expected


@pytest.mark.parametrize("value", ["2", None, [2], np.asarray([2]), jnp.ones((2, 2)),
                                   np.asarray("2"), fractions.Fraction(1, 2)],
                         ids=repr)
def test_anything_else_is_returned_unchanged_for_the_caller_to_check(value):
    assert static_scalar(value, "f", "arg") is value


@pytest.mark.parametrize("shape", [(), (3,)])
def test_traced_value_is_a_named_error(shape):
    def build(x):
        return static_scalar(x, "jaxnn.layers.dropout_forward", "rate", expected="real number",
                             reason="it selects the computation")

    with pytest.raises(ValueError) as info:
        jax.jit(build)(jnp.zeros(shape))
    message = str(info.value)
    assert message.startswith("jaxnn.layers.dropout_forward: rate must be a static real number "
                              "(it selects the computation), got the traced value ")
    assert "concrete" in message and "static_argnums" in message


def test_traced_error_under_vmap_and_grad_and_hint():
    for transform in (jax.vmap, jax.grad):
        with pytest.raises(ValueError, match=r"^g: n must be a static int, got the traced.*; "
                                             r"only values may be traced"):
            transform(lambda x: static_scalar(x, "g", "n", expected="int",
                                              hint="only values may be traced") * 1.0)(
                jnp.ones((2,)) if transform is jax.vmap else 1.0)


def test_a_typed_prng_key_is_returned_unchanged_for_the_caller_to_refuse():
    key = jax.random.key(0)
    assert static_scalar(key, "f", "n") is key
