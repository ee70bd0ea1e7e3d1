"""The mapping report (``pynn/mapping.json``): cores, chips, boards, SDRAM, routing entries, delay extensions.

:func:`mapping_report` runs the mapping steps in order -- neurons per core and vertices (:mod:`.vertices`, with
SDRAM from :mod:`.memory`), placement (:mod:`.placement`), targets and routing entries (:mod:`.routing`) -- and
reports, JSON-able: totals, per population, per core (with the IR node and its neurons there), per chip (cores,
SDRAM, routing entries against the limit; chips a route only passes through have no cores), the board overhead
cores (SCAMP, extra monitor, packet gatherer) separately, the delay plan, and what the estimate excludes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from ..hardware import SpiNNakerSpec
from ..netlist import Netlist
from .placement import place
from .routing import core_targets, routing_entries
from .vertices import DELAYED, Core, atoms_per_core, build_vertices


def _node_range(net: Netlist, core: Core) -> dict[str, Any]:
    """The IR node of a core and its neurons there (a split population holds the node's neurons from ``offset``)."""
    pop = net.populations[core.population[: -len(DELAYED)] if core.kind == "delay" else core.population]
    return {"node": pop.node, "node_start": pop.offset + core.start, "node_stop": pop.offset + core.stop}


def mapping_report(net: Netlist, spec: SpiNNakerSpec, delay_plan: dict[str, Any],
                   neurons_per_core: Any = None) -> dict[str, Any]:
    """The mapping report (JSON-able): per core, per chip, totals, and board overhead cores separately."""
    per_core = atoms_per_core(net, spec, neurons_per_core)
    vertices, pre_stages = build_vertices(net, spec, per_core, delay_plan)
    boards = place(vertices, spec)
    cores_of = {v.name: v.cores for v in vertices if v.kind != "delay"}
    delay_cores = {v.name[: -len(DELAYED)]: v.cores for v in vertices if v.kind == "delay"}
    targets = core_targets(net, cores_of, delay_cores, delay_plan)
    entries = routing_entries(vertices, targets, spec, boards)
    all_cores = [c for v in vertices for c in v.cores]
    used_chips = sorted({(c.board, *c.chip) for c in all_cores})
    chips = []
    for chip in used_chips:
        on = [c for c in all_cores if (c.board, *c.chip) == chip]
        n_entries = entries.get(chip, 0)
        chips.append({"board": chip[0], "x": chip[1], "y": chip[2], "app_cores": len(on),
                      "sdram_bytes": int(sum(c.sdram_bytes for c in on)), "routing_entries": n_entries,
                      "routing_limit": spec.router_entries_per_chip,
                      "over_routing_limit": n_entries > spec.router_entries_per_chip})
    route_only = sorted(set(entries) - set(used_chips))
    for chip in route_only:
        chips.append({"board": chip[0], "x": chip[1], "y": chip[2], "app_cores": 0, "sdram_bytes": 0,
                      "routing_entries": entries[chip], "routing_limit": spec.router_entries_per_chip,
                      "over_routing_limit": entries[chip] > spec.router_entries_per_chip})
    all_chips = len(used_chips) + len(route_only)
    kinds = defaultdict(int)
    for c in all_cores:
        kinds[c.kind] += 1
    populations = {}
    for v in vertices:
        populations[v.name] = {
            "kind": v.kind, "cell_type": (net.populations[v.name].cell_type if v.kind != "delay" else "DelayExtension"),
            "neurons": v.size, "neurons_per_core": v.atoms_per_core, "cores": len(v.cores),
            "synaptic_matrix_bytes_per_core": v.cores[0].synaptic_matrix_bytes if v.cores else 0,
            "delay_stages": pre_stages.get(v.name[: -len(DELAYED)], 0) if v.kind == "delay" else None}
    return {
        "machine": spec.name,
        "rules": "sPyNNaker 1!7.4.1 / PACMAN 1!7.4.1 (see neurodeploy.backends.pynn.mapping)",
        "neuron_cores": kinds["neuron"], "spike_source_cores": kinds["source"],
        "delay_extension_cores": kinds["delay"], "application_cores": len(all_cores),
        "chips": len(used_chips), "chips_with_routes": all_chips, "boards": boards,
        "board_overhead_cores": {
            "scamp_monitor": all_chips * spec.scamp_cores_per_chip if all_chips else 0,
            "extra_monitor": all_chips * spec.extra_monitor_cores_per_chip if all_chips else 0,
            "packet_gatherer": boards * spec.packet_gatherer_cores_per_board,
            "scamp_monitor_on_allocated_boards": boards * spec.chips_per_board * spec.scamp_cores_per_chip,
            "extra_monitor_on_allocated_boards": boards * spec.chips_per_board * spec.extra_monitor_cores_per_chip,
            "note": "sPyNNaker runs SCAMP and an extra monitor on every chip of the allocated boards "
                    f"({spec.chips_per_board} per board) and a packet gatherer per board; scamp_monitor and "
                    "extra_monitor count the chips the network uses, *_on_allocated_boards every chip"},
        "max_routing_entries": max((c["routing_entries"] for c in chips), default=0),
        "routing_limit": spec.router_entries_per_chip,
        "sdram_bytes": int(sum(c.sdram_bytes for c in all_cores)),
        "populations": populations,
        "per_core": [asdict(c) | {"sdram_bytes": c.sdram_bytes} | _node_range(net, c) for c in all_cores],
        "per_chip": chips,
        "delays": delay_plan,
        "excluded": ["recording buffers (depend on the run length and what is recorded)",
                     "system regions, provenance and profiling (a few KB per core)",
                     "system routing entries (data speed-up, reinjection)",
                     "routing-table compression (sPyNNaker compresses on chip before loading)"],
    }
