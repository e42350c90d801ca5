"""Checkpoints as resumes use them: damaged files set aside once, and resumes that are
refused leaving the run directory as it was (``jaxnn.train.checkpoint``, ``jaxnn.train.loop``)."""

import math
import pathlib
import re

import flax.serialization
import numpy as np
import pytest

from jaxnn import config as C
from jaxnn.config import ConfigError
from jaxnn.train import (
    CheckpointError,
    CheckpointManager,
    read_checkpoint,
    train_and_evaluate,
)
from jaxnn.train import checkpoint as checkpoint_lib
from jaxnn.train.checkpoint import read_metadata, write_checkpoint

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
QUIET = ["logging.progress=false", "logging.print_every=0", "logging.plots=false"]
# XOR in a few seconds, a numbered checkpoint every second epoch, the last two kept.
XOR = ("training.epochs=10", "training.checkpoint_every=2", "training.keep_checkpoints=2")


def _xor(*overrides):
    return C.load(CONFIGS / "xor.yaml", [*QUIET, *XOR, *overrides])


def _resume(run, *overrides):
    return train_and_evaluate(C.load(run / "config.yaml", list(overrides)), run, resume=True)


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])  # torn, as by a disk that lost its tail


def test_a_damaged_checkpoint_is_set_aside_once_and_not_counted_as_a_kept_one(tmp_path,
                                                                               capsys):
    # Left under its name, a truncated ckpt_000010 was skipped (and warned about) at every
    # resume, and pruning counted it as one of the two kept: after epoch 12 the only good
    # checkpoint left was ckpt_000012.
    run = tmp_path / "run"
    train_and_evaluate(_xor(), run)
    ckpts = run / "checkpoints"
    _truncate(ckpts / "ckpt_000010.jaxnn")
    capsys.readouterr()
    with pytest.raises(ConfigError, match="training.seed"):  # a refused resume: untouched
        _resume(run, "training.epochs=9", "training.seed=1")
    assert "ckpt_000010.jaxnn" in _names(ckpts)
    capsys.readouterr()
    _resume(run, "training.epochs=9")  # falls back to epoch 8, trains 9
    err = capsys.readouterr().err
    assert "skipped checkpoint" in err and "ckpt_000010.jaxnn' is truncated" in err
    assert "set the unreadable ckpt_000010.jaxnn aside as ckpt_000010.jaxnn.unreadable" in err
    assert _names(ckpts) == ["best.jaxnn", "ckpt_000008.jaxnn", "ckpt_000009.jaxnn",
                             "ckpt_000010.jaxnn.unreadable"]
    h = _resume(run, "training.epochs=12", "training.checkpoint_every=3")
    assert capsys.readouterr().err == ""  # warned once, not at every resume
    assert _names(ckpts) == ["best.jaxnn", "ckpt_000009.jaxnn",
                             "ckpt_000010.jaxnn.unreadable", "ckpt_000012.jaxnn"]
    # and the run still ends exactly where an uninterrupted one does
    full = train_and_evaluate(_xor("training.epochs=12"), tmp_path / "full")
    assert (run / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()
    assert h.final == full.final


def test_set_aside_unreadable_moves_only_damaged_files_above_the_restored_epoch(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=10)
    for e in range(1, 6):
        mgr.save(e, {"x": np.full(3, e, np.float32)}, {"epoch": e})
    _truncate(mgr.path(2))  # below the restored epoch: not this resume's business
    _truncate(mgr.path(4))
    mgr.path(5).write_bytes(b"JAXNNCK1" + bytes(40))  # no payload, a wrong checksum
    (tmp_path / "ckpt_000004.jaxnn.unreadable").write_bytes(b"set aside by an earlier resume")
    moved = mgr.set_aside_unreadable(after=3)
    assert [(a.name, b.name) for a, b in moved] == [
        ("ckpt_000004.jaxnn", "ckpt_000004.jaxnn.unreadable-2"),
        ("ckpt_000005.jaxnn", "ckpt_000005.jaxnn.unreadable")]
    assert mgr.epochs() == [1, 2, 3]
    assert (tmp_path / "ckpt_000004.jaxnn.unreadable").read_bytes() == \
        b"set aside by an earlier resume"  # never overwritten


def test_a_whole_checkpoint_of_another_state_is_never_set_aside(tmp_path):
    # A checkpoint that does not fit this run's state (a changed config) is whole: another
    # config reads it. Only damaged bytes are set aside.
    mgr = CheckpointManager(tmp_path, keep=10)
    mgr.save(1, {"x": np.zeros(3, np.float32)}, {"epoch": 1})
    mgr.save(2, {"x": np.zeros(3, np.float32), "y": np.zeros(2, np.float32)}, {"epoch": 2})
    tree, meta, path, problems = mgr.restore_latest({"x": np.zeros(3, np.float32)})
    assert meta["epoch"] == 1 and "does not match" in problems[0]
    assert mgr.set_aside_unreadable(after=1) == []
    assert mgr.epochs() == [1, 2]


@pytest.mark.parametrize("content, damaged", [
    (None, False),  # missing
    (b"", True),
    (b"junk" * 20, True),
])
def test_checkpoint_errors_say_whether_the_file_itself_is_damaged(tmp_path, content, damaged):
    mgr = CheckpointManager(tmp_path)
    if content is not None:
        mgr.path(1).write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(mgr.path(1), {"x": np.zeros(3, np.float32)})
    assert e.value.damaged is damaged


def test_a_resume_refused_for_too_few_epochs_leaves_a_changed_log_in_place(tmp_path, capsys):
    # The refusal came after the changed metrics.jsonl had been renamed (and a warning that
    # "training resumes exactly" printed): the next resume found no log at all.
    run = tmp_path / "run"
    train_and_evaluate(_xor(), run)
    log = run / "metrics.jsonl"
    log.write_text(log.read_text().replace('"epoch": 1,', '"epoch": 1 ,', 1))
    edited = log.read_bytes()
    capsys.readouterr()
    with pytest.raises(ConfigError, match=r"training.epochs: got 5.*>= 10"):
        _resume(run, "training.epochs=5")
    assert "lost" not in capsys.readouterr().err
    assert log.read_bytes() == edited
    assert not list(run.glob("*.unmatched*"))


@pytest.mark.parametrize("monitor, split, expected", [
    # A split is made: a typo, not a missing split (it said to set validation_fraction).
    ("val_los", "0.25", r"'val_los' is not a logged metric \(did you mean 'val_loss'\?\)"),
    ("val_los", "0", r"'val_los' is not a logged metric \(set data\.validation_fraction > 0"),
    ("tset_accuracy", "0", r"\(did you mean 'test_accuracy'\?\)"),
])
def test_an_early_stopping_monitor_that_is_not_logged_gets_the_right_hint(tmp_path, monitor,
                                                                          split, expected):
    cfg = _xor("training.early_stopping.enabled=true", f"training.early_stopping.monitor={monitor}",
               f"data.validation_fraction={split}")
    with pytest.raises(ConfigError, match=expected) as e:
        train_and_evaluate(cfg, tmp_path / "run")
    assert split == "0" or "validation_fraction" not in str(e.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_more_epochs_at_a_resume_warns_when_the_schedule_length_follows_them(tmp_path, capsys):
    # decay_steps defaults to the run's steps: resumed with more epochs, the cosine was
    # silently stretched and the learning rate jumped from ~0 back up (a warm restart).
    run = tmp_path / "run"
    train_and_evaluate(_xor("schedule.name=cosine_decay_schedule"), run)
    capsys.readouterr()
    h = _resume(run, "training.epochs=12")
    err = capsys.readouterr().err
    assert ("cosine_decay_schedule schedule's decay_steps follows training.epochs, which this "
            "resume changes from 10 to 12") in err
    assert "--set schedule.epoch_options.decay_steps=10" in err
    lrs = h.metric("learning_rate")
    assert lrs[10] > lrs[9]  # the jump the warning names
    # As the warning says: the run's own schedule goes on (at 0, where it ended), no warning.
    again = tmp_path / "again"
    train_and_evaluate(_xor("schedule.name=cosine_decay_schedule"), again)
    capsys.readouterr()
    h = _resume(again, "training.epochs=12", "schedule.epoch_options.decay_steps=10")
    assert "warning" not in capsys.readouterr().err
    assert h.metric("learning_rate")[10:] == [0.0, 0.0]
    # A constant learning rate has no length to stretch.
    plain = tmp_path / "plain"
    train_and_evaluate(_xor(), plain)
    capsys.readouterr()
    _resume(plain, "training.epochs=12")
    assert "warning" not in capsys.readouterr().err


def test_the_stretch_warning_tells_the_runs_own_rate_when_the_resume_changes_it_too(
        tmp_path, capsys):
    # With the learning rate changed as well, the warning's "jumps from X" was the new
    # rate on the old length, a rate the run never had.
    run = tmp_path / "run"  # alpha: a cosine that ends at half its rate, not at 0
    train_and_evaluate(_xor("schedule.name=cosine_decay_schedule",
                            "schedule.options.alpha=0.5"), run)
    lr = C.load(run / "config.yaml").optimizer.learning_rate
    capsys.readouterr()
    h = _resume(run, "training.epochs=12", f"optimizer.learning_rate={lr / 2}")
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "follows training.epochs" in x)
    step = int(re.search(r"at step (\d+)", line).group(1))
    steps_per_epoch = step // 10
    cosine = lambda base, total: base * (
        0.5 + 0.5 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    run_rate, new_rate = cosine(lr, 10 * steps_per_epoch), cosine(lr / 2, 12 * steps_per_epoch)
    assert f"is {new_rate:.4g} instead of {cosine(lr / 2, 10 * steps_per_epoch):.4g}" in line
    assert f"(the run itself was at {run_rate:.4g}: this resume changes the learning rate too)" \
        in line
    assert "--set schedule.epoch_options.decay_steps=10" in line
    assert len(h.metric("learning_rate")) == 12


def test_a_resume_lengthening_the_warm_up_past_the_old_length_is_not_refused(tmp_path, capsys):
    # The stretch warning built the schedule at the run's old length too: with a warm-up
    # now longer than that (decay_steps must exceed warmup_steps), the valid resume stopped
    # with "decay_steps=16 and warmup_steps=24", the lengths of a schedule no run had.
    run = tmp_path / "run"
    sched = ("schedule.name=warmup_cosine_decay_schedule", "schedule.options.init_value=0.0",
             "schedule.epoch_options.warmup_steps=1")
    train_and_evaluate(_xor("training.epochs=4", *sched), run)
    capsys.readouterr()
    h = _resume(run, "training.epochs=12", "schedule.epoch_options.warmup_steps=6")
    assert len(h.metric("learning_rate")) == 12
    assert "warning" not in capsys.readouterr().err


def test_a_schedule_new_at_a_resume_gets_no_stretch_warning(tmp_path, capsys):
    # A constant-rate run resumed with more epochs under a cosine was told its cosine's
    # decay_steps "follows training.epochs" and that "--set schedule.epoch_options.
    # decay_steps=10" continued "the run's own schedule": a rate of 0 from there on.
    run = tmp_path / "run"
    train_and_evaluate(_xor(), run)
    capsys.readouterr()
    h = _resume(run, "training.epochs=12", "schedule.name=cosine_decay_schedule")
    assert "warning" not in capsys.readouterr().err
    lrs = h.metric("learning_rate")
    assert lrs[9] == lrs[0] and 0 < lrs[10] < lrs[9]  # constant, then the new cosine


@pytest.mark.parametrize("left", ["a later epoch", "damaged"])
def test_restore_best_survives_a_best_jaxnn_not_of_the_best_epoch_at_a_resume(
        tmp_path, capsys, left):
    # "a later epoch": a run killed between numbered checkpoints may leave best.jaxnn
    # holding a later epoch than the checkpoint it resumes from (the run improved at epoch
    # b + 1, then a resume changed the learning rate, so that epoch is no longer better).
    # "damaged": a truncated best.jaxnn was left as it was ("the end of the run falls back
    # to the numbered checkpoint"). Either way the best epoch b was then only in ckpt_b,
    # which keep_checkpoints=1 pruned at the next save: restore_best warned and kept the
    # last epoch's parameters. best.jaxnn is now rewritten from ckpt_b at the resume.
    es = ("data.n_train=150", "data.validation_fraction=0.3", "training.epochs=20",
          "optimizer.learning_rate=0.05", "training.batch_size=16", "model.hidden_sizes=[32]",
          "model.dropout_rate=0.3", "model.batch_norm=true", "training.keep_checkpoints=1",
          "training.early_stopping.enabled=true", "training.early_stopping.patience=2")
    full = train_and_evaluate(C.load(None, [*QUIET, *es]), tmp_path / "full")
    b = full.best_epoch
    assert full.stopped_early and len(full.rows) == b + 2  # the case under test
    part = tmp_path / "part"
    train_and_evaluate(C.load(None, [*QUIET, *es, f"training.epochs={b}"]), part)
    ckpts = part / "checkpoints"
    assert _names(ckpts) == ["best.jaxnn", f"ckpt_{b:06d}.jaxnn"]
    best = ckpts / "best.jaxnn"
    if left == "damaged":
        _truncate(best)
    else:  # best.jaxnn as the killed run left it: another epoch's (b + 1)
        tree = flax.serialization.msgpack_restore(
            best.read_bytes()[checkpoint_lib._HEADER.size:])
        write_checkpoint(best, tree["tree"], {**read_metadata(best), "epoch": b + 1})
    capsys.readouterr()
    resumed = _resume(part, "training.epochs=20")
    err = capsys.readouterr().err
    assert "not the best epoch" not in err and "keeping the last epoch's parameters" not in err
    if left == "damaged":
        assert f"restored the best epoch from {ckpts / f'ckpt_{b:06d}.jaxnn'}" in err
    assert resumed.stopped_early and resumed.best_epoch == b and resumed.final == full.final
    assert (part / "params.msgpack").read_bytes() == (tmp_path / "full/params.msgpack").read_bytes()
    assert read_metadata(best)["epoch"] == b
