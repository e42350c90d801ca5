"""Edge cases of the training internals: checkpoint structure and numbering, the train
step's gradient norm in low precision, empty data sets, batch sharding messages, early
stopping arguments and the plots (``jaxnn.train.checkpoint``, ``step``, ``early_stopping``,
``plots``)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import mlp, optim
from jaxnn.backprop import _norm
from jaxnn.train import (
    CheckpointError,
    CheckpointManager,
    EarlyStopping,
    TrainState,
    make_eval_fn,
    make_train_epoch,
    make_train_step,
    read_checkpoint,
    write_checkpoint,
)
from jaxnn.train.step import _layer_grad_norms, _sum_of_squares

REPO = pathlib.Path(__file__).resolve().parents[1]
LOSS = "softmax_cross_entropy_with_integer_labels"


def _subprocess(code: str, devices: int = 1) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                          capture_output=True, timeout=120)


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("saved, target, needle", [
    # the checkpoint holds an array the target lacks: it used to read "successfully"
    ({"w": np.zeros(3, np.float32), "b": np.ones(2, np.float32)},
     {"w": np.zeros(3, np.float32)}, "does not have (b)"),
    ({"layers": [{"w": np.zeros(2, np.float32), "alpha": np.zeros(2, np.float32)}]},
     {"layers": [{"w": np.zeros(2, np.float32)}]}, "does not have (layers/0/alpha)"),
    ({"w": np.zeros(3, np.float32)},
     {"w": np.zeros(3, np.float32), "c": np.ones(1, np.float32)}, "lacks arrays this run has (c)"),
    ({"a": None, "b": np.zeros(2, np.float32)},
     {"a": np.zeros(2, np.float32), "b": np.zeros(2, np.float32)}, "lacks arrays this run has (a)"),
])
def test_a_checkpoint_of_another_structure_is_refused_naming_the_arrays(tmp_path, saved, target,
                                                                         needle):
    path = tmp_path / "c.jaxnn"
    write_checkpoint(path, saved, {"epoch": 1})
    with pytest.raises(CheckpointError, match="does not match this run's state") as e:
        read_checkpoint(path, target)
    assert needle in str(e.value) and str(path) in str(e.value)
    assert str(e.value).count("does not match") == 1


def test_a_checkpoint_of_the_same_structure_still_round_trips_every_dtype(tmp_path):
    tree = {"bf16": jnp.arange(4, dtype=jnp.bfloat16), "f16": np.arange(3, dtype=np.float16),
            "f64": np.array([np.nan, np.inf, -1.5]), "empty": np.zeros((0, 3), np.float32),
            "opt": (np.int32(7), {}), "none": None}
    path = tmp_path / "c.jaxnn"
    write_checkpoint(path, tree, {"epoch": 2})
    got, meta = read_checkpoint(path, tree)
    assert meta == {"epoch": 2}
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(got), strict=True):
        assert np.asarray(a).dtype == b.dtype and np.shape(a) == b.shape
        np.testing.assert_array_equal(np.asarray(a), b)


def test_trailing_bytes_are_called_corrupted_not_truncated(tmp_path):
    tree = {"w": np.zeros(3, np.float32)}
    path = tmp_path / "c.jaxnn"
    write_checkpoint(path, tree)
    path.write_bytes(path.read_bytes() + b"xx")
    with pytest.raises(CheckpointError, match="corrupted") as e:
        read_checkpoint(path, tree)
    assert "truncated" not in str(e.value)


def test_the_manager_sees_epochs_past_999999(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=2)
    for e in (999_999, 1_000_000, 1_000_001):
        mgr.save(e, {"x": np.full(1, e, np.float32)}, {"epoch": e})
    assert mgr.epochs() == [1_000_000, 1_000_001]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_1000000.jaxnn",
                                                           "ckpt_1000001.jaxnn"]
    _, meta, path, _ = mgr.restore_latest({"x": np.zeros(1, np.float32)})
    assert meta["epoch"] == 1_000_001 and path == mgr.path(1_000_001)


def test_saving_never_prunes_the_checkpoint_just_written(tmp_path):
    # A run resumed from epoch 4 past an unreadable epoch 8, now keeping one checkpoint:
    # saving epoch 5 used to delete 4 *and* 5, leaving only the unreadable 8.
    tree = {"x": np.zeros(1, np.float32)}
    first = CheckpointManager(tmp_path, keep=2)
    for e in (4, 8):
        first.save(e, {"x": np.full(1, e, np.float32)}, {"epoch": e})
    first.path(8).write_bytes(b"garbage")
    mgr = CheckpointManager(tmp_path, keep=1)
    assert mgr.restore_latest(tree)[1]["epoch"] == 4
    mgr.save(5, {"x": np.full(1, 5, np.float32)}, {"epoch": 5})
    assert 5 in mgr.epochs() and 4 not in mgr.epochs()
    got, meta, _, problems = mgr.restore_latest(tree)
    assert meta["epoch"] == 5 and float(got["x"][0]) == 5.0 and len(problems) == 1
    # without stale files, pruning keeps the newest `keep` as before
    fresh = CheckpointManager(tmp_path / "fresh", keep=2)
    for e in range(1, 5):
        fresh.save(e, tree, {"epoch": e})
    assert fresh.epochs() == [3, 4]


@pytest.mark.parametrize("make", [
    lambda d: CheckpointManager(d, keep=1.5),
    lambda d: CheckpointManager(d, keep=True),
    lambda d: CheckpointManager(d).save(-1, {"x": np.zeros(1)}, {}),
])
def test_bad_keep_and_epoch_values_are_named(tmp_path, make):
    with pytest.raises(ValueError, match=r"CheckpointManager: (keep|epoch) must be an integer"):
        make(tmp_path)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- steps


def _problem(dtype=jnp.float32):
    cfg = mlp.MLPConfig(layer_sizes=(6, 16, 3), hidden_activation="tanh")
    params, mstate = mlp.init(cfg, jax.random.PRNGKey(0), dtype=dtype)
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 6), dtype)
    y = jax.random.randint(jax.random.PRNGKey(2), (64,), 0, 3)
    return cfg, params, mstate, x, y


def test_the_gradient_norm_of_float16_gradients_does_not_overflow():
    # 96 gradient entries of 300: each square (9e4) is past float16's 65504, the norm is not.
    _, params, mstate, x, y = _problem(jnp.float16)

    def loss_fn(p, model_state, xb, yb, key, train):
        return jnp.sum(p["layers"][0]["w"] * jnp.float16(300.0)), {"outputs": xb}

    tx = optim.get("sgd", 0.0)
    st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(0), model_state=mstate)
    _, m = jax.jit(make_train_step(loss_fn, tx))(st, x, y)
    assert np.isfinite(float(m["grad_norm"]))
    assert float(m["grad_norm"]) == pytest.approx(300.0 * np.sqrt(96), rel=1e-3)


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (784, 512), (512, 10), (2, 3, 4),
                                   (0,), (4, 0)])
def test_the_sum_of_squares_behind_the_gradient_norm_is_the_plain_sum(shape):
    # With one factor behind an optimization barrier (so XLA cannot share the square with
    # Adam's): the same value, for every rank and for empty arrays.
    g = np.asarray(jax.random.normal(jax.random.PRNGKey(3), shape, jnp.float32))
    got = jax.jit(_sum_of_squares)(jnp.asarray(g))
    assert got.shape == () and got.dtype == jnp.float32
    exact = float(np.sum(np.square(g.astype(np.float64))))
    assert float(got) == pytest.approx(exact, rel=1e-6, abs=0.0)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_the_sum_of_squares_is_taken_in_at_least_float32_and_keeps_nan_and_inf(dtype):
    g = jnp.full((3, 4), 300.0, dtype)  # each square past float16's 65504
    got = jax.jit(_sum_of_squares)(g)
    assert got.dtype == jnp.float32 and float(got) == pytest.approx(12 * 300.0 ** 2, rel=1e-6)
    assert np.isnan(float(_sum_of_squares(g.at[1, 2].set(jnp.nan))))
    assert float(_sum_of_squares(g.at[0, 0].set(-jnp.inf))) == np.inf


def test_the_step_reports_the_global_norm_optax_computes():
    cfg, params, mstate, x, y = _problem()
    loss_fn = mlp.make_loss_fn(cfg, LOSS)
    tx = optim.adam(1e-3)
    st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(0), model_state=mstate)
    _, m = jax.jit(make_train_step(loss_fn, tx))(st, x, y)
    grads = jax.grad(lambda p: loss_fn(p, mstate, x, y, None, True)[0])(params)
    assert float(m["grad_norm"]) == pytest.approx(float(optax.global_norm(grads)), rel=1e-6)


def test_per_layer_gradient_norms_hold_tiny_and_huge_gradients():
    # The first layers of a deep sigmoid net see gradients of ~1e-20: float32 squares flush
    # them to 0. Scaled norms keep them (and keep ~1e20 finite).
    _, params, mstate, x, y = _problem()

    def loss_fn(p, model_state, xb, yb, key, train):
        w0, w1 = p["layers"][0]["w"], p["layers"][1]["w"]
        return 1e-20 * jnp.sum(w0) + 1e20 * jnp.sum(w1) + jnp.sum(p["layers"][0]["b"]), \
            {"outputs": xb}

    tx = optim.get("sgd", 0.0)
    st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(0), model_state=mstate)
    _, m = jax.jit(make_train_step(loss_fn, tx, grad_norms=True))(st, x, y)
    n0, n1 = params["layers"][0]["w"].size, params["layers"][1]["w"].size
    assert float(m["grad_norm/layers/0/w"]) == pytest.approx(1e-20 * np.sqrt(n0), rel=1e-5)
    assert float(m["grad_norm/layers/1/w"]) == pytest.approx(1e20 * np.sqrt(n1), rel=1e-5)
    assert float(m["grad_norm/layers/0/b"]) == pytest.approx(np.sqrt(16), rel=1e-6)
    assert float(m["grad_norm/layers/1/b"]) == 0.0


@pytest.mark.parametrize("batched", [False, True])
def test_per_layer_norms_take_the_plain_sum_only_where_it_is_exact(batched):
    # Each leaf's norm is sqrt of its sum of squares when that sum is in range, else the
    # scaled norm (lax.cond; a select under vmap): every kind of leaf, either way, agrees
    # with the float64 norm, and NaN / inf stay NaN / inf.
    base = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (2, 6, 5), jnp.float32))
    leaves = {"ordinary": base, "tiny": base * 1e-20, "huge": base * 1e25,
              "zero": np.zeros_like(base), "mixed": base * np.where(base > 0, 1e-25, 1.0),
              "nan": np.where(base > 1.0, np.nan, base), "inf": np.where(base > 1.0, np.inf, base)}
    grads = {k: jnp.asarray(v) for k, v in leaves.items()}

    def norms(g):
        return _layer_grad_norms(g, [_sum_of_squares(v) for v in jax.tree.leaves(g)])

    if batched:
        got = jax.jit(jax.vmap(norms))(grads)
    else:
        rows = [jax.jit(norms)({k: a[i] for k, a in grads.items()}) for i in range(2)]
        got = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    for name, v in leaves.items():
        want = np.sqrt(np.sum(np.square(v.astype(np.float64)), axis=(1, 2)))
        g = np.asarray(got[f"grad_norm/{name}"])
        if name in ("nan", "inf"):
            assert np.isnan(g).all() if name == "nan" else (g == np.inf).all(), (name, g)
        else:
            np.testing.assert_allclose(g, want, rtol=2e-6, err_msg=name)
            np.testing.assert_allclose(g, [float(_norm(jnp.asarray(v[i]))) for i in range(2)],
                                       rtol=2e-6, err_msg=name)


def test_an_empty_data_set_and_a_zero_eval_batch_are_named():
    cfg, params, mstate, x, y = _problem()
    tx = optim.get("sgd", 0.1)
    st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(0), model_state=mstate)
    epoch = make_train_epoch(make_train_step(mlp.make_loss_fn(cfg, LOSS), tx), 16)
    with pytest.raises(ValueError, match=r"make_train_epoch: the data set is empty.*\(0, 6\)"):
        epoch(st, x[:0], y[:0], jax.random.PRNGKey(0))
    ev = make_eval_fn(mlp.make_loss_fn(cfg, LOSS), loss_name=LOSS)
    with pytest.raises(ValueError, match="make_eval_fn: the data set is empty"):
        ev(st, x[:0], y[:0])
    with pytest.raises(ValueError, match="make_eval_fn: batch_size must be an integer >= 1, got 0"):
        make_eval_fn(mlp.make_loss_fn(cfg, LOSS), loss_name=LOSS, batch_size=0)
    with pytest.raises(ValueError, match="x has 64 rows but y has 63"):
        ev(st, x, y[:63])
    # one row is a valid set for both
    assert epoch(st, x[:1], y[:1], jax.random.PRNGKey(0))[1]["loss"].shape == (1,)


def test_a_nan_in_a_padded_evaluation_row_does_not_reach_the_sums():
    # 5 rows in chunks of 4: three padded zero rows, where this model's output is NaN.
    def loss_fn(p, model_state, xb, yb, key, train):
        return 0.0, {"outputs": jnp.log(xb[:, :3])}

    ev = make_eval_fn(loss_fn, loss_name=LOSS, batch_size=4,
                      metrics_fn=lambda o, t: {"accuracy": jnp.mean(jnp.argmax(o, -1) == t)})
    x = jnp.ones((5, 6))
    y = jnp.zeros((5,), jnp.int32)
    _, params, mstate, _, _ = _problem()
    st = TrainState.create(params=params, tx=optim.get("sgd", 0.1), key=jax.random.PRNGKey(0),
                           model_state=mstate)
    out = ev(st, x, y)
    assert float(out["loss"]) == pytest.approx(np.log(3.0), rel=1e-6)
    assert float(out["accuracy"]) == 1.0


def test_a_sharded_evaluation_splits_each_chunk_over_the_devices_and_agrees():
    # 101 rows in chunks of 37 on 2 devices: neither splits, so each chunk is rounded up to 38
    # (19 rows per device) and masked. The replicated evaluation has every device compute
    # all 37 rows of each chunk; the sharded one must compute 19 and all-reduce the sums.
    r = _subprocess("""
        import json, re, jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from jaxnn import mlp, optim
        from jaxnn.train import TrainState, make_eval_fn
        from jaxnn.train.step import classification_metrics
        loss = "softmax_cross_entropy_with_integer_labels"
        cfg = mlp.MLPConfig(layer_sizes=(6, 16, 3), dropout_rate=0.5, batch_norm=True)
        params, ms = mlp.init(cfg, jax.random.PRNGKey(0))
        st = TrainState.create(params=params, tx=optim.get("sgd", 0.1),
                               key=jax.random.PRNGKey(1), model_state=ms)
        mesh = Mesh(np.array(jax.devices()), ("data",))
        rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
        out = {}
        for n in (101, 1):
            x = jax.random.normal(jax.random.PRNGKey(2), (n, 6))
            y = jax.random.randint(jax.random.PRNGKey(3), (n,), 0, 3)
            st_, x, y = jax.device_put((st, x, y), rep)
            for name, sh in (("one", None), ("split", rows)):
                ev = make_eval_fn(mlp.make_loss_fn(cfg, loss), loss_name=loss, batch_size=37,
                                  metrics_fn=classification_metrics, batch_sharding=sh)
                hlo = ev.lower(st_, x, y).compile().as_text()
                out[f"{name}{n}"] = {
                    "values": {k: float(v) for k, v in ev(st_, x, y).items()},
                    "rows": sorted({int(m) for m in re.findall(r"f32\\[(\\d+),16\\]", hlo)}),
                    "all_reduce": "all-reduce" in hlo}
        print(json.dumps(out))
    """, devices=2)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # Arrays of shape (rows, 16): the hidden activations, and the (6, 16) weight.
    assert out["one101"]["rows"] == [6, 37] and not out["one101"]["all_reduce"]
    assert out["split101"]["rows"] == [6, 19] and out["split101"]["all_reduce"]
    assert out["split1"]["rows"] == [1, 6]  # one row: a chunk of 2, one of them padding
    for n in ("101", "1"):
        one, split = out[f"one{n}"]["values"], out[f"split{n}"]["values"]
        assert list(one) == list(split) == ["accuracy", "loss"]
        np.testing.assert_allclose(list(split.values()), list(one.values()), rtol=1e-6)


# ----------------------------------------------------------------------------- train state


def test_a_typed_key_is_stored_raw_so_the_state_checkpoints(tmp_path):
    _, params, mstate, _, _ = _problem()
    tx = optim.get("sgd", 0.1)
    typed = TrainState.create(params=params, tx=tx, key=jax.random.key(3), model_state=mstate)
    raw = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(3), model_state=mstate)
    assert typed.key.dtype == jnp.uint32 and typed.key.shape == (2,)
    np.testing.assert_array_equal(typed.step_key(), raw.step_key())
    write_checkpoint(tmp_path / "c.msgpack", typed)
    back, _ = read_checkpoint(tmp_path / "c.msgpack", raw)
    np.testing.assert_array_equal(back.key, raw.key)


@pytest.mark.parametrize("key, match", [
    (jax.random.key(0, impl="rbg"), "a single threefry2x32 key.*'rbg'"),
    (jax.random.split(jax.random.key(0)), r"a single threefry2x32 key, got a key of shape \(2,\)"),
    (0, r"jax.random.PRNGKey.*got int with shape None"),
    (jnp.zeros((3,), jnp.uint32), r"jax.*got ArrayImpl with shape \(3,\) and dtype uint32"),
])
def test_train_state_names_a_key_it_cannot_use(key, match):
    _, params, mstate, _, _ = _problem()
    with pytest.raises(ValueError, match="TrainState.create: key must be " + match):
        TrainState.create(params=params, tx=optim.get("sgd", 0.1), key=key, model_state=mstate)


def test_a_full_batch_that_does_not_split_over_the_devices_is_not_blamed_on_the_remainder():
    r = _subprocess("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from jaxnn import mlp, optim
        from jaxnn.train import TrainState, make_train_epoch, make_train_step
        mesh = Mesh(np.array(jax.devices()), ("data",))
        cfg = mlp.MLPConfig(layer_sizes=(6, 8, 3))
        params, ms = mlp.init(cfg, jax.random.PRNGKey(0))
        x = jnp.ones((64, 6)); y = jnp.zeros((64,), jnp.int32)
        tx = optim.get("sgd", 0.1)
        loss = "softmax_cross_entropy_with_integer_labels"
        step = make_train_step(mlp.make_loss_fn(cfg, loss), tx)
        for bs, drop in ((15, True), (16, False)):
            st = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(0), model_state=ms)
            epoch = make_train_epoch(step, bs, batch_sharding=NamedSharding(mesh, P("data")),
                                     drop_remainder=drop)
            try:
                epoch(st, x[:63] if not drop else x, y[:63] if not drop else y,
                      jax.random.PRNGKey(0))
            except ValueError as e:
                print(e)
    """, devices=2)
    assert r.returncode == 0, r.stderr
    full, rest = r.stdout.strip().splitlines()
    assert "a batch of 15 rows does not split" in full and "drop_remainder" not in full
    assert "min(15, 64)" in full
    assert "drop_remainder=False" in rest and "63 % 16" in rest


