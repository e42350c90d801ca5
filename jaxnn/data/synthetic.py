"""Small synthetic data sets, each a deterministic function of an explicit PRNG key.

Contract: every generator returns a :class:`~jaxnn.data.dataset.Dataset` with ``float32``
features of shape ``(N, D)`` and, for classification, ``int32`` labels, classes as balanced
as ``n_samples`` allows (sizes differ by at most one) and a stratified train/test split.
A generator that draws random numbers requires ``key`` (a ``jax.random`` key) and raises
ValueError without one; the same key always gives the same arrays (sampling runs on the host
with :func:`~jaxnn.data.dataset.host_rng`, computed in float64, stored as float32). ``xor``
without noise is the four points of the truth table and needs no key.

The sets and their geometry:

* ``xor``: inputs ``{0,1}^2``, label ``x1 XOR x2`` (the smallest problem a linear model
  cannot solve; Minsky & Papert, *Perceptrons*, 1969).
* ``spirals``: ``num_classes`` interleaved arms ``r = t``, ``phi = 2 pi (turns t + c / K)``,
  ``t ~ U(0, 1)`` (Lang & Witbrock, "Learning to tell two spirals apart", 1988).
* ``moons``: two interleaved half circles, ``(cos a, sin a)`` and ``(1 - cos a, 1/2 - sin a)``.
* ``circles``: two concentric circles of radii 1 and ``factor``.
* ``blobs``: isotropic Gaussian clusters around random centres.
* ``sine``: regression ``y = A sin(f x + phase) + noise``, ``x ~ U(low, high)``.

Noise is additive Gaussian with standard deviation ``noise`` on every feature (on the target
for ``sine``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from jaxnn._memory import check_host_rows
from jaxnn.data.dataset import (
    Dataset,
    _check_count,
    _check_positive,
    _require_key,
    _train_test_split,
    host_rng,
)

__all__ = ["blobs", "circles", "moons", "sine", "spirals", "xor"]

_XOR_POINTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
_XOR_LABELS = np.array([0, 1, 1, 0], dtype=np.int32)


def _check_nonneg(value: Any, fn: str, arg: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{fn}: {arg} must be a number >= 0, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{fn}: {arg} must be a finite number >= 0, got {value!r}")
    return float(value)


def _balanced_labels(n: int, num_classes: int) -> np.ndarray:
    """``n`` labels, class ``c`` repeated ``n // K`` times plus one for ``c < n % K``."""
    sizes = [n // num_classes + (c < n % num_classes) for c in range(num_classes)]
    return np.repeat(np.arange(num_classes, dtype=np.int32), sizes)


def _classification(
    name: str, key: Any, x: np.ndarray, y: np.ndarray, num_classes: int, test_fraction: float
) -> Dataset:
    x_tr, y_tr, x_te, y_te = _train_test_split(
        name, key, x.astype(np.float32), y, test_fraction)
    return Dataset(x_tr, y_tr, x_te, y_te, task="classification", num_classes=num_classes,
                   name=name)


def _finite(value: Any, fn: str, arg: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{fn}: {arg} must be a finite number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{fn}: {arg} must be a finite number, got {value!r}")
    return float(value)


def _range(low: Any, high: Any, fn: str, names: tuple[str, str]) -> tuple[float, float]:
    """A finite interval ``low < high`` whose width is finite too (numpy samples from it)."""
    lo, hi = _finite(low, fn, names[0]), _finite(high, fn, names[1])
    if not (lo < hi and math.isfinite(hi - lo)):
        raise ValueError(
            f"{fn}: need {names[0]} < {names[1]} with a finite width, got {names[0]}={low!r}, "
            f"{names[1]}={high!r}"
        )
    return lo, hi


def _prologue(
    fn: str, key: Any, n_samples: Any, num_classes: Any, noise: Any, noise_name: str = "noise",
    features: int = 2,
) -> tuple[int, int, float, np.random.Generator, Any]:
    """Check the common arguments; return them with a generator for the data (from the first
    half of ``jax.random.split(key)``) and the key of the train/test split (the second)."""
    _require_key(key, fn, "random sampling")
    num_classes = _check_count(num_classes, fn, "num_classes", minimum=2)
    n_samples = _check_count(n_samples, fn, "n_samples", minimum=2 * num_classes)
    check_host_rows(fn, "n_samples", n_samples, n_samples, 4 * features + 4)
    noise = _check_nonneg(noise, fn, noise_name)
    k_data, k_split = jax.random.split(key)
    return n_samples, num_classes, noise, host_rng(k_data), k_split


def xor(
    key: Any = None, *, repeats: int = 1, noise: float = 0.0
) -> Dataset:
    """The XOR problem: the four points of ``{0,1}^2`` labelled ``x1 XOR x2``.

    The training split is the truth table repeated ``repeats`` times, plus Gaussian noise of
    standard deviation ``noise`` on the inputs when ``noise > 0``; the test split is always the
    four clean points, so test accuracy reads "has the network learnt XOR".

    Args:
      key: a ``jax.random`` key; required only when ``noise > 0``.
      repeats: copies of the truth table in the training split (>= 1).
      noise: input noise standard deviation (>= 0).

    Returns:
      A 2-class :class:`Dataset` with ``D = 2``, ``4 * repeats`` training rows (in truth-table
      order, repeated) and 4 test rows.
    """
    fn = "xor"
    repeats = _check_count(repeats, fn, "repeats")
    check_host_rows(fn, "repeats", repeats, 4 * repeats, 12)
    noise = _check_nonneg(noise, fn, "noise")
    x = np.tile(_XOR_POINTS, (repeats, 1))
    y = np.tile(_XOR_LABELS, repeats)
    if noise > 0:
        _require_key(key, fn, "noise > 0")
        x = (x + noise * host_rng(key).standard_normal(x.shape)).astype(np.float32)
    return Dataset(x, y, _XOR_POINTS.copy(), _XOR_LABELS.copy(), task="classification",
                   num_classes=2, name="xor", class_names=("0", "1"))


def spirals(
    key: Any = None,
    *,
    n_samples: int = 1000,
    num_classes: int = 2,
    turns: float = 1.0,
    noise: float = 0.05,
    test_fraction: float = 0.2,
) -> Dataset:
    """Interleaved spiral arms, one per class.

    Point ``i`` of class ``c`` (of ``K``) is, with ``t ~ U(0, 1)``,

    .. math:: r = t, \\quad \\varphi = 2\\pi\\,(\\text{turns}\\cdot t + c / K), \\quad
       x = r\\,(\\cos\\varphi, \\sin\\varphi) + \\text{noise}\\cdot\\mathcal N(0, I)

    Args:
      key: a ``jax.random`` key (required).
      n_samples: total number of points (>= 2 K), split as evenly as possible over classes.
      num_classes: number of arms (>= 2).
      turns: revolutions of each arm (> 0).
      noise: standard deviation of the Gaussian noise on each coordinate.
      test_fraction: fraction of points in the (stratified) test split.

    Returns:
      A ``num_classes``-class :class:`Dataset` with ``D = 2``.

    Reference: K. J. Lang and M. J. Witbrock, "Learning to tell two spirals apart", 1988.
    """
    fn = "spirals"
    n, k, noise, rng, k_split = _prologue(fn, key, n_samples, num_classes, noise)
    turns = _check_positive(turns, fn, "turns")
    y = _balanced_labels(n, k)
    t = rng.uniform(size=n)
    phi = 2.0 * math.pi * (turns * t + y / k)
    x = t[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    x = x + noise * rng.standard_normal(x.shape)
    return _classification(fn, k_split, x, y, k, test_fraction)


def moons(
    key: Any = None, *, n_samples: int = 1000, noise: float = 0.1, test_fraction: float = 0.2
) -> Dataset:
    """Two interleaved half circles.

    With ``a ~ U(0, pi)``: class 0 is ``(cos a, sin a)``, class 1 is
    ``(1 - cos a, 1/2 - sin a)``, plus Gaussian noise of standard deviation ``noise``.

    Args:
      key: a ``jax.random`` key (required).
      n_samples: total number of points (>= 4), split evenly over the two classes.
      noise: standard deviation of the Gaussian noise on each coordinate.
      test_fraction: fraction of points in the (stratified) test split.

    Returns:
      A 2-class :class:`Dataset` with ``D = 2``.
    """
    fn = "moons"
    n, _, noise, rng, k_split = _prologue(fn, key, n_samples, 2, noise)
    y = _balanced_labels(n, 2)
    a = math.pi * rng.uniform(size=n)
    upper = np.stack([np.cos(a), np.sin(a)], axis=1)
    lower = np.stack([1.0 - np.cos(a), 0.5 - np.sin(a)], axis=1)
    x = np.where((y == 0)[:, None], upper, lower)
    x = x + noise * rng.standard_normal(x.shape)
    return _classification(fn, k_split, x, y, 2, test_fraction)


def circles(
    key: Any = None,
    *,
    n_samples: int = 1000,
    factor: float = 0.5,
    noise: float = 0.05,
    test_fraction: float = 0.2,
) -> Dataset:
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor``.

    With ``a ~ U(0, 2 pi)`` the point is ``r (cos a, sin a)`` plus Gaussian noise of standard
    deviation ``noise``.

    Args:
      key: a ``jax.random`` key (required).
      n_samples: total number of points (>= 4), split evenly over the two classes.
      factor: inner radius over outer radius, in (0, 1).
      noise: standard deviation of the Gaussian noise on each coordinate.
      test_fraction: fraction of points in the (stratified) test split.

    Returns:
      A 2-class :class:`Dataset` with ``D = 2``.
    """
    fn = "circles"
    n, _, noise, rng, k_split = _prologue(fn, key, n_samples, 2, noise)
    if not (isinstance(factor, (int, float, np.integer, np.floating))
            and not isinstance(factor, bool) and 0 < factor < 1):
        raise ValueError(f"{fn}: factor must be in (0, 1), got {factor!r}")
    y = _balanced_labels(n, 2)
    a = 2.0 * math.pi * rng.uniform(size=n)
    r = np.where(y == 0, 1.0, float(factor))
    x = r[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
    x = x + noise * rng.standard_normal(x.shape)
    return _classification(fn, k_split, x, y, 2, test_fraction)


def blobs(
    key: Any = None,
    *,
    n_samples: int = 1000,
    num_classes: int = 3,
    n_features: int = 2,
    cluster_std: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    test_fraction: float = 0.2,
) -> Dataset:
    """Isotropic Gaussian blobs, one per class.

    Centres ``mu_c ~ U(center_box)^D`` (drawn from the key); a point of class ``c`` is
    ``mu_c + cluster_std * N(0, I)``.

    Args:
      key: a ``jax.random`` key (required).
      n_samples: total number of points (>= 2 K), split as evenly as possible over classes.
      num_classes: number of blobs (>= 2).
      n_features: dimension ``D`` (>= 1).
      cluster_std: standard deviation of each blob (>= 0).
      center_box: ``(low, high)`` finite bounds of the centres, ``low < high``.
      test_fraction: fraction of points in the (stratified) test split.

    Returns:
      A ``num_classes``-class :class:`Dataset` with ``D = n_features``.
    """
    fn = "blobs"
    d = _check_count(n_features, fn, "n_features")
    n, k, std, rng, k_split = _prologue(fn, key, n_samples, num_classes, cluster_std,
                                        "cluster_std", features=d)
    try:
        low, high = center_box
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: center_box must be (low, high), got {center_box!r}") from None
    low, high = _range(low, high, fn, ("center_box[0]", "center_box[1]"))
    y = _balanced_labels(n, k)
    centers = rng.uniform(low, high, size=(k, d))
    x = centers[y] + std * rng.standard_normal((n, d))
    return _classification(fn, k_split, x, y, k, test_fraction)


def sine(
    key: Any = None,
    *,
    n_samples: int = 1000,
    amplitude: float = 1.0,
    frequency: float = 1.0,
    phase: float = 0.0,
    low: float = -math.pi,
    high: float = math.pi,
    noise: float = 0.1,
    test_fraction: float = 0.2,
) -> Dataset:
    """Sine regression: ``y = amplitude * sin(frequency * x + phase) + noise * N(0, 1)``.

    Inputs ``x ~ U(low, high)``; train and test come from the same (noisy) distribution, split
    at random.

    Args:
      key: a ``jax.random`` key (required).
      n_samples: total number of points (>= 2, and enough for ``test_fraction`` to leave
        both splits non-empty).
      amplitude, frequency, phase: of the sine (finite).
      low, high: input range, finite, ``low < high``.
      noise: standard deviation of the Gaussian noise on the target.
      test_fraction: fraction of points in the test split.

    Returns:
      A regression :class:`Dataset` with ``x`` of shape ``(N, 1)`` and ``y`` of shape
      ``(N, 1)``, both float32.
    """
    fn = "sine"
    _require_key(key, fn, "random sampling")
    n = _check_count(n_samples, fn, "n_samples", minimum=2)
    check_host_rows(fn, "n_samples", n_samples, n, 8)
    noise = _check_nonneg(noise, fn, "noise")
    low, high = _range(low, high, fn, ("low", "high"))
    for arg, value in (("amplitude", amplitude), ("frequency", frequency), ("phase", phase)):
        _finite(value, fn, arg)
    k_data, k_split = jax.random.split(key)
    rng = host_rng(k_data)
    x = rng.uniform(low, high, size=(n, 1))
    y = amplitude * np.sin(frequency * x + phase) + noise * rng.standard_normal((n, 1))
    x_tr, y_tr, x_te, y_te = _train_test_split(
        fn, k_split, x.astype(np.float32), y.astype(np.float32), test_fraction
    )
    return Dataset(x_tr, y_tr, x_te, y_te, task="regression", num_classes=None, name=fn)
