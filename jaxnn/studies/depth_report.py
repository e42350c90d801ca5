"""Outputs of a depth study: tidy table (CSV + JSON), plots and a Markdown report.

Contract::

    result = jaxnn.studies.depth.run_study(config)
    paths = write_outputs(result, workdir)     # {"table_csv": ..., "report": ..., ...}

Files written in ``workdir``:

* ``config.yaml`` -- the resolved study config.
* ``table.csv`` / ``table.json`` -- the tidy table: one row per (depth, width, activation,
  initializer, batch_norm, seed, phase) with the columns of
  :data:`jaxnn.studies.depth.COLUMNS`. Per-layer columns are lists in JSON and
  ``;``-separated numbers in CSV (index 0 = first hidden layer). Non-finite values are
  ``null`` in JSON and ``nan``/``inf`` in CSV.
* ``curves.json`` -- per-step minibatch training losses; ``histograms.json`` -- per-layer
  activation histograms (when recorded); ``timing.json``.
* ``grad_norms_<phase>.png`` -- weight-gradient norm by layer (log scale), one panel per
  activation x initializer, one line per depth (median over seeds).
* ``ratio_heatmap_<phase>.png`` -- log10 of the median first/last hidden-layer gradient
  ratio, depth x activation, one panel per initializer. A cell without a ratio in any
  seed is labelled (and hatched) ``0/0`` when both gradients were exactly 0 (a full
  vanish) and ``overflow`` when they were inf/NaN (see :func:`ratio_cell`).
* ``activation_histograms_<activation>_d<depth>.png`` -- per-layer activation histograms at
  initialization, one row per initializer (the classic 5 x 100 figure); at most
  :data:`HISTOGRAM_PANELS` layers, evenly spaced, of a deeper net
  (:func:`histogram_layers`). They count finite activations only; a panel whose layer
  had NaN/inf activations says what share in its title (:func:`histogram_title`), and the
  report lists those layers.
* ``training_curves.png`` -- training loss (median over seeds) per depth; the y-axis
  shows every curve that stays finite (a diverged one may run off the top).
* ``report.md`` -- plain sentences, backed by the table, on which combinations vanish,
  explode, saturate or train (thresholds from the config).

Plots use matplotlib's Agg backend (no display needed). Files for other widths / batch-norm
settings than the first get a ``_w<width>`` / ``_bn`` suffix.

Every file is written atomically (a temporary file renamed over the old one), so an
interrupted write leaves the previous file, never a truncated one. A training run's folder
is refused (:func:`check_workdir`), and in a folder that holds no study the files of the
names above already there (a user's ``config.yaml``) are set aside as
``<stem>.unmatched<suffix>``, with a warning. Writing into the ``workdir`` of an earlier
study replaces its outputs: :func:`write_outputs` removes the
plots of the patterns above that this study did not write (all of them with
``plots=False``), so no figure contradicts the new table. The files are one set:
``manifest.json`` (:data:`MANIFEST`), written last and removed before a new study's first
file replaces one, lists each with its SHA-256, and :func:`load_result` refuses a folder
without it or whose files are not the ones it lists (a write killed midway, two studies).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import pathlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import yaml

from jaxnn._atomic import replace_atomically, set_aside, write_bytes, write_text
from jaxnn.config import ConfigError, holds_depth_study
from jaxnn.studies.depth import (
    COLUMNS,
    DepthStudyResult,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)

__all__ = [
    "accuracy_cell",
    "accuracy_spread",
    "classify",
    "compile_summary",
    "HISTOGRAM_PANELS",
    "histogram_layers",
    "histogram_title",
    "MANIFEST",
    "ratio_cell",
    "load_result",
    "render_report",
    "rerender",
    "VERDICT_FIELDS",
    "with_verdict_settings",
    "write_report",
    "write_outputs",
    "write_plots",
    "write_table",
]


# ----------------------------------------------------------------------------- table


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return v


def _csv_cell(v: Any) -> Any:
    if isinstance(v, list):
        return ";".join(f"{x:.6g}" for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


#: What marks a folder as a training run's (``scripts/train.py``): a study writing its
#: ``config.yaml`` there would replace the run's and break its ``--resume``.
_TRAINING_RUN = ("history.json", "checkpoints", "metrics.jsonl")


def check_workdir(workdir: str | pathlib.Path) -> None:
    """Raise :class:`ConfigError` (one line) when ``workdir`` holds a training run: the
    study would replace its ``config.yaml`` and break its ``--resume``. The CLI calls it
    before a study runs; :func:`write_outputs`, :func:`write_table` and :func:`rerender`
    again before writing."""
    wd = pathlib.Path(workdir)
    found = [name for name in _TRAINING_RUN if (wd / name).exists()]
    if found:
        raise ConfigError(
            f"--workdir {str(wd)!r} holds a training run ({', '.join(found)}): a depth study "
            "would replace its config.yaml and break its --resume; choose another --workdir")


def _prepare_workdir(wd: pathlib.Path) -> None:
    """Before a study's first file is written into ``wd``: refuse a training run's folder
    (:func:`check_workdir`) and, in a folder that holds no study, set aside the files the
    study would replace -- a user's own ``config.yaml`` or ``report.md``, a figure of one of
    the study's names -- as ``<stem>.unmatched<suffix>``, with a warning, rather than
    overwrite (or, for figures, delete) them."""
    check_workdir(wd)
    if not wd.is_dir() or holds_depth_study(wd):
        return
    names = [*_TABLE_KEYS.values(), "report.md"]
    candidates = [wd / n for n in names] + sorted(
        {f for pattern in _PLOT_PATTERNS for f in wd.glob(pattern)
         if ".unmatched" not in f.name})
    moved = [f"{m.name} -> {n.name}" for m in candidates if (n := set_aside(m)) is not None]
    if moved:
        print(f"warning: {str(wd)!r} held files a depth study writes, not from a study; set "
              f"aside: {', '.join(moved)}", file=sys.stderr)


def write_table(result: DepthStudyResult, workdir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write ``table.csv``, ``table.json``, ``curves.json``, ``histograms.json``,
    ``timing.json``, ``config.yaml`` and last ``manifest.json`` (each atomically, the set
    as :func:`write_outputs` does); returns their paths."""
    wd = pathlib.Path(workdir)
    contents = _table_contents(result)  # a failure here leaves the folder as it was
    _prepare_workdir(wd)
    wd.mkdir(parents=True, exist_ok=True)
    _open_set(wd)
    paths = _write_contents(wd, contents)
    paths["manifest"] = _close_set(wd, result.config, [p.name for p in paths.values()])
    return paths


#: ``write_table``'s keys of the files it writes, in the order they are written.
_TABLE_KEYS = {"table_csv": "table.csv", "table_json": "table.json", "curves": "curves.json",
               "histograms": "histograms.json", "timing": "timing.json",
               "config": "config.yaml"}


