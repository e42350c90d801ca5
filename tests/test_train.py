"""The training loop in-process: learning, gradient modes, compilation, early stopping,
checkpoints and the divergence guard (``jaxnn.train``)."""

import dataclasses
import hashlib
import json
import pathlib
import re

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import backprop, mlp, optim
from jaxnn import config as C
from jaxnn.config import ConfigError
from jaxnn.train import (
    CheckpointError,
    CheckpointManager,
    DivergenceError,
    TrainState,
    classification_metrics,
    make_eval_fn,
    make_train_epoch,
    make_train_step,
    read_checkpoint,
    train_and_evaluate,
    write_checkpoint,
)
from jaxnn.train import checkpoint as checkpoint_lib
from jaxnn.train import loop as loop_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
QUIET = ["logging.progress=false", "logging.print_every=0", "logging.plots=false"]


def _load(name=None, *overrides):
    path = CONFIGS / f"{name}.yaml" if name else None
    return C.load(path, [*QUIET, *overrides])


def _params(workdir):
    blob = (pathlib.Path(workdir) / "params.msgpack").read_bytes()
    return flax.serialization.msgpack_restore(blob)


# ----------------------------------------------------------------------------- learning


def test_xor_is_solved_by_a_hidden_layer_and_not_by_a_linear_model(tmp_path):
    h = train_and_evaluate(_load("xor"), tmp_path / "mlp")
    assert h.final["test_accuracy"] == 1.0
    assert h.final["test_loss"] < 0.05
    lin = train_and_evaluate(_load("xor", "model.hidden_sizes=[]"), tmp_path / "linear")
    # No line separates XOR: at most 3 of the 4 points can be right.
    assert lin.final["test_accuracy"] <= 0.75
    assert lin.final["test_loss"] > 0.5


def test_default_job_reaches_95_percent_on_digits(tmp_path):
    cfg = _load(None, "logging.plots=true")
    h = train_and_evaluate(cfg, tmp_path / "run")
    assert h.final["test_accuracy"] >= 0.95
    run = tmp_path / "run"
    for f in ("config.yaml", "metrics.jsonl", "metrics.csv", "history.json", "params.msgpack",
              "loss.png", "accuracy.png", "learning_rate.png"):
        assert (run / f).stat().st_size > 0, f
    # the resolved config round-trips, and the log has one line per epoch
    assert C.load(run / "config.yaml", QUIET[:0]) == C.replace(cfg, "logging.plots", True)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == list(range(1, 21))
    assert len((run / "metrics.csv").read_text().splitlines()) == 21
    # learning happened along the way, not only at the end
    losses = h.metric("loss")
    assert losses[-1] < 0.25 * losses[0]


def test_fashion_mnist_reaches_85_percent(tmp_path, shared_data_dir):
    cfg = _load(
        "fashion_mnist",
        f"data.data_dir={shared_data_dir / 'fashion-mnist'}",
        "data.download=false",
        "training.epochs=3",
        "schedule.epoch_options.decay_steps=3",
        "training.checkpoint_every=0",
    )
    h = train_and_evaluate(cfg, tmp_path / "fm")
    assert h.final["test_accuracy"] >= 0.85


def test_sine_regression_fits_the_curve(tmp_path):
    cfg = _load("sine_regression", "training.epochs=40", "schedule.epoch_options.decay_steps=40")
    h = train_and_evaluate(cfg, tmp_path / "sine")
    # the targets have variance 0.5 + 0.01; the noise floor is 0.01
    assert h.final["test_loss"] < 0.03
    assert "test_accuracy" not in h.final


def test_batch_size_covers_sgd_minibatch_and_full_batch(tmp_path):
    n_train = 200
    for bs, steps in ((1, 200), (32, 6), (10_000, 1)):
        cfg = _load(None, f"data.n_train={n_train}", f"training.batch_size={bs}",
                    "training.epochs=2", "training.checkpoint_every=0")
        h = train_and_evaluate(cfg, tmp_path / f"bs{bs}")
        assert [r["step"] for r in h.rows] == [steps, 2 * steps]


@pytest.mark.parametrize("overrides, key", [
    (["training.batch_size=1"], "training.batch_size: got 1"),
    (["data.n_train=257", "training.batch_size=64", "training.drop_remainder=false"],
     "training.drop_remainder: false makes a last batch of the 1 row left over from 257"),
])
def test_batch_norm_over_a_one_row_batch_is_refused(overrides, key):
    # Its variance is 0 there: the layer outputs beta whatever comes in and the running
    # variance is pulled towards 0 -- a silently wrong model, never an error, before.
    cfg = _load(None, "model.batch_norm=true", *overrides)
    with pytest.raises(ConfigError, match=re.escape(key) + r".*model\.batch_norm needs at least 2"):
        loop_lib.build_experiment(cfg)
    # the same batches without batch norm, and batch norm when no batch holds one row, build
    loop_lib.build_experiment(_load(None, *overrides))
    ok = [o.replace("257", "258").replace("batch_size=1", "batch_size=2") for o in overrides]
    loop_lib.build_experiment(_load(None, "model.batch_norm=true", *ok))
    keep_drop = [o for o in overrides if "drop_remainder" not in o]
    if keep_drop != overrides:  # dropped, the one row is never a batch of its own
        loop_lib.build_experiment(_load(None, "model.batch_norm=true", *keep_drop))


def test_drop_remainder_false_uses_every_row_once_per_epoch(tmp_path):
    # 300 rows in batches of 64: 4 full steps, and the 44 left over make a fifth.
    base = ("data.n_train=300", "training.batch_size=64", "training.epochs=3",
            "training.checkpoint_every=0", "schedule.name=linear_schedule",
            "schedule.options.end_value=0.0", "optimizer.learning_rate=0.01")
    drop = train_and_evaluate(_load(None, *base), tmp_path / "drop")
    keep = train_and_evaluate(_load(None, *base, "training.drop_remainder=false"),
                              tmp_path / "keep")
    assert [r["step"] for r in drop.rows] == [4, 8, 12]
    assert [r["step"] for r in keep.rows] == [5, 10, 15]
    # the schedule spans the steps the run takes (0.01 -> 0 over 15; 4 per epoch would have
    # reached 0 at step 12 and logged 0 for the last epoch); logged: each epoch's last step
    np.testing.assert_allclose(keep.metric("learning_rate"),
                               [0.01 * (1 - k / 15) for k in (4, 9, 14)], rtol=1e-5)
    assert keep.final["test_accuracy"] > 0.5  # it learns (10 classes)

    # Frozen parameters (a learning rate far below one ulp of the weights): each epoch's
    # loss, weighted by the rows of each step, is the loss over all 300 rows, whatever the
    # shuffle put in the small last step.
    frozen = _load(None, *base[:4], "training.drop_remainder=false",
                   "optimizer.learning_rate=1e-30")
    h = train_and_evaluate(frozen, tmp_path / "frozen")
    exp = loop_lib.build_experiment(frozen)
    params, mstate = mlp.init(exp.mlp_config, jax.random.split(jax.random.PRNGKey(0), 3)[0])
    st = TrainState.create(params=params, tx=exp.tx, key=jax.random.PRNGKey(0),
                           model_state=mstate)
    full = make_eval_fn(exp.loss_fn, loss_name=frozen.training.loss,
                        metrics_fn=classification_metrics)(
        st, jnp.asarray(exp.dataset.x_train), jnp.asarray(exp.dataset.y_train))
    np.testing.assert_allclose(h.metric("loss"), [float(full["loss"])] * 3, rtol=1e-5)
    np.testing.assert_allclose(h.metric("accuracy"), [float(full["accuracy"])] * 3, rtol=1e-6)


# ----------------------------------------------------------------------------- gradient modes


