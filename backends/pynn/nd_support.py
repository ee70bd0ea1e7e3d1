"""Support module shipped beside a neurodeploy ``model.py``: files, stimulus, recordings and simulator quirks.

``model.py`` states the network (populations, projections, recording, the run loop); this module holds what is
not the network: reading the stimulus ``.npz``, turning spike rasters into spike times, reading recordings back
into arrays, and the simulator-specific workarounds (every one is named here, in the function that applies it):

* sPyNNaker 1!7.4.1: ``max_expected_summed_weight`` fixes the 16-bit weight shift neurodeploy chose and reported,
  ``neurons_per_core`` the core size of the mapping report (:func:`spinnaker_options`); spike times must be lists
  of floats given to the ``SpikeSourceArray`` constructor (``Population.set(spike_times=...)`` keeps a plain list
  and fails at mapping in ``_filtered_send_buffer_times``), so every sample builds a fresh network
  (:func:`spike_times`, and the run loop in ``model.py``).
* Continuous-time simulators (Brian2, NEST, ...) integrate the ODE exactly between steps where SpiNNaker updates
  once per step: every weight is multiplied by the post population's ``continuous_gain`` (``model.py`` writes it
  per projection) so that the PSP sampled at the steps is the same (:func:`from_list`).
* pyNN.brian2: ``SpikeSourceArray`` ignores ``setup(timestep)`` (:func:`setup` sets Brian2's default clock); a
  step's spikes are applied after the neuron update where SpiNNaker applies them during the next step, so the
  synaptic pathways move to Brian2's ``before_groups`` slot (IF_curr_exp: the current jump is integrated over the
  step) or ``after_groups`` (IF_curr_delta: the voltage jump lands after the decay, before the threshold) and take
  the previous step's spikes, so delays are one step shorter; its ``FromListConnector`` loops in Python (minutes for
  100k synapses) and gives duplicate (pre, post) pairs the last weight, so projections connect in one vectorised
  Brian2 call (:func:`from_list`).

Only numpy is imported at module level; PyNN and Brian2 are imported by the functions that need them.
"""

import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np


def load_simulator(name):
    """The PyNN backend module ``pyNN.<name>`` (``spiNNaker``: sPyNNaker)."""
    if name == "spiNNaker":
        import pyNN.spiNNaker as sim  # SpiNNaker through sPyNNaker

        return sim
    return importlib.import_module(f"pyNN.{name}")


def simulator_name(sim):
    """``"spiNNaker"``, ``"brian2"``, ``"nest"``, ... for a ``pyNN.<name>`` module."""
    return sim.__name__.rsplit(".", 1)[-1]


def setup(sim, timestep, brian2_target="numpy"):
    """``sim.setup(timestep=timestep)``; pyNN.brian2: also Brian2's default clock (its SpikeSourceArray runs on it)
    and code generation target (``numpy`` or ``cython``)."""
    sim.setup(timestep=timestep)
    if simulator_name(sim) == "brian2":  # quirk: clock of SpikeSourceArray, code generation target
        import brian2

        brian2.defaultclock.dt = timestep * brian2.ms
        brian2.prefs.codegen.target = brian2_target


def spinnaker_options(sim, neurons_per_core, max_expected_summed_weight):
    """Extra ``Population`` keyword arguments on sPyNNaker: its core size and the weight shift per receptor
    ``s = ceil(log2(max_expected_summed_weight))`` (the shift neurodeploy reported in quantization.json); none
    elsewhere."""
    if simulator_name(sim) != "spiNNaker":
        return {}
    return {"additional_parameters": {"neurons_per_core": neurons_per_core,
                                      "max_expected_summed_weight": list(max_expected_summed_weight)}}


def spike_times(sim, raster, timestep):
    """Per neuron, the times (ms) at which a ``[T, *shape]`` binary raster fires: step column ``t`` at ``t * dt``.

    sPyNNaker and pyNN.brian2 take a list of lists of floats (sPyNNaker does not take pyNN ``Sequence``s; and a
    raster without any spike is ``[]`` there, see below); other backends a list of ``pyNN.parameters.Sequence``."""
    raster = np.asarray(raster)
    steps, neurons = np.nonzero(raster.reshape(raster.shape[0], -1))
    n = int(np.prod(raster.shape[1:], dtype=np.int64))
    order = np.argsort(neurons, kind="stable")  # times stay increasing per neuron
    bounds = np.searchsorted(neurons[order], np.arange(n + 1))
    times = steps[order] * float(timestep)
    trains = [[float(t) for t in times[bounds[i]:bounds[i + 1]]] for i in range(n)]
    if simulator_name(sim) == "spiNNaker" and not steps.size:
        return []  # quirk: sPyNNaker 1!7.4.1's density check fails on a list of empty lists (IndexError)
    if simulator_name(sim) in ("spiNNaker", "brian2"):
        return trains
    from pyNN.parameters import Sequence

    return [Sequence(train) for train in trains]


