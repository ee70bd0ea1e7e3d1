"""Write a sweep's results: ``results.json`` (the whole document), ``results.csv`` (one row per grid point, the
columns of :data:`neurodeploy.sweep.reduce.COLUMNS`), ``results.html`` (:mod:`neurodeploy.sweep.html`), and the
terminal table. Files are written atomically; floats are written with ``repr`` (they read back exactly)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .reduce import COLUMNS


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text (header first; None as an empty cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                         for c in COLUMNS])
    return buf.getvalue()


def write_results(doc: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, results.csv and results.html into ``out_dir``; return their paths."""
    from neurodeploy.artifact import dump_json
    from neurodeploy.fileio import write_bytes_atomic

    from .html import render_html

    out = Path(out_dir)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "html": out / "results.html"}
    write_bytes_atomic(paths["json"], dump_json(doc).encode())
    write_bytes_atomic(paths["csv"], to_csv(doc["rows"]).encode())
    write_bytes_atomic(paths["html"], render_html(doc).encode("utf-8"))
    return paths


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _energy(x: float | None) -> str:
    from neurodeploy.reports.svg import si

    return "-" if x is None else si(x, "J")


def render_table(doc: dict[str, Any], width: int = 60) -> str:
    """The terminal table: one line per point, errors shortened to ``width`` characters."""
    header = ["point", "float %", "quant %", "agree %", "energy/inf", "cores", "chips", "status"]
    lines = []
    for r in doc["rows"]:
        status = "ok" if r["status"] == "ok" else f"{r['error_type']}: {r['error']}"
        if len(status) > width:
            status = status[: width - 1] + "…"
        lines.append([r["point"], _pct(r["float_accuracy"]), _pct(r["quantized_accuracy"]), _pct(r["agreement"]),
                      _energy(r["energy_per_inference_J"]), "-" if r["cores"] is None else str(r["cores"]),
                      "-" if r["chips"] is None else str(r["chips"]), status])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = [f"{{:<{w}}}" if i in (0, len(header) - 1) else f"{{:>{w}}}" for i, w in enumerate(widths)]
    out = ["  ".join(f.format(h) for f, h in zip(fmt, header)).rstrip()]
    out += ["  ".join(f.format(c) for f, c in zip(fmt, line)).rstrip() for line in lines]
    t = doc["tasks"]
    errors = sum(r["status"] != "ok" for r in doc["rows"])
    out.append(f"{doc['points']} points ({errors} failed), {doc['samples']} test samples; tasks: {t['total']} "
               f"({t['cached']} cached, {t['run']} run)")
    return "\n".join(out)
