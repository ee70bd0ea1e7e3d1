"""Torch engine: the integer emulator on torch tensors, on the CPU or a CUDA GPU (``engine="torch"``).

It computes exactly the integers of the numba kernel (:mod:`neurodeploy.emulator.kernel`), which is proven equal to
Lava 0.10.0's bit-accurate models: same step order, same ``PyLifModelBitAcc`` update with int32 wrap-around, same
Lava-effective weights, same per-bucket weight exponent. State is int64 (every value that Lava stores in int32 is
wrapped explicitly, as :func:`neurodeploy.ir.arithmetic.wrap_int32` does); torch is imported on first use.

* **Preparation** (once per Program and device). The populations are concatenated (``N`` neurons) with per-neuron
  ``fu = 4096 - (du + 1)``, ``fv = 4096 - dv``, the effective bias (``bias_mant << bias_exp``, int32), the threshold
  ``wrap32(vth << 6)`` and the reset kind. Every synapse keeps its runner's delay buckets
  (:mod:`neurodeploy.ir.columns`; Lava-effective int16 weights) as they are: column pointers ``ptr[d n_in +
  j]``, int32 rows, int16 weights, the bucket delays. Its delay line is a ring ``[L, B, n_out]`` of int64, ``L =
  max_delay + 1``.
* **Step** ``k`` (0-based), all samples of a batch chunk at once:

  1.-2. ``a_in`` and the LIF update exactly as steps 1-2 of :mod:`neurodeploy.emulator.kernel`'s docstring
     (Lava's int32 wraps, the 24-bit conditional wrap of u, the saturation of v, threshold and reset), as
     elementwise int64 tensor operations; before it, the periodic state reset of populations with a
     ``reset_interval`` (u = v = 0 at Lava steps ``t = k + 1`` with ``t mod interval = offset mod interval``);
  3. the sources emit: Input column ``k`` of the stimulus, the neurons' ``s``; their active ``(sample b, index
     j)`` pairs are listed once per source (``nonzero``);
  4. per synapse: ``ring[k mod L] = 0``; then, event-driven, for every active pair and every delay bucket ``d``
     the stored entries ``(r, w)`` of column ``j`` of ``W_d`` are gathered and added to the sum ``acc[d, b, r]``,
     which reaches ``ring[(k + 1 + d) mod L][b, r]`` as ``acc << weight_exp`` (``acc >> -weight_exp``, a floor
     shift, for a negative exponent) -- per (synapse, bucket, step) sum, as the kernel does:

     * ``weight_exp >= 0``: ``acc << e`` is ``acc * 2**e`` modulo ``2**64`` in int64, which distributes over the
       sum, so each gathered weight is shifted and ``index_add_``-ed straight into the ring (the kernel's int64
       ``acc << e`` wraps the same way; for ``e = 0`` this is the kernel's own sparse path);
     * ``weight_exp < 0``: the floor shift does not distribute, so the weights are first ``index_add_``-ed into a
       scratch shaped like the ring (exact int64 sums; at one step each bucket has its own slot, so a scratch
       position is one (bucket, sample, row) sum), then every touched sum is read, shifted, added to the ring at
       the same position, and cleared (a position touched again by a later block reads 0 and adds 0).

  Integer sums are exact in any order, so ``index_add_``'s order (atomic on CUDA) cannot change a bit.

**Memory planning** (:func:`plan`). The gather works on bounded blocks: at most ``group_block`` (active pair,
bucket) groups and about ``event_block`` entries (plus one column) at a time, whatever the batch. The memory a
run may use is what is free on the device (``torch.cuda.mem_get_info`` plus torch's cached, unallocated blocks;
on the CPU ``MemAvailable``) times ``MEMORY_FRACTION``, or ``$NEURODEPLOY_TORCH_MEMORY_GB`` when that is smaller;
after the block work space, the batch runs in chunks of as many samples as their state, rings, scratch, stimulus
and recording buffers fit. A network whose single sample does not fit is a :class:`CapacityError`.

Not run (a named :class:`UnsupportedOpError`, never a switch): float mode, graded synapses, PlasticDense (on-chip
learning) and Astrocyte controllers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from neurodeploy.errors import CapacityError, InputError, UnsupportedOpError
from neurodeploy.ir import arithmetic as ar

if TYPE_CHECKING:
    from neurodeploy.emulator.engine import Program

#: ``wrap32(x) = ((x + INT32_HALF) & INT32_MASK) - INT32_HALF``: the int32 store of arithmetic.wrap_int32
INT32_HALF = ar.INT32_HALF
INT32_MASK = ar.INT32_MASK
#: Lava's conditional wrap of u into 24 bits adds or subtracts 2**24 (arithmetic.lif_step)
UV_SPAN = ar.UV_SPAN
#: adding ``DECAY_UNITY - 1`` to a negative product turns the floor shift into truncation (arithmetic._trunc_shift)
TRUNC_BIAS = ar.TRUNC_BIAS
#: Share of the free device memory a run plans to use.
MEMORY_FRACTION = 0.85
#: Environment variable: an upper bound, in GB, on the memory a run plans to use (any device).
MEMORY_ENV = "NEURODEPLOY_TORCH_MEMORY_GB"
#: Bytes of temporaries per gathered entry (pointers, rows, weights, targets as int64, the e < 0 read-back) and per
#: (active pair, bucket) group; an upper bound of what :meth:`_Runner._blocks` and :meth:`_Runner._deliver` hold.
BYTES_PER_EVENT = 128
BYTES_PER_GROUP = 128
#: Bounds of the gathered entries per block: the plan takes a quarter of the usable memory within them.
EVENT_BLOCK_MIN = 1 << 16
EVENT_BLOCK_MAX = 1 << 25
#: Bounds of the (active pair, bucket) groups per slice: the plan takes an eighth of the usable memory within them.
GROUP_BLOCK_MIN = 1 << 16
GROUP_BLOCK_MAX = 1 << 25
#: int64 words per neuron and sample held by the state and the update's temporaries (u, v, a_in and ~7 more).
STATE_WORDS = 10
#: Recorded steps staged on the device before one copy to the host.
RECORD_STEPS = 32
BYTES_INT64 = 8
FIELDS = ("u", "v", "spikes")
FIELD_BYTES = {"u": 4, "v": 4, "spikes": 1}  # int32, int32, uint8, as the other engines record them

_TORCH: dict = {}


def torch_problem() -> str | None:
    """``None`` when torch is importable, else why not (imports torch on the first call)."""
    if "problem" not in _TORCH:
        try:
            import torch  # noqa: F401
        except ImportError as err:
            _TORCH["problem"] = f"torch is not importable ({err})"
        else:
            _TORCH["problem"] = None
    return _TORCH["problem"]


def unsupported(program: Program) -> str | None:
    """``None`` when the torch engine can run ``program``, else why not."""
    from neurodeploy.emulator.plasticity import PlasticRunner

    if not program.integer:
        return "float mode runs on the numpy and numba engines only (the torch engine runs Loihi integers)"
    graded = [n for n, s in program.synapses.items() if not isinstance(s, PlasticRunner) and s.graded]
    if graded:
        return f"graded synapses (num_message_bits > 0) run on the numpy engine only: {graded}"
    plastic = [n for n, s in program.synapses.items() if isinstance(s, PlasticRunner)]
    if plastic:
        return f"PlasticDense (on-chip learning) runs on the numpy engine only: {plastic}"
    if program.controllers:
        return f"Astrocyte controllers run on the numpy engine only: {sorted(program.controllers)}"
    return None


def resolve_device(device: str | None):
    """The ``torch.device`` for ``device`` (``None`` means ``cpu``); CUDA asked for where there is none is an error."""
    import torch

    name = "cpu" if device is None else str(device)
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"device {name!r} is not a torch device", fix="use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device {name!r}: the torch engine runs on cpu or cuda", fix="use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UnsupportedOpError(f"device {name!r} asked for, but torch sees no CUDA device "
                                     f"(torch {torch.__version__}, CUDA build {torch.version.cuda})",
                                     fix="run with device 'cpu', or on a machine with a CUDA GPU and a CUDA torch")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InputError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s)",
                             fix="pick an existing cuda:N")
        dev = torch.device("cuda", index)
    return dev


# --------------------------------------------------------------------------------------------- preparation
@dataclass
class _Synapse:
    """One synapse op on the device (module docstring, *Preparation*)."""

    name: str
    src: str
    n_in: int
    n_out: int
    length: int  # ring slots L = max_delay + 1
    exp: int
    delays: np.ndarray  # int64 [n_buckets], host
    delays_t: object  # the same on the device
    ptr: object  # int64 [n_buckets * n_in + 1]
    rows: object  # int32 [nnz]
    vals: object  # int16 [nnz]
    bucket_base: object  # int64 [n_buckets]: d * n_in
    max_column: int  # most entries of one column of one bucket
    targets: list = field(default_factory=list)  # population offsets it delivers to

    @property
    def n_buckets(self) -> int:
        return int(self.delays.size)


@dataclass
class Prepared:
    """A Program's parameters and synapses on one device."""

    device: object
    n_neurons: int
    pop_names: list
    pop_off: list
    pop_size: list
    fac_u: object
    fac_v: object
    bias: object
    thr: object
    sub: object
    input_off: dict
    n_in: int
    sources: dict  # source name -> ("input" | "pop", offset, size)
    synapses: list
    #: populations with a periodic state reset: ``(offset, size, interval, offset mod interval)`` each
    resets: list = field(default_factory=list)


