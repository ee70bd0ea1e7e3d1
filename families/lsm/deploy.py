"""Compile an LSM graph for the three targets, run it there, and collect the figures the summary reports.

:func:`compile_targets`, :func:`compile_seconds`, :func:`run_emulator` and :func:`lava_check` are the shared
:mod:`neurodeploy.families.targets` helpers (re-exported here); :func:`pynn_check` wraps the shared one for the
reservoir population.

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

from typing import Any

import numpy as np

from neurodeploy.families import targets
from neurodeploy.families.targets import compile_seconds, compile_targets, lava_check, run_emulator
from neurodeploy.ir import Graph

__all__ = ["compile_targets", "compile_seconds", "reservoir_spikes", "run_emulator", "lava_check", "pynn_check",
           "loihi_mapping", "spinnaker_mapping", "same_reservoir"]

RESERVOIR = "reservoir"


def reservoir_spikes(graph: Graph, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Reservoir spikes ``[B, T, N]`` (uint8) of ``graph`` on the emulator, in batches of ``batch`` samples."""
    spikes = run_emulator(graph, x, batch, nodes=(RESERVOIR,))[f"{RESERVOIR}/spikes"]
    return spikes.reshape(x.shape[0], x.shape[1], -1)


def pynn_check(artifact, x: np.ndarray) -> dict[str, Any]:
    """Run ``x`` through the emitted PyNN script on pyNN.brian2 and compare the reservoir with the integer emulator
    (:func:`neurodeploy.families.targets.pynn_check`)."""
    res = targets.pynn_check(artifact, x, (RESERVOIR,))
    return {"samples": res["samples"], "seconds": res["seconds"], "build_seconds": res["build_seconds"],
            "agreement": res["agreement"][RESERVOIR], "spikes": np.asarray(res["arrays"][f"{RESERVOIR}/spikes"]),
            "emulator_spikes": np.asarray(res["emulator"][f"{RESERVOIR}/spikes"])}


def loihi_mapping(artifact) -> dict[str, Any]:
    """Cores and chips of the Loihi 2 partition pass (per-core limits of hw_profiles/loihi2.toml)."""
    mapping = artifact.manifest.get("mapping", {})
    per_node: dict[str, int] = {}
    for core in mapping.get("per_core", []):
        per_node[core["node"]] = per_node.get(core["node"], 0) + 1
    return {"cores": mapping.get("cores"), "chips": mapping.get("chips"), "cores_per_node": per_node}


def spinnaker_mapping(artifact, **options: Any) -> dict[str, Any]:
    """Cores, chips and boards of the SpiNNaker mapping report (sPyNNaker rules, see backends/pynn/mapping/)."""
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
