"""Training-craft experiments: optimizers, batch size, schedules, overfitting, init, search.

Each experiment is one function ``run_<name>(config, workdir) -> result`` taking a plain
config mapping (defaults in ``<NAME>_DEFAULTS``; a YAML file and ``a.b=value`` overrides
are laid over them by :func:`load_config`) and writing a PNG figure and ``summary.md`` into
the workdir (the summary last: one that exists describes the figure beside it). :func:`main`
is the command line of ``scripts/compare.py``::

    python scripts/compare.py surface [--config configs/compare_surface.yaml]
        [--set surfaces.bowl.steps=50] [--workdir runs/compare/surface] [--overwrite]

Every experiment writes ``summary.md``, so one workdir holds one experiment: running an
experiment where another one's figure lies is refused before any training, unless
``--overwrite`` (``run_experiment(..., overwrite=True)``), which removes the other figure
once the new outputs are written. Running the same experiment again replaces its outputs
(and deletes the hidden temporaries that a run killed while writing them left there). Ctrl-C
exits with status 130 and one line, which names the workdir only when the run had written
there.

Subcommands (:data:`EXPERIMENTS`): ``surface``, ``optimizers``, ``batch_size``,
``schedules``, ``overfitting``, ``init``, ``batchnorm_scales``, ``search``. Bad input
(unknown key or value, a bool where a number belongs, two entries giving the same run
label, unreadable config, missing data) prints one line ``error: ...`` to stderr and exits
with status 2.

The experiments live in :mod:`~jaxnn.studies.craft_surface` (2-D surfaces),
:mod:`~jaxnn.studies.craft_regularization` (overfitting, init, batch norm vs weight
scale) and :mod:`~jaxnn.studies.craft_training` (schedules, batch size, optimizers on data,
random search); all are re-exported here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from jaxnn._atomic import set_aside
from jaxnn.config import (
    ensure_workdir,
    read_yaml,
    refuse_empty,
    refuse_other_kind,
    training_sections,
)
from jaxnn.studies.craft_common import ConfigError, merge_config
from jaxnn.studies.craft_engine import load_data, make_run
from jaxnn.studies.craft_regularization import (
    BATCHNORM_SCALES_DEFAULTS,
    INIT_DEFAULTS,
    OVERFITTING_DEFAULTS,
    early_stopping_epoch,
    run_batchnorm_scales,
    run_init,
    run_overfitting,
)
from jaxnn.studies.craft_surface import (
    SURFACE_DEFAULTS,
    SURFACES,
    SurfaceResult,
    optimize_surface,
    run_surface,
)
from jaxnn.studies.craft_training import (
    BATCH_SIZE_DEFAULTS,
    OPTIMIZERS_DEFAULTS,
    SCHEDULES,
    SCHEDULES_DEFAULTS,
    SEARCH_DEFAULTS,
    build_schedule,
    divergence_step,
    rank_trials,
    run_batch_size,
    run_optimizers,
    run_schedules,
    run_search,
    smoothing_window,
)

__all__ = [
    "BATCHNORM_SCALES_DEFAULTS",
    "BATCH_SIZE_DEFAULTS",
    "EXPERIMENTS",
    "INIT_DEFAULTS",
    "OPTIMIZERS_DEFAULTS",
    "OVERFITTING_DEFAULTS",
    "SCHEDULES",
    "SCHEDULES_DEFAULTS",
    "SEARCH_DEFAULTS",
    "SURFACES",
    "SURFACE_DEFAULTS",
    "SurfaceResult",
    "build_schedule",
    "divergence_step",
    "early_stopping_epoch",
    "load_config",
    "load_data",
    "main",
    "make_run",
    "optimize_surface",
    "rank_trials",
    "run_batch_size",
    "run_batchnorm_scales",
    "run_experiment",
    "run_init",
    "run_optimizers",
    "run_overfitting",
    "run_schedules",
    "run_search",
    "run_surface",
    "smoothing_window",
]

#: name -> (defaults, runner, figure file name, one-line description).
EXPERIMENTS: dict[str, tuple[Mapping[str, Any], Callable[..., Any], str, str]] = {
    "surface": (SURFACE_DEFAULTS, run_surface, "surface.png",
                "optimizers on 2-D surfaces (bowl, Rosenbrock, saddle)"),
    "optimizers": (OPTIMIZERS_DEFAULTS, run_optimizers, "optimizers.png",
                   "optimizers training an MLP on data, seeds vmapped"),
    "batch_size": (BATCH_SIZE_DEFAULTS, run_batch_size, "batch_size.png",
                   "full batch vs SGD (batch 1) vs mini-batch"),
    "schedules": (SCHEDULES_DEFAULTS, run_schedules, "schedules.png",
                  "learning-rate schedules; warm-up vs a large constant rate"),
    "overfitting": (OVERFITTING_DEFAULTS, run_overfitting, "overfitting.png",
                    "300 examples: baseline vs L2 vs dropout vs batch norm vs early stopping"),
    "init": (INIT_DEFAULTS, run_init, "init.png", "std 0.01 vs Xavier vs He initialization"),
    "batchnorm_scales": (BATCHNORM_SCALES_DEFAULTS, run_batchnorm_scales,
                         "batchnorm_scales.png", "batch norm vs none across 16 weight scales"),
    "search": (SEARCH_DEFAULTS, run_search, "search.png",
               "random search of learning rate and weight decay, trials vmapped"),
}


def load_config(name: str, path: str | pathlib.Path | None = None,
                overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config of experiment ``name``: its defaults, then ``path``, then ``overrides``.

    Raises:
      ConfigError: unknown experiment, unreadable file, unknown key or badly typed value.
    """
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    data = None
    if path is not None:
        data = read_yaml(path)
        refuse_empty(path, data, f"a config of the {name} experiment with at least one key")
        refuse_other_kind(path, data, list(EXPERIMENTS[name][0]),
                          f"a config of the {name} experiment", config_kinds(path, but=name))
    return merge_config(EXPERIMENTS[name][0], path, overrides, data=data)


