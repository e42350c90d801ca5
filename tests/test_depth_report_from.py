"""The depth report's per-seed spread of trained accuracy, and re-rendering a finished
study's report (``depth_study.py --report-from DIR``) without running it again."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
import re

import numpy as np
import pytest

from jaxnn.config import ConfigError
from jaxnn.studies import depth as D
from jaxnn.studies import depth_cli, depth_report

nan = float("nan")


class _Result:
    """The two lookups accuracy_spread / accuracy_cell make, over per-seed accuracies."""

    def __init__(self, vals):
        self.vals = np.asarray(vals, float)

    def column(self, name, **where):
        assert name == "test_accuracy" and where["phase"] == "trained"
        return self.vals

    def select(self, **where):
        assert where["phase"] == "trained"
        return [{"test_accuracy": v} for v in self.vals]


@pytest.mark.parametrize("vals, spread, cell", [
    ([0.5, 0.9, 0.7], (0.7, 0.5, 0.9, 0), "0.7 (0.5-0.9)"),
    ([0.1, 0.1, 0.1], (0.1, 0.1, 0.1, 0), "0.1"),  # no range when every seed agrees
    ([0.5, nan, 0.7], (0.6, 0.5, 0.7, 1), "0.6 (0.5-0.7, 1 of 3 diverged)"),
    ([0.5, nan, nan], (nan, 0.5, 0.5, 2), "diverged (2 of 3)"),  # the median needs a majority
    ([nan, nan], (nan, nan, nan, 2), "diverged"),
    ([0.8], (0.8, 0.8, 0.8, 0), "0.8"),
])
def test_accuracy_spread_and_cell(vals, spread, cell):
    got = depth_report.accuracy_spread(_Result(vals))
    np.testing.assert_allclose(got[:3], spread[:3])
    assert got[3] == spread[3]
    assert depth_report.accuracy_cell(_Result(vals)) == cell
    assert np.array_equal(depth_report.trained_accuracy(_Result(vals)), spread[0],
                          equal_nan=True)


# ----------------------------------------------------------------------------- a study


CFG = dict(dataset="normal", input_dim=12, num_classes=3, n_samples=120, depths=[1, 3],
           widths=[8], activations=["tanh", "relu"], initializers=["xavier", "normal(1)"],
           seeds=3, probe_size=32, steps=30, batch_size=16, learning_rate=0.1, eval_size=30)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    result = D.run_study(D.config_from_dict(CFG))
    wd = tmp_path_factory.mktemp("study")
    depth_report.write_outputs(result, wd)
    return result, wd


def _files(wd: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(wd.iterdir())}


def test_accuracy_table_shows_each_cells_seed_range(study):
    result, _ = study
    report = depth_report.render_report(result)
    table = report.split("## Median test accuracy")[1]
    assert "lowest-highest seed" in table
    ranges = 0
    for act in CFG["activations"]:
        for init in CFG["initializers"]:
            row = next(line for line in table.splitlines()
                       if line.startswith(f"| {act} | {init} |"))
            for d, cell in zip(CFG["depths"], row.strip("|").split("|")[2:], strict=True):
                accs = [r["test_accuracy"] for r in result.select(
                    phase="trained", activation=act, initializer=init, depth=d)]
                assert len(accs) == CFG["seeds"]
                m = re.fullmatch(r" (\S+)(?: \((\S+)-(\S+)\))? ", cell)
                assert m, cell
                assert float(m[1]) == pytest.approx(np.median(accs), abs=5e-4)
                if m[2] is None:
                    assert min(accs) == pytest.approx(max(accs), abs=5e-4)
                else:
                    ranges += 1
                    assert float(m[2]) == pytest.approx(min(accs), abs=5e-4)
                    assert float(m[3]) == pytest.approx(max(accs), abs=5e-4)
    assert ranges > 0  # seeds differ somewhere, or the test checks nothing


def test_report_from_in_place_keeps_table_and_plots_and_rewrites_thresholds(
        study, tmp_path, capsys):
    result, original = study
    wd = tmp_path / "copy"
    wd.mkdir()
    for name, data in _files(original).items():
        (wd / name).write_bytes(data)
    before = _files(wd)
    assert depth_cli.main(["--report-from", str(wd), "--no-plots", "--quiet"]) == 0
    assert _files(wd) == before  # same settings: the same report, nothing else touched
    assert capsys.readouterr().err == ""

    rc = depth_cli.main(["--report-from", str(wd), "--no-plots", "--set", "train_threshold=0.9",
                         "--set", "vanish_ratio=0.5"])
    assert rc == 0
    assert "report re-rendered" in capsys.readouterr().err
    after = _files(wd)
    changed = {n for n in after if after[n] != before[n]}
    assert changed == {"config.yaml", "report.md", "manifest.json"}  # their new hashes
    back = depth_report.load_result(wd)
    assert (back.config.train_threshold, back.config.vanish_ratio) == (0.9, 0.5)
    # the re-rendered report is the one the study would have written with those settings
    rerun = dataclasses.replace(result, config=dataclasses.replace(
        result.config, train_threshold=0.9, vanish_ratio=0.5))
    assert after["report.md"].decode() == depth_report.render_report(rerun)
    assert after["report.md"] != before["report.md"]


def test_report_from_into_another_workdir_writes_a_complete_study(study, tmp_path, capsys):
    result, original = study
    out = tmp_path / "new" / "dir"
    assert depth_cli.main(["--report-from", str(original), "--workdir", str(out),
                           "--set", "explode_ratio=50", "--quiet"]) == 0
    written = _files(out)
    for name in ("table.csv", "table.json", "curves.json", "timing.json", "report.md",
                 "config.yaml", "grad_norms_init.png", "ratio_heatmap_init.png",
                 "training_curves.png"):
        assert written.get(name), name
    assert json.loads(written["table.json"]) == json.loads((original / "table.json").read_text())
    assert depth_report.load_result(out).config.explode_ratio == 50
    assert depth_report.load_result(original).config.explode_ratio == 100  # source untouched


@pytest.mark.parametrize("extra, message", [
    (["--set", "depths=[2]"], "depths is fixed by the study that was run"),
    (["--set", "learning_rate=1"], "can change only vanish_ratio, explode_ratio"),
    (["--set", "vanish_ratio=1000"], "vanish_ratio"),
    (["--set", "vanish_rati=0.1"], "did you mean 'vanish_ratio'"),
    (["--set", "vanish_ratio"], "expected KEY=VALUE"),
    (["--config", "configs/depth_smoke.yaml"], "--config cannot be used with --report-from"),
    (["--data-dir", "data"], "--data-dir cannot be used with --report-from"),
    (["--workers", "2"], "--workers cannot be used with --report-from"),
])
def test_report_from_bad_input_is_one_line_and_exit_2(study, capsys, extra, message):
    _, wd = study
    before = _files(wd)
    assert depth_cli.main(["--report-from", str(wd), *extra]) == depth_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert _files(wd) == before


def _resign(wd):
    """Rewrite the hashes of ``wd``'s manifest.json for the files as they are now."""
    manifest = json.loads((wd / "manifest.json").read_text())
    manifest["files"] = {n: hashlib.sha256((wd / n).read_bytes()).hexdigest()
                         for n in manifest["files"]}
    (wd / "manifest.json").write_text(json.dumps(manifest))


