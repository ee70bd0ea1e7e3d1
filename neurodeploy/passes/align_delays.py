"""Delay alignment for paths of different depth (residual shortcuts, skip connections) under Lava/Loihi timing.

Every synapse adds one step plus its delay (see :mod:`neurodeploy.ir.timing`): a source whose spikes at array
step ``k + L_s`` hold model step ``k`` ("latency" ``L_s``) reaches a target through a synapse of delay ``d`` at
``k + L_s + 1 + d``. For a target fed by several sources to see every source's step-``k`` contribution at the
same step, its latency must be ``L = max_s(L_s) + 1`` (or larger, when asked) and each synapse from ``s`` must carry

    d_s = L - 1 - L_s                                                        (0 <= d_s <= max_delay)

:func:`align` computes ``L`` and the ``d_s``; :func:`with_delay` puts a uniform delay on a synapse op;
:func:`gate_biases` makes constant neuron biases start with the data (a delayed synapse from a clock neuron). Loihi 2's
delays are 6 bits, usable range [0, 62] (``neurodeploy.backends.lava.describe.MAX_DELAY``); a larger need raises
:class:`~neurodeploy.errors.CapacityError` naming the target node and the source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from neurodeploy.errors import CapacityError, IRError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.neurons import compartment
from neurodeploy.ir.ops import Conv2d, Dense, Op, Shape, Sparse

#: Loihi 2's usable synaptic delay range is [0, 62] steps.
MAX_DELAY = ar.MAX_DELAY


def align(sources: Mapping[str, int], target: str, min_latency: int | None = None,
          max_delay: int = MAX_DELAY) -> tuple[int, dict[str, int]]:
    """``(L, {source: d_s})`` for a target fed by ``sources`` (name -> latency), see the module docstring.

    ``min_latency`` forces ``L`` to at least that value (e.g. to align with a sibling). Raises
    :class:`CapacityError` when a delay exceeds ``max_delay``, naming ``target`` and the source.
    """
    if not sources:
        raise IRError("no incoming source to align", node=target, fix="connect at least one source")
    latency = max(int(v) for v in sources.values()) + 1
    if min_latency is not None:
        latency = max(latency, int(min_latency))
    delays = {}
    for name, src_latency in sources.items():
        d = latency - 1 - int(src_latency)
        if d > max_delay:
            raise CapacityError(f"aligning the path from '{name}' (latency {src_latency}) with the others (target "
                                f"latency {latency}) needs a synaptic delay of {d} steps; the target allows "
                                f"0..{max_delay}", node=target,
                                fix="shorten the deepest path (fewer blocks), or relay the shallow path through "
                                    "identity neurons (each adds one step)")
        delays[name] = d
    return latency, delays


def with_delay(op: Op, delay: int, in_shape: Shape) -> Op:
    """``op`` with every synapse delayed by ``delay`` steps (unchanged for ``delay == 0``).

    Dense keeps its form (Lava ``DelayDense``); Conv2d becomes the exact :class:`Sparse` of its matrix, since Lava
    has no delayed convolution; Sparse gets per-entry delays (Lava ``DelaySparse``).
    """
    delay = int(delay)
    if delay < 0:
        raise IRError(f"negative delay {delay}", node=op.origin or None, fix="delays count steps from 0")
    if delay == 0:
        return op
    if isinstance(op, Dense):
        return op.replace(delays=np.full(np.shape(op.weight), delay, np.int64))
    if isinstance(op, Conv2d):
        if op.bias is not None and np.any(np.asarray(op.bias) != 0):
            raise IRError("a delayed Conv2d cannot keep a bias", node=op.origin or None,
                          fix="move the bias to the target neuron (or a delayed bias synapse)")
        coo = op_matrix(op, in_shape).tocoo()
        return Sparse(out_shape=op.output_shape(in_shape), in_size=int(math.prod(in_shape)),
                      row=coo.row.astype(np.int64), col=coo.col.astype(np.int64), value=np.asarray(coo.data),
                      delays=np.full(coo.nnz, delay, np.int64), weight_exp=op.weight_exp,
                      num_weight_bits=op.num_weight_bits, sign_mode=op.sign_mode, quant=op.quant, origin=op.origin)
    if isinstance(op, Sparse):
        return op.replace(delays=np.full(np.shape(op.value), delay, np.int64))
    raise IRError(f"{op.op_type} is not a synapse", node=op.origin or None, fix="delay a Dense, Sparse or Conv2d")


def gate_biases(graph: Graph, clock: str = "clock", max_delay: int = MAX_DELAY) -> Graph:
    """Move every neuron's constant bias onto a delayed synapse from one always-on *clock* neuron.

    A neuron bias acts from step 1, but a neuron at latency ``L`` (:func:`neurodeploy.ir.timing.node_latency`)
    receives its first data at array step ``L``: during the ``L`` warm-up steps the bias alone would charge it, so
    the lowered network would no longer equal the model it came from. Here the bias ``b`` of such a neuron becomes
    a synapse of weight ``b`` (per neuron) and delay ``L - 1`` from ``clock``, a ``CubaLIF(du=1, dv=0, vth=0.5,
    bias=1)`` that spikes at every step from step 1 (``v = 1 > 0.5``, reset to 0): the bias then reaches the neuron
    at array steps ``L, L+1, ...``, exactly with its data. Only exact for ``du = 1`` (the synapse feeds ``u``, the
    bias ``v``; with ``du = 1`` both add to ``v`` once per step); other neurons with a bias raise
    :class:`IRError`. Neurons at latency 0 or without a bias are unchanged; a graph without biases is returned as is.
    """
    from neurodeploy.ir.ops import CubaLIF
    from neurodeploy.ir.timing import node_latency

    latency = node_latency(graph)
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    if clock in nodes:
        raise IRError(f"the graph already has a node named '{clock}'", node=clock, fix="choose another clock name")
    added = False
    for name, op in graph.nodes.items():
        if op.role != "neuron" or op.quantized:
            continue
        float_form = compartment(op, integer=False, node=name)  # the neuron-model table's float compartment
        if not float_form.bias.any() or latency.get(name, 0) == 0:
            continue
        du = float(float_form.du)
        if du != 1.0:
            raise IRError(f"a bias on a neuron with du = {du} cannot be gated by a synapse (it would pass through "
                          "the current decay)", node=name, fix="use du = 1, or keep the bias (warm-up not exact)")
        delay = latency[name] - 1
        if delay > max_delay:
            raise CapacityError(f"its bias must start {latency[name]} steps after the clock; a delay of {delay} "
                                f"exceeds 0..{max_delay}", node=name,
                                fix="shorten the path to this neuron, or relay the clock through neurons")
        syn = f"{clock}->{name}"
        nodes[syn] = with_delay(Dense(weight=np.array(float_form.bias).reshape(-1, 1), origin=op.origin), delay, (1,))
        nodes[name] = op.replace(bias=0.0)
        edges += [(clock, syn), (syn, name)]
        added = True
    if not added:
        return graph
    nodes[clock] = CubaLIF(shape=(1,), du=1.0, dv=0.0, vth=0.5, bias=1.0, reset="zero", origin="clock")
    return Graph(nodes, edges, graph.meta)
