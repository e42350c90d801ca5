"""A compiled, vmappable training run for the training-craft experiments.

Contract: :func:`make_run` builds a pure function

    run(params, model_state, key, hparams) -> (final_state, curves)

that trains an MLP for a fixed number of epochs with :func:`jaxnn.train.make_train_step`
and :func:`jaxnn.train.make_train_epoch` (keyed shuffle, ``lax.scan`` over batches; the
``n % batch_size`` rows left over are dropped, unless ``drop_remainder=False`` adds one
smaller last batch) inside one ``lax.scan`` over epochs, evaluating every named evaluation
set after each epoch with :func:`jaxnn.train.make_eval_fn`. Because it is pure and every
shape is fixed, it can be ``jax.vmap``-ed over seeds (keys and initial params), over initial
weight scales (stacked params), and over optimizer hyperparameters (``hparams`` is any
pytree of arrays handed to ``make_tx``), then jitted once. ``curves`` holds

* ``"loss"``: the training-batch loss of every update, shape ``(epochs, steps_per_epoch)``
  (``steps_per_epoch`` is ``n // batch_size``, or ``ceil(n / batch_size)`` when the
  remainder is kept);
* ``"learning_rate"``: the rate of every update, same shape (when the optimizer records it);
* ``"<set>_loss"``, ``"<set>_accuracy"``: per epoch, shape ``(epochs,)``, for each
  evaluation set (data loss without the penalty, eval mode: no dropout, running
  batch-norm statistics).

:func:`load_data` resolves the ``data`` section of a config (``"auto"`` picks
Fashion-MNIST / MNIST from ``data_dir`` when one is given, and refuses a ``data_dir`` that
holds neither; scikit-learn's digits when ``data_dir`` is empty).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import data as jdata
from jaxnn import mlp
from jaxnn.data import DataNotFoundError
from jaxnn.studies.craft_common import ConfigError, check, is_int
from jaxnn.train import (
    TrainState,
    classification_metrics,
    make_eval_fn,
    make_train_epoch,
    make_train_step,
)

__all__ = ["LOSS", "init_stacked", "load_data", "make_evaluate", "make_run", "subset"]

LOSS = "softmax_cross_entropy_with_integer_labels"


def load_data(section: Mapping[str, Any], key: jax.Array) -> jdata.Dataset:
    """The data set a config's ``data`` section names.

    Args:
      section: ``{"name": "auto" | a jaxnn.data name, "data_dir": str, "n_train": int,
        "n_test": int}`` (0 means all rows).
      key: used for digits' split and for subsampling.

    Returns:
      A classification :class:`jaxnn.data.Dataset` (features scaled to [0, 1]).

    Raises:
      ConfigError: unknown name, a non-classification set, or missing files (also for
        ``"auto"`` with a ``data_dir`` holding no Fashion-MNIST or MNIST files: digits
        only stand in when no ``data_dir`` is given).
    """
    name = section.get("name", "auto")
    data_dir = section.get("data_dir") or None
    counts = {k: 0 if section.get(k) is None else section[k] for k in ("n_train", "n_test")}
    for k, v in counts.items():
        check(is_int(v) and v >= 0, f"data.{k}", v, "an integer >= 0 (0: all rows)")
    n_train = int(counts["n_train"]) or None
    n_test = int(counts["n_test"]) or None
    if data_dir is not None and not pathlib.Path(data_dir).is_dir():
        raise ConfigError(f"data.data_dir: got {data_dir!r}; allowed: an existing directory")
    tries: list[tuple[str, dict]] = []
    if name == "auto":
        # A data_dir is a request for its files: without them, digits would stand in for
        # them with no more than a name in summary.md.
        tries = ([("fashion_mnist", {}), ("mnist", {}), ("mnist", {"split": "test"})]
                 if data_dir is not None else [("digits", {})])
    else:
        check(name in jdata.names(), "data.name", name, "auto, " + ", ".join(jdata.names()))
        tries = [(name, {})]
        if name == "mnist" and data_dir:  # the official split, else the 10k test set alone
            tries.append((name, {"split": "test"}))
    last: Exception | None = None
    for dname, opts in tries:
        try:
            ds = jdata.load(dname, key=key, data_dir=data_dir, download=False,
                            n_train=n_train, n_test=n_test, **opts)
        except ValueError as e:  # DataError is a ValueError
            if not isinstance(e, DataNotFoundError):  # a truncated file, too large an n_train...
                raise ConfigError(f"data: could not load {dname!r}: {e}") from None
            last = e  # its files are not there: the next choice
            continue
        check(ds.task == "classification", "data.name", name, "a classification data set")
        return ds
    if name == "auto":
        raise ConfigError(f"data.data_dir: {data_dir!r} holds no Fashion-MNIST or MNIST IDX "
                          "files (data.name=fashion_mnist or mnist says where it looked); "
                          "allowed: a folder holding them, or '' for scikit-learn's digits")
    raise ConfigError(f"data: could not load {name!r}: {last}")


def subset(x: Any, y: Any, n: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``n`` rows of ``(x, y)`` chosen by a keyed permutation, as JAX arrays."""
    idx = np.asarray(jax.random.permutation(key, len(x)))[:n]
    return jnp.asarray(np.asarray(x)[idx]), jnp.asarray(np.asarray(y)[idx])


