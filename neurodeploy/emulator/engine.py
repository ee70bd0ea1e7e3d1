"""The emulator: executes an IR graph step by step with Lava's timing and either Loihi integer or float maths.

Step semantics (identical to a Lava network of RingBuffer -> Dense/Sparse -> LIF processes run for T steps):

1. every synapse delivers the activation it buffered on the previous step (slot 0 of its delay line);
2. every neuron sums what it received into ``a_in`` and updates u, v and its spikes (Lava ``run_spk``);
3. every source emits its step-``t`` spikes: an Input emits stimulus column ``t - 1`` (RingBuffer), a neuron the
   spikes of step 2;
4. every synapse accumulates ``W @ s`` per delay bucket into its delay line (slot ``d`` is delivered ``1 + d``
   steps later) -- so a stimulus column ``k`` reaches the first neuron layer at step ``k + 2``.

Recorded arrays are ``[B, T, *shape]`` with index ``t - 1`` holding step ``t``: u and v after the reset, exactly
what a Lava ``Monitor`` probing ``u``/``v``/``s_out`` reports. The batch axis is vectorised: samples never interact.

Integer mode runs quantized graphs (every synapse and neuron carries ``quant``); float mode runs float graphs
(Lava ``PyLifModelFloat`` maths; IF is CubaLIF with du = 1, dv = 0; LI never spikes and its output is v).
Graphs must be folded (:func:`neurodeploy.ir.checks.require_folded`; fold them with
:func:`neurodeploy.passes.fold.fold_linear` first): the emulator never runs a pass.

Two engines compute the same numbers: ``numpy`` (this module, vectorised over the batch) and ``numba``
(:mod:`neurodeploy.emulator.kernel`, all steps in one compiled function). In integer mode both hold the same integers;
in float mode both perform the same IEEE operations in the same order (each delay bucket's ``W @ s`` summed row by
row over the active columns in increasing order, starting from 0; no BLAS), so they agree bit for bit too.
``engine="auto"`` picks numba when numba is importable, the graph has no graded synapse or PlasticDense and (float
mode) the stimulus is binary, else numpy, and records why in :attr:`SimResult.engine_note`. A third engine,
``torch`` (:mod:`neurodeploy.emulator.torch_engine`, integer mode, on ``device`` ``cpu`` or ``cuda``), holds the
numba kernel's integers too; ``auto`` takes it only when a ``device`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from neurodeploy.emulator.astrocyte import AstrocyteRunner
from neurodeploy.emulator.plasticity import PlasticRunner
from neurodeploy.errors import InputError, UnsupportedOpError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.checks import require_folded
from neurodeploy.ir.columns import column_buckets, entry_arrays
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.linear import inferred_sign_mode, synapse_entries
from neurodeploy.ir.neurons import compartment
from neurodeploy.ir.ops import Astrocyte, PlasticDense, SynapseOp

RECORDABLE = ("spikes", "u", "v")
ENGINES = ("auto", "numpy", "numba", "torch")
#: Below this fraction of active inputs a synapse gathers only the active columns (event-driven path).
EVENT_FRACTION = 0.05
#: Integers of magnitude below 2**24 are exact in float32 (24-bit significand), and so are their partial sums.
FLOAT32_EXACT = float(2**24)
#: Above this density a synapse matrix is stored dense and multiplied with BLAS.
DENSE_DENSITY = 0.25


@dataclass
class SimResult:
    """What a run produced. ``outputs[name]`` is ``[B, T, *shape]``; ``recorded['<node>/<field>']`` likewise.

    ``spike_counts[node]`` is the total number of spikes of a neuron node; ``synaptic_ops[synapse]`` the number of
    synaptic events (a spike crossing one synapse) the synapse processed, summed over batch and steps.
    ``engine`` is the engine that ran (``numpy``, ``numba`` or ``torch``); ``engine_note`` says why
    ``engine="auto"`` chose numpy (empty otherwise).
    """

    outputs: dict[str, np.ndarray]
    recorded: dict[str, np.ndarray] = field(default_factory=dict)
    spike_counts: dict[str, int] = field(default_factory=dict)
    synaptic_ops: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    batch: int = 0
    arithmetic: str = "int"
    engine: str = "numpy"
    engine_note: str = ""
    #: final weights ``[B, n_out, n_in]`` of every PlasticDense node (integer runs; see emulator.plasticity)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def _row_abs_sum_max(m: sp.csr_matrix) -> float:
    """Largest ``sum_j |W_ij|``: a bound on any partial sum of ``W @ s`` for binary ``s``."""
    return float(abs(m).sum(axis=1).max()) if m.nnz else 0.0


class _SynapseRunner:
    """A synapse op prepared for execution: its delay buckets (:mod:`neurodeploy.ir.columns`) and delay line.

    In integer mode the bucket weights are Lava's effective weights: each summed weight rounded (``rint``), then
    clipped and truncated once by :func:`~neurodeploy.ir.arithmetic.effective_weights`. Entries whose effective
    weight is 0 stay stored (they add nothing). The numpy engine's scipy matrices are built on first use only.
    """

    def __init__(self, name: str, op: SynapseOp, in_shape: tuple[int, ...], integer: bool):
        self.name = name
        self.n_in = int(math.prod(in_shape))
        rows, cols, values, delays, shape = entry_arrays(op, in_shape)
        self.n_out = shape[0]
        self.columns = column_buckets(rows, cols, values, delays, shape[0], shape[1], node=name)
        self.integer = integer
        self.weight_exp = int(op.weight_exp) if integer else 0
        self.graded = op.num_message_bits > 0
        self.max_delay = self.columns.max_delay
        self.fanout = self.columns.fanout
        if integer:
            sign_mode = op.sign_mode
            if sign_mode is None:  # Lava determines it once, from the whole (summed) matrix
                sign_mode = inferred_sign_mode(*synapse_entries(op, in_shape)[:3], shape)
            vals = np.rint(self.columns.vals, out=self.columns.vals)
            self.columns.vals = ar.effective_weights(vals, sign_mode, op.num_weight_bits, dtype=np.int16)
        self._buckets = None

    @property
    def buckets(self) -> list[tuple[int, np.ndarray | sp.csr_matrix, sp.csc_matrix | None]]:
        """The numpy engine's ``(delay, matrix, csc)`` per bucket: CSR + CSC, or (integer mode) a dense array (csc
        ``None``) above ``DENSE_DENSITY``; float32 when every partial sum is an integer below 2**24 (exact), else
        float64."""
        if self._buckets is None:
            self._buckets = []
            for b, d in enumerate(self.columns.delays):
                csc = self.columns.scipy(b)
                csc.eliminate_zeros()
                if self.integer and not self.graded and _row_abs_sum_max(csc) < FLOAT32_EXACT:
                    csc = csc.astype(np.float32)  # every partial sum is an integer below 2**24: float32 is exact
                # float mode keeps sparse products (row sums in column order, as the compiled kernel): no BLAS
                dense = self.integer and csc.nnz > DENSE_DENSITY * max(1, self.n_out * self.n_in)
                self._buckets.append((int(d), csc.toarray() if dense else csc.tocsr(), None if dense else csc))
        return self._buckets

    @property
    def dtype(self):
        """The dtype spikes are cast to before ``W @ s`` (that of the buckets)."""
        return np.result_type(*[b[1].dtype for b in self.buckets]) if self.buckets else np.float64

    def accumulate(self, s: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``W_d @ s`` for each delay bucket ``d``; ``s`` is ``[B, n_in]`` float64; result ``[B, n_out]``."""
        active = np.flatnonzero(s.any(axis=0))
        out = []
        for d, m, csc in self.buckets:
            if active.size == 0:
                acc = np.zeros((s.shape[0], self.n_out))
            elif active.size < EVENT_FRACTION * self.n_in:
                sub = m[:, active] if csc is None else csc[:, active]
                acc = np.asarray((sub @ s[:, active].T).T)
            elif csc is None:
                acc = s @ m.T
            else:
                acc = np.asarray((m @ s.T).T)
            out.append((d, acc))
        return out


