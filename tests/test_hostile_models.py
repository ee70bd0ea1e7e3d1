"""Hostile model files (issue 14, issue 16 item 2): each one is built here from a good model by editing it (h5py for
NIR, the protobuf for ONNX, zipfile/json for .ndg) and must either load correctly or raise a neurodeploy error
that names the file, node and field -- never another exception, never a huge allocation, never silent garbage."""

from __future__ import annotations

import io
import json
import shutil
import time
import warnings
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
nir = pytest.importorskip("nir")
onnx = pytest.importorskip("onnx")

from neurodeploy.compiler import compile_graph  # noqa: E402
from neurodeploy.converters.nir import NIRTypeCheckWarning, from_nir  # noqa: E402
from neurodeploy.emulator import simulate  # noqa: E402
from neurodeploy.errors import (  # noqa: E402
    ConversionError,
    IRError,
    NeurodeployError,
    SerializationError,
    UnsupportedOpError,
)
from neurodeploy.ir import Graph  # noqa: E402
from neurodeploy.ir.fields import CHECKS  # noqa: E402
from neurodeploy.ir.ops import OP_TYPES, CubaLIF, Dense, Input, Output, Scale  # noqa: E402
from neurodeploy.ir.serialize import graph_to_bytes, load_graph  # noqa: E402
from neurodeploy.model_loading import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS_NIR = ROOT / "examples" / "digits" / "digits_snn.nir"
DIGITS_ONNX = ROOT / "examples" / "onnx_digits" / "digits_mlp.onnx"


