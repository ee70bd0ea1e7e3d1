"""Build time of the PyNN backend: a 1k-neuron / 100k-synapse network, emitted and built on pyNN.brian2.

Network: 100 inputs -> 900 CubaLIF (dense, mixed signs) -> 100 CubaLIF (sparse): 1000 neurons, 100,000 synapses.
Stages timed (wall clock, best of --repeat):

* deploy   - netlist, 16-bit weights, delay plan, mapping report (neurodeploy.backends.pynn.deploy)
* write    - model.py, nd_support.py, data.npz, params.json, quantization.json, mapping.json
* build    - what the emitted script does per sample before running it, on pyNN.brian2: ``nd.setup``, the
             sample's spike times, ``build(sim, data, spike_times, ("spikes",))`` (populations, vectorised
             projections, recorders) (the target: < 5 s); pyNN.brian2's import and reading data.npz are timed apart
* run      - the script's ``run`` on one sample of --steps steps (a fresh network per sample, as the script always
             does: build + run + read back; the first includes Brian2's code generation), then one more sample
* stock    - pyNN.brian2's own FromListConnector on a --stock-synapses subset (default 5,000), for comparison;
             --stock-synapses 100000 times the full network (minutes)

The emitted ``model.py`` is imported here with importlib (a benchmark may; ``neurodeploy run --backend pynn`` never
does, it runs the script in a child process).

Usage: .venv/bin/python benchmarks/bench_pynn_build.py [--repeat 3] [--steps 100] [--stock-synapses 5000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurodeploy.backends.pynn.emit import deploy, write_deployment
from neurodeploy.errors import BackendError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse


def network(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    q = QuantInfo(scale=100.0)
    n_in, n_h, n_o = 100, 900, 100
    # even, non-zero values: Lava drops the lowest bit of mixed-sign weights, so every synapse survives
    dense = 2 * rng.choice(np.r_[-20:0, 1:41], size=(n_h, n_in))  # 90,000 synapses
    k = 10_000
    flat = rng.choice(n_o * n_h, size=k, replace=False)
    row, col = flat // n_h, flat % n_h
    return Graph({"in": Input(shape=(n_in,)), "fc": Dense(weight=dense, quant=q),
                  "h": CubaLIF(shape=(n_h,), du=1000, dv=410, vth=800, quant=q),
                  "sp": Sparse(out_shape=(n_o,), in_size=n_h, row=row, col=col,
                               value=2 * rng.choice(np.r_[-10:0, 1:31], size=k), quant=q),
                  "o": CubaLIF(shape=(n_o,), du=4095, dv=300, vth=500, quant=q), "out": Output()},
                 [("in", "fc"), ("fc", "h"), ("h", "sp"), ("sp", "o"), ("o", "out")]).validate()


def import_script(path: Path):
    """The emitted ``model.py`` as a module (it puts its own folder on sys.path for ``nd_support``)."""
    spec = importlib.util.spec_from_file_location(f"bench_pynn_model_{id(path)}", path)
    if spec is None or spec.loader is None:
        raise BackendError(f"cannot import {path}", fix="re-emit the PyNN deployment")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--stock-synapses", type=int, default=5000)
    args = parser.parse_args()
    graph = network()
    stats: dict = {}
    stats["deploy_s"], dep = best(lambda: deploy(graph), args.repeat)
    synapses = sum(p.size for p in dep.netlist.projections)
    neurons = sum(p.size for p in dep.netlist.populations.values() if not p.is_source)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pynn-"))
    stats["write_s"], _ = best(lambda: write_deployment(dep, tmp / "pynn"), args.repeat)
    start = time.perf_counter()
    try:
        import brian2
        import pyNN.brian2 as sim
    except ImportError as err:
        raise BackendError(f"pyNN.brian2 is not available ({err})",
                           fix="pip install 'neurodeploy[pynn]' (PyNN 0.13, Brian2 2.9, numpy < 2.4)") from None
    stats["import_pynn_brian2_s"] = time.perf_counter() - start
    # a network built to be timed and never run is garbage: Brian2 would warn once per object
    brian2.BrianLogger.suppress_name("unused_brian_object")

    module = import_script(tmp / "pynn" / "model.py")
    nd = module.nd
    start = time.perf_counter()
    data = nd.load_data(tmp / "pynn" / "data.npz")
    stats["load_data_s"] = time.perf_counter() - start
    (input_name,) = module.INPUTS
    rng = np.random.default_rng(1)
    x = (rng.random((1, args.steps, *module.INPUTS[input_name])) < 0.05).astype(np.uint8)

    def build():
        nd.setup(sim, module.TIMESTEP)
        pop = module.build(sim, data, {input_name: nd.spike_times(sim, x[0], module.TIMESTEP)}, ("spikes",))
        connected = sum(len(obj) for obj in sim.state.network.objects if isinstance(obj, brian2.Synapses))
        sim.end()
        return pop, connected

    stats["build_s"], (pop, connected) = best(build, args.repeat)
    stats["populations"] = len(pop)

    timer = nd.Timer()
    start = time.perf_counter()
    out = module.run(sim, {input_name: x}, ("spikes",), timer=timer)
    stats["first_run_s"] = time.perf_counter() - start
    stats["first_run_phases_s"] = dict(timer.seconds)
    timer = nd.Timer()
    start = time.perf_counter()
    module.run(sim, {input_name: x}, ("spikes",), timer=timer)
    stats["next_run_s"] = time.perf_counter() - start
    stats["next_run_phases_s"] = dict(timer.seconds)
    stats["output_spikes"] = int(out["spikes"].sum())

    # stock pyNN.brian2 FromListConnector on a subset of the dense projection (its cost is linear in synapses)
    proj = dep.netlist.projections[0]
    k = min(args.stock_synapses, proj.size)
    conn = np.column_stack([proj.pre_idx[:k], proj.post_idx[:k], np.abs(proj.weight[:k]), proj.delay[:k]])
    sim.setup(timestep=1.0)
    a, b = sim.Population(100, sim.SpikeSourceArray()), sim.Population(900, sim.IF_curr_exp())
    start = time.perf_counter()
    sim.Projection(a, b, sim.FromListConnector(conn, column_names=["weight", "delay"]), sim.StaticSynapse())
    stats["stock_s"] = time.perf_counter() - start
    stats["stock_synapses"] = k
    stats["stock_extrapolated_100k_s"] = stats["stock_s"] * synapses / k
    sim.end()

    head = (f"python {platform.python_version()}, numpy {np.__version__}, brian2 {brian2.__version__}, "
            f"PyNN {__import__('pyNN').__version__}; {neurons} neurons, "
            f"{synapses} synapses ({connected} connected), {len(dep.netlist.projections)} projections; "
            f"best of {args.repeat}")
    print(head)
    first, nxt = stats["first_run_phases_s"], stats["next_run_phases_s"]
    rows = [("deploy (netlist, 16-bit weights, mapping)", stats["deploy_s"]),
            ("write files", stats["write_s"]),
            ("import pyNN.brian2", stats["import_pynn_brian2_s"]),
            ("read data.npz", stats["load_data_s"]),
            ("build: nd.setup + spike times + build()", stats["build_s"]),
            (f"first sample, {args.steps} steps (run(): build+run+read)", stats["first_run_s"]),
            ("  of which Brian2 run (code generation)", first.get("run", float("nan"))),
            (f"next sample, {args.steps} steps (run(): build+run+read)", stats["next_run_s"]),
            ("  of which build / run / read",
             None if not nxt else (nxt.get("build", 0.0), nxt.get("run", 0.0), nxt.get("read", 0.0))),
            (f"stock FromListConnector, {k} synapses", stats["stock_s"]),
            ("stock FromListConnector, extrapolated to all", stats["stock_extrapolated_100k_s"])]
    for name, seconds in rows:
        if isinstance(seconds, tuple):
            print(f"  {name:<52} " + " / ".join(f"{s:.3f}" for s in seconds) + " s")
        else:
            print(f"  {name:<52} {seconds:9.3f} s")

    def rounded(value):
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return round(value, 4) if isinstance(value, float) else value

    print(json.dumps(rounded(stats)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
