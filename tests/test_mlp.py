"""Tests of jaxnn.mlp: config validation, init layout, forward semantics, loss function."""

from __future__ import annotations

import dataclasses

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import losses, mlp

KEY = jax.random.PRNGKey(0)


def _x(batch=6, features=4, dtype=jnp.float32, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (batch, features), dtype)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"layer_sizes": (5,)}, "layer_sizes"),
        ({"layer_sizes": ()}, "layer_sizes"),
        ({"layer_sizes": (5, 0, 3)}, "layer_sizes"),
        ({"layer_sizes": (5, 2.5, 3)}, "layer_sizes"),
        ({"layer_sizes": "5,3"}, "layer_sizes"),
        ({"hidden_activation": "relux"}, "hidden_activation"),
        ({"output_activation": "sigmoidd"}, "output_activation"),
        ({"output_activation": "maxout"}, "output_activation"),
        ({"output_activation": "prelu"}, "output_activation"),
        ({"activation_kwargs": (("slope", 0.1),), "hidden_activation": "leaky_relu"},
         "activation_kwargs"),
        ({"activation_kwargs": (("negative_slope", 0.1),), "hidden_activation": "maxout"},
         "activation_kwargs"),
        ({"initializer": "he_normol"}, "initializer"),
        ({"initializer": ("he_normal", "he_normal", "he_normal")}, "initializer"),
        ({"initializer_kwargs": (("stddev", 0.1),)}, "initializer"),  # he_normal has no stddev
        ({"use_bias": "yes"}, "use_bias"),
        ({"use_bias": "AUTO"}, "use_bias"),
        ({"use_bias": 1}, "use_bias"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"dropout_rate": -0.1}, "dropout_rate"),
        ({"batch_norm": 1}, "batch_norm"),
        ({"batch_norm_position": "middle"}, "batch_norm_position"),
        ({"batch_norm_momentum": 1.5}, "batch_norm_momentum"),
        ({"batch_norm_eps": 0.0}, "batch_norm_eps"),
        ({"maxout_pieces": 0}, "maxout_pieces"),
        ({"l1": -1.0}, "l1"),
        ({"l2": float("nan")}, "l2"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    kwargs = {"layer_sizes": (4, 8, 3), **kwargs}
    with pytest.raises(ValueError, match=f"MLPConfig: {field}") as info:
        mlp.MLPConfig(**kwargs)
    bad = kwargs.get(field, None)
    if isinstance(bad, str):
        assert repr(bad) in str(info.value) or bad in str(info.value)


def test_config_unknown_activation_suggests_close_names():
    with pytest.raises(ValueError, match="relu"):
        mlp.MLPConfig(layer_sizes=(4, 3), hidden_activation="relux")


def test_config_normalizes_to_hashable_values():
    c = mlp.MLPConfig(
        layer_sizes=[4, 8, 3],
        hidden_activation="leaky_relu",
        activation_kwargs={"negative_slope": 0.2},
        initializer=["he_normal", "glorot_uniform"],
        dropout_rate=0,
    )
    assert c.layer_sizes == (4, 8, 3)
    assert c.activation_kwargs == (("negative_slope", 0.2),)
    assert c.initializer == ("he_normal", "glorot_uniform")
    assert isinstance(c.dropout_rate, float)
    same = mlp.MLPConfig(
        layer_sizes=(4, 8, 3), hidden_activation="leaky_relu",
        activation_kwargs=(("negative_slope", 0.2),), initializer=("he_normal", "glorot_uniform"),
    )
    assert hash(c) == hash(same) and c == same
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.l2 = 1.0  # type: ignore[misc]
    assert c.num_layers == mlp.num_layers(c) == 2


def test_config_accepts_numpy_scalars_as_plain_numbers():
    # Sizes often come from data (``x.shape[1]``, ``labels.max() + 1``: numpy ints); they
    # are ints >= 1, so rejecting them with "must be ints >= 1" was wrong.
    c = mlp.MLPConfig(
        layer_sizes=(np.int64(4), 8, np.int32(3)), hidden_activation="maxout",
        maxout_pieces=np.int64(3), dropout_rate=np.float32(0.5), l2=np.float64(0.1),
    )
    assert c.layer_sizes == (4, 8, 3) and all(type(s) is int for s in c.layer_sizes)
    assert type(c.maxout_pieces) is int and c.maxout_pieces == 3
    assert type(c.dropout_rate) is float and c.dropout_rate == 0.5
    same = mlp.MLPConfig(layer_sizes=(4, 8, 3), hidden_activation="maxout", maxout_pieces=3,
                         dropout_rate=0.5, l2=0.1)
    assert c == same and hash(c) == hash(same)
    with pytest.raises(ValueError, match="MLPConfig: layer_sizes"):
        mlp.MLPConfig(layer_sizes=(4, np.int64(0), 3))
    with pytest.raises(ValueError, match="MLPConfig: maxout_pieces"):
        mlp.MLPConfig(layer_sizes=(4, 3), maxout_pieces=np.bool_(True))


# ----------------------------------------------------------------------------- init


def test_init_layout_plain():
    c = mlp.MLPConfig(layer_sizes=(4, 8, 5, 3))
    params, state = mlp.init(c, KEY)
    assert [sorted(p) for p in params["layers"]] == [["b", "w"]] * 3
    assert [p["w"].shape for p in params["layers"]] == [(4, 8), (8, 5), (5, 3)]
    assert state == {"layers": [{}, {}, {}]}
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    # Keys are split per layer: same-shape layers are not copies of each other.
    c2 = mlp.MLPConfig(layer_sizes=(6, 6, 6))
    p2, _ = mlp.init(c2, KEY)
    assert not np.allclose(p2["layers"][0]["w"], p2["layers"][1]["w"])


def test_init_layout_with_everything():
    c = mlp.MLPConfig(
        layer_sizes=(4, 8, 5, 3), hidden_activation="maxout", maxout_pieces=3, batch_norm=True,
        use_bias=False,
    )
    params, state = mlp.init(c, KEY, dtype=jnp.float64)
    ws = [p["w"].shape for p in params["layers"]]
    assert ws == [(4, 24), (8, 15), (5, 3)]  # dense layers output units * pieces
    assert all("b" not in p for p in params["layers"])
    assert params["layers"][0]["bn"]["gamma"].shape == (24,)  # before the activation
    assert "bn" not in params["layers"][2] and state["layers"][2] == {}
    assert state["layers"][1]["bn"]["var"].shape == (15,)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves((params, state)))
    c_after = dataclasses.replace(c, batch_norm_position="after_activation")
    p_after, _ = mlp.init(c_after, KEY)
    assert p_after["layers"][0]["bn"]["gamma"].shape == (8,)
    cp = mlp.MLPConfig(layer_sizes=(4, 8, 3), hidden_activation="prelu", prelu_init=0.1)
    pp, _ = mlp.init(cp, KEY)
    np.testing.assert_allclose(pp["layers"][0]["alpha"], np.full(8, 0.1, np.float32))
    assert "alpha" not in pp["layers"][1]


