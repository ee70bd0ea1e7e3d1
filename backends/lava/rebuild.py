"""Rebuild and run a neurodeploy Lava description as plain Lava processes.

This module depends only on the standard library, numpy, scipy (a Lava dependency) and lava-nc -- never on
neurodeploy -- so it ships inside every ``loihi2`` artifact (``lava/rebuild.py``) and runs there on its own::

    python rebuild.py --input in.npz --output out.npz --record spikes,u,v   # in the folder of description.json

or from Python::

    from rebuild import load_description, build_processes, run
    desc = load_description(".")                      # a directory: description.json + arrays.npz
    out = run(desc, {"in": x}, record=("v",))          # x: [B, T, n_flat] of 0/1; out["<node>/v"]: [B, T, *shape]
    procs = build_processes(desc, {"in": data})        # or build only: data [n_flat, T] ints (RingBuffer layout)

``neurodeploy run/profile --backend lava`` execute an artifact through this very file (the shipped copy must be
byte-identical to the package's), so hardware-in-the-loop runs what ships.

Description layout (format ``neurodeploy-lava``, version 2; field by field in ``docs/lava_description.schema.json``)
------------------------------------------------------------------------------------------------------------------
``{"format": "neurodeploy-lava", "version": 2, "processes": [...], "connections": [...], "inputs": {...},
"neurons": {...}, "outputs": {...}, ["plastic": {...}]}`` where

* each process is ``{"name", "class", "kwargs", "node", "role"}``: ``class`` the dotted Lava class
  (``lava.proc.io.source.RingBuffer``, ``lava.proc.dense.process.Dense`` / ``DelayDense`` / ``LearningDense``,
  ``lava.proc.sparse.process.Sparse`` / ``DelaySparse``, ``lava.proc.lif.process.LIF``); ``kwargs`` its constructor
  arguments under Lava's own names, all integers: ``shape``, ``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``,
  ``weights`` (``[n_out, n_in]``), ``weight_exp``, ``num_weight_bits``, ``delays``, ``num_message_bits``, and
  ``sign_mode`` written BY NAME: ``"MIXED"``, ``"EXCITATORY"`` or ``"INHIBITORY"`` (absent = Lava determines it from
  the weights). The name becomes ``SignMode[name]``; a bare integer is refused, because Lava compares ``sign_mode``
  with ``SignMode`` members and an int passed through unchanged silently clips negative weights to zero (version 1
  wrote integers). For ``LearningDense``, ``learning_rule`` holds the keyword arguments of ``Loihi2FLearningRule``
  (``dw``, ``x1_impulse``, ``x1_tau``, ``y1_impulse``, ``y1_tau``, ``t_epoch``, ``rng_seed``) and its
  post-synaptic LIF's ``s_out`` is connected to its ``s_in_bap``.
  A RingBuffer has no kwargs: its ``data`` (``[n_flat, T]``, time last) is the stimulus given at build time, and
  ``data_shape`` gives ``[n_flat]``.
* a sparse matrix is ``{"coo": {"shape": [n_out, n_in], "row": ..., "col": ..., "data": ...}}`` (Lava receives a
  ``scipy.sparse.csr_matrix``; DelaySparse ``delays`` share the weights' row/col);
* each connection is ``{"src", "src_port", "dst", "dst_port"}`` (``s_out -> s_in``, ``a_out -> a_in`` or
  ``s_out -> s_in_bap``);
* ``plastic[name] = {"process", "post", "shape"}`` (optional): learning synapses whose final weights are read;
* ``inputs[name] = {"process", "shape"}``; ``neurons[name] = {"process", "shape", "readout"}`` (``shape`` is the
  IR shape, Lava processes are flat); ``outputs[name] = {"source", "kind", "shape"}`` with ``kind`` ``spikes``
  (the source neuron's ``s_out``), ``v`` (a readout neuron's voltage) or ``input`` (the stimulus itself).

On disk a description is a directory with ``description.json`` (arrays replaced by ``{"npz": "<key>"}``) and
``arrays.npz`` (read with ``allow_pickle=False``).

Running (:func:`run`): Lava numbers steps ``t = 1 .. T``; every returned array is ``[B, T, *shape]`` and index
``t - 1`` holds Lava step ``t`` (a Monitor's sample). Each batch element is one fresh build + run + stop on
``Loihi2SimCfg(select_tag="fixed_pt")``; only the probed variables get a Monitor, and a connected component none of
whose neurons is observed is not run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "neurodeploy-lava"
VERSION = 2
JSON_NAME = "description.json"
NPZ_NAME = "arrays.npz"
#: ``lava.utils.weightutils.SignMode`` member names a description may use (``NULL`` is not a usable mode).
SIGN_MODES = ("MIXED", "EXCITATORY", "INHIBITORY")
RECORDABLE = ("spikes", "u", "v")
PORTS = {"spikes": "s_out", "u": "u", "v": "v"}
DTYPES = {"spikes": np.uint8, "u": np.int32, "v": np.int32}
SRC_PORTS = ("s_out", "a_out")
DST_PORTS = ("s_in", "a_in", "s_in_bap")


class DescriptionError(ValueError):
    """A description this reader cannot rebuild: wrong format or version, a malformed field, a missing array."""


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
    """Inverse of :func:`encode`: ``{"npz": key}`` becomes ``arrays[key]`` (a missing key is a DescriptionError)."""
    if isinstance(value, dict):
        if set(value) == {"npz"}:
            key = value["npz"]
            if not isinstance(key, str) or key not in arrays:
                raise DescriptionError(f"the description refers to array {key!r}, which its arrays do not hold")
            return np.asarray(arrays[key])
        return {k: decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    return value


def check_format(doc: Any, where: str = "the description") -> None:
    """Refuse anything but a ``neurodeploy-lava`` description of :data:`VERSION` with its top-level fields."""
    if not isinstance(doc, dict):
        raise DescriptionError(f"{where} is not a JSON object (got {type(doc).__name__})")
    if doc.get("format") != FORMAT:
        raise DescriptionError(f"{where} is not a {FORMAT} description (format={doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise DescriptionError(
            f"{where} has description version {doc.get('version')!r}; this rebuild.py reads version {VERSION} only "
            f"(version 1 wrote sign_mode as a bare integer). Fix: recompile the model with a neurodeploy that writes "
            f"version {VERSION}, or use the rebuild.py shipped next to that description")
    for key, kind in (("processes", list), ("connections", list), ("inputs", dict), ("neurons", dict),
                      ("outputs", dict)):
        if not isinstance(doc.get(key), kind):
            raise DescriptionError(f"{where} needs '{key}' as a JSON {kind.__name__}")


def load_description(path: str | Path) -> dict[str, Any]:
    """Read a description directory (``description.json`` + ``arrays.npz``) into memory, checking its version."""
    path = Path(path)
    try:
        doc = json.loads((path / JSON_NAME).read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise DescriptionError(f"cannot read {path / JSON_NAME} ({type(err).__name__}: {err})") from None
    check_format(doc, str(path / JSON_NAME))
    npz = path / NPZ_NAME
    if not npz.exists():
        return decode(doc, {})
    try:
        with np.load(npz, allow_pickle=False) as arrays:
            return decode(doc, {k: arrays[k] for k in arrays.files})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DescriptionError(f"cannot read {npz} ({type(err).__name__}: {err})") from None


# ------------------------------------------------------------------------------------------------------- rebuild
def _csr(value: dict[str, Any]):
    from scipy.sparse import csr_matrix

    coo = value["coo"]
    data = np.asarray(coo["data"], dtype=np.int64)
    return csr_matrix((data, (np.asarray(coo["row"], np.int64), np.asarray(coo["col"], np.int64))),
                      shape=tuple(int(n) for n in coo["shape"]), dtype=np.int64)


def sign_mode(value: Any):
    """``"MIXED"`` / ``"EXCITATORY"`` / ``"INHIBITORY"`` -> ``SignMode[name]``; anything else (ints too) refused."""
    from lava.utils.weightutils import SignMode

    if not isinstance(value, str) or value not in SIGN_MODES:
        raise DescriptionError(
            f"sign_mode must be one of {list(SIGN_MODES)} written by name, got {value!r}. A bare integer is refused: "
            "Lava compares sign_mode with SignMode members, so an int passed through silently clips negative "
            "weights to zero")
    return SignMode[value]


def lava_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Description kwargs -> Lava constructor kwargs (tuples, ``SignMode`` members, int64 arrays, csr matrices)."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and "coo" in value:
            value = _csr(value)
        elif key == "shape":
            value = tuple(int(n) for n in value)
        elif key == "sign_mode":
            value = sign_mode(value)
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
    """Import ``lava.proc.x.y.Class`` from its dotted name: only Lava process classes (subclasses of
    ``AbstractProcess`` in a ``lava.`` module) are accepted."""
    from lava.magma.core.process.process import AbstractProcess

    if not isinstance(dotted, str) or not dotted.startswith("lava."):
        raise DescriptionError(f"refusing to import {dotted!r}: descriptions name lava classes only")
    module, _, name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise DescriptionError(f"cannot import Lava class {dotted!r} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, AbstractProcess)):
        raise DescriptionError(f"refusing {dotted!r}: it is not a Lava process class")
    return cls


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
                raise DescriptionError(f"no stimulus for input '{node}' (RingBuffer '{entry['name']}')")
            stim = np.asarray(data[node], dtype=np.int64)
            expected = tuple(int(n) for n in entry["data_shape"])
            if stim.ndim != len(expected) + 1 or stim.shape[:-1] != expected:
                raise DescriptionError(f"stimulus for '{node}' must be shaped {list(expected) + ['T']}, "
                                       f"got {list(stim.shape)}")
            procs[entry["name"]] = cls(data=stim)
        else:
            procs[entry["name"]] = cls(name=entry["name"], **kwargs)
    for conn in description["connections"]:
        if conn["src_port"] not in SRC_PORTS or conn["dst_port"] not in DST_PORTS:
            raise DescriptionError(f"connection {conn} uses a port other than {SRC_PORTS} -> {DST_PORTS}")
        src = getattr(procs[conn["src"]], conn["src_port"])
        dst = getattr(procs[conn["dst"]], conn["dst_port"])
        src.connect(dst)
    return procs


# ----------------------------------------------------------------------------------------------------------- run
def components(description: dict[str, Any]) -> dict[str, int]:
    """Process name -> connected-component id (Lava compiles and runs one connected component per ``run``)."""
    parent = {p["name"]: p["name"] for p in description["processes"]}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for conn in description["connections"]:
        parent[find(conn["src"])] = find(conn["dst"])
    roots: dict[str, int] = {}
    return {name: roots.setdefault(find(name), len(roots)) for name in parent}


def probes(description: dict[str, Any], record: Iterable[str], nodes: Iterable[str]) -> set[tuple[str, str]]:
    """(neuron node, field) pairs to monitor: those asked for, every output's source, every learner's post."""
    wanted = {(n, f) for n in nodes for f in record}
    for spec in description["outputs"].values():
        if spec["kind"] != "input":
            wanted.add((spec["source"], spec["kind"]))
    for spec in description.get("plastic", {}).values():  # run every learning synapse's component
        wanted.add((spec["post"], "spikes"))
    return wanted


def run_sample(description: dict[str, Any], data: dict[str, np.ndarray], steps: int,
               wanted: set[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """Build once, run ``steps`` Lava steps per observed component, return ``{(node, field): [T, n_flat]}``
    (as Lava reports them) and ``{(plastic node, "weights"): [n_out, n_in]}`` read before ``stop()``."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.monitor.process import Monitor
    from scipy.sparse import SparseEfficiencyWarning

    procs = build_processes(description, data)
    comp = components(description)
    monitors: dict[int, list[tuple[tuple[str, str], Any, Any]]] = {}
    for node, fld in sorted(wanted):
        proc = procs[description["neurons"][node]["process"]]
        mon = Monitor()  # one Monitor per probe: Lava 0.10's Monitor records a single target correctly
        mon.probe(getattr(proc, PORTS[fld]), steps)
        monitors.setdefault(comp[proc.name], []).append(((node, fld), mon, proc))
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    results = {}
    for found in monitors.values():
        anchor = found[0][2]
        try:
            with warnings.catch_warnings():  # DelaySparse edits csr structure on its first step (harmless)
                warnings.simplefilter("ignore", SparseEfficiencyWarning)
                anchor.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            for key, mon, proc in found:
                results[key] = np.asarray(mon.get_data()[proc.name][PORTS[key[1]]])
            for node, spec in description.get("plastic", {}).items():
                if comp[spec["process"]] == comp[anchor.name]:
                    results[(node, "weights")] = np.asarray(procs[spec["process"]].weights.get())
        finally:
            anchor.stop()
    return results


