"""Emulator vs Lava fixed_pt, element for element: u, v and spikes of every neuron of >= 200 seeded random networks.

Networks come from :mod:`random_nets`; several share one Input so one Lava run (per sample) executes a group.
Each group's Lava run is compared with the emulator's default engine (``engine="auto"``, which must resolve to the
compiled numba kernel: what the product runs) and, in every group, with the numpy engine too.
"""

from __future__ import annotations

import numpy as np
import pytest
from random_nets import make_group

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate

RECORD = ("spikes", "u", "v")
#: engine asked for -> engine that must run it
ENGINES = {"auto": "numba", "numpy": "numpy"}


def _groups() -> dict[str, dict]:
    groups = {}
    for i in range(23):  # 23 x 8 = 184 ordinary networks
        batch = 2 if i % 8 == 3 else 1
        groups[f"g{i:02d}"] = dict(seeds=list(range(1000 * (i + 1), 1000 * (i + 1) + 8)), steps=(24, 32, 40)[i % 3],
                                   batch=batch, n_inputs=1 + i % 2)
    for i in range(2):  # long runs so that delays up to 62 deliver (a spike at column c arrives at c + 2 + d)
        groups[f"long{i}"] = dict(seeds=list(range(50000 + 100 * i, 50000 + 100 * i + 5)), steps=70, batch=1,
                                  n_inputs=1, max_delay=62)
    for i in range(2):  # large weight_exp: |u| passes 2**23 (one conditional wrap), v saturates
        groups[f"stress{i}"] = dict(seeds=list(range(90000 + 100 * i, 90000 + 100 * i + 6)), steps=30,
                                    batch=1 + i, n_inputs=2, stress=True)
    return groups


GROUPS = _groups()
#: network seeds whose every recorded array (u, v, spikes, outputs) equalled Lava's with both engines; filled by
#: test_emulator_equals_lava, counted by the last test of this module
COMPARED: set[int] = set()


def test_group_seeds_are_distinct():
    seeds = [s for g in GROUPS.values() for s in g["seeds"]]
    assert len(set(seeds)) == len(seeds)


def test_generator_covers_the_required_features():
    features: set[str] = set()
    for spec in GROUPS.values():
        features |= make_group(**spec).features
    required = {"dense", "sparse", "dense+delays", "sparse+delays", "recurrent", "sign_mode=None", "sign_mode=mixed",
                "sign_mode=excitatory", "sign_mode=inhibitory", "num_weight_bits<8", "weight_exp<0", "weight_exp>0",
                "bias_exp>0", "several inputs into one neuron", "weights outside the sign range", "du=0", "du=4095"}
    assert required <= features, sorted(required - features)
    assert any(spec["batch"] > 1 for spec in GROUPS.values())
    delays = [np.max(op.delays) for spec in GROUPS.values() if spec.get("max_delay") == 62
              for op in make_group(**spec).graph.nodes.values() if getattr(op, "delays", None) is not None]
    assert max(delays) == 62


def _first_difference(a: np.ndarray, b: np.ndarray, engine: str) -> str:
    idx = tuple(int(i) for i in np.argwhere(a != b)[0])
    return f"first at [sample, step index, neuron] {list(idx)}: lava {a[idx]} vs emulator ({engine}) {b[idx]}"


@pytest.mark.parametrize("name", list(GROUPS))
def test_emulator_equals_lava(lava, name):
    spec = GROUPS[name]
    group = make_group(**spec)
    lava_res = run_description(describe(group.graph), group.spikes, record=RECORD)
    compared: list[set[int]] = []
    for engine, runs in ENGINES.items():  # one Lava run, both emulator engines
        emu = simulate(group.graph, group.spikes, record=RECORD, engine=engine)
        assert emu.engine == runs, f"engine={engine!r} ran {emu.engine!r} ({emu.engine_note})"
        expected = {**emu.outputs, **emu.recorded}
        assert set(lava_res) == set(expected)
        for key in sorted(expected):
            a, b = lava_res[key], expected[key]
            assert a.shape == b.shape, key
            if not np.array_equal(a, b):
                seed = key.split("_")[0].lstrip("n")
                where = f"{name} (network seed {seed}) {key}: {_first_difference(a, b, runs)}"
                np.testing.assert_array_equal(a, b, err_msg=where)
        compared.append({int(key.split("_")[0].lstrip("n")) for key in expected})  # keys are n{seed}_{node}...
    if spec.get("stress"):
        u = np.concatenate([expected[k].ravel() for k in expected if k.endswith("/u")])
        v = np.concatenate([expected[k].ravel() for k in expected if k.endswith("/v")])
        assert np.abs(u).max() > 2**22, "stress group should drive |u| near/past 2**23"
        assert v.min() == -(2**23 - 1), "stress group should saturate v"
    # a network counts once both engines compared its arrays equal to Lava's (it reached this line)
    assert compared[0] == compared[1] == set(spec["seeds"]), (name, sorted(compared[0] ^ set(spec["seeds"])))
    COMPARED.update(compared[0])


def test_at_least_200_distinct_networks_compared():
    """Last in the module (pytest runs a module's tests in file order): counts the networks that
    test_emulator_equals_lava actually compared element for element, not the seed list. Run with the whole module."""
    declared = sum(len(g["seeds"]) for g in GROUPS.values())
    assert len(COMPARED) >= 200, f"only {len(COMPARED)} of {declared} declared networks were compared equal to Lava"
