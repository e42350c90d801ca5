"""A multi-layer perceptron as a frozen config, a params pytree and pure functions.

Contract::

    config = MLPConfig(layer_sizes=(784, 256, 256, 10), hidden_activation="relu")
    params, state = init(config, key)                    # plain pytrees
    outputs, new_state = apply(config, params, state, x, train=True, key=dropout_key)
    loss_fn = make_loss_fn(config, "softmax_cross_entropy_with_integer_labels")
    # or make_loss_fn(config, ..., label_smoothing=0.1): the smoothed cross-entropy
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y, key)

Layer ``l`` (``l = 0 .. L-1`` with ``L = len(layer_sizes) - 1`` weight layers) computes::

    z_l = h_{l-1} W_l + b_l                           (pre-activation, "dense output")
    u_l = BN(z_l)           if batch_norm and position == "before_activation" else z_l
    a_l = act(u_l)                                    (activation output)
    v_l = BN(a_l)           if batch_norm and position == "after_activation"  else a_l
    h_l = dropout(v_l)      if dropout_rate > 0                               else v_l

with ``h_{-1} = x``. Batch norm and dropout apply to hidden layers only; the last layer is
``outputs = output_activation(z_{L-1})``. With ``hidden_activation == "maxout"`` the dense
layer of a hidden layer has ``units * maxout_pieces`` outputs and maxout reduces them to
``units``; with ``"prelu"`` each hidden layer has a trainable per-unit slope ``"alpha"``.
``depth = L``: ``layer_sizes=(in, out)`` is a linear (or logistic) model.

Params are ``{"layers": [{"w", "b", "alpha"?, "bn": {"gamma", "beta"}?}, ...]}`` and the
non-trainable state is ``{"layers": [{"bn": {"mean", "var"}} or {}, ...]}``: both plain
pytrees that optax, ``jax.tree`` and ``flax.serialization`` accept.

Inputs with more than two axes are flattened to ``(batch, features)``.

Dropout masks come from :func:`dropout_key` (``fold_in(key, layer)``), the single place the
per-layer keys are derived, so :func:`apply` and :func:`jaxnn.backprop.forward` draw the same
masks from the same ``key``.

``MLPConfig`` is frozen and hashable: close over it, or pass it as a static argument of
``jax.jit``; ``train`` is a Python bool (mark it static when jitting).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import activations, initializers, layers, losses, regularizers

__all__ = [
    "MLPConfig",
    "apply",
    "check_loss",
    "dropout_key",
    "init",
    "make_loss_fn",
    "num_layers",
    "penalty",
]

Array = jax.Array
Params = dict[str, Any]

_POSITIONS = ("before_activation", "after_activation")
# Activations needing parameters or changing the width: only usable on hidden layers.
_HIDDEN_ONLY = ("prelu", "maxout")
_LINEAR = ("linear", "identity")


def _as_kwargs_tuple(value: Any, field: str) -> tuple[tuple[str, Any], ...]:
    if isinstance(value, Mapping):
        value = tuple(sorted(value.items()))
    try:
        pairs = tuple((str(k), v) for k, v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"MLPConfig: {field} must be a tuple of (name, value) pairs or a mapping, "
            f"got {value!r}"
        ) from None
    names = [k for k, _ in pairs]
    dup = sorted({k for k in names if names.count(k) > 1})
    if dup:  # a later pair silently won before
        raise ValueError(f"MLPConfig: {field} names {dup[0]!r} more than once: {value!r}")
    # One canonical order, as for a mapping: equal configs compare and hash equal (a jitted
    # step keyed on the config does not compile again for the same values in another order).
    return tuple(sorted(pairs, key=lambda kv: kv[0]))


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """Architecture and regularization of an MLP (frozen, hashable, validated).

    Attributes:
      layer_sizes: ``(in_features, hidden..., out_features)``; ``len >= 2``, each ``>= 1``.
      hidden_activation: any name in :func:`jaxnn.activations.names` (``prelu`` gets a
        trainable per-unit slope, ``maxout`` uses ``maxout_pieces``).
      output_activation: applied to the last layer: ``"linear"`` for logits (required by
        the cross-entropy losses), or e.g. ``"sigmoid"``/``"tanh"``/``"softmax"`` with mse.
        Not ``prelu`` or ``maxout``.
      activation_kwargs: keyword parameters of the hidden activation, e.g.
        ``(("negative_slope", 0.1),)`` (pairs are sorted by name; a mapping is accepted;
        a name given twice is an error). The output
        activation always uses its defaults.
      initializer: kernel initializer name(s) from :func:`jaxnn.initializers.names`: one for
        all layers or one per weight layer. Biases start at zero.
      initializer_kwargs: keyword parameters for the initializer(s), e.g. ``(("stddev", 0.01),)``.
      use_bias: ``True`` (every dense layer has a bias), ``False`` (none has) or
        ``"auto"``: no bias on the hidden layers whose output goes straight into batch
        norm (``batch_norm`` with ``batch_norm_position="before_activation"``), where the
        normalization subtracts the bias again and ``beta`` takes its place; a bias
        everywhere else. Which layers have one: :meth:`has_bias`.
      dropout_rate: drop probability on hidden layers, in ``[0, 1)``.
      dropout_inverted: inverted dropout (scale at training) or textbook (scale at eval).
      batch_norm: batch normalization on hidden layers.
      batch_norm_position: ``"before_activation"`` or ``"after_activation"``.
      batch_norm_momentum: running-statistics momentum, in ``[0, 1]``.
      batch_norm_eps: variance epsilon, > 0.
      maxout_pieces: pieces per unit when ``hidden_activation == "maxout"`` (>= 1).
      prelu_init: initial PReLU slope when ``hidden_activation == "prelu"``.
      l1: L1 penalty weight on weight matrices (``jaxnn.regularizers.is_weight``), >= 0.
      l2: L2 penalty weight, >= 0 (``0.5 * l2 * sum W^2``, gradient ``l2 * W``).
    """

    layer_sizes: tuple[int, ...]
    hidden_activation: str = "relu"
    output_activation: str = "linear"
    activation_kwargs: tuple[tuple[str, float], ...] = ()
    initializer: str | tuple[str, ...] = "he_normal"
    initializer_kwargs: tuple[tuple[str, float], ...] = ()
    use_bias: bool | str = True
    dropout_rate: float = 0.0
    dropout_inverted: bool = True
    batch_norm: bool = False
    batch_norm_position: str = "before_activation"
    batch_norm_momentum: float = 0.9
    batch_norm_eps: float = 1e-5
    maxout_pieces: int = 2
    prelu_init: float = 0.25
    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)
        # layer sizes
        sizes = self.layer_sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise ValueError(
                f"MLPConfig: layer_sizes must be a sequence of ints like (784, 128, 10), "
                f"got {sizes!r}"
            )
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"MLPConfig: layer_sizes needs at least 2 entries (in_features, out_features), "
                f"got {sizes!r}"
            )
        for s in sizes:
            # numbers.Integral: numpy ints too (e.g. ``x.shape[1]``, ``labels.max() + 1``).
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(
                    f"MLPConfig: layer_sizes entries must be ints >= 1, got {s!r} in {sizes!r}"
                )
        sizes = tuple(int(s) for s in sizes)
        set_("layer_sizes", sizes)
        n_layers = len(sizes) - 1

        # activations
        names = activations.names()
        for field in ("hidden_activation", "output_activation"):
            name = getattr(self, field)
            if not isinstance(name, str):
                raise ValueError(f"MLPConfig: {field} must be a string, got {name!r}")
            if name not in names:
                try:
                    activations.get(name)
                except (ValueError, TypeError) as e:
                    raise ValueError(f"MLPConfig: {field}: {e}") from None
                raise ValueError(
                    f"MLPConfig: {field} must be one of {names}, got {name!r}"
                )
        if self.output_activation in _HIDDEN_ONLY:
            raise ValueError(
                f"MLPConfig: output_activation={self.output_activation!r} is only supported on "
                f"hidden layers; use e.g. 'linear', 'sigmoid', 'tanh' or 'softmax'"
            )
        kwargs = _as_kwargs_tuple(self.activation_kwargs, "activation_kwargs")
        set_("activation_kwargs", kwargs)
        if self.hidden_activation in _HIDDEN_ONLY and kwargs:
            raise ValueError(
                f"MLPConfig: activation_kwargs must be empty for hidden_activation="
                f"{self.hidden_activation!r} (use maxout_pieces / prelu_init), got {dict(kwargs)!r}"
            )
        if self.hidden_activation not in _HIDDEN_ONLY:
            try:
                activations.get(self.hidden_activation, **dict(kwargs))
            except (ValueError, TypeError) as e:
                raise ValueError(f"MLPConfig: activation_kwargs={dict(kwargs)!r}: {e}") from None

        # initializers
        init = self.initializer
        inits = (init,) if isinstance(init, str) else tuple(init)
        if not inits or not all(isinstance(i, str) for i in inits):
            raise ValueError(
                f"MLPConfig: initializer must be a name or a tuple of names, got {init!r}"
            )
        if len(inits) not in (1, n_layers):
            raise ValueError(
                f"MLPConfig: initializer must be one name or one per weight layer "
                f"({n_layers} for layer_sizes={sizes!r}), got {len(inits)}: {init!r}"
            )
        set_("initializer", inits[0] if len(inits) == 1 else inits)
        ikw = _as_kwargs_tuple(self.initializer_kwargs, "initializer_kwargs")
        set_("initializer_kwargs", ikw)
        for name in dict.fromkeys(inits):
            try:
                initializers.get(name, **dict(ikw))
            except (ValueError, TypeError) as e:
                raise ValueError(
                    f"MLPConfig: initializer={name!r} with initializer_kwargs={ikw!r}: {e}"
                ) from None

        # scalars
        def check_bool(field: str) -> None:
            v = getattr(self, field)
            if not isinstance(v, bool):
                raise ValueError(f"MLPConfig: {field} must be True or False, got {v!r}")

        for field in ("dropout_inverted", "batch_norm"):
            check_bool(field)
        if not isinstance(self.use_bias, bool) and self.use_bias != "auto":
            raise ValueError(f"MLPConfig: use_bias must be True, False or 'auto', "
                             f"got {self.use_bias!r}")

        def check_number(field: str, ok: Callable[[float], bool], allowed: str) -> None:
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"MLPConfig: {field} must be a number {allowed}, got {v!r}")
            if not ok(float(v)):
                raise ValueError(f"MLPConfig: {field} must be {allowed}, got {v!r}")
            set_(field, float(v))

        check_number("dropout_rate", lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        check_number("batch_norm_momentum", lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        check_number("batch_norm_eps", lambda v: v > 0.0, "> 0")
        check_number("prelu_init", lambda v: True, "(finite)")
        check_number("l1", lambda v: v >= 0.0, ">= 0")
        check_number("l2", lambda v: v >= 0.0, ">= 0")
        if self.batch_norm_position not in _POSITIONS:
            raise ValueError(
                f"MLPConfig: batch_norm_position must be one of {_POSITIONS}, "
                f"got {self.batch_norm_position!r}"
            )
        p = self.maxout_pieces
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
            raise ValueError(f"MLPConfig: maxout_pieces must be an int >= 1, got {p!r}")
        set_("maxout_pieces", int(p))

    # -- derived quantities -----------------------------------------------------------

    @property
    def num_layers(self) -> int:
        """Number of weight layers, ``len(layer_sizes) - 1`` (the depth)."""
        return len(self.layer_sizes) - 1

    def dense_width(self, layer: int) -> int:
        """Output width of the dense part of ``layer`` (``units * pieces`` for maxout)."""
        units = self.layer_sizes[layer + 1]
        if self.hidden_activation == "maxout" and layer < self.num_layers - 1:
            return units * self.maxout_pieces
        return units

    def bn_width(self, layer: int) -> int:
        """Features normalized by the batch norm of hidden ``layer``."""
        if self.batch_norm_position == "before_activation":
            return self.dense_width(layer)
        return self.layer_sizes[layer + 1]

    def has_bias(self, layer: int) -> bool:
        """Whether dense ``layer`` has a bias (see ``use_bias``)."""
        if self.use_bias != "auto":
            return bool(self.use_bias)
        hidden = layer < self.num_layers - 1
        return not (hidden and self.batch_norm
                    and self.batch_norm_position == "before_activation")

    def layer_initializer(self, layer: int) -> str:
        """The kernel initializer name of ``layer``."""
        if isinstance(self.initializer, str):
            return self.initializer
        return self.initializer[layer]


def num_layers(config: MLPConfig) -> int:
    """Number of weight layers of ``config`` (``len(layer_sizes) - 1``)."""
    return config.num_layers


def dropout_key(key: Array, layer: int) -> Array:
    """The dropout key of hidden ``layer``: ``jax.random.fold_in(key, layer)``.

    Used by both :func:`apply` and :func:`jaxnn.backprop.forward`, so the autodiff path and
    the hand-written path drop the same units for the same ``key``.
    """
    return jax.random.fold_in(key, layer)


def init(config: MLPConfig, key: Array, *, dtype: Any = jnp.float32) -> tuple[Params, Params]:
    """Initial params and state of the MLP.

    Kernels use ``config.initializer`` (with ``initializer_kwargs``), biases are zero, batch
    norm starts at ``gamma = 1, beta = 0`` with running ``mean = 0, var = 1``, PReLU slopes
    at ``prelu_init``. ``key`` is split into one key per layer. Params are in ``dtype``; the
    batch-norm running statistics in ``promote_types(dtype, float32)`` (float32 for
    float16/bfloat16 params: a running variance past 65504 does not fit float16; see
    :func:`jaxnn.layers.batch_norm_init`).

    Returns:
      ``(params, state)`` as described in the module docstring.
    """
    n = config.num_layers
    keys = jax.random.split(key, n)
    ikw = dict(config.initializer_kwargs)
    p_layers, s_layers = [], []
    for l in range(n):
        kernel_init = initializers.get(config.layer_initializer(l), **ikw)
        p = layers.dense_init(
            keys[l],
            config.layer_sizes[l],
            config.dense_width(l),
            kernel_init=kernel_init,
            use_bias=config.has_bias(l),
            dtype=dtype,
        )
        s: dict[str, Any] = {}
        if l < n - 1:
            if config.hidden_activation == "prelu":
                p["alpha"] = jnp.full((config.layer_sizes[l + 1],), config.prelu_init, dtype)
            if config.batch_norm:
                p["bn"], s["bn"] = layers.batch_norm_init(config.bn_width(l), dtype)
        p_layers.append(p)
        s_layers.append(s)
    return {"layers": p_layers}, {"layers": s_layers}


def _activation(config: MLPConfig, name: str, hidden: bool) -> Callable[..., Array]:
    """Forward function ``f(u, layer_params)`` of the activation ``name``."""
    if name == "prelu":
        return lambda u, p: activations.prelu(u, p["alpha"])
    if name == "maxout":
        pieces = config.maxout_pieces
        return lambda u, p: activations.maxout(u, pieces)
    kwargs = dict(config.activation_kwargs) if hidden else {}
    f = activations.get(name, **kwargs)
    return lambda u, p: f(u)


def _check_params(config: MLPConfig, params: Params, fn: str) -> None:
    """Raise ValueError unless ``params`` has ``config``'s layers and kernel shapes (static
    shapes: checked once, at trace time). Without it, params with an extra layer ran the
    config's layers and ignored the rest, and a last layer of another width gave outputs of
    that width, silently."""
    expected = [(config.layer_sizes[l], config.dense_width(l)) for l in range(config.num_layers)]
    try:
        got = [tuple(layer["w"].shape) for layer in params["layers"]]
    except (KeyError, TypeError, AttributeError):
        raise ValueError(
            f"{fn}: params must be {{'layers': [{{'w', 'b'?, ...}}, ...]}} as made by "
            f"jaxnn.mlp.init, got {jax.tree.structure(params)}"
        ) from None
    if got != expected:
        raise ValueError(
            f"{fn}: params do not fit config.layer_sizes={config.layer_sizes}: their kernels "
            f"have shapes {got}, the config's are {expected}; use the config the params were "
            "made with (jaxnn.mlp.init)"
        )


def _flatten_input(x: Array) -> Array:
    return x.reshape(x.shape[0], -1) if x.ndim > 2 else x


def apply(
    config: MLPConfig,
    params: Params,
    state: Params,
    x: Array,
    *,
    train: bool,
    key: Array | None = None,
    probes: Mapping[str, Any] | None = None,
) -> tuple[Array, Params]:
    """The MLP's forward pass (see the module docstring for the layer equations).

    Args:
      config: the architecture.
      params, state: from :func:`init` (or trained).
      x: inputs of shape ``(batch, in_features)`` (more axes are flattened).
      train: training mode (batch statistics, dropout) or evaluation mode (running
        statistics, no dropout). A Python bool.
      key: PRNG key for dropout, required when ``train`` and ``dropout_rate > 0``.
      probes: optional ``{"input"?, "pre_activation"?, "activation"?: [array per layer]}``
        added to the layer input ``h_{l-1}``, to ``z_l`` and to ``a_l``. Pass zeros and
        differentiate with respect to them to read ``dL/dh_{l-1}``, ``dL/dz_l``, ``dL/da_l``
        with autodiff (how the tests check :mod:`jaxnn.backprop`'s layer gradients).

    Returns:
      ``(outputs, new_state)``; ``new_state`` carries updated batch-norm running statistics
      in training mode and is ``state`` in evaluation mode.
    """
    if train and config.dropout_rate > 0.0 and key is None:
        raise ValueError(
            f"apply: key is required when train=True and dropout_rate={config.dropout_rate} > 0, "
            "got key=None"
        )
    _check_params(config, params, "apply")
    probes = probes or {}

    def probe(kind: str, l: int, v: Array) -> Array:
        return v + probes[kind][l] if kind in probes else v

    n = config.num_layers
    hidden_act = _activation(config, config.hidden_activation, True)
    out_act = _activation(config, config.output_activation, False)
    bn_before = config.batch_norm_position == "before_activation"
    h = _flatten_input(x)
    new_layers = []
    for l in range(n):
        p, s = params["layers"][l], state["layers"][l]
        h = probe("input", l, h)
        z = probe("pre_activation", l, layers.dense_forward(p, h))
        if l == n - 1:
            h = probe("activation", l, out_act(z, p))
            new_layers.append(s)
            break
        new_s = dict(s)
        u = z
        if config.batch_norm and bn_before:
            u, _, new_s["bn"] = layers.batch_norm_forward(
                p["bn"], s["bn"], u, train=train,
                momentum=config.batch_norm_momentum, eps=config.batch_norm_eps,
            )
        a = probe("activation", l, hidden_act(u, p))
        if config.batch_norm and not bn_before:
            a, _, new_s["bn"] = layers.batch_norm_forward(
                p["bn"], s["bn"], a, train=train,
                momentum=config.batch_norm_momentum, eps=config.batch_norm_eps,
            )
        if config.dropout_rate > 0.0:
            a, _ = layers.dropout_forward(
                dropout_key(key, l) if (train and key is not None) else None,
                a, config.dropout_rate, train=train, inverted=config.dropout_inverted,
            )
        h = a
        new_layers.append(new_s)
    return h, {"layers": new_layers}


def penalty(config: MLPConfig, params: Params) -> Array:
    """``l1 * sum |W| + 0.5 * l2 * sum W^2`` over weight matrices (not biases, BN, alpha).

    Uses :func:`jaxnn.regularizers.l1` / :func:`jaxnn.regularizers.l2` with their default
    predicate ``is_weight``. Returns a scalar of the weights' dtype (0 when both are 0).
    """
    dtype = params["layers"][0]["w"].dtype
    total = jnp.zeros((), dtype)
    if config.l1 > 0.0:
        total = total + regularizers.l1(params, config.l1)
    if config.l2 > 0.0:
        total = total + regularizers.l2(params, config.l2)
    return total.astype(dtype)


def check_loss(config: MLPConfig, loss: str, fn: str, label_smoothing: float = 0.0) -> None:
    """Raise ValueError if ``loss`` is unknown or does not fit ``config.output_activation``,
    or if ``label_smoothing`` is not in ``[0, 1)`` or is nonzero for a loss without it."""
    if not isinstance(loss, str):
        raise ValueError(f"{fn}: loss must be a name from jaxnn.losses.names(), got {loss!r}")
    try:
        loss_fn = losses.get(loss)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{fn}: {e}") from None
    takes_logits = loss_fn in (
        losses.sigmoid_binary_cross_entropy,
        losses.softmax_cross_entropy,
        losses.softmax_cross_entropy_with_integer_labels,
    )
    if takes_logits and config.output_activation not in _LINEAR:
        raise ValueError(
            f"{fn}: loss={loss!r} takes logits, so output_activation must be 'linear', "
            f"got {config.output_activation!r}"
        )
    if loss not in losses.smoothable_names():
        a = label_smoothing
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or a != 0:
            valid = losses.smoothable_names()
            raise ValueError(
                f"{fn}: label_smoothing={a!r} needs a cross-entropy loss ({', '.join(valid)}), "
                f"got loss={loss!r}; use label_smoothing=0"
            )
        return
    try:
        losses.get(loss, label_smoothing=label_smoothing)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{fn}: {e}") from None


def make_loss_fn(
    config: MLPConfig, loss: str, *, label_smoothing: float = 0.0
) -> Callable[..., tuple[Array, dict[str, Any]]]:
    """The training objective as a function of the params, for ``jax.value_and_grad``.

    ``loss_fn(params, state, x, y, key=None, train=True) -> (loss, aux)`` with
    ``loss = losses.<loss>(outputs, y) (mean over the batch) + penalty(config, params)`` and
    ``aux = {"state": new_state, "outputs": outputs, "data_loss": data_loss}``; with
    ``label_smoothing=a`` the data loss is ``losses.<loss>(outputs, y, label_smoothing=a)``.

    Args:
      config: the architecture.
      loss: a name from :func:`jaxnn.losses.names`. The cross-entropy losses take logits and
        need ``output_activation="linear"``; mse works with any output activation.
      label_smoothing: in ``[0, 1)``, for the cross-entropy losses (see
        :mod:`jaxnn.losses`); 0 (default) is the unsmoothed loss, bit for bit. A nonzero
        value with ``mse`` is a ``ValueError``.
    """
    check_loss(config, loss, "make_loss_fn", label_smoothing)
    data_loss_fn = (losses.get(loss, label_smoothing=label_smoothing) if label_smoothing
                    else losses.get(loss))

    def loss_fn(
        params: Params,
        state: Params,
        x: Array,
        y: Array,
        key: Array | None = None,
        train: bool = True,
    ) -> tuple[Array, dict[str, Any]]:
        outputs, new_state = apply(config, params, state, x, train=train, key=key)
        data_loss = data_loss_fn(outputs, y)
        total = data_loss + penalty(config, params)
        return total, {"state": new_state, "outputs": outputs, "data_loss": data_loss}

    return loss_fn
