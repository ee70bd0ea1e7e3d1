"""End-to-end demo (`make demo`): NIR model -> compile -> run on the bit-accurate emulator -> accuracy.

Uses the bundled snnTorch digits classifier (``digits_snn.nir``, exported by ``train.py``) and its test stimulus
(``digits_test.npz``: ``spikes`` [B, T, 64], ``labels`` [B]). Every step goes through the ``neurodeploy`` CLI,
exactly as a user would type it; ``profile --backend float`` compares the quantized artifact with its own float IR
layer by layer, and the float IR's accuracy is computed too, to show the cost of quantization.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "out" / "digits"


def cli(*args: str) -> None:
    exe = shutil.which("neurodeploy", path=str(Path(sys.executable).parent)) or "neurodeploy"
    print("$ neurodeploy " + " ".join(args), flush=True)
    subprocess.run([exe, *args], check=True)


def accuracy(output: np.ndarray, labels: np.ndarray) -> float:
    """Rate decoding: the class whose output neuron spiked most (sum over time) is the prediction."""
    counts = output.reshape(output.shape[0], output.shape[1], -1).sum(axis=1)
    return float((counts.argmax(axis=1) == labels).mean())


def main() -> None:
    model, stimulus = HERE / "digits_snn.nir", HERE / "digits_test.npz"
    cli("compile", str(model), "--dt", "1e-3", "--target", "emulator", "--out", str(OUT / "artifact"))
    cli("inspect", str(OUT / "artifact"))
    cli("run", str(OUT / "artifact"), "--input", str(stimulus), "--output", str(OUT / "result.npz"))
    cli("profile", str(OUT / "artifact"), "--input", str(stimulus), "--backend", "float",
        "--output", str(OUT / "profile.json"))

    from neurodeploy.emulator import simulate
    from neurodeploy.model_loading import load_model
    from neurodeploy.passes.fold import fold_linear

    data = np.load(stimulus)
    labels = data["labels"]
    float_out = simulate(fold_linear(load_model(str(model), dt=1e-3))[0], data["spikes"].astype(np.float64))
    float_acc = accuracy(next(iter(float_out.outputs.values())), labels)
    quant_acc = accuracy(np.load(OUT / "result.npz")["spikes"], labels)
    print(f"\ndigits test set ({len(labels)} samples): float IR accuracy {float_acc:.3f}, "
          f"quantized emulator accuracy {quant_acc:.3f} (chance 0.100)")


if __name__ == "__main__":
    main()
