"""Neurocore partitioning: hand-computed core counts and named limit violations."""

import numpy as np
import pytest
from graphs import two_chip_graph

from neurodeploy.errors import CapacityError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse
from neurodeploy.passes.partition import partition
from neurodeploy.profiles import CoreLimits

Q = QuantInfo(scale=1.0)
LOIHI1 = CoreLimits(neurons_per_core=1024, fan_in_axons_per_core=4096, fan_out_axons_per_core=4096,
                    synaptic_memory_bits_per_core=128 * 1024 * 8, cores_per_chip=128)


def mlp(n_in, n_hidden, n_out, bits=8):
    return Graph({"in": Input(shape=(n_in,)),
                  "fc1": Dense(weight=np.ones((n_hidden, n_in), np.int64), num_weight_bits=bits, quant=Q),
                  "h": CubaLIF(shape=(n_hidden,), quant=Q),
                  "fc2": Dense(weight=np.ones((n_out, n_hidden), np.int64), num_weight_bits=bits, quant=Q),
                  "o": CubaLIF(shape=(n_out,), quant=Q), "out": Output()},
                 [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")])


def test_neuron_limit_splits_into_ceil_n_over_1024_cores():
    report = partition(mlp(100, 3000, 10), LOIHI1)[0].meta["mapping"]
    # 3000 hidden neurons: 1024 + 1024 + 952; 100 inputs x 8 bits x 1024 = 819200 bits < 1048576: neurons bind
    assert [(c["node"], c["start"], c["stop"]) for c in report["per_core"]] == [
        ("h", 0, 1024), ("h", 1024, 2048), ("h", 2048, 3000), ("o", 0, 10)]
    assert report["cores"] == 4 and report["chips"] == 1
    # each hidden neuron reaches the single output core: fan-out = neurons in the slice
    assert [c["fan_out"] for c in report["per_core"]] == [1024, 1024, 952, 0]


def test_synaptic_memory_binds_before_neuron_count():
    # 1000 inputs x 8 bits = 8000 bits per neuron; 1048576 // 8000 = 131 neurons per core; 500 -> 131,131,131,107
    report = partition(mlp(1000, 500, 2), LOIHI1)[0].meta["mapping"]
    sizes = [c["stop"] - c["start"] for c in report["per_core"] if c["node"] == "h"]
    assert sizes == [131, 131, 131, 107]
    # with 4-bit weights twice as many fit: 262, 238
    report = partition(mlp(1000, 500, 2, bits=4), LOIHI1)[0].meta["mapping"]
    assert [c["stop"] - c["start"] for c in report["per_core"] if c["node"] == "h"] == [262, 238]


def test_chips_count_cores_per_chip():
    limits = CoreLimits(neurons_per_core=10, fan_in_axons_per_core=4096, fan_out_axons_per_core=4096,
                        synaptic_memory_bits_per_core=10**9, cores_per_chip=4)
    report = partition(mlp(5, 95, 10), limits)[0].meta["mapping"]
    assert report["cores"] == 10 + 1 and report["chips"] == 3  # ceil(95/10) = 10 hidden cores + 1 output core


def test_fan_in_limit_names_node_and_values():
    with pytest.raises(CapacityError, match=r"node 'o'.*5000 fan-in axons but a core has 4096"):
        partition(mlp(10, 5000, 1), LOIHI1)


def test_sparse_synapses_count_index_bits_and_distinct_axons():
    g = Graph({"in": Input(shape=(50,)),
               "syn": Sparse(out_shape=(4,), in_size=50, row=np.array([0, 0, 1, 3]), col=np.array([1, 2, 2, 49]),
                             value=np.ones(4, np.int64), delays=np.zeros(4, np.int64), quant=Q),
               "n": CubaLIF(shape=(4,), quant=Q), "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "out")])
    (core,) = partition(g, LOIHI1)[0].meta["mapping"]["per_core"]
    assert core["fan_in"] == 3 and core["synapses"] == 4
    assert core["synaptic_memory_bits"] == 4 * (8 + 6 + 12)  # weight + delay + index bits


def test_fan_out_over_the_limit_splits_the_source_population():
    # 100 hidden neurons, all-to-all into 300 outputs at 10 neurons per core: 30 output cores, so every hidden neuron
    # needs 30 output axons; a 100-neuron slice would need 3000 > 1000: it is cut to floor(100 * 1000 / 3000) = 33
    limits = CoreLimits(neurons_per_core=100, fan_in_axons_per_core=4096, fan_out_axons_per_core=1000,
                        synaptic_memory_bits_per_core=10 * 100 * 8, cores_per_chip=128)
    report = partition(mlp(10, 100, 300), limits)[0].meta["mapping"]
    hidden = [c for c in report["per_core"] if c["node"] == "h"]
    assert [(c["start"], c["stop"]) for c in hidden] == [(0, 33), (33, 66), (66, 99), (99, 100)]
    assert all(c["fan_out"] <= 1000 for c in report["per_core"]) and hidden[0]["fan_out"] == 33 * 30
    one = CoreLimits(neurons_per_core=100, fan_in_axons_per_core=4096, fan_out_axons_per_core=20,
                     synaptic_memory_bits_per_core=10 * 100 * 8, cores_per_chip=128)
    with pytest.raises(CapacityError, match="node 'h'.*neuron 0.*30 output axons"):
        partition(mlp(10, 100, 300), one)


# ------------------------------------------------------------------------------ recurrent graphs, brute-force counts
def recurrent(n=400, k=6000, seed=0):
    """A population with two recurrent Sparse ops (some pairs repeated) and a Dense input: fan-out binds."""
    rng = np.random.default_rng(seed)
    pre = rng.integers(0, n, k)
    post = np.clip(pre + rng.integers(-60, 61, k), 0, n - 1)  # local connectivity, like a reservoir
    exc = pre < int(0.8 * n)
    readout = np.eye(7, n, 0, np.int64) + np.eye(7, n, 50, np.int64)  # 14 of the reservoir neurons
    nodes = {"in": Input(shape=(20,)), "w_in": Dense(weight=(rng.random((n, 20)) < 0.2).astype(np.int64), quant=Q),
             "r": CubaLIF(shape=(n,), quant=Q), "fc": Dense(weight=readout, quant=Q),
             "o": CubaLIF(shape=(7,), quant=Q), "out": Output()}
    edges = [("in", "w_in"), ("w_in", "r"), ("r", "fc"), ("fc", "o"), ("o", "out")]
    for name, mask in (("e", exc), ("i", ~exc)):
        nodes[name] = Sparse(out_shape=(n,), in_size=n, row=post[mask], col=pre[mask],
                             value=np.ones(mask.sum(), np.int64), delays=rng.integers(0, 4, mask.sum()), quant=Q)
        edges += [("r", name), (name, "r")]
    return Graph(nodes, edges)


def brute_force_counts(graph, per_core):
    """Fan-in and fan-out of every core by Python sets over the dense matrices."""
    core_of = {}
    for c in per_core:
        for i in range(c["start"], c["stop"]):
            core_of[(c["node"], i)] = c["core"]
    fan_in = {c["core"]: 0 for c in per_core}
    fan_out = {c["core"]: 0 for c in per_core}
    for name, op in graph.nodes.items():
        if op.role != "synapse":
            continue
        (src,), (tgt,) = graph.predecessors(name), graph.successors(name)
        if isinstance(op, Sparse):  # every stored position counts, even a zero value
            present = np.zeros((op.out_shape[0], op.in_size), bool)
            present[op.row, op.col] = True
        else:
            present = np.asarray(op.weight) != 0
        for c in per_core:
            if c["node"] == tgt:
                fan_in[c["core"]] += int(present[c["start"]:c["stop"]].any(axis=0).sum())
            if c["node"] == src:
                for j in range(c["start"], c["stop"]):
                    fan_out[c["core"]] += len({core_of[(tgt, i)] for i in np.flatnonzero(present[:, j])})
    return fan_in, fan_out


def test_recurrent_fan_out_binds_and_counts_equal_a_brute_force_count():
    limits = CoreLimits(neurons_per_core=256, fan_in_axons_per_core=120, fan_out_axons_per_core=150,
                        synaptic_memory_bits_per_core=10**6, cores_per_chip=16)
    g = recurrent()
    report = partition(g, limits)[0].meta["mapping"]
    per_core = report["per_core"]
    fan_in, fan_out = brute_force_counts(g, per_core)
    assert [c["fan_in"] for c in per_core] == [fan_in[c["core"]] for c in per_core]
    assert [c["fan_out"] for c in per_core] == [fan_out[c["core"]] for c in per_core]
    assert all(c["fan_out"] <= 150 and c["fan_in"] <= 120 and c["stop"] - c["start"] <= 256 for c in per_core)
    r = [c for c in per_core if c["node"] == "r"]
    assert r[0]["start"] == 0 and r[-1]["stop"] == 400 and all(a["stop"] == b["start"] for a, b in zip(r, r[1:]))
    assert report["neuron_caps"]["r"] < 256 and report["rounds"] > 2  # the cap search ran
    assert report["chips"] == -(-report["cores"] // 16)
    # without the fan-out limit only fan-in binds: larger slices, still counted exactly
    loose = partition(g, CoreLimits(256, 120, 10**6, 10**6, 16))[0].meta["mapping"]
    assert loose["cores"] < report["cores"] and loose["neuron_caps"]["r"] == 256
    fan_in, fan_out = brute_force_counts(g, loose["per_core"])
    assert [c["fan_in"] for c in loose["per_core"]] == [fan_in[c["core"]] for c in loose["per_core"]]
    assert [c["fan_out"] for c in loose["per_core"]] == [fan_out[c["core"]] for c in loose["per_core"]]


def test_fan_in_greedy_takes_the_longest_run_that_fits():
    # neuron i reads inputs i .. i + 9 of 100: a run of m neurons reads m + 9 distinct inputs; 30 axons -> 21 neurons
    w = np.zeros((60, 100), np.int64)
    for i in range(60):
        w[i, i:i + 10] = 1
    g = Graph({"in": Input(shape=(100,)), "fc": Dense(weight=w, quant=Q), "n": CubaLIF(shape=(60,), quant=Q),
               "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")])
    report = partition(g, CoreLimits(1024, 30, 4096, 10**6, 128))[0].meta["mapping"]
    assert [(c["start"], c["stop"], c["fan_in"]) for c in report["per_core"]] == [(0, 21, 30), (21, 42, 30),
                                                                                 (42, 60, 27)]


def test_a_single_neuron_over_the_fan_out_limit_is_named():
    limits = CoreLimits(neurons_per_core=256, fan_in_axons_per_core=4096, fan_out_axons_per_core=3,
                        synaptic_memory_bits_per_core=10**6, cores_per_chip=16)
    with pytest.raises(CapacityError, match=r"node 'r'.*output axons \(distinct target cores\) but a core has 3"):
        partition(recurrent(), limits)


def test_chip_count_is_reported_against_a_configurable_system():
    from neurodeploy.compiler import compile_graph

    g = two_chip_graph(Q)  # 130 neurons, one core each: 130 cores on 2 Loihi 2 chips of 128 cores
    mapping = compile_graph(g, "loihi2").manifest["mapping"]
    assert (mapping["cores"], mapping["chips"], mapping["system_chips"]) == (130, 2, 1152)
    assert compile_graph(g, "loihi2", chips=2).manifest["mapping"]["system_chips"] == 2
    with pytest.raises(CapacityError, match=r"node 'n'.*130 cores on 2 loihi2 chips but the system has 1"):
        compile_graph(g, "loihi2", chips=1)
