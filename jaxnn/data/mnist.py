"""MNIST and Fashion-MNIST from their official IDX files: find, download, verify, load.

Contract: ``load_mnist(...)`` / ``load_fashion_mnist(...)`` return a 10-class
:class:`~jaxnn.data.dataset.Dataset` with ``float32`` rows of 784 raw pixel values in
``[0, 255]`` and ``int32`` labels 0..9 (60000 train / 10000 test rows with the official
split). :func:`jaxnn.data.load` then divides by 255 (normalization ``"scale"``, its default).

Where the four files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; gzipped or not, and also
accepted with a dot before ``idx``, as in ``t10k-images.idx3-ubyte``, and in any letter case)
are looked for, in this order; the first directory holding every needed file wins:

1. ``data_dir`` (the argument; it must exist when given),
2. ``$JAXNN_DATA``,
3. the cache, ``$XDG_CACHE_HOME/jaxnn`` or ``~/.cache/jaxnn``,

each either in the data set's subfolder (``mnist/``; ``fashion-mnist/`` or ``fashion_mnist/``)
or directly in the directory. If none has them and ``download=True``, the missing files are
downloaded from the official mirrors into ``<cache>/mnist`` or ``<cache>/fashion-mnist``,
each checked against its published size and checksums before it is written (atomically: a
temporary file in the same folder, then ``os.replace``), so a bad or partial download never
lands in the cache. A failed download raises :class:`~jaxnn.data.idx.DataError` naming the
URLs tried and saying which files to put where.

Verification: every file is parsed as IDX and checked for structure (28x28 uint8 images,
uint8 labels in 0..9, as many labels as images). Checksums (sha256 and md5 of the ``.gz``,
sha256 of the uncompressed file where known; a file counts as gzipped by its content, not
its name; a re-gzipped file whose ``.gz`` checksums differ passes when its decompressed
content's sha256 is the official one) are always checked on downloads and, by default, on
files in the cache, where a file that fails them (a partial download left by another tool)
is downloaded again when ``download=True``; files you place yourself (``data_dir``,
``$JAXNN_DATA``) are checked only with ``verify=True`` (you may have your own copy, whose
content checksum is not known: the MNIST train files are known by their ``.gz`` only).
``verify=False`` skips checksums on files found (never on downloads). Whatever ``verify``
says, a file that is recognisably the *other* data set's (MNIST files in a Fashion-MNIST
folder or the reverse) is refused, gzipped, re-gzipped or uncompressed: by its checksums,
or, for the MNIST train files, whose content checksums are not known, by the count, sum and
sum of squares of its values (derived from the published pixel mean and standard deviation
and class counts).

Only the test files? ``split="test"`` builds both splits from the 10000 official test images
alone (a keyed, stratified split, ``test_fraction`` of them for testing), for machines that
have only ``t10k-*`` files; the default ``split="official"`` needs all four files.

References: Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of handwritten
digits"; H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import pathlib
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxnn._atomic import write_bytes
from jaxnn.data.dataset import Dataset, _check_fraction, _require_key, _train_test_split
from jaxnn.data.idx import _GZIP_ERRORS, _GZIP_MAGIC, DataError, read_idx

__all__ = [
    "FASHION_MNIST",
    "MAX_VALUE",
    "MNIST",
    "ROLES",
    "SOURCES",
    "SPLITS",
    "DataNotFoundError",
    "FileSpec",
    "Source",
    "bytes_digests",
    "cache_dir",
    "file_digests",
    "load_fashion_mnist",
    "load_mnist",
    "locate_files",
    "read_images_and_labels",
    "search_dirs",
    "urllib_fetch",
    "verify_file",
]

logger = logging.getLogger(__name__)

#: The largest pixel value of the 8-bit images.
MAX_VALUE: float = 255.0
#: The values of the ``split`` argument.
SPLITS: tuple[str, ...] = ("official", "test")
#: File roles, in the order they are reported.
ROLES: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")
_SPLIT_ROLES = {"official": ROLES, "test": ("test_images", "test_labels")}

Fetch = Callable[[str], bytes]


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One official file and what is known about it (None: unknown, not checked)."""

    name: str  # the gzipped file name; the uncompressed file has the same name minus ".gz"
    size: int | None = None  # bytes of the .gz file
    sha256: str | None = None  # of the .gz file
    md5: str | None = None  # of the .gz file
    raw_sha256: str | None = None  # of the uncompressed file
    # (count, sum, sum of squares) of the items, for a file whose content checksum is not
    # known: recognises it (the other data set's file) recompressed or uncompressed.
    moments: tuple[int, int, int] | None = None

    @property
    def raw_name(self) -> str:
        return self.name.removesuffix(".gz")

    @property
    def accepted_names(self) -> tuple[str, ...]:
        """File names looked for, in order: the official ``.gz`` and uncompressed names,
        then the same with a dot before ``idx`` (``t10k-images.idx3-ubyte``, as some
        mirrors and archives name them)."""
        dotted = self.name.replace("-idx", ".idx", 1)
        return (self.name, self.raw_name, dotted, dotted.removesuffix(".gz"))


