"""Start one of jaxnn's command lines with Ctrl-C guarded while it imports.

Importing jaxnn's modules (and JAX) takes a second or two. Ctrl-C in that time printed a
traceback, often two (numpy or jaxlib, interrupted while initializing a C extension, prints
one and raises an ImportError of its own). While the imports run, Ctrl-C is only noted;
once they are done, a noted Ctrl-C ends the program with one line and status 130, like an
interrupted run, before anything is run. Used by the scripts in ``scripts/`` (through their
``_start.py``) and by the ``jaxnn-train`` console script (:func:`train`); this module and
``import jaxnn`` import nothing heavy, so the guard is in place before JAX loads.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

EXIT_INTERRUPTED = 130


def run(module: str, function: str) -> None:
    """Import ``module``, ``jaxnn.cli`` and everything ``jaxnn`` exports (JAX with it: the
    command lines import parts of it only once they run), then exit with the status of
    ``function()``."""
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        main = getattr(importlib.import_module(module), function)
        exit_with = importlib.import_module("jaxnn.cli").exit_with
        package = importlib.import_module("jaxnn")
        for name in package.__all__:
            getattr(package, name)
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        print("interrupted while starting: nothing was run", file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)  # as exit_with: no interpreter shutdown after Ctrl-C
    exit_with(main())


def train() -> None:
    """The ``jaxnn-train`` console command: :func:`jaxnn.cli.train_main` (as
    ``scripts/train.py``)."""
    run("jaxnn.cli", "train_main")
