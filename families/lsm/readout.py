"""The linear readout, trained on the host on reservoir spike counts.

Features: a run's reservoir spikes ``s[b, t, j]`` (``t < T``) are summed in ``bins`` equal windows,
``c[b, k, j] = sum_{t in window k} s[b, t, j]``, flattened to ``[B, bins * N]``. Training standardises every
feature (``z = (c - mean) / std`` over the training set, ``std`` floored at 1e-6 for silent features) and fits

* ``method="logistic"``: multinomial logistic regression (sklearn ``LogisticRegression``, L2, ``C = 1 / alpha``);
* ``method="ridge"``: one-vs-rest ridge regression on +-1 targets (sklearn ``RidgeClassifier``, ``alpha``).

The decision is ``argmax_k (W z + b)_k``. Because standardisation is affine it folds into the weights:
``W' = W / std``, ``b' = b - W' mean`` (:meth:`Readout.folded`), which is what an on-chip LI readout integrates.

*Which states the readout is trained on matters*: a readout fitted to the float model's states is a different
classifier from one fitted to the quantized emulator's states (the integer reservoir's spikes differ), so a
deployed model's readout is always retrained on the states of the network that is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.errors import InputError

METHODS = ("logistic", "ridge")


def spike_features(spikes: np.ndarray, bins: int = 1, steps: int | None = None) -> np.ndarray:
    """``[B, T, N]`` spikes -> ``[B, bins * N]`` counts over ``bins`` windows of the first ``steps`` steps."""
    s = np.asarray(spikes)
    s = s.reshape(s.shape[0], s.shape[1], -1)
    steps = s.shape[1] if steps is None else int(steps)
    if bins < 1 or bins > steps:
        raise InputError(f"bins = {bins} must be between 1 and the {steps} steps", fix="use e.g. bins=1")
    edges = np.linspace(0, steps, bins + 1).round().astype(int)
    counts = [s[:, a:b].sum(axis=1, dtype=np.int64) for a, b in zip(edges[:-1], edges[1:])]
    return np.concatenate(counts, axis=1).astype(np.float64)


@dataclass
class Readout:
    """A trained linear readout on standardised features (see the module docstring)."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    method: str
    bins: int
    classes: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, np.float64) - self.mean) / self.std) @ self.coef.T + self.intercept

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.scores(features), axis=1)]

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == np.asarray(labels)))

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` on raw counts: ``W' c + b' == scores(c)``."""
        w = self.coef / self.std
        return w, self.intercept - w @ self.mean


def fit(features: np.ndarray, labels: np.ndarray, method: str = "logistic", alpha: float = 1.0,
        bins: int = 1) -> Readout:
    """Train a readout on ``[B, F]`` features (see the module docstring)."""
    if method not in METHODS:
        raise InputError(f"unknown readout method '{method}'", fix=f"use one of {list(METHODS)}")
    x = np.asarray(features, np.float64)
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-6)
    z = (x - mean) / std
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1.0 / alpha, max_iter=2000)
    else:
        from sklearn.linear_model import RidgeClassifier

        model = RidgeClassifier(alpha=alpha)
    model.fit(z, labels)
    coef = np.atleast_2d(model.coef_)
    intercept = np.atleast_1d(model.intercept_)
    return Readout(mean, std, coef, intercept, method, bins, np.asarray(model.classes_))
