"""Start one of jaxnn's command lines from a script in this folder: ``run(module,
function)`` imports them with Ctrl-C guarded (one line and status 130 instead of a
traceback while JAX loads). It lives in :mod:`jaxnn._launch`, which the ``jaxnn-train``
console script uses too; importing it imports nothing heavy.
"""

from jaxnn._launch import EXIT_INTERRUPTED, run

__all__ = ["EXIT_INTERRUPTED", "run"]