def test_report_from_a_folder_without_a_readable_study(study, tmp_path, capsys):
    _, wd = study
    cases = {"missing": tmp_path / "absent", "empty": tmp_path / "empty"}
    cases["empty"].mkdir()
    for name, edit in (("columns", lambda p: (p / "table.json").write_text('[{"depth": 1}]')),
                       ("json", lambda p: (p / "curves.json").write_text("{")),
                       ("config", lambda p: (p / "config.yaml").write_text("depths: [0]\n"))):
        bad = tmp_path / name
        bad.mkdir()
        for n, data in _files(wd).items():
            (bad / n).write_bytes(data)
        edit(bad)
        _resign(bad)  # a complete set whose files are unreadable, not a mixed one
        cases[name] = bad
    expected = {"missing": "is not a directory", "empty": "table.json",
                "columns": "lacks the column(s)", "json": "cannot read the depth study",
                "config": "depths"}
    for name, folder in cases.items():
        assert depth_cli.main(["--report-from", str(folder)]) == depth_cli.EXIT_USAGE, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert expected[name] in err, (name, err)
        with pytest.raises(ConfigError):
            depth_report.load_result(folder)


def test_a_study_with_overflowing_statistics_renders_the_same_from_its_files(study, tmp_path):
    # The tables store inf as null (read back as nan): the report must not tell them apart.
    # (The study fixture's shapes: its compiled functions are reused, initializers are data.)
    cfg = D.config_from_dict(dict(CFG, initializers=["normal(1e15)", "xavier"]))
    result = D.run_study(cfg)
    assert sum(not r["finite"] for r in result.records) >= 3  # 3 layers of N(0, 1e30)
    # Whether an overflowing model's statistics read inf or nan depends on how the CPU's
    # vector max treats NaN (this test found -inf on one machine, nan on another): the
    # infinities a study can hold (a ratio over an underflowed gradient, the mean of
    # overflowed activations) are put in by hand, so the round trip is always tested.
    bad = next(r for r in result.records if not r["finite"])
    bad["grad_ratio"] = math.inf
    bad["activation_mean"] = [-math.inf, *bad["activation_mean"][1:]]
    study_dir = tmp_path / "study"
    depth_report.write_outputs(result, study_dir, plots=False)
    report = depth_report.render_report(result)
    assert "overflow" in report
    assert depth_report.render_report(depth_report.load_result(study_dir)) == report
    # A re-render never writes the tables from what it read back (-inf would become nan,
    # in table.csv): in place with plots, and into another folder, they stay byte-identical.
    table = (study_dir / "table.csv").read_text()
    assert ";-inf" in table or ",-inf" in table or ",inf" in table or ";inf" in table
    before = _files(study_dir)
    assert depth_cli.main(["--report-from", str(study_dir), "--quiet"]) == 0
    after = _files(study_dir)
    for name in ("table.csv", "table.json", "curves.json", "histograms.json", "timing.json"):
        assert after[name] == before[name], name
    assert after["report.md"].decode() == report and "grad_norms_init.png" in after
    other = tmp_path / "other"
    assert depth_cli.main(["--report-from", str(study_dir), "--workdir", str(other),
                           "--no-plots", "--quiet"]) == 0
    copied = _files(other)
    for name in ("table.csv", "table.json", "curves.json", "histograms.json", "timing.json"):
        assert copied[name] == before[name], name
    assert not any(n.endswith(".png") for n in copied)