def _table_contents(result: DepthStudyResult) -> dict[str, tuple[str, str | None]]:
    """``{key: (text, newline)}`` of the table files and ``config.yaml``, built in memory
    before any file of the folder is replaced."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    for r in result.records:
        w.writerow({k: _csv_cell(r[k]) for k in COLUMNS})
    return {
        "table_csv": (buf.getvalue(), ""),  # csv's own line ends
        "table_json": (json.dumps(_json_safe(result.records)), None),
        "curves": (json.dumps(_json_safe(result.curves)), None),
        "histograms": (json.dumps(_json_safe(result.histograms)), None),
        "timing": (json.dumps({**result.timing, "num_classes": result.num_classes},
                              indent=1), None),
        "config": (_config_text(result), None),
    }


def _write_contents(wd: pathlib.Path,
                    contents: dict[str, tuple[str, str | None]]) -> dict[str, pathlib.Path]:
    return {key: write_text(wd / _TABLE_KEYS[key], text, newline=newline)
            for key, (text, newline) in contents.items()}


# ----------------------------------------------------------------------------- the set

#: Written last into a study's folder and removed before a new study's first file
#: replaces one there: ``{"format": 1, "measured": digest, "files": {name: sha256}}``, the
#: files of the set (config, tables, report, plots) and the digest of the config fields
#: other than :data:`VERDICT_FIELDS` (see :func:`load_result`).
MANIFEST = "manifest.json"


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _measured(config: Any) -> str:
    """Digest of what a study measured: its config without :data:`VERDICT_FIELDS` (which a
    re-render may change)."""
    data = {k: v for k, v in config_to_dict(config).items() if k not in VERDICT_FIELDS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _open_set(wd: pathlib.Path) -> None:
    """Mark ``wd``'s set as being written (an "open" manifest, durably) before the first
    file of a new set goes there: until :func:`_close_set`, the folder reads as incomplete,
    never as the old study. (A folder without any manifest is a study written before
    manifests existed, read with a warning.)"""
    write_text(wd / MANIFEST, json.dumps({"format": 1, "open": True}) + "\n")


def _close_set(wd: pathlib.Path, config: Any, names: Sequence[str]) -> pathlib.Path:
    """Write the manifest of the set ``names`` (every one already in place)."""
    return _write_manifest(wd, _measured(config), {n: _sha256(wd / n) for n in names})


def _write_manifest(wd: pathlib.Path, measured: str, files: dict[str, str]) -> pathlib.Path:
    return write_text(wd / MANIFEST, json.dumps(
        {"format": 1, "measured": measured, "files": dict(sorted(files.items()))},
        indent=1) + "\n")


def _read_manifest(wd: pathlib.Path) -> dict[str, Any] | None:
    """``wd``'s manifest, None when there is none; ValueError when it is not one."""
    if not (wd / MANIFEST).is_file():
        return None
    manifest = json.loads((wd / MANIFEST).read_text())
    if not (isinstance(manifest, dict) and (manifest.get("open") is True
                                            or isinstance(manifest.get("files"), dict))):
        raise ValueError(f"{MANIFEST} is not a manifest")
    return manifest


def _check_set(wd: pathlib.Path) -> dict[str, Any] | None:
    """The manifest of ``wd``, once every table file is the one it lists (ConfigError, one
    line, otherwise); None for a folder written before manifests existed (with a warning
    on stderr: its files cannot be checked as one set)."""
    bad = f"{str(wd)!r} holds an incomplete or mixed set of depth-study files"
    again = "run the study again"
    try:
        manifest = _read_manifest(wd)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{bad}: {MANIFEST} is unreadable ({type(e).__name__}); "
                          f"{again}") from None
    if manifest is None:
        print(f"warning: {str(wd)!r} has no {MANIFEST} (a study written by a jaxnn before "
              "manifests, 2026-12-03): its files are read without checking that they "
              "are one study's",
              file=sys.stderr)
        return None
    if manifest.get("open"):
        raise ConfigError(f"{bad}: its outputs were still being written when the run "
                          f"stopped ({MANIFEST} is written last); {again}")
    for name in _DATA_FILES:
        if manifest["files"].get(name) != _sha256(wd / name):
            raise ConfigError(f"{bad}: {name} is not the one {MANIFEST} lists (a write into "
                              f"the folder was interrupted, or the file was changed); {again}")
    return manifest


def _json_restore(v: Any) -> Any:
    if v is None:
        return float("nan")
    if isinstance(v, list):
        return [_json_restore(x) for x in v]
    return v


def _restore_infinities(records: list[dict[str, Any]], table: list[dict[str, Any]],
                        csv_text: str) -> None:
    """Give back the values ``table.json`` stores as null their ``inf``/``-inf``/``nan``
    from ``table.csv`` (same rows, same order; the JSON keeps every other value at full
    precision). Read back as nan, a +inf ``grad_ratio`` (a first-layer gradient that
    overflowed where the last hidden layer's did not) dropped out of the median ratio,
    and a re-rendered report was not the one the study wrote."""
    rows = list(csv.DictReader(io.StringIO(csv_text, newline="")))
    if len(rows) != len(table):
        raise ValueError(f"table.csv has {len(rows)} rows, table.json {len(table)}")
    for rec, raw, row in zip(records, table, rows, strict=True):
        for k, v in raw.items():
            if v is None:
                rec[k] = float(row[k])
            elif isinstance(v, list) and None in v:
                cells = row[k].split(";")
                rec[k] = [float(c) if x is None else x for x, c in zip(v, cells, strict=True)]


#: The files :func:`write_table` writes and :func:`load_result` reads back.
_TABLE_FILES = ("config.yaml", "table.csv", "table.json", "curves.json", "histograms.json",
                "timing.json")

#: The study fields that decide only the report's verdicts, not what was measured: the
#: ones :func:`with_verdict_settings` (``depth_study.py --report-from``) may change.
VERDICT_FIELDS = ("vanish_ratio", "explode_ratio", "saturation_threshold", "train_threshold")


def load_result(workdir: str | pathlib.Path) -> DepthStudyResult:
    """Rebuild a :class:`DepthStudyResult` from the files :func:`write_table` wrote (to
    re-render plots or the report without running the study again). Non-finite values
    (null in ``table.json``) come back as the ``inf``, ``-inf`` or ``nan`` of ``table.csv``.

    The files must be one set: ``manifest.json`` (written last) present, every table file
    the one whose SHA-256 it lists, and ``config.yaml`` the config it lists up to the
    :data:`VERDICT_FIELDS`. A folder whose writing was interrupted (``kill``, a full disk)
    or that holds files of two studies is refused rather than read as a mix.

    Raises:
      ConfigError: (one line) ``workdir`` is not a directory, lacks one of the table files,
        is an incomplete or mixed set (see above), or holds files that cannot be read back
        as a study (corrupt JSON/YAML, a table without a column of
        :data:`jaxnn.studies.depth.COLUMNS`, an invalid config).
    """
    wd = pathlib.Path(workdir)
    if not wd.is_dir():
        raise ConfigError(f"{str(wd)!r} is not a directory (expected the --workdir of a "
                          "finished depth study)")
    missing = [n for n in _TABLE_FILES if not (wd / n).is_file()]
    if missing:
        raise ConfigError(f"{str(wd)!r} holds no finished depth study: {', '.join(missing)} "
                          f"missing (a study's --workdir has {', '.join(_TABLE_FILES)})")
    manifest = _check_set(wd)
    try:
        config = config_from_dict(yaml.safe_load((wd / "config.yaml").read_text()))
        table = json.loads((wd / "table.json").read_text())
        absent = sorted(set(COLUMNS) - set.intersection(*map(set, table))) if table else []
        if not table or absent:
            more = f" and {len(absent) - 4} more" if len(absent) > 4 else ""
            raise ValueError("no rows in table.json" if not table else
                             f"table.json lacks the column(s) {', '.join(absent[:4])}{more}")
        records = [{k: _json_restore(v) if k not in ("study", "dataset", "activation",
                                                     "initializer", "phase") else v
                    for k, v in r.items()} for r in table]
        _restore_infinities(records, table, (wd / "table.csv").read_text())
        curves = [{**r, "losses": _json_restore(r["losses"])}
                  for r in json.loads((wd / "curves.json").read_text())]
        hists = json.loads((wd / "histograms.json").read_text())
        timing = json.loads((wd / "timing.json").read_text())
        num_classes = int(timing.get("num_classes", config.num_classes))
    except ConfigError as e:
        raise ConfigError(f"{wd / 'config.yaml'}: {e}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as e:
        msg = " ".join(str(e).split())
        raise ConfigError(f"cannot read the depth study in {str(wd)!r} "
                          f"({type(e).__name__}: {msg}); run the study again") from None
    if manifest is not None and manifest.get("measured") != _measured(config):
        raise ConfigError(f"{str(wd)!r} holds an incomplete or mixed set of depth-study "
                          f"files: config.yaml is not the study of the table files (only "
                          f"{', '.join(VERDICT_FIELDS)} may differ); run the study again")
    return DepthStudyResult(config, records, curves, hists, num_classes, timing)


def with_verdict_settings(result: DepthStudyResult,
                          overrides: Sequence[str]) -> DepthStudyResult:
    """``result`` with ``key=value`` overrides (as ``--set``) of the report thresholds of
    :data:`VERDICT_FIELDS` applied to its config, validated like a study config; the
    records are shared, not copied. Any other field is refused: it would describe a study
    other than the one measured.

    Raises:
      ConfigError: a malformed or unknown override, a field outside
        :data:`VERDICT_FIELDS`, or an invalid value.
    """
    names = [f.name for f in dataclasses.fields(result.config)]
    for item in overrides:
        key = item.split("=", 1)[0].strip() if "=" in item else None
        if key in set(names) - set(VERDICT_FIELDS):
            raise ConfigError(
                f"--set {item!r}: {key} is fixed by the study that was run; a re-rendered "
                f"report can change only {', '.join(VERDICT_FIELDS)} (run the study again "
                f"to change {key})")
        if key is not None and key not in names:  # not every key of a study: only these
            close = difflib.get_close_matches(key, VERDICT_FIELDS, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(x) for x in close)}?)" if close else ""
            raise ConfigError(f"--set {item!r}: unknown key {key!r}{hint}; a re-rendered "
                              f"report can change only {', '.join(VERDICT_FIELDS)}")
    data = apply_overrides(config_to_dict(result.config), overrides)
    return dataclasses.replace(result, config=config_from_dict(data))


