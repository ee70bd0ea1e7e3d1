"""Quantized IR graph -> a PyNN netlist: populations and sign-split projections with per-synapse weights and delays.

* Every Input becomes a ``SpikeSourceArray`` population; every (quantized) neuron node a population of
  ``IF_curr_exp`` or ``IF_curr_delta`` (see :mod:`.neurons`).
* Every synapse op (Dense, Sparse, Conv2d, after folding) becomes projections from its source to its target.
  Weights are Lava's *effective* weights (clipped and truncated by sign mode, as the emulator computes them; entries
  with the same (pre, post, delay) summed first, as Lava's CSR matrices do) times ``2**weight_exp``, in integer
  activation units ``A``; :mod:`.weights` turns them into nA.
* Signs: positive weights go to the ``excitatory`` receptor, negative ones to the ``inhibitory`` receptor (PyNN's
  convention: negative weights there), so no projection mixes signs (sPyNNaker refuses mixed projections).
* Delays: an IR delay ``d`` (Loihi: spike at t reaches the neuron at t + 1 + d) is a PyNN delay of ``1 + d`` steps
  (sPyNNaker: a spike sent at step t with delay D is added to the input of step t + D).
* Several synapses between one (pre, post) pair (different delays) are split over numbered *layers* (one
  projection each), so no projection holds a duplicate pair: every PyNN backend then connects them correctly
  (pyNN.brian2's FromListConnector gives every duplicate the last weight).
* Connection lists are sorted by (pre, post): sPyNNaker 1!7.4.1's FromListConnector sizes synaptic rows by
  splitting the list where the *sorted* list changes source (``__numpy_group`` splits the unsorted array), so an
  unsorted list yields wrong row lengths ("more synapses than can currently be supported") or wasted SDRAM.

``weight_exp < 0`` is approximated: Loihi floors each step's *sum* ``acc >> -weight_exp``; PyNN scales each synapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from neurodeploy.emulator import arithmetic as ar
from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir import linear
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import CubaLIF, Input, _Synapse

from .neurons import LIFConversion, convert_lif, i_offset

RECEPTORS = ("excitatory", "inhibitory")


@dataclass
class Population:
    """One PyNN population: an Input (``SpikeSourceArray``) or a neuron node."""

    name: str
    shape: tuple[int, ...]
    cell_type: str
    conversion: LIFConversion | None = None
    i_offset: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    @property
    def is_source(self) -> bool:
        return self.conversion is None


@dataclass
class Projection:
    """Synapses of one receptor (and one duplicate layer) of one IR synapse op.

    ``units`` are signed weights in Loihi integer activation units; ``delay`` PyNN delays in steps (>= 1).
    ``weight_exact`` (nA; IF_curr_delta: sPyNNaker's weight units) and ``weight`` (rounded to sPyNNaker's 16-bit grid)
    are filled by :mod:`.weights`.
    """

    label: str
    synapse: str
    pre: str
    post: str
    receptor: str
    layer: int
    pre_idx: np.ndarray
    post_idx: np.ndarray
    units: np.ndarray
    delay: np.ndarray
    weight: np.ndarray | None = None
    weight_exact: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.pre_idx.size)


@dataclass
class Netlist:
    populations: dict[str, Population]
    projections: list[Projection]
    outputs: dict[str, str]  # Output node -> population it reads
    notes: list[str] = field(default_factory=list)
    report_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def incoming(self, post: str) -> list[Projection]:
        return [p for p in self.projections if p.post == post]

    def outgoing(self, pre: str) -> list[Projection]:
        return [p for p in self.projections if p.pre == pre]


def _prepare(graph: Graph) -> Graph:
    from neurodeploy.emulator.engine import _is_folded
    from neurodeploy.passes.fold import fold_linear

    if any(op.role == "linear" for op in graph.nodes.values()) or not _is_folded(graph):
        graph, _ = fold_linear(graph)
    return graph.validate()


def synapse_entries(op: _Synapse, in_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``(rows, cols, A, delays)`` of a quantized synapse op: Lava's effective weights times ``2**weight_exp``.

    Entries with equal (row, col, delay) are summed before Lava's clip and truncation (CSR semantics, exactly as
    the emulator prepares them); the sign mode, when not given, is determined from the whole summed matrix.
    """
    rows, cols, values, delays, shape = linear.synapse_entries(op, in_shape)
    sign_mode = op.sign_mode or linear.inferred_sign_mode(rows, cols, values, shape)
    out_r, out_c, out_w, out_d = [], [], [], []
    for d in np.unique(delays) if delays.size else []:
        keep = delays == d
        m = sp.csr_matrix((values[keep].astype(np.float64), (rows[keep], cols[keep])), shape=shape)
        m.sum_duplicates()
        m.data = ar.effective_weights(np.rint(m.data).astype(np.int64), sign_mode, op.num_weight_bits).astype(float)
        m.eliminate_zeros()
        coo = m.tocoo()
        out_r.append(coo.row.astype(np.int64))
        out_c.append(coo.col.astype(np.int64))
        out_w.append(coo.data * 2.0 ** int(op.weight_exp))
        out_d.append(np.full(coo.nnz, int(d), np.int64))
    if not out_r:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), empty
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_w), np.concatenate(out_d)


