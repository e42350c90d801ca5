"""scripts/gpu_checks.sh's own logic (order of the steps, time limits, the autotuning-off
flags), with a stand-in for Python that records each call instead of running it: the
real steps need a GPU and minutes (``--quick`` rehearses them anywhere by hand)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_checks.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils' timeout")

# Records "XLA_FLAGS|argv" per call; fails a jax.devices() probe whose XLA_FLAGS hold
# $FAKE_UNKNOWN (as XLA aborts on an unknown flag) and any call whose argv holds $FAKE_FAIL.
FAKE_PYTHON = r"""#!/usr/bin/env bash
printf '%s|%s\n' "${XLA_FLAGS:-}" "$(printf '%s ' "$@" | tr '\n' ' ')" >> "$FAKE_LOG"
if [ "$*" = "-c import torch" ]; then exit 1; fi
if [ -n "${FAKE_UNKNOWN:-}" ]; then
  case "$*|${XLA_FLAGS:-}" in *"import jax; jax.devices()"*"$FAKE_UNKNOWN"*) exit 134 ;; esac
fi
if [ -n "${FAKE_FAIL:-}" ]; then
  case "$*" in *"$FAKE_FAIL"*) exit 1 ;; esac
fi
exit 0
"""


def _run(tmp_path, **env):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    out = tmp_path / "out"
    full = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(log), "OUT": str(out), **env}
    full.pop("XLA_FLAGS", None)
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    status = out / "status.txt"
    return proc, calls, status.read_text().splitlines() if status.exists() else []


def _scripts(calls):
    """(XLA_FLAGS, the script or -c code) of each call, the probes of jax/torch left out."""
    rows = []
    for c in calls:
        flags, argv = c.split("|", 1)
        if argv.startswith("-c"):
            continue
        rows.append((flags.strip(), argv.split()[0]))
    return rows


def test_steps_run_in_order_and_autotuning_off_reaches_the_two_notune_steps(tmp_path):
    proc, calls, status = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [s.split(":")[0] for s in status] == [
        "env", "smoke", "w3", "depth", "w3-autodiff-vmap", "w3-autodiff-vmap-notune",
        "depth-notune", "bench"]
    assert all(": exit 0 after " in s for s in status), status
    notune = "--xla_gpu_autotune_level=0 --xla_gpu_experimental_enable_fusion_autotuner=false"
    rows = _scripts(calls)
    # smoke: train.py + 3 gradchecks; then w3, depth, the row, the row notune, depth notune
    assert rows[:4] == [("", "scripts/train.py")] + [("", "scripts/gradcheck.py")] * 3
    assert rows[4:] == [("", "scripts/bench.py"), ("", "scripts/depth_study.py"),
                        ("", "scripts/bench.py"), (notune, "scripts/bench.py"),
                        (notune, "scripts/depth_study.py"), ("", "scripts/bench.py")]
    argv = [c.split("|", 1)[1] for c in calls]
    w3, row = [a for a in argv if "--workloads w3" in a][:2]
    assert '--skip autodiff vmap' in w3
    # torch absent: "pytorch" is not in the skip list (it would warn "matched nothing")
    assert "--skip manual,linen,pinned " in row + " " and "pytorch" not in row
    depth_notune = [a for a in argv if "depth_study.py" in a][1]
    assert "depths=[8,30]" in depth_notune


def test_an_xla_without_the_fusion_autotuner_flag_gets_autotune_level_0_alone(tmp_path):
    proc, calls, status = _run(tmp_path, STEPS="w3-autodiff-vmap-notune,depth-notune",
                               FAKE_UNKNOWN="enable_fusion_autotuner")
    assert proc.returncode == 0, proc.stderr
    assert any("refused by this XLA; using --xla_gpu_autotune_level=0" in s for s in status)
    assert _scripts(calls) == [("--xla_gpu_autotune_level=0", "scripts/bench.py"),
                               ("--xla_gpu_autotune_level=0", "scripts/depth_study.py")]
    # the flags were probed once, not once per step
    assert sum("import jax; jax.devices()" in c for c in calls) == 1


def test_total_limit_trims_and_skips_steps(tmp_path):
    proc, calls, status = _run(tmp_path, TOTAL_LIMIT="100", STEPS="w3,depth,bench")
    assert proc.returncode == 0, proc.stderr
    # each step's limit is the smaller of its own and what is left of the total
    assert status[0].startswith("env: exit 0") and "(limit 60 s)" in status[0]
    assert "(limit 100 s)" in status[1] or "(limit 99 s)" in status[1]  # w3: 130 -> ~100
    assert status[1].startswith("w3: exit 0")
    again = tmp_path / "again"
    again.mkdir()
    proc, calls, status = _run(again, TOTAL_LIMIT="29", STEPS="w3,depth")
    assert [s.split(":")[0] for s in status] == ["env", "w3", "depth"]
    assert all(": skipped, " in s and "left of TOTAL_LIMIT=29" in s for s in status)
    assert _scripts(calls) == []  # nothing ran


def test_a_failed_smoke_check_stops_the_run(tmp_path):
    proc, calls, status = _run(tmp_path, FAKE_FAIL="scripts/gradcheck.py")
    assert proc.returncode == 3
    assert status[-1].startswith("smoke check failed: the long steps are not run")
    assert [r[1] for r in _scripts(calls)] == ["scripts/train.py", "scripts/gradcheck.py"]


@pytest.mark.parametrize("var, value", [("TOTAL_LIMIT", "9m"), ("W3_LIMIT", "-5"),
                                        ("DEPTH_LIMIT", "")])
def test_a_time_limit_that_is_not_whole_seconds_is_refused_in_one_line(tmp_path, var, value):
    proc, calls, status = _run(tmp_path, **{var: value})
    if value == "":  # empty: the default applies, as for an unset variable
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2 and calls == [] and status == []
    assert proc.stderr == f"error: {var} must be a whole number of seconds, got '{value}'\n"
