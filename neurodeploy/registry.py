"""Explicit registry of compile targets and run backends. The core never imports a backend until it is used.

A *target* names the hardware profile whose arithmetic and limits the quantizer and checks use, and the backend
that emits target-specific files (``emit``) at compile time. A *backend* runs a compiled artifact (``run``).
Backend modules expose ``emit(compiled, out_dir)`` and/or ``run(artifact, spikes, record, **options)``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from neurodeploy.errors import BackendError


@dataclass(frozen=True)
class Target:
    """A compile target: its hardware profile and the backend module that emits its files."""

    name: str
    profile: str
    backend: str
    description: str
    neurocores: bool = False  # partition populations onto neurocores (Loihi-style fit report) at compile time


TARGETS: dict[str, Target] = {
    "emulator": Target("emulator", "emulator", "emulator", "bit-accurate Loihi 2 arithmetic, no capacity limits"),
    "loihi2": Target("loihi2", "loihi2", "lava", "Intel Loihi 2 through Lava (lava-nc 0.10.0, fixed_pt)",
                     neurocores=True),
    "spinnaker": Target("spinnaker", "spinnaker1", "pynn", "SpiNNaker 1 through a PyNN script (sPyNNaker)"),
    "null": Target("null", "loihi2", "null", "compile and check for Loihi 2 only; emits no backend files",
                   neurocores=True),
}

BACKENDS: dict[str, str] = {
    "emulator": "neurodeploy.backends.emulator",
    "lava": "neurodeploy.backends.lava",
    "pynn": "neurodeploy.backends.pynn",
    "null": "neurodeploy.backends.null",
    "float": "neurodeploy.backends.float",
}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise BackendError(f"unknown target '{name}'", fix=f"choose one of {', '.join(TARGETS)}")
    return TARGETS[name]


def get_backend(name: str) -> ModuleType:
    """Import and return the backend module ``name``; a clear error when it is unknown or not installed."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'", fix=f"choose one of {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as err:
        raise BackendError(f"backend '{name}' is not available in this environment ({err})",
                           fix="install neurodeploy with the matching extra, see the README") from None
