"""Dense, dropout and batch-norm layers as pure init / forward / backward functions.

Contract (every layer follows it; nothing here holds state)::

    params = dense_init(key, in_features, out_features, kernel_init=...)
    y = dense_forward(params, x)
    grads, grad_x = dense_backward(params, x, grad_y)

    y, mask = dropout_forward(key, x, rate, train=True)
    grad_x = dropout_backward(mask, grad_y, rate, train=True)

    params, state = batch_norm_init(features)
    y, cache, new_state = batch_norm_forward(params, state, x, train=True)
    grads, grad_x = batch_norm_backward(cache, grad_y)

The batch is axis 0 everywhere. Each ``*_backward`` is the hand-written vector-Jacobian
product of its ``*_forward``: given ``grad_y = dL/dy`` it returns ``dL/dparams`` (a pytree
shaped like the params) and ``dL/dx``. The chain rule of each layer is written in its
docstring; the tests compare every one of them with ``jax.vjp``.

Dtypes are preserved: float32 inputs give float32 outputs (constants are Python floats).
Dropout takes floating inputs only (an integer ``x * m / (1 - rate)`` does not exist).
Batch norm computes its statistics in at least float32 (float16/bfloat16 inputs are widened,
as Flax does) and keeps its running statistics in at least float32; see
:func:`batch_norm_forward`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import initializers
from jaxnn._static import static_scalar

__all__ = [
    "BatchNormCache",
    "batch_norm_backward",
    "batch_norm_forward",
    "batch_norm_init",
    "dense_backward",
    "dense_forward",
    "dense_init",
    "dropout_backward",
    "dropout_forward",
]

Array = jax.Array
Initializer = Callable[..., Array]


# --------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------


def _size(value: Any, fn: str, argname: str) -> int:
    """``value`` as a Python int >= 1: an int, a numpy integer (``np.int64`` from
    ``labels.max() + 1``) or a concrete 0-d integer array; a traced one is refused by name
    (it sets parameter shapes)."""
    v = static_scalar(value, fn, argname, expected="int >= 1",
                      reason="it sets the parameter shapes")
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{fn}: {argname} must be an int >= 1, got {value!r}")
    return int(v)


def _static_real(value: Any, fn: str, argname: str, allowed: str) -> float:
    """``value`` as a Python float: a real number or a concrete 0-d real array.

    ``float()`` alone accepted strings (``float("0.5")``) and bools; a traced value
    cannot be read and is refused by name (these hyper-parameters are static).
    """
    v = static_scalar(value, fn, argname, expected=f"real number {allowed}")
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{fn}: {argname} must be a real number {allowed}, got {value!r}")
    return float(v)


def _per_unit(v: Array, like: Array) -> Array:
    """``v`` (one value per unit, the last axis) broadcast explicitly to ``like``'s shape:
    the library runs under ``jax_numpy_rank_promotion="raise"`` too."""
    return jnp.broadcast_to(v, like.shape)


def _resolve_initializer(init: Initializer | str, argname: str) -> Initializer:
    if isinstance(init, str):
        return initializers.get(init)
    if not callable(init):
        raise TypeError(
            f"dense_init: {argname} must be an initializer (key, shape, dtype) -> Array or a "
            f"name from jaxnn.initializers.names(), got {init!r}"
        )
    return init


def dense_init(
    key: Array,
    in_features: int,
    out_features: int,
    *,
    kernel_init: Initializer | str,
    bias_init: Initializer | str = initializers.zeros,
    use_bias: bool = True,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """Parameters of an affine layer ``y = x W + b``.

    Args:
      key: PRNG key; split into one key for the kernel and one for the bias.
      in_features: size of the input's last axis (>= 1).
      out_features: size of the output's last axis (>= 1).
      kernel_init: initializer ``(key, shape, dtype) -> Array`` for ``W`` of shape
        ``(in_features, out_features)``, or a name for :func:`jaxnn.initializers.get`.
      bias_init: initializer for ``b`` of shape ``(out_features,)`` (default zeros).
      use_bias: when False the layer is ``y = x W`` and the dict has no ``"b"``.
      dtype: parameter dtype.

    Returns:
      ``{"w": (in_features, out_features), "b": (out_features,)}`` (no ``"b"`` without bias).
    """
    in_features = _size(in_features, "dense_init", "in_features")
    out_features = _size(out_features, "dense_init", "out_features")
    kernel_init = _resolve_initializer(kernel_init, "kernel_init")
    w_key, b_key = jax.random.split(key)
    params = {"w": kernel_init(w_key, (in_features, out_features), dtype)}
    if use_bias:
        bias_init = _resolve_initializer(bias_init, "bias_init")
        params["b"] = bias_init(b_key, (out_features,), dtype)
    return params


def _check_dense_input(w: Array, x: Array, fn: str) -> None:
    if w.ndim != 2 or jnp.ndim(x) < 1 or jnp.shape(x)[-1] != w.shape[0]:
        raise ValueError(
            f"{fn}: x must have shape (..., {w.shape[0] if w.ndim == 2 else 'in'}) to match "
            f"params['w'] of shape {w.shape} (in, out), got {jnp.shape(x)}"
        )


def dense_forward(params: dict[str, Array], x: Array) -> Array:
    """Affine map ``y = x W + b`` over the last axis of ``x``.

    Args:
      params: ``{"w": (in, out)}`` and optionally ``"b": (out,)``.
      x: input of shape ``(..., in)``.

    Returns:
      ``y`` of shape ``(..., out)``.

    Raises:
      ValueError: ``x`` is not ``(..., in)`` or ``params['b']`` is not ``(out,)``.
    """
    w = params["w"]
    if "b" in params and (w.ndim != 2 or params["b"].shape != w.shape[1:]):
        raise ValueError(
            f"dense_forward: params['b'] must have shape (out,) = {w.shape[1:]} for "
            f"params['w'] of shape {w.shape}, got {params['b'].shape}"
        )
    _check_dense_input(w, x, "dense_forward")
    y = x @ w
    if "b" in params:
        y = y + _per_unit(params["b"], y)
    return y


def dense_backward(
    params: dict[str, Array], x: Array, grad_out: Array
) -> tuple[dict[str, Array], Array]:
    """Vector-Jacobian product of :func:`dense_forward`.

    Chain rule, with ``G = dL/dy`` and all leading (batch) axes flattened into rows::

        dL/dW = x^T G          (in, out)
        dL/db = sum_rows G     (out,)
        dL/dx = G W^T          (..., in)

    Args:
      params: the layer's params (``"b"`` optional).
      x: the forward input, shape ``(..., in)``.
      grad_out: ``dL/dy``, shape ``(..., out)``.

    Returns:
      ``(grads, grad_x)`` with ``grads`` shaped like ``params``; each in its primal's dtype
      (``grads`` in the params' dtypes, ``grad_x`` in ``x``'s), as ``jax.vjp`` returns them;
      for an integer ``x`` (raw pixels) ``grad_x`` stays in the floating result dtype.

    Raises:
      ValueError: ``x`` is not ``(..., in)`` or ``grad_out`` is not ``x.shape[:-1] + (out,)``.
    """
    w = params["w"]
    _check_dense_input(w, x, "dense_backward")
    expected = (*jnp.shape(x)[:-1], w.shape[1])
    if jnp.shape(grad_out) != expected:
        # Only the row count enters x^T G: another leading shape paired the wrong rows.
        raise ValueError(
            f"dense_backward: grad_out must have shape {expected} (x.shape[:-1] + (out,)), "
            f"got {jnp.shape(grad_out)}"
        )
    x2 = x.reshape(-1, x.shape[-1])
    g2 = grad_out.reshape(-1, grad_out.shape[-1])
    # Each cotangent in its primal's dtype, as jax.vjp (x^T G and G W^T promote).
    grads = {"w": (x2.T @ g2).astype(w.dtype)}
    if "b" in params:
        grads["b"] = jnp.sum(g2, axis=0).astype(params["b"].dtype)
    grad_x = grad_out @ w.T
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact):  # integer pixels: keep the float
        grad_x = grad_x.astype(jnp.result_type(x))
    return grads, grad_x


# --------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------


def _check_rate(rate: float, fn: str) -> float:
    r = _static_real(rate, fn, "rate", "in [0, 1)")
    if not 0.0 <= r < 1.0:
        raise ValueError(f"{fn}: rate must be in [0, 1), got {rate!r}")
    return r


def _check_floating(x: Any, fn: str, argname: str) -> None:
    """Dropout scales by ``1 / (1 - rate)`` (or ``1 - rate``): an integer or boolean input
    has no such values. It used to come back as a float in training (with an integer
    mask) and unchanged in evaluation; refuse it instead, in every mode."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"{fn}: {argname} must have a floating dtype (float16, bfloat16, float32 or "
            f"float64), got {jnp.dtype(dtype).name}; cast it first, e.g. "
            f"{argname}.astype(jnp.float32)"
        )


