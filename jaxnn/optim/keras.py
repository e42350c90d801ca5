r"""Keras-style optimizers: Keras argument names, Keras defaults, Keras update formulas.

Contract: ``sgd``, ``adagrad``, ``rmsprop`` and ``adam`` take the arguments of the Keras
optimizers of the same name (``beta_1``, ``rho``, ``epsilon``, ...) with the defaults
listed below, including the legacy ``decay`` argument of Keras 2 (inverse-time decay of
the learning rate per update, :math:`\eta_t = \eta / (1 + \text{decay}\cdot t)` with
:math:`t` the number of updates done before this one). Each returns an
:class:`optax.GradientTransformationExtraArgs` chained from :mod:`jaxnn.optim.transforms`
(plus :func:`scale_by_adam` below for Keras' "epsilon hat" Adam), so it composes with
everything in optax and records its learning rate like every jaxnn optimizer.

Which Keras: the update formulas are those of Keras 3 (``keras.optimizers``, also
``tf.keras`` from TF 2.11); the ``decay`` argument is the one Keras 2 / ``tf.keras``
``optimizer_v2`` (TF 2.0-2.10) had. The learning-rate defaults follow the project's
Keras table: 0.01 for SGD and Adagrad (Keras 2.x; Keras 3 uses 0.001 for Adagrad), 0.001
for RMSprop and Adam. ``epsilon`` is 1e-7 everywhere (``keras.backend.epsilon()``);
early standalone Keras and some textbooks used 1e-8 or 1e-6, see the table.

How the common optimizers differ between libraries and textbooks
----------------------------------------------------------------
Columns: optax (= :mod:`jaxnn.optim`), this module, Keras 3, ``tf.keras`` optimizer_v2
(TF 2.0-2.10), Goodfellow, Bengio & Courville, *Deep Learning* (2016, algorithms 8.1-8.7)
and Saito, *Deep Learning from Scratch* (2016, ``common/optimizer.py``).

==============  ============  ============  ============  ============  ============  ============
quantity        optax/jaxnn   jaxnn keras   Keras 3       tf.keras 2    Goodfellow    Saito
==============  ============  ============  ============  ============  ============  ============
SGD lr          required      0.01          0.01          0.01          given         0.01
momentum sums   g (lr after)  lr * g        lr * g        lr * g        lr * g        lr * g
Adagrad lr      required      0.01          0.001         0.001         given         0.01
Adagrad s0      0.1           0.1           0.1           0.1           0             0
Adagrad eps     1e-7 in       1e-7 in       1e-7 in       1e-7 out      1e-7 out      1e-7 out
RMSprop lr      required      0.001         0.001         0.001         given         0.01
RMSprop rho     0.9           0.9           0.9           0.9           given         0.99
RMSprop eps     1e-8 in       1e-7 in       1e-7 in       1e-7 out/in*  1e-6 in       1e-7 out
Adam lr         required      0.001         0.001         0.001         0.001         0.001
Adam b1, b2     0.9, 0.999    0.9, 0.999    0.9, 0.999    0.9, 0.999    0.9, 0.999    0.9, 0.999
Adam eps        1e-8 out, c   1e-7 out, u   1e-7 out, u   1e-7 out, u   1e-8 out, c   1e-7 out, u
AMSGrad max of  corrected v   uncorrected   uncorrected   uncorrected   --            --
lr decay        schedules     decay, sched  schedules     decay         linear        none
==============  ============  ============  ============  ============  ============  ============

Legend: *in*/*out*: epsilon inside the square root, :math:`g/\sqrt{v+\epsilon}`, or
outside, :math:`g/(\sqrt{v}+\epsilon)`; *c*/*u*: Adam's epsilon is added to the root of
the bias-*corrected* :math:`\hat v_t` (Algorithm 1 of Kingma & Ba) or of the *uncorrected*
:math:`v_t` (their "epsilon hat", i.e. an effective :math:`\epsilon/\sqrt{1-\beta_2^t}`);
*momentum sums*: what the momentum buffer accumulates (optax sums raw gradients and
multiplies by the current rate afterwards, the others sum steps already multiplied by the
rate in force when they were taken); *decay*: Keras 2's ``decay``,
:math:`\eta/(1+d\,t)`; *linear*: Goodfellow's linear decay to a floor at step
:math:`\tau`; \* ``tf.keras`` 2 RMSprop put epsilon outside the root when
``momentum == 0`` and inside otherwise (a fused kernel). Standalone Keras 2 (before
``tf.keras``) started Adagrad's accumulator at 0, and its early releases defaulted epsilon
to 1e-8.

Consequences worth knowing:

* Adam's epsilon placement matters early on: Keras' effective epsilon is
  :math:`\epsilon/\sqrt{1-\beta_2^t}` (about :math:`31.6\,\epsilon` at :math:`t=1`), so a
  tiny-gradient coordinate moves less under Keras than under optax for the same
  ``eps``. Both converge to the same rule as :math:`t \to \infty`.
* Epsilon inside or outside the root matters only for coordinates with gradients small
  next to the stabilizer: inside, a coordinate with :math:`|g| \ll \sqrt{\epsilon}` steps
  about :math:`\eta\, g/\sqrt{\epsilon}` (damped); outside, damping only starts at
  :math:`|g| \lesssim \epsilon`, so such a coordinate still takes a nearly full step
  (:math:`\eta\,\mathrm{sign}(g)/\sqrt{1-\rho}` on RMSprop's first update).
* Adagrad's non-zero initial accumulator (0.1 in optax and Keras, 0 in the textbooks)
  bounds the first step by :math:`\eta\, |g|/\sqrt{0.1 + g^2} < \eta` instead of
  :math:`\eta\,\mathrm{sign}(g)`.
* Momentum with a changing learning rate: optax scales the accumulated gradients by the
  *current* rate; Keras accumulates steps already scaled by the rate in force when they
  were taken. They agree for a constant rate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn.optim import transforms as tr
from jaxnn.optim.transforms import ScalarOrSchedule

__all__ = [
    "KerasAdamState",
    "adagrad",
    "adam",
    "legacy_decay",
    "rmsprop",
    "scale_by_adam",
    "sgd",
]


def legacy_decay(learning_rate: ScalarOrSchedule, decay: float) -> tr.Schedule:
    r"""Keras 2's ``decay`` argument as a schedule: :math:`\eta_t = \eta / (1 + d\, t)`.

    :math:`t` is the number of updates done so far (0 for the first update), so the
    first update uses the full rate. With ``decay=0`` the rate is returned unchanged
    (exactly). If ``learning_rate`` is itself a schedule, its value at :math:`t` is
    decayed.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      decay: :math:`d \ge 0`.

    Returns:
      A schedule ``step -> rate``.
    """
    fn = "keras.legacy_decay"
    learning_rate = tr._check_learning_rate(fn, learning_rate)
    decay = tr._check_nonnegative(fn, "decay", decay)

    def schedule(count):
        base = learning_rate(count) if callable(learning_rate) else learning_rate
        return base / (1 + decay * count)

    return schedule


class KerasAdamState(NamedTuple):
    """State of :func:`scale_by_adam`: count, Keras' ``momentum``/``velocity`` slots.

    ``nu_max`` is the AMSGrad running maximum (``velocity_hat``), ``None`` without
    AMSGrad.
    """

    count: jax.Array  # int32 scalar, saturating
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates | None


def scale_by_adam(
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Keras' Adam scaling, with epsilon added to the root of the *uncorrected* moment.

    .. math::

        m_t = m_{t-1} + (1-\beta_1)(g_t - m_{t-1}), \qquad
        v_t = v_{t-1} + (1-\beta_2)(g_t^2 - v_{t-1}),

    .. math::

        \alpha_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}, \qquad
        u_t = \alpha_t\, \frac{m_t}{\sqrt{w_t} + \epsilon}, \qquad
        w_t = \begin{cases} \max(w_{t-1}, v_t) & \text{AMSGrad} \\ v_t & \text{otherwise}
              \end{cases}

    Equivalently :math:`u_t = \hat m_t / (\sqrt{\hat v_t} + \epsilon / \sqrt{1-\beta_2^t})`:
    the "epsilon hat" of Kingma & Ba (just before their section 2.1). Compare
    :func:`jaxnn.optim.scale_by_adam`, whose :math:`\epsilon` is added to
    :math:`\sqrt{\hat v_t}`. Multiply by :math:`-\eta_t` (``scale_by_learning_rate``) to get
    Keras' step.

    Args:
      beta_1: in [0, 1).
      beta_2: in [0, 1).
      epsilon: >= 0.
      amsgrad: keep the running maximum of the (uncorrected) :math:`v_t`.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state :class:`KerasAdamState`.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015; Reddi et al.,
      *On the Convergence of Adam and Beyond*, ICLR 2018.
    """
    fn = "keras.scale_by_adam"
    beta_1 = tr._check_unit_interval(fn, "beta_1", beta_1)
    beta_2 = tr._check_unit_interval(fn, "beta_2", beta_2)
    epsilon = tr._check_nonnegative(fn, "epsilon", epsilon)
    tr._check_bool(fn, "amsgrad", amsgrad)

    def init_fn(params):
        return KerasAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params),
            nu=optax.tree.zeros_like(params),
            nu_max=optax.tree.zeros_like(params) if amsgrad else None,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = optax.safe_increment(state.count)
        alpha = jnp.sqrt(1 - beta_2**count) / (1 - beta_1**count)
        mu = jax.tree.map(
            lambda g, m: m + tr._as(1 - beta_1, m) * (g - m), updates, state.mu
        )
        nu = jax.tree.map(
            lambda g, v: v + tr._as(1 - beta_2, v) * (tr._abs_sq(g) - v), updates, state.nu
        )
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else None
        denominator_moment = nu_max if amsgrad else nu
        updates = jax.tree.map(
            lambda m, v: tr._as(alpha, m) * m / (jnp.sqrt(v) + tr._as(epsilon, v)),
            mu,
            denominator_moment,
        )
        new_state = KerasAdamState(
            count=count,
            mu=tr._cast_like(mu, state.mu),
            nu=tr._cast_like(nu, state.nu),
            nu_max=tr._cast_like(nu_max, state.nu_max) if amsgrad else None,
        )
        return updates, new_state

    transformation = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    return tr._with_rate_check(fn, transformation, _rates(beta_1, beta_2))


