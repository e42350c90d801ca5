"""``jaxnn.data.load``: the registry, option checks, and the subsample / validation /
normalization steps it adds to every loader."""

from __future__ import annotations

import contextlib

import jax
import numpy as np
import pytest

import jaxnn.data as data
from jaxnn.data import Dataset, load, names, register, spirals, unregister, write_idx, xor
from jaxnn.data import mnist as mn

KEY = jax.random.key(0)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JAXNN_DATA", raising=False)
    monkeypatch.setattr(mn, "urllib_fetch", lambda url, **kw: pytest.fail(f"download {url}"))


def test_names():
    assert names() == ("blobs", "circles", "digits", "fashion_mnist", "mnist", "moons", "sine",
                       "spirals", "xor")
    assert set(data.__all__) >= {"load", "names", "Dataset", "DataError", "epoch_batches",
                                 "reads_files"}
    assert [n for n in names() if data.reads_files(n)] == ["fashion_mnist", "mnist"]
    assert data.reads_files("Fashion-MNIST")  # spelled as load() accepts it
    assert not data.reads_files("nosuch") and not data.reads_files(None)


@pytest.mark.parametrize("name, suggestion", [("mnsit", "'mnist'"), ("spiral", "'spirals'"),
                                              ("fashion", "'fashion_mnist'")])
def test_unknown_name_suggests_close_matches(name, suggestion):
    with pytest.raises(ValueError, match=f"load: unknown data set '{name}'; did you mean") as info:
        load(name, key=KEY)
    assert suggestion in str(info.value) and "known: blobs, circles" in str(info.value)


def test_unknown_name_without_close_match():
    with pytest.raises(ValueError, match="unknown data set 'imagenet' \\(known:"):
        load("imagenet")


def test_name_is_case_and_dash_insensitive():
    assert load("XOR").name == "xor"


def test_load_matches_the_generator():
    a = load("spirals", key=KEY, n_samples=200, noise=0.1)
    b = spirals(KEY, n_samples=200, noise=0.1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.normalization == "none"  # "scale" leaves sets without a pixel range unchanged


def test_unknown_option_lists_allowed_ones():
    with pytest.raises(ValueError, match="'moons' does not take option\\(s\\) arms") as info:
        load("moons", key=KEY, arms=3)
    assert "n_samples, noise, test_fraction" in str(info.value)
    assert "did you mean" not in str(info.value)
    with pytest.raises(ValueError, match="does not take option\\(s\\) nosie \\(did you mean "
                                         "'noise'\\?\\); it takes: "):
        load("spirals", key=KEY, nosie=0.1)


def test_file_options_are_ignored_by_synthetic_sets(tmp_path):
    ds = load("sine", key=KEY, data_dir=tmp_path / "nowhere", download=False, n_samples=20)
    assert ds.task == "regression"


@contextlib.contextmanager
def _counting_loader():
    """A loader registered as "counting" that records each call; yields the calls."""
    calls = []

    def loader(key, **options):
        calls.append(key)
        return xor()

    register("counting", loader)
    try:
        yield calls
    finally:
        unregister("counting")


def test_a_bad_key_is_named_before_the_loader_runs():
    with _counting_loader() as calls:
        with pytest.raises(ValueError, match="load: key=3 is a plain integer"):
            load("counting", key=3)
        assert calls == []


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(n_train=0), "load: n_train must be an integer >= 1, got 0"),
    (dict(n_test=-5), "load: n_test must be an integer >= 1, got -5"),
    (dict(n_train=2.5), "load: n_train must be an integer >= 1, got 2.5"),
    (dict(n_test=True), "load: n_test must be an integer >= 1, got True"),
])
def test_a_bad_count_is_named_before_the_loader_runs(kwargs, fragment):
    # Before: the loader ran first (60000 MNIST images read, or a download attempted) and
    # the error then named subsample, a function the user never called.
    with _counting_loader() as calls:
        with pytest.raises(ValueError) as info:
            load("counting", **kwargs)
        assert fragment in str(info.value)
        assert calls == []


def test_an_empty_split_names_the_generator():
    with pytest.raises(ValueError, match=r"^spirals: test_fraction=0.1 of 4 rows leaves"):
        load("spirals", key=KEY, n_samples=4, test_fraction=0.1)


