"""The float backend: runs an artifact's own float IR (``float.ndg``, the model as converted, before quantization)
on the emulator in float arithmetic, so that ``neurodeploy profile DIR --backend float`` shows, layer by layer,
where quantization changed the network (spike-count correlation per population, decision agreement per output;
:func:`neurodeploy.backends.pynn.agreement.agreement`).

Node names are kept by the quantizer, so populations compare by name; both runs use the same step semantics (the
float IR is folded with :func:`neurodeploy.passes.fold.fold_linear`, the compiler's first pass, before it runs), so
spike times are comparable step for step.

The decision (:func:`agreement`, ``outputs[<name>]["same_decision"]``) is the same rule on both runs: for a spiking
classifier the neuron with the most output spikes over the run, *ties broken by the membrane potential v at the last
step* (the tied neuron closest to its next spike wins; any tie left goes to the lowest index). Both runs' v are
compared within one population, whose integer v is ``64 * scale * v_float`` with one scale, so the order is the same
in both units. With 16 steps, 13-40 % of the zoo's inputs tie in the float spike counts, and plain count-argmax
(``same_decision_count_argmax``, reported next to it; the rule of :mod:`neurodeploy.backends.pynn.agreement`) then
can flip on any perturbation of those inputs. A readout's decision is its largest mean v, as in the pyNN comparison.
The float run's v is rescaled to the integer units (``64 * scale``) before the comparison, so ``v_correlation``
and ``v_rms_error_thresholds`` compare like with like.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.backends.emulator import result_arrays
from neurodeploy.backends.pynn.agreement import agreement as _pynn_agreement
from neurodeploy.emulator import simulate
from neurodeploy.errors import BackendError
from neurodeploy.passes.fold import fold_linear

#: What profile records from both runs: spikes, and v for the decision's tie-break (float v is rescaled to the
#: integer units, ``64 * scale``, before any comparison).
PROFILE_RECORD = ("spikes", "v")


def decide(counts: np.ndarray, v_last: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The module's decision rule on ``counts`` [B, n] (spikes over the run) and ``v_last`` [B, n] (v at the last
    step, or None): ``(decision, count_tie, tie_left)``, ``count_tie`` where the largest count is shared,
    ``tie_left`` where it is shared and v does not separate it either."""
    counts = np.asarray(counts, float)
    best = counts == counts.max(axis=1, keepdims=True)
    count_tie = best.sum(axis=1) > 1
    if v_last is None:
        return counts.argmax(axis=1), count_tie, count_tie
    key = np.where(best, np.asarray(v_last, float), -np.inf)
    tie_left = (key == key.max(axis=1, keepdims=True)).sum(axis=1) > 1
    return key.argmax(axis=1), count_tie, tie_left


def _scales(artifact: Artifact | None) -> dict[str, float]:
    if artifact is None:
        return {}
    return {n: float(op.quant.scale) for n, op in artifact.graph.nodes.items()
            if op.role == "neuron" and getattr(op, "quant", None) is not None}


def agreement(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], artifact: Artifact | None = None,
              **options) -> dict:
    """Compare the artifact's integer run (``reference``) with its float IR's run (``other``): the pyNN comparison's
    figures (:func:`neurodeploy.backends.pynn.agreement.agreement`) on v rescaled to integer units, with each spiking
    classifier output's ``same_decision`` by the module's rule (counts, ties broken by the last step's v) and
    ``same_decision_count_argmax`` (counts only, lowest index on a tie), ``ties`` (the float run's counts tie) and
    ``ties_left`` (either run ties after the v tie-break)."""
    scales = _scales(artifact)
    other = dict(other)
    for key in list(other):
        node = key[: -len("/v")]
        if key.endswith("/v") and node in scales:
            other[key] = np.asarray(other[key], float) * (64.0 * scales[node])
    report = _pynn_agreement(reference, other, artifact, **options)
    for out, entry in report["outputs"].items():
        if "same_decision" not in entry or artifact is None:
            continue
        (src,) = artifact.graph.predecessors(out)
        if getattr(artifact.graph.nodes[src], "readout", False):
            continue
        runs = []
        for arrays in (reference, other):
            spikes = np.asarray(arrays[out], float)
            counts = spikes.reshape(spikes.shape[0], spikes.shape[1], -1).sum(axis=1)
            v = arrays.get(f"{src}/v")
            v_last = None if v is None else np.asarray(v, float).reshape(counts.shape[0], -1, counts.shape[1])[:, -1]
            runs.append(decide(counts, v_last))
        (di, _, li), (df, tf, lf) = runs
        entry["same_decision_count_argmax"] = entry["same_decision"]
        entry["same_decision"] = float((di == df).mean()) if di.size else 1.0
        entry["ties"] = float(tf.mean()) if di.size else 0.0
        entry["ties_left"] = float((li | lf).mean()) if di.size else 0.0
        entry["decision_rule"] = "counts, ties by v at the last step" if f"{src}/v" in reference else "counts"
    decisions = [o["same_decision"] for o in report["outputs"].values() if "same_decision" in o]
    if decisions:
        report["same_decision"] = float(np.mean(decisions))
    return report


def run(artifact: Artifact, spikes, record: Iterable[str] = ("spikes",), progress: bool = False,
        **_options) -> tuple[dict[str, np.ndarray], object]:
    """Run the artifact's float IR on ``spikes`` (float arithmetic); the emulator backend's ``.npz`` contract."""
    if artifact.float_graph is None:
        raise BackendError(f"artifact '{artifact.path}' has no float IR (float.ndg): it was compiled from an "
                           "already quantized graph", fix="compile the float model to compare against it")
    graph, _ = fold_linear(artifact.float_graph)  # the emulator runs folded graphs only, as the compiler folds
    result = simulate(graph, spikes, record=tuple(record), arithmetic="float", progress=progress)
    return result_arrays(result), result
