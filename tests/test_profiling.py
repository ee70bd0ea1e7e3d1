"""`neurodeploy profile`'s terminal table: each backend's wall time per step is named once, with its own figure."""

import numpy as np

from neurodeploy.compiler import compile_graph
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo
from neurodeploy.profiling import profile, render_profile, wall_times

Q = QuantInfo(scale=1.0)


def wall_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("wall time per step:")]
    return line


def small_artifact():
    w = 2 * np.random.default_rng(0).integers(-10, 30, (6, 8))
    g = Graph({"in": Input(shape=(8,)), "fc": Dense(weight=w, num_weight_bits=8, quant=Q),
               "n": CubaLIF(shape=(6,), du=1024, dv=256, vth=100, quant=Q), "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    return compile_graph(g, "emulator")


def test_profiling_the_emulator_names_it_once():
    x = (np.random.default_rng(1).random((2, 10, 8)) < 0.3).astype(np.uint8)
    report = profile(small_artifact(), x, "emulator")
    assert report["equal"] is True
    assert wall_times(report) == [("emulator", report["emulator_seconds_per_step"])]
    line = wall_line(render_profile(report))
    assert line == f"wall time per step: emulator {report['emulator_seconds_per_step'] * 1e3:.3f} ms"


def test_another_backend_is_named_with_its_own_figure():
    report = {"backend": "lava", "batch": 1, "steps": 10, "equal": True, "first_divergence": None,
              "spike_counts": {"n": 3}, "synaptic_ops": {"fc": 12}, "emulator_seconds_per_step": 0.002,
              "backend_seconds_per_step": 0.5}
    assert wall_times(report) == [("emulator", 0.002), ("lava", 0.5)]
    assert wall_line(render_profile(report)) == "wall time per step: emulator 2.000 ms, lava 500.000 ms"
