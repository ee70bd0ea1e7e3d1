"""Hardware-in-the-loop profiling: the same stimuli on a backend and on the emulator, compared integer by integer.

For bit-exact backends (Lava fixed_pt, later Loihi hardware) every recorded array must be equal; the report gives
the first diverging (node, neuron, step, field) otherwise. It also reports per-node spike counts, synaptic
operations (spikes x fan-out, from the emulator) and the wall time per step of each run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.registry import get_backend

EXACT_BACKENDS = ("emulator", "lava")


def first_divergence(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The earliest (by step, then key order) element where two recordings differ, or None when all are equal.

    Keys are ``<node>/<field>`` (or output names) with arrays ``[B, T, *shape]``.
    """
    best = None
    for key in sorted(reference):
        if key not in other:
            return {"key": key, "reason": "missing from the backend's result"}
        a, b = np.asarray(reference[key]), np.asarray(other[key])
        if a.shape != b.shape:
            return {"key": key, "reason": f"shape {list(b.shape)} differs from the emulator's {list(a.shape)}"}
        diff = np.argwhere(a.reshape(a.shape[0], a.shape[1], -1) != b.reshape(b.shape[0], b.shape[1], -1))
        if diff.size == 0:
            continue
        order = np.lexsort((diff[:, 2], diff[:, 0], diff[:, 1]))  # earliest step first
        sample, step, neuron = (int(x) for x in diff[order[0]])
        if best is None or step < best["step"]:
            node, _, field = key.rpartition("/")
            best = {"key": key, "node": node or key, "field": field, "sample": sample, "step": step,
                    "neuron": neuron, "emulator": a.reshape(a.shape[0], a.shape[1], -1)[sample, step, neuron].item(),
                    "backend": b.reshape(b.shape[0], b.shape[1], -1)[sample, step, neuron].item(),
                    "mismatches": int(len(diff))}
    return best


def profile(artifact: Artifact, spikes, backend: str, record=("spikes", "u", "v"), **options) -> dict[str, Any]:
    """Run ``spikes`` on ``backend`` and on the emulator; compare, count and time. Returns a JSON-able dict.

    ``backend="float"`` compares the artifact with its own float IR (spikes, and v rescaled to integer units): a
    classifier's ``same_decision`` there is the most output spikes with ties broken by the last step's v, next to
    ``same_decision_count_argmax`` (:mod:`neurodeploy.backends.float`).
    ``backend="emulator"`` compares the emulator's two engines (the compiled kernel and numpy; ``engines`` names
    them, reference first), so that the comparison is between two implementations, never a run with itself.
    """
    emulator = get_backend("emulator")
    record = getattr(get_backend(backend), "PROFILE_RECORD", record)
    start = time.perf_counter()
    ref_arrays, ref = emulator.run(artifact, spikes, record=record)
    emu_seconds = time.perf_counter() - start
    steps = max(ref.steps, 1)
    report: dict[str, Any] = {
        "backend": backend,
        "batch": ref.batch,
        "steps": ref.steps,
        "spike_counts": ref.spike_counts,
        "synaptic_ops": ref.synaptic_ops,
        "total_synaptic_ops": int(sum(ref.synaptic_ops.values())),
        "emulator_seconds_per_step": emu_seconds / steps,
    }
    module = get_backend(backend)
    if backend == "emulator":  # compared with its other engine (numpy vs the compiled kernel: separate code)
        other = "numpy" if ref.engine == "numba" else "numba"
        options = dict(options, engine=other)
        report["engines"] = [ref.engine, other]
    start = time.perf_counter()
    other_arrays, _ = module.run(artifact, spikes, record=record, **options)
    report["backend_seconds_per_step"] = (time.perf_counter() - start) / steps
    if backend in EXACT_BACKENDS:
        divergence = first_divergence(ref_arrays, other_arrays)
        report.update(equal=divergence is None, first_divergence=divergence)
        report["backend_spike_counts"] = {
            k.rpartition("/")[0]: int(np.asarray(v).sum()) for k, v in other_arrays.items() if k.endswith("/spikes")}
    else:
        compare = getattr(module, "agreement", None)
        report["equal"] = None  # continuous-time backends agree statistically, not bit for bit
        if compare is not None:
            report["agreement"] = compare(ref_arrays, other_arrays, artifact)
    return report


