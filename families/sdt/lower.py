"""Whole-model lowering: a trained :class:`~neurodeploy.families.sdt.model.SDTDigits` -> a float neurodeploy IR graph.

Pipeline (every number float64; BN folded with :meth:`ConvBN.folded`)
---------------------------------------------------------------------
* ``input``: Input ``(levels, 8, 8)``, the thermometer spikes (array step ``k`` = model step ``k``, latency 0).
* Every :class:`MultiStepLIF` becomes a :class:`CubaLIF` through :func:`lif_to_ir` (``du = 1``, ``dv = 1/tau``,
  threshold rule of :mod:`.layers`); every weight and bias into it is multiplied by ``input_gain = 1/tau``.
* Residual stream: ``x`` is never a node. It is the sum of *contributors* -- the stem conv (from ``input``), each
  attention output projection (from the attention's output spikes) and each MLP ``fc2`` (from the MLP's hidden
  LIF). A LIF that reads ``x`` gets one synapse per contributor so far (Conv2d for the stem, 1x1 Conv2d for the
  others), and the contributors' biases summed into its own bias. Paths of different depth are aligned by
  per-synapse delays (:func:`neurodeploy.passes.align_delays.align`): the LIF's latency is
  ``L = max(L_contributor) + 1``, the synapse from a contributor at latency ``L_c`` carries ``L - 1 - L_c``
  (delayed convolutions become their exact Sparse matrix: Lava has no delayed Conv2d). A delay beyond Loihi 2's
  0..62 raises CapacityError naming the LIF.
* Attention: :func:`neurodeploy.families.sdt.attention.lower_attention` (the SDT-attention lowering) from the
  block's attention LIF; its output spikes (``latency`` steps later) feed the output projection as a contributor.
* Head: ``head_lif`` (reads ``x``), then the readout ``LI(du = 1, dv = 0)`` integrator, fed by a Dense
  ``W[k, c] / N`` from every token of channel ``c`` (``N = H W`` tokens, the token mean) plus the Linear bias:
  its ``v`` after the model step ``T - 1`` arrived is ``sum_t (W mean_tokens(s_t) + b) = T logits``.
* Biases: every neuron bias is finally moved onto a synapse from one always-on ``clock`` neuron, delayed to the
  neuron's latency (:func:`neurodeploy.passes.align_delays.gate_biases`), so no neuron charges before its data.
* Precision: every mixed-sign synapse is split into an excitatory and an inhibitory half
  (:mod:`neurodeploy.passes.sign_split`; float maths unchanged, one more weight bit on Loihi).

Latency: a LIF at latency ``L`` holds model step ``t`` at array step ``t + L``. Stem-fed LIF: 1; an attention LIF
at ``L_a`` -> its output spikes at ``L_a + latency_attn``; the MLP LIF at ``L_a + latency_attn + 1``, its hidden
LIF one more; the next block's attention LIF one more again; the readout ``L_head + 1``. The whole-model pipeline
latency is :attr:`Lowered.readout_latency`; run ``T + readout_latency`` array steps (zero input after ``T``) and
read the readout's ``v`` at index ``T - 1 + readout_latency`` (:meth:`Lowered.logits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.errors import InputError, IRError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import LI, Conv2d, Dense, Input, Output
from neurodeploy.ir.timing import node_latency
from neurodeploy.passes.align_delays import align, gate_biases, with_delay
from neurodeploy.passes.sign_split import split_signs

INPUT = "input"
READOUT = "readout"
OUTPUT = "logits"
CLOCK = "clock"


@dataclass
class _Contributor:
    """One term of the residual stream: ``conv(source spikes)`` with folded weight/bias, at ``latency``."""

    name: str
    source: str
    latency: int
    weight: np.ndarray  # [C_out, C_in, kh, kw]
    bias: np.ndarray  # [C_out]
    conv: dict[str, Any]


@dataclass
class Lowered:
    """The lowered graph and where to find everything in it."""

    graph: Graph
    steps: int  # T of the torch model
    lif_nodes: dict[str, str]  # torch module path -> IR node (the LIFs this module lowers)
    latency: dict[str, int]  # IR neuron node -> latency (array step of model step 0)
    readout_latency: int
    attention: dict[str, Any] = field(default_factory=dict)  # block path -> AttentionLowering

    @property
    def run_steps(self) -> int:
        return self.steps + self.readout_latency

    @property
    def read_index(self) -> int:
        return self.steps - 1 + self.readout_latency

    def stimulus(self, spikes: np.ndarray) -> np.ndarray:
        """``[B, T, levels, 8, 8]`` -> the same padded with zeros to :attr:`run_steps` steps."""
        spikes = np.asarray(spikes)
        if spikes.ndim < 2 or spikes.shape[1] != self.steps:
            raise InputError(f"the stimulus must have {self.steps} steps (the model's T), got shape "
                             f"{list(spikes.shape)}", fix="encode with the model's steps")
        pad = np.zeros((spikes.shape[0], self.readout_latency, *spikes.shape[2:]), spikes.dtype)
        return np.concatenate([spikes, pad], axis=1)

    def logits(self, readout_v: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Readout ``v`` ``[B, run_steps, classes]`` -> logits ``[B, classes]`` (``v / (T scale)`` at the read index;
        ``scale`` is the quantized readout's ``64 * lambda``, 1 in float)."""
        return np.asarray(readout_v, np.float64)[:, self.read_index] / (self.steps * scale)


def _lif(nodes, name: str, module, shape, origin: str, latency: dict, lat: int, bias=None):
    op = module.to_ir(shape, origin)
    if bias is not None:
        op = op.replace(bias=np.asarray(bias, np.float64).reshape(shape) * module.input_gain)
    nodes[name] = op
    latency[name] = lat
    return op


