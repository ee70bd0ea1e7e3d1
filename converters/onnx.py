"""ONNX (a trained ANN) -> float IR spiking network: rate-coded IF neurons with data-based threshold balancing.

:func:`from_onnx` reads an ONNX model (opset >= 13; ops in :mod:`.onnx_ops`), replaces every ReLU by a population
of integrate-and-fire neurons and the last layer by a readout, and scales weights so that firing rates stand for
activations (Rueckauer et al., "Conversion of continuous-valued deep networks to efficient event-driven networks
for image classification", Front. Neurosci. 2017).

**Rate code.** The IR ``IF`` neuron (``v = v + a + bias; s = v > vth``) with reset by subtraction, ``vth = 1`` and
a constant input ``z`` per step fires ``N(T) = floor(T z)`` or ``floor(T z) - 1`` times in ``T`` steps (v stays in
``(-inf, 1]`` after each reset, starting at 0), so its rate ``N/T`` tends to ``clip(z, 0, 1)`` with an error below
``1/T``: the ReLU, saturating at 1. Reset to zero (Lava's LIF, which lacks reset by subtraction) loses the
remainder ``v - vth`` at every spike, so rates fall below ``z`` (``1 / (floor(1/z) + 1)`` for constant ``z``, with
the strict ``v > 1``).

**Threshold balancing** (data-based normalisation, robust to outliers). For every ReLU population ``P``
``lambda_P`` is the ``percentile``-th percentile of its positive ANN activations over the calibration data (the
maximum for ``percentile = 100``); for an input ``lambda_in`` is the calibration data's maximum (its values are
encoded as spike probabilities ``x / lambda_in`` per step, see :func:`rate_encode`). Spikes of ``P`` at rate
``r`` stand for the activation ``lambda_P r``, so the synapse from a source ``S`` into ``P`` gets
``W lambda_S / lambda_P`` and ``P`` the bias ``b / lambda_P`` (per step), threshold 1. Activations above
``lambda_P`` saturate at one spike per step; the percentile trades that clipping against resolution.
Without calibration data the *model-based* bound of Diehl et al. 2015 is used: ``lambda_P`` is the largest
activation the weights allow for inputs in ``[0, 1]`` (interval arithmetic; safe but conservative, so rates are
low and more steps are needed).

**Output.** The tensor at each graph output (after dropping a final Softmax) feeds a readout:
``readout="integrator"`` (default) is ``LI(du=1, dv=0)``, ``v[t] = sum_{k <= t} (W' s[k] + b')``, normalised by
``lambda_out`` = the percentile of ``|logit|``, so ``v[T] lambda_out / T`` approximates the logits and
``argmax v[T]`` is the class (no ties, no saturation); ``readout="spikes"`` makes it one more IF population (class
= most spikes; ties possible at small ``T``). ``meta["output_scale"]`` holds ``lambda_out``.

**Timing.** Every synapse adds one step (Lava/Loihi), so population ``P`` gets its first input at step
``L_P = 1 + max(L_S)`` over its sources (inputs: 0). A residual join (Add) or a MaxPool tournament sums paths of
different depth: each shorter path gets a ``Delay`` of ``L_P - 1 - L_S`` steps (folded into synaptic delays), so
every contribution to one neuron arrives in step. Biases act from step 1 (the IR has no bias onset): a population
integrates ``L_P`` steps of bias before its input arrives (an error of at most ``L_P |b| / T`` in rate). Scaling
biases by ``(T - L_P) / T`` was tried on the digits example and did not help consistently, so biases are kept.
``timesteps`` (the intended run length ``T``) is recorded in ``meta["timesteps"]``; a ``T`` that does not exceed
the latency is refused (the output would see nothing).

Everything that differs from the ANN is listed in ``meta["conversion_notes"]``; ``meta["thresholds"]`` has every
``lambda``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.converters import onnx_expr as ex
from neurodeploy.converters._common import compact, finish, in_source
from neurodeploy.converters.onnx_expr import Expr, Matrices
from neurodeploy.converters.onnx_ops import Node, Pop, State, handle
from neurodeploy.errors import ConversionError, NeurodeployError, SerializationError
from neurodeploy.ir.fields import shape_problem
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import IF, LI, Conv2d, Delay, Dense, Input, Op, Output, Scale, Sparse

MIN_OPSET = 13
NEURONS = ("if",)
READOUTS = ("integrator", "spikes")


# ---------------------------------------------------------------------------------------------------- loading
def load_onnx(model: Any) -> Any:
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto, checked with ``onnx.checker``.

    Every problem with the file (missing, not protobuf, truncated, not a valid model) raises
    :class:`SerializationError` naming the file; an opset below 13 raises :class:`ConversionError`.
    """
    import onnx

    where = "the ONNX model"
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, bytes | bytearray):
        proto = _parse(bytes(model), where)
    elif isinstance(model, str | os.PathLike):
        path = Path(model)
        where = f"'{path}'"
        if not path.is_file():
            raise SerializationError(f"ONNX file '{path}' does not exist", fix="check the path")
        proto = _parse(path.read_bytes(), where)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            try:
                onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
            except Exception as err:
                raise SerializationError(f"{where} keeps weights in external files that cannot be read "
                                         f"({type(err).__name__}: {err})",
                                         fix="keep the external data files next to the model") from None
    else:
        raise ConversionError(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}",
                              fix="pass the .onnx file's path")
    if not proto.HasField("graph") or not proto.graph.output or not proto.graph.node:
        raise SerializationError(f"{where} holds no complete graph (no nodes or no outputs): the file is truncated "
                                 "or not an ONNX model", fix="re-export the model (torch.onnx.export)")
    try:
        onnx.checker.check_model(proto)
    except Exception as err:  # onnx.checker.ValidationError and friends
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SerializationError(f"{where} is not a valid ONNX model: {first[:400]}",
                                 fix="re-export the model; onnx.checker.check_model must pass") from None
    opset = _opset(proto)
    if opset < MIN_OPSET:
        raise ConversionError(f"{where} uses ONNX opset {opset}; the converter reads opset {MIN_OPSET} or newer",
                              fix=f"re-export with opset_version={MIN_OPSET} or newer, or run "
                                  "onnx.version_converter.convert_version")
    return proto


