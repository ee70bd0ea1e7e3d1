"""The float backend: runs an artifact's own float IR (``float.ndg``, the model as converted, before quantization)
on the emulator in float arithmetic, so that ``neurodeploy profile DIR --backend float`` shows, layer by layer,
where quantization changed the network (spike-count correlation per population, decision agreement per output;
:func:`neurodeploy.backends.pynn.agreement.agreement`).

Node names are kept by the quantizer, so populations compare by name; both runs use the same step semantics (the
emulator's float mode folds the graph the same way), so spike times are comparable step for step.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.backends.emulator import result_arrays
from neurodeploy.backends.pynn.agreement import agreement  # noqa: F401  (profile's comparison for this backend)
from neurodeploy.emulator import simulate
from neurodeploy.errors import BackendError

#: What profile records from both runs: float and integer voltages are in different units, spikes are not.
PROFILE_RECORD = ("spikes",)


def run(artifact: Artifact, spikes, record: Iterable[str] = ("spikes",), progress: bool = False,
        **_options) -> tuple[dict[str, np.ndarray], object]:
    """Run the artifact's float IR on ``spikes`` (float arithmetic); the emulator backend's ``.npz`` contract."""
    if artifact.float_graph is None:
        raise BackendError(f"artifact '{artifact.path}' has no float IR (float.ndg): it was compiled from an "
                           "already quantized graph", fix="compile the float model to compare against it")
    result = simulate(artifact.float_graph, spikes, record=tuple(record), arithmetic="float", progress=progress)
    return result_arrays(result), result