# ----------------------------------------------------------------------------- plots


def _median_layers(result: DepthStudyResult, field: str, *, overflow_as_inf: bool = False,
                   **where: Any) -> np.ndarray | None:
    """Per-layer median over the selected seeds. Non-finite values are left out, and a
    layer where they are the majority has a nan median (not that of the few others); with
    ``overflow_as_inf`` (for norms, >= 0) a NaN/inf value counts as +inf instead, so such a
    layer has an infinite median."""
    rows = result.select(**where)
    if not rows:
        return None
    arr = np.asarray([r[field] for r in rows], float)
    if overflow_as_inf:
        return np.median(np.where(np.isfinite(arr), arr, np.inf), axis=0)
    return _nanmedian(np.where(np.isfinite(arr), arr, np.nan))


def _nanmedian(arr: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the values that are not nan, without warnings; nan where most
    of a column is nan (as :func:`trained_accuracy`: the few seeds that stayed finite do not
    speak for the others)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(arr, axis=0)
    return np.where(np.isnan(arr).sum(axis=0) * 2 > arr.shape[0], np.nan, med)


def _suffix(result: DepthStudyResult, width: int, bn: bool) -> str:
    s = ""
    if width != result.config.widths[0]:
        s += f"_w{width}"
    if bn != result.config.batch_norm[0]:
        s += "_bn" if bn else "_nobn"
    return s


def _grid(n_rows: int, n_cols: int, scale: tuple[float, float] = (3.0, 2.4), **kw: Any):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale[0] * n_cols, scale[1] * n_rows),
                             squeeze=False, **kw)
    return fig, axes


def _save(fig: Any, path: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    # tight_layout ignores the suptitle: keep ~0.35 inch above the panels for it
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=80))
    plt.close(fig)
    return path


#: Hatching of heat-map cells without a ratio (no colour), by :func:`ratio_cell` kind.
_HATCH = {"0/0": "....", "overflow": "xxxx", "0/0+overflow": "xx.."}


def ratio_cell(rows: Sequence[dict[str, Any]]) -> tuple[float, str, str]:
    """The heat-map / table cell of one combination: ``(median ratio, kind, label)``.

    ``rows`` are the records of its seeds (one phase). The median runs over the seeds that
    have a ratio (``grad_ratio`` not nan). A seed has none either because both gradient
    norms were exactly 0 (``0/0``: a full vanish -- flushed below the float32 range, or a
    zero derivative as ``step``'s) or because its gradients overflowed
    (inf/NaN norms); the two mean opposite things, so when no seed -- or only a minority of
    the seeds (as :func:`trained_accuracy`: the few seeds that kept a ratio do not speak
    for the others) -- has a ratio, the cell says which of the two the others are:

    * ``kind="ratio"``: label ``log10(median)`` to one decimal, ``"0"`` for a ratio of 0
      (first layer's gradient exactly 0), ``"inf"`` for an infinite one;
    * ``kind="0/0"``, label ``"0/0"``: every seed without a ratio has first and last
      gradients exactly 0;
    * ``kind="overflow"``, label ``"overflow"``: every seed without a ratio has inf/NaN
      norms;
    * ``kind="0/0+overflow"``, label ``"0/0|ovf"``: some of each;
    * ``kind="none"``, label ``""``: no rows.

    The median is nan for every kind but ``"ratio"``.
    """
    if not rows:
        return float("nan"), "none", ""
    ratios = np.asarray([r["grad_ratio"] for r in rows], float)
    have = ~np.isnan(ratios)
    if have.any() and 2 * int(have.sum()) >= len(rows):  # a tie keeps the median
        med = float(np.median(ratios[have]))
        with np.errstate(divide="ignore"):
            v = float(np.log10(med))
        label = "0" if v == -math.inf else "inf" if v == math.inf else f"{v:.1f}"
        return med, "ratio", label
    vanished = [float(r["first_grad_norm"]) == 0.0 and float(r["last_grad_norm"]) == 0.0
                for r, h in zip(rows, have, strict=True) if not h]
    if all(vanished):
        return float("nan"), "0/0", "0/0"
    if not any(vanished):
        return float("nan"), "overflow", "overflow"
    return float("nan"), "0/0+overflow", "0/0|ovf"


#: Most layers (panels in a row) of one activation-histogram figure.
HISTOGRAM_PANELS = 10


def histogram_layers(depth: int, most: int = HISTOGRAM_PANELS) -> list[int]:
    """The hidden layers (1-based) an activation-histogram figure shows: all of them up to
    ``most``, else ``most`` evenly spaced ones from the first to the last (a figure with a
    panel per layer of a 50-layer net was 100 inches wide); ``histograms.json`` keeps
    every layer."""
    if depth <= most:
        return list(range(1, depth + 1))
    return [int(x) for x in np.round(np.linspace(1, depth, most))]


def _loss_ylim(lines: Sequence[np.ndarray], num_classes: int) -> tuple[float, float]:
    """y-limits of a training-curve panel: from 0 to at least ``max(3, 1.3 ln C)``, raised
    to show every curve that stays finite (+5 %). A curve with NaN/inf points (diverged)
    counts only up to 10x that top, so a blow-up to 1e30 runs off the panel instead of
    flattening the others."""
    top = max(3.0, math.log(num_classes) * 1.3)
    finite = [x[np.isfinite(x)] for x in map(np.asarray, lines)]
    healthy = [f for f, x in zip(finite, lines, strict=True) if f.size == np.size(x) and f.size]
    if healthy:
        top = max(top, 1.05 * max(float(f.max()) for f in healthy))
    ceiling = 10.0 * top
    for f, x in zip(finite, lines, strict=True):
        if f.size and f.size < np.size(x):
            top = max(top, min(ceiling, 1.05 * float(f.max())))
    return 0.0, top


def histogram_title(h: dict[str, Any]) -> str:
    """Title of one activation-histogram panel: ``"he: layer 3"``, plus a line ``"(12%
    non-finite)"`` when some of the layer's activations were NaN/inf -- the bars count only
    the finite ones, so the histogram is then not the whole layer."""
    title = f"{h['initializer']}: layer {h['layer']}"
    bad = float(h.get("nonfinite", 0.0))
    if bad > 0:
        # own line: the panels are narrow
        title += f"\n({_percent(bad / (bad + float(np.sum(h['counts']))))} non-finite)"
    return title


