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

import contextlib
import gzip
import io
import math
import os
import pathlib
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from jaxnn._atomic import replace_atomically

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
#: Bytes per read: the one temporary buffer, whatever the size of the file.
_CHUNK = 1 << 20
#: No deflate stream expands more than this (zlib's technical notes): a size from a gzip
#: trailer above it cannot be true, and no array is allocated for it.
_MAX_DEFLATE_RATIO = 1032
# What a corrupt or cut-short gzip stream raises while it is read (BadGzipFile: OSError).
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the stream."""
    parts, left = [], size
    while left:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _count_rest(stream: BinaryIO) -> int:
    """Read ``stream`` to its end (which checks a gzip trailer) and return the bytes left."""
    count = 0
    while part := stream.read(_CHUNK):
        count += len(part)
    return count


def _fill(stream: BinaryIO, array: np.ndarray) -> int:
    """Read into ``array``'s memory in chunks (a gzip reader given one large buffer would
    decompress into a temporary of the same size); return the bytes read."""
    view = memoryview(array.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:done + _CHUNK])
        if not n:
            break
        done += n
    return done


def _read_header(stream: BinaryIO, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Check the magic and read the dimensions: ``(stored dtype, dims, header size)``."""
    data = _read_exactly(stream, 4)
    if len(data) < 4:
        raise DataError(
            f"{source}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number"
        )
    zero, code, ndim = struct.unpack(">HBB", data)
    magic = int.from_bytes(data, "big")
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
    data += _read_exactly(stream, header_size - 4)
    if len(data) < header_size:
        raise DataError(
            f"{source}: truncated header: {ndim} dimensions need {header_size} header bytes, "
            f"the file has {len(data)}"
        )
    return IDX_DTYPES[code], struct.unpack(f">{ndim}I", data[4:]), header_size


def _count_error(source: str, dims: tuple[int, ...], count: int, expected: int,
                 got: int) -> DataError:
    if got < expected:
        return DataError(
            f"{source}: truncated data: header declares shape {dims} ({count} items, "
            f"{expected} bytes) but only {got} bytes follow the header"
        )
    return DataError(
        f"{source}: wrong item count: header declares shape {dims} ({count} items, "
        f"{expected} bytes) but {got} bytes follow the header ({got - expected} trailing)"
    )


def _read_idx_stream(raw: BinaryIO, source: str) -> np.ndarray:
    """The array in ``raw``, a seekable binary stream of an IDX file, raw or gzipped.

    The data are read straight into the result (allocated from the header's dims), so the
    peak memory is the array plus a chunk, not the file, its decompressed copy and a
    converted copy. The array is allocated only once the data's size is known to match the
    header: a raw file's size, or a gzip trailer's size field (the content's size mod 2**32
    for a one-member file); when the trailer does not tell (several members, zero padding,
    a damaged or forged header), the content is first counted, then read again.
    """
    compressed = raw.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
    stored = raw.seek(0, os.SEEK_END)
    if compressed:
        raw.seek(max(stored - 4, 0))
        trailer_size = int.from_bytes(raw.read(4), "little")
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
    try:
        dtype, dims, header_size = _read_header(stream, source)
        count = math.prod(dims)
        expected = count * dtype.itemsize
        if not compressed:
            if stored - header_size != expected:
                raise _count_error(source, dims, count, expected, stored - header_size)
        elif ((header_size + expected) % 2**32 != trailer_size
              or expected > _MAX_DEFLATE_RATIO * stored):
            got = _count_rest(stream)
            if got != expected:
                raise _count_error(source, dims, count, expected, got)
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
            _read_exactly(stream, header_size)
        array = np.empty(dims, dtype.newbyteorder("="))
        got = _fill(stream, array)
        if got == expected:
            got += _count_rest(stream)
        if got != expected:
            raise _count_error(source, dims, count, expected, got)
    except _GZIP_ERRORS as err:
        if not compressed:
            raise
        raise DataError(f"{source}: corrupt or truncated gzip stream ({err})") from err
    if not dtype.isnative:
        array.byteswap(inplace=True)
    return array


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
    return _read_idx_stream(io.BytesIO(bytes(data)), source)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array; see :func:`parse_idx`.

    The data are decompressed straight into the result, so reading a regular file needs
    about the array's own size in memory (plus 1 MiB), not the file's bytes and a
    decompressed copy besides. A stream that cannot seek (a named pipe, ``/dev/stdin``) is
    read whole first, which needs its bytes besides.

    Raises:
      DataError: the path is empty, the file cannot be read or is not a valid IDX file (the
        message names it).
    """
    if not os.fspath(path):
        # pathlib.Path("") is the current directory: the error would name ".".
        raise DataError("read_idx: empty path ''; give the path of an IDX file")
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            if not f.seekable():
                # The reader seeks (to a gzip trailer, back to the start); the bytes read
                # are at most what the writer sent, whatever the header claims.
                return _read_idx_stream(io.BytesIO(f.read()), str(path))
            return _read_idx_stream(f, str(path))
    except OSError as err:  # a corrupt gzip stream is a DataError already
        raise DataError(f"{path}: cannot read IDX file ({err})") from err


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; the inverse of :func:`read_idx`.

    Args:
      path: destination; written gzip-compressed when ``compress`` is true, or, when
        ``compress`` is None, when the name ends in ``.gz``.
      array: an array of one of the IDX element types (uint8, int8, int16, int32, float32,
        float64) with at least one dimension.
      compress: force (True) or prevent (False) gzip compression.

    The file is written a chunk at a time (converted to big-endian and, if asked,
    compressed as it goes), so writing needs about 1 MiB besides the array, into a
    temporary file renamed over ``path`` once complete: a failed write leaves any previous
    file whole.

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
    path = pathlib.Path(path)
    if compress is None:
        compress = path.suffix == ".gz"

    def write(tmp: str) -> None:
        # filename="": no temporary name in the gzip header; mtime=0: reproducible bytes.
        with open(tmp, "wb") as f, (
            gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) if compress
            else contextlib.nullcontext(f)
        ) as out:
            out.write(header)
            for chunk in _big_endian_chunks(array, IDX_DTYPES[code]):
                out.write(chunk)

    replace_atomically(path, write)


def _big_endian_chunks(array: np.ndarray, dtype: np.dtype) -> Iterator[memoryview]:
    """``array``'s items as ``dtype`` in row-major order, a chunk at a time: converting (or
    gathering a strided array) whole would hold a second copy of it, and compressing that
    a third."""
    iterator = np.nditer(array, flags=["external_loop", "buffered", "zerosize_ok"],
                         op_dtypes=[dtype], casting="equiv", order="C",
                         buffersize=max(1, _CHUNK // dtype.itemsize))
    for chunk in iterator:
        yield memoryview(np.ascontiguousarray(chunk).view(np.uint8))
