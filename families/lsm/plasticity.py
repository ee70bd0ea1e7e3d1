"""NALSM-style unsupervised phase: STDP on the excitatory recurrent synapses, modulated by one astrocyte-like
global signal that pulls the reservoir's branching factor toward a target (edge of chaos, ``sigma* ~ 1``).

This is a host-side float simulator of the reservoir graph (:mod:`.model`) with plastic weights. With the learning
rate at zero it computes exactly what the emulator's float mode computes for the same graph (same step order and
timing: a spike at step ``t`` reaches its target at ``t + 1 + d``; the input's column ``t - 1`` arrives at ``t``).
Its integer, on-chip counterpart (PlasticDense with delays + an Astrocyte node, run by the emulator) is
:mod:`.plastic_emulator`.

Per step ``t`` and sample ``b`` (all arrays vectorised over samples and synapses; ``k`` a plastic synapse
``i -> j`` from an excitatory neuron)::

    arrivals        a_j = sum_{k -> j} w_k s_i[t - 1 - d_k]  (+ input, + static inhibitory synapses)
    neurons         float CubaLIF as in the IR (u, v, threshold, reset to zero)
    traces          x_i = x_i e^{-1/tau_plus} + s_i[t - 1];   y_j = y_j e^{-1/tau_minus} + s_j[t - 1]
    STDP            dw_k = eta wbar_k (A_plus x_i s_j[t] - m A_minus y_j s_i[t])       (pair-based, all-to-all)
    bounds          0 <= w_k <= w_max_factor wbar_k                 (Dale: excitatory synapses stay excitatory)

``wbar_k`` is the mean initial weight of ``k``'s type pair, so ``eta`` is dimensionless.

The astrocyte (one per network) estimates the branching factor online with the credit rule of
:func:`neurodeploy.families.lsm.branching.branching_factor` (a spike's unit of credit is shared between the
excitatory recurrent and the input drive that arrived with it, in proportion to their weights)::

    D_t = sum_j s_j[t] * aE_j / (aE_j + aX_j)      (credit taken by recurrent ancestors at step t)
    Dbar += (D_t - Dbar) / tau_astro;   Nbar += (nE_{t-1} - Nbar) / tau_astro;   sigma_hat = Dbar / Nbar
    m = exp(gain (sigma_hat - sigma*)),  log m clipped to [-log_m_max, log_m_max]

(``astrocyte="credit"``, the default) so LTD is strengthened while the reservoir is supercritical (``sigma_hat >
sigma*``) and weakened while it is subcritical. The weights integrate ``dw``, so a proportional modulation suffices:
the weights stop drifting where the modulated STDP balances, ``sigma_hat - sigma* = ln(m_eq) / gain`` (``m_eq = 1``
for balanced, uncorrelated STDP with ``A_plus tau_plus = A_minus tau_minus``). An integrating astrocyte on top of
the integrating weights oscillates (tried: the estimate swung between 0.4 and 1.6).

``astrocyte="counts"`` is the estimator an on-chip controller can run (:class:`neurodeploy.ir.ops.Astrocyte`, whose
float twin :class:`neurodeploy.emulator.astrocyte.FloatAstrocyte` is used here): it shares credit at the population
level from spike *counts* only, ``D_t = n_t g_rec e_{t-1} / (g_rec e_{t-1} + g_drive x_{t-1})`` (``n_t`` reservoir
spikes at t, ``e`` excitatory spikes, ``x`` input spikes; ``g_rec``, ``g_drive`` the mean total weight an E spike /
an input spike sends into the reservoir, :func:`count_gains`, rounded to the integer op's 8-bit ratio), with
``tau = 2**round(log2 tau_astro)`` (the EMA is a shift on chip) and ``m`` limited to the 7-bit third factor:
``m = min(m, 127 / y2_unit)``. It starts from ``Dbar = Nbar = 0`` (m = 1) at every run.

Two modes, as in NALSM (Ivanov & Michmizos, NeurIPS 2021), whose formulation this follows in spirit but not in
every constant:

* :func:`train` -- the unsupervised phase: samples in mini-batches, one shared weight vector updated every step
  by the batch mean of ``dw``; the astrocyte is shared and carries over from batch to batch. The result is the
  *frozen* reservoir that gets deployed.
* :func:`run_plastic` -- NALSM's inference: plasticity keeps running during every sample, each sample starting from
  the frozen weights (restored at sample start) and the trained astrocyte state. This is a different model from the
  frozen one; its accuracy is reported next to the frozen model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .model import LSM


@dataclass(frozen=True)
class PlasticitySpec:
    """Constants of the astrocyte-modulated STDP (see the module docstring); times in steps."""

    eta: float = 0.004
    a_plus: float = 1.0
    a_minus: float = 1.0
    tau_plus: float = 10.0
    tau_minus: float = 10.0
    w_max_factor: float = 4.0
    target: float = 1.0
    tau_astro: float = 200.0
    gain: float = 5.0
    log_m_max: float = 3.0
    batch: int = 64
    epochs: int = 1
    seed: int = 0
    astrocyte: str = "credit"
    y2_unit: int = 16


@dataclass
class AstrocyteState:
    """The astrocyte's running credit ``dbar``, ancestor count ``nbar`` and LTD modulation ``log_m`` (arrays: one
    astrocyte per independent run, or a single one shared by a mini-batch)."""

    dbar: np.ndarray = field(default_factory=lambda: np.zeros(1))
    nbar: np.ndarray = field(default_factory=lambda: np.zeros(1))
    log_m: np.ndarray = field(default_factory=lambda: np.zeros(1))

    @property
    def sigma(self) -> np.ndarray:
        return np.divide(self.dbar, self.nbar, out=np.full(self.nbar.shape, np.nan), where=self.nbar > 0)

    def update(self, d_t: np.ndarray, n_t: np.ndarray, spec: PlasticitySpec) -> None:
        self.dbar = self.dbar + (d_t - self.dbar) / spec.tau_astro
        self.nbar = self.nbar + (n_t - self.nbar) / spec.tau_astro
        err = np.nan_to_num(self.sigma - spec.target)
        self.log_m = np.clip(spec.gain * err, -spec.log_m_max, spec.log_m_max)

    def copy(self, runs: int = 1) -> AstrocyteState:
        """``runs`` independent copies of this (single) astrocyte's state."""
        return AstrocyteState(*(np.repeat(np.asarray(a, np.float64)[:1], runs) for a in
                                (self.dbar, self.nbar, self.log_m)))


