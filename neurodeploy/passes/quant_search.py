"""Quantize, step 2: choose each population's scale ``lam`` and its incoming synapses' exponents.

The maths is "Choosing lam" in :mod:`neurodeploy.passes.quantize`. In short, for a population N with incoming
synapses S:

* bounds (:func:`bounds`): hard ``lam <= (2**vth_bits - 1) / theta`` and ``lam <= bias_max 2**bias_exp_max /
  (64 max|b|)``; soft, with headroom H, ``64 lam H max|u| <= 2**23 - 1``, the v bound, ``lam H max|a| <=
  2**(activation_bits - 1) - 1``; the minimum useful scale ``2**(min_weight_bits - 1) / max|w|``;
* candidates (:func:`candidates`): ``lam_hi 2**(-j/count)``, ``j < count``, each synapse's largest fill scale
  ``<= lam_hi`` and the max-abs scale;
* per candidate and synapse (:func:`exponent`), the ``weight_exp`` among the fitting one and up to
  ``EXTRA_EXPONENTS`` finer ones with the lowest expected per-step input error
  (:func:`~neurodeploy.passes.quant_calibration.expected_input_error`);
* every trial is scored by running N alone in Loihi integers, driven by the float run's presynaptic spikes
  (:class:`Scorer`: the local graph is prepared once per population with the injected
  :class:`~neurodeploy.passes.simulator.Simulator` and only its integers change between trials), by ``(number of
  (sample, step, neuron) bins whose spike differs from the float run, RMS relative error of v)``; the lowest score
  wins (ties: the earlier, larger scale); then, per synapse, finer exponents while the score improves;
* a large population (more than ``SEARCH_NEURONS`` neurons and ``SEARCH_ENTRIES`` incoming entries, static
  Sparse / Dense synapses) is scored on ``SEARCH_NEURONS`` sampled neurons (:func:`search_sample`) and the chosen
  trial is applied to the whole population (:func:`whole`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Dense, Input, Op, Output, PlasticDense, Sparse
from neurodeploy.passes import quant_calibration as cal
from neurodeploy.passes import quant_fields as qf
from neurodeploy.passes.quant_ops import quantize_neuron, quantize_synapse
from neurodeploy.passes.quant_prepare import Population, PreparedSynapse, qerror, spikes_of
from neurodeploy.passes.simulator import PreparedRun, Simulator
from neurodeploy.profiles import Profile

#: How many finer exponents than the fitting one (which clip the largest weights) are considered per synapse.
EXTRA_EXPONENTS = 4
#: A population larger than this, with more than SEARCH_ENTRIES incoming synapse entries, has its candidate
#: scales scored on SEARCH_NEURONS sampled neurons.
SEARCH_NEURONS = 4096
SEARCH_ENTRIES = 1 << 20


# ------------------------------------------------------------------------------------------ exponents
def cost(syn: PreparedSynapse, lam: float, exp: int, bits: int) -> tuple[float, int]:
    """Expected per-step input error (squared input units, see quant_calibration) and #clipped at ``exp``;
    computed once per ``(lam, exp, bits)`` and synapse (the search asks again for the trial it scores)."""
    key = (lam, exp, bits)
    if key not in syn.costs:
        scaled = lam * np.asarray(syn.weights, np.float64)
        mant, clipped = qf.quantize_weights(scaled, exp, syn.sign_mode, bits)
        errors = mant * 2.0 ** exp - scaled  # per parameter; the entries read them through syn.kidx
        syn.costs[key] = (cal.expected_input_error(errors, syn.kidx, syn.rows, *syn.entry_rates(), syn.p_any,
                                                   syn.n_out, exp), clipped)
    return syn.costs[key]


def exponent(syn: PreparedSynapse, lam: float, bits: int, profile: Profile, method: str) -> tuple[int, int]:
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
    return min(options, key=lambda e: (cost(syn, lam, e, bits)[0], -e)), fit




# --------------------------------------------------------------------------------------------- bounds
def bounds(pop: Population, syns: list[PreparedSynapse], rec: Mapping[str, np.ndarray], profile: Profile,
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


def check_hard_bounds(pop: Population, bounds: dict[str, float], profile: Profile, min_weight_bits: int) -> None:
    a = profile.arithmetic
    lam_min = bounds["min_useful"]
    if "vth" in bounds and bounds["vth"] < lam_min:
        need = _bits_needed(lam_min * pop.theta)
        ratio = 2.0 ** (a.vth_bits - min_weight_bits + 1)
        raise qerror(pop.name, pop.op, "vth",
                      f"threshold {pop.theta:g} needs {need} bits at the minimum useful scale {lam_min:.4g} (the "
                      f"largest incoming weight kept at {min_weight_bits} bits); {profile.name} has {a.vth_bits}",
                      fix=f"lower the threshold-to-weight ratio below about {ratio:g} (weight normalisation), or "
                          "pass a smaller min_weight_bits")
    if "bias" in bounds and bounds["bias"] < lam_min:
        b_max = float(np.max(np.abs(pop.bias)))
        need = _bits_needed(64.0 * lam_min * b_max, extra=1)  # + 1 sign bit
        raise qerror(pop.name, pop.op, "bias",
                      f"bias {b_max:g} needs {need} bits (mantissa + exponent, signed) at the minimum useful scale "
                      f"{lam_min:.4g}; {profile.name} has {a.bias_bits}-bit mantissas shifted by at most "
                      f"{a.bias_exp_max}", fix="reduce the bias relative to the incoming weights, or pass a smaller "
                                               "min_weight_bits")


def candidates(lam_hi: float, syns: list[PreparedSynapse], bits: int, count: int, a) -> list[float]:
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


# ------------------------------------------------------------------------------------------- scoring
def _without_third_factor(op: Op) -> Op:
    """A PlasticDense whose rule reads a third factor needs the whole network (its Astrocyte reads other nodes), so
    a population scored alone sees that synapse frozen: a Dense with its initial weights (0 outside its mask)."""
    if not isinstance(op, PlasticDense) or op.third_factor is None:
        return op
    weight = op.weight if op.mask is None else np.where(np.asarray(op.mask, bool), op.weight, 0)
    return Dense(weight=weight, delays=op.delays, weight_exp=op.weight_exp, num_weight_bits=op.num_weight_bits,
                 sign_mode=op.sign_mode, quant=op.quant, origin=op.origin)


def _local_graph(pop: Population, syn_ops: Mapping[str, Op], syns: list[PreparedSynapse], neuron: Op,
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


def _target_trace(rec: Mapping[str, np.ndarray], name: str, fld: str, cols: np.ndarray | None) -> np.ndarray:
    """The float run's ``[B, T, n]`` trace of a population, or of its neurons ``cols`` (a sampled search)."""
    trace = rec[f"{name}/{fld}"]
    return trace if cols is None else trace[:, :, cols]