@pytest.mark.parametrize("name", ["spirals", "moons", "circles", "blobs", "sine", "digits"])
def test_key_required(name):
    with pytest.raises(ValueError, match="key=None"):
        load(name)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(normalization="l2"), "normalization must be one of"),
        (dict(validation_fraction=1.0), "validation_fraction must be in (0, 1)"),
        (dict(validation_fraction=-0.1), "validation_fraction must be in (0, 1)"),
        (dict(n_train=0), "n_train must be an integer >= 1"),
        (dict(n_test=10**6), "n_test=1000000 but the test split of 'moons' has only"),
    ],
)
def test_argument_errors(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        load("moons", key=KEY, **kwargs)
    assert fragment in str(info.value)


def test_validation_split_needs_a_key():
    with pytest.raises(ValueError, match="load: key=None, but validation_fraction=0.25"):
        load("xor", repeats=8, validation_fraction=0.25)


def test_subsample_validation_and_standardize_in_order():
    ds = load("digits", key=KEY, n_train=400, n_test=100, validation_fraction=0.25,
              normalization="standardize")
    assert (ds.num_train, ds.num_val, ds.num_test) == (300, 100, 100)
    assert ds.normalization == "standardize"
    # statistics from the 300 remaining training rows only
    trained = ds.x_train[:, ds.x_train.std(0) > 0]
    np.testing.assert_allclose(trained.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(trained.std(0), 1, atol=1e-4)
    assert ds.x_train.dtype == ds.x_val.dtype == ds.x_test.dtype == np.float32
    again = load("digits", key=KEY, n_train=400, n_test=100, validation_fraction=0.25,
                 normalization="standardize")
    np.testing.assert_array_equal(again.x_val, ds.x_val)
    full = load("digits", key=KEY, normalization="none")
    subset = load("digits", key=KEY, normalization="none", n_train=400)
    assert {tuple(r) for r in subset.x_train.tolist()} <= {tuple(r) for r in full.x_train.tolist()}


def test_config_fields_pass_straight_through(tmp_path):
    """The fields of jaxnn.config.DataConfig are load's keyword arguments."""
    d = tmp_path / "mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28),
                                                                      dtype=np.uint8))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    ds = load("mnist", key=KEY, data_dir=tmp_path, download=False, normalization="scale",
              n_train=20, n_test=None, validation_fraction=0.5)
    assert (ds.num_train, ds.num_val, ds.num_test) == (10, 10, 10)
    assert ds.x_train.max() <= 1.0 and ds.normalization == "scale"
    first = load("mnist", data_dir=tmp_path, download=False, n_train=5, normalization="none")
    raw = load("mnist", data_dir=tmp_path, download=False, normalization="none")
    np.testing.assert_array_equal(first.x_train, raw.x_train[:5])  # no key: first rows


def test_register_a_custom_loader():
    def tiny(key, *, scale: float = 1.0) -> Dataset:
        x = np.full((4, 2), 8.0 * scale, np.float32)
        y = np.array([0, 1, 0, 1], np.int32)
        return Dataset(x, y, x, y, num_classes=2, name="tiny")

    register("tiny-set", tiny, max_value=16.0)
    try:
        assert "tiny_set" in names()
        assert load("tiny_set", scale=2.0).x_train.max() == 1.0
        with pytest.raises(ValueError, match="already exists"):
            register("tiny_set", tiny)
        with pytest.raises(ValueError, match="does not take option\\(s\\) size"):
            load("tiny_set", size=3)
    finally:
        unregister("tiny-set")
    assert "tiny_set" not in names()
    with pytest.raises(ValueError, match="built-in"):
        unregister("mnist")


@pytest.mark.parametrize("fn", [register, unregister])
def test_register_names_a_non_string_name(fn):
    args = (123, lambda key: None) if fn is register else (123,)
    with pytest.raises(TypeError, match=f"{fn.__name__}: name must be a string, got 123"):
        fn(*args)


@pytest.mark.parametrize("method", ["standardize", "standardize_global"])
def test_standardize_pixels_in_units_of_their_maximum(method):
    # A pixel constant over the training rows keeps sigma = 1; standardized in raw units
    # its test values reached 255 (MNIST border pixels seen only in a test image), against
    # 1 after "scale" -- the order of the two is meant not to matter.
    def pixels(key) -> Dataset:
        rng = np.random.default_rng(0)
        x_train = rng.integers(0, 256, (20, 3)).astype(np.float32)
        x_train[:, 0] = 0.0
        x_test = np.full((4, 3), 255.0, np.float32)
        y = np.arange(20, dtype=np.int32) % 2
        return Dataset(x_train, y, x_test, y[:4], num_classes=2, name="pixels")

    register("pixels", pixels, max_value=255.0)
    try:
        ds = load("pixels", normalization=method)
        raw = load("pixels", normalization="none")
    finally:
        unregister("pixels")
    assert ds.normalization == method
    assert raw.normalization == "none" and raw.x_test.max() == 255.0
    if method == "standardize":
        np.testing.assert_array_equal(ds.x_test[:, 0], 1.0)
    scaled = data.normalize(data.normalize(raw, "scale").replace(normalization="none"), method)
    np.testing.assert_allclose(ds.x_test, scaled.x_test, rtol=1e-6)
    np.testing.assert_allclose(ds.x_train, scaled.x_train, rtol=1e-6, atol=1e-6)
