"""jaxnn._compat: shims over the JAX versions pyproject.toml accepts."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import pytest

from jaxnn import _compat


@pytest.mark.parametrize("outside", [False, True])
def test_enable_x64_sets_the_mode_inside_and_restores_it(outside):
    with _compat.enable_x64(outside):
        with _compat.enable_x64(True):
            assert jnp.ones(1).dtype == jnp.float64
        with _compat.enable_x64(False):
            assert jnp.ones(1).dtype == jnp.float32
        assert jnp.ones(1).dtype == (jnp.float64 if outside else jnp.float32)


def test_enable_x64_falls_back_to_jax_experimental_without_jax_enable_x64(monkeypatch):
    # JAX < 0.8 (the last one for Python 3.10 is 0.6.2) has only the experimental one.
    calls = []

    def experimental_enable_x64(new_val=True):
        calls.append(new_val)
        return contextlib.nullcontext("experimental")

    monkeypatch.delattr(jax, "enable_x64", raising=False)
    monkeypatch.setattr(jax.experimental, "enable_x64", experimental_enable_x64, raising=False)
    with _compat.enable_x64(False) as got:
        assert got == "experimental"
    assert calls == [False]
