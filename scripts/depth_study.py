"""Vanishing-gradient depth study: ``python scripts/depth_study.py --config
configs/depth_study.yaml [--set key=value] --workdir runs/depth``.

All logic lives in :func:`jaxnn.studies.depth_cli.main` (see :mod:`jaxnn.studies.depth`).
"""

from _start import run  # this folder's launcher: a Ctrl-C while importing is one line

if __name__ == "__main__":
    run("jaxnn.studies.depth_cli", "main")