def config_kinds(path: str | pathlib.Path, but: str) -> dict[str, tuple[list[str], str]]:
    """Every kind of config the command lines read but ``but`` (an experiment's name, or
    ``"depth study"``): ``{"a training config": (its top-level keys, the command that runs
    the file at path)}``, for :func:`jaxnn.config.refuse_other_kind`."""
    from jaxnn.studies import depth  # noqa: PLC0415 (depth imports this module lazily too)

    kinds = {"a training config": (list(training_sections()),
                                   f"scripts/train.py --config {path}")}
    if but != "depth study":
        kinds["a depth-study config"] = (
            [f.name for f in dataclasses.fields(depth.DepthStudyConfig)],
            f"scripts/depth_study.py --config {path}")
    kinds.update({f"a config of the {other} experiment": (
                      list(defaults), f"scripts/compare.py {other} --config {path}")
                  for other, (defaults, *_) in EXPERIMENTS.items() if other != but})
    return kinds


def _check_other_outputs(name: str, workdir: str | pathlib.Path, overwrite: bool, *,
                         cli: bool = False) -> list[str]:
    """The figures of other experiments in ``workdir`` (removed after an ``overwrite`` run).

    Raises :class:`ConfigError` when there are some and not ``overwrite``, worded for the
    command line (``--workdir``, ``--overwrite``) when ``cli``, else for a direct call.
    """
    found = [(other, figure) for other, (_, _, figure, _) in EXPERIMENTS.items()
             if other != name and (pathlib.Path(workdir) / figure).is_file()]
    figures = [f for _, f in found]
    if figures and not overwrite:
        which = " and ".join(o for o, _ in found)
        flag, arg = ("--overwrite", "--workdir") if cli else ("overwrite=True", "workdir")
        raise ConfigError(
            f"{arg} {str(workdir)!r} holds the outputs of the {which} "
            f"experiment{'s' if len(found) > 1 else ''} ({', '.join(figures)}); "
            f"choose another {arg}, or pass {flag} to replace them")
    return figures


def _set_aside_foreign_summary(workdir: pathlib.Path) -> None:
    """A ``summary.md`` beside no experiment's figure is not an experiment's (every one
    writes its figure before its summary): the user's own notes, say. An experiment's
    outputs replaced it without a word; it is set aside as ``summary.unmatched.md``."""
    if not (workdir / "summary.md").is_file() or any(
            (workdir / figure).is_file() for _, _, figure, _ in EXPERIMENTS.values()):
        return
    moved = set_aside(workdir / "summary.md")
    if moved is not None:
        print(f"warning: {str(workdir)!r} held a summary.md beside no experiment's figure; "
              f"set aside: summary.md -> {moved.name}", file=sys.stderr)


