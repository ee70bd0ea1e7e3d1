"""Train the two ANNs of the ONNX example on scikit-learn's digits and export them to ONNX (CPU, ~20 s).

Data: ``load_digits`` (1797 8x8 images, no download), pixels divided by 16 so that inputs lie in [0, 1] (the
converter rate-codes them as spike probabilities); the split is sklearn's ``train_test_split(test_size=0.2,
random_state=0, stratify=labels)``, as in ``examples/digits``. Deterministic: fixed seeds, one thread, so a rerun
writes the same weights (the ONNX bytes also record the torch version as producer).

Writes next to this file:

* ``digits_mlp.onnx`` -- 64 -> 128 -> 64 -> 10 ReLU MLP ending in Softmax (dropped by the converter);
* ``digits_cnn.onnx`` -- Conv(1->8, 3x3) + BatchNorm + ReLU, MaxPool 2x2, Conv(8->16, 3x3) + ReLU, AvgPool 2x2,
  Flatten, Linear(64 -> 10);
* ``digits_data.npz`` -- ``calibration`` [256, 64] (a training subset, for threshold balancing), ``test`` [360, 64]
  and ``labels`` [360] (float32 / int64; reshape to [B, 1, 8, 8] for the CNN).

Run: ``.venv/bin/python examples/onnx_digits/train.py``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 60
BATCH = 32
N_CALIBRATION = 256


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
                         nn.Softmax(dim=-1))


def cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.2, random_state=0, stratify=digits.target)


def train(net: nn.Sequential, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> nn.Sequential:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    body = net[:-1] if isinstance(net[-1], nn.Softmax) else net  # train on the logits
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x).reshape(-1, *shape), torch.from_numpy(y)
    net.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(xt), generator=gen).split(BATCH):
            opt.zero_grad()
            nn.functional.cross_entropy(body(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def accuracy(net: nn.Sequential, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> float:
    with torch.no_grad():
        return float((net(torch.from_numpy(x).reshape(-1, *shape)).argmax(1).numpy() == y).mean())


def export(net: nn.Sequential, shape: tuple[int, ...], path: Path) -> None:
    """TorchScript-based exporter (``dynamo=False``): needs only ``onnx``, opset 13, constant folding."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, *shape),), buf, dynamo=False, opset_version=13,
                          input_names=["image"], output_names=["scores"], do_constant_folding=True)
    path.write_bytes(buf.getvalue())


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, x_test, y_train, y_test = data()
    for name, build, shape in (("mlp", mlp, (64,)), ("cnn", cnn, (1, 8, 8))):
        torch.manual_seed(SEED)
        net = train(build(), x_train, y_train, shape)
        print(f"{name}: ANN test accuracy {accuracy(net, x_test, y_test, shape):.4f}")
        export(net, shape, HERE / f"digits_{name}.onnx")
    calib = x_train[np.random.default_rng(SEED).permutation(len(x_train))[:N_CALIBRATION]]
    np.savez_compressed(HERE / "digits_data.npz", calibration=calib, test=x_test, labels=y_test)


if __name__ == "__main__":
    main()