@pytest.mark.parametrize("batch_norm, position, expected", [
    (True, "before_activation", [False, False, True]),  # batch norm removes the bias again
    (True, "after_activation", [True, True, True]),
    (False, "before_activation", [True, True, True]),
])
def test_auto_bias_drops_only_the_biases_that_batch_norm_cancels(batch_norm, position, expected):
    c = mlp.MLPConfig(layer_sizes=(4, 8, 5, 3), use_bias="auto", batch_norm=batch_norm,
                      batch_norm_position=position)
    assert [c.has_bias(l) for l in range(3)] == expected
    params, _ = mlp.init(c, KEY)
    assert ["b" in p for p in params["layers"]] == expected
    x = _x()
    logits, _ = mlp.apply(c, params, mlp.init(c, KEY)[1], x, train=True)
    assert logits.shape == (6, 3) and bool(jnp.all(jnp.isfinite(logits)))
    # Batch norm before the activation makes a hidden bias a no-op in training mode:
    # the same network with biases set to 5 computes the same logits.
    if batch_norm and position == "before_activation":
        full = dataclasses.replace(c, use_bias=True)
        pf, sf = mlp.init(full, KEY)
        for l in range(2):
            pf["layers"][l]["w"] = params["layers"][l]["w"]
            pf["layers"][l]["b"] = jnp.full_like(pf["layers"][l]["b"], 5.0)
        pf["layers"][2] = params["layers"][2]
        with_bias, _ = mlp.apply(full, pf, sf, x, train=True)
        np.testing.assert_allclose(with_bias, logits, rtol=1e-4, atol=1e-5)
    assert mlp.MLPConfig(layer_sizes=(4, 3), use_bias=True).has_bias(0)
    assert not mlp.MLPConfig(layer_sizes=(4, 3), use_bias=False).has_bias(0)


