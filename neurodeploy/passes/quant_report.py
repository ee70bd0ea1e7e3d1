"""Quantize, step 4: the JSON-able report (fields listed under "Report" in :mod:`neurodeploy.passes.quantize`).

* :func:`population_entry`: a neuron's entry -- its op's statistics (:func:`~neurodeploy.passes.quant_ops.
  quantize_neuron`), ``saturated.u_wrap`` / ``saturated.v``: bins ``(sample, step, neuron)`` of the float run with
  ``64 lam |x| > 2**23 - 1`` (the 24-bit state would wrap / saturate), ``search_neurons``, ``scale_bounds`` (None
  for an infinite bound), ``binding_bound``, ``candidates`` (every trial) and ``agreement.teacher_forced``;
* :func:`add_network_agreement`: ``agreement.network`` of every neuron: the integer run of the whole quantized
  graph against the float run on the same stimuli (:func:`~neurodeploy.passes.quant_calibration.spike_agreement`;
  ``v_error``: RMS relative error of ``v_int / (64 lam)``);
* :func:`pass_report`: the top-level entries around ``nodes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from neurodeploy.passes import quant_calibration as cal
from neurodeploy.passes.quant_prepare import Population
from neurodeploy.passes.quant_search import Choice
from neurodeploy.profiles import Profile


def population_entry(pop: Population, choice: Choice, rec: Mapping[str, np.ndarray], profile: Profile) -> dict:
    """The report entry of neuron ``pop`` after its search (see the module docstring)."""
    best, state_max = choice.best, profile.arithmetic.state_max
    n_stats = best.n_stats
    u, v = rec[f"{pop.name}/u"], rec[f"{pop.name}/v"]
    n_stats["saturated"].update({"u_wrap": int(np.count_nonzero(64.0 * best.lam * np.abs(u) > state_max)),
                                 "v": int(np.count_nonzero(64.0 * best.lam * np.abs(v) > state_max))})
    n_stats["search_neurons"] = {"sampled": None if choice.sample is None else int(choice.sample.size),
                                 "neurons": int(math.prod(pop.shape))}
    n_stats.update({"scale_bounds": {k: (b if math.isfinite(b) else None) for k, b in choice.bounds.items()},
                    "binding_bound": choice.binding, "candidates": choice.tried,
                    "agreement": {"teacher_forced": best.agreement}})
    return n_stats


def add_network_agreement(node_reports: Mapping[str, dict], rec: Mapping[str, np.ndarray],
                          final: Mapping[str, np.ndarray]) -> None:
    """Add ``agreement.network`` to every neuron entry: ``final`` (the integer run's ``<node>/spikes`` and
    ``<node>/v``) against the float run ``rec``."""
    for name, n_stats in node_reports.items():
        if "agreement" not in n_stats:
            continue
        batch, steps = rec[f"{name}/spikes"].shape[:2]
        s_int = np.asarray(final[f"{name}/spikes"]).reshape(batch, steps, -1)
        network = cal.spike_agreement(rec[f"{name}/spikes"], s_int)
        v_int = np.asarray(final[f"{name}/v"]).reshape(batch, steps, -1)
        network["v_error"] = cal.trace_error(v_int / (64.0 * n_stats["scale"]), rec[f"{name}/v"])
        n_stats["agreement"]["network"] = network


def pass_report(profile: Profile, method: str, bits: int, options: Mapping[str, Any], calibration: dict,
                node_reports: dict[str, dict], warnings: list[str]) -> dict[str, Any]:
    """The whole report: settings, calibration, per-node entries, warnings."""
    return {"profile": profile.name, "method": method, "num_weight_bits": bits, "residual": options["residual"],
            "exact_threshold": bool(options["exact_threshold"]), "bias_correction": bool(options["bias_correction"]),
            "state_headroom": options["state_headroom"],
            "min_weight_bits": options["min_weight_bits"], "calibration": calibration, "nodes": node_reports,
            "warnings": warnings}


def skipped(profile: Profile, why: str) -> dict[str, Any]:
    """The report of a run that changed nothing."""
    return {"profile": profile.name, "skipped": why}
