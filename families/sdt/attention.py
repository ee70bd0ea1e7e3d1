"""Spike-driven self-attention (SDSA v1 and the V2 linear form): torch modules and their exact IR lowering.

Both modules take binary spikes ``x[T, B, C, H, W]`` (the block's attention LIF), form ``Q, K, V`` as
``MultiStepLIF(tau, vth=1)(ConvBN1x1(x))``, compute the attention *core* on those binary tensors, and return the
real-valued output projection ``ConvBN1x1(core)`` (the residual stream adds it). Tokens ``n = h W + w``
(``N = H W``); heads split the channels into ``heads`` contiguous groups of ``d = C / heads``.

Torch maths (followed from BICLab's code, checked with the ``search`` tool)
---------------------------------------------------------------------------
* :class:`SDSAv1` -- Spike-driven Transformer (Yao et al., NeurIPS 2023), BICLab/Spike-Driven-Transformer
  ``MS_SSA_Conv.forward``: ``kv = k.mul(v); kv = kv.sum(dim=-2, keepdim=True); kv = talking_heads_lif(kv);
  x = q.mul(kv)`` with ``talking_heads_lif = MultiStepLIFNode(tau=2.0, v_threshold=0.5)``. The sum runs over the
  tokens for each (head, channel), i.e. for each channel ``c`` (heads only reshape)::

      M[t, c]    = LIF_{tau, 0.5}( sum_n K[t, c, n] V[t, c, n] )               # "talking heads" mask
      out[t,c,n] = Q[t, c, n] M[t, c]

* :class:`LinearAttentionV2` -- Meta-SpikeFormer / Spike-driven Transformer V2 (Yao et al., ICLR 2024),
  BICLab ``MS_Attention_RepConv_qkv_id.forward``: ``x = k.transpose(-2, -1) @ v; x = (q @ x) * self.scale;
  x = self.attn_lif(x)`` with ``scale = 0.125`` and ``attn_lif = MultiStepLIFNode(tau=2.0, v_threshold=0.5)``.
  Per head ``h`` (channels ``h d + i``)::

      out[t, h d + j, n] = LIF_{tau, 0.5}( scale sum_i Q[t, h d + i, n] sum_m K[t, h d + i, m] V[t, h d + j, m] )

Exact lowering onto binary neurons (:func:`lower_attention`)
------------------------------------------------------------
Only existing IR ops (CubaLIF, Sparse, Conv2d 1x1) -- the emulator, the quantizer, Lava (LIF + Sparse /
DelaySparse) and the PyNN netlist all map them. A *coincidence* (AND) neuron is a memoryless CubaLIF
(``du = dv = 1``, bias 0, reset 0): ``v = sum of this step's inputs``; with weights 1 from each of its ``k`` inputs
and threshold ``k - 1/2`` it fires exactly when all ``k`` inputs spike in the same step (``v`` is an integer count
``<= k``). In integers (any scale ``lam`` with integer weight ``W = lam``): ``v = 64 W count`` and
``vth_int = rint((k - 1/2) W)`` lies strictly between ``(k-1) W`` and ``k W`` for ``W >= 1``, so the same holds.

* Q, K, V: three CubaLIF ``(C, H, W)`` fed by 1x1 Conv2d synapses (BN folded, times the input gain ``1/tau``; the
  biases ``b / tau`` on the neurons) through :func:`neurodeploy.families.sdt.layers.lif_to_ir` (real-valued
  membranes: threshold ``nextafter(1, 0)``, exact in float64; after quantization these are approximate like every
  real-valued layer, see :mod:`.layers`). Latency ``+1`` from ``input_node``.
* V1: ``kv_and`` (C, H, W) = AND(K, V) [+2]; ``talking_heads`` (C,) = ``lif_to_ir(tau, 0.5, grid=1/2)`` fed by a
  Sparse summing the N tokens of each channel with weight ``1/tau`` [+3]; ``out_and`` (C, H, W) = AND(Q delayed by
  2 steps, M broadcast to the N tokens) [+4]. **Latency 4.** The ``grid=1/2`` threshold (``theta = 1/4``) is exact
  because the talking-heads membrane is always on the grid: with integer count ``X >= 0``, ``H = V/2 + X/2`` and
  ``V = 0`` by induction (``X >= 1`` gives ``H >= 1/2``, a spike and a reset; ``X = 0`` gives ``H = 0``), so
  ``H = X/2`` and the LIF fires iff ``X >= 1`` -- including the tie ``H = vth`` at ``X = 1``.
* V2 (``v2_method``; ``auto``, the default, takes the one with fewer neurons, see :func:`v2_neurons`). Both feed
  ``attn_lif`` (C, H, W) = ``lif_to_ir(tau, 0.5, grid)`` whose input is exactly ``scale sum_{i,m} Q K V / tau``.

  - ``triple``: ``qkv_and`` (heads N N d d,), neuron ``(h, n, m, i, j)`` = AND(Q[h d+i, n], K[h d+i, m],
    V[h d+j, m]) (threshold 2.5) [+2], a Sparse from every ``(h, n, m, i, j)`` to ``(h d + j, n)`` with weight
    ``scale / tau`` [+3]. **Latency 3.** ``heads N^2 d^2`` neurons, ``4 heads N^2 d^2`` synapses.
  - ``bits`` (bit-plane factorisation of ``K^T V``): ``kv_and`` P(h, m, i, j) = AND(K[h d+i, m], V[h d+j, m])
    [+2]; ``kv_count`` (h, i, j, r), r = 1..N: memoryless, weight 1 from P(h, ., i, j), bias ``-(r-1)``, threshold
    1/2: fires iff ``A[h,i,j] = sum_m P >= r`` (a thermometer code of A) [+3]; ``kv_bits`` (h, i, j, k),
    k < B = bit length of N: weights ``bit_k(r) - bit_k(r-1)`` in {-1, 0, 1} from level r, threshold 1/2 -- the sum
    telescopes to ``bit_k(A)`` in {0, 1} [+4]; ``gate{k}`` (h, n, i, j) = AND(Q[h d+i, n] delayed 3, bit_k) [+5];
    ``attn_lif`` gets ``2**k scale / tau`` from ``gate{k}`` (one Sparse per bit, so the quantizer gives each its
    own exponent) [+6], i.e. ``scale/tau sum_i Q[n,i] sum_k 2**k bit_k(A[i,j]) = scale/tau sum_i Q[n,i] A[i,j]``.
    **Latency 6.** ``heads d^2 (2N + B + N B)`` neurons: ``N / B`` times fewer gating neurons than ``triple``
    (16 tokens: 7488 instead of 16384 per head of d = 8).

  The membrane ``H = sum_k X_k / 2**(k+1)`` over at most ``T`` steps since the last reset is a multiple of
  ``g = scale / tau / 2**(T-1)``; with ``steps = T`` known (argument, else ``graph.meta['steps']``) the threshold
  uses that grid (ties ``H = 0.5`` fire in float and after quantization, see :mod:`.layers`), without it the
  real-valued rule (exact in float64, a tie does not fire after quantization) and
  :attr:`AttentionLowering.notes` says so. With binary neurons the product ``Q (K^T V)`` has to reach the LIF as
  spikes whose weighted sum is the count, so some gate per (n, i, j) and per unit of information about
  ``A[i,j]`` is unavoidable; the bit planes need ``B`` of them, the thermometer/triple forms ``N``.

Dense ANN cost for comparison (:func:`dense_macs`): v1 ``2 C N`` multiply-accumulates per step (``K V`` and the
mask product), v2 ``2 heads N d^2`` (``K^T V`` then ``Q (K^T V)``). :func:`lower_core` lowers the core alone from
three existing Q, K, V nodes (used by the tests); :func:`cost_table` / :func:`format_cost_table` give neurons,
synapses and Loihi 2 cores (from the partition pass's mapping) per block and sub-part; :func:`verify_quantized`
proves from a compiled graph's integers which attention populations are exact after quantization (the core's, when
the quantizer kept one integer scale per population; the Q/K/V LIFs are approximate like every real-valued layer).

torch is imported by this module (like :mod:`.layers`): import it only where torch is installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from neurodeploy.errors import ConversionError, IRError
from neurodeploy.families.sdt.layers import ConvBN, MultiStepLIF, lif_to_ir
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, CubaLIF, Sparse

V1_LATENCY = 4
V2_LATENCY = 3  # triple-AND lowering
V2_BITS_LATENCY = 6  # bit-plane lowering
V2_SCALE = 0.125  # Meta-SpikeFormer's ``self.scale``
ATTN_VTH = 0.5  # talking-heads LIF (v1) and attn_lif (v2) threshold
_Q, _K, _V = "q", "k", "v"


class _QKVAttention(nn.Module):
    """Shared part: ``Q, K, V = LIF(ConvBN1x1(x))`` and the output projection ``ConvBN1x1``."""

    def __init__(self, channels: int, heads: int, tau: float = 2.0):
        super().__init__()
        channels, heads = int(channels), int(heads)
        if heads < 1 or channels % heads:
            raise ConversionError(f"channels = {channels} is not divisible by heads = {heads}",
                                  fix="choose heads dividing channels")
        self.channels, self.heads, self.tau = channels, heads, float(tau)
        self.q_conv = ConvBN(channels, channels, 1)
        self.q_lif = MultiStepLIF(tau, 1.0)
        self.k_conv = ConvBN(channels, channels, 1)
        self.k_lif = MultiStepLIF(tau, 1.0)
        self.v_conv = ConvBN(channels, channels, 1)
        self.v_lif = MultiStepLIF(tau, 1.0)
        self.proj = ConvBN(channels, channels, 1)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Binary ``Q, K, V [T, B, C, H, W]`` from input spikes ``x [T, B, C, H, W]``."""
        return self.q_lif(self.q_conv(x)), self.k_lif(self.k_conv(x)), self.v_lif(self.v_conv(x))

    def attention_spikes(self, x: torch.Tensor) -> torch.Tensor:
        """The core's output spikes ``[T, B, C, H, W]`` (the input of the output projection)."""
        return self.core(*self.qkv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attention_spikes(x))

