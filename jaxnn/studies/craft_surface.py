r"""Optimizers on 2-D test surfaces: trajectories over contour plots.

Contract: a *surface* is a pure function ``f(p) -> scalar`` of a point ``p`` of shape
``(2,)``; :func:`optimize_surface` runs any optax / :mod:`jaxnn.optim` transformation on it
from a start point for a number of updates (one ``lax.scan``, jitted) and returns the
trajectory, ``steps + 1`` points including the start. :func:`run_surface` runs every
optimizer of a config on every surface, draws the trajectories over the contours
(``surface.png``) and writes ``summary.md`` with each final point, its value and its
distance to the nearest minimum.

The surfaces (:data:`SURFACES`):

* ``bowl``: :math:`f(x, y) = x^2/20 + y^2`, minimum at the origin; a valley 20 times
  flatter along :math:`x` than along :math:`y`, where plain SGD zig-zags.
* ``rosenbrock``: :math:`f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`, minimum at (1, 1) at
  the end of a curved, flat-bottomed valley.
* ``saddle``: :math:`f(x, y) = x^2 + y^4/4 - y^2/2`, a saddle at the origin and minima at
  :math:`(0, \pm 1)`; started almost on the ridge, an optimizer must escape along
  :math:`y`, where the gradient starts tiny.

Reference: the bowl experiment follows Saito, *Deep Learning from Scratch* (2016), ch. 6.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import optim
from jaxnn.studies.craft_common import (
    begin_outputs,
    check,
    check_distinct,
    is_int,
    is_number,
    markdown_table,
    pyplot,
    save_figure,
    write_summary,
)

__all__ = [
    "SURFACES",
    "SURFACE_DEFAULTS",
    "Surface",
    "SurfaceResult",
    "bowl",
    "optimize_surface",
    "path_length",
    "reversals",
    "rosenbrock",
    "run_surface",
    "saddle",
]


def bowl(p: jax.Array) -> jax.Array:
    r""":math:`f(x, y) = x^2/20 + y^2`; gradient :math:`(x/10,\ 2y)`; minimum 0 at (0, 0)."""
    return p[0] ** 2 / 20.0 + p[1] ** 2


def rosenbrock(p: jax.Array) -> jax.Array:
    r""":math:`f(x, y) = (1-x)^2 + 100(y-x^2)^2`; minimum 0 at (1, 1).

    Reference: Rosenbrock, "An automatic method for finding the greatest or least value of
    a function", The Computer Journal 3(3), 1960.
    """
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def saddle(p: jax.Array) -> jax.Array:
    r""":math:`f(x, y) = x^2 + y^4/4 - y^2/2`; saddle at (0, 0), minima -1/4 at (0, ±1)."""
    return p[0] ** 2 + p[1] ** 4 / 4.0 - p[1] ** 2 / 2.0


@dataclasses.dataclass(frozen=True)
class Surface:
    """A test surface: the function, its minima and the plotting window."""

    fn: Callable[[jax.Array], jax.Array]
    minima: tuple[tuple[float, float], ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    formula: str

    def distance(self, point: Any) -> float:
        """Euclidean distance from ``point`` to the nearest minimum."""
        p = np.asarray(point, dtype=np.float64)
        return float(min(np.hypot(*(p - np.asarray(m))) for m in self.minima))


SURFACES: dict[str, Surface] = {
    "bowl": Surface(bowl, ((0.0, 0.0),), (-10.0, 10.0), (-5.0, 5.0), "x²/20 + y²"),
    "rosenbrock": Surface(rosenbrock, ((1.0, 1.0),), (-2.0, 2.0), (-1.0, 3.0),
                          "(1 − x)² + 100 (y − x²)²"),
    "saddle": Surface(saddle, ((0.0, 1.0), (0.0, -1.0)), (-2.5, 2.5), (-2.0, 2.0),
                      "x² + y⁴/4 − y²/2"),
}

#: Default config of the ``surface`` experiment: per surface the start, the number of
#: updates and a table ``name -> {optimizer, learning_rate, kwargs}``.
SURFACE_DEFAULTS: dict[str, Any] = {
    "surfaces": {
        "bowl": {
            "start": [-7.0, 2.0],
            "steps": 30,
            "optimizers": {
                "SGD": {"optimizer": "sgd", "learning_rate": 0.95, "kwargs": {}},
                "Momentum": {"optimizer": "momentum", "learning_rate": 0.1, "kwargs": {}},
                "Nesterov": {"optimizer": "nesterov", "learning_rate": 0.1, "kwargs": {}},
                "AdaGrad": {"optimizer": "adagrad", "learning_rate": 1.5, "kwargs": {}},
                "RMSProp": {"optimizer": "rmsprop", "learning_rate": 0.3, "kwargs": {}},
                "Adam": {"optimizer": "adam", "learning_rate": 0.3, "kwargs": {}},
            },
        },
        "rosenbrock": {
            "start": [-1.5, 2.0],
            "steps": 300,
            "optimizers": {
                "SGD": {"optimizer": "sgd", "learning_rate": 0.001, "kwargs": {}},
                "Momentum": {"optimizer": "momentum", "learning_rate": 0.001, "kwargs": {}},
                "Nesterov": {"optimizer": "nesterov", "learning_rate": 0.001, "kwargs": {}},
                "AdaGrad": {"optimizer": "adagrad", "learning_rate": 0.5, "kwargs": {}},
                "RMSProp": {"optimizer": "rmsprop", "learning_rate": 0.01, "kwargs": {}},
                "Adam": {"optimizer": "adam", "learning_rate": 0.1, "kwargs": {}},
            },
        },
        "saddle": {
            "start": [-2.0, 0.001],
            "steps": 30,
            "optimizers": {
                "SGD": {"optimizer": "sgd", "learning_rate": 0.1, "kwargs": {}},
                "Momentum": {"optimizer": "momentum", "learning_rate": 0.1, "kwargs": {}},
                "Nesterov": {"optimizer": "nesterov", "learning_rate": 0.1, "kwargs": {}},
                "AdaGrad": {"optimizer": "adagrad", "learning_rate": 0.5, "kwargs": {}},
                "RMSProp": {"optimizer": "rmsprop", "learning_rate": 0.1, "kwargs": {}},
                "Adam": {"optimizer": "adam", "learning_rate": 0.3, "kwargs": {}},
            },
        },
    },
}


def optimize_surface(
    fn: Callable[[jax.Array], jax.Array],
    start: Sequence[float] | jax.Array,
    tx: optax.GradientTransformation,
    steps: int,
) -> jax.Array:
    """Minimize ``fn`` from ``start`` with ``tx`` for ``steps`` updates.

    Args:
      fn: ``f(p) -> scalar`` for ``p`` of shape ``(2,)`` (any shape works).
      start: the initial point.
      tx: the optimizer.
      steps: number of updates, ``>= 0``.

    Returns:
      The trajectory, float32 of shape ``(steps + 1, *start.shape)``; row 0 is ``start``.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"optimize_surface: steps must be an integer >= 0, got {steps!r}")
    p0 = jnp.asarray(start, jnp.float32)
    grad = jax.grad(fn)

    @jax.jit
    def run(p0: jax.Array) -> jax.Array:
        def body(carry, _):
            p, s = carry
            updates, s = tx.update(grad(p), s, p)
            p = optax.apply_updates(p, updates)
            return (p, s), p

        _, path = jax.lax.scan(body, (p0, tx.init(p0)), None, length=steps)
        return jnp.concatenate([p0[None], path])

    return run(p0)


