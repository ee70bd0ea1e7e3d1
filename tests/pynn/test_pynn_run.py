"""The emitted script on pyNN.brian2: run(), the script as a subprocess, duplicates, agreement with the emulator.

Brian2 runs take seconds each (code generation, per-sample resets): the networks here are small and shared.
"""

import subprocess
import sys

import numpy as np
import pynn_networks as networks
import pytest

from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends import emulator
from neurodeploy.backends.pynn import agreement, run
from neurodeploy.cli import main
from neurodeploy.errors import InputError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse

pytest.importorskip("pyNN.brian2")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyparsing 3 names used by Brian2 2.9
Q = QuantInfo(scale=100.0)
DIGITS = "examples/digits/digits_snn.nir"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The bundled digits classifier compiled for SpiNNaker, and 6 test samples."""
    out = tmp_path_factory.mktemp("digits") / "art"
    main(["compile", DIGITS, "--target", "spinnaker", "--out", str(out), "--dt", "1e-3"])
    with np.load("examples/digits/digits_test.npz") as d:
        spikes = d["spikes"][:6]
    return load_artifact(out), spikes


def test_run_matches_the_script_run_as_a_subprocess(digits, tmp_path):
    art, spikes = digits
    arrays, raw = run(art, spikes, record=("spikes", "v"))
    assert raw["directory"] == str(art.path / "pynn")  # the deployed script itself ran
    assert arrays["spikes"].shape == (6, 20, 10) and arrays["output"].dtype == np.uint8
    np.savez(tmp_path / "in.npz", spikes=spikes)
    proc = subprocess.run([sys.executable, str(art.path / "pynn" / "model.py"), "--simulator", "brian2",
                           "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"),
                           "--record", "spikes,v"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "out.npz") as out:
        assert sorted(out.files) == sorted(arrays)
        for key in out.files:
            np.testing.assert_array_equal(out[key], arrays[key])


def test_digits_agree_with_the_emulator(digits):
    art, spikes = digits
    ref, _ = emulator.run(art, spikes, record=("spikes", "v"))
    other, raw = run(art, spikes, record=("spikes", "u", "v"))
    assert raw["omitted"] == ["u"] and "net.1/u" not in other
    rep = agreement(ref, other, art)
    assert rep["same_decision"] == 1.0
    assert rep["spike_jaccard_all"] > 0.97
    for pop in rep["populations"].values():
        assert pop["count_correlation"] > 0.99 and pop["v_rms_error_thresholds"] < 0.1


def test_exp_and_delta_chain_with_duplicate_synapses_equals_the_emulator():
    """Duplicate (pre, post) synapses with different weights and delays, both receptors, a recurrent edge:
    stock pyNN.brian2 connectors would collapse the duplicates; here every spike equals the emulator's."""
    rng = np.random.default_rng(5)
    row = np.r_[np.arange(8), np.arange(8)]
    col = np.r_[np.arange(8), np.arange(8)]  # each pair twice, at two delays with different weights
    syn = Sparse(out_shape=(8,), in_size=8, row=row, col=col, value=np.r_[np.full(8, 40), np.full(8, 26)],
                 delays=np.r_[np.zeros(8, int), np.full(8, 3)], quant=Q)
    rec = Dense(weight=np.where(rng.random((8, 8)) < 0.3, -30, 0), quant=Q)
    g = Graph({"in": Input(shape=(8,)), "syn": syn,
               "h": CubaLIF(shape=(8,), du=1500, dv=600, vth=60, quant=Q), "rec": rec,
               "w2": Dense(weight=np.full((3, 8), 20), quant=Q),
               "o": CubaLIF(shape=(3,), du=4095, dv=900, vth=50, quant=Q), "out": Output()},
              [("in", "syn"), ("syn", "h"), ("h", "rec"), ("rec", "h"), ("h", "w2"), ("w2", "o"), ("o", "out")])
    x = (rng.random((2, 30, 8)) < 0.25).astype(np.uint8)
    art = Artifact(g.validate(), {"profile": "spinnaker1"})
    ref, _ = emulator.run(art, x, record=("spikes",))
    other, _ = run(art, x, record=("spikes",))
    for key in ("h/spikes", "o/spikes", "spikes"):
        np.testing.assert_array_equal(other[key], ref[key], err_msg=key)
    assert ref["h/spikes"].sum() > 20 and ref["o/spikes"].sum() > 5


def test_stock_from_list_connector_collapses_duplicates():
    """Why the script does not use pyNN.brian2's FromListConnector: duplicate pairs all get the last weight."""
    import pyNN.brian2 as sim

    sim.setup(timestep=1.0)
    try:
        a, b = sim.Population(1, sim.SpikeSourceArray()), sim.Population(1, sim.IF_curr_exp())
        conn = sim.FromListConnector([(0, 0, 0.5, 1.0), (0, 0, 2.0, 1.0)], column_names=["weight", "delay"])
        proj = sim.Projection(a, b, conn, sim.StaticSynapse())
        weights = sorted(float(w) for w in proj._brian2_synapses[0][0].weight[:] / 1e-9)
    finally:
        sim.end()
    assert weights == [2.0, 2.0]  # not [0.5, 2.0]


def test_bad_stimulus_is_refused():
    art = Artifact(networks.mlp(), {"profile": "spinnaker1"})
    with pytest.raises(InputError, match="values other than 0 and 1"):
        run(art, np.full((1, 5, 100), 2, np.uint8))
    with pytest.raises(InputError, match=r"input 'in' must be shaped \[B, T, 100\]"):
        run(art, np.zeros((1, 5, 99), np.uint8))
    with pytest.raises(InputError, match="cannot record"):
        run(art, np.zeros((1, 5, 100), np.uint8), record=("w",))


def test_cli_run_and_profile_with_the_pynn_backend(digits, tmp_path, capsys):
    art, spikes = digits
    np.savez(tmp_path / "in.npz", spikes=spikes[:3])
    main(["run", str(art.path), "--backend", "pynn", "--input", str(tmp_path / "in.npz"),
          "--output", str(tmp_path / "out.npz"), "--no-progress"])
    with np.load(tmp_path / "out.npz") as out:
        assert {"spikes", "output"} <= set(out.files) and out["spikes"].shape == (3, 20, 10)
    main(["profile", str(art.path), "--backend", "pynn", "--input", str(tmp_path / "in.npz"), "--json"])
    assert '"same_decision": 1.0' in capsys.readouterr().out
