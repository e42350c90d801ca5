"""Studies built on jaxnn: experiments that sweep models and report what they measure.

* :mod:`jaxnn.studies.depth` -- the vanishing / exploding gradient depth study (a vmapped,
  jitted sweep over depth x activation x initializer x seeds) and
  :mod:`jaxnn.studies.depth_report` -- its table, plots and Markdown report
  (``scripts/depth_study.py``).
* :mod:`jaxnn.studies.workers` -- a pool of worker processes, each pinned to its own CPU
  cores, that ``run_study(..., workers=N)`` spreads a sweep over.
* :mod:`jaxnn.studies.craft` -- training-craft experiments: optimizers on 2-D surfaces and
  on data, batch size, learning-rate schedules, overfitting and its cures, initialization,
  batch norm against weight scale, random hyper-parameter search (``scripts/compare.py``).
"""

from jaxnn.studies import craft, depth, depth_report, workers
from jaxnn.studies.depth import (
    DepthStudyConfig,
    DepthStudyResult,
    benchmark_vmap_vs_loop,
    run_study,
)

__all__ = [
    "DepthStudyConfig",
    "DepthStudyResult",
    "benchmark_vmap_vs_loop",
    "craft",
    "depth",
    "depth_report",
    "run_study",
    "workers",
]
