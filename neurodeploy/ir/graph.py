"""The IR graph: named nodes, directed (source, target) edges; cycles allowed.

A node with several incoming edges sums them (only neurons and Output may have more than one: residual adds and
recurrent connections are several edges into one neuron). Float and quantized graphs are the same type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from neurodeploy.errors import IRError
from neurodeploy.ir.fields import check_fields, shape_problem
from neurodeploy.ir.ops import (
    RESET_MODES,
    SIGN_MODES,
    CubaLIF,
    Input,
    NeuronOp,
    Op,
    Output,
    Shape,
    Sparse,
    SynapseOp,
)


class Graph:
    """A directed graph of IR ops. Immutable by convention: passes build new graphs."""

    def __init__(self, nodes: Mapping[str, Op], edges: Iterable[tuple[str, str]],
                 meta: Mapping[str, Any] | None = None):
        self.nodes: dict[str, Op] = dict(nodes)
        self.edges: list[tuple[str, str]] = [(str(a), str(b)) for a, b in edges]
        self.meta: dict[str, Any] = dict(meta or {})
        self._preds: dict[str, list[str]] = {name: [] for name in self.nodes}
        self._succs: dict[str, list[str]] = {name: [] for name in self.nodes}
        for src, dst in self.edges:
            if src not in self.nodes or dst not in self.nodes:
                missing = src if src not in self.nodes else dst
                raise IRError(f"edge ({src} -> {dst}) refers to unknown node '{missing}'",
                              fix="add the node or remove the edge")
            self._preds[dst].append(src)
            self._succs[src].append(dst)

    # ----------------------------------------------------------------------------------------------- structure
    def predecessors(self, name: str) -> list[str]:
        return list(self._preds[name])

    def successors(self, name: str) -> list[str]:
        return list(self._succs[name])

    @property
    def inputs(self) -> list[str]:
        return [n for n, op in self.nodes.items() if isinstance(op, Input)]

    @property
    def outputs(self) -> list[str]:
        return [n for n, op in self.nodes.items() if isinstance(op, Output)]

    def by_role(self, role: str) -> list[str]:
        return [n for n, op in self.nodes.items() if op.role == role]

    @property
    def quantized(self) -> bool:
        """True when every synapse and neuron op carries integers (``quant`` set)."""
        ops = [op for op in self.nodes.values() if op.role in ("synapse", "neuron")]
        return bool(ops) and all(getattr(op, "quant", None) is not None for op in ops)

    def order(self) -> list[str]:
        """Nodes in breadth-first order from the inputs (a topological order when the graph is acyclic)."""
        seen: dict[str, None] = {}
        frontier = list(self.inputs)
        while frontier:
            nxt = []
            for name in frontier:
                if name in seen:
                    continue
                seen[name] = None
                nxt.extend(s for s in self._succs[name] if s not in seen)
            frontier = nxt
        for name in self.nodes:  # unreachable nodes keep their insertion order at the end
            seen.setdefault(name, None)
        return list(seen)

    def with_nodes(self, nodes: Mapping[str, Op] | None = None, edges: Iterable[tuple[str, str]] | None = None,
                   meta: Mapping[str, Any] | None = None) -> Graph:
        return Graph(self.nodes if nodes is None else nodes, self.edges if edges is None else edges,
                     self.meta if meta is None else meta)

    # ------------------------------------------------------------------------------------------------- shapes
    def shapes(self) -> dict[str, Shape]:
        """Infer every node's output shape (fixed point over the graph, so cycles through neurons resolve)."""
        shapes: dict[str, Shape] = {}
        for name, op in self.nodes.items():
            if isinstance(op, Input | NeuronOp):
                shapes[name] = tuple(int(d) for d in op.shape)
        changed = True
        while changed:
            changed = False
            for name in self.order():
                if name in shapes and not isinstance(self.nodes[name], NeuronOp):
                    continue
                preds = self._preds[name]
                if not preds:
                    continue
                if any(p not in shapes for p in preds):
                    continue
                in_shapes = {shapes[p] for p in preds}
                if len(in_shapes) > 1 and len({int(np.prod(s)) for s in in_shapes}) > 1:
                    raise IRError(f"inputs of different sizes are summed: {sorted(in_shapes)} from {preds}",
                                  node=name, fix="make every incoming connection produce the neuron's size")
                op = self.nodes[name]
                try:
                    out = op.output_shape(next(iter(in_shapes)))
                except IRError as err:
                    raise IRError(str(err), node=name) from None
                problem = shape_problem(tuple(out))
                if problem:
                    raise IRError(f"{op.op_type} output shape {problem}", node=name,
                                  fix="check the layer's kernel, stride and padding and the input shape")
                if shapes.get(name) != out:
                    shapes[name] = out
                    changed = True
        missing = [n for n in self.nodes if n not in shapes]
        if missing:
            raise IRError(f"cannot infer the shape of {missing[:5]} (not reachable from an input)",
                          node=missing[0], fix="connect the node to an Input or remove it")
        return shapes

    # --------------------------------------------------------------------------------------------- validation
    def validate(self, *, finite: bool = False) -> Graph:
        """Check every field's type and range (:mod:`neurodeploy.ir.fields`), the structure (edges, every node
        reachable from an Input), shapes and parameter ranges; raise :class:`IRError` naming the node. Returns self.

        ``finite=True`` also refuses NaN and infinite parameters (what model loaders and converters ask for; without
        it the quantize pass refuses them with the offending index, as a :class:`QuantizationError`).
        """
        for name, op in self.nodes.items():
            check_fields(name, op, finite)
        if not self.inputs:
            raise IRError("the graph has no Input node", fix="add an Input op")
        if not self.outputs:
            raise IRError("the graph has no Output node", fix="add an Output op after the layer to read")
        for name, op in self.nodes.items():
            n_pred = len(self._preds[name])
            if isinstance(op, Input) and n_pred:
                raise IRError("an Input node cannot have incoming edges", node=name, fix="remove those edges")
            if op.role in ("synapse", "linear") and n_pred != 1:
                raise IRError(f"{op.op_type} needs exactly one input, it has {n_pred}", node=name,
                              fix="connect exactly one source (sum several sources in a neuron instead)")
            if isinstance(op, Output) and n_pred < 1:
                raise IRError("Output node has no source", node=name, fix="connect the layer to read to it")
            if isinstance(op, NeuronOp | CubaLIF) and getattr(op, "reset", "zero") not in RESET_MODES:
                raise IRError(f"reset mode '{op.reset}' is not one of {RESET_MODES}", node=name,
                              fix="use 'zero' or 'subtract'")
            if isinstance(op, SynapseOp):
                self._validate_synapse(name, op)
        self._validate_reachable()
        self.shapes()
        return self

    def _validate_reachable(self) -> None:
        """Every node must be driven: reachable from an Input or from a bias-driven neuron (a neuron without
        incoming edges whose bias is not zero, e.g. a clock). Anything else can never change (a graph whose edges
        were lost, a layer left unconnected), and an Output that nothing drives reads nothing."""
        seen = set(self.inputs) | {n for n, op in self.nodes.items()
                                   if op.role == "neuron" and not self._preds[n] and np.any(getattr(op, "bias", 0))}
        frontier = list(seen)
        while frontier:
            frontier = list({s for n in frontier for s in self._succs[n] if s not in seen})
            seen.update(frontier)
        unreached = [n for n in self.nodes if n not in seen]
        if unreached:
            outputs = [n for n in unreached if isinstance(self.nodes[n], Output)]
            first = outputs[0] if outputs else unreached[0]
            what = "Output " if outputs else ""
            raise IRError(f"{what}node is never driven: {len(unreached)} node(s) have no path from an Input or a "
                          f"bias-driven neuron: {unreached[:5]}{' ...' if len(unreached) > 5 else ''}", node=first,
                          fix="connect the node to the network (the model's edges may be missing) or remove it")

    def _validate_synapse(self, name: str, op: SynapseOp) -> None:
        if op.sign_mode is not None and op.sign_mode not in SIGN_MODES:
            raise IRError(f"sign_mode '{op.sign_mode}' is not one of {SIGN_MODES}", node=name,
                          fix="use mixed, excitatory or inhibitory")
        if isinstance(op, Sparse):
            self._validate_sparse(name, op)

    @staticmethod
    def _validate_sparse(name: str, op: Sparse) -> None:
        """COO arrays of equal length, integer indices inside ``[0, n_out) x [0, in_size)``, delays per entry."""
        row, col, value = np.asarray(op.row), np.asarray(op.col), np.asarray(op.value)
        fix = "give row, col and value one entry per synapse (and delays one per synapse, or one for all)"
        n = value.size
        if row.size != n or col.size != n or (op.delays is not None and np.size(op.delays) not in (1, n)):
            raise IRError(f"Sparse arrays differ in length: row {row.size}, col {col.size}, value {n}"
                          + ("" if op.delays is None else f", delays {np.size(op.delays)}"), node=name, fix=fix)
        if n == 0:
            return
        for label, idx, size in (("row", row, int(np.prod(op.out_shape))), ("col", col, int(op.in_size))):
            if not np.issubdtype(idx.dtype, np.integer):
                raise IRError(f"Sparse {label} indices must be integers, got {idx.dtype}", node=name, fix=fix)
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= size:
                raise IRError(f"Sparse {label} index {lo if lo < 0 else hi} is outside [0, {size})", node=name,
                              fix=f"keep {label} indices below {size} ({'out_shape' if label == 'row' else 'in_size'})")

    def summary(self) -> list[dict[str, Any]]:
        """One row per node: name, op, shape, origin, quantized (used by ``inspect``)."""
        shapes = self.shapes()
        return [{"name": n, "op": op.op_type, "shape": list(shapes[n]), "origin": op.origin,
                 "inputs": self._preds[n]} for n, op in self.nodes.items()]
