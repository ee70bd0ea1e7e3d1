"""Reports on compiled models: operation counts, NeuroBench metrics, energy and time per hardware profile.

``neurodeploy report energy DIR --input IN.npz`` runs the stimulus on the emulator and writes JSON, a
self-contained HTML page and a terminal summary. The pieces, each with its formulas in its docstring:

* :mod:`.counts`  -- per node and per core counts from an emulator run, NeuroBench's metric names;
* :mod:`.cores`   -- the core mapping of each profile (Loihi partition pass, SpiNNaker mapping report);
* :mod:`.figures` -- sourced figures, units and the measured/simulated/estimate/proxy flag, time per step;
* :mod:`.energy`  -- energy per profile by node and operation type, the 45 nm ANN and literature references;
* :mod:`.report`  -- the report dict and its files; :mod:`.text`, :mod:`.html`, :mod:`.svg` render it.
"""

from .counts import RunCounts, count_run, neurobench, node_counts
from .report import default_profiles, energy_report, load_profile_run, write_report

__all__ = ["RunCounts", "count_run", "node_counts", "neurobench", "energy_report", "default_profiles",
           "load_profile_run", "write_report"]
