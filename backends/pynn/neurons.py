"""Loihi-form CUBA LIF integers -> PyNN ``IF_curr_exp`` / ``IF_curr_delta`` parameters, exactly, at dt = 1 ms.

Loihi (Lava ``PyLifModelBitAcc``, see :class:`neurodeploy.ir.ops.CubaLIF`), per step, rounding aside::

    u[t] = alpha * u[t-1] + 64 * A[t]          alpha = (4096 - (du + 1)) / 4096
    v[t] = beta  * v[t-1] + u[t] + b           beta  = (4096 - dv) / 4096,  b = bias_mant << bias_exp
    spike if v[t] > 64 * vth, then v[t] = 0

``A[t]`` is the summed integer synaptic input of the step (weight mantissa x 2**weight_exp per spike). The
current decays by ``du + 1`` (Lava's ``decay_const_u = du + 1``): du = 4095 keeps no current at all.

sPyNNaker (``neuron_impl_standard.h``, ``neuron_model_lif_impl.h``, ``exp_synapse_utils.h``), per step::

    I[t] = exp(-dt/tau_syn) * I[t-1] + init * W[t]        init = (tau_syn/dt) * (1 - exp(-dt/tau_syn))
    V[t] = a - exp(-dt/tau_m) * (a - V[t-1]),             a = R * (I[t] + i_offset),  R = tau_m / cm
    spike if V[t] >= v_thresh, then V[t] = v_reset

which is Loihi's recursion with ``v = K * V`` and ``u = K * g * I`` when

* ``exp(-dt/tau_m) = beta``    -> ``tau_m = -dt / ln(1 - dv/4096)``
* ``exp(-dt/tau_syn) = alpha`` -> ``tau_syn = -dt / ln(1 - (du + 1)/4096)`` (not ``du/4096``: Lava decays u by
  ``du + 1``); du = 4095 gives alpha = 0, a current that lasts one step: ``IF_curr_delta``
* a weight of ``A`` integer units is ``W = 64 A / (K g init)`` nA, ``g = (1 - beta) R`` (mV per nA held one step);
  for ``IF_curr_delta`` sPyNNaker adds ``W / dt`` for one step, so ``W = 64 A dt / (K g)``
* ``i_offset = b / (K g)`` nA, ``v_thresh = (64 vth + 1/2) / K`` mV (half way between Loihi's last silent and
  first spiking integer), ``v_rest = v_reset = 0``, ``cm = 1`` nF, ``tau_refrac = 0``.

``K`` (Loihi v units per mV) is ``64 * lambda / mv_per_unit`` with ``lambda = quant.scale``: 1 mV is
``mv_per_unit`` float units of the trained model, so thresholds and voltages read as in the float model.

dv = 0 (no leak) cannot be represented: sPyNNaker computes ``exp(-dt/tau_m)`` as an s16.15 number and with
``exp(-dt/tau_m) = 1`` the input term ``(1 - exp(-dt/tau_m)) a`` vanishes. The smallest representable leak is used
instead, ``beta = 1 - 2**-15`` (``tau_m = 32767.5`` ms): v loses 3e-5 of itself per step (0.3 % per 100 steps).

Continuous-time simulators (Brian2, NEST) integrate the same ODE exactly between steps and apply a step's spikes
after its update (see ``model.py``); the synaptic response then differs from sPyNNaker's by the factor
:attr:`LIFConversion.continuous_gain`, which the emitted script applies to every weight on those simulators:

* exp: ``W_c / W = (tau_m - tau_syn)(1 - beta)(1 - alpha) / (dt (beta - alpha))`` (limit ``tau_m -> tau_syn``:
  ``(1 - beta)(1 - alpha) tau**2 / (dt**2 beta)``), so that the continuous PSP sampled at the steps equals
  Loihi's ``(beta**n - alpha**n) / (beta - alpha)``;
* delta: ``W_c / W = g / dt`` (the simulator adds the jump after the step's decay, before its threshold, like
  Loihi; see the Brian2 notes in ``model.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from neurodeploy.errors import QuantizationError, UnsupportedOpError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.ops import CubaLIF

DECAY_UNITY = 4096
#: The smallest leak sPyNNaker can represent: exp(-dt/tau_m) = 1 - 2**-15 in s16.15.
MIN_LEAK = 2.0 ** -15
CM_NF = 1.0


@dataclass(frozen=True)
class LIFConversion:
    """One population's PyNN parameters and unit conversions (all float, PyNN units: ms, mV, nA, nF)."""

    cell_type: str
    tau_m: float
    tau_syn: float
    cm: float
    v_thresh: float
    alpha: float
    beta: float
    leak_substituted: bool
    k_per_mv: float
    g: float
    init: float
    nA_per_unit: float
    continuous_gain: float
    reset: str
    readout: bool

    def pynn_parameters(self, i_offset: np.ndarray) -> dict:
        """The cell-type keyword arguments (``i_offset`` per neuron)."""
        params = {"tau_m": self.tau_m, "cm": self.cm, "v_rest": 0.0, "v_reset": 0.0, "v_thresh": self.v_thresh,
                  "tau_refrac": 0.0, "i_offset": np.asarray(i_offset, dtype=float)}
        if self.cell_type == "IF_curr_exp":
            params.update(tau_syn_E=self.tau_syn, tau_syn_I=self.tau_syn)
        return params

    def to_json(self) -> dict:
        return asdict(self)