# ------------------------------------------------------------------------------------------------------- NIR
def _nir_copy(tmp_path: Path, edit) -> Path:
    path = tmp_path / "model.nir"
    shutil.copy(DIGITS_NIR, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(f, name: str, value=None, **options) -> None:
    del f[name]
    f.create_dataset(name, data=value, **options)


def _error(path: Path, **kw) -> NeurodeployError:
    """The error of loading and compiling ``path``, which must name the file."""
    with pytest.raises(NeurodeployError) as info:
        compile_graph(load_model(str(path), **kw), "emulator")
    assert str(path) in str(info.value)
    return info.value


def test_the_good_nir_model_loads_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = load_model(str(DIGITS_NIR), dt=1e-3)
        assert graph.outputs == ["output"]
        # free-form metadata may use any key, 'type' included
        path = _nir_copy(tmp_path, lambda f: f["node/nodes/net.1/metadata"].create_dataset("type", data=b"mine"))
        assert load_model(str(path), dt=1e-3).nodes.keys() == graph.nodes.keys()


def test_nir_without_edges_is_refused_not_given_invented_inputs(tmp_path):
    path = _nir_copy(tmp_path, lambda f: _replace(f, "node/edges", np.zeros((0, 2), dtype=h5py.string_dtype())))
    err = _error(path, dt=1e-3)
    assert isinstance(err, ConversionError)
    assert "graph inconsistent" in str(err) and "no incoming edge" in str(err) and "'net.0'" in str(err)
    assert str(path) in str(err)


@pytest.mark.parametrize("node, field, value", [
    ("net.3", "r", np.full(10, np.inf)),
    ("net.3", "v_threshold", np.full(10, np.inf)),
    ("net.3", "v_threshold", np.full(10, np.nan)),
    ("net.1", "v_leak", np.r_[np.zeros(63), np.nan]),
    ("net.2", "weight", np.full((10, 64), np.nan)),
])
def test_nir_non_finite_parameters_are_refused_naming_node_and_field(tmp_path, node, field, value):
    path = _nir_copy(tmp_path, lambda f: _replace(f, f"node/nodes/{node}/{field}", value))
    err = _error(path, dt=1e-3)
    assert isinstance(err, ConversionError)
    assert f"node '{node}'" in str(err) and f"'{field}'" in str(err) and ("inf" in str(err) or "nan" in str(err))


def test_nir_absurd_magnitudes_are_refused_before_quantization(tmp_path):
    path = _nir_copy(tmp_path, lambda f: _replace(f, "node/nodes/net.0/weight", np.full((64, 64), -1e308)))
    err = _error(path, dt=1e-3)
    assert isinstance(err, ConversionError) and "node 'net.0'" in str(err) and "'weight'" in str(err)
    assert "beyond" in str(err) and "magnitude" in str(err)


@pytest.mark.parametrize("field, value, kind", [
    ("v_threshold", np.full(10, 1 + 1j), "complex"),
    ("v_leak", np.full(10, 1j), "complex"),
    ("tau", np.array([b"0.01"] * 10), "strings"),
    ("r", np.zeros(10, dtype=[("a", "f8")]), "structured"),
    ("v_leak", "0.0", "strings"),
])
def test_nir_complex_string_and_structured_parameters_are_refused(tmp_path, field, value, kind):
    path = _nir_copy(tmp_path, lambda f: _replace(f, f"node/nodes/net.3/{field}", value))
    err = _error(path, dt=1e-3)
    assert "'net.3'" in str(err) and f"'{field}'" in str(err) and kind in str(err)


def test_nir_declared_dataset_size_is_bounded_before_reading(tmp_path):
    path = _nir_copy(tmp_path, lambda f: _replace(f, "node/nodes/net.2/weight", shape=(10**6, 10**5), dtype="f8",
                                                  chunks=(1000, 1000), compression="gzip"))
    start = time.perf_counter()
    err = _error(path, dt=1e-3)
    assert isinstance(err, SerializationError) and "declares" in str(err) and str(path) in str(err)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("shape", [[0], [10**12], [-3]])
def test_nir_input_shapes_must_be_positive_and_bounded(tmp_path, shape):
    path = _nir_copy(tmp_path, lambda f: _replace(f, "node/nodes/input/shape", np.array(shape)))
    with pytest.warns(NIRTypeCheckWarning):
        err = _error(path, dt=1e-3)
    assert isinstance(err, ConversionError) and "node 'input'" in str(err) and "'shape'" in str(err)


def test_nir_error_kinds_are_distinguished(tmp_path):
    text = tmp_path / "notes.nir"
    text.write_text("not a model")
    assert "not an HDF5/NIR file" in str(_error(text, dt=1e-3))
    other = tmp_path / "other.nir"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    assert "not an HDF5/NIR file" in str(_error(other, dt=1e-3))
    bogus = _nir_copy(tmp_path, lambda f: _replace(f, "node/nodes/net.1/type", "Bogus", dtype=h5py.string_dtype()))
    err = _error(bogus, dt=1e-3)
    assert isinstance(err, UnsupportedOpError) and "unsupported" in str(err) and "'Bogus'" in str(err)

    def duplicate_edge(f):
        edges = [tuple(e) for e in f["node/edges"][()]]
        _replace(f, "node/edges", np.array(edges + [edges[0]], dtype=h5py.string_dtype()))

    with pytest.warns(NIRTypeCheckWarning, match="Duplicate edge"):  # nir's strict check says so too
        err = _error(_nir_copy(tmp_path, duplicate_edge), dt=1e-3)
    assert isinstance(err, ConversionError) and "graph inconsistent" in str(err) and "twice" in str(err)


def _one_neuron_lif(path: Path) -> None:
    """What Rockpool writes for a one-neuron LIF: its Output declares [1, 1, 1] for the neuron's [1]."""
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}),
                                "w": nir.Linear(weight=np.array([[20.0]])),
                                "lif": nir.LIF(tau=np.array([0.01]), r=np.array([1.0]), v_leak=np.array([0.0]),
                                               v_threshold=np.array([1.0]), v_reset=np.array([0.0])),
                                "output": nir.Output(output_type={"output": np.array([1])})},
                         edges=[("input", "w"), ("w", "lif"), ("lif", "output")])
    nir.write(str(path), graph)
    with h5py.File(path, "r+") as f:
        _replace(f, "node/nodes/output/shape", np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="type mismatch"):  # the premise: nir's strict reader refuses the file
        nir.read(str(path))


def test_rockpool_like_output_shape_is_read_with_a_warning_and_compiles(tmp_path):
    path = tmp_path / "rockpool_lif.nir"
    _one_neuron_lif(path)
    with pytest.warns(NIRTypeCheckWarning) as record:
        graph = from_nir(str(path), dt=1e-3)
    message = str(record[0].message)
    assert "output" in message and "1 1 1" in message and "type_check=False" in message
    artifact = compile_graph(graph, "emulator")
    spikes = np.zeros((1, 40, 1), np.uint8)
    spikes[0, ::2] = 1
    result = simulate(artifact.graph, spikes)
    assert result.outputs["output"].shape == (1, 40, 1) and result.outputs["output"].sum() > 0


def test_nir_output_declaring_a_different_size_is_inconsistent(tmp_path):
    path = _nir_copy(tmp_path, lambda f: _replace(f, "node/nodes/output/shape", np.array([7])))
    with pytest.warns(NIRTypeCheckWarning):
        err = _error(path, dt=1e-3)
    assert isinstance(err, ConversionError) and "graph inconsistent" in str(err) and "[7.0]" in str(err)


