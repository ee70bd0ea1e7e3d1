"""The quantize pass: rounding rules on hand-computed values, idempotence, field mapping, float-vs-int agreement,
calibrated vs max-abs scaling, the report, and every error path."""

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from neurodeploy.compiler import EmulatorSimulator
from neurodeploy.compiler import quantize_graph as quantize
from neurodeploy.emulator import simulate
from neurodeploy.errors import InputError, QuantizationError, UnsupportedOpError
from neurodeploy.ir import IF, LI, Conv2d, CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse
from neurodeploy.ir.arithmetic import effective_weights
from neurodeploy.passes import quant_calibration as cal
from neurodeploy.passes import quant_fields as qf
from neurodeploy.passes import quant_ops, quant_prepare, quant_search
from neurodeploy.passes.fold import fold_linear
from neurodeploy.passes.limits import check_limits
from neurodeploy.passes.manager import PassManager
from neurodeploy.passes.quantize import QuantizePass
from neurodeploy.profiles import load_profile


def mlp(seed=0):
    """Two spiking layers and a leaky readout; weights spread well around zero (a well-conditioned net)."""
    rng = np.random.default_rng(seed)
    return Graph({"in": Input(shape=(20,)), "fc1": Dense(weight=rng.normal(0.3, 0.5, (16, 20)), origin="net.fc1"),
                  "h": CubaLIF(shape=(16,), du=1.0, dv=0.1, vth=1.0, origin="net.lif1"),
                  "fc2": Dense(weight=rng.normal(0.2, 0.6, (4, 16))), "o": CubaLIF(shape=(4,), du=0.5, dv=0.1, vth=1.0),
                  "fc3": Dense(weight=rng.normal(0.2, 0.6, (3, 4))), "r": LI(shape=(3,), du=0.2, dv=0.1),
                  "out": Output(), "read": Output()},
                 [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out"), ("o", "fc3"), ("fc3", "r"),
                  ("r", "read")])


def one_layer(weight, **neuron):
    params = {"du": 1.0, "dv": 0.0, "vth": 1.0}
    params.update(neuron)
    weight = np.atleast_2d(np.asarray(weight, dtype=float))
    return Graph({"in": Input(shape=(weight.shape[1],)), "fc": Dense(weight=weight, origin="m.fc"),
                  "n": CubaLIF(shape=(weight.shape[0],), origin="m.lif", **params), "out": Output()},
                 [("in", "fc"), ("fc", "n"), ("n", "out")])


def spikes(shape, rate=0.2, seed=1):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


# ------------------------------------------------------------------------------------------ rounding rules
def test_weight_grid_matches_lava_clip_and_truncate():
    assert qf.weight_grid("excitatory", 8) == (0, 255, 1)
    assert qf.weight_grid("inhibitory", 8) == (-255, 0, 1)
    assert qf.weight_grid("mixed", 8) == (-256, 254, 2)  # k = 1: mixed 8-bit weights lose their lowest bit
    assert qf.weight_grid("mixed", 4) == (-256, 224, 32)  # k = 5
    assert qf.weight_grid("excitatory", 6) == (0, 252, 4)
    for mode in ("excitatory", "inhibitory", "mixed"):
        for bits in (1, 4, 8):
            lo, hi, step = qf.weight_grid(mode, bits)
            grid = np.arange(lo, hi + 1, step)
            assert np.array_equal(effective_weights(grid, mode, bits), grid)


def test_weight_rounding_is_half_to_even_then_clip():
    # mixed, exponent 0, step 2: x / 2 = 1.5 -> 2, 1.25 -> 1, -0.7 -> -1, 2.5 -> 2 (tie to even), 150 -> clip 127
    mant, clipped = qf.quantize_weights(np.array([3.0, 2.5, -1.4, 5.0, 300.0]), 0, "mixed", 8)
    assert mant.tolist() == [4, 2, -2, 4, 254] and clipped == 1
    # exponent 2: 1000 / 4 / 2 = 125 -> mantissa 250, 250 * 2**2 = 1000
    assert qf.quantize_weights(np.array([1000.0]), 2, "mixed", 8)[0].tolist() == [250]
    assert qf.fitting_exponent(np.array([1000.0]), "mixed", 8, -8, 7) == 2  # at exponent 1, 1000/2/2 = 250 > 127
    assert qf.fitting_exponent(np.array([255.4]), "excitatory", 8, -8, 7) == 0
    assert qf.fitting_exponent(np.array([1e9]), "excitatory", 8, -8, 7) == 7  # nothing fits: the largest exponent


