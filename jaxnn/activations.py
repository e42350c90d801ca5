"""Activation functions, each forward function beside its hand-written derivative.

Contract.

* Elementwise activations are ``name(x, <scalar params with defaults>) -> y`` with
  ``y.shape == x.shape``; their twins ``name_grad(x, <same params>) -> dy/dx`` return the
  elementwise derivative (the diagonal of the Jacobian) with the same shape and dtype.
  The derivatives are written by hand from the formulas below, never with ``jax.grad``;
  the test suite checks each one against ``jax.grad`` and central differences.
* ``prelu(x, alpha)`` has ``prelu_grad`` (dy/dx) and ``prelu_grad_alpha`` (dy/dalpha).
  ``maxout``, ``softmax`` and ``log_softmax`` are not elementwise: they come with
  vector-Jacobian products ``maxout_vjp``, ``softmax_vjp`` and ``log_softmax_vjp``.
* Registry: :func:`names`, :func:`get`, :func:`get_grad`, :func:`is_elementwise`,
  :func:`serialize`. Every registered name, aliases included, is a function of this
  module (``get("relu") is relu``, ``get("silu") is silu``).

Conventions.

* Dtypes: floating inputs keep their dtype (float32 in, float32 out, also for the
  derivatives); scalar parameters are cast to the input's dtype. Integer or boolean
  inputs are first converted to the default floating dtype; complex inputs raise
  ``TypeError`` (kinks, ``|x|`` and the sign tests are real-only).
* Kinks: where a function is not differentiable the derivative takes a documented
  one-sided value, chosen so that ``jax.grad`` of the forward function as written here
  returns the same value (except for maxout ties, where ``jax.vjp`` splits the cotangent
  evenly between the tied pieces):

  ==================  ====================  ==================================
  function            kink(s)               derivative returned there
  ==================  ====================  ==================================
  step                0                     0 (step' = 0 everywhere)
  relu                0                     0
  relu6               0 and 6               0 at both
  hard_sigmoid        -3 and 3              0 at both
  leaky_relu          0                     negative_slope
  prelu               0                     alpha (and dy/dalpha = 0)
  elu                 0                     alpha (left derivative; 1 if alpha=1)
  selu                0                     scale * alpha ~ 1.7581
  maxout              ties between pieces   all of it to the first maximum
  ==================  ====================  ==================================

* NaN in, NaN out: a NaN input gives a NaN value and a NaN derivative (piecewise
  functions do not silently map NaN to a constant), so divergence stays visible.
* Stability: sigmoid, tanh, softplus, softmax, log_softmax, swish, silu, mish, elu, selu
  and gelu (both forms) give finite values and finite derivatives for any finite input
  (e.g. +-1000 or -1e4 in float32, also where ``beta * x`` or ``x^3`` would overflow, as
  in float16); sigmoid' and tanh' keep their relative precision in saturation (no
  ``1 - tanh^2`` rounding to 0). softmax and log_softmax subtract the maximum along
  ``axis``. With non-finite logits they follow ``jax.nn``: ``-inf`` beside finite
  logits masks a class, while a ``+inf`` logit or an all ``-inf`` slice makes the whole
  slice NaN.
  ``exponential`` overflows to ``inf`` by nature (x > ~88.7 in float32).
* Infinities: at ``x = +-inf`` every elementwise function and derivative is its limit
  (``gelu'(+inf) = 1``, ``gelu(-inf) = swish(-inf) = mish(-inf) = 0``, ``softsign(+inf)
  = 1``, ``exponential'(+inf) = inf``), never the ``inf * 0 = NaN`` of the formulas
  (one exception: ``leaky_relu(-inf)`` with ``negative_slope=0``, i.e. ``0 * -inf``).

References:
  * V. Nair and G. E. Hinton, "Rectified linear units improve restricted Boltzmann
    machines", ICML 2010 (ReLU).
  * A. L. Maas, A. Y. Hannun and A. Y. Ng, "Rectifier nonlinearities improve neural
    network acoustic models", ICML 2013 (leaky ReLU).
  * K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers: surpassing
    human-level performance on ImageNet classification", ICCV 2015 (PReLU).
  * I. J. Goodfellow, D. Warde-Farley, M. Mirza, A. Courville and Y. Bengio, "Maxout
    networks", ICML 2013.
  * D.-A. Clevert, T. Unterthiner and S. Hochreiter, "Fast and accurate deep network
    learning by exponential linear units (ELUs)", ICLR 2016.
  * G. Klambauer, T. Unterthiner, A. Mayr and S. Hochreiter, "Self-normalizing neural
    networks", NeurIPS 2017 (SELU).
  * D. Hendrycks and K. Gimpel, "Gaussian error linear units (GELUs)", arXiv:1606.08415,
    2016.
  * P. Ramachandran, B. Zoph and Q. V. Le, "Searching for activation functions",
    arXiv:1710.05941, 2017 (swish).
  * S. Elfwing, E. Uchibe and K. Doya, "Sigmoid-weighted linear units for neural network
    function approximation in reinforcement learning", Neural Networks 107, 2018 (SiLU).
  * D. Misra, "Mish: a self regularized non-monotonic activation function",
    arXiv:1908.08681, 2019.
  * A. Krizhevsky, "Convolutional deep belief networks on CIFAR-10", 2010 (ReLU6).
  * A. Howard et al., "Searching for MobileNetV3", ICCV 2019 (hard sigmoid as
    ``relu6(x + 3) / 6``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn._static import float_array, static_scalar

__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "elu",
    "elu_grad",
    "exponential",
    "exponential_grad",
    "gelu",
    "gelu_grad",
    "gelu_tanh",
    "gelu_tanh_grad",
    "get",
    "get_grad",
    "hard_sigmoid",
    "hard_sigmoid_grad",
    "identity",
    "identity_grad",
    "is_elementwise",
    "leaky_relu",
    "leaky_relu_grad",
    "linear",
    "linear_grad",
    "log_softmax",
    "log_softmax_vjp",
    "maxout",
    "maxout_vjp",
    "mish",
    "mish_grad",
    "names",
    "prelu",
    "prelu_grad",
    "prelu_grad_alpha",
    "relu",
    "relu6",
    "relu6_grad",
    "relu_grad",
    "selu",
    "selu_grad",
    "serialize",
    "sigmoid",
    "sigmoid_grad",
    "silu",
    "silu_grad",
    "softmax",
    "softmax_vjp",
    "softplus",
    "softplus_grad",
    "softsign",
    "softsign_grad",
    "step",
    "step_grad",
    "swish",
    "swish_grad",
    "tanh",
    "tanh_grad",
]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Axis = int | tuple[int, ...]

# Published SELU constants (Klambauer et al., 2017), to the digits given there.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
_GELU_TANH_CLIP = 30.0


# ----------------------------------------------------------------------------- helpers


def _as_float(x: ArrayLike, fn: str) -> Array:
    """``x`` as an array of floating dtype (its own if floating, else the default).

    Complex inputs are refused: the kinks, ``|x|`` and the sign tests below are real-only
    (``tanh_grad(1+1j)`` came back real, ``relu(1+1j)`` as ``1+1j``).
    """
    return float_array(x, f"jaxnn.activations.{fn}", "x",
                       "; pass the real part or the modulus explicitly")


def _cast(value: ArrayLike, x: Array) -> Array:
    """A parameter cast to ``x``'s dtype, so it never promotes float32 inputs."""
    return jnp.asarray(value, dtype=x.dtype)