def _run_names(report: dict[str, Any]) -> tuple[str, str]:
    """Names of the reference run and the profiled run: ``emulator`` and the backend, or for the emulator profiled
    against itself ``emulator/<engine>`` for each of its two engines."""
    if report["backend"] == "emulator" and "engines" in report:
        return tuple(f"emulator/{e}" for e in report["engines"])
    return "emulator", str(report["backend"])


def wall_times(report: dict[str, Any]) -> list[tuple[str, float]]:
    """Host wall seconds per step of :func:`profile`'s two runs, ``(name, seconds)``, each run named once."""
    ref, other = _run_names(report)
    return [(ref, float(report["emulator_seconds_per_step"])), (other, float(report["backend_seconds_per_step"]))]


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _agreement_table(agreement: dict[str, Any], other: str) -> list[str]:
    """Per layer: spike counts of both runs, count correlations, exact spike coincidence; per output: decisions."""
    head = (f"  {'layer':<24} {'spikes emulator':>15} {'spikes ' + other:>15} {'count corr':>10} "
            f"{'sample corr':>11} {'jaccard':>8}")
    lines = [head]
    for node, p in agreement.get("populations", {}).items():
        lines.append(f"  {node:<24} {_fmt(p.get('spikes_emulator')):>15} {_fmt(p.get('spikes_backend')):>15} "
                     f"{_fmt(p.get('count_correlation')):>10} {_fmt(p.get('sample_count_correlation')):>11} "
                     f"{_fmt(p.get('spike_jaccard')):>8}")
    for out, o in agreement.get("outputs", {}).items():
        if "same_decision" in o and "same_decision_count_argmax" in o:  # the float backend's rule
            lines.append(f"  output {out}: same decision on {100 * o['same_decision']:.1f} % of samples "
                         f"(most spikes, ties by the last step's v; count argmax alone "
                         f"{100 * o['same_decision_count_argmax']:.1f} %, float counts tie on "
                         f"{100 * o.get('ties', 0.0):.1f} %, left tied {100 * o.get('ties_left', 0.0):.1f} %)")
        elif "same_decision" in o:
            lines.append(f"  output {out}: same decision on {100 * o['same_decision']:.1f} % of samples "
                         f"(ties {100 * o.get('ties', 0.0):.1f} %)")
    return lines


def render_profile(report: dict[str, Any]) -> str:
    """A readable terminal table of :func:`profile`'s report."""
    ref, other = _run_names(report)
    lines = [f"{other} vs {ref}: batch {report['batch']}, {report['steps']} steps"]
    if report.get("equal") is True:
        lines.append("result: EQUAL (every recorded integer matches)")
    elif report.get("equal") is False:
        d = report["first_divergence"]
        lines.append(f"result: DIFFERENT - first at node {d.get('node')} field {d.get('field')} sample "
                     f"{d.get('sample')} step index {d.get('step')} neuron {d.get('neuron')}: emulator "
                     f"{d.get('emulator')} vs backend {d.get('backend')} ({d.get('mismatches')} mismatches)"
                     if "step" in d else f"result: DIFFERENT - {d['key']}: {d['reason']}")
    else:
        lines.append("result: statistical agreement (" + ("the artifact's float IR" if report["backend"] == "float"
                                                          else "continuous-time backend") + ")")
        lines += _agreement_table(report.get("agreement") or {}, other)
    lines.append(f"{'node':<28} {'spikes':>12}")
    for node, count in report["spike_counts"].items():
        lines.append(f"{node:<28} {count:>12}")
    lines.append(f"{'synapse':<28} {'synaptic ops':>12}")
    for node, count in report["synaptic_ops"].items():
        lines.append(f"{node:<28} {count:>12}")
    lines.append("wall time per step: " + ", ".join(f"{name} {seconds * 1e3:.3f} ms"
                                                   for name, seconds in wall_times(report)))
    return "\n".join(lines)
