"""Emulator semantics: Lava timing, hand-computed Loihi integers, float mode, batch and sparse paths.

Equality with Lava itself is proven in tests/lava (run in the Python 3.10 Lava environment).
"""

import numpy as np
import pytest

from neurodeploy.emulator import Program, simulate
from neurodeploy.emulator import engine as engine_module
from neurodeploy.errors import InputError, UnsupportedOpError
from neurodeploy.ir import LI, Conv2d, CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse, SumPool2d
from neurodeploy.ir.checks import UnfoldedGraphError, is_folded
from neurodeploy.passes.fold import fold_linear

Q = QuantInfo(scale=1.0)


def one_neuron(weight=1, weight_exp=0, du=4095, dv=0, vth=1000, bias=0, bias_exp=0, reset="zero", delays=None,
               n_in=1):
    return Graph({"in": Input(shape=(n_in,)),
                  "syn": Dense(weight=np.full((1, n_in), weight), weight_exp=weight_exp, delays=delays, quant=Q),
                  "n": CubaLIF(shape=(1,), du=du, dv=dv, vth=vth, bias=bias, bias_exp=bias_exp, reset=reset,
                               quant=Q),
                  "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "out")])


def run_one(graph, spikes):
    x = np.asarray(spikes, dtype=np.uint8).reshape(1, -1, 1)
    r = simulate(graph, x, record=("u", "v", "spikes"))
    return r.recorded["n/u"][0, :, 0].tolist(), r.recorded["n/v"][0, :, 0].tolist(), \
        r.recorded["n/spikes"][0, :, 0].tolist()


def test_input_column_k_reaches_the_neuron_at_step_k_plus_2():
    u, v, _ = run_one(one_neuron(weight=3), [1, 0, 0, 0])
    # step 1: nothing yet; step 2 (index 1): a_in = 3, u = 3 << 6 = 192, du = 4095 clears it on step 3
    assert u == [0, 192, 0, 0] and v == [0, 192, 192, 192]


def test_decay_rounds_toward_zero_for_both_signs():
    # du = 2047: u * (4096 - 2048) >> 12 halves u toward zero: 192 -> 96 -> 48; -192 -> -96 -> -48
    u, _, _ = run_one(one_neuron(weight=3, du=2047), [1, 0, 0, 0])
    assert u == [0, 192, 96, 48]
    u, _, _ = run_one(one_neuron(weight=-3, du=2047), [1, 0, 0, 0])
    assert u == [0, -192, -96, -48]
    # dv = 1: v * 4095 >> 12 with v = 64 -> 63 (not 64), and -64 -> -63 (round toward zero, not floor)
    _, v, _ = run_one(one_neuron(weight=1, dv=1), [1, 0, 0])
    assert v == [0, 64, 63]
    _, v, _ = run_one(one_neuron(weight=-1, dv=1), [1, 0, 0])
    assert v == [0, -64, -63]


def test_bias_shift_threshold_is_strict_and_reset_to_zero():
    # effective bias 3 << 2 = 12 per step; vth = 0 -> threshold 0 << 6 = 0; v = 12 > 0 spikes at once
    _, v, s = run_one(one_neuron(bias=3, bias_exp=2, vth=0), [0, 0, 0])
    assert s == [1, 1, 1] and v == [0, 0, 0]
    # threshold 1 << 6 = 64: v = 16, 32, 48, 64 (64 is not > 64), 80 -> spike and reset
    _, v, s = run_one(one_neuron(bias=1, bias_exp=4, vth=1), [0] * 5)
    assert v == [16, 32, 48, 64, 0] and s == [0, 0, 0, 0, 1]


def test_reset_by_subtraction_keeps_the_excess():
    _, v, s = run_one(one_neuron(bias=5, bias_exp=4, vth=1, reset="subtract"), [0] * 3)
    # v = 80 > 64 -> 16; 16 + 80 = 96 -> 32; 32 + 80 = 112 -> 48
    assert v == [16, 32, 48] and s == [1, 1, 1]


def test_weight_truncation_and_negative_exponent_floor():
    # mixed sign mode at 8 bits drops the lowest bit: 3 -> 2; weight_exp -1 floors the sum: 2 >> 1 = 1
    g = Graph({"in": Input(shape=(2,)),
               "syn": Dense(weight=np.array([[3, -1]]), weight_exp=-1, sign_mode="mixed", num_weight_bits=8,
                            quant=Q),
               "n": CubaLIF(shape=(1,), du=4095, dv=0, vth=10000, quant=Q), "out": Output()},
              [("in", "syn"), ("syn", "n"), ("n", "out")])
    x = np.array([[[1, 0], [0, 1], [1, 1], [0, 0]]], dtype=np.uint8)
    r = simulate(g, x, record=("u",))
    # step2: 2 >> 1 = 1 -> 64; step3: -2 >> 1 = -1 -> -64; step4: (2 - 2) >> 1 = 0
    assert r.recorded["n/u"][0, :, 0].tolist() == [0, 64, -64, 0]


def test_u_wraps_and_v_saturates_at_24_bits():
    # a_in = 255 << 15: u = 255 << 21 = 534773760 > 2**23 -> wraps once by 2**24 (Lava's single conditional wrap)
    u, v, s = run_one(one_neuron(weight=255, weight_exp=15, vth=131071), [1, 0, 0])
    assert u[1] == (255 << 21) - (1 << 24)
    # v clips to 2**23 - 1 = 8388607, which exceeds even the largest threshold 131071 << 6 = 8388544: spike, reset
    assert s[1] == 1 and v[1] == 0
    u, v, s = run_one(one_neuron(weight=-255, weight_exp=15, vth=131071), [1, 0, 0])
    assert u[1] == -(255 << 21) + (1 << 24)
    assert v[1:] == [-(2**23 - 1), -(2**23 - 1)]  # clipped, not wrapped


def test_delay_d_arrives_one_plus_d_steps_later():
    delays = np.array([[5]])
    u, _, _ = run_one(one_neuron(weight=1, delays=delays), [1] + [0] * 8)
    assert u.index(64) == 6  # index 0 emitted at step 1, arrives at step 1 + 1 + 5 = 7 (index 6)


def test_batch_samples_do_not_interact_and_event_path_equals_dense_path(monkeypatch):
    rng = np.random.default_rng(3)
    g = Graph({"in": Input(shape=(200,)),
               "syn": Dense(weight=rng.integers(-256, 256, (50, 200)), weight_exp=-2, quant=Q),
               "n": CubaLIF(shape=(50,), du=300, dv=200, vth=40, quant=Q),
               "rec": Sparse(out_shape=(50,), in_size=50, row=rng.integers(0, 50, 300), col=rng.integers(0, 50, 300),
                             value=rng.integers(-100, 100, 300), delays=rng.integers(0, 4, 300), quant=Q),
               "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "rec"), ("rec", "n"), ("n", "out")])
    x = (rng.random((3, 40, 200)) < 0.02).astype(np.uint8)
    # the event-driven path belongs to the numpy engine: pin it so EVENT_FRACTION below means something
    batch = simulate(g, x, record=("u", "v"), engine="numpy")
    for b in range(3):
        single = simulate(g, x[b:b + 1], record=("u", "v"), engine="numpy")
        np.testing.assert_array_equal(single.recorded["n/v"][0], batch.recorded["n/v"][b])
    monkeypatch.setattr(engine_module, "EVENT_FRACTION", 0.0)
    dense_path = simulate(g, x, record=("u", "v"), engine="numpy")
    assert batch.engine == dense_path.engine == "numpy"
    np.testing.assert_array_equal(dense_path.recorded["n/u"], batch.recorded["n/u"])
    assert batch.spike_counts["n"] > 0


def test_float_mode_matches_closed_form():
    # constant input current 0.3 from step 2 on, du = 1: u = 0.3, v_t = (1 - dv) v_{t-1} + 0.3
    g = Graph({"in": Input(shape=(1,)), "syn": Dense(weight=np.array([[0.3]])),
               "n": LI(shape=(1,), du=1.0, dv=0.1), "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "out")])
    r = simulate(g, np.ones((1, 6, 1)))
    expected, v = [0.0], 0.0
    for _ in range(5):
        v = 0.9 * v + 0.3
        expected.append(v)
    np.testing.assert_allclose(r.outputs["out"][0, :, 0], expected, rtol=1e-12)  # same float ops, rounding only


def test_conv_and_pool_fold_into_one_synapse_equal_to_direct_convolution():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 1, 3, 3))
    g = Graph({"in": Input(shape=(1, 6, 6)), "conv": Conv2d(weight=w, padding=(1, 1)), "pool": SumPool2d(),
               "n": LI(shape=(2, 3, 3), du=1.0, dv=1.0), "out": Output()},
              [("in", "conv"), ("conv", "pool"), ("pool", "n"), ("n", "out")])
    x = rng.random((1, 2, 1, 6, 6))
    with pytest.raises(UnfoldedGraphError, match="linear op") as err:  # the emulator runs no pass itself
        simulate(g, x)
    assert err.value.node == "pool" and "fold_linear" in str(err.value)
    assert not is_folded(g) and is_folded(fold_linear(g)[0])
    out = simulate(fold_linear(g)[0], x).outputs["out"][0, 1]  # column 0 arrives at index 1; dv = du = 1 -> v = input
    padded = np.pad(x[0, 0, 0], 1)
    conv = np.array([[[np.sum(w[o, 0] * padded[i:i + 3, j:j + 3]) for j in range(6)] for i in range(6)]
                     for o in range(2)])
    pooled = conv.reshape(2, 3, 2, 3, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(out, pooled, rtol=1e-10)  # float summation order differs only


def test_bad_inputs_are_named():
    g = one_neuron()
    with pytest.raises(InputError, match=r"must be shaped \[B, T, 1\]"):
        simulate(g, np.zeros((2, 3)))
    with pytest.raises(InputError, match="other than 0 and 1"):
        simulate(g, np.full((1, 3, 1), 0.5))
    with pytest.raises(InputError, match="cannot record"):
        simulate(g, np.zeros((1, 3, 1)), record=("w",))
    float_graph = Graph({"in": Input(shape=(1,)), "syn": Dense(weight=np.ones((1, 1))),
                         "n": LI(shape=(1,)), "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "out")])
    with pytest.raises(UnsupportedOpError, match="node 'n'.*not quantized"):
        Program(float_graph, arithmetic="int")


def test_an_empty_stimulus_is_a_named_error():
    from graphs import random_net

    g = random_net(4, 3)
    for shape in ((0, 5, 4), (2, 0, 4)):
        for engine in ("numpy", "numba"):
            with pytest.raises(InputError, match="is empty"):
                simulate(g, np.zeros(shape, np.uint8), engine=engine)
