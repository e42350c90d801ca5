"""Atomic, verified checkpoints.

A checkpoint file is ``MAGIC | sha256(payload) | len(payload) | payload`` where the payload
is ``flax.serialization``'s msgpack of a pytree (converted to numpy) plus a JSON metadata
string. Files are written to a temporary name in the same directory, flushed, fsynced and
renamed over the final name (``os.replace`` is atomic on POSIX), so a crash leaves either
the old file or the new one, never half of one. Reading checks the magic, the length and
the hash: a truncated or corrupted file raises :class:`CheckpointError` naming the file,
and :class:`CheckpointManager` falls back to the newest good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import struct
from typing import Any

import flax.serialization
import jax
import numpy as np

from jaxnn._atomic import write_bytes

__all__ = ["CheckpointError", "CheckpointManager", "read_checkpoint", "write_checkpoint"]

MAGIC = b"JAXNNCK1"
_HEADER = struct.Struct(">8s32sQ")
_NAME = re.compile(r"^ckpt_(\d{6})\.jaxnn$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing, truncated, corrupted or mismatched)."""


def write_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> None:
    """Atomically write ``tree`` (any pytree of arrays) and JSON-able ``metadata`` to ``path``."""
    host = jax.tree.map(np.asarray, jax.device_get(tree))
    payload = flax.serialization.msgpack_serialize(
        {"tree": flax.serialization.to_state_dict(host), "meta": json.dumps(metadata or {})}
    )
    header = _HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload))
    write_bytes(path, header + payload)


def read_checkpoint(path: str | os.PathLike, target: Any) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of ``target``; returns ``(tree, metadata)``.

    Raises:
      CheckpointError: naming the file, when it is missing, truncated, corrupted, or holds a
        tree whose structure or shapes differ from ``target``.
    """
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {e.strerror}") from None
    if len(raw) < _HEADER.size:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated ({len(raw)} bytes)")
    magic, digest, length = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a jaxnn checkpoint (bad magic)")
    payload = raw[_HEADER.size:]
    if len(payload) != length:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated: {len(payload)} of {length} payload bytes"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted (checksum mismatch)")
    try:
        blob = flax.serialization.msgpack_restore(payload)
        host_target = jax.tree.map(np.asarray, jax.device_get(target))
        tree = flax.serialization.from_state_dict(host_target, blob["tree"])
        metadata = json.loads(blob["meta"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match this run's state: {e}"
        ) from None
    ref = jax.tree.leaves(host_target)
    got = jax.tree.leaves(tree)
    if len(ref) != len(got):
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match this run's state: it holds {len(got)} "
            f"arrays, this run has {len(ref)}"
        )
    for a, b in zip(ref, got, strict=True):
        if np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match this run's state: a leaf has shape "
                f"{np.shape(b)} {np.asarray(b).dtype}, expected {np.shape(a)} {np.asarray(a).dtype}"
            )
    return tree, metadata


class CheckpointManager:
    """Numbered checkpoints in one directory: keep the last ``keep`` plus ``best.jaxnn``."""

    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        if keep < 1:
            raise ValueError(f"CheckpointManager: keep must be >= 1, got {keep!r}")
        self.directory = pathlib.Path(directory)
        self.keep = keep

    def path(self, epoch: int) -> pathlib.Path:
        return self.directory / f"ckpt_{epoch:06d}.jaxnn"

    @property
    def best_path(self) -> pathlib.Path:
        return self.directory / "best.jaxnn"

    def epochs(self) -> list[int]:
        """Epoch numbers of the numbered checkpoints on disk, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, epoch: int, tree: Any, metadata: dict, *, best: bool = False) -> pathlib.Path:
        """Write checkpoint ``epoch`` (and, first, ``best.jaxnn`` when ``best``), then prune
        old ones."""
        path = self.path(epoch)
        if best:
            self.save_best(tree, metadata)
        write_checkpoint(path, tree, metadata)
        for old in self.epochs()[: -self.keep]:
            self.path(old).unlink(missing_ok=True)
        return path

    def save_best(self, tree: Any, metadata: dict) -> pathlib.Path:
        """Write ``best.jaxnn`` (atomically, like every checkpoint)."""
        write_checkpoint(self.best_path, tree, metadata)
        return self.best_path

    def restore_latest(self, target: Any) -> tuple[Any, dict, pathlib.Path, list[str]]:
        """The newest readable checkpoint: ``(tree, metadata, path, problems)``.

        Corrupt or truncated files are skipped, and each is described in ``problems``.

        Raises:
          CheckpointError: when there is no readable checkpoint at all.
        """
        problems: list[str] = []
        for epoch in reversed(self.epochs()):
            try:
                tree, meta = read_checkpoint(self.path(epoch), target)
                return tree, meta, self.path(epoch), problems
            except CheckpointError as e:
                problems.append(str(e))
        detail = ("; ".join(problems)) if problems else "none found"
        raise CheckpointError(f"no usable checkpoint in {str(self.directory)!r}: {detail}")
