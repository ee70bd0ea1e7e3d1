"""NALSM's plastic inference on the emulator: the trained reservoir with on-chip STDP modulated by an astrocyte.

The frozen deployment (:mod:`.deploy`) compiles the trained reservoir for Loihi 2 and runs fixed weights. NALSM's
inference keeps astrocyte-modulated STDP running during every sample (:func:`.plasticity.run_plastic`), which is a
different model. :func:`plastic_graph` builds it in integers from the compiled ``loihi2`` graph:

* ``w_in``, ``reservoir``, ``rec_inh`` unchanged (the frozen deployment's integers);
* ``rec_exc`` (excitatory recurrent synapses, with delays) becomes two :class:`~neurodeploy.ir.ops.PlasticDense`
  ops, ``rec_ee`` (E -> E) and ``rec_ei`` (E -> I), with the same integer weights, ``weight_exp`` and delays, a
  mask of the existing synapses (only they learn) and the rule
  ``dw = c+ * y0 * x1 - c- * x0 * y1 * y2`` (one op per post type because the float rule scales by the type pair's
  mean weight ``wbar``); ``t_epoch = 1`` (learning every step, as the float model);
* ``astro``: an :class:`~neurodeploy.ir.ops.Astrocyte` reading the reservoir and the input's spike counts, whose
  ``y2 = y2_unit * m`` is the LTD modulation (``astrocyte="counts"`` of :mod:`.plasticity`).

From float to integer rates (:func:`chip_rule`). In weight-mantissa units (``v = lambda w / 2**weight_exp``, lambda
the quantized population's scale) the float step is ``dv = k (A+ x s_post - m A- y s_pre)`` with
``k = lambda eta wbar / 2**weight_exp``. The chip's traces are ``x1 ~ I x``, ``y1 ~ I y`` (impulse ``I``, tau
``tau_plus`` / ``tau_minus``) and ``y2 = U m`` (``U = y2_unit``). Lava's arithmetic (:mod:`neurodeploy.emulator.
plasticity`) gives, in weight units per event, ``c+ x1`` for the LTP term and ``floor(y1 y2 mant / 8) 2**e`` for
the LTD term (factor widths 7 + 7 + 4 = 18 bits: the product loses 3 bits), so ``c+ = k A+ / I`` and
``c- = 8 k A- / (I U)``, each rounded to Loihi's ``mant * 2**e`` (mantissa 1..7, ``e >= -7``). ``I`` is the
impulse in [4, 127] whose rounded rates are closest to the targets (largest relative error reported).

What differs from the float model, by construction (so accuracies are compared, not spikes): 8-bit weights with
stochastic rounding; 7-bit traces with stochastic decay; the LTD product floored to 1/8 (a bias of about half an
accumulator LSB per event); Loihi's trace timing (a trace includes its own step's spike, so a pre and post spike in
the same step count as both LTP and LTD -- they cancel when ``m = 1``; the float traces lag by one step); the
excitatory upper bound is the 8-bit saturation (255) instead of ``w_max_factor wbar``; the astrocyte's integer
arithmetic (its agreement with the float twin is tested). Samples are independent: every one starts from the
frozen weights, zero traces and a fresh astrocyte (a fresh Lava build per sample).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurodeploy.emulator import Program
from neurodeploy.emulator.astrocyte import AstrocyteRunner
from neurodeploy.errors import IRError
from neurodeploy.ir import Graph, PlasticDense

from . import plasticity
from .model import LSM

RESERVOIR, INPUT, ASTRO = "reservoir", "input", "astro"
PLASTIC = {"rec_ee": True, "rec_ei": False}   # op name -> post-synaptic neurons excitatory?


def loihi_rate(c: float) -> tuple[int, int]:
    """The ``(mantissa, exponent)`` with mantissa in 1..7 and exponent in [-7, 8] closest to ``c > 0``
    (relative error), Loihi's learning-rate format; ``(0, 0)`` for ``c = 0`` (no term)."""
    if c == 0:
        return 0, 0
    return min(((m, e) for m in range(1, 8) for e in range(-7, 9)), key=lambda me: abs(me[0] * 2.0 ** me[1] / c - 1))


