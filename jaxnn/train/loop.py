"""The fit loop: ``train_and_evaluate(config, workdir) -> History``.

What a run does, in order:

1. validate the config and build everything that can fail on bad input (data, model,
   optimizer, schedule) *before* compiling anything;
2. compile one epoch (``lax.scan`` over batches, keyed shuffle inside) and one evaluation;
3. for each epoch: train, evaluate on the validation and test splits, append a line to
   ``metrics.jsonl`` / ``metrics.csv``, update early stopping and reduce-on-plateau, and
   write an atomic checkpoint (the last ``keep_checkpoints`` plus ``best.jaxnn``);
4. at the end: restore the best parameters when early stopping asks for it, write
   ``params.msgpack``, ``history.json`` and the PNG curves.

A run directory holds ``config.yaml`` (the resolved config), the logs, ``checkpoints/``
and the plots. ``resume=True`` continues from the newest readable checkpoint and, because
every random number is derived from the seed, the epoch and the step, ends with exactly
the parameters an uninterrupted run would have (bit-identical on CPU).

Multi-process (multi-host) runs: with a ``distributed`` section (or its environment
variables, see :mod:`jaxnn.train.distributed`) every process calls
``train_and_evaluate`` with the same config and workdir; ``jax.distributed.initialize``
runs first, the mesh spans every process's devices, and only process 0 writes the run
directory. ``resume=True`` reads the checkpoint on every process, so the workdir must be
the same path on a file system all processes share.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import os
import pathlib
import re
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import backprop, mlp, optim
from jaxnn import config as config_lib
from jaxnn import data as data_lib
from jaxnn._atomic import remove_temporaries, set_aside, write_bytes, write_text
from jaxnn._memory import device_memory_limit, tree_bytes
from jaxnn.config import Config, ConfigError
from jaxnn.optim import schedules as schedules_lib
from jaxnn.train import distributed as distributed_lib
from jaxnn.train.checkpoint import (
    CheckpointError,
    CheckpointManager,
    read_checkpoint,
)
from jaxnn.train.early_stopping import EarlyStopping
from jaxnn.train.metrics_log import Mark, MetricsLog, read_marked_rows
from jaxnn.train.plots import FIGURES
from jaxnn.train.state import TrainState
from jaxnn.train.step import (
    make_eval_fn,
    make_train_epoch,
    make_train_step,
    metrics_fn_for_loss,
)

__all__ = [
    "DivergenceError",
    "Experiment",
    "History",
    "build_experiment",
    "mlp_config",
    "build_schedule",
    "train_and_evaluate",
]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient."""


@dataclasses.dataclass(frozen=True)
class History:
    """What a run measured.

    Attributes:
      rows: one dict of metrics per completed epoch (``epoch`` counts from 1); they start
        after epoch 1 when a resume found ``metrics.jsonl`` changed (the rows logged up to
        its checkpoint were lost; the run warned).
      final: the metrics of the returned parameters on validation/test splits.
      best_epoch: the epoch whose parameters were best by the monitored metric (or -1).
      stopped_early: whether early stopping ended the run.
      workdir: the run directory.
    """

    rows: tuple[dict, ...]
    final: dict
    best_epoch: int
    stopped_early: bool
    workdir: str

    def metric(self, name: str) -> list[float]:
        """The per-epoch values of one metric (``nan`` where it was not logged)."""
        return [r.get(name, float("nan")) for r in self.rows]


@dataclasses.dataclass
class Experiment:
    """Everything built from a config before any compilation (see :func:`build_experiment`)."""

    config: Config
    dataset: Any
    mlp_config: mlp.MLPConfig
    tx: optax.GradientTransformation
    loss_fn: Any
    value_and_grad_fn: Any
    steps_per_epoch: int
    batch_size: int


# ----------------------------------------------------------------------------- building


def _load_dataset(cfg: Config) -> Any:
    d = cfg.data
    try:
        return data_lib.load(
            d.name,
            key=jax.random.PRNGKey(cfg.training.seed + 7919),
            data_dir=d.data_dir,
            download=d.download,
            normalization=d.normalization,
            n_train=d.n_train,
            n_test=d.n_test,
            validation_fraction=d.validation_fraction,
            **d.options,
        )
    except data_lib.DataError:
        raise
    except (TypeError, ValueError) as e:  # an unknown loader option or a bad option value
        raise ConfigError(f"data: {e}") from None


def _output_size(dataset: Any, loss: str) -> int:
    if loss == "sigmoid_binary_cross_entropy":
        return 1  # one logit per example (_check_loss_matches: two classes)
    if dataset.task == "classification":
        return int(dataset.num_classes)
    y = np.asarray(dataset.y_train)
    return 1 if y.ndim == 1 else int(y.shape[1])


def _check_loss_matches(cfg: Config, dataset: Any) -> None:
    loss = cfg.training.loss
    if dataset.task == "classification" and loss == "mse":
        raise ConfigError(
            f"training.loss: 'mse' needs a regression data set, but {dataset.name!r} is a "
            "classification set; use 'softmax_cross_entropy_with_integer_labels'"
        )
    if dataset.task == "regression" and loss != "mse":
        raise ConfigError(
            f"training.loss: {loss!r} needs class labels, but {dataset.name!r} is a regression "
            "set; use 'mse'"
        )
    if loss == "sigmoid_binary_cross_entropy" and dataset.num_classes != 2:
        raise ConfigError(
            f"training.loss: 'sigmoid_binary_cross_entropy' needs two classes, but "
            f"{dataset.name!r} has {dataset.num_classes}; use "
            "'softmax_cross_entropy_with_integer_labels'"
        )
    if loss == "softmax_cross_entropy":
        raise ConfigError(
            "training.loss: 'softmax_cross_entropy' expects one-hot labels; data sets give "
            "integer labels: use 'softmax_cross_entropy_with_integer_labels'"
        )


_LR_ARGS = ("peak_value", "base_lr", "init_value", "value")
_STEP_ARGS = ("decay_steps", "transition_steps")


