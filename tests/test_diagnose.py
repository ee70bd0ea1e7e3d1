"""Degenerate compiles are named (issue 16 item 4): silent or saturated layers, thresholds at the field maximum and
weights rounded to zero give a warning naming the node and the probable cause, in compile and in inspect."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli as cli

from neurodeploy.compiler import compile_graph
from neurodeploy.errors import QuantizationWarning
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, save_graph
from neurodeploy.model_loading import load_model

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits_snn.nir"


def _net(w1, vth=1.0):
    return Graph({"in": Input(shape=(w1.shape[1],)), "fc": Dense(weight=w1),
                  "h": CubaLIF(shape=(w1.shape[0],), du=1.0, dv=0.1, vth=vth), "out": Output()},
                 [("in", "fc"), ("fc", "h"), ("h", "out")])


def _kinds(graph):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        art = compile_graph(graph, "emulator")
    found = {(f["node"], f["kind"]) for f in art.quantization["degenerate"]}
    lines = [str(w.message) for w in caught if issubclass(w.category, QuantizationWarning)]
    assert len(lines) == len(found)
    return found, lines


def test_a_healthy_net_has_no_finding():
    w = np.random.default_rng(0).normal(0.3, 0.5, (16, 20))
    assert _kinds(_net(w))[0] == set()


def test_the_wrong_dt_is_named_with_its_decays():
    """The bundled digits NIR at dt = 1 us instead of 1 ms: no leak, input gain ~0: silent layers, the cause named."""
    good = _kinds(load_model(str(DIGITS), dt=1e-3))[0]
    assert good == set()
    found, lines = _kinds(load_model(str(DIGITS), dt=1e-6))
    assert ("net.1", "silent") in found and ("net.3", "threshold_max") in found
    assert all("check --dt" in line and "dv = 0" in line for line in lines)


def test_saturated_layer_and_zeroed_weights():
    rng = np.random.default_rng(1)
    assert ("h", "saturated") in _kinds(_net(np.full((8, 20), 5.0)))[0]
    w = rng.normal(0, 1e-4, (16, 20))  # tiny weights beside a few large ones: 8 bits cannot hold both
    w[:, 0] = 1.0
    assert ("fc", "weights_zeroed") in _kinds(_net(w))[0]


def test_cli_compile_warns_and_inspect_shows(capsys, tmp_path):
    out = tmp_path / "art"
    code, _, err = cli(capsys, "compile", DIGITS, "--dt", "1e-6", "--out", out)
    assert code == 0
    assert "warning: node 'net.1' (silent)" in err and "Traceback" not in err
    code, text, _ = cli(capsys, "inspect", out)
    assert code == 0 and "degenerate layers on the calibration stimulus:" in text and "node 'net.1' (silent)" in text


@pytest.fixture
def quiet_model(tmp_path):
    path = tmp_path / "m.ndg"
    save_graph(_net(np.random.default_rng(0).normal(0.3, 0.5, (16, 20))), path)
    return path


def test_cli_compile_of_a_healthy_model_prints_no_warning(capsys, tmp_path, quiet_model):
    code, _, err = cli(capsys, "compile", quiet_model, "--out", tmp_path / "art")
    assert code == 0 and "warning" not in err


def test_a_bias_driven_clock_is_not_called_saturated():
    """A neuron with no incoming synapse, driven by its bias to spike every step (the SDT's clock), is by design."""
    w = np.random.default_rng(0).normal(0.3, 0.5, (16, 20))
    g = _net(w)
    nodes = dict(g.nodes, clock=CubaLIF(shape=(1,), du=1.0, dv=0.0, vth=0.5, bias=1.0), out2=Output())
    graph = Graph(nodes, list(g.edges) + [("clock", "out2")])
    found, _ = _kinds(graph)
    assert not any(node == "clock" for node, _ in found), found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = compile_graph(graph, "emulator").quantization["nodes"]["clock"]["agreement"]["network"]
    assert net["int_spikes"] > 0.95 * net["bins"], net  # it is saturated: only the rule keeps it unnamed
