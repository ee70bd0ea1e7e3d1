"""ANN vs converted SNN accuracy on the digits test split, for several numbers of time steps.

For each ONNX model and reset mode: convert with :func:`neurodeploy.converters.onnx.from_onnx` (threshold
balancing on ``digits_data.npz``'s calibration set), rate-code the test images (regular code, ``round(T p)``
spikes per pixel), run ``T`` steps and classify by the readout's ``v`` at the last step:

* ``float``: the float IR (``simulate(graph, spikes)``);
* ``int``: the quantized emulator, ``simulate(compile_graph(graph, "emulator", calibration=...).graph, ...)``,
  when the quantize pass is installed (else "n/a").

Every synapse adds one step, so the readout sees the stimulus ``meta["latency_steps"]`` steps late; the stimulus is
padded with that many empty steps so that each run integrates all ``T`` input steps.

Run: ``.venv/bin/python examples/onnx_digits/evaluate.py [--steps 16,32,64,128] [--models mlp,cnn]
[--resets subtract,zero] [--readout integrator|spikes]``. Prints a markdown table.
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


def ann_accuracy(path: Path, x: np.ndarray, labels: np.ndarray) -> float:
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(str(path))
    scores = np.concatenate([ref.run(None, {"image": x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))])
    return float((scores.argmax(1) == labels).mean())


def snn_accuracy(graph, x: np.ndarray, labels: np.ndarray, steps: int, arithmetic: str) -> float:
    from neurodeploy.converters.onnx import rate_encode
    from neurodeploy.emulator import simulate

    spikes = rate_encode(x, steps, graph.meta["input_scale"]["image"])
    pad = np.zeros((spikes.shape[0], graph.meta["latency_steps"]) + spikes.shape[2:], np.uint8)
    result = simulate(graph, np.concatenate([spikes, pad], axis=1), arithmetic=arithmetic)
    out = result.outputs["scores"]
    score = out[:, -1] if graph.meta["output_kind"]["scores"] == "integrator" else out.sum(axis=1)
    return float((score.reshape(len(x), -1).argmax(1) == labels).mean())


def quantized(graph, calib_spikes: np.ndarray):
    try:
        from neurodeploy.compiler import compile_graph

        return compile_graph(graph, "emulator", calibration=calib_spikes).graph
    except ModuleNotFoundError:  # the quantize pass has not landed in this checkout
        return None


def main(argv: list[str] | None = None) -> None:
    from neurodeploy.converters.onnx import from_onnx, rate_encode

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="16,32,64,128")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--resets", default="subtract,zero")
    parser.add_argument("--readout", default="integrator")
    parser.add_argument("--percentile", type=float, default=99.9)
    parser.add_argument("--no-int", action="store_true", help="skip the quantized emulator")
    parser.add_argument("--model-based", action="store_true", help="thresholds from the weights (no calibration)")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    data = np.load(HERE / "digits_data.npz")
    labels = data["labels"]
    print("| model | ANN | reset | arithmetic | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|---|" + "---|" * len(steps))
    for model in args.models.split(","):
        shape = SHAPES[model]
        x = data["test"].reshape(-1, *shape)
        calib = data["calibration"].reshape(-1, *shape)
        path = HERE / f"digits_{model}.onnx"
        ann = ann_accuracy(path, x, labels)
        for reset in args.resets.split(","):
            t0 = time.perf_counter()
            graph = from_onnx(path, calibration=None if args.model_based else calib, percentile=args.percentile,
                              reset=reset,
                              readout=args.readout)
            rows = {"float": [snn_accuracy(graph, x, labels, t, "float") for t in steps]}
            if not args.no_int:
                calib_spikes = rate_encode(calib[:N_QUANT_CALIBRATION], max(steps) + graph.meta["latency_steps"],
                                           graph.meta["input_scale"]["image"])
                q = quantized(graph, calib_spikes)
                rows["int"] = [snn_accuracy(q, x, labels, t, "int") for t in steps] if q is not None else None
            for arith, accs in rows.items():
                cells = " | ".join(f"{a:.4f}" for a in accs) if accs else " | ".join("n/a" for _ in steps)
                print(f"| {model} | {ann:.4f} | {reset} | {arith} | {cells} |")
            print(f"<!-- {model}/{reset}: {time.perf_counter() - t0:.1f} s -->", file=sys.stderr)


if __name__ == "__main__":
    main()
