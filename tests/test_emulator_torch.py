"""The torch engine (CPU torch) equals the numba engine integer for integer: u, v, spikes, outputs, spike counts and
synaptic ops, on the Lava random-network suite's networks (same generator and seeds as tests/lava), on larger
networks with delays, Conv2d, every sign mode, negative and positive ``weight_exp``, u wrap-around and v saturation,
on the families' artifacts (an LSM reservoir with delays, the digits example compiled by ``compile_graph``) and
through ``neurodeploy run --engine torch --device cpu``. Also: its memory plan (batch chunks, gather blocks), the
named errors for what it does not run, and that the core does not import torch.

The numba engine is proven equal to Lava (tests/lava) and to the numpy engine (tests/test_emulator_kernel.py).
The same equality on a CUDA device is in tests/gpu/test_torch_cuda.py (run by scripts/gpu_check.sh).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.emulator import Program, simulate
from neurodeploy.emulator import torch_engine as te
from neurodeploy.errors import CapacityError, InputError, UnsupportedOpError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo
from neurodeploy.ir.ops import Astrocyte, Conv2d, PlasticDense

sys.path.insert(0, str(Path(__file__).parent / "lava"))
sys.path.insert(0, str(Path(__file__).parent))
from cli_runner import run_cli  # noqa: E402
from engines import RECORD, assert_engines_equal  # noqa: E402
from graphs import delayed_recurrent_net, int32_wrap_graph  # noqa: E402
from random_nets import make_group  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Q = QuantInfo(scale=1.0)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """One thread per engine: the CI machine is shared (equality across thread counts is tested below)."""
    monkeypatch.setenv("NEURODEPLOY_THREADS", "1")


def assert_same(graph_or_program, spikes, device: str = "cpu", **run) -> tuple:
    """Run numba and torch on one Program and compare everything a SimResult holds, element for element."""
    return assert_engines_equal(graph_or_program, spikes, "numba", "torch", {"device": device}, **run)


# ------------------------------------------------------------------------------------------- random networks
def _lava_suite_groups() -> dict[str, dict]:
    """The groups of tests/lava/test_lava_equality.py (206 networks, same seeds), emulator == Lava there."""
    groups = {}
    for i in range(23):
        groups[f"g{i:02d}"] = dict(seeds=list(range(1000 * (i + 1), 1000 * (i + 1) + 8)), steps=(24, 32, 40)[i % 3],
                                   batch=2 if i % 8 == 3 else 1, n_inputs=1 + i % 2)
    for i in range(2):
        groups[f"long{i}"] = dict(seeds=list(range(50000 + 100 * i, 50000 + 100 * i + 5)), steps=70, batch=1,
                                  n_inputs=1, max_delay=62)
    for i in range(2):
        groups[f"stress{i}"] = dict(seeds=list(range(90000 + 100 * i, 90000 + 100 * i + 6)), steps=30,
                                    batch=1 + i, n_inputs=2, stress=True)
    return groups


def _own_groups() -> dict[str, dict]:
    """Seeds of neither suite: larger batches, delays to 62 delivered within the run, more stress cases."""
    groups = {}
    for i in range(6):
        groups[f"b{i}"] = dict(seeds=list(range(400000 + 100 * i, 400000 + 100 * i + 8)), steps=(26, 35)[i % 2],
                               batch=3 + i % 3, n_inputs=1 + i % 3)
    for i in range(2):
        groups[f"long{i}"] = dict(seeds=list(range(460000 + 100 * i, 460000 + 100 * i + 6)), steps=75, batch=3,
                                  n_inputs=2, max_delay=62)
    for i in range(3):
        groups[f"stress{i}"] = dict(seeds=list(range(480000 + 100 * i, 480000 + 100 * i + 6)), steps=30,
                                    batch=2 + i, n_inputs=2, stress=True)
    return groups


LAVA_GROUPS = _lava_suite_groups()
OWN_GROUPS = _own_groups()


@pytest.mark.parametrize("name", list(LAVA_GROUPS))
def test_torch_equals_numba_on_the_lava_suite(name):
    group = make_group(**LAVA_GROUPS[name])
    ref, _ = assert_same(group.graph, group.spikes)
    assert sum(ref.spike_counts.values()) > 0


@pytest.mark.parametrize("name", list(OWN_GROUPS))
def test_torch_equals_numba_on_more_random_networks(name):
    spec = OWN_GROUPS[name]
    ref, _ = assert_same(make_group(**spec).graph, make_group(**spec).spikes)
    if spec.get("stress"):  # the cases exist: |u| past 2**23 (Lava's conditional wrap), v saturated
        u = np.concatenate([ref.recorded[k].ravel() for k in ref.recorded if k.endswith("/u")])
        v = np.concatenate([ref.recorded[k].ravel() for k in ref.recorded if k.endswith("/v")])
        assert np.abs(u).max() > 2**22 and v.min() == -(2**23 - 1)


def test_the_groups_cover_the_features():
    features: set[str] = set()
    for spec in [*LAVA_GROUPS.values(), *OWN_GROUPS.values()]:
        features |= make_group(**spec).features
    required = {"dense", "sparse", "dense+delays", "sparse+delays", "recurrent", "feedback", "skip connection",
                "sign_mode=None", "sign_mode=mixed", "sign_mode=excitatory", "sign_mode=inhibitory",
                "num_weight_bits<8", "weight_exp<0", "weight_exp>0", "weight_exp=0", "bias_exp>0",
                "per-neuron bias_exp", "several inputs into one neuron", "weights outside the sign range", "du=0",
                "du=4095", "delay=62"}
    assert required <= features, sorted(required - features)


@pytest.mark.parametrize("name", ["g03", "long0", "stress1"])
def test_small_gather_blocks_and_group_slices_give_the_same_integers(monkeypatch, name):
    """Blocks of a few entries and slices of a few (pair, bucket) groups: every split path of the gather, including
    the negative-exponent read-back of sums touched in several blocks."""
    monkeypatch.setattr(te, "EVENT_BLOCK_MIN", 1)
    monkeypatch.setattr(te, "EVENT_BLOCK_MAX", 7)
    monkeypatch.setattr(te, "GROUP_BLOCK_MIN", 1)
    monkeypatch.setattr(te, "GROUP_BLOCK_MAX", 5)
    group = make_group(**LAVA_GROUPS[name])
    program = Program(group.graph)
    got = te.plan(te.prepare(program, torch.device("cpu")), 2, 10, {}, usable=10**9)
    assert (got.event_block, got.group_block) == (7, 5)
    assert_same(program, group.spikes)


# ------------------------------------------------------------------------------------------ larger networks
@pytest.mark.parametrize("weight_exp", [-3, 0, 2])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_larger_networks_with_delays(weight_exp, reset):
    """Dense 200 -> 120, a sparse recurrent matrix with delays 0-9, a second sparse layer, batch 3."""
    g, x = delayed_recurrent_net(weight_exp, reset)
    ref, _ = assert_same(g, x)
    assert ref.spike_counts["a"] > 0 and ref.spike_counts["b"] > 0


def test_conv2d_dense_delays_sign_modes_and_two_targets_of_one_source():
    rng = np.random.default_rng(5)
    g = Graph({"img": Input(shape=(2, 6, 6)),
               "conv": Conv2d(weight=rng.integers(-120, 120, (3, 2, 3, 3)), stride=(1, 1), padding=(1, 1),
                              weight_exp=1, num_weight_bits=8, sign_mode="mixed", quant=Q),
               "c": CubaLIF(shape=(3, 6, 6), du=1500, dv=300, vth=600, bias=4, bias_exp=3, quant=Q),
               "fc": Dense(weight=rng.integers(-60, 200, (25, 108)), delays=rng.integers(0, 12, (25, 108)),
                           weight_exp=-1, quant=Q),
               "inh": Dense(weight=-rng.integers(0, 30, (25, 108)), weight_exp=1, sign_mode="inhibitory", quant=Q),
               "n": CubaLIF(shape=(25,), du=100, dv=2000, vth=300, quant=Q),
               "m": CubaLIF(shape=(10,), du=0, dv=4095, vth=50, bias=-7, bias_exp=3, quant=Q),
               "nm": Dense(weight=rng.integers(-255, 256, (10, 25)), delays=rng.integers(0, 3, (10, 25)),
                           sign_mode="excitatory", quant=Q),
               "im": Dense(weight=rng.integers(0, 100, (10, 25)), num_weight_bits=3, quant=Q),
               "out": Output(), "out2": Output()},
              [("img", "conv"), ("conv", "c"), ("c", "fc"), ("c", "inh"), ("fc", "n"), ("inh", "n"), ("n", "nm"),
               ("nm", "m"), ("n", "im"), ("im", "m"), ("n", "out"), ("m", "out2")])
    x = (rng.random((4, 40, 2, 6, 6)) < 0.3).astype(np.uint8)
    ref, _ = assert_same(g, x)
    assert ref.spike_counts["c"] > 0 and ref.spike_counts["n"] > 0 and ref.spike_counts["m"] > 0


def test_neuron_without_inputs_and_the_int32_wrap_of_a_in():
    g, x = int32_wrap_graph()
    ref, got = assert_same(g, x)
    assert got.recorded["n/u"][0, 1, 0] == -(2**30) + 2**24  # see int32_wrap_graph


def test_lif_step_matches_the_arithmetic_module_on_corner_values():
    """lif_step against arithmetic.lif_step (the numpy engine's Lava rule) on u, v, a_in at the int32 / 24-bit
    edges, for both resets."""
    from neurodeploy.ir import arithmetic as ar

    edges = np.array([0, 1, -1, 2**23 - 1, 2**23, -(2**23), 2**23 + 1, 2**31 - 1, -(2**31), 2**30, -(2**30)])
    u, v, a = (g.ravel() for g in np.meshgrid(edges, edges, np.concatenate([edges, [2**40, -(2**40) - 3]])))
    u, v = u.astype(np.int32), np.clip(v, -(2**23 - 1), 2**23 - 1).astype(np.int32)
    for reset in ("zero", "subtract"):
        for du, dv, vth, bias in ((0, 0, 0, 0), (4095, 4095, 131071, -5), (1234, 77, 1000, 2**20)):
            ru, rv, rs = ar.lif_step(u.copy(), v.copy(), a.copy(), du, dv, np.int32(bias), vth, reset)
            prep = te.Prepared(None, u.size, [], [], [], *(torch.tensor(x) for x in (
                np.full(u.size, ar.DECAY_UNITY - (du + 1)), np.full(u.size, ar.DECAY_UNITY - dv),
                np.full(u.size, bias), np.full(u.size, int(ar.wrap_int32(np.int64(vth) << ar.VTH_SHIFT))),
                np.full(u.size, reset != "zero"))), {}, 0, {}, [])
            tu, tv, ts = te.lif_step(torch.tensor(u, dtype=torch.int64), torch.tensor(v, dtype=torch.int64),
                                     torch.tensor(a), prep)
            np.testing.assert_array_equal(tu.numpy(), ru)
            np.testing.assert_array_equal(tv.numpy(), rv)
            np.testing.assert_array_equal(ts.numpy(), rs)


def test_program_reuse_batch_sizes_threads_and_an_output_reading_an_input(monkeypatch):
    rng = np.random.default_rng(9)
    g = Graph({"in": Input(shape=(2, 5)),
               "fc": Dense(weight=rng.integers(-50, 200, (8, 10)), weight_exp=-2, quant=Q),
               "n": CubaLIF(shape=(8,), du=1000, dv=1000, vth=10, quant=Q),
               "out": Output(), "raw": Output()},
              [("in", "fc"), ("fc", "n"), ("n", "out"), ("in", "raw")])
    program = Program(g)
    threads = torch.get_num_threads()
    for batch, n_threads in ((1, "1"), (5, "2"), (2, "1")):
        monkeypatch.setenv("NEURODEPLOY_THREADS", n_threads)
        x = (rng.random((batch, 20, 2, 5)) < 0.4).astype(np.uint8)
        _, got = assert_same(program, x, nodes=["n"])
        np.testing.assert_array_equal(got.outputs["raw"], x)
        assert got.batch == batch and torch.get_num_threads() == threads  # torch's thread count is restored


# ------------------------------------------------------------------------------------------ family artifacts
def test_lsm_reservoir_with_delays_compiled_for_loihi2():
    from neurodeploy.compiler import compile_graph
    from neurodeploy.families.lsm import connectivity, encoding, model

    spec = connectivity.ReservoirSpec(grid=(5, 5, 5), lam=3.0, weights={"EE": 0.1, "EI": 0.2, "IE": 0.2, "II": 0.2})
    lsm = model.build(spec, model.InputSpec(p=0.2, weight=0.05))
    assert lsm.conn.delay.max() > 0
    x = encoding.encode(np.random.default_rng(0).integers(0, 17, (5, 64)), steps=40)
    art = compile_graph(lsm.graph(), "loihi2", calibration=x)
    delayed = [n for n, op in art.graph.nodes.items() if getattr(op, "delays", None) is not None]
    assert delayed
    ref, _ = assert_same(art.graph, x)
    assert ref.spike_counts["reservoir"] > 0


def test_large_reservoir_generator_lowered_with_maxabs():
    """The scale benchmark's network (families/lsm/scale.py) at 3000 neurons, batch 3."""
    from neurodeploy.families.lsm.scale import large_reservoir, lower_maxabs

    lsm = large_reservoir(3000, degree=50, seed=1)
    q = lower_maxabs(lsm.graph(), "loihi2")
    x = (np.random.default_rng(2).random((3, 30, 100)) < 0.1).astype(np.uint8)
    ref, _ = assert_same(q, x)
    assert ref.spike_counts["reservoir"] > 0 and sum(ref.synaptic_ops.values()) > 10_000


@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory):
    from neurodeploy.compiler import compile_graph, write_artifact
    from neurodeploy.model_loading import load_model

    graph = load_model(str(ROOT / "examples/digits/digits_snn.nir"), dt=1e-3)
    art = compile_graph(graph, target="emulator")
    path = tmp_path_factory.mktemp("digits") / "art"
    write_artifact(art, path)
    return art, path


