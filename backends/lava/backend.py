"""The registry face of the Lava backend: ``emit`` (compile time) and ``run`` (run time).

* ``emit(artifact, out_dir)`` writes ``lava/`` into a compiled artifact: the description (``description.json`` +
  ``arrays.npz``) and a copy of ``rebuild.py``, so the model can be rebuilt in plain Lava without neurodeploy.
* ``run(artifact, spikes, record)`` executes the artifact's own ``lava/description.json`` + ``arrays.npz`` through
  :func:`rebuild.run <neurodeploy.backends.lava.rebuild.run>` -- only when the artifact's ``lava/rebuild.py`` is
  byte-identical to this package's, so hardware-in-the-loop runs what ships. It runs in-process when lava-nc is
  importable; otherwise it starts a Lava worker (:mod:`.worker`) under a Python that has lava-nc --
  ``options["lava_python"]``, else ``$NEURODEPLOY_LAVA_PYTHON``, else ``.venv-lava/bin/python`` next to the
  source tree -- and talks to it with :mod:`.protocol`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import errors
from neurodeploy.backends.lava import protocol, rebuild
from neurodeploy.backends.lava.describe import describe, save_description
from neurodeploy.backends.lava.rebuild import JSON_NAME, NPZ_NAME, encode
from neurodeploy.errors import BackendError, SerializationError
from neurodeploy.fileio import read_npz

REBUILD_SOURCE = Path(__file__).with_name("rebuild.py")


def emit(artifact, out_dir: str | Path) -> list[str]:
    """Write ``<out_dir>/lava/{description.json, arrays.npz, rebuild.py}``; return their relative paths."""
    target = Path(out_dir) / "lava"
    save_description(describe(artifact.graph), target)
    shutil.copyfile(REBUILD_SOURCE, target / "rebuild.py")
    return [f"lava/{name}" for name in ("description.json", "arrays.npz", "rebuild.py")]


def _lava_importable() -> bool:
    try:
        import lava.magma.core.run_configs  # noqa: F401
    except ImportError:
        return False
    return True


def _lava_python(options: dict[str, Any]) -> str:
    explicit = options.get("lava_python") or os.environ.get("NEURODEPLOY_LAVA_PYTHON")
    if explicit:
        return str(explicit)
    candidate = Path(__file__).resolve().parents[2] / ".venv-lava" / "bin" / "python"
    if candidate.exists():
        return str(candidate)
    raise BackendError("lava-nc is not importable here and no Lava Python was found",
                       fix="set NEURODEPLOY_LAVA_PYTHON to a Python <= 3.10 with lava-nc and neurodeploy installed")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise SerializationError(f"cannot read '{path}' ({type(err).__name__}: {err})",
                                 fix="recompile the model with --target loihi2") from None


def rebuild_sha256(path: Path) -> str:
    """sha256 (hex) of a ``rebuild.py``."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise SerializationError(f"cannot read '{path}' ({err})", fix="recompile the model with --target loihi2"
                                 ) from None


def artifact_description(artifact) -> tuple[dict[str, Any], str]:
    """The description a run executes and the sha256 of the rebuild code that executes it.

    An artifact on disk (``artifact.path``) runs its own ``lava/description.json`` + ``lava/arrays.npz``, and only
    if its ``lava/rebuild.py`` is byte-identical to this package's (the worker checks the same sha256 against its
    own copy), so what runs is what ships. An artifact never written (``path`` None, e.g. straight from
    ``compile_graph``) has no emitted files: its description is what :func:`emit` would write,
    ``describe(artifact.graph)``.
    """
    own = rebuild_sha256(REBUILD_SOURCE)
    path = getattr(artifact, "path", None)
    if path is None:
        return describe(artifact.graph), own
    folder = Path(path) / "lava"
    if not (folder / JSON_NAME).is_file():
        target = (getattr(artifact, "manifest", None) or {}).get("target")
        raise BackendError(f"artifact '{path}' has no lava/{JSON_NAME} (compiled for target {target!r}); "
                           "--backend lava runs the Lava description a loihi2 artifact ships",
                           fix="compile the model with --target loihi2")
    shipped = rebuild_sha256(folder / "rebuild.py")
    if shipped != own:
        raise SerializationError(
            f"'{folder / 'rebuild.py'}' differs from the rebuild.py of this neurodeploy (sha256 {shipped[:12]}... vs "
            f"{own[:12]}...): the artifact was modified or compiled by another version, and --backend lava runs only "
            "the code the artifact ships byte for byte",
            fix="recompile the artifact with this neurodeploy, or run it by hand in plain Lava: "
                "cd lava && python rebuild.py --input IN.npz --output OUT.npz")
    doc = _read_json(folder / JSON_NAME)
    try:
        rebuild.check_format(doc, str(folder / JSON_NAME))
        npz = folder / NPZ_NAME
        arrays = read_npz(npz, "Lava description arrays") if npz.exists() else {}
        return rebuild.decode(doc, arrays), shipped
    except rebuild.DescriptionError as err:
        raise SerializationError(str(err), fix="recompile the model with --target loihi2") from None


