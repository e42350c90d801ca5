"""Weight penalties on parameter pytrees, each value beside its hand-written gradient.

Contract. Every penalty takes a params pytree, non-negative weight(s) and an optional
``predicate``, and returns a scalar; its ``*_grad`` twin returns a pytree with the
structure, shapes and dtypes of ``params`` (zeros on leaves that are not penalized)::

    l1(params, weight, *, predicate=None)               =       weight * sum_W sum |W|
    l2(params, weight, *, predicate=None)               = 0.5 * weight * sum_W sum W^2
    elastic_net(params, l1_weight, l2_weight, *, predicate=None) = l1 + l2

    l1_grad(params, weight)  = weight * sign(W)     (sign(0) = 0, see below)
    l2_grad(params, weight)  = weight * W

The sums run over the leaves ``W`` selected by ``predicate(path, leaf) -> bool``
(``path`` is the leaf's ``jax.tree_util`` key path). The default predicate
:func:`is_weight` selects floating leaves of rank >= 2, i.e. dense and convolution
kernels, and leaves out biases, batch-norm scale/offset and PReLU slopes (all 1-D).
Leaves that are not floating point (step counters, masks) are never penalized,
whatever the predicate says. The predicate must decide from the path, shape and dtype
only (it runs once at trace time, not on values).

Conventions.

* ``l2`` carries the factor 1/2 so that its gradient is ``weight * W``: the penalty
  then equals "weight decay" with coefficient ``weight`` for plain SGD. (Keras'
  ``L2(l)`` has no 1/2: ``keras L2(l) == l2(params, 2 * l)``.)
* ``|W|`` is not differentiable at 0; ``l1_grad`` uses the subgradient ``sign(0) = 0``
  (the minimum-norm element of ``[-1, 1]``), so an exact zero weight receives no push.
  ``l1`` and ``elastic_net`` differentiate the same way under ``jax.grad`` (their ``|W|``
  has a custom JVP), although ``jax.grad(jnp.abs)(0.0)`` is 1.0: autodiff and the
  hand-written gradients agree at 0 too, so a model trained from zero (or sparse)
  weights takes the same steps with either.
* Dtypes are kept: a float32 pytree gives a float32 value and float32 gradients,
  whatever the dtype of the weight (it is cast to each leaf's dtype). Values are
  accumulated in at least float32 and rounded once, so a float16 pytree whose sum of
  ``|W|`` or ``W^2`` exceeds 65504 still gets its finite weighted penalty. If no leaf is
  selected the value is 0 in the params' common floating dtype (float32 if none).

Weights are checked eagerly (finite real scalars >= 0, else ValueError); traced
weights (a sweep with ``vmap`` over regularization strengths, or a jitted argument)
cannot be checked and are used as they are. Everything here is jit- and vmap-safe.

References:
  * A. N. Tikhonov, "Solution of incorrectly formulated problems and the
    regularization method", Soviet Math. Dokl. 1963 (L2 / ridge).
  * R. Tibshirani, "Regression shrinkage and selection via the lasso", J. R. Stat.
    Soc. B 58(1), 1996 (L1).
  * H. Zou and T. Hastie, "Regularization and variable selection via the elastic
    net", J. R. Stat. Soc. B 67(2), 2005.
  * A. Krogh and J. A. Hertz, "A simple weight decay can improve generalization",
    NeurIPS 1991.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

__all__ = [
    "Predicate",
    "elastic_net",
    "elastic_net_grad",
    "exclude_names",
    "is_weight",
    "l1",
    "l1_grad",
    "l2",
    "l2_grad",
]

Array = jax.Array
PyTree = Any
KeyPath = tuple[Any, ...]
Predicate = Callable[[KeyPath, Any], bool]
"""``predicate(path, leaf) -> bool``: True when the leaf is penalized."""


# --------------------------------------------------------------------------------------
# Predicates
# --------------------------------------------------------------------------------------


def _is_floating(leaf: Any) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.floating)


def is_weight(path: KeyPath, leaf: Any) -> bool:
    """Default predicate: True for floating leaves of rank >= 2 (kernels).

    Biases ``(units,)``, batch-norm ``gamma``/``beta``, PReLU ``alpha`` and scalars are
    rank < 2 and therefore not penalized.

    Args:
      path: the leaf's key path (unused).
      leaf: an array or scalar.

    Returns:
      ``ndim(leaf) >= 2 and leaf has a floating dtype``.
    """
    del path
    return jnp.ndim(leaf) >= 2 and _is_floating(leaf)


def _entry_name(entry: Any) -> str:
    if isinstance(entry, jtu.DictKey):
        return str(entry.key)
    if isinstance(entry, jtu.GetAttrKey):
        return entry.name
    if isinstance(entry, jtu.SequenceKey):
        return str(entry.idx)
    if isinstance(entry, jtu.FlattenedIndexKey):
        return str(entry.key)
    return str(entry)


def exclude_names(*names: str, base: Predicate | None = None) -> Predicate:
    """Predicate factory: penalize every leaf whose key path contains none of ``names``.

    A path "contains" a name when one of its entries equals it exactly: a dict key,
    an attribute name, or a list index written as a string (``"0"``). Matching is by
    whole entry, so ``exclude_names("b")`` excludes ``{"b": ...}`` but not
    ``{"bn": ...}``.

    Example: ``exclude_names("b", "bn", "alpha")`` penalizes every other floating
    leaf of an MLP params pytree; ``exclude_names("embedding", base=is_weight)``
    penalizes the kernels except the embedding table.

    Args:
      *names: path entries to exclude (strings).
      base: optional predicate the leaf must also satisfy (default: none, i.e. every
        floating leaf not excluded by name is penalized).

    Returns:
      ``predicate(path, leaf) -> bool``.

    Raises:
      TypeError: a name is not a string, or ``base`` is not callable.
    """
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"jaxnn.regularizers.exclude_names: names must be strings, got {name!r}"
            )
    if base is not None and not callable(base):
        raise TypeError(
            f"jaxnn.regularizers.exclude_names: base must be a predicate (path, leaf) -> "
            f"bool or None, got {base!r}"
        )
    excluded = frozenset(names)

    def predicate(path: KeyPath, leaf: Any) -> bool:
        if any(_entry_name(entry) in excluded for entry in path):
            return False
        return True if base is None else bool(base(path, leaf))

    return predicate


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _check_weight(fn: str, argname: str, weight: Any) -> Any:
    """A concrete weight as a Python float (>= 0, finite); a tracer unchanged."""
    if isinstance(weight, jax.core.Tracer):
        return weight
    if isinstance(weight, (bool, str, bytes)) or np.ndim(weight) != 0:
        raise ValueError(f"{fn}: {argname} must be a real scalar >= 0, got {weight!r}")
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {argname} must be a real scalar >= 0, got {weight!r}") from None
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{fn}: {argname} must be a finite real >= 0, got {weight!r}")
    return value


def _selection(fn: str, params: PyTree, predicate: Predicate | None) -> tuple[list, list, Any]:
    """(leaves, selected flags, treedef) of ``params``."""
    if predicate is None:
        predicate = is_weight
    elif not callable(predicate):
        raise TypeError(
            f"{fn}: predicate must be a function (path, leaf) -> bool or None, got {predicate!r}"
        )
    with_path, treedef = jtu.tree_flatten_with_path(params)
    leaves, selected = [], []
    for path, leaf in with_path:
        keep = False
        if _is_floating(leaf):
            keep = predicate(path, leaf)
            if isinstance(keep, jax.core.Tracer) or np.ndim(keep) != 0:
                raise TypeError(
                    f"{fn}: predicate must return a concrete bool, got {keep!r} for leaf "
                    f"{jtu.keystr(path)} (decide from the path, shape and dtype, not values)"
                )
        leaves.append(leaf)
        selected.append(bool(keep))
    return leaves, selected, treedef


def _penalty(
    leaves: list, selected: list, weight: Any, per_leaf: Callable[[Array], Array]
) -> Array:
    """``weight * sum_W per_leaf(W)`` over the selected leaves, in their common dtype.

    Accumulated in at least float32 and cast once at the end: a float16 sum of |W| or
    W^2 overflows its maximum 65504 (e.g. sum |W| of a 4096 x 4096 kernel at He scale)
    long before the weighted penalty does. 0 in the params' common floating dtype
    (float32 if none) when nothing is selected.
    """
    chosen = [leaf for leaf, keep in zip(leaves, selected, strict=True) if keep]
    floats = chosen or [leaf for leaf in leaves if _is_floating(leaf)]
    dtype = jnp.result_type(*floats) if floats else jnp.dtype(jnp.float32)
    if not chosen:
        return jnp.zeros((), dtype)
    acc = jnp.promote_types(dtype, jnp.float32)
    total = functools.reduce(operator.add, [per_leaf(jnp.asarray(w, acc)) for w in chosen])
    return _weighted(weight, total).astype(dtype)


@jax.custom_jvp
def _abs(x: Array) -> Array:
    """``|x|`` whose derivative is ``sign(x)``, 0 at 0 (as :func:`l1_grad`), where
    ``jnp.abs``'s JVP gives 1."""
    return jnp.abs(x)