def _parse(data: bytes, where: str) -> Any:
    import onnx

    if not data:
        raise SerializationError(f"{where} is empty", fix="re-export the model")
    try:
        return onnx.load_model_from_string(data)
    except Exception as err:  # google.protobuf.message.DecodeError, RuntimeWarning-free
        raise SerializationError(f"{where} is not a readable ONNX file (corrupt, truncated or not ONNX: "
                                 f"{type(err).__name__})", fix="re-export the model (torch.onnx.export)") from None


def _opset(proto: Any) -> int:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


# --------------------------------------------------------------------------------------------------- encoding
def rate_encode(x: np.ndarray, timesteps: int, scale: float = 1.0, method: str = "regular",
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Spike trains ``[B, T, *shape]`` (uint8) with rate ``p = clip(x / scale, 0, 1)`` per step.

    ``"regular"``: deterministic, ``s[t] = floor(t p + 1/2) - floor((t - 1) p + 1/2)`` (``round(T p)`` spikes,
    evenly spread); ``"poisson"``: Bernoulli(p) per step (``rng`` required for reproducibility). ``scale`` is the
    converted model's ``meta["input_scale"][input]``.
    """
    x = np.asarray(x, dtype=np.float64)
    p = np.clip(x / float(scale), 0.0, 1.0)[:, None]
    t = np.arange(1, int(timesteps) + 1, dtype=np.float64).reshape((1, -1) + (1,) * (x.ndim - 1))
    if method == "regular":
        return (np.floor(t * p + 0.5) - np.floor((t - 1) * p + 0.5)).astype(np.uint8)
    if method == "poisson":
        rng = np.random.default_rng() if rng is None else rng
        return (rng.random((x.shape[0], int(timesteps)) + x.shape[1:]) < p).astype(np.uint8)
    raise ConversionError(f"unknown encoding method {method!r}", fix="use 'regular' or 'poisson'")


# ------------------------------------------------------------------------------------------------------- walk
def _walk(proto: Any, input_shape: Any) -> State:
    graph = proto.graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    outputs = [o.name for o in graph.output]
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        raise ConversionError("the ONNX graph has no input", fix="export the model with an input tensor")
    shapes, batch = _input_shapes(inputs, input_shape)
    st = State(batch, consumers, outputs)
    from onnx import numpy_helper

    for t in graph.initializer:
        st.values[t.name] = _initializer(t, numpy_helper)
    for name, shape in shapes.items():
        st.shapes[name] = shape
        st.values[name] = ex.source(name, shape)
    for index, proto_node in enumerate(graph.node):
        node = Node(proto_node, index)
        try:
            handle(st, node)
        except NeurodeployError:
            raise
        except Exception as err:  # a malformed node (missing attribute or input) that onnx.checker let through
            raise ConversionError(f"ONNX node {node.label} could not be converted ({type(err).__name__}: {err})",
                                  node=node.name, fix="check the node's inputs and attributes") from None
    return st


def _initializer(tensor: Any, numpy_helper: Any) -> np.ndarray:
    """An initializer as a numpy array; its data must match its declared type and shape, and hold real numbers."""
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as err:  # ValueError (size mismatch), TypeError/KeyError (unknown data type)
        raise SerializationError(f"initializer '{tensor.name}' cannot be read as its declared type "
                                 f"{tensor.data_type} and shape {list(tensor.dims)} ({type(err).__name__}: {err})",
                                 node=tensor.name, fix="re-export the model; the tensor is damaged") from None
    if arr.dtype.kind not in "biuf":
        raise ConversionError(f"initializer '{tensor.name}' holds {arr.dtype} data, not real numbers",
                              node=tensor.name, fix="export real-valued weights")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ConversionError(f"initializer '{tensor.name}' holds {int((~np.isfinite(arr)).sum())} NaN or infinite "
                              "value(s)", node=tensor.name, fix="check the trained model; every weight must be finite")
    return arr


def _input_shapes(inputs: list, input_shape: Any) -> tuple[dict[str, tuple[int, ...]], int | None]:
    shapes: dict[str, tuple[int, ...]] = {}
    batch: int | None = None
    given = input_shape if isinstance(input_shape, Mapping) else (
        {inputs[0].name: input_shape} if input_shape is not None else {})
    import onnx

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    for inp in inputs:
        if inp.type.tensor_type.elem_type not in floats:
            raise ConversionError(f"graph input '{inp.name}' is not a floating-point tensor (ONNX type "
                                  f"{inp.type.tensor_type.elem_type}); only real-valued inputs can be rate-coded",
                                  node=inp.name, fix="convert models whose inputs are images/features, not indices")
        dims = inp.type.tensor_type.shape.dim
        if not dims:
            raise ConversionError(f"graph input '{inp.name}' has no shape", node=inp.name,
                                  fix="export with an example input so that shapes are recorded")
        values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if isinstance(values[0], int) and values[0] > 0:
            batch = values[0]
        if inp.name in given:
            shape = _given_shape(given[inp.name], inp.name)
        else:
            shape = tuple(values[1:])
            if not shape or any(d is None or d <= 0 for d in shape):
                raise ConversionError(f"graph input '{inp.name}' has feature dimensions {values[1:]} that are not "
                                      "fixed", node=inp.name,
                                      fix="export with static feature dimensions or pass input_shape")
        problem = shape_problem(shape)
        if problem:
            raise ConversionError(f"graph input '{inp.name}' has the feature shape {list(shape)}: {problem}",
                                  node=inp.name, fix="export the model with its real input size or pass input_shape")
        shapes[inp.name] = shape
    return shapes, batch


def _given_shape(value: Any, name: str) -> tuple[int, ...]:
    """A user-given input shape (``input_shape``) as whole numbers."""
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ConversionError(f"input_shape {value!r} for '{name}' is not a list of whole numbers", node=name,
                              fix="pass the feature shape without batch, e.g. 64 or 1,8,8")
    return tuple(int(d) for d in arr)


def _outputs(st: State) -> dict[str, str]:
    """Each graph output -> the IR node it reads (a population or input); adds readout populations."""
    reads: dict[str, str] = {}
    for out in st.graph_outputs:
        value = st.values.get(out)
        if not isinstance(value, Expr):
            raise ConversionError(f"graph output '{out}' does not depend on the input (or is never produced)",
                                  node=out, fix="remove the constant output")
        plain = (len(value.terms) == 1 and value.terms[0].coef == 1.0 and not np.any(value.bias)
                 and all(op.op_type == "Flatten" for op in value.terms[0].ops))
        if plain and value.terms[0].source in st.pops and out not in st.dropped:
            reads[out] = value.terms[0].source
            continue
        origin = st.dropped.get(out, out)
        src = st.relu_pop(value, f"{out}.readout", origin, kind="output")
        reads[out] = src.terms[0].source
    return reads


# -------------------------------------------------------------------------------------------------- balancing
def _calibration(calibration: Any, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    if calibration is None:
        return None
    if not isinstance(calibration, Mapping):
        if len(shapes) != 1:
            raise ConversionError(f"the model has inputs {list(shapes)}; pass calibration as a dict name -> array",
                                  fix="calibration={'input': x, ...}")
        calibration = {next(iter(shapes)): calibration}
    arrays = {}
    for name, shape in shapes.items():
        if name not in calibration:
            raise ConversionError(f"no calibration data for input '{name}'", node=name,
                                  fix=f"add an array named '{name}'")
        x = np.asarray(calibration[name], dtype=np.float64)
        if x.ndim >= 2 and x.shape[0] > 0 and tuple(x.shape[1:]) != shape and x[0].size == ex.size(shape):
            x = x.reshape((x.shape[0],) + shape)  # flat samples of the right size, e.g. [B, 64] for (1, 8, 8)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or x.shape[0] == 0:
            raise ConversionError(f"calibration data for '{name}' must be shaped [B, {', '.join(map(str, shape))}] "
                                  f"(ANN inputs, not spikes), got {list(x.shape)}", node=name,
                                  fix="pass a batch of the model's input tensors")
        if not np.all(np.isfinite(x)):
            raise ConversionError(f"calibration data for '{name}' holds NaN or infinite values", node=name,
                                  fix="clean the calibration data")
        if np.any(x < 0):
            raise ConversionError(f"calibration data for '{name}' has negative values (min {x.min():.4g}); inputs "
                                  "are rate-coded as spike probabilities and cannot be negative", node=name,
                                  fix="train the ANN on inputs scaled to [0, 1] (fold any standardisation into the "
                                      "first layer)")
        arrays[name] = x
    return arrays


def _balance(st: State, calib: dict[str, np.ndarray] | None, percentile: float, mats: Matrices
             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """``lambda`` of every source (inputs and populations) and the ANN activations (empty without data)."""
    lam: dict[str, float] = {}
    acts: dict[str, np.ndarray] = {}
    if calib is not None:
        for name, x in calib.items():
            lam[name] = float(x.max()) if x.max() > 0 else 1.0
            acts[name] = x.reshape(x.shape[0], -1)
        for name, pop in st.pops.items():
            z = mats.evaluate(pop.expr, acts)
            if pop.kind == "relu":
                acts[name] = np.maximum(z, 0.0)
                positive = z[z > 0]
            else:
                positive = np.abs(z[z != 0])
            lam[name] = float(np.percentile(positive, percentile)) if positive.size else 1.0
            if not positive.size:
                st.notes.add(name, "no calibration sample activates this population: lambda = 1")
        return lam, acts
    upper: dict[str, np.ndarray] = {}
    for name, shape in st.shapes.items():
        if name not in st.pops:
            lam[name] = 1.0
            upper[name] = np.ones(ex.size(shape))
    for name, pop in st.pops.items():
        hi = mats.upper_bound(pop.expr, upper)
        if pop.kind == "relu":
            upper[name] = np.maximum(hi, 0.0)
            bound = float(upper[name].max())
        else:
            lo = -mats.upper_bound(ex.scale(pop.expr, -1.0), upper)
            bound = float(max(np.abs(hi).max(), np.abs(lo).max()))
        lam[name] = bound if bound > 0 else 1.0
    return lam, acts


# ----------------------------------------------------------------------------------------------------- emitting
class _Emitter:
    def __init__(self, st: State, lam: dict[str, float], mats: Matrices):
        self.st, self.lam, self.mats = st, lam, mats
        self.nodes: dict[str, Op] = {}
        self.edges: list[tuple[str, str]] = []
        self.latency: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        name, k = base or "op", 1
        while name in self.nodes or name in self.st.shapes:
            k += 1
            name = f"{base}#{k}"
        return name

    def chain(self, src: str, ops: list[Op], dst: str) -> None:
        prev = src
        for op in ops:
            name = self.fresh(op.origin)
            self.nodes[name] = op
            self.edges.append((prev, name))
            prev = name
        self.edges.append((prev, dst))

    def population(self, pop: Pop, neuron: Op) -> None:
        """Emit ``pop`` and its incoming synapses, each source delayed to arrive with the slowest one."""
        groups: dict[str, list] = {}
        for t in pop.expr.terms:
            groups.setdefault(t.source, []).append(t)
        lat = 1 + max((self.latency[s] for s in groups), default=-1)
        self.latency[pop.name] = lat
        for src, terms in groups.items():
            f = self.lam[src] / self.lam[pop.name]
            if len(terms) == 1:
                ops = _fold_scalar(list(terms[0].ops), terms[0].coef * f, pop.origin)
            else:
                m = sum(t.coef * f * self.mats.of(t) for t in terms)
                ops = [ex.sparse_op(m, pop.expr.shape, f"{src}->{pop.name}")]
            delay = lat - 1 - self.latency[src]
            if delay > 0:
                ops = [Delay(delay=np.full(self.st.shapes[src], delay, np.int64), origin=f"{pop.origin} (align)")] + ops
            self.chain(src, ops, pop.name)
        self.nodes[pop.name] = neuron


def _fold_scalar(ops: list[Op], c: float, origin: str) -> list[Op]:
    """Multiply the chain's map by ``c``: into its last weighted (or Scale) op if it has one, else a new Scale."""
    if c == 1.0:
        return ops
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        if isinstance(op, Dense | Conv2d):
            ops[i] = op.replace(weight=np.asarray(op.weight) * c)
            return ops
        if isinstance(op, Sparse):
            ops[i] = op.replace(value=np.asarray(op.value) * c)
            return ops
        if isinstance(op, Scale):
            ops[i] = op.replace(scale=np.asarray(op.scale) * c)
            return ops
    return ops + [Scale(scale=np.array([c]), origin=origin)]


# ----------------------------------------------------------------------------------------------------- checking
def _verify(proto: Any, st: State, calib: dict[str, np.ndarray], acts: dict[str, np.ndarray], mats: Matrices,
            samples: int = 4) -> float | None:
    """Largest relative difference between the converted ANN (the expressions) and onnx's reference evaluator
    (None when the reference evaluator cannot run the model)."""
    from onnx.helper import tensor_dtype_to_np_dtype as onnx_dtype
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class BatchNormalization(OpRun):
        """Inference-mode BN. onnx's own reference (opsets 9-13) takes the schema's default ``momentum`` for a
        request to use batch statistics, which is not what an exported eval-mode model means."""

        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None, training_mode=None, **_):
            shape = (-1,) + (1,) * (x.ndim - 2)
            eps = 1e-5 if epsilon is None else epsilon
            y = scale.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
            return ((y + bias.reshape(shape)).astype(x.dtype),)

    dtypes = {i.name: onnx_dtype(i.type.tensor_type.elem_type) for i in proto.graph.input}
    worst = 0.0
    n = min(samples, next(iter(calib.values())).shape[0])
    try:
        ref = ReferenceEvaluator(proto, new_ops=[BatchNormalization])
        runs = [ref.run(None, {name: x[i:i + 1].astype(dtypes[name]) for name, x in calib.items()})
                for i in range(n)]
    except Exception:  # the reference evaluator cannot run this model: nothing to compare with
        return None
    for i, outs in enumerate(runs):
        one = {k: v[i:i + 1] for k, v in acts.items()}
        for name, expected in zip(st.graph_outputs, outs):
            value = st.values[name]
            got = mats.evaluate(value, one).ravel()
            expected = np.asarray(expected, dtype=np.float64).ravel()
            if name in st.dropped:
                continue
            span = max(1.0, float(np.abs(expected).max()))
            worst = max(worst, float(np.abs(got - expected).max()) / span)
    return worst