class _NeuronRunner:
    """A neuron op prepared for execution: its compartment (:func:`neurodeploy.ir.neurons.compartment`, the
    neuron-model table's one description of what an engine runs) in the arithmetic of the run."""

    def __init__(self, name: str, op, integer: bool):
        self.name = name
        self.shape = tuple(op.shape)
        self.size = int(math.prod(self.shape))
        c = compartment(op, integer, name)
        self.du, self.dv, self.vth, self.bias = c.du, c.dv, c.vth, c.bias
        self.reset, self.readout = c.reset, c.readout
        self.reset_interval, self.reset_offset = c.reset_interval, c.reset_offset

    def resets_at(self, t: int) -> bool:
        """Whether u and v are set to 0 before the update of Lava step ``t`` (1-based): ``t mod reset_interval ==
        reset_offset mod reset_interval`` (Lava 0.10 ``PyLifResetModelBitAcc.run_spk``); never for interval 0."""
        i = self.reset_interval
        return i > 0 and t % i == self.reset_offset % i

    def step_int(self, u, v, a_in):
        return ar.lif_step(u, v, a_in, self.du, self.dv, self.bias, self.vth, self.reset)

    def step_float(self, u, v, a_in):
        u = u * (1.0 - self.du) + a_in
        v = v * (1.0 - self.dv) + u + self.bias
        spikes = v > self.vth
        if self.reset == "zero":
            v = np.where(spikes, 0.0, v)
        else:
            v = np.where(spikes, v - self.vth, v)
        return u, v, spikes


