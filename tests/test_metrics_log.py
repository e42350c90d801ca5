"""The run's metric logs and the marks checkpoints keep of them (``jaxnn.train.metrics_log``)."""

import csv
import hashlib
import json

import pytest

from jaxnn.train.metrics_log import Mark, MetricsLog, read_marked_rows

ROWS = [{"epoch": 1, "loss": 0.5, "time_s": 0.1}, {"epoch": 2, "loss": float("nan"),
                                                 "time_s": 0.2}]


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_appends_and_marks_follow_the_file(tmp_path):
    log = MetricsLog(tmp_path)
    log.reset([])
    assert (tmp_path / "metrics.jsonl").read_bytes() == b""
    assert (tmp_path / "metrics.csv").read_bytes() == b""
    marks = []
    for row in ROWS:
        log.append(row)
        marks.append(log.mark())
    data = (tmp_path / "metrics.jsonl").read_bytes()
    assert [json.loads(x) for x in data.decode().splitlines()][0] == ROWS[0]
    assert marks[-1] == Mark(2, len(data), hashlib.sha256(data).hexdigest())
    first, _ = read_marked_rows(tmp_path, marks[0])
    assert first == ROWS[:1]
    assert [r["epoch"] for r in _csv(tmp_path / "metrics.csv")] == ["1", "2"]


def test_a_reset_keeps_the_bytes_it_is_given_so_older_marks_stay_valid(tmp_path):
    log = MetricsLog(tmp_path)
    log.reset([])
    for row in ROWS:
        log.append(row)
    old = log.mark()
    rows, data = read_marked_rows(tmp_path, old)
    again = MetricsLog(tmp_path)
    again.reset(rows, data)
    assert again.mark() == old
    again.append({"epoch": 3, "loss": 0.25, "time_s": 0.3, "grad_norm": 1.0})
    assert read_marked_rows(tmp_path, old)[0][1]["epoch"] == 2  # a nan row reads back
    table = _csv(tmp_path / "metrics.csv")  # a new column: the header is rewritten
    assert list(table[0]) == ["epoch", "loss", "time_s", "grad_norm"]
    assert [r["grad_norm"] for r in table] == ["", "", "1.0"]


@pytest.mark.parametrize("change, message", [
    (lambda p: p.unlink(), "is missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:10]), "holds 10 bytes, fewer than"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b"0.5", b"0.6")), "was changed after"),
])
def test_a_log_that_no_longer_holds_the_marked_rows_is_named(tmp_path, change, message):
    log = MetricsLog(tmp_path)
    log.reset(ROWS)
    mark = log.mark()
    change(tmp_path / "metrics.jsonl")
    with pytest.raises(ValueError, match=message) as e:
        read_marked_rows(tmp_path, mark)
    assert "metrics.jsonl" in str(e.value)


def test_lines_past_the_mark_are_not_read(tmp_path):
    log = MetricsLog(tmp_path)
    log.reset(ROWS[:1])
    mark = log.mark()
    with open(tmp_path / "metrics.jsonl", "ab") as f:
        f.write(b'{"epoch": 2, "lo')  # a kill mid-append
    assert read_marked_rows(tmp_path, mark)[0] == ROWS[:1]


@pytest.mark.parametrize("bad", [None, {}, {"rows": 1, "bytes": 2}, {"rows": "x", "bytes": 1,
                                 "sha256": "0"}, {"rows": -1, "bytes": 0, "sha256": "0"}])
def test_a_mark_that_is_not_one_is_refused(bad):
    with pytest.raises(ValueError, match="not a metrics-log mark"):
        Mark.from_dict(bad)
