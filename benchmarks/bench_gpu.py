"""Synaptic events per second of the numba and torch engines (CPU torch, and CUDA when torch sees a GPU) on the LSM
reservoirs of the scale benchmark, at several batch sizes, with the ratios, in one run (issue 18 item 3).

Network: :func:`neurodeploy.families.lsm.scale.large_reservoir` (near-cubic 3-D grid, 80/20 E/I, ``--degree``
synapses per neuron, distance delays, 100 input channels at ``--p-in``) lowered to Loihi integers by
:func:`~neurodeploy.families.lsm.scale.lower_maxabs`, exactly as ``benchmarks/bench_lsm_scale.py`` builds its
emulator figure. Stimulus: Bernoulli(``--rate``) on the 100 input channels for ``--steps`` steps, ``B`` samples.

Per (size, batch, engine): one untimed warm-up run (numba compiles or loads its kernel; torch moves the weights to
the device -- that preparation time is reported as ``prepare_s``), then the best of ``--repeats`` timed runs of
``Program.run`` (host stimulus in, host results out; on CUDA every run ends with its results on the host, so the
time includes the device work). Events = synaptic events (a spike crossing one synapse) summed over the batch, as
``SimResult.synaptic_ops`` counts them. Every torch run is compared with the numba run: outputs, spike counts and
synaptic ops must be identical (``equal`` column), or the benchmark exits with status 1.

Usage (repo root)::

    .venv/bin/python benchmarks/bench_gpu.py --sizes 10000 100000 --batches 1 32 --json out/bench_gpu.json
    .venv/bin/python benchmarks/bench_gpu.py --sizes 10000 100000 1000000 --devices cpu cuda     # CUDA machine
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Steps of the untimed warm-up run.
WARMUP_STEPS = 2


def machine() -> dict:
    """CPU, cores, memory, library versions and the CUDA device (when there is one)."""
    import numba
    import torch

    from neurodeploy.emulator.kernel import threads

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    # both CPU engines use NEURODEPLOY_THREADS (default: every CPU this process may run on)
    info = {"cpu": cpu, "cpus": os.cpu_count(), "numba_threads": threads(), "torch_cpu_threads": threads(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "torch": torch.__version__, "cuda": None, "load_average": os.getloadavg()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda"] = {"device": props.name, "memory_gb": round(props.total_memory / 1e9, 1),
                        "torch_cuda": torch.version.cuda, "count": torch.cuda.device_count()}
    return info


def build(n: int, degree: float, n_in: int, p_in: float):
    """The integer LSM graph of ``n`` neurons (see the module docstring) and the seconds it took."""
    from neurodeploy.families.lsm.scale import large_reservoir, lower_maxabs

    start = time.perf_counter()
    lsm = large_reservoir(n, degree, n_in, p_in)
    graph = lsm.graph()
    synapses = int(lsm.conn.synapses)
    del lsm
    gc.collect()
    q = lower_maxabs(graph, "loihi2")
    return q, synapses, time.perf_counter() - start


def timed(program, x, engine: str, device: str | None, repeats: int) -> tuple[object, float, float]:
    """A warm-up run of ``WARMUP_STEPS`` steps (its seconds: the preparation -- numba's kernel load, torch's weights
    to the device), then the best of ``repeats`` full runs: ``(result, prepare_s, run_s)``."""
    start = time.perf_counter()
    program.run(x[:, :WARMUP_STEPS], engine=engine, device=device)
    prepare_s = time.perf_counter() - start
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = program.run(x, engine=engine, device=device)
        best = min(best, time.perf_counter() - start)
    return result, prepare_s, best


def same(a, b) -> bool:
    """Outputs, spike counts and synaptic ops identical."""
    return (a.spike_counts == b.spike_counts and a.synaptic_ops == b.synaptic_ops
            and a.outputs.keys() == b.outputs.keys()
            and all(np.array_equal(a.outputs[k], b.outputs[k]) for k in a.outputs))


def bench_size(n: int, args) -> list[dict]:
    """Every (batch, engine, device) on the reservoir of ``n`` neurons."""
    from neurodeploy.emulator import Program

    graph, synapses, build_s = build(n, args.degree, args.inputs, args.p_in)
    print(f"== {n} neurons, {synapses} recurrent synapses (built in {build_s:.1f} s)", file=sys.stderr, flush=True)
    program = Program(graph)
    rows = []
    for batch in args.batches:
        x = (np.random.default_rng(1).random((batch, args.steps, args.inputs)) < args.rate).astype(np.uint8)
        ref, prep, secs = timed(program, x, "numba", None, args.repeats)
        events = int(sum(ref.synaptic_ops.values()))
        spikes = int(sum(ref.spike_counts.values()))
        base = {"neurons": n, "synapses": synapses, "batch": batch, "steps": args.steps, "events": events,
                "reservoir_rate": round(spikes / (n * batch * args.steps), 4)}
        rows.append(dict(base, engine="numba", device="cpu", prepare_s=round(prep, 2), run_s=round(secs, 3),
                         events_per_s=events / secs, equal=True))
        _print(rows[-1])
        for device in args.devices:
            got, prep, secs_t = timed(program, x, "torch", device, args.repeats)
            rows.append(dict(base, engine="torch", device=device, prepare_s=round(prep, 2), run_s=round(secs_t, 3),
                             events_per_s=events / secs_t, equal=same(ref, got), vs_numba=secs / secs_t))
            _print(rows[-1])
            del got
            gc.collect()
    del program, graph
    gc.collect()
    return rows


def _print(row: dict) -> None:
    ratio = f"{row['vs_numba']:.2f}x" if "vs_numba" in row else "1x"
    print(f"{row['neurons']:>9} B={row['batch']:<3} {row['engine']:>5}/{row['device']:<5} "
          f"{row['events_per_s'] / 1e6:10.1f} M ev/s  run {row['run_s']:8.3f} s  prepare {row['prepare_s']:6.2f} s  "
          f"vs numba {ratio:>8}  equal {row['equal']}", flush=True)


def table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = ["| neurons | batch | engine | device | events | M events/s | run s | prepare s | vs numba | equal |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = f"{r['vs_numba']:.2f}x" if "vs_numba" in r else "1x"
        lines.append(f"| {r['neurons']:,} | {r['batch']} | {r['engine']} | {r['device']} | {r['events']:,} | "
                     f"{r['events_per_s'] / 1e6:,.1f} | {r['run_s']} | {r['prepare_s']} | {ratio} | {r['equal']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--devices", nargs="+", default=None, help="torch devices (default: cpu, and cuda if any)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    parser.add_argument("--degree", type=float, default=100.0)
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--p-in", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per row (the best is kept)")
    parser.add_argument("--json", type=Path, help="write machine and rows here")
    args = parser.parse_args(argv)
    if args.devices is None:
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info = machine()
    print(json.dumps(info), flush=True)
    rows = []
    for n in args.sizes:
        rows += bench_size(n, args)
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "args": {k: v for k, v in vars(args).items()
                                                                   if k != "json"}, "rows": rows}, indent=1))
    if not all(r["equal"] for r in rows):
        print("torch and numba differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