@dataclasses.dataclass(frozen=True)
class SurfaceResult:
    """Per surface, per optimizer: trajectory, final value, distance, path length, reversals.

    ``path_length`` is the summed length of the updates; ``reversals`` counts consecutive
    updates pointing more than 90° apart (negative dot product): the zig-zag of SGD.
    ``diverged`` is the first update (1-based: row of the trajectory) whose point or value
    is not finite, None for a run that stayed finite; a diverged run's ``distance`` is inf.
    """

    trajectories: dict[str, dict[str, np.ndarray]]
    final_value: dict[str, dict[str, float]]
    distance: dict[str, dict[str, float]]
    path_length: dict[str, dict[str, float]]
    reversals: dict[str, dict[str, int]]
    diverged: dict[str, dict[str, int | None]]
    figure: pathlib.Path | None
    summary: pathlib.Path | None


def _make_tx(key: str, row: Mapping[str, Any]) -> optax.GradientTransformation:
    check(isinstance(row, Mapping) and "optimizer" in row and "learning_rate" in row,
          key, row, "a mapping with optimizer, learning_rate and optional kwargs")
    unknown = set(row) - {"optimizer", "learning_rate", "kwargs"}
    check(not unknown, key, row, "keys optimizer, learning_rate, kwargs")
    lr = row["learning_rate"]
    check(is_number(lr) and np.isfinite(lr) and lr > 0,
          f"{key}.learning_rate", lr, "a number > 0")
    kwargs = row.get("kwargs") or {}
    check(isinstance(kwargs, Mapping), f"{key}.kwargs", kwargs, "a mapping of keyword arguments")
    try:
        return optim.get(row["optimizer"], float(lr), **dict(kwargs))
    except (ValueError, TypeError) as e:
        from jaxnn.config import ConfigError

        raise ConfigError(f"{key}: {e}") from None


