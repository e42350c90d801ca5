"""Training-craft experiments: ``python scripts/compare.py EXPERIMENT [--config F] [--set a.b=v]
[--workdir D] [--overwrite]``.

EXPERIMENT is one of surface, optimizers, batch_size, schedules, overfitting, init,
batchnorm_scales, search. All logic lives in :func:`jaxnn.studies.craft.main`.
"""


from jaxnn.cli import exit_with
from jaxnn.studies.craft import main

if __name__ == "__main__":
    exit_with(main())
