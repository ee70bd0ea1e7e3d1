"""Energy reports: counts against direct counts on hand-built quantized networks, energy arithmetic by hand,
malformed profiles, the 45 nm reference profile and the ``report energy`` command end to end."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli as cli

from neurodeploy.cli import main
from neurodeploy.emulator import simulate
from neurodeploy.errors import SerializationError
from neurodeploy.ir import Conv2d, CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse
from neurodeploy.passes.partition import partition
from neurodeploy.profiles import CoreLimits, load_profile
from neurodeploy.reports import count_run, default_profiles, energy_report, neurobench, node_counts
from neurodeploy.reports.counts import core_counts
from neurodeploy.reports.report import load_profile_run, output_paths, write_report

ROOT = Path(__file__).resolve().parent.parent
QS = QuantInfo(scale=1.0, bits={"weight": 8, "weight_exp": 4, "delays": 6})
QN = QuantInfo(scale=1.0, bits={"du": 12, "dv": 12, "vth": 17, "bias": 13, "bias_exp": 3})

# d1 (mixed sign, 8 bits): Lava drops the lowest mantissa bit, so the stored 1 becomes 0 (no synapse)
D1 = np.array([[4, 0, -6], [2, 1, 0]])
D1_EFFECTIVE = [(0, 0), (0, 2), (1, 0)]  # (post, pre)
# s2 (excitatory): (0, 0) at delays 0 and 1 (two synapses), (1, 1), and (1, 0) twice at delay 0 summing to 0
S2 = dict(row=np.array([0, 0, 1, 1, 1]), col=np.array([0, 0, 1, 0, 0]), value=np.array([3, 2, 5, 7, -7]),
          delays=np.array([0, 1, 0, 0, 0]))
S2_EFFECTIVE = [(0, 0), (0, 0), (1, 1)]


def hand_net() -> Graph:
    return Graph({"in": Input(shape=(3,)),
                  "d1": Dense(weight=D1, sign_mode="mixed", num_weight_bits=8, quant=QS),
                  "n1": CubaLIF(shape=(2,), du=4095, dv=0, vth=3, quant=QN),
                  "s2": Sparse(out_shape=(2,), in_size=2, quant=QS, num_weight_bits=8, **S2),
                  "n2": CubaLIF(shape=(2,), du=2047, dv=100, vth=4, bias=1, bias_exp=2, quant=QN),
                  "out": Output()},
                 [("in", "d1"), ("d1", "n1"), ("n1", "s2"), ("s2", "n2"), ("n2", "out")])


@pytest.fixture(scope="module")
def stim():
    rng = np.random.default_rng(3)
    return (rng.random((5, 12, 3)) < 0.5).astype(np.uint8)


def direct(graph, stim):
    """Spikes, u, v per neuron node straight from the emulator's recordings."""
    r = simulate(graph, stim, record=("spikes", "u", "v"))
    return r, {n: r.recorded[f"{n}/spikes"] for n in ("n1", "n2")}


def loop_ops(pre_spikes: np.ndarray, synapses: list[tuple[int, int]]) -> tuple[int, dict[int, int]]:
    """Synaptic ops by explicit loops: every spike of pre neuron i crosses every listed synapse (j, i)."""
    total, per_post = 0, {}
    b, t, n = pre_spikes.shape
    for bi in range(b):
        for ti in range(t):
            for i in range(n):
                if pre_spikes[bi, ti, i]:
                    for post, pre in synapses:
                        if pre == i:
                            total += 1
                            per_post[post] = per_post.get(post, 0) + 1
    return total, per_post


