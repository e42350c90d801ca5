"""Multi-process (multi-host) set-up: ``jax.distributed.initialize`` from the config.

Every process runs the same program on the same data (loaded deterministically on each
one); a 1-D mesh over all global devices splits each batch along ``"data"``. Process 0
alone writes files; the others compute the same values and discard them.

The ``distributed`` config section names the coordinator, the process count and this
process's id. A null field falls back to an environment variable, so that a launcher can
set it:

=========================  ===============================  ============================
field                      environment variable             when neither is set
=========================  ===============================  ============================
``coordinator_address``    ``JAX_COORDINATOR_ADDRESS``      none: single process
``num_processes``          ``JAX_NUM_PROCESSES``            1
``process_id``             ``JAX_PROCESS_ID``               0
``local_device_ids``       ``JAX_LOCAL_DEVICE_IDS`` (1,2)   every local device
=========================  ===============================  ============================

``jax.distributed.initialize`` itself reads only ``JAX_COORDINATOR_ADDRESS`` and
``JAX_LOCAL_DEVICE_IDS`` (plus cluster auto-detection); the process count and id are read
here. On CPU the cross-process collectives are gloo (``jax_cpu_collectives_implementation``).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxnn.config import ConfigError, DistributedConfig, validate_distributed

__all__ = ["EXIT_TIMEOUT", "check_same_settings", "initialize", "is_main_process", "resolve",
           "to_global"]

#: Exit status of a process whose peers did not join within the initialization timeout.
EXIT_TIMEOUT = 2
# JAX's own deadline is set this much later than ours, so that the watchdog acts first.
_JAX_DEADLINE_GRACE_S = 30

_ENV = {
    "coordinator_address": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
    "local_device_ids": "JAX_LOCAL_DEVICE_IDS",
}


def _from_env(field: str, raw: str) -> Any:
    name = _ENV[field]
    raw = raw.strip()
    try:
        if field == "coordinator_address":
            return raw
        if field == "local_device_ids":
            return tuple(int(v) for v in raw.split(","))
        return int(raw)
    except ValueError:
        what = "comma-separated integers" if field == "local_device_ids" else "an integer"
        raise ConfigError(f"{name}: got {raw!r}, expected {what}") from None


def resolve(
    dist: DistributedConfig, environ: Mapping[str, str] | None = None
) -> DistributedConfig:
    """``dist`` with every null field taken from the environment, else its single-process value.

    Raises:
      ConfigError: an environment value that is malformed or out of range, or more than one
        process without a coordinator address.
    """
    env = os.environ if environ is None else environ
    values = {}
    for field, name in _ENV.items():
        value = getattr(dist, field)
        if value is None and env.get(name, "").strip():
            value = _from_env(field, env[name])
        values[field] = value
    if values["num_processes"] is None:
        values["num_processes"] = 1
    if values["process_id"] is None:
        values["process_id"] = 0
    out = dataclasses.replace(dist, **values)
    try:
        n, pid = out.num_processes, out.process_id
        if n >= 1 and pid >= n:  # name the count too: it may be the default of 1
            hint = ""
            if dist.num_processes is None and not env.get(_ENV["num_processes"], "").strip():
                hint = (" (the default: pass --num-processes or set JAX_NUM_PROCESSES to the "
                        "number of processes)")
            raise ConfigError(
                f"distributed.process_id: got {pid}, but distributed.num_processes is {n}"
                f"{hint}, so it must be in [0, {n - 1}]"
            )
        validate_distributed(out)
    except ConfigError as e:
        used = [f"{_ENV[f]}={env[_ENV[f]]}" for f in _ENV
                if getattr(dist, f) is None and getattr(out, f) is not None and _ENV[f] in env]
        if not used:
            raise
        raise ConfigError(f"{e} (from the environment: {', '.join(used)})") from None
    if out.num_processes > 1 and out.coordinator_address is None:
        raise ConfigError(
            f"distributed.coordinator_address: null, but distributed.num_processes is "
            f"{out.num_processes}; pass --coordinator HOST:PORT (process 0's address) or set "
            "JAX_COORDINATOR_ADDRESS"
        )
    return out


def initialize(dist: DistributedConfig) -> bool:
    """Start the JAX distributed runtime when ``dist`` asks for it; returns whether it did.

    A no-op (``False``) for a single process without a coordinator. Call it before any JAX
    computation. Calling it again in a process that is already initialized the same way is
    allowed (e.g. two runs in one process).

    If the processes have not all joined after ``dist.initialization_timeout_s`` seconds,
    this process prints one ``error: ...`` line on stderr and exits with
    :data:`EXIT_TIMEOUT` (JAX's own deadline would abort it with a C++ stack dump).

    Raises:
      ConfigError: a bad setting, JAX already started single-process, or the runtime
        cannot be reached (one line naming the coordinator).
    """
    d = resolve(dist)
    if d.coordinator_address is None and d.num_processes == 1:
        if d.local_device_ids:  # only jax.distributed.initialize reads them
            source = ("distributed.local_device_ids" if dist.local_device_ids
                      else _ENV["local_device_ids"])
            print(f"warning: {source}={','.join(map(str, d.local_device_ids))} is ignored by a "
                  "single-process run (it applies to multi-process runs); to use fewer "
                  "devices, pass --devices N or set CUDA_VISIBLE_DEVICES", file=sys.stderr)
        return False
    if jax.distributed.is_initialized():
        if (jax.process_count(), jax.process_index()) != (d.num_processes, d.process_id):
            raise ConfigError(
                f"distributed: this process already runs as process {jax.process_index()} of "
                f"{jax.process_count()}, not {d.process_id} of {d.num_processes}"
            )
        return True
    if jax.config.jax_cpu_collectives_implementation is None:
        # Without it a CPU backend has no cross-process collectives (older jaxlib default).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    who = (f"distributed: cannot start process {d.process_id} of {d.num_processes} with "
           f"coordinator {d.coordinator_address}")
    if d.process_id == 0:
        _check_coordinator_port_free(d)
    # When the peers do not all join in time, JAX's coordination client aborts the whole
    # process from C++ (SIGABRT and a stack dump), which Python cannot catch. The process
    # cannot survive that deadline either way, so a watchdog ends it first, with one line.
    joined = threading.Event()

    def give_up() -> None:
        if not joined.is_set():
            print(f"error: {who}: not every process joined within "
                  f"{d.initialization_timeout_s} s (distributed.initialization_timeout_s); "
                  "start all of them with the same --coordinator and --num-processes",
                  file=sys.stderr, flush=True)
            os._exit(EXIT_TIMEOUT)

    watchdog = threading.Timer(d.initialization_timeout_s, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address=d.coordinator_address,
            num_processes=d.num_processes,
            process_id=d.process_id,
            local_device_ids=list(d.local_device_ids) if d.local_device_ids else None,
            initialization_timeout=d.initialization_timeout_s + _JAX_DEADLINE_GRACE_S,
            heartbeat_timeout_seconds=d.heartbeat_timeout_s,
        )
    except (RuntimeError, ValueError) as e:
        detail = " ".join(str(e).split())
        if isinstance(e, RuntimeError) and "must be called before" in detail:
            # JAX refuses once its backend is up (its documented RuntimeError).
            raise ConfigError(
                "distributed: JAX already started its backend in this process (a "
                "computation or jax.devices() ran first), so jax.distributed.initialize "
                "can no longer be called; call it first, in a fresh process"
            ) from None
        raise ConfigError(f"{who}: {detail}") from None
    finally:
        joined.set()
        watchdog.cancel()
    return True


def _check_coordinator_port_free(d: DistributedConfig) -> None:
    """Refuse to start process 0 when its coordinator port is already listened on here.

    Process 0 hosts the coordinator service on every interface of its host at the port of
    ``coordinator_address``. gRPC binds it with ``SO_REUSEPORT``, so a second process
    started with ``--process-id 0`` (the same command twice, the id forgotten) binds the
    same port as well: connections are then shared between two coordinators and every
    process waits until the initialization deadline, or JAX aborts. A plain socket cannot
    share a port with a listening one, whichever options either has, so a test bind tells.
    """
    port = int(d.coordinator_address.rpartition(":")[2])
    holder = None
    for family, address in ((socket.AF_INET6, ("::", port)), (socket.AF_INET, ("", port))):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host: the IPv4 bind tells
            continue
        with s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free
            try:
                s.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    holder = e
                    break
    if holder is not None:
        raise ConfigError(
            f"distributed: process 0 cannot host the coordinator at {d.coordinator_address}: "
            f"port {port} is already in use on this host (another process started with "
            "--process-id 0, or another program); give every process its own --process-id, "
            "or choose a free port for --coordinator"
        )


def check_same_settings(settings: Mapping[str, Any]) -> None:
    """Raise on every process unless all processes hold the same ``settings``.

    Processes started with different settings (a batch size, a model, ``--resume`` on one
    of them) run different collectives, which wait on each other until gloo's deadline or
    forever. Each process's ``settings`` (a flat mapping of JSON values) are gathered
    first, so that every process stops at once with the same one-line error.

    Raises:
      ConfigError: naming the first setting that differs and the processes' values.
    """
    from jax.experimental import multihost_utils

    text = json.dumps(dict(settings), sort_keys=True, default=str).encode()
    head = np.concatenate([[len(text)], np.frombuffer(hashlib.sha256(text).digest(), np.uint8)])
    heads = np.asarray(multihost_utils.process_allgather(head.astype(np.int64)))
    if (heads == heads[0]).all():
        return
    width = int(heads[:, 0].max())
    padded = np.frombuffer(text.ljust(width), np.uint8)
    texts = np.asarray(multihost_utils.process_allgather(padded))
    every = [json.loads(bytes(row.astype(np.uint8)).decode()) for row in texts]
    other = next(i for i, s in enumerate(every) if s != every[0])
    first, theirs = every[0], every[other]
    key = min(k for k in first.keys() | theirs.keys() if first.get(k) != theirs.get(k))
    raise ConfigError(
        f"distributed: the {len(every)} processes were not started with the same settings: "
        f"process 0 has {key}={json.dumps(first.get(key))}, process {other} has "
        f"{json.dumps(theirs.get(key))}; run the same command on every process, changing only "
        "--process-id"
    )


def is_main_process() -> bool:
    """Whether this process writes the run's files (process 0, or the only process)."""
    return jax.process_index() == 0


def to_global(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Place host data, identical on every process, as global arrays with ``sharding``.

    Each process fills only its own devices' shards (``jax.make_array_from_callback``), so
    this works whether or not the sharding spans other processes' devices.
    """

    def put(leaf: Any) -> jax.Array:
        host = np.asarray(jax.device_get(leaf))
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)
