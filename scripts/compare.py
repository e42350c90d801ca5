"""Training-craft experiments: ``python scripts/compare.py EXPERIMENT [--config F] [--set a.b=v]
[--workdir D] [--overwrite]``.

EXPERIMENT is one of surface, optimizers, batch_size, schedules, overfitting, init,
batchnorm_scales, search. All logic lives in :func:`jaxnn.studies.craft.main`.
"""

from _start import run  # this folder's launcher: a Ctrl-C while importing is one line

if __name__ == "__main__":
    run("jaxnn.studies.craft", "main")
