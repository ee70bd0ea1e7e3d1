"""Operation counts from an emulator run: per node, per core, and NeuroBench's metric names.

The run is the bit-accurate emulator (:class:`neurodeploy.emulator.Program`, equal to Lava to the last bit), so
every count is flagged ``simulated``. ``B`` samples, ``T`` steps each; ``s_i(b, t)`` is the output of neuron (or
stimulus element) ``i`` -- an Input's "spikes" are the non-zero stimulus entries.

Per neuron node (``n`` neurons):

* ``spikes = sum_{b,t,i} s_i(b, t)``; ``spikes_per_step[t] = sum_{b,i} s_i(b, t)``;
* ``neuron_updates = n * T * B`` (every neuron is updated every step);
  ``active_updates`` = neuron-steps whose state is non-zero after the update (``u != 0 or v != 0``), the rest
  are *inactive* (a neuron at rest with nothing to integrate);
* ``activation_sparsity = 1 - spikes / (n * T * B)`` (NeuroBench: the fraction of zero activations).

Per synapse node (source ``src`` with ``n_in`` outputs, target with ``n_out`` neurons):

* *effective synapses*: the non-zero weights as the emulator and Lava execute them -- the stored mantissas
  clipped and truncated by sign mode (Lava ``clip_weights`` + ``truncate_weights``), entries with the same
  (post, pre, delay) summed first; a (post, pre) pair connected with ``k`` different delays is ``k`` synapses.
  ``fanout_i`` is the number of effective synapses leaving presynaptic neuron ``i``;
* ``synaptic_ops = sum_i spikes[src]_i * fanout_i`` (each presynaptic spike times its non-zero outgoing synapses;
  equal to ``SimResult.synaptic_ops`` whenever quantization zeroes no stored weight);
  ``events_in[j] = sum_i spikes[src]_i * synapses(j, i)`` is the part processed at target neuron ``j``;
* ``dense_ops = D * T * B`` with ``D`` the structural synapses evaluated by a dense (ANN-style) pass per step:
  Dense ``n_out * n_in``; Conv2d the kernel taps that fall inside the padded input, summed over outputs; Sparse
  the stored entries (NeuroBench's *Dense* synaptic operations);
* NeuroBench's *Effective ACs* are the synaptic ops of binary activations (a spike adds a weight) and
  *Effective MACs* those of graded activations (``num_message_bits > 0``: a multiply-accumulate);
* ``connection_sparsity = zeros / parameters``: Dense over its (effective) weight matrix, Conv2d over its kernel,
  Sparse over the dense equivalent ``n_out * n_in``;
* ``footprint_bytes = ceil(sum_field size(field) * bits(field) / 8)`` over the integer parameters at their bit
  widths (``QuantInfo.bits``, else :data:`DEFAULT_BITS`; Sparse indices at ``ceil(log2(n))`` bits; float graphs
  at 32 bits per value, without exponents).

Per core (a slice ``[start, stop)`` of a neuron node, or a spike-source core of an Input): the node counts
restricted to the slice, ``synaptic_ops_in = sum_j events_in[j]`` over the slice's neurons and every synapse into
the node, and ``spike_messages = sum_i spikes_i * dest_cores_i`` with ``dest_cores_i`` the number of distinct
cores that neuron ``i`` has an effective synapse into (one message per destination core, as Loihi's output axons).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from neurodeploy.emulator import Program
from neurodeploy.errors import InputError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import inferred_sign_mode, op_matrix, synapse_entries
from neurodeploy.ir.ops import Conv2d, Dense, Sparse, SynapseOp

FLOAT_BITS = 32
#: At most this many recorded neuron-steps (u, v and spikes: 9 bytes each in integer mode) per emulator chunk.
MAX_CHUNK_ELEMENTS = 20_000_000
#: Field widths used when a quantized op's ``QuantInfo.bits`` does not name a field (Loihi's, as in loihi2.toml).
DEFAULT_BITS = {"weight": 8, "weight_exp": 4, "delays": 6, "du": 12, "dv": 12, "vth": 17, "bias": 13, "bias_exp": 3}


@dataclass
class SynapseStructure:
    """Static facts of one synapse op: effective synapse counts ``[n_out, n_in]`` and NeuroBench quantities."""

    name: str
    source: str
    target: str
    synapses: sp.csr_matrix  # entry (j, i) = number of effective synapses from i to j (one per delay)
    dense_per_step: int
    parameters: int
    nonzero_parameters: int
    graded: bool
    footprint_bits: int

    @property
    def fanout(self) -> np.ndarray:
        return np.asarray(self.synapses.sum(axis=0)).ravel().astype(np.int64)


@dataclass
class RunCounts:
    """Raw per-neuron counts of one or several emulator runs (arrays, not JSON); see the module docstring."""

    graph: Graph
    batch: int
    steps: int
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # node -> [n] spikes per neuron (inputs too)
    spikes_per_step: dict[str, np.ndarray] = field(default_factory=dict)  # node -> [T]
    active_updates: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> [n]
    synapses: dict[str, SynapseStructure] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    emulator_synaptic_ops: dict[str, int] = field(default_factory=dict)
    integer: bool = True
    readouts: tuple[str, ...] = ()

    def events_in(self, syn: str) -> np.ndarray:
        """Synaptic events processed at each target neuron of ``syn`` (``[n_out]``)."""
        s = self.synapses[syn]
        return np.asarray(s.synapses @ self.spikes[s.source].astype(np.float64)).ravel().astype(np.int64)

    def synaptic_ops(self, syn: str) -> int:
        s = self.synapses[syn]
        return int(self.spikes[s.source] @ s.fanout)

    @property
    def neuron_nodes(self) -> list[str]:
        return list(self.active_updates)

    @property
    def input_nodes(self) -> list[str]:
        return [n for n in self.spikes if n not in self.active_updates]


# ----------------------------------------------------------------------------------------------- structure
def _effective(values: np.ndarray, op: SynapseOp, sign_mode: str, integer: bool) -> np.ndarray:
    if not integer:
        return np.asarray(values, dtype=np.float64)
    return ar.effective_weights(np.rint(values).astype(np.int64), sign_mode, op.num_weight_bits)


def _footprint_bits(op, n_in: int, n_out: int) -> int:
    """Integer parameters of ``op`` at their bit widths (see the module docstring)."""
    quant = getattr(op, "quant", None)
    bits = dict(quant.bits) if quant is not None else {}

    def width(name: str) -> int:
        if quant is None:  # float form: values at 32 bits; exponents exist only in the integer form
            return 0 if name in ("weight_exp", "bias_exp") else FLOAT_BITS
        if name == "weight" and "weight" not in bits and getattr(op, "num_weight_bits", None):
            return int(op.num_weight_bits)
        return int(bits.get(name, DEFAULT_BITS[name]))

    if isinstance(op, SynapseOp):
        weights = op.value if isinstance(op, Sparse) else op.weight
        total = np.size(weights) * width("weight") + width("weight_exp")
        if op.delays is not None:
            total += np.size(op.delays) * width("delays")
        if isinstance(op, Sparse):
            total += np.size(op.row) * max(1, math.ceil(math.log2(max(n_out, 2))))
            total += np.size(op.col) * max(1, math.ceil(math.log2(max(n_in, 2))))
        return int(total)
    total = 0
    for name in ("du", "dv", "vth", "bias", "bias_exp"):
        if hasattr(op, name):
            total += np.size(getattr(op, name)) * width(name)
    return int(total)


def synapse_structure(graph: Graph, name: str, integer: bool = True) -> SynapseStructure:
    """The :class:`SynapseStructure` of synapse node ``name`` of a folded graph (see the module docstring)."""
    op = graph.nodes[name]
    (src,) = graph.predecessors(name)
    targets = [t for t in graph.successors(name) if graph.nodes[t].role == "neuron"]
    shapes = graph.shapes()
    in_shape = shapes[src]
    rows, cols, values, delays, shape = synapse_entries(op, in_shape)
    mode = (op.sign_mode or inferred_sign_mode(rows, cols, values, shape)) if integer else "mixed"
    counts = sp.csr_matrix(shape, dtype=np.int64)
    for d in np.unique(delays) if delays.size else []:
        keep = delays == d
        m = sp.csr_matrix((values[keep].astype(np.float64), (rows[keep], cols[keep])), shape=shape)
        m.sum_duplicates()
        m.data = _effective(m.data, op, mode, integer).astype(np.float64)
        m.eliminate_zeros()
        counts = counts + (m != 0).astype(np.int64)
    n_out, n_in = shape
    if isinstance(op, Dense):
        dense = int(np.size(op.weight))
        params = dense
        nonzero = int(np.count_nonzero(_effective(np.asarray(op.weight).ravel(), op, mode, integer)))
    elif isinstance(op, Conv2d):
        ones = op.replace(weight=np.ones_like(np.asarray(op.weight), dtype=np.float64))
        dense = int(op_matrix(ones, in_shape).nnz)
        params = int(np.size(op.weight))
        nonzero = int(np.count_nonzero(_effective(np.asarray(op.weight).ravel(), op, mode, integer)))
    else:
        dense = int(np.size(op.value))
        params = int(n_out * n_in)
        nonzero = int((counts != 0).nnz)
    return SynapseStructure(name=name, source=src, target=targets[0] if targets else "", synapses=counts.tocsr(),
                            dense_per_step=dense, parameters=params, nonzero_parameters=nonzero,
                            graded=op.num_message_bits > 0, footprint_bits=_footprint_bits(op, n_in, n_out))


# ----------------------------------------------------------------------------------------------- running
def _stimulus_dict(program: Program, spikes) -> dict[str, np.ndarray]:
    if isinstance(spikes, Mapping):
        return {k: np.asarray(v) for k, v in spikes.items()}
    if len(program.inputs) != 1:
        raise InputError(f"the model has inputs {program.inputs}; pass a dict name -> array",
                         fix="store one array per input name in the .npz")
    return {program.inputs[0]: np.asarray(spikes)}


def count_run(graph: Graph, spikes, batch_size: int = 32, progress: bool = False) -> RunCounts:
    """Run ``graph`` on ``spikes`` (``[B, T, *shape]`` or a dict per input) in chunks of ``batch_size`` samples
    and return its :class:`RunCounts`. Memory grows with ``batch_size * T * neurons`` (u, v and spikes recorded), so
    chunks are cut further to hold at most :data:`MAX_CHUNK_ELEMENTS` neuron-steps."""
    if batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}", fix="pass --batch-size 1 or more")
    program = Program(graph)
    stimulus = _stimulus_dict(program, spikes)
    first = next(iter(stimulus.values()))
    if first.ndim < 2:
        raise InputError(f"the stimulus must be shaped [B, T, ...], got {list(first.shape)}",
                         fix="save spikes=[batch, time, *input_shape]")
    batch, steps = int(first.shape[0]), int(first.shape[1])
    g = program.graph
    shapes = program.shapes
    counts = RunCounts(graph=g, batch=batch, steps=steps, integer=program.integer)
    for name in list(program.inputs) + list(program.neurons):
        n = int(math.prod(shapes[name]))
        counts.sizes[name] = n
        counts.spikes[name] = np.zeros(n, np.int64)
        counts.spikes_per_step[name] = np.zeros(steps, np.int64)
    for name in program.neurons:
        counts.active_updates[name] = np.zeros(counts.sizes[name], np.int64)
    counts.readouts = tuple(n for n, r in program.neurons.items() if r.readout)
    counts.emulator_synaptic_ops = {n: 0 for n in program.synapses}
    neurons = sum(counts.sizes[n] for n in program.neurons)
    batch_size = max(1, min(batch_size, MAX_CHUNK_ELEMENTS // max(1, steps * neurons)))
    starts = range(0, batch, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="counting", unit="chunk")
    for start in starts:
        chunk = {k: v[start:start + batch_size] for k, v in stimulus.items()}
        result = program.run(chunk, record=("spikes", "u", "v"))
        b = next(iter(chunk.values())).shape[0]
        for name in program.inputs:
            x = chunk[name].reshape(b, steps, -1) != 0
            counts.spikes[name] += x.sum(axis=(0, 1))
            counts.spikes_per_step[name] += x.sum(axis=(0, 2))
        for name in program.neurons:
            s = result.recorded[f"{name}/spikes"].reshape(b, steps, -1).astype(np.int64)
            u = result.recorded[f"{name}/u"].reshape(b, steps, -1)
            v = result.recorded[f"{name}/v"].reshape(b, steps, -1)
            counts.spikes[name] += s.sum(axis=(0, 1))
            counts.spikes_per_step[name] += s.sum(axis=(0, 2))
            counts.active_updates[name] += ((u != 0) | (v != 0)).sum(axis=(0, 1))
        for name, ops in result.synaptic_ops.items():
            counts.emulator_synaptic_ops[name] += int(ops)
    for name in program.synapses:
        counts.synapses[name] = synapse_structure(g, name, program.integer)
    return counts


# ----------------------------------------------------------------------------------------------- summaries
def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def node_counts(c: RunCounts) -> dict[str, dict[str, Any]]:
    """Per node totals (over all samples and steps) and NeuroBench quantities; JSON-able."""
    out: dict[str, dict[str, Any]] = {}
    bt = c.batch * c.steps
    for name in c.input_nodes:
        spikes = int(c.spikes[name].sum())
        out[name] = {"kind": "input", "op": "Input", "neurons": c.sizes[name], "spikes": spikes,
                     "spikes_per_step": c.spikes_per_step[name].tolist(),
                     "activation_sparsity": 1.0 - _ratio(spikes, c.sizes[name] * bt), "footprint_bytes": 0}
    for name in c.neuron_nodes:
        n = c.sizes[name]
        spikes = int(c.spikes[name].sum())
        updates = n * bt
        active = int(c.active_updates[name].sum())
        op = c.graph.nodes[name]
        out[name] = {"kind": "neuron", "op": op.op_type, "neurons": n, "spikes": spikes,
                     "spikes_per_step": c.spikes_per_step[name].tolist(), "neuron_updates": updates,
                     "active_updates": active, "inactive_updates": updates - active,
                     "activation_sparsity": 1.0 - _ratio(spikes, updates), "readout": name in c.readouts,
                     "footprint_bytes": math.ceil(_footprint_bits(op, 0, n) / 8)}
    for name, s in c.synapses.items():
        ops = c.synaptic_ops(name)
        out[name] = {"kind": "synapse", "op": c.graph.nodes[name].op_type, "source": s.source, "target": s.target,
                     "synapses": int(s.synapses.sum()), "synaptic_ops": ops,
                     "emulator_synaptic_ops": c.emulator_synaptic_ops.get(name),
                     "effective_acs": 0 if s.graded else ops, "effective_macs": ops if s.graded else 0,
                     "dense_ops": s.dense_per_step * bt, "dense_ops_per_step": s.dense_per_step,
                     "parameters": s.parameters, "nonzero_parameters": s.nonzero_parameters,
                     "connection_sparsity": 1.0 - _ratio(s.nonzero_parameters, s.parameters),
                     "footprint_bytes": math.ceil(s.footprint_bits / 8)}
    return out


def neurobench(c: RunCounts, nodes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Network-level NeuroBench metrics; synaptic operations are per sample (averaged over the B samples)."""
    nodes = nodes if nodes is not None else node_counts(c)
    syn = [v for v in nodes.values() if v["kind"] == "synapse"]
    neu = [v for v in nodes.values() if v["kind"] == "neuron"]
    b = max(c.batch, 1)
    params = sum(v["parameters"] for v in syn)
    nonzero = sum(v["nonzero_parameters"] for v in syn)
    spikes = sum(v["spikes"] for v in neu)
    updates = sum(v["neuron_updates"] for v in neu)
    return {
        "effective_acs": sum(v["effective_acs"] for v in syn) / b,
        "effective_macs": sum(v["effective_macs"] for v in syn) / b,
        "dense_ops": sum(v["dense_ops"] for v in syn) / b,
        "activation_sparsity": 1.0 - _ratio(spikes, updates),
        "connection_sparsity": 1.0 - _ratio(nonzero, params),
        "footprint_bytes": sum(v["footprint_bytes"] for v in nodes.values()),
        "units": "synaptic operations per sample (inference of T steps); sparsities are fractions of zeros; "
                 "footprint in bytes of integer parameters",
        "flag": "simulated",
        "source": f"neurodeploy emulator run ({'integer, bit-exact to Lava 0.10.0' if c.integer else 'float'}); "
                  "definitions after NeuroBench (Yik et al., Nature Communications 2025) as given in "
                  "neurodeploy/reports/counts.py",
    }


