"""The vanishing / exploding gradient depth study: a vmapped sweep engine.

Contract::

    cfg = depth.load_config("configs/depth_smoke.yaml", overrides=["steps=50"])
    result = depth.run_study(cfg)            # -> DepthStudyResult (numpy / dicts, no pandas)
    result.records                           # tidy rows: one per config x seed x phase
    result.select(activation="relu", phase="init")

What is swept: ``depths`` (number of HIDDEN layers ``D``; the MLP is
``in -> width x D -> num_classes`` with ``D + 1`` weight layers and a linear output layer
feeding softmax cross-entropy) x ``widths`` x ``activations`` (hidden layers) x
``initializers`` (kernels; biases start at zero) x ``batch_norm`` x ``seeds``.

How it runs: one ``jax.jit`` per (depth, width, activation, batch_norm) *shape group*. Inside
it a function of ONE model (``lax.scan`` of SGD steps from its initial params, then
statistics and evaluation of the initial and the trained model, one traced copy
``jax.vmap``-ed over the two) is ``jax.vmap``-ed over seeds and, around that, over
initializers. The initial params come from a second jitted function of the layer sizes
alone, shared by every activation of a depth and width (:func:`_compiled_init`): every
initializer is reduced to a per-layer standard deviation and a distribution code (normal,
truncated normal, uniform), which are vmapped inputs, so ``normal(0.01)``, ``normal(1)``,
Xavier, He and LeCun of one shape are one compiled program. There is no Python loop over
seeds or initializers. :func:`trace_count` counts how often each group was traced
(= compiled), which the tests use to prove "one compile per shape". Compilation is most of a
group's time and grows with the program's copies of per-layer work (the forward and backward
passes are Python loops over the layers), so it holds one copy of each pass: one statistics
pass (forward + backward) for both phases, one evaluation forward over the rows of both
splits, one SGD step (none when ``steps = 0``); the per-layer weight draws and statistics
summaries are vmapped over the layers of one shape (:func:`_per_layer`).

Statistics (all inside the jit, from :func:`jaxnn.backprop.forward` and the hand-written
:func:`jaxnn.backprop.backward`, summarised with :func:`jaxnn.backprop.layer_statistics`) on
a fixed *probe* batch of ``probe_size`` training examples, for the untrained model
(phase ``"init"``) and after ``steps`` SGD steps (phase ``"trained"``):

* ``weight_grad_norm`` (``D + 1`` entries, the last is the output layer):
  ``||dL/dW_l||_F`` with ``L`` the mean cross-entropy over the probe batch.
* ``grad_pre_activation_norm`` (``D + 1``): ``||dL/dz_l||_F`` over batch and units (the
  backpropagated error ``delta_l``).
* ``grad_activation_norm``, ``activation_mean``, ``activation_std``,
  ``pre_activation_std``, ``saturation_fraction``, ``dead_fraction`` (``D`` entries, hidden
  layers only).
* ``grad_ratio = weight_grad_norm[0] / weight_grad_norm[D - 1]``: first hidden layer over
  LAST HIDDEN layer (not the output layer), 1 for ``D = 1``; ``delta_ratio`` the same
  for ``grad_pre_activation_norm``. Values far below 1 mean the gradient vanishes towards
  the input, far above 1 that it explodes. Norms are scaled by the largest entry before
  squaring (:func:`jaxnn.backprop.layer_statistics`), so they hold from ~1e-38 to the
  float32 maximum; XLA flushes float32 denormals (< ~1.2e-38) to zero on CPU: such
  gradients read as exact zeros, so a ratio can be 0, inf or nan (0/0).
* ``saturation_fraction`` (see :func:`saturation_fraction`): the share of (example, unit)
  pairs in the flat region of the activation.
* ``nonfinite_fraction`` (``D``): the share of a hidden layer's activations that are NaN or
  inf (an overflowing model); the mean/std of such a layer are nan, and its histogram
  counts only the finite values (``histograms[...]["nonfinite"]`` says how many are
  missing).
* ``train_loss/accuracy``, ``test_loss/accuracy`` on (the first ``eval_size`` rows of) the
  splits, and per-step minibatch training losses (``result.curves``).

Training: plain SGD ``theta <- theta - learning_rate * grad`` with the hand-written gradient
(:func:`jaxnn.backprop.value_and_grad`), minibatches of ``batch_size`` rows drawn uniformly
WITH replacement by ``fold_in(fold_in(seed_key, BATCH_STREAM), step)``, fused in one
``lax.scan`` (``BATCH_STREAM`` a constant far above any layer count: the weights of layer
``l`` use ``split(seed_key, L)[l]``, which is ``fold_in(seed_key, l)``). Batch norm (when
on) normalises with batch statistics in training and in the probe statistics, and with the
running statistics in evaluation.

Keys: ``data_key, model_root = split(key(config.seed))``; seed ``s`` uses
``fold_in(model_root, s)`` for BOTH the weights and the minibatches, and every initializer
sees the same base noise for a seed (a paired comparison: initializers differ only in
scale and distribution).

Data (``dataset``): ``"normal"`` -- synthetic standard-normal inputs ``x ~ N(0, I)`` of
``input_dim`` features (the textbook histogram experiment) with labels
``argmax(x @ T)`` from a random linear teacher ``T`` (``num_classes`` classes), so the same
data can also be trained on; ``"digits"`` (64 features) and ``"fashion_mnist"`` /
``"mnist"`` (784 features, from ``data_dir``; MNIST falls back to the t10k-only split) via
:func:`jaxnn.data.load`, standardized per feature.

References:
  X. Glorot, Y. Bengio, "Understanding the difficulty of training deep feedforward neural
  networks", AISTATS 2010. K. He et al., "Delving Deep into Rectifiers", ICCV 2015.
  G. Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017. M. Nielsen,
  "Neural Networks and Deep Learning", ch. 5 (2015). S. Hochreiter, "Untersuchungen zu
  dynamischen neuronalen Netzen", 1991.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import difflib
import functools
import itertools
import math
import pathlib
import re
import threading
import time
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import activations, backprop, initializers, layers, losses
from jaxnn._memory import check_host_rows, device_memory_limit
from jaxnn.config import (
    ConfigError,
    parse_override_value,
    read_yaml,
    refuse_empty,
    refuse_other_kind,
)
from jaxnn.mlp import MLPConfig
from jaxnn.studies.workers import CorePool, core_shares

__all__ = [
    "COLUMNS",
    "DATASETS",
    "DepthStudyConfig",
    "DepthStudyResult",
    "InitSpec",
    "LOSS",
    "activation_family",
    "apply_overrides",
    "benchmark_vmap_vs_loop",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "load_study_data",
    "parse_initializer",
    "run_group",
    "run_study",
    "saturation_fraction",
    "trace_count",
]

Array = jax.Array

#: The loss every study model is trained and measured with (linear output layer = logits).
LOSS = "softmax_cross_entropy_with_integer_labels"
#: Accepted values of ``DepthStudyConfig.dataset``.
DATASETS = ("normal", "digits", "fashion_mnist", "mnist")

# ----------------------------------------------------------------------------- initializers

# name -> (scale, mode, distribution) of a variance-scaling scheme, Var[W] = scale / fan.
# Mirrors jaxnn.initializers (checked against its samples in tests/test_depth_study.py).
_SCHEMES: dict[str, tuple[float, str, str]] = {
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
}
_ALIASES = {
    "xavier": "glorot_normal",
    "xavier_normal": "glorot_normal",
    "xavier_uniform": "glorot_uniform",
    "glorot": "glorot_normal",
    "he": "he_normal",
    "kaiming": "he_normal",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
    "lecun": "lecun_normal",
}
_FIXED = ("normal", "uniform")  # normal(stddev), uniform(scale): fixed scale for all layers
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
_SPEC_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")


def _init_names() -> list[str]:
    return sorted([*_SCHEMES, *_ALIASES, "normal(STDDEV)", "uniform(SCALE)"])


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """A kernel initializer of the study, reduced to what the vmapped engine needs.

    Attributes:
      label: the name as written in the config (e.g. ``"normal(0.01)"``, ``"xavier"``).
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
      scale: variance-scaling ``scale`` (``Var[W] = scale / fan``), or the fixed standard
        deviation (``normal``) / half-width (``uniform``) when ``mode`` is ``"fixed"``.
      mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fixed"``.
    """

    label: str
    distribution: str
    scale: float
    mode: str

    def stddev(self, fan_in: int, fan_out: int) -> float:
        """Standard deviation of the kernel of a ``(fan_in, fan_out)`` layer.

        ``sqrt(scale / n)`` with ``n`` the fan of ``mode``; ``stddev`` for ``normal(stddev)``;
        ``scale / sqrt(3)`` for ``uniform(scale)`` = ``U(-scale, scale)``.
        """
        if self.mode == "fixed":
            return self.scale if self.distribution == "normal" else self.scale / math.sqrt(3.0)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        return math.sqrt(self.scale / n)


def parse_initializer(spec: str) -> InitSpec:
    """Parse a study initializer name: ``normal(0.01)``, ``uniform(0.05)``, ``xavier``, ``he``,
    ``lecun``, or a jaxnn name (``glorot_normal``, ``he_uniform``, ``lecun_normal``, ...).

    The named schemes use the same scale, fan mode and distribution as
    :mod:`jaxnn.initializers` (``glorot_normal`` = truncated normal, Var = 1 / fan_avg;
    ``he_normal`` = truncated normal, Var = 2 / fan_in; ``lecun_normal`` = truncated normal,
    Var = 1 / fan_in). ``normal(s)`` is ``N(0, s^2)`` in every layer.

    Raises:
      ConfigError: unknown name (with close matches) or a bad argument.
    """
    if not isinstance(spec, str):
        raise ConfigError(
            f"initializers: got {spec!r}, expected a name like 'he' or 'normal(0.01)'"
        )
    m = _SPEC_RE.match(spec)
    if not m:
        raise ConfigError(
            f"initializers: cannot parse {spec!r}; expected NAME or NAME(NUMBER), e.g. "
            "'xavier' or 'normal(0.01)'"
        )
    name, arg = m.group(1).lower(), m.group(2)
    if name in _FIXED:
        default = 0.01 if name == "normal" else 0.05
        try:
            value = default if arg in (None, "") else float(arg)
        except ValueError:
            raise ConfigError(
                f"initializers: {spec!r}: the argument must be a number, got {arg!r}"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"initializers: {spec!r}: the scale must be a finite number > 0")
        return InitSpec(spec, "normal" if name == "normal" else "uniform", value, "fixed")
    canonical = _ALIASES.get(name, name)
    if canonical not in _SCHEMES and name in initializers.names():
        raise ConfigError(
            f"initializers: {spec!r} is a jaxnn initializer the depth study cannot sweep (it "
            "reduces each initializer to a per-layer standard deviation and a normal, "
            f"truncated-normal or uniform draw); valid: {', '.join(_init_names())}"
        )
    if canonical not in _SCHEMES:
        close = difflib.get_close_matches(name, [*_SCHEMES, *_ALIASES, *_FIXED], n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(
            f"initializers: unknown initializer {spec!r}{hint}; valid: {', '.join(_init_names())}"
        )
    if arg not in (None, ""):
        raise ConfigError(f"initializers: {spec!r}: {name} takes no argument")
    scale, mode, dist = _SCHEMES[canonical]
    return InitSpec(spec, dist, scale, mode)


# ----------------------------------------------------------------------------- saturation

_SIGMOID_LIKE = ("sigmoid", "hard_sigmoid")
_TANH_LIKE = ("tanh", "softsign")
_RELU_LIKE = ("relu", "relu6", "step")
_STUDY_ACTIVATIONS_EXCLUDED = ("prelu", "maxout", "softmax", "log_softmax")


def activation_family(name: str) -> str:
    """``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"other"``: which saturation rule applies."""
    if name in _SIGMOID_LIKE:
        return "sigmoid"
    if name in _TANH_LIKE:
        return "tanh"
    if name in _RELU_LIKE:
        return "relu"
    return "other"


def saturation_fraction(name: str, activation_input: Array, activation: Array) -> Array:
    """Share of entries of a hidden layer in the flat region of its activation.

    Per family (:func:`activation_family`):

    * sigmoid-like (``sigmoid``, ``hard_sigmoid``; output range ``[0, 1]``):
      ``|a - 1/2| > 0.45``, i.e. ``a < 0.05`` or ``a > 0.95`` (``sigma' < 0.0475``).
    * tanh-like (``tanh``, ``softsign``; range ``[-1, 1]``): ``|a| > 0.9``.
    * ReLU-like: ``a == 0`` exactly for ``relu``, a "dead" unit for that input (derivative
      0); ``relu6`` also at its upper flat ``a == 6``; ``step`` everywhere (its derivative is
      0 at every input).
    * every other activation (``leaky_relu``, ``elu``, ``selu``, ``gelu``, ``swish``,
      ``softplus``, ...): ``|f'(u)| < 0.05`` with the hand-written derivative
      ``jaxnn.activations.get_grad(name)`` at the activation input ``u`` -- the negative
      tail of ELU/SELU/softplus, the negative side of leaky ReLU (slope 0.01) and the dips
      of GELU/swish where their derivative crosses zero.

    Args:
      name: the activation's name.
      activation_input: ``u`` (pre-activation, after batch norm when it comes first).
      activation: ``a = f(u)``.

    Returns:
      A scalar in ``[0, 1]`` of ``activation``'s dtype.
    """
    family = activation_family(name)
    if family == "sigmoid":
        flat = jnp.abs(activation - 0.5) > 0.45
    elif family == "tanh":
        flat = jnp.abs(activation) > 0.9
    elif name == "step":
        flat = jnp.ones(activation.shape, bool)
    elif family == "relu":
        flat = (activation == 0) | (activation == 6) if name == "relu6" else activation == 0
    else:
        flat = jnp.abs(activations.get_grad(name)(activation_input)) < 0.05
    return jnp.mean(flat.astype(activation.dtype))


def _histogram_range(name: str) -> tuple[float, float]:
    family = activation_family(name)
    if family == "sigmoid":
        return (0.0, 1.0)
    if family == "tanh":
        return (-1.0, 1.0)
    if family == "relu":
        return (0.0, 3.0)
    return (-2.0, 3.0)


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class DepthStudyConfig:
    """A depth study (frozen; every field has a default; YAML keys are the field names).

    Attributes:
      name: a label written into the outputs.
      dataset: one of :data:`DATASETS`.
      data_dir: where MNIST-style IDX files are looked for (``fashion_mnist``/``mnist``).
      n_train, n_test: keep only this many rows of the loaded splits (None: all).
      input_dim, num_classes, n_samples: shape of the synthetic ``"normal"`` data set
        (``n_samples`` training rows and ``n_samples // 4`` test rows).
      depths: numbers of HIDDEN layers, each >= 1 (kept in ascending order).
      widths: hidden-layer widths, each in ``[1, 2**20]`` (kept in ascending order).
      activations: hidden activations (names from :func:`jaxnn.activations.names`,
        elementwise ones).
      initializers: kernel initializers (see :func:`parse_initializer`).
      batch_norm: which batch-norm settings to sweep (``[false]``, ``[true]`` or both).
      seeds: number of seeds (0 .. seeds-1), >= 1.
      seed: base seed of the data split and all model keys.
      probe_size: training examples the statistics are measured on, >= 2 and at most the
        training rows.
      steps: SGD steps of the training phase (0: statistics at initialization only).
      batch_size: minibatch size, >= 1.
      learning_rate: SGD step size, > 0.
      eval_size: rows of each split used for the final train/test metrics (None: all).
      histograms: also record per-layer activation histograms at initialization.
      histogram_bins: number of histogram bins, >= 2.
      vanish_ratio, explode_ratio: report thresholds on the median ``grad_ratio``
        (vanishes below ``vanish_ratio``, explodes above ``explode_ratio``; ``vanish_ratio
        < explode_ratio``); both also bound the growth of the pre-activation std from the
        first hidden layer to the last (vanishes below ``vanish_ratio``, explodes above
        ``explode_ratio``; see :func:`jaxnn.studies.depth_report.classify`).
      saturation_threshold: report threshold on the mean hidden-layer saturation fraction.
      train_threshold: "trains" when the median final test accuracy reaches
        ``chance + train_threshold * (1 - chance)``; "stalls" below
        ``chance + 0.1 * (1 - chance)`` (so ``train_threshold`` is in ``[0.1, 1)``).

    Values are coerced like the YAML keys (:func:`config_from_dict`): a bare value for a
    list field is a one-element list (``depths=5`` is ``(5,)``), lists become tuples.
    """

    name: str = "depth_study"
    dataset: str = "digits"
    data_dir: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    input_dim: int = 100
    num_classes: int = 10
    n_samples: int = 1000
    depths: tuple[int, ...] = (2, 4, 8)
    widths: tuple[int, ...] = (100,)
    activations: tuple[str, ...] = ("sigmoid", "relu")
    initializers: tuple[str, ...] = ("xavier", "he")
    batch_norm: tuple[bool, ...] = (False,)
    seeds: int = 3
    seed: int = 0
    probe_size: int = 256
    steps: int = 100
    batch_size: int = 64
    learning_rate: float = 0.1
    eval_size: int | None = 2000
    histograms: bool = False
    histogram_bins: int = 30
    vanish_ratio: float = 0.01
    explode_ratio: float = 100.0
    saturation_threshold: float = 0.6
    train_threshold: float = 0.5

    def __post_init__(self) -> None:
        # The same coercion as a YAML config (a bare value becomes a 1-element list; a
        # non-boolean ``histograms`` is refused), so ``depths=5`` or ``activations="relu"``
        # from Python is not a TypeError or a sweep over the letters of ``"relu"``.
        hints = typing.get_type_hints(DepthStudyConfig)
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        # Ascending, whatever order they were given in: the report's "shrinks with depth",
        # the heat maps' columns and the plots' colour scale read them in this order.
        for key in ("depths", "widths"):
            object.__setattr__(self, key, tuple(sorted(getattr(self, key))))
        _validate(self)

    @property
    def init_specs(self) -> tuple[InitSpec, ...]:
        """The parsed :attr:`initializers`."""
        return tuple(parse_initializer(s) for s in self.initializers)


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: got {value!r}, expected {allowed}")


def _study_activation_names() -> list[str]:
    return [n for n in activations.names() if n not in _STUDY_ACTIVATIONS_EXCLUDED]


def _activation_problem(name: Any, valid: Sequence[str]) -> str:
    """Why ``name`` is not a study activation: jaxnn activations that take parameters or
    are not elementwise are named as such, not as unknown; ``leaky_relu(0.2)`` is told
    that parameters cannot be set."""
    if name in _STUDY_ACTIVATIONS_EXCLUDED:
        return (f"{name!r} cannot be swept by the depth study (only elementwise activations "
                "without trainable or shape parameters: prelu, maxout, softmax and "
                "log_softmax are not)")
    m = _SPEC_RE.match(str(name))
    if m and m.group(2) is not None and m.group(1) in valid:
        return (f"{name!r}: the study uses each activation with its default parameters "
                f"(write {m.group(1)!r})")
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(x) for x in close)}?)" if close else ""
    return f"unknown activation {name!r}{hint}"


def _validate(c: DepthStudyConfig) -> None:
    _check(isinstance(c.name, str) and bool(c.name), "name", c.name, "a non-empty string")
    if c.dataset not in DATASETS:
        close = difflib.get_close_matches(str(c.dataset), DATASETS, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(x) for x in close)}?)" if close else ""
        raise ConfigError(
            f"dataset: unknown data set {c.dataset!r}{hint}; valid: {', '.join(DATASETS)}"
        )
    for key in ("depths", "widths"):
        vals = getattr(c, key)
        _check(len(vals) > 0, key, list(vals), "a non-empty list of integers >= 1")
        for v in vals:
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= 1, key, v,
                   "integers >= 1 (depth = number of hidden layers)" if key == "depths"
                   else "integers >= 1")
        _check(len(set(vals)) == len(vals), key, list(vals), "no repeated values")
    # A hidden layer is a width x width matrix: past 2**40 entries (4 TiB of float32) XLA
    # aborts the whole process with a C++ error instead of raising out of memory.
    for v in c.widths:
        _check(v <= 2**20, "widths", v, "integers in [1, 2**20] (at most 2**40 weights per "
               "width x width matrix)")
    _check(c.input_dim <= 2**20, "input_dim", c.input_dim,
           "an integer in [1, 2**20] (at most 2**40 weights in the input x width matrix)")
    valid_acts = _study_activation_names()
    _check(len(c.activations) > 0, "activations", list(c.activations), "a non-empty list")
    for a in c.activations:
        if a not in valid_acts:
            raise ConfigError(
                f"activations: {_activation_problem(a, valid_acts)}; valid: "
                f"{', '.join(valid_acts)}"
            )
    _check(len(set(c.activations)) == len(c.activations), "activations", list(c.activations),
           "no repeated names")
    _check(len(c.initializers) > 0, "initializers", list(c.initializers), "a non-empty list")
    for i, s in enumerate(c.initializers):
        if isinstance(s, str) and s.count("(") > s.count(")"):
            # [normal(1, 2), he] is split by YAML at its commas: 'normal(1', '2)', 'he'.
            rest = list(itertools.takewhile(lambda p: isinstance(p, str) and "(" not in p,
                                            c.initializers[i + 1:]))
            closing = next((j for j, p in enumerate(rest) if ")" in p), None)
            if closing is not None:
                pieces = " and ".join(repr(p) for p in [s, *rest[:closing + 1]])
                raise ConfigError(
                    f"initializers: {pieces} are one entry split at its commas (YAML reads a "
                    f"comma in [...] as the end of an item); a study initializer takes one "
                    f"number (normal's standard deviation or uniform's half-width), e.g. "
                    f"'normal(0.01)'"
                )
        parse_initializer(s)
    _check(len(set(c.initializers)) == len(c.initializers), "initializers",
           list(c.initializers), "no repeated names")
    _check(len(c.batch_norm) > 0 and len(set(c.batch_norm)) == len(c.batch_norm), "batch_norm",
           list(c.batch_norm), "[false], [true] or [false, true]")
    for key, minimum in (("seeds", 1), ("probe_size", 2), ("steps", 0), ("batch_size", 1),
                         ("input_dim", 1), ("num_classes", 2), ("n_samples", 8),
                         ("histogram_bins", 2), ("seed", 0)):
        v = getattr(c, key)
        _check(isinstance(v, int) and not isinstance(v, bool) and v >= minimum, key, v,
               f"an integer >= {minimum}")
    # jax.random.key keeps 32 bits without 64-bit mode: seeds 0 and 2**32 would be one run.
    _check(c.seed < 2**32, "seed", c.seed, "an integer in [0, 2**32 - 1]")
    _check(c.steps < 2**31, "steps", c.steps, "an integer in [0, 2**31 - 1]")  # lax.scan
    for key in ("n_train", "n_test", "eval_size"):
        v = getattr(c, key)
        _check(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1), key, v,
               "null or an integer >= 1")
    for key in ("learning_rate", "vanish_ratio", "explode_ratio"):
        v = getattr(c, key)
        _check(math.isfinite(v) and v > 0, key, v, "a finite number > 0")
    # Otherwise one combination could both vanish and explode, or both train and stall.
    _check(c.vanish_ratio < c.explode_ratio, "vanish_ratio", c.vanish_ratio,
           f"a number below explode_ratio ({c.explode_ratio:g})")
    _check(0.0 < c.saturation_threshold < 1.0, "saturation_threshold", c.saturation_threshold,
           "a number in (0, 1)")
    _check(0.1 <= c.train_threshold < 1.0, "train_threshold", c.train_threshold,
           "a number in [0.1, 1) (below 0.1 a combination could both train and stall)")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    args = typing.get_args(tp)
    if args and type(None) in args:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if args and type(None) in args and origin is not tuple:
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(key, v, args[0]) for v in value)
    bad = ConfigError(f"{key}: got {value!r}, expected {_type_name(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    raise bad  # pragma: no cover


def config_from_dict(data: Mapping[str, Any] | None) -> DepthStudyConfig:
    """Build and validate a :class:`DepthStudyConfig` from a flat mapping (missing keys:
    defaults). Raises :class:`jaxnn.config.ConfigError` with a one-line message."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"depth study config: got {type(data).__name__}, expected a mapping")
    hints = typing.get_type_hints(DepthStudyConfig)
    names = [f.name for f in dataclasses.fields(DepthStudyConfig)]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(x) for x in close)}?)" if close else ""
            raise ConfigError(f"unknown key {k!r}{hint}; valid keys: {', '.join(names)}")
        kwargs[k] = _coerce(k, v, hints[k])
    return DepthStudyConfig(**kwargs)


