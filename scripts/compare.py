"""Training-craft experiments: ``python scripts/compare.py EXPERIMENT [--config F] [--set a.b=v]
[--workdir D] [--overwrite]``.

EXPERIMENT is one of surface, optimizers, batch_size, schedules, overfitting, init,
batchnorm_scales, search. All logic lives in :func:`jaxnn.studies.craft.main`.
"""

import sys

from jaxnn.studies.craft import main

if __name__ == "__main__":
    sys.exit(main())
