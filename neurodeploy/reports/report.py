"""Build the energy report: run, count, map onto each profile's cores, price, and collect every figure's source.

:func:`energy_report` returns one JSON-able dict; :mod:`.text` and :mod:`.html` render it. Layout::

    format, version, neurodeploy, artifact{path, target, profile}, input{samples, steps}
    latency{steps_to_output, steps_per_inference}
    counts{flag, source, nodes{...}, totals_per_inference{...}}      (see .counts)
    neurobench{effective_acs, effective_macs, dense_ops, activation_sparsity, connection_sparsity, footprint_bytes}
    profiles[ {profile, lines[], missing[], per_inference_J, per_step_J, by_operation_*, by_node_*, static,
               wall_time, mapping{kind, cores, chips, summary | error}, cores[]} ]     (see .energy, .cores)
    reference{ann_fp32, ann_int8, literature, neurobench_acs, figures}
    profile_run (a `neurodeploy profile` JSON, when given), figures[] (every figure used, with source and flag)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurodeploy import __version__
from neurodeploy.errors import SerializationError
from neurodeploy.profiles import Profile, available_profiles, load_profile

from .cores import map_cores
from .counts import core_counts, count_run, neurobench, node_counts
from .energy import SYNAPTIC_FIGURES, hardware_energy, reference_energy

REPORT_FORMAT = "neurodeploy-energy-report"
REPORT_VERSION = 1
REFERENCE = "cmos45nm"
_PROFILE_FIX = "write it with `neurodeploy profile DIR --input IN.npz --output FILE.json`"
COUNT_SOURCE = {"int": "neurodeploy emulator (bit-exact to Lava 0.10.0 fixed_pt), run on the given stimulus",
                "float": "neurodeploy emulator in float arithmetic (an uncompiled graph: Lava PyLifModelFloat maths), "
                         "run on the given stimulus"}


def default_profiles() -> list[str]:
    """The bundled hardware profiles that give a synaptic-operation energy figure (not the 45 nm reference)."""
    names = []
    for name in available_profiles():
        if name == REFERENCE:
            continue
        profile = load_profile(name)
        if any(f in profile.energy for f in SYNAPTIC_FIGURES):
            names.append(name)
    return names


def load_profile_run(path: str | Path) -> dict[str, Any]:
    """Read a ``neurodeploy profile --output`` JSON file (a clear error when it is not one)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise SerializationError(f"profile JSON '{p}' does not exist",
                                 fix=_PROFILE_FIX) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SerializationError(f"profile JSON '{p}' is not readable JSON ({err})",
                                 fix=_PROFILE_FIX) from None
    required = ("backend", "steps", "emulator_seconds_per_step", "backend_seconds_per_step")
    missing = [k for k in required if k not in data] if isinstance(data, dict) else list(required)
    if missing:
        raise SerializationError(f"profile JSON '{p}' lacks {missing}; it is not a neurodeploy profile report",
                                 fix="pass the file written by `neurodeploy profile --output`")
    data = dict(data)
    data["path"] = str(p)
    data["flag"] = "measured"
    data["note"] = ("host wall time of the backend run and of the emulator (a simulation on this machine, not the "
                    "chip's time); equality and counts as reported by `neurodeploy profile`")
    return data


def _latency(artifact, graph) -> dict[str, int]:
    latency = (getattr(artifact, "manifest", None) or {}).get("latency_steps")
    if isinstance(latency, dict) and latency:
        return {k: int(v) for k, v in latency.items()}
    from neurodeploy.compiler import latency_steps

    return latency_steps(graph)


def _collect_figures(report: dict[str, Any]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}

    def add(fig: dict[str, Any] | None) -> None:
        if fig and fig.get("name") not in seen:
            seen[fig["name"]] = fig

    for prof in report["profiles"]:
        for line in prof["lines"]:
            add(line["figure"])
        if prof.get("static"):
            add(prof["static"]["figure"])
        if prof.get("wall_time"):
            add(prof["wall_time"]["step"])
    for fig in report["reference"]["figures"].values():
        add(fig)
    return list(seen.values())


