"""Loihi CUBA LIF -> IF_curr_exp / IF_curr_delta: exact exponential mapping, checked against closed forms."""

import math

import numpy as np
import pytest

from neurodeploy.backends.pynn.neurons import MIN_LEAK, continuous_gain_exp, convert_lif, i_offset, loihi_v
from neurodeploy.emulator import simulate
from neurodeploy.errors import QuantizationError, UnsupportedOpError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=100.0)


def neuron(**kw):
    args = dict(shape=(1,), du=1000, dv=410, vth=200, quant=Q)
    args.update(kw)
    return CubaLIF(**args)


def loihi_float(alpha, beta, inputs, bias=0.0):
    """Loihi's recursion without rounding: u = alpha u + A, v = beta v + u + b (no threshold)."""
    u = v = 0.0
    out = []
    for a in inputs:
        u = alpha * u + a
        v = beta * v + u + bias
        out.append(v)
    return np.array(out)


@pytest.mark.parametrize("du,dv", [(0, 1), (1000, 410), (4094, 4095), (2047, 2047), (3000, 3000)])
def test_time_constants_reproduce_loihis_decay_factors(du, dv):
    c = convert_lif(neuron(du=du, dv=dv), "n")
    # current: Lava decays u by du + 1 (not du): exp(-dt/tau_syn) = (4096 - (du + 1)) / 4096
    assert math.exp(-1.0 / c.tau_syn) == pytest.approx((4095 - du) / 4096, rel=1e-12)
    assert math.exp(-1.0 / c.tau_m) == pytest.approx((4096 - dv) / 4096, rel=1e-12)
    assert c.cell_type == "IF_curr_exp" and c.cm == 1.0


def test_du_4095_keeps_no_current_so_the_cell_is_if_curr_delta():
    c = convert_lif(neuron(du=4095), "n")
    assert c.cell_type == "IF_curr_delta" and c.alpha == 0.0 and c.tau_syn == 0.0
    assert "tau_syn_E" not in c.pynn_parameters(np.zeros(1))


def test_dv_0_uses_the_smallest_leak_spinnaker_can_represent():
    c = convert_lif(neuron(dv=0), "n")
    assert c.leak_substituted and c.beta == 1 - MIN_LEAK
    assert c.tau_m == pytest.approx(-1 / math.log(1 - 2 ** -15)) and c.tau_m < 2 ** 16  # R = tau_m/cm fits s16.15
    assert c.g == pytest.approx(1.0, abs=1e-4)  # (1 - beta) R: an input still moves v by its full amount


def test_pynn_parameters_threshold_reset_refractory():
    c = convert_lif(neuron(vth=200), "n")
    p = c.pynn_parameters(np.array([0.5]))
    assert p["tau_refrac"] == 0.0 and p["v_rest"] == 0.0 and p["v_reset"] == 0.0
    # v_thresh sits half way between Loihi's last silent integer (64 vth) and its first spiking one (64 vth + 1)
    assert loihi_v(p["v_thresh"], c) == pytest.approx(64 * 200 + 0.5)
    assert p["v_thresh"] == pytest.approx(200 / 100.0, rel=1e-3)  # mV = float units of the trained model


