"""Command-line entry points (``scripts/*.py`` and the ``jaxnn-train`` console script).

Bad input never shows a traceback: it prints one line, ``error: ...``, on stderr and
exits with status 2 (so does a model or batch too large for the device's memory). A
diverged run exits with status 3, an interrupted one with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["EXIT_DIVERGED", "EXIT_INTERRUPTED", "EXIT_USAGE", "exit_with", "train_entry",
           "train_main", "warn_unused_data_dir"]

EXIT_USAGE = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _train_parser() -> argparse.ArgumentParser:
    p = _Parser(
        # the console entry point names itself in --help and in usage errors
        prog="jaxnn-train" if pathlib.Path(sys.argv[0]).name == "jaxnn-train" else "train.py",
        description="Train an MLP from a YAML config (default: the embedded digits job).",
    )
    p.add_argument("--config", help="YAML config file (default: configs/default.yaml values)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set optimizer.learning_rate=3e-4 (repeatable)",
    )
    p.add_argument("--workdir", help="run directory (default: runs/<config name>, or "
                   "runs/<config name>-2... when that holds a run)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --workdir from its newest good checkpoint")
    p.add_argument("--devices", type=int,
                   help="data parallelism over N devices (0: all, of every process)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="multi-process run: process 0's address, the same for every process")
    p.add_argument("--num-processes", type=int, metavar="N",
                   help="multi-process run: how many processes take part")
    p.add_argument("--process-id", type=int, metavar="I",
                   help="multi-process run: this process's id in [0, N); 0 writes the files")
    p.add_argument("--data-dir", help="directory holding the MNIST / Fashion-MNIST IDX files")
    p.add_argument("--quiet", action="store_true",
                   help="print only errors and warnings: no progress bar, epoch lines, final "
                        "metrics or 'run directory:' line (give --workdir to know where the "
                        "run goes; its history.json holds the final metrics)")
    return p


#: The status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


def exit_with(status: int) -> None:
    """End a command-line script with ``status``.

    After Ctrl-C (``status`` 130) the process ends at once, once its output is flushed:
    interrupted during a compile, the interpreter's normal shutdown could crash in XLA
    (a segmentation fault, exit 139, after the one-line message). The run's files are
    whole by then (every write is atomic). Other statuses exit normally.
    """
    if status == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to say
                pass
        os._exit(EXIT_INTERRUPTED)
    sys.exit(status)


def train_entry() -> None:
    """:func:`train_main`, then :func:`exit_with`, started like the ``jaxnn-train`` console
    command (:func:`jaxnn._launch.train`: a Ctrl-C while JAX loads is one line, status 130);
    kept for installs whose console script still names this function."""
    from jaxnn._launch import train

    train()


def train_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/train.py``: parse arguments, run :func:`jaxnn.train.train_and_evaluate`."""
    parser = _train_parser()
    args, stray = parser.parse_known_args(argv)
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}{_split_set_hint(args, stray)}")
    import jax

    from jaxnn import config as config_lib
    from jaxnn.config import ConfigError
    from jaxnn.data import DataError
    from jaxnn.train import (
        CheckpointError,
        CheckpointManager,
        DivergenceError,
        train_and_evaluate,
    )
    from jaxnn.train.distributed import is_main_process

    workdir = args.workdir
    try:
        # An empty path (an unset shell variable: --workdir "$RUN") was read as "not given":
        # the run went to runs/<config name> and --config '' became the folder '.'.
        for flag, value, instead in (("--config", args.config, "the default job"),
                                     ("--workdir", args.workdir, "runs/<config name>")):
            if value is not None and not value.strip():
                raise ConfigError(f"{flag} {value!r}: an empty path; give one, or leave "
                                  f"{flag} out for {instead}")
        overrides = list(args.overrides)
        if args.devices is not None:
            overrides.append(f"training.devices={args.devices}")
        if args.coordinator is not None:
            # JSON quoting: YAML would read some HOST:PORT strings as numbers (base 60).
            overrides.append(f"distributed.coordinator_address={json.dumps(args.coordinator)}")
        if args.num_processes is not None:
            overrides.append(f"distributed.num_processes={args.num_processes}")
        if args.process_id is not None:
            overrides.append(f"distributed.process_id={args.process_id}")
        if args.data_dir is not None:
            # A path, not YAML: "#" would start a comment, "2024" or "null" change type.
            overrides.append(f"data.data_dir={json.dumps(args.data_dir)}")
        if args.resume:
            if args.workdir is None:
                raise ConfigError("--resume needs --workdir (the run directory to continue)")
            saved = pathlib.Path(args.workdir) / "config.yaml"
            if args.config is not None:
                raise ConfigError(
                    "--resume continues with the run's own config.yaml; drop --config "
                    "(use --set to change a value such as training.epochs)"
                )
            if pathlib.Path(args.workdir).exists() and not pathlib.Path(args.workdir).is_dir():
                raise ConfigError(f"--resume: --workdir {args.workdir!r} is a file, not a run "
                                  "directory; give the folder of the run to continue")
            if not saved.exists():
                raise ConfigError(f"--resume: {str(saved)!r} does not exist; nothing to resume")
            cfg = config_lib.load(saved, overrides)
            workdir = args.workdir
        else:
            cfg = config_lib.load(args.config, overrides)
            stem = pathlib.Path(args.config).stem if args.config else "default"
            workdir = args.workdir or str(config_lib.fresh_workdir(
                pathlib.Path("runs") / stem, ("checkpoints", "history.json")))
            config_lib.ensure_workdir(workdir, create=False)  # a file is named
        if _main_process(cfg):
            warn_unused_data_dir(cfg.data.name, cfg.data.data_dir, "data.data_dir")
            _warn_test_set_monitors(cfg)
        # --quiet is this invocation's, not the run's: it is not saved in config.yaml.
        train_and_evaluate(cfg, workdir, resume=args.resume, quiet=args.quiet)
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except DivergenceError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except OSError as e:  # an unwritable run directory, a full disk...
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except jax.errors.JaxRuntimeError as e:
        if not _out_of_memory(e):
            raise
        print(f"error: out of memory ({_one_line(str(e).splitlines()[0])}); use smaller "
              "model.hidden_sizes, training.batch_size or training.eval_batch_size",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        ckpts = CheckpointManager(pathlib.Path(workdir or ".") / "checkpoints")
        if workdir is not None and ckpts.epochs():
            print(f"interrupted: the last complete checkpoint is kept; continue with "
                  f"--workdir {workdir} --resume", file=sys.stderr)
        else:  # --resume would fail: say so rather than suggest it
            print("interrupted before the first checkpoint was written: no checkpoint to "
                  "resume from; run the command again", file=sys.stderr)
        return 130
    if not args.quiet and is_main_process():
        print(f"run directory: {workdir}", file=sys.stderr)
    return 0


def _split_set_hint(args: argparse.Namespace, stray: Sequence[str]) -> str:
    """For ``--set training.epochs 5`` (a space for the "="): the one-word form to use."""
    bare = [o for o in args.overrides if "=" not in o]
    if not bare or stray[0].startswith("-"):
        return ""
    value = stray[1] if stray[0] == "=" and len(stray) > 1 else stray[0]
    return f"; --set takes KEY=VALUE as one word: --set {bare[-1]}={value}"


def _main_process(cfg: Any) -> bool:
    """Whether this process is process 0 of the run, read from the config and environment
    without starting JAX (``jax.process_index()`` would start its backend before
    ``jax.distributed.initialize``, which then refuses to run)."""
    from jaxnn.train.distributed import resolve

    return resolve(cfg.distributed).process_id == 0


def warn_unused_data_dir(name: str, data_dir: str | None, key: str) -> None:
    """One stderr line when ``data_dir`` is set for a data set that reads no files (it would
    be ignored without a word, and a user who meant MNIST would not notice); ``key`` is the
    setting's name as the command line's user wrote it. Used by train.py and
    depth_study.py."""
    from jaxnn.data import names, reads_files

    if data_dir and not reads_files(name):
        print(f"warning: {key}={data_dir!r} is ignored: the {name!r} data set reads no files "
              f"(only {' and '.join(n for n in names() if reads_files(n))} do)", file=sys.stderr)


def _warn_test_set_monitors(cfg: Any) -> None:
    """One stderr line per enabled early stopping / plateau schedule that watches a test
    metric: legal, but the test set then takes part in training and its final numbers are
    no longer an unbiased estimate (a method mistake the run would not show)."""
    for key, section, what in (
            ("training.early_stopping.monitor", cfg.training.early_stopping,
             "the stopping epoch"),
            ("training.reduce_on_plateau.monitor", cfg.training.reduce_on_plateau,
             "the learning-rate cuts")):
        if section.enabled and str(section.monitor).startswith("test_"):
            print(f"warning: {key}={section.monitor!r} lets the test set choose {what}, so "
                  "the final test metrics are optimistic; monitor a val_ metric with "
                  "data.validation_fraction > 0", file=sys.stderr)


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is XLA failing to allocate a buffer (a config too large, not a bug)."""
    return "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e)
