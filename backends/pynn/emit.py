"""Write the PyNN deployment of a compiled artifact: ``pynn/model.py``, ``data.npz``, ``params.json``, reports.

``deploy`` does the work in memory (netlist, 16-bit weights, delay plan, mapping); ``emit`` writes it::

    out_dir/pynn/model.py           the network as PyNN code (imports pyNN.spiNNaker by default), see .codegen
    out_dir/pynn/nd_support.py      stimulus/result files and simulator workarounds used by model.py (.nd_support)
    out_dir/pynn/data.npz           per projection pre, post, weight [nA], delay [ms], units; per population i_offset
    out_dir/pynn/params.json        populations (cell type, parameters), projections, inputs, outputs, notes
    out_dir/pynn/quantization.json  16-bit weights per population/receptor/projection, delays, s16.15 rounding
    out_dir/pynn/quantization.npz   every zeroed / saturated synapse: <projection>/zeroed rows (pre, post, units, nA)
    out_dir/pynn/mapping.json       cores, chips, boards, SDRAM, routing entries, delay-extension cores
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import __version__
from neurodeploy.errors import InputError, SerializationError

from .codegen import model_source
from .fixedpoint import fixed_point_report
from .hardware import SpiNNakerSpec, load_spec
from .mapping import atoms_per_core, mapping_report, split_populations
from .netlist import Netlist, build_netlist
from .weights import encode_weights, plan_delays

PARAMS_FORMAT = "neurodeploy-pynn"
PARAMS_VERSION = 1
SUPPORT = Path(__file__).with_name("nd_support.py")
FILES = ("model.py", "nd_support.py", "data.npz", "params.json", "quantization.json", "quantization.npz",
         "mapping.json")


@dataclass
class Deployment:
    """A graph prepared for SpiNNaker: the netlist (weights rounded to the board's grid) and every report."""

    netlist: Netlist
    spec: SpiNNakerSpec
    quantization: dict[str, Any]
    mapping: dict[str, Any]
    per_core: dict[str, int]
    source: dict[str, Any] = field(default_factory=dict)


def _spec_for(artifact, machine: str | None) -> SpiNNakerSpec:
    if machine is not None:
        return load_spec(machine)
    profile = (getattr(artifact, "manifest", None) or {}).get("profile", "spinnaker1")
    try:
        return load_spec(profile)
    except SerializationError:  # compiled for another target: preview it on SpiNNaker 1
        return load_spec("spinnaker1")


def _population_size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InputError(f"population_size = {value!r} is not a positive number of neurons",
                         fix="give the neurons per PyNN population (e.g. 10240, a multiple of the neurons per "
                             "core), or None for one population per node")
    return int(value)


def deploy(artifact, machine: str | None = None, shift: Any = "worst_case", neurons_per_core: Any = None,
           mv_per_unit: float = 1.0, population_size: int | None = None,
           on_stage: Callable[[str, float], None] | None = None) -> Deployment:
    """Prepare ``artifact`` (an :class:`~neurodeploy.artifact.Artifact` or a quantized graph) for SpiNNaker.

    ``machine``: profile name or path (default: the artifact's profile, else spinnaker1); ``shift``: weight shift
    policy (see :mod:`.weights`); ``neurons_per_core``: int or {node: int}; ``mv_per_unit``: mV per float
    unit of the trained model; ``population_size``: neurons per PyNN population (``None``: one population per IR
    node); larger nodes are built as populations of ``population_size`` contiguous neurons with one projection per
    connected (pre block, post block, receptor, layer) (:func:`.mapping.split_populations`), which is what the
    script builds and what the mapping report describes (sPyNNaker reserves synaptic rows on every core for every
    core of each pre population, so one population of 1M neurons does not place). Weights and shifts are chosen
    per node before the split: every block of a node has the node's shifts and exactly its weights and delays.
    ``on_stage(stage, seconds)`` is called after each stage (netlist, weights, split, delays, mapping).
    """
    size = _population_size(population_size)
    graph = getattr(artifact, "graph", artifact)
    spec = _spec_for(artifact, machine)
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        if on_stage is not None:
            on_stage(name, time.perf_counter() - clock)
        clock = time.perf_counter()

    net = build_netlist(graph, dt=spec.timestep_ms, mv_per_unit=mv_per_unit)
    stage("netlist")
    weights = encode_weights(net, spec, shift)
    stage("weights")
    blocks: dict[str, list[str]] = {}
    if size is not None:
        net, blocks = split_populations(net, size, consume=True)
        stage("split")
    delays = plan_delays(net, spec)
    stage("delays")
    per_core = atoms_per_core(net, spec, neurons_per_core)
    mapping = mapping_report(net, spec, delays, neurons_per_core)
    mapping["pynn"] = {"population_size": size, "populations": len(net.populations),
                       "projections": len(net.projections), "synapses": int(sum(p.size for p in net.projections)),
                       "split": blocks}
    stage("mapping")
    quantization = {"weights": weights, "delays": delays, "fixed_point": fixed_point_report(net, spec.timestep_ms),
                    "notes": list(net.notes)}
    manifest = getattr(artifact, "manifest", None) or {}
    source = {"target": manifest.get("target"), "profile": manifest.get("profile"), "source": manifest.get("source")}
    return Deployment(net, spec, quantization, mapping, per_core, source)


def params_json(dep: Deployment) -> dict[str, Any]:
    net, spec = dep.netlist, dep.spec
    pops: dict[str, Any] = {}
    nodes: dict[str, Any] = {}
    for name, pop in net.populations.items():
        entry: dict[str, Any] = {"cell_type": pop.cell_type, "size": pop.size, "shape": list(pop.shape),
                                 "neurons_per_core": dep.per_core[name], "node": pop.node, "offset": pop.offset}
        node = nodes.setdefault(pop.node, {"shape": None, "populations": []})
        node["populations"].append(name)
        if pop.node == name:
            node["shape"] = list(pop.shape)
        if pop.conversion is not None:
            conv = pop.conversion
            params = conv.pynn_parameters(np.zeros(0))
            params.pop("i_offset")
            w = dep.quantization["weights"]["populations"][pop.node]  # shifts are per node (chosen before a split)
            entry.update(parameters=params, k_per_mv=conv.k_per_mv, continuous_gain=conv.continuous_gain,
                         readout=conv.readout,
                         max_expected_summed_weight=[w["excitatory"]["max_expected_summed_weight"],
                                                     w["inhibitory"]["max_expected_summed_weight"]],
                         shifts={r: w[r]["shift"] for r in ("excitatory", "inhibitory")},
                         conversion=conv.to_json())
        pops[name] = entry
    projections = []
    for p in net.projections:
        post = net.populations[p.post]
        projections.append({"label": p.label, "synapse": p.synapse, "pre": p.pre, "post": p.post,
                            "receptor": p.receptor, "layer": p.layer, "synapses": p.size,
                            "continuous_gain": post.conversion.continuous_gain,
                            "weight_unit": "mV" if post.cell_type == "IF_curr_delta" else "nA",
                            "max_delay_ms": float(p.delay.max() * spec.timestep_ms)})
    outputs = {}
    for out, src in net.outputs.items():
        conv = net.node_populations(src)[0].conversion
        outputs[out] = {"population": src, "field": "v" if conv is not None and conv.readout else "spikes"}
    inputs = {n: list(p.shape) for n, p in net.populations.items() if p.is_source}
    for name, node in nodes.items():
        if node["shape"] is None:  # split: the node's shape from the graph
            node["shape"] = list(net.node_shapes[name])
    return {"format": PARAMS_FORMAT, "version": PARAMS_VERSION, "neurodeploy": __version__,
            "machine": spec.name, "timestep_ms": spec.timestep_ms, "populations": pops, "projections": projections,
            "nodes": nodes, "inputs": inputs, "outputs": outputs, "notes": list(net.notes), "source": dep.source,
            "units": {"weight": "nA (IF_curr_delta: sPyNNaker's weight units, see docs)", "delay": "ms",
                      "i_offset": "nA", "v": "mV; Loihi integer v = mV * k_per_mv"}}


def data_arrays(dep: Deployment) -> dict[str, np.ndarray]:
    net, dt = dep.netlist, dep.spec.timestep_ms
    arrays: dict[str, np.ndarray] = {}
    for name, pop in net.populations.items():
        if pop.i_offset is not None:
            arrays[f"pop/{name}/i_offset"] = np.asarray(pop.i_offset, dtype=np.float64)
    for p in net.projections:
        key = f"proj/{p.label}/"
        arrays[key + "pre"] = p.pre_idx.astype(np.int32)
        arrays[key + "post"] = p.post_idx.astype(np.int32)
        arrays[key + "weight"] = p.weight.astype(np.float64)
        arrays[key + "delay"] = (p.delay * dt).astype(np.float64)
        arrays[key + "units"] = p.units.astype(np.float64)
    return arrays


def _dump(data: Any, sort_keys: bool = True) -> str:
    return json.dumps(data, indent=1, sort_keys=sort_keys, default=_default) + "\n"


def _default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_deployment(dep: Deployment, directory: str | Path, title: str = "") -> list[str]:
    """Write the deployment files into ``directory`` (created); returns their paths relative to its parent."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    title = title or f"PyNN model for {dep.spec.name}, generated by neurodeploy {__version__}"
    params, data = params_json(dep), data_arrays(dep)
    (directory / "model.py").write_text(model_source(params, data, title))
    (directory / "nd_support.py").write_text(SUPPORT.read_text())
    with open(directory / "data.npz", "wb") as fh:
        np.savez(fh, **data)
    (directory / "params.json").write_text(_dump(params, sort_keys=False))  # keeps creation order
    (directory / "quantization.json").write_text(_dump(dep.quantization))
    with open(directory / "quantization.npz", "wb") as fh:
        np.savez(fh, **dep.netlist.report_arrays)
    (directory / "mapping.json").write_text(_dump(dep.mapping))
    return [f"{directory.name}/{f}" for f in FILES]


def emit(artifact, out_dir: str | Path, **options: Any) -> list[str]:
    """Backend hook of the compiler: write ``out_dir/pynn/`` for ``artifact``; returns the files written
    (relative to ``out_dir``). Options as :func:`deploy`."""
    dep = deploy(artifact, **options)
    source = (getattr(artifact, "manifest", None) or {}).get("source") or {}
    graph = getattr(artifact, "graph", artifact)
    name = source.get("path") or source.get("name") or (getattr(graph, "meta", None) or {}).get("name") \
        or "a neurodeploy model"
    return write_deployment(dep, Path(out_dir) / "pynn", title=f"{name} on {dep.spec.name} through PyNN "
                                                               f"(neurodeploy {__version__})")
