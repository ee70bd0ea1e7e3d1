"""The energy report as one self-contained HTML page: inline CSS and SVG, no CDN, nothing fetched.

Plots: spikes per inference per node, spikes per step per node, energy per inference per profile and reference
(log scale), the energy breakdown by operation type and by node, and per-core utilisation and activity for
every profile with a core mapping. Tables: counts per node, NeuroBench metrics, energy lines (count x figure with
source and flag), references, every figure's source, and the ``neurodeploy profile`` run when given.

A small inline script (no network, no dependencies) checks after load that every plot has a non-empty rendered
box and records the result and any script error on ``<body>`` (``data-plots``, ``data-plots-rendered``,
``data-tables``, ``data-errors``) and in ``#render-check`` -- what tests/test_report_browser.py reads from
headless Chromium's DOM.
"""

from __future__ import annotations

from html import escape
from typing import Any

from neurodeploy.profiling import wall_times

from .svg import bar_chart, grouped_bars, line_chart, si, stacked_bars

MAX_CORES = 64
CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.flag { font-size: 0.8em; padding: 1px 5px; border-radius: 3px; color: #fff; white-space: nowrap; }
.measured { background: #3ca951; } .simulated { background: #4269d0; } .estimate { background: #b07d00; }
.proxy { background: #c0392b; } .plots { display: flex; flex-wrap: wrap; gap: 12px; }
.src { font-size: 0.8em; color: #555; text-align: left; } .note { color: #555; font-size: 0.9em; }
table.lines td:last-child, table.references td:last-child, table.sources td:last-child { text-align: left; }
td { white-space: nowrap; } td:last-child { white-space: normal; }
"""
SCRIPT_HEAD = """
window.__reportErrors = [];
window.addEventListener('error', function (e) { window.__reportErrors.push(String(e.message || e)); });
"""
SCRIPT_CHECK = """
(function () {
  var plots = document.querySelectorAll('svg.plot'), rendered = 0;
  for (var i = 0; i < plots.length; i++) {
    var box = plots[i].getBoundingClientRect(), marks = plots[i].querySelectorAll('rect.bar, polyline.series');
    if (box.width > 0 && box.height > 0 && marks.length > 0 && marks[0].getBBox().width >= 0) rendered++;
  }
  var body = document.body, tables = document.querySelectorAll('table').length;
  body.setAttribute('data-plots', String(plots.length));
  body.setAttribute('data-plots-rendered', String(rendered));
  body.setAttribute('data-tables', String(tables));
  body.setAttribute('data-errors', String(window.__reportErrors.length));
  document.getElementById('render-check').textContent = 'render check: ' + rendered + ' of ' + plots.length +
    ' plots rendered, ' + tables + ' tables, ' + window.__reportErrors.length + ' script errors';
})();
"""


def _flag(flag: str) -> str:
    return f'<span class="flag {escape(flag)}">{escape(flag)}</span>'


def table(header: list[str], rows: list[list[Any]], left: int = 1, cls: str = "") -> str:
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row))
                   + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _n(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.3g}"


def _counts_section(report: dict[str, Any]) -> list[str]:
    nodes, b = report["counts"]["nodes"], max(report["input"]["samples"], 1)
    out = ["<h2>Counts per inference</h2>",
           f'<p class="note">{_flag(report["counts"]["flag"])} {escape(report["counts"]["source"])}; '
           "definitions in neurodeploy/reports/counts.py.</p>"]
    rows = [[escape(n), escape(v["op"]), v["neurons"], _n(v["spikes"] / b), f"{v['activation_sparsity']:.3f}",
             _n(v.get("neuron_updates", 0) / b), _n(v.get("active_updates", 0) / b), v["footprint_bytes"]]
            for n, v in nodes.items() if v["kind"] in ("input", "neuron")]
    out.append(table(["node", "op", "neurons", "spikes", "activation sparsity", "neuron updates", "active updates",
                       "footprint B"], rows, left=2, cls="counts-neurons"))
    rows = [[escape(n), escape(v["op"]), escape(f"{v['source']} → {v['target']}"), _n(v["synapses"]),
             _n(v["synaptic_ops"] / b), _n(v["effective_acs"] / b), _n(v["effective_macs"] / b),
             _n(v["dense_ops"] / b), f"{v['connection_sparsity']:.3f}", v["footprint_bytes"]]
            for n, v in nodes.items() if v["kind"] == "synapse"]
    out.append(table(["synapse", "op", "edge", "synapses", "synaptic ops", "effective ACs", "effective MACs",
                       "dense ops", "connection sparsity", "footprint B"], rows, left=3, cls="counts-synapses"))
    nb = report["neurobench"]
    out.append("<h2>NeuroBench metrics (per sample)</h2>")
    out.append(table(["metric", "value"], [
        ["Effective ACs", _n(nb["effective_acs"])], ["Effective MACs", _n(nb["effective_macs"])],
        ["Dense synaptic ops", _n(nb["dense_ops"])], ["Activation sparsity", f"{nb['activation_sparsity']:.4f}"],
        ["Connection sparsity", f"{nb['connection_sparsity']:.4f}"], ["Footprint (bytes)", nb["footprint_bytes"]]],
        cls="neurobench"))
    out.append(f'<p class="src">{_flag(nb["flag"])} {escape(nb["source"])}</p>')
    return out


def _energy_section(report: dict[str, Any]) -> list[str]:
    out = ["<h2>Energy per inference</h2>"]
    rows = []
    for p in report["profiles"]:
        ops, wall = p["by_operation_per_inference_J"], p["wall_time"]
        absent = {m["operation"] for m in p["missing"]}
        part = {k: "n/a" if k in absent else si(v, "J") for k, v in ops.items()}
        rows.append([escape(p["profile"]), si(p["per_inference_J"], "J"), si(p["per_step_J"], "J"),
                     part["synaptic_op"], part["neuron_update"], part["spike_routing"],
                     si(p["static"]["per_inference_J"], "J") + " " + _flag(p["static"]["flag"]) if p["static"] else "–",
                     _flag(p["flag"]),
                     (si(wall["per_inference_s"], "s") + " " + _flag(wall["flag"])) if wall else "n/a",
                     (si(wall["latency_s"], "s")) if wall else "n/a"])
    out.append(table(["profile", "per inference", "per step", "synaptic ops", "neuron updates", "spike routing",
                       "static (separate)", "flag", "wall time / inference", "latency"], rows, cls="energy"))
    notes = []
    for p in report["profiles"]:
        notes += [f"{escape(p['profile'])}: no {escape(m['operation'])} energy – {escape(m['reason'])}"
                  for m in p["missing"]]
        if not p["wall_time"]:
            notes.append(f"{escape(p['profile'])}: wall time n/a – {escape(p['wall_time_missing'])}")
        if p.get("mapping") and p["mapping"].get("error"):
            notes.append(f"{escape(p['profile'])}: no core mapping – {escape(p['mapping']['error'])}")
    if notes:
        out.append('<ul class="note">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul>")
    ref = report["reference"]
    out.append(f"<h2>References ({escape(ref['profile'])})</h2>")
    rows = [["ANN fp32", si(ref["ann_fp32"]["per_inference_J"], "J"), _flag(ref["ann_fp32"]["flag"]),
             escape(ref["ann_fp32"]["formula"]) + f" ({_n(ref['ann_fp32']['macs_per_inference'])} MACs)"],
            ["ANN int8", si(ref["ann_int8"]["per_inference_J"], "J"), _flag(ref["ann_int8"]["flag"]),
             escape(ref["ann_int8"]["formula"]) + f" ({_n(ref['ann_int8']['macs_per_inference'])} MACs)"],
            ["SNN literature convention", si(ref["literature"]["per_inference_J"], "J"),
             _flag(ref["literature"]["flag"]),
             escape(ref["literature"]["formula"]) + f" ({_n(ref['literature']['first_layer_flops'])} FLOPs, "
             f"{_n(ref['literature']['sops'])} SOPs; {escape(ref['literature']['source'])})"],
            ["SNN effective ACs (NeuroBench)", si(ref["neurobench_acs"]["per_inference_J"], "J"),
             _flag(ref["neurobench_acs"]["flag"]), escape(ref["neurobench_acs"]["formula"])]]
    out.append(table(["model", "per inference", "flag", "formula"], rows, cls="references"))
    for p in report["profiles"]:
        out.append(f"<h3>{escape(p['profile'])}: energy lines (count × figure)</h3>")
        b = max(report["input"]["samples"], 1)
        rows = [[escape(x["operation"]), escape(x["node"]), _n(x["count"] / b),
                 si(x["figure"]["value"], x["figure"]["unit"]), si(x["energy_J"] / b, "J"), _flag(x["flag"]),
                 f'<span class="src">{escape(x["figure"]["source"])}'
                 + (f" — {escape(x['note'])}" if x.get("note") else "") + "</span>"] for x in p["lines"]]
        out.append(table(["operation", "node", "count / inference", "figure", "energy / inference", "flag",
                           "source"], rows, left=2, cls="lines"))
    return out


def _plots(report: dict[str, Any]) -> list[str]:
    nodes, b = report["counts"]["nodes"], max(report["input"]["samples"], 1)
    spiking = {n: v for n, v in nodes.items() if v["kind"] in ("input", "neuron")}
    plots = [bar_chart("spikes-per-layer", "Spikes per inference per layer",
                       [(n, v["spikes"] / b) for n, v in spiking.items()], ""),
             line_chart("spikes-per-step", "Spikes per step (mean over samples)",
                        {n: [x / b for x in v["spikes_per_step"]] for n, v in spiking.items()}, "step",
                        "spikes")]
    ref = report["reference"]
    totals = [(p["profile"], p["per_inference_J"]) for p in report["profiles"]]
    totals += [("ANN fp32 (45 nm)", ref["ann_fp32"]["per_inference_J"]),
               ("ANN int8 (45 nm)", ref["ann_int8"]["per_inference_J"]),
               ("SNN literature (45 nm)", ref["literature"]["per_inference_J"]),
               ("SNN eff. ACs (45 nm)", ref["neurobench_acs"]["per_inference_J"])]
    plots.append(bar_chart("energy-totals", "Energy per inference (log scale)", totals, "J", log=True))
    plots.append(stacked_bars("energy-breakdown", "Energy breakdown by operation type",
                              [(p["profile"], p["by_operation_J"]) for p in report["profiles"]],
                              ["synaptic_op", "neuron_update", "spike_routing"]))
    plots.append(stacked_bars("energy-per-node", "Energy share by node",
                              [(p["profile"], p["by_node_per_inference_J"]) for p in report["profiles"]],
                              list(nodes)))
    for p in report["profiles"]:
        cores = p.get("cores") or []
        if not cores:
            continue
        shown = cores[:MAX_CORES]
        labels = [f"{c['core']}:{c['node']}" for c in shown]
        metrics = sorted({k for c in shown for k in c.get("utilisation", {})})
        title = f"{p['profile']}: per-core utilisation" + (f" (first {MAX_CORES} of {len(cores)})"
                                                              if len(cores) > MAX_CORES else "")
        if metrics:
            plots.append(grouped_bars(f"core-utilisation-{p['profile']}", title, labels,
                                      {m: [c.get("utilisation", {}).get(m, 0.0) for c in shown] for m in metrics},
                                      percent=True))
        steps = max(report["input"]["steps"], 1)
        plots.append(grouped_bars(f"core-activity-{p['profile']}", f"{p['profile']}: per-core activity per step",
                                  labels, {"synaptic ops in": [c["synaptic_ops_in"] / (b * steps) for c in shown],
                                           "spike messages out": [c["spike_messages"] / (b * steps) for c in shown]}))
    return plots


def _cores_section(report: dict[str, Any]) -> list[str]:
    out = []
    b = max(report["input"]["samples"], 1)
    for p in report["profiles"]:
        mapping = p.get("mapping")
        if not mapping:
            continue
        out.append(f"<h3>{escape(p['profile'])}: cores</h3>")
        if mapping.get("error"):
            out.append(f'<p class="note">{escape(mapping["error"])}</p>')
            continue
        out.append(f'<p class="note">{mapping["cores"]} cores on {mapping["chips"]} chip(s); '
                   f'{escape(mapping["source"])}</p>')
        rows = [[c["core"], escape(c["node"]), escape(c["kind"]), f"{c['start']}–{c['stop'] - 1}", c["neurons"],
                 _n(c["spikes"] / b), _n(c["synaptic_ops_in"] / b), _n(c["spike_messages"] / b),
                 _n(c["neuron_updates"] / b),
                 ", ".join(f"{k} {v * 100:.1f} %" for k, v in sorted(c.get("utilisation", {}).items()))]
                for c in p["cores"][:MAX_CORES * 4]]
        out.append(table(["core", "node", "kind", "neurons", "n", "spikes", "synaptic ops in", "messages out",
                           "neuron updates", "utilisation"], rows, left=3, cls="cores"))
    return out


def _sources_section(report: dict[str, Any]) -> list[str]:
    rows = [[escape(f["name"]), si(f["value"], f["unit"]), _flag(f["flag"]),
             f'<span class="src">{escape(f["source"])}' + (f" — {escape(f['note'])}" if f.get("note") else "")
             + "</span>"] for f in report["figures"]]
    out = ["<h2>Figures and sources</h2>",
           '<p class="note">Flags, weakest last: measured (silicon) &lt; simulated &lt; estimate (derived or '
           "assumed) &lt; proxy (borrowed from another chip).</p>",
           table(["figure", "value", "flag", "source"], rows, cls="sources")]
    run = report.get("profile_run")
    if run:
        out.append("<h2>Profile run</h2>")
        rows = [["path", escape(str(run.get("path")))], ["backend", escape(str(run.get("backend")))],
                ["equal to the emulator", escape(str(run.get("equal")))],
                ["batch × steps", f"{run.get('batch')} × {run.get('steps')}"],
                *[[f"{escape(name)} wall time per step", si(seconds, "s") + " " + _flag("measured")]
                  for name, seconds in wall_times(run)],
                ["total synaptic ops", _n(run.get("total_synaptic_ops", 0))]]
        out.append(table(["field", "value"], rows, cls="profile-run"))
        out.append(f'<p class="note">{escape(run.get("note", ""))}</p>')
    return out


def render_html(report: dict[str, Any]) -> str:
    """The whole page as a string (UTF-8, no external references)."""
    art, inp, lat = report["artifact"], report["input"], report["latency"]
    to_out = max(lat["steps_to_output"].values()) if lat["steps_to_output"] else 0
    title = f"neurodeploy energy report: {art['path'] or 'graph'}"
    body = [f"<h1>{escape(title)}</h1>",
            f'<p>target {escape(str(art["target"]))}, compiled profile {escape(str(art["profile"]))}; stimulus '
            f'{escape(str(inp["path"]))}: {inp["samples"]} samples × {inp["steps"]} steps. Latency {to_out} steps '
            f'from a stimulus column to the output; {lat["steps_per_inference"]} steps per inference.</p>',
            '<p id="render-check" class="note">render check: not run (scripts disabled)</p>',
            "<h2>Plots</h2>", '<div class="plots">', *_plots(report), "</div>"]
    body += _energy_section(report) + _counts_section(report)
    cores = _cores_section(report)
    if cores:
        body += ["<h2>Cores</h2>", *cores]
    body += _sources_section(report)
    return page(title, body)


def page(title: str, body: list[str]) -> str:
    """A self-contained HTML page: the report's CSS, a Content-Security-Policy that allows nothing to be fetched,
    and the render check script around ``body`` (a list of HTML fragments)."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        "script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}</title>", f"<style>{CSS}</style>", f"<script>{SCRIPT_HEAD}</script>",
        "</head><body>", *body, f"<script>{SCRIPT_CHECK}</script>", "</body></html>", ""])
