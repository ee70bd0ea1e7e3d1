"""Core packing, neuron-to-core lookup and chip counting: the rules the Loihi partition pass
(:mod:`neurodeploy.passes.partition`) and the SpiNNaker mapping (:mod:`neurodeploy.backends.pynn.mapping`) share.

Rules:

* **Packing.** A population's neurons go onto cores as contiguous runs, in neuron order, one run per core; runs of
  different populations never share a core. :func:`pack` covers ``lo .. hi`` from ``lo`` with the longest runs of
  at most ``cap`` neurons whose summed per-neuron cost fits a budget. Without a cost this is fixed-size slicing,
  ``[0, cap), [cap, 2 cap), ...`` with the last run shorter: SpiNNaker's cores (PACMAN cuts an application vertex
  into ``max_atoms_per_core`` atoms) and its population blocks (``population_size``). With the synaptic memory as
  the cost it is the partition pass's greedy slicing (which also cuts at its fan-in limit, see there). A single
  neuron whose cost exceeds the budget cannot be placed: ``too_big(neuron)`` names the error to raise.
* **Run end.** :func:`run_end`: with ``cum`` the prefix sums of a per-neuron cost (``cum[0] = 0``), the longest run
  from ``start`` whose cost fits ``budget`` ends before ``run_end(cum, start, budget)`` (``<= start``: not even
  ``start`` alone fits). Costs are non-negative, so ``cum`` is non-decreasing and this is one binary search.
* **Neuron to core.** :func:`core_index`: for contiguous runs covering ``0 .. n`` in order, each neuron's core,
  numbered from ``first``; non-decreasing in the neuron index (what the partition pass's fan counting relies on).
* **Chips, boards.** :func:`units_needed`: ``ceil(items / per_unit)``, 0 for no items -- chips for a core count
  (``cores_per_chip``), boards for a core count (application cores per board; the SpiNNaker placer's first try).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def run_end(cum: np.ndarray, start: int, budget: int) -> int:
    """End (exclusive) of the longest run from ``start`` whose cost ``cum[end] - cum[start]`` is ``<= budget``."""
    return int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1


def pack(hi: int, cap: int, lo: int = 0, cum: np.ndarray | None = None, budget: int | None = None,
         too_big: Callable[[int], Exception] | None = None) -> list[tuple[int, int]]:
    """``lo .. hi`` as the longest contiguous runs of at most ``cap`` neurons (``(start, stop)``, in order), each
    within ``budget`` of the cost whose prefix sums are ``cum`` when one is given; raises ``too_big(neuron)`` for
    a neuron that alone exceeds the budget."""
    if cap < 1:
        raise ValueError(f"a core holds at least 1 neuron, got {cap}")
    out = []
    start = lo
    while start < hi:
        stop = min(hi, start + cap)
        if cum is not None:
            stop = min(stop, run_end(cum, start, budget))
            if stop <= start:
                raise too_big(start) if too_big is not None else ValueError(f"neuron {start} exceeds {budget}")
        out.append((start, stop))
        start = stop
    return out


def core_index(bounds: list[tuple[int, int]], first: int = 0) -> np.ndarray:
    """Per neuron, its core: runs ``bounds`` (contiguous, in order, from neuron 0) are cores ``first, first + 1,
    ...``."""
    return np.repeat(np.arange(first, first + len(bounds)), [stop - start for start, stop in bounds])


def units_needed(items: int, per_unit: int) -> int:
    """``ceil(items / per_unit)``: chips for ``items`` cores at ``per_unit`` cores per chip (0 for none)."""
    return -(-int(items) // int(per_unit))
