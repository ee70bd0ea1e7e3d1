"""The compiled (numba) engine equals the numpy engine: u, v, spikes, outputs, spike counts and synaptic ops, element
for element, on seeded random quantized networks (the generator of the Lava suite, which needs no Lava) and on larger
networks that take the dense-column and sparse (CSC) paths with delays, negative and positive ``weight_exp``, int32
wrap-around, v saturation and batches. Also: which engine ``auto`` picks, and that it says so when it is not numba.

Equality of the default engine with Lava itself is proven in tests/lava (``auto`` resolves to numba there too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.emulator import Program, kernel, simulate
from neurodeploy.emulator import engine as engine_module
from neurodeploy.errors import InputError, UnsupportedOpError
from neurodeploy.ir import LI, CubaLIF, Dense, Graph, Input, Output, QuantInfo

sys.path.insert(0, str(Path(__file__).parent / "lava"))
from engines import RECORD, assert_engines_equal  # noqa: E402
from graphs import delayed_recurrent_net, int32_wrap_graph, random_sparse  # noqa: E402
from random_nets import make_group  # noqa: E402

Q = QuantInfo(scale=1.0)


def assert_same(graph: Graph, spikes, **run) -> tuple:
    """Run both engines on one Program and compare everything a SimResult holds."""
    return assert_engines_equal(graph, spikes, "numpy", "numba", **run)


def _random_groups() -> dict[str, dict]:
    groups = {}
    for i in range(36):  # 36 x 8 = 288 networks, none of them the Lava suite's seeds
        groups[f"r{i:02d}"] = dict(seeds=list(range(200000 + 100 * i, 200000 + 100 * i + 8)),
                                   steps=(24, 33, 41)[i % 3], batch=1 + i % 4, n_inputs=1 + i % 3)
    for i in range(3):  # delays up to 62 deliver within the run
        groups[f"long{i}"] = dict(seeds=list(range(260000 + 100 * i, 260000 + 100 * i + 6)), steps=75, batch=2,
                                  n_inputs=1 + i % 2, max_delay=62)
    for i in range(4):  # |u| past 2**23 (conditional wrap), v saturated, int32 wrap of a_in << 6
        groups[f"stress{i}"] = dict(seeds=list(range(280000 + 100 * i, 280000 + 100 * i + 6)), steps=30,
                                    batch=1 + i, n_inputs=2, stress=True)
    return groups


GROUPS = _random_groups()
#: kernel storage choices (module constants of kernel) a run can be forced into: every bucket as full columns with
#: int32 sums, full columns with int64 sums, every bucket sparse (CSC scatter), or the default mix
LAYOUTS = {"default": {}, "dense32": {"DENSE_FRACTION": 0.0}, "dense64": {"DENSE_FRACTION": 0.0, "INT32_SUMS": 0},
           "sparse": {"DENSE_FRACTION": np.inf}}


def _layout(monkeypatch, layout: str) -> None:
    for attr, value in LAYOUTS[layout].items():
        monkeypatch.setattr(kernel, attr, value)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(GROUPS))
def test_numba_equals_numpy_on_random_networks(monkeypatch, name, layout):
    spec = GROUPS[name]
    group = make_group(**spec)
    _layout(monkeypatch, layout)
    ref, _ = assert_same(group.graph, group.spikes)
    if spec.get("stress"):
        u = np.concatenate([ref.recorded[k].ravel() for k in ref.recorded if k.endswith("/u")])
        v = np.concatenate([ref.recorded[k].ravel() for k in ref.recorded if k.endswith("/v")])
        assert np.abs(u).max() > 2**22 and v.min() == -(2**23 - 1)


def test_random_groups_cover_the_features():
    features: set[str] = set()
    for spec in GROUPS.values():
        features |= make_group(**spec).features
    required = {"dense", "sparse", "dense+delays", "sparse+delays", "recurrent", "feedback", "skip connection",
                "sign_mode=None", "sign_mode=mixed", "sign_mode=excitatory", "sign_mode=inhibitory",
                "num_weight_bits<8", "weight_exp<0", "weight_exp>0", "weight_exp=0", "bias_exp>0",
                "per-neuron bias_exp", "several inputs into one neuron", "weights outside the sign range", "du=0",
                "du=4095", "delay=62"}
    assert required <= features, sorted(required - features)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("weight_exp", [-3, 0, 2])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_larger_networks_dense_and_sparse_paths(monkeypatch, weight_exp, reset, layout):
    """Dense 200 -> 120, a sparse recurrent matrix with delays 0-9, a second sparse layer; both engines agree."""
    _layout(monkeypatch, layout)
    g, x = delayed_recurrent_net(weight_exp, reset)
    ref, _ = assert_same(g, x)
    assert ref.spike_counts["a"] > 0 and ref.spike_counts["b"] > 0
    kinds = set(kernel.lower(Program(g)).bkt_kind.tolist())
    assert kinds == {"default": {0, 1}, "dense32": {1}, "dense64": {2}, "sparse": {0}}[layout]


def test_dense_delays_and_two_targets_of_one_source():
    rng = np.random.default_rng(5)
    g = Graph({"in": Input(shape=(40,)),
               "d1": Dense(weight=rng.integers(0, 200, (25, 40)), delays=rng.integers(0, 12, (25, 40)), weight_exp=-1,
                           quant=Q),
               "d2": Dense(weight=-rng.integers(0, 200, (25, 40)), weight_exp=1, sign_mode="inhibitory", quant=Q),
               "n": CubaLIF(shape=(25,), du=100, dv=2000, vth=300, quant=Q),
               "m": CubaLIF(shape=(10,), du=0, dv=4095, vth=50, bias=-7, bias_exp=3, quant=Q),
               "nm": Dense(weight=rng.integers(-255, 256, (10, 25)), delays=rng.integers(0, 3, (10, 25)), quant=Q),
               "im": Dense(weight=rng.integers(0, 100, (10, 40)), num_weight_bits=3, quant=Q),
               "out": Output(), "out2": Output()},
              [("in", "d1"), ("in", "d2"), ("d1", "n"), ("d2", "n"), ("n", "nm"), ("nm", "m"), ("in", "im"),
               ("im", "m"), ("n", "out"), ("m", "out2")])
    x = (rng.random((4, 50, 40)) < 0.3).astype(np.uint8)
    assert_same(g, x)


def test_neuron_without_inputs_and_hand_wrap_cases():
    g, x = int32_wrap_graph()
    ref, got = assert_same(g, x)
    assert ref.recorded["n/u"][0, 1, 0] == -(2**30) + 2**24  # see int32_wrap_graph


def test_program_reuse_batch_sizes_and_output_reading_an_input():
    rng = np.random.default_rng(9)
    g = Graph({"in": Input(shape=(2, 5)),
               "fc": Dense(weight=rng.integers(-50, 200, (8, 10)), weight_exp=-2, quant=Q),
               "n": CubaLIF(shape=(8,), du=1000, dv=1000, vth=10, quant=Q),
               "out": Output(), "raw": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out"), ("in", "raw")])
    program = Program(g)
    for batch in (1, 5, 2):
        x = (rng.random((batch, 20, 2, 5)) < 0.4).astype(np.uint8)
        ref = program.run(x, record=RECORD, engine="numpy", nodes=["n"])
        got = program.run(x, record=RECORD, engine="numba", nodes=["n"])
        for key in ref.recorded:
            np.testing.assert_array_equal(ref.recorded[key], got.recorded[key])
        np.testing.assert_array_equal(got.outputs["raw"], x)
        np.testing.assert_array_equal(ref.outputs["out"], got.outputs["out"])
        assert ref.synaptic_ops == got.synaptic_ops and got.batch == batch


def test_progress_runs_in_chunks_with_the_same_result(monkeypatch):
    group = make_group(list(range(300000, 300006)), steps=50, batch=2, n_inputs=2, max_delay=20)
    monkeypatch.setattr(kernel, "PROGRESS_CHUNK", 7)
    ref = Program(group.graph).run(group.spikes, record=RECORD, engine="numpy")
    got = Program(group.graph).run(group.spikes, record=RECORD, engine="numba", progress=True)
    for key in ref.recorded:
        np.testing.assert_array_equal(ref.recorded[key], got.recorded[key])


def test_numpy_event_and_dense_paths_equal_numba(monkeypatch):
    """The numpy engine's event-driven gather and its dense matmul (EVENT_FRACTION) both equal the kernel."""
    group = make_group(list(range(310000, 310008)), steps=40, batch=3, n_inputs=2)
    numba_run = simulate(group.graph, group.spikes, record=RECORD, engine="numba")
    for fraction in (0.0, 1.0):
        monkeypatch.setattr(engine_module, "EVENT_FRACTION", fraction)
        numpy_run = simulate(group.graph, group.spikes, record=RECORD, engine="numpy")
        for key in numpy_run.recorded:
            np.testing.assert_array_equal(numpy_run.recorded[key], numba_run.recorded[key], err_msg=key)