def test_bias_threshold_and_decay_rounding():
    mant, exps, clipped = qf.quantize_bias(np.array([100.0, 5000.0, -4097.0, 1e6]), 13, 0, 7)
    # 100 fits at 0; 5000 > 4095 -> exponent 1: 2500; -4097 < -4096 -> exponent 1: -2048.5 -> -2048 (tie to even);
    # 1e6 / 128 = 7812.5 does not fit even at the largest exponent -> clipped to 4095 at exponent 7
    assert mant.tolist() == [100, 2500, -2048, 4095] and exps.tolist() == [0, 1, 1, 7] and clipped == 1
    assert qf.quantize_threshold(2.5, 17) == (2, 0)  # tie to even
    assert qf.quantize_threshold(200000.0, 17) == (131071, 1)
    assert qf.quantize_du(1.0) == (4095, 0)  # Lava multiplies by 4096 - (du + 1): du = 1 keeps nothing
    assert qf.quantize_du(0.5) == (2047, 0)
    assert qf.quantize_du(0.1) == (409, 0)  # rint(409.6) - 1
    assert qf.quantize_du(0.0) == (0, 1)  # -1 is clamped to 0: u then decays by 1/4096 per step (reported)
    assert qf.quantize_dv(0.1) == (410, 0)
    assert qf.quantize_dv(1.0) == (4095, 1)  # 4096 is clamped: v keeps 1/4096 per step (reported)
    assert qf.relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert qf.relative_error([0.5], [0.0]) == 0.5  # absolute error when the reference is zero


def test_expected_input_error_weights_errors_by_rates():
    rows, cols = np.array([0, 0]), np.array([0, 1])
    rates = np.array([0.5, 0.0])
    p_any = cal.any_active_probability(rows, cols, rates, 1)
    r = rates[cols]
    # only the active source counts: mean 0.5 * 2, variance 0.25 * 4
    assert cal.expected_input_error(np.array([2.0, 100.0]), None, rows, r, 1 - r, p_any, 1, 0) == pytest.approx(2.0)
    # a negative exponent floors the sum: mean shifts by -p (1 - 2**-1) / 2, variance grows by p / 12
    floor = cal.expected_input_error(np.zeros(2), None, rows, r, 1 - r, p_any, 1, -1)
    assert floor == pytest.approx((0.5 * 0.25) ** 2 + 0.5 / 12)


# ------------------------------------------------------------------------------------- mapping, idempotence
def test_quantized_weights_pass_lavas_clip_and_truncate_unchanged():
    rng = np.random.default_rng(2)
    row, col = np.array([0, 0, 1, 2, 3]), np.array([0, 0, 1, 2, 3])
    g = Graph({"in": Input(shape=(2, 5, 5)),
               "conv": Conv2d(weight=rng.normal(0.1, 0.3, (2, 2, 3, 3))),
               "c": IF(shape=(2, 3, 3), vth=1.0),
               "exc": Sparse(out_shape=(4,), in_size=18, row=row, col=col, value=np.array([0.5, 0.4, 0.7, 0.3, 0.6]),
                             delays=np.array([1, 1, 2, 0, 3])),
               "inh": Dense(weight=-np.abs(rng.normal(0.2, 0.1, (4, 4)))),
               "o": CubaLIF(shape=(4,), du=0.5, dv=0.1, vth=0.5), "out": Output()},
              [("in", "conv"), ("conv", "c"), ("c", "exc"), ("exc", "o"), ("o", "inh"), ("inh", "o"), ("o", "out")])
    for bits in (8, 4):
        q, changed = quantize(g, "emulator", num_weight_bits=bits, calibration_batch=2, calibration_steps=40)
        assert changed and q.quantized
        modes = {}
        for name in ("conv", "exc", "inh"):
            op = q.nodes[name]
            w = op.value if isinstance(op, Sparse) else op.weight
            assert w.dtype == np.int64 and op.num_weight_bits == bits
            assert np.array_equal(effective_weights(w, op.sign_mode, op.num_weight_bits), w)
            modes[name] = op.sign_mode
        assert modes == {"conv": "mixed", "exc": "excitatory", "inh": "inhibitory"}
        assert q.nodes["exc"].row.size == 4  # the duplicate (0, 0, delay 1) entries were summed, as Lava's CSR does
        assert check_limits(q, "loihi2") == (q, False)
        again, changed = quantize(q, "emulator")  # an already quantized graph is left alone
        assert again is q and not changed