def _percent(frac: float) -> str:
    pct = 100.0 * frac
    if 0 < pct < 0.01:
        return "<0.01%"
    if 99.9 < pct < 100:  # not "100%" unless every value is non-finite
        return ">99.9%"
    return f"{pct:.3g}%"


def write_plots(result: DepthStudyResult, workdir: str | pathlib.Path) -> list[pathlib.Path]:
    """Write every plot of the module docstring; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    c = result.config
    wd = pathlib.Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    out: list[pathlib.Path] = []
    phases = ("init",) if c.steps == 0 else ("init", "trained")
    cmap = plt.get_cmap("viridis")
    for width in c.widths:
        for bn in c.batch_norm:
            sfx = _suffix(result, width, bn)
            base = {"width": width, "batch_norm": bn}
            for phase in phases:
                fig, axes = _grid(len(c.activations), len(c.initializers))
                for i, act in enumerate(c.activations):
                    for j, init in enumerate(c.initializers):
                        ax = axes[i][j]
                        for k, d in enumerate(c.depths):
                            med = _median_layers(result, "weight_grad_norm", phase=phase,
                                                 activation=act, initializer=init, depth=d,
                                                 overflow_as_inf=True, **base)
                            if med is None:
                                continue
                            # a gap where the median is 0 (log scale) or overflowed
                            y = np.where((med > 0) & np.isfinite(med), med, np.nan)
                            ax.plot(np.arange(1, len(med) + 1), y, marker=".", ms=3,
                                    color=cmap(k / max(len(c.depths) - 1, 1)), label=f"D={d}")
                        ax.set_yscale("log")
                        # every weight layer in view (a gap at layer 1 is seen as one), and
                        # whole layer numbers as ticks
                        ax.set_xlim(0.7, max(c.depths) + 1.3)
                        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                        ax.set_title(f"{act} / {init}", fontsize=8)
                        ax.tick_params(labelsize=6)
                        if i == len(c.activations) - 1:
                            ax.set_xlabel("weight layer (1: input side, D+1: output)",
                                          fontsize=7)
                        if j == 0:
                            ax.set_ylabel("||dL/dW||", fontsize=7)
                axes[0][0].legend(fontsize=5)
                fig.suptitle(f"weight-gradient norm by layer ({phase}, width {width})")
                out.append(_save(fig, wd / f"grad_norms_{phase}{sfx}.png"))

                fig, axes = _grid(1, len(c.initializers), (0.5 * len(c.depths) + 1.8,
                                                          0.35 * len(c.activations) + 2.0),
                                  layout="constrained")
                for j, init in enumerate(c.initializers):
                    cells = [[ratio_cell(result.select(phase=phase, activation=a,
                                                       initializer=init, depth=d, **base))
                              for d in c.depths] for a in c.activations]
                    with np.errstate(all="ignore"):
                        # ratio 0 (first-layer gradient exactly 0) -> -inf -> darkest
                        logm = np.log10(np.array([[cell[0] for cell in row] for row in cells]))
                    ax = axes[0][j]
                    im = ax.imshow(np.clip(logm, -8, 8), cmap="RdBu", vmin=-8, vmax=8,
                                   aspect="auto")
                    for y, row in enumerate(cells):
                        for x, (_, kind, label) in enumerate(row):
                            if kind in _HATCH:  # no colour: tell the two "no ratio"s apart
                                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False,
                                                       hatch=_HATCH[kind], lw=0,
                                                       edgecolor="0.6"))
                            ax.text(x, y, label, ha="center", va="center", fontsize=5)
                    ax.set_xticks(range(len(c.depths)), [str(d) for d in c.depths], fontsize=6)
                    ax.set_yticks(range(len(c.activations)),
                                  list(c.activations) if j == 0 else [], fontsize=6)
                    ax.set_xlabel("hidden layers", fontsize=7)
                    ax.set_title(init, fontsize=8)
                fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8,
                             label="log10 first/last grad norm")
                fig.supxlabel("0/0 (dotted): both gradients exactly 0, a full vanish; "
                              "overflow (crossed): inf/NaN gradients", fontsize=6)
                fig.suptitle(f"first/last hidden-layer gradient ratio ({phase})", fontsize=9)
                replace_atomically(wd / f"ratio_heatmap_{phase}{sfx}.png",
                                    lambda tmp, fig=fig: fig.savefig(tmp, dpi=80))
                plt.close(fig)
                out.append(wd / f"ratio_heatmap_{phase}{sfx}.png")

            if c.steps > 0:
                fig, axes = _grid(len(c.activations), len(c.initializers))
                for i, act in enumerate(c.activations):
                    for j, init in enumerate(c.initializers):
                        ax = axes[i][j]
                        shown = []
                        for k, d in enumerate(c.depths):
                            rows = [r["losses"] for r in result.curves
                                    if r["activation"] == act and r["initializer"] == init
                                    and r["depth"] == d and r["width"] == width
                                    and r["batch_norm"] == bn]
                            if not rows:
                                continue
                            arr = np.asarray(rows, float)
                            # inf as nan, as a study read back from its files has it
                            med = _nanmedian(np.where(np.isfinite(arr), arr, np.nan))
                            win = max(1, len(med) // 20)
                            smooth = np.convolve(med, np.ones(win) / win, mode="valid")
                            shown.append(smooth)
                            # at the step each trailing window of `win` steps ends
                            ax.plot(np.arange(win, len(med) + 1), smooth,
                                    color=cmap(k / max(len(c.depths) - 1, 1)),
                                    label=f"D={d}", lw=1)
                        ax.set_title(f"{act} / {init}", fontsize=8)
                        ax.tick_params(labelsize=6)
                        ax.set_ylim(*_loss_ylim(shown, result.num_classes))
                        if i == len(c.activations) - 1:
                            ax.set_xlabel("SGD step", fontsize=7)
                        if j == 0:
                            ax.set_ylabel("minibatch loss", fontsize=7)
                axes[0][0].legend(fontsize=5)
                fig.suptitle(f"training loss (SGD, lr {c.learning_rate}, width {width})")
                out.append(_save(fig, wd / f"training_curves{sfx}.png"))

    if result.histograms:
        keys = sorted({(h["activation"], h["depth"], h["width"], h["batch_norm"])
                       for h in result.histograms}, key=str)
        for act, d, width, bn in keys:
            layers = histogram_layers(d)
            fig, axes = _grid(len(c.initializers), len(layers), (2.0, 1.7))
            for i, init in enumerate(c.initializers):
                for h in result.histograms:
                    if (h["activation"], h["depth"], h["width"], h["batch_norm"],
                            h["initializer"]) != (act, d, width, bn, init) or (
                            h["layer"] not in layers):
                        continue
                    ax = axes[i][layers.index(h["layer"])]
                    edges = np.asarray(h["edges"])
                    ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge")
                    ax.set_title(histogram_title(h), fontsize=7,
                                 color="C3" if h.get("nonfinite") else "black")
                    ax.tick_params(labelsize=5)
                    ax.set_yticks([])
            some = "" if len(layers) == d else f"; {len(layers)} of {d} layers shown"
            fig.suptitle(f"{act} activations at initialization ({d} x {width}{some})",
                         fontsize=9)
            out.append(_save(fig, wd / f"activation_histograms_{act}_d{d}"
                                      f"{_suffix(result, width, bn)}.png"))
    return out


# ----------------------------------------------------------------------------- report


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.3g}"
    return f"{x:.1e}"


def _trend(stds: Any) -> str:
    """How a per-layer activation std moves from the first hidden layer to the last."""
    first, last = float(stds[0]), float(stds[-1])
    if not (math.isfinite(first) and math.isfinite(last)) or first <= 0:
        return "are not finite" if not math.isfinite(last) else "are 0"
    r = last / first
    if r < 0.01:
        return "collapse toward 0"
    if r < 0.5:
        return "shrink with depth"
    if r <= 2.0:
        return "stay flat"
    return "grow with depth"


def trained_accuracy(result: DepthStudyResult, **where: Any) -> float:
    """Median trained test accuracy over the selected seeds, or nan when most of them
    diverged (NaN logits: no accuracy)."""
    return accuracy_spread(result, **where)[0]


def accuracy_spread(result: DepthStudyResult, **where: Any) -> tuple[float, float, float, int]:
    """``(median, lowest, highest, diverged)`` of the trained test accuracy over the
    selected seeds. ``diverged`` counts the seeds without an accuracy (NaN logits); the
    median (:func:`trained_accuracy`) and the range run over the others, and the median is
    nan when most seeds diverged (the range is nan only when all did)."""
    vals = result.column("test_accuracy", phase="trained", **where).astype(float)
    ok = vals[~np.isnan(vals)]
    diverged = int(vals.size - ok.size)
    if ok.size == 0:
        return float("nan"), float("nan"), float("nan"), diverged
    med = float("nan") if diverged * 2 > vals.size else float(np.median(ok))
    return med, float(np.min(ok)), float(np.max(ok)), diverged


def accuracy_cell(result: DepthStudyResult, **where: Any) -> str:
    """A trained-accuracy table cell: the median over seeds with the lowest-highest seed
    in parentheses when they differ (``"0.652 (0.405-0.838)"``), the diverged seeds
    counted (``"0.85 (0.8-0.87, 2 of 5 diverged)"``); ``"diverged"`` when most seeds
    diverged (``"diverged (3 of 5)"`` when not all did)."""
    med, lo, hi, diverged = accuracy_spread(result, **where)
    n = len(result.select(phase="trained", **where))
    if math.isnan(med):
        return "diverged" if diverged == n else f"diverged ({diverged} of {n})"
    parts = [f"{_fmt(lo)}-{_fmt(hi)}"] if _fmt(lo) != _fmt(hi) else []
    if diverged:
        parts.append(f"{diverged} of {n} diverged")
    return _fmt(med) + (f" ({', '.join(parts)})" if parts else "")


def classify(result: DepthStudyResult) -> list[dict[str, Any]]:
    """One verdict per (activation, initializer, depth, width, batch_norm), medians over
    seeds: ``ratio`` (init grad_ratio; nan when most seeds have none, as in
    :func:`ratio_cell`), ``saturation`` (init mean saturation),
    ``test_accuracy`` (trained; nan without training), ``growth`` (init pre-activation std
    of the last hidden layer over that of the first: how much the forward signal grows with
    depth) and booleans ``explodes`` (ratio > explode_ratio, growth > explode_ratio, or a
    non-finite statistic in most seeds), ``vanishes`` (not ``explodes``, and ratio <
    vanish_ratio, growth < vanish_ratio, or the first-layer gradient exactly 0 in most
    seeds), ``saturates``, ``trains``, ``stalls``; ``zero_gradient`` says why that first
    gradient is exactly 0 (:func:`_zero_gradient_cause`; ``""`` when it is not).

    The growth tests catch what the ratio cannot: with N(0, 1) weights a ReLU network's
    activations and every layer's gradient grow by ~sqrt(width / 2) per layer, and with
    N(0, 0.01^2) weights (or ReLU with Xavier at depth) they shrink by a constant factor per
    layer, so the first/last gradient ratio stays near 1 while the values reach 1e25 or
    1e-20 (an SGD step then diverges, or nothing moves).
    """
    c = result.config
    chance = 1.0 / result.num_classes
    out = []
    for bn in c.batch_norm:
        for width in c.widths:
            for act in c.activations:
                for init in c.initializers:
                    for d in c.depths:
                        w = dict(activation=act, initializer=init, depth=d, width=width,
                                 batch_norm=bn)
                        rows = result.select(phase="init", **w)
                        ratio = ratio_cell(rows)[0]  # nan unless most seeds have one
                        first = result.median("first_grad_norm", phase="init", **w)
                        nonfinite = sum(not r["finite"] for r in rows) > len(rows) / 2
                        sat = result.median("mean_saturation", phase="init", **w)
                        growth = _growth(rows)
                        acc = trained_accuracy(result, **w) if c.steps > 0 else float("nan")
                        explodes = bool(ratio > c.explode_ratio
                                        or growth > c.explode_ratio or nonfinite)
                        out.append({
                            **w, "ratio": ratio, "first_grad_norm": first, "saturation": sat,
                            "zero_gradient": (_zero_gradient_cause(act, rows)
                                              if first == 0.0 else ""),
                            "growth": growth, "test_accuracy": acc, "nonfinite": nonfinite,
                            "explodes": explodes,
                            "vanishes": not explodes and bool(
                                ratio < c.vanish_ratio or growth < c.vanish_ratio
                                or first == 0.0),
                            "saturates": bool(sat > c.saturation_threshold),
                            "trains": bool(acc >= chance + c.train_threshold * (1 - chance)),
                            "stalls": bool(c.steps > 0 and not acc >= chance + 0.1 * (1 - chance)),
                        })
    return out


#: Activations whose derivative is exactly 0 where they output 0 (``dead_fraction``
#: counts those outputs): a hidden layer all 0 passes no gradient back.
_ZERO_SLOPE_AT_ZERO = ("relu", "relu6", "hard_sigmoid")


def _zero_gradient_cause(act: str, rows: Sequence[dict[str, Any]]) -> str:
    """Why the first hidden layer's gradient is exactly 0: an underflow below the float32
    range (flushed to 0), or a true zero -- ``step``'s derivative is 0 at every input, and a
    ReLU-like hidden layer that is 0 for every probe input (median over ``rows``' seeds)
    passes nothing back: all its units dead (pre-activations <= 0, their std > 0), or the
    forward signal itself flushed to 0 (pre-activations all exactly 0, std 0)."""
    if act == "step":
        return "step's derivative is 0 at every input: a true zero, not an underflow"
    if act in _ZERO_SLOPE_AT_ZERO:
        med = lambda k: np.atleast_1d(np.median(np.asarray([r[k] for r in rows], float), axis=0))
        full = [i for i, v in enumerate(med("dead_fraction")) if v >= 1.0]
        if full and med("pre_activation_std")[full[0]] > 0:
            return (f"hidden layer {full[0] + 1} is 0 for every probe input (every unit "
                    f"dead), where {act}'s derivative is 0: a true zero, not an underflow")
        if full:
            return (f"the signal underflowed to 0 by hidden layer {full[0] + 1} (below the "
                    f"float32 range), where {act}'s derivative is 0")
        return (f"below the float32 range, or {act} units on their flat region (derivative "
                "0) blocking every path")
    return "below the float32 range"


def _growth(rows: Sequence[dict[str, Any]]) -> float:
    """Median over seeds of ``pre_activation_std[-1] / pre_activation_std[0]`` (1 for one
    hidden layer); seeds whose ratio is not finite are left out (nan if all are)."""
    g = []
    for r in rows:
        s = np.asarray(r["pre_activation_std"], float)
        with np.errstate(all="ignore"):
            g.append(s[-1] / s[0] if s.size > 1 else 1.0)
    g = np.asarray(g, float)
    g = g[np.isfinite(g)]
    return float(np.median(g)) if g.size else float("nan")


def _show(v: dict[str, Any], value: str) -> str:
    if value in ("ratio", "ratio_growth"):
        if v["nonfinite"]:
            return "overflow (inf/nan statistics)"
        if v["first_grad_norm"] == 0.0:
            return f"first-layer gradient exactly 0 in most seeds ({v['zero_gradient']})"
    if value == "ratio_growth":
        return f"ratio {_fmt(v['ratio'])}, growth {_fmt(v['growth'])}"
    if value == "test_accuracy" and math.isnan(v[value]):
        return "diverged (NaN)"
    return _fmt(v[value])


def _group_sentences(verdicts: Sequence[dict[str, Any]], flag: str, value: str,
                     c: Any) -> list[str]:
    lines = []
    multi = len(c.widths) > 1 or len(c.batch_norm) > 1
    seen: dict[tuple, list[dict[str, Any]]] = {}
    for v in verdicts:
        if v[flag]:
            seen.setdefault((v["activation"], v["initializer"], v["width"], v["batch_norm"]),
                            []).append(v)
    for (act, init, width, bn), vs in seen.items():
        extra = f", width {width}{', batch norm' if bn else ''}" if multi else ""
        depths = [v["depth"] for v in vs]
        vals = "; ".join(f"D={v['depth']}: {_show(v, value)}" for v in vs)
        all_d = len(depths) == len(c.depths)
        where = ("at every depth swept" if all_d
                 else f"at {', '.join(map(str, depths))} hidden "
                      f"layer{'' if depths == [1] else 's'}")
        label = "first/last gradient ratio and pre-activation growth" if value == "ratio_growth" \
            else value.replace("_", " ")
        lines.append(f"- {act} + {init}{extra}, {where} ({label} {vals}).")
    return lines


def _layer_table(result: DepthStudyResult, depth: int, width: int, bn: bool) -> list[str]:
    c = result.config
    rows = []
    for act in c.activations:
        for init in c.initializers:
            w = dict(phase="init", activation=act, initializer=init, depth=depth, width=width,
                     batch_norm=bn)
            m = _median_layers(result, "activation_mean", **w)
            s = _median_layers(result, "activation_std", **w)
            sat = _median_layers(result, "saturation_fraction", **w)
            if m is None:
                continue
            # the share of NaN/inf activations (mean over seeds), which make mean/std nan
            bad = np.mean([r.get("nonfinite_fraction", [0.0] * depth)
                           for r in result.select(**w)], axis=0)
            rows.append((act, init, m, s, sat, bad))
    any_bad = any(np.any(r[-1] > 0) for r in rows)
    lines = ["| activation | initializer | activation mean by layer | activation std by layer "
             "| saturation by layer |" + (" non-finite by layer |" if any_bad else ""),
             "|---|---|---|---|---|" + ("---|" if any_bad else "")]
    j = lambda a: " ".join(_fmt(float(x)) for x in a)
    for act, init, m, s, sat, bad in rows:
        lines.append(f"| {act} | {init} | {j(m)} | {j(s)} | {j(sat)} |"
                     + (f" {' '.join(_percent(float(x)) for x in bad)} |" if any_bad else ""))
    return lines


def _histogram_gaps(result: DepthStudyResult) -> list[str]:
    """One sentence per histogram figure with layers whose NaN/inf activations it leaves
    out (the histograms count finite values only)."""
    gaps: dict[tuple, list[str]] = {}
    for h in result.histograms:
        bad = float(h.get("nonfinite", 0.0))
        if bad > 0:
            key = (h["activation"], h["initializer"], h["depth"], h["width"], h["batch_norm"])
            frac = bad / (bad + float(np.sum(h["counts"])))
            gaps.setdefault(key, []).append(f"layer {h['layer']} {_percent(frac)}")
    return [f"- {act} + {init}, {_hidden(d)} x {w}{', batch norm' if bn else ''}: "
            + ", ".join(v) + " of the activations are NaN/inf and missing from the histogram."
            for (act, init, d, w, bn), v in gaps.items()]


def _hidden(depth: int) -> str:
    return f"{depth} hidden layer{'' if depth == 1 else 's'}"


def _closest(values: Sequence[int], target: int) -> int:
    return min(values, key=lambda v: (abs(v - target), v))


def _findings(result: DepthStudyResult) -> list[str]:
    """Sentences on the textbook findings, for the combinations this study contains."""
    c = result.config
    acts, inits = set(c.activations), set(c.initializers)
    width, bn = c.widths[0], c.batch_norm[0]
    base = dict(width=width, batch_norm=bn)
    out: list[str] = []

    def layers_of(field: str, **w: Any) -> np.ndarray | None:
        return _median_layers(result, field, phase="init", **base, **w)

    def find(*labels: str) -> str | None:
        return next((x for x in labels if x in inits), None)

    xavier = find("xavier", "glorot_normal", "xavier_normal", "glorot")
    he = find("he", "he_normal", "kaiming_normal", "kaiming")
    lecun = find("lecun", "lecun_normal")
    std1 = find("normal(1)", "normal(1.0)")
    std001 = find("normal(0.01)")
    d5 = _closest(c.depths, 5)
    if "sigmoid" in acts and std1 and std001 and xavier:
        sat = layers_of("saturation_fraction", activation="sigmoid", initializer=std1, depth=d5)
        m = layers_of("activation_mean", activation="sigmoid", initializer=std001, depth=d5)
        s = layers_of("activation_std", activation="sigmoid", initializer=std001, depth=d5)
        sx = layers_of("activation_std", activation="sigmoid", initializer=xavier, depth=d5)
        if sat is not None and m is not None and s is not None and sx is not None:
            # Each claim only where the numbers make it (they are printed either way).
            everywhere = float(np.min(sat)) > c.saturation_threshold
            saturated = (f"{_fmt(float(np.min(sat)))}-{_fmt(float(np.max(sat)))} of the "
                         "activations are saturated (|a - 1/2| > 0.45)"
                         + (" in every layer" if everywhere else " (by layer)"))
            collapse = float(np.max(s)) < 0.1 * float(np.min(sx))
            small = ("collapse to" if collapse else "have mean") + f" {_fmt(float(np.mean(m)))}"
            xav = ("keeps a spread" if float(np.min(sx)) > 2 * float(np.max(s))
                   else "has a similar spread")
            out.append(
                f"- Sigmoid, {_hidden(d5)} x {width}: with N(0, 1) weights {saturated}; "
                f"with N(0, 0.01^2) they {small} (std at most {_fmt(float(np.max(s)))}); "
                f"Xavier {xav} (std {_fmt(float(np.min(sx)))}-{_fmt(float(np.max(sx)))}).")
    if "relu" in acts and std001 and xavier and he:
        s1 = layers_of("activation_std", activation="relu", initializer=std001, depth=d5)
        sx = layers_of("activation_std", activation="relu", initializer=xavier, depth=d5)
        sh = layers_of("activation_std", activation="relu", initializer=he, depth=d5)
        if s1 is not None and sx is not None and sh is not None:
            out.append(
                f"- ReLU, {_hidden(d5)}: with N(0, 0.01^2) the activations "
                f"{_trend(s1)} (std {_fmt(float(s1[0]))} in layer 1, {_fmt(float(s1[-1]))} in "
                f"layer {len(s1)}); with Xavier they {_trend(sx)} (std {_fmt(float(sx[0]))} -> "
                f"{_fmt(float(sx[-1]))}); with He they {_trend(sh)} (std "
                f"{_fmt(float(sh[0]))} -> {_fmt(float(sh[-1]))}).")
    sig_init = lecun or xavier
    def cells(act: str, init: str) -> list[tuple[float, str, str]]:
        return [ratio_cell(result.select(phase="init", activation=act, initializer=init,
                                         depth=d, **base)) for d in c.depths]

    def ratios(cs: list[tuple[float, str, str]]) -> list[float]:
        # a full vanish (0/0 in most seeds) is as small as a ratio gets: 0
        return [0.0 if kind == "0/0" else med for med, kind, _ in cs]

    def listing(cs: list[tuple[float, str, str]]) -> str:
        return "; ".join(f"D={d}: {_fmt(med) if kind == 'ratio' else label}"
                         for d, (med, kind, label) in zip(c.depths, cs, strict=True))

    if "sigmoid" in acts and sig_init and len(c.depths) > 1:
        cs = cells("sigmoid", sig_init)
        vals = ratios(cs)
        # exact zeros: gradients below the float32 range (flushed), as small as it gets
        shrinking = all(b < a or (a == 0.0 and b == 0.0)
                        for a, b in zip(vals[:-1], vals[1:], strict=True))
        trend = ("it shrinks with depth" if shrinking else "not monotone in depth") + (
            "; 0 = the first layer's gradient is below the float32 range"
            if any(med == 0.0 and kind == "ratio" for med, kind, _ in cs) else "") + (
            "; 0/0 = both gradients below the float32 range, a full vanish"
            if any(kind == "0/0" for _, kind, _ in cs) else "")
        out.append(f"- Sigmoid + {sig_init}: first/last hidden-layer gradient-norm ratio at "
                   f"initialization {listing(cs)} ({trend}).")
    if "relu" in acts and he and len(c.depths) > 1:
        cs = cells("relu", he)
        near = all(0.1 <= v <= 10 for v in ratios(cs))
        out.append(f"- ReLU + {he}: the same ratio "
                   + ("stays within a factor 10 of 1" if near else "leaves [0.1, 10]")
                   + f": {listing(cs)}.")
    if "relu" in acts and he and xavier and c.steps and max(c.depths) >= 20:
        d = _closest(c.depths, 30)
        w = dict(phase="trained", activation="relu", depth=d, **base)
        acc_w = {k: v for k, v in w.items() if k != "phase"}
        def outcome(init: str) -> str:
            cell = accuracy_cell(result, initializer=init, **acc_w)
            if math.isnan(trained_accuracy(result, initializer=init, **acc_w)):
                return cell  # "diverged (3 of 5)": no train loss to quote
            return f"{cell}, train loss {_fmt(result.median('train_loss', initializer=init, **w))}"

        out.append(
            f"- ReLU, {_hidden(d)}, {c.steps} SGD steps at learning rate "
            f"{c.learning_rate}: {he} reaches test accuracy {outcome(he)}; {xavier} "
            f"{outcome(xavier)} (chance {1 / result.num_classes:.2f}).")
    if "selu" in acts and lecun:
        d = max(c.depths)
        m = layers_of("activation_mean", activation="selu", initializer=lecun, depth=d)
        s = layers_of("activation_std", activation="selu", initializer=lecun, depth=d)
        if m is not None and s is not None:
            out.append(
                f"- SELU + {lecun}, {_hidden(d)}: activation means stay in "
                f"[{_fmt(float(np.min(m)))}, {_fmt(float(np.max(m)))}] and standard deviations "
                f"in [{_fmt(float(np.min(s)))}, {_fmt(float(np.max(s)))}] across all layers "
                "(self-normalizing).")
    return out


def compile_summary(timing: dict[str, Any]) -> str:
    """What a run compiled, in words, from ``result.timing``: ``"3 compilations (one per
    shape group)"`` for a fresh process, ``"0 new compilations (3 shape groups reused
    kernels compiled earlier in this process)"`` for a repeated study -- "0 compilations"
    alone would read as if nothing had been compiled at all."""
    compiles, reused = int(timing["compiles"]), int(timing.get("reused", 0))
    procs = int(timing.get("workers", 1))
    noun = "compilation" if compiles == 1 else "compilations"
    if procs > 1:
        text = (f"{compiles} {noun} in {procs} worker processes (one per shape group and "
                "seed share in each")
        if reused:
            text += (f"; {reused} {'task' if reused == 1 else 'tasks'} reused a kernel "
                     "their worker had compiled")
        return text + ")"
    if not reused:
        return f"{compiles} {noun} (one per shape group)"
    groups = "1 shape group reused a kernel" if reused == 1 else (
        f"{reused} shape groups reused kernels")
    return f"{compiles} new {noun} ({groups} compiled earlier in this process)"


def compile_share(timing: dict[str, Any]) -> str:
    """How much of the shape groups' time went to compiling, from ``timing["groups"]``'s
    ``compile_s``: ``"compiling took 9.0 s of the groups' 17.9 s"``; ``""`` when a group's
    is unknown (a JAX that does not report it, a ``timing.json`` written before it was
    recorded) and when nothing was compiled (:func:`compile_summary` says so). With worker
    processes both sums add up every worker's time."""
    groups = timing.get("groups") or []
    comp = [g.get("compile_s") for g in groups]
    if not groups or any(c is None for c in comp) or timing.get("compiles", 1) == 0:
        return ""
    return (f"compiling took {sum(comp):.1f} s of the groups' "
            f"{sum(float(g['seconds']) for g in groups):.1f} s")


