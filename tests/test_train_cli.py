"""The training command line end to end: every shipped config on a reduced size, the
bad-input table (exit 2, one line, no traceback), divergence (exit 3), a real SIGKILL
followed by ``--resume``, and data parallelism on 4 simulated CPU devices."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import flax.serialization
import numpy as np
import pytest
from conftest import train_cli_usage_error

from jaxnn import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
QUIET = ["--quiet", "--set", "logging.plots=false"]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **extra)
    return env


def _params(workdir: pathlib.Path):
    return flax.serialization.msgpack_restore((workdir / "params.msgpack").read_bytes())


def _final(workdir: pathlib.Path) -> dict:
    return json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])


# ----------------------------------------------------------------------------- every config

# Each shipped training config, cut down so that it runs in seconds: (config, overrides,
# a check on the last metrics row, needs the shared data).
REDUCED = {
    "default": (["training.epochs=4"],
                lambda r: r["test_accuracy"] > 0.85, None),
    "xor": ([], lambda r: r["test_accuracy"] == 1.0, None),
    "spirals": (["training.epochs=40"], lambda r: r["test_accuracy"] > 0.7, None),
    "sine_regression": (["training.epochs=60"], lambda r: r["test_loss"] < 0.1, None),
    "fashion_mnist": (["training.epochs=2", "data.n_train=6000", "data.n_test=2000"],
                      lambda r: r["test_accuracy"] > 0.75, "fashion-mnist"),
    "mnist": (["training.epochs=2", "data.options.split=test"],
              lambda r: r["test_accuracy"] > 0.85, "mnist"),
}


def test_every_training_config_is_covered():
    shipped = {p.stem for p in CONFIGS.glob("*.yaml")
               if not p.name.startswith(("depth_", "activation_", "compare_"))}
    assert shipped == set(REDUCED)


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_cli_runs_each_config_reduced(name, tmp_path, request):
    overrides, check, data = REDUCED[name]
    argv = ["--config", str(CONFIGS / f"{name}.yaml"), "--workdir", str(tmp_path / name)]
    if data is not None:
        shared = request.getfixturevalue("shared_data_dir")
        if not (shared / data).is_dir():
            pytest.skip(f"{shared / data} is not present")
        argv += ["--data-dir", str(shared / data)]
    for o in overrides:
        argv += ["--set", o]
    assert cli.train_main(argv + QUIET) == 0
    run = tmp_path / name
    for f in ("config.yaml", "metrics.jsonl", "metrics.csv", "history.json", "params.msgpack"):
        assert (run / f).is_file(), f
    assert list((run / "checkpoints").glob("ckpt_*.jaxnn"))
    row = _final(run)
    assert check(row), row


def test_script_and_console_entry_point_run_the_default_job(tmp_path):
    """A real process: progress, per-epoch lines, run directory with plots."""
    run = tmp_path / "script"
    p = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--workdir", str(run),
         "--set", "training.epochs=2", "--set", "data.n_train=400"],
        capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "epoch 2/2" in p.stdout + p.stderr and "test_accuracy" in p.stdout + p.stderr
    assert f"run directory: {run}" in p.stderr
    assert (run / "loss.png").stat().st_size > 1000 and (run / "accuracy.png").is_file()
    console = shutil.which("jaxnn-train", path=str(pathlib.Path(sys.executable).parent))
    if console is None:
        pytest.skip("the jaxnn-train console script is not installed (pip install -e .)")
    p = subprocess.run([console, "--help"], capture_output=True, text=True, env=_env(),
                       timeout=120)
    assert p.returncode == 0 and "--resume" in p.stdout
    # with no --workdir the run lands in runs/default, then runs/default-2: never overwritten
    for expected in ("runs/default", "runs/default-2"):
        p = subprocess.run([console, "--set", "training.epochs=1", "--set", "data.n_train=200",
                            "--set", "logging.plots=false"],
                           capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert f"run directory: {expected}" in p.stderr
        assert (tmp_path / expected / "params.msgpack").is_file()


# ----------------------------------------------------------------------------- bad input


def _unreadable_yaml(tmp: pathlib.Path) -> str:
    p = tmp / "broken.yaml"
    p.write_text("model:\n  hidden_sizes: [64, 32\n  hidden_activation: relu\n")
    return str(p)


def _list_yaml(tmp: pathlib.Path) -> str:
    p = tmp / "list.yaml"
    p.write_text("- 1\n- 2\n")
    return str(p)


# (argv builder, words the single line must contain)
BAD = {
    "unknown key": (lambda t: ["--set", "model.hiden_sizes=[8]"], ["hiden_sizes", "hidden_sizes"]),
    "unknown section": (lambda t: ["--set", "trainign.epochs=2"], ["trainign", "training"]),
    "misspelled activation": (lambda t: ["--set", "model.hidden_activation=rleu"],
                              ["rleu", "relu"]),
    "misspelled optimizer": (lambda t: ["--set", "optimizer.name=adma"], ["adma", "adam"]),
    "negative learning rate": (lambda t: ["--set", "optimizer.learning_rate=-0.1"],
                               ["optimizer.learning_rate", "-0.1"]),
    "batch size 0": (lambda t: ["--set", "training.batch_size=0"], ["training.batch_size", "0"]),
    "wrong type": (lambda t: ["--set", "training.epochs=many"], ["training.epochs", "many"]),
    "override without =": (lambda t: ["--set", "training.epochs"], ["training.epochs"]),
    # a space for the "=": argparse took "5" for a stray argument and said only that
    "override split at a space": (lambda t: ["--set", "training.epochs", "5"],
                                  ["unrecognized arguments: 5", "--set training.epochs=5"]),
    "missing data dir": (lambda t: ["--config", str(CONFIGS / "fashion_mnist.yaml"),
                                    "--data-dir", str(t / "no-such-dir")], ["no-such-dir"]),
    "missing config file": (lambda t: ["--config", str(t / "nope.yaml")], ["nope.yaml"]),
    "unreadable yaml": (lambda t: ["--config", _unreadable_yaml(t)], ["broken.yaml"]),
    "yaml not a mapping": (lambda t: ["--config", _list_yaml(t)], ["list.yaml"]),
    "resume without workdir": (lambda t: ["--resume"], ["--resume", "--workdir"]),
    "resume of nothing": (lambda t: ["--resume", "--workdir", str(t / "empty")], ["resume"]),
    "too many devices": (lambda t: ["--devices", "64"], ["training.devices", "64"]),
    "unknown flag": (lambda t: ["--epochs", "3"], ["--epochs"]),
    # numpy's bare MemoryError traceback (36 TiB), or the process killed mid-generation
    "synthetic set past the memory": (
        lambda t: ["--config", str(CONFIGS / "spirals.yaml"),
                   "--set", "data.options.n_samples=10000000000000"],
        ["spirals", "n_samples=10000000000000", "GiB of memory", "use a smaller n_samples"]),
    "xor repeats past the memory": (
        lambda t: ["--config", str(CONFIGS / "xor.yaml"),
                   "--set", "data.options.repeats=1000000000"],
        ["xor", "repeats=1000000000", "GiB"]),
    # it trained until killed, the int32 step count wrapping after 2**31 updates
    "epochs past the step count": (lambda t: ["--set", "training.epochs=99999999999999999999"],
                                   ["training.epochs", "99999999999999999999", "2**31 - 1",
                                    "expected at most 97612893 epochs"]),  # 22 steps each
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, words = BAD[case]
    argv = build(tmp_path)
    if "--workdir" not in argv and "--resume" not in argv:
        argv += ["--workdir", str(tmp_path / "w")]
    train_cli_usage_error(argv, capsys, words)
    assert not (tmp_path / "w" / "checkpoints").exists()  # failed before any training


@pytest.mark.parametrize("given, suggested", [
    ("configs/xorr.yaml", "configs/xor.yaml"),   # a typo
    ("xor", "configs/xor.yaml"),                 # the name alone
    ("configs/spirals", "configs/spirals.yaml"),  # no suffix
])
def test_a_misspelled_config_name_suggests_the_file(given, suggested, tmp_path, capsys,
                                                    monkeypatch):
    # "config file 'xor' does not exist" named no file that does.
    (tmp_path / "configs").mkdir()
    for name in ("xor", "spirals", "default"):
        shutil.copy(CONFIGS / f"{name}.yaml", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    train_cli_usage_error(["--config", given], capsys,
                          [repr(given), "does not exist", f"did you mean {suggested!r}?"])
    assert not (tmp_path / "runs").exists()


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, str(TRAIN_SCRIPT), "--set", "model.hidden_activation=rleu"],
                       capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ")
    assert "Traceback" not in p.stderr and "relu" in p.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "data_dir", ["/data/mnist #2", "2024", "null", "yes", "[x]", "a: b", "/données/ü"]
)
def test_data_dir_reaches_the_config_verbatim(data_dir, monkeypatch):
    # A path, not YAML: "#2" is no comment, "2024" no number, "null" no null.
    import jaxnn.train

    seen = {}
    monkeypatch.setattr(jaxnn.train, "train_and_evaluate",
                        lambda cfg, workdir, resume, quiet: seen.setdefault("cfg", cfg))
    assert cli.train_main(["--data-dir", data_dir, "--workdir", "unused", "--quiet"]) == 0
    assert seen["cfg"].data.data_dir == data_dir


@pytest.mark.parametrize("dataset, warned", [("digits", True), ("xor", True),
                                             ("fashion_mnist", False), ("mnist", False)])
def test_data_dir_for_a_data_set_without_files_is_warned_about(dataset, warned, monkeypatch,
                                                              capsys):
    # It was ignored without a word: a user who meant --set data.name=mnist trained digits.
    import jaxnn.train

    monkeypatch.setattr(jaxnn.train, "train_and_evaluate",
                        lambda cfg, workdir, resume, quiet: None)
    assert cli.train_main(["--set", f"data.name={dataset}", "--data-dir", "/some/idx",
                           "--workdir", "unused", "--quiet"]) == 0
    err = capsys.readouterr().err
    if warned:
        assert err == (f"warning: data.data_dir='/some/idx' is ignored: the '{dataset}' data "
                       "set reads no files (only fashion_mnist and mnist do)\n")
    else:
        assert err == ""


@pytest.mark.parametrize("sets, warned", [
    (["training.early_stopping.enabled=true", "training.early_stopping.monitor=test_loss"],
     ["training.early_stopping.monitor='test_loss' lets the test set choose the stopping "
      "epoch"]),
    (["training.reduce_on_plateau.enabled=true",
      "training.reduce_on_plateau.monitor=test_accuracy", "training.reduce_on_plateau.mode=max"],
     ["training.reduce_on_plateau.monitor='test_accuracy' lets the test set choose the "
      "learning-rate cuts"]),
    (["training.early_stopping.enabled=false", "training.early_stopping.monitor=test_loss"], []),
    (["training.early_stopping.enabled=true", "training.early_stopping.monitor=loss"], []),
])
def test_monitoring_a_test_metric_is_warned_about(sets, warned, monkeypatch, capsys):
    import jaxnn.train

    monkeypatch.setattr(jaxnn.train, "train_and_evaluate",
                        lambda cfg, workdir, resume, quiet: None)
    args = [a for item in sets for a in ("--set", item)]
    assert cli.train_main([*args, "--workdir", "unused", "--quiet"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(warned)
    for line, start in zip(lines, warned, strict=True):
        assert line.startswith(f"warning: {start}") and "val_" in line


def test_warnings_do_not_start_jax_before_the_distributed_runtime(tmp_path):
    # The warnings asked jax.process_index() whether to print, which started JAX's backend:
    # jax.distributed.initialize then refused, and a coordinated run with a warning died.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", "1", "--process-id", "0", "--set", "data.name=xor",
         "--data-dir", "/some/idx", "--set", "training.epochs=1", "--set",
         "training.early_stopping.enabled=true", "--set",
         "training.early_stopping.monitor=test_loss", "--quiet", "--workdir",
         str(tmp_path / "run")],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0].startswith("warning: data.data_dir='/some/idx' is ignored")
    assert lines[1].startswith("warning: training.early_stopping.monitor='test_loss'")
    assert (tmp_path / "run" / "history.json").exists()


def test_ctrl_c_suggests_resume_only_when_there_is_a_checkpoint(tmp_path, capsys, monkeypatch):
    import jaxnn.train

    def interrupted(cfg, workdir, resume, quiet):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxnn.train, "train_and_evaluate", interrupted)
    run = tmp_path / "run"
    # Before the first checkpoint (data loading, compiling, epoch 1): --resume would fail.
    assert cli.train_main(["--workdir", str(run), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "--resume" not in err and "no checkpoint" in err
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt_000001.jaxnn").write_bytes(b"")
    assert cli.train_main(["--workdir", str(run), "--quiet"]) == 130
    assert f"--workdir {run} --resume" in capsys.readouterr().err


def test_nan_loss_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["--workdir", str(run), "--set", "data.n_train=300", "--set", "optimizer.name=sgd",
            *QUIET]
    assert cli.train_main(base + ["--set", "training.epochs=1"]) == 0
    good = (run / "checkpoints" / "ckpt_000001.jaxnn").read_bytes()
    capsys.readouterr()
    code = cli.train_main(["--workdir", str(run), "--resume", "--quiet",
                           "--set", "training.epochs=3", "--set", "optimizer.learning_rate=1e12"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1 and err[0].startswith("error: ") and "learning rate" in err[0]
    assert "step" in err[0] and "ckpt_000001" in err[0]
    assert (run / "checkpoints" / "ckpt_000001.jaxnn").read_bytes() == good


def test_quiet_resume_prints_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["--workdir", str(run), "--set", "data.n_train=300", *QUIET]
    assert cli.train_main(base + ["--set", "training.epochs=1"]) == 0
    assert capsys.readouterr() == ("", "")
    assert cli.train_main(["--workdir", str(run), "--resume", "--quiet",
                           "--set", "training.epochs=2"]) == 0
    assert capsys.readouterr() == ("", "")  # "resumed from ..." was printed regardless
    # --quiet belongs to the invocation, not to the run: it is not saved in config.yaml, so
    # a resume without it prints again (it printed nothing: print_every 0 had been saved).
    saved = (run / "config.yaml").read_text()
    assert "print_every: 0" not in saved and "progress: false" not in saved
    assert cli.train_main(["--workdir", str(run), "--resume", "--set", "training.epochs=3",
                           "--set", "logging.progress=false"]) == 0
    out = capsys.readouterr().out
    assert "resumed from " in out and "(epoch 2)" in out and "epoch 3/3" in out


def test_divergence_after_a_resume_past_a_corrupt_leftover_names_the_restored_checkpoint(
        tmp_path, capsys):
    # Epochs 1-2 written; a corrupt ckpt_000005 is left over (a resume skips it). The
    # divergence message named the newest file on disk -- the unreadable one.
    run = tmp_path / "run"
    base = ["--workdir", str(run), "--set", "data.n_train=300", "--set", "optimizer.name=sgd",
            "--set", "training.keep_checkpoints=5", *QUIET]
    assert cli.train_main(base + ["--set", "training.epochs=2"]) == 0
    (run / "checkpoints" / "ckpt_000005.jaxnn").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    code = cli.train_main(["--workdir", str(run), "--resume", "--quiet",
                           "--set", "training.epochs=4", "--set", "optimizer.learning_rate=1e12"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[0].startswith("warning: skipped") and "ckpt_000005" in err[0]
    assert err[-1].startswith("error: ") and "ckpt_000002.jaxnn" in err[-1], err
    assert "ckpt_000005" not in err[-1]


# ----------------------------------------------------------------------------- kill and resume

KILL_JOB = ["--set", "model.hidden_sizes=[512,512]", "--set", "training.batch_size=2",
            "--set", "training.epochs=5", "--set", "training.keep_checkpoints=10",
            "--set", "model.dropout_rate=0.1", "--set", "logging.plots=false", "--quiet"]


def test_sigkill_mid_epoch_then_resume_ends_bit_identical(tmp_path):
    """A real ``kill -9`` during epoch 3 of 5; ``--resume`` must end with exactly the
    parameters of the uninterrupted run (same seed, same process setup)."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    cmd = [sys.executable, str(TRAIN_SCRIPT), *KILL_JOB]
    p = subprocess.run(cmd + ["--workdir", str(full)], capture_output=True, text=True,
                       env=_env(), timeout=400)
    assert p.returncode == 0, p.stderr

    proc = subprocess.Popen(cmd + ["--workdir", str(killed)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoints" / "ckpt_000002.jaxnn").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no second checkpoint in time"
            time.sleep(0.02)
        time.sleep(0.1)  # well inside epoch 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "params.msgpack").exists()  # the run did not finish
    assert not (killed / "checkpoints" / "ckpt_000005.jaxnn").exists()
    # No half-written file is left where a checkpoint should be.
    for f in (killed / "checkpoints").iterdir():
        assert f.name.startswith(("ckpt_", "best")) and f.suffix == ".jaxnn", f.name

    p = subprocess.run([sys.executable, str(TRAIN_SCRIPT), "--workdir", str(killed), "--resume",
                        "--quiet"], capture_output=True, text=True, env=_env(), timeout=400)
    assert p.returncode == 0, p.stderr
    assert (killed / "params.msgpack").read_bytes() == (full / "params.msgpack").read_bytes()
    rows_full = (full / "metrics.jsonl").read_text().splitlines()
    rows_resumed = (killed / "metrics.jsonl").read_text().splitlines()
    assert len(rows_resumed) == 5
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "time_s"}
                          for r in rows]
    assert strip(rows_resumed) == strip(rows_full)


