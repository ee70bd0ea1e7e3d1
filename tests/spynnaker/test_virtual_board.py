"""Emitted ``pynn/model.py`` scripts run unchanged on sPyNNaker 1!7.4.1 (virtual SpiNN-5 board) with their stimulus,
and sPyNNaker places exactly the cores ``mapping.json`` reports.

Artifacts are compiled here, in the main environment (``neurodeploy compile ... --target spinnaker`` or
``compile_graph`` + ``write_artifact``), then each script runs as ``python model.py --input ... --output ...`` in
a child process under ``.venv-spynnaker/bin/python`` (through ``virtual_board.py``, which only records sPyNNaker's
placements at each ``sim.end()``), with HOME pointing at a ``.spynnaker.cfg`` that selects a virtual board. A
virtual board maps, generates every core's data (spike times included) and records nothing, so the checks are: the
script exits 0 and writes every output with the stimulus's batch and time; per sample (each sample is a fresh
network), every population's application cores -- sPyNNaker's own placements -- equal ``mapping.json``, and each
SpikeSourceArray carries exactly the stimulus's spikes of that sample.

CI (``make test``) sets ``NEURODEPLOY_REQUIRE_SPYNNAKER=1``: without ``.venv-spynnaker`` these tests fail.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from spynnaker_env import spynnaker_python_or_skip, virtual_board_home

PYTHON = spynnaker_python_or_skip()
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pynn"))

import pynn_networks as networks  # noqa: E402
from test_pynn_split import reservoir  # noqa: E402

from neurodeploy.artifact import load_artifact  # noqa: E402
from neurodeploy.cli import main  # noqa: E402
from neurodeploy.ir import save_graph  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_on_virtual_board(artifact_dir: Path, stimulus: dict[str, np.ndarray], tmp: Path) -> dict:
    """Run ``artifact_dir/pynn/model.py`` on the virtual board; return its result arrays and placement records."""
    np.savez(tmp / "stimulus.npz", **stimulus)
    home = virtual_board_home(tmp / "home")
    command = [PYTHON, str(HERE / "virtual_board.py"), str(artifact_dir / "pynn"), str(tmp / "placements.json"), "--",
               "--input", str(tmp / "stimulus.npz"), "--output", str(tmp / "result.npz"), "--record", "spikes"]
    proc = subprocess.run(command, cwd=tmp, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "wrote" in proc.stdout
    with np.load(tmp / "result.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {"arrays": arrays, "runs": json.loads((tmp / "placements.json").read_text())}


def check(artifact_dir: Path, stimulus: dict[str, np.ndarray], tmp: Path) -> dict:
    """Run on the virtual board and check outputs, cores per population and stimulus spikes (module docstring)."""
    res = run_on_virtual_board(artifact_dir, stimulus, tmp)
    mapping = json.loads((artifact_dir / "pynn" / "mapping.json").read_text())
    params = json.loads((artifact_dir / "pynn" / "params.json").read_text())
    batch, steps = next(iter(stimulus.values())).shape[:2]
    for name in params["outputs"]:
        assert res["arrays"][name].shape[:2] == (batch, steps), name
    expected = {label: p["cores"] for label, p in mapping["populations"].items()}
    assert len(res["runs"]) == batch  # one fresh network per sample
    for b, run in enumerate(res["runs"]):
        assert run["cores"] == expected, (b, run["cores"], expected)
        assert sum(run["cores"].values()) == mapping["application_cores"]
        sent = {name: int(np.asarray(x[b]).sum()) for name, x in stimulus.items()}
        assert run["spikes"] == sent, (b, run["spikes"], sent)
    assert sum(int(np.asarray(x).sum()) for x in stimulus.values()) > 0  # a real stimulus
    return res


def compile_cli(graph, tmp: Path, *options: str) -> Path:
    save_graph(graph, tmp / "net.ndg")
    out = tmp / "art"
    main(["compile", str(tmp / "net.ndg"), "--target", "spinnaker", "--out", str(out), *options])
    return out


def random_stimulus(shape, steps=20, batch=2, rate=0.2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((batch, steps, *shape)) < rate).astype(np.uint8)


def test_digits_example(tmp_path):
    out = tmp_path / "art"
    main(["compile", str(ROOT / "examples/digits/digits_snn.nir"), "--target", "spinnaker", "--out", str(out),
          "--dt", "1e-3"])
    with np.load(ROOT / "examples/digits/digits_test.npz") as d:
        spikes = d["spikes"][:3].copy()
    spikes[1] = 0  # a sample without any spike (sPyNNaker 1!7.4.1 takes no list of empty spike lists)
    check(out, {"input": spikes}, tmp_path)


def test_recurrent_reservoir(tmp_path):
    """A 300-neuron recurrent reservoir: mixed signs (excitatory and inhibitory projections), delays 1..8 steps,
    pairs repeated at other delays (layered projections), a 5-neuron readout."""
    out = compile_cli(reservoir(), tmp_path)
    params = json.loads((out / "pynn" / "params.json").read_text())
    assert {p["label"] for p in params["projections"]} >= {"rec.exc", "rec.inh", "rec.exc.1"}
    check(out, {"in": random_stimulus((40,))}, tmp_path)


def test_delay_extensions(tmp_path):
    """Delays up to 71 steps: sPyNNaker adds a delay-extension core, as mapping.json says."""
    out = compile_cli(networks.delayed(), tmp_path)
    mapping = json.loads((out / "pynn" / "mapping.json").read_text())
    assert mapping["delay_extension_cores"] == 1
    check(out, {"in": random_stimulus((300,), rate=0.05)}, tmp_path)


def test_split_population(tmp_path):
    """--population-size 64: the recurrent reservoir as 5 populations, one projection per connected block pair."""
    out = compile_cli(reservoir(), tmp_path, "--population-size", "64")
    params = json.loads((out / "pynn" / "params.json").read_text())
    assert params["nodes"]["res"]["populations"] == [f"res[{a}:{min(a + 64, 300)}]" for a in range(0, 300, 64)]
    res = check(out, {"in": random_stimulus((40,))}, tmp_path)
    assert res["arrays"]["out"].shape == (2, 20, 5)


def test_lsm_reservoir(tmp_path):
    """The LSM family's reservoir (216 neurons on a 6x6x6 grid, E/I, distance-dependent delays), host readout."""
    from neurodeploy.compiler import compile_graph, write_artifact
    from neurodeploy.families.lsm import ReservoirSpec, build

    lsm = build(ReservoirSpec(grid=(6, 6, 6)))
    graph = lsm.graph()
    x = random_stimulus((lsm.n_in,), steps=30, batch=8, rate=0.1, seed=1)
    out = write_artifact(compile_graph(graph, "spinnaker", calibration=x), tmp_path / "art")
    check(out, {"input": x[:2]}, tmp_path)


