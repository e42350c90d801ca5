"""Plumbing shared by the training-craft experiments (:mod:`jaxnn.studies.craft`).

Contract:

* An experiment is configured by a plain nested ``dict`` whose defaults live in the
  experiment's module; :func:`merge_config` lays a YAML file's mapping and ``a.b=value``
  override strings over the defaults. Keys that are not in the defaults are rejected with a
  close-match suggestion, and values are coerced to the type of their default, so a typo
  fails before anything is compiled. Every problem is a :class:`jaxnn.config.ConfigError`
  (one line naming the key, the value and what is allowed).
* Figures are written with matplotlib's ``Agg`` backend (no display needed); summaries are
  short Markdown files. Both land in the experiment's workdir: once the run is done,
  :func:`begin_outputs` removes the previous ``summary.md``, the figure is written, and
  :func:`write_summary` comes last. So a ``summary.md`` always describes the figure beside
  it; a run stopped between the two leaves a figure without a summary, and one stopped
  before (while training) leaves the previous outputs as they were.
"""

from __future__ import annotations

import copy
import difflib
import math
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxnn._atomic import remove_temporaries, replace_atomically, write_text
from jaxnn.config import ConfigError, parse_override_value, read_yaml

__all__ = [
    "ConfigError",
    "begin_outputs",
    "check",
    "check_distinct",
    "divergence_step",
    "is_int",
    "is_number",
    "markdown_table",
    "merge_config",
    "pyplot",
    "increase_fraction",
    "save_figure",
    "write_summary",
]


def is_number(value: Any) -> bool:
    """True for an int or float (NumPy scalars included) that is not a bool.

    ``bool`` is a subclass of ``int`` in Python, so a YAML ``true`` would otherwise read as
    ``1``: every numeric config check goes through this function or :func:`is_int`.
    """
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool | np.bool_))


def is_int(value: Any) -> bool:
    """True for an int (NumPy integers included) that is not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` (None defaults accept anything)."""
    if default is None:
        return value
    if value is None:
        kind = ("a mapping" if isinstance(default, dict) else "a list"
                if isinstance(default, list | tuple) else f"a {type(default).__name__}")
        raise ConfigError(f"{key}: expected {kind}, got null")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(default, int):
        # 2.0 is accepted as 2; inf and nan are not integers (int() would raise on them).
        if not (is_int(value) or (is_number(value) and math.isfinite(value)
                                  and value == int(value))):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not is_number(value):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if default and not isinstance(default[0], dict | list):
            return [_coerce(f"{key}[{i}]", v, default[0]) for i, v in enumerate(value)]
        return list(value)
    if isinstance(default, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    return value


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _free(value: Any) -> Any:
    """A value under an open key (no default to coerce to): YAML 1.1 reads ``1e-3`` (no dot)
    as a string; such strings become numbers."""
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_free(v) for v in value]
    return value


def _merge(base: dict, extra: Mapping, prefix: str, open_keys: bool,
           reference: Any = None) -> dict:
    """``extra`` laid over ``base``. ``reference`` is the defaults' part at this level
    (None where the user added it): rows a user added stay open to more keys."""
    out = copy.deepcopy(base)
    # (the top level is a section, even when all its values are mappings: SURFACE_DEFAULTS)
    table = bool(prefix) and _is_table(out)
    for k, v in extra.items():
        key = f"{prefix}{k}"
        if v is None and table:  # ``name: null`` removes a row of a table
            if k not in out:
                raise ConfigError(
                    f"{key}: null removes a row, but there is no row {str(k)!r}"
                    f"{_suggest(str(k), list(out))}; rows: {', '.join(map(str, out))}")
            del out[k]
            continue
        if k not in out:
            if open_keys:
                out[k] = _free(copy.deepcopy(v))
                continue
            raise ConfigError(
                f"unknown key {key!r}{_suggest(str(k), list(out))}; "
                f"valid keys{' under ' + prefix[:-1] if prefix else ''}: {', '.join(out)}"
            )
        ref = reference.get(k) if isinstance(reference, Mapping) else None
        if isinstance(out[k], dict) and isinstance(v, Mapping):
            # Tables of named entries (e.g. the optimizers of a study) are open: a new
            # name adds a row. Their rows, like sections, are checked key by key, except
            # rows the user added and keyword mappings (``kwargs``), which stay open.
            opened = _is_table(out[k]) or not out[k] or ref is None or k == "kwargs"
            out[k] = _merge(out[k], v, f"{key}.", opened, ref)
        elif open_keys and ref is None:
            out[k] = _free(copy.deepcopy(v))  # a value the user added earlier: replaced
        else:
            out[k] = _coerce(key, v, out[k])
    return out