def ignored_settings(config: DepthStudyConfig) -> list[str]:
    """Warning lines for settings that ``config`` gives but that do nothing in it: the
    ``"normal"`` data set's shape (input_dim, num_classes, n_samples) with another data set,
    ``histogram_bins`` with histograms off. Each was ignored without a word (a user who set
    ``num_classes: 2`` for digits would read a 10-class study)."""
    defaults = DepthStudyConfig()
    lines = []
    shape = [f"{k}={getattr(config, k)}" for k in ("input_dim", "num_classes", "n_samples")
             if getattr(config, k) != getattr(defaults, k)]
    if shape and config.dataset != "normal":
        lines.append(f"warning: {', '.join(shape)} ignored: only the 'normal' data set takes "
                     f"its shape from the config; {config.dataset!r} has its own")
    if config.histogram_bins != defaults.histogram_bins and not config.histograms:
        lines.append(f"warning: histogram_bins={config.histogram_bins} ignored: histograms "
                     "is false (set histograms=true to record them)")
    return lines


def config_to_dict(config: DepthStudyConfig) -> dict[str, Any]:
    """The config as plain Python (tuples become lists), for YAML/JSON."""
    return {
        f.name: list(getattr(config, f.name)) if isinstance(getattr(config, f.name), tuple)
        else getattr(config, f.name)
        for f in dataclasses.fields(config)
    }


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (``--set depths=[2,4] learning_rate=0.05``); values are
    parsed as YAML. Keys are checked against :class:`DepthStudyConfig` with suggestions."""
    out = dict(data)
    names = [f.name for f in dataclasses.fields(DepthStudyConfig)]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. depths=[2,4,8]")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in names:
            close = difflib.get_close_matches(key, names, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(x) for x in close)}?)" if close else ""
            raise ConfigError(f"--set {item!r}: unknown key {key!r}{hint}; valid keys: "
                              f"{', '.join(names)}")
        out[key] = parse_override_value(item, raw)
    return out


def load_config(
    path: str | pathlib.Path | None = None, overrides: Sequence[str] = ()
) -> DepthStudyConfig:
    """Read a study YAML (a flat mapping of :class:`DepthStudyConfig` fields), apply
    ``overrides`` and validate. Raises :class:`jaxnn.config.ConfigError` (one line)."""
    data = read_yaml(path) if path is not None else {}
    if path is not None:
        refuse_empty(path, data, "a depth-study config with at least one key")
        from jaxnn.studies import craft  # noqa: PLC0415 (craft's loaders; no cycle at import)

        refuse_other_kind(path, data, [f.name for f in dataclasses.fields(DepthStudyConfig)],
                          "a depth-study config", craft.config_kinds(path, but="depth study"))
    return config_from_dict(apply_overrides(data, overrides))


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class _Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str


def load_study_data(config: DepthStudyConfig) -> _Data:
    """The study's data as float32 / int32 numpy arrays (see the module docstring)."""
    data_key, _ = jax.random.split(jax.random.key(config.seed))
    if config.dataset == "normal":
        kx, kt = jax.random.split(data_key)
        n_test = max(config.n_samples // 4, 2)
        # (XLA aborted the process, C++ stack and all, on a set too big for its buffers)
        check_host_rows("depth study", "n_samples", config.n_samples,
                        config.n_samples + n_test, 4 * config.input_dim + 4, working=3)
        x = np.asarray(jax.random.normal(
            kx, (config.n_samples + n_test, config.input_dim), jnp.float32))
        teacher = np.asarray(jax.random.normal(
            kt, (config.input_dim, config.num_classes), jnp.float32))
        y = np.argmax(x @ teacher, axis=1).astype(np.int32)
        n = config.n_samples
        n_tr = n if config.n_train is None else min(config.n_train, n)
        n_te = n_test if config.n_test is None else min(config.n_test, n_test)
        return _Data(x[:n_tr], y[:n_tr], x[n:n + n_te], y[n:n + n_te], config.num_classes,
                     "normal")
    from jaxnn import data as jdata
    from jaxnn.data.idx import DataError

    kwargs: dict[str, Any] = dict(key=data_key, normalization="standardize",
                                  n_train=config.n_train, n_test=config.n_test)
    if config.dataset in ("fashion_mnist", "mnist"):
        kwargs.update(data_dir=config.data_dir, download=False)
    try:
        ds = jdata.load(config.dataset, **kwargs)
    except DataError:
        if config.dataset != "mnist":
            raise
        ds = jdata.load(config.dataset, split="test", **kwargs)  # t10k files only
    return _Data(
        np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train, np.int32),
        np.asarray(ds.x_test, np.float32), np.asarray(ds.y_test, np.int32),
        int(ds.num_classes), config.dataset,
    )


