"""Tests of the depth study (jaxnn.studies.depth, depth_report, depth_cli).

The known findings are checked on small sizes: the 5 x 100 histogram experiment on
standard-normal inputs, the sigmoid vs ReLU/He first/last gradient ratio on digits, the
30-layer ReLU He-vs-Xavier training gap (reduced in CI, full size marked slow) and SELU's
self-normalization over 32 layers. Plus: statistics equal autodiff, vmapped seeds equal a
Python loop, one compilation per shape group, config errors and the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import re
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import activations, initializers, losses, mlp
from jaxnn.config import ConfigError
from jaxnn.data.idx import DataError
from jaxnn.studies import depth as D
from jaxnn.studies import depth_cli, depth_report
from jaxnn.studies import workers as W

REPO = pathlib.Path(__file__).resolve().parents[1]
INITS_5X100 = ("normal(1)", "normal(0.01)", "xavier", "he")


def layer(result, field, **where):
    rows = result.select(phase="init", **where)
    assert rows, where
    return np.median(np.asarray([r[field] for r in rows], float), axis=0)


# ----------------------------------------------------------------------------- findings


@pytest.fixture(scope="module")
def hist_result():
    cfg = D.DepthStudyConfig(
        name="hist", dataset="normal", input_dim=100, n_samples=500, depths=(5,),
        widths=(100,), activations=("sigmoid", "relu"), initializers=INITS_5X100, seeds=2,
        probe_size=500, steps=0, histograms=True, histogram_bins=30,
    )
    return D.run_study(cfg)


def test_sigmoid_5x100_histogram_findings(hist_result):
    r = hist_result
    sat1 = layer(r, "saturation_fraction", activation="sigmoid", initializer="normal(1)")
    assert sat1.shape == (5,)
    assert np.all(sat1 > 0.5)  # std 1: most activations near 0 or 1
    m = layer(r, "activation_mean", activation="sigmoid", initializer="normal(0.01)")
    s = layer(r, "activation_std", activation="sigmoid", initializer="normal(0.01)")
    assert np.all(np.abs(m - 0.5) < 0.02) and np.all(s < 0.03)  # collapsed to ~0.5
    sx = layer(r, "activation_std", activation="sigmoid", initializer="xavier")
    satx = layer(r, "saturation_fraction", activation="sigmoid", initializer="xavier")
    assert np.all(sx > 0.08) and np.all(satx < 0.05)  # a spread, no saturation
    # the histograms say the same: edge bins for std 1, the two middle bins for std 0.01
    for h in r.histograms:
        if h["activation"] != "sigmoid":
            continue
        counts = np.asarray(h["counts"])
        assert counts.sum() == 2 * 500 * 100  # seeds x examples x units, clipped into range
        frac_edges = (counts[:2].sum() + counts[-2:].sum()) / counts.sum()
        frac_mid = counts[12:18].sum() / counts.sum()  # a in [0.4, 0.6]
        if h["initializer"] == "normal(1)":
            assert frac_edges > 0.5
        if h["initializer"] == "normal(0.01)":
            assert frac_mid > 0.99
        if h["initializer"] == "xavier":
            assert frac_mid < 0.9 and frac_edges < 0.1


def test_relu_5x100_histogram_findings(hist_result):
    r = hist_result
    s001 = layer(r, "activation_std", activation="relu", initializer="normal(0.01)")
    sx = layer(r, "activation_std", activation="relu", initializer="xavier")
    sh = layer(r, "activation_std", activation="relu", initializer="he")
    assert np.all(np.diff(s001) < 0) and s001[-1] < 1e-4  # collapses toward 0
    assert np.all(np.diff(sx) < 0) and sx[-1] / sx[0] < 0.4  # shrinks with depth
    assert sh.max() / sh.min() < 1.6  # flat
    dead = layer(r, "dead_fraction", activation="relu", initializer="he")
    sat = layer(r, "saturation_fraction", activation="relu", initializer="he")
    np.testing.assert_allclose(dead, sat)  # for ReLU, saturated = exactly zero
    assert np.all((dead > 0.35) & (dead < 0.65))


@pytest.fixture(scope="module")
def ratio_results():
    common = dict(dataset="digits", widths=(30,), seeds=3, probe_size=512, steps=0)
    return D.run_study(D.DepthStudyConfig(
        name="ratio_sigmoid", depths=(4, 8), activations=("sigmoid",), initializers=("lecun",),
        **common))


def test_sigmoid_gradient_ratio_vanishes(ratio_results):
    sig = ratio_results
    med = lambda r, d: r.median("grad_ratio", phase="init", depth=d)
    # 4 hidden layers: one to two orders of magnitude smaller in the first layer
    assert 1e-3 < med(sig, 4) < 0.1
    assert med(sig, 8) < med(sig, 4) / 10  # worsens with depth
    # the per-layer norms grow monotonically towards the output for sigmoid
    wg = layer(sig, "weight_grad_norm", depth=8)
    assert wg.shape == (9,) and np.all(np.diff(wg[:8]) > 0)
    assert {v["depth"]: v["vanishes"] for v in depth_report.classify(sig)} == {4: False, 8: True}


def test_relu_with_unit_normal_weights_explodes_by_growth_not_by_ratio():
    # Activations and every layer's gradient grow by ~sqrt(width / 2) per layer, so the
    # first/last gradient ratio stays near 1: the ratio rule alone called this healthy.
    r = D.run_study(D.DepthStudyConfig(
        name="growth", dataset="digits", depths=(1, 6), widths=(32,), activations=("relu",),
        initializers=("he", "normal(1)"), seeds=2, probe_size=128, steps=0))
    v = {(x["initializer"], x["depth"]): x for x in depth_report.classify(r)}
    big = v["normal(1)", 6]
    assert 0.01 < big["ratio"] < 100 and big["growth"] > 1e3 and big["explodes"]
    assert not big["nonfinite"] and not big["vanishes"]
    assert 0.2 < v["he", 6]["growth"] < 5 and not v["he", 6]["explodes"]
    assert v["he", 1]["growth"] == v["normal(1)", 1]["growth"] == 1.0
    text = depth_report.render_report(r)
    explode = text.split("## Exploding gradients and activations")[1].split("\n## ")[0]
    assert "- relu + normal(1), at 6 hidden layers (first/last gradient ratio and " \
           "pre-activation growth D=6: ratio " in explode
    assert "relu + he" not in explode
    # one hidden layer is singular in the sentences
    c = D.DepthStudyConfig(depths=(1, 2), widths=(8,), activations=("relu",),
                           initializers=("he",))
    v = dict(activation="relu", initializer="he", width=8, batch_norm=False, depth=1,
             saturates=True, saturation=0.7)
    (line,) = depth_report._group_sentences([v], "saturates", "saturation", c)
    assert "at 1 hidden layer (" in line


def _he_vs_xavier(depth, width, steps, lr, seeds):
    cfg = D.DepthStudyConfig(
        name="deep_relu", dataset="digits", depths=(depth,), widths=(width,),
        activations=("relu",), initializers=("xavier", "he"), seeds=seeds, steps=steps,
        learning_rate=lr, batch_size=64,
    )
    r = D.run_study(cfg)
    acc = {i: r.median("test_accuracy", phase="trained", initializer=i) for i in cfg.initializers}
    loss = {i: r.median("train_loss", phase="trained", initializer=i) for i in cfg.initializers}
    return acc, loss, r


def test_deep_relu_he_trains_xavier_stalls_reduced():
    # CI size: 16 hidden layers (the full 30-layer version below is marked slow)
    acc, loss, r = _he_vs_xavier(depth=16, width=64, steps=150, lr=0.01, seeds=2)
    # ReLU + He keeps the first/last gradient ratio near 1 (sigmoid: see above)
    assert 0.1 < r.median("grad_ratio", phase="init", initializer="he") < 10.0
    (v,) = [v for v in depth_report.classify(r) if v["initializer"] == "he"]
    assert not v["vanishes"] and not v["explodes"]
    assert acc["he"] > 0.25
    # Xavier stalls by the report's own rule (accuracy below chance + 0.1 (1 - chance) =
    # 0.19) with no progress on the loss (ln 10 = 2.303).
    (vx,) = [v for v in depth_report.classify(r) if v["initializer"] == "xavier"]
    assert vx["stalls"] and not vx["trains"], (acc, loss)
    assert acc["xavier"] < 0.19 and loss["xavier"] > 2.25, (acc, loss)
    assert acc["he"] > acc["xavier"] + 0.12


@pytest.mark.slow
def test_deep_relu_he_trains_xavier_stalls_full():
    acc, loss, _ = _he_vs_xavier(depth=30, width=100, steps=300, lr=0.01, seeds=3)
    assert acc["he"] > 0.5
    assert acc["xavier"] < 0.15


def test_selu_lecun_self_normalizes_over_32_layers():
    cfg = D.DepthStudyConfig(
        name="selu", dataset="normal", input_dim=64, n_samples=512, depths=(32,), widths=(64,),
        activations=("selu",), initializers=("lecun",), seeds=2, probe_size=512,
        steps=0,
    )
    r = D.run_study(cfg)
    m = layer(r, "activation_mean", initializer="lecun")
    s = layer(r, "activation_std", initializer="lecun")
    assert m.shape == (32,)
    assert np.all(np.abs(m) < 0.2)
    assert np.all((s > 0.75) & (s < 1.25))


@pytest.mark.parametrize("name, sub", [("fashion_mnist", "fashion-mnist"), ("mnist", "mnist")])
def test_mnist_style_data(shared_data_dir, name, sub):
    cfg = D.DepthStudyConfig(
        dataset=name, data_dir=str(shared_data_dir / sub), n_train=300, n_test=100,
        depths=(2,), widths=(8,), activations=("relu",), initializers=("he",), seeds=1,
        probe_size=64, steps=0,
    )
    data = D.load_study_data(cfg)  # mnist: only the t10k files are shared -> split="test"
    assert data.x_train.shape == (300, 784) and data.x_test.shape == (100, 784)
    assert data.x_train.dtype == np.float32 and data.num_classes == 10
    assert abs(float(data.x_train.mean())) < 0.1  # standardized per feature
    with pytest.raises(DataError, match="is not a directory"):
        D.load_study_data(D.DepthStudyConfig(dataset=name, data_dir=str(shared_data_dir / "x")))


# ----------------------------------------------------------------------------- engine


@pytest.mark.parametrize("name", ["xavier", "glorot_uniform", "he", "he_uniform", "lecun",
                                  "lecun_normal", "normal(0.5)", "uniform(0.2)"])
def test_init_specs_match_jaxnn_initializers(name):
    spec = D.parse_initializer(name)
    shape = (300, 200)
    if "(" in name:
        base, arg = name[:-1].split("(")
        ref_init = initializers.get(base, **{"stddev" if base == "normal" else "scale":
                                             float(arg)})
    else:
        ref_init = initializers.get(D._ALIASES.get(name, name))
    ref = np.asarray(ref_init(jax.random.key(1), shape, jnp.float32))
    assert spec.stddev(*shape) == pytest.approx(ref.std(), rel=0.03)
    cfg = mlp.MLPConfig(layer_sizes=(300, 200, 5), hidden_activation="relu")
    stds, codes = D._layer_stds([spec], cfg.layer_sizes)
    params, _ = D._init_model(cfg, jax.random.key(2), jnp.asarray(stds[0]), codes[0])
    w = np.asarray(params["layers"][0]["w"])
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(ref.std(), rel=0.03)
    assert np.abs(w).max() == pytest.approx(np.abs(ref).max(), rel=0.25)  # same support


def _reference_signals(cfg, params, x, y):
    """dL/da_l, dL/dz_l by autodiff through additive offsets on each layer's signals."""
    act = activations.get(cfg.hidden_activation)
    n = cfg.num_layers

    def loss(offsets):
        h = x
        for l in range(n):
            p = params["layers"][l]
            z = h @ p["w"] + p["b"][None, :] + offsets["z"][l]
            if l == n - 1:
                return losses.softmax_cross_entropy_with_integer_labels(z, y)
            h = act(z) + offsets["a"][l]

    zeros = {"z": [jnp.zeros((x.shape[0], cfg.layer_sizes[l + 1]), x.dtype) for l in range(n)],
             "a": [jnp.zeros((x.shape[0], cfg.layer_sizes[l + 1]), x.dtype)
                   for l in range(n - 1)]}
    return jax.grad(loss)(zeros)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "selu", "gelu"])