def _keep_nan(g: Array, x: Array) -> Array:
    """``g`` with NaN wherever ``x`` is NaN (for piecewise-constant derivatives)."""
    return jnp.where(jnp.isnan(x), x, g)


def _indicator(cond: Array, x: Array) -> Array:
    """``1`` where ``cond`` holds, else ``0``, in ``x``'s dtype, NaN where ``x`` is NaN."""
    return _keep_nan(cond.astype(x.dtype), x)


# ----------------------------------------------------------------------------- identity / step


def linear(x: ArrayLike) -> Array:
    """Linear (identity) activation.

    ``linear(x) = x``;  ``linear'(x) = 1``.

    Args:
      x: input array.

    Returns:
      ``x`` as a floating array.
    """
    return _as_float(x, "linear")


def linear_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`linear`: ones with the shape and dtype of ``x`` (NaN stays NaN)."""
    x = _as_float(x, "linear_grad")
    return _keep_nan(jnp.ones_like(x), x)


def identity(x: ArrayLike) -> Array:
    """Alias of :func:`linear`: ``identity(x) = x``."""
    return linear(_as_float(x, "identity"))


def identity_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`identity` (alias of :func:`linear_grad`)."""
    return linear_grad(_as_float(x, "identity_grad"))


def step(x: ArrayLike) -> Array:
    """Heaviside step.

    ``step(x) = 1`` if ``x > 0`` else ``0`` (so ``step(0) = 0``).

    Derivative: ``step'(x) = 0`` everywhere, including at 0 (the Dirac delta at the jump
    is ignored, as autodiff does). A network of step units therefore receives no gradient;
    the function is here for perceptron-style experiments and for that lesson.

    Args:
      x: input array.

    Returns:
      An array of zeros and ones with the shape and dtype of ``x`` (NaN stays NaN).
    """
    x = _as_float(x, "step")
    return jnp.where(x > 0, 1.0, jnp.where(x <= 0, 0.0, x))


def step_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`step`: zeros (NaN where ``x`` is NaN)."""
    x = _as_float(x, "step_grad")
    return _keep_nan(jnp.zeros_like(x), x)


# ----------------------------------------------------------------------------- sigmoids


def sigmoid(x: ArrayLike) -> Array:
    """Logistic sigmoid.

    ``sigmoid(x) = 1 / (1 + exp(-x))``;  ``sigmoid'(x) = sigmoid(x) * sigmoid(-x)``
    ``= sigmoid(x) * (1 - sigmoid(x))``.

    Computed with ``lax.logistic``, which never overflows: ``sigmoid(-1000) = 0`` and
    ``sigmoid(1000) = 1`` in float32.

    Args:
      x: input array.

    Returns:
      An array in ``[0, 1]`` with the shape and dtype of ``x``.
    """
    return lax.logistic(_as_float(x, "sigmoid"))


def sigmoid_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`sigmoid`: ``sigmoid(x) * sigmoid(-x)``.

    The form ``sigmoid(x) * sigmoid(-x)`` keeps full relative precision for large
    positive ``x``, where ``1 - sigmoid(x)`` would round to 0.
    """
    x = _as_float(x, "sigmoid_grad")
    return lax.logistic(x) * lax.logistic(-x)


def hard_sigmoid(x: ArrayLike) -> Array:
    """Hard sigmoid, as in ``jax.nn.hard_sigmoid``.

    ``hard_sigmoid(x) = relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1)``.

    Derivative: ``1/6`` for ``-3 < x < 3``, else ``0``; at the kinks ``x = -3`` and
    ``x = 3`` it is ``0`` (inherited from ``relu6'(0) = relu6'(6) = 0``).

    Note that Keras 2 used ``clip(0.2 x + 0.5, 0, 1)`` (slope 1/5); this is the
    ``relu6(x + 3) / 6`` variant used by jax.nn, PyTorch and MobileNetV3.

    Args:
      x: input array.

    Returns:
      An array in ``[0, 1]`` with the shape and dtype of ``x``.
    """
    x = _as_float(x, "hard_sigmoid")
    return relu6(x + 3.0) / 6.0


def hard_sigmoid_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`hard_sigmoid`: ``1/6`` on ``(-3, 3)``, else 0 (0 at +-3)."""
    x = _as_float(x, "hard_sigmoid_grad")
    return _indicator((x > -3.0) & (x < 3.0), x) / 6.0


def tanh(x: ArrayLike) -> Array:
    """Hyperbolic tangent.

    ``tanh(x) = (e^x - e^-x) / (e^x + e^-x)``;  ``tanh'(x) = 1 - tanh(x)^2``.

    Args:
      x: input array.

    Returns:
      An array in ``[-1, 1]`` with the shape and dtype of ``x``.
    """
    return jnp.tanh(_as_float(x, "tanh"))


def tanh_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`tanh`: ``1 - tanh(x)^2 = 4 e / (1 + e)^2`` with ``e = exp(-2|x|)``.

    The second form keeps full relative precision in saturation, where ``tanh(x)^2``
    rounds to 1 (``1 - tanh(x)^2`` is exactly 0 in float32 from ``|x| ~ 9`` on, while the
    derivative is ``8.2e-9`` at ``|x| = 10``).
    """
    e = jnp.exp(-2.0 * jnp.abs(_as_float(x, "tanh_grad")))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


