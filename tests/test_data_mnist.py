"""MNIST / Fashion-MNIST: lookup order, download (with a fake fetch), verification, errors,
and the real files in ../shared/data when present. These tests never touch the network."""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import re
import shutil

import jax
import numpy as np
import pytest

from jaxnn.data import DataError, DataNotFoundError, load_fashion_mnist, load_mnist, write_idx
from jaxnn.data import mnist as mn

KEY = jax.random.key(0)
ROLES = mn.ROLES
TEST_ROLES = ("test_images", "test_labels")
MIRRORS = mn.MNIST.mirrors


def _no_network(url, **kwargs):
    pytest.fail(f"a test tried to download {url}")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty cache, no $JAXNN_DATA, and a default fetch that fails the test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JAXNN_DATA", raising=False)
    monkeypatch.setattr(mn, "urllib_fetch", _no_network)
    return tmp_path / "xdg" / "jaxnn"


def fake_arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_set(directory, n, *, roles=ROLES, compress=True, seed=0):
    """Write a small MNIST-style set (official file names) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = fake_arrays(n, seed)
    for role in roles:
        spec = mn.MNIST.files[role]
        array = images if role.endswith("images") else labels
        write_idx(directory / (spec.name if compress else spec.raw_name), array,
                  compress=compress)
    return images, labels


def fake_payloads(n: int = 20) -> dict[str, bytes]:
    images, labels = fake_arrays(n, seed=7)
    out = {}
    for role in ROLES:
        array = images if role.endswith("images") else labels
        raw = (b"\x00\x00\x08" + bytes([array.ndim])
               + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes())
        out[mn.MNIST.files[role].name] = gzip.compress(raw, mtime=0)
    return out


@pytest.fixture
def fake_source(monkeypatch):
    """Replace MNIST's checksum table with that of small fake files; return their bytes."""
    payloads = fake_payloads()
    files = {}
    for role, spec in mn.MNIST.files.items():
        digests = mn.bytes_digests(payloads[spec.name])
        files[role] = mn.FileSpec(spec.name, size=digests["size"], sha256=digests["sha256"],
                                  md5=digests["md5"])
    monkeypatch.setitem(mn.SOURCES, "mnist", dataclasses.replace(mn.MNIST, files=files))
    return payloads


class FakeFetch:
    """``url -> bytes`` from a table; records every URL asked for."""

    def __init__(self, payloads, fail=()):
        self.payloads, self.fail, self.urls = payloads, tuple(fail), []

    def __call__(self, url):
        self.urls.append(url)
        if any(url.startswith(prefix) for prefix in self.fail):
            raise OSError(f"unreachable: {url}")
        return self.payloads[url.rsplit("/", 1)[1]]


def leftovers(directory) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


# ------------------------------------------------------------------------------ lookup


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, monkeypatch, isolated):
    write_set(tmp_path / "mine", 10)
    write_set(tmp_path / "env" / "mnist", 11)
    write_set(isolated / "mnist", 12)
    monkeypatch.setenv("JAXNN_DATA", str(tmp_path / "env"))
    kwargs = dict(download=False, verify=False)
    assert load_mnist(data_dir=tmp_path / "mine", **kwargs).num_train == 10
    assert load_mnist(**kwargs).num_train == 11
    monkeypatch.delenv("JAXNN_DATA")
    assert load_mnist(**kwargs).num_train == 12
    paths = mn.locate_files("mnist", data_dir=tmp_path / "mine", download=False)
    assert set(paths) == set(ROLES)
    assert all(p.parent == tmp_path / "mine" for p in paths.values())