@dataclasses.dataclass(frozen=True)
class Source:
    """A data set distributed as the four MNIST-style IDX files."""

    name: str  # as in jaxnn.data.names()
    title: str  # for messages
    subdirs: tuple[str, ...]  # subfolder names accepted; the first one is used by the cache
    mirrors: tuple[str, ...]  # base URLs, tried in order
    files: Mapping[str, FileSpec]  # role -> file
    class_names: tuple[str, ...]


# Checksums of the files in ../shared/data were computed here (sha256 and md5 of the .gz and
# sha256 of the uncompressed content); the md5 sums agree with those the data sets publish.
# For the MNIST train files, of which we have no copy, the published md5 sums and the sizes
# the download logs of the public mirrors show (9912422 and 28881 bytes) are known, and the
# moments of their items: of the images from the widely published mean and standard
# deviation of the pixels / 255 (0.1306604762738429 and 0.3081078038564622, exact to one
# pixel value: the same formula gives Fashion-MNIST's published 0.2860405969887955 and
# 0.3530242445149223 from our copy's exact sums), of the labels from the published class
# counts 5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949 (the published test
# counts are those of our copy).
MNIST = Source(
    name="mnist",
    title="MNIST",
    subdirs=("mnist",),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz",
            size=9912422,
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
            moments=(47040000, 1567298545, 342590800147),
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz",
            size=28881,
            md5="d53e105ee54ea40749a09fcbcd1e9432",
            moments=(60000, 267236, 1691116),
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz",
            size=1648877,
            sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            md5="9fb629c4189551a2d022fa330f9573f3",
            raw_sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            size=4542,
            sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            md5="ec29112dd5afa0611ce80d1b7f02629c",
            raw_sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    class_names=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = Source(
    name="fashion_mnist",
    title="Fashion-MNIST",
    subdirs=("fashion-mnist", "fashion_mnist"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz",
            size=26421880,
            sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            raw_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz",
            size=29515,
            sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            md5="25c81989df183df01b3e8a0aad5dffbe",
            raw_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz",
            size=4422102,
            sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            md5="bef4ecab320f06d8554ea6380940ec79",
            raw_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            size=5148,
            sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            md5="bb300cfdad3c16e7a12a480ee83cd310",
            raw_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
)

#: Data set name -> :class:`Source`.
SOURCES: dict[str, Source] = {MNIST.name: MNIST, FASHION_MNIST.name: FASHION_MNIST}


# --------------------------------------------------------------------------------------------
# Where to look.


def cache_dir() -> pathlib.Path:
    """The jaxnn cache: ``$XDG_CACHE_HOME/jaxnn`` if that variable holds an absolute path,
    else ``~/.cache/jaxnn`` (the XDG base-directory rules: a relative path is ignored, so the
    cache does not move with the current folder). Downloads go to its ``mnist/`` and
    ``fashion-mnist/`` subfolders."""
    base = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or "").expanduser()
    root = base if base.is_absolute() else pathlib.Path.home() / ".cache"
    return root / "jaxnn"


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown IDX data set {name!r}; known: {sorted(SOURCES)}")
    return SOURCES[name]


def search_dirs(
    name: str, data_dir: str | os.PathLike | None = None
) -> list[tuple[str, pathlib.Path]]:
    """Directories searched for ``name``'s files, in order, as ``(origin, path)`` pairs.

    ``origin`` is ``"data_dir"``, ``"$JAXNN_DATA"`` or ``"cache"``; within each, the data
    set's subfolders come before the directory itself. Paths need not exist.
    """
    source = _source(name)
    roots: list[tuple[str, pathlib.Path]] = []
    if data_dir is not None:
        roots.append(("data_dir", pathlib.Path(data_dir).expanduser()))
    env = os.environ.get("JAXNN_DATA")
    if env and env.strip():  # blank is unset, not a folder named "  " in the current one
        roots.append(("$JAXNN_DATA", pathlib.Path(env).expanduser()))
    roots.append(("cache", cache_dir()))
    out = []
    for origin, root in roots:
        out.extend((origin, root / sub) for sub in source.subdirs)
        out.append((origin, root))
    return out


def _check_lookup_args(fn: str, data_dir: Any, download: Any, fetch: Any, verify: Any) -> None:
    """Types of the lookup arguments: a truthy string such as ``download="no"`` would
    otherwise be read as True."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"{fn}: data_dir must be a path (str or os.PathLike), got {data_dir!r}")
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"{fn}: download must be True or False, got {download!r}")
    if verify is not None and not isinstance(verify, (bool, np.bool_)):
        raise TypeError(f"{fn}: verify must be True, False or None, got {verify!r}")
    if fetch is not None and not callable(fetch):
        raise TypeError(f"{fn}: fetch must be a callable url -> bytes or None, got {fetch!r}")


def _find_in(directory: pathlib.Path, spec: FileSpec) -> pathlib.Path | None:
    """The first of ``spec.accepted_names`` present (.gz before uncompressed), else the first
    present in another case (``T10K-IMAGES-IDX3-UBYTE.GZ``), else None."""
    for candidate in (directory / name for name in spec.accepted_names):
        if candidate.is_file():
            return candidate
    try:
        entries = {entry.name.lower(): entry.name for entry in os.scandir(directory)}
    except OSError:  # missing, not a directory, unreadable
        return None
    for name in spec.accepted_names:
        if name in entries and (candidate := directory / entries[name]).is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Checksums.


def file_digests(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex, "md5": hex}`` of a file (read in chunks).

    Raises:
      DataError: the file cannot be read (the message names it).
    """
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err})") from err
    return {"size": size, "sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _is_gzip(path: pathlib.Path) -> bool:
    """Whether the file starts with the gzip magic bytes. Its name is no guide: a browser
    honouring ``Content-Encoding: gzip`` saves the decompressed file under the ``.gz`` name,
    and some archives hold gzipped files without the suffix."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err})") from err


def bytes_digests(data: bytes) -> dict[str, Any]:
    """``{"size", "sha256", "md5"}`` of bytes in memory, as :func:`file_digests`."""
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
    }


def _mismatch(digests: Mapping[str, Any], spec: FileSpec, compressed: bool) -> str | None:
    """Why ``digests`` do not match ``spec`` (None: they match every known value).

    Raises ``LookupError`` when nothing is known to check against.
    """
    if compressed:
        expected = {"size": spec.size, "sha256": spec.sha256, "md5": spec.md5}
    else:
        expected = {"sha256": spec.raw_sha256}
    expected = {k: v for k, v in expected.items() if v is not None}
    if not expected:
        raise LookupError
    for what, value in expected.items():
        if digests[what] != value:
            return f"{what} mismatch: expected {value}, got {digests[what]}"
    return None


class _NotOfficial(DataError):
    """A file whose size or checksums differ from the official file's (as opposed to one
    that cannot be checked because no checksum is known)."""


class DataNotFoundError(DataError):
    """The data set's files are not there: found nowhere (and not downloaded), or the files
    found are the other data set's (MNIST's in place of Fashion-MNIST's, or the reverse).

    A caller trying one data set after another (``data.name: auto`` of scripts/compare.py)
    goes on to the next on this error only: any other :class:`DataError` (a truncated file,
    too large an ``n_train``) is a problem of the files that are there, and is reported."""


def verify_file(path: str | os.PathLike, name: str, role: str) -> None:
    """Check a file against the published size and checksums of ``name``'s file ``role``.

    A gzipped file is checked against every known value among size, sha256 and md5 of the
    official ``.gz`` and, when they differ (a re-gzipped copy), by the sha256 of its
    decompressed content; an uncompressed one against the sha256 of the uncompressed
    official file. Which of the two a file is comes from its content (the gzip magic bytes),
    not its name. A file whose content is the other data set's is named as such.

    Args:
      path: the file.
      name: ``"mnist"`` or ``"fashion_mnist"``.
      role: ``"train_images"``, ``"train_labels"``, ``"test_images"`` or ``"test_labels"``.

    Raises:
      DataError: a mismatch, or no checksum is known for this file in this form; the message
        names the file.
    """
    source = _source(name)
    if role not in ROLES:
        raise ValueError(f"verify_file: role must be one of {ROLES}, got {role!r}")
    spec = source.files[role]
    path = pathlib.Path(path)
    compressed = _is_gzip(path)
    digests = file_digests(path)
    try:
        problem = _mismatch(digests, spec, compressed)
    except LookupError:
        if not compressed:
            _refuse_other_content(path, source, role, digests["sha256"])
        raise DataError(
            f"{path}: no checksum is known for the {'gzipped' if compressed else 'uncompressed'} "
            f"{source.title} file {spec.name if compressed else spec.raw_name}, so it cannot be "
            f"verified; pass verify=False to accept it on its structure alone"
        ) from None
    if not problem:
        return
    # Re-gzipped (gunzip; gzip -9) the .gz differs but the content may be the official one;
    # decompressing again costs a fraction of a load, and only for such files.
    content = _content_sha256(path) if compressed else digests["sha256"]
    if content is not None and content == spec.raw_sha256:
        return
    if content is not None:
        _refuse_other_content(path, source, role, content)
        _refuse_other_file(path, source, role)
    raise _NotOfficial(
        f"{path}: not the official {source.title} {spec.name if compressed else spec.raw_name}"
        f" ({problem}); replace the file, or pass verify=False to use your own copy"
    )


def _content_sha256(path: pathlib.Path) -> str | None:
    """sha256 of a gzipped file's decompressed content (streamed); None if the gzip stream
    is corrupt (reading the file names that problem)."""
    sha = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
    except _GZIP_ERRORS:
        return None
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err})") from err
    return sha.hexdigest()


def _other_error(path: pathlib.Path, source: Source, other: Source, role: str,
                 how: str = "") -> DataError:
    return DataNotFoundError(
        f"{path}: this is the {other.title} {other.files[role].raw_name}{how}, not "
        f"{source.title}'s; keep each data set in its own subfolder ({source.subdirs[0]}/ "
        f"and {other.subdirs[0]}/)"
    )


def _matches_moments(items: np.ndarray, moments: tuple[int, int, int]) -> bool:
    """Whether ``uint8`` items have ``moments``, ``(count, sum, sum of squares)``. The sum
    (3% of a load for 60000 images) rules out other data; the squares, from a histogram
    built a chunk at a time (``np.bincount`` converts its whole input to 8-byte integers),
    cost 10 times more and are computed only for items of that sum."""
    flat = items.reshape(-1)
    if items.dtype != np.uint8 or flat.size != moments[0]:
        return False
    if int(flat.sum(dtype=np.int64)) != moments[1]:
        return False
    histogram = np.zeros(256, np.int64)
    for start in range(0, flat.size, 1 << 20):
        histogram += np.bincount(flat[start:start + (1 << 20)], minlength=256)
    return int(histogram @ np.arange(256, dtype=np.int64)**2) == moments[2]


def _refuse_other_items(path: pathlib.Path, source: Source, role: str,
                        items: np.ndarray) -> None:
    """Raise when ``items`` (as read) have the moments of another data set's file known
    only by them (the MNIST train files, whatever their compression)."""
    for other in SOURCES.values():
        moments = other.files[role].moments
        if other is not source and moments is not None and _matches_moments(items, moments):
            raise _other_error(path, source, other, role, " (recognised by the count, sum "
                               "and sum of squares of its values)")


def _refuse_other_file(path: pathlib.Path, source: Source, role: str) -> None:
    """:func:`_refuse_other_items` on the file at ``path``, read only when another data set's
    file is known by moments; a file that cannot be read is left to the reader to report."""
    if not any(o is not source and o.files[role].moments for o in SOURCES.values()):
        return
    try:
        items = read_idx(path)
    except DataError:
        return
    _refuse_other_items(path, source, role, items)


def _refuse_other_content(path: pathlib.Path, source: Source, role: str, content: str) -> None:
    """Raise when ``content`` (sha256 of the IDX content) is another data set's file."""
    for other in SOURCES.values():
        if other is not source and content == other.files[role].raw_sha256:
            raise _other_error(path, source, other, role)


