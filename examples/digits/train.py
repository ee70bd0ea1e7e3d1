"""Train the bundled digits SNN (snnTorch, CPU, seconds) and export what the demo needs.

Data: scikit-learn's ``load_digits`` (8x8 images, 1797 samples, no download), rate-coded: pixel ``p / 16`` is the
spike probability per step, ``T = 20`` steps. Loss: cross-entropy on the output spike counts. Deterministic (fixed
seeds, one thread). Writes next to this file:

* ``digits_weights.pt``  -- the state dict loaded by ``model.py``;
* ``digits_snn.nir``     -- the network as NIR (via neurodeploy's ``from_snntorch`` + ``write_nir``, dt = 1e-3 s,
  so ``neurodeploy compile digits_snn.nir --dt 1e-3`` rebuilds exactly this network);
* ``digits_test.npz``    -- ``spikes`` [B, T, 64] uint8 (the test split, encoded once) and ``labels`` [B].

Run: ``.venv/bin/python examples/digits/train.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import WEIGHTS, build  # noqa: E402

T = 20
DT = 1e-3
SEED = 0
EPOCHS = 30
BATCH = 64


def encode(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rate code: ``[B, 64]`` intensities in [0, 16] -> ``[B, T, 64]`` uint8 Bernoulli spikes."""
    p = np.clip(images / 16.0, 0.0, 1.0)
    return (rng.random((images.shape[0], T, images.shape[1])) < p[:, None, :]).astype(np.uint8)


def forward(net: torch.nn.Sequential, spikes: torch.Tensor) -> torch.Tensor:
    """Output spike counts ``[B, 10]`` over the ``T`` steps."""
    from snntorch import utils

    utils.reset(net)
    counts = 0
    for t in range(spikes.shape[1]):
        counts = counts + net(spikes[:, t])
    return counts


def main() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from neurodeploy.converters.nir import write_nir
    from neurodeploy.converters.snntorch import from_snntorch
    from neurodeploy.emulator import simulate
    from neurodeploy.passes.fold import fold_linear

    start = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.2,
                                                        random_state=SEED, stratify=digits.target)
    test_spikes = encode(x_test, rng)
    net = build()
    with torch.no_grad():  # larger initial weights so that spikes reach the output from the first epoch
        for layer in (net[0], net[2]):
            layer.weight.mul_(3.0)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    y_train_t = torch.tensor(y_train)
    for epoch in range(EPOCHS):
        train_spikes = torch.tensor(encode(x_train, rng), dtype=torch.float32)  # fresh spike trains each epoch
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            loss = loss_fn(forward(net, train_spikes[idx]) * 0.5, y_train_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: loss {loss.item():.3f}", flush=True)
    net.eval()
    with torch.no_grad():
        counts = forward(net, torch.tensor(test_spikes, dtype=torch.float32)).numpy()
    acc = float((counts.argmax(1) == y_test).mean())
    print(f"snnTorch test accuracy: {acc:.3f} ({len(y_test)} samples, T = {T})")

    torch.save(net.state_dict(), WEIGHTS)
    graph = from_snntorch(net, (64,), dt=DT)
    write_nir(graph, HERE / "digits_snn.nir")
    np.savez_compressed(HERE / "digits_test.npz", spikes=test_spikes, labels=y_test.astype(np.int64))
    out = simulate(fold_linear(graph)[0], test_spikes.astype(np.float64)).outputs["output"]
    ir_acc = float((out.sum(axis=1).argmax(1) == y_test).mean())
    print(f"float IR test accuracy: {ir_acc:.3f} (the IR's output lags {graph.meta['latency_steps']} steps, so "
          f"the last {graph.meta['latency_steps']} stimulus steps are not counted)")
    print(f"wrote {WEIGHTS.name}, digits_snn.nir, digits_test.npz in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
