"""Partition neuron populations onto neurocores and report per-core utilisation (the fit report).

Each neuron population (IR neuron node) is cut into contiguous slices of neurons, each slice one core; slices of
different populations never share a core (what Lava's compiler does for separate LIF processes). Per-core limits:

* ``neurons <= neurons_per_core``
* ``fan_in <= fan_in_axons_per_core``: per incoming synapse op, the distinct presynaptic neurons (input axons)
  with a synapse into the slice, summed over the ops;
* ``synaptic_memory_bits <= synaptic_memory_bits_per_core``: every synapse into the slice costs
  ``weight bits + delay bits (if the synapse op has delays) + index bits (for Sparse/Conv synapses)``;
* ``fan_out <= fan_out_axons_per_core``: per neuron of the slice, per outgoing synapse op, the number of distinct
  target *cores* it reaches (one output axon per (op, destination core)), summed over the slice.

Algorithm
---------
*Greedy slicing* of a population under a neuron cap ``k``: from its first neuron, each slice is the longest run of
at most ``k`` neurons that fits the memory limit (prefix sums of the per-neuron cost) and the fan-in limit (a
run's distinct presynaptic neurons are its entries whose previous row in the same column lies before the run).

1. Every population is sliced greedily with ``k = neurons_per_core``. If no slice exceeds the fan-out limit this
   is the result (each slice is then the largest that fits, as before fan-out was part of the sizing).
2. Otherwise fan-out binds, and it depends on how the *targets* are sliced (for a recurrent population, on its
   own slicing). Each population with an exceeding slice gets a smaller cap, ``k' = min(k - 1, floor(largest
   slice / worst ratio))`` (worst ratio = the largest ``fan_out / limit`` or ``fan_in / limit`` of its slices),
   until no slice exceeds; then the cap is bisected back up between the last exceeding and the fitting value
   (to within 1/16) so that cores are not wasted. These rounds slice by neurons and memory only and count
   fan-in exactly, treating a fan-in excess like a fan-out one.
3. Finally, any slice still exceeding a limit (caps interact: a finer target raises its sources' fan-out) is split:
   greedily by fan-in, or into the longest runs whose summed fan-out fits; the counts are redone until none
   exceeds (splitting only shrinks the other figures, so this ends).

Packing runs, a run's end under a cost budget, the neuron-to-core index and the chip count follow
:mod:`neurodeploy.passes.cores`, the rules this pass shares with the SpiNNaker mapping
(:mod:`neurodeploy.backends.pynn.mapping`). The limits are :class:`neurodeploy.profiles.CoreLimits`
(``profile.limits.core_limits()``).

The result fits every limit; it is a greedy mapping, not a minimum core count. A slice that cannot shrink below
one neuron and still exceeds a limit raises :class:`CapacityError` naming the node, the limit, the value and the
fix.

Counting is ``O(synapses)`` per round: each synapse op's pattern is held once as a CSC matrix with sorted rows;
with ``core[i]`` the core of target neuron ``i``, the distinct (source neuron, core) pairs are the positions where
``core`` changes along a column. Their count per column is the source neuron's fan-out, their count per core the
core's fan-in.

Results are attached to ``graph.meta["mapping"]`` (the pass does not otherwise change the graph):
``chips = ceil(cores / cores_per_chip)`` is reported, not checked (:func:`neurodeploy.compiler.compile_graph`
checks it against the system size), ``neuron_caps`` gives each population's final cap and ``rounds`` the number
of counting rounds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from neurodeploy.errors import CapacityError
from neurodeploy.ir.compiled import compiled
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, Sparse
from neurodeploy.passes.cores import core_index, pack, run_end, units_needed
from neurodeploy.profiles import CoreLimits

#: Step 2 bisects a population's cap until the bracket is within 1/BISECT_FRACTION of the fitting cap.
BISECT_FRACTION = 16


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


@dataclass
class _Synapses:
    """One synapse op's connection pattern ``[n_target, n_source]`` (distinct positions; values irrelevant)."""

    name: str
    source: str
    target: str
    bits: int
    indptr: np.ndarray  # CSR row pointers
    row_of: np.ndarray  # per CSR entry: its row
    prev_row: np.ndarray  # per CSR entry: the row of the previous entry in the same column, -1 if none
    col_ptr: np.ndarray  # CSC column pointers
    col_rows: np.ndarray  # CSC row indices, sorted within each column


