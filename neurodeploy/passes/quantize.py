"""The quantize pass: a folded float graph -> the same graph holding Loihi integers, one scale per population.

Maths (see :class:`neurodeploy.ir.ops.QuantInfo` and :mod:`neurodeploy.passes.quant_fields` for every rounding)
----------------------------------------------------------------------------------------------------------------
Each neuron population N gets a scale ``lam`` (integer synaptic-input units per float unit). Then

* every synapse S into N: ``weight * 2**weight_exp ~= lam * w`` with its own ``weight_exp`` (per connection),
  ``sign_mode`` from the float weights' signs, ``num_weight_bits`` from the profile, mantissas that Lava's
  clip/truncate leave unchanged, integer ``delays`` inside the profile's range;
* N itself: ``vth ~= lam * theta``, ``bias << bias_exp ~= 64 * lam * b`` (per-neuron exponent),
  ``du = round(4096 du) - 1`` and ``dv = round(4096 dv)`` clamped to ``[0, 4095]`` (the error is reported),
  u and v in 24 bits represent ``64 * lam * x``. IF becomes ``CubaLIF(du=4095, dv=0)``; LI becomes
  ``CubaLIF(vth=2**vth_bits - 1, readout=True)``.

Choosing ``lam`` (``method="calibrated"``, the default)
--------------------------------------------------------
The float graph is run once on the calibration stimuli (given, or generated Bernoulli spikes, see
:mod:`neurodeploy.passes.quant_calibration`), recording u, v and spikes. For each population:

1. *Hard* upper bounds, the fields must hold the values: ``lam * theta <= 2**vth_bits - 1`` and
   ``64 lam max|b| <= bias_max * 2**bias_exp_max``.
2. *Soft* upper bounds, so the 24-bit state neither wraps (u) nor saturates (v) and the per-step input fits
   ``activation_bits``: ``64 lam H max|u| <= 2**23 - 1``; ``64 lam max(max v, H max(-v)) <= 2**23 - 1`` for a
   spiking neuron (v resets at threshold, so only its negative excursion gets headroom), ``64 lam H max|v|``
   for a readout; ``lam H max|a| <= 2**(activation_bits - 1) - 1``. ``H = state_headroom`` (default 2) covers
   data the calibration did not show. A population that stayed silent is bounded by its worst-case input instead.
3. The *minimum useful scale* ``lam_min = 2**(min_weight_bits - 1) / max|w|`` (incoming weights) keeps the
   largest weight at ``min_weight_bits`` bits. If a hard bound lies below it, the value cannot be represented
   and :class:`~neurodeploy.errors.QuantizationError` names the field; if only a soft bound does, the soft bound
   wins and the report carries a warning.
4. Candidates: ``lam_hi * 2**(-j/candidates)`` for ``j < candidates`` (one octave: halving lam only shifts
   every exponent by one), per synapse the largest scale ``<= lam_hi`` at which its largest weight exactly
   fills the mantissa range, and the max-abs scale (below). For each candidate, each incoming synapse takes,
   among its fitting exponent (no clipping) and up to four finer ones (which clip outliers), the ``weight_exp``
   with the lowest expected per-step input error weighted by the presynaptic firing rates. The population is
   then emulated alone in Loihi integers (``simulate(..., arithmetic="int")``), driven by the *float* run's
   presynaptic spikes, and scored by (number of (sample, step, neuron) bins whose spike differs from the float
   run, relative RMS error of v). The lowest score wins; ties go to the larger scale.
5. *Large populations* (more than ``SEARCH_NEURONS`` = 4096 neurons and ``SEARCH_ENTRIES`` = 2**20 incoming
   synapse entries, all Sparse or non-plastic Dense): teacher-forced, the neurons of a population do not
   interact, so both the score and the expected input error are sums over its neurons. Step 4's choices
   (exponents and scale) are then made on ``SEARCH_NEURONS`` neurons drawn uniformly without replacement
   (``default_rng([seed, 7])``): each incoming synapse restricted to their entries and to the source neurons those
   entries read, each candidate emulated on that sub-population. Only the chosen trial is applied to the whole
   population, so the cost is ``O(synapses)`` once instead of ``O(candidates x synapses)``. The report's
   ``search_neurons`` says how many neurons were scored; ``input_rms_error``, ``candidates`` and
   ``agreement.teacher_forced`` are then sample estimates, every other figure is computed on the whole op. With
   the whole population as the sample the path gives exactly the full search's result (tests/test_quantize.py).

Residual synapses (``residual=<relative error>``, off by default)
-----------------------------------------------------------------
After the search, a synapse whose weight error exceeds ``residual`` gets a second synapse from the same source into
the same target, ``<name>.residual``, holding ``q(w - q(w))``: the rounding (and clipping) residual of the first at
the same scale ``lam`` and its own fitting ``weight_exp`` (both synapses have ``num_weight_bits``; the target sums
them, as Loihi sums several synapse processes into one neuron). The effective weight then carries about
``2 num_weight_bits - 1`` significant bits, at the price of a second synapse's memory and axons (the partition
pass counts each residual as its own synapse op: the connection's synaptic memory and fan-in double). The
report's ``residual`` (on the main synapse) gives the combined ``error.weight``; ``zeros.weight`` of the main
synapse and of its residuals counts the non-zero float weights that all of them together round to 0
(``zeros.weight_alone``: the synapse's own count). If one residual does not bring the
error within ``residual`` (the first synapse clipped), a second one (``<name>.residual2``) carries what is left;
at most ``MAX_RESIDUALS`` = 2.

``exact_threshold=True`` (off by default) moves every candidate scale down to the nearest one at which
``lam * theta`` is an integer, so ``vth`` is exact and a reset by subtraction removes exactly the float threshold
(otherwise every spike leaves ``vth - lam theta`` behind, which accumulates in neurons that fire often).

Duplicate Sparse entries are summed first (:func:`~neurodeploy.passes.quant_fields.merge_sparse`), as Lava does.

``method="maxabs"`` is the naive baseline: ``lam = min_S mantissa_max / max|w_S|`` (the largest incoming weight
maps to the largest mantissa at ``weight_exp = 0``), capped by the hard bounds only, each synapse at its fitting
exponent. Both methods finish with an integer run of the whole quantized network on the calibration stimuli;
the per-node report compares it with the float run.

Report (``report`` dict / ``quantize.last_report`` / ``QuantizePass.report``; JSON-able)
----------------------------------------------------------------------------------------
``profile``, ``method``, ``num_weight_bits``, ``state_headroom``, ``min_weight_bits``, ``warnings`` (list of
str), ``calibration`` (``source`` "given" or "generated"; for generated: ``distribution``, ``rate``, ``batch``,
``steps``, ``seed``, ``note``) and ``nodes[name]``:

* synapse: ``op``, ``origin``, ``source``, ``target``, ``scale``, ``weight_exp``, ``sign_mode``,
  ``num_weight_bits``, ``weights`` (#non-zero float weights), ``error.weight`` (RMS relative error of
  ``weight * 2**weight_exp / scale`` against the float weights, clipped weights included), ``zeros.weight``
  (non-zero weights rounded to 0), ``saturated.weight`` (weights clipped), ``input_rms_error`` (expected RMS
  error of a target neuron's per-step input, float units, from the rate-weighted model);
* neuron: ``op`` ("CubaLIF"), ``lowered_from`` (None, "IF" or "LI"), ``origin``, ``scale``, ``du``, ``dv``,
  ``vth``, ``error`` (``du``, ``dv``, ``vth``, ``bias``: RMS relative errors of the effective values),
  ``zeros.bias``, ``saturated`` (``du``, ``dv``, ``vth``, ``bias`` clamped values; ``u_wrap``, ``v``: bins of the
  float calibration run whose ``64 * scale * |x|`` exceeds the 24-bit state), ``scale_bounds`` (the bounds above,
  None when absent) and ``binding_bound``, ``candidates`` (every trial: ``scale``, ``weight_exp`` per synapse,
  ``mismatches``, ``v_error``), ``agreement.teacher_forced`` and ``agreement.network`` (float vs integer on the
  calibration stimuli: ``float_spikes``, ``int_spikes``, ``matched``, ``f1``, ``bin_agreement``, ``bins``,
  ``count_rel_error``; ``network`` adds ``v_error``, the RMS relative error of ``v_int / (64 scale)``),
  ``search_neurons`` (``sampled``: the number of neurons the search scored, None for all; ``neurons``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.emulator.engine import simulate
from neurodeploy.errors import InputError, QuantizationError, UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import IF, LI, Conv2d, CubaLIF, Dense, Input, Op, Output, PlasticDense, QuantInfo, Sparse
from neurodeploy.passes import quant_calibration as cal
from neurodeploy.passes import quant_fields as qf
from neurodeploy.passes.fold import fold_linear
from neurodeploy.profiles import Profile, load_profile

METHODS = ("calibrated", "maxabs")
#: Generated calibration stimuli when none are given: Bernoulli spikes at this rate, shape [batch, steps, ...].
DEFAULT_RATE = 0.2
DEFAULT_BATCH = 8
DEFAULT_STEPS = 100
#: How many finer exponents than the fitting one (which clip the largest weights) are considered per synapse.
EXTRA_EXPONENTS = 4
#: A population larger than this, with more than SEARCH_ENTRIES incoming synapse entries, has its candidate
#: scales scored on SEARCH_NEURONS sampled neurons (see "Choosing lam", 5.).
SEARCH_NEURONS = 4096
SEARCH_ENTRIES = 1 << 20
#: At most this many residual synapses per synapse (``residual=``).
MAX_RESIDUALS = 2


# ------------------------------------------------------------------------------------------- prepared pieces
@dataclass
class _Synapse:
    """A float synapse prepared for quantization: flat parameters and the entries they expand to."""

    name: str
    op: Op
    source: str
    target: str
    weights: np.ndarray  # flat parameters (Dense weight, merged Sparse values, Conv2d kernel); used as float64
    rows: np.ndarray  # expanded non-zero entries: target index, source index, parameter index
    cols: np.ndarray
    kidx: np.ndarray | None  # None: entry k uses parameter k (a Sparse op without zero values)
    n_out: int
    sign_mode: str
    rates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_any: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extremes: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [min, max] of the op's weights
    source_cols: np.ndarray | None = None  # a restricted synapse: the source neurons its columns stand for

    def __post_init__(self):
        if self.extremes.size == 0 and self.weights.size:
            self.extremes = np.array([self.weights.min(), self.weights.max()], np.float64)

    @property
    def w_max(self) -> float:
        return float(np.max(np.abs(self.extremes))) if self.extremes.size else 0.0

    def entry_weights(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per parameter) per expanded entry."""
        return values if self.kidx is None else values[self.kidx]

    def fill_scale(self, num_weight_bits: int) -> float:
        """The scale at which the largest weight just fills the mantissa range at ``weight_exp = 0``."""
        lo, hi, _ = qf.weight_grid(self.sign_mode, num_weight_bits)
        neg, pos = (float(-self.extremes[0]), float(self.extremes[1])) if self.extremes.size else (0.0, 0.0)
        limits = [hi / pos if pos > 0 else math.inf, -lo / neg if neg > 0 else math.inf]
        return min(limits)

    def row_abs_sum_max(self) -> float:
        sums = np.bincount(self.rows, weights=np.abs(self.entry_weights(self.weights)), minlength=self.n_out)
        return float(sums.max()) if sums.size else 0.0

    def restrict(self, sample: np.ndarray) -> _Synapse:
        """This synapse into the neurons ``sample`` (sorted target indices) only, as a Sparse op into a population
        of ``sample.size`` neurons with the same parameters per entry; ``sign_mode`` and ``extremes`` stay those of
        the whole op (they decide the mantissa grid and the fitting exponent of the whole op). Its columns are
        the distinct source neurons of those entries (``source_cols``), so the op's size follows the sample."""
        position = np.full(self.n_out, -1, np.int64)
        position[sample] = np.arange(sample.size)
        idx = np.flatnonzero(position[self.rows] >= 0)
        rows, cols = position[self.rows[idx]], np.asarray(self.cols[idx], np.int64)
        weights = np.asarray(self.weights[idx if self.kidx is None else self.kidx[idx]], np.float64)
        op = self.op
        delays = None
        if getattr(op, "delays", None) is not None:
            if isinstance(op, Sparse):
                delays = np.asarray(op.delays).ravel()[idx] if np.size(op.delays) > 1 else op.delays
            else:  # Dense: delays[target, source]
                delays = np.asarray(op.delays)[np.asarray(self.rows[idx]), cols]
        source_cols, cols = np.unique(cols, return_inverse=True)
        sub_op = Sparse(out_shape=(int(sample.size),), in_size=int(source_cols.size), row=rows, col=cols,
                        value=weights, delays=delays, origin=op.origin)
        return _Synapse(self.name, sub_op, self.source, self.target, weights, rows, cols, None, int(sample.size),
                        self.sign_mode, rates=self.rates[source_cols], extremes=self.extremes,
                        source_cols=source_cols)