def _check_scale(r: float, dtype: Any, fn: str) -> None:
    """Inverted dropout multiplies by ``1 / (1 - rate)``: it must be finite in ``dtype``.

    In float16 a rate above ~0.99998 makes the factor inf, so kept units became inf and
    dropped ones ``0 * inf = nan``; refuse it by name instead.
    """
    if not jnp.issubdtype(dtype, jnp.floating):
        return
    biggest = float(jnp.finfo(dtype).max)
    if 1.0 / (1.0 - r) > biggest:
        raise ValueError(
            f"{fn}: rate {r!r} scales kept units by 1 / (1 - rate) = {1.0 / (1.0 - r):.6g}, "
            f"beyond the largest finite {jnp.dtype(dtype).name} ({biggest:.6g}); use a lower "
            f"rate or a wider dtype"
        )


def dropout_forward(
    key: Array | None,
    x: Array,
    rate: float,
    *,
    train: bool,
    inverted: bool = True,
) -> tuple[Array, Array]:
    """Dropout (Srivastava et al., 2014): zero each unit with probability ``rate``.

    With ``m ~ Bernoulli(1 - rate)`` drawn elementwise from ``key``::

        inverted (default):  train  y = x * m / (1 - rate)     eval  y = x
        textbook:            train  y = x * m                  eval  y = x * (1 - rate)

    Both keep the expected activation equal between training and evaluation; the
    inverted form moves the scaling to training so evaluation is the identity.

    Args:
      key: PRNG key for the mask; required when ``train`` and ``rate > 0``.
      x: input, of a floating dtype (its dtype is kept).
      rate: drop probability in ``[0, 1)``; a static Python number.
      train: training mode (random mask) or evaluation mode (deterministic).
      inverted: inverted (scale at train) or textbook (scale at eval) dropout.

    Returns:
      ``(y, mask)``; ``mask`` has ``x``'s shape and dtype with entries in {0, 1} (all ones in
      evaluation mode or when ``rate == 0``). Pass it to :func:`dropout_backward`. The mask
      depends on ``key`` and the shape only (not on ``x``'s dtype or the x64 mode).

    Raises:
      ValueError: ``rate`` outside ``[0, 1)`` or not static, no ``key`` in training, or
        (inverted, training) a scale ``1 / (1 - rate)`` that overflows ``x``'s dtype
        (float16 above a rate of ~0.99998).
      TypeError: ``x`` has an integer or boolean dtype (in every mode: ``x * m / (1 -
        rate)`` is not an integer, and evaluation must not accept what training refuses).

    Reference:
      N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov, "Dropout: a
      simple way to prevent neural networks from overfitting", JMLR 15, 2014.
    """
    r = _check_rate(rate, "dropout_forward")
    _check_floating(x, "dropout_forward", "x")
    if not train or r == 0.0:
        mask = jnp.ones_like(x)
        if not train and not inverted and r > 0.0:
            return x * (1.0 - r), mask
        return x, mask
    if key is None:
        raise ValueError(
            "dropout_forward: key is required when train=True and rate > 0, got key=None"
        )
    # Uniforms drawn in float32 whatever x's dtype and the x64 mode, so the mask depends on
    # the key alone (a float64 reference sees the same units dropped as a float32 run).
    keep = jax.random.uniform(key, x.shape, jnp.float32) < (1.0 - r)
    mask = keep.astype(x.dtype)
    y = x * mask
    if inverted:
        _check_scale(r, x.dtype, "dropout_forward")
        y = y * (1.0 / (1.0 - r))
    return y, mask