# ----------------------------------------------------------------------------- rectifiers


def relu(x: ArrayLike) -> Array:
    """Rectified linear unit (Nair & Hinton, 2010).

    ``relu(x) = max(x, 0)``.

    Derivative: ``1`` for ``x > 0``, ``0`` for ``x < 0``; convention ``relu'(0) = 0``
    (as ``jax.nn.relu``).

    Args:
      x: input array.

    Returns:
      An array with the shape and dtype of ``x``.
    """
    x = _as_float(x, "relu")
    # `where(x <= 0, 0, x)` rather than `maximum`: NaN propagates and autodiff gives 0 at 0.
    return jnp.where(x <= 0, 0.0, x)


def relu_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`relu`: ``1`` for ``x > 0``, else ``0`` (``relu'(0) = 0``)."""
    x = _as_float(x, "relu_grad")
    return _indicator(x > 0, x)


def relu6(x: ArrayLike) -> Array:
    """ReLU capped at 6 (Krizhevsky, 2010).

    ``relu6(x) = min(max(x, 0), 6)``.

    Derivative: ``1`` for ``0 < x < 6``, else ``0``; conventions
    ``relu6'(0) = relu6'(6) = 0`` (as ``jax.nn.relu6``).

    Args:
      x: input array.

    Returns:
      An array in ``[0, 6]`` with the shape and dtype of ``x``.
    """
    x = _as_float(x, "relu6")
    return jnp.where(x <= 0, 0.0, jnp.where(x >= 6.0, 6.0, x))


def relu6_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`relu6`: ``1`` on ``(0, 6)``, else ``0`` (0 at 0 and 6)."""
    x = _as_float(x, "relu6_grad")
    return _indicator((x > 0) & (x < 6.0), x)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Array:
    """Leaky ReLU (Maas et al., 2013).

    ``leaky_relu(x) = x`` if ``x > 0`` else ``negative_slope * x``.

    Derivative: ``1`` for ``x > 0``, ``negative_slope`` for ``x <= 0``; convention
    ``leaky_relu'(0) = negative_slope``.

    Args:
      x: input array.
      negative_slope: slope for non-positive inputs (0.01 as in jax.nn and PyTorch;
        Keras' ``LeakyReLU`` defaults to 0.3).

    Returns:
      An array with the shape and dtype of ``x``.
    """
    x = _as_float(x, "leaky_relu")
    return jnp.where(x > 0, x, _cast(negative_slope, x) * x)


def leaky_relu_grad(x: ArrayLike, negative_slope: float = 0.01) -> Array:
    """Derivative of :func:`leaky_relu`: ``1`` for ``x > 0``, else ``negative_slope``."""
    x = _as_float(x, "leaky_relu_grad")
    return _keep_nan(jnp.where(x > 0, 1.0, _cast(negative_slope, x)), x)


def _check_prelu(x: Array, alpha: Array, fn: str) -> None:
    try:
        shape = jnp.broadcast_shapes(x.shape, alpha.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"jaxnn.activations.{fn}: alpha must broadcast to the shape of x {x.shape} "
            f"(e.g. shape ({x.shape[-1] if x.ndim else 1},) for one slope per unit, or () "
            f"for a shared slope), got alpha of shape {alpha.shape}"
        )


def prelu(x: ArrayLike, alpha: ArrayLike) -> Array:
    """Parametric ReLU (He et al., 2015): a leaky ReLU whose slope is learned.

    ``prelu(x, a) = x`` if ``x > 0`` else ``a * x``, with ``a`` broadcast against ``x``
    (shape ``(units,)`` for one slope per unit, ``()`` for a shared slope).

    Derivatives (see :func:`prelu_grad` and :func:`prelu_grad_alpha`):
    ``dy/dx = 1`` for ``x > 0`` else ``a``;  ``dy/da = 0`` for ``x > 0`` else ``x``.
    Convention at ``x = 0``: ``dy/dx = a`` and ``dy/da = 0``.

    Args:
      x: input array.
      alpha: slopes, broadcastable to ``x.shape``; cast to ``x``'s dtype.

    Returns:
      An array with the shape and dtype of ``x``.

    Raises:
      ValueError: ``alpha`` does not broadcast to ``x.shape``.
    """
    x = _as_float(x, "prelu")
    a = _cast(alpha, x)
    _check_prelu(x, a, "prelu")
    return jnp.where(x > 0, x, jnp.broadcast_to(a, x.shape) * x)


def prelu_grad(x: ArrayLike, alpha: ArrayLike) -> Array:
    """``dy/dx`` of :func:`prelu`, elementwise with ``x``'s shape: 1 if ``x > 0`` else alpha."""
    x = _as_float(x, "prelu_grad")
    a = _cast(alpha, x)
    _check_prelu(x, a, "prelu_grad")
    return _keep_nan(jnp.where(x > 0, 1.0, jnp.broadcast_to(a, x.shape)), x)


def prelu_grad_alpha(x: ArrayLike, alpha: ArrayLike) -> Array:
    """``dy/dalpha`` of :func:`prelu`, elementwise with ``x``'s shape: 0 if ``x > 0`` else x.

    The caller reduces it over the axes that ``alpha`` was broadcast along: for
    ``alpha`` of shape ``(units,)`` and ``x`` of shape ``(batch, units)``, the gradient
    of a loss is ``sum(g * prelu_grad_alpha(x, alpha), axis=0)`` where ``g = dL/dy``.
    """
    x = _as_float(x, "prelu_grad_alpha")
    a = _cast(alpha, x)
    _check_prelu(x, a, "prelu_grad_alpha")
    return jnp.where(x > 0, 0.0, x)


# ----------------------------------------------------------------------------- exponential family


def elu(x: ArrayLike, alpha: float = 1.0) -> Array:
    """Exponential linear unit (Clevert et al., 2016).

    ``elu(x) = x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``.

    Derivative: ``1`` for ``x > 0``, ``alpha * exp(x) = elu(x) + alpha`` for ``x <= 0``;
    convention ``elu'(0) = alpha`` (the left derivative; ELU is continuously
    differentiable at 0 only when ``alpha = 1``).

    Stable: the exponential is only evaluated on non-positive arguments (``expm1`` for
    precision near 0), so neither the value nor the derivative overflows.

    Args:
      x: input array.
      alpha: the negative saturation value is ``-alpha``.

    Returns:
      An array with the shape and dtype of ``x``.
    """
    x = _as_float(x, "elu")
    # Clamp the unused branch to 0: exp(1000) = inf there would poison autodiff (inf * 0).
    neg = jnp.where(x > 0, 0.0, x)
    return jnp.where(x > 0, x, _cast(alpha, x) * jnp.expm1(neg))


def elu_grad(x: ArrayLike, alpha: float = 1.0) -> Array:
    """Derivative of :func:`elu`: 1 for ``x > 0`` else ``alpha * exp(x)`` (``alpha`` at 0)."""
    x = _as_float(x, "elu_grad")
    neg = jnp.where(x > 0, 0.0, x)
    return jnp.where(x > 0, 1.0, _cast(alpha, x) * jnp.exp(neg))


def selu(x: ArrayLike) -> Array:
    """Scaled exponential linear unit (Klambauer et al., 2017).

    ``selu(x) = scale * x`` if ``x > 0`` else ``scale * alpha * (exp(x) - 1)``, with the
    published constants ``alpha = 1.6732632423543772848170429916717`` and
    ``scale = 1.0507009873554804934193349852946`` (chosen so that zero-mean,
    unit-variance inputs give zero-mean, unit-variance outputs).

    Derivative: ``scale`` for ``x > 0``, ``scale * alpha * exp(x)`` for ``x <= 0``;
    convention ``selu'(0) = scale * alpha ~ 1.7581`` (the left derivative).

    Args:
      x: input array.

    Returns:
      An array with the shape and dtype of ``x``.
    """
    return SELU_SCALE * elu(_as_float(x, "selu"), SELU_ALPHA)


def selu_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`selu`: ``scale`` for ``x > 0`` else ``scale * alpha * exp(x)``."""
    return SELU_SCALE * elu_grad(_as_float(x, "selu_grad"), SELU_ALPHA)


def exponential(x: ArrayLike) -> Array:
    """Exponential activation: ``exponential(x) = exp(x)``; derivative ``exp(x)``.

    Overflows to ``inf`` for large inputs (``x > ~88.7`` in float32), by nature.
    """
    return jnp.exp(_as_float(x, "exponential"))


def exponential_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`exponential`: ``exp(x)``."""
    return jnp.exp(_as_float(x, "exponential_grad"))


# ----------------------------------------------------------------------------- smooth rectifiers


def softplus(x: ArrayLike) -> Array:
    """Softplus, a smooth ReLU.

    ``softplus(x) = log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))``
    so that it never overflows (``softplus(1000) = 1000``, ``softplus(-1000) = 0``).

    Derivative: ``softplus'(x) = sigmoid(x)``.

    Args:
      x: input array.

    Returns:
      A non-negative array with the shape and dtype of ``x``.
    """
    x = _as_float(x, "softplus")
    # -|x| written as min(x, -x): autodiff splits the tie at 0 evenly (like the max), so
    # jax.grad of this expression gives the true derivative 1/2 at 0 (with -abs it gives 0).
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(jnp.minimum(x, -x)))


def softplus_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`softplus`: ``sigmoid(x)``."""
    return lax.logistic(_as_float(x, "softplus_grad"))


def softsign(x: ArrayLike) -> Array:
    """Softsign: ``softsign(x) = x / (1 + |x|)``; derivative ``1 / (1 + |x|)^2``.

    Differentiable everywhere (the derivative is 1 at 0 from both sides). At ``x = +-inf``
    it is the limit ``+-1`` (``inf / inf`` would be nan, as in ``jax.nn.soft_sign``).
    """
    x = _as_float(x, "softsign")
    return jnp.where(jnp.isinf(x), jnp.sign(x), x / (1.0 + jnp.abs(x)))


def softsign_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`softsign`: ``1 / (1 + |x|)^2``."""
    x = _as_float(x, "softsign_grad")
    # (1 / d)^2, not 1 / d^2: d^2 overflows float16 from |x| = 255 on (the derivative then
    # read 0 while ~1e-5 is representable).
    r = 1.0 / (1.0 + jnp.abs(x))
    return r * r


def swish(x: ArrayLike, beta: float = 1.0) -> Array:
    """Swish (Ramachandran et al., 2017).

    ``swish(x) = x * sigmoid(beta * x)``; ``beta = 1`` is SiLU (:func:`silu`),
    ``beta = 0`` is ``x / 2`` and ``beta -> inf`` tends to ReLU.

    Derivative, with ``s = sigmoid(beta * x)``:
    ``swish'(x) = s + beta * x * s * (1 - s) = s * (1 + beta * x * sigmoid(-beta * x))``.

    Stable: finite value and derivative for any finite input.

    Args:
      x: input array.
      beta: the sigmoid's inverse temperature (a fixed hyper-parameter here).

    Returns:
      An array with the shape and dtype of ``x``.
    """
    x = _as_float(x, "swish")
    s = lax.logistic(_swish_bx(x, _cast(beta, x)))
    y = x * s
    # inf * 0 at x = +-inf is NaN where the limit is s = 0; a NaN x stays NaN.
    return jnp.where(jnp.isnan(y) & jnp.isinf(x), s, y)


def _swish_bx(x: Array, b: Array) -> Array:
    """``beta * x``, but 0 where that is ``0 * inf`` (``beta = 0`` at ``x = +-inf``: swish
    is ``x / 2`` there). A NaN ``x`` stays NaN, and ``d/dbeta`` is ``x`` everywhere else
    (a trainable ``beta`` starting at 0 moves)."""
    bx = b * x
    return jnp.where(jnp.isnan(bx) & jnp.isinf(x), 0.0, bx)


def swish_grad(x: ArrayLike, beta: float = 1.0) -> Array:
    """Derivative of :func:`swish`: ``s * (1 + beta * x * sigmoid(-beta * x))``.

    At ``x = +-inf`` it is its limit ``s`` (1, 0, or 1/2 for ``beta = 0``), not
    ``inf * 0 = NaN``."""
    x = _as_float(x, "swish_grad")
    b = _cast(beta, x)
    bx = _swish_bx(x, b)
    s = lax.logistic(bx)
    # x * (beta * s * sigmoid(-bx)), not bx * ...: beta * x can overflow to +-inf for a
    # finite x (float16, or beta > 1), where s * sigmoid(-bx) is 0 and inf * 0 is NaN.
    g = s + x * (b * (s * lax.logistic(-bx)))
    # At x = +-inf the second term is still inf * 0 = NaN; the derivative tends to s. A NaN
    # x stays NaN.
    return jnp.where(jnp.isnan(g) & jnp.isinf(x), s, g)


def silu(x: ArrayLike) -> Array:
    """Sigmoid-weighted linear unit (Elfwing et al., 2018): ``silu(x) = x * sigmoid(x)``.

    The same function as :func:`swish` with ``beta = 1`` (an alias with no parameter).
    Derivative: ``sigmoid(x) * (1 + x * sigmoid(-x))``.
    """
    return swish(_as_float(x, "silu"), 1.0)


def silu_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`silu`: ``sigmoid(x) * (1 + x * sigmoid(-x))``."""
    return swish_grad(_as_float(x, "silu_grad"), 1.0)


def mish(x: ArrayLike) -> Array:
    """Mish (Misra, 2019): ``mish(x) = x * tanh(softplus(x))``.

    Derivative, with ``t = tanh(softplus(x))``:
    ``mish'(x) = t + x * (1 - t^2) * sigmoid(x)``.

    Stable: uses the overflow-free :func:`softplus`; finite value and derivative for any
    finite input.

    Args:
      x: input array.

    Returns:
      An array with the shape and dtype of ``x``.
    """
    x = _as_float(x, "mish")
    # mish(-inf) is -inf * 0 = NaN as written; its limit is 0.
    return jnp.where(x == -jnp.inf, 0.0, x * jnp.tanh(softplus(x)))


def mish_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`mish`: ``t + x * (1 - t^2) * sigmoid(x)``, ``t = tanh(softplus(x))``."""
    x = _as_float(x, "mish_grad")
    t = jnp.tanh(softplus(x))
    # At +-inf the second term is inf * 0 = NaN; the derivative tends to t (1 or 0).
    return jnp.where(jnp.isinf(x), t, t + x * (1.0 - t * t) * lax.logistic(x))


def gelu(x: ArrayLike, approximate: bool = False) -> Array:
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016).

    Exact form (default): ``gelu(x) = x * Phi(x)`` with ``Phi`` the standard normal CDF,
    ``Phi(x) = erfc(-x / sqrt(2)) / 2`` (``erfc`` keeps precision in the left tail).
    Derivative: ``gelu'(x) = Phi(x) + x * phi(x)``, ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``.

    ``approximate=True`` uses the paper's tanh approximation,
    ``gelu(x) = x/2 * (1 + tanh(u)) = x * sigmoid(2u)``,
    ``u = sqrt(2/pi) * (x + 0.044715 x^3)``, with derivative
    ``sigmoid(2u) + x * sigmoid(2u) * sigmoid(-2u) * 2 sqrt(2/pi) * (1 + 3 * 0.044715 x^2)``.
    (The registry also names it ``"gelu_tanh"``.)

    Note: ``jax.nn.gelu`` defaults to ``approximate=True``; this function defaults to the
    exact form, like PyTorch and Keras.

    Args:
      x: input array.
      approximate: use the tanh approximation (a Python bool).

    Returns:
      An array with the shape and dtype of ``x``.
    """
    _check_value("gelu", "approximate", approximate, "gelu")
    x = _as_float(x, "gelu")
    # gelu(-inf) is -inf * 0 = NaN as written (both forms); its limit is 0.
    if approximate:
        y = x * lax.logistic(2.0 * _gelu_u(_gelu_clip(x)))
    else:
        y = 0.5 * x * lax.erfc(-_SQRT_HALF * x)
    return jnp.where(x == -jnp.inf, 0.0, y)


def _gelu_clip(x: Array) -> Array:
    """``x`` clipped to ``[-30, 30]`` for the tanh form's ``u``: there ``sigmoid(2u)`` is
    already exactly 0 or 1 in every float dtype (``|2u| > 1900``), and the clip keeps
    ``x^3`` and ``x^2`` finite (they overflow float16 from ``|x| ~ 41`` and ``~ 256``), so
    the derivative is never ``inf * 0 = NaN`` for a finite ``x``."""
    return jnp.clip(x, -_GELU_TANH_CLIP, _GELU_TANH_CLIP)


def _gelu_u(x: Array) -> Array:
    return _SQRT_2_OVER_PI * (x + _GELU_CUBIC * (x * x * x))


def gelu_grad(x: ArrayLike, approximate: bool = False) -> Array:
    """Derivative of :func:`gelu` (exact: ``Phi(x) + x phi(x)``; see :func:`gelu`)."""
    _check_value("gelu", "approximate", approximate, "gelu_grad")
    x = _as_float(x, "gelu_grad")
    if approximate:
        xc = _gelu_clip(x)
        two_u = 2.0 * _gelu_u(xc)
        du = 2.0 * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * (xc * xc))
        s = lax.logistic(two_u)
        # xc, not x, in the second term: for |x| >= 30, s * sigmoid(-2u) is exactly 0 in
        # every float dtype, so both give the same (signed) 0 for a finite x, while x = +-inf
        # gave inf * 0 = NaN where the derivative tends to s (1 or 0).
        return s + xc * s * lax.logistic(-two_u) * du
    cdf = 0.5 * lax.erfc(-_SQRT_HALF * x)
    pdf = _INV_SQRT_2PI * jnp.exp(-0.5 * (x * x))
    return jnp.where(jnp.isinf(x), cdf, cdf + x * pdf)  # x * pdf -> 0 at +-inf


def gelu_tanh(x: ArrayLike) -> Array:
    """GELU with the tanh approximation: ``gelu(x, approximate=True)``."""
    return gelu(_as_float(x, "gelu_tanh"), approximate=True)


def gelu_tanh_grad(x: ArrayLike) -> Array:
    """Derivative of :func:`gelu_tanh`: ``gelu_grad(x, approximate=True)``."""
    return gelu_grad(_as_float(x, "gelu_tanh_grad"), approximate=True)


# ----------------------------------------------------------------------------- maxout


def _num_pieces(num_pieces: Any, fn: str) -> int:
    """``num_pieces`` as a Python int >= 1: an int, a numpy int or a concrete 0-d integer
    array (it fixes the output shape, so a traced value is refused by name)."""
    where = f"jaxnn.activations.{fn}"
    value = static_scalar(num_pieces, where, "num_pieces", expected="int",
                          reason="it sets the output shape")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: num_pieces must be an int >= 1, got {num_pieces!r}")
    return int(value)


def _check_maxout(x: Array, num_pieces: Any, fn: str) -> int:
    k = _num_pieces(num_pieces, fn)
    if x.ndim < 1 or x.shape[-1] % k:
        last = x.shape[-1] if x.ndim else "none (x is a scalar)"
        raise ValueError(
            f"jaxnn.activations.{fn}: the last axis of x must have size units * num_pieces, "
            f"divisible by num_pieces={k}; got x of shape {x.shape} (last axis: {last})"
        )
    return k


def maxout(x: ArrayLike, num_pieces: int) -> Array:
    """Maxout (Goodfellow et al., 2013): the maximum over groups of ``num_pieces`` units.

    The last axis, of size ``units * num_pieces``, is read as ``(units, num_pieces)``
    with the piece index fastest (units ``j`` uses entries
    ``j * num_pieces ... j * num_pieces + num_pieces - 1``)::

        maxout(x)[..., j] = max_p x[..., j * num_pieces + p]

    Derivative (see :func:`maxout_vjp`): ``1`` for the arg-max piece of each group and
    ``0`` for the others; on ties the first maximal piece (lowest ``p``) gets it all. A
    group containing a NaN has the value NaN and NaN derivatives for all of its pieces.

    Args:
      x: input of shape ``(..., units * num_pieces)``.
      num_pieces: pieces per unit, an int >= 1 (1 gives the identity).

    Returns:
      An array of shape ``(..., units)`` and ``x``'s dtype.

    Raises:
      ValueError: ``num_pieces`` is not an int >= 1, or the last axis of ``x`` is not
        divisible by it.
    """
    x = _as_float(x, "maxout")
    k = _check_maxout(x, num_pieces, "maxout")
    return jnp.max(x.reshape(*x.shape[:-1], x.shape[-1] // k, k), axis=-1)


def maxout_vjp(x: ArrayLike, cotangent: ArrayLike, num_pieces: int) -> Array:
    """Vector-Jacobian product of :func:`maxout`: ``dL/dx`` from ``dL/dy``.

    ``dx[..., j * num_pieces + p] = cotangent[..., j]`` if ``p`` is the first arg-max of
    group ``j``, else ``0``. (``jax.vjp`` of a max splits the cotangent evenly between
    tied pieces instead; the two agree whenever the maximum is unique.) A group that
    contains a NaN gets NaN in all of its pieces, whatever the cotangent, as with
    ``jax.vjp`` run op by op (also under ``jit``, where XLA turns the product in
    ``jax.vjp`` of a max into a select and gives 0 there instead).

    Args:
      x: the input given to :func:`maxout`, shape ``(..., units * num_pieces)``.
      cotangent: ``dL/dy``, shape ``(..., units)``; cast to ``x``'s dtype.
      num_pieces: as for :func:`maxout`.

    Returns:
      ``dL/dx`` with the shape and dtype of ``x``.

    Raises:
      ValueError: bad ``num_pieces`` or ``cotangent`` of the wrong shape.
    """
    x = _as_float(x, "maxout_vjp")
    k = _check_maxout(x, num_pieces, "maxout_vjp")
    g = _cast(cotangent, x)
    units = x.shape[-1] // k
    expected = (*x.shape[:-1], units)
    if g.shape != expected:
        raise ValueError(
            f"jaxnn.activations.maxout_vjp: cotangent must have the shape of maxout's output "
            f"{expected}, got {g.shape}"
        )
    groups = x.reshape(*expected, k)
    first_max = jnp.argmax(groups, axis=-1)
    mask = (jnp.arange(k).reshape((1,) * first_max.ndim + (k,))
            == first_max[..., None]).astype(x.dtype)
    dx = mask * g[..., None]
    # argmax takes a NaN for the maximum, which would give a finite derivative; jax.vjp of
    # the max finds no piece equal to the NaN maximum and divides by that count of 0.
    dx = jnp.where(jnp.any(jnp.isnan(groups), axis=-1, keepdims=True), jnp.nan, dx)
    return dx.reshape(x.shape)


# ----------------------------------------------------------------------------- softmax


def _shifted(x: Array, axis: Axis) -> Array:
    """``x - max(x, axis)``; the shift is a constant for autodiff (softmax ignores it)."""
    # initial=-inf: an empty slice (a zero-length axis) has no maximum; it is shifted by 0
    # and gives an empty result, as in jax.nn.
    m = jnp.max(x, axis=axis, keepdims=True, initial=-jnp.inf)
    # A +inf maximum is kept: inf - inf makes the whole slice NaN, as in jax.nn (shifting by
    # 0 instead gave [nan, 0, 0]). An all -inf slice is NaN either way (0 / 0 and
    # log 0 - log 0); shifting it by 0 just avoids -inf - -inf.
    m = jnp.where(m == -jnp.inf, 0.0, m)
    return x - lax.stop_gradient(m)


def softmax(x: ArrayLike, axis: Axis = -1) -> Array:
    """Softmax along ``axis``.

    ``softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)`` with ``m = max_j x_j``: the shift
    leaves the value unchanged and keeps every exponential in ``(0, 1]``, so nothing
    overflows (logits of +-1000 or -1e4 are fine in float32).

    Non-finite logits, as ``jax.nn.softmax``: a ``-inf`` logit beside finite ones gets
    probability 0 (masking); a slice with a ``+inf`` logit, a NaN, or only ``-inf``
    logits is NaN throughout (``softmax([inf, 0, 0]) = [nan, nan, nan]``), and so is its
    derivative.

    Jacobian: ``ds_i/dx_j = s_i * (delta_ij - s_j)``; see :func:`softmax_vjp`.

    Args:
      x: input array.
      axis: axis or tuple of axes to normalize over.

    Returns:
      An array with the shape and dtype of ``x``, non-negative, summing to 1 over ``axis``.
    """
    _check_value("softmax", "axis", axis, "softmax")
    z = _shifted(_as_float(x, "softmax"), axis)
    e = jnp.exp(z)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def softmax_vjp(x: ArrayLike, cotangent: ArrayLike, axis: Axis = -1) -> Array:
    """Vector-Jacobian product of :func:`softmax`.

    With ``s = softmax(x, axis)`` and ``g = dL/ds``:
    ``dL/dx = s * (g - sum(g * s, axis))`` (the sum broadcast back over ``axis``).

    Args:
      x: the input given to :func:`softmax`.
      cotangent: ``dL/ds``, the shape of ``x``; cast to ``x``'s dtype.
      axis: as for :func:`softmax`.

    Returns:
      ``dL/dx`` with the shape and dtype of ``x``.
    """
    _check_value("softmax", "axis", axis, "softmax_vjp")
    x = _as_float(x, "softmax_vjp")
    g = _check_cotangent(x, cotangent, "softmax_vjp")
    s = softmax(x, axis)
    return s * (g - jnp.sum(g * s, axis=axis, keepdims=True))


def log_softmax(x: ArrayLike, axis: Axis = -1) -> Array:
    """Log-softmax along ``axis``.

    ``log_softmax(x)_i = (x_i - m) - log(sum_j exp(x_j - m))`` with ``m = max_j x_j``:
    stable for any finite logits (no ``log(0)`` for very negative ones: the result for
    logit ``-1e4`` next to ``0`` is ``-1e4``, not ``-inf``).

    Non-finite logits, as ``jax.nn.log_softmax``: a ``-inf`` logit beside finite ones
    gives ``-inf``; a slice with a ``+inf`` logit, a NaN, or only ``-inf`` logits is NaN
    throughout, and so is its derivative.

    Jacobian: ``d log s_i / dx_j = delta_ij - s_j``; see :func:`log_softmax_vjp`.

    Args:
      x: input array.
      axis: axis or tuple of axes to normalize over.

    Returns:
      An array with the shape and dtype of ``x``.
    """
    _check_value("log_softmax", "axis", axis, "log_softmax")
    z = _shifted(_as_float(x, "log_softmax"), axis)
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))


def log_softmax_vjp(x: ArrayLike, cotangent: ArrayLike, axis: Axis = -1) -> Array:
    """Vector-Jacobian product of :func:`log_softmax`.

    With ``g = dL/d log_softmax(x)``: ``dL/dx = g - softmax(x) * sum(g, axis)``.

    Args:
      x: the input given to :func:`log_softmax`.
      cotangent: ``dL/dy``, the shape of ``x``; cast to ``x``'s dtype.
      axis: as for :func:`log_softmax`.

    Returns:
      ``dL/dx`` with the shape and dtype of ``x``.
    """
    _check_value("log_softmax", "axis", axis, "log_softmax_vjp")
    x = _as_float(x, "log_softmax_vjp")
    g = _check_cotangent(x, cotangent, "log_softmax_vjp")
    return g - softmax(x, axis) * jnp.sum(g, axis=axis, keepdims=True)


def _check_cotangent(x: Array, cotangent: ArrayLike, fn: str) -> Array:
    g = _cast(cotangent, x)
    if g.shape != x.shape:
        raise ValueError(
            f"jaxnn.activations.{fn}: cotangent must have the shape of x {x.shape}, "
            f"got {g.shape}"
        )
    return g


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class _Entry:
    forward: Callable[..., Array]
    grad: Callable[..., Array] | None  # None: not elementwise
    instead: str = ""  # for non-elementwise names: which derivative function to use


_REGISTRY: dict[str, _Entry] = {
    "step": _Entry(step, step_grad),
    "linear": _Entry(linear, linear_grad),
    "identity": _Entry(identity, identity_grad),
    "sigmoid": _Entry(sigmoid, sigmoid_grad),
    "hard_sigmoid": _Entry(hard_sigmoid, hard_sigmoid_grad),
    "tanh": _Entry(tanh, tanh_grad),
    "relu": _Entry(relu, relu_grad),
    "relu6": _Entry(relu6, relu6_grad),
    "leaky_relu": _Entry(leaky_relu, leaky_relu_grad),
    "elu": _Entry(elu, elu_grad),
    "selu": _Entry(selu, selu_grad),
    "gelu": _Entry(gelu, gelu_grad),
    "gelu_tanh": _Entry(gelu_tanh, gelu_tanh_grad),
    "swish": _Entry(swish, swish_grad),
    "silu": _Entry(silu, silu_grad),
    "mish": _Entry(mish, mish_grad),
    "softplus": _Entry(softplus, softplus_grad),
    "softsign": _Entry(softsign, softsign_grad),
    "exponential": _Entry(exponential, exponential_grad),
    "prelu": _Entry(
        prelu,
        None,
        "use jaxnn.activations.prelu_grad(x, alpha) for dy/dx and "
        "prelu_grad_alpha(x, alpha) for dy/dalpha",
    ),
    "maxout": _Entry(
        maxout, None, "use jaxnn.activations.maxout_vjp(x, cotangent, num_pieces)"
    ),
    "softmax": _Entry(
        softmax, None, "use jaxnn.activations.softmax_vjp(x, cotangent, axis=-1)"
    ),
    "log_softmax": _Entry(
        log_softmax, None, "use jaxnn.activations.log_softmax_vjp(x, cotangent, axis=-1)"
    ),
}


class _Bound:
    """An activation (or derivative) with keyword parameters bound; made by get/get_grad."""

    __slots__ = ("name", "func", "keywords", "is_grad", "__weakref__")  # jit needs weakrefs

    def __init__(self, name: str, func: Callable[..., Array], keywords: dict[str, Any],
                 is_grad: bool) -> None:
        self.name = name
        self.func = func
        self.keywords = dict(keywords)
        self.is_grad = is_grad

    def __call__(self, x: ArrayLike, *args: Any) -> Array:
        return self.func(x, *args, **self.keywords)

    def _key(self) -> tuple[Any, ...]:
        return (self.name, self.func, self.is_grad, tuple(sorted(self.keywords.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Bound):
            return NotImplemented
        try:
            return bool(self._key() == other._key())
        except Exception:  # array-valued parameters (a bound prelu alpha): identity only
            return self is other

    def __hash__(self) -> int:
        try:
            return hash(self._key())
        except TypeError:
            return id(self)

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={v!r}" for k, v in self.keywords.items())
        what = "get_grad" if self.is_grad else "get"
        return f"jaxnn.activations.{what}({self.name!r}{', ' if kw else ''}{kw})"


def _unknown(fn: str, name: Any) -> ValueError:
    valid = names()
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5) if isinstance(
        name, str) else []
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return ValueError(
        f"jaxnn.activations.{fn}: unknown activation {name!r}; {hint}"
        f"valid names: {', '.join(valid)}"
    )


def _entry(name: Any, fn: str) -> _Entry:
    if not isinstance(name, str):
        raise TypeError(
            f"jaxnn.activations.{fn}: name must be a string from names(), got {name!r}"
        )
    if name not in _REGISTRY:
        raise _unknown(fn, name)
    return _REGISTRY[name]


def _check_value(name: str, key: str, value: Any, fn: str) -> None:
    """Eager checks of a bound parameter's value (traced values pass unchecked)."""
    where = f"jaxnn.activations.{fn}: {name} argument {key}"
    if key in ("negative_slope", "alpha", "beta") and name != "prelu":
        if isinstance(value, jax.core.Tracer):  # cannot be inspected (e.g. swept with vmap)
            return
        if isinstance(value, (np.ndarray, np.generic, jax.Array)):  # checked by value
            arr = np.asarray(value)
            real = jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(
                arr.dtype, jnp.floating)
            if not real or not np.all(np.isfinite(arr.astype(np.float64))):
                raise ValueError(f"{where} must be a finite real number, got {value!r}")
            return
        if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real) or (
            not math.isfinite(float(value))
        ):
            raise ValueError(f"{where} must be a finite real number, got {value!r}")
    elif key == "approximate" and not isinstance(value, bool):
        raise ValueError(f"{where} must be a bool, got {value!r}")
    elif key == "num_pieces":
        _num_pieces(value, fn)
    elif key == "axis":
        axes = value if isinstance(value, tuple) else (value,)
        if not axes or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes
        ):
            raise ValueError(f"{where} must be an int or a tuple of ints, got {value!r}")


