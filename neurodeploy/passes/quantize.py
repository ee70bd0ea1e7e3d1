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
   then run alone in Loihi integers (on the injected simulator, :mod:`neurodeploy.passes.simulator`), driven by
   the *float* run's presynaptic spikes, and scored by (number of (sample, step, neuron) bins whose spike
   differs from the float run, relative RMS error of v). The lowest score wins; ties go to the larger scale.
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

``bias_correction=True`` (off by default) takes the mean per-step error of each neuron's integer input on the
calibration run out of its bias (:func:`~neurodeploy.passes.quant_ops.correct_bias`; report entry
``bias_correction`` on the neuron: the largest correction per step in thresholds). Most of that error is not the
weights' rounding but Loihi's flooring of a synapse's summed input shifted right by a negative ``weight_exp``
(every residual synapse has one): about half an input unit per step and op, which an IF or slowly leaking neuron
integrates into a drift of its v. ``PRECISE`` (``neurodeploy compile --precise``) turns on all three options.

Duplicate Sparse entries are summed first (:func:`~neurodeploy.passes.quant_fields.merge_sparse`), as Lava does.

``method="maxabs"`` is the naive baseline: ``lam = min_S mantissa_max / max|w_S|`` (the largest incoming weight
maps to the largest mantissa at ``weight_exp = 0``), capped by the hard bounds only, each synapse at its fitting
exponent. Both methods finish with an integer run of the whole quantized network on the calibration stimuli;
the per-node report compares it with the float run.

Report (the ``report`` dict given to :func:`quantize`, ``QuantizePass.report``; JSON-able)
--------------------------------------------------------------------------------------------
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

