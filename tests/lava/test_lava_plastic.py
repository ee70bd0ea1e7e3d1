"""On-chip learning on Lava vs the emulator: PlasticDense lowered to LearningDense + Loihi2FLearningRule.

Lava marks its learning models "bit-approximate" (they are not Loihi silicon). What is measured here is how close
the emulator (:mod:`neurodeploy.emulator.plasticity`) comes to Lava's own fixed-point model
(``PyLearningDenseModelBitApproximate``) after N steps: the fraction of equal weights, the largest weight
difference and the fraction of equal output spikes, on random networks and rules covering every dependency (x0,
y0, u0), every factor (x1, y1, w), trace decay (tau > 0 and tau = 0), repeated spikes within an epoch and epochs of
1 to 7 steps. Learned weights feed back into the spikes during the run, so any difference would propagate.

Bound: exact. Lava's model is deterministic given its seeds: its only randomness is scalar uniforms from
``numpy.random.default_rng`` streams seeded by ``rng_seed`` (traces) and the fixed seed 2 (weight rounding), which
the emulator draws in the same order, and its only non-integer operation, ``floor(exp(-1/tau) * trace)``, is the
same float64 expression in both. So every weight and spike must agree; a difference is a bug on one side (or a
change in Lava's model), not rounding noise. The static (no-learning) path is covered by test_lava_equality.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate
from neurodeploy.ir import CubaLIF, Graph, Input, Output, PlasticDense, QuantInfo

Q = QuantInfo(scale=1.0)

RULES = {
    "stdp": dict(dw="2^-2*x1*y0 - 2^-3*y1*x0", x1_impulse=16, x1_tau=8, y1_impulse=16, y1_tau=8, t_epoch=2),
    "oja": dict(dw="2^-3*y0*x1 - 2^-5*y0*y1*w", x1_impulse=20, x1_tau=10, y1_impulse=24, y1_tau=6, t_epoch=4),
    "every_epoch": dict(dw="3*2^-5*u0*x1*y1 - 2^-6*u0*w", x1_impulse=30, x1_tau=5, y1_impulse=30, y1_tau=0,
                        t_epoch=7),
    "epoch_1": dict(dw="-2^-1*x0*y1 + 2^-1*y0*x1*x1", x1_impulse=9, x1_tau=3, y1_impulse=5, y1_tau=12, t_epoch=1),
}


def _net(rule: dict, seed: int, n_in: int = 10, n_out: int = 6, mode: str = "mixed"):
    rng = np.random.default_rng(seed)
    w = rng.integers(-60, 90, (n_out, n_in)) if mode == "mixed" else rng.integers(0, 90, (n_out, n_in))
    syn = PlasticDense(weight=w, sign_mode=mode, rng_seed=seed, quant=Q, **rule)
    lif = CubaLIF(shape=(n_out,), du=3000, dv=600, vth=40, quant=Q)
    return Graph({"in": Input(shape=(n_in,)), "syn": syn, "post": lif, "out": Output()},
                 [("in", "syn"), ("syn", "post"), ("post", "out")])


def agreement(graph: Graph, x: np.ndarray) -> dict[str, float]:
    """Weights and spikes after ``x.shape[1]`` steps: emulator vs Lava fixed_pt, per sample."""
    lava = run_description(describe(graph), x)
    emu = simulate(graph, x)
    w_l, w_e = lava["syn/weights"], emu.weights["syn"]
    initial = np.asarray(graph.nodes["syn"].weight)
    return {"weights_equal": float((w_l == w_e).mean()), "weights_max_diff": int(np.abs(w_l - w_e).max()),
            "spikes_equal": float((lava["out"] == emu.outputs["out"]).mean()),
            "weights_changed": float((w_e != initial).mean()), "spikes": int(emu.outputs["out"].sum())}


@pytest.mark.parametrize("name", sorted(RULES))
def test_learning_on_lava_agrees_with_the_emulator(lava, name):
    rng = np.random.default_rng(1)
    x = (rng.random((2, 40, 10)) < 0.3).astype(np.uint8)
    m = agreement(_net(RULES[name], seed=3), x)
    assert m["weights_changed"] > 0.3 and m["spikes"] > 20   # the rule did learn and the neurons did fire
    assert m["weights_equal"] == 1.0 and m["weights_max_diff"] == 0, m   # exact bound: see the module docstring
    assert m["spikes_equal"] == 1.0, m


def test_excitatory_learning_stays_non_negative_on_both(lava):
    rule = dict(dw="-2^0*x0*y1 - 2^-2*u0*w", x1_impulse=10, x1_tau=4, y1_impulse=60, y1_tau=20, t_epoch=3)
    graph = _net(rule, seed=5, mode="excitatory")
    x = (np.random.default_rng(2).random((1, 30, 10)) < 0.5).astype(np.uint8)
    m = agreement(graph, x)
    assert m["weights_equal"] == 1.0, m
    assert simulate(graph, x).weights["syn"].min() == 0                       # clipped at the sign-mode bound