def test_neuron_fields_follow_the_documented_maps():
    g = Graph({"in": Input(shape=(3,)), "fc": Dense(weight=np.array([[0.5, 0.2, 0.1], [0.3, 0.3, 0.3]])),
               "a": CubaLIF(shape=(2,), du=0.25, dv=0.1, vth=0.7, bias=np.array([0.01, -0.02])),
               "fc2": Dense(weight=np.array([[0.4, 0.6]])), "b": IF(shape=(1,), vth=2.0, bias=0.05),
               "fc3": Dense(weight=np.array([[1.0]])), "r": LI(shape=(1,), du=0.5, dv=0.25),
               "out": Output()}, [("in", "fc"), ("fc", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "fc3"), ("fc3", "r"),
                                  ("r", "out")])
    q, _ = quantize(g, "loihi2", calibration_batch=2, calibration_steps=50)
    a, b, r = q.nodes["a"], q.nodes["b"], q.nodes["r"]
    assert (a.du, a.dv) == (1023, 410)  # rint(4096 * 0.25) - 1, rint(409.6)
    lam = a.quant.scale
    assert a.vth == round(lam * 0.7)
    effective = np.asarray(a.bias) * 2.0 ** np.asarray(a.bias_exp)
    assert np.all(np.abs(effective - 64 * lam * np.array([0.01, -0.02])) <= 2.0 ** np.asarray(a.bias_exp) / 2)
    assert isinstance(b, CubaLIF) and (b.du, b.dv) == (4095, 0) and b.vth == round(b.quant.scale * 2.0)
    assert isinstance(b.bias, int) and isinstance(b.bias_exp, int)  # a scalar float bias stays scalar
    assert isinstance(r, CubaLIF) and r.readout and r.vth == 2 ** 17 - 1 and (r.du, r.dv) == (2047, 1024)
    for node in (a, b, r):
        assert set(node.quant.error) == {"du", "dv", "vth", "bias"}
        assert node.quant.bits == {"du": 12, "dv": 12, "vth": 17, "bias": 13, "bias_exp": 3, "state": 24}
    fc = q.nodes["fc"]
    assert fc.quant.scale == lam  # a synapse carries its target population's scale
    step = 2.0 ** fc.weight_exp * qf.weight_grid(fc.sign_mode, fc.num_weight_bits)[2] / lam
    assert np.all(np.abs(fc.weight * 2.0 ** fc.weight_exp / lam - g.nodes["fc"].weight) <= step / 2 + 1e-12)


def test_scales_respect_the_24_bit_state_on_calibration_data():
    q, _ = quantize(mlp(), "loihi2", spikes((4, 60, 20)))
    stim = spikes((4, 60, 20), seed=9)  # other data than the calibration
    res = simulate(q, stim, record=("u", "v"), arithmetic="int")
    for node in ("h", "o", "r"):
        for fld in ("u", "v"):
            assert np.abs(res.recorded[f"{node}/{fld}"]).max() < 2 ** 23 - 1


# ------------------------------------------------------------------------------------------------ agreement
def test_integer_emulation_agrees_with_float_on_a_well_conditioned_net():
    """Tolerance: per spiking layer F1 >= 0.98 and spike counts within 2 %; readout v within 2 % RMS.

    Why: the net keeps 7 magnitude bits per weight (mixed sign, 8-bit mantissa), i.e. ~0.5-1 % relative weight
    error, and 11+ bits of threshold. A spike flips only where the float v lands that close to threshold, which
    happens in well under 1 % of the bins of this net; a flipped spike of layer 1 perturbs layer 2, so the bound is
    not zero. Bit-exact agreement is not expected from any 8-bit quantization.
    """
    g = mlp()
    calib = spikes((8, 100, 20), seed=1)
    test = spikes((8, 100, 20), seed=7)  # judged on data the calibration did not see
    q, _ = quantize(g, "loihi2", calib)
    fl = simulate(g, test, record=("spikes", "v"), arithmetic="float")
    it = simulate(q, test, record=("spikes", "v"), arithmetic="int")
    for node in ("h", "o"):
        agreement = cal.spike_agreement(fl.recorded[f"{node}/spikes"], it.recorded[f"{node}/spikes"])
        assert agreement["float_spikes"] > 500, "the layers should be active"
        assert agreement["f1"] >= 0.98 and agreement["count_rel_error"] <= 0.02, (node, agreement)
    lam = q.nodes["r"].quant.scale
    assert cal.trace_error(it.recorded["r/v"] / (64 * lam), fl.recorded["r/v"]) <= 0.02


def outlier_case():
    """A rarely driven input (silent in calibration) with a 40x larger weight than all others.

    Max-abs scaling maps that outlier to the largest mantissa, leaving the weights that matter ~7 levels
    (~7 % rounding error); the calibrated choice clips the outlier and resolves the rest to ~0.5 %.
    """
    rng = np.random.default_rng(3)
    w = np.abs(rng.normal(0.08, 0.04, (20, 50)))
    w[:, 0] = 3.0
    stim = spikes((8, 100, 50), seed=4)
    stim[..., 0] = 0
    return one_layer(w, dv=0.05), stim