def test_hlop_artifact(tmp_path):
    """The HLOP family's inference network (Linear 64-128, Leaky, Linear 128-10) as families.hlop.deploy compiles it
    for spinnaker (weights as initialised: the structure and the mapping do not depend on training)."""
    from neurodeploy.compiler import write_artifact
    from neurodeploy.families import targets
    from neurodeploy.families.hlop.deploy import calibration_spikes, export_graph, padded, test_spikes
    from neurodeploy.families.hlop.learner import HLOPConfig, build_net, split_digits

    cfg = HLOPConfig()
    net, data = build_net(cfg), split_digits(0)
    graph = export_graph(net)
    lat = int(graph.meta["latency_steps"])
    artifacts, _ = targets.compile_targets(graph, padded(calibration_spikes(data, cfg, count=32), lat),
                                           ("spinnaker",))
    out = write_artifact(artifacts["spinnaker"], tmp_path / "art")
    x = padded(test_spikes(data, cfg, 0)[0][:2], lat)
    check(out, {load_artifact(out).graph.inputs[0]: x}, tmp_path)


# untrained, some attention LIFs stay silent on the calibration digits and the quantizer says so; the mapping and
# the run do not depend on activity
@pytest.mark.filterwarnings("ignore::neurodeploy.errors.QuantizationWarning")
def test_sdt_artifact(tmp_path):
    """The spike-driven transformer family (conv stem, v1 attention with its Q/K/V LIFs and sign-split products,
    MLP, LIF head) lowered and compiled for spinnaker as tests/test_sdt_deploy.py does, in a reduced configuration
    (16 channels, one block, two heads; weights as initialised): the shipped 48-channel model takes a minute to
    quantize and 25 s per sample for sPyNNaker to generate its 1.8M synapses' data (it maps and runs the same way:
    docs/spinnaker.md)."""
    import torch

    from neurodeploy.compiler import write_artifact
    from neurodeploy.families import targets
    from neurodeploy.families.sdt.lower import lower
    from neurodeploy.families.sdt.model import SDTConfig, SDTDigits, encode
    from neurodeploy.families.sdt.train import load_digits_split

    data = load_digits_split()
    torch.manual_seed(0)
    cfg = SDTConfig(attention="v1", channels=16, blocks=1, heads=2, mlp_ratio=2)
    lowered = lower(SDTDigits(cfg).to(torch.float64).eval())
    calibration = lowered.stimulus(encode(data.x_train[:4], cfg.steps, cfg.levels))
    artifacts, _ = targets.compile_targets(lowered.graph, calibration, ("spinnaker",))
    out = write_artifact(artifacts["spinnaker"], tmp_path / "art")
    mapping = json.loads((out / "pynn" / "mapping.json").read_text())
    assert mapping["pynn"]["populations"] > 10 and mapping["pynn"]["synapses"] > 100_000
    x = lowered.stimulus(encode(data.x_test[:1], cfg.steps, cfg.levels)).astype(np.uint8)
    check(out, {lowered.graph.inputs[0]: x}, tmp_path)
