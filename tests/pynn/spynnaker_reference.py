"""Map emitted PyNN scripts with sPyNNaker's own mapper on a virtual SpiNN-5 board; record what it decided.

Not a test (sPyNNaker is not a dependency): run it by hand in an environment with sPyNNaker 1!7.4.1 installed to
refresh ``tests/pynn/data/spynnaker_reference.json``, which tests/pynn/test_pynn_mapping.py compares against::

    .venv/bin/python tests/pynn/pynn_networks.py /tmp/nets            # emit the hand-checked networks
    HOME=/tmp/vbhome SPY/bin/python tests/pynn/spynnaker_reference.py /tmp/nets tests/pynn/data/spynnaker_reference.json

with ``/tmp/vbhome/.spynnaker.cfg`` holding ``[Machine] virtual_board = True, version = 5``. For SpiNNaker 2
(``tests/pynn/data/spynnaker2_reference.json``): emit with ``pynn_networks.py /tmp/nets2 spinnaker2`` and map with
``version = 248`` in that file. For each network it
builds the network of the emitted ``model.py`` (its ``build``) with ``pyNN.spiNNaker``, runs one step (mapping only,
the board is virtual) and records placements per population, delay-extension cores, ring-buffer shifts, the
synaptic-matrix SDRAM per core and the uncompressed routing entries per chip; then rebuilds it without the script's
``max_expected_summed_weight`` to record the shifts sPyNNaker picks by itself. (tests/spynnaker runs the scripts
themselves, ``python model.py ...`` with a stimulus, on the virtual board in CI.)
"""

import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def load(path):
    spec = importlib.util.spec_from_file_location(f"model_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(directory):
    import pyNN.spiNNaker as sim
    from pacman.data import PacmanDataView

    directory = Path(directory)
    module = load(directory / "model.py")
    nd = module.nd
    data = nd.load_data(directory / "data.npz")
    silent = {name: nd.spike_times(sim, np.zeros((1, *shape), np.uint8), module.TIMESTEP)
              for name, shape in module.INPUTS.items()}
    nd.setup(sim, module.TIMESTEP)
    module.build(sim, data, silent)
    sim.run(1.0)
    cores, chips, kinds = defaultdict(int), defaultdict(set), defaultdict(str)
    synaptic = {}
    shifts = {}
    for placement in PacmanDataView.iterate_placemements():
        vertex = placement.vertex
        app = vertex.app_vertex
        if app is None or app.label is None or app.label.startswith("SYSTEM"):
            continue
        cores[app.label] += 1
        chips[app.label].add((placement.x, placement.y))
        kinds[app.label] = type(app).__name__
        if hasattr(app, "get_synapses_size"):
            synaptic[app.label] = max(synaptic.get(app.label, 0), app.get_synapses_size(vertex.vertex_slice.n_atoms))
        if hasattr(app, "get_ring_buffer_shifts"):
            shifts[app.label] = list(app.get_ring_buffer_shifts())
    tables = PacmanDataView.get_uncompressed()
    entries = {f"{t.x},{t.y}": t.number_of_entries for t in tables.routing_tables}
    used = sorted({xy for c in chips.values() for xy in c})
    sim.end()
    # sPyNNaker's own shifts, without the script's max_expected_summed_weight (every input fires at step 0)
    own = nd.spinnaker_options
    nd.spinnaker_options = lambda sim, neurons_per_core, max_expected_summed_weight: {
        "additional_parameters": {"neurons_per_core": neurons_per_core, "max_expected_summed_weight": None}}
    nd.setup(sim, module.TIMESTEP)
    at_zero = {name: nd.spike_times(sim, np.ones((1, *shape), np.uint8), module.TIMESTEP)
               for name, shape in module.INPUTS.items()}
    try:
        pop = module.build(sim, data, at_zero)
    finally:
        nd.spinnaker_options = own
    default_shifts = {name: list(p._vertex.get_ring_buffer_shifts()) for name, p in pop.items()
                      if hasattr(p._vertex, "get_ring_buffer_shifts")}
    sim.end()
    out = {
        "populations": {label: {"cores": cores[label], "kind": kinds[label],
                                "chips": sorted([list(xy) for xy in chips[label]])} for label in cores},
        "chips": [list(xy) for xy in used],
        "ring_buffer_shifts": shifts,
        "synaptic_matrix_bytes": synaptic,
        "routing_entries": entries,
        "default_ring_buffer_shifts": default_shifts,
    }
    return out


def main():
    nets, target = Path(sys.argv[1]), Path(sys.argv[2])
    results = {}
    for directory in sorted(p.parent for p in nets.glob("*/pynn/model.py")):
        name = directory.parent.name
        results[name] = reference(directory)
        print(name, json.dumps(results[name])[:300])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