# ----------------------------------------------------------------------------- early stopping


@pytest.mark.parametrize("kwargs", [{"patience": 2.5}, {"patience": None}, {"patience": True},
                                    {"min_delta": None}, {"min_delta": "0.1"}])
def test_early_stopping_names_a_bad_patience_or_min_delta(kwargs):
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match=f"EarlyStopping: {name} must be .* got {value!r}"):
        EarlyStopping(**kwargs)


@pytest.mark.parametrize("value", [None, "0.5", True, [0.5]])
def test_early_stopping_update_names_a_value_that_is_not_a_number(value):
    with pytest.raises(TypeError, match=f"EarlyStopping.update: value must be a real number, got "
                                        f"{re.escape(repr(value))}"):
        EarlyStopping().update(value, 0)
    # numbers of any kind are fine
    for v in (1, np.float32(0.5), jnp.asarray(0.25)):
        assert EarlyStopping().update(v, 0).has_improved


def test_early_stopping_min_delta_is_an_improvement_margin_in_both_modes():
    def run(values, **kw):
        s = EarlyStopping(**kw)
        out = []
        for i, v in enumerate(values):
            s = s.update(v, i)
            out.append(s.has_improved)
        return out, s

    imp, s = run([1.0, 0.95, 0.85], mode="min", min_delta=0.1, patience=3)
    assert imp == [True, False, True] and s.best_value == 0.85
    imp, s = run([0.5, 0.55, 0.65], mode="max", min_delta=0.1, patience=3)
    assert imp == [True, False, True] and s.best_value == 0.65
    imp, s = run([float("nan"), 1.0, float("inf"), float("nan")], mode="min", patience=0)
    assert imp == [False, True, False, False] and s.should_stop and s.best_epoch == 1