def _feed(nodes, edges, shapes, target: str, gain: float, contributors: list[_Contributor], delays: dict[str, int]):
    """One synapse per contributor into ``target`` (weights times ``gain``, aligned delays)."""
    for c in contributors:
        syn = f"{c.name}->{target}"
        op = Conv2d(weight=c.weight * gain, origin=c.name, **c.conv)
        nodes[syn] = with_delay(op, delays[c.name], shapes[c.source])
        edges += [(c.source, syn), (syn, target)]


def lower(model, attention_prefix: str = "attn", split: bool = True) -> Lowered:
    """Lower ``model`` (an :class:`SDTDigits`, any dtype; read in float64) to a float IR graph (see above).

    ``split``: split mixed-sign synapses into excitatory + inhibitory halves
    (:func:`neurodeploy.passes.sign_split.split_signs`: one more bit of weight precision on Loihi).
    """
    from neurodeploy.families.sdt.attention import lower_attention

    cfg = model.cfg
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    shapes: dict[str, tuple[int, ...]] = {}
    latency: dict[str, int] = {}
    lif_nodes: dict[str, str] = {}
    attn_info: dict[str, Any] = {}

    nodes[INPUT] = Input(shape=(cfg.levels, 8, 8), origin="input")
    shapes[INPUT] = (cfg.levels, 8, 8)
    latency[INPUT] = 0
    w, b = model.stem.folded()
    stem_conv = model.stem.conv_args
    tok_shape = tuple(int(s) for s in Conv2d(weight=w, **stem_conv).output_shape(shapes[INPUT]))
    conv1x1 = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    stream = [_Contributor("stem", INPUT, 0, w, b, stem_conv)]

    def read_stream(path: str, module) -> str:
        name = path
        lat, delays = align({c.name: c.latency for c in stream}, name)
        bias = sum(c.bias for c in stream)
        _lif(nodes, name, module, tok_shape, path, latency, lat, np.broadcast_to(bias[:, None, None], tok_shape))
        shapes[name] = tok_shape
        _feed(nodes, edges, shapes, name, module.input_gain, stream, delays)
        lif_nodes[path] = name
        return name

    for i, block in enumerate(model.blocks):
        path = f"blocks.{i}"
        a_lif = read_stream(f"{path}.attn_lif", block.attn_lif)
        graph = Graph(nodes, edges)
        low = lower_attention(graph, block.attn, a_lif, f"{path}.{attention_prefix}", steps=cfg.steps)
        nodes, edges = dict(graph.nodes), list(graph.edges)
        for n in low.nodes:
            op = nodes[n]
            if op.role == "neuron":
                shapes[n] = tuple(op.shape)
        attn_info[path] = low
        out_lat = latency[a_lif] + int(low.latency)
        latency[low.spikes] = out_lat
        pw = np.asarray(low.projection_weight, np.float64)
        stream.append(_Contributor(f"{path}.attn.proj", low.spikes, out_lat, pw.reshape(*pw.shape, 1, 1),
                                   np.asarray(low.projection_bias, np.float64), conv1x1))
        m_lif = read_stream(f"{path}.mlp_lif", block.mlp_lif)
        w1, b1 = block.mlp.fc1.folded()
        hidden = f"{path}.mlp.lif"
        h_shape = (w1.shape[0], *tok_shape[1:])
        _lif(nodes, hidden, block.mlp.lif, h_shape, hidden, latency, latency[m_lif] + 1,
             np.broadcast_to(b1[:, None, None], h_shape))
        shapes[hidden] = h_shape
        syn = f"{path}.mlp.fc1->{hidden}"
        nodes[syn] = Conv2d(weight=w1 * block.mlp.lif.input_gain, origin=f"{path}.mlp.fc1", **conv1x1)
        edges += [(m_lif, syn), (syn, hidden)]
        lif_nodes[hidden] = hidden
        w2, b2 = block.mlp.fc2.folded()
        stream.append(_Contributor(f"{path}.mlp.fc2", hidden, latency[hidden], w2, b2, conv1x1))

    head = read_stream("head_lif", model.head_lif)
    n_tok = int(math.prod(tok_shape[1:]))
    wl = model.head.weight.detach().double().cpu().numpy()
    bl = model.head.bias.detach().double().cpu().numpy()
    nodes[READOUT] = LI(shape=(cfg.classes,), du=1.0, dv=0.0, bias=bl, origin="head")
    latency[READOUT] = latency[head] + 1
    syn = f"head->{READOUT}"
    nodes[syn] = Dense(weight=np.repeat(wl / n_tok, n_tok, axis=1), origin="head")
    edges += [(head, syn), (syn, READOUT)]
    nodes[OUTPUT] = Output(shape=(cfg.classes,), origin="logits")
    edges.append((READOUT, OUTPUT))

    graph = gate_biases(Graph(nodes, edges, {"family": "sdt", "attention": cfg.attention, "steps": cfg.steps}),
                        CLOCK)
    if split:
        graph, _ = split_signs(graph)
    graph.validate()
    measured = node_latency(graph)
    for n, lat in latency.items():  # the bookkeeping above must agree with the graph's own timing
        if measured.get(n) != lat:
            raise IRError(f"internal: latency of '{n}' is {measured.get(n)} in the graph, {lat} expected", node=n,
                          fix="report this lowering bug")
    graph.meta["latency_steps"] = latency[READOUT]
    ones = Conv2d(weight=np.ones_like(w), **stem_conv)  # w: the stem kernel; every MAC of one stem conv per step
    graph.meta["stem_macs_per_step"] = int(op_matrix(ones, shapes[INPUT]).nnz)
    return Lowered(graph, cfg.steps, lif_nodes, latency, latency[READOUT], attn_info)