def overflow_case():
    """A slow synaptic current (du = 0.01) integrates to ~100x a weight: at the max-abs scale u wraps in 24 bits."""
    w = np.random.default_rng(5).uniform(0.2, 0.5, (10, 50))
    return one_layer(w, du=0.01, dv=0.5, vth=200.0), spikes((4, 100, 50), rate=0.3, seed=6)


@pytest.mark.parametrize("case", [outlier_case, overflow_case])
def test_calibrated_scale_beats_naive_max_abs(case):
    g, stim = case()
    f1 = {}
    for method in ("calibrated", "maxabs"):
        report = {}
        q, _ = quantize(g, "loihi2", stim, method=method, report=report)
        fl = simulate(g, stim, record=("spikes",), arithmetic="float").recorded["n/spikes"]
        it = simulate(q, stim, record=("spikes",), arithmetic="int").recorded["n/spikes"]
        f1[method] = cal.spike_agreement(fl, it)["f1"]
        assert report["nodes"]["n"]["agreement"]["network"]["f1"] == pytest.approx(f1[method])
    assert f1["calibrated"] >= 0.99 and f1["calibrated"] - f1["maxabs"] >= 0.02, f1


def test_maxabs_overflow_is_reported_as_u_wrap():
    g, stim = overflow_case()
    report = {}
    quantize(g, "loihi2", stim, method="maxabs", report=report)
    assert report["nodes"]["n"]["saturated"]["u_wrap"] > 0
    quantize(g, "loihi2", stim, report=report)
    assert report["nodes"]["n"]["saturated"]["u_wrap"] == 0


@dataclass(frozen=True, eq=False)
class TaggedLIF(CubaLIF):
    """A throwaway CubaLIF subclass with one extra field (as LIFReset adds its reset schedule)."""

    tag: int = 0


def test_a_cubalif_subclass_keeps_its_class_and_fields():
    """A CubaLIF (or subclass) is quantized by replacing its Loihi fields: class and extra fields survive, the
    integers are those of a plain CubaLIF; IF and LI still become a plain CubaLIF."""
    profile, bias = load_profile("loihi2"), np.array([0.0, 0.1, -0.2])
    fields = {"shape": (3,), "du": 0.25, "dv": 0.1, "vth": 1.0, "bias": bias, "reset": "subtract", "origin": "net.h"}
    tagged, stats = quant_ops.quantize_neuron(quant_prepare.population("h", TaggedLIF(tag=7, **fields)), 100.0,
                                              profile)
    plain, _ = quant_ops.quantize_neuron(quant_prepare.population("h", CubaLIF(**fields)), 100.0, profile)
    assert type(tagged) is TaggedLIF and tagged.tag == 7 and stats["op"] == "TaggedLIF"
    assert stats["lowered_from"] is None and tagged.reset == "subtract" and tagged.origin == "net.h"
    for fld in ("shape", "du", "dv", "vth", "bias", "bias_exp", "readout"):
        assert np.array_equal(getattr(tagged, fld), getattr(plain, fld)), fld
    assert tagged.quant == plain.quant and tagged.quant.scale == 100.0
    for op in (IF(shape=(3,), vth=1.0, bias=bias), LI(shape=(3,), du=0.25, dv=0.1)):
        lowered, stats = quant_ops.quantize_neuron(quant_prepare.population("h", op), 100.0, profile)
        assert type(lowered) is CubaLIF and stats["lowered_from"] == op.op_type


class _Counting:
    """A simulator that counts preparations; ``fresh=True`` re-prepares on every update (no reuse at all)."""

    def __init__(self, fresh=False):
        self.inner, self.fresh, self.prepared = EmulatorSimulator(), fresh, 0

    def prepare(self, graph, arithmetic):
        self.prepared += 1
        run = self.inner.prepare(graph, arithmetic)
        if not self.fresh:
            return run
        outer = self

        class Fresh:
            def update(self, ops):
                nonlocal run
                run = outer.inner.prepare(run.graph.with_nodes({**run.graph.nodes, **ops}), arithmetic)

            def run(self, *args, **kwargs):
                return run.run(*args, **kwargs)

        return Fresh()


def test_each_population_is_prepared_once_and_updates_equal_fresh_preparation():
    """The search prepares one local graph per population and swaps integers between trials; the integers and the
    scores are those of preparing every trial anew (the PreparedRun.update contract)."""
    from neurodeploy.passes.quantize import quantize as quantize_pass

    reused, fresh = _Counting(), _Counting(fresh=True)
    a_report, b_report = {}, {}
    a, _ = quantize_pass(mlp(), "loihi2", spikes((2, 30, 20)), simulator=reused, report=a_report)
    b, _ = quantize_pass(mlp(), "loihi2", spikes((2, 30, 20)), simulator=fresh, report=b_report)
    assert reused.prepared == 1 + 3 + 1  # float calibration run, one per population (h, o, r), final integer run
    assert a_report == b_report
    fa, fb = _quantized_fields(a), _quantized_fields(b)
    assert fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)


