"""SpiNNaker mapping report: cores, chips, boards, SDRAM per core, routing entries per chip, delay extensions.

Rules (sPyNNaker 1!7.4.1 / PACMAN 1!7.4.1, each checked against its mapper on a virtual SpiNN-5 board):

* **Cores.** A population is cut into contiguous slices of at most ``neurons_per_core`` neurons (256 for
  IF_curr_exp and IF_curr_delta), one core each; a SpikeSourceArray is one core whatever its size. A pre-synaptic
  population with a projection whose delay exceeds the post population's on-core delay range gets a
  delay-extension population, sliced like the pre population (one core per pre core).
* **Chips, boards.** A SpiNN-5 board has 48 chips of 18 (8 of them 17) cores; core 0 runs SCAMP, one core per chip
  the extra monitor and one core on the Ethernet chip the packet gatherer: 759 application cores per board. Cores
  are placed like PACMAN's ``ApplicationPlacer``: population by population in creation order, each population
  starting on the first chip with room (chips in x-then-y order) and spilling onto linked neighbour chips.
* **SDRAM per core.** The synaptic matrix as sPyNNaker reserves it (``population_vertex.get_synapses_size`` and
  ``__add_matrix_size``: the count of pre cores is ``ceil(n_pre / max_atoms_per_core)``, whether or not a pre core
  connects to this post core, so a large recurrent population reserves rows for all its cores on each of them;
  :func:`split_populations` models the usual workaround, one population per block of neurons): for
  each incoming projection and each core of the pre population, ``n_pre_core * (3 + L) * 4`` bytes, ``L`` the
  longest row (most synapses from one pre neuron to one post core), each block aligned to 16 bytes, plus the same for
  delayed rows times the number of delay stages; neuron state ``2 * n * words * 4`` bytes (parameters and their
  initial-value copy). Recording buffers (which depend on the run length) and system regions are not included.
* **Routing.** PACMAN's router and merged routing-table generator (see :func:`routing_entries`): each source core's
  packets go longest-dimension-first to the chip where they enter a target population, then spread over its chips;
  per chip, cores of one population with the same route share one entry per aligned block of consecutive cores.
  This is the uncompressed count; sPyNNaker compresses tables on chip and adds system entries (data speed-up,
  reinjection). The limit is 1023 per chip.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neurodeploy.errors import CapacityError, InputError

from .hardware import SpiNNakerSpec
from .netlist import Netlist, Population, Projection

BYTES_PER_WORD = 4
LINK_OFFSETS = ((1, 0), (1, 1), (0, 1), (-1, 0), (-1, -1), (0, -1))  # SpiNNaker link ids 0..5


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
class _Vertex:
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


def split_populations(net: Netlist, max_neurons: int, consume: bool = False) -> tuple[Netlist, dict[str, Any]]:
    """``net`` with every neuron population larger than ``max_neurons`` cut into populations of ``max_neurons``
    contiguous neurons (the last one smaller), and every projection into one projection per (pre block, post
    block) pair that has synapses -- what a PyNN user writes for a population too large for sPyNNaker's
    per-core synaptic matrix reservation (:func:`synaptic_matrix_bytes`: every projection reserves rows for every
    core of its pre population, connected or not, so one population of 1M neurons reserves for its ~3900 cores on
    each of its cores). This is the one definition of the split: the emitted script builds exactly these
    populations and projections (``deploy(..., population_size=...)``).

    Blocks are named ``"<population>[start:stop]"`` (``node`` = the population, ``offset`` = start); their
    neurons, parameters and synapses are those of the original population, in block-local indices. A block pair's
    synapses keep their order (sorted by (pre, post)); the projections of one original projection come in (pre
    block, post block) order. Projections are sorted by pre, so each pre block is a contiguous slice; only its post
    blocks are sorted (a stable sort of small integers). With ``consume`` the original projections are released
    one by one (``net`` is left without projections), so the peak holds one projection twice, not the netlist.
    Returns ``(netlist, {population: [block names]})``.
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
        for start in range(0, pop.size, max_neurons):
            stop = min(pop.size, start + max_neurons)
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


