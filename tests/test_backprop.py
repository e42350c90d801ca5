"""Hand-written backprop (jaxnn.backprop) against autodiff of jaxnn.mlp.make_loss_fn.

Error measure used throughout (stated once, here): for every leaf of the gradient pytree,

    rel_err = ||g_manual - g_auto||_2 / max(||g_auto||_2, c * ||g_auto||_global, 1e-300)

where ``||.||_2`` is the Euclidean norm of the flattened leaf and ``||g_auto||_global`` the
norm of the whole gradient pytree. The floor ``c`` (1e-6 in float64, 1e-2 in float32) only
matters for leaves that are zero up to rounding (e.g. the bias just before a batch norm,
whose exact gradient is 0): their rounding noise is judged against the overall gradient
scale. Thresholds: float64 rel_err <= 1e-8, float32 rel_err <= 1e-4, float16 <= 1e-2 and
bfloat16 <= 5e-2 (floors 1e-1; both paths in the same dtype). The loss value must match to
the same relative tolerance.

The grid covers each axis rather than the full product: every depth 1..12 with one
activation plus a 50-layer net, every registered activation as the hidden activation at one
depth, every loss with fitting output activations, and each option (bias, dropout in both
variants, batch norm in both positions, L1/L2, evaluation mode, activation parameters) in
float64, plus a few float32 cases. Each case compiles one jitted function computing both
gradients.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import activations, backprop, losses, mlp

TOL = {jnp.float64: 1e-8, jnp.float32: 1e-4, jnp.float16: 1e-2, jnp.bfloat16: 5e-2}
FLOOR = {jnp.float64: 1e-6, jnp.float32: 1e-2, jnp.float16: 1e-1, jnp.bfloat16: 1e-1}
INT_CE = "softmax_cross_entropy_with_integer_labels"
_LOGIT_LOSSES = (
    losses.sigmoid_binary_cross_entropy,
    losses.softmax_cross_entropy,
    losses.softmax_cross_entropy_with_integer_labels,
)


def _targets(loss, key, batch, n_out, dtype):
    fn = losses.get(loss)
    if fn is losses.softmax_cross_entropy_with_integer_labels:
        return jax.random.randint(key, (batch,), 0, n_out)
    if fn is losses.softmax_cross_entropy:
        return jax.nn.softmax(jax.random.normal(key, (batch, n_out), dtype))
    if fn is losses.sigmoid_binary_cross_entropy:
        return jax.random.uniform(key, (batch, n_out), dtype)
    return jax.random.normal(key, (batch, n_out), dtype)


def _problem(config, loss, dtype=jnp.float64, batch=6, seed=0, x_scale=None):
    k_init, k_x, k_y, k_drop = jax.random.split(jax.random.PRNGKey(seed), 4)
    params, state = mlp.init(config, k_init, dtype=dtype)
    x = jax.random.normal(k_x, (batch, config.layer_sizes[0]), dtype)
    if x_scale is not None:  # drawn in float32 then rounded: std x_scale in any dtype
        x = (x_scale * jax.random.normal(k_x, x.shape)).astype(dtype)
    y = _targets(loss, k_y, batch, config.layer_sizes[-1], dtype)
    return params, state, x, y, k_drop


def _rel_errors(g_manual, g_auto, dtype):
    flat_m = jax.tree_util.tree_flatten_with_path(g_manual)[0]
    flat_a = jax.tree.leaves(g_auto)
    global_norm = math.sqrt(sum(float(jnp.sum(jnp.square(a.astype(jnp.float64))))
                                for a in flat_a))
    errs = {}
    for (path, m), a in zip(flat_m, flat_a, strict=True):
        m64, a64 = np.asarray(m, np.float64), np.asarray(a, np.float64)
        denom = max(np.linalg.norm(a64), FLOOR[dtype] * global_norm, 1e-300)
        errs[jax.tree_util.keystr(path)] = float(np.linalg.norm(m64 - a64) / denom)
    return errs, global_norm


def _compare(config, loss=INT_CE, dtype=jnp.float64, train=True, batch=6, seed=0,
             x_scale=None, label_smoothing=0.0):
    params, state, x, y, key = _problem(config, loss, dtype, batch, seed, x_scale)
    if not train and config.batch_norm:
        # Evaluation with non-trivial running statistics (after one training pass).
        _, state = mlp.apply(config, params, state, x * 2.0 + 1.0, train=True, key=key)
    vg = backprop.value_and_grad(config, loss, label_smoothing=label_smoothing)
    ag = jax.value_and_grad(mlp.make_loss_fn(config, loss, label_smoothing=label_smoothing),
                            has_aux=True)
    both = jax.jit(lambda p, s, x, y, k: (vg(p, s, x, y, k, train), ag(p, s, x, y, k, train)))
    ((loss_m, aux_m), g_m), ((loss_a, aux_a), g_a) = both(params, state, x, y, key)

    assert jax.tree.structure(g_m) == jax.tree.structure(g_a) == jax.tree.structure(params)
    assert jax.tree.structure(aux_m) == jax.tree.structure(aux_a)
    for leaf in jax.tree.leaves((loss_m, g_m, aux_m["outputs"], aux_m["data_loss"])):
        assert leaf.dtype == dtype
    tol = TOL[dtype]
    assert np.isfinite(float(loss_a)) and np.isfinite(float(loss_m))
    assert abs(float(loss_m) - float(loss_a)) <= tol * max(abs(float(loss_a)), 1e-300)
    errs, global_norm = _rel_errors(g_m, g_a, dtype)
    assert global_norm > 0 and np.isfinite(global_norm)
    worst = max(errs, key=errs.get)
    assert errs[worst] <= tol, f"worst leaf {worst}: rel_err {errs[worst]:.3e} > {tol}; {errs}"
    for a, b in zip(jax.tree.leaves(aux_m), jax.tree.leaves(aux_a), strict=True):
        assert np.all(np.isfinite(np.asarray(a, np.float64)))
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=tol, atol=tol * 1e-3)
    return g_m, g_a


# ----------------------------------------------------------------------------- depth


@pytest.mark.parametrize("depth", range(1, 13))
def test_every_depth(depth):
    sizes = (5,) + (6,) * (depth - 1) + (3,)
    _compare(mlp.MLPConfig(layer_sizes=sizes, hidden_activation="tanh"))


def test_deep_network_50_layers():
    config = mlp.MLPConfig(layer_sizes=(5,) + (6,) * 49 + (3,), hidden_activation="tanh",
                           initializer="glorot_normal")
    g_m, _ = _compare(config)
    # The comparison is not vacuous: the first layer still receives a gradient.
    assert float(jnp.linalg.norm(g_m["layers"][0]["w"])) > 1e-12


# ----------------------------------------------------------------------------- activations


def _activation_config(name):
    return mlp.MLPConfig(layer_sizes=(5, 7, 6, 3), hidden_activation=name,
                         initializer="lecun_normal")


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_as_hidden_activation(name):
    _compare(_activation_config(name), "mse")


@pytest.mark.parametrize(
    "name, kwargs",
    [("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5}), ("swish", {"beta": 1.7})],
)
def test_activation_parameters(name, kwargs):
    config = dataclasses.replace(_activation_config(name), activation_kwargs=kwargs)
    _compare(config)


@pytest.mark.parametrize("pieces", [1, 3])
def test_maxout_pieces(pieces):
    config = dataclasses.replace(_activation_config("maxout"), maxout_pieces=pieces)
    _compare(config)


# ----------------------------------------------------------------------------- losses


def _loss_cases():
    cases = []
    for name in losses.names():
        outs = ("linear",) if losses.get(name) in _LOGIT_LOSSES else (
            "linear", "sigmoid", "tanh", "softmax")
        cases += [pytest.param(name, out, id=f"{name}-{out}") for out in outs]
    return cases


@pytest.mark.parametrize("loss, output_activation", _loss_cases())
def test_every_loss(loss, output_activation):
    config = mlp.MLPConfig(layer_sizes=(5, 7, 4), hidden_activation="tanh",
                           output_activation=output_activation)
    _compare(config, loss)


@pytest.mark.parametrize("dtype, alpha", [(jnp.float64, 0.1), (jnp.float32, 0.7)],
                         ids=["f64", "f32"])
@pytest.mark.parametrize("loss", [n for n in losses.names() if losses.get(n) in _LOGIT_LOSSES])
def test_label_smoothing_manual_equals_autodiff(loss, dtype, alpha):
    config = mlp.MLPConfig(layer_sizes=(5, 7, 4), hidden_activation="tanh", l2=0.1,
                           dropout_rate=0.2)
    g_m, _ = _compare(config, loss, dtype, label_smoothing=alpha)
    plain, _ = _compare(config, loss, dtype)
    # Not vacuous: the smoothed gradient is another one.
    assert not np.allclose(g_m["layers"][-1]["w"], plain["layers"][-1]["w"])
    # value_and_grad_with_stats takes it too, and agrees.
    params, state, x, y, key = _problem(config, loss, dtype)
    (_, _), g_s, _ = backprop.value_and_grad_with_stats(config, loss, label_smoothing=alpha)(
        params, state, x, y, key, True)
    for a, b in zip(jax.tree.leaves(g_s), jax.tree.leaves(g_m), strict=True):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype])


def test_value_and_grad_refuses_label_smoothing_for_mse_and_out_of_range():
    config = mlp.MLPConfig(layer_sizes=(5, 3))
    with pytest.raises(ValueError, match=r"value_and_grad: label_smoothing=0\.1 .*loss='mse'"):
        backprop.value_and_grad(config, "mse", label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"value_and_grad_with_stats: .*label_smoothing must be"):
        backprop.value_and_grad_with_stats(config, INT_CE, label_smoothing=1.0)


# ----------------------------------------------------------------------------- options

OPTIONS = {
    "no_bias": dict(use_bias=False),
    "dropout_inverted": dict(dropout_rate=0.3),
    "dropout_textbook": dict(dropout_rate=0.3, dropout_inverted=False),
    "bn_before": dict(batch_norm=True),
    "bn_after": dict(batch_norm=True, batch_norm_position="after_activation"),
    "bn_before_no_bias": dict(batch_norm=True, use_bias=False),
    "bn_before_auto_bias": dict(batch_norm=True, use_bias="auto"),
    "bn_before_maxout": dict(batch_norm=True, hidden_activation="maxout"),
    "bn_after_prelu": dict(batch_norm=True, batch_norm_position="after_activation",
                           hidden_activation="prelu"),
    "l1": dict(l1=0.01),
    "l2": dict(l2=0.1),
    "l1_l2_no_bias": dict(l1=0.01, l2=0.1, use_bias=False),
    "everything": dict(batch_norm=True, dropout_rate=0.2, l1=0.01, l2=0.1,
                       hidden_activation="relu", initializer=("he_normal", "glorot_uniform",
                                                              "orthogonal")),
}


@pytest.mark.parametrize("option", OPTIONS)
def test_options_in_training_mode(option):
    config = mlp.MLPConfig(layer_sizes=(5, 7, 6, 3),
                           **{"hidden_activation": "tanh", **OPTIONS[option]})
    _compare(config, batch=8)


@pytest.mark.parametrize("option", ["bn_before", "bn_after", "dropout_textbook", "everything"])
def test_options_in_evaluation_mode(option):
    config = mlp.MLPConfig(layer_sizes=(5, 7, 6, 3),
                           **{"hidden_activation": "tanh", **OPTIONS[option]})
    _compare(config, train=False, batch=8)


@pytest.mark.parametrize(
    "config_kwargs, loss",
    [
        (dict(layer_sizes=(5, 7, 6, 3), hidden_activation="tanh"), INT_CE),
        (dict(layer_sizes=(5,) + (8,) * 11 + (3,), hidden_activation="relu"), INT_CE),
        (dict(layer_sizes=(5, 7, 6, 3), **OPTIONS["everything"]), "softmax_cross_entropy"),
        (dict(layer_sizes=(5, 7, 3), output_activation="sigmoid"), "mse"),
        (dict(layer_sizes=(5, 7, 3), hidden_activation="maxout", batch_norm=True,
              batch_norm_position="after_activation"), "sigmoid_binary_cross_entropy"),
    ],
    ids=["tanh", "relu_depth12", "everything", "mse_sigmoid", "maxout_bn_bce"],
)
def test_float32(config_kwargs, loss):
    _compare(mlp.MLPConfig(**config_kwargs), loss, dtype=jnp.float32, batch=8)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_narrow_floats_with_batch_norm_and_wide_inputs(position, dtype, train):
    # Inputs with std 400: a float16 batch variance overflowed (inf), the running variance
    # became inf and batch norm returned beta. Statistics are now float32 inside.
    config = mlp.MLPConfig(layer_sizes=(4, 16, 8, 3), batch_norm=True,
                           batch_norm_position=position)
    _compare(config, dtype=dtype, train=train, batch=32, x_scale=400.0)


# ----------------------------------------------------------------------------- pieces


def _rich_config():
    return mlp.MLPConfig(layer_sizes=(5, 7, 6, 3), hidden_activation="prelu", batch_norm=True,
                         dropout_rate=0.25, l2=0.05)


def test_forward_equals_apply_with_the_same_dropout_masks():
    config = _rich_config()
    params, state, x, _, key = _problem(config, INT_CE)
    out, cache, new_state = backprop.forward(config, params, state, x, train=True, key=key)
    ref, ref_state = mlp.apply(config, params, state, x, train=True, key=key)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13), new_state, ref_state)
    assert cache.train is True
    assert {"input", "pre_activation", "activation_input", "activation", "bn", "mask"} <= set(
        cache.layers[0])
    mask = cache.layers[0]["mask"]
    assert 0 < float(mask.mean()) < 1  # some units dropped, some kept
    with pytest.raises(ValueError, match="forward: key is required"):
        backprop.forward(config, params, state, x, train=True)


def test_backward_equals_vjp_for_any_output_cotangent():
    config = _rich_config()
    params, state, x, _, key = _problem(config, INT_CE)
    f = lambda p, x: mlp.apply(config, p, state, x, train=True, key=key)[0]
    g = jax.random.normal(jax.random.PRNGKey(5), (x.shape[0], 3), jnp.float64)

    @jax.jit
    def both(params, x, g):
        _, vjp = jax.vjp(f, params, x)
        _, cache, _ = backprop.forward(config, params, state, x, train=True, key=key)
        return vjp(g), backprop.backward(config, params, cache, g)

    (g_params_ref, g_x_ref), (grads, layer_grads) = both(params, x, g)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(g_params_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(layer_grads["layers"][0]["input"], g_x_ref, rtol=1e-10,
                               atol=1e-13)


@pytest.mark.parametrize(
    "config_kwargs",
    [
        dict(hidden_activation="prelu", batch_norm=True, dropout_rate=0.25, l2=0.05),
        dict(hidden_activation="maxout", batch_norm=True,
             batch_norm_position="after_activation", dropout_rate=0.25),
        dict(hidden_activation="sigmoid", dropout_rate=0.25, dropout_inverted=False),
    ],
    ids=["prelu_bn_before_dropout", "maxout_bn_after_dropout", "sigmoid_textbook_dropout"],
)
def test_layer_gradients_equal_autodiff_through_zero_probes(config_kwargs):
    config = mlp.MLPConfig(layer_sizes=(5, 7, 6, 3), **config_kwargs)
    loss = INT_CE
    params, state, x, y, key = _problem(config, loss)
    vgs = jax.jit(backprop.value_and_grad_with_stats(config, loss), static_argnames="train")
    (_, aux), grads, stats = vgs(params, state, x, y, key, train=True)
    layers_stats = stats["layers"]

    def probed_loss(probes):
        out, _ = mlp.apply(config, params, state, x, train=True, key=key, probes=probes)
        return losses.get(loss)(out, y) + mlp.penalty(config, params)

    kinds = {"input": "grad_input", "pre_activation": "grad_pre_activation",
             "activation": "grad_activation"}
    zeros = {kind: [jnp.zeros_like(s[name]) for s in layers_stats] for kind, name in
             kinds.items()}
    auto = jax.jit(jax.grad(probed_loss))(zeros)
    for kind, name in kinds.items():
        for l, s in enumerate(layers_stats):
            np.testing.assert_allclose(s[name], auto[kind][l], rtol=1e-9, atol=1e-14,
                                       err_msg=f"{name} of layer {l}")
    # The values recorded in the same pass are the network's own.
    p0 = params["layers"][0]
    np.testing.assert_allclose(layers_stats[0]["pre_activation"], x @ p0["w"] + p0["b"][None, :],
                               rtol=1e-12)
    np.testing.assert_allclose(layers_stats[-1]["activation"], aux["outputs"], rtol=1e-12)

    summary = backprop.layer_statistics(stats, grads, params)
    n = config.num_layers
    assert all(v.shape == (n,) for v in summary.values())
    for l, s in enumerate(layers_stats):
        np.testing.assert_allclose(summary["activation_std"][l], np.std(s["activation"]),
                                   rtol=1e-10)
        np.testing.assert_allclose(summary["grad_pre_activation_norm"][l],
                                   np.linalg.norm(s["grad_pre_activation"]), rtol=1e-10)
        np.testing.assert_allclose(summary["weight_grad_norm"][l],
                                   np.linalg.norm(grads["layers"][l]["w"]), rtol=1e-10)


def test_value_and_grad_is_a_drop_in_for_autodiff_in_a_train_step():
    config = mlp.MLPConfig(layer_sizes=(5, 7, 6, 3), batch_norm=True, dropout_rate=0.2, l2=0.01)
    params0, state0, x, y, key = _problem(config, INT_CE, batch=8)
    tx = optax.sgd(0.1, momentum=0.9)

    def run(vg):
        @jax.jit
        def step(carry, k):
            params, state, opt_state = carry
            (loss, aux), grads = vg(params, state, x, y, k, True)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), aux["state"], opt_state), loss

        carry = (params0, state0, tx.init(params0))
        out = []
        for i in range(4):
            carry, loss = step(carry, jax.random.fold_in(key, i))
            out.append(float(loss))
        return carry, out

    (p_m, s_m, _), losses_m = run(backprop.value_and_grad(config, INT_CE))
    (p_a, s_a, _), losses_a = run(jax.value_and_grad(mlp.make_loss_fn(config, INT_CE),
                                                     has_aux=True))
    np.testing.assert_allclose(losses_m, losses_a, rtol=1e-10)
    for a, b in zip(jax.tree.leaves((p_m, s_m)), jax.tree.leaves((p_a, s_a)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_jitted_value_and_grad_compiles_once():
    config = mlp.MLPConfig(layer_sizes=(5, 7, 3), dropout_rate=0.1)
    vg = backprop.value_and_grad(config, INT_CE)
    traces = []

    def counted(*args, **kwargs):
        traces.append(1)
        return vg(*args, **kwargs)

    f = jax.jit(counted, static_argnames="train")
    for seed in range(3):
        params, state, x, y, key = _problem(config, INT_CE, seed=seed)
        f(params, state, x, y, key, train=True)
    assert len(traces) == 1


def test_value_and_grad_rejects_mismatched_losses():
    config = mlp.MLPConfig(layer_sizes=(5, 3), output_activation="softmax")
    with pytest.raises(ValueError, match="value_and_grad: loss='softmax_cross_entropy'"):
        backprop.value_and_grad(config, "softmax_cross_entropy")
    with pytest.raises(ValueError, match="value_and_grad_with_stats"):
        backprop.value_and_grad_with_stats(config, "not_a_loss")


def test_penalty_grad():
    config = mlp.MLPConfig(layer_sizes=(5, 7, 3), l1=0.01, l2=0.1, batch_norm=True)
    params, _ = mlp.init(config, jax.random.PRNGKey(0), dtype=jnp.float64)
    g = backprop.penalty_grad(config, params)
    ref = jax.grad(lambda p: mlp.penalty(config, p))(params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert backprop.penalty_grad(mlp.MLPConfig(layer_sizes=(5, 3)), params) is None


@pytest.mark.parametrize("params_sizes", [(3, 4, 4, 2), (3, 4, 5)])
def test_forward_refuses_params_of_another_architecture(params_sizes):
    config = mlp.MLPConfig(layer_sizes=(3, 4, 2))
    params, state = mlp.init(mlp.MLPConfig(layer_sizes=params_sizes), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"forward: params do not fit config\.layer_sizes="):
        backprop.forward(config, params, state, jnp.ones((2, 3), jnp.float32), train=False)
    with pytest.raises(ValueError, match=r"value_and_grad: params do not fit"):
        backprop.value_and_grad(config, "mse")(params, state, jnp.ones((2, 3), jnp.float32),
                                                jnp.ones((2, 2), jnp.float32), None, False)