def _check_images_content(path: pathlib.Path, images: np.ndarray, source: Source,
                          role: str) -> None:
    """Refuse images (as read, uint8) whose IDX content is another data set's file,
    whatever its compression: by its sha256, or, for a file known only by its ``.gz``, by
    the moments of its pixels. Hashing the array costs ~2% of a load, while hashing the
    file before reading would decompress it twice."""
    header = bytes([0, 0, 0x08, images.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in images.shape)
    sha = hashlib.sha256(header)
    sha.update(np.ascontiguousarray(images))
    _refuse_other_content(path, source, role, sha.hexdigest())
    _refuse_other_items(path, source, role, images)


def _check_not_other(path: pathlib.Path, source: Source, role: str) -> None:
    """Refuse a file whose content is the other data set's.

    A labels file (small: <= 60 kB uncompressed) is compared in full: its sha256 and md5
    with the other ``.gz`` file's, and the sha256 of its (decompressed) content with the
    other's uncompressed file, so a re-compressed copy is caught too (the MNIST train
    labels, whose content checksum is not known, by the moments of their items). An images
    file (up to 47 MB) is hashed here only when it is gzipped and exactly as large as the
    other's ``.gz`` (the official file, also one whose content hash is unknown), so the
    usual case costs a ``stat``, not a read; any other form is recognised by its content
    once read (:func:`_check_images_content`)."""
    others = [other for other in SOURCES.values() if other is not source]
    if role.endswith("images"):
        try:
            size = path.stat().st_size
        except OSError as err:
            raise DataError(f"{path}: cannot read the file ({err})") from err
        if not any(o.files[role].size == size for o in others) or not _is_gzip(path):
            return
        digests, raw_sha256 = file_digests(path), None
    elif _is_gzip(path):
        digests = file_digests(path)
        try:
            with gzip.open(path, "rb") as f:
                raw_sha256 = hashlib.sha256(f.read()).hexdigest()
        except (OSError, EOFError, zlib.error):
            return  # not valid gzip: read_idx names the problem
    else:
        digests = file_digests(path)
        raw_sha256 = digests["sha256"]
    for other in others:
        spec = other.files[role]
        if (
            digests["sha256"] == spec.sha256
            or digests["md5"] == spec.md5
            or (raw_sha256 is not None and raw_sha256 == spec.raw_sha256)
        ):
            raise _other_error(path, source, other, role)
    if role.endswith("labels"):
        _refuse_other_file(path, source, role)


# --------------------------------------------------------------------------------------------
# Download.


def urllib_fetch(url: str, *, timeout: float = 60.0) -> bytes:
    """The default ``fetch``: the bytes at ``url`` (raises on HTTP or network errors)."""
    request = urllib.request.Request(url, headers={"User-Agent": "jaxnn"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _download(
    source: Source, spec: FileSpec, target: pathlib.Path, fetch: Fetch, failures: list[str]
) -> pathlib.Path | None:
    """Try each mirror; on success write ``target/spec.name`` and return it, else append one
    line per attempt to ``failures`` and return None."""
    for base in source.mirrors:
        url = base + spec.name
        logger.info("downloading %s", url)
        try:
            data = fetch(url)
        except Exception as err:  # any failure of a fetch means "try the next mirror"
            failures.append(f"{url}: {type(err).__name__}: {err}")
            continue
        if not isinstance(data, (bytes, bytearray, memoryview)):
            failures.append(f"{url}: fetch returned {type(data).__name__}, expected bytes")
            continue
        data = bytes(data)
        problem = _mismatch(bytes_digests(data), spec, compressed=True)
        if problem:
            failures.append(f"{url}: rejected, {problem}")
            continue
        path = target / spec.name
        try:
            write_bytes(path, data)
        except OSError as err:
            raise DataError(
                f"{source.title}: cannot write the downloaded {spec.name} into the cache "
                f"{target} ({err}); point $XDG_CACHE_HOME at a writable directory, or put the "
                f"files by hand in a directory you pass as data_dir=... or name in $JAXNN_DATA"
            ) from err
        return path
    return None


# --------------------------------------------------------------------------------------------
# Lookup.


def locate_files(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "official",
    download: bool = True,
    fetch: Fetch | None = None,
    verify: bool | None = None,
) -> dict[str, pathlib.Path]:
    """Find (or download) the files ``name`` needs; see the module docstring for the order.

    Args:
      name: ``"mnist"`` or ``"fashion_mnist"``.
      data_dir: a directory to search first; must exist when given.
      split: ``"official"`` (all four files) or ``"test"`` (the two ``t10k`` files).
      download: download missing files into the cache when found nowhere.
      fetch: ``url -> bytes`` used to download (default :func:`urllib_fetch`); tests pass a
        fake one.
      verify: checksums on files found: None (default) for the cache only, True everywhere,
        False nowhere. Downloads are always verified; a cached file that fails its checksums
        is downloaded again when ``download`` allows.

    Returns:
      ``{role: path}`` for the roles the split needs.

    Raises:
      TypeError: ``data_dir``, ``download``, ``fetch`` or ``verify`` of the wrong type.
      DataError: ``data_dir`` is not a directory, a checksum fails, the cache is not
        writable, or the files are found nowhere and could not be downloaded (the message
        lists where it looked, the URLs tried and where to put the files by hand).
    """
    source = _source(name)
    if split not in SPLITS:
        raise ValueError(f"locate_files: split must be one of {SPLITS}, got {split!r}")
    _check_lookup_args("locate_files", data_dir, download, fetch, verify)
    if data_dir is not None and not str(data_dir).strip():
        # pathlib.Path("") is the current directory: an empty setting would search it.
        raise DataError(f"{source.title}: data_dir={str(data_dir)!r} is empty; give a "
                        "directory, or None to search $JAXNN_DATA and the cache")
    if data_dir is not None and not pathlib.Path(data_dir).expanduser().is_dir():
        raise DataError(f"{source.title}: data_dir={str(data_dir)!r} is not a directory")
    roles = _SPLIT_ROLES[split]
    looked: list[str] = []
    only_test: list[pathlib.Path] = []
    found: dict[str, pathlib.Path] | None = None
    origin = ""
    for origin, directory in search_dirs(name, data_dir):
        present = {r: p for r in roles if (p := _find_in(directory, source.files[r]))}
        if len(present) == len(roles):
            found = present
            break
        if directory.is_dir():
            whose = ""
            if split == "official" and {"test_images", "test_labels"} <= present.keys():
                whose = _whose_test_files(present["test_labels"], source)
                if not whose:
                    only_test.append(directory)
            looked.append(f"  {origin}: {directory} ({len(present)} of {len(roles)} files"
                          f"{whose})")
        else:
            what = "not a directory" if directory.exists() else "does not exist"
            looked.append(f"  {origin}: {directory} ({what})")

    failures: list[str] = []
    target = cache_dir() / source.subdirs[0]
    fetch = fetch if fetch is not None else urllib_fetch
    if found is None and download:
        found = {}
        for role in roles:
            spec = source.files[role]
            existing = _find_in(target, spec)
            if existing is not None:
                found[role] = existing
                continue
            path = _download(source, spec, target, fetch, failures)
            if path is None:
                found = None
                break
            found[role] = path
        origin = "cache"

    if found is None:
        raise DataNotFoundError(_not_found_message(source, roles, looked, only_test, download,
                                         failures, target))

    logger.info("%s: using %s", source.title, ", ".join(str(p) for p in found.values()))
    check = origin == "cache" if verify is None else verify
    for role in sorted(found, key=lambda r: not r.endswith("labels")):  # the cheap ones first
        _check_not_other(found[role], source, role)
    for role, path in list(found.items()) if check else ():
        try:
            verify_file(path, name, role)
        except _NotOfficial as err:
            if origin != "cache" or not download:
                raise
            # A partial or damaged file in the cache (left by an interrupted tool, a full
            # disk): download it again next to it rather than fail on every run.
            logger.warning("%s; downloading it again", err)
            failures = []
            fresh = _download(source, source.files[role], path.parent, fetch, failures)
            if fresh is None:
                tried = "\n".join(f"  {f}" for f in failures)
                raise DataError(
                    f"{err}\nDownloading it again failed; URLs tried:\n{tried}") from err
            found[role] = fresh
    return found


def _whose_test_files(labels: pathlib.Path, source: Source) -> str:
    """``", the test files of MNIST"`` when the test labels found for ``source`` are another
    data set's (the two share file names): the folder then holds nothing of ``source``, and
    its split='test' hint would only lead to that refusal. Empty otherwise (60 kB read)."""
    try:
        _check_not_other(labels, source, "test_labels")
    except DataNotFoundError:
        others = [o.title for o in SOURCES.values() if o is not source]
        return f", the test files of {others[0] if len(others) == 1 else 'another data set'}"
    except DataError:  # unreadable: reported when it is read
        pass
    return ""


def _not_found_message(
    source: Source,
    roles: tuple[str, ...],
    looked: list[str],
    only_test: list[pathlib.Path],
    download: bool,
    failures: list[str],
    target: pathlib.Path,
) -> str:
    names = [source.files[r].name for r in roles]
    lines = [f"{source.title}: cannot find the files {', '.join(names)}.", "Looked in:"]
    lines += looked
    if not download:
        lines.append("Download: disabled (download=False).")
    else:
        lines.append("Download failed; URLs tried:")
        lines += [f"  {f}" for f in failures]
    lines.append(
        f"To install by hand, download {', '.join(names)} from {source.mirrors[0]} and put them "
        f"(gzipped or not) in {target}, or in a directory you pass as data_dir=... or name in "
        f"$JAXNN_DATA, either directly or in a '{source.subdirs[0]}/' subfolder."
    )
    if only_test:
        lines.append(
            f"{', '.join(str(d) for d in only_test)} holds only the test files: "
            f"split='test' builds train and test splits from those alone (in a training "
            f"config: data.options.split: test, or --set data.options.split=test)."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Reading and loading.


def read_images_and_labels(
    images_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images/labels pair of MNIST-style IDX files and check their structure.

    Returns:
      ``(x, y)``: ``float32`` of shape ``(n, 784)`` with raw pixel values 0..255 and
      ``int32`` of shape ``(n,)`` with labels 0..9.

    Raises:
      DataError: either file is not valid IDX, the images are not ``uint8`` of shape
        ``(n, 28, 28)`` with ``n >= 1``, the labels not ``uint8`` of shape ``(n,)`` with
        values 0..9, or the two counts differ; the message names the file(s).
    """
    images, labels = _read_pair(images_path, labels_path)
    return _as_rows(images, labels)


def _as_rows(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``float32`` ``(n, 784)`` rows of raw pixel values and ``int32`` labels."""
    return images.reshape(images.shape[0], -1).astype(np.float32), labels.astype(np.int32)


def _read_pair(
    images_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_images_and_labels` before conversion: ``uint8`` ``(n, 28, 28)`` images
    and ``uint8`` ``(n,)`` labels, checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path}: expected uint8 images of shape (n, 28, 28), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected uint8 labels of shape (n,), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: holds no images (shape {images.shape}); expected n >= 1")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"label/image count mismatch: {labels_path} has {labels.shape[0]} labels, "
            f"{images_path} has {images.shape[0]} images"
        )
    if labels.size and labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise DataError(f"{labels_path}: label {int(labels[i])} at index {i} is not in 0..9")
    return images, labels


def _load_source(
    name: str,
    key: Any,
    *,
    data_dir: str | os.PathLike | None,
    split: str,
    test_fraction: float | None,
    download: bool,
    fetch: Fetch | None,
    verify: bool | None,
) -> Dataset:
    source = _source(name)
    fn = f"load_{name}"
    if split not in SPLITS:
        raise ValueError(f"{fn}: split must be one of {SPLITS}, got {split!r}")
    _check_lookup_args(fn, data_dir, download, fetch, verify)
    if split == "test":
        _require_key(key, fn, "split='test' (a random split of the official test set)")
        if test_fraction is not None:
            _check_fraction(test_fraction, fn, "test_fraction")
    elif test_fraction is not None:
        # The official split has its own test rows; a fraction would be silently ignored.
        raise ValueError(
            f"{fn}: test_fraction={test_fraction!r} applies to split='test' only; the "
            f"official split keeps its own 10000 test rows")
    paths = locate_files(name, data_dir=data_dir, split=split, download=download,
                         fetch=fetch, verify=verify)

    def read(part: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = _read_pair(paths[f"{part}_images"], paths[f"{part}_labels"])
        _check_images_content(paths[f"{part}_images"], images, source, f"{part}_images")
        return _as_rows(images, labels)

    x_test, y_test = read("test")
    if split == "official":
        x_train, y_train = read("train")
    else:
        x_train, y_train, x_test, y_test = _train_test_split(
            fn, key, x_test, y_test, 0.2 if test_fraction is None else test_fraction)
    return Dataset(x_train, y_train, x_test, y_test, task="classification", num_classes=10,
                   name=name, class_names=source.class_names)


def load_mnist(
    key: Any = None,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "official",
    test_fraction: float | None = None,
    download: bool = True,
    fetch: Fetch | None = None,
    verify: bool | None = None,
) -> Dataset:
    """MNIST handwritten digits (raw pixel values 0..255, 784 features, 10 classes).

    Args:
      key: a ``jax.random`` key; needed only for ``split="test"``.
      data_dir: a directory to search first (see the module docstring for the order).
      split: ``"official"``: 60000 train / 10000 test rows from the four files;
        ``"test"``: only the two ``t10k`` files, split by a keyed stratified split into
        ``1 - test_fraction`` train and ``test_fraction`` test rows.
      test_fraction: the test share of ``split="test"`` (default 0.2); giving it with
        ``split="official"`` is a ValueError.
      download: allow a verified download into the cache when the files are nowhere else.
      fetch: ``url -> bytes`` replacing the network (tests).
      verify: checksums on files found (see :func:`locate_files`).

    Returns:
      A 10-class :class:`~jaxnn.data.dataset.Dataset` named ``"mnist"``.

    Raises:
      DataError: files missing (and not downloadable), corrupt or failing verification.
    """
    return _load_source("mnist", key, data_dir=data_dir, split=split,
                        test_fraction=test_fraction, download=download, fetch=fetch,
                        verify=verify)


def load_fashion_mnist(
    key: Any = None,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "official",
    test_fraction: float | None = None,
    download: bool = True,
    fetch: Fetch | None = None,
    verify: bool | None = None,
) -> Dataset:
    """Fashion-MNIST (Zalando article images; same format and sizes as MNIST).

    Arguments, return value and errors as :func:`load_mnist`; the data set is named
    ``"fashion_mnist"`` and its ``class_names`` are the ten article types.
    """
    return _load_source("fashion_mnist", key, data_dir=data_dir, split=split,
                        test_fraction=test_fraction, download=download, fetch=fetch,
                        verify=verify)