def render_report(result: DepthStudyResult) -> str:
    """The Markdown report (see the module docstring)."""
    c = result.config
    verdicts = classify(result)
    chance = 1.0 / result.num_classes
    t = result.timing
    share = compile_share(t)
    n_models = len(c.depths) * len(c.widths) * len(c.activations) * len(c.initializers) * len(
        c.batch_norm) * c.seeds
    L = [f"# Depth study `{c.name}`", ""]
    L.append(
        f"Data: `{c.dataset}` ({result.num_classes} classes). Swept {len(c.depths)} depths "
        f"(hidden layers {', '.join(map(str, c.depths))}) x widths {list(c.widths)} x "
        f"{len(c.activations)} activations x {len(c.initializers)} initializers"
        f"{' x batch norm ' + str(list(c.batch_norm)) if len(c.batch_norm) > 1 else ''} x "
        f"{c.seeds} seeds = {n_models} models, each measured at initialization"
        + (f" and after {c.steps} SGD steps (batch {c.batch_size}, learning rate "
           f"{c.learning_rate})." if c.steps else ".")
        + f" Statistics on a probe batch of {c.probe_size} training examples. Wall time "
        f"{t['total_s']:.1f} s with {compile_summary(t)}"
        + (f"; {share}." if share else ".")
    )
    L += ["", "Definitions: *ratio* = ||dL/dW|| of the first hidden layer / that of the last "
          "hidden layer at initialization (median over seeds). A combination **vanishes** "
          f"when ratio < {c.vanish_ratio:g} or its *growth* (std of the last hidden layer's "
          "pre-activations / that of the first, median over seeds) < "
          f"{c.vanish_ratio:g} (or the first layer's gradient is exactly 0 in most seeds), "
          f"**explodes** when ratio > {c.explode_ratio:g}, growth > {c.explode_ratio:g} or "
          "its statistics overflow (explodes wins over vanishes) "
          "(in the ratio tables, *0/0* = both gradients exactly 0, a full vanish, and "
          "*overflow* = inf/NaN gradients, in every seed without a ratio: most or all of "
          "them), "
          f"**saturates** when more than {c.saturation_threshold:.0%} of hidden units sit in the "
          "flat region of the activation (sigmoid |a-1/2|>0.45, tanh |a|>0.9, ReLU a=0, "
          "others |f'(u)|<0.05)"
          + (f", **trains** when the median test accuracy after training reaches "
             f"{chance + c.train_threshold * (1 - chance):.2f} (chance {chance:.2f}) and "
             f"**stalls** below {chance + 0.1 * (1 - chance):.2f}." if c.steps else ".")]
    findings = _findings(result)
    if findings:
        L += ["", "## Known findings, measured", ""] + findings
    sections = [("Vanishing gradients and activations", "vanishes", "ratio_growth"),
                ("Exploding gradients and activations", "explodes", "ratio_growth"),
                ("Saturation at initialization", "saturates", "saturation")]
    if c.steps:
        sections += [("Trains", "trains", "test_accuracy"),
                     ("Stalls (no better than chance + 10%)", "stalls", "test_accuracy")]
    for title, flag, value in sections:
        lines = _group_sentences(verdicts, flag, value, c)
        L += ["", f"## {title}", ""]
        L += lines if lines else ["- none of the swept combinations."]

    for bn in c.batch_norm:
        for width in c.widths:
            tag = f" (width {width}{', batch norm' if bn else ''})"
            L += ["", f"## Median first/last gradient ratio at initialization{tag}", "",
                  "| activation | initializer | " + " | ".join(f"D={d}" for d in c.depths) + " |",
                  "|---|---|" + "---|" * len(c.depths)]
            for act in c.activations:
                for init in c.initializers:
                    cells = [ratio_cell(result.select(phase="init", activation=act,
                                                      initializer=init, depth=d, width=width,
                                                      batch_norm=bn))
                             for d in c.depths]
                    L.append(f"| {act} | {init} | " + " | ".join(
                        _fmt(med) if kind == "ratio" else label for med, kind, label in cells)
                        + " |")
            if c.steps:
                L += ["", f"## Median test accuracy after {c.steps} SGD steps{tag}", ""]
                if c.seeds > 1:
                    L += ["Median over the seeds, in parentheses the lowest-highest seed "
                          "(when they differ) and the seeds that diverged (NaN logits; left "
                          "out of the median and the range, and the median is *diverged* when "
                          "they are the majority).", ""]
                L += ["| activation | initializer | "
                      + " | ".join(f"D={d}" for d in c.depths) + " |",
                      "|---|---|" + "---|" * len(c.depths)]
                for act in c.activations:
                    for init in c.initializers:
                        cells = [accuracy_cell(result, activation=act, initializer=init,
                                               depth=d, width=width, batch_norm=bn)
                                 for d in c.depths]
                        L.append(f"| {act} | {init} | " + " | ".join(cells) + " |")
            if len(c.depths) <= 3 or c.histograms:
                for d in c.depths[:1] if not c.histograms else c.depths:
                    L += ["", f"## Per-layer activations at initialization, {_hidden(d)}"
                          f"{tag}", ""] + _layer_table(result, d, width, bn)
    gaps = _histogram_gaps(result)
    if gaps:
        L += ["", "## Incomplete activation histograms", "",
              "The histograms count finite activations only (titles give the non-finite "
              "share):", ""] + gaps
    L += ["", "Plots: `grad_norms_*.png`, `ratio_heatmap_*.png`"
          + (", `training_curves.png`" if c.steps else "")
          + (", `activation_histograms_*.png`" if c.histograms else "")
          + "; full numbers in `table.csv` / `table.json`.", ""]
    return "\n".join(L)


