"""Quantized IR graph -> plain Lava description (see :mod:`neurodeploy.backends.lava.rebuild` for the layout).

One IR node becomes one Lava process, with the IR's integers passed unchanged under Lava's names:

=============  ======================================================================================
IR op          Lava process and kwargs
=============  ======================================================================================
Input          ``RingBuffer(data=[n_flat, T])`` (data given at run time)
Dense          ``Dense(weights=W[n_out, n_in], weight_exp, num_weight_bits, [sign_mode], num_message_bits)``;
               with ``delays`` -> ``DelayDense(..., delays=[n_out, n_in])``
Sparse         ``Sparse(weights=csr[n_out, n_in], ...)``; with ``delays`` -> ``DelaySparse(..., delays=csr)``
Conv2d         lowered to its exact sparse matrix (:func:`neurodeploy.ir.linear.op_matrix`) -> ``Sparse``
PlasticDense   ``LearningDense(weights, weight_exp, num_weight_bits, sign_mode, learning_rule=Loihi2FLearningRule(
               dw, x1_impulse, x1_tau, y1_impulse, y1_tau, t_epoch, rng_seed))``; the post-synaptic LIF's ``s_out``
               also feeds ``s_in_bap`` (Lava 0.10's ``LearningLIF`` fixed-point model never sends ``s_out_bap``, so
               the plain bit-accurate LIF's spikes are the back-propagating action potentials). With ``delays``,
               a ``mask`` or a ``third_factor``: BackendError (Lava 0.10 has no learning process with delays;
               a Loihi3F rule would take y1 from a port too; the Astrocyte has no Lava process)
CubaLIF        ``LIF(shape=(n,), du, dv, vth, bias_mant, bias_exp)`` (flat; reset to zero only); the process class
               and any further kwargs come from the op's neuron model (:mod:`neurodeploy.ir.neurons`), e.g.
               ``LIFReset(..., reset_interval, reset_offset)``
Output         nothing: it names what to read (the source neuron's spikes, a readout neuron's v, or the input)
=============  ======================================================================================

Lava then computes exactly the maths of the IR docstrings (``PyDenseModelBitAcc`` / ``PyLifModelBitAcc``): weights
clipped by sign mode and truncated to ``num_weight_bits``, ``a = (W @ s) << weight_exp`` per delay bucket,
``u``/``v`` 24-bit with 12-bit decays. Only what Lava cannot express is rejected: a reset by subtraction, ops other
than the above, direct Input/neuron -> neuron edges (every connection needs a synapse process), values outside the
Loihi fields Lava documents (``du``, ``dv`` in [0, 4095]; ``vth`` in [0, 2**17 - 1]; ``bias_mant`` in
[-4096, 4095]; ``bias_exp`` in [0, 7]; ``num_weight_bits`` in [1, 8]; delays in [0, 62]).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.backends.lava.rebuild import FORMAT, JSON_NAME, NPZ_NAME, VERSION, encode, load_description
from neurodeploy.errors import BackendError, CapacityError, IRError, QuantizationError, UnsupportedOpError
from neurodeploy.fileio import atomic_directory
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import model_of
from neurodeploy.ir.ops import Conv2d, CubaLIF, Dense, Input, Op, Output, PlasticDense, Sparse, SynapseOp

__all__ = ["describe", "save_description", "load_description", "SIGN_MODE_NAMES", "MAX_DELAY"]

#: IR sign mode -> ``lava.utils.weightutils.SignMode`` member NAME (written by name; rebuild maps it to the member).
SIGN_MODE_NAMES = {mode: mode.upper() for mode in ar.SIGN_MODE_CODES}
#: Loihi 2 field ranges (one home: neurodeploy.ir.arithmetic); delays are 6-bit, the usable range is [0, 62].
MAX_DELAY = ar.MAX_DELAY
DECAY_MAX = ar.DECAY_MAX
VTH_MAX = ar.VTH_MAX
BIAS_MANT_RANGE = ar.BIAS_MANT_RANGE
BIAS_EXP_RANGE = ar.BIAS_EXP_RANGE

_CLASSES = {
    "input": "lava.proc.io.source.RingBuffer",
    "dense": "lava.proc.dense.process.Dense",
    "learning_dense": "lava.proc.dense.process.LearningDense",
    "delay_dense": "lava.proc.dense.process.DelayDense",
    "sparse": "lava.proc.sparse.process.Sparse",
    "delay_sparse": "lava.proc.sparse.process.DelaySparse",
}


# ------------------------------------------------------------------------------------------------ integer fields
def _int_array(value: Any, node: str, fld: str) -> np.ndarray:
    """``value`` as int64, or :class:`QuantizationError` if it holds non-integers."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise QuantizationError(f"'{fld}' must hold integers for Lava, got {arr.dtype} values", node=node,
                                    fix="run the quantize pass before describing the graph for Lava")
    return arr.astype(np.int64)