@dataclass
class _Population:
    """A float neuron node in CubaLIF form (IF: du = 1, dv = 0; LI: no threshold, readout)."""

    name: str
    op: Op
    shape: tuple[int, ...]
    du: float
    dv: float
    theta: float | None
    bias: np.ndarray
    reset: str
    readout: bool


def _where(op: Op, fld: str) -> str:
    origin = f" (source layer '{op.origin}')" if op.origin else ""
    return f"{op.op_type}{origin} field '{fld}'"


def _qerror(name: str, op: Op, fld: str, message: str, fix: str) -> QuantizationError:
    return QuantizationError(f"{_where(op, fld)}: {message}", node=name, fix=fix)


def _finite(name: str, op: Op, fld: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        raise _qerror(name, op, fld, f"holds {int(bad.sum())} NaN or infinite value(s) (first at index {first}: "
                                     f"{arr[first] if arr.ndim else arr})",
                      fix="check the trained model or the converter that produced it; Loihi fields are integers")
    return arr


# ------------------------------------------------------------------------------------------------ checking
def _check_graph(graph: Graph, profile: Profile) -> None:
    for name, op in graph.nodes.items():
        if isinstance(op, Input | Output) or op.op_type == "Astrocyte":  # an Astrocyte holds integers already
            continue
        if not isinstance(op, Dense | Sparse | Conv2d | CubaLIF | IF | LI):
            raise UnsupportedOpError(f"the quantizer cannot lower {op.op_type}", node=name,
                                     fix="express the layer with Dense/Sparse/Conv2d synapses and CubaLIF/IF/LI "
                                         "neurons")
        if op.role == "synapse":
            _check_synapse(name, op, profile)
        else:
            _check_neuron(name, op, profile)


def _check_synapse(name: str, op, profile: Profile) -> None:
    a = profile.arithmetic
    _finite(name, op, "value" if isinstance(op, Sparse) else "weight", op.value if isinstance(op, Sparse)
            else op.weight)
    if getattr(op, "bias", None) is not None and np.any(np.asarray(op.bias) != 0):
        raise _qerror(name, op, "bias", "a synapse bias (a constant input current) has no Loihi synapse field",
                      fix="add it to the target neuron's bias (exact only when that neuron's du = 1) and drop it here")
    if op.num_message_bits:
        raise _qerror(name, op, "num_message_bits", f"graded spikes ({op.num_message_bits} bits) are not "
                      "supported by the quantizer", fix="use binary spikes (num_message_bits = 0)")
    if op.delays is not None and np.size(op.delays):
        delays = np.asarray(op.delays)
        lo, hi = int(delays.min()), int(delays.max())
        if lo < a.delay_min or hi > a.delay_max:
            bad = hi if hi > a.delay_max else lo
            raise _qerror(name, op, "delays", f"delay {bad} is outside {profile.name}'s range "
                          f"[{a.delay_min}, {a.delay_max}] steps",
                          fix="shorten the delay (coarser time step, or a chain of relay neurons for long delays)")


def _check_neuron(name: str, op, profile: Profile) -> None:
    for fld in ("du", "dv"):
        if hasattr(op, fld):
            value = float(_finite(name, op, fld, getattr(op, fld)))
            if not 0.0 <= value <= 1.0:
                raise _qerror(name, op, fld, f"{fld} = {value} is not a decay in [0, 1]",
                              fix=f"use 0 <= {fld} <= 1 ({fld} = 1 - exp(-dt / tau))")
    _finite(name, op, "bias", op.bias)
    if hasattr(op, "vth") and not isinstance(op, LI):
        theta = float(_finite(name, op, "vth", op.vth))
        if theta < 0:
            raise _qerror(name, op, "vth", f"threshold {theta} is negative; Loihi thresholds are unsigned "
                          f"{profile.arithmetic.vth_bits}-bit integers",
                          fix="use a non-negative threshold (a neuron with vth < 0 fires at rest: model that with a "
                              "positive bias instead)")
    reset = getattr(op, "reset", "zero")
    if reset not in profile.reset_modes:
        raise _qerror(name, op, "reset", f"reset mode '{reset}' is not supported by {profile.name} "
                      f"(supported: {list(profile.reset_modes)})",
                      fix="retrain with reset to zero, or compile for a target whose profile allows it "
                          "(e.g. 'emulator' allows 'subtract')")


# ---------------------------------------------------------------------------------------------- preparing
def _prepare_synapse(graph: Graph, shapes, name: str, op) -> _Synapse:
    (source,) = graph.predecessors(name)
    (target,) = graph.successors(name)
    in_shape = shapes[source]
    if isinstance(op, Sparse):
        n_out = int(math.prod(op.out_shape))
        if np.all(np.asarray(op.value) != 0):  # no copies (a large op's arrays are big): entry k is parameter k
            return _Synapse(name, op, source, target, np.asarray(op.value), np.asarray(op.row), np.asarray(op.col),
                            None, n_out, qf.sign_mode_of(op.value))
        weights = np.asarray(op.value, np.float64)
        rows, cols, kidx = np.asarray(op.row, np.int64), np.asarray(op.col, np.int64), np.arange(weights.size)
    elif isinstance(op, Dense):
        w = np.asarray(op.weight, np.float64)
        weights = w.ravel()
        rows, cols = np.nonzero(w)
        kidx = np.ravel_multi_index((rows, cols), w.shape)
        n_out = w.shape[0]
    else:  # Conv2d: expand a kernel of parameter indices to find which parameter each matrix entry uses
        weights = np.asarray(op.weight, np.float64).ravel()
        index_kernel = np.arange(1, weights.size + 1, dtype=np.float64).reshape(np.shape(op.weight))
        m = op_matrix(op.replace(weight=index_kernel), in_shape).tocoo()
        rows, cols, kidx = m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.int64) - 1
        n_out = m.shape[0]
    keep = weights[kidx] != 0
    # a learning synapse keeps its declared sign mode (default mixed): learned weights may cross zero
    sign_mode = (op.sign_mode or "mixed") if isinstance(op, PlasticDense) else qf.sign_mode_of(weights)
    return _Synapse(name, op, source, target, weights, rows[keep], cols[keep], kidx[keep], n_out, sign_mode)