def build_schedule(cfg: Config, steps_per_epoch: int) -> Any:
    """The learning rate: a float, or a schedule built from ``cfg.schedule``."""
    s = cfg.schedule
    lr = cfg.optimizer.learning_rate
    if s.name in ("constant", "constant_schedule") and not s.options and not s.epoch_options:
        return lr
    factory = schedules_lib.get_factory(s.name) if hasattr(schedules_lib, "get_factory") else None
    opts = dict(s.options)
    for k, v in s.epoch_options.items():
        opts[k] = int(round(float(v) * steps_per_epoch))
        if opts[k] < 1:  # every epoch option is > 0: rounding must not turn it into 0 steps
            raise ConfigError(
                f"schedule.epoch_options.{k}: got {v!r} epochs, less than one step at "
                f"{steps_per_epoch} steps per epoch; expected >= {1 / steps_per_epoch:.3g} "
                "(one step)"
            )
    params = {}
    if factory is not None:
        params = inspect.signature(factory).parameters
    else:  # pragma: no cover - depends on the schedules module
        try:
            params = inspect.signature(getattr(schedules_lib, s.name)).parameters
        except (AttributeError, TypeError, ValueError):
            params = {}
    for name in _LR_ARGS:
        if name in params:
            opts.setdefault(name, lr)
            break
    for name in _lengths_from_epochs(s, params):
        opts[name] = steps_per_epoch * cfg.training.epochs
    try:
        return schedules_lib.get(s.name, **opts)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"schedule: {e}") from None


def _lengths_from_epochs(s: config_lib.ScheduleConfig, params: Mapping[str, Any]
                         ) -> list[str]:
    """The length arguments (:data:`_STEP_ARGS`) of the schedule ``s`` that the config
    leaves to follow the run (its steps, ``steps_per_epoch * training.epochs``): required by
    the factory whose ``params`` these are, given neither in steps nor in epochs."""
    return [n for n in _STEP_ARGS if n in params and n not in s.options
            and n not in s.epoch_options and params[n].default is inspect.Parameter.empty]


def _schedule_stretch(cfg: Config, saved: Mapping[str, Any], steps_per_epoch: int, step: int
                      ) -> str | None:
    """The warning for a resume that changes ``training.epochs`` under a schedule whose
    length follows it (a ``decay_steps`` left to default to the run's steps): the schedule
    is stretched or shrunk from the resumed step on, so the learning rate jumps; None when
    the learning rate at ``step`` stays the same. ``saved``: the run's config (as saved in
    its checkpoint)."""
    saved_epochs = saved.get("training", {}).get("epochs")
    if saved_epochs is None or int(saved_epochs) == cfg.training.epochs:
        return None
    saved_epochs = int(saved_epochs)
    s = cfg.schedule
    if s.name in ("constant", "constant_schedule") and not s.options and not s.epoch_options:
        return None
    params = inspect.signature(schedules_lib.get_factory(s.name)).parameters
    name = next(iter(_lengths_from_epochs(s, params)), None)
    run_schedule = saved.get("schedule", {})
    if (name is None or run_schedule.get("name") != s.name
            or name in run_schedule.get("options", {})
            or name in run_schedule.get("epoch_options", {})):
        # No length follows the epochs now, or none did in the run's own schedule (another
        # schedule, or one given this length at this resume): a jump is the change asked
        # for, and the "run's own schedule" offered below would not be the run's (a
        # constant rate resumed under a cosine was told to set decay_steps to the old
        # length: a rate of 0 from there on).
        return None
    old_cfg = config_lib.replace(cfg, "training.epochs", saved_epochs)
    new = build_schedule(cfg, steps_per_epoch)
    try:
        old = build_schedule(old_cfg, steps_per_epoch)
    except ConfigError:
        # This schedule cannot be as long as the run was (a warm-up lengthened past its end
        # at this resume): no run had it, so there is no jump to warn of, and the valid
        # resume must not stop on the lengths of one that never was.
        return None
    new_lr, old_lr = float(new(step)), float(old(step))
    if new_lr == old_lr:
        return None
    try:  # the rate the run itself had there (this resume may change the rate's settings)
        run_lr = float(build_schedule(config_lib.from_dict(saved), steps_per_epoch)(step))
    except (ConfigError, TypeError, ValueError):
        run_lr = old_lr
    if run_lr == old_lr:
        jump = f"jumps from {old_lr:.4g} to {new_lr:.4g}"
    else:  # "from" the old_lr, which the run never had, read as the run's own rate
        jump = (f"is {new_lr:.4g} instead of {old_lr:.4g} (the run itself was at {run_lr:.4g}: "
                f"this resume changes the learning rate too)")
    return (f"warning: the {s.name} schedule's {name} follows training.epochs, which this "
            f"resume changes from {saved_epochs} to {cfg.training.epochs}, so the learning "
            f"rate at step {step} {jump}; to continue the run's own schedule, resume with "
            f"--set schedule.epoch_options.{name}={saved_epochs}")