def test_manual_and_autodiff_gradients_give_the_same_trajectory(tmp_path):
    # momentum SGD: float32 rounding differences stay rounding-sized (Adam's g/sqrt(v)
    # amplifies them where gradients are tiny, so it would need a looser tolerance)
    common = ("model.batch_norm=true", "model.dropout_rate=0.1", "model.l2=1e-3",
              "model.hidden_activation=tanh", "training.epochs=3", "data.n_train=600",
              "optimizer.name=momentum", "optimizer.learning_rate=0.05")
    auto = train_and_evaluate(_load(None, *common, "training.grad=autodiff"), tmp_path / "a")
    man = train_and_evaluate(_load(None, *common, "training.grad=manual"), tmp_path / "m")
    np.testing.assert_allclose(auto.metric("loss"), man.metric("loss"), rtol=1e-4)
    np.testing.assert_allclose(auto.metric("test_loss"), man.metric("test_loss"), rtol=1e-4)
    pa, pm = _params(tmp_path / "a"), _params(tmp_path / "m")
    for a, m in zip(jax.tree.leaves(pa), jax.tree.leaves(pm), strict=True):
        np.testing.assert_allclose(a, m, rtol=1e-3, atol=1e-5)


def _small_problem(batch_norm=False):
    cfg = mlp.MLPConfig(layer_sizes=(6, 16, 3), hidden_activation="tanh", batch_norm=batch_norm)
    params, mstate = mlp.init(cfg, jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 6), jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(2), (64,), 0, 3)
    return cfg, params, mstate, x, y


def test_train_step_switches_gradient_by_one_argument():
    loss = "softmax_cross_entropy_with_integer_labels"
    cfg, params, mstate, x, y = _small_problem(batch_norm=True)
    tx = optim.get("momentum", 0.1)
    states = {}
    for mode in ("autodiff", "manual"):
        step = jax.jit(make_train_step(mlp.make_loss_fn(cfg, loss), tx, grad=mode,
                                       value_and_grad_fn=backprop.value_and_grad(cfg, loss)))
        st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(3),
                               model_state=mstate)
        for _ in range(5):
            st, m = step(st, x, y)
        states[mode] = st
    a, m = states["autodiff"], states["manual"]
    assert int(a.step) == int(m.step) == 5
    for la, lm in zip(jax.tree.leaves((a.params, a.model_state)),
                      jax.tree.leaves((m.params, m.model_state)), strict=True):
        np.testing.assert_allclose(la, lm, rtol=1e-5, atol=1e-6)
    # the batch-norm running statistics moved: the state is threaded through the step
    assert not np.allclose(a.model_state["layers"][0]["bn"]["mean"], 0.0)
    with pytest.raises(ValueError, match="value_and_grad_fn"):
        make_train_step(mlp.make_loss_fn(cfg, loss), tx, grad="manual")
    with pytest.raises(ValueError, match="'autodiff' or 'manual'"):
        make_train_step(mlp.make_loss_fn(cfg, loss), tx, grad="numeric")


# ----------------------------------------------------------------------------- compilation