def _neuron_params(program: Program) -> tuple[list, list, list, dict]:
    """Per-neuron int64 arrays ``fac_u, fac_v, bias, thr, sub`` (the kernel's lowering) and population offsets."""
    names = list(program.neurons)
    parts: dict[str, list] = {k: [] for k in ("fac_u", "fac_v", "bias", "thr", "sub")}
    offsets, sizes, off = [], [], 0
    for name in names:
        p = program.neurons[name]
        offsets.append(off)
        sizes.append(p.size)
        off += p.size
        parts["fac_u"].append(np.full(p.size, ar.DECAY_UNITY - (p.du + 1), np.int64))
        parts["fac_v"].append(np.full(p.size, ar.DECAY_UNITY - p.dv, np.int64))
        parts["bias"].append(np.asarray(p.bias, dtype=np.int64))
        parts["thr"].append(np.full(p.size, int(ar.wrap_int32(np.int64(p.vth) << ar.VTH_SHIFT)), np.int64))
        parts["sub"].append(np.full(p.size, p.reset != "zero"))
    arrays = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    return names, offsets, sizes, arrays


def prepare(program: Program, device) -> Prepared:
    """Move ``program``'s integer parameters and delay buckets to ``device`` (cached on the Program)."""
    import torch

    cache = program.__dict__.setdefault("_torch_prepared", {})
    key = str(device)
    if key in cache:
        return cache[key]
    names, offsets, sizes, arrays = _neuron_params(program)
    t = {k: torch.as_tensor(v).to(device) for k, v in arrays.items()}
    sources, input_off, n_in = {}, {}, 0
    for name in program.inputs:
        size = int(math.prod(program.shapes[name]))
        sources[name] = ("input", n_in, size)
        input_off[name] = n_in
        n_in += size
    for name, off, size in zip(names, offsets, sizes):
        sources[name] = ("pop", off, size)
    synapses = {}
    for name, runner in program.synapses.items():
        cb = runner.columns
        sizes_per_column = np.diff(cb.ptr)
        syn = _Synapse(
            name=name, src=program.syn_source[name], n_in=runner.n_in, n_out=runner.n_out,
            length=runner.max_delay + 1, exp=runner.weight_exp, delays=np.asarray(cb.delays, np.int64),
            delays_t=torch.as_tensor(np.asarray(cb.delays, np.int64)).to(device),
            ptr=torch.as_tensor(np.asarray(cb.ptr, np.int64)).to(device),
            rows=torch.as_tensor(np.asarray(cb.rows).astype(np.int32)).to(device),
            vals=torch.as_tensor(np.asarray(cb.vals, np.int16)).to(device),
            bucket_base=torch.arange(cb.delays.size, dtype=torch.int64, device=device) * runner.n_in,
            max_column=int(sizes_per_column.max(initial=0)))
        synapses[name] = syn
    for name, off in zip(names, offsets):
        for syn in program.neuron_inputs[name]:
            synapses[syn].targets.append(off)
    resets = []
    for name, off, size in zip(names, offsets, sizes):
        p = program.neurons[name]
        if p.reset_interval > 0:
            resets.append((off, size, int(p.reset_interval), int(p.reset_offset) % int(p.reset_interval)))
    prepared = Prepared(device, int(sum(sizes)), names, offsets, sizes, t["fac_u"], t["fac_v"], t["bias"], t["thr"],
                        t["sub"], input_off, n_in, sources, list(synapses.values()), resets)
    cache[key] = prepared
    return prepared