def energy_report(artifact, spikes, profiles: list[str | Profile] | None = None, reference: str | Profile = REFERENCE,
                  profile_run: dict[str, Any] | None = None, batch_size: int = 32, input_path: str | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Run ``spikes`` on the emulator, count, and price the run on every profile (default :func:`default_profiles`).

    ``artifact`` is a compiled :class:`~neurodeploy.artifact.Artifact` (or a quantized graph).
    """
    graph = getattr(artifact, "graph", artifact)
    counts = count_run(graph, spikes, batch_size=batch_size, progress=progress)
    nodes = node_counts(counts)
    latency = _latency(artifact, counts.graph)
    latency_max = max(latency.values()) if latency else 0
    loaded = [load_profile(p) for p in (profiles if profiles else default_profiles())]
    ref = load_profile(reference)
    b = max(counts.batch, 1)
    priced = []
    for profile in loaded:
        mapping = map_cores(artifact, counts.graph, profile)
        entry = hardware_energy(counts, nodes, profile, mapping, latency_max)
        if mapping is not None:
            entry["mapping"] = {k: v for k, v in mapping.items() if k != "slices"}
            entry["cores"] = core_counts(counts, mapping["slices"]) if mapping.get("slices") else []
        else:
            entry["mapping"] = None
            entry["cores"] = []
        priced.append(entry)
    totals = {
        "spikes": sum(v["spikes"] for v in nodes.values() if v["kind"] == "neuron") / b,
        "input_spikes": sum(v["spikes"] for v in nodes.values() if v["kind"] == "input") / b,
        "synaptic_ops": sum(v["synaptic_ops"] for v in nodes.values() if v["kind"] == "synapse") / b,
        "neuron_updates": sum(v["neuron_updates"] for v in nodes.values() if v["kind"] == "neuron") / b,
        "dense_ops": sum(v["dense_ops"] for v in nodes.values() if v["kind"] == "synapse") / b,
    }
    manifest = getattr(artifact, "manifest", None) or {}
    report: dict[str, Any] = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION, "neurodeploy": __version__,
        "artifact": {"path": str(getattr(artifact, "path", "") or ""), "target": manifest.get("target"),
                     "profile": manifest.get("profile")},
        "input": {"path": input_path, "samples": counts.batch, "steps": counts.steps},
        "latency": {"steps_to_output": latency, "steps_per_inference": counts.steps,
                    "note": "steps_to_output: steps from a stimulus column to the first output it can influence "
                            "(synapses add 1 + delay); an inference runs steps_per_inference steps"},
        "counts": {"flag": "simulated", "source": COUNT_SOURCE["int" if counts.integer else "float"], "nodes": nodes,
                   "totals_per_inference": totals, "arithmetic": "int" if counts.integer else "float"},
        "neurobench": neurobench(counts, nodes),
        "profiles": priced,
        "reference": reference_energy(counts, nodes, ref),
        "profile_run": profile_run,
    }
    report["figures"] = _collect_figures(report)
    return report


def output_paths(out: str | Path) -> dict[str, Path]:
    """Where :func:`write_report` writes: ``OUT.json/.html/.txt`` for a file name ending in .json, .html or .txt,
    else ``OUT/energy.json``, ``OUT/energy.html`` and ``OUT/energy.txt``."""
    p = Path(out)
    stem = p.with_suffix("") if p.suffix in (".json", ".html", ".txt") else p / "energy"
    return {"json": stem.with_name(stem.name + ".json"), "html": stem.with_name(stem.name + ".html"),
            "text": stem.with_name(stem.name + ".txt")}


def write_report(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write the JSON, HTML and terminal-summary files atomically; return their paths."""
    from neurodeploy.artifact import dump_json
    from neurodeploy.fileio import write_bytes_atomic

    from .html import render_html
    from .text import render_text

    paths = output_paths(out)
    write_bytes_atomic(paths["json"], dump_json(report).encode())
    write_bytes_atomic(paths["html"], render_html(report).encode("utf-8"))
    write_bytes_atomic(paths["text"], (render_text(report) + "\n").encode("utf-8"))
    return paths
