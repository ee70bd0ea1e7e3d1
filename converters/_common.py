"""Helpers shared by the converters: parameter collapsing, input gains, bias folding, readouts, latency.

Every converter first builds a *loose* float graph that mirrors the source model (synapses keep their biases, a
pooling layer stays a pooling op, a neuron may be wired straight to another one) and then calls :func:`finish`,
which turns it into the IR's float form:

1. **Input gains** ``g`` (per target neuron; NIR's ``r``/``w_in`` factors, or ``1 / vth_i`` when thresholds differ
   per neuron) become one :class:`~neurodeploy.ir.ops.Scale` op in front of the neuron on each incoming edge.
   Gains within :data:`GAIN_RTOL` of 1 (float32 rounding of ``tau / dt`` products written by exporters) are 1.
2. **Outputs** must read spikes (or an LI readout's v): an Output behind a synapse or a pooling/scale op gets a
   pass-through readout ``LI(du=1, dv=1)``, whose ``v = u + bias = a`` is exactly the chain's output, one step late.
   A Flatten in front of an Output is dropped (shapes only).
3. **Biases.** A synapse bias is a constant input current ``c`` (composed through the chain to the neuron by the
   chain's matrices). With the neuron's current update ``u = (1 - du) u + a + c`` the current settles at
   ``c / du``; the IR has no constant *current* source, so ``c / du`` is added to the neuron's voltage bias.
   That is exact when ``du = 1`` (every Leaky layer, IF, LIF) and exact *in steady state* otherwise: with
   ``du < 1`` the converted neuron sees the full ``c / du`` from step 1 where the source ramps up as
   ``c (1 - (1 - du)^t) / du`` (recorded in ``meta["conversion_notes"]``); ``du = 0`` with a bias is rejected.
   Afterwards every synapse's ``bias`` is None, as the IR's float form requires.
4. The graph is validated and test-folded with :func:`neurodeploy.passes.fold.fold_linear` so that a model the
   compiler cannot fold fails here, naming the layer; ``meta["latency_steps"]`` (steps from the input to the
   slowest output in the folded graph, see :func:`latency_steps`), ``meta["output_latency_steps"]`` (per output),
   ``meta["node_latency_steps"]`` (per neuron) and ``meta["conversion_notes"]`` are set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from neurodeploy.errors import ConversionError, NeurodeployError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import IF, LI, Conv2d, Delay, Flatten, NeuronOp, Op, Output, Scale, Shape
from neurodeploy.ir.timing import node_latency

#: Relative tolerance under which an input gain counts as exactly 1 (float32 has a 1.2e-7 relative step).
GAIN_RTOL = 1e-5


class ModelWarning(UserWarning):
    """A source model was read or converted with a caveat the user should see (the message names the node)."""


class Notes:
    """The semantic gaps of one conversion: a list of ``{"node": name, "note": text}`` in ``meta``."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, node: str, note: str) -> None:
        entry = {"node": node, "note": note}
        if entry not in self.items:
            self.items.append(entry)


def in_source(err: NeurodeployError, kind: str, path: Any) -> NeurodeployError:
    """``err`` (same class, node and fix) with "``kind`` file '``path``'" in front of its message, unless it names
    the file already: converter errors name the node and field, this adds the file."""
    text = str(err)
    if f"'{path}'" in text:
        return err
    renamed = type(err)(f"{kind} file '{path}', {text}")
    renamed.node, renamed.fix = err.node, err.fix
    return renamed


def size(shape: Shape) -> int:
    return int(math.prod(shape))


def per_neuron(values: Any, shape: Shape, what: str, node: str) -> np.ndarray:
    """Broadcast a scalar or per-neuron parameter to ``shape`` (float64); raise ConversionError if impossible."""
    arr = np.asarray(values, dtype=np.float64)
    try:
        if arr.size == size(shape) and arr.shape != tuple(shape):
            arr = arr.reshape(shape)
        return np.broadcast_to(arr, shape).astype(np.float64)
    except ValueError:
        raise ConversionError(f"{what} has shape {arr.shape}, which does not fit the layer's {size(shape)} neurons "
                              f"(shape {tuple(shape)})", node=node,
                              fix=f"give one {what} per layer or one per neuron") from None


def uniform(values: np.ndarray) -> bool:
    values = np.asarray(values)
    return values.size == 0 or bool(np.all(values == values.flat[0]))