#: The file names of :func:`write_plots` (cleared of an earlier study's by write_outputs).
_PLOT_PATTERNS = ("grad_norms_*.png", "ratio_heatmap_*.png", "training_curves*.png",
                  "activation_histograms_*.png")


def write_outputs(result: DepthStudyResult, workdir: str | pathlib.Path,
                  *, plots: bool = True) -> dict[str, Any]:
    """Write the table files, the plots (unless ``plots=False``) and ``report.md``, and
    remove plots an earlier study left in ``workdir`` that this one did not write.

    The files are one set: an earlier study's ``manifest.json`` is removed before the
    first file is replaced, and the new one written last (:data:`MANIFEST`), so a run killed
    while writing leaves a folder :func:`load_result` refuses, never a mix of two studies.

    Returns:
      ``{name: path}`` for the table files, ``"report"``, ``"plots"`` (a list) and
      ``"manifest"``.
    """
    wd = pathlib.Path(workdir)
    contents = _table_contents(result)  # a failure here leaves the folder as it was
    report = render_report(result)
    _prepare_workdir(wd)
    wd.mkdir(parents=True, exist_ok=True)
    _open_set(wd)
    paths: dict[str, Any] = _write_contents(wd, contents)
    paths["plots"] = _replace_plots(result, wd, plots)
    paths["report"] = write_text(wd / "report.md", report)
    paths["manifest"] = _close_set(wd, result.config, [
        *(p.name for k, p in paths.items() if k != "plots"), *(p.name for p in paths["plots"])])
    return paths


