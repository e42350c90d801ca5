"""Named optimizers: each one is nothing but an ``optax.chain`` of jaxnn transforms.

Contract: every function here takes the same argument names and defaults as the optax
optimizer of the same name (optax 0.2.8), returns an
:class:`optax.GradientTransformationExtraArgs`, checks its arguments eagerly and gives the
same updates as optax to float32 rounding. ``momentum`` and ``nesterov`` (which optax does
not define) are :func:`sgd` with momentum. The one deliberate difference:
``adadelta(learning_rate=None)`` descends with rate 1, where optax 0.2.8 skips the
learning-rate step entirely and so returns an *ascent* direction.

All of them end in :func:`jaxnn.optim.scale_by_learning_rate`, so the learning rate may be
a number or a schedule ``step -> rate`` and the rate used by the latest update can be
read from the state with :func:`jaxnn.optim.current_learning_rate`. They are usable with
``optax.inject_hyperparams`` (no Python branch looks at a numeric hyperparameter).

Notation in the docstrings: :math:`\\eta_t` is the learning rate at step :math:`t`,
:math:`g_t` the gradient, :math:`\\theta_t` the parameters; ``optax.apply_updates`` adds
the returned update :math:`u_t`, so :math:`\\theta_t = \\theta_{t-1} + u_t`.

Every example below runs three steps on :math:`f(\\theta) = \\lVert\\theta\\rVert^2`::

    params = jnp.array([1.0, -2.0])
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update(2 * params, state, params)
        params = optax.apply_updates(params, updates)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import optax

from jaxnn.optim import transforms as tr
from jaxnn.optim.transforms import ScalarOrSchedule

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "lion",
    "momentum",
    "nadam",
    "nadamw",
    "nesterov",
    "rmsprop",
    "sgd",
]

Mask = Any | Callable[[optax.Params], Any] | None


@contextlib.contextmanager
def _named(alias: str) -> Iterator[None]:
    """Re-labels argument errors raised by the transforms with the optimizer's name."""
    prefix = f"{tr._MODULE}."
    try:
        yield
    except (ValueError, TypeError) as err:
        message = str(err)
        if not message.startswith(prefix) or ": " not in message:
            raise
        raise type(err)(f"{prefix}{alias}: {message.split(': ', 1)[1]}") from None


