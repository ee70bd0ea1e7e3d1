"""sPyNNaker's 16-bit weights: shifts, rounding report, sign split, duplicate synapses, delay planning."""

import numpy as np
import pytest

from neurodeploy.backends.pynn.hardware import load_spec, n_bits
from neurodeploy.backends.pynn.netlist import build_netlist
from neurodeploy.backends.pynn.weights import encode_weights, max_expected_for, plan_delays, shift_for
from neurodeploy.errors import CapacityError, InputError, QuantizationError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse

Q = QuantInfo(scale=100.0)
SPEC = load_spec("spinnaker1")


def lif(n):
    return CubaLIF(shape=(n,), du=1000, dv=410, vth=200, quant=Q)


def test_shift_rule_and_its_inverse():
    assert (shift_for(0.0), shift_for(0.3), shift_for(1.0), shift_for(7.9), shift_for(8.0), shift_for(8.1)) == (
        0, 0, 1, 3, 4, 4)  # an exact power of two needs one more bit: the range is [0, 2**s)
    for s in range(16):
        assert shift_for(max_expected_for(s)) == s


def test_spec_numbers_from_the_profile():
    assert (SPEC.weight_bits, SPEC.fraction_bits, SPEC.router_entries_per_chip, SPEC.chips_per_board) == (
        16, 15, 1023, 48)
    assert sum(SPEC.app_cores(i) for i in range(48)) == 759  # 856 cores - 48 SCAMP - 48 extra monitors - 1 gatherer
    assert [SPEC.delay_slots(n) for n in (256, 255, 100, 10, 1)] == [32, 32, 64, 512, 4096]
    assert [n_bits(n) for n in (0, 1, 2, 3, 256, 257)] == [0, 1, 1, 2, 8, 9]


def two_input_graph(weights, **dense):
    weights = np.asarray(weights)
    return Graph({"in": Input(shape=(weights.shape[1],)), "fc": Dense(weight=weights, quant=Q, **dense),
                  "n": lif(weights.shape[0]), "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")])


def test_signs_are_split_into_excitatory_and_inhibitory_projections():
    # a mixed-sign matrix: Lava truncates the lowest bit of mixed weights (k = 1), so the values are even here
    net = build_netlist(two_input_graph([[10, -4, 0, 2], [200, 0, -50, 0]]))
    by = {p.receptor: p for p in net.projections}
    assert set(by) == {"excitatory", "inhibitory"} and len(net.projections) == 2
    assert (by["excitatory"].units > 0).all() and (by["inhibitory"].units < 0).all()
    assert sorted(zip(by["excitatory"].pre_idx, by["excitatory"].post_idx, by["excitatory"].units)) == [
        (0, 0, 10.0), (0, 1, 200.0), (3, 0, 2.0)]
    assert sorted(zip(by["inhibitory"].pre_idx, by["inhibitory"].post_idx, by["inhibitory"].units)) == [
        (1, 0, -4.0), (2, 1, -50.0)]


def test_lava_weight_preparation_is_kept_mixed_matrices_lose_their_lowest_bit():
    net = build_netlist(two_input_graph([[7, -3]]))
    assert sorted(p.units.tolist()[0] for p in net.projections) == [-4.0, 6.0]  # (w >> 1) << 1, as the emulator
    assert all((p.delay == 1).all() for p in net.projections)  # Loihi's one step per synapse = PyNN delay 1


def test_worst_case_shift_rounding_and_zeroed_weights_are_reported():
    # one neuron, 3 inputs of 255 << 7 = 32640 units and one input of 1 unit: the 16-bit grid cannot hold the 1
    big = Dense(weight=np.full((1, 3), 255), weight_exp=7, quant=Q)
    small = Dense(weight=np.array([[1, 90]]), quant=Q)
    g = Graph({"a": Input(shape=(3,)), "b": Input(shape=(2,)), "big": big, "small": small, "n": lif(1),
               "out": Output()}, [("a", "big"), ("b", "small"), ("big", "n"), ("small", "n"), ("n", "out")])
    net = build_netlist(g)
    per_unit = net.populations["n"].conversion.nA_per_unit
    rep = encode_weights(net, SPEC)
    exc = rep["populations"]["n"]["excitatory"]
    worst = (3 * 32640 + 1 + 90) * per_unit
    assert exc["worst_case_sum_nA"] == pytest.approx(worst)
    assert exc["shift"] == shift_for(worst) and exc["lsb_nA"] == 2.0 ** (exc["shift"] - 15)
    assert exc["neurons_that_can_saturate"] == 0 and exc["max_overload"] <= 1.0
    small_rep = rep["projections"]["small.exc"]
    assert small_rep["zeroed"] == 1 and small_rep["zeroed_list"] == [[0, 0, 1.0]]
    rows = net.report_arrays["small.exc/zeroed"]  # every zeroed synapse: pre, post, Loihi units, nA
    np.testing.assert_allclose(rows, [[0, 0, 1.0, per_unit]])
    assert net.report_arrays["big.exc/saturated"].shape == (0, 4)
    assert rep["zeroed"] == 1 and rep["synapses"] == 5
    # the zeroed synapse is left out of the script; the others sit exactly on the 16-bit grid
    kept = {p.label: p for p in net.projections}
    assert kept["small.exc"].size == 1 and kept["small.exc"].pre_idx.tolist() == [1]
    for p in net.projections:
        q = np.abs(p.weight) / exc["lsb_nA"]
        np.testing.assert_array_equal(q, np.rint(q))
        assert (q <= 0xFFFF).all()
        np.testing.assert_allclose(p.weight, p.weight_exact, atol=exc["lsb_nA"] / 2 + 1e-15)
    assert small_rep["rel_rms_error"] > 0 and rep["projections"]["big.exc"]["rel_rms_error"] < 1e-4


