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
