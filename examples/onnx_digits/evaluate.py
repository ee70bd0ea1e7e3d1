"""ANN vs converted SNN accuracy on the digits test split, for several numbers of time steps.

For each ONNX model and reset mode: convert with :func:`neurodeploy.converters.onnx.from_onnx` (threshold
balancing on ``digits_data.npz``'s calibration set), rate-code the test images (regular code, ``round(T p)``
spikes per pixel), run, and classify by the readout's ``v`` at the last step. Runs (``--runs``):

* ``float``: the float IR, ``simulate(fold_linear(graph)[0], spikes)``;
* ``int``: the quantized emulator, ``simulate(compile_graph(graph, "emulator", calibration=...).graph, ...)``;
* ``lava``: ``compile_graph(graph, "loihi2", ...)`` run by the Lava backend (lava-nc fixed_pt, through
  ``.venv-lava``); reset "zero" only, as Lava's LIF has no reset by subtraction;
* ``pynn``: ``compile_graph(graph, "spinnaker", ...)``, the emitted PyNN script run on pyNN.brian2 (reset "zero"
  only, as SpiNNaker's IF_curr_exp).

The quantize pass is calibrated on 64 calibration images encoded over the longest run. Every synapse adds one
step, so the readout sees the stimulus ``meta["latency_steps"]`` steps late: the stimulus is followed by that many
empty steps so that each run integrates all ``T`` input steps.

Run: ``.venv/bin/python examples/onnx_digits/evaluate.py [--steps 16,32,64,128] [--models mlp,cnn]
[--resets subtract,zero] [--runs float,int] [--readout integrator|spikes] [--model-based]``.
Prints a markdown table (timings on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = {"mlp": (64,), "cnn": (1, 8, 8)}
#: Calibration images given (as spikes over the longest run) to the quantize pass, which emulates each population.
N_QUANT_CALIBRATION = 64
TARGETS = {"int": "emulator", "lava": "loihi2", "pynn": "spinnaker"}
#: Backends whose neurons reset to zero only (Lava's LIF, SpiNNaker's IF_curr_exp).
ZERO_RESET_ONLY = ("lava", "pynn")


def ann_accuracy(path: Path, x: np.ndarray, labels: np.ndarray) -> float:
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(str(path))
    scores = np.concatenate([ref.run(None, {"image": x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))])
    return float((scores.argmax(1) == labels).mean())


def stimulus(graph, x: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` steps of rate-coded ``x`` followed by ``latency_steps`` empty steps."""
    from neurodeploy.converters.onnx import rate_encode

    spikes = rate_encode(x, steps, graph.meta["input_scale"]["image"])
    pad = np.zeros((spikes.shape[0], graph.meta["latency_steps"]) + spikes.shape[2:], np.uint8)
    return np.concatenate([spikes, pad], axis=1)


def accuracy(graph, out: np.ndarray, labels: np.ndarray) -> float:
    score = out[:, -1] if graph.meta["output_kind"]["scores"] == "integrator" else out.sum(axis=1)
    return float((score.reshape(len(labels), -1).argmax(1) == labels).mean())


def run(graph, artifact, how: str, x: np.ndarray, labels: np.ndarray, steps: int) -> float:
    from neurodeploy.emulator import simulate
    from neurodeploy.passes.fold import fold_linear
    from neurodeploy.registry import get_backend

    spikes = stimulus(graph, x, steps)
    if how == "float":
        out = simulate(fold_linear(graph)[0], spikes).outputs["scores"]
    elif how == "int":
        out = simulate(artifact.graph, spikes).outputs["scores"]
    elif how == "lava":
        out = get_backend("lava").run(artifact, spikes)[0]["scores"]
        same = np.array_equal(out, simulate(artifact.graph, spikes).outputs["scores"])
        print(f"T={steps}: Lava output {'bit-identical to' if same else 'DIFFERS from'} the emulator's",
              file=sys.stderr, flush=True)
    else:  # PyNN on Brian2 integrates continuously: it agrees with the integer emulator statistically
        out = get_backend("pynn").run(artifact, spikes)[0]["scores"]
        emu = simulate(artifact.graph, spikes).outputs["scores"]
        agree = float((out[:, -1].reshape(len(labels), -1).argmax(1) == emu[:, -1].reshape(len(labels), -1)
                       .argmax(1)).mean())
        print(f"T={steps}: PyNN/Brian2 picks the emulator's class for {agree:.4f} of the images",
              file=sys.stderr, flush=True)
    return accuracy(graph, out, labels)


def main(argv: list[str] | None = None) -> None:
    from neurodeploy.compiler import compile_graph
    from neurodeploy.converters.onnx import from_onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="16,32,64,128")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--resets", default="subtract,zero")
    parser.add_argument("--runs", default="float,int", help="comma list among float, int, lava, pynn")
    parser.add_argument("--readout", default="integrator")
    parser.add_argument("--percentile", type=float, default=99.9)
    parser.add_argument("--model-based", action="store_true", help="thresholds from the weights (no calibration)")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    data = np.load(HERE / "digits_data.npz")
    labels = data["labels"]
    print("| model | ANN | reset | run | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|---|" + "---|" * len(steps))
    for model in args.models.split(","):
        shape = SHAPES[model]
        x = data["test"].reshape(-1, *shape)
        calib = data["calibration"].reshape(-1, *shape)
        path = HERE / f"digits_{model}.onnx"
        ann = ann_accuracy(path, x, labels)
        for reset in args.resets.split(","):
            graph = from_onnx(path, calibration=None if args.model_based else calib, percentile=args.percentile,
                              reset=reset, readout=args.readout)
            for how in args.runs.split(","):
                if how in ZERO_RESET_ONLY and reset != "zero":
                    continue
                t0 = time.perf_counter()
                artifact = None
                if how in TARGETS:
                    cal = stimulus(graph, calib[:N_QUANT_CALIBRATION], max(steps))
                    artifact = compile_graph(graph, TARGETS[how], calibration=cal)
                accs = [run(graph, artifact, how, x, labels, t) for t in steps]
                print(f"| {model} | {ann:.4f} | {reset} | {how} | " + " | ".join(f"{a:.4f}" for a in accs) + " |",
                      flush=True)
                print(f"{model}/{reset}/{how}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
