"""The digits classifier as an snnTorch module: ``model`` (64 inputs -> 64 Leaky -> 10 Leaky), trained weights loaded.

Use it as ``neurodeploy compile examples/digits/model.py:model --input-shape 64 --dt 1e-3 ...``; ``train.py``
(re)creates ``digits_weights.pt`` (a plain state dict, loaded with ``torch.load(weights_only=True)``).

Every layer is bias-free and resets to zero: with these choices the IR's spikes equal snnTorch's exactly, shifted
by the two synapse steps of the deployed graph (see docs/conversion.md).
"""

from __future__ import annotations

from pathlib import Path

import snntorch as snn
import torch

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "digits_weights.pt"
N_IN, N_HIDDEN, N_OUT = 64, 64, 10
BETA = 0.9


def build() -> torch.nn.Sequential:
    """The untrained network (the same layers train.py optimises)."""
    return torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HIDDEN, bias=False),
        snn.Leaky(beta=BETA, reset_mechanism="zero", init_hidden=True),
        torch.nn.Linear(N_HIDDEN, N_OUT, bias=False),
        snn.Leaky(beta=BETA, reset_mechanism="zero", init_hidden=True),
    )


def load(path: Path = WEIGHTS) -> torch.nn.Sequential:
    net = build()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


model = load() if WEIGHTS.is_file() else build()
