"""Data parallelism in one process (``--devices N`` on 2 simulated CPU devices) against one
device: the same logs, column for column, with validation and test sets whose sizes and
evaluation batches do not split over the devices, and a run checkpointed on one device
count and resumed on the other."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import flax.serialization
import jax
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import sys, jax
    from jaxnn import config, train
    assert jax.device_count() == 2, jax.devices()
    # 240 training rows (60 go to validation), 101 test rows, evaluation batches of 37:
    # none of the evaluated sets or batches splits over 2 devices.
    base = ["data.n_train=300", "data.n_test=101", "data.validation_fraction=0.2",
            "training.batch_size=32", "training.eval_batch_size=37", "model.batch_norm=true",
            "model.use_bias=auto", "training.checkpoint_every=2", "logging.progress=false",
            "logging.print_every=0", "logging.plots=false"]
    def run(name, devices, epochs, resume=False):
        cfg = config.load(None, base + [f"training.devices={devices}",
                                        f"training.epochs={epochs}"])
        train.train_and_evaluate(cfg, f"{sys.argv[1]}/{name}", resume=resume)
    run("d1", 1, 4)
    run("d2", 2, 4)
    run("d1_then_d2", 1, 2)
    run("d1_then_d2", 2, 4, resume=True)
""")


def _params(workdir: pathlib.Path) -> np.ndarray:
    tree = flax.serialization.msgpack_restore((workdir / "params.msgpack").read_bytes())
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_two_devices_log_what_one_device_logs_also_after_a_resume(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    p = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    ref = tmp_path / "d1"
    header = (ref / "metrics.csv").read_text().splitlines()[0]
    assert header.split(",")[6:10] == ["val_accuracy", "val_loss", "test_accuracy", "test_loss"]
    ref_rows = [json.loads(r) for r in (ref / "metrics.jsonl").read_text().splitlines()]
    ref_final = json.loads((ref / "history.json").read_text())
    for name in ("d2", "d1_then_d2"):
        run = tmp_path / name
        # The same columns in the same order: a script reading metrics.csv by position (or
        # diffing two runs) must not get the test column where the validation one was.
        assert (run / "metrics.csv").read_text().splitlines()[0] == header, name
        rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
        assert [list(r) for r in rows] == [list(r) for r in ref_rows], name
        for r, q in zip(rows, ref_rows, strict=True):
            np.testing.assert_allclose([r[k] for k in r if k != "time_s"],
                                       [q[k] for k in r if k != "time_s"],
                                       rtol=1e-5, atol=1e-6, err_msg=name)
        final = json.loads((run / "history.json").read_text())
        assert list(final["final"]) == list(ref_final["final"]), name
        np.testing.assert_allclose(list(final["final"].values()),
                                   list(ref_final["final"].values()), rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(_params(run), _params(ref), rtol=2e-4, atol=2e-5,
                                   err_msg=name)