def _rates(beta_1: Any, beta_2: Any) -> dict[str, tuple[Any, Any]]:
    """Adam's decay rates, for :func:`jaxnn.optim.transforms._with_rate_check`."""
    return {"beta_1": (beta_1, None), "beta_2": (beta_2, None)}


def _rate(fn: str, learning_rate: ScalarOrSchedule, decay: float) -> Any:
    learning_rate = tr._check_learning_rate(fn, learning_rate)
    decay = tr._check_nonnegative(fn, "decay", decay)
    return tr.scale_by_learning_rate(legacy_decay(learning_rate, decay))


def sgd(
    learning_rate: ScalarOrSchedule = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    decay: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Keras SGD: the momentum buffer accumulates steps already scaled by the rate.

    .. math::

        \eta_t = \frac{\eta}{1 + d\,(t-1)}, \qquad
        v_t = \mu\, v_{t-1} - \eta_t\, g_t, \qquad
        u_t = \begin{cases} v_t \\ \mu\, v_t - \eta_t\, g_t & \text{Nesterov} \end{cases}

    (:math:`t = 1` on the first update). ``momentum=0`` is plain SGD.

    Args:
      learning_rate: :math:`\eta` (default 0.01), a number >= 0 or a schedule.
      momentum: :math:`\mu` in [0, 1] (default 0).
      nesterov: Nesterov form.
      decay: legacy inverse-time decay :math:`d \ge 0` (default 0).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`:
      ``chain(scale_by_learning_rate(legacy_decay(...)), trace(momentum, nesterov))``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnn.optim import keras
      >>> opt = keras.sgd(momentum=0.9, decay=1e-4)
      >>> updates, state = opt.update(jnp.ones(2), opt.init(jnp.zeros(2)))
      >>> print(updates)
      [-0.01 -0.01]
    """
    fn = "keras.sgd"
    momentum = tr._check_unit_interval(fn, "momentum", momentum, include_one=True)
    tr._check_bool(fn, "nesterov", nesterov)
    return optax.chain(_rate(fn, learning_rate, decay), tr.trace(momentum, nesterov=nesterov))


def adagrad(
    learning_rate: ScalarOrSchedule = 0.01,
    initial_accumulator_value: float = 0.1,
    epsilon: float = 1e-7,
    decay: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Keras Adagrad (Keras 3 formula: epsilon inside the square root).

    .. math::

        s_t = s_{t-1} + g_t^2, \qquad u_t = -\eta_t\, \frac{g_t}{\sqrt{s_t + \epsilon}},
        \qquad s_0 = \texttt{initial\_accumulator\_value}.

    ``tf.keras`` 2.0-2.10 used :math:`g_t / (\sqrt{s_t} + \epsilon)` instead; the two differ
    by a relative amount of order :math:`\epsilon / \sqrt{s_t}` (at most about 2e-7 with
    the default :math:`s_0 = 0.1`).

    Args:
      learning_rate: :math:`\eta` (default 0.01, as Keras 2; Keras 3 uses 0.001).
      initial_accumulator_value: :math:`s_0 \ge 0` (default 0.1).
      epsilon: :math:`\epsilon \ge 0` (default 1e-7).
      decay: legacy inverse-time decay (default 0).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnn.optim import keras
      >>> opt = keras.adagrad()
      >>> updates, state = opt.update(jnp.ones(2), opt.init(jnp.zeros(2)))
      >>> print(updates)  # -0.01 / sqrt(1.1)
      [-0.00953462 -0.00953462]
    """
    fn = "keras.adagrad"
    initial_accumulator_value = tr._check_nonnegative(
        fn, "initial_accumulator_value", initial_accumulator_value)
    epsilon = tr._check_nonnegative(fn, "epsilon", epsilon)
    return optax.chain(
        tr.scale_by_adagrad(initial_accumulator_value=initial_accumulator_value, eps=epsilon),
        _rate(fn, learning_rate, decay),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule = 0.001,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-7,
    centered: bool = False,
    decay: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Keras RMSprop (Keras 3 formula: epsilon inside the square root).

    .. math::

        v_t = \rho\, v_{t-1} + (1-\rho)\, g_t^2, \qquad
        \delta_t = \eta_t\, \frac{g_t}{\sqrt{v_t - c_t + \epsilon}}, \qquad
        b_t = \mu\, b_{t-1} + \delta_t, \qquad u_t = -b_t,

    where :math:`c_t = \bar g_t^2` with :math:`\bar g_t = \rho \bar g_{t-1} + (1-\rho) g_t`
    when ``centered`` and 0 otherwise; ``momentum=0`` gives :math:`u_t = -\delta_t`.
    ``tf.keras`` 2.0-2.10 put epsilon outside the root when ``momentum == 0``.

    Args:
      learning_rate: :math:`\eta` (default 0.001).
      rho: :math:`\rho` in [0, 1) (default 0.9).
      momentum: :math:`\mu` in [0, 1] (default 0).
      epsilon: :math:`\epsilon \ge 0` (default 1e-7).
      centered: divide by the estimated standard deviation.
      decay: legacy inverse-time decay (default 0).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnn.optim import keras
      >>> opt = keras.rmsprop()
      >>> updates, state = opt.update(jnp.ones(2), opt.init(jnp.zeros(2)))
      >>> print(updates)  # -0.001 / sqrt(0.1)
      [-0.00316228 -0.00316228]
    """
    fn = "keras.rmsprop"
    rho = tr._check_unit_interval(fn, "rho", rho)
    momentum = tr._check_unit_interval(fn, "momentum", momentum, include_one=True)
    epsilon = tr._check_nonnegative(fn, "epsilon", epsilon)
    tr._check_bool(fn, "centered", centered)
    scaling = tr.scale_by_stddev if centered else tr.scale_by_rms
    chain = optax.chain(
        scaling(decay=rho, eps=epsilon, eps_in_sqrt=True),
        _rate(fn, learning_rate, decay),
        tr.trace(momentum),
    )
    return tr._with_rate_check(fn, chain, {"rho": (rho, None)})


def adam(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    decay: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Keras Adam (and AMSGrad): epsilon added to the root of the uncorrected moment.

    .. math::

        u_t = -\eta_t\, \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
              \frac{m_t}{\sqrt{v_t} + \epsilon}

    with :math:`m_t, v_t` the uncorrected moments (see :func:`scale_by_adam`), and
    :math:`v_t` replaced by its running maximum under ``amsgrad``.

    Args:
      learning_rate: :math:`\eta` (default 0.001).
      beta_1: in [0, 1) (default 0.9).
      beta_2: in [0, 1) (default 0.999).
      epsilon: >= 0 (default 1e-7).
      amsgrad: AMSGrad variant (maximum of the uncorrected :math:`v_t`).
      decay: legacy inverse-time decay (default 0).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnn.optim import keras
      >>> opt = keras.adam()
      >>> updates, state = opt.update(jnp.ones(2), opt.init(jnp.zeros(2)))
      >>> print(updates)  # about -lr on the first step
      [-0.00099999 -0.00099999]
    """
    fn = "keras.adam"
    beta_1 = tr._check_unit_interval(fn, "beta_1", beta_1)
    beta_2 = tr._check_unit_interval(fn, "beta_2", beta_2)
    epsilon = tr._check_nonnegative(fn, "epsilon", epsilon)
    tr._check_bool(fn, "amsgrad", amsgrad)
    chain = optax.chain(
        scale_by_adam(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad),
        _rate(fn, learning_rate, decay),
    )
    return tr._with_rate_check(fn, chain, _rates(beta_1, beta_2))
