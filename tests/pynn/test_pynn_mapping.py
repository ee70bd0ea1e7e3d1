"""SpiNNaker mapping report: hand counts, and sPyNNaker's own mapper (virtual SpiNN-5 board) as the reference.

tests/pynn/data/spynnaker_reference.json (virtual SpiNN-5 board) and spynnaker2_reference.json (virtual 48-chip
SpiNNaker-2 board, spinn_machine version 248) were produced by tests/pynn/spynnaker_reference.py with sPyNNaker
1!7.4.1 on the networks of tests/pynn/pynn_networks.py (see that script's docstring for the commands).
"""

import json
from pathlib import Path

import numpy as np
import pynn_networks as networks
import pytest

from neurodeploy.backends.pynn import deploy, mapping_report
from neurodeploy.errors import CapacityError, InputError
from neurodeploy.ir import CubaLIF, Graph, Input, Output, QuantInfo, Sparse

DATA = Path(__file__).parent / "data"
REFERENCE = {"spinnaker1": json.loads((DATA / "spynnaker_reference.json").read_text()),
             "spinnaker2": json.loads((DATA / "spynnaker2_reference.json").read_text())}


@pytest.fixture(scope="module")
def deployed():
    return {name: deploy(make()) for name, make in networks.MAPPING_NETWORKS.items()}


@pytest.fixture(scope="module")
def deployed2():
    return {name: deploy(make(), machine="spinnaker2") for name, make in networks.MAPPING_NETWORKS.items()}


def test_mlp_by_hand(deployed):
    m = deployed["mlp"].mapping
    assert (m["neuron_cores"], m["spike_source_cores"], m["delay_extension_cores"]) == (4, 1, 0)
    assert m["populations"]["h"]["cores"] == 3 and m["populations"]["h"]["neurons_per_core"] == 256
    assert [(c["population"], c["start"], c["stop"]) for c in m["per_core"]] == [
        ("in", 0, 100), ("h", 0, 256), ("h", 256, 512), ("h", 512, 600), ("o", 0, 10)]
    # chip (0, 0): core 0 SCAMP, 1 extra monitor, 2 packet gatherer; the application starts at core 3
    assert [c["p"] for c in m["per_core"]] == [3, 4, 5, 6, 7] and m["chips"] == 1 and m["boards"] == 1
    # h's matrix: 100 source rows (one SpikeSourceArray core) of 256 synapses into one h core:
    # 2 header words = 8 bytes, aligned to 16, + 100 x (256 + 3) x 4
    assert m["populations"]["h"]["synaptic_matrix_bytes_per_core"] == 16 + 100 * (256 + 3) * 4
    # o's matrix: three h cores of 256 rows, 10 synapses each, each block aligned to 16 bytes
    block = 256 * (10 + 3) * 4
    assert m["populations"]["o"]["synaptic_matrix_bytes_per_core"] == 16 + block + block + block
    h_core = m["per_core"][1]
    assert h_core["neuron_state_bytes"] == 2 * 256 * 15 * 4  # parameters + initial-value copy, 15 words/neuron
    # routing: in -> h (one entry), h's three cores -> o (same route, merged into one entry)
    assert m["per_chip"][0]["routing_entries"] == 2 and m["max_routing_entries"] == 2
    assert m["board_overhead_cores"] == {**m["board_overhead_cores"], "scamp_monitor": 1, "extra_monitor": 1,
                                         "packet_gatherer": 1}


def test_delay_extension_by_hand(deployed):
    m = deployed["delayed"].mapping
    assert m["delay_extension_cores"] == 1  # one per core of the pre population (one SpikeSourceArray core)
    assert m["populations"]["in_delayed"]["delay_stages"] == 2  # delays up to 71 steps, 32 slots: 3 x 32
    assert m["delays"]["h"]["on_core_max_delay"] == 32


@pytest.mark.parametrize("machine,name", [(m, n) for m in sorted(REFERENCE) for n in sorted(REFERENCE[m])])
def test_mapping_equals_spynnakers_own_mapper(deployed, deployed2, machine, name):
    dep = (deployed if machine == "spinnaker1" else deployed2)[name]
    ref, m = REFERENCE[machine][name], dep.mapping
    cores = {k: v["cores"] for k, v in m["populations"].items()}
    assert cores == {k: v["cores"] for k, v in ref["populations"].items()}
    chips = {}
    for c in m["per_core"]:
        chips.setdefault(c["population"], set()).add(tuple(c["chip"]))
    assert chips == {k: {tuple(xy) for xy in v["chips"]} for k, v in ref["populations"].items()}
    assert m["chips"] == len(ref["chips"])
    assert {k: v["synaptic_matrix_bytes_per_core"] for k, v in m["populations"].items() if v["kind"] == "neuron"} \
        == ref["synaptic_matrix_bytes"]
    pops = dep.quantization["weights"]["populations"]
    assert {k: [v["excitatory"]["shift"], v["inhibitory"]["shift"]] for k, v in pops.items()} == \
        ref["ring_buffer_shifts"]
    # what sPyNNaker picks by itself (no max_expected_summed_weight), as the 'spynnaker' shift policy predicts
    assert {k: [v["excitatory"]["spynnaker_default_shift"], v["inhibitory"]["spynnaker_default_shift"]]
            for k, v in pops.items()} == ref["default_ring_buffer_shifts"]
    assert {f"{c['x']},{c['y']}": c["routing_entries"] for c in m["per_chip"] if c["routing_entries"]} == \
        ref["routing_entries"]


