"""The Dataset type, splits, subsampling, normalization and batching."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxnn.data import (
    Dataset,
    batch_mask,
    epoch_batches,
    epoch_indices,
    normalize,
    num_batches,
    standardization_stats,
    subsample,
    train_test_split,
    train_val_split,
)

KEY = jax.random.key(0)


def make(n_train=40, n_test=10, d=3, k=4, seed=0, **changes) -> Dataset:
    rng = np.random.default_rng(seed)
    fields = dict(
        x_train=rng.standard_normal((n_train, d)).astype(np.float32),
        y_train=(np.arange(n_train) % k).astype(np.int32),
        x_test=rng.standard_normal((n_test, d)).astype(np.float32),
        y_test=(np.arange(n_test) % k).astype(np.int32),
        task="classification",
        num_classes=k,
        name="toy",
    )
    fields.update(changes)
    return Dataset(**fields)


def rows(x: np.ndarray) -> set[tuple]:
    return {tuple(r) for r in np.asarray(x).tolist()}


# ------------------------------------------------------------------------------ Dataset


def test_valid_dataset_properties():
    ds = make()
    assert (ds.num_features, ds.num_outputs, ds.num_train, ds.num_test, ds.num_val) == (
        3, 4, 40, 10, 0)
    assert ds.validation is None and ds.train[0] is ds.x_train
    assert "train=(40, 3)" in repr(ds) and "'toy'" in repr(ds)
    assert ds.summary()["num_classes"] == 4


def test_regression_dataset():
    rng = np.random.default_rng(1)
    ds = Dataset(rng.random((5, 2), np.float32), rng.random((5, 3), np.float32),
                 rng.random((2, 2), np.float32), rng.random((2, 3), np.float32),
                 task="regression", name="r")
    assert ds.num_classes is None and ds.num_outputs == 3


def test_numpy_integer_num_classes_gives_a_json_summary():
    # num_classes=y.max() + 1 is a numpy integer; summary() ("plain data for logs and run
    # metadata") then failed json.dumps.
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 2, 1], np.int32)
    ds = Dataset(x, y, x, y, num_classes=y.max() + 1, name="t")
    assert type(ds.num_classes) is int and ds.num_classes == 3
    assert json.loads(json.dumps(ds.summary()))["num_classes"] == 3


def test_frozen():
    ds = make()
    with pytest.raises(AttributeError):
        ds.name = "other"


F32 = np.zeros((4, 3), np.float32)
I32 = np.zeros(4, np.int32)

# (changes to a valid classification Dataset, fragments the ValueError must contain)
INVALID = [
    (dict(x_train=np.zeros((40, 3), np.float64)), ["x_train", "float32", "float64"]),
    (dict(x_train=np.zeros(40, np.float32)), ["x_train", "shape (N, D)", "(40,)"]),
    (dict(x_test=jnp.zeros((10, 3), jnp.float32)), ["x_test", "numpy array"]),
    (dict(x_test=np.full((10, 3), np.nan, np.float32)), ["x_test", "non-finite", "nan"]),
    (dict(y_train=np.zeros(40, np.int64)), ["y_train", "int32", "int64"]),
    (dict(y_train=np.zeros((40, 1), np.int32)), ["y_train", "shape (N,)"]),
    (dict(y_train=np.r_[np.zeros(39), 4].astype(np.int32)), ["y_train", "label 4", "index 39"]),
    (dict(y_test=np.r_[-1, np.zeros(9)].astype(np.int32)), ["y_test", "label -1", "index 0"]),
    (dict(y_test=np.zeros(9, np.int32)), ["x_test has 10 rows", "y_test has 9"]),
    (dict(x_test=np.zeros((10, 5), np.float32)), ["x_test has 5 features", "x_train has 3"]),
    (dict(x_val=F32[:, :3]), ["x_val and y_val", "together"]),
    (dict(num_classes=1), ["num_classes", ">= 2", "1"]),
    (dict(num_classes=None), ["num_classes", "None"]),
    (dict(task="ranking"), ["task", "ranking"]),
    (dict(name=""), ["name"]),
    (dict(normalization="whiten"), ["normalization", "whiten"]),
    (dict(class_names=("a", "b")), ["class_names", "one name per class"]),
    (dict(x_val=F32, y_val=I32 + 7), ["y_val", "label 7"]),
]


@pytest.mark.parametrize("changes, fragments", INVALID)
def test_validation_names_array_and_value(changes, fragments):
    with pytest.raises(ValueError) as info:
        make(**changes)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert str(info.value).startswith("Dataset:")


def test_regression_validation():
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="None for regression"):
        Dataset(x, y, x, y, task="regression", num_classes=2)
    with pytest.raises(ValueError, match=r"y_train must have shape \(N, k\)"):
        Dataset(x, y[:, 0], x, y[:, 0], task="regression")
    with pytest.raises(ValueError, match="y_test has a non-finite value inf"):
        Dataset(x, y, x, y + np.inf, task="regression")


def test_replace_validates():
    with pytest.raises(ValueError, match="y_train"):
        make().replace(y_train=np.full(40, 9, np.int32))


# ------------------------------------------------------------------------------ splits


def test_train_test_split_is_a_stratified_partition():
    x = np.arange(1000, dtype=np.float32)[:, None]
    y = np.repeat(np.arange(4, dtype=np.int32), [100, 200, 300, 400])
    x_tr, y_tr, x_te, y_te = train_test_split(KEY, x, y, 0.25)
    assert sorted(np.r_[x_tr[:, 0], x_te[:, 0]].tolist()) == list(range(1000))
    np.testing.assert_array_equal(np.bincount(y_te), [25, 50, 75, 100])
    np.testing.assert_array_equal(y_tr, y[x_tr[:, 0].astype(int)])  # rows stay aligned
    # classes are interleaved (not in blocks), also at the front of the training part
    assert len(np.unique(y_tr[:40])) == 4
    again = train_test_split(KEY, x, y, 0.25)
    np.testing.assert_array_equal(again[0], x_tr)
    other = train_test_split(jax.random.key(1), x, y, 0.25)
    assert not np.array_equal(other[2], x_te)


def test_stratified_split_of_many_small_classes():
    y = np.repeat(np.arange(10, dtype=np.int32), 2)  # 2 rows per class, 20% -> 4 test rows
    _, _, _, y_te = train_test_split(KEY, np.zeros((20, 1)), y, 0.2)
    assert len(y_te) == 4 and len(set(y_te.tolist())) == 4


def test_train_test_split_not_stratified_for_targets():
    x = np.arange(10, dtype=np.float32)[:, None]
    x_tr, y_tr, x_te, y_te = train_test_split(KEY, x, x.copy(), 0.3)
    assert x_te.shape == (3, 1) and np.array_equal(x_te, y_te)


def test_stratified_split_of_one_hot_targets_stratifies_by_row():
    # Equal rows are a class: element-wise classes gave a 9/1 split (or an IndexError).
    x = np.arange(12, dtype=np.float32)[:, None]
    onehot = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    x_tr, y_tr, x_te, y_te = train_test_split(KEY, x, onehot, 0.5, stratify=True)
    assert len(x_tr) == len(x_te) == 6
    np.testing.assert_array_equal(y_te.sum(0), [2, 2, 2])
    np.testing.assert_array_equal(y_tr, onehot[x_tr[:, 0].astype(int)])  # rows stay aligned


@given(n=st.integers(2, 300), fraction=st.floats(0.05, 0.95), k=st.integers(1, 5))
def test_split_sizes_property(n, fraction, k):
    y = (np.arange(n) % k).astype(np.int32)
    x = np.arange(n, dtype=np.float32)[:, None]
    try:
        x_tr, y_tr, x_te, y_te = train_test_split(KEY, x, y, fraction)
    except ValueError as err:
        assert "non-empty" in str(err)
        return
    assert len(x_tr) + len(x_te) == n
    assert len(x_te) == int(np.floor(fraction * n + 0.5))
    assert not rows(x_tr) & rows(x_te)
    for c in range(k):  # per class, the test share is the fraction rounded down or up
        n_c = int(np.sum(y == c))
        assert int(np.sum(y_te == c)) in (np.floor(fraction * n_c), np.ceil(fraction * n_c))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(key=None), "needs an explicit PRNG key"),
        (dict(key=3), "plain integer"),
        # Not keys at all: a raw JAX TypeError naming neither the function nor the argument.
        (dict(key=3.0), "key must be a jax.random key (jax.random.key(seed) or"),
        (dict(key=np.array(3)), "key must be a jax.random key"),
        (dict(key=np.array([0, 1], np.int32)), "got an array of dtype int32 and shape (2,)"),
        (dict(test_fraction=0.0), "test_fraction must be in (0, 1)"),
        (dict(test_fraction=1.5), "test_fraction must be in (0, 1)"),
        (dict(test_fraction="half"), "test_fraction must be a number"),
    ],
)
def test_train_test_split_errors(kwargs, fragment):
    args = dict(key=KEY, x=np.zeros((10, 1)), y=np.zeros(10, np.int32), test_fraction=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match="train_test_split") as info:
        train_test_split(**args)
    assert fragment in str(info.value)


def test_train_test_split_empty_part():
    with pytest.raises(ValueError, match="both must be non-empty"):
        train_test_split(KEY, np.zeros((3, 1)), np.zeros(3), 0.01)


def test_train_val_split():
    ds = make(n_train=100)
    out = train_val_split(ds, 0.2, KEY)
    assert (out.num_train, out.num_val) == (80, 20)
    np.testing.assert_array_equal(np.bincount(out.y_val), [5, 5, 5, 5])
    assert rows(out.x_train) | rows(out.x_val) == rows(ds.x_train)
    assert not rows(out.x_train) & rows(out.x_val)
    assert out.x_test is ds.x_test
    with pytest.raises(ValueError, match="already has a validation split"):
        train_val_split(out, 0.2, KEY)
    with pytest.raises(ValueError, match="train_val_split: key=None"):
        train_val_split(ds, 0.2, None)


def test_subsample_first_rows_without_key():
    ds = make()
    out = subsample(ds, n_train=7, n_test=3)
    np.testing.assert_array_equal(out.x_train, ds.x_train[:7])
    np.testing.assert_array_equal(out.y_test, ds.y_test[:3])
    assert subsample(ds) is ds


def test_subsample_keyed_random_subset():
    ds = make()
    out = subsample(ds, n_train=10, key=KEY)
    assert out.num_train == 10 and out.num_test == ds.num_test
    assert rows(out.x_train) <= rows(ds.x_train)
    assert not np.array_equal(out.x_train, ds.x_train[:10])
    np.testing.assert_array_equal(subsample(ds, n_train=10, key=KEY).x_train, out.x_train)


def test_keyed_subsample_of_one_split_does_not_depend_on_the_other():
    # One generator for both splits made the test rows kept depend on whether (not how
    # much) the training split was subsampled: a learning curve over n_train compared runs
    # on different test sets.
    ds = make()
    only_test = subsample(ds, n_test=5, key=KEY)
    for n_train in (10, 20):
        both = subsample(ds, n_train=n_train, n_test=5, key=KEY)
        np.testing.assert_array_equal(both.x_test, only_test.x_test)
        np.testing.assert_array_equal(both.x_train,
                                      subsample(ds, n_train=n_train, key=KEY).x_train)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(n_train=41), "n_train=41 but the train split of 'toy' has only 40 rows"),
    (dict(n_test=0), "n_test must be an integer >= 1"),
    (dict(n_train=2.5), "n_train must be an integer"),
])
def test_subsample_errors(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        subsample(make(), **kwargs)
    assert fragment in str(info.value)


# ------------------------------------------------------------------------------ normalize


def pixel_dataset() -> Dataset:
    rng = np.random.default_rng(3)
    x_train = rng.integers(0, 256, (50, 6)).astype(np.float32)
    x_train[:, 0] = 0.0  # a constant feature, like MNIST's border pixels
    x_train[0, 1] = 255.0
    x_test = rng.integers(100, 256, (8, 6)).astype(np.float32)
    y = np.zeros(50, np.int32)
    return Dataset(x_train, y, x_test, y[:8], num_classes=2, name="pix",
                   x_val=x_test[:3] + 1, y_val=y[:3])


def test_scale():
    ds = pixel_dataset()
    out = normalize(ds, "scale")
    assert out.normalization == "scale" and out.x_train.dtype == np.float32
    np.testing.assert_array_equal(out.x_train, ds.x_train / np.float32(255))
    assert out.x_train.max() == 1.0 and out.x_train.min() == 0.0
    np.testing.assert_array_equal(normalize(ds, "scale", max_value=16.0).x_test, ds.x_test / 16)


def test_standardize_uses_train_statistics_only():
    ds = pixel_dataset()
    out = normalize(ds, "standardize")
    assert out.x_train.dtype == out.x_test.dtype == out.x_val.dtype == np.float32
    np.testing.assert_allclose(out.x_train[:, 1:].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.x_train[:, 1:].std(0), 1, atol=1e-5)
    assert np.all(out.x_train[:, 0] == 0)  # constant feature centered, not divided by 0
    mean, std = ds.x_train.mean(0), ds.x_train.std(0)
    std[0] = 1.0
    np.testing.assert_allclose(out.x_test, (ds.x_test - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.x_val, (ds.x_val - mean) / std, rtol=1e-5, atol=1e-5)
    # the test split has a different distribution and must not be standardized by itself
    assert abs(out.x_test.mean()) > 0.5
    # changing the test data does not change the training features
    changed = normalize(ds.replace(x_test=ds.x_test * 0 + 7), "standardize")
    np.testing.assert_array_equal(changed.x_train, out.x_train)


def test_standardize_global_and_scale_invariance():
    ds = pixel_dataset()
    out = normalize(ds, "standardize_global")
    assert abs(out.x_train.mean()) < 1e-5 and abs(out.x_train.std() - 1) < 1e-5
    scaled_first = normalize(normalize(ds, "scale").replace(normalization="none"),
                             "standardize_global")
    np.testing.assert_allclose(scaled_first.x_test, out.x_test, rtol=1e-5, atol=1e-5)


def test_standardization_stats_shapes():
    mean, std = standardization_stats(np.ones((4, 3), np.float32) * [1, 2, 3])
    assert mean.shape == std.shape == (3,) and mean.dtype == np.float32
    np.testing.assert_array_equal(std, [1, 1, 1])  # all constant -> 1
    mean, std = standardization_stats(np.ones((4, 3)), per_feature=False)
    assert mean.shape == ()


@pytest.mark.parametrize("per_feature", [True, False])
def test_standardization_stats_need_no_float64_copy_of_the_data(per_feature):
    # A float64 copy of MNIST's training rows is 376 MB (and its centered square another):
    # the statistics must accumulate in float64 without holding one.
    import tracemalloc

    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (20000, 100)) / 255).astype(np.float32)  # 8 MB
    x[:, 0] = 0.5  # a constant feature: sigma -> 1
    x64 = x.astype(np.float64)
    tracemalloc.start()
    try:
        mean, std = standardization_stats(x, per_feature=per_feature)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes / 2, f"peak {peak} bytes for {x.nbytes} bytes of data"
    axis = 0 if per_feature else None
    want_std = x64.std(axis=axis)
    want_std = np.where(want_std < 1e-6, 1.0, want_std)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, x64.mean(axis=axis), rtol=1e-6)
    np.testing.assert_allclose(std, want_std, rtol=1e-6)
    if per_feature:
        assert std[0] == 1.0 and mean[0] == np.float32(0.5)


def test_normalize_errors():
    ds = pixel_dataset()
    assert normalize(ds, "none") is ds
    with pytest.raises(ValueError, match="method must be one of"):
        normalize(ds, "minmax")
    with pytest.raises(ValueError, match="already normalized"):
        normalize(normalize(ds, "scale"), "standardize")
    with pytest.raises(ValueError, match="max_value > 0"):
        normalize(ds, "scale", max_value=None)


@pytest.mark.parametrize(
    "method, kwargs, fragment",
    [
        # eps=0 divided constant features by 0 (NaN); max_value=inf mapped every pixel to 0.
        ("standardize", dict(eps=0.0), "normalize: eps must be a finite number > 0, got 0.0"),
        ("standardize_global", dict(eps=-1.0), "eps must be a finite number > 0, got -1.0"),
        ("scale", dict(max_value=float("inf")), "max_value must be a finite number > 0, got inf"),
        ("scale", dict(max_value="255"), "max_value must be a finite number > 0, got '255'"),
    ],
)
def test_normalize_refuses_a_bad_eps_or_max_value(method, kwargs, fragment):
    with pytest.raises(ValueError) as info:
        normalize(pixel_dataset(), method, **kwargs)
    assert fragment in str(info.value)
    with pytest.raises(ValueError, match="standardization_stats: eps must be"):
        standardization_stats(np.ones((4, 2), np.float32), eps=0.0)


# ------------------------------------------------------------------------------ batching

NUM_BATCHES = [
    (10, 5, True, 2), (10, 5, False, 2), (10, 3, True, 3), (10, 3, False, 4),
    (10, 10, True, 1), (1, 1, True, 1), (10, 1, False, 10), (60000, 128, True, 468),
    (60000, 128, False, 469),
]


@pytest.mark.parametrize("n, batch_size, drop, expected", NUM_BATCHES)
def test_num_batches(n, batch_size, drop, expected):
    assert num_batches(n, batch_size, drop) == expected
    assert batch_mask(n, batch_size, drop_remainder=drop).shape == (expected, batch_size)
    assert batch_mask(n, batch_size, drop_remainder=drop).sum() == min(n, expected * batch_size)


@pytest.mark.parametrize("n, batch_size", [(10, 0), (10, 11), (10, -1), (0, 1), (10, 2.0)])
def test_num_batches_errors(n, batch_size):
    with pytest.raises(ValueError, match="num_batches"):
        num_batches(n, batch_size)


X = jnp.arange(24, dtype=jnp.float32).reshape(12, 2)
Y = jnp.arange(12, dtype=jnp.int32)
batched = jax.jit(epoch_batches, static_argnames=("batch_size", "drop_remainder"))


def test_epoch_batches_is_a_keyed_permutation():
    xb, yb = batched(KEY, X, Y, batch_size=4)
    assert xb.shape == (3, 4, 2) and yb.shape == (3, 4)
    assert xb.dtype == jnp.float32 and yb.dtype == jnp.int32
    assert sorted(np.asarray(yb).ravel().tolist()) == list(range(12))
    np.testing.assert_array_equal(xb[..., 0], 2 * yb)  # x and y stay paired
    perm = jax.random.permutation(KEY, 12)
    np.testing.assert_array_equal(np.asarray(yb).ravel(), perm)
    xb2, yb2 = batched(KEY, X, Y, batch_size=4)
    np.testing.assert_array_equal(yb2, yb)
    _, yb3 = batched(jax.random.key(1), X, Y, batch_size=4)
    assert not np.array_equal(yb3, yb)


def test_epoch_batches_remainder():
    perm = np.asarray(jax.random.permutation(KEY, 12))
    _, dropped = batched(KEY, X, Y, batch_size=5)
    np.testing.assert_array_equal(np.asarray(dropped).ravel(), perm[:10])
    _, wrapped = batched(KEY, X, Y, batch_size=5, drop_remainder=False)
    assert wrapped.shape == (3, 5)
    np.testing.assert_array_equal(np.asarray(wrapped).ravel(), np.r_[perm, perm[:3]])
    mask = batch_mask(12, 5, drop_remainder=False)
    assert sorted(np.asarray(wrapped)[mask].tolist()) == list(range(12))


def test_epoch_batches_without_key_keeps_order():
    xb, yb = epoch_batches(None, X, Y, 6)
    np.testing.assert_array_equal(np.asarray(yb), np.arange(12).reshape(2, 6))
    np.testing.assert_array_equal(np.asarray(xb).reshape(12, 2), X)


def test_epoch_batches_regression_targets_and_numpy_input():
    y = np.arange(24, dtype=np.float32).reshape(12, 2)
    xb, yb = epoch_batches(KEY, np.asarray(X), y, 3)
    assert yb.shape == (4, 3, 2) and yb.dtype == jnp.float32
    np.testing.assert_array_equal(xb, yb)


def test_epoch_batches_compiles_once_per_shape_and_scans():
    traces = []

    def epoch(key, x, y):
        traces.append(1)
        xb, yb = epoch_batches(key, x, y, 4)

        def body(total, batch):
            return total + jnp.sum(batch[1], dtype=jnp.int32), None

        return jax.lax.scan(body, jnp.zeros((), jnp.int32), (xb, yb))[0]

    epoch = jax.jit(epoch)
    for seed in range(3):
        assert int(epoch(jax.random.key(seed), X, Y)) == sum(range(12))
    assert len(traces) == 1


def test_epoch_indices_per_batch_gather_matches_epoch_batches():
    idx = epoch_indices(KEY, 12, 5, drop_remainder=False)
    assert idx.shape == (3, 5) and idx.dtype == jnp.int32
    xb, yb = batched(KEY, X, Y, batch_size=5, drop_remainder=False)

    @jax.jit
    def gathered(key):
        rows = epoch_indices(key, 12, 5, drop_remainder=False)
        return jax.lax.scan(lambda c, i: (c, (X[i], Y[i])), 0, rows)[1]

    gx, gy = gathered(KEY)
    np.testing.assert_array_equal(gx, xb)
    np.testing.assert_array_equal(gy, yb)
    np.testing.assert_array_equal(epoch_indices(None, 6, 3), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match="num_batches: batch_size=7 is larger"):
        epoch_indices(KEY, 6, 7)


@pytest.mark.parametrize("batch_size", [0, 13, -2])
def test_epoch_batches_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="epoch_batches: batch_size") as info:
        epoch_batches(KEY, X, Y, batch_size)
    assert str(batch_size) in str(info.value)


def test_epoch_batches_mismatched_rows():
    with pytest.raises(ValueError, match="x has 12 rows but y has 11"):
        epoch_batches(KEY, X, Y[:11], 4)
