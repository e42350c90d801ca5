"""A run's metric logs, ``metrics.jsonl`` and ``metrics.csv``, one row per epoch.

Each epoch appends its row to both files (flushed, so ``tail -f`` follows the run), rather
than rewriting every row so far: a rewrite per epoch made a long run of a small model
quadratic (2000 XOR epochs spent ~70 s writing logs against ~6 s training).

A checkpoint does not copy the rows either. It records a :class:`Mark` of ``metrics.jsonl``
instead -- how many rows and bytes it held then, and the SHA-256 of those bytes -- after the
log has been flushed to disk, so the rows up to a checkpoint are on disk before the
checkpoint that names them. A resume reads them back from ``metrics.jsonl`` (appends only
extend it; a crash mid-append leaves a partial line past the mark) and rewrites both files,
atomically, to end at the checkpoint. A ``metrics.jsonl`` that no longer holds the marked
bytes (deleted, edited, truncated) costs the run's logged history before the checkpoint, not
its training state: it is set aside under another name, never overwritten.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib
from typing import Any

from jaxnn._atomic import fsync_file, write_bytes

__all__ = ["JSONL", "CSV", "Mark", "MetricsLog", "read_marked_rows"]

JSONL = "metrics.jsonl"
CSV = "metrics.csv"


@dataclasses.dataclass(frozen=True)
class Mark:
    """Where ``metrics.jsonl`` stood when a checkpoint was written."""

    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Mark:
        try:
            mark = cls(rows=int(d["rows"]), bytes=int(d["bytes"]), sha256=str(d["sha256"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a metrics-log mark: {d!r} ({e})") from None
        if mark.rows < 0 or mark.bytes < 0:
            raise ValueError(f"not a metrics-log mark: {d!r} (negative count)")
        return mark


def _line(row: dict) -> bytes:
    return (json.dumps(row) + "\n").encode()


def _csv_text(rows: list[dict], columns: list[str], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, restval="")
    if header:
        w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _append(path: pathlib.Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class MetricsLog:
    """The two log files of ``workdir``, written by the run's main process.

    :meth:`reset` starts them (empty, or at a checkpoint's rows), :meth:`append` adds an
    epoch, :meth:`mark` flushes them to disk and says where ``metrics.jsonl`` stands.
    """

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = pathlib.Path(workdir)
        self._rows: list[dict] = []
        self._columns: list[str] = []
        self._bytes = 0
        self._hash = hashlib.sha256()

    @property
    def jsonl(self) -> pathlib.Path:
        return self.workdir / JSONL

    @property
    def csv(self) -> pathlib.Path:
        return self.workdir / CSV

    def reset(self, rows: list[dict], jsonl_bytes: bytes | None = None) -> None:
        """Rewrite both files (atomically) to hold exactly ``rows``.

        ``jsonl_bytes``: the bytes of ``metrics.jsonl`` for those rows when they were read
        back from it (kept as they are, so older checkpoints' marks stay valid).
        """
        data = b"".join(_line(r) for r in rows) if jsonl_bytes is None else jsonl_bytes
        self._rows = list(rows)
        self._columns = _columns(self._rows)
        write_bytes(self.jsonl, data)
        # No rows, no header: the first append writes it (a header alone would be rewritten).
        text = _csv_text(self._rows, self._columns, True) if self._rows else ""
        write_bytes(self.csv, text.encode())
        self._bytes = len(data)
        self._hash = hashlib.sha256(data)

    def append(self, row: dict) -> None:
        """Add one epoch's row to both files."""
        line = _line(row)
        _append(self.jsonl, line)
        self._bytes += len(line)
        self._hash.update(line)
        self._rows.append(row)
        if not self._columns:  # the first row of an empty file: its header first
            self._columns = _columns(self._rows)
            _append(self.csv, _csv_text([row], self._columns, True).encode())
        elif any(k not in self._columns for k in row):
            # A new column (a resume that logs more): the header changes, so rewrite.
            self._columns = _columns(self._rows)
            write_bytes(self.csv, _csv_text(self._rows, self._columns, True).encode())
        else:
            _append(self.csv, _csv_text([row], self._columns, False).encode())

    def mark(self) -> Mark:
        """Flush both files to disk; where ``metrics.jsonl`` stands now."""
        for path in (self.jsonl, self.csv):
            if path.exists():
                fsync_file(path)
        return Mark(len(self._rows), self._bytes, self._hash.hexdigest())


def read_marked_rows(workdir: str | os.PathLike, mark: Mark) -> tuple[list[dict], bytes]:
    """The rows (and their bytes) that ``metrics.jsonl`` in ``workdir`` held at ``mark``.

    Raises:
      ValueError: naming the file and what is wrong, when it no longer holds them.
    """
    path = pathlib.Path(workdir) / JSONL
    try:
        with open(path, "rb") as f:
            data = f.read(mark.bytes)
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} is missing") from None
    except OSError as e:
        raise ValueError(f"{str(path)!r} cannot be read: {e.strerror}") from None
    if len(data) < mark.bytes:
        raise ValueError(f"{str(path)!r} holds {len(data)} bytes, fewer than the "
                         f"{mark.bytes} logged up to the checkpoint")
    if hashlib.sha256(data).hexdigest() != mark.sha256:
        raise ValueError(f"{str(path)!r} was changed after the checkpoint was written "
                         "(its first rows differ from those the checkpoint recorded)")
    try:
        rows = [json.loads(line) for line in data.decode().splitlines()]
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # pragma: no cover - hashed
        raise ValueError(f"{str(path)!r} is not JSON lines: {e}") from None
    if len(rows) != mark.rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{str(path)!r} holds {len(rows)} rows where the checkpoint "
                         f"recorded {mark.rows}")
    return rows, data
