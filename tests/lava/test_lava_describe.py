"""The Lava description builder, its file format and the plain-Lava rebuild module.

Tests without the ``lava`` fixture run in any environment; the others need lava-nc.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.backends.lava import describe, emit, load_description, run, run_description, save_description
from neurodeploy.backends.lava.rebuild import encode
from neurodeploy.emulator import simulate
from neurodeploy.errors import CapacityError, InputError, IRError, QuantizationError, UnsupportedOpError
from neurodeploy.ir import Conv2d, CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse
from neurodeploy.ir.linear import op_matrix

Q = QuantInfo(scale=1.0)
REBUILD = Path(__file__).resolve().parents[2] / "backends" / "lava" / "rebuild.py"


def _lif(n=3, **kw):
    params = dict(du=400, dv=300, vth=100, bias=0, bias_exp=0, reset="zero", quant=Q)
    params.update(kw)
    return CubaLIF(shape=(n,), **params)


def _net(neuron=None, synapse=None) -> Graph:
    syn = synapse or Dense(weight=np.array([[100, -20], [50, 60], [0, 255]]), weight_exp=1, quant=Q)
    nodes = {"in": Input(shape=(2,)), "fc": syn, "lif": neuron or _lif(), "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])


# ------------------------------------------------------------------------------------------ description contents
def test_description_uses_lava_classes_names_and_integers():
    graph = _net(synapse=Dense(weight=np.array([[100, -20], [50, 60], [0, 255]]), weight_exp=-2, num_weight_bits=6,
                               sign_mode="mixed", delays=np.array([[0, 1], [2, 3], [4, 62]]), quant=Q),
                 neuron=_lif(bias=np.array([1, -2, 3]), bias_exp=4))
    d = describe(graph)
    procs = {p["name"]: p for p in d["processes"]}
    assert procs["in"]["class"] == "lava.proc.io.source.RingBuffer" and procs["in"]["data_shape"] == [2]
    assert procs["fc"]["class"] == "lava.proc.dense.process.DelayDense"
    kw = procs["fc"]["kwargs"]
    assert kw["weight_exp"] == -2 and kw["num_weight_bits"] == 6 and kw["sign_mode"] == "MIXED"
    assert kw["num_message_bits"] == 0 and kw["weights"].shape == (3, 2) and kw["delays"].max() == 62
    lif = procs["lif"]["kwargs"]
    assert procs["lif"]["class"] == "lava.proc.lif.process.LIF"
    assert (lif["shape"], lif["du"], lif["dv"], lif["vth"], lif["bias_exp"]) == ([3], 400, 300, 100, 4)
    np.testing.assert_array_equal(lif["bias_mant"], [1, -2, 3])
    assert {(c["src"], c["src_port"], c["dst"], c["dst_port"]) for c in d["connections"]} == {
        ("in", "s_out", "fc", "s_in"), ("fc", "a_out", "lif", "a_in")}
    assert d["outputs"]["out"] == {"source": "lif", "kind": "spikes", "shape": [3]}


def test_sign_mode_none_is_left_to_lava_and_bits_default_to_8():
    kw = describe(_net())["processes"][1]["kwargs"]
    assert "sign_mode" not in kw and kw["num_weight_bits"] == 8


def test_sparse_and_conv2d_become_sparse_coo():
    sparse = Sparse(out_shape=(3,), in_size=2, row=np.array([2, 0]), col=np.array([1, 0]), value=np.array([7, -9]),
                    delays=np.array([5, 0]), quant=Q)
    kw = describe(_net(synapse=sparse))["processes"][1]
    assert kw["class"] == "lava.proc.sparse.process.DelaySparse"
    coo = kw["kwargs"]["weights"]["coo"]
    assert coo["shape"] == [3, 2] and list(coo["row"]) == [2, 0] and list(coo["data"]) == [7, -9]
    assert list(kw["kwargs"]["delays"]["coo"]["data"]) == [5, 0]

    conv = Conv2d(weight=np.arange(-8, 10).reshape(2, 1, 3, 3), quant=Q)
    graph = Graph({"in": Input(shape=(1, 4, 4)), "conv": conv, "lif": _lif(8), "out": Output()},
                  [("in", "conv"), ("conv", "lif"), ("lif", "out")])
    proc = describe(graph)["processes"][1]
    assert proc["class"] == "lava.proc.sparse.process.Sparse"
    coo = proc["kwargs"]["weights"]["coo"]
    m = np.zeros(coo["shape"], np.int64)
    m[coo["row"], coo["col"]] = coo["data"]
    np.testing.assert_array_equal(m, op_matrix(conv, (1, 4, 4)).toarray())


def test_readout_and_input_outputs():
    nodes = {"in": Input(shape=(2,)), "fc": Dense(weight=np.ones((3, 2), int), quant=Q),
             "ro": _lif(vth=2**17 - 1, readout=True), "o1": Output(), "o2": Output()}
    d = describe(Graph(nodes, [("in", "fc"), ("fc", "ro"), ("ro", "o1"), ("in", "o2")]))
    assert d["outputs"]["o1"]["kind"] == "v" and d["outputs"]["o2"]["kind"] == "input"


# ----------------------------------------------------------------------------------------------------- rejections
def test_subtract_reset_is_rejected_naming_the_node():
    with pytest.raises(UnsupportedOpError, match="node 'lif'.*resets v to zero only"):
        describe(_net(neuron=_lif(reset="subtract")))


def test_float_graph_is_rejected():
    with pytest.raises(UnsupportedOpError, match="node 'fc'.*not quantized"):
        describe(_net(synapse=Dense(weight=np.ones((3, 2)))))


@pytest.mark.parametrize("field,value,error", [
    ("du", 4096, QuantizationError), ("dv", -1, QuantizationError), ("vth", 2**17, QuantizationError),
    ("bias", 4096, QuantizationError), ("bias_exp", 8, QuantizationError), ("vth", 1.5, QuantizationError)])
def test_neuron_fields_outside_loihi_ranges(field, value, error):
    with pytest.raises(error, match=f"node 'lif'.*'{field}'"):
        describe(_net(neuron=_lif(**{field: value})))


def test_synapse_fields_outside_loihi_ranges():
    w = np.ones((3, 2), int)
    with pytest.raises(CapacityError, match="node 'fc'.*delays"):
        describe(_net(synapse=Dense(weight=w, delays=np.full((3, 2), 63), quant=Q)))
    with pytest.raises(QuantizationError, match="node 'fc'.*num_weight_bits"):
        describe(_net(synapse=Dense(weight=w, num_weight_bits=9, quant=Q)))
    with pytest.raises(QuantizationError, match="node 'fc'.*'weight' must hold integers"):
        describe(_net(synapse=Dense(weight=w * 0.5, quant=Q)))
    dup = Sparse(out_shape=(3,), in_size=2, row=np.array([0, 0]), col=np.array([1, 1]), value=np.array([1, 2]),
                 delays=np.array([1, 2]), quant=Q)
    with pytest.raises(UnsupportedOpError, match="node 'fc'.*duplicate"):
        describe(_net(synapse=dup))


def test_direct_edges_and_unknown_ops_are_rejected():
    g = Graph({"in": Input(shape=(3,)), "lif": _lif(), "out": Output()}, [("in", "lif"), ("lif", "out")])
    with pytest.raises(UnsupportedOpError, match="node 'lif'.*directly"):
        describe(g)
    from neurodeploy.ir import Flatten

    g = Graph({"in": Input(shape=(3,)), "fl": Flatten(), "fc": Dense(weight=np.ones((3, 3), int), quant=Q),
               "lif": _lif(), "out": Output()}, [("in", "fl"), ("fl", "fc"), ("fc", "lif"), ("lif", "out")])
    with pytest.raises(UnsupportedOpError):
        describe(g)


def test_invalid_graph_raises_ir_error():
    with pytest.raises(IRError):
        describe(Graph({"in": Input(shape=(2,))}, []))


# --------------------------------------------------------------------------------------------- files and rebuild
def test_save_load_round_trip(tmp_path):
    sparse = Sparse(out_shape=(3,), in_size=2, row=np.array([2, 0]), col=np.array([1, 0]), value=np.array([7, -9]),
                    delays=np.array([5, 0]), quant=Q)
    d = describe(_net(synapse=sparse, neuron=_lif(bias=np.array([1, 2, 3]))))
    save_description(d, tmp_path / "m.lava")
    doc = json.loads((tmp_path / "m.lava" / "description.json").read_text())
    assert doc["format"] == "neurodeploy-lava" and doc["version"] == 2
    back = load_description(tmp_path / "m.lava")
    arrays_a: dict = {}
    arrays_b: dict = {}
    assert encode(d, "d", arrays_a) == encode(back, "d", arrays_b)
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k])


def test_rebuild_module_imports_only_lava_numpy_scipy_and_stdlib():
    tree = ast.parse(REBUILD.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"__future__", "argparse", "collections", "importlib", "json", "pathlib", "sys", "typing",
                     "warnings", "zipfile", "numpy", "scipy", "lava"}, roots


# -------------------------------------------------------------------------------------------------- on Lava
def test_rebuilt_from_disk_runs_like_the_emulator(lava, tmp_path):
    rng = np.random.default_rng(3)
    conv = Conv2d(weight=rng.integers(-60, 120, (2, 1, 3, 3)), weight_exp=1, quant=Q)
    nodes = {"in": Input(shape=(1, 4, 4)), "conv": conv, "lif": CubaLIF(shape=(2, 2, 2), du=500, dv=200, vth=60,
                                                                        quant=Q),
             "ro_syn": Dense(weight=rng.integers(-100, 200, (3, 8)), quant=Q),
             "ro": CubaLIF(shape=(3,), du=4095, dv=100, vth=2**17 - 1, readout=True, quant=Q),
             "out": Output(), "echo": Output()}
    graph = Graph(nodes, [("in", "conv"), ("conv", "lif"), ("lif", "ro_syn"), ("ro_syn", "ro"), ("ro", "out"),
                          ("in", "echo")])
    save_description(describe(graph), tmp_path / "m.lava")
    x = (rng.random((2, 12, 1, 4, 4)) < 0.5).astype(np.uint8)
    got = run_description(load_description(tmp_path / "m.lava"), x, record=("spikes", "v"), nodes=["lif"])
    emu = simulate(graph, x, record=("spikes", "v"), nodes=["lif"])
    assert set(got) == {"out", "echo", "lif/spikes", "lif/v"}
    assert got["lif/v"].shape == (2, 12, 2, 2, 2)
    for key, ref in {**emu.outputs, **emu.recorded}.items():
        np.testing.assert_array_equal(got[key], ref, err_msg=key)
    np.testing.assert_array_equal(got["echo"], x)
    assert got["lif/spikes"].any()


def test_disconnected_components_run_separately(lava):
    nodes = {"a": Input(shape=(2,)), "b": Input(shape=(2,)),
             "fa": Dense(weight=np.full((1, 2), 100), quant=Q), "fb": Dense(weight=np.full((1, 2), -100), quant=Q),
             "la": _lif(1), "lb": _lif(1), "oa": Output(), "ob": Output()}
    graph = Graph(nodes, [("a", "fa"), ("fa", "la"), ("b", "fb"), ("fb", "lb"), ("la", "oa"), ("lb", "ob")])
    x = {"a": np.ones((1, 6, 2), np.uint8), "b": np.ones((1, 6, 2), np.uint8)}
    got = run_description(describe(graph), x, record=("u",))
    emu = simulate(graph, x, record=("u",))
    for key, ref in {**emu.outputs, **emu.recorded}.items():
        np.testing.assert_array_equal(got[key], ref, err_msg=key)
    assert got["lb/u"].min() < 0 < got["la/u"].max()


def test_bad_stimulus_raises_input_error(lava):
    d = describe(_net())
    with pytest.raises(InputError, match="must be shaped"):
        run_description(d, np.zeros((1, 5, 3)))
    with pytest.raises(InputError, match="other than 0 and 1"):
        run_description(d, np.full((1, 5, 2), 2))
    with pytest.raises(InputError, match="cannot record"):
        run_description(d, np.zeros((1, 5, 2)), record=("w",))


# ------------------------------------------------------------------------------------- registry: emit, run, worker
class _Artifact:
    def __init__(self, graph):
        self.graph = graph


def test_emit_writes_description_and_rebuild_copy(tmp_path):
    files = emit(_Artifact(_net()), tmp_path)
    assert files == ["lava/description.json", "lava/arrays.npz", "lava/rebuild.py"]
    assert (tmp_path / "lava" / "rebuild.py").read_text() == REBUILD.read_text()
    assert load_description(tmp_path / "lava")["processes"][2]["class"] == "lava.proc.lif.process.LIF"


def test_registry_run_in_process_and_through_the_worker(lava):
    import sys

    from neurodeploy.backends.lava.backend import _run_in_worker

    graph = _net()
    x = (np.random.default_rng(5).random((2, 10, 2)) < 0.6).astype(np.uint8)
    arrays, _ = run(_Artifact(graph), x, record=("u",))
    emu = simulate(graph, x, record=("u",))
    np.testing.assert_array_equal(arrays["spikes"], emu.outputs["out"])
    np.testing.assert_array_equal(arrays["lif/u"], emu.recorded["lif/u"])
    via_worker = _run_in_worker(describe(graph), {"in": x}, ("u",), None, sys.executable)
    for key in ("out", "lif/u"):
        np.testing.assert_array_equal(via_worker[key], arrays[key])
    with pytest.raises(InputError, match="in the Lava worker"):
        _run_in_worker(describe(graph), {"in": x[:, :, :1]}, (), None, sys.executable)
