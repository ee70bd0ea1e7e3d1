"""Single-neuron cases worked out by hand from Lava 0.10's bit-accurate rules, asserted on Lava and the emulator.

Rules used (``PyLifModelBitAcc``, ``PyDenseModelBitAcc``, ``weightutils``), per Lava step t:
``u = trunc0(u * (4096 - du - 1) / 4096) + (a << 6)`` then one wrap (u > 2**23: -2**24; u <= -2**23: +2**24);
``v = clip(trunc0(v * (4096 - dv) / 4096) + u + (bias_mant << bias_exp), +-(2**23 - 1))``; spike iff
``v > vth << 6``, then v = 0. trunc0 rounds toward zero. Weights: clip by sign mode, truncate
``k = 8 - num_weight_bits + mixed`` low bits (inhibitory: of the magnitude), ``a = (sum W s) << weight_exp``
(floor shift for negative exponents, on the sum). A stimulus column c reaches u at step c + 2 (+ delay).

All cases share one Input with three channels: ch0 spikes at column 0 only, ch1 at every column, ch2 never.
Arrays below are indexed by ``t - 1`` (index 0 = Lava step 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse

T = 8
Q = QuantInfo(scale=1.0)
VMAX = 2**23 - 1


def _dense(w, exp=0, bits=8, mode="mixed", delays=None):
    return Dense(weight=np.array([w], dtype=np.int64), weight_exp=exp, num_weight_bits=bits, sign_mode=mode,
                 delays=None if delays is None else np.array([delays]), quant=Q)


def _lif(du=4095, dv=4095, vth=2**17 - 1, bias=0, bias_exp=0):
    return CubaLIF(shape=(1,), du=du, dv=dv, vth=vth, bias=bias, bias_exp=bias_exp, quant=Q)


ZERO = ([0, 0, 0], 0, 8, "excitatory")

# name: (synapses, neuron, expected u, expected v, expected spikes)
CASES = {
    # a = -100 at step 2 (mixed, 8 bits: k = 1, -100 is even). u3 = -(6400 * 3095 >> 12) = -(4835.94 -> 4835);
    # floor would give -4836. dv = 0: v accumulates u.
    "u decay rounds toward zero": (
        [([-100, 0, 0], 0, 8, "mixed")], _lif(du=1000, dv=0),
        [0, -6400, -4835, -3653, -2760, -2085, -1575, -1190],
        [0, -6400, -11235, -14888, -17648, -19733, -21308, -22498], [0] * 8),
    # bias 3 << 5 = 96 per step, threshold 4 << 6 = 256: 96, 192, 288 > 256 -> spike, reset.
    "bias mantissa << bias_exp, reset to zero": (
        [ZERO], _lif(du=0, dv=0, vth=4, bias=3, bias_exp=5),
        [0] * 8, [96, 192, 0, 96, 192, 0, 96, 192], [0, 0, 1, 0, 0, 1, 0, 0]),
    # bias -5 << 3 = -40 per step, no decay.
    "negative bias mantissa with exponent": (
        [ZERO], _lif(du=0, dv=0, bias=-5, bias_exp=3),
        [0] * 8, [-40, -80, -120, -160, -200, -240, -280, -320], [0] * 8),
    # dv = 2048 halves v toward zero: v2 = trunc0(-3 / 2) - 3 = -1 - 3 = -4 (floor would be -5); fixed point -5.
    "v decay rounds toward zero": (
        [ZERO], _lif(du=0, dv=2048, bias=-3),
        [0] * 8, [-3, -4, -5, -5, -5, -5, -5, -5], [0] * 8),
    # mixed, 6 bits: k = 3, -101 >> 3 << 3 = -104 (floor); du = dv = 4095 keep (almost) only this step.
    # v3 = trunc0(-6656 / 4096) = -1.
    "mixed weight truncation floors": (
        [([-101, 0, 0], 0, 6, "mixed")], _lif(),
        [0, -6656, 0, 0, 0, 0, 0, 0], [0, -6656, -1, 0, 0, 0, 0, 0], [0] * 8),
    # inhibitory, 6 bits: k = 2 on the magnitude, -(101 >> 2 << 2) = -100.
    "inhibitory weight truncation toward zero": (
        [([-101, 0, 0], 0, 6, "inhibitory")], _lif(),
        [0, -6400, 0, 0, 0, 0, 0, 0], [0, -6400, -1, 0, 0, 0, 0, 0], [0] * 8),
    # excitatory clip to 255: u = 255 * 64 = 16320; v3 = trunc0(16320 / 4096) = 3.
    "excitatory weight clipped to 255": (
        [([300, 0, 0], 0, 8, "excitatory")], _lif(),
        [0, 16320, 0, 0, 0, 0, 0, 0], [0, 16320, 3, 0, 0, 0, 0, 0], [0] * 8),
    # mixed clip to -256 (k = 1 keeps it): u = -16384; v3 = -4.
    "mixed weight clipped to -256": (
        [([-300, 0, 0], 0, 8, "mixed")], _lif(),
        [0, -16384, 0, 0, 0, 0, 0, 0], [0, -16384, -4, 0, 0, 0, 0, 0], [0] * 8),
    # inhibitory, weight_exp -1 on the sum: step 2 (ch0 + ch1) -6 >> 1 = -3 -> u = -192; later -3 >> 1 = -2
    # (floor) -> u = -128. Shifting each synapse first would give -4 at step 2.
    "negative weight_exp floors the summed input": (
        [([-3, -3, 0], -1, 8, "inhibitory")], _lif(),
        [0, -192, -128, -128, -128, -128, -128, -128], [0, -192, -128, -128, -128, -128, -128, -128], [0] * 8),
    # a = 5 << 3 = 40 -> u = v = 2560 = 40 << 6: equal to the threshold, no spike (strict >).
    "strict threshold (equal does not spike)": (
        [([0, 5, 0], 3, 8, "excitatory")], _lif(vth=40),
        [0] + [2560] * 7, [0] + [2560] * 7, [0] * 8),
    "threshold one below spikes": (
        [([0, 5, 0], 3, 8, "excitatory")], _lif(vth=39),
        [0] + [2560] * 7, [0] * 8, [0] + [1] * 7),
    # bias 64 = 1 << 6 equals the threshold (no spike); 65 exceeds it.
    "strict threshold via bias": ([ZERO], _lif(vth=1, bias=64), [0] * 8, [64] * 8, [0] * 8),
    "bias one above threshold": ([ZERO], _lif(vth=1, bias=65), [0] * 8, [0] * 8, [1] * 8),
    # a = 255 << 7 = 32640 every step from 2, u += 2088960; du = 0 decays by 1/4096 (trunc0).
    # u6 = 8350740 + 2088960 = 10439700 > 2**23 -> 10439700 - 2**24 = -6337516 (wrap); v = u + trunc0(v / 4096).
    "u wraps past 2**23": (
        [([0, 255, 0], 7, 8, "excitatory")], _lif(du=0, dv=4095),
        [0, 2088960, 4177410, 6265350, 8352780, -6337516, -4247008, -2157011],
        [0, 2088960, 4177920, 6266370, 8354309, -6335477, -4248554, -2158048], [0] * 8),
    # u = -2088960 every step, v accumulates and saturates at -(2**23 - 1).
    "v saturates at -(2**23 - 1)": (
        [([0, -255, 0], 7, 8, "inhibitory")], _lif(du=4095, dv=0),
        [0] + [-2088960] * 7, [0, -2088960, -4177920, -6266880, -8355840, -VMAX, -VMAX, -VMAX], [0] * 8),
    # delay 3: column 0 reaches u at step 0 + 2 + 3 = 5 (index 4).
    "synaptic delay 3": (
        [([10, 0, 0], 0, 8, "excitatory", [3, 0, 0])], _lif(dv=0),
        [0, 0, 0, 0, 640, 0, 0, 0], [0, 0, 0, 0, 640, 640, 640, 640], [0] * 8),
    # two synapses with their own exponents: (3 >> 1) + (3 << 1) = 1 + 6 = 7 -> u = 448.
    "two synapses into one neuron": (
        [([0, 3, 0], -1, 8, "excitatory"), ([0, 3, 0], 1, 8, "excitatory")], _lif(),
        [0] + [448] * 7, [0] + [448] * 7, [0] * 8),
}
SPARSE_CASE = "sparse synapse with delay 2"  # Sparse(-101 at ch0, mixed, 6 bits -> -104) delayed 2: index 3
SPARSE_EXPECTED = ([0, 0, 0, -6656, 0, 0, 0, 0], [0, 0, 0, -6656, -1, 0, 0, 0], [0] * 8)


def _graph() -> tuple[Graph, dict[str, str]]:
    nodes = {"in": Input(shape=(3,))}
    edges = []
    names = {}
    for i, (case, (synapses, neuron, *_)) in enumerate(CASES.items()):
        names[case] = f"c{i}"
        nodes[f"c{i}"] = neuron
        for j, (w, exp, bits, mode, *delays) in enumerate(synapses):
            nodes[f"c{i}s{j}"] = _dense(w, exp, bits, mode, delays[0] if delays else None)
            edges += [("in", f"c{i}s{j}"), (f"c{i}s{j}", f"c{i}")]
    names[SPARSE_CASE] = "sp"
    nodes["sp"] = _lif()
    nodes["sps"] = Sparse(out_shape=(1,), in_size=3, row=np.array([0]), col=np.array([0]), value=np.array([-101]),
                          delays=np.array([2]), num_weight_bits=6, sign_mode="mixed", quant=Q)
    nodes["out"] = Output()
    edges += [("in", "sps"), ("sps", "sp"), ("sp", "out")]
    return Graph(nodes, edges).validate(), names


def _stimulus() -> np.ndarray:
    x = np.zeros((1, T, 3), np.uint8)
    x[0, 0, 0] = 1
    x[0, :, 1] = 1
    return x


@pytest.fixture(scope="module")
def runs(lava):
    graph, names = _graph()
    x = _stimulus()
    lava_res = run_description(describe(graph), x, record=("spikes", "u", "v"))
    emu = simulate(graph, x, record=("spikes", "u", "v"))
    return names, lava_res, {**emu.outputs, **emu.recorded}


def _expected(case: str):
    if case == SPARSE_CASE:
        return SPARSE_EXPECTED
    return CASES[case][2:]


@pytest.mark.parametrize("case", [*CASES, SPARSE_CASE])
def test_hand_computed(runs, case):
    names, lava_res, emu_res = runs
    node = names[case]
    u, v, s = _expected(case)
    for source, res in (("lava", lava_res), ("emulator", emu_res)):
        np.testing.assert_array_equal(res[f"{node}/u"][0, :, 0], u, err_msg=f"{source}: u of '{case}'")
        np.testing.assert_array_equal(res[f"{node}/v"][0, :, 0], v, err_msg=f"{source}: v of '{case}'")
        np.testing.assert_array_equal(res[f"{node}/spikes"][0, :, 0], s, err_msg=f"{source}: spikes of '{case}'")