def _max_row(pre: np.ndarray, post: np.ndarray, per_core: int) -> int:
    """Longest synaptic row: most synapses from one pre neuron into one post core."""
    if pre.size == 0:
        return 0
    key = pre.astype(np.int64) * (int(post.max()) // per_core + 1) + post // per_core
    return int(np.unique(key, return_counts=True)[1].max())


def _align(address: int, spec: SpiNNakerSpec) -> int:
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
        n_sub_edges = math.ceil(pre_pop.size / n_sub)
        near = proj.delay <= on_core
        rows = {"undelayed": _max_row(proj.pre_idx[near], proj.post_idx[near], per_core[post]),
                "delayed": _max_row(proj.pre_idx[~near], proj.post_idx[~near], per_core[post])}
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
                address = _align(address, spec) + size
    return address


def _vertices(net: Netlist, spec: SpiNNakerSpec, per_core: dict[str, int], delay_plan: dict[str, Any]):
    """Application vertices in creation order: populations, then delay extensions; and delay stages per pre."""
    pre_stages: dict[str, int] = {}
    for proj in net.projections:
        support = delay_plan[proj.post]["on_core_max_delay"]
        longest = int(proj.delay.max())
        if longest > support:
            stages = math.ceil(longest / support) - 1
            pre_stages[proj.pre] = max(pre_stages.get(proj.pre, 0), stages)
    vertices = []
    for name, pop in net.populations.items():
        kind = "source" if pop.is_source else "neuron"
        vertices.append(_Vertex(name, kind, pop.size, per_core[name]))
    for name in net.populations:
        if name in pre_stages:
            vertices.append(_Vertex(f"{name}_delayed", "delay", net.populations[name].size, per_core[name]))
    index = 0
    for v in vertices:
        for start in range(0, v.size, v.atoms_per_core):
            v.cores.append(Core(index, v.kind, v.name, start, min(v.size, start + v.atoms_per_core)))
            index += 1
    for v in vertices:
        if v.kind == "neuron":
            pop = net.populations[v.name]
            matrix = synaptic_matrix_bytes(net, v.name, per_core, delay_plan, pre_stages, spec)
            words = spec.neuron_param_words.get(pop.cell_type, 15)
            for c in v.cores:
                c.synaptic_matrix_bytes = matrix
                c.neuron_state_bytes = 2 * c.atoms * words * BYTES_PER_WORD
    return vertices, pre_stages


class _Placer:
    """PACMAN 1!7.4.1 ``ApplicationPlacer``: keep each population's cores together on linked chips."""

    def __init__(self, spec: SpiNNakerSpec, n_boards: int):
        self.spec = spec
        self.chips: list[tuple[int, int, int]] = []  # (board, x, y) in start order
        self.free: dict[tuple[int, int, int], list[int]] = {}
        self.sdram: dict[tuple[int, int, int], int] = {}
        for b in range(n_boards):
            for i, (x, y, _) in enumerate(spec.board_chips):
                key = (b, x, y)
                first = spec.scamp_cores_per_chip + spec.extra_monitor_cores_per_chip
                if i == 0:
                    first += spec.packet_gatherer_cores_per_board
                self.chips.append(key)
                self.free[key] = list(range(first, first + spec.app_cores(i)))
                self.sdram[key] = 0
        self.exists = set(self.chips)
        self.max_cores = max(len(v) for v in self.free.values())
        self.cap = spec.sdram_bytes_per_chip - spec.sdram_bytes_per_chip // self.max_cores
        self.order = iter(self.chips)
        self.full: set = set()
        self.restored: list = []
        self.tried: list = []

    def _space(self, chip, sdram: int) -> bool:
        if not self.free[chip]:
            self.full.add(chip)
            return False
        if self.sdram[chip] > self.cap:
            self.full.add(chip)
            return False
        self.prepared.add(chip)
        if self.sdram[chip] + sdram > self.spec.sdram_bytes_per_chip:
            return False
        self.current, self.current_free, self.current_sdram = chip, list(self.free[chip]), self.sdram[chip] + sdram
        b, x, y = chip
        for dx, dy in LINK_OFFSETS:
            n = (b, x + dx, y + dy)
            if n in self.exists and n not in self.full and n not in self.prepared:
                self.neighbours[n] = None
        return True

    def _start(self, sdram: int):
        self.neighbours = OrderedDict()
        while True:
            chip = None
            while self.restored:
                c = self.restored.pop(0)
                if c not in self.full:
                    chip = c
                    break
            if chip is None:
                chip = next((c for c in self.order if c not in self.full), None)
                if chip is None:
                    return None
            self.tried.append(chip)
            if self._space(chip, sdram):
                return chip

    def _next(self, sdram: int):
        if self.current is None:
            return self._start(sdram)
        if self.current_free and self.current_sdram + sdram <= self.spec.sdram_bytes_per_chip:
            self.current_sdram += sdram
            return self.current
        while self.neighbours:
            chip = next(iter(self.neighbours))
            del self.neighbours[chip]
            if self._space(chip, sdram):
                return chip
        # the board is exhausted: continue on the next board's first free chip (PACMAN's other-board neighbours)
        board = self.current[0]
        for chip in self.chips:
            if chip[0] > board and chip not in self.full and chip not in self.prepared and self._space(chip, sdram):
                return chip
        return None

    def place(self, vertex: _Vertex) -> bool:
        self.restored.extend(self.tried)
        self.tried = []
        while True:
            self.prepared, self.current = set(), None
            plan = []
            for core in vertex.cores:
                chip = self._next(core.sdram_bytes)
                if chip is None:
                    if self.current is None:  # no start chip left
                        return False
                    break
                plan.append((core, chip, self.current_free.pop(0)))
            else:
                for core, chip, p in plan:
                    core.board, core.chip, core.p = chip[0], chip[1:], p
                    self.free[chip].remove(p)
                    self.sdram[chip] += core.sdram_bytes
                return True


def place(vertices: list[_Vertex], spec: SpiNNakerSpec) -> int:
    """Place every core; returns the number of boards used (the fewest with which the placer succeeds)."""
    n_cores = sum(len(v.cores) for v in vertices)
    per_board = sum(spec.app_cores(i) for i in range(spec.chips_per_board))
    boards = max(1, math.ceil(n_cores / per_board))
    while True:
        placer = _Placer(spec, boards)
        if all(placer.place(v) for v in vertices):
            return boards
        boards += 1
        if boards > 10 * max(1, math.ceil(n_cores / per_board)) + 10:
            raise CapacityError(f"cannot place {n_cores} cores on up to {boards} boards",
                                fix="reduce the network or the SDRAM it needs per core")


def _core_targets(net: Netlist, cores_of: dict[str, list[Core]], delay_cores: dict[str, list[Core]],
                  delay_plan: dict[str, Any]) -> dict[int, set[int]]:
    """Target core indices of every source core (a core is reached when one of its synapses is)."""
    targets: dict[int, set[int]] = defaultdict(set)

    def slice_of(cores: list[Core], idx: np.ndarray) -> np.ndarray:
        starts = np.array([c.start for c in cores])
        return np.searchsorted(starts, idx, side="right") - 1

    for proj in net.projections:
        support = delay_plan[proj.post]["on_core_max_delay"]
        pre_cores, post_cores = cores_of[proj.pre], cores_of[proj.post]
        for near in (True, False):
            sel = (proj.delay <= support) if near else (proj.delay > support)
            if not sel.any():
                continue
            src = slice_of(pre_cores, proj.pre_idx[sel])
            dst = slice_of(post_cores, proj.post_idx[sel])
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


def routing_entries(vertices: list[_Vertex], targets: dict[int, set[int]], spec: SpiNNakerSpec,
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


def _node_range(net: Netlist, core: Core) -> dict[str, Any]:
    """The IR node of a core and its neurons there (a split population holds the node's neurons from ``offset``)."""
    pop = net.populations[core.population[: -len("_delayed")] if core.kind == "delay" else core.population]
    return {"node": pop.node, "node_start": pop.offset + core.start, "node_stop": pop.offset + core.stop}


def mapping_report(net: Netlist, spec: SpiNNakerSpec, delay_plan: dict[str, Any],
                   neurons_per_core: Any = None) -> dict[str, Any]:
    """The mapping report (JSON-able): per core, per chip, totals, and board overhead cores separately."""
    per_core = atoms_per_core(net, spec, neurons_per_core)
    vertices, pre_stages = _vertices(net, spec, per_core, delay_plan)
    boards = place(vertices, spec)
    cores_of = {v.name: v.cores for v in vertices if v.kind != "delay"}
    delay_cores = {v.name[: -len("_delayed")]: v.cores for v in vertices if v.kind == "delay"}
    targets = _core_targets(net, cores_of, delay_cores, delay_plan)
    entries = routing_entries(vertices, targets, spec, boards)
    all_cores = [c for v in vertices for c in v.cores]
    used_chips = sorted({(c.board, *c.chip) for c in all_cores})
    chips = []
    for chip in used_chips:
        on = [c for c in all_cores if (c.board, *c.chip) == chip]
        n_entries = entries.get(chip, 0)
        chips.append({"board": chip[0], "x": chip[1], "y": chip[2], "app_cores": len(on),
                      "sdram_bytes": int(sum(c.sdram_bytes for c in on)), "routing_entries": n_entries,
                      "routing_limit": spec.router_entries_per_chip,
                      "over_routing_limit": n_entries > spec.router_entries_per_chip})
    route_only = sorted(set(entries) - set(used_chips))
    for chip in route_only:
        chips.append({"board": chip[0], "x": chip[1], "y": chip[2], "app_cores": 0, "sdram_bytes": 0,
                      "routing_entries": entries[chip], "routing_limit": spec.router_entries_per_chip,
                      "over_routing_limit": entries[chip] > spec.router_entries_per_chip})
    all_chips = len(used_chips) + len(route_only)
    kinds = defaultdict(int)
    for c in all_cores:
        kinds[c.kind] += 1
    populations = {}
    for v in vertices:
        populations[v.name] = {
            "kind": v.kind, "cell_type": (net.populations[v.name].cell_type if v.kind != "delay" else "DelayExtension"),
            "neurons": v.size, "neurons_per_core": v.atoms_per_core, "cores": len(v.cores),
            "synaptic_matrix_bytes_per_core": v.cores[0].synaptic_matrix_bytes if v.cores else 0,
            "delay_stages": pre_stages.get(v.name[: -len("_delayed")], 0) if v.kind == "delay" else None}
    return {
        "machine": spec.name,
        "rules": "sPyNNaker 1!7.4.1 / PACMAN 1!7.4.1 (see neurodeploy.backends.pynn.mapping)",
        "neuron_cores": kinds["neuron"], "spike_source_cores": kinds["source"],
        "delay_extension_cores": kinds["delay"], "application_cores": len(all_cores),
        "chips": len(used_chips), "chips_with_routes": all_chips, "boards": boards,
        "board_overhead_cores": {
            "scamp_monitor": all_chips * spec.scamp_cores_per_chip if all_chips else 0,
            "extra_monitor": all_chips * spec.extra_monitor_cores_per_chip if all_chips else 0,
            "packet_gatherer": boards * spec.packet_gatherer_cores_per_board,
            "scamp_monitor_on_allocated_boards": boards * spec.chips_per_board * spec.scamp_cores_per_chip,
            "extra_monitor_on_allocated_boards": boards * spec.chips_per_board * spec.extra_monitor_cores_per_chip,
            "note": "sPyNNaker runs SCAMP and an extra monitor on every chip of the allocated boards "
                    f"({spec.chips_per_board} per board) and a packet gatherer per board; scamp_monitor and "
                    "extra_monitor count the chips the network uses, *_on_allocated_boards every chip"},
        "max_routing_entries": max((c["routing_entries"] for c in chips), default=0),
        "routing_limit": spec.router_entries_per_chip,
        "sdram_bytes": int(sum(c.sdram_bytes for c in all_cores)),
        "populations": populations,
        "per_core": [asdict(c) | {"sdram_bytes": c.sdram_bytes} | _node_range(net, c) for c in all_cores],
        "per_chip": chips,
        "delays": delay_plan,
        "excluded": ["recording buffers (depend on the run length and what is recorded)",
                     "system regions, provenance and profiling (a few KB per core)",
                     "system routing entries (data speed-up, reinjection)",
                     "routing-table compression (sPyNNaker compresses on chip before loading)"],
    }

