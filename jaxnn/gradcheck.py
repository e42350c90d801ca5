"""Check any gradient against autodiff and central finite differences, leaf by leaf.

Contract::

    report = check_gradients(fn, params, *args, grad_fn=my_grad)
    report.passed          # bool
    report.failed_leaves   # ("layers/1/w", ...): key paths of the leaves that disagree
    print(report)          # a table: one row per leaf

``fn(params, *args)`` is a scalar function (any pytree ``params`` of float arrays, any
``args``); ``grad_fn(params, *args)`` is the gradient under test and may return either
``grads`` (shaped like ``params``) or ``(value, grads)``, where ``value`` may itself be a
``(value, aux)`` pair; so ``jax.value_and_grad(fn, has_aux=True)`` and
:func:`jaxnn.backprop.value_and_grad` functions fit as they are. When ``grad_fn`` is None the
gradient under test is autodiff itself, checked against finite differences.

How the references are computed:

* **autodiff**: ``jax.grad(fn)`` in float64: params and the floating-point arrays among
  ``args`` are cast to float64 inside ``jax.enable_x64(True)``, so the check works when
  64-bit mode is off globally.
* **finite differences**: central differences in float64,
  ``(fn(p + h_i e_i) - fn(p - h_i e_i)) / (2 h_i)`` with ``h_i = eps * max(1, |p_i|)`` (a
  step relative to large parameters; the divisor is the step as rounded), for every element
  of small leaves and
  for ``max_fd_elements`` elements of larger leaves (chosen with a fixed seed), evaluated in
  batches under ``jit``/``vmap``.

Both references are compiled with ``jax.jit`` (``fn`` and ``args`` are closed over). A
``fn`` with Python control flow on values (which ``jit`` cannot trace but eager
``jax.grad`` can) is run eagerly instead, finite differences one element at a time (slow).

``grad_fn`` runs on params of ``dtype`` (default: the params' own dtype).

An ``fn`` that returns a narrower dtype whatever its params (a hard-coded
``astype(jnp.float32)``) gives finite differences only that accurate: its value's dtype at
float64 params (``report.value_dtype``) then sets ``fd_rtol`` (1e-3), the step (``eps =
cbrt(eps(dtype))``, 4.9e-3 for float32; 1e-6 would be below the rounding of a float32
value) and the resolution below; the report says so. The tolerance against autodiff is not
loosened (a value cast at the end has a float64-accurate gradient): for an ``fn`` that
computes in float32 inside, pass ``rtol=1e-3``.

How agreement is judged (per leaf, elementwise, ``g`` the gradient under test and ``r`` the
reference)::

    rel_i = |g_i - r_i| / max(|r_i|, floor * max_j |r_j|, atol / rtol)
    leaf passes  <=>  max_i rel_i <= rtol

that is, element ``i`` passes when ``|g_i - r_i| <= max(rtol |r_i|, rtol floor max_j |r_j|,
atol)``. Against finite differences the same rule runs with ``rtol_fd = max(rtol, fd_rtol)``
and ``atol_fd = max(atol * rtol_fd / rtol, noise_factor * ulp(value) / eps)``: the same floor
``atol / rtol`` in the denominator, and never below the *resolution* of a central
difference, whose rounding error alone is ``~ulp(fn(params)) / eps`` (2e-10 for a loss of
1.5 at ``eps=1e-6``), so a vanishing gradient of 1e-9 is judged against autodiff, not
against the rounding of its finite difference; the report states both pairs. ``max_j``
runs over the leaf (of the float64 autodiff gradient), so tiny entries of a leaf are judged
relative to that leaf's scale. ``atol`` is an absolute floor, 0 by default: every leaf is
judged on its own scale, so a wrong gradient in a leaf whose values are tiny next to the
others (the first layers of a deep net with vanishing gradients) fails, and leaves that
are zero up to rounding (the bias before a batch norm) pass through the noise floor below.
(Before 2026-12-03 the default was ``rtol * floor * max |r|`` over *all* leaves, which let
a zeroed first-layer gradient of 1e-9 pass next to last-layer gradients of 0.1.)

**Noise floor.** A leaf whose true gradient is exactly 0 (the bias before a batch norm: the
normalization cancels it) has no scale of its own: autodiff and a hand-written gradient both
return rounding noise there (or an exact 0), ``~eps(dtype)`` times the size of the terms that
cancel, and with ``atol=0`` (the default) no relative rule can accept that. So when a leaf
fails the rule above, it is judged again with a per-leaf noise floor ``N``, and elements
whose compared values differ by at most ``N`` (``|g_i - r_i| <= N``) count as "equal to
within rounding" and pass:

* against autodiff, ``N = noise_factor * max_i |a_i - r_i|``, the largest deviation from the
  float64 reference shown on that leaf by ``jax.grad(fn)`` itself run like ``grad_fn`` (in
  ``dtype``), at ``params`` and at 3 copies of ``params`` perturbed by about one ulp
  (so one lucky exact cancellation does not set ``N = 0``). This is
  ``eps(dtype) * (size of the leaf's cancelling contributions)``, measured rather than
  guessed;
* against finite differences, ``max(N, noise_factor * ulp(fn(params)) / eps, noise_factor *
  D)`` -- a central difference cannot resolve values below the rounding of ``fn``'s value
  divided by its step, and ``D = max_i |FD_h(i) - FD_2h(i)|`` over the leaf's checked
  elements measures that rounding where ``ulp(fn(params))`` underrates it: terms of order 1
  that cancel to a small value (a KL divergence near its optimum) or an ``fn`` computing
  in float32 inside and returning float64. Where ``fn`` is smooth and evaluated
  accurately, ``D`` is the step's truncation error (``~h^2 f'''``), far below a wrong
  gradient's; where the differences are rounding noise, ``D`` is of their size and the leaf
  is judged against autodiff alone. (Before 2026-12-05 ``jax.grad`` itself failed
  against the differences of such functions.)

A genuinely small gradient (vanishing gradients are products of small factors, computed to
full relative precision) sits far above its own noise and is still judged by the relative
rule; an error larger than ``N`` fails, whatever the size of the values (a sign error in an
element smaller than ``N`` too, once the element is above ``N / 2``). The same floor lets a
leaf pass whose small entries come from a cancellation (a confident softmax's ``p - 1``)
that no gradient in ``dtype`` resolves to ``rtol``, and a float16/bfloat16 gradient whose
rounding errors exceed ``rtol``: ``N`` is then the resolution of the check in that dtype.
(Before 2026-12-04 an element was excused when both ``|g_i|`` and ``|r_i|`` were at most
``N``: a sign error of up to ``N`` passed, and a correct value just above ``N`` failed.)
``noise_factor=0`` turns the floor off. The report gives, per leaf, ``max |g - r|`` and
``max rel_i`` against both references (over the elements not excused by the noise floor),
and lists the leaves that needed the floor.

**The value.** When ``grad_fn`` returns a value, it passes when ``|value_g - value| <=
max(rtol |value|, N_v)`` with ``N_v = noise_factor * max |v_j - value|``, the deviation of
``fn`` itself run in ``dtype`` at the same 4 points (measured only when the relative rule
fails): a loss near 0 from cancelling terms is judged at its rounding, a badly scaled one
(values ~1e-6) on its own scale. (Before 2026-12-04 the rule was ``rtol * max(|value|,
1)``: a value of 1e-5 returned twice too large passed in float32.)

:func:`check_mlp` builds a random MLP problem and checks :func:`jaxnn.backprop.value_and_grad`
with it; :func:`main` is the command line of ``scripts/gradcheck.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxnn import backprop, losses, mlp
from jaxnn._memory import device_memory_limit, tree_bytes

__all__ = [
    "GradCheckReport",
    "LeafReport",
    "check_gradients",
    "check_mlp",
    "default_tolerances",
    "main",
]

Array = jax.Array
_TINY = 1e-300
_EPS64 = float(np.finfo(np.float64).eps)
# A smaller step rounds to 0 (p +- eps max(1, |p|) == p): 0 / 0 finite differences.
_EPS_SMALL = f"eps must be >= {_EPS64:.2g} (float64's epsilon; a smaller step rounds to 0)"


@dataclasses.dataclass(frozen=True)
class LeafReport:
    """The check of one leaf.

    Attributes:
      path: key path, e.g. ``"layers/0/w"``.
      shape: the leaf's shape.
      max_abs_error: ``max |g - autodiff|`` (None when there is no ``grad_fn``).
      max_rel_error: ``max rel_i`` against autodiff (see the module docstring), or None.
      fd_max_abs_error: ``max |g - FD|`` over the checked elements (None when ``fd=False``).
      fd_max_rel_error: ``max rel_i`` against finite differences, or None.
      fd_elements: number of elements checked with finite differences.
      passed: whether the leaf is within tolerance against every reference.
      noise_floor: the noise floor ``N`` the leaf was judged with against autodiff (None
        when it passed without one; see the module docstring).
      fd_noise_floor: the same against finite differences.
      noise_elements: elements excused because the compared values differed by at most the
        noise floor (against either reference).
      worst_index: index (into the leaf's shape) of the element farthest outside the
        tolerance -- the largest ``rel_i / tolerance`` over both references; None for an
        empty leaf. For a failed leaf this is where to look first.
      worst_against: the reference it was worst against: ``"autodiff"`` or ``"fd"``.
      worst_value: the gradient under test at ``worst_index``.
      worst_reference: the reference's value there.
      worst_one_sided: ``(forward, backward)`` one-sided differences there, for a failed
        leaf whose worst element is against finite differences (else None).
      at_kink: that element sits at a kink of ``fn`` (relu at 0): the one-sided differences
        disagree by more than the tested value misses the central one, the value lies
        between them, and their gap does not shrink with the step (it halves with the step
        where ``fn`` is smooth). The printed report says so.
      narrow_dtype: ``"float16 for float32 params"`` when ``grad_fn`` returned this leaf in
        a dtype narrower than its params' (in ``dtype``): the leaf fails, whatever its
        values (a float16 gradient of float32 params is within ``rtol=1e-3`` of the
        reference, yet loses their precision; ``jax.grad`` returns the params' dtype).
    """

    path: str
    shape: tuple[int, ...]
    max_abs_error: float | None
    max_rel_error: float | None
    fd_max_abs_error: float | None
    fd_max_rel_error: float | None
    fd_elements: int
    passed: bool
    noise_floor: float | None = None
    fd_noise_floor: float | None = None
    noise_elements: int = 0
    worst_index: tuple[int, ...] | None = None
    worst_against: str | None = None
    worst_value: float | None = None
    worst_reference: float | None = None
    worst_one_sided: tuple[float, float] | None = None
    at_kink: bool = False
    narrow_dtype: str | None = None


@dataclasses.dataclass(frozen=True)
class GradCheckReport:
    """Result of :func:`check_gradients`.

    Attributes:
      leaves: one :class:`LeafReport` per leaf of ``params`` (flattening order).
      passed: every leaf (and the value, when ``grad_fn`` returned one) is within tolerance.
      checked: ``"grad_fn"`` or ``"autodiff"`` (when no ``grad_fn`` was given).
      dtype: dtype the gradient under test was computed in.
      rtol, atol, fd_rtol, floor, eps: the tolerances and the finite-difference step used
        (``fd_rtol`` as given; the comparison with finite differences uses :attr:`rtol_fd`
        and :attr:`atol_fd`).
      value: ``fn(params, *args)`` in float64.
      value_error: ``|value from grad_fn - value|`` when ``grad_fn`` returned a value.
      value_passed: whether ``value_error <= max(rtol * |value|, value_noise_floor)`` (True
        without one).
      noise_factor: the multiplier of the noise floor (0: none; see the module docstring).
      fd_resolution: ``noise_factor * ulp(value) / eps``, the smallest difference a central
        difference resolves (its rounding error is ``~ulp(value) / eps``): differences from
        finite differences below it are not judged (part of :attr:`atol_fd`).
      value_dtype: the dtype of ``fn``'s value at float64 params: ``"float64"`` unless
        ``fn`` computes in a narrower dtype whatever its params, which then limits the
        accuracy of both references (see the module docstring).
      value_noise_floor: ``N_v``, the rounding of ``fn``'s value in ``dtype`` (times
        ``noise_factor``) the value was judged with, when ``rtol * |value|`` alone failed it
        (else None; see the module docstring).
    """

    leaves: tuple[LeafReport, ...]
    passed: bool
    checked: str
    dtype: str
    rtol: float
    atol: float
    fd_rtol: float
    floor: float
    eps: float
    value: float
    value_error: float | None
    value_passed: bool
    noise_factor: float = 0.0
    fd_resolution: float = 0.0
    value_dtype: str = "float64"
    value_noise_floor: float | None = None

    @property
    def rtol_fd(self) -> float:
        """Relative tolerance of the comparison with finite differences:
        ``max(rtol, fd_rtol)``."""
        return max(self.rtol, self.fd_rtol)

    @property
    def atol_fd(self) -> float:
        """Absolute tolerance of the comparison with finite differences: the larger of
        ``atol * rtol_fd / rtol`` (the same floor ``atol / rtol`` in the denominator) and
        :attr:`fd_resolution`."""
        return max(self.atol * self.rtol_fd / self.rtol, self.fd_resolution)

    @property
    def failed_leaves(self) -> tuple[str, ...]:
        """Key paths of the leaves that failed."""
        return tuple(leaf.path for leaf in self.leaves if not leaf.passed)

    def __str__(self) -> str:
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2e}"

        fd = any(leaf.fd_max_abs_error is not None for leaf in self.leaves)
        head = (
            f"gradient check of {self.checked} ({self.dtype}) against autodiff"
            + (f" and central finite differences ({self.value_dtype}, eps={self.eps:g})\n"
               if fd else " (no finite differences)\n")
            + "an element passes when |g - ref| <= max(rtol |ref|, rtol floor max|leaf|, atol), "
            f"floor={self.floor:g}\n"
            f"tolerances vs autodiff: rtol={self.rtol:g}, atol={self.atol:.2e}\n"
        )
        if self.value_dtype != "float64":
            head += (
                f"note: fn returns a {self.value_dtype} value for float64 params, so finite "
                f"differences are only {self.value_dtype}-accurate: their default fd_rtol, eps "
                f"and resolution are {self.value_dtype}'s; if fn also computes in "
                f"{self.value_dtype} inside, autodiff is no more accurate: pass rtol=1e-3\n"
            )
        if fd:
            head += (
                f"tolerances vs FD: rtol={self.rtol_fd:g} (max of rtol and fd_rtol="
                f"{self.fd_rtol:g}), atol={self.atol_fd:.2e} (the larger of atol x "
                f"{self.rtol_fd:g} / {self.rtol:g} and the FD resolution "
                f"{self.fd_resolution:.2e} = {self.noise_factor:g} ulp(value) / eps)\n"
            )
        rows = [("leaf", "shape", "max|g-ad|", "rel(ad)", "max|g-fd|", "rel(fd)", "fd n", "")]
        for leaf in self.leaves:
            rows.append((
                leaf.path, str(leaf.shape), f(leaf.max_abs_error), f(leaf.max_rel_error),
                f(leaf.fd_max_abs_error), f(leaf.fd_max_rel_error), str(leaf.fd_elements),
                "ok" if leaf.passed else "FAIL",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        noisy = [leaf for leaf in self.leaves if leaf.noise_elements]
        notes = "".join(
            f"{leaf.path}: {leaf.noise_elements} element(s) equal to within rounding (|g - ref| "
            f"<= noise floor {f(leaf.noise_floor)} vs autodiff, "
            f"{f(leaf.fd_noise_floor)} vs FD; noise_factor={self.noise_factor:g})\n"
            for leaf in noisy
        )
        worst = "".join(
            f"{leaf.path}: worst element {list(leaf.worst_index)}: "
            f"{f(leaf.worst_value)} against {f(leaf.worst_reference)} from "
            f"{'autodiff' if leaf.worst_against == 'autodiff' else 'finite differences'}"
            + (f"; one-sided differences {f(leaf.worst_one_sided[0])} (forward) and "
               f"{f(leaf.worst_one_sided[1])} (backward) disagree: fn has a kink there (not "
               "differentiable; a one-sided gradient is a convention), move params off it"
               if leaf.at_kink else "")
            + "\n"
            for leaf in self.leaves if not leaf.passed and leaf.worst_index is not None
        )
        dtypes = "".join(
            f"{leaf.path}: grad_fn returns {leaf.narrow_dtype}: narrower than its params, it "
            "loses their precision (jax.grad returns the params' dtype)\n"
            for leaf in self.leaves if leaf.narrow_dtype)
        tail = notes + dtypes + worst + f"value: {self.value:.10g}"
        if self.value_error is not None:
            tail += f" (|error| of grad_fn's value: {self.value_error:.2e}"
            if self.value_noise_floor is not None:
                tail += f", noise floor {self.value_noise_floor:.2e}"
            tail += ", ok)" if self.value_passed else ", FAIL)"
        if self.passed:
            verdict = "PASSED"
        else:
            failed = ", ".join(self.failed_leaves) or "value"
            verdict = f"FAILED: {failed}"
        return head + "\n".join(lines) + "\n" + tail + "\n" + verdict


def default_tolerances(dtype: Any, value_dtype: Any = "float64") -> dict[str, float]:
    """Default ``rtol``, ``fd_rtol``, ``eps`` and ``floor`` for a gradient computed in ``dtype``.

    float64: ``rtol=1e-7``; float32: ``rtol=1e-3`` (float32 rounding against a float64
    reference). Narrower dtypes get the float32 value too, which a correct float16/bfloat16
    gradient misses (bfloat16 rounds to 2**-9 ~ 2e-3 alone): such a gradient passes
    through the noise floor instead (the rounding error of autodiff in that dtype, measured;
    see the module docstring), which is then the resolution of the check -- errors below it
    (a 1% error in bfloat16) cannot be told from rounding. Always ``fd_rtol=1e-5`` (central
    differences in float64 with ``eps=1e-6``: truncation ~eps^2, cancellation ~1e-16/eps),
    ``floor=1e-3``.

    ``value_dtype`` is the dtype of ``fn``'s value at float64 params: when it is narrower
    than float64, finite differences of it are no more accurate than it, so ``fd_rtol`` is
    1e-3 and ``eps = cbrt(eps(value_dtype))`` (4.9e-3 for float32: the step that balances
    truncation and rounding). ``rtol`` (against autodiff) stays that of ``dtype``: a value
    cast to float32 at the end says nothing of the accuracy of its gradient.
    """
    wide = jnp.dtype(dtype) == jnp.dtype("float64")
    exact = jnp.dtype(value_dtype) == jnp.dtype("float64")
    return {
        "rtol": 1e-7 if wide else 1e-3,
        "fd_rtol": 1e-5 if exact else 1e-3,
        "eps": 1e-6 if exact else float(jnp.finfo(value_dtype).eps) ** (1 / 3),
        "floor": 1e-3,
    }


def _ulp(value: float, dtype: Any) -> float:
    """Spacing of ``dtype``'s numbers at ``value`` (0 for a value that is not finite)."""
    if not math.isfinite(value):
        return 0.0
    if jnp.dtype(dtype) == jnp.dtype("float64"):
        return float(np.spacing(abs(value)))
    info = jnp.finfo(dtype)
    return float(info.eps) * 2.0 ** math.floor(math.log2(max(abs(value), float(info.tiny))))


def _path_str(path: Sequence[Any]) -> str:
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts) if parts else "<root>"


