"""Where each neuron runs on a profile: the core slices a report counts per core.

* A profile with a ``[spinnaker]`` table: the PyNN backend's SpiNNaker mapping report (sPyNNaker / PACMAN rules,
  :mod:`neurodeploy.backends.pynn.mapping`): neuron, spike-source and delay-extension cores, chips, boards -- of
  the deployment as emitted (an artifact written with ``population_size`` maps its split populations); slices
  name the IR node and its neuron range.
* Any other profile with ``[limits]`` (Loihi): the partition pass (:mod:`neurodeploy.passes.partition`) with
  ``profile.limits.core_limits()``; the artifact's own fit report is reused when it was compiled for that profile.
  Input spikes come from outside the neurocores (host or embedded CPU) and have no core.
* A profile without limits (the emulator, the 45 nm reference): no mapping.

Every slice is a dict ``{core, node, start, stop, kind, chip?, utilisation}``; ``utilisation`` holds fractions
of the per-core limits (Loihi: neurons, fan_in, fan_out, synaptic_memory; SpiNNaker: neurons and the core's
share of its chip's SDRAM, ``sdram_bytes / (sdram_bytes_per_chip / cores_per_chip)``).
A network that does not fit gives ``{"error": message}`` instead of slices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neurodeploy.errors import NeurodeployError
from neurodeploy.ir.graph import Graph
from neurodeploy.profiles import Profile


def _spinnaker(artifact, graph: Graph, profile: Profile) -> dict[str, Any]:
    from neurodeploy.registry import get_backend

    target = artifact if artifact is not None else graph
    manifest = getattr(artifact, "manifest", None) or {}
    split = manifest.get("backend_options", {}).get("population_size")  # the deployment as emitted
    options = {} if split is None else {"population_size": split}
    report = get_backend("pynn").mapping_report(target, machine=profile.path, **options)
    spin = profile.extra.get("spinnaker", {})
    sdram = spin.get("sdram_bytes_per_chip", {}).get("value") if isinstance(spin, Mapping) else None
    limits = profile.limits
    per_core_sdram = sdram / limits.cores_per_chip if sdram and limits else None
    slices = []
    for core in report["per_core"]:
        kind = core["kind"]
        node = core["node"]  # the IR node (of a delay-extension core: of the population it extends)
        util = {}
        if kind == "neuron" and limits is not None:
            util["neurons"] = (core["stop"] - core["start"]) / limits.neurons_per_core
        if per_core_sdram:
            util["sdram"] = core["sdram_bytes"] / per_core_sdram
        slices.append({"core": core["index"], "node": node, "start": core["node_start"], "stop": core["node_stop"],
                       "kind": kind, "chip": [core["board"], *core["chip"]], "utilisation": util})
    summary = {k: report[k] for k in ("machine", "rules", "application_cores", "neuron_cores", "spike_source_cores",
                                      "delay_extension_cores", "chips", "boards", "max_routing_entries",
                                      "routing_limit", "sdram_bytes") if k in report}
    return {"kind": "spinnaker", "source": "neurodeploy.backends.pynn mapping report (" + report["rules"] + ")",
            "cores": report["application_cores"], "chips": report["chips"], "summary": summary, "slices": slices}


def _loihi(artifact, graph: Graph, profile: Profile) -> dict[str, Any]:
    manifest = getattr(artifact, "manifest", None) or {}
    mapping = manifest.get("mapping") if manifest.get("profile") == profile.name else None
    if mapping is None:
        from neurodeploy.passes.partition import partition

        mapping = partition(graph, profile.limits.core_limits())[0].meta["mapping"]
    slices = [{"core": c["core"], "node": c["node"], "start": c["start"], "stop": c["stop"], "kind": "neuron",
               "utilisation": dict(c.get("utilisation", {}))} for c in mapping["per_core"]]
    return {"kind": "neurocores", "source": "neurodeploy.passes.partition (per-core limits of the profile)",
            "cores": mapping["cores"], "chips": mapping["chips"], "summary": {"limits": mapping.get("limits")},
            "slices": slices}


def map_cores(artifact, graph: Graph, profile: Profile) -> dict[str, Any] | None:
    """The core mapping of ``graph`` on ``profile`` (see the module docstring), or None without limits."""
    if profile.limits is None:
        return None
    try:
        if "spinnaker" in profile.extra:
            return _spinnaker(artifact, graph, profile)
        return _loihi(artifact, graph, profile)
    except NeurodeployError as err:
        return {"kind": "error", "error": str(err), "slices": []}
