"""The :class:`Dataset` type and what the training loop does with one: split, subsample,
normalize, batch.

Contract:

* A :class:`Dataset` is a frozen container of host (numpy) arrays, validated when built:
  features are ``float32`` of shape ``(N, D)`` (images flattened), labels are ``int32`` of
  shape ``(N,)`` with values in ``[0, num_classes)`` for ``task="classification"``, or
  ``float32`` of shape ``(N, k)`` for ``task="regression"`` (then ``num_classes is None``).
  Train and test splits are required; a validation split (``x_val``/``y_val``) is optional.
  Update one with :meth:`Dataset.replace`, which validates again.
* Splitting and subsampling are keyed by an explicit ``jax.random`` key and are deterministic
  per key: the same key always gives the same split. Classification splits are stratified.
  They sample on the host with :func:`host_rng` (numpy seeded from the key).
* :func:`normalize` computes every statistic from the *training* split only and applies it to
  every split, so nothing about the test (or validation) data leaks into training.
* :func:`epoch_batches` (shuffled batches) and :func:`epoch_indices` (their indices, for a
  per-batch gather) are pure ``jax.numpy`` functions, jit-compatible with ``batch_size`` and
  ``drop_remainder`` static, so a compiled epoch can shuffle on the device.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "NORMALIZATIONS",
    "TASKS",
    "Dataset",
    "batch_mask",
    "epoch_batches",
    "epoch_indices",
    "host_rng",
    "normalize",
    "num_batches",
    "standardization_stats",
    "subsample",
    "train_test_split",
    "train_val_split",
]

#: The values of :attr:`Dataset.task`.
TASKS: tuple[str, ...] = ("classification", "regression")
#: The methods of :func:`normalize`.
NORMALIZATIONS: tuple[str, ...] = ("none", "scale", "standardize", "standardize_global")


# --------------------------------------------------------------------------------------------
# Small argument checks shared by the data modules.


def _require_key(key: Any, fn: str, why: str) -> Any:
    """Return ``key`` if it looks like a PRNG key; a clear ValueError otherwise."""
    if key is None:
        raise ValueError(
            f"{fn}: key=None, but {why} needs an explicit PRNG key; "
            f"pass key=jax.random.key(seed)"
        )
    if isinstance(key, (bool, int, np.integer)):
        raise ValueError(
            f"{fn}: key={key!r} is a plain integer; pass key=jax.random.key({key!r}) instead"
        )
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    raw = dtype == np.uint32 and np.ndim(key) >= 1  # a legacy jax.random.PRNGKey(seed)
    if not (typed or raw):
        what = (f"an array of dtype {dtype} and shape {np.shape(key)}" if dtype is not None
                else repr(key))
        raise ValueError(
            f"{fn}: key must be a jax.random key (jax.random.key(seed) or "
            f"jax.random.PRNGKey(seed)), got {what}"
        )
    return key


def _check_fraction(value: Any, fn: str, arg: str) -> float:
    """A fraction strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{fn}: {arg} must be a number in (0, 1), got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{fn}: {arg} must be in (0, 1), got {value!r}")
    return value