def dropout_backward(
    mask: Array,
    grad_out: Array,
    rate: float,
    *,
    train: bool,
    inverted: bool = True,
) -> Array:
    """Vector-Jacobian product of :func:`dropout_forward` (the same mask, so the same units).

    Dropout is linear in ``x`` for a fixed mask, so ``dL/dx`` is ``dL/dy`` times the same
    factor: ``m / (1 - rate)`` (inverted, train), ``m`` (textbook, train), ``1`` (inverted,
    eval), ``1 - rate`` (textbook, eval).

    Args:
      mask: the mask returned by :func:`dropout_forward`.
      grad_out: ``dL/dy``, of a floating dtype.
      rate, train, inverted: as given to :func:`dropout_forward`.

    Returns:
      ``dL/dx`` with ``grad_out``'s shape.

    Raises:
      ValueError: as :func:`dropout_forward` for ``rate``; in training with ``rate > 0``, a
        ``mask`` whose shape is not ``grad_out``'s (a broadcast mask, as variational
        dropout's ``(1, units)``, is refused: pass it broadcast to ``grad_out``'s shape).
      TypeError: ``grad_out`` has an integer or boolean dtype.
    """
    r = _check_rate(rate, "dropout_backward")
    _check_floating(grad_out, "dropout_backward", "grad_out")
    if not train or r == 0.0:
        if not train and not inverted and r > 0.0:
            return grad_out * (1.0 - r)
        return grad_out
    if jnp.shape(mask) != jnp.shape(grad_out):
        # A broadcastable mask, e.g. (1, units), would drop the same units in every row.
        raise ValueError(
            f"dropout_backward: mask must have the shape of grad_out {jnp.shape(grad_out)} "
            f"(the mask dropout_forward returned), got {jnp.shape(mask)}"
        )
    g = grad_out * mask
    if inverted:
        _check_scale(r, grad_out.dtype, "dropout_backward")
        g = g * (1.0 / (1.0 - r))
    return g


