"""Lava backend: quantized IR graph -> plain Lava description -> Loihi 2 bit-accurate CPU simulation.

* :mod:`.describe` -- :func:`describe` builds a JSON + NPZ serialisable description (no lava needed);
* :mod:`.rebuild` -- turns a description into Lava processes; imports only numpy, scipy and lava (copyable);
* :mod:`.run` -- :func:`run_description` / :func:`run_graph` run it with ``Loihi2SimCfg(select_tag="fixed_pt")``;
* :mod:`.backend` -- the registry interface: ``emit(artifact, out_dir)`` and ``run(artifact, spikes, record)``
  (in-process, or through :mod:`.worker` under a Lava Python when this interpreter has no lava-nc).

Note: the package attribute ``run`` is the registry function, not the :mod:`.run` module; import from the module
with ``from neurodeploy.backends.lava.run import run_description``.

Lava itself is imported lazily, so describing and saving work in an environment without lava-nc.
"""

from neurodeploy.backends.lava import backend as _backend
from neurodeploy.backends.lava.describe import describe, load_description, save_description
from neurodeploy.backends.lava.run import run_description, run_graph

emit = _backend.emit
run = _backend.run  # the registry function; deliberately shadows the submodule attribute set by the import above

__all__ = ["describe", "save_description", "load_description", "run_description", "run_graph", "emit", "run"]
