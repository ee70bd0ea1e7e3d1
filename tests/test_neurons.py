"""The neuron-model table (neurodeploy.ir.neurons): dispatch, and LIFReset through every layer.

LIFReset's bit-exactness against Lava's own ``PyLifResetModelBitAcc`` is in tests/lava/test_lava_lif_reset.py;
here: the table's dispatch, the op's validation, serialization, what each target does with it (compile for
emulator and loihi2, a named refusal for spinnaker), and the float form's periodic reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from cli_runner import run_cli

from neurodeploy.backends.lava import describe
from neurodeploy.backends.pynn.netlist import build_netlist
from neurodeploy.compiler import compile_graph
from neurodeploy.emulator import simulate
from neurodeploy.errors import IRError, QuantizationError, UnsupportedOpError
from neurodeploy.ir import (
    IF,
    LI,
    CubaLIF,
    Dense,
    Graph,
    Input,
    LIFReset,
    Output,
    QuantInfo,
    compartment,
    graph_from_bytes,
    graph_to_bytes,
    model_of,
)
from neurodeploy.ir.neurons import MODELS, NeuronModel, register
from neurodeploy.ir.ops import NeuronOp
from neurodeploy.passes.limits import check_limits

Q = QuantInfo(scale=1.0)


def _float_graph(interval=5, offset=2, n_in=6, n=4, seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    nodes = {"in": Input(shape=(n_in,)), "fc": Dense(weight=rng.uniform(0, 0.6, (n, n_in))),
             "lif": LIFReset(shape=(n,), du=0.2, dv=0.1, vth=1.0, reset_interval=interval, reset_offset=offset),
             "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")]).validate()


def _quantized_graph(**fields) -> Graph:
    cell = {"du": 100, "dv": 200, "vth": 50, "bias": 3, "bias_exp": 2, "reset_interval": 4, "reset_offset": 1}
    nodes = {"in": Input(shape=(2,)),
             "fc": Dense(weight=np.array([[40, 60]]), weight_exp=0, num_weight_bits=8, sign_mode="mixed", quant=Q),
             "lif": LIFReset(shape=(1,), quant=Q, **{**cell, **fields}), "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")]).validate()


def test_every_neuron_op_has_a_model():
    neuron_types = [CubaLIF, IF, LI, LIFReset]
    assert {type(model_of(t(shape=(1,)))).__name__ for t in neuron_types} == {
        "CubaLIFModel", "IFModel", "LIModel", "LIFResetModel"}
    assert set(MODELS) >= set(neuron_types)


def test_an_unregistered_neuron_is_a_named_error_and_subclasses_inherit():
    @dataclass(frozen=True, eq=False)
    class Mystery(NeuronOp):
        pass

    @dataclass(frozen=True, eq=False)
    class TaggedLIF(CubaLIF):
        tag: str = ""

    with pytest.raises(UnsupportedOpError, match="Mystery is not a registered neuron model"):
        model_of(Mystery(shape=(1,)), "m")
    assert type(model_of(TaggedLIF(shape=(1,)))).__name__ == "CubaLIFModel"
    with pytest.raises(ValueError, match="registered twice"):
        register(type("Again", (NeuronModel,), {"op": CubaLIF})())


def test_compartments():
    c = compartment(IF(shape=(2,), vth=2.0), integer=False)
    assert (c.du, c.dv, c.vth, c.reset_interval) == (1.0, 0.0, 2.0, 0)
    c = compartment(LI(shape=(2,), du=0.3), integer=False)
    assert c.vth == np.inf and c.readout and c.du == 0.3
    c = compartment(_quantized_graph().nodes["lif"], integer=True)
    assert (c.du, c.dv, c.vth, c.reset_interval, c.reset_offset) == (100, 200, 50, 4, 1)
    assert c.bias.tolist() == [3 << 2]
    with pytest.raises(UnsupportedOpError, match="not quantized"):
        compartment(IF(shape=(1,)), integer=True)


@pytest.mark.parametrize("fields, message", [
    ({"reset_interval": 0}, r"reset_interval = 0 must be an integer in \[1, 65535\]"),
    ({"reset_interval": 2.5}, r"LIFReset field 'reset_interval' must be an integer, got 2.5"),
    ({"reset_offset": -1}, r"reset_offset = -1 must be an integer in \[0, 65535\]"),
    ({"reset_interval": True}, r"LIFReset field 'reset_interval' must be an integer, got True"),
])
def test_lif_reset_fields_are_validated(fields, message):
    with pytest.raises(IRError, match=message):
        _quantized_graph(**fields)


def test_serialization_keeps_the_op_and_its_fields():
    graph = _quantized_graph()
    again = graph_from_bytes(graph_to_bytes(graph))
    op = again.nodes["lif"]
    assert type(op) is LIFReset and (op.reset_interval, op.reset_offset) == (4, 1)
    assert graph_to_bytes(again) == graph_to_bytes(graph)


def test_lava_description_names_lif_reset():
    desc = describe(_quantized_graph())
    (proc,) = [p for p in desc["processes"] if p["node"] == "lif"]
    assert proc["class"] == "lava.proc.lif.process.LIFReset"
    assert (proc["kwargs"]["reset_interval"], proc["kwargs"]["reset_offset"]) == (4, 1)
    graph = _quantized_graph()
    fields = {k: v for k, v in graph.nodes["lif"].params().items() if k not in ("reset_interval", "reset_offset")}
    plain = describe(graph.with_nodes({**graph.nodes, "lif": CubaLIF(**fields)}))
    (proc,) = [p for p in plain["processes"] if p["node"] == "lif"]
    assert proc["class"] == "lava.proc.lif.process.LIF" and "reset_interval" not in proc["kwargs"]


def test_pynn_refuses_lif_reset_by_name():
    with pytest.raises(UnsupportedOpError, match="LIFReset has no PyNN cell: LIFReset's periodic state reset") as e:
        build_netlist(_quantized_graph())
    assert e.value.node == "lif"


def test_limits_check_the_models_own_fields():
    op = _quantized_graph().nodes["lif"]
    bad = object.__new__(LIFReset)  # bypass validation to reach the limits pass with an out-of-range field
    for k, v in {**op.params(), "reset_interval": 70000}.items():
        object.__setattr__(bad, k, v)
    graph = Graph({**_quantized_graph().nodes, "lif": bad}, list(_quantized_graph().edges))
    with pytest.raises(QuantizationError, match="reset_interval") as e:
        check_limits(graph, "loihi2")
    assert e.value.node == "lif"


def _float_reference(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Spikes of the float LIFReset graph computed directly from the docstring's equations."""
    fc, lif = graph.nodes["fc"], graph.nodes["lif"]
    u = np.zeros(lif.size)
    v = np.zeros(lif.size)
    a_prev = np.zeros(lif.size)
    out = []
    for t in range(1, x.shape[1] + 1):
        if t % lif.reset_interval == lif.reset_offset % lif.reset_interval:
            u[:], v[:] = 0.0, 0.0
        u = u * (1 - lif.du) + a_prev
        v = v * (1 - lif.dv) + u + lif.bias
        s = v > lif.vth
        v = np.where(s, 0.0, v)
        out.append(s)
        a_prev = fc.weight @ x[0, t - 1]  # a synapse adds one step
    return np.array(out, dtype=np.uint8)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_float_form_resets_periodically(engine):
    graph = _float_graph()
    x = (np.random.default_rng(1).random((1, 30, 6)) < 0.5).astype(np.uint8)
    res = simulate(graph, x, engine=engine)
    expected = _float_reference(graph, x)
    np.testing.assert_array_equal(res.outputs["out"][0], expected)
    assert expected.sum() > 0


def test_compile_keeps_lif_reset_for_emulator_and_loihi2():
    graph = _float_graph()
    x = (np.random.default_rng(2).random((8, 30, 6)) < 0.5).astype(np.uint8)
    for target in ("emulator", "loihi2"):
        art = compile_graph(graph, target, calibration=x)
        op = art.graph.nodes["lif"]
        assert type(op) is LIFReset and (op.reset_interval, op.reset_offset) == (5, 2) and op.quant is not None


def test_cli_refuses_lif_reset_for_spinnaker(tmp_path, capsys):
    from neurodeploy.ir import save_graph

    model = tmp_path / "reset.ndg"
    save_graph(_float_graph(), model)
    code, out, err = run_cli(capsys, "compile", model, "--target", "spinnaker", "--out", tmp_path / "art")
    assert code == 2, (out, err)
    assert "LIFReset has no PyNN cell" in err and "'lif'" in err and "Traceback" not in err
    assert not (tmp_path / "art").exists()
