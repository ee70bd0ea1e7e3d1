"""Lava (Loihi 2 bit-accurate CPU models) equals the emulator, integer for integer, on the lowered spike-driven
attention (issue 6): u, v and spikes of every neuron -- the Q/K/V relays or LIFs, the coincidence (AND) neurons,
the talking-heads LIF (v1), the triple-AND array and the attention LIF (v2), with the delayed Q path of v1.

The quantized graphs and their stimuli are ``data/sdt_attention.npz`` (this interpreter has no torch to build
them); tests/test_sdt_attention.py::test_lava_fixture_is_the_current_lowering proves the file is what the current
lowering and quantizer produce, and that the emulator reproduces torch's attention spikes exactly on these graphs'
kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate
from neurodeploy.ir.serialize import graph_from_bytes

FIXTURE = Path(__file__).resolve().parent / "data" / "sdt_attention.npz"
RECORD = ("spikes", "u", "v")
CASES = ("v1_core", "v2_core", "v2_bits_core", "v2_module")


@pytest.mark.parametrize("case", CASES)
def test_lava_equals_emulator_on_lowered_attention(lava, case):
    data = np.load(FIXTURE)
    graph = graph_from_bytes(data[f"{case}/graph"].tobytes(), source=f"{FIXTURE.name}:{case}")
    spikes = data[f"{case}/spikes"]
    assert graph.quantized
    emu = simulate(graph, spikes, record=RECORD)
    expected = {**emu.outputs, **emu.recorded}
    got = run_description(describe(graph), spikes, record=RECORD)
    assert set(got) == set(expected)
    for key in sorted(expected):
        a, b = np.asarray(got[key]), np.asarray(expected[key])
        assert a.shape == b.shape, key
        np.testing.assert_array_equal(a, b, err_msg=f"{case} {key}")
    out = expected["out"]
    assert out.any() and not out.all(), "the attention output must carry activity"
    ands = [k for k in expected if k.endswith("_and/spikes")]
    assert ands and all(expected[k].any() for k in ands), "every coincidence array must fire somewhere"