@dataclass
class TrainLog:
    """Per batch: the astrocyte's estimate, its LTD modulation and the mean plastic weight."""

    sigma_hat: list[float] = field(default_factory=list)
    modulation: list[float] = field(default_factory=list)
    mean_weight: list[float] = field(default_factory=list)


class _Network:
    """The reservoir of an :class:`LSM` prepared for per-step simulation with per-synapse weight vectors."""

    def __init__(self, lsm: LSM):
        c = lsm.conn
        self.lsm = lsm
        self.n = lsm.n
        self.pre = c.pre.astype(np.int64)
        self.post = c.post.astype(np.int64)
        self.delay = c.delay.astype(np.int64)
        self.plastic = c.excitatory[self.pre]
        self.w0 = c.weight.astype(np.float64)
        self.post_matrix = sp.csr_matrix((np.ones(self.pre.size), (np.arange(self.pre.size), self.post)),
                                         shape=(self.pre.size, self.n))
        self.w_in = sp.csr_matrix((lsm.w_in_value.astype(np.float64), (lsm.w_in_row, lsm.w_in_col)),
                                  shape=(self.n, lsm.n_in))
        types = (~c.excitatory).astype(np.int64)
        pair = types[self.pre] * 2 + types[self.post]
        means = np.array([np.abs(self.w0[pair == p]).mean() if np.any(pair == p) else 0.0 for p in range(4)])
        self.wbar = means[pair]
        nu = lsm.neuron
        self.du, self.dv, self.vth, self.bias = nu.du, nu.dv, nu.vth, nu.bias


ASTROCYTES = ("credit", "counts")


