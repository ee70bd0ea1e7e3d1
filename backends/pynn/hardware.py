"""SpiNNaker's mapping rules as data: the hardware profile (``hw_profiles/spinnaker1.toml``) plus its ``[spinnaker]``
table, which holds the sPyNNaker rules that the generic profile schema has no place for.

The generic part (arithmetic, reset modes, limits, energy) is read by :func:`neurodeploy.profiles.load_profile`; the
``[spinnaker]`` table follows the same convention (every number a table with ``value`` and ``source``; ``value``
may also be a float or a list here) and is read by :func:`load_spec`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodeploy.errors import SerializationError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: Cell types the backend emits, and the spike source.
CELL_TYPES = ("IF_curr_exp", "IF_curr_delta")
SOURCE_TYPE = "SpikeSourceArray"

_REQUIRED = ("timestep_ms", "weight_bits", "fraction_bits", "ring_buffer_bits", "synapse_type_bits",
             "max_delay_stages", "row_header_words", "max_row_length", "address_alignment_bytes", "max_shift",
             "spikes_per_second", "ring_buffer_sigma", "board_chips", "scamp_cores_per_chip",
             "extra_monitor_cores_per_chip", "packet_gatherer_cores_per_board", "sdram_bytes_per_chip",
             "router_entries_per_chip")
_PER_TYPE = ("neurons_per_core_", "neuron_param_words_")


@dataclass(frozen=True)
class SpiNNakerSpec:
    """sPyNNaker's rules for one machine. ``board_chips`` lists ``(x, y, cores)`` per chip of one board in the
    placer's order; the first chip is the board's Ethernet chip (it also hosts the packet gatherer)."""

    name: str
    timestep_ms: float
    weight_bits: int
    fraction_bits: int
    ring_buffer_bits: int
    synapse_type_bits: int
    max_delay_stages: int
    row_header_words: int
    max_row_length: int
    address_alignment_bytes: int
    max_shift: int
    spikes_per_second: float
    ring_buffer_sigma: float
    board_chips: tuple[tuple[int, int, int], ...]
    scamp_cores_per_chip: int
    extra_monitor_cores_per_chip: int
    packet_gatherer_cores_per_board: int
    sdram_bytes_per_chip: int
    router_entries_per_chip: int
    neurons_per_core: Mapping[str, int] = field(default_factory=dict)
    neuron_param_words: Mapping[str, int] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def chips_per_board(self) -> int:
        return len(self.board_chips)

    def app_cores(self, chip_index: int) -> int:
        """Application cores of chip ``chip_index`` (0-based, over all boards): cores minus SCAMP, extra monitor
        and, on each board's Ethernet chip, the packet gatherer."""
        _, _, cores = self.board_chips[chip_index % self.chips_per_board]
        free = cores - self.scamp_cores_per_chip - self.extra_monitor_cores_per_chip
        if chip_index % self.chips_per_board == 0:
            free -= self.packet_gatherer_cores_per_board
        return free

    def delay_slots(self, atoms_per_core: int) -> int:
        """On-core delay slots ``2**(ring_buffer_bits - atom_bits - synapse_type_bits)`` for a core holding
        ``atoms_per_core`` neurons, ``atom_bits = ceil(log2(atoms))`` (sPyNNaker ``get_n_bits``)."""
        return 1 << (self.ring_buffer_bits - n_bits(atoms_per_core) - self.synapse_type_bits)

    def max_neurons_per_core(self, cell_type: str) -> int:
        return int(self.neurons_per_core.get(cell_type, 256))


def n_bits(n_values: int) -> int:
    """Bits to index ``n_values`` values, as sPyNNaker's ``get_n_bits``: 0 -> 0, 1 -> 1, else ceil(log2 n)."""
    if n_values <= 0:
        return 0
    if n_values == 1:
        return 1
    return int(math.ceil(math.log2(n_values)))


def _profile_path(name_or_path: str | Path) -> Path:
    """The profile's file, validated by :func:`neurodeploy.profiles.load_profile` (the generic schema)."""
    from neurodeploy.profiles import load_profile

    return Path(load_profile(name_or_path).path)


def load_spec(name_or_path: str | Path = "spinnaker1") -> SpiNNakerSpec:
    """Read the ``[spinnaker]`` table of a profile (by bundled name or path); errors name the file and key."""
    path = _profile_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SerializationError(f"hardware profile {path} is not valid TOML ({err})",
                                 fix="fix the TOML syntax at the position given") from None
    table = data.get("spinnaker")
    if not isinstance(table, Mapping):
        raise SerializationError(f"hardware profile {path} has no [spinnaker] table",
                                 fix="use a SpiNNaker profile such as spinnaker1 (see hw_profiles/spinnaker1.toml)")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, entry in table.items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise SerializationError(f"hardware profile {path}: 'spinnaker.{key}' must be a table like "
                                     "{ value = 16, source = \"...\" }", fix="correct the profile file")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise SerializationError(f"hardware profile {path}: 'spinnaker.{key}' has no source",
                                     fix="add source = \"<paper, datasheet or code it comes from>\"")
        if entry.get("estimate") and not entry.get("reason"):
            raise SerializationError(f"hardware profile {path}: 'spinnaker.{key}' is marked estimate but gives no "
                                     "reason", fix="add reason = \"<how the figure was derived>\"")
        values[key] = entry["value"]
        sources[f"spinnaker.{key}"] = source
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise SerializationError(f"hardware profile {path}: [spinnaker] lacks {missing}",
                                 fix="add them (see hw_profiles/spinnaker1.toml)")
    per_type: dict[str, dict[str, int]] = {prefix: {} for prefix in _PER_TYPE}
    for key in list(values):
        for prefix in _PER_TYPE:
            if key.startswith(prefix):
                per_type[prefix][key[len(prefix):]] = int(values.pop(key))
    unknown = sorted(set(values) - set(_REQUIRED))
    if unknown:
        raise SerializationError(f"hardware profile {path}: [spinnaker] has unknown keys {unknown}",
                                 fix=f"use only {sorted(_REQUIRED)} and neurons_per_core_<cell type>, "
                                     "neuron_param_words_<cell type>")
    chips = values["board_chips"]
    if not isinstance(chips, list) or not chips or any(not isinstance(c, list) or len(c) != 3 for c in chips):
        raise SerializationError(f"hardware profile {path}: 'spinnaker.board_chips' must list [x, y, cores] per chip",
                                 fix="correct the profile file")
    ints = {k: int(values[k]) for k in _REQUIRED if k not in ("timestep_ms", "spikes_per_second",
                                                            "ring_buffer_sigma", "board_chips")}
    return SpiNNakerSpec(name=str(data.get("name", path.stem)), timestep_ms=float(values["timestep_ms"]),
                         spikes_per_second=float(values["spikes_per_second"]),
                         ring_buffer_sigma=float(values["ring_buffer_sigma"]),
                         board_chips=tuple((int(x), int(y), int(c)) for x, y, c in chips),
                         neurons_per_core=per_type["neurons_per_core_"],
                         neuron_param_words=per_type["neuron_param_words_"], sources=sources, path=str(path), **ints)