def _expected_shapes(description: dict[str, Any], batch: int, steps: int, record: tuple[str, ...],
                     nodes: list[str] | None) -> dict[str, tuple[int, ...]]:
    shapes = {name: (batch, steps, *spec["shape"]) for name, spec in description["outputs"].items()}
    for n in description["neurons"] if nodes is None else nodes:
        for f in record:
            shapes[f"{n}/{f}"] = (batch, steps, *description["neurons"][n]["shape"])
    for node, spec in description.get("plastic", {}).items():
        shapes[f"{node}/weights"] = (batch, *spec["shape"])
    return shapes


def _raise_worker_error(response: dict[str, Any]) -> None:
    err = response.get("error")
    if not isinstance(err, dict) or not isinstance(err.get("type"), str) or not isinstance(err.get("message"), str):
        raise protocol.ProtocolError(f"the Lava worker answered a failure without an error type and message: "
                                     f"{str(response)[:300]}")
    cls = getattr(errors, err["type"], None)
    if isinstance(cls, type) and issubclass(cls, errors.NeurodeployError):
        raise cls(f"(in the Lava worker) {err['message']}")
    raise BackendError(f"the Lava worker failed: {err['type']}: {err['message']}")


def check_response(message, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The result arrays of a worker's answer, or the worker's error re-raised; :class:`protocol.ProtocolError`
    when the answer is malformed (no ``ok`` boolean, missing or extra arrays, wrong shapes, non-integer dtypes)."""
    response, result = message
    if not isinstance(response.get("ok"), bool):
        raise protocol.ProtocolError(f"the Lava worker's answer has no 'ok' boolean: {str(response)[:300]}")
    if not response["ok"]:
        _raise_worker_error(response)
    if set(result) != set(expected):
        raise protocol.ProtocolError(f"the Lava worker answered arrays {sorted(result)}, expected {sorted(expected)}")
    for key, shape in expected.items():
        arr = result[key]
        if arr.shape != shape or arr.dtype.kind not in "biu":
            raise protocol.ProtocolError(f"the Lava worker answered '{key}' as {arr.dtype} {list(arr.shape)}, "
                                         f"expected integers shaped {list(shape)}")
    return result


def _run_in_worker(description: dict[str, Any], spikes: dict[str, np.ndarray], record: tuple[str, ...],
                   nodes: list[str] | None, python: str, sha256: str | None = None) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    header = {"op": "run", "version": protocol.PROTOCOL_VERSION, "description": encode(description, "desc", arrays),
              "record": list(record), "nodes": nodes, "rebuild_sha256": sha256 or rebuild_sha256(REBUILD_SOURCE)}
    arrays.update({f"input/{k}": np.asarray(v) for k, v in spikes.items()})
    frame = protocol.encode(header, arrays)
    limit = protocol.max_payload_bytes()
    if len(frame) > limit:
        raise BackendError(f"the Lava request is {len(frame)} bytes, over the worker's {limit}-byte payload limit",
                           fix="run fewer samples at a time, or raise NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES")
    try:
        proc = subprocess.run([python, "-m", "neurodeploy.backends.lava.worker"], input=frame, capture_output=True,
                              check=False)
    except OSError as err:
        raise BackendError(f"cannot start the Lava worker with {python} ({err})",
                           fix="point NEURODEPLOY_LAVA_PYTHON at an existing Python with lava-nc") from None
    fix = f"check that {python} runs `python -m neurodeploy.backends.lava.worker` of this neurodeploy version"
    try:
        message = protocol.read_message(io.BytesIO(proc.stdout))
        if message is not None:
            batch, steps = next(iter(spikes.values())).shape[:2] if spikes else (0, 0)
            return check_response(message, _expected_shapes(description, batch, steps, record, nodes))
    except protocol.ProtocolError as err:
        raise protocol.ProtocolError(f"the Lava worker ({python}) answered a malformed frame: {err.problem}",
                                     fix=fix) from None
    tail = proc.stderr.decode(errors="replace")[-2000:]
    raise BackendError(f"the Lava worker ({python}) returned no answer (exit {proc.returncode})\n{tail}",
                       fix="check that this Python has lava-nc and neurodeploy installed")


def run(artifact, spikes, record: Iterable[str] = (), nodes: Iterable[str] | None = None,
        **options) -> tuple[dict[str, np.ndarray], None]:
    """Run ``artifact``'s Lava description on Lava fixed_pt; return (arrays, None) with the emulator backend's array
    contract: ``spikes`` (when there is a single output), ``<output>`` and ``<node>/<field>``, each
    ``[B, T, *shape]``. The description is :func:`artifact_description`'s: the artifact's own files."""
    description, sha256 = artifact_description(artifact)
    record = tuple(record)
    nodes = None if nodes is None else list(nodes)
    if not isinstance(spikes, dict):
        names = list(description["inputs"])
        if len(names) != 1:
            raise errors.InputError(f"the model has inputs {names}; pass a dict name -> array")
        spikes = {names[0]: spikes}
    if _lava_importable():
        from neurodeploy.backends.lava.run import run_description

        result = run_description(description, spikes, record=record, nodes=nodes)
    else:
        result = _run_in_worker(description, spikes, record, nodes, _lava_python(options), sha256)
    arrays: dict[str, np.ndarray] = {}
    outputs = list(description["outputs"])
    if len(outputs) == 1:
        arrays["spikes"] = result[outputs[0]]
    arrays.update(result)
    return arrays, None
