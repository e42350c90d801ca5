"""Tests of the training-craft experiments (jaxnn.studies.craft, scripts/compare.py).

Each experiment runs at a small size and the test asserts the outcome it exists to show.
"""

from __future__ import annotations

import copy
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import mlp, optim
from jaxnn.studies import craft
from jaxnn.studies.craft_common import ConfigError, increase_fraction, merge_config
from jaxnn.studies.craft_engine import init_stacked

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cfg(name: str, **over):
    cfg = copy.deepcopy(craft.EXPERIMENTS[name][0])
    cfg["data"] = {"name": "digits", "data_dir": "", "n_train": 0, "n_test": 0} \
        if "data" in cfg else None
    if cfg["data"] is None:
        del cfg["data"]
    cfg.update(over)
    return cfg


# ----------------------------------------------------------------------------- surface


@pytest.fixture(scope="module")
def surface(tmp_path_factory):
    out = tmp_path_factory.mktemp("surface")
    return craft.run_surface(craft.SURFACE_DEFAULTS, out), out


def test_surface_sgd_zigzags_on_the_bowl(surface):
    res, _ = surface
    lengths, revs = res.path_length["bowl"], res.reversals["bowl"]
    assert revs["SGD"] >= 25  # flips across the valley at (almost) every update
    for name in ("Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"):
        assert lengths["SGD"] > 2 * lengths[name]
        assert revs["SGD"] > revs[name]
    # Everyone gets much closer than the start (distance ~7.3) in 30 updates.
    assert all(d < 1.0 for d in res.distance["bowl"].values())
    assert res.trajectories["bowl"]["SGD"].shape == (31, 2)


@pytest.mark.parametrize("surface_name", ["saddle", "rosenbrock"])
def test_surface_sgd_ends_farther_than_adam_and_momentum(surface, surface_name):
    d = surface[0].distance[surface_name]
    assert d["SGD"] > d["Adam"]
    assert d["SGD"] > d["Momentum"]


def test_surface_writes_figure_and_summary(surface):
    res, out = surface
    assert (out / "surface.png").stat().st_size > 10_000
    text = (out / "summary.md").read_text()
    assert "| bowl | SGD | sgd |" in text and "distance" in text


def test_optimize_surface_matches_hand_written_sgd():
    path = craft.optimize_surface(lambda p: p[0] ** 2 / 20 + p[1] ** 2, [-7.0, 2.0],
                                  optim.sgd(0.95), 3)
    assert path.dtype == jnp.float32 and path.shape == (4, 2)
    p = np.array([-7.0, 2.0])
    for t in range(3):
        p = p - 0.95 * np.array([p[0] / 10, 2 * p[1]])
        np.testing.assert_allclose(path[t + 1], p, rtol=1e-5)
    with pytest.raises(ValueError, match="steps"):
        craft.optimize_surface(lambda p: p @ p, [0.0, 0.0], optim.sgd(0.1), -1)


# ----------------------------------------------------------------------------- config, CLI


def test_merge_config_overrides_and_errors(tmp_path):
    cfg = merge_config(craft.SCHEDULES_DEFAULTS, None, ["epochs=3", "peak_lr=1e-1",
                                                        "schedules=[constant]"])
    assert cfg["epochs"] == 3 and cfg["peak_lr"] == 0.1 and cfg["schedules"] == ["constant"]
    assert craft.SCHEDULES_DEFAULTS["epochs"] != 3  # defaults untouched
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        merge_config(craft.SCHEDULES_DEFAULTS, None, ["epoch=3"])
    with pytest.raises(ConfigError, match="expected an integer"):
        merge_config(craft.SCHEDULES_DEFAULTS, None, ["epochs=2.5"])
    (tmp_path / "c.yaml").write_text("surfaces:\n  bowl:\n    steps: 5\n")
    cfg = merge_config(craft.SURFACE_DEFAULTS, tmp_path / "c.yaml")
    assert cfg["surfaces"]["bowl"]["steps"] == 5
    assert cfg["surfaces"]["bowl"]["optimizers"]["SGD"]["learning_rate"] == 0.95
    # New rows in a table are allowed; kwargs mappings are open.
    cfg = merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                       ["optimizers.Nadam={optimizer: nadam, learning_rate: 0.001}",
                        "optimizers.SGD.kwargs.momentum=0.5"])
    assert cfg["optimizers"]["Nadam"]["optimizer"] == "nadam"
    assert cfg["optimizers"]["SGD"]["kwargs"] == {"momentum": 0.5}
    # A kwargs mapping stays open once it holds a key; a row added key by key stays open;
    # 1e-3 (YAML 1.1 reads it as a string without a dot) is a number there too.
    cfg = merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                       ["optimizers.AdamW.kwargs.b1=0.8",
                        "optimizers.SGD.kwargs.momentum=9e-1",
                        "optimizers.SGD.kwargs.nesterov=true",
                        "optimizers.X.optimizer=sgd", "optimizers.X.learning_rate=1e-3"])
    assert cfg["optimizers"]["AdamW"]["kwargs"]["b1"] == 0.8
    assert cfg["optimizers"]["AdamW"]["kwargs"]["weight_decay"] == \
        craft.OPTIMIZERS_DEFAULTS["optimizers"]["AdamW"]["kwargs"]["weight_decay"]
    assert cfg["optimizers"]["SGD"]["kwargs"] == {"momentum": 0.9, "nesterov": True}
    assert cfg["optimizers"]["X"] == {"optimizer": "sgd", "learning_rate": 0.001}
    # Rows of the defaults stay closed: a typo is still caught.
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        merge_config(craft.OPTIMIZERS_DEFAULTS, None, ["optimizers.AdamW.learnig_rate=0.1"])