# --------------------------------------------------------------------------------------------------- report
def test_report_contents_and_generated_calibration():
    report = {}
    quantize(mlp(), "loihi2", report=report)
    calib = report["calibration"]
    assert calib["source"] == "generated" and calib["rate"] == 0.2 and calib["seed"] == 0 and "note" in calib
    fc1, h, r = report["nodes"]["fc1"], report["nodes"]["h"], report["nodes"]["r"]
    assert fc1["origin"] == "net.fc1" and fc1["target"] == "h" and set(fc1["error"]) == {"weight"}
    assert {"weight"} == set(fc1["zeros"]) == set(fc1["saturated"]) and fc1["weights"] == 320
    assert set(h["error"]) == {"du", "dv", "vth", "bias"}
    assert {"du", "dv", "vth", "bias", "u_wrap", "v"} <= set(h["saturated"])
    assert set(h["agreement"]) == {"teacher_forced", "network"}
    assert {"f1", "bin_agreement", "count_rel_error", "float_spikes", "int_spikes"} <= set(h["agreement"]["network"])
    assert h["candidates"] and h["binding_bound"] in h["scale_bounds"]
    assert r["lowered_from"] == "LI" and "v_error" in r["agreement"]["network"]
    given = {}
    quantize(mlp(), "loihi2", spikes((2, 30, 20)), report=given)
    assert given["calibration"] == {"source": "given", "batch": 2, "steps": 30}


def test_generated_calibration_is_deterministic():
    a, _ = quantize(mlp(), "loihi2", calibration_steps=40)
    b, _ = quantize(mlp(), "loihi2", calibration_steps=40)
    for name in ("fc1", "fc2", "h"):
        for fld in ("weight", "vth"):
            if hasattr(a.nodes[name], fld):
                assert np.array_equal(getattr(a.nodes[name], fld), getattr(b.nodes[name], fld))


def test_usable_in_a_pass_manager():
    qpass = QuantizePass("emulator", EmulatorSimulator(), calibration_steps=30)
    manager = PassManager([("fold", fold_linear), ("quantize", qpass),
                           ("check_limits", functools.partial(check_limits, profile="emulator"))])
    out = manager.run(mlp())
    assert out.quantized and qpass.report["nodes"]
    assert [r.changed for r in manager.records] == [False, True, False]
    partial = functools.partial(quantize, profile="loihi1", calibration_steps=30)
    assert partial(mlp())[1]


# ------------------------------------------------------------------------------------------------- errors
def error_of(graph, profile="loihi2", calibration=None, **options):
    with pytest.raises(QuantizationError) as info:
        quantize(graph, profile, calibration, calibration_batch=2, calibration_steps=20, **options)
    return str(info.value)


def test_nan_weight_names_node_origin_and_field():
    w = np.ones((2, 3))
    w[1, 2] = np.nan
    msg = error_of(one_layer(w))
    assert "node 'fc'" in msg and "m.fc" in msg and "'weight'" in msg and "NaN" in msg and "(1, 2)" in msg
    assert "Fix:" in msg


def test_negative_threshold_is_rejected():
    msg = error_of(one_layer([[1.0]], vth=-0.5))
    assert "node 'n'" in msg and "m.lif" in msg and "'vth'" in msg and "-0.5" in msg and "negative" in msg


def test_threshold_needing_more_than_17_bits_at_the_minimum_useful_scale():
    # lam_min = 2**3 / 1 keeps the weight at 4 bits; 8 * 1e5 = 8e5 needs 20 bits > 17
    msg = error_of(one_layer([[1.0]], vth=1e5))
    assert "node 'n'" in msg and "'vth'" in msg and "needs 20 bits" in msg and "17" in msg
    q, _ = quantize(one_layer([[1.0]], vth=1e5), "loihi2", min_weight_bits=1, calibration_steps=10)  # the fix
    assert q.nodes["n"].vth <= 2 ** 17 - 1


def test_bias_too_large_for_mantissa_and_exponent():
    # lam_min = 2**3 / 0.01 = 800; 64 * 800 * 20 = 1024000 > 4095 * 2**7 = 524160 (13-bit mantissa, exponent <= 7)
    msg = error_of(one_layer([[0.01]], bias=20.0))
    assert "node 'n'" in msg and "'bias'" in msg and "needs 21 bits" in msg