def from_list(sim, data, label, continuous_gain):
    """The connector of projection ``label``: ``sim.FromListConnector`` over the rows (pre, post, weight, delay) of
    ``data`` (``proj/<label>/pre``, ``post``, ``weight`` [nA; IF_curr_delta: mV], ``delay`` [ms]).

    Weights are multiplied by ``continuous_gain`` off SpiNNaker (see the module docstring); pyNN.brian2 gets a
    vectorised connector with the same synapses, delays one step shorter and the step-order slot."""
    key = f"proj/{label}/"
    pre, post = data[key + "pre"], data[key + "post"]
    weight, delay = data[key + "weight"], data[key + "delay"]
    name = simulator_name(sim)
    if name != "spiNNaker":  # quirk: continuous-time integration
        weight = weight * continuous_gain
    if name == "brian2":  # quirk: vectorised connection, synaptic slot, delay
        return _brian2_connector(pre, post, weight, delay - sim.get_time_step())
    return sim.FromListConnector(np.column_stack([pre, post, weight, delay]), column_names=["weight", "delay"])


def _brian2_connector(pre, post, weight, delay):
    """A PyNN connector that connects all synapses in one vectorised Brian2 call (duplicates stay separate)."""
    import brian2
    from pyNN.connectors import Connector

    class VectorisedConnector(Connector):
        def connect(self, projection):
            delta = type(projection.post.celltype).__name__ == "IF_curr_delta"
            synapses = projection._brian2_synapses[0][0]
            synapses.connect(i=np.asarray(pre, dtype=np.int32), j=np.asarray(post, dtype=np.int32))
            synapses.weight[:] = np.asarray(weight, dtype=np.float64) * (brian2.mV if delta else brian2.nA)
            synapses.delay[:] = np.asarray(delay, dtype=np.float64) * brian2.ms
            # apply step t's spikes during step t + 1, as SpiNNaker does: a current jump before the update integrates
            # it; a voltage jump after the update (Brian2 drops writes to v of a neuron that fired the step before)
            synapses.pre.when = "after_groups" if delta else "before_groups"
            projection._n_connections = len(pre)

    return VectorisedConnector()


def record_fields(label, always, record):
    """The fields population ``label`` records: ``always[label]`` (what the outputs read) and ``record``."""
    return [f for f in ("spikes", "v") if f in always.get(label, ()) or f in record]


def collect(population, fields, steps, timestep, k_per_mv):
    """One sample's recordings of ``population``: ``spikes`` ``[T, n]`` (uint8; index t-1 holds step t) and ``v``
    ``[T, n]`` in the Loihi integer units (mV times ``k_per_mv``; the simulator samples v at the start of a step,
    Loihi reports it after the step, hence the run of T + 1 steps and the shift by one sample). Missing samples
    (a virtual SpiNNaker board records nothing) stay 0 (spikes) and NaN (v)."""
    n = population.size
    sample = {}
    events = _brian2_spike_events(population) if "spikes" in fields else None
    neo_fields = [f for f in fields if f != "spikes" or events is None]
    segment = population.get_data(neo_fields).segments[-1] if neo_fields else None
    if "spikes" in fields:
        if events is None:
            neurons = [np.full(len(train), int(train.annotations["source_index"])) for train in segment.spiketrains]
            times = [np.asarray(train.magnitude, dtype=np.float64) for train in segment.spiketrains]
            events = (np.concatenate(neurons or [np.zeros(0, np.int64)]).astype(np.int64),
                      np.concatenate(times or [np.zeros(0)]))
        neurons, times = events
        index = np.rint(times / timestep).astype(np.int64)
        keep = (index >= 0) & (index < steps)
        spikes = np.zeros((steps, n), np.uint8)
        spikes[index[keep], neurons[keep]] = 1
        sample["spikes"] = spikes
    if "v" in fields:
        signal = segment.filter(name="v")[0]
        values = np.asarray(signal.magnitude, dtype=np.float64)
        notes = signal.array_annotations  # pyNN: channel_index; sPyNNaker: channel_names (neuron indices)
        channels = np.asarray(notes.get("channel_index", notes.get("channel_names", np.arange(values.shape[1]))),
                              dtype=np.int64)
        v = np.full((steps, n), np.nan)
        rows = values[1:steps + 1]  # sample k is the state after step k - 1
        v[:rows.shape[0], channels] = rows * k_per_mv
        sample["v"] = v
    return sample


