"""Loss functions, each beside its hand-written gradient.

Contract. Every loss has the signature::

    loss(predictions_or_logits, targets, *, reduction="mean") -> Array
    loss_grad(predictions_or_logits, targets, *, reduction="mean") -> Array

with the batch on axis 0. A loss first computes one value per example, shape
``(batch,)``, then reduces it:

* ``reduction="mean"``: the mean over the batch (a scalar), the usual training objective;
* ``reduction="sum"``: the sum over the batch (a scalar);
* ``reduction="none"``: the per-example losses themselves, shape ``(batch,)``.

``loss_grad`` is the gradient of the reduced loss with respect to the predictions (or
logits), with their shape and dtype; it is written by hand, never with ``jax.grad``.
For ``reduction="none"`` (a vector, which has no gradient) ``loss_grad`` returns the
gradient of the SUM of the per-example losses, i.e. each example's own gradient stacked
along the batch axis.

Per-example losses, for predictions ``p`` / logits ``z`` of shape ``(N, ...)``:

==========================================  ===============================================
loss                                        per example
==========================================  ===============================================
mse                                         mean over the non-batch axes of ``(p - t)^2``
sigmoid_binary_cross_entropy                mean over the non-batch axes of
                                            ``-y log sigmoid(z) - (1 - y) log sigmoid(-z)``
softmax_cross_entropy                       ``-sum_c y_c log_softmax(z)_c`` (last axis =
                                            classes; mean over any axes between batch and
                                            classes)
softmax_cross_entropy_with_integer_labels   same with ``y = one_hot(labels)``
==========================================  ===============================================

Label smoothing. The three cross-entropies take ``label_smoothing=a`` (a Python number in
``[0, 1)``, default 0) and replace the labels by smoothed ones before the formulas above;
their ``_grad`` take it too and differentiate the smoothed loss:

* softmax, ``C`` classes: ``y_s = (1 - a) y + a sum_c(y_c) / C``, which for labels that sum
  to 1 (one-hot rows, probabilities, integer labels) is ``optax.smooth_labels(y, a)`` and
  the targets of PyTorch's ``CrossEntropyLoss(label_smoothing=a)``; an all-zero row
  (padding) stays all zero. With integer labels the loss is
  ``(1 - a) (-log_softmax(z)[y]) + a mean_c(-log_softmax(z)_c)``.
* sigmoid: ``y_s = (1 - a) y + a / 2`` per entry (Keras' ``BinaryCrossentropy``).
* mse has no ``label_smoothing`` (its targets are not labels): passing one is a
  ``TypeError``, and ``get("mse", label_smoothing=...)`` a ``ValueError``.

``a = 0`` runs the unsmoothed code, so it is bit-identical to omitting the argument. With
``a > 0`` every class gets some target mass, so a ``-inf`` (masked) logit makes the loss
``inf``: mask such classes out of the logits before, not with ``-inf`` here.

Conventions.

* Dtypes: the result has the dtype of the predictions/logits (float32 in, float32 out);
  targets and soft labels are cast to it. Integer predictions are converted to the
  default floating dtype; complex predictions, targets or labels raise ``TypeError``.
  ``mse`` and ``mse_grad`` compute float16/bfloat16 inputs in float32 and round once, so a
  float16 mse (or its gradient) is finite and accurate whenever its value fits.
* Cross-entropies are computed from logits in closed forms that never overflow
  (logits of +-1000, or -1e4, give finite values and gradients in float32).
* Arguments are checked eagerly (also under ``jit``, where shapes are static): a shape
  mismatch, a bad ``reduction`` or ``label_smoothing``, an empty batch, non-integer labels,
  or integer labels
  out of ``[0, num_classes)`` when their values are concrete raise ``ValueError``
  naming the function, the argument, what was received and what is allowed. Traced
  out-of-range labels (inside ``jit``/``vmap``) cannot be checked; they give NaN losses
  and NaN gradient rows instead of silently wrapping around.

References:
  * C. M. Bishop, "Pattern Recognition and Machine Learning", Springer 2006, sections
    4.3.2 and 4.3.4 (logistic and softmax regression: gradient ``prediction - target``).
  * J. S. Bridle, "Probabilistic interpretation of feedforward classification network
    outputs, with relationships to statistical pattern recognition", Neurocomputing 1990
    (softmax with cross-entropy).
  * C. Szegedy et al., "Rethinking the Inception architecture for computer vision", CVPR
    2016, section 7 (label smoothing); R. Muller, S. Kornblith, G. Hinton, "When does
    label smoothing help?", NeurIPS 2019.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn import activations
from jaxnn._static import float_array, real_array, static_scalar

__all__ = [
    "REDUCTIONS",
    "get",
    "get_grad",
    "smoothable_names",
    "mse",
    "mse_grad",
    "names",
    "serialize",
    "sigmoid_binary_cross_entropy",
    "sigmoid_binary_cross_entropy_grad",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_cross_entropy_with_integer_labels_grad",
]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- helpers


def _real(x: ArrayLike, argname: str, fn: str) -> Array:
    return real_array(x, f"jaxnn.losses.{fn}", argname)


def _as_float(x: ArrayLike, argname: str, fn: str) -> Array:
    return float_array(x, f"jaxnn.losses.{fn}", argname)


def _check_reduction(reduction: Any, fn: str) -> None:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"jaxnn.losses.{fn}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, "
            f"got {reduction!r}"
        )


def _label_smoothing(value: Any, fn: str) -> float:
    """``label_smoothing`` as a Python float in ``[0, 1)``; static, as a ``reduction`` is:
    ``0`` must select the unsmoothed code, and the range is checked before tracing."""
    where = f"jaxnn.losses.{fn}"
    v = static_scalar(value, where, "label_smoothing", expected="real number in [0, 1)")
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v < 1.0:
        raise ValueError(
            f"{where}: label_smoothing must be a real number in [0, 1), got {value!r}"
        )
    return float(v)


def _check_batch(x: Array, argname: str, min_ndim: int, fn: str, what: str) -> None:
    if x.ndim < min_ndim:
        raise ValueError(
            f"jaxnn.losses.{fn}: {argname} must have rank >= {min_ndim} ({what}), "
            f"got shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(
            f"jaxnn.losses.{fn}: {argname} must not be empty (a batch of at least one "
            f"example), got shape {x.shape}"
        )


def _same_shape(p: Array, t: Array, pname: str, tname: str, fn: str) -> None:
    if p.shape != t.shape:
        raise ValueError(
            f"jaxnn.losses.{fn}: {tname} must have the shape of {pname} {p.shape} "
            f"(no broadcasting), got {t.shape}"
        )


def _per_example(values: Array) -> Array:
    """Mean over every axis but the batch axis: ``(N, ...) -> (N,)``."""
    if values.ndim == 1:
        return values
    return jnp.mean(values, axis=tuple(range(1, values.ndim)))


def _reduce(per_example: Array, reduction: str) -> Array:
    if reduction == "mean":
        return jnp.mean(per_example)
    if reduction == "sum":
        return jnp.sum(per_example)
    return per_example


def _grad_scale(batch: int, reduction: str) -> float:
    """d(reduced)/d(per-example loss): 1/N for the mean, 1 for the sum (and for "none")."""
    return 1.0 / batch if reduction == "mean" else 1.0


# ----------------------------------------------------------------------------- mse


def _mse_args(predictions: ArrayLike, targets: ArrayLike, reduction: Any,
              fn: str) -> tuple[Array, Array]:
    _check_reduction(reduction, fn)
    p = _as_float(predictions, "predictions", fn)
    t = _real(targets, "targets", fn)
    _check_batch(p, "predictions", 1, fn, "batch first")
    _same_shape(p, t, "predictions", "targets", fn)
    return p, t.astype(p.dtype)


def mse(predictions: ArrayLike, targets: ArrayLike, *, reduction: str = "mean") -> Array:
    """Mean squared error.

    Per example ``n``: ``l_n = (1/D) sum_i (p_ni - t_ni)^2`` over the ``D`` entries of
    the non-batch axes (for 1-D predictions, ``l_n = (p_n - t_n)^2``). With
    ``reduction="mean"`` the loss is ``(1/N) sum_n l_n``, the mean over all entries.

    Gradient (:func:`mse_grad`): ``dL/dp = 2 (p - t) / (N D)`` for ``"mean"``,
    ``2 (p - t) / D`` for ``"sum"`` and ``"none"``. (No factor 1/2: this is the
    ``mean((p - t)^2)`` of Keras and PyTorch, whereas ``optax.l2_loss`` is half of it.)

    Args:
      predictions: array of shape ``(N, ...)``.
      targets: array of the same shape; cast to the predictions' dtype.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or shape ``(N,)`` for ``"none"``, in the predictions' dtype.

    Raises:
      ValueError: shape mismatch, empty predictions or a bad ``reduction``.
    """
    p, t = _mse_args(predictions, targets, reduction, "mse")
    # A float16 square overflows for |p - t| > 256 while the mean may be far below 65504:
    # square and average in at least float32, round once (a no-op for float32/float64).
    acc = jnp.promote_types(p.dtype, jnp.float32)
    d = p.astype(acc) - t.astype(acc)
    return _reduce(_per_example(d * d), reduction).astype(p.dtype)


def mse_grad(predictions: ArrayLike, targets: ArrayLike, *, reduction: str = "mean") -> Array:
    """Gradient of :func:`mse` w.r.t. the predictions: ``2 (p - t) / D`` times 1/N for "mean".

    For ``reduction="none"`` it is the gradient of the sum of the per-example losses.
    """
    p, t = _mse_args(predictions, targets, reduction, "mse_grad")
    per_entry = p.size // p.shape[0]
    # In at least float32, rounded once (as mse, and so as jax.grad of it): in float16 the
    # factor 2 / (N D) is a subnormal with few bits from N D ~ 3e4 on (2e-7 read 1.79e-7)
    # and 0 from ~7e7 on, and p - t overflows beyond 65504.
    acc = jnp.promote_types(p.dtype, jnp.float32)
    d = p.astype(acc) - t.astype(acc)
    return (d * (2.0 * _grad_scale(p.shape[0], reduction) / per_entry)).astype(p.dtype)


# ----------------------------------------------------------------------------- binary


def _bce_args(logits: ArrayLike, labels: ArrayLike, reduction: Any, label_smoothing: Any,
              fn: str) -> tuple[Array, Array]:
    _check_reduction(reduction, fn)
    a = _label_smoothing(label_smoothing, fn)
    z = _as_float(logits, "logits", fn)
    y = _real(labels, "labels", fn)
    _check_batch(z, "logits", 1, fn, "batch first")
    _same_shape(z, y, "logits", "labels", fn)
    y = y.astype(z.dtype)
    if a:  # Keras' binary smoothing: each entry is a two-class distribution (y, 1 - y)
        y = y * (1.0 - a) + 0.5 * a
    return z, y


def sigmoid_binary_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Binary cross-entropy of independent sigmoid outputs, from logits.

    Per entry, with ``s = sigmoid(z)`` and a (possibly soft) label ``y`` in ``[0, 1]``:
    ``l = -y log(s) - (1 - y) log(1 - s)``, computed as the overflow-free
    ``max(z, 0) - z y + log1p(exp(-|z|))``; an infinite logit gets its limit (0 with the
    label it predicts, inf with the other; optax's formula gives nan for the first). Per
    example: the mean over the non-batch axes (``D`` entries); then ``reduction`` over the
    batch.

    Gradient (:func:`sigmoid_binary_cross_entropy_grad`):
    ``dL/dz = (sigmoid(z) - y) / (N D)`` for ``"mean"``, ``(sigmoid(z) - y) / D`` for
    ``"sum"`` and ``"none"``.

    With ``label_smoothing=a`` the labels are first replaced by ``y (1 - a) + a / 2`` (as
    Keras' ``BinaryCrossentropy(label_smoothing=a)``), in the loss and in its gradient.

    Args:
      logits: array of shape ``(N, ...)`` (pre-sigmoid scores).
      labels: array of the same shape with values in ``[0, 1]`` (not checked); cast to
        the logits' dtype.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      label_smoothing: ``a``, a Python number in ``[0, 1)``; 0 (default) is no smoothing.

    Returns:
      A scalar, or shape ``(N,)`` for ``"none"``, in the logits' dtype.

    Raises:
      ValueError: shape mismatch, empty logits, a bad ``reduction`` or ``label_smoothing``.
    """
    z, y = _bce_args(logits, labels, reduction, label_smoothing, "sigmoid_binary_cross_entropy")
    # max(z, 0) - z y as max(z, 0) (1 - y) + max(-z, 0) y, each product taken as 0 where its
    # label weight is 0: an infinite logit with the label it predicts costs 0 (the limit),
    # not inf - inf = nan; with the other label it costs inf. -|z| as min(z, -z) so that
    # jax.grad of the whole is exact at z = 0 too (ties of max/min split the gradient).
    pos = jnp.where(y == 1.0, 0.0, jnp.maximum(z, 0.0) * (1.0 - y))
    neg = jnp.where(y == 0.0, 0.0, jnp.maximum(-z, 0.0) * y)
    per_entry = pos + neg + jnp.log1p(jnp.exp(jnp.minimum(z, -z)))
    return _reduce(_per_example(per_entry), reduction)