def test_delay_out_of_range_and_reset_mode_the_profile_lacks():
    g = one_layer([[1.0, 1.0]])
    g.nodes["fc"] = Dense(weight=np.ones((1, 2)), delays=np.array([[0, 70]]), origin="m.fc")
    g = Graph(g.nodes, g.edges)
    msg = error_of(g)
    assert "node 'fc'" in msg and "'delays'" in msg and "70" in msg and "[0, 62]" in msg
    msg = error_of(one_layer([[1.0]], reset="subtract"), profile="loihi2")
    assert "node 'n'" in msg and "'reset'" in msg and "subtract" in msg and "emulator" in msg
    q, _ = quantize(one_layer([[1.0]], reset="subtract"), "emulator", calibration_steps=10)
    assert q.nodes["n"].reset == "subtract"


def test_decay_outside_unit_interval_and_nan_bias():
    assert "'du'" in error_of(one_layer([[1.0]], du=1.5))
    assert "'bias'" in error_of(one_layer([[1.0]], bias=np.array([np.nan])))


def test_graded_spikes_partial_quantization_and_bad_options():
    g = one_layer([[1.0]])
    graded = Graph({**g.nodes, "fc": Dense(weight=np.ones((1, 1)), num_message_bits=8)}, g.edges)
    assert "'num_message_bits'" in error_of(graded)
    partly = Graph({**g.nodes, "fc": Dense(weight=np.ones((1, 1), np.int64), quant=QuantInfo(scale=1.0))}, g.edges)
    assert "partly quantized" in error_of(partly)
    assert "method" in error_of(g, method="best")
    assert "num_weight_bits" in error_of(g, num_weight_bits=9)
    assert "state_headroom" in error_of(g, state_headroom=0.5)


def test_calibration_input_errors():
    g = one_layer([[1.0, 1.0]])
    with pytest.raises(InputError, match="other than 0 and 1"):
        quantize(g, "loihi2", np.full((1, 5, 2), 0.5))
    with pytest.raises(InputError, match=r"\[B, T, 2\]"):
        quantize(g, "loihi2", np.zeros((1, 5, 3)))
    with pytest.raises(InputError, match="no calibration stimulus for input 'in'"):
        quantize(g, "loihi2", {"other": np.zeros((1, 5, 2))})


def test_unsupported_op_is_named():
    from neurodeploy.ir.ops import NeuronOp

    class Izhikevich(NeuronOp):
        pass

    g = Graph({"in": Input(shape=(1,)), "fc": Dense(weight=np.ones((1, 1))), "n": Izhikevich(shape=(1,)),
               "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")])
    with pytest.raises(UnsupportedOpError, match="node 'n'.*Izhikevich"):
        quantize(g, "loihi2")


# ------------------------------------------------------------------------------------- large graphs (issue 5)
def _merge_by_triples(op):
    """The former merge: np.unique over [nnz, 3] int64 (row, col, delay) rows, values summed per unique row."""
    delays = np.zeros(op.value.size, np.int64) if op.delays is None else np.asarray(op.delays, np.int64)
    keys = np.stack([np.asarray(op.row, np.int64), np.asarray(op.col, np.int64), delays], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=np.asarray(op.value, np.float64), minlength=uniq.shape[0])


@pytest.mark.parametrize("with_delays", [False, True])
@pytest.mark.parametrize("integer", [False, True])
def test_merge_sparse_one_dimensional_keys_equal_the_triple_unique(with_delays, integer):
    rng = np.random.default_rng(3)
    nnz = 5000  # 40 x 30 matrix, 4 delays: many repeated (row, col) pairs, some with equal delays
    value = rng.integers(-5, 6, nnz) if integer else rng.normal(size=nnz)
    op = Sparse(out_shape=(40,), in_size=30, row=rng.integers(0, 40, nnz), col=rng.integers(0, 30, nnz), value=value,
                delays=rng.integers(2, 6, nnz) if with_delays else None)
    merged = qf.merge_sparse(op)
    uniq, summed = _merge_by_triples(op)
    assert merged.value.size == uniq.shape[0] < nnz
    assert np.array_equal(merged.row, uniq[:, 0]) and np.array_equal(merged.col, uniq[:, 1])
    if with_delays:
        assert np.array_equal(merged.delays, uniq[:, 2])
    else:
        assert merged.delays is None
    if integer:
        assert merged.value.dtype == np.int64 and np.array_equal(merged.value, np.rint(summed))
    else:
        assert np.allclose(merged.value, summed, rtol=0, atol=1e-12)