# --------------------------------------------------------------------------------------------------------- API
def from_onnx(model: Any, calibration: Any = None, timesteps: int | None = None, neuron: str = "if",
              percentile: float = 99.9, dt: float = 1e-3, *, reset: str = "subtract", readout: str = "integrator",
              input_shape: Any = None, verify: bool = True) -> Graph:
    """Convert a trained ANN in ONNX into a float IR spiking network (see the module docstring for the maths).

    ``model``: path, bytes or ``onnx.ModelProto``. ``calibration``: ANN inputs ``[B, *input_shape]`` (or a dict
    per input), non-negative; without it thresholds come from the weights (model-based, conservative).
    ``timesteps``: the intended run length, recorded in ``meta`` and checked against the latency (see *Timing*).
    ``neuron``: "if" (rate-coded integrate-and-fire). ``percentile``: the activation percentile that maps to one
    spike per step. ``dt``: seconds per step (``meta["dt"]``). ``reset``: "subtract" (accurate rate code) or
    "zero" (what Lava/Loihi's LIF does). ``readout``: "integrator" or "spikes". ``input_shape``: feature shape
    (batch excluded) for inputs whose ONNX shape is not fixed. ``verify``: compare the converted ANN with onnx's
    reference evaluator on a few calibration samples (``meta["ann_check_error"]``; a mismatch raises).
    Errors about a file name it.
    """
    try:
        return _from_onnx(model, calibration, timesteps, neuron, percentile, dt, reset=reset, readout=readout,
                          input_shape=input_shape, verify=verify)
    except NeurodeployError as err:
        if not isinstance(model, str | os.PathLike):
            raise
        raise in_source(err, "ONNX", model) from None


