"""Quantize, step 3: one op in Loihi integers at a given scale ``lam`` (the rounding of every field is in
:mod:`neurodeploy.passes.quant_fields`).

* :func:`quantize_synapse`: mantissas ``m = q(lam * w / 2**weight_exp)`` (round half to even, clipped to the
  ``num_weight_bits`` grid of the sign mode); effective weights ``m * 2**weight_exp / lam``.
* :func:`quantize_neuron`: ``du = round(4096 du) - 1``, ``dv = round(4096 dv)`` (clamped to [0, 4095]),
  ``vth = round(lam * theta)`` (LI: the largest threshold, it never spikes), ``bias << bias_exp ~= 64 lam b``
  (per-neuron exponent). A CubaLIF -- or a subclass of it, whose extra fields are kept -- is the float op with
  those fields replaced; IF and LI become a plain CubaLIF (``du = 4095, dv = 0``; ``readout = True``).
* :func:`correct_bias` (``bias_correction=True``): the mean per-step error of each neuron's synaptic input on the
  calibration run (:func:`input_error_mean`: ``m_i = mean_{b,t} (a_int - lam a_float)``, input units, where
  ``a_int`` sums the mantissas of the main op and its residuals per (op, delay, step) and floors the sum shifted
  by a negative ``weight_exp`` as Loihi does; this floor, not the weight rounding, is most of it) is taken out of
  the neuron's bias: ``bias << bias_exp ~= 64 lam b - 64 m_i 4096 / (du + 1)`` (``4096 / (du + 1)``: u's
  steady-state gain).
* :func:`add_residual`: up to ``MAX_RESIDUALS`` synapses ``<name>.residual``, ``<name>.residual2`` from the same
  source into the same target, each holding ``q(w - sum_k q_k(w))`` at the same ``lam`` and its own fitting
  exponent, until the combined RMS relative weight error is at most the tolerance.

Each returns the op and its part of the report (plain numbers, JSON-able).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from neurodeploy.ir.arithmetic import DECAY_UNITY
from neurodeploy.ir.linear import synapse_entries
from neurodeploy.ir.ops import CubaLIF, Op, QuantInfo, Sparse
from neurodeploy.passes import quant_fields as qf
from neurodeploy.passes.quant_prepare import Population, PreparedSynapse
from neurodeploy.profiles import Profile

#: At most this many residual synapses per synapse (``residual=``).
MAX_RESIDUALS = 2


def quantize_synapse(syn: PreparedSynapse, lam: float, exp: int, bits: int, profile: Profile) -> tuple[Op, dict]:
    """``syn`` at scale ``lam`` and exponent ``exp`` with ``bits``-bit mantissas: (integer op, report entry)."""
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


def quantize_neuron(pop: Population, lam: float, profile: Profile) -> tuple[CubaLIF, dict]:
    """``pop`` at scale ``lam``: (integer CubaLIF -- the float op's own class when it is a CubaLIF --, report)."""
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
    fields = {"du": du, "dv": dv, "vth": vth, "bias": bias, "bias_exp": bias_exp, "quant": quant}
    if isinstance(pop.op, CubaLIF):  # its class and any extra fields (a CubaLIF subclass) are kept
        new = pop.op.replace(**fields)
    else:  # IF, LI: lowered to a plain CubaLIF
        new = CubaLIF(shape=pop.shape, reset=pop.reset, readout=pop.readout, origin=pop.op.origin, **fields)
    stats = {"op": new.op_type, "lowered_from": None if isinstance(pop.op, CubaLIF) else pop.op.op_type,
             "origin": pop.op.origin, "scale": float(lam), "du": du, "dv": dv, "vth": vth, "error": errors,
             "zeros": {"bias": int(np.count_nonzero((mant == 0) & (pop.bias != 0)))},
             "saturated": {"du": du_sat, "dv": dv_sat, "vth": vth_sat, "bias": bias_sat}}
    return new, stats


def mantissas(op: Op) -> np.ndarray:
    """A quantized synapse's mantissas, flat, as float64."""
    return np.asarray(op.value if isinstance(op, Sparse) else op.weight, np.float64).ravel()


def add_residual(name: str, syn: PreparedSynapse, new_nodes: dict[str, Op], edges: list[tuple[str, str]],
                  node_reports: dict[str, dict], profile: Profile, bits: int, tolerance: float) -> None:
    """Up to MAX_RESIDUALS synapses ``<name>.residual``, ``<name>.residual2`` each carrying what the previous ones
    left, ``w - sum q_k(w)`` (float units), at the same scale and its own fitting exponent, until the combined
    weight error is at most ``tolerance``. The main synapse's report gets ``residual`` (the synapses, their
    ``weight_exp`` and the combined weight error)."""
    a = profile.arithmetic
    main = new_nodes[name]
    lam = float(node_reports[name]["scale"])
    total = mantissas(main) * 2.0 ** main.weight_exp / lam
    weights = np.asarray(syn.weights, np.float64)
    added: list[str] = []
    exps: list[int] = []
    combined = qf.relative_error(total, weights)
    for k in range(MAX_RESIDUALS):
        rest = weights - total
        if combined <= tolerance or not np.any(rest):
            break
        sign_mode = qf.sign_mode_of(rest)
        res = PreparedSynapse(f"{name}.residual" + (str(k + 1) if k else ""), syn.op, syn.source, syn.target, rest,
                       syn.rows, syn.cols, syn.kidx, syn.n_out, sign_mode,
                       extremes=np.array([rest.min(), rest.max()], np.float64))
        exp = qf.fitting_exponent(lam * res.extremes, sign_mode, bits, a.weight_exp_min, a.weight_exp_max)
        op, stats = quantize_synapse(res, lam, exp, bits, profile)
        total = total + mantissas(op) * 2.0 ** exp / lam
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


def input_error_mean(float_op: Op, ops: list[Op], in_shape: tuple[int, ...], spikes: np.ndarray, lam: float
                     ) -> np.ndarray:
    """``m_i`` of the module docstring for one float synapse ``float_op`` quantized as ``ops`` (the main op and its
    residuals), measured on the calibration run: the source's ``spikes`` ``[B, T, n]`` through each op's mantissas,
    summed per (op, delay, step) and shifted by its ``weight_exp`` as Loihi does (a right shift floors), against
    ``lam`` times the float input; the mean over samples and steps per target neuron."""
    s = sp.csr_matrix(np.asarray(spikes, np.float64).reshape(-1, int(math.prod(in_shape))))
    rows, cols, values, _, shape = synapse_entries(float_op, in_shape)
    exact = s @ sp.csr_matrix((np.asarray(values, np.float64), (rows, cols)), shape=shape).T
    error = -lam * np.asarray(exact.sum(axis=0)).ravel()
    for op in ops:
        rows, cols, values, delays, shape = synapse_entries(op, in_shape)
        delays = np.zeros(rows.size, np.int64) if delays is None else np.broadcast_to(delays, rows.shape)
        for d in np.unique(delays):
            k = delays == d
            m = sp.csr_matrix((np.asarray(values[k], np.float64), (rows[k], cols[k])), shape=shape)
            sums = (s @ m.T).toarray()  # integers (exact in float64)
            error += np.floor(sums * 2.0 ** int(op.weight_exp)).sum(axis=0)
    return error / max(1, s.shape[0])


def correct_bias(pop: Population, neuron: CubaLIF, mean_error: np.ndarray, profile: Profile
                 ) -> tuple[CubaLIF, dict]:
    """``neuron`` (``pop`` quantized) with ``mean_error`` (``m_i``, input units per step) taken out of its bias
    (module docstring); the report entry gives the largest correction in units of the threshold."""
    a = profile.arithmetic
    lam = float(neuron.quant.scale)
    gain = DECAY_UNITY / (int(neuron.du) + 1)
    bias = np.broadcast_to(np.asarray(pop.bias, np.float64).ravel(), (mean_error.size,))
    target = 64.0 * lam * bias - 64.0 * gain * mean_error
    mant, exps, saturated = qf.quantize_bias(target, a.bias_bits, a.bias_exp_min, a.bias_exp_max)
    new = neuron.replace(bias=mant.reshape(pop.shape), bias_exp=exps.reshape(pop.shape))
    vth = max(1, int(neuron.vth)) * 64.0
    return new, {"max_abs": float(np.max(np.abs(64.0 * gain * mean_error), initial=0.0)) / vth,
                 "saturated": saturated}
