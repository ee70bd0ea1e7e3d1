"""Train the digits spike-driven transformer on the CPU (surrogate gradients, BPTT over the T steps).

Data: scikit-learn's ``load_digits`` (1797 images 8 x 8, integers 0..16; no download), split 80/20 with
``train_test_split(test_size=0.2, stratify=labels, random_state=0)``, thermometer-encoded
(:func:`neurodeploy.families.sdt.model.encode`). Augmentation: random shifts by -1..1 pixel (zero fill) of the
training images each epoch. Loss: cross-entropy on the T-averaged logits; AdamW with a cosine learning rate.
Deterministic for a given seed (one thread).

``python -m neurodeploy.families.sdt.train --attention v2 --out examples/sdt_digits/sdt_v2.pt``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurodeploy.families.sdt.model import SDTConfig, SDTDigits, encode, n_parameters, save, to_torch

SPLIT_SEED = 0


@dataclass
class Digits:
    x_train: np.ndarray  # [N, 64] pixels
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split() -> Digits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.2, random_state=SPLIT_SEED,
                                              stratify=d.target)
    return Digits(x_tr.astype(np.int64), y_tr.astype(np.int64), x_te.astype(np.int64), y_te.astype(np.int64))


def _shift(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by a random (dy, dx) in {-1, 0, 1}^2, zero fill."""
    img = images.reshape(-1, 8, 8)
    out = np.zeros_like(img)
    dy = rng.integers(-1, 2, len(img))
    dx = rng.integers(-1, 2, len(img))
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            idx = np.nonzero((dy == sy) & (dx == sx))[0]
            if idx.size:
                src = img[idx]
                dst = np.zeros_like(src)
                ys, yd = (slice(0, 8 - sy), slice(sy, 8)) if sy >= 0 else (slice(-sy, 8), slice(0, 8 + sy))
                xs, xd = (slice(0, 8 - sx), slice(sx, 8)) if sx >= 0 else (slice(-sx, 8), slice(0, 8 + sx))
                dst[:, yd, xd] = src[:, ys, xs]
                out[idx] = dst
    return out.reshape(len(img), 64)


def accuracy(model: SDTDigits, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    model.eval()
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = to_torch(encode(images[i:i + batch], cfg.steps, cfg.levels), dtype)
            correct += int((model(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(images)


def _perturb(model: SDTDigits, sigma: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Add ``sigma * max|W| * N(0, 1)`` to every conv / linear weight in place; returns what to undo."""
    saved = []
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                w = m.weight
                saved.append((w, w.detach().clone()))
                w.add_(torch.randn_like(w) * sigma * w.abs().max())
    return saved


def train(cfg: SDTConfig, epochs: int = 60, lr: float = 2e-2, batch: int = 64, seed: int = 0,
          log=print, init: SDTDigits | None = None, weight_noise: float = 0.0) -> tuple[SDTDigits, dict]:
    """Train a fresh model (or fine-tune ``init``); returns it (float32, eval mode) and figures.

    ``weight_noise`` > 0: each step's forward/backward runs at weights perturbed by ``weight_noise * max|W|``
    Gaussian noise per tensor (the update applies to the unperturbed weights), which makes the trained network
    tolerant of the 8-bit weight rounding of the deployment.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    data = load_digits_split()
    model = SDTDigits(cfg) if init is None else init.float()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    steps_per_epoch = (len(data.y_train) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    start = time.perf_counter()
    y_train = torch.as_tensor(data.y_train)
    for epoch in range(epochs):
        model.train()
        images = _shift(data.x_train, rng)
        order = rng.permutation(len(images))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = to_torch(encode(images[idx], cfg.steps, cfg.levels))
            saved = _perturb(model, weight_noise) if weight_noise > 0 else []
            loss = loss_fn(model(x), y_train[idx])
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                for w, clean in saved:
                    w.copy_(clean)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % 5 == 4 or epoch == epochs - 1:
            acc = accuracy(model, data.x_test, data.y_test)
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.3f}, test accuracy {acc:.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    model.eval()
    figures = {"test_accuracy_float32": accuracy(model, data.x_test, data.y_test),
               "train_seconds": round(time.perf_counter() - start, 1), "epochs": epochs, "lr": lr, "seed": seed,
               "weight_noise": weight_noise, "fine_tuned": init is not None, "parameters": n_parameters(model)}
    return model, figures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attention", choices=("v1", "v2"), default="v2")
    p.add_argument("--channels", type=int, default=SDTConfig.channels)
    p.add_argument("--blocks", type=int, default=SDTConfig.blocks)
    p.add_argument("--heads", type=int, default=SDTConfig.heads)
    p.add_argument("--steps", type=int, default=SDTConfig.steps)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--lr", type=float, default=2e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="weights file (.pt); its config goes to .json")
    args = p.parse_args(argv)
    cfg = SDTConfig(attention=args.attention, channels=args.channels, blocks=args.blocks, heads=args.heads,
                    steps=args.steps)
    model, figures = train(cfg, epochs=args.epochs, lr=args.lr, seed=args.seed)
    save(model, args.out, {"training": figures})
    print(f"saved {args.out} ({figures['parameters']} parameters, test accuracy "
          f"{figures['test_accuracy_float32']:.4f}, {figures['train_seconds']} s)")


if __name__ == "__main__":
    main()
