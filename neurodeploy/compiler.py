"""Compile a float IR graph for a target: fold, quantize, check limits, emit backend files.

The pipeline is a :class:`~neurodeploy.passes.manager.PassManager` run; backends never quantize. This is the
application layer: it may import passes and the emulator alike, and it is where the quantize pass receives its
simulator (:class:`EmulatorSimulator`, the bit-exact emulator behind :mod:`neurodeploy.passes.simulator`'s
interface; :func:`quantize_graph` runs the pass with it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from neurodeploy.artifact import Artifact, base_manifest, is_artifact_dir, seal, write_artifact_files
from neurodeploy.fileio import atomic_directory, check_output_dir
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.timing import output_latency
from neurodeploy.passes.fold import fold_linear
from neurodeploy.passes.manager import PassManager
from neurodeploy.registry import get_backend, get_target

latency_steps = output_latency  # per Output: see neurodeploy.ir.timing


class _EmulatorRun:
    """A graph prepared on the emulator (:class:`~neurodeploy.passes.simulator.PreparedRun`)."""

    def __init__(self, graph: Graph, arithmetic: str, engine: str):
        self.graph, self.arithmetic, self.engine = graph, arithmetic, engine
        self._program = None

    def update(self, ops) -> None:
        self.graph = self.graph.with_nodes({**self.graph.nodes, **ops})
        self._program = None  # the emulator prepares the updated graph anew (no partial update)

    def run(self, spikes, record=(), nodes=None):
        from neurodeploy.emulator.engine import Program

        if self._program is None:
            self._program = Program(self.graph, self.arithmetic)
        return self._program.run(spikes, record=record, nodes=nodes, engine=self.engine).recorded


class EmulatorSimulator:
    """The emulator (:mod:`neurodeploy.emulator.engine`) as the quantize pass's
    :class:`~neurodeploy.passes.simulator.Simulator`; ``engine`` as for :meth:`Program.run` (default auto)."""

    def __init__(self, engine: str = "auto"):
        self.engine = engine

    def prepare(self, graph: Graph, arithmetic: str) -> _EmulatorRun:
        return _EmulatorRun(graph, arithmetic, self.engine)


def quantize_graph(graph: Graph, profile, calibration=None, *, report: dict | None = None,
                   **options) -> tuple[Graph, bool]:
    """:func:`neurodeploy.passes.quantize.quantize` on the emulator: ``(graph, changed)``; ``report`` (a dict), if
    given, receives the pass report. ``options`` are the pass's (``method``, ``num_weight_bits``, ...)."""
    from neurodeploy.passes.quantize import quantize

    return quantize(graph, profile, calibration, simulator=EmulatorSimulator(), report=report, **options)