def _is_float_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic)) and jnp.issubdtype(
        x.dtype, jnp.floating
    )


def _cast(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: jnp.asarray(x, dtype) if _is_float_array(x) else x, tree)


def _split_grad_output(out: Any, treedef: Any) -> tuple[Any, Any]:
    if jax.tree.structure(out) == treedef:
        return None, out
    if isinstance(out, (tuple, list)) and len(out) == 2 and jax.tree.structure(out[1]) == treedef:
        value = out[0]
        if isinstance(value, (tuple, list)):
            value = value[0]
        return value, out[1]
    raise TypeError(
        "check_gradients: grad_fn must return grads shaped like params or (value, grads); got "
        f"an output with structure {jax.tree.structure(out)}, params have {treedef}"
    )


def _errors(
    g: np.ndarray, r: np.ndarray, leaf_max: float, floor: float, atol: float, rtol: float,
    noise: float = 0.0,
) -> tuple[float, float, int, int]:
    """``(max |g - r|, max rel_i, n, i)`` over a leaf; the ``n`` elements where
    ``|g_i - r_i|`` is at most ``noise`` (equal to within rounding) are left out of
    ``max rel_i``; ``i`` is the flat index of the largest ``rel_i`` (a NaN one first)."""
    if g.size == 0:
        return 0.0, 0.0, 0, -1
    err = np.abs(g - r)
    denom = np.maximum(np.abs(r), max(floor * leaf_max, atol / rtol if rtol > 0 else 0.0, _TINY))
    rel = err / denom
    n_noise = 0
    if noise > 0:
        # NaN compares False: a NaN element is never excused.
        # Not "both |g|, |r| <= noise": that excused a sign error of up to noise, and
        # failed a correct element just above it in a leaf with cancellations.
        quiet = err <= noise
        n_noise = int(np.sum(quiet))
        rel = np.where(quiet, 0.0, rel)
    # NaN anywhere counts as a failure (np.max propagates it; report inf).
    max_abs, max_rel = float(np.max(err)), float(np.max(rel))
    worst = int(np.argmax(np.where(np.isnan(rel), np.inf, rel)))
    return (math.inf if math.isnan(max_abs) else max_abs), (
        math.inf if math.isnan(max_rel) else max_rel
    ), n_noise, worst


