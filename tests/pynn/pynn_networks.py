"""Hand-checked quantized networks for the PyNN backend tests (built directly from IR ops with QuantInfo).

``python tests/pynn/pynn_networks.py DIR [MACHINE]`` emits each mapping network to ``DIR/<name>/pynn/`` for MACHINE
(spinnaker1 by default; input of tests/pynn/spynnaker_reference.py, which maps them with sPyNNaker on a virtual
board).
"""

import sys
from pathlib import Path

import numpy as np

from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse

Q = QuantInfo(scale=100.0)


def lif(n, du=1000, dv=410, vth=200, bias=0, readout=False):
    return CubaLIF(shape=(n,), du=du, dv=dv, vth=vth, bias=np.full(n, bias, np.int64), quant=Q, readout=readout)


def chain(layers, edges, name="net"):
    return Graph(layers, edges, meta={"name": name}).validate()


def mlp(n_in=100, n_hidden=600, n_out=10, out_delay=39, seed=0):
    """100 inputs -> 600 LIF (3 cores: 256 + 256 + 88) -> 10 LIF through delays of 40 steps (on-core: 10 neurons per
    core leave 2**(14 - 4 - 1) = 512 slots)."""
    rng = np.random.default_rng(seed)
    return chain({"in": Input(shape=(n_in,)),
                  "fc1": Dense(weight=rng.integers(1, 50, (n_hidden, n_in)), quant=Q),
                  "h": lif(n_hidden),
                  "fc2": Dense(weight=rng.integers(1, 50, (n_out, n_hidden)),
                               delays=np.full((n_out, n_hidden), out_delay), quant=Q),
                  "o": lif(n_out), "out": Output()},
                 [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")], "mlp")


def delayed(n=300, max_delay=70, seed=1):
    """300 inputs -> 300 LIF (2 cores of 256 + 44: 32 delay slots) with delays 0..70 IR steps (1..71 PyNN steps):
    ceil(71 / 32) - 1 = 2 delay-extension stages, one delay core for the single SpikeSourceArray core."""
    rng = np.random.default_rng(seed)
    k = 4000
    row, col = rng.integers(0, n, k), rng.integers(0, n, k)
    return chain({"in": Input(shape=(n,)),
                  "syn": Sparse(out_shape=(n,), in_size=n, row=row, col=col, value=rng.integers(1, 60, k),
                                delays=rng.integers(0, max_delay + 1, k), quant=Q),
                  "h": lif(n), "out": Output()},
                 [("in", "syn"), ("syn", "h"), ("h", "out")], "delayed")


def wide(n_in=200, n_hidden=4500, n_out=50, density=0.1, seed=2):
    """200 inputs -> 4500 LIF (18 cores) -> 50 LIF: more cores than chip (0, 0) has (15 application cores)."""
    rng = np.random.default_rng(seed)

    def sparse(n_o, n_i):
        mask = rng.random((n_o, n_i)) < density
        r, c = np.nonzero(mask)
        return Sparse(out_shape=(n_o,), in_size=n_i, row=r, col=c, value=rng.integers(-40, 60, r.size), quant=Q)

    return chain({"in": Input(shape=(n_in,)), "s1": sparse(n_hidden, n_in), "h": lif(n_hidden),
                  "s2": sparse(n_out, n_hidden), "o": lif(n_out), "out": Output()},
                 [("in", "s1"), ("s1", "h"), ("h", "s2"), ("s2", "o"), ("o", "out")], "wide")


def reservoir(n_in=20, n=400, n_out=5, seed=3):
    """A recurrent reservoir with mixed-sign weights (excitatory and inhibitory projections, recurrent edge),
    duplicate (pre, post) synapses at different delays, an IF_curr_delta readout population."""
    rng = np.random.default_rng(seed)
    k = 6000
    row, col = rng.integers(0, n, k), rng.integers(0, n, k)
    dup = rng.integers(0, k, 200)  # the same pairs again, one or two steps later
    row, col = np.r_[row, row[dup]], np.r_[col, col[dup]]
    delays = np.r_[rng.integers(0, 3, k), rng.integers(3, 5, dup.size)]
    return chain({"in": Input(shape=(n_in,)),
                  "win": Dense(weight=rng.integers(0, 80, (n, n_in)), quant=Q),
                  "res": lif(n, du=3000, dv=200, vth=300),
                  "rec": Sparse(out_shape=(n,), in_size=n, row=row, col=col,
                                value=rng.integers(-60, 40, row.size), delays=delays, quant=Q),
                  "wout": Dense(weight=rng.integers(-20, 40, (n_out, n)), quant=Q),
                  "o": lif(n_out, du=4095, dv=100, vth=100), "out": Output()},
                 [("in", "win"), ("win", "res"), ("res", "rec"), ("rec", "res"), ("res", "wout"),
                  ("wout", "o"), ("o", "out")], "reservoir")


def fabric(seed=4):
    """Several multi-core populations over several chips: 300 inputs -> A (3000, 12 cores) -> B (2500, 10 cores)
    with delays up to 40 PyNN steps (B: 32 on-core slots, so A gets 12 delay-extension cores), B -> A back
    (recurrent, mixed signs), A -> C (64)."""
    rng = np.random.default_rng(seed)

    def sparse(n_o, n_i, density, low, high, max_delay=None):
        mask = rng.random((n_o, n_i)) < density
        r, c = np.nonzero(mask)
        delays = None if max_delay is None else rng.integers(0, max_delay + 1, r.size)
        return Sparse(out_shape=(n_o,), in_size=n_i, row=r, col=c, value=rng.integers(low, high, r.size),
                      delays=delays, quant=Q)

    return chain({"in": Input(shape=(300,)), "sa": sparse(3000, 300, 0.02, 1, 60), "A": lif(3000),
                  "sb": sparse(2500, 3000, 0.01, 1, 40, max_delay=39), "B": lif(2500),
                  "sba": sparse(3000, 2500, 0.005, -30, 30), "sc": sparse(64, 3000, 0.05, -10, 30),
                  "C": lif(64, du=4095), "out": Output()},
                 [("in", "sa"), ("sa", "A"), ("A", "sb"), ("sb", "B"), ("B", "sba"), ("sba", "A"), ("A", "sc"),
                  ("sc", "C"), ("C", "out")], "fabric")


SPLIT_N = 300  # split_reservoir's neurons: blocks of 64 give 4 full blocks and one of 44


def split_reservoir(seed=0):
    """40 inputs -> a 300-neuron recurrent reservoir (80 % excitatory rows, 20 % inhibitory, delays 0..7, a few
    synapses repeated at another delay: layers) -> a 5-neuron readout; Outputs on the reservoir and the readout."""
    rng = np.random.default_rng(seed)
    n = SPLIT_N
    k_in, k_rec = 600, 4000
    w_in = Sparse(out_shape=(n,), in_size=40, row=rng.integers(0, n, k_in), col=rng.integers(0, 40, k_in),
                  value=rng.integers(20, 60, k_in), quant=Q)
    col = rng.integers(0, n, k_rec)
    row = rng.integers(0, n, k_rec)
    row[:100], col[:100] = row[100:200], col[100:200]  # the same pairs twice, at other delays: two layers
    # even values: Lava truncates the lowest bit of a mixed-sign matrix, and check_limits refuses a change
    value = 2 * np.where(col < 0.8 * n, rng.integers(3, 20, k_rec), -rng.integers(3, 30, k_rec))
    rec = Sparse(out_shape=(n,), in_size=n, row=row, col=col, value=value, delays=rng.integers(0, 8, k_rec),
                 sign_mode="mixed", quant=Q)
    readout = Sparse(out_shape=(5,), in_size=n, row=rng.integers(0, 5, 500), col=rng.integers(0, n, 500),
                     value=rng.integers(5, 30, 500), delays=rng.integers(0, 3, 500), quant=Q)
    return Graph({"in": Input(shape=(40,)), "w_in": w_in,
                  "res": CubaLIF(shape=(n,), du=1200, dv=500, vth=60, bias=np.zeros(n, np.int64), quant=Q),
                  "rec": rec, "w_out": readout, "o": CubaLIF(shape=(5,), du=1000, dv=400, vth=80, quant=Q),
                  "res_spikes": Output(), "out": Output()},
                 [("in", "w_in"), ("w_in", "res"), ("res", "rec"), ("rec", "res"), ("res", "w_out"),
                  ("w_out", "o"), ("res", "res_spikes"), ("o", "out")], meta={"name": "reservoir"}).validate()


MAPPING_NETWORKS = {"mlp": mlp, "delayed": delayed, "wide": wide, "reservoir": reservoir, "fabric": fabric}


def main(directory, machine="spinnaker1"):
    from neurodeploy.backends.pynn.emit import deploy, write_deployment

    for name, make in MAPPING_NETWORKS.items():
        write_deployment(deploy(make(), machine=machine), Path(directory) / name / "pynn")
        print("emitted", name, "for", machine)


if __name__ == "__main__":
    main(*sys.argv[1:3])
