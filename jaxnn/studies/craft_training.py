"""Training dynamics: learning-rate schedules, batch size, optimizers on data, random search.

Contract: each ``run_*`` takes a config mapping shaped like its ``*_DEFAULTS`` and an
optional workdir, trains MLPs with :func:`jaxnn.studies.craft_engine.make_run`, writes a PNG
figure and ``summary.md`` into the workdir (when given) and returns a plain dict of the
numbers it reports.

* :func:`run_schedules`: the same model and optimizer under several schedules built with
  :mod:`jaxnn.optim.schedules` for the same number of updates; a large constant rate
  (``constant_peak``) against the same peak reached after a linear warm-up. A run
  *diverges* when its training-batch loss becomes non-finite or exceeds
  ``divergence_factor`` times its first loss; the update where that happens is reported.
* :func:`run_batch_size`: full-batch gradient descent vs SGD with batch 1 vs mini-batches,
  for the same number of epochs; every epoch uses every row (the ``n % batch`` rows left
  over form one smaller last batch). The training of each epoch is timed after a warm-up
  compile, the full-training-set evaluation after it is not; loss against updates and
  against training seconds, plus the fraction of updates that raise the loss
  (:func:`~jaxnn.studies.craft_common.increase_fraction`).
* :func:`run_optimizers`: one MLP (He init) trained by each optimizer, seeds vmapped.
* :func:`run_search`: random search of the learning rate and the weight decay of SGD,
  both log-uniform; trials run ``vmap``-ed in batches (the rates are traced arrays) and are
  ranked by validation accuracy.

References: Smith, "Cyclical Learning Rates", WACV 2017; Goyal et al., "Accurate, Large
Minibatch SGD", 2017 (warm-up); Loshchilov & Hutter, "SGDR", ICLR 2017; Bergstra & Bengio,
"Random Search for Hyper-Parameter Optimization", JMLR 2012.
"""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import mlp, optim
from jaxnn.optim import schedules as sch
from jaxnn.studies.craft_common import (
    ConfigError,
    check,
    check_distinct,
    divergence_step,
    increase_fraction,
    is_int,
    is_number,
    markdown_table,
    pyplot,
    save_figure,
    write_summary,
)
from jaxnn.studies.craft_engine import init_stacked, load_data, make_evaluate, make_run, subset
from jaxnn.studies.craft_regularization import _hidden, _int, _pos, _prepare

__all__ = [
    "BATCH_SIZE_DEFAULTS",
    "OPTIMIZERS_DEFAULTS",
    "SCHEDULES",
    "SCHEDULES_DEFAULTS",
    "SEARCH_DEFAULTS",
    "build_schedule",
    "divergence_step",
    "run_batch_size",
    "run_optimizers",
    "run_schedules",
    "rank_trials",
    "run_search",
    "smoothing_window",
]

_DATA = {"name": "auto", "data_dir": "", "n_train": 0, "n_test": 0}

SCHEDULES_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "seeds": 10,
    "hidden": [100, 100, 100, 100],
    "epochs": 10,
    "batch_size": 64,
    "optimizer": "momentum",
    "base_lr": 0.05,
    "peak_lr": 0.2,
    "warmup_fraction": 0.3,
    "cycles": 2,
    "divergence_factor": 3.0,
    "schedules": ["constant", "constant_peak", "step", "exponential", "triangular",
                  "triangular2", "warmup_cosine", "onecycle"],
}

BATCH_SIZE_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "n_train": 1000,
    "hidden": [100, 100],
    "epochs": 20,
    "learning_rate": 0.05,
    "batch_sizes": [0, 1, 32],
}

OPTIMIZERS_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "seeds": 2,
    "hidden": [100, 100, 100, 100],
    "epochs": 10,
    "batch_size": 128,
    "divergence_factor": 3.0,
    "optimizers": {
        "SGD": {"optimizer": "sgd", "learning_rate": 0.01, "kwargs": {}},
        "Momentum": {"optimizer": "momentum", "learning_rate": 0.01, "kwargs": {}},
        "Nesterov": {"optimizer": "nesterov", "learning_rate": 0.01, "kwargs": {}},
        "AdaGrad": {"optimizer": "adagrad", "learning_rate": 0.01, "kwargs": {}},
        "RMSProp": {"optimizer": "rmsprop", "learning_rate": 0.001, "kwargs": {}},
        "Adam": {"optimizer": "adam", "learning_rate": 0.001, "kwargs": {}},
        "AdamW": {"optimizer": "adamw", "learning_rate": 0.001,
                  "kwargs": {"weight_decay": 0.0001}},
    },
}

