"""Files written for a user survive a failed write: the previous file stays, whole.

A full disk is simulated with a file-size limit (``RLIMIT_FSIZE``) in a fresh process: a
write past the limit fails with EFBIG, as a write to a full disk fails with ENOSPC.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxnn import config as C
from jaxnn.data import write_idx
from jaxnn.studies.craft_common import write_summary
from jaxnn.train import write_checkpoint

DRIVER = textwrap.dedent("""
    import pathlib, resource, signal, sys
    import numpy as np
    from jaxnn import config
    from jaxnn.data import write_idx
    from jaxnn.studies.craft_common import write_summary
    from jaxnn.train import write_checkpoint

    d = pathlib.Path(sys.argv[1])
    cfg = config.load(None, [])
    writers = {
        "config.yaml": lambda p: config.dump(cfg, p),
        "ckpt.jaxnn": lambda p: write_checkpoint(p, {"w": np.zeros(4096, np.float32)}),
        "images.idx": lambda p: write_idx(p, np.zeros((64, 28, 28), np.uint8)),
        "summary.md": lambda p: write_summary(p.parent, "t", "x" * 5000),
    }
    small = {"config.yaml": "old", "ckpt.jaxnn": b"old", "images.idx": b"old", "summary.md": "old"}
    for name in writers:
        p = d / name
        (p.write_text if isinstance(small[name], str) else p.write_bytes)(small[name])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    for name, write in writers.items():
        try:
            write(d / name)
        except OSError as e:
            print(name, "error", e.filename)
        else:
            print(name, "written")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    p = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = dict(line.split(" ", 1) for line in p.stdout.strip().splitlines())
    for name in ("config.yaml", "ckpt.jaxnn", "images.idx", "summary.md"):
        # each write was larger than the limit: it failed, naming the file it was writing
        assert lines[name] == f"error {tmp_path / name}", (name, lines[name])
        assert (tmp_path / name).read_bytes() == b"old", name  # not truncated
    assert sorted(x.name for x in tmp_path.iterdir()) == \
        ["ckpt.jaxnn", "config.yaml", "images.idx", "summary.md"]  # no temporary files


def test_written_files_are_ordinary_and_complete(tmp_path):
    old = os.umask(0o077)  # even under a strict umask a run's files are readable (as before)
    try:
        C.dump(C.load(None, []), tmp_path / "config.yaml")
        write_checkpoint(tmp_path / "c.jaxnn", {"w": np.ones(3, np.float32)})
        write_idx(tmp_path / "x.idx", np.arange(6, dtype=np.uint8).reshape(2, 3))
        write_summary(tmp_path, "title", "body")
    finally:
        os.umask(old)
    for f in tmp_path.iterdir():
        assert f.stat().st_mode & 0o777 == 0o644, f.name
    assert C.load(tmp_path / "config.yaml") == C.load(None, [])
    assert (tmp_path / "summary.md").read_text() == "# title\n\nbody\n"
    assert pathlib.Path(tmp_path / "x.idx").stat().st_size == 4 + 2 * 4 + 6


def test_remove_temporaries_takes_what_a_killed_write_left_and_nothing_else(tmp_path,
                                                                            monkeypatch):
    # A write killed between mkstemp and the rename leaves the temporary file: make one the
    # way replace_atomically does, by failing the rename (and the cleanup) of a real write.
    from jaxnn import _atomic

    monkeypatch.setattr(_atomic.os, "replace", lambda *a: (_ for _ in ()).throw(SystemExit))
    monkeypatch.setattr(_atomic.pathlib.Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(SystemExit):
        _atomic.write_text(tmp_path / "history.json", "{}")
    monkeypatch.undo()
    (left,) = [p for p in tmp_path.iterdir()]
    assert left.name.startswith(".history.json.") and left.name.endswith(".json")
    (tmp_path / "history.json").write_text("{}")
    (tmp_path / ".other.json.a1b2c3d4.json").write_text("x")  # not a target
    assert _atomic.remove_temporaries(tmp_path / "missing", lambda n: True) == []
    assert _atomic.remove_temporaries(tmp_path, lambda n: n == "history.json") == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.a1b2c3d4.json",
                                                          "history.json"]
