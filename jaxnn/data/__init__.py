"""Data sets for jaxnn: synthetic ones made from a key, scikit-learn's digits, MNIST and
Fashion-MNIST, plus splitting, normalization and batching.

Contract: ``load(name, *, key=None, data_dir=None, download=True, normalization="scale",
n_train=None, n_test=None, validation_fraction=0.0, **options) -> Dataset`` for any name in
``names()`` (the fields of :class:`jaxnn.config.DataConfig`):

=================  ==============  ===========================================  =========
name               task            what                                         key
=================  ==============  ===========================================  =========
``xor``            classification  the XOR truth table (optionally noisy)       if noisy
``spirals``        classification  interleaved spiral arms                      required
``moons``          classification  two interleaved half circles                 required
``circles``        classification  two concentric circles                       required
``blobs``          classification  Gaussian blobs                               required
``sine``           regression      ``y = A sin(f x + phase) + noise``           required
``digits``         classification  scikit-learn's 1797 8x8 digits              required
``mnist``          classification  MNIST, from the official IDX files          see below
``fashion_mnist``  classification  Fashion-MNIST, from the official IDX files  see below
=================  ==============  ===========================================  =========

``options`` go to the data set's own loader (``n_samples``, ``noise``, ``test_fraction``,
...; see :mod:`jaxnn.data.synthetic`, :mod:`jaxnn.data.digits`, :mod:`jaxnn.data.mnist` for
``split``, ``fetch``, ``verify``); an option the loader does not take is a ValueError
listing the ones it does. ``data_dir`` and ``download`` matter to the sets read from files
(MNIST, Fashion-MNIST) and are ignored by the others, so a training loop can always pass them.

What ``load`` does after the loader, in this order:

1. ``n_train`` / ``n_test``: keep that many rows (:func:`subsample`; a random subset keyed by
   ``k_subsample``, or the first rows when ``key`` is None).
2. ``validation_fraction > 0``: hold out that fraction of the training rows
   (:func:`train_val_split`, keyed by ``k_validation``; needs a key).
3. ``normalization`` (:func:`normalize`, statistics from the training rows only):
   ``"scale"`` divides image pixels by their maximum (255 for MNIST-style files, 16 for
   digits) and leaves the synthetic sets, which have no pixel range, unchanged;
   ``"standardize"`` / ``"standardize_global"`` apply to every set (to pixels already
   divided by their maximum, so a pixel constant over the training rows is centered in
   units of that maximum); ``"none"`` keeps raw values.

The loader itself gets ``key`` unchanged, so ``load("spirals", key=k)`` equals
``synthetic.spirals(k)`` with the same options; ``k_subsample, k_validation =
jax.random.split(jax.random.fold_in(key, LOAD_SALT))`` are independent of it. MNIST-style
sets need a key only for ``split="test"``, a keyed subsample or a validation split.

From a :class:`jaxnn.config.DataConfig` ``c``::

    ds = load(c.name, key=key, data_dir=c.data_dir, download=c.download,
              normalization=c.normalization, n_train=c.n_train, n_test=c.n_test,
              validation_fraction=c.validation_fraction, **c.options)

Batching for a compiled epoch: :func:`epoch_indices` (indices of a shuffled epoch, to gather
one batch at a time inside ``lax.scan``), :func:`epoch_batches` (the shuffled batches
themselves), :func:`num_batches` and :func:`batch_mask`; see :mod:`jaxnn.data.dataset`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import jax

from jaxnn.data import dataset, digits, idx, mnist, synthetic
from jaxnn.data.dataset import (
    NORMALIZATIONS,
    TASKS,
    Dataset,
    _check_count,
    _check_fraction,
    _require_key,
    batch_mask,
    epoch_batches,
    epoch_indices,
    host_rng,
    normalize,
    num_batches,
    standardization_stats,
    subsample,
    train_test_split,
    train_val_split,
)
from jaxnn.data.digits import load_digits
from jaxnn.data.idx import DataError, parse_idx, read_idx, write_idx
from jaxnn.data.mnist import DataNotFoundError, cache_dir, load_fashion_mnist, load_mnist
from jaxnn.data.synthetic import blobs, circles, moons, sine, spirals, xor

__all__ = [
    "LOAD_SALT",
    "NORMALIZATIONS",
    "TASKS",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "batch_mask",
    "blobs",
    "cache_dir",
    "circles",
    "dataset",
    "digits",
    "epoch_batches",
    "epoch_indices",
    "host_rng",
    "idx",
    "load",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "mnist",
    "moons",
    "names",
    "reads_files",
    "normalize",
    "num_batches",
    "parse_idx",
    "read_idx",
    "register",
    "sine",
    "spirals",
    "standardization_stats",
    "subsample",
    "synthetic",
    "train_test_split",
    "train_val_split",
    "unregister",
    "write_idx",
    "xor",
]


#: Folded into ``load``'s key to derive the keys of its own steps (subsample, validation).
LOAD_SALT: int = 0x6C6F6164  # "load"


@dataclasses.dataclass(frozen=True)
class _Entry:
    loader: Callable[..., Dataset]  # (key, **options) -> Dataset
    max_value: float | None  # the divisor of "scale"; None: "scale" leaves the set unchanged
    uses_files: bool  # the loader takes data_dir= and download=


_REGISTRY: dict[str, _Entry] = {
    "xor": _Entry(xor, None, False),
    "spirals": _Entry(spirals, None, False),
    "moons": _Entry(moons, None, False),
    "circles": _Entry(circles, None, False),
    "blobs": _Entry(blobs, None, False),
    "sine": _Entry(sine, None, False),
    "digits": _Entry(load_digits, digits.MAX_VALUE, False),
    "mnist": _Entry(load_mnist, mnist.MAX_VALUE, True),
    "fashion_mnist": _Entry(load_fashion_mnist, mnist.MAX_VALUE, True),
}

_BUILTIN = frozenset(_REGISTRY)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def names() -> tuple[str, ...]:
    """The data set names :func:`load` accepts, sorted."""
    return tuple(sorted(_REGISTRY))


def reads_files(name: str) -> bool:
    """Whether :func:`load` reads data set ``name`` from files (and so uses ``data_dir`` and
    ``download``); False for the generated and bundled sets and for unknown names."""
    entry = _REGISTRY.get(_canonical(name)) if isinstance(name, str) else None
    return bool(entry and entry.uses_files)


def register(
    name: str,
    loader: Callable[..., Dataset],
    *,
    max_value: float | None = None,
    uses_files: bool = False,
    overwrite: bool = False,
) -> None:
    """Make ``load(name, ...)`` call ``loader(key, **options)`` (your own data set).

    Args:
      name: the new name (lower case; ``-`` is read as ``_``).
      loader: ``(key, **options) -> Dataset``; with ``uses_files`` it also receives
        ``data_dir=`` and ``download=``.
      max_value: the raw maximum feature value, divisor of ``normalization="scale"``; None
        makes ``"scale"`` a no-op for this set.
      uses_files: pass ``load``'s ``data_dir`` and ``download`` on to the loader.
      overwrite: allow replacing an existing name.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: the name exists and ``overwrite`` is False, or ``loader`` is not callable.
    """
    if not isinstance(name, str):
        raise TypeError(f"register: name must be a string, got {name!r}")
    key = _canonical(name)
    if not key:
        raise ValueError(f"register: name must be a non-empty string, got {name!r}")
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"register: data set {key!r} already exists; pass overwrite=True")
    if not callable(loader):
        raise ValueError(f"register: loader must be callable, got {loader!r}")
    _REGISTRY[key] = _Entry(loader, max_value, uses_files)


def unregister(name: str) -> None:
    """Remove a name added with :func:`register` (built-in names cannot be removed).

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: the name is unknown or built in.
    """
    if not isinstance(name, str):
        raise TypeError(f"unregister: name must be a string, got {name!r}")
    key = _canonical(name)
    if key in _BUILTIN:
        raise ValueError(f"unregister: {key!r} is a built-in data set and cannot be removed")
    if key not in _REGISTRY:
        raise ValueError(f"unregister: no data set named {key!r}")
    del _REGISTRY[key]


def _loader_options(loader: Callable[..., Dataset]) -> tuple[str, ...] | None:
    """Keyword options a loader accepts (None: it takes ``**kwargs``, anything goes)."""
    params = inspect.signature(loader).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return tuple(
        p.name for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.name not in ("key", "data_dir", "download")
    )


def load(
    name: str,
    *,
    key: Any = None,
    data_dir: Any = None,
    download: bool = True,
    normalization: str = "scale",
    n_train: int | None = None,
    n_test: int | None = None,
    validation_fraction: float = 0.0,
    **options: Any,
) -> Dataset:
    """Load a data set by name, subsample, hold out validation rows and normalize.

    See the module docstring for the names, the order of the steps and which keys are used.

    Args:
      name: one of :func:`names` (case-insensitive, ``-`` read as ``_``).
      key: a ``jax.random`` key; required by the random sets, ``digits``, MNIST-style
        ``split="test"``, keyed subsampling and validation splits.
      data_dir: where MNIST-style files are looked for first (ignored by other sets).
      download: allow MNIST-style files to be downloaded (ignored by other sets).
      normalization: one of :data:`NORMALIZATIONS`.
      n_train, n_test: keep only this many training / test rows (None: all).
      validation_fraction: fraction of the training rows held out as validation, in
        ``[0, 1)``; 0 means no validation split.
      **options: passed to the data set's loader.

    Returns:
      The :class:`Dataset`.

    Raises:
      ValueError: unknown name (with close matches), an option the loader does not take,
        missing key, or a bad argument value.
      DataNotFoundError: (a DataError) the data set's files are not there (or those found
        are the other data set's), and were not downloaded.
      DataError: (a ValueError) data files missing, corrupt or failing verification.
    """
    fn = "load"
    if not isinstance(name, str):
        raise ValueError(f"{fn}: name must be a string, got {name!r}")
    canonical = _canonical(name)
    if canonical not in _REGISTRY:
        close = difflib.get_close_matches(canonical, list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"{fn}: unknown data set {name!r}{hint} (known: {', '.join(names())})"
        )
    entry = _REGISTRY[canonical]
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"{fn}: normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
        )
    # Counts are checked here, before the loader reads 60000 images or tries a download;
    # whether they exceed the rows available is known only after it (subsample checks).
    if n_train is not None:
        n_train = _check_count(n_train, fn, "n_train")
    if n_test is not None:
        n_test = _check_count(n_test, fn, "n_test")
    if validation_fraction != 0.0:
        validation_fraction = _check_fraction(validation_fraction, fn, "validation_fraction")
        _require_key(key, fn, f"validation_fraction={validation_fraction}")
    allowed = _loader_options(entry.loader)
    if allowed is not None:
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            close = [m for u in unknown
                     for m in difflib.get_close_matches(u, list(allowed), n=1, cutoff=0.6)]
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
                f"{fn}: data set {canonical!r} does not take option(s) {', '.join(unknown)}"
                f"{hint}; it takes: {', '.join(allowed) or 'none'}"
            )
    if entry.uses_files:
        options["data_dir"] = data_dir
        options["download"] = download

    if key is not None:  # before the loader: a bad key should not cost a 60000-image read
        _require_key(key, fn, "this data set")
    data = entry.loader(key, **options)
    k_subsample = k_validation = None
    if key is not None:
        k_subsample, k_validation = jax.random.split(jax.random.fold_in(key, LOAD_SALT))
    if n_train is not None or n_test is not None:
        data = subsample(data, n_train=n_train, n_test=n_test, key=k_subsample)
    if validation_fraction > 0.0:
        data = train_val_split(data, validation_fraction, k_validation)
    if normalization == "scale" and entry.max_value is None:
        return data
    if normalization.startswith("standardize") and entry.max_value is not None:
        # Standardize pixels in [0, 1], not in raw units: a feature constant over the
        # training rows keeps sigma = 1, so its test values stay within [-1, 1] rather than
        # reaching 255 (MNIST border pixels seen only in a test image).
        data = normalize(data, "scale", max_value=entry.max_value).replace(normalization="none")
    return normalize(data, normalization, max_value=entry.max_value)