SEARCH_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "n_train": 500,
    "n_val": 300,
    "hidden": [100, 100, 100, 100, 100],
    "epochs": 50,
    "batch_size": 100,
    "trials": 48,
    "trials_per_batch": 16,
    "lr_range": [1e-6, 1e-2],
    "weight_decay_range": [1e-8, 1e-4],
    "top": 10,
}

#: Names accepted in ``schedules`` of :data:`SCHEDULES_DEFAULTS`.
SCHEDULES = ("constant", "constant_peak", "step", "exponential", "triangular", "triangular2",
             "warmup_cosine", "onecycle")


def build_schedule(name: str, *, base_lr: float, peak_lr: float, total_steps: int,
                   warmup_fraction: float = 0.1, cycles: int = 2) -> sch.Schedule:
    """One of :data:`SCHEDULES` over ``total_steps`` updates.

    ``constant`` runs at ``base_lr``; ``constant_peak`` at ``peak_lr``; ``step`` divides
    ``base_lr`` by 10 at 1/2 and again at 3/4 of the run; ``exponential`` decays ``base_lr``
    100-fold over the run; ``triangular``/``triangular2`` cycle between ``base_lr`` and
    ``peak_lr`` ``cycles`` times; ``warmup_cosine`` rises linearly from 0 to ``peak_lr``
    over ``warmup_fraction`` of the run, then decays to 0 by a cosine; ``onecycle`` is the
    cosine one-cycle policy peaking at ``peak_lr`` (rise over 30% of the run).
    """
    T = total_steps
    if name == "constant":
        return sch.constant_schedule(base_lr)
    if name == "constant_peak":
        return sch.constant_schedule(peak_lr)
    if name == "step":
        scales: dict[int, float] = {}
        for b in (T // 2, (3 * T) // 4):  # in a run of 1-2 updates both drops fall together
            scales[b] = scales.get(b, 1.0) * 0.1
        return sch.piecewise_constant_schedule(base_lr, scales)
    if name == "exponential":
        return sch.exponential_decay(base_lr, transition_steps=T, decay_rate=0.01)
    if name in ("triangular", "triangular2"):
        return sch.cyclic_schedule(base_lr, peak_lr, step_size=max(T // (2 * cycles), 1),
                                   mode=name)
    if name == "warmup_cosine":
        return sch.warmup_cosine_decay_schedule(0.0, peak_lr, max(int(warmup_fraction * T), 1),
                                                T)
    if name == "onecycle":
        return sch.cosine_onecycle_schedule(T, peak_lr)
    raise ConfigError(f"schedules: got {name!r}; allowed: {', '.join(SCHEDULES)}")


def smoothing_window(updates: int) -> int:
    """Moving-mean window for a loss curve of ``updates`` points: ``min(20, max(1, T // 5))``.

    Twenty updates keep a long noisy curve readable; a short run gets at most a fifth of its
    length (a window as long as the run would leave a single point), down to 1 (no smoothing).
    """
    return min(20, max(1, updates // 5))


def _plot_lines(ax, curves: Mapping[str, Any], xlabel: str, ylabel: str, log: bool = False,
                first: int = 1):
    """Each curve against ``first, first + 1, ...`` (a ``w``-point trailing mean: ``w``)."""
    for name, c in curves.items():
        c = np.asarray(c, dtype=np.float64)
        ax.plot(np.arange(first, first + len(c)), c, lw=0.9, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)


def _xy(config: Mapping[str, Any], key: jax.Array):
    ds = load_data(config["data"], key)
    return ds, jnp.asarray(ds.x_train), jnp.asarray(ds.y_train), (
        jnp.asarray(ds.x_test), jnp.asarray(ds.y_test))


# ----------------------------------------------------------------------------- schedules


def run_schedules(config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
                  ) -> dict[str, Any]:
    """Compare learning-rate schedules on one model, ``seeds`` seeds vmapped per schedule.

    Every schedule trains the same ``seeds`` initializations with the same data orders (seed
    ``i`` draws its weights and its shuffles from its own keys), so the schedules differ only
    in their learning rates. Whether a large rate blows up depends on the draw, so divergence
    is counted over seeds.

    Returns:
      ``{"learning_rate": {name: (T,)}, "loss": {name: (seeds, T)},
      "test_accuracy": {name: float}, "test_accuracy_std": {name: float},
      "test_accuracies": {name: (seeds,)}, "diverged_at": {name: [int | None] * seeds},
      "diverged": {name: int}, "final_loss": {name: float}, "seeds": seeds, "data": name,
      "total_steps": T, "smoothing_window": w}``. ``diverged`` counts the seeds whose run
      diverged; ``test_accuracy`` is the mean over seeds (``_std`` its spread);
      ``final_loss`` is the median over seeds of the mean training-batch loss of the last
      epoch (a non-finite one counts as +inf); the figure plots the median loss over seeds
      as a ``w``-update moving mean (:func:`smoothing_window`).
    """
    seeds = _int(config, "seeds", 1, 64)
    epochs = _int(config, "epochs", 1)
    batch = _int(config, "batch_size", 1)
    base, peak = _pos(config, "base_lr"), _pos(config, "peak_lr")
    wf = _pos(config, "warmup_fraction")
    check(wf < 1, "warmup_fraction", wf, "a number in (0, 1)")
    cycles = _int(config, "cycles", 1)
    factor = _pos(config, "divergence_factor")
    check(factor > 1, "divergence_factor", factor, "a number > 1 (x the first loss)")
    names = config["schedules"]
    check(isinstance(names, list) and names and all(n in SCHEDULES for n in names)
          and len(set(names)) == len(names),
          "schedules", names, "a non-empty list of distinct names from " + ", ".join(SCHEDULES))
    hidden = _hidden(config)
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_init, k_run = jax.random.split(key, 3)
    ds, x, y, test = _xy(config, k_data)
    cfg = mlp.MLPConfig(layer_sizes=(x.shape[1], *hidden, ds.num_classes))
    total = epochs * max(len(x) // batch, 1)
    params, state = init_stacked([cfg] * seeds, jax.random.split(k_init, seeds))
    keys = jax.random.split(k_run, seeds)
    res: dict[str, Any] = {"learning_rate": {}, "loss": {}, "test_accuracy": {},
                           "test_accuracy_std": {}, "test_accuracies": {}, "diverged_at": {},
                           "diverged": {}, "final_loss": {}, "seeds": seeds, "data": ds.name,
                           "total_steps": total, "smoothing_window": smoothing_window(total)}
    for name in names:
        try:
            s = build_schedule(name, base_lr=base, peak_lr=peak, total_steps=total,
                               warmup_fraction=wf, cycles=cycles)
        except ValueError as e:  # e.g. a warm-up as long as a run of one update
            raise ConfigError(
                f"schedules: {name} over {total} updates ({epochs} epochs of "
                f"{max(len(x) // batch, 1)}): {e}"
            ) from None
        try:
            make_tx = (lambda sc: lambda _: optim.get(config["optimizer"], sc))(s)
            make_tx(None)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"optimizer: {e}") from None
        run = make_run(cfg, make_tx, batch_size=batch, epochs=epochs, x=x, y=y,
                       eval_sets={"test": test})
        _, c = jax.jit(jax.vmap(run))(params, state, keys, None)
        loss = np.asarray(c["loss"]).reshape(seeds, -1)
        acc = np.asarray(c["test_accuracy"])[:, -1]
        last = np.asarray(c["loss"], dtype=np.float64)[:, -1].mean(axis=-1)
        res["loss"][name] = loss
        res["learning_rate"][name] = np.asarray(s(jnp.arange(total)))
        res["test_accuracies"][name] = acc
        res["test_accuracy"][name] = float(acc.mean())
        res["test_accuracy_std"][name] = float(acc.std())
        res["diverged_at"][name] = [divergence_step(lo, factor) for lo in loss]
        res["diverged"][name] = sum(d is not None for d in res["diverged_at"][name])
        res["final_loss"][name] = float(np.median(np.where(np.isfinite(last), last, np.inf)))
    out = _prepare(workdir)
    if out is not None:
        plt = pyplot()
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
        _plot_lines(a1, res["learning_rate"], "update", "learning rate")
        shown = {k: np.median(np.clip(np.nan_to_num(v, nan=1e3, posinf=1e3), 1e-4, 1e3), axis=0)
                 for k, v in res["loss"].items()}
        w = smoothing_window(total)
        smooth = {k: np.convolve(v, np.ones(w) / w, mode="valid") for k, v in shown.items()}
        _plot_lines(a2, smooth, "update",
                    f"training loss, median of {seeds} seeds\n"  # one line ran off the figure
                    + ("(per update)" if w == 1 else f"({w}-update moving mean)"), log=True,
                    first=w)  # the mean of updates 1..w belongs at update w
        a1.legend(fontsize=8)
        a1.set_title(f"schedules ({config['optimizer']}, {total} updates)")
        a2.set_title(f"loss ({ds.name})")
        fig.tight_layout()
        save_figure(fig, out / "schedules.png", dpi=110)
        plt.close(fig)
        def diverged(n: str) -> str:
            at = sorted(d for d in res["diverged_at"][n] if d is not None)
            # diverged_at is 0-based; updates are counted from 1 here, as on the figure.
            return f"{len(at)}/{seeds}" + (f" (first at update {at[0] + 1})" if at else "")

        rows = [[n, diverged(n), res["final_loss"][n], res["test_accuracy"][n],
                 res["test_accuracy_std"][n]] for n in names]
        body = (f"Data: {ds.name}; MLP {cfg.layer_sizes}; {config['optimizer']}, batch {batch}, "
                f"{epochs} epochs = {total} updates; base lr {base:g}, peak lr {peak:g}, "
                f"warm-up {wf:g} of the run; {seeds} seeds vmapped per schedule (the same "
                f"initializations and data orders for every schedule). Diverged: seeds whose "
                f"loss became non-finite or rose above {factor:g}x their first loss. Train "
                f"loss: median over seeds of the last epoch's mean; test accuracy: mean over "
                f"seeds.\n\n"
                + markdown_table(["schedule", "diverged", "last-epoch train loss (median)",
                                  "test acc", "± std"], rows)
                + "\nFigure: `schedules.png`.\n")
        write_summary(out, "Learning-rate schedules", body)
    return res


# ----------------------------------------------------------------------------- batch size


def _batch_label(batch: int, n: int) -> str:
    """The run label of ``batch_sizes`` entry ``batch`` on ``n`` rows (0 or ``>= n``: full)."""
    bs = n if batch == 0 or batch >= n else batch
    return "full batch" if bs == n else ("SGD (batch 1)" if bs == 1 else f"batch {bs}")


def run_batch_size(config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
                   ) -> dict[str, Any]:
    """Full batch (``0``) vs SGD (``1``) vs mini-batches, same epochs, same learning rate.

    Every epoch uses every training row once: when ``n % batch`` is not 0 the rows left over
    form one smaller last batch (so an epoch has ``ceil(n / batch)`` updates). Each epoch's
    training is timed on the host after a warm-up compile; the full-training-set loss is
    evaluated after the clock stops.

    Returns:
      ``{"runs": {label: {"batch_size", "updates", "updates_per_epoch", "last_batch",
      "seconds", "seconds_per_epoch", "final_loss", "increase_fraction",
      "batch_loss": (updates,), "epoch_loss": (epochs,), "epoch_time": (epochs,)}},
      "data": name, "n_train": n}``; ``last_batch`` is the size of each epoch's last
      batch, ``epoch_loss`` the full training-set loss after each epoch, ``epoch_time`` the
      cumulative training seconds (compile and evaluation excluded) and ``seconds`` its
      total.

    Raises:
      ConfigError: bad values, or two entries of ``batch_sizes`` giving the same run (e.g.
        0 and a size >= the training rows are both the full batch).
    """
    epochs = _int(config, "epochs", 1)
    lr = _pos(config, "learning_rate")
    sizes = config["batch_sizes"]
    check(isinstance(sizes, list) and sizes and all(is_int(b) and b >= 0 for b in sizes),
          "batch_sizes", sizes, "a non-empty list of integers >= 0 (0: full batch)")
    hidden = _hidden(config)
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_sub, k_init, k_run = jax.random.split(key, 4)
    ds = load_data(config["data"], k_data)
    n = _int(config, "n_train", 1)
    check(n <= len(ds.x_train), "n_train", n,
          f"at most the {len(ds.x_train)} training rows of {ds.name}")
    check_distinct("batch_sizes", [(_batch_label(b, n), b) for b in sizes],
                   f"sizes giving distinct runs (0 and every size >= {n}, the training rows, "
                   "are the full batch)")
    x, y = subset(ds.x_train, ds.y_train, n, k_sub)
    cfg = mlp.MLPConfig(layer_sizes=(x.shape[1], *hidden, ds.num_classes))
    params, state = mlp.init(cfg, k_init)
    evaluate = make_evaluate(cfg)
    runs: dict[str, dict[str, Any]] = {}
    for b in sizes:
        bs = n if b == 0 or b >= n else int(b)
        label = _batch_label(b, n)
        # One epoch per call, training only: the host clock measures the training of each
        # epoch, and the full-set evaluation runs afterwards, off the clock.
        run = jax.jit(make_run(cfg, lambda _: optim.sgd(lr), batch_size=bs, epochs=1, x=x, y=y,
                               eval_sets={}, drop_remainder=False))
        warm, _ = jax.block_until_ready(run(params, state, k_run, None))  # compile
        jax.block_until_ready(evaluate(warm, x, y))
        batch_loss, epoch_loss, times = [], [], []
        elapsed = 0.0
        p, m = params, state
        for e in range(epochs):
            t0 = time.perf_counter()
            st, c = run(p, m, jax.random.fold_in(k_run, e), None)
            jax.block_until_ready((st, c))
            elapsed += time.perf_counter() - t0
            # The optimizer (plain SGD) has no state, so restarting it each epoch is exact.
            p, m = st.params, st.model_state
            batch_loss.append(np.asarray(c["loss"]).ravel())
            epoch_loss.append(float(evaluate(st, x, y)["loss"]))
            times.append(elapsed)
        bl = np.concatenate(batch_loss)
        per_epoch = -(-n // bs)
        runs[label] = {"batch_size": bs, "updates": len(bl), "updates_per_epoch": per_epoch,
                       "last_batch": n - (per_epoch - 1) * bs,
                       "seconds": elapsed, "seconds_per_epoch": elapsed / epochs,
                       "final_loss": epoch_loss[-1], "increase_fraction": increase_fraction(bl),
                       "batch_loss": bl, "epoch_loss": np.asarray(epoch_loss),
                       "epoch_time": np.asarray(times)}
    res = {"runs": runs, "data": ds.name, "n_train": n}
    out = _prepare(workdir)
    if out is not None:
        plt = pyplot()
        fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.2))
        for label, r in runs.items():
            ups = np.arange(1, epochs + 1) * r["updates_per_epoch"]
            a1.plot(np.arange(1, r["updates"] + 1), r["batch_loss"], lw=0.5, alpha=0.7,
                    label=label)
            a2.plot(ups, r["epoch_loss"], "o-", ms=3, label=label)
            a3.plot(r["epoch_time"], r["epoch_loss"], "o-", ms=3, label=label)
        a1.set(xscale="log", yscale="log", xlabel="update", ylabel="training-batch loss",
               title="loss per update (batch)")
        a2.set(xscale="log", yscale="log", xlabel="update",
               ylabel="full training loss", title="loss vs updates (after each epoch)")
        a3.set(yscale="log", xlabel="training seconds (compile and evaluation excluded)",
               ylabel="full training loss", title="loss vs time")
        for a in (a1, a2, a3):
            a.grid(alpha=0.3)
        a2.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, out / "batch_size.png", dpi=110)
        plt.close(fig)
        rows = [[k, r["batch_size"], r["updates"],
                 str(r["last_batch"]) if r["last_batch"] != r["batch_size"] else "-",
                 r["final_loss"], r["seconds_per_epoch"], r["increase_fraction"]]
                for k, r in runs.items()]
        body = (f"Data: {ds.name}, {n} training rows; MLP {cfg.layer_sizes}; plain SGD lr "
                f"{lr:g}; {epochs} epochs each, every epoch over all {n} rows (when the batch "
                "does not divide them, the rows left over form one smaller last batch, its "
                "size in the 'last batch' column). The 'updates that raise the loss' column is "
                "the fraction of updates whose training-batch loss is above the previous one "
                "(0: monotone). Seconds are this machine's training time per epoch, compile "
                "and the full-training-set evaluation excluded.\n\n"
                + markdown_table(["run", "batch", "updates", "last batch", "final train loss",
                                  "train s/epoch", "updates that raise the loss"], rows)
                + "\nFigure: `batch_size.png`.\n")
        write_summary(out, "Batch size", body)
    return res


# ----------------------------------------------------------------------------- optimizers


def _tx_from_row(key: str, row: Mapping[str, Any]) -> Callable[[Any], optax.GradientTransformation]:
    check(isinstance(row, Mapping) and "optimizer" in row and "learning_rate" in row, key, row,
          "a mapping with optimizer, learning_rate and optional kwargs")
    unknown = set(row) - {"optimizer", "learning_rate", "kwargs"}
    check(not unknown, key, row, "keys optimizer, learning_rate, kwargs")
    lr = row["learning_rate"]
    check(is_number(lr) and math.isfinite(lr) and lr > 0, f"{key}.learning_rate", lr,
          "a number > 0")
    kwargs = row.get("kwargs") or {}
    check(isinstance(kwargs, Mapping), f"{key}.kwargs", kwargs, "a mapping of keyword arguments")
    kwargs = dict(kwargs)
    try:
        optim.get(row["optimizer"], float(lr), **kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{key}: {e}") from None
    return lambda _: optim.get(row["optimizer"], float(lr), **kwargs)


def run_optimizers(config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
                   ) -> dict[str, Any]:
    """Each optimizer on the same MLP and data, ``seeds`` seeds vmapped per optimizer.

    A seed *diverges* when its training-batch loss becomes non-finite or rises above
    ``divergence_factor`` times its first loss (as in :func:`run_schedules`); ``diverged_at``
    is the first such update (0-based) per seed, ``diverged`` how many seeds did.

    Returns:
      ``{"loss": {name: (seeds, updates)}, "final": {name: {"train_loss", "test_accuracy",
      "test_accuracy_std", "diverged", "diverged_at"}}, "data": name}``; ``train_loss`` is
      the mean training-batch loss of the last epoch, averaged over seeds (+inf when a seed's
      loss became non-finite: a nan would hide that).
    """
    seeds = _int(config, "seeds", 1, 64)
    epochs = _int(config, "epochs", 1)
    batch = _int(config, "batch_size", 1)
    factor = _pos(config, "divergence_factor")
    check(factor > 1, "divergence_factor", factor, "a number > 1 (x the first loss)")
    hidden = _hidden(config)
    table = config["optimizers"]
    check(isinstance(table, Mapping) and table, "optimizers", table, "a non-empty table")
    check_distinct("optimizers", [(k, k) for k in table], "distinct names")
    makers = {k: _tx_from_row(f"optimizers.{k}", r) for k, r in table.items()}
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_init, k_run = jax.random.split(key, 3)
    ds, x, y, test = _xy(config, k_data)
    cfg = mlp.MLPConfig(layer_sizes=(x.shape[1], *hidden, ds.num_classes),
                        initializer="he_normal")
    params, state = init_stacked([cfg] * seeds, jax.random.split(k_init, seeds))
    keys = jax.random.split(k_run, seeds)
    loss, final = {}, {}
    for name, make_tx in makers.items():
        run = make_run(cfg, make_tx, batch_size=batch, epochs=epochs, x=x, y=y,
                       eval_sets={"test": test})
        _, c = jax.jit(jax.vmap(run))(params, state, keys, None)
        lo = np.asarray(c["loss"]).reshape(seeds, -1)
        acc = np.asarray(c["test_accuracy"])[:, -1]
        loss[name] = lo
        at = [divergence_step(row, factor) for row in lo]
        last = np.asarray(c["loss"], dtype=np.float64)[:, -1].mean(axis=-1)
        final[name] = {"train_loss": float(np.where(np.isfinite(last), last, np.inf).mean()),
                       "test_accuracy": float(acc.mean()), "test_accuracy_std": float(acc.std()),
                       "diverged": sum(d is not None for d in at), "diverged_at": at}
    res = {"loss": loss, "final": final, "data": ds.name}
    out = _prepare(workdir)
    if out is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.2))
        w = max(lo.shape[1] // 50, 1)
        for name, lo in loss.items():
            m = np.convolve(lo.mean(0), np.ones(w) / w, mode="valid")
            k = final[name]["diverged"]
            ax.plot(np.arange(w, w + len(m)), m, lw=1,  # mean of updates 1..w at w
                    label=name + (f" (diverged {k}/{seeds})" if k else ""))
        ax.set(xlabel="update", ylabel=f"training loss ({w}-update mean, seed mean)",
               yscale="log", title=f"optimizers on {ds.name}, MLP {cfg.layer_sizes}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, out / "optimizers.png", dpi=110)
        plt.close(fig)
        def diverged(v: Mapping[str, Any]) -> str:
            at = sorted(d for d in v["diverged_at"] if d is not None)
            # diverged_at is 0-based; updates are counted from 1 here, as on the figure.
            return f"{len(at)}/{seeds}" + (f" (first at update {at[0] + 1})" if at else "")

        rows = [[k, table[k]["optimizer"], float(table[k]["learning_rate"]), diverged(v),
                 v["train_loss"], v["test_accuracy"], v["test_accuracy_std"]]
                for k, v in final.items()]
        body = (f"Data: {ds.name}; MLP {cfg.layer_sizes} (He init); batch {batch}; {epochs} "
                f"epochs; {seeds} seeds vmapped per optimizer (the same initializations and "
                "data orders for every optimizer). Diverged: seeds whose training loss became "
                f"non-finite or rose above {factor:g}x their first loss. Train loss: mean over "
                "seeds of the last epoch's mean (inf when a seed's loss became non-finite); "
                "test accuracy: mean over seeds.\n\n"
                + markdown_table(["name", "optimizer", "lr", "diverged", "last-epoch train loss",
                                  "test acc", "± std"], rows)
                + "\nFigure: `optimizers.png`.\n")
        write_summary(out, "Optimizers on a data set", body)
    return res


# ----------------------------------------------------------------------------- search


def _range(config: Mapping[str, Any], key: str) -> tuple[float, float]:
    r = config[key]
    check(isinstance(r, list) and len(r) == 2
          and all(is_number(v) and math.isfinite(v) and v > 0 for v in r) and r[0] <= r[1],
          key, r, "[low, high] with 0 < low <= high")
    return float(r[0]), float(r[1])


def rank_trials(val_accuracy: Any, val_loss: Any) -> np.ndarray:
    """Trial indices, best first: highest validation accuracy, ties broken by the lower
    validation loss; a trial whose loss is not finite (it diverged) comes after every
    finite one of the same accuracy, and remaining ties keep the order the trials were drawn.

    Accuracy on a few hundred rows takes few values, so ties are common: without the loss
    the "best" trial among equals would be whichever was drawn first.
    """
    acc = np.asarray(val_accuracy, dtype=np.float64)
    loss = np.asarray(val_loss, dtype=np.float64)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    acc = np.where(np.isnan(acc), -np.inf, acc)
    return np.lexsort((np.arange(len(acc)), loss, -acc))


def run_search(config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
               ) -> dict[str, Any]:
    """Random search over SGD's learning rate and weight decay (both log-uniform).

    Trials are drawn from one key, then trained ``trials_per_batch`` at a time in one
    ``jit(vmap(...))`` (the rates are traced; the compiled run is reused by every batch).
    Each trial draws its initial weights and its data order from keys of its own, so its
    result does not depend on ``trials_per_batch``.
    The update is ``p <- p - lr * (g + wd * p)``.

    Returns:
      ``{"trials": [{"learning_rate", "weight_decay", "val_accuracy", "val_loss",
      "train_accuracy"}], "best": trial, "data": name}`` with trials sorted best first
      (:func:`rank_trials`: validation accuracy, ties by validation loss).
    """
    trials = _int(config, "trials", 1)
    per = _int(config, "trials_per_batch", 1)
    epochs = _int(config, "epochs", 1)
    batch = _int(config, "batch_size", 1)
    top = _int(config, "top", 1)
    lr_lo, lr_hi = _range(config, "lr_range")
    wd_lo, wd_hi = _range(config, "weight_decay_range")
    hidden = _hidden(config)
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_sub, k_lr, k_wd, k_init, k_run = jax.random.split(key, 6)
    ds = load_data(config["data"], k_data)
    n_train, n_val = _int(config, "n_train", 1), _int(config, "n_val", 1)
    check(n_train + n_val <= len(ds.x_train), "n_train + n_val", n_train + n_val,
          f"at most the {len(ds.x_train)} training rows of {ds.name}")
    xa, ya = subset(ds.x_train, ds.y_train, n_train + n_val, k_sub)
    x, y, xv, yv = xa[:n_train], ya[:n_train], xa[n_train:], ya[n_train:]
    cfg = mlp.MLPConfig(layer_sizes=(x.shape[1], *hidden, ds.num_classes))
    u = lambda k, lo, hi: np.exp(np.asarray(jax.random.uniform(
        k, (trials,), minval=math.log(lo), maxval=math.log(hi))))
    lrs, wds = u(k_lr, lr_lo, lr_hi), u(k_wd, wd_lo, wd_hi)

    def make_tx(h):
        return optax.chain(optim.add_decayed_weights(h["wd"]), optim.sgd(h["lr"]))

    run = jax.jit(jax.vmap(make_run(cfg, make_tx, batch_size=batch, epochs=epochs, x=x, y=y,
                                    eval_sets={"train": (x, y), "val": (xv, yv)})))
    val = np.zeros(trials)
    val_loss = np.zeros(trials)
    tr = np.zeros(trials)
    # Trial i's weights and data order come from keys of its own, whatever batch it is
    # trained in: trials_per_batch changes the speed, not the results.
    init_keys = jax.random.split(k_init, trials)
    run_keys = jax.random.split(k_run, trials)
    for start in range(0, trials, per):
        idx = np.arange(start, start + per) % trials  # pad the last batch: same shape
        params, state = init_stacked([cfg] * per, init_keys[idx])
        h = {"lr": jnp.asarray(lrs[idx], jnp.float32), "wd": jnp.asarray(wds[idx], jnp.float32)}
        _, c = run(params, state, run_keys[idx], h)
        keep = idx[: min(per, trials - start)]
        val[keep] = np.asarray(c["val_accuracy"])[: len(keep), -1]
        val_loss[keep] = np.asarray(c["val_loss"])[: len(keep), -1]
        tr[keep] = np.asarray(c["train_accuracy"])[: len(keep), -1]
    order = rank_trials(val, val_loss)
    rows = [{"learning_rate": float(lrs[i]), "weight_decay": float(wds[i]),
             "val_accuracy": float(val[i]), "val_loss": float(val_loss[i]),
             "train_accuracy": float(tr[i])} for i in order]
    res = {"trials": rows, "best": rows[0], "data": ds.name}
    out = _prepare(workdir)
    if out is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        sc = ax.scatter(lrs, wds, c=val, cmap="viridis", s=30, vmin=0, vmax=1)
        ax.scatter([rows[0]["learning_rate"]], [rows[0]["weight_decay"]], marker="*", s=200,
                   c="red", label="best")
        ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="weight decay",
               title=f"random search, {trials} trials ({ds.name})")
        fig.colorbar(sc, label="validation accuracy")
        ax.legend()
        fig.tight_layout()
        save_figure(fig, out / "search.png", dpi=110)
        plt.close(fig)
        table = [[i + 1, r["learning_rate"], r["weight_decay"], r["val_accuracy"],
                  r["val_loss"], r["train_accuracy"]] for i, r in enumerate(rows[:top])]
        body = (f"Data: {ds.name}, {n_train} training and {n_val} validation rows; MLP "
                f"{cfg.layer_sizes}; SGD with weight decay, batch {batch}, {epochs} epochs; "
                f"{trials} trials, {per} vmapped per batch; lr log-uniform in "
                f"[{lr_lo:g}, {lr_hi:g}], weight decay log-uniform in [{wd_lo:g}, {wd_hi:g}]."
                " Ranked by validation accuracy, ties by validation loss. "
                f"Top {min(top, trials)}:\n\n"
                + markdown_table(["rank", "lr", "weight decay", "val acc", "val loss",
                                  "train acc"], table)
                + "\nFigure: `search.png`.\n")
        write_summary(out, "Random hyperparameter search", body)
    return res