def _tau(decay: float, dt: float) -> float:
    """``-dt / ln(decay)`` for 0 < decay < 1."""
    return -dt / math.log(decay)


def continuous_gain_exp(tau_m: float, tau_s: float, alpha: float, beta: float, dt: float) -> float:
    """``W_continuous / W_spinnaker`` for exponential synapses (see the module docstring)."""
    if abs(tau_m - tau_s) <= 1e-9 * max(tau_m, tau_s):
        tau = 0.5 * (tau_m + tau_s)
        return (1 - beta) * (1 - alpha) * tau * tau / (dt * dt * math.exp(-dt / tau))
    # beta - alpha without cancellation: exp(-dt/tm) - exp(-dt/ts) = exp(-dt/tm) * -expm1(dt/tm - dt/ts)
    diff = -math.exp(-dt / tau_m) * math.expm1(dt / tau_m - dt / tau_s)
    return (tau_m - tau_s) * (1 - beta) * (1 - alpha) / (dt * diff)


def convert_lif(op: CubaLIF, node: str, dt: float = 1.0, mv_per_unit: float = 1.0) -> LIFConversion:
    """Convert one quantized :class:`CubaLIF` node; errors name the node, the field and the fix."""
    if op.quant is None:
        raise UnsupportedOpError("the PyNN backend needs a quantized CubaLIF (integers plus quant.scale)", node=node,
                                 fix="compile the model first (neurodeploy compile MODEL --target spinnaker)")
    if op.reset != "zero":
        raise UnsupportedOpError(f"reset mode '{op.reset}' has no PyNN IF_curr_exp equivalent (it resets V to "
                                 "v_reset)", node=node, fix="compile with reset='zero' for the spinnaker target")
    du, dv, vth = int(op.du), int(op.dv), int(op.vth)
    for field, value in (("du", du), ("dv", dv)):
        if not 0 <= value <= DECAY_UNITY - 1:
            raise QuantizationError(f"{field} = {value} is outside Loihi's 12-bit range [0, 4095]", node=node,
                                    fix="re-run the quantize pass")
    if vth < 0:
        raise QuantizationError(f"vth = {vth} is negative", node=node, fix="re-run the quantize pass")
    scale = float(op.quant.scale)
    if not scale > 0 or not math.isfinite(scale):
        raise QuantizationError(f"quant.scale = {scale} must be a positive number", node=node,
                                fix="re-run the quantize pass")
    alpha = (DECAY_UNITY - (du + 1)) / DECAY_UNITY
    beta = (DECAY_UNITY - dv) / DECAY_UNITY
    substituted = dv == 0
    if substituted:
        beta = 1.0 - MIN_LEAK
    tau_m = _tau(beta, dt)
    r_mohm = tau_m / CM_NF
    g = (1.0 - beta) * r_mohm
    k = 64.0 * scale / mv_per_unit
    v_thresh = (64.0 * vth + 0.5) / k
    if alpha > 0.0:
        tau_s = _tau(alpha, dt)
        init = (tau_s / dt) * (1.0 - alpha)
        na_per_unit = 64.0 / (k * g * init)
        gain = continuous_gain_exp(tau_m, tau_s, alpha, beta, dt)
        cell = "IF_curr_exp"
    else:
        tau_s, init = 0.0, 1.0
        na_per_unit = 64.0 * dt / (k * g)
        gain = g / dt
        cell = "IF_curr_delta"
    return LIFConversion(cell_type=cell, tau_m=tau_m, tau_syn=tau_s, cm=CM_NF, v_thresh=v_thresh, alpha=alpha,
                         beta=beta, leak_substituted=substituted, k_per_mv=k, g=g, init=init, nA_per_unit=na_per_unit,
                         continuous_gain=gain, reset=op.reset, readout=bool(op.readout))


def i_offset(op: CubaLIF, conv: LIFConversion, size: int) -> np.ndarray:
    """Per-neuron ``i_offset`` (nA) from Loihi's ``bias_mant << bias_exp``: ``b / (K g)``."""
    bias = np.broadcast_to(np.asarray(op.bias, dtype=np.int64).ravel(), (size,))
    exp = np.broadcast_to(np.asarray(op.bias_exp, dtype=np.int64).ravel(), (size,))
    b = ar.effective_bias(bias, exp).astype(np.float64)
    return b / (conv.k_per_mv * conv.g)


def loihi_v(v_mv: np.ndarray, conv: LIFConversion) -> np.ndarray:
    """PyNN membrane voltage (mV) in Loihi's integer v units (float, not rounded)."""
    return np.asarray(v_mv, dtype=np.float64) * conv.k_per_mv
