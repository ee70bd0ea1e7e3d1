"""`neurodeploy profile`'s terminal table: each backend's wall time per step is named once, with its own figure."""

import numpy as np
from graphs import random_net

from neurodeploy.compiler import compile_graph
from neurodeploy.profiling import profile, render_profile, wall_times


def wall_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("wall time per step:")]
    return line


def test_profiling_the_emulator_names_it_once():
    x = (np.random.default_rng(1).random((2, 10, 8)) < 0.3).astype(np.uint8)
    report = profile(compile_graph(random_net(8, 6), "emulator"), x, "emulator")
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
