"""scikit-learn's bundled 8x8 handwritten digits (no download needed).

Contract: ``load_digits(key, test_fraction=0.2) -> Dataset`` with all 1797 images as ``float32``
rows of 64 raw pixel values in ``[0, 16]`` (the counts of set pixels in 4x4 blocks of the
original 32x32 bitmaps), ``int32`` labels 0..9, and a stratified train/test split keyed by
``key``. :func:`jaxnn.data.load` then divides by :data:`MAX_VALUE` (normalization ``"scale"``,
its default) to map pixels to ``[0, 1]``.

Reference: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI
Machine Learning Repository, 1998; shipped with scikit-learn as
``sklearn.datasets.load_digits``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxnn.data.dataset import Dataset, _require_key, _train_test_split

__all__ = ["MAX_VALUE", "NUM_SAMPLES", "load_digits"]

#: The largest pixel value of the 8x8 digits (a 4x4 block with every pixel set).
MAX_VALUE: float = 16.0
#: Number of images in the set.
NUM_SAMPLES: int = 1797


def load_digits(key: Any = None, *, test_fraction: float = 0.2) -> Dataset:
    """The 1797 8x8 digits with a stratified, keyed train/test split.

    Args:
      key: a ``jax.random`` key (required: it draws the split).
      test_fraction: fraction of each class in the test split, in (0, 1).

    Returns:
      A 10-class :class:`Dataset` named ``"digits"`` with ``D = 64`` and raw pixel values in
      ``[0, 16]`` (``normalization="none"``).

    Raises:
      ValueError: no key or a bad ``test_fraction``.
      ImportError: scikit-learn is not installed.
    """
    _require_key(key, "load_digits", "the random train/test split")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError(
            "load_digits: the 'digits' data set comes with scikit-learn; "
            "install it with `pip install scikit-learn`"
        ) from err
    x, y = _sk_load_digits(return_X_y=True)
    x_tr, y_tr, x_te, y_te = _train_test_split(
        "load_digits", key, x.astype(np.float32), y.astype(np.int32), test_fraction
    )
    return Dataset(x_tr, y_tr, x_te, y_te, task="classification", num_classes=10,
                   name="digits", class_names=tuple(str(d) for d in range(10)))
