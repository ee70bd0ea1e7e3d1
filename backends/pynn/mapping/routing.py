"""Routing: which cores each core's spikes reach, and the routing entries that takes on each chip.

Rules (PACMAN 1!7.4.1's router and merged routing-table generator, checked against sPyNNaker's mapper):

* **Targets** (:func:`core_targets`): a source core reaches a post core when one of its synapses does (the
  neuron-to-core index is :func:`neurodeploy.passes.cores.core_index`). Synapses within the post population's
  on-core delay range come from the pre core itself; longer ones from the pre core's delay-extension core, and
  then each pre core with such synapses also reaches its delay-extension core.
* **Routes** (:func:`routing_entries`): a source core's packets for a target population go longest-dimension-first
  (the shortest hexagonal vector, :func:`_minimise`) to the chip where they enter that population
  (:func:`_entry_chip`: a chip shared with the source population, else one already routed to, else the last in
  Python's set order) and spread from there over the population's chips (breadth first, in link order); on each
  chip they visit, the core needs the route (outgoing links, local target cores). Routes between boards are
  approximated by their two ends.
* **Entries.** Per chip, the cores of one vertex with identical routes share entries: their consecutive-index runs
  split into aligned power-of-two blocks, one entry each (``AppVertexRoutingInfo.merge_machine_entries``,
  :func:`_merged_blocks`). This is the uncompressed count; sPyNNaker compresses tables on chip and adds system
  entries (data speed-up, reinjection). The limit is ``router_entries_per_chip`` (1023).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from typing import Any

import numpy as np

from neurodeploy.passes.cores import core_index

from ..hardware import SpiNNakerSpec
from ..netlist import Netlist
from .placement import LINK_OFFSETS
from .vertices import Core, Vertex


def core_targets(net: Netlist, cores_of: dict[str, list[Core]], delay_cores: dict[str, list[Core]],
                 delay_plan: dict[str, Any]) -> dict[int, set[int]]:
    """Target core indices of every source core (a core is reached when one of its synapses is; see the module
    docstring)."""
    targets: dict[int, set[int]] = defaultdict(set)
    index = {name: core_index([(c.start, c.stop) for c in cores]) for name, cores in cores_of.items()}
    for proj in net.projections:
        support = delay_plan[proj.post]["on_core_max_delay"]
        pre_cores, post_cores = cores_of[proj.pre], cores_of[proj.post]
        for near in (True, False):
            sel = (proj.delay <= support) if near else (proj.delay > support)
            if not sel.any():
                continue
            src = index[proj.pre][proj.pre_idx[sel]]
            dst = index[proj.post][proj.post_idx[sel]]
            sources = pre_cores if near else delay_cores[proj.pre]
            pairs = np.unique(src.astype(np.int64) * len(post_cores) + dst)  # distinct (pre core, post core)
            for s, d in zip((pairs // len(post_cores)).tolist(), (pairs % len(post_cores)).tolist()):
                targets[sources[s].index].add(post_cores[d].index)
            if not near:  # every pre core feeds its delay core
                for s in np.unique(src).tolist():
                    targets[pre_cores[s].index].add(delay_cores[proj.pre][s].index)
    return targets


def _minimise(dx: int, dy: int) -> tuple[int, int, int]:
    """Shortest (x, y, z) hexagonal vector for a displacement (z = the (-1, -1) diagonal), as spinn_machine."""
    if dx > 0 and dy > 0:
        return (dx - dy, 0, -dy) if dx > dy else (0, dy - dx, -dx)
    if dx < 0 and dy < 0:
        return (dx - dy, 0, -dy) if dx < dy else (0, dy - dx, -dx)
    return (dx, dy, 0)


_STEPS = {(0, 1): (1, 0), (0, -1): (-1, 0), (1, 1): (0, 1), (1, -1): (0, -1), (2, 1): (-1, -1), (2, -1): (1, 1)}


def _longest_dimension_first(a: tuple, b: tuple) -> list[tuple]:
    """Chips after ``a`` on PACMAN's longest-dimension-first route to ``b`` (same board)."""
    vector = _minimise(b[1] - a[1], b[2] - a[2])
    out, (board, x, y) = [], a
    for dim, mag in sorted(enumerate(vector), key=lambda d: abs(d[1]), reverse=True):
        dx, dy = _STEPS[(dim, 1 if mag > 0 else -1)] if mag else (0, 0)
        for _ in range(abs(mag)):
            x, y = x + dx, y + dy
            out.append((board, x, y))
    return out


