"""``population_size``: the emitted script builds a large node as several PyNN populations (one projection per
connected block pair) and gives exactly the spikes and voltages of the one-population script; the mapping report
counts what the script built."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from pynn_networks import SPLIT_N as N
from pynn_networks import split_reservoir as reservoir

from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends.pynn import deploy, emit, run
from neurodeploy.backends.pynn.emit import write_deployment
from neurodeploy.backends.pynn.runner import import_brian2
from neurodeploy.cli import main
from neurodeploy.errors import InputError
from neurodeploy.ir import save_graph

pytest.importorskip("pyNN.brian2")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyparsing 3 names used by Brian2 2.9


@pytest.fixture(scope="module")
def runs():
    art = Artifact(reservoir(), {"profile": "spinnaker1"})
    x = (np.random.default_rng(1).random((2, 40, 40)) < 0.15).astype(np.uint8)
    whole, _ = run(art, x, record=("spikes", "v"))
    split, raw = run(art, x, record=("spikes", "v"), population_size=64)
    return art, x, whole, split, raw


def test_split_script_gives_exactly_the_unsplit_spikes_and_voltages(runs):
    _, _, whole, split, raw = runs
    assert sorted(split) == sorted(whole)
    assert split["res/spikes"].shape == (2, 40, N) and split["res/spikes"].dtype == np.uint8
    spikes = [key for key in whole if not key.endswith("/v")]
    assert sorted(spikes) == ["o/spikes", "out", "res/spikes", "res_spikes"]
    for key in spikes:  # integers: every spike of every neuron at the same step
        np.testing.assert_array_equal(split[key], whole[key], err_msg=key)
    for key in ("res/v", "o/v"):
        # the same weights, delays and parameters per neuron, but a reservoir neuron's input now arrives through
        # several Brian2 Synapses objects (one per pre block), so one step's contributions are added in another
        # order: float64 sums differ in the last bits (measured: <= 1.1e-12 relative), never by a Loihi unit
        np.testing.assert_allclose(split[key], whole[key], rtol=1e-9, atol=1e-9, err_msg=key)
    assert np.array_equal(split["o/v"], whole["o/v"])  # the readout is not split: its sums keep their order
    assert whole["res/spikes"].sum() > 200 and whole["out"].sum() > 5  # an active network
    assert any("population_size" in note for note in raw["notes"])


class CountingSim:
    """A PyNN backend module that remembers every Population and Projection a script creates."""

    def __init__(self, sim):
        self.sim, self.populations, self.projections = sim, [], []

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def Population(self, *args, **kwargs):  # noqa: N802 (PyNN's name)
        self.populations.append(self.sim.Population(*args, **kwargs))
        return self.populations[-1]

    def Projection(self, *args, **kwargs):  # noqa: N802 (PyNN's name)
        self.projections.append(self.sim.Projection(*args, **kwargs))
        return self.projections[-1]


def test_mapping_report_counts_what_the_script_built(runs, tmp_path):
    art, *_ = runs
    dep = deploy(art, population_size=64)
    write_deployment(dep, tmp_path / "pynn")
    spec = importlib.util.spec_from_file_location("split_model", tmp_path / "pynn" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the test imports the script to count what it builds; neurodeploy never does
    sim = CountingSim(import_brian2())
    module.nd.setup(sim, module.TIMESTEP)
    try:
        module.build(sim, module.nd.load_data(tmp_path / "pynn" / "data.npz"), {"in": [[] for _ in range(40)]})
        built = {"populations": len(sim.populations), "projections": len(sim.projections),
                 "synapses": sum(p.size() for p in sim.projections)}
        labels = [p.label for p in sim.populations]
    finally:
        sim.end()
    assert labels == list(dep.mapping["populations"])  # the mapping's populations, in creation order
    pynn = dep.mapping["pynn"]
    assert {k: pynn[k] for k in built} == built
    assert pynn["split"] == {"res": [f"res[{a}:{min(a + 64, N)}]" for a in range(0, N, 64)]}
    assert built["populations"] == 1 + 5 + 1  # the input, 5 reservoir blocks, the readout
    # every block is a population of the mapping (no delay extension here: delays <= 8 steps fit on the cores)
    neuron_pops = {n for n, p in dep.mapping["populations"].items() if p["kind"] == "neuron"}
    assert neuron_pops == set(pynn["split"]["res"]) | {"o"}
    assert dep.mapping["neuron_cores"] == 6  # a core per block (64 <= 256) and one for the readout
    res_cores = [c for c in dep.mapping["per_core"] if c["node"] == "res"]  # each core names its IR node's neurons
    assert sorted((c["node_start"], c["node_stop"]) for c in res_cores) == [(a, min(a + 64, N)) for a in
                                                                           range(0, N, 64)]
    whole = deploy(art)
    assert whole.mapping["pynn"]["populations"] == 3 and whole.mapping["neuron_cores"] == 3  # 256 + 44, and o
    assert pynn["synapses"] == whole.mapping["pynn"]["synapses"]  # the same synapses, regrouped
    assert built["projections"] > whole.mapping["pynn"]["projections"]


def test_cli_compile_with_population_size_and_the_script_as_a_subprocess(runs, tmp_path):
    art, x, whole, split, _ = runs
    g = tmp_path / "reservoir.ndg"
    save_graph(art.graph, g)
    out = tmp_path / "art"
    main(["compile", str(g), "--target", "spinnaker", "--out", str(out), "--population-size", "64"])
    params = json.loads((out / "pynn" / "params.json").read_text())
    mapping = json.loads((out / "pynn" / "mapping.json").read_text())
    assert params["nodes"]["res"]["populations"] == mapping["pynn"]["split"]["res"]
    assert len(params["populations"]) == mapping["pynn"]["populations"]
    assert len(params["projections"]) == mapping["pynn"]["projections"]
    assert load_artifact(out).manifest["backend_options"] == {"population_size": 64}
    np.savez(tmp_path / "in.npz", spikes=x)
    proc = subprocess.run([sys.executable, str(out / "pynn" / "model.py"), "--simulator", "brian2",
                           "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"),
                           "--record", "spikes"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "out.npz") as res:
        for key in ("out", "res_spikes", "res/spikes", "o/spikes"):
            np.testing.assert_array_equal(res[key], split[key], err_msg=key)
    # neurodeploy run on the compiled artifact runs that split script and returns the unsplit network's spikes
    main(["run", str(out), "--backend", "pynn", "--input", str(tmp_path / "in.npz"), "--output",
          str(tmp_path / "run.npz"), "--record", "spikes", "--no-progress"])
    with np.load(tmp_path / "run.npz") as res:
        assert sorted(res.files) == ["o/spikes", "out", "res/spikes", "res_spikes"]
        for key in res.files:
            np.testing.assert_array_equal(res[key], whole[key], err_msg=key)


def test_bad_population_sizes_are_refused(tmp_path):
    art = Artifact(reservoir(), {"profile": "spinnaker1"})
    for bad in (0, -5, 2.5, "64"):
        with pytest.raises(InputError, match="population_size"):
            deploy(art, population_size=bad)
    with pytest.raises(InputError, match="population_size"):
        emit(art, tmp_path, population_size=0)