#: Perturbed copies of params (besides params itself) the noise floor is measured on.
_NOISE_COPIES = 3


def _perturbed(params: Any, dtype: Any, rng: np.random.Generator) -> Any:
    """``params`` with every element scaled by ``1 + u eps(dtype)``, ``u ~ U(-1, 1)``: about
    one ulp, enough to change the rounding of every sum and nothing else."""
    def one(x: Any) -> Any:
        a = np.asarray(x)
        dt = a.dtype if jnp.issubdtype(a.dtype, jnp.floating) else np.dtype(dtype)  # bf16 too
        u = rng.uniform(-1.0, 1.0, a.shape)
        return jnp.asarray(a.astype(np.float64) * (1.0 + float(jnp.finfo(dt).eps) * u), dt)

    return jax.tree.map(one, params)


def _check_scalar_output(scalar_fn: Callable[[Any], Any], params: Any, has_aux: bool) -> None:
    """``fn`` (through ``scalar_fn``) must give one real scalar: say so, naming what it gave,
    instead of JAX's error from inside ``jax.grad``. Skipped for a function that cannot be
    traced abstractly (value-dependent Python control flow)."""
    try:
        out = jax.eval_shape(scalar_fn, params)
    except jax.errors.ConcretizationTypeError:
        return
    if isinstance(out, (tuple, list, dict)):
        hint = ("; pass has_aux=True when fn returns (value, aux)" if not has_aux
                else " as its value (the first element of (value, aux))")
        raise ValueError(f"check_gradients: fn returned a {type(out).__name__}, expected a "
                         f"scalar{hint}")
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"check_gradients: fn must return a real floating-point scalar (the loss), got "
            f"{'an array of shape ' + str(shape) if shape != () else 'a scalar'} of dtype "
            f"{dtype}; reduce it to one number (e.g. .mean() or .sum())"
        )


