"""Design-space sweeps on Ray (issue 19): ``neurodeploy sweep SWEEP.toml --out DIR``.

A sweep file names models, evaluation data and axes (:mod:`.spec`); every grid point (:mod:`.grid`) is compiled
once and evaluated on the data in fixed shards (:mod:`.tasks`), serially or as Ray tasks (:mod:`.executor`), each
task cached by content hash (:mod:`.cache`); the results are reduced into one row per point (:mod:`.reduce`,
:mod:`.run`) and written as JSON, CSV and an HTML page with Pareto fronts (:mod:`.results`, :mod:`.html`).
Ray is imported only when a sweep runs on it.
"""

from .run import run_sweep
from .spec import load_spec

__all__ = ["run_sweep", "load_spec"]
