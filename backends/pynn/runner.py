"""``neurodeploy run DIR --backend pynn``: run the emitted PyNN script locally on pyNN.brian2, in a child process.

The script that runs is the one a SpiNNaker user gets (``DIR/pynn/model.py`` when the artifact was compiled for the
spinnaker target, else one emitted into a temporary directory). It is code: it runs as its own process
(``python model.py --simulator brian2 --input ... --output ...`` under this interpreter or ``python=``), never
imported into this one. Inputs and outputs follow the emulator's ``.npz`` contract
(:func:`neurodeploy.backends.emulator.result_arrays`): ``spikes`` [B, T, *input_shape] in; the output spikes (a
readout's v), and with ``record`` ``<node>/spikes`` and ``<node>/v`` out. ``u`` has no recorded counterpart here
(SpiNNaker's I_syn is a different quantity per receptor) and is left out, listed in ``raw["omitted"]``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import BackendError, InputError

from .emit import deploy, write_deployment

RECORDABLE = ("spikes", "u", "v")
_DEPLOY_OPTIONS = ("machine", "shift", "neurons_per_core", "mv_per_unit", "population_size")
_RUN_OPTIONS = ("brian2_target", "directory", "python", "timeout")


def import_brian2():
    """``pyNN.brian2`` imported into this process (tests and tools that build PyNN objects themselves)."""
    try:
        import brian2  # noqa: F401
        import pyNN.brian2 as sim
    except ImportError as err:
        raise BackendError(f"pyNN.brian2 is not available ({err})",
                           fix="pip install 'neurodeploy[pynn]' (PyNN 0.13, Brian2 2.9, numpy < 2.4)") from None
    return sim


def _check_brian2(python: str) -> None:
    if python == sys.executable and (importlib.util.find_spec("pyNN") is None
                                     or importlib.util.find_spec("brian2") is None):
        raise BackendError("pyNN.brian2 is not available in this environment (needed to run the PyNN script locally)",
                           fix="pip install 'neurodeploy[pynn]' (PyNN 0.13, Brian2 2.9, numpy < 2.4)")


def check_stimulus(graph, spikes) -> dict[str, np.ndarray]:
    """{input: [B, T, *shape]} with the graph's input shapes, binary, equal batch and time (errors name the input)."""
    inputs = graph.inputs
    shapes = graph.shapes()
    if not isinstance(spikes, Mapping):
        if len(inputs) != 1:
            raise InputError(f"the model has inputs {inputs}; pass a dict name -> array",
                             fix="store one array per input name in the .npz")
        spikes = {inputs[0]: spikes}
    out, dims = {}, None
    for name in inputs:
        if name not in spikes:
            raise InputError(f"no stimulus given for input '{name}'", fix=f"add an array named '{name}'")
        x = np.asarray(spikes[name])
        shape = tuple(shapes[name])
        if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
            raise InputError(f"input '{name}' must be shaped [B, T, {', '.join(map(str, shape))}], got "
                             f"{list(x.shape)}", fix="reshape the stimulus to [batch, time, *input_shape]")
        if dims is None:
            dims = x.shape[:2]
        elif x.shape[:2] != dims:
            raise InputError(f"input '{name}' has batch/time {x.shape[:2]}, others have {dims}")
        if x.size and not np.isin(x, (0, 1)).all():
            raise InputError(f"input '{name}' holds values other than 0 and 1; SpikeSourceArray inputs are spikes",
                             fix="encode the stimulus as binary spike trains")
        out[name] = x.astype(np.uint8)
    return out