# ----------------------------------------------------------------------------- engine

_TRACES: collections.Counter[tuple[Any, ...]] = collections.Counter()
#: Traces of the initial draws per ``(depth, width, batch_norm, in_dim, num_classes)``.
_INIT_TRACES: collections.Counter[tuple[Any, ...]] = collections.Counter()

#: The key stream of a seed's minibatches: ``fold_in(seed_key, BATCH_STREAM)``. The weights
#: of layer ``l`` come from ``split(seed_key, L)[l] == fold_in(seed_key, l)`` (partitionable
#: threefry), so the stream must not be a small integer (1 was layer 1's weight key).
BATCH_STREAM = 2**31 - 1


def trace_count(group: tuple[Any, ...] | None = None) -> int:
    """How many times the engine function of ``group`` was traced (= compiled); all groups
    together when None. ``group = (depth, width, activation, batch_norm, steps, batch_size,
    histogram_bins, histograms, vmapped)`` as used internally by :func:`run_group`."""
    if group is None:
        return sum(_TRACES.values())
    return _TRACES[group]


#: JAX's monitoring events of getting an executable: tracing to a jaxpr, lowering to MLIR,
#: XLA's compilation (or loading it from the persistent compilation cache).
_COMPILE_EVENTS = frozenset({
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
})