def _int(value: Any, node: str, fld: str) -> int:
    arr = _int_array(value, node, fld)
    if arr.size != 1:
        raise QuantizationError(f"'{fld}' must be one integer for the whole population, got shape {arr.shape}",
                                node=node, fix="Lava's LIF and Dense take a single value for this field")
    return int(arr.ravel()[0])


def _check_range(arr: np.ndarray | int, lo: int, hi: int, node: str, fld: str, error=QuantizationError) -> None:
    a = np.asarray(arr)
    if a.size and (a.min() < lo or a.max() > hi):
        raise error(f"'{fld}' must lie in [{lo}, {hi}] on Loihi, got values in [{a.min()}, {a.max()}]", node=node,
                    fix="re-quantize with the Loihi 2 profile so the field fits")


def _per_neuron(value: Any, size: int, node: str, fld: str) -> int | np.ndarray:
    """A scalar stays an int; an array is flattened (C order) and broadcast to ``size``."""
    arr = _int_array(value, node, fld)
    if arr.size == 1:
        return int(arr.ravel()[0])
    try:
        return np.ascontiguousarray(np.broadcast_to(arr.ravel(), (size,)))
    except ValueError:
        raise IRError(f"'{fld}' has {arr.size} values for {size} neurons", node=node,
                      fix="give one value or one per neuron") from None


# -------------------------------------------------------------------------------------------------- op -> kwargs
def _lif(name: str, op: CubaLIF) -> tuple[str, dict[str, Any]]:
    """(Lava process class, kwargs) of a neuron node: the CUBA fields every model shares, plus the model's own
    (:mod:`neurodeploy.ir.neurons`)."""
    model = model_of(op, name)
    if model.lava_class is None:
        raise UnsupportedOpError(f"{op.op_type} has no Lava process: {model.lava_refusal}", node=name,
                                 fix="target the emulator, or use a neuron model Lava runs")
    if op.reset != "zero":
        raise UnsupportedOpError(f"CubaLIF reset='{op.reset}' has no Lava model: Lava's LIF resets v to zero only",
                                 node=name, fix="quantize with reset='zero' or run this graph on the emulator")
    du, dv, vth = _int(op.du, name, "du"), _int(op.dv, name, "dv"), _int(op.vth, name, "vth")
    _check_range(du, 0, DECAY_MAX, name, "du")
    _check_range(dv, 0, DECAY_MAX, name, "dv")
    _check_range(vth, 0, VTH_MAX, name, "vth")
    bias = _per_neuron(op.bias, op.size, name, "bias")
    bias_exp = _per_neuron(op.bias_exp, op.size, name, "bias_exp")
    _check_range(bias, *BIAS_MANT_RANGE, name, "bias")
    _check_range(bias_exp, *BIAS_EXP_RANGE, name, "bias_exp")
    kwargs = {"shape": [op.size], "du": du, "dv": dv, "vth": vth, "bias_mant": bias, "bias_exp": bias_exp}
    for fld, value in model.lava_kwargs(op).items():
        lo, hi = model.int_fields[fld]
        kwargs[fld] = _int(value, name, fld)
        _check_range(kwargs[fld], lo, hi, name, fld)
    return model.lava_class, kwargs