def test_merge_sparse_recognises_unique_entries_from_their_order():
    rng = np.random.default_rng(4)
    dense = rng.random((50, 40)) < 0.2
    rows, cols = np.nonzero(dense)  # sorted by (row, col)
    op = Sparse(out_shape=(50,), in_size=40, row=rows.astype(np.int32), col=cols.astype(np.int32),
                value=np.ones(rows.size, np.float32), delays=rng.integers(0, 3, rows.size))
    assert qf.entries_unique(op) and qf.merge_sparse(op) is op  # returned as is: no int64 copies
    by_col = np.lexsort((rows, cols))  # sorted by (col, row), as the LSM generator stores (pre, post)
    op_t = op.replace(row=rows[by_col], col=cols[by_col], delays=op.delays[by_col])
    assert qf.entries_unique(op_t) and qf.merge_sparse(op_t) is op_t
    shuffled = rng.permutation(rows.size)  # unique but unordered: the key sort finds no duplicate
    op_s = op.replace(row=rows[shuffled], col=cols[shuffled], delays=op.delays[shuffled])
    assert not qf.entries_unique(op_s) and qf.merge_sparse(op_s) is op_s
    # one duplicate (same row, col and delay) at the chunk boundary of the order check is found
    old_chunk = qf._CHUNK
    try:
        qf._CHUNK = 7
        dup = op.replace(row=np.insert(op.row, 7, op.row[6]), col=np.insert(op.col, 7, op.col[6]),
                         value=np.insert(op.value, 7, 2.0), delays=np.insert(op.delays, 7, op.delays[6]))
        assert not qf.entries_unique(dup)
        merged = qf.merge_sparse(dup)
    finally:
        qf._CHUNK = old_chunk
    assert merged.value.size == rows.size and merged.value[6] == 3.0


def recurrent_population(n=600, seed=5):
    """A Dense input projection and delayed excitatory / inhibitory Sparse recurrence into one population."""
    rng = np.random.default_rng(seed)
    k = 12 * n
    pre, post = rng.integers(0, n, k), rng.integers(0, n, k)
    exc = pre < int(0.8 * n)
    w_in = rng.gamma(2.0, 0.15, (n, 30)) * (rng.random((n, 30)) < 0.3)
    nodes = {"in": Input(shape=(30,)), "w_in": Dense(weight=w_in),
             "pop": CubaLIF(shape=(n,), du=0.3, dv=0.1, vth=1.0, bias=rng.normal(0.0, 0.01, n)), "out": Output()}
    edges = [("in", "w_in"), ("w_in", "pop"), ("pop", "out")]
    for name, mask, sign in (("rec_e", exc, 1.0), ("rec_i", ~exc, -1.0)):
        nodes[name] = Sparse(out_shape=(n,), in_size=n, row=post[mask], col=pre[mask],
                             value=sign * rng.gamma(2.0, 0.1, int(mask.sum())), delays=rng.integers(0, 8, mask.sum()))
        edges += [("pop", name), (name, "pop")]
    return Graph(nodes, edges)


def _quantized_fields(graph):
    return {(n, f): np.asarray(getattr(op, f)) for n, op in graph.nodes.items()
            for f in ("weight", "value", "weight_exp", "delays", "vth", "bias", "bias_exp", "du", "dv")
            if getattr(op, f, None) is not None}


def test_sampled_search_over_every_neuron_equals_the_full_search(monkeypatch):
    """The sampled path (restricted synapses with compacted sources, then the chosen trial applied to the whole
    population) scores exactly what the full search scores when the sample is the whole population."""
    g, calib = recurrent_population(), spikes((3, 25, 30), rate=0.3)
    full_report, report = {}, {}
    full, _ = quantize(g, "loihi2", calib, report=full_report)
    full_report = full_report["nodes"]
    assert full_report["pop"]["search_neurons"] == {"sampled": None, "neurons": 600}
    monkeypatch.setattr(quant_search, "search_sample", lambda pop, incoming, seed: np.arange(600))
    via_sample, _ = quantize(g, "loihi2", calib, report=report)
    report = report["nodes"]
    assert report["pop"]["search_neurons"] == {"sampled": 600, "neurons": 600}
    assert report["pop"]["candidates"] == full_report["pop"]["candidates"]
    a, b = _quantized_fields(full), _quantized_fields(via_sample)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for syn in ("w_in", "rec_e", "rec_i"):
        for key in ("scale", "weight_exp", "error", "zeros", "saturated", "input_rms_error", "weights"):
            assert report[syn][key] == full_report[syn][key]


