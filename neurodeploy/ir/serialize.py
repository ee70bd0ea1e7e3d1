"""Versioned, validated, deterministic serialization of IR graphs.

File format (``.ndg``, "neurodeploy graph"): a ZIP archive (stored, fixed timestamps, sorted entries) holding

* ``graph.json`` -- ``{"format": "neurodeploy-ir", "version": 1, "meta": {...}, "nodes": [...], "edges": [...]}``;
  each node is ``{"name", "op", "params"}`` where an array parameter is ``{"array": "<entry name>"}``;
* one ``.npy`` entry per array parameter.

Identical graphs give identical bytes. Loading never trusts a declared size: the archive is read with
:func:`neurodeploy.fileio.read_zip_members` (a member's declared length must fit its stored bytes, an ``.npy``
header's shape and dtype must match the bytes that follow, no pickle or object arrays) before anything is
allocated; complex or string arrays are refused by the field checks. Then ``graph.json``'s structure is checked
(an object; nodes with a unique name, an op and a params object; edges as name pairs), the format name, the
version, every op name and field, and the graph is validated (every field's type and range, finite values:
:mod:`neurodeploy.ir.fields`); any problem raises :class:`SerializationError` naming the file and what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import IRError, NeurodeployError, SerializationError
from neurodeploy.fileio import read_zip_members, write_bytes_atomic
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import OP_TYPES, Op, QuantInfo

FORMAT = "neurodeploy-ir"
VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _encode_value(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, QuantInfo):
        return {"quant": {"scale": float(value.scale), "bits": dict(sorted(value.bits.items())),
                          "error": {k: float(v) for k, v in sorted(value.error.items())}}}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_encode_value(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]
    return value


def _decode_value(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """A JSON parameter value back as the op expects it; :class:`SerializationError` for dangling references."""
    if isinstance(value, dict) and set(value) == {"array"}:
        key = value["array"]
        if not isinstance(key, str) or key not in arrays:
            raise _BadDocument(f"{where} refers to the array {key!r}, which the file does not hold")
        return arrays[key]
    if isinstance(value, dict) and set(value) == {"quant"}:
        return _decode_quant(value["quant"], where)
    if isinstance(value, dict):
        raise _BadDocument(f"{where} holds the object {sorted(value)[:5]}, not a value")
    if isinstance(value, list):
        return tuple(_decode_value(v, arrays, where) for v in value)
    return value


def _decode_quant(q: Any, where: str) -> QuantInfo:
    if not isinstance(q, dict) or not isinstance(q.get("bits", {}), dict) or not isinstance(q.get("error", {}), dict):
        raise _BadDocument(f"{where} has a malformed quantization record")
    scale = q.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise _BadDocument(f"{where} has the quantization scale {scale!r}, not a number")
    return QuantInfo(scale=float(scale), bits=dict(q.get("bits", {})), error=dict(q.get("error", {})))


class _BadDocument(Exception):
    """Internal: ``graph.json`` does not have the documented structure (turned into a SerializationError)."""


def graph_to_bytes(graph: Graph) -> bytes:
    """Serialize ``graph`` to the deterministic ``.ndg`` bytes."""
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for name, op in graph.nodes.items():
        params = {f.name: _encode_value(getattr(op, f.name), f"{name}.{f.name}", arrays) for f in fields(op)}
        nodes.append({"name": name, "op": op.op_type, "params": params})
    doc = {"format": FORMAT, "version": VERSION, "meta": graph.meta, "nodes": nodes,
           "edges": [list(e) for e in graph.edges]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("graph.json", _EPOCH), json.dumps(doc, indent=1, sort_keys=True))
        for key in sorted(arrays):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"arrays/{key}.npy", _EPOCH), npy.getvalue())
    return buf.getvalue()


def save_graph(graph: Graph, path: str | os.PathLike) -> None:
    """Validate and write ``graph`` atomically to ``path``."""
    graph.validate()
    write_bytes_atomic(path, graph_to_bytes(graph))


def graph_from_bytes(data: bytes, source: str = "<bytes>") -> Graph:
    """Parse ``.ndg`` bytes; raise :class:`SerializationError` naming ``source`` on any defect."""
    doc, arrays = _read_archive(data, source)
    try:
        nodes, edges, meta = _check_document(doc, source)
        graph = Graph({name: _build_op(entry, arrays, source) for name, entry in nodes.items()}, edges, meta)
        graph.validate(finite=True)
    except _BadDocument as err:
        raise SerializationError(f"'{source}' has a malformed graph description: {err}",
                                 fix="recompile the model to regenerate the file") from None
    except SerializationError:
        raise
    except NeurodeployError as err:
        raise SerializationError(f"'{source}' holds an invalid graph: {err}") from None
    return graph


def _read_archive(data: bytes, source: str) -> tuple[Any, dict[str, np.ndarray]]:
    """``graph.json`` (parsed) and every ``arrays/*.npy`` entry, read with
    :func:`neurodeploy.fileio.read_zip_members` (no pickle; declared sizes, dtypes and ``.npy`` headers checked
    against the stored bytes before anything is allocated)."""
    fix = "recompile the model to regenerate the file"
    try:
        members, others = read_zip_members(data, _WHAT, other_members=("graph.json",))
    except SerializationError as err:
        problem = str(err).split(" Fix: ")[0].replace(f"{_WHAT} '<payload>' ", "", 1).rstrip(".")
        raise SerializationError(f"'{source}' is not a readable neurodeploy graph (corrupt or truncated: {problem})",
                                 fix=fix) from None
    if "graph.json" not in others:
        raise SerializationError(f"'{source}' is not a readable neurodeploy graph (corrupt or truncated: it holds no "
                                 "graph.json)", fix=fix)
    try:
        doc = json.loads(others["graph.json"])
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SerializationError(f"'{source}' is not a readable neurodeploy graph (corrupt or truncated: graph.json "
                                 f"is not JSON: {type(err).__name__}: {err})", fix=fix) from None
    return doc, {k[len("arrays/"):]: v for k, v in members.items() if k.startswith("arrays/")}


_WHAT = "neurodeploy graph"


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


#: Types of the ``meta`` keys that converters and passes write and later code reads (other keys are free-form).
_META_TYPES: dict[str, tuple[str, Any]] = {
    "dt": ("a positive number of seconds", lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0),
    "latency_steps": ("a whole number >= 0", _count),
    "timesteps": ("null or a whole number >= 0", lambda v: v is None or _count(v)),
    "output_latency_steps": ("an object of whole numbers >= 0",
                             lambda v: isinstance(v, dict) and all(_count(x) for x in v.values())),
    "node_latency_steps": ("an object of whole numbers >= 0",
                           lambda v: isinstance(v, dict) and all(_count(x) for x in v.values())),
    "conversion_notes": ("a list of {node, note} objects",
                         lambda v: isinstance(v, list) and all(isinstance(x, dict) and isinstance(x.get("node"), str)
                                                               and isinstance(x.get("note"), str) for x in v)),
}


def _check_meta(meta: dict[str, Any]) -> None:
    for key, (want, ok) in _META_TYPES.items():
        if key in meta and not ok(meta[key]):
            raise _BadDocument(f"meta field '{key}' must be {want}, got {str(meta[key])[:60]}")


def _check_document(doc: Any, source: str) -> tuple[dict[str, Any], list[tuple[str, str]], dict[str, Any]]:
    """The nodes (by name), edges and meta of a parsed ``graph.json`` after checking its documented structure."""
    if not isinstance(doc, dict):
        raise SerializationError(f"'{source}' is not a neurodeploy graph: graph.json holds a "
                                 f"{type(doc).__name__}, not an object", fix="pass a file written by neurodeploy")
    if doc.get("format") != FORMAT:
        raise SerializationError(f"'{source}' is not a neurodeploy graph (format {doc.get('format')!r})",
                                 fix="pass a file written by neurodeploy")
    if doc.get("version") != VERSION:
        raise SerializationError(f"'{source}' has IR version {doc.get('version')!r}, this neurodeploy reads "
                                 f"{VERSION}", fix="recompile the model with this version of neurodeploy")
    entries, edges, meta = doc.get("nodes"), doc.get("edges"), doc.get("meta", {})
    if not isinstance(entries, list) or not isinstance(edges, list) or not isinstance(meta, dict):
        raise _BadDocument("'nodes' and 'edges' must be lists and 'meta' an object")
    _check_meta(meta)
    nodes: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                not isinstance(entry.get("op"), str) or not isinstance(entry.get("params", {}), dict):
            raise _BadDocument(f"node #{i} must be an object with a string 'name', a string 'op' and a 'params' "
                               "object")
        if entry["name"] in nodes:
            raise _BadDocument(f"node name '{entry['name']}' appears twice")
        nodes[entry["name"]] = entry
    pairs = []
    for edge in edges:
        if not (isinstance(edge, list) and len(edge) == 2 and all(isinstance(e, str) for e in edge)):
            raise _BadDocument(f"edge {str(edge)[:60]} is not a pair of node names")
        pairs.append((edge[0], edge[1]))
    return nodes, pairs, meta


def _build_op(entry: dict[str, Any], arrays: dict[str, np.ndarray], source: str) -> Op:
    """The op of one node entry: known op, known fields, decoded values (types are checked by Graph.validate)."""
    name, op_name = entry["name"], entry["op"]
    cls = OP_TYPES.get(op_name)
    if cls is None or op_name.startswith("_"):
        raise SerializationError(f"'{source}' node '{name}' has unknown op '{op_name}'",
                                 fix="upgrade neurodeploy or recompile the model")
    known = {f.name for f in fields(cls)}
    params = entry.get("params", {})
    unknown = set(params) - known
    if unknown:
        raise SerializationError(f"'{source}' node '{name}' ({op_name}) has unknown fields {sorted(unknown)}",
                                 fix="upgrade neurodeploy or recompile the model")
    return cls(**{k: _decode_value(v, arrays, f"node '{name}' field '{k}'") for k, v in params.items()})


def load_graph(path: str | os.PathLike) -> Graph:
    """Read and validate a ``.ndg`` file."""
    p = Path(path)
    if not p.is_file():
        raise SerializationError(f"model file '{p}' does not exist", fix="check the path")
    return graph_from_bytes(p.read_bytes(), str(p))


__all__ = ["graph_to_bytes", "graph_from_bytes", "save_graph", "load_graph", "FORMAT", "VERSION", "IRError"]
