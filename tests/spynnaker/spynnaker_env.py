"""Shared helper of the sPyNNaker tests: the Python 3.11 interpreter of ``.venv-spynnaker`` (sPyNNaker 1!7.4.1 and
the PyNN it pins) and a HOME folder whose ``.spynnaker.cfg`` selects a virtual SpiNN-5 board, or a skip.

``NEURODEPLOY_SPYNNAKER_PYTHON`` overrides the path. CI (``make test``) sets ``NEURODEPLOY_REQUIRE_SPYNNAKER=1``: a
missing interpreter then fails instead of skipping.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPYNNAKER_PYTHON = os.environ.get("NEURODEPLOY_SPYNNAKER_PYTHON", str(ROOT / ".venv-spynnaker" / "bin" / "python"))

#: a virtual SpiNN-5 board (48 chips): sPyNNaker maps, generates the data and "runs" without hardware
VIRTUAL_BOARD_CFG = "[Machine]\nvirtual_board = True\nversion = 5\n"


def spynnaker_python_or_skip() -> str:
    """:data:`SPYNNAKER_PYTHON` when it exists; otherwise skip the module, or fail when
    ``NEURODEPLOY_REQUIRE_SPYNNAKER=1``."""
    if Path(SPYNNAKER_PYTHON).exists():
        return SPYNNAKER_PYTHON
    if os.environ.get("NEURODEPLOY_REQUIRE_SPYNNAKER") == "1":
        pytest.fail(f"NEURODEPLOY_REQUIRE_SPYNNAKER=1 but no sPyNNaker Python at {SPYNNAKER_PYTHON}; run "
                    "`make .venv-spynnaker/.installed`", pytrace=False)
    pytest.skip(f"no sPyNNaker environment at {SPYNNAKER_PYTHON} (run `make .venv-spynnaker/.installed`)",
                allow_module_level=True)


def virtual_board_home(directory: Path) -> Path:
    """``directory`` with a ``.spynnaker.cfg`` for a virtual SpiNN-5 board (use it as HOME)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".spynnaker.cfg").write_text(VIRTUAL_BOARD_CFG)
    return directory