@dataclass
class Context:
    """What every trial of one pass run shares: the profile, the weight width, the float calibration run."""

    profile: Profile
    bits: int
    shapes: Mapping[str, tuple[int, ...]]
    stim: Mapping[str, np.ndarray]  # [B, T, n] per Input
    rec: Mapping[str, np.ndarray]  # the float run: "<node>/<field>" -> [B, T, n]
    simulator: Simulator
    target_cols: np.ndarray | None = None  # a sampled search: the population's neurons being scored


class Scorer:
    """Scores trials of one population: N alone in Loihi integers, each source replaced by an Input that replays
    the float run's spikes (teacher forcing). The local graph is prepared with the simulator on the first trial;
    later trials only swap the integer ops (:meth:`~neurodeploy.passes.simulator.PreparedRun.update`)."""

    def __init__(self, pop: Population, syns: list[PreparedSynapse], ctx: Context):
        self.pop, self.syns, self.ctx = pop, syns, ctx
        self.prepared: PreparedRun | None = None
        self.drive: dict[str, np.ndarray] = {}

    def score(self, syn_ops: Mapping[str, Op], neuron: Op, lam: float) -> tuple[tuple[int, float], dict]:
        """``((mismatched spike bins, RMS relative error of v), spike agreement)`` of one trial."""
        ctx, pop = self.ctx, self.pop
        ops = {syn.name: _without_third_factor(syn_ops[syn.name]) for syn in self.syns}
        ops[pop.name] = neuron
        if self.prepared is None:
            graph, feeds = _local_graph(pop, ops, self.syns, neuron, ctx.shapes)
            batch, steps = next(iter(ctx.stim.values())).shape[:2]
            self.drive = {inp: (np.zeros((batch, steps, 1), np.uint8) if not src
                                else spikes_of(src, ctx.stim, ctx.rec).reshape(batch, steps, *ctx.shapes[src])
                                if cols is None else spikes_of(src, ctx.stim, ctx.rec)[:, :, cols])
                          for inp, (src, cols) in feeds.items()}
            self.prepared = ctx.simulator.prepare(graph, "int")
        else:
            self.prepared.update(ops)
        recorded = self.prepared.run(self.drive, record=("spikes", "v"), nodes=[pop.name])
        batch, steps = next(iter(self.drive.values())).shape[:2]
        s_int = np.asarray(recorded[f"{pop.name}/spikes"]).reshape(batch, steps, -1)
        s_float = _target_trace(ctx.rec, pop.name, "spikes", ctx.target_cols)
        v_int = np.asarray(recorded[f"{pop.name}/v"]).reshape(batch, steps, -1)
        v_err = cal.trace_error(v_int / (64.0 * lam), _target_trace(ctx.rec, pop.name, "v", ctx.target_cols))
        mismatches = int(np.count_nonzero((s_int != 0) != (s_float != 0)))
        return (mismatches, v_err), cal.spike_agreement(s_float, s_int)


