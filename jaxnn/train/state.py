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
        """A fresh state at step 0 with ``tx.init(params)``.

        ``key`` is a raw ``uint32[2]`` key (``jax.random.PRNGKey``) or a typed threefry key
        (``jax.random.key``); a typed key is stored as its raw data, so the state can be
        checkpointed and derives the same step keys.

        The state holds copies of ``params``, ``model_state`` and ``key``: the jitted epoch
        (:func:`jaxnn.train.make_train_epoch`) donates the state it is given, which would
        otherwise delete the caller's own arrays (the initial params kept for comparison,
        the key used again for the epochs: "Array has been deleted").
        """
        params = _copy(params)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state={} if model_state is None else _copy(model_state),
            key=_copy(_raw_key(key)),
            lr_scale=jnp.ones((), jnp.float32),
        )

    def step_key(self) -> jax.Array:
        """The PRNG key of the current step (dropout masks and the like)."""
        return jax.random.fold_in(self.key, self.step)


def _copy(tree: Any) -> Any:
    """``tree`` with every JAX array leaf copied into a buffer of its own (same sharding);
    other leaves (numpy arrays, Python numbers: converted when jitted anyway) as they are."""
    return jax.tree.map(lambda a: jnp.copy(a) if isinstance(a, jax.Array) else a, tree)


def _raw_key(key: Any) -> jax.Array:
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        if impl != "threefry2x32" or key.shape != ():
            raise ValueError(
                "TrainState.create: key must be a single threefry2x32 key, got a key of "
                f"shape {key.shape} with impl {impl!r}")
        return jax.random.key_data(key)
    shape, dtype = getattr(key, "shape", None), getattr(key, "dtype", None)
    if shape != (2,) or dtype != jnp.uint32:
        raise ValueError(
            "TrainState.create: key must be jax.random.PRNGKey(seed) (uint32[2]) or "
            f"jax.random.key(seed), got {type(key).__name__} with shape {shape} and dtype "
            f"{dtype}")
    return key