@_abs.defjvp
def _abs_jvp(primals: tuple, tangents: tuple) -> tuple[Array, Array]:
    (x,), (t,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * t


def _weighted(weight: Any, value: Array) -> Array:
    return jnp.asarray(weight, dtype=jnp.result_type(value)) * value


def _map_selected(
    leaves: list, selected: list, treedef: Any, fn: Callable[[Array], Array]
) -> PyTree:
    """``fn`` on each selected leaf, computed in at least float32 and rounded once to the
    leaf's dtype (in float16 a weight of 1e-7 is the subnormal 1.19e-7, so ``weight * W``
    formed there was 19% off ``jax.grad`` of the penalty), zeros elsewhere."""

    def widened(leaf: Array) -> Array:
        leaf = jnp.asarray(leaf)
        return fn(leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32))).astype(leaf.dtype)

    out = [
        widened(leaf) if keep else jnp.zeros_like(leaf)
        for leaf, keep in zip(leaves, selected, strict=True)
    ]
    return jtu.tree_unflatten(treedef, out)


# --------------------------------------------------------------------------------------
# Penalties
# --------------------------------------------------------------------------------------


def l1(params: PyTree, weight: float, *, predicate: Predicate | None = None) -> Array:
    """L1 (lasso) penalty: ``weight * sum_W sum_ij |W_ij|`` over the selected leaves.

    Args:
      params: a pytree of arrays.
      weight: penalty coefficient, a finite real >= 0.
      predicate: ``(path, leaf) -> bool``; default :func:`is_weight` (kernels only).

    Returns:
      A scalar in the params' floating dtype.

    Raises:
      ValueError: ``weight`` negative, non-finite or not a scalar.

    Reference:
      R. Tibshirani, Regression shrinkage and selection via the lasso, 1996.
    """
    fn = "jaxnn.regularizers.l1"
    weight = _check_weight(fn, "weight", weight)
    leaves, selected, _ = _selection(fn, params, predicate)
    return _penalty(leaves, selected, weight, lambda w: jnp.sum(_abs(w)))