def test_statistics_equal_autodiff(activation):
    cfg = mlp.MLPConfig(layer_sizes=(6, 8, 8, 8, 3), hidden_activation=activation)
    params, state = mlp.init(cfg, jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (16, 6), jnp.float64)
    y = jnp.arange(16) % 3
    s = D._measure(cfg, params, state, x, y, hist=None)
    grads = jax.grad(lambda p: mlp.make_loss_fn(cfg, D.LOSS)(p, state, x, y)[0])(params)
    ref_w = np.array([np.linalg.norm(g["w"]) for g in grads["layers"]])
    np.testing.assert_allclose(s["weight_grad_norm"], ref_w, rtol=1e-10)
    sig = _reference_signals(cfg, params, x, y)
    np.testing.assert_allclose(s["grad_pre_activation_norm"],
                               [np.linalg.norm(g) for g in sig["z"]], rtol=1e-10)
    np.testing.assert_allclose(s["grad_activation_norm"],
                               [np.linalg.norm(g) for g in sig["a"]], rtol=1e-10)
    assert float(s["grad_ratio"]) == pytest.approx(ref_w[0] / ref_w[2], rel=1e-10)
    # forward statistics against a plain numpy recomputation
    h, means, stds, sats = np.asarray(x), [], [], []
    f, fp = activations.get(activation), activations.get_grad(activation)
    for p in params["layers"][:-1]:
        z = h @ np.asarray(p["w"]) + np.asarray(p["b"])
        h = np.asarray(f(z))
        means.append(h.mean())
        stds.append(h.std())
        fam = D.activation_family(activation)
        flat = {"sigmoid": np.abs(h - 0.5) > 0.45, "tanh": np.abs(h) > 0.9,
                "relu": h == 0}.get(fam)
        sats.append((np.abs(np.asarray(fp(z))) < 0.05 if flat is None else flat).mean())
    np.testing.assert_allclose(s["activation_mean"], means, rtol=1e-10)
    np.testing.assert_allclose(s["activation_std"], stds, rtol=1e-10)
    np.testing.assert_allclose(s["saturation_fraction"], sats)


def test_statistics_with_batch_norm_equal_autodiff():
    cfg = mlp.MLPConfig(layer_sizes=(5, 7, 7, 3), hidden_activation="tanh", batch_norm=True)
    params, state = mlp.init(cfg, jax.random.key(3), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(4), (12, 5), jnp.float64)
    y = jnp.arange(12) % 3
    s = D._measure(cfg, params, state, x, y, hist=None)
    grads = jax.grad(lambda p: mlp.make_loss_fn(cfg, D.LOSS)(p, state, x, y, None, True)[0])(
        params)
    np.testing.assert_allclose(
        s["weight_grad_norm"], [np.linalg.norm(g["w"]) for g in grads["layers"]], rtol=1e-9)


@pytest.fixture(scope="module")
def tiny():
    cfg = D.DepthStudyConfig(
        name="tiny", dataset="digits", depths=(2,), widths=(8,), activations=("tanh",),
        initializers=("xavier", "normal(0.1)"), seeds=3, probe_size=32, steps=6,
        batch_size=8, eval_size=64, learning_rate=0.1,
    )
    return cfg, D.load_study_data(cfg)


def test_vmapped_seeds_equal_python_loop(tiny):
    cfg, data = tiny
    v = D.run_group(cfg, data, 2, 8, "tanh", mode="vmap")
    loop = D.run_group(cfg, data, 2, 8, "tanh", mode="loop_all")
    assert v["curve"].shape == (2, 3, 6)
    assert v["init"]["weight_grad_norm"].shape == (2, 3, 3)
    assert v["curve"].dtype == np.float32
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), v, loop)
    # different seeds and different initializers really give different models
    assert not np.allclose(v["curve"][0, 0], v["curve"][0, 1])
    assert not np.allclose(v["curve"][0, 0], v["curve"][1, 0])


def test_one_compilation_per_shape_group(tiny):
    cfg, data = tiny
    # histogram_bins is 0 in the key when histograms are off (it changes nothing then)
    group = (2, 8, "tanh", False, cfg.steps, cfg.batch_size, 0, False, "all")
    assert not cfg.histograms
    before = D.trace_count()
    r = D.run_study(cfg, data=data)  # compiles the group unless an earlier test did
    assert r.timing["compiles"] in (0, 1) and D.trace_count() - before == r.timing["compiles"]
    assert D.trace_count(group) == 1
    # other seed, learning rate and initializers (scales and distributions): same shapes,
    # no new compilation
    cfg2 = D.DepthStudyConfig(**{**vars(cfg), "initializers": ("lecun", "normal(1)"),
                                 "seed": 5, "learning_rate": 0.3})
    r2 = D.run_study(cfg2)
    assert r2.timing["compiles"] == 0 and D.trace_count(group) == 1
    assert r2.records[0]["initializer"] == "lecun"
    assert r2.records[0]["probe_loss"] != r.records[0]["probe_loss"]
    # a new depth is a new shape group: exactly one more compilation
    cfg3 = D.DepthStudyConfig(**{**vars(cfg), "depths": (1,)})
    assert D.run_study(cfg3, data=data).timing["compiles"] == 1
    assert D.trace_count((1,) + group[1:]) == 1


def test_the_initial_draws_are_compiled_once_per_depth_and_width(tiny):
    # The draws depend on the layer sizes only: every activation of a depth and width
    # shares one compiled init, and no engine program holds a copy of the draws.
    cfg, data = tiny
    c = D.DepthStudyConfig(**{**vars(cfg), "depths": (4,), "widths": (6,),
                              "activations": ("tanh", "relu", "sigmoid")})
    shape = (4, 6, False, data.x_train.shape[1], data.num_classes)
    r = D.run_study(c, data=data)
    assert r.timing["compiles"] in (0, 3)  # three engines (unless an earlier test built them)
    assert D._INIT_TRACES[shape] == 1
    assert {rec["activation"] for rec in r.records} == {"tanh", "relu", "sigmoid"}
    fn, _ = D._compiled(D._engine_key(c, (4, 6, "relu", False)), shape[3], shape[4])
    stds, codes = D._layer_stds(c.init_specs, (shape[3],) + (6,) * 4 + (shape[4],))
    keys = D._seed_keys(c, range(c.seeds))
    params, state = D._compiled_init(*shape[:3], *shape[3:])(stds, codes, keys)
    assert params["layers"][1]["w"].shape == (len(c.initializers), c.seeds, 6, 6)
    jaxpr = str(jax.make_jaxpr(fn)(params, state, keys, jnp.float32(0.1), *D._arrays(c, data)))
    assert "erf_inv" not in jaxpr and "random_bits" in jaxpr  # minibatch draws only
    # the same records as each group drawing on its own (the draws of one key do not
    # depend on the program they are compiled in): the first seed of xavier at init
    own = jax.jit(functools.partial(
        D._init_model, D._mlp_config(4, 6, "relu", False, shape[3], shape[4])))(
        keys[0], stds[0], codes[0])[0]
    jax.tree.map(np.testing.assert_array_equal, own,
                 jax.tree.map(lambda x: x[0, 0], params))


def _phase_config(**kw):
    return D.DepthStudyConfig(**{**dict(
        name="phases", dataset="digits", depths=(3,), widths=(8,), activations=("tanh",),
        initializers=("xavier", "normal(1)"), seeds=2, probe_size=32, steps=4,
        batch_size=8, eval_size=64, learning_rate=0.5, histograms=True), **kw})


def test_a_zero_learning_rate_gives_trained_statistics_equal_to_the_initial_ones():
    # The initial and the trained model are measured and evaluated by one traced copy
    # vmapped over the two: with nothing learned, the two phases must read the same.
    cfg = _phase_config()
    object.__setattr__(cfg, "learning_rate", 0.0)  # the config refuses 0; run_group takes it
    out = D.run_group(cfg, D.load_study_data(cfg), 3, 8, "tanh")
    assert set(out["init"]) - set(out["trained"]) == {"histogram", "histogram_nonfinite"}
    for k, v in out["trained"].items():
        np.testing.assert_array_equal(v, out["init"][k], err_msg=k)
    np.testing.assert_array_equal(out["trained_eval"], out["init_eval"])
    assert out["init_eval"].shape == (2, 2, 4) and out["curve"].shape == (2, 2, 4)