def _population(name: str, op) -> _Population:
    size = int(math.prod(op.shape))
    bias = np.broadcast_to(np.asarray(op.bias, np.float64).ravel(), (size,)).copy()
    if isinstance(op, IF):
        return _Population(name, op, tuple(op.shape), 1.0, 0.0, float(op.vth), bias, op.reset, False)
    if isinstance(op, LI):
        return _Population(name, op, tuple(op.shape), float(op.du), float(op.dv), None, bias, "zero", True)
    return _Population(name, op, tuple(op.shape), float(op.du), float(op.dv), float(op.vth), bias, op.reset,
                       bool(op.readout))


# ----------------------------------------------------------------------------------------- quantizing ops
def _cost(syn: _Synapse, lam: float, exp: int, bits: int) -> tuple[float, int]:
    """Expected per-step input error (squared input units, see quant_calibration) and #clipped at ``exp``."""
    scaled = lam * np.asarray(syn.weights, np.float64)
    mant, clipped = qf.quantize_weights(scaled, exp, syn.sign_mode, bits)
    errors = syn.entry_weights(mant * 2.0 ** exp - scaled)
    return cal.expected_input_error(errors, syn.rows, syn.cols, syn.rates, syn.p_any, syn.n_out, exp), clipped


def _exponent(syn: _Synapse, lam: float, bits: int, profile: Profile, method: str) -> tuple[int, int]:
    """``(proposed weight_exp, fitting weight_exp)``: the fitting one for maxabs, else the lowest-cost one among
    the fitting exponent and up to EXTRA_EXPONENTS finer ones (ties keep the coarser, which clips less)."""
    a = profile.arithmetic
    if syn.w_max == 0:  # all-zero weights: any exponent is exact; keep the neutral one
        neutral = min(max(0, a.weight_exp_min), a.weight_exp_max)
        return neutral, neutral
    # clipping is monotonic in the scaled weight, so the extreme weights decide whether any mantissa clips
    fit = qf.fitting_exponent(lam * syn.extremes, syn.sign_mode, bits, a.weight_exp_min, a.weight_exp_max)
    if method == "maxabs":
        return fit, fit
    options = range(fit, max(a.weight_exp_min, fit - EXTRA_EXPONENTS) - 1, -1)
    return min(options, key=lambda e: (_cost(syn, lam, e, bits)[0], -e)), fit