def l1_grad(params: PyTree, weight: float, *, predicate: Predicate | None = None) -> PyTree:
    """Gradient of :func:`l1`: ``weight * sign(W)`` on selected leaves, 0 elsewhere.

    At ``W_ij = 0`` the subgradient ``sign(0) = 0`` is returned, as ``jax.grad`` of
    :func:`l1` gives (``jax.grad(jnp.abs)`` alone would give 1 there).

    Args:
      params: a pytree of arrays.
      weight: penalty coefficient, a finite real >= 0.
      predicate: ``(path, leaf) -> bool``; default :func:`is_weight`.

    Returns:
      A pytree shaped like ``params`` with the same dtypes.

    Raises:
      ValueError: ``weight`` negative, non-finite or not a scalar.
    """
    fn = "jaxnn.regularizers.l1_grad"
    weight = _check_weight(fn, "weight", weight)
    leaves, selected, treedef = _selection(fn, params, predicate)
    return _map_selected(leaves, selected, treedef, lambda w: _weighted(weight, jnp.sign(w)))


def l2(params: PyTree, weight: float, *, predicate: Predicate | None = None) -> Array:
    """L2 (ridge / weight-decay) penalty: ``0.5 * weight * sum_W sum_ij W_ij^2``.

    The factor 1/2 makes the gradient ``weight * W`` (see the module docstring).

    Args:
      params: a pytree of arrays.
      weight: penalty coefficient, a finite real >= 0.
      predicate: ``(path, leaf) -> bool``; default :func:`is_weight` (kernels only).

    Returns:
      A scalar in the params' floating dtype.

    Raises:
      ValueError: ``weight`` negative, non-finite or not a scalar.

    Reference:
      A. Krogh and J. A. Hertz, A simple weight decay can improve generalization, 1991.
    """
    fn = "jaxnn.regularizers.l2"
    weight = _check_weight(fn, "weight", weight)
    leaves, selected, _ = _selection(fn, params, predicate)
    return _penalty(leaves, selected, weight, lambda w: 0.5 * jnp.sum(jnp.square(w)))


