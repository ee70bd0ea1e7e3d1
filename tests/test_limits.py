"""check_limits: every field range, lowering, and the per-population capacity checks (messages name the node)."""

import numpy as np
import pytest

from neurodeploy.errors import CapacityError, QuantizationError
from neurodeploy.ir import IF, CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse
from neurodeploy.passes.limits import check_limits, population_demand

Q = QuantInfo(scale=1.0)


def net(weight=None, n_in=3, n_out=2, syn=None, **neuron):
    params = {"du": 4095, "dv": 0, "vth": 100, "bias": 0, "bias_exp": 0}
    params.update(neuron)
    if syn is None:
        w = np.ones((n_out, n_in), np.int64) if weight is None else np.asarray(weight)
        syn = Dense(weight=w, sign_mode="excitatory", num_weight_bits=8, quant=Q, origin="m.fc")
    return Graph({"in": Input(shape=(n_in,)), "fc": syn,
                  "n": CubaLIF(shape=(n_out,), quant=Q, origin="m.lif", **params), "out": Output()},
                 [("in", "fc"), ("fc", "n"), ("n", "out")])


def test_a_valid_quantized_graph_passes_every_profile():
    g = net()
    for profile in ("emulator", "loihi2", "loihi1"):
        assert check_limits(g, profile) == (g, False)


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("du", 4096, "4096 is outside [0, 4095]"),
    ("dv", -1, "-1 is outside [0, 4095]"),
    ("vth", 2 ** 17, "131072 is outside [0, 131071]"),
    ("bias", np.array([0, 4096]), "4096 is outside [-4096, 4095]"),
    ("bias_exp", 8, "8 is outside [0, 7]"),
    ("vth", 10.5, "non-integer value 10.5"),
])
def test_neuron_field_out_of_range(field, value, fragment):
    with pytest.raises(QuantizationError) as info:
        check_limits(net(**{field: value}), "loihi2")
    msg = str(info.value)
    assert "node 'n'" in msg and f"field '{field}'" in msg and "m.lif" in msg and fragment in msg and "Fix:" in msg


def test_synapse_fields_out_of_range():
    cases = [
        (Dense(weight=np.array([[3, -1]]), sign_mode="mixed", num_weight_bits=8, quant=Q), "3 -> 2"),
        (Dense(weight=np.array([[300, 1]]), sign_mode="excitatory", quant=Q), "300 -> 255"),
        (Dense(weight=np.array([[-1, 1]]), sign_mode="excitatory", quant=Q), "-1 -> 0"),
        (Dense(weight=np.ones((1, 2), np.int64), weight_exp=8, quant=Q), "field 'weight_exp' value 8"),
        (Dense(weight=np.ones((1, 2), np.int64), num_weight_bits=9, quant=Q), "field 'num_weight_bits' value 9"),
        (Dense(weight=np.ones((1, 2), np.int64), delays=np.array([[0, 63]]), quant=Q), "field 'delays' value 63"),
        (Dense(weight=np.array([[1.5, 1.0]]), quant=Q), "non-integer value 1.5"),
        # duplicates are summed before Lava clips: 200 + 100 = 300 does not fit
        (Sparse(out_shape=(1,), in_size=2, row=np.array([0, 0]), col=np.array([1, 1]),
                value=np.array([200, 100]), sign_mode="excitatory", quant=Q), "300 -> 255"),
    ]
    for syn, fragment in cases:
        with pytest.raises(QuantizationError) as info:
            check_limits(net(n_in=2, n_out=1, syn=syn), "loihi2")
        assert "node 'fc'" in str(info.value) and fragment in str(info.value), (fragment, str(info.value))


def test_graded_spikes_exceed_loihi1_but_not_loihi2():
    syn = Dense(weight=np.ones((1, 2), np.int64), num_message_bits=8, quant=Q)
    check_limits(net(n_in=2, n_out=1, syn=syn), "loihi2")
    with pytest.raises(QuantizationError, match="node 'fc'.*num_message_bits"):
        check_limits(net(n_in=2, n_out=1, syn=syn), "loihi1")


def test_reset_mode_float_ops_and_unlowered_neurons():
    with pytest.raises(QuantizationError, match="node 'n'.*'subtract' is not supported by loihi2"):
        check_limits(net(reset="subtract"), "loihi2")
    check_limits(net(reset="subtract"), "emulator")
    g = net()
    unquantized = Graph({**g.nodes, "fc": Dense(weight=np.ones((2, 3)))}, g.edges)
    with pytest.raises(QuantizationError, match="node 'fc'.*not quantized"):
        check_limits(unquantized, "loihi2")
    not_lowered = Graph({**g.nodes, "n": IF(shape=(2,), vth=1.0)}, g.edges)
    with pytest.raises(QuantizationError, match="node 'n'.*lowered to CubaLIF"):
        check_limits(not_lowered, "loihi2")


def test_fan_in_beyond_a_core_is_a_capacity_error_on_hardware_profiles_only():
    g = net(n_in=5000, n_out=2)
    with pytest.raises(CapacityError) as info:
        check_limits(g, "loihi1")
    msg = str(info.value)
    assert "node 'n'" in msg and "5000" in msg and "4096" in msg and "Fix:" in msg
    with pytest.raises(CapacityError, match="estimated limit"):  # Loihi 2's per-core fan-in is an estimate
        check_limits(g, "loihi2")
    check_limits(g, "emulator")  # no capacity limits