def _quantize_synapse(syn: _Synapse, lam: float, exp: int, bits: int, profile: Profile) -> tuple[Op, dict]:
    a = profile.arithmetic
    mant, clipped = qf.quantize_weights(lam * np.asarray(syn.weights, np.float64), exp, syn.sign_mode, bits)
    effective = mant * 2.0 ** exp / lam
    error = qf.relative_error(effective, syn.weights)
    qbits = {"weight": bits, "weight_exp": a.weight_exp_bits}
    if syn.op.delays is not None:
        qbits["delays"] = a.delay_bits
    quant = QuantInfo(scale=float(lam), bits=qbits, error={"weight": error})
    common = {"weight_exp": int(exp), "num_weight_bits": int(bits), "sign_mode": syn.sign_mode, "quant": quant}
    if isinstance(syn.op, Sparse):
        new = syn.op.replace(value=mant, **common)
    else:
        new = syn.op.replace(weight=mant.reshape(np.shape(syn.op.weight)), bias=None, **common)
    stats = {"op": new.op_type, "origin": syn.op.origin, "source": syn.source, "target": syn.target,
             "scale": float(lam), "weight_exp": int(exp), "sign_mode": syn.sign_mode, "num_weight_bits": int(bits),
             "error": {"weight": error}, "zeros": {"weight": int(np.count_nonzero((mant == 0) & (syn.weights != 0)))},
             "saturated": {"weight": clipped}, "weights": int(np.count_nonzero(syn.weights))}
    return new, stats


def _quantize_neuron(pop: _Population, lam: float, profile: Profile) -> tuple[CubaLIF, dict]:
    a = profile.arithmetic
    du, du_sat = qf.quantize_du(pop.du, a.du_bits)
    dv, dv_sat = qf.quantize_dv(pop.dv, a.dv_bits)
    if pop.theta is None:
        vth, vth_sat, vth_err = a.vth_max, 0, 0.0
    else:
        vth, vth_sat = qf.quantize_threshold(lam * pop.theta, a.vth_bits)
        vth_err = qf.relative_error(vth / lam, pop.theta)
    mant, exps, bias_sat = qf.quantize_bias(64.0 * lam * pop.bias, a.bias_bits, a.bias_exp_min, a.bias_exp_max)
    scalar = np.ndim(pop.op.bias) == 0
    bias = int(mant[0]) if scalar else mant.reshape(pop.shape)
    bias_exp = int(exps[0]) if scalar else exps.reshape(pop.shape)
    errors = {"du": qf.relative_error((du + 1) / 4096.0, pop.du), "dv": qf.relative_error(dv / 4096.0, pop.dv),
              "vth": vth_err, "bias": qf.relative_error(qf.effective_bias(mant, exps) / (64.0 * lam), pop.bias)}
    quant = QuantInfo(scale=float(lam), bits={"du": a.du_bits, "dv": a.dv_bits, "vth": a.vth_bits,
                                              "bias": a.bias_bits, "bias_exp": a.bias_exp_bits,
                                              "state": a.state_bits}, error=errors)
    new = CubaLIF(shape=pop.shape, du=du, dv=dv, vth=vth, bias=bias, bias_exp=bias_exp, reset=pop.reset,
                  readout=pop.readout, quant=quant, origin=pop.op.origin)
    stats = {"op": "CubaLIF", "lowered_from": None if isinstance(pop.op, CubaLIF) else pop.op.op_type,
             "origin": pop.op.origin, "scale": float(lam), "du": du, "dv": dv, "vth": vth, "error": errors,
             "zeros": {"bias": int(np.count_nonzero((mant == 0) & (pop.bias != 0)))},
             "saturated": {"du": du_sat, "dv": dv_sat, "vth": vth_sat, "bias": bias_sat}}
    return new, stats


# ---------------------------------------------------------------------------------------- choosing scales
def _bounds(pop: _Population, syns: list[_Synapse], rec: Mapping[str, np.ndarray], profile: Profile,
            headroom: float, min_weight_bits: int, warnings: list[str]) -> dict[str, float]:
    """Upper bounds on ``lam`` (hard: vth, bias; soft: u, v, activation) and the minimum useful scale."""
    a = profile.arithmetic
    bounds: dict[str, float] = {}
    if pop.theta:
        bounds["vth"] = a.vth_max / pop.theta
    b_max = float(np.max(np.abs(pop.bias))) if pop.bias.size else 0.0
    if b_max > 0:
        bounds["bias"] = a.bias_max * 2.0 ** a.bias_exp_max / (64.0 * b_max)
    u = rec[f"{pop.name}/u"]
    v = rec[f"{pop.name}/v"]
    u_max = float(np.max(np.abs(u))) if u.size else 0.0
    v_pos = float(np.max(v, initial=0.0))
    v_neg = float(np.max(-v, initial=0.0))
    a_max = float(np.max(np.abs(cal.step_inputs(u, pop.du)))) if u.size else 0.0
    if u_max > 0:
        bounds["u"] = a.state_max / (64.0 * headroom * u_max)
    v_need = headroom * max(v_pos, v_neg) if pop.readout else max(v_pos, headroom * v_neg)
    if v_need > 0:
        bounds["v"] = a.state_max / (64.0 * v_need)
    if a_max > 0:
        bounds["activation"] = a.activation_max / (headroom * a_max)
    elif syns:  # silent on the calibration data: bound by the worst case, every input spiking at once
        worst = sum(s.row_abs_sum_max() for s in syns)
        if worst > 0:
            bounds["activation"] = a.activation_max / (headroom * worst)
            warnings.append(f"'{pop.name}' received no input on the calibration data; its scale is bounded by its "
                            "worst-case input instead (give calibration data that exercises it)")
    w_max = max((s.w_max for s in syns), default=0.0)
    bounds["min_useful"] = 2.0 ** (min_weight_bits - 1) / w_max if w_max > 0 else 0.0
    return bounds


