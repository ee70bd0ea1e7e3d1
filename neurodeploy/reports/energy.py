"""Energy and time from counts and sourced per-operation figures.

Hardware estimate on a profile (``B`` samples of ``T`` steps; every line is count x figure)::

    E_syn    = sum_syn  synaptic_ops[syn] * E(synaptic_op | synaptic_event)
    E_neuron = sum_node active_updates * E(neuron_update_active) + inactive_updates * E(neuron_update_inactive)
               (or neuron_updates * E(neuron_update) when the profile gives one figure)
    E_route  = sum_src  spike_messages[src] * E(spike_within_tile | spike_message)
    E        = E_syn + E_neuron + E_route                       (dynamic energy)
    E_static = P(chip_power) * chips * B * T * t_step           (reported separately, not in E)
    per inference = E / B,  per step = E / (B * T)

``spike_messages`` is one message per destination core (from the profile's core mapping, one per spike without a
mapping) and counts no mesh hops, so ``E_route`` is a lower bound (each hop would add ``spike_hop_*``). An
operation whose figure the profile lacks is listed under ``missing`` and contributes nothing. The split into
active and inactive neuron updates uses the emulator's state (see :mod:`.counts`), an assumption flagged
``estimate``.

References on 45 nm CMOS (``hw_profiles/cmos45nm.toml``, Horowitz ISSCC 2014), per inference:

* ANN-equivalent: one dense pass of the same layers, ``E_ANN = E_MAC * sum_syn D_syn`` with ``D`` the structural
  synapses of :mod:`.counts` (fp32: ``mac_fp32`` = 4.6 pJ; int8: ``mac_int8`` = 0.23 pJ);
* spiking-transformer literature convention (Yao et al., Spike-driven Transformer V2, ICLR 2024)::

      E_SNN = E_MAC * FLOPs_first + E_AC * sum_{other syn} SOP_syn,   SOP_syn = fr_src * T * FLOPs_syn
      FLOPs_first = T * D (synapses fed by an Input: a direct-encoding layer evaluated densely every step)
      fr_src = spikes[src] / (n_src * T * B),  FLOPs_syn = D_syn,   E_MAC = 4.6 pJ,  E_AC = 0.9 pJ

* NeuroBench-style: ``E = E_AC * effective ACs + E_MAC * effective MACs`` (the measured events, fp32 figures).
"""

from __future__ import annotations

from typing import Any

from neurodeploy.profiles import Profile

from .counts import RunCounts, spike_messages
from .figures import Figure, require_energy, step_time, weakest

OPERATIONS = ("synaptic_op", "neuron_update", "spike_routing")
SYNAPTIC_FIGURES = ("synaptic_op", "synaptic_event")
ROUTING_FIGURES = ("spike_within_tile", "spike_message")
HOP_FIGURES = ("spike_hop_east_west", "spike_hop_north_south")
ESTIMATE_SOURCE = "neurodeploy/reports/energy.py model"


def _first(profile: Profile, names: tuple[str, ...]) -> Figure | None:
    """The first of ``names`` the profile gives, which must be an energy per operation."""
    for name in names:
        if name in profile.energy:
            return require_energy(profile, name, "J", f"{name} (an energy per operation)")
    return None


def _line(operation: str, node: str, count: int, fig: Figure, note: str = "", assume: bool = False) -> dict:
    flag = weakest([fig.flag] + (["estimate"] if assume else []))
    line = {"operation": operation, "node": node, "count": int(count), "figure": fig.to_json(),
            "energy_J": float(count) * fig.value, "flag": flag}
    if note:
        line["note"] = note
    return line


