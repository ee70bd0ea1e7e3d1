"""NIR <-> IR: every node type, forward-Euler parameter maps, cycles, subgraphs, round trips and bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

nir = pytest.importorskip("nir")

from neurodeploy.converters.nir import from_nir, to_nir, write_nir  # noqa: E402
from neurodeploy.emulator import simulate  # noqa: E402
from neurodeploy.errors import ConversionError, SerializationError, UnsupportedOpError  # noqa: E402
from neurodeploy.ir.ops import IF, LI, AvgPool2d, Conv2d, CubaLIF, Delay, Dense, Flatten, Scale, SumPool2d  # noqa: E402
from neurodeploy.passes.fold import fold_linear  # noqa: E402

DT = 1e-3


def _lif(n, tau=0.01, r=None, v_leak=0.0, vth=1.0, **kw):
    r = tau / DT if r is None else r
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak), v_threshold=np.full(n, vth), **kw)


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _mlp(rng, tau_syn=0.005):
    return _graph({"in": nir.Input(input_type={"input": np.array([5])}),
                   "fc1": nir.Affine(weight=rng.normal(0, 0.8, (4, 5)), bias=np.zeros(4)),
                   "lif": _lif(4),
                   "fc2": nir.Linear(weight=rng.normal(0, 0.8, (3, 4))),
                   "cuba": nir.CubaLIF(tau_syn=np.full(3, tau_syn), tau_mem=np.full(3, 0.02), r=np.full(3, 20.0),
                                       v_leak=np.zeros(3), v_threshold=np.full(3, 0.5),
                                       w_in=np.full(3, tau_syn / DT)),
                   "out": nir.Output(output_type={"output": np.array([3])})},
                  [("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "cuba"), ("cuba", "out")])


# ------------------------------------------------------------------------------------------ parameter maps
def test_lif_and_cubalif_forward_euler_parameters():
    rng = np.random.default_rng(0)
    g = from_nir(_mlp(rng), dt=DT)
    lif, cuba = g.nodes["lif"], g.nodes["cuba"]
    assert isinstance(lif, CubaLIF) and lif.du == 1.0 and lif.dv == pytest.approx(0.1) and lif.reset == "zero"
    assert cuba.du == pytest.approx(0.2) and cuba.dv == pytest.approx(0.05) and cuba.vth == 0.5
    assert not any(isinstance(op, Scale) for op in g.nodes.values())  # r = tau/dt, w_in = tau_syn/dt: gains are 1
    assert isinstance(g.nodes["fc1"], Dense) and g.nodes["fc1"].bias is None
    assert g.meta["dt"] == DT and g.meta["latency_steps"] == 2
    assert from_nir(_mlp(rng), dt=DT, reset="subtract").nodes["lif"].reset == "subtract"


def test_gain_bias_and_leak_voltage():
    nodes = {"in": nir.Input(input_type={"input": np.array([2])}),
             "fc": nir.Affine(weight=np.eye(2), bias=np.array([0.5, -0.25])),
             "lif": _lif(2, tau=0.004, r=2.0, v_leak=0.3),
             "out": nir.Output(output_type={"output": np.array([2])})}
    g = from_nir(_graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")]), dt=DT)
    gain = DT * 2.0 / 0.004
    assert isinstance(g.nodes["lif.gain"], Scale) and np.allclose(g.nodes["lif.gain"].scale, gain)
    # bias = dt v_leak / tau + gain * affine bias (du = 1: exact)
    np.testing.assert_allclose(np.ravel(g.nodes["lif"].bias), 0.25 * 0.3 + gain * np.array([0.5, -0.25]))
    # the simulation equals forward Euler of the NIR ODE, one step late (the Affine is a synapse)
    x = (np.random.default_rng(1).random((2, 30, 2)) < 0.5).astype(float)
    v, spikes = np.zeros((2, 2)), []
    for t in range(30):  # IR timing: the Affine (a synapse) delivers x[t-1]; its bias acts from the first step
        inp = x[:, t - 1] if t else 0.0
        v = v + 0.25 * (0.3 - v + 2.0 * (inp + np.array([0.5, -0.25])))
        s = v > 1.0
        v = np.where(s, 0.0, v)
        spikes.append(s)
    ref = np.stack(spikes, 1)
    assert ref.sum() > 5
    np.testing.assert_array_equal(simulate(fold_linear(g)[0], x).outputs["out"], ref)


def test_if_li_integrator_cubali_delay_scale_pools_flatten_conv():
    nodes = {"in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
             "conv": nir.Conv2d(input_shape=(6, 6), weight=np.ones((2, 1, 3, 3)), stride=1, padding="same",
                                dilation=1, groups=1, bias=np.zeros(2)),
             "if": nir.IF(r=np.full((2, 6, 6), 1 / DT), v_threshold=np.full((2, 6, 6), 2.0)),
             "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "avg": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 1, 1])}, start_dim=0),
             "delay": nir.Delay(delay=np.full((2, 6, 6), 3 * DT)),
             "scale": nir.Scale(scale=np.array([2.0, 3.0])),
             "fc": nir.Linear(weight=np.ones((2, 2))),
             "li": nir.LI(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2)),
             "fc2": nir.Linear(weight=np.ones((1, 2))),
             "cubali": nir.CubaLI(tau_syn=np.full(1, 0.002), tau_mem=np.full(1, 0.004), r=np.ones(1),
                                  v_leak=np.zeros(1), w_in=np.ones(1)),
             "fc3": nir.Linear(weight=np.ones((1, 2))),
             "integ": nir.I(r=np.full(1, 1 / DT)),
             "out": nir.Output(output_type={"output": np.array([1])}),
             "out2": nir.Output(output_type={"output": np.array([1])})}
    edges = [("in", "conv"), ("conv", "if"), ("if", "delay"), ("delay", "sum"), ("sum", "avg"), ("avg", "flat"),
             ("flat", "scale"), ("scale", "fc"), ("fc", "li"), ("li", "fc2"), ("fc2", "cubali"), ("cubali", "out"),
             ("li", "fc3"), ("fc3", "integ"), ("integ", "out2")]
    g = from_nir(_graph(nodes, edges), dt=DT)
    types = {n: type(op) for n, op in g.nodes.items()}
    assert types["conv"] is Conv2d and g.nodes["conv"].padding == (1, 1)
    assert types["if"] is IF and g.nodes["if"].vth == 2.0
    assert types["sum"] is SumPool2d and types["avg"] is AvgPool2d and types["flat"] is Flatten
    assert types["delay"] is Delay and np.all(g.nodes["delay"].delay == 3)
    assert types["li"] is LI and g.nodes["li"].du == 1.0 and g.nodes["li"].dv == pytest.approx(0.1)
    assert g.nodes["cubali"].du == pytest.approx(0.5) and g.nodes["cubali"].dv == pytest.approx(0.25)
    assert g.nodes["integ"].dv == 0.0
    assert g.meta["output_latency_steps"]["out"] == 1 + 1 + 3 + 1  # conv, fc (+3 delay), fc2
    x = np.ones((1, 8, 1, 6, 6))
    assert simulate(fold_linear(g)[0], x).outputs["out"].shape == (1, 8, 1)


def test_cyclic_graph_matches_reference():
    rng = np.random.default_rng(2)
    w_in, w_rec = rng.normal(0.6, 0.3, (4, 3)), rng.normal(0, 0.4, (4, 4))
    nodes = {"in": nir.Input(input_type={"input": np.array([3])}), "w": nir.Linear(weight=w_in),
             "lif": _lif(4, tau=0.005), "rec": nir.Linear(weight=w_rec),
             "out": nir.Output(output_type={"output": np.array([4])})}
    edges = [("in", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")]
    g = from_nir(_graph(nodes, edges), dt=DT)
    assert ("lif", "rec") in g.edges and ("rec", "lif") in g.edges
    x = (rng.random((2, 40, 3)) < 0.5).astype(float)
    v, s, spikes = np.zeros((2, 4)), np.zeros((2, 4)), []
    for t in range(40):  # IR timing: the input of step t is x[t-1] (one synapse) and the spikes of step t-1
        a = (x[:, t - 1] @ w_in.T if t else 0) + s @ w_rec.T
        v = 0.8 * v + a
        s = (v > 1.0).astype(float)
        v = np.where(s > 0, 0.0, v)
        spikes.append(s)
    ref = np.stack(spikes, 1)
    assert ref.sum() > 10
    np.testing.assert_array_equal(simulate(g, x).outputs["out"], ref)


def test_subgraph_inlined_and_identity_synapse_noted():
    inner = _graph({"input": nir.Input(input_type={"input": np.array([2])}), "lif": _lif(2),
                    "output": nir.Output(output_type={"output": np.array([2])})},
                   [("input", "lif"), ("lif", "output")])
    outer = _graph({"in": nir.Input(input_type={"input": np.array([2])}), "fc": nir.Linear(weight=np.eye(2)),
                    "block": inner, "lif2": _lif(2), "out": nir.Output(output_type={"output": np.array([2])})},
                   [("in", "fc"), ("fc", "block"), ("block", "lif2"), ("lif2", "out")])
    g = from_nir(outer, dt=DT)
    assert "block.lif" in g.nodes and ("fc", "block.lif") in g.edges and ("block.lif", "lif2") in g.edges
    assert any(n["node"] == "lif2" and "identity synapse" in n["note"] for n in g.meta["conversion_notes"])
    assert g.meta["latency_steps"] == 2


# ----------------------------------------------------------------------------------------------- errors
def test_dt_required_and_validated():
    with pytest.raises(ConversionError, match="dt"):
        from_nir(_mlp(np.random.default_rng(0)))
    with pytest.raises(ConversionError, match="shorter than the step"):
        from_nir(_mlp(np.random.default_rng(0)), dt=0.1)
    with pytest.raises(ConversionError, match="reset"):
        from_nir(_mlp(np.random.default_rng(0)), dt=DT, reset="hard")


def test_unsupported_node_and_reset_potential():
    nodes = {"in": nir.Input(input_type={"input": np.array([2])}), "thr": nir.Threshold(threshold=np.ones(2)),
             "out": nir.Output(output_type={"output": np.array([2])})}
    with pytest.raises(UnsupportedOpError, match="'thr'.*Threshold"):
        from_nir(_graph(nodes, [("in", "thr"), ("thr", "out")]), dt=DT)
    nodes = {"in": nir.Input(input_type={"input": np.array([2])}), "fc": nir.Linear(weight=np.eye(2)),
             "lif": _lif(2, v_reset=np.full(2, -0.5)), "out": nir.Output(output_type={"output": np.array([2])})}
    with pytest.raises(ConversionError, match="v_reset"):
        from_nir(_graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")]), dt=DT)


def test_bad_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.nir"
    with pytest.raises(SerializationError, match="missing.nir"):
        from_nir(missing, dt=DT)
    corrupt = tmp_path / "corrupt.nir"
    corrupt.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(SerializationError, match="corrupt.nir"):
        from_nir(corrupt, dt=DT)
    good = tmp_path / "good.nir"
    nir.write(good, _mlp(np.random.default_rng(0)))
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SerializationError, match="truncated.nir"):
        from_nir(truncated, dt=DT)
    other = tmp_path / "other.nir"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    with pytest.raises(SerializationError, match="other.nir"):
        from_nir(other, dt=DT)
    from_nir(good, dt=DT)  # the intact file loads


# ------------------------------------------------------------------------------------------- round trips
def _same_graph(a, b, rtol=1e-9):
    assert set(a.nodes) == set(b.nodes) and sorted(a.edges) == sorted(b.edges)
    for name, op in a.nodes.items():
        other = b.nodes[name]
        assert type(op) is type(other), name
        for key, value in op.params().items():
            if key == "origin":
                continue
            theirs = other.params()[key]
            if value is None or isinstance(value, str):
                assert value == theirs, (name, key)
            else:
                np.testing.assert_allclose(np.asarray(value, float), np.asarray(theirs, float), rtol=rtol,
                                           atol=1e-12, err_msg=f"{name}.{key}")


def test_ir_nir_ir_round_trip_through_file(tmp_path):
    rng = np.random.default_rng(5)
    g = from_nir(_mlp(rng), dt=DT, reset="subtract")
    path = tmp_path / "model.nir"
    write_nir(g, path)
    back = from_nir(path, dt=DT)  # the reset mode travels in the node metadata
    _same_graph(g, back)
    assert back.nodes["lif"].reset == "subtract"
    x = (rng.random((2, 30, 5)) < 0.5).astype(float)
    np.testing.assert_array_equal(simulate(g, x).outputs["out"], simulate(back, x).outputs["out"])


def test_to_nir_requires_dt_and_float_graph():
    g = from_nir(_mlp(np.random.default_rng(0)), dt=DT)
    g.meta.pop("dt")
    with pytest.raises(ConversionError, match="dt"):
        to_nir(g)
    assert isinstance(to_nir(g, dt=DT), nir.NIRGraph)


def test_snntorch_export_to_nir_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.export_nir import export_to_nir

    from neurodeploy.converters.snntorch import from_snntorch

    torch.manual_seed(0)
    # snnTorch 1.0's exporter needs per-neuron beta/threshold tensors for NIR 1.0's type check
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 5), snn.Leaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5), init_hidden=True),
        torch.nn.Linear(5, 3, bias=False),
        snn.RLeaky(beta=torch.full((3,), 0.9), threshold=torch.ones(3), linear_features=3, init_hidden=True))
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(4)
        net[3].recurrent.bias.zero_()
    exported = export_to_nir(net, torch.randn(1, 6), ignore_dims=[0])
    dt = 1e-4  # the step snnTorch's exporter assumes (tau = dt / (1 - beta))
    ours = from_nir(exported, dt=dt, reset="subtract")
    direct = from_snntorch(net, 6, dt=dt)
    assert {type(op).__name__ for op in ours.nodes.values()} == {type(op).__name__ for op in direct.nodes.values()}
    assert ours.nodes["1"].dv == pytest.approx(direct.nodes["net.1"].dv, rel=1e-6)
    np.testing.assert_allclose(np.ravel(ours.nodes["1"].bias), np.ravel(direct.nodes["net.1"].bias), rtol=1e-6)
    x = (np.random.default_rng(0).random((2, 40, 6)) < 0.5).astype(float)
    a, b = simulate(ours, x).outputs["output"], simulate(direct, x).outputs["output"]
    assert a.sum() > 5
    np.testing.assert_array_equal(a, b)
    path = tmp_path / "snn.nir"
    nir.write(path, to_nir(ours))
    _same_graph(ours, from_nir(path, dt=dt))


def test_bundled_digits_example_is_consistent():
    """The committed NIR file, stimulus and weights agree: model.py converts to the same IR as digits_snn.nir."""
    pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    from pathlib import Path

    from neurodeploy.converters.snntorch import from_snntorch
    from neurodeploy.model_loading import load_model

    here = Path(__file__).resolve().parents[1] / "examples" / "digits"
    data = np.load(here / "digits_test.npz")
    spikes, labels = data["spikes"], data["labels"]
    assert spikes.dtype == np.uint8 and spikes.ndim == 3 and spikes.shape[2] == 64 and len(labels) == len(spikes)
    g = from_nir(here / "digits_snn.nir", dt=1e-3)
    module = load_model(f"{here / 'model.py'}:model", input_shape=(64,), dt=1e-3)
    direct = from_snntorch(_load_module(here / "model.py"), (64,), dt=1e-3)
    assert module.nodes.keys() == direct.nodes.keys()
    _same_graph(g, direct, rtol=1e-12)
    out = simulate(g, spikes[:100].astype(float)).outputs["output"]
    assert (out.sum(axis=1).argmax(axis=1) == labels[:100]).mean() > 0.9


def _load_module(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_digits_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model
