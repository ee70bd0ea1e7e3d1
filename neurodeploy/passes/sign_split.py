"""Split mixed-sign float synapses into an excitatory and an inhibitory synapse (one more bit of weight precision).

Lava/Loihi weights are 8-bit mantissas per connection with one shared exponent: a *mixed* connection stores
``[-256, 255]`` and its 8-bit truncation drops the lowest bit (``k = 8 - bits + 1``), so a magnitude keeps 7 bits;
an *excitatory* ``[0, 255]`` or *inhibitory* ``[-255, 0]`` connection keeps all 8, and each half gets its own
``weight_exp`` (fitted to its own largest magnitude). Splitting ``W = W+ + W-`` (``W+ = max(W, 0)``,
``W- = min(W, 0)``) into two synapse ops with the same source, target and delays leaves the float maths unchanged
(``W s = W+ s + W- s``, up to float64 summation order) and halves the weight rounding error after quantization,
at no extra synapse (every non-zero weight lands in exactly one half) but one more synapse process.

:func:`split_signs` applies it to every float Dense / Sparse / Conv2d whose weights hold both signs (a Conv2d is
split kernel-wise); the halves are named ``<name>+`` and ``<name>-``.
"""

from __future__ import annotations

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, Dense, Op, Sparse


def _values(op: Op) -> np.ndarray:
    return np.asarray(op.value if isinstance(op, Sparse) else op.weight, np.float64)


def _half(op: Op, keep: np.ndarray) -> Op:
    if isinstance(op, Sparse):
        delays = None if op.delays is None else np.asarray(op.delays)[keep]
        return op.replace(row=np.asarray(op.row)[keep], col=np.asarray(op.col)[keep],
                          value=np.asarray(op.value, np.float64)[keep], delays=delays)
    return op.replace(weight=np.where(keep, np.asarray(op.weight, np.float64), 0.0))


def split_signs(graph: Graph) -> tuple[Graph, bool]:
    """Split every mixed-sign float synapse of ``graph`` (see the module docstring); returns ``(graph, changed)``.

    Synapses with a float bias are left as they are (the bias has no sign split); quantized ones too.
    """
    nodes: dict[str, Op] = {}
    edges = [e for e in graph.edges]
    changed = False
    for name, op in graph.nodes.items():
        if not isinstance(op, Dense | Sparse | Conv2d) or op.quant is not None or getattr(op, "bias", None) is not None:
            nodes[name] = op
            continue
        w = _values(op)
        if not (w > 0).any() or not (w < 0).any():
            nodes[name] = op
            continue
        (src,) = graph.predecessors(name)
        (dst,) = graph.successors(name)
        for suffix, keep in (("+", w > 0), ("-", w < 0)):
            nodes[name + suffix] = _half(op, keep)
            edges += [(src, name + suffix), (name + suffix, dst)]
        edges = [e for e in edges if name not in e]
        changed = True
    if not changed:
        return graph, False
    return Graph(nodes, edges, graph.meta), True
