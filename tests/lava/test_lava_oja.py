"""HLOP's subspace rule on chip (issue 20, item 1) on Lava vs the emulator: the residual network of
:mod:`neurodeploy.families.hlop.oja` (residual populations e+ / e-, subspace neurons y, learning H: e -> y and tied
feedback F = -H^T: y -> e, both PlasticDense with the same product rule of opposite sign).

Bound: exact, as in test_lava_plastic (Lava's model is deterministic given its seeds; the emulator draws the same
numbers in the same order): every learned weight of the four learning synapses and every spike of the three
populations must equal Lava's, and on Lava as on the emulator the feedback must stay ``F = -H^T`` integer for
integer. The last test is the control: with an update of half a weight unit per event the stochastic rounding
(one draw per epoch, shared) rounds ``+a`` and ``-a`` differently, and the tie breaks on both sides alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate
from neurodeploy.families.hlop import oja
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=1.0)
N, K = 12, 3
POPS = [f"oja_in_{p}" for p in ("y", "ep", "en")]
LEARNING = [f"oja_in_{m}" for m in ("Hp", "Hn", "Fp", "Fn")]


def _graph(cfg: oja.OjaChipConfig, seed: int, old_rows: int = 2) -> Graph:
    """12 input spike trains, 2 old (frozen) directions projected out, 3 subspace neurons; a static readout of the
    input keeps the base graph a valid network."""
    rng = np.random.default_rng(seed)
    base = Graph({"in": Input(shape=(N,)), "syn": Dense(weight=rng.integers(0, 40, (2, N)), quant=Q),
                  "lif": CubaLIF(shape=(2,), du=4095, dv=0, vth=60, quant=Q), "out": Output()},
                 [("in", "syn"), ("syn", "lif"), ("lif", "out")])
    old = rng.random((old_rows, N)) if old_rows else None      # positive rows: the residual takes both signs
    return oja.with_oja_subspace(base, {"in": (cfg, old)}, seed)


def _stimulus(seed: int, steps: int = 48, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rates = rng.random((batch, 1, N)) * 0.8            # one "digit" of fixed rates per sample
    return (rng.random((batch, steps, N)) < rates).astype(np.uint8)


CONFIGS = {
    "every_step": oja.OjaChipConfig(k=K, t_epoch=1, impulse_e=4, impulse_y=4, vth_e=20, vth_y=30, init_high=20),
    "epoch_3_unit_8": oja.OjaChipConfig(k=K, t_epoch=3, impulse_e=8, impulse_y=4, mantissa=2, vth_e=30, vth_y=40,
                                        init_high=30),
}


def _compare(graph: Graph, x: np.ndarray) -> dict:
    lava = run_description(describe(graph), x, record=("spikes",), nodes=POPS)
    emu = simulate(graph, x, record=("spikes",), nodes=POPS)
    lava_w = {n: np.asarray(lava[f"{n}/weights"]) for n in LEARNING}
    return {"lava_w": lava_w, "emu_w": {n: emu.weights[n] for n in LEARNING},
            "spikes": {n: (np.asarray(lava[f"{n}/spikes"]), emu.recorded[f"{n}/spikes"]) for n in POPS}}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_oja_residual_network_on_lava_equals_the_emulator_and_keeps_the_tie(lava, name):
    graph = _graph(CONFIGS[name], seed=4)
    x = _stimulus(5)
    m = _compare(graph, x)
    for n in LEARNING:
        assert np.array_equal(m["lava_w"][n], m["emu_w"][n]), n        # exact: module docstring
        initial = np.asarray(graph.nodes[n].weight)
        assert (m["emu_w"][n] != initial).mean() > 0.2, n               # it learned within the compared steps
    for n in POPS:
        lava_s, emu_s = m["spikes"][n]
        assert np.array_equal(lava_s, emu_s), n
        assert emu_s.sum() > 10, n                                      # every population fired
    assert oja.tie_holds(m["lava_w"], "in") and oja.tie_holds(m["emu_w"], "in")    # F = -H^T on both


def test_a_fractional_update_breaks_the_tie_on_lava_as_on_the_emulator(lava):
    """Control: half a unit per event (impulses 2 and 2, mantissa 1: (2*2*1) >> 3 = 0 would vanish, so 2^-1 is
    applied after the shift instead: ``2^-1 * 2 * ...`` = mantissa 1, exponent 0 with impulses 4, 4 -> 2 units, then
    2^-2 -> half a unit). Lava and the emulator still agree exactly; the tie does not hold."""
    cfg = CONFIGS["every_step"]
    graph = _graph(cfg, seed=4)
    nodes = dict(graph.nodes)
    for n in LEARNING:
        sign = -1 if n.endswith(("Fp", "Fn")) else 1
        nodes[n] = dataclasses.replace(nodes[n], dw=f"{'-' if sign < 0 else ''}2^-2*u0*x1*y1")
    graph = Graph(nodes, graph.edges, dict(graph.meta))
    m = _compare(graph, _stimulus(5))
    for n in LEARNING:
        assert np.array_equal(m["lava_w"][n], m["emu_w"][n]), n
    assert not oja.tie_holds(m["emu_w"], "in") and not oja.tie_holds(m["lava_w"], "in")
