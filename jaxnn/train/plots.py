"""PNG curves of a run's metrics (matplotlib, Agg backend: no display needed).

Figures are drawn on their own Agg canvas, without ``pyplot``: plotting a run leaves the
caller's matplotlib backend and open figures (a notebook's inline backend) untouched.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from jaxnn._atomic import replace_atomically

__all__ = ["FIGURES", "plot_history"]

#: The figures :func:`plot_history` may write, ``<name>.png`` each.
FIGURES = ("loss", "accuracy", "learning_rate")


def plot_history(rows: Sequence[dict], directory: str | pathlib.Path) -> list[pathlib.Path]:
    """Write ``loss.png`` (and ``accuracy.png``, ``learning_rate.png`` when logged).

    Args:
      rows: per-epoch metric dicts, each with an ``epoch`` key.
      directory: where the PNG files go.

    Returns:
      The paths written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not rows:
        return []
    epochs = [r["epoch"] for r in rows]
    written = []
    panels = [
        ("loss", ["loss", "val_loss", "test_loss"], "loss", True),
        ("accuracy", ["accuracy", "val_accuracy", "test_accuracy"], "accuracy", False),
        ("learning_rate", ["learning_rate"], "learning rate", True),
    ]
    for fname, keys, ylabel, logy in panels:
        present = [k for k in keys if any(k in r for r in rows)]
        if not present:
            continue
        fig = Figure(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for k in present:
            ax.plot(epochs, [r.get(k, float("nan")) for r in rows], marker="o", ms=3,
                    label=k.replace("loss", "loss").replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if logy and all(r.get(k, 1.0) > 0 for r in rows for k in present):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = directory / f"{fname}.png"
        replace_atomically(path, lambda tmp, fig=fig: fig.savefig(tmp, dpi=100))
        written.append(path)
    return written
