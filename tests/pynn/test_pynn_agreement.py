"""Agreement metrics between the emulator and a continuous-time backend (pure numpy, no simulator)."""

import math

import numpy as np
import pytest

from neurodeploy.backends.pynn.agreement import agreement, spike_agreement, van_rossum


def raster(b, t, n, events):
    x = np.zeros((b, t, n), np.uint8)
    for s, step, i in events:
        x[s, step, i] = 1
    return x


def test_identical_trains():
    a = raster(2, 20, 3, [(0, 1, 0), (0, 5, 2), (1, 7, 1), (1, 9, 2)])
    rep = spike_agreement(a, a.copy())
    assert rep["spike_jaccard"] == 1.0 and rep["van_rossum_mean"] == 0.0 and rep["van_rossum_normalised"] == 0.0
    assert rep["counts_equal"] and rep["count_correlation"] == pytest.approx(1.0)


def test_van_rossum_of_one_extra_spike_is_about_one_half():
    """One unmatched spike: D**2 = (1/tau) sum_k exp(-2k/tau), 1/2 in the continuous limit (tau >> 1 step)."""
    tau = 50.0
    a, b = raster(1, 400, 1, [(0, 10, 0)]), raster(1, 400, 1, [])
    d = van_rossum(a, b, tau)[0, 0]
    assert d ** 2 == pytest.approx(1.0 / (tau * (1 - math.exp(-2 / tau))), rel=1e-9)
    assert d ** 2 == pytest.approx(0.5 + 0.5 / tau, rel=1e-3)  # the discretised kernel adds 1/(2 tau)
    assert spike_agreement(a, b, tau)["van_rossum_normalised"] == pytest.approx(d ** 2 / 0.5)


def test_a_shifted_spike_is_closer_than_a_missing_one():
    a = raster(1, 50, 1, [(0, 10, 0)])
    shifted, missing = raster(1, 50, 1, [(0, 11, 0)]), raster(1, 50, 1, [])
    assert van_rossum(a, shifted)[0, 0] < van_rossum(a, missing)[0, 0]
    assert spike_agreement(a, shifted)["spike_jaccard"] == 0.0  # exact coincidence only


def test_classifier_decisions_and_ties():
    ref = {"out": raster(3, 10, 2, [(0, 1, 0), (0, 2, 0), (1, 1, 1), (2, 3, 0)]), "pop/spikes": None}
    other = {"out": raster(3, 10, 2, [(0, 1, 0), (1, 1, 0), (2, 3, 0), (2, 4, 1)])}
    del ref["pop/spikes"]
    rep = agreement(ref, other)
    out = rep["outputs"]["out"]
    assert out["same_decision"] == pytest.approx(2 / 3)  # 0 agrees, 1 differs, 2 agrees by a tie (first index)
    assert out["ties"] == pytest.approx(1 / 3)
    assert rep["same_decision"] == pytest.approx(2 / 3)


def test_population_keys_and_voltages():
    ref = {"h/spikes": raster(1, 5, 2, [(0, 1, 0)]), "h/v": np.arange(10.0).reshape(1, 5, 2)}
    other = {"h/spikes": raster(1, 5, 2, [(0, 1, 0)]), "h/v": np.arange(10.0).reshape(1, 5, 2) + 0.5}
    rep = agreement(ref, other)
    assert rep["populations"]["h"]["spike_jaccard"] == 1.0
    assert rep["populations"]["h"]["v_correlation"] == pytest.approx(1.0)
    assert rep["spike_jaccard_all"] == 1.0