def _digits_stimulus(n: int) -> np.ndarray:
    return np.load(ROOT / "examples/digits/digits_test.npz")["spikes"][:n].astype(np.uint8)


def test_digits_example_compiled_by_compile_graph(digits_artifact):
    art, _ = digits_artifact
    ref, _ = assert_same(art.graph, _digits_stimulus(24))
    assert sum(ref.spike_counts.values()) > 0


def test_cli_run_engine_torch_device_cpu_equals_engine_numba(capsys, tmp_path, digits_artifact):
    _, path = digits_artifact
    stim = tmp_path / "in.npz"
    np.savez(stim, spikes=_digits_stimulus(6))
    outs = {}
    for engine, extra in (("numba", ()), ("torch", ("--device", "cpu")), ("auto", ("--device", "cpu"))):
        out = tmp_path / f"{engine}.npz"
        code, stdout, stderr = run_cli(capsys, "run", path, "--input", stim, "--output", out, "--record", "u,v,spikes",
                                       "--engine", engine, *extra)
        assert code == 0, stderr
        with np.load(out) as data:
            outs[engine] = {k: data[k] for k in data.files}
    assert len(outs["numba"]) > 3 and any(k.endswith("/u") for k in outs["numba"])
    for engine in ("torch", "auto"):
        assert outs[engine].keys() == outs["numba"].keys()
        for key, value in outs["numba"].items():
            assert outs[engine][key].dtype == value.dtype
            np.testing.assert_array_equal(outs[engine][key], value, err_msg=f"{engine} {key}")
    code, _, stderr = run_cli(capsys, "run", path, "--input", stim, "--output", tmp_path / "x.npz", "--backend",
                              "lava", "--device", "cpu")
    assert code == 2 and "--engine and --device choose the emulator's engine" in stderr