def test_counts_match_a_direct_count(stim):
    g = hand_net()
    r, spikes = direct(g, stim)
    c = count_run(g, stim, batch_size=2)
    nodes = node_counts(c)
    b, t = stim.shape[:2]
    assert nodes["in"]["spikes"] == int(stim.sum())
    for n in ("n1", "n2"):
        assert nodes[n]["spikes"] == int(spikes[n].sum())
        assert nodes[n]["spikes_per_step"] == spikes[n].sum(axis=(0, 2)).tolist()
        assert nodes[n]["neuron_updates"] == 2 * t * b
        active = sum(1 for bi in range(b) for ti in range(t) for j in range(2)
                     if r.recorded[f"{n}/u"][bi, ti, j] != 0 or r.recorded[f"{n}/v"][bi, ti, j] != 0)
        assert nodes[n]["active_updates"] == active
        assert nodes[n]["activation_sparsity"] == pytest.approx(1 - spikes[n].sum() / (2 * t * b))
    assert spikes["n1"].sum() > 0 and spikes["n2"].sum() > 0, "the hand network should be active"
    d1_ops, _ = loop_ops(stim, D1_EFFECTIVE)
    s2_ops, _ = loop_ops(spikes["n1"], S2_EFFECTIVE)
    assert nodes["d1"]["synaptic_ops"] == d1_ops and nodes["s2"]["synaptic_ops"] == s2_ops
    assert nodes["d1"]["synapses"] == 3 and nodes["s2"]["synapses"] == 3
    # the emulator's own count uses the stored non-zero entries (4 for d1, the truncated 1 included): it differs
    raw_d1, _ = loop_ops(stim, [(0, 0), (0, 2), (1, 0), (1, 1)])
    assert nodes["d1"]["emulator_synaptic_ops"] == r.synaptic_ops["d1"] == raw_d1
    # NeuroBench: binary spikes -> ACs; dense ops: 2 x 3 per step for d1, 5 stored entries for s2
    assert nodes["d1"]["effective_acs"] == d1_ops and nodes["d1"]["effective_macs"] == 0
    assert nodes["d1"]["dense_ops"] == 6 * t * b and nodes["s2"]["dense_ops"] == 5 * t * b
    assert nodes["d1"]["connection_sparsity"] == pytest.approx(0.5)  # 3 zeros of 6 effective weights
    assert nodes["s2"]["connection_sparsity"] == pytest.approx(0.5)  # 2 connected pairs of 2 x 2
    # footprint: d1 6 x 8 + 4 = 52 bits -> 7 B; s2 5 x 8 + 4 + 5 x 6 (delays) + 5 x 1 + 5 x 1 (indices) = 84 -> 11 B;
    # a neuron node with scalar fields 12 + 12 + 17 + 13 + 3 = 57 bits -> 8 B
    assert (nodes["d1"]["footprint_bytes"], nodes["s2"]["footprint_bytes"], nodes["n1"]["footprint_bytes"]) == (
        7, 11, 8)
    nb = neurobench(c, nodes)
    assert nb["effective_acs"] == pytest.approx((d1_ops + s2_ops) / b)
    assert nb["dense_ops"] == pytest.approx(11 * t)
    assert nb["connection_sparsity"] == pytest.approx(1 - (3 + 2) / (6 + 4))
    assert nb["footprint_bytes"] == 7 + 11 + 8 + 8


def test_chunking_does_not_change_counts(stim):
    a = node_counts(count_run(hand_net(), stim, batch_size=1))
    b = node_counts(count_run(hand_net(), stim, batch_size=64))
    assert a == b


def test_counts_equal_the_emulators_when_no_weight_is_zeroed():
    rng = np.random.default_rng(0)
    w1, w2 = rng.integers(1, 40, (16, 8)), rng.integers(-30, 30, (4, 16))
    w2[w2 == 0] = 3
    g = Graph({"in": Input(shape=(8,)), "f1": Dense(weight=w1, num_weight_bits=8, quant=QS),
               "h": CubaLIF(shape=(16,), du=4095, dv=0, vth=20, quant=QN),
               "f2": Dense(weight=w2 * 2, num_weight_bits=8, quant=QS),
               "o": CubaLIF(shape=(4,), du=4095, dv=0, vth=20, quant=QN), "out": Output()},
              [("in", "f1"), ("f1", "h"), ("h", "f2"), ("f2", "o"), ("o", "out")])
    x = (rng.random((4, 15, 8)) < 0.4).astype(np.uint8)
    r = simulate(g, x)
    nodes = node_counts(count_run(g, x))
    assert {n: nodes[n]["synaptic_ops"] for n in ("f1", "f2")} == r.synaptic_ops
    assert nodes["h"]["spikes"] == r.spike_counts["h"] and nodes["o"]["spikes"] == r.spike_counts["o"]