def compile_graph(graph: Graph, target: str = "emulator", calibration: np.ndarray | None = None,
                  dump_dir: str | Path | None = None, chips: int | None = None,
                  quantize_options: dict | None = None) -> Artifact:
    """Run the compile passes for ``target`` on a float (or already quantized) graph; return the artifact.

    ``chips`` is the size of the target system in chips (default: the profile's ``limits.chips``, for Loihi 2 the
    largest built system). The chips a network needs are a result: the partition pass reports them in
    ``manifest["mapping"]["chips"]`` next to ``system_chips``; only a network larger than the system is rejected
    (:class:`~neurodeploy.errors.CapacityError`, from check_limits' lower bound or the partition's count).
    ``quantize_options`` go to the quantize pass (:func:`neurodeploy.passes.quantize.quantize`: ``method``,
    ``num_weight_bits``, ``calibration_batch``, ...).
    """
    from neurodeploy.errors import CapacityError, InputError, QuantizationWarning
    from neurodeploy.passes.diagnose import diagnose
    from neurodeploy.passes.diagnose import render as render_findings
    from neurodeploy.passes.limits import check_limits
    from neurodeploy.passes.partition import partition
    from neurodeploy.passes.quantize import QuantizePass
    from neurodeploy.profiles import load_profile

    spec = get_target(target)
    profile = load_profile(spec.profile)
    quantize_pass = QuantizePass(profile, EmulatorSimulator(), calibration, **(quantize_options or {}))
    if chips is not None and (int(chips) != chips or chips < 1):
        raise InputError(f"chips = {chips} is not a positive number of chips", fix="give the system size in chips")
    system = None if profile.limits is None else int(profile.limits.chips if chips is None else chips)
    passes = [("fold", fold_linear), ("quantize", quantize_pass),
              ("check_limits", lambda g: check_limits(g, profile, max_chips=system))]
    if spec.neurocores and profile.limits is not None:
        limits = profile.limits.core_limits()

        def partition_on_system(g: Graph):
            g, changed = partition(g, limits)
            mapping = g.meta["mapping"]
            mapping["system_chips"] = system
            if mapping["chips"] > system:
                per_node: dict[str, int] = {}
                for core in mapping["per_core"]:
                    per_node[core["node"]] = per_node.get(core["node"], 0) + 1
                biggest = max(per_node, key=per_node.get)
                raise CapacityError(f"the network needs {mapping['cores']} cores on {mapping['chips']} "
                                    f"{profile.name} chips but the system has {system}", node=biggest,
                                    fix="compile for a larger system (compile_graph(..., chips=N)) or shrink the "
                                        "network")
            return g, changed

        passes.append(("partition", partition_on_system))
    manager = PassManager(passes, dump_dir=dump_dir)
    compiled = manager.run(graph)
    findings = diagnose(quantize_pass.report, profile.arithmetic.vth_max)
    if quantize_pass.report.get("nodes"):
        quantize_pass.report["degenerate"] = findings
    for line in render_findings(findings):
        warnings.warn(QuantizationWarning(line), stacklevel=2)
    manifest = base_manifest(compiled, target, spec.profile)
    manifest["latency_steps"] = latency_steps(compiled)
    # no wall-clock times: identical inputs give byte-identical artifacts (times: PassManager.records)
    manifest["passes"] = [{"name": r.name, "changed": r.changed} for r in manager.records]
    manifest["backend"] = spec.backend
    manifest["source"] = dict(graph.meta)
    if "mapping" in compiled.meta:
        manifest["mapping"] = compiled.meta["mapping"]
    quantized_here = bool(quantize_pass.report.get("nodes"))
    return Artifact(compiled, manifest, quantize_pass.report, float_graph=graph if quantized_here else None)


def _replace_rule(force: bool) -> tuple:
    return ((lambda _path: True) if force else is_artifact_dir,
            "choose a new --out directory, or pass --force to replace it and everything in it")


def check_artifact_dir(out_dir: str | Path, force: bool = False) -> None:
    """Raise :class:`~neurodeploy.errors.OutputError` now if :func:`write_artifact` would refuse ``out_dir``."""
    check_output_dir(out_dir, *_replace_rule(force))


def write_artifact(artifact: Artifact, out_dir: str | Path, backend_options: dict | None = None,
                   force: bool = False) -> Path:
    """Write ``artifact`` and its backend's files to ``out_dir`` atomically; return the path.

    ``backend_options`` go to the backend's ``emit`` (e.g. ``{"population_size": 10240}`` for spinnaker) and are
    recorded in ``manifest["backend_options"]``. An existing ``out_dir`` is replaced only when it is itself an
    artifact (it holds a neurodeploy manifest) or ``force`` is true; a symbolic link or a file is never replaced.
    The manifest, written last, records the sha256 of every other file (:func:`neurodeploy.artifact.seal`).
    """
    from neurodeploy.errors import InputError

    backend = get_backend(artifact.manifest["backend"])
    emit = getattr(backend, "emit", None)
    options = dict(backend_options or {})
    if options:
        import inspect

        params = inspect.signature(emit).parameters if emit is not None else {}
        takes = any(p.kind is p.VAR_KEYWORD for p in params.values()) or set(options) <= set(params)
        if not takes:
            raise InputError(f"backend options {sorted(options)} given, but the {artifact.manifest['backend']} "
                             "backend does not take them", fix="leave them out for this target (population_size "
                                                               "is a spinnaker option)")
        artifact.manifest["backend_options"] = options
    with atomic_directory(out_dir, *_replace_rule(force)) as tmp:
        write_artifact_files(artifact, tmp)
        if emit is not None:
            extra = emit(artifact, tmp, **options)
            if extra:
                artifact.manifest.setdefault("backend_files", extra)
        seal(artifact, tmp)
    artifact.path = Path(out_dir)
    return artifact.path
