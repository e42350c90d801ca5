"""IDX parsing: valid files (raw and gzip) written by hand, round trips, corrupt files."""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np
import pytest

from jaxnn.data import DataError, parse_idx, read_idx, write_idx


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file assembled byte by byte, independently of write_idx."""
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
IMAGES_BYTES = idx_bytes(0x08, (2, 3, 4), IMAGES.tobytes())


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_reads_uint8_file(tmp_path, compress):
    data = gzip.compress(IMAGES_BYTES) if compress else IMAGES_BYTES
    path = tmp_path / ("images.gz" if compress else "images")
    path.write_bytes(data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, IMAGES)
    assert out.flags.writeable


# gzip streams whose trailer does not give the content's size: read by a second pass.
ODD_GZIP = {
    "two_members": gzip.compress(IMAGES_BYTES[:7]) + gzip.compress(IMAGES_BYTES[7:]),
    "zero_padded": gzip.compress(IMAGES_BYTES) + b"\x00" * 5,
}


@pytest.mark.parametrize("name", sorted(ODD_GZIP))
def test_reads_gzip_without_a_size_trailer(tmp_path, name):
    path = tmp_path / "images.gz"
    path.write_bytes(ODD_GZIP[name])
    np.testing.assert_array_equal(read_idx(path), IMAGES)
    np.testing.assert_array_equal(parse_idx(bytearray(ODD_GZIP[name])), IMAGES)


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, but gzip content
    path.write_bytes(gzip.compress(idx_bytes(0x08, (3,), bytes([7, 0, 9]))))
    np.testing.assert_array_equal(read_idx(path), [7, 0, 9])


@pytest.mark.parametrize(
    "code, fmt, values",
    [
        (0x09, "b", [-128, -1, 0, 127]),
        (0x0B, "h", [-2, 300, -32768, 32767]),
        (0x0C, "i", [-1, 70000, 2**31 - 1, -(2**31)]),
        (0x0D, "f", [1.5, -0.25, 3.0e38, 0.0]),
        (0x0E, "d", [1.0e-300, -2.5, 1.0e300, 0.1]),
    ],
)
def test_big_endian_types(code, fmt, values):
    payload = struct.pack(f">{len(values)}{fmt}", *values)
    out = parse_idx(idx_bytes(code, (2, 2), payload))
    assert out.shape == (2, 2)
    assert out.dtype.byteorder in ("=", "|")  # native order
    expected = np.array(values, dtype={"b": np.int8, "h": np.int16, "i": np.int32,
                                       "f": np.float32, "d": np.float64}[fmt]).reshape(2, 2)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5, 2)) * 100).astype(dtype)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, array)


def test_write_matches_hand_built_bytes(tmp_path):
    write_idx(tmp_path / "x", IMAGES)
    assert (tmp_path / "x").read_bytes() == IMAGES_BYTES


@pytest.mark.parametrize("bad", [np.zeros(3, bool), np.zeros(3, np.complex64), np.float32(1)])
def test_write_rejects_unrepresentable(tmp_path, bad):
    with pytest.raises(ValueError, match="write_idx"):
        write_idx(tmp_path / "x", bad)


def test_write_rejects_dimension_beyond_header(tmp_path):
    # An empty array can have a dimension of 2**32; the header's 32-bit field cannot hold it
    # (struct.error before), and nothing is written.
    huge = np.zeros((2**32, 0), np.uint8)
    with pytest.raises(ValueError, match=r"dimension of 4294967296.*up to 4294967295"):
        write_idx(tmp_path / "x", huge)
    assert not (tmp_path / "x").exists()
    write_idx(tmp_path / "y", np.zeros((2**32 - 1, 0), np.uint8))  # the largest that fits
    assert read_idx(tmp_path / "y").shape == (2**32 - 1, 0)


# (name, file content, expected message fragment)
CORRUPT = [
    ("bad_magic", b"\x08\x03" + IMAGES_BYTES[2:], "bad magic number 0x0803"),
    ("unknown_dtype", b"\x00\x00\x07\x03" + IMAGES_BYTES[4:], "unknown IDX dtype code 0x07"),
    ("zero_dims", b"\x00\x00\x08\x00", "zero dimensions"),
    ("too_short", b"\x00\x00", "shorter than the 4-byte magic"),
    ("truncated_header", IMAGES_BYTES[:10], "truncated header"),
    ("truncated_data", IMAGES_BYTES[:-1], "truncated data"),
    ("wrong_count", IMAGES_BYTES + b"\x00\x00", "wrong item count"),
    ("corrupt_gzip", b"\x1f\x8b" + b"\x00" * 30, "corrupt or truncated gzip"),
    ("truncated_gzip", gzip.compress(IMAGES_BYTES)[:-6], "corrupt or truncated gzip"),
    ("truncated_inside_gzip", gzip.compress(IMAGES_BYTES[:-3]), "truncated data"),
    ("trailing_inside_gzip", gzip.compress(IMAGES_BYTES + b"\x00"), "1 trailing"),
    ("bad_gzip_crc", (lambda gz: gz[:-8] + bytes([gz[-8] ^ 1]) + gz[-7:])(
        gzip.compress(IMAGES_BYTES)), "corrupt or truncated gzip"),
    ("garbage_after_gzip", gzip.compress(IMAGES_BYTES) + b"junk", "corrupt or truncated gzip"),
    # A header declaring ~2**96 items: reported, never allocated.
    ("huge_claim", idx_bytes(0x08, (2**32 - 1,) * 3, b"\x00" * 5), "only 5 bytes"),
    ("huge_claim_gzip", gzip.compress(idx_bytes(0x08, (2**32 - 1,) * 3, b"\x00" * 5)),
     "only 5 bytes"),
]


@pytest.mark.parametrize("name, data, fragment", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupt_files_raise_data_error_naming_the_file(tmp_path, name, data, fragment):
    path = tmp_path / f"{name}-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(DataError, match=fragment) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_wrong_count_reports_declared_shape():
    data = idx_bytes(0x08, (5,), bytes(3))
    with pytest.raises(DataError, match=r"shape \(5,\).*only 3 bytes"):
        parse_idx(data, source="labels.bin")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.gz"
    with pytest.raises(DataError, match="cannot read IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------ memory

# (stored form, dtype): the peak must stay near the array's own size whatever the form.
PEAK_CASES = [("gz", np.uint8), ("gz", np.int16), ("raw", np.float32)]


def _big_case(tmp_path, form, dtype) -> tuple[int, np.ndarray, pathlib.Path]:
    """``(rows, array, path)``: a 24 MiB ``(rows, 1000)`` array of known values and the path
    of its IDX file in ``form`` (``"gz"`` or ``"raw"``)."""
    rows = (24 << 20) // (1000 * np.dtype(dtype).itemsize)
    array = (np.arange(rows * 1000) % 251).astype(dtype).reshape(rows, 1000)
    return rows, array, tmp_path / f"big-idx2-ubyte{'.gz' if form == 'gz' else ''}"


@pytest.mark.parametrize("form, dtype", PEAK_CASES, ids=[f"{f}-{np.dtype(d).name}"
                                                           for f, d in PEAK_CASES])
def test_read_peak_memory_stays_near_the_array_size(tmp_path, form, dtype):
    # A user's own IDX file may be large: reading it must not hold the compressed bytes,
    # the decompressed bytes and a converted copy at once (about 3x the array before).
    import tracemalloc

    rows, array, path = _big_case(tmp_path, form, dtype)
    write_idx(path, array)
    nbytes = array.nbytes
    del array
    tracemalloc.start()
    try:
        out = read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (rows, 1000) and out.dtype == np.dtype(dtype)
    assert out[1, 2] == dtype(1002 % 251) and out[-1, -1] == dtype((rows * 1000 - 1) % 251)
    assert out.flags.writeable and out.flags.owndata
    assert peak < 1.5 * nbytes, f"peak {peak / nbytes:.2f}x the array's {nbytes} bytes"


@pytest.mark.parametrize("form, dtype", PEAK_CASES, ids=[f"{f}-{np.dtype(d).name}"
                                                           for f, d in PEAK_CASES])
def test_write_streams_without_copying_the_array(tmp_path, form, dtype):
    # The header and the items go to the file a chunk at a time: before, the bytes of the
    # array, the header joined to them and their gzipped copy were all in memory at once
    # (2x the array besides the array itself, 3x with compression of random data).
    import tracemalloc

    rows, array, path = _big_case(tmp_path, form, dtype)
    tracemalloc.start()
    try:
        write_idx(path, array)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * array.nbytes, f"peak {peak / array.nbytes:.2f}x the array's size"
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_strided_and_byte_swapped_arrays(tmp_path, suffix):
    # Written item by item in row-major order whatever the memory layout of the array.
    base = (np.arange(4 * 6 * 5) * 37).astype(">i4").reshape(4, 6, 5)
    for i, array in enumerate([base, base[:, ::2, 1:], np.asfortranarray(base), base.T]):
        path = tmp_path / f"a{i}{suffix}"
        write_idx(path, array)
        expected = idx_bytes(0x0C, array.shape, np.ascontiguousarray(array, ">i4").tobytes())
        data = path.read_bytes()
        assert (gzip.decompress(data) if suffix else data) == expected
        if suffix:  # no temporary file name in the gzip header (FNAME flag, byte 3)
            assert data[3] & 0x08 == 0


def test_empty_path_is_named_as_such():
    # pathlib.Path("") is ".": the error named the current directory ("Is a directory: '.'").
    with pytest.raises(DataError, match=r"empty path ''"):
        read_idx("")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_reads_a_named_pipe(tmp_path, compress):
    # A pipe cannot seek (to a gzip trailer, back to the start): it failed with "cannot read
    # IDX file (File or stream is not seekable.)"; it is now read whole, then parsed.
    import threading

    path = tmp_path / "images-idx3-ubyte"
    os.mkfifo(path)
    data = gzip.compress(IMAGES_BYTES) if compress else IMAGES_BYTES

    def feed() -> None:
        try:
            with open(path, "wb") as f:
                f.write(data)
        except BrokenPipeError:  # the reader gave up early
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        np.testing.assert_array_equal(read_idx(path), IMAGES)
    finally:
        writer.join(timeout=10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
def test_a_truncated_named_pipe_is_reported_like_a_file(tmp_path):
    import threading

    path = tmp_path / "images-idx3-ubyte"
    os.mkfifo(path)
    writer = threading.Thread(target=lambda: path.write_bytes(IMAGES_BYTES[:-1]), daemon=True)
    writer.start()
    try:
        with pytest.raises(DataError, match=rf"{path}: truncated data"):
            read_idx(path)
    finally:
        writer.join(timeout=10)
