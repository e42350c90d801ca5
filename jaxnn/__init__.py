"""jaxnn: a JAX functional training framework for studying why deep networks
train or fail to train.

Subpackages, lowest layer first (a lower layer never imports a higher one):

* math: :mod:`jaxnn.activations`, :mod:`jaxnn.initializers`, :mod:`jaxnn.losses`,
  :mod:`jaxnn.regularizers`
* model: :mod:`jaxnn.layers`, :mod:`jaxnn.mlp`, :mod:`jaxnn.backprop`, :mod:`jaxnn.gradcheck`
* optimisation: :mod:`jaxnn.optim` (optax ``GradientTransformation`` factories and schedules)
* data: :mod:`jaxnn.data`
* training: :mod:`jaxnn.config`, :mod:`jaxnn.train`
* studies: :mod:`jaxnn.studies` (depth study, training-craft experiments)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The submodules and names below are imported on first use (PEP 562), so ``import jaxnn``
# (and the ``jaxnn-train`` console script's launcher) does not import JAX: a Ctrl-C while
# JAX loads is then caught by the launcher (:mod:`jaxnn._launch`) instead of printing a
# traceback. ``jaxnn.mlp``, ``from jaxnn import MLPConfig`` and ``from jaxnn import *``
# work as with eager imports.
_SUBMODULES = frozenset({
    "activations", "backprop", "config", "data", "gradcheck", "initializers", "layers",
    "losses", "mlp", "optim", "regularizers", "studies", "train",
})
_NAMES = {
    "Config": "config", "ConfigError": "config", "check_gradients": "gradcheck",
    "MLPConfig": "mlp", "TrainState": "train", "make_train_step": "train",
    "train_and_evaluate": "train",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from jaxnn import (
        activations,
        backprop,
        config,
        data,
        gradcheck,
        initializers,
        layers,
        losses,
        mlp,
        optim,
        regularizers,
        studies,
        train,
    )
    from jaxnn.config import Config, ConfigError
    from jaxnn.gradcheck import check_gradients
    from jaxnn.mlp import MLPConfig
    from jaxnn.train import TrainState, make_train_step, train_and_evaluate


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxnn.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(f"jaxnn.{_NAMES[name]}"), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "MLPConfig",
    "TrainState",
    "__version__",
    "activations",
    "backprop",
    "check_gradients",
    "config",
    "data",
    "gradcheck",
    "initializers",
    "layers",
    "losses",
    "make_train_step",
    "mlp",
    "optim",
    "regularizers",
    "studies",
    "train",
    "train_and_evaluate",
]
