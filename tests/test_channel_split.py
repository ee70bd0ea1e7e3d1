"""Channel-split pass (issue 16 item 3): output channels grouped by the octave of their largest weight, one synapse
op per group, each with its own weight_exp once quantized; the float maths is unchanged."""

import numpy as np

from neurodeploy.compiler import compile_graph
from neurodeploy.emulator import simulate
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import AvgPool2d, Conv2d, CubaLIF, Dense, Flatten, Input, Output
from neurodeploy.passes.channel_split import channel_groups, split_channels


def _graph(rng):
    w = rng.normal(size=(4, 1, 3, 3))
    w[1] *= 0.1  # channel 1 three octaves below the others, channel 3 one
    w[3] *= 0.5 / np.abs(w[3]).max() * np.abs(w[0]).max()
    nodes = {"in": Input(shape=(1, 6, 6)), "c": Conv2d(weight=w, padding=(1, 1)),
             "a": CubaLIF(shape=(4, 6, 6), du=1.0, dv=0.2, vth=0.6), "p": AvgPool2d(kernel=(2, 2)),
             "f": Flatten(), "fc": Dense(weight=rng.normal(size=(3, 36)) * np.array([[1.0], [1.0], [0.01]])),
             "b": CubaLIF(shape=(3,), du=1.0, dv=0.1, vth=0.5), "out": Output()}
    edges = [("in", "c"), ("c", "a"), ("a", "p"), ("p", "f"), ("f", "fc"), ("fc", "b"), ("b", "out")]
    return Graph(nodes, edges)


def test_split_keeps_float_maths_and_fits_an_exponent_per_group():
    rng = np.random.default_rng(0)
    g = _graph(rng)
    s, changed = split_channels(g)
    conv_parts = sorted(n for n in s.nodes if n.startswith("c@"))
    assert changed and len(conv_parts) >= 2 and "c" not in s.nodes
    # every weight lands in exactly one group; each group is whole output channels
    total = sum(s.nodes[n].weight for n in conv_parts)
    np.testing.assert_array_equal(total, g.nodes["c"].weight)
    for n in conv_parts:
        nonzero = np.abs(s.nodes[n].weight).reshape(4, -1).max(1) > 0
        assert nonzero.any() and all(np.array_equal(s.nodes[n].weight[c], g.nodes["c"].weight[c])
                                     for c in np.flatnonzero(nonzero))
    # the folded pool + flatten + Dense is a Sparse whose third target neuron is two octaves below
    sparse_parts = [n for n in s.nodes if "@" in n and n not in conv_parts]
    assert len(sparse_parts) >= 2
    x = (rng.random((3, 10, 1, 6, 6)) < 0.4).astype(np.float64)
    from neurodeploy.passes.fold import fold_linear

    ref = simulate(fold_linear(g)[0], x, record=("v",), arithmetic="float")
    got = simulate(s, x, record=("v",), arithmetic="float")
    for key in ("a/v", "b/v"):
        np.testing.assert_allclose(got.recorded[key], ref.recorded[key], rtol=0, atol=1e-12)
    assert split_channels(s) == (s, False)
    art = compile_graph(s, "emulator", calibration=(x > 0).astype(np.uint8))
    exps = {n: art.graph.nodes[n].weight_exp for n in conv_parts}
    assert len(set(exps.values())) == len(conv_parts), exps  # one exponent per octave


def test_one_octave_is_left_alone():
    op = Dense(weight=np.array([[1.0, -0.6], [1.5, 0.0], [0.0, 0.0]]))  # a silent channel joins the largest group
    assert list(channel_groups(op)) == [0]