def test_float_graphs_and_small_chunks(monkeypatch, stim):
    from neurodeploy.reports import counts as counts_module

    g = Graph({"in": Input(shape=(3,)), "d": Dense(weight=np.array([[0.5, 0.0, 1.5], [1.0, 1.0, 0.0]])),
               "n": CubaLIF(shape=(2,), du=1.0, dv=0.0, vth=1.0), "out": Output()},
              [("in", "d"), ("d", "n"), ("n", "out")])
    r = simulate(g, stim)
    monkeypatch.setattr(counts_module, "MAX_CHUNK_ELEMENTS", 5)  # forces one sample per chunk
    c = count_run(g, stim, batch_size=64)
    nodes = node_counts(c)
    assert not c.integer and nodes["n"]["spikes"] == r.spike_counts["n"]
    assert nodes["d"]["synaptic_ops"] == r.synaptic_ops["d"] and nodes["d"]["synapses"] == 4
    assert nodes["d"]["footprint_bytes"] == 6 * 4  # float weights at 32 bits
    assert "float" in energy_report(g, stim, ["loihi1"])["counts"]["source"]


def test_conv_dense_ops_count_the_kernel_taps_inside_the_padded_input():
    kernel = np.array([[[[2, 0], [4, 6]]]])  # [C_out, C_in, kh, kw]
    g = Graph({"in": Input(shape=(1, 3, 3)),
               "c": Conv2d(weight=kernel, padding=(1, 1), num_weight_bits=8, quant=QS),
               "n": CubaLIF(shape=(1, 4, 4), du=4095, dv=0, vth=1, quant=QN), "out": Output()},
              [("in", "c"), ("c", "n"), ("n", "out")])
    taps = sum(1 for y in range(4) for x in range(4) for i in range(2) for j in range(2)
               if 0 <= y + i - 1 < 3 and 0 <= x + j - 1 < 3)
    x = np.ones((2, 3, 1, 3, 3), np.uint8)
    nodes = node_counts(count_run(g, x))
    assert nodes["c"]["dense_ops_per_step"] == taps == 36
    assert nodes["c"]["connection_sparsity"] == pytest.approx(0.25)  # one zero of four kernel values
    # every input neuron spikes every step; its fan-out = non-zero kernel taps that reach an output
    fanout = [sum(1 for y in range(4) for x_ in range(4) for i in range(2) for j in range(2)
                  if kernel[0, 0, i, j] != 0 and (y + i - 1, x_ + j - 1) == (py, px))
              for py in range(3) for px in range(3)]
    assert nodes["c"]["synaptic_ops"] == sum(fanout) * 2 * 3


