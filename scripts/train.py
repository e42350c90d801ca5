"""Train an MLP: ``python scripts/train.py [--config configs/X.yaml] [--set a.b=v] [--workdir D]``.

All logic lives in :func:`jaxnn.cli.train_main` (and :func:`jaxnn.train.train_and_evaluate`).
"""


from jaxnn.cli import exit_with, train_main

if __name__ == "__main__":
    exit_with(train_main())
