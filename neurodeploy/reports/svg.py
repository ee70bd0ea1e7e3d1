"""Inline SVG plots for the HTML report: plain markup, no scripts, no external fonts or files.

Every plot is an ``<svg class="plot" data-plot="NAME">`` with a ``<title>``; bars are ``<rect class="bar">`` and
lines ``<polyline class="series">``, each with a ``<title>`` holding its exact value (shown on hover).
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e",
           "#9498a0")
FONT = 'font-family="sans-serif" font-size="12"'


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix: ``si(2.3e-9, "J") == "2.3 nJ"``; three significant digits."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".strip()
    prefixes = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"),
                (1e-15, "f"))
    for factor, prefix in prefixes:
        if abs(value) >= factor * 0.9995:
            return f"{value / factor:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def _open(name: str, title: str, width: int, height: int) -> list[str]:
    return [f'<svg class="plot" data-plot="{escape(name)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" {FONT}>',
            f"<title>{escape(title)}</title>",
            f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-weight="bold">{escape(title)}</text>']


def _label(text: str, limit: int = 26) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def bar_chart(name: str, title: str, items: list[tuple[str, float]], unit: str, log: bool = False,
              width: int = 680) -> str:
    """Horizontal bars, one per ``(label, value)``; ``log`` puts the axis on decades (values <= 0 are skipped)."""
    items = [(k, float(v)) for k, v in items if not log or v > 0]
    left, right, row = 190, 90, 22
    height = 40 + row * max(len(items), 1) + 30
    out = _open(name, title, width, height)
    span = width - left - right
    if not items:
        out.append(f'<text x="{left}" y="44">no data</text></svg>')
        return "\n".join(out)
    values = [v for _, v in items]
    if log:
        lo = math.floor(math.log10(min(values)))
        hi = max(math.ceil(math.log10(max(values))), lo + 1)

        def pos(v: float) -> float:
            return span * (math.log10(v) - lo) / (hi - lo)

        ticks = [(span * (e - lo) / (hi - lo), si(10.0 ** e, unit)) for e in range(lo, hi + 1)]
    else:
        top = max(max(values), 0.0) or 1.0

        def pos(v: float) -> float:
            return span * max(v, 0.0) / top

        ticks = [(span * f, si(top * f, unit)) for f in (0, 0.25, 0.5, 0.75, 1.0)]
    axis_y = 30 + row * len(items) + 6
    for x, text in ticks:
        out.append(f'<line x1="{left + x:.1f}" y1="28" x2="{left + x:.1f}" y2="{axis_y}" stroke="#ddd"/>')
        out.append(f'<text x="{left + x:.1f}" y="{axis_y + 14}" text-anchor="middle" font-size="10">'
                   f"{escape(text)}</text>")
    for i, (label, value) in enumerate(items):
        y = 30 + row * i
        w = max(pos(value), 1.0)
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{_label(label)}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
                   f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(label)}: {escape(si(value, unit))}</title>'
                   "</rect>")
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="11">{escape(si(value, unit))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def stacked_bars(name: str, title: str, rows: list[tuple[str, dict[str, float]]], segments: list[str],
                 width: int = 680) -> str:
    """Horizontal 100 % stacked bars: each row's segments as shares of the row total (legend below)."""
    left, right, row = 190, 20, 24
    height = 40 + row * max(len(rows), 1) + 40
    out = _open(name, title, width, height)
    span = width - left - right
    for i, (label, parts) in enumerate(rows):
        y = 30 + row * i
        total = sum(max(parts.get(s, 0.0), 0.0) for s in segments)
        out.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{_label(label)}</text>')
        x = float(left)
        if total <= 0:
            out.append(f'<text x="{left}" y="{y + 16}" font-size="11">no energy figures</text>')
            continue
        for j, seg in enumerate(segments):
            share = max(parts.get(seg, 0.0), 0.0) / total
            if share <= 0:
                continue
            w = span * share
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{row - 6}" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} {escape(seg)}: '
                       f"{share * 100:.1f} %</title></rect>")
            x += w
    y = 30 + row * len(rows) + 14
    x = float(left)
    for j, seg in enumerate(segments):
        out.append(f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{y + 9}" font-size="11">{escape(seg)}</text>')
        x += 24 + 7 * len(seg)
    out.append("</svg>")
    return "\n".join(out)


def grouped_bars(name: str, title: str, categories: list[str], series: dict[str, list[float]], unit: str = "",
                 percent: bool = False, width: int = 680) -> str:
    """Vertical bars grouped by category (e.g. one group per core, one bar per utilisation metric)."""
    left, bottom, top_pad = 50, 60, 30
    height = 260
    out = _open(name, title, width, height)
    plot_h = height - bottom - top_pad
    span = width - left - 20
    values = [v for vs in series.values() for v in vs]
    top = max(values + [0.0]) or 1.0
    if percent:
        top = max(top, 1.0)
    for f in (0, 0.25, 0.5, 0.75, 1.0):
        y = top_pad + plot_h * (1 - f)
        text = f"{top * f * 100:.0f} %" if percent else si(top * f, unit)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{escape(text)}</text>')
    n_cat, n_ser = max(len(categories), 1), max(len(series), 1)
    group = span / n_cat
    bar = max(group * 0.8 / n_ser, 1.0)
    for c, cat in enumerate(categories):
        gx = left + group * c + group * 0.1
        for s, (label, vs) in enumerate(series.items()):
            v = max(vs[c], 0.0)
            h = plot_h * v / top
            text = f"{v * 100:.1f} %" if percent else si(v, unit)
            out.append(f'<rect class="bar" x="{gx + bar * s:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar:.1f}" '
                       f'height="{max(h, 0.5):.1f}" fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(cat)} '
                       f"{escape(label)}: {escape(text)}</title></rect>")
        if n_cat <= 32:
            out.append(f'<text x="{gx + group * 0.4:.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle" '
                       f'font-size="10">{_label(cat, 12)}</text>')
    out.extend(_legend(series, left, height))
    out.append("</svg>")
    return "\n".join(out)


def _legend(series, left: int, height: int) -> list[str]:
    """A colour swatch and the label of every series, in one row along the bottom edge."""
    out, x = [], float(left)
    for k, label in enumerate(series):
        out.append(f'<rect x="{x:.0f}" y="{height - 22}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{height - 13}" font-size="11">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return out


def line_chart(name: str, title: str, series: dict[str, list[float]], xlabel: str, ylabel: str,
               width: int = 680) -> str:
    """One polyline per series over x = 1, 2, ... (e.g. spikes per step of each node)."""
    left, bottom, top_pad = 60, 70, 30
    height = 280
    out = _open(name, title, width, height)
    plot_h, span = height - bottom - top_pad, width - left - 20
    n = max((len(v) for v in series.values()), default=0)
    top = max([max(v) for v in series.values() if len(v)] + [0.0]) or 1.0
    for f in (0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - f)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{top * f:.3g}</text>')
    out.append(f'<text x="{left + span / 2:.0f}" y="{top_pad + plot_h + 28}" text-anchor="middle" font-size="11">'
               f"{escape(xlabel)}</text>")
    out.append(f'<text x="14" y="{top_pad + plot_h / 2:.0f}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 14 {top_pad + plot_h / 2:.0f})">{escape(ylabel)}</text>')
    for k, (label, values) in enumerate(series.items()):
        if not len(values):
            continue
        pts = " ".join(f"{left + span * (i / max(n - 1, 1)):.1f},{top_pad + plot_h * (1 - v / top):.1f}"
                       for i, v in enumerate(values))
        out.append(f'<polyline class="series" points="{pts}" fill="none" stroke="{PALETTE[k % len(PALETTE)]}" '
                   f'stroke-width="2"><title>{escape(label)}: max {max(values):.3g}</title></polyline>')
    out.extend(_legend(series, left, height))
    out.append("</svg>")
    return "\n".join(out)
