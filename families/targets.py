"""Compile a family's graph for the targets and run it there: helpers shared by the families (LSM, HLOP, SDT).

* :func:`compile_targets` -- ``compile_graph`` per target ("loihi2": the emulator runs that same integer graph,
  since the emulator profile has Loihi 2's arithmetic, so "Lava equals the emulator" is a statement about one graph;
  "spinnaker": quantized for the spinnaker1 profile), with the same calibration stimuli; per target whether it
  compiled and in how many seconds, or (``errors="capture"``) the error that says why it cannot map.
* :func:`run_emulator` -- every output of a graph on the emulator, in batches, and the spikes of chosen nodes.
* :func:`lava_check` -- the Lava backend (Loihi 2 bit-accurate CPU models, through the ``.venv-lava`` worker when
  this interpreter has no lava-nc) on ``x``, compared integer for integer with the emulator: every output and the
  spikes of chosen nodes.
* :func:`pynn_check` -- the emitted PyNN script on pyNN.brian2, with the agreement figures of
  :func:`neurodeploy.backends.pynn.agreement` against the integer emulator for the named populations.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from neurodeploy.compiler import compile_graph
from neurodeploy.emulator import Program
from neurodeploy.errors import InputError, NeurodeployError
from neurodeploy.ir import Graph
from neurodeploy.ir.checks import is_folded
from neurodeploy.passes.fold import fold_linear

AGREEMENT_FIGURES = ("spikes_emulator", "spikes_backend", "count_correlation", "sample_count_correlation",
                     "spike_jaccard", "van_rossum_normalised")


def compile_targets(graph: Graph, calibration: np.ndarray, targets: tuple[str, ...] = ("loihi2", "spinnaker"),
                    errors: str = "raise") -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(artifacts, info)``: per target the artifact and ``info[target] = {"compiled": True, "seconds": s}``
    (compile wall time, rounded to 10 ms).

    ``errors="raise"`` lets a target's :class:`~neurodeploy.errors.NeurodeployError` propagate; ``"capture"``
    reports it instead, ``info[target] = {"compiled": False, "error": "<ErrorType>: <message>"}`` (the message
    names the op and the reason), and that target has no artifact.
    """
    if errors not in ("raise", "capture"):
        raise InputError(f"compile_targets: errors={errors!r} is not a mode", fix="pass errors='raise' or 'capture'")
    artifacts: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    for target in targets:
        start = time.perf_counter()
        try:
            artifacts[target] = compile_graph(graph, target, calibration=calibration)
        except NeurodeployError as err:
            if errors == "raise":
                raise
            info[target] = {"compiled": False, "error": f"{type(err).__name__}: {err}"}
            continue
        info[target] = {"compiled": True, "seconds": round(time.perf_counter() - start, 2)}
    return artifacts, info


def compile_seconds(info: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Compile seconds per compiled target, from :func:`compile_targets`'s ``info``."""
    return {target: i["seconds"] for target, i in info.items() if i["compiled"]}


def run_emulator(graph: Graph, x: np.ndarray, batch: int = 512, nodes: tuple[str, ...] = ()
                 ) -> dict[str, np.ndarray]:
    """Every output of ``graph`` (``[B, T, *shape]``) on the emulator, and ``<node>/spikes`` for ``nodes``. A graph
    that still holds linear ops (a float IR as converted) is folded first, as the compiler does."""
    if not is_folded(graph):
        graph, _ = fold_linear(graph)
    program = Program(graph)
    record = ("spikes",) if nodes else ()
    parts = []
    for i in range(0, x.shape[0], batch):
        res = program.run(x[i:i + batch], record=record, nodes=list(nodes) or None)
        parts.append({**res.outputs, **{f"{n}/spikes": res.recorded[f"{n}/spikes"] for n in nodes}})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def lava_check(artifact, x: np.ndarray, nodes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run stimuli ``x`` (``[B, T, *input_shape]``) on Lava and on the integer emulator; compare every output and
    the spikes of ``nodes`` integer for integer.

    Returns ``equal`` per compared array (output names and ``<node>/spikes``), ``identical`` (all equal), the
    emulator's spike count per ``<node>/spikes`` (``emulator_spikes``: a check on silent nodes is no check), the
    Lava wall time, and both sets of arrays (``arrays``: Lava's, ``emulator``).
    """
    from neurodeploy.backends import lava

    start = time.perf_counter()
    arrays, _ = lava.run(artifact, x, record=("spikes",) if nodes else (), nodes=list(nodes) or None)
    seconds = time.perf_counter() - start
    emu = run_emulator(artifact.graph, x, nodes=nodes)
    equal = {name: bool(np.array_equal(np.asarray(arrays[name]), emu[name])) for name in emu}
    spikes = {f"{n}/spikes": int(emu[f"{n}/spikes"].sum()) for n in nodes}
    return {"samples": int(x.shape[0]), "steps": int(x.shape[1]), "equal": equal, "identical": all(equal.values()),
            "emulator_spikes": spikes, "seconds": seconds, "seconds_per_sample": seconds / max(1, x.shape[0]),
            "arrays": arrays, "emulator": emu}


def pynn_check(artifact, x: np.ndarray, populations: tuple[str, ...]) -> dict[str, Any]:
    """Run ``x`` through the emitted PyNN script on pyNN.brian2 and compare with the integer emulator.

    Returns the PyNN arrays (``arrays``: every output and ``<population>/spikes``), the emulator's (``emulator``)
    and per population the agreement figures named in :data:`AGREEMENT_FIGURES`.
    """
    from neurodeploy.backends import emulator, pynn

    ref, _ = emulator.run(artifact, x, record=("spikes",))
    start = time.perf_counter()
    other, raw = pynn.run(artifact, x, record=("spikes",))
    seconds = time.perf_counter() - start
    report = pynn.agreement(ref, other, artifact)
    agreement = {name: {k: report["populations"].get(name, {}).get(k) for k in AGREEMENT_FIGURES}
                 for name in populations}
    return {"samples": int(x.shape[0]), "seconds": seconds, "build_seconds": raw.get("build_seconds"),
            "agreement": agreement, "outputs": report.get("outputs", {}), "arrays": other, "emulator": ref}