def mlp_config(model: config_lib.ModelConfig, layer_sizes: Sequence[int]) -> mlp.MLPConfig:
    """The :class:`jaxnn.mlp.MLPConfig` of a config's ``model`` section with these layer sizes.

    Raises:
      ConfigError: a field the model rejects, as ``model: ...``.
    """
    try:
        return mlp.MLPConfig(
            layer_sizes=tuple(int(v) for v in layer_sizes),
            hidden_activation=model.hidden_activation,
            output_activation=model.output_activation,
            activation_kwargs=tuple(sorted(model.activation_kwargs.items())),
            initializer=model.initializer,
            initializer_kwargs=tuple(sorted(model.initializer_kwargs.items())),
            use_bias=model.use_bias,
            dropout_rate=model.dropout_rate,
            dropout_inverted=model.dropout_inverted,
            batch_norm=model.batch_norm,
            batch_norm_position=model.batch_norm_position,
            batch_norm_momentum=model.batch_norm_momentum,
            maxout_pieces=model.maxout_pieces,
            l1=model.l1,
            l2=model.l2,
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None


#: The most optimizer updates a run may ask for: ``TrainState.step`` and optax's counts
#: are int32 (past it the step would wrap negative and step schedules restart).
_MAX_UPDATES = 2**31 - 1


def _check_batch_norm_batches(cfg: Config, n: int, bs: int) -> None:
    """Batch norm needs two rows or more in every training batch (as PyTorch insists).

    Over one row the batch variance is 0: every normalized unit is 0, the layer's output is
    ``beta`` whatever its input, no gradient reaches the layers below, and the running
    variance is pulled towards 0, so evaluation later divides by ~sqrt(eps). Nothing would
    fail; the model would just be wrong. (Statistics are taken over the global batch, so
    this holds for any number of devices.)
    """
    if not cfg.model.batch_norm:
        return
    if bs == 1:
        asked = cfg.training.batch_size
        why = (f"got {asked}" if asked == 1 else
               f"got {asked}, clamped to the {n} training row")
        raise ConfigError(
            f"training.batch_size: {why}, but model.batch_norm needs at least 2 rows per "
            "training batch (over one row its variance is 0 and the layer outputs beta); "
            "use a batch size >= 2, or model.batch_norm: false"
        )
    if not cfg.training.drop_remainder and n % bs == 1:
        raise ConfigError(
            f"training.drop_remainder: false makes a last batch of the 1 row left over from "
            f"{n} training rows in batches of {bs}, and model.batch_norm needs at least 2 "
            f"rows per training batch; use drop_remainder: true, or a batch size that "
            f"leaves 0 or >= 2 rows over"
        )


def build_experiment(cfg: Config) -> Experiment:
    """Build data, model, optimizer and gradient functions; fail fast on bad input."""
    dataset = _load_dataset(cfg)
    _check_loss_matches(cfg, dataset)
    x_train = dataset.x_train
    n = int(x_train.shape[0])
    bs = min(cfg.training.batch_size, n)
    steps = n // bs if cfg.training.drop_remainder else -(-n // bs)
    if steps * cfg.training.epochs > _MAX_UPDATES:  # the int32 step counter would wrap
        raise ConfigError(
            f"training.epochs: got {cfg.training.epochs}, which at {steps} "
            f"step{'' if steps == 1 else 's'} per epoch "
            f"is more than 2**31 - 1 optimizer updates (the int32 step count); expected at "
            f"most {_MAX_UPDATES // steps} epochs")
    m = cfg.model
    _check_batch_norm_batches(cfg, n, bs)
    n_in = int(np.prod(x_train.shape[1:]))
    sizes = (n_in, *m.hidden_sizes, _output_size(dataset, cfg.training.loss))
    mcfg = mlp_config(m, sizes)
    lr = build_schedule(cfg, steps)
    o = cfg.optimizer
    try:
        tx = optim.get(o.name, lr, **o.options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer: {e}") from None
    if o.clip_global_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(o.clip_global_norm), tx)
    params = jax.eval_shape(lambda k: mlp.init(mcfg, k)[0], jax.ShapeDtypeStruct((2,), jnp.uint32))
    try:  # the checks an optimizer's init makes on the parameters (a b2 that rounds to 1
        jax.eval_shape(tx.init, params)  # in their float32 under x64), before training
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer: {e}") from None
    try:
        # The smoothed objective trains; evaluation (make_eval_fn, by loss name) reports
        # the unsmoothed cross-entropy as val_loss / test_loss.
        smoothing = cfg.training.label_smoothing
        loss_fn = mlp.make_loss_fn(mcfg, cfg.training.loss, label_smoothing=smoothing)
        vg = (backprop.value_and_grad(mcfg, cfg.training.loss, label_smoothing=smoothing)
              if cfg.training.grad == "manual" else None)
    except (TypeError, ValueError) as e:  # e.g. a softmax output with a cross-entropy loss
        raise ConfigError(f"model: {e}") from None
    _check_memory(cfg, mcfg, tx, bs, dataset)
    return Experiment(cfg, dataset, mcfg, tx, loss_fn, vg, steps, bs)


def training_bytes(mcfg: Any, tx: optax.GradientTransformation, batch_size: int,
                   eval_batch: int = 0, data_bytes: int = 0) -> int:
    """An estimate, from shapes alone (nothing is allocated), of the device memory training
    needs: the float32 params three times (weights, gradients, the update), the optimizer's
    state, the model state (batch-norm statistics) twice, the data kept on the device
    (``data_bytes``), and the larger of one training batch's activations with their
    gradients and one evaluation chunk's activations (a forward pass: no gradients)."""
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    params, model_state = jax.eval_shape(lambda k: mlp.init(mcfg, k), key)
    opt_state = jax.eval_shape(tx.init, params)
    units = 4 * sum(mcfg.layer_sizes)
    activations = max(2 * units * batch_size, units * eval_batch)
    return (3 * tree_bytes(params) + tree_bytes(opt_state) + 2 * tree_bytes(model_state)
            + data_bytes + activations)


def _data_bytes(dataset: Any) -> int:
    """The bytes of the splits that training keeps on each device."""
    names = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    return sum(int(a.nbytes) for a in (getattr(dataset, n, None) for n in names)
               if a is not None)


def _device_count() -> int:
    return len(jax.devices())


def _requested_devices(cfg: Config, available: int) -> int:
    """``training.devices``, ``0`` meaning all ``available`` ones (not checked against them)."""
    return cfg.training.devices or available


def _check_memory(cfg: Config, mcfg: Any, tx: optax.GradientTransformation,
                  batch_size: int, dataset: Any) -> None:
    """Refuse a model that cannot fit in the device's memory before anything is allocated:
    on a CPU, an allocation past the RAM can get the process killed by the system without
    a message (as the depth study's did) instead of raising out of memory. Under data
    parallelism (``training.devices``) each device holds its share of a training batch's
    and an evaluation chunk's rows, and all of the data and weights."""
    limit = device_memory_limit()
    if limit is None:
        return
    # The evaluation takes a split in chunks of at most its own rows (make_eval_fn): a huge
    # eval_batch_size, meaning "each split in one pass", is not that many rows.
    eval_rows = max(int(np.shape(x)[0]) for x in (dataset.x_test, getattr(dataset, "x_val", None))
                    if x is not None)
    eval_batch = min(cfg.training.eval_batch_size, eval_rows)
    # More devices than exist are refused later (_mesh_shardings), with their own message.
    available = _device_count()
    shards = max(1, min(_requested_devices(cfg, available), available))
    batch_size, eval_batch = -(-batch_size // shards), -(-eval_batch // shards)
    data = _data_bytes(dataset)
    need = training_bytes(mcfg, tx, batch_size, eval_batch, data)
    if need <= limit:
        return
    sizes = list(mcfg.layer_sizes)
    model = training_bytes(mcfg, tx, 0)
    if model > limit:
        raise ConfigError(
            f"model.hidden_sizes: layer sizes {sizes} with optimizer "
            f"{cfg.optimizer.name!r} need ~{model / 2**30:.3g} GiB for the weights, "
            f"gradients, update and optimizer state, more than the device's "
            f"{limit / 2**30:.3g} GiB; use smaller model.hidden_sizes")
    if training_bytes(mcfg, tx, 0, 0, data) > limit:
        raise ConfigError(
            f"data.n_train: the {data / 2**30:.3g} GiB of data kept on the device and the "
            f"~{model / 2**30:.3g} GiB of weights, gradients, update and optimizer state of "
            f"layer sizes {sizes} need more than the device's {limit / 2**30:.3g} GiB; use "
            f"fewer rows (data.n_train, data.n_test) or smaller model.hidden_sizes")
    train_side = 2 * batch_size >= eval_batch
    key = "training.batch_size" if train_side else "training.eval_batch_size"
    batch = batch_size if train_side else eval_batch
    per = f" per device (on {shards} devices)" if shards > 1 else ""
    raise ConfigError(
        f"{key}: layer sizes {sizes} with optimizer {cfg.optimizer.name!r} and batches of "
        f"{batch} rows{per} need ~{need / 2**30:.3g} GiB for the weights, gradients, update, "
        f"optimizer state, the data kept on the device and one batch's activations, more "
        f"than the device's {limit / 2**30:.3g} GiB; use a smaller {key} (or "
        f"model.hidden_sizes)")


def _logged_metric_names(cfg: Config, dataset: Any) -> list[str]:
    base = ["loss", "grad_norm", "learning_rate"]
    if cfg.training.loss != "mse":
        base.append("accuracy")
    names = list(base)
    evals = ["loss"] + (["accuracy"] if "accuracy" in base else [])
    if getattr(dataset, "x_val", None) is not None:
        names += [f"val_{k}" for k in evals]
    names += [f"test_{k}" for k in evals]
    return names


def _check_monitors(cfg: Config, dataset: Any) -> None:
    logged = _logged_metric_names(cfg, dataset)
    for key, section in (
        ("training.early_stopping.monitor", cfg.training.early_stopping),
        ("training.reduce_on_plateau.monitor", cfg.training.reduce_on_plateau),
    ):
        if section.enabled and section.monitor not in logged:
            # The validation hint only where no split is made: 'val_los' is a typo there.
            close = difflib.get_close_matches(section.monitor, logged, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if section.monitor.startswith("val_") and getattr(dataset, "x_val", None) is None:
                hint = " (set data.validation_fraction > 0 to log validation metrics)"
            raise ConfigError(
                f"{key}: {section.monitor!r} is not a logged metric{hint}; "
                f"logged: {', '.join(logged)}"
            )


# ----------------------------------------------------------------------------- devices

# What may differ between the processes of one run: where each host finds its data, and
# what process 0 alone prints or writes. The rest must match, or their collectives do not.
_PER_PROCESS = ("distributed.", "data.data_dir", "data.download", "logging.progress",
                "logging.print_every", "logging.plots", "logging.tensorboard")


def _launch_settings(cfg: Config, resume: bool) -> dict[str, Any]:
    flat = _flatten(config_lib.to_dict(cfg))
    same = {k: v for k, v in flat.items() if not k.startswith(_PER_PROCESS)}
    # The process count too: JAX joins a process asking for more to process 0's count.
    count = distributed_lib.resolve(cfg.distributed).num_processes
    return {"--resume": resume, "distributed.num_processes": count, **same}



def _mesh_shardings(cfg: Config, batch_size: int, multi_process: bool = False,
                    n_rows: int | None = None):
    devices = jax.devices()
    n = _requested_devices(cfg, len(devices))
    if multi_process and n != len(devices):
        # A mesh must reach every process, or some would have no share of the batch.
        raise ConfigError(
            f"training.devices: got {n}, but a run of {jax.process_count()} processes spans "
            f"all {len(devices)} devices; use 0 (all) or {len(devices)}"
        )
    if n > len(devices):
        raise ConfigError(
            f"training.devices: got {n}, but only {len(devices)} device(s) are visible "
            f"({devices[0].platform})"
        )
    if n == 1 and not multi_process:
        return None, None
    if batch_size % n:
        asked = cfg.training.batch_size
        if asked != batch_size:  # clamped to the number of training rows
            raise ConfigError(
                f"training.batch_size: {asked} is larger than the {batch_size} training rows, "
                f"and a full batch of {batch_size} is not divisible by the {n} devices; use a "
                f"batch size <= {batch_size} that is a multiple of the device count"
            )
        raise ConfigError(
            f"training.batch_size: {batch_size} is not divisible by the {n} devices; "
            "use a multiple of the device count"
        )
    rest = n_rows % batch_size if n_rows is not None and not cfg.training.drop_remainder else 0
    if rest % n:
        raise ConfigError(
            f"training.drop_remainder: false makes a last batch of the {rest} rows left over "
            f"from {n_rows} training rows in batches of {batch_size}, which is not divisible "
            f"by the {n} devices; use drop_remainder: true, or a batch size that leaves a "
            f"multiple of {n} rows (or none)"
        )
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices[:n]), ("data",))
    return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))