def test_per_layer_medians_are_nan_where_most_seeds_overflowed():
    # They were the median of the few finite seeds: one seed of five spoke for all.
    class _Rows:
        def __init__(self, rows):
            self.rows = rows

        def select(self, **where):
            return [{"activation_std": r} for r in self.rows]

    inf = float("inf")
    rows = [[1.0, 2.0, 3.0], [3.0, nan, inf], [5.0, nan, 5.0], [7.0, 4.0, inf], [9.0, inf, 1.0]]
    got = depth_report._median_layers(_Rows(rows), "activation_std")
    # layer 1: all finite; layer 2: 3 of 5 non-finite; layer 3: 2 of 5 (median of 3, 5, 1)
    np.testing.assert_array_equal(got, [5.0, nan, 3.0])
    got = depth_report._median_layers(_Rows(rows), "activation_std", overflow_as_inf=True)
    np.testing.assert_array_equal(got, [5.0, inf, 5.0])


# ----------------------------------------------------------------------------- atomic set


class _Killed(BaseException):
    """A kill -9 stand-in: raised by the n-th atomic file replacement."""


def _kill_at(monkeypatch, n):
    """Let the first ``n - 1`` atomic file replacements happen, kill the process at the
    ``n``-th (before its rename); returns the list of paths replaced so far."""
    from jaxnn import _atomic

    real, done = _atomic.replace_atomically, []

    def replace(path, write):
        if len(done) + 1 == n:
            raise _Killed(str(path))
        done.append(pathlib.Path(path).name)
        return real(path, write)

    monkeypatch.setattr(_atomic, "replace_atomically", replace)
    monkeypatch.setattr(depth_report, "replace_atomically", replace)
    return done