def _autodiff_noise(
    fn: Callable[..., Any], params: Any, args: tuple[Any, ...], reference: list[np.ndarray],
    value: float, *, has_aux: bool, wide: bool, traceable: bool, seed: int,
) -> tuple[list[float], float]:
    """Per leaf, ``max_i |a_i - r_i|`` over ``jax.grad(fn)`` run on ``params``/``args`` as
    given (the gradient under test's dtype) at ``params`` and at perturbed copies, against
    the float64 reference ``r``; and the same for ``fn``'s value against ``value``."""
    def scalar(p):
        out = fn(p, *args)
        return out[0] if has_aux else out

    value_and_grad = jax.value_and_grad(scalar)
    rng = np.random.default_rng([seed, 1])
    noise = [0.0] * len(reference)
    value_noise = 0.0
    with jax.enable_x64(True) if wide else contextlib.nullcontext():
        dtype = jnp.result_type(*jax.tree.leaves(params))
        value_and_grad = jax.jit(value_and_grad) if traceable else value_and_grad
        copies = [params] + [_perturbed(params, dtype, rng) for _ in range(_NOISE_COPIES)]
        for p in copies:
            v, g = value_and_grad(p)
            dev = abs(float(np.asarray(v, np.float64)) - value)
            value_noise = max(value_noise, dev if math.isfinite(dev) else 0.0)
            for i, (a, r) in enumerate(zip(jax.tree.leaves(g), reference, strict=True)):
                dev = np.abs(np.asarray(a, np.float64).reshape(r.shape) - r)
                if dev.size:
                    noise[i] = max(noise[i], float(np.nan_to_num(np.max(dev), nan=0.0,
                                                                 posinf=0.0)))
    return noise, value_noise


class _NotFinite(ValueError):
    """``fn``'s value is not finite at the params: no gradient can be checked there."""

    def __init__(self, message: str, value: float) -> None:
        super().__init__(message)
        self.value = value