Modules, one job each
---------------------
This module is the pass (settings, order of the steps). :mod:`~neurodeploy.passes.quant_prepare` checks the graph
and prepares populations and synapses; :mod:`~neurodeploy.passes.quant_search` chooses the scales (bounds,
candidates, exponents, scored trials, sampling); :mod:`~neurodeploy.passes.quant_ops` writes one op in integers at
a scale (and the residual synapses); :mod:`~neurodeploy.passes.quant_report` assembles the report;
:mod:`~neurodeploy.passes.quant_fields` rounds each field; :mod:`~neurodeploy.passes.quant_calibration` holds the
calibration statistics. The runs go through the :class:`~neurodeploy.passes.simulator.Simulator` the caller passes
(``neurodeploy.compiler`` injects the emulator: :func:`neurodeploy.compiler.quantize_graph`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.errors import QuantizationError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Op, PlasticDense, Sparse
from neurodeploy.passes import quant_calibration as cal
from neurodeploy.passes import quant_fields as qf
from neurodeploy.passes import quant_prepare as prep
from neurodeploy.passes import quant_report as rpt
from neurodeploy.passes import quant_search as srch
from neurodeploy.passes.fold import fold_linear
from neurodeploy.passes.quant_ops import add_residual, correct_bias, input_error_mean
from neurodeploy.passes.simulator import Simulator
from neurodeploy.profiles import Profile, load_profile

METHODS = ("calibrated", "maxabs")
#: Generated calibration stimuli when none are given: Bernoulli spikes at this rate, shape [batch, steps, ...].
DEFAULT_RATE = 0.2
DEFAULT_BATCH = 8
DEFAULT_STEPS = 100


#: The precision options of ``neurodeploy compile --precise`` (and of the model zoo, tests/test_zoo.py).
PRECISE = {"residual": 0.0005, "exact_threshold": True, "bias_correction": True}


def _check_options(profile: Profile, method: str, bits: int, residual, state_headroom: float) -> None:
    if method not in METHODS:
        raise QuantizationError(f"unknown quantization method '{method}'", fix=f"use one of {list(METHODS)}")
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


def quantize(graph: Graph, profile: Profile | str, calibration=None, *, simulator: Simulator,
             method: str = "calibrated", num_weight_bits: int | None = None, state_headroom: float = 2.0,
             min_weight_bits: int = 4, candidates: int = 8, calibration_rate: float = DEFAULT_RATE,
             calibration_batch: int = DEFAULT_BATCH, calibration_steps: int = DEFAULT_STEPS, seed: int = 0,
             report: dict | None = None, residual: float | None = None, exact_threshold: bool = False,
             bias_correction: bool = False
             ) -> tuple[Graph, bool]:
    """Quantize a float graph for ``profile`` (see the module docstring); return ``(graph, changed)``.

    ``simulator`` (required; :class:`~neurodeploy.passes.simulator.Simulator`) runs the calibration, the scored
    trials and the final check: :func:`neurodeploy.compiler.quantize_graph` passes the emulator. ``calibration``:
    ``[B, T, *input_shape]`` binary spikes (or a dict per input); ``None`` generates Bernoulli stimuli
    (``calibration_rate``, ``_batch``, ``_steps``, ``seed``). ``report`` (a dict), if given, is cleared and
    receives the per-node report. An already quantized graph is returned unchanged. ``residual`` (a relative RMS
    weight error, e.g. ``0.01``; default None: off): every synapse whose quantized weights are further than this
    from the float weights gets a second synapse ``<name>.residual`` (and if needed a third, ``.residual2``) from
    the same source into the same target carrying the rounding (and clipping) residual at its own ``weight_exp``
    (see "Residual synapses" in the module docstring); ``bias_correction``: the calibration run's mean input
    error is taken out of each neuron's bias. ``exact_threshold``: every candidate scale is moved down
    to the nearest one at which ``lam * theta`` is an integer, so ``vth`` is exact (default False).
    """
    profile = load_profile(profile)
    out: dict[str, Any] = {} if report is None else report
    out.clear()
    bits = profile.arithmetic.weight_bits if num_weight_bits is None else int(num_weight_bits)
    _check_options(profile, method, bits, residual, state_headroom)
    ops = [op for op in graph.nodes.values() if op.role in ("synapse", "neuron")]
    if not ops:
        out.update(rpt.skipped(profile, "the graph has no synapse or neuron to quantize"))
        return graph, False
    n_quant = sum(getattr(op, "quant", None) is not None for op in ops)
    if n_quant == len(ops):
        out.update(rpt.skipped(profile, "the graph is already quantized"))
        return graph, False
    if n_quant:
        name = next(n for n, op in graph.nodes.items() if getattr(op, "quant", None) is not None)
        raise QuantizationError("the graph is partly quantized (some ops carry integers, others floats)", node=name,
                                fix="quantize the float model as a whole")
    graph, _ = fold_linear(graph)
    graph.validate()
    prep.check_graph(graph, profile)
    graph = graph.with_nodes({n: qf.merge_sparse(op) if isinstance(op, Sparse) else op
                              for n, op in graph.nodes.items()})
    shapes = graph.shapes()

    # 1. the float run on the calibration stimuli, and the prepared synapses
    stim, calib_info = prep.stimuli(graph, shapes, calibration, calibration_batch, calibration_steps,
                                    calibration_rate, seed)
    recorded = simulator.prepare(graph, "float").run(stim, record=("u", "v", "spikes"))
    rec = {k: np.asarray(v).reshape(v.shape[0], v.shape[1], -1) for k, v in recorded.items()}
    flat_stim = {k: v.reshape(v.shape[0], v.shape[1], -1) for k, v in stim.items()}
    syns = {n: prep.prepare_synapse(graph, shapes, n, op) for n, op in graph.nodes.items() if op.role == "synapse"}
    for syn in syns.values():
        syn.rates = cal.firing_rates(prep.spikes_of(syn.source, flat_stim, rec))

    # 2. the search, population by population
    ctx = srch.Context(profile, bits, shapes, flat_stim, rec, simulator)
    options = {"state_headroom": state_headroom, "min_weight_bits": min_weight_bits, "candidates": candidates,
               "seed": seed, "exact_threshold": bool(exact_threshold), "residual": residual,
               "bias_correction": bool(bias_correction)}
    warnings: list[str] = []
    new_nodes: dict[str, Op] = dict(graph.nodes)
    node_reports: dict[str, dict] = {}
    pops: dict[str, prep.Population] = {}
    for name, op in graph.nodes.items():
        if op.role == "neuron":
            pop = pops[name] = prep.population(name, op)
            choice = srch.choose(pop, [syns[s] for s in graph.predecessors(name) if s in syns], ctx, method,
                                 options, warnings)
            new_nodes.update(choice.best.syn_ops)
            new_nodes[name] = choice.best.neuron
            node_reports.update(choice.best.syn_stats)
            node_reports[name] = rpt.population_entry(pop, choice, rec, profile)

    # 3. residual synapses, then the integer run of the whole quantized graph
    edges = list(graph.edges)
    if residual is not None:
        for name, syn in syns.items():
            if node_reports[name]["error"]["weight"] > residual and not isinstance(syn.op, PlasticDense):
                add_residual(name, syn, new_nodes, edges, node_reports, profile, bits, float(residual))
    if bias_correction:
        for name, pop in pops.items():
            incoming = [syns[s] for s in graph.predecessors(name)
                        if s in syns and not isinstance(syns[s].op, PlasticDense)]
            if not incoming:
                continue
            lam = float(node_reports[name]["scale"])
            mean = 0.0
            for syn in incoming:  # the synapse as quantized: its main op and its residual ops
                parts = [syn.name, *node_reports[syn.name].get("residual", {}).get("synapses", [])]
                mean = mean + input_error_mean(syn.op, [new_nodes[p] for p in parts], shapes[syn.source],
                                               prep.spikes_of(syn.source, flat_stim, rec), lam)
            new_nodes[name], node_reports[name]["bias_correction"] = correct_bias(pop, new_nodes[name], mean,
                                                                                  profile)
    del syns, ctx  # the prepared synapses' arrays are not needed for the final run (large graphs: GBs)
    qgraph = Graph(new_nodes, edges, graph.meta).validate()
    final = simulator.prepare(qgraph, "int").run(stim, record=("spikes", "v"))
    rpt.add_network_agreement(node_reports, rec, final)
    out.update(rpt.pass_report(profile, method, bits, options, calib_info, node_reports, warnings))
    return qgraph, True


class QuantizePass:
    """:func:`quantize` as a pass manager pass: ``QuantizePass(profile, simulator, calibration, **options)(graph)``.

    The report of the latest run is ``.report`` (a new dict per run).
    """

    def __init__(self, profile: Profile | str, simulator: Simulator, calibration=None, **options: Any):
        self.profile = load_profile(profile)
        self.simulator = simulator
        self.calibration = calibration
        self.options = options
        self.report: dict[str, Any] = {}

    def __call__(self, graph: Graph) -> tuple[Graph, bool]:
        self.report = {}
        return quantize(graph, self.profile, self.calibration, simulator=self.simulator, report=self.report,
                        **self.options)
