"""Atomic, verified checkpoints.

A checkpoint file is ``MAGIC | sha256(payload) | len(payload) | payload`` where the payload
is ``flax.serialization``'s msgpack of a pytree (converted to numpy) plus a JSON metadata
string. Files are written to a temporary name in the same directory, flushed, fsynced and
renamed over the final name (``os.replace`` is atomic on POSIX), so a crash leaves either
the old file or the new one, never half of one. Reading checks the magic, the length and
the hash: a truncated or corrupted file raises :class:`CheckpointError` naming the file,
and :class:`CheckpointManager` falls back to the newest good one (and can set the damaged
one aside as ``*.unreadable``).
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

from jaxnn._atomic import remove_temporaries, write_bytes

__all__ = ["CheckpointError", "CheckpointManager", "read_checkpoint", "read_metadata",
           "write_checkpoint"]

MAGIC = b"JAXNNCK1"
_HEADER = struct.Struct(">8s32sQ")
# At least six digits: an epoch (or step) number >= 10**6 simply has more.
_NAME = re.compile(r"^ckpt_(\d{6,})\.jaxnn$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing, truncated, corrupted or mismatched).

    Attributes:
      damaged: whether the file's own bytes are broken (truncated, corrupted, not a jaxnn
        checkpoint), so that no run can ever read it; False when it is missing, cannot be
        opened, or is whole but holds a state other than the one asked for.
    """

    def __init__(self, message: str, *, damaged: bool = False):
        super().__init__(message)
        self.damaged = damaged


def _plain(value: Any) -> Any:
    # json.dumps' fallback: numpy/JAX scalars and arrays become Python numbers and lists.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | jax.Array):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-able")


def write_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> None:
    """Atomically write ``tree`` (any pytree of arrays) and JSON-able ``metadata`` to ``path``.

    ``metadata`` holds numbers, strings, lists and dicts; numpy/JAX scalars and arrays in
    it are stored as Python numbers and lists.

    Raises:
      ValueError: ``metadata`` holds something else (nothing is written).
    """
    try:
        meta = json.dumps(metadata or {}, default=_plain)
    except (TypeError, ValueError) as e:
        raise ValueError(f"write_checkpoint: metadata for {str(path)!r} must be JSON-able "
                         f"(numbers, strings, lists, dicts): {e}") from None
    host = jax.tree.map(np.asarray, jax.device_get(tree))
    payload = flax.serialization.msgpack_serialize(
        {"tree": flax.serialization.to_state_dict(host), "meta": meta}
    )
    header = _HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload))
    write_bytes(path, header + payload)


def _payload(path: pathlib.Path) -> bytes:
    """The payload of the checkpoint file ``path``, its length and hash checked."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {e.strerror}") from None
    if len(raw) < _HEADER.size:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated ({len(raw)} bytes)",
                              damaged=True)
    magic, digest, length = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a jaxnn checkpoint (bad magic)",
                              damaged=True)
    payload = raw[_HEADER.size:]
    if len(payload) < length:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated: {len(payload)} of {length} payload bytes",
            damaged=True)
    if len(payload) > length:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: {len(payload)} payload bytes, its header "
            f"says {length}", damaged=True)
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted (checksum mismatch)",
                              damaged=True)
    return payload


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of the checkpoint file ``path`` (its length and hash checked).

    Raises:
      CheckpointError: naming the file, when it is missing, truncated or corrupted.
    """
    path = pathlib.Path(path)
    payload = _payload(path)
    try:
        meta = json.loads(flax.serialization.msgpack_restore(payload)["meta"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} holds no readable metadata: {e}",
                              damaged=True) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds no readable metadata",
                              damaged=True)
    return meta