# ------------------------------------------------------------------------------------------------ memory plan
@dataclass
class Plan:
    """How a run uses the device: samples per batch chunk, gathered entries and groups per block."""

    chunk: int
    event_block: int
    group_block: int
    usable_bytes: int
    per_sample_bytes: int
    work_bytes: int


def usable_memory(device) -> int:
    """Bytes a run may plan for on ``device`` (module docstring, *Memory planning*)."""
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    else:
        free = _host_available()
    usable = int(free * MEMORY_FRACTION)
    bound = os.environ.get(MEMORY_ENV, "").strip()
    if bound:
        try:
            gb = float(bound)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise InputError(f"{MEMORY_ENV} = {bound!r} is not a positive number of GB",
                             fix="set it to the memory bound in GB, or unset it")
        usable = min(usable, int(gb * 1e9))
    return usable


def _host_available() -> int:
    """``MemAvailable`` of /proc/meminfo, else the free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")  # pragma: no cover


def per_sample_bytes(prep: Prepared, steps: int, rec_width: dict[str, int]) -> int:
    """Device bytes one sample of a chunk holds: state and update temporaries, spikes, rings, e < 0 scratch, its
    stimulus and the staged recordings."""
    state = prep.n_neurons * (STATE_WORDS * BYTES_INT64 + 2)
    rings = sum(s.length * s.n_out * BYTES_INT64 for s in prep.synapses)
    scratch = sum(s.length * s.n_out * BYTES_INT64 for s in prep.synapses if s.exp < 0)
    stimulus = steps * prep.n_in
    staged = min(steps, RECORD_STEPS) * sum(FIELD_BYTES[f] * w for f, w in rec_width.items())
    return state + rings + scratch + stimulus + staged


def plan(prep: Prepared, batch: int, steps: int, rec_width: dict[str, int], usable: int | None = None) -> Plan:
    """The batch chunk and block sizes for a run of ``batch`` samples (module docstring, *Memory planning*)."""
    usable = usable_memory(prep.device) if usable is None else usable
    max_column = max((s.max_column for s in prep.synapses), default=0)
    most = batch * max((int(s.rows.numel()) for s in prep.synapses), default=0)  # a step's entries, at most
    event_block = int(min(EVENT_BLOCK_MAX, most, max(EVENT_BLOCK_MIN, usable // 4 // BYTES_PER_EVENT)))
    most_groups = max(1, batch * max((s.n_in * s.n_buckets for s in prep.synapses), default=1))
    group_block = int(min(GROUP_BLOCK_MAX, most_groups, max(GROUP_BLOCK_MIN, usable // 8 // BYTES_PER_GROUP)))
    work = (event_block + max_column) * BYTES_PER_EVENT + group_block * BYTES_PER_GROUP
    sample = per_sample_bytes(prep, steps, rec_width)
    chunk = min(batch, (usable - work) // sample) if usable > work else 0
    if chunk < 1:
        raise CapacityError(f"one sample needs {(sample + work) / 1e9:.3g} GB on {prep.device} ({sample / 1e9:.3g} "
                            f"GB of state, delay lines and stimulus, {work / 1e9:.3g} GB of gather space), "
                            f"{usable / 1e9:.3g} GB may be used",
                            fix=f"free device memory, run fewer steps per call, or raise {MEMORY_ENV}")
    return Plan(int(chunk), event_block, group_block, usable, sample, work)


# ------------------------------------------------------------------------------------------------- the run
def run(program: Program, inputs: dict[str, np.ndarray], traces: dict[str, np.ndarray],
        counts: dict[str, np.ndarray], progress: bool = False, device: str | None = None) -> Plan:
    """Run ``program`` on the checked ``inputs`` (``[B, T, n]`` uint8 per Input) on ``device``.

    Fills the preallocated ``traces`` (``'<node>/<field>' -> [B, T, size]``) and ``counts`` (spikes per neuron,
    summed over the batch) in place, as the other engines do; returns the memory :class:`Plan` it ran under.
    """
    import torch

    dev = resolve_device(device)
    prep = prepare(program, dev)
    batch, steps = next(iter(inputs.values())).shape[:2]
    stim = _stimulus(prep, inputs, batch, steps)
    rec = _recorded(prep, traces)
    rec_width = {f: sum(prep.pop_size[p] for p, fld in rec if fld == f) for f in FIELDS}
    the_plan = plan(prep, batch, steps, rec_width)
    spike_counts = torch.zeros(prep.n_neurons, dtype=torch.int64, device=dev)
    bar = None
    if progress:
        from tqdm import tqdm

        n_chunks = -(-batch // the_plan.chunk)
        bar = tqdm(total=steps * n_chunks, desc=f"emulating (torch {dev})", unit="step")
    threads = torch.get_num_threads()
    try:
        if dev.type == "cpu":  # NEURODEPLOY_THREADS caps torch's intra-op threads as it caps numba's
            from neurodeploy.emulator.kernel import threads as wanted_threads

            torch.set_num_threads(wanted_threads())
        with torch.inference_mode():
            for b0 in range(0, batch, the_plan.chunk):
                b1 = min(batch, b0 + the_plan.chunk)
                runner = _Runner(prep, the_plan, b1 - b0, steps)
                runner.run(torch.as_tensor(stim[b0:b1]).to(dev), rec, traces, b0, spike_counts, bar)
                del runner  # freed before the next chunk allocates its own: one chunk's memory at a time
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    host_counts = spike_counts.cpu().numpy()
    for name, off, size in zip(prep.pop_names, prep.pop_off, prep.pop_size):
        counts[name][:] = host_counts[off:off + size]
    return the_plan


def _stimulus(prep: Prepared, inputs: dict[str, np.ndarray], batch: int, steps: int) -> np.ndarray:
    """All Input nodes end to end: ``[B, T, n_in]`` uint8 (a view when there is one input)."""
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    stim = np.zeros((batch, steps, prep.n_in), np.uint8)
    for name, x in inputs.items():
        off = prep.input_off[name]
        stim[:, :, off:off + x.shape[2]] = x
    return stim


def _recorded(prep: Prepared, traces: dict[str, np.ndarray]) -> list[tuple[int, str]]:
    """``(population index, field)`` of every preallocated trace."""
    return [(p, f) for p, name in enumerate(prep.pop_names) for f in FIELDS if f"{name}/{f}" in traces]


def _wrap32(x):
    """``x`` (int64) into [-2**31, 2**31) modulo 2**32: an int32 store (arithmetic.wrap_int32)."""
    return ((x + INT32_HALF) & INT32_MASK) - INT32_HALF


def _trunc_shift(p):
    """``sign(p) (|p| >> 12)``: the decay's rounding toward zero (arithmetic.decay)."""
    import torch

    return torch.where(p < 0, p + TRUNC_BIAS, p) >> ar.DECAY_SHIFT