class _CompileClock:
    """``with _CompileClock() as c:`` -- ``c.seconds`` is the time JAX spent tracing,
    lowering and compiling inside the block, summed from JAX's monitoring events (the
    listener is removed on exit: no global state is left behind). Only the events of the
    thread that entered the block count (JAX reports them in the thread that compiles), so
    a group compiled ahead in another thread is not counted twice. None when no such event
    came (nothing was compiled, or a JAX version that names its events differently);
    :meth:`for_group` tells those apart."""

    def __enter__(self) -> _CompileClock:
        self.seconds: float | None = None
        self._thread = threading.get_ident()
        jax.monitoring.register_event_duration_secs_listener(self._on_event)
        return self

    def _on_event(self, event: str, secs: float, **_: Any) -> None:
        if event in _COMPILE_EVENTS and threading.get_ident() == self._thread:
            self.seconds = (self.seconds or 0.0) + float(secs)

    def __exit__(self, *exc: Any) -> None:
        jax.monitoring.unregister_event_duration_listener(self._on_event)

    def for_group(self, traced: bool) -> float | None:
        """The compile seconds of a group: 0 for one whose kernel was already compiled
        (not traced again) and nothing reported, None (unknown) for a group that was
        traced but no event came."""
        if self.seconds is None:
            return None if traced else 0.0
        return self.seconds


def _mlp_config(depth: int, width: int, activation: str, batch_norm: bool,
                in_dim: int, num_classes: int) -> MLPConfig:
    return MLPConfig(
        layer_sizes=(in_dim,) + (width,) * depth + (num_classes,),
        hidden_activation=activation, batch_norm=batch_norm,
    )


def _group_outputs(f, items: Sequence[Any], groups: Sequence[Any]) -> list[tuple[list[int], Any]]:
    """``(indices, outputs)`` per distinct (hashable, static) group: ``f(item, group)`` of the
    group's items stacked on a new leading axis, ``f`` traced once per group
    (``jax.vmap``-ed over its items; a group met once is traced as is)."""
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out = []
    for g, idx in members.items():
        if len(idx) == 1:
            res = jax.tree.map(lambda x: x[None], f(items[idx[0]], g))
        else:
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[items[i] for i in idx])
            res = jax.vmap(lambda item, g=g: f(item, g))(stacked)
        out.append((idx, res))
    return out


def _vmapped_by_group(f, items: Sequence[Any], groups: Sequence[Any]) -> list[Any]:
    """``[f(item, group) for item, group in zip(items, groups)]``, with ``f`` traced once
    per distinct group (:func:`_group_outputs`) instead of once per item."""
    results: list[Any] = [None] * len(items)
    for idx, out in _group_outputs(f, items, groups):
        for j, i in enumerate(idx):
            results[i] = jax.tree.map(lambda x, j=j: x[j], out)
    return results


def _per_layer(f, items: Sequence[Any]) -> Any:
    """``[f(item) for item in items]`` stacked along a new leading axis, with ``f`` traced
    once per distinct shape of its argument (``jax.vmap``-ed over the layers of that shape)
    instead of once per layer: an MLP's hidden layers of one width share their shapes, so
    a deep model's per-layer work compiles about as fast as a shallow one's. ``items`` are
    pytrees of arrays; a shape met once is traced as is. The groups' stacked outputs are
    joined in layer order by one concatenation (and, when the groups interleave, one
    static gather), not cut into a slice per layer and stacked again: at 50 layers those
    slices took longer to compile than the statistics themselves."""
    def signature(item):
        leaves, treedef = jax.tree.flatten(item)
        return treedef, tuple((x.shape, x.dtype) for x in leaves)

    parts = _group_outputs(lambda item, _: f(item), items, [signature(i) for i in items])
    order = [i for idx, _ in parts for i in idx]
    joined = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[out for _, out in parts])
    if order == sorted(order):
        return joined
    where = np.argsort(np.asarray(order))  # layer i sits at position where[i] of joined
    return jax.tree.map(lambda x: x[where], joined)