def _other_study(result):
    """Another study of the same shapes: another name and learning rate, other numbers."""
    cfg = dataclasses.replace(result.config, name="other", learning_rate=0.05)
    records = [{**r, "study": "other", "test_accuracy": 0.5 * r["test_accuracy"]}
               for r in result.records]
    return dataclasses.replace(result, config=cfg, records=records)


def _same_study(back, expected):
    return (back.config == expected.config
            and [r["study"] for r in back.records] == [r["study"] for r in expected.records]
            and [r["test_accuracy"] for r in back.records]
            == pytest.approx([r["test_accuracy"] for r in expected.records], nan_ok=True))


def test_a_study_killed_while_writing_its_outputs_is_refused_never_mixed(
        study, tmp_path, monkeypatch, capsys):
    # A kill after config.yaml but before table.json left the new config beside the old
    # tables: --report-from then reported the old numbers under the new study's settings.
    result, original = study
    new = _other_study(result)
    kills = 0
    for n in range(1, 30):
        wd = tmp_path / f"kill{n}"
        wd.mkdir()
        for name, data in _files(original).items():
            (wd / name).write_bytes(data)
        done = _kill_at(monkeypatch, n)
        try:
            depth_report.write_outputs(new, wd, plots=n % 2 == 0)
        except _Killed:
            kills += 1
        else:
            monkeypatch.undo()
            assert _same_study(depth_report.load_result(wd), new)
            break
        finally:
            monkeypatch.undo()
        # every state a kill can leave: the old study whole, or a refusal -- never a mix
        try:
            back = depth_report.load_result(wd)
        except ConfigError as e:
            assert "incomplete or mixed" in str(e) and "\n" not in str(e), e
            assert depth_cli.main(["--report-from", str(wd)]) == depth_cli.EXIT_USAGE
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1, err
        else:
            assert not done and _same_study(back, result), (n, done)
    assert kills >= 6  # the table files, the report (and plots) were each a kill point


def test_a_killed_report_from_into_another_study_is_refused(study, tmp_path, monkeypatch):
    result, original = study
    target = tmp_path / "target"
    depth_report.write_outputs(_other_study(result), target, plots=False)
    done = _kill_at(monkeypatch, 3)  # after the open manifest and the first table file
    with pytest.raises(_Killed):
        depth_report.rerender(original, target, plots=False)
    monkeypatch.undo()
    assert done == ["manifest.json", "table.csv"]
    with pytest.raises(ConfigError, match="incomplete or mixed"):
        depth_report.load_result(target)


def test_a_killed_report_from_in_place_keeps_the_study_readable(study, tmp_path, monkeypatch):
    # Only the thresholds and the report change in place: a kill there must not cost the
    # study (the table files are untouched), and running it again completes the set.
    result, original = study
    wd = tmp_path / "copy"
    wd.mkdir()
    for name, data in _files(original).items():
        (wd / name).write_bytes(data)
    _kill_at(monkeypatch, 2)  # config.yaml written, report.md not
    with pytest.raises(_Killed):
        depth_report.rerender(wd, None, ["vanish_ratio=0.5"], plots=False)
    monkeypatch.undo()
    back = depth_report.load_result(wd)  # with the old thresholds or the new ones
    assert back.config.vanish_ratio in (0.5, result.config.vanish_ratio)
    assert _same_study(dataclasses.replace(back, config=result.config), result)
    depth_report.rerender(wd, None, ["vanish_ratio=0.5"], plots=False)
    assert depth_report.load_result(wd).config.vanish_ratio == 0.5
    manifest = json.loads((wd / "manifest.json").read_text())
    assert {"config.yaml", "report.md", "table.json"} <= set(manifest["files"])


