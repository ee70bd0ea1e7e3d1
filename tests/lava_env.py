"""Shared test helper: the Python 3.10 interpreter with lava-nc (``.venv-lava``) that ``backends/lava`` reaches
through its worker from the main environment, or a skip with the reason.

``NEURODEPLOY_LAVA_PYTHON`` overrides the path. CI sets ``NEURODEPLOY_REQUIRE_LAVA=1``: a missing interpreter then
fails loudly instead of skipping.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAVA_PYTHON = os.environ.get("NEURODEPLOY_LAVA_PYTHON", str(ROOT / ".venv-lava" / "bin" / "python"))


def lava_python_or_skip(module_level: bool = False) -> str:
    """:data:`LAVA_PYTHON` when it exists; otherwise skip (``module_level``: the whole module), or fail when
    ``NEURODEPLOY_REQUIRE_LAVA=1``."""
    if Path(LAVA_PYTHON).exists():
        return LAVA_PYTHON
    if os.environ.get("NEURODEPLOY_REQUIRE_LAVA") == "1":
        pytest.fail(f"NEURODEPLOY_REQUIRE_LAVA=1 but no Lava Python at {LAVA_PYTHON}; run `make envs`", pytrace=False)
    pytest.skip(f"no Lava environment at {LAVA_PYTHON} (run `make envs`)", allow_module_level=module_level)