# ------------------------------------------------------------------------------------------------------ ONNX
def _onnx_copy(tmp_path: Path, edit) -> Path:
    model = onnx.load(str(DIGITS_ONNX))
    edit(model)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_initializer_with_a_changed_data_type_is_refused(tmp_path):
    def to_int32(m):
        m.graph.initializer[0].data_type = onnx.TensorProto.INT32  # same byte size: passes onnx.checker

    path = _onnx_copy(tmp_path, to_int32)
    onnx.checker.check_model(onnx.load(str(path)))
    err = _error(path)
    assert isinstance(err, ConversionError) and "weight" in str(err) and "int32" in str(err)

    def to_double(m):
        m.graph.initializer[1].data_type = onnx.TensorProto.DOUBLE

    err = _error(_onnx_copy(tmp_path, to_double))
    assert isinstance(err, SerializationError) and "0.bias" in str(err)


def test_onnx_huge_input_dimension_is_refused_before_allocating(tmp_path):
    def huge(m):
        m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 10**12

    start = time.perf_counter()
    err = _error(_onnx_copy(tmp_path, huge))
    assert isinstance(err, ConversionError) and "1000000000000" in str(err)
    assert time.perf_counter() - start < 10


def test_onnx_nan_weight_is_refused_naming_the_initializer(tmp_path):
    from onnx import numpy_helper

    def nan(m):
        t = m.graph.initializer[2]
        arr = numpy_helper.to_array(t).copy()
        arr.flat[3] = np.nan
        t.CopyFrom(numpy_helper.from_array(arr, t.name))

    err = _error(_onnx_copy(tmp_path, nan))
    assert isinstance(err, ConversionError) and "2.weight" in str(err) and "NaN" in str(err)


# ------------------------------------------------------------------------------------------------------- .ndg
@pytest.fixture(scope="module")
def good_ndg() -> bytes:
    return graph_to_bytes(load_model(str(DIGITS_NIR), dt=1e-3))


def _ndg(tmp_path: Path, data: bytes, edit_doc=None, edit_files=None) -> Path:
    zin = zipfile.ZipFile(io.BytesIO(data))
    files = {i.filename: zin.read(i) for i in zin.infolist()}
    doc = json.loads(files["graph.json"])
    if edit_doc is not None:
        doc = edit_doc(doc)
    files["graph.json"] = json.dumps(doc).encode()
    if edit_files is not None:
        edit_files(files)
    path = tmp_path / "model.ndg"
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return path


def _set(op: str, field: str, value):
    def edit(doc):
        next(n for n in doc["nodes"] if n["op"] == op)["params"][field] = value
        return doc
    return edit


def _ndg_error(path: Path) -> str:
    with pytest.raises(SerializationError) as info:
        compile_graph(load_graph(path), "emulator")
    assert str(path) in str(info.value)
    return str(info.value)


def test_the_good_ndg_round_trips(tmp_path, good_ndg):
    assert graph_to_bytes(load_graph(_ndg(tmp_path, good_ndg))) == good_ndg


@pytest.mark.parametrize("op, field, value, expect", [
    ("Dense", "weight_exp", 10**30, "outside [-31, 31]"),
    ("CubaLIF", "dv", [0.1, 0.2], "must be a real number"),
    ("CubaLIF", "vth", float("inf"), "not finite"),
    ("CubaLIF", "vth", float("nan"), "not finite"),
    ("CubaLIF", "reset", ["zero"], "must be a string"),
    ("Output", "shape", [10**12], "outside [1, 2147483647]"),
    ("Output", "shape", [-5], "outside [1, 2147483647]"),
    ("Output", "shape", [1e12], "must hold integers"),
    ("Output", "shape", [7], "declares shape [7]"),
    ("Input", "shape", [0], "outside [1, 2147483647]"),
])
def test_ndg_fields_are_type_and_range_checked(tmp_path, good_ndg, op, field, value, expect):
    msg = _ndg_error(_ndg(tmp_path, good_ndg, _set(op, field, value)))
    assert f"'{field}'" in msg or field in msg
    assert expect in msg and "node '" in msg


@pytest.mark.parametrize("doc", [[1, 2], 3, None, "graph"])
def test_ndg_graph_json_must_be_an_object(tmp_path, good_ndg, doc):
    msg = _ndg_error(_ndg(tmp_path, good_ndg, lambda _: doc))
    assert "graph.json holds a" in msg


