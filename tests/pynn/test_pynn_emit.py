"""The emitted PyNN deployment: files, the script's default simulator, data and parameter contracts."""

import ast
import json
import subprocess
import sys

import numpy as np
import pynn_networks as networks
import pytest

from neurodeploy.artifact import Artifact, base_manifest, load_artifact
from neurodeploy.backends.pynn import emit
from neurodeploy.backends.pynn.weights import shift_for
from neurodeploy.compiler import write_artifact
from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir import IF, Dense, Graph, Input, Output


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("emit")
    files = emit(networks.reservoir(), out)
    return out, files


def test_files_written_and_returned(emitted):
    out, files = emitted
    assert files == ["pynn/model.py", "pynn/nd_support.py", "pynn/data.npz", "pynn/params.json",
                     "pynn/quantization.json", "pynn/quantization.npz", "pynn/mapping.json"]
    assert all((out / f).is_file() for f in files)


def test_script_imports_pyNN_spiNNaker_by_default(emitted):
    source = (emitted[0] / "pynn" / "model.py").read_text()
    support = (emitted[0] / "pynn" / "nd_support.py").read_text()
    assert "\n        import pyNN.spiNNaker as sim  # SpiNNaker through sPyNNaker\n" in support
    assert '\nSIMULATOR = "spiNNaker"  # change to "brian2"' in source  # the one line to change
    assert "sim = nd.load_simulator(args.simulator)" in source and 'default=SIMULATOR' in source
    tree = ast.parse(source)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)] == ["build", "run", "main"]


def test_script_without_spynnaker_says_what_to_install(emitted, tmp_path):
    np.savez(tmp_path / "x.npz", spikes=np.zeros((1, 3, 20), np.uint8))
    proc = subprocess.run([sys.executable, str(emitted[0] / "pynn" / "model.py"), "--input", str(tmp_path / "x.npz"),
                           "--output", str(tmp_path / "y.npz")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "pyNN.spiNNaker" in proc.stderr and "--simulator brian2" in proc.stderr


def test_data_contract(emitted):
    out = emitted[0] / "pynn"
    params = json.loads((out / "params.json").read_text())
    with np.load(out / "data.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    assert list(params["populations"]) == ["in", "res", "o"]  # creation order (the placer follows it)
    labels = [p["label"] for p in params["projections"]]
    assert {"rec.exc", "rec.inh", "rec.exc.1", "rec.inh.1"} <= set(labels)  # recurrent, both signs, duplicates
    for proj in params["projections"]:
        key = f"proj/{proj['label']}/"
        pre, post, w, d = (data[key + f] for f in ("pre", "post", "weight", "delay"))
        assert (w > 0).all() if proj["receptor"] == "excitatory" else (w < 0).all()
        assert len(set(zip(pre.tolist(), post.tolist()))) == pre.size  # no duplicate pair in a projection
        assert (np.diff(pre.astype(np.int64) * 10**6 + post) > 0).all()  # sorted by (pre, post)
        assert d.min() >= 1.0 and np.array_equal(d, np.rint(d))  # whole 1 ms steps, at least one
        pop = params["populations"][proj["post"]]
        s = pop["shifts"][proj["receptor"]]
        q = np.abs(w) / 2.0 ** (s - 15)
        np.testing.assert_array_equal(q, np.rint(q))  # on sPyNNaker's 16-bit grid
        assert proj["continuous_gain"] == pop["continuous_gain"]
    for name, pop in params["populations"].items():
        if pop["cell_type"] == "SpikeSourceArray":
            continue
        assert pop["parameters"]["tau_refrac"] == 0.0 and pop["parameters"]["v_reset"] == 0.0
        assert [shift_for(m) for m in pop["max_expected_summed_weight"]] == [
            pop["shifts"]["excitatory"], pop["shifts"]["inhibitory"]]
        assert data[f"pop/{name}/i_offset"].shape == (pop["size"],)
    assert params["populations"]["o"]["cell_type"] == "IF_curr_delta"  # du = 4095
    assert params["outputs"] == {"out": {"population": "o", "field": "spikes"}}


def test_write_artifact_emits_through_the_registry(tmp_path):
    graph = networks.mlp()
    manifest = base_manifest(graph, "spinnaker", "spinnaker1")
    manifest.update(backend="pynn", latency_steps={})
    path = write_artifact(Artifact(graph, manifest), tmp_path / "art")
    art = load_artifact(path)
    assert art.manifest["backend_files"][0] == "pynn/model.py"
    mapping = json.loads((path / "pynn" / "mapping.json").read_text())
    assert mapping["application_cores"] == 5 and mapping["machine"] == "spinnaker1"


def test_float_graphs_and_graded_spikes_are_refused(tmp_path):
    g = Graph({"in": Input(shape=(2,)), "fc": Dense(weight=np.ones((2, 2))), "n": IF(shape=(2,)), "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    with pytest.raises(UnsupportedOpError, match="node 'n'.*float-form neuron.*Fix: compile"):
        emit(g, tmp_path)
    q = networks.mlp()
    nodes = dict(q.nodes)
    nodes["fc1"] = nodes["fc1"].replace(num_message_bits=8)
    with pytest.raises(UnsupportedOpError, match="node 'fc1'.*graded spikes"):
        emit(Graph(nodes, q.edges), tmp_path)
