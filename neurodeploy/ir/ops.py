"""IR operations: one frozen dataclass per op, its maths in the docstring and its own shape rule.

Conventions shared by every op
------------------------------
* Shapes exclude the batch and time axes; arrays are C-ordered and a flat index is ``np.ravel_multi_index``.
* Time is discrete: step ``t = 1, 2, ...`` (Lava's numbering); arrays index step ``t`` at position ``t - 1``.
* Every *synapse* op (Dense, Sparse, Conv2d) adds one step: a spike emitted at step ``t`` reaches the target
  neuron at step ``t + 1 + d`` where ``d`` is the synapse's delay (0 when ``delays`` is None). This is Lava's
  convention (``PyDenseModelBitAcc`` sends the previous step's buffer) and therefore Loihi's.
* *Float form* (``quant is None``): parameters are real numbers. *Quantized form* (``quant`` set): parameters are
  the integers of Loihi's fields, and ``quant.scale`` maps them back to float (see :class:`QuantInfo`).
* ``origin`` names the source layer (torch module path, NIR node, ONNX node) an op came from, for error messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import IRError

Shape = tuple[int, ...]

RESET_MODES = ("zero", "subtract")
SIGN_MODES = ("mixed", "excitatory", "inhibitory")

#: Registry of op classes by name, filled automatically by ``Op.__init_subclass__`` (no hand-kept list).
OP_TYPES: dict[str, type[Op]] = {}


@dataclass(frozen=True)
class QuantInfo:
    """How a quantized op's integers relate to the float model it came from.

    ``scale`` is lambda, the integer synaptic-input units per float unit of the *target neuron population*:
    a float weight ``w`` is represented as ``weights * 2**weight_exp ~= lambda * w``, a float threshold ``theta``
    as ``vth ~= lambda * theta`` and a float state ``x`` (u or v) as ``x_int ~= 64 * lambda * x`` (Loihi left-shifts
    synaptic input and threshold by 6 bits). ``bits`` records the bit width of each integer field, ``error`` the
    relative quantization error of each field (root-mean-square error over root-mean-square value).
    """

    scale: float
    bits: dict[str, int] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Op:
    """Base of every IR op. ``role`` is one of ``io``, ``linear`` (folded into synapses), ``synapse``, ``neuron``."""

    origin: str = field(default="", kw_only=True)
    role: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OP_TYPES[cls.__name__] = cls

    @property
    def op_type(self) -> str:
        return type(self).__name__

    def output_shape(self, input_shape: Shape | None) -> Shape:
        """Shape rule: the output shape given the (summed) input shape."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """All dataclass fields as a dict (arrays are not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> Op:
        values = self.params()
        values.update(changes)
        return type(self)(**values)


def _size(shape: Shape) -> int:
    return int(math.prod(shape))


def _per_element(op: Op, fld: str, n: int, what: str) -> None:
    """Field ``fld`` of ``op`` (None, a scalar or an array) must hold one value or one per each of ``n`` ``what``."""
    value = getattr(op, fld)
    if value is None or np.ndim(value) == 0:
        return
    if np.size(value) not in (1, n):
        raise IRError(f"{op.op_type} field '{fld}' has {np.size(value)} values for {n} {what}",
                      node=op.origin or None, fix=f"give {fld} one value, or one per {what[:-1]}")


def _weight_dims(op: Op, ndim: int, layout: str) -> tuple[int, ...]:
    """The weight's shape after checking it has ``ndim`` non-empty dimensions."""
    shape = np.shape(op.weight)
    if len(shape) != ndim or 0 in shape:
        raise IRError(f"{op.op_type} weight has shape {list(shape)}; it must be {layout} with no empty dimension",
                      node=op.origin or None, fix=f"store the weight as {layout}")
    return tuple(int(d) for d in shape)


# ----------------------------------------------------------------------------------------------------------- io
@dataclass(frozen=True, eq=False)
class Input(Op):
    """Spike source. At step ``t`` it emits column ``t - 1`` of the stimulus (Lava ``RingBuffer``)."""

    shape: Shape = ()
    role: ClassVar[str] = "io"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        return tuple(self.shape)


@dataclass(frozen=True, eq=False)
class Output(Op):
    """Marks a network output: passes its single predecessor's spikes through unchanged."""

    shape: Shape = ()
    role: ClassVar[str] = "io"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if self.shape and input_shape is not None and _size(self.shape) != _size(input_shape):
            raise IRError(f"Output declares shape {list(self.shape)} ({_size(self.shape)} values) but reads "
                          f"{list(input_shape)} ({_size(input_shape)} values)", node=self.origin or None,
                          fix="declare the shape of the layer it reads, or leave the shape empty")
        return tuple(self.shape) if self.shape else tuple(input_shape or ())


# ------------------------------------------------------------------------------------------------------ synapses
@dataclass(frozen=True, eq=False)
class SynapseOp(Op):
    """Fields shared by synapse ops.

    Quantized maths (Lava ``PyDenseModelBitAcc``), applied once to the stored mantissas: clip by ``sign_mode``
    (excitatory [0, 255], inhibitory [-255, 0], mixed [-256, 255]), then truncate
    ``W = (W >> k) << k`` with ``k = 8 - num_weight_bits + (1 if mixed)`` (inhibitory weights truncate their
    magnitude: ``W = -((-W >> k) << k)``). Each step:
    ``acc = W @ s`` (s binary, or graded when ``num_message_bits > 0``), then ``a = acc << weight_exp`` for
    ``weight_exp >= 0`` else ``acc >> -weight_exp`` (floor), applied to the sum (per delay bucket), not per synapse.
    Float maths: ``a = W @ s``.
    """

    delays: np.ndarray | None = None
    weight_exp: int = 0
    num_weight_bits: int | None = None
    sign_mode: str | None = None
    num_message_bits: int = 0
    quant: QuantInfo | None = None
    role: ClassVar[str] = "synapse"

    @property
    def quantized(self) -> bool:
        return self.quant is not None


@dataclass(frozen=True, eq=False)
class Dense(SynapseOp):
    """Dense synapses ``a = W @ s (+ bias)``; ``weight`` is ``[n_out, n_in]``, input flattened in C order.

    ``bias`` exists only in float form (converters fold it into the target neuron's bias).
    ``delays`` (optional, ``[n_out, n_in]`` integers in steps) makes it Lava's ``DelayDense``.
    """

    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    bias: np.ndarray | None = None

    def output_shape(self, input_shape: Shape | None) -> Shape:
        n_out, n_in = _weight_dims(self, 2, "[n_out, n_in]")
        _per_element(self, "bias", n_out, "outputs")
        if self.delays is not None and np.shape(self.delays) != (n_out, n_in):
            raise IRError(f"Dense delays have shape {list(np.shape(self.delays))}, the weights {[n_out, n_in]}",
                          node=self.origin or None, fix="give one delay per synapse, [n_out, n_in]")
        if input_shape is not None and _size(input_shape) != n_in:
            raise IRError(f"Dense expects {n_in} inputs but receives shape {input_shape} "
                          f"({_size(input_shape)} values)", node=self.origin or None,
                          fix="check the layer sizes or insert a Flatten")
        return (int(n_out),)


@dataclass(frozen=True, eq=False)
class PlasticDense(Dense):
    """Dense synapses whose weights learn on chip with a Loihi 2 two-factor rule (Lava ``LearningDense`` with a
    ``Loihi2FLearningRule``); the forward maths is :class:`Dense`'s, one post-synaptic neuron population.

    Rule: ``dw`` is a sum of products in Lava syntax (parsed by :func:`neurodeploy.ir.learning.parse_rule`), each
    ``m * 2**e * D * F1 * ...`` with a dependency ``D`` in {x0, y0, u0} and factors in {x1, y1, w}; the learning
    rate is a shift ``e`` (times a mantissa ``m`` in [-8, 7]). Traces (7-bit, 0..127), per epoch of ``t_epoch``
    steps, ``t`` the step within the epoch (1..t_epoch)::

        spike phase (every step): a pre (post) neuron spiking again within the epoch adds its impulse at once:
            x1 = min(x1 + x1_impulse, 127)       (likewise y1); its last spike time tx (ty) is recorded
        learning phase (every t_epoch steps):
            x0 = tx > 0,  y0 = ty > 0                                     (spiked in this epoch)
            h[0] = x1;  for t = 1..t_epoch:
                h[t] = floor(exp(-1/x1_tau) h[t-1]) + (r_x < frac(exp(-1/x1_tau) h[t-1]))   (0 if x1_tau = 0)
                h[t] = min(h[t] + x1_impulse, 127) where tx == t
            x1 = h[t_epoch]                                                (likewise y1 with r_y)
            a term is evaluated with its traces at the dependency's time: x0 -> h[tx], y0 -> h[ty], u0 -> h[t_epoch]
            acc = w << 7;  for each term:  p = D * prod(clip(F, -2**width, 2**width - 1)) * m   (x1, y1: 7; w: 9)
                p = clip((p >> max(0, sum(widths) + 4 - 15)) << (e + 7), -2**15 - 1, 2**15 - 1)
                acc = clip(acc + p, -2**15 - 1, 2**15 - 1)
            w = floor(acc / 128) + (r_w < frac(acc / 128)), then clipped by sign mode to 8 bits

    ``r_x``, ``r_y``, ``r_w`` are the scalar uniform numbers of Lava's seeded generators (``rng_seed``, ``rng_seed +
    2`` and Lava's fixed seed 2 for ``r_w``), reproduced draw for draw by the emulator
    (:mod:`neurodeploy.emulator.plasticity`, which states the exact schedule). Impulses are integers (Lava rounds
    fractional impulses stochastically; not modelled); ``sign_mode`` bounds the learned weights (mixed: [-256,
    255]; excitatory: [0, 255]; inhibitory: [-255, 0]). No graded spikes or bias.

    Optional fields (each makes the op something Lava 0.10's ``LearningDense`` cannot run; the Lava lowering says
    so):

    * ``delays`` (``[n_out, n_in]`` integers in [0, 62]): Loihi 2 semantics -- the delay sits on the dendritic
      (post-synaptic) side: a pre spike at step ``t`` updates the pre trace ``x1`` (and ``tx``) at step ``t`` and
      its current ``w_ij`` reaches neuron ``i`` at ``t + 1 + delays[i, j]`` (the weight read at step ``t``, as
      Loihi reads the synapse when the spike arrives at the core). Learning is unaffected by delays.
    * ``mask`` (``[n_out, n_in]`` booleans): the synapses that exist (Lava ``LearningSparse``: only stored entries
      learn). Weights outside the mask are 0 and stay 0. None: every entry exists (``LearningDense``).
    * ``third_factor``: the name of an :class:`Astrocyte` node whose integer output ``y2`` (one value in [0, 127],
      the same for every post neuron) enters the rule as the factor ``y2`` (Loihi 2's third-factor trace; see
      :mod:`neurodeploy.ir.learning`). Within an epoch, ``y2`` is the value received at the epoch's last step,
      decayed like Lava 0.10's ``Loihi3FLearningRule`` decays it (tau = 2**16 - 1, stochastic rounding with the
      y-trace draw ``r_y``; see :mod:`neurodeploy.emulator.plasticity`).
    """

    dw: str = ""
    x1_impulse: int = 0
    x1_tau: int = 0
    y1_impulse: int = 0
    y1_tau: int = 0
    t_epoch: int = 1
    rng_seed: int = 0
    mask: np.ndarray | None = None
    third_factor: str | None = None

    def output_shape(self, input_shape: Shape | None) -> Shape:
        from neurodeploy.ir.learning import parse_rule

        node = self.origin or None
        parse_rule(self.dw, node)
        for name in ("x1_impulse", "y1_impulse"):
            value = getattr(self, name)
            if int(value) != value or not 0 <= value <= 127:
                raise IRError(f"PlasticDense {name} = {value} must be an integer in [0, 127] (7-bit traces)",
                              node=node, fix="use an integer impulse; fractional impulses are not modelled")
        for name in ("x1_tau", "y1_tau", "rng_seed"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise IRError(f"PlasticDense {name} = {value} must be a non-negative integer", node=node,
                              fix=f"set {name} >= 0 (tau 0 keeps a trace for one step only)")
        if int(self.t_epoch) != self.t_epoch or not 1 <= self.t_epoch <= 63:
            raise IRError(f"PlasticDense t_epoch = {self.t_epoch} must be an integer in [1, 63] (6-bit spike times)",
                          node=node, fix="choose a learning epoch of at most 63 steps")
        if self.num_message_bits or self.bias is not None and np.any(self.bias):
            raise IRError("PlasticDense takes no graded spikes or bias", node=node,
                          fix="use binary spikes and fold the bias into the target neuron")
        shape = np.shape(self.weight)
        for name in ("delays", "mask"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise IRError(f"PlasticDense {name} has shape {np.shape(value)}, the weights {shape}", node=node,
                              fix=f"give one {name[:-1] if name == 'delays' else 'mask'} entry per synapse, "
                                  "[n_out, n_in]")
        if self.delays is not None:
            d = np.asarray(self.delays)
            if d.size and (not np.issubdtype(d.dtype, np.integer) or d.min() < 0 or d.max() > 62):
                raise IRError(f"PlasticDense delays must be integers in [0, 62] (Loihi 2), got [{d.min()}, "
                              f"{d.max()}]", node=node, fix="shorten the delays or use a coarser time step")
        if self.third_factor is not None and not isinstance(self.third_factor, str):
            raise IRError(f"PlasticDense third_factor must name an Astrocyte node, got {self.third_factor!r}",
                          node=node, fix="set third_factor to the Astrocyte node's name")
        if "y2" in {f for t in parse_rule(self.dw, node) for f in t.factors} and self.third_factor is None:
            raise IRError(f"learning rule {self.dw!r} uses y2 but the op has no third_factor", node=node,
                          fix="name the Astrocyte node that provides y2 in third_factor")
        return super().output_shape(input_shape)


@dataclass(frozen=True, eq=False)
class Astrocyte(Op):
    """A global, integer controller of plasticity: reads spike counts every step, outputs the third factor ``y2``.

    It models what Loihi 2's embedded Lakemont (x86) cores would run next to the neuro-cores: a small fixed-point
    program that reads spike counters and writes one 7-bit value into the learning engines of the synapses whose
    :attr:`PlasticDense.third_factor` names it. It estimates the branching factor of its (single) predecessor
    population online and maps it to an LTD modulation ``y2 ~ y2_unit * exp(gain (sigma_hat - target))``.

    Per step ``t`` (after the neurons' update; all integers, int64, every value non-negative unless said), with
    ``s`` the population's spikes, ``E`` = ``excitatory`` (the neurons whose spikes count as ancestors) and ``x``
    the spikes the ``drive`` node (an Input) emitted at step ``t - 1`` (they arrive at the population at ``t``)::

        n   = sum_j s_j[t]                      e = sum_{j in E} s_j[t - 1]            x = sum_k drive_k[t - 1]
        num = g_rec * e;   den = num + g_drive * x
        D   = (n * num * 2**F + den // 2) // den      (0 when den = 0)   credit of recurrent ancestors, F frac. bits
        Dbar = Dbar + ((D - Dbar) >> shift)           (arithmetic shift = floor; tau = 2**shift steps)
        Nbar = Nbar + ((e * 2**F - Nbar) >> shift)
        q   = (Dbar * 2**sigma_bits) // Nbar          (sigma_hat in units of 2**-sigma_bits; floor)
        y2  = table[min(q, len(table) - 1)]           (y2 = neutral while Nbar = 0)

    with ``F = frac_bits``. ``table[q] = clip(round_half_even(y2_unit * exp(clip(gain (q / 2**sigma_bits -
    target), -log_m_max, log_m_max))), 0, 127)`` is built on the host
    (:func:`neurodeploy.emulator.astrocyte.astrocyte_table`) and stored in the op;
    ``neutral = table[round(target * 2**sigma_bits)]`` (m = 1). The state starts at ``Dbar = Nbar = 0`` for every
    sample. ``g_rec`` and ``g_drive`` are the mean total weight one ancestor spike and one drive spike send
    into the population (only their ratio matters; integers in [0, 255]), so ``D`` shares each step's spikes
    between recurrent and external causes in proportion to the drive that arrived -- a population-level version
    of :func:`neurodeploy.families.lsm.branching.branching_factor`'s credit rule.

    The float twin (:class:`neurodeploy.emulator.astrocyte.FloatAstrocyte`) runs the same steps in real numbers
    (no rounding, ``y2 = clip(y2_unit m, 0, 127)``); the emulator's integer runner is
    :class:`neurodeploy.emulator.astrocyte.AstrocyteRunner`. Output shape ``(1,)``.
    """

    excitatory: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    drive: str = ""
    g_rec: int = 1
    g_drive: int = 1
    frac_bits: int = 16
    shift: int = 8
    sigma_bits: int = 6
    target: float = 1.0
    table: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    role: ClassVar[str] = "controller"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        node = self.origin or None
        if input_shape is not None and _size(input_shape) != np.size(self.excitatory):
            raise IRError(f"Astrocyte reads a population of {_size(input_shape)} neurons but its excitatory mask "
                          f"has {np.size(self.excitatory)} entries", node=node,
                          fix="give one excitatory flag per neuron of the population it reads")
        for name in ("g_rec", "g_drive"):
            value = getattr(self, name)
            if int(value) != value or not 0 <= value <= 255:
                raise IRError(f"Astrocyte {name} = {value} must be an integer in [0, 255]", node=node,
                              fix="scale the two gains so that the larger one is 255")
        for name, hi in (("frac_bits", 24), ("shift", 16), ("sigma_bits", 12)):
            value = getattr(self, name)
            if int(value) != value or not 0 <= value <= hi:
                raise IRError(f"Astrocyte {name} = {value} must be an integer in [0, {hi}]", node=node,
                              fix="use the defaults of neurodeploy.emulator.astrocyte.astrocyte_op")
        t = np.asarray(self.table)
        if t.ndim != 1 or not t.size or not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() > 127:
            raise IRError("Astrocyte table must be a non-empty 1-D array of integers in [0, 127] (7-bit y2)",
                          node=node, fix="build it with neurodeploy.emulator.astrocyte.astrocyte_table")
        return (1,)


@dataclass(frozen=True, eq=False)
class Sparse(SynapseOp):
    """Sparse synapses in COO form: ``a[row[k]] += value[k] * s[col[k]]`` (duplicates add, like a CSR sum).

    ``out_shape`` is the target shape, ``in_size`` the flattened source size, ``delays`` (optional) per entry.
    """

    out_shape: Shape = ()
    in_size: int = 0
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    col: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    value: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is not None and _size(input_shape) != self.in_size:
            raise IRError(f"Sparse expects {self.in_size} inputs but receives shape {input_shape}",
                          node=self.origin or None, fix="check the connectivity's source size")
        return tuple(self.out_shape)

    def to_dense(self) -> np.ndarray:
        dense = np.zeros((_size(self.out_shape), self.in_size), dtype=self.value.dtype)
        np.add.at(dense, (self.row, self.col), self.value)
        return dense


@dataclass(frozen=True, eq=False)
class Conv2d(SynapseOp):
    """2-D convolution ``a[o, y, x] = sum_{c,i,j} W[o, c, i, j] * s[c, y*sy + i*dy - py, x*sx + j*dx - px]``.

    ``weight`` is ``[C_out, C_in / groups, kh, kw]``; input shape ``(C_in, H, W)``. ``bias`` float form only.
    """

    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1, 1)))
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is None or len(input_shape) != 3:
            raise IRError(f"Conv2d needs an input of shape (C, H, W), got {input_shape}", node=self.origin or None,
                          fix="give the model's input shape as C,H,W")
        c_in, h, w = input_shape
        c_out, c_per_group, kh, kw = _weight_dims(self, 4, "[C_out, C_in / groups, kh, kw]")
        if c_out % self.groups:
            raise IRError(f"Conv2d has {c_out} output channels, not a multiple of groups = {self.groups}",
                          node=self.origin or None, fix="use a number of groups that divides both channel counts")
        _per_element(self, "bias", c_out, "output channels")
        _per_element(self, "delays", 1, "values")
        if c_per_group * self.groups != c_in:
            raise IRError(f"Conv2d expects {c_per_group * self.groups} input channels, got {c_in}",
                          node=self.origin or None, fix="check the input shape's channel count")
        h_out = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        w_out = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if h_out <= 0 or w_out <= 0:
            raise IRError(f"Conv2d output would be empty for input {input_shape}", node=self.origin or None,
                          fix="use a larger input or a smaller kernel")
        return (int(c_out), int(h_out), int(w_out))


