"""Finished tasks cached by content hash under ``DIR/cache``: an interrupted sweep resumes, a repeated one is free.

Keys (sha256, :func:`task_key`) cover everything a task's result depends on: the neurodeploy code version
(:func:`code_version`: a hash of the installed package's source and profile files), the task kind, the model's
float graph bytes, the grid point's axis values, the calibration stimuli and the shard's stimulus and labels.
A result is stored as ``cache/<kind>/<key>.npz`` (written atomically): numpy arrays as arrays, bytes as uint8
arrays, everything else as one JSON document -- nothing is pickled, and loading never unpickles.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import SerializationError

#: Installed packages whose files define the results (neurodeploy and the folders installed under its name).
PACKAGES = ("neurodeploy", "neurodeploy.backends", "neurodeploy.converters", "neurodeploy.hw_profiles",
            "neurodeploy.families")
_META = "__meta__"
_VERSION = 1


def code_version(roots: list[Path] | None = None) -> str:
    """sha256 over the relative path and bytes of every ``.py`` and ``.toml`` file of the installed packages
    (``roots``: their folders; default: found with importlib), in sorted order. Bytecode caches are ignored."""
    if roots is None:
        roots = []
        for name in PACKAGES:
            found = importlib.util.find_spec(name)
            if found is not None and found.submodule_search_locations:
                roots.extend(Path(p) for p in found.submodule_search_locations)
    h = hashlib.sha256()
    for root in sorted(set(roots)):
        files = sorted(p for p in root.rglob("*") if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts)
        for path in files:
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def task_key(kind: str, code: str, **parts: Any) -> str:
    """The cache key of a task: sha256 of the kind, the code version and ``parts`` as canonical JSON."""
    doc = json.dumps({"kind": kind, "code": code, "format": _VERSION, **parts}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def _encode(result: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"json": {}, "arrays": [], "bytes": []}
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
            meta["arrays"].append(key)
        elif isinstance(value, bytes):
            arrays[key] = np.frombuffer(value, np.uint8)
            meta["bytes"].append(key)
        else:
            meta["json"][key] = value
    arrays[_META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    return arrays


class Cache:
    """Task results under ``root`` (``DIR/cache``) by key; counts hits and stores."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.stored = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.npz"

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The stored result, or None when the task has not finished before. A damaged file is an error."""
        path = self.path(kind, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data[_META]).decode())
                result = dict(meta["json"])
                for k in meta["arrays"]:
                    result[k] = data[k]
                for k in meta["bytes"]:
                    result[k] = data[k].tobytes()
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SerializationError(f"sweep cache entry '{path}' is damaged ({err})",
                                     fix="delete that file (or the whole cache folder) and rerun the sweep") from None
        self.hits += 1
        return result

    def put(self, kind: str, key: str, result: dict[str, Any]) -> None:
        """Store ``result`` atomically (a killed sweep never leaves half an entry)."""
        from neurodeploy.fileio import write_atomic

        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = _encode(result)
        write_atomic(path, lambda fh: np.savez(fh, **arrays))
        self.stored += 1
