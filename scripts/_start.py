"""Start one of jaxnn's command lines from a script in this folder.

Importing jaxnn (and JAX) takes a second or two. Ctrl-C in that time printed a traceback,
often two (numpy or jaxlib, interrupted while initializing a C extension, prints one and
raises an ImportError of its own). While the imports run, Ctrl-C is only noted; once they
are done, a noted Ctrl-C ends the script with one line and status 130, like an interrupted
run, before anything is run.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

EXIT_INTERRUPTED = 130


def run(module: str, function: str) -> None:
    """Import ``module`` and ``jaxnn.cli``, then exit with the status of ``function()``."""
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        main = getattr(importlib.import_module(module), function)
        exit_with = importlib.import_module("jaxnn.cli").exit_with
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        print("interrupted while starting: nothing was run", file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)  # as exit_with: no interpreter shutdown after Ctrl-C
    exit_with(main())