def _bind(name: str, func: Callable[..., Array], kwargs: dict[str, Any], fn: str,
          is_grad: bool) -> Callable[..., Array]:
    params = list(inspect.signature(func).parameters)[1:]  # all but x
    for key, value in kwargs.items():
        if key not in params:
            close = difflib.get_close_matches(key, params, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"jaxnn.activations.{fn}: unexpected argument {key!r} for activation "
                f"{name!r}{hint}; allowed: {', '.join(params) if params else 'none'}"
            )
        _check_value(name, key, value, fn)
    if not kwargs:
        return func
    return _Bound(name, func, kwargs, is_grad)


def names() -> tuple[str, ...]:
    """All registered activation names, aliases included (``identity``, ``silu``, ``gelu_tanh``)."""
    return tuple(_REGISTRY)


def is_elementwise(name: str) -> bool:
    """Whether ``name`` is elementwise with a ``_grad`` twin (False for prelu, maxout, softmax,
    log_softmax).

    Raises:
      ValueError: unknown name (with the closest valid names).
    """
    return _entry(name, "is_elementwise").grad is not None


def get(name: str, **kwargs: Any) -> Callable[..., Array]:
    """The activation registered as ``name``, with keyword parameters bound.

    Without keyword arguments the module function itself is returned
    (``get("relu") is relu``); with them, a callable that applies it with those values
    (``get("leaky_relu", negative_slope=0.2)(x)``). For elementwise names the result is a
    function of ``x`` only; ``get("prelu")`` takes ``(x, alpha)`` and ``get("maxout")``
    takes ``(x, num_pieces)`` unless those are bound.

    Args:
      name: one of :func:`names`.
      **kwargs: the function's parameters (e.g. ``negative_slope``, ``alpha``, ``beta``,
        ``approximate``, ``num_pieces``, ``axis``).

    Returns:
      The forward function.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown name (the message suggests the closest valid names), an
        unexpected keyword argument, or a bad parameter value.
    """
    entry = _entry(name, "get")
    return _bind(name, entry.forward, kwargs, "get", is_grad=False)


