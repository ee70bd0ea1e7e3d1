"""Hardware profiles: a target's integer arithmetic, reset modes, capacity limits and energy figures, as data.

A profile is a TOML file in ``hw_profiles/`` (installed as ``neurodeploy.hw_profiles``), loaded by name
(``load_profile("loihi2")``) or by path (``load_profile("my/board.toml")``). Format 1::

    format = 1
    name = "loihi2"
    description = "..."
    [arithmetic]                       # every number is a table with its source
    weight_bits = { value = 8, source = "..." }
    weight_exp  = { min = -8, max = 7, source = "...", estimate = true, reason = "..." }
    ...                                # vth_bits, bias_bits, bias_exp, du_bits, dv_bits, state_bits,
                                       # activation_bits, delay {min, max}, message_bits {max}
    [reset]
    modes = ["zero"]
    source = "..."
    [limits]                           # optional: absent = no capacity limits (the emulator)
    neurons_per_core = { value = 1024, source = "..." }
    ...
    [energy.<operation>]               # optional, one table per figure
    value = 23.6
    unit = "pJ"
    kind = "simulated"                 # or "measured"
    proxy = true                       # optional: borrowed from another chip
    source = "..."

Every number must carry a non-empty ``source``; ``estimate = true`` marks a derived or assumed figure and then
needs a ``reason``. Unknown keys inside these tables are rejected (they are usually typos); other top-level
tables (a backend's own, such as ``[spinnaker]``) are kept unparsed in ``Profile.extra``. Any problem raises
:class:`~neurodeploy.errors.SerializationError` naming the file, the key and the fix.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from neurodeploy.errors import SerializationError
from neurodeploy.ir.ops import RESET_MODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (the Lava environment)
    import tomli as tomllib

FORMAT = 1
ENERGY_KINDS = ("measured", "simulated")

try:
    import neurodeploy.hw_profiles as _profiles_package

    PROFILE_DIR = Path(_profiles_package.__file__).resolve().parent
except ImportError:  # pragma: no cover - running from a source tree without the editable install
    PROFILE_DIR = Path(__file__).resolve().parent.parent / "hw_profiles"


@dataclass(frozen=True)
class Arithmetic:
    """The integer fields of the target (Lava fixed-point CUBA LIF, see :class:`neurodeploy.ir.ops.CubaLIF`).

    Derived ranges: ``vth`` in ``[0, 2**vth_bits - 1]``; bias mantissa in ``[-2**(bias_bits-1),
    2**(bias_bits-1) - 1]``; ``du``, ``dv`` in ``[0, 2**du_bits - 1]``; u and v in ``[-(2**(state_bits-1) - 1),
    2**(state_bits-1) - 1]``; per-step synaptic input within ``activation_bits`` (signed).
    """

    weight_bits: int
    weight_exp_min: int
    weight_exp_max: int
    vth_bits: int
    bias_bits: int
    bias_exp_min: int
    bias_exp_max: int
    du_bits: int
    dv_bits: int
    state_bits: int
    activation_bits: int
    delay_min: int
    delay_max: int
    message_bits_max: int

    @property
    def vth_max(self) -> int:
        return (1 << self.vth_bits) - 1

    @property
    def bias_min(self) -> int:
        return -(1 << (self.bias_bits - 1))

    @property
    def bias_max(self) -> int:
        return (1 << (self.bias_bits - 1)) - 1

    @property
    def du_max(self) -> int:
        return (1 << self.du_bits) - 1

    @property
    def dv_max(self) -> int:
        return (1 << self.dv_bits) - 1

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1

    @property
    def activation_max(self) -> int:
        return (1 << (self.activation_bits - 1)) - 1

    @property
    def weight_exp_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.weight_exp_max - self.weight_exp_min + 1)))

    @property
    def bias_exp_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.bias_exp_max - self.bias_exp_min + 1)))

    @property
    def delay_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.delay_max + 1)))


@dataclass(frozen=True)
class CoreLimits:
    """Per-core and per-chip capacity of a neurocore architecture, as the partition pass uses it
    (:meth:`Limits.core_limits` builds it from a profile): the four per-core limits and cores per chip of
    :class:`Limits`, and the per-synapse cost of an index (Sparse/Conv2d entries) and of a delay, in bits."""

    neurons_per_core: int
    fan_in_axons_per_core: int
    fan_out_axons_per_core: int
    synaptic_memory_bits_per_core: int
    cores_per_chip: int
    index_bits: int = 12
    delay_bits: int = 6


@dataclass(frozen=True)
class Limits:
    """Capacity of one chip (per-core and per-chip figures); ``chips`` is how many chips a deployment may use."""

    cores_per_chip: int
    neurons_per_core: int
    fan_in_axons_per_core: int
    fan_out_axons_per_core: int
    synaptic_memory_bits_per_core: int
    chips: int = 1
    neurons_per_chip: int | None = None
    synapses_per_chip: int | None = None

    def core_limits(self, index_bits: int = 12, delay_bits: int = 6) -> CoreLimits:
        """The per-core limits the partition pass (:mod:`neurodeploy.passes.partition`) slices under."""
        return CoreLimits(neurons_per_core=self.neurons_per_core, fan_in_axons_per_core=self.fan_in_axons_per_core,
                          fan_out_axons_per_core=self.fan_out_axons_per_core,
                          synaptic_memory_bits_per_core=self.synaptic_memory_bits_per_core,
                          cores_per_chip=self.cores_per_chip, index_bits=index_bits, delay_bits=delay_bits)


@dataclass(frozen=True)
class EnergyFigure:
    """Energy of one operation: ``value`` in ``unit``; ``kind`` measured or simulated; ``proxy`` if borrowed."""

    name: str
    value: float
    unit: str
    kind: str
    source: str
    proxy: bool = False


@dataclass(frozen=True)
class Profile:
    """A loaded hardware profile. ``sources[key]`` / ``estimates[key]`` use dotted keys like ``limits.chips``.

    ``extra`` holds any other top-level tables unparsed (e.g. ``[spinnaker]``, read by the backend that owns it).
    """

    name: str
    description: str
    path: str
    arithmetic: Arithmetic
    reset_modes: tuple[str, ...]
    limits: Limits | None = None
    energy: Mapping[str, EnergyFigure] = field(default_factory=lambda: MappingProxyType({}))
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    estimates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def source(self, key: str) -> str:
        """The source string of a dotted key (``"arithmetic.vth_bits"``), marked when it is an estimate."""
        text = self.sources.get(key, "")
        if key in self.estimates:
            text += f" [estimate: {self.estimates[key]}]"
        return text

    def is_estimate(self, key: str) -> bool:
        return key in self.estimates


# ------------------------------------------------------------------------------------------------------ schema
# field name -> (kind, keys): "value" tables hold one integer, "range" tables min and max, "max" tables only max.
_ARITHMETIC = {
    "weight_bits": "value", "weight_exp": "range", "vth_bits": "value", "bias_bits": "value", "bias_exp": "range",
    "du_bits": "value", "dv_bits": "value", "state_bits": "value", "activation_bits": "value", "delay": "range",
    "message_bits": "max",
}
_LIMITS_REQUIRED = ("cores_per_chip", "neurons_per_core", "fan_in_axons_per_core", "fan_out_axons_per_core",
                    "synaptic_memory_bits_per_core")
_LIMITS_OPTIONAL = ("chips", "neurons_per_chip", "synapses_per_chip")
_TOP_LEVEL = ("format", "name", "description", "arithmetic", "reset", "limits", "energy")
_NUMBER_KEYS = {"value": ("value",), "range": ("min", "max"), "max": ("max",)}


class _Reader:
    """Validating reader of one profile file; every error names the file and the dotted key."""

    def __init__(self, path: Path):
        self.path = path
        self.sources: dict[str, str] = {}
        self.estimates: dict[str, str] = {}

    def error(self, message: str, fix: str = "correct the profile file (see neurodeploy/profiles.py for the schema)"):
        return SerializationError(f"hardware profile {self.path}: {message}", fix=fix)

    def table(self, data: Mapping, key: str, required: bool = True) -> Mapping | None:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                raise self.error(f"missing table [{key}]")
            return None
        if not isinstance(value, Mapping):
            raise self.error(f"'{key}' must be a table")
        return value

    def number(self, data: Mapping, section: str, name: str, kind: str, required: bool = True) -> dict | None:
        key = f"{section}.{name}"
        entry = data.get(name)
        if entry is None:
            if required:
                raise self.error(f"missing '{key}'")
            return None
        if not isinstance(entry, Mapping):
            raise self.error(f"'{key}' must be a table like {{ value = 8, source = \"...\" }}, got {entry!r}")
        allowed = set(_NUMBER_KEYS[kind]) | {"source", "estimate", "reason"}
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise self.error(f"'{key}' has unknown keys {unknown}", fix=f"use only {sorted(allowed)}")
        out = {}
        for k in _NUMBER_KEYS[kind]:
            v = entry.get(k)
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.error(f"'{key}.{k}' must be an integer, got {v!r}")
            out[k] = v
        if kind == "range" and out["min"] > out["max"]:
            raise self.error(f"'{key}' has min {out['min']} > max {out['max']}")
        self.record_source(entry, key)
        return out

    def record_source(self, entry: Mapping, key: str) -> None:
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise self.error(f"'{key}' has no source", fix="add source = \"<paper, datasheet or code it comes from>\"")
        self.sources[key] = source
        estimate = entry.get("estimate", False)
        if not isinstance(estimate, bool):
            raise self.error(f"'{key}.estimate' must be true or false")
        if estimate:
            reason = entry.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise self.error(f"'{key}' is marked estimate but gives no reason",
                                 fix="add reason = \"<how the figure was derived>\"")
            self.estimates[key] = reason


def _positive(reader: _Reader, key: str, value: int) -> int:
    if value <= 0:
        raise reader.error(f"'{key}' must be positive, got {value}")
    return value


def _parse(data: Mapping[str, Any], path: Path) -> Profile:
    r = _Reader(path)
    fmt = data.get("format")
    if fmt != FORMAT:
        raise r.error(f"format is {fmt!r}, this neurodeploy reads format {FORMAT}",
                      fix=f"set format = {FORMAT} and follow the schema in neurodeploy/profiles.py")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise r.error("missing 'name'")
    description = data.get("description", "")
    arith_t = r.table(data, "arithmetic")
    unknown = sorted(set(arith_t) - set(_ARITHMETIC))
    if unknown:
        raise r.error(f"[arithmetic] has unknown keys {unknown}", fix=f"use only {sorted(_ARITHMETIC)}")
    a = {n: r.number(arith_t, "arithmetic", n, kind) for n, kind in _ARITHMETIC.items()}
    if not 1 <= a["weight_bits"]["value"] <= 8:
        raise r.error(f"'arithmetic.weight_bits' is {a['weight_bits']['value']}; Loihi's fixed-point weights have "
                      "1 to 8 mantissa bits (Lava clips to 8)")
    for n in ("vth_bits", "bias_bits", "du_bits", "dv_bits", "state_bits", "activation_bits"):
        _positive(r, f"arithmetic.{n}", a[n]["value"])
    if a["delay"]["min"] < 0:
        raise r.error("'arithmetic.delay.min' must be >= 0")
    arithmetic = Arithmetic(
        weight_bits=a["weight_bits"]["value"], weight_exp_min=a["weight_exp"]["min"],
        weight_exp_max=a["weight_exp"]["max"], vth_bits=a["vth_bits"]["value"], bias_bits=a["bias_bits"]["value"],
        bias_exp_min=a["bias_exp"]["min"], bias_exp_max=a["bias_exp"]["max"], du_bits=a["du_bits"]["value"],
        dv_bits=a["dv_bits"]["value"], state_bits=a["state_bits"]["value"],
        activation_bits=a["activation_bits"]["value"], delay_min=a["delay"]["min"], delay_max=a["delay"]["max"],
        message_bits_max=a["message_bits"]["max"])
    reset_t = r.table(data, "reset")
    modes = reset_t.get("modes")
    if not isinstance(modes, list) or not modes or any(m not in RESET_MODES for m in modes):
        raise r.error(f"'reset.modes' must be a non-empty list drawn from {list(RESET_MODES)}, got {modes!r}")
    r.record_source(reset_t, "reset.modes")
    limits = None
    limits_t = r.table(data, "limits", required=False)
    if limits_t is not None:
        allowed = set(_LIMITS_REQUIRED) | set(_LIMITS_OPTIONAL)
        unknown = sorted(set(limits_t) - allowed)
        if unknown:
            raise r.error(f"[limits] has unknown keys {unknown}", fix=f"use only {sorted(allowed)}")
        values = {}
        for n in _LIMITS_REQUIRED + _LIMITS_OPTIONAL:
            entry = r.number(limits_t, "limits", n, "value", required=n in _LIMITS_REQUIRED)
            if entry is not None:
                values[n] = _positive(r, f"limits.{n}", entry["value"])
        limits = Limits(**values)
    energy = {}
    energy_t = r.table(data, "energy", required=False) or {}
    for op_name, entry in energy_t.items():
        key = f"energy.{op_name}"
        if not isinstance(entry, Mapping):
            raise r.error(f"'{key}' must be a table with value, unit, kind and source")
        unknown = sorted(set(entry) - {"value", "unit", "kind", "source", "proxy", "estimate", "reason"})
        if unknown:
            raise r.error(f"'{key}' has unknown keys {unknown}")
        value = entry.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise r.error(f"'{key}.value' must be a non-negative number, got {value!r}")
        if entry.get("kind") not in ENERGY_KINDS:
            raise r.error(f"'{key}.kind' must be one of {list(ENERGY_KINDS)}, got {entry.get('kind')!r}",
                          fix="say whether the figure was measured on silicon or simulated")
        if not isinstance(entry.get("unit"), str):
            raise r.error(f"'{key}.unit' must be a string such as \"pJ\"")
        r.record_source(entry, key)
        energy[op_name] = EnergyFigure(op_name, float(value), entry["unit"], entry["kind"], entry["source"],
                                       bool(entry.get("proxy", False)))
    extra = {k: v for k, v in data.items() if k not in _TOP_LEVEL}
    return Profile(name=name, description=str(description), path=str(path), arithmetic=arithmetic,
                   reset_modes=tuple(modes), limits=limits, energy=MappingProxyType(energy),
                   sources=MappingProxyType(r.sources), estimates=MappingProxyType(r.estimates),
                   extra=MappingProxyType(extra))


# ------------------------------------------------------------------------------------------------------ loading
def available_profiles() -> list[str]:
    """Names of the bundled profiles (the ``*.toml`` files in ``hw_profiles/``)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(".toml"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise SerializationError(f"hardware profile file {path} does not exist",
                                     fix=f"give an existing .toml file or one of the names {available_profiles()}")
        return path
    path = PROFILE_DIR / f"{text}.toml"
    if not path.is_file():
        raise SerializationError(f"unknown hardware profile '{text}'",
                                 fix=f"use one of {', '.join(available_profiles())}, or a path to a .toml file")
    return path


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """Load a profile by bundled name (``"loihi2"``) or file path; a :class:`Profile` is returned unchanged."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    path = _resolve(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SerializationError(f"hardware profile {path} is not valid TOML ({err})",
                                 fix="fix the TOML syntax at the position given") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SerializationError(f"hardware profile {path} cannot be read ({err})",
                                 fix="check the file's permissions and encoding (UTF-8)") from None
    return _parse(data, path)
