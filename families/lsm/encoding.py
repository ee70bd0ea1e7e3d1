"""The task: scikit-learn's bundled ``load_digits`` (8 x 8 images, 17 grey levels, 1797 samples) as spike trains.

Rate coding, one input channel per pixel. Pixel value ``x`` in ``[0, 16]`` becomes a per-step rate
``r = max_rate * x / 16``. ``mode="regular"`` (default, deterministic): each channel keeps a phase accumulator
``phi_0 = U(0, 1)`` (fixed per channel by ``seed``), ``phi_t = phi_{t-1} + r``, and spikes at step ``t`` when
``floor(phi_t) > floor(phi_{t-1})`` -- ``floor(phi_0 + t r)`` spikes after ``t`` steps, never two in one step.
``mode="poisson"``: independent Bernoulli(``r``) spikes per step. Arrays are ``[B, T, 64]`` uint8 (the emulator's
stimulus layout). The split is sklearn's stratified ``train_test_split(test_size, random_state=seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.errors import InputError


@dataclass
class DigitsTask:
    """Encoded digits: train/test spike trains ``[B, T, 64]`` and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    steps: int
    max_rate: float
    mode: str

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[2])


def encode(images: np.ndarray, steps: int, max_rate: float = 0.5, mode: str = "regular",
           seed: int = 0) -> np.ndarray:
    """Pixels ``[B, P]`` in ``[0, 16]`` -> spikes ``[B, steps, P]`` (see the module docstring)."""
    if mode not in ("regular", "poisson"):
        raise InputError(f"unknown encoding mode '{mode}'", fix="use 'regular' or 'poisson'")
    if not 0.0 < max_rate <= 1.0:
        raise InputError(f"max_rate = {max_rate} is not a per-step probability", fix="use 0 < max_rate <= 1")
    rate = max_rate * np.clip(np.asarray(images, np.float64), 0, 16) / 16.0
    rng = np.random.default_rng(seed)
    if mode == "poisson":
        return (rng.random((rate.shape[0], steps, rate.shape[1])) < rate[:, None, :]).astype(np.uint8)
    phase = rng.random(rate.shape[1])
    t = np.arange(steps + 1, dtype=np.float64)[None, :, None]
    cum = np.floor(phase[None, None, :] + t * rate[:, None, :])
    return np.diff(cum, axis=1).astype(np.uint8)


def load_task(steps: int = 40, max_rate: float = 0.5, mode: str = "regular", test_size: float = 0.25,
              seed: int = 0) -> DigitsTask:
    """Encode sklearn's ``load_digits`` (no download) and split it into train and test sets."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=test_size, random_state=seed,
                                              stratify=data.target)
    return DigitsTask(encode(x_tr, steps, max_rate, mode, seed), y_tr.astype(np.int64),
                      encode(x_te, steps, max_rate, mode, seed), y_te.astype(np.int64), steps, max_rate, mode)
