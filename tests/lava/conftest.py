"""Gate for the Lava suite: Lava tests request the ``lava`` fixture.

Without lava-nc they are skipped with the reason printed (``-ra``), unless ``NEURODEPLOY_REQUIRE_LAVA=1`` (CI),
where each of them fails loudly. Run them with ``.venv-lava/bin/python -m pytest tests/lava``.
"""

from __future__ import annotations

import os

import pytest


def _lava_problem() -> str | None:
    try:
        import lava.magma.core.run_configs  # noqa: F401
        import lava.proc.lif.process  # noqa: F401
    except ImportError as err:
        return f"lava-nc is not importable in this interpreter ({err}); use .venv-lava/bin/python -m pytest tests/lava"
    return None


LAVA_PROBLEM = _lava_problem()


@pytest.fixture(scope="session")
def lava() -> None:
    """Skip (or fail when NEURODEPLOY_REQUIRE_LAVA=1) if lava-nc cannot be imported."""
    if LAVA_PROBLEM is None:
        return
    if os.environ.get("NEURODEPLOY_REQUIRE_LAVA") == "1":
        pytest.fail(f"NEURODEPLOY_REQUIRE_LAVA=1 but {LAVA_PROBLEM}", pytrace=False)
    pytest.skip(LAVA_PROBLEM)
