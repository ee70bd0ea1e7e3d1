"""The generated ``pynn/model.py``: it states the network (populations with their parameters, projections with
connector, receptor, synapse type and delays), gives the spikes of the former generic script on pyNN.brian2, and
``neurodeploy run --backend pynn`` executes it in a child process."""

import ast
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from pynn_networks import split_reservoir

from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends.pynn import nd_support, run
from neurodeploy.backends.pynn.emit import deploy, write_deployment
from neurodeploy.backends.pynn.runner import import_brian2
from neurodeploy.cli import main
from neurodeploy.errors import BackendError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

pytest.importorskip("pyNN.brian2")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyparsing 3 names used by Brian2 2.9
Q = QuantInfo(scale=100.0)
LEGACY = os.path.join(os.path.dirname(__file__), "legacy_model.py")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "art"
    main(["compile", "examples/digits/digits_snn.nir", "--target", "spinnaker", "--out", str(out), "--dt", "1e-3"])
    with np.load("examples/digits/digits_test.npz") as d:
        spikes = d["spikes"][:4]
    return load_artifact(out), spikes


def _calls(tree, name):
    """Every call ``sim.<name>(...)`` in the module."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == name and isinstance(n.func.value, ast.Name) and n.func.value.id == "sim"]


def test_script_states_every_population_and_projection(digits):
    art, _ = digits
    directory = art.path / "pynn"
    source = (directory / "model.py").read_text()
    params = json.loads((directory / "params.json").read_text())
    tree = ast.parse(source)
    assert "params.json" not in {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}  # not a loader
    assert not any(isinstance(n, ast.Import | ast.ImportFrom) and any(a.name == "json" for a in n.names)
                   for n in ast.walk(tree))
    # populations: one sim.Population per population, with its cell type and every parameter as a literal
    populations = _calls(tree, "Population")
    assert [ast.literal_eval(next(k.value for k in c.keywords if k.arg == "label")) for c in populations] == \
        list(params["populations"])
    for call in populations:
        label = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "label"))
        pop = params["populations"][label]
        assert ast.literal_eval(call.args[0]) == pop["size"]
        cell = call.args[1]
        assert cell.func.attr == pop["cell_type"]
        if pop["cell_type"] == "SpikeSourceArray":
            continue
        written = {k.arg: k.value for k in cell.keywords}
        assert {k: ast.literal_eval(v) for k, v in written.items() if k != "i_offset"} == pop["parameters"]
        assert ast.unparse(written["i_offset"]) == f"data['pop/{label}/i_offset']"
    # projections: pre, post, connector over the named synapse list, synapse type, receptor, label
    projections = _calls(tree, "Projection")
    assert len(projections) == len(params["projections"])
    for call, proj in zip(projections, params["projections"], strict=True):
        assert ast.unparse(call.args[0]) == f"pop[{proj['pre']!r}]" and ast.unparse(call.args[1]) == \
            f"pop[{proj['post']!r}]"
        assert ast.unparse(call.args[2]) == (f"nd.from_list(sim, data, {proj['label']!r}, "
                                             f"continuous_gain={proj['continuous_gain']!r})")
        assert ast.unparse(call.args[3]) == "sim.StaticSynapse()"
        keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        assert keywords == {"receptor_type": proj["receptor"], "label": proj["label"]}
        assert f"# {proj['label']}: {proj['pre']} -> {proj['post']}, {proj['synapses']} synapses" in source
    assert "delay 1 ms" in source  # the digits network's delays, stated per projection
    # the simulator workarounds are not in the network's file
    for quirk in ("import brian2", "before_groups", "additional_parameters", "FromListConnector", "defaultclock"):
        assert quirk not in source and quirk in Path(nd_support.__file__).read_text()
    assert (directory / "nd_support.py").read_text() == Path(nd_support.__file__).read_text()


def _legacy(directory, spikes, record):
    """The former generic script (tests/pynn/legacy_model.py) on ``directory``'s params.json and data.npz."""
    spec = importlib.util.spec_from_file_location("legacy_model", LEGACY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sim = import_brian2()
    params, data = module.load_model(directory)
    network = module.Network(sim, params, data, record=record)
    try:
        return network.run(spikes)
    finally:
        sim.end()


def readout_chain():
    """8 inputs -> 30 LIF with a bias (exp synapses) -> a 4-neuron integrator readout (its output is v)."""
    rng = np.random.default_rng(2)
    return Graph({"in": Input(shape=(8,)), "fc1": Dense(weight=rng.integers(-20, 60, (30, 8)) * 2, quant=Q),
                  "h": CubaLIF(shape=(30,), du=1200, dv=500, vth=60, bias=np.full(30, 3, np.int64), quant=Q),
                  "fc2": Dense(weight=rng.integers(-30, 40, (4, 30)), quant=Q),
                  "r": CubaLIF(shape=(4,), du=4095, dv=300, vth=2 ** 17 - 1, readout=True, quant=Q),
                  "out": Output()},
                 [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "r"), ("r", "out")]).validate()


