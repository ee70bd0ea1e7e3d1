"""sPyNNaker's 16-bit weights and delays: per-population, per-receptor shifts, rounding report, delay planning.

Weights (sPyNNaker 1!7.4.1 ``population_vertex.get_ring_buffer_shifts``, ``synapse_dynamics_static``): every
synaptic word holds ``q = rint(|w| * 2**(15 - s)) & 0xFFFF`` where ``s`` is one left shift per post-synaptic
population and receptor (excitatory, inhibitory); a step's arriving words are summed in a 16-bit saturating
ring-buffer entry ``r``, which enters the neuron as ``r * 2**(s - 15)`` nA. Hence the weight resolution is
``2**(s - 15)`` nA, the largest weight (and the largest per-step sum) is ``(2**16 - 1) * 2**(s - 15)`` nA, and
``s = ceil(log2(M))`` (plus one when ``M`` is an exact power of two) for an expected maximum per-step sum ``M``.

Shift policies (``shift=`` option):

* ``"worst_case"`` (default): ``M`` = the largest possible per-step sum, ``max_j sum_i |w_ij|`` over every synapse
  of the receptor into neuron ``j`` (each synapse delivers at most one spike per step): the ring buffer can never
  saturate; small weights may round to zero, and every one that does is reported.
* ``"spynnaker"``: sPyNNaker's own rule (what a script without ``max_expected_summed_weight`` gets): with constant
  delays ``M = sum over projections of max|w| * max fan-in``; otherwise a Poisson upper bound at 30 Hz, 5 sigma.
* an integer, or a dict ``{population: {"excitatory": s, "inhibitory": s}}``: given shifts.

The emitted script passes ``max_expected_summed_weight`` so that sPyNNaker uses exactly the shift chosen here, and
stores the weights already rounded to that grid (``q * 2**(s - 15)``), so a local Brian2 run sees the board's
weights. Synapses whose weight rounds to zero are left out of the script (they would be stored and do nothing) and
listed in the report.

Delays: a core with ``n`` neurons has ``2**(14 - ceil(log2 n) - 1)`` delay slots (32 at 256 neurons); sPyNNaker
supports ``m = min(2**ceil(log2 D_max), slots)`` steps on the core and needs delay-extension stages for longer
delays: ``ceil(D_max / m) - 1`` of them, at most 8.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurodeploy.errors import CapacityError, InputError, QuantizationError

from .hardware import SpiNNakerSpec, n_bits
from .netlist import RECEPTORS, Netlist, Projection

MAX_WORD = 0xFFFF
#: sPyNNaker's Poisson summation limit (constants.py POSSION_SIGMA_SUMMATION_LIMIT).
POISSON_SIGMA_LIMIT = 3.0
MAX_LISTED = 100


def shift_for(max_sum: float) -> int:
    """sPyNNaker's shift for an expected maximum per-step sum ``max_sum`` (nA)."""
    if max_sum <= 0:
        return 0
    s = int(math.ceil(max(0.0, math.log2(max_sum))))
    return s + 1 if 2.0 ** s <= max_sum else s


def max_expected_for(shift: int) -> float:
    """A ``max_expected_summed_weight`` from which sPyNNaker derives exactly ``shift``."""
    return 0.5 if shift <= 0 else 0.75 * 2.0 ** shift