def test_epoch_can_keep_the_remainder_as_one_smaller_step():
    cfg, params, mstate, x, y = _small_problem()
    n = x.shape[0]
    assert n % 24  # the case under test: 24 does not divide the rows
    seen = []

    def recording_loss(*a):  # a[2] is the batch: record its size while tracing
        seen.append(a[2].shape[0])
        return mlp.make_loss_fn(cfg, "softmax_cross_entropy_with_integer_labels")(*a)

    tx = optim.get("sgd", 0.0)  # frozen parameters: every step's loss is that batch's loss
    fresh = lambda: TrainState.create(  # copies: the epoch donates its state's buffers
        params=jax.tree.map(jnp.array, params), tx=tx, key=jax.random.PRNGKey(0),
        model_state=jax.tree.map(jnp.array, mstate))
    keep = make_train_epoch(make_train_step(recording_loss, tx), 24, drop_remainder=False)
    _, m = keep(fresh(), x, y, jax.random.PRNGKey(3))
    assert m["loss"].shape == (-(-n // 24),) and sorted(set(seen)) == sorted({24, n % 24})
    sizes = np.array([24] * (n // 24) + [n % 24])
    full = make_eval_fn(mlp.make_loss_fn(cfg, "softmax_cross_entropy_with_integer_labels"),
                        loss_name="softmax_cross_entropy_with_integer_labels")(fresh(), x, y)
    # every row once: the batch losses weighted by batch size give the loss over all rows
    assert float(np.sum(np.asarray(m["loss"]) * sizes) / n) == pytest.approx(
        float(full["loss"]), rel=1e-5)
    # the default drops the remainder, with the same permutation for the full batches
    drop = make_train_epoch(make_train_step(recording_loss, tx), 24)
    _, md = drop(fresh(), x, y, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(md["loss"], m["loss"][:-1])


def test_epoch_and_eval_compile_once_per_shape():
    loss = "softmax_cross_entropy_with_integer_labels"
    cfg, params, mstate, x, y = _small_problem()
    traces = {"train": 0}
    base_loss = mlp.make_loss_fn(cfg, loss)

    def counted_loss(*a):
        traces["train"] += 1  # runs only while jax traces the function
        return base_loss(*a)

    tx = optim.get("sgd", 0.1)
    epoch = make_train_epoch(make_train_step(counted_loss, tx), batch_size=16)
    st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(0), model_state=mstate)
    for e in range(4):
        st, m = epoch(st, x, y, jax.random.PRNGKey(e))
    assert traces["train"] == 1
    assert epoch._cache_size() == 1
    assert m["loss"].shape == (4,)
    # a new data shape compiles once more, and only once
    for e in range(3):
        st, _ = epoch(st, x[:32], y[:32], jax.random.PRNGKey(e))
    assert traces["train"] == 2
    assert epoch._cache_size() == 2

    ev = make_eval_fn(base_loss, loss_name=loss, batch_size=24, metrics_fn=classification_metrics)
    for _ in range(3):
        r1 = ev(st, x, y)
    assert 0.0 <= float(r1["accuracy"]) <= 1.0
    # the padded chunks give the same numbers as one big batch
    r_big = make_eval_fn(base_loss, loss_name=loss, batch_size=1000,
                         metrics_fn=classification_metrics)(st, x, y)
    np.testing.assert_allclose(float(r1["loss"]), float(r_big["loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(r1["accuracy"]), float(r_big["accuracy"]))


def test_the_fit_loop_compiles_its_epoch_once(tmp_path, monkeypatch):
    traces = []
    real = loop_lib.make_train_step

    def counting_make_train_step(loss_fn, *a, **k):
        def counted(*args):
            traces.append(1)
            return loss_fn(*args)

        return real(counted, *a, **k)

    monkeypatch.setattr(loop_lib, "make_train_step", counting_make_train_step)
    h = train_and_evaluate(_load(None, "training.epochs=5", "data.n_train=300"), tmp_path / "r")
    assert len(h.rows) == 5
    assert len(traces) == 1


def test_the_epoch_shuffle_is_keyed_and_reproducible(tmp_path):
    a = train_and_evaluate(_load(None, "training.epochs=2", "data.n_train=300"), tmp_path / "a")
    b = train_and_evaluate(_load(None, "training.epochs=2", "data.n_train=300"), tmp_path / "b")
    c = train_and_evaluate(_load(None, "training.epochs=2", "data.n_train=300",
                                 "training.seed=1"), tmp_path / "c")
    assert a.metric("loss") == b.metric("loss")
    assert a.metric("loss") != c.metric("loss")
    params_a = (tmp_path / "a/params.msgpack").read_bytes()
    assert params_a == (tmp_path / "b/params.msgpack").read_bytes()


# ----------------------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_restores_the_best_parameters(tmp_path):
    # 100 training images and a large learning rate: val_loss turns up within a few epochs.
    cfg = _load(None, "data.n_train=100", "data.validation_fraction=0.3", "training.epochs=200",
                "optimizer.learning_rate=0.01", "training.early_stopping.enabled=true",
                "training.early_stopping.patience=3", "training.batch_size=16")
    h = train_and_evaluate(cfg, tmp_path / "es")
    assert h.stopped_early
    assert len(h.rows) < 200
    vals = h.metric("val_loss")
    best = int(np.argmin(vals))
    assert h.best_epoch == best + 1
    assert len(h.rows) == h.best_epoch + 3  # exactly `patience` epochs without improvement
    # the returned parameters are the best epoch's, not the last epoch's
    assert h.final["val_loss"] == pytest.approx(vals[best], rel=1e-5)
    assert h.final["val_loss"] < vals[-1]
    assert (tmp_path / "es/checkpoints/best.jaxnn").exists()


def test_min_delta_decides_the_patience_and_the_best_value_decides_the_restored_epoch(tmp_path):
    # With min_delta=0.1 the small improvements after the early ones do not reset the
    # patience, so the run stops `patience` epochs after the last improvement by 0.1 --
    # but the epoch brought back is the one with the lowest val_loss, and the log, the
    # summary and best.jaxnn name that same epoch.
    cfg = _load(None, *ES_RUN, "training.epochs=30", "training.early_stopping.patience=4",
                "training.early_stopping.min_delta=0.1")
    h = train_and_evaluate(cfg, tmp_path / "md")
    vals = h.metric("val_loss")
    counted, best = [], np.inf  # the epochs that beat the best by more than min_delta
    for i, v in enumerate(vals):
        if v < best - 0.1:
            counted.append(i + 1)
            best = v
    assert h.stopped_early and len(h.rows) == counted[-1] + 4
    argmin = int(np.argmin(vals)) + 1
    assert argmin not in counted  # the case under test: the best epoch beat its predecessor
    assert h.best_epoch == argmin  # by less than min_delta
    assert h.final["val_loss"] == pytest.approx(vals[argmin - 1], rel=1e-5)
    raw = (tmp_path / "md/checkpoints/best.jaxnn").read_bytes()
    blob = flax.serialization.msgpack_restore(raw[checkpoint_lib._HEADER.size:])
    assert json.loads(blob["meta"])["epoch"] == argmin
    assert json.loads((tmp_path / "md/history.json").read_text())["best_epoch"] == argmin


def test_early_stopping_on_a_monitor_never_finite_says_so(tmp_path, monkeypatch, capsys):
    # A monitored value that is NaN from the first epoch on never improves: the run stops
    # after `patience` epochs. The epoch line formatted the best value (None) and raised
    # TypeError after the training; it says there was no finite value, and the last
    # epoch's parameters are kept (there is no best epoch to restore).
    real = loop_lib.make_eval_fn

    def nan_val_loss(*args, **kwargs):
        fn = real(*args, **kwargs)

        def wrapped(state, xs, ys):
            out = dict(fn(state, xs, ys))
            if xs.shape[0] == 45:  # the validation split (30% of 150 rows)
                out["loss"] = jnp.float32(jnp.nan)
            return out
        return wrapped

    monkeypatch.setattr(loop_lib, "make_eval_fn", nan_val_loss)
    cfg = _load(None, *ES_RUN, "logging.print_every=1")
    h = train_and_evaluate(cfg, tmp_path / "nan", stream=None)
    assert h.stopped_early and len(h.rows) == 2 and h.best_epoch == -1
    out = capsys.readouterr().out
    assert "early stop (no finite val_loss in 2 epochs)" in out
    assert not (tmp_path / "nan/checkpoints/best.jaxnn").exists()


def test_early_stopping_monitor_must_be_logged(tmp_path):
    cfg = _load(None, "training.early_stopping.enabled=true")  # val_loss, but no validation split
    with pytest.raises(ConfigError, match=r"val_loss.*validation_fraction"):
        train_and_evaluate(cfg, tmp_path / "x")
    assert not (tmp_path / "x").exists()  # failed before anything was written


def test_reduce_on_plateau_lowers_the_learning_rate(tmp_path):
    cfg = _load(None, "data.n_train=100", "data.validation_fraction=0.3", "training.epochs=25",
                "optimizer.learning_rate=0.01", "training.reduce_on_plateau.enabled=true",
                "training.reduce_on_plateau.patience=1", "training.batch_size=16")
    h = train_and_evaluate(cfg, tmp_path / "rp")
    lrs = h.metric("learning_rate")
    assert lrs[0] == pytest.approx(0.01)
    assert min(lrs) <= 0.0025 + 1e-9  # at least two halvings
    assert all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:], strict=False))


def test_a_schedule_given_in_epochs_reaches_the_logs(tmp_path):
    cfg = _load(None, "schedule.name=cosine_decay_schedule",
                "schedule.epoch_options.decay_steps=4", "training.epochs=4", "data.n_train=320",
                "training.batch_size=32")
    h = train_and_evaluate(cfg, tmp_path / "s")
    lrs = h.metric("learning_rate")
    # cosine from 1e-3 to 0 over 40 steps; the logged value is the last step's of each epoch
    expected = [0.5e-3 * (1 + np.cos(np.pi * min(10 * (e + 1) - 1, 40) / 40)) for e in range(4)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-4, atol=1e-9)


def test_an_epoch_option_shorter_than_one_step_is_named():
    # 0.1 epoch of 4 steps rounds to 0 steps: the error names what was written, in epochs,
    # not the derived transition_steps=0 the user never wrote.
    cfg = _load(None, "schedule.name=exponential_decay", "schedule.options={decay_rate: 0.5}",
                "schedule.epoch_options={transition_steps: 0.1}")
    with pytest.raises(ConfigError, match=r"schedule\.epoch_options\.transition_steps: got 0\.1"
                                          r".* 4 steps per epoch.*>= 0\.25"):
        loop_lib.build_schedule(cfg, 4)
    assert callable(loop_lib.build_schedule(C.replace(cfg, "schedule.epoch_options",
                                                      {"transition_steps": 0.25}), 4))


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_corruption_is_named(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.int32(7)}
    path = tmp_path / "c.jaxnn"
    write_checkpoint(path, tree, {"epoch": 3})
    got, meta = read_checkpoint(path, tree)
    np.testing.assert_array_equal(got["w"], tree["w"])
    assert meta == {"epoch": 3}
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away
    data = path.read_bytes()
    bad = tmp_path / "bad.jaxnn"
    for broken in (data[: len(data) // 2], data[:-1] + bytes([data[-1] ^ 1]), b"", b"junk" * 10):
        bad.write_bytes(broken)
        with pytest.raises(CheckpointError, match=str(bad)):
            read_checkpoint(bad, tree)
    with pytest.raises(CheckpointError, match="missing"):
        read_checkpoint(tmp_path / "missing.jaxnn", tree)
    with pytest.raises(CheckpointError, match="does not match"):
        read_checkpoint(path, {"w": np.zeros((3, 3), np.float32), "step": np.int32(0)})


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    tree = {"w": np.arange(6, dtype=np.float32)}
    path = tmp_path / "c.jaxnn"
    write_checkpoint(path, tree, {"epoch": 1})
    before = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")  # what a write or fsync gives: no name

    monkeypatch.setattr(checkpoint_lib.os, "fsync", full)
    with pytest.raises(OSError, match=r"No space left on device: '.*c\.jaxnn'"):
        write_checkpoint(path, tree, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.jaxnn"]  # no temporary file left


def test_manager_keeps_last_n_plus_best_and_falls_back_past_a_corrupt_file(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=2)
    tree = {"x": np.zeros(3, np.float32)}
    for e in range(1, 6):
        mgr.save(e, {"x": np.full(3, e, np.float32)}, {"epoch": e}, best=(e == 2))
    assert mgr.epochs() == [4, 5]
    assert mgr.best_path.exists()
    got, meta = read_checkpoint(mgr.best_path, tree)
    assert meta["epoch"] == 2
    mgr.path(5).write_bytes(mgr.path(5).read_bytes()[:40])  # truncated, as by a crash
    got, meta, path, problems = mgr.restore_latest(tree)
    assert meta["epoch"] == 4 and path == mgr.path(4)
    np.testing.assert_array_equal(got["x"], 4.0)
    assert len(problems) == 1 and "ckpt_000005" in problems[0]


def test_a_new_run_sets_aside_files_not_written_by_a_run_of_its_config(tmp_path, capsys):
    # The user's own config (comments and all) in the folder the run writes to, and the logs
    # of a killed run of another config: set aside, not overwritten without a word.
    cfg = _load(None, "data.n_train=200", "training.epochs=1")
    wd = tmp_path / "mine"
    wd.mkdir()
    mine = "# my notes on this experiment\ntraining:\n  epochs: 1\n"
    (wd / "config.yaml").write_text(mine)
    (wd / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    # and parameters and a figure a run writes at its end (they were overwritten silently)
    (wd / "params.msgpack").write_bytes(b"my trained params")
    (wd / "loss.png").write_bytes(b"my figure")
    train_and_evaluate(cfg, wd)
    assert (wd / "config.unmatched.yaml").read_text() == mine
    assert (wd / "metrics.unmatched.csv").read_text() == "epoch,loss\n1,0.5\n"
    assert (wd / "params.unmatched.msgpack").read_bytes() == b"my trained params"
    assert (wd / "loss.unmatched.png").read_bytes() == b"my figure"
    assert (wd / "params.msgpack").read_bytes() != b"my trained params"
    saved = dataclasses.replace(cfg, distributed=C.DistributedConfig())
    assert (wd / "config.yaml").read_text() == C.dumps(saved)
    err = capsys.readouterr().err
    assert ("set aside: config.yaml -> config.unmatched.yaml, "
            "metrics.csv -> metrics.unmatched.csv, params.msgpack -> params.unmatched.msgpack, "
            "loss.png -> loss.unmatched.png") in err
    # A killed run of this very config (its config.yaml, no checkpoint yet) is simply
    # started again: nothing set aside.
    killed = tmp_path / "killed"
    killed.mkdir()
    C.dump(saved, killed / "config.yaml")
    (killed / "metrics.jsonl").write_text('{"epoch": 1}\n{"ep')
    train_and_evaluate(cfg, killed)
    assert sorted(p.name for p in killed.iterdir() if "unmatched" in p.name) == []
    assert "set aside" not in capsys.readouterr().err


def test_a_new_run_refuses_a_folder_holding_a_depth_study(tmp_path):
    # It would set the study's config.yaml aside, and --report-from then refuse the folder.
    cfg = _load(None, "data.n_train=200", "training.epochs=1")
    for marker in (("manifest.json",), ("table.csv", "report.md")):
        wd = tmp_path / "_".join(marker)
        wd.mkdir()
        for name in marker:
            (wd / name).write_text("x\n")
        (wd / "config.yaml").write_text("depths: [2]\n")
        with pytest.raises(C.ConfigError, match="holds a depth study"):
            train_and_evaluate(cfg, wd)
        assert (wd / "config.yaml").read_text() == "depths: [2]\n"
        assert sorted(p.name for p in wd.iterdir()) == sorted([*marker, "config.yaml"])


def test_resume_continues_to_the_same_parameters(tmp_path):
    base = ("data.n_train=300", "model.dropout_rate=0.2", "model.batch_norm=true")
    full = train_and_evaluate(_load(None, *base, "training.epochs=4"), tmp_path / "full")
    part = tmp_path / "part"
    train_and_evaluate(_load(None, *base, "training.epochs=2"), part)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_and_evaluate(_load(None, *base, "training.epochs=4"), part)
    resumed = train_and_evaluate(_load(None, *base, "training.epochs=4"), part, resume=True)
    assert [r["loss"] for r in resumed.rows] == [r["loss"] for r in full.rows]
    assert (part / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path, capsys):
    cfg = _load(None, "data.n_train=300", "training.epochs=3")
    train_and_evaluate(cfg, tmp_path / "full")
    run = tmp_path / "run"
    train_and_evaluate(cfg, run)
    latest = run / "checkpoints/ckpt_000003.jaxnn"
    latest.write_bytes(latest.read_bytes()[:100])
    (run / "params.msgpack").unlink()
    h = train_and_evaluate(cfg, run, resume=True)  # falls back to epoch 2 and redoes 3
    assert "skipped" in capsys.readouterr().err and "ckpt_000003" in latest.name
    assert len(h.rows) == 3
    assert (run / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()
    # every checkpoint unreadable: a clear error naming the files
    for f in (run / "checkpoints").glob("*.jaxnn"):
        f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="ckpt_"):
        train_and_evaluate(cfg, run, resume=True)


# A small digits run whose validation loss improves at epochs that are not checkpoint
# epochs, with dropout and batch norm (both must be restored exactly).
ES_RUN = ("data.n_train=150", "data.validation_fraction=0.3", "training.epochs=20",
          "optimizer.learning_rate=0.05", "training.batch_size=16", "model.hidden_sizes=[32]",
          "model.dropout_rate=0.3", "model.batch_norm=true", "training.keep_checkpoints=50",
          "training.early_stopping.enabled=true", "training.early_stopping.patience=2")


class _Interrupt(Exception):
    pass


def _interrupted(monkeypatch, cfg, workdir, after_epoch):
    """Train until the numbered checkpoint of ``after_epoch`` is written, then stop."""
    save = CheckpointManager.save

    def save_then_stop(self, epoch, *args, **kwargs):
        path = save(self, epoch, *args, **kwargs)
        if epoch == after_epoch:
            raise _Interrupt
        return path

    with monkeypatch.context() as m:
        m.setattr(CheckpointManager, "save", save_then_stop)
        with pytest.raises(_Interrupt):
            train_and_evaluate(cfg, workdir)


def test_resume_restores_the_best_epoch_also_between_checkpoints(tmp_path, monkeypatch):
    # checkpoint_every=3: the best epoch (11 here) falls between numbered checkpoints.
    # best.jaxnn must hold it, so that a run resumed after epoch 12 restores the same
    # parameters as the uninterrupted run (it restored epoch 9 before).
    cfg = _load(None, *ES_RUN, "training.checkpoint_every=3")
    full = train_and_evaluate(cfg, tmp_path / "full")
    assert full.stopped_early and full.best_epoch % 3 != 0  # the case under test
    raw = (tmp_path / "full/checkpoints/best.jaxnn").read_bytes()
    blob = flax.serialization.msgpack_restore(raw[checkpoint_lib._HEADER.size:])
    assert json.loads(blob["meta"])["epoch"] == full.best_epoch
    stop = 3 * (full.best_epoch // 3 + 1)  # the first numbered checkpoint after the best
    assert stop < len(full.rows)
    _interrupted(monkeypatch, cfg, tmp_path / "part", stop)
    resumed = train_and_evaluate(C.load(tmp_path / "part/config.yaml"), tmp_path / "part",
                                 resume=True)
    assert resumed.best_epoch == full.best_epoch and resumed.final == full.final
    assert (tmp_path / "part/params.msgpack").read_bytes() == \
        (tmp_path / "full/params.msgpack").read_bytes()


def test_restore_best_after_a_resume_falls_back_to_the_numbered_checkpoint(
        tmp_path, monkeypatch, capsys):
    # best.jaxnn unreadable: the resumed run kept the last epoch's parameters although the
    # numbered checkpoint of the best epoch was on disk.
    cfg = _load(None, *ES_RUN, "training.checkpoint_every=1")
    full = train_and_evaluate(cfg, tmp_path / "full")
    assert full.stopped_early and full.best_epoch < len(full.rows)
    part = tmp_path / "part"
    _interrupted(monkeypatch, cfg, part, len(full.rows) - 1)
    best = part / "checkpoints" / "best.jaxnn"
    best.write_bytes(best.read_bytes()[:100])  # torn
    capsys.readouterr()
    resumed = train_and_evaluate(C.load(part / "config.yaml"), part, resume=True)
    err = capsys.readouterr().err
    numbered = part / "checkpoints" / f"ckpt_{full.best_epoch:06d}.jaxnn"
    assert f"restored the best epoch from {numbered}" in err and str(best) in err
    assert resumed.best_epoch == full.best_epoch and resumed.final == full.final
    assert (part / "params.msgpack").read_bytes() == \
        (tmp_path / "full/params.msgpack").read_bytes()
    # Neither file: the last epoch's parameters, and one line saying so.
    part2 = tmp_path / "part2"
    _interrupted(monkeypatch, cfg, part2, len(full.rows) - 1)
    (part2 / "checkpoints" / "best.jaxnn").write_bytes(b"junk")
    (part2 / "checkpoints" / f"ckpt_{full.best_epoch:06d}.jaxnn").unlink()
    capsys.readouterr()
    again = train_and_evaluate(C.load(part2 / "config.yaml"), part2, resume=True)
    err = capsys.readouterr().err
    assert "keeping the last epoch's parameters" in err
    assert again.final != full.final


def test_resume_takes_the_new_early_stopping_patience(tmp_path, monkeypatch):
    longer = _load(None, *ES_RUN, "training.early_stopping.patience=5")
    full = train_and_evaluate(longer, tmp_path / "full")
    short = _load(None, *ES_RUN, "training.checkpoint_every=1")
    first = train_and_evaluate(short, tmp_path / "short")
    assert len(first.rows) < len(full.rows)  # patience 2 stops earlier than 5
    _interrupted(monkeypatch, short, tmp_path / "part", len(first.rows) - 1)
    cfg = C.load(tmp_path / "part/config.yaml", ["training.early_stopping.patience=5"])
    resumed = train_and_evaluate(cfg, tmp_path / "part", resume=True)
    assert len(resumed.rows) == len(full.rows)
    assert resumed.best_epoch == full.best_epoch and resumed.final == full.final
    assert C.load(tmp_path / "part/config.yaml").training.early_stopping.patience == 5


def test_early_stopping_turned_on_at_a_resume_counts_the_epochs_before_it(tmp_path):
    # The patience counter used to run only while early stopping was on: a run resumed
    # with it turned on started counting afresh (its first epoch always "improved"), and
    # trained on past the epoch where the uninterrupted run stopped.
    full = train_and_evaluate(_load(None, *ES_RUN), tmp_path / "full")
    stop = len(full.rows)
    assert full.stopped_early and stop - full.best_epoch == 2  # patience 2
    part = tmp_path / "part"
    train_and_evaluate(_load(None, *ES_RUN, "training.early_stopping.enabled=false",
                             f"training.epochs={stop - 1}"), part)
    resumed = train_and_evaluate(C.load(part / "config.yaml", [
        "training.early_stopping.enabled=true", "training.epochs=20"]), part, resume=True)
    assert len(resumed.rows) == stop and resumed.stopped_early
    assert resumed.best_epoch == full.best_epoch and resumed.final == full.final
    assert (part / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()
    # A run without a validation split watched `loss` in place of the unlogged default
    # monitor val_loss: turning early stopping on with monitor=loss is the same metric.
    xor = tmp_path / "xor"
    train_and_evaluate(_load("xor", "training.epochs=2"), xor)
    h = train_and_evaluate(C.load(xor / "config.yaml", [
        "training.early_stopping.enabled=true", "training.early_stopping.monitor=loss",
        "training.epochs=3"]), xor, resume=True)
    assert len(h.rows) == 3
    # Another metric is refused, naming the one watched (what the user may set).
    with pytest.raises(ConfigError, match="made with training.early_stopping.monitor='loss', "
                                          "this config has 'test_loss'"):
        train_and_evaluate(C.load(xor / "config.yaml", [
            "training.early_stopping.enabled=true", "training.early_stopping.monitor=test_loss",
            "training.epochs=4"]), xor, resume=True)


def test_early_stopping_turned_on_at_a_resume_of_an_older_run_counts_the_epochs_before_it(
        tmp_path):
    # A run checkpointed by the code that counted patience only while early stopping was
    # on holds a pristine counter (best None, wait 0) although its rows hold every epoch's
    # metric: turned on at a resume, the counter started afresh and trained past the epoch
    # where the uninterrupted run stopped.
    full = train_and_evaluate(_load(None, *ES_RUN), tmp_path / "full")
    stop = len(full.rows)
    part = tmp_path / "part"
    train_and_evaluate(_load(None, *ES_RUN, "training.early_stopping.enabled=false",
                             f"training.epochs={stop - 1}"), part)
    for ckpt in (part / "checkpoints").glob("*.jaxnn"):  # as the older code wrote them
        raw = ckpt.read_bytes()
        blob = flax.serialization.msgpack_restore(raw[checkpoint_lib._HEADER.size:])
        meta = json.loads(blob["meta"])
        meta["early_stopping"].update(best_value=None, best_epoch=-1, wait=0,
                                      has_improved=False, should_stop=False)
        payload = flax.serialization.msgpack_serialize({**blob, "meta": json.dumps(meta)})
        ckpt.write_bytes(checkpoint_lib._HEADER.pack(
            checkpoint_lib.MAGIC, hashlib.sha256(payload).digest(), len(payload)) + payload)
    resumed = train_and_evaluate(C.load(part / "config.yaml", [
        "training.early_stopping.enabled=true", "training.epochs=20"]), part, resume=True)
    assert len(resumed.rows) == stop and resumed.stopped_early
    assert resumed.best_epoch == full.best_epoch and resumed.final == full.final


def test_resuming_a_run_that_stopped_early_with_more_epochs_says_why_it_trains_no_further(
        tmp_path, capsys):
    # It returned the same run without a word, as if the new epochs had been ignored.
    run = tmp_path / "run"
    full = train_and_evaluate(_load(None, *ES_RUN), run)
    assert full.stopped_early
    stop = len(full.rows)
    capsys.readouterr()
    again = train_and_evaluate(C.load(run / "config.yaml", [f"training.epochs={stop + 5}"]),
                               run, resume=True)
    err = capsys.readouterr().err
    assert len(again.rows) == stop and again.stopped_early
    assert (f"warning: early stopping ends the run at epoch {stop} (val_loss last improved at "
            f"epoch {full.best_epoch}, patience 2)") in err
    assert "training.early_stopping.patience" in err
    # With patience raised it goes on (and says nothing).
    more = train_and_evaluate(C.load(run / "config.yaml", [
        f"training.epochs={stop + 1}", "training.early_stopping.patience=50"]), run,
        resume=True)
    assert len(more.rows) == stop + 1 and "early stopping ends" not in capsys.readouterr().err


def test_resume_refuses_another_experiment_and_keeps_config_yaml(tmp_path):
    run = tmp_path / "run"
    cfg = _load(None, "data.n_train=300", "training.epochs=1")
    train_and_evaluate(cfg, run)
    saved = (run / "config.yaml").read_text()
    for change, key in [("data.n_train=200", "data.n_train"), ("training.seed=3", "training.seed"),
                        ("model.dropout_rate=0.5", "model.dropout_rate"),
                        ("training.batch_size=32", "training.batch_size"),
                        ("training.drop_remainder=false", "training.drop_remainder"),
                        # the objective: it changed the loss silently mid-run
                        ("training.label_smoothing=0.1", "training.label_smoothing")]:
        with pytest.raises(ConfigError, match=rf"--resume: the run was made with {key}="):
            train_and_evaluate(C.load(run / "config.yaml", [change, "training.epochs=2"]), run,
                               resume=True)
    # A change that no checkpoint's state fits is named too (it used to read "no usable
    # checkpoint ... does not match this run's state"), and a resume that fails leaves
    # config.yaml as it was (it used to be rewritten with the failing change, so a plain
    # --resume failed too).
    for changes, key in [
        (["model.hidden_sizes=[32]"], "model.hidden_sizes"),
        (["optimizer.name=sgd"], "optimizer.name"),
        (["optimizer.clip_global_norm=1.0"], "optimizer.clip_global_norm"),
        (["training.reduce_on_plateau.enabled=true", "training.reduce_on_plateau.monitor=loss"],
         "training.reduce_on_plateau.enabled"),
    ]:
        with pytest.raises(ConfigError, match=rf"--resume: the run was made with {key}="):
            train_and_evaluate(C.load(run / "config.yaml", [*changes, "training.epochs=2"]),
                               run, resume=True)
    assert (run / "config.yaml").read_text() == saved
    # What may change: epochs, the learning rate.
    h = train_and_evaluate(C.load(run / "config.yaml", ["training.epochs=2",
                                                        "optimizer.learning_rate=1e-4"]),
                           run, resume=True)
    assert len(h.rows) == 2
    # A finished run without numbered checkpoints is not overwritten by a new one either.
    plain = tmp_path / "plain"
    train_and_evaluate(_load(None, "data.n_train=300", "training.epochs=1",
                             "training.checkpoint_every=0"), plain)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_and_evaluate(_load(None, "data.n_train=300", "training.epochs=1",
                                 "training.checkpoint_every=0"), plain)


def test_resume_reads_a_field_missing_from_an_older_run_as_its_default():
    # A run saved before training.drop_remainder existed trained with the default (true):
    # resuming it with the default is the same experiment, with false it is not.
    now = C.to_dict(_load(None))
    saved = json.loads(json.dumps(now))
    del saved["training"]["drop_remainder"]
    loop_lib._check_resume_config(saved, now)
    changed = C.to_dict(_load(None, "training.drop_remainder=false"))
    with pytest.raises(ConfigError, match="made with training.drop_remainder=True"):
        loop_lib._check_resume_config(saved, changed)


def test_resume_refuses_a_state_of_the_same_shape_read_as_another_one(tmp_path):
    # adam -> adamax (or nadam) restores: the same arrays (count, mu, nu), so no shape
    # check caught it, and adamax read adam's mean of squares as its max of |g|. A plateau
    # monitor or mode changed: its saved best value (of another metric, or of the other
    # sign) was compared with the new one. Both used to continue silently.
    run = tmp_path / "run"
    # grad_norm: a metric with no better direction, so that either mode is valid for it.
    plateau = ("training.reduce_on_plateau.enabled=true",
               "training.reduce_on_plateau.monitor=grad_norm")
    train_and_evaluate(_load("xor", *plateau, "training.epochs=1"), run)
    for changes, key in [
        (["optimizer.name=adamax"], "optimizer.name"),
        (["training.reduce_on_plateau.monitor=test_loss"], "training.reduce_on_plateau.monitor"),
        (["training.reduce_on_plateau.mode=max"], "training.reduce_on_plateau.mode"),
    ]:
        with pytest.raises(ConfigError, match=rf"--resume: the run was made with {key}="):
            train_and_evaluate(C.load(run / "config.yaml", [*changes, "training.epochs=2"]),
                               run, resume=True)
    # data.download says how the files may be found, not which data: an offline resume
    # (download=false) was refused as "another experiment".
    h = train_and_evaluate(C.load(run / "config.yaml", ["data.download=false",
                                                        "training.epochs=2"]), run, resume=True)
    assert len(h.rows) == 2
    # A plateau monitor of a run without reduce-on-plateau is not used: free to change.
    plain = tmp_path / "plain"
    train_and_evaluate(_load("xor", "training.epochs=1"), plain)
    h = train_and_evaluate(C.load(plain / "config.yaml", [
        "training.reduce_on_plateau.monitor=loss", "training.epochs=2"]), plain, resume=True)
    assert len(h.rows) == 2


@pytest.mark.parametrize("grad", ["autodiff", "manual"])
def test_sigmoid_binary_cross_entropy_learns_xor(tmp_path, grad):
    # One logit per example; the 0/1 labels are fed as a column.
    h = train_and_evaluate(_load("xor", "training.loss=sigmoid_binary_cross_entropy",
                                 f"training.grad={grad}"), tmp_path / "run")
    assert h.final["test_accuracy"] == 1.0 and h.final["test_loss"] < 0.05
    assert _params(tmp_path / "run")["layers"]["1"]["w"].shape == (8, 1)


def test_losses_and_outputs_that_do_not_fit_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="'sigmoid_binary_cross_entropy' needs two classes.*10"):
        train_and_evaluate(_load(None, "training.loss=sigmoid_binary_cross_entropy"),
                           tmp_path / "a")
    with pytest.raises(ConfigError, match="model: .*output_activation must be 'linear'"):
        train_and_evaluate(_load("xor", "model.output_activation=softmax"), tmp_path / "b")


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        train_and_evaluate(_load(None, "training.epochs=1"), tmp_path / "none", resume=True)
    # a finished run made without checkpoints: the error says why there are none
    cfg = _load(None, "training.epochs=1", "data.n_train=100", "training.checkpoint_every=0")
    train_and_evaluate(cfg, tmp_path / "plain")
    with pytest.raises(CheckpointError, match="made with training.checkpoint_every=0, which "
                                              "writes no checkpoints"):
        train_and_evaluate(C.load(tmp_path / "plain/config.yaml", ["training.epochs=2"]),
                           tmp_path / "plain", resume=True)


def test_a_crash_between_the_final_writes_leaves_no_stale_summary(tmp_path, monkeypatch):
    # A finished 2-epoch run, resumed to 3 epochs and killed between params.msgpack and
    # history.json: the history used to say 2 epochs (and their final metrics) beside the
    # 3-epoch parameters. Now it is gone until the run is finished again.
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", "training.epochs=2"), run)
    write = loop_lib.write_bytes

    def crash_at_history(path, data):
        if pathlib.Path(path).name == "history.json":
            raise _Interrupt
        return write(path, data)

    monkeypatch.setattr(loop_lib, "write_bytes", crash_at_history)
    with pytest.raises(_Interrupt):
        train_and_evaluate(_load("xor", "training.epochs=3"), run, resume=True)
    monkeypatch.undo()
    assert not (run / "history.json").exists()
    h = train_and_evaluate(_load("xor", "training.epochs=3"), run, resume=True)  # finishes it
    assert json.loads((run / "history.json").read_text())["epochs_run"] == len(h.rows) == 3


def test_a_resume_rewrites_the_logs_of_epochs_past_its_checkpoint(tmp_path):
    # Killed during epoch 4 with checkpoints every 2 epochs: metrics.jsonl holds epoch 3,
    # the checkpoint epoch 2. A resume that trains no further (epochs=2) used to leave the
    # log at 3 lines beside a 2-epoch history and parameters.
    run = tmp_path / "run"
    cfg = _load("xor", "training.epochs=2", "training.checkpoint_every=2")
    train_and_evaluate(cfg, run)
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([*lines, lines[-1].replace('"epoch": 2', '"epoch": 3')]) + "\n")
    h = train_and_evaluate(cfg, run, resume=True)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]
    assert len(h.rows) == 2
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 rows


def _tensorboard_scalars(run: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` of every event file in ``run/tensorboard``, read with
    tensorboardX's own protobuf (TFRecord framing: length, its crc, data, the data's crc)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        blob, i = path.read_bytes(), 0
        while i < len(blob):
            n = int.from_bytes(blob[i:i + 8], "little")
            event = event_pb2.Event.FromString(blob[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def _tensorboard_curves(run: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars that two runs of one seed share (all but the wall time)."""
    return {k: v for k, v in _tensorboard_scalars(run).items() if k != "time_s"}


def test_tensorboard_logs_every_metric_of_every_epoch(tmp_path):
    run = tmp_path / "run"
    h = train_and_evaluate(_load("xor", "training.epochs=3", "logging.tensorboard=true"), run)
    scalars = _tensorboard_scalars(run)
    assert set(scalars) == set(h.rows[0]) - {"epoch", "step"}
    for tag, points in scalars.items():
        assert [s for s, _ in points] == [r["step"] for r in h.rows], tag
        np.testing.assert_allclose([v for _, v in points], [r[tag] for r in h.rows],
                                   rtol=1e-6, err_msg=tag)


def test_a_resume_rewrites_the_tensorboard_events_from_its_checkpoint(tmp_path):
    # Killed after epoch 3 with checkpoints every 2: TensorBoard held epoch 3's points, and
    # the resumed run logged epoch 3 again beside them (two values at one step). Turning
    # TensorBoard on at a resume logged only the epochs after it.
    sets = ("training.checkpoint_every=2", "logging.tensorboard=true")
    full = train_and_evaluate(_load("xor", "training.epochs=4", *sets), tmp_path / "full")
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", "training.epochs=3", *sets), run)
    (run / "checkpoints" / "ckpt_000003.jaxnn").unlink()  # as if killed before saving it
    train_and_evaluate(_load("xor", "training.epochs=4", *sets), run, resume=True)
    assert _tensorboard_curves(run) == _tensorboard_curves(tmp_path / "full")
    assert len(_tensorboard_scalars(run)["time_s"]) == len(full.rows) == 4
    off = tmp_path / "off"
    train_and_evaluate(_load("xor", "training.epochs=2", "training.checkpoint_every=2"), off)
    train_and_evaluate(_load("xor", "training.epochs=4", *sets), off, resume=True)
    assert _tensorboard_curves(off) == _tensorboard_curves(tmp_path / "full")


def _meta(path: pathlib.Path) -> dict:
    raw = path.read_bytes()[checkpoint_lib._HEADER.size:]
    return json.loads(flax.serialization.msgpack_restore(raw)["meta"])


def test_checkpoints_do_not_grow_with_the_epochs(tmp_path):
    # Each checkpoint carried every logged row (best.jaxnn, rewritten at every improvement,
    # too): a long run with checkpoint_every=1 wrote a file as long as its whole history
    # every epoch. A checkpoint now marks where metrics.jsonl stood instead.
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", "training.epochs=40", "training.checkpoint_every=20",
                             "logging.grad_norms=true", "training.keep_checkpoints=2"), run)
    ck = run / "checkpoints"
    first, last = _meta(ck / "ckpt_000020.jaxnn"), _meta(ck / "ckpt_000040.jaxnn")
    for meta in (first, last, _meta(ck / "best.jaxnn")):
        assert "rows" not in meta
    assert first["log"]["rows"] == 20 and last["log"]["rows"] == 40
    log = (run / "metrics.jsonl").read_bytes()
    assert last["log"]["bytes"] == len(log)
    assert last["log"]["sha256"] == hashlib.sha256(log).hexdigest()
    assert first["log"]["sha256"] == hashlib.sha256(log[:first["log"]["bytes"]]).hexdigest()
    size = {p.name: p.stat().st_size for p in ck.glob("ckpt_*.jaxnn")}
    assert abs(size["ckpt_000040.jaxnn"] - size["ckpt_000020.jaxnn"]) < 8, size


def test_the_logs_are_appended_to_not_rewritten_each_epoch(tmp_path, monkeypatch):
    # Every epoch rewrote metrics.jsonl and metrics.csv whole (write, fsync, rename): 2000
    # XOR epochs spent ~70 s of a 78 s run on it. They are written once at the start (or a
    # resume) and appended to after.
    import os

    renamed: list[str] = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append(pathlib.Path(b).name),
                                                     replace(a, b))[1])
    run = tmp_path / "run"
    h = train_and_evaluate(_load("xor", "training.epochs=12", "training.checkpoint_every=4"),
                           run)
    assert renamed.count("metrics.jsonl") == 1 and renamed.count("metrics.csv") == 1
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == list(h.rows)
    import csv

    with open(run / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [{k: float(v) for k, v in r.items()} for r in table] == [
        {k: float(v) for k, v in r.items()} for r in h.rows]


def _same_rows(a, b):
    # two runs of one seed log the same values; only the wall times differ
    return [{k: v for k, v in r.items() if k != "time_s"} for r in a] == [
        {k: v for k, v in r.items() if k != "time_s"} for r in b]


def test_a_resume_reads_the_rows_before_its_checkpoint_back_from_the_log(tmp_path):
    # A kill mid-append leaves a partial line past the checkpoint's mark; the newest
    # checkpoint may be unreadable too (the older one's mark still holds).
    sets = ("training.epochs=6", "training.checkpoint_every=2", "training.keep_checkpoints=3")
    full = train_and_evaluate(_load("xor", *sets), tmp_path / "full")
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", *sets[1:], "training.epochs=5"), run)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"epoch": 6, "st')
    latest = run / "checkpoints" / "ckpt_000005.jaxnn"
    latest.write_bytes(latest.read_bytes()[:60])
    h = train_and_evaluate(_load("xor", *sets), run, resume=True)  # from epoch 4
    assert _same_rows(h.rows, full.rows)
    assert _same_rows([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()],
                      full.rows)
    assert (run / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()


@pytest.mark.parametrize("damage", ["deleted", "edited", "truncated"])
def test_a_resume_whose_log_was_changed_warns_and_keeps_the_changed_file(tmp_path, capsys,
                                                                        damage):
    # The training state is the checkpoint's whatever the log holds; only the logged
    # history before it is lost, and the user's changed file is set aside, not overwritten
    # (with the TensorBoard events, which are rewritten from the rows: they were deleted).
    sets = ("training.checkpoint_every=2", "logging.tensorboard=true")
    full = train_and_evaluate(_load("xor", *sets, "training.epochs=4"), tmp_path / "full")
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", *sets, "training.epochs=2"), run)
    log = run / "metrics.jsonl"
    changed = {"deleted": None, "edited": log.read_text().replace('"epoch": 1', '"epoch": 7'),
               "truncated": log.read_text()[:30]}[damage]
    if changed is None:
        log.unlink()
    else:
        log.write_text(changed)
    events = {p.name: p.read_bytes() for p in (run / "tensorboard").iterdir()}
    assert events
    capsys.readouterr()
    h = train_and_evaluate(_load("xor", *sets, "training.epochs=4"), run, resume=True)
    err = capsys.readouterr().err
    assert "warning: the logged epochs up to the checkpoint (epoch 2) are lost" in err
    assert "start at epoch 3" in err and str(log) in err
    assert _same_rows(h.rows, full.rows[2:])
    assert (run / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()
    assert {p.name: p.read_bytes() for p in (run / "tensorboard.unmatched").iterdir()} == events
    if changed is not None:
        assert ("set aside as metrics.unmatched.jsonl, metrics.unmatched.csv, "
                "tensorboard.unmatched") in err
        assert (run / "metrics.unmatched.jsonl").read_text() == changed
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [3, 4]
    # four epochs were trained, two of them logged (epochs_run said 2)
    assert json.loads((run / "history.json").read_text())["epochs_run"] == 4


def test_a_checkpoint_that_carries_its_rows_still_resumes_with_them(tmp_path):
    # Checkpoints of a jaxnn before metrics_log (2026-12-03) hold the logged rows.
    sets = ("training.checkpoint_every=2",)
    full = train_and_evaluate(_load("xor", *sets, "training.epochs=4"), tmp_path / "full")
    run = tmp_path / "run"
    part = train_and_evaluate(_load("xor", *sets, "training.epochs=2"), run)
    ckpt = run / "checkpoints" / "ckpt_000002.jaxnn"
    blob = flax.serialization.msgpack_restore(ckpt.read_bytes()[checkpoint_lib._HEADER.size:])
    meta = json.loads(blob["meta"])
    meta["rows"] = list(part.rows)
    del meta["log"]
    payload = flax.serialization.msgpack_serialize({**blob, "meta": json.dumps(meta)})
    ckpt.write_bytes(checkpoint_lib._HEADER.pack(
        checkpoint_lib.MAGIC, hashlib.sha256(payload).digest(), len(payload)) + payload)
    (run / "metrics.jsonl").unlink()  # not read: the rows come from the checkpoint
    h = train_and_evaluate(_load("xor", *sets, "training.epochs=4"), run, resume=True)
    assert _same_rows(h.rows, full.rows)
    assert _same_rows([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()],
                      full.rows)


def test_a_column_added_at_a_resume_rewrites_the_csv_header(tmp_path):
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", "training.epochs=2", "training.checkpoint_every=2"), run)
    h = train_and_evaluate(_load("xor", "training.epochs=4", "training.checkpoint_every=2",
                                 "logging.grad_norms=true"), run, resume=True)
    import csv

    with open(run / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    added = [k for k in h.rows[-1] if k not in h.rows[0]]
    assert added and all(k in table[0] for k in added)
    assert [r[added[0]] for r in table[:2]] == ["", ""] and table[3][added[0]] != ""
    assert [int(r["epoch"]) for r in table] == [1, 2, 3, 4]


def test_a_resume_removes_the_temporary_files_of_a_killed_write(tmp_path):
    # kill -9 during a checkpoint write (or of params.msgpack, a log, a plot) leaves its
    # temporary file (a model-sized copy); nothing removed them, so every kill in a write
    # left one more for good. Names as jaxnn._atomic makes them (mkstemp: 8 random chars).
    run = tmp_path / "run"
    cfg = _load("xor", "training.epochs=2", "training.checkpoint_every=1")
    train_and_evaluate(cfg, run)
    ckdir = run / "checkpoints"
    partial = (ckdir / "ckpt_000002.jaxnn").read_bytes()[:50]
    leftovers = [ckdir / ".ckpt_000003.jaxnn.k1_x9q2z.jaxnn", ckdir / ".best.jaxnn.ab3d_e1f.jaxnn",
                 run / ".params.msgpack.gws7uh6g.msgpack", run / ".metrics.csv.a1b2c3d4.csv",
                 run / ".loss.png.zz_9y8x7.png"]
    for f in leftovers:
        f.write_bytes(partial)
    mine = [ckdir / "notes.txt", run / ".notes.txt.a1b2c3d4.txt", run / ".params.msgpack.bak",
            run / ".metrics.csv.short.csv"]  # not ours, or not a temporary name
    for f in mine:
        f.write_text("mine")
    train_and_evaluate(C.load(run / "config.yaml", ["training.epochs=3"]), run, resume=True)
    assert not any(f.exists() for f in leftovers)
    assert all(f.read_text() == "mine" for f in mine)
    assert sorted(p.name for p in ckdir.iterdir()) == [
        "best.jaxnn", "ckpt_000002.jaxnn", "ckpt_000003.jaxnn", "notes.txt"]


def test_resume_with_fewer_epochs_than_already_trained_is_refused(tmp_path):
    run = tmp_path / "run"
    train_and_evaluate(_load("xor", "training.epochs=3"), run)
    params = _params(run)
    # It used to return the 3-epoch parameters and a 3-row history for epochs=2, silently.
    with pytest.raises(ConfigError, match=r"training\.epochs: got 2, .* 3 epochs .* >= 3"):
        train_and_evaluate(_load("xor", "training.epochs=2"), run, resume=True)
    # The same number of epochs is a finished run: nothing more to train, same parameters.
    h = train_and_evaluate(_load("xor", "training.epochs=3"), run, resume=True)
    assert len(h.rows) == 3
    jax.tree.map(np.testing.assert_array_equal, _params(run), params)


# ----------------------------------------------------------------------------- divergence


def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    good = ("data.n_train=300", "optimizer.name=sgd", "optimizer.learning_rate=0.1")
    train_and_evaluate(_load(None, *good, "training.epochs=2"), run)
    before = (run / "checkpoints/ckpt_000002.jaxnn").read_bytes()
    cfg = _load(None, *good, "training.epochs=4", "optimizer.learning_rate=1e12")
    with pytest.raises(DivergenceError) as e:
        train_and_evaluate(cfg, run, resume=True)
    msg = str(e.value)
    assert "\n" not in msg
    # 300 images in batches of 64: 4 steps per epoch, so epoch 3 holds steps 9..12
    step = int(re.search(r"at step (\d+) \(epoch (\d+)\)", msg).group(1))
    assert 9 <= step <= 12 and "(epoch 3)" in msg
    assert "learning rate 1e+12" in msg and "ckpt_000002" in msg
    assert (run / "checkpoints/ckpt_000002.jaxnn").read_bytes() == before
    assert not (run / "checkpoints/ckpt_000003.jaxnn").exists()


def test_a_model_that_overflows_at_initialization_is_not_blamed_on_the_learning_rate(tmp_path):
    cfg = _load(None, "data.n_train=300", "model.initializer=normal",
                "model.initializer_kwargs={stddev: 1e20}", "optimizer.learning_rate=1e-3")
    with pytest.raises(DivergenceError, match=r"is (inf|nan) at step 1, before any update, so "
                                              r"the initial model overflows, not the learning"):
        train_and_evaluate(cfg, tmp_path / "run")


def test_a_penalty_that_overflows_at_initialization_is_named(tmp_path):
    # l2 = 1e38 is a valid float32, but l2 * sum(w^2) is inf at step 1: the message blamed
    # only the initializer, the layers and the data.
    cfg = _load(None, "data.n_train=300", "model.l2=1e38")
    with pytest.raises(DivergenceError) as info:
        train_and_evaluate(cfg, tmp_path / "run")
    msg = str(info.value)
    assert "at step 1, before any update" in msg and "\n" not in msg
    assert msg.endswith("or a smaller model.l2=1e+38 (the penalty is part of the loss)"), msg


def test_bad_values_fail_before_compiling(tmp_path):
    bad = [
        ("training.loss=mse", "needs a regression data set"),
        ("data.options.bogus=1", "bogus"),
        ("optimizer.options.b9=0.1", "optimizer"),
        ("training.devices=64", "training.devices"),
    ]
    for override, match in bad:
        with pytest.raises(ConfigError, match=match):
            train_and_evaluate(_load(None, override), tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_cross_entropy_with_one_hot_labels_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="one-hot"):
        train_and_evaluate(_load(None, "training.loss=softmax_cross_entropy"), tmp_path / "x")


def test_use_bias_auto_reaches_the_model_and_bad_values_are_named(tmp_path):
    cfg = C.load(None, ["model.batch_norm=true", "model.use_bias=auto"])
    m = loop_lib.build_experiment(cfg).mlp_config
    assert m.use_bias == "auto"
    assert [m.has_bias(l) for l in range(m.num_layers)] == [False] * (m.num_layers - 1) + [True]
    for value in ("sometimes", "1"):
        with pytest.raises(ConfigError, match=f"model.use_bias: got '?{value}'?, "
                                              "expected true or false or 'auto'"):
            C.load(None, [f"model.use_bias={value}"])


def test_mlp_config_carries_every_model_field_and_names_bad_ones():
    cfg = C.load(None, ["model.hidden_activation=leaky_relu",
                        "model.activation_kwargs={negative_slope: 0.2}",
                        "model.batch_norm=true", "model.dropout_rate=0.3", "model.l2=1e-3",
                        "model.use_bias=false"])
    exp = loop_lib.build_experiment(cfg)
    m = loop_lib.mlp_config(cfg.model, exp.mlp_config.layer_sizes)
    assert m == exp.mlp_config
    assert m.activation_kwargs == (("negative_slope", 0.2),)
    assert (m.batch_norm, m.dropout_rate, m.l2, m.use_bias) == (True, 0.3, 1e-3, False)
    bad = dataclasses.replace(cfg.model, hidden_activation="relux")  # past config checks
    with pytest.raises(ConfigError, match=r"^model: .*relux"):
        loop_lib.mlp_config(bad, (4, 8, 2))


def test_an_optimizer_that_refuses_the_parameters_at_init_is_a_config_error(tmp_path):
    # b2 = 1 - 1e-8 rounds to 1 in float32; under x64 (on in these tests) the optimizer
    # refuses it at init, for float32 parameters: that came out of the first epoch as a
    # traceback instead of the one-line "optimizer: ..." of the other bad options.
    assert jax.config.jax_enable_x64
    with pytest.raises(ConfigError, match=r"^optimizer: .*b2 must be in \[0, 1\) and below 1 "
                                          r"in float32.*float32 parameters"):
        train_and_evaluate(_load("xor", "optimizer.options={b2: 0.99999999}"), tmp_path / "r")
    assert not (tmp_path / "r" / "metrics.jsonl").exists()