class SDSAv1(_QKVAttention):
    """Spike-driven self-attention v1 (see the module docstring): ``Q * LIF_0.5(sum_tokens K * V)``."""

    form = "v1"

    def __init__(self, channels: int, heads: int, tau: float = 2.0):
        super().__init__(channels, heads, tau)
        self.talking_heads_lif = MultiStepLIF(tau, ATTN_VTH)

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``out[t, b, c, n] = q[t, b, c, n] * LIF(sum_n k v)[t, b, c]`` on ``[T, B, C, H, W]`` tensors."""
        kv = (k * v).flatten(3).sum(3)[..., None, None]  # [T, B, C, 1, 1]
        return q * self.talking_heads_lif(kv)

class LinearAttentionV2(_QKVAttention):
    """Meta-SpikeFormer linear spike-driven attention: ``LIF_0.5(scale Q (K^T V))`` per head."""

    form = "v2"

    def __init__(self, channels: int, heads: int, tau: float = 2.0, scale: float = V2_SCALE):
        super().__init__(channels, heads, tau)
        self.scale = float(scale)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConversionError(f"attention scale {scale} is not a positive number",
                                  fix="use a positive scale (Meta-SpikeFormer: 0.125)")
        self.attn_lif = MultiStepLIF(tau, ATTN_VTH)

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t, b, c, hh, ww = q.shape
        d = c // self.heads

        def split(s: torch.Tensor) -> torch.Tensor:  # [T, B, C, H, W] -> [T, B, heads, N, d]
            return s.reshape(t, b, self.heads, d, hh * ww).transpose(-1, -2)

        qh, kh, vh = split(q), split(k), split(v)
        x = (qh @ (kh.transpose(-2, -1) @ vh)) * self.scale  # [T, B, heads, N, d]
        x = x.transpose(-1, -2).reshape(t, b, c, hh, ww)
        return self.attn_lif(x)


# ================================================================================================= IR lowering
@dataclass
class AttentionLowering:
    """What :func:`lower_attention` added to the graph.

    ``spikes``: the neuron node holding the core's output spikes ``(C, H, W)``, ``latency`` steps after
    ``input_node``; ``projection_weight [C, C]`` / ``projection_bias [C]``: the BN-folded 1x1 output projection
    (the caller creates its synapses); ``nodes``: every node added; ``parts``: node -> sub-part (``qkv``,
    ``kv_and``, ``talking_heads``, ``mask_and`` for v1; ``qkv``, ``qkv_and``, ``attn_lif`` for the v2 triple-AND
    lowering; ``qkv``, ``kv_and``, ``kv_count``, ``kv_bits``, ``gates``, ``attn_lif`` for v2 bits), a synapse in
    the sub-part of its target neuron; ``cost``: neurons and synapses (stored entries) in total and ``by_part``,
    with the dense ANN multiply-accumulates per step (``dense_macs``); ``qkv``: the Q, K, V neuron nodes;
    ``notes``: how the thresholds were set (read them: they say what is exact after quantization).
    """

    form: str
    spikes: str
    latency: int
    projection_weight: np.ndarray
    projection_bias: np.ndarray
    nodes: list[str]
    cost: dict[str, Any]
    parts: dict[str, str] = field(default_factory=dict)
    qkv: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def dense_macs(form: str, channels: int, heads: int, tokens: int) -> int:
    """Multiply-accumulates per step of the attention core as a dense ANN (see the module docstring)."""
    if form == "v1":
        return 2 * channels * tokens
    d = channels // heads
    return 2 * heads * tokens * d * d


def _sparse(out_size: int, in_size: int, row, col, value, origin: str, delay: int = 0,
            out_shape: tuple[int, ...] | None = None) -> Sparse:
    row = np.asarray(row, np.int64).ravel()
    col = np.asarray(col, np.int64).ravel()
    value = np.broadcast_to(np.asarray(value, np.float64), row.shape).copy()
    delays = np.full(row.size, int(delay), np.int64) if delay else None
    return Sparse(out_shape=out_shape or (out_size,), in_size=in_size, row=row, col=col, value=value,
                  delays=delays, origin=origin)


def coincidence(shape: tuple[int, ...], inputs: int, origin: str) -> CubaLIF:
    """A memoryless AND neuron: fires iff all ``inputs`` (weight 1 each) spike in the same step (threshold
    ``inputs - 1/2``, ``du = dv = 1``, see the module docstring)."""
    return CubaLIF(shape=tuple(int(s) for s in shape), du=1.0, dv=1.0, vth=inputs - 0.5, bias=0.0, reset="zero",
                   origin=origin)


def _check_module(module, c: int, where: str) -> None:
    if not isinstance(module, _QKVAttention):
        raise ConversionError(f"{type(module).__name__} is not an SDSAv1 or LinearAttentionV2 module", node=where,
                              fix="lower only the attention modules of neurodeploy.families.sdt.attention")
    if module.channels != c:
        raise ConversionError(f"the attention has {module.channels} channels but its input node has {c}",
                              node=where, fix="lower the attention from the block LIF that feeds it")


class _Builder:
    """Collects nodes and edges to add to ``graph``; :meth:`commit` adds them and re-indexes the graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.parts: dict[str, str] = {}

    def add(self, name: str, op, part: str, src: str | None = None, dst: str | None = None) -> str:
        if name in self.graph.nodes or name in self.nodes:
            raise IRError(f"node '{name}' already exists", node=name, fix="use another attention prefix")
        self.nodes[name] = op
        self.parts[name] = part
        if src is not None:
            self.edges.append((src, name))
        if dst is not None:
            self.edges.append((name, dst))
        return name

    def commit(self) -> None:
        g = self.graph
        g.nodes.update(self.nodes)
        g.edges.extend(self.edges)
        Graph.__init__(g, g.nodes, g.edges, g.meta)  # re-index predecessors / successors


