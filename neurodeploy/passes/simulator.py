"""What the quantize pass needs from a simulator. A pass never imports an engine: the caller injects one.

:mod:`neurodeploy.passes.quantize` runs graphs three ways: the float graph once on the calibration stimuli
(recording u, v and spikes of every neuron), each candidate quantization of one population alone, driven by the
float run's spikes (many runs of one small graph whose integers change between runs), and the quantized graph once
(spikes and v). It asks for exactly this, as two :class:`typing.Protocol` classes:

* :meth:`Simulator.prepare` ``(graph, arithmetic)`` -> :class:`PreparedRun`: ``graph`` is folded (synapses
  between neurons and Inputs only) and validated; ``arithmetic`` is ``"float"`` (float ops, float maths) or
  ``"int"`` (every synapse and neuron carries ``quant``: Loihi integer maths);
* :meth:`PreparedRun.run` ``(spikes, record, nodes)`` -> ``{"<node>/<field>": [B, T, *shape] array}``:
  ``spikes`` holds one ``[B, T, *input_shape]`` 0/1 array per Input node; ``record`` is a subset of
  ``("spikes", "u", "v")``; ``nodes`` the neurons to record (None: all). Step ``t`` of the recorded arrays (index
  ``t - 1``) holds u and v after the reset, with Lava's timing: a stimulus column ``k`` reaches the first neuron
  layer at step ``k + 2`` (:mod:`neurodeploy.emulator.engine` states the full step semantics);
* :meth:`PreparedRun.update` ``(ops)``: replace the named ops by ops of the same kind and shape (new integers,
  same connectivity, same delays) before the next ``run``. A simulator may keep what it prepared (the graph's
  structure) and swap only the values; the results must be those of preparing the updated graph anew.

:class:`neurodeploy.compiler.EmulatorSimulator` implements it with the bit-exact emulator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Op

#: The arithmetic a prepared run uses.
ARITHMETICS = ("float", "int")


class PreparedRun(Protocol):
    """A graph prepared for repeated runs (see the module docstring)."""

    def run(self, spikes: Mapping[str, np.ndarray], record: Sequence[str] = (),
            nodes: Sequence[str] | None = None) -> Mapping[str, np.ndarray]:
        """Run on ``spikes`` (one ``[B, T, *shape]`` array per Input); return ``{"<node>/<field>": array}``."""
        ...

    def update(self, ops: Mapping[str, Op]) -> None:
        """Replace the named ops by same-structure ops (new integers) for the following runs."""
        ...


class Simulator(Protocol):
    """Prepares graphs for :class:`PreparedRun` (see the module docstring)."""

    def prepare(self, graph: Graph, arithmetic: str) -> PreparedRun:
        """``graph`` (folded, validated) prepared for runs in ``arithmetic`` (``"float"`` or ``"int"``)."""
        ...
