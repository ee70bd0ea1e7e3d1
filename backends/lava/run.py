"""Run a Lava description on Lava's bit-accurate CPU models (``Loihi2SimCfg(select_tag="fixed_pt")``).

Step indexing: Lava numbers steps ``t = 1 .. T``; every returned array is ``[B, T, *shape]`` and index ``t - 1``
holds Lava step ``t`` (what a ``Monitor`` writes at ``time_step - 1``). The RingBuffer of an Input sends stimulus
column ``t - 1`` at step ``t``, every synapse process adds one step (plus its delay), and u / v are read after the
step's reset -- the emulator's convention, so its arrays compare element for element.

Cost model: Lava starts one OS process per Lava process (monitors included) and returns a Monitor's data one
value per message. So each batch element is one fresh build + ``run`` + ``stop`` (state cannot leak between
samples); only the fields asked for are probed (one Monitor per probed variable, because Lava 0.10's Monitor
records a single target correctly); and a connected component whose neurons are not observed is not run at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.sparse import SparseEfficiencyWarning

from neurodeploy.backends.lava.rebuild import build_processes
from neurodeploy.errors import BackendError, InputError

__all__ = ["run_description", "run_graph", "RECORDABLE", "require_lava"]

RECORDABLE = ("spikes", "u", "v")
_PORT = {"spikes": "s_out", "u": "u", "v": "v"}
_DTYPE = {"spikes": np.uint8, "u": np.int32, "v": np.int32}


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


def _components(description: dict[str, Any]) -> dict[str, int]:
    """Process name -> connected-component id (Lava compiles and runs one connected component per ``run``)."""
    parent = {p["name"]: p["name"] for p in description["processes"]}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for conn in description["connections"]:
        parent[find(conn["src"])] = find(conn["dst"])
    roots = {}
    return {name: roots.setdefault(find(name), len(roots)) for name in parent}


def _probes(description: dict[str, Any], record: tuple[str, ...], nodes: list[str]) -> set[tuple[str, str]]:
    wanted = {(n, f) for n in nodes for f in record}
    for spec in description["outputs"].values():
        if spec["kind"] != "input":
            wanted.add((spec["source"], spec["kind"]))
    for spec in description.get("plastic", {}).values():  # run every learning synapse's component
        wanted.add((spec["post"], "spikes"))
    return wanted


def _run_sample(description: dict[str, Any], data: dict[str, np.ndarray], steps: int,
                wanted: set[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.monitor.process import Monitor

    procs = build_processes(description, data)
    comp = _components(description)
    monitors: dict[int, list[tuple[tuple[str, str], Any, Any]]] = {}
    for node, fld in sorted(wanted):
        proc = procs[description["neurons"][node]["process"]]
        mon = Monitor()
        mon.probe(getattr(proc, _PORT[fld]), steps)
        monitors.setdefault(comp[proc.name], []).append(((node, fld), mon, proc))
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    results = {}
    for probes in monitors.values():
        anchor = probes[0][2]
        try:
            with warnings.catch_warnings():  # DelaySparse edits csr structure on its first step (harmless)
                warnings.simplefilter("ignore", SparseEfficiencyWarning)
                anchor.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            for key, mon, proc in probes:
                results[key] = np.asarray(mon.get_data()[proc.name][_PORT[key[1]]])
            for node, spec in description.get("plastic", {}).items():  # learned weights, read before stop()
                if comp[spec["process"]] == comp[anchor.name]:
                    results[(node, "weights")] = np.asarray(procs[spec["process"]].weights.get())
        except Exception as err:  # Lava raises bare Exceptions from its runtime
            raise BackendError(f"Lava failed while running: {type(err).__name__}: {err}",
                               fix="check the description with rebuild.build_processes in plain Lava") from err
        finally:
            anchor.stop()
    return results


def run_description(description: dict[str, Any], spikes: Any, record: Iterable[str] = (),
                    nodes: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``description`` on Lava fixed_pt for every sample of ``spikes`` (``[B, T, *input_shape]`` or a dict).

    Returns ``{output name: [B, T, *shape], "<node>/<field>": [B, T, *shape]}`` with fields among ``record``
    (``spikes``, ``u``, ``v``) for every neuron in ``nodes`` (default: all). Spikes are uint8, u and v int32.
    A learning synapse (``description["plastic"]``) adds ``"<node>/weights"``: its weights after the run
    ``[B, n_out, n_in]`` (each sample is a fresh build, so each starts from the described weights).
    """
    require_lava()
    record = tuple(record)
    bad = [f for f in record if f not in RECORDABLE]
    if bad:
        raise InputError(f"cannot record {bad}; choose among {RECORDABLE}")
    neurons = description["neurons"]
    rec_nodes = list(neurons) if nodes is None else list(nodes)
    for n in rec_nodes:
        if n not in neurons:
            raise InputError(f"'{n}' is not a neuron node", fix=f"choose among {sorted(neurons)}")
    stim, batch, steps = _stimuli(description, spikes)
    wanted = _probes(description, record, rec_nodes)
    traces = {key: np.zeros((batch, steps, int(np.prod(neurons[key[0]]["shape"]))), _DTYPE[key[1]])
              for key in wanted}
    plastic = description.get("plastic", {})
    learned = {node: np.zeros((batch, *spec["shape"]), np.int64) for node, spec in plastic.items()}
    for b in range(batch):
        data = {name: np.ascontiguousarray(x[b].T) for name, x in stim.items()}  # Lava layout [n_flat, T]
        for key, values in _run_sample(description, data, steps, wanted).items():
            if key[1] == "weights":
                learned[key[0]][b] = np.rint(values).astype(np.int64)
            else:
                traces[key][b] = np.rint(values.reshape(steps, -1)).astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for name, spec in description["outputs"].items():
        shape = tuple(spec["shape"])
        if spec["kind"] == "input":
            out[name] = stim[spec["source"]].astype(np.uint8).reshape(batch, steps, *shape)
        else:
            out[name] = traces[(spec["source"], spec["kind"])].reshape(batch, steps, *shape)
    for n in rec_nodes:
        for f in record:
            out[f"{n}/{f}"] = traces[(n, f)].reshape(batch, steps, *neurons[n]["shape"])
    for node, w in learned.items():
        out[f"{node}/weights"] = w
    return out


def run_graph(graph, spikes: Any, record: Iterable[str] = (), nodes: Iterable[str] | None = None
              ) -> dict[str, np.ndarray]:
    """:func:`~neurodeploy.backends.lava.describe.describe` ``graph``, then :func:`run_description`."""
    from neurodeploy.backends.lava.describe import describe

    return run_description(describe(graph), spikes, record=record, nodes=nodes)
