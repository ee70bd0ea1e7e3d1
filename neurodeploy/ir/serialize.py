"""Versioned, validated, deterministic serialization of IR graphs.

File format (``.ndg``, "neurodeploy graph"): a ZIP archive (stored, fixed timestamps, sorted entries) holding

* ``graph.json`` -- ``{"format": "neurodeploy-ir", "version": 1, "meta": {...}, "nodes": [...], "edges": [...]}``;
  each node is ``{"name", "op", "params"}`` where an array parameter is ``{"array": "<entry name>"}``;
* one ``.npy`` entry per array parameter.

Identical graphs give identical bytes. Loading checks the format name, the version, every op name and field, and
validates the graph; any problem raises :class:`SerializationError` naming the file and what is wrong.
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
from neurodeploy.fileio import write_bytes_atomic
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


def _decode_value(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict) and set(value) == {"array"}:
        return arrays[value["array"]]
    if isinstance(value, dict) and set(value) == {"quant"}:
        q = value["quant"]
        return QuantInfo(scale=float(q["scale"]), bits=dict(q.get("bits", {})), error=dict(q.get("error", {})))
    if isinstance(value, list):
        return tuple(_decode_value(v, arrays) for v in value)
    return value


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
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            doc = json.loads(zf.read("graph.json"))
            arrays = {}
            for info in zf.infolist():
                if info.filename.startswith("arrays/") and info.filename.endswith(".npy"):
                    key = info.filename[len("arrays/"):-len(".npy")]
                    arrays[key] = np.lib.format.read_array(io.BytesIO(zf.read(info)), allow_pickle=False)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as err:
        raise SerializationError(f"'{source}' is not a readable neurodeploy graph (corrupt or truncated: {err})",
                                 fix="recompile the model to regenerate the file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SerializationError(f"'{source}' is not a neurodeploy graph (format {doc.get('format')!r})",
                                 fix="pass a file written by neurodeploy")
    if doc.get("version") != VERSION:
        raise SerializationError(f"'{source}' has IR version {doc.get('version')}, this neurodeploy reads {VERSION}",
                                 fix="recompile the model with this version of neurodeploy")
    nodes: dict[str, Op] = {}
    try:
        for entry in doc["nodes"]:
            name, op_name = entry["name"], entry["op"]
            cls = OP_TYPES.get(op_name)
            if cls is None or op_name.startswith("_"):
                raise SerializationError(f"'{source}' node '{name}' has unknown op '{op_name}'",
                                         fix="upgrade neurodeploy or recompile the model")
            known = {f.name for f in fields(cls)}
            params = {k: _decode_value(v, arrays) for k, v in entry["params"].items()}
            unknown = set(params) - known
            if unknown:
                raise SerializationError(f"'{source}' node '{name}' ({op_name}) has unknown fields {sorted(unknown)}",
                                         fix="upgrade neurodeploy or recompile the model")
            nodes[name] = cls(**params)
        graph = Graph(nodes, [tuple(e) for e in doc["edges"]], doc.get("meta", {}))
        graph.validate()
    except NeurodeployError as err:
        if isinstance(err, SerializationError):
            raise
        raise SerializationError(f"'{source}' holds an invalid graph: {err}",
                                 fix="recompile the model to regenerate the file") from None
    except (KeyError, TypeError, ValueError) as err:
        raise SerializationError(f"'{source}' has a malformed graph description ({type(err).__name__}: {err})",
                                 fix="recompile the model to regenerate the file") from None
    return graph


def load_graph(path: str | os.PathLike) -> Graph:
    """Read and validate a ``.ndg`` file."""
    p = Path(path)
    if not p.is_file():
        raise SerializationError(f"model file '{p}' does not exist", fix="check the path")
    return graph_from_bytes(p.read_bytes(), str(p))


__all__ = ["graph_to_bytes", "graph_from_bytes", "save_graph", "load_graph", "FORMAT", "VERSION", "IRError"]