def test_per_core_counts_and_spike_messages_by_hand(stim):
    g = hand_net()
    _, spikes = direct(g, stim)
    c = count_run(g, stim)
    limits = CoreLimits(neurons_per_core=1, fan_in_axons_per_core=64, fan_out_axons_per_core=64,
                        synaptic_memory_bits_per_core=10_000, cores_per_chip=128)
    mapping = partition(c.graph, limits)[0].meta["mapping"]
    slices = [{"core": s["core"], "node": s["node"], "start": s["start"], "stop": s["stop"]}
              for s in mapping["per_core"]]
    assert [(s["node"], s["start"]) for s in slices] == [("n1", 0), ("n1", 1), ("n2", 0), ("n2", 1)]
    rows = {(r["node"], r["start"]): r for r in core_counts(c, slices)}
    _, into_n1 = loop_ops(stim, D1_EFFECTIVE)
    _, into_n2 = loop_ops(spikes["n1"], S2_EFFECTIVE)
    for j in range(2):
        assert rows[("n1", j)]["synaptic_ops_in"] == into_n1.get(j, 0)
        assert rows[("n2", j)]["synaptic_ops_in"] == into_n2.get(j, 0)
        assert rows[("n1", j)]["spikes"] == int(spikes["n1"][..., j].sum())
    # n1 neuron 0 reaches n2 core 0 only (two synapses, one core); neuron 1 reaches n2 core 1: one message per spike
    assert rows[("n1", 0)]["spike_messages"] == int(spikes["n1"][..., 0].sum())
    assert rows[("n1", 1)]["spike_messages"] == int(spikes["n1"][..., 1].sum())
    assert rows[("n2", 0)]["spike_messages"] == 0  # nothing downstream
    assert sum(r["neuron_updates"] for r in rows.values()) == 4 * stim.shape[0] * stim.shape[1]


PROFILE = """
format = 1
name = "handchip"
description = "hand-checked figures"
[arithmetic]
weight_bits = { value = 8, source = "test" }
weight_exp = { min = -8, max = 7, source = "test" }
vth_bits = { value = 17, source = "test" }
bias_bits = { value = 13, source = "test" }
bias_exp = { min = 0, max = 7, source = "test" }
du_bits = { value = 12, source = "test" }
dv_bits = { value = 12, source = "test" }
state_bits = { value = 24, source = "test" }
activation_bits = { value = 16, source = "test" }
delay = { min = 0, max = 62, source = "test" }
message_bits = { max = 0, source = "test" }
[reset]
modes = ["zero"]
source = "test"
[limits]
cores_per_chip = { value = 2, source = "test" }
neurons_per_core = { value = 1, source = "test" }
fan_in_axons_per_core = { value = 64, source = "test" }
fan_out_axons_per_core = { value = 64, source = "test" }
synaptic_memory_bits_per_core = { value = 10000, source = "test" }
[energy.synaptic_op]
value = 2.0
unit = "pJ"
kind = "measured"
source = "test: 2 pJ"
[energy.neuron_update_active]
value = 3.0
unit = "pJ"
kind = "measured"
source = "test: 3 pJ"
[energy.neuron_update_inactive]
value = 1.0
unit = "pJ"
kind = "simulated"
source = "test: 1 pJ"
[energy.spike_within_tile]
value = 0.5
unit = "pJ"
kind = "measured"
proxy = true
source = "test: 0.5 pJ"
[energy.chip_power]
value = 2.0
unit = "mW"
kind = "measured"
source = "test: 2 mW"
[timing.step]
value = 1.0
unit = "ms"
kind = "measured"
source = "test: 1 ms"
"""


