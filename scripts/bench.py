"""Benchmarks: jaxnn against idiomatic Flax (NNX, linen + optax) and PyTorch, same run.

Usage::

    python scripts/bench.py                                  # every section, full size
    python scripts/bench.py --quick                          # CI-sized smoke run
    python scripts/bench.py --workloads backprop,matmul --repeats 7 --json bench.json
    python scripts/bench.py --workloads w3 --skip "autodiff vmap,pytorch"   # rows left out

Sections (``--workloads``, comma separated; default all):

* ``matmul``   -- best float32 matrix-multiply rate (GFLOP/s) over a few large square sizes
  with ``jnp.dot`` (jitted), NumPy and PyTorch (when installed). The best of them is the
  machine's reference rate; every other row reports the fraction of it that it reaches,
  counting the matmul FLOPs a training sample performs: ``6 * sum(fan_in * fan_out)``
  (forward 2, backward 4) less ``2 * fan_in * fan_out`` of the first layer, whose input
  gradient no implementation computes (elementwise work is not counted).
* ``backprop`` -- the hand-written backward pass (:func:`jaxnn.backprop.value_and_grad`)
  against ``jax.value_and_grad`` on the same MLPs (784-256-256-10 ReLU and a deep tanh
  one, batch 128): gradient alone (jitted), a jitted train step in a Python loop, and a
  ``lax.scan`` epoch. Reports the ratio manual / autodiff time (target <= 1.2).
* ``w1``  -- MLP 784-100x5-10, ReLU, He init, SGD 0.01, batch 128, one epoch of 60,000.
* ``w2``  -- MLP 784-512-512-10, ReLU, Adam 1e-3, batch 128, one epoch of 60,000.
  W1 and W2 also time a *matmul floor* (family ``ref``): a fused epoch doing only the
  step's arithmetic -- the batch gather, the forward and backward matmuls (no input
  gradient) and a plain SGD update; no activation, loss or optimizer state. No
  implementation built on the same XLA kernels can beat it, so the summary reports the
  best jaxnn row as a fraction of it and the floor's own ratio to each peer: the largest
  ratio that workload allows on this machine.
* ``w3``  -- depth-study kernel: 50 tanh layers of width 256, batch 256, 100 SGD steps,
  8 seeds (init included): jaxnn vmapped over seeds, jaxnn looping over seeds, a Flax
  linen loop (and PyTorch eager when installed).

Method: synthetic MNIST-shaped data made from a key (60,000 x 784 float32 in [0, 1),
10 classes, labels ``argmax((x - 0.5) @ W)`` of a random ``W``, so that they can be
learnt) resident on the default device; every implementation shuffles with a keyed
permutation on the device each epoch (PyTorch with ``torch.randperm``). Implementations
of one workload are built and warmed up first (the warm-up run is excluded, and its wall
time minus the median timed run is reported as the compile time), then timed
alternately -- ``repeats`` rounds, each round running every implementation once, the
starting implementation rotating -- and the median is reported. The training rows (W1,
W2 and backprop's scan epochs) must also train (:func:`check_training`): each model's loss
on the first 8,192 examples, measured outside the timed region before the warm-up and
after the last timed epoch, must fall, and a peer's must end at most at the worst jaxnn
row's plus half the jaxnn rows' smallest loss reduction; a peer that does not is left out
of the ratios (shown as failed), a jaxnn row that does not stops the bench. Peak memory is
the largest device ``bytes_in_use`` (GPU) or process RSS (CPU, worker processes included)
sampled during the implementation's compile and warm-up, minus the value just before it:
an estimate of what that implementation adds, not an exact high-water mark.

Worker processes: on a CPU with more than one usable core, W3 has one more jaxnn row,
"pinned processes": the seeds are split over one worker process per core
(:class:`jaxnn.studies.workers.CorePool`, the pool behind ``depth_study.py --workers``),
each pinned to its own core and running the same kernel on its share (autodiff, in a loop
over its seeds: on one core that beats vmap). Every peer
runs in one process, as its idiomatic loop does; the summary gives the ratios of the best
one-process jaxnn row as well. The workers import this file again (``spawn``), so it is
run as a script or imported under the module name ``bench`` with ``scripts/`` on
``sys.path``.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Run as a script: import this file again as the module ``bench`` with Ctrl-C guarded
    # while JAX (and PyTorch) load -- one line and status 130 instead of a traceback --
    # then run its main() and exit; nothing below runs in ``__main__``.
    from _start import run

    run("bench", "main")

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnn
from jaxnn import backprop, mlp, optim
from jaxnn._atomic import write_text
from jaxnn.train import TrainState, make_train_epoch, make_train_step

__all__ = ["Impl", "Result", "Training", "check_training", "main", "measure", "run"]

WORKLOADS = ("matmul", "backprop", "w1", "w2", "w3")
LOSS = "softmax_cross_entropy_with_integer_labels"
TORCH_SKIPPED = "PyTorch skipped: `import torch` failed (pip install -e '.[bench]')"


# ----------------------------------------------------------------------------- environment


def _torch():
    """The ``torch`` module, or None when it cannot be imported."""
    try:
        import torch  # noqa: PLC0415

        return torch
    except Exception:  # ImportError, or a broken install
        return None


def _torch_device(torch) -> tuple[Any, bool]:
    """``(device, on_cuda)`` for the PyTorch rows: CUDA when JAX runs on a GPU and torch sees
    one, else the CPU.

    On CUDA, torch's float32 matmul precision is set to the one JAX uses: by default JAX
    computes float32 matmuls on a GPU in TF32 (``jax_default_matmul_precision`` unset), torch
    in full float32 (``"highest"``), which would have the PyTorch rows do slower arithmetic
    than the JAX rows they are compared with. ``"highest"``/``"float32"`` in JAX maps to
    ``"highest"``, ``"bfloat16"`` to ``"medium"``, anything else to ``"high"`` (TF32).
    """
    use_cuda = jax.default_backend() == "gpu" and torch.cuda.is_available()
    if use_cuda:
        jax_prec = str(jax.config.jax_default_matmul_precision or "default").lower()
        torch.set_float32_matmul_precision(
            {"highest": "highest", "float32": "highest", "bfloat16": "medium"}.get(jax_prec,
                                                                                "high"))
    return torch.device("cuda" if use_cuda else "cpu"), use_cuda


def _torch_cuda():
    """``torch.cuda`` when torch is installed and JAX and torch both run on a GPU."""
    torch = _torch()
    if torch is None or jax.default_backend() != "gpu" or not torch.cuda.is_available():
        return None
    return torch.cuda


def environment() -> dict[str, Any]:
    """Device, library versions and CPU counts, for the report header."""
    dev = jax.devices()[0]
    env = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "backend": jax.default_backend(),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '?')}",
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _version("jaxlib"),
        "flax": _version("flax"),
        "optax": optax.__version__,
        "numpy": np.__version__,
        "jaxnn": getattr(jaxnn, "__version__", _version("jaxnn")),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),  # float64 could leak in
        "torch": None,
        "torch_threads": None,
    }
    torch = _torch()
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()  # XLA:CPU uses every usable core
    return env


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version(name)
    except Exception:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# ----------------------------------------------------------------------------- measuring


def _memory_now() -> tuple[float, float | None]:
    """``(bytes in use now, device peak so far or None)``: device memory on accelerators,
    the process resident set size on CPU."""
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        try:
            stats = dev.memory_stats() or {}
            if "bytes_in_use" in stats:
                return float(stats["bytes_in_use"]), float(stats.get("peak_bytes_in_use", 0))
        except Exception:
            pass
    try:
        with open("/proc/self/statm") as f:
            own = float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return own + _children_rss(), None
    except OSError:
        # maxrss is in KiB on Linux; a high-water mark, the best we have without /proc
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024.0, None


def _children_rss() -> float:
    """Resident set size of this process's child processes (the worker processes of a
    multi-process row), from ``/proc``; 0 where that is not readable."""
    page = os.sysconf("SC_PAGE_SIZE")
    pids: set[str] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/children") as f:
                    pids.update(f.read().split())
            except OSError:
                continue
    except OSError:
        return 0.0
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += float(f.read().split()[1]) * page
        except OSError:
            continue
    return total


class MemorySampler:
    """Context manager: the peak of :func:`_memory_now` above its value on entry.

    A background thread samples every ``interval`` seconds; on GPU the allocator's own
    ``peak_bytes_in_use`` also counts when it rose inside the block. Used only around
    compile + warm-up, never around timed runs.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_bytes = 0.0

    def __enter__(self) -> MemorySampler:
        self._base, self._dev_peak0 = _memory_now()
        self._max = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, _memory_now()[0])

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        now, dev_peak = _memory_now()
        peak = max(self._max, now)
        if dev_peak is not None and self._dev_peak0 is not None and dev_peak > self._dev_peak0:
            peak = max(peak, dev_peak)
        self.peak_bytes = max(0.0, peak - self._base)