def _check_count(value: Any, fn: str, arg: str, *, minimum: int = 1) -> int:
    """A Python (or numpy) integer >= minimum; bools and floats are refused."""
    if isinstance(value, bool):
        raise ValueError(f"{fn}: {arg} must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{fn}: {arg} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{fn}: {arg} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_positive(value: Any, fn: str, arg: str) -> float:
    """A finite number > 0; bools and non-numbers are refused."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not 0 < value < math.inf):
        raise ValueError(f"{fn}: {arg} must be a finite number > 0, got {value!r}")
    return float(value)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def host_rng(key: Any) -> np.random.Generator:
    """A numpy random generator seeded by a ``jax.random`` key, for host-side sampling.

    The seed is 128 bits drawn from ``key`` (``jax.random.bits(key, (4,), uint32)``), so the
    generator is a deterministic function of the key. Data preparation (splits, subsets,
    synthetic sets) samples with it on the host: a ``jax.random`` call would compile once
    per array shape, which costs more than the sampling itself for data sets of varying size.
    """
    bits = np.asarray(jax.random.bits(key, (4,), dtype=jnp.uint32))
    return np.random.default_rng([int(b) for b in bits])


# --------------------------------------------------------------------------------------------
# The Dataset type.


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True entry of ``mask``."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_features(name: str, x: Any) -> None:
    if not isinstance(x, np.ndarray):
        raise ValueError(
            f"Dataset: {name} must be a numpy array, got {type(x).__name__}; "
            f"convert with numpy.asarray(..., dtype=numpy.float32)"
        )
    if x.dtype != np.float32:
        raise ValueError(f"Dataset: {name} must have dtype float32, got {x.dtype}")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"Dataset: {name} must have shape (N, D) with N, D >= 1 (images flattened), "
            f"got shape {x.shape}"
        )
    finite = np.isfinite(x)
    if not finite.all():
        where = _first_bad(~finite)
        raise ValueError(f"Dataset: {name} has a non-finite value {x[where]} at index {where}")


def _check_targets(name: str, y: Any, task: str, num_classes: int | None) -> None:
    if not isinstance(y, np.ndarray):
        raise ValueError(
            f"Dataset: {name} must be a numpy array, got {type(y).__name__}; "
            f"convert with numpy.asarray"
        )
    if task == "classification":
        if y.dtype != np.int32:
            raise ValueError(f"Dataset: {name} must have dtype int32 (class labels), got {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"Dataset: {name} must have shape (N,) (class labels), got {y.shape}")
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            i = _first_bad(bad)[0]
            raise ValueError(
                f"Dataset: {name} has label {int(y[i])} at index {i}, outside "
                f"[0, {num_classes}) (num_classes={num_classes})"
            )
    else:
        if y.dtype != np.float32:
            raise ValueError(
                f"Dataset: {name} must have dtype float32 (regression targets), got {y.dtype}"
            )
        if y.ndim != 2 or y.shape[1] < 1:
            raise ValueError(
                f"Dataset: {name} must have shape (N, k) with k >= 1 (regression targets), "
                f"got shape {y.shape}"
            )
        finite = np.isfinite(y)
        if not finite.all():
            where = _first_bad(~finite)
            raise ValueError(f"Dataset: {name} has a non-finite value {y[where]} at index {where}")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train / test (/ validation) splits of one data set, as validated numpy arrays.

    Attributes:
      x_train, x_test: ``float32`` features of shape ``(N, D)``; images are flattened.
      y_train, y_test: ``int32`` labels of shape ``(N,)`` in ``[0, num_classes)``
        (classification) or ``float32`` targets of shape ``(N, k)`` (regression).
      task: ``"classification"`` or ``"regression"``.
      num_classes: number of classes (>= 2) for classification; ``None`` for regression.
      name: the data set's name (as given to :func:`jaxnn.data.load`).
      x_val, y_val: an optional validation split (both or neither), see
        :func:`train_val_split`.
      class_names: optional human-readable class names, one per class.
      normalization: which :func:`normalize` method has been applied (``"none"`` when the
        features are as loaded).

    Raises:
      ValueError: on construction (and on :meth:`replace`) when an array has the wrong type,
        dtype or shape, a label is out of range, a value is not finite, or the splits
        disagree on the number of features; the message names the array and the bad value.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str = "classification"
    num_classes: int | None = None
    name: str = "dataset"
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    normalization: str = "none"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Dataset: task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Dataset: name must be a non-empty string, got {self.name!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"Dataset: normalization must be one of {NORMALIZATIONS}, "
                f"got {self.normalization!r}"
            )
        if self.task == "classification":
            nc = self.num_classes
            if isinstance(nc, bool) or not isinstance(nc, (int, np.integer)) or nc < 2:
                raise ValueError(
                    f"Dataset: num_classes must be an integer >= 2 for classification, got {nc!r}"
                )
            # A numpy integer (``y.max() + 1``) would make summary() unserializable as JSON.
            object.__setattr__(self, "num_classes", int(nc))
        elif self.num_classes is not None:
            raise ValueError(
                f"Dataset: num_classes must be None for regression, got {self.num_classes!r}"
            )
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(
                "Dataset: x_val and y_val must be given together, got "
                f"x_val={'None' if self.x_val is None else 'an array'}, "
                f"y_val={'None' if self.y_val is None else 'an array'}"
            )
        splits = [("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)]
        if self.x_val is not None:
            splits.append(("val", self.x_val, self.y_val))
        for split, x, y in splits:
            _check_features(f"x_{split}", x)
            _check_targets(f"y_{split}", y, self.task, self.num_classes)
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"Dataset: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}"
                )
            if x.shape[1] != self.x_train.shape[1]:
                raise ValueError(
                    f"Dataset: x_{split} has {x.shape[1]} features, x_train has "
                    f"{self.x_train.shape[1]}"
                )
            if y.shape[1:] != self.y_train.shape[1:]:
                raise ValueError(
                    f"Dataset: y_{split} has shape {y.shape}, incompatible with y_train "
                    f"{self.y_train.shape}"
                )
        if self.class_names is not None:
            if self.task != "classification" or len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"Dataset: class_names must hold one name per class ({self.num_classes}), "
                    f"got {self.class_names!r}"
                )

    # -- conveniences ------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Dataset:
        """A copy with the given fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def num_features(self) -> int:
        """``D``, the width of a feature row (784 for MNIST)."""
        return int(self.x_train.shape[1])

    @property
    def num_outputs(self) -> int:
        """Width of the model output: ``num_classes``, or ``k`` for regression targets."""
        if self.task == "classification":
            return int(self.num_classes)
        return int(self.y_train.shape[1])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def num_val(self) -> int:
        """Rows in the validation split (0 when there is none)."""
        return 0 if self.x_val is None else int(self.x_val.shape[0])

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_test, self.y_test

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(x_val, y_val)``, or None when there is no validation split."""
        return None if self.x_val is None else (self.x_val, self.y_val)

    def summary(self) -> Mapping[str, Any]:
        """Plain-data description (for logs and run metadata)."""
        return {
            "name": self.name,
            "task": self.task,
            "num_classes": self.num_classes,
            "num_features": self.num_features,
            "num_outputs": self.num_outputs,
            "num_train": self.num_train,
            "num_val": self.num_val,
            "num_test": self.num_test,
            "normalization": self.normalization,
        }

    def __repr__(self) -> str:
        val = None if self.x_val is None else self.x_val.shape
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, num_classes={self.num_classes}, "
            f"train={self.x_train.shape}, val={val}, test={self.x_test.shape}, "
            f"normalization={self.normalization!r})"
        )


# --------------------------------------------------------------------------------------------
# Splitting and subsampling (host side, keyed).


def _split_indices(
    key: Any, y: np.ndarray, fraction: float, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``, each in a uniformly random order.

    One permutation chooses the held-out rows, a second, independent one orders both parts.
    Reusing the first for the order would put the classes that filled their held-out quota
    early at the front of ``keep``.
    """
    n = y.shape[0]
    rng = host_rng(key)
    perm = rng.permutation(n)
    total = _round_half_up(fraction * n)
    chosen = np.zeros(n, dtype=bool)  # over positions of perm
    if stratify:
        # Equal rows form a class, so (N, k) targets (one-hot labels) stratify row by row
        # rather than element by element.
        _, permuted, counts = np.unique(
            y[perm].reshape(n, -1), axis=0, return_inverse=True, return_counts=True
        )
        permuted = permuted.reshape(n)
        # Largest remainders: each class gets floor or ceil of its share, and the shares add
        # up to `total` exactly (rounding each class alone can give 0 for small classes).
        share = fraction * counts
        quota = np.floor(share).astype(int)
        tiebreak = rng.permutation(counts.size)
        extra = np.lexsort((tiebreak, -(share - quota)))[: total - quota.sum()]
        quota[extra] += 1
        for c, q in enumerate(quota):
            chosen[np.flatnonzero(permuted == c)[:q]] = True
    else:
        chosen[:total] = True
    held = np.zeros(n, dtype=bool)  # over rows
    held[perm[chosen]] = True
    order = rng.permutation(n)
    return order[~held[order]], order[held[order]]


def _default_stratify(y: np.ndarray, stratify: bool | None) -> bool:
    if stratify is None:
        return y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    return bool(stratify)


def train_test_split(
    key: Any,
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float,
    *,
    stratify: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(x, y)`` at random into a train and a test part.

    The test part has exactly ``round(test_fraction * n)`` rows (halves round up). Stratified,
    class ``c`` (``n_c`` rows) contributes ``floor(test_fraction * n_c)`` or one more, the
    extra rows going to the classes with the largest fractional remainders (ties broken at
    random), so every class keeps its proportion to within one row. Which rows: the first ones
    of each class (or overall, not stratified) in a random permutation from :func:`host_rng`
    of ``key``. Both parts are then put in the order of a second, independent permutation, so
    classes are interleaved and any prefix of either part is a uniform random subset of it.

    Args:
      key: a ``jax.random`` key; the split is a deterministic function of it.
      x: features, ``(N, ...)``.
      y: labels ``(N,)`` or targets ``(N, k)``.
      test_fraction: fraction of rows for the test part, in (0, 1).
      stratify: split each class separately; default: True for integer labels of shape
        ``(N,)``, False otherwise. With targets of shape ``(N, k)`` (one-hot labels), equal
        rows form a class.

    Returns:
      ``(x_train, y_train, x_test, y_test)`` as numpy arrays.

    Raises:
      ValueError: no key, fraction outside (0, 1), mismatched lengths, or an empty part.
    """
    return _train_test_split("train_test_split", key, x, y, test_fraction, stratify)


def _train_test_split(
    fn: str, key: Any, x: Any, y: Any, test_fraction: Any, stratify: bool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`train_test_split` with errors naming ``fn``, the function the user called."""
    _require_key(key, fn, "a random split")
    test_fraction = _check_fraction(test_fraction, fn, "test_fraction")
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{fn}: x has {x.shape[0]} rows but y has {y.shape[0]}")
    keep, held = _split_indices(key, y, test_fraction, _default_stratify(y, stratify))
    if keep.size == 0 or held.size == 0:
        raise ValueError(
            f"{fn}: test_fraction={test_fraction} of {y.shape[0]} rows leaves "
            f"{keep.size} train and {held.size} test rows; both must be non-empty"
        )
    return x[keep], y[keep], x[held], y[held]


def train_val_split(
    dataset: Dataset, fraction: float, key: Any, *, stratify: bool | None = None
) -> Dataset:
    """Hold out ``fraction`` of the training split as a validation split.

    The split rule is that of :func:`train_test_split` (stratified for classification by
    default); the test split is untouched. Normalize *after* this (as
    :func:`jaxnn.data.load` does) so the statistics come from the remaining training rows only.

    Args:
      dataset: a :class:`Dataset` without a validation split.
      fraction: fraction of the training rows to hold out, in (0, 1).
      key: a ``jax.random`` key.
      stratify: as in :func:`train_test_split`.

    Returns:
      A :class:`Dataset` with ``x_val``/``y_val`` set and a smaller training split.

    Raises:
      ValueError: the data set already has a validation split, no key, bad fraction, or an
        empty part.
    """
    fn = "train_val_split"
    if dataset.x_val is not None:
        raise ValueError(f"{fn}: data set {dataset.name!r} already has a validation split")
    _require_key(key, fn, "a random validation split")
    fraction = _check_fraction(fraction, fn, "fraction")
    keep, held = _split_indices(
        key, dataset.y_train, fraction, _default_stratify(dataset.y_train, stratify)
    )
    if keep.size == 0 or held.size == 0:
        raise ValueError(
            f"{fn}: fraction={fraction} of {dataset.num_train} training rows leaves "
            f"{keep.size} train and {held.size} validation rows; both must be non-empty"
        )
    return dataset.replace(
        x_train=dataset.x_train[keep],
        y_train=dataset.y_train[keep],
        x_val=dataset.x_train[held],
        y_val=dataset.y_train[held],
    )


def subsample(
    dataset: Dataset,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    key: Any = None,
) -> Dataset:
    """Keep only ``n_train`` training rows and ``n_test`` test rows (for fast runs).

    With a key, the rows kept are a uniformly random subset (the first ``n`` entries of a
    random permutation from :func:`host_rng`, drawn afresh for each split, so the test rows
    kept do not depend on ``n_train``); without one, the *first* ``n`` rows are kept, which is
    deterministic and fine for files already in random order (MNIST). The validation split,
    if any, is kept whole.

    Args:
      dataset: the :class:`Dataset` to cut down.
      n_train: rows of the training split to keep (None: all).
      n_test: rows of the test split to keep (None: all).
      key: optional ``jax.random`` key (see above).

    Returns:
      The smaller :class:`Dataset` (the same object when nothing changes).

    Raises:
      ValueError: a count below 1 or above the number of rows available.
    """
    fn = "subsample"
    changes: dict[str, np.ndarray] = {}
    if key is not None:
        _require_key(key, fn, "random subsampling")
    for split, n in (("train", n_train), ("test", n_test)):
        if n is None:
            continue
        n = _check_count(n, fn, f"n_{split}")
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        available = x.shape[0]
        if n > available:
            raise ValueError(
                f"{fn}: n_{split}={n} but the {split} split of {dataset.name!r} has only "
                f"{available} rows"
            )
        if n == available:
            continue
        # A generator per split: the test rows kept must not depend on n_train.
        rows = slice(0, n) if key is None else host_rng(key).permutation(available)[:n]
        changes[f"x_{split}"], changes[f"y_{split}"] = x[rows], y[rows]
    return dataset.replace(**changes) if changes else dataset


# --------------------------------------------------------------------------------------------
# Normalization (statistics from the training split only).


def standardization_stats(
    x: np.ndarray, *, per_feature: bool = True, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation used by ``normalize(..., "standardize")``.

    .. math:: \\mu = \\frac{1}{N}\\sum_i x_i, \\qquad
       \\sigma = \\sqrt{\\frac{1}{N}\\sum_i (x_i - \\mu)^2}

    over rows (``per_feature=True``: one value per column, shape ``(D,)``) or over every
    entry (``per_feature=False``: shape ``()``), accumulated in float64. A ``sigma`` below
    ``eps`` (a constant feature, such as MNIST's always-black border pixels) is replaced by 1,
    so such features are centered but not blown up.

    Returns:
      ``(mean, std)`` as float32 numpy arrays; apply as ``(x - mean) / std``.

    Raises:
      ValueError: ``eps`` is not a finite number > 0 (with ``eps=0`` a constant feature
        would be divided by 0), or ``x`` has no rows.
    """
    fn = "standardization_stats"
    eps = _check_positive(eps, fn, "eps")
    x = np.asarray(x)
    if x.ndim == 0:
        x = x.reshape(1)
    count = x.shape[0] if per_feature else x.size
    if count == 0:
        raise ValueError(f"{fn}: x of shape {x.shape} has no entries to take statistics of")
    # Two passes over blocks of rows, each cast to float64 alone: a float64 copy of the whole
    # array (376 MB for MNIST's training rows, and as much again for its centered square)
    # is never held.
    rows = max(1, _STATS_BLOCK // max(1, math.prod(x.shape[1:])))
    blocks = [x[i:i + rows] for i in range(0, x.shape[0], rows)]
    axis = 0 if per_feature else None
    mean = sum(b.sum(axis=axis, dtype=np.float64) for b in blocks) / count

    def squared_deviations(b: np.ndarray) -> np.ndarray:
        d = b - mean  # float64, one block
        return np.square(d, out=d).sum(axis=axis)

    var = sum(squared_deviations(b) for b in blocks) / count
    std = np.sqrt(var)
    std = np.where(std < eps, 1.0, std)
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


#: Entries per block in :func:`standardization_stats` (2 MB of float64).
_STATS_BLOCK = 1 << 18


def normalize(
    dataset: Dataset,
    method: str,
    *,
    max_value: float | None = 255.0,
    eps: float = 1e-6,
) -> Dataset:
    """Rescale the features of every split with statistics of the training split only.

    Methods:

    * ``"none"``: unchanged.
    * ``"scale"``: :math:`x / m` with ``m = max_value`` (the largest raw pixel value: 255 for
      8-bit images, 16 for scikit-learn's digits), mapping pixels to [0, 1].
    * ``"standardize"``: :math:`(x - \\mu_j) / \\sigma_j` per feature ``j``, with
      :math:`\\mu, \\sigma` from :func:`standardization_stats` of ``x_train``.
    * ``"standardize_global"``: the same with one :math:`\\mu, \\sigma` over all training
      entries (keeps the relative contrast between pixels).

    Standardization is invariant to a prior rescaling, except on features constant over
    ``x_train``: their ``sigma`` is replaced by 1 in the units they are given in (so
    :func:`jaxnn.data.load` standardizes pixels after dividing them by their maximum).
    Targets are never changed.

    Args:
      dataset: a :class:`Dataset` whose ``normalization`` is ``"none"``.
      method: one of :data:`NORMALIZATIONS`.
      max_value: the divisor for ``"scale"``; must be finite and positive.
      eps: the floor on ``sigma`` (see :func:`standardization_stats`); finite and positive.

    Returns:
      A :class:`Dataset` with float32 features and ``normalization=method``.

    Raises:
      ValueError: unknown method, a ``max_value`` or ``eps`` that is not a finite number
        > 0, or a data set that is already normalized (normalizing twice is almost always a
        mistake).
    """
    fn = "normalize"
    if method not in NORMALIZATIONS:
        raise ValueError(f"{fn}: method must be one of {NORMALIZATIONS}, got {method!r}")
    if method == "none":
        return dataset
    if dataset.normalization != "none":
        raise ValueError(
            f"{fn}: data set {dataset.name!r} is already normalized "
            f"({dataset.normalization!r}); refusing to apply {method!r} on top"
        )
    if method == "scale":
        if max_value is None:
            raise ValueError(f"{fn}: method='scale' needs max_value > 0, got None")
        max_value = _check_positive(max_value, fn, "max_value")
        shift, divisor = np.float32(0.0), np.float32(max_value)
    else:
        eps = _check_positive(eps, fn, "eps")
        shift, divisor = standardization_stats(
            dataset.x_train, per_feature=(method == "standardize"), eps=eps
        )

    def apply(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        # Divide (not multiply by a reciprocal) so that m / m is exactly 1.
        return ((x - shift) / divisor).astype(np.float32, copy=False)

    return dataset.replace(
        x_train=apply(dataset.x_train),
        x_test=apply(dataset.x_test),
        x_val=apply(dataset.x_val),
        normalization=method,
    )


# --------------------------------------------------------------------------------------------
# Batching for the training loop (device side, jit-compatible).


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches in one epoch of ``n`` examples.

    ``n // batch_size`` when ``drop_remainder`` (the last ``n % batch_size`` examples of each
    epoch's permutation are skipped), else ``ceil(n / batch_size)``.

    Raises:
      ValueError: ``n < 1``, or ``batch_size`` not an integer in ``[1, n]``.
    """
    fn = "num_batches"
    n = _check_count(n, fn, "n")
    batch_size = _check_count(batch_size, fn, "batch_size")
    if batch_size > n:
        raise ValueError(
            f"{fn}: batch_size={batch_size} is larger than the number of examples n={n}; "
            f"allowed: 1 <= batch_size <= n"
        )
    return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_indices(
    key: Any, n: int, batch_size: int, *, drop_remainder: bool = True
) -> jax.Array:
    """The example indices of one shuffled epoch, cut into batches.

    With ``p = jax.random.permutation(key, n)`` (``p = arange(n)`` when ``key`` is None) and
    ``B = num_batches(n, batch_size, drop_remainder)``, entry ``[b, i]`` is
    ``p[b * batch_size + i]``; the remainder is handled as described in
    :func:`epoch_batches`.

    This is the memory-light way to shuffle inside a compiled epoch: ``lax.scan`` over the
    rows of the result and gather ``x[idx]`` for one batch at a time in the scan body. On a
    2-core CPU, gathering per batch was about 4x faster for MNIST than gathering the whole
    shuffled copy up front (:func:`epoch_batches`), which also holds a second copy of the
    data in memory.

    Pure and jit-compatible with ``n``, ``batch_size`` and ``drop_remainder`` static.

    Returns:
      An ``int32`` array of shape ``(B, batch_size)``.

    Raises:
      ValueError: ``n < 1`` or ``batch_size`` outside ``[1, n]``.
    """
    nb = num_batches(n, batch_size, drop_remainder)
    total = nb * batch_size
    order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
    order = order.astype(jnp.int32)
    if total <= n:
        order = order[:total]
    else:
        order = jnp.concatenate([order, order[: total - n]])
    return order.reshape(nb, batch_size)


def epoch_batches(
    key: Any,
    x: jax.Array | np.ndarray,
    y: jax.Array | np.ndarray,
    batch_size: int,
    *,
    drop_remainder: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Shuffle ``(x, y)`` with a keyed permutation and cut it into equal batches.

    With ``p = jax.random.permutation(key, n)`` and ``B = num_batches(n, batch_size,
    drop_remainder)``, batch ``b`` row ``i`` is example ``p[b * batch_size + i]`` (the indices
    are :func:`epoch_indices`).

    The remainder (``r = n % batch_size`` examples):

    * ``drop_remainder=True``: the last ``r`` examples of *this epoch's* permutation are not
      used this epoch. The permutation changes every epoch, so no example is left out for
      good; each is skipped in an epoch with probability ``r / n``.
    * ``drop_remainder=False``: the last batch is filled up to ``batch_size`` with the first
      ``batch_size - r`` examples of the permutation, so those few are seen twice this epoch
      and every batch keeps the static shape jit needs. :func:`batch_mask` marks the repeats
      if an exact epoch average is wanted.

    ``key=None`` keeps the original order (for evaluation).

    Pure and jit-compatible with ``batch_size`` and ``drop_remainder`` static, e.g.
    ``jax.jit(epoch_batches, static_argnames=("batch_size", "drop_remainder"))``, so the
    training loop can shuffle inside a compiled epoch and ``lax.scan`` over the batches. It
    materializes a shuffled copy of ``x``; for large data sets prefer :func:`epoch_indices`
    and a per-batch gather in the scan body.

    Args:
      key: a ``jax.random`` key, or None for no shuffle.
      x: features, shape ``(n, ...)``.
      y: labels or targets, shape ``(n, ...)``.
      batch_size: a Python int in ``[1, n]``.
      drop_remainder: see above.

    Returns:
      ``(x_batches, y_batches)`` of shapes ``(B, batch_size, ...)``, dtypes unchanged.

    Raises:
      ValueError: ``x`` and ``y`` disagree on ``n``, or ``batch_size`` outside ``[1, n]``.
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"epoch_batches: x has {n} rows but y has {y.shape[0]}")
    try:
        idx = epoch_indices(key, n, batch_size, drop_remainder=drop_remainder)
    except ValueError as err:
        raise ValueError(str(err).replace("num_batches:", "epoch_batches:", 1)) from None
    xb = jnp.take(jnp.asarray(x), idx, axis=0)
    yb = jnp.take(jnp.asarray(y), idx, axis=0)
    return xb, yb


def batch_mask(n: int, batch_size: int, *, drop_remainder: bool = True) -> np.ndarray:
    """Which entries of :func:`epoch_batches`'s output are first visits of an example.

    Returns:
      A bool array of shape ``(num_batches(n, batch_size, drop_remainder), batch_size)``:
      all True, except (``drop_remainder=False``) the wrap-around fill of the last batch.
      ``sum(loss * mask) / sum(mask)`` is then the exact mean over the ``n`` examples.
    """
    nb = num_batches(n, batch_size, drop_remainder)
    return (np.arange(nb * batch_size) < n).reshape(nb, batch_size)