def _neuron_lines(counts: RunCounts, nodes: dict, profile: Profile) -> tuple[list[dict], str | None]:
    active = _first(profile, ("neuron_update_active",))
    inactive = _first(profile, ("neuron_update_inactive",))
    single = _first(profile, ("neuron_update",))
    lines = []
    for name in counts.neuron_nodes:
        info = nodes[name]
        if active is not None and inactive is not None:
            note = "active = neuron-steps with u != 0 or v != 0 after the update (emulator state)"
            lines.append(_line("neuron_update", name, info["active_updates"], active, note, assume=True))
            lines.append(_line("neuron_update", name, info["inactive_updates"], inactive, note, assume=True))
        elif single is not None or active is not None:
            fig = single if single is not None else active
            lines.append(_line("neuron_update", name, info["neuron_updates"], fig,
                               "" if single is not None else "every update priced as active (upper bound)",
                               assume=single is None))
        else:
            return [], (f"profile {profile.name} has no neuron update figure (energy.neuron_update or "
                        "energy.neuron_update_active/inactive)")
    return lines, None


def hardware_energy(counts: RunCounts, nodes: dict[str, dict], profile: Profile,
                    mapping: dict[str, Any] | None, latency_steps: int) -> dict[str, Any]:
    """Energy (J) and time (s) of the counted run on ``profile``; see the module docstring. JSON-able."""
    b, t = max(counts.batch, 1), max(counts.steps, 1)
    lines: list[dict] = []
    missing: list[dict] = []
    syn_fig = _first(profile, SYNAPTIC_FIGURES)
    if syn_fig is None:
        missing.append({"operation": "synaptic_op",
                        "reason": f"profile {profile.name} has no energy.synaptic_op or energy.synaptic_event"})
    else:
        for name in counts.synapses:
            lines.append(_line("synaptic_op", name, nodes[name]["synaptic_ops"], syn_fig))
    neuron_lines, reason = _neuron_lines(counts, nodes, profile)
    lines += neuron_lines
    if reason:
        missing.append({"operation": "neuron_update", "reason": reason})
    route_fig = _first(profile, ROUTING_FIGURES)
    slices = (mapping or {}).get("slices") or None
    if route_fig is None:
        missing.append({"operation": "spike_routing", "reason": f"profile {profile.name} has no spike routing figure "
                        f"({' or '.join('energy.' + n for n in ROUTING_FIGURES)})"})
    else:
        hops = [n for n in HOP_FIGURES if n in profile.energy]
        note = ("one message per destination core" if slices else "one message per spike (no core mapping)")
        note += "; mesh hops not counted (lower bound" + (f": each hop adds {', '.join(hops)})" if hops else ")")
        for src, n_msg in spike_messages(counts, slices).items():
            lines.append(_line("spike_routing", src, n_msg, route_fig, note, assume=True))
    total = sum(line["energy_J"] for line in lines)
    by_operation = {op: sum(x["energy_J"] for x in lines if x["operation"] == op) for op in OPERATIONS}
    by_node: dict[str, float] = {}
    for x in lines:
        by_node[x["node"]] = by_node.get(x["node"], 0.0) + x["energy_J"]
    step = step_time(profile)
    wall = None
    if step is not None:
        wall = {"step": step.to_json(), "per_inference_s": step.value * t, "latency_s": step.value * latency_steps,
                "flag": step.flag}
    static = None
    power = require_energy(profile, "chip_power", "W", "static energy") if "chip_power" in profile.energy else None
    if power is not None:
        chips = int((mapping or {}).get("chips") or (profile.limits.chips if profile.limits else 1) or 1)
        if step is not None:
            energy = power.value * chips * b * t * step.value
            static = {"figure": power.to_json(), "chips": chips, "energy_J": energy, "per_inference_J": energy / b,
                      "flag": weakest([power.flag, step.flag, "estimate"]),
                      "note": "chip power x chips used x wall time; not added to the dynamic total (it overlaps the "
                              "per-event figures)"}
        else:
            missing.append({"operation": "static", "reason": "chip_power given but no time per step"})
    flags = [x["flag"] for x in lines]
    return {
        "profile": profile.name, "path": profile.path, "description": profile.description,
        "lines": lines, "missing": missing, "total_J": total, "per_inference_J": total / b,
        "per_step_J": total / (b * t), "by_operation_J": by_operation,
        "by_operation_per_inference_J": {k: v / b for k, v in by_operation.items()},
        "by_node_per_inference_J": {k: v / b for k, v in by_node.items()},
        "flag": weakest(flags) if flags else "estimate", "static": static, "wall_time": wall,
        "wall_time_missing": None if wall else (f"profile {profile.name} gives no time per step "
                                                "(add a [timing.step] table, see neurodeploy/reports/figures.py)"),
    }


