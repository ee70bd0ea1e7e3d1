"""The null backend: compile and check only (like tinygrad's ops_null); it emits nothing and cannot run."""

from __future__ import annotations

from neurodeploy.errors import BackendError


def run(artifact, spikes, record=(), **_options):
    raise BackendError("the 'null' target compiles and checks only; it has nothing to run",
                       fix="run with --backend emulator, or compile for another target")