def test_init_per_layer_initializer_and_kwargs():
    with pytest.raises(ValueError, match="MLPConfig: initializer='zeros'"):  # no stddev
        mlp.MLPConfig(layer_sizes=(4, 3), initializer="zeros", initializer_kwargs={"stddev": 1.0})
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), initializer=("zeros", "normal"))
    params, _ = mlp.init(c, KEY)
    np.testing.assert_array_equal(params["layers"][0]["w"], 0.0)
    assert 0 < float(jnp.std(params["layers"][1]["w"])) < 0.05  # normal(stddev=0.01)


def test_params_work_with_optax_and_flax_serialization():
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), batch_norm=True, hidden_activation="prelu")
    params, state = mlp.init(c, KEY)
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, opt_state, params)
    new = optax.apply_updates(params, updates)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    for tree in (params, state):
        restored = flax.serialization.from_bytes(tree, flax.serialization.to_bytes(tree))
        jax.tree.map(np.testing.assert_array_equal, restored, tree)


# ----------------------------------------------------------------------------- apply


def test_depth_one_is_a_linear_model():
    c = mlp.MLPConfig(layer_sizes=(4, 3))
    params, state = mlp.init(c, KEY)
    x = _x()
    y, new_state = mlp.apply(c, params, state, x, train=True)
    p = params["layers"][0]
    np.testing.assert_allclose(y, x @ p["w"] + p["b"][None, :], rtol=1e-6)
    assert y.dtype == jnp.float32 and new_state == state
    c_log = mlp.MLPConfig(layer_sizes=(4, 1), output_activation="sigmoid")
    params_1, state_1 = mlp.init(c_log, KEY)
    y, _ = mlp.apply(c_log, params_1, state_1, x, train=False)
    p = params_1["layers"][0]
    np.testing.assert_allclose(y, jax.nn.sigmoid(x @ p["w"] + p["b"][None, :]), rtol=1e-6)


def test_apply_matches_manual_composition():
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), hidden_activation="tanh", output_activation="tanh")
    params, state = mlp.init(c, KEY)
    x = _x()
    y, _ = mlp.apply(c, params, state, x, train=True)
    p0, p1 = params["layers"]
    expected = jnp.tanh(jnp.tanh(x @ p0["w"] + p0["b"][None, :]) @ p1["w"] + p1["b"][None, :])
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_apply_flattens_extra_input_axes():
    c = mlp.MLPConfig(layer_sizes=(12, 5, 3))
    params, state = mlp.init(c, KEY)
    x = jax.random.normal(KEY, (6, 3, 4))
    y, _ = mlp.apply(c, params, state, x, train=False)
    y2, _ = mlp.apply(c, params, state, x.reshape(6, 12), train=False)
    np.testing.assert_array_equal(y, y2)


