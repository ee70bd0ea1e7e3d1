"""Float parameters -> Loihi integer fields: the rounding rule of every quantizer, one function per field.

Every rounding here is *round half to even* (``numpy.rint``), then a clip to the field's range; the number of
clipped values is returned as ``saturated`` so the caller can report it. ``lam`` (lambda) is the target
population's scale: integer synaptic-input units per float unit (see :class:`neurodeploy.ir.ops.QuantInfo`).

* Weights (Lava ``clip_weights`` + ``truncate_weights``): with ``k = 8 - num_weight_bits + (1 if mixed)`` the
  mantissas Lava leaves unchanged are the multiples of ``2**k`` in ``[0, 255]`` (excitatory), ``[-255, 0]``
  (inhibitory) or ``[-256, 255]`` (mixed). ``m = 2**k * clip(rint(lam * w / 2**weight_exp / 2**k))``, so that
  ``m * 2**weight_exp ~= lam * w``.
* Bias: ``B = 64 * lam * b`` (v is 64 lambda per float unit); per neuron the smallest ``bias_exp`` in the
  profile's range with ``rint(B / 2**bias_exp)`` inside the signed mantissa range, ``bias = rint(B / 2**bias_exp)``
  (clipped, at the largest exponent, when none fits).
* Threshold: ``vth = clip(rint(lam * theta), 0, 2**vth_bits - 1)``.
* Decays: ``du = clip(rint(4096 * du_float) - 1, 0, 4095)`` (Lava multiplies by ``4096 - (du + 1)``) and
  ``dv = clip(rint(4096 * dv_float), 0, 4095)``; effective decays ``(du + 1) / 4096`` and ``dv / 4096``.
"""

from __future__ import annotations

import numpy as np

from neurodeploy.ir.arithmetic import DECAY_BITS, DECAY_UNITY, WEIGHT_BITS, WEIGHT_RANGES
from neurodeploy.ir.ops import Sparse

SIGN_LIMITS = WEIGHT_RANGES  # sign mode -> Lava's clip range (neurodeploy.ir.arithmetic)


def rint(x) -> np.ndarray:
    """Round half to even (``numpy.rint``), as int64."""
    return np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)


