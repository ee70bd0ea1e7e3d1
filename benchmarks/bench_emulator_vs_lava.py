"""Per-step wall time: neurodeploy's emulator vs Lava 0.10 fixed_pt (Loihi2SimCfg) on the same quantized networks.

Run inside the Lava environment (both sides need to be importable)::

    .venv-lava/bin/python benchmarks/bench_emulator_vs_lava.py [--steps 200] [--repeat 3]

For each network the same stimulus (batch 1) runs on both. Lava is built from the network's description
(:mod:`neurodeploy.backends.lava`) with one Monitor on the output spikes -- what ``run_description`` records for
outputs. Lava's time is split into *startup* (compile + spawning one OS process per Lava process + the first step,
i.e. ``run(RunSteps(1))``) and *per step* (a following ``run(RunSteps(T))`` / T); the emulator's into *prepare*
(``Program(graph)``) and *per step* (``Program.run`` / T, best of ``--repeat``), for each engine: ``numpy`` and the
compiled ``numba`` kernel (whose first run on a Program also lowers it: ``numba 1st s``). The output spikes of Lava
and both engines are checked to be equal, so the timings compare runs that computed the same thing.

Batched throughput: the same networks on a ``--batch`` (32) sample stimulus, per *sample-step* (run time / B / T);
Lava runs one sample at a time, so its per-step time is its per-sample-step time. Both engines are checked equal.

numba's one-time cost is measured in fresh subprocesses with an empty ``NUMBA_CACHE_DIR``: ``import numba``, the
first run (compile and write the cache), and, in a second process, the first run loading the compiled kernel from
that cache (``cache=True``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from neurodeploy.backends.lava import describe
from neurodeploy.backends.lava.rebuild import build_processes
from neurodeploy.emulator import Program
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse

Q = QuantInfo(scale=1.0)


def _lif(n: int, vth: int) -> CubaLIF:
    return CubaLIF(shape=(n,), du=1024, dv=512, vth=vth, bias=0, bias_exp=0, quant=Q)


def _dense(rng: np.random.Generator, n_out: int, n_in: int) -> Dense:
    return Dense(weight=rng.integers(-64, 128, (n_out, n_in)), weight_exp=0, sign_mode="mixed", quant=Q)


def feedforward(sizes: list[int], seed: int, vth_per_input: int = 60) -> Graph:
    """Input(sizes[0]) -> Dense -> LIF(sizes[1]) -> ... -> Output."""
    rng = np.random.default_rng(seed)
    nodes: dict = {"in": Input(shape=(sizes[0],))}
    edges = []
    prev = "in"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        nodes[f"fc{i}"] = _dense(rng, n_out, n_in)
        nodes[f"lif{i}"] = _lif(n_out, vth=vth_per_input * n_in)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["out"] = Output()
    edges.append((prev, "out"))
    return Graph(nodes, edges).validate()


def recurrent_sparse(n: int, n_in: int, density: float, seed: int) -> Graph:
    """Input(n_in) -> Sparse -> LIF(n) with a recurrent Sparse n x n (``density``) -> Output."""
    rng = np.random.default_rng(seed)

    def sparse(n_out: int, size_in: int, dens: float, lo: int, hi: int) -> Sparse:
        mask = rng.random((n_out, size_in)) < dens
        row, col = np.nonzero(mask)
        return Sparse(out_shape=(n_out,), in_size=size_in, row=row, col=col, value=rng.integers(lo, hi, row.size),
                      sign_mode="mixed", quant=Q)

    nodes = {"in": Input(shape=(n_in,)), "inp": sparse(n, n_in, 0.1, 0, 200), "lif": _lif(n, vth=150),
             "rec": sparse(n, n, density, -120, 100), "out": Output()}
    edges = [("in", "inp"), ("inp", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")]
    return Graph(nodes, edges).validate()


def time_emulator(graph: Graph, x: np.ndarray, repeat: int, engine: str) -> tuple[float, float, float, np.ndarray]:
    """Prepare time, first-run time, best per-sample-step time of ``repeat`` runs, output spikes."""
    start = time.perf_counter()
    program = Program(graph)
    prepare = time.perf_counter() - start
    start = time.perf_counter()
    res = program.run(x, engine=engine)
    first = time.perf_counter() - start
    assert res.engine == engine, (res.engine, res.engine_note)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        res = program.run(x, engine=engine)
        best = min(best, time.perf_counter() - start)
    return prepare, first, best / x.shape[0] / x.shape[1], res.outputs["out"]


COLD = """
import time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import numpy as np
from neurodeploy.emulator import simulate
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo
q = QuantInfo(scale=1.0)
g = Graph({"in": Input(shape=(2,)), "s": Dense(weight=np.ones((1, 2), int), quant=q),
           "n": CubaLIF(shape=(1,), vth=1, quant=q), "out": Output()}, [("in", "s"), ("s", "n"), ("n", "out")])
x = np.ones((1, 3, 2), np.uint8)
t2 = time.perf_counter()
r = simulate(g, x, engine="numba")
t3 = time.perf_counter()
print(t1 - t0, t3 - t2)
"""


def numba_one_time_cost() -> tuple[float, float, float]:
    """``import numba`` s, first run with an empty cache (compile) s, first run in a new process from that cache s."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = [subprocess.run([sys.executable, "-c", COLD], env=env, check=True, capture_output=True, text=True)
               .stdout.split() for _ in range(2)]
    return float(out[0][0]), float(out[0][1]), float(out[1][1])


