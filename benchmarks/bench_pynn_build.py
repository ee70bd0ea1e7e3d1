"""Build time of the PyNN backend: a 1k-neuron / 100k-synapse network, emitted and built on pyNN.brian2.

Network: 100 inputs -> 900 CubaLIF (dense, mixed signs) -> 100 CubaLIF (sparse): 1000 neurons, 100,000 synapses.
Stages timed (wall clock, best of --repeat):

* deploy   - netlist, 16-bit weights, delay plan, mapping report (neurodeploy.backends.pynn.deploy)
* write    - model.py, data.npz, params.json, quantization.json, mapping.json
* build    - the emitted script's Network on pyNN.brian2: setup, populations, vectorised projections (the target:
             < 5 s); pyNN.brian2's import is timed apart
* run      - one sample of --steps steps (the first includes Brian2's code generation), then one more sample
* stock    - pyNN.brian2's own FromListConnector on a --stock-synapses subset (default 5,000), for comparison;
             --stock-synapses 100000 times the full network (minutes)

Usage: .venv/bin/python benchmarks/bench_pynn_build.py [--repeat 3] [--steps 100] [--stock-synapses 5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from neurodeploy.backends.pynn.emit import deploy, write_deployment
from neurodeploy.backends.pynn.runner import load_script
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
    import brian2  # noqa: F401
    import pyNN.brian2 as sim

    stats["import_pynn_brian2_s"] = time.perf_counter() - start
    module = load_script(tmp / "pynn" / "model.py")
    params, data = module.load_model(tmp / "pynn")

    def build():
        return module.Network(sim, params, data, record=("spikes",))

    stats["build_s"], net = best(build, args.repeat)
    connected = sum(len(p) for p in net.projections)
    rng = np.random.default_rng(1)
    stimulus = {"in": (rng.random((1, args.steps, 100)) < 0.05).astype(np.uint8)}
    start = time.perf_counter()
    out = net.run(stimulus)
    stats["first_run_s"] = time.perf_counter() - start
    start = time.perf_counter()
    net.run(stimulus)
    stats["next_run_s"] = time.perf_counter() - start
    stats["output_spikes"] = int(out["spikes"].sum())
    sim.end()

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
    rows = [("deploy (netlist, 16-bit weights, mapping)", stats["deploy_s"]),
            ("write files", stats["write_s"]),
            ("import pyNN.brian2", stats["import_pynn_brian2_s"]),
            ("build PyNN network on pyNN.brian2", stats["build_s"]),
            (f"first run, {args.steps} steps (Brian2 code generation)", stats["first_run_s"]),
            (f"next run, {args.steps} steps", stats["next_run_s"]),
            (f"stock FromListConnector, {k} synapses", stats["stock_s"]),
            ("stock FromListConnector, extrapolated to all", stats["stock_extrapolated_100k_s"])]
    for name, seconds in rows:
        print(f"  {name:<52} {seconds:9.3f} s")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}))


if __name__ == "__main__":
    main()