@pytest.mark.parametrize("case", ["digits", "split_reservoir", "readout"])
def test_generated_script_gives_the_former_scripts_spikes(case, digits, tmp_path):
    if case == "digits":
        art, spikes = digits
        stimulus, directory, options = {"input": spikes}, art.path / "pynn", {}
    elif case == "readout":
        art = Artifact(readout_chain(), {"profile": "spinnaker1"})
        spikes = (np.random.default_rng(3).random((2, 25, 8)) < 0.3).astype(np.uint8)
        directory = tmp_path / "pynn"
        write_deployment(deploy(art), directory)
        stimulus, options = {"in": spikes}, {"directory": directory}
    else:
        art = Artifact(split_reservoir(), {"profile": "spinnaker1"})
        spikes = (np.random.default_rng(1).random((2, 40, 40)) < 0.15).astype(np.uint8)
        directory = tmp_path / "pynn"
        write_deployment(deploy(art, population_size=64), directory)
        stimulus, options = {"in": spikes}, {"directory": directory}
    old = _legacy(directory, stimulus, ("spikes", "v"))
    new, _ = run(art, spikes, record=("spikes", "v"), **options)
    assert sorted(new) == sorted(old)
    for key in old:  # spikes and v (the same float operations): equal element for element
        np.testing.assert_array_equal(new[key], old[key], err_msg=key)
        assert new[key].dtype == old[key].dtype
    assert sum(int(v.sum()) for k, v in new.items() if k.endswith("/spikes")) > 100  # an active network
    if case == "readout":  # the output is the integrator's v (Loihi units), not spikes
        assert new["out"].dtype == np.float64 and np.array_equal(new["out"], new["r/v"])
        assert np.isfinite(new["out"]).all() and np.abs(new["out"]).max() > 0


def test_run_executes_the_artifacts_script_in_a_child_process(digits, tmp_path):
    art, spikes = digits
    copy = tmp_path / "pynn"
    shutil.copytree(art.path / "pynn", copy)
    marker = tmp_path / "pid.txt"
    script = copy / "model.py"
    script.write_text(script.read_text().replace(
        "\ndef main(argv=None):\n",
        f"\ndef main(argv=None):\n    Path({str(marker)!r}).write_text(str(__import__('os').getpid()))\n", 1))
    before = set(sys.modules)
    x = spikes[:2].copy()
    x[1] = 0  # a sample without any spike
    arrays, raw = run(art, x, directory=copy)
    assert int(marker.read_text()) != os.getpid()  # main() ran, in another process
    assert raw["directory"] == str(copy) and {"build_seconds", "run_seconds"} <= set(raw)
    assert arrays["spikes"].shape == (2, 20, 10)
    assert arrays["spikes"][0].sum() > 0 and arrays["spikes"][1].sum() == 0  # no bias: silent without input
    loaded = {name for name in set(sys.modules) - before
              if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path))}
    assert not loaded and "nd_support" not in sys.modules
    # a script that fails: a BackendError naming it, its exit status and its message
    script.write_text("import sys\nsys.exit('boom: the script stopped here')\n")
    with pytest.raises(BackendError, match=r"model\.py exited with status 1 on brian2:\nboom: the script stopped"):
        run(art, spikes[:1], directory=copy)
