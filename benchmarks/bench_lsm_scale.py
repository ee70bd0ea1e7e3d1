"""LSM scale benchmark: generate, compile and emulate reservoirs of 10k / 100k / 1M neurons at ~100 synapses each.

Every size runs in fresh child processes (peak memory per process; a runaway child is stopped), each first
generating the reservoir with :func:`neurodeploy.families.lsm.scale.large_reservoir` (near-cubic 3-D grid, 80/20
E/I, Maass distance dependence with ``lam`` solved for ``--degree`` synapses per neuron including the grid faces,
distance delays, 100 input channels at ``--p-in``) and its float IR graph:

* one **compile** child per ``--targets`` entry: ``compile_graph(graph, target, calibration=...)`` with the
  manifest's per-pass seconds -- ``emulator``: fold, the calibrated quantize pass, check_limits; ``loihi2``: the
  same with hw_profiles/loihi2.toml's arithmetic and capacity checks, plus the **partition pass** (Loihi 2 cores
  and chips, against the profile's system size). A watchdog thread samples the main thread's stack every
  ``--sample`` seconds, so a compile that is killed (``--compile-timeout``) or runs out of memory (``RLIMIT_AS =
  --mem-limit-gb``) is reported with the pass and the function it was in.
* a **deploy** child: :func:`~neurodeploy.families.lsm.scale.lower_maxabs` (the quantize pass's ``maxabs``
  integers, vectorised; equal to the pass on small graphs, tests/test_lsm.py) gives an integer graph cheaply; then
  the **SpiNNaker 1 deployment** (:func:`neurodeploy.backends.pynn.deploy`: netlist, 16-bit weights, delays and
  the mapping report, sPyNNaker 7 rules, of the script the PyNN backend emits) with one population per IR node (up
  to ``--spinnaker-whole-max`` neurons) and with ``population_size = --spinnaker-split`` (the script builds the
  reservoir as populations of that many neurons, :func:`~neurodeploy.backends.pynn.mapping.split_populations`),
  each with its stage seconds and peak RSS (high-water mark reset before each deploy); and the **emulator**
  (``Program`` + ``run`` for
  ``--steps`` steps of Bernoulli(``--rate``) input; throughput = synaptic events, a spike crossing one synapse,
  per second of ``run``).

Peak memory is ``ru_maxrss`` (a high-water mark, generation included; in the deploy child it is reset before each
SpiNNaker deployment, so the emulator's figure is the peak since then). Usage (repo root)::

    .venv/bin/python benchmarks/bench_lsm_scale.py --mem-limit-gb 10 --json out/lsm_scale.json
    .venv/bin/python benchmarks/bench_lsm_scale.py --sizes 10000 --targets loihi2
"""

from __future__ import annotations

import argparse
import gc
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


def _current_rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 ** 3


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
        del frame  # a held frame keeps its locals (e.g. the generator's objects) alive until the next sample
        _emit("stack", stack=stack)


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


def _stack_of(err: BaseException) -> list[str]:
    return [f"{os.path.relpath(fs.filename)}:{fs.lineno} {fs.name}" for fs in
            traceback.extract_tb((err.__cause__ or err).__traceback__)][-10:]


def child_compile(args) -> None:
    """compile_graph(graph, target): fold, calibrated quantize, check_limits (+ partition for loihi2)."""
    from neurodeploy.compiler import compile_graph

    lsm, graph = _setup(args)
    del lsm
    gc.collect()  # the generator's objects hold reference cycles: free them before the compile is measured
    _emit("graph_only", rss_gb=round(_current_rss_gb(), 3))
    rng = np.random.default_rng(0)
    calib = (rng.random((args.calib_batch, args.calib_steps, args.inputs)) < args.rate).astype(np.uint8)
    start = time.perf_counter()
    try:
        art = compile_graph(graph, args.mode, calibration=calib)
    except Exception as err:  # MemoryError arrives wrapped in the pass manager's PassError
        _emit("compile_failed", error=f"{type(err).__name__}: {err} (RLIMIT_AS {args.mem_limit_gb} GB)",
              seconds=round(time.perf_counter() - start, 2), stack=_stack_of(err))
        return
    seconds = round(time.perf_counter() - start, 2)
    node = art.quantization.get("nodes", {}).get("reservoir", {})
    out = {"seconds": seconds, "passes": {p["name"]: round(p["seconds"], 2) for p in art.manifest["passes"]},
           "scale": node.get("scale"), "search_neurons": node.get("search_neurons"),
           "network_f1": node.get("agreement", {}).get("network", {}).get("f1")}
    mapping = art.manifest.get("mapping")
    if mapping:
        per_core = mapping["per_core"]
        out["loihi2"] = {k: mapping.get(k) for k in ("cores", "chips", "system_chips", "neuron_caps", "rounds")}
        out["loihi2"].update(max_neurons_per_core=max(c["stop"] - c["start"] for c in per_core),
                             max_fan_out=max(c["fan_out"] for c in per_core),
                             max_fan_in=max(c["fan_in"] for c in per_core),
                             max_synaptic_memory_bits=max(c["synaptic_memory_bits"] for c in per_core))
    _emit("compiled", **out)