def read_checkpoint(path: str | os.PathLike, target: Any) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of ``target``; returns ``(tree, metadata)``.

    Raises:
      CheckpointError: naming the file, when it is missing, truncated, corrupted, or holds a
        tree whose structure or shapes differ from ``target`` (``damaged`` says which).
    """
    path = pathlib.Path(path)
    payload = _payload(path)
    try:
        blob = flax.serialization.msgpack_restore(payload)
        host_target = jax.tree.map(np.asarray, jax.device_get(target))
        _check_same_arrays(path, flax.serialization.to_state_dict(host_target), blob["tree"])
        tree = flax.serialization.from_state_dict(host_target, blob["tree"])
        metadata = json.loads(blob["meta"])
    except CheckpointError:
        raise
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


def _leaf_names(state_dict: Any) -> set[str]:
    leaves = jax.tree_util.tree_flatten_with_path(state_dict)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in p) or "(root)" for p, _ in leaves}


def _check_same_arrays(path: pathlib.Path, want: Any, have: Any) -> None:
    # from_state_dict ignores entries of a saved dict that the target lacks, so a checkpoint
    # of a larger tree would read "successfully" into a smaller one: compare the names first.
    want, have = _leaf_names(want), _leaf_names(have)
    if want == have:
        return
    parts = []
    if extra := sorted(have - want):
        parts.append(f"it holds arrays this run does not have ({', '.join(extra[:5])})")
    if missing := sorted(want - have):
        parts.append(f"it lacks arrays this run has ({', '.join(missing[:5])})")
    raise CheckpointError(
        f"checkpoint {str(path)!r} does not match this run's state: {'; '.join(parts)}"
    )


class CheckpointManager:
    """Numbered checkpoints in one directory: keep the last ``keep`` plus ``best.jaxnn``."""

    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        if isinstance(keep, bool) or not isinstance(keep, int | np.integer) or keep < 1:
            raise ValueError(f"CheckpointManager: keep must be an integer >= 1, got {keep!r}")
        self.directory = pathlib.Path(directory)
        self.keep = keep

    def path(self, epoch: int) -> pathlib.Path:
        """The file of numbered checkpoint ``epoch`` (an integer >= 0)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"CheckpointManager: epoch must be an integer >= 0, got {epoch!r}")
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
        old ones: of the numbered checkpoints up to ``epoch``, the newest ``keep`` stay.

        Numbered files above ``epoch`` (left by a run resumed from before them, because they
        could not be read) are not counted and never make the new file the one pruned.
        """
        path = self.path(epoch)
        if best:
            self.save_best(tree, metadata)
        write_checkpoint(path, tree, metadata)
        older = [e for e in self.epochs() if e < epoch]
        for old in older[: max(len(older) - (self.keep - 1), 0)]:
            self.path(old).unlink(missing_ok=True)
        return path

    def save_best(self, tree: Any, metadata: dict) -> pathlib.Path:
        """Write ``best.jaxnn`` (atomically, like every checkpoint)."""
        write_checkpoint(self.best_path, tree, metadata)
        return self.best_path

    def keep_best_epoch(self, epoch: int, problems: list[str] | None = None
                        ) -> pathlib.Path | None:
        """Make ``best.jaxnn`` hold ``epoch`` again, from the numbered checkpoint of that
        epoch, when it holds another epoch or is damaged; returns it when rewritten.

        Call it at a resume, with the best epoch of the checkpoint restored, while no save
        runs here. A run killed between numbered checkpoints may have rewritten
        ``best.jaxnn`` for a later epoch that the resumed run trains again; should that
        epoch no longer be better (a resume that changes the learning rate), the best
        epoch's state was only in its numbered checkpoint, which pruning then deleted, and
        ``restore_best`` kept the last epoch instead. A damaged or missing ``best.jaxnn`` is
        rewritten too (its fallback at the end of the run, the numbered checkpoint, may be
        pruned by then; its message is appended to ``problems`` when rewritten); one that
        cannot be opened is left as it is.
        """
        if epoch < 0:
            return None
        damage = None
        try:
            try:
                if read_metadata(self.best_path).get("epoch") == epoch:
                    return None
            except CheckpointError as e:
                if not e.damaged and self.best_path.exists():
                    return None
                damage = str(e)
            numbered = self.path(epoch)
            if read_metadata(numbered).get("epoch") != epoch:
                return None
            data = numbered.read_bytes()
        except (CheckpointError, OSError):
            return None
        write_bytes(self.best_path, data)
        if damage is not None and problems is not None:
            problems.append(f"{damage}; restored the best epoch from {numbered}")
        return self.best_path

    def remove_temporaries(self) -> list[pathlib.Path]:
        """Delete the temporary files of writes that never finished (a ``kill -9`` during
        a save leaves its ``.ckpt_NNNNNN.jaxnn.*.jaxnn`` or ``.best.jaxnn.*.jaxnn``, a
        checkpoint-sized file nothing reads); returns those removed.

        Call it only while no save runs in this directory (the start of a resume).
        """
        return remove_temporaries(self.directory,
                                  lambda name: name == "best.jaxnn" or bool(_NAME.match(name)))

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

    def set_aside_unreadable(self, after: int) -> list[tuple[pathlib.Path, pathlib.Path]]:
        """Rename each numbered checkpoint above epoch ``after`` whose bytes are damaged
        (truncated or corrupted: no run can read it) to ``ckpt_NNNNNN.jaxnn.unreadable``
        beside it, a name no listing or pruning matches; returns ``(old, new)`` pairs.

        Call it once a resume has restored epoch ``after`` (the files above it are those
        :meth:`restore_latest` skipped), while no save runs here. Left under its name, a
        damaged file was skipped and warned about again at every later resume, and
        pruning counted it as one of the ``keep`` checkpoints, deleting a good one in its
        place. A whole file (one of another state, or one that cannot be opened) is kept.
        """
        moved = []
        for epoch in self.epochs():
            if epoch <= after:
                continue
            path = self.path(epoch)
            try:
                _payload(path)
            except CheckpointError as e:
                if e.damaged and (new := _set_aside(path)) is not None:
                    moved.append((path, new))
        return moved


def _set_aside(path: pathlib.Path) -> pathlib.Path | None:
    """Rename ``path`` to a free ``<name>.unreadable[-N]`` beside it; None when it cannot
    be renamed (gone meanwhile, a read-only folder: it is skipped again next time)."""
    for n in range(1, 1000):
        new = path.with_name(f"{path.name}.unreadable{'' if n == 1 else f'-{n}'}")
        if new.exists():
            continue
        try:
            return path.rename(new)
        except OSError:
            return None
    return None  # pragma: no cover - a thousand set-aside files of one epoch
