"""Run a Lava description on Lava's bit-accurate CPU models (``Loihi2SimCfg(select_tag="fixed_pt")``).

Step indexing: Lava numbers steps ``t = 1 .. T``; every returned array is ``[B, T, *shape]`` and index ``t - 1``
holds Lava step ``t`` (what a ``Monitor`` writes at ``time_step - 1``). The RingBuffer of an Input sends stimulus
column ``t - 1`` at step ``t``, every synapse process adds one step (plus its delay), and u / v are read after the
step's reset -- the emulator's convention, so its arrays compare element for element.

Cost model: Lava starts one OS process per Lava process (monitors included) and returns a Monitor's data one
value per message. So each batch element is one fresh build + ``run`` + ``stop`` (state cannot leak between
samples); only the fields asked for are probed (one Monitor per probed variable, because Lava 0.10's Monitor
records a single target correctly); and a connected component whose neurons are not observed is not run at all.

The execution itself is :func:`rebuild.run <neurodeploy.backends.lava.rebuild.run>`, the code every ``loihi2``
artifact ships as ``lava/rebuild.py``; this module adds neurodeploy's checks of the stimulus, the recorded fields
and the description's format and version, and turns failures into :mod:`neurodeploy.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from neurodeploy.backends.lava import rebuild
from neurodeploy.errors import BackendError, InputError, SerializationError

__all__ = ["run_description", "run_graph", "RECORDABLE", "require_lava"]

RECORDABLE = rebuild.RECORDABLE


def require_lava() -> None:
    """Raise :class:`BackendError` with install instructions when lava-nc cannot be imported."""
    try:
        import lava.magma.core.run_configs  # noqa: F401
    except ImportError as err:
        raise BackendError(f"lava-nc is not importable ({err})",
                           fix="install the lava extra (pip install 'neurodeploy[lava]', Python <= 3.10) and run "
                               "inside that environment") from None


def _stimuli(description: dict[str, Any], spikes: Any) -> tuple[dict[str, np.ndarray], int, int]:
    names = list(description["inputs"])
    if not isinstance(spikes, Mapping):
        if len(names) != 1:
            raise InputError(f"the model has inputs {names}; pass a dict name -> array")
        spikes = {names[0]: spikes}
    arrays, dims = {}, None
    for name in names:
        if name not in spikes:
            raise InputError(f"no stimulus given for input '{name}'", fix=f"add an array named '{name}'")
        x = np.asarray(spikes[name])
        shape = tuple(description["inputs"][name]["shape"])
        if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
            raise InputError(f"input '{name}' must be shaped [B, T, {', '.join(map(str, shape))}], got {list(x.shape)}",
                             fix="reshape the stimulus to [batch, time, *input_shape]")
        if x.size and not np.isin(x, (0, 1)).all():
            raise InputError(f"input '{name}' holds values other than 0 and 1; Loihi inputs are spikes",
                             fix="encode the stimulus as binary spike trains")
        if dims is None:
            dims = x.shape[:2]
        elif x.shape[:2] != dims:
            raise InputError(f"input '{name}' has batch/time {x.shape[:2]}, others have {dims}")
        arrays[name] = x.reshape(x.shape[0], x.shape[1], -1).astype(np.int64)
    if dims is None or dims[1] < 1:
        raise InputError("the stimulus needs at least one time step")
    return arrays, int(dims[0]), int(dims[1])


def run_description(description: dict[str, Any], spikes: Any, record: Iterable[str] = (),
                    nodes: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``description`` on Lava fixed_pt for every sample of ``spikes`` (``[B, T, *input_shape]`` or a dict).

    Returns ``{output name: [B, T, *shape], "<node>/<field>": [B, T, *shape]}`` with fields among ``record``
    (``spikes``, ``u``, ``v``) for every neuron in ``nodes`` (default: all). Spikes are uint8, u and v int32.
    A learning synapse (``description["plastic"]``) adds ``"<node>/weights"``: its weights after the run
    ``[B, n_out, n_in]`` (each sample is a fresh build, so each starts from the described weights).
    """
    require_lava()
    try:
        rebuild.check_format(description)
    except rebuild.DescriptionError as err:
        raise SerializationError(str(err), fix="recompile the model with --target loihi2") from None
    record = tuple(record)
    bad = [f for f in record if f not in RECORDABLE]
    if bad:
        raise InputError(f"cannot record {bad}; choose among {RECORDABLE}")
    neurons = description["neurons"]
    rec_nodes = list(neurons) if nodes is None else list(nodes)
    for n in rec_nodes:
        if n not in neurons:
            raise InputError(f"'{n}' is not a neuron node", fix=f"choose among {sorted(neurons)}")
    stim, _, _ = _stimuli(description, spikes)
    try:
        return rebuild.run(description, stim, record=record, nodes=rec_nodes)
    except rebuild.DescriptionError as err:
        raise SerializationError(f"the Lava description cannot be rebuilt: {err}",
                                 fix="recompile the model with --target loihi2") from None
    except Exception as err:  # Lava raises bare Exceptions from its runtime
        raise BackendError(f"Lava failed while running: {type(err).__name__}: {err}",
                           fix="check the description with rebuild.build_processes in plain Lava") from err


def run_graph(graph, spikes: Any, record: Iterable[str] = (), nodes: Iterable[str] | None = None
              ) -> dict[str, np.ndarray]:
    """:func:`~neurodeploy.backends.lava.describe.describe` ``graph``, then :func:`run_description`."""
    from neurodeploy.backends.lava.describe import describe

    return run_description(describe(graph), spikes, record=record, nodes=nodes)
