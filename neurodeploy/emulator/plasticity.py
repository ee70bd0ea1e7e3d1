"""On-chip learning in the emulator: :class:`~neurodeploy.ir.ops.PlasticDense` in Lava's integer arithmetic.

This reproduces Lava 0.10.0's ``PyLearningDenseModelBitApproximate`` (``LearningConnectionModelBitApproximate``
with ``LearningRuleApplierBitApprox``, binary spikes, ``GradedSpikeCfg.USE_REGULAR_IMPULSE``) step for step, for the
rule subset of :mod:`neurodeploy.ir.learning`. Lava calls the model "bit-approximate" because it is not Loihi's
silicon; this module aims at Lava's model itself, and the Lava agreement test measures how close it gets.

Per step ``t = 1, 2, ...`` (``s`` pre spikes of step t, ``z`` post spikes of step t, ``ts`` = t mod t_epoch, or
t_epoch when that is 0)::

    forward:      a = (W @ s) << weight_exp  (>> -weight_exp, floor, when negative)  -> delivered at t + 1
    pre spikes:   x1 = min(x1 + x1_impulse, 127) where s and tx > 0 (a repeated spike in the epoch); tx = ts where s
    post spikes:  y1 = min(y1 + y1_impulse, 127) where z and ty > 0; ty = ts where z
    third factor: y2 = the value the op's third_factor node output at step t (Lava Loihi3FLearningRule: s_in_y2)
    every t_epoch steps: the learning phase of :class:`~neurodeploy.ir.ops.PlasticDense` (trace histories, terms,
                  stochastic rounding of the weight), then tx = ty = 0

Delays (``op.delays``): Loihi 2 puts the synaptic delay on the dendritic side, so the traces see a pre spike at
its own step (above) and only the delivered current is delayed: :meth:`PlasticRunner.accumulate` returns one
bucket ``(d, W_d @ s)`` per delay value ``d`` (``W_d`` = the current weights where ``delays == d``), which the
engine delivers at ``t + 1 + d``, exactly like a static synapse's buckets. A mask (``op.mask``, Lava
``LearningSparse``) keeps the weights outside it at 0: the learning phase only writes the masked entries.

The third factor's epoch history is Lava's for a Loihi3FLearningRule: ``h2[0] = y2`` (the value received at the
epoch's last step), then ``h2[t] = floor(e^{-1/65535} h2[t-1]) + (r_y < frac(...))`` -- the rule's fixed y2 tau
of ``2**16 - 1`` with the y-trace draw ``r_y`` of that step (so y2 drops by one with probability ~ y2 / 65535 per
decay step), no impulse; the term reads ``h2`` at the dependency's time like y1.

Initial weights are prepared once as Lava does on its first step (:func:`arithmetic.effective_weights`: sign-mode
clip and truncation to ``num_weight_bits``); learned weights are not truncated again, only clipped.

Random numbers (deterministic: seeded exactly as Lava seeds them). Lava draws scalar uniforms, shared by every
synapse, from ``numpy.random.default_rng`` streams: the x-trace decay stream is seeded ``rng_seed``, the y-trace
decay stream ``rng_seed + 2`` (the impulse-addition streams ``rng_seed + 1`` / ``+ 3`` only matter for fractional
impulses, which the IR does not allow), and the weight-rounding stream with Lava's fixed seed 2. Each stream draws
once when the process is built; the trace streams advance twice per step (before and after the post spikes are
read) and the weight stream once per epoch, before it is used. So the learning phase at step ``t`` uses draw
number ``2 t`` of the trace streams and draw number ``t / t_epoch`` of the weight stream (0 = the build-time
draw). Trace decay multiplies by ``exp(-1/tau)`` in float64, as Lava does (Loihi silicon uses a fixed-point
decay; neither Lava nor this module models that), then floors and rounds up when the draw is below the fraction.

State is per batch element: weights ``[B, n_out, n_in]``; every sample starts from the op's weights and zero
traces (a fresh Lava build per sample). Concatenate samples in time to learn across them.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from neurodeploy.errors import InputError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.learning import FACTOR_WIDTH, Term, parse_rule
from neurodeploy.ir.ops import PlasticDense

TRACE_MAX = 127                 # 7-bit traces
ACC_SHIFT = 7                   # weights enter the 16-bit signed accumulator shifted by W_ACCUMULATOR_S - W_WEIGHTS_S
ACC_BITS = 15                   # accumulator magnitude bits (W_ACCUMULATOR_U)
ACC_MIN, ACC_MAX = -(2**ACC_BITS) - 1, 2**ACC_BITS - 1
SCALE_BITS = 4                  # W_S_MANT
WEIGHT_ROUND_SEED = 2           # lava ConnVarRandom default seed
WEIGHT_BOUNDS = ar.WEIGHT_RANGES
Y2_TAU = 2**16 - 1               # Loihi3FLearningRule fixes the y-trace taus at np.iinfo(np.uint16).max


def random_stream(seed: int, draws: int) -> np.ndarray:
    """The first ``draws`` uniforms of ``default_rng(seed).random`` (draw 0 is Lava's build-time draw)."""
    return np.random.default_rng(seed).random(draws)


def term_update(term: Term, dep: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
    """One term's integer contribution to the 16-bit accumulator (Lava ``LearningRuleApplierBitApprox``).

    ``dep`` is the dependency (0/1, broadcastable to ``[B, n_out, n_in]``), ``values`` the factors evaluated at the
    dependency's time. ``p = dep * prod(clip(f)) * m``, ``p >>= max(0, sum(widths) + 4 - 15)``, ``p <<= e + 7``,
    clipped to the accumulator. Magnitudes stay below 2**31 (3 factors at most), so int64 equals Lava's int32.
    """
    p = dep.astype(np.int64)
    width = 0
    for f in term.factors:
        w = FACTOR_WIDTH[f]
        width += w
        p = p * np.clip(values[f], -(2**w), 2**w - 1)
    p = p * term.mantissa
    p = p >> max(0, width + SCALE_BITS - ACC_BITS)
    p = p << (term.exponent + 7)
    return np.clip(p, ACC_MIN, ACC_MAX)


def decay_history(trace: np.ndarray, last: np.ndarray, tau: int, impulse: int, t_epoch: int, r: float
                  ) -> np.ndarray:
    """Trace values ``h[0..t_epoch]`` over one epoch (``[t_epoch + 1, *trace.shape]``): decay, then the impulse of
    the epoch's last spike at its step ``last`` (0 = none)."""
    hist = np.zeros((t_epoch + 1,) + trace.shape, np.int64)
    hist[0] = trace
    factor = math.exp(-1.0 / tau) if tau else 0.0
    for t in range(1, t_epoch + 1):
        if tau:
            scaled = factor * hist[t - 1]
            frac = scaled % 1
            hist[t] = np.floor(scaled).astype(np.int64) + (r < frac)
        hit = last == t
        hist[t][hit] = np.minimum(hist[t][hit] + impulse, TRACE_MAX)
    return hist


def at_time(hist: np.ndarray, when: np.ndarray) -> np.ndarray:
    """``hist[when[b, i], b, i]`` for a history ``[T + 1, B, n]`` and times ``when [B, n]``."""
    return np.take_along_axis(hist, when[None].astype(np.int64), axis=0)[0]


class PlasticRunner:
    """A PlasticDense node prepared for execution: per-sample weights, traces and the rule (module docstring).

    Weights are held per synapse, ``[B, K]`` for the ``K`` synapses that exist (all ``n_out * n_in`` entries without
    a mask), so a sparse reservoir costs ``O(K)`` per step; :attr:`w` gives them as ``[B, n_out, n_in]``.
    """

    def __init__(self, name: str, op: PlasticDense, steps: int | None = None):
        self.name = name
        self.op = op
        self.terms = parse_rule(op.dw, name)
        self.sign_mode = op.sign_mode or "mixed"
        w = np.rint(np.asarray(op.weight, np.float64)).astype(np.int64)
        dense = ar.effective_weights(w, self.sign_mode, op.num_weight_bits)
        self.n_out, self.n_in = dense.shape
        mask = np.ones(dense.shape, bool) if op.mask is None else np.asarray(op.mask, bool)
        self.rows, self.cols = (a.astype(np.int64) for a in np.nonzero(mask))
        self.initial = dense[self.rows, self.cols]
        self.weight_exp = int(op.weight_exp)
        delays = np.zeros(self.rows.size, np.int64) if op.delays is None else \
            np.asarray(op.delays, np.int64)[self.rows, self.cols]
        #: per delay value d: (d, synapse indices with that delay, [K_d, n_out] 0/1 matrix summing them per row)
        self.delay_buckets = []
        for d in np.unique(delays) if delays.size else [0]:
            idx = np.flatnonzero(delays == d)
            gather = sp.csr_matrix((np.ones(idx.size), (np.arange(idx.size), self.rows[idx])),
                                   shape=(idx.size, self.n_out))
            self.delay_buckets.append((int(d), idx, gather))
        self.max_delay = int(delays.max()) if delays.size else 0
        self.graded = False
        self.dtype = np.float64
        self.fanout = np.bincount(self.cols[self.initial != 0], minlength=self.n_in).astype(np.int64)  # at start
        self.lo, self.hi = WEIGHT_BOUNDS[self.sign_mode]
        self.uses_y2 = any("y2" in t.factors for t in self.terms)

    @property
    def w(self) -> np.ndarray:
        """The current weights ``[B, n_out, n_in]`` (0 where no synapse exists)."""
        out = np.zeros((self.wk.shape[0], self.n_out, self.n_in), np.int64)
        out[:, self.rows, self.cols] = self.wk
        return out

    def reset(self, batch: int, steps: int) -> None:
        """Fresh state for a run of ``batch`` samples and ``steps`` steps (one Lava build per sample)."""
        self.wk = np.broadcast_to(self.initial, (batch, self.initial.size)).copy()
        self.x1 = np.zeros((batch, self.n_in), np.int64)
        self.y1 = np.zeros((batch, self.n_out), np.int64)
        self.y2 = np.zeros(batch, np.int64)
        self.tx = np.zeros((batch, self.n_in), np.int64)
        self.ty = np.zeros((batch, self.n_out), np.int64)
        self.r_x = random_stream(self.op.rng_seed, 2 * steps + 1)
        self.r_y = random_stream(self.op.rng_seed + 2, 2 * steps + 1)
        self.r_w = random_stream(WEIGHT_ROUND_SEED, steps // self.op.t_epoch + 1)

    def accumulate(self, s: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``W_d,b @ s_b`` per sample and delay bucket ``d`` (module docstring), as integers in float64 like the
        static runner (exact: sums of at most K 9-bit integers)."""
        contrib = (self.wk * (s[:, self.cols] != 0)).astype(np.float64)
        return [(d, np.asarray((gather.T @ contrib[:, idx].T).T)) for d, idx, gather in self.delay_buckets]

    def observe(self, t: int, pre: np.ndarray, post: np.ndarray, y2: np.ndarray | None = None) -> None:
        """Spike phase of step ``t`` (1-based) with this step's pre and post spikes and the third factor ``y2``
        (``[B]``, required when the rule uses y2); learning phase at epoch ends."""
        t_epoch = int(self.op.t_epoch)
        ts = t % t_epoch or t_epoch
        pre, post = pre.astype(bool), post.reshape(post.shape[0], -1).astype(bool)
        again = pre & (self.tx > 0)
        self.x1[again] = np.minimum(self.x1[again] + self.op.x1_impulse, TRACE_MAX)
        self.tx[pre] = ts
        again = post & (self.ty > 0)
        self.y1[again] = np.minimum(self.y1[again] + self.op.y1_impulse, TRACE_MAX)
        self.ty[post] = ts
        if y2 is not None:
            self.y2 = np.broadcast_to(np.asarray(y2, np.int64), self.y2.shape).copy()
        elif self.uses_y2:
            raise InputError(f"PlasticDense '{self.name}' uses y2 but received no third factor",
                             fix=f"add the Astrocyte node '{self.op.third_factor}' to the graph")
        if t % t_epoch == 0:
            self._learn(t, t // t_epoch)

    def _learn(self, t: int, epoch: int) -> None:
        t_epoch = int(self.op.t_epoch)
        hx = decay_history(self.x1, self.tx, int(self.op.x1_tau), int(self.op.x1_impulse), t_epoch, self.r_x[2 * t])
        hy = decay_history(self.y1, self.ty, int(self.op.y1_tau), int(self.op.y1_impulse), t_epoch, self.r_y[2 * t])
        h2 = None
        if self.uses_y2:  # [t_epoch + 1, B]: Lava's 3F decay of the received value (module docstring)
            h2 = decay_history(self.y2, np.zeros_like(self.y2), Y2_TAU, 0, t_epoch, self.r_y[2 * t])
        rows, cols = self.rows, self.cols
        b = np.arange(self.wk.shape[0])[:, None]
        tx, ty = self.tx[:, cols], self.ty[:, rows]          # [B, K]: each synapse's pre / post spike time
        acc = self.wk << ACC_SHIFT
        for term in self.terms:
            if term.dependency == "x0":     # traces at the pre neuron's last spike: x1[j](tx_j), y1[i](tx_j)
                dep, when = tx > 0, tx
            elif term.dependency == "y0":   # traces at the post neuron's last spike: x1[j](ty_i), y1[i](ty_i)
                dep, when = ty > 0, ty
            else:                           # u0: every epoch, the traces at its end
                dep, when = np.ones((1, 1), bool), np.full((1, 1), t_epoch)
            values = {"x1": hx[when, b, cols], "y1": hy[when, b, rows], "w": self.wk}
            if h2 is not None:
                values["y2"] = h2[when, b]
            acc = np.clip(acc + term_update(term, dep, values), ACC_MIN, ACC_MAX)
        if self.sign_mode == "excitatory":
            acc = np.maximum(acc, 0)
        elif self.sign_mode == "inhibitory":
            acc = np.minimum(acc, 0)
        scaled = acc / float(1 << ACC_SHIFT)
        frac = scaled % 1
        self.wk = np.clip(np.floor(scaled).astype(np.int64) + (self.r_w[epoch] < frac), self.lo, self.hi)
        self.x1, self.y1 = hx[-1], hy[-1]
        self.tx[:] = 0
        self.ty[:] = 0
