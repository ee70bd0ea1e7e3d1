"""The astrocyte controller (:class:`neurodeploy.ir.ops.Astrocyte`): its integer runner, its float twin, its table.

:class:`AstrocyteRunner` executes the op's integer steps (stated in the op's docstring) vectorised over the batch;
:class:`FloatAstrocyte` runs the same algorithm in real numbers, so the integer controller can be checked against
it; :func:`astrocyte_table` builds the y2 lookup table and :func:`astrocyte_op` an op from float constants.

Integer vs float, what differs and by how much (the agreement test's tolerance): the flooring EMA shift lags the
float EMA by less than ``2**shift`` LSB in total (``2**(shift - F)`` spikes: 2**-8 at F = 16, shift = 8), the
credit ``D`` is rounded to ``2**-F``, ``sigma_hat`` is floored to ``2**-sigma_bits`` (a relative change of ``m`` by
at most ``exp(gain 2**-sigma_bits) - 1``: 8 % at gain 5, sigma_bits 6) and ``y2`` is rounded to an integer.
"""

from __future__ import annotations

import math

import numpy as np

from neurodeploy.errors import InputError
from neurodeploy.ir.ops import Astrocyte

Y2_MAX = 127  # 7-bit third-factor trace (Lava s_in_y2 precision 7)


def astrocyte_table(gain: float, target: float, log_m_max: float, y2_unit: int, sigma_bits: int = 6,
                    sigma_max: float = 4.0) -> np.ndarray:
    """``table[q] = clip(round(y2_unit exp(clip(gain (q / 2**sigma_bits - target), +-log_m_max))), 0, 127)`` for
    ``q = 0 .. sigma_max * 2**sigma_bits`` (numpy's round: half to even). Larger ``q`` use the last entry."""
    q = np.arange(int(round(sigma_max * 2**sigma_bits)) + 1, dtype=np.float64)
    log_m = np.clip(gain * (q / 2**sigma_bits - target), -log_m_max, log_m_max)
    return np.clip(np.round(y2_unit * np.exp(log_m)), 0, Y2_MAX).astype(np.int64)


def astrocyte_op(excitatory: np.ndarray, drive: str, g_rec: float, g_drive: float, gain: float, target: float,
                 log_m_max: float, y2_unit: int = 32, tau: int = 256, frac_bits: int = 16, sigma_bits: int = 6,
                 origin: str = "") -> Astrocyte:
    """An :class:`Astrocyte` from float constants: the gains scaled so the larger is 255 (rounded; only their
    ratio matters), ``tau`` a power of two (``shift = log2 tau``)."""
    shift = int(round(math.log2(tau)))
    if 2**shift != tau:
        raise InputError(f"astrocyte tau = {tau} is not a power of two (the EMA is a shift)",
                         fix="use tau = 128, 256 or 512")
    top = max(g_rec, g_drive)
    if top <= 0:
        raise InputError("astrocyte gains g_rec and g_drive are both zero", fix="give the mean drive weights")
    return Astrocyte(excitatory=np.asarray(excitatory, bool), drive=drive, g_rec=int(round(255 * g_rec / top)),
                     g_drive=int(round(255 * g_drive / top)), frac_bits=frac_bits, shift=shift,
                     sigma_bits=sigma_bits, target=float(target),
                     table=astrocyte_table(gain, target, log_m_max, y2_unit, sigma_bits), origin=origin)


