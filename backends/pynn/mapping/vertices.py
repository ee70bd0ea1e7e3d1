"""Application vertices and their cores: which populations run on how many cores, with which neurons.

Rules (sPyNNaker 1!7.4.1 / PACMAN 1!7.4.1):

* **Neurons per core** (:func:`atoms_per_core`): sPyNNaker's maximum for the cell type (256 for IF_curr_exp and
  IF_curr_delta); option ``neurons_per_core`` (an int for every neuron population, or ``{population or node:
  int}``; the blocks of a split node take the node's entry) may lower it, never raise it. A SpikeSourceArray is one
  core whatever its size (limit 0 = the whole population).
* **Delay extensions** (:func:`delay_stages`): a pre-synaptic population with a projection whose longest delay
  exceeds the post population's on-core delay range ``support`` gets a delay-extension vertex
  ``"<population>_delayed"`` of ``ceil(longest / support) - 1`` stages (the most over its projections), sliced
  like the pre population (one core per pre core).
* **Vertices, cores** (:func:`build_vertices`): populations in creation order, then delay extensions in
  population order; each vertex is cut into contiguous cores of ``atoms_per_core`` neurons
  (:func:`neurodeploy.passes.cores.pack`), numbered in that order. Each neuron core gets its synaptic matrix and
  neuron state bytes (:mod:`.memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from neurodeploy.errors import CapacityError, InputError
from neurodeploy.passes.cores import pack

from ..hardware import SpiNNakerSpec
from ..netlist import Netlist
from .memory import neuron_state_bytes, synaptic_matrix_bytes

#: Name suffix of a delay-extension vertex.
DELAYED = "_delayed"


@dataclass
class Core:
    """One application core (a PACMAN machine vertex)."""

    index: int
    kind: str  # "neuron", "source" or "delay"
    population: str
    start: int
    stop: int
    synaptic_matrix_bytes: int = 0
    neuron_state_bytes: int = 0
    board: int = -1
    chip: tuple[int, int] = (-1, -1)
    p: int = -1

    @property
    def atoms(self) -> int:
        return self.stop - self.start

    @property
    def sdram_bytes(self) -> int:
        return self.synaptic_matrix_bytes + self.neuron_state_bytes


@dataclass
class Vertex:
    """One application vertex (a population or a delay extension) and its cores."""

    name: str
    kind: str
    size: int
    atoms_per_core: int
    cores: list[Core] = field(default_factory=list)


def atoms_per_core(net: Netlist, spec: SpiNNakerSpec, neurons_per_core: Any = None) -> dict[str, int]:
    """Neurons per core for every population (option ``neurons_per_core``: an int or {population or node: int};
    the blocks of a split node take the node's entry)."""
    out = {}
    for name, pop in net.populations.items():
        limit = spec.max_neurons_per_core(pop.cell_type)
        if isinstance(neurons_per_core, dict) and (name in neurons_per_core or pop.node in neurons_per_core):
            limit = int(neurons_per_core.get(name, neurons_per_core.get(pop.node)))
        elif isinstance(neurons_per_core, int) and not pop.is_source:
            limit = int(neurons_per_core)
        if limit < 0 or (limit == 0 and not pop.is_source):
            raise InputError(f"neurons_per_core for '{name}' must be positive, got {limit}",
                             fix="give a positive number of neurons per core")
        cap = spec.max_neurons_per_core(pop.cell_type)
        if cap and limit > cap:
            raise CapacityError(f"{limit} neurons per core exceed sPyNNaker's {cap} for {pop.cell_type}", node=name,
                                fix=f"use at most {cap} neurons per core")
        out[name] = pop.size if limit == 0 else limit
    return out


def delay_stages(net: Netlist, delay_plan: dict[str, Any]) -> dict[str, int]:
    """Delay-extension stages per pre population that needs one (see the module docstring)."""
    pre_stages: dict[str, int] = {}
    for proj in net.projections:
        support = delay_plan[proj.post]["on_core_max_delay"]
        longest = int(proj.delay.max())
        if longest > support:
            stages = math.ceil(longest / support) - 1
            pre_stages[proj.pre] = max(pre_stages.get(proj.pre, 0), stages)
    return pre_stages


def build_vertices(net: Netlist, spec: SpiNNakerSpec, per_core: dict[str, int], delay_plan: dict[str, Any]
                   ) -> tuple[list[Vertex], dict[str, int]]:
    """Application vertices in creation order (populations, then delay extensions) with their cores and SDRAM;
    and the delay stages per pre population."""
    pre_stages = delay_stages(net, delay_plan)
    vertices = []
    for name, pop in net.populations.items():
        kind = "source" if pop.is_source else "neuron"
        vertices.append(Vertex(name, kind, pop.size, per_core[name]))
    for name in net.populations:
        if name in pre_stages:
            vertices.append(Vertex(name + DELAYED, "delay", net.populations[name].size, per_core[name]))
    index = 0
    for v in vertices:
        for start, stop in pack(v.size, v.atoms_per_core):
            v.cores.append(Core(index, v.kind, v.name, start, stop))
            index += 1
    for v in vertices:
        if v.kind == "neuron":
            pop = net.populations[v.name]
            matrix = synaptic_matrix_bytes(net, v.name, per_core, delay_plan, pre_stages, spec)
            for c in v.cores:
                c.synaptic_matrix_bytes = matrix
                c.neuron_state_bytes = neuron_state_bytes(c.atoms, pop.cell_type, spec)
    return vertices, pre_stages
