"""The emulator backend: runs a compiled artifact on the bit-accurate Loihi emulator (no files to emit)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.emulator import Program, SimResult


def run(artifact: Artifact, spikes, record: Iterable[str] = (), progress: bool = False, engine: str = "auto",
        device: str | None = None, **_options) -> tuple[dict[str, np.ndarray], SimResult]:
    """Run ``artifact`` on ``spikes`` with ``engine`` (``auto``, ``numba``, ``numpy`` or ``torch`` on ``device``);
    return the ``.npz`` dict (see :func:`result_arrays`) and the raw result."""
    result = Program(artifact.graph).run(spikes, record=record, progress=progress, engine=engine, device=device)
    return result_arrays(result), result


def result_arrays(result: SimResult) -> dict[str, np.ndarray]:
    """The run's output contract: ``spikes`` (the only output, if there is one), ``<output>`` per output node and
    ``<node>/<field>`` per recorded neuron field, each ``[B, T, *shape]``."""
    arrays: dict[str, np.ndarray] = {}
    if len(result.outputs) == 1:
        arrays["spikes"] = next(iter(result.outputs.values()))
    arrays.update(result.outputs)
    arrays.update(result.recorded)
    return arrays