# ------------------------------------------------------------------------------------------ engine choice, errors
def _one_neuron(**syn) -> Graph:
    return Graph({"in": Input(shape=(2,)), "syn": Dense(weight=np.array([[3, 5]]), quant=Q, **syn),
                  "n": CubaLIF(shape=(1,), du=10, dv=10, vth=4, quant=Q), "out": Output()},
                 [("in", "syn"), ("syn", "n"), ("n", "out")])


X = np.ones((1, 5, 2), np.uint8)


def test_auto_takes_torch_only_when_a_device_is_asked_for():
    program = Program(_one_neuron())
    assert program.pick_engine() == ("numba", "")
    assert program.pick_engine("auto", "cpu") == ("torch", "")
    assert program.pick_engine("torch") == ("torch", "")
    assert simulate(_one_neuron(), X, device="cpu").engine == "torch"
    with pytest.raises(InputError, match="applies to the torch engine"):
        program.pick_engine("numba", "cpu")
    with pytest.raises(InputError, match="not a torch device"):
        simulate(_one_neuron(), X, engine="torch", device="gpu0")
    with pytest.raises(InputError, match="runs on cpu or cuda"):
        simulate(_one_neuron(), X, engine="torch", device="meta")


def test_cuda_without_a_cuda_device_is_a_named_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UnsupportedOpError, match="torch sees no CUDA device"):
        simulate(_one_neuron(), X, engine="torch", device="cuda")


