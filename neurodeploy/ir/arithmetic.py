"""Loihi fixed-point arithmetic, exactly as Lava 0.10.0's bit-accurate CPU models compute it.

Every function works on int64 numpy arrays and reproduces Lava's int32 behaviour (values that Lava stores in int32
buffers wrap modulo 2**32) so that results are equal to the last bit, including the overflow corner cases.
"""

from __future__ import annotations

import numpy as np

# --- Lava 0.10 / Loihi 2 integer rules: the one home of every constant the engines, passes and backends use ---
SIGN_MODE_CODES = {"mixed": 1, "excitatory": 2, "inhibitory": 3}  # lava.utils.weightutils.SignMode values

INT32_HALF = 1 << 31  # wrap32(x) = ((x + INT32_HALF) & INT32_MASK) - INT32_HALF: an int32 store
INT32_MASK = (1 << 32) - 1
INT32_MIN = -INT32_HALF
INT32_MAX = INT32_HALF - 1

DECAY_SHIFT = 12  # decays are 12-bit fractions of 2**12
DECAY_UNITY = 1 << DECAY_SHIFT
TRUNC_BIAS = DECAY_UNITY - 1  # added to a negative product, it turns the floor shift by 12 into truncation
ACT_SHIFT = 6  # synaptic input is left-shifted by 6 bits before it is added to u
VTH_SHIFT = 6  # the threshold is left-shifted by 6 bits before the comparison
UV_BITS = 24  # u and v are 24-bit signed state
MAX_UV = 1 << (UV_BITS - 1)
UV_SPAN = 1 << UV_BITS  # Lava's conditional wrap of u adds or subtracts 2**24

# --- field ranges of the quantized ops (Loihi 2 as Lava 0.10 documents them) ---
DECAY_BITS = 12
DECAY_MAX = (1 << DECAY_BITS) - 1  # du, dv in [0, 4095]
VTH_BITS = 17
VTH_MAX = (1 << VTH_BITS) - 1  # vth mantissa in [0, 2**17 - 1]
BIAS_MANT_BITS = 13  # signed
BIAS_MANT_RANGE = (-(1 << (BIAS_MANT_BITS - 1)), (1 << (BIAS_MANT_BITS - 1)) - 1)  # [-4096, 4095]
BIAS_EXP_RANGE = (0, 7)
WEIGHT_BITS = 8  # weights are clipped to 8 bits (plus sign in mixed mode)
#: sign mode -> the range Lava clips weights to (clip_weights)
WEIGHT_RANGES = {"excitatory": (0, (1 << WEIGHT_BITS) - 1), "inhibitory": (-((1 << WEIGHT_BITS) - 1), 0),
                 "mixed": (-(1 << WEIGHT_BITS), (1 << WEIGHT_BITS) - 1)}
WEIGHT_BITS_RANGE = (1, WEIGHT_BITS)  # num_weight_bits
MAX_DELAY = 62  # Loihi 2 synaptic delays are 6-bit; the design fixes the usable range to [0, 62]


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """``x`` modulo 2**32 into [-2**31, 2**31), as an int32 store does (returned as int64)."""
    return ((np.asarray(x, dtype=np.int64) + INT32_HALF) & INT32_MASK) - INT32_HALF


def shift(x: np.ndarray, exp: int | np.ndarray) -> np.ndarray:
    """``x << exp`` for ``exp >= 0``, else ``x >> -exp`` (arithmetic, i.e. floor division by 2**-exp)."""
    x = np.asarray(x, dtype=np.int64)
    exp = np.asarray(exp, dtype=np.int64)
    return np.where(exp >= 0, np.left_shift(x, np.maximum(exp, 0)), np.right_shift(x, np.maximum(-exp, 0)))


def decay(x: np.ndarray, factor: int) -> np.ndarray:
    """``sign(x * factor) * (|x * factor| >> 12)``: multiply by ``factor / 4096`` rounding toward zero."""
    p = np.asarray(x, dtype=np.int64) * np.int64(factor)
    return np.sign(p) * np.right_shift(np.abs(p), DECAY_SHIFT)