def run_surface(
    config: Mapping[str, Any], workdir: str | pathlib.Path | None = None
) -> SurfaceResult:
    """Run every optimizer of ``config`` on every surface; plot and summarize.

    Args:
      config: a mapping shaped like :data:`SURFACE_DEFAULTS` (surface names from
        :data:`SURFACES`).
      workdir: where ``surface.png`` and ``summary.md`` go (created); None writes nothing.

    Returns:
      A :class:`SurfaceResult`.

    Raises:
      jaxnn.config.ConfigError: unknown surface or optimizer, bad start, steps or rate.
    """
    surfaces = config["surfaces"]
    check(isinstance(surfaces, Mapping) and len(surfaces) > 0, "surfaces", surfaces,
          f"a non-empty mapping with names from {', '.join(SURFACES)}")
    traj: dict[str, dict[str, np.ndarray]] = {}
    final: dict[str, dict[str, float]] = {}
    dist: dict[str, dict[str, float]] = {}
    gone: dict[str, dict[str, int | None]] = {}
    for sname, spec in surfaces.items():
        check(sname in SURFACES, "surfaces", sname, ", ".join(SURFACES))
        surf = SURFACES[sname]
        start = spec["start"]
        check(isinstance(start, list | tuple) and len(start) == 2
              and all(is_number(v) and np.isfinite(v) for v in start),
              f"surfaces.{sname}.start", start, "a list of two finite numbers")
        steps = spec["steps"]
        check(is_int(steps) and 1 <= steps <= 100_000, f"surfaces.{sname}.steps",
              steps, "an integer in [1, 100000]")
        check(isinstance(spec["optimizers"], Mapping) and len(spec["optimizers"]) > 0,
              f"surfaces.{sname}.optimizers", spec["optimizers"], "a non-empty table")
        check_distinct(f"surfaces.{sname}.optimizers",
                       [(k, k) for k in spec["optimizers"]], "distinct names")
        traj[sname], final[sname], dist[sname], gone[sname] = {}, {}, {}, {}
        for oname, row in spec["optimizers"].items():
            tx = _make_tx(f"surfaces.{sname}.optimizers.{oname}", row)
            path32 = optimize_surface(surf.fn, start, tx, steps)
            # f of every point, in the float32 the optimizer saw (x² overflows there first)
            bad = ~(np.isfinite(np.asarray(path32)).all(axis=-1)
                    & np.isfinite(np.asarray(jax.vmap(surf.fn)(path32))))
            path = np.asarray(path32, dtype=np.float64)
            traj[sname][oname] = path
            final[sname][oname] = float(surf.fn(jnp.asarray(path[-1])))
            gone[sname][oname] = int(np.argmax(bad)) if bad.any() else None
            dist[sname][oname] = np.inf if bad.any() else surf.distance(path[-1])
    fig_path = summary_path = None
    lengths = {s: {o: path_length(p) for o, p in ps.items()} for s, ps in traj.items()}
    revs = {s: {o: reversals(p) for o, p in ps.items()} for s, ps in traj.items()}
    workdir = begin_outputs(workdir)  # the summary goes last: it describes this figure
    if workdir is not None:
        fig_path = _plot(traj, gone, workdir / "surface.png")
        summary_path = _summarize(config, traj, final, dist, lengths, revs, gone, workdir)
    return SurfaceResult(traj, final, dist, lengths, revs, gone, fig_path, summary_path)