def init_stacked(configs: list[mlp.MLPConfig], keys: jax.Array) -> tuple[Any, Any]:
    """``mlp.init`` of each config with its key, stacked along a new leading axis.

    The configs may differ in their initializer (and its arguments) but must give params of
    the same shapes, so the stack can be ``vmap``-ed through one training run.
    """
    pairs = [mlp.init(c, k) for c, k in zip(configs, keys, strict=True)]
    stack = lambda *xs: jnp.stack(xs)
    return (jax.tree.map(stack, *[p for p, _ in pairs]),
            jax.tree.map(stack, *[s for _, s in pairs]))


def make_evaluate(config: mlp.MLPConfig) -> Callable[[TrainState, jax.Array, jax.Array], dict]:
    """The jitted evaluation ``(state, x, y) -> {"loss", "accuracy"}`` that :func:`make_run`
    uses after each epoch (eval mode, data loss without the penalty)."""
    return make_eval_fn(mlp.make_loss_fn(config, LOSS), loss_name=LOSS,
                        metrics_fn=classification_metrics)


def make_run(
    config: mlp.MLPConfig,
    make_tx: Callable[[Any], optax.GradientTransformation],
    *,
    batch_size: int,
    epochs: int,
    x: jax.Array,
    y: jax.Array,
    eval_sets: Mapping[str, tuple[jax.Array, jax.Array]],
    drop_remainder: bool = True,
) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """A pure training run ``(params, model_state, key, hparams) -> (state, curves)``.

    Args:
      config: the MLP (its initializer is not used: params come in).
      make_tx: ``hparams -> optax transformation``; called inside the traced run, so
        ``hparams`` may hold traced (vmapped) learning rates or weight decays.
      batch_size: examples per update (``>= len(x)``: full batch).
      epochs: passes over ``(x, y)``.
      x, y: the training set.
      eval_sets: ``name -> (x, y)`` evaluated after every epoch (may be empty).
      drop_remainder: True drops the ``len(x) % batch_size`` rows that fall last in each
        epoch's permutation (a different set each epoch); False trains on them as one
        smaller last batch, so every epoch uses every row once.

    Returns:
      The run (not jitted; wrap it in ``jax.jit(jax.vmap(...))``). See the module doc for
      the curves.
    """
    if epochs < 1:
        raise ValueError(f"make_run: epochs must be >= 1, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"make_run: batch_size must be >= 1, got {batch_size!r}")
    loss_fn = mlp.make_loss_fn(config, LOSS)
    evaluate = make_evaluate(config)

    def run(params: Any, model_state: Any, key: jax.Array, hparams: Any = None):
        tx = make_tx(hparams)
        step = make_train_step(loss_fn, tx)
        epoch = make_train_epoch(step, batch_size, drop_remainder=drop_remainder)
        k_state, k_epochs = jax.random.split(key)
        state = TrainState.create(params=params, tx=tx, key=k_state, model_state=model_state)

        def body(st: TrainState, k: jax.Array):
            st, m = epoch(st, x, y, k)
            out = {"loss": m["loss"]}
            if "learning_rate" in m:
                out["learning_rate"] = m["learning_rate"]
            for name, (xe, ye) in eval_sets.items():
                ev = evaluate(st, xe, ye)
                out[f"{name}_loss"] = ev["loss"]
                out[f"{name}_accuracy"] = ev["accuracy"]
            return st, out

        return jax.lax.scan(body, state, jax.random.split(k_epochs, epochs))

    return run
