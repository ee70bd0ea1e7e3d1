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
