"""Bad input that reaches past the config checks still ends in one ``error:`` line and exit
status 2 from the command lines (``scripts/train.py``, ``scripts/depth_study.py``)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from conftest import train_cli_usage_error

from jaxnn.studies import depth_cli

REPO = pathlib.Path(__file__).resolve().parents[1]
XOR = ["--config", str(REPO / "configs" / "xor.yaml"), "--set", "training.epochs=1",
       "--quiet", "--set", "logging.plots=false"]
DEPTH_SMOKE = ["--config", str(REPO / "configs" / "depth_smoke.yaml"), "--quiet", "--no-plots"]


def _depth_usage_error(argv, capsys, needles) -> str:
    code = depth_cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_train_model_too_big_for_memory_is_refused_before_allocating(tmp_path, capsys):
    # A 1e6 x 1e6 weight matrix (4 TB): a raw JaxRuntimeError traceback at first, then
    # XLA's out-of-memory error; sizes past the RAM but below what XLA refuses could get
    # the process killed by the system. Now the model is sized against the device first.
    line = train_cli_usage_error(
        XOR + ["--workdir", str(tmp_path / "w"), "--set", "model.hidden_sizes=[1000000,1000000]"],
        capsys, ["model.hidden_sizes", "[2, 1000000, 1000000, 2]", "'adam'", "GiB",
                 "more than the device's"])
    assert "Traceback" not in line
    assert not (tmp_path / "w").exists()  # refused before the run directory is made


def test_train_batch_norm_with_one_row_batches_is_one_line(tmp_path, capsys):
    line = train_cli_usage_error(
        XOR + ["--workdir", str(tmp_path / "w"), "--set", "model.batch_norm=true",
               "--set", "training.batch_size=1"],
        capsys, ["training.batch_size: got 1", "model.batch_norm needs at least 2 rows",
                 "use a batch size >= 2"])
    assert "Traceback" not in line


def test_train_out_of_memory_at_run_time_is_one_line(tmp_path, capsys, monkeypatch):
    # With the memory unknown, the pre-check steps aside and XLA's own refusal of a 4 TB
    # matrix is still one line.
    from jaxnn.train import loop

    monkeypatch.setattr(loop, "device_memory_limit", lambda: None)
    train_cli_usage_error(
        XOR + ["--workdir", str(tmp_path / "w"), "--set", "model.hidden_sizes=[1000000,1000000]"],
        capsys, ["out of memory", "model.hidden_sizes"])


def test_train_memory_check_counts_the_optimizer_state(monkeypatch):
    # Adam keeps two slots per parameter, momentum one, plain SGD none: a limit between
    # the SGD and the Adam need refuses Adam only.
    from jaxnn import config as config_lib
    from jaxnn.train import loop

    def build(opt, **options):
        sets = ["model.hidden_sizes=[300,300]", f"optimizer.name={opt}"]
        sets += [f"optimizer.options.{k}={v}" for k, v in options.items()]
        cfg = config_lib.load(REPO / "configs" / "xor.yaml", sets)
        exp = loop.build_experiment(cfg)
        # as the check sizes it: an evaluation chunk holds at most its split's rows
        chunk = min(cfg.training.eval_batch_size, exp.dataset.x_test.shape[0])
        return exp, loop.training_bytes(exp.mlp_config, exp.tx, exp.batch_size, chunk,
                                        loop._data_bytes(exp.dataset))

    exp, sgd = build("sgd")
    _, momentum = build("sgd", momentum=0.9)
    _, adam = build("adam")
    params = 4 * (2 * 300 + 300 + 300 * 300 + 300 + 300 * 2 + 2)
    assert params <= momentum - sgd < params + 64
    assert 2 * params <= adam - sgd < 2 * params + 64
    assert sgd >= 3 * params
    monkeypatch.setattr(loop, "device_memory_limit", lambda: (sgd + adam) // 2)
    build("sgd")
    with pytest.raises(config_lib.ConfigError, match=r"model.hidden_sizes: .*'adam' need"):
        build("adam")


def test_train_memory_check_sizes_the_eval_batch_by_the_split_and_names_the_batch(
        monkeypatch):
    # eval_batch_size=10**9 (evaluate each split in one pass) on XOR's few hundred rows was
    # sized as 10**9-row activations: a 2-8-2 model refused for "~89 GiB", told to shrink
    # model.hidden_sizes. The evaluation chunks a split into at most its own rows.
    from jaxnn import config as config_lib
    from jaxnn.train import loop

    cfg = config_lib.load(REPO / "configs" / "xor.yaml", ["training.eval_batch_size=1000000000"])
    exp = loop.build_experiment(cfg)
    need = loop.training_bytes(exp.mlp_config, exp.tx, exp.batch_size,
                               exp.dataset.x_test.shape[0], loop._data_bytes(exp.dataset))
    monkeypatch.setattr(loop, "device_memory_limit", lambda: need)
    loop.build_experiment(cfg)  # exactly fits
    monkeypatch.setattr(loop, "device_memory_limit", lambda: need - 1)
    with pytest.raises(config_lib.ConfigError):
        loop.build_experiment(cfg)
    # A batch, not the model, too big for the device: the message names the batch size.
    big = config_lib.load(REPO / "configs" / "xor.yaml",
                          ["training.batch_size=100000", "data.options.repeats=25000"])
    monkeypatch.setattr(loop, "device_memory_limit", lambda: None)
    data = loop._data_bytes(loop.build_experiment(big).dataset)
    weights = loop.training_bytes(exp.mlp_config, exp.tx, 0)
    monkeypatch.setattr(loop, "device_memory_limit", lambda: 2 * weights + data)
    with pytest.raises(config_lib.ConfigError,
                       match=r"^training.batch_size: .*batches of 100000 rows"):
        loop.build_experiment(big)


def test_train_memory_check_counts_each_devices_share_of_the_batch(monkeypatch):
    # With data parallelism each device holds batch_size / N rows of activations (and of an
    # evaluation chunk); the check counted the whole batch on every device, so a run that
    # fits on 4 devices was refused.
    from jaxnn import config as config_lib
    from jaxnn.train import loop

    sets = ["training.batch_size=100000", "data.options.repeats=25000",
            "training.eval_batch_size=1000"]
    monkeypatch.setattr(loop, "_device_count", lambda: 4)
    monkeypatch.setattr(loop, "device_memory_limit", lambda: None)
    exp = loop.build_experiment(config_lib.load(REPO / "configs" / "xor.yaml", sets))
    data = loop._data_bytes(exp.dataset)
    one = loop.training_bytes(exp.mlp_config, exp.tx, exp.batch_size, 1000, data)
    four = loop.training_bytes(exp.mlp_config, exp.tx, -(-exp.batch_size // 4), 250, data)
    assert four < one
    monkeypatch.setattr(loop, "device_memory_limit", lambda: four)
    for devices in ("4", "0"):  # 0: all of them
        loop.build_experiment(config_lib.load(REPO / "configs" / "xor.yaml",
                                              sets + [f"training.devices={devices}"]))
    with pytest.raises(config_lib.ConfigError, match=r"^training.batch_size: .*batches of "
                       f"{exp.batch_size} rows need"):
        loop.build_experiment(config_lib.load(REPO / "configs" / "xor.yaml", sets))
    monkeypatch.setattr(loop, "device_memory_limit", lambda: four - 1)
    with pytest.raises(config_lib.ConfigError, match=r"^training.batch_size: .*batches of "
                       rf"{-(-exp.batch_size // 4)} rows per device \(on 4 devices\) need"):
        loop.build_experiment(config_lib.load(REPO / "configs" / "xor.yaml",
                                              sets + ["training.devices=4"]))


def test_train_memory_check_counts_the_data_and_eval_activations_once(monkeypatch):
    # The training set and evaluation splits stay on the device for the whole run; an
    # evaluation chunk is a forward pass (no activation gradients), a training batch is not.
    from jaxnn import config as config_lib
    from jaxnn.train import loop

    cfg = config_lib.load(REPO / "configs" / "xor.yaml", ["data.options.repeats=2000"])
    exp = loop.build_experiment(cfg)
    mcfg, tx, ds = exp.mlp_config, exp.tx, exp.dataset
    data = loop._data_bytes(ds)
    assert data == sum(a.nbytes for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
    units = 4 * sum(mcfg.layer_sizes)
    base = loop.training_bytes(mcfg, tx, 0)
    assert loop.training_bytes(mcfg, tx, 0, 0, data) == base + data
    assert loop.training_bytes(mcfg, tx, 10, 0) == base + 2 * units * 10
    assert loop.training_bytes(mcfg, tx, 10, 15) == base + 2 * units * 10  # train batch larger
    assert loop.training_bytes(mcfg, tx, 10, 50) == base + units * 50
    # A limit that holds the model but not the data names the data, not the layer sizes.
    monkeypatch.setattr(loop, "device_memory_limit", lambda: base + data // 2)
    with pytest.raises(config_lib.ConfigError, match=r"^data.n_train: the .* GiB of data kept"):
        loop.build_experiment(cfg)


def test_depth_study_too_big_for_memory_is_refused_before_allocating(tmp_path, capsys):
    # 1e6 units: 4 TB per hidden matrix. The process was killed by the system mid-allocation
    # (exit 137, no message); now the sweep's weights are sized against the device first.
    line = _depth_usage_error(DEPTH_SMOKE + ["--workdir", str(tmp_path / "w"),
                                             "--set", "widths=[1000000]"],
                              capsys, ["widths/depths", "GiB", "more than the device's"])
    assert "2 seeds x 2 initializers" in line


@pytest.mark.parametrize("overrides, needles", [
    # range(10**11) seeds was a bare MemoryError traceback: sized before they are listed
    (["seeds=100000000000"], ["100000000000 seeds x 2 initializers", "GiB"]),
    # XLA aborted the process (C++ stack, exit 134) making the "normal" set's rows
    (["dataset=normal", "n_samples=10000000000"],
     ["n_samples=10000000000 makes 12500000000 rows", "GiB of memory"]),
])
def test_depth_study_seeds_or_rows_past_the_memory_are_one_line(overrides, needles, tmp_path,
                                                                 capsys):
    argv = DEPTH_SMOKE + ["--workdir", str(tmp_path / "w")]
    for o in overrides:
        argv += ["--set", o]
    _depth_usage_error(argv, capsys, needles)


def test_depth_study_out_of_memory_at_run_time_is_one_line(tmp_path, capsys, monkeypatch):
    import jax

    from jaxnn.studies import depth

    def oom(*args, **kwargs):
        raise jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4000000000 bytes.")

    monkeypatch.setattr(depth, "run_study", oom)
    _depth_usage_error(DEPTH_SMOKE + ["--workdir", str(tmp_path / "w")], capsys,
                       ["out of memory", "widths"])


def test_depth_study_width_past_the_matrix_bound_is_a_config_error(tmp_path, capsys):
    _depth_usage_error(DEPTH_SMOKE + ["--workdir", str(tmp_path / "w"),
                                      "--set", "widths=[99999999999]"],
                       capsys, ["widths: got 99999999999", "2**20"])


@pytest.mark.parametrize("cli", ["train", "depth_study"])
def test_a_workdir_that_is_a_file_is_named(cli, tmp_path, capsys):
    # Was "error: [Errno 17] File exists: '...'" (train.py) or "cannot create it (File
    # exists)" (depth_study.py), which read as if the directory existed.
    run, args = ((train_cli_usage_error, XOR) if cli == "train"
                 else (_depth_usage_error, DEPTH_SMOKE))
    afile = tmp_path / "afile"
    afile.write_text("")
    line = run(args + ["--workdir", str(afile)], capsys,
               ["--workdir", str(afile), "not a directory"])
    assert "Errno" not in line and "File exists" not in line
    # A file further up the path: "[Errno 20] Not a directory" without saying which.
    run(args + ["--workdir", str(afile / "sub")], capsys,
        [str(afile / "sub"), f"{str(afile)!r} is a file"])


def _unwritable_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory this process cannot create anything in (a read-only file system for
    root, whom permission bits do not stop)."""
    import os
    import tempfile

    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir()
        d.chmod(0o500)
        return d
    for d in (pathlib.Path("/sys"), pathlib.Path("/proc")):
        try:
            os.rmdir(tempfile.mkdtemp(dir=d))
        except OSError:
            return d
    pytest.skip("no directory this user cannot write to")