# ----------------------------------------------------------------------------- logging


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _epoch_line(row: dict, epochs: int) -> str:
    keys = ["loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
            "learning_rate"]
    parts = [f"epoch {row['epoch']}/{epochs}"]
    parts += [f"{k} {_fmt(row[k])}" for k in keys if k in row]
    parts.append(f"({row['time_s']:.2f}s)")
    return "  ".join(parts)


#: The files of a run directory written through jaxnn._atomic (besides the plots' *.png).
_RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "history.json", "params.msgpack")


def _tensorboard_add(tb: Any, row: dict) -> None:
    for k, v in row.items():
        if k not in ("epoch", "step"):
            tb.add_scalar(k, v, global_step=row["step"])


def _tensorboard_from(writer_cls: Any, folder: pathlib.Path, rows: list[dict]) -> Any:
    """A TensorBoard writer on ``folder`` whose events are exactly ``rows`` (those of the
    checkpoint a run resumes from, or none): the event files of earlier starts are removed,
    as the logs are rewritten, so that epochs logged past the checkpoint (and trained again)
    do not show twice, and a run that turns TensorBoard on at a resume shows every epoch."""
    if folder.is_dir():
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink(missing_ok=True)
    tb = writer_cls(str(folder))
    for row in rows:
        _tensorboard_add(tb, row)
    tb.flush()
    return tb


def _set_aside_foreign_files(workdir: pathlib.Path, config_text: str) -> None:
    """Before a new run writes ``config.yaml`` and its logs into ``workdir`` (which holds no
    checkpoint and no history.json: checked before), set aside the ones already there unless
    they are a killed run's of this very config (its ``config.yaml`` byte for byte): a user's
    own ``config.yaml`` (``--config runs/x/config.yaml --workdir runs/x``, with comments) or
    another config's logs were overwritten without a word."""
    own = workdir / "config.yaml"
    try:
        if own.is_file() and own.read_text() == config_text:  # as write_text encodes it
            return
    except (OSError, UnicodeDecodeError):  # unreadable or not text: not this run's
        pass
    # The final parameters and the curves too: a run writes them at its end, over what a
    # user kept there (a "never overwrites what it did not write" the README promises).
    mine = (own, workdir / "metrics.jsonl", workdir / "metrics.csv", workdir / "tensorboard",
            workdir / "params.msgpack", *(workdir / f"{name}.png" for name in FIGURES))
    moved = [f"{m.name} -> {n.name}" for m in mine if (n := set_aside(m)) is not None]
    if moved:
        print(f"warning: {str(workdir)!r} held files this run writes, not from a run of this "
              f"config; set aside: {', '.join(moved)}", file=sys.stderr)