def _init_model(cfg: MLPConfig, key: Array, stds: Array, code: Array):
    """Params/state with kernel ``l`` = ``stds[l] * base_l``, ``base_l`` a unit-variance sample
    of distribution ``code`` (0 normal, 1 truncated normal, 2 uniform), drawn with
    :mod:`jaxnn.initializers` from the same key for every initializer. The draws of the
    layers of one shape are one ``jax.vmap``-ed draw over their keys (the same numbers as
    layer by layer: a key's samples do not depend on batching)."""
    n = cfg.num_layers
    keys = jax.random.split(key, n)
    unit_normal = initializers.normal(1.0)
    trunc = initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    unif = initializers.variance_scaling(1.0, "fan_in", "uniform")
    shapes = [(cfg.layer_sizes[l], cfg.layer_sizes[l + 1]) for l in range(n)]

    def draw(k, shape):
        root = math.sqrt(shape[0])  # variance_scaling(1, fan_in) has std 1/sqrt(fan_in)
        return jnp.stack([
            unit_normal(k, shape, jnp.float32),
            trunc(k, shape, jnp.float32) * root,
            unif(k, shape, jnp.float32) * root,
        ])[code]

    bases = _vmapped_by_group(draw, list(keys), shapes)
    p_layers, s_layers = [], []
    for l in range(n):
        p = {"w": bases[l] * stds[l], "b": jnp.zeros((shapes[l][1],), jnp.float32)}
        s: dict[str, Any] = {}
        if l < n - 1 and cfg.batch_norm:
            p["bn"], s["bn"] = layers.batch_norm_init(shapes[l][1], jnp.float32)
        p_layers.append(p)
        s_layers.append(s)
    return {"layers": p_layers}, {"layers": s_layers}


def _measure(cfg: MLPConfig, params, state, x, y, *, hist: tuple[int, float, float] | None):
    """Per-layer statistics of one model on one batch (hand-written backward pass). The
    summaries are computed by :func:`_per_layer`, once per distinct layer shape."""
    depth = cfg.num_layers - 1
    act = cfg.hidden_activation
    train = cfg.batch_norm  # batch statistics when batch norm is on; no dropout here
    outputs, cache, _ = backprop.forward(cfg, params, state, x, train=train)
    loss = losses.get(LOSS)(outputs, y)
    g_out = losses.get_grad(LOSS)(outputs, y).astype(outputs.dtype)
    grads, lgrads = backprop.backward(cfg, params, cache, g_out)

    def summarise(layer):
        s = backprop.layer_statistics({"layers": [layer["signals"]]},
                                      {"layers": [{"w": layer["w_grad"]}]})
        return {k: v[0] for k, v in s.items()}

    s = _per_layer(summarise, [
        {"signals": {"pre_activation": c["pre_activation"], "activation": c["activation"],
                     "grad_pre_activation": g["pre_activation"],
                     "grad_activation": g["activation"]},
         "w_grad": gw["w"]}
        for c, g, gw in zip(cache.layers, lgrads["layers"], grads["layers"], strict=True)
    ])

    def hidden_summary(c):
        a = c["activation"]
        out = {"nonfinite": jnp.mean((~jnp.isfinite(a)).astype(jnp.float32)),
               "saturation": saturation_fraction(act, c["activation_input"], a)}
        if hist is not None:
            bins, lo, hi = hist
            # jnp.histogram drops NaN silently and clip would file inf under an edge bin:
            # non-finite values are left out here and counted on their own.
            finite = jnp.isfinite(a)
            a = jnp.where(finite, a, lo)
            out["histogram"] = jnp.histogram(jnp.clip(a, lo, hi), bins=bins, range=(lo, hi),
                                             weights=finite.astype(jnp.float32))[0]
            out["histogram_nonfinite"] = jnp.sum(~finite)
        return out

    h = _per_layer(hidden_summary, [{"activation": c["activation"],
                                     "activation_input": c["activation_input"]}
                                    for c in cache.layers[:depth]])
    wg = s["weight_grad_norm"]
    dz = s["grad_pre_activation_norm"]
    out = {
        "loss": loss,
        "weight_grad_norm": wg,
        "grad_pre_activation_norm": dz,
        "grad_activation_norm": s["grad_activation_norm"][:depth],
        "activation_mean": s["activation_mean"][:depth],
        "activation_std": s["activation_std"][:depth],
        "pre_activation_std": s["pre_activation_std"][:depth],
        "dead_fraction": s["activation_zero_fraction"][:depth],
        "nonfinite_fraction": h["nonfinite"],
        "saturation_fraction": h["saturation"],
        "grad_ratio": wg[0] / wg[depth - 1],
        "delta_ratio": dz[0] / dz[depth - 1],
    }
    if hist is not None:
        out["histogram"] = h["histogram"].astype(jnp.float32)
        out["histogram_nonfinite"] = h["histogram_nonfinite"].astype(jnp.float32)
    return out


def _evaluate(cfg: MLPConfig, params, state, x, y, sizes: Sequence[int]):
    """``[loss, accuracy]`` of each split, the splits being ``sizes`` consecutive row blocks
    of ``x, y``: ONE forward pass over all their rows (evaluation mode: rows are
    independent), then each split's loss and accuracy from its own rows."""
    from jaxnn import mlp

    logits, _ = mlp.apply(cfg, params, state, x, train=False)
    out, start = [], 0
    for n in sizes:
        lg, yy = logits[start:start + n], y[start:start + n]
        start += n
        loss = losses.get(LOSS)(lg, yy)
        acc = jnp.mean((jnp.argmax(lg, axis=-1) == yy).astype(jnp.float32))
        # argmax of NaN logits is class 0: a diverged model would score the share of class 0.
        out += [loss, jnp.where(jnp.all(jnp.isfinite(lg)), acc, jnp.nan)]
    return jnp.stack(out)


def _single_model_fn(cfg: MLPConfig, steps: int, batch_size: int,
                     hist: tuple[int, float, float] | None, group: tuple[Any, ...]):
    """``fn(params, state, key, lr, x_probe, y_probe, x_tr, y_tr, x_ev_tr, y_ev_tr, x_te,
    y_te)`` for ONE model from its initial ``params, state`` (:func:`_compiled_init`; ``key``
    its seed's key, for the minibatches): SGD in a ``lax.scan``, then statistics and
    evaluation of the initial AND the trained model by one traced copy ``jax.vmap``-ed over
    the two.

    Each per-layer pass is written out layer by layer (Python loops), so the compiled
    program's size -- and its compile time, most of a group's time -- grows with the number
    of copies of a pass: here one statistics pass (forward + backward), one evaluation
    forward (both splits in one pass) and one SGD step, instead of one each per phase and
    split; the initial draws are compiled apart, once per depth and width."""
    vg = backprop.value_and_grad(cfg, LOSS)

    def fn(params, state, key, lr, x_probe, y_probe, x_tr, y_tr, x_ev, y_ev, x_te, y_te):
        _TRACES[group] += 1  # runs only while tracing
        x_eval = jnp.concatenate([x_ev, x_te])
        y_eval = jnp.concatenate([y_ev, y_te])
        sizes = (x_ev.shape[0], x_te.shape[0])

        def look(params, state):  # statistics + [train_loss, train_acc, test_loss, test_acc]
            return (_measure(cfg, params, state, x_probe, y_probe, hist=hist),
                    _evaluate(cfg, params, state, x_eval, y_eval, sizes))

        if steps == 0:  # statistics at initialization only: skip compiling the step
            init_stats, init_eval = look(params, state)
            return {"init": init_stats, "init_eval": init_eval}
        n = x_tr.shape[0]
        batch_key = jax.random.fold_in(key, BATCH_STREAM)  # not a layer's weight key

        def step(carry, i):
            p, s = carry
            idx = jax.random.randint(jax.random.fold_in(batch_key, i), (batch_size,), 0, n)
            (loss, aux), g = vg(p, s, x_tr[idx], y_tr[idx], None, True)
            p = jax.tree.map(lambda w, dw: w - lr * dw, p, g)
            return (p, aux["state"]), loss

        start = (params, state)
        end, curve = jax.lax.scan(step, start, jnp.arange(steps))
        # [initial, trained] stacked on a new leading axis: one copy of the statistics and
        # evaluation passes serves both phases (the histograms of the trained model are
        # computed too and dropped: they are wanted at initialization only).
        both = jax.tree.map(lambda a, b: jnp.stack([a, b]), start, end)
        stats, evals = jax.vmap(look)(*both)
        init_stats = jax.tree.map(lambda a: a[0], stats)
        trained_stats = {k: v[1] for k, v in stats.items() if not k.startswith("histogram")}
        return {"init": init_stats, "trained": trained_stats,
                "init_eval": evals[0], "trained_eval": evals[1], "curve": curve}

    return fn


def _engine_key(config: DepthStudyConfig, group: tuple[Any, ...],
                vmapped: str = "all") -> tuple[Any, ...]:
    """``(depth, width, activation, batch_norm, steps, batch_size, histogram_bins,
    histograms, vmapped)``: what makes ``group``'s engine (:func:`_compiled`) and its
    :func:`trace_count` key. ``histogram_bins`` is 0 without histograms (no recompile)."""
    d, w, a, bn = group
    return (d, w, a, bool(bn), config.steps, config.batch_size,
            config.histogram_bins if config.histograms else 0, config.histograms, vmapped)