def _bits_needed(value: float, extra: int = 0) -> str:
    """``ceil(log2(value + 1)) + extra`` as text; "over 1000" when the value is beyond a float (tiny weights give
    an infinite minimum useful scale)."""
    return str(math.ceil(math.log2(value + 1)) + extra) if math.isfinite(value) else "over 1000"


def _check_hard_bounds(pop: _Population, bounds: dict[str, float], profile: Profile, min_weight_bits: int) -> None:
    a = profile.arithmetic
    lam_min = bounds["min_useful"]
    if "vth" in bounds and bounds["vth"] < lam_min:
        need = _bits_needed(lam_min * pop.theta)
        ratio = 2.0 ** (a.vth_bits - min_weight_bits + 1)
        raise _qerror(pop.name, pop.op, "vth",
                      f"threshold {pop.theta:g} needs {need} bits at the minimum useful scale {lam_min:.4g} (the "
                      f"largest incoming weight kept at {min_weight_bits} bits); {profile.name} has {a.vth_bits}",
                      fix=f"lower the threshold-to-weight ratio below about {ratio:g} (weight normalisation), or "
                          "pass a smaller min_weight_bits")
    if "bias" in bounds and bounds["bias"] < lam_min:
        b_max = float(np.max(np.abs(pop.bias)))
        need = _bits_needed(64.0 * lam_min * b_max, extra=1)  # + 1 sign bit
        raise _qerror(pop.name, pop.op, "bias",
                      f"bias {b_max:g} needs {need} bits (mantissa + exponent, signed) at the minimum useful scale "
                      f"{lam_min:.4g}; {profile.name} has {a.bias_bits}-bit mantissas shifted by at most "
                      f"{a.bias_exp_max}", fix="reduce the bias relative to the incoming weights, or pass a smaller "
                                               "min_weight_bits")


def _candidates(lam_hi: float, syns: list[_Synapse], bits: int, count: int, a) -> list[float]:
    """One octave below ``lam_hi`` in ``count`` geometric steps (halving lam only shifts every exponent by one, so
    lower octaves repeat the same mantissas), plus, per synapse, the largest scale at or below ``lam_hi`` at which
    its largest weight exactly fills the mantissa range, and the max-abs scale."""
    values = [lam_hi * 2.0 ** (-j / max(1, count)) for j in range(max(1, count))]
    fills = [s.fill_scale(bits) for s in syns if s.w_max > 0]
    for fill in fills:
        exps = [e for e in range(a.weight_exp_min, a.weight_exp_max + 1) if fill * 2.0 ** e <= lam_hi]
        if exps:
            values.append(fill * 2.0 ** exps[-1])
    if fills:
        values.append(min(fills))  # the max-abs scale
    return sorted({float(f"{v:.12g}") for v in values if 0 < v <= lam_hi * (1 + 1e-12)}, reverse=True)


def _without_third_factor(op: Op) -> Op:
    """A PlasticDense whose rule reads a third factor needs the whole network (its Astrocyte reads other nodes), so
    a population scored alone sees that synapse frozen: a Dense with its initial weights (0 outside its mask)."""
    if not isinstance(op, PlasticDense) or op.third_factor is None:
        return op
    weight = op.weight if op.mask is None else np.where(np.asarray(op.mask, bool), op.weight, 0)
    return Dense(weight=weight, delays=op.delays, weight_exp=op.weight_exp, num_weight_bits=op.num_weight_bits,
                 sign_mode=op.sign_mode, quant=op.quant, origin=op.origin)


def _local_graph(pop: _Population, syn_ops: Mapping[str, Op], syns: list[_Synapse], neuron: Op,
                 shapes) -> tuple[Graph, dict[str, tuple[str, np.ndarray | None]]]:
    """``pop`` alone, each source replaced by an Input (one per restricted synapse, holding its ``source_cols``):
    (graph, input name -> (source node, source columns or None for all))."""
    nodes: dict[str, Op] = {}
    edges = []
    feeds: dict[str, tuple[str, np.ndarray | None]] = {}
    for syn in syns:
        inp = f"calibration:{syn.source if syn.source_cols is None else syn.name}"
        if inp not in nodes:
            shape = shapes[syn.source] if syn.source_cols is None else (syn.source_cols.size,)
            nodes[inp] = Input(shape=tuple(shape))
            feeds[inp] = (syn.source, syn.source_cols)
        nodes[syn.name] = _without_third_factor(syn_ops[syn.name])
        edges += [(inp, syn.name), (syn.name, pop.name)]
    if not syns:
        nodes["calibration:none"] = Input(shape=(1,))
        feeds["calibration:none"] = ("", None)
    nodes[pop.name] = neuron
    nodes["calibration:out"] = Output()
    edges.append((pop.name, "calibration:out"))
    return Graph(nodes, edges), feeds


def _spikes_of(source: str, stim: Mapping[str, np.ndarray], rec: Mapping[str, np.ndarray]) -> np.ndarray:
    return stim[source] if source in stim else rec[f"{source}/spikes"]


def _target_trace(rec: Mapping[str, np.ndarray], name: str, fld: str, cols: np.ndarray | None) -> np.ndarray:
    """The float run's ``[B, T, n]`` trace of a population, or of its neurons ``cols`` (a sampled search)."""
    trace = rec[f"{name}/{fld}"]
    return trace if cols is None else trace[:, :, cols]


def _score(pop, syn_ops, syns, neuron, lam, shapes, stim, rec, target_cols=None) -> tuple[int, float, dict]:
    graph, feeds = _local_graph(pop, syn_ops, syns, neuron, shapes)
    batch, steps = next(iter(stim.values())).shape[:2]
    drive = {inp: (np.zeros((batch, steps, 1), np.uint8) if not src
                   else _spikes_of(src, stim, rec).reshape(batch, steps, *shapes[src]) if cols is None
                   else _spikes_of(src, stim, rec)[:, :, cols]) for inp, (src, cols) in feeds.items()}
    res = simulate(graph, drive, record=("spikes", "v"), arithmetic="int", nodes=[pop.name])
    s_int = res.recorded[f"{pop.name}/spikes"].reshape(batch, steps, -1)
    s_float = _target_trace(rec, pop.name, "spikes", target_cols)
    v_int = res.recorded[f"{pop.name}/v"].reshape(batch, steps, -1)
    v_err = cal.trace_error(v_int / (64.0 * lam), _target_trace(rec, pop.name, "v", target_cols))
    mismatches = int(np.count_nonzero((s_int != 0) != (s_float != 0)))
    return mismatches, v_err, cal.spike_agreement(s_float, s_int)


@dataclass
class _Context:
    profile: Profile
    bits: int
    shapes: Mapping[str, tuple[int, ...]]
    stim: Mapping[str, np.ndarray]
    rec: Mapping[str, np.ndarray]
    target_cols: np.ndarray | None = None  # a sampled search: the population's neurons being scored


