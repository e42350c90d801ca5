"""``scripts/depth_study.py``: run a depth study from a YAML preset and write its outputs.

Usage::

    python scripts/depth_study.py --config configs/depth_study.yaml [--set key=value ...]
        [--workdir runs/depth] [--data-dir DIR] [--workers N] [--no-plots] [--quiet]
    # re-render the report (and plots) of a finished study, without training, e.g. with
    # other verdict thresholds:
    python scripts/depth_study.py --report-from runs/depth [--set vanish_ratio=1e-3 ...]
        [--workdir OTHER_DIR] [--no-plots]

Bad input (a missing file, an unknown key, activation or initializer, depth < 1, missing
data files, a sweep too large for the device's memory) never shows a traceback: it prints
one line, ``error: ...``, on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor

__all__ = ["EXIT_USAGE", "main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _worker_count(text: str) -> int:
    """``--workers``: a plain integer (``true``, ``1.5`` are refused with what is valid;
    the range is checked by :func:`jaxnn.studies.workers.core_shares`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected an integer >= 0 (1 = this process only, 0 = one per "
            "usable core)") from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="depth_study.py",
                description="Vanishing/exploding-gradient depth study (table, plots, report).")
    p.add_argument("--config", help="study YAML (default: the DepthStudyConfig defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study field, e.g. --set depths=[2,4,8] (repeatable)")
    p.add_argument("--workdir", help="output directory, replaced if it holds a study; a "
                   "training run's is refused, and in another folder files of the study's "
                   "names are set aside as *.unmatched* (default: runs/<config file name>, "
                   "or runs/<name>-2... when that holds one)")
    p.add_argument("--data-dir", help="directory holding the MNIST / Fashion-MNIST IDX files")
    p.add_argument("--workers", type=_worker_count, default=1, metavar="N",
                   help="CPU processes, each pinned to its own cores, to spread the shape "
                        "groups over (0: one per core; default 1)")
    p.add_argument("--report-from", metavar="DIR",
                   help="re-render the report (and plots) of the finished study in DIR "
                        "without running anything; --set may change only "
                        "vanish_ratio, explode_ratio, saturation_threshold and "
                        "train_threshold; written into DIR unless --workdir names another "
                        "directory")
    p.add_argument("--no-plots", action="store_true", help="write the table and report only "
                   "(with --report-from into DIR: keep DIR's plots as they are)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run :func:`jaxnn.studies.depth.run_study`, write the outputs."""
    args = _parser().parse_args(argv)
    import jax

    from jaxnn.cli import warn_unused_data_dir
    from jaxnn.config import ConfigError, ensure_workdir, fresh_workdir
    from jaxnn.data.idx import DataError
    from jaxnn.studies import depth, depth_report
    from jaxnn.studies.workers import core_shares

    if args.report_from is not None:
        return _report_from(args)
    try:
        # An empty path (an unset shell variable: --workdir "$RUN") read as "not given": the
        # study went to runs/<config name>, as train.py's did.
        for flag, value, instead in (("--config", args.config, "the default study"),
                                     ("--workdir", args.workdir, "runs/<config name>")):
            if value is not None and not value.strip():
                raise ConfigError(f"{flag} {value!r}: an empty path; give one, or leave "
                                  f"{flag} out for {instead}")
        cfg = depth.load_config(args.config, list(args.overrides))
        if args.data_dir is not None:  # a path as given, not parsed as YAML ('~', '#', 0123)
            cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
        # ("normal" is the study's own generated set: it reads no files either)
        warn_unused_data_dir(cfg.dataset, cfg.data_dir, "data_dir")
        for line in depth.ignored_settings(cfg):
            print(line, file=sys.stderr)
        if args.workers != 1:
            core_shares(args.workers)  # a bad count fails here, before the data is loaded
        stem = pathlib.Path(args.config).stem if args.config else "depth_study"
        # the default never replaces a finished study; a --workdir that is a file is named
        # before the data is loaded, and a data error leaves no empty --workdir (nor a line
        # naming it)
        workdir = ensure_workdir(args.workdir or fresh_workdir(pathlib.Path("runs") / stem,
                                                               ("table.csv", "report.md")),
                                 create=False)
        depth_report.check_workdir(workdir)  # a training run's folder, before any work
        data = depth.load_study_data(cfg)
        # created before the study, not after it
        workdir = ensure_workdir(workdir)
        log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
        if log:
            log(f"output directory: {workdir}")
        result = depth.run_study(cfg, data=data, progress=log, workers=args.workers)
        paths = depth_report.write_outputs(result, workdir, plots=not args.no_plots)
    except (ConfigError, DataError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return EXIT_USAGE
    except OSError as e:  # e.g. a full disk while writing the outputs
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except ValueError as e:  # a bad value found past the config (e.g. n_train too large)
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return EXIT_USAGE
    except jax.errors.JaxRuntimeError as e:
        msg = str(e)
        if "RESOURCE_EXHAUSTED" not in msg and "Out of memory" not in msg:
            raise
        print(f"error: out of memory ({' '.join(msg.splitlines()[0].split())}); use smaller "
              "widths, depths, probe_size or batch_size", file=sys.stderr)
        return EXIT_USAGE
    except BrokenExecutor as e:  # a worker process died (killed, out of memory)
        print(f"error: a depth-study worker process died: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if log:
        share = depth_report.compile_share(result.timing)
        log(f"done in {result.timing['total_s']:.1f} s "
            f"({depth_report.compile_summary(result.timing)}{'; ' + share if share else ''})"
            f": {paths['report']}")
    return 0


def _report_from(args: argparse.Namespace) -> int:
    """``--report-from DIR``: load the study in DIR, apply the verdict --set values, write
    the report (and plots) into DIR or --workdir."""
    from jaxnn.config import ConfigError, ensure_workdir
    from jaxnn.studies import depth_report

    for flag, given in (("--config", args.config is not None),
                        ("--data-dir", args.data_dir is not None),
                        ("--workers", args.workers != 1)):
        if given:
            print(f"error: {flag} cannot be used with --report-from (it re-renders a finished "
                  "study; run the study again to change what it measures)", file=sys.stderr)
            return EXIT_USAGE
    try:
        for flag, value in (("--report-from", args.report_from), ("--workdir", args.workdir)):
            if value is not None and not value.strip():  # an unset shell variable: not '.'
                raise ConfigError(f"{flag} {value!r}: an empty path; give the folder of a "
                                  "finished study" if flag == "--report-from" else
                                  f"{flag} {value!r}: an empty path; give one, or leave it "
                                  "out to write into the --report-from folder")
        source = pathlib.Path(args.report_from)
        if args.workdir is not None:
            ensure_workdir(args.workdir, create=False)  # a file is named before any work
            depth_report.check_workdir(args.workdir)
        paths = depth_report.rerender(source, args.workdir, list(args.overrides),
                                      plots=not args.no_plots)
    except ConfigError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return EXIT_USAGE
    except OSError as e:  # e.g. a full disk or a read-only directory
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # as a study run: no traceback
        print("interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"report re-rendered from {source}: {paths['report']}"
              + (f" and {len(paths['plots'])} plots" if paths["plots"] else ""),
              file=sys.stderr)
    return 0
