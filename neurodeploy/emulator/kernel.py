"""Compiled engine: a prepared :class:`~neurodeploy.emulator.engine.Program` lowered to flat arrays and run for
all T steps in one numba function (``engine="numba"``).

It computes exactly what the numpy engine computes (same step order, same Lava 0.10.0 ``PyLifModelBitAcc``
integers, same int32 wrap-around); only the execution differs:

* **Lowering** (once per Program). Sources are the Input nodes (end to end in the stimulus) followed by the neuron
  populations (end to end in the state arrays); each step lists the active indices of every source. Every population
  becomes per-neuron parameters: ``fu = 4096 - (du + 1)``, ``fv = 4096 - dv``, the effective bias
  ``bias_mant << bias_exp`` (int32), the threshold ``wrap32(vth << 6)`` and the reset kind. Every synapse becomes,
  per delay bucket ``d``, the matrix ``W_d`` of Lava-effective weights (clipped and truncated by
  :func:`~neurodeploy.emulator.arithmetic.effective_weights`, taken from the runner's column buckets,
  :mod:`neurodeploy.emulator.columns`; int16, since they lie in [-256, 255]), stored column by column: as CSC when
  sparse, or, when it stores at least ``DENSE_FRACTION`` of its entries, as full columns (column-major, zeros kept),
  so that adding a column is one contiguous, vectorised loop. The sparse buckets' rows and weights are copied into
  the flat arrays once, and the runners' columns then point into them. Its delay line is a ring of ``L = max_delay
  + 1`` slots of ``n_out`` int64.
* **Step** ``k`` (0-based), per sample ``b`` (samples never interact, so the batch is the outer loop; contiguous
  groups of samples run in parallel threads, :func:`sample_groups`):

  1. ``a_in = sum over incoming synapses of ring[k mod L]`` (int64);
  2. per neuron, with ``wrap32(x) = ((x + 2**31) mod 2**32) - 2**31`` and ``tz(p) = sign(p) (|p| >> 12)``::

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

**Float mode** (:func:`_float_kernel`) runs the same schedule in float64 with the numpy engine's float operations
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
from typing import TYPE_CHECKING

import numpy as np

from neurodeploy.errors import InputError

if TYPE_CHECKING:
    from neurodeploy.emulator.engine import Program

#: A delay bucket holding at least this fraction of nonzeros is stored as full columns: adding a full column is a
#: vectorised loop (~30 ps per entry here) while a sparse scatter costs ~1 ns per nonzero.
DENSE_FRACTION = 1 / 32
#: ... unless it has more entries than this (int16 each).
DENSE_MAX = 2**26
#: A dense bucket whose largest row sum of |W| is below this sums its active columns in int32 (exact), else in int64.
INT32_SUMS = 2**31
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
    """Compile (or load from numba's on-disk cache) the kernels and the helpers they call, once per process: each
    module-level function below is replaced by its numba dispatcher under the same name."""
    if "kernel" in _NUMBA:
        return
    import numba

    namespace = globals()
    for name in ("_deliver", "_lif_int", "_lif_float", "_emit_population", "_emit_inputs", "_gather_rows"):
        namespace[name] = numba.njit(cache=True, nogil=True, inline="always")(namespace[name])
    _NUMBA["kernel"] = numba.njit(cache=True, nogil=True)(_kernel)
    _NUMBA["float_kernel"] = numba.njit(cache=True, nogil=True)(_float_kernel)


def compiled_kernel():
    """The numba dispatcher of :func:`_kernel` (integer mode; created on first use, ``cache=True``)."""
    _jit()
    return _NUMBA["kernel"]


def compiled_float_kernel():
    """The numba dispatcher of :func:`_float_kernel` (float mode; created on first use, ``cache=True``)."""
    _jit()
    return _NUMBA["float_kernel"]


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


@dataclass
class Lowered:
    """A Program as flat arrays (see the module docstring). Offsets index the concatenated arrays."""

    n_in: int  # stimulus width: all Input nodes, end to end
    n_neurons: int
    input_off: dict  # input name -> offset in the stimulus
    pop_names: list
    pop_off: np.ndarray  # per population: first neuron index
    pop_size: np.ndarray
    fac_u: np.ndarray  # per neuron: int64 factors (integer mode) or float64 1 - du (float mode); likewise below
    fac_v: np.ndarray
    bias: np.ndarray
    thr: np.ndarray
    sub: np.ndarray  # 1: reset by subtraction
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
    ring_size: int


def _i64(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64).reshape(-1))


def lower(program: Program) -> Lowered:
    """Flatten ``program`` (its prepared runners; integer or float mode) into a :class:`Lowered`."""
    from neurodeploy.emulator import arithmetic as ar

    input_off, n_in = {}, 0
    for name in program.inputs:
        input_off[name] = n_in
        n_in += int(math.prod(program.shapes[name]))
    pop_names = list(program.neurons)
    sizes = [program.neurons[n].size for n in pop_names]
    pop_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    fac_u, fac_v, bias, thr, sub = [], [], [], [], []
    for name in pop_names:
        p = program.neurons[name]
        sub.append(np.full(p.size, int(p.reset != "zero")))
        if not program.integer:  # float: u' = u (1 - du) + a_in, v' = v (1 - dv) + u' + bias, s = v' > vth
            fac_u.append(np.full(p.size, 1.0 - p.du))
            fac_v.append(np.full(p.size, 1.0 - p.dv))
            bias.append(np.asarray(p.bias, dtype=np.float64))
            thr.append(np.full(p.size, float(p.vth)))
            continue
        fac_u.append(np.full(p.size, ar.DECAY_UNITY - (p.du + 1)))
        fac_v.append(np.full(p.size, ar.DECAY_UNITY - p.dv))
        bias.append(np.asarray(p.bias, dtype=np.int64))
        thr.append(np.full(p.size, int(ar.wrap_int32(np.int64(p.vth) << ar.VTH_SHIFT))))

    state = np.int64 if program.integer else np.float64

    def cat(parts: list, dtype=np.int64) -> np.ndarray:
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
                bkt_kind.append(1 if np.abs(w.astype(np.int64)).sum(axis=0).max(initial=0) < INT32_SUMS else 2)
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

    low = Lowered(
        n_in=n_in, n_neurons=int(sum(sizes)), input_off=input_off, pop_names=pop_names, pop_off=_i64(pop_off),
        pop_size=_i64(sizes), fac_u=cat(fac_u, state), fac_v=cat(fac_v, state), bias=cat(bias, state),
        thr=cat(thr, state), sub=cat(sub),
        src_off=_i64(src_off), src_size=_i64(src_size), dlv_syn=_i64(dlv_syn), dlv_dst=_i64(dlv_dst),
        syn_src=_i64(syn_src), syn_nout=_i64(syn_nout), syn_len=_i64(syn_len), syn_ring=_i64(syn_ring),
        syn_exp=_i64(syn_exp), syn_b0=_i64(syn_b0), syn_b1=_i64(syn_b1), bkt_delay=_i64(bkt_delay),
        bkt_kind=_i64(bkt_kind), bkt_cp=_i64(bkt_cp), colptr=cat(colptr), rows=cat(rows, np.uint32),
        vals=cat(vals, np.int16 if program.integer else np.float64), dvals=cat(dvals, np.int16), ring_size=ring)
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
    kernel = compiled_kernel() if program.integer else compiled_float_kernel()
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
        kernel(stim[b0:b1], k0, k1, low.src_off, low.src_size, low.pop_off, low.pop_size, low.fac_u, low.fac_v,
               low.bias, low.thr, low.sub, rec_off, rec_u[b0:b1], rec_v[b0:b1], rec_s[b0:b1], low.dlv_syn,
               low.dlv_dst, low.syn_src, low.syn_nout, low.syn_len, low.syn_ring, low.syn_exp, low.syn_b0,
               low.syn_b1, low.bkt_delay, low.bkt_kind, low.bkt_cp, low.colptr, low.rows, low.vals, low.dvals,
               u[b0:b1], v[b0:b1], rings[b0:b1], cnt)

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
# Plain Python until :func:`_jit` replaces them in this module's namespace with numba dispatchers (the kernels call
# the helpers by their global names, which numba resolves when it compiles or loads a kernel).

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


def _lif_int(up, vp, ap, fu, fv, bp, tp, sp_, fp):  # pragma: no cover - compiled by numba
    """Step 2, integer mode: Lava ``PyLifModelBitAcc`` in int64 with explicit int32 wraps (module docstring;
    branch-free, so it vectorises)."""
    two31 = 2147483648
    mask32 = 4294967295
    max_uv = 8388608
    two24 = 16777216
    for i in range(up.shape[0]):
        x = up[i] * fu[i]
        x = (x + ((x >> 63) & 4095)) >> 12
        x = ((x + two31) & mask32) - two31
        ain = ((ap[i] + two31) & mask32) - two31
        ain = (((ain << 6) + two31) & mask32) - two31
        x = ((x + ain + two31) & mask32) - two31
        x = x - two24 * (x > max_uv) + two24 * (x <= -max_uv)
        y = vp[i] * fv[i]
        y = (y + ((y >> 63) & 4095)) >> 12
        y = ((y + two31) & mask32) - two31
        y = ((y + x + two31) & mask32) - two31
        y = ((y + bp[i] + two31) & mask32) - two31
        y = min(max(y, 1 - max_uv), max_uv - 1)
        s_i = y > tp[i]
        reset = ((y - tp[i] + two31) & mask32) - two31 if sp_[i] != 0 else 0
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


def _kernel(stim, k0, k1, src_off, src_size, pop_off, pop_size, fac_u, fac_v, bias, thr, sub, rec_off, rec_u, rec_v,
            rec_s, dlv_syn, dlv_dst, syn_src, syn_nout, syn_len, syn_ring, syn_exp, syn_b0, syn_b1, bkt_delay,
            bkt_kind, bkt_cp, colptr, rows, vals, dvals, u, v, rings, counts):  # pragma: no cover - compiled by numba
    """Integer mode, steps ``k0 .. k1 - 1`` of every sample (module docstring); updates u, v, rings, counts,
    rec_* in place."""
    n_in = stim.shape[2]
    n_neurons = u.shape[1]
    n_src = src_off.shape[0]
    n_pop = pop_off.shape[0]
    n_syn = syn_nout.shape[0]
    n_inputs = n_src - n_pop  # sources: the inputs, then the populations
    act = np.zeros(n_in + n_neurons, np.int64)
    a_start = np.zeros(n_src, np.int64)
    a_end = np.zeros(n_src, np.int64)
    a_in = np.zeros(n_neurons, np.int64)
    fired = np.zeros(n_neurons, np.uint8)
    width = max(1, syn_nout.max()) if n_syn else 1
    tmp = np.zeros(width, np.int64)
    tmp32 = np.zeros(width, np.int32)
    mark = np.zeros(width, np.uint8)
    touched = np.zeros(width, np.int64)
    for b in range(stim.shape[0]):
        ub = u[b]
        vb = v[b]
        rb = rings[b]
        for k in range(k0, k1):
            _deliver(k, a_in, rb, dlv_syn, dlv_dst, syn_nout, syn_ring, syn_len)
            n_act = 0
            for p in range(n_pop):  # 2. neurons, then 3. their spikes
                o = pop_off[p]
                size = pop_size[p]
                _lif_int(ub[o:o + size], vb[o:o + size], a_in[o:o + size], fac_u[o:o + size], fac_v[o:o + size],
                         bias[o:o + size], thr[o:o + size], sub[o:o + size], fired[o:o + size])
                n_act = _emit_population(p, b, k, o, size, ub[o:o + size], vb[o:o + size], fired[o:o + size],
                                         rec_off, rec_u, rec_v, rec_s, act, n_act, a_start, a_end, n_inputs, counts)
            n_act = _emit_inputs(stim[b, k], src_off, src_size, n_inputs, act, n_act, a_start, a_end)
            # 4. synapses: clear the delivered slot, add the active columns per delay bucket
            for s in range(n_syn):
                n = syn_nout[s]
                length = syn_len[s]
                ring0 = syn_ring[s]
                head = ring0 + (k % length) * n
                rb[head:head + n] = 0
                q0 = a_start[syn_src[s]]
                q1 = a_end[syn_src[s]]
                if q0 == q1:
                    continue
                e = syn_exp[s]
                nxt = (k + 1) % length
                for bk in range(syn_b0[s], syn_b1[s]):
                    base = ring0 + ((nxt + bkt_delay[bk]) % length) * n
                    slot = rb[base:base + n]
                    cp = bkt_cp[bk]
                    kind = bkt_kind[bk]
                    if kind == 1:  # dense, |row sums| < 2**31: int32 sums of 4 columns at a time (vectorised)
                        acc32 = tmp32[:n]
                        q = q0
                        while q + 4 <= q1:
                            w0 = dvals[colptr[cp + act[q]]:][:n]
                            w1 = dvals[colptr[cp + act[q + 1]]:][:n]
                            w2 = dvals[colptr[cp + act[q + 2]]:][:n]
                            w3 = dvals[colptr[cp + act[q + 3]]:][:n]
                            for i in range(n):
                                acc32[i] += (np.int32(w0[i]) + np.int32(w1[i])) + (np.int32(w2[i]) + np.int32(w3[i]))
                            q += 4
                        while q < q1:
                            w0 = dvals[colptr[cp + act[q]]:][:n]
                            for i in range(n):
                                acc32[i] += w0[i]
                            q += 1
                        if e >= 0:
                            for i in range(n):
                                slot[i] += np.int64(acc32[i]) << e
                                acc32[i] = 0
                        else:
                            for i in range(n):
                                slot[i] += np.int64(acc32[i]) >> -e
                                acc32[i] = 0
                    elif kind == 2:  # dense, row sums may pass 2**31: int64 sums
                        acc = tmp[:n]
                        for q in range(q0, q1):
                            w0 = dvals[colptr[cp + act[q]]:][:n]
                            for i in range(n):
                                acc[i] += w0[i]
                        if e >= 0:
                            for i in range(n):
                                slot[i] += acc[i] << e
                                acc[i] = 0
                        else:
                            for i in range(n):
                                slot[i] += acc[i] >> -e
                                acc[i] = 0
                    elif e == 0:  # sparse (CSC) scatter straight into the slot
                        for q in range(q0, q1):
                            j = act[q]
                            for x in range(colptr[cp + j], colptr[cp + j + 1]):
                                slot[rows[x]] += vals[x]
                    else:  # sparse, shifted: int64 sums of the touched rows, then the shift
                        n_t = _gather_rows(q0, q1, act, colptr, cp, rows, vals, tmp, mark, touched)
                        for t in range(n_t):
                            r = touched[t]
                            if e > 0:
                                slot[r] += tmp[r] << e
                            else:
                                slot[r] += tmp[r] >> -e
                            tmp[r] = 0
                            mark[r] = 0


def _float_kernel(stim, k0, k1, src_off, src_size, pop_off, pop_size, fac_u, fac_v, bias, thr, sub, rec_off, rec_u,
                  rec_v, rec_s, dlv_syn, dlv_dst, syn_src, syn_nout, syn_len, syn_ring, syn_exp, syn_b0, syn_b1,
                  bkt_delay, bkt_kind, bkt_cp, colptr, rows, vals, dvals, u, v, rings,
                  counts):  # pragma: no cover - compiled by numba
    """Float mode, steps ``k0 .. k1 - 1`` of every sample, in the numpy engine's float operations and order.

    Per step: ``a_in`` = 0 + the incoming synapses' delivered slots, in order; ``u = u (1 - du) + a_in``, ``v = (v
    (1 - dv) + u) + bias``, ``s = v > vth``, reset; per synapse and delay bucket, ``acc[r] = 0 + W[r, j1] + W[r, j2]
    + ...`` over the active sources ``j1 < j2 < ...`` (every bucket is CSC here), then ``slot[r] += acc[r]``.
    """
    n_in = stim.shape[2]
    n_neurons = u.shape[1]
    n_src = src_off.shape[0]
    n_pop = pop_off.shape[0]
    n_syn = syn_nout.shape[0]
    n_inputs = n_src - n_pop
    act = np.zeros(n_in + n_neurons, np.int64)
    a_start = np.zeros(n_src, np.int64)
    a_end = np.zeros(n_src, np.int64)
    a_in = np.zeros(n_neurons, np.float64)
    fired = np.zeros(n_neurons, np.uint8)
    width = max(1, syn_nout.max()) if n_syn else 1
    tmp = np.zeros(width, np.float64)
    mark = np.zeros(width, np.uint8)
    touched = np.zeros(width, np.int64)
    for b in range(stim.shape[0]):
        ub = u[b]
        vb = v[b]
        rb = rings[b]
        for k in range(k0, k1):
            _deliver(k, a_in, rb, dlv_syn, dlv_dst, syn_nout, syn_ring, syn_len)
            n_act = 0
            for p in range(n_pop):
                o = pop_off[p]
                size = pop_size[p]
                _lif_float(ub[o:o + size], vb[o:o + size], a_in[o:o + size], fac_u[o:o + size], fac_v[o:o + size],
                           bias[o:o + size], thr[o:o + size], sub[o:o + size], fired[o:o + size])
                n_act = _emit_population(p, b, k, o, size, ub[o:o + size], vb[o:o + size], fired[o:o + size],
                                         rec_off, rec_u, rec_v, rec_s, act, n_act, a_start, a_end, n_inputs, counts)
            n_act = _emit_inputs(stim[b, k], src_off, src_size, n_inputs, act, n_act, a_start, a_end)
            for s in range(n_syn):
                n = syn_nout[s]
                length = syn_len[s]
                ring0 = syn_ring[s]
                head = ring0 + (k % length) * n
                rb[head:head + n] = 0.0
                q0 = a_start[syn_src[s]]
                q1 = a_end[syn_src[s]]
                if q0 == q1:
                    continue
                nxt = (k + 1) % length
                for bk in range(syn_b0[s], syn_b1[s]):
                    base = ring0 + ((nxt + bkt_delay[bk]) % length) * n
                    slot = rb[base:base + n]
                    n_t = _gather_rows(q0, q1, act, colptr, bkt_cp[bk], rows, vals, tmp, mark, touched)
                    for t in range(n_t):
                        r = touched[t]
                        slot[r] += tmp[r]
                        tmp[r] = 0.0
                        mark[r] = 0
