"""Typed, validated, frozen experiment configs loaded from YAML.

A :class:`Config` is a tree of frozen dataclasses (model, data, optimizer, schedule,
training, logging, distributed). :func:`load` reads a YAML file, :func:`apply_overrides` applies
``a.b=value`` strings (the CLI's ``--set``), and :func:`from_dict` builds and validates a
config from a plain mapping. Every problem is reported *before* anything is compiled as a
single :class:`ConfigError` line naming the key, the value received and what is allowed,
with a close-match suggestion for misspelled keys and names::

    cfg = load("configs/default.yaml", overrides=["optimizer.learning_rate=3e-4"])
    cfg.optimizer.learning_rate  # 0.0003

Configs are immutable: derive new ones with :func:`replace` (``replace(cfg, "training.epochs",
3)``) or ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import os
import pathlib
import re
import tempfile
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml

from jaxnn._atomic import write_text

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EarlyStoppingConfig",
    "LoggingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PlateauConfig",
    "ScheduleConfig",
    "TrainingConfig",
    "apply_overrides",
    "holds_depth_study",
    "refuse_empty",
    "dump",
    "ensure_workdir",
    "fresh_workdir",
    "from_dict",
    "load",
    "parse_override_value",
    "replace",
    "to_dict",
    "validate_distributed",
]


class ConfigError(ValueError):
    """A config problem, reported as one line naming the key, the value and what is allowed."""


# ----------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The MLP. Input and output sizes come from the data set."""

    hidden_sizes: tuple[int, ...] = (128, 64)  # widths of the hidden layers; () = linear model
    hidden_activation: str = "relu"  # any name in jaxnn.activations.names()
    output_activation: str = "linear"  # "linear" for logits (cross-entropy losses)
    activation_kwargs: dict[str, float] = dataclasses.field(default_factory=dict)
    initializer: str = "he_normal"  # any name in jaxnn.initializers.names()
    initializer_kwargs: dict[str, float] = dataclasses.field(default_factory=dict)
    use_bias: bool | Literal["auto"] = True  # "auto": none on hidden layers feeding batch norm
    dropout_rate: float = 0.0  # on hidden layers, in [0, 1)
    dropout_inverted: bool = True  # False: the textbook variant (scale at test time)
    batch_norm: bool = False  # on hidden layers
    batch_norm_position: str = "before_activation"  # or "after_activation"
    batch_norm_momentum: float = 0.9
    maxout_pieces: int = 2  # used when hidden_activation is "maxout"
    l1: float = 0.0  # L1 penalty weight on weight matrices
    l2: float = 0.0  # L2 penalty weight, 0.5 * l2 * sum(W**2)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data set, where to find it and how to prepare it."""

    name: str = "digits"  # any name in jaxnn.data.names()
    data_dir: str | None = None  # MNIST / Fashion-MNIST IDX files; else $JAXNN_DATA, then cache
    download: bool = True  # allow a verified download when the files are nowhere to be found
    normalization: str = "scale"  # "none" | "scale" | "standardize"
    n_train: int | None = None  # subsample the training split (None: all of it)
    n_test: int | None = None  # subsample the test split (None: all of it)
    validation_fraction: float = 0.0  # held out from the training split, in [0, 1)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # loader options


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """A named jaxnn optimizer: ``jaxnn.optim.get(name, learning_rate, **options)``."""

    name: str = "adam"
    learning_rate: float = 1e-3  # the base rate; a schedule multiplies/overrides it
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {b1: 0.9}
    clip_global_norm: float | None = None  # optax.clip_by_global_norm before the optimizer


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """A learning-rate schedule from ``jaxnn.optim.schedules``.

    ``name: constant`` uses ``optimizer.learning_rate`` unchanged. For any other name the
    schedule's own arguments go in ``options``; an ``init_value``/``peak_value``/``base_lr``
    left out there defaults to ``optimizer.learning_rate``; arguments counted in steps may be
    given in epochs through ``epoch_options`` (e.g. ``{decay_steps: 10}``: ten epochs).
    """

    name: str = "constant"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    epoch_options: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``min_delta`` only decides which epochs reset the patience. The best epoch (logged,
    written to ``best.jaxnn`` and brought back by ``restore_best``) is the one with the best
    monitored value, even when it beat the previous best by less than ``min_delta``.
    (Keras' ``restore_best_weights`` brings back the last epoch that beat the best by
    ``min_delta`` instead, which can be a worse epoch.)
    """

    enabled: bool = False
    monitor: str = "val_loss"  # any logged metric
    mode: str = "min"  # "min" or "max"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True


@dataclasses.dataclass(frozen=True)
class PlateauConfig:
    """``jaxnn.optim.reduce_on_plateau`` fed with ``monitor`` once per epoch."""

    enabled: bool = False
    monitor: str = "val_loss"
    mode: str = "min"  # "min" or "max" (e.g. for val_accuracy)
    factor: float = 0.5
    patience: int = 3
    cooldown: int = 0
    min_scale: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The loop."""

    seed: int = 0
    epochs: int = 20
    batch_size: int = 64  # 1: SGD; >= training-set size: full-batch gradient descent
    # True: the n % batch_size rows that fall last in each epoch's shuffle are left out of
    # that epoch (a different set each epoch). False: they make one smaller last step, so
    # every row is used once per epoch (ceil(n / batch_size) steps).
    drop_remainder: bool = True
    loss: str = "softmax_cross_entropy_with_integer_labels"  # any name in jaxnn.losses.names()
    # In [0, 1): train on smoothed labels y (1 - a) + a / C (optax.smooth_labels; a / 2 per
    # entry for sigmoid_binary_cross_entropy); cross-entropy losses only. The logged `loss`
    # is the smoothed objective; val_loss and test_loss stay the unsmoothed cross-entropy.
    label_smoothing: float = 0.0
    grad: str = "autodiff"  # "autodiff" (jax.grad) or "manual" (jaxnn.backprop)
    eval_batch_size: int = 1024
    checkpoint_every: int = 1  # epochs between checkpoints; 0 disables checkpoints
    keep_checkpoints: int = 2  # the last N, plus the best
    devices: int = 1  # data parallelism over this many devices (all processes'); 0 = all of them
    early_stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)
    reduce_on_plateau: PlateauConfig = dataclasses.field(default_factory=PlateauConfig)


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    """What the run writes besides the metrics log."""

    progress: bool = True  # a progress bar over epochs
    print_every: int = 1  # a metrics line every N epochs; 0 = never
    plots: bool = True  # PNG loss / accuracy curves in the run directory
    grad_norms: bool = False  # per-layer gradient norms in the metrics log
    tensorboard: bool = False  # also write TensorBoard event files (needs tensorboardX or tf)


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-process (multi-host) training through ``jax.distributed.initialize``.

    A null field is read from the environment (``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, ``JAX_LOCAL_DEVICE_IDS``), else it is
    single-process: no coordinator, one process, id 0. Nothing is initialized unless a
    coordinator address is given or more than one process is asked for. The two timeouts
    (JAX's defaults) bound how long a process waits for missing peers at start-up and
    how long the others run on after one dies.
    """

    coordinator_address: str | None = None  # "host:port" of process 0's coordinator service
    num_processes: int | None = None  # processes taking part, >= 1
    process_id: int | None = None  # this process, in [0, num_processes); 0 writes the files
    local_device_ids: tuple[int, ...] | None = None  # accelerators this process uses (GPU)
    # Seconds to wait for every process to join before giving up with an error.
    initialization_timeout_s: int = 300
    # Seconds without a heartbeat after which a process counts as dead and the others stop.
    heartbeat_timeout_s: int = 100


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        _validate(self)


# ----------------------------------------------------------------------------- building


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    return ""


def _schema_paths(cls: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key of the config schema, sections included: ``training.early_stopping``,
    ``training.early_stopping.patience``..."""
    paths = []
    for name, hint in typing.get_type_hints(cls or Config).items():
        paths.append(prefix + name)
        if dataclasses.is_dataclass(hint):
            paths += _schema_paths(hint, f"{prefix}{name}.")
    return paths


def _suggest_key(key: str, names: Sequence[str]) -> str:
    """The suggestion for the unknown dotted ``key`` (``names``: the valid keys beside it).

    A key of another section is named with its place (``training.learning_rate``: did you
    mean 'optimizer.learning_rate'?), before close matches here, which would be misleading
    ('drop_remainder' for ``training.dropout_rate``)."""
    name = key.rpartition(".")[2]
    elsewhere = [p for p in _schema_paths() if p.rpartition(".")[2] == name and p != key]
    if elsewhere:
        return " (did you mean " + " or ".join(repr(p) for p in elsewhere) + "?)"
    return _suggest(name, names)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if tp is bool:
        return "true or false"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` (from YAML) to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{key}: got {value!r}, expected {_type_name(tp)}")
    if origin is typing.Literal:
        if isinstance(value, str) and value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if value is None:  # an empty section (every key commented out): its defaults
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}, expected a mapping of {tp.__name__} fields")
        return _build(tp, value, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            hint = ""
            if isinstance(value, str) and value.strip():
                # "256,128" or "(256, 128)" (a YAML string): show the list it was meant to be.
                items = value.translate(str.maketrans(",()[]", "     ")).split()
                hint = f" such as [{', '.join(items)}]" if items else ""
            raise ConfigError(f"{key}: got {value!r}, expected a list of "
                              f"{_type_name(args[0])}{hint}")
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}, expected a mapping")
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(f"{key}.{k}", v, vt) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}, expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: got {value!r}, expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}, expected a number")
        if isinstance(value, float):
            return value
        if isinstance(value, int):
            try:
                return float(value)
            except OverflowError:  # a raw traceback from the CLI
                raise ConfigError(f"{key}: got {value!r}, expected a number within the "
                                  "float range (about +-1.8e308)") from None
        if isinstance(value, str):
            try:  # a quoted number: "3e-4"
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: got {value!r}, expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected a string")
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(
                f"unknown key {key!r}{_suggest_key(key, names)}; "
                f"valid keys here: {', '.join(names)}"
            )
        kwargs[k] = _coerce(key, v, hints[k])
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build and validate a :class:`Config` from a nested mapping (missing keys: defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: got {type(data).__name__}, expected a mapping of sections")
    return _build(Config, data)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain Python (tuples become lists), ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(config)


def dumps(config: Config) -> str:
    """The resolved config as the YAML text :func:`dump` writes."""
    return yaml.dump(to_dict(config), Dumper=_Dumper, sort_keys=False)


def dump(config: Config, path: str | pathlib.Path) -> None:
    """Write the resolved config as YAML (loadable again with :func:`load`), atomically."""
    write_text(path, dumps(config))


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optimizer.learning_rate=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key like a.b")
    return key.split("."), parse_override_value(item, raw)


def parse_override_value(item: str, raw: str) -> Any:
    """The value of a ``--set KEY=VALUE`` override, read as config files are read.

    YAML with this module's reader (``1e-3`` is a number, a key repeated inside a mapping is
    a :class:`ConfigError` naming ``item``); text that is not valid YAML stays a string,
    and an empty value is ``""``. Shared by every command line's ``--set``.
    """
    if not raw.strip():
        return ""
    try:
        return yaml.load(raw, Loader=_UniqueKeyLoader)
    except yaml.constructor.ConstructorError as e:  # a repeated key: named, not kept as text
        raise ConfigError(f"--set {item!r}: {e.problem or e}") from None
    except yaml.YAMLError:
        return raw


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested mapping (values parsed as YAML scalars/lists).

    Keys are checked against the config schema so that a misspelled override fails with a
    suggestion instead of being ignored.
    """
    out = _deep_copy(data)
    for item in overrides:
        parts, value = _parse_override(item)
        _set_path(out, parts, value, f"--set {item!r}")
    return out


def _set_path(out: dict[str, Any], parts: list[str], value: Any, where: str) -> None:
    """Set ``out[parts[0]][parts[1]]... = value``, checking each key against the schema."""
    cls: Any = Config
    node = out
    for depth, part in enumerate(parts):
        is_last = depth == len(parts) - 1
        if cls is not None:
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                key = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"{where}: unknown key {key!r}{_suggest_key(key, names)}; "
                    f"valid keys here: {', '.join(names)}"
                )
            hint = typing.get_type_hints(cls)[part]
            cls = hint if dataclasses.is_dataclass(hint) else None
        if is_last:
            if cls is not None and (value is None or isinstance(value, dict)):
                # A whole section: its keys are set one by one, merged into the file's (as
                # compare.py does); a free mapping (data.options, optimizer.options) is
                # replaced. null would silently reset every key of the section to its default.
                key = ".".join(parts)
                if value is None:
                    raise ConfigError(
                        f"{where}: {key} is a section; null would reset all of its keys to "
                        f"their defaults: set its keys instead, e.g. --set {key}.<key>=<value>")
                for k, v in value.items():
                    _set_path(out, [*parts, str(k)], v, where)
                return
            node[part] = value
        else:
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):  # named with its value: it may be the file's
                raise ConfigError(f"{where}: {'.'.join(parts[:depth + 1])} is a value "
                                  f"({child!r}), not a mapping of keys")
            node[part] = child
            node = child


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def ensure_workdir(workdir: str | pathlib.Path, create: bool = True) -> pathlib.Path:
    """Create ``workdir`` (and its parents) before a run starts, so an unusable one fails
    first, as a :class:`ConfigError` naming it, not after the work is done. With
    ``create=False`` only check that it is, or can become, a directory."""
    path = pathlib.Path(workdir)
    nearest = None
    for p in (path, *path.parents):  # mkdir would only say "File exists" / "Not a directory"
        if p.exists():
            if p.is_dir():
                nearest = p
                break
            where = "" if p == path else f": {str(p)!r} is a file"
            raise ConfigError(f"--workdir {str(path)!r} is not a directory{where}; "
                              "choose another --workdir")
    if nearest is not None:
        # Creating something there is the only sure test (permission bits do not tell root
        # about a read-only file system): without it, a folder that cannot be written was
        # named only once the data had loaded, or after the work (an existing one).
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".jaxnn-probe.", dir=nearest))
        except OSError as e:
            what = ("cannot write into it" if nearest == path
                    else f"cannot create it in {str(nearest)!r}")
            raise ConfigError(f"--workdir {str(path)!r}: {what} ({e.strerror}); "
                              "choose another --workdir") from None
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--workdir {str(path)!r}: cannot create it ({e.strerror})") from None
    return path


def fresh_workdir(base: str | pathlib.Path, markers: Sequence[str]) -> pathlib.Path:
    """``base``, or ``base-2``, ``base-3``... when one of ``markers`` (files or folders a
    finished run leaves) already lives there: a default output directory never overwrites
    an earlier run. An explicit ``--workdir`` is the user's choice and is used as given."""
    base = pathlib.Path(base)
    candidate, n = base, 1
    while any((candidate / m).exists() for m in markers):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def holds_depth_study(workdir: str | pathlib.Path) -> bool:
    """Whether ``workdir`` holds a depth study's outputs (``scripts/depth_study.py``: its
    ``manifest.json``, or the table and report of a study written before manifests). A
    new study replaces them; a training run refuses the folder."""
    wd = pathlib.Path(workdir)
    return (wd / "manifest.json").is_file() or ((wd / "table.csv").is_file()
                                                and (wd / "report.md").is_file())


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping.

    Plain YAML keeps the last value silently, so a config with two ``learning_rate:`` lines
    would run with whichever came last. Merge keys (``<<: *anchor``) may still be overridden.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: let SafeLoader report it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given at line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# Numbers are read as YAML 1.2 reads them, not as PyYAML's YAML 1.1:
# - 1.1 needs a dot in a float, so ``1e-8`` was the string "1e-8": typed fields converted it,
#   but free-form mappings (``optimizer.options`` and the like) passed it on as a string;
# - 1.1 reads a leading 0 as octal and colons as base 60, so ``batch_size: 016`` was 14,
#   ``seed: 0123`` 83 (but ``019`` 19) and ``epochs: 1:30`` 90, without a word. Decimal
#   digits are decimal, and ``1:30`` is text (an integer field names it as not a number).
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"""^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+
                   |[-+]?[0-9][0-9_]*\.[0-9_]*
                   |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)
_UniqueKeyLoader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$"), list("-+0123456789"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer scalar (as matched above): ``0b`` binary, ``0x`` hex, else decimal."""
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    base = {"0b": 2, "0x": 16}.get(digits[:2], 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes a string either YAML version would read as something
    else: ``'019'`` (a number to :func:`load`) as well as ``'1:30'`` (one to PyYAML)."""


_Dumper.yaml_implicit_resolvers = {
    first: _UniqueKeyLoader.yaml_implicit_resolvers.get(first, [])
    + yaml.SafeDumper.yaml_implicit_resolvers.get(first, [])
    for first in {*_UniqueKeyLoader.yaml_implicit_resolvers,
                  *yaml.SafeDumper.yaml_implicit_resolvers}
}


def _config_suggestion(given: str | pathlib.Path) -> str:
    """`` (did you mean 'configs/xor.yaml'?)`` for a misspelled config path (a typo, a name
    without its ``.yaml`` or one without ``configs/``), for every command line's
    ``--config``; empty when nothing is close."""
    path = pathlib.Path(given)
    folders = [path.parent] + ([pathlib.Path("configs")] if path.parent == pathlib.Path(".")
                               else [])
    for folder in folders:
        try:
            files = {f.stem.lower(): f.name for f in folder.iterdir()
                     if f.suffix in (".yaml", ".yml") and f.is_file()}
        except OSError:  # no such folder, or unreadable
            continue
        stem = path.stem if path.suffix in (".yaml", ".yml") else path.name
        match = difflib.get_close_matches(stem.lower(), sorted(files), n=1, cutoff=0.6)
        if match:
            return f" (did you mean {str(folder / files[match[0]])!r}?)"
    return ""


def read_yaml(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for missing, malformed or ambiguous files.

    A key given twice in one mapping is an error (plain YAML keeps the last value silently).
    """
    path = pathlib.Path(path)
    try:  # UTF-8 whatever the locale: an ASCII (C) locale refused a "×" in a comment
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist"
                          f"{_config_suggestion(path)}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory; give a YAML file") from None
    except UnicodeDecodeError as e:
        line = e.object.count(b"\n", 0, e.start) + 1
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte 0x{e.object[e.start]:02x} on "
            f"line {line}); give a YAML file saved as UTF-8") from None
    except OSError as e:  # no permission, a file named as a folder ("x.yaml/y")...
        raise ConfigError(
            f"config file {str(path)!r} cannot be read: {e.strerror or e.__class__.__name__}"
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML{where}: {problem}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}"
        )
    return data


def refuse_empty(path: str | pathlib.Path, data: Mapping[str, Any], kind: str) -> None:
    """Raise :class:`ConfigError` for a config file that holds no settings: an empty file (a
    failed copy, the wrong one) is a mistake far more often than a wish for the defaults,
    and it would run the default job without a word. ``kind`` says what was expected
    (``"a training config with at least one section"``)."""
    if not data:
        raise ConfigError(
            f"config file {str(path)!r} holds no settings (it is empty, only comments or {{}}); "
            f"give {kind}, or no file for the defaults")


def load(path: str | pathlib.Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply ``overrides``."""
    data = read_yaml(path) if path is not None else {}
    if path is not None:
        refuse_empty(path, data, "a training config with at least one section")
    sections = [f.name for f in dataclasses.fields(Config)]
    # Mostly keys that are neither sections nor misspelled sections: a depth-study or
    # compare.py config, say (compare_*.yaml have a 'data' section too). A lone 'trainnig',
    # or one stray key beside the sections, gets the unknown-key message below.
    foreign = [k for k in data if not difflib.get_close_matches(str(k), sections, cutoff=0.7)]
    ours = set(data) & set(sections)
    if data and 2 * len(foreign) >= len(data) and (not ours or len(foreign) >= 2):
        keys = ", ".join(map(str, foreign[:4])) + (", ..." if len(foreign) > 4 else "")
        raise ConfigError(
            f"config file {str(path)!r} is not a training config: its keys {keys} are not "
            f"sections of one ({', '.join(sections)}); depth-study configs run with "
            "scripts/depth_study.py, compare_*.yaml with scripts/compare.py")
    return from_dict(apply_overrides(data, overrides))


def training_sections() -> tuple[str, ...]:
    """The top-level sections of a training config (``model``, ``data``, ``training``...)."""
    return tuple(f.name for f in dataclasses.fields(Config))


def refuse_other_kind(path: str | pathlib.Path, data: Mapping[str, Any], own: Sequence[str],
                      expected: str, kinds: Mapping[str, tuple[Sequence[str], str]]) -> None:
    """Name the kind of config a file is when it is not the ``expected`` kind.

    When all of ``data``'s top-level keys are keys of one of ``kinds`` (``{"a training
    config": (its keys, the command that runs it)}``) and at least two of them, or most,
    are not ``own`` keys (most: nor close to one), raise a :class:`ConfigError` saying which
    kind it is and how to run it, rather than "unknown key" for its first key. A file of
    its own keys with one misspelled is left to the unknown-key message, and so is one
    whose keys fit several kinds (``learning_rate`` alone: which one it is, is a guess).
    """
    keys = [str(k) for k in data]
    foreign = [k for k in keys if k not in own
               and not difflib.get_close_matches(k, list(own), n=1, cutoff=0.7)]
    if not keys or (2 * len(foreign) < len(keys) and len(set(keys) - set(own)) < 2):
        return
    fits = [(what, command) for what, (their_keys, command) in kinds.items()
            if set(keys) <= set(their_keys)]
    if len(fits) == 1:
        what, command = fits[0]
        raise ConfigError(
            f"config file {str(path)!r} is {what}, not {expected}: run it with {command}")


def replace(config: Config, key: str, value: Any) -> Config:
    """A new config with the dotted ``key`` set to ``value`` (validated like an override)."""
    data = to_dict(config)
    _set_path(data, key.split("."), value, f"replace({key!r})")
    return from_dict(data)


# ----------------------------------------------------------------------------- validation


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: got {value!r}, expected {allowed}")


def _check_name(key: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ConfigError(
            f"{key}: unknown name {value!r}{_suggest(value, valid)}; "
            f"valid names: {', '.join(valid)}"
        )


def _finite(x: float) -> bool:
    try:
        return isinstance(x, (int, float)) and math.isfinite(x)
    except OverflowError:  # an int past the float range
        return False


# The range of a normal float32: a learning rate outside it becomes 0 or inf on the device.
_F32_TINY = 1.1754943508222875e-38
_F32_MAX = 3.4028234663852886e38
# Entries of one weight matrix. XLA aborts the process (no Python error) on an array whose
# byte size overflows int64; 2**40 float32 entries (4 TiB) is beyond any device already.
_MAX_MATRIX_ENTRIES = 2**40


def _validate(cfg: Config) -> None:
    # Imported here: config sits in the interface layer and the registries are lower layers.
    from jaxnn import activations, initializers, losses

    m = cfg.model
    for i, h in enumerate(m.hidden_sizes):
        _check(1 <= h < 2**31, f"model.hidden_sizes[{i}]", h, "a positive integer < 2**31")
    for i, (a, b) in enumerate(itertools.pairwise(m.hidden_sizes)):
        _check(a * b <= _MAX_MATRIX_ENTRIES, "model.hidden_sizes", list(m.hidden_sizes),
               f"at most 2**40 weights per matrix (layers {i} and {i + 1} give {a} x {b})")
    _check_name("model.hidden_activation", m.hidden_activation, activations.names())
    _check_name("model.output_activation", m.output_activation, activations.names())
    _check_name("model.initializer", m.initializer, initializers.names())
    _check(0.0 <= m.dropout_rate < 1.0, "model.dropout_rate", m.dropout_rate, "a number in [0, 1)")
    _check(
        m.batch_norm_position in ("before_activation", "after_activation"),
        "model.batch_norm_position",
        m.batch_norm_position,
        "'before_activation' or 'after_activation'",
    )
    _check(0.0 <= m.batch_norm_momentum < 1.0, "model.batch_norm_momentum",
           m.batch_norm_momentum, "a number in [0, 1)")
    _check(m.maxout_pieces >= 1, "model.maxout_pieces", m.maxout_pieces, "an integer >= 1")
    if m.hidden_activation == "maxout":  # a maxout layer has units * pieces outputs
        widest = max(m.hidden_sizes, default=1)
        _check(widest * m.maxout_pieces < 2**31, "model.maxout_pieces", m.maxout_pieces,
               f"an integer >= 1 with {widest} units * pieces < 2**31")
    # float32 on the device: past its range a weight becomes inf, and so does the loss (the
    # run "diverged" before its first update, blamed on the initialization).
    _check(_finite(m.l1) and 0 <= m.l1 <= _F32_MAX, "model.l1", m.l1,
           "a number >= 0 in the float32 range (at most 3.4e38)")
    _check(_finite(m.l2) and 0 <= m.l2 <= _F32_MAX, "model.l2", m.l2,
           "a number >= 0 in the float32 range (at most 3.4e38)")

    d = cfg.data
    from jaxnn import data as data_lib

    _check_name("data.name", d.name, data_lib.names())
    _check(d.normalization in ("none", "scale", "standardize"), "data.normalization",
           d.normalization, "'none', 'scale' or 'standardize'")
    if d.n_train is not None:
        _check(d.n_train >= 1, "data.n_train", d.n_train, "a positive integer or null")
    if d.n_test is not None:
        _check(d.n_test >= 1, "data.n_test", d.n_test, "a positive integer or null")
    _check(0.0 <= d.validation_fraction < 1.0, "data.validation_fraction",
           d.validation_fraction, "a number in [0, 1)")

    o = cfg.optimizer
    from jaxnn import optim

    _check_name("optimizer.name", o.name, optim.names())
    _check(_finite(o.learning_rate) and _F32_TINY <= o.learning_rate <= _F32_MAX,
           "optimizer.learning_rate", o.learning_rate,
           "a positive number in the float32 range [1.2e-38, 3.4e38]")
    if "learning_rate" in o.options:
        raise ConfigError(
            f"optimizer.options.learning_rate: got {o.options['learning_rate']!r}; the rate "
            "is optimizer.learning_rate, not an option (set that instead)")
    if o.clip_global_norm is not None:
        # float32 on the device: below its range the norm becomes 0 and every update 0 (a
        # run that silently never moved); above it, inf.
        _check(_finite(o.clip_global_norm) and _F32_TINY <= o.clip_global_norm <= _F32_MAX,
               "optimizer.clip_global_norm", o.clip_global_norm,
               "a positive number in the float32 range [1.2e-38, 3.4e38], or null")

    s = cfg.schedule
    _check_name("schedule.name", s.name, optim.schedules.names())
    for k, v in s.epoch_options.items():
        _check(_finite(v) and v > 0, f"schedule.epoch_options.{k}", v,
               "a finite number of epochs > 0")
    for k in ("init_value", "peak_value", "base_lr", "max_lr", "value", "end_value"):
        if k in s.options:  # learning rates: a negative one ascends the loss
            v = s.options[k]
            # float32 on the device, as optimizer.learning_rate: 1e-320 became a rate of 0
            # (a run that never moved), 1e300 inf (a "divergence" at step 2).
            _check(not isinstance(v, bool) and _finite(v)
                   and (v == 0 or _F32_TINY <= v <= _F32_MAX), f"schedule.options.{k}", v,
                   "a learning rate >= 0: 0 or in the float32 range [1.2e-38, 3.4e38]")

    t = cfg.training
    _check(t.epochs >= 1, "training.epochs", t.epochs, "an integer >= 1")
    _check(t.batch_size >= 1, "training.batch_size", t.batch_size, "an integer >= 1")
    _check(t.eval_batch_size >= 1, "training.eval_batch_size", t.eval_batch_size, "an integer >= 1")
    _check_name("training.loss", t.loss, losses.names())
    _check(_finite(t.label_smoothing) and 0.0 <= t.label_smoothing < 1.0,
           "training.label_smoothing", t.label_smoothing, "a number in [0, 1)")
    if t.label_smoothing:
        smoothable = losses.smoothable_names()
        _check(t.loss in smoothable, "training.label_smoothing", t.label_smoothing,
               f"0 with training.loss={t.loss!r} (label smoothing needs one of "
               f"{', '.join(smoothable)})")
    _check(t.grad in ("autodiff", "manual"), "training.grad", t.grad, "'autodiff' or 'manual'")
    _check(t.checkpoint_every >= 0, "training.checkpoint_every", t.checkpoint_every,
           "an integer >= 0")
    _check(t.keep_checkpoints >= 1, "training.keep_checkpoints", t.keep_checkpoints,
           "an integer >= 1")
    _check(t.devices >= 0, "training.devices", t.devices, "an integer >= 0 (0: all devices)")
    # jax.random.PRNGKey keeps 32 bits without 64-bit mode: seeds 0 and 2**32 (or -1 and
    # 2**32 - 1) would give the same run.
    _check(0 <= t.seed < 2**32, "training.seed", t.seed, "an integer in [0, 2**32 - 1]")
    es = t.early_stopping
    _check(es.mode in ("min", "max"), "training.early_stopping.mode", es.mode, "'min' or 'max'")
    _check(es.patience >= 0, "training.early_stopping.patience", es.patience, "an integer >= 0")
    _check(_finite(es.min_delta) and es.min_delta >= 0, "training.early_stopping.min_delta",
           es.min_delta, "a finite number >= 0")
    rp = t.reduce_on_plateau
    _check(rp.mode in ("min", "max"), "training.reduce_on_plateau.mode", rp.mode,
           "'min' or 'max'")
    # monitor: val_accuracy with the default mode: min stopped while the accuracy still rose
    # and restored the epoch with the worst one, without a word. (Checked also while early
    # stopping is off: its monitor and mode still choose the best epoch, best.jaxnn.)
    for section, name in ((es, "early_stopping"), (rp, "reduce_on_plateau")):
        metric = section.monitor.removeprefix("val_").removeprefix("test_")
        best = {"accuracy": ("max", "higher"), "loss": ("min", "lower")}.get(metric)
        if best is not None and section.mode != best[0]:
            raise ConfigError(
                f"training.{name}.mode: got {section.mode!r} with monitor "
                f"{section.monitor!r}, expected {best[0]!r} (a {best[1]} {metric} is better)")
    _check(0.0 < rp.factor < 1.0, "training.reduce_on_plateau.factor", rp.factor,
           "a number in (0, 1)")
    # Counted in int32 by jaxnn.optim.reduce_on_plateau.
    _check(0 <= rp.patience < 2**31, "training.reduce_on_plateau.patience", rp.patience,
           "an integer >= 0 and < 2**31")
    _check(0 <= rp.cooldown < 2**31, "training.reduce_on_plateau.cooldown", rp.cooldown,
           "an integer >= 0 and < 2**31")
    _check(_finite(rp.min_scale) and 0.0 <= rp.min_scale <= 1.0,
           "training.reduce_on_plateau.min_scale", rp.min_scale, "a number in [0, 1]")

    lg = cfg.logging
    _check(lg.print_every >= 0, "logging.print_every", lg.print_every, "an integer >= 0")

    validate_distributed(cfg.distributed)


def validate_distributed(dist: DistributedConfig, prefix: str = "distributed.") -> None:
    """Check the fields of a :class:`DistributedConfig` that are set (null: not yet known)."""
    if dist.coordinator_address is not None:
        _check(_is_host_port(dist.coordinator_address), f"{prefix}coordinator_address",
               dist.coordinator_address, "'HOST:PORT' with a port in 1..65535, or null")
    if dist.num_processes is not None:
        _check(dist.num_processes >= 1, f"{prefix}num_processes", dist.num_processes,
               "an integer >= 1 or null")
    if dist.process_id is not None:
        n = dist.num_processes
        allowed = f"an integer in [0, {n - 1}]" if n else "an integer >= 0 or null"
        _check(dist.process_id >= 0 and (n is None or dist.process_id < n),
               f"{prefix}process_id", dist.process_id, allowed)
    for i, d in enumerate(dist.local_device_ids or ()):
        _check(d >= 0, f"{prefix}local_device_ids[{i}]", d, "an integer >= 0")
    for name in ("initialization_timeout_s", "heartbeat_timeout_s"):
        v = getattr(dist, name)
        _check(v >= 1, f"{prefix}{name}", v, "an integer >= 1 (seconds)")


def _is_host_port(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit() and 1 <= int(port) <= 65535)