@pytest.mark.parametrize("cli", ["train", "depth_study"])
@pytest.mark.parametrize("where", ["inside", "itself"])
def test_a_workdir_that_cannot_be_written_is_named_before_any_work(cli, where, tmp_path,
                                                                     capsys, monkeypatch):
    # depth_study.py named a --workdir it could not create only once its data had loaded,
    # and one that existed but could not be written into only after the whole study.
    from jaxnn.studies import depth

    ro = _unwritable_dir(tmp_path)
    workdir = ro / "run" if where == "inside" else ro
    monkeypatch.setattr(depth, "load_study_data",
                        lambda *a, **k: pytest.fail("the data was loaded first"))
    run, args = ((train_cli_usage_error, XOR) if cli == "train"
                 else (_depth_usage_error, DEPTH_SMOKE))
    what = f"cannot create it in {str(ro)!r}" if where == "inside" else "cannot write into it"
    run(args + ["--workdir", str(workdir)], capsys, [f"--workdir {str(workdir)!r}", what,
                                                      "choose another --workdir"])
    assert not (ro / "run").exists()


@pytest.mark.parametrize("flag", ["--workdir", "--config"])
def test_an_empty_path_is_refused_not_read_as_not_given(flag, tmp_path, capsys, monkeypatch):
    # --workdir "" (an unset shell variable) trained into runs/xor instead; --config ""
    # was "config file '.' cannot be read: IsADirectoryError".
    monkeypatch.chdir(tmp_path)
    args = XOR + ["--workdir", str(tmp_path / "w")] + [flag, ""]
    line = train_cli_usage_error(args, capsys, [f"{flag} '': an empty path", f"leave {flag} out"])
    assert "'.'" not in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "w").exists()