def _resumed_rows(meta: dict, workdir: pathlib.Path, main: bool, start_epoch: int
                  ) -> tuple[list[dict], bytes | None]:
    """The logged rows up to a checkpoint, and their bytes in metrics.jsonl when read there.

    Checkpoints of a jaxnn before metrics_log (2026-12-03) carry the rows; later ones a
    mark of the log.
    """
    if "rows" in meta:
        return list(meta["rows"]), None
    try:
        return read_marked_rows(workdir, Mark.from_dict(meta.get("log")))
    except ValueError as e:
        if main:
            # TensorBoard's events are rewritten from the rows: set aside with the logs
            moved = [m.name for m in map(set_aside, (workdir / "metrics.jsonl",
                                                     workdir / "metrics.csv",
                                                     workdir / "tensorboard")) if m]
            kept = f" (set aside as {', '.join(moved)})" if moved else ""
            print(f"warning: the logged epochs up to the checkpoint (epoch {start_epoch}) are "
                  f"lost: {e}{kept}; training resumes exactly, and the logs, history and "
                  f"plots start at epoch {start_epoch + 1}", file=sys.stderr)
        return [], None


def _to_float(v: Any) -> float:
    return float(np.asarray(v))


# What a resumed run must keep: its data, model, seed, batch size, loss, optimizer and the
# metrics its best epoch and its plateau state are judged by (a different one would silently
# continue another experiment: adam's moments read as adamax's, a best val_loss compared
# with a val_accuracy). The learning rate, schedule, optimizer options, epochs, patience,
# logging... may change.
_FIXED_ON_RESUME = (
    "data.", "model.", "training.seed", "training.batch_size", "training.drop_remainder",
    "training.loss", "training.label_smoothing", "optimizer.name",
    "training.early_stopping.monitor", "training.early_stopping.mode",
    "training.reduce_on_plateau.monitor", "training.reduce_on_plateau.mode",
)
# Where the data files are found, not which data (downloads are verified by their sha256).
_FREE_ON_RESUME = ("data.data_dir", "data.download")
# Settings of a section that is off are not used: fixed only while the run and this
# config both turn it on.
_UNUSED_WHEN_OFF = {"training.reduce_on_plateau.": "training.reduce_on_plateau.enabled"}
# What shapes the saved optimizer and plateau state: a checkpoint only restores into the
# same shape, so when none fits, a change of one of these is what gets named.
_STATE_ON_RESUME = (
    "optimizer.name", "optimizer.options", "optimizer.clip_global_norm",
    "training.reduce_on_plateau.enabled",
)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _in_use(key: str, old: dict, new: dict) -> bool:
    for prefix, switch in _UNUSED_WHEN_OFF.items():
        if key.startswith(prefix) and key != switch:
            return bool(old.get(switch)) and bool(new.get(switch))
    return True


_ES_MONITOR, _ES_MODE = "training.early_stopping.monitor", "training.early_stopping.mode"


def _watched(flat: dict[str, Any], logged: Sequence[str]) -> dict[str, Any]:
    # The loop watches `loss` (min) in place of a monitor that is not logged (allowed while
    # early stopping is off): the best epoch and the patience count were of that metric.
    if flat.get(_ES_MONITOR) in logged:
        return flat
    return {**flat, _ES_MONITOR: "loss", _ES_MODE: "min"}


def _check_resume_config(saved: dict, now: dict, fixed: tuple[str, ...] = _FIXED_ON_RESUME,
                         kept: str = "its data, model, seed, batch size, loss, optimizer and "
                                     "the metrics early stopping and reduce-on-plateau watch",
                         logged: Sequence[str] | None = None) -> None:
    """Refuse to resume a run as a different experiment (see ``_FIXED_ON_RESUME``).

    ``logged``: the run's logged metric names; an early-stopping monitor that is not one of
    them is compared as the ``loss`` the loop watched instead.
    """
    # A field added after the run was saved holds its default there (what the run used).
    old = {**_flatten(config_lib.to_dict(Config())), **_flatten(saved)}
    new = _flatten(now)
    if logged is not None:
        old, new = _watched(old, logged), _watched(new, logged)
    changed = [k for k in sorted(old.keys() | new.keys())
               if old.get(k) != new.get(k) and k.startswith(fixed)
               and not k.startswith(_FREE_ON_RESUME) and _in_use(k, old, new)]
    if changed:
        first = changed[0]
        more = f" (also {', '.join(changed[1:4])}{'...' if len(changed) > 4 else ''})" \
            if len(changed) > 1 else ""
        raise ConfigError(
            f"--resume: the run was made with {first}={old.get(first)!r}, this config has "
            f"{new.get(first)!r}{more}; a resumed run keeps {kept}: drop those --set, or "
            "start a new --workdir"
        )


def _explain_failed_resume(error: CheckpointError, workdir: pathlib.Path, now: dict,
                           numbered: bool, logged: Sequence[str] | None = None
                           ) -> CheckpointError:
    """No checkpoint could be restored: read the run's own config.yaml once and raise what
    explains it (a setting that changed the state's shape), else return the error to raise
    (saying so when the run was made with ``checkpoint_every: 0``)."""
    try:
        saved = config_lib.read_yaml(workdir / "config.yaml")
    except ConfigError:
        return error
    _check_resume_config(saved, now, logged=logged)
    _check_resume_config(
        saved, now, _STATE_ON_RESUME,
        "the shape of its optimizer state (its optimizer, gradient clipping on or off, "
        "reduce-on-plateau on or off; learning rates and schedules may change)",
    )
    if not numbered and _flatten(saved).get("training.checkpoint_every") == 0:
        return CheckpointError(
            f"{error}; the run in {str(workdir)!r} was made with training.checkpoint_every=0, "
            "which writes no checkpoints: there is nothing to resume; start a new --workdir"
        )
    return error


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


# ----------------------------------------------------------------------------- the loop


