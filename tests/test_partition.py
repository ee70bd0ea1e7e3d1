"""Neurocore partitioning: hand-computed core counts and named limit violations."""

import numpy as np
import pytest

from neurodeploy.errors import CapacityError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse
from neurodeploy.passes.partition import CoreLimits, partition

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
