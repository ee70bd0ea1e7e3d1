"""Shared test helper: run two emulator engines on one Program and compare everything a SimResult holds."""

import numpy as np
import pytest

from neurodeploy.emulator import Program

RECORD = ("spikes", "u", "v")


def assert_engines_equal(graph_or_program, spikes, ref: str, other: str, other_options: dict | None = None,
                         **run) -> tuple:
    """Run engine ``ref`` and engine ``other`` (with ``other_options``, e.g. a device) on one Program; every
    recorded array and output must be equal element for element (the first difference is named), and so must the
    spike counts and synaptic operations. Returns both results."""
    program = graph_or_program if isinstance(graph_or_program, Program) else Program(graph_or_program)
    a_res = program.run(spikes, record=RECORD, engine=ref, **run)
    b_res = program.run(spikes, record=RECORD, engine=other, **(other_options or {}), **run)
    assert a_res.engine == ref and b_res.engine == other
    assert set(a_res.recorded) == set(b_res.recorded) and set(a_res.outputs) == set(b_res.outputs)
    for kind, a, b in (("recorded", a_res.recorded, b_res.recorded), ("outputs", a_res.outputs, b_res.outputs)):
        for key in sorted(a):
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (kind, key)
            if not np.array_equal(a[key], b[key]):
                idx = tuple(int(i) for i in np.argwhere(a[key] != b[key])[0])
                pytest.fail(f"{kind} {key} differs first at {list(idx)}: {ref} {a[key][idx]} vs {other} "
                            f"{b[key][idx]}")
    assert a_res.spike_counts == b_res.spike_counts
    assert a_res.synaptic_ops == b_res.synaptic_ops
    return a_res, b_res