@functools.cache
def _compiled(group: tuple[Any, ...], in_dim: int, num_classes: int):
    """The jitted engine of one shape group, ``group`` from :func:`_engine_key`.
    ``vmapped``: ``"all"`` (initializers x seeds), ``"inits"`` (initializers only; the
    Python-loop reference), ``"none"``."""
    depth, width, activation, batch_norm, steps, batch_size, histogram_bins, histograms, \
        vmapped = group
    cfg = _mlp_config(depth, width, activation, batch_norm, in_dim, num_classes)
    hist = None
    if histograms:
        lo, hi = _histogram_range(activation)
        hist = (histogram_bins, lo, hi)
    fn = _single_model_fn(cfg, steps, batch_size, hist, group)
    data_axes = (None,) * 8
    if vmapped in ("all", "inits"):
        if vmapped == "all":
            fn = jax.vmap(fn, in_axes=(0, 0, 0, None) + data_axes)  # seeds
        fn = jax.vmap(fn, in_axes=(0, 0, None, None) + data_axes)  # initializers
    return jax.jit(fn), group


@functools.cache
def _compiled_init(depth: int, width: int, batch_norm: bool, in_dim: int, num_classes: int):
    """The jitted initial params/state of every initializer x seed of one model shape,
    ``(stds (I, D+1), codes (I,), keys (S,)) -> (params, state)`` with leading axes
    ``(I, S)``. It depends on the layer sizes only, so every activation of a depth and width
    uses one compiled copy: the threefry and inverse-CDF draws took about 40% of a shallow
    group's compile time (1.5 s of ~3.5 s at depth 2, 3.0 s alone at depth 50) when each
    group's program held its own."""
    # the draws read the layer sizes and batch_norm only: any activation names the config
    cfg = _mlp_config(depth, width, "linear", batch_norm, in_dim, num_classes)

    def one(stds, code, key):
        _INIT_TRACES[(depth, width, batch_norm, in_dim, num_classes)] += 1  # while tracing
        return _init_model(cfg, key, stds, code)

    fn = jax.vmap(one, in_axes=(None, None, 0))  # seeds
    return jax.jit(jax.vmap(fn, in_axes=(0, 0, None)))  # initializers