def check_gradients(
    fn: Callable[..., Any],
    params: Any,
    *args: Any,
    grad_fn: Callable[..., Any] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    eps: float | None = None,
    fd: bool = True,
    max_fd_elements: int = 256,
    fd_rtol: float | None = None,
    floor: float | None = None,
    dtype: Any = None,
    has_aux: bool = False,
    seed: int = 0,
    fd_batch_size: int = 64,
    noise_factor: float = 8.0,
) -> GradCheckReport:
    """Compare ``grad_fn`` with float64 autodiff and central finite differences.

    Args:
      fn: ``fn(params, *args) -> scalar`` (or ``(scalar, aux)`` with ``has_aux=True``).
      params: pytree of floating-point arrays (the differentiated argument).
      *args: further arguments, passed unchanged except that floating-point arrays are
        cast to float64 for the references.
      grad_fn: the gradient under test, ``grad_fn(params, *args) -> grads`` or
        ``(value, grads)``; None checks autodiff against finite differences.
      rtol: relative tolerance against autodiff (default from :func:`default_tolerances`
        for the dtype of the gradient under test; with params of mixed precision and
        ``dtype=None``, for the least precise of them).
      atol: absolute floor (default 0: each leaf judged on its own scale, values zero to
        within rounding excused by the noise floor; see the module docstring).
      eps: finite-difference step (default ``1e-6``), relative for elements with
        ``|p_i| > 1`` (see the module docstring).
      fd: also compare with finite differences.
      max_fd_elements: finite differences for at most this many elements per leaf (a fixed
        random subset, from ``seed``, for larger leaves).
      fd_rtol: tolerance against finite differences (the larger of it and ``rtol`` is
        used; default ``1e-5``).
      floor: relative floor within a leaf (default ``1e-3``; see the module docstring).
      dtype: a floating dtype ``grad_fn`` runs in (params and floating ``args`` are
        cast); default None keeps the params' dtype.
      has_aux: ``fn`` returns ``(value, aux)``.
      seed: seed of the element subsets.
      fd_batch_size: perturbations evaluated together under ``vmap``.
      noise_factor: multiplier of the per-leaf noise floor: two values that differ by at
        most it count as equal to within rounding (default 8; 0 turns it off). It is only
        measured (``jax.value_and_grad(fn)`` in ``dtype`` at 4 points, and central
        differences at twice the step) for leaves, or a value, that fail without it; see
        the module docstring.

    Returns:
      A :class:`GradCheckReport`.

    Raises:
      ValueError: bad arguments, ``fn`` not finite at ``params``, or a leaf of ``grad_fn``'s
        output whose shape differs
        from the params leaf (``shape (4, 3) != expected (3, 4)``; a transposed gradient
        of the right size is not silently reshaped) or that is complex.
      TypeError: ``grad_fn``'s output is not shaped like ``params`` (tree structure).
    """
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not leaves_with_path:
        raise ValueError("check_gradients: params has no leaves")
    for path, leaf in leaves_with_path:
        if not (_is_float_array(leaf) or isinstance(leaf, float)):
            kind = getattr(leaf, "dtype", None) or type(leaf).__name__
            raise ValueError(
                f"check_gradients: every leaf of params must be a floating-point array, got "
                f"{kind} at {_path_str(path)!r}; pass values that are not differentiated "
                "(integer counters, labels, flags) through *args"
            )
    for name, v in (("max_fd_elements", max_fd_elements), ("fd_batch_size", fd_batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"check_gradients: {name} must be an int >= 1, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"check_gradients: seed must be an int >= 0, got {seed!r}")
    if dtype is not None:
        try:
            floating = jnp.issubdtype(dtype, jnp.floating)
        except TypeError:  # not a dtype at all
            floating = False
        if not floating:
            raise ValueError(
                f"check_gradients: dtype must be a floating-point dtype (float64, float32, "
                f"bfloat16, float16) or None, got {getattr(dtype, '__name__', dtype)!r}"
            )
    if grad_fn is None and not fd:
        raise ValueError(
            "check_gradients: grad_fn=None with fd=False compares nothing; pass the gradient "
            "under test as grad_fn, or fd=True to check autodiff against finite differences"
        )
    for name, v in (("rtol", rtol), ("fd_rtol", fd_rtol), ("eps", eps)):
        if v is not None and not 0 < v < math.inf:
            raise ValueError(f"check_gradients: {name} must be finite and > 0, got {v!r}")
    if eps is not None and eps < _EPS64:
        raise ValueError(f"check_gradients: {_EPS_SMALL}, got {eps!r}")
    if atol is not None and not 0 <= atol < math.inf:
        raise ValueError(f"check_gradients: atol must be finite and >= 0, got {atol!r}")
    if not 0 <= noise_factor < math.inf:
        raise ValueError(
            f"check_gradients: noise_factor must be finite and >= 0, got {noise_factor!r}")
    paths = [_path_str(p) for p, _ in leaves_with_path]

    # The gradient under test.
    value_test = None
    if grad_fn is not None:
        # A numpy leaf's own dtype: jnp.result_type would canonicalize float64 to float32
        # when 64-bit mode is off, judging a float64 gradient with float32 tolerances.
        # A Python float is weakly typed (float32 to jnp.result_type with 64-bit mode off):
        # it takes the precision of the array leaves, and sets it only when all are floats.
        leaf_dtypes = [np.dtype(leaf.dtype) if isinstance(leaf, (np.ndarray, np.generic))
                       else jnp.result_type(leaf) for _, leaf in leaves_with_path
                       if isinstance(leaf, np.generic) or not isinstance(leaf, float)] or [
            jnp.result_type(leaf) for _, leaf in leaves_with_path]
        # Params of mixed precision: the least precise leaf sets the default tolerances.
        test_dtype = jnp.dtype(dtype) if dtype is not None else max(
            leaf_dtypes, key=lambda d: jnp.finfo(d).eps
        )
        wide = jnp.dtype("float64") in ([test_dtype] if dtype is not None else leaf_dtypes)
        with jax.enable_x64(True) if wide else contextlib.nullcontext():
            p_test = _cast(params, test_dtype) if dtype is not None else params
            a_test = _cast(args, test_dtype) if dtype is not None else args
            out = grad_fn(p_test, *a_test)
            value_test, g_test = _split_grad_output(out, treedef)
            g_test = jax.tree.leaves(g_test)
            for path, g in zip(paths, g_test, strict=True):
                if jnp.iscomplexobj(g):
                    # Casting to float64 would drop the imaginary part and hide the error.
                    raise ValueError(
                        f"check_gradients: grad_fn's leaf {path!r} is complex "
                        f"({jnp.result_type(g)}); the gradient of real params must be real"
                    )
            # A gradient narrower than its params (float16 for float32) loses their
            # precision however close its values: the leaf fails (jax.grad keeps the dtype).
            narrow = []
            for (_, leaf), g in zip(jax.tree_util.tree_flatten_with_path(p_test)[0], g_test,
                                    strict=True):
                want, got = getattr(leaf, "dtype", None), jnp.result_type(g)
                narrow.append(f"{jnp.dtype(got).name} for {jnp.dtype(want).name} params"
                              if want is not None and jnp.promote_types(got, want) != got
                              else None)
            g_test = [np.asarray(x, np.float64) for x in g_test]
            if value_test is not None:
                v = np.asarray(value_test)
                # bfloat16 and the other ml_dtypes floats have kind "V", not "f".
                if v.size != 1 or not (v.dtype.kind in "biu"
                                       or jnp.issubdtype(v.dtype, jnp.floating)):
                    # float() of a vector was a bare numpy TypeError.
                    raise TypeError(
                        "check_gradients: the value grad_fn returns beside the grads must be "
                        f"one real number (fn's value), got shape {v.shape} dtype {v.dtype}"
                    )
                value_test = float(v.astype(np.float64).reshape(()))
        for path, (_, leaf), g in zip(paths, leaves_with_path, g_test, strict=True):
            expected = tuple(np.shape(leaf))
            if g.shape != expected:
                # Same size, other shape (a transposed W): reshaping would turn a shape bug
                # into a misleading value mismatch.
                hint = (" (a transposed gradient?)"
                        if len(expected) > 1 and g.shape == expected[::-1] else "")
                raise ValueError(
                    f"check_gradients: grad_fn's leaf {path!r} has shape {g.shape} != "
                    f"expected {expected}, the shape of that params leaf{hint}"
                )
    else:
        test_dtype = jnp.dtype("float64")
        narrow = [None] * len(paths)

    with jax.enable_x64(True):
        p64 = _cast(jax.tree.map(jnp.asarray, params), jnp.float64)
        a64 = _cast(args, jnp.float64)

        def scalar_fn(p):
            out = fn(p, *a64)
            return out[0] if has_aux else out

        _check_scalar_output(scalar_fn, p64, has_aux)
        try:  # compiled once; a function with value-dependent Python control flow
            value, g_ad = jax.jit(jax.value_and_grad(scalar_fn))(p64)
            traceable = True
        except jax.errors.ConcretizationTypeError:  # ... runs eagerly instead
            value, g_ad = jax.value_and_grad(scalar_fn)(p64)
            traceable = False
        # An fn that casts to a narrower dtype inside: the references are only that exact.
        value_dtype = jnp.dtype(jnp.result_type(value))
        value = float(value)
        if not math.isfinite(value):
            # Every comparison would read nan against nan, a "failed" gradient that says
            # nothing of the gradient: the point is what is wrong.
            raise _NotFinite(
                f"check_gradients: fn's value is {value} at these params (in float64), so no "
                "gradient can be checked there; check at params where fn is finite (smaller "
                "weights, another initializer or activation)", value)
        defaults = default_tolerances(test_dtype, value_dtype)
        rtol = defaults["rtol"] if rtol is None else float(rtol)
        fd_rtol = defaults["fd_rtol"] if fd_rtol is None else float(fd_rtol)
        eps = defaults["eps"] if eps is None else float(eps)
        floor = defaults["floor"] if floor is None else float(floor)
        g_ad = [np.asarray(x, np.float64) for x in jax.tree.leaves(g_ad)]

        fd_vals: list[np.ndarray | None] = [None] * len(g_ad)
        fd_idx: list[np.ndarray | None] = [None] * len(g_ad)
        if fd:
            flat, unravel = ravel_pytree(p64)
            rng = np.random.default_rng(seed)
            chosen, offset = [], 0
            for i, g in enumerate(g_ad):
                if g.size > max_fd_elements:
                    idx = np.sort(rng.choice(g.size, size=max_fd_elements, replace=False))
                else:
                    idx = np.arange(g.size)
                fd_idx[i] = idx
                chosen.append(idx + offset)
                offset += g.size
            all_idx = jnp.asarray(np.concatenate(chosen), jnp.int32)

            def one(v, i, step):
                # A step relative to |p_i| beyond 1 (as scipy's approx_derivative): a fixed
                # 1e-6 is below the rounding of p_i +- eps once |p_i| >~ 1e4. Dividing by the
                # step actually taken removes the rounding of p_i +- h as well.
                h = step * jnp.maximum(1.0, jnp.abs(v[i]))
                up, down = v.at[i].add(h), v.at[i].add(-h)
                return (scalar_fn(unravel(up)) - scalar_fn(unravel(down))) / (up[i] - down[i])

            central = jax.jit(lambda v, idx, step: jax.lax.map(
                lambda i: one(v, i, step), idx, batch_size=fd_batch_size))

            def central_differences(idx: np.ndarray, step: float) -> np.ndarray:
                """Central differences at the flat elements ``idx`` with step ``step``."""
                if idx.size == 0:  # only empty leaves: nothing to difference
                    return np.zeros(0)
                if traceable:
                    return np.asarray(central(flat, jnp.asarray(idx, jnp.int32), step),
                                      np.float64)
                return np.array([float(one(flat, int(i), step)) for i in idx])

            fd_all = central_differences(np.asarray(all_idx), eps)
            start = 0
            for i, idx in enumerate(fd_idx):
                fd_vals[i] = fd_all[start:start + idx.size]
                start += idx.size

    offsets = np.cumsum([0] + [g.size for g in g_ad])
    one_sided_cache: dict[int, tuple[float, float, bool]] = {}

    def one_sided(k: int) -> tuple[float, float, bool]:
        """Forward and backward differences at flat element ``k`` of the params, and whether
        their gap stays as the step halves (a kink) rather than halving (a smooth fn)."""
        if k not in one_sided_cache:
            with jax.enable_x64(True):
                f0 = float(scalar_fn(unravel(flat)))
                h = eps * max(1.0, abs(float(flat[k])))
                sides = []
                for step in (h, h / 2):
                    up, down = flat.at[k].add(step), flat.at[k].add(-step)
                    f_up, f_down = float(scalar_fn(unravel(up))), float(scalar_fn(unravel(down)))
                    sides.append(((f_up - f0) / float(up[k] - flat[k]),
                                  (f0 - f_down) / float(flat[k] - down[k])))
            (fw, bw), (fw2, bw2) = sides
            one_sided_cache[k] = (fw, bw, abs(fw2 - bw2) > 0.75 * abs(fw - bw))
        return one_sided_cache[k]

    if atol is None:
        atol = 0.0
    tol_fd = max(rtol, fd_rtol)
    # A central difference of fn in float64 is off by ~ulp(value) / eps from rounding alone:
    # smaller differences from it say nothing (vanishing gradients of 1e-9 failed against
    # their own finite differences with atol=0, while autodiff agreed to 1e-6).
    fd_floor = _ulp(value, value_dtype) / eps
    fd_resolution = noise_factor * fd_floor if fd else 0.0
    atol_fd = max(atol * tol_fd / rtol, fd_resolution)
    checked = g_test if grad_fn is not None else g_ad

    def judge(i: int, noise: float | None = None, fd_noise: float | None = None) -> LeafReport:
        ref = g_ad[i]
        leaf_max = float(np.max(np.abs(ref))) if ref.size else 0.0
        g = checked[i]  # shapes were checked above
        passed = True
        abs_ad = rel_ad = abs_fd = rel_fd = None
        n_noise = n_fd = 0
        # (rel / tolerance, flat index, against, reference value) of the worst element.
        worst: tuple[float, int, str, float] | None = None
        if grad_fn is not None:
            abs_ad, rel_ad, n_noise, w = _errors(g, ref, leaf_max, floor, atol, rtol,
                                                 noise or 0.0)
            passed &= rel_ad <= rtol and narrow[i] is None
            if w >= 0:
                worst = (rel_ad / rtol, w, "autodiff", float(ref.reshape(-1)[w]))
        if fd:
            idx = fd_idx[i]
            n_fd = int(idx.size)
            abs_fd, rel_fd, n_noise_fd, w = _errors(
                g.reshape(-1)[idx], fd_vals[i], leaf_max, floor, atol_fd, tol_fd,
                fd_noise or 0.0,
            )
            n_noise = max(n_noise, n_noise_fd)
            passed &= rel_fd <= tol_fd
            if w >= 0 and (worst is None or rel_fd / tol_fd > worst[0]):
                worst = (rel_fd / tol_fd, int(idx[w]), "fd", float(fd_vals[i][w]))
        where = {}
        if worst is not None:
            _, at, against, ref_value = worst
            value_at = float(g.reshape(-1)[at])
            where = dict(worst_index=tuple(int(k) for k in np.unravel_index(at, ref.shape)),
                         worst_against=against, worst_value=value_at,
                         worst_reference=ref_value)
            if against == "fd" and not passed:  # a kink, or a wrong gradient?
                fw, bw, steady = one_sided(int(offsets[i]) + at)
                lo, hi = sorted((fw, bw))
                where.update(worst_one_sided=(fw, bw), at_kink=bool(
                    steady and hi - lo > abs(value_at - ref_value)
                    and lo - 1e-3 * (hi - lo) <= value_at <= hi + 1e-3 * (hi - lo)))
        return LeafReport(
            path=paths[i], shape=tuple(ref.shape), max_abs_error=abs_ad, max_rel_error=rel_ad,
            fd_max_abs_error=abs_fd, fd_max_rel_error=rel_fd, fd_elements=n_fd,
            passed=bool(passed),
            noise_floor=noise if grad_fn is not None else None,
            fd_noise_floor=fd_noise if fd else None,
            noise_elements=n_noise,
            narrow_dtype=narrow[i],
            **where,
        )

    reports = [judge(i) for i in range(len(paths))]
    failing = [i for i, r in enumerate(reports) if not r.passed]
    value_error = None if value_test is None else abs(value_test - value)
    value_passed = value_error is None or value_error <= rtol * abs(value)
    value_noise = None
    if (failing or not value_passed) and noise_factor > 0:
        # Only now measure the rounding noise (extra evaluations of fn and its gradient):
        # judged again, values that differ by less than it agree (see the module docstring).
        if grad_fn is not None:
            noise, v_noise = _autodiff_noise(fn, p_test, a_test, g_ad, value, has_aux=has_aux,
                                             wide=wide, traceable=traceable, seed=seed)
        else:
            noise, v_noise = _autodiff_noise(fn, p64, a64, g_ad, value, has_aux=has_aux,
                                             wide=True, traceable=traceable, seed=seed)
        fd_noise = [0.0] * len(paths)
        fd_failing = [i for i in failing if fd and reports[i].fd_max_rel_error is not None
                      and reports[i].fd_max_rel_error > tol_fd]
        if fd_failing:
            # The rounding of a central difference, measured: ulp(value) / eps misses the
            # rounding of terms that cancel to a small value (a divergence near its
            # optimum) and of an fn computing in float32 inside; both show as a change of
            # the difference when the step doubles (where fn is smooth, that change is its
            # truncation error, 3 h^2 f'''/6, well below a wrong gradient's).
            with jax.enable_x64(True):
                wide_fd = central_differences(
                    np.concatenate([fd_idx[i] + offsets[i] for i in fd_failing]), 2 * eps)
            start = 0
            for i in fd_failing:
                part = wide_fd[start:start + fd_idx[i].size]
                start += fd_idx[i].size
                dev = np.abs(fd_vals[i] - part)
                fd_noise[i] = float(np.nan_to_num(np.max(dev), nan=0.0, posinf=0.0)
                                    if dev.size else 0.0)
        for i in failing:
            n = noise_factor * noise[i]
            reports[i] = judge(i, n, max(n, noise_factor * fd_floor,
                                         noise_factor * fd_noise[i]))
        if not value_passed:
            value_noise = noise_factor * v_noise
            value_passed = value_error <= value_noise
    return GradCheckReport(
        leaves=tuple(reports),
        passed=all(r.passed for r in reports) and value_passed,
        checked="grad_fn" if grad_fn is not None else "autodiff",
        dtype=str(test_dtype),
        rtol=rtol,
        atol=float(atol),
        fd_rtol=fd_rtol,
        floor=floor,
        eps=eps,
        value=value,
        value_error=value_error,
        value_passed=bool(value_passed),
        noise_factor=float(noise_factor),
        fd_resolution=float(fd_resolution),
        value_dtype=str(value_dtype),
        value_noise_floor=value_noise,
    )


def _mlp_problem(
    config: mlp.MLPConfig, loss: str, batch_size: int, seed: int
) -> tuple[Any, Any, Array, Array, Array]:
    """Float64 params, state, inputs, targets and a dropout key for ``config`` and ``loss``."""
    key = jax.random.PRNGKey(seed)
    k_init, k_x, k_y, k_drop = jax.random.split(key, 4)
    params, state = mlp.init(config, k_init, dtype=jnp.float64)
    n_out = config.layer_sizes[-1]
    x = jax.random.normal(k_x, (batch_size, config.layer_sizes[0]), jnp.float64)
    loss_fn = losses.get(loss)
    if loss_fn is losses.softmax_cross_entropy_with_integer_labels:
        y = jax.random.randint(k_y, (batch_size,), 0, n_out, dtype=jnp.int32)
    elif loss_fn is losses.softmax_cross_entropy:
        y = jax.nn.softmax(jax.random.normal(k_y, (batch_size, n_out), jnp.float64))
    elif loss_fn is losses.sigmoid_binary_cross_entropy:
        y = jax.random.uniform(k_y, (batch_size, n_out), jnp.float64)
    else:
        y = jax.random.normal(k_y, (batch_size, n_out), jnp.float64)
    return params, state, x, y, k_drop


def check_mlp(
    config: mlp.MLPConfig,
    loss: str,
    *,
    batch_size: int = 8,
    seed: int = 0,
    dtype: Any = jnp.float64,
    train: bool = True,
    label_smoothing: float = 0.0,
    **kwargs: Any,
) -> GradCheckReport:
    """Check :func:`jaxnn.backprop.value_and_grad` for ``config`` on a random problem.

    Draws params (``mlp.init``), standard-normal inputs and targets that fit ``loss``
    (integer labels, soft one-hot labels, labels in [0, 1], or normal regression targets)
    and a dropout key, all from ``seed``; the reference is autodiff of
    :func:`jaxnn.mlp.make_loss_fn` in float64 and finite differences.

    Args:
      config: the MLP.
      loss: a loss name matching ``config.output_activation``.
      batch_size: examples in the batch (>= 2 when batch norm is on, for a useful test).
      seed: seed of everything random.
      dtype: dtype the hand-written gradient runs in.
      train: training mode (dropout, batch statistics) or evaluation mode.
      label_smoothing: of a cross-entropy ``loss`` (``training.label_smoothing``).
      **kwargs: passed to :func:`check_gradients` (``rtol``, ``atol``, ``eps``, ``fd``, ...).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"check_mlp: batch_size must be an int >= 1, got {batch_size!r}")
    loss_fn = mlp.make_loss_fn(config, loss, label_smoothing=label_smoothing)
    vg = backprop.value_and_grad(config, loss, label_smoothing=label_smoothing)
    with jax.enable_x64(True):
        params, state, x, y, key = jax.jit(_mlp_problem, static_argnums=(0, 1, 2, 3))(
            config, loss, batch_size, seed
        )

    def fn(p, s, xb, yb, k):
        return loss_fn(p, s, xb, yb, k, train)[0]

    def grad_fn(p, s, xb, yb, k):
        return vg(p, s, xb, yb, k, train)

    return check_gradients(
        fn, params, state, x, y, key, grad_fn=jax.jit(grad_fn), dtype=dtype, **kwargs
    )


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes must be comma-separated ints like 4,16,16,3, got {text!r}"
        ) from None
    return sizes


def _kwarg(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--activation-kwarg must look like NAME=NUMBER, got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="gradcheck",
        description="Check the hand-written MLP gradient (jaxnn.backprop) against autodiff "
        "and finite differences; exit 0 when it passes, 1 when it fails, 2 on bad input.",
    )
    p.add_argument("--config", default=None,
                   help="take the model and loss from a training config (configs/*.yaml); "
                   "its data set gives the input and output sizes")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a value of --config (repeatable)")
    p.add_argument("--data-dir", default=None, help="IDX files for an MNIST-type --config")
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="layer sizes in,hidden...,out (default 4,16,16,3); with --config "
                        "they replace the config's input, hidden and output sizes, and the "
                        "data set is not loaded")
    p.add_argument("--activation", default=None, help="hidden activation (default tanh)")
    p.add_argument("--activation-kwarg", type=_kwarg, action="append", default=None,
                   metavar="NAME=VALUE", help="hidden activation parameter (repeatable)")
    p.add_argument("--output-activation", default=None, help="(default linear)")
    p.add_argument("--loss", default=None,
                   help="(default softmax_cross_entropy_with_integer_labels)")
    p.add_argument("--initializer", default=None, help="(default he_normal)")
    p.add_argument("--bias", choices=("true", "false", "auto"), default=None,
                   help="biases on every layer (true, the default), on none (false), or on "
                   "every layer but the hidden ones that feed batch norm before the "
                   "activation (auto)")
    p.add_argument("--no-bias", action="store_true", default=None, help="same as --bias false")
    p.add_argument("--batch-norm", action="store_true", default=None)
    p.add_argument("--batch-norm-position", default=None, help="(default before_activation)")
    p.add_argument("--dropout", type=float, default=None, help="dropout rate on hidden layers")
    p.add_argument("--textbook-dropout", action="store_true", default=None,
                   help="non-inverted dropout")
    p.add_argument("--maxout-pieces", type=int, default=None, help="(default 2)")
    p.add_argument("--l1", type=float, default=None)
    p.add_argument("--l2", type=float, default=None)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                   help="dtype of the hand-written gradient (references are float64)")
    p.add_argument("--eval", action="store_true", help="evaluation mode (train=False)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rtol", type=float, default=None)
    p.add_argument("--atol", type=float, default=None)
    p.add_argument("--eps", type=float, default=None)
    p.add_argument("--no-fd", action="store_true", help="skip finite differences")
    p.add_argument("--max-fd-elements", type=int, default=256)
    return p


_MODEL_FLAGS = {  # flag attribute -> (MLPConfig field, default, flag converter)
    "activation": ("hidden_activation", "tanh", None),
    "activation_kwarg": ("activation_kwargs", (), tuple),
    "output_activation": ("output_activation", "linear", None),
    "initializer": ("initializer", "he_normal", None),
    "bias": ("use_bias", True, lambda v: {"true": True, "false": False}.get(v, v)),
    "no_bias": ("use_bias", True, lambda v: not v),
    "batch_norm": ("batch_norm", False, None),
    "batch_norm_position": ("batch_norm_position", "before_activation", None),
    "dropout": ("dropout_rate", 0.0, None),
    "textbook_dropout": ("dropout_inverted", True, lambda v: not v),
    "maxout_pieces": ("maxout_pieces", 2, None),
    "l1": ("l1", 0.0, None),
    "l2": ("l2", 0.0, None),
}


def _from_flags(ns: argparse.Namespace) -> tuple[mlp.MLPConfig, str]:
    if ns.bias is not None and ns.no_bias:
        raise ValueError(f"--no-bias cannot be combined with --bias {ns.bias}; give one")
    fields: dict[str, Any] = {"layer_sizes": ns.sizes or (4, 16, 16, 3)}
    for attr, (field, default, conv) in _MODEL_FLAGS.items():
        v = getattr(ns, attr)
        if v is not None or field not in fields:
            fields[field] = default if v is None else (conv(v) if conv else v)
    return mlp.MLPConfig(**fields), ns.loss or "softmax_cross_entropy_with_integer_labels"


def _from_training_config(ns: argparse.Namespace) -> tuple[mlp.MLPConfig, str, float]:
    """The model and loss of a training config; its data set fixes the in/out sizes."""
    given = [attr for attr in _MODEL_FLAGS if getattr(ns, attr) is not None]
    if given or ns.loss is not None:
        flags = ", ".join("--" + a.replace("_", "-") for a in given + (["loss"] * bool(ns.loss)))
        raise ValueError(
            f"{flags} cannot be combined with --config; change the config with "
            "--set model.<field>=VALUE / --set training.loss=NAME instead"
        )
    from jaxnn import config as config_lib  # noqa: PLC0415 - the CLI only
    from jaxnn.train import loop  # noqa: PLC0415

    overrides = list(ns.overrides)
    if ns.data_dir is not None:
        # A path, not YAML (as in jaxnn.cli): "#" would start a comment, "2024" or "null"
        # change its type.
        overrides.append(f"data.data_dir={json.dumps(ns.data_dir)}")
    cfg = config_lib.load(ns.config, overrides)
    m, loss = cfg.model, cfg.training.loss
    if ns.sizes is not None:
        sizes = ns.sizes
    else:
        dataset = loop._load_dataset(cfg)
        loop._check_loss_matches(cfg, dataset)  # what training refuses is refused here too
        in_dim = int(np.prod(np.asarray(dataset.x_train).shape[1:]))
        sizes = (in_dim, *m.hidden_sizes, loop._output_size(dataset, loss))
    config = loop.mlp_config(m, sizes)
    return config, loss, cfg.training.label_smoothing


def _check_fits_memory(config: mlp.MLPConfig, batch_size: int) -> None:
    """Refuse a check whose float64 arrays alone exceed the device's memory (``--sizes
    99999999999,3`` sat allocating until the system killed it): four copies of the params
    (the params, both gradients, a finite-difference copy; shapes from ``jax.eval_shape`` of
    ``mlp.init``, so maxout pieces and batch norm count), the model state, and a few of
    each layer's activations for the batch -- a lower bound of what the check holds."""
    sizes = config.layer_sizes
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    params, state = jax.eval_shape(lambda k: mlp.init(config, k), key)
    to64 = 8 // jnp.dtype(jax.tree.leaves(params)[0].dtype).itemsize  # init's float32 -> 64
    need = to64 * (4 * tree_bytes(params) + tree_bytes(state)) + 8 * 4 * batch_size * sum(sizes)
    limit = device_memory_limit()
    if limit is not None and need > limit:
        raise ValueError(
            f"layer sizes {','.join(map(str, sizes))} with --batch-size {batch_size} need at "
            f"least {need / 2**30:.3g} GiB of float64 arrays, more than the device's "
            f"{limit / 2**30:.3g} GiB: use smaller --sizes or --batch-size"
        )


#: Options whose value may look like a negative number argparse does not recognize as one.
_NUMERIC_OPTIONS = ("--sizes", "--eps", "--rtol", "--atol")


def _join_sizes(argv: Sequence[str]) -> list[str]:
    """``--sizes -1,3`` as ``--sizes=-1,3`` (and ``--eps -1e-6`` as ``--eps=-1e-6``):
    argparse takes ``-1,3`` or ``-1e-6`` (not a plain negative number) for an option and
    said only "expected one argument"; joined, the option's own check names the value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if (argv[i] in _NUMERIC_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-")
                and argv[i + 1][1:2] in set("0123456789.")):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``scripts/gradcheck.py``; returns the exit status.

    Prints the report table. Returns 0 when the check passes, 1 when it fails and 2 on bad
    input (after a one-line ``error: ...`` on stderr, as the other CLIs, no traceback).
    """
    try:
        ns = _parser().parse_args(_join_sizes(sys.argv[1:] if argv is None else argv))
        if ns.config is not None:
            config, loss, smoothing = _from_training_config(ns)
        else:
            if ns.overrides or ns.data_dir is not None:
                raise ValueError("--set and --data-dir need --config")
            config, loss = _from_flags(ns)
            smoothing = 0.0
        mlp.check_loss(config, loss, "gradcheck", label_smoothing=smoothing)
        if ns.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {ns.batch_size}")
        if ns.batch_size == 1 and config.batch_norm and not ns.eval:
            raise ValueError(
                "--batch-size 1 with batch norm in training mode normalizes every unit to 0 "
                "(a batch of one has no variance), which puts kinked activations exactly at "
                "their kink: use --batch-size >= 2, or --eval"
            )
        if not 0 <= ns.seed < 2**32:  # PRNGKey keeps 32 bits without 64-bit mode
            raise ValueError(f"--seed must be an integer in [0, 2**32 - 1], got {ns.seed}")
        if ns.max_fd_elements < 1:
            raise ValueError(f"--max-fd-elements must be >= 1, got {ns.max_fd_elements}")
        for name in ("rtol", "eps"):
            v = getattr(ns, name)
            if v is not None and not 0 < v < math.inf:
                raise ValueError(f"--{name} must be finite and > 0, got {v}")
        if ns.eps is not None and ns.eps < _EPS64:
            raise ValueError(f"--{_EPS_SMALL}, got {ns.eps}")
        if ns.atol is not None and not 0 <= ns.atol < math.inf:
            raise ValueError(f"--atol must be finite and >= 0, got {ns.atol}")
        _check_fits_memory(config, ns.batch_size)
    except (_UsageError, ValueError, TypeError) as e:
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(f"model: {' -> '.join(map(str, config.layer_sizes))}, hidden "
          f"{config.hidden_activation}, output {config.output_activation}, loss {loss}"
          + (f" (label smoothing {smoothing})" if smoothing else ""))
    try:
        report = check_mlp(
            config,
            loss,
            batch_size=ns.batch_size,
            seed=ns.seed,
            dtype=ns.dtype,
            train=not ns.eval,
            label_smoothing=smoothing,
            rtol=ns.rtol,
            atol=ns.atol,
            eps=ns.eps,
            fd=not ns.no_fd,
            max_fd_elements=ns.max_fd_elements,
        )
    except _NotFinite as e:  # the loss at the drawn params: nothing to check there
        print(f"error: the loss is {e.value} at this model's random params (float64), so no "
              "gradient can be checked there: try another --initializer or --activation",
              file=sys.stderr)
        return 2
    print(report)
    return 0 if report.passed else 1