def reference_energy(counts: RunCounts, nodes: dict[str, dict], reference: Profile) -> dict[str, Any]:
    """ANN-equivalent baseline, the literature convention and NeuroBench-style AC energy, per inference."""
    b, t = max(counts.batch, 1), max(counts.steps, 1)
    mac32 = require_energy(reference, "mac_fp32", "J", "the ANN baseline and the literature convention")
    ac32 = require_energy(reference, "ac_fp32", "J", "the literature convention")
    mac8 = require_energy(reference, "mac_int8", "J", "the int8 ANN baseline")
    syn = {n: v for n, v in nodes.items() if v["kind"] == "synapse"}
    first = {n for n, v in syn.items() if nodes.get(v["source"], {}).get("kind") == "input"}
    ann_by_node = {n: v["dense_ops_per_step"] for n, v in syn.items()}
    macs = sum(ann_by_node.values())
    flops_first = {n: t * syn[n]["dense_ops_per_step"] for n in first}
    sops = {}
    for n, v in syn.items():
        if n in first:
            continue
        src = nodes[v["source"]]
        rate = src["spikes"] / (src["neurons"] * t * b) if src["neurons"] else 0.0
        sops[n] = rate * t * v["dense_ops_per_step"]
    lit_mac = mac32.value * sum(flops_first.values())
    lit_ac = ac32.value * sum(sops.values())
    eff_acs = sum(v["effective_acs"] for v in syn.values()) / b
    eff_macs = sum(v["effective_macs"] for v in syn.values()) / b
    convention = "Yao et al., Spike-driven Transformer V2 (ICLR 2024): E = E_MAC*FLOPs(first layer) + E_AC*sum SOPs"
    return {
        "profile": reference.name, "path": reference.path,
        "figures": {f.name: f.to_json() for f in (mac32, ac32, mac8)},
        "ann_fp32": {"macs_per_inference": macs, "per_inference_J": macs * mac32.value,
                     "by_node_J": {n: d * mac32.value for n, d in ann_by_node.items()}, "flag": mac32.flag,
                     "formula": "E_MAC(fp32) x dense MACs of one forward pass"},
        "ann_int8": {"macs_per_inference": macs, "per_inference_J": macs * mac8.value,
                     "by_node_J": {n: d * mac8.value for n, d in ann_by_node.items()}, "flag": mac8.flag,
                     "formula": "E_MAC(int8) x dense MACs of one forward pass"},
        "literature": {"first_layer_flops": sum(flops_first.values()), "sops": sum(sops.values()),
                       "sops_by_node": sops, "first_layer_nodes": sorted(first),
                       "per_inference_J": lit_mac + lit_ac, "mac_part_J": lit_mac, "ac_part_J": lit_ac,
                       "flag": weakest([mac32.flag, ac32.flag, "estimate"]), "source": convention,
                       "formula": "E_MAC x T x FLOPs(first layer) + E_AC x sum_l fr_l x T x FLOPs_l"},
        "neurobench_acs": {"effective_acs": eff_acs, "effective_macs": eff_macs,
                           "per_inference_J": eff_acs * ac32.value + eff_macs * mac32.value,
                           "flag": weakest([ac32.flag, mac32.flag]),
                           "formula": "E_AC x effective ACs + E_MAC x effective MACs (measured events)"},
    }
