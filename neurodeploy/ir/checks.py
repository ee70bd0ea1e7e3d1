"""Structural preconditions on a graph that layers above the IR check before they run it.

A graph is *folded* when it holds no linear op (``role == "linear"``: Flatten, Scale, pooling, Conv2d's linear
forms, Delay, ...) and every synapse reads an Input or a neuron population and feeds neuron populations only, every
neuron reads synapses only, and no Output reads a synapse. This is what :func:`neurodeploy.passes.fold.fold_linear`
produces and what the emulator and the backends execute. They do not fold themselves (a pass is a layer above
them): they call :func:`require_folded`, which names the first offending node and the pass to run.
"""

from __future__ import annotations

from neurodeploy.errors import IRError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Input, Output

__all__ = ["UnfoldedGraphError", "is_folded", "require_folded", "unfolded_reason"]

FOLD_FIX = "fold the graph first: neurodeploy.passes.fold.fold_linear (the compiler's first pass)"


class UnfoldedGraphError(IRError):
    """A graph that still holds linear ops (or synapses not between sources and neurons) was given to a layer that
    runs folded graphs only."""


def unfolded_reason(graph: Graph) -> tuple[str, str] | None:
    """``None`` for a folded graph, else ``(node, why)`` for the first node (in graph order) that is not."""
    nodes = graph.nodes
    for name, op in nodes.items():
        if op.role == "linear":
            return name, f"a linear op ({op.op_type})"
    for name, op in nodes.items():
        if op.role == "synapse":
            for p in graph.predecessors(name):
                if nodes[p].role != "neuron" and not isinstance(nodes[p], Input):
                    return name, f"a synapse reading '{p}' ({nodes[p].op_type}), not an Input or a neuron"
            for s in graph.successors(name):
                if nodes[s].role != "neuron":
                    return name, f"a synapse feeding '{s}' ({nodes[s].op_type}), not a neuron"
        elif op.role == "neuron":
            for p in graph.predecessors(name):
                if nodes[p].role != "synapse":
                    return name, f"a neuron reading '{p}' ({nodes[p].op_type}), not a synapse"
        elif isinstance(op, Output):
            for p in graph.predecessors(name):
                if nodes[p].role == "synapse":
                    return name, f"an Output reading synapse '{p}'"
    return None


def is_folded(graph: Graph) -> bool:
    """Whether ``graph`` is folded (module docstring)."""
    return unfolded_reason(graph) is None


def require_folded(graph: Graph) -> None:
    """Raise :class:`UnfoldedGraphError` (naming the node and the pass to run) unless ``graph`` is folded."""
    reason = unfolded_reason(graph)
    if reason is not None:
        node, why = reason
        raise UnfoldedGraphError(f"{why}: the graph is not folded", node=node, fix=FOLD_FIX)
