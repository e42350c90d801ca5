"""Multi-process training on localhost: two processes of 2 simulated CPU devices each (4
global devices, gloo collectives) against one process of 4 simulated devices on the same
global batch; only process 0 writes; bad distributed settings exit 2 with one line; the
environment variables fill in null fields."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time

import flax.serialization
import jax
import numpy as np
import pytest
from conftest import train_cli_usage_error

from jaxnn import config as C
from jaxnn.train import distributed

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
FLAGS = ["--devices", "0", "--set", "logging.progress=false", "--set", "training.epochs=6",
         "--set", "training.checkpoint_every=3", "--set", "logging.plots=false"]
# 64 points, batch 16: 4 steps an epoch, 4 examples a device.
JOB = ["--config", str(REPO / "configs" / "xor.yaml"), *FLAGS]
TIMEOUT_S = 120


def _gloo_available() -> bool:
    try:
        from jax._src.lib import _jax
    except ImportError:  # pragma: no cover - older jaxlib layout
        return False
    return hasattr(_jax, "make_gloo_tcp_collectives")


needs_gloo = pytest.mark.skipif(
    not _gloo_available(), reason="this jaxlib has no gloo CPU collectives for multi-process"
)


def _env(devices: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_processes(argvs: list[list[str]], envs: list[dict],
                   timeout_s: float = TIMEOUT_S) -> list[tuple[int, str, str]]:
    """Start every process, wait for all; kill all of them if any hangs or the test fails."""
    procs = [subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), *a], env=e, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for a, e in zip(argvs, envs, strict=True)]
    try:
        outs = [p.communicate(timeout=timeout_s) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)]


def _params(workdir: pathlib.Path) -> list[np.ndarray]:
    tree = flax.serialization.msgpack_restore((workdir / "params.msgpack").read_bytes())
    return jax.tree.leaves(tree)


def _rows(workdir: pathlib.Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(r).items() if k != "time_s"} for r in lines]


def _two_processes(
    workdirs: list[pathlib.Path], extra: list[str], *, resume: bool = False
) -> list[tuple[int, str, str]]:
    port = _free_port()
    job = FLAGS + ["--resume"] if resume else JOB
    argvs = [job + extra + ["--workdir", str(w), "--coordinator", f"127.0.0.1:{port}",
                            "--num-processes", "2", "--process-id", str(i)]
             for i, w in enumerate(workdirs)]
    return _run_processes(argvs, [_env(2), _env(2)])


@needs_gloo
def test_two_processes_match_one_process_on_four_devices_and_resume(tmp_path):
    # Process 1 gets its own --workdir only so the test can see that it writes nothing there.
    run, other, ref = tmp_path / "run", tmp_path / "process1", tmp_path / "ref"
    first = _two_processes([run, other], ["--set", "training.epochs=3"])
    for i, (rc, _, err) in enumerate(first):
        assert rc == 0, f"process {i}: {err}"
    (_, out0, err0), (_, out1, err1) = first
    assert "epoch 3/3" in out0 and f"run directory: {run}" in err0
    assert "epoch" not in out1 and "final:" not in out1 and "run directory" not in err1
    # Resume: every process reads the checkpoint process 0 wrote (same path here).
    second = _two_processes([run, run], [], resume=True)
    for i, (rc, _, err) in enumerate(second):
        assert rc == 0, f"process {i}: {err}"
    [(rc, _, err)] = _run_processes([JOB + ["--workdir", str(ref)]], [_env(4)])
    assert rc == 0, err

    assert not other.exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.jaxnn", "ckpt_000003.jaxnn", "ckpt_000006.jaxnn"]
    saved = C.load(run / "config.yaml")
    assert saved.distributed == C.DistributedConfig()  # a launch setting, not saved
    assert saved.training == C.load(ref / "config.yaml").training

    # The cross-process all-reduce (gloo) sums in another order than the in-process one:
    # the results agree to float32 rounding (about 1e-7 here), not bit for bit.
    for got, want in zip(_params(run), _params(ref), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    rows, ref_rows = _rows(run), _rows(ref)
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert [r.keys() for r in rows] == [r.keys() for r in ref_rows]
    for r, q in zip(rows, ref_rows, strict=True):
        np.testing.assert_allclose([r[k] for k in r], [q[k] for k in r], rtol=1e-5, atol=1e-6)


@needs_gloo
@pytest.mark.parametrize("extra, needles", [
    # A different batch: the processes' collectives no longer match, and both waited forever.
    (["--set", "training.batch_size=32"], ["training.batch_size", "16", "32"]),
    (["--resume"], ["--resume"]),
    # A larger count on a non-zero process: it trained with process 0's count, silently.
    (["--num-processes", "3"], ["distributed.num_processes", "2", "3"]),
], ids=["batch size", "resume", "process count"])
def test_processes_started_with_different_settings_stop_with_one_line(tmp_path, extra,
                                                                       needles):
    port = _free_port()
    argvs = [JOB + (extra if i == 1 else []) + [
        "--workdir", str(tmp_path / "run"), "--coordinator", f"127.0.0.1:{port}",
        "--num-processes", "2", "--process-id", str(i)] for i in range(2)]
    if "--num-processes" in extra:  # the later flag wins: change process 1's own
        argvs[1] = argvs[1][:len(JOB)] + argvs[1][len(JOB) + 2:]
        argvs[1][argvs[1].index("--num-processes") + 1] = extra[1]
    if "--resume" in extra:  # a resume of a run that is not there: a config error alone
        argvs[1] = [a for a in argvs[1] if a not in ("--config", JOB[1])]
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "config.yaml").write_text((REPO / "configs" / "xor.yaml").read_text())
    results = _run_processes(argvs, [_env(2), _env(2)], timeout_s=60)
    for i, (rc, out, err) in enumerate(results):
        assert rc == 2, f"process {i}: {err}"
        assert err.strip().count("\n") == 0 and "Traceback" not in out, f"process {i}: {err}"
        assert err.startswith("error: distributed: the 2 processes were not started with the "
                              "same settings"), err
        for needle in needles:
            assert needle in err, (needle, err)
    assert not (tmp_path / "run" / "params.msgpack").exists()


BAD = {
    "process id out of range": (["--num-processes", "2", "--process-id", "2",
                                 "--coordinator", "127.0.0.1:1234"],
                                ["distributed.process_id", "2", "[0, 1]"]),
    "negative process id": (["--process-id", "-1"], ["distributed.process_id", "-1"]),
    # The process count was left at its default of 1: say so, not just "[0, 0]".
    "process id without a process count": (
        ["--process-id", "1", "--coordinator", "127.0.0.1:1234"],
        ["distributed.process_id", "got 1", "distributed.num_processes is 1", "--num-processes"]),
    "zero processes": (["--num-processes", "0"], ["distributed.num_processes", "0"]),
    "coordinator without port": (["--coordinator", "localhost"],
                                 ["distributed.coordinator_address", "localhost"]),
    "no coordinator": (["--num-processes", "2", "--process-id", "1"],
                       ["coordinator_address", "--coordinator"]),
    "process id not an integer": (["--process-id", "one"], ["--process-id", "one"]),
    "zero initialization timeout": (["--set", "distributed.initialization_timeout_s=0"],
                                    ["distributed.initialization_timeout_s", "0", ">= 1"]),
    "negative heartbeat timeout": (["--set", "distributed.heartbeat_timeout_s=-5"],
                                   ["distributed.heartbeat_timeout_s", "-5", ">= 1"]),
    "timeout not an integer": (["--set", "distributed.heartbeat_timeout_s=soon"],
                               ["distributed.heartbeat_timeout_s", "soon"]),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_distributed_flags_exit_2_with_one_line(case, tmp_path, capsys, monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    argv, needles = BAD[case]
    train_cli_usage_error(JOB + ["--workdir", str(tmp_path / "run")] + argv, capsys, needles)
    assert not (tmp_path / "run").exists()


def test_bad_process_id_in_a_real_process_has_no_traceback(tmp_path):
    [(rc, out, err)] = _run_processes(
        [JOB + ["--workdir", str(tmp_path / "run"), "--num-processes", "2", "--process-id", "5",
                "--coordinator", f"127.0.0.1:{_free_port()}"]], [_env(2)])
    assert rc == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: distributed.process_id: got 5")
    assert "Traceback" not in err + out


def test_initialize_after_a_computation_is_one_clear_error(tmp_path):
    # jax.distributed.initialize must come before JAX's backend starts; afterwards JAX
    # raises (without contacting the coordinator), and jaxnn turns that into one line.
    code = textwrap.dedent(f"""
        import jax.numpy as jnp
        from jaxnn import config as C
        from jaxnn.train import distributed
        jnp.zeros(1).block_until_ready()
        try:
            distributed.initialize(C.DistributedConfig("127.0.0.1:{_free_port()}", 2, 0,
                                                       initialization_timeout_s=5))
        except C.ConfigError as e:
            print(e)
    """)
    p = subprocess.run([sys.executable, "-c", code], env=_env(1), capture_output=True,
                       text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("distributed: JAX already started its backend"), p.stdout
    assert p.stdout.strip().count("\n") == 0


@needs_gloo
@pytest.mark.parametrize("process_id", [0, 1])
def test_a_missing_peer_ends_with_one_line_after_the_initialization_timeout(tmp_path,
                                                                            process_id):
    # One process of 2 alone: process 0 (the coordinator) waits for process 1, process 1
    # for a coordinator; neither comes. It gives up after 5 s (not JAX's 300 s) with one
    # line and exit 2, instead of JAX's abort with a C++ stack dump.
    t0 = time.perf_counter()
    [(rc, out, err)] = _run_processes(
        [JOB + ["--workdir", str(tmp_path / "run"), "--num-processes", "2",
                "--process-id", str(process_id), "--coordinator", f"127.0.0.1:{_free_port()}",
                "--set", "distributed.initialization_timeout_s=5"]], [_env(2)])
    elapsed = time.perf_counter() - t0
    assert rc == distributed.EXIT_TIMEOUT == 2, err
    assert err.strip().count("\n") == 0, err
    assert err.startswith(f"error: distributed: cannot start process {process_id} of 2 "
                          "with coordinator 127.0.0.1:")
    assert "within 5 s (distributed.initialization_timeout_s)" in err
    assert "Traceback" not in err + out and "Check failure" not in err
    assert elapsed < 90  # the 300 s default would hit TIMEOUT_S
    assert not (tmp_path / "run" / "params.msgpack").exists()



def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout_s} s")


@needs_gloo
def test_a_second_process_0_is_refused_at_once_with_one_line(tmp_path):
    # The same command twice (the --process-id forgotten): gRPC binds the coordinator
    # port with SO_REUSEPORT, so the second coordinator started too and both processes
    # waited for the initialization deadline (or JAX aborted). Now the second one stops
    # at once; the first is left waiting for its real process 1.
    port = _free_port()
    argv = [sys.executable, str(TRAIN_SCRIPT), *JOB, "--num-processes", "2",
            "--process-id", "0", "--coordinator", f"127.0.0.1:{port}",
            "--set", "distributed.initialization_timeout_s=60"]
    first = subprocess.Popen([*argv, "--workdir", str(tmp_path / "a")], env=_env(2),
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, first)
        [(rc, out, err)] = _run_processes([argv[2:] + ["--workdir", str(tmp_path / "b")]],
                                          [_env(2)], timeout_s=50)
        assert first.poll() is None  # the first coordinator is not disturbed
    finally:
        first.kill()
        first.communicate()
    assert rc == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err + out, err
    assert err.startswith(f"error: distributed: process 0 cannot host the coordinator at "
                          f"127.0.0.1:{port}: port {port} is already in use"), err
    assert "--process-id" in err
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_the_port_check_passes_a_port_left_in_time_wait():
    # A run that just ended leaves its coordinator's connections in TIME_WAIT on the port;
    # a new run on the same port must not be refused (SO_REUSEADDR in the test bind; gRPC
    # sets it on its listener, and Linux frees a TIME_WAIT port when both ends set it).
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        conn.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    dist = C.DistributedConfig(f"127.0.0.1:{port}", 2, 0)
    distributed._check_coordinator_port_free(dist)  # does not raise
    with socket.socket() as holder:  # a listener on it is refused
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(C.ConfigError, match=f"port {port} is already in use"):
            distributed._check_coordinator_port_free(dist)


ENV_CASES = {
    "all from the environment": (
        C.DistributedConfig(),
        {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
         "JAX_PROCESS_ID": "3", "JAX_LOCAL_DEVICE_IDS": "0,1"},
        C.DistributedConfig("10.0.0.1:1234", 4, 3, (0, 1))),
    "the config wins": (
        C.DistributedConfig("h:1", 2, 1),
        {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
         "JAX_PROCESS_ID": "3"},
        C.DistributedConfig("h:1", 2, 1)),
    "nothing set: one process": (C.DistributedConfig(), {}, C.DistributedConfig(None, 1, 0)),
}


@pytest.mark.parametrize("case", list(ENV_CASES), ids=list(ENV_CASES))
def test_null_fields_come_from_the_environment(case):
    dist, environ, want = ENV_CASES[case]
    assert distributed.resolve(dist, environ) == want


@pytest.mark.parametrize("environ, needles", [
    ({"JAX_PROCESS_ID": "x"}, ["JAX_PROCESS_ID", "'x'"]),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2", "JAX_COORDINATOR_ADDRESS": "h:1"},
     ["distributed.process_id", "JAX_PROCESS_ID=2"]),
    ({"JAX_NUM_PROCESSES": "2"}, ["coordinator_address", "JAX_COORDINATOR_ADDRESS"]),
])
def test_bad_environment_values_are_config_errors(environ, needles):
    with pytest.raises(C.ConfigError) as e:
        distributed.resolve(C.DistributedConfig(), environ)
    for needle in needles:
        assert needle in str(e.value)


def test_single_process_default_initializes_nothing(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize(C.DistributedConfig()) is False
    assert not jax.distributed.is_initialized()


@pytest.mark.parametrize("from_env", [False, True])
def test_local_device_ids_of_a_single_process_run_are_named_as_ignored(monkeypatch, capsys,
                                                                      from_env):
    # Only jax.distributed.initialize reads them, and a single process does not call it:
    # the run used every device without a word.
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
                 "JAX_LOCAL_DEVICE_IDS"):
        monkeypatch.delenv(name, raising=False)
    if from_env:
        monkeypatch.setenv("JAX_LOCAL_DEVICE_IDS", "0,1")
    dist = C.DistributedConfig() if from_env else C.DistributedConfig(local_device_ids=(0, 1))
    assert distributed.initialize(dist) is False
    err = capsys.readouterr().err
    source = "JAX_LOCAL_DEVICE_IDS" if from_env else "distributed.local_device_ids"
    assert err.startswith(f"warning: {source}=0,1 is ignored by a single-process run"), err
    assert err.count("\n") == 1 and "--devices N" in err
    monkeypatch.delenv("JAX_LOCAL_DEVICE_IDS", raising=False)
    assert distributed.initialize(C.DistributedConfig()) is False
    assert capsys.readouterr().err == ""
