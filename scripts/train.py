"""Train an MLP: ``python scripts/train.py [--config configs/X.yaml] [--set a.b=v] [--workdir D]``.

All logic lives in :func:`jaxnn.cli.train_main` (and :func:`jaxnn.train.train_and_evaluate`).
"""

from _start import run  # this folder's launcher: a Ctrl-C while importing is one line

if __name__ == "__main__":
    run("jaxnn.cli", "train_main")
