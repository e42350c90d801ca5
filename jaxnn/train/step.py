"""Compiled train and eval steps, and a whole epoch fused with ``lax.scan``.

The contract of a loss function here is the one :func:`jaxnn.mlp.make_loss_fn` returns::

    loss_fn(params, model_state, x, y, key, train) -> (loss, aux)
    aux = {"state": new_model_state, "outputs": predictions_or_logits, ...}

and a gradient function has the signature of ``jax.value_and_grad(loss_fn, has_aux=True)``,
so the hand-written backprop (:func:`jaxnn.backprop.value_and_grad`) and autodiff are
interchangeable: :func:`make_train_step` takes ``grad="autodiff"`` or ``grad="manual"``.

An epoch (:func:`make_train_epoch`) shuffles with a keyed permutation *inside* the compiled
function, gathers each batch in the scan body and runs the step; it is compiled once per
data shape and donates the incoming state's buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn.backprop import _norm
from jaxnn.optim import current_learning_rate
from jaxnn.train.state import TrainState

__all__ = [
    "classification_metrics",
    "make_eval_fn",
    "make_train_epoch",
    "make_train_step",
    "metrics_fn_for_loss",
    "regression_metrics",
]

LossFn = Callable[..., tuple[jax.Array, dict]]


def classification_metrics(outputs: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """Accuracy from logits and integer (or one-hot) labels, as a float32 scalar."""
    labels = jnp.argmax(y, axis=-1) if y.ndim == outputs.ndim else y
    return {"accuracy": jnp.mean(jnp.argmax(outputs, axis=-1) == labels).astype(jnp.float32)}


def binary_metrics(outputs: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """Accuracy of ``logits > 0`` against 0/1 labels."""
    y = jnp.reshape(y, outputs.shape)
    return {"accuracy": jnp.mean((outputs > 0) == (y > 0.5)).astype(jnp.float32)}


def regression_metrics(outputs: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """No extra metric beyond the loss."""
    del outputs, y
    return {}


def metrics_fn_for_loss(loss: str) -> Callable[[jax.Array, jax.Array], dict[str, jax.Array]]:
    """The natural per-batch metrics for a loss name."""
    if loss.startswith("softmax_cross_entropy"):
        return classification_metrics
    if loss == "sigmoid_binary_cross_entropy":
        return binary_metrics
    return regression_metrics


# A float32 sum of squares above this is exact to rounding (no square that matters was
# flushed to 0) and, being finite, overflowed nowhere; below it, or inf / NaN, the scaled
# norm is taken instead.
_PLAIN_SQUARES_FROM = 1e-30


def _layer_grad_norms(grads: Any, squares: list[jax.Array]) -> dict[str, jax.Array]:
    """``grad_norm/<path>`` of every gradient leaf, from its sum of squares when that is
    safe, else by the scaled norm of backprop: plain float32 squares log a gradient of
    ~1e-20 (the first layers of a deep sigmoid net) as 0 and one of ~1e20 as inf. The
    scaled norm takes three passes over the leaf (NaN check, max, scaled squares), which
    cost 15-23% of a W2 step when it ran for every leaf; a ``lax.cond`` runs it only for
    a leaf whose plain sum is out of range."""
    out = {}
    leaves = jax.tree_util.tree_flatten_with_path(grads)[0]
    for (path, leaf), sq in zip(leaves, squares, strict=True):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        g = leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32))
        plain = jnp.isfinite(sq) & (sq > _PLAIN_SQUARES_FROM)
        out[f"grad_norm/{name}"] = jax.lax.cond(
            plain, lambda sq, g: jnp.sqrt(sq), lambda sq, g: _norm(g), sq, g)
    return out


def _sum_of_squares(g: jax.Array) -> jax.Array:
    """``sum(g ** 2)`` in at least float32, with one factor behind an optimization barrier.

    The value of ``jnp.sum(jnp.square(g))``. Why the barrier: with Adam, XLA's common-
    subexpression pass shares this ``g * g`` with the second moment's, so on its CPU
    backend the squares were written out and summed by a separate tiled reduce-window
    pass instead of one fused read -- 10-12% of a W2 training step (784-512-512-10, batch
    128) in ``scripts/bench.py``. ``g * optimization_barrier(g)`` is not the optimizer's
    expression, so it fuses with its sum (the barrier moves no data). A matrix-vector
    product with ones, tried too, was 4-5% faster for the autodiff step but left the
    hand-written backprop's as slow as before (``docs/benchmarks.md``).
    """
    g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
    return jnp.sum(g * jax.lax.optimization_barrier(g))


def _global_norm(squares: list[jax.Array]) -> jax.Array:
    """The L2 norm of all gradients from each leaf's :func:`_sum_of_squares` (taken in at
    least float32: float16 squares overflow (65504) long before the norm does, which would
    read as divergence)."""
    return jnp.sqrt(sum(squares)) if squares else jnp.zeros((), jnp.float32)


def _check_batch_size(where: str, batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
            or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an integer >= 1, got {batch_size!r}")


def _check_rows(where: str, x: jax.Array, y: jax.Array) -> int:
    # At trace time (shapes are static): an empty set would divide by zero.
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{where}: the data set is empty (x has shape {tuple(x.shape)}); "
                         "it needs at least one row")
    if y.shape[0] != n:
        raise ValueError(f"{where}: x has {n} rows but y has {y.shape[0]}; they must match")
    return n


def make_train_step(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    *,
    grad: str | Callable = "autodiff",
    value_and_grad_fn: Callable | None = None,
    metrics_fn: Callable[[jax.Array, jax.Array], dict] | None = None,
    grad_norms: bool = False,
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """A pure train step ``(state, x, y) -> (new_state, metrics)`` (not yet jitted).

    Args:
      loss_fn: ``(params, model_state, x, y, key, train) -> (loss, aux)``.
      tx: any optax transformation (ours or optax's). Its update receives the batch loss
        as ``value=loss`` (what optax passes on to transforms that take extra arguments:
        ``reduce_on_plateau`` or ``polyak_sgd`` inside an ``optax.chain``; the others
        ignore it).
      grad: ``"autodiff"`` (``jax.value_and_grad(loss_fn, has_aux=True)``) or ``"manual"``
        (then ``value_and_grad_fn`` supplies the hand-written gradient, e.g.
        ``jaxnn.backprop.value_and_grad(mlp_config, loss)``).
      value_and_grad_fn: the gradient function used when ``grad="manual"``.
      metrics_fn: ``(outputs, y) -> dict`` of extra per-batch metrics (e.g. accuracy).
      grad_norms: also report the L2 norm of every gradient leaf (per layer).

    Returns:
      The step. Metrics: ``loss``, ``grad_norm`` (global, in at least float32),
      ``learning_rate`` (when the optimizer state records it, times ``state.lr_scale``) and
      whatever ``metrics_fn`` gives.
    """
    if grad == "autodiff":
        vg = jax.value_and_grad(loss_fn, has_aux=True)
    elif grad == "manual":
        if value_and_grad_fn is None:
            raise ValueError(
                "make_train_step: grad='manual' needs value_and_grad_fn "
                "(e.g. jaxnn.backprop.value_and_grad(mlp_config, loss))"
            )
        vg = value_and_grad_fn
    else:
        raise ValueError(f"make_train_step: grad must be 'autodiff' or 'manual', got {grad!r}")

    tx_extra = optax.with_extra_args_support(tx)

    def train_step(state: TrainState, x: jax.Array, y: jax.Array) -> tuple[TrainState, dict]:
        (loss, aux), grads = vg(state.params, state.model_state, x, y, state.step_key(), True)
        updates, opt_state = tx_extra.update(grads, state.opt_state, state.params, value=loss)
        updates = jax.tree.map(lambda u: u * state.lr_scale.astype(u.dtype), updates)
        params = optax.apply_updates(state.params, updates)
        squares = [_sum_of_squares(g) for g in jax.tree.leaves(grads)]
        metrics = {"loss": loss, "grad_norm": _global_norm(squares)}
        lr = current_learning_rate(opt_state)
        if lr is not None:
            metrics["learning_rate"] = jnp.asarray(lr, jnp.float32) * state.lr_scale
        if metrics_fn is not None:
            metrics.update(metrics_fn(aux["outputs"], y))
        if grad_norms:
            metrics.update(_layer_grad_norms(grads, squares))
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            opt_state=opt_state,
            model_state=aux.get("state", state.model_state),
        )
        return new_state, metrics

    return train_step


def make_train_epoch(
    train_step: Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, dict]],
    batch_size: int,
    *,
    batch_sharding: Any = None,
    drop_remainder: bool = True,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """A jitted epoch ``(state, x, y, epoch_key) -> (state, per_step_metrics)``.

    The training set is shuffled with ``jax.random.permutation(epoch_key, n)``; the
    ``n % batch_size`` examples that fall last in the permutation are left out of that epoch
    (a different set each epoch), unless ``drop_remainder=False``: then they make one more,
    smaller step after the full batches (its own static shape, traced once in the same
    compilation), so every example is used once per epoch. ``batch_size >= n`` is
    full-batch gradient descent. Each metric comes back with one value per step (shape
    ``(num_batches,)``, or ``(ceil(n / batch_size),)`` when the remainder is kept).

    The incoming ``state`` is donated (its buffers are reused for the new one, no copy of
    the parameters and optimizer moments per epoch): use the returned state, not the one
    passed in (its arrays are deleted). :meth:`TrainState.create` copies what it is given,
    so the caller's own initial params and key survive.

    Args:
      train_step: from :func:`make_train_step`.
      batch_size: examples per step (static).
      batch_sharding: optional ``jax.sharding.Sharding`` for each batch (data parallelism).
        With ``drop_remainder=False`` the smaller last batch is sharded the same way, so
        ``n % batch_size`` must split over the devices too (a ``ValueError`` at trace time
        names it otherwise).
      drop_remainder: leave out the ``n % batch_size`` examples that fall last (default).
    """
    _check_batch_size("make_train_epoch", batch_size)

    def shard(a: jax.Array, n: int, last: bool = False) -> jax.Array:
        if batch_sharding is None:
            return a
        try:
            batch_sharding.shard_shape(a.shape)
        except ValueError:
            if last:
                why = (f"with drop_remainder=False the last batch holds the {n} % "
                       f"{batch_size} rows left over, which must split too")
            else:
                why = (f"each batch holds min(batch_size, n) = min({batch_size}, {n}) rows; "
                       "use a multiple of the device count")
            raise ValueError(
                f"make_train_epoch: a batch of {a.shape[0]} rows does not split over the "
                f"devices of {batch_sharding}; {why}"
            ) from None
        return jax.lax.with_sharding_constraint(a, batch_sharding)

    def epoch(state: TrainState, x: jax.Array, y: jax.Array, epoch_key: jax.Array):
        n = _check_rows("make_train_epoch", x, y)
        bs = min(batch_size, n)
        nb = n // bs
        perm = jax.random.permutation(epoch_key, n)

        def body(st, idx):
            return train_step(st, shard(x[idx], n), shard(y[idx], n))

        state, metrics = jax.lax.scan(body, state, perm[: nb * bs].reshape(nb, bs))
        if drop_remainder or nb * bs == n:
            return state, metrics
        rest = perm[nb * bs:]
        state, last = train_step(state, shard(x[rest], n, True), shard(y[rest], n, True))
        return state, jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), metrics, last)

    return jax.jit(epoch, donate_argnums=0)


def make_eval_fn(
    loss_fn: LossFn,
    *,
    loss_name: str,
    batch_size: int = 1024,
    metrics_fn: Callable[[jax.Array, jax.Array], dict] | None = None,
    batch_sharding: Any = None,
) -> Callable[[TrainState, jax.Array, jax.Array], dict]:
    """A jitted evaluation ``(state, x, y) -> {"loss": ..., "accuracy": ...}`` in eval mode.

    The set is split into chunks of ``batch_size`` (the last one padded and masked) and
    evaluated with ``lax.map``, so memory stays bounded and it compiles once per set size.
    The loss is the data loss (mean over examples, without the L1/L2 penalty).

    With ``batch_sharding`` (the training batches' sharding, data parallelism) each chunk is
    split over its devices, so each device evaluates its share of the set instead of all of
    it; a chunk is rounded up to a multiple of the device count (the padding is masked), so
    any set size and ``batch_size`` work. The set itself may be replicated.
    """
    from jaxnn import losses

    _check_batch_size("make_eval_fn", batch_size)
    per_example = losses.get(loss_name)
    shards = _batch_shards(batch_sharding)

    def evaluate(state: TrainState, x: jax.Array, y: jax.Array) -> dict:
        n = _check_rows("make_eval_fn", x, y)
        bs = -(-min(batch_size, n) // shards) * shards
        nb = -(-n // bs)
        pad = nb * bs - n
        xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        yp = jnp.concatenate([y, jnp.zeros((pad, *y.shape[1:]), y.dtype)]) if pad else y
        mask = (jnp.arange(nb * bs) < n).astype(jnp.float32).reshape(nb, bs)
        xs = xp.reshape(nb, bs, *x.shape[1:])
        ys = yp.reshape(nb, bs, *y.shape[1:])

        def chunk(args):
            xb, yb, mb = args
            if batch_sharding is not None:  # a slice of each device's copy: no transfer
                xb, yb, mb = jax.lax.with_sharding_constraint((xb, yb, mb), batch_sharding)
            _, aux = loss_fn(state.params, state.model_state, xb, yb, None, False)
            out = aux["outputs"]
            lvec = per_example(out, yb, reduction="none").astype(jnp.float32)
            # where, not a product: a NaN in a padded row must not reach the sums.
            keep = mb > 0
            res = {"loss": jnp.sum(jnp.where(keep, lvec, 0.0))}
            if metrics_fn is not None:
                for k, v in _per_example_metrics(metrics_fn, out, yb).items():
                    res[k] = jnp.sum(jnp.where(keep, v, 0))
            return res

        sums = jax.lax.map(chunk, (xs, ys, mask))
        return {k: jnp.sum(v) / n for k, v in sums.items()}

    return jax.jit(evaluate)


def _batch_shards(batch_sharding: Any) -> int:
    """How many parts ``batch_sharding`` splits a batch's rows into (1 without one)."""
    if batch_sharding is None:
        return 1
    rows = len(batch_sharding.device_set)
    return rows // batch_sharding.shard_shape((rows,))[0]


def _per_example_metrics(metrics_fn, outputs, y):
    # vmap a batch metric over single examples: the mean over a batch of one is the value.
    return jax.vmap(lambda o, t: metrics_fn(o[None], t[None]))(outputs, y)