def write_profile(tmp_path, text, name="chip.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_energy_arithmetic_by_hand(tmp_path, stim):
    g = hand_net()
    _, spikes = direct(g, stim)
    rep = energy_report(g, stim, [str(write_profile(tmp_path, PROFILE))])
    (p,) = rep["profiles"]
    nodes = rep["counts"]["nodes"]
    b, t = stim.shape[:2]
    sops = nodes["d1"]["synaptic_ops"] + nodes["s2"]["synaptic_ops"]
    active = nodes["n1"]["active_updates"] + nodes["n2"]["active_updates"]
    inactive = 4 * b * t - active
    # messages: one per destination core (n2 has one neuron per core); inputs 0 and 2 reach 2 and 1 n1 cores
    messages = int(spikes["n1"].sum()) + int(stim[..., 0].sum()) * 2 + int(stim[..., 2].sum()) * 1
    expected = 2e-12 * sops + 3e-12 * active + 1e-12 * inactive + 0.5e-12 * messages
    assert p["total_J"] == pytest.approx(expected, rel=1e-12)
    assert p["per_inference_J"] == pytest.approx(expected / b) and p["per_step_J"] == pytest.approx(expected / b / t)
    assert p["by_operation_J"]["synaptic_op"] == pytest.approx(2e-12 * sops)
    assert p["by_operation_J"]["neuron_update"] == pytest.approx(3e-12 * active + 1e-12 * inactive)
    assert p["by_operation_J"]["spike_routing"] == pytest.approx(0.5e-12 * messages)
    assert sum(p["by_node_per_inference_J"].values()) == pytest.approx(expected / b)
    assert p["flag"] == "proxy"  # the routing figure is a proxy: the weakest flag wins
    assert p["wall_time"]["per_inference_s"] == pytest.approx(t * 1e-3)
    assert p["wall_time"]["latency_s"] == pytest.approx(2e-3)  # two synapses, no delay on the shortest path
    assert p["mapping"]["cores"] == 4 and p["mapping"]["chips"] == 2
    assert p["static"]["energy_J"] == pytest.approx(2e-3 * 2 * b * t * 1e-3)
    assert p["missing"] == []
    ref = rep["reference"]
    assert ref["ann_fp32"]["per_inference_J"] == pytest.approx(4.6e-12 * (6 + 5))
    assert ref["ann_int8"]["per_inference_J"] == pytest.approx(0.23e-12 * (6 + 5))
    rate = spikes["n1"].sum() / (2 * t * b)
    assert ref["literature"]["per_inference_J"] == pytest.approx(4.6e-12 * t * 6 + 0.9e-12 * rate * t * 5)
    assert ref["neurobench_acs"]["per_inference_J"] == pytest.approx(0.9e-12 * sops / b)
    sources = {f["name"]: f for f in rep["figures"]}
    assert sources["handchip:synaptic_op"]["source"] == "test: 2 pJ"
    assert sources["handchip:spike_within_tile"]["flag"] == "proxy"
    assert sources["cmos45nm:mac_fp32"]["flag"] == "estimate" and "Horowitz" in sources["cmos45nm:mac_fp32"]["source"]


def test_a_profile_without_figures_lists_what_is_missing(stim):
    rep = energy_report(hand_net(), stim, ["spinnaker2"])
    (p,) = rep["profiles"]
    assert {m["operation"] for m in p["missing"]} == {"neuron_update", "spike_routing"}
    assert p["by_operation_J"]["synaptic_op"] == pytest.approx(10e-12 * rep["counts"]["totals_per_inference"][
        "synaptic_ops"] * stim.shape[0])
    assert p["mapping"]["kind"] == "spinnaker" and p["mapping"]["cores"] == 3  # source + two neuron populations
    assert p["wall_time"]["per_inference_s"] == pytest.approx(stim.shape[1] * 1e-3)


@pytest.mark.parametrize("edit, fragment", [
    (('unit = "pJ"\nkind = "measured"\nsource = "test: 2 pJ"', 'unit = "pJ/op"\nkind = "measured"\nsource = "x"'),
     "'energy.synaptic_op.unit'"),
    (('source = "test: 2 pJ"', 'source = ""'), "'energy.synaptic_op' has no source"),
    (('value = 2.0\nunit = "pJ"', 'value = 2.0\nunit = "mW"'), "'energy.synaptic_op.unit' must be an energy unit"),
    (('value = 2.0\nunit = "pJ"', 'value = "two"\nunit = "pJ"'), "'energy.synaptic_op.value'"),
    (('[timing.step]\nvalue = 1.0\nunit = "ms"', '[timing.step]\nvalue = 1.0\nunit = "minutes"'),
     "'timing.step.unit'"),
    (('unit = "ms"\nkind = "measured"', 'unit = "ms"\nkind = "guessed"'), "'timing.step.kind'"),
])
def test_malformed_user_profile_names_the_field(tmp_path, stim, edit, fragment):
    old, new = edit
    assert old in PROFILE
    path = write_profile(tmp_path, PROFILE.replace(old, new, 1))
    with pytest.raises(SerializationError) as info:
        energy_report(hand_net(), stim, [str(path)])
    assert fragment in str(info.value) and str(path) in str(info.value) and "Fix:" in str(info.value)


def test_a_reference_without_mac_figure_names_it(tmp_path, stim):
    text = (ROOT / "hw_profiles" / "cmos45nm.toml").read_text().replace("[energy.mac_fp32]", "[energy.mac_fp32_x]")
    path = write_profile(tmp_path, text, "ref.toml")
    with pytest.raises(SerializationError, match=r"missing table \[energy.mac_fp32\]"):
        energy_report(hand_net(), stim, ["loihi1"], reference=str(path))


def test_cmos45nm_reference_figures():
    p = load_profile("cmos45nm")
    assert p.limits is None
    values = {k: (f.value, f.unit) for k, f in p.energy.items()}
    assert values["mac_fp32"] == (4.6, "pJ") and values["ac_fp32"] == (0.9, "pJ")
    assert values["mult_fp32"][0] + values["add_fp32"][0] == pytest.approx(values["mac_fp32"][0])
    assert values["mult_int8"][0] + values["add_int8"][0] == pytest.approx(values["mac_int8"][0])
    assert all("Horowitz" in p.source(f"energy.{k}") for k in p.energy)
    assert all(p.is_estimate(f"energy.{k}") for k in p.energy)
    assert "cmos45nm" not in default_profiles()
    assert {"loihi1", "loihi2", "spinnaker1", "spinnaker2"} <= set(default_profiles())


def test_output_paths():
    assert output_paths("a/b")["json"] == Path("a/b/energy.json")
    assert output_paths("a/r.html")["json"] == Path("a/r.json") and output_paths("a/r.json")["html"] == Path(
        "a/r.html")




@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "artifact"
    main(["compile", str(ROOT / "examples/digits/digits_snn.nir"), "--dt", "1e-3", "--target", "loihi2",
          "--out", str(out)])
    return out


def test_report_energy_command_on_the_digits_example(capsys, tmp_path, digits_artifact):
    stim = ROOT / "examples/digits/digits_test.npz"
    code, out, err = cli(capsys, "profile", str(digits_artifact), "--input", str(stim), "--output",
                         str(tmp_path / "profile.json"))
    assert code == 0, err
    code, out, err = cli(capsys, "report", "energy", str(digits_artifact), "--input", str(stim), "--samples", "4",
                         "--profile-json", str(tmp_path / "profile.json"), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    assert "energy per inference" in out and "loihi2" in out and "ANN fp32" in out and "SNN literature" in out
    rep = json.loads((tmp_path / "rep" / "energy.json").read_text())
    assert rep["input"]["samples"] == 4 and rep["input"]["steps"] == 20
    assert [p["profile"] for p in rep["profiles"]] == default_profiles()
    for p in rep["profiles"]:
        for line in p["lines"]:
            assert line["figure"]["source"] and line["flag"] in ("measured", "simulated", "estimate", "proxy")
        assert p["cores"], p["profile"]
    assert all(f["source"] and f["flag"] for f in rep["figures"])
    assert rep["profile_run"]["backend"] == "emulator" and rep["profile_run"]["equal"] is True
    loihi2 = next(p for p in rep["profiles"] if p["profile"] == "loihi2")
    assert loihi2["flag"] == "proxy" and loihi2["mapping"]["cores"] == 2
    page = (tmp_path / "rep" / "energy.html").read_text()
    assert page.count('<svg class="plot"') >= 5
    for forbidden in ("src=", "href=", "@import", "url("):  # self-contained: nothing to fetch
        assert forbidden not in page
    text = (tmp_path / "rep" / "energy.txt").read_text()
    assert text.startswith("energy report:")
    # the profiled backend is the emulator: its two engines compared, each run's wall time named once
    (run_line,) = [ln for ln in text.splitlines() if ln.startswith("profile run (")]
    assert run_line.count("(emulator/numba)") == 1 and run_line.count("(emulator/numpy)") == 1, run_line
    assert "(backend)" not in run_line and "(emulator)" not in run_line, run_line
    assert page.count("wall time per step") == 2 and "emulator/numpy wall time per step" in page
    # the JSON is the same data the text rendered: totals agree
    assert rep["counts"]["totals_per_inference"]["neuron_updates"] == 74 * 20


def test_report_energy_command_errors(capsys, tmp_path, digits_artifact):
    stim = ROOT / "examples/digits/digits_test.npz"
    bad = write_profile(tmp_path, PROFILE.replace('unit = "mW"', 'unit = "horsepower"'))
    code, _, err = cli(capsys, "report", "energy", str(digits_artifact), "--input", str(stim), "--samples", "2",
                       "--profile", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "'energy.chip_power.unit'" in err and str(bad) in err
    code, _, err = cli(capsys, "report", "energy", str(digits_artifact), "--input", str(stim), "--profile-json",
                       str(tmp_path / "nope.json"), "--out", str(tmp_path / "r"))
    assert code == 2 and "nope.json" in err
    assert not (tmp_path / "r").exists()


def test_a_profile_json_without_wall_times_names_what_it_lacks(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"backend": "lava", "steps": 20, "emulator_seconds_per_step": 0.001}))
    with pytest.raises(SerializationError, match=r"old.json' lacks \['backend_seconds_per_step'\]"):
        load_profile_run(path)
    path.write_text("[1, 2]")
    with pytest.raises(SerializationError, match="lacks"):
        load_profile_run(path)


def test_write_report_is_atomic_and_complete(tmp_path, stim):
    rep = energy_report(hand_net(), stim, ["loihi1"])
    paths = write_report(rep, tmp_path / "x" / "report.html")
    assert {p.name for p in paths.values()} == {"report.json", "report.html", "report.txt"}
    assert json.loads(paths["json"].read_text())["format"] == "neurodeploy-energy-report"
    assert not [p for p in (tmp_path / "x").iterdir() if p.name.startswith(".")]
    assert math.isfinite(rep["profiles"][0]["per_inference_J"])


def test_spinnaker_cores_follow_the_emitted_population_split(tmp_path):
    """An artifact written with population_size maps its split populations in the energy report; slices name the
    IR node with its neuron range (blocks of 64 cover the 200-neuron node exactly)."""
    from neurodeploy.artifact import load_artifact
    from neurodeploy.compiler import compile_graph, write_artifact

    rng = np.random.default_rng(3)
    g = Graph({"in": Input(shape=(20,)), "fc": Dense(weight=rng.normal(0, 0.3, (200, 20))),
               "n": CubaLIF(shape=(200,), du=0.2, dv=0.1, vth=1.0), "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    x = (rng.random((2, 15, 20)) < 0.3).astype(np.uint8)
    art = compile_graph(g, "spinnaker", calibration=x)
    write_artifact(art, tmp_path / "whole")
    write_artifact(art, tmp_path / "split", backend_options={"population_size": 64})
    whole = energy_report(load_artifact(tmp_path / "whole"), x, ["spinnaker1"])["profiles"][0]
    rep = energy_report(load_artifact(tmp_path / "split"), x, ["spinnaker1"])
    split = rep["profiles"][0]
    cores = [c for c in split["cores"] if c["node"] == "n" and c["kind"] == "neuron"]
    ranges = sorted((c["start"], c["stop"]) for c in cores)
    assert ranges[0][0] == 0 and ranges[-1][1] == 200 and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(b - a <= 64 for a, b in ranges)
    assert split["mapping"]["summary"]["neuron_cores"] == len(cores) >= 4 > whole["mapping"]["summary"]["neuron_cores"]
    spikes = simulate(art.graph, x, record=("spikes",)).recorded["n/spikes"].sum()
    assert sum(c["spikes"] for c in cores) == spikes > 0  # per-core counts add up to the node's (IR names)
