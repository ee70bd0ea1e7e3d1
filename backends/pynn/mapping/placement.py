"""Placement: which chip and core of which board each application core runs on.

Rules (PACMAN 1!7.4.1 ``ApplicationPlacer``, checked against sPyNNaker's mapper on virtual boards):

* **Machine.** A board is the machine's ``board_chips`` (SpiNN-5: 48 chips of 18 cores, 8 of them 17). On every
  chip core 0 runs SCAMP and the next core the extra monitor; on the board's first (Ethernet) chip the next one
  the packet gatherer; the other cores are application cores (SpiNN-5: 759 per board). Chips are linked to their
  six neighbours ``LINK_OFFSETS`` (link ids 0..5).
* **Order.** Vertices are placed one by one in creation order, all cores of a vertex or none: a vertex starts on
  the first chip, in the boards' chip order, that is not full (the start chips the previous vertex tried come
  first again), then fills that chip's free cores in order and spills onto linked neighbour chips (breadth first,
  in link order), then onto the next board's first free chip. A chip is full when it has no free core or its
  SDRAM use exceeds ``sdram_bytes_per_chip - sdram_bytes_per_chip // max cores per chip``; a core fits a chip
  while the chip's SDRAM use stays within ``sdram_bytes_per_chip``. A vertex that does not fit from one start chip
  is retried from the next one.
* **Boards** (:func:`place`): the fewest boards with which every vertex places, starting from
  ``ceil(cores / application cores per board)`` (:func:`neurodeploy.passes.cores.units_needed`).
"""

from __future__ import annotations

from collections import OrderedDict

from neurodeploy.errors import CapacityError
from neurodeploy.passes.cores import units_needed

from ..hardware import SpiNNakerSpec
from .vertices import Vertex

LINK_OFFSETS = ((1, 0), (1, 1), (0, 1), (-1, 0), (-1, -1), (0, -1))  # SpiNNaker link ids 0..5


class Placer:
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

    def place(self, vertex: Vertex) -> bool:
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


def place(vertices: list[Vertex], spec: SpiNNakerSpec) -> int:
    """Place every core; returns the number of boards used (the fewest with which the placer succeeds)."""
    n_cores = sum(len(v.cores) for v in vertices)
    per_board = sum(spec.app_cores(i) for i in range(spec.chips_per_board))
    first_try = max(1, units_needed(n_cores, per_board))
    boards = first_try
    while True:
        placer = Placer(spec, boards)
        if all(placer.place(v) for v in vertices):
            return boards
        boards += 1
        if boards > 10 * first_try + 10:
            raise CapacityError(f"cannot place {n_cores} cores on up to {boards} boards",
                                fix="reduce the network or the SDRAM it needs per core")