def _from_onnx(model: Any, calibration: Any, timesteps: int | None, neuron: str, percentile: float, dt: float, *,
               reset: str, readout: str, input_shape: Any, verify: bool) -> Graph:
    """:func:`from_onnx` without naming the file in its errors."""
    if neuron not in NEURONS:
        raise ConversionError(f"neuron {neuron!r} is not supported", fix=f"use one of {NEURONS}")
    if reset not in ("subtract", "zero"):
        raise ConversionError(f"reset {reset!r} is not supported", fix="use 'subtract' or 'zero'")
    if readout not in READOUTS:
        raise ConversionError(f"readout {readout!r} is not supported", fix=f"use one of {READOUTS}")
    if not (0 < float(percentile) <= 100):
        raise ConversionError(f"percentile must be in (0, 100], got {percentile!r}", fix="pass e.g. 99.9")
    if not (isinstance(dt, int | float) and dt > 0 and np.isfinite(dt)):
        raise ConversionError(f"dt must be a positive number of seconds, got {dt!r}", fix="pass e.g. dt=1e-3")
    if timesteps is not None and (int(timesteps) != timesteps or timesteps <= 0):
        raise ConversionError(f"timesteps must be a positive integer, got {timesteps!r}", fix="pass e.g. 64")
    proto = load_onnx(model)
    st = _walk(proto, input_shape)
    reads = _outputs(st)
    inputs = {n: s for n, s in st.shapes.items() if n not in st.pops}
    calib = _calibration(calibration, inputs)
    mats = Matrices(st.shapes)
    lam, acts = _balance(st, calib, float(percentile), mats)
    meta: dict[str, Any] = {"source": "onnx", "dt": float(dt), "opset": _opset(proto),
                            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
                            "input_shape": {n: list(s) for n, s in inputs.items()},
                            "input_scale": {n: lam[n] for n in inputs}, "reset": reset, "readout": readout,
                            "normalisation": "data" if calib is not None else "model",
                            "percentile": float(percentile) if calib is not None else None,
                            "timesteps": None if timesteps is None else int(timesteps)}
    if calib is not None and verify:
        err = _verify(proto, st, calib, acts, mats)
        meta["ann_check_error"] = err
        if err is None:
            st.notes.add("*", "the converted ANN was not checked: onnx's reference evaluator cannot run this model")
        elif err > 1e-3:
            raise ConversionError(f"the converted ANN differs from the ONNX model by {err:.3g} (relative) on the "
                                  "calibration data: an op was converted wrongly",
                                  fix="report this model; pass verify=False to convert anyway")
    em = _Emitter(st, lam, mats)
    for name, shape in inputs.items():
        em.nodes[name] = Input(shape=shape, origin=name)
        em.latency[name] = 0
    spiking_out = readout == "spikes"
    for name, pop in st.pops.items():
        bias = compact(pop.expr.bias / lam[name])
        if pop.kind == "output" and not spiking_out:
            neuron_op: Op = LI(shape=pop.expr.shape, du=1.0, dv=0.0, bias=bias, origin=pop.origin)
        else:
            neuron_op = IF(shape=pop.expr.shape, vth=1.0, bias=bias, reset=reset, origin=pop.origin)
        em.population(pop, neuron_op)
    for out, src in reads.items():
        name = em.fresh(out)
        em.nodes[name] = Output(origin=out)
        em.edges.append((src, name))
    meta["thresholds"] = {n: lam[n] for n in st.pops}
    meta["output_scale"] = {out: lam[src] for out, src in reads.items() if src in st.pops}
    meta["output_kind"] = {out: ("spikes" if st.pops[src].kind == "relu" or spiking_out else "integrator")
                           for out, src in reads.items() if src in st.pops}
    if reset == "zero":
        st.notes.add("*", "reset to zero: each spike discards v - vth, so rates fall below the activations "
                          "(1 / (floor(1 / z) + 1) for a constant input z); reset='subtract' is the accurate rate code")
    graph = finish(em.nodes, em.edges, meta, st.notes, source="ONNX model")
    if timesteps is not None and timesteps <= graph.meta["latency_steps"]:
        raise ConversionError(f"timesteps = {timesteps} does not exceed the network's latency of "
                              f"{graph.meta['latency_steps']} steps: the output would see no input",
                              fix=f"run more than {graph.meta['latency_steps']} steps")
    return graph


__all__ = ["from_onnx", "load_onnx", "rate_encode"]
