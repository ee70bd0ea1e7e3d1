"""Shared test helper: small hand-built graphs used by several test files."""

import numpy as np

from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse


def two_chip_graph(quant: QuantInfo) -> Graph:
    """130 neurons reading overlapping windows of 4096 inputs: any two exceed a core's 4096 input axons, so one core
    each, 130 cores on 2 Loihi 2 chips of 128 cores (a quantized graph: compile skips the quantize pass)."""
    n, width, step = 130, 4096, 32
    rows = np.repeat(np.arange(n), width)
    cols = (np.arange(n)[:, None] * step + np.arange(width)[None, :]).ravel()
    return Graph({"in": Input(shape=(n * step + width,)),
                  "syn": Sparse(out_shape=(n,), in_size=n * step + width, row=rows, col=cols,
                                value=np.ones(rows.size, np.int64), num_weight_bits=8, sign_mode="excitatory",
                                quant=quant),
                  "n": CubaLIF(shape=(n,), du=4095, dv=0, vth=100, quant=quant), "out": Output()},
                 [("in", "syn"), ("syn", "n"), ("n", "out")])


def random_net(n_in: int, n_hidden: int, n_out: int | None = None, seed: int = 0) -> Graph:
    """A quantized net ``in -> fc1 -> h [-> fc2 -> o] -> out`` (compile skips the quantize pass) with random even
    8-bit weights (Lava stores mixed-sign 8-bit weights in steps of 2) that make the neurons spike on 30 % input
    spike rates."""
    rng = np.random.default_rng(seed)
    q = QuantInfo(scale=1.0)

    def lif(n: int) -> CubaLIF:
        return CubaLIF(shape=(n,), du=1024, dv=256, vth=100, quant=q)

    nodes = {"in": Input(shape=(n_in,)),
             "fc1": Dense(weight=2 * rng.integers(-10, 30, (n_hidden, n_in)), num_weight_bits=8, quant=q),
             "h": lif(n_hidden)}
    edges = [("in", "fc1"), ("fc1", "h")]
    last = "h"
    if n_out is not None:
        nodes.update({"fc2": Dense(weight=2 * rng.integers(-10, 30, (n_out, n_hidden)), num_weight_bits=8, quant=q),
                      "o": lif(n_out)})
        edges += [("h", "fc2"), ("fc2", "o")]
        last = "o"
    nodes["out"] = Output()
    edges.append((last, "out"))
    return Graph(nodes, edges)


def int32_wrap_graph() -> tuple[Graph, np.ndarray]:
    """A bias-only neuron population (no incoming synapse) beside one neuron whose ``a_in << 6`` wraps int32
    (255 << 24 << 6 > 2**31), with its stimulus; at index 1 Lava's u is ``-(2**30) + 2**24``: a_in = 255 << 24 ->
    int32 -2**24; << 6 -> -2**30 <= -2**23, so Lava's conditional 24-bit wrap adds 2**24."""
    q = QuantInfo(scale=1.0)
    g = Graph({"in": Input(shape=(1,)),
               "syn": Dense(weight=np.array([[255]]), weight_exp=24, quant=q),
               "n": CubaLIF(shape=(1,), du=4095, dv=0, vth=131071, quant=q),
               "b": CubaLIF(shape=(3,), du=0, dv=17, vth=3, bias=np.array([5, -300, 40]), bias_exp=4, quant=q),
               "out": Output(), "out2": Output()},
              [("in", "syn"), ("syn", "n"), ("n", "out"), ("b", "out2")])
    return g, np.array([[[1], [1], [0], [1], [0]]], np.uint8)


def random_sparse(rng, n_out: int, n_in: int, density: float, lo: int, hi: int, max_delay: int = 0,
                  weight_exp: int = 0, sign_mode: str = "mixed") -> Sparse:
    """A quantized Sparse op: entries with probability ``density``, integer weights in ``[lo, hi)``, delays in
    ``[0, max_delay]`` (none when 0)."""
    mask = rng.random((n_out, n_in)) < density
    row, col = np.nonzero(mask)
    delays = rng.integers(0, max_delay + 1, row.size) if max_delay else None
    return Sparse(out_shape=(n_out,), in_size=n_in, row=row, col=col, value=rng.integers(lo, hi, row.size),
                  delays=delays, weight_exp=weight_exp, sign_mode=sign_mode, quant=QuantInfo(scale=1.0))


def delayed_recurrent_net(weight_exp: int, reset: str) -> tuple[Graph, np.ndarray]:
    """Dense 200 -> 120, a sparse recurrent matrix with delays 0-9, a second sparse layer to 30 neurons, and its
    stimulus (batch 3, 60 steps): the engines' larger equality case."""
    q = QuantInfo(scale=1.0)
    rng = np.random.default_rng(abs(weight_exp) * 10 + (reset == "zero"))
    g = Graph({"in": Input(shape=(200,)),
               "fc": Dense(weight=rng.integers(-120, 256, (120, 200)), weight_exp=weight_exp, quant=q),
               "a": CubaLIF(shape=(120,), du=700, dv=300, vth=int(40 * 2.0**weight_exp) + 5, bias=3, bias_exp=2,
                            reset=reset, quant=q),
               "rec": random_sparse(rng, 120, 120, 0.04, -150, 120, max_delay=9, weight_exp=-weight_exp // 2),
               "fc2": random_sparse(rng, 30, 120, 0.15, -40, 200, weight_exp=weight_exp),
               "b": CubaLIF(shape=(30,), du=4095, dv=0, vth=60, reset=reset, quant=q),
               "out": Output()},
              [("in", "fc"), ("fc", "a"), ("a", "rec"), ("rec", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "out")])
    return g, (rng.random((3, 60, 200)) < 0.08).astype(np.uint8)
