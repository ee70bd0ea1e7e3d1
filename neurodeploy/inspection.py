"""What ``neurodeploy inspect`` shows: nodes, shapes, integer parameters, bit widths, quantization error."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.passes.diagnose import render as render_findings

_SKIP = {"origin", "quant"}


def _summarise(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return value.tolist()
        summary: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        if value.size:
            summary.update(min=value.min().item(), max=value.max().item(), nonzero=int(np.count_nonzero(value)))
        return summary
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(artifact: Artifact) -> dict[str, Any]:
    graph = artifact.graph
    shapes = graph.shapes()
    nodes = []
    for name, op in graph.nodes.items():
        params = {f.name: _summarise(getattr(op, f.name)) for f in fields(op) if f.name not in _SKIP}
        entry: dict[str, Any] = {"name": name, "op": op.op_type, "shape": list(shapes[name]), "origin": op.origin,
                                 "inputs": graph.predecessors(name), "params": params}
        quant = getattr(op, "quant", None)
        if quant is not None:
            entry["quant"] = {"scale": quant.scale, "bits": quant.bits, "error": quant.error}
        nodes.append(entry)
    return {"target": artifact.manifest.get("target"), "profile": artifact.manifest.get("profile"),
            "inputs": artifact.manifest.get("inputs"), "outputs": artifact.manifest.get("outputs"),
            "latency_steps": artifact.manifest.get("latency_steps"), "nodes": nodes,
            "quantization": artifact.quantization, "mapping": artifact.manifest.get("mapping")}


def render_text(info: dict[str, Any]) -> str:
    lines = [f"target {info['target']} (profile {info['profile']}), inputs {info['inputs']}, "
             f"outputs {info['outputs']}, latency {info['latency_steps']} steps", ""]
    header = f"{'node':<24} {'op':<8} {'shape':<16} {'bits':<34} {'rel. error':<30} origin"
    lines += [header, "-" * len(header)]
    for node in info["nodes"]:
        quant = node.get("quant") or {}
        bits = ",".join(f"{k}={v}" for k, v in sorted(quant.get("bits", {}).items()))
        err = ",".join(f"{k}={v:.2g}" for k, v in sorted(quant.get("error", {}).items()))
        lines.append(f"{node['name']:<24} {node['op']:<8} {str(tuple(node['shape'])):<16} {bits:<34} {err:<30} "
                     f"{node['origin']}")
    lines.append("")
    lines.append("integer parameters:")
    for node in info["nodes"]:
        if node.get("quant"):
            scalars = {k: v for k, v in node["params"].items() if not isinstance(v, dict | list) or k == "bias"}
            lines.append(f"  {node['name']}: {scalars}")
    findings = (info.get("quantization") or {}).get("degenerate") or []
    if findings:
        lines += ["", "degenerate layers on the calibration stimulus:"]
        lines += [f"  {line}" for line in render_findings(findings)]
    mapping = info.get("mapping")
    if mapping:
        lines += ["", f"neurocore mapping: {mapping['cores']} cores on {mapping['chips']} chip(s) "
                      f"(limits per core: {mapping['limits']})",
                  f"{'core':>5} {'node':<24} {'neurons':>15} {'fan-in':>7} {'fan-out':>8} {'synapses':>9} "
                  f"{'util n/in/out/mem %':>22}"]
        for c in mapping["per_core"]:
            u = c["utilisation"]
            util = "/".join(f"{100 * u[k]:.0f}" for k in ("neurons", "fan_in", "fan_out", "synaptic_memory"))
            lines.append(f"{c['core']:>5} {c['node']:<24} {c['start']:>7}..{c['stop'] - 1:<7} {c['fan_in']:>7} "
                         f"{c['fan_out']:>8} {c['synapses']:>9} {util:>22}")
    return "\n".join(lines)