# ----------------------------------------------------------------------------- plots


def test_plot_history_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    r = _subprocess(f"""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        fig = plt.figure()
        from jaxnn.train.plots import plot_history
        paths = plot_history([{{"epoch": 1, "loss": 1.0, "accuracy": 0.5}},
                              {{"epoch": 2, "loss": 0.5, "accuracy": 0.7}}], {str(tmp_path)!r})
        print(matplotlib.get_backend(), plt.get_fignums(), [p.name for p in paths])
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["svg", "[1]", "['loss.png',", "'accuracy.png']"]
    for name in ("loss.png", "accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_metadata_with_numpy_values_is_stored_as_plain_json(tmp_path):
    # A numpy float in the metadata (e.g. a metric kept as np.float32) was a raw TypeError
    # from json; now it is stored as a number, and what JSON cannot hold is named.
    tree = {"w": np.ones(3, np.float32)}
    meta = {"best": np.float32(0.5), "epoch": np.int64(3), "curve": jnp.arange(3)}
    write_checkpoint(tmp_path / "a.jaxnn", tree, meta)
    _, back = read_checkpoint(tmp_path / "a.jaxnn", tree)
    assert back == {"best": 0.5, "epoch": 3, "curve": [0, 1, 2]}
    with pytest.raises(ValueError, match=r"write_checkpoint: metadata for .*b\.jaxnn.* "
                                         r"must be JSON-able .*object"):
        write_checkpoint(tmp_path / "b.jaxnn", tree, {"x": object()})
    assert not (tmp_path / "b.jaxnn").exists()


# ----------------------------------------------------------------------------- the public API


def _linear_problem():
    x = jax.random.normal(jax.random.key(0), (64, 3))
    y = x @ jnp.array([[1.0], [-2.0], [0.5]])

    def loss_fn(params, model_state, xb, yb, key, train):
        out = xb @ params["w"]
        return jnp.mean((out - yb) ** 2), {"outputs": out, "state": model_state}

    return x, y, loss_fn


def test_the_epoch_donates_the_state_but_not_the_callers_own_arrays():
    # TrainState.create kept the caller's arrays, and the donating epoch deleted them: the
    # initial params kept for comparison, the key used again for the epoch keys.
    x, y, loss_fn = _linear_problem()
    tx = optim.sgd(0.1)
    w0, k = jnp.zeros((3, 1)), jax.random.key(0)
    state = TrainState.create(params={"w": w0}, tx=tx, key=k)
    epoch = make_train_epoch(make_train_step(loss_fn, tx), 16)
    new, metrics = epoch(state, x, y, k)  # the same key as the state's: no donation clash
    assert not w0.is_deleted() and not k.is_deleted()
    assert float(jnp.sum(w0)) == 0.0 and float(metrics["loss"][-1]) < float(metrics["loss"][0])
    jax.random.fold_in(k, 1)  # still usable
    assert state.params["w"].is_deleted()  # the state passed in is donated (documented)
    new, _ = epoch(new, x, y, jax.random.fold_in(k, 1))


def test_a_chained_reduce_on_plateau_gets_the_loss_and_scales_the_logged_rate():
    # make_train_step called tx.update without value=: optax.chain(..., reduce_on_plateau)
    # was a TypeError, and current_learning_rate ignored the plateau's scale.
    import optax

    x, y, loss_fn = _linear_problem()
    seen = {}
    for name, plateau in (("jaxnn", optim.schedules.reduce_on_plateau(factor=0.5, patience=0)),
                          ("optax", optax.contrib.reduce_on_plateau(factor=0.5, patience=0))):
        tx = optax.chain(optim.sgd(1e-12), plateau)  # too small a rate to improve the loss
        state = TrainState.create(params={"w": jnp.zeros((3, 1))}, tx=tx, key=jax.random.key(0))
        step = jax.jit(make_train_step(loss_fn, tx))
        rates, scales = [], []
        for _ in range(4):
            state, m = step(state, x, y)
            rates.append(float(m["learning_rate"]))
            scales.append(float(state.opt_state[1].scale))
        # the rate in effect is the optimizer's times the plateau's scale, in the log too
        np.testing.assert_allclose(rates, 1e-12 * np.asarray(scales), rtol=1e-6)
        assert float(optim.current_learning_rate(state.opt_state)) == pytest.approx(
            rates[-1], rel=1e-6)
        seen[name] = scales
    # jaxnn's plateau saw the unchanging loss: patience 0 halves the rate after each value
    # but the first (optax 0.2.8 cuts once, at the first value, and then keeps 0.5)
    assert seen["jaxnn"] == [1.0, 0.5, 0.25, 0.125]
    assert seen["optax"][-1] == 0.5


def test_train_and_evaluate_names_a_config_that_is_not_a_config(tmp_path):
    from jaxnn.train import train_and_evaluate

    with pytest.raises(TypeError, match="config must be a jaxnn.config.Config, got dict"):
        train_and_evaluate({"training": {"epochs": 1}}, tmp_path)