@dataclass
class _Trial:
    """One quantization of a population and its incoming synapses, scored by teacher-forced emulation."""

    score: tuple[int, float]
    lam: float
    exps: dict[str, int]
    syn_ops: dict[str, Op]
    syn_stats: dict[str, dict]
    neuron: Op
    n_stats: dict
    agreement: dict


def _trial(pop: _Population, incoming: list[_Synapse], lam: float, exps: Mapping[str, int], ctx: _Context
           ) -> _Trial:
    syn_ops, syn_stats = {}, {}
    for syn in incoming:
        syn_ops[syn.name], stats = _quantize_synapse(syn, lam, exps[syn.name], ctx.bits, ctx.profile)
        cost, _ = _cost(syn, lam, exps[syn.name], ctx.bits)
        stats["input_rms_error"] = math.sqrt(cost / max(1, syn.n_out)) / lam
        syn_stats[syn.name] = stats
    neuron, n_stats = _quantize_neuron(pop, lam, ctx.profile)
    mismatches, v_err, agreement = _score(pop, syn_ops, incoming, neuron, lam, ctx.shapes, ctx.stim, ctx.rec,
                                          ctx.target_cols)
    return _Trial((mismatches, v_err), lam, dict(exps), syn_ops, syn_stats, neuron, n_stats, agreement)


def _search(pop: _Population, incoming: list[_Synapse], lam_list: list[float], ctx: _Context, method: str,
            tried: list[dict[str, Any]]) -> _Trial:
    """Best trial over the candidate scales (each with its proposed exponents); then, for ``calibrated``, per
    synapse, finer exponents (clipping its largest weights) as long as the emulation score improves."""
    best, fits = None, {}
    for lam in lam_list:
        exps = {}
        for syn in incoming:
            exps[syn.name], fits[(lam, syn.name)] = _exponent(syn, lam, ctx.bits, ctx.profile, method)
        trial = _trial(pop, incoming, lam, exps, ctx)
        tried.append({"scale": lam, "weight_exp": exps, "mismatches": trial.score[0], "v_error": trial.score[1]})
        if best is None or trial.score < best.score:
            best = trial
    if method != "calibrated":
        return best
    e_min = ctx.profile.arithmetic.weight_exp_min
    for syn in incoming:
        exps = dict(best.exps)
        while exps[syn.name] > max(e_min, fits[(best.lam, syn.name)] - EXTRA_EXPONENTS):
            exps[syn.name] -= 1
            trial = _trial(pop, incoming, best.lam, exps, ctx)
            tried.append({"scale": best.lam, "weight_exp": dict(exps), "mismatches": trial.score[0],
                          "v_error": trial.score[1]})
            if trial.score >= best.score:
                break
            best = trial
    return best