def _spike_shape(graph: Graph, node: str, what: str) -> tuple[int, int, int]:
    if node not in graph.nodes:
        raise IRError(f"{what} node '{node}' is not in the graph", node=node,
                      fix="lower the attention after the node feeding it was added")
    shape = tuple(int(s) for s in graph.shapes()[node])
    if len(shape) != 3:
        raise ConversionError(f"the attention {what} must be (C, H, W) spikes, got shape {shape}", node=node,
                              fix="feed the attention from a (C, H, W) spiking node")
    return shape


def _lowering(b: _Builder, module, out: str, latency: int, qkv: dict[str, str], notes: list[str],
              tokens: int) -> AttentionLowering:
    b.commit()
    pw, pb = module.proj.folded()
    low = AttentionLowering(form=module.form, spikes=out, latency=latency,
                            projection_weight=pw[:, :, 0, 0].copy(), projection_bias=pb.copy(),
                            nodes=list(b.nodes), cost={}, parts=b.parts, qkv=qkv, notes=notes)
    low.cost = lowering_cost(b.graph, low, heads=module.heads, tokens=tokens)
    if module.form == "v2":
        low.cost["attn_weight"] = module.scale * module.attn_lif.input_gain  # float weight per Q K V coincidence
    return low


def lower_attention(graph: Graph, module, input_node: str, prefix: str, *, steps: int | None = None,
                    v2_method: str = "auto") -> AttentionLowering:
    """Add the exact lowering of ``module`` (SDSAv1 / LinearAttentionV2) to ``graph`` **in place**.

    ``input_node``: the neuron (or Input) node of shape ``(C, H, W)`` holding the attention's input spikes.
    Node names start with ``prefix``. ``steps`` (the model's T; default ``graph.meta['steps']``) sets the v2
    attention LIF's value grid (see the module docstring); v1 does not need it. Returns an
    :class:`AttentionLowering` (latency :data:`V1_LATENCY`, or :data:`V2_LATENCY` / :data:`V2_BITS_LATENCY` for
    the v2 ``triple`` / ``bits`` lowering picked by ``v2_method``). The graph's nodes, edges and
    adjacency are updated in place. The Q/K/V LIFs carry their BN biases: run
    :func:`neurodeploy.passes.align_delays.gate_biases` on the finished graph (as the model lowering does) so they
    start with the data.
    """
    in_shape = _spike_shape(graph, input_node, "input")
    _check_module(module, in_shape[0], prefix)
    b = _Builder(graph)
    qkv = {}
    conv1x1 = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    for key, conv, lif in ((_Q, module.q_conv, module.q_lif), (_K, module.k_conv, module.k_lif),
                           (_V, module.v_conv, module.v_lif)):
        w, bias = conv.folded()
        gain = lif.input_gain
        name = f"{prefix}.{key}_lif"
        op = lif.to_ir(in_shape, origin=name)
        op = op.replace(bias=np.broadcast_to((bias * gain)[:, None, None], in_shape).copy())
        b.add(name, op, "qkv")
        b.add(f"{input_node}->{name}", Conv2d(weight=w * gain, origin=f"{prefix}.{key}_conv", **conv1x1), "qkv",
              input_node, name)
        qkv[key] = name
    out, core_latency, notes = _core(b, module, qkv, in_shape, prefix, steps, v2_method)
    return _lowering(b, module, out, 1 + core_latency, qkv, notes, in_shape[1] * in_shape[2])


