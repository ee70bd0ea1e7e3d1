"""SDRAM per core: the synaptic matrix and neuron state sPyNNaker 1!7.4.1 reserves on a core.

Rules (``population_vertex.get_synapses_size`` and ``__add_matrix_size``):

* **Synaptic matrix** of a post core, from an address of 2 words: for each incoming projection, for its undelayed
  and its delayed synapses (delays beyond the post population's on-core range go through a delay extension), and
  for each core of the pre population -- ``ceil(n_pre / max_atoms_per_core)`` cores
  (:func:`neurodeploy.passes.cores.units_needed`), whether or not a pre core
  connects to this post core (:func:`..split.split_populations` models the usual workaround) -- one block of
  ``n_pre_core * (header + L) * 4`` bytes, the address aligned to ``address_alignment_bytes`` before each block.
  ``n_pre_core = min(max_atoms_per_core, n_pre)``; ``L`` the longest row (most synapses from one pre neuron into
  one post core; projections with no such synapses add nothing); a delayed block is multiplied by the pre
  population's delay stages. A row longer than ``max_row_length`` raises :class:`CapacityError`.
* **Neuron state**: ``2 * n * words * 4`` bytes for a core of ``n`` neurons (parameters and their initial-value
  copy; ``words`` per neuron from the machine's ``neuron_param_words``, 15 when not listed).
* Recording buffers (which depend on the run length) and system regions are not included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.errors import CapacityError
from neurodeploy.passes.cores import units_needed

from ..hardware import SpiNNakerSpec
from ..netlist import Netlist

BYTES_PER_WORD = 4
#: Neuron parameter words when the machine does not list the cell type.
DEFAULT_PARAM_WORDS = 15


def max_row(pre: np.ndarray, post: np.ndarray, per_core: int) -> int:
    """Longest synaptic row: most synapses from one pre neuron into one post core."""
    if pre.size == 0:
        return 0
    key = pre.astype(np.int64) * (int(post.max()) // per_core + 1) + post // per_core
    return int(np.unique(key, return_counts=True)[1].max())


def align(address: int, spec: SpiNNakerSpec) -> int:
    """``address`` rounded up to the machine's address alignment."""
    a = spec.address_alignment_bytes
    return (address + a - 1) // a * a


def synaptic_matrix_bytes(net: Netlist, post: str, per_core: dict[str, int], delay_plan: dict[str, Any],
                          pre_stages: dict[str, int], spec: SpiNNakerSpec) -> int:
    """SDRAM sPyNNaker reserves on each core of ``post`` for its incoming synaptic matrices (bytes)."""
    address = 2 * BYTES_PER_WORD
    on_core = delay_plan[post]["on_core_max_delay"]
    header = spec.row_header_words
    for proj in net.incoming(post):
        pre_pop = net.populations[proj.pre]
        n_sub = min(per_core[proj.pre], pre_pop.size)
        n_sub_edges = units_needed(pre_pop.size, n_sub)  # the pre population's cores
        near = proj.delay <= on_core
        rows = {"undelayed": max_row(proj.pre_idx[near], proj.post_idx[near], per_core[post]),
                "delayed": max_row(proj.pre_idx[~near], proj.post_idx[~near], per_core[post])}
        for kind, length in rows.items():
            if length == 0:
                continue
            if length > spec.max_row_length:
                raise CapacityError(f"projection {proj.label} has {length} synapses from one neuron to one core; "
                                    f"sPyNNaker rows hold at most {spec.max_row_length}", node=post,
                                    fix="split the duplicate synapses over more projections")
            size = n_sub * (length + header) * BYTES_PER_WORD
            if kind == "delayed":
                size *= max(1, pre_stages.get(proj.pre, 0))
            for _ in range(n_sub_edges):
                address = align(address, spec) + size
    return address


def neuron_state_bytes(atoms: int, cell_type: str, spec: SpiNNakerSpec) -> int:
    """Neuron parameters and their initial-value copy for a core of ``atoms`` neurons (bytes)."""
    return 2 * atoms * spec.neuron_param_words.get(cell_type, DEFAULT_PARAM_WORDS) * BYTES_PER_WORD