@dataclasses.dataclass
class Impl:
    """One implementation of a workload.

    Attributes:
      name: the row label.
      setup: builds everything (models, optimizer state, jitted functions) and returns
        ``run``, a callable doing ONE timed unit of work and blocking until it is done, or a
        :class:`Training` (``run`` and the model's loss, to check that it trains).
      family: ``"jaxnn"``, ``"flax"``, ``"torch"`` (for the peer ratios) or ``"ref"``.
      processes: the operating-system processes doing the work (1 for every peer; more
        for the jaxnn rows that spread independent models over pinned worker processes).
    """

    name: str
    setup: Callable[[], Callable[[], Any]]
    family: str
    processes: int = 1


class Training(NamedTuple):
    """What a training row's ``setup`` returns: ``run`` (one timed epoch, blocking) and
    ``loss()``, the current model's mean loss on the evaluation rows -- called outside the
    timed region, before the warm-up and after the last timed run (:func:`check_training`)."""

    run: Callable[[], Any]
    loss: Callable[[], float]


@dataclasses.dataclass
class Result:
    """Timings of one implementation (seconds per timed unit); for a training row also its
    loss before the warm-up and after the last timed run (NaN when not measured)."""

    workload: str
    name: str
    family: str
    times: list[float]
    first_s: float
    peak_bytes: float
    samples: int  # samples (or steps) per timed unit
    flops: float  # FLOPs per timed unit (0 when not counted)
    unit: str = "samples/s"
    skipped: str | None = None
    processes: int = 1
    loss_start: float = float("nan")
    loss_end: float = float("nan")

    @property
    def median_s(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def throughput(self) -> float:
        return self.samples / self.median_s if self.times else float("nan")

    @property
    def compile_s(self) -> float:
        return max(0.0, self.first_s - self.median_s) if self.times else float("nan")

    @property
    def gflops(self) -> float:
        return self.flops / self.median_s / 1e9 if self.times and self.flops else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "name": self.name, "family": self.family,
            "unit": self.unit, "median_s": self.median_s, "times_s": self.times,
            "throughput": self.throughput, "compile_s": self.compile_s,
            "peak_mb": self.peak_bytes / 2**20, "gflops": self.gflops, "skipped": self.skipped,
            "processes": self.processes, "loss_start": self.loss_start,
            "loss_end": self.loss_end,
        }


@dataclasses.dataclass
class RowFilter:
    """``--skip``: the rows to leave out, by lower-case substrings of their names, and the
    substrings that matched a row so far (a misspelt one is reported at the end)."""

    patterns: tuple[str, ...] = ()
    used: set[str] = dataclasses.field(default_factory=set)

    def match(self, name: str) -> str | None:
        hit = next((p for p in self.patterns if p in name.lower()), None)
        if hit is not None:
            self.used.add(hit)
        return hit


def measure(
    workload: str,
    impls: Sequence[Impl],
    *,
    repeats: int,
    samples: int,
    flops: float = 0.0,
    unit: str = "samples/s",
    log: Callable[[str], None] = print,
    skip: RowFilter | Sequence[str] = (),
) -> list[Result]:
    """Build and warm up every implementation, then time them alternately, then check that
    the training rows trained (:func:`check_training`).

    Args:
      workload: the section name (labels only).
      impls: the implementations; each ``setup()`` returns a blocking ``run()`` or a
        :class:`Training`, whose ``loss()`` is measured before the warm-up and after the
        last timed run, outside the times (and outside the compile time).
      repeats: timed rounds; each round runs every implementation once, starting with a
        different one each round (so no implementation always runs first).
      samples: samples (or steps) in one ``run()``.
      flops: FLOPs in one ``run()`` (0: not counted).
      skip: leave out the implementations whose name contains one of these (lower-case)
        strings (``--skip``; a :class:`RowFilter` or the strings); they are neither built
        nor reported.

    Returns:
      One :class:`Result` per implementation (the median of ``repeats`` times).
    """
    rows = skip if isinstance(skip, RowFilter) else RowFilter(tuple(skip))
    runs, losses, results, failed = [], [], [], []
    for impl in impls:
        hit = rows.match(impl.name)
        if hit is not None:
            log(f"  [{workload}] {impl.name}: left out (--skip {hit!r})")
            continue
        log(f"  [{workload}] compile + warm-up: {impl.name}")
        torch_cuda = _torch_cuda() if impl.family in ("torch", "ref") else None
        if torch_cuda is not None:
            torch_cuda.synchronize()
            torch_cuda.reset_peak_memory_stats()
            torch_base = torch_cuda.memory_allocated()
        try:
            with MemorySampler() as mem:
                t0 = time.perf_counter()
                built = impl.setup()
                built_s = time.perf_counter() - t0
                run, loss = built if isinstance(built, Training) else (built, None)
                loss_start = float(loss()) if loss is not None else float("nan")
                t0 = time.perf_counter()
                run()
                run_s = time.perf_counter() - t0
                first = built_s + run_s
            # Printed as soon as it is known: on a lent accelerator a run may be cut off by
            # its time limit, and what each row took to build is then the figure left.
            log(f"  [{workload}] {impl.name}: built in {built_s:.1f} s, first run "
                f"{run_s:.1f} s")
        except Exception as e:  # an optional peer (e.g. torch.compile) failing is reported
            if impl.family == "jaxnn":
                raise
            msg = _failure(e)
            log(f"  [{workload}] {impl.name} FAILED, left out: {msg}")
            failed.append(Result(workload, impl.name, impl.family, [], float("nan"), 0.0,
                                 samples, flops, unit, skipped=msg, processes=impl.processes))
            continue
        peak = mem.peak_bytes
        if torch_cuda is not None:  # torch's CUDA allocator is invisible to JAX's stats
            peak = max(peak, float(torch_cuda.max_memory_allocated() - torch_base))
        runs.append(run)
        losses.append(loss)
        results.append(Result(workload, impl.name, impl.family, [], first, peak,
                              samples, flops, unit, processes=impl.processes,
                              loss_start=loss_start))
    active = list(range(len(runs)))
    for r in range(repeats):
        order = [active[(r + k) % len(active)] for k in range(len(active))] if active else []
        for i in order:
            t0 = time.perf_counter()
            try:
                runs[i]()
            except Exception as e:  # a peer failing in a timed run (not in its warm-up)
                if results[i].family == "jaxnn":
                    raise
                msg = _failure(e)
                log(f"  [{workload}] {results[i].name} FAILED in timed run {r + 1}, left "
                    f"out: {msg}")
                results[i] = dataclasses.replace(results[i], times=[], skipped=msg)
                active.remove(i)
                continue
            results[i].times.append(time.perf_counter() - t0)
    for i in active:  # untimed: the loss each model reached
        if losses[i] is None:
            continue
        try:
            results[i].loss_end = float(losses[i]())
        except Exception as e:  # as in its runs: a peer failing here is reported, left out
            if results[i].family == "jaxnn":
                raise
            msg = _failure(e)
            log(f"  [{workload}] {results[i].name} FAILED measuring its loss, left out: {msg}")
            results[i] = dataclasses.replace(results[i], times=[], skipped=msg)
    results = check_training(workload, results, log)
    for res in results:
        if res.skipped is None:
            trained = ("" if math.isnan(res.loss_start)
                       else f"; loss {res.loss_start:.4g} -> {res.loss_end:.4g}")
            log(f"  [{workload}] {res.name}: median {res.median_s * 1e3:.1f} ms "
                f"({res.throughput:,.0f} {unit}{trained})")
    return results + failed


# A peer's final loss may exceed the worst jaxnn row's by this fraction of the smallest
# loss reduction of the jaxnn rows: the seeds and shuffles differ, so the losses do (W2 after
# 3 epochs: 0.48 and 0.39 for two seeds of the same jaxnn row), but a model that barely
# trains ends near where it started.
TRAIN_SLACK = 0.5


