"""Synthetic data sets: determinism per key, shapes, balance, geometry, argument checks."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from jaxnn.data import Dataset, blobs, circles, moons, sine, spirals, xor

K0, K1 = jax.random.key(0), jax.random.key(1)

# (generator, kwargs, number of classes or None for regression, feature dimension)
GENERATORS = [
    (spirals, dict(n_samples=300), 2, 2),
    (spirals, dict(n_samples=301, num_classes=3, turns=1.5), 3, 2),
    (moons, dict(n_samples=200), 2, 2),
    (circles, dict(n_samples=200, factor=0.3), 2, 2),
    (blobs, dict(n_samples=150, num_classes=5, n_features=4), 5, 4),
    (sine, dict(n_samples=100), None, 1),
]
IDS = [f"{g.__name__}-{i}" for i, (g, *_) in enumerate(GENERATORS)]


def all_arrays(ds: Dataset) -> list[np.ndarray]:
    return [ds.x_train, ds.y_train, ds.x_test, ds.y_test]


@pytest.mark.parametrize("gen, kwargs, k, d", GENERATORS, ids=IDS)
def test_deterministic_per_key(gen, kwargs, k, d):
    a, b, c = gen(K0, **kwargs), gen(K0, **kwargs), gen(K1, **kwargs)
    for u, v in zip(all_arrays(a), all_arrays(b), strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("gen, kwargs, k, d", GENERATORS, ids=IDS)
def test_shapes_dtypes_and_split(gen, kwargs, k, d):
    ds = gen(K0, **kwargs)
    n = kwargs["n_samples"]
    assert ds.num_train + ds.num_test == n
    assert abs(ds.num_test - 0.2 * n) <= (k or 1)  # stratified rounding: <= 1 row per class
    assert ds.x_train.shape == (ds.num_train, d) and ds.x_train.dtype == np.float32
    assert ds.x_test.dtype == np.float32
    assert ds.name == gen.__name__ and ds.normalization == "none"
    if k is None:
        assert ds.task == "regression" and ds.y_train.shape == (ds.num_train, 1)
        assert ds.y_train.dtype == np.float32
    else:
        assert ds.task == "classification" and ds.num_classes == k
        assert ds.y_train.dtype == np.int32


@pytest.mark.parametrize("gen, kwargs, k, d", GENERATORS[:-1], ids=IDS[:-1])
def test_classes_balanced(gen, kwargs, k, d):
    ds = gen(K0, **kwargs)
    total = np.bincount(np.r_[ds.y_train, ds.y_test], minlength=k)
    assert total.max() - total.min() <= 1 and total.sum() == kwargs["n_samples"]
    for y in (ds.y_train, ds.y_test):  # the stratified split keeps each part balanced
        counts = np.bincount(y, minlength=k)
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("gen", [spirals, moons, circles, blobs, sine])
def test_key_required(gen):
    with pytest.raises(ValueError, match=f"{gen.__name__}: key=None.*jax.random.key"):
        gen()
    with pytest.raises(ValueError, match="plain integer"):
        gen(0)


def test_xor_is_the_truth_table():
    ds = xor()
    np.testing.assert_array_equal(ds.x_test, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_test, [0, 1, 1, 0])
    np.testing.assert_array_equal(ds.x_train, ds.x_test)
    a, b = ds.x_train.astype(int).T
    np.testing.assert_array_equal(ds.y_train, a ^ b)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.num_classes == 2


def test_xor_repeated_and_noisy():
    ds = xor(repeats=3)
    assert ds.x_train.shape == (12, 2)
    np.testing.assert_array_equal(ds.y_train, np.tile([0, 1, 1, 0], 3))
    noisy = xor(K0, repeats=250, noise=0.1)
    clean = np.tile(ds.x_test, (250, 1))
    deviation = noisy.x_train - clean
    assert 0.08 < deviation.std() < 0.12 and abs(deviation.mean()) < 0.02
    np.testing.assert_array_equal(noisy.x_test, ds.x_test)  # test set stays clean
    np.testing.assert_array_equal(xor(K0, repeats=250, noise=0.1).x_train, noisy.x_train)
    with pytest.raises(ValueError, match="xor: key=None, but noise > 0"):
        xor(repeats=2, noise=0.1)


def test_spirals_geometry_without_noise():
    ds = spirals(K0, n_samples=400, num_classes=4, turns=1.25, noise=0.0)
    x = np.r_[ds.x_train, ds.x_test].astype(np.float64)
    y = np.r_[ds.y_train, ds.y_test]
    r = np.linalg.norm(x, axis=1)
    assert r.min() >= 0 and r.max() <= 1 + 1e-6
    # phi = 2 pi (turns r + c / K) modulo 2 pi
    phi = np.arctan2(x[:, 1], x[:, 0])
    residual = np.angle(np.exp(1j * (phi - 2 * math.pi * (1.25 * r + y / 4))))
    np.testing.assert_allclose(residual[r > 1e-3], 0, atol=1e-3)


def test_moons_geometry_without_noise():
    ds = moons(K0, n_samples=200, noise=0.0)
    x = np.r_[ds.x_train, ds.x_test].astype(np.float64)
    y = np.r_[ds.y_train, ds.y_test]
    upper, lower = x[y == 0], x[y == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1, atol=1e-6)
    assert np.all(upper[:, 1] >= -1e-6)
    np.testing.assert_allclose(np.linalg.norm(lower - [1, 0.5], axis=1), 1, atol=1e-6)
    assert np.all(lower[:, 1] <= 0.5 + 1e-6)


def test_circles_geometry_without_noise():
    ds = circles(K0, n_samples=200, factor=0.3, noise=0.0)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.where(y == 0, 1, 0.3),
                                   atol=1e-6)


def test_blobs_are_centred_in_the_box():
    ds = blobs(K0, n_samples=600, num_classes=3, n_features=2, cluster_std=0.0,
               center_box=(-2.0, 3.0))
    for c in range(3):
        points = ds.x_train[ds.y_train == c]
        assert np.all(points == points[0])  # std 0: every point on its centre
        assert np.all((points[0] >= -2) & (points[0] <= 3))
    noisy = blobs(K0, n_samples=3000, num_classes=3, cluster_std=0.5, center_box=(-2.0, 3.0))
    for c in range(3):  # same key, same centres
        centre = ds.x_train[ds.y_train == c][0]
        points = noisy.x_train[noisy.y_train == c]
        np.testing.assert_allclose(points.mean(0), centre, atol=0.06)
        np.testing.assert_allclose(points.std(0), 0.5, atol=0.05)


def test_sine_without_noise_is_exact():
    ds = sine(K0, n_samples=50, amplitude=2.0, frequency=3.0, phase=0.5, low=-1.0, high=2.0,
              noise=0.0)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert np.all((x >= -1) & (x <= 2))
        np.testing.assert_allclose(y, 2 * np.sin(3 * x.astype(np.float64) + 0.5), atol=1e-5)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: spirals(K0, n_samples=3), "spirals: n_samples must be an integer >= 4"),
        (lambda: spirals(K0, num_classes=1), "spirals: num_classes must be an integer >= 2"),
        (lambda: spirals(K0, turns=0), "spirals: turns must be a finite number > 0"),
        (lambda: moons(K0, noise=-0.1), "moons: noise must be a finite number >= 0"),
        (lambda: circles(K0, factor=1.0), "circles: factor must be in (0, 1)"),
        (lambda: blobs(K0, center_box=(1, -1)), "blobs: need center_box[0] < center_box[1]"),
        # numpy cannot sample from infinite ranges (a raw OverflowError before).
        (lambda: blobs(K0, center_box=(-math.inf, 0)),
         "blobs: center_box[0] must be a finite number, got -inf"),
        (lambda: blobs(K0, center_box=(-1e308, 1e308)), "with a finite width"),
        (lambda: blobs(K0, cluster_std=-1), "blobs: cluster_std must be a finite number >= 0"),
        (lambda: sine(K0, low=-math.inf), "sine: low must be a finite number, got -inf"),
        (lambda: sine(K0, amplitude=math.nan), "sine: amplitude must be a finite number"),
        (lambda: spirals(K0, turns=math.inf), "spirals: turns must be a finite number > 0"),
        (lambda: blobs(K0, n_features=0), "blobs: n_features must be an integer >= 1"),
        (lambda: sine(K0, low=1.0, high=0.0), "sine: need low < high"),
        (lambda: sine(K0, test_fraction=1.0), "test_fraction must be in (0, 1)"),
        (lambda: xor(repeats=0), "xor: repeats must be an integer >= 1"),
        # refused before anything is allocated (numpy raised a bare MemoryError for these;
        # a few times the RAM got the process killed without a message)
        (lambda: xor(repeats=10**12), "xor: repeats=1000000000000 makes 4000000000000 rows"),
        (lambda: spirals(K0, n_samples=10**13), "spirals: n_samples=10000000000000 makes"),
        (lambda: blobs(K0, n_samples=10**9, n_features=1000),
         "blobs: n_samples=1000000000 makes 1000000000 rows, ~3.73e+03 GiB"),
        (lambda: sine(K0, n_samples=10**13), "more than this machine's"),
    ],
)
def test_argument_errors(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)


def test_numpy_scalars_are_accepted_like_python_numbers():
    # np.float32 is not a float subclass: turns and factor refused it, unlike every other
    # numeric argument.
    a = spirals(K0, n_samples=40, turns=np.float32(1.5))
    np.testing.assert_array_equal(a.x_train, spirals(K0, n_samples=40, turns=1.5).x_train)
    b = circles(K0, n_samples=40, factor=np.float32(0.5))
    np.testing.assert_array_equal(b.x_train, circles(K0, n_samples=40, factor=0.5).x_train)