@pytest.mark.parametrize("edit, message", [
    (lambda wd: (wd / "manifest.json").write_text('{"format": 1, "open": true}'),
     "still being written"),
    (lambda wd: (wd / "table.csv").write_text("study\n"), "table.csv"),
    (lambda wd: (wd / "config.yaml").write_text(
        (wd / "config.yaml").read_text().replace("learning_rate: 0.1", "learning_rate: 0.2")),
     "config.yaml"),
])
def test_a_folder_whose_files_are_not_one_set_is_refused(study, tmp_path, capsys, edit,
                                                          message):
    _, original = study
    wd = tmp_path / "edited"
    wd.mkdir()
    for name, data in _files(original).items():
        (wd / name).write_bytes(data)
    depth_report.load_result(wd)  # a complete set reads back
    edit(wd)
    assert depth_cli.main(["--report-from", str(wd)]) == depth_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "incomplete or mixed" in err and message in err, err


def test_a_study_written_before_manifests_is_read_with_a_warning(study, tmp_path, capsys):
    # A folder without manifest.json (a study from before manifests existed) was refused:
    # its 22-minute study had to be run again to re-render a plot. It reads back, warned.
    _, original = study
    wd = tmp_path / "older"
    wd.mkdir()
    for name, data in _files(original).items():
        if name != "manifest.json":
            (wd / name).write_bytes(data)
    back = depth_report.load_result(wd)
    assert _same_study(back, depth_report.load_result(original))
    assert ("has no manifest.json (a study written by a jaxnn before manifests, 2026-12-03)"
            in capsys.readouterr().err)
    assert depth_cli.main(["--report-from", str(wd), "--no-plots"]) == 0
    assert not (wd / "manifest.json").exists() or json.loads(
        (wd / "manifest.json").read_text()).get("files")