# ----------------------------------------------------------------------------- devices

DEVICES_DRIVER = textwrap.dedent("""
    import sys, jax, flax.serialization, numpy as np
    from jaxnn import config, train
    assert jax.device_count() == 4, jax.devices()
    # A batch that does not split over the devices is refused, naming the size asked for
    # (also when it was clamped to the 50 training rows).
    # So is a kept remainder that does not (50 = 3 x 16 + 2).
    for bs, more, want in (
            (30, "", "training.batch_size: 30 is not divisible by the 4 devices"),
            (64, "", "training.batch_size: 64 is larger than the 50 training rows"),
            (16, "training.drop_remainder=false",
             "training.drop_remainder: false makes a last batch of the 2 rows left over")):
        cfg = config.load(None, [f"training.batch_size={bs}", "data.n_train=50",
                                 "training.devices=4", "logging.progress=false",
                                 *more.split()])
        try:
            train.train_and_evaluate(cfg, f"{sys.argv[1]}/bad{bs}")
        except config.ConfigError as e:
            assert want in str(e), e
        else:
            raise AssertionError(f"batch_size={bs} {more} was accepted on 4 devices")
    # The library epoch says the same at trace time.
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    rows = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data"))
    epoch = train.make_train_epoch(lambda st, x, y: (st + x.sum(), {"loss": x.sum()}), 16,
                                   batch_sharding=rows, drop_remainder=False)
    epoch(jax.numpy.zeros(()), np.ones((52, 3)), np.ones(52), jax.random.PRNGKey(0))
    try:
        epoch(jax.numpy.zeros(()), np.ones((50, 3)), np.ones(50), jax.random.PRNGKey(0))
    except ValueError as e:
        assert "a batch of 2 rows does not split over the devices" in str(e), e
    else:
        raise AssertionError("a last batch of 2 rows was sharded over 4 devices")
    for model in sys.argv[2:]:
        for n in (1, 4):
            cfg = config.load(None, ["training.epochs=2", "data.n_train=640",
                                     "training.batch_size=64", f"training.devices={n}",
                                     "logging.progress=false", "logging.print_every=0",
                                     "logging.plots=false", *model.split()])
            train.train_and_evaluate(cfg, f"{sys.argv[1]}/{model.split()[0]}/d{n}")
""")
# Dropout: the mask is drawn from the same key for the whole global batch. Batch norm:
# statistics over the global batch; with a hidden bias in front of it (use_bias=true) the
# bias gradient is rounding noise that Adam scales up, so it runs with use_bias=auto.
DEVICE_MODELS = ["model.dropout_rate=0.1", "model.batch_norm=true model.use_bias=auto",
                 # 648 rows: 10 batches of 64 and a kept last batch of 8 (2 per device)
                 "training.drop_remainder=false data.n_train=648"]


