"""Tests of the training-craft experiments (jaxnn.studies.craft, scripts/compare.py).

Each experiment runs at a small size and the test asserts the outcome it exists to show.
"""

from __future__ import annotations

import copy
import pathlib
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import mlp, optim
from jaxnn.studies import craft
from jaxnn.studies.craft_common import ConfigError, increase_fraction, merge_config
from jaxnn.studies.craft_engine import init_stacked

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cfg(name: str, **over):
    cfg = copy.deepcopy(craft.EXPERIMENTS[name][0])
    cfg["data"] = {"name": "digits", "data_dir": "", "n_train": 0, "n_test": 0} \
        if "data" in cfg else None
    if cfg["data"] is None:
        del cfg["data"]
    cfg.update(over)
    return cfg


# ----------------------------------------------------------------------------- surface


@pytest.fixture(scope="module")
def surface(tmp_path_factory):
    out = tmp_path_factory.mktemp("surface")
    return craft.run_surface(craft.SURFACE_DEFAULTS, out), out


def test_surface_sgd_zigzags_on_the_bowl(surface):
    res, _ = surface
    lengths, revs = res.path_length["bowl"], res.reversals["bowl"]
    assert revs["SGD"] >= 25  # flips across the valley at (almost) every update
    for name in ("Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"):
        assert lengths["SGD"] > 2 * lengths[name]
        assert revs["SGD"] > revs[name]
    # Everyone gets much closer than the start (distance ~7.3) in 30 updates.
    assert all(d < 1.0 for d in res.distance["bowl"].values())
    assert res.trajectories["bowl"]["SGD"].shape == (31, 2)


@pytest.mark.parametrize("surface_name", ["saddle", "rosenbrock"])
def test_surface_sgd_ends_farther_than_adam_and_momentum(surface, surface_name):
    d = surface[0].distance[surface_name]
    assert d["SGD"] > d["Adam"]
    assert d["SGD"] > d["Momentum"]


def test_surface_writes_figure_and_summary(surface):
    res, out = surface
    assert (out / "surface.png").stat().st_size > 10_000
    text = (out / "summary.md").read_text()
    assert "| bowl | SGD | sgd |" in text and "distance" in text


def test_optimize_surface_matches_hand_written_sgd():
    path = craft.optimize_surface(lambda p: p[0] ** 2 / 20 + p[1] ** 2, [-7.0, 2.0],
                                  optim.sgd(0.95), 3)
    assert path.dtype == jnp.float32 and path.shape == (4, 2)
    p = np.array([-7.0, 2.0])
    for t in range(3):
        p = p - 0.95 * np.array([p[0] / 10, 2 * p[1]])
        np.testing.assert_allclose(path[t + 1], p, rtol=1e-5)
    with pytest.raises(ValueError, match="steps"):
        craft.optimize_surface(lambda p: p @ p, [0.0, 0.0], optim.sgd(0.1), -1)


# ----------------------------------------------------------------------------- config, CLI


def test_merge_config_overrides_and_errors(tmp_path):
    cfg = merge_config(craft.SCHEDULES_DEFAULTS, None, ["epochs=3", "peak_lr=1e-1",
                                                        "schedules=[constant]"])
    assert cfg["epochs"] == 3 and cfg["peak_lr"] == 0.1 and cfg["schedules"] == ["constant"]
    assert craft.SCHEDULES_DEFAULTS["epochs"] != 3  # defaults untouched
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        merge_config(craft.SCHEDULES_DEFAULTS, None, ["epoch=3"])
    with pytest.raises(ConfigError, match="expected an integer"):
        merge_config(craft.SCHEDULES_DEFAULTS, None, ["epochs=2.5"])
    (tmp_path / "c.yaml").write_text("surfaces:\n  bowl:\n    steps: 5\n")
    cfg = merge_config(craft.SURFACE_DEFAULTS, tmp_path / "c.yaml")
    assert cfg["surfaces"]["bowl"]["steps"] == 5
    assert cfg["surfaces"]["bowl"]["optimizers"]["SGD"]["learning_rate"] == 0.95
    # New rows in a table are allowed; kwargs mappings are open.
    cfg = merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                       ["optimizers.Nadam={optimizer: nadam, learning_rate: 0.001}",
                        "optimizers.SGD.kwargs.momentum=0.5"])
    assert cfg["optimizers"]["Nadam"]["optimizer"] == "nadam"
    assert cfg["optimizers"]["SGD"]["kwargs"] == {"momentum": 0.5}
    # A kwargs mapping stays open once it holds a key; a row added key by key stays open;
    # 1e-3 (YAML 1.1 reads it as a string without a dot) is a number there too.
    cfg = merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                       ["optimizers.AdamW.kwargs.b1=0.8",
                        "optimizers.SGD.kwargs.momentum=9e-1",
                        "optimizers.SGD.kwargs.nesterov=true",
                        "optimizers.X.optimizer=sgd", "optimizers.X.learning_rate=1e-3"])
    assert cfg["optimizers"]["AdamW"]["kwargs"]["b1"] == 0.8
    assert cfg["optimizers"]["AdamW"]["kwargs"]["weight_decay"] == \
        craft.OPTIMIZERS_DEFAULTS["optimizers"]["AdamW"]["kwargs"]["weight_decay"]
    assert cfg["optimizers"]["SGD"]["kwargs"] == {"momentum": 0.9, "nesterov": True}
    assert cfg["optimizers"]["X"] == {"optimizer": "sgd", "learning_rate": 0.001}
    # Rows of the defaults stay closed: a typo is still caught.
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        merge_config(craft.OPTIMIZERS_DEFAULTS, None, ["optimizers.AdamW.learnig_rate=0.1"])


def test_set_reaches_a_row_whose_name_holds_a_dot_by_quoting_it():
    # The init study's default row "std 0.01" could not be changed with --set: the key was
    # split at every dot (inits / std 0 / 01 ...), which added a row "std 0" or failed
    # with "inits.std 0: got ...".
    quoted = 'inits."std 0.01".kwargs.stddev=0.02'
    assert merge_config(craft.INIT_DEFAULTS, None, [quoted])["inits"]["std 0.01"] == {
        "initializer": "normal", "kwargs": {"stddev": 0.02}}
    single = merge_config(craft.INIT_DEFAULTS, None, ["inits.'std 0.01'=null"])
    assert "std 0.01" not in single["inits"] and len(single["inits"]) == 2
    with pytest.raises(ConfigError, match=re.escape(
            "'std 0.01' holds a dot, so quote it: --set "
            "'inits.\"std 0.01\".kwargs.stddev=0.02'")):
        merge_config(craft.INIT_DEFAULTS, None, ["inits.std 0.01.kwargs.stddev=0.02"])
    for bad in ['inits."std 0.01"x.kwargs=1', 'inits."std 0.01=1', "a..b=1"]:
        with pytest.raises(ConfigError, match="--set"):
            merge_config(craft.INIT_DEFAULTS, None, [bad])


def test_set_reads_numbers_with_an_exponent_as_the_config_file_does(tmp_path):
    # --set used the plain YAML 1.1 reader, for which 1e1 (no dot) is the string '1e1':
    # integer keys refused it ("expected an integer, got '1e1'") although the same value
    # in a config file (jaxnn.config.read_yaml) is read as a number.
    sets = ["epochs=1e1", "hidden=[1e2, 5E1]", "base_lr=+2e-2", "peak_lr=1e-1"]
    cfg = merge_config(craft.SCHEDULES_DEFAULTS, None, sets)
    assert cfg["epochs"] == 10 and cfg["hidden"] == [100, 50]
    assert cfg["base_lr"] == 0.02 and cfg["peak_lr"] == 0.1
    (tmp_path / "c.yaml").write_text("".join(s.replace("=", ": ") + "\n" for s in sets))
    assert merge_config(craft.SCHEDULES_DEFAULTS, tmp_path / "c.yaml") == cfg
    cfg = merge_config(craft.BATCH_SIZE_DEFAULTS, None, ["batch_sizes=[0, 1e0, 3.2e1]"])
    assert cfg["batch_sizes"] == [0, 1, 32]
    # Free-form mappings get numbers too, and a duplicate key is refused as in a file.
    cfg = merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                       ["optimizers.X={optimizer: sgd, learning_rate: 1e-3, "
                        "kwargs: {momentum: 9e-1}}"])
    assert cfg["optimizers"]["X"] == {"optimizer": "sgd", "learning_rate": 0.001,
                                      "kwargs": {"momentum": 0.9}}
    with pytest.raises(ConfigError, match="duplicate key 'momentum'"):
        merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                     ["optimizers.SGD.kwargs={momentum: 0.9, momentum: 0.5}"])


