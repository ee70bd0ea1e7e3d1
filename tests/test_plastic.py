"""PlasticDense (on-chip learning): rule parsing, the integer maths by hand, serialization, quantization, engines.

Hand cases follow the maths of :class:`neurodeploy.ir.ops.PlasticDense` (Lava's bit-approximate learning model):
a term ``m * 2**e * D * F...`` adds ``((D * prod F * m) >> max(0, sum(widths) + 4 - 15)) << (e + 7)`` to the
accumulator ``w << 7`` (widths: x1, y1 7 bits, w 9 bits), and the weight becomes ``acc / 128`` rounded with the
seeded draw (exact when ``acc`` is a multiple of 128). With ``tau = 0`` a trace holds its impulse on the step of
the spike only, which keeps the cases free of decay rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.emulator import simulate
from neurodeploy.emulator.plasticity import decay_history, term_update
from neurodeploy.errors import IRError, SerializationError, UnsupportedOpError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, PlasticDense, QuantInfo, graph_from_bytes
from neurodeploy.ir.learning import Term, lava_expression, parse_rule
from neurodeploy.ir.serialize import graph_to_bytes

Q = QuantInfo(scale=1.0)


def test_rule_parsing_normalises_like_lava_and_round_trips():
    terms = parse_rule("2^-4*x1*y0 - 2^-6 * y1*y0*w + 16*2^-8*u0*x1*y1")
    # 16 * 2^-8 is halved (Lava) only while the mantissa exceeds 7: 4 * 2^-6
    assert terms == (Term(1, -4, "y0", ("x1",)), Term(-1, -6, "y0", ("y1", "w")), Term(4, -6, "u0", ("x1", "y1")))
    assert parse_rule(lava_expression(terms)) == terms
    assert parse_rule("-3*2^-5*x0*y1") == (Term(-3, -5, "x0", ("y1",)),)
    assert lava_expression(()) == "0"


@pytest.mark.parametrize("bad, words", [("2^-4*x1*y1", "dependency"), ("2^-4*x2*y0", "x2"),
                                         ("9*x0*y1", "mantissa"), ("2^-9*x0*y1", "exponent"),
                                         ("x0*x1*y1*w*w", "factors"), ("2^-2*(x1+1)*y0", "cannot read"),
                                         ("x0*y1 +", "empty")])
def test_unsupported_rules_are_errors_naming_the_problem(bad, words):
    with pytest.raises(IRError, match=words):
        parse_rule(bad, "syn")


def test_term_update_by_hand():
    # 2^-2 * y0 * x1, x1 = 20: widths 7 + 4 <= 15, no shift; 20 << 5 = 640 = 5 weight units (20 / 4)
    assert int(term_update(Term(1, -2, "y0", ("x1",)), np.array(1), {"x1": np.array(20)})) == 640
    # -2^-5 * y0 * y1 * w, y1 = 100, w = 50: widths 7 + 9 + 4 = 20 -> >> 5: floor(-5000 / 32) = -157; << 2 = -628
    assert int(term_update(Term(-1, -5, "y0", ("y1", "w")), np.array(1),
                           {"y1": np.array(100), "w": np.array(50)})) == -628
    # a dependency of 0 contributes nothing; the accumulator clips at 2**15 - 1
    assert int(term_update(Term(7, 8, "x0", ("y1",)), np.array(0), {"y1": np.array(127)})) == 0
    assert int(term_update(Term(7, 8, "x0", ("y1",)), np.array(1), {"y1": np.array(127)})) == 2**15 - 1


def test_trace_history_by_hand():
    # tau = 0: only the impulse of the epoch's last spike (step 2), nothing carried from h[0]
    h = decay_history(np.array([50]), np.array([2]), tau=0, impulse=40, t_epoch=3, r=0.5)
    assert h[:, 0].tolist() == [50, 0, 40, 0]
    # tau = 2: h = floor(e^-1/2 * h) + (r < frac); 100 * 0.60653 = 60.65 -> 61 with r = 0.5 (and 60 with r = 0.7)
    assert decay_history(np.array([100]), np.array([0]), 2, 0, 1, r=0.5)[1, 0] == 61
    assert decay_history(np.array([100]), np.array([0]), 2, 0, 1, r=0.7)[1, 0] == 60
    # the impulse saturates at 127
    assert decay_history(np.array([0]), np.array([1]), 0, 127, 1, r=0.0)[1, 0] == 127


def _pair(dw: str, w0: int = 0, t_epoch: int = 2, sign_mode: str = "mixed") -> Graph:
    """pre (1) -plastic-> post (1) <-static 100- drive (1): a drive spike at column c makes post spike at c + 2."""
    nodes = {"pre": Input(shape=(1,)), "drive": Input(shape=(1,)),
             "syn": PlasticDense(weight=np.array([[w0]]), dw=dw, x1_impulse=40, x1_tau=0, y1_impulse=60, y1_tau=0,
                                 t_epoch=t_epoch, sign_mode=sign_mode, quant=Q),
             "kick": Dense(weight=np.array([[100]]), sign_mode="excitatory", quant=Q),
             "post": CubaLIF(shape=(1,), du=4095, dv=4095, vth=50, quant=Q), "out": Output()}
    edges = [("pre", "syn"), ("syn", "post"), ("drive", "kick"), ("kick", "post"), ("post", "out")]
    return Graph(nodes, edges)


def _stim(pre_cols, drive_cols, steps=6):
    pre, drive = np.zeros((1, steps, 1), np.uint8), np.zeros((1, steps, 1), np.uint8)
    pre[0, list(pre_cols), 0] = 1   # column c is emitted at step c + 1
    drive[0, list(drive_cols), 0] = 1
    return {"pre": pre, "drive": drive}


def test_hebbian_pairing_in_one_epoch_by_hand():
    # pre emits at step 2 (column 1); post spikes at step 2 (drive column 0). Epoch 1 = steps 1-2: tx = ty = 2,
    # x1 at ty = impulse 40; 2^-2 * y0 * x1 -> 40 << 5 = 1280 = 10 weight units exactly. Epoch 2: no spikes.
    res = simulate(_pair("2^-2*y0*x1"), _stim([1], [0], steps=4), record=("spikes",))
    assert res.outputs["out"][0, :, 0].tolist() == [0, 1, 0, 0]
    assert res.weights["syn"][0, 0, 0] == 10
    # pre at step 3, post at step 4 (epoch 2): with tau = 0 x1 has fallen back to 0 at step 4 -> no change
    assert simulate(_pair("2^-2*y0*x1"), _stim([2], [2], steps=4)).weights["syn"][0, 0, 0] == 0


def test_depression_and_weight_bounds_by_hand():
    # x0-dependent depression: pre at step 2, post at step 2 -> y1 at tx = 60; -2^-1 * x0 * y1 = -30 per epoch
    res = simulate(_pair("-2^-1*x0*y1", w0=20), _stim([1], [0], steps=4))
    assert res.weights["syn"][0, 0, 0] == 20 - 30
    # the same in an excitatory synapse stops at 0 (sign-mode clip of the accumulator)
    assert simulate(_pair("-2^-1*x0*y1", w0=20, sign_mode="excitatory"),
                    _stim([1], [0], steps=4)).weights["syn"][0, 0, 0] == 0
    # potentiation saturates at 255 (mixed): 2^3 * y0 * x1 = 40 * 8 = 320 units
    assert simulate(_pair("2^3*y0*x1", w0=100), _stim([1], [0], steps=4)).weights["syn"][0, 0, 0] == 255


def test_learned_weight_drives_the_post_neuron_after_the_epoch():
    # 2^3 * y0 * x1 learns 255 at the end of epoch 1 (step 2); the pre spike of step 3 crosses the new weight
    graph = _pair("2^3*y0*x1")
    res = simulate(graph, _stim([1, 2], [0], steps=5), record=("u",))
    u = res.recorded["post/u"][0, :, 0]
    assert u[3] == 255 << 6                    # step 4: the pre spike of step 3 arrives through the learned weight
    assert res.weights["syn"][0, 0, 0] == 255


def test_serialization_round_trip_and_validation():
    graph = _pair("2^-2*y0*x1 - 2^-6*u0*w", w0=7, t_epoch=5)
    back = graph_from_bytes(graph_to_bytes(graph))
    op = back.nodes["syn"]
    assert isinstance(op, PlasticDense)
    assert (op.dw, op.x1_impulse, op.y1_impulse, op.t_epoch) == ("2^-2*y0*x1 - 2^-6*u0*w", 40, 60, 5)
    assert graph_to_bytes(back) == graph_to_bytes(graph)
    nodes = dict(graph.nodes, syn=graph.nodes["syn"].replace(t_epoch=99))   # written unvalidated, rejected on load
    with pytest.raises(SerializationError, match="t_epoch"):
        graph_from_bytes(graph_to_bytes(Graph(nodes, graph.edges)))


def test_engines_float_mode_is_frozen_and_said_so_numba_declines():
    graph = _pair("2^-2*y0*x1")
    with pytest.raises(UnsupportedOpError, match="PlasticDense"):
        simulate(graph, _stim([1], [0]), engine="numba")
    float_graph = Graph({n: (op.replace(quant=None) if hasattr(op, "quant") else op) for n, op in graph.nodes.items()},
                        graph.edges)
    res = simulate(float_graph, {k: v.astype(float) for k, v in _stim([1], [0]).items()})
    assert "frozen" in res.engine_note and res.weights == {}


def test_quantizer_keeps_the_rule_and_a_mixed_sign_mode():
    from neurodeploy.compiler import compile_graph

    rng = np.random.default_rng(0)
    nodes = {"in": Input(shape=(8,)),
             "syn": PlasticDense(weight=rng.uniform(0.1, 0.5, (4, 8)), dw="2^-3*y0*x1 - 2^-5*y0*y1*w",
                                 x1_impulse=20, x1_tau=4, y1_impulse=20, y1_tau=4, t_epoch=4),
             "post": CubaLIF(shape=(4,), du=1.0, dv=0.1, vth=1.0), "out": Output()}
    graph = Graph(nodes, [("in", "syn"), ("syn", "post"), ("post", "out")])
    calib = (rng.random((8, 20, 8)) < 0.3).astype(np.uint8)
    art = compile_graph(graph, "loihi2", calibration=calib)
    op = art.graph.nodes["syn"]
    assert isinstance(op, PlasticDense) and op.quant is not None
    assert op.sign_mode == "mixed"              # all-positive float weights would otherwise become excitatory
    assert (op.dw, op.x1_tau, op.t_epoch) == (graph.nodes["syn"].dw, 4, 4)
    res = simulate(art.graph, calib)
    assert res.weights["syn"].shape == (8, 4, 8)
    assert np.any(res.weights["syn"] != np.asarray(op.weight))


def test_spinnaker_has_no_mapping_for_the_learning_rule():
    from neurodeploy.backends.pynn.netlist import build_netlist

    graph = _pair("2^-2*y0*x1")
    with pytest.raises(UnsupportedOpError, match="no sPyNNaker mapping"):
        build_netlist(graph)