def destination_cores(c: RunCounts, slices: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per source node (neuron or input): ``[n]`` number of distinct cores each neuron has a synapse into."""
    by_node: dict[str, list[dict[str, Any]]] = {}
    for s in slices:
        by_node.setdefault(s["node"], []).append(s)
    dest = {name: np.zeros(c.sizes[name], np.int64) for name in c.spikes}
    for s in c.synapses.values():
        csr = s.synapses
        for tgt_slice in by_node.get(s.target, []):
            sub = csr[tgt_slice["start"]:tgt_slice["stop"]].tocsc()
            dest[s.source] += (np.diff(sub.indptr) > 0).astype(np.int64)
    return dest


def core_counts(c: RunCounts, slices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per core counts for ``slices`` (dicts with ``core``, ``node``, ``start``, ``stop``; see the docstring)."""
    dest = destination_cores(c, slices)
    events = {name: c.events_in(name) for name in c.synapses}
    incoming: dict[str, list[str]] = {}
    for name, s in c.synapses.items():
        incoming.setdefault(s.target, []).append(name)
    rows = []
    for s in slices:
        node, a, b = s["node"], s["start"], s["stop"]
        row = {"core": s["core"], "node": node, "start": a, "stop": b, "kind": s.get("kind", "neuron"),
               "neurons": b - a, "spikes": 0, "neuron_updates": 0, "active_updates": 0, "synaptic_ops_in": 0,
               "spike_messages": 0}
        if node in c.spikes:
            row["spikes"] = int(c.spikes[node][a:b].sum())
            row["spike_messages"] = int(c.spikes[node][a:b] @ dest[node][a:b])
        if node in c.active_updates:
            row["neuron_updates"] = (b - a) * c.batch * c.steps
            row["active_updates"] = int(c.active_updates[node][a:b].sum())
            row["synaptic_ops_in"] = int(sum(events[syn][a:b].sum() for syn in incoming.get(node, [])))
        for key in ("chip", "utilisation"):
            if key in s:
                row[key] = s[key]
        rows.append(row)
    return rows


def spike_messages(c: RunCounts, slices: list[dict[str, Any]] | None) -> dict[str, int]:
    """Per source node: spike messages sent (one per destination core; one per spike without a mapping)."""
    if not slices:
        return {n: int(c.spikes[n].sum()) for n in c.spikes if _has_targets(c, n)}
    dest = destination_cores(c, slices)
    return {n: int(c.spikes[n] @ dest[n]) for n in c.spikes if _has_targets(c, n)}


def _has_targets(c: RunCounts, node: str) -> bool:
    return any(s.source == node for s in c.synapses.values())