def check_training(workload: str, results: Sequence[Result],
                   log: Callable[[str], None] = print) -> list[Result]:
    """The training rows that trained, so that no broken implementation can win a ratio.

    A row with a measured loss (a :class:`Training`) must end finite and below its own
    loss before the warm-up; a peer must also end at most ``TRAIN_SLACK`` times the
    smallest loss reduction of the jaxnn rows above their highest final loss (same data,
    architecture, optimizer and number of epochs; only the initial weights and the
    shuffles differ). A peer that fails is left out like a peer that raised (no times,
    ``skipped`` says why); a jaxnn row that fails is a ``RuntimeError``.
    """
    def trained(r: Result) -> bool:
        return math.isfinite(r.loss_end) and r.loss_end < r.loss_start

    def measured(r: Result) -> bool:
        return bool(r.times) and not math.isnan(r.loss_start)

    mine = [r for r in results if measured(r) and r.family == "jaxnn"]
    for r in mine:
        if not trained(r):
            raise RuntimeError(f"bench: {workload} {r.name} did not train: loss "
                               f"{r.loss_start:.4g} before, {r.loss_end:.4g} after")
    bound = (max(r.loss_end for r in mine)
             + TRAIN_SLACK * min(r.loss_start - r.loss_end for r in mine)) if mine else math.inf
    out = []
    for r in results:
        if measured(r) and r.family != "jaxnn" and not (trained(r) and r.loss_end <= bound):
            why = (f"did not train: loss {r.loss_start:.4g} before, {r.loss_end:.4g} after"
                   + (f" (allowed: < loss before, <= {bound:.4g})" if mine else ""))
            log(f"  [{workload}] {r.name} FAILED the training check, left out: {why}")
            r = dataclasses.replace(r, times=[], skipped=why)
        out.append(r)
    return out


def _failure(e: BaseException) -> str:
    """One line for a failed peer: the exception's type and first line."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]


def _block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


def train_flops(layer_sizes: Sequence[int]) -> float:
    """Matmul FLOPs of one training sample through a dense MLP, as every implementation
    performs them: ``2 * fan_in * fan_out`` per layer forward, ``4 *`` backward (weight and
    input gradients), less the first layer's input gradient, which no implementation
    computes (the data needs none): ``6 * sum(fan_in * fan_out) - 2 * in * first``."""
    pairs = list(zip(layer_sizes[:-1], layer_sizes[1:], strict=False))
    return 6.0 * sum(a * b for a, b in pairs) - (2.0 * pairs[0][0] * pairs[0][1] if pairs else 0.0)


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes (full or ``--quick``)."""

    n_train: int = 60_000
    in_dim: int = 784
    classes: int = 10
    w1_hidden: tuple[int, ...] = (100,) * 5
    w2_hidden: tuple[int, ...] = (512, 512)
    batch: int = 128
    w3_depth: int = 50
    w3_width: int = 256
    w3_batch: int = 256
    w3_steps: int = 100
    w3_seeds: int = 8
    bp_steps: int = 50
    bp_deep: int = 10
    matmul: tuple[int, ...] = (1024, 2048, 4096)
    matmul_accel: tuple[int, ...] = (2048, 4096, 8192)  # on a GPU/TPU


QUICK = Sizes(n_train=2048, w1_hidden=(32,) * 5, w2_hidden=(64, 64), w3_depth=4,
              w3_width=32, w3_batch=32, w3_steps=5, w3_seeds=2, bp_steps=5, bp_deep=3,
              matmul=(128, 256), matmul_accel=(256, 512))


def synthetic_mnist(key: jax.Array, n: int, in_dim: int = 784, classes: int = 10):
    """MNIST-shaped data from a key: ``x`` uniform in [0, 1) float32, ``y`` int32 labels.

    The labels are learnable, ``y = argmax((x - 0.5) @ W)`` for a random ``W``: a model that
    trains takes its loss below chance (``log(classes)``) and on, so :func:`check_training`
    can tell it from one that does not (on random labels every loss ends near chance).
    """
    kx, kw = jax.random.split(key)
    x = jax.random.uniform(kx, (n, in_dim), jnp.float32)
    w = jax.random.normal(kw, (in_dim, classes), jnp.float32)
    y = jnp.argmax((x - 0.5) @ w, axis=1).astype(jnp.int32)
    return _block(x), _block(y)


@jax.jit(static_argnums=(1, 2))
def _epoch_batches(key: jax.Array, n: int, batch: int) -> jax.Array:
    """The keyed permutation of one epoch as ``(num_batches, batch)`` indices -- the same
    shuffle :func:`jaxnn.train.make_train_epoch` does inside its compiled epoch.

    Loops iterate over its rows (``for idx in perm``, as Flax's MNIST example), which splits
    it in a few dispatches per epoch; ``perm[i]`` would be one dispatch per step (~0.2 ms on
    a 2-core CPU, ~15% of a W1 linen step) that the fused jaxnn epoch does not pay."""
    nb = n // batch
    return jax.random.permutation(key, n)[: nb * batch].reshape(nb, batch)


EVAL_ROWS = 8192  # the rows every training row's loss is measured on (the first ones)


def _eval_rows(x, y):
    """The first ``EVAL_ROWS`` examples: where :class:`Training` losses are measured."""
    return x[:EVAL_ROWS], y[:EVAL_ROWS]


# ----------------------------------------------------------------------------- jaxnn


def _jaxnn_mlp(sizes: Sequence[int], activation: str, initializer: str) -> mlp.MLPConfig:
    return mlp.MLPConfig(layer_sizes=tuple(sizes), hidden_activation=activation,
                         initializer=initializer)


def _jaxnn_step(cfg: mlp.MLPConfig, tx: optax.GradientTransformation, grad: str):
    loss_fn = mlp.make_loss_fn(cfg, LOSS)
    vg = backprop.value_and_grad(cfg, LOSS) if grad == "manual" else None
    return make_train_step(loss_fn, tx, grad=grad, value_and_grad_fn=vg)


def jaxnn_epoch_impl(name: str, cfg: mlp.MLPConfig, tx_fn: Callable[[], Any], grad: str,
                     x: jax.Array, y: jax.Array, batch: int, seed: int = 0) -> Impl:
    """jaxnn's fused epoch (:func:`jaxnn.train.make_train_epoch`): one timed unit = one epoch."""

    def setup():
        tx = tx_fn()
        epoch = make_train_epoch(_jaxnn_step(cfg, tx, grad), batch)
        params, model_state = mlp.init(cfg, jax.random.key(seed))
        box = {"state": TrainState.create(params=params, tx=tx, key=jax.random.key(seed + 1),
                                          model_state=model_state), "epoch": 0}
        root = jax.random.key(seed + 2)
        loss_fn = mlp.make_loss_fn(cfg, LOSS)
        evaluate = jax.jit(lambda p, s, xe, ye: loss_fn(p, s, xe, ye, None, False)[0])
        xe, ye = _eval_rows(x, y)

        def run():
            box["epoch"] += 1
            box["state"], metrics = epoch(box["state"], x, y,
                                          jax.random.fold_in(root, box["epoch"]))
            _block((box["state"].params, metrics["loss"]))
            return box["state"]

        def loss():
            return float(evaluate(box["state"].params, box["state"].model_state, xe, ye))

        return Training(run, loss)

    return Impl(name, setup, "jaxnn")