def scalar(values: Any, shape: Shape, what: str, node: str) -> float:
    """A parameter that the IR (and Loihi) holds once per population: reject differing per-neuron values."""
    arr = per_neuron(values, shape, what, node)
    if not uniform(arr):
        raise ConversionError(f"{what} differs between the neurons of one layer "
                              f"(min {arr.min():.6g}, max {arr.max():.6g}); the IR keeps one {what} per population",
                              node=node, fix=f"use one {what} for the whole layer, or split the layer in two")
    return float(arr.flat[0]) if arr.size else 0.0


def compact(values: np.ndarray) -> float | np.ndarray:
    """A float when every entry is equal, else the array (used for biases, which may differ per neuron)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.flat[0]) if values.size and uniform(values) else values


def is_one(gain: np.ndarray) -> bool:
    return bool(np.allclose(gain, 1.0, rtol=GAIN_RTOL, atol=0.0))


# ------------------------------------------------------------------------------------------------- finishing
class _Loose:
    """A mutable node/edge list while a converter rewires it."""

    def __init__(self, nodes: dict[str, Op], edges: list[tuple[str, str]]):
        self.nodes = dict(nodes)
        self.edges = list(edges)

    def preds(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def succs(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.nodes:
            k += 1
            name = f"{base}#{k}"
        return name

    def insert_between(self, src: str, dst: str, name: str, op: Op) -> str:
        name = self.fresh(name)
        self.nodes[name] = op
        i = self.edges.index((src, dst))
        self.edges[i:i + 1] = [(src, name), (name, dst)]
        return name

    def graph(self, meta: dict[str, Any]) -> Graph:
        return Graph(self.nodes, self.edges, meta)


def _apply_gains(g: _Loose, gains: dict[str, np.ndarray], notes: Notes) -> None:
    for neuron, gain in gains.items():
        if is_one(gain):
            continue
        op = g.nodes[neuron]
        scale = compact(np.asarray(gain, dtype=np.float64).reshape(op.shape))
        scale_arr = np.asarray(scale, dtype=np.float64) if isinstance(scale, np.ndarray) else np.array([scale])
        for pred in g.preds(neuron):
            g.insert_between(pred, neuron, f"{neuron}.gain", Scale(scale=scale_arr, origin=op.origin))


def _fix_outputs(g: _Loose, notes: Notes) -> None:
    for out in [n for n, op in g.nodes.items() if isinstance(op, Output)]:
        for pred in g.preds(out):
            chain, node = [], pred
            while g.nodes[node].role in ("linear", "synapse"):
                chain.append(node)
                preds = g.preds(node)
                if len(preds) != 1:
                    break
                node = preds[0]
            if not chain:
                continue
            if all(isinstance(g.nodes[c], Flatten) for c in chain):
                i = g.edges.index((pred, out))
                g.edges[i] = (node, out)
                notes.add(out, f"the Flatten before this output was dropped: the output has the shape of '{node}'")
                continue
            shape = _shape_of(g, pred)
            origin = g.nodes[chain[-1]].origin or chain[-1]
            name = g.insert_between(pred, out, f"{out}.readout",
                                    LI(shape=shape, du=1.0, dv=1.0, origin=origin))
            notes.add(name, "non-spiking output layer: a pass-through readout LI(du=1, dv=1) was added; its v equals "
                            "the layer's output (u = a, v = u + bias) one step after the synapse, as every synapse "
                            "adds one step")


def _shape_of(g: _Loose, name: str) -> Shape:
    return tuple(g.graph({}).shapes()[name])


def _chain_bias(graph: Graph, shapes: dict[str, Shape], source: str, chain: list[str]) -> np.ndarray | None:
    """The constant current that the biases along ``chain`` (source excluded, sink excluded) deliver to the sink."""
    shape = shapes[source]
    bias = None
    for name in chain:
        op = graph.nodes[name]
        out_shape = op.output_shape(shape)
        if not isinstance(op, Delay | Flatten) and bias is not None:
            bias = op_matrix(op, shape) @ bias
        own = getattr(op, "bias", None) if op.role == "synapse" else None
        if own is not None:
            own = np.asarray(own, dtype=np.float64)
            if isinstance(op, Conv2d):
                own = np.repeat(own, size(out_shape[1:]))
            own = np.broadcast_to(own.ravel(), (size(out_shape),))
            bias = own if bias is None else bias + own
        shape = out_shape
    return bias


def _chains_into(graph: Graph, sink: str) -> list[tuple[str, list[str]]]:
    """Every (source, chain) that reaches ``sink`` through linear/synapse ops only."""
    found = []
    stack = [(p, []) for p in graph.predecessors(sink)]
    while stack:
        node, chain = stack.pop()
        op = graph.nodes[node]
        if op.role in ("linear", "synapse") and node not in chain:
            stack.extend((p, [node] + chain) for p in graph.predecessors(node))
        else:
            found.append((node, chain))
    return found


def _fold_biases(g: _Loose, notes: Notes) -> None:
    graph = g.graph({})
    shapes = graph.shapes()
    with_bias = {n for n, op in g.nodes.items()
                 if op.role == "synapse" and getattr(op, "bias", None) is not None}
    if not with_bias:
        return
    for name, op in list(g.nodes.items()):
        if op.role != "neuron":
            continue
        total = np.zeros(size(op.shape))
        for source, chain in _chains_into(graph, name):
            if not with_bias.intersection(chain):
                continue
            c = _chain_bias(graph, shapes, source, chain)
            if c is not None:
                total = total + c
        if not np.any(total):
            continue
        du = 1.0 if isinstance(op, IF) else float(op.du)
        if du == 0.0:
            raise ConversionError("a layer bias feeds neurons whose synaptic current never decays (du = 0): the "
                                  "current would grow without bound and has no equivalent neuron bias", node=name,
                                  fix="remove the bias of the preceding layer or use a current decay above 0")
        if du != 1.0:
            notes.add(name, f"the preceding layer's bias enters this neuron's decaying current (du = {du:.6g}); it "
                            f"was moved into the voltage bias as bias / du = {1 / du:.6g} x bias, its steady-state "
                            "value. The source ramps up to it as (1 - (1 - du)^t), the IR applies it in full from "
                            "step 1, so early steps differ")
        old = np.broadcast_to(np.asarray(op.bias, dtype=np.float64).ravel(), total.shape)
        g.nodes[name] = op.replace(bias=compact((old + total / du).reshape(op.shape)))
    for name in with_bias:
        g.nodes[name] = g.nodes[name].replace(bias=None)


latency_steps = node_latency  # kept under this name for the converters' callers


def finish(nodes: dict[str, Op], edges: Iterable[tuple[str, str]], meta: dict[str, Any], notes: Notes,
           gains: dict[str, np.ndarray] | None = None, source: str = "model") -> Graph:
    """Turn a converter's loose graph into a valid float IR graph (see the module docstring)."""
    from neurodeploy.passes.fold import fold_linear

    g = _Loose(nodes, list(edges))
    _apply_gains(g, gains or {}, notes)
    _fix_outputs(g, notes)
    _fold_biases(g, notes)
    meta = dict(meta)
    graph = g.graph(meta)
    try:
        graph.validate(finite=True)
        folded, _ = fold_linear(graph)
    except NeurodeployError as err:
        raise ConversionError(f"the converted {source} is not a valid IR graph: {err}") from None
    dist = latency_steps(folded)  # after folding: identity synapses count, Delay ops are synapse delays
    outputs = {o: int(dist[o]) for o in graph.outputs if o in dist}
    graph.meta["output_latency_steps"] = outputs
    graph.meta["latency_steps"] = max(outputs.values()) if outputs else 0
    graph.meta["node_latency_steps"] = {n: int(dist[n]) for n, op in graph.nodes.items()
                                        if isinstance(op, NeuronOp) and n in dist}
    for out, steps in outputs.items():
        notes.add(out, f"latency: every synapse adds one step (Lava/Loihi timing), so a stimulus at step t first "
                       f"reaches this output at step t + {steps}")
    for name, steps in graph.meta["node_latency_steps"].items():
        op = graph.nodes[name]
        if steps > 0 and np.any(np.asarray(getattr(op, "bias", 0.0)) != 0):
            notes.add(name, f"this neuron's bias acts from step 1 but the stimulus reaches it {steps} step(s) later: "
                            f"for its first {steps} step(s) it integrates the bias alone, which the source model "
                            "(where the bias and the input start together) never does; later steps differ by the "
                            "state this leaves (exact when the bias is 0)")
    graph.meta["conversion_notes"] = list(notes.items)
    return graph


__all__ = ["ModelWarning", "Notes", "finish", "in_source", "latency_steps", "per_neuron", "scalar", "compact",
           "uniform", "is_one", "size", "GAIN_RTOL"]
