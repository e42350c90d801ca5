"""scikit-learn's bundled 8x8 digits: size, classes, scaling, keyed stratified split."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxnn.data import load, load_digits

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def raw():
    return load_digits(KEY)


def test_size_and_classes(raw):
    assert raw.num_train + raw.num_test == 1797
    assert raw.num_features == 64 and raw.num_classes == 10
    assert set(np.unique(raw.y_train)) == set(range(10))
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.int32
    assert raw.x_train.min() == 0 and raw.x_train.max() == 16  # raw pixel counts
    assert raw.class_names == tuple("0123456789")


def test_stratified_split(raw):
    counts = np.bincount(np.r_[raw.y_train, raw.y_test])
    test_counts = np.bincount(raw.y_test)
    assert test_counts.sum() == raw.num_test == 359  # round(0.2 * 1797)
    assert np.all((test_counts == np.floor(0.2 * counts)) | (test_counts == np.ceil(0.2 * counts)))


def test_keyed_and_deterministic(raw):
    again = load_digits(KEY)
    np.testing.assert_array_equal(again.x_test, raw.x_test)
    other = load_digits(jax.random.key(1))
    assert not np.array_equal(other.y_test, raw.y_test)
    with pytest.raises(ValueError, match="load_digits: key=None"):
        load_digits()


def test_load_scales_by_16(raw):
    ds = load("digits", key=KEY)
    assert ds.normalization == "scale"
    np.testing.assert_array_equal(ds.x_train, raw.x_train / np.float32(16))
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.x_test.max() <= 1.0
