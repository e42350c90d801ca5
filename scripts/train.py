"""Train an MLP: ``python scripts/train.py [--config configs/X.yaml] [--set a.b=v] [--workdir D]``.

All logic lives in :func:`jaxnn.cli.train_main` (and :func:`jaxnn.train.train_and_evaluate`).
"""

import sys

from jaxnn.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
