"""`run --backend lava` and `profile --backend lava` from the main (Python 3.11) environment.

Lava runs in the Python 3.10 environment (.venv-lava) through the worker protocol; the result must equal the
emulator integer for integer. CI sets NEURODEPLOY_REQUIRE_LAVA=1 so a missing Lava environment fails loudly.
"""

import json
from pathlib import Path

import numpy as np
from cli_runner import run_cli as cli
from lava_env import lava_python_or_skip

ROOT = Path(__file__).resolve().parents[1]
LAVA_PYTHON = lava_python_or_skip(module_level=True)




def test_digits_on_lava_equals_emulator(capsys, tmp_path):
    art = tmp_path / "art"
    code, _, err = cli(capsys, "compile", str(ROOT / "examples/digits/digits_snn.nir"), "--dt", "1e-3",
                       "--target", "loihi2", "--out", str(art))
    assert code == 0, err
    assert (art / "lava" / "description.json").is_file() and (art / "lava" / "rebuild.py").is_file()
    data = np.load(ROOT / "examples/digits/digits_test.npz")
    stim = tmp_path / "in.npz"
    np.savez(stim, spikes=data["spikes"][:2])
    results = {}
    for backend in ("emulator", "lava"):
        out = tmp_path / f"{backend}.npz"
        code, _, err = cli(capsys, "run", str(art), "--input", str(stim), "--output", str(out), "--backend", backend,
                           "--record", "u,v,spikes", "--lava-python", LAVA_PYTHON)
        assert code == 0, err
        results[backend] = dict(np.load(out))
    assert sorted(results["lava"]) == sorted(results["emulator"])
    for key, value in results["emulator"].items():
        np.testing.assert_array_equal(results["lava"][key], value, err_msg=key)
    assert results["emulator"]["spikes"].sum() > 0
    code, out, err = cli(capsys, "profile", str(art), "--input", str(stim), "--backend", "lava", "--json",
                         "--lava-python", LAVA_PYTHON)
    assert code == 0, err
    report = json.loads(out)
    assert report["equal"] is True and report["first_divergence"] is None


def test_missing_lava_python_is_a_clear_error(capsys, tmp_path):
    art = tmp_path / "art"
    assert cli(capsys, "compile", str(ROOT / "examples/digits/digits_snn.nir"), "--dt", "1e-3", "--target", "loihi2",
               "--out", str(art))[0] == 0
    stim = tmp_path / "in.npz"
    np.savez(stim, spikes=np.load(ROOT / "examples/digits/digits_test.npz")["spikes"][:1])
    code, _, err = cli(capsys, "run", str(art), "--input", str(stim), "--output", str(tmp_path / "o.npz"),
                       "--backend", "lava", "--lava-python", str(tmp_path / "no-python"))
    assert code == 2 and "Traceback" not in err and "no-python" in err
    assert not (tmp_path / "o.npz").exists()
