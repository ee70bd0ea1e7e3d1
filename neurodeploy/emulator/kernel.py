"""Compiled engine: a prepared :class:`~neurodeploy.emulator.engine.Program` lowered to flat arrays and run for
all T steps in one numba function (``engine="numba"``).

It computes exactly what the numpy engine computes (same step order, same Lava 0.10.0 ``PyLifModelBitAcc``
integers, same int32 wrap-around); only the execution differs:

* **Lowering** (once per Program). Sources are the Input nodes (end to end in the stimulus) followed by the neuron
  populations (end to end in the state arrays); each step lists the active indices of every source. Every population
  becomes per-neuron parameters: ``fu = 4096 - (du + 1)``, ``fv = 4096 - dv``, the effective bias
  ``bias_mant << bias_exp`` (int32), the threshold ``wrap32(vth << 6)`` and the reset kind. Every synapse becomes,
  per delay bucket ``d``, the matrix ``W_d`` of Lava-effective weights (clipped and truncated by
  :func:`~neurodeploy.ir.arithmetic.effective_weights`, taken from the runner's column buckets,
  :mod:`neurodeploy.ir.columns`; int16, since they lie in [-256, 255]), stored column by column: as CSC when
  sparse, or, when it stores at least ``DENSE_FRACTION`` of its entries, as full columns (column-major, zeros kept),
  so that adding a column is one contiguous, vectorised loop. The sparse buckets' rows and weights are copied into
  the flat arrays once, and the runners' columns then point into them. Its delay line is a ring of ``L = max_delay
  + 1`` slots of ``n_out`` int64.
* **Step** ``k`` (0-based), per sample ``b`` (samples never interact, so the batch is the outer loop; contiguous
  groups of samples run in parallel threads, :func:`sample_groups`):

  1. ``a_in = sum over incoming synapses of ring[k mod L]`` (int64);
  2. per population with a periodic state reset (``reset_interval > 0``), first ``u = v = 0`` when the Lava step
     ``t = k + 1`` has ``t mod reset_interval = reset_offset mod reset_interval`` (Lava 0.10 ``LIFReset``); then
     per neuron, with ``wrap32(x) = ((x + 2**31) mod 2**32) - 2**31`` and ``tz(p) = sign(p) (|p| >> 12)``::

         u' = wrap32(wrap32(tz(u fu)) + wrap32(wrap32(a_in) << 6))
         u' = u' - 2**24 if u' > 2**23;  u' + 2**24 if u' <= -2**23     (Lava's single conditional wrap)
         v' = clip(wrap32(wrap32(wrap32(tz(v fv)) + u') + bias), -(2**23 - 1), 2**23 - 1)
         s  = v' > wrap32(vth << 6);  v' = 0 (reset "zero") or wrap32(v' - wrap32(vth << 6)) (reset "subtract")

  3. the sources emit: Input column ``k`` of the stimulus, the neurons' ``s`` of step 2;
  4. per synapse: ``ring[k mod L] = 0``; then per delay bucket ``d``, event-driven: ``acc = sum of the columns
     W_d[:, j] over the active presynaptic indices j`` and ``ring[(k + 1 + d) mod L] += acc << weight_exp``
     (``acc >> -weight_exp`` for a negative exponent: a floor shift of the bucket's *summed* integer, per bucket, not
     per synapse). ``acc`` is exact in every layout: full columns sum in int32, four columns at a time, when the
     bucket's largest row sum of ``|W_d|`` is below ``INT32_SUMS`` = 2**31 (no partial sum can leave int32), else in
     int64; CSC columns scatter straight into the ring slot when ``weight_exp = 0`` (the shift is the identity), else
     into int64 row sums that are shifted and added for the touched rows only.

The numpy engine's ``acc`` is a float sum that it proves exact and casts to int64, so both engines hold the same
integers.

**One kernel, two arithmetics.** :func:`_kernel` is written once; numba compiles it once per state dtype (int64:
integer mode, float64: float mode). The few steps that differ are overloads chosen by dtype at compile time:
:func:`_lif` (:func:`_lif_int` / :func:`_lif_float`), :func:`_shift` (the weight exponent; the identity in float
mode) and :func:`_scatter` (whether a sparse bucket may add straight into the ring). Lowered arrays reach it as
one :class:`Net` named tuple. The integer constants (:mod:`neurodeploy.ir.arithmetic`) are module globals, frozen
into the compiled code.

**Float mode** runs the same schedule in float64 with the numpy engine's float operations
(``u = u (1 - du) + a_in``, ``v = (v (1 - dv) + u) + bias``, ``s = v > vth``) and summation order: every bucket
is CSC; per bucket the active columns are summed into a zeroed scratch row vector in increasing column order, then
added to the ring slot -- what scipy's CSR / CSC products compute -- so the two engines agree bit for bit. The
stimulus must be binary (``w * 1 = w``); graded float stimuli stay on the numpy engine.

Not lowered (they stay on the numpy engine; ``engine="auto"`` says so in ``SimResult.engine_note``): graded
synapses (``num_message_bits > 0``), PlasticDense and non-binary float stimuli.

numba is imported on first use only; the kernel is compiled with ``cache=True``, so the compile (a few seconds) is paid
once per machine and later processes load it from the on-disk cache.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from neurodeploy.errors import InputError
from neurodeploy.ir.arithmetic import (
    ACT_SHIFT,
    DECAY_SHIFT,
    DECAY_UNITY,
    INT32_HALF,
    INT32_MASK,
    MAX_UV,
    TRUNC_BIAS,
    UV_SPAN,
    VTH_SHIFT,
    wrap_int32,
)

if TYPE_CHECKING:
    from neurodeploy.emulator.engine import Program

#: A delay bucket holding at least this fraction of nonzeros is stored as full columns: adding a full column is a
#: vectorised loop (~30 ps per entry here) while a sparse scatter costs ~1 ns per nonzero.
DENSE_FRACTION = 1 / 32
#: ... unless it has more entries than this (int16 each).
DENSE_MAX = 2**26
#: A dense bucket whose largest row sum of |W| is below this sums its active columns in int32 (exact), else in int64.
INT32_SUMS = INT32_HALF
#: Steps per kernel call when a progress bar is shown (the state carries over between calls).
PROGRESS_CHUNK = 64

_NUMBA: dict = {}


def numba_problem() -> str | None:
    """``None`` when numba is importable, else why not (imports numba on the first call)."""
    if "problem" not in _NUMBA:
        try:
            import numba  # noqa: F401
        except ImportError as err:  # pragma: no cover - numba is a core dependency
            _NUMBA["problem"] = f"numba is not importable ({err})"
        else:
            _NUMBA["problem"] = None
    return _NUMBA["problem"]


def unsupported(program: Program) -> str | None:
    """``None`` when ``program`` can run on the compiled kernel, else why it cannot."""
    from neurodeploy.emulator.plasticity import PlasticRunner

    graded = [n for n, s in program.synapses.items() if s.graded]
    if graded:
        return f"graded synapses (num_message_bits > 0) run on the numpy engine only: {graded}"
    plastic = [n for n, s in program.synapses.items() if isinstance(s, PlasticRunner)]
    if plastic:
        return f"PlasticDense (on-chip learning) runs on the numpy engine only: {plastic}"
    return None


def _jit() -> None:
    """Compile (or load from numba's on-disk cache) the kernel and the helpers it calls, once per process: each
    helper below is replaced by its numba dispatcher under the same name, and the two arithmetic-specific steps
    (:func:`_lif`, :func:`_add_bucket`) become overloads that pick the integer or the float implementation by the
    dtype of the state they are given -- so one kernel source compiles to the integer and the float kernel."""
    if "kernel" in _NUMBA:
        return
    import numba
    from numba.core import types
    from numba.extending import overload

    namespace = globals()
    for name in ("_wrap32", "_trunc12", "_deliver", "_emit_population", "_emit_inputs", "_gather_rows"):
        namespace[name] = numba.njit(cache=True, nogil=True, inline="always")(namespace[name])

    @overload(_lif, inline="always")
    def _lif_by_dtype(up, vp, ap, fu, fv, bp, tp, sp_, fp):
        return _lif_int if isinstance(up.dtype, types.Integer) else _lif_float

    @overload(_shift)
    def _shift_by_dtype(x, e):
        return _shift_int if isinstance(x, types.Integer) else _shift_float

    @overload(_scatter)
    def _scatter_by_dtype(slot):
        integer = isinstance(slot.dtype, types.Integer)
        return lambda slot: integer

    _NUMBA["kernel"] = numba.njit(cache=True, nogil=True)(_kernel)


def compiled_kernel():
    """The numba dispatcher of :func:`_kernel` (both arithmetics; created on first use, ``cache=True``)."""
    _jit()
    return _NUMBA["kernel"]


def threads() -> int:
    """Threads a run may use: ``NEURODEPLOY_THREADS`` if set (>= 1), else the CPUs this process may run on."""
    value = os.environ.get("NEURODEPLOY_THREADS", "")
    if value.strip():
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"NEURODEPLOY_THREADS = {value!r} is not a positive integer",
                             fix="set it to the number of threads, or unset it to use every CPU")
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def sample_groups(batch: int) -> list[tuple[int, int]]:
    """The batch split into at most :func:`threads` contiguous ``[b0, b1)`` groups of near-equal size."""
    n = max(1, min(batch, threads()))
    bounds = np.linspace(0, batch, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def binary_inputs(inputs: dict[str, np.ndarray]) -> bool:
    """Whether every stimulus value is 0 or 1 (what the kernel's event lists can carry)."""
    return all(((x == 0) | (x == 1)).all() for x in inputs.values())


class Net(NamedTuple):
    """The flat arrays the compiled kernel reads (module docstring, *Lowering*): one argument instead of 29.
    Offsets index the concatenated arrays."""

    pop_off: np.ndarray  # per population: first neuron index
    pop_size: np.ndarray
    fac_u: np.ndarray  # per neuron: int64 factors (integer mode) or float64 1 - du (float mode); likewise below
    fac_v: np.ndarray
    bias: np.ndarray
    thr: np.ndarray
    sub: np.ndarray  # 1: reset by subtraction
    pop_reset_interval: np.ndarray  # per population: periodic state reset every this many steps (0: never)
    pop_reset_offset: np.ndarray  # ... at Lava steps t with t mod interval = this (already reduced mod interval)
    src_off: np.ndarray  # per source (inputs, then populations): offset in the stimulus (inputs) or n_in + pop_off
    src_size: np.ndarray
    dlv_syn: np.ndarray  # deliveries (synapse -> neuron population input)
    dlv_dst: np.ndarray
    syn_src: np.ndarray  # per synapse
    syn_nout: np.ndarray
    syn_len: np.ndarray
    syn_ring: np.ndarray
    syn_exp: np.ndarray
    syn_b0: np.ndarray
    syn_b1: np.ndarray
    bkt_delay: np.ndarray  # per delay bucket
    bkt_kind: np.ndarray  # 0 sparse (CSC), 1 dense with int32 sums, 2 dense with int64 sums
    bkt_cp: np.ndarray
    colptr: np.ndarray  # per bucket n_in + 1 column starts, into dvals (dense bucket) or rows/vals (sparse)
    rows: np.ndarray
    vals: np.ndarray
    dvals: np.ndarray


@dataclass
class Lowered:
    """A Program as flat arrays (see the module docstring): the kernel's :class:`Net` and the host's bookkeeping.
    The :class:`Net` arrays read as attributes too (``low.rows``)."""

    n_in: int  # stimulus width: all Input nodes, end to end
    n_neurons: int
    input_off: dict  # input name -> offset in the stimulus
    pop_names: list
    ring_size: int
    net: Net

    def __getattr__(self, name: str):
        if name in Net._fields:
            return getattr(self.__dict__["net"], name)
        raise AttributeError(name)


def _i64(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64).reshape(-1))


def lower(program: Program) -> Lowered:
    """Flatten ``program`` (its prepared runners; integer or float mode) into a :class:`Lowered`."""
    input_off, n_in = {}, 0
    for name in program.inputs:
        input_off[name] = n_in
        n_in += int(math.prod(program.shapes[name]))
    pop_names = list(program.neurons)
    sizes = [program.neurons[n].size for n in pop_names]
    pop_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    fac_u, fac_v, bias, thr, sub = [], [], [], [], []
    intervals = [int(program.neurons[name].reset_interval) for name in pop_names]
    offsets = [int(program.neurons[name].reset_offset) % i if i > 0 else 0
               for name, i in zip(pop_names, intervals)]
    for name in pop_names:
        p = program.neurons[name]
        sub.append(np.full(p.size, int(p.reset != "zero")))
        if not program.integer:  # float: u' = u (1 - du) + a_in, v' = v (1 - dv) + u' + bias, s = v' > vth
            fac_u.append(np.full(p.size, 1.0 - p.du))
            fac_v.append(np.full(p.size, 1.0 - p.dv))
            bias.append(np.asarray(p.bias, dtype=np.float64))
            thr.append(np.full(p.size, float(p.vth)))
            continue
        fac_u.append(np.full(p.size, DECAY_UNITY - (p.du + 1)))
        fac_v.append(np.full(p.size, DECAY_UNITY - p.dv))
        bias.append(np.asarray(p.bias, dtype=np.int64))
        thr.append(np.full(p.size, int(wrap_int32(np.int64(p.vth) << VTH_SHIFT))))

    state = np.int64 if program.integer else np.float64

    def cat(parts: list, dtype=np.int64) -> np.ndarray:
        if len(parts) == 1:  # no copy of a single (possibly dense, tens of MB) part
            return np.ascontiguousarray(parts[0], dtype=dtype)
        return np.ascontiguousarray(np.concatenate(parts), dtype=dtype) if parts else np.zeros(0, dtype)

    src_index = {name: i for i, name in enumerate(program.inputs)}
    src_off = [input_off[name] for name in program.inputs]
    src_size = [int(math.prod(program.shapes[name])) for name in program.inputs]
    for i, name in enumerate(pop_names):
        src_index[name] = len(program.inputs) + i
        src_off.append(n_in + int(pop_off[i]))
        src_size.append(sizes[i])
    syn_names = list(program.synapses)
    syn_pos = {n: i for i, n in enumerate(syn_names)}
    dlv_syn, dlv_dst = [], []
    for i, name in enumerate(pop_names):
        for syn in program.neuron_inputs[name]:
            dlv_syn.append(syn_pos[syn])
            dlv_dst.append(int(pop_off[i]))
    syn_src, syn_nout, syn_len, syn_ring, syn_exp, syn_b0, syn_b1 = [], [], [], [], [], [], []
    bkt_delay, bkt_kind, bkt_cp = [], [], []
    colptr, rows, vals, dvals = [], [], [], []
    shared = []
    n_cp = n_nz = n_dense = ring = 0
    for name in syn_names:
        s = program.synapses[name]
        syn_src.append(src_index[program.syn_source[name]])
        syn_nout.append(s.n_out)
        syn_len.append(s.max_delay + 1)
        syn_ring.append(ring)
        ring += (s.max_delay + 1) * s.n_out
        syn_exp.append(s.weight_exp)
        syn_b0.append(len(bkt_delay))
        cb = s.columns
        start_nz, all_sparse = n_nz, True
        for bucket, d in enumerate(cb.delays):
            bkt_delay.append(int(d))
            bkt_cp.append(n_cp)
            size = s.n_in * s.n_out
            cp = cb.column_pointers(bucket)
            lo, hi = int(cp[0]), int(cp[-1])
            if program.integer and hi - lo >= DENSE_FRACTION * size and size <= DENSE_MAX:
                # dense bucket: full columns in dvals, column-major, zeros kept
                w = np.zeros((s.n_in, s.n_out), np.int16)
                w[np.repeat(np.arange(s.n_in), np.diff(cp)), cb.rows[lo:hi]] = cb.vals[lo:hi]
                # largest row sum of |W| from the stored entries (O(nnz), not O(n_in * n_out))
                row_abs = np.bincount(cb.rows[lo:hi], weights=np.abs(cb.vals[lo:hi].astype(np.float64)),
                                      minlength=s.n_out)
                bkt_kind.append(1 if row_abs.max(initial=0) < INT32_SUMS else 2)
                ptr = n_dense + np.arange(s.n_in + 1, dtype=np.int64) * s.n_out
                dvals.append(w.reshape(-1))
                n_dense += w.size
                all_sparse = False
            else:  # sparse bucket: CSC, row indices in rows, weights in vals
                bkt_kind.append(0)
                ptr = n_nz + (cp - lo)
                rows.append(cb.rows[lo:hi])
                vals.append(cb.vals[lo:hi])
                n_nz += hi - lo
            colptr.append(ptr)
            n_cp += ptr.size
        syn_b1.append(len(bkt_delay))
        if all_sparse:  # its buckets fill [start_nz, n_nz) of the flat arrays, in order: cb.rows / cb.vals
            shared.append((cb, start_nz, n_nz))

    net = Net(
        pop_off=_i64(pop_off), pop_size=_i64(sizes), fac_u=cat(fac_u, state), fac_v=cat(fac_v, state),
        bias=cat(bias, state), thr=cat(thr, state), sub=cat(sub), pop_reset_interval=_i64(intervals),
        pop_reset_offset=_i64(offsets),
        src_off=_i64(src_off), src_size=_i64(src_size), dlv_syn=_i64(dlv_syn), dlv_dst=_i64(dlv_dst),
        syn_src=_i64(syn_src), syn_nout=_i64(syn_nout), syn_len=_i64(syn_len), syn_ring=_i64(syn_ring),
        syn_exp=_i64(syn_exp), syn_b0=_i64(syn_b0), syn_b1=_i64(syn_b1), bkt_delay=_i64(bkt_delay),
        bkt_kind=_i64(bkt_kind), bkt_cp=_i64(bkt_cp), colptr=cat(colptr), rows=cat(rows, np.uint32),
        vals=cat(vals, np.int16 if program.integer else np.float64), dvals=cat(dvals, np.int16))
    low = Lowered(n_in=n_in, n_neurons=int(sum(sizes)), input_off=input_off, pop_names=pop_names, ring_size=ring,
                  net=net)
    del rows, vals
    for cb, a, b in shared:  # the runners read the same entries from the flat arrays: one copy in memory
        cb.rows, cb.vals = low.rows[a:b], low.vals[a:b]
    return low


def run(program: Program, inputs: dict[str, np.ndarray], traces: dict[str, np.ndarray],
        counts: dict[str, np.ndarray], progress: bool = False) -> None:
    """Run ``program`` on the checked ``inputs`` (``[B, T, n]`` per Input) with the compiled kernel.

    Fills the preallocated ``traces`` (``'<node>/<field>' -> [B, T, size]``) and ``counts`` (spikes per neuron,
    summed over the batch) in place, as the numpy engine does.
    """
    low = getattr(program, "_lowered", None)
    if low is None:
        low = program._lowered = lower(program)
    batch, steps = next(iter(inputs.values())).shape[:2]
    if not program.integer:  # float stimuli: 0/1 (checked by binary_inputs), as uint8 like the integer ones
        inputs = {name: np.ascontiguousarray(x, dtype=np.uint8) for name, x in inputs.items()}
    if len(inputs) == 1:  # already [B, T, n] uint8 0/1, C order (Program._check_inputs)
        stim = next(iter(inputs.values()))
    else:
        stim = np.zeros((batch, steps, low.n_in), np.uint8)
        for name, x in inputs.items():
            off = low.input_off[name]
            stim[:, :, off:off + x.shape[2]] = x
    n_pop = len(low.pop_names)
    rec_off = np.full((3, n_pop), -1, np.int64)  # rows: u, v, spikes
    widths = [0, 0, 0]
    fields = ("u", "v", "spikes")
    for p, name in enumerate(low.pop_names):
        for f, fld in enumerate(fields):
            if f"{name}/{fld}" in traces:
                rec_off[f, p] = widths[f]
                widths[f] += int(low.pop_size[p])
    rec_dtype, state = (np.int32, np.int64) if program.integer else (np.float64, np.float64)
    rec_u = np.zeros((batch, steps, widths[0]), rec_dtype)
    rec_v = np.zeros((batch, steps, widths[1]), rec_dtype)
    rec_s = np.zeros((batch, steps, widths[2]), np.uint8)
    u = np.zeros((batch, low.n_neurons), state)
    v = np.zeros((batch, low.n_neurons), state)
    rings = np.zeros((batch, low.ring_size), state)
    spike_counts = np.zeros(low.n_neurons, np.int64)
    kernel = compiled_kernel()
    chunks = [(0, steps)]
    bar = None
    if progress:
        from tqdm import tqdm

        chunks = [(k, min(k + PROGRESS_CHUNK, steps)) for k in range(0, steps, PROGRESS_CHUNK)]
        bar = tqdm(total=steps, desc="emulating (numba)", unit="step")
    groups = sample_groups(batch)
    group_counts = [spike_counts] + [np.zeros_like(spike_counts) for _ in groups[1:]]
    pool = ThreadPoolExecutor(len(groups)) if len(groups) > 1 else None

    def part(k0: int, k1: int, b0: int, b1: int, cnt: np.ndarray) -> None:
        kernel(stim[b0:b1], k0, k1, low.net, rec_off, rec_u[b0:b1], rec_v[b0:b1], rec_s[b0:b1], u[b0:b1], v[b0:b1],
               rings[b0:b1], cnt)

    try:
        for k0, k1 in chunks:
            if pool is None:
                part(k0, k1, 0, batch, spike_counts)
            else:  # samples never interact: contiguous groups of them run in parallel (the kernel releases the GIL)
                jobs = [pool.submit(part, k0, k1, b0, b1, cnt) for (b0, b1), cnt in zip(groups, group_counts)]
                for job in jobs:
                    job.result()
            if bar is not None:
                bar.update(k1 - k0)
    finally:
        if pool is not None:
            pool.shutdown()
    for cnt in group_counts[1:]:
        spike_counts += cnt
    if bar is not None:
        bar.close()
    recs = (rec_u, rec_v, rec_s)
    for p, name in enumerate(low.pop_names):
        off, size = int(low.pop_off[p]), int(low.pop_size[p])
        counts[name][:] = spike_counts[off:off + size]
        for f, fld in enumerate(fields):
            if rec_off[f, p] >= 0:
                col = int(rec_off[f, p])
                traces[f"{name}/{fld}"][...] = recs[f][:, :, col:col + size]


# --- the compiled functions ----------------------------------------------------------------------------------
# Plain Python until :func:`_jit` replaces the helpers in this module's namespace with numba dispatchers (the kernel
# calls them by their global names, which numba resolves when it compiles or loads the kernel) and registers the
# arithmetic-specific steps :func:`_lif` and :func:`_add_bucket` as overloads chosen by the state's dtype. Module-level
# integer constants (ir.arithmetic's) are read as globals: numba freezes them into the compiled code.

def _wrap32(x):  # pragma: no cover - compiled by numba
    """An int32 store of int64 ``x``: ``((x + 2**31) mod 2**32) - 2**31`` (arithmetic.wrap_int32)."""
    return ((x + INT32_HALF) & INT32_MASK) - INT32_HALF


def _trunc12(x):  # pragma: no cover - compiled by numba
    """``sign(x) (|x| >> 12)`` for int64 ``x``: the decay's rounding toward zero (arithmetic._trunc_shift)."""
    return (x + ((x >> 63) & TRUNC_BIAS)) >> DECAY_SHIFT


def _deliver(k, a_in, rb, dlv_syn, dlv_dst, syn_nout, syn_ring, syn_len):  # pragma: no cover - compiled by numba
    """Step 1: ``a_in`` = 0 + every synapse's slot ``k mod L``, added to its population's range, in order."""
    a_in[:] = 0
    for q in range(dlv_syn.shape[0]):
        s = dlv_syn[q]
        n = syn_nout[s]
        base = syn_ring[s] + (k % syn_len[s]) * n
        dst = a_in[dlv_dst[q]:dlv_dst[q] + n]
        src = rb[base:base + n]
        for i in range(n):
            dst[i] += src[i]


def _emit_population(p, b, k, o, size, up, vp, fp, rec_off, rec_u, rec_v, rec_s, act, n_act, a_start, a_end,
                     n_inputs, counts):  # pragma: no cover - compiled by numba
    """Steps 2-3 after a population's update: record u, v, spikes; list its active neurons; count spikes."""
    ru = rec_off[0, p]
    rv = rec_off[1, p]
    rs = rec_off[2, p]
    if ru >= 0:
        rec_u[b, k, ru:ru + size] = up
    if rv >= 0:
        rec_v[b, k, rv:rv + size] = vp
    if rs >= 0:
        rec_s[b, k, rs:rs + size] = fp
    a_start[n_inputs + p] = n_act
    for i in range(size):
        if fp[i] != 0:
            act[n_act] = i
            n_act += 1
            counts[o + i] += 1
    a_end[n_inputs + p] = n_act
    return n_act


def _emit_inputs(sk, src_off, src_size, n_inputs, act, n_act, a_start, a_end):  # pragma: no cover - numba
    """Step 3 for the Input nodes: the active indices of stimulus column ``k`` (``sk``)."""
    for p in range(n_inputs):
        a_start[p] = n_act
        off = src_off[p]
        for j in range(src_size[p]):
            if sk[off + j] != 0:
                act[n_act] = j
                n_act += 1
        a_end[p] = n_act
    return n_act


def _gather_rows(q0, q1, act, colptr, cp, rows, vals, tmp, mark, touched):  # pragma: no cover - numba
    """``tmp[r] += W[r, j]`` over the active columns ``j`` (in order) of a CSC bucket; returns how many rows it
    touched (listed in ``touched``, flagged in ``mark``)."""
    n_t = 0
    for q in range(q0, q1):
        j = act[q]
        for x in range(colptr[cp + j], colptr[cp + j + 1]):
            r = rows[x]
            if mark[r] == 0:
                mark[r] = 1
                touched[n_t] = r
                n_t += 1
            tmp[r] += vals[x]
    return n_t


def _lif(up, vp, ap, fu, fv, bp, tp, sp_, fp):  # pragma: no cover - an overload: _lif_int or _lif_float
    """Step 2 for one population: :func:`_lif_int` on int64 state, :func:`_lif_float` on float64 state."""
    raise NotImplementedError("compiled by numba only")


def _lif_int(up, vp, ap, fu, fv, bp, tp, sp_, fp):  # pragma: no cover - compiled by numba
    """Step 2, integer mode: Lava ``PyLifModelBitAcc`` in int64 with explicit int32 wraps (module docstring;
    branch-free, so it vectorises)."""
    for i in range(up.shape[0]):
        x = _wrap32(_trunc12(up[i] * fu[i]))
        ain = _wrap32(_wrap32(ap[i]) << ACT_SHIFT)
        x = _wrap32(x + ain)
        x = x - UV_SPAN * (x > MAX_UV) + UV_SPAN * (x <= -MAX_UV)
        y = _wrap32(_trunc12(vp[i] * fv[i]))
        y = _wrap32(y + x)
        y = _wrap32(y + bp[i])
        y = min(max(y, 1 - MAX_UV), MAX_UV - 1)
        s_i = y > tp[i]
        reset = _wrap32(y - tp[i]) if sp_[i] != 0 else 0
        up[i] = x
        vp[i] = reset if s_i else y
        fp[i] = s_i


def _lif_float(up, vp, ap, fu, fv, bp, tp, sp_, fp):  # pragma: no cover - compiled by numba
    """Step 2, float mode: ``u = u (1 - du) + a_in``, ``v = (v (1 - dv) + u) + bias``, ``s = v > vth``, reset
    to 0 or by subtracting vth (the numpy engine's operations, in its order)."""
    for i in range(up.shape[0]):
        x = up[i] * fu[i] + ap[i]
        y = vp[i] * fv[i] + x
        y = y + bp[i]
        s_i = y > tp[i]
        up[i] = x
        if s_i:
            y = y - tp[i] if sp_[i] != 0 else 0.0
        vp[i] = y
        fp[i] = s_i


def _shift(x, e):  # pragma: no cover - an overload: _shift_int or _shift_float
    """A bucket's summed weights at the weight exponent ``e``: see :func:`_shift_int` and :func:`_shift_float`."""
    raise NotImplementedError("compiled by numba only")


def _shift_int(x, e):  # pragma: no cover - compiled by numba
    """Integer mode: ``x << e``, or the floor shift ``x >> -e`` for a negative exponent (int64)."""
    return x << e if e >= 0 else x >> -e


def _shift_float(x, e):  # pragma: no cover - compiled by numba
    """Float mode: ``x`` (float synapses carry no exponent; ``e`` is 0)."""
    return x


def _scatter(slot):  # pragma: no cover - an overload
    """Whether a sparse bucket with ``e = 0`` may add its weights straight into the ring slot: in integer mode
    (integer sums are exact in any order), not in float mode (the sum must be formed first, as scipy does)."""
    raise NotImplementedError("compiled by numba only")


def _kernel(stim, k0, k1, net, rec_off, rec_u, rec_v, rec_s, u, v, rings, counts):  # pragma: no cover - numba
    """Steps ``k0 .. k1 - 1`` of every sample (module docstring), in the arithmetic of the state's dtype (int64:
    Loihi integers, float64: float mode; numba compiles one specialisation per dtype); ``net`` is the
    :class:`Net` of the lowered program. Updates u, v, rings, counts, rec_* in place."""
    n_in = stim.shape[2]
    n_neurons = u.shape[1]
    n_src = net.src_off.shape[0]
    n_pop = net.pop_off.shape[0]
    n_syn = net.syn_nout.shape[0]
    n_inputs = n_src - n_pop  # sources: the inputs, then the populations
    act = np.zeros(n_in + n_neurons, np.int64)
    a_start = np.zeros(n_src, np.int64)
    a_end = np.zeros(n_src, np.int64)
    a_in = np.zeros(n_neurons, u.dtype)
    fired = np.zeros(n_neurons, np.uint8)
    width = max(1, net.syn_nout.max()) if n_syn else 1
    tmp = np.zeros(width, u.dtype)
    tmp32 = np.zeros(width, np.int32)
    mark = np.zeros(width, np.uint8)
    touched = np.zeros(width, np.int64)
    pop_off = net.pop_off
    pop_size = net.pop_size
    for b in range(stim.shape[0]):
        ub = u[b]
        vb = v[b]
        rb = rings[b]
        for k in range(k0, k1):
            _deliver(k, a_in, rb, net.dlv_syn, net.dlv_dst, net.syn_nout, net.syn_ring, net.syn_len)
            n_act = 0
            for p in range(n_pop):  # 2. neurons, then 3. their spikes
                o = pop_off[p]
                size = pop_size[p]
                interval = net.pop_reset_interval[p]
                if interval > 0 and (k + 1) % interval == net.pop_reset_offset[p]:  # Lava step t = k + 1
                    ub[o:o + size] = 0
                    vb[o:o + size] = 0
                _lif(ub[o:o + size], vb[o:o + size], a_in[o:o + size], net.fac_u[o:o + size],
                     net.fac_v[o:o + size], net.bias[o:o + size], net.thr[o:o + size], net.sub[o:o + size],
                     fired[o:o + size])
                n_act = _emit_population(p, b, k, o, size, ub[o:o + size], vb[o:o + size], fired[o:o + size],
                                         rec_off, rec_u, rec_v, rec_s, act, n_act, a_start, a_end, n_inputs, counts)
            n_act = _emit_inputs(stim[b, k], net.src_off, net.src_size, n_inputs, act, n_act, a_start, a_end)
            # 4. synapses: clear the delivered slot, add the active columns per delay bucket
            for s in range(n_syn):
                n = net.syn_nout[s]
                length = net.syn_len[s]
                ring0 = net.syn_ring[s]
                head = ring0 + (k % length) * n
                rb[head:head + n] = 0
                q0 = a_start[net.syn_src[s]]
                q1 = a_end[net.syn_src[s]]
                if q0 == q1:
                    continue
                e = net.syn_exp[s]
                nxt = (k + 1) % length
                for bk in range(net.syn_b0[s], net.syn_b1[s]):
                    base = ring0 + ((nxt + net.bkt_delay[bk]) % length) * n
                    slot = rb[base:base + n]
                    cp = net.bkt_cp[bk]
                    kind = net.bkt_kind[bk]
                    if kind == 1:  # dense (integer mode), |row sums| < 2**31: int32 sums of 4 columns at a time
                        acc32 = tmp32[:n]
                        q = q0
                        while q + 4 <= q1:
                            w0 = net.dvals[net.colptr[cp + act[q]]:][:n]
                            w1 = net.dvals[net.colptr[cp + act[q + 1]]:][:n]
                            w2 = net.dvals[net.colptr[cp + act[q + 2]]:][:n]
                            w3 = net.dvals[net.colptr[cp + act[q + 3]]:][:n]
                            for i in range(n):
                                acc32[i] += (np.int32(w0[i]) + np.int32(w1[i])) + (np.int32(w2[i]) + np.int32(w3[i]))
                            q += 4
                        while q < q1:
                            w0 = net.dvals[net.colptr[cp + act[q]]:][:n]
                            for i in range(n):
                                acc32[i] += w0[i]
                            q += 1
                        for i in range(n):
                            slot[i] += _shift(np.int64(acc32[i]), e)
                            acc32[i] = 0
                    elif kind == 2:  # dense (integer mode), row sums may pass 2**31: int64 sums
                        acc = tmp[:n]
                        for q in range(q0, q1):
                            w0 = net.dvals[net.colptr[cp + act[q]]:][:n]
                            for i in range(n):
                                acc[i] += w0[i]
                        for i in range(n):
                            slot[i] += _shift(acc[i], e)
                            acc[i] = 0
                    elif e == 0 and _scatter(slot):  # sparse (CSC), integer mode: straight into the slot
                        for q in range(q0, q1):
                            j = act[q]
                            for x in range(net.colptr[cp + j], net.colptr[cp + j + 1]):
                                slot[net.rows[x]] += net.vals[x]
                    else:  # sparse: the touched rows' sums (float: in scipy's order), then the shift
                        n_t = _gather_rows(q0, q1, act, net.colptr, cp, net.rows, net.vals, tmp, mark, touched)
                        for t in range(n_t):
                            r = touched[t]
                            slot[r] += _shift(tmp[r], e)
                            tmp[r] = 0
                            mark[r] = 0
