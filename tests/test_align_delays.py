"""Delay alignment helpers: aligned arrival of paths of different depth, delayed synapses, gated biases."""

import numpy as np
import pytest

from neurodeploy.emulator import simulate
from neurodeploy.errors import CapacityError, IRError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, CubaLIF, Dense, Input, Output, Sparse
from neurodeploy.ir.timing import node_latency
from neurodeploy.passes.align_delays import align, gate_biases, with_delay


def test_align_delays_and_limit():
    lat, d = align({"a": 0, "b": 3, "c": 1}, "t")
    assert lat == 4 and d == {"a": 3, "b": 0, "c": 2}
    lat, d = align({"a": 0}, "t", min_latency=5)
    assert lat == 5 and d == {"a": 4}
    with pytest.raises(CapacityError, match="node 't'.*from 'a'"):
        align({"a": 0, "b": 70}, "t")
    with pytest.raises(IRError):
        align({}, "t")


def test_with_delay_conv_becomes_equal_sparse():
    rng = np.random.default_rng(0)
    conv = Conv2d(weight=rng.normal(size=(3, 2, 3, 3)), stride=(2, 2), padding=(1, 1))
    op = with_delay(conv, 4, (2, 6, 6))
    assert isinstance(op, Sparse) and op.out_shape == (3, 3, 3) and np.all(op.delays == 4)
    x = rng.random((2, 6, 6))
    ref = np.zeros((3, 3, 3))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for o in range(3):
        for i in range(3):
            for j in range(3):
                ref[o, i, j] = (conv.weight[o] * xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]).sum()
    np.testing.assert_allclose(op.to_dense() @ x.ravel(), ref.ravel(), rtol=1e-12)
    assert with_delay(conv, 0, (2, 6, 6)) is conv
    assert np.all(with_delay(Dense(weight=np.ones((2, 3))), 2, (3,)).delays == 2)


def _two_path_graph(bias):
    """in -> a (latency 1) -> b (latency 2); in also feeds b through a delayed synapse (delay 1): aligned."""
    nodes = {"in": Input(shape=(2,)),
             "s_in_a": Dense(weight=np.eye(2)), "a": CubaLIF(shape=(2,), du=1.0, dv=0.5, vth=0.4),
             "s_a_b": Dense(weight=0.5 * np.eye(2)), "s_in_b": with_delay(Dense(weight=0.25 * np.eye(2)), 1, (2,)),
             "b": CubaLIF(shape=(2,), du=1.0, dv=0.5, vth=0.6, bias=bias), "out": Output()}
    edges = [("in", "s_in_a"), ("s_in_a", "a"), ("a", "s_a_b"), ("s_a_b", "b"), ("in", "s_in_b"), ("s_in_b", "b"),
             ("b", "out")]
    return Graph(nodes, edges)


def test_gate_biases_starts_the_bias_with_the_data():
    bias = np.array([0.3, -0.2])
    g = gate_biases(_two_path_graph(bias))
    assert node_latency(g)["b"] == 2 and g.nodes["b"].bias == 0.0
    assert np.all(g.nodes["clock->b"].delays == 1)
    # no stimulus: the gated neuron is silent during its 2 warm-up steps, then gets the bias every step
    res = simulate(g, np.zeros((1, 6, 2)), record=("v",), arithmetic="float")
    v = res.recorded["b/v"][0]
    np.testing.assert_array_equal(v[:2], 0.0)
    np.testing.assert_allclose(v[2], bias * 1.0)
    np.testing.assert_allclose(v[3], np.where(bias * 1.5 > 0.6, 0.0, bias * 1.5))
    assert gate_biases(_two_path_graph(0.0)) is not None and "clock" not in gate_biases(_two_path_graph(0.0)).nodes
    leaky = _two_path_graph(bias)
    leaky = leaky.with_nodes({**leaky.nodes, "b": leaky.nodes["b"].replace(du=0.5)})
    with pytest.raises(IRError, match="node 'b'"):
        gate_biases(leaky)
