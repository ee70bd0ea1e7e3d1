"""Latency of an IR graph under Lava/Loihi timing."""

from __future__ import annotations

import heapq
import math

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Delay


def node_latency(graph: Graph) -> dict[str, int]:
    """Fewest steps from any Input to every reachable node.

    Each synapse adds ``1 + min(delays)``, a Delay op its smallest delay, every other op nothing: a stimulus
    column ``k`` can first influence node ``n`` at array index ``k + latency[n]``.
    """
    dist = {n: 0 for n in graph.inputs}
    heap = [(0, n) for n in graph.inputs]
    while heap:
        d, name = heapq.heappop(heap)
        if d > dist.get(name, math.inf):
            continue
        for succ in graph.successors(name):
            op = graph.nodes[succ]
            step = 0
            if op.role == "synapse":
                delays = getattr(op, "delays", None)
                step = 1 + (int(np.min(delays)) if delays is not None and np.size(delays) else 0)
            elif isinstance(op, Delay):
                step = int(np.min(op.delay)) if np.size(op.delay) else 0
            if d + step < dist.get(succ, math.inf):
                dist[succ] = d + step
                heapq.heappush(heap, (d + step, succ))
    return dist


def output_latency(graph: Graph) -> dict[str, int]:
    """:func:`node_latency` of every reachable Output node."""
    dist = node_latency(graph)
    return {out: int(dist[out]) for out in graph.outputs if out in dist}