def _layer_stds(specs: Sequence[InitSpec], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    stds = np.array([[s.stddev(sizes[l], sizes[l + 1]) for l in range(len(sizes) - 1)]
                     for s in specs], np.float32)
    codes = np.array([_DISTRIBUTIONS.index(s.distribution) for s in specs], np.int32)
    return stds, codes


def _seed_keys(config: DepthStudyConfig, seeds: Sequence[int]) -> Array:
    _, model_root = jax.random.split(jax.random.key(config.seed))
    return jnp.stack([jax.random.fold_in(model_root, s) for s in seeds])


def _arrays(config: DepthStudyConfig, data: _Data) -> tuple[Array, ...]:
    probe = min(config.probe_size, data.x_train.shape[0])
    ev = data.x_train.shape[0] if config.eval_size is None else config.eval_size
    te = data.x_test.shape[0] if config.eval_size is None else config.eval_size
    f = lambda a: jnp.asarray(a)
    return (f(data.x_train[:probe]), f(data.y_train[:probe]), f(data.x_train), f(data.y_train),
            f(data.x_train[:ev]), f(data.y_train[:ev]), f(data.x_test[:te]), f(data.y_test[:te]))


def _group_calls(config: DepthStudyConfig, data: _Data, group: tuple[Any, ...],
                 seeds: Sequence[int], vmapped: str = "all"):
    """``(init, init_args, engine, engine_args)`` of one shape group: the jitted initial
    draws and their inputs, the jitted engine and its inputs after ``(params, state)``."""
    depth, width, activation, batch_norm = group
    in_dim = data.x_train.shape[1]
    sizes = (in_dim,) + (width,) * depth + (data.num_classes,)
    stds, codes = _layer_stds(config.init_specs, sizes)
    keys = _seed_keys(config, seeds)
    lr = jnp.asarray(config.learning_rate, jnp.float32)
    fn, _ = _compiled(_engine_key(config, group, vmapped), in_dim, data.num_classes)
    init = _compiled_init(depth, width, bool(batch_norm), in_dim, data.num_classes)
    return (init, (jnp.asarray(stds), jnp.asarray(codes), keys), fn,
            (keys, lr, *_arrays(config, data)))


def _compile_group(config: DepthStudyConfig, data: _Data, group: tuple[Any, ...],
                   seeds: Sequence[int]) -> tuple[float, int, float | None]:
    """Trace and compile ``group``'s initial draws and engine into ``jax.jit``'s caches
    without running them, so that :func:`run_group` then only runs them: ``(seconds,
    engine traces, compile seconds)`` of this thread's work (see :func:`_timed_run_group`).
    :func:`run_study` calls it in a background thread for the next group while the
    current one runs."""
    t = time.perf_counter()
    key = _engine_key(config, group)
    c0 = trace_count(key)
    with _CompileClock() as clock:
        init, init_args, fn, rest = _group_calls(config, data, group, seeds)
        init.lower(*init_args).compile()
        fn.lower(*jax.eval_shape(init, *init_args), *rest).compile()
    traces = trace_count(key) - c0
    return time.perf_counter() - t, traces, clock.for_group(traces > 0)


def run_group(
    config: DepthStudyConfig, data: _Data, depth: int, width: int, activation: str,
    batch_norm: bool = False, *, seeds: Sequence[int] | None = None, mode: str = "vmap",
) -> dict[str, Any]:
    """Run every initializer x seed of one shape group; numpy arrays with leading axes
    ``(initializers, seeds)``.

    Args:
      config, data: the study and its data (:func:`load_study_data`).
      depth, width, activation, batch_norm: the shape group.
      seeds: seed indices (default ``range(config.seeds)``).
      mode: ``"vmap"`` (one call, seeds and initializers vmapped: the engine),
        ``"loop"`` (a Python loop over seeds, initializers vmapped: the benchmark reference)
        or ``"loop_all"`` (a Python loop over both).

    Returns:
      ``{"init": stats, "trained": stats, "init_eval": (I, S, 4), "trained_eval": (I, S, 4),
      "curve": (I, S, steps)}`` with ``*_eval = [train_loss, train_acc, test_loss,
      test_acc]`` and each stats entry of shape ``(I, S, ...)``.
    """
    seeds = list(range(config.seeds)) if seeds is None else list(seeds)
    vmapped = {"vmap": "all", "loop": "inits", "loop_all": "none"}[mode]
    init, init_args, fn, (keys, lr, *arrays) = _group_calls(
        config, data, (depth, width, activation, batch_norm), seeds, vmapped)
    stds = init_args[0]
    params, state = init(*init_args)
    if mode == "vmap":
        out = fn(params, state, keys, lr, *arrays)
        return jax.tree.map(np.asarray, out)

    def take(*index):
        return jax.tree.map(lambda x: x[index], (params, state))

    if mode == "loop":
        per_seed = [jax.tree.map(np.asarray, fn(*take(slice(None), s), keys[s], lr, *arrays))
                    for s in range(len(seeds))]
        return jax.tree.map(lambda *xs: np.stack(xs, axis=1), *per_seed)
    rows = []
    for i in range(len(stds)):
        per_seed = [jax.tree.map(np.asarray, fn(*take(i, s), keys[s], lr, *arrays))
                    for s in range(len(seeds))]
        rows.append(jax.tree.map(lambda *xs: np.stack(xs), *per_seed))
    return jax.tree.map(lambda *xs: np.stack(xs), *rows)


# ----------------------------------------------------------------------------- result

_LIST_FIELDS = ("weight_grad_norm", "grad_pre_activation_norm", "grad_activation_norm",
                "activation_mean", "activation_std", "pre_activation_std",
                "saturation_fraction", "dead_fraction", "nonfinite_fraction")
#: Column order of the tidy table.
COLUMNS = ("study", "dataset", "depth", "width", "activation", "initializer", "batch_norm",
           "seed", "phase", "probe_loss", "train_loss", "train_accuracy", "test_loss",
           "test_accuracy", "grad_ratio", "delta_ratio", "first_grad_norm", "last_grad_norm",
           "mean_saturation", "mean_dead_fraction", "finite", *_LIST_FIELDS)


def _f(x: Any) -> float:
    return float(x)


@dataclasses.dataclass
class DepthStudyResult:
    """What :func:`run_study` returns (plain Python / numpy; no pandas).

    Attributes:
      config: the study config.
      records: the tidy table, one dict per (depth, width, activation, initializer,
        batch_norm, seed, phase) with the columns of :data:`COLUMNS`. Scalars are floats;
        per-layer columns are lists (``weight_grad_norm`` and ``grad_pre_activation_norm``
        have ``depth + 1`` entries, the last one the output layer; the others ``depth``,
        hidden layers only). ``phase`` is ``"init"`` or ``"trained"``; the loss/accuracy
        columns are measured at that phase. ``finite`` is False when any statistic is
        inf/nan (an exploding model).
      curves: one dict per (depth, width, activation, initializer, batch_norm, seed) with
        ``losses`` (the minibatch training loss of every SGD step, a list).
      histograms: (when ``config.histograms``) one dict per (depth, width, activation,
        initializer, batch_norm, layer) with ``edges`` and ``counts`` summed over seeds, at
        initialization on the probe batch. ``counts`` hold the FINITE activations only
        (clipped into the range of ``edges``); ``nonfinite`` is the number of NaN/inf
        activations left out (``sum(counts) + nonfinite`` = seeds x probe rows x width).
      num_classes: classes of the data set (chance accuracy is ``1 / num_classes``).
      timing: ``{"total_s", "groups": [{"depth", "width", "activation", "batch_norm",
        "seconds", "compile_s"}], "compiles", "reused", "workers"}`` (see
        :func:`run_study`; ``compile_s`` is the part of ``seconds`` JAX spent tracing,
        lowering and compiling, None where JAX did not report it).
    """

    config: DepthStudyConfig
    records: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    histograms: list[dict[str, Any]]
    num_classes: int
    timing: dict[str, Any]

    def select(self, **where: Any) -> list[dict[str, Any]]:
        """Records whose columns equal every ``where`` value (e.g. ``phase="init"``)."""
        return [r for r in self.records if all(r.get(k) == v for k, v in where.items())]

    def column(self, name: str, **where: Any) -> np.ndarray:
        """One column of the selected records as a numpy array (per-layer columns as an
        object array of lists when depths differ)."""
        vals = [r[name] for r in self.select(**where)]
        try:
            return np.asarray(vals, dtype=float)
        except ValueError:
            return np.asarray(vals, dtype=object)

    def median(self, name: str, **where: Any) -> float:
        """Median over the selected records of a scalar column (nan when none/all nan)."""
        vals = self.column(name, **where).astype(float)
        vals = vals[~np.isnan(vals)]
        return float(np.median(vals)) if vals.size else float("nan")


def _records_for_group(config, data_name, group, out, specs, seeds):
    depth, width, activation, batch_norm = group
    records, curves, hists = [], [], []
    for i, spec in enumerate(specs):
        for j, seed in enumerate(seeds):
            for phase in ("init", "trained"):
                if phase == "trained" and config.steps == 0:
                    continue
                st = jax.tree.map(lambda a, i=i, j=j: a[i, j], out[phase])
                ev = out[f"{phase}_eval"][i, j]
                wg = st["weight_grad_norm"]
                lists = {k: [float(v) for v in np.ravel(st[k])] for k in _LIST_FIELDS}
                finite = bool(all(np.all(np.isfinite(np.asarray(st[k]))) for k in _LIST_FIELDS)
                              and np.isfinite(st["loss"]))
                rec = {
                    "study": config.name, "dataset": data_name, "depth": depth, "width": width,
                    "activation": activation, "initializer": spec.label,
                    "batch_norm": bool(batch_norm), "seed": int(seed), "phase": phase,
                    "probe_loss": _f(st["loss"]), "train_loss": _f(ev[0]),
                    "train_accuracy": _f(ev[1]), "test_loss": _f(ev[2]),
                    "test_accuracy": _f(ev[3]), "grad_ratio": _f(st["grad_ratio"]),
                    "delta_ratio": _f(st["delta_ratio"]), "first_grad_norm": _f(wg[0]),
                    "last_grad_norm": _f(wg[depth - 1]),
                    "mean_saturation": _f(np.mean(st["saturation_fraction"])),
                    "mean_dead_fraction": _f(np.mean(st["dead_fraction"])),
                    "finite": finite, **lists,
                }
                records.append(rec)
            if config.steps > 0:
                curves.append({"depth": depth, "width": width, "activation": activation,
                               "initializer": spec.label, "batch_norm": bool(batch_norm),
                               "seed": int(seed),
                               "losses": [float(v) for v in out["curve"][i, j]]})
        if config.histograms:
            lo, hi = _histogram_range(activation)
            edges = np.linspace(lo, hi, config.histogram_bins + 1)
            counts = out["init"]["histogram"][i].sum(axis=0)  # over seeds: (depth, bins)
            nonfinite = out["init"]["histogram_nonfinite"][i].sum(axis=0)  # (depth,)
            for layer in range(depth):
                hists.append({"depth": depth, "width": width, "activation": activation,
                              "initializer": spec.label, "batch_norm": bool(batch_norm),
                              "layer": layer + 1, "edges": [float(e) for e in edges],
                              "counts": [float(c) for c in counts[layer]],
                              "nonfinite": float(nonfinite[layer])})
    return records, curves, hists


def weight_bytes(config: DepthStudyConfig, in_dim: int, num_classes: int) -> int:
    """Bytes of the float32 weights of the largest shape group's models, all seeds and
    initializers together (as one vmapped call holds them)."""
    models = config.seeds * len(config.initializers)
    return max(4 * models * (in_dim * w + (d - 1) * w * w + w * num_classes)
               for d in config.depths for w in config.widths)


def _check_memory(config: DepthStudyConfig, in_dim: int, num_classes: int) -> None:
    """Refuse a sweep whose weights alone (with their gradients and the update: ~3x) do not
    fit in the device's memory, before anything is allocated: on a CPU such a sweep was not
    an out-of-memory error but the process killed by the system, mid-allocation."""
    need = 3 * weight_bytes(config, in_dim, num_classes)
    limit = device_memory_limit()
    if limit is not None and need > limit:
        raise ValueError(
            f"widths/depths: the largest shape group's {config.seeds} seeds x "
            f"{len(config.initializers)} initializers need ~{need / 2**30:.3g} GiB for "
            f"their weights, gradients and update, more than the device's "
            f"{limit / 2**30:.3g} GiB; use smaller widths or depths, or fewer seeds or "
            "initializers")


def run_study(
    config: DepthStudyConfig, *, data: _Data | None = None, progress: Any = None,
    workers: int = 1, compile_ahead: bool = True,
) -> DepthStudyResult:
    """Run the whole sweep: one vmapped, jitted call per shape group.

    Args:
      config: the study.
      data: preloaded data (default :func:`load_study_data`).
      progress: optional callable ``progress(message: str)`` called after each group (or
        each share of a group's seeds, with ``workers > 1``).
      workers: CPU processes to spread the shape groups over (see
        :mod:`jaxnn.studies.workers`; 0 = one per usable core). Each is pinned to its own
        cores and compiles the groups it runs. When there are fewer groups than workers, a
        group's seeds are split between them. The records are the same as with one
        process, in the same order, up to float32 rounding (different thread counts and
        vmapped batch sizes may round matmuls differently). On the 2-core CPU two workers
        ran the full sweep 1.13x faster than one process compiling ahead (1.45x than one
        compiling each group just before it runs); on an accelerator use 1.
      compile_ahead: in one process, trace and compile the next shape group in a
        background thread while the current one runs (the same records, sooner). False:
        each group compiles, then runs.

    Returns:
      A :class:`DepthStudyResult`; ``timing["workers"]`` is the number of processes and
      each group's ``seconds`` the time its worker(s) spent on it (in one process with
      ``compile_ahead``: its compiling in the background thread plus its run), ``compile_s``
      the part of it JAX spent tracing, lowering and compiling (or loading from its persistent
      compilation cache; None if this JAX did not report it). ``timing["compiles"]``
      counts the compilations THIS call made (traces of the engine, see
      :func:`trace_count`) and ``timing["reused"]`` the shape groups (with ``workers > 1``:
      group x seed-share tasks) that found their kernel already compiled by an earlier
      call in the same process, so a second identical study reports 0 compilations and
      every group reused.

    Raises:
      ValueError: a bad ``workers`` value (not an integer >= 0, e.g. ``True``, ``1.5`` or
        ``-1``; more than the usable cores), ``workers > 1`` off the CPU backend, or a
        sweep whose largest shape group's weights (x3: gradients and update) exceed the
        device's memory (:func:`weight_bytes`), found before anything is allocated.
    """
    t0 = time.perf_counter()
    # Checked before anything runs, and always: ``workers=True`` equals 1 and would
    # otherwise run silently as one process.
    nproc = len(core_shares(workers))
    compiles0 = trace_count()
    data = load_study_data(config) if data is None else data
    n_train = data.x_train.shape[0]
    _check(config.probe_size <= n_train, "probe_size", config.probe_size,
           f"at most the {n_train} training rows of {data.name}")
    # before the seeds are listed (range(10**11) was a bare MemoryError)
    _check_memory(config, int(np.prod(data.x_train.shape[1:])), data.num_classes)
    specs = config.init_specs
    seeds = list(range(config.seeds))
    shape_groups = [(d, w, a, bn) for bn in config.batch_norm for a in config.activations
                    for w in config.widths for d in config.depths]
    if nproc == 1:
        outs, secs, csecs, reused = _run_in_process(config, data, shape_groups, seeds,
                                                    compile_ahead, progress)
        compiles = trace_count() - compiles0
    else:
        outs, secs, csecs, compiles, reused = _run_in_workers(config, data, shape_groups,
                                                              nproc, progress)
    records, curves, hists, groups = [], [], [], []
    for group in shape_groups:
        r, c, h = _records_for_group(config, data.name, group, outs[group], specs, seeds)
        records += r
        curves += c
        hists += h
        d, w, a, bn = group
        groups.append({"depth": d, "width": w, "activation": a, "batch_norm": bn,
                       "seconds": secs[group], "compile_s": csecs[group]})
    timing = {"total_s": time.perf_counter() - t0, "groups": groups, "compiles": compiles,
              "reused": reused, "workers": nproc}
    return DepthStudyResult(config, records, curves, hists, data.num_classes, timing)


def _group_message(k: int, total: int, group: tuple[Any, ...], n_specs: int,
                   seeds: Sequence[int], secs: float, compile_s: float | None = None) -> str:
    d, w, a, bn = group
    msg = (f"[{k}/{total}] depth={d} width={w} activation={a} batch_norm={bn}: "
           f"{n_specs} initializers x {len(seeds)} seeds in {secs:.1f} s")
    if compile_s is not None:
        msg += f" (compiling {compile_s:.1f} s)"
    return msg


# Per worker process (see _run_in_workers): the study and its data, received once.
_WORKER: dict[str, Any] = {}


def _worker_init(config: DepthStudyConfig, data: _Data) -> None:
    _WORKER["config"], _WORKER["data"] = config, data


def _timed_run_group(config: DepthStudyConfig, data: _Data, group: tuple[Any, ...],
                     seeds: Sequence[int]):
    """:func:`run_group` of ``group`` for ``seeds``, with its wall seconds, the traces of
    its engine it made (0: its kernel was compiled earlier) and the seconds JAX spent
    compiling in this thread (None: traced but not reported)."""
    t = time.perf_counter()
    key = _engine_key(config, group)
    c0 = trace_count(key)
    with _CompileClock() as clock:
        out = run_group(config, data, *group, seeds=seeds)
    traces = trace_count(key) - c0
    return out, time.perf_counter() - t, traces, clock.for_group(traces > 0)


def _run_in_process(config: DepthStudyConfig, data: _Data, shape_groups, seeds,
                    compile_ahead: bool, progress):
    """The shape groups one after the other in this process. With ``compile_ahead`` a
    background thread traces and compiles the next group (:func:`_compile_group`) while
    the current one runs: XLA compiles in one thread and the groups' matmuls scale poorly
    over the cores, so the two overlap. A group's ``seconds`` and ``compile_s`` add its
    compiling in that thread to its run in this one (their sum over the groups exceeds the
    wall time, as with worker processes); the records are the same either way."""
    outs, secs, csecs, reused = {}, {}, {}, 0
    pool = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxnn-compile")
            if compile_ahead and shape_groups else None)

    def compile_next(k):
        if pool is None or k >= len(shape_groups):
            return None
        return pool.submit(_compile_group, config, data, shape_groups[k], seeds)

    try:
        ahead = compile_next(0)
        for k, group in enumerate(shape_groups):
            pre_s, pre_traces, pre_c = 0.0, 0, 0.0
            if ahead is not None:
                pre_s, pre_traces, pre_c = ahead.result()
                ahead = compile_next(k + 1)
            out, s, traces, c = _timed_run_group(config, data, group, seeds)
            outs[group], secs[group] = out, pre_s + s
            csecs[group] = None if pre_c is None or c is None else pre_c + c
            reused += pre_traces + traces == 0  # an earlier run in this process compiled it
            if progress is not None:
                progress(_group_message(k + 1, len(shape_groups), group,
                                        len(config.init_specs), seeds, secs[group],
                                        csecs[group]))
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return outs, secs, csecs, reused