@pytest.mark.parametrize("args, message", [
    (["surface", "--set", "surfaces.bowl.steps=x"], "expected an integer"),
    (["surface", "--set", "surfaces.bowl.optimizers.SGD.optimizer=sgdd"], "unknown optimizer"),
    (["schedules", "--set", "schedules=[linear]"], "schedules"),
    (["init", "--config", "/nonexistent/c.yaml"], "does not exist"),
    (["overfitting", "--set", "dropout=1.5"], "dropout"),
    # null for a section or table (a raw TypeError/AttributeError before)
    (["surface", "--set", "surfaces.bowl=null"], "surfaces.bowl: expected a mapping, got null"),
    (["schedules", "--set", "data=null"], "data: expected a mapping"),
    # an unknown optimizer found before training, not while tracing it
    (["overfitting", "--set", "optimizer=nosuch", "--set", "epochs=1",
      "--set", "average_last=1"], "unknown optimizer"),
    # a warm-up schedule over a run of one update
    (["schedules", "--set", "epochs=1", "--set", "batch_size=100000",
      "--set", "schedules=[warmup_cosine]"], "warmup_cosine over 1 updates"),
    (["schedules", "--set", "divergence_factor=0.5"], "divergence_factor"),
    (["schedules", "--set", "schedules=[step, step]"], "distinct"),
    # argparse's own errors, as one line too
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["surface", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    code = craft.main([*args, "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_unusable_workdir_fails_before_training(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert craft.main(["surface", "--workdir", str(blocked)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --workdir") and err.count("\n") == 1


def test_outputs_are_written_atomically(tmp_path, monkeypatch):
    # A crash while the new summary is written leaves the old one whole, and no temp files.
    from jaxnn.studies import craft_common

    craft_common.write_summary(tmp_path, "Old", "old body")
    monkeypatch.setattr(pathlib.Path, "write_text",
                        lambda self, text: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        craft_common.write_summary(tmp_path, "New", "new body")
    monkeypatch.undo()
    assert (tmp_path / "summary.md").read_text() == "# Old\n\nold body\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]


def test_script_runs_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), "surface",
         "--config", str(ROOT / "configs" / "compare_surface.yaml"),
         "--set", "surfaces.bowl.steps=5", "--set", "surfaces.rosenbrock.steps=5",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "surface.png").exists() and (tmp_path / "summary.md").exists()


@pytest.mark.parametrize("name", list(craft.EXPERIMENTS))
def test_each_experiment_has_a_config_matching_its_defaults(name):
    path = ROOT / "configs" / f"compare_{name}.yaml"
    assert craft.load_config(name, path) == craft.load_config(name)


# ----------------------------------------------------------------------------- engine


def test_vmapped_seeds_match_single_runs(digits_xy):
    x, y = digits_xy
    x, y = x[:256], y[:256]
    cfg = mlp.MLPConfig(layer_sizes=(64, 32, 10))
    run = craft.make_run(cfg, lambda _: optim.adam(1e-3), batch_size=64, epochs=2, x=x, y=y,
                         eval_sets={"train": (x, y)})
    keys = jax.random.split(jax.random.key(3), 2)
    params, state = init_stacked([cfg, cfg], keys)
    _, batched = jax.jit(jax.vmap(run))(params, state, keys, None)
    p1, s1 = mlp.init(cfg, keys[1])
    _, single = jax.jit(run)(p1, s1, keys[1], None)
    assert batched["loss"].shape == (2, 2, 4)
    assert batched["loss"].dtype == jnp.float32
    np.testing.assert_allclose(batched["loss"][1], single["loss"], rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(batched["train_accuracy"][1], single["train_accuracy"],
                               atol=1e-6)


@pytest.fixture(scope="module")
def digits_xy():
    ds = craft.load_data({"name": "digits"}, jax.random.key(0))
    return jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)


def test_increase_fraction_and_divergence_step():
    assert increase_fraction([3.0, 2.0, 1.0, 0.5]) == 0.0
    assert increase_fraction([1.0, 2.0, 1.0, 2.0, 1.0]) == 0.5
    assert increase_fraction([1.0, np.nan]) == 1.0
    assert craft.divergence_step([2.0, 1.0, 7.0, 1.0], 3.0) == 2
    assert craft.divergence_step([2.0, 1.0, np.inf], 3.0) == 2
    assert craft.divergence_step([2.0, 1.0, 0.5], 3.0) is None
    assert craft.early_stopping_epoch([5, 4, 3, 3.5, 3.6, 3.7, 2.0], patience=3) == (5, 2)
    assert craft.early_stopping_epoch([5, 4, 3], patience=3) == (2, 2)


# ----------------------------------------------------------------------------- init, batch norm


def test_std_001_init_stays_at_chance_while_xavier_and_he_learn(tmp_path):
    res = craft.run_init(_cfg("init", hidden=[64] * 5, batch_size=64), tmp_path)
    assert res["steps"] >= 2000
    f = res["final"]
    assert abs(f["std 0.01"]["train_accuracy"] - res["chance"]) < 0.05
    assert f["std 0.01"]["train_loss"] > 2.25  # ~ln 10: nothing learned
    for name in ("Xavier", "He"):
        assert f[name]["train_accuracy"] > 0.9
        assert f[name]["test_accuracy"] > 0.85
    assert (tmp_path / "init.png").exists() and "std 0.01" in (tmp_path / "summary.md").read_text()


def test_batch_norm_learns_across_weight_scales(tmp_path):
    res = craft.run_batchnorm_scales(
        _cfg("batchnorm_scales", scales=6, epochs=15), tmp_path)
    bn, plain = res["train_accuracy"]["batch norm"], res["train_accuracy"]["no batch norm"]
    assert bn.shape == plain.shape == (6,)
    assert bn.mean() > plain.mean() + 0.2
    # Small scales: without batch norm the signal vanishes and nothing is learned.
    assert plain[-2] < 0.2 and bn[-2] > 0.5
    assert (tmp_path / "batchnorm_scales.png").exists()


# ----------------------------------------------------------------------------- overfitting


@pytest.fixture(scope="module")
def overfitting(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfitting")
    cfg = _cfg("overfitting", seeds=2, epochs=120)
    return craft.run_overfitting(cfg, out), out


def test_baseline_overfits(overfitting):
    v = overfitting[0]["variants"]["baseline"]
    assert v["train_accuracy"] > 0.97
    assert v["gap"] > 0.04


@pytest.mark.parametrize("variant", ["L2 0.1", "dropout 0.2"])
def test_weight_decay_and_dropout_shrink_the_gap(overfitting, variant):
    v = overfitting[0]["variants"]
    assert v[variant]["gap"] < v["baseline"]["gap"]


def test_early_stopping_stops_early_and_writes_outputs(overfitting):
    res, out = overfitting
    # On digits at lr 0.01 the validation loss may still improve at the end (no stop);
    # the kept epoch is the best one, so it cannot be much worse than the last.
    es, base = res["variants"]["early stopping"], res["variants"]["baseline"]
    assert es["epochs"] <= 120 and len(res["early_stopping"]["stop_epoch"]) == 2
    assert es["test_accuracy"] > base["test_accuracy"] - 0.03
    assert (out / "overfitting.png").exists()
    assert "early stopping" in (out / "summary.md").read_text()


# ----------------------------------------------------------------------------- schedules


def test_warmup_avoids_the_early_divergence_of_a_large_constant_rate(tmp_path):
    cfg = _cfg("schedules", schedules=["constant_peak", "warmup_cosine"])
    res = craft.run_schedules(cfg, tmp_path)
    assert res["diverged_at"]["constant_peak"] is not None
    assert res["diverged_at"]["constant_peak"] < 50
    assert res["diverged_at"]["warmup_cosine"] is None
    assert res["final_loss"]["warmup_cosine"] < 0.5 * res["final_loss"]["constant_peak"]
    lr = res["learning_rate"]["warmup_cosine"]
    assert lr[0] == 0.0 and np.isclose(lr.max(), cfg["peak_lr"], rtol=1e-2)
    assert (tmp_path / "schedules.png").exists()


def test_build_schedule_shapes():
    for name in craft.SCHEDULES:
        s = craft.build_schedule(name, base_lr=0.1, peak_lr=1.0, total_steps=100)
        v = np.asarray(s(jnp.arange(100)))
        assert v.dtype == np.float32 and v.shape == (100,) and (v >= 0).all()
    step = craft.build_schedule("step", base_lr=0.1, peak_lr=1.0, total_steps=100)
    np.testing.assert_allclose([step(0), step(50), step(75)], [0.1, 0.01, 0.001], rtol=1e-5)
    # Two updates: both drops fall on update 1, which still divides by 100.
    step = craft.build_schedule("step", base_lr=0.1, peak_lr=1.0, total_steps=2)
    np.testing.assert_allclose([step(0), step(1)], [0.1, 0.001], rtol=1e-5)


# ----------------------------------------------------------------------------- batch size


def test_full_batch_has_the_smoothest_loss_per_update(tmp_path):
    cfg = _cfg("batch_size", n_train=256, epochs=5, batch_sizes=[0, 1, 32])
    runs = craft.run_batch_size(cfg, tmp_path)["runs"]
    full, sgd, mini = runs["full batch"], runs["SGD (batch 1)"], runs["batch 32"]
    assert (full["updates"], sgd["updates"], mini["updates"]) == (5, 1280, 40)
    assert full["increase_fraction"] == 0.0
    assert sgd["increase_fraction"] > 0.2 and mini["increase_fraction"] > 0.1
    # More updates per epoch: lower loss after the same number of epochs.
    assert sgd["final_loss"] < mini["final_loss"] < full["final_loss"]
    assert np.all(np.diff(full["epoch_time"]) > 0)
    assert (tmp_path / "batch_size.png").exists()


# ----------------------------------------------------------------------------- optimizers, search


def test_adaptive_and_momentum_optimizers_beat_sgd(tmp_path):
    opts = {k: v for k, v in craft.OPTIMIZERS_DEFAULTS["optimizers"].items()
            if k in ("SGD", "Momentum", "Adam")}
    res = craft.run_optimizers(_cfg("optimizers", seeds=2, epochs=3, optimizers=opts),
                               tmp_path)
    f = res["final"]
    assert res["loss"]["SGD"].shape[0] == 2
    assert f["Adam"]["train_loss"] < f["SGD"]["train_loss"]
    assert f["Momentum"]["train_loss"] < f["SGD"]["train_loss"]
    assert f["Adam"]["test_accuracy"] > f["SGD"]["test_accuracy"]
    assert (tmp_path / "optimizers.png").exists()


@pytest.mark.slow
def test_random_search_ranks_trials(tmp_path):
    cfg = _cfg("search", trials=6, trials_per_batch=4, epochs=10, hidden=[50, 50],
               n_train=300, n_val=200)
    res = craft.run_search(cfg, tmp_path)
    trials = res["trials"]
    assert len(trials) == 6
    val = [t["val_accuracy"] for t in trials]
    assert val == sorted(val, reverse=True)
    assert all(1e-6 <= t["learning_rate"] <= 1e-2 for t in trials)
    assert all(1e-8 <= t["weight_decay"] <= 1e-4 for t in trials)
    # Over four decades of learning rate, the largest rates learn most in a short run.
    by_lr = sorted(trials, key=lambda t: t["learning_rate"])
    assert by_lr[-1]["val_accuracy"] > by_lr[0]["val_accuracy"]
    assert (tmp_path / "search.png").exists()
    assert "| 1 |" in (tmp_path / "summary.md").read_text()