# --------------------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchNormCache:
    """What :func:`batch_norm_backward` needs from the forward pass (a pytree).

    Attributes:
      x_hat: the normalized input ``(x - mean) / sqrt(var + eps)``, in the compute dtype
        (at least float32).
      inv_std: ``1 / sqrt(var + eps)`` per feature (batch or running statistics), in the
        compute dtype.
      gamma: the scale parameter used in the forward pass.
      train: whether batch statistics were used (static metadata, not a leaf).
      x_dtype: the dtype of the forward input, that of ``dL/dx`` (static metadata; ``None``
        means ``grad_out``'s dtype).
    """

    x_hat: Array
    inv_std: Array
    gamma: Array
    train: bool
    x_dtype: Any = None


jax.tree_util.register_dataclass(
    BatchNormCache, data_fields=["x_hat", "inv_std", "gamma"], meta_fields=["train", "x_dtype"]
)


def _stats_dtype(*dtypes: Any) -> Any:
    """The dtype batch norm computes (and keeps its running statistics) in: the promotion
    of ``dtypes`` and float32. float16 squares overflow from 256 on (65504 is the largest
    float16) and bfloat16 sums lose digits; float64 stays float64."""
    return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def _store(v: Array, dtype: Any) -> Array:
    """``v`` cast to the running-statistics ``dtype``, saturated at its largest finite value
    when ``dtype`` is narrower than ``v``'s (a float16 state cannot hold a variance of
    1.6e5: it holds 65504, never inf)."""
    if jnp.finfo(dtype).bits < jnp.finfo(v.dtype).bits:
        biggest = float(jnp.finfo(dtype).max)
        v = jnp.clip(v, -biggest, biggest)
    return v.astype(dtype)