def _plastic() -> Graph:
    return Graph({"pre": Input(shape=(1,)),
                  "syn": PlasticDense(weight=np.array([[10]]), dw="2^-2*x1*y0", x1_impulse=40, x1_tau=0,
                                      y1_impulse=60, y1_tau=0, t_epoch=2, sign_mode="mixed", quant=Q),
                  "post": CubaLIF(shape=(1,), du=4095, dv=4095, vth=50, quant=Q), "out": Output()},
                 [("pre", "syn"), ("syn", "post"), ("post", "out")])


def _astrocyte() -> Graph:
    from neurodeploy.emulator.astrocyte import astrocyte_table

    table = astrocyte_table(gain=1.0, target=1.0, log_m_max=1.0, y2_unit=16, sigma_bits=2, sigma_max=2.0)
    astro = Astrocyte(excitatory=np.array([True, True, False]), drive="in", g_rec=2, g_drive=1, frac_bits=4, shift=1,
                      sigma_bits=2, target=1.0, table=table)
    return Graph({"in": Input(shape=(2,)), "syn": Dense(weight=np.full((3, 2), 100), quant=Q),
                  "n": CubaLIF(shape=(3,), du=10, dv=10, vth=4, quant=Q), "astro": astro, "out": Output()},
                 [("in", "syn"), ("syn", "n"), ("n", "astro"), ("n", "out")])


