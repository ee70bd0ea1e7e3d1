"""Partition neuron populations onto neurocores and report per-core utilisation (the fit report).

Each neuron population (IR neuron node) is cut into contiguous slices of neurons, each slice one core; slices of
different populations never share a core (what Lava's compiler does for separate LIF processes). A slice is
as large as every per-core limit allows:

* ``neurons <= neurons_per_core``
* ``fan_in <= fan_in_axons_per_core``: distinct presynaptic neurons (input axons) with a synapse into the slice;
* ``synaptic_memory_bits <= synaptic_memory_bits_per_core``: every synapse into the slice costs
  ``weight bits + delay bits (if the synapse op has delays) + index bits (for Sparse/Conv synapses)``;
* ``fan_out <= fan_out_axons_per_core``: for each neuron of the slice, the number of target *cores* it must reach,
  summed over the slice (one output axon per destination core), computed after all populations are sliced; a
  slice over it caps its population's slice size and the slicing is redone (see :func:`partition`).

A slice that cannot shrink below one neuron and still exceeds a limit raises :class:`CapacityError` naming the
node, the limit, the value and the fix. Results are attached to ``graph.meta["mapping"]`` (the pass does not
otherwise change the graph).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from neurodeploy.errors import CapacityError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import Conv2d, Sparse


@dataclass(frozen=True)
class CoreLimits:
    """Per-core and per-chip capacity of a neurocore architecture (values from a hardware profile)."""

    neurons_per_core: int
    fan_in_axons_per_core: int
    fan_out_axons_per_core: int
    synaptic_memory_bits_per_core: int
    cores_per_chip: int
    index_bits: int = 12
    delay_bits: int = 6


@dataclass
class CoreSlice:
    """One core: which neurons of which node it holds and how much of each limit it uses."""

    core: int
    node: str
    start: int
    stop: int
    fan_in: int
    synapses: int
    synaptic_memory_bits: int
    fan_out: int = 0


def _incoming(graph: Graph, shapes: dict, node: str, limits: CoreLimits) -> list[tuple[sp.csr_matrix, int, str]]:
    """(matrix [n_node, n_src] as csr, bits per synapse, source node) for every synapse into ``node``."""
    out = []
    for syn in graph.predecessors(node):
        op = graph.nodes[syn]
        if op.role != "synapse":
            continue
        (src,) = graph.predecessors(syn)
        m = op_matrix(op, shapes[src]).tocsr()
        m.data = np.ones_like(m.data, dtype=np.float64)
        m.eliminate_zeros()
        bits = int(op.num_weight_bits or 8)
        if op.delays is not None:
            bits += limits.delay_bits
        if isinstance(op, Sparse | Conv2d):
            bits += limits.index_bits
        out.append((m, bits, src))
    return out


def _slice_cost(inputs, start: int, stop: int, limits: CoreLimits) -> tuple[int, int, int]:
    fan_in = synapses = mem = 0
    for m, bits, _src in inputs:
        rows = m[start:stop]
        cols = np.unique(rows.indices)
        fan_in += cols.size
        synapses += rows.nnz
        mem += rows.nnz * bits
    return fan_in, synapses, mem


def _fits(cost: tuple[int, int, int], n: int, limits: CoreLimits) -> bool:
    fan_in, _syn, mem = cost
    return (n <= limits.neurons_per_core and fan_in <= limits.fan_in_axons_per_core
            and mem <= limits.synaptic_memory_bits_per_core)


def partition(graph: Graph, limits: CoreLimits) -> tuple[Graph, bool]:
    """Slice every neuron node onto cores (see the module docstring); attach the fit report to the meta.

    Fan-out depends on how the *targets* are sliced, so it is checked after slicing; a slice over the fan-out limit
    caps its node's slice size at ``floor(size * limit / fan_out)`` and the slicing is redone (caps only shrink, so
    this ends; splitting a node can raise its sources' fan-out, which the next round handles).
    """
    shapes = graph.shapes()
    incoming = {node: _incoming(graph, shapes, node, limits) for node in graph.by_role("neuron")}
    caps: dict[str, int] = {}
    while True:
        slices = _slice_all(shapes, incoming, limits, caps)
        over = _count_fan_out(graph, shapes, slices, limits)
        if not over:
            break
        for s in over:
            size = s.stop - s.start
            caps[s.node] = min(caps.get(s.node, size), max(1, size * limits.fan_out_axons_per_core // s.fan_out))
    report = mapping_report(slices, limits)
    meta = dict(graph.meta)
    meta["mapping"] = report
    return graph.with_nodes(meta=meta), False


def _slice_all(shapes: dict, incoming: dict, limits: CoreLimits, caps: dict[str, int]) -> list[CoreSlice]:
    slices: list[CoreSlice] = []
    for node, inputs in incoming.items():
        n = int(math.prod(shapes[node]))
        cap = min(limits.neurons_per_core, caps.get(node, limits.neurons_per_core))
        start = 0
        while start < n:
            lo, hi = start + 1, min(n, start + cap)
            if not _fits(_slice_cost(inputs, start, lo, limits), 1, limits):
                fan_in, _s, mem = _slice_cost(inputs, start, lo, limits)
                which, value, limit = (("fan-in axons", fan_in, limits.fan_in_axons_per_core)
                                       if fan_in > limits.fan_in_axons_per_core else
                                       ("synaptic memory bits", mem, limits.synaptic_memory_bits_per_core))
                raise CapacityError(f"neuron {start} alone needs {value} {which} but a core has {limit}", node=node,
                                    fix="reduce that neuron's fan-in (prune or split the layer) or use fewer "
                                        "weight bits")
            while lo < hi:  # largest stop in [lo, hi] that fits (costs grow with the slice)
                mid = (lo + hi + 1) // 2
                if _fits(_slice_cost(inputs, start, mid, limits), mid - start, limits):
                    lo = mid
                else:
                    hi = mid - 1
            fan_in, synapses, mem = _slice_cost(inputs, start, lo, limits)
            slices.append(CoreSlice(len(slices), node, start, lo, fan_in, synapses, mem))
            start = lo
    return slices


def _count_fan_out(graph: Graph, shapes: dict, slices: list[CoreSlice], limits: CoreLimits) -> list[CoreSlice]:
    """Per source slice: sum over its neurons of the number of distinct destination cores. Returns the slices over
    the fan-out limit that can still be split; a single neuron over it raises :class:`CapacityError`."""
    over = []
    by_node: dict[str, list[CoreSlice]] = {}
    for s in slices:
        by_node.setdefault(s.node, []).append(s)
    for node, node_slices in by_node.items():
        n = int(math.prod(shapes[node]))
        targets = np.zeros(n, dtype=np.int64)
        for syn in graph.successors(node):
            op = graph.nodes[syn]
            if op.role != "synapse":
                continue
            m = op_matrix(op, shapes[node]).tocsc()
            for tgt in graph.successors(syn):
                for ts in by_node.get(tgt, []):
                    sub = m[ts.start:ts.stop]
                    targets += np.diff(sub.tocsc().indptr) > 0
        for s in node_slices:
            s.fan_out = int(targets[s.start:s.stop].sum())
            if s.fan_out > limits.fan_out_axons_per_core:
                if s.stop - s.start > 1:
                    over.append(s)
                    continue
                raise CapacityError(f"core {s.core} (neuron {s.start}) needs {s.fan_out} output axons but a core "
                                    f"has {limits.fan_out_axons_per_core}", node=node,
                                    fix="reduce the fan-out of this neuron (fewer targets, or targets on fewer "
                                        "cores)")
    return over


def mapping_report(slices: list[CoreSlice], limits: CoreLimits) -> dict:
    """Totals and per-core utilisation (fractions of each limit)."""
    cores = len(slices)
    per_core = []
    for s in slices:
        row = asdict(s)
        row["utilisation"] = {
            "neurons": (s.stop - s.start) / limits.neurons_per_core,
            "fan_in": s.fan_in / limits.fan_in_axons_per_core,
            "fan_out": s.fan_out / limits.fan_out_axons_per_core,
            "synaptic_memory": s.synaptic_memory_bits / limits.synaptic_memory_bits_per_core,
        }
        per_core.append(row)
    return {"cores": cores, "chips": max(1, math.ceil(cores / limits.cores_per_chip)) if cores else 0,
            "limits": asdict(limits), "per_core": per_core}