def test_neurons_per_core_is_configurable():
    m = mapping_report(networks.mlp(), neurons_per_core=64)
    assert m["populations"]["h"]["cores"] == 10 and m["populations"]["o"]["cores"] == 1
    m = mapping_report(networks.mlp(), neurons_per_core={"h": 100})
    assert m["populations"]["h"]["cores"] == 6
    with pytest.raises(CapacityError, match="node 'h'.*300 neurons per core exceed sPyNNaker's 256"):
        mapping_report(networks.mlp(), neurons_per_core=300)
    with pytest.raises(InputError, match="must be positive"):
        mapping_report(networks.mlp(), neurons_per_core=0)


def test_boards_when_a_board_is_full():
    # 800 single-neuron cores: one SpiNN-5 board has 759 application cores (48 chips of 15-16)
    q = QuantInfo(scale=100.0)
    g = Graph({"in": Input(shape=(1,)),
               "s": Sparse(out_shape=(800,), in_size=1, row=np.arange(800), col=np.zeros(800, int),
                           value=np.full(800, 5), quant=q),
               "n": CubaLIF(shape=(800,), du=1000, dv=410, vth=200, quant=q), "out": Output()},
              [("in", "s"), ("s", "n"), ("n", "out")])
    m = mapping_report(g, neurons_per_core={"n": 1})
    assert m["application_cores"] == 801 and m["boards"] == 2
    assert m["chips"] == 48 + 3  # 759 - 1 input core = 758 on board 0, 42 more need 15 + 16 + 16 cores
    assert m["board_overhead_cores"]["packet_gatherer"] == 2
    per_board = {}
    for c in m["per_core"]:
        per_board[c["board"]] = per_board.get(c["board"], 0) + 1
    assert per_board == {0: 759, 1: 42}


def chain(n=600):
    """Input -> neuron 0; a recurrent chain i -> i + 1 (one synapse per neuron, delay 1)."""
    q = QuantInfo(scale=100.0)
    return Graph({"in": Input(shape=(1,)),
                  "s": Sparse(out_shape=(n,), in_size=1, row=np.zeros(1, int), col=np.zeros(1, int),
                              value=np.full(1, 5), quant=q),
                  "n": CubaLIF(shape=(n,), du=1000, dv=410, vth=200, quant=q),
                  "rec": Sparse(out_shape=(n,), in_size=n, row=np.arange(1, n), col=np.arange(n - 1),
                                value=np.full(n - 1, 7), quant=q), "out": Output()},
                 [("in", "s"), ("s", "n"), ("n", "rec"), ("rec", "n"), ("n", "out")])


def test_split_populations_reserve_rows_only_for_connected_blocks():
    from neurodeploy.backends.pynn.mapping import mapping_report as report_of
    from neurodeploy.backends.pynn.mapping import split_populations
    from neurodeploy.backends.pynn.weights import plan_delays

    dep = deploy(chain())
    # one population: sPyNNaker reserves rows for each of n's 3 cores on every n core (sizes the projection from the
    # pre population's core count, connected or not): 1 input row block (16 + 1 x (1 + 3) x 4 = 32), then 3 blocks
    # of 256 rows x (1 + 3) words, each aligned to 16 bytes
    assert dep.mapping["populations"]["n"]["synaptic_matrix_bytes_per_core"] == 32 + 3 * 256 * 4 * 4
    net, blocks = split_populations(dep.netlist, 256)
    assert blocks == {"n": ["n[0:256]", "n[256:512]", "n[512:600]"]}
    # every synapse is kept once, in block-local indices
    for original in dep.netlist.projections:
        parts = [p for p in net.projections if p.label.startswith(original.label)]
        pre = np.concatenate([p.pre_idx + (int(p.pre.split("[")[1].split(":")[0]) if "[" in p.pre else 0)
                              for p in parts])
        post = np.concatenate([p.post_idx + int(p.post.split("[")[1].split(":")[0]) for p in parts])
        assert sorted(zip(pre.tolist(), post.tolist())) == sorted(zip(original.pre_idx.tolist(),
                                                                      original.post_idx.tolist()))
    # the chain crosses a block boundary only at 255 -> 256 and 511 -> 512: block 0 receives from the input and
    # itself, block 1 from blocks 0 and 1, block 2 from blocks 1 and 2 (88 neurons: one 88-row block)
    assert sorted((p.pre, p.post) for p in net.projections if p.synapse == "rec") == [
        ("n[0:256]", "n[0:256]"), ("n[0:256]", "n[256:512]"), ("n[256:512]", "n[256:512]"),
        ("n[256:512]", "n[512:600]"), ("n[512:600]", "n[512:600]")]
    m = report_of(net, dep.spec, plan_delays(net, dep.spec))
    sizes = {name: p["synaptic_matrix_bytes_per_core"] for name, p in m["populations"].items() if name != "in"}
    block = 256 * (1 + 3) * 4
    assert sizes == {"n[0:256]": 32 + block, "n[256:512]": 16 + 2 * block, "n[512:600]": 16 + block + 88 * 4 * 4}
    assert m["neuron_cores"] == dep.mapping["neuron_cores"] == 3
    with pytest.raises(InputError, match="at least 1 neuron"):
        split_populations(dep.netlist, 0)
