"""LSM scale benchmark: generate, compile and emulate reservoirs of 10k / 100k / 1M neurons at ~100 synapses each.

Every size runs in two fresh child processes (peak memory per process; a runaway child is stopped), each first
generating the reservoir with :func:`neurodeploy.families.lsm.scale.large_reservoir` (near-cubic 3-D grid, 80/20
E/I, Maass distance dependence with ``lam`` solved for ``--degree`` synapses per neuron including the grid faces,
distance delays, 100 input channels at ``--p-in``) and its float IR graph:

* **compile** child: ``compile_graph(graph, "emulator", calibration=...)`` -- fold, the calibrated quantize pass,
  check_limits -- with the manifest's per-pass seconds. (The ``loihi2`` target adds the partition pass and a
  single-chip capacity check that every size above 10k fails by design; both are run in the deploy child.) A
  watchdog thread samples the main thread's stack every ``--sample`` seconds, so a compile that is killed
  (``--compile-timeout``) or runs out of memory (``RLIMIT_AS = --mem-limit-gb``) is reported with the pass and the
  function it was in.
* **deploy** child: :func:`~neurodeploy.families.lsm.scale.lower_maxabs` (the quantize pass's ``maxabs`` integers,
  vectorised; equal to the pass on small graphs, tests/test_lsm.py) gives the integer graph at every size; then
  the Loihi 2 **partition pass** with hw_profiles/loihi2.toml's per-core limits (on CapacityError its message is
  recorded and the pass rerun with ``neurons_per_core`` lowered to 2/3 of the failing slice -- the fix it names --
  starting from the cap that fitted the previous size); the **emulator** (``Program`` + ``run`` for ``--steps``
  steps of Bernoulli(``--rate``) input; throughput = synaptic events, a spike crossing one synapse, per second of
  ``run``); the **SpiNNaker 1 mapping report** (:func:`neurodeploy.backends.pynn.mapping_report`).

Peak memory is ``ru_maxrss`` (a high-water mark, generation included). Usage (repo root)::

    .venv/bin/python benchmarks/bench_lsm_scale.py --mem-limit-gb 10 --compile-timeout 900 --json out/lsm_scale.json
    .venv/bin/python benchmarks/bench_lsm_scale.py --sizes 10000 --skip-compile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import traceback

import numpy as np


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: KiB


def _emit(event: str, **data) -> None:
    print(json.dumps({"event": event, "t": round(time.perf_counter() - T0, 2), "peak_rss_gb": round(_rss_gb(), 3),
                      **data}, default=str), flush=True)


def _watchdog(main_ident: int, period: float) -> None:
    while True:
        time.sleep(period)
        frame = sys._current_frames().get(main_ident)
        if frame is None:
            return
        stack = [f"{os.path.relpath(fs.filename)}:{fs.lineno} {fs.name}" for fs in traceback.extract_stack(frame)
                 if "site-packages" not in fs.filename and "/lib/python" not in fs.filename][-8:]
        _emit("stack", stack=stack)


def loihi2_mapping(graph, cap: int) -> dict:
    """The loihi2 target's partition pass (per-core limits of hw_profiles/loihi2.toml) on a quantized graph.

    When it raises CapacityError, the error is recorded and the pass is rerun with ``neurons_per_core`` lowered
    (the fix its message names) to 2/3 of the failing slice, starting from ``cap``, until it fits."""
    import re
    from dataclasses import replace

    from neurodeploy.errors import CapacityError
    from neurodeploy.passes.limits import population_demand
    from neurodeploy.passes.partition import partition
    from neurodeploy.profiles import load_profile

    profile = load_profile("loihi2")
    limits = profile.limits.core_limits()
    start = time.perf_counter()
    demand = population_demand(graph, profile)
    out: dict = {"min_cores_by_neurons_and_memory": sum(d["min_cores"] for d in demand.values()),
                 "demand_seconds": round(time.perf_counter() - start, 2), "start_cap": cap, "attempts": []}
    cap = min(cap, limits.neurons_per_core)
    while len(out["attempts"]) < 12:
        start = time.perf_counter()
        try:
            report = partition(graph, replace(limits, neurons_per_core=cap))[0].meta["mapping"]
        except CapacityError as err:
            out["attempts"].append({"neurons_per_core": cap, "seconds": round(time.perf_counter() - start, 2),
                                    "error": str(err)})
            _emit("partition_attempt", **out["attempts"][-1])
            found = re.search(r"neurons (\d+)\.\.(\d+)", str(err))
            size = int(found.group(2)) - int(found.group(1)) + 1 if found else cap
            cap = max(1, min(cap, size) * 2 // 3)
            continue
        per_core = report["per_core"]
        out.update(neurons_per_core_cap=cap, cores=report["cores"], chips=report["chips"],
                   partition_seconds=round(time.perf_counter() - start, 2),
                   max_neurons_per_core=max(c["stop"] - c["start"] for c in per_core),
                   max_fan_out=max(c["fan_out"] for c in per_core), max_fan_in=max(c["fan_in"] for c in per_core),
                   max_synaptic_memory_bits=max(c["synaptic_memory_bits"] for c in per_core))
        return out
    return out


def _setup(args):
    import scipy  # noqa: F401  (imported before the memory limit: its import maps large libraries)

    from neurodeploy.families.lsm.scale import large_reservoir

    limit = int(args.mem_limit_gb * 1024 ** 3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    threading.Thread(target=_watchdog, args=(threading.main_thread().ident, args.sample), daemon=True).start()
    start = time.perf_counter()
    lsm = large_reservoir(args.child, args.degree, args.inputs, args.p_in)
    gen_s = time.perf_counter() - start
    graph = lsm.graph()
    _emit("generated", neurons=lsm.n, grid=list(lsm.conn.spec.grid), lam=round(lsm.conn.spec.lam, 4),
          synapses=lsm.conn.synapses, input_synapses=int(lsm.w_in_value.size), seconds=round(gen_s, 2),
          delays=[int(lsm.conn.delay.min()), int(lsm.conn.delay.max())])
    return lsm, graph


def child_compile(args) -> None:
    """compile_graph(graph, "emulator"): fold, calibrated quantize, check_limits (no capacity limits)."""
    from neurodeploy.compiler import compile_graph

    lsm, graph = _setup(args)
    del lsm
    rng = np.random.default_rng(0)
    calib = (rng.random((args.calib_batch, args.calib_steps, args.inputs)) < args.rate).astype(np.uint8)
    start = time.perf_counter()
    try:
        art = compile_graph(graph, "emulator", calibration=calib)
    except Exception as err:  # MemoryError arrives wrapped in the pass manager's PassError
        _emit("compile_failed", error=f"{type(err).__name__}: {err} (RLIMIT_AS {args.mem_limit_gb} GB)",
              seconds=round(time.perf_counter() - start, 2),
              stack=[f"{os.path.relpath(fs.filename)}:{fs.lineno} {fs.name}" for fs in
                     traceback.extract_tb((err.__cause__ or err).__traceback__)][-10:])
        return
    _emit("compiled", seconds=round(time.perf_counter() - start, 2),
          passes={p["name"]: round(p["seconds"], 2) for p in art.manifest["passes"]})


def child_deploy(args) -> None:
    """lower_maxabs (the quantize pass's max-abs integers, vectorised), partition, emulate, SpiNNaker mapping."""
    from neurodeploy.emulator import Program
    from neurodeploy.families.lsm.scale import lower_maxabs

    lsm, graph = _setup(args)
    n = lsm.n
    del lsm
    start = time.perf_counter()
    qgraph = lower_maxabs(graph, "loihi2")
    _emit("lowered", seconds=round(time.perf_counter() - start, 2))
    del graph
    if n <= args.partition_max_neurons:
        _emit("loihi2_mapping", **loihi2_mapping(qgraph, args.loihi_cap))
    else:
        from neurodeploy.passes.limits import population_demand

        demand = population_demand(qgraph, "loihi2")
        _emit("loihi2_mapping", skipped=f"partition not run above {args.partition_max_neurons} neurons "
              "(its fan-out count did not finish in 15 min at 1M neurons)",
              min_cores_by_neurons_and_memory=sum(d["min_cores"] for d in demand.values()))
    from neurodeploy.backends import pynn

    start = time.perf_counter()
    report = pynn.mapping_report(qgraph, machine="spinnaker1")
    _emit("spinnaker_mapping", seconds=round(time.perf_counter() - start, 2),
          **{k: report.get(k) for k in ("neuron_cores", "spike_source_cores", "delay_extension_cores",
                                        "application_cores", "chips", "boards", "max_routing_entries")})
    start = time.perf_counter()
    program = Program(qgraph)
    prep_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    x = (rng.random((1, args.steps, args.inputs)) < args.rate).astype(np.uint8)
    start = time.perf_counter()
    result = program.run(x)
    run_s = time.perf_counter() - start
    events = int(sum(result.synaptic_ops.values()))
    spikes = int(result.spike_counts.get("reservoir", 0))
    _emit("emulated", prepare_seconds=round(prep_s, 2), run_seconds=round(run_s, 2), steps=args.steps,
          synaptic_events=events, events_per_second=round(events / run_s), reservoir_rate=spikes / (n * args.steps))
    del program, result
    _emit("done")


def _run_child(args, n: int, mode: str, timeout: float, cap: int) -> tuple[dict, list[dict]]:
    cmd = [sys.executable, __file__, "--child", str(n), "--mode", mode, "--degree", str(args.degree), "--inputs",
           str(args.inputs), "--p-in", str(args.p_in), "--steps", str(args.steps), "--rate", str(args.rate),
           "--calib-batch", str(args.calib_batch), "--calib-steps", str(args.calib_steps),
           "--mem-limit-gb", str(args.mem_limit_gb), "--sample", str(args.sample), "--loihi-cap", str(cap),
           "--partition-max-neurons", str(args.partition_max_neurons)]
    print(f"== {n} neurons: {mode}", file=sys.stderr, flush=True)
    events: list[dict] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    for line in proc.stdout:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        events.append(ev)
        if ev["event"] != "stack":
            print(f"   {ev['event']:<18} t={ev['t']:>8.1f}s peak={ev['peak_rss_gb']:.2f} GB", file=sys.stderr,
                  flush=True)
    proc.wait()
    timer.cancel()
    err = proc.stderr.read()
    row: dict = {"returncode": proc.returncode, "killed_after_timeout": proc.returncode == -9,
                 "timeout": timeout}
    for ev in events:
        if ev["event"] != "stack":
            row[ev["event"]] = ev
    stacks = [ev for ev in events if ev["event"] == "stack"]
    if proc.returncode != 0 or "compile_failed" in row:
        row["last_stack"] = stacks[-1] if stacks else None
        row["stderr_tail"] = err[-1500:]
    return row, events


def parent(args) -> list[dict]:
    rows = []
    cap = 8192
    for n in args.sizes:
        row: dict = {"neurons": n}
        if not args.skip_compile:
            row["compile"], _ = _run_child(args, n, "compile", args.compile_timeout, cap)
        row["deploy"], _ = _run_child(args, n, "deploy", args.timeout, cap)
        cap = row["deploy"].get("loihi2_mapping", {}).get("neurons_per_core_cap", cap)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'neurons':>9} {'synapses':>11} {'gen s':>6} {'compile s':>9} {'peak GB':>7} {'compile passes (s)':<40} "
            f"{'lower s':>7} {'emu Mev/s':>9} {'Loihi2 cores/chips':>24} {'SpiNNaker cores/chips/boards':>28}")
    lines = [head, "-" * len(head)]
    for r in rows:
        comp, dep = r.get("compile", {}), r.get("deploy", {})
        gen = dep.get("generated", {})
        done = comp.get("compiled")
        if done:
            passes = " ".join(f"{k}={v}" for k, v in done["passes"].items())
            comp_s, peak = done["seconds"], done["peak_rss_gb"]
        elif comp:
            passes = "failed: MemoryError" if "compile_failed" in comp else (
                f"killed after {comp.get('timeout')} s" if comp.get("killed_after_timeout") else "failed")
            comp_s, peak = "-", max((v.get("peak_rss_gb", 0) for v in comp.values() if isinstance(v, dict)),
                                    default=0)
        else:
            passes, comp_s, peak = "not run", "-", 0
        lo, emu, spin = dep.get("loihi2_mapping", {}), dep.get("emulated", {}), dep.get("spinnaker_mapping", {})
        loihi = f"{lo.get('cores', '-')}/{lo.get('chips', '-')} (<={lo.get('neurons_per_core_cap', '-')}/core)"
        spinn = (f"{spin.get('application_cores', '-')}/{spin.get('chips', '-')}/{spin.get('boards', '-')}"
                 if spin else "-")
        rate = f"{emu['events_per_second'] / 1e6:.1f}" if emu else "-"
        lines.append(f"{r['neurons']:>9} {gen.get('synapses', 0):>11} {gen.get('seconds', 0):>6} {comp_s:>9} "
                     f"{peak:>7.2f} {passes:<40} {dep.get('lowered', {}).get('seconds', '-'):>7} {rate:>9} "
                     f"{loihi:>24} {spinn:>28}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--degree", type=float, default=100.0, help="synapses per neuron (mean, grid faces included)")
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--p-in", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=50, help="emulator steps for the throughput figure")
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    parser.add_argument("--calib-batch", type=int, default=2)
    parser.add_argument("--calib-steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for a size's deploy child")
    parser.add_argument("--compile-timeout", type=float, default=600.0, help="seconds for a size's compile child")
    parser.add_argument("--skip-compile", action="store_true", help="skip compile_graph (deploy figures only)")
    parser.add_argument("--partition-max-neurons", type=int, default=200_000,
                        help="run the Loihi 2 partition pass only up to this size")
    parser.add_argument("--mode", default="deploy", help=argparse.SUPPRESS)
    parser.add_argument("--loihi-cap", type=int, default=8192, help=argparse.SUPPRESS)
    parser.add_argument("--mem-limit-gb", type=float, default=12.0)
    parser.add_argument("--sample", type=float, default=10.0, help="stack sampling period (s)")
    parser.add_argument("--json", default=None, help="write the raw rows here")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        (child_compile if args.mode == "compile" else child_deploy)(args)
        return 0
    rows = parent(args)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"RLIMIT_AS {args.mem_limit_gb} GB per size")
    print(table(rows))
    for r in rows:
        for part in ("compile", "deploy"):
            sub = r.get(part, {})
            if sub and "last_stack" in sub:
                print(f"\n{r['neurons']} neurons, {part}: returncode {sub['returncode']}"
                      f"{' (killed after the timeout)' if sub['killed_after_timeout'] else ''}; last sampled stack:")
                for frame in (sub.get("last_stack") or {}).get("stack", []):
                    print("   ", frame)
                failed = sub.get("compile_failed")
                if failed:
                    print("   ", failed["error"], "after", failed["seconds"], "s")
                print("   stderr:", (sub.get("stderr_tail") or "").strip().splitlines()[-1:])
        lo = r.get("deploy", {}).get("loihi2_mapping", {})
        for att in lo.get("attempts", []):
            print(f"{r['neurons']} neurons, partition with <= {att['neurons_per_core']} neurons/core: {att['error']}")
    return 0


T0 = time.perf_counter()

if __name__ == "__main__":
    raise SystemExit(main())
