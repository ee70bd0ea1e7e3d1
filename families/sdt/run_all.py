"""One command: (optionally train,) lower, compile to the emulator / Loihi 2 / SpiNNaker, print a JSON summary.

    .venv/bin/python -m neurodeploy.families.sdt.run_all [--attention v1|v2|both] [--train] [--pynn-digits N]
        [--out FILE.json]

Steps, per attention form:

1. The model: shipped weights ``examples/sdt_digits/sdt_<form>.pt`` (+ ``.json`` config), or ``--train`` (CPU,
   minutes; writes those files). Accuracy of the torch model (float64) on the 360 test digits.
2. Lowering to the float IR (:mod:`.lower`); accuracy of the float IR on the emulator (float64) and whether its
   predictions equal torch's; pipeline latency in steps.
3. ``compile_graph`` for ``loihi2`` (calibration: the first training digits); that integer graph on the emulator:
   quantized accuracy and the difference to float (the bound is 1 point).
4. Lava (Loihi 2 bit-accurate CPU models, via the ``.venv-lava`` worker) on a few test digits: readout v at every
   step and the spikes of the last attention output compared integer for integer with the emulator.
5. ``spinnaker``: compiled where mappable (with its SpiNNaker mapping report), else the compile error.
6. Resources (neurons, synapses, Loihi 2 cores, chips) per model part with the attention share; energy from
   neurodeploy's report (every bundled hardware profile, and the literature convention 4.6 pJ FLOPs(first layer) +
   0.9 pJ SOPs) on a few test digits.
7. ``--pynn-digits N``: the SpiNNaker artifact written to disk and run as ``neurodeploy run DIR --backend pynn``
   runs it (``pynn/model.py`` on pyNN.brian2 in a child process, a fresh network per digit) on the first N test
   digits: the fraction with the same decision as the integer emulator on that artifact, both accuracies, the head
   LIF's spike-count correlation (and every LIF's agreement figures), seconds per digit; the SpiNNaker mapping
   (cores, chips, boards) of the script that ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "sdt_digits"


def weights_path(form: str, directory: Path = EXAMPLE_DIR) -> Path:
    return directory / f"sdt_{form}.pt"


def run_form(form: str, args: argparse.Namespace, log) -> dict[str, Any]:
    import torch

    from neurodeploy.families import targets as shared
    from neurodeploy.families.sdt import deploy
    from neurodeploy.families.sdt.lower import lower
    from neurodeploy.families.sdt.model import SDTConfig, encode, load, n_parameters, save
    from neurodeploy.families.sdt.train import accuracy as torch_accuracy
    from neurodeploy.families.sdt.train import load_digits_split, train

    path = weights_path(form, args.weights_dir)
    summary: dict[str, Any] = {"attention": form, "weights": str(path)}
    if args.train:
        log(f"[{form}] training ({args.epochs} epochs)")
        model32, figures = train(SDTConfig(attention=form), epochs=args.epochs, seed=args.seed, log=log)
        save(model32, path, {"training": figures})
        summary["training"] = figures
    model = load(path)
    cfg = model.cfg
    data = load_digits_split()
    summary["config"] = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    summary["parameters"] = n_parameters(model)
    summary["encoding"] = f"thermometer, {cfg.levels} binary channels per pixel, static over T = {cfg.steps} steps"
    x_test = encode(data.x_test, cfg.steps, cfg.levels)
    acc: dict[str, Any] = {"test_samples": int(len(data.y_test))}
    acc["torch_float64"] = torch_accuracy(model, data.x_test, data.y_test)

    start = time.perf_counter()
    lowered = lower(model)
    fl = deploy.float_logits(lowered, x_test)
    with torch.no_grad():
        from neurodeploy.families.sdt.model import to_torch

        ref = model(to_torch(x_test, torch.float64)).numpy()
    acc["float_ir"] = deploy.accuracy(fl, data.y_test)
    acc["float_ir_predictions_equal_torch"] = bool(np.array_equal(fl.argmax(1), ref.argmax(1)))
    acc["float_ir_logits_max_abs_diff"] = float(np.max(np.abs(fl - ref)))
    summary["latency_steps"] = {"readout": lowered.readout_latency,
                                "per_lif": {k: lowered.latency[v] for k, v in lowered.lif_nodes.items()},
                                "run_steps_per_inference": lowered.run_steps}
    log(f"[{form}] float IR accuracy {acc['float_ir']:.4f} ({time.perf_counter() - start:.0f} s)")

    calibration = encode(data.x_train[:args.calibration], cfg.steps, cfg.levels)
    targets = ("loihi2",) if args.no_spinnaker else ("loihi2", "spinnaker")
    artifacts, compile_info = shared.compile_targets(lowered.graph, lowered.stimulus(calibration), targets,
                                                     errors="capture")
    summary["compile"] = compile_info
    loihi = artifacts.get("loihi2")
    if loihi is None:
        summary["accuracy"] = acc
        return summary
    il = deploy.int_logits(loihi, lowered, x_test)
    acc["quantized_emulator"] = deploy.accuracy(il, data.y_test)
    acc["quantized_minus_float_points"] = round(100 * (acc["quantized_emulator"] - acc["float_ir"]), 3)
    acc["within_1_point"] = abs(acc["quantized_minus_float_points"]) <= 1.0
    summary["accuracy"] = acc
    log(f"[{form}] quantized accuracy {acc['quantized_emulator']:.4f}")

    if args.lava_samples > 0:
        last = list(lowered.attention.values())[-1].spikes
        res = shared.lava_check(loihi, lowered.stimulus(x_test[:args.lava_samples]), nodes=(last,))
        lava = {k: res[k] for k in ("samples", "steps", "equal", "identical", "emulator_spikes")}
        lava["seconds"] = round(res["seconds"], 1)
        summary["lava"] = lava
        log(f"[{form}] Lava equals the emulator: {lava['identical']} ({lava['seconds']} s)")

    mapping = loihi.manifest.get("mapping")
    summary["resources_loihi2"] = deploy.costs(loihi.graph, lowered, mapping)
    if "spinnaker" in artifacts:
        from neurodeploy.backends import pynn
        from neurodeploy.errors import NeurodeployError

        try:
            report = pynn.mapping_report(artifacts["spinnaker"])
            keys = ("neuron_cores", "spike_source_cores", "delay_extension_cores", "application_cores", "chips",
                    "boards")
            summary["resources_spinnaker"] = {k: report.get(k) for k in keys}
        except NeurodeployError as err:  # reported, not hidden: the summary states why there is no mapping
            summary["resources_spinnaker"] = {"error": f"{type(err).__name__}: {err}"}
    if args.energy_samples > 0:
        summary["energy"] = deploy.energy(loihi, lowered, x_test[:args.energy_samples])
    if args.pynn_digits > 0:
        summary["spinnaker_run"] = run_on_pynn(artifacts, compile_info, lowered, x_test, data.y_test, args, log, form)
    return summary


def run_on_pynn(artifacts: dict[str, Any], compile_info: dict[str, Any], lowered, x_test: np.ndarray,
                y_test: np.ndarray, args: argparse.Namespace, log, form: str) -> dict[str, Any]:
    """Stage 7: the SpiNNaker artifact written to disk and run as ``neurodeploy run DIR --backend pynn`` runs it
    (its ``pynn/model.py`` on pyNN.brian2 in a child process, one fresh network per digit) on the first
    ``--pynn-digits`` test digits, against the integer emulator on the same artifact."""
    import tempfile

    from neurodeploy.artifact import load_artifact
    from neurodeploy.compiler import write_artifact
    from neurodeploy.errors import BackendError
    from neurodeploy.families.sdt import deploy

    if "spinnaker" not in artifacts:
        raise BackendError(f"--pynn-digits {args.pynn_digits}: the {form} model did not compile for spinnaker "
                           f"({compile_info.get('spinnaker', {}).get('error', 'not compiled: --no-spinnaker')})",
                           fix="drop --no-spinnaker, or --pynn-digits 0")
    n = min(args.pynn_digits, x_test.shape[0])
    spinnaker = artifacts["spinnaker"]
    result: dict[str, Any] = {"simulator": "pyNN.brian2 (numpy target, dt = 1 ms), via neurodeploy.backends.pynn.run",
                              "test_digits": f"the first {n} of {x_test.shape[0]} test digits"}
    # the emulator's decision on this (spinnaker-profile) artifact over all test digits, for the record
    result["emulator_accuracy_all_test_digits"] = deploy.accuracy(deploy.int_logits(spinnaker, lowered, x_test),
                                                                  y_test)
    with tempfile.TemporaryDirectory(prefix=f"sdt-{form}-spinnaker-") as tmp:
        start = time.perf_counter()
        loaded = load_artifact(write_artifact(spinnaker, Path(tmp) / "artifact"))
        result["write_seconds"] = round(time.perf_counter() - start, 1)
        mapping = json.loads((Path(loaded.path) / "pynn" / "mapping.json").read_text())
        result["mapping"] = {k: mapping[k] for k in ("application_cores", "chips", "boards")}
        log(f"[{form}] pyNN.brian2 on {n} test digits")
        result.update(deploy.pynn_decisions(loaded, lowered, x_test[:n], y_test[:n], chunk=args.pynn_chunk,
                                            log=lambda m: log(f"[{form}] {m}")))
    log(f"[{form}] pyNN.brian2: same decision as the emulator on {result['same_decision']:.4f} of {n} digits, "
        f"{result['seconds_per_digit']} s per digit")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Spike-driven transformer on digits: train, lower, compile, check.")
    p.add_argument("--attention", choices=("v1", "v2", "both"), default="both")
    p.add_argument("--train", action="store_true", help="retrain instead of loading the shipped weights")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights-dir", type=Path, default=EXAMPLE_DIR)
    p.add_argument("--calibration", type=int, default=32, help="training digits used to calibrate the quantizer")
    p.add_argument("--lava-samples", type=int, default=4, help="test digits run on Lava (0: skip)")
    p.add_argument("--energy-samples", type=int, default=32, help="test digits for the energy report (0: skip)")
    p.add_argument("--no-spinnaker", action="store_true")
    p.add_argument("--pynn-digits", type=int, default=0,
                   help="run the SpiNNaker artifact on pyNN.brian2 on the first N test digits (0: skip; ~5-15 s "
                        "per digit for v1 on a busy 2-core machine)")
    p.add_argument("--pynn-chunk", type=int, default=20, help="digits per pyNN.brian2 child process")
    p.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    forms = ("v1", "v2") if args.attention == "both" else (args.attention,)
    start = time.perf_counter()
    summary = {"family": "spike-driven transformer (issue 6)", "task": "load_digits 8x8, 80/20 split (seed 0)",
               "forms": {form: run_form(form, args, log) for form in forms}}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(summary, indent=2, default=float)
    if args.out:
        from neurodeploy.fileio import write_bytes_atomic

        write_bytes_atomic(args.out, (text + "\n").encode())
    print(text)
    ok = all(f.get("accuracy", {}).get("within_1_point", False) for f in summary["forms"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
