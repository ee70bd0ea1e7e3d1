"""`neurodeploy profile`'s terminal table: each backend's wall time per step is named once, with its own figure."""

import numpy as np
from graphs import random_net

from neurodeploy.compiler import compile_graph
from neurodeploy.profiling import profile, render_profile, wall_times


def wall_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("wall time per step:")]
    return line


def test_profiling_the_emulator_compares_its_two_engines(monkeypatch):
    x = (np.random.default_rng(1).random((2, 10, 8)) < 0.3).astype(np.uint8)
    art = compile_graph(random_net(8, 6), "emulator")
    report = profile(art, x, "emulator")
    assert report["engines"] == ["numba", "numpy"] and report["equal"] is True
    assert report["spike_counts"]["h"] > 0, "the comparison should see spikes"
    assert wall_times(report) == [("emulator/numba", report["emulator_seconds_per_step"]),
                                  ("emulator/numpy", report["backend_seconds_per_step"])]
    assert wall_line(render_profile(report)) == (f"wall time per step: emulator/numba "
                                                 f"{report['emulator_seconds_per_step'] * 1e3:.3f} ms, emulator/numpy "
                                                 f"{report['backend_seconds_per_step'] * 1e3:.3f} ms")
    # the comparison can fail: a numpy engine that drops one spike is caught where it happens
    from neurodeploy.emulator import engine

    real = engine.Program._run_numpy

    def broken(self, inputs, neuron_traces, counts, batch, steps, progress):
        real(self, inputs, neuron_traces, counts, batch, steps, progress)
        for field, trace in neuron_traces["h"]:
            if field == "spikes":
                trace[0, int(np.argmax(trace[0].any(axis=-1)))] = 0  # the first step where h spikes

    monkeypatch.setattr(engine.Program, "_run_numpy", broken)
    report = profile(art, x, "emulator", record=("spikes",))
    assert report["equal"] is False and report["first_divergence"]["node"] == "h"


def test_another_backend_is_named_with_its_own_figure():
    report = {"backend": "lava", "batch": 1, "steps": 10, "equal": True, "first_divergence": None,
              "spike_counts": {"n": 3}, "synaptic_ops": {"fc": 12}, "emulator_seconds_per_step": 0.002,
              "backend_seconds_per_step": 0.5}
    assert wall_times(report) == [("emulator", 0.002), ("lava", 0.5)]
    assert wall_line(render_profile(report)) == "wall time per step: emulator 2.000 ms, lava 500.000 ms"


def test_profile_against_the_artifacts_own_float_ir(capsys, tmp_path):
    """`profile --backend float` (issue 16 item 5): the digits example's quantized layers against its float IR."""
    from pathlib import Path

    from cli_runner import run_cli as cli

    root = Path(__file__).resolve().parents[1]
    art = tmp_path / "art"
    assert cli(capsys, "compile", root / "examples/digits/digits_snn.nir", "--dt", "1e-3", "--out", art)[0] == 0
    assert (art / "float.ndg").is_file()
    code, out, err = cli(capsys, "profile", art, "--input", root / "examples/digits/digits_test.npz", "--backend",
                         "float", "--json")
    assert code == 0, err
    import json

    report = json.loads(out)
    pops = report["agreement"]["populations"]
    assert set(pops) == {"net.1", "net.3"}
    # issue 16's bar for 8-bit quantization: per-layer spike-count correlation >= 0.99, decisions >= 99 %
    assert all(p["sample_count_correlation"] >= 0.99 for p in pops.values()), pops
    assert report["agreement"]["same_decision"] >= 0.99
    code, text, _ = cli(capsys, "profile", art, "--input", root / "examples/digits/digits_test.npz", "--backend",
                        "float")
    assert "same decision on" in text and "net.3" in text


def test_profile_float_without_a_float_ir_is_refused(capsys, tmp_path):
    from cli_runner import run_cli as cli

    from neurodeploy.ir import save_graph

    model = tmp_path / "q.ndg"
    save_graph(random_net(8, 6), model)  # already quantized: nothing to compare with
    stim = tmp_path / "x.npz"
    np.savez(stim, spikes=np.zeros((1, 5, 8), np.uint8))
    assert cli(capsys, "compile", model, "--out", tmp_path / "art")[0] == 0
    assert not (tmp_path / "art" / "float.ndg").exists()
    code, _, err = cli(capsys, "profile", tmp_path / "art", "--input", stim, "--backend", "float")
    assert code == 2 and "has no float IR" in err


def test_float_decision_breaks_count_ties_by_the_last_steps_v():
    """The float backend's decision (issue 16 item 3): most spikes, a tie goes to the larger v at the last step, on
    both runs alike; plain count argmax is reported next to it."""
    from neurodeploy.backends.float import decide

    counts = np.array([[2, 2, 0], [1, 3, 3], [0, 0, 0], [1, 1, 0]])
    v_last = np.array([[5.0, 9.0, 99.0], [0.0, -1.0, 2.0], [3.0, 3.0, 1.0], [4.0, 4.0, 0.0]])
    decision, count_tie, tie_left = decide(counts, v_last)
    assert decision.tolist() == [1, 2, 0, 0]  # the 99 of a neuron with fewer spikes does not count
    assert count_tie.tolist() == [True, True, True, True] and tie_left.tolist() == [False, False, True, True]
    assert decide(counts, None)[0].tolist() == [0, 1, 0, 0]


def test_float_agreement_scales_v_and_reports_both_rules():
    from neurodeploy.ir.graph import Graph
    from neurodeploy.ir.ops import CubaLIF, Dense, Input, Output

    rng = np.random.default_rng(3)
    graph = Graph({"in": Input(shape=(8,)), "fc": Dense(weight=rng.normal(0.3, 0.4, (4, 8))),
                   "o": CubaLIF(shape=(4,), du=0.5, dv=0.1, vth=1.0), "out": Output()},
                  [("in", "fc"), ("fc", "o"), ("o", "out")])
    x = (rng.random((40, 12, 8)) < 0.4).astype(np.uint8)
    art = compile_graph(graph, "emulator", calibration=x[:8])
    agreement = profile(art, x, "float")["agreement"]
    (out,) = agreement["outputs"].values()
    assert out["decision_rule"] == "counts, ties by v at the last step"
    assert 0 < out["ties"] and 0.9 <= out["same_decision_count_argmax"] <= 1 and out["same_decision"] >= 0.9
    # float v is rescaled to the integer units (64 * scale): the RMS error is a fraction of a threshold
    pops = [p for p in agreement["populations"].values() if "v_rms_error_thresholds" in p]
    assert pops and all(p["v_rms_error_thresholds"] < 0.5 for p in pops), pops
