"""Config loading, overrides and validation: one-line errors before any compilation."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import pytest

from jaxnn import config as C

# Training configs; the depth-study (depth_*, activation_histograms) and training-craft
# (compare_*) presets have their own loaders and are checked in their own test modules.
STUDY_PREFIXES = ("depth_", "activation_", "compare_")
CONFIGS = sorted(
    p
    for p in (pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")
    if not p.name.startswith(STUDY_PREFIXES)
)


def test_the_six_training_configs_are_shipped():
    names = {p.stem for p in CONFIGS}
    assert {"default", "xor", "spirals", "sine_regression", "mnist", "fashion_mnist"} <= names


def test_defaults_are_the_digits_job():
    cfg = C.load()
    assert cfg.data.name == "digits"
    assert cfg.training.loss == "softmax_cross_entropy_with_integer_labels"
    assert dataclasses.is_dataclass(cfg) and cfg.model.hidden_sizes == (128, 64)


def test_default_yaml_equals_embedded_defaults():
    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
    assert C.load(path) == C.load()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = C.load(path)
    # The resolved config round-trips through YAML.
    assert C.from_dict(C.to_dict(cfg)) == cfg


def test_overrides_are_parsed_to_the_field_type():
    cfg = C.load(None, [
        "optimizer.name=sgd", "optimizer.learning_rate=3e-4", "training.epochs=3",
        "model.hidden_sizes=[32, 16]", "model.batch_norm=true", "data.n_train=100",
        "optimizer.options.momentum=0.9",
    ])
    assert cfg.optimizer.name == "sgd"
    assert cfg.optimizer.learning_rate == pytest.approx(3e-4)
    assert isinstance(cfg.training.epochs, int) and cfg.training.epochs == 3
    assert cfg.model.hidden_sizes == (32, 16)
    assert cfg.model.batch_norm is True
    assert cfg.optimizer.options == {"momentum": 0.9}


def test_label_smoothing_defaults_to_off_and_reads_numbers():
    assert C.load().training.label_smoothing == 0.0
    cfg = C.load(None, ["training.label_smoothing=0.1"])
    assert cfg.training.label_smoothing == 0.1
    assert C.from_dict(C.to_dict(cfg)) == cfg
    zero = C.load(None, ["training.label_smoothing=0"]).training.label_smoothing
    assert isinstance(zero, float) and zero == 0.0
    # 0 is no smoothing, so mse keeps its default; any cross-entropy accepts a value.
    assert C.load(None, ["training.loss=mse"]).training.label_smoothing == 0.0
    for loss in ("softmax_cross_entropy", "sigmoid_binary_cross_entropy"):
        C.load(None, [f"training.loss={loss}", "training.label_smoothing=0.2"])


def test_a_monitor_and_a_mode_that_fit_are_accepted():
    for monitor, mode in [("val_accuracy", "max"), ("test_loss", "min"), ("accuracy", "max"),
                          ("grad_norm", "max"), ("learning_rate", "min")]:
        cfg = C.load(None, [f"training.early_stopping.monitor={monitor}",
                            f"training.early_stopping.mode={mode}",
                            f"training.reduce_on_plateau.monitor={monitor}",
                            f"training.reduce_on_plateau.mode={mode}"])
        assert cfg.training.early_stopping.mode == cfg.training.reduce_on_plateau.mode == mode


def test_configs_are_frozen():
    cfg = C.load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.epochs = 3  # type: ignore[misc]
    assert C.replace(cfg, "training.epochs", 3).training.epochs == 3
    assert cfg.training.epochs != 3


BAD = [
    (["trainig.epochs=3"], "unknown key 'trainig'", "training"),
    (["training.epoch=3"], "unknown key 'training.epoch'", "epochs"),
    (["model.hidden_activation=rleu"], "model.hidden_activation", "relu"),
    (["model.initializer=he_nromal"], "model.initializer", "he_normal"),
    (["optimizer.name=adamm"], "optimizer.name", "adam"),
    (["optimizer.learning_rate=-0.1"], "optimizer.learning_rate", "positive"),
    (["training.batch_size=0"], "training.batch_size", ">= 1"),
    (["training.epochs=two"], "training.epochs", "integer"),
    (["model.dropout_rate=1.5"], "model.dropout_rate", "[0, 1)"),
    (["training.grad=magic"], "training.grad", "'autodiff' or 'manual'"),
    (["data.name=cifar"], "data.name", "valid names"),
    (["model.batch_norm=maybe"], "model.batch_norm", "true or false"),
    (["training.loss=cross_entropy"], "training.loss", "softmax_cross_entropy"),
    (["schedule.name=cosine_dekay"], "schedule.name", "cosine"),
    (["novalue"], "KEY=VALUE", None),
    # jax.random.key takes int64: a bigger seed was a raw OverflowError mid-run.
    (["training.seed=99999999999999999999"], "training.seed", "2**32 - 1"),
    # Without 64-bit mode PRNGKey keeps 32 bits: 2**32 would repeat seed 0, -1 seed 2**32-1.
    (["training.seed=4294967296"], "training.seed", "[0, 2**32 - 1]"),
    (["training.seed=-1"], "training.seed", "[0, 2**32 - 1]"),
    (["schedule.name=cosine", "schedule.epoch_options={decay_steps: .nan}"],
     "schedule.epoch_options.decay_steps", "> 0"),
    (["schedule.name=cosine", "schedule.epoch_options={decay_steps: -1}"],
     "schedule.epoch_options.decay_steps", "got -1"),
    # A negative learning rate through the schedule climbs the loss.
    (["schedule.name=cosine", "schedule.options={init_value: -0.05}"],
     "schedule.options.init_value", ">= 0"),
    (["training.early_stopping.min_delta=.inf"], "training.early_stopping.min_delta", "finite"),
    (["training.reduce_on_plateau.cooldown=-1"], "training.reduce_on_plateau.cooldown", ">= 0"),
    (["training.reduce_on_plateau.min_scale=2"], "training.reduce_on_plateau.min_scale",
     "[0, 1]"),
    (["optimizer.clip_global_norm=.inf"], "optimizer.clip_global_norm", "positive"),
    (["model.hidden_sizes=[99999999999999999999999]"], "model.hidden_sizes[0]", "< 2**31"),
    # "256,128" is one YAML string: the message shows the list it was meant to be.
    (["model.hidden_sizes=256,128"], "model.hidden_sizes", "list of int such as [256, 128]"),
    # a Python tuple is a YAML string too: the hint is not "[(256, 128)]"
    (["model.hidden_sizes=(256, 128)"], "model.hidden_sizes", "list of int such as [256, 128]"),
    # Two wide hidden layers: XLA aborted the whole process (a C++ terminate, no message).
    (["model.hidden_sizes=[2000000000, 2000000000]"], "model.hidden_sizes", "2**40"),
    # A maxout layer has units * pieces outputs: this was a raw MLIR TypeError mid-run.
    (["model.hidden_activation=maxout", "model.maxout_pieces=99999999999999999999"],
     "model.maxout_pieces", "2**31"),
    # reduce_on_plateau raised a raw ValueError (traceback) for these mid-run.
    (["training.reduce_on_plateau.patience=99999999999999999999"],
     "training.reduce_on_plateau.patience", "2**31"),
    (["training.reduce_on_plateau.cooldown=99999999999999999999"],
     "training.reduce_on_plateau.cooldown", "2**31"),
    # Learning rates are float32: 1e-320 became 0 (a run that silently never moved), 1e300
    # became inf (a "divergence" at step 2).
    (["optimizer.learning_rate=1e-320"], "optimizer.learning_rate", "float32"),
    (["optimizer.learning_rate=1e300"], "optimizer.learning_rate", "float32"),
    # The rate has its own key; in options it was "get() got multiple values" mid-run.
    (["optimizer.options.learning_rate=0.1"], "optimizer.options.learning_rate",
     "optimizer.learning_rate"),
    # Label smoothing: a probability mass in [0, 1), for a cross-entropy loss only.
    (["training.label_smoothing=1.0"], "training.label_smoothing", "[0, 1)"),
    (["training.label_smoothing=-0.1"], "training.label_smoothing", "[0, 1)"),
    (["training.label_smoothing=.nan"], "training.label_smoothing", "[0, 1)"),
    (["training.label_smoothing=true"], "training.label_smoothing", "a number"),
    (["training.label_smoothing=[0.1]"], "training.label_smoothing", "a number"),
    (["training.loss=mse", "training.label_smoothing=0.1"], "training.label_smoothing",
     "training.loss='mse'"),
    # Penalty weights are float32 on the device: past its range the loss was inf at step 1,
    # a "diverged" exit 3 that blamed the initializer.
    (["model.l2=1e39"], "model.l2", "float32"),
    (["model.l1=1e300"], "model.l1", "float32"),
    # Below float32's range the clip norm became 0, every update 0: a run that never moved.
    (["optimizer.clip_global_norm=1e-320"], "optimizer.clip_global_norm", "float32"),
    (["optimizer.clip_global_norm=1e300"], "optimizer.clip_global_norm", "float32"),
    # An integer past the float range was a raw OverflowError (a traceback from train.py).
    (["optimizer.learning_rate=1" + "0" * 400], "optimizer.learning_rate", "float range"),
    (["model.dropout_rate=-1" + "0" * 400], "model.dropout_rate", "float range"),
    (["schedule.name=cosine", "schedule.options={init_value: 1" + "0" * 400 + "}"],
     "schedule.options.init_value", ">= 0"),
    # A key of another section is named with its place; close matches in the section it
    # was put in misled ('drop_remainder' for dropout_rate) or said nothing.
    (["training.learning_rate=0.1"], "unknown key 'training.learning_rate'",
     "did you mean 'optimizer.learning_rate'?"),
    (["training.dropout_rate=0.5"], "unknown key 'training.dropout_rate'",
     "did you mean 'model.dropout_rate'?"),
    (["training.patience=3"], "unknown key 'training.patience'",
     "'training.early_stopping.patience' or 'training.reduce_on_plateau.patience'"),
    # Schedule learning rates are float32 too: 1e-320 trained nothing, 1e300 "diverged".
    (["schedule.name=cosine", "schedule.options={init_value: 1e-320}"],
     "schedule.options.init_value", "float32"),
    (["schedule.name=cosine", "schedule.options={init_value: 1e300}"],
     "schedule.options.init_value", "float32"),
    # The mode must fit the monitored metric: val_accuracy with the default mode min stopped
    # while the accuracy rose and restored the worst epoch.
    (["training.early_stopping.monitor=val_accuracy"], "training.early_stopping.mode: got "
     "'min' with monitor 'val_accuracy'", "expected 'max'"),
    (["training.early_stopping.monitor=loss", "training.early_stopping.mode=max"],
     "training.early_stopping.mode: got 'max'", "expected 'min'"),
    (["training.reduce_on_plateau.monitor=test_accuracy"], "training.reduce_on_plateau.mode",
     "expected 'max'"),
    # YAML 1.1 read these as base-60 numbers (90 epochs, a 90.5 learning rate).
    (["training.epochs=1:30"], "training.epochs: got '1:30'", "integer"),
    (["optimizer.learning_rate=1:30.5"], "optimizer.learning_rate: got '1:30.5'", "number"),
]


@pytest.mark.parametrize("overrides,where,hint", BAD, ids=[b[0][0][:50] for b in BAD])
def test_bad_values_give_one_line_naming_key_and_value(overrides, where, hint):
    with pytest.raises(C.ConfigError) as info:
        C.load(None, overrides)
    msg = str(info.value)
    assert "\n" not in msg
    assert where in msg
    if hint is not None:
        assert hint in msg


def test_bad_files(tmp_path):
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochs: [1,\n")
    with pytest.raises(C.ConfigError, match="not valid YAML at line"):
        C.load(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(C.ConfigError, match="mapping"):
        C.load(scalar)


def test_unreadable_and_empty_config_files_are_named(tmp_path):
    # A folder and a non-UTF-8 file said only "cannot be read: IsADirectoryError" (or
    # UnicodeDecodeError); a file named as a folder was a raw "[Errno 20] Not a directory".
    folder = tmp_path / "configs"
    folder.mkdir()
    binary = tmp_path / "params.yaml"
    binary.write_bytes(b"training:\n  epochs: 2\n# \xff\xfe\n")
    for path, needle in [(folder, "is a directory; give a YAML file"),
                         (binary, "is not UTF-8 text (byte 0xff on line 3)"),
                         (binary / "x.yaml", "cannot be read: Not a directory")]:
        with pytest.raises(C.ConfigError) as info:
            C.load(path)
        assert str(info.value).startswith(f"config file {str(path)!r} ")
        assert needle in str(info.value) and "\n" not in str(info.value)
    # An empty or all-comment file trained the default digits job without a word.
    for text in ("", "# model:\n#   hidden_sizes: [8]\n", "{}\n"):
        empty = tmp_path / "empty.yaml"
        empty.write_text(text)
        with pytest.raises(C.ConfigError, match=r"empty\.yaml' holds no settings"):
            C.load(empty, ["training.epochs=1"])
    assert C.load(None) == C.Config()  # no file at all is still the defaults


def test_config_files_are_read_as_utf8_whatever_the_locale(tmp_path):
    # Read in the locale's encoding, a UTF-8 config failed under an ASCII locale (LANG=C
    # without Python's UTF-8 mode) at the first non-ASCII byte, even in a comment.
    import subprocess
    import sys

    path = tmp_path / "c.yaml"
    path.write_text("# 2 \u00d7 8 units\ndata:\n  data_dir: /data/donn\u00e9es\n",
                    encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
           "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": "utf-8"}
    code = ("import locale, sys; from jaxnn import config\n"
            "assert locale.getpreferredencoding(False).lower() != 'utf-8'\n"
            "print(config.read_yaml(sys.argv[1])['data']['data_dir'])\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, encoding="utf-8", env=env, timeout=120,
                          cwd=pathlib.Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "/data/donn\u00e9es\n"


def test_integers_are_read_as_decimal_not_octal(tmp_path):
    # YAML 1.1 reads a leading 0 as octal: batch_size 016 trained with 14, seed 0123 was
    # 83 (while 019 was 19), silently. YAML 1.2 reads decimal digits as decimal.
    cfg = C.load(None, ["training.batch_size=016", "training.seed=0123",
                        "model.hidden_sizes=[010, 08]", "data.options.x=-0017"])
    assert cfg.training.batch_size == 16 and cfg.training.seed == 123
    assert cfg.model.hidden_sizes == (10, 8) and cfg.data.options == {"x": -17}
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 012\n  seed: 1_000\n"
                    "data:\n  data_dir: '019'\n"
                    "  options: {a: 0x1F, b: 0b101, c: -.5, d: .5e1, e: '012', f: '1:30'}\n")
    cfg = C.load(path)
    assert cfg.training.epochs == 12 and cfg.training.seed == 1000
    assert cfg.data.data_dir == "019"
    assert cfg.data.options == {"a": 31, "b": 5, "c": -0.5, "d": 5.0, "e": "012", "f": "1:30"}
    # Quoted text stays text through a dump (config.yaml, read again by --resume), for
    # this reader and for PyYAML's.
    C.dump(cfg, tmp_path / "d.yaml")
    assert C.load(tmp_path / "d.yaml") == cfg
    import yaml
    assert yaml.safe_load((tmp_path / "d.yaml").read_text())["data"] == C.to_dict(cfg)["data"]


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    # Plain YAML keeps the last value: this file would have trained for 5 epochs.
    dup = tmp_path / "dup.yaml"
    dup.write_text("training:\n  epochs: 3\n  batch_size: 32\n  epochs: 5\n")
    with pytest.raises(C.ConfigError) as info:
        C.load(dup)
    msg = str(info.value)
    assert "\n" not in msg
    assert "duplicate key 'epochs'" in msg
    assert "line 4" in msg and "first given at line 2" in msg
    # Two sections of the same name are refused too.
    dup.write_text("training:\n  epochs: 3\ntraining:\n  epochs: 5\n")
    with pytest.raises(C.ConfigError, match="duplicate key 'training'"):
        C.load(dup)
    # The same key in two different mappings is fine, and a merge key may be overridden.
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        "base: &b {epochs: 2, batch_size: 8}\n"
        "training:\n  <<: *b\n  epochs: 4\n"
    )
    assert C.read_yaml(ok)["training"] == {"epochs": 4, "batch_size": 8}
    # ... and inside a --set mapping (it was kept as text: a confusing type error followed)
    with pytest.raises(C.ConfigError, match=r"--set 'optimizer.options=\{eps: 1, eps: 2\}': "
                                            r"duplicate key 'eps'"):
        C.load(None, ["optimizer.options={eps: 1, eps: 2}"])


def test_dump_and_load_round_trip(tmp_path):
    cfg = C.load(None, ["model.hidden_sizes=[7]", "schedule.name=cosine_decay_schedule"])
    C.dump(cfg, tmp_path / "c.yaml")
    assert C.load(tmp_path / "c.yaml") == cfg


def test_replace_names_a_bad_key_like_an_override():
    cfg = C.load(None)
    assert C.replace(cfg, "training.epochs", 3).training.epochs == 3
    # A misspelled section used to raise a bare KeyError, a key under a value a TypeError.
    with pytest.raises(C.ConfigError, match=r"unknown key 'trainin'.*did you mean 'training'"):
        C.replace(cfg, "trainin.epochs", 3)
    with pytest.raises(C.ConfigError, match=r"unknown key 'training\.epoch'.*'epochs'"):
        C.replace(cfg, "training.epoch", 3)
    with pytest.raises(C.ConfigError, match=r"training\.epochs is a value"):
        C.replace(cfg, "training.epochs.x", 3)


def test_an_empty_section_means_its_defaults(tmp_path):
    # "training:" with every key below it commented out is null in YAML: the section's
    # defaults, as for a missing section (it was "expected a mapping"), also nested.
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  # epochs: 3\n  early_stopping:\nmodel:\n"
                    "  hidden_sizes: [8]\n")
    cfg = C.load(path)
    assert cfg.training == C.TrainingConfig() and cfg.model.hidden_sizes == (8,)
    with pytest.raises(C.ConfigError, match="training: got 3, expected a mapping"):
        C.load(None, ["training=3"])


def test_an_override_under_a_section_the_file_gives_as_a_value_names_that_value(tmp_path):
    # The file's "training: [1, 2]" was reported as "--set 'training.epochs=1': training is
    # a value", as if the override were wrong; the file's value is now shown.
    path = tmp_path / "c.yaml"
    path.write_text("training: [1, 2]\n")
    with pytest.raises(C.ConfigError,
                       match=r"^--set 'training.epochs=1': training is a value \(\[1, 2\]\), "
                             r"not a mapping"):
        C.load(path, ["training.epochs=1"])


def test_exponent_floats_without_a_dot_are_numbers_in_files_and_overrides(tmp_path):
    # YAML 1.1 reads 1e-8 (no dot) as a string: typed fields coped, but free-form options
    # did not, so "eps: 1e-8" for Adam failed mid-run with "eps must be a real number,
    # got '1e-8' of type str".
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  options: {eps: 1e-8, b1: 9E-1}\n"
                    "schedule:\n  name: cosine_decay\n  options: {alpha: 1e-2, decay_steps: 1e2}\n")
    cfg = C.load(path, ["data.options.noise=2e-1", "training.epochs=1e1"])
    assert cfg.optimizer.options == {"eps": 1e-8, "b1": 0.9}
    assert cfg.schedule.options == {"alpha": 0.01, "decay_steps": 100.0}
    assert cfg.data.options == {"noise": 0.2}
    assert cfg.training.epochs == 10
    # Quoted, it stays a string; words, versions and dates are untouched.
    assert C.load(None, ["data.options.tag='1e-8'"]).data.options == {"tag": "1e-8"}
    assert C.load(None, ["data.options.tag=e5"]).data.options == {"tag": "e5"}
    assert C.read_yaml(path) == C.read_yaml(path)  # a fresh loader each time
    import yaml
    assert yaml.safe_load("x: 1e-8") == {"x": "1e-8"}  # PyYAML's own loader is unchanged


@pytest.mark.parametrize("name, script", [
    ("depth_smoke", "depth_study.py"), ("compare_surface", "compare.py"),
    ("activation_histograms", "depth_study.py"),
    # these have a 'data' section, which hid them ("unknown key 'seed'")
    *[(f"compare_{n}", "compare.py") for n in ("optimizers", "batch_size", "schedules",
                                                "overfitting", "init", "batchnorm_scales",
                                                "search")]])
def test_a_config_of_another_kind_is_named_as_such(name, script):
    # train.py / gradcheck.py given a depth-study or compare.py config said only
    # "unknown key 'surfaces'" (or 'name'), as if a training config held a typo.
    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    with pytest.raises(C.ConfigError) as info:
        C.load(path)
    message = str(info.value)
    assert "is not a training config" in message and str(path) in message
    assert script in message and "\n" not in message



def test_a_file_with_only_a_misspelled_section_gets_the_key_message(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("trainnig:\n  epochs: 3\n")
    with pytest.raises(C.ConfigError, match="unknown key 'trainnig' .*did you mean 'training'"):
        C.load(path)
    # one stray key beside the sections is a typo too, not another kind of config
    path.write_text("data: {name: xor}\nseed: 3\n")
    with pytest.raises(C.ConfigError, match="unknown key 'seed'"):
        C.load(path)
    # ... and one that belongs in a section is named with its place
    path.write_text("model:\n  hidden_sizes: [8]\nepochs: 3\n")
    with pytest.raises(C.ConfigError, match=r"^unknown key 'epochs' \(did you mean "
                                            r"'training.epochs'\?\)"):
        C.load(path)


def test_a_section_set_as_a_mapping_keeps_the_files_other_keys_and_null_is_refused():
    # --set model={dropout_rate: 0.1} replaced the whole section: xor's hidden_sizes [8] and
    # tanh silently became the defaults [128, 64] and relu; --set model=null reset them all.
    xor = pathlib.Path(__file__).resolve().parents[1] / "configs" / "xor.yaml"
    base = C.load(xor)
    merged = C.load(xor, ["model={dropout_rate: 0.1}"])
    assert merged.model == dataclasses.replace(base.model, dropout_rate=0.1)
    assert merged.model == C.load(xor, ["model.dropout_rate=0.1"]).model
    # nested sections merge too, and each key is checked as a --set of its own
    nested = C.load(xor, ["training={early_stopping: {patience: 3}, epochs: 7}"])
    assert nested.training.epochs == 7 and nested.training.early_stopping.patience == 3
    assert nested.training.batch_size == base.training.batch_size
    assert (nested.training.early_stopping.enabled
            == base.training.early_stopping.enabled)
    with pytest.raises(C.ConfigError, match=r"unknown key 'model.dropout'.*dropout_rate"):
        C.load(xor, ["model={dropout: 0.1}"])
    # a free mapping is replaced: another data set's options must not keep the old ones
    swapped = C.load(xor, ["data.name=spirals", "data.options={n_samples: 300}"])
    assert swapped.data.options == {"n_samples": 300}
    for section in ("model", "training", "training.early_stopping"):
        with pytest.raises(C.ConfigError, match=rf"{section} is a section; null would reset"):
            C.load(xor, [f"{section}=null"])