def _is_table(section: dict) -> bool:
    """A table maps free names to mappings (every value a dict), e.g. ``optimizers``.

    Empty mappings (e.g. an optimizer's ``kwargs``) are open too.
    """
    return bool(section) and all(isinstance(v, dict) for v in section.values())


# One part of a dotted key: a quoted name (which may hold dots: inits."std 0.01") or a
# plain one.
_KEY_PART = re.compile(r'"([^"]+)"|\'([^\']+)\'|([^.\'"]+)')


def _split_key(item: str, key: str) -> list[str]:
    """``a."b.c".d`` -> ``["a", "b.c", "d"]``."""
    parts: list[str] = []
    pos = 0
    while True:
        m = _KEY_PART.match(key, pos)
        if m is None:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key like a.b "
                              "(quote a name that holds a dot: inits.\"std 0.01\".kwargs)")
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if pos == len(key):
            return parts
        if key[pos] != ".":
            raise ConfigError(f"--set {item!r}: expected a dot after {key[:pos]!r}")
        pos += 1


def _parse_override(item: str) -> tuple[list[str], Any]:
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.steps=100")
    key, raw = item.split("=", 1)
    return _split_key(item, key.strip()), parse_override_value(item, raw)


def _check_dotted_names(item: str, data: Mapping[str, Any], parts: list[str]) -> None:
    """An unquoted part that starts a name holding a dot (``inits.std 0.01.kwargs``): say
    how to quote it, instead of adding a row named ``std 0`` (or a confusing type error)."""
    level: Any = data
    for i, part in enumerate(parts):
        if not isinstance(level, Mapping):
            return
        if part not in level:
            rest = ".".join(parts[i:])
            names = [str(k) for k in level
                     if "." in str(k) and (rest == str(k) or rest.startswith(f"{k}."))]
            if names:
                quoted = ".".join([*parts[:i], f'"{names[0]}"',
                                   *([rest[len(names[0]) + 1:]] if rest != names[0] else [])])
                raise ConfigError(f"--set {item!r}: {names[0]!r} holds a dot, so quote it: "
                                  f"--set '{quoted}={item.split('=', 1)[1]}'")
            return
        level = level[part]