def count_gains(lsm: LSM) -> tuple[float, float]:
    """``(g_rec, g_drive)``: the mean total weight one excitatory spike and one input spike send into the reservoir
    (sum of the excitatory recurrent weights / number of E neurons; sum of the input weights / input channels)."""
    c = lsm.conn
    exc = c.excitatory[c.pre]
    g_rec = float(np.asarray(c.weight, np.float64)[exc].sum()) / max(1, int(c.excitatory.sum()))
    g_drive = float(np.asarray(lsm.w_in_value, np.float64).sum()) / max(1, lsm.n_in)
    return g_rec, g_drive


def astrocyte_op(lsm: LSM, spec: PlasticitySpec, drive: str = "input"):
    """The integer :class:`~neurodeploy.ir.ops.Astrocyte` of ``astrocyte="counts"`` for ``lsm`` (reads the
    reservoir, ``drive`` names the Input node)."""
    from neurodeploy.emulator.astrocyte import astrocyte_op as make

    g_rec, g_drive = count_gains(lsm)
    tau = 2 ** int(round(math.log2(spec.tau_astro)))
    return make(lsm.conn.excitatory, drive, g_rec, g_drive, spec.gain, spec.target, spec.log_m_max, spec.y2_unit,
                tau, origin="lsm astrocyte (LTD modulation)")


def counts_astrocyte(lsm: LSM, spec: PlasticitySpec, runs: int = 1):
    """The float twin of :func:`astrocyte_op` (same integer gains and shift), ``runs`` independent copies."""
    from neurodeploy.emulator.astrocyte import FloatAstrocyte

    return FloatAstrocyte.of(astrocyte_op(lsm, spec), spec.gain, spec.log_m_max, spec.y2_unit, runs)


def _check(spec: PlasticitySpec) -> None:
    if spec.astrocyte not in ASTROCYTES:
        from neurodeploy.errors import InputError

        raise InputError(f"astrocyte '{spec.astrocyte}' is not one of {ASTROCYTES}", fix="use 'credit' or 'counts'")


def _simulate(net: _Network, x: np.ndarray, w: np.ndarray, spec: PlasticitySpec | None, astro,
              shared: bool) -> tuple[np.ndarray, np.ndarray]:
    """Run ``x`` ``[B, T, P]``; ``w`` is ``[K]`` (shared) or ``[B, K]`` (per sample), updated in place when
    ``spec`` is given. Returns (spikes ``[B, T, N]`` uint8, the astrocyte's sigma estimate per step)."""
    b, steps, _ = x.shape
    n, k = net.n, net.pre.size
    u = np.zeros((b, n))
    v = np.zeros((b, n))
    spikes = np.zeros((steps, b, n), dtype=bool)
    xtr = np.zeros((b, n))
    ytr = np.zeros((b, n))
    sig = np.full(steps, np.nan)
    plastic = net.plastic
    exc_pre = plastic  # causal (excitatory) synapses are exactly the plastic ones
    dec_p = math.exp(-1.0 / spec.tau_plus) if spec else 0.0
    dec_m = math.exp(-1.0 / spec.tau_minus) if spec else 0.0
    lo = np.where(plastic, 0.0, net.w0 - np.abs(net.w0))  # static (inhibitory) weights never move
    hi = np.where(plastic, spec.w_max_factor * net.wbar, net.w0) if spec else None
    exc_neuron = net.lsm.conn.excitatory
    for t in range(steps):
        src_t = t - 1 - net.delay
        valid = src_t >= 0
        arrived = np.zeros((b, k))
        if valid.any():
            arrived[:, valid] = spikes[src_t[valid], :, net.pre[valid]].T
        contrib = arrived * w
        a_x = np.asarray(net.w_in @ x[:, t - 1].T).T if t >= 1 else np.zeros((b, n))
        a_e = np.asarray(net.post_matrix.T @ (contrib * exc_pre).T).T
        a_i = np.asarray(net.post_matrix.T @ (contrib * ~exc_pre).T).T
        a_in = a_x + a_e + a_i
        u = u * (1.0 - net.du) + a_in
        v = v * (1.0 - net.dv) + u + net.bias
        s = v > net.vth
        v = np.where(s, 0.0, v)
        spikes[t] = s
        if spec is None:
            continue
        prev = spikes[t - 1] if t >= 1 else np.zeros((b, n), bool)
        xtr = xtr * dec_p + prev
        ytr = ytr * dec_m + prev
        if spec.astrocyte == "counts":  # the on-chip estimator (module docstring): counts of this and the last step
            counts = [s.sum(axis=1), prev[:, exc_neuron].sum(axis=1),
                      x[:, t - 1].sum(axis=1) if t >= 1 else np.zeros(b)]
            if shared:
                counts = [c.sum(keepdims=True) for c in counts]
            astro.step(*counts)
            m = (astro.y2 / spec.y2_unit)[:, None]   # m limited to the 7-bit y2 range
        else:
            drive = a_e + a_x
            credit = np.divide(a_e, drive, out=np.zeros_like(a_e), where=drive > 0)
            d_t = (s * credit).sum(axis=1)
            n_t = prev[:, exc_neuron].sum(axis=1).astype(np.float64)
            if shared:  # one astrocyte for the whole mini-batch
                d_t, n_t = d_t.sum(keepdims=True), n_t.sum(keepdims=True)
            astro.update(d_t, n_t, spec)
            m = np.exp(astro.log_m)[:, None]
        est = astro.sigma
        sig[t] = float(est[np.isfinite(est)].mean()) if np.isfinite(est).any() else np.nan
        ltp = xtr[:, net.pre] * s[:, net.post]
        ltd = ytr[:, net.post] * s[:, net.pre]
        dw = spec.eta * net.wbar * (spec.a_plus * ltp - m * spec.a_minus * ltd) * plastic
        w += dw.mean(axis=0) if shared else dw
        np.clip(w, lo, hi, out=w)
    return spikes.transpose(1, 0, 2).astype(np.uint8), sig