def matmul_floor_impl(layer_sizes: Sequence[int], x: jax.Array, batch: int,
                      lr: float = 0.01, seed: int = 0, update: str = "sgd") -> Impl:
    """The arithmetic of one training epoch and nothing else (family ``ref``).

    A ``lax.scan`` over the epoch's keyed batches (the shuffle of the other rows): gather
    the batch, ``h_l = h_{l-1} @ W_l`` forward, then per layer ``G_l = h_{l-1}^T d``, the
    update of ``W_l`` with ``G_l``, and ``d = d @ W_l^T`` (not for the first layer: no input
    gradient), with ``d`` the last output scaled. No bias, activation or loss, so its time
    is a floor for any MLP epoch on the same matmul kernels. ``update``: ``"sgd"``
    (``W -= lr G``: no optimizer state) or ``"adam"`` (Adam's two moments and
    bias-corrected step, written out: the memory traffic of an Adam workload's update,
    which on a CPU costs as much as a large share of its matmuls).
    """
    if update not in ("sgd", "adam"):
        raise ValueError(f"matmul_floor_impl: update must be 'sgd' or 'adam', got {update!r}")
    b1, b2, eps = 0.9, 0.999, 1e-8

    def setup():
        keys = jax.random.split(jax.random.key(seed), len(layer_sizes) - 1)
        ws = [jax.random.normal(k, (a, b), jnp.float32) * math.sqrt(2.0 / a)
              for k, a, b in zip(keys, layer_sizes[:-1], layer_sizes[1:], strict=True)]
        carry0 = (ws,)
        if update == "adam":  # moments (distinct buffers: the carry is donated) and t
            carry0 = (ws, [jnp.zeros_like(w) for w in ws], [jnp.zeros_like(w) for w in ws],
                      jnp.zeros((), jnp.float32))

        @functools.partial(jax.jit, donate_argnums=0)
        def epoch(carry, x, key):
            def step(carry, rows):
                ws = carry[0]
                hs = [x[rows]]
                for w in ws:
                    hs.append(hs[-1] @ w)
                d = hs[-1] * (1.0 / batch)
                grads = list(ws)
                for i in range(len(ws) - 1, -1, -1):
                    grads[i] = hs[i].T @ d
                    if i:
                        d = d @ ws[i].T
                if update == "sgd":
                    return ([w - lr * g for w, g in zip(ws, grads, strict=True)],), None
                _, ms, vs, t = carry
                t = t + 1.0
                ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, grads, strict=True)]
                vs = [b2 * v + (1.0 - b2) * g * g for v, g in zip(vs, grads, strict=True)]
                ws = [w - lr * (m / (1.0 - b1 ** t)) / (jnp.sqrt(v / (1.0 - b2 ** t)) + eps)
                      for w, m, v in zip(ws, ms, vs, strict=True)]
                return (ws, ms, vs, t), None

            return jax.lax.scan(step, carry, _epoch_batches(key, x.shape[0], batch))[0]

        box = {"carry": carry0, "epoch": 0}
        root = jax.random.key(seed + 2)

        def run():
            box["epoch"] += 1
            box["carry"] = _block(epoch(box["carry"], x, jax.random.fold_in(root, box["epoch"])))
            return box["carry"][0]

        return run

    what = "SGD update" if update == "sgd" else "Adam update"
    return Impl(f"matmul floor (gather + matmuls + {what})", setup, "ref")


# ----------------------------------------------------------------------------- flax


def _flax_linen_mlp(hidden: Sequence[int], classes: int, activation: str, kernel_init):
    import flax.linen as nn  # noqa: PLC0415

    act = getattr(jax.nn, activation)

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for h in hidden:
                x = act(nn.Dense(h, kernel_init=kernel_init)(x))
            return nn.Dense(classes, kernel_init=kernel_init)(x)

    return MLP()


def _xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def flax_linen_impl(hidden: Sequence[int], classes: int, activation: str, kernel_init,
                    tx_fn: Callable[[], Any], x: jax.Array, y: jax.Array, batch: int,
                    seed: int = 0) -> Impl:
    """Flax linen + optax ``TrainState``: a jitted step (state donated), a Python loop over
    the batches of a device-side keyed permutation, as Flax's MNIST example."""
    from flax.training import train_state  # noqa: PLC0415

    def setup():
        model = _flax_linen_mlp(hidden, classes, activation, kernel_init)
        params = model.init(jax.random.key(seed), x[:1])["params"]
        state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx_fn())

        @jax.jit(donate_argnums=0)
        def train_step(state, x, y, idx):
            xb, yb = x[idx], y[idx]

            def loss_fn(p):
                return _xent(state.apply_fn({"params": p}, xb), yb)

            loss, grads = jax.value_and_grad(loss_fn)(state.params)
            return state.apply_gradients(grads=grads), loss

        box = {"state": state, "epoch": 0}
        root = jax.random.key(seed + 2)
        n = x.shape[0]

        def run():
            box["epoch"] += 1
            perm = _epoch_batches(jax.random.fold_in(root, box["epoch"]), n, batch)
            st = box["state"]
            for idx in perm:  # rows split at once: perm[i] is a dispatch per step (~0.2 ms)
                st, loss = train_step(st, x, y, idx)
            box["state"] = st
            _block((st.params, loss))

        evaluate = jax.jit(lambda p, xe, ye: _xent(model.apply({"params": p}, xe), ye))
        xe, ye = _eval_rows(x, y)
        return Training(run, lambda: float(evaluate(box["state"].params, xe, ye)))

    return Impl("flax linen loop", setup, "flax")


def flax_nnx_impl(hidden: Sequence[int], classes: int, activation: str, kernel_init,
                  tx_fn: Callable[[], Any], x: jax.Array, y: jax.Array, batch: int,
                  seed: int = 0) -> Impl:
    """Flax NNX: ``nnx.Optimizer`` and an ``nnx.jit`` step in a Python loop, as the NNX
    MNIST tutorial (same device-side keyed permutation as the others)."""
    from flax import nnx  # noqa: PLC0415

    act = getattr(jax.nn, activation)

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            sizes = (x.shape[1], *hidden, classes)
            self.layers = nnx.List([nnx.Linear(a, b, kernel_init=kernel_init, rngs=rngs)
                                    for a, b in zip(sizes[:-1], sizes[1:], strict=False)])

        def __call__(self, h):
            for layer in self.layers[:-1]:
                h = act(layer(h))
            return self.layers[-1](h)

    def setup():
        model = MLP(nnx.Rngs(seed))
        optimizer = nnx.Optimizer(model, tx_fn(), wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, x, y, idx):
            xb, yb = x[idx], y[idx]

            def loss_fn(m):
                return _xent(m(xb), yb)

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            return loss

        box = {"epoch": 0}
        root = jax.random.key(seed + 2)
        n = x.shape[0]

        def run():
            box["epoch"] += 1
            perm = _epoch_batches(jax.random.fold_in(root, box["epoch"]), n, batch)
            for idx in perm:  # rows split at once, as in the linen loop
                loss = train_step(model, optimizer, x, y, idx)
            _block((nnx.state(model, nnx.Param), loss))

        evaluate = nnx.jit(lambda m, xe, ye: _xent(m(xe), ye))
        xe, ye = _eval_rows(x, y)
        return Training(run, lambda: float(evaluate(model, xe, ye)))

    return Impl("flax nnx loop", setup, "flax")


# ----------------------------------------------------------------------------- torch


def torch_impls(hidden: Sequence[int], classes: int, activation: str, init: str,
                optimizer: str, lr: float, x: jax.Array, y: jax.Array, batch: int,
                seed: int = 0) -> list[Impl]:
    """PyTorch eager and ``torch.compile`` (on CUDA when JAX runs on a GPU and torch sees
    one, else CPU, at JAX's float32 matmul precision: :func:`_torch_device`), with
    flush-denormal on and a fused Adam; empty when torch is absent."""
    torch = _torch()
    if torch is None:
        return []
    device, use_cuda = _torch_device(torch)
    torch.set_flush_denormal(True)
    xt = torch.from_numpy(np.array(x)).to(device)
    yt = torch.from_numpy(np.asarray(y).astype(np.int64)).to(device)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]

    def sync():
        if use_cuda:
            torch.cuda.synchronize()

    def make_model():
        torch.manual_seed(seed)
        mods, sizes = [], (xt.shape[1], *hidden, classes)
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            lin = torch.nn.Linear(a, b)
            if init == "he_normal":
                torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            else:
                torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
            mods.append(lin)
            if k < len(sizes) - 2:
                mods.append(act())
        return torch.nn.Sequential(*mods).to(device)

    def make(compiled: bool):
        def setup():
            model = make_model()
            if optimizer == "adam":
                opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
            else:
                opt = torch.optim.SGD(model.parameters(), lr=lr)
            loss_f = torch.nn.CrossEntropyLoss()

            def step(xb, yb):
                opt.zero_grad(set_to_none=True)
                loss = loss_f(model(xb), yb)
                loss.backward()
                opt.step()
                return loss

            step_fn = torch.compile(step) if compiled else step
            gen = torch.Generator(device="cpu").manual_seed(seed + 2)
            n = xt.shape[0]

            def run():
                perm = torch.randperm(n, generator=gen).to(device)
                loss = None
                for i in range(n // batch):
                    idx = perm[i * batch:(i + 1) * batch]
                    loss = step_fn(xt[idx], yt[idx])
                float(loss.detach())
                sync()

            xe, ye = _eval_rows(xt, yt)

            def loss():
                with torch.no_grad():  # the eager module: the weights the step updates
                    return float(loss_f(model(xe), ye))

            return Training(run, loss)

        return Impl("pytorch compile" if compiled else "pytorch eager", setup, "torch")

    return [make(False), make(True)]


# ----------------------------------------------------------------------------- sections


def section_matmul(sizes: Sizes, repeats: int, log,
                   skip: RowFilter | Sequence[str] = ()) -> list[Result]:
    """Best float32 GFLOP/s of a square matmul with jnp.dot, NumPy and PyTorch."""
    results = []
    torch = _torch()
    if torch is None:
        log(f"  [matmul] {TORCH_SKIPPED}")
    dot = jax.jit(jnp.dot)  # default precision, as the models use
    dot_hi = jax.jit(lambda a, b: jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST))
    cpu = jax.default_backend() == "cpu"
    for n in sizes.matmul if cpu else sizes.matmul_accel:
        a = _block(jax.random.uniform(jax.random.key(n), (n, n), jnp.float32))
        b = _block(jax.random.uniform(jax.random.key(n + 1), (n, n), jnp.float32))
        impls = [Impl(f"jnp.dot {n}", lambda a=a, b=b: lambda: _block(dot(a, b)), "ref")]
        if cpu:
            an, bn = np.asarray(a), np.asarray(b)
            impls.append(Impl(f"numpy {n}", lambda an=an, bn=bn: lambda: an @ bn, "ref"))
        else:  # default precision may use TF32 on GPUs; HIGHEST is true float32
            impls.append(Impl(f"jnp.dot highest {n}",
                              lambda a=a, b=b: lambda: _block(dot_hi(a, b)), "ref"))
        if torch is not None:
            use_cuda = jax.default_backend() == "gpu" and torch.cuda.is_available()
            dev = "cuda" if use_cuda else "cpu"
            at = torch.from_numpy(np.array(a)).to(dev)
            bt = torch.from_numpy(np.array(b)).to(dev)

            def torch_run(at=at, bt=bt, use_cuda=use_cuda):
                def run():
                    c = at @ bt
                    if use_cuda:
                        torch.cuda.synchronize()
                    return c

                return run

            impls.append(Impl(f"torch {n}", torch_run, "ref"))
        results += measure("matmul", impls, repeats=repeats, samples=1, flops=2.0 * n**3,
                           unit="matmul/s", log=log, skip=skip)
    return results