def _lr(alias: str, learning_rate: ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
    if learning_rate is None:
        raise TypeError(
            f"{tr._MODULE}.{alias}: learning_rate must be a number >= 0 or a schedule, "
            "got None."
        )
    tr._check_learning_rate(alias, learning_rate)
    return tr.scale_by_learning_rate(learning_rate)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. math::

        m_t = g_t + \beta m_{t-1}, \qquad
        u_t = -\eta_t \begin{cases} g_t & \text{no momentum} \\ m_t & \text{heavy ball} \\
                                     g_t + \beta m_t & \text{Nesterov} \end{cases}

    For a constant :math:`\eta` the heavy-ball form equals the textbook
    :math:`v_t = \beta v_{t-1} - \eta g_t,\ \theta_t = \theta_{t-1} + v_t`; with a
    schedule, optax (and so this) scales the *accumulated* buffer by the current rate,
    whereas Keras accumulates already-scaled steps (:func:`jaxnn.optim.keras.sgd`).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1], or ``None`` for plain SGD (no state).
      nesterov: use Nesterov momentum (needs ``momentum``).
      accumulator_dtype: dtype of the momentum buffer (``None``: the parameters').

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import sgd
      >>> opt = sgd(learning_rate=0.1, momentum=0.9)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.062, -0.124]

    References:
      Robbins & Monro, *A Stochastic Approximation Method*, 1951; Polyak, 1964;
      Sutskever et al., *On the importance of initialization and momentum in deep
      learning*, ICML 2013.
    """
    with _named("sgd"):
        tr._check_bool("sgd", "nesterov", nesterov)
        _check_nesterov_needs_momentum("sgd", nesterov, momentum)
        if momentum is not None:
            tr._check_unit_interval("sgd", "momentum", momentum, include_one=True)
        if momentum is None:
            first = optax.identity()
        else:
            first = tr.trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
        return optax.chain(first, _lr("sgd", learning_rate))


def _adam_rates(b1: Any, b2: Any, mu_dtype: Any) -> dict[str, tuple[Any, Any]]:
    """The decay rates of the Adam family, for :func:`jaxnn.optim.transforms._with_rate_check`
    (run again under the optimizer's own name, so that an error at ``init`` names it)."""
    return {"b1": (b1, mu_dtype), "b2": (b2, None)}


def _check_nesterov_needs_momentum(fn: str, nesterov: bool, momentum: Any) -> None:
    """``nesterov=True`` without momentum would be ignored: say so instead."""
    if nesterov and momentum is None:
        raise ValueError(
            f"jaxnn.optim.{fn}: nesterov=True needs a momentum (e.g. momentum=0.9), got "
            "momentum=None"
        )


def momentum(
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.9,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SGD with heavy-ball momentum: ``sgd(learning_rate, momentum=momentum)``.

    .. math::

        m_t = g_t + \beta m_{t-1}, \qquad u_t = -\eta_t\, m_t.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1].
      accumulator_dtype: dtype of the momentum buffer (``None``: the parameters').

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` (optax has no alias of this name;
      it equals ``optax.sgd(learning_rate, momentum)``).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import momentum
      >>> opt = momentum(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.062, -0.124]

    References:
      Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
    """
    if momentum is None:  # sgd's "no momentum": this alias would be plain SGD, silently
        raise ValueError(
            f"{tr._MODULE}.momentum: momentum must be a number in [0, 1], got None; use "
            f"{tr._MODULE}.sgd(learning_rate) for SGD without momentum"
        )
    with _named("momentum"):
        return sgd(learning_rate, momentum=momentum, accumulator_dtype=accumulator_dtype)


def nesterov(
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.9,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SGD with Nesterov momentum: ``sgd(learning_rate, momentum, nesterov=True)``.

    .. math::

        m_t = g_t + \beta m_{t-1}, \qquad u_t = -\eta_t\, (g_t + \beta m_t).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1].
      accumulator_dtype: dtype of the momentum buffer (``None``: the parameters').

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` (equal to
      ``optax.sgd(learning_rate, momentum, nesterov=True)``).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import nesterov
      >>> opt = nesterov(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [-0.1084, 0.2167]

    References:
      Nesterov, *A method of solving a convex programming problem with convergence rate
      O(1/k^2)*, 1983; Sutskever et al., ICML 2013.
    """
    with _named("nesterov"):
        return sgd(
            learning_rate, momentum=momentum, nesterov=True, accumulator_dtype=accumulator_dtype
        )


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
) -> optax.GradientTransformationExtraArgs:
    r"""Adagrad: per-coordinate steps shrinking with the accumulated squared gradients.

    .. math::

        s_t = s_{t-1} + g_t^2, \qquad u_t = -\eta_t\, \frac{g_t}{\sqrt{s_t + \epsilon}},
        \qquad s_0 = \texttt{initial\_accumulator\_value}.

    :math:`\epsilon` is inside the square root (optax); Keras 3 agrees, TF2-era Keras and
    the textbooks put it outside (see :mod:`jaxnn.optim.keras`).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      initial_accumulator_value: :math:`s_0 \ge 0`.
      eps: :math:`\epsilon \ge 0`.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import adagrad
      >>> opt = adagrad(learning_rate=0.5)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.1615, -0.9857]

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization*, JMLR 2011.
    """
    with _named("adagrad"):
        return optax.chain(
            tr.scale_by_adagrad(initial_accumulator_value=initial_accumulator_value, eps=eps),
            _lr("adagrad", learning_rate),
        )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp: divide by the root of a running mean of squared gradients.

    .. math::

        \nu_t = \rho\,\nu_{t-1} + (1-\rho)\, g_t^2, \qquad
        s_t = -\eta_t\, \frac{g_t}{\sqrt{\nu_t + \epsilon}}, \qquad
        m_t = s_t + \beta m_{t-1}, \qquad u_t = m_t \ (\text{or } s_t + \beta m_t),

    where ``centered`` replaces :math:`\nu_t` by :math:`\nu_t - \mu_t^2` (with
    :math:`\mu_t` a running mean of :math:`g_t`), ``eps_in_sqrt=False`` uses
    :math:`\sqrt{\nu_t} + \epsilon`, ``bias_correction`` divides the means by
    :math:`1-\rho^t`, and the momentum stage is skipped when ``momentum is None``. Note
    the order: the momentum buffer accumulates steps already scaled by :math:`\eta_t`.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      decay: :math:`\rho` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      initial_scale: :math:`\nu_0 \ge 0`.
      eps_in_sqrt: :math:`\epsilon` inside (default) or outside the square root.
      centered: normalize by the estimated variance instead of the second moment.
      momentum: :math:`\beta` in [0, 1], or ``None`` for no momentum.
      nesterov: Nesterov form of the momentum.
      bias_correction: bias-correct the running means.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import rmsprop
      >>> opt = rmsprop(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.3692, -1.3087]

    References:
      Tieleman & Hinton, *Lecture 6.5 - RMSProp*, 2012; Graves, *Generating Sequences
      With Recurrent Neural Networks*, 2013 (centered form).
    """
    with _named("rmsprop"):
        tr._check_bool("rmsprop", "centered", centered)
        tr._check_bool("rmsprop", "nesterov", nesterov)
        _check_nesterov_needs_momentum("rmsprop", nesterov, momentum)
        if momentum is not None:
            tr._check_unit_interval("rmsprop", "momentum", momentum, include_one=True)
        scaling = tr.scale_by_stddev if centered else tr.scale_by_rms
        chain = optax.chain(
            scaling(
                decay=decay,
                eps=eps,
                initial_scale=initial_scale,
                eps_in_sqrt=eps_in_sqrt,
                bias_correction=bias_correction,
            ),
            _lr("rmsprop", learning_rate),
            optax.identity() if momentum is None else tr.trace(momentum, nesterov=nesterov),
        )
        return tr._with_rate_check("rmsprop", chain, {"decay": (decay, None)})


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam: momentum divided by the root of a running second moment, both bias-corrected.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        u_t = -\eta_t\, \frac{m_t / (1-\beta_1^t)}
                              {\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}.

    :math:`\epsilon` is added to the root of the *bias-corrected* second moment
    (Algorithm 1 of the paper); Keras adds it to the uncorrected one ("epsilon hat"),
    which matters early in training, see :mod:`jaxnn.optim.keras`.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      eps_root: :math:`\epsilon_{root} \ge 0` (inside the square root).
      mu_dtype: dtype of the first moment (``None``: the parameters').
      nesterov: use Nesterov momentum (this is :func:`nadam`).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import adam
      >>> opt = adam(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.7016, -1.7006]

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """
    with _named("adam"):
        chain = optax.chain(
            tr.scale_by_adam(
                b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
            ),
            _lr("adam", learning_rate),
        )
        return tr._with_rate_check("adam", chain, _adam_rates(b1, b2, mu_dtype))


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Nadam: Adam with Nesterov momentum (``adam(..., nesterov=True)``).

    .. math::

        \hat m_t = \beta_1 \frac{m_t}{1-\beta_1^{t+1}} + (1-\beta_1)\frac{g_t}{1-\beta_1^t},
        \qquad u_t = -\eta_t\, \frac{\hat m_t}
                                   {\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon},

    with :math:`m_t, v_t` as in :func:`adam`.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      eps_root: :math:`\epsilon_{root} \ge 0`.
      mu_dtype: dtype of the first moment (``None``: the parameters').
      nesterov: use Nesterov momentum (the default; ``False`` is :func:`adam`), as the
        keyword of ``optax.nadam``.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import nadam
      >>> opt = nadam(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.6406, -1.6343]

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """
    with _named("nadam"):
        opt = adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)
        return tr._with_rate_check("nadam", opt, _adam_rates(b1, b2, mu_dtype))


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW: Adam with decoupled weight decay.

    .. math::

        u_t = -\eta_t \left( \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
                              + \lambda\, \theta_{t-1} \right),

    with :math:`\hat m_t, \hat v_t` as in :func:`adam`. The decay is *not* divided by
    :math:`\sqrt{\hat v_t}` (that would be Adam on an L2-regularized loss), but it is
    multiplied by the learning rate, as in optax and PyTorch.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      eps_root: :math:`\epsilon_{root} \ge 0`.
      mu_dtype: dtype of the first moment (``None``: the parameters').
      weight_decay: :math:`\lambda \ge 0`, or a schedule.
      mask: which leaves to decay (a boolean pytree or ``params -> pytree``).
      nesterov: use Nesterov momentum (this is :func:`nadamw`).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import adamw
      >>> opt = adamw(learning_rate=0.1, weight_decay=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.6751, -1.6444]

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    with _named("adamw"):
        chain = optax.chain(
            tr.scale_by_adam(
                b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
            ),
            tr.add_decayed_weights(weight_decay, mask),
            _lr("adamw", learning_rate),
        )
        return tr._with_rate_check("adamw", chain, _adam_rates(b1, b2, mu_dtype))


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""NadamW: Nadam with decoupled weight decay (``adamw(..., nesterov=True)``).

    .. math::

        u_t = -\eta_t \left( \frac{\hat m^{\rm Nesterov}_t}
                                  {\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
                              + \lambda\, \theta_{t-1} \right).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      eps_root: :math:`\epsilon_{root} \ge 0`.
      mu_dtype: dtype of the first moment (``None``: the parameters').
      weight_decay: :math:`\lambda \ge 0`, or a schedule.
      mask: which leaves to decay (a boolean pytree or ``params -> pytree``).
      nesterov: use Nesterov momentum (the default; ``False`` is :func:`adamw`), as the
        keyword of ``optax.nadamw``.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import nadamw
      >>> opt = nadamw(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.6406, -1.6342]

    References:
      Dozat, 2016; Loshchilov & Hutter, ICLR 2019.
    """
    with _named("nadamw"):
        opt = adamw(
            learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask,
            nesterov=nesterov,
        )
        return tr._with_rate_check("nadamw", opt, _adam_rates(b1, b2, mu_dtype))


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adadelta: steps whose units match the parameters', with no global step size.

    .. math::

        E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) \tilde g_t^2, \quad
        \Delta_t = \frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}
                   \tilde g_t, \quad
        E[\Delta^2]_t = \rho E[\Delta^2]_{t-1} + (1-\rho) \Delta_t^2,

    .. math::

        u_t = -\eta_t\, \Delta_t, \qquad \tilde g_t = g_t + \lambda\, \theta_{t-1}.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule; ``None`` (the paper's
        form) means :math:`\eta = 1`. optax 0.2.8 instead skips the scaling for ``None``,
        which also skips the sign flip, so ``optax.adadelta()`` *ascends*.
      rho: :math:`\rho` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      weight_decay: :math:`\lambda \ge 0` (added to the gradient before the scaling, i.e.
        L2 regularization), or a schedule.
      weight_decay_mask: which leaves to decay (a boolean pytree or
        ``params -> pytree``, as ``mask`` in :func:`jaxnn.optim.add_decayed_weights`).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import adadelta
      >>> opt = adadelta(learning_rate=10.0)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.9046, -1.9038]

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """
    with _named("adadelta"):
        tr._check_mask("adadelta", "weight_decay_mask", weight_decay_mask)
        chain = optax.chain(
            tr.add_decayed_weights(weight_decay, mask=weight_decay_mask),
            tr.scale_by_adadelta(rho=rho, eps=eps),
            _lr("adadelta", 1.0 if learning_rate is None else learning_rate),
        )
        return tr._with_rate_check("adadelta", chain, {"rho": (rho, None)})


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad: Adam whose second-moment estimate never decreases.

    .. math::

        \tilde v_t = \max\!\big(\tilde v_{t-1}, v_t / (1-\beta_2^t)\big), \qquad
        u_t = -\eta_t\, \frac{m_t / (1-\beta_1^t)}{\sqrt{\tilde v_t + \epsilon_{root}}
              + \epsilon},

    with :math:`m_t, v_t` as in :func:`adam` (each bias correction can be switched off).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon \ge 0`.
      eps_root: :math:`\epsilon_{root} \ge 0`.
      mu_dtype: dtype of the first moment (``None``: the parameters').
      bias_correction_mu: bias-correct :math:`m_t`.
      bias_correction_nu: bias-correct :math:`v_t` before the maximum.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import amsgrad
      >>> opt = amsgrad(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.7158, -1.7079]

    References:
      Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """
    with _named("amsgrad"):
        chain = optax.chain(
            tr.scale_by_amsgrad(
                b1=b1,
                b2=b2,
                eps=eps,
                eps_root=eps_root,
                mu_dtype=mu_dtype,
                bias_correction_mu=bias_correction_mu,
                bias_correction_nu=bias_correction_nu,
            ),
            _lr("amsgrad", learning_rate),
        )
        return tr._with_rate_check("amsgrad", chain, _adam_rates(b1, b2, mu_dtype))


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    r"""Adamax: Adam with an exponentially weighted infinity norm.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        w_t = \max(|g_t| + \epsilon, \beta_2 w_{t-1}), \quad
        u_t = -\eta_t\, \frac{m_t / (1-\beta_1^t)}{w_t}.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon \ge 0`.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import adamax
      >>> opt = adamax(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.7155, -1.7076]

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 7.1.
    """
    with _named("adamax"):
        chain = optax.chain(tr.scale_by_adamax(b1=b1, b2=b2, eps=eps), _lr("adamax", learning_rate))
        return tr._with_rate_check("adamax", chain, _adam_rates(b1, b2, None))


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Lion: signed interpolation of momentum and gradient, with decoupled weight decay.

    .. math::

        u_t = -\eta_t \left( \operatorname{sign}\big(\beta_1 m_{t-1} + (1-\beta_1) g_t\big)
              + \lambda\, \theta_{t-1} \right), \qquad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule (typically 3-10x smaller
        than Adam's).
      b1: :math:`\beta_1` in [0, 1].
      b2: :math:`\beta_2` in [0, 1].
      mu_dtype: dtype of the momentum (``None``: the parameters').
      weight_decay: :math:`\lambda \ge 0`, or a schedule.
      mask: which leaves to decay.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxnn.optim import lion
      >>> opt = lion(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> [round(float(x), 4) for x in params]
      [0.6997, -1.6994]

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023.
    """
    with _named("lion"):
        return optax.chain(
            tr.scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype),
            tr.add_decayed_weights(weight_decay, mask),
            _lr("lion", learning_rate),
        )
