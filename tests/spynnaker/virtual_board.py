"""Run an emitted ``pynn/model.py`` exactly as a user does, inside the sPyNNaker interpreter, and record what
sPyNNaker placed. Not a test module: ``test_virtual_board.py`` starts it with ``.venv-spynnaker/bin/python``::

    python virtual_board.py MODEL_DIR REPORT.json -- --input stim.npz --output result.npz [model.py options]

The script runs as ``__main__`` with those arguments (its default simulator, ``pyNN.spiNNaker``), with HOME
pointing at a folder whose ``.spynnaker.cfg`` says ``[Machine] virtual_board = True``. Before each of the script's
``sim.end()`` calls (one per sample) this records, from sPyNNaker's own data (``PacmanDataView``): per application
vertex label the number of cores placed and the vertex class, and per ``SpikeSourceArray`` the number of spike
times it will send. REPORT.json receives the list of these records, one per sample.
"""

import json
import runpy
import sys
from collections import defaultdict
from pathlib import Path


def placements():
    """{"cores": {label: cores}, "kinds": {label: vertex class}, "spikes": {label: spike times}}."""
    from pacman.data import PacmanDataView

    cores, kinds, spikes = defaultdict(int), {}, {}
    for placement in PacmanDataView.iterate_placemements():
        app = placement.vertex.app_vertex
        if app is None or app.label is None or app.label.startswith("SYSTEM"):
            continue
        cores[app.label] += 1
        kinds[app.label] = type(app).__name__
        if kinds[app.label] == "SpikeSourceArrayVertex":
            spikes[app.label] = int(sum(len(times) for times in app.send_buffer_times))
    return {"cores": dict(cores), "kinds": kinds, "spikes": spikes}


def main():
    model_dir, report = Path(sys.argv[1]), Path(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1:]
    import pyNN.spiNNaker as sim

    runs = []
    real_end = sim.end

    def end(*a, **k):
        runs.append(placements())
        return real_end(*a, **k)

    sim.end = end
    script = model_dir / "model.py"
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")
    report.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