def run(description: dict[str, Any], stimuli: dict[str, np.ndarray], record: Iterable[str] = (),
        nodes: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Run every sample of ``stimuli`` (``{input: [B, T, n_flat]}`` of 0/1) on Lava fixed_pt.

    Returns ``{output: [B, T, *shape], "<node>/<field>": [B, T, *shape]}`` for fields among ``record`` of the
    neurons ``nodes`` (default all), spikes uint8, u and v int32; a learning synapse adds ``"<node>/weights"``
    ``[B, n_out, n_in]`` (int64), its weights after each sample's run.
    """
    record = tuple(record)
    neurons = description["neurons"]
    rec_nodes = list(neurons) if nodes is None else list(nodes)
    stim = {name: np.asarray(stimuli[name]) for name in description["inputs"]}
    batch, steps = next(iter(stim.values())).shape[:2]
    wanted = probes(description, record, rec_nodes)
    traces = {key: np.zeros((batch, steps, int(np.prod(neurons[key[0]]["shape"]))), DTYPES[key[1]])
              for key in wanted}
    plastic = description.get("plastic", {})
    learned = {node: np.zeros((batch, *spec["shape"]), np.int64) for node, spec in plastic.items()}
    for b in range(batch):
        data = {name: np.ascontiguousarray(x[b].T) for name, x in stim.items()}  # Lava layout [n_flat, T]
        for key, values in run_sample(description, data, steps, wanted).items():
            if key[1] == "weights":
                learned[key[0]][b] = np.rint(values).astype(np.int64)
            else:
                traces[key][b] = np.rint(values.reshape(steps, -1)).astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for name, spec in description["outputs"].items():
        shape = tuple(spec["shape"])
        if spec["kind"] == "input":
            out[name] = stim[spec["source"]].astype(np.uint8).reshape(batch, steps, *shape)
        else:
            out[name] = traces[(spec["source"], spec["kind"])].reshape(batch, steps, *shape)
    for n in rec_nodes:
        for f in record:
            out[f"{n}/{f}"] = traces[(n, f)].reshape(batch, steps, *neurons[n]["shape"])
    for node, w in learned.items():
        out[f"{node}/weights"] = w
    return out


# ------------------------------------------------------------------------------------------------ command line
def _stimuli_from_file(description: dict[str, Any], path: str) -> dict[str, np.ndarray]:
    """``{input: [B, T, n_flat]}`` from an .npz holding one array per input (or ``spikes`` for a single input)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DescriptionError(f"cannot read the stimulus {path} ({type(err).__name__}: {err})") from None
    names = list(description["inputs"])
    if len(names) == 1 and names[0] not in arrays and "spikes" in arrays:
        arrays[names[0]] = arrays["spikes"]
    stim, dims = {}, None
    for name in names:
        if name not in arrays:
            raise DescriptionError(f"{path} has no array '{name}' (it holds {sorted(arrays)})")
        x = arrays[name]
        shape = tuple(description["inputs"][name]["shape"])
        if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape or (dims and x.shape[:2] != dims):
            raise DescriptionError(f"{path}: '{name}' must be shaped [B, T, {', '.join(map(str, shape))}] (one B, T "
                                   f"for all inputs), got {list(x.shape)}")
        if not np.isin(x, (0, 1)).all() or x.shape[1] < 1:
            raise DescriptionError(f"{path}: '{name}' must hold 0/1 spikes over at least one step")
        dims = x.shape[:2]
        stim[name] = x.reshape(x.shape[0], x.shape[1], -1).astype(np.int64)
    return stim


def main(argv: list[str] | None = None) -> int:
    """``python rebuild.py [DIR] --input IN.npz --output OUT.npz [--record spikes,u,v] [--nodes a,b]``."""
    parser = argparse.ArgumentParser(description="Rebuild a neurodeploy Lava description and run it on Lava fixed_pt")
    parser.add_argument("directory", nargs="?", default=str(Path(__file__).resolve().parent),
                        help="folder of description.json + arrays.npz (default: this file's folder)")
    parser.add_argument("--input", required=True, help=".npz: one [B, T, *shape] 0/1 array per input")
    parser.add_argument("--output", required=True, help=".npz to write")
    parser.add_argument("--record", default="", help="comma list among spikes,u,v")
    parser.add_argument("--nodes", default=None, help="comma list of neuron nodes to record (default: all)")
    args = parser.parse_args(argv)
    record = tuple(f for f in args.record.split(",") if f)
    try:
        description = load_description(args.directory)
        bad = [f for f in record if f not in RECORDABLE]
        nodes = None if args.nodes is None else [n for n in args.nodes.split(",") if n]
        unknown = [n for n in nodes or () if n not in description["neurons"]]
        if bad or unknown:
            raise DescriptionError(f"cannot record fields {bad} / nodes {unknown}; fields are {list(RECORDABLE)}")
        result = run(description, _stimuli_from_file(description, args.input), record=record, nodes=nodes)
    except (DescriptionError, OSError) as err:
        print(f"rebuild.py: {err}", file=sys.stderr)
        return 2
    np.savez(args.output, **result)
    print(f"wrote {len(result)} arrays to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