def test_initial_statistics_evaluation_and_histograms_do_not_depend_on_training():
    # steps=0 measures the initial model alone (no SGD step compiled); with steps the
    # initial phase must still be the untrained model (not the trained one), its
    # histograms included, and the trained phase the trained one.
    cfg0, cfg4 = _phase_config(steps=0), _phase_config()
    data = D.load_study_data(cfg0)
    zero = D.run_group(cfg0, data, 3, 8, "tanh")
    four = D.run_group(cfg4, data, 3, 8, "tanh")
    assert set(zero) == {"init", "init_eval"} and "histogram" in zero["init"]
    assert zero["init"].keys() == four["init"].keys()
    for k, v in four["init"].items():
        tol = {"atol": 1e-6 * np.max(zero["init"]["activation_std"])} if k == "activation_mean" \
            else {"atol": 0}
        np.testing.assert_allclose(v, zero["init"][k], rtol=1e-5, err_msg=k, **tol)
    np.testing.assert_allclose(four["init_eval"], zero["init_eval"], rtol=1e-5)
    # the trained model differs, and its statistics are not the initial ones
    assert np.all(np.abs(four["trained_eval"][..., 0] - four["init_eval"][..., 0]) > 1e-3)
    assert not np.allclose(four["trained"]["weight_grad_norm"], four["init"]["weight_grad_norm"])
    assert not np.allclose(four["trained"]["activation_std"], four["init"]["activation_std"])


def test_per_layer_traces_once_per_shape_and_keeps_the_layer_order():
    items = [jnp.arange(n * 3, dtype=jnp.float32).reshape(n, 3) + l
             for l, n in enumerate([2, 4, 4, 2, 5, 4])]
    traced = []

    def f(x):
        traced.append(x.shape)
        return {"sum": jnp.sum(x), "first": x[0]}

    out = D._per_layer(f, items)
    assert len(traced) == 3  # shapes (2, 3), (4, 3), (5, 3)
    np.testing.assert_array_equal(out["sum"], [float(jnp.sum(x)) for x in items])
    np.testing.assert_array_equal(out["first"], np.stack([x[0] for x in items]))


def test_per_layer_joins_the_groups_without_a_slice_per_layer():
    # 1 + 48 + 1 layers as in a 50-layer MLP's statistics: the outputs were cut into one
    # slice per layer and stacked again (at 50 layers that compiled longer than the
    # statistics themselves); contiguous groups now join by one concatenation.
    items = [jnp.full((3, 2), float(l)) for l in range(49)] + [jnp.ones((5, 2))]
    items[0] = jnp.zeros((4, 2))

    def f(x):  # no indexing of its own
        return {"mean": jnp.mean(x), "cols": jnp.sum(x, axis=0)}

    jaxpr = jax.make_jaxpr(lambda xs: D._per_layer(f, xs))(items)
    names = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert "slice" not in names and "squeeze" not in names and "gather" not in names
    out = D._per_layer(f, items)
    np.testing.assert_array_equal(out["mean"], [float(jnp.mean(x)) for x in items])
    np.testing.assert_array_equal(out["cols"], np.stack([jnp.sum(x, axis=0) for x in items]))


@pytest.mark.parametrize("code", [0, 1, 2])
def test_init_model_draws_each_layer_from_its_own_key(code):
    cfg = mlp.MLPConfig(layer_sizes=(5, 7, 7, 7, 3), hidden_activation="tanh")
    key = jax.random.key(11)
    stds = jnp.asarray([0.5, 2.0, 3.0, 4.0], jnp.float32)
    params, _ = D._init_model(cfg, key, stds, jnp.asarray(code))
    keys = jax.random.split(key, 4)
    draw = [initializers.normal(1.0),
            initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
            initializers.variance_scaling(1.0, "fan_in", "uniform")][code]
    for l, p in enumerate(params["layers"]):
        shape = cfg.layer_sizes[l], cfg.layer_sizes[l + 1]
        root = 1.0 if code == 0 else np.sqrt(shape[0])
        np.testing.assert_allclose(p["w"], draw(keys[l], shape, jnp.float32) * root * stds[l],
                                   rtol=1e-6, err_msg=str(l))
        np.testing.assert_array_equal(p["b"], np.zeros(shape[1]))


def test_result_records_and_helpers(tiny):
    cfg, data = tiny
    r = D.run_study(cfg, data=data)
    assert len(r.records) == 1 * 2 * 3 * 2
    rec = r.select(phase="trained", initializer="xavier", seed=1)[0]
    assert set(D.COLUMNS) <= set(rec)
    assert len(rec["weight_grad_norm"]) == 3 and len(rec["activation_std"]) == 2
    assert rec["grad_ratio"] == pytest.approx(rec["weight_grad_norm"][0]
                                              / rec["weight_grad_norm"][1], rel=1e-5)
    assert r.column("test_accuracy", phase="trained").shape == (6,)
    assert len(r.curves) == 6 and len(r.curves[0]["losses"]) == 6
    assert 0.0 <= rec["test_accuracy"] <= 1.0


def _assert_same_results(a, b, rtol):
    """Same records, curves and histograms in the same order; floats to ``rtol``."""
    assert len(a.records) == len(b.records) and len(a.curves) == len(b.curves)
    assert len(a.histograms) == len(b.histograms)
    for ra, rb in zip(a.records + a.curves + a.histograms, b.records + b.curves + b.histograms,
                      strict=True):
        assert ra.keys() == rb.keys()
        for k, va in ra.items():
            if isinstance(va, float | list):
                np.testing.assert_allclose(va, rb[k], rtol=rtol, atol=1e-7, err_msg=k)
            else:
                assert va == rb[k], (k, va, rb[k])


two_cores = pytest.mark.skipif(len(W.usable_cores()) < 2, reason="needs 2 usable CPU cores")


@two_cores
def test_two_workers_give_the_records_of_one_process(tiny):
    cfg, data = tiny
    cfg = D.DepthStudyConfig(**{**vars(cfg), "depths": (1, 2), "histograms": True})
    one = D.run_study(cfg, data=data)
    messages = []
    two = D.run_study(cfg, data=data, workers=2, progress=messages.append)
    assert one.timing["workers"] == 1 and two.timing["workers"] == 2
    # each worker compiles what it runs: 2 groups, each compiled once, in either worker
    assert two.timing["compiles"] == 2
    assert sorted(m.split("] ")[1].split(":")[0] for m in messages) == [
        "depth=1 width=8 activation=tanh batch_norm=False",
        "depth=2 width=8 activation=tanh batch_norm=False"]
    assert [g["depth"] for g in two.timing["groups"]] == [1, 2]
    # each worker measured its group's compilation (the group's time includes it)
    for g in two.timing["groups"]:
        assert 0 < g["compile_s"] <= g["seconds"], g
    assert all(" s (compiling " in m for m in messages)
    _assert_same_results(one, two, rtol=1e-5)


@two_cores
def test_two_workers_split_the_seeds_of_a_single_group(tiny):
    cfg, data = tiny  # one shape group, 3 seeds: seeds (0, 1) and (2,) go to the workers
    one = D.run_study(cfg, data=data)
    messages = []
    two = D.run_study(cfg, data=data, workers=2, progress=messages.append)
    assert sorted(m.rsplit("(", 1)[1] for m in messages) == ["seeds 0..1)", "seeds 2..2)"]
    assert two.timing["compiles"] == 2  # two seed-share shapes
    assert [r["seed"] for r in two.records] == [r["seed"] for r in one.records]
    _assert_same_results(one, two, rtol=1e-5)


@pytest.mark.parametrize("workers, needle", [
    (-1, "workers: got -1, expected an integer >= 0"),
    (10_000, "workers: got 10000, but this process may use only"),
    # a bool is an int (True == 1): it used to run silently as one worker
    (True, "workers: got True, expected an integer >= 0 (1 = this process only, 0 = one per"),
    (False, "workers: got False, expected an integer >= 0"),
    (1.0, "workers: got 1.0, expected an integer >= 0"),
    ("2", "workers: got '2', expected an integer >= 0"),
])
def test_bad_worker_counts_are_one_line_errors(tiny, workers, needle, monkeypatch):
    cfg, data = tiny
    ran = []
    monkeypatch.setattr(D, "run_group", lambda *a, **k: ran.append(a))
    with pytest.raises(ValueError) as e:
        D.run_study(cfg, data=data, workers=workers)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not ran  # refused before any group runs