def test_report_from_interrupted_by_ctrl_c_says_so_without_a_traceback(study, monkeypatch,
                                                                        capsys):
    # A study run answered Ctrl-C with "interrupted" and status 130; --report-from (a minute
    # of plots for the full study) showed a traceback.
    _, wd = study

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(depth_report, "rerender", interrupted)
    assert depth_cli.main(["--report-from", str(wd)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_folder_without_table_csv_is_one_line_exit_2(study, tmp_path, capsys):
    # --report-from into another folder copies table.csv: a folder without it (and without
    # a manifest) ended with "error: [Errno 2] No such file or directory", exit 1.
    _, original = study
    wd = tmp_path / "partial"
    wd.mkdir()
    for name, data in _files(original).items():
        if name not in ("manifest.json", "table.csv"):
            (wd / name).write_bytes(data)
    assert depth_cli.main(["--report-from", str(wd), "--workdir", str(tmp_path / "out"),
                           "--no-plots"]) == depth_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "table.csv missing" in err


def test_an_infinite_ratio_is_read_back_as_infinite_not_nan(study, tmp_path):
    # A seed whose first-layer gradient overflowed while the last hidden layer's did not
    # has grad_ratio = +inf: it counts in the median ratio (and can make it +inf). The
    # JSON table stores it as null; read back as nan it dropped out of the median, and the
    # re-rendered ratio table and verdicts were not the report the study wrote.
    result, _ = study
    records = [dict(r) for r in result.records]
    where = dict(activation="tanh", initializer="normal(1)", depth=3, phase="init")
    rows = [r for r in records if all(r[k] == v for k, v in where.items())]
    assert len(rows) == 3 and len({r["grad_ratio"] for r in rows}) == 3
    worst = max(rows, key=lambda r: r["grad_ratio"])
    rows[0].update(grad_ratio=float("inf"), first_grad_norm=float("inf"), finite=False)
    rows[0]["weight_grad_norm"] = [float("inf")] + rows[0]["weight_grad_norm"][1:]
    rows[1].update(activation_mean=[-float("inf")] * 3)
    edited = dataclasses.replace(result, records=records)
    assert D.DepthStudyResult.median(edited, "grad_ratio", **where) >= worst["grad_ratio"]
    depth_report.write_outputs(edited, tmp_path, plots=False)
    back = depth_report.load_result(tmp_path)
    got = back.select(**where)
    assert got[0]["grad_ratio"] == got[0]["first_grad_norm"] == float("inf")
    assert got[0]["weight_grad_norm"][0] == float("inf")
    assert got[1]["activation_mean"] == [-float("inf")] * 3
    for r, b in zip(records, back.records, strict=True):  # every value as written
        for k in D.COLUMNS:
            if isinstance(r[k], str):
                assert b[k] == r[k], k
            else:
                assert np.array_equal(np.asarray(b[k], float), np.asarray(r[k], float),
                                      equal_nan=True), k
    assert depth_report.render_report(back) == depth_report.render_report(edited)


def _training_run(wd: pathlib.Path) -> dict[str, bytes]:
    """A folder as scripts/train.py leaves it (the files that mark it), with its bytes."""
    (wd / "checkpoints").mkdir(parents=True)
    (wd / "config.yaml").write_text("model:\n  hidden_sizes: [8]\n")
    (wd / "history.json").write_text("{}\n")
    (wd / "metrics.jsonl").write_text('{"epoch": 1}\n')
    return {p.name: p.read_bytes() for p in sorted(wd.iterdir()) if p.is_file()}


def test_a_training_runs_folder_is_refused_before_anything_is_written(study, tmp_path,
                                                                       capsys):
    # A depth study (or a re-render) into a training run's folder replaced its config.yaml
    # without a word, and the run's --resume then refused the folder: the run was lost.
    result, original = study
    run = tmp_path / "run"
    before = _training_run(run)
    rc = depth_cli.main(["--workdir", str(run), "--quiet", "--set", "depths=[1]"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --workdir {str(run)!r} holds a training run (history.json, "
                          "checkpoints, metrics.jsonl): a depth study would replace its "
                          "config.yaml"), err
    assert depth_cli.main(["--report-from", str(original), "--workdir", str(run),
                           "--quiet"]) == 2
    assert "holds a training run" in capsys.readouterr().err
    for write in (depth_report.write_outputs, depth_report.write_table):
        with pytest.raises(ConfigError, match="holds a training run"):
            write(result, run)
    assert {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()} == before
    assert sorted(p.name for p in run.iterdir()) == sorted([*before, "checkpoints"])


def test_files_of_a_folder_without_a_study_are_set_aside_not_overwritten(study, tmp_path,
                                                                         capsys):
    # A user's own config.yaml (a copy of a training config), notes in report.md and a
    # figure of one of the study's names: kept as *.unmatched*, not replaced or deleted.
    result, _ = study
    wd = tmp_path / "mine"
    wd.mkdir()
    (wd / "config.yaml").write_text("# my xor config\ntraining:\n  epochs: 3\n")
    (wd / "report.md").write_text("my notes\n")
    (wd / "training_curves_old.png").write_bytes(b"not a study's")
    depth_report.write_outputs(result, wd, plots=False)
    assert (wd / "config.unmatched.yaml").read_text().startswith("# my xor config")
    assert (wd / "report.unmatched.md").read_text() == "my notes\n"
    assert (wd / "training_curves_old.unmatched.png").read_bytes() == b"not a study's"
    err = capsys.readouterr().err
    assert ("held files a depth study writes, not from a study; set aside: config.yaml -> "
            "config.unmatched.yaml, report.md -> report.unmatched.md") in err
    assert depth_report.load_result(wd).config == result.config
    # A folder holding a study is replaced as before: nothing set aside, no warning.
    depth_report.write_outputs(result, wd, plots=False)
    assert "set aside" not in capsys.readouterr().err
    assert sorted(p.name for p in wd.iterdir() if ".unmatched" in p.name) == [
        "config.unmatched.yaml", "report.unmatched.md", "training_curves_old.unmatched.png"]
