"""What a sweep reads before any task runs: the models' float graphs, the evaluation data, the calibration stimuli.

Everything here is loaded once by the driver; tasks receive graphs as ``.ndg`` bytes and stimuli as arrays. Each
piece has a content hash (sha256) that enters the cache keys: a model's is the hash of its float graph's
deterministic ``.ndg`` bytes (so a model file, its weights or its family parameters all count), a shard's the hash
of its stimulus and labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from neurodeploy.errors import InputError
from neurodeploy.ir.graph import Graph

from .spec import DataSpec, ModelSpec, SweepSpec

#: The LSM family's defaults: those of the LSM example (neurodeploy.families.lsm.run_all.Config).
LSM_DEFAULTS = {"reservoir": {"grid": (6, 6, 6), "lam": 3.0, "weights": {"EE": 0.1, "EI": 0.2, "IE": 0.2, "II": 0.2}},
                "inputs": {"p": 0.2, "weight": 0.05}, "neuron": {}}


def sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def array_hash(*arrays: np.ndarray) -> str:
    """Content hash of arrays: dtype, shape and bytes of each."""
    parts = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        parts += [str(a.dtype).encode(), repr(a.shape).encode(), a.tobytes()]
    return sha256(*parts)


@dataclass
class LoadedModel:
    """A model's float graph, its ``.ndg`` bytes and their hash."""

    spec: ModelSpec
    graph: Graph
    data: bytes
    key: str


@dataclass
class Split:
    """Stimuli ``[B, T, *shape]`` and labels ``[B]`` cut into fixed shards ``[start, stop)``."""

    name: str
    x: np.ndarray
    y: np.ndarray
    shards: list[tuple[int, int]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def _lsm_graph(spec: ModelSpec, where: str) -> Graph:
    from neurodeploy.families.lsm import InputSpec, NeuronSpec, ReservoirSpec, build

    classes = {"reservoir": ReservoirSpec, "inputs": InputSpec, "neuron": NeuronSpec}
    made = {}
    for part, cls in classes.items():
        kwargs = dict(LSM_DEFAULTS[part])
        kwargs.update(spec.options.get(part, {}))
        for key in ("grid", "delay_offset"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        try:
            made[part] = cls(**kwargs)
        except TypeError as err:
            raise InputError(f"{where}: model '{spec.name}' [model.{part}] does not fit {cls.__name__} ({err})",
                             fix=f"use only {cls.__name__} fields in [model.{part}]") from None
    made["reservoir"].validate()
    return build(made["reservoir"], made["inputs"], made["neuron"]).graph()


def load_models(spec: SweepSpec) -> list[LoadedModel]:
    """Load every model of ``spec`` as a float IR graph (the CLI's ``load_model`` for files)."""
    from neurodeploy.ir.serialize import graph_to_bytes
    from neurodeploy.model_loading import load_model

    out = []
    for m in spec.models:
        if m.family == "lsm":
            graph = _lsm_graph(m, f"sweep file '{spec.path}'")
        else:
            shape = tuple(m.options["input_shape"]) if "input_shape" in m.options else None
            graph = load_model(m.path, shape, m.options.get("dt"), m.options.get("reset"))
        if len(graph.outputs) != 1:
            raise InputError(f"sweep file '{spec.path}': model '{m.name}' has outputs {graph.outputs}; a sweep "
                             "decodes one output", fix="export the model with a single output node")
        data = graph_to_bytes(graph)
        out.append(LoadedModel(m, graph, data, sha256(data)))
    return out


def _npz(path, stimulus: str, labels: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    from neurodeploy.fileio import read_npz

    arrays = read_npz(path, where)
    for name in (stimulus, labels):
        if name not in arrays:
            raise InputError(f"'{path}' has no array '{name}' (it holds {sorted(arrays)[:20]})",
                             fix=f"save it with {stimulus}=[B, T, *input_shape] and {labels}=[B], or set "
                                 "data.stimulus / data.labels")
    x, y = arrays[stimulus], arrays[labels]
    if x.ndim < 2 or y.shape != (x.shape[0],):
        raise InputError(f"'{path}': '{stimulus}' {list(x.shape)} and '{labels}' {list(y.shape)} are not "
                         "[B, T, ...] and [B]", fix="save one label per stimulus sample")
    return x, y


def _split(name: str, x: np.ndarray, y: np.ndarray, data: DataSpec, limit: bool) -> Split:
    if limit and data.samples is not None:
        x, y = x[: data.samples], y[: data.samples]
    split = Split(name, x, y)
    for start in range(0, x.shape[0], data.shard_size):
        stop = min(x.shape[0], start + data.shard_size)
        split.shards.append((start, stop))
        split.keys.append(array_hash(x[start:stop], y[start:stop]))
    return split


def load_data(spec: SweepSpec) -> tuple[Split, Split | None, np.ndarray | None]:
    """The test split, the training split (logistic readout or ``calibration.source = "train"``; else None) and
    the calibration pool (the stimuli whose first ``calibration_size`` samples calibrate; None: generated)."""
    data = spec.data
    train = None
    if data.family == "lsm_digits":
        from neurodeploy.families.lsm.encoding import load_task

        opts = {"steps": 60, "max_rate": 0.5, "seed": 0, **data.family_options}
        task = load_task(int(opts["steps"]), float(opts["max_rate"]), seed=int(opts["seed"]))
        test = _split("test", task.x_test, task.y_test, data, True)
        train = _split("train", task.x_train, task.y_train, data, False)
    else:
        x, y = _npz(data.file, data.stimulus, data.labels, "evaluation data")
        test = _split("test", x, y, data, True)
        if data.train_file is not None:
            train = _split("train", *_npz(data.train_file, data.stimulus, data.labels, "training data"), data, False)
    if spec.calibration_source == "generated":
        pool = None
    elif spec.calibration_source == "train":
        pool = train.x
    else:
        from neurodeploy.fileio import read_npz

        arrays = read_npz(spec.calibration_file, "calibration")
        if "spikes" not in arrays:
            raise InputError(f"calibration file '{spec.calibration_file}' has no array 'spikes' (it holds "
                             f"{sorted(arrays)[:20]})", fix="save the calibration stimuli as spikes=[B, T, ...]")
        pool = arrays["spikes"]
    if data.readout != "logistic":
        train = None
    return test, train, pool
