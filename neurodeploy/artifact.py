"""Compiled artifacts: a directory holding the quantized graph, a manifest and backend files.

Layout of ``DIR``::

    model.ndg          the quantized IR graph (see neurodeploy.ir.serialize)
    manifest.json      format, version, target, profile, inputs/outputs with shapes, latency, pass timings
    quantization.json  the quantizer's per-node report
    <backend files>    whatever the target's backend emitted (e.g. lava/ or pynn/)

The directory is built in a temporary sibling and renamed into place: a failed compile leaves nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodeploy import __version__
from neurodeploy.errors import SerializationError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import load_graph, save_graph

ARTIFACT_FORMAT = "neurodeploy-artifact"
ARTIFACT_VERSION = 1


@dataclass
class Artifact:
    """A compiled model in memory: its quantized graph, manifest and quantization report."""

    graph: Graph
    manifest: dict[str, Any]
    quantization: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_artifact_files(artifact: Artifact, directory: Path) -> None:
    """Write the core files of ``artifact`` into ``directory`` (which the caller makes atomic)."""
    save_graph(artifact.graph, directory / "model.ndg")
    (directory / "manifest.json").write_text(dump_json(artifact.manifest))
    (directory / "quantization.json").write_text(dump_json(artifact.quantization))


def load_artifact(path: str | Path) -> Artifact:
    """Read a compiled artifact directory; a clear error when it is missing or damaged."""
    directory = Path(path)
    if not directory.is_dir():
        raise SerializationError(f"'{directory}' is not a compiled model directory",
                                 fix="run `neurodeploy compile MODEL --out DIR` first")
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise SerializationError(f"'{directory}' has no manifest.json", fix="recompile the model") from None
    except json.JSONDecodeError as err:
        raise SerializationError(f"'{manifest_path}' is corrupt ({err})", fix="recompile the model") from None
    if manifest.get("format") != ARTIFACT_FORMAT or manifest.get("version") != ARTIFACT_VERSION:
        raise SerializationError(f"'{manifest_path}' is not a neurodeploy artifact of version {ARTIFACT_VERSION}",
                                 fix="recompile the model with this neurodeploy")
    graph = load_graph(directory / "model.ndg")
    quant_path = directory / "quantization.json"
    quantization = json.loads(quant_path.read_text()) if quant_path.is_file() else {}
    return Artifact(graph, manifest, quantization, directory)


def base_manifest(graph: Graph, target: str, profile: str) -> dict[str, Any]:
    shapes = graph.shapes()
    return {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "neurodeploy": __version__,
        "target": target,
        "profile": profile,
        "inputs": {n: list(shapes[n]) for n in graph.inputs},
        "outputs": {n: list(shapes[n]) for n in graph.outputs},
        "step_convention": "index t-1 holds Lava step t; Input emits column t-1 at step t; each synapse adds "
                           "one step (plus its delay); u/v are read after reset like a Lava Monitor",
    }