def get_grad(name: str, **kwargs: Any) -> Callable[..., Array]:
    """The hand-written derivative ``dy/dx`` of the elementwise activation ``name``.

    ``get_grad("elu", alpha=0.5)(x) == elu_grad(x, alpha=0.5)``; same binding rules as
    :func:`get`.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown name, bad keyword argument, or a name that is not elementwise
        (prelu, maxout, softmax, log_softmax): the message names the function to use.
    """
    entry = _entry(name, "get_grad")
    if entry.grad is None:
        raise ValueError(
            f"jaxnn.activations.get_grad: {name!r} is not an elementwise activation, so it "
            f"has no elementwise derivative; {entry.instead}"
        )
    return _bind(name, entry.grad, kwargs, "get_grad", is_grad=True)


def serialize(fn: Callable[..., Array]) -> str:
    """The registry name of an activation: the inverse of :func:`get`.

    ``serialize(relu) == "relu"``, ``serialize(get(name)) == name`` for every name in
    :func:`names` (aliases keep their own name: ``serialize(silu) == "silu"``), and
    ``serialize(get("leaky_relu", negative_slope=0.2)) == "leaky_relu"``. Bound
    parameters are not part of the string; they are available as ``fn.keywords`` (configs
    store them separately, e.g. ``activation_kwargs``).

    Args:
      fn: a forward function of this module or a function returned by :func:`get`.

    Returns:
      Its name.

    Raises:
      ValueError: ``fn`` is not a registered forward function (derivatives returned by
        :func:`get_grad` and ``*_grad`` functions are rejected with a hint).
    """
    if isinstance(fn, _Bound):
        if fn.is_grad:
            raise ValueError(
                f"jaxnn.activations.serialize: {fn!r} is a derivative; serialize the forward "
                f"function get({fn.name!r}) instead"
            )
        return fn.name
    for name, entry in _REGISTRY.items():
        if entry.forward is fn:
            return name
    for name, entry in _REGISTRY.items():
        if entry.grad is fn:
            raise ValueError(
                f"jaxnn.activations.serialize: {getattr(fn, '__name__', fn)!r} is the "
                f"derivative of {name!r}; serialize the forward function instead"
            )
    raise ValueError(
        f"jaxnn.activations.serialize: {fn!r} is not a registered activation nor a function "
        f"returned by jaxnn.activations.get; registered: {', '.join(names())}"
    )
