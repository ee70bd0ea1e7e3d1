"""SpiNNaker mapping: cores, chips, boards, SDRAM per core, routing entries per chip, delay extensions.

The rules are sPyNNaker 1!7.4.1 / PACMAN 1!7.4.1's, each checked against its mapper on a virtual SpiNN-5 board
(tests/pynn/test_pynn_mapping.py); one module per step, each docstring stating its rules:

* :mod:`.split` -- population splitting (``population_size``): large populations as blocks, one projection per
  connected block pair (:func:`split_populations`);
* :mod:`.vertices` -- neurons per core (:func:`atoms_per_core`), delay extensions, application vertices cut into
  cores (:class:`Core`);
* :mod:`.memory` -- SDRAM per core: the synaptic matrix sPyNNaker reserves (:func:`synaptic_matrix_bytes`) and
  the neuron state;
* :mod:`.placement` -- PACMAN's application placer: chips, boards (:func:`place`);
* :mod:`.routing` -- core-to-core targets and routing entries per chip (:func:`routing_entries`);
* :mod:`.report` -- the mapping report, what ``pynn/mapping.json`` holds (:func:`mapping_report`).

Packing populations into contiguous per-core runs, the neuron-to-core index and the chip/board count are the rules
shared with the Loihi partition pass, :mod:`neurodeploy.passes.cores`.
"""

from __future__ import annotations

from .memory import BYTES_PER_WORD, synaptic_matrix_bytes
from .placement import LINK_OFFSETS, place
from .report import mapping_report
from .routing import core_targets, routing_entries
from .split import split_populations
from .vertices import Core, Vertex, atoms_per_core, build_vertices

__all__ = ["BYTES_PER_WORD", "LINK_OFFSETS", "Core", "Vertex", "atoms_per_core", "build_vertices", "core_targets",
           "mapping_report", "place", "routing_entries", "split_populations", "synaptic_matrix_bytes"]
