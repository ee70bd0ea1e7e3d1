"""Rebuild a neurodeploy Lava description as plain Lava processes.

This module depends only on numpy, scipy (a Lava dependency) and lava-nc -- never on neurodeploy -- so it can be
copied next to a saved description and used on its own::

    from rebuild import load_description, build_processes
    desc = load_description("model.lava")             # a directory: description.json + arrays.npz
    procs = build_processes(desc, {"in": data})        # data: [n_flat, T] ints, Lava RingBuffer layout
    lif = procs["layer1"]
    lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))

Description layout (version 1)
------------------------------
``{"format": "neurodeploy-lava", "version": 1, "processes": [...], "connections": [...], "inputs": {...},
"neurons": {...}, "outputs": {...}}`` where

* each process is ``{"name", "class", "kwargs", "node", "role"}``: ``class`` the dotted Lava class
  (``lava.proc.io.source.RingBuffer``, ``lava.proc.dense.process.Dense`` / ``DelayDense``,
  ``lava.proc.sparse.process.Sparse`` / ``DelaySparse``, ``lava.proc.lif.process.LIF``); ``kwargs`` its constructor
  arguments under Lava's own names, all integers: ``shape``, ``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``,
  ``weights`` (``[n_out, n_in]``), ``weight_exp``, ``num_weight_bits``, ``sign_mode`` (``SignMode`` value: 1 mixed,
  2 excitatory, 3 inhibitory; absent = Lava determines it from the weights), ``delays``, ``num_message_bits``,
  and for ``lava.proc.dense.process.LearningDense`` ``learning_rule``: the keyword arguments of
  ``Loihi2FLearningRule`` (``dw``, ``x1_impulse``, ``x1_tau``, ``y1_impulse``, ``y1_tau``, ``t_epoch``,
  ``rng_seed``); its post-synaptic LIF's ``s_out`` is connected to its ``s_in_bap``.
  A RingBuffer has no kwargs: its ``data`` (``[n_flat, T]``, time last) is the stimulus given at build time, and
  ``data_shape`` gives ``[n_flat]``.
* a sparse matrix is ``{"coo": {"shape": [n_out, n_in], "row": ..., "col": ..., "data": ...}}`` (Lava receives a
  ``scipy.sparse.csr_matrix``; DelaySparse ``delays`` share the weights' row/col);
* each connection is ``{"src", "src_port", "dst", "dst_port"}`` (``s_out -> s_in`` or ``a_out -> a_in``);
* ``plastic[name] = {"process", "post", "shape"}`` (optional): learning synapses whose final weights are read;
* ``inputs[name] = {"process", "shape"}``; ``neurons[name] = {"process", "shape", "readout"}`` (``shape`` is the
  IR shape, Lava processes are flat); ``outputs[name] = {"source", "kind", "shape"}`` with ``kind`` ``spikes``
  (the source neuron's ``s_out``), ``v`` (a readout neuron's voltage) or ``input`` (the stimulus itself).

On disk a description is a directory with ``description.json`` (arrays replaced by ``{"npz": "<key>"}``) and
``arrays.npz``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "neurodeploy-lava"
VERSION = 1
JSON_NAME = "description.json"
NPZ_NAME = "arrays.npz"


# --------------------------------------------------------------------------------------------------- file format
def encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """Replace every ndarray inside ``value`` by ``{"npz": key}`` and store it in ``arrays`` (JSON-ready result)."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"npz": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: encode(v, f"{key}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    return value


def decode(value: Any, arrays: Any) -> Any:
    """Inverse of :func:`encode`: ``{"npz": key}`` becomes ``arrays[key]``."""
    if isinstance(value, dict):
        if set(value) == {"npz"}:
            return np.asarray(arrays[value["npz"]])
        return {k: decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    return value


def load_description(path: str | Path) -> dict[str, Any]:
    """Read a description directory (``description.json`` + ``arrays.npz``) into memory."""
    path = Path(path)
    doc = json.loads((path / JSON_NAME).read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path / JSON_NAME} is not a {FORMAT} description (format={doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise ValueError(f"{path / JSON_NAME} has version {doc.get('version')!r}; this reader knows {VERSION}")
    npz = path / NPZ_NAME
    if npz.exists():
        with np.load(npz, allow_pickle=False) as arrays:
            return decode(doc, {k: arrays[k] for k in arrays.files})
    return decode(doc, {})


# ------------------------------------------------------------------------------------------------------- rebuild
def _csr(value: dict[str, Any]):
    from scipy.sparse import csr_matrix

    coo = value["coo"]
    data = np.asarray(coo["data"], dtype=np.int64)
    return csr_matrix((data, (np.asarray(coo["row"], np.int64), np.asarray(coo["col"], np.int64))),
                      shape=tuple(int(n) for n in coo["shape"]), dtype=np.int64)


def lava_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Description kwargs -> Lava constructor kwargs (tuples, ``SignMode`` members, int64 arrays, csr matrices)."""
    from lava.utils.weightutils import SignMode

    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and "coo" in value:
            value = _csr(value)
        elif key == "shape":
            value = tuple(int(n) for n in value)
        elif key == "sign_mode":
            value = SignMode(int(value))
        elif key == "learning_rule":
            from lava.magma.core.learning.learning_rule import Loihi2FLearningRule

            value = Loihi2FLearningRule(**value)
        elif isinstance(value, np.ndarray | list):
            value = np.asarray(value, dtype=np.int64)
        elif isinstance(value, bool | np.bool_):
            value = bool(value)
        elif isinstance(value, int | np.integer):
            value = int(value)
        out[key] = value
    return out


def lava_class(dotted: str) -> type:
    """Import ``lava.proc.x.y.Class`` from its dotted name (only ``lava.`` classes are accepted)."""
    if not dotted.startswith("lava."):
        raise ValueError(f"refusing to import {dotted!r}: descriptions name lava classes only")
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_processes(description: dict[str, Any], data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Create and connect every process of ``description``; return ``{process name: Lava process}``.

    ``data[input name]`` is the stimulus of that Input's RingBuffer, ``[n_flat, T]`` integers (time last). A
    RingBuffer sends column ``(t - 1) mod T`` at Lava step ``t``.
    """
    procs: dict[str, Any] = {}
    input_by_process = {spec["process"]: name for name, spec in description["inputs"].items()}
    for entry in description["processes"]:
        cls = lava_class(entry["class"])
        kwargs = lava_kwargs(entry["kwargs"])
        if entry["class"].endswith(".RingBuffer"):
            node = input_by_process.get(entry["name"], entry["name"])
            if node not in data:
                raise KeyError(f"no stimulus for input '{node}' (RingBuffer '{entry['name']}')")
            stim = np.asarray(data[node], dtype=np.int64)
            expected = tuple(int(n) for n in entry["data_shape"])
            if stim.ndim != len(expected) + 1 or stim.shape[:-1] != expected:
                raise ValueError(f"stimulus for '{node}' must be shaped {list(expected) + ['T']}, got {stim.shape}")
            procs[entry["name"]] = cls(data=stim)
        else:
            procs[entry["name"]] = cls(name=entry["name"], **kwargs)
    for conn in description["connections"]:
        src = getattr(procs[conn["src"]], conn["src_port"])
        dst = getattr(procs[conn["dst"]], conn["dst_port"])
        src.connect(dst)
    return procs