def test_dropout_in_apply():
    c = mlp.MLPConfig(layer_sizes=(4, 64, 3), dropout_rate=0.5)
    params, state = mlp.init(c, KEY)
    x = _x()
    with pytest.raises(ValueError, match="apply: key is required"):
        mlp.apply(c, params, state, x, train=True)
    y1, _ = mlp.apply(c, params, state, x, train=True, key=jax.random.PRNGKey(3))
    y2, _ = mlp.apply(c, params, state, x, train=True, key=jax.random.PRNGKey(3))
    y3, _ = mlp.apply(c, params, state, x, train=True, key=jax.random.PRNGKey(4))
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(y1, y3)
    # Evaluation mode: inverted dropout is the identity (equals the dropout-free network).
    c0 = dataclasses.replace(c, dropout_rate=0.0)
    y_eval, _ = mlp.apply(c, params, state, x, train=False)
    y_ref, _ = mlp.apply(c0, params, state, x, train=False)
    np.testing.assert_array_equal(y_eval, y_ref)
    # Textbook dropout scales the hidden activations by (1 - rate) at evaluation.
    ct = dataclasses.replace(c, dropout_inverted=False, output_activation="linear")
    y_text, _ = mlp.apply(ct, params, state, x, train=False)
    p0, p1 = params["layers"]
    h = 0.5 * jax.nn.relu(x @ p0["w"] + p0["b"][None, :])
    np.testing.assert_allclose(y_text, h @ p1["w"] + p1["b"][None, :], rtol=1e-5, atol=1e-6)


def test_dropout_key_is_fold_in_per_layer():
    k = jax.random.PRNGKey(7)
    np.testing.assert_array_equal(mlp.dropout_key(k, 2), jax.random.fold_in(k, 2))
    assert not np.array_equal(mlp.dropout_key(k, 0), mlp.dropout_key(k, 1))


@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_batch_norm_train_updates_state_and_eval_uses_it(position):
    c = mlp.MLPConfig(layer_sizes=(4, 6, 3), batch_norm=True, batch_norm_position=position,
                      batch_norm_momentum=0.7)
    params, state = mlp.init(c, KEY)
    x = 2.0 + _x(batch=16)
    p0 = params["layers"][0]
    z = x @ p0["w"] + p0["b"][None, :]
    bn_in = z if position == "before_activation" else jax.nn.relu(z)
    _, new_state = mlp.apply(c, params, state, x, train=True)
    n = x.shape[0]
    np.testing.assert_allclose(new_state["layers"][0]["bn"]["mean"], 0.3 * bn_in.mean(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["layers"][0]["bn"]["var"],
                               0.7 + 0.3 * bn_in.var(0) * n / (n - 1), rtol=1e-5)
    # Eval mode normalizes with the (new) running statistics and leaves them unchanged.
    y, eval_state = mlp.apply(c, params, new_state, x, train=False)
    assert eval_state == new_state
    rs = new_state["layers"][0]["bn"]
    normed = (bn_in - rs["mean"][None, :]) / jnp.sqrt(rs["var"] + 1e-5)[None, :]
    h = jax.nn.relu(normed) if position == "before_activation" else normed
    p1 = params["layers"][1]
    np.testing.assert_allclose(y, h @ p1["w"] + p1["b"][None, :], rtol=1e-4, atol=1e-5)
    # ... while train mode uses the batch statistics: a different output.
    y_train, _ = mlp.apply(c, params, new_state, x, train=True)
    assert not np.allclose(y, y_train)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_batch_norm_trains_in_narrow_floats_without_inf(dtype, position):
    # Features with std ~400: in float16 the batch variance overflowed (65504), batch norm
    # returned beta and the running variance became inf. Params stay in ``dtype``, the
    # running statistics are float32, one jitted step compiles once.
    c = mlp.MLPConfig(layer_sizes=(4, 16, 3), batch_norm=True, batch_norm_position=position)
    params, state = mlp.init(c, KEY, dtype=dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state))
    x = (400.0 * jax.random.normal(jax.random.PRNGKey(1), (64, 4))).astype(dtype)
    y = (x[:, 0] > 0).astype(jnp.int32) + (x[:, 1] > 0).astype(jnp.int32)
    loss_fn = mlp.make_loss_fn(c, "softmax_cross_entropy_with_integer_labels")
    tx = optax.sgd(0.1)
    traces = []

    @jax.jit
    def step(params, state, opt_state):
        traces.append(1)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), aux["state"], opt_state, loss

    opt_state = tx.init(params)
    losses_seen = []
    for _ in range(20):
        params, state, opt_state, loss = step(params, state, opt_state)
        losses_seen.append(float(loss))
    assert len(traces) == 1
    assert np.all(np.isfinite(losses_seen)) and losses_seen[-1] < losses_seen[0]
    for leaf in jax.tree.leaves((params, state)):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64)))
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state))
    # The running variance of the first batch-norm input is far past float16's range.
    bn_in_var = state["layers"][0]["bn"]["var"]
    if position == "before_activation":
        assert float(jnp.max(bn_in_var)) > 65504.0
    out, same = mlp.apply(c, params, state, x, train=False)
    assert out.dtype == dtype
    jax.tree.map(np.testing.assert_array_equal, same, state)
    assert np.all(np.isfinite(np.asarray(out, np.float64)))