@pytest.mark.parametrize("graph, arithmetic, stimulus, message", [
    (lambda: _one_neuron(num_message_bits=8), "auto", X, "graded synapses"),
    (_plastic, "auto", np.ones((1, 5, 1), np.uint8), "PlasticDense"),
    (_astrocyte, "auto", X, "Astrocyte controllers"),
    (lambda: Graph({"in": Input(shape=(1,)), "syn": Dense(weight=np.ones((1, 1))), "n": CubaLIF(shape=(1,), du=0.1,
                                                                                                   dv=0.1, vth=1.0),
                    "out": Output()}, [("in", "syn"), ("syn", "n"), ("n", "out")]), "float", np.ones((1, 3, 1)),
     "float mode"),
])
def test_what_it_does_not_run_is_a_named_error(graph, arithmetic, stimulus, message):
    program = Program(graph(), arithmetic)
    for engine, device in (("torch", None), ("auto", "cpu")):
        with pytest.raises(UnsupportedOpError, match=message):
            program.run(stimulus, engine=engine, device=device)
    assert program.run(stimulus).engine in ("numba", "numpy")  # the other engines still run it


def test_without_torch_engine_torch_is_a_named_error(monkeypatch):
    monkeypatch.setitem(te._TORCH, "problem", "torch is not importable (No module named 'torch')")
    with pytest.raises(UnsupportedOpError, match="torch is not importable"):
        simulate(_one_neuron(), X, engine="torch")
    assert simulate(_one_neuron(), X).engine == "numba"


