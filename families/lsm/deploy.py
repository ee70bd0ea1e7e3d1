"""Compile an LSM graph for the three targets, run it there, and collect the figures the summary reports.

* :func:`compile_targets` -- ``compile_graph`` for "loihi2" (whose integer graph the emulator runs: the emulator
  profile has Loihi 2's arithmetic, and running the loihi2 artifact makes "Lava equals the emulator" a statement
  about one and the same graph) and "spinnaker" (quantized for the spinnaker1 profile), with the same calibration
  stimuli.
* :func:`reservoir_spikes` -- a graph's reservoir spikes on the emulator (float or integer by the graph).
* :func:`lava_check` -- the Lava backend (Loihi 2 bit-accurate CPU models, through the ``.venv-lava`` worker when
  this interpreter has no lava-nc) on a few samples, compared bit for bit with the emulator.
* :func:`pynn_check` -- the emitted PyNN script on pyNN.brian2 for a subset, with agreement figures
  (:func:`neurodeploy.backends.pynn.agreement`) against the integer emulator.
* :func:`loihi_mapping`, :func:`spinnaker_mapping` -- core and chip counts from the partition pass (manifest
  ``mapping``) and from the SpiNNaker mapping report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from neurodeploy.compiler import compile_graph
from neurodeploy.emulator import Program
from neurodeploy.ir import Graph

RESERVOIR = "reservoir"


def compile_targets(graph: Graph, calibration: np.ndarray, targets: tuple[str, ...] = ("loihi2", "spinnaker")
                    ) -> tuple[dict[str, Any], dict[str, float]]:
    """Artifacts per target and compile seconds per target."""
    artifacts, seconds = {}, {}
    for target in targets:
        start = time.perf_counter()
        artifacts[target] = compile_graph(graph, target, calibration=calibration)
        seconds[target] = time.perf_counter() - start
    return artifacts, seconds


def reservoir_spikes(graph: Graph, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Reservoir spikes ``[B, T, N]`` (uint8) of ``graph`` on the emulator, in batches of ``batch`` samples."""
    program = Program(graph)
    out = [program.run(x[i:i + batch], record=("spikes",), nodes=[RESERVOIR]).recorded[f"{RESERVOIR}/spikes"]
           for i in range(0, x.shape[0], batch)]
    return np.concatenate(out).reshape(x.shape[0], x.shape[1], -1)


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


def pynn_check(artifact, x: np.ndarray) -> dict[str, Any]:
    """Run ``x`` through the emitted PyNN script on pyNN.brian2 and compare with the integer emulator."""
    from neurodeploy.backends import emulator, pynn

    ref, _ = emulator.run(artifact, x, record=("spikes",))
    start = time.perf_counter()
    other, raw = pynn.run(artifact, x, record=("spikes",))
    seconds = time.perf_counter() - start
    report = pynn.agreement(ref, other, artifact)
    pop = report["populations"].get(RESERVOIR, {})
    figures = {k: pop.get(k) for k in ("spikes_emulator", "spikes_backend", "count_correlation",
                                       "sample_count_correlation", "spike_jaccard", "van_rossum_normalised")}
    return {"samples": int(x.shape[0]), "seconds": seconds, "build_seconds": raw.get("build_seconds"),
            "agreement": figures, "spikes": np.asarray(other[f"{RESERVOIR}/spikes"]),
            "emulator_spikes": np.asarray(ref[f"{RESERVOIR}/spikes"])}


def loihi_mapping(artifact) -> dict[str, Any]:
    """Cores and chips of the Loihi 2 partition pass (per-core limits of hw_profiles/loihi2.toml)."""
    mapping = artifact.manifest.get("mapping", {})
    per_node: dict[str, int] = {}
    for core in mapping.get("per_core", []):
        per_node[core["node"]] = per_node.get(core["node"], 0) + 1
    return {"cores": mapping.get("cores"), "chips": mapping.get("chips"), "cores_per_node": per_node}


def spinnaker_mapping(artifact, **options: Any) -> dict[str, Any]:
    """Cores, chips and boards of the SpiNNaker mapping report (sPyNNaker rules, see backends/pynn/mapping.py)."""
    from neurodeploy.backends import pynn

    report = pynn.mapping_report(artifact, **options)
    keys = ("machine", "neuron_cores", "spike_source_cores", "delay_extension_cores", "application_cores", "chips",
            "boards", "max_routing_entries", "sdram_bytes")
    return {k: report.get(k) for k in keys}


def same_reservoir(a: Graph, b: Graph) -> bool:
    """True when the reservoir and its incoming synapses hold the same integers in both graphs."""
    for name in ("w_in", "reservoir", "rec_exc", "rec_inh"):
        if (name in a.nodes) != (name in b.nodes):
            return False
        if name not in a.nodes:
            continue
        pa, pb = a.nodes[name].params(), b.nodes[name].params()
        for key, value in pa.items():
            if key in ("quant", "origin"):
                continue
            other = pb[key]
            if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
                if not np.array_equal(np.asarray(value), np.asarray(other)):
                    return False
            elif value != other:
                return False
    return True
