"""The sPyNNaker gate: with ``NEURODEPLOY_REQUIRE_SPYNNAKER=1`` (CI) a missing interpreter fails the virtual-board
tests; without it they are skipped with the reason."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _collect(require: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NEURODEPLOY_REQUIRE_SPYNNAKER"}
    env["NEURODEPLOY_SPYNNAKER_PYTHON"] = str(HERE / "no-such-python")
    if require:
        env["NEURODEPLOY_REQUIRE_SPYNNAKER"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           str(HERE / "test_virtual_board.py")], cwd=HERE.parents[1], env=env, capture_output=True,
                          text=True, timeout=300)


def test_missing_spynnaker_fails_when_required_and_skips_otherwise():
    required = _collect(require=True)
    assert required.returncode != 0
    assert "NEURODEPLOY_REQUIRE_SPYNNAKER=1 but no sPyNNaker Python at" in required.stdout + required.stderr
    optional = _collect(require=False)
    assert optional.returncode == 5, optional.stdout[-2000:]  # nothing collected: the module was skipped
    assert "SKIPPED" in optional.stdout and "no sPyNNaker environment at" in optional.stdout
