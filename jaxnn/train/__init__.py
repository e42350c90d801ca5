"""Training: immutable state, compiled steps and epochs, the fit loop, checkpoints.

* :class:`TrainState` — params, optimizer state, batch-norm statistics, step, PRNG key.
* :func:`make_train_step` — ``(state, x, y) -> (state, metrics)`` with ``grad="autodiff"``
  or ``grad="manual"`` (the hand-written backprop), usable with any params pytree, loss and
  optax transformation.
* :func:`make_train_epoch` — one epoch fused with ``lax.scan`` (keyed shuffle inside).
* :func:`train_and_evaluate` — what ``scripts/train.py`` calls.
* :mod:`jaxnn.train.distributed` — multi-process (multi-host) set-up from the config's
  ``distributed`` section or the ``JAX_*`` environment variables.
"""

from jaxnn.train.checkpoint import (
    CheckpointError,
    CheckpointManager,
    read_checkpoint,
    write_checkpoint,
)
from jaxnn.train.early_stopping import EarlyStopping
from jaxnn.train.loop import (
    DivergenceError,
    Experiment,
    History,
    build_experiment,
    build_schedule,
    mlp_config,
    train_and_evaluate,
)
from jaxnn.train.state import TrainState
from jaxnn.train.step import (
    classification_metrics,
    make_eval_fn,
    make_train_epoch,
    make_train_step,
    metrics_fn_for_loss,
    regression_metrics,
)

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "DivergenceError",
    "EarlyStopping",
    "Experiment",
    "History",
    "TrainState",
    "build_experiment",
    "build_schedule",
    "classification_metrics",
    "make_eval_fn",
    "make_train_epoch",
    "make_train_step",
    "metrics_fn_for_loss",
    "mlp_config",
    "read_checkpoint",
    "regression_metrics",
    "train_and_evaluate",
    "write_checkpoint",
]
