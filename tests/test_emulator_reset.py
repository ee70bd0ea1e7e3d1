"""The periodic state reset (Lava 0.10 ``LIFReset``) in every emulator engine.

A neuron population whose runner has ``reset_interval > 0`` sets ``u = v = 0`` at the Lava steps ``t`` (first step
``t = 1``) with ``t % reset_interval == reset_offset % reset_interval``, *before* that step's update; input arrival,
decay, bias, spike and reset-to-zero follow as usual (``PyLifResetModelBitAcc.run_spk``). Float mode resets at
the same steps. The engines read the two integers from the runner (``_NeuronRunner.reset_interval`` /
``reset_offset``), taken from the neuron-model table's compartment of the :class:`LIFReset` op.

* the numpy engine against a hand transcription of Lava's ``run_spk`` (integer and float) on a few neurons;
* numba == numpy == torch (CPU; integer mode only) on random networks with delays and recurrence, for several
  intervals and offsets (offsets 0, inside and past the interval), integer and float;
* interval 0 is today's CubaLIF, bit for bit.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.emulator import Program, simulate
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, LIFReset, Output, QuantInfo, Sparse

sys.path.insert(0, str(Path(__file__).parent))
from engines import RECORD, assert_engines_equal  # noqa: E402

Q = QuantInfo(scale=1.0)


def _cell(interval: int, offset: int, **fields) -> CubaLIF:
    """A :class:`LIFReset` with the schedule, or the plain CubaLIF for interval 0 (no periodic reset)."""
    if interval == 0:
        return CubaLIF(**fields)
    return LIFReset(**fields, reset_interval=interval, reset_offset=offset)


def _with_reset(graph: Graph, schedule: dict[str, tuple[int, int]]) -> Graph:
    """``graph`` with the CubaLIF nodes named in ``schedule`` given that periodic reset (:func:`_cell`)."""
    nodes = {}
    for name, op in graph.nodes.items():
        if name in schedule:
            fields = {f.name: getattr(op, f.name) for f in dataclasses.fields(op) if f.init}
            op = _cell(*schedule[name], **fields)
        nodes[name] = op
    return Graph(nodes, list(graph.edges))


# ------------------------------------------------------------------------------ Lava's run_spk, transcribed
def _lava_int(a_in, du, dv, vth, bias_mant, bias_exp, interval, offset):
    """``PyLifResetModelBitAcc.run_spk`` (interval 0: ``PyLifModelBitAcc``) over ``a_in`` ``[T, n]``; u, v, s."""
    n = a_in.shape[1]
    u = np.zeros(n, np.int32)
    v = np.zeros(n, np.int32)
    max_uv = 2**23
    bias = np.left_shift(np.asarray(bias_mant, np.int32), bias_exp)
    phase = offset % interval if interval else None
    us, vs, ss = [], [], []
    for t in range(1, a_in.shape[0] + 1):
        if interval and t % interval == phase:
            u *= 0
            v *= 0
        decayed = np.int64(u) * (4096 - (du + 1))
        decayed = np.int32(np.sign(decayed) * np.right_shift(np.abs(decayed), 12))
        decayed += np.left_shift(a_in[t - 1].astype(np.int32), 6)
        wrapped = np.where(decayed > max_uv, decayed - 2 * max_uv, decayed)
        wrapped = np.where(wrapped <= -max_uv, decayed + 2 * max_uv, wrapped)
        u[:] = wrapped
        decayed_v = np.int64(v) * (4096 - dv)
        decayed_v = np.int32(np.sign(decayed_v) * np.right_shift(np.abs(decayed_v), 12))
        v[:] = np.clip(decayed_v + u + bias, -max_uv + 1, max_uv - 1)
        s = v > (vth << 6)
        v[s] = 0
        us.append(u.copy())
        vs.append(v.copy())
        ss.append(s.astype(np.uint8))
    return np.array(us), np.array(vs), np.array(ss)


def _lava_float(a_in, du, dv, vth, bias, interval, offset):
    """``PyLifModelFloat`` with the same periodic reset over ``a_in`` ``[T, n]`` (float64); u, v, s."""
    n = a_in.shape[1]
    u = np.zeros(n)
    v = np.zeros(n)
    phase = offset % interval if interval else None
    us, vs, ss = [], [], []
    for t in range(1, a_in.shape[0] + 1):
        if interval and t % interval == phase:
            u = u * 0
            v = v * 0
        u = u * (1 - du) + a_in[t - 1]
        v = v * (1 - dv) + u + bias
        s = v > vth
        v = np.where(s, 0.0, v)
        us.append(u)
        vs.append(v)
        ss.append(s.astype(np.uint8))
    return np.array(us), np.array(vs), np.array(ss)


SCHEDULES = [(0, 0), (1, 0), (5, 0), (5, 3), (7, 9), (4, 7), (50, 2)]


@pytest.mark.parametrize("interval,offset", SCHEDULES)
def test_numpy_engine_equals_lava_run_spk_integer(interval, offset):
    rng = np.random.default_rng(interval * 100 + offset)
    n, steps = 5, 40
    w = 2 * rng.integers(-30, 60, (n, n))  # even: Lava's mixed 8-bit weights are unchanged
    bias = rng.integers(-20, 40, n)
    cell = _cell(interval, offset, shape=(n,), du=300, dv=150, vth=300, bias=bias, bias_exp=1, quant=Q)
    g = Graph({"in": Input(shape=(n,)), "fc": Dense(weight=w, sign_mode="mixed", quant=Q), "n": cell,
               "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")])
    x = (rng.random((1, steps, n)) < 0.5).astype(np.uint8)
    a_in = np.zeros((steps, n), np.int64)
    a_in[1:] = x[0, :-1] @ w.T  # stimulus column k reaches the neurons at step t = k + 2 (a_in row t - 1)
    u, v, s = _lava_int(a_in, 300, 150, 300, bias, 1, interval, offset)
    res = simulate(g, x, record=RECORD, engine="numpy")
    np.testing.assert_array_equal(res.recorded["n/u"][0], u)
    np.testing.assert_array_equal(res.recorded["n/v"][0], v)
    np.testing.assert_array_equal(res.recorded["n/spikes"][0], s)
    assert s.sum() > 0
    if interval:  # the schedule changed the trajectory
        ref_u, ref_v, _ = _lava_int(a_in, 300, 150, 300, bias, 1, 0, 0)
        assert not (np.array_equal(ref_u, u) and np.array_equal(ref_v, v))


@pytest.mark.parametrize("interval,offset", SCHEDULES)
def test_numpy_engine_equals_lava_run_spk_float(interval, offset):
    rng = np.random.default_rng(7 + interval * 100 + offset)
    n, steps = 4, 30
    w = rng.normal(0.0, 0.6, (n, n))
    bias = rng.normal(0.05, 0.05, n)
    cell = _cell(interval, offset, shape=(n,), du=0.2, dv=0.1, vth=1.0, bias=bias)
    g = Graph({"in": Input(shape=(n,)), "fc": Dense(weight=w), "n": cell, "out": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out")])
    x = (rng.random((1, steps, n)) < 0.5).astype(np.float64)
    a_in = np.zeros((steps, n))
    for t in range(2, steps + 1):  # scipy's CSR product: row sums over the active columns in increasing order
        for r in range(n):
            a_in[t - 1, r] = 0.0 + sum(w[r, j] for j in range(n) if x[0, t - 2, j])
    u, v, s = _lava_float(a_in, 0.2, 0.1, 1.0, bias, interval, offset)
    res = simulate(g, x, record=RECORD, engine="numpy", arithmetic="float")
    np.testing.assert_allclose(res.recorded["n/u"][0], u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.recorded["n/v"][0], v, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(res.recorded["n/spikes"][0], s)


# ----------------------------------------------------------------------------- every engine, random networks
def _random_net(seed: int, integer: bool) -> tuple[Graph, np.ndarray]:
    """in (40) -> dense -> a (60, recurrent sparse with delays 0-6) -> sparse -> b (20) -> out; quantized or
    float, with its stimulus (batch 3, 50 steps)."""
    rng = np.random.default_rng(seed)
    q = Q if integer else None

    def weights(shape, density, lo, hi, scale):
        w = rng.integers(lo, hi, shape) * (rng.random(shape) < density)
        return w if integer else w * scale

    def cell(n, vth):
        if integer:
            return CubaLIF(shape=(n,), du=600, dv=250, vth=vth, bias=rng.integers(-5, 20, n), bias_exp=2, quant=q)
        return CubaLIF(shape=(n,), du=0.15, dv=0.06, vth=1.0, bias=rng.normal(0.02, 0.02, n))

    rec = weights((60, 60), 0.06, -120, 120, 0.01)
    row, col = np.nonzero(rec)
    exp = -2 if integer else 0
    nodes = {"in": Input(shape=(40,)),
             "fc": Dense(weight=weights((60, 40), 0.5, -60, 200, 0.01), weight_exp=2 if integer else 0, quant=q),
             "a": cell(60, 120),
             "rec": Sparse(out_shape=(60,), in_size=60, row=row, col=col, value=rec[row, col],
                           delays=rng.integers(0, 7, row.size), weight_exp=exp, quant=q),
             "fc2": Dense(weight=weights((20, 60), 0.3, -40, 160, 0.02), quant=q),
             "b": cell(20, 40),
             "out": Output()}
    edges = [("in", "fc"), ("fc", "a"), ("a", "rec"), ("rec", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "out")]
    x = (rng.random((3, 50, 40)) < 0.15).astype(np.uint8)
    return Graph(nodes, edges), x if integer else x.astype(np.float64)


ENGINE_SCHEDULES = [{"a": (3, 0), "b": (0, 0)}, {"a": (5, 2), "b": (7, 13)}, {"a": (1, 0), "b": (4, 7)},
                    {"a": (11, 11), "b": (2, 1)}]


@pytest.mark.parametrize("integer", [True, False], ids=["int", "float"])
@pytest.mark.parametrize("k", range(len(ENGINE_SCHEDULES)))
def test_numba_equals_numpy_with_resets(integer, k):
    graph, x = _random_net(100 + k, integer)
    g = _with_reset(graph, ENGINE_SCHEDULES[k])
    program = Program(g, "int" if integer else "float")
    a, _ = assert_engines_equal(program, x, "numpy", "numba")
    base = Program(graph, "int" if integer else "float").run(x, record=RECORD, engine="numpy")
    assert not np.array_equal(a.recorded["a/v"], base.recorded["a/v"])  # the schedule changed the run
    assert a.spike_counts["a"] > 0 and a.spike_counts["b"] > 0


@pytest.mark.parametrize("k", range(len(ENGINE_SCHEDULES)))
def test_torch_equals_numpy_with_resets(k):
    pytest.importorskip("torch")
    graph, x = _random_net(100 + k, True)
    assert_engines_equal(_with_reset(graph, ENGINE_SCHEDULES[k]), x, "numpy", "torch", {"device": "cpu"})


@pytest.mark.parametrize("integer", [True, False], ids=["int", "float"])
def test_interval_zero_is_todays_cubalif(integer):
    graph, x = _random_net(7, integer)
    reset_g = _with_reset(graph, {"a": (0, 5), "b": (0, 0)})
    assert not any(isinstance(op, LIFReset) for op in reset_g.nodes.values())
    engines = ("numpy", "numba", "torch") if integer else ("numpy", "numba")
    for engine in engines:
        if engine == "torch":
            pytest.importorskip("torch")
        arithmetic = "int" if integer else "float"
        a = simulate(graph, x, record=RECORD, engine=engine, arithmetic=arithmetic)
        b = simulate(reset_g, x, record=RECORD, engine=engine, arithmetic=arithmetic)
        for key in a.recorded:
            np.testing.assert_array_equal(a.recorded[key], b.recorded[key], err_msg=f"{engine} {key}")


def test_runner_reads_the_schedule():
    graph, _ = _random_net(3, True)
    program = Program(_with_reset(graph, {"a": (6, 8)}))
    runner = program.neurons["a"]
    assert (runner.reset_interval, runner.reset_offset) == (6, 8)
    assert [t for t in range(1, 20) if runner.resets_at(t)] == [2, 8, 14]
    assert (program.neurons["b"].reset_interval, program.neurons["b"].reset_offset) == (0, 0)
    assert not any(program.neurons["b"].resets_at(t) for t in range(1, 20))
