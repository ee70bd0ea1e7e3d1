"""The PyNN backend: SpiNNaker through a standalone PyNN script (sPyNNaker), runnable locally on pyNN.brian2.

* :func:`emit` (compiler hook): ``out_dir/pynn/`` with ``model.py`` (the network as PyNN code, :mod:`.codegen`;
  imports ``pyNN.spiNNaker``, ``--simulator brian2`` runs it locally; runs unchanged on sPyNNaker 1!7.4.1),
  ``nd_support.py`` (files and simulator workarounds, :mod:`.nd_support`), ``data.npz``, ``params.json``,
  ``quantization.json`` and ``mapping.json``; option
  ``population_size=N`` (``neurodeploy compile --target spinnaker --population-size N``) builds nodes larger than
  N neurons as several PyNN populations, as sPyNNaker needs for large populations (mapping.json describes that
  script; its ``pynn`` entry counts the populations and projections);
* :func:`run` (``neurodeploy run DIR --backend pynn``): the emitted script on pyNN.brian2 in a child process,
  emulator ``.npz`` contract;
* :func:`mapping_report` / :func:`quantization_report`: the SpiNNaker mapping and 16-bit weight reports;
* :func:`agreement` (used by ``neurodeploy profile``) and :func:`compare_with_emulator`.

Nothing here imports pyNN or brian2 until a run needs it. The maths: :mod:`.neurons` (parameter conversion),
:mod:`.weights` (16-bit weights, delays), :mod:`.mapping` (cores, chips, SDRAM, routing); docs/spinnaker.md.
"""

from __future__ import annotations

from typing import Any

from .agreement import agreement, compare_with_emulator
from .emit import Deployment, deploy, emit
from .runner import run


def mapping_report(artifact, **options: Any) -> dict[str, Any]:
    """The mapping report (what ``pynn/mapping.json`` holds) for an artifact or quantized graph."""
    return deploy(artifact, **options).mapping


def quantization_report(artifact, **options: Any) -> dict[str, Any]:
    """The SpiNNaker quantization report (``pynn/quantization.json``): 16-bit weights, delays, s16.15 rounding."""
    return deploy(artifact, **options).quantization


__all__ = ["emit", "run", "deploy", "Deployment", "mapping_report", "quantization_report", "agreement",
           "compare_with_emulator"]
