"""What the quantizer measures on calibration data: stimuli, firing rates, state peaks, errors and agreement.

* Generated stimuli (when the caller gives none): independent Bernoulli spikes, ``P(spike) = rate`` per input
  element and step, from ``numpy.random.default_rng(seed)``; shape ``[batch, steps, *input_shape]``.
* Firing rates: spikes per step of each source element, averaged over batch and steps; a source that never fired
  is given ``0.5 / (batch * steps)`` (half a spike per calibration run), so its synapses still count a little.
* Per-step synaptic input of a population: ``a_t = u_t - (1 - du) * u_{t-1}`` (the float CubaLIF update solved
  for ``a``), read from the recorded float u.
* Expected per-step input error of a quantized synapse (used to pick its ``weight_exp``): with presynaptic
  spikes independent Bernoulli(r_j) and entry errors ``e_ij = m_ij 2**exp - lam w_ij``, the error of target i's
  input has mean ``mu_i = sum_j r_j e_ij`` and variance ``sum_j r_j (1 - r_j) e_ij**2``; a negative exponent
  floors the summed input, adding ``-p_i (1 - 2**exp) / 2`` to the mean and ``p_i / 12`` to the variance, where
  ``p_i = 1 - prod_j (1 - r_j)`` is the chance that any input of i is active. The cost is
  ``sum_i mu_i**2 + var_i`` (squared input units).
* Spike agreement (float vs int, same stimuli): ``matched`` = bins (sample, step, neuron) where both spike;
  ``f1 = 2 matched / (n_float + n_int)`` (1 when both are silent); ``bin_agreement`` = fraction of bins equal;
  ``count_rel_error = |n_int - n_float| / max(n_float, 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from neurodeploy.ir.compiled import compiled


def bernoulli_stimuli(shapes: Mapping[str, tuple[int, ...]], batch: int, steps: int, rate: float, seed: int
                      ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (rng.random((batch, steps, *shape)) < rate).astype(np.uint8) for name, shape in shapes.items()}


def firing_rates(spikes: np.ndarray) -> np.ndarray:
    """Per element rate of ``spikes[B, T, *shape]`` (flattened), floored at half a spike per run."""
    s = np.asarray(spikes, dtype=np.float64)
    batch, steps = s.shape[:2]
    rates = s.reshape(batch, steps, -1).mean(axis=(0, 1))
    return np.clip(rates, 0.5 / max(1, batch * steps), 1.0)


def step_inputs(u: np.ndarray, du: float) -> np.ndarray:
    """``a_t = u_t - (1 - du) u_{t-1}`` with ``u_0 = 0`` for ``u[B, T, ...]``."""
    u = np.asarray(u, dtype=np.float64)
    prev = np.concatenate([np.zeros_like(u[:, :1]), u[:, :-1]], axis=1)
    return u - (1.0 - du) * prev


def any_active_probability(rows: np.ndarray, cols: np.ndarray, rates: np.ndarray, n_out: int) -> np.ndarray:
    """``p_i = 1 - prod_j (1 - r_j)`` over the entries (rows, cols) of each row."""
    log_silent = np.bincount(rows, weights=np.log1p(-np.minimum(rates[cols], 1 - 1e-12)), minlength=n_out)
    return 1.0 - np.exp(log_silent)


def expected_input_error(errors: np.ndarray, kidx: np.ndarray | None, rows: np.ndarray, entry_rates: np.ndarray,
                         entry_idle: np.ndarray, p_any: np.ndarray, n_out: int, weight_exp: int) -> float:
    """The cost of the module docstring for errors ``errors`` (input units) of the parameters, entry ``k`` using
    parameter ``kidx[k]`` (None: parameter ``k``); ``entry_rates`` is the rate ``r`` of each entry's source and
    ``entry_idle`` its ``1 - r`` (per synapse, computed once). The row sums run in one compiled pass over the
    entries, in entry order (the same sums, bit for bit, as ``numpy.bincount`` over the expanded arrays)."""
    mean = np.zeros(n_out)
    var = np.zeros(n_out)
    errors = np.ascontiguousarray(errors, np.float64)
    if kidx is None:
        kidx = np.arange(errors.size)
    compiled(_row_sums)(errors, kidx, rows, entry_rates, entry_idle, mean, var)
    if weight_exp < 0:
        mean = mean - p_any * (1.0 - 2.0 ** weight_exp) / 2.0
        var = var + p_any / 12.0
    return float(np.sum(mean ** 2 + var))


def _row_sums(errors, kidx, rows, rates, idle, mean, var):  # pragma: no cover - compiled by numba
    """``mean[rows[k]] += e r``, ``var[rows[k]] += e**2 r (1 - r)`` with ``e = errors[kidx[k]]``, k ascending."""
    for k in range(rows.size):
        e = errors[kidx[k]]
        mean[rows[k]] += e * rates[k]
        var[rows[k]] += e * e * rates[k] * idle[k]


def spike_agreement(float_spikes: np.ndarray, int_spikes: np.ndarray) -> dict[str, float | int]:
    f = np.asarray(float_spikes) != 0
    q = np.asarray(int_spikes) != 0
    n_f, n_q = int(f.sum()), int(q.sum())
    matched = int((f & q).sum())
    return {"float_spikes": n_f, "int_spikes": n_q, "matched": matched,
            "f1": 1.0 if n_f + n_q == 0 else 2.0 * matched / (n_f + n_q),
            "bin_agreement": 1.0 - (n_f + n_q - 2 * matched) / max(1, f.size), "bins": int(f.size),
            "count_rel_error": abs(n_q - n_f) / max(1, n_f)}


def trace_error(quantized: np.ndarray, reference: np.ndarray) -> float:
    """RMS error over RMS value of a state trace (absolute RMS error when the reference is all zero)."""
    q = np.asarray(quantized, dtype=np.float64)
    x = np.asarray(reference, dtype=np.float64)
    if x.size == 0:
        return 0.0
    err = float(np.sqrt(np.mean((q - x) ** 2)))
    norm = float(np.sqrt(np.mean(x ** 2)))
    return err / norm if norm > 0 else err
