"""Hand-written backpropagation through an MLP, interchangeable with autodiff.

Contract::

    vg = value_and_grad(config, loss)        # same signature and outputs as
    ag = jax.value_and_grad(mlp.make_loss_fn(config, loss), has_aux=True)
    (loss, aux), grads = vg(params, state, x, y, key, True)   # == ag(...) to rounding

so a train step switches between the two by one argument. One documented exception:
where maxout pieces tie (a zero input row with the default zero biases ties every piece of
a unit), the hand-written backward gives the whole gradient to the first tied piece, as
:func:`jaxnn.activations.maxout_vjp` does, while autodiff splits it evenly between them;
both are valid subgradients and they agree wherever each unit's maximum is unique (as
with :func:`jaxnn.gradcheck.check_mlp`'s random inputs, which tie with probability 0).
Underneath:

* :func:`forward` runs the same layer equations as :func:`jaxnn.mlp.apply` (same dropout
  keys, from :func:`jaxnn.mlp.dropout_key`) and keeps a :class:`Cache` of every layer's
  input ``h_{l-1}``, pre-activation ``z_l``, batch-norm cache, activation input ``u_l``,
  activation ``a_l`` and dropout mask.
* :func:`backward` applies the chain rule from the output back to the input. For layer
  ``l``, going backwards from ``dL/dh_l`` (see the layer equations in :mod:`jaxnn.mlp`)::

      dL/dv_l     = dropout_backward(mask_l, dL/dh_l)          (same mask as forward)
      dL/da_l     = BN_backward(dL/dv_l)     if BN after the activation, else dL/dv_l
      dL/du_l     = act'(u_l) * dL/da_l      elementwise activations (``<name>_grad``)
                    prelu:   dL/du = prelu_grad(u, alpha) * dL/da,
                             dL/dalpha = sum_batch prelu_grad_alpha(u, alpha) * dL/da
                    maxout:  maxout_vjp (routes dL/da to the arg-max piece)
                    softmax / log_softmax: their vector-Jacobian products
      dL/dz_l     = BN_backward(dL/du_l)     if BN before the activation, else dL/du_l
      dL/dW_l     = h_{l-1}^T dL/dz_l,  dL/db_l = sum_batch dL/dz_l
      dL/dh_{l-1} = dL/dz_l W_l^T

  The output layer starts from ``dL/doutputs = losses.<loss>_grad(outputs, y)`` (with
  ``label_smoothing=a`` when given: the smoothed labels replace ``y`` below). The
  cross-entropy losses take logits (``output_activation="linear"``), so their gradient is
  the fused ``(softmax(z) - y) / N`` (resp. ``(sigmoid(z) - y) / size``) directly; nothing
  is differentiated through an explicit softmax.
* :func:`value_and_grad` adds the L1/L2 penalty and its gradient (``l1 * sign(W) + l2 * W``).
* :func:`value_and_grad_with_stats` also returns every layer's pre-activations,
  activations and their gradients from the same pass, and :func:`layer_statistics` turns
  them into per-layer summaries (means, standard deviations, norms) for depth studies.

Everything is jit-able: the config is static (hashable, closed over) and ``train`` is a
Python bool (``jax.jit(vg, static_argnames="train")``).

References:
  D. Rumelhart, G. Hinton, R. Williams, "Learning representations by back-propagating
  errors", Nature 323, 1986. Batch norm: Ioffe & Szegedy, ICML 2015. Dropout: Srivastava
  et al., JMLR 2014.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import activations, layers, losses, mlp, regularizers
from jaxnn.mlp import MLPConfig

__all__ = [
    "Cache",
    "backward",
    "forward",
    "layer_statistics",
    "penalty_grad",
    "value_and_grad",
    "value_and_grad_with_stats",
]

Array = jax.Array
Params = dict[str, Any]

_LINEAR = ("linear", "identity")


@dataclasses.dataclass(frozen=True)
class Cache:
    """Everything :func:`backward` needs from :func:`forward` (a pytree).

    Attributes:
      layers: one dict per weight layer with ``"input"`` (``h_{l-1}``), ``"pre_activation"``
        (``z_l``), ``"activation_input"`` (``u_l``), ``"activation"`` (``a_l``, the outputs
        for the last layer), and on hidden layers ``"bn"`` (a
        :class:`jaxnn.layers.BatchNormCache`) when batch norm is on and ``"mask"`` when
        ``dropout_rate > 0``.
      train: the mode of the forward pass (static metadata).
    """

    layers: list[dict[str, Any]]
    train: bool


jax.tree_util.register_dataclass(Cache, data_fields=["layers"], meta_fields=["train"])


def forward(
    config: MLPConfig,
    params: Params,
    state: Params,
    x: Array,
    *,
    train: bool,
    key: Array | None = None,
) -> tuple[Array, Cache, Params]:
    """Forward pass of :func:`jaxnn.mlp.apply`, keeping what the backward pass needs.

    Args:
      config, params, state, x, train, key: as for :func:`jaxnn.mlp.apply` (same dropout
        masks for the same ``key``).

    Returns:
      ``(outputs, cache, new_state)``; ``outputs`` and ``new_state`` equal ``apply``'s.
    """
    if train and config.dropout_rate > 0.0 and key is None:
        raise ValueError(
            f"forward: key is required when train=True and dropout_rate={config.dropout_rate} "
            "> 0, got key=None"
        )
    mlp._check_params(config, params, "forward")
    n = config.num_layers
    hidden_act = mlp._activation(config, config.hidden_activation, True)
    out_act = mlp._activation(config, config.output_activation, False)
    bn_before = config.batch_norm_position == "before_activation"
    h = mlp._flatten_input(x)
    caches, new_layers = [], []
    for l in range(n):
        p, s = params["layers"][l], state["layers"][l]
        c: dict[str, Any] = {"input": h}
        z = layers.dense_forward(p, h)
        c["pre_activation"] = z
        if l == n - 1:
            c["activation_input"] = z
            h = out_act(z, p)
            c["activation"] = h
            caches.append(c)
            new_layers.append(s)
            break
        new_s = dict(s)
        u = z
        if config.batch_norm and bn_before:
            u, c["bn"], new_s["bn"] = layers.batch_norm_forward(
                p["bn"], s["bn"], u, train=train,
                momentum=config.batch_norm_momentum, eps=config.batch_norm_eps,
            )
        c["activation_input"] = u
        a = hidden_act(u, p)
        c["activation"] = a
        if config.batch_norm and not bn_before:
            a, c["bn"], new_s["bn"] = layers.batch_norm_forward(
                p["bn"], s["bn"], a, train=train,
                momentum=config.batch_norm_momentum, eps=config.batch_norm_eps,
            )
        if config.dropout_rate > 0.0:
            a, c["mask"] = layers.dropout_forward(
                mlp.dropout_key(key, l) if (train and key is not None) else None,
                a, config.dropout_rate, train=train, inverted=config.dropout_inverted,
            )
        h = a
        caches.append(c)
        new_layers.append(new_s)
    return h, Cache(layers=caches, train=bool(train)), {"layers": new_layers}


def _activation_backward(
    config: MLPConfig, name: str, hidden: bool, u: Array, p: Params, g_a: Array
) -> tuple[Array, dict[str, Array]]:
    """``(dL/du, extra param grads)`` of ``a = act(u)`` given ``dL/da``."""
    if name in _LINEAR:
        return g_a, {}
    if name == "prelu":
        alpha = p["alpha"]
        g_u = g_a * activations.prelu_grad(u, alpha)
        g_alpha_full = g_a * activations.prelu_grad_alpha(u, alpha)
        lead = g_alpha_full.ndim - alpha.ndim
        g_alpha = jnp.sum(g_alpha_full, axis=tuple(range(lead)))
        # alpha may broadcast on its own axes of size 1, e.g. shape (1,) for a shared slope
        keep = tuple(i for i, d in enumerate(alpha.shape) if d == 1 and g_alpha.shape[i] != 1)
        if keep:
            g_alpha = jnp.sum(g_alpha, axis=keep, keepdims=True)
        return g_u, {"alpha": g_alpha}
    if name == "maxout":
        return activations.maxout_vjp(u, g_a, config.maxout_pieces), {}
    kwargs = dict(config.activation_kwargs) if hidden else {}
    if name == "softmax":
        return activations.softmax_vjp(u, g_a, **kwargs), {}
    if name == "log_softmax":
        return activations.log_softmax_vjp(u, g_a, **kwargs), {}
    return g_a * activations.get_grad(name, **kwargs)(u), {}


def backward(
    config: MLPConfig, params: Params, cache: Cache, grad_outputs: Array
) -> tuple[Params, dict[str, Any]]:
    """Hand-written chain rule from ``dL/doutputs`` back to the input (data term only).

    Args:
      config: the architecture used in :func:`forward`.
      params: the params used in :func:`forward`.
      cache: from :func:`forward`.
      grad_outputs: ``dL/doutputs`` (e.g. ``losses.<loss>_grad(outputs, y)``).

    Returns:
      ``(grads, layer_grads)``: ``grads`` is shaped like ``params`` (no penalty term; see
      :func:`penalty_grad`); ``layer_grads = {"layers": [{"input": dL/dh_{l-1},
      "pre_activation": dL/dz_l, "activation": dL/da_l}, ...]}`` (layer 0's ``"input"`` is
      ``dL/dx`` for the flattened input).
    """
    n = config.num_layers
    bn_before = config.batch_norm_position == "before_activation"
    grads_layers: list[dict[str, Any]] = [{} for _ in range(n)]
    lgrads: list[dict[str, Array]] = [{} for _ in range(n)]
    g_h = grad_outputs
    for l in reversed(range(n)):
        p, c = params["layers"][l], cache.layers[l]
        g: dict[str, Any] = {}
        if l == n - 1:
            g_a = g_h
            g_z, _ = _activation_backward(
                config, config.output_activation, False, c["activation_input"], p, g_a
            )
        else:
            g_v = g_h
            if "mask" in c:
                g_v = layers.dropout_backward(
                    c["mask"], g_v, config.dropout_rate,
                    train=cache.train, inverted=config.dropout_inverted,
                )
            g_a = g_v
            if config.batch_norm and not bn_before:
                g["bn"], g_a = layers.batch_norm_backward(c["bn"], g_v)
            g_u, extra = _activation_backward(
                config, config.hidden_activation, True, c["activation_input"], p, g_a
            )
            g.update(extra)
            g_z = g_u
            if config.batch_norm and bn_before:
                g["bn"], g_z = layers.batch_norm_backward(c["bn"], g_u)
        dense_grads, g_h = layers.dense_backward(p, c["input"], g_z)
        g.update(dense_grads)
        grads_layers[l] = g
        lgrads[l] = {"input": g_h, "pre_activation": g_z, "activation": g_a}
    return {"layers": grads_layers}, {"layers": lgrads}


def penalty_grad(config: MLPConfig, params: Params) -> Params | None:
    """Gradient of :func:`jaxnn.mlp.penalty`: ``l1 * sign(W) + l2 * W`` on weights, zeros
    elsewhere (None when both weights are 0)."""
    out = None
    for weight, grad_fn in ((config.l1, regularizers.l1_grad), (config.l2, regularizers.l2_grad)):
        if weight > 0.0:
            g = grad_fn(params, weight)
            out = g if out is None else jax.tree.map(jnp.add, out, g)
    return out


def _value_and_grad_impl(
    config: MLPConfig, loss: str, fn_name: str, label_smoothing: float
) -> Callable[..., tuple[tuple[Array, dict[str, Any]], Params, dict[str, Any]]]:
    mlp.check_loss(config, loss, fn_name, label_smoothing)
    # As mlp.make_loss_fn: 0 binds nothing, so the unsmoothed path is the same code.
    kw = {"label_smoothing": label_smoothing} if label_smoothing else {}
    loss_value = losses.get(loss, **kw)
    loss_grad = losses.get_grad(loss, **kw)

    def impl(params, state, x, y, key=None, train=True):
        mlp._check_params(config, params, fn_name)
        outputs, cache, new_state = forward(config, params, state, x, train=train, key=key)
        data_loss = loss_value(outputs, y)
        total = data_loss + mlp.penalty(config, params)
        g_out = loss_grad(outputs, y).astype(outputs.dtype)
        grads, lgrads = backward(config, params, cache, g_out)
        pg = penalty_grad(config, params)
        if pg is not None:
            grads = jax.tree.map(jnp.add, grads, pg)
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
        aux = {"state": new_state, "outputs": outputs, "data_loss": data_loss}
        stats = {
            "layers": [
                {
                    "pre_activation": c["pre_activation"],
                    "activation": c["activation"],
                    "grad_input": lg["input"],
                    "grad_pre_activation": lg["pre_activation"],
                    "grad_activation": lg["activation"],
                }
                for c, lg in zip(cache.layers, lgrads["layers"], strict=True)
            ]
        }
        return (total, aux), grads, stats

    return impl


def value_and_grad(
    config: MLPConfig, loss: str, *, label_smoothing: float = 0.0
) -> Callable[..., tuple[tuple[Array, dict[str, Any]], Params]]:
    """Loss and hand-written gradient, a drop-in for autodiff.

    ``value_and_grad(config, loss, label_smoothing=a)`` has exactly the signature and
    outputs of ``jax.value_and_grad(mlp.make_loss_fn(config, loss, label_smoothing=a),
    has_aux=True)``::

        fn(params, state, x, y, key=None, train=True) -> ((loss, aux), grads)

    with ``aux = {"state", "outputs", "data_loss"}`` and ``grads`` shaped like ``params``
    (data gradient from :func:`backward` plus :func:`penalty_grad`).

    Args:
      config: the architecture.
      loss: a name from :func:`jaxnn.losses.names` matching ``config.output_activation``.
      label_smoothing: in ``[0, 1)``, for the cross-entropy losses: the output layer then
        starts from ``losses.<loss>_grad(outputs, y, label_smoothing=a)``.
    """
    impl = _value_and_grad_impl(config, loss, "value_and_grad", label_smoothing)

    def fn(params, state, x, y, key=None, train=True):
        value, grads, _ = impl(params, state, x, y, key, train)
        return value, grads

    return fn


def value_and_grad_with_stats(
    config: MLPConfig, loss: str, *, label_smoothing: float = 0.0
) -> Callable[..., tuple[tuple[Array, dict[str, Any]], Params, dict[str, Any]]]:
    """Like :func:`value_and_grad`, plus every layer's signals from the same pass.

    ``fn(params, state, x, y, key=None, train=True) -> ((loss, aux), grads, stats)`` with
    ``stats = {"layers": [{"pre_activation": z_l, "activation": a_l, "grad_input":
    dL/dh_{l-1}, "grad_pre_activation": dL/dz_l, "grad_activation": dL/da_l}, ...]}``
    (full arrays, batch first; ``a`` of the last layer is the outputs). Reduce them with
    :func:`layer_statistics` or your own function inside the same ``jit``.
    ``label_smoothing`` as for :func:`value_and_grad`.
    """
    return _value_and_grad_impl(config, loss, "value_and_grad_with_stats", label_smoothing)


def _scaled(x: Array) -> tuple[Array, Array, Array]:
    """``(m, ok, x / m)`` with ``m = max |x|`` (NaN when an entry is); ``ok``: ``m`` is
    finite and > 0."""
    # XLA's CPU max may drop NaNs: vmapped over layers, an all-NaN layer's max read -inf
    # (a norm below 0) where the unbatched reduction gave NaN. A NaN entry makes m NaN here.
    m = jnp.where(jnp.any(jnp.isnan(x)), jnp.nan, jnp.max(jnp.abs(x)))
    ok = jnp.isfinite(m) & (m > 0)
    return m, ok, x / jnp.where(ok, m, jnp.ones_like(m))


# Norms, stds and means are taken of x / max|x| and scaled back. Squaring first flushes
# float32 entries below ~1e-19 to 0 and overflows above ~1.8e19, so a first-layer gradient
# of 1e-20 read as exactly 0 and finite activations of 1e20 as "overflow" -- in a study of
# vanishing and exploding gradients, where those are the values that matter. The scaled
# forms agree with the plain ones to rounding wherever those are representable; a norm is
# 0 only when every entry is, and inf/nan only when an entry is.
def _norm(x: Array) -> Array:
    if x.size == 0:
        return jnp.zeros((), x.dtype)
    m, ok, u = _scaled(x)
    return jnp.where(ok, m * jnp.sqrt(jnp.sum(jnp.square(u))), m)


def _std(x: Array) -> Array:
    if x.size == 0:
        return jnp.std(x)
    m, ok, u = _scaled(x)
    return jnp.where(ok, m * jnp.std(u), jnp.where(m == 0, jnp.zeros_like(m), jnp.nan))


def _mean(x: Array) -> Array:
    if x.size == 0:
        return jnp.mean(x)
    m, ok, u = _scaled(x)
    return jnp.where(ok, m * jnp.mean(u), jnp.mean(x))


def layer_statistics(
    stats: dict[str, Any], grads: Params | None = None, params: Params | None = None
) -> dict[str, Array]:
    """Per-layer summaries for a depth study, each an array of shape ``(num_layers,)``.

    Always: ``pre_activation_mean/std`` and ``activation_mean/std`` (over batch and units),
    ``activation_zero_fraction`` (exact zeros, e.g. dead ReLUs, or denormals flushed to
    zero), ``grad_pre_activation_norm`` and ``grad_activation_norm`` (L2 norms over batch
    and units). With ``grads``: ``weight_grad_norm`` (``||dL/dW_l||_2``, Frobenius). With
    ``params``: ``weight_norm``.

    Norms, means and stds are computed on ``x / max|x|`` and scaled back, so they hold over
    the whole float range of the arrays: a gradient whose entries are ~1e-20 has a norm of
    ~1e-20 (not 0: float32 squares below ~1e-38 flush to zero) and finite entries of ~1e20
    a finite norm (not inf). A value is 0 only when every entry is 0, inf/nan only when an
    entry is.

    Args:
      stats: the third output of a :func:`value_and_grad_with_stats` function.
      grads: its second output (optional).
      params: the params (optional).
    """
    ls = stats["layers"]
    out = {
        "pre_activation_mean": jnp.stack([_mean(s["pre_activation"]) for s in ls]),
        "pre_activation_std": jnp.stack([_std(s["pre_activation"]) for s in ls]),
        "activation_mean": jnp.stack([_mean(s["activation"]) for s in ls]),
        "activation_std": jnp.stack([_std(s["activation"]) for s in ls]),
        "activation_zero_fraction": jnp.stack(
            [jnp.mean((s["activation"] == 0).astype(s["activation"].dtype)) for s in ls]
        ),
        "grad_pre_activation_norm": jnp.stack([_norm(s["grad_pre_activation"]) for s in ls]),
        "grad_activation_norm": jnp.stack([_norm(s["grad_activation"]) for s in ls]),
    }
    if grads is not None:
        out["weight_grad_norm"] = jnp.stack([_norm(g["w"]) for g in grads["layers"]])
    if params is not None:
        out["weight_norm"] = jnp.stack([_norm(p["w"]) for p in params["layers"]])
    return out