@pytest.mark.parametrize("du,dv", [(1000, 410), (200, 100), (3500, 3900), (100, 0)])
def test_spinnaker_step_update_equals_loihi_recursion(du, dv):
    """sPyNNaker per step: I = decay I + init W; V = a - exp_TC (a - V), a = R (I + i_offset)."""
    c = convert_lif(neuron(du=du, dv=dv), "n")
    units = np.zeros(30)
    units[[0, 3, 4, 12]] = [7.0, 3.0, -5.0, 11.0]
    bias = 13.0  # effective bias, Loihi v units per step
    i_off = bias / (c.k_per_mv * c.g)
    r = c.tau_m / c.cm
    big_i = v = 0.0
    trace = []
    for a in units:
        big_i = c.alpha * big_i + c.init * a * c.nA_per_unit
        alpha_v = r * (big_i + i_off)
        v = alpha_v - c.beta * (alpha_v - v)
        trace.append(v)
    expect = loihi_float(c.alpha, c.beta, 64 * units, bias)
    np.testing.assert_allclose(np.array(trace) * c.k_per_mv, expect, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("du,dv", [(1000, 410), (200, 100), (3500, 3900), (205, 200), (4095, 300), (4095, 0)])
def test_continuous_ode_sampled_at_the_steps_equals_loihi(du, dv):
    """The closed-form solution of PyNN's ODE (what Brian2 integrates) for one input spike, with the script's
    continuous-time weight W * continuous_gain, sampled at the steps, equals Loihi's response."""
    c = convert_lif(neuron(du=du, dv=dv), "n")
    a_units, n = 9.0, np.arange(1, 25)
    w = a_units * c.nA_per_unit * c.continuous_gain
    r = c.tau_m / c.cm
    if c.cell_type == "IF_curr_exp":  # current jump at the start of step 1, integrated exactly
        t = n.astype(float)
        v = w * r * c.tau_syn / (c.tau_m - c.tau_syn) * (np.exp(-t / c.tau_m) - np.exp(-t / c.tau_syn))
    else:  # voltage jump after step 1's decay, then free decay
        v = w * c.beta ** (n - 1)
    expect = loihi_float(c.alpha, c.beta, np.r_[64 * a_units, np.zeros(n.size - 1)])
    np.testing.assert_allclose(v * c.k_per_mv, expect, rtol=1e-9)
    # a constant i_offset: V(t) = R i (1 - exp(-t/tau_m)) equals Loihi's bias response
    bias = 21.0
    i_off = bias / (c.k_per_mv * c.g)
    np.testing.assert_allclose(r * i_off * (1 - np.exp(-n / c.tau_m)) * c.k_per_mv,
                               loihi_float(c.alpha, c.beta, np.zeros(n.size), bias), rtol=1e-9)


def test_continuous_gain_is_smooth_where_tau_m_equals_tau_syn():
    alpha = beta = math.exp(-1 / 3.0)
    at = continuous_gain_exp(3.0, 3.0, alpha, beta, 1.0)
    near = continuous_gain_exp(3.0 + 1e-6, 3.0, math.exp(-1 / (3.0 + 1e-6)), beta, 1.0)
    assert at == pytest.approx(near, rel=1e-4)
    assert 1.0 < continuous_gain_exp(20.0, 5.0, math.exp(-1 / 5), math.exp(-1 / 20), 1.0) < 1.001  # slow: ~1


def test_conversion_agrees_with_the_integer_emulator_below_threshold():
    """The bit-accurate emulator (truncating decays, integers) stays within a few units of the exact conversion."""
    du, dv, weight = 800, 300, 37
    g = Graph({"in": Input(shape=(1,)), "fc": Dense(weight=np.array([[weight]]), quant=Q),
               "n": neuron(du=du, dv=dv, vth=100000, bias=np.array([5])), "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    x = np.zeros((1, 40, 1), np.uint8)
    x[0, [0, 1, 5, 20], 0] = 1
    v_int = simulate(g, x, record=("v",)).recorded["n/v"][0, :, 0].astype(float)
    c = convert_lif(g.nodes["n"], "n")
    arriving = np.zeros(40)
    arriving[[1, 2, 6, 21]] = 64 * weight  # one step per synapse
    expect = loihi_float(c.alpha, c.beta, arriving, bias=5.0)
    assert np.max(np.abs(v_int - expect)) < 0.002 * np.max(np.abs(expect)) + 30  # truncation drifts a little


def test_i_offset_from_bias_mantissa_and_exponent():
    op = neuron(shape=(3,), bias=np.array([3, -4, 0]), bias_exp=np.array([2, 1, 0]))
    c = convert_lif(op, "n")
    np.testing.assert_allclose(i_offset(op, c, 3) * c.k_per_mv * c.g, [12.0, -8.0, 0.0])


@pytest.mark.parametrize("kw,err,match", [
    (dict(reset="subtract"), UnsupportedOpError, "reset mode 'subtract'"),
    (dict(quant=None), UnsupportedOpError, "quantized CubaLIF"),
    (dict(du=5000), QuantizationError, "du = 5000"),
    (dict(vth=-1), QuantizationError, "vth = -1"),
    (dict(quant=QuantInfo(scale=0.0)), QuantizationError, "quant.scale"),
])
def test_bad_neurons_name_node_field_and_fix(kw, err, match):
    with pytest.raises(err, match=match) as info:
        convert_lif(neuron(**kw), "layer1")
    assert "node 'layer1'" in str(info.value) and "Fix:" in str(info.value)