@dataclass(frozen=True)
class ChipRule:
    """Integer STDP constants of one PlasticDense (see the module docstring)."""

    impulse: int
    ltp: tuple[int, int]
    ltd: tuple[int, int]
    target_ltp: float
    target_ltd: float

    @property
    def dw(self) -> str:
        (mp, ep), (mm, em) = self.ltp, self.ltd
        terms = ([f"{mp}*2^{ep}*y0*x1"] if mp else []) + ([f"- {mm}*2^{em}*x0*y1*y2"] if mm else [])
        return " ".join(terms) or "0*y0*x1"

    @property
    def error(self) -> float:
        """Largest relative error of the two rounded rates."""
        return max(abs(m * 2.0 ** e / target - 1) if target else float(m != 0)
                   for (m, e), target in ((self.ltp, self.target_ltp), (self.ltd, self.target_ltd)))


def chip_rule(k_values: list[float], spec: plasticity.PlasticitySpec) -> list[ChipRule]:
    """One :class:`ChipRule` per float rate ``k`` (weight-mantissa units per unit trace), sharing the impulse ``I``
    in [4, 127] that minimises the largest relative error of all rounded rates (ties: the larger ``I``)."""
    best = None
    for impulse in range(4, 128):
        rules = []
        for k in k_values:
            t_ltp = k * spec.a_plus / impulse
            t_ltd = 8.0 * k * spec.a_minus / (impulse * spec.y2_unit)
            rules.append(ChipRule(impulse, loihi_rate(t_ltp), loihi_rate(t_ltd), t_ltp, t_ltd))
        err = max(r.error for r in rules)
        if best is None or err <= best[0]:
            best = (err, rules)
    return best[1]


def plastic_graph(loihi: Graph, lsm: LSM, spec: plasticity.PlasticitySpec) -> tuple[Graph, dict[str, Any]]:
    """The integer plastic NALSM (module docstring) from the compiled ``loihi2`` graph of the frozen ``lsm``.

    Returns the graph and a dict describing the rule (impulse, rates, their targets and errors, the astrocyte)."""
    if "rec_exc" not in loihi.nodes or not loihi.quantized:
        raise IRError("the plastic NALSM is built from a quantized LSM graph with a 'rec_exc' node", node="rec_exc",
                      fix="compile lsm.graph() for loihi2 (deploy.compile_targets) and pass artifact.graph")
    spec = plasticity.PlasticitySpec(**{**spec.__dict__, "astrocyte": "counts"})
    rec = loihi.nodes["rec_exc"]
    row, col = np.asarray(rec.row, np.int64), np.asarray(rec.col, np.int64)
    value = np.asarray(rec.value, np.int64)
    delays = np.zeros(row.size, np.int64) if rec.delays is None else np.asarray(rec.delays, np.int64)
    n, exc = lsm.n, lsm.conn.excitatory
    w0 = np.asarray(lsm.conn.weight, np.float64)
    pre, post = lsm.conn.pre, lsm.conn.post
    wbar = {}
    for name, post_exc in PLASTIC.items():
        sel = exc[pre] & (exc[post] == post_exc)
        wbar[name] = float(np.abs(w0[sel]).mean()) if sel.any() else 0.0
    value_scale = rec.quant.scale / 2.0 ** int(rec.weight_exp)   # mantissa units per float weight unit
    rules = dict(zip(PLASTIC, chip_rule([value_scale * spec.eta * wbar[n_] for n_ in PLASTIC], spec)))
    nodes = {k: v for k, v in loihi.nodes.items() if k != "rec_exc"}
    edges = [e for e in loihi.edges if "rec_exc" not in e]
    for seed, (name, post_exc) in enumerate(PLASTIC.items()):
        sel = exc[row] == post_exc
        if not sel.any():
            continue
        weight = np.zeros((n, n), np.int64)
        delay = np.zeros((n, n), np.int64)
        mask = np.zeros((n, n), bool)
        weight[row[sel], col[sel]] = value[sel]
        delay[row[sel], col[sel]] = delays[sel]
        mask[row[sel], col[sel]] = True
        rule = rules[name]
        nodes[name] = PlasticDense(weight=weight, delays=delay, mask=mask, weight_exp=int(rec.weight_exp),
                                   num_weight_bits=rec.num_weight_bits, sign_mode="excitatory", quant=rec.quant,
                                   dw=rule.dw, x1_impulse=rule.impulse, x1_tau=int(round(spec.tau_plus)),
                                   y1_impulse=rule.impulse, y1_tau=int(round(spec.tau_minus)), t_epoch=1,
                                   rng_seed=seed, third_factor=ASTRO,
                                   origin=f"lsm recurrent E->{'E' if post_exc else 'I'} (astrocyte-modulated STDP)")
        edges += [(RESERVOIR, name), (name, RESERVOIR)]
    nodes[ASTRO] = plasticity.astrocyte_op(lsm, spec, drive=INPUT)
    edges.append((RESERVOIR, ASTRO))
    info = {"impulse": rules["rec_ee"].impulse, "y2_unit": spec.y2_unit,
            "rules": {k: {"dw": r.dw, "rate_error": round(r.error, 4), "wbar": round(wbar[k], 5)}
                      for k, r in rules.items()},
            "astrocyte": {"g_rec": int(nodes[ASTRO].g_rec), "g_drive": int(nodes[ASTRO].g_drive),
                          "tau_steps": 2 ** int(nodes[ASTRO].shift)}}
    return Graph(nodes, edges, dict(loihi.meta, plastic=True)).validate(), info