def tiny_profile(tmp_path, **limits):
    from pathlib import Path

    text = (Path(__file__).parent.parent / "hw_profiles" / "loihi1.toml").read_text()
    head, _, rest = text.partition("[limits]")
    _, _, energy = rest.partition("[energy.synaptic_op]")
    values = {"cores_per_chip": 2, "neurons_per_core": 4, "fan_in_axons_per_core": 64, "fan_out_axons_per_core": 64,
              "synaptic_memory_bits_per_core": 1000, "chips": 1}
    values.update(limits)
    lines = "\n".join(f'{k} = {{ value = {v}, source = "test" }}' for k, v in values.items())
    path = tmp_path / "tiny.toml"
    path.write_text(f"{head}[limits]\n{lines}\n\n[energy.synaptic_op]{energy}")
    return str(path)


def test_core_count_memory_and_chip_totals(tmp_path):
    # 10 neurons at 4 per core -> 3 cores; 2 cores per chip
    g = net(n_in=3, n_out=10)
    with pytest.raises(CapacityError, match=r"node 'n'.*at least 3 cores.*1 .*chip\(s\) have 2"):
        check_limits(g, tiny_profile(tmp_path))
    check_limits(g, tiny_profile(tmp_path), max_chips=2)
    # one neuron with 60 inputs * 8 bits = 480 bits fits 1000; with 20 neurons 9600 bits need 10 cores
    assert population_demand(net(n_in=60, n_out=20), tiny_profile(tmp_path))["n"]["min_cores"] == 10
    sparse = Sparse(out_shape=(1,), in_size=60, row=np.zeros(60, np.int64), col=np.arange(60),
                    value=np.ones(60, np.int64), quant=Q)  # 60 * (8 + 12 index bits) = 1200 > 1000
    with pytest.raises(CapacityError, match="node 'n'.*1200 bits of synaptic memory.*1000"):
        check_limits(net(n_in=60, n_out=1, syn=sparse), tiny_profile(tmp_path))
    with pytest.raises(CapacityError, match="node 'n'.*10 neurons.*hold 8"):
        check_limits(net(n_in=3, n_out=10), tiny_profile(tmp_path, neurons_per_chip=8, cores_per_chip=10))
    with pytest.raises(CapacityError, match="node 'n'.*30 synapses.*hold 20"):
        check_limits(net(n_in=3, n_out=10), tiny_profile(tmp_path, synapses_per_chip=20, cores_per_chip=10))


def scipy_demand(graph, bits_of):
    """population_demand's figures for node 'n' from scipy matrices (an independent construction)."""
    import scipy.sparse as sp

    from neurodeploy.ir.linear import op_matrix

    shapes = graph.shapes()
    mem, synapses, union = 0, 0, {}
    for syn in graph.predecessors("n"):
        (src,) = graph.predecessors(syn)
        m = sp.csr_matrix(op_matrix(graph.nodes[syn], shapes[src]))
        m.sum_duplicates()
        m.eliminate_zeros()
        m.data[:] = 1
        mem = mem + np.diff(m.indptr) * bits_of[syn]
        synapses += m.nnz
        union[src] = m if src not in union else (union[src] + m)
    fan_in = sum(np.diff(u.tocsr().indptr) for u in union.values())
    return {"synapses": synapses, "max_fan_in": int(fan_in.max()), "max_memory_bits": int(mem.max()),
            "memory_bits": int(mem.sum())}


def test_demand_counts_distinct_nonzero_positions_and_the_union_per_source():
    """Two Sparse ops from one source with repeated positions, delays, entries summing to 0 and overlapping
    positions; a Dense op from a second source: counts equal a scipy construction."""
    rng = np.random.default_rng(8)
    n_src, n = 40, 25

    def sparse(seed_rng, k, delays):
        row, col = seed_rng.integers(0, n, k), seed_rng.integers(0, n_src, k)
        value = seed_rng.integers(-3, 4, k)
        return Sparse(out_shape=(n,), in_size=n_src, row=row, col=col, value=value, quant=Q, sign_mode="mixed",
                      delays=seed_rng.integers(0, 4, k) if delays else None)

    g = Graph({"a": Input(shape=(n_src,)), "b": Input(shape=(7,)), "s1": sparse(rng, 600, True),
               "s2": sparse(rng, 500, False), "d": Dense(weight=rng.integers(0, 3, (n, 7)), quant=Q,
                                                         sign_mode="excitatory"),
               "n": CubaLIF(shape=(n,), du=0, dv=0, vth=10, quant=Q), "out": Output()},
              [("a", "s1"), ("a", "s2"), ("b", "d"), ("s1", "n"), ("s2", "n"), ("d", "n"), ("n", "out")])
    got = population_demand(g, "loihi2")["n"]
    expected = scipy_demand(g, {"s1": 8 + 6 + 12, "s2": 8 + 12, "d": 8})
    assert {k: got[k] for k in expected} == expected
    assert expected["max_fan_in"] > 0 and expected["synapses"] < 600 + 500 + 7 * n  # repeats / zeros are present
