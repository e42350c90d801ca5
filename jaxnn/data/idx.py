"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

Contract: ``read_idx(path) -> numpy.ndarray`` returns the array stored in one IDX file,
gzip-compressed or not (recognised by the gzip magic bytes ``1f 8b``, not by the file name),
in native byte order; ``parse_idx(data, source=...)`` does the same for bytes already in
memory; ``write_idx(path, array)`` is the inverse (used by tests and by anyone who wants to
store their own data in the format). Every problem with a file raises :class:`DataError`,
a :class:`ValueError` whose message names the file and what is wrong with it.

The format (LeCun, Cortes & Burges, "The MNIST database of handwritten digits")::

    offset  size      content
    0       2         0x00 0x00            (magic, part 1)
    2       1         dtype code           (see below)
    3       1         ndim                 (number of dimensions, >= 1)
    4       4 * ndim  dims                 (unsigned 32-bit big-endian each)
    ...     prod(dims) * itemsize          data, row-major, big-endian

    dtype codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64

A file is rejected when its magic is wrong (first two bytes not zero, unknown dtype code,
``ndim == 0``), its header is cut short, or its data holds fewer ("truncated") or more
("trailing bytes") than ``prod(dims)`` items, and when a gzip stream is corrupt or cut short.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import struct
import zlib

import numpy as np

from jaxnn._atomic import write_bytes

__all__ = ["DataError", "IDX_DTYPES", "parse_idx", "read_idx", "write_idx"]


class DataError(ValueError):
    """A data file (or set of files) is missing, corrupt or inconsistent.

    The message always names the file(s) concerned and the problem, and, when the fix is
    to put files somewhere, which files and where.
    """


#: IDX dtype code -> big-endian numpy dtype of the stored items.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _decompress(data: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(f"{source}: corrupt or truncated gzip stream ({err})") from err


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file (raw or gzip-compressed) into a numpy array.

    Args:
      data: the content of an IDX file; gzip-compressed content is detected by its magic
        bytes ``1f 8b`` and decompressed first.
      source: the name used in error messages (normally the file path).

    Returns:
      An array with the stored shape and the stored element type in native byte order
      (``uint8`` for MNIST images and labels).

    Raises:
      DataError: bad magic, unknown dtype code, header cut short, data truncated or followed
        by trailing bytes, or a corrupt gzip stream; the message names ``source``.
    """
    data = bytes(data)
    if data[:2] == _GZIP_MAGIC:
        data = _decompress(data, source)
    if len(data) < 4:
        raise DataError(
            f"{source}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number"
        )
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if zero != 0:
        raise DataError(
            f"{source}: bad magic number 0x{magic:08x}: an IDX file starts with two zero bytes"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(
            f"{source}: bad magic number 0x{magic:08x}: unknown IDX dtype code 0x{code:02x} "
            f"(known: {known})"
        )
    if ndim == 0:
        raise DataError(f"{source}: bad magic number 0x{magic:08x}: zero dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{source}: truncated header: {ndim} dimensions need {header_size} header bytes, "
            f"the file has {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = IDX_DTYPES[code]
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    got = len(data) - header_size
    if got < expected:
        raise DataError(
            f"{source}: truncated data: header declares shape {dims} ({count} items, "
            f"{expected} bytes) but only {got} bytes follow the header"
        )
    if got > expected:
        raise DataError(
            f"{source}: wrong item count: header declares shape {dims} ({count} items, "
            f"{expected} bytes) but {got} bytes follow the header ({got - expected} trailing)"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(dims)
    # astype to native order; always copies, so the result is writable and owns its memory.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array; see :func:`parse_idx`.

    Raises:
      DataError: the file cannot be read or is not a valid IDX file (the message names it).
    """
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read IDX file ({err})") from err
    return parse_idx(data, source=str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; the inverse of :func:`read_idx`.

    Args:
      path: destination; written gzip-compressed when ``compress`` is true, or, when
        ``compress`` is None, when the name ends in ``.gz``.
      array: an array of one of the IDX element types (uint8, int8, int16, int32, float32,
        float64) with at least one dimension.
      compress: force (True) or prevent (False) gzip compression.

    Raises:
      ValueError: the dtype has no IDX code, the array is 0-dimensional or a dimension
        does not fit the header's 32 bits.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        allowed = ", ".join(str(dt) for dt in codes)
        raise ValueError(
            f"write_idx: array dtype {array.dtype} has no IDX code (allowed: {allowed})"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {array.ndim}")
    too_big = [d for d in array.shape if d >= 2**32]
    if too_big:  # the header stores each dimension as an unsigned 32-bit integer
        raise ValueError(
            f"write_idx: array shape {array.shape} has a dimension of {too_big[0]}; an IDX "
            f"header holds dimensions up to {2**32 - 1}"
        )
    code = codes[native]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = pathlib.Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    write_bytes(path, payload)
