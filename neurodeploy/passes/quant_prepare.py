"""Quantize, step 1: check a folded float graph and prepare its ops for the scale search.

* :func:`check_graph`: every op is one the quantizer lowers (Dense / Sparse / Conv2d synapses, CubaLIF / IF / LI
  neurons), its fields are finite, decays lie in [0, 1], thresholds are >= 0, delays lie in the profile's range,
  the reset mode is one the profile supports; a :class:`~neurodeploy.errors.QuantizationError` names the field.
* :class:`Population`: a neuron node in CubaLIF form ``(du, dv, theta, bias, reset, readout)``; IF is
  ``du = 1, dv = 0``; LI has no threshold (``theta = None``) and is a readout.
* :class:`PreparedSynapse`: a synapse as flat float parameters ``w_k`` (Dense weights, merged Sparse values, the
  Conv2d kernel) and its expanded non-zero matrix entries ``(i, j, k)``: target ``i`` reads source ``j`` through
  parameter ``k``. A Conv2d kernel is expanded once, by expanding a kernel of parameter indices
  (``1 .. K``) with :func:`~neurodeploy.ir.linear.op_matrix`.
* :func:`stimuli`: the calibration stimuli, given (checked 0/1, shaped ``[B, T, *input_shape]``) or generated
  (:func:`~neurodeploy.passes.quant_calibration.bernoulli_stimuli`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.errors import InputError, QuantizationError, UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.neurons import compartment
from neurodeploy.ir.ops import IF, LI, Conv2d, CubaLIF, Dense, Input, Op, Output, PlasticDense, Sparse
from neurodeploy.passes import quant_calibration as cal
from neurodeploy.passes import quant_fields as qf
from neurodeploy.profiles import Profile


@dataclass
class PreparedSynapse:
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
    costs: dict = field(default_factory=dict, repr=False)  # the search's cost memo: (lam, exp, bits) -> cost

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

    def entry_rates(self) -> tuple[np.ndarray, np.ndarray]:
        """Per expanded entry, its source's rate ``r`` and ``1 - r`` (computed once per rates: the search clears
        :attr:`costs` when it sets them)."""
        if "entry_rates" not in self.costs:
            r = self.rates[self.cols]
            self.costs["entry_rates"] = (r, 1 - r)
        return self.costs["entry_rates"]

    def row_abs_sum_max(self) -> float:
        sums = np.bincount(self.rows, weights=np.abs(self.entry_weights(self.weights)), minlength=self.n_out)
        return float(sums.max()) if sums.size else 0.0

    def restrict(self, sample: np.ndarray) -> PreparedSynapse:
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
        return PreparedSynapse(self.name, sub_op, self.source, self.target, weights, rows, cols, None, int(sample.size),
                        self.sign_mode, rates=self.rates[source_cols], extremes=self.extremes,
                        source_cols=source_cols)


@dataclass
class Population:
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


def where(op: Op, fld: str) -> str:
    """``"<op_type> (source layer '<origin>') field '<fld>'"``: where an error message points."""
    origin = f" (source layer '{op.origin}')" if op.origin else ""
    return f"{op.op_type}{origin} field '{fld}'"


def qerror(name: str, op: Op, fld: str, message: str, fix: str) -> QuantizationError:
    """A :class:`QuantizationError` about field ``fld`` of node ``name``."""
    return QuantizationError(f"{where(op, fld)}: {message}", node=name, fix=fix)


def _finite(name: str, op: Op, fld: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        raise qerror(name, op, fld, f"holds {int(bad.sum())} NaN or infinite value(s) (first at index {first}: "
                                     f"{arr[first] if arr.ndim else arr})",
                      fix="check the trained model or the converter that produced it; Loihi fields are integers")
    return arr



# ------------------------------------------------------------------------------------------------ checking
def check_graph(graph: Graph, profile: Profile) -> None:
    """Raise if the quantizer cannot lower some op of ``graph`` for ``profile`` (see the module docstring)."""
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
        raise qerror(name, op, "bias", "a synapse bias (a constant input current) has no Loihi synapse field",
                      fix="add it to the target neuron's bias (exact only when that neuron's du = 1) and drop it here")
    if op.num_message_bits:
        raise qerror(name, op, "num_message_bits", f"graded spikes ({op.num_message_bits} bits) are not "
                      "supported by the quantizer", fix="use binary spikes (num_message_bits = 0)")
    if op.delays is not None and np.size(op.delays):
        delays = np.asarray(op.delays)
        lo, hi = int(delays.min()), int(delays.max())
        if lo < a.delay_min or hi > a.delay_max:
            bad = hi if hi > a.delay_max else lo
            raise qerror(name, op, "delays", f"delay {bad} is outside {profile.name}'s range "
                          f"[{a.delay_min}, {a.delay_max}] steps",
                          fix="shorten the delay (coarser time step, or a chain of relay neurons for long delays)")


def _check_neuron(name: str, op, profile: Profile) -> None:
    for fld in ("du", "dv"):
        if hasattr(op, fld):
            value = float(_finite(name, op, fld, getattr(op, fld)))
            if not 0.0 <= value <= 1.0:
                raise qerror(name, op, fld, f"{fld} = {value} is not a decay in [0, 1]",
                              fix=f"use 0 <= {fld} <= 1 ({fld} = 1 - exp(-dt / tau))")
    _finite(name, op, "bias", op.bias)
    if hasattr(op, "vth") and not isinstance(op, LI):
        theta = float(_finite(name, op, "vth", op.vth))
        if theta < 0:
            raise qerror(name, op, "vth", f"threshold {theta} is negative; Loihi thresholds are unsigned "
                          f"{profile.arithmetic.vth_bits}-bit integers",
                          fix="use a non-negative threshold (a neuron with vth < 0 fires at rest: model that with a "
                              "positive bias instead)")
    reset = getattr(op, "reset", "zero")
    if reset not in profile.reset_modes:
        raise qerror(name, op, "reset", f"reset mode '{reset}' is not supported by {profile.name} "
                      f"(supported: {list(profile.reset_modes)})",
                      fix="retrain with reset to zero, or compile for a target whose profile allows it "
                          "(e.g. 'emulator' allows 'subtract')")


# ---------------------------------------------------------------------------------------------- preparing
def prepare_synapse(graph: Graph, shapes, name: str, op) -> PreparedSynapse:
    """Synapse ``name`` of ``graph`` as flat parameters and expanded non-zero entries (module docstring)."""
    (source,) = graph.predecessors(name)
    (target,) = graph.successors(name)
    in_shape = shapes[source]
    if isinstance(op, Sparse):
        n_out = int(math.prod(op.out_shape))
        if np.all(np.asarray(op.value) != 0):  # no copies (a large op's arrays are big): entry k is parameter k
            return PreparedSynapse(name, op, source, target, np.asarray(op.value), np.asarray(op.row),
                                   np.asarray(op.col), None, n_out, qf.sign_mode_of(op.value))
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
    return PreparedSynapse(name, op, source, target, weights, rows[keep], cols[keep], kidx[keep], n_out, sign_mode)


def population(name: str, op) -> Population:
    """Neuron node ``name`` in CubaLIF form: its float compartment from the neuron-model table
    (:func:`neurodeploy.ir.neurons.compartment`; IF: ``du = 1, dv = 0``; LI: no threshold, readout)."""
    c = compartment(op, integer=False, node=name)
    theta = None if math.isinf(c.vth) else float(c.vth)
    return Population(name, op, tuple(op.shape), float(c.du), float(c.dv), theta, np.array(c.bias, np.float64),
                      c.reset if theta is not None else "zero", bool(c.readout))


def stimuli(graph: Graph, shapes, calibration, batch: int, steps: int, rate: float, seed: int
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The calibration stimuli per Input (``[B, T, *shape]`` uint8) and the report's ``calibration`` entry."""
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


def spikes_of(source: str, stim: Mapping[str, np.ndarray], rec: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``[B, T, n]`` spikes of ``source``: a stimulus, or the float calibration run's record."""
    return stim[source] if source in stim else rec[f"{source}/spikes"]


