"""Atomic file writes: a temporary file in the same folder, renamed over the final name.

``os.replace`` is atomic on POSIX, so a crash, a full disk or an exception in the writer
leaves either the previous file or the complete new one, never a truncated one. Every file
jaxnn writes for a user (checkpoints, configs, downloads, tables, reports, figures) goes
through :func:`replace_atomically`; a training run's metric logs are written through it at
the start and at a resume and appended to in between (see :mod:`jaxnn.train.metrics_log`).
"""

from __future__ import annotations

import os
import pathlib
import re
import tempfile
from collections.abc import Callable

__all__ = ["fsync_file", "remove_temporaries", "replace_atomically", "set_aside",
           "write_bytes", "write_text"]


def fsync_file(path: str | os.PathLike) -> None:
    """Flush ``path``'s data to disk (``fsync``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(path: str | os.PathLike, write: Callable[[str], object]) -> pathlib.Path:
    """``write(tmp_path)``, then flush it to disk and rename it over ``path``; returns ``path``.

    The temporary file keeps ``path``'s suffix (``savefig`` picks the format from it) and
    gets ordinary ``0644`` permissions. On failure it is removed and the error raised; an
    ``OSError`` that names no file (a full disk during a write) or only the temporary one is
    raised again naming ``path``.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a user's outputs are ordinary files
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        pathlib.Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some file systems refuse a directory fsync
        pass
    return path


def set_aside(path: str | os.PathLike) -> pathlib.Path | None:
    """Rename ``path`` (a file or folder, if it exists) to a free
    ``<stem>.unmatched[-N]<suffix>`` beside it, so that a file about to be written is kept
    rather than replaced; returns the new path (None when there was nothing to move)."""
    path = pathlib.Path(path)
    if not path.exists():
        return None
    for n in range(1, 1000):
        new = path.with_name(f"{path.stem}.unmatched{'' if n == 1 else f'-{n}'}{path.suffix}")
        if not new.exists():
            return path.rename(new)
    return None  # pragma: no cover - a thousand set-aside files


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically (see :func:`replace_atomically`)."""
    return replace_atomically(path, lambda tmp: pathlib.Path(tmp).write_bytes(data))


def write_text(path: str | os.PathLike, text: str, newline: str | None = None) -> pathlib.Path:
    """Write ``text`` to ``path`` atomically; ``newline`` as for :func:`open`."""
    return replace_atomically(
        path, lambda tmp: pathlib.Path(tmp).write_text(text, newline=newline))


def remove_temporaries(directory: str | os.PathLike,
                       is_target: Callable[[str], bool]) -> list[pathlib.Path]:
    """Delete, in ``directory``, the temporary files :func:`replace_atomically` left behind
    for the final names that ``is_target`` accepts (a process killed mid-write leaves its
    ``.NAME.XXXXXXXX.SUFFIX``, as big as the file it was writing); returns those removed.

    Call it only while nothing is being written there. Other files are left alone.
    """
    directory = pathlib.Path(directory)
    try:
        entries = list(directory.iterdir())
    except OSError:  # missing, not a directory, unreadable: nothing to tidy
        return []
    removed = []
    for p in entries:
        m = _TEMPORARY.match(p.name)
        if m and m["name"].endswith(m["suffix"]) and is_target(m["name"]) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# "." + final name + "." + mkstemp's random part (8 characters) + the final name's suffix.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}(?P<suffix>\.[^.]*)$")
