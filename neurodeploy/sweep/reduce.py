"""Reduce the task results into one row per grid point.

Per point, from the decoded outputs of its shards (concatenated in shard order) and those of its model's float
graph on the same shards:

* decisions: ``readout = "argmax"``: ``argmax_k`` of the decoded output (first index on ties); ``readout =
  "logistic"``: a host readout (:func:`neurodeploy.families.lsm.readout.fit`) trained on the decoded outputs of the
  training data *of the same graph* (float readout on float states, quantized readout on quantized states, as a
  deployed readout is retrained) and applied to the test data;
* ``float_accuracy``, ``quantized_accuracy``: the fraction of test samples whose decision is the label;
  ``agreement``: the fraction whose float and quantized decisions are equal;
* ``energy_per_inference_J``: the shards' dynamic energies on the energy profile summed in shard order, divided by
  the test samples; ``synaptic_ops_per_inference`` likewise;
* ``cores``/``chips``: the energy profile's core mapping; ``compile_s``/``run_s``: wall times (the only columns that
  differ between runs, see :data:`TIME_COLUMNS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .grid import GridPoint

COLUMNS = ("point", "model", "target", "weight_bits", "quantize_method", "calibration_size", "population_size",
           "chips_system", "status", "error_type", "error", "samples", "float_accuracy", "quantized_accuracy",
           "agreement", "energy_profile", "energy_per_inference_J", "synaptic_ops_per_inference", "cores", "chips",
           "neurons", "latency_steps", "warnings", "compile_s", "run_s")
#: Wall-time columns: everything else is identical between a serial and a Ray run, whatever the workers.
TIME_COLUMNS = ("compile_s", "run_s")


def decisions(features: dict[str, np.ndarray], labels_train: np.ndarray | None, readout: str, alpha: float
              ) -> np.ndarray:
    """Test decisions from decoded outputs (``features["test"]``, and ``["train"]`` for a logistic readout)."""
    if readout == "argmax":
        return np.argmax(features["test"], axis=1)
    from neurodeploy.families.lsm.readout import fit

    model = fit(features["train"], labels_train, "logistic", alpha)
    return model.predict(features["test"])


def point_row(point: GridPoint, compiled: dict[str, Any], float_dec: np.ndarray, quant: dict[str, list[dict]],
              labels: np.ndarray, labels_train: np.ndarray | None, readout: str, alpha: float) -> dict[str, Any]:
    """The row of one grid point (see the module docstring); ``quant[split]``: its shard results in order."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(point=point.label, model=point.model, target=point.target, weight_bits=point.weight_bits,
               quantize_method=point.method, calibration_size=point.calibration_size,
               population_size=point.population_size, chips_system=point.chips, samples=int(labels.size),
               float_accuracy=float(np.mean(float_dec == labels)), compile_s=compiled["compile_s"])
    if not compiled["ok"]:
        row.update(status="error", error_type=compiled["error_type"], error=compiled["error"])
        return row
    feats = {split: np.concatenate([r["features"] for r in shards]) for split, shards in quant.items()}
    dec = decisions(feats, labels_train, readout, alpha)
    test = quant["test"]
    energy = None
    if all(r["energy_J"] is not None for r in test):
        total = 0.0
        for r in test:
            total += r["energy_J"]
        energy = total / labels.size
    row.update(status="ok", quantized_accuracy=float(np.mean(dec == labels)),
               agreement=float(np.mean(dec == float_dec)),
               energy_profile=compiled["energy_profile"], energy_per_inference_J=energy,
               synaptic_ops_per_inference=sum(r["synaptic_ops"] for r in test) / labels.size,
               cores=compiled["cores"], chips=compiled["chips"], neurons=compiled["neurons"],
               latency_steps=compiled["latency_steps"], weight_bits=compiled["num_weight_bits"],
               warnings=len(compiled["warnings"]),
               run_s=sum(r["run_s"] for shards in quant.values() for r in shards))
    if compiled["mapping_error"]:
        row["error"] = f"core mapping on {compiled['energy_profile']}: {compiled['mapping_error']}"
    return row
