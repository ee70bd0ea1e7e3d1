"""The sweep's task functions: plain functions of plain values, run in-process (``--serial``) or as Ray tasks.

* :func:`compile_point` -- one grid point: ``compile_graph`` with the point's quantizer options, the backend's files
  written to a temporary folder exactly as ``neurodeploy compile`` writes them (so a failure there is caught too),
  and the core mapping on the point's energy profile (:func:`neurodeploy.reports.cores.map_cores`: the partition
  pass for Loihi, the PyNN mapping report for SpiNNaker). A :class:`~neurodeploy.errors.NeurodeployError` (a limit
  violation, an unrepresentable parameter, ...) becomes ``{"ok": False, "error": message}``: a row, not a crash.
* :func:`evaluate_shard` -- one shard of stimuli through a graph on the emulator: the decoded output per sample
  (``count``: summed over time; ``last``: the last step) and, for a quantized test shard, the energy of the run
  priced on the energy profile (:func:`neurodeploy.reports.energy.hardware_energy` on the counts of
  :func:`neurodeploy.reports.counts.count_run`, the figures ``neurodeploy report energy`` gives).

Results are dicts of JSON values, numpy arrays and bytes (see :mod:`neurodeploy.sweep.cache`). Wall times are the
only entries that differ between runs (keys ending in ``_s``).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from typing import Any

import numpy as np

from neurodeploy.errors import InputError, NeurodeployError

#: Samples per emulator run inside a shard when counting for energy (memory: samples x T x neurons x 9 bytes).
COUNT_BATCH = 32


def compile_point(graph_bytes: bytes, params: dict[str, Any], calibration: np.ndarray | None,
                  energy_profile: str) -> dict[str, Any]:
    """Compile the float graph for one grid point (``params``: :meth:`GridPoint.params`); see the module docstring."""
    from neurodeploy.ir.serialize import graph_from_bytes

    start = time.perf_counter()
    graph = graph_from_bytes(graph_bytes, "<sweep model>")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _compile(graph, params, calibration, energy_profile)
        result["warnings"] = sorted({str(w.message) for w in caught})
    except NeurodeployError as err:
        result = {"ok": False, "error": str(err), "error_type": type(err).__name__}
    result["compile_s"] = time.perf_counter() - start
    return result


def _compile(graph, params: dict[str, Any], calibration: np.ndarray | None, energy_profile: str) -> dict[str, Any]:
    from neurodeploy.compiler import compile_graph, write_artifact
    from neurodeploy.ir.serialize import graph_to_bytes
    from neurodeploy.profiles import load_profile
    from neurodeploy.reports.cores import map_cores

    options: dict[str, Any] = {"method": params["quantize.method"]}
    if params["weight_bits"] is not None:
        options["num_weight_bits"] = params["weight_bits"]
    calib = None
    if calibration is None:
        options["calibration_batch"] = params["calibration_size"]
    else:
        if params["calibration_size"] > calibration.shape[0]:
            raise InputError(f"calibration_size {params['calibration_size']} exceeds the {calibration.shape[0]} "
                             "calibration samples", fix="lower axes.calibration_size or give more calibration data")
        calib = calibration[: params["calibration_size"]]
    artifact = compile_graph(graph, params["target"], calibration=calib, chips=params["chips"],
                             quantize_options=options)
    backend_options = {}
    if params["population_size"] is not None:
        backend_options["population_size"] = params["population_size"]
    with tempfile.TemporaryDirectory(prefix="neurodeploy-sweep-") as tmp:
        write_artifact(artifact, f"{tmp}/artifact", backend_options=backend_options)
    mapping = map_cores(artifact, artifact.graph, load_profile(energy_profile))
    shapes = artifact.graph.shapes()
    neurons = sum(int(np.prod(shapes[n])) for n in artifact.graph.by_role("neuron"))
    latency = artifact.manifest["latency_steps"]
    result: dict[str, Any] = {
        "ok": True, "graph": graph_to_bytes(artifact.graph), "neurons": neurons,
        "latency_steps": int(max(latency.values())) if latency else 0,
        "num_weight_bits": artifact.quantization.get("num_weight_bits"), "energy_profile": energy_profile,
        "cores": None, "chips": None, "mapping_error": None, "slices": [],
    }
    if mapping is not None and mapping.get("kind") == "error":
        result["mapping_error"] = mapping["error"]
    elif mapping is not None:
        result.update(cores=int(mapping["cores"]), chips=int(mapping["chips"]),
                      slices=[{k: s[k] for k in ("core", "node", "start", "stop")} for s in mapping["slices"]])
    return result


def evaluate_shard(graph_bytes: bytes, x: np.ndarray, decode: str, energy: dict[str, Any] | None = None,
                   engine: str = "auto") -> dict[str, Any]:
    """Run one shard ``x`` ``[b, T, ...]`` through the graph (integer or float by the graph); see the module
    docstring. ``energy`` (quantized test shards): ``{"profile", "slices", "chips", "latency_steps"}``; ``engine``:
    the emulator engine (both compute the same numbers, see :mod:`neurodeploy.emulator.engine`)."""
    from neurodeploy.emulator import Program
    from neurodeploy.ir.serialize import graph_from_bytes

    start = time.perf_counter()
    graph = graph_from_bytes(graph_bytes, "<sweep graph>")
    program = Program(graph)
    out = program.run(x, engine=engine).outputs[graph.outputs[0]]
    out = np.asarray(out, np.float64).reshape(out.shape[0], out.shape[1], -1)
    features = out.sum(axis=1) if decode == "count" else out[:, -1]
    result: dict[str, Any] = {"features": features, "energy_J": None, "synaptic_ops": None}
    if energy is not None:
        result.update(_energy(graph, x, energy))
    result["run_s"] = time.perf_counter() - start
    return result


def _energy(graph, x: np.ndarray, energy: dict[str, Any]) -> dict[str, Any]:
    from neurodeploy.profiles import load_profile
    from neurodeploy.reports.counts import count_run, node_counts
    from neurodeploy.reports.energy import hardware_energy

    counts = count_run(graph, x, batch_size=COUNT_BATCH)
    nodes = node_counts(counts)
    mapping = {"slices": energy["slices"], "chips": energy["chips"]} if energy["slices"] else None
    priced = hardware_energy(counts, nodes, load_profile(energy["profile"]), mapping, energy["latency_steps"])
    ops = sum(v["synaptic_ops"] for v in nodes.values() if v["kind"] == "synapse")
    return {"energy_J": float(priced["total_J"]), "synaptic_ops": int(ops),
            "energy_missing": [m["operation"] for m in priced["missing"]]}


def quantized_shard(compiled: dict[str, Any], x: np.ndarray, decode: str, with_energy: bool, engine: str = "auto"
                    ) -> dict[str, Any]:
    """:func:`evaluate_shard` on the graph :func:`compile_point` produced; ``{"skipped": True}`` when that point
    failed to compile (its row carries the error)."""
    if not compiled["ok"]:
        return {"skipped": True}
    energy = None
    if with_energy:
        energy = {"profile": compiled["energy_profile"], "slices": compiled["slices"], "chips": compiled["chips"],
                  "latency_steps": compiled["latency_steps"]}
    return evaluate_shard(compiled["graph"], x, decode, energy, engine)
