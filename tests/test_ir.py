"""IR graph structure, validation and serialization."""

import io
import zipfile

import numpy as np
import pytest

from neurodeploy.errors import IRError, SerializationError
from neurodeploy.ir import (
    IF,
    AvgPool2d,
    Conv2d,
    CubaLIF,
    Dense,
    Flatten,
    Graph,
    Input,
    Output,
    QuantInfo,
    graph_from_bytes,
    graph_to_bytes,
    load_graph,
    save_graph,
)


def recurrent_graph():
    rng = np.random.default_rng(1)
    return Graph({"in": Input(shape=(4,)), "fc": Dense(weight=rng.normal(size=(3, 4))),
                  "lif": CubaLIF(shape=(3,), du=0.5, dv=0.25, vth=1.0, bias=np.array([0.1, 0.0, -0.1])),
                  "rec": Dense(weight=np.eye(3), delays=np.eye(3, dtype=np.int64) * 2), "out": Output()},
                 [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
                 {"dt": 1e-3})


def test_shapes_resolve_through_cycles_and_convolutions():
    g = Graph({"in": Input(shape=(2, 8, 8)), "conv": Conv2d(weight=np.ones((4, 2, 3, 3)), padding=(1, 1)),
               "pool": AvgPool2d(), "flat": Flatten(), "n": IF(shape=(64,)), "out": Output()},
              [("in", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "n"), ("n", "out")])
    shapes = g.validate().shapes()
    assert shapes["conv"] == (4, 8, 8) and shapes["pool"] == (4, 4, 4) and shapes["flat"] == (64,)
    assert recurrent_graph().validate().shapes()["rec"] == (3,)


def test_serialization_round_trip_is_deterministic_and_lossless(tmp_path):
    g = recurrent_graph()
    data = graph_to_bytes(g)
    assert graph_to_bytes(graph_from_bytes(data)) == data
    save_graph(g, tmp_path / "g.ndg")
    g2 = load_graph(tmp_path / "g.ndg")
    assert (tmp_path / "g.ndg").read_bytes() == data
    np.testing.assert_array_equal(g2.nodes["rec"].delays, g.nodes["rec"].delays)
    assert g2.edges == g.edges and g2.meta == {"dt": 1e-3}


def test_quant_info_survives_serialization():
    q = QuantInfo(scale=12.5, bits={"weight": 8}, error={"weight": 0.01})
    g = Graph({"in": Input(shape=(2,)), "fc": Dense(weight=np.array([[3, -4]]), weight_exp=-2, quant=q),
               "n": CubaLIF(shape=(1,), du=4095, dv=0, vth=10, quant=q), "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    g2 = graph_from_bytes(graph_to_bytes(g))
    assert g2.nodes["fc"].quant == q and g2.nodes["fc"].weight_exp == -2 and g2.quantized


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[: len(b) // 2], "corrupt or truncated"),
    (lambda b: b"not a zip file", "corrupt or truncated"),
])
def test_damaged_files_name_the_file(tmp_path, mutate, message):
    path = tmp_path / "bad.ndg"
    path.write_bytes(mutate(graph_to_bytes(recurrent_graph())))
    with pytest.raises(SerializationError, match=message) as info:
        load_graph(path)
    assert "bad.ndg" in str(info.value)


def test_missing_file_and_unknown_op(tmp_path):
    with pytest.raises(SerializationError, match="does not exist"):
        load_graph(tmp_path / "nope.ndg")
    src = zipfile.ZipFile(io.BytesIO(graph_to_bytes(recurrent_graph())))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(b'"op": "CubaLIF"', b'"op": "Warp9X"') if info.filename == "graph.json"
                         else data)
    with pytest.raises(SerializationError, match="node 'lif' has unknown op 'Warp9X'"):
        graph_from_bytes(buf.getvalue(), "x.ndg")


def test_validation_names_the_node():
    with pytest.raises(IRError, match="node 'fc'.*Dense expects 5 inputs"):
        Graph({"in": Input(shape=(4,)), "fc": Dense(weight=np.ones((2, 5))), "n": IF(shape=(2,)),
               "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")]).validate()
    with pytest.raises(IRError, match="unknown node 'ghost'"):
        Graph({"in": Input(shape=(1,))}, [("in", "ghost")])
    with pytest.raises(IRError, match="node 'n'.*reset mode 'hard'"):
        Graph({"in": Input(shape=(1,)), "fc": Dense(weight=np.ones((1, 1))), "n": IF(shape=(1,), reset="hard"),
               "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")]).validate()
    with pytest.raises(IRError, match="no Output"):
        Graph({"in": Input(shape=(1,))}, []).validate()
