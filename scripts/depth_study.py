"""Vanishing-gradient depth study: ``python scripts/depth_study.py --config
configs/depth_study.yaml [--set key=value] --workdir runs/depth``.

All logic lives in :func:`jaxnn.studies.depth_cli.main` (see :mod:`jaxnn.studies.depth`).
"""


from jaxnn.cli import exit_with
from jaxnn.studies.depth_cli import main

if __name__ == "__main__":
    exit_with(main())
