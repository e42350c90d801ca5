"""Overfitting and its cures, the weight-initialization comparison, batch norm vs weight scale.

Contract: each ``run_*`` takes a config mapping shaped like its ``*_DEFAULTS`` and an
optional workdir, trains with :func:`jaxnn.studies.craft_engine.make_run` (seeds or weight
scales vmapped), writes a PNG figure and ``summary.md`` into the workdir (when given) and
returns a plain dict of the numbers it reports.

* :func:`run_overfitting`: a 6x100 ReLU MLP trained on 300 examples, as it is (baseline),
  with L2 weight decay (the loss gets ``0.5 * l2 * sum W^2``), with dropout, with batch
  norm, and with early stopping. Early stopping is read off the baseline's own curves: the
  run stops once the validation loss has not improved for ``patience`` epochs and keeps
  the parameters of its best epoch, so its numbers are the baseline's at that epoch (the
  same as re-running with an early-stopping loop, since the trajectory up to the stop is
  identical). The gap is train accuracy minus test accuracy, averaged over the last
  ``average_last`` epochs and over seeds.
* :func:`run_init`: a 5-hidden-layer ReLU MLP initialized with N(0, 0.01²), Xavier
  (Glorot) and He normal weights, trained with plain SGD; with std 0.01 the signal and the
  gradients shrink ~14x per layer and the net stays at chance.
* :func:`run_batchnorm_scales`: the same net with and without batch norm for 16 initial
  weight standard deviations log-spaced from 1 to 1e-4 (the 16 runs are vmapped).

References: Srivastava et al., "Dropout", JMLR 2014; Ioffe & Szegedy, "Batch
Normalization", ICML 2015; Glorot & Bengio, AISTATS 2010; He et al., ICCV 2015; the
experiments follow Saito, *Deep Learning from Scratch* (2016), ch. 6.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import mlp, optim
from jaxnn.studies.craft_common import (
    ConfigError,
    begin_outputs,
    check,
    check_distinct,
    divergence_step,
    is_int,
    is_number,
    markdown_table,
    pyplot,
    save_figure,
    write_summary,
)
from jaxnn.studies.craft_engine import init_stacked, load_data, make_run, subset

__all__ = [
    "BATCHNORM_SCALES_DEFAULTS",
    "INIT_DEFAULTS",
    "OVERFITTING_DEFAULTS",
    "early_stopping_epoch",
    "run_batchnorm_scales",
    "run_init",
    "run_overfitting",
    "seed_keys",
]

_DATA = {"name": "auto", "data_dir": "", "n_train": 0, "n_test": 0}

OVERFITTING_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "seeds": 3,
    "n_train": 300,
    "n_val": 300,
    "hidden": [100, 100, 100, 100, 100, 100],
    "epochs": 200,
    "batch_size": 100,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "l2": 0.1,
    "dropout": 0.2,
    "patience": 10,
    "average_last": 10,
}

INIT_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "hidden": [100, 100, 100, 100, 100],
    "steps": 2000,
    "batch_size": 128,
    "learning_rate": 0.01,
    "inits": {
        "std 0.01": {"initializer": "normal", "kwargs": {"stddev": 0.01}},
        "Xavier": {"initializer": "glorot_normal", "kwargs": {}},
        "He": {"initializer": "he_normal", "kwargs": {}},
    },
}

BATCHNORM_SCALES_DEFAULTS: dict[str, Any] = {
    "data": dict(_DATA),
    "seed": 0,
    "n_train": 1000,
    "hidden": [100, 100, 100, 100, 100],
    "scales": 16,
    "max_scale": 1.0,
    "min_scale": 1e-4,
    "epochs": 20,
    "batch_size": 100,
    "learning_rate": 0.01,
}


def seed_keys(key: jax.Array, seeds: int) -> tuple[jax.Array, jax.Array]:
    """``(init_keys, run_keys)``, ``seeds`` of each: a seed's initial weights and its run
    (shuffling, dropout masks) draw from separate streams. One key for both would correlate
    them: with threefry, ``mlp.init``'s first layer key would be the run's state key."""
    k_init, k_run = jax.random.split(key)
    return jax.random.split(k_init, seeds), jax.random.split(k_run, seeds)


def _int(cfg: Mapping[str, Any], key: str, low: int, high: int = 10**9) -> int:
    v = cfg[key]
    check(is_int(v) and low <= v <= high, key, v, f"an integer in [{low}, {high}]")
    return int(v)


def _pos(cfg: Mapping[str, Any], key: str, zero: bool = False) -> float:
    v = cfg[key]
    ok = is_number(v) and math.isfinite(v) and (v >= 0 if zero else v > 0)
    check(ok, key, v, "a number >= 0" if zero else "a number > 0")
    return float(v)


def _hidden(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    h = cfg["hidden"]
    check(isinstance(h, list) and len(h) >= 1 and all(is_int(w) and w >= 1 for w in h),
          "hidden", h, "a non-empty list of positive integers")
    return tuple(int(w) for w in h)


def _prepare(workdir: str | pathlib.Path | None) -> pathlib.Path | None:
    """The workdir, ready for this run's figure and then its summary (see
    :func:`~jaxnn.studies.craft_common.begin_outputs`); None writes nothing."""
    return begin_outputs(workdir)


def early_stopping_epoch(val_loss: Any, patience: int) -> tuple[int, int]:
    """Where early stopping on a validation-loss curve stops, and the epoch it keeps.

    The run stops after epoch ``s`` when the best loss so far was reached at epoch
    ``s - patience`` (no improvement for ``patience`` epochs); it keeps the best epoch.

    Args:
      val_loss: per-epoch validation losses (0-based epochs).
      patience: epochs without improvement tolerated, ``>= 1``.

    Returns:
      ``(stop_epoch, best_epoch)``; ``stop_epoch`` is the last epoch if it never stops.
    """
    v = np.asarray(val_loss, dtype=np.float64)
    best, best_epoch = np.inf, 0
    for e, loss in enumerate(v):
        if loss < best:
            best, best_epoch = loss, e
        elif e - best_epoch >= patience:
            return e, best_epoch
    return len(v) - 1, best_epoch


# ----------------------------------------------------------------------------- overfitting


def run_overfitting(
    config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
) -> dict[str, Any]:
    """Baseline vs L2 vs dropout vs batch norm vs early stopping on a small training set.

    Returns:
      ``{"variants": {name: {"train_accuracy", "test_accuracy", "gap", ...}},
      "curves": {name: {"train_accuracy": (epochs,), "test_accuracy": (epochs,)}},
      "early_stopping": {"stop_epoch", "best_epoch"}, "data": name}``; accuracies and gaps
      averaged over seeds (and over the last ``average_last`` epochs, except early stopping
      which reports its kept epoch).
    """
    seeds = _int(config, "seeds", 1, 64)
    n_train = _int(config, "n_train", 10)
    n_val = _int(config, "n_val", 10)
    epochs = _int(config, "epochs", 1)
    batch = _int(config, "batch_size", 1)
    last = _int(config, "average_last", 1, epochs)
    patience = _int(config, "patience", 1)
    lr = _pos(config, "learning_rate")
    l2 = _pos(config, "l2", zero=True)
    rate = _pos(config, "dropout", zero=True)
    check(rate < 1.0, "dropout", rate, "a number in [0, 1)")
    hidden = _hidden(config)
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_sub, k_runs = jax.random.split(key, 3)
    ds = load_data(config["data"], k_data)
    check(n_train + n_val <= len(ds.x_train), "n_train + n_val", n_train + n_val,
          f"at most the {len(ds.x_train)} training rows of {ds.name}")
    xa, ya = subset(ds.x_train, ds.y_train, n_train + n_val, k_sub)
    x, y, xv, yv = xa[:n_train], ya[:n_train], xa[n_train:], ya[n_train:]
    xt, yt = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)
    sizes = (x.shape[1], *hidden, ds.num_classes)
    base = mlp.MLPConfig(layer_sizes=sizes, initializer="he_normal")
    variants = {
        "baseline": base,
        f"L2 {l2:g}": dataclasses.replace(base, l2=l2),
        f"dropout {rate:g}": dataclasses.replace(base, dropout_rate=rate),
        "batch norm": dataclasses.replace(base, batch_norm=True),
    }
    make_tx = lambda _: optim.get(config["optimizer"], lr)
    try:  # here, not first while tracing the run
        make_tx(None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"optimizer: {e}") from None
    evals = {"train": (x, y), "val": (xv, yv), "test": (xt, yt)}
    init_keys, run_keys = seed_keys(k_runs, seeds)
    curves: dict[str, dict[str, np.ndarray]] = {}
    for name, cfg in variants.items():
        params, state = init_stacked([cfg] * seeds, init_keys)
        run = make_run(cfg, make_tx, batch_size=batch, epochs=epochs, x=x, y=y, eval_sets=evals)
        _, c = jax.jit(jax.vmap(run))(params, state, run_keys, None)
        curves[name] = {k: np.asarray(v) for k, v in c.items() if k != "loss"}
    summary: dict[str, dict[str, float]] = {}
    for name, c in curves.items():
        tr = c["train_accuracy"][:, -last:].mean()
        te = c["test_accuracy"][:, -last:].mean()
        summary[name] = {"train_accuracy": float(tr), "test_accuracy": float(te),
                         "gap": float(tr - te), "epochs": epochs}
    # Early stopping on each seed's baseline validation loss.
    b = curves["baseline"]
    stops = [early_stopping_epoch(b["val_loss"][s], patience) for s in range(seeds)]
    es_tr = np.mean([b["train_accuracy"][s, be] for s, (_, be) in enumerate(stops)])
    es_te = np.mean([b["test_accuracy"][s, be] for s, (_, be) in enumerate(stops)])
    summary["early stopping"] = {"train_accuracy": float(es_tr), "test_accuracy": float(es_te),
                                 "gap": float(es_tr - es_te),
                                 "epochs": float(np.mean([st + 1 for st, _ in stops]))}
    result = {"variants": summary,
              "curves": {k: {m: v.mean(0) for m, v in c.items()} for k, c in curves.items()},
              "early_stopping": {"stop_epoch": [s for s, _ in stops],
                                 "best_epoch": [b for _, b in stops]},
              "data": ds.name}
    out = _prepare(workdir)
    if out is not None:
        _plot_overfitting(result, out / "overfitting.png")
        rows = [[k, v["train_accuracy"], v["test_accuracy"], v["gap"],
                 f"{v['epochs']:.0f}" if float(v["epochs"]).is_integer()
                 else f"{v['epochs']:.1f} (mean)"]
                for k, v in summary.items()]
        body = (f"Data: {ds.name}, {n_train} training rows ({n_val} more for validation), "
                f"MLP {sizes}, {config['optimizer']} lr {lr:g}, batch {batch}, "
                f"{epochs} epochs, {seeds} seeds (vmapped). Accuracies: mean over seeds and "
                f"the last {last} epochs; early stopping: patience {patience} on the "
                "validation loss, best epoch kept.\n\n"
                + markdown_table(["variant", "train acc", "test acc", "gap (train − test)",
                                  "epochs"], rows)
                + "\nFigure: `overfitting.png`.\n")
        write_summary(out, "Overfitting and its cures", body)
    return result


def _plot_overfitting(result: Mapping[str, Any], path: pathlib.Path) -> None:
    plt = pyplot()
    curves = result["curves"]
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.4), sharey=True)
    stop = int(np.round(np.mean(result["early_stopping"]["best_epoch"])))
    for ax, (name, c) in zip(axes, curves.items(), strict=True):
        ep = np.arange(1, len(c["train_accuracy"]) + 1)
        ax.plot(ep, c["train_accuracy"], label="train")
        ax.plot(ep, c["test_accuracy"], label="test")
        if name == "baseline":
            ax.axvline(stop + 1, color="k", ls=":", lw=1, label="early stop (mean best)")
        gap = result["variants"][name]["gap"]
        ax.set_title(f"{name} (gap {gap:.3f})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- init


def _init_configs(config: Mapping[str, Any], sizes: tuple[int, ...]) -> dict[str, mlp.MLPConfig]:
    inits = config["inits"]
    check(isinstance(inits, Mapping) and len(inits) >= 1, "inits", inits, "a non-empty table")
    check_distinct("inits", [(k, k) for k in inits], "distinct names")
    out = {}
    for name, row in inits.items():
        check(isinstance(row, Mapping) and "initializer" in row, f"inits.{name}", row,
              "a mapping with initializer and optional kwargs")
        check(isinstance(row["initializer"], str), f"inits.{name}.initializer",
              row["initializer"], "an initializer name (e.g. he_normal)")
        kwargs = row.get("kwargs") or {}
        check(isinstance(kwargs, Mapping), f"inits.{name}.kwargs", kwargs,
              "a mapping of keyword arguments")
        try:
            out[name] = mlp.MLPConfig(layer_sizes=sizes, initializer=row["initializer"],
                                      initializer_kwargs=tuple(kwargs.items()))
        except (ValueError, TypeError) as e:
            check(False, f"inits.{name}", row, str(e))
    return out


def run_init(config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
             ) -> dict[str, Any]:
    """Std-0.01 vs Xavier vs He initialization of a deep ReLU MLP under plain SGD.

    All initializations are stacked and trained in one vmapped run (same data order).

    Returns:
      ``{"final": {name: {"train_loss", "train_accuracy", "test_accuracy", "diverged_at"}},
      "loss": {name: (updates,) batch losses}, "chance": 1/num_classes, "steps": updates,
      "data": name}``. The run trains whole epochs, so ``updates`` is ``steps`` rounded up
      to a whole number of epochs; ``final`` is measured after the last one.
      ``diverged_at`` is the first update (0-based) whose training-batch loss is not finite
      (None when none was): such a run's losses and accuracies are nan or chance, and the
      summary says it diverged rather than that it did not learn.
    """
    steps = _int(config, "steps", 1)
    batch = _int(config, "batch_size", 1)
    lr = _pos(config, "learning_rate")
    hidden = _hidden(config)
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_init, k_run = jax.random.split(key, 3)
    ds = load_data(config["data"], k_data)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    sizes = (x.shape[1], *hidden, ds.num_classes)
    cfgs = _init_configs(config, sizes)
    per_epoch = max(len(x) // batch, 1)
    epochs = -(-steps // per_epoch)
    # Same initial key for every initializer: only the distribution differs.
    params, state = init_stacked(list(cfgs.values()), jnp.stack([k_init] * len(cfgs)))
    cfg0 = next(iter(cfgs.values()))
    run = make_run(cfg0, lambda _: optim.sgd(lr), batch_size=batch, epochs=epochs, x=x, y=y,
                   eval_sets={"train": (x, y), "test": (jnp.asarray(ds.x_test),
                                                         jnp.asarray(ds.y_test))})
    keys = jnp.stack([k_run] * len(cfgs))
    _, c = jax.jit(jax.vmap(run))(params, state, keys, None)
    # Whole epochs run: the last one may run past ``steps``. Its end is what the table
    # reports, so the figure draws (and ``loss`` holds) every update up to there.
    loss = np.asarray(c["loss"]).reshape(len(cfgs), -1)
    final = {name: {"train_loss": float(np.asarray(c["train_loss"])[i, -1]),
                    "train_accuracy": float(np.asarray(c["train_accuracy"])[i, -1]),
                    "test_accuracy": float(np.asarray(c["test_accuracy"])[i, -1]),
                    "diverged_at": divergence_step(loss[i])}
             for i, name in enumerate(cfgs)}
    result = {"final": final, "loss": dict(zip(cfgs, loss, strict=True)),
              "chance": 1.0 / ds.num_classes, "steps": epochs * per_epoch, "data": ds.name}
    out = _prepare(workdir)
    if out is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for name, ls in result["loss"].items():
            at = final[name]["diverged_at"]  # 0-based; counted from 1 on the figure
            ax.plot(np.arange(1, len(ls) + 1), ls, lw=0.8,
                    label=name + ("" if at is None else f" (diverged at update {at + 1})"))
        ax.set_xlabel("update")
        ax.set_ylabel("training-batch loss")
        ax.set_title(f"Weight init, {len(hidden)}x{hidden[0]} ReLU, SGD lr {lr:g} ({ds.name})")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, out / "init.png", dpi=110)
        plt.close(fig)
        rows = [[k, "no" if v["diverged_at"] is None else f"at update {v['diverged_at'] + 1}",
                 v["train_loss"], v["train_accuracy"], v["test_accuracy"]]
                for k, v in final.items()]
        body = (f"Data: {ds.name}; MLP {sizes}; plain SGD lr {lr:g}, batch {batch}, "
                f"{epochs * per_epoch} updates ({epochs} epochs); chance accuracy "
                f"{1.0 / ds.num_classes:.3f}.\n\n"
                + markdown_table(["init", "diverged", "train loss", "train acc", "test acc"],
                                 rows)
                + "\nFigure: `init.png`.\n")
        write_summary(out, "Weight initialization", body)
    return result


# ----------------------------------------------------------------------------- batch norm


def run_batchnorm_scales(config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
                         ) -> dict[str, Any]:
    """Train with and without batch norm from N(0, s²) weights for log-spaced scales s.

    Returns:
      ``{"scales": (n,), "train_accuracy": {"batch norm": (n,), "no batch norm": (n,)},
      "curves": {variant: (n, epochs)}, "diverged_at": {variant: [int | None] * n},
      "data": name}`` (final train accuracy per scale). ``diverged_at`` is the first update
      (0-based) whose training-batch loss is not finite: such a net ends at chance accuracy
      like one that never learned, and the summary says which it was.
    """
    n = _int(config, "scales", 1, 64)
    epochs = _int(config, "epochs", 1)
    batch = _int(config, "batch_size", 1)
    lr = _pos(config, "learning_rate")
    hi, lo = _pos(config, "max_scale"), _pos(config, "min_scale")
    check(lo <= hi, "min_scale", lo, f"<= max_scale ({hi})")
    hidden = _hidden(config)
    key = jax.random.key(_int(config, "seed", 0))
    k_data, k_sub, k_init, k_run = jax.random.split(key, 4)
    ds = load_data(config["data"], k_data)
    n_train = _int(config, "n_train", 1)
    check(n_train <= len(ds.x_train), "n_train", n_train,
          f"at most the {len(ds.x_train)} training rows of {ds.name}")
    x, y = subset(ds.x_train, ds.y_train, n_train, k_sub)
    sizes = (x.shape[1], *hidden, ds.num_classes)
    scales = np.geomspace(hi, lo, n)
    acc, curves, gone = {}, {}, {}
    for name, bn in (("batch norm", True), ("no batch norm", False)):
        cfgs = [mlp.MLPConfig(layer_sizes=sizes, batch_norm=bn, initializer="normal",
                              initializer_kwargs=(("stddev", float(s)),)) for s in scales]
        params, state = init_stacked(cfgs, jnp.stack([k_init] * n))
        run = make_run(cfgs[0], lambda _: optim.sgd(lr), batch_size=batch, epochs=epochs,
                       x=x, y=y, eval_sets={"train": (x, y)})
        _, c = jax.jit(jax.vmap(run))(params, state, jnp.stack([k_run] * n), None)
        curves[name] = np.asarray(c["train_accuracy"])
        acc[name] = curves[name][:, -1]
        gone[name] = [divergence_step(lo) for lo in np.asarray(c["loss"]).reshape(n, -1)]
    result = {"scales": scales, "train_accuracy": acc, "curves": curves, "diverged_at": gone,
              "data": ds.name}
    out = _prepare(workdir)
    if out is not None:
        plt = pyplot()
        cols = 4
        rows_n = -(-n // cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(3.0 * cols, 2.3 * rows_n),
                                 sharex=True, sharey=True, squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= n:
                ax.axis("off")
                continue
            for name, c in curves.items():
                ax.plot(np.arange(1, epochs + 1), c[i], label=name,
                        ls="-" if name == "batch norm" else "--")
            ax.set_title(f"w std {scales[i]:.2g}", fontsize=9)
            ax.set_ylim(0, 1.02)
        axes[0, 0].legend(fontsize=7)
        fig.supxlabel("epoch")
        fig.supylabel("train accuracy")
        fig.tight_layout()
        save_figure(fig, out / "batchnorm_scales.png", dpi=100)
        plt.close(fig)
        def cell(name: str, i: int) -> str:
            at = gone[name][i]  # 0-based; counted from 1 in the table
            return f"{acc[name][i]:.4f}" + ("" if at is None else f" (diverged at update {at + 1})")

        table = [[f"{s:.3g}", cell("batch norm", i), cell("no batch norm", i)]
                 for i, s in enumerate(scales)]
        body = (f"Data: {ds.name}, {n_train} training rows; MLP {sizes}; SGD lr {lr:g}, "
                f"batch {batch}, {epochs} epochs; the {n} scales run vmapped. Final train "
                f"accuracy (mean over scales: batch norm {acc['batch norm'].mean():.3f}, "
                f"none {acc['no batch norm'].mean():.3f}); a run whose training loss stopped being "
                "finite is marked diverged.\n\n"
                + markdown_table(["weight std", "batch norm", "no batch norm"], table)
                + "\nFigure: `batchnorm_scales.png`.\n")
        write_summary(out, "Batch norm across initial weight scales", body)
    return result
