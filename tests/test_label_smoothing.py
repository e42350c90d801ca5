"""Label smoothing end to end: ``training.label_smoothing`` through ``train_and_evaluate``.

What is logged (the contract these tests pin down): the training ``loss`` is the smoothed
objective the gradients come from; ``val_loss`` and ``test_loss`` are the unsmoothed
cross-entropy, so they compare across smoothing values. The per-step formulas themselves
are checked against optax and PyTorch in ``test_losses.py``, the hand-written gradients
against autodiff in ``test_losses.py`` and ``test_backprop.py``.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from jaxnn import config as C
from jaxnn.train import train_and_evaluate

XOR = pathlib.Path(__file__).resolve().parents[1] / "configs" / "xor.yaml"
QUIET = ["logging.progress=false", "logging.print_every=0", "logging.plots=false",
         "training.checkpoint_every=0"]


def _run(tmp_path, name, *overrides):
    return train_and_evaluate(C.load(XOR, [*QUIET, *overrides]), tmp_path / name)


def _smoothed_entropy(alpha, classes):
    """The least value of the smoothed cross-entropy: the entropy of the smoothed target."""
    on, off = 1 - alpha + alpha / classes, alpha / classes
    return -on * math.log(on) - (classes - 1) * off * math.log(off)


@pytest.mark.parametrize("grad", ["autodiff", "manual"])
def test_xor_trains_with_label_smoothing(tmp_path, grad):
    alpha = 0.1
    h = _run(tmp_path, grad, f"training.label_smoothing={alpha}", f"training.grad={grad}")
    assert h.final["test_accuracy"] == 1.0
    floor = _smoothed_entropy(alpha, 2)  # 0.199: a smoothed loss cannot go below it
    assert floor - 1e-4 <= h.metric("loss")[-1] < floor + 0.05
    # Evaluation is the unsmoothed cross-entropy: a fit to the 0.95 / 0.05 targets gives
    # about -log(0.95) = 0.05 there, below the smoothed floor.
    assert h.final["test_loss"] < floor


def test_logged_first_step_losses_follow_the_formula(tmp_path):
    # One full-batch step (64 rows) at a learning rate too small to move the weights: every
    # run logs its loss at the same initial parameters, and evaluates those parameters.
    # Large initial weights make confident predictions, where smoothing changes the loss
    # most (near-uniform ones have nearly the same loss smoothed or not).
    common = ("training.epochs=1", "training.batch_size=64", "optimizer.learning_rate=1e-20",
              "model.initializer=normal", "model.initializer_kwargs={stddev: 2.0}")
    runs = {
        (alpha, grad): _run(tmp_path, f"{alpha}-{grad}", *common,
                            f"training.label_smoothing={alpha}", f"training.grad={grad}")
        for alpha, grad in ((0.0, "autodiff"), (0.1, "autodiff"), (0.2, "autodiff"),
                            (0.1, "manual"))
    }
    loss = {k: h.metric("loss")[0] for k, h in runs.items()}
    l0, l1, l2 = loss[0.0, "autodiff"], loss[0.1, "autodiff"], loss[0.2, "autodiff"]
    # (1 - a) NLL + a U with U = mean over examples of mean_c(-log p_c): affine in a.
    assert abs(l1 - l0) > 1e-3  # far above float32 rounding of a loss near 2
    np.testing.assert_allclose(l2 - l0, 2 * (l1 - l0), rtol=1e-3)
    u = l0 + (l1 - l0) / 0.1
    assert u >= math.log(2) - 1e-6  # Jensen: mean_c(-log p_c) >= log C
    np.testing.assert_allclose(loss[0.1, "manual"], l1, rtol=1e-6)
    # The test loss is the unsmoothed cross-entropy, whatever the training objective.
    test_losses = [h.final["test_loss"] for h in runs.values()]
    np.testing.assert_allclose(test_losses, test_losses[0], rtol=1e-6)
