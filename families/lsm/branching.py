"""Branching factor estimators: how many spikes one spike causes, on average (critical dynamics: ~1).

Synaptic estimator (:func:`branching_factor`, the figure reported and regulated)
------------------------------------------------------------------------------
With spikes ``s[b, t, j]`` and causal synapses ``k: i_k -> j_k`` with delay ``d_k`` (IR timing: a spike at ``t``
arrives at ``t + 1 + d_k``; only excitatory synapses, ``w_k > 0``, can cause a spike), a spike of ``j`` at ``t'``
has the *ancestors* ``A(j, t') = {(i_k, t' - 1 - d_k) : j_k = j, s[i_k, t' - 1 - d_k] = 1}`` plus, when external
input is given, the input spikes arriving at ``j`` at ``t'`` (they take credit but are not counted as ancestors
below). Each descendant spike divides one unit of credit among its ancestors in proportion to the weight
``w`` through which each arrived (equal shares when no weights are given)::

    credit(j, t') = s[j, t'] / sum_{a in A(j, t')} w_a          (0 when A is empty: a spike nobody caused)
    sigma = sum over ancestor spikes (i, t) of sum_{k: i_k = i} w_k credit(j_k, t + 1 + d_k)  /  #ancestor spikes

Ancestor spikes are the spikes of neurons with at least one causal outgoing synapse, at steps whose every arrival
lies inside the record (``t + 1 + max d <= T - 1``). ``sigma`` is the mean number of descendants per spike, each
descendant counted once in total: ``sigma = 1`` when every spike, on average, is followed by one spike it helped to
cause. Hand case: ``0 -> 1, 0 -> 2`` (delay 0); 0 fires at t = 0, 1 and 2 at t = 1 -> sigma = 2. ``0 -> 2, 1 -> 2``;
0 and 1 fire at t = 0, 2 at t = 1 -> each ancestor gets 1/2, sigma = 1/2 (and 2's own spike has no descendants:
counted as an ancestor only if 2 has outgoing causal synapses).

Population estimator (:func:`population_branching`, for reference)
------------------------------------------------------------------
Beggs & Plenz (2003): ``sigma_pop = mean over (b, t) with n_t > 0 of n_{t+1} / n_t``, ``n_t = sum_j s[b, t, j]``
(blind to which spike caused which; inflated by external drive).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from neurodeploy.errors import InputError


def _flat(spikes: np.ndarray) -> np.ndarray:
    s = np.asarray(spikes)
    if s.ndim < 3:
        raise InputError(f"spikes must be [B, T, N], got shape {list(s.shape)}", fix="add a batch axis")
    return (s.reshape(s.shape[0], s.shape[1], -1) != 0).astype(np.float64)


def _arrivals(s: np.ndarray, pre: np.ndarray, post: np.ndarray, delay: np.ndarray, w: np.ndarray,
              n_post: int) -> np.ndarray:
    """``[B, T, n_post]``: summed weight ``w`` of the spikes arriving at each neuron at each step."""
    b, t, n_pre = s.shape
    out = np.zeros((b, t, n_post))
    for d in np.unique(delay):
        keep = delay == d
        m = sp.csr_matrix((w[keep], (post[keep], pre[keep])), shape=(n_post, n_pre))
        shift = 1 + int(d)
        if shift >= t:
            continue
        src = s[:, : t - shift].reshape(-1, n_pre)
        out[:, shift:] += np.asarray((m @ src.T).T).reshape(b, t - shift, n_post)
    return out


def branching_factor(spikes: np.ndarray, pre: np.ndarray, post: np.ndarray, delay: np.ndarray | None = None,
                     weight: np.ndarray | None = None, inputs: np.ndarray | None = None,
                     input_pre: np.ndarray | None = None, input_post: np.ndarray | None = None,
                     input_weight: np.ndarray | None = None) -> float:
    """The synaptic branching factor ``sigma`` of a recorded run (see the module docstring).

    ``spikes``: ``[B, T, N]``; ``pre``, ``post``, ``delay``, ``weight``: the recurrent synapses (only ``weight > 0``
    are causal and credit is shared in proportion to it; all synapses with equal shares when ``weight`` is None).
    ``inputs`` ``[B, T, P]`` with ``input_pre``/``input_post``/``input_weight`` (delay 0) lets input spikes share
    the credit. Returns NaN when there is no ancestor spike.
    """
    s = _flat(spikes)
    b, t, n = s.shape
    pre, post = np.asarray(pre, np.int64), np.asarray(post, np.int64)
    delay = np.zeros(pre.size, np.int64) if delay is None else np.asarray(delay, np.int64)
    w = np.ones(pre.size) if weight is None else np.asarray(weight, np.float64)
    causal = w > 0
    pre, post, delay, w = pre[causal], post[causal], delay[causal], w[causal]
    n_anc = _arrivals(s, pre, post, delay, w, n)
    if inputs is not None:
        x = _flat(inputs)
        w_in = np.ones(np.size(input_pre)) if input_weight is None else np.asarray(input_weight, np.float64)
        n_anc += _arrivals(x, np.asarray(input_pre, np.int64), np.asarray(input_post, np.int64),
                           np.zeros(np.size(input_pre), np.int64), w_in, n)
    credit = np.divide(s, n_anc, out=np.zeros_like(s), where=n_anc > 0)
    received = np.zeros_like(s)  # credit received by each potential ancestor spike (b, t, i)
    for d in np.unique(delay) if delay.size else []:
        keep = delay == d
        m = sp.csr_matrix((w[keep], (pre[keep], post[keep])), shape=(n, n))
        shift = 1 + int(d)
        if shift >= t:
            continue
        later = credit[:, shift:].reshape(-1, n)
        received[:, : t - shift] += np.asarray((m @ later.T).T).reshape(b, t - shift, n)
    has_out = np.zeros(n, bool)
    has_out[pre] = True
    horizon = t - 1 - (int(delay.max()) if delay.size else 0)  # ancestors at t < horizon are fully observed
    anc = s[:, :horizon, has_out]
    total = anc.sum()
    if total == 0:
        return float("nan")
    return float((received[:, :horizon, has_out] * anc).sum() / total)


def population_branching(spikes: np.ndarray) -> float:
    """Beggs & Plenz ``mean(n_{t+1} / n_t | n_t > 0)`` over samples and steps; NaN when nothing fires."""
    s = _flat(spikes)
    n = s.sum(axis=2)
    now, nxt = n[:, :-1], n[:, 1:]
    ok = now > 0
    return float((nxt[ok] / now[ok]).mean()) if ok.any() else float("nan")
