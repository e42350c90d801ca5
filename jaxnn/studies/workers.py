"""Sweeps over several CPU processes, each pinned to its own cores.

On a CPU, one JAX process spreads every matrix multiply over all cores, and the small
and mid-size matmuls of a sweep of MLPs scale poorly across threads: on the 2-core
development machine one 50x256 tanh model trains at ~1.2x the speed of the same model on
one core. Independent models are better served by one process per core. This module runs
the tasks of a sweep in a pool of ``spawn``-ed worker processes, worker ``i`` pinned with
``os.sched_setaffinity`` to the ``i``-th share of the cores this process may use, before
JAX creates its CPU client (so XLA's threads stay on those cores).

Contract::

    with CorePool(workers=2, initializer=f, initargs=(...,)) as pool:
        futures = [pool.submit(task, arg) for arg in args]

* ``workers=0`` means one worker per usable core; more workers than usable cores is an
  error (over-subscription only adds contention).
* The workers use the parent's ``jax_enable_x64`` setting and inherit its environment.
* Tasks and their arguments are pickled: they must be module-level functions, and the
  calling script must guard its entry point with ``if __name__ == "__main__":`` (the
  ``spawn`` start method re-imports it). ``fork`` is never used: JAX is multithreaded.
* Where ``os.sched_setaffinity`` does not exist (macOS, Windows) the workers run unpinned.
* A worker whose parent process is killed (``kill``, the OOM killer) exits within about a
  second rather than computing the tasks still queued for nobody.
* Only the CPU backend is supported: on an accelerator one process and ``vmap`` is the
  fast path, and several processes would compete for the device's memory.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import numbers
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

__all__ = ["CorePool", "core_shares", "usable_cores"]


def usable_cores() -> list[int]:
    """The CPU cores this process may run on (all of ``os.cpu_count()`` where the
    platform has no affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def core_shares(workers: int, cores: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """Split ``cores`` (default :func:`usable_cores`) into ``workers`` contiguous, disjoint,
    nearly equal shares; ``workers=0`` gives one share per core.

    Raises:
      ValueError: ``workers`` is not an integer in ``0 .. len(cores)`` (a bool is refused:
        ``True`` is not a worker count).
    """
    cores = list(usable_cores() if cores is None else cores)
    # bool is an int (True == 1): refused, not run as one worker.
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
        raise ValueError(f"workers: got {workers!r}, expected an integer >= 0 "
                         f"(1 = this process only, 0 = one per core; this process may use "
                         f"{len(cores)})")
    workers = int(workers)
    if workers == 0:
        workers = len(cores)
    if workers > len(cores):
        raise ValueError(f"workers: got {workers}, but this process may use only "
                         f"{len(cores)} CPU core(s); use 1..{len(cores)} or 0 (one per core)")
    q, r = divmod(len(cores), workers)
    shares, start = [], 0
    for i in range(workers):
        size = q + (1 if i < r else 0)
        shares.append(tuple(cores[start:start + size]))
        start += size
    return shares


def _exit_with(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this worker once ``parent_pid`` is no longer its parent (killed: ``kill``, the
    OOM killer), instead of computing the queued tasks for nobody."""
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


def _worker_start(share_queue: Any, x64: bool, initializer: Callable[..., None] | None,
                  initargs: tuple[Any, ...], parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True).start()
    share = share_queue.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, share)
    jax.config.update("jax_enable_x64", x64)
    if initializer is not None:
        initializer(*initargs)


class CorePool(concurrent.futures.ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` of ``spawn``-ed workers, each pinned to its own cores.

    Args:
      workers: number of processes (0: one per usable core); see :func:`core_shares`.
      initializer, initargs: run once in each worker after it is pinned (e.g. to receive
        the data every task reads). Arguments are pickled; pass numpy arrays, not
        ``jax.Array`` (unpickling one would start JAX before the worker is pinned).

    Raises:
      ValueError: a bad ``workers`` value, or a backend other than the CPU.
    """

    def __init__(self, workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()):
        backend = jax.default_backend()
        if backend != "cpu":
            raise ValueError(
                f"workers: several worker processes run on the CPU only, but the backend is "
                f"{backend!r}; use workers=1 there (one process, vmapped)")
        self.shares = core_shares(workers)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        for share in self.shares:
            queue.put(share)
        self._share_queue = queue
        super().__init__(
            max_workers=len(self.shares), mp_context=ctx, initializer=_worker_start,
            initargs=(queue, bool(jax.config.jax_enable_x64), initializer, tuple(initargs),
                      os.getpid()),
        )

    @property
    def workers(self) -> int:
        """The number of worker processes."""
        return len(self.shares)

    def terminate_workers(self) -> None:
        """Stop now: cancel the pending tasks and terminate the worker processes.

        Tasks still running are lost (their futures fail). ``shutdown(wait=True)`` would
        let each finish first, which on a depth study can take minutes after the error
        that made the caller give up.
        """
        procs = list((getattr(self, "_processes", None) or {}).values())
        self.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=30)
        self.shutdown(wait=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:  # an error or Ctrl-C in the caller: do not wait for tasks
            self.terminate_workers()
            return False
        return super().__exit__(exc_type, exc, tb)