def _replace_plots(result: DepthStudyResult, wd: pathlib.Path, plots: bool) -> list:
    """Write the plots (unless ``plots=False``) and remove those of an earlier study in
    ``wd`` (other activations, phases, widths, or all of them with plots=False), which
    would contradict this table and report."""
    written_paths = write_plots(result, wd) if plots else []
    written = {p.name for p in written_paths}
    for pattern in _PLOT_PATTERNS:
        for old in wd.glob(pattern):
            # (a figure set aside from a folder without a study matches too: kept)
            if old.name not in written and ".unmatched" not in old.name:
                old.unlink(missing_ok=True)
    return written_paths


#: The files of a finished study that a re-render copies as they are (``config.yaml`` is
#: written again, with the new thresholds).
_DATA_FILES = ("table.csv", "table.json", "curves.json", "histograms.json", "timing.json")


def rerender(source: str | pathlib.Path, workdir: str | pathlib.Path | None = None,
             overrides: Sequence[str] = (), *, plots: bool = True) -> dict[str, Any]:
    """Re-render the report (and plots) of the finished study in ``source`` without running
    it: ``depth_study.py --report-from``.

    The study is read back (:func:`load_result`), ``overrides`` of :data:`VERDICT_FIELDS`
    applied (:func:`with_verdict_settings`), and ``config.yaml`` and ``report.md`` written
    into ``workdir`` (default: ``source`` itself). The table files are never rewritten from
    the loaded result (``-inf`` would come back as ``nan``): into another ``workdir`` they
    are copied byte for byte. With ``plots=False`` the plots in ``source`` are kept (they
    depend on the table only); another ``workdir`` loses those of an earlier study.
    ``manifest.json`` is written last (into another ``workdir``, its old one is removed
    first), as by :func:`write_outputs`; a re-render killed in place leaves the study
    readable (only the thresholds and the report may then disagree: run it again).

    Returns:
      ``{"config", "report", "plots", "manifest"}`` paths (and the copied table files'
      names).

    Raises:
      ConfigError: as :func:`load_result` and :func:`with_verdict_settings`.
    """
    src = pathlib.Path(source)
    result = with_verdict_settings(load_result(src), overrides)
    wd = src if workdir is None else pathlib.Path(workdir)
    in_place = wd.exists() and src.resolve() == wd.resolve()
    paths: dict[str, Any] = {}
    kept: list[str] = []
    if not in_place:
        _prepare_workdir(wd)
        wd.mkdir(parents=True, exist_ok=True)
        _open_set(wd)
        for name in _DATA_FILES:
            paths[name] = write_bytes(wd / name, (src / name).read_bytes())
    elif not plots:  # the plots stay, and stay in the set
        kept = [n for n in ((_read_manifest(wd) or {}).get("files") or {})
                if n.endswith(".png") and (wd / n).is_file()]
    paths.update(write_report(result, wd))
    if plots or not in_place:
        paths["plots"] = _replace_plots(result, wd, plots)
    paths["manifest"] = _close_set(wd, result.config, [
        *_DATA_FILES, "config.yaml", "report.md", *kept, *(p.name for p in paths["plots"])])
    return paths