# ------------------------------------------------------------------------------------------------ engine choice
def _one_neuron(**syn) -> Graph:
    return Graph({"in": Input(shape=(2,)), "syn": Dense(weight=np.array([[3, 5]]), quant=Q, **syn),
                  "n": CubaLIF(shape=(1,), du=10, dv=10, vth=4, quant=Q), "out": Output()},
                 [("in", "syn"), ("syn", "n"), ("n", "out")])


X = np.ones((1, 5, 2), np.uint8)


def test_auto_runs_numba_in_integer_mode():
    res = simulate(_one_neuron(), X)
    assert (res.engine, res.engine_note) == ("numba", "")
    assert Program(_one_neuron()).pick_engine() == ("numba", "")


def test_auto_says_why_it_ran_numpy_and_numba_refuses():
    float_graph = Graph({"in": Input(shape=(1,)), "syn": Dense(weight=np.ones((1, 1))), "n": LI(shape=(1,)),
                         "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "out")])
    assert simulate(float_graph, np.ones((1, 3, 1))).engine == "numba"  # float, binary stimulus
    res = simulate(float_graph, np.full((1, 3, 1), 0.5))
    assert res.engine == "numpy" and "values other than 0 and 1" in res.engine_note
    with pytest.raises(UnsupportedOpError, match="values other than 0 and 1"):
        simulate(float_graph, np.full((1, 3, 1), 0.5), engine="numba")
    graded = _one_neuron(num_message_bits=8)
    res = simulate(graded, X)
    assert res.engine == "numpy" and "graded synapses" in res.engine_note and "syn" in res.engine_note
    with pytest.raises(UnsupportedOpError, match="graded"):
        simulate(graded, X, engine="numba")
    with pytest.raises(InputError, match="engine must be one of"):
        simulate(_one_neuron(), X, engine="cuda")


def test_without_numba_auto_runs_numpy_and_records_it(monkeypatch):
    monkeypatch.setitem(kernel._NUMBA, "problem", "numba is not importable (No module named 'numba')")
    res = simulate(_one_neuron(), X, record=RECORD)
    assert res.engine == "numpy" and res.engine_note.startswith("numba is not importable")
    with pytest.raises(UnsupportedOpError, match="install numba"):
        simulate(_one_neuron(), X, engine="numba")
    monkeypatch.undo()
    again = simulate(_one_neuron(), X, record=RECORD)
    assert again.engine == "numba"
    np.testing.assert_array_equal(res.recorded["n/v"], again.recorded["n/v"])


@pytest.mark.parametrize("arithmetic", ["int", "float"])
def test_sample_groups_in_threads_give_the_single_thread_result(monkeypatch, arithmetic):
    """The kernel runs contiguous groups of samples in threads; results (and summed spike counts) do not depend on
    how many."""
    rng = np.random.default_rng(4)
    if arithmetic == "int":
        g = Graph({"in": Input(shape=(30,)), "fc": random_sparse(rng, 25, 30, 0.3, -60, 200, max_delay=4),
                   "n": CubaLIF(shape=(25,), du=500, dv=200, vth=80, quant=Q), "out": Output()},
                  [("in", "fc"), ("fc", "n"), ("n", "out")])
    else:
        g = Graph({"in": Input(shape=(30,)), "fc": Dense(weight=rng.normal(0, 0.5, (25, 30))),
                   "n": CubaLIF(shape=(25,), du=0.2, dv=0.1, vth=1.0), "out": Output()},
                  [("in", "fc"), ("fc", "n"), ("n", "out")])
    x = (rng.random((5, 40, 30)) < 0.2).astype(np.uint8)
    program = Program(g, arithmetic)
    monkeypatch.setenv("NEURODEPLOY_THREADS", "1")
    assert kernel.sample_groups(5) == [(0, 5)]
    one = program.run(x, record=RECORD, engine="numba")
    monkeypatch.setenv("NEURODEPLOY_THREADS", "3")
    assert kernel.sample_groups(5) == [(0, 2), (2, 3), (3, 5)]
    three = program.run(x, record=RECORD, engine="numba")
    for key in one.recorded:
        np.testing.assert_array_equal(one.recorded[key], three.recorded[key], err_msg=key)
    assert one.spike_counts == three.spike_counts and one.spike_counts["n"] > 0
    monkeypatch.setenv("NEURODEPLOY_THREADS", "zero")
    with pytest.raises(InputError, match="NEURODEPLOY_THREADS"):
        program.run(x, engine="numba")
