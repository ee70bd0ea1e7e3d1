"""Compiled artifacts: a directory holding the quantized graph, a manifest and backend files.

Layout of ``DIR``::

    model.ndg          the quantized IR graph (see neurodeploy.ir.serialize)
    manifest.json      format, version, target, profile, inputs/outputs with shapes, latency, the passes run,
                       and the sha256 of every other file of the directory ("files")
    quantization.json  the quantizer's per-node report
    float.ndg          the float IR before quantization (absent when the input was already quantized), which
                       ``profile --backend float`` compares with
    <backend files>    whatever the target's backend emitted (e.g. lava/ or pynn/)

The directory is built in a temporary sibling and renamed into place: a failed compile leaves nothing behind, and
an existing directory is replaced only when it is itself an artifact. Identical inputs give byte-identical
artifacts (no wall-clock times are stored). Loading checks the manifest's fields and types, and refuses a
directory whose files do not match their recorded digests (a modified artifact).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodeploy import __version__
from neurodeploy.errors import SerializationError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import load_graph, save_graph

ARTIFACT_FORMAT = "neurodeploy-artifact"
ARTIFACT_VERSION = 2
MANIFEST = "manifest.json"
FLOAT_GRAPH = "float.ndg"
#: Folders ignored by the digest check: Python's bytecode caches (the CLI runs emitted scripts with a
#: separate PYTHONPYCACHEPREFIX, so a cache here is never read by neurodeploy).
_IGNORED_DIRS = frozenset({"__pycache__"})


@dataclass
class Artifact:
    """A compiled model in memory: its quantized graph, manifest and quantization report."""

    graph: Graph
    manifest: dict[str, Any]
    quantization: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    #: the float IR the artifact was quantized from (``float.ndg``), or None for a graph compiled already quantized
    float_graph: Graph | None = None


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
    if artifact.float_graph is not None:
        save_graph(artifact.float_graph, directory / FLOAT_GRAPH)
    (directory / MANIFEST).write_text(dump_json(artifact.manifest))
    (directory / "quantization.json").write_text(dump_json(artifact.quantization))


def seal(artifact: Artifact, directory: Path) -> None:
    """Record the sha256 of every file in ``directory`` except the manifest in ``manifest["files"]`` and rewrite
    the manifest; call it last, after every file of the artifact is written."""
    artifact.manifest["files"] = file_digests(directory)
    (directory / MANIFEST).write_text(dump_json(artifact.manifest))


def file_digests(directory: Path) -> dict[str, str]:
    """``{relative posix path: sha256 hex}`` of every file under ``directory`` but the manifest and bytecode caches."""
    digests = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        for name in sorted(files):
            path = Path(root, name)
            rel = path.relative_to(directory).as_posix()
            if rel != MANIFEST:
                digests[rel] = _sha256(path)
    return digests


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_artifact_dir(path: str | Path) -> bool:
    """True when ``path`` holds a manifest naming the artifact format (any version): a directory neurodeploy made."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == ARTIFACT_FORMAT


def _shapes_field(manifest: dict, key: str) -> dict[str, list[int]]:
    value = manifest.get(key)
    ok = (isinstance(value, dict) and value and all(
        isinstance(k, str) and isinstance(v, list) and all(type(d) is int and d > 0 for d in v)
        for k, v in value.items()))
    if not ok:
        raise SerializationError(f"manifest field '{key}' must map node names to lists of positive sizes, got "
                                 f"{str(value)[:80]}")
    return value