def test_search_dirs_order(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("JAXNN_DATA", str(tmp_path / "env"))
    dirs = mn.search_dirs("fashion_mnist", tmp_path / "mine")
    assert dirs == [
        ("data_dir", tmp_path / "mine" / "fashion-mnist"),
        ("data_dir", tmp_path / "mine" / "fashion_mnist"),
        ("data_dir", tmp_path / "mine"),
        ("$JAXNN_DATA", tmp_path / "env" / "fashion-mnist"),
        ("$JAXNN_DATA", tmp_path / "env" / "fashion_mnist"),
        ("$JAXNN_DATA", tmp_path / "env"),
        ("cache", isolated / "fashion-mnist"),
        ("cache", isolated / "fashion_mnist"),
        ("cache", isolated),
    ]


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_jaxnn_data_is_unset(tmp_path, monkeypatch, isolated, value):
    # A blank setting (JAXNN_DATA=" ") searched a folder named " " in the current directory.
    monkeypatch.chdir(tmp_path)
    write_set(tmp_path / "  ", 10)
    monkeypatch.setenv("JAXNN_DATA", value)
    assert [origin for origin, _ in mn.search_dirs("mnist")] == ["cache"] * 2
    with pytest.raises(DataError, match="cannot find the files"):
        load_mnist(download=False)


def test_cache_dir_without_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mn.cache_dir() == tmp_path / ".cache" / "jaxnn"


@pytest.mark.parametrize("value", ["relative/cache", "", "."])
def test_cache_dir_ignores_a_relative_xdg(monkeypatch, tmp_path, value):
    # The XDG base-directory rules: a relative $XDG_CACHE_HOME is invalid and ignored, so
    # the cache does not depend on the folder the command runs in.
    monkeypatch.setenv("XDG_CACHE_HOME", value)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mn.cache_dir() == tmp_path / ".cache" / "jaxnn"


@pytest.mark.parametrize("layout", ["fashion-mnist", "fashion_mnist", "."])
def test_env_subfolder_layouts(tmp_path, monkeypatch, layout):
    root = tmp_path / "env"
    write_set(root / layout, 13)
    monkeypatch.setenv("JAXNN_DATA", str(root))
    ds = load_fashion_mnist(download=False)
    assert ds.num_train == 13 and ds.name == "fashion_mnist"
    assert ds.class_names[0] == "T-shirt/top"


def test_subfolder_beats_directory_itself(tmp_path):
    write_set(tmp_path / "d", 10)
    write_set(tmp_path / "d" / "mnist", 14)
    assert load_mnist(data_dir=tmp_path / "d", download=False).num_train == 14


def test_incomplete_directory_is_skipped(tmp_path, monkeypatch):
    write_set(tmp_path / "mine", 10, roles=TEST_ROLES)
    write_set(tmp_path / "env", 11)
    monkeypatch.setenv("JAXNN_DATA", str(tmp_path / "env"))
    assert load_mnist(data_dir=tmp_path / "mine", download=False).num_train == 11
    # ... but it is complete for split="test"
    ds = load_mnist(KEY, data_dir=tmp_path / "mine", download=False, split="test",
                    test_fraction=0.5)
    assert ds.num_train + ds.num_test == 10


def test_a_jaxnn_data_that_is_a_file_is_reported_as_such(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "data.tar"
    not_a_dir.write_bytes(b"")
    monkeypatch.setenv("JAXNN_DATA", str(not_a_dir))
    with pytest.raises(DataError) as info:
        load_mnist(download=False)
    assert f"$JAXNN_DATA: {not_a_dir} (not a directory)" in str(info.value)


def test_uncompressed_files_and_gz_preference(tmp_path):
    images, labels = write_set(tmp_path / "d", 10, compress=False)
    ds = load_mnist(data_dir=tmp_path / "d", download=False)
    np.testing.assert_array_equal(ds.x_train, images.reshape(10, 784).astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, labels)
    write_set(tmp_path / "d", 12, compress=True)
    paths = mn.locate_files("mnist", data_dir=tmp_path / "d", download=False)
    assert all(p.name.endswith(".gz") for p in paths.values())


@pytest.mark.parametrize("compress", [False, True])
def test_file_names_with_a_dot_before_idx_are_found(tmp_path, compress):
    # Some archives name the files t10k-images.idx3-ubyte; they were "not found".
    images, labels = fake_arrays(10)
    for role in ROLES:
        name = mn.MNIST.files[role].name.replace("-idx", ".idx")
        write_idx(tmp_path / (name if compress else name.removesuffix(".gz")),
                  images if role.endswith("images") else labels, compress=compress)
    ds = load_mnist(data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(ds.x_test, images.reshape(10, 784).astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, labels)
    paths = mn.locate_files("mnist", data_dir=tmp_path, download=False)
    assert paths["test_images"].name == "t10k-images.idx3-ubyte" + (".gz" if compress else "")


@pytest.mark.parametrize("spelling", [str.upper, str.title])
def test_file_names_are_matched_whatever_their_case(tmp_path, spelling):
    images, labels = fake_arrays(10)
    for role in ROLES:
        name = spelling(mn.MNIST.files[role].name)
        write_idx(tmp_path / name, images if role.endswith("images") else labels, compress=True)
    ds = load_mnist(data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(ds.y_test, labels)
    paths = mn.locate_files("mnist", data_dir=tmp_path, download=False)
    assert paths["test_images"] == tmp_path / spelling("t10k-images-idx3-ubyte.gz")


def test_the_exact_file_name_wins_over_another_case(tmp_path):
    write_set(tmp_path, 10)
    write_set(tmp_path / "upper", 11)
    for path in (tmp_path / "upper").iterdir():
        path.rename(tmp_path / path.name.upper())
    assert load_mnist(data_dir=tmp_path, download=False).num_train == 10


def test_real_files_with_a_dot_before_idx_verify(shared_data_dir, tmp_path):
    for role in TEST_ROLES:
        spec = mn.MNIST.files[role]
        with gzip.open(shared_data_dir / "mnist" / spec.name) as f:
            (tmp_path / spec.raw_name.replace("-idx", ".idx")).write_bytes(f.read())
    ds = load_mnist(KEY, data_dir=tmp_path, split="test", download=False, verify=True)
    assert ds.num_train + ds.num_test == 10000


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(DataError, match="is not a directory") as info:
        load_mnist(data_dir=tmp_path / "typo", download=False)
    assert "typo" in str(info.value)


def test_an_empty_data_dir_is_not_the_current_directory(tmp_path, monkeypatch):
    # pathlib.Path("") is "."; a config with data_dir: '' read the files in the cwd.
    write_set(tmp_path, 10)
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        with pytest.raises(DataError, match=f"data_dir={empty!r} is empty; give a directory"):
            load_mnist(data_dir=empty, download=False)


# (argument, bad value, error type, message fragment)
BAD_LOOKUP_ARGS = [
    ("data_dir", 5, TypeError, "data_dir must be a path (str or os.PathLike), got 5"),
    # A truthy string read as "yes": "no" would have downloaded into the cache.
    ("download", "no", TypeError, "download must be True or False, got 'no'"),
    ("verify", "yes", TypeError, "verify must be True, False or None, got 'yes'"),
    ("fetch", 3, TypeError, "fetch must be a callable url -> bytes or None, got 3"),
]


@pytest.mark.parametrize("arg, value, error, fragment", BAD_LOOKUP_ARGS,
                         ids=[b[0] for b in BAD_LOOKUP_ARGS])
def test_bad_lookup_arguments_are_named(tmp_path, arg, value, error, fragment):
    write_set(tmp_path, 10, roles=TEST_ROLES)
    kwargs = {"data_dir": tmp_path, "download": False, "split": "test", arg: value}
    with pytest.raises(error, match=re.escape(f"load_mnist: {fragment}")):
        load_mnist(KEY, **kwargs)
    with pytest.raises(error, match=re.escape(f"locate_files: {fragment}")):
        mn.locate_files("mnist", **kwargs)


def test_verify_file_names_an_unknown_role(tmp_path):
    write_set(tmp_path, 3, roles=("test_labels",))
    with pytest.raises(ValueError, match="verify_file: role must be one of .*'test_labels'.*"
                       "got 'test_lables'"):
        mn.verify_file(tmp_path / "t10k-labels-idx1-ubyte.gz", "mnist", "test_lables")


def test_test_fraction_belongs_to_the_test_split(tmp_path):
    write_set(tmp_path / "d", 50)
    with pytest.raises(ValueError, match=r"load_mnist: test_fraction=0.5 applies to "
                                         r"split='test' only"):
        load_mnist(data_dir=tmp_path / "d", download=False, test_fraction=0.5)
    with pytest.raises(ValueError, match=r"load_fashion_mnist: test_fraction must be in "
                                         r"\(0, 1\), got 1.5"):
        load_fashion_mnist(KEY, data_dir=tmp_path / "d", download=False, split="test",
                           test_fraction=1.5)
    ds = load_mnist(KEY, data_dir=tmp_path / "d", download=False, split="test",
                    test_fraction=0.4)
    assert (ds.num_train, ds.num_test) == (30, 20)
    # an empty part names the loader the user called, not the splitter inside it
    with pytest.raises(ValueError, match=r"load_mnist: test_fraction=0.005 of 50 rows leaves"):
        load_mnist(KEY, data_dir=tmp_path / "d", download=False, split="test",
                   test_fraction=0.005)


def test_missing_train_files_say_where_to_put_them(tmp_path, isolated):
    write_set(tmp_path / "d", 10, roles=TEST_ROLES)
    with pytest.raises(DataError) as info:
        load_mnist(data_dir=tmp_path / "d", download=False)
    msg = str(info.value)
    for fragment in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     str(isolated / "mnist"), "download=False", "split='test'",
                     str(tmp_path / "d"), "$JAXNN_DATA", MIRRORS[0]):
        assert fragment in msg


def test_split_test_builds_both_splits_from_the_test_files(tmp_path):
    images, labels = write_set(tmp_path / "d", 50, roles=TEST_ROLES)
    ds = load_mnist(KEY, data_dir=tmp_path / "d", download=False, split="test")
    assert (ds.num_train, ds.num_test) == (40, 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.ones(10))  # stratified
    source = {tuple(r) for r in images.reshape(50, 784).astype(np.float32).tolist()}
    got = {tuple(r) for r in np.r_[ds.x_train, ds.x_test].tolist()}
    assert got == source
    again = load_mnist(KEY, data_dir=tmp_path / "d", download=False, split="test")
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    with pytest.raises(ValueError, match="load_mnist: key=None"):
        load_mnist(data_dir=tmp_path / "d", download=False, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist(data_dir=tmp_path / "d", download=False, split="train")


# ------------------------------------------------------------------------------ download


def test_download_into_cache(fake_source, isolated):
    fetch = FakeFetch(fake_source)
    ds = load_mnist(fetch=fetch)
    assert ds.num_train == ds.num_test == 20
    assert fetch.urls == [MIRRORS[0] + mn.MNIST.files[r].name for r in ROLES]
    assert leftovers(isolated / "mnist") == sorted(fake_source)  # no temporary files left
    for name, data in fake_source.items():
        assert (isolated / "mnist" / name).read_bytes() == data
    # the second time comes from the cache (verified), without fetching
    again = load_mnist(fetch=FakeFetch({}, fail=("http",)))
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_download_falls_back_to_the_next_mirror(fake_source):
    fetch = FakeFetch(fake_source, fail=(MIRRORS[0],))
    ds = load_mnist(split="test", key=KEY, fetch=fetch)
    assert ds.num_train + ds.num_test == 20
    name = mn.MNIST.files["test_images"].name
    assert fetch.urls[:2] == [MIRRORS[0] + name, MIRRORS[1] + name]


def test_download_fetches_only_missing_files(fake_source, isolated):
    (isolated / "mnist").mkdir(parents=True)
    for role in TEST_ROLES:
        name = mn.MNIST.files[role].name
        (isolated / "mnist" / name).write_bytes(fake_source[name])
    fetch = FakeFetch(fake_source)
    load_mnist(fetch=fetch)
    assert sorted(u.rsplit("/", 1)[1] for u in fetch.urls) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_is_rejected_and_not_cached(fake_source, isolated):
    corrupt = {k: v[:-1] + bytes([v[-1] ^ 1]) for k, v in fake_source.items()}
    fetch = FakeFetch(corrupt)
    with pytest.raises(DataError) as info:
        load_mnist(fetch=fetch)
    msg = str(info.value)
    name = mn.MNIST.files["train_images"].name
    assert f"{MIRRORS[0] + name}: rejected, sha256 mismatch" in msg
    assert f"{MIRRORS[1] + name}: rejected, sha256 mismatch" in msg
    assert leftovers(isolated / "mnist") == []  # nothing, not even a temporary file


def test_real_table_rejects_fake_download(isolated):
    payloads = fake_payloads()  # the true MNIST sizes and checksums: these bytes do not match
    with pytest.raises(DataError, match="rejected, size mismatch: expected 9912422, got "):
        load_mnist(fetch=FakeFetch(payloads))
    assert leftovers(isolated / "mnist") == []
    # Bytes of the published size still have to match the published md5 sum.
    name = mn.MNIST.files["train_images"].name
    payloads[name] = payloads[name].ljust(9912422, b"\0")
    with pytest.raises(DataError, match="rejected, md5 mismatch: expected "
                       "f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load_mnist(fetch=FakeFetch(payloads))
    assert leftovers(isolated / "mnist") == []


def test_failed_download_names_urls_and_manual_steps(isolated):
    fetch = FakeFetch({}, fail=("http",))
    with pytest.raises(DataError) as info:
        load_fashion_mnist(fetch=fetch)
    msg = str(info.value)
    url = mn.FASHION_MNIST.mirrors[0] + "train-images-idx3-ubyte.gz"
    assert f"{url}: OSError: unreachable: {url}" in msg
    assert "Download failed; URLs tried" in msg
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in msg
    assert str(isolated / "fashion-mnist") in msg and "data_dir=" in msg
    assert leftovers(isolated / "fashion-mnist") == []


def test_an_unwritable_cache_is_a_data_error(fake_source, tmp_path, monkeypatch):
    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_dir))
    with pytest.raises(DataError) as info:
        load_mnist(fetch=FakeFetch(fake_source))
    msg = str(info.value)
    assert str(not_a_dir / "jaxnn" / "mnist") in msg and "cannot write" in msg
    assert "data_dir" in msg


@pytest.mark.parametrize("bad", ["truncated", "flipped_byte"])
def test_a_bad_file_in_the_cache_is_downloaded_again(fake_source, isolated, bad):
    # A partial download left by another tool (or a damaged disk) must not block every run.
    cache = isolated / "mnist"
    cache.mkdir(parents=True)
    for name, data in fake_source.items():
        (cache / name).write_bytes(data)
    name = mn.MNIST.files["train_images"].name
    good = fake_source[name]
    damaged = good[:100] if bad == "truncated" else good[:-1] + bytes([good[-1] ^ 1])
    (cache / name).write_bytes(damaged)
    fetch = FakeFetch(fake_source)
    assert load_mnist(fetch=fetch).num_train == 20
    assert fetch.urls == [MIRRORS[0] + name]
    assert (cache / name).read_bytes() == good
    assert leftovers(cache) == sorted(fake_source)
    # Without download, the bad file is reported, naming it.
    (cache / name).write_bytes(good[:100])
    with pytest.raises(DataError, match=f"{cache / name}: not the official MNIST"):
        load_mnist(download=False)


def test_a_bad_file_in_the_cache_that_cannot_be_replaced(fake_source, isolated):
    cache = isolated / "mnist"
    cache.mkdir(parents=True)
    for name, data in fake_source.items():
        (cache / name).write_bytes(data)
    name = mn.MNIST.files["test_labels"].name
    (cache / name).write_bytes(fake_source[name][:10])
    with pytest.raises(DataError) as info:
        load_mnist(fetch=FakeFetch({}, fail=("http",)))
    msg = str(info.value)
    assert f"{cache / name}: not the official MNIST" in msg
    assert f"{MIRRORS[0] + name}: OSError: unreachable" in msg


def test_fetch_returning_non_bytes(fake_source):
    with pytest.raises(DataError, match="fetch returned str, expected bytes"):
        load_mnist(fetch=lambda url: "not bytes")


def test_default_fetch_is_urllib(monkeypatch, fake_source):
    monkeypatch.setattr(mn, "urllib_fetch", FakeFetch(fake_source))
    assert load_mnist().num_train == 20  # fetch=None resolves the module's urllib_fetch


# ------------------------------------------------------------------------------ verification


def test_cache_files_are_checksummed_by_default(isolated):
    write_set(isolated / "mnist", 10)
    with pytest.raises(DataError, match="not the official MNIST") as info:
        load_mnist(download=False)
    assert str(isolated / "mnist") in str(info.value)
    assert load_mnist(download=False, verify=False).num_train == 10


def test_user_files_are_checksummed_only_with_verify_true(tmp_path):
    write_set(tmp_path / "d", 10)
    assert load_mnist(data_dir=tmp_path / "d", download=False).num_train == 10
    with pytest.raises(DataError, match="size mismatch: expected 9912422") as info:
        load_mnist(data_dir=tmp_path / "d", download=False, verify=True)
    assert str(tmp_path / "d" / "train-images-idx3-ubyte.gz") in str(info.value)


def test_verify_uncompressed_without_known_checksum(tmp_path):
    write_set(tmp_path / "d", 10, compress=False)
    with pytest.raises(DataError, match="no checksum is known for the uncompressed MNIST"):
        load_mnist(data_dir=tmp_path / "d", download=False, verify=True)


# (what to break, message fragments)
BROKEN = [
    ("count_mismatch", ["label/image count mismatch", "t10k-labels", "t10k-images"]),
    ("truncated_images", ["t10k-images-idx3-ubyte.gz", "truncated data"]),
    ("bad_magic", ["t10k-labels-idx1-ubyte.gz", "bad magic number"]),
    ("label_out_of_range", ["t10k-labels-idx1-ubyte.gz", "label 12 at index 3"]),
    ("wrong_image_shape", ["t10k-images-idx3-ubyte.gz", "(n, 28, 28)", "(10, 14, 56)"]),
    ("no_images", ["t10k-images-idx3-ubyte.gz", "holds no images", "(0, 28, 28)"]),
]


@pytest.mark.parametrize("how, fragments", BROKEN, ids=[b[0] for b in BROKEN])
def test_corrupt_files_raise_data_error(tmp_path, how, fragments):
    d = tmp_path / "d"
    images, labels = write_set(d, 10, roles=TEST_ROLES)
    img, lab = d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz"
    if how == "count_mismatch":
        write_idx(lab, labels[:9])
    elif how == "truncated_images":
        img.write_bytes(gzip.compress(gzip.decompress(img.read_bytes())[:-5]))
    elif how == "bad_magic":
        lab.write_bytes(gzip.compress(b"\x01\x02" + gzip.decompress(lab.read_bytes())[2:]))
    elif how == "label_out_of_range":
        labels[3] = 12
        write_idx(lab, labels)
    elif how == "no_images":
        write_idx(img, images[:0])
        write_idx(lab, labels[:0])
    else:
        write_idx(img, images.reshape(10, 14, 56))
    with pytest.raises(DataError) as info:
        load_mnist(KEY, data_dir=d, download=False, split="test")
    for fragment in fragments:
        assert fragment in str(info.value)
    # files that are there but broken are not "not found": a caller trying one data set
    # after another (compare.py's data.name: auto) must report them, not move on
    assert not isinstance(info.value, DataNotFoundError)


def test_missing_files_raise_data_not_found(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="cannot find the files"):
        load_mnist(KEY, data_dir=tmp_path / "empty", download=False, split="test")
    with pytest.raises(DataNotFoundError, match="cannot find the files"):
        load_fashion_mnist(KEY, data_dir=tmp_path / "empty", download=False)
    assert issubclass(DataNotFoundError, DataError) and issubclass(DataError, ValueError)


# ------------------------------------------------------------------------------ real files

# The md5 sums the data sets publish (MNIST page, Fashion-MNIST README).
PUBLISHED_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


def test_table_holds_the_published_md5_sums():
    for name, published in PUBLISHED_MD5.items():
        assert {s.name: s.md5 for s in mn.SOURCES[name].files.values()} == published


def test_every_file_has_a_size():
    # A size lets a truncated download fail before hashing and lets the other-data-set
    # check recognise official files; the MNIST train sizes are those the mirrors serve.
    for source in mn.SOURCES.values():
        for spec in source.files.values():
            assert isinstance(spec.size, int) and spec.size > 0, spec.name
    assert mn.MNIST.files["train_images"].size == 9912422
    assert mn.MNIST.files["train_labels"].size == 28881


@pytest.fixture(scope="module")
def fashion(shared_data_dir):
    """Fashion-MNIST read once for the module, checksums verified."""
    return load_fashion_mnist(data_dir=shared_data_dir, download=False, verify=True)


def test_real_fashion_mnist(fashion):
    assert fashion.x_train.shape == (60000, 784) and fashion.x_test.shape == (10000, 784)
    assert fashion.x_train.dtype == np.float32 and fashion.y_train.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(fashion.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(fashion.y_test), np.full(10, 1000))
    assert fashion.x_train.min() == 0 and fashion.x_train.max() == 255
    assert len(fashion.class_names) == 10 and fashion.class_names[9] == "Ankle boot"


@pytest.mark.parametrize("name, sub", [("fashion_mnist", "fashion-mnist"), ("mnist", "mnist")])
def test_real_checksums_match(shared_data_dir, name, sub):
    files = sorted((shared_data_dir / sub).glob("*.gz"))
    assert files, f"no files in {shared_data_dir / sub}"
    specs = {s.name: (role, s) for role, s in mn.SOURCES[name].files.items()}
    for path in files:
        role, spec = specs[path.name]
        digests = mn.file_digests(path)
        assert (digests["size"], digests["sha256"], digests["md5"]) == (
            spec.size, spec.sha256, spec.md5)
        assert digests["md5"] == PUBLISHED_MD5[name][path.name]
        mn.verify_file(path, name, role)


def test_real_mnist_test_files(shared_data_dir, isolated):
    ds = load_mnist(KEY, data_dir=shared_data_dir, download=False, split="test", verify=True)
    assert (ds.num_train, ds.num_test) == (8000, 2000) and ds.num_features == 784
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert ds.x_train.max() == 255
    if not (shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz").exists():
        with pytest.raises(DataError, match=r"split='test'.*--set data.options.split=test"):
            load_mnist(data_dir=shared_data_dir, download=False)


@pytest.mark.parametrize("have, want", [("mnist", load_fashion_mnist),
                                         ("fashion-mnist", load_mnist)])
def test_only_the_other_data_sets_test_files_are_named_not_offered_as_split_test(
        shared_data_dir, tmp_path, have, want):
    # The two sets share file names: a folder of MNIST's t10k files, searched for
    # Fashion-MNIST, counted "2 of 4 files" and suggested split='test', which then refused
    # them as MNIST's.
    src = [shared_data_dir / have / f for f in ("t10k-images-idx3-ubyte.gz",
                                                "t10k-labels-idx1-ubyte.gz")]
    if not all(f.exists() for f in src):
        pytest.skip(f"the {have} test files are not in {shared_data_dir / have}")
    folder = tmp_path / "only-test"
    folder.mkdir()
    for f in src:
        shutil.copy(f, folder / f.name)
    other = "MNIST" if have == "mnist" else "Fashion-MNIST"
    with pytest.raises(DataNotFoundError) as err:
        want(data_dir=folder, download=False)
    assert f"{folder} (2 of 4 files, the test files of {other})" in str(err.value)
    assert "split='test'" not in str(err.value)


def _fashion_folder_with(src: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A ``fashion-mnist/`` folder under ``tmp_path`` holding the test files found in ``src``."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for role in TEST_ROLES:
        name = mn.FASHION_MNIST.files[role].name  # the same file names as MNIST's
        shutil.copy(src / name, folder / name)
    return folder


def test_other_data_sets_files_are_refused(shared_data_dir, tmp_path):
    wrong = _fashion_folder_with(shared_data_dir / "mnist", tmp_path)
    with pytest.raises(DataNotFoundError, match="this is the MNIST t10k-labels-idx1-ubyte, "
                       "not Fashion-MNIST's") as info:
        load_fashion_mnist(KEY, data_dir=tmp_path, download=False, split="test")
    assert str(wrong) in str(info.value)


def test_other_data_sets_labels_are_refused_when_recompressed(shared_data_dir, tmp_path):
    # The same labels, gzipped again (other bytes, other .gz checksums): the decompressed
    # content still identifies them as MNIST's.
    wrong = _fashion_folder_with(shared_data_dir / "fashion-mnist", tmp_path)
    labels = mn.FASHION_MNIST.files["test_labels"].name
    raw = gzip.decompress((shared_data_dir / "mnist" / labels).read_bytes())
    (wrong / labels).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    with pytest.raises(DataError, match="this is the MNIST t10k-labels-idx1-ubyte"):
        load_fashion_mnist(KEY, data_dir=tmp_path, download=False, split="test", verify=False)


def test_other_data_sets_labels_are_refused_when_decompressed_but_named_gz(
        shared_data_dir, tmp_path):
    # A browser that honours Content-Encoding: gzip saves the decompressed file under its .gz
    # name; whether a file is compressed is read from its content, not its name.
    wrong = _fashion_folder_with(shared_data_dir / "fashion-mnist", tmp_path)
    labels = mn.FASHION_MNIST.files["test_labels"].name
    (wrong / labels).write_bytes(gzip.decompress((shared_data_dir / "mnist" / labels).read_bytes()))
    with pytest.raises(DataError, match="this is the MNIST t10k-labels-idx1-ubyte"):
        load_fashion_mnist(KEY, data_dir=tmp_path, download=False, split="test", verify=False)


@pytest.mark.parametrize("stored", ["decompressed_as_gz", "gzipped_as_raw"])
def test_official_files_verify_whatever_their_name_says(shared_data_dir, tmp_path, stored):
    src = shared_data_dir / "fashion-mnist"
    folder = tmp_path / "d"
    folder.mkdir()
    for role in TEST_ROLES:
        spec = mn.FASHION_MNIST.files[role]
        data = (src / spec.name).read_bytes()
        if stored == "decompressed_as_gz":
            (folder / spec.name).write_bytes(gzip.decompress(data))
        else:
            (folder / spec.raw_name).write_bytes(data)
    ds = load_fashion_mnist(KEY, data_dir=folder, download=False, split="test", verify=True)
    assert ds.num_train + ds.num_test == 10000


def test_other_data_sets_images_are_refused(shared_data_dir, tmp_path):
    # MNIST digits under Fashion-MNIST labels would be silently wrong data.
    wrong = _fashion_folder_with(shared_data_dir / "fashion-mnist", tmp_path)
    images = mn.FASHION_MNIST.files["test_images"].name
    shutil.copy(shared_data_dir / "mnist" / images, wrong / images)
    with pytest.raises(DataError, match="this is the MNIST t10k-images-idx3-ubyte, not "
                       "Fashion-MNIST's") as info:
        load_fashion_mnist(KEY, data_dir=tmp_path, download=False, split="test", verify=False)
    assert str(wrong / images) in str(info.value)



def _recompress(path: pathlib.Path, target: pathlib.Path, form: str) -> None:
    """Write ``path``'s IDX content to ``target`` gzipped again (other bytes than the
    official .gz: no file name, another mtime and level) or uncompressed."""
    raw = gzip.decompress(path.read_bytes())
    data = gzip.compress(raw, compresslevel=1, mtime=0) if form == "regzipped" else raw
    assert data != path.read_bytes()
    target.write_bytes(data)


@pytest.mark.parametrize("where", ["data_dir", "cache"])
def test_recompressed_official_files_verify_by_content(shared_data_dir, tmp_path, isolated,
                                                       where):
    # gunzip; gzip -9 changes every byte of the .gz but none of the data: a file whose
    # content is the official one is accepted, with verify=True and in the cache (where a
    # mismatch would be downloaded again).
    folder = (isolated if where == "cache" else tmp_path / "d") / "fashion-mnist"
    folder.mkdir(parents=True)
    for role in TEST_ROLES:
        name = mn.FASHION_MNIST.files[role].name
        _recompress(shared_data_dir / "fashion-mnist" / name, folder / name, "regzipped")
        mn.verify_file(folder / name, "fashion_mnist", role)
    verify = True if where == "data_dir" else None
    ds = load_fashion_mnist(KEY, data_dir=folder if where == "data_dir" else None,
                            download=False, split="test", verify=verify)
    assert ds.num_train + ds.num_test == 10000


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("form", ["regzipped", "decompressed"])
def test_other_data_sets_images_are_refused_when_recompressed(shared_data_dir, tmp_path,
                                                              form, verify):
    wrong = _fashion_folder_with(shared_data_dir / "fashion-mnist", tmp_path)
    images = mn.FASHION_MNIST.files["test_images"].name
    _recompress(shared_data_dir / "mnist" / images, wrong / images, form)
    with pytest.raises(DataError, match="this is the MNIST t10k-images-idx3-ubyte, not "
                       "Fashion-MNIST's") as info:
        load_fashion_mnist(KEY, data_dir=tmp_path, download=False, split="test",
                           verify=verify)
    assert str(wrong / images) in str(info.value)


def test_fashion_images_recompressed_in_an_mnist_folder_are_refused(shared_data_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for role in TEST_ROLES:
        name = mn.MNIST.files[role].name
        shutil.copy(shared_data_dir / "mnist" / name, folder / name)
    images = mn.MNIST.files["test_images"].name
    _recompress(shared_data_dir / "fashion-mnist" / images, folder / images, "regzipped")
    with pytest.raises(DataError, match="this is the Fashion-MNIST t10k-images-idx3-ubyte, "
                       "not MNIST's"):
        load_mnist(KEY, data_dir=tmp_path, download=False, split="test")


def test_verify_names_the_other_data_set_when_its_own_checksum_is_unknown(
        shared_data_dir, tmp_path):
    # No checksum is known for the uncompressed MNIST train images, but Fashion-MNIST's
    # content is: the file is named for what it is, not "cannot be verified".
    path = tmp_path / "train-images-idx3-ubyte"
    _recompress(shared_data_dir / "fashion-mnist" / "train-images-idx3-ubyte.gz", path,
                "decompressed")
    with pytest.raises(DataError, match="this is the Fashion-MNIST train-images-idx3-ubyte, "
                       "not MNIST's"):
        mn.verify_file(path, "mnist", "train_images")


def _values_with_moments(moments: tuple[int, int, int]) -> np.ndarray:
    """``uint8`` values (zeros, 255s, 200s and a few small ones to make up the rest) with the
    given ``(count, sum, sum of squares)``: data other than the MNIST train images that have
    their moments, which is all the check can see of them."""
    n, s, q = moments
    # a 255s and b 200s leave a little to make up: residuals (ds, dq), with values v
    # contributing v*(v-1) (even) to dq - ds each and 1s nothing.
    assert (q - s) % 2 == 0, "v*v and v have the same parity: no data has these moments"
    a = (q - 200 * s) // (255 * 55)
    b = (255 * s - q) // (200 * 55) - 10  # leaves enough ds for the small values
    ds, dq = s - 255 * a - 200 * b, q - 65025 * a - 40000 * b
    small, rest = [], dq - ds
    while rest:
        v = max(v for v in range(2, 256) if v * (v - 1) <= rest)
        small.append(v)
        rest -= v * (v - 1)
    ones = ds - sum(small)
    values = np.concatenate([np.full(a, 255), np.full(b, 200), small, np.ones(ones)])
    assert ones >= 0 and values.size <= n
    return np.concatenate([values, np.zeros(n - values.size)]).astype(np.uint8)


# The MNIST train images' published pixel statistics (mean and standard deviation of the
# values / 255), which give the exact sum and sum of squares of the 47040000 values.
MNIST_TRAIN_MEAN, MNIST_TRAIN_STD, MNIST_TRAIN_VALUES = (
    0.1306604762738429, 0.3081078038564622, 60000 * 28 * 28)
MNIST_TRAIN_MOMENTS = (
    MNIST_TRAIN_VALUES,
    round(MNIST_TRAIN_MEAN * MNIST_TRAIN_VALUES * 255),
    round((MNIST_TRAIN_STD**2 + MNIST_TRAIN_MEAN**2) * MNIST_TRAIN_VALUES * 255**2),
)


def test_moments_helper_builds_what_it_says():
    values = _values_with_moments((10000, 333_000, 72_800_000))
    v = values.astype(np.int64)
    assert (v.size, v.sum(), (v * v).sum()) == (10000, 333_000, 72_800_000)


@pytest.mark.parametrize("form", ["gz", "raw"])
def test_mnist_train_images_recompressed_in_a_fashion_folder_are_refused(tmp_path, form):
    # Only the .gz checksums of the MNIST train files are known, so re-gzipped or
    # uncompressed they used to load as Fashion-MNIST; they are known by their values'
    # count, sum and sum of squares (from the published statistics) as well.
    folder = tmp_path / "fashion-mnist"
    write_set(folder, 20, roles=TEST_ROLES)
    compress = form == "gz"
    spec = mn.FASHION_MNIST.files
    images = _values_with_moments(MNIST_TRAIN_MOMENTS).reshape(60000, 28, 28)
    fashion_labels = (np.arange(60000) % 10).astype(np.uint8)  # 6000 of each, as Fashion's
    name = spec["train_images"].name if compress else spec["train_images"].raw_name
    write_idx(folder / name, images, compress=compress)
    labels_name = spec["train_labels"].name if compress else spec["train_labels"].raw_name
    write_idx(folder / labels_name, fashion_labels, compress=compress)
    with pytest.raises(DataError, match=rf"{folder / name}: this is the MNIST "
                       r"train-images-idx3-ubyte \(recognised by the count, sum and sum of "
                       r"squares of its values\), not Fashion-MNIST's"):
        load_fashion_mnist(data_dir=folder, download=False, verify=False)


@pytest.mark.parametrize("form", ["gz", "raw"])
def test_mnist_train_labels_recompressed_in_a_fashion_folder_are_refused(tmp_path, form):
    # MNIST's train labels, known by their published class counts, with other images.
    folder = tmp_path / "fashion-mnist"
    write_set(folder, 20, roles=TEST_ROLES)
    compress = form == "gz"
    spec = mn.FASHION_MNIST.files
    name = spec["train_images"].name if compress else spec["train_images"].raw_name
    labels_name = spec["train_labels"].name if compress else spec["train_labels"].raw_name
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    mnist_labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), counts))
    write_idx(folder / labels_name, mnist_labels.astype(np.uint8), compress=compress)
    write_idx(folder / name, np.zeros((60000, 28, 28), np.uint8), compress=compress)
    for verify in (False, True):
        with pytest.raises(DataError, match=rf"{folder / labels_name}: this is the MNIST "
                           "train-labels-idx1-ubyte"):
            load_fashion_mnist(data_dir=folder, download=False, verify=verify)


def test_mnist_train_images_recompressed_fail_verification_by_name(tmp_path):
    # verify=True on a Fashion-MNIST folder names what the file is, not only "sha256 mismatch".
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, _values_with_moments(MNIST_TRAIN_MOMENTS).reshape(60000, 28, 28))
    with pytest.raises(DataError, match="this is the MNIST train-images-idx3-ubyte"):
        mn.verify_file(path, "fashion_mnist", "train_images")


def test_images_with_another_sum_of_squares_are_not_refused(tmp_path):
    # The sum alone (the cheap first test) does not decide: same count and sum as MNIST's
    # train images, other squares, loads as Fashion-MNIST data.
    n, s, q = MNIST_TRAIN_MOMENTS
    folder = tmp_path / "fashion-mnist"
    write_set(folder, 20, roles=TEST_ROLES)
    images = _values_with_moments((n, s, q + 2)).reshape(60000, 28, 28)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", (np.arange(60000) % 10).astype(np.uint8))
    ds = load_fashion_mnist(data_dir=folder, download=False, verify=False)
    assert ds.num_train == 60000