def _merged_blocks(indices: list[int], last_index: int) -> int:
    """Entries PACMAN's merged routing table generator makes for consecutive machine-vertex indices with one route:
    runs split into aligned power-of-two blocks (``AppVertexRoutingInfo.merge_machine_entries``)."""
    count, runs, run = 0, [], []
    for i in sorted(indices):
        if run and i != run[-1] + 1:
            runs.append(run)
            run = []
        run.append(i)
    if run:
        runs.append(run)
    for run in runs:
        n, i, is_last = len(run), 0, run[-1] == last_index
        while i < n:
            idx = run[i]
            step = idx & -idx if idx > 0 else 2 ** math.ceil(math.log2(n))
            if step <= n - i or is_last:
                count += 1
                i += step
            else:
                left = n - i
                while left > 0:
                    chunk = 2 ** int(math.log2(left))
                    count += 1
                    left -= chunk
                    i += chunk
    return count


def _tree_path(first: tuple, goal: tuple, allowed: set) -> list[tuple] | None:
    """Breadth-first path (link order) from ``first`` to ``goal`` through ``allowed`` chips, ends included."""
    prev, queue = {first: None}, deque([first])
    while queue:
        chip = queue.popleft()
        if chip == goal:
            path = []
            while chip is not None:
                path.append(chip)
                chip = prev[chip]
            return path[::-1]
        for dx, dy in LINK_OFFSETS:
            n = (chip[0], chip[1] + dx, chip[2] + dy)
            if n in allowed and n not in prev:
                prev[n] = chip
                queue.append(n)
    return None


def _entry_chip(target_chips: list[tuple], source_chips: set, routed: set) -> tuple:
    """PACMAN's ``_find_target_xy``: where a population's packets enter a multi-chip target population (a chip
    shared with the source, else one already routed to, else the last chip in Python's set order)."""
    xys = {c[1:] for c in target_chips}
    board = target_chips[0][0]
    overlaps = xys & {c[1:] for c in source_chips if c[0] == board}
    if overlaps:
        return (board, *next(iter(overlaps)))
    xy = None
    for xy in xys:
        if (board, *xy) in routed:
            break
    return (board, *xy)


def routing_entries(vertices: list[Vertex], targets: dict[int, set[int]], spec: SpiNNakerSpec,
                    n_boards: int) -> dict[tuple[int, int, int], int]:
    """Uncompressed routing entries per chip, after PACMAN 1!7.4.1's router and merged routing-table generator.

    A source core's packets for a target population go longest-dimension-first to the chip where they enter that
    population (:func:`_entry_chip`) and spread from there over the population's chips (breadth first); on each chip
    they visit, the core needs the route (outgoing links, local target cores). Per chip, the cores of one population
    with identical routes and consecutive indices share entries: one per aligned power-of-two block
    (``AppVertexRoutingInfo.merge_machine_entries``). Routes between boards are approximated by their two ends.
    """
    by_index = {c.index: c for v in vertices for c in v.cores}
    entries: dict[tuple[int, int, int], int] = defaultdict(int)
    for v in vertices:
        first = v.cores[0].index
        last = v.cores[-1].index - first
        source_chips = {(c.board, *c.chip) for c in v.cores}
        reached: dict[str, list[tuple]] = {}
        for core in v.cores:
            for t in sorted(targets.get(core.index, ())):
                tc = by_index[t]
                chips = reached.setdefault(tc.population, [])
                if (tc.board, *tc.chip) not in chips:
                    chips.append((tc.board, *tc.chip))
        routed: set = set()
        entry = {}
        for pop, chips in reached.items():
            entry[pop] = chips[0] if len(chips) == 1 else _entry_chip(chips, source_chips, routed)
            routed.update(chips)
        per_chip: dict[tuple[int, int, int], dict[int, frozenset]] = defaultdict(dict)
        for core in v.cores:
            if not targets.get(core.index):
                continue
            src = (core.board, *core.chip)
            route: dict[tuple[int, int, int], set] = defaultdict(set)
            for t in targets[core.index]:
                tc = by_index[t]
                dst = (tc.board, *tc.chip)
                door = entry[tc.population]
                if door[0] != src[0] or dst[0] != src[0]:  # another board: the two ends only
                    path = [src, dst]
                else:
                    path = [src] + _longest_dimension_first(src, door)
                    inside = _tree_path(door, dst, set(reached[tc.population])) or (
                        [door] + _longest_dimension_first(door, dst))
                    path += inside[1:]
                for a, b in zip(path, path[1:]):
                    if a != b:
                        route[a].add(("link", b))
                route[dst].add(("core", tc.p))
            for chip, outs in route.items():
                per_chip[chip][core.index - first] = frozenset(outs)
        for chip, routes in per_chip.items():
            by_route: dict[frozenset, list[int]] = defaultdict(list)
            for index, outs in routes.items():
                by_route[outs].append(index)
            entries[chip] += sum(_merged_blocks(indices, last) for indices in by_route.values())
    return dict(entries)