def sign_mode_of(weights: np.ndarray) -> str:
    """Lava's rule: all >= 0 excitatory, all <= 0 (some < 0) inhibitory, otherwise mixed."""
    w = np.asarray(weights)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def weight_grid(sign_mode: str, num_weight_bits: int) -> tuple[int, int, int]:
    """``(lo, hi, step)``: mantissas unchanged by Lava's clip + truncate are the multiples of step in [lo, hi]."""
    lo, hi = SIGN_LIMITS[sign_mode]
    step = 1 << (WEIGHT_BITS - int(num_weight_bits) + int(sign_mode == "mixed"))
    return -((-lo) // step) * step, (hi // step) * step, step


def quantize_weights(scaled: np.ndarray, weight_exp: int, sign_mode: str, num_weight_bits: int
                     ) -> tuple[np.ndarray, int]:
    """Mantissas for ``scaled = lam * w`` at ``weight_exp``; returns ``(mantissas int64, #clipped)``."""
    lo, hi, step = weight_grid(sign_mode, num_weight_bits)
    # one float64 temporary, updated in place: / 2**weight_exp / step are exact (powers of two), so is their product
    q = np.multiply(np.asarray(scaled, dtype=np.float64), 1.0 / (2.0 ** weight_exp * step))
    np.rint(q, out=q)
    q_lo, q_hi = lo // step, hi // step
    n_clipped = int(np.count_nonzero(q < q_lo)) + int(np.count_nonzero(q > q_hi))
    np.clip(q, q_lo, q_hi, out=q)
    q *= step
    return q.astype(np.int64), n_clipped


def fitting_exponent(scaled: np.ndarray, sign_mode: str, num_weight_bits: int, exp_min: int, exp_max: int) -> int:
    """Smallest ``weight_exp`` in ``[exp_min, exp_max]`` at which no mantissa clips (``exp_max`` if none)."""
    for exp in range(exp_min, exp_max + 1):
        if quantize_weights(scaled, exp, sign_mode, num_weight_bits)[1] == 0:
            return exp
    return exp_max


def quantize_bias(scaled: np.ndarray, bias_bits: int, exp_min: int, exp_max: int
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """``scaled = 64 * lam * b`` -> ``(mantissa, bias_exp, #clipped)`` with the smallest fitting exponent."""
    x = np.asarray(scaled, dtype=np.float64)
    lo, hi = -(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1
    exps = np.full(x.shape, exp_max, dtype=np.int64)
    undecided = np.ones(x.shape, dtype=bool)
    for exp in range(exp_min, exp_max + 1):
        q = rint(x / 2.0 ** exp)
        fits = undecided & (q >= lo) & (q <= hi)
        exps[fits] = exp
        undecided &= ~fits
    q = rint(x / 2.0 ** exps)
    mant = np.clip(q, lo, hi)
    return mant, exps, int(np.count_nonzero(mant != q))


def effective_bias(mant: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """``mant * 2**exp`` as float (exponents are >= 0 in every profile, so this is exact)."""
    return np.asarray(mant, dtype=np.float64) * 2.0 ** np.asarray(exps, dtype=np.float64)


def quantize_threshold(scaled: float, vth_bits: int) -> tuple[int, int]:
    """``scaled = lam * theta`` -> ``(vth, #clipped)``."""
    q = int(rint(scaled))
    v = min(max(q, 0), (1 << vth_bits) - 1)
    return v, int(v != q)


def quantize_du(du: float, du_bits: int = DECAY_BITS) -> tuple[int, int]:
    """``du -> clip(rint(4096 du) - 1, 0, 2**du_bits - 1)``; returns ``(du_int, #clipped)``."""
    q = int(rint(float(DECAY_UNITY) * du)) - 1
    v = min(max(q, 0), (1 << du_bits) - 1)
    return v, int(v != q)


def quantize_dv(dv: float, dv_bits: int = DECAY_BITS) -> tuple[int, int]:
    """``dv -> clip(rint(4096 dv), 0, 2**dv_bits - 1)``; returns ``(dv_int, #clipped)``."""
    q = int(rint(float(DECAY_UNITY) * dv))
    v = min(max(q, 0), (1 << dv_bits) - 1)
    return v, int(v != q)


def relative_error(quantized, reference) -> float:
    """RMS error over RMS value: ``sqrt(sum (q - x)**2 / sum x**2)``; the absolute RMS error when ``x`` is 0."""
    q = np.asarray(quantized, dtype=np.float64).ravel()
    x = np.asarray(reference).ravel()
    if q.size == 0:
        return 0.0
    diff = np.subtract(q, x, dtype=np.float64)
    err = float(np.dot(diff, diff))
    del diff
    norm = float(np.dot(x, x)) if x.dtype == np.float64 else float(np.sum(np.square(x, dtype=np.float64)))
    return float(np.sqrt(err / norm)) if norm > 0 else float(np.sqrt(err / q.size))


#: Entries per chunk when checking a Sparse op's order (bounds the temporaries of :func:`entries_unique`).
_CHUNK = 1 << 22


def _strictly_increasing(major: np.ndarray, minor: np.ndarray, n_minor: int) -> bool:
    """Whether the keys ``major * n_minor + minor`` strictly increase (so no pair repeats), in chunks."""
    n = major.size
    prev = None
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        key = major[start:stop].astype(np.int64) * n_minor + minor[start:stop]
        if (prev is not None and key[0] <= prev) or np.any(key[1:] <= key[:-1]):
            return False
        prev = key[-1]
    return True


def entries_unique(op: Sparse) -> bool:
    """A cheap sufficient test that no (row, col) pair repeats: the entries are strictly sorted by (row, col) or by
    (col, row) -- how generators and CSR/CSC exports store them. ``O(nnz)``, no sort; False means "unknown"."""
    row, col = np.asarray(op.row), np.asarray(op.col)
    n_rows, n_cols = int(np.prod(op.out_shape, dtype=np.int64)), int(op.in_size)
    return _strictly_increasing(row, col, n_cols) or _strictly_increasing(col, row, n_rows)


def merge_sparse(op: Sparse) -> Sparse:
    """Sum duplicate (row, col, delay) entries, as Lava's CSR weights are summed before clip and truncate.

    Entries come back sorted by (row, col, delay) when some were merged; an op without duplicates is returned
    unchanged (same object). Unique (row, col) pairs are first recognised in ``O(nnz)`` from the storage order
    (:func:`entries_unique`); otherwise each entry gets one int64 key ``(row * n_cols + col) * n_delays +
    (delay - min delay)``, whose order is the lexicographic order of (row, col, delay), and ``np.unique`` runs on
    those 1-D keys (8 bytes per entry instead of a ``[nnz, 3]`` int64 array and its structured-view copies).
    """
    if op.value.size == 0 or entries_unique(op):
        return op
    row, col = np.asarray(op.row, np.int64), np.asarray(op.col, np.int64)
    n_cols = int(op.in_size)
    delays = None if op.delays is None else np.asarray(op.delays, np.int64).ravel()
    d_min = int(delays.min()) if delays is not None else 0
    n_delays = int(delays.max()) - d_min + 1 if delays is not None else 1
    n_rows = int(np.prod(op.out_shape, dtype=np.int64))
    if n_rows * n_cols * n_delays >= 1 << 62:  # the key would overflow int64: sort the triples
        triples = np.stack([row, col, delays if delays is not None else np.zeros_like(row)], axis=1)
        uniq3, inverse = np.unique(triples, axis=0, return_inverse=True)
        uniq_row, uniq_col, uniq_delay = uniq3[:, 0], uniq3[:, 1], uniq3[:, 2]
    else:
        key = row * n_cols + col
        if delays is not None:
            key = key * n_delays + (delays - d_min)
        uniq, inverse = np.unique(key, return_inverse=True)
        if uniq.size == key.size:
            return op
        pair = uniq // n_delays
        uniq_row, uniq_col, uniq_delay = pair // n_cols, pair % n_cols, uniq % n_delays + d_min
    if uniq_row.size == row.size:
        return op
    values = np.bincount(inverse.ravel(), weights=np.asarray(op.value, np.float64), minlength=uniq_row.size)
    if np.issubdtype(np.asarray(op.value).dtype, np.integer):
        values = np.rint(values).astype(np.int64)
    return op.replace(row=uniq_row, col=uniq_col, value=values, delays=None if op.delays is None else uniq_delay)