def _worker_task(group: tuple[Any, ...], seeds: tuple[int, ...]):
    return _timed_run_group(_WORKER["config"], _WORKER["data"], group, seeds)


def _group_cost(config: DepthStudyConfig, in_dim: int, group: tuple[Any, ...]) -> float:
    depth, width, _, _ = group
    return (in_dim * width + (depth - 1) * width * width) * (config.steps + 2)


def _run_in_workers(config, data, shape_groups, workers, progress):
    seeds = list(range(config.seeds))
    # Fewer groups than workers: split each group's seeds so every worker has work.
    parts = min(len(seeds), -(-workers // len(shape_groups)))
    chunks = [tuple(int(s) for s in c) for c in np.array_split(seeds, parts)]
    in_dim = data.x_train.shape[1]
    # Longest first, so the last task to finish is a short one.
    tasks = sorted(((g, c) for g in shape_groups for c in chunks),
                   key=lambda t: -_group_cost(config, in_dim, t[0]) * len(t[1]))
    pieces: dict[tuple[Any, ...], dict[tuple[int, ...], Any]] = collections.defaultdict(dict)
    secs: dict[tuple[Any, ...], float] = collections.defaultdict(float)
    csecs: dict[tuple[Any, ...], float | None] = collections.defaultdict(float)
    compiles = reused = 0
    with CorePool(workers, initializer=_worker_init, initargs=(config, data)) as pool:
        # An error (or Ctrl-C) leaves the with block through CorePool.__exit__, which
        # terminates the workers instead of waiting for their running tasks.
        futures = {pool.submit(_worker_task, g, c): (g, c) for g, c in tasks}
        for k, fut in enumerate(concurrent.futures.as_completed(futures)):
            g, c = futures[fut]
            out, s, nc, cs = fut.result()
            pieces[g][c] = out
            secs[g] += s
            # Summed over the group's seed shares, as its seconds are; unknown if any is.
            csecs[g] = None if cs is None or csecs[g] is None else csecs[g] + cs
            compiles += nc
            reused += nc == 0
            if progress is not None:
                msg = _group_message(k + 1, len(tasks), g, len(config.initializers), c, s,
                                     cs)
                if len(chunks) > 1:
                    msg += f" (seeds {c[0]}..{c[-1]})"
                progress(msg)
    outs = {g: jax.tree.map(lambda *xs: np.concatenate(xs, axis=1),
                            *[pieces[g][c] for c in chunks])
            for g in shape_groups}
    return outs, dict(secs), dict(csecs), compiles, reused


# ----------------------------------------------------------------------------- benchmark


def benchmark_vmap_vs_loop(
    config: DepthStudyConfig | None = None, *, depth: int = 8, width: int = 64,
    activation: str = "relu", repeats: int = 3,
) -> dict[str, Any]:
    """Time the vmapped engine against a Python loop over seeds on the same workload.

    All run every initializer x seed of one shape group: ``vmap`` is the engine (one call),
    ``loop`` calls a jitted function vmapped over initializers once per seed (a Python loop
    over seeds), ``loop_all`` a jitted single-model function once per initializer x seed.
    Each is compiled before timing; the best of ``repeats`` wall times is kept.

    Args:
      config: the study (default: digits, 5 initializers, 5 seeds, 100 SGD steps).
      depth, width, activation: the shape group.
      repeats: timed repetitions of each.

    Returns:
      ``{"vmap_s", "loop_s", "loop_all_s", "speedup" (= loop_s / vmap_s),
      "speedup_vs_loop_all" (= loop_all_s / vmap_s), "models", "steps", "depth", "width",
      "activation", "seeds", "initializers"}``.
    """
    if config is None:
        config = DepthStudyConfig(
            dataset="digits", depths=(depth,), widths=(width,), activations=(activation,),
            initializers=("normal(0.01)", "normal(1)", "xavier", "he", "lecun"), seeds=5,
            steps=100, batch_size=64, learning_rate=0.05,
        )
    data = load_study_data(config)
    times = {}
    for mode in ("vmap", "loop", "loop_all"):
        run_group(config, data, depth, width, activation, mode=mode)  # compile
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            run_group(config, data, depth, width, activation, mode=mode)
            best = min(best, time.perf_counter() - t)
        times[mode] = best
    return {
        "vmap_s": times["vmap"], "loop_s": times["loop"], "loop_all_s": times["loop_all"],
        "speedup": times["loop"] / times["vmap"],
        "speedup_vs_loop_all": times["loop_all"] / times["vmap"],
        "models": config.seeds * len(config.initializers), "steps": config.steps,
        "depth": depth, "width": width, "activation": activation,
        "seeds": config.seeds, "initializers": list(config.initializers),
    }
