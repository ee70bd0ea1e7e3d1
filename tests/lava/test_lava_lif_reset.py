"""``LIFReset`` (neurodeploy.ir.neurons.lif_reset) equals Lava 0.10's ``PyLifResetModelBitAcc`` integer for integer.

Lava's rule (``run_spk``): at time step t (first step t = 1), if ``t % reset_interval == reset_offset %
reset_interval`` then ``u = v = 0`` before the usual LIF update. Two checks:

* hand cases, worked out from that rule and asserted on Lava and the emulator;
* the random quantized networks of the equality suite (``random_nets.make_group``) with every CubaLIF turned into a
  LIFReset of a drawn interval (1-9) and offset (0-12, so offsets at and past the interval are exercised): every
  u, v and spike of Lava against the numba and numpy engines (torch equals them in tests/test_emulator_reset.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from random_nets import make_group

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate
from neurodeploy.ir import Dense, Graph, Input, LIFReset, Output, QuantInfo

Q = QuantInfo(scale=1.0)
T = 10
RECORD = ("spikes", "u", "v")


def _cell(interval, offset, **fields):
    base = {"du": 0, "dv": 0, "vth": 2**17 - 1, "bias": 0, "bias_exp": 0}
    return LIFReset(shape=(1,), reset_interval=interval, reset_offset=offset, quant=Q, **{**base, **fields})


# name: (neuron, expected v, expected spikes); u stays 0 (no synaptic input) except where stated.
CASES = {
    # bias 10 per step, no decay; interval 4, offset 1: v = 0 at t = 1, 5, 9 before the update, so v restarts at 10.
    "bias ramp reset every 4 steps from t = 1": (
        _cell(4, 1, bias=10), [10, 20, 30, 40, 10, 20, 30, 40, 10, 20], [0] * T),
    # offset 0 means t % 3 == 0: resets at t = 3, 6, 9.
    "offset 0 resets at multiples of the interval": (
        _cell(3, 0, bias=10), [10, 20, 10, 20, 30, 10, 20, 30, 10, 20], [0] * T),
    # offset 7 with interval 3 acts as offset 1 (Lava takes reset_offset % reset_interval): resets at t = 1, 4, 7, 10.
    "offset past the interval wraps": (
        _cell(3, 7, bias=10), [10, 20, 30, 10, 20, 30, 10, 20, 30, 10], [0] * T),
    # interval 1 resets every step: v = bias each step.
    "interval 1 resets every step": (_cell(1, 0, bias=10), [10] * T, [0] * T),
    # threshold 1 << 6 = 64, bias 25: 25, 50, 75 > 64 spikes (v = 0), ... the reset at t = 5, 9 (interval 4,
    # offset 1 -> t = 1, 5, 9) restarts the ramp.
    "spikes and periodic reset together": (
        _cell(4, 1, bias=25, vth=1), [25, 50, 0, 25, 25, 50, 0, 25, 25, 50], [0, 0, 1, 0, 0, 0, 1, 0, 0, 0]),
}


def _hand_graph() -> tuple[Graph, dict[str, str]]:
    nodes = {"in": Input(shape=(1,))}
    edges = []
    names = {}
    for i, (case, (neuron, *_)) in enumerate(CASES.items()):
        names[case] = f"c{i}"
        nodes[f"c{i}"] = neuron
        nodes[f"c{i}s"] = Dense(weight=np.zeros((1, 1), np.int64), weight_exp=0, num_weight_bits=8,
                                sign_mode="excitatory", quant=Q)
        edges += [("in", f"c{i}s"), (f"c{i}s", f"c{i}")]
    nodes["out"] = Output()
    edges.append(("c0", "out"))
    return Graph(nodes, edges).validate(), names


def test_hand_cases_on_lava_and_the_emulator(lava):
    graph, names = _hand_graph()
    x = np.zeros((1, T, 1), np.uint8)
    description = describe(graph)
    assert {p["class"] for p in description["processes"] if p["role"] == "neuron"} == {
        "lava.proc.lif.process.LIFReset"}
    lava_res = run_description(description, x, record=RECORD)
    emu = simulate(graph, x, record=RECORD)
    emu_res = {**emu.outputs, **emu.recorded}
    for case, (_neuron, v, s) in CASES.items():
        node = names[case]
        for source, res in (("lava", lava_res), ("emulator", emu_res)):
            np.testing.assert_array_equal(res[f"{node}/u"][0, :, 0], [0] * T, err_msg=f"{source}: u of '{case}'")
            np.testing.assert_array_equal(res[f"{node}/v"][0, :, 0], v, err_msg=f"{source}: v of '{case}'")
            np.testing.assert_array_equal(res[f"{node}/spikes"][0, :, 0], s, err_msg=f"{source}: spikes of '{case}'")


def _with_resets(graph: Graph, seed: int) -> tuple[Graph, dict[str, tuple[int, int]]]:
    """``graph`` with every CubaLIF replaced by a LIFReset of a drawn (interval, offset)."""
    rng = np.random.default_rng(seed)
    nodes, drawn = {}, {}
    for name, op in graph.nodes.items():
        if op.op_type == "CubaLIF":
            interval, offset = int(rng.integers(1, 10)), int(rng.integers(0, 13))
            op = LIFReset(**op.params(), reset_interval=interval, reset_offset=offset)
            drawn[name] = (interval, offset)
        nodes[name] = op
    return Graph(nodes, list(graph.edges)).validate(), drawn


GROUPS = {
    "plain": {"seeds": list(range(9100, 9112)), "steps": 40},
    "batched, two inputs": {"seeds": list(range(9200, 9208)), "steps": 30, "batch": 2, "n_inputs": 2},
    "stress": {"seeds": list(range(9300, 9306)), "steps": 40, "stress": True},
}


@pytest.mark.parametrize("name", list(GROUPS))
def test_random_networks_equal_lava(lava, name):
    group = make_group(**GROUPS[name])
    graph, drawn = _with_resets(group.graph, 17 + len(name))
    assert len(drawn) >= len(GROUPS[name]["seeds"])
    assert any(offset >= interval for interval, offset in drawn.values())  # Lava's modulo is exercised
    lava_res = run_description(describe(graph), group.spikes, record=RECORD)
    resets_seen = False
    for engine in ("numba", "numpy"):
        emu = simulate(graph, group.spikes, record=RECORD, engine=engine)
        assert emu.engine == engine, emu.engine_note
        expected = {**emu.outputs, **emu.recorded}
        assert set(lava_res) == set(expected)
        for key in sorted(expected):
            np.testing.assert_array_equal(lava_res[key], expected[key], err_msg=f"{name}, {engine}: {key}")
        # the reset matters: without it the same network gives different v somewhere
        plain = simulate(group.graph, group.spikes, record=("v",), engine=engine)
        resets_seen |= any(not np.array_equal(plain.recorded[k], expected[k]) for k in plain.recorded)
    assert resets_seen