@dataclass
class Trial:
    """One quantization of a population and its incoming synapses, scored by teacher-forced emulation."""

    score: tuple[int, float]
    lam: float
    exps: dict[str, int]
    syn_ops: dict[str, Op]
    syn_stats: dict[str, dict]
    neuron: Op
    n_stats: dict
    agreement: dict


def trial(scorer: Scorer, lam: float, exps: Mapping[str, int]) -> Trial:
    """The population and its synapses quantized at ``lam`` and ``exps``, scored."""
    ctx = scorer.ctx
    syn_ops, syn_stats = {}, {}
    for syn in scorer.syns:
        syn_ops[syn.name], stats = quantize_synapse(syn, lam, exps[syn.name], ctx.bits, ctx.profile)
        c, _ = cost(syn, lam, exps[syn.name], ctx.bits)
        stats["input_rms_error"] = math.sqrt(c / max(1, syn.n_out)) / lam
        syn_stats[syn.name] = stats
    neuron, n_stats = quantize_neuron(scorer.pop, lam, ctx.profile)
    score, agreement = scorer.score(syn_ops, neuron, lam)
    return Trial(score, lam, dict(exps), syn_ops, syn_stats, neuron, n_stats, agreement)


def search(pop: Population, incoming: list[PreparedSynapse], lam_list: list[float], ctx: Context, method: str,
           tried: list[dict[str, Any]]) -> Trial:
    """Best trial over the candidate scales (each with its proposed exponents); then, for ``calibrated``, per
    synapse, finer exponents (clipping its largest weights) as long as the score improves. Every trial is
    appended to ``tried`` (the report's ``candidates``)."""
    scorer = Scorer(pop, incoming, ctx)
    best, fits = None, {}
    for lam in lam_list:
        exps = {}
        for syn in incoming:
            exps[syn.name], fits[(lam, syn.name)] = exponent(syn, lam, ctx.bits, ctx.profile, method)
        t = trial(scorer, lam, exps)
        tried.append({"scale": lam, "weight_exp": exps, "mismatches": t.score[0], "v_error": t.score[1]})
        if best is None or t.score < best.score:
            best = t
    if method != "calibrated":
        return best
    e_min = ctx.profile.arithmetic.weight_exp_min
    for syn in incoming:
        exps = dict(best.exps)
        while exps[syn.name] > max(e_min, fits[(best.lam, syn.name)] - EXTRA_EXPONENTS):
            exps[syn.name] -= 1
            t = trial(scorer, best.lam, exps)
            tried.append({"scale": best.lam, "weight_exp": dict(exps), "mismatches": t.score[0],
                          "v_error": t.score[1]})
            if t.score >= best.score:
                break
            best = t
    return best


# ------------------------------------------------------------------------------------------ sampling
def search_sample(pop: Population, incoming: list[PreparedSynapse], seed: int) -> np.ndarray | None:
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


def sub_population(pop: Population, sample: np.ndarray) -> Population:
    """``pop`` restricted to the neurons ``sample`` (a flat population of ``sample.size`` neurons)."""
    bias = pop.bias[sample]
    op = pop.op.replace(shape=(int(sample.size),), bias=pop.op.bias if np.ndim(pop.op.bias) == 0 else bias)
    return Population(pop.name, op, (int(sample.size),), pop.du, pop.dv, pop.theta, bias, pop.reset, pop.readout)