def section_backprop(sizes: Sizes, x, y, repeats: int, log,
                     skip: RowFilter | Sequence[str] = ()) -> list[Result]:
    """Hand-written backprop vs autodiff: gradient alone, jitted step loop, scanned epoch."""
    b = sizes.batch
    nets = {
        "relu 784-256-256-10": _jaxnn_mlp((sizes.in_dim, 256, 256, sizes.classes), "relu",
                                          "he_normal"),
        f"tanh 784-256x{sizes.bp_deep}-10": _jaxnn_mlp(
            (sizes.in_dim, *(256,) * sizes.bp_deep, sizes.classes), "tanh", "glorot_normal"),
    }
    steps = sizes.bp_steps
    xs, ys = x[: steps * b], y[: steps * b]
    xb_list = [xs[i * b:(i + 1) * b] for i in range(steps)]
    yb_list = [ys[i * b:(i + 1) * b] for i in range(steps)]
    results = []
    for label, cfg in nets.items():
        fl = train_flops(cfg.layer_sizes) * b

        def grad_impl(grad, cfg=cfg):
            def setup():
                if grad == "manual":
                    vg = backprop.value_and_grad(cfg, LOSS)
                else:
                    vg = jax.value_and_grad(mlp.make_loss_fn(cfg, LOSS), has_aux=True)
                fn = jax.jit(lambda p, s, xb, yb: vg(p, s, xb, yb, None, True)[1])
                params, st = mlp.init(cfg, jax.random.key(0))

                def run():
                    out = None
                    for xb, yb in zip(xb_list, yb_list, strict=True):
                        out = fn(params, st, xb, yb)
                    _block(out)

                return run

            return Impl(f"{grad} grad", setup, "jaxnn")

        def step_impl(grad, cfg=cfg):
            def setup():
                tx = optim.sgd(0.01)
                step = jax.jit(_jaxnn_step(cfg, tx, grad), donate_argnums=0)
                params, st = mlp.init(cfg, jax.random.key(0))
                box = {"s": TrainState.create(params=params, tx=tx, key=jax.random.key(1),
                                              model_state=st)}

                def run():
                    s = box["s"]
                    for xb, yb in zip(xb_list, yb_list, strict=True):
                        s, m = step(s, xb, yb)
                    box["s"] = s
                    _block((s.params, m["loss"]))

                return run

            return Impl(f"{grad} step loop", setup, "jaxnn")

        for kind, factory in (("grad", grad_impl), ("step", step_impl)):
            results += measure(f"backprop {label} [{kind}]",
                               [factory("autodiff"), factory("manual")], repeats=repeats,
                               samples=steps * b, flops=fl * steps, log=log,
                               skip=skip)
        results += measure(
            f"backprop {label} [scan epoch]",
            [jaxnn_epoch_impl(f"{g} scan epoch", cfg, lambda: optim.sgd(0.01), g, xs, ys, b)
             for g in ("autodiff", "manual")],
            repeats=repeats, samples=steps * b, flops=fl * steps, log=log, skip=skip)
    return results