def write_report(result: DepthStudyResult, workdir: str | pathlib.Path) -> dict[str, Any]:
    """Rewrite only ``config.yaml`` and ``report.md`` in ``workdir`` (atomically), leaving
    the table files and plots as they are: a re-render of the study already in
    ``workdir`` with other :data:`VERDICT_FIELDS` (the plots do not depend on them).

    When ``workdir``'s ``manifest.json`` is of the same study (up to the thresholds), its
    entries for the two files are updated; otherwise it is left as it was (and the folder,
    if it holds another study's tables, is refused by :func:`load_result`).

    Returns:
      ``{"config": path, "report": path, "plots": []}``.
    """
    wd = pathlib.Path(workdir)
    report = render_report(result)
    paths = {"config": write_text(wd / "config.yaml", _config_text(result)),
             "report": write_text(wd / "report.md", report), "plots": []}
    try:
        manifest = _read_manifest(wd)
    except (OSError, ValueError):
        manifest = None
    if (manifest is not None and not manifest.get("open")
            and manifest.get("measured") == _measured(result.config)):
        # only these two entries: the others stay as written with their files
        _write_manifest(wd, manifest["measured"], {
            **manifest["files"], **{n: _sha256(wd / n) for n in ("config.yaml", "report.md")}})
    return paths


def _config_text(result: DepthStudyResult) -> str:
    """``config.yaml``: the resolved study config (what :func:`load_result` reads back)."""
    return yaml.safe_dump(config_to_dict(result.config), sort_keys=False)