def batch_norm_init(
    features: int, dtype: Any = jnp.float32
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Parameters and running statistics of a batch-norm layer over ``features`` units.

    Args:
      features: number of units, an int >= 1.
      dtype: dtype of ``gamma`` and ``beta``.

    Returns:
      ``(params, state)``: ``params = {"gamma": ones, "beta": zeros}`` (trainable) in
      ``dtype`` and ``state = {"mean": zeros, "var": ones}`` (running statistics, not
      trainable) in ``promote_types(dtype, float32)``: float32 for float16/bfloat16 params
      (as Flax keeps its batch statistics), since a feature with std 400 has a running
      variance of 1.6e5, past float16's 65504. Each of shape ``(features,)``.
    """
    features = _size(features, "batch_norm_init", "features")
    params = {"gamma": jnp.ones((features,), dtype), "beta": jnp.zeros((features,), dtype)}
    stats_dtype = _stats_dtype(dtype)
    state = {"mean": jnp.zeros((features,), stats_dtype),
             "var": jnp.ones((features,), stats_dtype)}
    return params, state


def batch_norm_forward(
    params: dict[str, Array],
    state: dict[str, Array],
    x: Array,
    *,
    train: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
) -> tuple[Array, BatchNormCache, dict[str, Array]]:
    """Batch normalization over the batch axis 0 (Ioffe & Szegedy, 2015).

    Training mode, with ``N = x.shape[0]`` and per-feature batch statistics::

        mu    = mean_n x_n
        var   = mean_n (x_n - mu)^2               (biased: divides by N)
        x_hat = (x - mu) / sqrt(var + eps)
        y     = gamma * x_hat + beta
        running_mean <- momentum * running_mean + (1 - momentum) * mu
        running_var  <- momentum * running_var  + (1 - momentum) * var * N / (N - 1)

    The running variance is the *unbiased* estimate (as PyTorch does; for ``N == 1`` the
    biased one, 0, is used). Evaluation mode normalizes with the running statistics,
    ``y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``, and returns the
    state unchanged.

    Dtypes: everything above is computed in the compute dtype, the promotion of ``x``,
    ``params``, ``state`` and float32 (so float16/bfloat16 inputs are normalized in float32:
    in float16, ``(x - mu)^2`` overflows from a std of ~256 on and the output collapsed to
    ``beta``). ``y`` is returned in ``result_type(x, gamma, beta)``, the input dtype when
    the params share it. The new running statistics keep ``state``'s dtype (so the state
    is a stable ``lax.scan`` carry); :func:`batch_norm_init` makes it at least float32. A
    state narrower than the compute dtype (a float16 state built by hand) is saturated:
    a statistic beyond its largest finite value is stored as that value (65504 in
    float16), never as inf; evaluation then normalizes with the saturated value.

    Args:
      params: ``{"gamma", "beta"}`` of shape ``x.shape[1:]``.
      state: ``{"mean", "var"}`` running statistics of the same shape.
      x: input of shape ``(N, features...)``.
      train: batch statistics (and update the running ones) or running statistics.
      momentum: weight of the old running statistic, in ``[0, 1]``.
      eps: added to the variance, > 0.

    Returns:
      ``(y, cache, new_state)``; pass ``cache`` to :func:`batch_norm_backward`.

    Reference:
      S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network Training by
      Reducing Internal Covariate Shift", ICML 2015.
    """
    m = _static_real(momentum, "batch_norm_forward", "momentum", "in [0, 1]")
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"batch_norm_forward: momentum must be in [0, 1], got {momentum!r}")
    eps_value = _static_real(eps, "batch_norm_forward", "eps", "> 0")
    if not 0.0 < eps_value < math.inf:
        raise ValueError(f"batch_norm_forward: eps must be finite and > 0, got {eps!r}")
    eps = eps_value  # a Python float: weakly typed, never promotes float32 statistics
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm_forward: x must have shape (N, features...), got {x.shape}"
        )
    for where, tree in (("params", params), ("state", state)):
        for name in (("gamma", "beta") if where == "params" else ("mean", "var")):
            if jnp.shape(tree[name]) != x.shape[1:]:
                raise ValueError(
                    f"batch_norm_forward: {where}['{name}'] must have shape x.shape[1:] = "
                    f"{x.shape[1:]}, got {jnp.shape(tree[name])}"
                )
    gamma, beta = params["gamma"], params["beta"]
    out_dtype = jnp.result_type(x, gamma, beta)
    cdt = _stats_dtype(out_dtype, state["mean"], state["var"])
    xc = x.astype(cdt)
    if train:
        n = x.shape[0]
        mean = jnp.mean(xc, axis=0)
        centered = xc - _per_unit(mean, xc)
        var = jnp.mean(centered * centered, axis=0)
        inv_std = jax.lax.rsqrt(var + eps)
        x_hat = centered * _per_unit(inv_std, xc)
        unbias = n / (n - 1) if n > 1 else 1.0
        mean_sg = jax.lax.stop_gradient(mean)
        var_sg = jax.lax.stop_gradient(var)
        new_state = {
            "mean": _store(m * state["mean"].astype(cdt) + (1.0 - m) * mean_sg,
                           state["mean"].dtype),
            "var": _store(m * state["var"].astype(cdt) + ((1.0 - m) * unbias) * var_sg,
                          state["var"].dtype),
        }
    else:
        inv_std = jax.lax.rsqrt(state["var"].astype(cdt) + eps)
        x_hat = (xc - _per_unit(state["mean"].astype(cdt), xc)) * _per_unit(inv_std, xc)
        new_state = state
    y = _per_unit(gamma.astype(cdt), x_hat) * x_hat + _per_unit(beta.astype(cdt), x_hat)
    cache = BatchNormCache(x_hat=x_hat, inv_std=inv_std, gamma=gamma, train=bool(train),
                           x_dtype=jnp.dtype(x.dtype))
    return y.astype(out_dtype), cache, new_state


def batch_norm_backward(
    cache: BatchNormCache, grad_out: Array
) -> tuple[dict[str, Array], Array]:
    """Vector-Jacobian product of :func:`batch_norm_forward` (the full one).

    With ``g = dL/dy``, ``N`` the batch size and sums over the batch axis::

        dL/dbeta  = sum_n g_n
        dL/dgamma = sum_n g_n * x_hat_n
        dL/dx_hat = g * gamma

    Training mode: ``mu`` and ``var`` depend on every example, and differentiating through
    both gives (Ioffe & Szegedy 2015, Sec. 3, collected into one line)::

        dL/dx = inv_std / N * (N * dL/dx_hat - sum_n dL/dx_hat_n
                               - x_hat * sum_n (dL/dx_hat_n * x_hat_n))

    Evaluation mode: the running statistics are constants, so ``dL/dx = dL/dx_hat * inv_std``.

    Computed in the dtype of ``cache.x_hat`` (at least float32, as the forward pass);
    ``dL/dx`` is returned in the forward input's dtype and the parameter gradients in
    ``gamma``'s dtype, as ``jax.vjp`` of the forward pass returns them.

    Args:
      cache: from :func:`batch_norm_forward`.
      grad_out: ``dL/dy``, shape of the forward input.

    Returns:
      ``({"gamma", "beta"}, dL/dx)``.

    Raises:
      ValueError: ``grad_out`` does not have the forward input's shape.
    """
    x_hat, inv_std = cache.x_hat, cache.inv_std
    if jnp.shape(grad_out) != x_hat.shape:
        # A (1, F) or (F,) grad_out broadcast against x_hat and gave a wrong dL/dx (with the
        # batch size read from grad_out) instead of an error.
        raise ValueError(
            f"batch_norm_backward: grad_out must have the shape of the forward input "
            f"{x_hat.shape}, got {jnp.shape(grad_out)}"
        )
    cdt = _stats_dtype(x_hat, inv_std, grad_out, cache.gamma)
    x_hat, inv_std = x_hat.astype(cdt), inv_std.astype(cdt)
    g = grad_out.astype(cdt)
    p_dtype = cache.gamma.dtype
    grads = {
        "gamma": jnp.sum(g * x_hat, axis=0).astype(p_dtype),
        "beta": jnp.sum(g, axis=0).astype(p_dtype),
    }
    g_hat = g * _per_unit(cache.gamma.astype(cdt), g)
    if cache.train:
        n = grad_out.shape[0]
        sum_g = jnp.sum(g_hat, axis=0)
        sum_gx = jnp.sum(g_hat * x_hat, axis=0)
        grad_x = _per_unit(inv_std * (1.0 / n), g_hat) * (
            n * g_hat - _per_unit(sum_g, g_hat) - x_hat * _per_unit(sum_gx, g_hat))
    else:
        grad_x = g_hat * _per_unit(inv_std, g_hat)
    x_dtype = grad_out.dtype if cache.x_dtype is None else cache.x_dtype
    return grads, grad_x.astype(x_dtype)
