"""The immutable train state.

A :class:`TrainState` is a pytree (a ``flax.struct.dataclass``) holding everything a
training step reads and writes: trainable ``params``, the optimizer state, the model's
non-trainable state (batch-norm running statistics), the step counter and the base PRNG
key. It is never mutated: a step returns ``state.replace(...)``.

Randomness is derived, never carried forward: the key for step ``s`` is
``jax.random.fold_in(state.key, s)``, so a run restored from a checkpoint at step ``s``
draws exactly the numbers the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

__all__ = ["TrainState"]


@flax.struct.dataclass
class TrainState:
    """Params, optimizer state, model state (batch-norm statistics), step and PRNG key.

    Attributes:
      step: number of optimizer updates applied so far (int32 scalar).
      params: the trainable parameters (any pytree).
      opt_state: the optax state of ``tx``.
      model_state: non-trainable model state, e.g. ``{"layers": [{"bn": {...}}, ...]}``.
      key: the base PRNG key of the run (a raw ``uint32[2]`` key).
      lr_scale: a multiplier on every update, set by reduce-on-plateau (1.0 otherwise).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any
    key: jax.Array
    lr_scale: jax.Array

    @classmethod
    def create(
        cls,
        *,
        params: Any,
        tx: optax.GradientTransformation,
        key: jax.Array,
        model_state: Any = None,
    ) -> TrainState:
        """A fresh state at step 0 with ``tx.init(params)``."""
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state={} if model_state is None else model_state,
            key=key,
            lr_scale=jnp.ones((), jnp.float32),
        )

    def step_key(self) -> jax.Array:
        """The PRNG key of the current step (dropout masks and the like)."""
        return jax.random.fold_in(self.key, self.step)
