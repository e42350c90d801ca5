"""Optimization: gradient transformations, named optimizers and learning-rate schedules.

Everything here is an optax citizen: optimizers are :class:`optax.GradientTransformation`
objects built with ``optax.chain`` from the pieces in :mod:`jaxnn.optim.transforms`, and
schedules are ``step -> value`` functions usable as any optax ``learning_rate``.

* :mod:`~jaxnn.optim.transforms`: ``trace`` (momentum), ``scale_by_adagrad``,
  ``scale_by_rms``, ``scale_by_stddev``, ``scale_by_adam`` (Nadam with ``nesterov``),
  ``scale_by_amsgrad``, ``scale_by_adamax``, ``scale_by_adadelta``, ``scale_by_lion``,
  ``add_decayed_weights``, ``scale_by_learning_rate``.
* :mod:`~jaxnn.optim.aliases`: ``sgd``, ``momentum``, ``nesterov``, ``adagrad``,
  ``rmsprop``, ``adam``, ``adamw``, ``nadam``, ``nadamw``, ``adadelta``, ``amsgrad``,
  ``adamax``, ``lion``: optax's names, arguments and defaults, optax's numbers.
* :mod:`~jaxnn.optim.keras`: Keras' arguments, defaults and formulas (``keras.adam``...),
  with a table of how optax, Keras and the textbooks differ.
* :mod:`~jaxnn.optim.schedules`: learning-rate schedules and ``reduce_on_plateau``.

By name (for configs): :func:`get` builds an optimizer from its name, :func:`get_factory`
returns its factory, :func:`names` lists the names; Keras presets are named ``keras.sgd``,
``keras.adagrad``, ``keras.rmsprop``, ``keras.adam``. :func:`current_learning_rate` reads
the rate used by the latest update from any optimizer state.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

import jax
import optax

from jaxnn.optim import aliases, keras, schedules, transforms
from jaxnn.optim.aliases import (
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    amsgrad,
    lion,
    momentum,
    nadam,
    nadamw,
    nesterov,
    rmsprop,
    sgd,
)
from jaxnn.optim.plateau import ReduceLROnPlateauState
from jaxnn.optim.transforms import (
    AddDecayedWeightsState,
    ScalarOrSchedule,
    ScaleByAdaDeltaState,
    ScaleByAdagradState,
    ScaleByAdamaxState,
    ScaleByAdamState,
    ScaleByAmsgradState,
    ScaleByLearningRateState,
    ScaleByLionState,
    ScaleByRmsState,
    ScaleByStddevState,
    Schedule,
    TraceState,
    add_decayed_weights,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_stddev,
    trace,
)

__all__ = [
    # submodules
    "aliases",
    "keras",
    "schedules",
    "transforms",
    # transforms and their states
    "AddDecayedWeightsState",
    "ScaleByAdaDeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByRmsState",
    "ScaleByStddevState",
    "ScalarOrSchedule",
    "Schedule",
    "TraceState",
    "add_decayed_weights",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_rms",
    "scale_by_stddev",
    "trace",
    # optimizers
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "lion",
    "momentum",
    "nadam",
    "nadamw",
    "nesterov",
    "rmsprop",
    "sgd",
    # by name, and introspection
    "current_learning_rate",
    "get",
    "get_factory",
    "names",
]

_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "nadam": nadam,
    "nadamw": nadamw,
    "adadelta": adadelta,
    "amsgrad": amsgrad,
    "adamax": adamax,
    "lion": lion,
    "keras.sgd": keras.sgd,
    "keras.adagrad": keras.adagrad,
    "keras.rmsprop": keras.rmsprop,
    "keras.adam": keras.adam,
}


def names() -> tuple[str, ...]:
    """Names accepted by :func:`get`, in a stable order (optax-style first, then Keras)."""
    return tuple(_OPTIMIZERS)


def get_factory(name: str) -> Callable[..., optax.GradientTransformationExtraArgs]:
    """The optimizer factory registered under ``name`` (e.g. ``jaxnn.optim.adam``).

    Names are case-insensitive and ``-`` reads as ``_``. Useful to wrap a factory, as in
    ``optax.inject_hyperparams(get_factory("adam"))(learning_rate=1e-3)``.

    Raises:
      ValueError: unknown name; the message suggests close matches and lists the names.
    """
    return _lookup(name, "get_factory")


def _lookup(name: Any, fn: str) -> Callable[..., optax.GradientTransformationExtraArgs]:
    """The factory of ``name``; errors name ``fn``, the function the user called."""
    if not isinstance(name, str):
        raise TypeError(f"jaxnn.optim.{fn}: name must be a string, got {name!r}.")
    key = name.strip().lower().replace("-", "_")
    if key not in _OPTIMIZERS:
        close = difflib.get_close_matches(key, _OPTIMIZERS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"jaxnn.optim.{fn}: unknown optimizer {name!r}.{hint} "
            f"Valid names: {', '.join(_OPTIMIZERS)}."
        )
    return _OPTIMIZERS[key]


def get(
    name: str,
    learning_rate: ScalarOrSchedule | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """Builds an optimizer from its name, e.g. ``get("adam", 1e-3, b2=0.99)``.

    Names are case-insensitive and ``-`` reads as ``_``. See :func:`names`.

    Args:
      name: an optimizer name such as ``"adam"`` or ``"keras.rmsprop"``.
      learning_rate: a number >= 0 or a schedule, positionally or by keyword (so a
        mapping of all the arguments, ``get("adam", **{"learning_rate": 1e-3, "b1":
        0.8})``, works too); ``None`` keeps the optimizer's default (an error for the
        optax-style optimizers, which have none, except ``adadelta``).
      **kwargs: the optimizer's other arguments, by the names of its signature.

    Returns:
      The optimizer, an :class:`optax.GradientTransformationExtraArgs`.

    Raises:
      ValueError: unknown name (the message suggests close matches) or a missing
        learning rate.
      TypeError: an argument the optimizer does not take (the message lists those it
        does).
    """
    factory = _lookup(name, "get")
    key = name.strip().lower().replace("-", "_")
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        valid = [p for p in parameters if p != "learning_rate"]
        raise TypeError(
            f"jaxnn.optim.get: optimizer {key!r} takes no argument(s) {unknown}; "
            f"valid: {valid}."
        )
    if learning_rate is None:
        default = parameters["learning_rate"].default
        if default is inspect.Parameter.empty:
            raise ValueError(
                f"jaxnn.optim.get: optimizer {key!r} needs a learning_rate, got None."
            )
        return factory(**kwargs)
    return factory(learning_rate, **kwargs)


def _inject_types() -> tuple[type, ...]:
    types = [optax.InjectHyperparamsState]
    stateful = getattr(optax, "InjectStatefulHyperparamsState", None)
    if stateful is not None and stateful not in types:
        types.append(stateful)
    return tuple(types)


def current_learning_rate(opt_state: Any) -> jax.Array | None:
    """The learning rate used by the latest update, read from an optimizer state.

    Searches ``opt_state`` (any nesting of ``optax.chain``, ``MultiSteps``, ``masked``,
    ``partition``, ``inject_hyperparams``... states) depth-first for a
    :class:`~jaxnn.optim.transforms.ScaleByLearningRateState` (which every jaxnn optimizer
    ends with) or an ``optax.inject_hyperparams`` state with a ``"learning_rate"``
    hyperparameter, and returns the first one found (inside an ``inject_hyperparams``
    state, a jaxnn state it wraps comes first: it records the rate actually used, e.g.
    after Keras' legacy ``decay``, where the hyperparameter is the base rate), times the
    ``scale`` of every
    reduce-on-plateau state in ``opt_state`` (jaxnn's or ``optax.contrib``'s: chained
    after the optimizer, it scales the updates, so the rate in effect is the product).
    Before any update it is the rate the first update will use. With several learning
    rates (e.g. ``optax.partition`` over parameter groups) the first in tree order is
    returned, and a plateau scale of any group multiplies it; search the sub-states for
    the others.

    Args:
      opt_state: an optimizer state.

    Returns:
      The learning rate as a scalar array, or ``None`` if the state records none (e.g.
      a plain ``optax.adam`` state).
    """
    inject_types = _inject_types()
    plateau_types = (ReduceLROnPlateauState, optax.contrib.ReduceLROnPlateauState)
    stop = (ScaleByLearningRateState, *plateau_types, *inject_types)
    found: dict[str, Any] = {"lr": None, "scale": None}

    def visit(tree: Any) -> None:
        # Depth-first in tree order. An inject_hyperparams state is searched inside first:
        # its hyperparameter is the base rate, while a jaxnn state inside records the rate
        # actually used (after Keras' legacy decay, say), and a plateau state inside scales it.
        for node in jax.tree_util.tree_leaves(tree, is_leaf=lambda n: isinstance(n, stop)):
            if isinstance(node, plateau_types):
                scale = found["scale"]
                found["scale"] = node.scale if scale is None else scale * node.scale
            elif isinstance(node, ScaleByLearningRateState):
                if found["lr"] is None:
                    found["lr"] = node.learning_rate
            elif isinstance(node, inject_types):
                visit(node.inner_state)
                hyperparams = node.hyperparams
                if (found["lr"] is None and isinstance(hyperparams, dict)
                        and "learning_rate" in hyperparams):
                    found["lr"] = hyperparams["learning_rate"]

    visit(opt_state)
    lr, scale = found["lr"], found["scale"]
    if lr is None or scale is None:
        return lr
    return lr * scale
