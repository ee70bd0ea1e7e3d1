"""Split float synapses by output channel into groups, so that each group gets its own ``weight_exp`` (opt-in).

Loihi stores one weight exponent per synapse process (connection): the quantizer fits it to the connection's
largest magnitude, so an output channel whose weights are all much smaller than the largest channel's keeps fewer
significant bits. :func:`split_channels` gives such channels their own synapse op: the output channels of every
float Dense / Sparse / Conv2d are grouped by the octave of their largest magnitude (``floor(log2 max|w_c|)``),
one synapse op per octave, named ``<name>@<k>`` (``k`` the octave), each holding its channels' weights and zeros
elsewhere (a Sparse keeps only its channels' entries). All of them have the same source and target, so the target
sums them (as Loihi sums several synapse processes into one neuron) and the float maths is unchanged (``W s`` is
the sum of the groups' products, up to float64 summation order); the quantizer then fits each group's exponent to
its own channels. The price: one more synapse process (and, for Dense/Conv2d, one more weight matrix) per group.

An *output channel* is a Conv2d's output feature map (weight axis 0), a Dense's output neuron (a row), a Sparse's
target channel (``row // (H * W)`` for a ``(C, H, W)`` target, else its target neuron). Channels with no non-zero
weight join the largest group. The graph is folded first (:func:`neurodeploy.passes.fold.fold_linear`), so the
split acts on the synapses the quantizer sees; already quantized ops, ops with a float bias and synapses whose
channels all fall into one octave are kept as they are.

Use: ``compile_graph(split_channels(graph)[0], target, ...)`` (the artifact's float IR is then the split graph,
equal in maths to the original).
"""

from __future__ import annotations

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, Dense, Op, Sparse


def _channel_of_entries(op: Op) -> tuple[np.ndarray, np.ndarray]:
    """``(channel index per weight entry, absolute weight per entry)`` for the op's weights, flattened."""
    if isinstance(op, Sparse):
        shape = tuple(op.out_shape) or (int(np.max(op.row, initial=-1)) + 1,)
        per_channel = int(np.prod(shape[1:])) if len(shape) == 3 else 1
        return np.asarray(op.row, np.int64) // per_channel, np.abs(np.asarray(op.value, np.float64))
    w = np.abs(np.asarray(op.weight, np.float64))
    channel = np.broadcast_to(np.arange(w.shape[0]).reshape(-1, *([1] * (w.ndim - 1))), w.shape)
    return channel.ravel(), w.ravel()


def channel_groups(op: Op) -> dict[int, np.ndarray]:
    """Octave ``k`` -> boolean mask over the op's flattened weight entries (see the module docstring)."""
    channel, magnitude = _channel_of_entries(op)
    if channel.size == 0:
        return {}
    peak = np.zeros(int(channel.max()) + 1)
    np.maximum.at(peak, channel, magnitude)
    octave = np.full(peak.shape, np.iinfo(np.int64).min, np.int64)
    octave[peak > 0] = np.floor(np.log2(peak[peak > 0])).astype(np.int64)
    if not (peak > 0).any():
        return {}
    octave[peak == 0] = octave[peak > 0].max()
    entry_octave = octave[channel]
    return {int(k): entry_octave == k for k in np.unique(entry_octave)}


def _part(op: Op, keep: np.ndarray) -> Op:
    if isinstance(op, Sparse):
        delays = None if op.delays is None else np.asarray(op.delays)[keep]
        return op.replace(row=np.asarray(op.row)[keep], col=np.asarray(op.col)[keep],
                          value=np.asarray(op.value, np.float64)[keep], delays=delays)
    w = np.asarray(op.weight, np.float64)
    return op.replace(weight=np.where(keep.reshape(w.shape), w, 0.0))


def split_channels(graph: Graph) -> tuple[Graph, bool]:
    """Fold ``graph``, then split every float synapse whose output channels span several octaves of largest
    magnitude into one synapse op per octave (see the module docstring); returns ``(graph, changed)``."""
    from neurodeploy.passes.fold import fold_linear

    graph, _ = fold_linear(graph)
    nodes: dict[str, Op] = {}
    edges = list(graph.edges)
    changed = False
    for name, op in graph.nodes.items():
        if (not isinstance(op, Dense | Sparse | Conv2d) or op.quant is not None
                or getattr(op, "bias", None) is not None):
            nodes[name] = op
            continue
        groups = channel_groups(op)
        if len(groups) < 2:
            nodes[name] = op
            continue
        (src,) = graph.predecessors(name)
        (dst,) = graph.successors(name)
        for k, keep in groups.items():
            part = f"{name}@{k}"
            nodes[part] = _part(op, keep)
            edges += [(src, part), (part, dst)]
        edges = [e for e in edges if name not in e]
        changed = True
    if not changed:
        return graph, False
    return Graph(nodes, edges, graph.meta), True