def test_apply_is_jittable_with_static_config():
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), batch_norm=True, dropout_rate=0.2)
    params, state = mlp.init(c, KEY)
    f = jax.jit(mlp.apply, static_argnums=0, static_argnames="train")
    y, s = f(c, params, state, _x(), train=True, key=KEY)
    y_ref, s_ref = mlp.apply(c, params, state, _x(), train=True, key=KEY)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s, s_ref)


# ----------------------------------------------------------------------------- loss


def test_penalty_is_on_weights_only():
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), l1=0.01, l2=0.1, batch_norm=True,
                      hidden_activation="prelu")
    params, _ = mlp.init(c, KEY, dtype=jnp.float64)
    ws = [p["w"] for p in params["layers"]]
    expected = 0.01 * sum(jnp.abs(w).sum() for w in ws) + 0.05 * sum((w**2).sum() for w in ws)
    np.testing.assert_allclose(mlp.penalty(c, params), expected, rtol=1e-12)
    c0 = mlp.MLPConfig(layer_sizes=(4, 8, 3))
    p32, _ = mlp.init(c0, KEY)
    zero = mlp.penalty(c0, p32)
    assert float(zero) == 0.0 and zero.dtype == jnp.float32


def test_make_loss_fn_contract():
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), l2=0.1, batch_norm=True)
    params, state = mlp.init(c, KEY)
    x = _x()
    y = jnp.array([0, 1, 2, 0, 1, 2])
    loss_fn = mlp.make_loss_fn(c, "softmax_cross_entropy_with_integer_labels")
    loss, aux = loss_fn(params, state, x, y)  # key=None, train=True by default
    assert set(aux) == {"state", "outputs", "data_loss"}
    outputs, new_state = mlp.apply(c, params, state, x, train=True)
    np.testing.assert_allclose(aux["outputs"], outputs, rtol=1e-6)
    data = losses.softmax_cross_entropy_with_integer_labels(outputs, y)
    np.testing.assert_allclose(aux["data_loss"], data, rtol=1e-6)
    np.testing.assert_allclose(loss, data + mlp.penalty(c, params), rtol=1e-6)
    assert loss.dtype == jnp.float32
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), aux["state"],
                 new_state)
    (l2, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y, None, False)
    assert jax.tree.structure(grads) == jax.tree.structure(params)


def test_make_loss_fn_rejects_bad_losses():
    c = mlp.MLPConfig(layer_sizes=(4, 3), output_activation="sigmoid")
    with pytest.raises(ValueError, match="output_activation must be 'linear'"):
        mlp.make_loss_fn(c, "softmax_cross_entropy")
    with pytest.raises(ValueError, match="make_loss_fn"):
        mlp.make_loss_fn(c, "mse_loss_typo")
    mlp.make_loss_fn(c, "mse")  # any output activation works with mse


