"""The terminal summary of an energy report: counts, NeuroBench metrics, energy per profile, references, sources."""

from __future__ import annotations

from typing import Any

from neurodeploy.profiling import wall_times

from .svg import si


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    def fmt(row: list) -> str:
        return "  " + "  ".join(f"{c!s:<{w}}" if i == 0 else f"{c!s:>{w}}" for i, (c, w) in enumerate(zip(row, widths)))

    return [fmt(header)] + [fmt(r) for r in rows]


def _n(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.3g}"


def render_text(report: dict[str, Any]) -> str:
    """A plain-text summary of :func:`~neurodeploy.reports.report.energy_report`'s dict."""
    art, inp, lat = report["artifact"], report["input"], report["latency"]
    b = max(inp["samples"], 1)
    nodes = report["counts"]["nodes"]
    to_out = max(lat["steps_to_output"].values()) if lat["steps_to_output"] else 0
    lines = [f"energy report: {art['path'] or '(graph)'} (target {art['target']}, profile {art['profile']}), "
             f"{inp['samples']} samples x {inp['steps']} steps",
             f"latency: {to_out} steps from a stimulus column to the output; {lat['steps_per_inference']} steps per "
             "inference",
             "",
             f"counts per inference [simulated: {report['counts']['source']}]"]
    rows = [[name, v["op"], v["neurons"], _n(v["spikes"] / b), f"{v['activation_sparsity']:.3f}",
             f"{v['active_updates'] / v['neuron_updates']:.2f}" if v.get("neuron_updates") else "-"]
            for name, v in nodes.items() if v["kind"] in ("input", "neuron")]
    lines += _table(["node", "op", "neurons", "spikes", "act.sparsity", "active upd."], rows)
    rows = [[name, v["op"], f"{v['source']} -> {v['target']}", _n(v["synapses"]), _n(v["synaptic_ops"] / b),
             _n(v["dense_ops"] / b), f"{v['connection_sparsity']:.3f}", v["footprint_bytes"]]
            for name, v in nodes.items() if v["kind"] == "synapse"]
    lines += _table(["synapse", "op", "edge", "synapses", "synaptic ops", "dense ops", "conn.sparsity",
                     "bytes"], rows)
    nb = report["neurobench"]
    lines += ["", f"NeuroBench (per sample): effective ACs {_n(nb['effective_acs'])}, effective MACs "
              f"{_n(nb['effective_macs'])}, dense ops {_n(nb['dense_ops'])}, activation sparsity "
              f"{nb['activation_sparsity']:.3f}, connection sparsity {nb['connection_sparsity']:.3f}, footprint "
              f"{nb['footprint_bytes']} B", ""]
    lines.append("energy per inference (dynamic; counts x per-operation figures) and time")
    rows = []
    for p in report["profiles"]:
        ops = p["by_operation_per_inference_J"]
        absent = {m["operation"] for m in p["missing"]}
        part = {k: "n/a" if k in absent else si(v, "J") for k, v in ops.items()}
        wall = p["wall_time"]
        rows.append([p["profile"], si(p["per_inference_J"], "J"), si(p["per_step_J"], "J"),
                     part["synaptic_op"], part["neuron_update"], part["spike_routing"],
                     p["flag"], f"{si(wall['per_inference_s'], 's')} [{wall['flag']}]" if wall else "n/a",
                     (f"{p['mapping']['cores']}" if p.get("mapping") and "cores" in p["mapping"] else "-")])
    lines += _table(["profile", "E/inference", "E/step", "synaptic op", "neuron upd.", "routing", "flag",
                     "wall/inference", "cores"], rows)
    for p in report["profiles"]:
        if p.get("static"):
            s = p["static"]
            lines.append(f"  {p['profile']}: static {si(s['per_inference_J'], 'J')} per inference "
                         f"[{s['flag']}] ({s['note']})")
        for m in p["missing"]:
            lines.append(f"  {p['profile']}: no {m['operation']} energy: {m['reason']}")
        if p.get("mapping") and p["mapping"].get("error"):
            lines.append(f"  {p['profile']}: no core mapping: {p['mapping']['error']}")
        if not p["wall_time"]:
            lines.append(f"  {p['profile']}: wall time n/a: {p['wall_time_missing']}")
    ref = report["reference"]
    lines += ["", f"references per inference ({ref['profile']})"]
    rows = [["ANN fp32", si(ref["ann_fp32"]["per_inference_J"], "J"), ref["ann_fp32"]["flag"],
             f"{_n(ref['ann_fp32']['macs_per_inference'])} MACs x E_MAC(fp32)"],
            ["ANN int8", si(ref["ann_int8"]["per_inference_J"], "J"), ref["ann_int8"]["flag"],
             f"{_n(ref['ann_int8']['macs_per_inference'])} MACs x E_MAC(int8)"],
            ["SNN literature", si(ref["literature"]["per_inference_J"], "J"), ref["literature"]["flag"],
             f"E_MAC x {_n(ref['literature']['first_layer_flops'])} FLOPs(first) + E_AC x "
             f"{_n(ref['literature']['sops'])} SOPs"],
            ["SNN effective ACs", si(ref["neurobench_acs"]["per_inference_J"], "J"), ref["neurobench_acs"]["flag"],
             f"E_AC x {_n(ref['neurobench_acs']['effective_acs'])} ACs + E_MAC x "
             f"{_n(ref['neurobench_acs']['effective_macs'])} MACs"]]
    lines += _table(["model", "E/inference", "flag", "formula"], rows)
    run = report.get("profile_run")
    if run:
        equal = {True: "equal to the emulator", False: "DIFFERENT from the emulator", None: "statistical"}.get(
            run.get("equal"), "?")
        times = ", ".join(f"{si(seconds, 's')} ({name})" for name, seconds in wall_times(run))
        lines += ["", f"profile run ({run['path']}): backend {run['backend']} {equal}; host wall time per step "
                  f"{times} [measured on the host]"]
    lines += ["", "figures (flag: measured < simulated < estimate < proxy)"]
    for fig in report["figures"]:
        lines.append(f"  [{fig['flag']}] {fig['name']} = {si(fig['value'], fig['unit'])}: {fig['source']}")
    return "\n".join(lines)