def test_the_core_does_not_import_torch():
    code = ("import sys, neurodeploy.emulator, neurodeploy.emulator.torch_engine, neurodeploy.cli; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------------------ memory plan, progress
def test_memory_bound_chunks_the_batch_with_the_same_integers(monkeypatch):
    group = make_group(**OWN_GROUPS["b2"])
    program = Program(group.graph)
    prep = te.prepare(program, torch.device("cpu"))
    batch, steps = next(iter(group.spikes.values())).shape[:2]
    sample = te.per_sample_bytes(prep, steps, {"u": 5, "v": 5, "spikes": 5})
    whole = te.plan(prep, batch, steps, {"u": 5, "v": 5, "spikes": 5}, usable=10**9)
    assert whole.chunk == batch and whole.per_sample_bytes == sample
    tight = te.plan(prep, batch, steps, {"u": 5, "v": 5, "spikes": 5}, usable=whole.work_bytes + 2 * sample)
    assert tight.chunk == 2
    # a bound of 2 samples through the environment: the run goes in chunks and gives the same integers
    rec_width = {f: sum(p.size for p in program.neurons.values()) for f in ("u", "v", "spikes")}
    need = te.plan(prep, batch, steps, rec_width, usable=10**9)
    monkeypatch.setenv(te.MEMORY_ENV, str((need.work_bytes + 2 * need.per_sample_bytes + 1) / 1e9))
    assert te.plan(prep, batch, steps, rec_width).chunk == 2 < batch
    assert_same(program, group.spikes)
    monkeypatch.setenv(te.MEMORY_ENV, str(need.work_bytes / 2 / 1e9))
    with pytest.raises(CapacityError, match="one sample needs"):
        program.run(group.spikes, engine="torch")
    monkeypatch.setenv(te.MEMORY_ENV, "lots")
    with pytest.raises(InputError, match=te.MEMORY_ENV):
        program.run(group.spikes, engine="torch")


def test_cpu_memory_is_what_the_host_has_available_or_the_configured_bound(monkeypatch):
    monkeypatch.delenv(te.MEMORY_ENV, raising=False)
    assert te._host_available() > 0
    monkeypatch.setattr(te, "_host_available", lambda: 10**10)
    assert te.usable_memory(torch.device("cpu")) == int(10**10 * te.MEMORY_FRACTION)
    monkeypatch.setenv(te.MEMORY_ENV, "0.5")
    assert te.usable_memory(torch.device("cpu")) == 5 * 10**8
    monkeypatch.setenv(te.MEMORY_ENV, "100")  # a bound above what is available does not raise it
    assert te.usable_memory(torch.device("cpu")) == int(10**10 * te.MEMORY_FRACTION)


def test_progress_bar_over_chunks_gives_the_same_integers(monkeypatch, capsys):
    group = make_group(**OWN_GROUPS["long0"])
    program = Program(group.graph)
    ref = program.run(group.spikes, record=RECORD, engine="numba")
    monkeypatch.setattr(te, "RECORD_STEPS", 4)  # recordings copied in blocks of 4 steps
    rec_width = {f: sum(p.size for p in program.neurons.values()) for f in ("u", "v", "spikes")}
    need = te.plan(te.prepare(program, torch.device("cpu")), 3, 75, rec_width, usable=10**9)
    monkeypatch.setenv(te.MEMORY_ENV, str((need.work_bytes + need.per_sample_bytes + 1) / 1e9))  # 1 sample a chunk
    got = program.run(group.spikes, record=RECORD, engine="torch", progress=True)
    err = capsys.readouterr().err
    assert "emulating (torch cpu)" in err and "225/225" in err  # 3 chunks x 75 steps
    for key in ref.recorded:
        np.testing.assert_array_equal(ref.recorded[key], got.recorded[key], err_msg=key)
