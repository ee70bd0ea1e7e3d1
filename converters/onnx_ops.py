"""ONNX node handlers: each turns one ONNX node into linear expressions (:mod:`.onnx_expr`) or a ReLU population.

Tensors are held as :class:`~neurodeploy.converters.onnx_expr.Expr` (activation-dependent) or as numpy arrays
(constants: initializers, ``Constant`` nodes and what is computed from them only). Shapes exclude the batch axis;
ONNX axes count it (axis 1 of ``[N, C, H, W]`` is the IR's axis 0). The maths of each op (ONNX opset 13+):

* ``Gemm``: ``Y = alpha A B' + beta C`` (``B' = B`` or ``B^T``) -> ``Dense(weight = alpha B'^T)``, bias
  ``beta C``; ``A`` must be the activation, ``B``/``C`` constants, ``transA = 0``.
* ``MatMul`` (activation x constant matrix) -> ``Dense(weight = B^T)``.
* ``Add``/``Sub``: activation +- constant -> bias; activation +- activation -> terms summed (a residual join:
  the neuron that consumes the sum gets one edge per source, aligned by Delay ops when emitted).
* ``Mul``/``Div`` by a constant -> scale (scalar: in the terms' coefficients; per channel: folded into the
  preceding Dense rows / Conv2d output channels, else a ``Scale`` op).
* ``Conv`` (2-D, symmetric zero padding, ``auto_pad`` resolved) -> ``Conv2d``.
* ``BatchNormalization`` (inference): ``y = k (x - mean) + beta`` with ``k = scale / sqrt(var + epsilon)``, per
  channel: a per-channel scale (folded into the preceding Conv/Gemm when directly behind it) plus a bias.
* ``AveragePool`` / ``GlobalAveragePool`` -> ``AvgPool2d`` (``count_include_pad = 0`` with padding: a ``Sparse``
  with the exact per-window divisors).
* ``MaxPool`` -> an exact ReLU network (see :func:`_maxpool`).
* ``Flatten`` (``axis = 1``) / ``Reshape`` (batch kept) -> shape only; ``Concat`` (not on the batch axis) -> a
  ``Sparse`` embedding of each part.
* ``Relu`` -> a new neuron population; ``Identity`` / ``Dropout`` (inference) -> pass-through;
  ``Softmax`` / ``LogSoftmax`` -> dropped, allowed only on a graph output (argmax is unchanged).
* ``Shape`` / ``Gather`` / ``Unsqueeze`` / ``Squeeze`` / ``Cast`` / ``Concat`` on constants: evaluated (the
  dynamic-batch ``Reshape`` pattern); ``Shape`` of an activation gives ``[0, *features]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from neurodeploy.converters import onnx_expr as ex
from neurodeploy.converters._common import Notes
from neurodeploy.converters.onnx_expr import Expr
from neurodeploy.errors import ConversionError, UnsupportedOpError
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import AvgPool2d, Conv2d, Dense, Shape, SumPool2d

Value = Any  # Expr | np.ndarray


@dataclass(eq=False)
class Pop:
    """A neuron population to emit: ``kind`` "relu" (an ANN ReLU) or "output" (the layer read at an output)."""

    name: str
    expr: Expr
    origin: str
    kind: str = "relu"


class Node:
    """One ONNX node with its attributes decoded; ``label`` names it in error messages."""

    def __init__(self, proto: Any, index: int):
        from onnx import helper

        self.op_type = str(proto.op_type)
        self.domain = str(proto.domain)
        self.name = str(proto.name) or f"{self.op_type}_{index}"
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs: dict[str, Any] = {}
        for attr in proto.attribute:
            value = helper.get_attribute_value(attr)
            self.attrs[attr.name] = value.decode() if isinstance(value, bytes) else value

    @property
    def label(self) -> str:
        return f"{self.name} ({self.op_type})"

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def has_input(self, i: int) -> bool:
        return len(self.inputs) > i and self.inputs[i] != ""


class State:
    """What the walk over the ONNX graph builds: tensor values, neuron populations, source shapes and notes."""

    def __init__(self, batch: int | None, consumers: dict[str, list[str]], graph_outputs: list[str]):
        self.values: dict[str, Value] = {}
        self.shapes: dict[str, Shape] = {}
        self.pops: dict[str, Pop] = {}
        self.notes = Notes()
        self.batch = batch
        self.consumers = consumers
        self.graph_outputs = graph_outputs
        self.dropped: dict[str, str] = {}  # graph output -> the Softmax node dropped in front of it

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.shapes:
            k += 1
            name = f"{base}#{k}"
        return name

    # ------------------------------------------------------------------------------------------ value access
    def value(self, node: Node, i: int) -> Value:
        name = node.inputs[i]
        if name not in self.values:
            raise ConversionError(f"{node.label} reads tensor '{name}', which no earlier node produces", node=node.name,
                                  fix="export a topologically sorted ONNX graph (onnx.checker.check_model passes)")
        return self.values[name]

    def expr(self, node: Node, i: int, what: str = "input") -> Expr:
        value = self.value(node, i)
        if not isinstance(value, Expr):
            raise UnsupportedOpError(f"{node.label}: its {what} '{node.inputs[i]}' is a constant, not an activation; "
                                     "only layers applied to the network's activations are converted",
                                     node=node.name, fix="fold constant subgraphs before export "
                                                         "(torch.onnx.export(..., do_constant_folding=True))")
        return value

    def const(self, node: Node, i: int, what: str) -> np.ndarray:
        """Input ``i`` of ``node`` as a constant array; weights and other real-valued parameters (anything but
        shapes, axes, indices and flags) must have a floating-point type: an integer weight is a tensor whose data
        type was changed (its bytes would be read as integers)."""
        value = self.value(node, i)
        if isinstance(value, Expr):
            raise UnsupportedOpError(f"{node.label}: its {what} '{node.inputs[i]}' depends on the input; a spiking "
                                     f"synapse needs a fixed {what}", node=node.name,
                                     fix=f"make the {what} a constant (an initializer) of the model")
        arr = np.asarray(value)
        if what not in _INTEGER_CONSTS and arr.dtype.kind != "f":
            raise ConversionError(f"{node.label}: its {what} '{node.inputs[i]}' has the data type {arr.dtype}, not "
                                  "a floating-point type", node=node.name,
                                  fix=f"store the {what} as float (was the tensor's data_type changed?)")
        return arr

    def set(self, node: Node, value: Value, i: int = 0) -> None:
        self.values[node.outputs[i]] = value

    def relu_pop(self, expr: Expr, base: str, origin: str, kind: str = "relu") -> Expr:
        """Create a neuron population fed by ``expr``; return the expression of its (ReLU) activation."""
        name = self.fresh(base)
        self.shapes[name] = expr.shape
        self.pops[name] = Pop(name, expr, origin, kind)
        return ex.source(name, expr.shape)


#: ``State.const`` roles that are integer-valued (shapes, axes, indices, flags); every other constant is real-valued.
_INTEGER_CONSTS = frozenset({"shape", "indices", "axes", "training_mode", "data"})


def _ints(value: Any, n: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if value is not None else (default,) * n


def _feature_axis(node: Node, axis: int, rank: int) -> int:
    """ONNX axis (batch = 0) -> IR axis (batch excluded); the batch axis is refused."""
    full = axis + rank if axis < 0 else axis
    if full <= 0 or full >= rank:
        raise UnsupportedOpError(f"{node.label} acts on axis {axis} of a rank-{rank} tensor, which mixes samples of "
                                 "the batch", node=node.name, fix="operate on feature axes only (axis >= 1)")
    return full - 1


def _bias_like(node: Node, c: np.ndarray, shape: Shape) -> np.ndarray:
    """A constant broadcast against an activation ``[N, *shape]`` (it must not extend the batch axis); it must have
    a floating-point type, like the activation (ONNX's type rules; an integer one had its data_type changed)."""
    if np.asarray(c).dtype.kind != "f":
        raise ConversionError(f"{node.label}: a constant operand has the data type {np.asarray(c).dtype}, the "
                              "activation a floating-point type", node=node.name,
                              fix="store the constant as float (was the tensor's data_type changed?)")
    c = np.asarray(c, dtype=np.float64)
    try:
        full = np.broadcast_to(c, np.broadcast_shapes(c.shape, (1, *shape)))
    except ValueError:
        raise ConversionError(f"{node.label}: constant of shape {c.shape} does not broadcast against the activation "
                              f"[N, {', '.join(map(str, shape))}]", node=node.name, fix="check the exported model") \
            from None
    if full.shape != (1, *shape):
        raise ConversionError(f"{node.label}: constant of shape {c.shape} would change the activation's shape "
                              f"{(1, *shape)}", node=node.name, fix="broadcast constants only along existing axes")
    return np.array(full[0])


# ------------------------------------------------------------------------------------------------- linear ops
def _gemm(st: State, n: Node) -> None:
    a = st.expr(n, 0)
    b = st.const(n, 1, "weight").astype(np.float64)
    if int(n.attr("transA", 0)):
        raise UnsupportedOpError(f"{n.label} transposes its activation input (transA=1)", node=n.name,
                                 fix="export the layer as x @ W (torch.nn.Linear does)")
    if b.ndim != 2 or len(a.shape) != 1:
        raise ConversionError(f"{n.label} needs a 2-D weight and a [N, K] input, got weight {b.shape} and input "
                              f"[N, {', '.join(map(str, a.shape))}]", node=n.name, fix="insert a Flatten before it")
    w = (b if int(n.attr("transB", 0)) else b.T) * float(n.attr("alpha", 1.0))
    bias = None
    if n.has_input(2):
        c = st.const(n, 2, "bias").astype(np.float64) * float(n.attr("beta", 1.0))
        bias = _bias_like(n, c, (w.shape[0],))
    st.set(n, _linear(n, a, Dense(weight=w, origin=n.name), bias))


def _linear(n: Node, a: Expr, op: Any, bias: np.ndarray | None = None) -> Expr:
    try:
        return ex.apply(a, op, bias)
    except Exception as err:  # IRError from the op's shape rule
        raise ConversionError(f"{n.label} does not fit its input [N, {', '.join(map(str, a.shape))}]: {err}",
                              node=n.name, fix="check the exported model's shapes") from None


def _matmul(st: State, n: Node) -> None:
    if not isinstance(st.value(n, 0), Expr):
        raise UnsupportedOpError(f"{n.label} multiplies a constant by the activation (W @ x)", node=n.name,
                                 fix="export the layer as x @ W (torch.nn.Linear does)")
    a = st.expr(n, 0)
    b = st.const(n, 1, "weight").astype(np.float64)
    if b.ndim != 2 or len(a.shape) != 1:
        raise UnsupportedOpError(f"{n.label}: only [N, K] x [K, M] products are converted, got input "
                                 f"[N, {', '.join(map(str, a.shape))}] and weight {b.shape}", node=n.name,
                                 fix="flatten the input first, or use Gemm")
    st.set(n, _linear(n, a, Dense(weight=b.T.copy(), origin=n.name)))


def _add_sub(st: State, n: Node) -> None:
    sign = -1.0 if n.op_type == "Sub" else 1.0
    x, y = st.value(n, 0), st.value(n, 1)
    if not isinstance(x, Expr) and not isinstance(y, Expr):
        st.set(n, np.asarray(x) + sign * np.asarray(y))
    elif isinstance(x, Expr) and isinstance(y, Expr):
        if x.shape != y.shape:
            raise UnsupportedOpError(f"{n.label} adds activations of shapes {x.shape} and {y.shape} (broadcasting "
                                     "between two activations)", node=n.name,
                                     fix="make both branches produce the same shape")
        st.set(n, ex.add(x, ex.scale(y, sign)))
    elif isinstance(x, Expr):
        st.set(n, Expr(x.shape, x.terms, x.bias + sign * _bias_like(n, y, x.shape)))
    else:
        y = ex.scale(y, sign)
        st.set(n, Expr(y.shape, y.terms, y.bias + _bias_like(n, x, y.shape)))


def _mul_div(st: State, n: Node) -> None:
    x, y = st.value(n, 0), st.value(n, 1)
    if not isinstance(x, Expr) and not isinstance(y, Expr):
        st.set(n, np.asarray(x) * np.asarray(y) if n.op_type == "Mul" else np.asarray(x) / np.asarray(y))
        return
    if isinstance(x, Expr) and isinstance(y, Expr):
        raise UnsupportedOpError(f"{n.label} multiplies two activations, which is not linear and has no synapse",
                                 node=n.name, fix="remove the product (gating/attention) from the model")
    if n.op_type == "Div" and not isinstance(x, Expr):
        raise UnsupportedOpError(f"{n.label} divides a constant by an activation", node=n.name,
                                 fix="only division of an activation by a constant is linear")
    a, c = (x, y) if isinstance(x, Expr) else (y, x)
    factor = _bias_like(n, c, a.shape)
    if n.op_type == "Div":
        if np.any(factor == 0):
            raise ConversionError(f"{n.label} divides by zero", node=n.name, fix="check the divisor")
        factor = 1.0 / factor
    st.set(n, ex.scale(a, factor if not np.all(factor == factor.flat[0]) else float(factor.flat[0]), n.name))


def _pads_2d(n: Node, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[int, int]:
    """Symmetric (top/bottom, left/right) zero padding from ``pads`` or ``auto_pad``; asymmetric is refused."""
    auto = str(n.attr("auto_pad", "NOTSET"))
    if auto == "VALID":
        return (0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size_, k, s, d in zip(in_hw, kernel, stride, dilation):
            out = -(-size_ // s)
            pads.append(max(0, (out - 1) * s + (k - 1) * d + 1 - size_))
        if any(p % 2 for p in pads):
            raise UnsupportedOpError(f"{n.label}: auto_pad={auto} needs asymmetric padding {pads} here", node=n.name,
                                     fix="use explicit symmetric pads (torch padding=k//2 with an odd kernel)")
        return (pads[0] // 2, pads[1] // 2)
    if auto != "NOTSET":
        raise UnsupportedOpError(f"{n.label}: auto_pad={auto!r} is not an ONNX padding mode", node=n.name)
    pads = _ints(n.attr("pads"), 4, 0)
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise UnsupportedOpError(f"{n.label} uses asymmetric padding {list(pads)} (begin != end); the IR pads "
                                 "symmetrically", node=n.name,
                                 fix="use symmetric padding, or pad the input explicitly before training")
    return (pads[0], pads[1])


def _spatial(n: Node, a: Expr, what: str) -> None:
    if len(a.shape) != 3:
        raise UnsupportedOpError(f"{n.label}: only 2-D {what} on [N, C, H, W] is converted, input is "
                                 f"[N, {', '.join(map(str, a.shape))}]", node=n.name,
                                 fix=f"use a 2-D {what} (1-D/3-D have no IR op)")


def _conv(st: State, n: Node) -> None:
    a = st.expr(n, 0)
    w = st.const(n, 1, "weight").astype(np.float64)
    _spatial(n, a, "convolution")
    if w.ndim != 4:
        raise UnsupportedOpError(f"{n.label} has a {w.ndim}-D kernel", node=n.name, fix="use a 2-D convolution")
    kernel = (int(w.shape[2]), int(w.shape[3]))
    if n.attr("kernel_shape") is not None and tuple(n.attr("kernel_shape")) != kernel:
        raise ConversionError(f"{n.label}: kernel_shape {list(n.attr('kernel_shape'))} differs from the weight's "
                              f"{list(kernel)}", node=n.name, fix="re-export the model")
    stride = _ints(n.attr("strides"), 2, 1)
    dilation = _ints(n.attr("dilations"), 2, 1)
    padding = _pads_2d(n, a.shape[1:], kernel, stride, dilation)
    op = Conv2d(weight=w, stride=stride, padding=padding, dilation=dilation, groups=int(n.attr("group", 1)),
                origin=n.name)
    bias = None
    if n.has_input(2):
        bias = st.const(n, 2, "bias").astype(np.float64).ravel()
        if bias.size != w.shape[0]:
            raise ConversionError(f"{n.label}: bias has {bias.size} values for {w.shape[0]} output channels",
                                  node=n.name, fix="re-export the model")
        bias = bias.reshape(-1, 1, 1)  # per output channel, broadcast over (H, W)
    st.set(n, _linear(n, a, op, bias))


def _batchnorm(st: State, n: Node) -> None:
    a = st.expr(n, 0)
    if int(n.attr("training_mode", 0)) or len(n.outputs) > 1 and any(n.outputs[1:]):
        raise UnsupportedOpError(f"{n.label} is in training mode (it updates running statistics)", node=n.name,
                                 fix="export the model in eval mode (model.eval())")
    gamma, beta, mean, var = (st.const(n, i, w).astype(np.float64).ravel()
                              for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    channels = a.shape[0] if a.shape else 1
    if not all(p.size == channels for p in (gamma, beta, mean, var)):
        raise ConversionError(f"{n.label} has parameters for {gamma.size} channels, its input has {channels}",
                              node=n.name, fix="re-export the model")
    k = gamma / np.sqrt(var + float(n.attr("epsilon", 1e-5)))
    per = (channels,) + (1,) * (len(a.shape) - 1)
    scaled = ex.scale(a, np.broadcast_to(k.reshape(per), a.shape), n.name)
    st.set(n, Expr(a.shape, scaled.terms, scaled.bias + np.broadcast_to((beta - k * mean).reshape(per), a.shape)))
    st.notes.add(n.name, "BatchNormalization folded (running statistics): y = k (x - mean) + beta, "
                         "k = scale / sqrt(var + epsilon), into the preceding layer's weights where it directly "
                         "follows a Conv/Gemm")


def _pool_geometry(n: Node, a: Expr) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    _spatial(n, a, "pooling")
    kernel = _ints(n.attr("kernel_shape"), 2, 1)
    if len(kernel) != 2:
        raise UnsupportedOpError(f"{n.label} has a {len(kernel)}-D kernel", node=n.name, fix="use 2-D pooling")
    stride = _ints(n.attr("strides"), 2, 1)
    dilation = _ints(n.attr("dilations"), 2, 1)
    if dilation != (1, 1):
        raise UnsupportedOpError(f"{n.label} uses dilations {list(dilation)}", node=n.name, fix="use dilation 1")
    padding = _pads_2d(n, a.shape[1:], kernel, stride, dilation)
    if int(n.attr("ceil_mode", 0)):
        floor = [(s + 2 * p - k) // st + 1 for s, p, k, st in zip(a.shape[1:], padding, kernel, stride)]
        ceil = [-(-(s + 2 * p - k) // st) + 1 for s, p, k, st in zip(a.shape[1:], padding, kernel, stride)]
        if floor != ceil:
            raise UnsupportedOpError(f"{n.label} uses ceil_mode=1, which adds a partial window here", node=n.name,
                                     fix="use ceil_mode=0 (torch's default)")
    return kernel, stride, padding


def _avgpool(st: State, n: Node) -> None:
    a = st.expr(n, 0)
    kernel, stride, padding = _pool_geometry(n, a)
    if not any(padding) or int(n.attr("count_include_pad", 0)):
        st.set(n, _linear(n, a, AvgPool2d(kernel=kernel, stride=stride, padding=padding, origin=n.name)))
        return
    pool = SumPool2d(kernel=kernel, stride=stride, padding=padding, origin=n.name)
    out_shape = pool.output_shape(a.shape)
    m = op_matrix(pool, a.shape)
    counts = np.asarray(m.sum(axis=1)).ravel()  # valid (unpadded) inputs per window
    st.set(n, ex.select(a, sp.diags(1.0 / counts) @ m, out_shape, n.name))
    st.notes.add(n.name, "AveragePool with count_include_pad=0 and padding: a Sparse synapse with each window's "
                         "own divisor (the number of unpadded inputs)")


def _global_avgpool(st: State, n: Node) -> None:
    a = st.expr(n, 0)
    _spatial(n, a, "pooling")
    st.set(n, _linear(n, a, AvgPool2d(kernel=a.shape[1:], stride=(1, 1), padding=(0, 0), origin=n.name)))


def _maxpool(st: State, n: Node) -> None:
    """Max pooling as an exact ReLU network: ``max(a, b) = b + relu(a - b)``, applied as a tournament.

    Each window's inputs are paired; a pair ``(a, b)`` becomes one ReLU neuron ``r = relu(a - b)`` and the
    candidate ``b + r``; unpaired candidates pass on. After ``ceil(log2(k))`` levels (k = window size) one
    candidate per window is left, a linear expression of the input and of the tournament's neurons. In the ANN this
    is exactly max pooling (padding behaves as -inf: padded positions are left out of the window); in the SNN each
    level is one more IF population (one more step of latency) and rates approximate the max like any ReLU.
    """
    a = st.expr(n, 0)
    if len(n.outputs) > 1 and n.outputs[1] and st.consumers.get(n.outputs[1]):
        raise UnsupportedOpError(f"{n.label}: its Indices output is used", node=n.name,
                                 fix="do not use the argmax indices (return_indices=False)")
    kernel, stride, padding = _pool_geometry(n, a)
    c, h, w = a.shape
    h_out = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    _max_tree(st, n, a, _windows(a.shape, (c, h_out, w_out), kernel, stride, padding), (c, h_out, w_out))


def _global_maxpool(st: State, n: Node) -> None:
    a = st.expr(n, 0)
    _spatial(n, a, "pooling")
    c, h, w = a.shape
    _max_tree(st, n, a, _windows(a.shape, (c, 1, 1), (h, w), (1, 1), (0, 0)), (c, 1, 1))


def _windows(in_shape: Shape, out_shape: Shape, kernel, stride, padding) -> np.ndarray:
    """``[n_out, k]`` flat input indices of each window (row-major in the window), ``-1`` for padding, with the
    valid entries moved to the front of each row."""
    c, h, w = in_shape
    o, y, x, i, j = np.meshgrid(np.arange(out_shape[0]), np.arange(out_shape[1]), np.arange(out_shape[2]),
                                np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
    sy, sx = y * stride[0] + i - padding[0], x * stride[1] + j - padding[1]
    valid = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    flat = np.where(valid, (o * h + np.clip(sy, 0, h - 1)) * w + np.clip(sx, 0, w - 1), -1)
    flat = flat.reshape(ex.size(out_shape), kernel[0] * kernel[1])
    order = np.argsort(flat < 0, axis=1, kind="stable")
    return np.take_along_axis(flat, order, axis=1)


def _max_tree(st: State, n: Node, a: Expr, windows: np.ndarray, out_shape: Shape) -> None:
    n_out, k = windows.shape
    n_in = ex.size(a.shape)
    # candidates: list of (matrix over the basis [a | r_1 | r_2 ...], valid mask); blocks: the basis' expressions
    blocks: list[Expr] = [a]
    widths = [n_in]
    rows = np.arange(n_out)
    cands = []
    for slot in range(k):
        valid = windows[:, slot] >= 0
        m = sp.csr_matrix((np.ones(valid.sum()), (rows[valid], windows[valid, slot])), shape=(n_out, n_in))
        cands.append((m, valid))
    level = 0
    while len(cands) > 1:
        level += 1
        pairs = [(cands[i], cands[i + 1]) for i in range(0, len(cands) - 1, 2)]
        diffs, units = [], []
        for (ma, va), (mb, vb) in pairs:
            both = va & vb
            diffs.append((ma - mb)[np.flatnonzero(both)])
            units.append(np.flatnonzero(both))
        n_units = sum(len(u) for u in units)
        width = sum(widths)
        new_cands = []
        if n_units:
            d = sp.vstack(diffs).tocsr()
            r = st.relu_pop(_combo(blocks, widths, d, (n_units,), n.name), f"{n.name}.max{level}", n.name)
            blocks.append(r)
            widths.append(n_units)
        offset = 0
        for ((ma, va), (mb, vb)), unit in zip(pairs, units):
            ma, mb = _widen(ma, sum(widths)), _widen(mb, sum(widths))
            pick = sp.csr_matrix((np.ones(len(unit)), (unit, width + offset + np.arange(len(unit)))),
                                 shape=(n_out, sum(widths)))
            only_a = sp.diags((va & ~vb).astype(float))
            both = sp.diags((va & vb).astype(float))
            new_cands.append(((both @ mb + pick + only_a @ ma).tocsr(), va))
            offset += len(unit)
        if len(cands) % 2:
            new_cands.append((_widen(cands[-1][0], sum(widths)), cands[-1][1]))
        cands = new_cands
    st.set(n, _combo(blocks, widths, cands[0][0], out_shape, n.name))
    if level:
        st.notes.add(n.name, f"MaxPool as an exact ReLU tournament (max(a, b) = b + relu(a - b)): {level} level(s) "
                             f"of IF neurons, {level} extra step(s) of latency; the window's other paths are delayed "
                             "to stay aligned")


def _widen(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    if m.shape[1] == width:
        return m
    return sp.hstack([m, sp.csr_matrix((m.shape[0], width - m.shape[1]))]).tocsr()


def _combo(blocks: list[Expr], widths: list[int], matrix: sp.spmatrix, out_shape: Shape, origin: str) -> Expr:
    """``matrix @ [block_0; block_1; ...]`` as one expression (one Sparse per block with non-zero columns)."""
    matrix = _widen(sp.csr_matrix(matrix), sum(widths))
    total = Expr(out_shape, [], np.zeros(out_shape))
    start = 0
    for block, width in zip(blocks, widths):
        part = matrix[:, start:start + width]
        start += width
        if part.nnz:
            total = ex.add(total, ex.select(block, part, out_shape, origin))
    return total


# -------------------------------------------------------------------------------------------------- reshaping
def _flatten(st: State, n: Node) -> None:
    x = st.value(n, 0)
    axis = int(n.attr("axis", 1))
    if not isinstance(x, Expr):
        x = np.asarray(x)
        axis = axis + x.ndim if axis < 0 else axis
        st.set(n, x.reshape(int(np.prod(x.shape[:axis])), -1))
        return
    rank = len(x.shape) + 1
    if (axis + rank if axis < 0 else axis) != 1:
        raise UnsupportedOpError(f"{n.label} flattens at axis {axis}: the result mixes the batch with features",
                                 node=n.name, fix="flatten at axis 1 (torch.flatten(x, 1), nn.Flatten())")
    st.set(n, ex.reshape(x, (ex.size(x.shape),), n.name))


def _reshape(st: State, n: Node) -> None:
    x = st.value(n, 0)
    target = [int(d) for d in st.const(n, 1, "shape").ravel()]
    if not isinstance(x, Expr):
        st.set(n, np.reshape(np.asarray(x), target))
        return
    full = (st.batch if st.batch is not None else 1,) + x.shape
    allowzero = int(n.attr("allowzero", 0))
    dims = [full[i] if d == 0 and not allowzero and i < len(full) else d for i, d in enumerate(target)]
    if not dims:
        raise UnsupportedOpError(f"{n.label} reshapes to a scalar", node=n.name, fix="keep the batch axis")
    batch, features = dims[0], dims[1:]
    if batch not in (-1, 1) and batch != st.batch and target[0] != 0:
        raise UnsupportedOpError(f"{n.label} reshapes the batch axis to {batch}", node=n.name,
                                 fix="keep the batch axis first (x.view(x.size(0), ...) or x.flatten(1))")
    if batch == -1 and -1 in features:
        raise UnsupportedOpError(f"{n.label} infers both the batch and a feature axis ({target})", node=n.name,
                                 fix="give the feature sizes explicitly")
    n_feat = ex.size(x.shape)
    if -1 in features:
        known = int(np.prod([d for d in features if d != -1]))
        if features.count(-1) > 1 or known == 0 or n_feat % known:
            raise ConversionError(f"{n.label} cannot reshape {ex.size(x.shape)} features to {target}", node=n.name,
                                  fix="check the reshape's target")
        features[features.index(-1)] = n_feat // known
    if int(np.prod(features)) != n_feat or any(d <= 0 for d in features):
        raise ConversionError(f"{n.label} reshapes [N, {', '.join(map(str, x.shape))}] to {target}, which changes "
                              "the number of features per sample", node=n.name,
                              fix="keep the batch axis first and the feature count unchanged")
    st.set(n, ex.reshape(x, tuple(features), n.name))


def _concat(st: State, n: Node) -> None:
    values = [st.value(n, i) for i in range(len(n.inputs)) if n.has_input(i)]
    axis = int(n.attr("axis"))
    if not any(isinstance(v, Expr) for v in values):
        st.set(n, np.concatenate([np.asarray(v) for v in values], axis=axis))
        return
    shape = next(v.shape for v in values if isinstance(v, Expr))
    ax = _feature_axis(n, axis, len(shape) + 1)
    parts = []
    for v in values:
        if not isinstance(v, Expr):
            c = np.asarray(v, dtype=np.float64)
            if c.ndim != len(shape) + 1 or c.shape[0] != 1:
                raise UnsupportedOpError(f"{n.label} concatenates a constant of shape {c.shape}", node=n.name,
                                         fix="concatenate activations only")
            v = Expr(c.shape[1:], [], c[0])
        if len(v.shape) != len(shape) or any(a != b for i, (a, b) in enumerate(zip(v.shape, shape)) if i != ax):
            raise ConversionError(f"{n.label} concatenates shapes that differ off the axis: {v.shape} vs {shape}",
                                  node=n.name, fix="check the exported model")
        parts.append(v)
    out_shape = list(shape)
    out_shape[ax] = sum(p.shape[ax] for p in parts)
    out_shape = tuple(out_shape)
    index = np.arange(ex.size(out_shape)).reshape(out_shape)
    total = Expr(out_shape, [], np.zeros(out_shape))
    start = 0
    for p in parts:
        rows = np.take(index, np.arange(start, start + p.shape[ax]), axis=ax).ravel()
        start += p.shape[ax]
        if p.terms:
            m = sp.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))), shape=(index.size, rows.size))
            total = ex.add(total, ex.select(p, m, out_shape, n.name))
        bias = np.zeros(index.size)
        bias[rows] = p.bias.ravel()
        total = Expr(out_shape, total.terms, total.bias + bias.reshape(out_shape))
    st.set(n, total)


# ------------------------------------------------------------------------------------------- pass-through ops
def _relu(st: State, n: Node) -> None:
    x = st.value(n, 0)
    if not isinstance(x, Expr):
        st.set(n, np.maximum(np.asarray(x), 0))
        return
    st.set(n, st.relu_pop(x, n.name, n.name))


def _identity(st: State, n: Node) -> None:
    if n.op_type == "Dropout":
        if n.has_input(2) and bool(np.asarray(st.const(n, 2, "training_mode")).ravel()[0]):
            raise UnsupportedOpError(f"{n.label} runs in training mode", node=n.name,
                                     fix="export the model in eval mode (model.eval())")
        if len(n.outputs) > 1 and n.outputs[1] and st.consumers.get(n.outputs[1]):
            raise UnsupportedOpError(f"{n.label}: its mask output is used", node=n.name, fix="do not use the mask")
    st.set(n, st.value(n, 0))


def _softmax(st: State, n: Node) -> None:
    out = n.outputs[0]
    if out not in st.graph_outputs or st.consumers.get(out):
        raise UnsupportedOpError(f"{n.label} is inside the network; only a {n.op_type} that produces a graph output "
                                 "can be dropped (it does not change the argmax)", node=n.name,
                                 fix="remove the softmax from the hidden layers")
    st.expr(n, 0)
    st.set(n, st.value(n, 0))
    st.dropped[out] = n.name
    st.notes.add(n.name, f"{n.op_type} at the output dropped for spiking inference: the readout holds the logits "
                         "(up to a positive scale), whose argmax is the softmax's")


def _constant(st: State, n: Node) -> None:
    from onnx import numpy_helper

    if "value" in n.attrs:
        st.set(n, numpy_helper.to_array(n.attrs["value"]))
        return
    for key in ("value_float", "value_floats", "value_int", "value_ints"):
        if key in n.attrs:
            st.set(n, np.asarray(n.attrs[key]))
            return
    raise UnsupportedOpError(f"{n.label} holds a {sorted(n.attrs)} constant (sparse or string)", node=n.name,
                             fix="use a dense numeric constant")


# ------------------------------------------------------------------------------------ shape arithmetic (constants)
def _shape(st: State, n: Node) -> None:
    """``Shape`` of an activation: ``[0, *features]`` -- the batch size is not fixed, so it is written as 0, which a
    ``Reshape`` reads as "copy this dimension" (the ``x.view(x.size(0), -1)`` export of torch)."""
    x = st.value(n, 0)
    dims = np.array([0, *x.shape] if isinstance(x, Expr) else np.shape(x), dtype=np.int64)
    start, end = n.attr("start", 0), n.attr("end")
    st.set(n, dims[start:end])
    if isinstance(x, Expr):
        st.notes.add(n.name, "Shape of an activation: the batch size is written as 0 (Reshape's 'copy this "
                             "dimension'); correct when it only feeds a Reshape's first entry")


def _gather(st: State, n: Node) -> None:
    data = st.const(n, 0, "data")
    st.set(n, np.take(data, st.const(n, 1, "indices").astype(np.int64), axis=int(n.attr("axis", 0))))


def _unsqueeze_squeeze(st: State, n: Node) -> None:
    data = st.const(n, 0, "data")
    axes = n.attr("axes")
    if axes is None and n.has_input(1):
        axes = st.const(n, 1, "axes").ravel().tolist()
    if n.op_type == "Squeeze":
        st.set(n, np.squeeze(data, axis=None if axes is None else tuple(int(a) for a in axes)))
        return
    rank = data.ndim + len(axes)
    for axis in sorted(int(a) + rank if a < 0 else int(a) for a in axes):
        data = np.expand_dims(data, axis)
    st.set(n, data)


def _cast(st: State, n: Node) -> None:
    from onnx import helper

    x = st.value(n, 0)
    dtype = helper.tensor_dtype_to_np_dtype(int(n.attr("to")))
    if isinstance(x, Expr):
        if not np.issubdtype(dtype, np.floating):
            raise UnsupportedOpError(f"{n.label} casts an activation to {dtype}", node=n.name,
                                     fix="keep activations in floating point")
        st.set(n, x)  # a float -> float cast changes no value the SNN represents
        return
    st.set(n, np.asarray(x).astype(dtype))


HANDLERS: dict[str, Callable[[State, Node], None]] = {
    "Shape": _shape, "Gather": _gather, "Unsqueeze": _unsqueeze_squeeze, "Squeeze": _unsqueeze_squeeze,
    "Cast": _cast,
    "Gemm": _gemm, "MatMul": _matmul, "Add": _add_sub, "Sub": _add_sub, "Mul": _mul_div, "Div": _mul_div,
    "Conv": _conv, "BatchNormalization": _batchnorm, "AveragePool": _avgpool, "GlobalAveragePool": _global_avgpool,
    "MaxPool": _maxpool, "GlobalMaxPool": _global_maxpool, "Flatten": _flatten, "Reshape": _reshape,
    "Concat": _concat, "Relu": _relu, "Identity": _identity, "Dropout": _identity, "Softmax": _softmax,
    "LogSoftmax": _softmax, "Constant": _constant,
}


def handle(st: State, n: Node) -> None:
    """Dispatch ``n`` to its handler; an op without one raises :class:`UnsupportedOpError` naming it."""
    if n.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(f"ONNX node {n.label} is from the custom domain '{n.domain}'", node=n.name,
                                 fix="export with standard ONNX ops only")
    handler = HANDLERS.get(n.op_type)
    if handler is None:
        raise UnsupportedOpError(f"ONNX op type '{n.op_type}' (node '{n.name}') is not supported by the ANN->SNN "
                                 "converter", node=n.name,
                                 fix=f"use only {', '.join(sorted(HANDLERS))}, or rewrite the layer with them")
    handler(st, n)


__all__ = ["HANDLERS", "Node", "Pop", "State", "handle"]