# ------------------------------------------------------------------------------ linear ops (folded into synapses)
@dataclass(frozen=True, eq=False)
class _Pool2d(Op):
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    role: ClassVar[str] = "linear"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is None or len(input_shape) != 3:
            raise IRError(f"{self.op_type} needs an input of shape (C, H, W), got {input_shape}",
                          node=self.origin or None, fix="pool after a convolution or give the input as C,H,W")
        c, h, w = input_shape
        h_out = (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        w_out = (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        if h_out <= 0 or w_out <= 0:
            raise IRError(f"{self.op_type} output would be empty for input {input_shape}", node=self.origin or None,
                          fix="use a larger input or a smaller pooling window")
        return (int(c), int(h_out), int(w_out))


@dataclass(frozen=True, eq=False)
class SumPool2d(_Pool2d):
    """Sum pooling ``y[c, i, j] = sum over the window of x`` (zero padding)."""


@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool2d):
    """Average pooling ``y = SumPool2d(x) / (kh * kw)`` (zero padding counted, as torch's default)."""


@dataclass(frozen=True, eq=False)
class Flatten(Op):
    """Reshape dims ``start_dim .. end_dim`` (batch excluded) into one; data order unchanged (C order)."""

    start_dim: int = 0
    end_dim: int = -1
    role: ClassVar[str] = "linear"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        shape = tuple(input_shape or ())
        if not shape:
            return shape
        for fld in ("start_dim", "end_dim"):
            if not -len(shape) <= getattr(self, fld) < len(shape):
                raise IRError(f"Flatten {fld} = {getattr(self, fld)} is not a dimension of the input {list(shape)}",
                              node=self.origin or None, fix=f"use a {fld} in [-{len(shape)}, {len(shape) - 1}]")
        start = self.start_dim % len(shape)
        end = self.end_dim % len(shape)
        return shape[:start] + (_size(shape[start:end + 1]),) + shape[end + 1:]


@dataclass(frozen=True, eq=False)
class Scale(Op):
    """Element-wise gain ``y = scale * x`` (NIR Scale); folded into the next synapse's weights."""

    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    role: ClassVar[str] = "linear"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is not None:
            _per_element(self, "scale", _size(input_shape), "inputs")
        return tuple(input_shape or np.shape(self.scale))


@dataclass(frozen=True, eq=False)
class Delay(Op):
    """Per-element delay ``y[t] = x[t - delay]`` in steps; folded into the next synapse's per-synapse delays.

    A spike that crosses a Delay of ``d`` and then a synapse of delay ``d'`` reaches its neuron
    ``1 + d + d'`` steps later. Loihi 2 synapses support ``d + d'`` in [0, 62].
    """

    delay: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    role: ClassVar[str] = "linear"

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is not None:
            _per_element(self, "delay", _size(input_shape), "inputs")
        return tuple(input_shape or np.shape(self.delay))


# -------------------------------------------------------------------------------------------------------- neurons
@dataclass(frozen=True, eq=False)
class NeuronOp(Op):
    shape: Shape = ()
    quant: QuantInfo | None = None
    role: ClassVar[str] = "neuron"

    @property
    def quantized(self) -> bool:
        return self.quant is not None

    @property
    def size(self) -> int:
        return _size(self.shape)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is not None and _size(input_shape) != self.size:
            raise IRError(f"{self.op_type} of shape {self.shape} receives input of shape {input_shape}",
                          node=self.origin or None, fix="make the incoming layer's size match the neurons")
        for fld in ("bias", "bias_exp"):
            if hasattr(self, fld):
                _per_element(self, fld, self.size, "neurons")
        return tuple(self.shape)


@dataclass(frozen=True, eq=False)
class CubaLIF(NeuronOp):
    """Current-based LIF neuron in Loihi form.

    Float form (Lava ``PyLifModelFloat``), each step with summed synaptic input ``a``::

        u = u * (1 - du) + a
        v = v * (1 - dv) + u + bias
        s = v > vth;  reset: v = 0 ("zero") or v = v - vth ("subtract") where s

    Quantized form (Lava ``PyLifModelBitAcc``, 24-bit u and v, 12-bit decays)::

        u  = sign(u * (4096 - (du + 1))) * (|u * (4096 - (du + 1))| >> 12)        # rounds toward zero
        u  = u + (a << 6), then one conditional wrap into 24 bits:
             u > 2**23 -> u - 2**24;  u <= -2**23 -> u + 2**24  (all in wrapping int32)
        v  = clip(sign(v * (4096 - dv)) * (|v * (4096 - dv)| >> 12) + u + (bias << bias_exp),
                  -(2**23 - 1), 2**23 - 1)                                       # bias_exp < 0: floor shift
        s  = v > (vth << 6);  reset: v = 0 ("zero", Lava) or v = v - (vth << 6) ("subtract", emulator only)

    ``du``, ``dv`` in [0, 4095]; ``vth`` in [0, 2**17 - 1]; ``bias`` (the mantissa) in [-4096, 4095];
    ``bias_exp`` in [0, 7]. ``readout`` marks a lowered integrator whose spikes nobody consumes.
    """

    du: float = 1.0
    dv: float = 0.0
    vth: float = 1.0
    bias: np.ndarray | float = 0.0
    bias_exp: np.ndarray | int = 0
    reset: str = "zero"
    readout: bool = False


@dataclass(frozen=True, eq=False)
class IF(NeuronOp):
    """Integrate-and-fire: ``v = v + a + bias; s = v > vth; reset`` (float form only).

    The quantizer lowers it to :class:`CubaLIF` with ``du = 4095`` (u keeps only this step's input) and ``dv = 0``.
    """

    vth: float = 1.0
    bias: np.ndarray | float = 0.0
    reset: str = "zero"


@dataclass(frozen=True, eq=False)
class LI(NeuronOp):
    """Leaky integrator readout (no spikes): ``u = u*(1-du) + a; v = v*(1-dv) + u + bias`` (float form only).

    The quantizer lowers it to :class:`CubaLIF` with ``vth = 2**17 - 1`` and ``readout=True``; its output is v.
    """

    du: float = 1.0
    dv: float = 0.0
    bias: np.ndarray | float = 0.0


def neuron_ops() -> tuple[type[Op], ...]:
    return tuple(t for t in OP_TYPES.values() if t.role == "neuron" and not t.__name__.startswith("_"))