def _combine(stats: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    """Pool (mean, variance, n) groups (Chan's parallel algorithm, sample variance as sPyNNaker's RunningStats)."""
    n_tot, mean, m2 = 0, 0.0, 0.0
    for m, var, n in stats:
        if n <= 0:
            continue
        new_n = n_tot + n
        delta = m - mean
        m2 = m2 + var * (n - 1.0) + delta * delta * n_tot * n / new_n
        mean = (n_tot * mean + n * m) / new_n
        n_tot = new_n
    variance = m2 / (n_tot - 1.0) if n_tot > 1 else 0.0
    return mean, variance, n_tot


def _poisson_upper_bound(w_mean: float, w_std: float, rate_hz: float, n_in: int, sigma: float,
                         steps_per_second: float) -> float:
    """Expected upper bound of a ring-buffer entry (sPyNNaker ``_ring_buffer_expected_upper_bound``'s maths):
    ``lam * mean + sigma * sqrt(lam * mean**2 + lam * std**2 * P(X <= k - 1))``, ``lam`` spikes per step,
    ``X ~ Poisson(lam)``, ``k = round(lam + 3 sqrt(lam))``."""
    from scipy import special

    lam = n_in * rate_hz / steps_per_second
    if lam <= 0:
        return 0.0
    k = int(round(lam + POISSON_SIGMA_LIMIT * math.sqrt(lam)))
    weight_var = 0.0
    if w_std > 0:
        ratio = math.log(lam) * k - special.gammaln(1 + k)
        if -701.0 < ratio < 701.0 and ratio != 0.0:
            weight_var = lam * w_std ** 2 * (special.gammaincc(1 + k, lam) - math.exp(ratio - lam))
    return lam * w_mean + sigma * math.sqrt(lam * w_mean ** 2 + max(weight_var, 0.0))


def spynnaker_max_sum(projs: list[Projection], spec: SpiNNakerSpec) -> float:
    """sPyNNaker's default expected maximum per-step sum for one receptor (all rates at the config's 30 Hz)."""
    if not projs:
        return 0.0
    delay_stats, weight_stats, rate_stats = [], [], []
    total = biggest = 0.0
    for p in projs:
        w = np.abs(p.weight_exact)
        n_conns = int(np.bincount(p.post_idx).max()) if p.size else 0
        delay_stats.append((0.0, float(np.var(p.delay.astype(float))), n_conns))
        weight_stats.append((float(w.mean()), float(np.var(w)), n_conns))
        rate_stats.append((spec.spikes_per_second, 0.0, n_conns))
        total += float(w.max()) * n_conns  # spikes_per_tick = max(1, 30 Hz * 1 ms) = 1
        biggest = max(biggest, float(w.max()))
    if _combine(delay_stats)[1] == 0.0:
        return max(total, biggest)
    w_mean, w_var, n_in = _combine(weight_stats)
    rate = _combine(rate_stats)[0]
    bound = _poisson_upper_bound(w_mean, math.sqrt(w_var), rate, n_in, spec.ring_buffer_sigma,
                                 1000.0 / spec.timestep_ms)
    return max(min(bound, total), biggest)


def _resolve_shift(policy: Any, post: str, receptor: str, worst: float, projs: list[Projection],
                   spec: SpiNNakerSpec) -> tuple[int, float]:
    if isinstance(policy, dict):
        try:
            return int(policy[post][receptor]), float("nan")
        except (KeyError, TypeError, ValueError):
            raise InputError(f"shift dict has no integer entry [{post!r}][{receptor!r}]",
                             fix="give {population: {'excitatory': s, 'inhibitory': s}} for every population, or "
                                 "shift='worst_case'") from None
    if isinstance(policy, int | np.integer) and not isinstance(policy, bool):
        return int(policy), float("nan")
    if policy == "worst_case":
        return shift_for(worst), worst
    if policy == "spynnaker":
        m = spynnaker_max_sum(projs, spec)
        return shift_for(m), m
    raise InputError(f"unknown shift policy {policy!r}",
                     fix="use 'worst_case', 'spynnaker', an integer or {population: {receptor: shift}}")


def encode_weights(net: Netlist, spec: SpiNNakerSpec, shift: Any = "worst_case") -> dict[str, Any]:
    """Convert every projection's units to nA, choose shifts, round to the 16-bit grid, drop zeroed synapses.

    Sets ``projection.weight_exact`` (float nA) and ``projection.weight`` (rounded, signed) and keeps only the
    synapses whose rounded weight is non-zero. Returns the weight section of the quantization report (the first
    100 zeroed / saturated synapses of each projection); every one of them, as rows (pre, post, Loihi units, nA), is
    in ``net.report_arrays["<projection>/zeroed"]`` / ``[".../saturated"]`` (written to quantization.npz).
    """
    for p in net.projections:
        conv = net.populations[p.post].conversion
        p.weight_exact = p.units * conv.nA_per_unit
    populations: dict[str, Any] = {}
    per_projection: dict[str, Any] = {}
    for post, pop in net.populations.items():
        if pop.is_source:
            continue
        entry: dict[str, Any] = {}
        for receptor in RECEPTORS:
            projs = [p for p in net.incoming(post) if p.receptor == receptor]
            sums = np.zeros(pop.size)
            for p in projs:
                np.add.at(sums, p.post_idx, np.abs(p.weight_exact))
            worst = float(sums.max()) if projs else 0.0
            s, m = _resolve_shift(shift, post, receptor, worst, projs, spec)
            spynnaker_s = shift_for(spynnaker_max_sum(projs, spec)) if projs else 0
            if s > spec.max_shift:
                raise QuantizationError(
                    f"{receptor} input needs a ring-buffer shift of {s} (largest per-step sum {worst:.4g} nA) but "
                    f"sPyNNaker allows at most {spec.max_shift}", node=post,
                    fix="reduce the weights or fan-in into this population, or scale voltages down (mv_per_unit)")
            lsb = 2.0 ** (s - 15)
            q_sums = np.zeros(pop.size)
            for p in projs:  # in place where possible: at 100M synapses each temporary is 0.8 GB
                q = np.abs(p.weight_exact)
                q /= lsb
                np.rint(q, out=q)
                saturated = q > MAX_WORD
                zeroed = (q == 0) & (p.weight_exact != 0)
                np.minimum(q, MAX_WORD, out=q)
                np.add.at(q_sums, p.post_idx, q)
                w_q = q
                w_q *= lsb  # |w| rounded to the grid (a power of two: exact), then the sign of the exact weight
                np.negative(w_q, out=w_q, where=p.weight_exact < 0)
                del q
                err = w_q - p.weight_exact
                rms = float(np.sqrt(np.mean(np.square(p.weight_exact)))) if p.size else 0.0
                max_err = float(np.max(np.abs(err))) if p.size else 0.0
                np.square(err, out=err)
                rel_rms = float(np.sqrt(np.mean(err)) / rms) if rms else 0.0
                del err
                per_projection[p.label] = {
                    "synapse": p.synapse, "pre": p.pre, "post": p.post, "receptor": receptor, "layer": p.layer,
                    "synapses": p.size, "shift": s, "lsb_nA": lsb, "zeroed": int(zeroed.sum()),
                    "saturated": int(saturated.sum()),
                    "rel_rms_error": rel_rms,
                    "max_abs_error_units": max_err / abs(net.populations[post].conversion.nA_per_unit),
                    "zeroed_list": [[int(a), int(b), float(u)] for a, b, u in
                                    zip(p.pre_idx[zeroed][:MAX_LISTED], p.post_idx[zeroed][:MAX_LISTED],
                                        p.units[zeroed][:MAX_LISTED])],
                    "saturated_list": [[int(a), int(b), float(u)] for a, b, u in
                                       zip(p.pre_idx[saturated][:MAX_LISTED], p.post_idx[saturated][:MAX_LISTED],
                                           p.units[saturated][:MAX_LISTED])],
                }
                net.report_arrays[f"{p.label}/zeroed"] = np.column_stack(
                    [p.pre_idx[zeroed], p.post_idx[zeroed], p.units[zeroed], p.weight_exact[zeroed]])
                net.report_arrays[f"{p.label}/saturated"] = np.column_stack(
                    [p.pre_idx[saturated], p.post_idx[saturated], p.units[saturated], p.weight_exact[saturated]])
                if saturated.any():
                    raise QuantizationError(
                        f"projection {p.label}: {int(saturated.sum())} weights exceed sPyNNaker's 16-bit word at "
                        f"shift {s} (sPyNNaker would wrap them modulo 2**16)", node=post,
                        fix="use shift='worst_case' or a larger shift for this population")
                p.weight = w_q
            overload = q_sums / MAX_WORD
            entry[receptor] = {
                "shift": s, "lsb_nA": lsb, "max_weight_nA": MAX_WORD * lsb, "expected_max_sum_nA": m,
                "worst_case_sum_nA": worst, "projections": [p.label for p in projs],
                "spynnaker_default_shift": spynnaker_s,
                "neurons_that_can_saturate": int((overload > 1).sum()),
                "max_overload": float(overload.max()) if projs else 0.0,
                "max_expected_summed_weight": max_expected_for(s),
            }
        populations[post] = entry
    _drop_zeroed(net)
    total = sum(v["synapses"] for v in per_projection.values())
    zeroed = sum(v["zeroed"] for v in per_projection.values())
    return {"policy": shift if isinstance(shift, str | int) else "explicit", "populations": populations,
            "projections": per_projection, "synapses": int(total), "zeroed": int(zeroed),
            "zeroed_fraction": zeroed / total if total else 0.0}


def _drop_zeroed(net: Netlist) -> None:
    kept = []
    for p in net.projections:
        keep = p.weight != 0
        if not keep.all():
            p.pre_idx, p.post_idx, p.units, p.delay = p.pre_idx[keep], p.post_idx[keep], p.units[keep], p.delay[keep]
            p.weight, p.weight_exact = p.weight[keep], p.weight_exact[keep]
        if p.size:
            kept.append(p)
    net.projections = kept


def plan_delays(net: Netlist, spec: SpiNNakerSpec) -> dict[str, Any]:
    """On-core delay slots and delay-extension stages per post population (sPyNNaker's delay support adder)."""
    posts: dict[str, Any] = {}
    for post, pop in net.populations.items():
        if pop.is_source:
            continue
        projs = net.incoming(post)
        max_delay = max((int(p.delay.max()) for p in projs), default=1)
        atoms = min(pop.size, spec.max_neurons_per_core(pop.cell_type))
        slots = spec.delay_slots(atoms)
        supported = min(1 << n_bits(max_delay), slots)
        stages = 0
        if max_delay > supported:
            stages = math.ceil(max_delay / supported) - 1
            if stages > spec.max_delay_stages:
                worst = max(projs, key=lambda p: int(p.delay.max()))
                raise CapacityError(
                    f"projection {worst.label} has a delay of {max_delay} steps but {post} supports at most "
                    f"{supported * (spec.max_delay_stages + 1)} ({supported} on-core slots x "
                    f"{spec.max_delay_stages + 1})", node=post,
                    fix="shorten the delays, or use fewer neurons per core (more on-core delay slots)")
        posts[post] = {"max_delay_steps": max_delay, "atoms_per_core": atoms, "delay_slots": slots,
                       "on_core_max_delay": supported, "extension_stages": stages,
                       "extended_synapses": {p.label: int((p.delay > supported).sum()) for p in projs
                                             if (p.delay > supported).any()}}
    return posts