def _mlp_workload(name: str, sizes: Sizes, x, y, hidden, optimizer: str, lr: float,
                  repeats: int, log, skip: RowFilter | Sequence[str] = ()) -> list[Result]:
    import flax.linen as nn  # noqa: PLC0415

    layer_sizes = (sizes.in_dim, *hidden, sizes.classes)
    cfg = _jaxnn_mlp(layer_sizes, "relu", "he_normal")
    if optimizer == "adam":
        jx_tx, ox_tx = (lambda: optim.adam(lr)), (lambda: optax.adam(lr))
    else:
        jx_tx, ox_tx = (lambda: optim.sgd(lr)), (lambda: optax.sgd(lr))
    he = nn.initializers.he_normal()
    b = sizes.batch
    impls = [
        jaxnn_epoch_impl("jaxnn autodiff (scan epoch)", cfg, jx_tx, "autodiff", x, y, b),
        jaxnn_epoch_impl("jaxnn manual (scan epoch)", cfg, jx_tx, "manual", x, y, b),
        flax_nnx_impl(hidden, sizes.classes, "relu", he, ox_tx, x, y, b),
        flax_linen_impl(hidden, sizes.classes, "relu", he, ox_tx, x, y, b),
        matmul_floor_impl(layer_sizes, x, b),
    ]
    if optimizer == "adam":  # the floor with the workload's own update, too
        impls.append(matmul_floor_impl(layer_sizes, x, b, lr=lr, update="adam"))
    peers = torch_impls(hidden, sizes.classes, "relu", "he_normal", optimizer, lr, x, y, b)
    if not peers:
        log(f"  [{name}] {TORCH_SKIPPED}")
    impls += peers
    n = (x.shape[0] // b) * b
    return measure(name, impls, repeats=repeats, samples=n,
                   flops=train_flops(layer_sizes) * n, log=log, skip=skip)


def _w3_single(cfg: mlp.MLPConfig, steps: int, batch: int, lr: float, grad: str):
    """One depth-study model with jaxnn: init from a key, ``steps`` SGD steps on batches
    drawn with keyed indices, all in one ``lax.scan``; returns the final loss."""
    tx = optim.sgd(lr)
    step = _jaxnn_step(cfg, tx, grad)

    def fn(key, x, y):
        params, st = mlp.init(cfg, key)
        state = TrainState.create(params=params, tx=tx, key=key, model_state=st)
        bkey = jax.random.fold_in(key, 1)

        def body(s, i):
            idx = jax.random.randint(jax.random.fold_in(bkey, i), (batch,), 0, x.shape[0])
            s, m = step(s, x[idx], y[idx])
            return s, m["loss"]

        state, losses = jax.lax.scan(body, state, jnp.arange(steps))
        return losses[-1]

    return fn


# W3 in worker processes: each worker builds the kernel once, compiled ahead of time for
# the share sizes it may get (vmapped) or for one seed (looped), and keeps the data on its
# device.
_W3_WORKER: dict[str, Any] = {}


def _w3_worker_init(layer_sizes: tuple[int, ...], steps: int, batch: int, lr: float,
                    grad: str, vmapped: bool, x: np.ndarray, y: np.ndarray,
                    share_sizes: tuple[int, ...]):
    cfg = _jaxnn_mlp(layer_sizes, "tanh", "glorot_normal")
    single = _w3_single(cfg, steps, batch, lr, grad)
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    _W3_WORKER.update(x=xd, y=yd, vmapped=vmapped, compiled={})
    if vmapped:
        fn = jax.jit(jax.vmap(single, in_axes=(0, None, None)))
        for n in sorted(set(share_sizes)):
            keys = jax.random.split(jax.random.key(0), n)
            _W3_WORKER["compiled"][n] = fn.lower(keys, xd, yd).compile()
    else:
        _W3_WORKER["compiled"][1] = jax.jit(single).lower(jax.random.key(0), xd, yd).compile()


def _w3_worker_task(key_data: np.ndarray) -> np.ndarray:
    """Train the seeds whose raw key data is ``key_data``; their final losses."""
    w = _W3_WORKER
    keys = jax.random.wrap_key_data(jnp.asarray(key_data))
    if w["vmapped"]:
        return np.asarray(w["compiled"][len(key_data)](keys, w["x"], w["y"]))
    return np.asarray(jax.block_until_ready([w["compiled"][1](k, w["x"], w["y"])
                                             for k in keys]))


def w3_pool_impl(layer_sizes: tuple[int, ...], steps: int, batch: int, lr: float, grad: str,
                 vmapped: bool, keys: jax.Array, x, y, workers: int,
                 cleanup: contextlib.ExitStack) -> Impl:
    """W3 with the seeds split over ``workers`` pinned CPU processes (``CorePool``), each
    running the kernel on its share, vmapped or in a loop over its seeds; ``cleanup``
    shuts the pool down."""
    from jaxnn.studies.workers import CorePool, core_shares  # noqa: PLC0415

    n = len(core_shares(workers))
    shares = [a for a in np.array_split(np.asarray(jax.random.key_data(keys)), n) if len(a)]

    def setup():
        pool = CorePool(n, initializer=_w3_worker_init,
                        initargs=(tuple(layer_sizes), steps, batch, lr, grad, vmapped,
                                  np.asarray(x), np.asarray(y), tuple(len(a) for a in shares)))
        cleanup.callback(pool.shutdown)

        def run():
            futures = [pool.submit(_w3_worker_task, a) for a in shares]
            return np.concatenate([f.result() for f in futures])

        return run

    how = "vmap" if vmapped else "loop"
    return Impl(f"jaxnn {grad} {how}, {n} pinned processes", setup, "jaxnn", processes=n)


def section_w3(sizes: Sizes, x, y, repeats: int, log,
               skip: RowFilter | Sequence[str] = ()) -> list[Result]:
    """Depth-study kernel: ``seeds`` deep tanh MLPs trained for ``steps`` SGD steps."""
    import flax.linen as nn  # noqa: PLC0415
    from flax.training import train_state  # noqa: PLC0415

    from jaxnn.studies.workers import usable_cores  # noqa: PLC0415

    depth, width, b = sizes.w3_depth, sizes.w3_width, sizes.w3_batch
    steps, seeds, lr = sizes.w3_steps, sizes.w3_seeds, 0.01
    layer_sizes = (sizes.in_dim, *(width,) * depth, sizes.classes)
    cfg = _jaxnn_mlp(layer_sizes, "tanh", "glorot_normal")
    keys = jax.random.split(jax.random.key(3), seeds)

    def jaxnn_impl(grad: str, vmapped: bool) -> Impl:
        def setup():
            single = _w3_single(cfg, steps, b, lr, grad)
            # Compiled here, ahead of time, so that "built in" is the compile time and
            # "first run" the execution (a GPU run once spent minutes in one of the two).
            if vmapped:
                fn = jax.jit(jax.vmap(single, in_axes=(0, None, None))).lower(
                    keys, x, y).compile()
                return lambda: _block(fn(keys, x, y))
            fn = jax.jit(single).lower(keys[0], x, y).compile()
            return lambda: _block(jnp.stack([fn(keys[s], x, y) for s in range(seeds)]))

        how = "vmap over seeds" if vmapped else "loop over seeds"
        return Impl(f"jaxnn {grad} {how}", setup, "jaxnn")

    def linen_impl() -> Impl:
        def setup():
            model = _flax_linen_mlp((width,) * depth, sizes.classes, "tanh",
                                    nn.initializers.glorot_normal())
            init = jax.jit(lambda k: model.init(k, x[:1])["params"])
            tx = optax.sgd(lr)  # one object: TrainState keeps tx as static jit metadata

            @jax.jit(donate_argnums=0)
            def train_step(state, x, y, key, i):
                idx = jax.random.randint(jax.random.fold_in(key, i), (b,), 0, x.shape[0])
                xb, yb = x[idx], y[idx]
                loss, grads = jax.value_and_grad(
                    lambda p: _xent(state.apply_fn({"params": p}, xb), yb))(state.params)
                return state.apply_gradients(grads=grads), loss

            def run():
                out = []
                for s in range(seeds):
                    st = train_state.TrainState.create(apply_fn=model.apply,
                                                       params=init(keys[s]),
                                                       tx=tx)
                    bkey = jax.random.fold_in(keys[s], 1)
                    for i in range(steps):
                        st, loss = train_step(st, x, y, bkey, i)
                    out.append(loss)
                return _block(jnp.stack(out))

            return run

        return Impl("flax linen loop", setup, "flax")

    impls = [jaxnn_impl("manual", True), jaxnn_impl("manual", False),
             jaxnn_impl("autodiff", True), linen_impl()]
    torch = _torch()
    if torch is None:
        log(f"  [w3] {TORCH_SKIPPED}")
    else:
        impls += [_w3_torch(torch, layer_sizes, b, steps, seeds, lr, x, y)]
    n = steps * b * seeds
    with contextlib.ExitStack() as cleanup:
        cores = len(usable_cores())
        if jax.default_backend() != "cpu":
            log("  [w3] pinned-process row skipped: worker processes are for the CPU backend")
        elif cores < 2 or seeds < 2:
            log(f"  [w3] pinned-process row skipped: {cores} usable core(s), {seeds} seed(s)")
        elif __name__ not in ("__main__", "bench"):
            log(f"  [w3] pinned-process row skipped: this file was imported as {__name__!r}; "
                f"worker processes can import it only as a script or as 'bench'")
        else:
            # On one core a loop over seeds beats vmap, and autodiff the manual backprop
            # (W3, 4 seeds per core, both cores busy: 26.5 s vs 29.6 s; docs/benchmarks.md).
            impls.insert(1, w3_pool_impl(layer_sizes, steps, b, lr, "autodiff", False, keys,
                                         x, y, min(cores, seeds), cleanup))
        finals: dict[str, np.ndarray] = {}
        results = measure("w3", [_recording(i, finals) for i in impls], repeats=repeats,
                          samples=n, flops=train_flops(layer_sizes) * n, log=log, skip=skip)
    return check_w3_losses(results, finals, log)


def _recording(impl: Impl, finals: dict[str, np.ndarray]) -> Impl:
    """``impl`` whose every run keeps its output (the seeds' final losses) in
    ``finals[impl.name]``."""
    def setup():
        run = impl.setup()

        def recorded():
            out = run()
            finals[impl.name] = np.asarray(out, np.float64).reshape(-1)
            return out

        return recorded

    return dataclasses.replace(impl, setup=setup)


#: W3's jaxnn rows train the same models (same keys, data and steps) by the same
#: arithmetic up to its order (hand-written backprop or autodiff, batched or not): their
#: seeds' final losses agree to float32 rounding grown over the steps (1e-7 measured at
#: full size, 2026-12-04).
W3_AGREE_RTOL = 1e-3


def check_w3_losses(results: Sequence[Result], finals: dict[str, np.ndarray],
                    log: Callable[[str], None] = print) -> list[Result]:
    """W3's check that every row did the work it is timed for (its rows restart from their
    initialization on each run, so :func:`check_training`'s before/after loss does not
    apply): every jaxnn row's final minibatch losses, one per seed, are finite and equal
    those of the first jaxnn row within ``W3_AGREE_RTOL`` (a jaxnn row that fails is a
    ``RuntimeError``); a peer's (own initial weights and batches) must be finite, or it is
    left out with ``skipped`` saying why."""
    timed = [r for r in results if r.times and r.name in finals]
    mine = [r for r in timed if r.family == "jaxnn"]
    ref = finals[mine[0].name] if mine else None
    for r in mine:
        got = finals[r.name]
        if not np.all(np.isfinite(got)):
            raise RuntimeError(f"bench: w3 {r.name} ended with non-finite losses {got}")
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=W3_AGREE_RTOL, atol=0):
            raise RuntimeError(f"bench: w3 {r.name} trained other models than {mine[0].name}: "
                               f"final losses {got} against {ref} (rtol {W3_AGREE_RTOL:g})")
    if len(mine) > 1:
        worst = max(float(np.max(np.abs(finals[r.name] / ref - 1))) for r in mine)
        log(f"  [w3] the {len(mine)} jaxnn rows trained the same models: final losses "
            f"{np.array2string(ref, precision=4)}, largest relative difference {worst:.1e}")
    out = []
    for r in results:
        if (r.times and r.name in finals and r.family != "jaxnn"
                and not np.all(np.isfinite(finals[r.name]))):
            why = f"did not train: final losses {finals[r.name]}"
            log(f"  [w3] {r.name} FAILED the training check, left out: {why}")
            r = dataclasses.replace(r, times=[], skipped=why)
        out.append(r)
    return out