def whole(pop: Population, incoming: list[PreparedSynapse], sampled: Trial, ctx: Context) -> Trial:
    """The trial chosen on a sample, applied to the whole population: every synapse and neuron quantized at its
    scale and exponents. The score, the teacher-forced agreement and each synapse's ``input_rms_error`` stay
    those measured on the sampled neurons."""
    syn_ops, syn_stats = {}, {}
    for syn in incoming:
        syn_ops[syn.name], stats = quantize_synapse(syn, sampled.lam, sampled.exps[syn.name], ctx.bits, ctx.profile)
        stats["input_rms_error"] = sampled.syn_stats[syn.name]["input_rms_error"]
        syn_stats[syn.name] = stats
    neuron, n_stats = quantize_neuron(pop, sampled.lam, ctx.profile)
    return Trial(sampled.score, sampled.lam, dict(sampled.exps), syn_ops, syn_stats, neuron, n_stats,
                 sampled.agreement)


# ------------------------------------------------------------------------------------------ one population
@dataclass
class Choice:
    """A population's search result: the best trial and what the report says about how it was found."""

    best: Trial
    bounds: dict[str, float]
    binding: str | None
    tried: list[dict[str, Any]]
    sample: np.ndarray | None


def choose(pop: Population, incoming: list[PreparedSynapse], ctx: Context, method: str,
           options: Mapping[str, Any], warnings: list[str]) -> Choice:
    """Choose the population's scale and exponents (the module docstring) and quantize it and its synapses."""
    profile, a = ctx.profile, ctx.profile.arithmetic
    found = bounds(pop, incoming, ctx.rec, profile, options["state_headroom"], options["min_weight_bits"], warnings)
    check_hard_bounds(pop, found, profile, options["min_weight_bits"])
    upper = {k: v for k, v in found.items() if k != "min_useful"}
    lam_hard = min((found[k] for k in ("vth", "bias") if k in found), default=math.inf)
    lam_hi = min(upper.values(), default=math.inf)
    binding = min(upper, key=upper.get) if upper else None
    if not math.isfinite(lam_hi):
        lam_hi, binding = 1.0, "none (no threshold, bias, input or state to bound it)"
    if lam_hi < found["min_useful"]:
        warnings.append(f"'{pop.name}': the {binding} range forces scale {lam_hi:.4g} below the minimum useful "
                        f"scale {found['min_useful']:.4g}; small weights lose precision")
    fills = [s.fill_scale(ctx.bits) for s in incoming if s.w_max > 0]
    if method == "maxabs" and fills:
        lam_list = [min(min(fills), lam_hard)]
        hard = {k: found[k] for k in ("vth", "bias") if k in found}
        binding = "max-abs weight" if lam_list[0] < lam_hard else min(hard, key=hard.get)
    elif method == "maxabs":
        lam_list = [lam_hi]
    else:
        lam_list = candidates(lam_hi, incoming, ctx.bits, options["candidates"], a)
    if options.get("exact_threshold") and pop.theta is not None and pop.theta > 0:
        # each scale moved down to the nearest one at which lam * theta is an integer: vth is then exact, so a
        # reset by subtraction removes exactly the float threshold (no drift of (vth - lam theta) per spike)
        snapped = {math.floor(lam * pop.theta) / pop.theta for lam in lam_list if lam * pop.theta >= 1}
        lam_list = sorted(snapped, reverse=True) or lam_list
    tried: list[dict[str, Any]] = []
    sample = search_sample(pop, incoming, options["seed"])
    if sample is None:
        for syn in incoming:
            syn.p_any = cal.any_active_probability(syn.rows, syn.cols, syn.rates, syn.n_out)
            syn.costs.clear()
        best = search(pop, incoming, lam_list, ctx, method, tried)
    else:
        sub_syns = [syn.restrict(sample) for syn in incoming]
        for syn in sub_syns:
            syn.p_any = cal.any_active_probability(syn.rows, syn.cols, syn.rates, syn.n_out)
            syn.costs.clear()
        sub_ctx = Context(ctx.profile, ctx.bits, ctx.shapes, ctx.stim, ctx.rec, ctx.simulator, target_cols=sample)
        best = whole(pop, incoming, search(sub_population(pop, sample), sub_syns, lam_list, sub_ctx, method, tried),
                     ctx)
    return Choice(best, found, binding, tried, sample)