def simulate_frozen(lsm: LSM, x: np.ndarray) -> np.ndarray:
    """The reservoir's spikes ``[B, T, N]`` with fixed weights (equal to the emulator's float mode)."""
    net = _Network(lsm)
    return _simulate(net, np.asarray(x, np.float64), net.w0.copy(), None, AstrocyteState(), True)[0]


def train(lsm: LSM, x: np.ndarray, spec: PlasticitySpec | None = None) -> tuple[LSM, AstrocyteState, TrainLog]:
    """The unsupervised phase on stimuli ``x`` ``[B, T, P]``; returns the frozen LSM, the astrocyte and a log."""
    spec = spec or PlasticitySpec()
    _check(spec)
    net = _Network(lsm)
    w = net.w0.copy()
    astro = counts_astrocyte(lsm, spec) if spec.astrocyte == "counts" else AstrocyteState()
    log = TrainLog()
    rng = np.random.default_rng(spec.seed)
    x = np.asarray(x, np.float64)
    for _ in range(spec.epochs):
        order = rng.permutation(x.shape[0])
        for start in range(0, x.shape[0], spec.batch):
            _simulate(net, x[order[start:start + spec.batch]], w, spec, astro, shared=True)
            log.sigma_hat.append(float(astro.sigma[0]))
            log.modulation.append(float(np.exp(astro.log_m[0])))
            log.mean_weight.append(float(w[net.plastic].mean()))
    return lsm.with_recurrent_weights(w.astype(np.float32)), astro, log


def run_plastic(lsm: LSM, x: np.ndarray, spec: PlasticitySpec | None = None, astro: AstrocyteState | None = None,
                batch: int = 256) -> np.ndarray:
    """NALSM inference: plasticity on during each sample, weights restored to ``lsm``'s at every sample start
    (and the astrocyte to ``astro``; ``astrocyte="counts"`` starts from zero, like the chip). Returns spikes
    ``[B, T, N]``."""
    spec = spec or PlasticitySpec()
    _check(spec)
    net = _Network(lsm)
    x = np.asarray(x, np.float64)
    out = []
    for start in range(0, x.shape[0], batch):
        chunk = x[start:start + batch]
        w = np.broadcast_to(net.w0, (chunk.shape[0], net.w0.size)).copy()
        if spec.astrocyte == "counts":
            state = counts_astrocyte(lsm, spec, chunk.shape[0])
        else:
            state = (astro or AstrocyteState()).copy(chunk.shape[0])
        out.append(_simulate(net, chunk, w, spec, state, shared=False)[0])
    return np.concatenate(out)
