"""Agreement between the integer Loihi emulator and a continuous-time PyNN run (statistical, not bit for bit).

For every neuron population recorded by both runs (``<node>/spikes``), with counts ``c[b, i]`` per sample b and
neuron i summed over the steps:

* ``count_correlation``: Pearson correlation of the per-neuron counts summed over samples (1 = same ranking and
  proportions; ``null`` when both are constant, reported with ``counts_equal``);
* ``sample_count_correlation``: the same over all (sample, neuron) pairs;
* ``spike_jaccard``: exact coincidences, ``|A & B| / |A | B|`` over (sample, step, neuron) spike events;
* ``van_rossum``: van Rossum distance with a causal exponential kernel of ``tau`` steps (default 5 = 5 ms),
  discretised at the step: ``D**2 = (1/tau) sum_t (f_t - g_t)**2`` with ``f_t = sum_k exp(-(t - t_k)/tau)``, per
  (sample, neuron); reported as the mean ``D`` and as ``van_rossum_normalised = sum D**2 / (sum (n_a + n_b) / 2)``,
  0 for identical trains and about 1 when no spike has a partner within ``tau`` (each unmatched spike adds
  ``~1/2`` to ``D**2``).

For each output with more than one neuron (a classifier): ``same_decision`` = fraction of samples whose argmax
agrees (spike counts over the run; for a readout its mean v), with the fraction of samples where either side ties.
Voltages (``<node>/v``) give ``v_correlation`` and ``v_rms_error_thresholds`` (RMS difference in units of the
population's threshold ``64 * vth``) when the artifact is at hand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_TAU = 5.0


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def van_rossum(a: np.ndarray, b: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """Per-train van Rossum distance of spike rasters ``a``, ``b`` [B, T, n] (binary) -> [B, n]."""
    a = np.asarray(a, float).reshape(a.shape[0], a.shape[1], -1)
    b = np.asarray(b, float).reshape(b.shape[0], b.shape[1], -1)
    decay = math.exp(-1.0 / tau)
    diff = a - b
    trace = np.zeros((diff.shape[0], diff.shape[2]))
    total = np.zeros_like(trace)
    for t in range(diff.shape[1]):
        trace = trace * decay + diff[:, t]
        total += trace * trace
    tail = decay * decay / (1.0 - decay * decay)  # the traces keep decaying after the last step
    total += trace * trace * tail
    return np.sqrt(total / tau)


def spike_agreement(ref: np.ndarray, other: np.ndarray, tau: float = DEFAULT_TAU) -> dict[str, Any]:
    ref = np.asarray(ref).reshape(ref.shape[0], ref.shape[1], -1) != 0
    other = np.asarray(other).reshape(other.shape[0], other.shape[1], -1) != 0
    c_ref, c_other = ref.sum(axis=1), other.sum(axis=1)
    union = int((ref | other).sum())
    d = van_rossum(ref, other, tau)
    n_spikes = float(c_ref.sum() + c_other.sum())
    return {
        "spikes_emulator": int(c_ref.sum()), "spikes_backend": int(c_other.sum()),
        "count_correlation": _corr(c_ref.sum(axis=0), c_other.sum(axis=0)),
        "sample_count_correlation": _corr(c_ref, c_other),
        "counts_equal": bool(np.array_equal(c_ref, c_other)),
        "spike_jaccard": float((ref & other).sum() / union) if union else 1.0,
        "van_rossum_mean": float(d.mean()) if d.size else 0.0,
        "van_rossum_normalised": float((d ** 2).sum() / (n_spikes / 2.0)) if n_spikes else 0.0,
        "van_rossum_tau_steps": tau,
    }


def _decision(x: np.ndarray, readout: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, float).reshape(x.shape[0], x.shape[1], -1)
    score = np.nanmean(x, axis=1) if readout else x.sum(axis=1)
    best = score.max(axis=1, keepdims=True)
    return score.argmax(axis=1), (score == best).sum(axis=1) > 1


def agreement(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], artifact=None,
              tau: float = DEFAULT_TAU) -> dict[str, Any]:
    """Compare an emulator result dict with a backend result dict (``result_arrays`` contract)."""
    report: dict[str, Any] = {"populations": {}, "outputs": {}}
    vth = {}
    if artifact is not None:
        for name, op in artifact.graph.nodes.items():
            if op.role == "neuron" and getattr(op, "vth", None) is not None:
                vth[name] = 64.0 * float(op.vth)
    for key in sorted(reference):
        if not key.endswith("/spikes") or key not in other:
            continue
        report["populations"][key[: -len("/spikes")]] = spike_agreement(reference[key], other[key], tau)
    for key in sorted(reference):
        if not key.endswith("/v") or key not in other:
            continue
        node = key[: -len("/v")]
        a, b = np.asarray(reference[key], float), np.asarray(other[key], float)
        entry = report["populations"].setdefault(node, {})
        entry["v_correlation"] = _corr(a, np.nan_to_num(b))
        if vth.get(node):
            entry["v_rms_error_thresholds"] = float(np.sqrt(np.nanmean((a - b) ** 2)) / vth[node])
    readouts = set()
    if artifact is not None:
        readouts = {n for n, op in artifact.graph.nodes.items() if getattr(op, "readout", False)}
    outputs = artifact.graph.outputs if artifact is not None else [
        k for k in reference if "/" not in k and k != "spikes"]
    for out in outputs:
        if out not in reference or out not in other:
            continue
        a, b = np.asarray(reference[out]), np.asarray(other[out])
        n = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
        src = artifact.graph.predecessors(out)[0] if artifact is not None else out
        entry: dict[str, Any] = {"neurons": n}
        if src not in readouts:
            entry.update(spike_agreement(a, b, tau))
        if n > 1:
            da, ta = _decision(a, src in readouts)
            db, tb = _decision(b, src in readouts)
            entry["same_decision"] = float((da == db).mean()) if da.size else 1.0
            entry["ties"] = float((ta | tb).mean()) if da.size else 0.0
        report["outputs"][out] = entry
    pops = [p for p in report["populations"].values() if "spike_jaccard" in p]
    if pops:
        total = sum(p["spikes_emulator"] + p["spikes_backend"] for p in pops)
        report["spike_jaccard_all"] = (sum(p["spike_jaccard"] * (p["spikes_emulator"] + p["spikes_backend"])
                                           for p in pops) / total) if total else 1.0
    decisions = [o["same_decision"] for o in report["outputs"].values() if "same_decision" in o]
    if decisions:
        report["same_decision"] = float(np.mean(decisions))
    return report


def compare_with_emulator(artifact, spikes, tau: float = DEFAULT_TAU, **options: Any) -> dict[str, Any]:
    """Run ``spikes`` on the emulator and on pyNN.brian2 (recording spikes and v) and return :func:`agreement`
    plus the run times. Options go to :func:`.runner.run`."""
    import time

    from neurodeploy.backends import emulator

    from .runner import run

    start = time.perf_counter()
    ref, result = emulator.run(artifact, spikes, record=("spikes", "v"))
    emu_seconds = time.perf_counter() - start
    start = time.perf_counter()
    other, raw = run(artifact, spikes, record=("spikes", "v"), **options)
    report = agreement(ref, other, artifact, tau)
    report.update(batch=result.batch, steps=result.steps, emulator_seconds=emu_seconds,
                  pynn_seconds=time.perf_counter() - start, pynn_build_seconds=raw.get("build_seconds"),
                  simulator="pyNN.brian2 (dt = 1 ms, exact integration)")
    return report
