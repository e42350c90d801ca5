"""jaxnn.studies.workers: core shares, pinned spawn workers, clear errors."""

from __future__ import annotations

import multiprocessing
import os
import pathlib

import jax
import pytest

from jaxnn.studies import workers as W


@pytest.mark.parametrize("workers, cores, expected", [
    (1, [0, 1], [(0, 1)]),
    (2, [0, 1], [(0,), (1,)]),
    (0, [0, 1, 2], [(0,), (1,), (2,)]),
    (2, [0, 1, 2], [(0, 1), (2,)]),
    (3, [4, 5, 6, 7, 8, 9, 10, 11], [(4, 5, 6), (7, 8, 9), (10, 11)]),
    (2, [3, 7], [(3,), (7,)]),
])
def test_core_shares_are_disjoint_contiguous_and_cover(workers, cores, expected):
    shares = W.core_shares(workers, cores)
    assert shares == expected
    assert sorted(c for s in shares for c in s) == cores


@pytest.mark.parametrize("workers, needle", [
    (3, "workers: got 3, but this process may use only 2 CPU core(s); use 1..2 or 0"),
    (-1, "workers: got -1, expected an integer >= 0"),
    (1.5, "workers: got 1.5"),
    (True, "workers: got True"),
    ("2", "workers: got '2'"),
])
def test_core_shares_bad_values(workers, needle):
    with pytest.raises(ValueError) as e:
        W.core_shares(workers, [0, 1])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_usable_cores_match_the_affinity_mask():
    cores = W.usable_cores()
    assert cores and cores == sorted(set(cores))
    if hasattr(os, "sched_getaffinity"):
        assert set(cores) == os.sched_getaffinity(0)


def _where_am_i(barrier):
    """Runs in a worker: its affinity, x64 flag and the dtype JAX gives a Python float.
    Waits at ``barrier`` first: no worker can take every task before the others start."""
    barrier.wait(timeout=300)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return (os.getpid(), cpus, bool(jax.config.jax_enable_x64),
            str(jax.numpy.asarray(1.0).dtype))


def _remember(value):
    global _INIT_VALUE
    _INIT_VALUE = value


def _initialized_value(_):
    return _INIT_VALUE


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(W.usable_cores()) < 2,
                    reason="needs CPU affinity and at least 2 usable cores")
def test_each_worker_is_pinned_to_its_own_share_and_inherits_x64():
    n = 2
    shares = W.core_shares(n)
    # One task per worker, held at a barrier until all are running: a worker that started
    # first used to take all the tasks on a loaded machine (each takes the next share when
    # it starts).
    with multiprocessing.get_context("spawn").Manager() as manager, W.CorePool(n) as pool:
        assert pool.workers == n and pool.shares == shares
        seen = list(pool.map(_where_am_i, [manager.Barrier(n)] * n))
    by_pid = {pid: (tuple(cpus), x64, dtype) for pid, cpus, x64, dtype in seen}
    assert sorted(v[0] for v in by_pid.values()) == sorted(shares)
    assert len(by_pid) == n
    # conftest enables x64 in this process; the workers follow it, not JAX's default
    assert all(v[1] is True and v[2] == "float64" for v in by_pid.values())
    assert os.getpid() not in by_pid


def test_initializer_runs_in_every_worker_before_tasks():
    with W.CorePool(1, initializer=_remember, initargs=("data",)) as pool:
        assert pool.submit(_initialized_value, None).result() == "data"


def test_refuses_an_accelerator_backend(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with pytest.raises(ValueError) as e:
        W.CorePool(2)
    msg = str(e.value)
    assert "backend is 'gpu'" in msg and "workers=1" in msg and "\n" not in msg


def test_core_shares_accept_numpy_integers_but_no_bools():
    import numpy as np

    assert W.core_shares(np.int64(2), [0, 1]) == [(0,), (1,)]
    for value in (True, np.True_):
        with pytest.raises(ValueError, match="expected an integer >= 0"):
            W.core_shares(value, [0, 1])


def _fail_soon():
    import time

    time.sleep(0.5)
    raise RuntimeError("task failed")


@pytest.mark.skipif(len(W.usable_cores()) < 2, reason="needs 2 usable cores (2 workers)")
def test_an_error_in_the_with_block_terminates_running_tasks():
    # The depth study leaves its `with CorePool(...)` block on the first failed task; the
    # pool used to wait for every task still running (minutes on a full sweep) before the
    # error reached the user.
    import time

    with pytest.raises(RuntimeError, match="task failed"):
        with W.CorePool(2) as pool:
            slow = pool.submit(time.sleep, 300)
            fast = pool.submit(_fail_soon)
            t0 = time.monotonic()
            fast.result(timeout=120)
    # Leaving the block waited for the 300 s task before; now its worker is terminated (the
    # pool's own thread may reap the processes, so time is the property checked).
    assert time.monotonic() - t0 < 60
    assert slow.done()


def test_a_clean_exit_still_waits_for_the_tasks():
    with W.CorePool(1) as pool:
        fut = pool.submit(_initialized_value_or_none, None)
    assert fut.done() and fut.result() is None


def _initialized_value_or_none(_):
    return globals().get("_INIT_VALUE")


_ORPHAN_SCRIPT = """
import os, sys, time
from jaxnn.studies import workers as W
if __name__ == "__main__":
    pool = W.CorePool(1)
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 300)
    time.sleep(300)
"""


@pytest.mark.skipif(os.name != "posix", reason="kills a process with SIGKILL")
def test_workers_exit_when_the_parent_process_is_killed(tmp_path):
    # `kill` on a depth study (or the OOM killer) used to leave its workers computing the
    # queued groups for minutes, orphaned, with nobody to receive the results.
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
                # an exited orphan that nobody reaps yet (a container's PID 1) stays a zombie
                stat = pathlib.Path(f"/proc/{worker}/stat")
                if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker outlived its parent by 30 s")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
