"""Check a quantized graph against a hardware profile: every integer field's range, then (for profiles with
per-core limits) a per-population capacity check. The pass never changes the graph: ``(graph, False)``.

Field ranges (``a = profile.arithmetic``):

* synapses: integral weights that Lava's clip + truncate leave unchanged (``effective_weights(W) == W``, on the
  summed duplicates of a Sparse op), ``1 <= num_weight_bits <= a.weight_bits``, ``weight_exp`` in
  ``[a.weight_exp_min, a.weight_exp_max]``, integral delays in ``[a.delay_min, a.delay_max]``,
  ``num_message_bits <= a.message_bits_max``;
* neurons: CubaLIF only (IF and LI must have been lowered), integral ``du``, ``dv`` in ``[0, 2**12 - 1]``,
  ``vth`` in ``[0, 2**vth_bits - 1]``, bias mantissa in the signed ``bias_bits`` range, ``bias_exp`` in
  ``[a.bias_exp_min, a.bias_exp_max]``, a reset mode the profile supports, and the neuron model's own integer
  fields in their declared ranges (:attr:`neurodeploy.ir.neurons.NeuronModel.int_fields`, e.g. LIFReset's
  ``reset_interval``).

Capacity (``profile.limits``; a lower bound on what partitioning will need, so a failure here is certain):

* per neuron: its fan-in (distinct presynaptic neurons, i.e. input axons) ``<= fan_in_axons_per_core`` and its
  synaptic memory ``<= synaptic_memory_bits_per_core``, costed as in :mod:`neurodeploy.passes.partition`
  (weight bits + delay bits when the synapse op has delays + 12 index bits for Sparse/Conv2d entries);
* per population: ``cores >= max(ceil(n / neurons_per_core), ceil(memory / synaptic_memory_bits_per_core))``;
* whole network: the sum of those cores ``<= cores_per_chip * chips``, neurons ``<= neurons_per_chip * chips``,
  synapses ``<= synapses_per_chip * chips`` (``chips`` = ``max_chips`` or the profile's ``limits.chips``).

Slicing populations onto actual cores is :func:`neurodeploy.passes.partition.partition` (its limits come from
``profile.limits.core_limits()``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurodeploy.errors import CapacityError, QuantizationError
from neurodeploy.ir.arithmetic import INT32_MAX, INT32_MIN, effective_weights
from neurodeploy.ir.columns import column_buckets, entry_arrays, nonzero_pattern, pattern_union
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import model_of
from neurodeploy.ir.ops import Conv2d, CubaLIF, Op, Sparse
from neurodeploy.passes.quant_fields import merge_sparse
from neurodeploy.profiles import Profile, load_profile

INDEX_BITS = 12  # per-entry index cost of Sparse/Conv2d synapses, as the partition pass counts it


def _subject(op: Op, fld: str) -> str:
    origin = f" (source layer '{op.origin}')" if op.origin else ""
    return f"{op.op_type}{origin} field '{fld}'"


def _integers(name: str, op: Op, fld: str, value, lo: int, hi: int, fix: str) -> np.ndarray:
    """``value`` as an array (its own dtype: no int64 copy of large weight arrays) after checking it is integral and
    inside ``[lo, hi]``; else QuantizationError."""
    arr = np.asarray(value)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        flat = arr.ravel()
        if not (np.isfinite(flat).all() and (flat == np.rint(flat)).all()):
            bad = flat[np.flatnonzero(~np.isfinite(flat) | (flat != np.rint(flat)))[0]]
            raise QuantizationError(f"{_subject(op, fld)} holds the non-integer value {bad}", node=name,
                                    fix="run the quantize pass on the float model instead of editing integers")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = int(arr.max()) if arr.max() > hi else int(arr.min())
        raise QuantizationError(f"{_subject(op, fld)} value {bad} is outside [{lo}, {hi}]", node=name, fix=fix)
    return arr


def _check_synapse(name: str, op, profile: Profile) -> None:
    a = profile.arithmetic
    requantize = "re-run the quantize pass for this profile"
    bits = 8 if op.num_weight_bits is None else op.num_weight_bits
    _integers(name, op, "num_weight_bits", bits, 1, a.weight_bits, fix=f"use at most {a.weight_bits} weight bits")
    _integers(name, op, "weight_exp", op.weight_exp, a.weight_exp_min, a.weight_exp_max, fix=requantize)
    _integers(name, op, "num_message_bits", op.num_message_bits, 0, a.message_bits_max,
              fix="use binary spikes" if a.message_bits_max == 0 else f"use at most {a.message_bits_max} bits")
    if op.delays is not None:
        _integers(name, op, "delays", op.delays, a.delay_min, a.delay_max,
                  fix="shorten the delay (coarser time step, or relay neurons for long delays)")
    merged = merge_sparse(op) if isinstance(op, Sparse) else op
    fld = "value" if isinstance(op, Sparse) else "weight"
    weights = _integers(name, op, fld, merged.value if isinstance(op, Sparse) else op.weight, INT32_MIN,
                        INT32_MAX, fix=requantize)
    effective = effective_weights(weights, op.sign_mode, bits)
    changed = np.flatnonzero(effective.ravel() != weights.ravel())
    if changed.size:
        k = changed[0]
        raise QuantizationError(f"{_subject(op, fld)}: Lava's clip/truncate (sign mode {op.sign_mode or 'auto'}, "
                                f"{bits} bits) changes {changed.size} weight(s), e.g. {weights.ravel()[k]} -> "
                                f"{effective.ravel()[k]}", node=name, fix=requantize)


def _check_neuron(name: str, op, profile: Profile) -> None:
    a = profile.arithmetic
    requantize = "re-run the quantize pass for this profile"
    _integers(name, op, "du", op.du, 0, a.du_max, fix=requantize)
    _integers(name, op, "dv", op.dv, 0, a.dv_max, fix=requantize)
    _integers(name, op, "vth", op.vth, 0, a.vth_max, fix=requantize)
    _integers(name, op, "bias", op.bias, a.bias_min, a.bias_max, fix=requantize)
    _integers(name, op, "bias_exp", op.bias_exp, a.bias_exp_min, a.bias_exp_max, fix=requantize)
    for fld, (lo, hi) in model_of(op, name).int_fields.items():  # the neuron model's own fields
        _integers(name, op, fld, getattr(op, fld), lo, hi, fix=f"set {fld} within [{lo}, {hi}]")
    if op.reset not in profile.reset_modes:
        raise QuantizationError(f"{_subject(op, 'reset')}: reset mode '{op.reset}' is not supported by "
                                f"{profile.name} (supported: {list(profile.reset_modes)})", node=name,
                                fix="retrain with reset to zero, or compile for the 'emulator' target")


# ---------------------------------------------------------------------------------------------------- capacity
def population_demand(graph: Graph, profile: Profile | str) -> dict[str, dict[str, Any]]:
    """Per neuron node: neurons, synapses, largest per-neuron fan-in and synaptic memory, minimum cores."""
    profile = load_profile(profile)
    limits = profile.limits
    shapes = graph.shapes()
    demand = {}
    for node, op in graph.nodes.items():
        if op.role != "neuron":
            continue
        n = int(math.prod(shapes[node]))
        patterns: dict[str, Any] = {}
        mem = np.zeros(n, dtype=np.int64)
        synapses = 0
        for syn in graph.predecessors(node):
            sop = graph.nodes[syn]
            if sop.role != "synapse":
                continue
            (src,) = graph.predecessors(syn)
            # the op's positions whose summed weight (over repeats and delays) is not 0, CSC [n, n_src]
            rows, cols, values, _, (n_out, n_in) = entry_arrays(sop, shapes[src])
            pattern = nonzero_pattern(column_buckets(rows, cols, values, None, n_out, n_in, node=syn))
            del rows, cols, values
            bits = int(sop.num_weight_bits or 8) + (profile.arithmetic.delay_bits if sop.delays is not None else 0)
            bits += INDEX_BITS if isinstance(sop, Sparse | Conv2d) else 0
            per_neuron = np.bincount(pattern[1], minlength=n)
            mem += per_neuron * bits
            synapses += pattern[1].size
            patterns[src] = pattern if src not in patterns else pattern_union(patterns[src], pattern)
        fan_in = np.zeros(n, dtype=np.int64)
        for _, pattern_rows in patterns.values():  # distinct presynaptic neurons per source node
            fan_in += np.bincount(pattern_rows, minlength=n)
        total_mem = int(mem.sum())
        cores = 0
        if limits is not None:
            cores = max(math.ceil(n / limits.neurons_per_core),
                        math.ceil(total_mem / limits.synaptic_memory_bits_per_core))
        demand[node] = {"neurons": n, "synapses": int(synapses), "max_fan_in": int(fan_in.max(initial=0)),
                        "argmax_fan_in": int(fan_in.argmax()) if n else 0, "max_memory_bits": int(mem.max(initial=0)),
                        "argmax_memory": int(mem.argmax()) if n else 0, "memory_bits": total_mem, "min_cores": cores}
    return demand


def _check_capacity(graph: Graph, profile: Profile, max_chips: int | None) -> None:
    limits = profile.limits
    chips = limits.chips if max_chips is None else int(max_chips)
    demand = population_demand(graph, profile)

    def note(key: str) -> str:
        full = f"limits.{key}"
        return f" (an estimated limit: {profile.estimates[full]})" if profile.is_estimate(full) else ""

    for node, d in demand.items():
        if d["max_fan_in"] > limits.fan_in_axons_per_core:
            raise CapacityError(f"neuron {d['argmax_fan_in']} has a fan-in of {d['max_fan_in']} presynaptic neurons "
                                f"but a {profile.name} core accepts {limits.fan_in_axons_per_core} input axons"
                                f"{note('fan_in_axons_per_core')}", node=node,
                                fix="prune the connections into this layer or split its inputs over several layers")
        if d["max_memory_bits"] > limits.synaptic_memory_bits_per_core:
            raise CapacityError(f"neuron {d['argmax_memory']} needs {d['max_memory_bits']} bits of synaptic memory "
                                f"but a {profile.name} core has {limits.synaptic_memory_bits_per_core}"
                                f"{note('synaptic_memory_bits_per_core')}", node=node,
                                fix="prune this layer's incoming synapses or quantize with fewer weight bits")
    if not demand:
        return
    biggest = max(demand, key=lambda k: demand[k]["min_cores"])
    cores = sum(d["min_cores"] for d in demand.values())
    if cores > limits.cores_per_chip * chips:
        raise CapacityError(f"the network needs at least {cores} cores ('{biggest}' alone "
                            f"{demand[biggest]['min_cores']}) but {chips} {profile.name} chip(s) have "
                            f"{limits.cores_per_chip * chips}", node=biggest,
                            fix="shrink the largest layers, or allow more chips (check_limits(..., max_chips=N))")
    totals = {"neurons": ("neurons_per_chip", sum(d["neurons"] for d in demand.values())),
              "synapses": ("synapses_per_chip", sum(d["synapses"] for d in demand.values()))}
    for what, (key, value) in totals.items():
        per_chip = getattr(limits, key)
        if per_chip is not None and value > per_chip * chips:
            node = max(demand, key=lambda k, w=what: demand[k][w])
            raise CapacityError(f"the network has {value} {what} but {chips} {profile.name} chip(s) hold "
                                f"{per_chip * chips}{note(key)}", node=node,
                                fix="shrink or prune the network, or allow more chips (check_limits(..., max_chips=N))")


def check_limits(graph: Graph, profile: Profile | str, *, max_chips: int | None = None) -> tuple[Graph, bool]:
    """Raise QuantizationError / CapacityError (naming node, field or limit, value and fix) when ``graph`` does
    not fit ``profile``; otherwise return ``(graph, False)``. See the module docstring for every check."""
    profile = load_profile(profile)
    for name, op in graph.nodes.items():
        if op.role == "linear":
            raise QuantizationError(f"{op.op_type} is a float linear op; hardware graphs hold only synapses",
                                    node=name, fix="run the fold and quantize passes first")
        if op.role not in ("synapse", "neuron"):
            continue
        if op.role == "neuron" and not isinstance(op, CubaLIF):
            raise QuantizationError(f"{op.op_type} is not a Loihi neuron; it must be lowered to CubaLIF", node=name,
                                    fix="run the quantize pass (it lowers IF and LI to CubaLIF)")
        if getattr(op, "quant", None) is None:
            raise QuantizationError(f"{op.op_type} is not quantized", node=name,
                                    fix="run the quantize pass before checking limits")
        if op.role == "synapse":
            _check_synapse(name, op, profile)
        else:
            _check_neuron(name, op, profile)
    if profile.limits is not None:
        _check_capacity(graph, profile, max_chips)
    return graph, False