def path_length(path: Any) -> float:
    """Total length of a trajectory: the sum of the update norms."""
    p = np.asarray(path, dtype=np.float64)
    return float(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=-1)))


def reversals(path: Any) -> int:
    """How many consecutive pairs of updates point more than 90° apart."""
    d = np.diff(np.asarray(path, dtype=np.float64), axis=0)
    return int(np.sum(np.sum(d[1:] * d[:-1], axis=-1) < 0))


def _plot(traj: Mapping[str, Mapping[str, np.ndarray]],
          gone: Mapping[str, Mapping[str, int | None]], path: pathlib.Path) -> pathlib.Path:
    plt = pyplot()
    n = len(traj)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.6), squeeze=False)
    for ax, (sname, paths) in zip(axes[0], traj.items(), strict=True):
        surf = SURFACES[sname]
        xs = np.linspace(*surf.xlim, 240)
        ys = np.linspace(*surf.ylim, 200)
        gx, gy = np.meshgrid(xs, ys)
        z = np.asarray(jax.vmap(jax.vmap(surf.fn, 1), 1)(jnp.stack([gx, gy])))
        z = z - z.min()
        levels = np.quantile(z, np.linspace(0.0, 1.0, 25) ** 2)[1:]
        ax.contour(gx, gy, z, levels=np.unique(levels), colors="0.75", linewidths=0.7)
        for oname, p in paths.items():
            lo = [surf.xlim[0] * 3, surf.ylim[0] * 3]
            p = np.clip(p, lo, [surf.xlim[1] * 3, surf.ylim[1] * 3])
            at = gone[sname][oname]
            ax.plot(p[:, 0], p[:, 1], "o-", ms=2.5, lw=1.1,
                    label=oname + (f" (diverged at update {at})" if at is not None else ""))
        for m in surf.minima:
            ax.plot(*m, "k+", ms=12, mew=2)
        ax.set_xlim(*surf.xlim)
        ax.set_ylim(*surf.ylim)
        steps = len(next(iter(paths.values()))) - 1
        ax.set_title(f"{sname}: f = {surf.formula}  ({steps} updates)", fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def _summarize(config, traj, final, dist, lengths, revs, gone,
               workdir: pathlib.Path) -> pathlib.Path:
    rows = []
    for sname, paths in traj.items():
        for oname, p in paths.items():
            row = config["surfaces"][sname]["optimizers"][oname]
            at = gone[sname][oname]
            if at is not None:  # no final point to speak of: say so instead of nan
                rows.append([sname, oname, row["optimizer"], float(row["learning_rate"]),
                             f"diverged at update {at}", "–", dist[sname][oname], "–", "–"])
                continue
            rows.append([sname, oname, row["optimizer"], float(row["learning_rate"]),
                         f"({p[-1, 0]:.4g}, {p[-1, 1]:.4g})", final[sname][oname],
                         dist[sname][oname], lengths[sname][oname], revs[sname][oname]])
    body = (
        "Each optimizer runs from the surface's start for the configured number of updates; "
        "`distance` is the Euclidean distance from the final point to the nearest minimum, "
        "`path length` the summed length of the updates and `reversals` the number of "
        "consecutive updates more than 90° apart (zig-zags). A run whose point or value "
        "stops being finite is reported as diverged at that update (distance inf).\n\n"
        + markdown_table(["surface", "name", "optimizer", "lr", "final point", "f(final)",
                          "distance", "path length", "reversals"], rows)
        + "\nFigure: `surface.png`.\n"
    )
    return write_summary(workdir, "Optimizers on 2-D surfaces", body)
