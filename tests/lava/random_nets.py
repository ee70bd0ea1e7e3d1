"""Seeded random *quantized* networks for the emulator-vs-Lava equality suite.

A *network* is a small random sub-network (1-3 CubaLIF populations of 1-8 neurons) fed by the group's shared
Input node(s). Several networks share one Input so that one Lava run (one connected component) executes them all;
each keeps its own processes, so they stay independent. A network may contain, chosen by its seed:

* Dense or Sparse synapses (Sparse COO entries in shuffled order), with or without per-synapse delays (0-62;
  DelayDense / DelaySparse), several synapses into one neuron (skip, recurrent and feedback connections);
* sign modes None / mixed / excitatory / inhibitory, weights sometimes outside the sign mode's 8-bit range
  (Lava clips them), ``num_weight_bits`` 1-8, ``weight_exp`` negative and positive;
* du, dv over [0, 4095] (including both ends), vth over [0, 2**17 - 1], bias mantissa scalar or per neuron,
  ``bias_exp`` 0-7;
* a "stress" flavour with large ``weight_exp`` so that ``|u|`` passes 2**23 (wrap) and v saturates.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse

Q = QuantInfo(scale=1.0)
SIGN_MODES = (None, "mixed", "excitatory", "inhibitory")


@dataclass
class Group:
    """Several random networks sharing their Input node(s): one graph, one stimulus, one Lava run per sample."""

    graph: Graph
    spikes: dict[str, np.ndarray]
    seeds: list[int]
    features: set[str]


def _weights(rng: np.random.Generator, shape: tuple[int, ...], sign_mode: str | None, features: set[str]
             ) -> np.ndarray:
    """Integer mantissas mostly inside the sign mode's range, sometimes outside (to exercise Lava's clip)."""
    wide = rng.random() < 0.15
    lo, hi = {None: (-200, 255), "mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}[sign_mode]
    if wide:
        lo, hi = lo - 60, hi + 60
        features.add("weights outside the sign range")
    w = rng.integers(lo, hi + 1, size=shape)
    if lo < 0 < hi:  # mixed draws lean excitatory so that most populations spike
        w = np.where(rng.random(shape) < 0.35, w, np.abs(w))
    if sign_mode is None and rng.random() < 0.5:  # let Lava determine an excitatory/inhibitory mode too
        w = np.abs(w) if rng.random() < 0.5 else -np.abs(w)
    return w.astype(np.int64)


def _delays(rng: np.random.Generator, shape: tuple[int, ...], max_delay: int) -> np.ndarray:
    """Mostly short delays (so spikes arrive within a short run), a quarter anywhere in [0, max_delay]."""
    short = rng.integers(0, min(6, max_delay) + 1, size=shape)
    long = rng.integers(0, max_delay + 1, size=shape)
    return np.where(rng.random(shape) < 0.25, long, short).astype(np.int64)


def _synapse(rng: np.random.Generator, n_out: int, n_in: int, features: set[str], stress: bool,
             max_delay: int) -> Dense | Sparse:
    sign_mode = SIGN_MODES[rng.choice(len(SIGN_MODES), p=[0.3, 0.3, 0.27, 0.13])]
    features.add(f"sign_mode={sign_mode}")
    bits = None if rng.random() < 0.4 else int(rng.integers(1, 9))
    if bits is not None and bits < 8:
        features.add("num_weight_bits<8")
    weight_exp = int(rng.integers(8, 13)) if stress else int(rng.integers(-4, 5))
    features.add("weight_exp<0" if weight_exp < 0 else "weight_exp>0" if weight_exp > 0 else "weight_exp=0")
    delayed = rng.random() < 0.4
    sparse = rng.random() < 0.5
    if sparse:
        density = rng.uniform(0.2, 1.0)
        mask = rng.random((n_out, n_in)) < density
        if not mask.any():
            mask[rng.integers(n_out), rng.integers(n_in)] = True
        row, col = np.nonzero(mask)
        order = rng.permutation(row.size)  # COO entries in no particular order
        row, col = row[order], col[order]
        value = _weights(rng, (row.size,), sign_mode, features)
        delays = _delays(rng, (row.size,), max_delay) if delayed else None
        features.add("sparse+delays" if delayed else "sparse")
        return Sparse(out_shape=(n_out,), in_size=n_in, row=row.astype(np.int64), col=col.astype(np.int64),
                      value=value, delays=delays, weight_exp=weight_exp, num_weight_bits=bits, sign_mode=sign_mode,
                      quant=Q)
    weight = _weights(rng, (n_out, n_in), sign_mode, features)
    if rng.random() < 0.3:
        weight[rng.random(weight.shape) < 0.5] = 0
    delays = _delays(rng, (n_out, n_in), max_delay) if delayed else None
    features.add("dense+delays" if delayed else "dense")
    return Dense(weight=weight, delays=delays, weight_exp=weight_exp, num_weight_bits=bits, sign_mode=sign_mode,
                 quant=Q)


def _neuron(rng: np.random.Generator, n: int, drive: float, features: set[str], stress: bool) -> CubaLIF:
    """A CubaLIF whose threshold is scaled to the typical input ``drive`` (integer synaptic units per spike)."""
    pick = rng.random()
    du = 0 if pick < 0.1 else 4095 if pick < 0.25 else int(rng.integers(0, 4096))
    pick = rng.random()
    dv = 0 if pick < 0.1 else 4095 if pick < 0.25 else int(rng.integers(0, 4096))
    if stress:
        vth = int(rng.integers(2**16, 2**17))
    elif rng.random() < 0.1:
        vth = int(rng.choice([0, 1, 2**17 - 1]))
    else:
        vth = int(np.clip(drive * np.exp(rng.uniform(np.log(0.01), np.log(2.0))), 0, 2**17 - 1))
    bias_exp: int | np.ndarray = int(rng.integers(0, 8))
    if rng.random() < 0.3:
        bias: int | np.ndarray = 0
    elif rng.random() < 0.5:
        bias = int(rng.integers(-4096, 4096)) >> int(rng.integers(0, 12))
    else:
        bias = (rng.integers(-4096, 4096, size=n) >> rng.integers(0, 12, size=n)).astype(np.int64)
        if rng.random() < 0.5:
            bias_exp = rng.integers(0, 8, size=n).astype(np.int64)
            features.add("per-neuron bias_exp")
    if np.any(np.asarray(bias) != 0) and np.any(np.asarray(bias_exp) != 0):
        features.add("bias_exp>0")
    features.add(f"du={'0' if du == 0 else '4095' if du == 4095 else 'mid'}")
    return CubaLIF(shape=(n,), du=du, dv=dv, vth=vth, bias=bias, bias_exp=bias_exp, reset="zero", quant=Q)


def _drive(syn: Dense | Sparse, n_in: int) -> float:
    """Typical synaptic input per step from ``syn`` (integer units): mean |w| * 2**weight_exp * active inputs."""
    w = np.abs(np.asarray(syn.weight if isinstance(syn, Dense) else syn.value, dtype=float))
    per_input = w.sum() / max(1, n_in) / max(1, w.size / max(1, n_in))
    return float(per_input * 2.0 ** syn.weight_exp * max(1.0, 0.3 * n_in))


def add_network(nodes: dict, edges: list, rng: np.random.Generator, prefix: str, inputs: dict[str, int],
                features: set[str], stress: bool = False, max_delay: int = 62, read_all: bool = False) -> None:
    """Add one random network named ``prefix*`` that reads the (name -> size) ``inputs``."""
    n_layers = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 9)) for _ in range(n_layers)]
    layers = [f"{prefix}L{i}" for i in range(n_layers)]
    count = [0]

    def connect(src: str, n_src: int, dst: str, n_dst: int) -> float:
        syn = _synapse(rng, n_dst, n_src, features, stress, max_delay)
        name = f"{prefix}S{count[0]}"
        count[0] += 1
        nodes[name] = syn
        edges.extend([(src, name), (name, dst)])
        return _drive(syn, n_src)

    for i, (layer, n) in enumerate(zip(layers, sizes)):
        nodes[layer] = None  # placeholder keeps a readable node order; filled once the drive is known
        drive = 0.0
        if i == 0:  # every first layer reads at least one input
            chosen = list(inputs) if read_all else [name for name in inputs if rng.random() < 0.7]
            chosen = chosen or [next(iter(inputs))]
            for src in chosen:
                drive += connect(src, inputs[src], layer, n)
            if len(chosen) > 1:
                features.add("several inputs into one neuron")
        else:
            drive += connect(layers[i - 1], sizes[i - 1], layer, n)
            if rng.random() < 0.3:
                src = next(iter(inputs))
                drive += connect(src, inputs[src], layer, n)
                features.add("skip connection")
        if rng.random() < 0.35:
            connect(layer, n, layer, n)
            features.add("recurrent")
        nodes[layer] = _neuron(rng, n, max(drive, 1.0), features, stress)
    if n_layers > 1 and rng.random() < 0.25:
        connect(layers[-1], sizes[-1], layers[0], sizes[0])
        features.add("feedback")
    out = f"{prefix}out"
    nodes[out] = Output()
    edges.append((layers[-1], out))


def make_group(seeds: list[int], steps: int = 30, batch: int = 1, n_inputs: int = 1, stress: bool = False,
               max_delay: int = 62) -> Group:
    """A graph holding one random network per seed, all fed by ``n_inputs`` shared Input nodes."""
    head = np.random.default_rng([seeds[0], len(seeds), 7])
    inputs = {f"in{i}": int(head.integers(4, 13)) for i in range(n_inputs)}
    nodes: dict = {name: Input(shape=(n,)) for name, n in inputs.items()}
    edges: list = []
    features: set[str] = set()
    for j, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        # the first network reads every input, so the group is one connected component (one Lava run)
        add_network(nodes, edges, rng, f"n{seed}_", inputs, features, stress=stress, max_delay=max_delay,
                    read_all=j == 0)
    delayed = [op for op in nodes.values() if getattr(op, "delays", None) is not None]
    if delayed:  # the end of the delay range is always exercised
        delayed[0].delays.flat[0] = max_delay
        features.add(f"delay={max_delay}")
    density = head.uniform(0.1, 0.6)
    spikes = {name: (head.random((batch, steps, n)) < density).astype(np.uint8) for name, n in inputs.items()}
    graph = Graph(nodes, edges).validate()
    return Group(graph, spikes, list(seeds), features)