# ------------------------------------------------------------------------------------------------ the pass
def _stimuli(graph: Graph, shapes, calibration, batch: int, steps: int, rate: float, seed: int
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if calibration is None:
        stim = cal.bernoulli_stimuli({n: tuple(shapes[n]) for n in graph.inputs}, batch, steps, rate, seed)
        info = {"source": "generated", "distribution": "Bernoulli", "rate": rate, "batch": batch, "steps": steps,
                "seed": seed, "note": "no calibration data was given: scales were chosen on random spikes; give "
                                      "representative stimuli for a better fit"}
        return stim, info
    if not isinstance(calibration, Mapping):
        if len(graph.inputs) != 1:
            raise InputError(f"the model has inputs {graph.inputs}; pass calibration as a dict name -> array")
        calibration = {graph.inputs[0]: calibration}
    stim = {}
    for name in graph.inputs:
        if name not in calibration:
            raise InputError(f"no calibration stimulus for input '{name}'", fix=f"add an array named '{name}'")
        x = np.asarray(calibration[name])
        if x.ndim != 2 + len(shapes[name]) or tuple(x.shape[2:]) != tuple(shapes[name]):
            raise InputError(f"calibration for '{name}' must be shaped [B, T, {', '.join(map(str, shapes[name]))}], "
                             f"got {list(x.shape)}", fix="reshape the calibration stimuli to [batch, time, *shape]")
        if x.size and not np.isin(x, (0, 1)).all():
            raise InputError(f"calibration for '{name}' holds values other than 0 and 1",
                             fix="encode the calibration stimuli as binary spike trains")
        stim[name] = x.astype(np.uint8)
    first = stim[graph.inputs[0]]
    return stim, {"source": "given", "batch": int(first.shape[0]), "steps": int(first.shape[1])}


def _search_sample(pop: _Population, incoming: list[_Synapse], seed: int) -> np.ndarray | None:
    """The neurons a large population's scale search is scored on, or None (score them all).

    A population is sampled when it has more than SEARCH_NEURONS neurons, its incoming synapses expand to more
    than SEARCH_ENTRIES entries and they are all Sparse or (non-plastic) Dense ops: SEARCH_NEURONS neurons drawn
    uniformly without replacement (``numpy.random.default_rng([seed, 7])``), sorted."""
    n = int(math.prod(pop.shape))
    entries = sum(int(syn.rows.size) for syn in incoming)
    static = all(isinstance(s.op, Sparse | Dense) and not isinstance(s.op, PlasticDense) for s in incoming)
    if n <= SEARCH_NEURONS or entries <= SEARCH_ENTRIES or not static:  # a learning synapse is emulated whole
        return None
    return np.sort(np.random.default_rng([seed, 7]).choice(n, SEARCH_NEURONS, replace=False))


def _sub_population(pop: _Population, sample: np.ndarray) -> _Population:
    """``pop`` restricted to the neurons ``sample`` (a flat population of ``sample.size`` neurons)."""
    bias = pop.bias[sample]
    op = pop.op.replace(shape=(int(sample.size),), bias=pop.op.bias if np.ndim(pop.op.bias) == 0 else bias)
    return _Population(pop.name, op, (int(sample.size),), pop.du, pop.dv, pop.theta, bias, pop.reset, pop.readout)


def _whole(pop: _Population, incoming: list[_Synapse], sampled: _Trial, ctx: _Context) -> _Trial:
    """The trial chosen on a sample, applied to the whole population: every synapse and neuron quantized at its
    scale and exponents. The score, the teacher-forced agreement and each synapse's ``input_rms_error`` stay
    those measured on the sampled neurons."""
    syn_ops, syn_stats = {}, {}
    for syn in incoming:
        syn_ops[syn.name], stats = _quantize_synapse(syn, sampled.lam, sampled.exps[syn.name], ctx.bits, ctx.profile)
        stats["input_rms_error"] = sampled.syn_stats[syn.name]["input_rms_error"]
        syn_stats[syn.name] = stats
    neuron, n_stats = _quantize_neuron(pop, sampled.lam, ctx.profile)
    return _Trial(sampled.score, sampled.lam, dict(sampled.exps), syn_ops, syn_stats, neuron, n_stats,
                  sampled.agreement)


def _quantize_population(pop: _Population, incoming: list[_Synapse], ctx: _Context, method: str,
                         options: Mapping[str, Any], warnings: list[str]) -> tuple[_Trial, dict]:
    """Choose the population's scale (module docstring, steps 1-4) and return the best trial and its report."""
    profile, a = ctx.profile, ctx.profile.arithmetic
    bounds = _bounds(pop, incoming, ctx.rec, profile, options["state_headroom"], options["min_weight_bits"],
                     warnings)
    _check_hard_bounds(pop, bounds, profile, options["min_weight_bits"])
    upper = {k: v for k, v in bounds.items() if k != "min_useful"}
    lam_hard = min((bounds[k] for k in ("vth", "bias") if k in bounds), default=math.inf)
    lam_hi = min(upper.values(), default=math.inf)
    binding = min(upper, key=upper.get) if upper else None
    if not math.isfinite(lam_hi):
        lam_hi, binding = 1.0, "none (no threshold, bias, input or state to bound it)"
    if lam_hi < bounds["min_useful"]:
        warnings.append(f"'{pop.name}': the {binding} range forces scale {lam_hi:.4g} below the minimum useful "
                        f"scale {bounds['min_useful']:.4g}; small weights lose precision")
    fills = [s.fill_scale(ctx.bits) for s in incoming if s.w_max > 0]
    if method == "maxabs" and fills:
        lam_list = [min(min(fills), lam_hard)]
        hard = {k: bounds[k] for k in ("vth", "bias") if k in bounds}
        binding = "max-abs weight" if lam_list[0] < lam_hard else min(hard, key=hard.get)
    elif method == "maxabs":
        lam_list = [lam_hi]
    else:
        lam_list = _candidates(lam_hi, incoming, ctx.bits, options["candidates"], a)
    if options.get("exact_threshold") and pop.theta is not None and pop.theta > 0:
        # each scale moved down to the nearest one at which lam * theta is an integer: vth is then exact, so a
        # reset by subtraction removes exactly the float threshold (no drift of (vth - lam theta) per spike)
        snapped = {math.floor(lam * pop.theta) / pop.theta for lam in lam_list if lam * pop.theta >= 1}
        lam_list = sorted(snapped, reverse=True) or lam_list
    tried: list[dict[str, Any]] = []
    sample = _search_sample(pop, incoming, options["seed"])
    if sample is None:
        for syn in incoming:
            syn.p_any = cal.any_active_probability(syn.rows, syn.cols, syn.rates, syn.n_out)
        best = _search(pop, incoming, lam_list, ctx, method, tried)
    else:
        sub_pop = _sub_population(pop, sample)
        sub_syns = [syn.restrict(sample) for syn in incoming]
        for syn in sub_syns:
            syn.p_any = cal.any_active_probability(syn.rows, syn.cols, syn.rates, syn.n_out)
        sub_ctx = _Context(ctx.profile, ctx.bits, ctx.shapes, ctx.stim, ctx.rec, target_cols=sample)
        best = _whole(pop, incoming, _search(sub_pop, sub_syns, lam_list, sub_ctx, method, tried), ctx)
    n_stats = best.n_stats
    u, v = ctx.rec[f"{pop.name}/u"], ctx.rec[f"{pop.name}/v"]
    n_stats["saturated"].update({"u_wrap": int(np.count_nonzero(64.0 * best.lam * np.abs(u) > a.state_max)),
                                 "v": int(np.count_nonzero(64.0 * best.lam * np.abs(v) > a.state_max))})
    n_stats["search_neurons"] = {"sampled": None if sample is None else int(sample.size),
                                 "neurons": int(math.prod(pop.shape))}
    n_stats.update({"scale_bounds": {k: (v if math.isfinite(v) else None) for k, v in bounds.items()},
                    "binding_bound": binding, "candidates": tried, "agreement": {"teacher_forced": best.agreement}})
    return best, n_stats


def _mantissas(op: Op) -> np.ndarray:
    return np.asarray(op.value if isinstance(op, Sparse) else op.weight, np.float64).ravel()


def _add_residual(name: str, syn: _Synapse, new_nodes: dict[str, Op], edges: list[tuple[str, str]],
                  node_reports: dict[str, dict], profile: Profile, bits: int, tolerance: float) -> None:
    """Up to MAX_RESIDUALS synapses ``<name>.residual``, ``<name>.residual2`` each carrying what the previous ones
    left, ``w - sum q_k(w)`` (float units), at the same scale and its own fitting exponent, until the combined
    weight error is at most ``tolerance``. The main synapse's report gets ``residual`` (the synapses, their
    ``weight_exp`` and the combined weight error)."""
    a = profile.arithmetic
    main = new_nodes[name]
    lam = float(node_reports[name]["scale"])
    total = _mantissas(main) * 2.0 ** main.weight_exp / lam
    weights = np.asarray(syn.weights, np.float64)
    added: list[str] = []
    exps: list[int] = []
    combined = qf.relative_error(total, weights)
    for k in range(MAX_RESIDUALS):
        rest = weights - total
        if combined <= tolerance or not np.any(rest):
            break
        sign_mode = qf.sign_mode_of(rest)
        res = _Synapse(f"{name}.residual" + (str(k + 1) if k else ""), syn.op, syn.source, syn.target, rest,
                       syn.rows, syn.cols, syn.kidx, syn.n_out, sign_mode,
                       extremes=np.array([rest.min(), rest.max()], np.float64))
        exp = qf.fitting_exponent(lam * res.extremes, sign_mode, bits, a.weight_exp_min, a.weight_exp_max)
        op, stats = _quantize_synapse(res, lam, exp, bits, profile)
        total = total + _mantissas(op) * 2.0 ** exp / lam
        combined = qf.relative_error(total, weights)
        stats["residual_of"] = name
        new_nodes[res.name] = op
        edges.extend([(syn.source, res.name), (res.name, syn.target)])
        node_reports[res.name] = stats
        added.append(res.name)
        exps.append(int(exp))
    if added:
        # weights lost for good: non-zero float weights that all the synapses together round to 0 (a residual's own
        # mantissas are mostly 0 by design: they hold what the main synapse got wrong)
        lost = int(np.count_nonzero((total == 0) & (weights != 0)))
        node_reports[name]["residual"] = {"synapses": added, "weight_exp": exps, "error": {"weight": combined}}
        node_reports[name]["zeros"] = {"weight": lost, "weight_alone": node_reports[name]["zeros"]["weight"]}
        for res_name in added:
            node_reports[res_name]["zeros"] = {"weight": lost,
                                               "weight_alone": node_reports[res_name]["zeros"]["weight"]}
            node_reports[res_name]["weights"] = int(np.count_nonzero(weights))


def quantize(graph: Graph, profile: Profile | str, calibration=None, *, method: str = "calibrated",
             num_weight_bits: int | None = None, state_headroom: float = 2.0, min_weight_bits: int = 4,
             candidates: int = 8, calibration_rate: float = DEFAULT_RATE, calibration_batch: int = DEFAULT_BATCH,
             calibration_steps: int = DEFAULT_STEPS, seed: int = 0, report: dict | None = None,
             residual: float | None = None, exact_threshold: bool = False) -> tuple[Graph, bool]:
    """Quantize a float graph for ``profile`` (see the module docstring); return ``(graph, changed)``.

    ``calibration``: ``[B, T, *input_shape]`` binary spikes (or a dict per input); ``None`` generates Bernoulli
    stimuli (``calibration_rate``, ``_batch``, ``_steps``, ``seed``). ``report`` (a dict), if given, receives the
    per-node report; it is also kept as ``quantize.last_report``. An already quantized graph is returned
    unchanged. ``residual`` (a relative RMS weight error, e.g. ``0.01``; default None: off): every synapse whose
    quantized weights are further than this from the float weights gets a second synapse ``<name>.residual``
    (and if needed a third, ``.residual2``) from the same source into the same target carrying the rounding (and
    clipping) residual at its own ``weight_exp``
    (see "Residual synapses" in the module docstring). ``exact_threshold``: every candidate scale is moved down
    to the nearest one at which ``lam * theta`` is an integer, so ``vth`` is exact (default False).
    """
    profile = load_profile(profile)
    out: dict[str, Any] = {} if report is None else report
    out.clear()
    quantize.last_report = out
    if method not in METHODS:
        raise QuantizationError(f"unknown quantization method '{method}'", fix=f"use one of {list(METHODS)}")
    bits = profile.arithmetic.weight_bits if num_weight_bits is None else int(num_weight_bits)
    if not 1 <= bits <= profile.arithmetic.weight_bits:
        raise QuantizationError(f"num_weight_bits = {bits} is outside 1..{profile.arithmetic.weight_bits} "
                                f"({profile.name})", fix="choose a weight width the profile supports")
    if residual is not None and not (isinstance(residual, int | float) and not isinstance(residual, bool)
                                     and residual >= 0):
        raise QuantizationError(f"residual = {residual!r} must be a relative error >= 0 (or None: off)",
                                fix="pass e.g. residual=0.01")
    if state_headroom < 1:
        raise QuantizationError(f"state_headroom = {state_headroom} < 1 would let the calibration data overflow",
                                fix="use state_headroom >= 1")
    ops = [op for op in graph.nodes.values() if op.role in ("synapse", "neuron")]
    if not ops:
        out.update({"profile": profile.name, "skipped": "the graph has no synapse or neuron to quantize"})
        return graph, False
    n_quant = sum(getattr(op, "quant", None) is not None for op in ops)
    if ops and n_quant == len(ops):
        out.update({"profile": profile.name, "skipped": "the graph is already quantized"})
        return graph, False
    if n_quant:
        name = next(n for n, op in graph.nodes.items() if getattr(op, "quant", None) is not None)
        raise QuantizationError("the graph is partly quantized (some ops carry integers, others floats)", node=name,
                                fix="quantize the float model as a whole")
    graph, _ = fold_linear(graph)
    graph.validate()
    _check_graph(graph, profile)
    nodes = {n: qf.merge_sparse(op) if isinstance(op, Sparse) else op for n, op in graph.nodes.items()}
    graph = graph.with_nodes(nodes)
    shapes = graph.shapes()

    stim, calib_info = _stimuli(graph, shapes, calibration, calibration_batch, calibration_steps,
                                calibration_rate, seed)
    run = simulate(graph, stim, record=("u", "v", "spikes"), arithmetic="float")
    rec = {k: np.asarray(v).reshape(v.shape[0], v.shape[1], -1) for k, v in run.recorded.items()}
    flat_stim = {k: v.reshape(v.shape[0], v.shape[1], -1) for k, v in stim.items()}

    syns = {n: _prepare_synapse(graph, shapes, n, op) for n, op in graph.nodes.items() if op.role == "synapse"}
    for syn in syns.values():
        syn.rates = cal.firing_rates(_spikes_of(syn.source, flat_stim, rec))
    ctx = _Context(profile, bits, shapes, flat_stim, rec)
    options = {"state_headroom": state_headroom, "min_weight_bits": min_weight_bits, "candidates": candidates,
               "seed": seed, "exact_threshold": bool(exact_threshold)}
    warnings: list[str] = []
    new_nodes: dict[str, Op] = dict(graph.nodes)
    node_reports: dict[str, dict] = {}
    for name, op in graph.nodes.items():
        if op.role == "neuron":
            incoming = [syns[s] for s in graph.predecessors(name) if s in syns]
            best, n_stats = _quantize_population(_population(name, op), incoming, ctx, method, options, warnings)
            new_nodes.update(best.syn_ops)
            new_nodes[name] = best.neuron
            node_reports.update(best.syn_stats)
            node_reports[name] = n_stats

    edges = list(graph.edges)
    if residual is not None:
        for name, syn in syns.items():
            if node_reports[name]["error"]["weight"] > residual and not isinstance(syn.op, PlasticDense):
                _add_residual(name, syn, new_nodes, edges, node_reports, profile, bits, float(residual))
    del syns, ctx  # the prepared synapses' arrays are not needed for the final run (large graphs: GBs)
    qgraph = Graph(new_nodes, edges, graph.meta).validate()
    final = simulate(qgraph, stim, record=("spikes", "v"), arithmetic="int")
    for name, n_stats in node_reports.items():
        if "agreement" not in n_stats:
            continue
        batch, steps = rec[f"{name}/spikes"].shape[:2]
        s_int = final.recorded[f"{name}/spikes"].reshape(batch, steps, -1)
        network = cal.spike_agreement(rec[f"{name}/spikes"], s_int)
        v_int = final.recorded[f"{name}/v"].reshape(batch, steps, -1)
        network["v_error"] = cal.trace_error(v_int / (64.0 * n_stats["scale"]), rec[f"{name}/v"])
        n_stats["agreement"]["network"] = network
    out.update({"profile": profile.name, "method": method, "num_weight_bits": bits, "residual": residual,
                "exact_threshold": bool(exact_threshold),
                "state_headroom": state_headroom, "min_weight_bits": min_weight_bits, "calibration": calib_info,
                "nodes": node_reports, "warnings": warnings})
    return qgraph, True


quantize.last_report = {}


class QuantizePass:
    """:func:`quantize` as a pass manager pass: ``QuantizePass(profile, calibration, **options)(graph)``.

    The report of the latest run is ``.report``.
    """

    def __init__(self, profile: Profile | str, calibration=None, **options: Any):
        self.profile = load_profile(profile)
        self.calibration = calibration
        self.options = options
        self.report: dict[str, Any] = {}

    def __call__(self, graph: Graph) -> tuple[Graph, bool]:
        self.report = {}
        return quantize(graph, self.profile, self.calibration, report=self.report, **self.options)
