"""Pass manager: run a named list of passes, verify the graph after each, time them, optionally dump the IR.

A pass is a callable ``graph -> (graph, changed)``. Errors raised inside a pass are re-raised as the same
:class:`~neurodeploy.errors.NeurodeployError` subclass with the pass name prefixed, so a user sees which stage of
compilation rejected the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from neurodeploy.errors import NeurodeployError, PassError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import save_graph

PassFn = Callable[[Graph], tuple[Graph, bool]]


@dataclass
class PassRecord:
    """What one pass did: its name, whether it changed the graph, its wall time in seconds."""

    name: str
    changed: bool
    seconds: float


@dataclass
class PassManager:
    """Runs ``passes`` (``(name, fn)`` pairs) in order; ``dump_dir`` receives ``NN_<name>.ndg`` after each pass."""

    passes: Sequence[tuple[str, PassFn]]
    dump_dir: str | Path | None = None
    records: list[PassRecord] = field(default_factory=list)

    def run(self, graph: Graph) -> Graph:
        graph.validate()
        for index, (name, fn) in enumerate(self.passes):
            start = time.perf_counter()
            try:
                graph, changed = fn(graph)
                graph.validate()
            except NeurodeployError as err:
                wrapped = type(err)(f"pass '{name}': {err}")
                wrapped.node = err.node
                raise wrapped from None
            except Exception as err:  # a bug inside a pass: still say which pass
                raise PassError(f"pass '{name}' failed unexpectedly: {type(err).__name__}: {err}",
                                fix="report this as a neurodeploy bug with the model that triggers it") from err
            self.records.append(PassRecord(name, changed, time.perf_counter() - start))
            if self.dump_dir is not None:
                save_graph(graph, Path(self.dump_dir) / f"{index:02d}_{name}.ndg")
        return graph
