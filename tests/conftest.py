"""Shared test settings.

* 64-bit types are enabled for the whole suite so tests can compare hand-written
  derivatives with autodiff in float64. Library code must therefore keep float32
  inputs in float32 on its own (a Python float is weakly typed, a ``jnp.array(0.5)``
  is not): many tests assert output dtypes, which catches accidental promotion.
* Warnings are errors (see ``filterwarnings`` in pyproject.toml).
* Strict rank promotion: an implicit broadcast between arrays of different ranks
  (``(batch, units) + (units,)``) raises, so every broadcast in the library and the tests
  is written out (``jnp.broadcast_to``, ``[None]``) and an accidental one is an error.
"""

from __future__ import annotations

import os
import pathlib

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def train_cli_usage_error(argv, capsys, needles) -> str:
    """Run ``jaxnn-train argv`` in-process; assert exit 2, nothing on stdout, and one
    ``error:`` line on stderr holding every needle. Returns that line."""
    from jaxnn import cli

    try:
        code = cli.train_main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """Directory holding the real data sets (``../shared/data``), or skip."""
    path = pathlib.Path(os.environ.get("JAXNN_SHARED_DATA", SHARED_DATA))
    if not path.is_dir():
        pytest.skip(f"real data sets not present at {path} (set JAXNN_SHARED_DATA to run)")
    return path


try:  # hypothesis: no deadline (the first call of a jitted function compiles)
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "jaxnn",
        deadline=None,
        max_examples=40,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "jaxnn"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass
