"""Compile a family's graph for the targets and run it there: helpers shared by the families (LSM, HLOP).

* :func:`compile_targets` -- ``compile_graph`` per target ("loihi2": the emulator runs that same integer graph,
  since the emulator profile has Loihi 2's arithmetic, so "Lava equals the emulator" is a statement about one graph;
  "spinnaker": quantized for the spinnaker1 profile), with the same calibration stimuli; seconds per target.
* :func:`run_emulator` -- every output of a graph on the emulator, in batches.
* :func:`lava_check` -- the Lava backend (Loihi 2 bit-accurate CPU models, through the ``.venv-lava`` worker when
  this interpreter has no lava-nc) on ``x``, compared output by output, integer for integer, with the emulator.
* :func:`pynn_check` -- the emitted PyNN script on pyNN.brian2, with the agreement figures of
  :func:`neurodeploy.backends.pynn.agreement` against the integer emulator for the named populations.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from neurodeploy.compiler import compile_graph
from neurodeploy.emulator import Program
from neurodeploy.ir import Graph

AGREEMENT_FIGURES = ("spikes_emulator", "spikes_backend", "count_correlation", "sample_count_correlation",
                     "spike_jaccard", "van_rossum_normalised")


def compile_targets(graph: Graph, calibration: np.ndarray, targets: tuple[str, ...] = ("loihi2", "spinnaker")
                    ) -> tuple[dict[str, Any], dict[str, float]]:
    """Artifacts per target and compile seconds per target."""
    artifacts, seconds = {}, {}
    for target in targets:
        start = time.perf_counter()
        artifacts[target] = compile_graph(graph, target, calibration=calibration)
        seconds[target] = time.perf_counter() - start
    return artifacts, seconds


def run_emulator(graph: Graph, x: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
    """Every output of ``graph`` (``[B, T, *shape]``) on the emulator."""
    program = Program(graph)
    parts = [program.run(x[i:i + batch]).outputs for i in range(0, x.shape[0], batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def lava_check(artifact, x: np.ndarray) -> dict[str, Any]:
    """Run ``x`` on Lava and on the emulator; report bit-identity per output and the Lava arrays."""
    from neurodeploy.backends import lava

    start = time.perf_counter()
    arrays, _ = lava.run(artifact, x)
    seconds = time.perf_counter() - start
    emu = run_emulator(artifact.graph, x)
    equal = {name: bool(np.array_equal(np.asarray(arrays[name]), emu[name])) for name in emu}
    return {"samples": int(x.shape[0]), "equal": equal, "identical": all(equal.values()), "seconds": seconds,
            "seconds_per_sample": seconds / max(1, x.shape[0]), "arrays": arrays, "emulator": emu}


def pynn_check(artifact, x: np.ndarray, populations: tuple[str, ...]) -> dict[str, Any]:
    """Run ``x`` through the emitted PyNN script on pyNN.brian2 and compare with the integer emulator.

    Returns the PyNN arrays (``arrays``: every output and ``<population>/spikes``), the emulator's (``emulator``)
    and per population the agreement figures named in :data:`AGREEMENT_FIGURES`.
    """
    from neurodeploy.backends import emulator, pynn

    ref, _ = emulator.run(artifact, x, record=("spikes",))
    start = time.perf_counter()
    other, raw = pynn.run(artifact, x, record=("spikes",))
    seconds = time.perf_counter() - start
    report = pynn.agreement(ref, other, artifact)
    agreement = {name: {k: report["populations"].get(name, {}).get(k) for k in AGREEMENT_FIGURES}
                 for name in populations}
    return {"samples": int(x.shape[0]), "seconds": seconds, "build_seconds": raw.get("build_seconds"),
            "agreement": agreement, "outputs": report.get("outputs", {}), "arrays": other, "emulator": ref}
