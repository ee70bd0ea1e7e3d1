"""Name degenerate quantization results: layers that cannot work as the float model did, with the probable cause.

Read from the quantize report (``nodes[name]``, see :mod:`neurodeploy.passes.quantize`) after the final integer
run on the calibration stimulus. A finding is ``{"node", "kind", "message"}``; the kinds:

* ``silent`` -- a neuron layer (not an integrating readout) emits no spike in the integer run although the float
  run spiked (``int_spikes = 0 < float_spikes``), or spikes in neither (then nothing downstream can work);
* ``saturated`` -- the integer run spikes in more than ``SATURATED`` of the layer's (sample, step, neuron) bins
  (not for a neuron with no incoming synapse: driven by its bias alone, e.g. a clock, it spikes by design);
* ``threshold_max`` -- a spiking layer's ``vth`` sits at its field maximum ``2**vth_bits - 1`` (its float threshold
  times the layer's scale did not fit);
* ``weights_zeroed`` -- more than ``ZEROED`` of a synapse's non-zero float weights became 0 mantissas.

Each neuron finding names the decays the quantizer derived (``du``, ``dv`` over 4096 per step), since a wrong time
step is the usual cause: NIR neurons are continuous-time and ``dv = 4096 * dt / tau``; a ``dt`` far smaller than the
exporter's gives no leak and input gains near zero, far larger gives a full decay every step.
"""

from __future__ import annotations

from typing import Any

#: Fraction of bins spiking above which a layer counts as saturated.
SATURATED = 0.95
#: Fraction of non-zero float weights rounded to zero above which a synapse is named.
ZEROED = 0.05


def _decays(stats: dict[str, Any]) -> str:
    du, dv = stats.get("du"), stats.get("dv")
    return (f"du = {du}, dv = {dv} (per step the current keeps {1 - (int(du) + 1) / 4096:.3g} and the voltage "
            f"{1 - int(dv) / 4096:.3g}); if these look wrong, check --dt: tau / dt sets them (snnTorch exports assume "
            f"dt = 1e-4 s, sinabs dt = 1)") if du is not None and dv is not None else ""


def diagnose(report: dict[str, Any], vth_max: int) -> list[dict[str, str]]:
    """Findings for the nodes of a quantize ``report`` (see the module docstring); ``vth_max`` is the profile's
    largest threshold mantissa. Empty for a report without nodes (an already quantized graph)."""
    findings = []
    nodes = report.get("nodes") or {}
    driven = {stats.get("target") for stats in nodes.values() if "weights" in stats}
    for name, stats in nodes.items():
        if stats.get("op") == "CubaLIF":
            findings += _neuron(name, stats, vth_max, name in driven)
        elif "weights" in stats:
            nonzero, zeros = int(stats["weights"]), int(stats.get("zeros", {}).get("weight", 0))
            if nonzero and zeros > ZEROED * nonzero:
                findings.append({"node": name, "kind": "weights_zeroed", "message": (
                    f"{zeros} of {nonzero} non-zero weights ({100 * zeros / nonzero:.1f} %) became 0 at "
                    f"{stats.get('num_weight_bits')} bits with weight_exp {stats.get('weight_exp')}: the layer's "
                    "weights span more than its mantissa range; a larger --weight-bits, splitting the synapse or a "
                    "calibration that lowers the target's scale keeps them")})
    return findings


def _neuron(name: str, stats: dict[str, Any], vth_max: int, driven: bool) -> list[dict[str, str]]:
    if stats.get("lowered_from") == "LI":  # an integrating readout never spikes by design
        return []
    out = []
    net = (stats.get("agreement") or {}).get("network") or {}
    f_spikes, i_spikes = net.get("float_spikes"), net.get("int_spikes")
    cause = _decays(stats)
    if i_spikes == 0:
        what = (f"emits no spike in the integer run on the calibration stimulus (the float run: {f_spikes})"
                if f_spikes else "emits no spike on the calibration stimulus, in float or in integers")
        out.append({"node": name, "kind": "silent", "message": f"{what}; {cause}"})
    bins = net.get("bins")
    if driven and i_spikes and bins and i_spikes > SATURATED * bins:
        out.append({"node": name, "kind": "saturated", "message": (
            f"spikes in {100 * i_spikes / bins:.1f} % of its bins on the calibration stimulus; {cause}")})
    if stats.get("vth") == vth_max:
        out.append({"node": name, "kind": "threshold_max", "message": (
            f"vth = {vth_max} is the field maximum: the float threshold times the scale {stats.get('scale'):.4g} "
            f"does not fit, so the layer spikes later than the float model or never; {cause}")})
    return out


def render(findings: list[dict[str, str]]) -> list[str]:
    """One line per finding: ``node 'x' (kind): message``."""
    return [f"node '{f['node']}' ({f['kind']}): {f['message']}" for f in findings]