def _rss_now_gb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib / 1024 ** 2, 3)


def _reset_peak() -> bool:
    """Return freed heap pages to the system (glibc ``malloc_trim``), then reset the kernel's RSS high-water mark
    (``ru_maxrss``, VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _spinnaker(qgraph, args, n: int) -> None:
    """``deploy`` (what ``neurodeploy compile --target spinnaker`` emits) as emitted by default (one population per
    IR node; up to --spinnaker-whole-max neurons) and with ``population_size = --spinnaker-split``: the stage
    seconds and the peak RSS of each stage (the high-water mark is reset before each deploy, so it is the peak of
    the deploy with the graph held, not of the generation), and the mapping report of the script it emits."""
    from neurodeploy.backends.pynn.emit import deploy

    keys = ("neuron_cores", "spike_source_cores", "delay_extension_cores", "application_cores", "chips", "boards",
            "max_routing_entries")
    variants = [("whole", None)] if n <= args.spinnaker_whole_max else []
    variants.append(("split", args.spinnaker_split))
    for name, size in variants:
        reset = _reset_peak()
        start_rss = _rss_now_gb()
        stages: dict[str, dict] = {}

        def on_stage(stage: str, seconds: float, stages=stages) -> None:
            stages[stage] = {"seconds": round(seconds, 2), "peak_rss_gb": round(_rss_gb(), 3)}

        start = time.perf_counter()
        try:
            dep = deploy(qgraph, machine="spinnaker1", population_size=size, on_stage=on_stage)
        except Exception as err:
            _emit(f"spinnaker_{name}", error=f"{type(err).__name__}: {err}", stack=_stack_of(err), stages=stages,
                  population_size=size, peak_reset=reset, rss_start_gb=start_rss,
                  seconds=round(time.perf_counter() - start, 2))
            continue
        report = dep.mapping
        _emit(f"spinnaker_{name}", seconds=round(time.perf_counter() - start, 2), population_size=size,
              peak_reset=reset, rss_start_gb=start_rss, stages=stages, populations=report["pynn"]["populations"],
              projections=report["pynn"]["projections"], synapses=report["pynn"]["synapses"],
              max_sdram_mb_per_core=round(max(c["sdram_bytes"] for c in report["per_core"]) / 2 ** 20, 2),
              **{k: report.get(k) for k in keys})
        del dep, report


def child_deploy(args) -> None:
    """lower_maxabs (the quantize pass's max-abs integers, vectorised), SpiNNaker mapping, emulate."""
    from neurodeploy.emulator import Program
    from neurodeploy.families.lsm.scale import lower_maxabs

    lsm, graph = _setup(args)
    n = lsm.n
    del lsm
    gc.collect()
    start = time.perf_counter()
    qgraph = lower_maxabs(graph, "loihi2")
    _emit("lowered", seconds=round(time.perf_counter() - start, 2))
    del graph
    _spinnaker(qgraph, args, n)
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
          engine=result.engine, synaptic_events=events, events_per_second=round(events / run_s),
          reservoir_rate=spikes / (n * args.steps))
    del program, result
    _emit("done")