def lif_step(u, v, a_in, prep: Prepared):
    """Step 2 of the module docstring on ``[B, N]`` int64 tensors; returns ``(u', v', spikes)``."""
    import torch

    x = _wrap32(_trunc_shift(u * prep.fac_u))
    x = _wrap32(x + _wrap32(_wrap32(a_in) << ar.ACT_SHIFT))
    x = x - UV_SPAN * (x > ar.MAX_UV) + UV_SPAN * (x <= -ar.MAX_UV)
    y = _wrap32(_trunc_shift(v * prep.fac_v))
    y = _wrap32(_wrap32(y + x) + prep.bias)
    y = y.clamp_(1 - ar.MAX_UV, ar.MAX_UV - 1)
    s = y > prep.thr
    reset = torch.where(prep.sub, _wrap32(y - prep.thr), torch.zeros_like(y))
    return x, torch.where(s, reset, y), s


class _Runner:
    """The state of one batch chunk and the step loop (module docstring, *Step*)."""

    def __init__(self, prep: Prepared, the_plan: Plan, batch: int, steps: int):
        import torch

        self.torch = torch
        self.prep, self.plan, self.batch, self.steps = prep, the_plan, batch, steps
        dev = prep.device
        self.u = torch.zeros((batch, prep.n_neurons), dtype=torch.int64, device=dev)
        self.v = torch.zeros_like(self.u)
        self.a_in = torch.zeros_like(self.u)
        self.rings = [torch.zeros((s.length, batch, s.n_out), dtype=torch.int64, device=dev) for s in prep.synapses]
        self.scratch = [torch.zeros_like(ring) if s.exp < 0 else None for s, ring in zip(prep.synapses, self.rings)]
        self._arange = torch.zeros(0, dtype=torch.int64, device=dev)

    def arange(self, n: int):
        """``0 .. n - 1`` (int64 on the device), a view of one tensor grown as needed."""
        if self._arange.numel() < n:
            self._arange = self.torch.arange(max(n, 2 * self._arange.numel()), dtype=self.torch.int64,
                                             device=self.prep.device)
        return self._arange[:n]

    def run(self, stim, rec, traces, b0, spike_counts, bar) -> None:
        """All steps of this chunk; recordings staged on the device and copied every ``RECORD_STEPS`` steps."""
        torch, prep = self.torch, self.prep
        names = prep.pop_names
        stage = {(p, f): torch.zeros((self.batch, min(self.steps, RECORD_STEPS), prep.pop_size[p]),
                                     dtype=torch.uint8 if f == "spikes" else torch.int32, device=prep.device)
                 for p, f in rec}
        k_stage = 0
        for k in range(self.steps):
            s = self.step(k, stim)
            spike_counts += s.sum(dim=0)
            values = {"u": self.u, "v": self.v, "spikes": s}
            slot = k - k_stage
            for (p, f), buf in stage.items():
                off = prep.pop_off[p]
                buf[:, slot] = values[f][:, off:off + prep.pop_size[p]]
            if slot + 1 == RECORD_STEPS or k + 1 == self.steps:
                for (p, f), buf in stage.items():
                    traces[f"{names[p]}/{f}"][b0:b0 + self.batch, k_stage:k + 1] = buf[:, :slot + 1].cpu().numpy()
                k_stage = k + 1
            if bar is not None:
                bar.update(1)

    def step(self, k: int, stim):
        """Steps 1-4 of step ``k``; returns the spikes ``[B, N]`` (bool)."""
        prep = self.prep
        self.a_in.zero_()
        for syn, ring in zip(prep.synapses, self.rings):
            for off in syn.targets:
                self.a_in[:, off:off + syn.n_out] += ring[k % syn.length]
        for off, size, interval, phase in prep.resets:  # periodic state reset before the update (Lava t = k + 1)
            if (k + 1) % interval == phase:
                self.u[:, off:off + size] = 0
                self.v[:, off:off + size] = 0
        self.u, self.v, s = lif_step(self.u, self.v, self.a_in, prep)
        active: dict[str, tuple] = {}
        for syn, ring, scratch in zip(prep.synapses, self.rings, self.scratch):
            ring[k % syn.length].zero_()
            if syn.src not in active:
                kind, off, size = prep.sources[syn.src]
                emitted = stim[:, k, off:off + size] if kind == "input" else s[:, off:off + size]
                pairs = (emitted != 0).nonzero()
                active[syn.src] = (pairs[:, 0], pairs[:, 1])
            b_idx, j_idx = active[syn.src]
            if b_idx.numel():
                self._deliver(k, syn, ring, scratch, b_idx, j_idx)
        return s

    def _groups(self, syn: _Synapse, b_idx, j_idx):
        """The (active pair, bucket) groups, in slices of at most ``group_block``: ``(b, bucket, column start,
        entries)`` each (``bucket`` is ``None`` for a one-bucket synapse)."""
        torch = self.torch
        nb = syn.n_buckets
        per_slice = max(1, self.plan.group_block // nb)
        for p0 in range(0, b_idx.numel(), per_slice):
            b = b_idx[p0:p0 + per_slice]
            j = j_idx[p0:p0 + per_slice]
            if nb == 1:
                gb, gk, g = b, None, j
            else:
                g = (j[:, None] + syn.bucket_base[None, :]).reshape(-1)
                gb = b[:, None].expand(-1, nb).reshape(-1)
                gk = torch.arange(nb, device=b.device)[None, :].expand(b.numel(), -1).reshape(-1)
            start = syn.ptr.index_select(0, g)
            yield gb, gk, start, syn.ptr.index_select(0, g + 1) - start

    def _blocks(self, syn: _Synapse, b_idx, j_idx):
        """Gathered entries in blocks of about ``event_block``: ``(b, bucket, rep, pos)`` with ``pos`` the entry
        positions (into rows / vals) and ``rep`` the group of each entry (indexing ``b`` and ``bucket``)."""
        torch = self.torch
        block = self.plan.event_block
        for gb, gk, start, cnt in self._groups(syn, b_idx, j_idx):
            cum = cnt.cumsum(0)
            first = cum - cnt
            total = int(cum[-1])
            if total == 0:
                continue
            if total <= block:
                bounds = [(0, cnt.numel(), 0, total)]
            else:  # split at group boundaries where the running entry count passes a multiple of the block
                which = first // block
                cuts = ((which[1:] != which[:-1]).nonzero().reshape(-1) + 1).tolist()
                edges = [0] + cuts + [cnt.numel()]
                offsets = first[torch.as_tensor(edges[:-1], device=first.device)].tolist() + [total]
                bounds = [(edges[i], edges[i + 1], offsets[i], offsets[i + 1]) for i in range(len(edges) - 1)]
            for a, z, e0, e1 in bounds:
                c = cnt[a:z]
                rep = torch.repeat_interleave(torch.arange(z - a, device=c.device), c, output_size=e1 - e0)
                pos = (start[a:z] - (first[a:z] - e0)).index_select(0, rep) + self.arange(e1 - e0)
                yield gb[a:z], (None if gk is None else gk[a:z]), rep, pos

    def _targets(self, syn: _Synapse, k: int, gb, gk, rep, pos):
        """Per gathered entry: its position in the ring ``[L, B, n_out]`` (flattened) at step ``k``."""
        slots = (k + 1 + syn.delays_t) % syn.length  # ring slot of each bucket at this step
        slot = slots[:1] if gk is None else slots.index_select(0, gk)
        plane = self.batch * syn.n_out
        return (slot * plane + gb * syn.n_out).index_select(0, rep) + syn.rows.index_select(0, pos)

    def _deliver(self, k: int, syn: _Synapse, ring, scratch, b_idx, j_idx) -> None:
        """Step 4 for one synapse: the gathered weights reach ``ring`` (module docstring)."""
        int64 = self.torch.int64
        flat = ring.view(-1)
        if syn.exp >= 0:
            for block in self._blocks(syn, b_idx, j_idx):
                weight = syn.vals.index_select(0, block[3]).to(int64)
                if syn.exp:
                    weight <<= syn.exp
                flat.index_add_(0, self._targets(syn, k, *block), weight)
            return
        sums = scratch.view(-1)
        kept, n_blocks = None, 0
        for block in self._blocks(syn, b_idx, j_idx):  # exact int64 sums per (bucket, sample, row)
            at = self._targets(syn, k, *block)
            sums.index_add_(0, at, syn.vals.index_select(0, block[3]).to(int64))
            n_blocks += 1
            kept = at if n_blocks == 1 else None
        if n_blocks == 1:
            self._apply_shifted(syn, flat, sums, kept)
        elif n_blocks:  # the positions again, block by block (bounded memory)
            for block in self._blocks(syn, b_idx, j_idx):
                self._apply_shifted(syn, flat, sums, self._targets(syn, k, *block))

    @staticmethod
    def _apply_shifted(syn: _Synapse, flat, sums, at) -> None:
        """``ring[at] += sums[at] >> -weight_exp`` once per position, then ``sums[at] = 0``: repeated positions
        read the same sum and the same ring value and write the same result; a position already applied by an
        earlier block reads a cleared sum, ``0 >> n = 0``."""
        shifted = sums.index_select(0, at) >> -syn.exp
        flat.index_copy_(0, at, flat.index_select(0, at) + shifted)
        sums.index_fill_(0, at, 0)