def _w3_torch(torch, layer_sizes, batch, steps, seeds, lr, x, y) -> Impl:
    device, use_cuda = _torch_device(torch)
    # Converted before the implementations are set up, as for W1/W2 and as the JAX rows'
    # data exists before theirs: a copy of the data inside setup counted in its peak MB.
    xt = torch.from_numpy(np.array(x)).to(device)
    yt = torch.from_numpy(np.asarray(y).astype(np.int64)).to(device)

    def setup():
        torch.set_flush_denormal(True)
        loss_f = torch.nn.CrossEntropyLoss()

        def run():
            finals = []
            for s in range(seeds):
                torch.manual_seed(s)
                mods = []
                for k, (a, b) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:], strict=False)):
                    lin = torch.nn.Linear(a, b)
                    torch.nn.init.xavier_normal_(lin.weight)
                    torch.nn.init.zeros_(lin.bias)
                    mods += [lin] if k == len(layer_sizes) - 2 else [lin, torch.nn.Tanh()]
                model = torch.nn.Sequential(*mods).to(device)
                opt = torch.optim.SGD(model.parameters(), lr=lr)
                for _ in range(steps):
                    idx = torch.randint(0, xt.shape[0], (batch,), device=device)
                    opt.zero_grad(set_to_none=True)
                    loss = loss_f(model(xt[idx]), yt[idx])
                    loss.backward()
                    opt.step()
                finals.append(loss.detach())
            out = torch.stack(finals).cpu().numpy()  # waits for the device
            if use_cuda:
                torch.cuda.synchronize()
            return out

        return run

    return Impl("pytorch eager loop", setup, "torch")


# ----------------------------------------------------------------------------- report


def best_matmul_gflops(results: Sequence[Result]) -> float | None:
    rates = [r.gflops for r in results if r.workload == "matmul" and r.times]
    return max(rates) if rates else None


def _fmt(v: float, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table(results: Sequence[Result], best_gflops: float | None) -> str:
    """A Markdown table: throughput, median time, the row's time divided by the time of the
    workload's first jaxnn row (``time / ref`` > 1: that row is slower than the jaxnn
    reference; on a peer row it is how many times faster jaxnn is), compile time, peak
    memory, GFLOP/s and the fraction of the best matmul rate."""
    head = ("| workload | implementation | throughput | median ms | time / ref | compile s "
            "| peak MB | GFLOP/s | % best matmul |")
    lines = [head, "|" + "---|" * 9]
    ref: dict[str, float] = {}
    for r in results:
        if r.family == "jaxnn" and r.workload not in ref:
            ref[r.workload] = r.median_s
    for r in results:
        base = ref.get(r.workload)
        speed = r.median_s / base if base else float("nan")
        frac = 100.0 * r.gflops / best_gflops if best_gflops and r.flops else float("nan")
        lines.append(
            f"| {r.workload} | {r.name}{' (failed)' if r.skipped else ''} "
            f"| {_fmt(r.throughput, ',.0f')} {r.unit} "
            f"| {_fmt(r.median_s * 1e3, '.1f')} | {_fmt(speed, '.2f')} "
            f"| {_fmt(r.compile_s, '.2f')} | {_fmt(r.peak_bytes / 2**20, '.0f')} "
            f"| {_fmt(r.gflops, '.1f')} | {_fmt(frac, '.0f')} |"
        )
    return "\n".join(lines)


def summary(results: Sequence[Result], best_gflops: float | None) -> dict[str, Any]:
    """Ratios against the targets of issues 3 and 8."""
    out: dict[str, Any] = {"best_matmul_gflops": best_gflops, "backend": jax.default_backend()}
    by: dict[str, dict[str, Result]] = {}
    for r in results:
        by.setdefault(r.workload, {})[r.name] = r
    bp = {}
    for wl, rows in by.items():
        if wl.startswith("backprop"):
            auto = next((v for k, v in rows.items() if k.startswith("autodiff")), None)
            man = next((v for k, v in rows.items() if k.startswith("manual")), None)
            if auto is not None and man is not None and auto.times and man.times:
                bp[wl] = man.median_s / auto.median_s
    if bp:
        out["backprop_manual_over_autodiff"] = bp
    for wl in ("w1", "w2", "w3"):
        rows = [r for r in by.get(wl, {}).values() if r.times]
        if not rows:
            continue
        mine = [r for r in rows if r.family == "jaxnn"]
        if not mine:  # every jaxnn row left out (--skip): no ratio to give
            continue
        jx = max(mine, key=lambda r: r.throughput)
        entry = _ratios(jx, rows, best_gflops)
        one = [r for r in mine if r.processes == 1]
        if jx.processes > 1 and one:  # the peers run in one process: show that too
            entry["one_process"] = _ratios(max(one, key=lambda r: r.throughput), rows,
                                           best_gflops)
        for floor in (r for r in rows if r.family == "ref" and r.name.startswith("matmul floor")):
            # the most any implementation on these kernels could reach ("adam_floor": with
            # Adam's update, the workload's own, where the workload uses Adam)
            key = "adam_floor" if "Adam update" in floor.name else "floor"
            entry[key] = {"throughput": floor.throughput,
                          "best_jaxnn_fraction": jx.throughput / floor.throughput}
            for fam in ("flax", "torch"):
                if f"best_{fam}" in entry:
                    peer = next(r for r in rows if r.name == entry[f"best_{fam}"])
                    entry[key][f"over_best_{fam}"] = floor.throughput / peer.throughput
        vm = by[wl].get("jaxnn manual vmap over seeds")
        lp = by[wl].get("jaxnn manual loop over seeds")
        if vm is not None and lp is not None and vm.times and lp.times:
            # the depth-study engine (hand-written backprop, seeds vmapped) against the same
            # kernel in a Python loop over seeds: the issue's accelerator target
            entry["vmap_over_loop"] = vm.throughput / lp.throughput
        out[wl] = entry
    return out


def _ratios(jx: Result, rows: Sequence[Result], best_gflops: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"best_jaxnn": jx.name, "best_jaxnn_throughput": jx.throughput,
                             "processes": jx.processes}
    for fam in ("flax", "torch"):
        peers = [r for r in rows if r.family == fam]
        if peers:
            p = max(peers, key=lambda r: r.throughput)
            entry[f"over_best_{fam}"] = jx.throughput / p.throughput
            entry[f"best_{fam}"] = p.name
    if best_gflops:
        entry["fraction_of_best_matmul"] = jx.gflops / best_gflops
    return entry


FAMILY_NAMES = {"flax": "flax", "torch": "pytorch"}
VMAP_TARGET = 3.0  # W3 on an accelerator: the vmapped engine against a loop over seeds
TARGETS = {"w1": {"flax": 1.5, "torch": 1.5}, "w2": {"flax": 1.4, "torch": 1.5},
           "w3": {"flax": 1.2, "torch": 1.2}}


def summary_text(s: dict[str, Any]) -> str:
    lines = []
    if s.get("best_matmul_gflops"):
        lines.append(f"best float32 matmul: {s['best_matmul_gflops']:.1f} GFLOP/s")
    for wl, ratio in s.get("backprop_manual_over_autodiff", {}).items():
        ok = "met" if ratio <= 1.2 else "MISSED"
        lines.append(f"{wl}: manual/autodiff time = {ratio:.2f} (target <= 1.2: {ok})")
    for wl in ("w1", "w2", "w3"):
        if wl not in s:
            continue
        lines.append(_ratio_line(wl, f"{wl}: best jaxnn", s[wl]))
        if "one_process" in s[wl]:
            lines.append(_ratio_line(wl, f"{wl}: best one-process jaxnn", s[wl]["one_process"]))
        if "vmap_over_loop" in s[wl]:
            r = s[wl]["vmap_over_loop"]
            target = (f"target >= {VMAP_TARGET:g} on a GPU/TPU: "
                      f"{'met' if r >= VMAP_TARGET else 'MISSED'}"
                      if s.get("backend", "cpu") != "cpu" else
                      f"the target >= {VMAP_TARGET:g} is for a GPU/TPU")
            lines.append(f"{wl}: vmap over seeds = {r:.2f}x the loop over seeds (jaxnn manual; "
                         f"{target})")
        for key, what in (("floor", "matmul floor"),
                          ("adam_floor", "matmul floor with Adam's update")):
            if key not in s[wl]:
                continue
            f = s[wl][key]
            ceil = [f"{f[f'over_best_{fam}']:.2f}x {s[wl][f'best_{fam}']}"
                    for fam in ("flax", "torch") if f"over_best_{fam}" in f]
            lines.append(
                f"{wl}: {what} {f['throughput']:,.0f} samples/s; best jaxnn at "
                f"{100 * f['best_jaxnn_fraction']:.0f}% of it"
                + (f"; the floor itself is {', '.join(ceil)} (the most these kernels allow)"
                   if ceil else ""))
    return "\n".join(lines)


def _ratio_line(wl: str, label: str, e: dict[str, Any]) -> str:
    parts = [f"{label} = {e['best_jaxnn']}"]
    for fam in ("flax", "torch"):
        target = TARGETS[wl][fam]
        if f"over_best_{fam}" in e:
            ratio = e[f"over_best_{fam}"]
            ok = "met" if ratio >= target else "MISSED"
            parts.append(f"{ratio:.2f}x {e[f'best_{fam}']} (target >= {target}: {ok})")
        else:  # not installed, or every row of that family failed: say so, not nothing
            parts.append(f"no {FAMILY_NAMES[fam]} row (target >= {target}: not measured)")
    if "fraction_of_best_matmul" in e:
        frac = e["fraction_of_best_matmul"]
        extra = f" (target >= 70%: {'met' if frac >= 0.7 else 'MISSED'})" if wl == "w2" else ""
        parts.append(f"{100 * frac:.0f}% of best matmul{extra}")
    elif wl == "w2":  # the rate comes from the matmul section of the same run
        parts.append("no matmul section in this run (target >= 70%: not measured)")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- driver


def _check_arguments(workloads: Sequence[str], repeats: int) -> None:
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"bench.run: unknown workloads {unknown!r}; allowed: {list(WORKLOADS)}")
    if isinstance(repeats, bool) or not isinstance(repeats, int):
        raise TypeError(f"bench.run: repeats must be an integer, got {repeats!r}")
    if repeats < 1:
        raise ValueError(f"bench.run: repeats must be >= 1, got {repeats!r}")