def test_four_simulated_cpu_devices_match_one_device(tmp_path):
    p = subprocess.run(
        [sys.executable, "-c", DEVICES_DRIVER, str(tmp_path), *DEVICE_MODELS],
        capture_output=True, text=True,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"), timeout=400)
    assert p.returncode == 0, p.stderr
    flat = lambda t: np.concatenate(
        [np.ravel(x) for x in __import__("jax").tree_util.tree_leaves(t)])
    for model in DEVICE_MODELS:
        run = tmp_path / model.split()[0]
        one, four = _params(run / "d1"), _params(run / "d4")
        np.testing.assert_allclose(flat(four), flat(one), rtol=2e-4, atol=2e-5, err_msg=model)
        r1, r4 = _final(run / "d1"), _final(run / "d4")
        assert r1["test_accuracy"] == pytest.approx(r4["test_accuracy"], abs=0.01), model
        assert r1["test_accuracy"] > 0.3, model  # it learned (digits: 10 classes, 20 steps)



PLATEAU_DRIVER = textwrap.dedent("""
    import sys, jax
    from jaxnn import config
    from jaxnn.train import loop as loop_lib
    assert jax.device_count() == 2, jax.devices()
    traces = []
    real = loop_lib.make_train_step
    def counting(loss_fn, *a, **k):
        def counted(*args):
            traces.append(1)
            return loss_fn(*args)
        return real(counted, *a, **k)
    loop_lib.make_train_step = counting
    cfg = config.load(None, ["training.epochs=4", "data.n_train=300", "training.devices=2",
                             "training.batch_size=32", "data.validation_fraction=0.2",
                             "training.reduce_on_plateau.enabled=true",
                             "logging.progress=false", "logging.print_every=0",
                             "logging.plots=false"])
    h = loop_lib.train_and_evaluate(cfg, sys.argv[1])
    assert len(h.rows) == 4
    print(len(traces))
""")


def test_reduce_on_plateau_on_two_devices_compiles_the_epoch_once(tmp_path):
    # The plateau's new lr_scale went back unplaced while the rest of the state was
    # replicated over the devices: the epoch compiled a second time after epoch 1.
    p = subprocess.run([sys.executable, "-c", PLATEAU_DRIVER, str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=400,
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-1] == "1"