@pytest.mark.parametrize("loss, y", [
    ("softmax_cross_entropy_with_integer_labels", jnp.array([0, 1, 2, 0, 1, 2])),
    ("softmax_cross_entropy", jax.nn.one_hot(jnp.array([2, 1, 0, 0, 1, 2]), 3)),
    ("sigmoid_binary_cross_entropy", jnp.array([[1.0, 0.0, 1.0]] * 6)),
])
def test_make_loss_fn_label_smoothing_is_the_smoothed_data_loss(loss, y):
    c = mlp.MLPConfig(layer_sizes=(4, 8, 3), l2=0.1)
    params, state = mlp.init(c, KEY)
    x = _x()
    plain = mlp.make_loss_fn(c, loss)
    smooth = mlp.make_loss_fn(c, loss, label_smoothing=0.2)
    total, aux = smooth(params, state, x, y)
    want = losses.get(loss)(aux["outputs"], y, label_smoothing=0.2)
    np.testing.assert_allclose(aux["data_loss"], want, rtol=1e-6)
    np.testing.assert_allclose(total, want + mlp.penalty(c, params), rtol=1e-6)
    assert not np.isclose(aux["data_loss"], plain(params, state, x, y)[1]["data_loss"])
    # 0 is the unsmoothed objective, bit for bit.
    np.testing.assert_array_equal(
        mlp.make_loss_fn(c, loss, label_smoothing=0.0)(params, state, x, y)[0],
        plain(params, state, x, y)[0])


def test_make_loss_fn_refuses_label_smoothing_it_cannot_apply():
    c = mlp.MLPConfig(layer_sizes=(4, 3))
    with pytest.raises(ValueError, match=r"make_loss_fn: label_smoothing=0\.1 needs a "
                                         r"cross-entropy loss.*got loss='mse'"):
        mlp.make_loss_fn(c, "mse", label_smoothing=0.1)
    mlp.make_loss_fn(c, "mse", label_smoothing=0.0)  # 0 is no smoothing: fine for any loss
    for bad in (1.0, -0.5, True, "0.1"):
        with pytest.raises(ValueError, match=r"make_loss_fn: .*label_smoothing must be a real "
                                             r"number in \[0, 1\)"):
            mlp.make_loss_fn(c, "softmax_cross_entropy", label_smoothing=bad)


def test_kwargs_pairs_are_canonical_and_a_repeated_name_is_refused():
    # Pairs in another order are the same config (equal, same hash: a jitted step keyed on
    # it does not compile again); a name given twice kept its last value silently.
    kw = (("scale", 2.0), ("mode", "fan_in"), ("distribution", "truncated_normal"))
    a = mlp.MLPConfig(layer_sizes=(3, 4, 2), initializer="variance_scaling",
                      initializer_kwargs=kw)
    b = mlp.MLPConfig(layer_sizes=(3, 4, 2), initializer="variance_scaling",
                      initializer_kwargs=kw[::-1])
    c = mlp.MLPConfig(layer_sizes=(3, 4, 2), initializer="variance_scaling",
                      initializer_kwargs=dict(kw))
    assert a == b == c and hash(a) == hash(b) == hash(c)
    assert [k for k, _ in a.initializer_kwargs] == ["distribution", "mode", "scale"]
    with pytest.raises(ValueError, match=r"activation_kwargs names 'negative_slope' more than"):
        mlp.MLPConfig(layer_sizes=(3, 4, 2), hidden_activation="leaky_relu",
                      activation_kwargs=(("negative_slope", 0.1), ("negative_slope", 0.3)))


@pytest.mark.parametrize("params_sizes", [(3, 4, 4, 2), (3, 4, 5), (3, 5, 2)])
def test_apply_refuses_params_of_another_architecture(params_sizes):
    # params with an extra layer ran the config's layers and ignored the rest, and a last
    # layer of another width gave outputs of that width: both silently.
    config = mlp.MLPConfig(layer_sizes=(3, 4, 2))
    params, state = mlp.init(mlp.MLPConfig(layer_sizes=params_sizes), jax.random.PRNGKey(0))
    x = jnp.ones((2, 3), jnp.float32)
    with pytest.raises(ValueError, match=r"apply: params do not fit config\.layer_sizes="
                                         r"\(3, 4, 2\): "):
        mlp.apply(config, params, state, x, train=False)
