"""``neurodeploy run DIR --backend pynn``: run the emitted PyNN script locally on pyNN.brian2.

The script that runs is the one a SpiNNaker user gets (``DIR/pynn/model.py`` when the artifact was compiled for the
spinnaker target, else one emitted into a temporary directory), imported as a module and driven through its
``Network`` class with ``pyNN.brian2``. Inputs and outputs follow the emulator's ``.npz`` contract
(:func:`neurodeploy.backends.emulator.result_arrays`): ``spikes`` [B, T, *input_shape] in; the output spikes (a
readout's v), and with ``record`` ``<node>/spikes`` and ``<node>/v`` out. ``u`` has no recorded counterpart here
(SpiNNaker's I_syn is a different quantity per receptor) and is left out, listed in ``raw["omitted"]``.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from neurodeploy.errors import BackendError, InputError

from .emit import deploy, write_deployment

RECORDABLE = ("spikes", "u", "v")
_DEPLOY_OPTIONS = ("machine", "shift", "neurons_per_core", "mv_per_unit", "population_size")


def load_script(path: str | Path) -> ModuleType:
    """Import an emitted ``model.py`` as a module (without running its ``main``)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"neurodeploy_pynn_model_{abs(hash(str(path)))}", path)
    if spec is None or spec.loader is None:
        raise BackendError(f"cannot load the PyNN script {path}", fix="recompile the model for --target spinnaker")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_brian2():
    try:
        import brian2  # noqa: F401
        import pyNN.brian2 as sim
    except ImportError as err:
        raise BackendError(f"pyNN.brian2 is not available ({err})",
                           fix="pip install 'neurodeploy[pynn]' (PyNN 0.13, Brian2 2.9, numpy < 2.4)") from None
    return sim


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


def run(artifact, spikes, record: Iterable[str] = (), progress: bool = False,
        **options: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run ``artifact`` on pyNN.brian2; return the ``.npz`` dict and a raw dict (timings, omitted fields, notes).

    Options: ``machine``, ``shift``, ``neurons_per_core``, ``mv_per_unit``, ``population_size`` (re-emit with these, see
    :func:`.emit.deploy`), ``brian2_target`` ("numpy" default, or "cython"), ``directory`` (an emitted ``pynn/``).
    """
    fields = tuple(record)
    bad = [f for f in fields if f not in RECORDABLE]
    if bad:
        raise InputError(f"cannot record {bad}; choose among {RECORDABLE}")
    stimulus = check_stimulus(artifact.graph if hasattr(artifact, "graph") else artifact, spikes)
    deploy_options = {k: options.pop(k) for k in _DEPLOY_OPTIONS if k in options}
    brian2_target = options.pop("brian2_target", "numpy")
    directory = options.pop("directory", None)
    if options:
        raise InputError(f"unknown pynn run options {sorted(options)}",
                         fix=f"use {sorted(_DEPLOY_OPTIONS + ('brian2_target', 'directory'))}")
    raw: dict[str, Any] = {"omitted": [f for f in fields if f == "u"]}
    sim = import_brian2()
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
        module = load_script(Path(directory) / "model.py")
        params, data = module.load_model(directory)
        start = time.perf_counter()
        network = module.Network(sim, params, data, record=[f for f in fields if f != "u"],
                                 brian2_target=brian2_target)
        raw["build_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        try:
            arrays = network.run(stimulus)
        finally:
            sim.end()
        raw["run_seconds"] = time.perf_counter() - start
        raw["notes"] = params.get("notes", [])
        raw["directory"] = str(directory)
    return arrays, raw
