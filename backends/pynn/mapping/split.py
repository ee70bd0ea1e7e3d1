"""Population splitting: a netlist with every large neuron population built as several PyNN populations.

Rules:

* **Blocks.** A neuron population of more than ``max_neurons`` neurons is cut into populations of ``max_neurons``
  contiguous neurons, the last one smaller (:func:`neurodeploy.passes.cores.pack`, the core packing rule);
  spike sources and smaller populations stay whole. A block is named ``"<population>[start:stop]"``; its ``node``
  is the original population's node and its ``offset`` that population's offset plus ``start``; its neurons,
  parameters and synapses are the original's, in block-local indices.
* **Projections.** Each projection becomes one projection per (pre block, post block) pair that has synapses,
  named ``"<label>[<pre block>-><post block>]"``, in (pre block, post block) order; a pair's synapses keep their
  (pre, post) order. Projections must be sorted by pre neuron (``build_netlist`` sorts them by (pre, post)).

Why: sPyNNaker reserves, on every core of a post population, synaptic rows for every core of each pre population,
connected or not (:func:`.memory.synaptic_matrix_bytes`), so one population of 1M neurons does not place; a PyNN
user builds it as blocks. This is the one definition of the split: the emitted script builds exactly these
populations and projections (``deploy(..., population_size=...)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.errors import InputError
from neurodeploy.passes.cores import pack

from ..netlist import Netlist, Population, Projection


def split_populations(net: Netlist, max_neurons: int, consume: bool = False) -> tuple[Netlist, dict[str, Any]]:
    """``net`` with every neuron population larger than ``max_neurons`` cut into blocks (see the module docstring).

    Projections are sorted by pre, so each pre block is a contiguous slice; only its post blocks are sorted (a
    stable sort of small integers). With ``consume`` the original projections are released one by one (``net`` is
    left without projections), so the peak holds one projection twice, not the netlist.
    Returns ``(netlist, {population: [block names]})`` (only the populations that were cut).
    """
    if isinstance(max_neurons, bool) or not isinstance(max_neurons, int | np.integer) or max_neurons < 1:
        raise InputError(f"a population split needs at least 1 neuron per population, got {max_neurons}",
                         fix="give a positive number of neurons per population (a multiple of neurons per core)")
    max_neurons = int(max_neurons)
    shapes = dict(net.node_shapes)  # the nodes' shapes, for putting their recordings back together
    shapes.update({name: pop.shape for name, pop in net.populations.items() if pop.node == name and name not in shapes})
    blocks: dict[str, list[tuple[str, int, int]]] = {}
    pops = {}
    for name, pop in net.populations.items():
        if pop.is_source or pop.size <= max_neurons:
            pops[name] = pop
            blocks[name] = [(name, 0, pop.size)]
            continue
        blocks[name] = []
        for start, stop in pack(pop.size, max_neurons):
            label = f"{name}[{start}:{stop}]"
            offset = None if pop.i_offset is None else np.asarray(pop.i_offset).reshape(-1)[start:stop]
            pops[label] = Population(label, (stop - start,), pop.cell_type, conversion=pop.conversion,
                                     i_offset=offset, node=pop.node, offset=pop.offset + start)
            blocks[name].append((label, start, stop))
    projections: list[Projection] = []
    if consume:
        originals, net.projections = net.projections[::-1], []
        while originals:  # pop() drops each original once its blocks are made
            proj = originals.pop()
            projections.extend(_split_projection(proj, blocks[proj.pre], blocks[proj.post], max_neurons))
        del proj
    else:
        for proj in net.projections:
            projections.extend(_split_projection(proj, blocks[proj.pre], blocks[proj.post], max_neurons))
    split = Netlist(pops, projections, dict(net.outputs), list(net.notes) + [
        f"populations over {max_neurons} neurons are built as PyNN populations of {max_neurons} contiguous neurons "
        "(population_size), one projection per connected block pair"],
        report_arrays=net.report_arrays, node_shapes=shapes)
    return split, {name: [b[0] for b in parts] for name, parts in blocks.items() if len(parts) > 1}


def _split_projection(proj: Projection, pre_parts: list, post_parts: list, max_neurons: int) -> list[Projection]:
    """One projection per connected (pre block, post block) pair, in that order, synapses in their order."""
    if len(pre_parts) == 1 and len(post_parts) == 1:
        return [proj]
    if proj.size > 1 and not (np.diff(proj.pre_idx) >= 0).all():
        raise InputError(f"projection {proj.label} is not sorted by pre-synaptic neuron",
                         fix="split netlists made by build_netlist (it sorts every projection by (pre, post))")
    bounds = np.searchsorted(proj.pre_idx, [start for _, start, _ in pre_parts] + [pre_parts[-1][2]])
    key_type = np.int16 if len(post_parts) < 2 ** 15 else np.int64
    out = []
    for (pre_name, pre_start, _), a, b in zip(pre_parts, bounds[:-1], bounds[1:]):
        if a == b:
            continue
        if len(post_parts) > 1:
            post_block = (proj.post_idx[a:b] // max_neurons).astype(key_type)
            order = np.argsort(post_block, kind="stable")  # radix sort for 16-bit keys
            cuts = np.searchsorted(post_block[order], np.arange(len(post_parts) + 1))
            del post_block
        else:
            order, cuts = None, np.array([0, b - a])
        for j, (c, d) in enumerate(zip(cuts[:-1], cuts[1:])):
            if c == d:
                continue
            post_name, post_start, _ = post_parts[j]
            idx = np.arange(a + c, a + d) if order is None else order[c:d] + a  # a copy, never a view
            out.append(Projection(
                f"{proj.label}[{pre_name}->{post_name}]", proj.synapse, pre_name, post_name, proj.receptor,
                proj.layer, proj.pre_idx[idx] - pre_start, proj.post_idx[idx] - post_start, proj.units[idx],
                proj.delay[idx], None if proj.weight is None else proj.weight[idx],
                None if proj.weight_exact is None else proj.weight_exact[idx]))
    return out