def run_experiment(name: str, config: Mapping[str, Any],
                   workdir: str | pathlib.Path | None = None, *,
                   overwrite: bool = False) -> Any:
    """Run experiment ``name`` with a (merged) config; writes into ``workdir`` when given.

    Every experiment writes ``summary.md``, so a workdir holding another experiment's
    figure is refused (before any training) unless ``overwrite``; with it, the other
    figures are removed once this experiment's outputs are written.

    Raises:
      ConfigError: unknown experiment, bad config, or a workdir holding another
        experiment's outputs without ``overwrite``.
    """
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    others = [] if workdir is None else _check_other_outputs(name, workdir, overwrite)
    if workdir is not None:
        _set_aside_foreign_summary(pathlib.Path(workdir))
    result = EXPERIMENTS[name][1](config, workdir)
    for figure in others:  # only now: a failed run leaves the other outputs as they were
        (pathlib.Path(workdir) / figure).unlink(missing_ok=True)
    return result


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line ``error: ...`` and exit status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="compare.py", description="Training-craft experiments (figure + summary.md).")
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, (_, _, figure, doc) in EXPERIMENTS.items():
        p = sub.add_parser(name, help=f"{doc} -> {figure}")
        p.add_argument("--config", default=None,
                       help=f"YAML config (e.g. configs/compare_{name}.yaml); defaults if omitted")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a config key (repeatable)")
        p.add_argument("--workdir", default=f"runs/compare/{name}",
                       help="output folder (default: %(default)s)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace another experiment's outputs in --workdir (without "
                            "it, such a workdir is refused)")
    return parser


def _check_workdir(workdir: str) -> pathlib.Path:
    """``workdir`` as a path, if it is or can become a writable directory; not created."""
    if not str(workdir).strip():  # pathlib reads '' as '.': outputs would land in the cwd
        raise ConfigError(f"--workdir {workdir!r}: expected a folder path, e.g. "
                          "runs/compare/surface")
    path = ensure_workdir(workdir, create=False)
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path.absolute() else (
            f"cannot be created ({str(existing)!r} is not writable)")
        raise ConfigError(f"--workdir {str(path)!r} {what}; choose another --workdir")
    return path


def _outputs_state(workdir: pathlib.Path | None) -> dict[str, tuple[int, int]] | None:
    """``name -> (inode, mtime_ns)`` of every experiment's output in ``workdir`` (figures
    and ``summary.md``); None when ``workdir`` is not (yet) a folder. An atomic write
    renames a new file over the old one, so a rewritten output changes its inode."""
    if workdir is None or not workdir.is_dir():
        return None
    names = ["summary.md", *(figure for _, _, figure, _ in EXPERIMENTS.values())]
    state = {}
    for name in names:
        try:
            st = (workdir / name).stat()
        except OSError:  # absent (or unreadable): not an output of this run
            continue
        state[name] = (st.st_ino, st.st_mtime_ns)
    return state


def _interrupted_message(name: str, workdir: pathlib.Path | None,
                         before: dict[str, tuple[int, int]] | None) -> str:
    """The Ctrl-C line: it names the workdir only when the run wrote something there."""
    after = _outputs_state(workdir)
    if workdir is None or after == before:
        return "interrupted before any output was written; run the command again"
    figure = EXPERIMENTS[name][2]
    if (figure in after and after[figure] != (before or {}).get(figure)
            and "summary.md" not in after):
        return (f"interrupted: {figure} in {str(workdir)!r} has no summary.md beside it: it "
                "is from this unfinished run; run the command again")
    return f"interrupted while writing into {str(workdir)!r}; run the command again"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``scripts/compare.py`` command line; returns the exit status.

    Prints the summary path and figure path on success; on bad input prints one line
    ``error: <message>`` to stderr and returns 2 (1 when writing fails, 130 on Ctrl-C: one
    line that names the workdir only when the run had written there).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage line
        return int(e.code or 0)
    workdir: pathlib.Path | None = None
    before: dict[str, tuple[int, int]] | None = None
    try:
        config = load_config(args.experiment, args.config, args.overrides)
        # An unusable workdir fails before the training, but it is only created once the
        # experiment's own checks have passed: the runners make it when they write, so bad
        # input leaves no empty folder behind.
        checked = _check_workdir(args.workdir)
        _check_other_outputs(args.experiment, checked, args.overwrite, cli=True)
        workdir, before = checked, _outputs_state(checked)
        run_experiment(args.experiment, config, workdir, overwrite=args.overwrite)
    except ConfigError as e:  # one line: a missing data set's message lists where it looked
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a full disk while writing the figure
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # as train.py and depth_study.py: no traceback
        print(_interrupted_message(args.experiment, workdir, before), file=sys.stderr)
        return 130
    figure = EXPERIMENTS[args.experiment][2]
    print(f"wrote {workdir / figure} and {workdir / 'summary.md'}")
    return 0