def _read_best(ckpts: CheckpointManager, target: Any, best_epoch: int, warn: bool = True
               ) -> Any:
    """The best epoch's saved state for ``restore_best`` after a resume: ``best.jaxnn``, or
    else the numbered checkpoint of that epoch when one is kept (``best.jaxnn`` corrupt, or
    rewritten by a later epoch of a run that crashed); None, with one warning line, when
    neither holds it (the last epoch's parameters are kept). ``warn``: print the warnings
    (process 0 only; every process reads the same files)."""
    problems = []
    paths = [ckpts.best_path] + ([ckpts.path(best_epoch)] if best_epoch >= 0 else [])
    for path in paths:
        if not path.exists():
            continue
        try:
            tree, meta = read_checkpoint(path, target)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        if meta.get("epoch") == best_epoch:
            if problems and warn:
                print(f"warning: {'; '.join(problems)}; restored the best epoch from {path}",
                      file=sys.stderr)
            return tree["state"]
        problems.append(f"{path} holds epoch {meta.get('epoch')}, not the best epoch "
                        f"{best_epoch}")
    if problems and warn:
        print(f"warning: {'; '.join(problems)}; keeping the last epoch's parameters",
              file=sys.stderr)
    return None


def train_and_evaluate(
    config: Config,
    workdir: str | os.PathLike,
    *,
    resume: bool = False,
    stream: TextIO | None = None,
    quiet: bool = False,
) -> History:
    """Train ``config`` and write the run into ``workdir``; returns the :class:`History`.

    Args:
      config: a validated :class:`jaxnn.config.Config`.
      workdir: the run directory (created if needed). A directory that already holds
        checkpoints is only reused with ``resume=True``, so no finished run is overwritten.
      resume: continue from the newest readable checkpoint in ``workdir``.
      stream: where per-epoch lines go (default ``sys.stdout``); process 0 only.
      quiet: no progress bar and no printed lines for this call (``--quiet``), whatever
        ``config.logging`` says; the config saved in ``workdir`` keeps its own logging
        settings, so a later resume without ``quiet`` prints as the config asks.

    Raises:
      ConfigError: bad config values or data (before anything is compiled).
      CheckpointError: ``resume=True`` without a usable checkpoint.
      DivergenceError: the loss or a gradient became NaN/Inf; the last good checkpoint is kept.
    """
    if not isinstance(config, Config):
        raise TypeError(
            f"train_and_evaluate: config must be a jaxnn.config.Config, got "
            f"{type(config).__name__}; build one with jaxnn.config.load(path, overrides) or "
            "jaxnn.config.from_dict(mapping)")
    out = stream if stream is not None else sys.stdout
    cfg = config
    show_progress = cfg.logging.progress and not quiet
    print_every = 0 if quiet else cfg.logging.print_every
    # Before anything that could start a JAX backend.
    multi = distributed_lib.initialize(cfg.distributed)
    if multi:  # before any collective: different settings would wait on each other
        distributed_lib.check_same_settings(_launch_settings(cfg, resume))
    main = distributed_lib.is_main_process()
    workdir = pathlib.Path(workdir)
    ckpts = CheckpointManager(workdir / "checkpoints", keep=cfg.training.keep_checkpoints)
    if not resume and (ckpts.epochs() or (workdir / "history.json").exists()):
        raise ConfigError(
            f"workdir {str(workdir)!r} already holds a run; pass --resume (resume=True) to "
            "continue it or choose another --workdir"
        )
    if not resume and config_lib.holds_depth_study(workdir):
        # its config.yaml would be set aside, and --report-from then refuse the folder
        raise ConfigError(
            f"workdir {str(workdir)!r} holds a depth study (manifest.json, table.csv); "
            "choose another --workdir"
        )

    tb_writer_cls = None
    if cfg.logging.tensorboard:
        try:
            from tensorboardX import SummaryWriter as tb_writer_cls
        except ImportError:
            raise ConfigError(
                "logging.tensorboard: true needs the tensorboardX package; install it with "
                "pip install 'jaxnn[tensorboard]' or set logging.tensorboard=false"
            ) from None

    exp = build_experiment(cfg)
    ds = exp.dataset
    _check_monitors(cfg, ds)
    n_train = int(ds.x_train.shape[0])
    replicated, batch_sharding = _mesh_shardings(cfg, exp.batch_size, multi, n_rows=n_train)

    def put(tree: Any) -> Any:
        # Multi-process: host values (identical everywhere) become global replicated arrays.
        # One process on several devices: replicated too, so every epoch sees the placement
        # of the first (an unplaced lr_scale after a plateau update compiled the epoch again).
        if multi:
            return distributed_lib.to_global(tree, replicated)
        return jax.device_put(tree, replicated) if replicated is not None else tree

    # The distributed section describes one launch, not the experiment: saved as nulls so
    # that every process can --resume from, or rerun, the saved config with its own id.
    saved_cfg = dataclasses.replace(cfg, distributed=config_lib.DistributedConfig())
    if main and not resume:  # a resumed run's config.yaml is rewritten once it is restored
        workdir.mkdir(parents=True, exist_ok=True)
        config_text = config_lib.dumps(saved_cfg)  # config_lib.dump's text, made once
        _set_aside_foreign_files(workdir, config_text)
        write_text(workdir / "config.yaml", config_text)

    t = cfg.training
    root = jax.random.PRNGKey(t.seed)
    init_key, run_key, data_key = jax.random.split(root, 3)
    params, model_state = mlp.init(exp.mlp_config, init_key)
    state = TrainState.create(params=params, tx=exp.tx, key=run_key, model_state=model_state)

    plateau_tx = None
    plateau_state = None
    if t.reduce_on_plateau.enabled:
        rp = t.reduce_on_plateau
        plateau_tx = schedules_lib.reduce_on_plateau(
            factor=rp.factor, patience=rp.patience, cooldown=rp.cooldown, min_scale=rp.min_scale
        )
        plateau_state = plateau_tx.init(jnp.zeros((), jnp.float32))

    es_cfg = t.early_stopping
    # The metric that decides the best epoch (and the patience): an unlogged monitor, allowed
    # while early stopping is off, is watched as the training loss.
    logged = _logged_metric_names(cfg, ds)
    monitor, mode = es_cfg.monitor, es_cfg.mode
    if monitor not in logged:
        monitor, mode = "loss", "min"
    stopper = EarlyStopping(patience=es_cfg.patience, min_delta=es_cfg.min_delta, mode=mode)
    rows: list[dict] = []
    log = MetricsLog(workdir)
    start_epoch = 0
    best_value: float | None = None
    best_epoch = -1
    stopped_early = False

    def payload() -> dict:
        return {"state": state, "plateau": plateau_state}

    # The newest checkpoint known to be whole: the one restored, then each one written. (The
    # newest file on disk may be an unreadable leftover that a resume skipped.)
    last_good: pathlib.Path | None = None
    if resume:
        try:
            tree, meta, path, problems = ckpts.restore_latest(payload())
        except CheckpointError as e:
            # config.yaml is the run's own until a restore succeeds (rewritten below).
            raise _explain_failed_resume(e, workdir, config_lib.to_dict(saved_cfg),
                                         bool(ckpts.epochs()), logged) from None
        for p in problems:
            print(f"warning: skipped {p}", file=sys.stderr)
        last_good = path
        state, plateau_state = tree["state"], tree["plateau"]
        state = jax.tree.map(jnp.asarray, state)
        if plateau_state is not None:
            plateau_state = jax.tree.map(jnp.asarray, plateau_state)
        if "config" in meta:
            _check_resume_config(meta["config"], config_lib.to_dict(saved_cfg), logged=logged)
        start_epoch = int(meta["epoch"])
        if t.epochs < start_epoch:  # epochs cannot be untrained: say so, not a longer run
            raise ConfigError(
                f"training.epochs: got {t.epochs}, but the run in {str(workdir)!r} has trained "
                f"{start_epoch} epochs already; resume with training.epochs >= {start_epoch}"
            )
        # After every check that can refuse the resume: it may set the logs aside.
        rows, rows_bytes = _resumed_rows(meta, workdir, main, start_epoch)
        best_value, best_epoch = meta["best_value"], int(meta["best_epoch"])
        # The run's progress; patience and min_delta are this config's (they may change).
        progress = {k: meta["early_stopping"][k]
                    for k in ("best_value", "best_epoch", "wait", "has_improved")}
        stopper = dataclasses.replace(stopper, **progress)
        if progress["best_value"] is None:
            # A run checkpointed by an older version while early stopping was off never
            # counted: count its logged epochs now, so turning it on stops where it would.
            for row in rows:
                if monitor in row:
                    stopper = stopper.update(row[monitor], int(row["epoch"]))
        stopper = dataclasses.replace(
            stopper, should_stop=stopper.wait >= max(stopper.patience, 1)
        )
        if main:
            config_lib.dump(saved_cfg, workdir / "config.yaml")
            # The logs end at the checkpoint too: a run killed between checkpoints logged
            # epochs that it trains again (or, with epochs lowered to these, never).
            log.reset(rows, rows_bytes)
            ckpts.remove_temporaries()  # of a save killed mid-write (kill -9)
            # A damaged file skipped above: set aside, or every later resume would skip it
            # again (and warn), and pruning would count it as one of the kept checkpoints.
            for old, new in ckpts.set_aside_unreadable(after=start_epoch):
                print(f"warning: set the unreadable {old.name} aside as {new.name}",
                      file=sys.stderr)
            remove_temporaries(workdir, lambda name: name in _RUN_FILES
                               or bool(re.fullmatch(r"[a-z_]+\.png", name)))
            # best.jaxnn of a later epoch (written before a kill) no longer holds the best
            # epoch: from its numbered checkpoint, before pruning can delete that one.
            # A damaged one too: the numbered fallback of restore_best may be pruned by then.
            damaged: list[str] = []
            ckpts.keep_best_epoch(best_epoch, damaged)
            for line in damaged:
                print(f"warning: {line}", file=sys.stderr)
            if print_every or show_progress:  # quiet: nothing
                print(f"resumed from {path} (epoch {start_epoch})", file=out)
        if es_cfg.enabled and stopper.should_stop:
            stopped_early = True
            if main and t.epochs > start_epoch:  # asked for more epochs, gets none: say so
                print(f"warning: early stopping ends the run at epoch {start_epoch} ({monitor} "
                      f"last improved at epoch {stopper.best_epoch}, patience "
                      f"{stopper.patience}), so it trains no further; raise "
                      "training.early_stopping.patience or set "
                      "training.early_stopping.enabled=false to continue it", file=sys.stderr)
        if main and "config" in meta and t.epochs > start_epoch and not stopped_early:
            stretch = _schedule_stretch(cfg, meta["config"], exp.steps_per_epoch,
                                        int(state.step))
            if stretch:
                print(stretch, file=sys.stderr)

    if main and not resume:
        log.reset([])  # a fresh run's logs (a folder's leftovers of an unfinished run go)

    def labels(y: Any) -> Any:
        # Sigmoid binary cross-entropy has one logit per example: 0/1 labels as a column.
        return np.reshape(y, (-1, 1)) if t.loss == "sigmoid_binary_cross_entropy" else y

    # The training set goes to the device(s) once, straight from the host arrays.
    y_host = labels(ds.y_train)
    if multi:
        state, x_train, y_train = put((state, ds.x_train, y_host))
    elif replicated is not None:
        state, x_train, y_train = jax.device_put((state, ds.x_train, y_host), replicated)
    else:
        x_train, y_train = jnp.asarray(ds.x_train), jnp.asarray(y_host)

    metrics_fn = metrics_fn_for_loss(t.loss)
    step_fn = make_train_step(
        exp.loss_fn, exp.tx, grad=t.grad, value_and_grad_fn=exp.value_and_grad_fn,
        metrics_fn=metrics_fn, grad_norms=cfg.logging.grad_norms,
    )
    epoch_fn = make_train_epoch(step_fn, exp.batch_size, batch_sharding=batch_sharding,
                                drop_remainder=t.drop_remainder)
    # Per-example metrics (loss, accuracy) of an epoch: the step values weighted by the rows
    # each step saw (equal unless a smaller last step holds the remainder).
    step_rows = None  # equal steps: a plain mean
    if exp.steps_per_epoch * exp.batch_size > n_train:
        step_rows = np.full(exp.steps_per_epoch, exp.batch_size, np.float64)
        step_rows[-1] = n_train - (exp.steps_per_epoch - 1) * exp.batch_size
    eval_fn = make_eval_fn(exp.loss_fn, loss_name=t.loss, batch_size=t.eval_batch_size,
                           metrics_fn=metrics_fn if t.loss != "mse" else None,
                           batch_sharding=batch_sharding)
    splits = {"test": (ds.x_test, ds.y_test)}
    if getattr(ds, "x_val", None) is not None:
        splits = {"val": (ds.x_val, ds.y_val), **splits}
    splits = {k: (jnp.asarray(x), jnp.asarray(labels(y))) for k, (x, y) in splits.items()}
    # As a list: a dict comes back from put with its keys sorted (test before val), which
    # reordered the logged columns on several devices.
    splits = dict(zip(splits, put(list(splits.values())), strict=True))

    best_host = None

    from tqdm.auto import tqdm

    bar = tqdm(
        range(start_epoch, t.epochs), initial=start_epoch, total=t.epochs, unit="epoch",
        file=sys.stderr, leave=False,
        # None: tqdm shows the bar only on a terminal, so piped logs stay clean
        disable=True if (not show_progress or stopped_early or not main) else None,
    )
    tb = None
    if tb_writer_cls is not None and main:
        tb = _tensorboard_from(tb_writer_cls, workdir / "tensorboard", rows)
    for epoch in bar:
        if stopped_early:
            break
        t0 = time.perf_counter()
        step_before = int(state.step)
        state, m = epoch_fn(state, x_train, y_train, put(jax.random.fold_in(data_key, epoch)))
        m = jax.device_get(m)
        losses_ = np.asarray(m["loss"])
        gnorms = np.asarray(m["grad_norm"])
        bad = ~(np.isfinite(losses_) & np.isfinite(gnorms))
        if bad.any():
            first = int(np.argmax(bad))
            what = "loss" if not np.isfinite(losses_[first]) else "gradient norm"
            lr = m.get("learning_rate")
            lr_txt = ""
            if lr is not None:
                lr_txt = f" (learning rate {float(np.asarray(lr)[first]):.3g})"
            keep = f"; the last good checkpoint is {last_good}" if last_good else ""
            value = losses_[first] if what == "loss" else gnorms[first]
            if step_before + first == 0:
                # Step 1 is computed with the initial parameters: no update (and so no
                # learning rate) has touched them yet.
                penalties = [f"model.{k}={v:g}" for k, v in
                             (("l1", cfg.model.l1), ("l2", cfg.model.l2)) if v]
                also = (f", or a smaller {' / '.join(penalties)} (the penalty is part of the "
                        "loss)" if penalties else "")
                raise DivergenceError(
                    f"training diverged: the {what} is {value} at step 1, before any update, "
                    "so the initial model overflows, not the learning rate: use a smaller "
                    "model.initializer scale (e.g. he_normal), fewer or narrower layers, or "
                    f"normalized data (data.normalization){also}")
            raise DivergenceError(
                f"training diverged: the {what} became {value} at step "
                f"{step_before + first + 1} (epoch {epoch + 1}){lr_txt}; the learning rate is the "
                "likely cause: lower optimizer.learning_rate or set "
                f"optimizer.clip_global_norm{keep}"
            )
        row: dict[str, Any] = {"epoch": epoch + 1, "step": int(state.step)}
        for k, v in m.items():
            v = np.asarray(v)
            if k == "learning_rate":
                row[k] = float(v[-1])
            elif k.startswith("grad_norm") or step_rows is None:  # grad norms: per step
                row[k] = float(v.mean())
            else:
                row[k] = float(np.average(v, weights=step_rows))
        for split, (xs, ys) in splits.items():
            for k, v in eval_fn(state, xs, ys).items():
                row[f"{split}_{k}"] = _to_float(v)
        row["time_s"] = time.perf_counter() - t0
        rows.append(row)

        if plateau_tx is not None:
            sign = -1.0 if t.reduce_on_plateau.mode == "max" else 1.0  # it minimises
            value = jnp.asarray(sign * row[t.reduce_on_plateau.monitor], jnp.float32)
            _, plateau_state = plateau_tx.update(
                jnp.zeros((), jnp.float32), plateau_state, value=value
            )
            # a fresh buffer: the epoch donates state.lr_scale, the plateau state keeps its own
            lr_scale = jnp.asarray(float(plateau_state.scale), jnp.float32)
            state = state.replace(lr_scale=put(lr_scale))

        improved = _is_better(row[monitor], best_value, mode) if monitor in row else False
        if improved:
            best_value, best_epoch = float(row[monitor]), epoch + 1
            if es_cfg.restore_best:
                best_host = jax.device_get(state)
        if monitor in row:  # counted also while off: a resume may turn early stopping on
            stopper = stopper.update(row[monitor], epoch + 1)
            stopped_early = es_cfg.enabled and stopper.should_stop

        if main:
            log.append(row)
        if tb is not None:
            _tensorboard_add(tb, row)
            tb.flush()
        last_epoch = epoch + 1 == t.epochs or stopped_early
        numbered = bool(t.checkpoint_every) and (
            (epoch + 1) % t.checkpoint_every == 0 or last_epoch
        )
        if main and t.checkpoint_every and (improved or numbered):
            meta = {
                "epoch": epoch + 1,
                "step": int(state.step),
                "log": log.mark().to_dict(),  # the rows stay in metrics.jsonl
                "best_value": best_value,
                "best_epoch": best_epoch,
                "early_stopping": dataclasses.asdict(stopper),
                "config": config_lib.to_dict(saved_cfg),
            }
            # best.jaxnn on every improvement (also between numbered checkpoints, so that a
            # resumed run restores the epoch its meta names), and before the numbered file.
            if improved:
                ckpts.save_best(payload(), meta)
            if numbered:
                ckpts.save(epoch + 1, payload(), meta)
        if t.checkpoint_every and numbered:  # every process: main has just written it
            last_good = ckpts.path(epoch + 1)
        if main and print_every and (
            (epoch + 1) % print_every == 0 or last_epoch
        ):
            line = _epoch_line(row, t.epochs)
            if stopped_early and best_value is None:  # NaN/inf from the first epoch on
                line += f"  early stop (no finite {monitor} in {stopper.wait} epochs)"
            elif stopped_early:
                line += f"  early stop (best {monitor} {best_value:.4g} at epoch {best_epoch})"
            bar.write(line, file=out)
    bar.close()
    if tb is not None:
        tb.close()

    final_state = state
    if es_cfg.enabled and es_cfg.restore_best and stopped_early:
        if best_host is None:
            best_host = _read_best(ckpts, payload(), best_epoch, warn=main)
        if best_host is not None:
            final_state = put(jax.tree.map(jnp.asarray, best_host))
    final = {}
    for split, (xs, ys) in splits.items():
        for k, v in eval_fn(final_state, xs, ys).items():
            final[f"{split}_{k}"] = _to_float(v)
    params_host = jax.device_get(final_state.params)
    history = History(tuple(rows), final, best_epoch, stopped_early, str(workdir))
    if not main:
        return history
    log.mark()  # the last epochs' rows on disk before the files that summarize them
    # history.json summarizes params.msgpack: a crash between the two writes must not leave
    # the summary of a resumed run's earlier end beside its new parameters.
    (workdir / "history.json").unlink(missing_ok=True)
    write_bytes(workdir / "params.msgpack", flax.serialization.to_bytes(params_host))
    summary = {"final": final, "best_epoch": best_epoch, "stopped_early": stopped_early,
               "epochs_run": int(rows[-1]["epoch"]) if rows else start_epoch}
    write_bytes(workdir / "history.json", json.dumps(summary, indent=2).encode())
    if cfg.logging.plots:
        from jaxnn.train.plots import plot_history

        plot_history(rows, workdir)
    if print_every:
        parts = "  ".join(f"{k} {_fmt(v)}" for k, v in final.items())
        print(f"final: {parts}", file=out)
    return history