def merge_config(
    defaults: Mapping[str, Any],
    path: str | pathlib.Path | None = None,
    overrides: Sequence[str] = (),
    *,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The defaults overlaid with a YAML file and ``a.b=value`` override strings.

    A table of named rows (e.g. ``optimizers``) takes new rows by name, and drops a row set
    to null (``--set optimizers.SGD=null``, or ``SGD: null`` in the file), so a study can
    compare fewer entries than its defaults.

    Args:
      defaults: the experiment's default mapping (not modified).
      path: a YAML file holding a (partial) mapping of the same shape, or None.
      overrides: strings ``"a.b=value"``; the value is parsed as a YAML scalar or list.
      data: the file's mapping when the caller has read it already (``path`` then only
        names it); None reads ``path``.

    Returns:
      A new nested dict.

    Raises:
      ConfigError: unreadable file, unknown key (with a suggestion) or a value of the
        wrong type.
    """
    out = dict(copy.deepcopy(defaults))
    if path is not None:
        given = read_yaml(path) if data is None else data
        out = _merge(out, given, "", open_keys=False, reference=defaults)
    for item in overrides:
        parts, value = _parse_override(item)
        _check_dotted_names(item, out, parts)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        out = _merge(out, nested, "", open_keys=False, reference=defaults)
    return out


def check(cond: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` ``"<key>: got <value>; allowed: <allowed>"`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{key}: got {value!r}; allowed: {allowed}")


def check_distinct(key: str, labelled: Sequence[tuple[Any, Any]], allowed: str) -> None:
    """Raise :class:`ConfigError` when two entries resolve to the same run label.

    Results are keyed by label, so a second entry with the label of an earlier one would
    silently overwrite it. Args: ``key`` names the config key, ``labelled`` holds
    ``(label, entry)`` pairs in config order and ``allowed`` says what is valid.
    """
    by_label: dict[str, list[Any]] = {}
    for label, entry in labelled:
        by_label.setdefault(str(label), []).append(entry)
    for label, entries in by_label.items():
        if len(entries) > 1:
            raise ConfigError(
                f"{key}: entries {', '.join(repr(e) for e in entries)} "
                f"{'both' if len(entries) == 2 else 'all'} give the run label {label!r}; "
                f"allowed: {allowed}")


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive ``Agg`` backend selected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4f}"
    return str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats get 4 decimals (or 3 significant digits)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(fig: Any, path: str | pathlib.Path, **kwargs: Any) -> pathlib.Path:
    """``fig.savefig(path, **kwargs)``, atomically."""
    return replace_atomically(path, lambda tmp: fig.savefig(tmp, **kwargs))


def begin_outputs(workdir: str | pathlib.Path | None) -> pathlib.Path | None:
    """Make ``workdir`` ready for an experiment's outputs and return it (None: None).

    Creates the folder and removes its ``summary.md``: an experiment calls this once its
    results are computed, then writes its figure, then :func:`write_summary` last, so a
    ``summary.md`` is never left beside a figure from another run. It also deletes the
    temporaries of ``summary.md`` and of ``*.png`` figures that a run killed while writing
    them (``kill -9``: no cleanup) left there, hidden files as big as the output they
    were to become (:func:`jaxnn._atomic.remove_temporaries`).
    """
    if workdir is None:
        return None
    path = pathlib.Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    remove_temporaries(path, _is_output)
    (path / "summary.md").unlink(missing_ok=True)
    return path


def _is_output(name: str) -> bool:
    """True for a file name an experiment writes into its workdir: ``summary.md`` or a
    lower-case ``<name>.png`` figure."""
    return name == "summary.md" or re.fullmatch(r"[a-z_]+\.png", name) is not None


def write_summary(workdir: pathlib.Path, title: str, body: str) -> pathlib.Path:
    """Write ``summary.md`` (``# title`` then ``body``) into ``workdir``, atomically, and
    return its path. Experiments write it last, after :func:`begin_outputs` and their
    figures."""
    path = pathlib.Path(workdir) / "summary.md"
    text = f"# {title}\n\n{body.rstrip()}\n"
    return write_text(path, text)


def increase_fraction(losses: Any) -> float:
    r"""Fraction of updates that increase the loss: :math:`\frac{1}{T-1}\sum_t [L_{t+1} > L_t]`.

    0 for a monotonically decreasing curve (full-batch gradient descent with a small enough
    step), about 1/2 for a curve dominated by minibatch noise. Non-finite losses count as
    increases.
    """
    a = np.asarray(losses, dtype=np.float64).ravel()
    if a.size < 2:
        return 0.0
    d = np.diff(a)
    return float(np.mean(~(d <= 0)))


def divergence_step(losses: Any, factor: float = math.inf) -> int | None:
    """First update (0-based) whose loss is non-finite or above ``factor`` x the first loss
    (the default: non-finite only); None when there is none."""
    a = np.asarray(losses, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore"):  # inf x a first loss of 0 is nan: never exceeded
        bad = ~np.isfinite(a) | (a > factor * a[0])
    return int(np.argmax(bad)) if bad.any() else None