class Program:
    """A graph prepared for repeated runs. Build once with :meth:`from_graph`, then call :meth:`run`."""

    def __init__(self, graph: Graph, arithmetic: str = "auto"):
        require_folded(graph)
        graph.validate()
        if arithmetic == "auto":
            arithmetic = "int" if graph.quantized else "float"
        if arithmetic not in ("int", "float"):
            raise InputError(f"arithmetic must be 'int', 'float' or 'auto', not {arithmetic!r}")
        self.graph = graph
        self.integer = arithmetic == "int"
        self.arithmetic = arithmetic
        shapes = graph.shapes()
        self.shapes = shapes
        self.inputs = graph.inputs
        self.neurons = {n: _NeuronRunner(n, op, self.integer) for n, op in graph.nodes.items() if op.role == "neuron"}
        self.synapses = {}
        for name, op in graph.nodes.items():
            if isinstance(op, PlasticDense) and self.integer:  # on-chip learning (emulator.plasticity)
                self.synapses[name] = PlasticRunner(name, op)
            elif isinstance(op, SynapseOp):  # float mode runs a PlasticDense with frozen weights (SimResult.note)
                (src,) = graph.predecessors(name)
                self.synapses[name] = _SynapseRunner(name, op, shapes[src], self.integer)
        self.syn_source = {n: graph.predecessors(n)[0] for n in self.synapses}
        self.neuron_inputs = {n: [p for p in graph.predecessors(n) if p in self.synapses] for n in self.neurons}
        self.outputs = {n: graph.predecessors(n)[0] for n in graph.outputs}
        # Astrocyte controllers (integer mode; emulator.astrocyte): stepped once per step after the neurons, their
        # y2 feeds the PlasticDense ops that name them as third_factor
        self.controllers = {n: AstrocyteRunner(n, op) for n, op in graph.nodes.items()
                            if isinstance(op, Astrocyte) and self.integer}
        for name, syn in self.synapses.items():
            factor = syn.op.third_factor if isinstance(syn, PlasticRunner) else None
            if factor is not None and self.integer and factor not in self.controllers:
                raise UnsupportedOpError(f"third_factor '{factor}' is not an Astrocyte node of the graph", node=name,
                                         fix="add the Astrocyte node or clear third_factor")
        for name, ctl in self.controllers.items():
            if ctl.op.drive not in graph.nodes or graph.nodes[ctl.op.drive].role not in ("io", "neuron"):
                raise UnsupportedOpError(f"Astrocyte drive '{ctl.op.drive}' is not an Input or neuron node",
                                         node=name, fix="name the Input whose spikes drive the population")

    def _check_inputs(self, spikes) -> dict[str, np.ndarray]:
        if not isinstance(spikes, Mapping):
            if len(self.inputs) != 1:
                raise InputError(f"the model has inputs {self.inputs}; pass a dict name -> array",
                                 fix="store one array per input name in the .npz")
            spikes = {self.inputs[0]: spikes}
        arrays = {}
        batch = steps = None
        for name in self.inputs:
            if name not in spikes:
                raise InputError(f"no stimulus given for input '{name}'", fix=f"add an array named '{name}'")
            x = np.asarray(spikes[name])
            shape = self.shapes[name]
            if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != tuple(shape):
                raise InputError(f"input '{name}' must be shaped [B, T, {', '.join(map(str, shape))}], "
                                 f"got {list(x.shape)}", fix="reshape the stimulus to [batch, time, *input_shape]")
            if batch is None:
                batch, steps = x.shape[:2]
                if batch < 1 or steps < 1:
                    raise InputError(f"input '{name}' is empty (shape {list(x.shape)})",
                                     fix="give at least one sample and one time step")
            elif x.shape[:2] != (batch, steps):
                raise InputError(f"input '{name}' has batch/time {x.shape[:2]}, others have {(batch, steps)}")
            if self.integer:  # spikes: checked 0/1 (NaN fails too), held as uint8 by both engines
                if x.size and not ((x == 0) | (x == 1)).all():
                    raise InputError(f"input '{name}' holds values other than 0 and 1; Loihi inputs are spikes",
                                     fix="encode the stimulus as binary spike trains")
                arrays[name] = np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1), dtype=np.uint8)
                continue
            if not np.all(np.isfinite(x.astype(np.float64))):
                raise InputError(f"input '{name}' holds NaN or infinite values", fix="clean the stimulus")
            arrays[name] = x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64)
        return arrays

    def pick_engine(self, engine: str = "auto", device: str | None = None) -> tuple[str, str]:
        """The engine a run with ``engine`` uses, and why ``auto`` fell back to numpy (``""`` otherwise).

        ``numba`` asked for where it cannot run (float mode, graded synapses, numba not importable) is an error.
        ``torch`` runs when asked for, or for ``auto`` with a ``device``; where it cannot run it is an error.
        """
        if engine not in ENGINES:
            raise InputError(f"engine must be one of {ENGINES}, not {engine!r}")
        if device is not None and engine not in ("auto", "torch"):
            raise InputError(f"device {device!r} applies to the torch engine, not engine={engine!r}",
                             fix="use engine='torch' (or 'auto') with a device, or drop the device")
        if engine == "torch" or device is not None:
            from neurodeploy.emulator import torch_engine

            problem = torch_engine.unsupported(self) or torch_engine.torch_problem()
            if problem is not None:
                raise UnsupportedOpError(f"engine='torch' cannot run this program: {problem}",
                                         fix="use engine='numba', 'numpy' or 'auto' without a device")
            return "torch", ""
        if engine == "numpy":
            return "numpy", ""
        from neurodeploy.emulator import kernel

        problem = kernel.unsupported(self) or kernel.numba_problem()
        if problem is None:
            return "numba", ""
        if engine == "numba":
            raise UnsupportedOpError(f"engine='numba' cannot run this program: {problem}",
                                     fix="use engine='numpy' or 'auto'" + (" (or install numba)" if "numba is not"
                                                                           in problem else ""))
        return "numpy", problem

    def run(self, spikes, record: Iterable[str] = (), nodes: Iterable[str] | None = None,
            progress: bool = False, engine: str = "auto", device: str | None = None) -> SimResult:
        """Run on ``spikes`` (``[B, T, *input_shape]`` or a dict per input) and return a :class:`SimResult`.

        ``record`` picks fields among ``spikes``, ``u``, ``v``; ``nodes`` restricts recording to those neurons.
        ``engine``: ``numpy``, ``numba``, ``torch`` (on ``device``, default cpu) or ``auto`` (see
        :meth:`pick_engine`); all give identical results.
        """
        chosen, note = self.pick_engine(engine, device)
        record = tuple(record)
        bad = [f for f in record if f not in RECORDABLE]
        if bad:
            raise InputError(f"cannot record {bad}; choose among {RECORDABLE}")
        inputs = self._check_inputs(spikes)
        if chosen == "numba" and not self.integer:
            from neurodeploy.emulator import kernel

            if not kernel.binary_inputs(inputs):
                problem = "float stimuli with values other than 0 and 1 run on the numpy engine only"
                if engine == "numba":
                    raise UnsupportedOpError(f"engine='numba' cannot run this stimulus: {problem}",
                                             fix="use engine='numpy' or 'auto', or binary spike trains")
                chosen, note = "numpy", problem
        batch, steps = next(iter(inputs.values())).shape[:2]
        rec_nodes = list(self.neurons) if nodes is None else list(nodes)
        for n in rec_nodes:
            if n not in self.neurons:
                raise InputError(f"'{n}' is not a neuron node", fix=f"choose among {sorted(self.neurons)}")
        state_dtype = np.int32 if self.integer else np.float64  # Lava stores u and v in int32
        rec_dtype = {"spikes": np.uint8, "u": state_dtype, "v": state_dtype}
        wanted = {(n, f) for n in rec_nodes for f in record}
        for src in self.outputs.values():
            if src in self.neurons:
                wanted.add((src, "v" if self.neurons[src].readout else "spikes"))
        traces = {f"{n}/{f}": np.zeros((batch, steps, self.neurons[n].size), rec_dtype[f]) for n, f in wanted}
        neuron_traces = {n: [(f, traces[f"{n}/{f}"]) for f in RECORDABLE if f"{n}/{f}" in traces]
                         for n in self.neurons}
        counts = {n: np.zeros(p.size, np.int64) for n, p in self.neurons.items()}
        if chosen == "numba":
            from neurodeploy.emulator import kernel

            kernel.run(self, inputs, traces, counts, progress)
        elif chosen == "torch":
            from neurodeploy.emulator import torch_engine

            torch_engine.run(self, inputs, traces, counts, progress, device)
        else:
            self._run_numpy(inputs, neuron_traces, counts, batch, steps, progress)
        spike_counts = {n: int(c.sum()) for n, c in counts.items()}
        syn_ops = {}
        for name, syn in self.synapses.items():
            src = self.syn_source[name]
            per_neuron = (inputs[src] != 0).sum(axis=(0, 1)) if src in inputs else counts[src]
            syn_ops[name] = int(per_neuron @ syn.fanout)
        result = self._result(traces, record, rec_nodes, spike_counts, syn_ops, batch, steps, inputs)
        result.engine, result.engine_note = chosen, note
        result.weights = {n: s.w.copy() for n, s in self.synapses.items() if isinstance(s, PlasticRunner)}
        frozen = [n for n, op in self.graph.nodes.items() if isinstance(op, PlasticDense) and not self.integer]
        if frozen:
            result.engine_note = (note + "; " if note else "") + f"float mode: PlasticDense {frozen} ran with " \
                "frozen weights (learning runs in integer mode only)"
        return result

    def _run_numpy(self, inputs, neuron_traces, counts, batch, steps, progress) -> None:
        """The numpy engine: steps 1-4 of the module docstring, vectorised over the batch; fills traces, counts."""
        state_dtype = np.int32 if self.integer else np.float64  # Lava stores u and v in int32
        u = {n: np.zeros((batch, p.size), state_dtype) for n, p in self.neurons.items()}
        v = {n: np.zeros((batch, p.size), state_dtype) for n, p in self.neurons.items()}
        line_dtype = np.int64 if self.integer else np.float64
        # delay lines as rings [slot, B, n_out]: slot (head + d) % len is delivered d steps after the next one
        rings = {n: np.zeros((s.max_delay + 1, batch, s.n_out), line_dtype) for n, s in self.synapses.items()}
        heads = {n: 0 for n in self.synapses}
        plastic = {n: s for n, s in self.synapses.items() if isinstance(s, PlasticRunner)}
        for syn in plastic.values():
            syn.reset(batch, steps)
        y2: dict[str, np.ndarray] = {}
        for ctl in self.controllers.values():
            ctl.reset(batch)
        steps_iter = range(steps)
        if progress:
            from tqdm import tqdm

            steps_iter = tqdm(steps_iter, desc="emulating", unit="step")
        current: dict[str, np.ndarray] = {}
        for k in steps_iter:
            for name, neuron in self.neurons.items():
                incoming = self.neuron_inputs[name]
                if incoming:
                    a_in = sum(rings[syn][heads[syn]] for syn in incoming)
                else:
                    a_in = np.zeros((batch, neuron.size), line_dtype)
                if neuron.resets_at(k + 1):  # periodic state reset, before the update (Lava step t = k + 1)
                    u[name] = np.zeros_like(u[name])
                    v[name] = np.zeros_like(v[name])
                step = neuron.step_int if self.integer else neuron.step_float
                u[name], v[name], s = step(u[name], v[name], a_in)
                current[name] = s
                values = {"spikes": s, "u": u[name], "v": v[name]}
                for fld, trace in neuron_traces[name]:
                    trace[:, k] = values[fld]
                counts[name] += s.sum(axis=0)
            for name, ctl in self.controllers.items():  # reads this step's spikes, like a Lakemont core's counters
                drive = inputs[ctl.op.drive][:, k] if ctl.op.drive in inputs else current[ctl.op.drive]
                y2[name] = ctl.step(current[self.graph.predecessors(name)[0]], drive)
            for name, syn in self.synapses.items():
                src = self.syn_source[name]
                s = inputs[src][:, k] if src in inputs else current[src]
                if self.integer and not syn.graded:
                    s = s != 0
                s = s.astype(syn.dtype)
                ring, head = rings[name], heads[name]
                ring[head] = 0
                head = heads[name] = (head + 1) % ring.shape[0]
                for d, acc in syn.accumulate(s):
                    slot = ring[(head + d) % ring.shape[0]]
                    if self.integer:
                        acc = acc.astype(np.int64)  # exact: integer sums held in float64 (< 2**53)
                        slot += acc << syn.weight_exp if syn.weight_exp >= 0 else acc >> -syn.weight_exp
                    else:
                        slot += acc
                if name in plastic:  # after the forward pass (Lava run_spk), this step's pre/post spikes drive
                    syn.observe(k + 1, s != 0, current[self.graph.successors(name)[0]],  # traces and learning
                                y2.get(syn.op.third_factor))

    def _result(self, traces, record, rec_nodes, spike_counts, syn_ops, batch, steps, inputs) -> SimResult:
        outputs = {}
        for out, src in self.outputs.items():
            if src in inputs:
                data = inputs[src].astype(np.uint8)
            elif self.neurons[src].readout:
                data = traces[f"{src}/v"]
            else:
                data = traces[f"{src}/spikes"]
            outputs[out] = data.reshape(batch, steps, *self.shapes[src])
        recorded = {}
        for n in rec_nodes:
            for f in record:
                recorded[f"{n}/{f}"] = traces[f"{n}/{f}"].reshape(batch, steps, *self.neurons[n].shape)
        return SimResult(outputs, recorded, spike_counts, syn_ops, steps, batch, self.arithmetic)


def simulate(graph: Graph, spikes, record: Iterable[str] = (), arithmetic: str = "auto",
             nodes: Iterable[str] | None = None, progress: bool = False, engine: str = "auto",
             device: str | None = None) -> SimResult:
    """Prepare ``graph`` and run it once. See :class:`Program` and the module docstring for the semantics."""
    return Program(graph, arithmetic).run(spikes, record=record, nodes=nodes, progress=progress, engine=engine,
                                          device=device)