def time_lava(graph: Graph, x: np.ndarray) -> tuple[float, float, int, np.ndarray]:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.monitor.process import Monitor

    desc = describe(graph)
    steps = x.shape[1]
    procs = build_processes(desc, {"in": np.ascontiguousarray(x[0].reshape(steps, -1).T)})
    src = procs[desc["outputs"]["out"]["source"]]
    mon = Monitor()
    mon.probe(src.s_out, steps)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        start = time.perf_counter()
        src.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        startup = time.perf_counter() - start
        start = time.perf_counter()
        src.run(condition=RunSteps(num_steps=steps - 1), run_cfg=cfg)
        per_step = (time.perf_counter() - start) / (steps - 1)
        spikes = np.rint(mon.get_data()[src.name]["s_out"]).astype(np.uint8)
    finally:
        src.stop()
    return startup, per_step, len(procs) + 1, spikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="batch of the throughput table")
    args = parser.parse_args()
    import lava
    import numba

    cases = {
        "100 -> 100 dense": feedforward([100, 100], 1),
        "1k -> 1k dense": feedforward([1000, 1000], 2),
        "3 x 1k dense layers": feedforward([1000, 1000, 1000, 1000], 3),
        "1k recurrent sparse (10%)": recurrent_sparse(1000, 100, 0.1, 4),
    }
    auto = Program(feedforward([2, 2], 0)).pick_engine("auto")
    print(f"lava-nc {getattr(lava, '__version__', '0.10.0')}, numpy {np.__version__}, numba {numba.__version__}, "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs; T = {args.steps} steps; "
          f"engine='auto' runs {auto[0]}{' (' + auto[1] + ')' if auto[1] else ''}")
    imp, compile_s, cached_s = numba_one_time_cost()
    start = time.perf_counter()
    Program(feedforward([2, 2], 0)).run(np.ones((1, 3, 2), np.uint8), engine="numba")  # kernel ready before timing
    here = time.perf_counter() - start
    print(f"numba one-time cost (fresh processes): import numba {imp:.2f} s; first run with an empty cache "
          f"(compile + write) {compile_s:.2f} s; first run loading that cache {cached_s:.2f} s; "
          f"this process: {here:.2f} s")
    print("\nbatch 1 (emulator us/step, best of --repeat; lava/x = Lava ms/step over engine x's)")
    header = (f"{'network':<28}{'neurons':>8}{'synapses':>10}{'rate':>7}{'procs':>6}{'prep s':>8}"
              f"{'numba 1st s':>12}{'numpy us':>10}{'numba us':>10}{'lava start s':>13}{'lava ms':>9}"
              f"{'lava/numpy':>11}{'lava/numba':>11}{'equal':>7}")
    print(header)
    print("-" * len(header))
    rows = []
    for name, graph in cases.items():
        shapes = graph.shapes()
        n_in = shapes["in"][0]
        x = (np.random.default_rng(7).random((1, args.steps, n_in)) < 0.1).astype(np.uint8)
        neurons = sum(int(np.prod(shapes[n])) for n, op in graph.nodes.items() if op.role == "neuron")
        synapses = sum(int(np.count_nonzero(op.weight)) if isinstance(op, Dense) else int(op.value.size)
                       for op in graph.nodes.values() if op.role == "synapse")
        prep, _, np_step, np_out = time_emulator(graph, x, args.repeat, "numpy")
        _, first, nb_step, nb_out = time_emulator(graph, x, args.repeat, "numba")
        # Lava runs 1 + (T - 1) steps in two calls; its Monitor holds all T
        startup, lava_step, procs, lava_out = time_lava(graph, x)
        equal = np.array_equal(lava_out, np_out[0]) and np.array_equal(lava_out, nb_out[0])
        rate = float(nb_out.mean())
        rows.append((name, graph, lava_step))
        print(f"{name:<28}{neurons:>8}{synapses:>10}{rate:>7.3f}{procs:>6}{prep:>8.3f}{first:>12.3f}"
              f"{np_step * 1e6:>10.1f}{nb_step * 1e6:>10.1f}{startup:>13.2f}{lava_step * 1e3:>9.2f}"
              f"{lava_step / np_step:>11.1f}{lava_step / nb_step:>11.1f}{str(equal):>7}")
    print(f"\nbatch {args.batch} (emulator us per sample-step = run time / B / T, best of --repeat; Lava runs one "
          f"sample at a time: its ms/step above is per sample-step)")
    header = (f"{'network':<28}{'numpy us':>10}{'numba us':>10}{'lava/numpy':>11}{'lava/numba':>11}"
              f"{'numba==numpy':>13}")
    print(header)
    print("-" * len(header))
    for name, graph, lava_step in rows:
        n_in = graph.shapes()["in"][0]
        x = (np.random.default_rng(8).random((args.batch, args.steps, n_in)) < 0.1).astype(np.uint8)
        _, _, np_step, np_out = time_emulator(graph, x, args.repeat, "numpy")
        _, _, nb_step, nb_out = time_emulator(graph, x, args.repeat, "numba")
        print(f"{name:<28}{np_step * 1e6:>10.2f}{nb_step * 1e6:>10.2f}{lava_step / np_step:>11.1f}"
              f"{lava_step / nb_step:>11.1f}{str(np.array_equal(np_out, nb_out)):>13}")


if __name__ == "__main__":
    main()
