"""Compile time of a 10k-neuron conv SNN (issue 16, item 6: < 5 s on these machines), and where the time goes.

Network (as sinabs exports conv nets: Conv2d / IF / SumPool2d / Flatten / Affine, ``dt = 1``), built as a NIR graph
and read with ``from_nir``: input 2x32x32 -> Conv2d 2->6 3x3 -> IF 6x32x32 (6,144) -> SumPool 2 -> Conv2d 6->12 3x3
-> IF 12x16x16 (3,072) -> SumPool 2 -> Conv2d 12->16 3x3 -> IF 16x8x8 (1,024) -> Flatten -> Affine 1024->10 -> IF 10:
10,250 neurons. Calibration: the quantizer's default generated stimuli (Bernoulli 0.2, 8 x 100 steps).

Timed (wall clock and process CPU time, best of --repeat, after one warm-up compile that pays numba's JIT):
``compile_graph`` for each --targets; then one cProfile'd loihi2 compile whose cumulative times per stage say
where the time goes (fold, quantize: float calibration run, synapse preparation, candidate search, final integer
run; check_limits, partition, diagnose).

Measured: see benchmarks/RESULTS.md ("Compile time of a 10k-neuron conv net"). The quantizer is ~98 % of the
compile; its trials run through the injected simulator (one prepared run per population, integers swapped between
trials); on the emulator most of a trial is lowering its Program for the numba kernel.

Usage: .venv/bin/python benchmarks/bench_conv_compile.py [--repeat 3] [--targets emulator loihi2 spinnaker]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import time
import warnings

import numpy as np

STAGES = {  # (module file suffix, function name) -> label
    ("passes/fold.py", "fold_linear"): "fold",
    ("passes/quantize.py", "quantize"): "quantize (total)",
    ("compiler.py", "run"): "  simulator runs (float calibration run + candidate scoring + final int run)",
    ("emulator/kernel.py", "lower"): "    lowering Programs for the numba kernel",
    ("passes/quant_prepare.py", "prepare_synapse"): "  prepare synapses (conv -> entries)",
    ("passes/quant_search.py", "choose"): "  per-population search",
    ("passes/quant_search.py", "score"): "    scoring trials (simulator runs + agreement)",
    ("passes/quant_search.py", "cost"): "    rate-weighted exponent cost",
    ("passes/limits.py", "check_limits"): "check_limits",
    ("passes/partition.py", "partition"): "partition",
    ("passes/diagnose.py", "diagnose"): "diagnose",
}


def network(seed: int = 0):
    import nir

    rng = np.random.default_rng(seed)

    def conv(cin, cout, size):
        w = rng.normal(0, 1.0 / np.sqrt(cin * 9), (cout, cin, 3, 3)).astype(np.float32)
        return nir.Conv2d(input_shape=(size, size), weight=w, bias=np.zeros(cout, np.float32), stride=1,
                          padding=1, dilation=1, groups=1)

    def if_(shape):
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32),
                      v_reset=np.zeros(shape, np.float32))

    def pool():
        return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))

    nodes = {"input": nir.Input(input_type={"input": np.array([2, 32, 32])}),
             "c1": conv(2, 6, 32), "n1": if_((6, 32, 32)), "p1": pool(),
             "c2": conv(6, 12, 16), "n2": if_((12, 16, 16)), "p2": pool(),
             "c3": conv(12, 16, 8), "n3": if_((16, 8, 8)),
             "f": nir.Flatten(input_type={"input": np.array([16, 8, 8])}, start_dim=0),
             "fc": nir.Affine(weight=rng.normal(0, 0.1, (10, 1024)).astype(np.float32), bias=np.zeros(10, np.float32)),
             "n4": if_((10,)), "output": nir.Output(output_type={"output": np.array([10])})}
    order = list(nodes)
    edges = list(zip(order[:-1], order[1:], strict=True))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=["emulator", "loihi2", "spinnaker"])
    parser.add_argument("--candidates", type=int, default=None,
                        help="the quantizer's candidate scales per population (default: its own, 8)")
    args = parser.parse_args()
    options = {} if args.candidates is None else {"candidates": args.candidates}

    from neurodeploy.compiler import compile_graph
    from neurodeploy.converters.nir import from_nir

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    graph = from_nir(network(), dt=1.0, reset="zero")
    convert_s = time.perf_counter() - start
    neurons = sum(int(np.prod(op.shape)) for op in graph.nodes.values() if op.role == "neuron")
    compile_graph(graph, "loihi2")  # warm-up: numba JIT, imports
    results = {"neurons": neurons, "quantize_options": options, "from_nir_s": round(convert_s, 3),
               "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
               "python": platform.python_version(), "compile_s": {}}
    for target in args.targets:
        times, cpu = [], []
        for _ in range(args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            compile_graph(graph, target, quantize_options=options)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        results["compile_s"][target] = {"best": round(min(times), 3), "all": [round(t, 3) for t in times],
                                        "cpu_best": round(min(cpu), 3)}

    prof = cProfile.Profile()
    prof.enable()
    compile_graph(graph, "loihi2", quantize_options=options)
    prof.disable()
    stats = pstats.Stats(prof).stats
    stages = {}
    for (path, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.items():
        for (suffix, name), label in STAGES.items():
            if func == name and path.endswith(suffix):
                stages[label] = round(stages.get(label, 0.0) + ct, 3)
    total = sum(v for (p, _, f), (_, _, _, v, _) in [(k, s) for k, s in stats.items()]
                if f == "compile_graph" and p.endswith("compiler.py"))
    results["profiled_loihi2_s"] = round(total, 3)
    results["stages_s (cProfile, inflated by profiling)"] = stages
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