def run(workloads: Sequence[str], *, quick: bool = False, repeats: int = 5,
        log: Callable[[str], None] = print, sizes: Sizes | None = None,
        skip: Sequence[str] = (),
        on_section: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the selected sections and return ``{"environment", "results", "summary",
    "table"}`` (results as dicts). ``sizes`` overrides the problem sizes (tests); ``skip``
    leaves out the rows whose name contains one of these strings (case-insensitive);
    ``on_section`` is called with that dict, as it stands, after each section but the last
    (``--json`` writes it, so a run cut off by a time limit keeps its finished sections;
    the log prints each section's table as well)."""
    _check_arguments(workloads, repeats)
    skip = RowFilter(tuple(p.strip().lower() for p in skip if p.strip()))
    if sizes is None:
        sizes = QUICK if quick else Sizes()
    env = environment()
    env.update(quick=quick, repeats=repeats, skip=list(skip.patterns))
    log(header(env))
    x, y = synthetic_mnist(jax.random.key(0), sizes.n_train, sizes.in_dim, sizes.classes)
    results: list[Result] = []
    selected = [wl for wl in WORKLOADS if wl in workloads]  # matmul first: the reference rate
    for k, wl in enumerate(selected):
        log(f"== {wl}")
        if wl == "matmul":
            section = section_matmul(sizes, repeats, log, skip)
        elif wl == "backprop":
            section = section_backprop(sizes, x, y, repeats, log, skip)
        elif wl == "w1":
            section = _mlp_workload("w1", sizes, x, y, sizes.w1_hidden, "sgd", 0.01,
                                    repeats, log, skip)
        elif wl == "w2":
            section = _mlp_workload("w2", sizes, x, y, sizes.w2_hidden, "adam", 1e-3,
                                    repeats, log, skip)
        else:
            section = section_w3(sizes, x, y, repeats, log, skip)
        results += section
        if k < len(selected) - 1:  # the finished sections, before the next one starts
            best = best_matmul_gflops(results)
            log("")
            log(table(section, best))
            text = summary_text(summary(section, best))
            if text:
                log(text)
            if on_section is not None:
                on_section(_output(env, results))
    unmatched = [p for p in skip.patterns if p not in skip.used]
    out = _output(env, results)
    log("")
    log(out["table"])
    log("")
    log(summary_text(out["summary"]))
    for p in unmatched:  # a misspelt --skip ran the row it meant to leave out
        log(f"warning: --skip {p!r} matched no implementation of this run")
    return out


def _output(env: dict[str, Any], results: Sequence[Result]) -> dict[str, Any]:
    best = best_matmul_gflops(results)
    return {"environment": env, "results": [r.to_dict() for r in results],
            "summary": summary(results, best), "table": table(results, best)}


def header(env: dict[str, Any]) -> str:
    return (
        f"# jaxnn bench {env['date']} on {env['host']}\n"
        f"# device {env['device']} x{env['device_count']} (backend {env['backend']}); "
        f"CPU {env['cpu_model']}, {env['cpu_count']} cores ({env['cpu_affinity']} usable)\n"
        f"# jax {env['jax']}, jaxlib {env['jaxlib']}, flax {env['flax']}, "
        f"optax {env['optax']}, numpy {env['numpy']}, torch {env['torch'] or 'not installed'}"
        f"{_threads(env)}; x64 {'ON' if env.get('jax_enable_x64') else 'off'}\n"
        f"# quick={env['quick']}, repeats={env['repeats']} (median after one warm-up run)"
    )


def _threads(env: dict[str, Any]) -> str:
    t = env.get("torch_threads")
    return f" ({t} threads)" if t else ""


def _json_safe(v: Any) -> Any:
    """``v`` with NaN and infinities as None: strict JSON has no token for them (a failed
    row has no median, throughput or compile time)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


def _json_path_error(path: str) -> str | None:
    """Why ``--json path`` could not be written, or None; checked before the run."""
    if not path:
        return "give a file name"
    if os.path.isdir(path):
        return "is a directory; give a file name"
    if os.path.lexists(path) and not os.path.islink(path) and not os.path.isfile(path):
        return "is not a regular file (it would be replaced); give a file name"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return "the directory does not exist"
    try:  # what write_json does: a temporary file beside the target
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".bench-probe.")
    except OSError as e:
        return f"cannot create a file in {folder!r}: {e.strerror or e}"
    os.close(fd)
    os.unlink(probe)
    return None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (NaN/infinity as null) atomically, as jaxnn writes every
    file (:func:`jaxnn._atomic.write_text`: a temporary file beside ``path``, renamed over
    it, removed again if anything fails)."""
    write_text(path, json.dumps(_json_safe(obj), indent=2, default=str, allow_nan=False))


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--quick", action="store_true", help="tiny CI-sized problems")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per implementation (median reported; default 5)")
    parser.add_argument("--json", default=None,
                        help="write the results to this file (strict JSON, replaced atomically; "
                             "rewritten after each section, so a run cut off keeps what it "
                             "finished)")
    parser.add_argument("--skip", default="", metavar="TEXT[,TEXT...]",
                        help="leave out the rows whose name contains one of these "
                             "comma-separated texts (case-insensitive), e.g. "
                             "--skip 'autodiff vmap,pytorch compile'")
    args = parser.parse_args(argv)
    workloads = [w.strip().lower() for w in args.workloads.split(",") if w.strip()]
    if not workloads:
        print(f"error: --workloads {args.workloads!r}: no workload named; allowed: "
              f"{','.join(WORKLOADS)}", file=sys.stderr)
        return 2
    why = None if args.json is None else _json_path_error(args.json)
    if why:  # before the run: it takes minutes, and its results would be lost
        print(f"error: --json {args.json!r}: {why}", file=sys.stderr)
        return 2
    try:
        _check_arguments(workloads, args.repeats)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Only the arguments are checked above: a ValueError from inside a run is a bug, and
    # its traceback is what is needed to find it (it was printed as a usage error, exit 2).
    class _Unwritable(Exception):
        pass

    def save(out: dict[str, Any]) -> None:
        if args.json is not None:
            try:
                write_json(args.json, out)
            except OSError as e:  # only this: any other OSError of a run is a bug
                raise _Unwritable(e.strerror or str(e)) from e

    try:
        out = run(workloads, quick=args.quick, repeats=args.repeats,
                  log=lambda s: print(s, flush=True), skip=args.skip.split(","),
                  on_section=save)
        save(out)
    except _Unwritable as e:
        print(f"error: cannot write --json {args.json!r}: {e}", file=sys.stderr)
        return 2
    return 0