@pytest.mark.parametrize("status", [0, 2, 130])
def test_exit_with_ends_an_interrupted_script_at_once(tmp_path, status):
    # Ctrl-C during a compile exited 139: after the one-line message, the interpreter's
    # shutdown crashed in XLA (2 of 7 interrupts of compare.py/train.py in the first
    # seconds). After 130 the process now ends at once (no shutdown, no atexit hooks),
    # with its output flushed; other statuses exit normally.
    import subprocess
    import sys

    code = (f"import atexit, sys\nfrom jaxnn.cli import exit_with\n"
            f"atexit.register(lambda: print('shutdown ran'))\n"
            f"print('message', file=sys.stderr, end='')\nsys.stdout.write('out')\n"
            f"exit_with({status})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == status and done.stderr == "message"
    assert done.stdout == ("out" if status == 130 else "outshutdown ran\n")


# Ctrl-C arrives while Python imports {target!r}; then the program starts.
_CTRL_C_DURING_IMPORT = """
import os, runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {target!r}:
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
"""
_START_SCRIPT = """
sys.path.insert(0, {scripts!r})
sys.argv = [{script!r}, '--help']
runpy.run_path({script!r}, run_name='__main__')
"""
# what the installed jaxnn-train wrapper does (pyproject: jaxnn._launch:train)
_START_CONSOLE = """
sys.argv = ['jaxnn-train', '--help']
from jaxnn._launch import train
sys.exit(train())
"""


def _assert_interrupted_while_starting(target: str, start: str) -> None:
    code = _CTRL_C_DURING_IMPORT.format(target=target) + start
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130, done.stderr
    # Nothing was run: not even --help's usage text.
    assert done.stderr == "interrupted while starting: nothing was run\n" and done.stdout == ""


@pytest.mark.parametrize("script", ["train.py", "compare.py", "depth_study.py", "gradcheck.py",
                                    "bench.py"])
@pytest.mark.parametrize("target", ["numpy", "jax", "jaxnn.cli"])
def test_ctrl_c_while_a_script_imports_is_one_line_and_status_130(script, target):
    # Importing jaxnn and JAX takes seconds; Ctrl-C then printed a traceback, often two
    # (numpy or jaxlib interrupted in a C extension's initialization raise an ImportError).
    path = REPO / "scripts" / script
    _assert_interrupted_while_starting(
        target, _START_SCRIPT.format(scripts=str(path.parent), script=str(path)))


@pytest.mark.parametrize("target", ["numpy", "jax", "jaxnn.cli", "jaxnn.train"])
def test_ctrl_c_while_the_console_script_imports_is_one_line_and_status_130(target):
    _assert_interrupted_while_starting(target, _START_CONSOLE)


@pytest.mark.parametrize("target", ["numpy", "jax", "jaxnn.train"])
def test_a_console_script_of_an_older_install_is_guarded_too(target):
    # Installed before the launcher, the wrapper names jaxnn.cli:train_entry: it imports
    # jaxnn.cli itself (light), and everything heavy is then imported under the guard.
    start = _START_CONSOLE.replace("from jaxnn._launch import train",
                                   "from jaxnn.cli import train_entry as train")
    _assert_interrupted_while_starting(target, start)


def test_the_console_script_is_the_guarded_launcher_and_import_jaxnn_loads_no_jax():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"jaxnn-train": "jaxnn._launch:train"}
    # The guard can only catch what is imported after it: ``import jaxnn`` and the launcher
    # must not import JAX (the package's names load on first use).
    code = ("import sys, jaxnn, jaxnn._launch; heavy = [m for m in ('jax', 'numpy', 'optax', "
            "'flax') if m in sys.modules]; print(heavy); import jaxnn as j; "
            "print(j.MLPConfig.__module__, j.mlp.__name__, j.check_gradients.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "jaxnn.mlp jaxnn.mlp jaxnn.gradcheck"]


def test_the_package_names_load_on_first_use_and_unknown_ones_fail():
    import jaxnn

    names = {}
    exec("from jaxnn import *", names)
    assert set(jaxnn.__all__) <= set(names) and set(jaxnn.__all__) <= set(dir(jaxnn))
    assert names["train_and_evaluate"] is jaxnn.train.train_and_evaluate
    with pytest.raises(AttributeError, match="module 'jaxnn' has no attribute 'mlpp'"):
        jaxnn.mlpp  # noqa: B018


def test_a_script_that_fails_to_import_still_shows_the_error():
    # Only a Ctrl-C is turned into the one line: a real import failure keeps its traceback.
    code = ("import runpy, sys; sys.path.insert(0, {d!r}); sys.modules['jaxnn.gradcheck'] = None;"
            " sys.argv = ['gradcheck.py']; runpy.run_path({s!r}, run_name='__main__')").format(
        d=str(REPO / "scripts"), s=str(REPO / "scripts" / "gradcheck.py"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr


def test_every_command_line_suggests_the_config_file_meant(tmp_path, capsys):
    # The suggestion lives in config.read_yaml, which the depth study (and gradcheck,
    # compare.py) read their --config with, not only train.py.
    (tmp_path / "depth_smoke.yaml").write_text((REPO / "configs" / "depth_smoke.yaml").read_text())
    line = _depth_usage_error(["--config", str(tmp_path / "depth_smok.yaml")], capsys,
                              ["does not exist"])
    assert line.endswith(f"(did you mean {str(tmp_path / 'depth_smoke.yaml')!r}?)")


def test_activation_kwargs_errors_show_the_setting_as_written(tmp_path, capsys):
    """model.activation_kwargs is a mapping in the config; errors showed the internal
    tuple form (activation_kwargs=(('bogus', 1.0),))."""
    for sets, needles in (
        (["model.hidden_activation=elu", "model.activation_kwargs.bogus=1"],
         ["activation_kwargs={'bogus': 1.0}", "allowed: alpha"]),
        (["model.hidden_activation=maxout", "model.activation_kwargs.alpha=1"],
         ["must be empty for hidden_activation='maxout'", "got {'alpha': 1.0}"]),
    ):
        argv = XOR + ["--workdir", str(tmp_path / "w")]
        for s in sets:
            argv += ["--set", s]
        line = train_cli_usage_error(argv, capsys, needles)
        assert "((" not in line, line


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_config_file_is_refused_by_every_command_line(text, tmp_path, capsys):
    # train.py refused it; compare.py and depth_study.py ran their defaults without a word
    # (depth_study.py a whole default study into the folder).
    from jaxnn.studies import craft

    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    needle = f"config file {str(empty)!r} holds no settings"
    train_cli_usage_error(["--config", str(empty), "--workdir", str(tmp_path / "t")], capsys,
                          [needle, "a training config"])
    _depth_usage_error(["--config", str(empty), "--workdir", str(tmp_path / "d")], capsys,
                       [needle, "a depth-study config"])
    assert craft.main(["surface", "--config", str(empty),
                       "--workdir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {needle}") and "surface experiment" in err, err
    assert not any((tmp_path / d).exists() for d in "tdc")


def test_empty_paths_and_a_file_to_resume_are_named(tmp_path, capsys, monkeypatch):
    # depth_study.py read an empty --workdir (an unset shell variable) as "not given" and
    # wrote into runs/<config name>; --report-from '' said "'.' holds no finished depth
    # study"; train.py --resume --workdir <a file> said its config.yaml did not exist.
    monkeypatch.chdir(tmp_path)
    for argv, needle in (
            (DEPTH_SMOKE + ["--workdir", ""], "--workdir '': an empty path"),
            (["--config", "", "--quiet"], "--config '': an empty path"),
            (["--report-from", ""], "--report-from '': an empty path"),
            (["--report-from", str(tmp_path), "--workdir", " "], "--workdir ' ': an empty path")):
        _depth_usage_error(argv, capsys, [needle])
    assert not (tmp_path / "runs").exists()
    run = tmp_path / "afile"
    run.write_text("")
    train_cli_usage_error(["--resume", "--workdir", str(run)], capsys,
                          [f"--workdir {str(run)!r} is a file, not a run directory"])