class AstrocyteRunner:
    """The integer steps of :class:`Astrocyte`, vectorised over a batch of independent samples."""

    def __init__(self, name: str, op: Astrocyte):
        self.name = name
        self.op = op
        self.excitatory = np.asarray(op.excitatory, bool).ravel()
        self.table = np.asarray(op.table, np.int64)
        self.neutral = int(self.table[min(int(round(op.target * 2**op.sigma_bits)), self.table.size - 1)])

    def reset(self, batch: int) -> None:
        self.dbar = np.zeros(batch, np.int64)
        self.nbar = np.zeros(batch, np.int64)
        self.prev_e = np.zeros(batch, np.int64)      # e and x of the step before (spikes of t - 1)
        self.prev_x = np.zeros(batch, np.int64)
        self.y2 = np.full(batch, self.neutral, np.int64)

    def step(self, spikes: np.ndarray, drive: np.ndarray) -> np.ndarray:
        """One step: ``spikes`` ``[B, n]`` of the population at ``t``, ``drive`` ``[B, P]`` the drive node's spikes
        emitted at ``t`` (used at ``t + 1``). Returns ``y2`` ``[B]``."""
        op = self.op
        s = spikes.reshape(spikes.shape[0], -1) != 0
        n = s.sum(axis=1).astype(np.int64)
        e, x = self.prev_e, self.prev_x
        num = int(op.g_rec) * e
        den = num + int(op.g_drive) * x
        d = np.where(den > 0, (n * num * (1 << op.frac_bits) + den // 2) // np.maximum(den, 1), 0)
        self.dbar = self.dbar + ((d - self.dbar) >> op.shift)
        self.nbar = self.nbar + (((e << op.frac_bits) - self.nbar) >> op.shift)
        q = (self.dbar << op.sigma_bits) // np.maximum(self.nbar, 1)
        self.y2 = np.where(self.nbar > 0, self.table[np.minimum(q, self.table.size - 1)], self.neutral)
        self.prev_e = s[:, self.excitatory].sum(axis=1).astype(np.int64)
        self.prev_x = (drive.reshape(drive.shape[0], -1) != 0).sum(axis=1).astype(np.int64)
        return self.y2

    @property
    def sigma_hat(self) -> np.ndarray:
        """The current estimate as a float (``Dbar / Nbar``; NaN while ``Nbar = 0``)."""
        return np.where(self.nbar > 0, self.dbar / np.maximum(self.nbar, 1), np.nan)


class FloatAstrocyte:
    """The float twin of :class:`AstrocyteRunner`: the same steps on the counts ``(n, e, x)`` in real numbers,
    ``tau = 2**shift``, ``m = exp(clip(gain (Dbar / Nbar - target), +-log_m_max))`` (1 while ``Nbar = 0``) and
    ``y2 = clip(y2_unit m, 0, 127)``. State arrays hold one astrocyte per run."""

    def __init__(self, g_rec: float, g_drive: float, tau: float, gain: float, target: float, log_m_max: float,
                 y2_unit: float = 32.0, runs: int = 1):
        self.g_rec, self.g_drive, self.tau = float(g_rec), float(g_drive), float(tau)
        self.gain, self.target, self.log_m_max, self.y2_unit = float(gain), float(target), float(log_m_max), \
            float(y2_unit)
        self.dbar = np.zeros(runs)
        self.nbar = np.zeros(runs)
        self.m = np.ones(runs)

    @classmethod
    def of(cls, op: Astrocyte, gain: float, log_m_max: float, y2_unit: float = 32.0, runs: int = 1
           ) -> FloatAstrocyte:
        """The twin of an integer op (its integer gains, ``tau = 2**shift``, target)."""
        return cls(op.g_rec, op.g_drive, 2**op.shift, gain, op.target, log_m_max, y2_unit, runs)

    @property
    def sigma(self) -> np.ndarray:
        return np.divide(self.dbar, self.nbar, out=np.full(self.nbar.shape, np.nan), where=self.nbar > 0)

    @property
    def y2(self) -> np.ndarray:
        return np.clip(self.y2_unit * self.m, 0, Y2_MAX)

    @property
    def log_m(self) -> np.ndarray:
        return np.log(self.m)

    def step(self, n: np.ndarray, e: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Counts of step ``t``: ``n`` spikes now, ``e`` ancestor spikes and ``x`` drive spikes of ``t - 1``.
        Returns the LTD modulation ``m`` (a copy)."""
        num = self.g_rec * np.asarray(e, np.float64)
        den = num + self.g_drive * np.asarray(x, np.float64)
        d = np.divide(np.asarray(n, np.float64) * num, den, out=np.zeros(np.shape(den)), where=den > 0)
        self.dbar = self.dbar + (d - self.dbar) / self.tau
        self.nbar = self.nbar + (np.asarray(e, np.float64) - self.nbar) / self.tau
        err = self.sigma - self.target
        log_m = np.clip(self.gain * np.nan_to_num(err, nan=0.0), -self.log_m_max, self.log_m_max)
        self.m = np.exp(log_m)
        return self.m.copy()