def _run_child(args, n: int, mode: str, timeout: float) -> tuple[dict, list[dict]]:
    cmd = [sys.executable, __file__, "--child", str(n), "--mode", mode, "--degree", str(args.degree), "--inputs",
           str(args.inputs), "--p-in", str(args.p_in), "--steps", str(args.steps), "--rate", str(args.rate),
           "--calib-batch", str(args.calib_batch), "--calib-steps", str(args.calib_steps),
           "--mem-limit-gb", str(args.mem_limit_gb), "--sample", str(args.sample),
           "--spinnaker-split", str(args.spinnaker_split), "--spinnaker-whole-max", str(args.spinnaker_whole_max)]
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
    for n in args.sizes:
        row: dict = {"neurons": n}
        for target in args.targets:
            row[f"compile_{target}"], _ = _run_child(args, n, target, args.compile_timeout)
        if not args.skip_deploy:
            row["deploy"], _ = _run_child(args, n, "deploy", args.timeout)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'neurons':>9} {'synapses':>11} {'gen s':>6} {'target':>8} {'compile s':>9} {'peak GB':>7} "
            f"{'passes (s)':<52} {'Loihi2 cores/chips':>18} {'emu Mev/s':>9} {'netlist s/GB':>12} "
            f"{'SpiNNaker whole / split':>34}")
    lines = [head, "-" * len(head)]
    for r in rows:
        dep = r.get("deploy", {})
        gen = dep.get("generated") or next((v.get("generated") for k, v in r.items() if k.startswith("compile_")
                                            and v.get("generated")), {})
        emu = dep.get("emulated", {})
        rate = f"{emu['events_per_second'] / 1e6:.1f}" if emu else "-"
        spin, netlist = [], "-"
        for v in ("whole", "split"):
            m = dep.get(f"spinnaker_{v}")
            spin.append("-" if not m else "fails" if "error" in m else
                        f"{m['application_cores']}/{m['chips']}/{m['boards']}")
            if m and "netlist" in m.get("stages", {}) and netlist == "-":
                netlist = f"{m['stages']['netlist']['seconds']}/{m['stages']['netlist']['peak_rss_gb']:.2f}"
        targets = [k for k in r if k.startswith("compile_")] or [None]
        for k in targets:
            comp = r.get(k, {}) if k else {}
            done = comp.get("compiled")
            if done:
                passes = " ".join(f"{p}={s}" for p, s in done["passes"].items())
                comp_s, peak = done["seconds"], done["peak_rss_gb"]
                lo = done.get("loihi2")
                loihi = f"{lo['cores']}/{lo['chips']}" if lo else "-"
            else:
                failed = comp.get("compile_failed")
                passes = (failed["error"][:52] if failed else f"killed after {comp.get('timeout')} s"
                          if comp.get("killed_after_timeout") else "not run" if not comp else "failed")
                comp_s, loihi = "-", "-"
                peak = max((v.get("peak_rss_gb", 0) for v in comp.values() if isinstance(v, dict)), default=0)
            lines.append(f"{r['neurons']:>9} {gen.get('synapses', 0):>11} {gen.get('seconds', 0):>6} "
                         f"{(k or 'compile_-')[8:]:>8} {comp_s:>9} {peak:>7.2f} {passes:<52} {loihi:>18} {rate:>9} "
                         f"{netlist:>12} {' / '.join(spin):>34}")
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
    parser.add_argument("--targets", nargs="*", default=["emulator", "loihi2"], help="compile targets (one child each)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for a size's deploy child")
    parser.add_argument("--compile-timeout", type=float, default=900.0, help="seconds for a compile child")
    parser.add_argument("--skip-deploy", action="store_true", help="compile only (no emulator or SpiNNaker figures)")
    parser.add_argument("--spinnaker-split", type=int, default=10240,
                        help="population_size (neurons per PyNN population) of the split SpiNNaker deployment")
    parser.add_argument("--spinnaker-whole-max", type=int, default=200_000,
                        help="map the unsplit netlist (one population per IR node) only up to this size")
    parser.add_argument("--mode", default="deploy", help=argparse.SUPPRESS)
    parser.add_argument("--mem-limit-gb", type=float, default=12.0)
    parser.add_argument("--sample", type=float, default=10.0, help="stack sampling period (s)")
    parser.add_argument("--json", default=None, help="write the raw rows here")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        (child_deploy if args.mode == "deploy" else child_compile)(args)
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
        for part, sub in r.items():
            if not isinstance(sub, dict):
                continue
            if "last_stack" in sub:
                print(f"\n{r['neurons']} neurons, {part}: returncode {sub['returncode']}"
                      f"{' (killed after the timeout)' if sub['killed_after_timeout'] else ''}; last sampled stack:")
                for frame in (sub.get("last_stack") or {}).get("stack", []):
                    print("   ", frame)
                failed = sub.get("compile_failed")
                if failed:
                    print("   ", failed["error"], "after", failed["seconds"], "s")
                print("   stderr:", (sub.get("stderr_tail") or "").strip().splitlines()[-1:])
            for v in ("whole", "split"):
                m = sub.get(f"spinnaker_{v}")
                if m and "error" in m:
                    print(f"{r['neurons']} neurons, SpiNNaker {v}: {m['error']}")
    return 0


T0 = time.perf_counter()

if __name__ == "__main__":
    raise SystemExit(main())