def _synapse_ops(graph: Graph, shapes: dict, limits: CoreLimits) -> list[_Synapses]:
    """Every synapse op's stored (target, source) positions, repeats merged, as CSC (sorted rows per column, built
    by :func:`neurodeploy.ir.columns.column_buckets` in pattern mode) and in CSR order with each entry's row
    and the row of the previous entry in its column (:func:`_csr_of_csc`, one compiled pass)."""
    from neurodeploy.ir.columns import column_buckets, entry_arrays

    csr_of_csc = compiled(_csr_of_csc)
    out = []
    for name, op in graph.nodes.items():
        if op.role != "synapse":
            continue
        (src,) = graph.predecessors(name)
        targets = [t for t in graph.successors(name) if graph.nodes[t].role == "neuron"]
        if not targets:
            continue
        bits = int(op.num_weight_bits or 8)
        if op.delays is not None:
            bits += limits.delay_bits
        if isinstance(op, Sparse | Conv2d):
            bits += limits.index_bits
        rows, cols, _, _, (n_out, n_in) = entry_arrays(op, shapes[src])
        pattern = column_buckets(rows, cols, None, None, n_out, n_in, node=name)
        del rows, cols
        dtype = _index_dtype(pattern.rows.size, n_out, n_in)
        indptr = np.zeros(n_out + 1, np.int64)
        row_of = np.empty(pattern.rows.size, dtype)
        prev_row = np.empty(pattern.rows.size, dtype)
        csr_of_csc(pattern.ptr, pattern.rows, indptr, row_of, prev_row)
        out += [_Synapses(name, src, tgt, bits, indptr, row_of, prev_row, pattern.ptr, pattern.rows)
                for tgt in targets]
    return out


def _csr_of_csc(col_ptr, col_rows, indptr, row_of, prev_row):  # pragma: no cover - compiled by numba
    """From CSC with sorted rows: CSR row pointers, and per CSR entry (rows in order, columns ascending within a
    row) its row and the row of the previous entry of its column (-1 for a column's first entry)."""
    for x in range(col_rows.shape[0]):
        indptr[col_rows[x] + 1] += 1
    for r in range(indptr.shape[0] - 1):
        indptr[r + 1] += indptr[r]
    pos = indptr[:-1].copy()
    for j in range(col_ptr.shape[0] - 1):
        prev = -1
        for x in range(col_ptr[j], col_ptr[j + 1]):
            r = col_rows[x]
            p = pos[r]
            row_of[p] = r
            prev_row[p] = prev
            pos[r] = p + 1
            prev = r


def _index_dtype(*sizes: int):
    """int32 when every index fits (halves the memory of 100M-synapse patterns), else int64."""
    return np.int32 if max(sizes, default=0) < 2 ** 31 - 1 else np.int64


class _Population:
    """One neuron node's per-neuron costs and its slicing rules."""

    def __init__(self, node: str, n: int, incoming: list[_Synapses], limits: CoreLimits):
        self.node, self.n, self.incoming, self.limits = node, n, incoming, limits
        self.mem = np.zeros(n, np.int64)
        self.syn = np.zeros(n, np.int64)
        for s in incoming:
            per_row = np.diff(s.indptr)
            self.syn += per_row
            self.mem += per_row * s.bits
        self.cum_mem = np.concatenate([[0], np.cumsum(self.mem)])
        self.cum_syn = np.concatenate([[0], np.cumsum(self.syn)])

    def _fan_in_prefix(self, start: int, end: int) -> np.ndarray:
        """``f[k]`` = fan-in of the run ``start .. start + k`` (inclusive), for ``k < end - start``."""
        counts = np.zeros(end - start, np.int64)
        for s in self.incoming:
            a, b = s.indptr[start], s.indptr[end]
            new = s.prev_row[a:b] < start
            counts += np.bincount(s.row_of[a:b][new] - start, minlength=end - start)
        return np.cumsum(counts)

    def _too_big(self, neuron: int) -> CapacityError:
        """The error for a neuron whose synaptic memory alone exceeds a core's."""
        return CapacityError(f"neuron {neuron} alone needs {int(self.mem[neuron])} synaptic memory bits but a core "
                             f"has {self.limits.synaptic_memory_bits_per_core}", node=self.node,
                             fix="reduce that neuron's fan-in (prune or split the layer) or use fewer weight bits")

    def _memory_stop(self, start: int, stop: int) -> int:
        stop = min(stop, run_end(self.cum_mem, start, self.limits.synaptic_memory_bits_per_core))
        if stop <= start:
            raise self._too_big(start)
        return stop

    def greedy(self, cap: int, lo: int = 0, hi: int | None = None, fan_in: bool = True) -> list[tuple[int, int]]:
        """Longest runs of at most ``cap`` neurons covering ``lo .. hi`` that fit the memory limit and, if
        ``fan_in``, the fan-in limit (without it, :func:`neurodeploy.passes.cores.pack` by memory)."""
        hi = self.n if hi is None else hi
        if not fan_in:
            return pack(hi, cap, lo, self.cum_mem, self.limits.synaptic_memory_bits_per_core, self._too_big)
        limit = self.limits.fan_in_axons_per_core
        out = []
        start = lo
        while start < hi:
            stop = min(hi, start + cap)
            # fan-in is checked before memory, so that an over-full single neuron names its fan-in first
            end = max(start + 1, min(stop, run_end(self.cum_mem, start, self.limits.synaptic_memory_bits_per_core)))
            width = min(end - start, 64)
            while True:  # grow the examined run until the fan-in limit or the run's end is reached
                prefix = self._fan_in_prefix(start, start + width)
                if prefix[-1] > limit or width == end - start:
                    break
                width = min(end - start, 2 * width)
            if prefix[0] > limit:
                raise CapacityError(f"neuron {start} alone needs {int(prefix[0])} fan-in axons but a core has "
                                    f"{limit}", node=self.node,
                                    fix="reduce that neuron's fan-in (prune or split the layer) or use fewer "
                                        "weight bits")
            stop = start + int(np.searchsorted(prefix, limit, side="right"))
            stop = self._memory_stop(start, stop)
            out.append((start, stop))
            start = stop
        return out