def test_spynnaker_default_rule_with_constant_delays_sums_max_weight_times_fan_in():
    net = build_netlist(two_input_graph([[10, 3, 0, 1], [200, 5, 50, 0]]))
    rep = encode_weights(net, SPEC, shift="spynnaker")
    per_unit = net.populations["n"].conversion.nA_per_unit
    exc = rep["populations"]["n"]["excitatory"]
    assert exc["expected_max_sum_nA"] == pytest.approx(200 * per_unit * 3)  # max |w| x max fan-in (3 synapses)
    assert exc["shift"] == exc["spynnaker_default_shift"] == shift_for(600 * per_unit)


def test_explicit_shifts_and_their_errors():
    g = two_input_graph([[10, 3], [200, 5]])
    rep = encode_weights(build_netlist(g), SPEC, shift={"n": {"excitatory": 12, "inhibitory": 0}})
    assert rep["populations"]["n"]["excitatory"]["shift"] == 12
    with pytest.raises(QuantizationError, match=r"node 'n'.*16-bit word at shift 0"):
        encode_weights(build_netlist(g), SPEC, shift=0)
    with pytest.raises(InputError, match="shift dict has no integer entry"):
        encode_weights(build_netlist(g), SPEC, shift={"other": {"excitatory": 3}})
    with pytest.raises(InputError, match="unknown shift policy"):
        encode_weights(build_netlist(g), SPEC, shift="largest")


def test_sums_beyond_the_largest_shift_are_refused():
    g = Graph({"in": Input(shape=(2000,)), "fc": Dense(weight=np.full((1, 2000), 255), weight_exp=7, quant=Q),
               "n": lif(1), "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")])
    with pytest.raises(QuantizationError, match=r"node 'n'.*ring-buffer shift of (1[6-9]|2[0-9]).*at most 15"):
        encode_weights(build_netlist(g), SPEC)


def test_duplicate_synapses_sum_per_delay_and_split_into_layers():
    # (pre 1 -> post 0) three times: two at delay 0 (Lava sums them: 4 + 6), one at delay 2 (a separate synapse);
    # even values: the matrix is mixed-sign, so Lava drops the lowest bit
    syn = Sparse(out_shape=(2,), in_size=3, row=np.array([0, 0, 0, 1]), col=np.array([1, 1, 1, 2]),
                 value=np.array([4, 6, 8, -6]), delays=np.array([0, 0, 2, 1]), quant=Q)
    g = Graph({"in": Input(shape=(3,)), "syn": syn, "n": lif(2), "out": Output()},
              [("in", "syn"), ("syn", "n"), ("n", "out")])
    net = build_netlist(g)
    got = {p.label: sorted(zip(p.pre_idx.tolist(), p.post_idx.tolist(), p.units.tolist(), p.delay.tolist()))
           for p in net.projections}
    assert got == {"syn.exc": [(1, 0, 10.0, 1)], "syn.exc.1": [(1, 0, 8.0, 3)], "syn.inh": [(2, 1, -6.0, 2)]}
    for p in net.projections:  # no projection holds a duplicate (pre, post) pair
        pairs = list(zip(p.pre_idx.tolist(), p.post_idx.tolist()))
        assert len(pairs) == len(set(pairs))


def test_connection_lists_are_sorted_by_pre_then_post():
    rng = np.random.default_rng(0)
    net = build_netlist(two_input_graph(rng.integers(1, 9, (50, 40))))
    (p,) = net.projections
    key = p.pre_idx * 1000 + p.post_idx
    assert (np.diff(key) > 0).all()


def delay_graph(n, max_delay, k=500, seed=0):
    rng = np.random.default_rng(seed)
    row, col = rng.integers(0, n, k), rng.integers(0, 50, k)
    delays = rng.integers(0, max_delay + 1, k)
    delays[0] = max_delay
    syn = Sparse(out_shape=(n,), in_size=50, row=row, col=col, value=rng.integers(1, 9, k), delays=delays, quant=Q)
    return Graph({"in": Input(shape=(50,)), "syn": syn, "n": lif(n), "out": Output()},
                 [("in", "syn"), ("syn", "n"), ("n", "out")])


@pytest.mark.parametrize("n,max_delay,slots,on_core,stages", [
    (10, 39, 512, 64, 0),    # 10 neurons per core: 2**(14 - 4 - 1) slots; delay 40 steps needs 64
    (300, 30, 32, 32, 0),    # 256 per core: 32 slots hold delays up to 32 steps (IR 31)
    (300, 32, 32, 32, 1),    # IR delay 32 = 33 steps: one extension stage
    (300, 70, 32, 32, 2),    # 71 steps: ceil(71/32) - 1 = 2 stages
    (300, 287, 32, 32, 8),   # 288 steps = 9 x 32: the most sPyNNaker supports
])
def test_delay_slots_and_extension_stages(n, max_delay, slots, on_core, stages):
    net = build_netlist(delay_graph(n, max_delay))
    encode_weights(net, SPEC)
    plan = plan_delays(net, SPEC)["n"]
    assert (plan["max_delay_steps"], plan["delay_slots"], plan["on_core_max_delay"], plan["extension_stages"]) == (
        max_delay + 1, slots, on_core, stages)
    assert bool(plan["extended_synapses"]) == (stages > 0)


def test_delays_beyond_nine_times_the_slots_are_refused():
    net = build_netlist(delay_graph(300, 288))
    encode_weights(net, SPEC)
    with pytest.raises(CapacityError, match=r"node 'n'.*delay of 289 steps.*at most 288.*Fix:"):
        plan_delays(net, SPEC)