@dataclass
class PlasticRun:
    """Reservoir spikes ``[B, T, N]`` of a plastic run, and per sample the fraction of plastic synapses whose weight
    changed and the mean weight change (mantissa units) at the end of the sample."""

    spikes: np.ndarray
    changed: np.ndarray
    mean_change: np.ndarray
    seconds: float


def run(graph: Graph, x: np.ndarray, batch: int = 64) -> PlasticRun:
    """Run ``x`` ``[B, T, P]`` on the emulator in batches (``batch`` samples hold ``2 batch N**2`` int64 weights)."""
    program = Program(graph)
    start = time.perf_counter()
    spikes, changed, mean_change = [], [], []
    masks = {n: np.asarray(graph.nodes[n].mask, bool) for n in PLASTIC if n in graph.nodes}
    for i in range(0, x.shape[0], batch):
        res = program.run(x[i:i + batch], record=("spikes",), nodes=[RESERVOIR], engine="numpy")
        spikes.append(res.recorded[f"{RESERVOIR}/spikes"].reshape(res.batch, res.steps, -1))
        diff = np.concatenate([(res.weights[n] - np.asarray(graph.nodes[n].weight))[:, m] for n, m in masks.items()],
                              axis=1)
        changed.append((diff != 0).mean(axis=1))
        mean_change.append(diff.mean(axis=1))
    return PlasticRun(np.concatenate(spikes), np.concatenate(changed), np.concatenate(mean_change),
                      time.perf_counter() - start)


def astrocyte_trace(graph: Graph, spikes: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replay a run's recorded reservoir and input spikes through the graph's astrocyte: ``(y2, sigma_hat)`` per
    sample and step ``[B, T]`` (the astrocyte depends on the spikes only, so this is what it output in the run)."""
    runner = AstrocyteRunner(ASTRO, graph.nodes[ASTRO])
    runner.reset(spikes.shape[0])
    y2 = np.zeros(spikes.shape[:2], np.int64)
    sig = np.zeros(spikes.shape[:2])
    for t in range(spikes.shape[1]):
        y2[:, t] = runner.step(spikes[:, t], x[:, t])
        sig[:, t] = runner.sigma_hat
    return y2, sig


def summary(info: dict[str, Any], runs: dict[str, PlasticRun]) -> dict[str, Any]:
    """JSON-able figures of :func:`plastic_graph`'s rule and of the runs."""
    out = dict(info)
    for key, r in runs.items():
        out[key] = {"samples": int(r.spikes.shape[0]), "seconds": round(r.seconds, 1),
                    "rate": round(float(r.spikes.mean()), 4),
                    "synapses_changed": round(float(r.changed.mean()), 4),
                    "mean_weight_change": round(float(r.mean_change.mean()), 4)}
    return out


__all__ = ["ChipRule", "PlasticRun", "astrocyte_trace", "chip_rule", "loihi_rate", "plastic_graph", "run", "summary"]
