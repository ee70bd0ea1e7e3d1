"""Sourced figures for reports: units, the measured/simulated/estimate/proxy flag, and per-step time figures.

Every number a report prints is a :class:`Figure`: a value in SI units (joules, watts or seconds), the source
it comes from and one flag, the weakest of its parts in the order ``measured < simulated < estimate < proxy``:

* ``measured``  -- measured on silicon (the profile says ``kind = "measured"``);
* ``simulated`` -- from a (pre-silicon or bit-accurate) simulation (``kind = "simulated"``; every emulator count);
* ``estimate``  -- derived or assumed (the profile marks it ``estimate = true`` with a reason, or a report model
  adds an assumption, such as zero mesh hops);
* ``proxy``     -- borrowed from another chip (``proxy = true``, e.g. Loihi 1's figures for Loihi 2).

Energy figures come from a profile's ``[energy.<name>]`` tables (see :mod:`neurodeploy.profiles`). Time figures
are read here, from two optional places in a profile, in this order:

``[timing.step]``  (a report-only table, kept unparsed by the profile loader in ``Profile.extra``)::

    [timing.step]
    value = 1.0
    unit = "ms"                      # s, ms, us or ns
    kind = "measured"                # or "simulated"
    source = "..."
    estimate = true                  # optional, then reason = "..."

``[spinnaker] timestep_ms``: sPyNNaker runs in real time, one step per machine time step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from neurodeploy.errors import SerializationError
from neurodeploy.profiles import ENERGY_KINDS, EnergyFigure, Profile

FLAGS = ("measured", "simulated", "estimate", "proxy")
ENERGY_UNITS = {"fJ": 1e-15, "pJ": 1e-12, "nJ": 1e-9, "uJ": 1e-6, "µJ": 1e-6, "mJ": 1e-3, "J": 1.0}
POWER_UNITS = {"uW": 1e-6, "µW": 1e-6, "mW": 1e-3, "W": 1.0}
TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class Figure:
    """One sourced number in SI units (``unit`` is ``J``, ``W`` or ``s``); ``flag`` is one of :data:`FLAGS`."""

    name: str
    value: float
    unit: str
    flag: str
    source: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "value": self.value, "unit": self.unit, "flag": self.flag, "source": self.source}
        if self.note:
            out["note"] = self.note
        return out


def weakest(flags: Iterable[str]) -> str:
    """The weakest flag of a combination (a sum of a measured and a proxy figure is a proxy)."""
    flags = list(flags)
    return max(flags, key=FLAGS.index) if flags else "simulated"


def _profile_error(profile: Profile, message: str, fix: str) -> SerializationError:
    return SerializationError(f"hardware profile {profile.path}: {message}", fix=fix)


def energy_figure(profile: Profile, name: str) -> Figure | None:
    """The profile's ``[energy.<name>]`` as a :class:`Figure` in J (or W for power), None when absent.

    Raises :class:`SerializationError` naming ``energy.<name>.unit`` when the unit is not an energy or power unit.
    """
    fig: EnergyFigure | None = profile.energy.get(name)
    if fig is None:
        return None
    if fig.unit in ENERGY_UNITS:
        value, unit = fig.value * ENERGY_UNITS[fig.unit], "J"
    elif fig.unit in POWER_UNITS:
        value, unit = fig.value * POWER_UNITS[fig.unit], "W"
    else:
        raise _profile_error(profile, f"'energy.{name}.unit' is {fig.unit!r}, not an energy or power unit",
                             fix=f"use one of {sorted(ENERGY_UNITS)} (per operation) or {sorted(POWER_UNITS)}")
    key = f"energy.{name}"
    flag = "proxy" if fig.proxy else ("estimate" if profile.is_estimate(key) else fig.kind)
    return Figure(f"{profile.name}:{name}", value, unit, flag, profile.source(key))


def require_energy(profile: Profile, name: str, unit: str, purpose: str) -> Figure:
    """Like :func:`energy_figure` but the figure must exist and be in ``unit`` (``J`` or ``W``)."""
    fig = energy_figure(profile, name)
    if fig is None:
        raise _profile_error(profile, f"missing table [energy.{name}], needed for {purpose}",
                             fix=f"add [energy.{name}] with value, unit, kind and source "
                                 "(see hw_profiles/cmos45nm.toml)")
    if fig.unit != unit:
        raise _profile_error(profile, f"'energy.{name}.unit' must be an {'energy' if unit == 'J' else 'power'} unit",
                             fix=f"use one of {sorted(ENERGY_UNITS if unit == 'J' else POWER_UNITS)}")
    return fig


def _timing_table(profile: Profile) -> Figure | None:
    timing = profile.extra.get("timing")
    if timing is None:
        return None
    if not isinstance(timing, Mapping):
        raise _profile_error(profile, "'timing' must be a table of tables like [timing.step]",
                             fix="write [timing.step] with value, unit, kind and source")
    unknown = sorted(set(timing) - {"step"})
    if unknown:
        raise _profile_error(profile, f"[timing] has unknown entries {unknown}", fix="use only [timing.step]")
    entry = timing.get("step")
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise _profile_error(profile, "'timing.step' must be a table with value, unit, kind and source",
                             fix="write [timing.step] with value = 1.0, unit = \"ms\", kind, source")
    allowed = {"value", "unit", "kind", "source", "estimate", "reason"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise _profile_error(profile, f"'timing.step' has unknown keys {unknown}", fix=f"use only {sorted(allowed)}")
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _profile_error(profile, f"'timing.step.value' must be a positive number, got {value!r}",
                             fix="give the wall time of one step")
    unit = entry.get("unit")
    if unit not in TIME_UNITS:
        raise _profile_error(profile, f"'timing.step.unit' is {unit!r}, not a time unit",
                             fix=f"use one of {sorted(TIME_UNITS)}")
    kind = entry.get("kind")
    if kind not in ENERGY_KINDS:
        raise _profile_error(profile, f"'timing.step.kind' must be one of {list(ENERGY_KINDS)}, got {kind!r}",
                             fix="say whether the time was measured on silicon or simulated")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise _profile_error(profile, "'timing.step' has no source", fix="add source = \"<where the time comes from>\"")
    estimate = entry.get("estimate", False)
    if not isinstance(estimate, bool):
        raise _profile_error(profile, "'timing.step.estimate' must be true or false", fix="write estimate = true")
    reason = entry.get("reason", "")
    if estimate and (not isinstance(reason, str) or not reason.strip()):
        raise _profile_error(profile, "'timing.step' is marked estimate but gives no reason",
                             fix="add reason = \"<how the time was derived>\"")
    text = source + (f" [estimate: {reason}]" if estimate else "")
    return Figure(f"{profile.name}:timing.step", float(value) * TIME_UNITS[unit], "s",
                  "estimate" if estimate else kind, text)


def step_time(profile: Profile) -> Figure | None:
    """Wall time of one step on ``profile`` ([timing.step], else SpiNNaker's real-time step), or None."""
    fig = _timing_table(profile)
    if fig is not None:
        return fig
    spinnaker = profile.extra.get("spinnaker")
    if isinstance(spinnaker, Mapping) and isinstance(spinnaker.get("timestep_ms"), Mapping):
        entry = spinnaker["timestep_ms"]
        value = entry.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return Figure(f"{profile.name}:spinnaker.timestep_ms", float(value) * 1e-3, "s", "estimate",
                          str(entry.get("source", "")),
                          note="real-time execution, one step per machine time step; loading and read-back excluded")
    return None