def l2_grad(params: PyTree, weight: float, *, predicate: Predicate | None = None) -> PyTree:
    """Gradient of :func:`l2`: ``weight * W`` on selected leaves, 0 elsewhere.

    Args:
      params: a pytree of arrays.
      weight: penalty coefficient, a finite real >= 0.
      predicate: ``(path, leaf) -> bool``; default :func:`is_weight`.

    Returns:
      A pytree shaped like ``params`` with the same dtypes.

    Raises:
      ValueError: ``weight`` negative, non-finite or not a scalar.
    """
    fn = "jaxnn.regularizers.l2_grad"
    weight = _check_weight(fn, "weight", weight)
    leaves, selected, treedef = _selection(fn, params, predicate)
    return _map_selected(leaves, selected, treedef, lambda w: _weighted(weight, w))


def elastic_net(
    params: PyTree,
    l1_weight: float,
    l2_weight: float,
    *,
    predicate: Predicate | None = None,
) -> Array:
    """Elastic-net penalty: ``l1_weight * sum |W| + 0.5 * l2_weight * sum W^2``.

    Equal to ``l1(params, l1_weight) + l2(params, l2_weight)`` with the same predicate.

    Args:
      params: a pytree of arrays.
      l1_weight: L1 coefficient, a finite real >= 0.
      l2_weight: L2 coefficient, a finite real >= 0.
      predicate: ``(path, leaf) -> bool``; default :func:`is_weight`.

    Returns:
      A scalar in the params' floating dtype.

    Raises:
      ValueError: a weight negative, non-finite or not a scalar.

    Reference:
      H. Zou and T. Hastie, Regularization and variable selection via the elastic
      net, 2005.
    """
    fn = "jaxnn.regularizers.elastic_net"
    l1_weight = _check_weight(fn, "l1_weight", l1_weight)
    l2_weight = _check_weight(fn, "l2_weight", l2_weight)
    return l1(params, l1_weight, predicate=predicate) + l2(params, l2_weight, predicate=predicate)


def elastic_net_grad(
    params: PyTree,
    l1_weight: float,
    l2_weight: float,
    *,
    predicate: Predicate | None = None,
) -> PyTree:
    """Gradient of :func:`elastic_net`: ``l1_weight * sign(W) + l2_weight * W``.

    ``sign(0) = 0`` as in :func:`l1_grad`; zeros on leaves that are not selected.

    Args:
      params: a pytree of arrays.
      l1_weight: L1 coefficient, a finite real >= 0.
      l2_weight: L2 coefficient, a finite real >= 0.
      predicate: ``(path, leaf) -> bool``; default :func:`is_weight`.

    Returns:
      A pytree shaped like ``params`` with the same dtypes.

    Raises:
      ValueError: a weight negative, non-finite or not a scalar.
    """
    fn = "jaxnn.regularizers.elastic_net_grad"
    l1_weight = _check_weight(fn, "l1_weight", l1_weight)
    l2_weight = _check_weight(fn, "l2_weight", l2_weight)
    leaves, selected, treedef = _selection(fn, params, predicate)
    return _map_selected(
        leaves,
        selected,
        treedef,
        lambda w: _weighted(l1_weight, jnp.sign(w)) + _weighted(l2_weight, w),
    )