def _layers(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """Occurrence number of each (pre, post) pair: 0 for the first synapse of a pair, 1 for the second, ..."""
    if pre.size == 0:
        return np.zeros(0, np.int64)
    key = pre * (int(post.max()) + 1) + post
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, sorted_key.size]))
    layer = np.empty(pre.size, np.int64)
    layer[order] = np.arange(pre.size) - run_start
    return layer


def build_netlist(graph: Graph, dt: float = 1.0, mv_per_unit: float = 1.0) -> Netlist:
    """Lower a quantized graph to a :class:`Netlist` (errors name the node and the fix)."""
    graph = _prepare(graph)
    shapes = graph.shapes()
    pops: dict[str, Population] = {}
    for name, op in graph.nodes.items():
        if isinstance(op, Input):
            pops[name] = Population(name, tuple(shapes[name]), "SpikeSourceArray")
        elif op.role == "neuron":
            if not isinstance(op, CubaLIF):
                raise UnsupportedOpError(f"{op.op_type} is a float-form neuron; the PyNN backend converts quantized "
                                         "CubaLIF neurons", node=name,
                                         fix="compile the model first (neurodeploy compile MODEL --target spinnaker)")
            conv = convert_lif(op, name, dt=dt, mv_per_unit=mv_per_unit)
            size = int(math.prod(op.shape))
            pops[name] = Population(name, tuple(op.shape), conv.cell_type, conv, i_offset(op, conv, size))
    projections: list[Projection] = []
    notes: list[str] = []
    for name, op in graph.nodes.items():
        if not isinstance(op, _Synapse):
            continue
        if op.quant is None:
            raise UnsupportedOpError(f"{op.op_type} holds float weights; the PyNN backend converts quantized "
                                     "synapses", node=name, fix="compile the model first (neurodeploy compile)")
        if getattr(op, "dw", None) is not None:  # PlasticDense: a Loihi 2 learning rule
            raise UnsupportedOpError("PlasticDense carries a Loihi 2 learning rule (traces, sum-of-products dw, "
                                     "t_epoch) that has no sPyNNaker mapping; its STDP models use other maths",
                                     node=name, fix="deploy a frozen copy (a Dense with the current weights) to "
                                                    "spinnaker, or run the learning on the emulator or Lava")
        if op.num_message_bits:
            raise UnsupportedOpError(f"graded spikes (num_message_bits = {op.num_message_bits}) have no "
                                     "IF_curr_exp equivalent: SpiNNaker spikes carry no payload", node=name,
                                     fix="use binary spikes (num_message_bits = 0) for the spinnaker target")
        (src,) = graph.predecessors(name)
        targets = [t for t in graph.successors(name) if t in pops and not pops[t].is_source]
        if len(targets) != 1:
            raise UnsupportedOpError(f"synapse feeds {graph.successors(name)}; the PyNN backend needs exactly one "
                                     "neuron population after each synapse", node=name,
                                     fix="fold the graph (neurodeploy compile does) so each synapse feeds one neuron")
        post = targets[0]
        if op.weight_exp < 0:
            notes.append(f"{name}: weight_exp = {op.weight_exp} < 0; Loihi floors each step's summed input, PyNN "
                         "scales each weight exactly (a small negative bias on Loihi that PyNN does not have)")
        rows, cols, units, delays = synapse_entries(op, shapes[src])
        for receptor in RECEPTORS:
            keep = units > 0 if receptor == "excitatory" else units < 0
            if not keep.any():
                continue
            pre_idx, post_idx, w, d = cols[keep], rows[keep], units[keep], delays[keep] + 1
            layer = _layers(pre_idx, post_idx)
            order = np.lexsort((post_idx, pre_idx))  # sorted by (pre, post): see the module docstring
            pre_idx, post_idx, w, d, layer = pre_idx[order], post_idx[order], w[order], d[order], layer[order]
            for k in range(int(layer.max()) + 1):
                sel = layer == k
                label = f"{name}.{receptor[:3]}" + (f".{k}" if k else "")
                projections.append(Projection(label, name, src, post, receptor, k, pre_idx[sel], post_idx[sel],
                                              w[sel], d[sel]))
    outputs = {}
    for name in graph.outputs:
        (src,) = graph.predecessors(name)
        if src not in pops:
            raise UnsupportedOpError(f"Output reads '{src}', which is not a population", node=name,
                                     fix="connect Outputs to neuron or Input nodes")
        outputs[name] = src
    for name, pop in pops.items():
        if pop.conversion is not None and pop.conversion.leak_substituted:
            notes.append(f"{name}: dv = 0 (no leak) is not representable on SpiNNaker; tau_m = "
                         f"{pop.conversion.tau_m:.1f} ms (v decays by 3e-5 per step) is used")
    return Netlist(pops, projections, outputs, notes)