def effective_weights(weights: np.ndarray, sign_mode: str | None, num_weight_bits: int | None,
                      dtype=np.int64) -> np.ndarray:
    """Lava's one-time weight preparation: ``clip_weights`` to 8 bits by sign mode, then ``truncate_weights``.

    ``weights`` are integers (or floats holding integers); Lava first casts them to int32 (wrap-around). Sign mode
    ``None`` is determined as Lava does: all >= 0 excitatory, all <= 0 inhibitory, else mixed. Clip: excitatory
    [0, 255], inhibitory [-255, 0], mixed [-256, 255]. Truncate ``k = 8 - bits + (1 if mixed)`` least significant
    bits of the magnitude-signed value (inhibitory weights are negated, truncated, negated back). Returned as
    ``dtype`` (the values fit int16).
    """
    w = np.asarray(weights)
    lo = hi = 0
    if w.size:
        lo, hi = w.min(), w.max()
    if not (w.dtype.kind in "iuf" and INT32_MIN <= lo and hi < INT32_HALF):  # else the int32 cast is the identity
        w = wrap_int32(w)
        lo, hi = (w.min(), w.max()) if w.size else (0, 0)
    if sign_mode is None:
        sign_mode = "excitatory" if lo >= 0 else "inhibitory" if hi <= 0 else "mixed"
    bits = WEIGHT_BITS if num_weight_bits is None else int(num_weight_bits)
    mixed = int(sign_mode == "mixed")
    bounds = WEIGHT_RANGES.get(sign_mode, WEIGHT_RANGES["excitatory"])
    w = np.clip(w, *bounds).astype(np.int16)
    k = WEIGHT_BITS - bits + mixed
    if k and sign_mode == "inhibitory":
        w = -(np.right_shift(-w, k) << k)
    elif k:
        w = np.right_shift(w, k) << k
    return w.astype(dtype, copy=False)


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """``bias_mant << bias_exp`` (``>> -bias_exp``, floor, for a negative exponent), as ``scale_bias`` (int32)."""
    return wrap_int32(shift(bias_mant, bias_exp)).astype(np.int32)


def _trunc_shift(p: np.ndarray) -> np.ndarray:
    """``sign(p) * (|p| >> 12)`` for int64 ``p``: adding 4095 to negatives turns the floor shift into truncation."""
    p += (p >> 63) & TRUNC_BIAS
    p >>= DECAY_SHIFT
    return p


def lif_step(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, du: int, dv: int, bias: np.ndarray, vth: int,
             reset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of Lava's ``PyLifModelBitAcc`` (see :class:`neurodeploy.ir.ops.CubaLIF`). Returns u, v, spikes.

    ``u``, ``v`` are int32 arrays (Lava's storage; numpy int32 arithmetic wraps modulo 2**32 exactly as Lava's
    does); ``a_in`` is the step's summed synaptic input as delivered by Lava's int32 ports; ``bias`` the effective
    bias (int32). Products with the decay factor are formed in int64, as Lava does.
    """
    decayed = _trunc_shift(u.astype(np.int64) * (DECAY_UNITY - (du + 1))).astype(np.int32)
    decayed += np.left_shift(a_in.astype(np.int32), ACT_SHIFT)  # int32: wraps like Lava
    out_of_range = (decayed > MAX_UV) | (decayed <= -MAX_UV)
    if out_of_range.any():  # Lava's single conditional wrap into 24 bits
        decayed = np.where(decayed > MAX_UV, decayed - np.int32(UV_SPAN),
                           np.where(decayed <= -MAX_UV, decayed + np.int32(UV_SPAN), decayed))
    u = decayed
    v_new = _trunc_shift(v.astype(np.int64) * (DECAY_UNITY - dv)).astype(np.int32)
    v_new += u
    v_new += bias
    np.minimum(v_new, MAX_UV - 1, out=v_new)
    np.maximum(v_new, -MAX_UV + 1, out=v_new)
    threshold = np.int32(wrap_int32(np.int64(vth) << VTH_SHIFT))
    spikes = v_new > threshold
    if reset == "zero":
        v_new[spikes] = 0
    else:  # "subtract": emulator-only extension, no Lava model
        v_new[spikes] -= threshold
    return u, v_new, spikes