def _coo(shape: tuple[int, int], row: np.ndarray, col: np.ndarray, data: np.ndarray) -> dict[str, Any]:
    return {"coo": {"shape": [int(shape[0]), int(shape[1])], "row": row.astype(np.int64),
                    "col": col.astype(np.int64), "data": data.astype(np.int64)}}


def _synapse(name: str, op: SynapseOp, in_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """Return (class key, kwargs) for a Dense / Sparse / Conv2d node."""
    if op.sign_mode is not None and op.sign_mode not in SIGN_MODE_NAMES:
        raise IRError(f"sign_mode '{op.sign_mode}' is not one of {sorted(SIGN_MODE_NAMES)}", node=name,
                      fix="use mixed, excitatory, inhibitory or None")
    bits = 8 if op.num_weight_bits is None else _int(op.num_weight_bits, name, "num_weight_bits")
    _check_range(bits, 1, 8, name, "num_weight_bits")
    kwargs: dict[str, Any] = {"weight_exp": _int(op.weight_exp, name, "weight_exp"), "num_weight_bits": bits,
                              "num_message_bits": _int(op.num_message_bits, name, "num_message_bits")}
    if op.sign_mode is not None:
        kwargs["sign_mode"] = SIGN_MODE_NAMES[op.sign_mode]
    if isinstance(op, PlasticDense):
        return "learning_dense", _plastic(name, op, kwargs)
    if isinstance(op, Dense):
        weights = _int_array(op.weight, name, "weight")
        kwargs["weights"] = weights
        if op.delays is None:
            return "dense", kwargs
        delays = _int_array(op.delays, name, "delays")
        try:
            delays = np.ascontiguousarray(np.broadcast_to(delays, weights.shape))
        except ValueError:
            raise IRError(f"Dense delays of shape {delays.shape} do not match weights {weights.shape}", node=name,
                          fix="give one delay per synapse, [n_out, n_in]") from None
        _check_range(delays, 0, MAX_DELAY, name, "delays", CapacityError)
        kwargs["delays"] = delays
        return "delay_dense", kwargs
    if isinstance(op, Sparse):
        shape = (int(math.prod(op.out_shape)), int(op.in_size))
        row, col = _int_array(op.row, name, "row"), _int_array(op.col, name, "col")
        value = _int_array(op.value, name, "value")
        if not (row.shape == col.shape == value.shape) or row.ndim != 1:
            raise IRError(f"Sparse row/col/value must be 1-D and equally long, got {row.shape}, {col.shape}, "
                          f"{value.shape}", node=name, fix="store the matrix in COO form")
        if row.size and (row.min() < 0 or row.max() >= shape[0] or col.min() < 0 or col.max() >= shape[1]):
            raise IRError(f"Sparse indices fall outside the {shape[0]} x {shape[1]} matrix", node=name,
                          fix="check out_shape and in_size")
    elif isinstance(op, Conv2d):
        from neurodeploy.ir.linear import op_matrix

        m = op_matrix(op.replace(weight=_int_array(op.weight, name, "weight")), in_shape).tocoo()
        shape, row, col, value = m.shape, m.row, m.col, _int_array(m.data, name, "weight")
        if op.delays is not None and np.asarray(op.delays).size != 1:
            raise UnsupportedOpError("Conv2d with per-synapse delays has no Lava mapping", node=name,
                                     fix="use one delay for the whole convolution or fold it into a Sparse op")
    else:  # pragma: no cover - callers dispatch on the type
        raise UnsupportedOpError(f"{op.op_type} is not a synapse op Lava can run", node=name)
    kwargs["weights"] = _coo(shape, row, col, value)
    if op.delays is None:
        return "sparse", kwargs
    delays = _int_array(op.delays, name, "delays").ravel()
    if delays.size == 1:
        delays = np.full(row.size, int(delays[0]), np.int64)
    if delays.size != row.size:
        raise IRError(f"Sparse has {row.size} entries but {delays.size} delays", node=name,
                      fix="give one delay per entry")
    _check_range(delays, 0, MAX_DELAY, name, "delays", CapacityError)
    flat = row * shape[1] + col
    if np.unique(flat).size != flat.size:
        raise UnsupportedOpError("Sparse with delays has duplicate (row, col) entries; a Lava DelaySparse holds one "
                                 "delay per synapse", node=name, fix="merge duplicate entries before quantizing")
    kwargs["delays"] = _coo(shape, row, col, delays)
    return "delay_sparse", kwargs


def _plastic(name: str, op: PlasticDense, kwargs: dict[str, Any]) -> dict[str, Any]:
    """LearningDense kwargs: the Dense ones, an explicit sign mode (Lava's learning model defaults to mixed) and
    the rule as ``learning_rule`` (a dict that :func:`rebuild.lava_kwargs` turns into a Loihi2FLearningRule)."""
    from neurodeploy.ir.learning import lava_expression, parse_rule

    op.output_shape(None)  # validates the rule, impulses, taus and t_epoch
    if op.delays is not None and np.any(np.asarray(op.delays)):
        raise BackendError("PlasticDense with synaptic delays has no Lava 0.10 process: LearningDense and "
                           "LearningSparse have no delays and DelayDense / DelaySparse do not learn", node=name,
                           fix="run the plastic graph on the emulator, or drop the delays for Lava")
    if op.mask is not None:
        raise BackendError("PlasticDense with a connectivity mask (Lava LearningSparse semantics) is not lowered "
                           "to Lava yet", node=name, fix="run it on the emulator, or use a dense learning matrix")
    if op.third_factor is not None:
        raise BackendError("PlasticDense with a third factor cannot be lowered to Lava 0.10: its Loihi3FLearningRule "
                           "takes y1 from the port s_in_y1 as well (LearningLIF computes no y traces), and the "
                           "Astrocyte controller has no Lava process", node=name,
                           fix="run the plastic graph with its Astrocyte on the emulator")
    if kwargs["num_message_bits"]:
        raise UnsupportedOpError("PlasticDense with graded spikes has no lowering (its trace update differs)",
                                 node=name, fix="use binary spikes")
    weights = _int_array(op.weight, name, "weight")
    _check_range(weights, *ar.WEIGHT_RANGES["mixed"], name, "weight")
    kwargs["weights"] = weights
    kwargs["sign_mode"] = SIGN_MODE_NAMES[op.sign_mode or "mixed"]
    kwargs["learning_rule"] = {"dw": lava_expression(parse_rule(op.dw, name)), "x1_impulse": int(op.x1_impulse),
                               "x1_tau": int(op.x1_tau), "y1_impulse": int(op.y1_impulse), "y1_tau": int(op.y1_tau),
                               "t_epoch": int(op.t_epoch), "rng_seed": int(op.rng_seed)}
    return kwargs


# ------------------------------------------------------------------------------------------------------ describe
def _check_structure(graph: Graph, name: str, op: Op) -> None:
    preds = [graph.nodes[p] for p in graph.predecessors(name)]
    succs = [graph.nodes[s] for s in graph.successors(name)]
    if isinstance(op, SynapseOp):
        if op.quant is None:
            raise UnsupportedOpError(f"{op.op_type} is not quantized; Lava runs Loihi integers", node=name,
                                     fix="run the quantize pass first")
        if not all(isinstance(p, Input | CubaLIF) for p in preds):
            raise UnsupportedOpError(f"{op.op_type} must be fed by an Input or a neuron, not "
                                     f"{[p.op_type for p in preds]}", node=name,
                                     fix="fold chains of linear ops into one synapse (fold pass)")
        if not succs or not all(isinstance(s, CubaLIF) for s in succs):
            raise UnsupportedOpError(f"{op.op_type} must feed neurons only, it feeds {[s.op_type for s in succs]}",
                                     node=name, fix="put a readout neuron between a synapse and an Output")
    elif isinstance(op, CubaLIF):
        if op.quant is None:
            raise UnsupportedOpError("CubaLIF is not quantized; Lava runs Loihi integers", node=name,
                                     fix="run the quantize pass first")
        direct = [p for p in graph.predecessors(name) if not isinstance(graph.nodes[p], SynapseOp)]
        if direct:
            raise UnsupportedOpError(f"neuron receives {direct} directly; on Lava every connection is a synapse "
                                     "process", node=name, fix="insert an identity Sparse synapse (fold pass)")
    elif isinstance(op, Output):
        if len(preds) != 1 or not isinstance(preds[0], Input | CubaLIF):
            raise UnsupportedOpError("an Output must read exactly one neuron or Input", node=name,
                                     fix="connect one neuron (add a readout neuron if needed)")
    elif not isinstance(op, Input):
        raise UnsupportedOpError(f"{op.op_type} has no Lava mapping (Lava runs Input, Dense, Sparse, Conv2d, "
                                 "CubaLIF, Output)", node=name, fix="run the fold and quantize passes first")


def describe(graph: Graph) -> dict[str, Any]:
    """Build the Lava description of quantized ``graph`` (layout in :mod:`neurodeploy.backends.lava.rebuild`).

    Raises :class:`UnsupportedOpError`, :class:`QuantizationError`, :class:`CapacityError` or :class:`IRError`
    naming the node at fault.
    """
    graph.validate()
    for name, op in graph.nodes.items():
        _check_structure(graph, name, op)
    shapes = graph.shapes()
    processes: list[dict[str, Any]] = []
    connections: list[dict[str, str]] = []
    inputs: dict[str, Any] = {}
    neurons: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    plastic: dict[str, Any] = {}
    for name, op in graph.nodes.items():
        shape = [int(n) for n in shapes[name]]
        if isinstance(op, Input):
            processes.append({"name": name, "node": name, "role": "input", "class": _CLASSES["input"],
                              "kwargs": {}, "data_shape": [int(math.prod(shape))]})
            inputs[name] = {"process": name, "shape": shape}
        elif isinstance(op, CubaLIF):
            cls, kwargs = _lif(name, op)
            processes.append({"name": name, "node": name, "role": "neuron", "class": cls, "kwargs": kwargs})
            neurons[name] = {"process": name, "shape": shape, "readout": bool(op.readout)}
        elif isinstance(op, SynapseOp):
            (src,) = graph.predecessors(name)
            key, kwargs = _synapse(name, op, shapes[src])
            processes.append({"name": name, "node": name, "role": "synapse", "class": _CLASSES[key],
                              "kwargs": kwargs})
            connections.append({"src": src, "src_port": "s_out", "dst": name, "dst_port": "s_in"})
            connections.extend({"src": name, "src_port": "a_out", "dst": dst, "dst_port": "a_in"}
                               for dst in graph.successors(name))
            if isinstance(op, PlasticDense):
                if len(graph.successors(name)) != 1:
                    raise UnsupportedOpError("a PlasticDense must feed exactly one neuron population (its post-"
                                             "synaptic traces come from one LIF)", node=name,
                                             fix="split the synapse per target population")
                (post,) = graph.successors(name)
                connections.append({"src": post, "src_port": "s_out", "dst": name, "dst_port": "s_in_bap"})
                plastic[name] = {"process": name, "post": post, "shape": [int(n) for n in op.weight.shape]}
        elif isinstance(op, Output):
            (src,) = graph.predecessors(name)
            src_op = graph.nodes[src]
            kind = "input" if isinstance(src_op, Input) else ("v" if src_op.readout else "spikes")
            outputs[name] = {"source": src, "kind": kind, "shape": [int(n) for n in shapes[src]]}
    description = {"format": FORMAT, "version": VERSION, "processes": processes, "connections": connections,
                   "inputs": inputs, "neurons": neurons, "outputs": outputs}
    if plastic:
        description["plastic"] = plastic
    return description


def save_description(description: dict[str, Any], path: str | Path) -> Path:
    """Write ``description`` atomically as a directory ``path`` holding description.json and arrays.npz."""
    arrays: dict[str, np.ndarray] = {}
    doc = encode(description, "d", arrays)
    with atomic_directory(path) as tmp:
        (tmp / JSON_NAME).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        np.savez(tmp / NPZ_NAME, **{k: arrays[k] for k in sorted(arrays)})
    return Path(path)
