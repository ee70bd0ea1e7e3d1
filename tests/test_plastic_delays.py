"""PlasticDense with synaptic delays, a connectivity mask and the third factor y2 (emulator; Lava refuses them).

* Delays (Loihi 2: on the dendritic side): with a rule that never changes a weight, a PlasticDense with delays (and
  a mask) produces exactly the integers of the static Dense / Sparse op with the same delays; with learning, the
  weights depend on the pre and post spike times only, not on the delays (the traces see a pre spike at its own
  step).
* y2: parsed as a 7-bit factor; a term's integer contribution by hand; a rule using y2 needs a third_factor.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.emulator import simulate
from neurodeploy.emulator.astrocyte import astrocyte_op
from neurodeploy.emulator.plasticity import term_update
from neurodeploy.errors import BackendError, IRError, UnsupportedOpError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, PlasticDense, QuantInfo, Sparse, graph_from_bytes
from neurodeploy.ir.learning import FACTOR_WIDTH, Term, parse_rule
from neurodeploy.ir.serialize import graph_to_bytes

Q = QuantInfo(scale=1.0)
N_IN, N_OUT = 12, 7


def _weights(seed: int, density: float = 0.6):
    rng = np.random.default_rng(seed)
    mask = rng.random((N_OUT, N_IN)) < density
    w = np.where(mask, rng.integers(1, 60, (N_OUT, N_IN)), 0)
    delays = np.where(mask, rng.integers(0, 6, (N_OUT, N_IN)), 0)
    return w, delays, mask


def _graph(syn, kick: bool = False) -> Graph:
    post = CubaLIF(shape=(N_OUT,), du=2000, dv=300, vth=60, quant=Q)
    if kick:  # memoryless neurons that fire exactly when the strong static kick arrives: 255 << 7 > vth > 12 * 255
        post = CubaLIF(shape=(N_OUT,), du=4095, dv=4095, vth=30000, quant=Q)
    nodes = {"in": Input(shape=(N_IN,)), "syn": syn, "post": post, "out": Output()}
    edges = [("in", "syn"), ("syn", "post"), ("post", "out")]
    if kick:
        nodes["drive"] = Input(shape=(N_OUT,))
        nodes["kick"] = Dense(weight=np.eye(N_OUT, dtype=np.int64) * 255, sign_mode="excitatory", weight_exp=7,
                              quant=Q)
        edges += [("drive", "kick"), ("kick", "post")]
    return Graph(nodes, edges)


def _stim(seed: int, batch: int = 3, steps: int = 40, rate: float = 0.3):
    return (np.random.default_rng(seed).random((batch, steps, N_IN)) < rate).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1])
def test_plastic_dense_with_delays_and_no_learning_equals_the_static_ops(seed):
    w, delays, mask = _weights(seed)
    x = _stim(seed)
    plastic = PlasticDense(weight=w, delays=delays, mask=mask, dw="0*y0*x1", sign_mode="excitatory", quant=Q)
    dense = Dense(weight=w, delays=delays, sign_mode="excitatory", quant=Q)
    row, col = np.nonzero(mask)
    sparse = Sparse(out_shape=(N_OUT,), in_size=N_IN, row=row, col=col, value=w[row, col], delays=delays[row, col],
                    sign_mode="excitatory", quant=Q)
    rec = ("spikes", "u", "v")
    res = {k: simulate(_graph(op), x, record=rec) for k, op in
           (("plastic", plastic), ("dense", dense), ("sparse", sparse))}
    assert res["plastic"].outputs["out"].sum() > 10       # the neurons fired: the comparison is not vacuous
    assert np.unique(delays[mask]).size > 3               # several delay buckets
    for other in ("dense", "sparse"):
        for key in res["plastic"].recorded:
            assert np.array_equal(res["plastic"].recorded[key], res[other].recorded[key]), (other, key)
    assert np.array_equal(res["plastic"].weights["syn"], np.broadcast_to(w, (3, N_OUT, N_IN)))
    # and the delays matter: without them the integers differ
    no_delay = simulate(_graph(PlasticDense(weight=w, mask=mask, dw="0*y0*x1", sign_mode="excitatory", quant=Q)), x,
                        record=rec)
    assert not np.array_equal(no_delay.recorded["post/v"], res["plastic"].recorded["post/v"])


def test_learning_with_delays_sees_the_pre_spike_at_its_own_step():
    """Post fires only when the kick drives it (plastic weights are too small to matter), so both runs have the same
    pre and post spikes; the learned weights must then be identical with and without delays."""
    rng = np.random.default_rng(4)
    w = rng.integers(0, 3, (N_OUT, N_IN))
    delays = rng.integers(0, 8, (N_OUT, N_IN))
    rule = dict(dw="2^-2*x1*y0 - 2^-3*y1*x0", x1_impulse=30, x1_tau=6, y1_impulse=30, y1_tau=6, t_epoch=2,
                sign_mode="excitatory", rng_seed=3, quant=Q)
    x = {"in": _stim(5, steps=30), "drive": (rng.random((3, 30, N_OUT)) < 0.3).astype(np.uint8)}
    with_d = simulate(_graph(PlasticDense(weight=w, delays=delays, **rule), kick=True), x)
    without = simulate(_graph(PlasticDense(weight=w, **rule), kick=True), x)
    assert np.array_equal(with_d.outputs["out"], without.outputs["out"])
    assert with_d.outputs["out"].sum() > 20
    assert (with_d.weights["syn"] != w).mean() > 0.3                  # the rule did learn
    assert np.array_equal(with_d.weights["syn"], without.weights["syn"])


def test_mask_keeps_absent_synapses_at_zero_while_present_ones_learn():
    w, delays, mask = _weights(2, density=0.4)
    syn = PlasticDense(weight=w, delays=delays, mask=mask, dw="2^-1*x1*y0", x1_impulse=60, x1_tau=8, t_epoch=1,
                       sign_mode="excitatory", quant=Q)
    res = simulate(_graph(syn), _stim(3, rate=0.5))
    learned = res.weights["syn"]
    assert np.all(learned[:, ~mask] == 0)
    assert (learned[:, mask] > w[mask]).mean() > 0.3


def test_delays_are_checked_and_kept_by_serialization():
    w, delays, mask = _weights(0)
    with pytest.raises(IRError, match="shape"):
        _graph(PlasticDense(weight=w, delays=delays[:, :3], dw="0*y0*x1", quant=Q)).validate()
    with pytest.raises(IRError, match=r"\[0, 62\]"):
        _graph(PlasticDense(weight=w, delays=delays + 60, dw="0*y0*x1", quant=Q)).validate()
    astro = astrocyte_op(np.ones(N_OUT, bool), "in", 1.0, 0.5, gain=5.0, target=1.0, log_m_max=1.0)
    g = _graph(PlasticDense(weight=w, delays=delays, mask=mask, dw="2^-2*y0*x1 - 2^-3*x0*y1*y2",
                            third_factor="astro", quant=Q))
    g = Graph({**g.nodes, "astro": astro}, list(g.edges) + [("post", "astro")]).validate()
    back = graph_from_bytes(graph_to_bytes(g))
    op = back.nodes["syn"]
    assert np.array_equal(op.delays, delays) and np.array_equal(op.mask, mask) and op.third_factor == "astro"
    assert np.array_equal(back.nodes["astro"].table, astro.table) and back.nodes["astro"].g_drive == astro.g_drive
    assert graph_to_bytes(back) == graph_to_bytes(g)


def test_lava_lowering_refuses_delays_masks_and_third_factors():
    from neurodeploy.backends.lava.describe import describe

    w, delays, mask = _weights(1)
    for extra, words in ((dict(delays=delays), "delays"), (dict(mask=mask), "mask")):
        with pytest.raises(BackendError, match=words):
            describe(_graph(PlasticDense(weight=w, dw="2^-2*y0*x1", sign_mode="excitatory", quant=Q, **extra)))
    astro = astrocyte_op(np.ones(N_OUT, bool), "in", 1.0, 0.5, gain=5.0, target=1.0, log_m_max=1.0)
    g = _graph(PlasticDense(weight=w, dw="2^-2*y0*x1*y2", third_factor="astro", sign_mode="excitatory", quant=Q))
    g = Graph({**g.nodes, "astro": astro}, list(g.edges) + [("post", "astro")])
    with pytest.raises((BackendError, UnsupportedOpError), match="Astrocyte|third factor"):
        describe(g)


def test_y2_is_a_seven_bit_factor():
    assert FACTOR_WIDTH["y2"] == 7
    assert parse_rule("-2^-3*x0*y1*y2") == (Term(-1, -3, "x0", ("y1", "y2")),)
    # widths 7 + 7 + 4 = 18 > 15: p = (y1 * y2 * m) >> 3, then << (e + 7). y1 = 40, y2 = 32, m = -1, e = -3:
    # -1280 >> 3 = -160; << 4 = -2560 (= -20 weight units = -40 * 32 / 64)
    got = term_update(Term(-1, -3, "x0", ("y1", "y2")), np.array(1), {"y1": np.array(40), "y2": np.array(32)})
    assert int(got) == -2560
    # y2 is clipped to its 7-bit signed range like any trace
    assert int(term_update(Term(1, -7, "u0", ("y2",)), np.array(1), {"y2": np.array(300)})) == 127
    with pytest.raises(IRError, match="third_factor"):
        _graph(PlasticDense(weight=np.zeros((N_OUT, N_IN), np.int64), dw="2^-2*y0*y2", quant=Q)).validate()


def test_a_rule_with_y2_without_its_astrocyte_is_an_error():
    g = _graph(PlasticDense(weight=np.zeros((N_OUT, N_IN), np.int64), dw="2^-2*y0*y2", third_factor="nowhere",
                            quant=Q))
    with pytest.raises(UnsupportedOpError, match="nowhere"):
        simulate(g, _stim(0))


def test_compile_keeps_delays_mask_third_factor_and_the_astrocyte():
    from neurodeploy.compiler import compile_graph

    rng = np.random.default_rng(0)
    w, delays, mask = _weights(6)
    w = w / 100.0
    syn = PlasticDense(weight=w, delays=delays, mask=mask, dw="2^-4*y0*x1 - 2^-5*x0*y1*y2", x1_impulse=10,
                       x1_tau=5, y1_impulse=10, y1_tau=5, third_factor="astro", sign_mode="excitatory")
    g = Graph({"in": Input(shape=(N_IN,)), "syn": syn, "post": CubaLIF(shape=(N_OUT,), du=0.5, dv=0.1, vth=1.0),
               "out": Output(), "astro": astrocyte_op(np.ones(N_OUT, bool), "in", 1.0, 1.0, 5.0, 1.0, 1.0)},
              [("in", "syn"), ("syn", "post"), ("post", "out"), ("post", "astro")])
    x = (rng.random((4, 30, N_IN)) < 0.3).astype(np.uint8)
    art = compile_graph(g, "loihi2", calibration=x)
    q = art.graph.nodes["syn"]
    assert isinstance(q, PlasticDense) and q.quant is not None and q.third_factor == "astro"
    assert np.array_equal(q.delays, delays) and np.array_equal(q.mask, mask)
    assert art.graph.nodes["astro"] is g.nodes["astro"]
    learned = simulate(art.graph, x).weights["syn"]
    assert np.all(learned[:, ~mask] == 0) and (learned != np.asarray(q.weight)).mean() > 0.1
