"""Fold chains of linear ops into single synapse ops.

Between a *source* (Input or neuron) and a *sink* (neuron or Output) a float graph may hold any chain of linear
ops: Flatten, Scale, SumPool2d / AvgPool2d, Delay and the synapse ops Dense, Sparse, Conv2d. On Loihi every
synapse process adds one step, so a chain must become exactly one synapse. The chain's maps compose as
``M = M_k @ ... @ M_1`` (see :mod:`neurodeploy.ir.linear`) and its biases as ``b = M_k (... (M_1 0 + b_1) ...) + b_k``.

* A lone Dense (optionally behind Flatten) stays Dense; a lone Conv2d stays Conv2d; anything else becomes Sparse.
* ``Delay`` before the first map adds its per-element delay ``d_j`` to every synapse leaving element ``j``;
  after the last map it adds ``d_i`` to every synapse entering element ``i``. A Delay between two maps has no
  per-synapse meaning and is rejected.
* A chain bias ``b`` is a constant input current. It equals a neuron bias only when the target neuron keeps no
  current (``du = 1``: CubaLIF with du = 1, IF, or LI with du = 1); then it is added to the neuron's bias.
  Otherwise it is rejected, naming the node.
* A source wired straight into a neuron gets an identity Sparse synapse (the extra step is real on Loihi).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.neurons import compartment
from neurodeploy.ir.ops import Conv2d, Delay, Dense, Flatten, Op, Output, Sparse


def _is_source(op: Op) -> bool:
    return op.role == "neuron" or op.op_type == "Input"


def _chain_bias(op: Op, shape: tuple[int, ...]) -> np.ndarray | None:
    bias = getattr(op, "bias", None)
    if bias is None or op.role != "synapse":
        return None
    bias = np.asarray(bias, dtype=float)
    if isinstance(op, Conv2d):  # per output channel, broadcast over H x W
        return np.repeat(bias, int(math.prod(shape[1:])))
    return bias.ravel()


def _absorbs_bias(op: Op) -> bool:
    """A neuron whose float current does not decay (``du = 1``, IF included: the neuron-model table's compartment)
    adds a synapse bias to v exactly as its own bias."""
    return op.role == "neuron" and float(compartment(op, integer=False).du) == 1.0


def _paths(graph: Graph, source: str) -> list[list[str]]:
    """All chains from ``source`` through linear/synapse ops to a sink (neuron or Output)."""
    paths = []
    stack = [[s] for s in graph.successors(source)]
    while stack:
        path = stack.pop()
        op = graph.nodes[path[-1]]
        if op.role in ("neuron", "controller") or isinstance(op, Output):  # controller: an Astrocyte reading spikes
            paths.append(path)
            continue
        if op.role not in ("linear", "synapse"):
            raise UnsupportedOpError(f"{op.op_type} cannot follow '{source}' in a synapse chain", node=path[-1])
        nexts = graph.successors(path[-1])
        if not nexts:
            raise UnsupportedOpError(f"{op.op_type} output goes nowhere", node=path[-1],
                                     fix="connect it to a neuron or an Output, or remove it")
        stack.extend(path + [n] for n in nexts)
    return paths


def _fold_chain(graph: Graph, shapes: dict, source: str, chain: list[str]) -> tuple[Op, np.ndarray | None]:
    """Compose ``chain`` (linear/synapse op names) into one synapse op; return it and its bias (or None)."""
    shape = shapes[source]
    n_src = int(math.prod(shape))
    matrix: sp.csr_matrix | None = None
    bias = None
    delay_in = np.zeros(n_src, dtype=np.int64)
    delay_out = None
    maps = []
    for name in chain:
        op = graph.nodes[name]
        if isinstance(op, Delay):
            d = np.broadcast_to(np.asarray(op.delay), shape).ravel().astype(np.int64)
            if matrix is None:
                delay_in = delay_in + d
            elif delay_out is None:
                delay_out = d
            else:
                delay_out = delay_out + d
            continue
        if isinstance(op, Flatten):
            shape = op.output_shape(shape)
            continue
        if delay_out is not None:
            raise UnsupportedOpError("a Delay sits between two linear maps; per-synapse delays are undefined there",
                                     node=name, fix="move the Delay before the first or after the last map")
        m = op_matrix(op, shape)
        out_shape = op.output_shape(shape)
        matrix = m if matrix is None else (m @ matrix).tocsr()
        if bias is not None:
            bias = m @ bias
        b = _chain_bias(op, out_shape)
        if b is not None:
            bias = b if bias is None else bias + b
        maps.append(op)
        shape = out_shape
    if matrix is None:
        matrix = sp.identity(n_src, format="csr")
    has_delays = bool(delay_in.any()) or (delay_out is not None and bool(delay_out.any()))
    origin = "+".join(graph.nodes[n].origin or n for n in chain)
    coo = matrix.tocoo()
    if has_delays:
        d_out = np.zeros(matrix.shape[0], np.int64) if delay_out is None else delay_out
        entry_delays = delay_in[coo.col] + d_out[coo.row]
    if len(maps) == 1 and isinstance(maps[0], Dense):
        delays = None
        if has_delays:
            delays = np.zeros(matrix.shape, np.int64)
            delays[coo.row, coo.col] = entry_delays
        return Dense(weight=np.asarray(maps[0].weight, dtype=float), delays=delays, origin=origin), bias
    if len(maps) == 1 and isinstance(maps[0], Conv2d) and not has_delays:
        return maps[0].replace(bias=None, origin=origin), bias
    return Sparse(out_shape=tuple(shape), in_size=n_src, row=coo.row.astype(np.int64), col=coo.col.astype(np.int64),
                  value=coo.data.astype(float), delays=entry_delays if has_delays else None, origin=origin), bias


def fold_linear(graph: Graph) -> tuple[Graph, bool]:
    """Replace every source -> (linear ops) -> sink chain by one synapse op. See the module docstring."""
    already_folded = all(
        op.role in ("neuron", "controller") or op.op_type in ("Input", "Output")
        or (op.role == "synapse" and all(_is_source(graph.nodes[p]) for p in graph.predecessors(n))
            and all(graph.nodes[s].role == "neuron" for s in graph.successors(n)))
        for n, op in graph.nodes.items())
    direct = any(graph.nodes[dst].role == "neuron" and _is_source(graph.nodes[src]) for src, dst in graph.edges)
    if already_folded and not direct:
        return graph, False
    shapes = graph.shapes()
    nodes = {n: op for n, op in graph.nodes.items() if op.role not in ("linear", "synapse")}
    edges: list[tuple[str, str]] = []
    used: set[str] = set()
    for source in [n for n, op in graph.nodes.items() if _is_source(op)]:
        for path in _paths(graph, source):
            *chain, sink = path
            sink_op = graph.nodes[sink]
            if not chain:
                if isinstance(sink_op, Output) or sink_op.role == "controller":
                    edges.append((source, sink))
                    continue
                chain_op, bias = Sparse(out_shape=tuple(shapes[source]), in_size=int(math.prod(shapes[source])),
                                        row=np.arange(int(math.prod(shapes[source]))),
                                        col=np.arange(int(math.prod(shapes[source]))),
                                        value=np.ones(int(math.prod(shapes[source]))),
                                        origin=f"identity {source}->{sink}"), None
                name = f"{source}->{sink}"
            else:
                if isinstance(sink_op, Output):
                    raise UnsupportedOpError(f"a synapse chain ({' -> '.join(chain)}) ends in an Output without a "
                                             "neuron", node=chain[-1],
                                             fix="add a readout neuron (LI or CubaLIF) before the Output")
                chain_op, bias = _fold_chain(graph, shapes, source, chain)
                name = next((n for n in chain if graph.nodes[n].role == "synapse"), chain[0])
            base, k = name, 1
            while name in used or (name in nodes and nodes[name] is not chain_op):
                k += 1
                name = f"{base}#{k}"
            used.add(name)
            if bias is not None and np.any(bias != 0):
                target = nodes[sink]
                if not _absorbs_bias(target):
                    raise UnsupportedOpError(
                        f"the synapse bias of '{name}' feeds a neuron whose current decays (du < 1); a constant "
                        "input current is not a Loihi bias", node=sink,
                        fix="remove the synapse bias, or use du = 1 so the bias can move into the neuron")
                nb = np.broadcast_to(np.asarray(target.bias, float), target.shape).ravel() + bias
                nodes[sink] = target.replace(bias=nb.reshape(target.shape))
            nodes[name] = chain_op
            edges += [(source, name), (name, sink)]
    ordered = {n: nodes[n] for n in graph.order() if n in nodes}
    ordered.update({n: op for n, op in nodes.items() if n not in ordered})
    return Graph(ordered, edges, graph.meta), True
