"""The registry face of the Lava backend: ``emit`` (compile time) and ``run`` (run time).

* ``emit(artifact, out_dir)`` writes ``lava/`` into a compiled artifact: the description (``description.json`` +
  ``arrays.npz``) and a copy of ``rebuild.py``, so the model can be rebuilt in plain Lava without neurodeploy.
* ``run(artifact, spikes, record)`` runs in-process when lava-nc is importable; otherwise it starts a Lava worker
  (:mod:`.worker`) under a Python that has lava-nc -- ``options["lava_python"]``, else ``$NEURODEPLOY_LAVA_PYTHON``,
  else ``.venv-lava/bin/python`` next to the source tree -- and talks to it with :mod:`.protocol`.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import errors
from neurodeploy.backends.lava import protocol
from neurodeploy.backends.lava.describe import describe, save_description
from neurodeploy.backends.lava.rebuild import encode
from neurodeploy.errors import BackendError

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


def _run_in_worker(description: dict[str, Any], spikes: dict[str, np.ndarray], record: tuple[str, ...],
                   nodes: list[str] | None, python: str) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    header = {"op": "run", "version": protocol.PROTOCOL_VERSION, "description": encode(description, "desc", arrays),
              "record": list(record), "nodes": nodes}
    arrays.update({f"input/{k}": np.asarray(v) for k, v in spikes.items()})
    try:
        proc = subprocess.run([python, "-m", "neurodeploy.backends.lava.worker"], input=protocol.encode(header, arrays),
                              capture_output=True, check=False)
    except OSError as err:
        raise BackendError(f"cannot start the Lava worker with {python} ({err})",
                           fix="point NEURODEPLOY_LAVA_PYTHON at an existing Python with lava-nc") from None
    try:
        message = protocol.read_message(io.BytesIO(proc.stdout))
    except protocol.ProtocolError as err:
        message, detail = None, str(err)
    else:
        detail = ""
    if message is None:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise BackendError(f"the Lava worker ({python}) returned no answer (exit {proc.returncode}) {detail}\n{tail}",
                           fix="check that this Python has lava-nc and neurodeploy installed")
    response, result = message
    if not response.get("ok"):
        err = response.get("error", {})
        cls = getattr(errors, str(err.get("type")), None)
        if isinstance(cls, type) and issubclass(cls, errors.NeurodeployError):
            raise cls(f"(in the Lava worker) {err.get('message')}")
        raise BackendError(f"the Lava worker failed: {err.get('type')}: {err.get('message')}")
    return result


def run(artifact, spikes, record: Iterable[str] = (), nodes: Iterable[str] | None = None,
        **options) -> tuple[dict[str, np.ndarray], None]:
    """Run ``artifact`` on Lava fixed_pt; return (arrays, None) with the emulator backend's array contract:
    ``spikes`` (when there is a single output), ``<output>`` and ``<node>/<field>``, each ``[B, T, *shape]``."""
    description = describe(artifact.graph)
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
        result = _run_in_worker(description, spikes, record, nodes, _lava_python(options))
    arrays: dict[str, np.ndarray] = {}
    outputs = list(description["outputs"])
    if len(outputs) == 1:
        arrays["spikes"] = result[outputs[0]]
    arrays.update(result)
    return arrays, None