@pytest.mark.parametrize("value", ["true", "1.5", "two"])
def test_cli_workers_must_be_an_integer(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        depth_cli.main(["--workdir", str(tmp_path / "w"), "--quiet", "--workers", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--workers: got {value!r}, expected an integer >= 0" in err


@pytest.mark.slow
def test_batch_norm_sweep_runs_and_normalizes():
    cfg = D.DepthStudyConfig(
        name="bn", dataset="digits", depths=(3,), widths=(16,), activations=("relu",),
        initializers=("normal(0.01)",), batch_norm=(True,), seeds=2, probe_size=64, steps=2,
        batch_size=16, eval_size=64,
    )
    r = D.run_study(cfg)
    rows = r.select(phase="init")
    assert len(rows) == 2 and all(x["batch_norm"] and x["finite"] for x in rows)
    # N(0, 0.01^2) kills a plain ReLU stack (see the histogram test); batch norm rescales
    # every layer, so the activations keep a unit-scale spread
    std = np.asarray(rows[0]["activation_std"])
    assert np.all((std > 0.4) & (std < 1.5))


def test_benchmark_function_runs(tiny):
    cfg, _ = tiny
    out = D.benchmark_vmap_vs_loop(cfg, depth=2, width=8, activation="tanh", repeats=1)
    assert out["models"] == 6 and out["vmap_s"] > 0 and out["loop_s"] > 0
    assert out["speedup"] == pytest.approx(out["loop_s"] / out["vmap_s"])


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("data, needle", [
    ({"depths": [0]}, "depths: got 0"),
    ({"depths": [2, 2]}, "no repeated"),
    ({"activations": ["sigmod"]}, "did you mean 'sigmoid'"),
    ({"activations": ["maxout"]}, "'maxout' cannot be swept by the depth study"),
    ({"initializers": ["xavir"]}, "did you mean 'xavier'"),
    ({"initializers": ["normal(-1)"]}, "> 0"),
    ({"initializers": ["normal(abc)"]}, "must be a number"),
    ({"initializers": ["orthogonal"]}, "'orthogonal' is a jaxnn initializer the depth study"),
    ({"dataset": "mnst"}, "did you mean 'mnist'"),
    ({"seeds": 0}, "seeds: got 0"),
    ({"learning_rate": -1}, "learning_rate"),
    ({"steps": 1.5}, "steps: got 1.5"),
    ({"deptsh": [2]}, "did you mean 'depths'"),
    ({"histograms": "yes"}, "true or false"),
    # thresholds under which one combination would both vanish and explode, or both train
    # and stall
    ({"vanish_ratio": 200, "explode_ratio": 100}, "below explode_ratio (100)"),
    ({"vanish_ratio": 100, "explode_ratio": 100}, "vanish_ratio: got 100.0"),
    ({"train_threshold": 0.05}, "train_threshold: got 0.05, expected a number in [0.1, 1)"),
    # XLA aborted the process (a C++ error, no exception) on such a matrix
    ({"widths": [2**20 + 1]}, "widths: got 1048577, expected integers in [1, 2**20]"),
    ({"dataset": "normal", "input_dim": 2**21}, "input_dim: got 2097152"),
])
def test_config_errors_are_one_line(data, needle):
    with pytest.raises(ConfigError) as e:
        D.config_from_dict(data)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("file, kind, command", [
    ("default.yaml", "a training config", "scripts/train.py"),
    ("fashion_mnist.yaml", "a training config", "scripts/train.py"),
    ("compare_surface.yaml", "a config of the surface experiment", "scripts/compare.py surface"),
    ("compare_init.yaml", "a config of the init experiment", "scripts/compare.py init"),
])
def test_another_kind_of_config_is_named_with_the_command_that_runs_it(file, kind, command):
    # It said only "unknown key 'model'" (train.py already named a study config as such).
    path = REPO / "configs" / file
    with pytest.raises(ConfigError) as e:
        D.load_config(path)
    assert str(e.value) == (f"config file {str(path)!r} is {kind}, not a depth-study config: "
                            f"run it with {command} --config {path}")


def test_a_study_config_with_a_stray_training_key_gets_the_unknown_key_message(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("depths: [2]\nwidths: [8]\nmodel: {hidden_sizes: [8]}\n")
    with pytest.raises(ConfigError, match="unknown key 'model'"):
        D.load_config(path)


def test_an_initializer_split_at_its_comma_by_yaml_is_named_as_such(tmp_path):
    """[normal(1, 2), he] unquoted is the list 'normal(1', '2)', 'he': the error named
    only the first piece ("cannot parse 'normal(1'"), as if the parenthesis were missing."""
    path = tmp_path / "study.yaml"
    path.write_text("initializers: [normal(1, 2), he]\n")
    with pytest.raises(ConfigError) as e:
        D.load_config(path)
    msg = str(e.value)
    assert "'normal(1' and '2)' are one entry split at its commas" in msg, msg
    assert "e.g. 'normal(0.01)'" in msg and "\n" not in msg
    # three pieces are named too (the two-piece check gave the plain parse error)
    path.write_text("initializers: [he, normal(1, 2, 3), xavier]\n")
    with pytest.raises(ConfigError, match=re.escape(
            "'normal(1' and '2' and '3)' are one entry split at its commas")):
        D.load_config(path)
    # a lone unbalanced entry still gets the parse error, and balanced ones parse
    with pytest.raises(ConfigError, match=re.escape("cannot parse 'normal(1'")):
        D.config_from_dict({"initializers": ["normal(1", "he"]})
    assert D.config_from_dict({"initializers": ["normal(1)", "he"]}).initializers == (
        "normal(1)", "he")


def test_python_config_is_coerced_like_yaml():
    # used to be a TypeError (depths=5, learning_rate="0.1"), a sweep over the letters of
    # "relu" ("unknown activation 'r'"), or histograms recorded for histograms="no"
    c = D.DepthStudyConfig(depths=5, activations="relu", initializers="he",
                           learning_rate="0.1", batch_norm=False, widths=[8, 16])
    assert c.depths == (5,) and c.activations == ("relu",) and c.initializers == ("he",)
    assert c.learning_rate == 0.1 and c.batch_norm == (False,) and c.widths == (8, 16)
    for kwargs, needle in ((dict(histograms="no"), "histograms: got 'no', expected true or "
                            "false"), (dict(learning_rate=[0.1]), "learning_rate: got [0.1]"),
                           (dict(depths=[2.5]), "depths: got 2.5")):
        with pytest.raises(ConfigError, match=re.escape(needle)):
            D.DepthStudyConfig(**kwargs)


def test_load_config_presets_and_overrides():
    full = D.load_config(REPO / "configs" / "depth_study.yaml")
    assert min(full.depths) <= 2 and max(full.depths) >= 50 and full.seeds >= 5
    assert set(full.activations) == {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu",
                                     "gelu", "swish", "softplus"}
    assert set(full.initializers) == {"normal(0.01)", "normal(1)", "xavier", "he", "lecun"}
    hist = D.load_config(REPO / "configs" / "activation_histograms.yaml")
    assert hist.depths == (5,) and hist.widths == (100,) and hist.histograms
    smoke = D.load_config(REPO / "configs" / "depth_smoke.yaml",
                          ["depths=[2, 3]", "learning_rate=1e-3", "initializers=he"])
    assert smoke.depths == (2, 3) and smoke.learning_rate == 1e-3
    assert smoke.initializers == ("he",)
    with pytest.raises(ConfigError, match="unknown key 'dept'"):
        D.load_config(None, ["dept=3"])
    # values are read like config files: 1e-3 is a number, a repeated key is an error
    assert D.apply_overrides({}, ["learning_rate=1e-3"]) == {"learning_rate": 1e-3}
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        D.apply_overrides({}, ["initializers={a: 1, a: 2}"])


# ----------------------------------------------------------------------------- CLI


def test_cli_smoke_writes_table_plots_and_report(tmp_path, capsys):
    wd = tmp_path / "out"
    rc = depth_cli.main(["--config", str(REPO / "configs" / "depth_smoke.yaml"),
                         "--set", "steps=4", "--set", "seeds=2", "--set", "activations=[relu]",
                         "--set", "depths=[2]",
                         "--workdir", str(wd), "--quiet"])
    assert rc == 0
    for name in ("table.csv", "table.json", "curves.json", "histograms.json", "report.md",
                 "config.yaml", "grad_norms_init.png", "grad_norms_trained.png",
                 "ratio_heatmap_init.png", "training_curves.png",
                 "activation_histograms_relu_d2.png"):
        assert (wd / name).stat().st_size > 0, name
    rows = json.loads((wd / "table.json").read_text())
    assert len(rows) == 1 * 1 * 2 * 2 * 2  # depths x activations x inits x seeds x phases
    csv_lines = (wd / "table.csv").read_text().strip().splitlines()
    assert len(csv_lines) == len(rows) + 1 and csv_lines[0].startswith("study,dataset,depth")
    report = (wd / "report.md").read_text()
    for heading in ("## Vanishing gradients", "## Exploding gradients and activations", "## Trains",
                    "first/last gradient ratio"):
        assert heading in report
    back = depth_report.load_result(wd)
    assert len(back.records) == len(rows) and back.config.steps == 4
    assert depth_report.render_report(back).startswith("# Depth study `depth_smoke`")


def test_a_diverged_model_has_nan_accuracy_and_stalls():
    # lr 1e38 blows the weights up to NaN; argmax of NaN logits is class 0, which used to
    # score the share of class 0 and hide the divergence.
    cfg = D.config_from_dict(dict(
        dataset="normal", input_dim=6, num_classes=3, n_samples=40, depths=[2], widths=[4],
        activations=["relu"], initializers=["normal(3)"], seeds=3, probe_size=16, steps=20,
        batch_size=4, learning_rate=1e38, eval_size=16))
    r = D.run_study(cfg)
    trained = r.select(phase="trained")
    assert sum(not t["finite"] for t in trained) >= 2
    assert any(np.isnan(t["test_loss"]) for t in trained)
    for t in trained:
        for split in ("train", "test"):
            if np.isnan(t[f"{split}_loss"]):  # NaN logits: no accuracy either
                assert np.isnan(t[f"{split}_accuracy"])
    (v,) = depth_report.classify(r)
    assert np.isnan(v["test_accuracy"]) and v["stalls"] and not v["trains"]


def test_trained_accuracy_is_nan_only_when_most_seeds_diverged():
    class _Result:  # trained_accuracy reads one column
        def __init__(self, vals):
            self.vals = np.asarray(vals, float)

        def column(self, name, **where):
            assert name == "test_accuracy" and where["phase"] == "trained"
            return self.vals

    nan = float("nan")
    assert depth_report.trained_accuracy(_Result([0.5, nan, 0.7])) == 0.6  # 1 of 3 diverged
    assert np.isnan(depth_report.trained_accuracy(_Result([0.5, nan, nan])))
    assert np.isnan(depth_report.trained_accuracy(_Result([])))


def test_saturation_of_relu6_and_step_counts_their_flat_regions():
    u = jnp.asarray([-1.0, 2.0, 7.0, 10.0])
    a = jnp.clip(u, 0.0, 6.0)
    assert float(D.saturation_fraction("relu6", u, a)) == 0.75  # a == 0 or a == 6
    assert float(D.saturation_fraction("relu", u, jnp.maximum(u, 0.0))) == 0.25
    assert float(D.saturation_fraction("step", u, (u > 0).astype(u.dtype))) == 1.0


def test_minibatch_keys_are_not_weight_keys():
    # Layer l's weights come from split(seed_key, L)[l] == fold_in(seed_key, l); the
    # minibatch stream (1 before) must not be one of them.
    key = jax.random.key(3)
    layer_keys = {tuple(np.asarray(jax.random.key_data(k)).tolist())
                  for k in jax.random.split(key, 64)}
    batch = tuple(np.asarray(jax.random.key_data(
        jax.random.fold_in(key, D.BATCH_STREAM))).tolist())
    assert batch not in layer_keys


def test_normal_data_honours_n_train_and_n_test():
    cfg = D.config_from_dict(dict(dataset="normal", input_dim=5, n_samples=100, n_train=30,
                                  n_test=7, probe_size=16))
    data = D.load_study_data(cfg)
    assert data.x_train.shape == (30, 5) and data.x_test.shape == (7, 5)


def test_cli_default_workdir_never_replaces_a_finished_study(tmp_path, capsys, monkeypatch):
    # Without --workdir: runs/<config file name>, then runs/<name>-2 (it overwrote the first
    # study, which took 20+ minutes at full size). An explicit --workdir is used as given.
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(REPO / "configs" / "depth_smoke.yaml"), "--set", "steps=0",
            "--set", "seeds=1", "--set", "activations=[relu]", "--set", "depths=[1]",
            "--set", "initializers=[he_normal]", "--no-plots"]
    for expected in ("depth_smoke", "depth_smoke-2"):
        assert depth_cli.main(args) == 0
        assert f"output directory: {pathlib.Path('runs') / expected}" in capsys.readouterr().err
        assert (tmp_path / "runs" / expected / "report.md").exists()
    first = (tmp_path / "runs/depth_smoke/table.csv").read_bytes()
    assert depth_cli.main([*args, "--set", "seeds=2", "--workdir", "runs/depth_smoke"]) == 0
    assert (tmp_path / "runs/depth_smoke/table.csv").read_bytes() != first  # as asked
    assert not (tmp_path / "runs/depth_smoke-3").exists()


def test_cli_unusable_workdir_and_literal_data_dir(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    rc = depth_cli.main(["--workdir", str(blocked), "--quiet", "--set", "depths=[1]"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --workdir") and err.count("\n") == 1
    # --data-dir is a path as given, not YAML: '#' would start a comment, '0123' be octal.
    odd = tmp_path / "fm #2"
    odd.mkdir()
    rc = depth_cli.main(["--workdir", str(tmp_path / "w"), "--quiet", "--set",
                         "dataset=fashion_mnist", "--data-dir", str(odd)])
    err = capsys.readouterr().err
    assert rc == 2 and "fm #2" in err and err.count("\n") == 1


def test_cli_missing_data_dir_is_one_line_and_creates_no_workdir(tmp_path, capsys):
    # not --quiet: no "output directory: ..." line before the error, and no empty folder left
    workdir = tmp_path / "w"
    rc = depth_cli.main(["--workdir", str(workdir), "--set", "depths=[1]", "--set",
                         "dataset=fashion_mnist", "--data-dir", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "absent" in err and not workdir.exists()


@pytest.mark.parametrize("dataset", ["digits", "normal"])
def test_cli_warns_that_data_dir_is_unused_by_a_data_set_without_files(dataset, tmp_path,
                                                                       capsys):
    # --workers 10000 stops the run right after the config is read (the warning comes first)
    rc = depth_cli.main(["--workdir", str(tmp_path / "w"), "--quiet", "--set",
                         f"dataset={dataset}", "--data-dir", "/some/idx", "--workers", "10000"])
    warning, error = capsys.readouterr().err.splitlines()
    assert rc == 2 and error.startswith("error: ") and "10000" in error
    assert warning == (f"warning: data_dir='/some/idx' is ignored: the '{dataset}' data set "
                       "reads no files (only fashion_mnist and mnist do)")


@pytest.mark.parametrize("sets, warning", [
    (["dataset=digits", "num_classes=2", "n_samples=64"],
     "warning: num_classes=2, n_samples=64 ignored: only the 'normal' data set takes its "
     "shape from the config; 'digits' has its own"),
    (["dataset=normal", "histograms=false", "histogram_bins=50"],
     "warning: histogram_bins=50 ignored: histograms is false (set histograms=true to record "
     "them)"),
])
def test_cli_warns_of_settings_the_study_ignores(sets, warning, tmp_path, capsys):
    # --workers 10000 stops the run right after the config is read (the warning comes first)
    argv = ["--workdir", str(tmp_path / "w"), "--quiet", "--workers", "10000"]
    for item in sets:
        argv += ["--set", item]
    assert depth_cli.main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == warning and lines[1].startswith("error: ") and len(lines) == 2


def test_settings_the_study_uses_get_no_warning():
    for name in ("depth_study", "depth_smoke", "activation_histograms"):
        assert D.ignored_settings(D.load_config(REPO / "configs" / f"{name}.yaml")) == []
    assert D.ignored_settings(D.config_from_dict(
        {"dataset": "normal", "num_classes": 3, "histograms": True, "histogram_bins": 9})) == []


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    cases = [["--set", "depths=[0]"], ["--config", str(tmp_path / "missing.yaml")],
             ["--set", "activations=[sigmod]"], ["--workers", "-2"], ["--workers", "two"],
             ["--workers", "10000"], ["--set", "seed=99999999999999999999"],
             ["--set", "steps=3000000000"],
             # more probe rows than training rows (the report claimed the configured size)
             ["--set", "dataset=normal", "--set", "n_samples=40", "--set", "probe_size=100"],
             # missing IDX files: one line, not the DataError's several
             ["--set", "dataset=fashion_mnist", "--data-dir", str(tmp_path)]]
    for extra in cases:
        try:
            rc = depth_cli.main(["--workdir", str(tmp_path / "w"), "--quiet", *extra])
        except SystemExit as e:  # argparse usage errors
            rc = e.code
        assert rc == 2, extra
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "depth_study.py"), "--set", "initializers=[hee]",
         "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: initializers: unknown initializer")
    assert "Traceback" not in proc.stderr


@two_cores
def test_cli_workers_flag_runs_the_sweep_in_two_processes(tmp_path, capsys):
    wd = tmp_path / "out"
    rc = depth_cli.main(["--config", str(REPO / "configs" / "depth_smoke.yaml"),
                         "--set", "steps=3", "--set", "activations=[relu]", "--set", "widths=[4]",
                         "--workers", "2", "--no-plots", "--workdir", str(wd)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "2 worker processes" in err
    rows = json.loads((wd / "table.json").read_text())
    assert len(rows) == 2 * 1 * 2 * 2 * 2  # depths x activations x inits x seeds x phases
    assert "in 2 worker processes" in (wd / "report.md").read_text()
    assert json.loads((wd / "timing.json").read_text())["workers"] == 2


# ----------------------------------------------------------------------------- compile log


def test_a_repeated_study_says_its_kernels_were_reused(tiny):
    cfg, data = tiny
    D.run_study(cfg, data=data)  # compiles the group unless an earlier test did
    again = D.run_study(cfg, data=data)
    # nothing new was compiled, but nothing ran uncompiled either: say so
    assert again.timing["compiles"] == 0 and again.timing["reused"] == 1
    summary = depth_report.compile_summary(again.timing)
    assert summary == ("0 new compilations (1 shape group reused a kernel compiled earlier "
                       "in this process)")
    assert f"with {summary}." in depth_report.render_report(again)


def test_each_group_reports_its_compile_time_and_a_reused_group_none(tiny):
    cfg, data = tiny
    cfg = D.DepthStudyConfig(**{**vars(cfg), "depths": (1, 3), "name": "compile_clock"})
    D.run_study(cfg, data=data)  # both groups compiled (maybe by an earlier test too)
    bigger = D.DepthStudyConfig(**{**vars(cfg), "widths": (9,)})  # a shape no test uses
    messages = []
    first = D.run_study(bigger, data=data, progress=messages.append)
    assert first.timing["compiles"] == 2
    for g in first.timing["groups"]:
        # the engine was traced and compiled in this call: most of a tiny group's time
        assert 0.1 < g["compile_s"] <= g["seconds"], g
    assert [m.split(" (compiling ")[1] for m in messages] == [
        f"{g['compile_s']:.1f} s)" for g in first.timing["groups"]]
    messages.clear()
    again = D.run_study(bigger, data=data, progress=messages.append)
    assert again.timing["compiles"] == 0
    assert [g["compile_s"] for g in again.timing["groups"]] == [0.0, 0.0]
    assert all(m.endswith("(compiling 0.0 s)") for m in messages)
    assert depth_report.compile_share(again.timing) == ""  # the summary says 0 new ones
    total = sum(g["compile_s"] for g in first.timing["groups"])
    share = depth_report.compile_share(first.timing)
    assert share.startswith(f"compiling took {total:.1f} s of the groups' ")
    assert f"; {share}." in depth_report.render_report(first)


def test_compile_clock_counts_only_inside_its_block_and_leaves_no_listener():
    f = jax.jit(lambda x: jnp.tanh(x) * 3.0 + 0.123)  # a function no other test compiles
    with D._CompileClock() as inside:
        f(jnp.ones(7)).block_until_ready()
    assert inside.seconds is not None and inside.seconds > 0
    before = inside.seconds
    jax.jit(lambda x: jnp.cos(x) - 0.321)(jnp.ones(5)).block_until_ready()  # after the block
    assert inside.seconds == before  # the listener was removed
    with D._CompileClock() as idle:
        f(jnp.ones(7)).block_until_ready()  # cached: nothing compiled
    assert idle.seconds is None
    assert idle.for_group(traced=False) == 0.0
    assert idle.for_group(traced=True) is None  # traced but not reported: unknown, not 0


def test_compile_clock_counts_only_its_own_thread():
    # run_study compiles the next group in a background thread while this one runs: a
    # group's clock must not count the other thread's compiling as its own.
    g = jax.jit(lambda x: jnp.sinh(x) * 0.77 - 0.5)  # functions no other test compiles
    with D._CompileClock() as clock:
        t = threading.Thread(target=lambda: g(jnp.ones(6)).block_until_ready())
        t.start()
        t.join()
    assert clock.seconds is None
    with D._CompileClock() as clock:
        jax.jit(lambda x: jnp.cosh(x) * 0.66)(jnp.ones(6)).block_until_ready()
    assert clock.seconds is not None and clock.seconds > 0


def test_the_next_group_compiles_in_a_background_thread_with_the_same_records(
        tiny, monkeypatch):
    cfg, data = tiny
    cfg = D.DepthStudyConfig(**{**vars(cfg), "depths": (1, 2), "widths": (5,),
                                "activations": ("tanh", "relu"), "name": "ahead"})
    compiled = []  # (group, thread name, groups run so far when it was compiled)
    ran = []
    real_compile, real_run = D._compile_group, D._timed_run_group

    def spy_compile(config, data, group, seeds):
        compiled.append((group, threading.current_thread().name, len(ran)))
        return real_compile(config, data, group, seeds)

    def spy_run(config, data, group, seeds):
        out = real_run(config, data, group, seeds)
        assert out[2] == 0, f"{group} traced again in the main thread"
        ran.append(group)
        return out

    monkeypatch.setattr(D, "_compile_group", spy_compile)
    monkeypatch.setattr(D, "_timed_run_group", spy_run)
    ahead = D.run_study(cfg, data=data)  # shapes no other test uses: all compiled here
    groups = [(d, 5, a, False) for a in ("tanh", "relu") for d in (1, 2)]
    assert [c[0] for c in compiled] == groups and ran == groups
    assert all(name.startswith("jaxnn-compile") for _, name, _ in compiled)
    # group k + 1 is compiled once group k is under way (k runs meanwhile), not before
    assert [c[2] for c in compiled] == [0, 0, 1, 2]
    assert ahead.timing["compiles"] == 4 and ahead.timing["reused"] == 0
    for g in ahead.timing["groups"]:  # the background thread's compiling is the group's
        assert 0.1 < g["compile_s"] <= g["seconds"], g
    monkeypatch.undo()
    plain = D.run_study(cfg, data=data, compile_ahead=False)
    assert plain.timing["reused"] == 4
    assert len(ahead.records) == len(plain.records) == 4 * 2 * 3 * 2
    for a, b in zip(ahead.records, plain.records, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_a_failing_group_stops_the_compiling_ahead(tiny, monkeypatch):
    cfg, data = tiny
    cfg = D.DepthStudyConfig(**{**vars(cfg), "depths": (1, 2, 3), "activations": ("tanh",)})
    compiled = []
    real_compile = D._compile_group

    def spy_compile(config, data, group, seeds):
        compiled.append(group)
        return real_compile(config, data, group, seeds)

    def boom(config, data, group, seeds):
        raise RuntimeError(f"group {group} failed")

    monkeypatch.setattr(D, "_compile_group", spy_compile)
    monkeypatch.setattr(D, "_timed_run_group", boom)
    with pytest.raises(RuntimeError, match=r"group \(1, 8, 'tanh', False\) failed"):
        D.run_study(cfg, data=data)
    time.sleep(0.5)  # a compile already under way may finish; none is queued after it
    assert compiled[0] == (1, 8, "tanh", False) and len(compiled) <= 2


@pytest.mark.parametrize("groups, expected", [
    ([{"seconds": 10.0, "compile_s": 7.3}, {"seconds": 5.0, "compile_s": 1.0}],
     "compiling took 8.3 s of the groups' 15.0 s"),
    ([{"seconds": 10.0, "compile_s": 7.0}, {"seconds": 5.0, "compile_s": None}], ""),
    ([{"seconds": 10.0}], ""),  # a timing.json written before compile_s was recorded
    ([], ""),
    ([{"seconds": 1.0, "compile_s": 0.01}], ""),  # with "compiles": 0 below
])
def test_compile_share(groups, expected):
    compiles = 0 if groups and groups[0].get("compile_s") == 0.01 else 2
    assert depth_report.compile_share({"groups": groups, "compiles": compiles}) == expected


@pytest.mark.parametrize("timing, expected", [
    ({"compiles": 3, "reused": 0, "workers": 1}, "3 compilations (one per shape group)"),
    ({"compiles": 1, "reused": 0, "workers": 1}, "1 compilation (one per shape group)"),
    ({"compiles": 0, "reused": 3, "workers": 1},
     "0 new compilations (3 shape groups reused kernels compiled earlier in this process)"),
    ({"compiles": 1, "reused": 2, "workers": 1},
     "1 new compilation (2 shape groups reused kernels compiled earlier in this process)"),
    ({"compiles": 4, "reused": 0, "workers": 2},
     "4 compilations in 2 worker processes (one per shape group and seed share in each)"),
    ({"compiles": 1, "reused": 1, "workers": 2},
     "1 compilation in 2 worker processes (one per shape group and seed share in each; "
     "1 task reused a kernel their worker had compiled)"),
    ({"compiles": 2}, "2 compilations (one per shape group)"),  # a timing.json of old
])
def test_compile_summary(timing, expected):
    assert depth_report.compile_summary(timing) == expected


# ----------------------------------------------------------------------------- overflow


def _row(ratio, first, last):
    return {"grad_ratio": ratio, "first_grad_norm": first, "last_grad_norm": last}


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("rows, kind, label", [
    # median of the seeds with a ratio (5.5e-3); the 0/0 seed is left out
    ([_row(1e-3, 1e-3, 1.0), _row(1e-2, 1e-2, 1.0), _row(NAN, 0.0, 0.0)], "ratio", "-2.3"),
    ([_row(0.0, 0.0, 1.0)], "ratio", "0"),  # first layer flushed to 0: ratio 0
    ([_row(INF, 1.0, 0.0)], "ratio", "inf"),
    ([_row(NAN, 0.0, 0.0), _row(NAN, 0.0, 0.0)], "0/0", "0/0"),  # a full vanish
    ([_row(NAN, NAN, NAN), _row(NAN, INF, INF)], "overflow", "overflow"),
    ([_row(NAN, 0.0, NAN)], "overflow", "overflow"),
    ([_row(NAN, 0.0, 0.0), _row(NAN, INF, NAN)], "0/0+overflow", "0/0|ovf"),
    # a ratio from a minority of the seeds is not the cell's: what the others are is
    ([_row(1e5, 1e5, 1.0), _row(NAN, INF, INF), _row(NAN, NAN, 1.0)], "overflow", "overflow"),
    ([_row(NAN, 0.0, 0.0), _row(1e-30, 1e-30, 1.0), _row(NAN, 0.0, 0.0)], "0/0", "0/0"),
    ([_row(1e-3, 1e-3, 1.0), _row(NAN, 0.0, 0.0), _row(NAN, INF, INF)] + [_row(NAN, 0.0, 0.0)],
     "0/0+overflow", "0/0|ovf"),
    # half of them is enough (as the accuracy median's rule): the median of those
    ([_row(1e-3, 1e-3, 1.0), _row(NAN, INF, INF)], "ratio", "-3.0"),
    ([], "none", ""),
])
def test_ratio_cell_tells_a_full_vanish_from_an_overflow(rows, kind, label):
    # both used to be "n/a" in the heat map
    med, got_kind, got_label = depth_report.ratio_cell(rows)
    assert (got_kind, got_label) == (kind, label)
    assert np.isnan(med) == (kind != "ratio")


@pytest.mark.parametrize("nonfinite, counts, expected", [
    (0.0, [3.0, 5.0], "he: layer 2"),
    (2.0, [3.0, 5.0], "he: layer 2\n(20% non-finite)"),
    (8.0, [0.0, 0.0], "he: layer 2\n(100% non-finite)"),
    (1.0, [99999.0, 0.0], "he: layer 2\n(<0.01% non-finite)"),
    (99999.0, [1.0, 0.0], "he: layer 2\n(>99.9% non-finite)"),
])
def test_histogram_title_says_what_share_is_missing(nonfinite, counts, expected):
    h = {"initializer": "he", "layer": 2, "counts": counts, "nonfinite": nonfinite}
    assert depth_report.histogram_title(h) == expected


@pytest.fixture(scope="module")
def overflow_result():
    # normal(1e-30): every gradient flushed to 0 (0/0); normal(1e20): activations overflow
    # to inf and then NaN from the second hidden layer on.
    cfg = D.config_from_dict(dict(
        name="overflow", dataset="normal", input_dim=6, num_classes=3, n_samples=40,
        depths=[3], widths=[4], activations=["relu"],
        initializers=["normal(1e-30)", "normal(1e20)", "he"], seeds=2, probe_size=16,
        steps=0, histograms=True, histogram_bins=5))
    return D.run_study(cfg)


def test_overflowing_activations_are_counted_not_dropped(overflow_result):
    r = overflow_result
    for h in r.histograms:
        # every activation is either in a bin or counted as non-finite: 2 seeds x 16 x 4
        assert sum(h["counts"]) + h["nonfinite"] == 2 * 16 * 4
    big = {h["layer"]: h for h in r.histograms if h["initializer"] == "normal(1e20)"}
    assert big[1]["nonfinite"] == 0 and big[3]["nonfinite"] > 0
    assert "non-finite)" in depth_report.histogram_title(big[3])
    assert all(h["nonfinite"] == 0 for h in r.histograms if h["initializer"] == "he")
    for rec in r.select(initializer="normal(1e20)"):
        frac = rec["nonfinite_fraction"]
        assert len(frac) == 3 and frac[0] == 0.0 and frac[2] > 0.5
    bad = sum(h["nonfinite"] for h in r.histograms if h["initializer"] == "normal(1e20)")
    assert bad == pytest.approx(sum(
        sum(rec["nonfinite_fraction"]) * 16 * 4 for rec in r.select(initializer="normal(1e20)")))
    report = depth_report.render_report(r)
    assert "## Incomplete activation histograms" in report
    assert "non-finite by layer" in report
    line = [x for x in report.splitlines() if x.startswith("- relu + normal(1e20), 3 hidden")]
    assert len(line) == 1 and "layer 3" in line[0] and "NaN/inf" in line[0]


def test_heatmap_and_ratio_table_tell_0_over_0_from_overflow(overflow_result, tmp_path):
    r = overflow_result
    cell = lambda init: depth_report.ratio_cell(r.select(phase="init", initializer=init))[1:]
    assert cell("normal(1e-30)") == ("0/0", "0/0")
    assert cell("normal(1e20)") == ("overflow", "overflow")
    assert cell("he")[0] == "ratio"
    report = depth_report.render_report(r)
    assert "| relu | normal(1e-30) | 0/0 |" in report
    assert "| relu | normal(1e20) | overflow |" in report
    paths = depth_report.write_plots(r, tmp_path)
    assert (tmp_path / "ratio_heatmap_init.png") in paths
    assert (tmp_path / "activation_histograms_relu_d3.png") in paths


def test_grad_norm_plot_counts_an_overflowed_seed_in_its_median(overflow_result, tmp_path,
                                                                monkeypatch):
    # One of the two He seeds overflows in layer 2: the median over seeds of that layer is
    # overflowed too (a gap in the plot), not the other seed's value (it dropped the inf).
    records = [dict(r) for r in overflow_result.records]
    he = [r for r in records if r["initializer"] == "he" and r["phase"] == "init"]
    assert len(he) == 2
    he[0]["weight_grad_norm"] = [v if i != 1 else float("inf")
                                 for i, v in enumerate(he[0]["weight_grad_norm"])]
    result = dataclasses.replace(overflow_result, records=records)
    figures = {}
    real = depth_report._save
    monkeypatch.setattr(depth_report, "_save",
                        lambda fig, path: (figures.setdefault(path.name, fig), real(fig, path))[1])
    depth_report.write_plots(result, tmp_path)
    ax = figures["grad_norms_init.png"].axes[2]  # one activation: columns = initializers
    assert ax.get_title() == "relu / he"
    y = np.asarray(ax.lines[0].get_ydata(), float)
    assert np.isnan(y[1]) and np.all(np.isfinite(y[[0, 2, 3]]))
    assert y[0] == pytest.approx(np.median([r["weight_grad_norm"][0] for r in he]))


def test_an_interrupted_write_keeps_the_previous_table(overflow_result, tmp_path, monkeypatch):
    # table.csv used to be opened in place: a failure mid-write left a truncated table
    paths = depth_report.write_table(overflow_result, tmp_path)
    before = {k: p.read_bytes() for k, p in paths.items()}
    calls = []

    def fail_late(v):
        calls.append(v)
        if len(calls) > 2 * len(D.COLUMNS):  # after the first rows were written
            raise OSError(28, "No space left on device")
        return v

    monkeypatch.setattr(depth_report, "_csv_cell", fail_late)
    with pytest.raises(OSError, match="No space left"):
        depth_report.write_table(overflow_result, tmp_path)
    assert {k: p.read_bytes() for k, p in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_rewriting_a_workdir_removes_the_earlier_studys_plots(overflow_result, tmp_path):
    # plots of an earlier study (other activations, a trained phase) used to stay next to
    # the new table, and all of them with --no-plots
    stale = ["grad_norms_trained.png", "ratio_heatmap_trained.png", "training_curves.png",
             "activation_histograms_tanh_d1.png", "ratio_heatmap_init_w8.png"]
    depth_report.write_outputs(overflow_result, tmp_path, plots=False)  # the earlier study
    for name in stale + ["mine.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"old")
    paths = depth_report.write_outputs(overflow_result, tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == sorted([p.name for p in paths["plots"]] + ["mine.png"])
    assert "activation_histograms_relu_d3.png" in pngs and "grad_norms_init.png" in pngs
    assert not any((tmp_path / name).exists() for name in stale)
    depth_report.write_outputs(overflow_result, tmp_path, plots=False)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["mine.png"]
    assert (tmp_path / "notes.txt").read_bytes() == b"old" and (tmp_path / "report.md").exists()


def test_norms_of_tiny_and_huge_float32_gradients_are_not_flushed_or_overflowed():
    # float32 entries of ~1e-22 (far above the denormal range) square to 0, and entries of
    # ~1e21 square to inf: a norm taken as sqrt(sum(x**2)) read 0 / inf for such layers.
    cfg = mlp.MLPConfig(layer_sizes=(6, 8, 8, 8, 3), hidden_activation="relu")
    params, state = mlp.init(cfg, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (16, 6), jnp.float32)
    y = jnp.arange(16) % 3
    loss_fn = lambda p, x: mlp.make_loss_fn(cfg, D.LOSS)(p, state, x, y)[0]
    ref = lambda g: np.linalg.norm(np.asarray(g, np.float64))

    tiny = jax.tree.map(lambda a: a, params)
    tiny["layers"][-1]["w"] = params["layers"][-1]["w"] * 1e-22
    s = jax.jit(lambda p: D._measure(cfg, p, state, x, y, hist=None))(tiny)
    grads = jax.grad(loss_fn)(tiny, x)
    ref_w = [ref(g["w"]) for g in grads["layers"]]
    assert 0 < ref_w[0] < 1e-18
    np.testing.assert_allclose(s["weight_grad_norm"], ref_w, rtol=1e-5)
    assert float(s["grad_ratio"]) == pytest.approx(ref_w[0] / ref_w[2], rel=1e-5)

    big_x = x * 1e21
    s = jax.jit(lambda p: D._measure(cfg, p, state, big_x, y, hist=None))(params)
    grads = jax.grad(loss_fn)(params, big_x)
    ref_w = [ref(g["w"]) for g in grads["layers"]]
    assert np.all(np.isfinite(ref_w)) and ref_w[0] > 1e19
    np.testing.assert_allclose(s["weight_grad_norm"], ref_w, rtol=1e-5)
    assert np.all(np.isfinite(s["activation_std"])) and np.all(np.isfinite(s["pre_activation_std"]))


# ----------------------------------------------------------------------------- review fixes


def _fake_result(depths=(1, 3), activations_=("sigmoid",), initializers_=("xavier",),
                 steps=40, ratio=lambda d: 0.5 ** d):
    """A hand-made study result (no training): what the report and plots read."""
    cfg = D.DepthStudyConfig(name="fake", depths=depths, widths=(4,),
                             activations=activations_, initializers=initializers_, seeds=2,
                             steps=steps)
    records, curves = [], []
    for d in cfg.depths:
        for a in cfg.activations:
            for i in cfg.initializers:
                for s in range(cfg.seeds):
                    wg = [ratio(d)] + [1.0] * d
                    for phase in ("init", "trained"):
                        records.append({
                            "study": "fake", "dataset": "digits", "depth": d, "width": 4,
                            "activation": a, "initializer": i, "batch_norm": False,
                            "seed": s, "phase": phase, "probe_loss": 2.3, "train_loss": 2.3,
                            "train_accuracy": 0.1, "test_loss": 2.3, "test_accuracy": 0.1,
                            "grad_ratio": ratio(d), "delta_ratio": 1.0,
                            "first_grad_norm": wg[0], "last_grad_norm": wg[d - 1],
                            "mean_saturation": 0.1, "mean_dead_fraction": 0.0,
                            "finite": True, "weight_grad_norm": wg,
                            "grad_pre_activation_norm": [1.0] * (d + 1),
                            "grad_activation_norm": [1.0] * d,
                            "activation_mean": [0.5] * d, "activation_std": [0.2] * d,
                            "pre_activation_std": [1.0] * d, "saturation_fraction": [0.1] * d,
                            "dead_fraction": [0.0] * d, "nonfinite_fraction": [0.0] * d})
                    curves.append({"depth": d, "width": 4, "activation": a, "initializer": i,
                                   "batch_norm": False, "seed": s,
                                   "losses": list(np.linspace(2.3, 1.0, steps))})
    return D.DepthStudyResult(cfg, records, curves, [], 10,
                              {"total_s": 1.0, "groups": [], "compiles": 1, "reused": 0})


def test_unordered_depths_are_swept_in_ascending_order():
    # depths=[4, 2] used to keep that order: the report then called the sigmoid ratio
    # "not monotone in depth" while it shrank with depth, and plots/tables ran 4, 2.
    cfg = D.DepthStudyConfig(depths=[4, 2, 8], widths=[16, 8])
    assert cfg.depths == (2, 4, 8) and cfg.widths == (8, 16)
    report = depth_report.render_report(_fake_result(depths=(3, 1)))
    assert "D=1: 0.5; D=3: 0.125 (it shrinks with depth)" in report
    assert "| sigmoid | xavier | 0.5 | 0.125 |" in report


def test_unknown_override_keys_list_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        D.load_config(None, ["foo=1"])
    msg = str(e.value)
    assert "unknown key 'foo'; valid keys: name, dataset, data_dir" in msg and "\n" not in msg
    # a re-rendered report: only the verdict thresholds are valid keys
    with pytest.raises(ConfigError, match=re.escape(
            "unknown key 'foo'; a re-rendered report can change only vanish_ratio, "
            "explode_ratio, saturation_threshold, train_threshold")):
        depth_report.with_verdict_settings(_fake_result(), ["foo=1"])


@pytest.mark.parametrize("data, needle", [
    # jaxnn names the study cannot sweep are not "unknown" (nor "did you mean 'relu'")
    ({"activations": ["maxout"]}, "'maxout' cannot be swept by the depth study"),
    ({"activations": ["prelu"]}, "'prelu' cannot be swept by the depth study"),
    ({"activations": ["leaky_relu(0.2)"]},
     "'leaky_relu(0.2)': the study uses each activation with its default parameters"),
    ({"initializers": ["orthogonal"]},
     "'orthogonal' is a jaxnn initializer the depth study cannot sweep"),
    ({"initializers": ["zeros"]}, "'zeros' is a jaxnn initializer the depth study cannot"),
])
def test_library_names_the_study_cannot_sweep_say_so(data, needle):
    with pytest.raises(ConfigError) as e:
        D.config_from_dict(data)
    msg = str(e.value)
    assert needle in msg and "; valid: " in msg and "\n" not in msg
    assert "did you mean" not in msg


def test_plot_axes_say_what_layer_and_step_they_show(tmp_path, monkeypatch):
    figs = {}
    save = depth_report._save

    def spy(fig, path):
        figs[path.name] = [ax for ax in fig.axes if ax.lines]
        return save(fig, path)

    monkeypatch.setattr(depth_report, "_save", spy)
    depth_report.write_plots(_fake_result(depths=(1, 3), steps=3), tmp_path)
    for ax in figs["grad_norms_init.png"]:
        assert ax.get_yscale() == "log"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(t == int(t) for t in ticks), ticks  # layer numbers, no 1.5
        assert ax.lines[-1].get_xdata().tolist() == [1, 2, 3, 4]  # output layer = D + 1
    assert "1: input side" in figs["grad_norms_init.png"][0].get_xlabel()
    (ax,) = figs["training_curves.png"]
    assert ax.get_xlabel() == "SGD step" and ax.get_ylabel() == "minibatch loss"
    assert ax.lines[0].get_xdata().tolist() == [1, 2, 3]  # one point per step taken


def test_one_hidden_layer_is_singular_in_the_report():
    report = depth_report.render_report(_fake_result(depths=(1, 3)))
    assert "## Per-layer activations at initialization, 1 hidden layer (width 4)" in report
    assert "1 hidden layers" not in report


def test_grad_norm_panels_keep_layer_ticks_and_the_title_clear_of_the_panels(tmp_path,
                                                                              monkeypatch):
    # A panel with one point (first layer's gradient 0: a gap) used to get ticks 2.84 ...
    # 3.16, and with many activations the figure title ran over the top panels' titles.
    figs = {}
    save = depth_report._save

    def spy(fig, path):
        out = save(fig, path)
        figs[path.name] = fig
        return out

    monkeypatch.setattr(depth_report, "_save", spy)
    acts = ("sigmoid", "tanh", "relu", "elu", "selu", "gelu", "swish")
    depth_report.write_plots(_fake_result(depths=(1,), activations_=acts, steps=0,
                                          ratio=lambda d: 0.0), tmp_path)
    fig = figs["grad_norms_init.png"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was closed once saved
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert lo <= 1 and hi >= 2  # every weight layer in view
        assert all(t == int(t) for t in ax.get_xticks() if lo <= t <= hi)
    title = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        assert not title.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()


@pytest.mark.parametrize("act, dead, pre_std, cause", [
    # step's derivative is 0 everywhere: its zero gradients are exact, not an underflow
    ("step", 0.0, 1.0, "step's derivative is 0 at every input: a true zero, not an underflow"),
    # a ReLU layer that is 0 for every input (all units dead) passes no gradient back
    ("relu", 1.0, 1.0, "hidden layer 1 is 0 for every probe input (every unit dead), where "
     "relu's derivative is 0: a true zero, not an underflow"),
    # ... but all its pre-activations exactly 0 is the forward signal flushed to 0
    ("relu", 1.0, 0.0, "the signal underflowed to 0 by hidden layer 1 (below the float32 "
     "range), where relu's derivative is 0"),
    ("relu", 0.5, 1.0, "below the float32 range, or relu units on their flat region"),
    ("sigmoid", 0.0, 1.0, "(below the float32 range)"),
])
def test_an_exactly_zero_first_layer_gradient_is_explained_per_activation(act, dead, pre_std,
                                                                           cause):
    fake = _fake_result(depths=(3,), activations_=(act,), ratio=lambda d: 0.0)
    records = [{**r, "dead_fraction": [dead] * r["depth"],
                "pre_activation_std": [pre_std] * r["depth"]} for r in fake.records]
    report = depth_report.render_report(dataclasses.replace(fake, records=records))
    vanishing = report.split("## Vanishing")[1].split("\n## ")[0]
    assert "first-layer gradient exactly 0 in most seeds" in vanishing
    assert cause in vanishing, vanishing
    if act == "step" or (dead == 1.0 and pre_std > 0):
        assert "float32" not in vanishing, vanishing


def _curve_panels(result, tmp_path, monkeypatch):
    figs = {}
    save = depth_report._save

    def spy(fig, path):
        figs[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(depth_report, "_save", spy)
    depth_report.write_plots(result, tmp_path)
    return figs


def test_training_curve_limits_show_curves_that_start_high(tmp_path, monkeypatch):
    # The y-axis was fixed to [0, max(3, 1.3 ln C)]: a loss starting at 12 (N(0, 1) weights)
    # was cut off. A diverged curve (inf, then NaN) must not make the limits non-finite.
    fake = _fake_result(depths=(1, 3), steps=40)
    curves = [dict(c, losses=list(np.linspace(12.0, 1.0, 40))) if c["depth"] == 1 else
              dict(c, losses=[5.0, 1e30, float("inf")] + [float("nan")] * 37)
              for c in fake.curves]
    figs = _curve_panels(dataclasses.replace(fake, curves=curves), tmp_path, monkeypatch)
    (ax,) = [a for a in figs["training_curves.png"].axes if a.lines]
    lo, hi = ax.get_ylim()
    shown = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.lines])
    shown = shown[np.isfinite(shown) & (shown < 1e29)]
    assert lo == 0 and np.isfinite(hi) and shown.max() <= hi <= 10.5 * 12.0, (lo, hi)
    assert hi >= 11.0  # the start of the high curve (smoothed over 2 steps) is in view


@pytest.mark.parametrize("lines, expected", [
    ([[2.0, 1.0]], (0.0, 3.0)),                          # the default range
    ([[np.nan, np.nan]], (0.0, 3.0)),                     # nothing finite: the default
    ([[12.0, 1.0]], (0.0, 12.0 * 1.05)),                  # the whole curve in view
    ([[2.0, 1e30, np.inf, np.nan]], (0.0, 30.0)),         # a diverging one runs off the top
    ([[2.0, 1.0], [8.0, 20.0, np.nan]], (0.0, 20 * 1.05)),  # a climb within 10x its start
])
def test_loss_ylim(lines, expected):
    got = depth_report._loss_ylim([np.asarray(x, float) for x in lines], num_classes=2)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("depth, shown", [
    (3, [1, 2, 3]),
    (10, list(range(1, 11))),
    (50, [1, 6, 12, 17, 23, 28, 34, 39, 45, 50]),
])
def test_histogram_figures_stay_readable_at_depth(depth, shown, tmp_path, monkeypatch):
    # One panel per layer in a row made a depth-50 figure 100 inches (8000 px) wide.
    fake = _fake_result(depths=(depth,), initializers_=("xavier", "he"), steps=0)
    hists = [{"depth": depth, "width": 4, "activation": "sigmoid", "initializer": i,
              "batch_norm": False, "layer": layer, "edges": [0.0, 0.5, 1.0],
              "counts": [1.0, 2.0], "nonfinite": 0.0}
             for i in ("xavier", "he") for layer in range(1, depth + 1)]
    figs = _curve_panels(dataclasses.replace(fake, histograms=hists), tmp_path, monkeypatch)
    fig = figs[f"activation_histograms_sigmoid_d{depth}.png"]
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 2 * len(shown)
    assert [ax.get_title() for ax in panels[:len(shown)]] == [
        f"xavier: layer {k}" for k in shown]
    width, height = fig.get_size_inches()
    assert width <= 20.5 and height <= 2 * 1.7 + 0.5
    if len(shown) < depth:
        assert f"{len(shown)} of {depth} layers" in fig._suptitle.get_text()


def test_an_overflowing_models_norms_are_nan_never_negative():
    # XLA's CPU max may drop NaNs: vmapped (over layers, phases, seeds), an all-NaN layer's
    # max |x| read -inf, and backprop's scaled norms came out as -inf where the unbatched
    # code gave NaN (a report then wrote "-inf" for a norm).
    cfg = D.config_from_dict(dict(
        dataset="normal", input_dim=12, num_classes=3, n_samples=120, depths=[3], widths=[8],
        activations=["tanh", "relu"], initializers=["normal(1e15)", "xavier"], seeds=3,
        probe_size=32, steps=4, batch_size=16, learning_rate=0.1, eval_size=30))
    r = D.run_study(cfg)
    norms = [x for rec in r.records for k, v in rec.items() if k.endswith("_norm")
             for x in (v if isinstance(v, list) else [v])]
    assert not [x for x in norms if x < 0]
    assert any(math.isnan(x) for x in norms)  # the overflowing models' norms are NaN
    for rec in r.select(initializer="xavier"):
        assert all(math.isfinite(x) and x > 0 for x in rec["weight_grad_norm"])


def test_a_verdict_does_not_take_its_ratio_from_a_minority_of_the_seeds():
    # Seed 0 kept a ratio of 1e5; seeds 1 and 2 flushed both gradients to 0 (a full
    # vanish). The median of the seeds with a ratio used to call the combination exploding.
    r = _fake_result(depths=(3,), ratio=lambda d: 1e5)
    extra = [dict(rec, seed=2) for rec in r.records if rec["seed"] == 1]
    r.records.extend(extra)
    for rec in r.records:
        if rec["seed"] > 0 and rec["phase"] == "init":
            rec.update(grad_ratio=NAN, first_grad_norm=0.0, last_grad_norm=0.0,
                       weight_grad_norm=[0.0] * 4)
    rows = r.select(phase="init")
    assert len(rows) == 3
    assert depth_report.ratio_cell(rows)[1:] == ("0/0", "0/0")
    (v,) = depth_report.classify(r)
    assert np.isnan(v["ratio"]) and v["vanishes"] and not v["explodes"]
    # the same seeds, two of them with a ratio: the median of those decides
    for rec in r.records:
        if rec["seed"] == 1 and rec["phase"] == "init":
            rec.update(grad_ratio=1e5, first_grad_norm=1e5, last_grad_norm=1.0)
    (v,) = depth_report.classify(r)
    assert v["ratio"] == 1e5 and v["explodes"]


def test_the_sigmoid_finding_names_a_full_vanish_instead_of_printing_nan():
    # At 8 layers both seeds flushed both gradients to 0: the finding used to list the
    # median of no ratio, "D=8: nan", and call the ratio "not monotone in depth".
    r = _fake_result(depths=(1, 3, 8))
    for rec in r.records:
        if rec["depth"] == 8 and rec["phase"] == "init":
            rec.update(grad_ratio=NAN, first_grad_norm=0.0, last_grad_norm=0.0)
    report = depth_report.render_report(r)
    assert ("D=1: 0.5; D=3: 0.125; D=8: 0/0 (it shrinks with depth; 0/0 = both gradients "
            "below the float32 range, a full vanish)") in report
