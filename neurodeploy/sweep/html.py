"""The sweep's HTML page: accuracy-energy and accuracy-cores Pareto fronts and the results table.

One self-contained page in the energy report's style (its CSS, table markup and render check script, the SVG
palette and fonts of :mod:`neurodeploy.reports.svg`; no external assets). A scatter plot puts every compiled point
at (cost, quantized accuracy), coloured by target, each ``<circle class="point">`` with a ``<title>`` naming the
point and its values; the Pareto front (no other point is both cheaper and at least as accurate) is a
``<polyline class="series">`` through the front's points, which are listed in a table under the plot.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from neurodeploy.reports.html import page, table
from neurodeploy.reports.svg import FONT, PALETTE, si

from .reduce import COLUMNS


def pareto_front(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """The points ``(cost, accuracy, tag)`` no other point dominates (cheaper or equal cost with higher accuracy,
    or lower cost with equal accuracy), by increasing cost."""
    front: list[tuple[float, float, Any]] = []
    for cost, acc, tag in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            if front and front[-1][0] == cost:
                continue
            front.append((cost, acc, tag))
    return front


def _scale(values: list[float], span: float):
    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > 20:  # more than ~one decade: log axis
        a, b = math.floor(math.log10(lo)), max(math.ceil(math.log10(hi)), math.floor(math.log10(lo)) + 1)
        return (lambda v: span * (math.log10(v) - a) / (b - a)), [10.0 ** e for e in range(a, b + 1)]
    lo, hi = (0.0, hi) if lo >= 0 else (lo, hi)
    hi = hi if hi > lo else lo + 1.0
    return (lambda v: span * (v - lo) / (hi - lo)), [lo + (hi - lo) * f for f in (0, 0.25, 0.5, 0.75, 1.0)]


def scatter_front(name: str, title: str, rows: list[dict], cost: str, unit: str, width: int = 680) -> str:
    """The scatter plot of ``rows`` at (``row[cost]``, quantized accuracy) with its Pareto front."""
    left, bottom, top_pad, height = 60, 70, 30, 320
    plot_h, span = height - bottom - top_pad, width - left - 20
    pts = [r for r in rows if r["status"] == "ok" and r.get(cost) is not None and r["quantized_accuracy"] is not None
           and (r[cost] > 0 or unit == "")]
    out = [f'<svg class="plot" data-plot="{escape(name)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" {FONT}>', f"<title>{escape(title)}</title>",
           f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    if not pts:
        out.append(f'<text x="{left}" y="44">no compiled point has this figure</text></svg>')
        return "\n".join(out)
    xpos, xticks = _scale([float(r[cost]) for r in pts], span)
    accs = [r["quantized_accuracy"] for r in pts]
    ylo = max(0.0, math.floor(min(accs) * 10) / 10 - 0.05) if min(accs) > 0.1 else 0.0

    def ypos(v: float) -> float:
        return top_pad + plot_h * (1 - (v - ylo) / (1.0 - ylo))

    for t in xticks:
        x = left + xpos(t)
        label = si(t, unit) if unit else f"{t:.3g}"
        out.append(f'<line x1="{x:.1f}" y1="{top_pad}" x2="{x:.1f}" y2="{top_pad + plot_h}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle" font-size="10">'
                   f"{escape(label)}</text>")
    for f in (0, 0.5, 1.0):
        v = ylo + (1 - ylo) * f
        out.append(f'<line x1="{left}" y1="{ypos(v):.1f}" x2="{width - 20}" y2="{ypos(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{ypos(v) + 4:.1f}" text-anchor="end" font-size="10">{v * 100:.0f} %'
                   "</text>")
    out.append(f'<text x="{left + span / 2:.0f}" y="{top_pad + plot_h + 30}" text-anchor="middle" font-size="11">'
               f"{escape(cost)}</text>")
    out.append(f'<text x="14" y="{top_pad + plot_h / 2:.0f}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 14 {top_pad + plot_h / 2:.0f})">quantized accuracy</text>')
    targets = sorted({r["target"] for r in pts})
    for r in pts:
        colour = PALETTE[targets.index(r["target"]) % len(PALETTE)]
        value = si(r[cost], unit) if unit else str(r[cost])
        out.append(f'<circle class="point" cx="{left + xpos(r[cost]):.1f}" cy="{ypos(r["quantized_accuracy"]):.1f}" '
                   f'r="4" fill="{colour}" fill-opacity="0.75"><title>{escape(r["point"])}: accuracy '
                   f'{r["quantized_accuracy"] * 100:.1f} %, {escape(value)}</title></circle>')
    front = pareto_front([(float(r[cost]), r["quantized_accuracy"], r["point"]) for r in pts])
    coords = " ".join(f"{left + xpos(c):.1f},{ypos(a):.1f}" for c, a, _ in front)
    out.append(f'<polyline class="series" points="{coords}" fill="none" stroke="#222" stroke-width="1.5" '
               f'stroke-dasharray="4 3"><title>Pareto front: {len(front)} points</title></polyline>')
    x = float(left)
    for k, t in enumerate(targets + ["Pareto front"]):
        colour = PALETTE[k % len(PALETTE)] if k < len(targets) else "#222"
        out.append(f'<rect x="{x:.0f}" y="{height - 22}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{height - 13}" font-size="11">{escape(t)}</text>')
        x += 24 + 7 * len(t)
    out.append("</svg>")
    return "\n".join(out)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "–"
    if column == "energy_per_inference_J":
        return escape(si(value, "J"))
    if column in ("float_accuracy", "quantized_accuracy", "agreement"):
        return f"{value * 100:.2f} %"
    if isinstance(value, float):
        return f"{value:.3g}"
    return escape(str(value))


def _front_table(rows: list[dict], cost: str, unit: str) -> str:
    pts = [(float(r[cost]), r["quantized_accuracy"], r["point"]) for r in rows
           if r["status"] == "ok" and r.get(cost) is not None and r["quantized_accuracy"] is not None]
    front = pareto_front(pts)
    body = [[escape(p), escape(si(c, unit)) if unit else f"{c:g}", f"{a * 100:.2f} %"] for c, a, p in front]
    return table(["point on the front", cost, "quantized accuracy"], body, cls="front")


def render_html(doc: dict[str, Any]) -> str:
    """The page as a string (UTF-8, no external references)."""
    rows = doc["rows"]
    title = f"neurodeploy sweep: {doc['name']}"
    t = doc["tasks"]
    errors = [r for r in rows if r["status"] != "ok"]
    shown = [c for c in COLUMNS if c not in ("error", "error_type")]
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>{doc['points']} grid points from {escape(doc['sweep'])}, evaluated on {doc['samples']} test samples "
            f"(shards of {doc['shard_size']}; decode {escape(doc['decode'])}, readout {escape(doc['readout'])}); "
            f"{len(errors)} points failed to compile. Tasks: {t['total']} ({t['cached']} from the cache, {t['run']} "
            f"run) on {escape(doc['executor']['kind'])}. Code version {escape(doc['code_version'][:12])}.</p>",
            '<p id="render-check" class="note">render check: not run (scripts disabled)</p>',
            "<h2>Pareto fronts</h2>", '<div class="plots">',
            scatter_front("accuracy-energy", "quantized accuracy vs energy per inference", rows,
                          "energy_per_inference_J", "J"),
            scatter_front("accuracy-cores", "quantized accuracy vs cores", rows, "cores", ""), "</div>",
            "<h2>Front: accuracy vs energy</h2>", _front_table(rows, "energy_per_inference_J", "J"),
            "<h2>Front: accuracy vs cores</h2>", _front_table(rows, "cores", ""),
            '<p class="note">energy: dynamic energy per inference on the point\'s energy profile (emulator counts x '
            "the profile's per-operation figures, see neurodeploy report energy); cores and chips: that profile's "
            "core mapping; accuracy: quantized emulator.</p>",
            "<h2>All points</h2>", table(shown, [[_cell(r[c], c) for c in shown] for r in rows], cls="results")]
    if errors:
        body += ["<h2>Failed points</h2>",
                 table(["point", "error"], [[escape(r["point"]), escape(f"{r['error_type']}: {r['error']}")]
                                            for r in errors], cls="errors")]
    return page(title, body)