def run_script(directory: str | Path, stimulus: Mapping[str, np.ndarray], record: Iterable[str] = (),
               simulator: str = "brian2", python: str | None = None, brian2_target: str = "numpy",
               timeout: float | None = None, env: Mapping[str, str] | None = None) -> tuple[dict[str, np.ndarray],
                                                                                          dict[str, float]]:
    """Run ``directory/model.py`` as a child process (``python``, default this interpreter) on ``simulator``
    with ``stimulus`` ({input: [B, T, *shape]}); return its result arrays and its build/run/read seconds.

    A failing script raises :class:`BackendError` naming the script, its exit status and the end of its stderr."""
    directory = Path(directory)
    script = directory / "model.py"
    if not script.is_file():
        raise BackendError(f"{script} does not exist", fix="recompile the model with --target spinnaker")
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="neurodeploy-pynn-run-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "input.npz", **{name: np.asarray(x, dtype=np.uint8) for name, x in stimulus.items()})
        command = [python, str(script), "--simulator", simulator, "--input", str(tmp / "input.npz"),
                   "--output", str(tmp / "output.npz"), "--brian2-target", brian2_target,
                   "--timings", str(tmp / "timings.json")]
        fields = [f for f in record if f != "u"]
        if fields:
            command += ["--record", ",".join(fields)]
        try:
            proc = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=timeout,
                                  env=None if env is None else dict(env))
        except subprocess.TimeoutExpired:
            raise BackendError(f"{script} ran longer than {timeout} s on {simulator}",
                               fix="give a longer timeout or fewer samples") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-3000:]
            raise BackendError(f"{script} exited with status {proc.returncode} on {simulator}:\n{tail}",
                               fix="read the script's error above; recompile the artifact if its files were changed")
        with np.load(tmp / "output.npz", allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        timings = json.loads((tmp / "timings.json").read_text())
    return arrays, timings


def run(artifact, spikes, record: Iterable[str] = (), progress: bool = False,
        **options: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run ``artifact`` on pyNN.brian2; return the ``.npz`` dict and a raw dict (timings, omitted fields, notes).

    The artifact's ``pynn/model.py`` runs in a child process (:func:`run_script`). Options: ``machine``, ``shift``,
    ``neurons_per_core``, ``mv_per_unit``, ``population_size`` (re-emit with these into a temporary directory, see
    :func:`.emit.deploy`), ``brian2_target`` ("numpy" default, or "cython"), ``directory`` (an emitted ``pynn/``),
    ``python`` (the interpreter that runs the script; default this one), ``timeout`` (seconds).
    """
    fields = tuple(record)
    bad = [f for f in fields if f not in RECORDABLE]
    if bad:
        raise InputError(f"cannot record {bad}; choose among {RECORDABLE}")
    stimulus = check_stimulus(artifact.graph if hasattr(artifact, "graph") else artifact, spikes)
    deploy_options = {k: options.pop(k) for k in _DEPLOY_OPTIONS if k in options}
    run_options = {k: options.pop(k) for k in _RUN_OPTIONS if k in options}
    if options:
        raise InputError(f"unknown pynn run options {sorted(options)}",
                         fix=f"use {sorted(_DEPLOY_OPTIONS + _RUN_OPTIONS)}")
    python = run_options.get("python") or sys.executable
    _check_brian2(python)
    raw: dict[str, Any] = {"omitted": [f for f in fields if f == "u"]}
    directory = run_options.get("directory")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neurodeploy-pynn-") as tmp:
        if directory is None:
            emitted = Path(artifact.path) / "pynn" if getattr(artifact, "path", None) else None
            if emitted is not None and (emitted / "model.py").is_file() and not deploy_options:
                directory = emitted
            else:
                directory = Path(tmp) / "pynn"
                write_deployment(deploy(artifact, **deploy_options), directory)
        raw["emit_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        arrays, timings = run_script(directory, stimulus, fields, python=python,
                                     brian2_target=run_options.get("brian2_target", "numpy"),
                                     timeout=run_options.get("timeout"))
        raw["process_seconds"] = time.perf_counter() - start
        raw.update(timings)
        params_path = Path(directory) / "params.json"
        raw["notes"] = json.loads(params_path.read_text()).get("notes", []) if params_path.is_file() else []
        raw["directory"] = str(directory)
    return arrays, raw