def lower_core(graph: Graph, module, q: str, k: str, v: str, prefix: str, *, steps: int | None = None,
               v2_method: str = "auto") -> AttentionLowering:
    """Only the attention core of ``module`` from three existing spike nodes ``q, k, v`` of shape ``(C, H, W)``
    and equal latency (in place, like :func:`lower_attention`). ``latency`` counts from ``q, k, v``:
    ``V1_LATENCY - 1`` / ``V2_LATENCY - 1``."""
    qkv = {_Q: q, _K: k, _V: v}
    shapes = {key: _spike_shape(graph, node, key) for key, node in qkv.items()}
    if len(set(shapes.values())) != 1:
        raise ConversionError(f"q, k, v have different shapes {shapes}", node=prefix,
                              fix="feed the core from three (C, H, W) nodes of the same shape")
    in_shape = shapes[_Q]
    _check_module(module, in_shape[0], prefix)
    b = _Builder(graph)
    out, latency, notes = _core(b, module, qkv, in_shape, prefix, steps, v2_method)
    return _lowering(b, module, out, latency, qkv, notes, in_shape[1] * in_shape[2])


def _core(b: _Builder, module, qkv: dict[str, str], in_shape: tuple[int, int, int], prefix: str,
          steps: int | None, v2_method: str = "auto") -> tuple[str, int, list[str]]:
    """Add the core's neurons and synapses; return (output node, latency from q/k/v, notes)."""
    c, hh, ww = in_shape
    n_tok = hh * ww
    size = c * n_tok
    notes: list[str] = []
    if steps is None:
        steps = b.graph.meta.get("steps")
    if module.form == "v1":
        kv = b.add(f"{prefix}.kv_and", coincidence(in_shape, 2, f"{prefix}.kv_and"), "kv_and")
        eye = np.arange(size)
        for key in (_K, _V):
            b.add(f"{qkv[key]}->{kv}", _sparse(size, size, eye, eye, 1.0, f"{prefix}.kv_and", out_shape=in_shape),
                  "kv_and", qkv[key], kv)
        th_lif = module.talking_heads_lif
        th = b.add(f"{prefix}.talking_heads", lif_to_ir((c,), th_lif.tau, th_lif.vth, f"{prefix}.talking_heads",
                                                        grid=_v1_grid(th_lif)), "talking_heads")
        b.add(f"{kv}->{th}", _sparse(c, size, eye // n_tok, eye, th_lif.input_gain, f"{prefix}.talking_heads"),
              "talking_heads", kv, th)
        out = b.add(f"{prefix}.mask_and", coincidence(in_shape, 2, f"{prefix}.mask_and"), "mask_and")
        b.add(f"{th}->{out}", _sparse(size, c, eye, eye // n_tok, 1.0, f"{prefix}.mask_and", out_shape=in_shape),
              "mask_and", th, out)
        b.add(f"{qkv[_Q]}->{out}", _sparse(size, size, eye, eye, 1.0, f"{prefix}.mask_and", delay=2,
                                           out_shape=in_shape), "mask_and", qkv[_Q], out)
        notes.append("talking-heads LIF: threshold on the value grid 1/2 (its membrane is always count/2), exact in "
                     "float and after quantization")
        return out, V1_LATENCY - 1, notes
    heads = module.heads
    d = c // heads
    method = _v2_method(v2_method, heads, n_tok, d, prefix)
    a_lif = module.attn_lif
    weight = module.scale * a_lif.input_gain
    grid = None
    if steps is not None:
        if int(steps) != steps or steps < 1:
            raise ConversionError(f"steps = {steps} is not a positive number of time steps", node=prefix,
                                  fix="pass the model's T")
        grid = weight / 2.0 ** (int(steps) - 1)
        notes.append(f"attn_lif: threshold on the value grid scale/tau/2**(T-1) = {grid:g} (T = {int(steps)}), "
                     "exact in float and after quantization while the integer state holds that grid")
    else:
        notes.append("attn_lif: T unknown, real-valued threshold rule (exact in float64; after quantization "
                     "a membrane exactly at 0.5 does not fire); pass steps=T for the grid rule")
    out = b.add(f"{prefix}.attn_lif", lif_to_ir(in_shape, a_lif.tau, a_lif.vth, f"{prefix}.attn_lif", grid=grid),
                "attn_lif")
    if method == "triple":
        # neuron (h, n, m, i, j) at flat index (((h N + n) N + m) d + i) d + j
        h, n, m, i, j = (a.ravel() for a in np.meshgrid(np.arange(heads), np.arange(n_tok), np.arange(n_tok),
                                                        np.arange(d), np.arange(d), indexing="ij"))
        flat = np.arange(h.size)
        tri = b.add(f"{prefix}.qkv_and", coincidence((h.size,), 3, f"{prefix}.qkv_and"), "qkv_and")
        sources = {_Q: (h * d + i) * n_tok + n, _K: (h * d + i) * n_tok + m, _V: (h * d + j) * n_tok + m}
        for key, col in sources.items():
            b.add(f"{qkv[key]}->{tri}", _sparse(h.size, size, flat, col, 1.0, f"{prefix}.qkv_and"), "qkv_and",
                  qkv[key], tri)
        b.add(f"{tri}->{out}", _sparse(size, h.size, (h * d + j) * n_tok + n, flat, weight, f"{prefix}.attn_lif",
                                       out_shape=in_shape), "attn_lif", tri, out)
        notes.append("v2 lowering: triple-AND array")
        return out, V2_LATENCY - 1, notes
    _v2_bits(b, qkv, out, heads, n_tok, d, weight, prefix)
    notes.append(f"v2 lowering: bit-plane factorisation (K^T V counts in {_n_bits(n_tok)} bits)")
    return out, V2_BITS_LATENCY - 1, notes


def _n_bits(tokens: int) -> int:
    """Bits of a count in ``0..tokens``."""
    return int(tokens).bit_length()


def v2_neurons(method: str, heads: int, tokens: int, d: int) -> int:
    """Core neurons of the v2 lowering ``method`` (``triple`` or ``bits``), the attention LIF excluded."""
    if method == "triple":
        return heads * tokens * tokens * d * d
    nb = _n_bits(tokens)
    return heads * d * d * (2 * tokens + nb + tokens * nb)


def _v2_method(method: str, heads: int, tokens: int, d: int, where: str) -> str:
    if method == "auto":
        return min(("triple", "bits"), key=lambda m: (v2_neurons(m, heads, tokens, d), m != "triple"))
    if method not in ("triple", "bits"):
        raise ConversionError(f"unknown v2 lowering '{method}'", node=where, fix="use 'auto', 'triple' or 'bits'")
    return method


def _v2_bits(b: _Builder, qkv: dict[str, str], out: str, heads: int, n_tok: int, d: int, weight: float,
             prefix: str) -> None:
    """The bit-plane lowering of ``scale Q (K^T V)`` (module docstring), feeding ``out`` with gain ``weight``."""
    size = heads * d * n_tok
    nb = _n_bits(n_tok)
    # P (h, m, i, j) = K[hd+i, m] AND V[hd+j, m], flat ((h N + m) d + i) d + j
    h, m, i, j = (a.ravel() for a in np.meshgrid(np.arange(heads), np.arange(n_tok), np.arange(d), np.arange(d),
                                                 indexing="ij"))
    p_flat = np.arange(h.size)
    pn = b.add(f"{prefix}.kv_and", coincidence((h.size,), 2, f"{prefix}.kv_and"), "kv_and")
    for key, col in ((_K, (h * d + i) * n_tok + m), (_V, (h * d + j) * n_tok + m)):
        b.add(f"{qkv[key]}->{pn}", _sparse(h.size, size, p_flat, col, 1.0, f"{prefix}.kv_and"), "kv_and",
              qkv[key], pn)
    # thermometer (h, i, j, r-1): fires iff A[h, i, j] = sum_m P >= r, flat ((h d + i) d + j) N + r - 1
    pair = (h * d + i) * d + j  # (h, i, j) of each P entry
    n_pair = heads * d * d
    r = np.arange(1, n_tok + 1)
    th_row = (pair[:, None] * n_tok + (r - 1)[None, :]).ravel()
    th_col = np.repeat(p_flat, n_tok)
    therm = CubaLIF(shape=(n_pair * n_tok,), du=1.0, dv=1.0, vth=0.5,
                    bias=np.tile(-(r - 1).astype(np.float64), n_pair), reset="zero", origin=f"{prefix}.kv_count")
    tn = b.add(f"{prefix}.kv_count", therm, "kv_count")
    b.add(f"{pn}->{tn}", _sparse(n_pair * n_tok, h.size, th_row, th_col, 1.0, f"{prefix}.kv_count"), "kv_count",
          pn, tn)
    # bit (h, i, j, k) of A: sum_r (bit_k(r) - bit_k(r-1)) thermo_r telescopes to bit_k(A), flat (pair) nb + k
    rows, cols, vals = [], [], []
    for k in range(nb):
        c_r = ((r >> k) & 1) - (((r - 1) >> k) & 1)
        nz = np.nonzero(c_r)[0]
        rows.append((np.arange(n_pair)[:, None] * nb + k + 0 * nz[None, :]).ravel())
        cols.append((np.arange(n_pair)[:, None] * n_tok + nz[None, :]).ravel())
        vals.append(np.tile(c_r[nz].astype(np.float64), n_pair))
    bn = b.add(f"{prefix}.kv_bits", CubaLIF(shape=(n_pair * nb,), du=1.0, dv=1.0, vth=0.5, bias=0.0, reset="zero",
                                            origin=f"{prefix}.kv_bits"), "kv_bits")
    b.add(f"{tn}->{bn}", _sparse(n_pair * nb, n_pair * n_tok, np.concatenate(rows), np.concatenate(cols),
                                 np.concatenate(vals), f"{prefix}.kv_bits"), "kv_bits", tn, bn)
    # gate_k (h, n, i, j) = Q[hd+i, n] (delayed 3) AND bit_k(h, i, j); into out[hd+j, n] with weight 2**k
    h, n, i, j = (a.ravel() for a in np.meshgrid(np.arange(heads), np.arange(n_tok), np.arange(d), np.arange(d),
                                                 indexing="ij"))
    g_flat = np.arange(h.size)
    for k in range(nb):
        gn = b.add(f"{prefix}.gate{k}", coincidence((h.size,), 2, f"{prefix}.gate{k}"), "gates")
        b.add(f"{qkv[_Q]}->{gn}", _sparse(h.size, size, g_flat, (h * d + i) * n_tok + n, 1.0, f"{prefix}.gate{k}",
                                          delay=3), "gates", qkv[_Q], gn)
        b.add(f"{bn}->{gn}", _sparse(h.size, n_pair * nb, g_flat, ((h * d + i) * d + j) * nb + k, 1.0,
                                     f"{prefix}.gate{k}"), "gates", bn, gn)
        b.add(f"{gn}->{out}", _sparse(size, h.size, (h * d + j) * n_tok + n, g_flat, weight * 2.0 ** k,
                                      f"{prefix}.attn_lif", out_shape=tuple(b.nodes[out].shape)),
              "attn_lif", gn, out)


def _v1_grid(lif) -> float:
    """The talking-heads membrane grid ``1/tau`` (counts times the input gain); only tau = 2, vth = 1/2 (BICLab's
    setting) is proven to keep the membrane on it (module docstring)."""
    if lif.tau != 2.0 or lif.vth != ATTN_VTH:
        raise ConversionError(f"talking-heads LIF tau = {lif.tau}, vth = {lif.vth}: the exact lowering is proven "
                              "for tau = 2, vth = 0.5 only", fix="use MultiStepLIF(2.0, 0.5) (BICLab's setting)")
    return lif.input_gain


def lowering_cost(graph: Graph, low: AttentionLowering, heads: int, tokens: int) -> dict[str, Any]:
    """Neurons and synapses (stored entries) of a lowering, in total and by sub-part, and ``dense_macs``."""
    from neurodeploy.ir.linear import synapse_entries

    shapes = graph.shapes()
    by_part: dict[str, dict[str, int]] = {}
    for name in low.nodes:
        op = graph.nodes[name]
        row = by_part.setdefault(low.parts[name], {"neurons": 0, "synapses": 0})
        if op.role == "neuron":
            row["neurons"] += op.size
        elif op.role == "synapse":
            (src,) = graph.predecessors(name)
            row["synapses"] += int(synapse_entries(op, shapes[src])[0].size)
    channels = int(low.projection_bias.size)
    return {"neurons": sum(r["neurons"] for r in by_part.values()),
            "synapses": sum(r["synapses"] for r in by_part.values()), "by_part": by_part,
            "dense_macs": dense_macs(low.form, channels, heads, tokens),
            "latency": low.latency}


def cost_table(lowerings: dict[str, AttentionLowering], mapping: dict | None = None) -> list[dict[str, Any]]:
    """One row per (block, sub-part) of every attention: neurons, synapses and, with ``mapping`` (the partition
    pass's ``graph.meta['mapping']`` of a compiled ``loihi2`` artifact), cores; plus a ``total`` row per block.

    Cores count the partition's ``per_core`` entries whose node belongs to the sub-part (the synapses into a
    population live on its cores, so a sub-part's cores hold its neurons and incoming synapses).
    """
    cores: dict[str, int] = {}
    for core in (mapping or {}).get("per_core", []):
        cores[core["node"]] = cores.get(core["node"], 0) + 1
    rows = []
    for path, low in lowerings.items():
        total = {"neurons": 0, "synapses": 0, "cores": 0}
        for part, figs in low.cost["by_part"].items():
            n_cores = sum(cores.get(n, 0) for n, p in low.parts.items() if p == part)
            row = {"block": path, "form": low.form, "part": part, **figs,
                   "cores": n_cores if mapping is not None else None}
            rows.append(row)
            for k in total:
                total[k] += int(row[k] or 0)
        rows.append({"block": path, "form": low.form, "part": "total", **total,
                     "cores": total["cores"] if mapping is not None else None,
                     "dense_macs": low.cost["dense_macs"]})
    return rows


def format_cost_table(rows: list[dict[str, Any]]) -> str:
    """:func:`cost_table` rows as an aligned text table (for run_all)."""
    head = f"{'block':<12} {'form':<4} {'part':<14} {'neurons':>9} {'synapses':>10} {'cores':>6} {'dense MACs':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cores = "-" if r.get("cores") is None else str(r["cores"])
        macs = str(r["dense_macs"]) if "dense_macs" in r else ""
        lines.append(f"{r['block']:<12} {r['form']:<4} {r['part']:<14} {r['neurons']:>9} {r['synapses']:>10} "
                     f"{cores:>6} {macs:>11}")
    return "\n".join(lines)


# ==================================================================================== exactness after quantization
_ACC_MAX = 2**23 - 1


def _int_ratio(fop, qop, in_shape) -> tuple[float | None, float, str]:
    """``(rho, max row sum of |float weights|, problem)``: the integer input per float unit of synapse ``qop``
    (mantissa ``<< weight_exp`` over the float weight, the same for every entry), or None with the reason."""
    from neurodeploy.ir.linear import synapse_entries

    if getattr(qop, "num_message_bits", 0):
        return None, 0.0, "graded spikes"
    f_rows, f_cols, fv, _, shape = synapse_entries(fop, in_shape)
    q_rows, q_cols, qv, _, _ = synapse_entries(qop, in_shape)
    if not (np.array_equal(f_rows, q_rows) and np.array_equal(f_cols, q_cols)):
        return None, 0.0, "the quantized connectivity differs from the float one"
    qv = np.asarray(qv, np.int64)
    exp = int(qop.weight_exp)
    if exp < 0:
        if np.any(qv % (1 << -exp)):
            return None, 0.0, f"weight_exp {exp} floors sums of mantissas not divisible by 2**{-exp}"
        eff = qv >> -exp
    else:
        eff = qv << exp
    fv = np.asarray(fv, np.float64)
    if not fv.size or np.any(fv == 0):
        return None, 0.0, "no weights, or zero float weights stored"
    ratios = eff / fv
    if not np.all(ratios == ratios[0]):
        return None, 0.0, f"integer/float weight ratios differ ({ratios.min():g} .. {ratios.max():g})"
    rows = np.zeros(shape[0])
    np.add.at(rows, f_rows, np.abs(fv))
    return float(ratios[0]), float(rows.max()), ""


def verify_quantized(float_graph: Graph, quant_graph: Graph, low: AttentionLowering,
                     steps: int | None = None) -> dict[str, dict[str, Any]]:
    """Prove, from the integers, which populations of a lowering stay exact after quantization.

    Per neuron node of ``low`` (in ``quant_graph``, compiled from ``float_graph``): ``{"exact": bool, "why": str}``.
    Every incoming synapse (bias synapses from the clock included) must map each float weight ``w`` to the integer
    input ``rho w`` with one ``rho`` for the whole population, so the integer input is exactly ``64 rho x`` for the
    float input ``x``. Then:

    * memoryless populations (float ``du = dv = 1``; AND, thermometer and bit neurons, whose float inputs and
      thresholds are integers and half-integers): Loihi's ``dv = 4095`` keeps a carry ``|c| <= R``,
      ``R = floor(max(64 vth, 64 rho max|x|) / 4096) + 1`` (``max|x|``: the largest row sum of |weights|, for
      the bit neurons 1, the value their telescoping input can take); exact when
      ``64 rho ceil(theta) - R > 64 vth_int >= 64 rho floor(theta) + R`` (every reachable integer input decides
      as in float);
    * the v1 talking-heads LIF (float input ``count / 2``, membrane always 0, module docstring): exact when
      ``0 <= vth_int < rho / 2``;
    * the v2 attention LIF (``dv = 2048``, membrane on the grid ``g = scale / tau / 2**(T-1)``): exact when
      ``64 rho g`` is an integer (the halvings are exact), ``rho (1/2 - g) <= vth_int < rho / 2`` (ties fire, the
      value below does not) and ``64 rho max x`` fits 24 bits;
    * the Q/K/V LIFs have real-valued weights: reported ``exact: False`` ("approximate: real-valued weights").
    """
    out: dict[str, dict[str, Any]] = {}
    steps = steps if steps is not None else float_graph.meta.get("steps")
    shapes = quant_graph.shapes()
    for name in low.nodes:
        fop, qop = float_graph.nodes.get(name), quant_graph.nodes.get(name)
        if fop is None or qop is None or fop.role != "neuron":
            continue
        part = low.parts[name]
        if part == "qkv":
            out[name] = {"exact": False, "why": "approximate: real-valued (rounded) input weights"}
            continue
        rhos, xmax, problem = [], 0.0, ""
        for syn in quant_graph.predecessors(name):
            fs, qs = float_graph.nodes.get(syn), quant_graph.nodes[syn]
            if fs is None or fs.role != "synapse":
                problem = f"incoming '{syn}' is not a synapse of the float graph"
                break
            rho, rmax, problem = _int_ratio(fs, qs, shapes[quant_graph.predecessors(syn)[0]])
            if rho is None:
                problem = f"'{syn}': {problem}"
                break
            rhos.append(rho)
            xmax += rmax
        if part == "kv_bits":
            xmax = 1.0  # the signed level weights telescope: the summed input is bit_k(A), 0 or 1
        if not problem and len(set(rhos)) != 1:
            problem = f"incoming synapses use different integer scales {sorted(set(rhos))}"
        if problem:
            out[name] = {"exact": False, "why": problem}
            continue
        rho, vth = rhos[0], int(qop.vth)
        if np.any(np.asarray(qop.bias) != 0):
            out[name] = {"exact": False, "why": "a neuron bias was left on the population (gate it by the clock)"}
            continue
        if 64 * rho * xmax > _ACC_MAX:
            out[name] = {"exact": False, "why": f"64 rho max|x| = {64 * rho * xmax:g} exceeds the 24-bit state"}
            continue
        if int(qop.du) != 4095:
            out[name] = {"exact": False, "why": f"du = {qop.du}: u must hold only this step's input (4095)"}
            continue
        if float(fop.dv) == 1.0:
            theta = float(fop.vth)
            carry = int(max(64 * vth, 64 * rho * xmax)) // 4096 + 1
            lo, hi = math.floor(theta), math.ceil(theta)
            ok = 64 * rho * hi - carry > 64 * vth >= 64 * rho * lo + carry and lo < theta < hi
            out[name] = {"exact": bool(ok), "why": f"memoryless: rho {rho:g}, vth_int {vth}, carry <= {carry}, float "
                                                   f"threshold {theta:g} between integer inputs {lo} and {hi}"}
        elif part == "talking_heads":
            ok = int(qop.dv) == 2048 and 0 <= vth < rho / 2
            out[name] = {"exact": bool(ok), "why": f"talking heads: dv {qop.dv}, 0 <= vth_int {vth} < rho/2 = "
                                                   f"{rho / 2:g}"}
        elif part == "attn_lif":
            if steps is None:
                out[name] = {"exact": False, "why": "T unknown: the membrane grid (and tie handling) is not fixed"}
                continue
            w = low.cost.get("attn_weight")
            g = w / 2.0 ** (int(steps) - 1)
            q = 64 * rho * g
            ok = int(qop.dv) == 2048 and q == round(q) and q >= 1 and rho * (ATTN_VTH - g) <= vth < rho * ATTN_VTH
            out[name] = {"exact": bool(ok), "why": f"attention LIF: dv {qop.dv}, 64 rho g = {q:g} (integer >= 1), "
                                                   f"rho (1/2 - g) = {rho * (ATTN_VTH - g):g} <= vth_int {vth} < "
                                                   f"rho/2 = {rho * ATTN_VTH:g}"}
        else:
            out[name] = {"exact": False, "why": f"no exactness rule for part '{part}'"}
    return out