#: Manifest fields: name -> (JSON types accepted, required).
_FIELDS = {"target": (str, True), "profile": (str, True), "backend": (str, True), "inputs": (dict, True),
           "outputs": (dict, True), "latency_steps": (dict, True), "files": (dict, True),
           "mapping": (dict, False), "backend_options": (dict, False), "backend_files": (list, False),
           "passes": (list, False), "source": (dict, False)}


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _fraction(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < float("inf")


#: The neurocore mapping as the partition pass writes it (neurodeploy.passes.partition.mapping_report): what
#: inspect, the energy report and the CLI read from it. ``{key: check}``; a list ``[check]`` checks every item.
_MAPPING = {"cores": _count, "chips": _count, "limits": {}, "per_core": [{
    "core": _count, "node": lambda v: isinstance(v, str), "start": _count, "stop": _count, "fan_in": _count,
    "fan_out": _count, "synapses": _count, "synaptic_memory_bits": _count,
    "utilisation": {"neurons": _fraction, "fan_in": _fraction, "fan_out": _fraction, "synaptic_memory": _fraction},
}]}


def _check_shape(value: Any, schema: Any, where: str) -> None:
    """Raise :class:`SerializationError` naming ``where`` unless ``value`` has the structure ``schema``."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise SerializationError(f"manifest field '{where}' must be a JSON object")
        for key, sub in schema.items():
            if key not in value:
                raise SerializationError(f"manifest field '{where}' lacks '{key}'")
            _check_shape(value[key], sub, f"{where}.{key}")
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise SerializationError(f"manifest field '{where}' must be a JSON list")
        for i, item in enumerate(value):
            _check_shape(item, schema[0], f"{where}[{i}]")
    elif not schema(value):
        raise SerializationError(f"manifest field '{where}' has an invalid value {str(value)[:40]}")


def check_manifest(manifest: Any, graph: Graph | None = None) -> None:
    """Raise :class:`SerializationError` unless ``manifest`` has every field with its JSON type, shapes as lists
    of positive sizes, digests as hex strings, and (given ``graph``) the graph's own input and output shapes."""
    if not isinstance(manifest, dict):
        raise SerializationError(f"the manifest is a JSON {type(manifest).__name__}, not an object")
    if manifest.get("format") != ARTIFACT_FORMAT or manifest.get("version") != ARTIFACT_VERSION:
        raise SerializationError(f"the manifest is not of a neurodeploy artifact of version {ARTIFACT_VERSION} "
                                 f"(format {str(manifest.get('format'))[:40]!r}, version "
                                 f"{str(manifest.get('version'))[:20]!r})")
    for key, (kind, required) in _FIELDS.items():
        if key not in manifest:
            if required:
                raise SerializationError(f"the manifest lacks the field '{key}'")
        elif not isinstance(manifest[key], kind):
            raise SerializationError(f"manifest field '{key}' must be a JSON {kind.__name__}, got "
                                     f"{type(manifest[key]).__name__}")
    for key in ("inputs", "outputs"):
        _shapes_field(manifest, key)
    for rel, digest in manifest["files"].items():
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise SerializationError(f"manifest field 'files' holds no sha256 for '{str(rel)[:80]}'")
    if "mapping" in manifest:
        _check_shape(manifest["mapping"], _MAPPING, "mapping")
    for name, steps in manifest["latency_steps"].items():
        if not (steps is None or _count(steps)):
            raise SerializationError(f"manifest field 'latency_steps.{str(name)[:40]}' must be a step count")
    options = manifest.get("backend_options", {})
    size = options.get("population_size")
    if "population_size" in options and not (type(size) is int and size > 0):
        raise SerializationError(f"manifest field 'backend_options.population_size' must be a positive integer, "
                                 f"got {str(size)[:40]}")
    if graph is not None:
        shapes = graph.shapes()
        for key, names in (("inputs", graph.inputs), ("outputs", graph.outputs)):
            expected = {n: list(shapes[n]) for n in names}
            if manifest[key] != expected:
                raise SerializationError(f"manifest field '{key}' {str(manifest[key])[:80]} does not match the "
                                         f"graph's {str(expected)[:80]}")
        strangers = {c["node"] for c in manifest.get("mapping", {}).get("per_core", [])} - set(graph.nodes)
        if strangers:
            raise SerializationError(f"manifest field 'mapping' places nodes the graph lacks: {sorted(strangers)[:5]}")


def verify_files(directory: Path, recorded: dict[str, str]) -> None:
    """Raise :class:`SerializationError` naming the first file of ``directory`` that is missing, added or whose
    sha256 differs from ``recorded``."""
    actual = file_digests(directory)
    for rel in sorted(set(recorded) | set(actual)):
        if rel not in actual:
            problem = "is missing"
        elif rel not in recorded:
            problem = "was added after compile"
        elif actual[rel] != recorded[rel]:
            problem = "was modified after compile (sha256 differs from the manifest)"
        else:
            continue
        raise SerializationError(f"file '{rel}' {problem}; a modified artifact is not run")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SerializationError(f"'{path.parent}' has no {path.name}", fix="recompile the model") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise SerializationError(f"{what} '{path}' is not valid JSON ({err})", fix="recompile the model") from None


def load_artifact(path: str | Path) -> Artifact:
    """Read a compiled artifact directory; a clear error when it is missing, damaged or modified."""
    directory = Path(path)
    if not directory.is_dir():
        raise SerializationError(f"'{directory}' is not a compiled model directory",
                                 fix="run `neurodeploy compile MODEL --out DIR` first")
    manifest_path = directory / MANIFEST
    manifest = _read_json(manifest_path, "manifest")
    try:
        check_manifest(manifest)
        verify_files(directory, manifest["files"])
    except SerializationError as err:
        raise SerializationError(f"'{manifest_path}': {err}", fix="recompile the model with this neurodeploy"
                                 ) from None
    graph = load_graph(directory / "model.ndg")
    try:
        check_manifest(manifest, graph)
    except SerializationError as err:
        raise SerializationError(f"'{manifest_path}': {err}", fix="recompile the model") from None
    quant_path = directory / "quantization.json"
    quantization = _read_json(quant_path, "quantization report") if quant_path.is_file() else {}
    if not isinstance(quantization, dict):
        raise SerializationError(f"quantization report '{quant_path}' is not a JSON object",
                                 fix="recompile the model")
    float_path = directory / FLOAT_GRAPH
    float_graph = load_graph(float_path) if float_path.is_file() else None
    return Artifact(graph, manifest, quantization, directory, float_graph)


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
