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

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir import linear
from neurodeploy.ir.checks import is_folded
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import model_of
from neurodeploy.ir.ops import CubaLIF, Input, Sparse, SynapseOp

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
    node: str = ""  # the IR node whose neurons [offset, offset + size) this population holds ("" = name)
    offset: int = 0

    def __post_init__(self) -> None:
        self.node = self.node or self.name

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
    node_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # IR node -> shape (before a split)

    def node_populations(self, node: str) -> list[Population]:
        """The populations holding ``node``'s neurons, in neuron order (one unless the netlist was split)."""
        return sorted((p for p in self.populations.values() if p.node == node), key=lambda p: p.offset)

    def incoming(self, post: str) -> list[Projection]:
        return [p for p in self.projections if p.post == post]

    def outgoing(self, pre: str) -> list[Projection]:
        return [p for p in self.projections if p.pre == pre]


def _prepare(graph: Graph) -> Graph:
    from neurodeploy.passes.fold import fold_linear

    if not is_folded(graph):
        graph, _ = fold_linear(graph)
    return graph.validate()


CHUNK = 1 << 22  # entries per block of the elementwise weight preparation (bounds its int64 temporaries)


def _index_dtype(n: int) -> type:
    return np.int32 if n < 2 ** 31 else np.int64


def _stored_entries(op: SynapseOp, in_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """:func:`neurodeploy.ir.linear.synapse_entries`, but a Sparse op's arrays as stored (no int64 copies)."""
    if not isinstance(op, Sparse):
        return linear.synapse_entries(op, in_shape)
    values = np.asarray(op.value)
    delays = np.zeros(1, np.int8) if op.delays is None else np.asarray(op.delays).ravel()
    return (np.asarray(op.row), np.asarray(op.col), values, np.broadcast_to(delays, values.shape),
            (int(math.prod(op.out_shape)), int(op.in_size)))


def synapse_entries(op: SynapseOp, in_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``(rows, cols, A, delays)`` of a quantized synapse op: Lava's effective weights times ``2**weight_exp``,
    sorted by (col, row, delay), i.e. by (pre, post, delay); indices int32 where the sizes allow.

    Entries with equal (row, col, delay) are summed before Lava's clip and truncation (CSR semantics, exactly as
    the emulator prepares them: ``effective_weights(rint(sum))``); entries whose effective weight is 0 are dropped;
    the sign mode, when not given, is determined from the whole summed matrix. One int64 key
    ``(col * n_out + row) * n_delays + delay`` is argsorted (a lexsort where it would overflow); the sorted arrays
    are gathered in their stored dtypes and the weights prepared in blocks of :data:`CHUNK`, so the peak is about
    two int64 arrays of the entry count above the graph itself.
    """
    rows, cols, values, delays, shape = _stored_entries(op, in_shape)
    sign_mode = op.sign_mode or linear.inferred_sign_mode(rows, cols, values, shape)
    n_out, n_in = shape
    idx = _index_dtype(max(n_out, n_in))
    if values.size == 0:
        empty = np.zeros(0, idx)
        return empty, empty, np.zeros(0), np.zeros(0, np.int32)
    d_min, d_max = int(delays.min()), int(delays.max())
    if n_in * n_out * (d_max - d_min + 1) < 2 ** 63:
        key = cols.astype(np.int64)
        key *= n_out
        key += rows
        key *= d_max - d_min + 1
        key += delays
        key -= d_min
        order = np.argsort(key)
        del key
    else:  # the packed key would overflow int64: the same order from three keys
        order = np.lexsort((delays, rows, cols))
    pre, post, dly, w = cols[order].astype(idx, copy=False), rows[order].astype(idx, copy=False), delays[order], \
        values[order]
    del order
    if pre.size > 1:
        same = pre[1:] == pre[:-1]
        same &= post[1:] == post[:-1]
        same &= dly[1:] == dly[:-1]
        if same.any():  # duplicates (row, col, delay): summed, as Lava's CSR matrices do
            starts = np.flatnonzero(np.r_[True, ~same])
            w = np.add.reduceat(w.astype(np.float64), starts)
            pre, post, dly = pre[starts], post[starts], dly[starts]
        del same
    units = np.empty(pre.size, np.float64)
    scale = 2.0 ** int(op.weight_exp)
    for a in range(0, pre.size, CHUNK):
        block = w[a:a + CHUNK]
        mant = np.rint(block).astype(np.int64) if block.dtype.kind == "f" else block.astype(np.int64)
        units[a:a + CHUNK] = ar.effective_weights(mant, sign_mode, op.num_weight_bits) * scale
    del w
    nonzero = units != 0
    if not nonzero.all():
        pre, post, dly, units = pre[nonzero], post[nonzero], dly[nonzero], units[nonzero]
    return post, pre, units, dly.astype(np.int32)


def _layers(pre: np.ndarray, post: np.ndarray) -> np.ndarray | None:
    """Occurrence number of each (pre, post) pair in arrays sorted by (pre, post, delay): 0 for the first synapse
    of a pair, 1 for the second, ...; ``None`` when every pair occurs once (all in layer 0)."""
    if pre.size < 2:
        return None
    first = np.empty(pre.size, bool)
    first[0] = True
    np.not_equal(pre[1:], pre[:-1], out=first[1:])
    first[1:] |= post[1:] != post[:-1]
    if first.all():
        return None
    position = np.arange(pre.size, dtype=_index_dtype(pre.size))
    run_start = np.maximum.accumulate(np.where(first, position, 0))
    position -= run_start
    return position


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
            refusal = model_of(op, name).pynn_refusal
            if refusal is not None:
                raise UnsupportedOpError(f"{op.op_type} has no PyNN cell: {refusal}", node=name,
                                         fix="target loihi2 or emulator, or use a CubaLIF neuron")
            conv = convert_lif(op, name, dt=dt, mv_per_unit=mv_per_unit)
            size = int(math.prod(op.shape))
            pops[name] = Population(name, tuple(op.shape), conv.cell_type, conv, i_offset(op, conv, size))
    projections: list[Projection] = []
    notes: list[str] = []
    for name, op in graph.nodes.items():
        if not isinstance(op, SynapseOp):
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
        rows, cols, units, delays = synapse_entries(op, shapes[src])  # sorted by (pre, post, delay)
        delays += 1
        for receptor in RECEPTORS:
            keep = units > 0 if receptor == "excitatory" else units < 0
            if not keep.any():
                continue
            if keep.all():
                pre_idx, post_idx, w, d = cols, rows, units, delays
            else:
                pre_idx, post_idx, w, d = cols[keep], rows[keep], units[keep], delays[keep]
            del keep
            # sorted by (pre, post) (see the module docstring); a pair's synapses in increasing delay
            layer = _layers(pre_idx, post_idx)
            for k in range(1 if layer is None else int(layer.max()) + 1):
                label = f"{name}.{receptor[:3]}" + (f".{k}" if k else "")
                if layer is None:
                    parts = pre_idx, post_idx, w, d
                else:
                    sel = layer == k
                    parts = pre_idx[sel], post_idx[sel], w[sel], d[sel]
                projections.append(Projection(label, name, src, post, receptor, k, *parts))
            del pre_idx, post_idx, w, d, layer
        del rows, cols, units, delays
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
    return Netlist(pops, projections, outputs, notes, node_shapes={n: p.shape for n, p in pops.items()})