def _brian2_spike_events(population):
    """(neuron index, time in ms) of every spike ``population`` recorded, read from pyNN.brian2's Brian2
    ``SpikeMonitor``; None on other simulators.

    Quirk (pyNN.brian2): ``get_data`` builds one neo ``SpikeTrain`` per neuron, seconds per sample for networks of
    ~10k neurons (the spike-driven transformer: 5 s of an 18 s sample); the monitor holds the same events that
    pyNN's own ``Recorder._get_spiketimes`` reads (``i`` relative to the population, ``t``)."""
    if not type(population).__module__.startswith("pyNN.brian2"):
        return None
    monitor = getattr(getattr(population, "recorder", None), "_devices", {}).get("spikes")
    if monitor is None:
        raise RuntimeError(f"population {population.label}: pyNN.brian2 has no spike monitor for a recorded "
                           "population (PyNN's recorder changed?)")
    import brian2

    return np.asarray(monitor.i, dtype=np.int64), np.asarray(monitor.t / brian2.ms, dtype=np.float64)


def results(samples, stimulus, nodes, outputs, record):
    """The result arrays from per-sample recordings ``samples`` (a list of {population: {field: [T, n]}}).

    ``nodes``: {node: (shape, [populations in neuron order])}; a node's populations are concatenated in neuron
    order and reshaped to ``[B, T, *shape]``. ``outputs``: {name: (node, field)} (an Output may read an input
    node: the stimulus itself). With a single output it is also stored as ``spikes``; ``<node>/<field>`` for every
    recorded neuron node and field in ``record``."""
    arrays = {}
    for node, (shape, populations) in nodes.items():
        recorded = [p for p in populations if samples and p in samples[0]]
        if not recorded:
            continue
        if len(recorded) != len(populations):
            raise RuntimeError(f"node {node}: some of its populations {populations} were not recorded")
        for f in samples[0][recorded[0]]:  # [B, T, n_block] per population -> [B, T, *shape] in neuron order
            stacked = np.concatenate([np.stack([s[p][f] for s in samples]) for p in populations], axis=2)
            arrays[f"{node}/{f}"] = stacked.reshape(stacked.shape[0], -1, *shape)
    result = {}
    for name, (node, field) in outputs.items():
        if node in stimulus:  # an Output reading an input
            result[name] = np.asarray(stimulus[node]).astype(np.uint8)
        else:
            result[name] = arrays[f"{node}/{field}"]
    if len(result) == 1:
        result["spikes"] = next(iter(result.values()))
    for key, value in arrays.items():
        if key.rsplit("/", 1)[1] in record:
            result[key] = value
    return result


def read_stimulus(path, inputs):
    """{input: [B, T, *shape]} from an ``.npz`` (``spikes`` or one array per input name); exits naming the file,
    the array and the expected shape when it does not fit."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    if len(inputs) == 1:
        name = next(iter(inputs))
        key = "spikes" if "spikes" in arrays else name
        if key not in arrays:
            sys.exit(f"{path}: no array 'spikes' (it holds {sorted(arrays)})")
        arrays = {name: arrays[key]}
    dims = None
    for name, shape in inputs.items():
        if name not in arrays:
            sys.exit(f"{path}: no array for input '{name}' (it holds {sorted(arrays)})")
        x = arrays[name]
        if x.ndim != 2 + len(shape) or list(x.shape[2:]) != list(shape):
            sys.exit(f"{path}: input '{name}' must be shaped [B, T, {', '.join(map(str, shape))}], got {list(x.shape)}")
        if x.size and not np.isin(x, (0, 1)).all():
            sys.exit(f"{path}: input '{name}' holds values other than 0 and 1; encode the stimulus as spikes")
        if dims is not None and x.shape[:2] != dims:
            sys.exit(f"{path}: input '{name}' has batch/time {list(x.shape[:2])}, the others {list(dims)}")
        dims = x.shape[:2]
    return {name: arrays[name] for name in inputs}


def save(path, arrays):
    """Write the result arrays to ``path`` (compressed ``.npz``)."""
    np.savez_compressed(path, **arrays)


def load_data(path):
    """Every array of ``data.npz`` (projections' synapse lists, populations' ``i_offset``)."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


class Timer:
    """Wall-clock seconds per phase (``build``, ``run``, ``read``), summed over samples."""

    def __init__(self):
        self.seconds = {}
        self._phase, self._start = None, None

    def start(self, phase):
        self.stop()
        self._phase, self._start = phase, time.perf_counter()

    def stop(self):
        if self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + time.perf_counter() - self._start
        self._phase = None

    def write(self, path):
        self.stop()
        Path(path).write_text(json.dumps({f"{k}_seconds": v for k, v in self.seconds.items()}) + "\n")