def sigmoid_binary_cross_entropy_grad(
    logits: ArrayLike, labels: ArrayLike, *, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Gradient of :func:`sigmoid_binary_cross_entropy`: ``(sigmoid(z) - y) / D``, /N for "mean".

    ``y`` is the smoothed label ``y (1 - a) + a / 2`` for ``label_smoothing=a``. For
    ``reduction="none"`` it is the gradient of the sum of the per-example losses.
    """
    z, y = _bce_args(logits, labels, reduction, label_smoothing,
                     "sigmoid_binary_cross_entropy_grad")
    per_entry = z.size // z.shape[0]
    return (lax.logistic(z) - y) * (_grad_scale(z.shape[0], reduction) / per_entry)


# ----------------------------------------------------------------------------- softmax


def _positions(z: Array) -> int:
    """Number of class distributions per example (entries of the axes 1..-2)."""
    return math.prod(z.shape[1:-1])


def _ce_args(logits: ArrayLike, labels: ArrayLike, reduction: Any, label_smoothing: Any,
             fn: str) -> tuple[Array, Array]:
    _check_reduction(reduction, fn)
    a = _label_smoothing(label_smoothing, fn)
    z = _as_float(logits, "logits", fn)
    y = _real(labels, "labels", fn)
    _check_batch(z, "logits", 2, fn, "batch first, classes last")
    _same_shape(z, y, "logits", "labels", fn)
    y = y.astype(z.dtype)
    if a:
        # optax.smooth_labels spreads a / C; spreading a * sum(y) / C is the same for rows
        # that sum to 1 and keeps an all-zero (padding) row at zero instead of making it
        # a / C everywhere, which would give a masked position an infinite loss.
        y = y * (1.0 - a) + jnp.sum(y, axis=-1, keepdims=True) * (a / z.shape[-1])
    return z, y


def softmax_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Softmax cross-entropy from logits, with one-hot or soft labels.

    Per example: ``l_n = -sum_c y_nc log_softmax(z_n)_c`` over the last (class) axis. For
    logits of rank > 2, ``(N, T, ..., C)``, ``l_n`` is the mean over the ``M`` positions
    of the middle axes. Terms with ``y = 0`` contribute 0 even where a logit is ``-inf``
    (masked classes). A position with a ``+inf`` logit (and some non-zero label) has a
    NaN loss and NaN gradient, as ``optax.softmax_cross_entropy``; see
    :func:`jaxnn.activations.log_softmax`.

    Gradient (:func:`softmax_cross_entropy_grad`), fused through the softmax:
    ``dL/dz = (softmax(z) * sum_c y_c - y) / (N M)`` for ``"mean"`` (``/ M`` for
    ``"sum"`` and ``"none"``), which is ``(softmax(z) - y) / N`` for rank-2 logits and
    labels that sum to 1.

    With ``label_smoothing=a`` the labels are first replaced by
    ``y_s = (1 - a) y + a sum_c(y_c) / C``, in the loss and in its gradient: for labels
    that sum to 1 that is ``optax.smooth_labels(y, a) = (1 - a) y + a / C``, the targets
    of PyTorch's ``CrossEntropyLoss(label_smoothing=a)``; an all-zero row stays zero.

    Args:
      logits: array of shape ``(N, ..., C)``.
      labels: array of the same shape (rows of one-hot vectors or probabilities; not
        checked); cast to the logits' dtype.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      label_smoothing: ``a``, a Python number in ``[0, 1)``; 0 (default) is no smoothing.

    Returns:
      A scalar, or shape ``(N,)`` for ``"none"``, in the logits' dtype.

    Raises:
      ValueError: shape mismatch, logits of rank < 2 or empty, a bad ``reduction`` or
        ``label_smoothing``.
    """
    z, y = _ce_args(logits, labels, reduction, label_smoothing, "softmax_cross_entropy")
    log_p = activations.log_softmax(z, axis=-1)
    terms = jnp.where(y != 0, y * log_p, 0.0)
    return _reduce(_per_example(-jnp.sum(terms, axis=-1)), reduction)


def softmax_cross_entropy_grad(
    logits: ArrayLike, labels: ArrayLike, *, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Gradient of :func:`softmax_cross_entropy`: ``(softmax(z) * sum(y) - y) / M``, /N for "mean".

    ``y`` is the smoothed label ``y_s`` for ``label_smoothing=a`` (``sum(y_s) = sum(y)``).
    For ``reduction="none"`` it is the gradient of the sum of the per-example losses.
    """
    z, y = _ce_args(logits, labels, reduction, label_smoothing, "softmax_cross_entropy_grad")
    scale = _grad_scale(z.shape[0], reduction) / _positions(z)
    p = activations.softmax(z, axis=-1)
    y_sum = jnp.sum(y, axis=-1, keepdims=True)
    # A fully masked position (all logits -inf, all labels 0) has the constant loss 0 but a
    # 0/0 softmax: its gradient is 0, not NaN.
    return (jnp.where(y_sum != 0, p * y_sum, 0.0) - y) * scale


def _concrete(x: Array) -> np.ndarray | None:
    """The values of ``x`` if they are known now (not inside jit/vmap), else None."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _int_ce_args(logits: ArrayLike, labels: ArrayLike, reduction: Any, label_smoothing: Any,
                 fn: str) -> tuple[Array, Array, Array, float]:
    _check_reduction(reduction, fn)
    a = _label_smoothing(label_smoothing, fn)
    z = _as_float(logits, "logits", fn)
    # NumPy (or list) labels are read as they are before jnp.asarray: without x64 it turns
    # int64 into int32, wrapping 2**32 + 1 around to the valid class 1.
    raw = None if isinstance(labels, jax.Array) else _concrete(labels)
    if raw is not None and raw.dtype.kind in "OSU":
        # Python ints beyond int64 (an object array) or strings: name the first such value
        # (jnp.asarray gave "Error interpreting argument to stage as a JAX value").
        first = next((v for v in raw.flat if not isinstance(v, (int, np.integer))
                      or not -(2**63) <= v < 2**63), raw.flat[0])
        first = first.item() if isinstance(first, np.generic) else first
        raise ValueError(f"jaxnn.losses.{fn}: labels must be integer class indices, got "
                         f"{first!r}")
    y = _real(labels if raw is None else raw, "labels", fn)
    _check_batch(z, "logits", 2, fn, "batch first, classes last")
    if y.shape != z.shape[:-1]:
        raise ValueError(
            f"jaxnn.losses.{fn}: labels must have shape logits.shape[:-1] = {z.shape[:-1]} "
            f"(one class index per example), got {y.shape}"
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(
            f"jaxnn.losses.{fn}: labels must be integer class indices, got dtype {y.dtype} "
            f"(use softmax_cross_entropy for one-hot or soft labels)"
        )
    num_classes = z.shape[-1]
    if jnp.iinfo(y.dtype).max < num_classes:
        # Compare in a type that holds num_classes: in int8, `y < 200` would wrap around.
        y = y.astype(jnp.int32)
    values = raw if raw is not None and raw.dtype.kind in "iu" else _concrete(y)
    if values is not None and values.size and (
        values.min() < 0 or values.max() >= num_classes
    ):
        bad = values[(values < 0) | (values >= num_classes)]
        raise ValueError(
            f"jaxnn.losses.{fn}: labels must lie in [0, {num_classes}) for logits with "
            f"{num_classes} classes, got values {sorted(set(bad.tolist()))[:5]}"
        )
    valid = (y >= 0) & (y < num_classes)
    return z, jnp.clip(y, 0, num_classes - 1), valid, a


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike, labels: ArrayLike, *, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Softmax cross-entropy from logits and integer class labels.

    Per example: ``l_n = -log_softmax(z_n)[y_n] = logsumexp(z_n) - z_n[y_n]``; equal to
    :func:`softmax_cross_entropy` with ``one_hot(y)`` (for logits of rank > 2 the mean over
    the middle positions, likewise), also for a ``+inf`` logit, which makes the loss and
    gradient of its position NaN (``optax.softmax_cross_entropy_with_integer_labels``
    gives ``inf`` there when the label is another class).

    Gradient (:func:`softmax_cross_entropy_with_integer_labels_grad`):
    ``dL/dz = (softmax(z) - one_hot(y)) / (N M)`` for ``"mean"``, ``/ M`` for ``"sum"``
    and ``"none"`` (``M = 1`` for rank-2 logits).

    With ``label_smoothing=a`` the target is ``y_s = (1 - a) one_hot(y) + a / C``
    (``optax.smooth_labels``; PyTorch's ``CrossEntropyLoss(label_smoothing=a)``):
    ``l = (1 - a) (-log_softmax(z)[y]) + a mean_c(-log_softmax(z)_c)``, with gradient
    ``(softmax(z) - y_s) / (N M)`` for ``"mean"``.

    Args:
      logits: array of shape ``(N, ..., C)``.
      labels: integer array of shape ``logits.shape[:-1]`` with values in ``[0, C)``.
        Checked when concrete; traced out-of-range labels give NaN losses.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      label_smoothing: ``a``, a Python number in ``[0, 1)``; 0 (default) is no smoothing.

    Returns:
      A scalar, or shape ``(N,)`` for ``"none"``, in the logits' dtype.

    Raises:
      ValueError: labels of the wrong shape or dtype, concrete labels out of range,
        logits of rank < 2 or empty, a bad ``reduction`` or ``label_smoothing``.
    """
    z, y, valid, a = _int_ce_args(
        logits, labels, reduction, label_smoothing, "softmax_cross_entropy_with_integer_labels"
    )
    log_p = activations.log_softmax(z, axis=-1)
    # The label's entry picked by a select, not take_along_axis: the same value (the other
    # entries add exact zeros), but autodiff's gradient is a select too instead of a
    # scatter, which vmap turns into a batched scatter (a suspect in the slow GPU build of
    # bench W3's autodiff-vmap row, docs/benchmarks.md).
    picked = jnp.where(jax.nn.one_hot(y, z.shape[-1], dtype=jnp.bool_), log_p, 0.0)
    nll = -jnp.sum(picked, axis=-1)
    if a:
        nll = (1.0 - a) * nll - a * jnp.mean(log_p, axis=-1)
    per_position = jnp.where(valid, nll, jnp.nan)
    return _reduce(_per_example(per_position), reduction)


def softmax_cross_entropy_with_integer_labels_grad(
    logits: ArrayLike, labels: ArrayLike, *, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Gradient of :func:`softmax_cross_entropy_with_integer_labels`.

    ``(softmax(z) - y_s) / M``, times 1/N for ``"mean"``, with ``y_s = one_hot(y)``, or
    ``(1 - a) one_hot(y) + a / C`` for ``label_smoothing=a``; for ``reduction="none"``
    the gradient of the sum of the per-example losses. Rows with traced out-of-range labels
    are NaN.
    """
    z, y, valid, a = _int_ce_args(
        logits, labels, reduction, label_smoothing,
        "softmax_cross_entropy_with_integer_labels_grad",
    )
    scale = _grad_scale(z.shape[0], reduction) / _positions(z)
    target = jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)
    if a:
        target = target * (1.0 - a) + a / z.shape[-1]
    g = (activations.softmax(z, axis=-1) - target) * scale
    return jnp.where(valid[..., None], g, jnp.nan)


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, tuple[Callable[..., Array], Callable[..., Array]]] = {
    "mse": (mse, mse_grad),
    "sigmoid_binary_cross_entropy": (
        sigmoid_binary_cross_entropy,
        sigmoid_binary_cross_entropy_grad,
    ),
    "softmax_cross_entropy": (softmax_cross_entropy, softmax_cross_entropy_grad),
    "softmax_cross_entropy_with_integer_labels": (
        softmax_cross_entropy_with_integer_labels,
        softmax_cross_entropy_with_integer_labels_grad,
    ),
}


class _Bound:
    """A loss (or its gradient) with keyword arguments bound; made by get/get_grad."""

    __slots__ = ("name", "func", "keywords", "is_grad", "__weakref__")  # jit needs weakrefs

    def __init__(self, name: str, func: Callable[..., Array], keywords: dict[str, Any],
                 is_grad: bool) -> None:
        self.name = name
        self.func = func
        self.keywords = dict(keywords)
        self.is_grad = is_grad

    def __call__(self, predictions: ArrayLike, targets: ArrayLike) -> Array:
        return self.func(predictions, targets, **self.keywords)

    def _key(self) -> tuple[Any, ...]:
        return (self.name, self.func, self.is_grad, tuple(sorted(self.keywords.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Bound) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={v!r}" for k, v in self.keywords.items())
        what = "get_grad" if self.is_grad else "get"
        return f"jaxnn.losses.{what}({self.name!r}, {kw})"


def names() -> tuple[str, ...]:
    """All registered loss names."""
    return tuple(_REGISTRY)


def smoothable_names() -> tuple[str, ...]:
    """The registered losses that take ``label_smoothing`` (the cross-entropies)."""
    return tuple(n for n in _REGISTRY
                 if "label_smoothing" in inspect.signature(_REGISTRY[n][0]).parameters)


def _lookup(name: Any, fn: str) -> tuple[Callable[..., Array], Callable[..., Array]]:
    if not isinstance(name, str):
        raise TypeError(f"jaxnn.losses.{fn}: name must be a string from names(), got {name!r}")
    if name not in _REGISTRY:
        valid = names()
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"jaxnn.losses.{fn}: unknown loss {name!r}; {hint}valid names: {', '.join(valid)}"
        )
    return _REGISTRY[name]


def _bind(name: str, func: Callable[..., Array], kwargs: dict[str, Any], fn: str,
          is_grad: bool) -> Callable[..., Array]:
    allowed = [
        p.name for p in inspect.signature(func).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for key, value in kwargs.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"jaxnn.losses.{fn}: unexpected argument {key!r} for loss {name!r}{hint}; "
                f"allowed: {', '.join(allowed)}"
            )
        if key == "reduction":
            _check_reduction(value, fn)
        if key == "label_smoothing":  # a plain float: hashable, so a jit static argument
            kwargs = {**kwargs, key: _label_smoothing(value, fn)}
    return _Bound(name, func, kwargs, is_grad) if kwargs else func


def get(name: str, **kwargs: Any) -> Callable[..., Array]:
    """The loss registered as ``name``.

    Without keyword arguments the module function itself is returned
    (``get("mse") is mse``); ``get(name, reduction="sum")`` (or ``label_smoothing=0.1``
    for a cross-entropy) returns a function of ``(predictions, targets)`` with those
    keyword arguments bound.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown name (the message suggests the closest valid names), an
        unexpected keyword argument (``label_smoothing`` for ``mse``), a bad ``reduction``
        or ``label_smoothing``.
    """
    forward, _ = _lookup(name, "get")
    return _bind(name, forward, kwargs, "get", is_grad=False)


def get_grad(name: str, **kwargs: Any) -> Callable[..., Array]:
    """The hand-written gradient ``<name>_grad`` of the loss ``name`` (rules as :func:`get`)."""
    _, grad = _lookup(name, "get_grad")
    return _bind(name, grad, kwargs, "get_grad", is_grad=True)


def serialize(fn: Callable[..., Array]) -> str:
    """The registry name of a loss or of a function returned by :func:`get`.

    ``serialize(get(name)) == name``; a bound ``reduction`` or ``label_smoothing`` is not
    part of the string (they are available as ``fn.keywords``).

    Raises:
      ValueError: ``fn`` is not a registered loss (gradients are rejected with a hint).
    """
    if isinstance(fn, _Bound):
        if fn.is_grad:
            raise ValueError(
                f"jaxnn.losses.serialize: {fn!r} is a gradient; serialize the loss instead"
            )
        return fn.name
    for name, (forward, grad) in _REGISTRY.items():
        if fn is forward:
            return name
        if fn is grad:
            raise ValueError(
                f"jaxnn.losses.serialize: {getattr(fn, '__name__', fn)!r} is the gradient of "
                f"{name!r}; serialize the loss instead"
            )
    raise ValueError(
        f"jaxnn.losses.serialize: {fn!r} is not a registered loss nor a function returned by "
        f"jaxnn.losses.get; registered: {', '.join(names())}"
    )
