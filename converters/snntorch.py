"""snnTorch -> float IR.

:func:`from_snntorch` walks an ``nn.Sequential`` (or a module whose children run in registration order) of
``nn.Linear``, ``nn.Conv2d``, ``nn.Flatten``, ``nn.AvgPool2d``, ``nn.BatchNorm1d/2d`` (folded into the preceding
Linear/Conv2d), ``snn.Leaky``, ``snn.Synaptic`` and ``snn.RLeaky`` (``nn.Dropout``/``nn.Identity`` are skipped).

The maths, read from snnTorch 1.0.0 (``snntorch/_neurons/{leaky,synaptic,rleaky}.py``), per step ``t`` with input
``x[t] = W s[t] + b`` and ``r[t] = H(mem[t-1] - thr)`` (the previous step's spike, ``H(z) = z > 0``, strict)::

    Leaky     mem[t] = beta mem[t-1] + x[t] - r[t] thr                      ("subtract")
              mem[t] = beta (1 - r[t]) mem[t-1] + x[t]                       ("zero")
    Synaptic  syn[t] = alpha syn[t-1] + x[t];  mem[t] = beta mem[t-1] + syn[t] - r[t] thr        ("subtract")
              syn[t] = alpha syn[t-1] + x[t];  mem[t] = (1 - r[t]) (beta mem[t-1] + syn[t])     ("zero")
    RLeaky    as Leaky with x[t] + V s[t-1] ("zero": mem[t] = (1 - r[t]) (beta mem[t-1] + x[t] + V s[t-1]))
    s[t] = H(mem[t] - thr);  beta, alpha are clamped to [0, 1] in every forward pass.

With ``reset_delay=False`` the reset is applied in the same step instead (``mem[t] -= thr`` or ``mem[t] = 0``
where ``s[t]``), guarded against a second reset on the next step.

The IR neuron (:class:`~neurodeploy.ir.ops.CubaLIF`, float form) is ``u = (1 - du) u + a;
v = (1 - dv) v + u + bias; s = v > vth``, then ``v = 0`` or ``v -= vth``. The map is

* Leaky / RLeaky: ``du = 1, dv = 1 - beta, vth = thr`` (``u = a``: the input enters v directly);
* Synaptic: ``du = 1 - alpha, dv = 1 - beta, vth = thr`` (``u`` is snnTorch's ``syn``);
* RLeaky's recurrent weights (``all_to_all``: its ``nn.Linear``/``nn.Conv2d``; one-to-one: ``V``) become a synapse
  from the neuron to itself. snnTorch feeds back ``s[t-1]`` and an IR synapse delivers one step later: the loop
  timing is the same.
* Biases ``b`` of Linear/Conv2d (and RLeaky's recurrent layer) are added to ``x`` every step. For du = 1 that is
  exactly the neuron bias: ``bias = b``. For Synaptic the bias enters ``syn``, which converges to
  ``b / (1 - alpha)``; the IR has no current bias, so ``bias = b / (1 - alpha)`` (exact in steady state, early
  steps differ; recorded in the notes; alpha = 1 with a bias is rejected).

Where snnTorch and the IR coincide (spikes identical up to float rounding and the latency shift):

* reset "zero", reset_delay=True (the default) for Leaky: spikes identical; snnTorch reports the pre-reset mem at
  a spike step, the IR the post-reset v (0).
* reset "zero" or "subtract" with ``reset_delay=False`` for all three (for "subtract": unless a membrane still
  exceeds the threshold after its reset, see below).
* reset "subtract" with beta = 1.

The documented gaps (each one converted layer is listed in ``graph.meta["conversion_notes"]``):

* "subtract" with reset_delay=True: snnTorch subtracts ``thr`` *after* the next decay
  (``mem[t+1] = beta mem[t] + x - thr``); the IR subtracts before it (``(v - vth)(1 - dv) + u``), i.e. it removes
  ``beta thr`` instead of ``thr``. Exact only for beta = 1; otherwise the IR neuron fires more.
* "zero" with reset_delay=True for Synaptic/RLeaky: snnTorch also discards the input of the step after a spike
  (``mem[t+1] = 0``); the IR restarts from ``v = u[t+1] + bias``.
* "subtract" with reset_delay=False: snnTorch's double-reset guard makes a neuron whose membrane is still above
  ``thr`` after its reset fire on the next step only if ``beta mem + x > 2 thr`` (IR: ``> thr``).
* Latency: every IR synapse adds one step, so layer ``k`` (counted in synapses from the input) sees the stimulus
  ``k`` steps later than in snnTorch: IR array index ``t + k`` holds snnTorch step ``t`` (``meta["latency_steps"]``
  for the output, ``meta["node_latency_steps"]`` per neuron). A neuron bias acts from step 1 in the IR, so during
  the first ``k`` steps an IR neuron with a bias integrates it alone.
* ``reset_mechanism="none"`` (no reset) has no IR equivalent and is rejected; so are ``inhibition``,
  ``state_quant`` and per-neuron decays (one beta/alpha per layer). Per-neuron thresholds are normalised: the
  inputs and bias of neuron ``i`` are divided by ``thr_i`` and ``vth = 1`` (spikes identical, v scaled).
* ``graded_spikes_factor`` ``g != 1`` becomes a Scale on the outgoing spikes; an output layer's IR spikes are 0/1.
* BatchNorm is folded with its running statistics (inference mode): ``W' = k W``, ``b' = k (b - mean) + beta_bn``
  with ``k = gamma / sqrt(var + eps)`` per output channel.
* A trailing Linear/Conv2d (no neuron after it) becomes a pass-through readout ``LI(du=1, dv=1)`` whose v is the
  layer's output.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from neurodeploy.converters._common import Notes, finish, per_neuron, scalar, size, uniform
from neurodeploy.errors import ConversionError, UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import AvgPool2d, Conv2d, CubaLIF, Dense, Flatten, Input, Op, Output, Scale, Sparse

_SKIPPED = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity")


def _np(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return (int(v), int(v))
    a, b = tuple(v)
    return (int(a), int(b))


def _leaves(module: Any, path: str) -> Iterator[tuple[str, Any]]:
    import snntorch as snn

    children = list(module.named_children())
    if isinstance(module, snn.SpikingNeuron) or not children:
        yield path, module
        return
    own = [n for n, _ in module.named_parameters(recurse=False)]
    if own:
        raise UnsupportedOpError(f"module '{path}' ({type(module).__name__}) has its own parameters {own} besides "
                                 "child layers; its forward() cannot be read from its children", node=path,
                                 fix="wrap the layers in an nn.Sequential or move the parameters into child layers")
    for name, child in children:
        yield from _leaves(child, f"{path}.{name}")


class _Builder:
    """Walks the leaf layers in order, emitting a loose IR graph (see converters._common.finish)."""

    def __init__(self, input_shape: tuple[int, ...], dt: float):
        self.nodes: dict[str, Op] = {"input": Input(shape=input_shape, origin="input")}
        self.edges: list[tuple[str, str]] = []
        self.cur = "input"
        self.shape = input_shape
        self.dt = dt
        self.notes = Notes()
        self.gains: dict[str, np.ndarray] = {}
        self.graded_of: dict[str, str] = {}  # graded Scale node -> its neuron

    def add(self, name: str, op: Op, src: str | None = None) -> str:
        self.nodes[name] = op
        self.edges.append((self.cur if src is None else src, name))
        return name

    def advance(self, name: str, shape: tuple[int, ...]) -> None:
        self.cur, self.shape = name, shape


def _where(path: str, pos: int, layer: Any) -> str:
    return f"layer '{path}' ({type(layer).__name__}, position {pos})"


def _flatten(b: _Builder, path: str, pos: int, layer: Any) -> None:
    start, end = int(layer.start_dim), int(layer.end_dim)
    if start == 0 or end == 0:
        raise ConversionError(f"{_where(path, pos, layer)} flattens the batch dimension", node=path,
                              fix="use nn.Flatten(start_dim=1) (the default)")
    op = Flatten(start_dim=start - 1 if start > 0 else start, end_dim=end - 1 if end > 0 else end, origin=path)
    b.add(path, op)
    b.advance(path, op.output_shape(b.shape))


def _linear(b: _Builder, path: str, pos: int, layer: Any) -> None:
    if size(b.shape) != layer.in_features:
        raise ConversionError(f"{_where(path, pos, layer)} expects {layer.in_features} inputs but receives shape "
                              f"{b.shape}", node=path, fix="check input_shape or insert nn.Flatten")
    bias = None if layer.bias is None else _np(layer.bias)
    op = Dense(weight=_np(layer.weight), bias=bias, origin=path)
    b.add(path, op)
    b.advance(path, op.output_shape(b.shape))


def _conv2d(b: _Builder, path: str, pos: int, layer: Any) -> None:
    if len(b.shape) != 3:
        raise ConversionError(f"{_where(path, pos, layer)} needs a (C, H, W) input, receives {b.shape}", node=path,
                              fix="give input_shape as C,H,W")
    if layer.padding_mode != "zeros":
        raise UnsupportedOpError(f"{_where(path, pos, layer)} uses padding_mode='{layer.padding_mode}'", node=path,
                                 fix="use zero padding (padding_mode='zeros')")
    kernel, dilation = _pair(layer.kernel_size), _pair(layer.dilation)
    padding = layer.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        span = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(s % 2 for s in span):
            raise UnsupportedOpError(f"{_where(path, pos, layer)} uses padding='same' with an even kernel span "
                                     "(asymmetric padding)", node=path, fix="use an odd kernel or explicit padding")
        padding = (span[0] // 2, span[1] // 2)
    bias = None if layer.bias is None else _np(layer.bias)
    op = Conv2d(weight=_np(layer.weight), bias=bias, stride=_pair(layer.stride), padding=_pair(padding),
                dilation=dilation, groups=int(layer.groups), origin=path)
    try:
        out = op.output_shape(b.shape)
    except Exception as err:
        raise ConversionError(f"{_where(path, pos, layer)} does not fit its input {b.shape}: {err}",
                              node=path, fix="check input_shape") from None
    b.add(path, op)
    b.advance(path, out)


def _batchnorm(b: _Builder, path: str, pos: int, layer: Any) -> None:
    prev = b.nodes.get(b.cur)
    if not isinstance(prev, Dense | Conv2d):
        raise ConversionError(f"{_where(path, pos, layer)} does not directly follow a Linear or Conv2d layer; "
                              "only a BatchNorm right after one can be folded into its weights", node=path,
                              fix="place the BatchNorm directly after nn.Linear / nn.Conv2d")
    if layer.running_mean is None or layer.running_var is None:
        raise ConversionError(f"{_where(path, pos, layer)} keeps no running statistics (track_running_stats=False), "
                              "so its inference-time scale is unknown", node=path,
                              fix="train with track_running_stats=True")
    channels = prev.weight.shape[0]
    if layer.num_features != channels:
        raise ConversionError(f"{_where(path, pos, layer)} has {layer.num_features} features but '{b.cur}' has "
                              f"{channels} outputs", node=path, fix="match BatchNorm's num_features to the layer")
    gamma = _np(layer.weight) if layer.weight is not None else np.ones(channels)
    beta = _np(layer.bias) if layer.bias is not None else np.zeros(channels)
    k = gamma / np.sqrt(_np(layer.running_var) + float(layer.eps))
    mean = _np(layer.running_mean)
    w = np.asarray(prev.weight) * k.reshape((-1,) + (1,) * (prev.weight.ndim - 1))
    bias = np.zeros(channels) if prev.bias is None else np.asarray(prev.bias)
    b.nodes[b.cur] = prev.replace(weight=w, bias=k * (bias - mean) + beta, origin=f"{prev.origin}+{path}")
    b.notes.add(b.cur, f"BatchNorm '{path}' folded into the weights with its running statistics (inference mode)")


def _avgpool(b: _Builder, path: str, pos: int, layer: Any) -> None:
    if len(b.shape) != 3:
        raise ConversionError(f"{_where(path, pos, layer)} needs a (C, H, W) input, receives {b.shape}", node=path,
                              fix="pool before flattening")
    kernel = _pair(layer.kernel_size)
    stride = kernel if layer.stride is None else _pair(layer.stride)
    padding = _pair(layer.padding)
    if layer.ceil_mode:
        raise UnsupportedOpError(f"{_where(path, pos, layer)} uses ceil_mode=True", node=path,
                                 fix="use ceil_mode=False")
    if layer.divisor_override is not None:
        raise UnsupportedOpError(f"{_where(path, pos, layer)} sets divisor_override", node=path,
                                 fix="leave divisor_override unset")
    if not layer.count_include_pad and any(padding):
        raise UnsupportedOpError(f"{_where(path, pos, layer)} excludes padding from the average", node=path,
                                 fix="use count_include_pad=True (the default) or no padding")
    op = AvgPool2d(kernel=kernel, stride=stride, padding=padding, origin=path)
    b.add(path, op)
    b.advance(path, op.output_shape(b.shape))


def _reset(path: str, pos: int, layer: Any) -> str:
    mode = layer.reset_mechanism
    if mode == "none":
        raise UnsupportedOpError(f"{_where(path, pos, layer)} has reset_mechanism='none' (no reset); IR neurons "
                                 "always reset (to zero or by subtraction) and a spiking neuron without reset has no "
                                 "Loihi equivalent", node=path,
                                 fix="retrain with reset_mechanism='zero' or 'subtract'")
    if mode not in ("zero", "subtract"):
        raise UnsupportedOpError(f"{_where(path, pos, layer)} has reset_mechanism={mode!r}", node=path,
                                 fix="use 'zero' or 'subtract'")
    return mode


def _decay(b: _Builder, value: Any, name: str, path: str, shape: tuple[int, ...]) -> float:
    raw = per_neuron(_np(value), shape, name, path)
    clamped = np.clip(raw, 0.0, 1.0)
    if np.any(clamped != raw):
        b.notes.add(path, f"{name} outside [0, 1] was clamped as snnTorch does in every forward pass")
    return scalar(clamped, shape, name, path)


def _neuron_notes(b: _Builder, kind: str, path: str, reset: str, delayed: bool, beta: float) -> None:
    if reset == "subtract" and delayed and beta != 1.0:
        b.notes.add(path, "reset by subtraction: snnTorch (reset_delay=True) subtracts the threshold after the next "
                          "decay (mem[t+1] = beta*mem[t] + x - thr), the IR before it ((v - vth)*beta + u), so the "
                          f"IR removes beta*thr = {beta:.6g}*thr per spike and fires more. Exact only for beta = 1; "
                          "retrain with reset_delay=False (same as the IR) or reset_mechanism='zero'")
    if reset == "subtract" and not delayed:
        b.notes.add(path, "reset by subtraction with reset_delay=False: identical to the IR unless a membrane still "
                          "exceeds the threshold after its reset (more than 2*thr in one step); snnTorch's "
                          "double-reset guard then requires beta*mem + x > 2*thr for the next spike, the IR > thr")
    if reset == "zero" and delayed and kind != "Leaky":
        b.notes.add(path, f"reset to zero with reset_delay=True: {kind} also discards the input of the step after "
                          "a spike (mem[t+1] = 0), the IR restarts from v = u[t+1] + bias; spikes differ. Retrain "
                          "with reset_delay=False for an exact match")
    if reset == "zero" and delayed and kind == "Leaky":
        b.notes.add(path, "reset to zero: spikes identical; snnTorch reports the pre-reset mem at a spike step, "
                          "the IR its post-reset v (0)")


def _neuron(b: _Builder, path: str, pos: int, layer: Any, kind: str) -> None:
    shape = b.shape
    if getattr(layer, "inhibition", False):
        raise UnsupportedOpError(f"{_where(path, pos, layer)} uses inhibition (winner-take-all across the layer)",
                                 node=path, fix="retrain without inhibition")
    if getattr(layer, "state_quant", False):
        raise UnsupportedOpError(f"{_where(path, pos, layer)} quantizes its state (state_quant)", node=path,
                                 fix="remove state_quant: neurodeploy quantizes for the target itself")
    reset = _reset(path, pos, layer)
    delayed = bool(getattr(layer, "reset_delay", True))
    beta = _decay(b, layer.beta, "beta", path, shape)
    du = 1.0
    if kind == "Synaptic":
        du = 1.0 - _decay(b, layer.alpha, "alpha", path, shape)
    thr = per_neuron(_np(layer.threshold), shape, "threshold", path)
    vth = float(thr.flat[0]) if uniform(thr) else 1.0
    if not uniform(thr):
        if np.any(thr <= 0):
            raise ConversionError(f"{_where(path, pos, layer)} has per-neuron thresholds, some not positive",
                                  node=path, fix="use positive thresholds or one threshold for the layer")
        b.gains[path] = 1.0 / thr
        b.notes.add(path, "per-neuron thresholds normalised: inputs and bias of neuron i divided by thr_i, vth = 1 "
                          "(spikes identical, v is scaled by 1/thr_i)")
    op = CubaLIF(shape=shape, du=du, dv=1.0 - beta, vth=vth, bias=0.0, reset=reset, origin=path)
    src = b.cur
    if not isinstance(b.nodes[src], Dense | Conv2d):
        b.notes.add(path, f"driven straight by the spikes of '{src}': an identity synapse (one step) is inserted")
    b.add(path, op)
    _neuron_notes(b, kind, path, reset, delayed, beta)
    out = path
    g = per_neuron(_np(getattr(layer, "graded_spikes_factor", 1.0)), shape, "graded_spikes_factor", path)
    if not np.all(g == 1.0):
        out = f"{path}.graded"
        b.nodes[out] = Scale(scale=g.ravel() if not uniform(g) else np.array([g.flat[0]]), origin=path)
        b.edges.append((path, out))
        b.graded_of[out] = path
        b.notes.add(path, "graded_spikes_factor folded into the next layer's weights (a Scale on the spikes)")
    if kind == "RLeaky":
        _recurrent(b, path, layer, shape, out)
    b.advance(out, shape)


def _recurrent(b: _Builder, path: str, layer: Any, shape: tuple[int, ...], spikes: str) -> None:
    import torch

    name = f"{path}.recurrent"
    rec = layer.recurrent
    if isinstance(rec, torch.nn.Linear):
        op: Op = Dense(weight=_np(rec.weight), bias=None if rec.bias is None else _np(rec.bias), origin=name)
    elif isinstance(rec, torch.nn.Conv2d):
        op = Conv2d(weight=_np(rec.weight), bias=None if rec.bias is None else _np(rec.bias),
                    stride=_pair(rec.stride), padding=_pair(rec.padding), dilation=_pair(rec.dilation),
                    groups=int(rec.groups), origin=name)
    else:  # one-to-one: x * V
        n = size(shape)
        v = per_neuron(_np(rec.V), shape, "V", path).ravel()
        op = Sparse(out_shape=shape, in_size=n, row=np.arange(n), col=np.arange(n), value=v, origin=name)
    b.nodes[name] = op
    b.edges += [(spikes, name), (name, path)]


def from_snntorch(module: Any, input_shape: int | Sequence[int], dt: float = 1e-3, *, name: str = "net") -> Graph:
    """Convert an snnTorch network into a float IR :class:`~neurodeploy.ir.graph.Graph`.

    ``input_shape`` excludes batch and time (``64`` or ``(1, 28, 28)``); ``dt`` is the duration of one step in
    seconds (snnTorch is discrete: it only labels the step, stored in ``meta["dt"]`` for exporters); ``name``
    prefixes the module paths used as node names and ``origin`` (``"net.2"``). Layers run in registration order.
    See the module docstring for the maths and the gaps recorded in ``meta["conversion_notes"]``.
    """
    import snntorch as snn
    import torch

    if isinstance(input_shape, int | np.integer):
        input_shape = (int(input_shape),)
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ConversionError(f"input_shape must be a sequence of integers, got {input_shape!r}",
                              fix="pass e.g. (64,) or (1, 28, 28)") from None
    if not shape or any(d <= 0 for d in shape):
        raise ConversionError(f"input_shape must be positive sizes, got {shape}", fix="pass e.g. (64,) or (1, 28, 28)")
    if not (isinstance(dt, int | float) and dt > 0 and np.isfinite(dt)):
        raise ConversionError(f"dt must be a positive number of seconds, got {dt!r}", fix="pass e.g. dt=1e-3")
    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"expected a torch.nn.Module, got {type(module).__name__}",
                              fix="pass the snnTorch network (e.g. an nn.Sequential)")
    b = _Builder(shape, float(dt))
    nn = torch.nn
    neurons = {snn.Leaky: "Leaky", snn.Synaptic: "Synaptic", snn.RLeaky: "RLeaky"}
    for pos, (path, layer) in enumerate(_leaves(module, name)):
        kind = next((k for cls, k in neurons.items() if type(layer) is cls), None)
        if kind is not None:
            _neuron(b, path, pos, layer, kind)
        elif isinstance(layer, nn.Linear):
            _linear(b, path, pos, layer)
        elif isinstance(layer, nn.Conv2d):
            _conv2d(b, path, pos, layer)
        elif isinstance(layer, nn.Flatten):
            _flatten(b, path, pos, layer)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            _batchnorm(b, path, pos, layer)
        elif isinstance(layer, nn.AvgPool2d):
            _avgpool(b, path, pos, layer)
        elif isinstance(layer, nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d | nn.AdaptiveMaxPool2d):
            raise UnsupportedOpError(f"{_where(path, pos, layer)}: max pooling is not linear and has no Loihi "
                                     "synapse", node=path, fix="retrain with nn.AvgPool2d of the same kernel")
        elif type(layer).__name__ in _SKIPPED:
            if "Dropout" in type(layer).__name__:
                b.notes.add(path, "dropout is the identity at inference and was skipped")
        else:
            raise UnsupportedOpError(f"{_where(path, pos, layer)} is not supported by the snnTorch converter",
                                     node=path, fix="use Linear, Conv2d, Flatten, AvgPool2d, BatchNorm, snn.Leaky, "
                                                    "snn.Synaptic or snn.RLeaky")
    if b.cur == "input":
        raise ConversionError("the model has no layer to convert", fix="pass a network with at least one layer")
    out_src = b.graded_of.get(b.cur, b.cur)
    if out_src != b.cur:
        b.notes.add("output", f"'{out_src}' has graded_spikes_factor != 1: the IR output holds its 0/1 spikes")
    b.nodes["output"] = Output(origin="output")
    b.edges.append((out_src, "output"))
    meta = {"dt": float(dt), "source": "snntorch", "input_shape": list(shape)}
    return finish(b.nodes, b.edges, meta, b.notes, gains=b.gains, source="snnTorch model")


__all__ = ["from_snntorch"]