def _count(synapses: list[_Synapses], core_of: dict[str, np.ndarray], sizes: dict[str, int], n_cores: int
           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per neuron node, each neuron's fan-out (distinct (op, core) pairs it reaches); per core, its fan-in.

    One compiled pass per synapse op (:func:`_count_pairs`): ``core_of`` is non-decreasing in the neuron index
    (slices are contiguous runs in order), so along a column with sorted rows the distinct cores are the positions
    where the core changes."""
    count_pairs = compiled(_count_pairs)
    fan_out = {node: np.zeros(n, np.int64) for node, n in sizes.items()}
    fan_in = np.zeros(n_cores, np.int64)
    for s in synapses:
        if s.target not in core_of or s.col_rows.size == 0:
            continue
        scratch = fan_out.get(s.source)
        out = scratch if scratch is not None else np.zeros(len(s.col_ptr) - 1, np.int64)
        count_pairs(s.col_ptr, s.col_rows, core_of[s.target], out, fan_in)
    return fan_out, fan_in


def _count_pairs(col_ptr, col_rows, core_of, fan_out, fan_in):  # pragma: no cover - compiled by numba
    """``fan_out[j] +=`` distinct cores of column ``j``; ``fan_in[c] +=`` columns reaching core ``c``."""
    for j in range(col_ptr.shape[0] - 1):
        last = -1
        distinct = 0
        for x in range(col_ptr[j], col_ptr[j + 1]):
            c = core_of[col_rows[x]]
            if c != last:
                distinct += 1
                fan_in[c] += 1
                last = c
        fan_out[j] += distinct


class _Mapping:
    """A slicing of every population with its counts: per neuron fan-out, per core fan-in."""

    def __init__(self, bounds: dict[str, list[tuple[int, int]]], synapses: list[_Synapses], sizes: dict[str, int]):
        self.bounds = bounds
        self.first_core, core_of, n_cores = {}, {}, 0
        for node, b in bounds.items():
            self.first_core[node] = n_cores
            core_of[node] = core_index(b, n_cores)
            n_cores += len(b)
        self.n_cores = n_cores
        self.fan_out, self.fan_in = _count(synapses, core_of, sizes, n_cores)

    def slice_fan_out(self, node: str) -> np.ndarray:
        cum = np.concatenate([[0], np.cumsum(self.fan_out[node])])
        b = np.asarray(self.bounds[node]).reshape(-1, 2)
        return cum[b[:, 1]] - cum[b[:, 0]]

    def slice_fan_in(self, node: str) -> np.ndarray:
        first = self.first_core[node]
        return self.fan_in[first:first + len(self.bounds[node])]

    def excess(self, node: str, limits: CoreLimits) -> float:
        """The worst ratio of a slice's fan-out or fan-in to its limit (> 1: some slice exceeds)."""
        if not self.bounds[node]:
            return 0.0
        return max(float(self.slice_fan_out(node).max()) / limits.fan_out_axons_per_core,
                   float(self.slice_fan_in(node).max()) / limits.fan_in_axons_per_core)


def _split_fan_out(node: str, start: int, stop: int, fan_out: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """``start .. stop`` as the longest runs whose summed fan-out fits ``limit``."""
    cum = np.concatenate([[0], np.cumsum(fan_out[start:stop])])

    def too_big(s: int) -> CapacityError:
        return CapacityError(f"neuron {start + s} alone needs {int(fan_out[start + s])} output axons (distinct "
                             f"target cores) but a core has {limit}", node=node,
                             fix="reduce that neuron's fan-out (fewer or more local targets), or give its targets "
                                 "more neurons per core")

    return [(start + a, start + b) for a, b in pack(stop - start, max(1, stop - start), 0, cum, limit, too_big)]


def partition(graph: Graph, limits: CoreLimits) -> tuple[Graph, bool]:
    """Slice every neuron node onto cores (see the module docstring); attach the fit report to the meta."""
    shapes = graph.shapes()
    synapses = _synapse_ops(graph, shapes, limits)
    nodes = list(graph.by_role("neuron"))
    sizes = {node: int(math.prod(shapes[node])) for node in nodes}
    pops = {node: _Population(node, sizes[node], [s for s in synapses if s.target == node], limits) for node in nodes}
    caps = {node: limits.neurons_per_core for node in nodes}
    rounds = 1
    # 1. greedy slicing; fan-in is checked on the cheap slicing first and sliced for exactly where it binds
    bounds = {node: pops[node].greedy(caps[node], fan_in=False) for node in nodes}
    mapping = _Mapping(bounds, synapses, sizes)
    over_in = [n for n in nodes if mapping.bounds[n] and mapping.slice_fan_in(n).max() > limits.fan_in_axons_per_core]
    if over_in:
        bounds.update({node: pops[node].greedy(caps[node]) for node in over_in})
        mapping, rounds = _Mapping(bounds, synapses, sizes), rounds + 1
    if any(mapping.excess(node, limits) > 1 for node in nodes):
        # 2. fan-out binds: lower each exceeding population's cap until nothing exceeds, then bisect back up
        failing: dict[str, int] = {}
        while True:
            worse = [n for n in nodes if mapping.excess(n, limits) > 1 and caps[n] > 1]
            if not worse:
                break
            for node in worse:
                failing[node] = caps[node]
                largest = max(stop - start for start, stop in mapping.bounds[node])
                caps[node] = max(1, min(caps[node] - 1, int(largest / mapping.excess(node, limits))))
            bounds = {node: pops[node].greedy(caps[node], fan_in=False) for node in nodes}
            mapping, rounds = _Mapping(bounds, synapses, sizes), rounds + 1
        while True:
            gap = {n: (caps[n] + failing[n]) // 2 for n in failing
                   if failing[n] - caps[n] > max(1, caps[n] // BISECT_FRACTION)}
            if not gap:
                break
            trial = dict(caps, **gap)
            trial_bounds = {node: pops[node].greedy(trial[node], fan_in=False) for node in nodes}
            trial_mapping, rounds = _Mapping(trial_bounds, synapses, sizes), rounds + 1
            for node, mid in gap.items():
                if trial_mapping.excess(node, limits) > 1:
                    failing[node] = mid
                else:
                    caps[node] = mid
        bounds = {node: pops[node].greedy(caps[node], fan_in=False) for node in nodes}
        mapping, rounds = _Mapping(bounds, synapses, sizes), rounds + 1
        # 3. split whatever still exceeds (finer targets raise their sources' fan-out) until nothing does
        while any(mapping.excess(node, limits) > 1 for node in nodes):
            for node in nodes:
                fan_in, fan_out = mapping.slice_fan_in(node), mapping.slice_fan_out(node)
                new = []
                for k, (start, stop) in enumerate(bounds[node]):
                    if fan_in[k] > limits.fan_in_axons_per_core:
                        new += pops[node].greedy(stop - start, start, stop)
                    elif fan_out[k] > limits.fan_out_axons_per_core:
                        new += _split_fan_out(node, start, stop, mapping.fan_out[node], limits.fan_out_axons_per_core)
                    else:
                        new.append((start, stop))
                bounds[node] = new
            mapping, rounds = _Mapping(bounds, synapses, sizes), rounds + 1
    slices: list[CoreSlice] = []
    for node in nodes:
        pop, fan_out = pops[node], mapping.slice_fan_out(node)
        for k, (start, stop) in enumerate(mapping.bounds[node]):
            core = mapping.first_core[node] + k
            slices.append(CoreSlice(core, node, start, stop, int(mapping.fan_in[core]),
                                    int(pop.cum_syn[stop] - pop.cum_syn[start]),
                                    int(pop.cum_mem[stop] - pop.cum_mem[start]), int(fan_out[k])))
    report = mapping_report(slices, limits)
    report["neuron_caps"] = caps
    report["rounds"] = rounds
    meta = dict(graph.meta)
    meta["mapping"] = report
    return graph.with_nodes(meta=meta), False


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
    return {"cores": cores, "chips": units_needed(cores, limits.cores_per_chip),
            "limits": asdict(limits), "per_core": per_core}
