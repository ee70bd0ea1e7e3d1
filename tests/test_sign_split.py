"""Sign-split pass: mixed-sign float synapses become an excitatory and an inhibitory half with the same maths."""

import numpy as np

from neurodeploy.compiler import quantize_graph as quantize
from neurodeploy.emulator import simulate
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, CubaLIF, Dense, Input, Output
from neurodeploy.passes.align_delays import with_delay
from neurodeploy.passes.sign_split import split_signs


def _graph(rng):
    conv = Conv2d(weight=rng.normal(size=(3, 2, 3, 3)), padding=(1, 1))
    nodes = {"in": Input(shape=(2, 5, 5)), "c": conv, "a": CubaLIF(shape=(3, 5, 5), du=1.0, dv=0.5, vth=0.8),
             "d": with_delay(conv, 2, (2, 5, 5)), "pos": Dense(weight=np.abs(rng.normal(size=(4, 75)))),
             "b": CubaLIF(shape=(4,), du=1.0, dv=0.5, vth=0.5), "out": Output()}
    edges = [("in", "c"), ("c", "a"), ("in", "d"), ("d", "a"), ("a", "pos"), ("pos", "b"), ("b", "out")]
    return Graph(nodes, edges)


def test_split_keeps_float_maths_and_sign_modes():
    rng = np.random.default_rng(0)
    g = _graph(rng)
    s, changed = split_signs(g)
    assert changed and {"c+", "c-", "d+", "d-", "pos"} <= set(s.nodes) and "c" not in s.nodes
    assert (s.nodes["c+"].weight >= 0).all() and (s.nodes["c-"].weight <= 0).all()
    assert np.all(s.nodes["d+"].delays == 2) and (s.nodes["d-"].value < 0).all()
    n_conv = np.count_nonzero(g.nodes["c"].weight)
    assert np.count_nonzero(s.nodes["c+"].weight) + np.count_nonzero(s.nodes["c-"].weight) == n_conv
    x = (rng.random((3, 8, 2, 5, 5)) < 0.4).astype(np.float64)
    ref = simulate(g, x, record=("v",), arithmetic="float")
    got = simulate(s, x, record=("v",), arithmetic="float")
    np.testing.assert_allclose(got.recorded["a/v"], ref.recorded["a/v"], rtol=0, atol=1e-12)  # summation order
    np.testing.assert_array_equal(got.outputs["out"], ref.outputs["out"])
    assert split_signs(s) == (s, False)
    q, _ = quantize(s, "loihi2", (x[:, :, :] > 0).astype(np.uint8))
    assert q.nodes["c+"].sign_mode == "excitatory" and q.nodes["c-"].sign_mode == "inhibitory"
