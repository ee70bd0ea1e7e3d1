"""How SpiNNaker's s16.15 parameters round the converted neuron parameters (a report, nothing is changed).

sPyNNaker keeps V, I_syn, tau_m, cm, i_offset, v_thresh as s16.15 (resolution ``2**-15``) and computes at load
time ``exp_TC = expk(-dt/tau_m)`` (s16.15), ``R = tau_m / cm`` (s16.15) and, for exponential synapses,
``decay = exp(-dt/tau_syn)`` and ``init = (tau_syn/dt) (1 - decay)`` (u0.32). Modelled here with round-to-nearest
at each stored value; the figures are the board's deviation from the exact conversion:

* ``membrane_decay_error``: relative error of ``1 - exp_TC`` (the gain of every input and of the leak);
* ``input_gain_error``: relative error of ``(1 - exp_TC) R init``, the factor each weight passes through;
* ``v_thresh_error_units`` / ``i_offset_max_error_units``: rounding in Loihi integer v units (per step for the bias);
  below 0.5 the threshold still separates the same integers; ``v_thresh_rel_error`` the same relative to it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .netlist import Netlist

LSB = 2.0 ** -15


def s1615(x):
    """Round to the s16.15 grid (round to nearest)."""
    return np.rint(np.asarray(x, dtype=np.float64) / LSB) * LSB


def fixed_point_report(net: Netlist, dt: float = 1.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pop in net.populations.items():
        conv = pop.conversion
        if conv is None:
            continue
        tau_m = float(s1615(conv.tau_m))
        exp_tc = float(s1615(math.exp(-float(s1615(dt / tau_m)))))
        r = float(s1615(tau_m / conv.cm))
        ideal = (1 - conv.beta) * conv.tau_m / conv.cm
        entry: dict[str, Any] = {
            "exp_tc": conv.beta, "exp_tc_board": exp_tc,
            "membrane_decay_error": ((1 - exp_tc) - (1 - conv.beta)) / (1 - conv.beta),
        }
        board_gain = (1 - exp_tc) * r
        if conv.cell_type == "IF_curr_exp":
            tau_s = float(s1615(conv.tau_syn))
            decay = math.exp(-float(s1615(dt / tau_s)))
            init = (tau_s / dt) * (1 - decay)
            entry.update(synaptic_decay=conv.alpha, synaptic_decay_board=decay,
                         synaptic_decay_error=(decay - conv.alpha) / conv.alpha if conv.alpha else 0.0)
            board_gain *= init
            ideal *= conv.init
        entry["input_gain_error"] = board_gain / ideal - 1.0
        entry["v_thresh_error_units"] = abs(float(s1615(conv.v_thresh)) - conv.v_thresh) * conv.k_per_mv
        entry["v_thresh_rel_error"] = (abs(float(s1615(conv.v_thresh)) - conv.v_thresh) / conv.v_thresh
                                       if conv.v_thresh else 0.0)
        i_off = np.asarray(pop.i_offset, dtype=np.float64)
        entry["i_offset_max_error_units"] = (float(np.max(np.abs(s1615(i_off) - i_off))) * conv.k_per_mv * conv.g
                                             if i_off.size else 0.0)
        entry["v_thresh_mV"] = conv.v_thresh
        entry["v_range_ok"] = bool(abs(conv.v_thresh) < 2 ** 15)
        out[name] = entry
    return out
