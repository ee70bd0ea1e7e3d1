"""The reference LSM as an IR graph: the float model *is* the graph that gets quantized and deployed.

Graph (node names are fixed; ``N`` reservoir neurons, ``P`` input channels)::

    input  (Input, [P]) --w_in (Sparse, >= 0)--> reservoir (CubaLIF, [N]) --> reservoir_spikes (Output)
    reservoir --rec_exc (Sparse, E rows, > 0, delays)--> reservoir      (recurrent, presynaptic E)
    reservoir --rec_inh (Sparse, I rows, < 0, delays)--> reservoir      (recurrent, presynaptic I)
    [readout="chip"]  reservoir --readout_exc (Dense, >= 0)--> readout (LI, [K]) --> scores (Output, its v)
                      reservoir --readout_inh (Dense, <= 0)--> readout

Arrays keep the connectivity's compact dtypes (int32 indices, float32 weights, int8 delays: 100M synapses in
~1.3 GB); every pass converts what it reads. Splitting the recurrent (and readout) synapses by sign gives every
synapse op one sign, so Loihi uses the excitatory/inhibitory sign modes (8-bit magnitudes; a mixed op keeps 7) and
SpiNNaker one receptor per projection.

Neurons (float CubaLIF, Lava ``PyLifModelFloat`` maths, one step = ``dt``)::

    u[t] = u[t-1] (1 - du) + a[t];   v[t] = v[t-1] (1 - dv) + u[t] + bias;   spike if v > vth, then v = 0

with ``du = 1 - exp(-dt / tau_syn)``, ``dv = 1 - exp(-dt / tau_mem)``, ``vth = 1`` (weights are in threshold units).
There is no refractory period (Loihi's CUBA LIF has none).

On-chip readout (``readout="chip"``): an LI population with ``du = 1, dv = 0`` (u keeps only this step's input,
v never leaks and never spikes), so after the run ``v_k = sum_j W_kj c_j + T b_k / T`` where ``c_j`` is neuron j's
spike count over the steps that reach it. With the host readout's standardised weights folded in
(:func:`neurodeploy.families.lsm.readout.Readout.folded`) ``argmax_k v_k`` is the host readout's decision on the
total counts. The default is the host readout (``readout="host"``): the reservoir's spikes leave the chip and the
linear readout is evaluated on the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neurodeploy.errors import IRError
from neurodeploy.ir import LI, CubaLIF, Dense, Graph, Input, Output, Sparse

from .connectivity import Connectivity, ReservoirSpec, generate

READOUT_MODES = ("host", "chip")


@dataclass(frozen=True)
class NeuronSpec:
    """Reservoir neuron constants (time in steps of ``dt``)."""

    tau_syn: float = 2.0
    tau_mem: float = 20.0
    vth: float = 1.0
    bias: float = 0.0

    @property
    def du(self) -> float:
        return 1.0 - math.exp(-1.0 / self.tau_syn)

    @property
    def dv(self) -> float:
        return 1.0 - math.exp(-1.0 / self.tau_mem)


@dataclass(frozen=True)
class InputSpec:
    """Input projection: every (channel, neuron) pair is connected with probability ``p``; Gamma(``gamma_shape``)
    magnitudes with mean ``weight``, always excitatory; ``to`` = "all" or "E" (only excitatory neurons)."""

    n_in: int = 64
    p: float = 0.2
    weight: float = 1.0
    gamma_shape: float = 2.0
    to: str = "all"
    seed: int = 0


@dataclass
class LSM:
    """A reference liquid state machine: connectivity, input projection and neuron constants."""

    conn: Connectivity
    w_in_row: np.ndarray
    w_in_col: np.ndarray
    w_in_value: np.ndarray
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    n_in: int = 64

    @property
    def n(self) -> int:
        return self.conn.n

    def with_recurrent_weights(self, weight: np.ndarray) -> LSM:
        return LSM(self.conn.with_weights(weight), self.w_in_row, self.w_in_col, self.w_in_value, self.neuron,
                   self.n_in)

    def graph(self, readout: str = "host", readout_weights: np.ndarray | None = None,
              readout_bias: np.ndarray | None = None, steps: int | None = None) -> Graph:
        """The float IR graph. ``readout="chip"`` adds the LI readout with ``readout_weights`` ``[K, N]`` and
        ``readout_bias`` ``[K]`` (a total over the run: ``steps`` spreads it evenly over the steps)."""
        if readout not in READOUT_MODES:
            raise IRError(f"readout '{readout}' is not one of {READOUT_MODES}", fix="use 'host' or 'chip'")
        n = self.n
        c = self.conn
        masks = c.split_by_sign()
        nodes = {
            "input": Input(shape=(self.n_in,)),
            "w_in": Sparse(out_shape=(n,), in_size=self.n_in, row=self.w_in_row, col=self.w_in_col,
                           value=self.w_in_value, origin="lsm input projection"),
            "reservoir": CubaLIF(shape=(n,), du=self.neuron.du, dv=self.neuron.dv, vth=self.neuron.vth,
                                 bias=self.neuron.bias, reset="zero", origin="lsm reservoir"),
        }
        edges = [("input", "w_in"), ("w_in", "reservoir")]
        for name, key in (("rec_exc", "E"), ("rec_inh", "I")):
            m = masks[key]
            if not m.any():
                continue
            delays = c.delay[m]
            nodes[name] = Sparse(out_shape=(n,), in_size=n, row=c.post[m], col=c.pre[m], value=c.weight[m],
                                 delays=delays if delays.any() else None,  # all zero: a plain Sparse (NIR-able)
                                 origin=f"lsm recurrent {key}->*")
            edges += [("reservoir", name), (name, "reservoir")]
        nodes["reservoir_spikes"] = Output()
        edges.append(("reservoir", "reservoir_spikes"))
        if readout == "chip":
            if readout_weights is None or steps is None:
                raise IRError("an on-chip readout needs its trained weights and the run length",
                              node="readout", fix="train the readout first (readout.fit) and pass steps")
            w = np.asarray(readout_weights, np.float64)
            b = np.zeros(w.shape[0]) if readout_bias is None else np.asarray(readout_bias, np.float64)
            nodes["readout"] = LI(shape=(w.shape[0],), du=1.0, dv=0.0, bias=b / steps, origin="lsm linear readout")
            for name, part in (("readout_exc", np.maximum(w, 0.0)), ("readout_inh", np.minimum(w, 0.0))):
                if np.any(part):
                    nodes[name] = Dense(weight=part, origin=f"lsm readout ({name[8:]})")
                    edges += [("reservoir", name), (name, "readout")]
            nodes["scores"] = Output()
            edges.append(("readout", "scores"))
        return Graph(nodes, edges, meta={"family": "lsm", "neurons": n, "synapses": c.synapses,
                                         "readout": readout}).validate()


def input_projection(spec: InputSpec, excitatory: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row = reservoir neuron, col = input channel, value) of the input projection (see :class:`InputSpec`)."""
    rng = np.random.default_rng([spec.seed, 4])
    n = excitatory.size
    rows, cols = [], []
    for start in range(0, n, 1 << 16):  # chunks of neurons: no [N, P] matrix for large reservoirs
        stop = min(n, start + (1 << 16))
        mask = rng.random((stop - start, spec.n_in)) < spec.p
        if spec.to == "E":
            mask &= excitatory[start:stop, None]
        row, col = np.nonzero(mask)
        rows.append((row + start).astype(np.int32))
        cols.append(col.astype(np.int32))
    row, col = np.concatenate(rows), np.concatenate(cols)
    value = rng.gamma(spec.gamma_shape, spec.weight / spec.gamma_shape, size=row.size)
    return row, col, value.astype(np.float32)


def build(reservoir: ReservoirSpec | None = None, inputs: InputSpec | None = None,
          neuron: NeuronSpec | None = None) -> LSM:
    """Generate a reference LSM (connectivity by :func:`~.connectivity.generate`)."""
    reservoir = reservoir or ReservoirSpec()
    inputs = inputs or InputSpec()
    conn = generate(reservoir)
    row, col, value = input_projection(inputs, conn.excitatory)
    return LSM(conn, row, col, value, neuron or NeuronSpec(), inputs.n_in)