def _header(descr: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("descr, shape, expect", [
    ("<f8", (10**5, 10**6), ["corrupt or truncated", "arrays/net.0.weight.npy", "(100000, 1000000)"]),
    ("|O", (2,), ["corrupt or truncated", "arrays/net.0.weight.npy", "dtype object"]),
    ([("a", "<f8")], (2,), ["corrupt or truncated", "arrays/net.0.weight.npy", "dtype"]),
    ("<c16", (1,), ["node 'net.0'", "'weight'", "complex"]),  # a readable array: the field check refuses it
])
def test_ndg_array_headers_are_checked_before_allocating(tmp_path, good_ndg, descr, shape, expect):
    def bomb(files):
        key = "arrays/net.0.weight.npy"
        files[key] = _header(np.lib.format.dtype_to_descr(np.dtype(descr)), shape) + b"\0" * 16

    start = time.perf_counter()
    msg = _ndg_error(_ndg(tmp_path, good_ndg, edit_files=bomb))
    assert all(e in msg for e in expect), msg
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("key, value", [("dt", "inhibitory"), ("dt", -1.0), ("latency_steps", [1]),
                                        ("output_latency_steps", 0), ("conversion_notes", {"quant": 1})])
def test_ndg_meta_fields_that_code_reads_are_type_checked(tmp_path, good_ndg, key, value):
    def edit(doc):
        doc["meta"][key] = value
        return doc

    msg = _ndg_error(_ndg(tmp_path, good_ndg, edit))
    assert f"meta field '{key}'" in msg


def test_ndg_structure_errors_are_named(tmp_path, good_ndg):
    def params_list(doc):
        doc["nodes"][1]["params"] = [1]
        return doc

    assert "must be an object" in _ndg_error(_ndg(tmp_path, good_ndg, params_list))

    def duplicate(doc):
        doc["nodes"].append(doc["nodes"][1])
        return doc

    assert "appears twice" in _ndg_error(_ndg(tmp_path, good_ndg, duplicate))
    assert "does not hold" in _ndg_error(_ndg(tmp_path, good_ndg, _set("Dense", "weight", {"array": "nope"})))


# -------------------------------------------------------------------------------------------------------- IR
def test_every_op_field_annotation_has_a_checker():
    # the product's ops only: test modules register throwaway subclasses in OP_TYPES too
    product = [cls for cls in OP_TYPES.values() if cls.__module__.startswith("neurodeploy.")]
    assert {"CubaLIF", "LIFReset", "Dense"} <= {cls.__name__ for cls in product}
    annotations = {str(f.type) for cls in product for f in fields(cls)}
    assert annotations <= set(CHECKS)


def _small(**changes) -> Graph:
    nodes = {"in": Input(shape=(3,)), "fc": Dense(weight=np.ones((2, 3))), "n": CubaLIF(shape=(2,)),
             "out": Output()}
    nodes.update(changes)
    return Graph(nodes, [("in", "fc"), ("fc", "n"), ("n", "out")])


@pytest.mark.parametrize("changes, expect", [
    ({"fc": Dense(weight=np.ones((2, 3, 1)))}, "weight has shape [2, 3, 1]"),
    ({"fc": Dense(weight=np.ones((2, 3)), bias=np.ones(5))}, "'bias' has 5 values"),
    ({"fc": Dense(weight=np.ones((2, 3)), weight_exp=2**40)}, "'weight_exp'"),
    ({"n": CubaLIF(shape=(2,), bias=np.ones(3))}, "'bias' has 3 values"),
    ({"n": CubaLIF(shape=(2,), dv=1 + 0j)}, "'dv' must be a real number"),
    ({"n": CubaLIF(shape=(2,), readout="yes")}, "'readout' must be true or false"),
    ({"out": Output(shape=(5,))}, "declares shape [5]"),
    ({"fc": Dense(weight=np.ones((2, 3)), delays=np.full((2, 3), -1))}, "'delays' holds -1"),
    ({"fc": Dense(weight=np.ones((2, 3)), delays=np.full((2, 3), 10**9))}, "'delays' holds 1000000000"),
    ({"fc": Dense(weight=np.ones((2, 3)), delays=np.full((2, 3), 1.5))}, "'delays' must hold integers"),
])
def test_ir_validation_names_the_node_and_field(changes, expect):
    with pytest.raises(IRError, match="node '") as info:
        _small(**changes).validate()
    assert expect in str(info.value)


def test_finite_values_are_required_on_request():
    graph = _small(fc=Dense(weight=np.array([[1.0, np.nan, 0.0], [0.0, 0.0, 1.0]])))
    graph.validate()  # the quantize pass names NaN itself (QuantizationError)
    with pytest.raises(IRError, match=r"'weight' holds 1 NaN .*index \(0, 1\)"):
        graph.validate(finite=True)


def test_undriven_nodes_are_refused_and_bias_driven_neurons_allowed():
    nodes = {"in": Input(shape=(2,)), "out": Output(), "s": Scale(scale=np.ones(2)), "n": CubaLIF(shape=(2,)),
             "out2": Output()}
    with pytest.raises(IRError, match="never driven") as info:
        Graph(nodes, [("in", "out"), ("n", "s"), ("s", "out2")]).validate()
    assert "'out2'" in str(info.value)
    nodes["n"] = CubaLIF(shape=(2,), bias=0.5)
    Graph(nodes, [("in", "out"), ("n", "s"), ("s", "out2")]).validate()