def test_large_populations_are_searched_on_a_sample(monkeypatch):
    qmod = quant_search
    monkeypatch.setattr(qmod, "SEARCH_NEURONS", 150)
    monkeypatch.setattr(qmod, "SEARCH_ENTRIES", 1000)
    g, calib = recurrent_population(), spikes((3, 25, 30), rate=0.3)
    rep = {}
    q, _ = quantize(g, "loihi2", calib, report=rep)
    rep = rep["nodes"]["pop"]
    assert rep["search_neurons"] == {"sampled": 150, "neurons": 600}
    assert rep["scale"] in [c["scale"] for c in rep["candidates"]]
    check_limits(q, "loihi2")  # every field of the whole population is a valid Loihi integer
    assert q.nodes["pop"].bias.shape == (600,)
    assert q.nodes["rec_e"].value.size == qf.merge_sparse(g.nodes["rec_e"]).value.size < g.nodes["rec_e"].value.size
    assert rep["agreement"]["network"]["f1"] > 0.8  # the whole network, integer vs float, at the sampled choice
    pop = quant_prepare.population("pop", g.nodes["pop"])
    assert qmod.search_sample(pop, [], 0) is None  # no incoming entries: below SEARCH_ENTRIES, scored whole
    from neurodeploy.ir.ops import PlasticDense

    w = np.ones((600, 30))
    plastic = quant_prepare.PreparedSynapse("p", PlasticDense(weight=w, dw="2^-2 * x0 * y1"), "in", "pop",
                                            w.ravel(), *np.nonzero(w), np.arange(w.size), 600, "excitatory")
    static = quant_prepare.PreparedSynapse("d", Dense(weight=w), "in", "pop", w.ravel(), *np.nonzero(w),
                                           np.arange(w.size), 600, "excitatory")
    assert qmod.search_sample(pop, [static], 0).size == 150
    assert qmod.search_sample(pop, [plastic], 0) is None  # a learning synapse is emulated whole


def test_weights_too_small_for_any_scale_are_a_named_error():
    """All weights 1e-308: the minimum useful scale overflows to inf; the threshold bound names it (was an
    OverflowError inside the pass, a fuzz find)."""
    g = Graph({"in": Input(shape=(4,)), "fc": Dense(weight=np.full((3, 4), 1e-308)),
               "h": CubaLIF(shape=(3,), du=1.0, dv=0.1, vth=1.0), "out": Output()},
              [("in", "fc"), ("fc", "h"), ("h", "out")])
    with pytest.raises(QuantizationError, match="needs over 1000 bits"):
        quantize(g, "emulator")


# ------------------------------------------------------------------------------------------ bias correction
def test_input_error_mean_is_the_floored_sum_against_the_float_input():
    """One neuron, two sources: mantissas [3, 1] at weight_exp -1 for float weights [1.5, 0.5] (lam = 1): the
    quantized weights are exact, so the only error is Loihi's floor of the summed mantissas shifted right."""
    float_op = Dense(weight=np.array([[1.5, 0.5]]))
    q = Dense(weight=np.array([[3, 1]]), weight_exp=-1, quant=QuantInfo(scale=1.0))
    spikes = np.array([[[1, 0], [0, 1], [1, 1], [0, 0]]], np.uint8)  # sums 3, 1, 4, 0 -> floors 1, 0, 2, 0
    mean = quant_ops.input_error_mean(float_op, [q], (2,), spikes, 1.0)
    assert mean.tolist() == [((1 - 1.5) + (0 - 0.5) + (2 - 2.0) + 0) / 4]


def _drifting_if() -> tuple[Graph, np.ndarray]:
    """An IF neuron fed by 40 sources, compiled with residual synapses (whose negative weight_exp floors the summed
    input: v drifts down)."""
    rng = np.random.default_rng(5)
    w = rng.uniform(0.001, 0.02, (1, 40))
    g = Graph({"in": Input(shape=(40,)), "fc": Dense(weight=w), "n": IF(shape=(1,), vth=1.0), "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    return g, (rng.random((16, 64, 40)) < 0.3).astype(np.uint8)


def test_bias_correction_takes_the_floor_drift_out_of_v():
    g, stim = _drifting_if()
    drift = {}
    for corrected in (False, True):
        report = {}
        q, _ = quantize(g, "loihi2", stim, report=report, residual=0.0005, bias_correction=corrected)
        lam = q.nodes["n"].quant.scale
        v_int = simulate(q, stim, record=("v",), arithmetic="int").recorded["n/v"].ravel() / (64 * lam)
        v_float = simulate(fold_linear(g)[0], stim, record=("v",)).recorded["n/v"].ravel()
        drift[corrected] = abs(float(np.mean(v_int - v_float)))
        assert ("bias_correction" in report["nodes"]["n"]) == corrected
        assert report["bias_correction"] == corrected
    assert min(op.weight_exp for n, op in q.nodes.items() if n.startswith("fc")) < 0
    assert drift[True] < 0.2 * drift[False], drift