@pytest.mark.parametrize("args, message", [
    (["surface", "--set", "surfaces.bowl.steps=x"], "expected an integer"),
    (["surface", "--set", "surfaces.bowl.optimizers.SGD.optimizer=sgdd"], "unknown optimizer"),
    (["schedules", "--set", "schedules=[linear]"], "schedules"),
    (["init", "--config", "/nonexistent/c.yaml"], "does not exist"),
    (["overfitting", "--set", "dropout=1.5"], "dropout"),
    # null for a section or table (a raw TypeError/AttributeError before)
    (["surface", "--set", "surfaces.bowl.optimizers=null"],
     "surfaces.bowl.optimizers: expected a mapping, got null"),  # (a row set to null is dropped)
    (["schedules", "--set", "data=null"], "data: expected a mapping"),
    # the top level is no table: null there is no row removal (a KeyError traceback)
    (["surface", "--set", "surfaces=null"], "surfaces: expected a mapping, got null"),
    # an unknown optimizer found before training, not while tracing it
    (["overfitting", "--set", "optimizer=nosuch", "--set", "epochs=1",
      "--set", "average_last=1"], "unknown optimizer"),
    # a warm-up schedule over a run of one update
    (["schedules", "--set", "epochs=1", "--set", "batch_size=100000",
      "--set", "schedules=[warmup_cosine]"], "warmup_cosine over 1 updates"),
    (["schedules", "--set", "divergence_factor=0.5"], "divergence_factor"),
    (["schedules", "--set", "schedules=[step, step]"], "distinct"),
    (["schedules", "--set", "seeds=0"], "seeds"),
    # two entries giving the same run label (the second overwrote the first)
    (["batch_size", "--set", "n_train=100", "--set", "epochs=1", "--set",
      "batch_sizes=[0, 5000]"],
     "batch_sizes: entries 0, 5000 both give the run label 'full batch'; allowed: sizes "
     "giving distinct runs (0 and every size >= 100"),
    (["batch_size", "--set", "n_train=100", "--set", "epochs=1", "--set",
      "batch_sizes=[32, 1, 32]"], "entries 32, 32 both give the run label 'batch 32'"),
    (["batch_size", "--set", "n_train=100", "--set", "epochs=1", "--set",
      "batch_sizes=[200, 100, 0]"], "entries 200, 100, 0 all give the run label 'full batch'"),
    # a YAML bool is not a number (bool is an int in Python: true read as 1.0)
    (["optimizers", "--set", "epochs=1", "--set", "seeds=1", "--set",
      "optimizers.X={optimizer: sgd, learning_rate: true}"],
     "optimizers.X.learning_rate: got True; allowed: a number > 0"),
    (["optimizers", "--set", "epochs=1", "--set", "seeds=1", "--set",
      "optimizers.X.optimizer=sgd", "--set", "optimizers.X.learning_rate=false"],
     "optimizers.X.learning_rate: got False"),
    (["optimizers", "--set", "epochs=1", "--set", "seeds=1", "--set",
      "optimizers.X={optimizer: sgd, learning_rate: 0.1, lr: 0.2}"],
     "allowed: keys optimizer, learning_rate, kwargs"),
    # kwargs of a row the user added must be a mapping (it was a raw TypeError/AttributeError)
    (["optimizers", "--set", "epochs=1", "--set", "seeds=1", "--set",
      "optimizers.X={optimizer: sgd, learning_rate: 0.1, kwargs: 5}"],
     "optimizers.X.kwargs: got 5; allowed: a mapping of keyword arguments"),
    (["init", "--set", "steps=1", "--set", "inits.X={initializer: he_normal, kwargs: [1]}"],
     "inits.X.kwargs: got [1]; allowed: a mapping of keyword arguments"),
    # the same on a surface, and an initializer that is not a name (both said only
    # "'int' object is not iterable")
    (["surface", "--set", "surfaces.bowl.steps=1", "--set",
      "surfaces.bowl.optimizers.X={optimizer: sgd, learning_rate: 0.1, kwargs: 5}"],
     "surfaces.bowl.optimizers.X.kwargs: got 5; allowed: a mapping of keyword arguments"),
    (["init", "--set", "steps=1", "--set", "inits.X={initializer: 5}"],
     "inits.X.initializer: got 5; allowed: an initializer name"),
    (["schedules", "--set", "base_lr=true"], "base_lr: expected a number, got True"),
    (["schedules", "--set", "epochs=true"], "epochs: expected an integer, got True"),
    (["schedules", "--set", "hidden=[100, true]"], "hidden[1]: expected an integer, got True"),
    # inf and nan for an integer key (int() raised OverflowError / ValueError)
    (["schedules", "--set", "epochs=.inf"], "epochs: expected an integer, got inf"),
    (["schedules", "--set", "epochs=.nan"], "epochs: expected an integer, got nan"),
    # argparse's own errors, as one line too
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["surface", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    code = craft.main([*args, "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_duplicate_table_names_after_resolution_are_one_line_errors(tmp_path, capsys):
    # YAML reads the key 1 as an int, ``--set optimizers.1...`` as the string '1': two rows
    # that the summary, the legend and ``final`` would all call "1".
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optimizers:\n  1: {optimizer: sgd, learning_rate: 0.01}\n")
    code = craft.main(["optimizers", "--config", str(cfg), "--set", "epochs=1",
                       "--set", "seeds=1", "--set",
                       "optimizers.1={optimizer: adam, learning_rate: 0.001}",
                       "--workdir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err == ("error: optimizers: entries 1, '1' both give the run label '1'; "
                   "allowed: distinct names\n")


def test_a_table_row_set_to_null_is_dropped(tmp_path, capsys):
    # Rows could only be added or changed: a comparison of two optimizers ran all six.
    cfg = merge_config(craft.OPTIMIZERS_DEFAULTS, None,
                       [f"optimizers.{k}=null" for k in ("SGD", "Momentum", "Nesterov",
                                                         "AdaGrad", "RMSProp")])
    assert list(cfg["optimizers"]) == ["Adam", "AdamW"]
    (tmp_path / "c.yaml").write_text("surfaces:\n  saddle: null\n  bowl:\n"
                                     "    optimizers: {Adam: null, AdaGrad: null}\n")
    cfg = merge_config(craft.SURFACE_DEFAULTS, tmp_path / "c.yaml")
    assert list(cfg["surfaces"]) == ["bowl", "rosenbrock"]
    assert "Adam" not in cfg["surfaces"]["bowl"]["optimizers"]
    assert len(cfg["surfaces"]["bowl"]["optimizers"]) == 4
    assert len(cfg["surfaces"]["rosenbrock"]["optimizers"]) == 6
    # the run draws exactly the rows left
    out = tmp_path / "out"
    assert craft.main(["surface", "--set", "surfaces.saddle=null", "--set",
                       "surfaces.rosenbrock=null", "--set", "surfaces.bowl.optimizers.SGD=null",
                       "--workdir", str(out)]) == 0
    capsys.readouterr()
    summary = (out / "summary.md").read_text()
    assert "rosenbrock" not in summary.lower() and "saddle" not in summary.lower()
    assert "| SGD |" not in summary and "| Adam |" in summary
    # a null for a row that does not exist, and a table left empty, are errors
    with pytest.raises(ConfigError, match=r"optimizers\.Adma: null removes a row, but there "
                                          r"is no row 'Adma' \(did you mean 'Adam'\?\)"):
        merge_config(craft.OPTIMIZERS_DEFAULTS, None, ["optimizers.Adma=null"])
    empty = [f"surfaces.bowl.optimizers.{k}=null" for k in
             craft.SURFACE_DEFAULTS["surfaces"]["bowl"]["optimizers"]]
    args = ["surface", "--workdir", str(tmp_path / "o2")]
    for item in empty:
        args += ["--set", item]
    assert craft.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: surfaces.bowl.optimizers: got {}") and err.count("\n") == 1


@pytest.mark.parametrize("name, over, message", [
    ("batch_size", {"batch_sizes": [0, True]}, "batch_sizes: got [0, True]"),
    ("batch_size", {"learning_rate": True}, "learning_rate: got True"),
    ("schedules", {"hidden": [100, True]}, "hidden: got [100, True]"),
    ("schedules", {"epochs": True}, "epochs: got True"),
    ("search", {"lr_range": [1e-6, True]}, "lr_range: got [1e-06, True]"),
    ("optimizers", {"optimizers": {"X": {"optimizer": "sgd", "learning_rate": True}}},
     "optimizers.X.learning_rate: got True"),
    ("init", {"learning_rate": np.bool_(True)}, "learning_rate: got"),
])
def test_bools_are_not_numbers_in_direct_calls(name, over, message):
    # run_* called with a config that did not go through merge_config.
    over = {"epochs": 1, "n_train": 50, **over} if name == "batch_size" else over
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        craft.run_experiment(name, _cfg(name, **over))


@pytest.mark.parametrize("name, over", [
    ("batch_size", {"epochs": 1, "batch_sizes": [0]}),
    ("batchnorm_scales", {"epochs": 1, "scales": 2}),
])
def test_more_training_rows_than_the_data_set_has_are_refused(name, over):
    # batch_size and batchnorm_scales trained silently on the 1438 rows digits has when
    # asked for 5000 (overfitting and search refused); each names the rows there are.
    with pytest.raises(ConfigError, match=r"^n_train: got 5000; allowed: at most the "
                       r"1438 training rows of digits"):
        craft.run_experiment(name, _cfg(name, n_train=5000, **over))


@pytest.mark.parametrize("section, message", [
    ({"name": "digits", "n_train": True}, "data.n_train: got True"),
    ({"name": "digits", "n_test": 2.5}, "data.n_test: got 2.5"),
])
def test_load_data_rejects_bool_and_float_row_counts(section, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        craft.load_data(section, jax.random.key(0))


def test_surface_start_and_steps_reject_bools():
    cfg = copy.deepcopy(craft.SURFACE_DEFAULTS)
    cfg["surfaces"] = {"bowl": {**cfg["surfaces"]["bowl"], "start": [True, 2.0]}}
    with pytest.raises(ConfigError, match=re.escape("surfaces.bowl.start: got [True, 2.0]")):
        craft.run_surface(cfg)
    cfg["surfaces"]["bowl"].update(start=[-7.0, 2.0], steps=True)
    with pytest.raises(ConfigError, match=re.escape("surfaces.bowl.steps: got True")):
        craft.run_surface(cfg)


def test_cli_unusable_workdir_fails_before_training(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert craft.main(["surface", "--workdir", str(blocked)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --workdir") and err.count("\n") == 1


@pytest.mark.parametrize("args", [
    ["surface", "--set", "surfaces.bowl.steps=-5"],  # a run-time check of the experiment
    ["schedules", "--set", "seeds=0"],
    ["init", "--set", "data.name=nosuch"],  # while loading the data
    ["surface", "--set", "nosuch=1"],  # while merging the config
])
def test_cli_bad_input_leaves_no_new_workdir_behind(args, tmp_path, capsys):
    # The workdir was created before the experiment's own checks ran: a run that failed on
    # bad input left an empty folder (and its parents) behind.
    new = tmp_path / "new" / "out"
    assert craft.main([*args, "--workdir", str(new)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "new").exists()
    # An existing directory is the user's: it stays, with what it holds.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    assert craft.main([*args, "--workdir", str(mine)]) == 2
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"]


def test_cli_workdir_that_cannot_be_created_fails_before_training(tmp_path, capsys,
                                                                  monkeypatch):
    # Not created before the run any more: a read-only parent must still fail first.
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: p != tmp_path and real(p, mode))
    assert craft.main(["surface", "--workdir", str(tmp_path / "a" / "b")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --workdir {str(tmp_path / 'a' / 'b')!r} cannot be created "
                   f"({str(tmp_path)!r} is not writable); choose another --workdir\n")


def test_outputs_are_written_atomically(tmp_path, monkeypatch):
    # A crash while the new summary is written leaves the old one whole, and no temp files.
    from jaxnn.studies import craft_common

    craft_common.write_summary(tmp_path, "Old", "old body")
    monkeypatch.setattr(pathlib.Path, "write_text",
                        lambda self, text, **kw: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        craft_common.write_summary(tmp_path, "New", "new body")
    monkeypatch.undo()
    assert (tmp_path / "summary.md").read_text() == "# Old\n\nold body\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]


def test_script_runs_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), "surface",
         "--config", str(ROOT / "configs" / "compare_surface.yaml"),
         "--set", "surfaces.bowl.steps=5", "--set", "surfaces.rosenbrock.steps=5",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "surface.png").exists() and (tmp_path / "summary.md").exists()


@pytest.mark.parametrize("name", list(craft.EXPERIMENTS))
def test_each_experiment_has_a_config_matching_its_defaults(name):
    path = ROOT / "configs" / f"compare_{name}.yaml"
    assert craft.load_config(name, path) == craft.load_config(name)


@pytest.mark.parametrize("name", list(craft.EXPERIMENTS))
def test_another_kind_of_config_is_named_with_the_command_that_runs_it(name):
    """Another experiment's, a training or a depth-study config given to compare.py said
    only "unknown key 'surfaces'" (or 'model', 'depths', ...)."""
    others = [o for o in craft.EXPERIMENTS if o != name]
    for other in others:
        path = ROOT / "configs" / f"compare_{other}.yaml"
        own = set(craft.EXPERIMENTS[name][0])
        theirs = set(craft.load_config(other, path))
        if len(theirs - own) < 2 and 2 * len(theirs - own) < len(theirs):
            continue  # close enough to this one's keys: the unknown-key message names it
        with pytest.raises(ConfigError) as e:
            craft.load_config(name, path)
        assert str(e.value) == (
            f"config file {str(path)!r} is a config of the {other} experiment, not a config "
            f"of the {name} experiment: run it with scripts/compare.py {other} --config {path}")
    for kind, file, script in (("a training config", "default.yaml", "train.py"),
                               ("a training config", "xor.yaml", "train.py"),
                               ("a depth-study config", "depth_study.yaml", "depth_study.py")):
        path = ROOT / "configs" / file
        with pytest.raises(ConfigError, match=re.escape(
                f"is {kind}, not a config of the {name} experiment: run it with "
                f"scripts/{script} --config {path}")):
            craft.load_config(name, path)


def test_a_misspelled_key_still_gets_the_unknown_key_message(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("seeds: 2\nepochs: 3\nbatch_sise: 32\n")
    with pytest.raises(ConfigError, match=r"unknown key 'batch_sise' \(did you mean "
                                          r"'batch_size'\?\)"):
        craft.load_config("optimizers", path)


# ----------------------------------------------------------------------------- engine


def test_vmapped_seeds_match_single_runs(digits_xy):
    x, y = digits_xy
    x, y = x[:256], y[:256]
    cfg = mlp.MLPConfig(layer_sizes=(64, 32, 10))
    run = craft.make_run(cfg, lambda _: optim.adam(1e-3), batch_size=64, epochs=2, x=x, y=y,
                         eval_sets={"train": (x, y)})
    keys = jax.random.split(jax.random.key(3), 2)
    params, state = init_stacked([cfg, cfg], keys)
    _, batched = jax.jit(jax.vmap(run))(params, state, keys, None)
    p1, s1 = mlp.init(cfg, keys[1])
    _, single = jax.jit(run)(p1, s1, keys[1], None)
    assert batched["loss"].shape == (2, 2, 4)
    assert batched["loss"].dtype == jnp.float32
    np.testing.assert_allclose(batched["loss"][1], single["loss"], rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(batched["train_accuracy"][1], single["train_accuracy"],
                               atol=1e-6)


@pytest.mark.parametrize("drop_remainder, updates", [(True, 1), (False, 2)])
def test_make_run_keeps_the_remainder_as_one_smaller_batch(digits_xy, drop_remainder, updates):
    # 10 rows in batches of 6 with frozen params: the epoch's batch losses, weighted by
    # their sizes, add up to the loss over all rows only if every row was used once.
    x, y = digits_xy[0][:10], digits_xy[1][:10]
    cfg = mlp.MLPConfig(layer_sizes=(64, 16, 10))
    traces = []

    def make_tx(_):
        traces.append(1)
        return optax.set_to_zero()

    run = jax.jit(craft.make_run(cfg, make_tx, batch_size=6, epochs=3, x=x, y=y,
                                 eval_sets={"train": (x, y)}, drop_remainder=drop_remainder))
    params, state = mlp.init(cfg, jax.random.key(0))
    for seed in (1, 2):
        _, c = run(params, state, jax.random.key(seed), None)
        loss = np.asarray(c["loss"], np.float64)
        assert loss.shape == (3, updates)
        full = np.asarray(c["train_loss"], np.float64)
        seen = loss @ ([6.0, 4.0] if updates == 2 else [6.0])
        if drop_remainder:
            assert not np.allclose(seen, 10 * full, rtol=1e-3)
        else:
            np.testing.assert_allclose(seen, 10 * full, rtol=1e-5)
    assert len(traces) == 1  # the extra last-batch shape does not recompile the run


@pytest.fixture(scope="module")
def digits_xy():
    ds = craft.load_data({"name": "digits"}, jax.random.key(0))
    return jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)


def test_increase_fraction_and_divergence_step():
    assert increase_fraction([3.0, 2.0, 1.0, 0.5]) == 0.0
    assert increase_fraction([1.0, 2.0, 1.0, 2.0, 1.0]) == 0.5
    assert increase_fraction([1.0, np.nan]) == 1.0
    assert craft.divergence_step([2.0, 1.0, 7.0, 1.0], 3.0) == 2
    assert craft.divergence_step([2.0, 1.0, np.inf], 3.0) == 2
    assert craft.divergence_step([2.0, 1.0, 0.5], 3.0) is None
    assert craft.early_stopping_epoch([5, 4, 3, 3.5, 3.6, 3.7, 2.0], patience=3) == (5, 2)
    assert craft.early_stopping_epoch([5, 4, 3], patience=3) == (2, 2)


# ----------------------------------------------------------------------------- init, batch norm


def test_std_001_init_stays_at_chance_while_xavier_and_he_learn(tmp_path):
    res = craft.run_init(_cfg("init", hidden=[64] * 5, batch_size=64), tmp_path)
    assert res["steps"] >= 2000
    f = res["final"]
    assert abs(f["std 0.01"]["train_accuracy"] - res["chance"]) < 0.05
    assert f["std 0.01"]["train_loss"] > 2.25  # ~ln 10: nothing learned
    for name in ("Xavier", "He"):
        assert f[name]["train_accuracy"] > 0.9
        assert f[name]["test_accuracy"] > 0.85
    assert (tmp_path / "init.png").exists() and "std 0.01" in (tmp_path / "summary.md").read_text()


def test_init_figure_and_loss_cover_every_update_the_table_reports(tmp_path, monkeypatch):
    # The run trains whole epochs (digits, batch 64: 22 updates each), so steps=30 runs 44
    # updates and the table reports the net after update 44; the figure and result["loss"]
    # stopped at update 30 (and a divergence after it was named but not drawn).
    from jaxnn.studies import craft_regularization

    figures = []
    real_save = craft_regularization.save_figure
    monkeypatch.setattr(craft_regularization, "save_figure",
                        lambda fig, path, **kw: (figures.append(fig), real_save(fig, path, **kw)))
    res = craft.run_init(_cfg("init", hidden=[8], steps=30, batch_size=64), tmp_path)
    assert res["steps"] == 44
    assert all(v.shape == (44,) for v in res["loss"].values())
    assert all(line.get_xdata()[-1] == 44 for line in figures[0].axes[0].lines)
    assert "44 updates (2 epochs)" in (tmp_path / "summary.md").read_text()


def test_batch_norm_learns_across_weight_scales(tmp_path):
    res = craft.run_batchnorm_scales(
        _cfg("batchnorm_scales", scales=6, epochs=15), tmp_path)
    bn, plain = res["train_accuracy"]["batch norm"], res["train_accuracy"]["no batch norm"]
    assert bn.shape == plain.shape == (6,)
    assert bn.mean() > plain.mean() + 0.2
    # Small scales: without batch norm the signal vanishes and nothing is learned.
    assert plain[-2] < 0.2 and bn[-2] > 0.5
    assert (tmp_path / "batchnorm_scales.png").exists()


# ----------------------------------------------------------------------------- overfitting


@pytest.fixture(scope="module")
def overfitting(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfitting")
    cfg = _cfg("overfitting", seeds=2, epochs=120)
    return craft.run_overfitting(cfg, out), out


def test_overfitting_seeds_draw_init_and_run_from_separate_keys(monkeypatch):
    from jaxnn.studies import craft_regularization as reg

    init_keys, run_keys = reg.seed_keys(jax.random.key(0), 3)
    data = lambda k: {tuple(np.asarray(jax.random.key_data(x)).tolist()) for x in k}
    assert len(data(init_keys) | data(run_keys)) == 6  # six distinct keys
    # run_overfitting initializes from the init keys and never from a run key.
    made, used = [], []
    real_seed_keys, real_init = reg.seed_keys, reg.init_stacked
    monkeypatch.setattr(reg, "seed_keys", lambda k, n: made.append(real_seed_keys(k, n))
                        or made[-1])
    monkeypatch.setattr(reg, "init_stacked", lambda cfgs, keys: used.append(keys)
                        or real_init(cfgs, keys))
    craft.run_overfitting(_cfg("overfitting", seeds=2, epochs=1, average_last=1, n_train=50,
                               n_val=20))
    assert len(made) == 1 and used
    for keys in used:
        assert data(keys) == data(made[0][0]) and not data(keys) & data(made[0][1])


def test_baseline_overfits(overfitting):
    v = overfitting[0]["variants"]["baseline"]
    assert v["train_accuracy"] > 0.97
    assert v["gap"] > 0.04


def test_weight_decay_shrinks_the_gap_and_dropout_fits_less(overfitting):
    # On 300 digits rows L2 0.1 shrinks the gap for every seed base tried (0, 1, 2; also
    # with 100 rows). Dropout 0.2 always fits less, but after 120 epochs its gap moves with
    # the seeds (0.055-0.109 against a baseline 0.087-0.105), so only its fit is asserted.
    v = overfitting[0]["variants"]
    assert v["L2 0.1"]["gap"] < v["baseline"]["gap"]
    assert v["L2 0.1"]["train_accuracy"] < v["baseline"]["train_accuracy"]
    assert v["dropout 0.2"]["train_accuracy"] < v["baseline"]["train_accuracy"] - 0.1


def test_early_stopping_stops_early_and_writes_outputs(overfitting):
    res, out = overfitting
    # On digits at lr 0.01 the validation loss may still improve at the end (no stop);
    # the kept epoch is the best one, so it cannot be much worse than the last.
    es, base = res["variants"]["early stopping"], res["variants"]["baseline"]
    assert es["epochs"] <= 120 and len(res["early_stopping"]["stop_epoch"]) == 2
    assert es["test_accuracy"] > base["test_accuracy"] - 0.03
    assert (out / "overfitting.png").exists()
    assert "early stopping" in (out / "summary.md").read_text()


# ----------------------------------------------------------------------------- schedules


def test_warmup_avoids_the_early_divergence_of_a_large_constant_rate(tmp_path):
    # 10 seeds (the default): a constant 0.2 blows up early in most of them, the same peak
    # reached after a 30% linear warm-up in none (on digits, momentum, 220 updates).
    cfg = _cfg("schedules", schedules=["constant_peak", "warmup_cosine"])
    res = craft.run_schedules(cfg, tmp_path)
    assert res["seeds"] == 10 and res["loss"]["constant_peak"].shape == (10, 220)
    peak = res["diverged_at"]["constant_peak"]
    assert res["diverged"]["constant_peak"] == sum(d is not None for d in peak) >= 3
    assert min(d for d in peak if d is not None) < 50
    # The summary counts updates from 1, as the figure's x axis (diverged_at is 0-based).
    summary = (tmp_path / "summary.md").read_text()
    first = min(d for d in peak if d is not None) + 1
    assert f"{res['diverged']['constant_peak']}/10 (first at update {first})" in summary
    assert res["diverged"]["warmup_cosine"] == 0
    assert res["test_accuracy"]["warmup_cosine"] > 0.9
    assert res["test_accuracy"]["warmup_cosine"] > res["test_accuracy"]["constant_peak"] + 0.2
    assert res["final_loss"]["warmup_cosine"] < 0.5 * res["final_loss"]["constant_peak"]
    # the seeds differ (their own initializations and data orders)
    assert len({round(float(a), 6) for a in res["test_accuracies"]["warmup_cosine"]}) > 1
    lr = res["learning_rate"]["warmup_cosine"]
    assert lr[0] == 0.0 and np.isclose(lr.max(), cfg["peak_lr"], rtol=1e-2)
    assert int(np.argmax(lr)) == int(0.3 * 220)  # the peak is reached after the warm-up
    assert (tmp_path / "schedules.png").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert f"| constant_peak | {res['diverged']['constant_peak']}/10 (first at update " in summary
    assert "| warmup_cosine | 0/10 |" in summary


@pytest.mark.parametrize("epochs, batch_size, window", [(1, 100_000, 1), (1, 64, 4)])
def test_schedules_plot_smooths_short_runs_with_a_short_window(
        tmp_path, monkeypatch, epochs, batch_size, window):
    # digits: 1438 rows, so batch 64 gives 22 updates per epoch; a 20-update window would
    # leave 3 points (and a run of one update 20 points of loss / 20).
    from jaxnn.studies import craft_training

    figures = []
    real_save = craft_training.save_figure
    monkeypatch.setattr(craft_training, "save_figure",
                        lambda fig, path, **kw: (figures.append(fig), real_save(fig, path, **kw)))
    cfg = _cfg("schedules", epochs=epochs, batch_size=batch_size, hidden=[16],
               schedules=["constant"])
    res = craft.run_schedules(cfg, tmp_path)
    total = res["total_steps"]
    assert res["smoothing_window"] == window
    loss_axis = figures[0].axes[1]
    assert len(loss_axis.lines[0].get_ydata()) == total - window + 1
    label = loss_axis.get_ylabel()
    assert (f"{window}-update" in label) if window > 1 else ("per update" in label)


def test_moving_means_are_plotted_at_the_last_update_they_average(tmp_path, monkeypatch):
    # A w-update trailing mean of updates 1..w is the loss at update w: drawn from x = 1 the
    # curve ran w - 1 updates ahead of the learning-rate panel (and of the divergence update
    # in the table) and stopped short of the last update.
    from jaxnn.studies import craft_training

    figures = []
    real_save = craft_training.save_figure
    monkeypatch.setattr(craft_training, "save_figure",
                        lambda fig, path, **kw: (figures.append(fig), real_save(fig, path, **kw)))
    res = craft.run_schedules(_cfg("schedules", epochs=1, seeds=1, hidden=[16],
                                   schedules=["constant"]), tmp_path / "s")
    lr_x = figures[0].axes[0].lines[0].get_xdata()
    loss_x = figures[0].axes[1].lines[0].get_xdata()
    total, w = res["total_steps"], res["smoothing_window"]
    assert w > 1 and lr_x[0] == 1 and lr_x[-1] == total
    assert loss_x[0] == w and loss_x[-1] == total
    opts = {"SGD": craft.OPTIMIZERS_DEFAULTS["optimizers"]["SGD"]}
    res = craft.run_optimizers(_cfg("optimizers", seeds=1, epochs=1, batch_size=8, hidden=[16],
                                    optimizers=opts), tmp_path / "o")
    total = res["loss"]["SGD"].shape[1]
    w = total // 50
    x = figures[1].axes[0].lines[0].get_xdata()
    assert w > 1 and x[0] == w and x[-1] == total


def test_smoothing_window():
    assert [craft.smoothing_window(t) for t in (1, 4, 5, 22, 99, 100, 220, 10**6)] == \
        [1, 1, 1, 4, 19, 20, 20, 20]


def test_build_schedule_shapes():
    for name in craft.SCHEDULES:
        s = craft.build_schedule(name, base_lr=0.1, peak_lr=1.0, total_steps=100)
        v = np.asarray(s(jnp.arange(100)))
        assert v.dtype == np.float32 and v.shape == (100,) and (v >= 0).all()
    step = craft.build_schedule("step", base_lr=0.1, peak_lr=1.0, total_steps=100)
    np.testing.assert_allclose([step(0), step(50), step(75)], [0.1, 0.01, 0.001], rtol=1e-5)
    # Two updates: both drops fall on update 1, which still divides by 100.
    step = craft.build_schedule("step", base_lr=0.1, peak_lr=1.0, total_steps=2)
    np.testing.assert_allclose([step(0), step(1)], [0.1, 0.001], rtol=1e-5)


# ----------------------------------------------------------------------------- batch size


def test_full_batch_has_the_smoothest_loss_per_update(tmp_path):
    cfg = _cfg("batch_size", n_train=256, epochs=5, batch_sizes=[0, 1, 32])
    runs = craft.run_batch_size(cfg, tmp_path)["runs"]
    full, sgd, mini = runs["full batch"], runs["SGD (batch 1)"], runs["batch 32"]
    assert (full["updates"], sgd["updates"], mini["updates"]) == (5, 1280, 40)
    assert full["increase_fraction"] == 0.0
    assert sgd["increase_fraction"] > 0.2 and mini["increase_fraction"] > 0.1
    # More updates per epoch: lower loss after the same number of epochs.
    assert sgd["final_loss"] < mini["final_loss"] < full["final_loss"]
    assert np.all(np.diff(full["epoch_time"]) > 0)
    assert (tmp_path / "batch_size.png").exists()


def test_batch_size_epochs_use_every_row(tmp_path):
    # 100 rows in batches of 60 (and 30): the 40 (10) rows left over are one more update.
    cfg = _cfg("batch_size", n_train=100, epochs=3, batch_sizes=[60, 30, 0])
    runs = craft.run_batch_size(cfg, tmp_path)["runs"]
    b60, b30, full = runs["batch 60"], runs["batch 30"], runs["full batch"]
    assert (b60["updates_per_epoch"], b60["last_batch"], b60["updates"]) == (2, 40, 6)
    assert (b30["updates_per_epoch"], b30["last_batch"], b30["updates"]) == (4, 10, 12)
    assert (full["updates_per_epoch"], full["last_batch"], full["updates"]) == (1, 100, 3)
    assert b60["batch_loss"].shape == (6,) and b60["epoch_loss"].shape == (3,)
    text = (tmp_path / "summary.md").read_text()
    assert "| batch 60 | 60 | 6 | 40 |" in text and "| full batch | 100 | 3 | - |" in text
    assert "train s/epoch" in text and "evaluation excluded" in text


def test_batch_size_times_training_without_the_evaluation(tmp_path, monkeypatch):
    from jaxnn.studies import craft_training

    timed_eval_sets = []
    real_make_run = craft_training.make_run

    def recording_make_run(*args, **kwargs):
        timed_eval_sets.append(kwargs["eval_sets"])
        return real_make_run(*args, **kwargs)

    real_make_evaluate = craft_training.make_evaluate

    def slow_make_evaluate(cfg):
        evaluate = real_make_evaluate(cfg)

        def slow(*args):
            time.sleep(0.3)
            return evaluate(*args)

        return slow

    monkeypatch.setattr(craft_training, "make_run", recording_make_run)
    monkeypatch.setattr(craft_training, "make_evaluate", slow_make_evaluate)
    cfg = _cfg("batch_size", n_train=64, epochs=3, batch_sizes=[0], hidden=[8])
    r = craft.run_batch_size(cfg)["runs"]["full batch"]
    assert timed_eval_sets == [{}]  # the timed run trains only
    assert r["seconds"] < 0.3  # three evaluations of 0.3 s each ran off the clock
    np.testing.assert_allclose(r["seconds_per_epoch"], r["seconds"] / 3)
    assert r["epoch_time"][-1] == r["seconds"]


# ----------------------------------------------------------------------------- optimizers, search


def test_adaptive_and_momentum_optimizers_beat_sgd(tmp_path):
    opts = {k: v for k, v in craft.OPTIMIZERS_DEFAULTS["optimizers"].items()
            if k in ("SGD", "Momentum", "Adam")}
    res = craft.run_optimizers(_cfg("optimizers", seeds=2, epochs=3, optimizers=opts),
                               tmp_path)
    f = res["final"]
    assert res["loss"]["SGD"].shape[0] == 2
    assert f["Adam"]["train_loss"] < f["SGD"]["train_loss"]
    assert f["Momentum"]["train_loss"] < f["SGD"]["train_loss"]
    assert f["Adam"]["test_accuracy"] > f["SGD"]["test_accuracy"]
    assert (tmp_path / "optimizers.png").exists()


@pytest.mark.slow
def test_random_search_ranks_trials(tmp_path):
    cfg = _cfg("search", trials=6, trials_per_batch=4, epochs=10, hidden=[50, 50],
               n_train=300, n_val=200)
    res = craft.run_search(cfg, tmp_path)
    trials = res["trials"]
    assert len(trials) == 6
    val = [t["val_accuracy"] for t in trials]
    assert val == sorted(val, reverse=True)
    assert all(1e-6 <= t["learning_rate"] <= 1e-2 for t in trials)
    assert all(1e-8 <= t["weight_decay"] <= 1e-4 for t in trials)
    # Over four decades of learning rate, the largest rates learn most in a short run.
    by_lr = sorted(trials, key=lambda t: t["learning_rate"])
    assert by_lr[-1]["val_accuracy"] > by_lr[0]["val_accuracy"]
    assert (tmp_path / "search.png").exists()
    assert "| 1 |" in (tmp_path / "summary.md").read_text()


# ----------------------------------------------------------------------------- divergence


def test_optimizer_that_diverges_is_reported_as_diverged(tmp_path, monkeypatch):
    # SGD at lr 50 blows up within a few updates: the summary showed a train loss of nan
    # and nothing else, the figure a line that stopped, and no column said "diverged". (On
    # a narrower net the loss explodes to ~1e4 and stays finite: divergence_factor.)
    from jaxnn.studies import craft_training

    figures = []
    real_save = craft_training.save_figure
    monkeypatch.setattr(craft_training, "save_figure",
                        lambda fig, path, **kw: (figures.append(fig), real_save(fig, path, **kw)))
    opts = {"SGD": {"optimizer": "sgd", "learning_rate": 50.0, "kwargs": {}},
            "Adam": craft.OPTIMIZERS_DEFAULTS["optimizers"]["Adam"]}
    res = craft.run_optimizers(_cfg("optimizers", seeds=2, epochs=1, hidden=[100] * 4,
                                    optimizers=opts), tmp_path)
    sgd, adam = res["final"]["SGD"], res["final"]["Adam"]
    assert sgd["diverged"] == 2 and adam["diverged"] == 0
    assert all(d is not None for d in sgd["diverged_at"]) and adam["diverged_at"] == [None] * 2
    assert sgd["train_loss"] == np.inf and np.isfinite(adam["train_loss"])
    summary = (tmp_path / "summary.md").read_text()
    first = min(sgd["diverged_at"]) + 1  # counted from 1, as on the figure
    assert f"| SGD | sgd | 50.0000 | 2/2 (first at update {first}) | inf |" in summary
    assert "| Adam | adam | 0.0010 | 0/2 |" in summary and "nan" not in summary
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert labels == ["SGD (diverged 2/2)", "Adam"]


def test_surface_optimizer_that_diverges_is_reported_as_diverged(tmp_path):
    # SGD at lr 5 on the bowl (stable only below lr 1) leaves for infinity: the summary gave
    # a distance of nan and no sign that the run had diverged.
    cfg = copy.deepcopy(craft.SURFACE_DEFAULTS)
    bowl = cfg["surfaces"]["bowl"]
    bowl["steps"] = 200
    bowl["optimizers"] = {"SGD": {"optimizer": "sgd", "learning_rate": 5.0, "kwargs": {}},
                          "Adam": bowl["optimizers"]["Adam"]}
    cfg["surfaces"] = {"bowl": bowl}
    res = craft.run_surface(cfg, tmp_path)
    at = res.diverged["bowl"]["SGD"]
    assert at is not None and 1 <= at <= 200 and res.diverged["bowl"]["Adam"] is None
    path = res.trajectories["bowl"]["SGD"]
    assert np.isfinite(path[at - 1]).all() and np.isfinite(craft.SURFACES["bowl"].fn(
        jnp.asarray(path[at - 1], jnp.float32)))
    assert not (np.isfinite(path[at]).all() and np.isfinite(craft.SURFACES["bowl"].fn(
        jnp.asarray(path[at], jnp.float32))))
    assert res.distance["bowl"]["SGD"] == np.inf
    summary = (tmp_path / "summary.md").read_text()
    assert f"| diverged at update {at} |" in summary and "nan" not in summary
    assert "| bowl | Adam | adam | 0.3000 |" in summary


# ----------------------------------------------------------------------------- workdir, ranking


def test_cli_empty_workdir_is_refused(tmp_path, capsys, monkeypatch):
    # --workdir '' is the current directory to pathlib: the run wrote surface.png and
    # summary.md wherever the command was started.
    monkeypatch.chdir(tmp_path)
    assert craft.main(["surface", "--set", "surfaces.bowl.steps=1", "--workdir", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --workdir") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_search_trials_do_not_depend_on_how_many_run_per_batch():
    # A trial's run key was drawn per batch (fold_in(key, batch start)): changing
    # trials_per_batch, a speed setting, trained each trial on other data orders and
    # changed the results and the best trial.
    cfg = _cfg("search", trials=3, epochs=3, hidden=[16], n_train=60, n_val=40,
               batch_size=20, lr_range=[0.1, 0.5])
    by_lr = [{t["learning_rate"]: t for t in craft.run_search(
        {**cfg, "trials_per_batch": per})["trials"]} for per in (1, 2, 3)]
    for trials in by_lr[1:]:
        assert trials.keys() == by_lr[0].keys()
        for lr, t in trials.items():
            np.testing.assert_allclose(t["val_loss"], by_lr[0][lr]["val_loss"], rtol=1e-4)
            np.testing.assert_allclose(t["train_accuracy"], by_lr[0][lr]["train_accuracy"],
                                       atol=1e-6)


def test_search_ranks_ties_by_validation_loss_and_diverged_trials_last():
    acc = np.array([0.5, 0.8, 0.5, 0.8, 0.5])
    loss = np.array([1.0, 0.7, np.nan, 0.6, 0.9])
    # best accuracy first; among equal accuracies the lower validation loss; a trial whose
    # loss is not finite (diverged) after every finite one of its accuracy
    assert list(craft.rank_trials(acc, loss)) == [3, 1, 4, 0, 2]


def test_batchnorm_scales_reports_runs_that_diverge(tmp_path):
    # Without batch norm, std-1 weights make the loss overflow to nan within a few updates;
    # the summary showed accuracy 0.1000, the same as a net that merely stays at chance.
    res = craft.run_batchnorm_scales(
        _cfg("batchnorm_scales", scales=2, min_scale=1e-4, epochs=1), tmp_path)
    at = res["diverged_at"]["no batch norm"]
    assert at[0] is not None and at[1] is None  # std 1 blows up, std 1e-4 stays finite
    assert res["diverged_at"]["batch norm"] == [None, None]
    summary = (tmp_path / "summary.md").read_text()
    assert re.search(rf"\| 1 \| [0-9.]+ \| [0-9.]+ \(diverged at update {at[0] + 1}\) \|",
                     summary), summary


def test_init_reports_a_run_that_diverges(tmp_path):
    # With a learning rate too large for He init the loss overflows; the summary showed nan
    # losses and chance accuracy, which read like the std-0.01 net that never learns.
    res = craft.run_init(_cfg("init", hidden=[64] * 5, batch_size=64, steps=50,
                              learning_rate=5.0), tmp_path)
    at = res["final"]["He"]["diverged_at"]
    assert at is not None and not np.isfinite(res["loss"]["He"][at])
    assert np.isfinite(res["loss"]["He"][:at]).all()
    assert res["final"]["std 0.01"]["diverged_at"] is None  # tiny gradients: no blow-up
    summary = (tmp_path / "summary.md").read_text()
    assert re.search(rf"\| He \| at update {at + 1} \|", summary), summary
    assert re.search(r"\| std 0.01 \| no \|", summary), summary


# ----------------------------------------------------------------------------- outputs

#: The smallest config of each experiment that still writes its figure and summary.
_TINY = {
    "surface": {"surfaces": {s: {**v, "steps": 2} for s, v in
                             craft.SURFACE_DEFAULTS["surfaces"].items()}},
    "optimizers": {"seeds": 1, "hidden": [8], "epochs": 1,
                   "optimizers": {"SGD": {"optimizer": "sgd", "learning_rate": 0.01,
                                          "kwargs": {}}}},
    "batch_size": {"n_train": 40, "hidden": [8], "epochs": 1, "batch_sizes": [0, 20]},
    "schedules": {"seeds": 1, "hidden": [8], "epochs": 1, "schedules": ["constant"]},
    "overfitting": {"seeds": 1, "n_train": 20, "n_val": 20, "hidden": [8], "epochs": 2,
                    "batch_size": 10, "average_last": 1, "patience": 1},
    "init": {"hidden": [8], "steps": 2, "batch_size": 64},
    "batchnorm_scales": {"scales": 2, "n_train": 40, "hidden": [8], "epochs": 1,
                         "batch_size": 20},
    "search": {"trials": 2, "trials_per_batch": 2, "n_train": 40, "n_val": 20,
               "hidden": [8], "epochs": 1, "batch_size": 20, "top": 2},
}


@pytest.mark.parametrize("name", [  # one experiment per module by default; -m slow: all
    n if n in ("surface", "init", "schedules") else pytest.param(n, marks=pytest.mark.slow)
    for n in craft.EXPERIMENTS])
def test_a_run_stopped_before_its_summary_leaves_no_old_summary_beside_its_figure(
        name, tmp_path, monkeypatch):
    # The figure was written first and summary.md last: a crash or Ctrl-C between the two
    # left the new figure beside the previous run's summary, which no longer described it.
    from jaxnn.studies import craft_common

    figure = tmp_path / craft.EXPERIMENTS[name][2]
    figure.write_bytes(b"the previous run's figure")
    (tmp_path / "summary.md").write_text("# the previous run's summary\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(craft_common, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        craft.run_experiment(name, _cfg(name, **_TINY[name]), tmp_path)
    assert figure.read_bytes() != b"the previous run's figure"  # the new figure is written
    assert sorted(p.name for p in tmp_path.iterdir()) == [figure.name]  # and no summary


def test_a_run_that_fails_before_writing_keeps_the_previous_outputs(tmp_path, monkeypatch):
    from jaxnn.studies import craft_surface

    craft.run_experiment("surface", _cfg("surface", **_TINY["surface"]), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(craft_surface, "optimize_surface",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        craft.run_experiment("surface", _cfg("surface", **_TINY["surface"]), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_refuses_a_workdir_holding_another_experiments_outputs(tmp_path, capsys,
                                                                   monkeypatch):
    # Two experiments in one --workdir left the first one's figure beside the second one's
    # summary.md.
    from jaxnn.studies import craft_regularization

    surface = ["surface", "--workdir", str(tmp_path)]
    for s in craft.SURFACE_DEFAULTS["surfaces"]:
        surface += ["--set", f"surfaces.{s}.steps=2"]
    init = ["init", "--set", "data.name=digits", "--set", "hidden=[8]", "--set", "steps=2",
            "--workdir", str(tmp_path)]
    assert craft.main(surface) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with monkeypatch.context() as m:  # refused before any data is loaded or trained on
        m.setattr(craft_regularization, "load_data", lambda *a: pytest.fail("trained"))
        assert craft.main(init) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --workdir {str(tmp_path)!r} holds the outputs of the surface "
                   "experiment (surface.png); choose another --workdir, or pass --overwrite "
                   "to replace them\n")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # --overwrite replaces them: only the new experiment's outputs are left
    assert craft.main([*init, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.png", "summary.md"]
    assert "Weight initialization" in (tmp_path / "summary.md").read_text()
    # running the same experiment again needs no flag; a direct call is refused as well
    assert craft.main(init) == 0
    with pytest.raises(ConfigError, match=r"holds the outputs of the init experiment "
                                          r"\(init\.png\).*overwrite=True"):
        craft.run_experiment("surface", _cfg("surface", **_TINY["surface"]), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.png", "summary.md"]


def test_cli_help_shows_each_experiments_default_workdir(capsys):
    # It read "default: runs/compare/compare.py surface" (argparse's prog, not the name).
    with pytest.raises(SystemExit):
        craft._parser().parse_args(["surface", "--help"])
    assert "(default: runs/compare/surface)" in " ".join(capsys.readouterr().out.split())


def test_auto_data_with_a_data_dir_holding_no_files_is_refused(tmp_path, capsys):
    # data.name auto with a data_dir that holds no IDX files (a wrong folder) silently
    # trained on the 8x8 digits instead; only "Data: digits" in summary.md told.
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match=re.escape(
            f"data.data_dir: {str(tmp_path / 'data')!r} holds no Fashion-MNIST or MNIST")):
        craft.load_data({"name": "auto", "data_dir": str(tmp_path / "data")},
                        jax.random.key(0))
    assert craft.main(["init", "--set", f"data.data_dir={tmp_path / 'data'}",
                       "--workdir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.data_dir:") and err.count("\n") == 1
    assert "allowed: a folder holding them, or '' for scikit-learn's digits" in err
    assert not (tmp_path / "out").exists()
    # no data_dir: the digits, as before
    assert craft.load_data({"name": "auto", "data_dir": ""}, jax.random.key(0)).name == "digits"


def test_auto_data_says_why_the_files_in_its_data_dir_did_not_load(tmp_path):
    # The files are there, but a torn one (or an n_train above their rows) failed every
    # choice, and the refusal said the folder "holds no Fashion-MNIST or MNIST IDX files".
    from jaxnn.data import write_idx
    from jaxnn.data.mnist import FASHION_MNIST

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for role, spec in FASHION_MNIST.files.items():
        n = 20 if role.startswith("train") else 10
        array = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if role.endswith("images")
                 else (np.arange(n) % 10).astype(np.uint8))
        write_idx(data / spec.name, array)
    key = jax.random.key(0)
    assert craft.load_data({"name": "auto", "data_dir": str(data)}, key).name == \
        "fashion_mnist"
    with pytest.raises(ConfigError, match=r"could not load 'fashion_mnist': .*n_train=50 "
                                          r"but the train split .* has only 20 rows"):
        craft.load_data({"name": "auto", "data_dir": str(data), "n_train": 50}, key)
    labels = data / FASHION_MNIST.files["train_labels"].name
    labels.write_bytes(labels.read_bytes()[:-8])  # the gzip trailer lost
    with pytest.raises(ConfigError, match=re.escape(f"{labels}: corrupt or truncated")):
        craft.load_data({"name": "auto", "data_dir": str(data)}, key)


def test_cli_missing_data_files_are_one_line(tmp_path, capsys):
    # The data loader's message lists where it looked, one place a line: printed as is, the
    # CLI's error ran over eight lines.
    assert craft.main(["init", "--set", "data.name=mnist", "--set",
                       f"data.data_dir={tmp_path}", "--workdir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data: could not load 'mnist'") and err.count("\n") == 1


def _tiny_surface_args(workdir) -> list[str]:
    args = ["surface", "--workdir", str(workdir)]
    for s in craft.SURFACE_DEFAULTS["surfaces"]:
        args += ["--set", f"surfaces.{s}.steps=2"]
    return args


@pytest.mark.parametrize("existing", [False, True])
def test_cli_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch, existing):
    # It ended in a traceback; train.py and depth_study.py print one line and exit 130.
    # Stopped before writing anything, the line named the workdir and "a figure with no
    # summary.md beside it" there, in a folder that was never created (or whose outputs
    # were all from an earlier, complete run).
    from jaxnn.studies import craft_surface

    workdir = tmp_path / "out"
    if existing:
        assert craft.main(_tiny_surface_args(workdir)) == 0
    before = {p.name: p.read_bytes() for p in workdir.iterdir()} if existing else None
    capsys.readouterr()
    monkeypatch.setattr(craft_surface, "optimize_surface",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        code = craft.main(_tiny_surface_args(workdir))
    except KeyboardInterrupt:  # would stop pytest itself
        pytest.fail("KeyboardInterrupt escaped main()")
    assert code == 130
    err = capsys.readouterr().err
    assert err == "interrupted before any output was written; run the command again\n"
    if existing:
        assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before
    else:
        assert not workdir.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_cli_ctrl_c_after_the_figure_names_it_and_the_workdir(tmp_path, capsys, monkeypatch,
                                                              existing):
    from jaxnn.studies import craft_common

    workdir = tmp_path / "out"
    if existing:  # an earlier complete run: its figure is replaced, its summary removed
        assert craft.main(_tiny_surface_args(workdir)) == 0
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(craft_common, "write_text", interrupted)
    assert craft.main(_tiny_surface_args(workdir)) == 130
    err = capsys.readouterr().err
    assert err == (f"interrupted: surface.png in {str(workdir)!r} has no summary.md beside "
                   "it: it is from this unfinished run; run the command again\n")
    assert sorted(p.name for p in workdir.iterdir()) == ["surface.png"]


def test_cli_ctrl_c_after_only_creating_the_workdir_names_it(tmp_path, capsys, monkeypatch):
    from jaxnn.studies import craft_surface

    workdir = tmp_path / "out"
    monkeypatch.setattr(craft_surface, "_plot",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert craft.main(_tiny_surface_args(workdir)) == 130
    err = capsys.readouterr().err
    assert err == f"interrupted while writing into {str(workdir)!r}; run the command again\n"
    assert workdir.is_dir() and list(workdir.iterdir()) == []


@pytest.mark.parametrize("name", ["surface", "init"])
def test_temporaries_of_a_killed_write_are_removed_by_the_next_run(name, tmp_path):
    # replace_atomically writes ".NAME.XXXXXXXX.SUFFIX" and renames it; a run killed with
    # kill -9 mid-write left that hidden file (as big as the figure) for good.
    stale = [".summary.md.a1b2c3d4.md", ".surface.png.k9_x8y7z.png", ".init.png.zzzzzzzz.png"]
    mine = [".my.txt.a1b2c3d4.txt", ".summary.md.short.md", "notes.png", "summary.md.bak"]
    tmp_path.mkdir(exist_ok=True)
    for f in stale + mine:
        (tmp_path / f).write_bytes(b"x" * 100)
    craft.run_experiment(name, _cfg(name, **_TINY[name]), tmp_path, overwrite=True)
    figure = craft.EXPERIMENTS[name][2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*mine, figure, "summary.md"])


def test_the_other_outputs_check_words_itself_for_the_cli_and_for_a_direct_call(tmp_path,
                                                                                capsys):
    # One check serves both: the command line names --workdir/--overwrite, a direct call
    # workdir/overwrite=True; both list every other experiment found.
    for figure in ("init.png", "surface.png"):
        (tmp_path / figure).write_bytes(b"png")
    args = ["schedules", "--set", "seeds=0", "--workdir", str(tmp_path)]
    assert craft.main(args) == 2
    assert capsys.readouterr().err == (
        f"error: --workdir {str(tmp_path)!r} holds the outputs of the surface and init "
        "experiments (surface.png, init.png); choose another --workdir, or pass --overwrite "
        "to replace them\n")
    with pytest.raises(ConfigError, match="^" + re.escape(
            f"workdir {str(tmp_path)!r} holds the outputs of the surface and init experiments "
            "(surface.png, init.png); choose another workdir, or pass overwrite=True to "
            "replace them") + "$"):
        craft.run_experiment("schedules", _cfg("schedules", seeds=0), tmp_path)


def test_keys_that_fit_several_kinds_name_none_of_them(tmp_path):
    # "learning_rate: 0.1" given to the optimizers experiment was "a depth-study config ...
    # run it with scripts/depth_study.py" (the first of the seven kinds that have the key).
    path = tmp_path / "mine.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"^unknown key 'learning_rate'"):
        craft.load_config("optimizers", path)
    from jaxnn.studies import depth

    path.write_text("seed: 1\nepochs: 5\n")  # a depth study counts steps, not epochs
    with pytest.raises(ConfigError, match=r"^unknown key 'epochs'"):
        depth.load_config(path)


def test_a_summary_md_beside_no_experiments_figure_is_set_aside_not_replaced(tmp_path,
                                                                             capsys):
    # A user's own notes in summary.md were replaced by the experiment's without a word.
    surface = ["surface", "--workdir", str(tmp_path)]
    for s in craft.SURFACE_DEFAULTS["surfaces"]:
        surface += ["--set", f"surfaces.{s}.steps=2"]
    (tmp_path / "summary.md").write_text("my notes\n")
    assert craft.main(surface) == 0
    assert (tmp_path / "summary.unmatched.md").read_text() == "my notes\n"
    assert "summary.md -> summary.unmatched.md" in capsys.readouterr().err
    # the experiment's own summary (beside its figure) is simply replaced by a second run
    assert craft.main(surface) == 0
    assert "set aside" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "summary.md", "summary.unmatched.md", "surface.png"]
