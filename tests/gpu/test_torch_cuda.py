"""The torch engine on a CUDA device equals the numba engine integer for integer (issue 18 item 3).

The same networks as tests/test_emulator_torch.py (the Lava suite's 206 random networks and more, larger networks
with delays, Conv2d, sign modes, both resets and weight exponent signs, the int32 wrap of a_in, the LSM artifacts,
the digits example, ``neurodeploy run --engine torch --device cuda``), plus the memory plan on the GPU and a 100k
neuron reservoir at batch 8. Not collected by ``make test`` (CI has no GPU): run by scripts/gpu_check.sh, which
refuses to start without CUDA, so nothing here is skipped when it runs. ``NEURODEPLOY_GPU_TEST_DEVICE=cpu`` runs
the same file on CPU torch (a dry run of the file itself; numba keeps every core here).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_emulator_torch as base  # noqa: E402  (a module attribute: its tests are not collected again here)

from neurodeploy.emulator import Program  # noqa: E402
from neurodeploy.emulator import torch_engine as te  # noqa: E402
from neurodeploy.errors import InputError  # noqa: E402

CUDA = os.environ.get("NEURODEPLOY_GPU_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(CUDA.startswith("cuda") and not torch.cuda.is_available(),
                                reason="needs a CUDA device (scripts/gpu_check.sh)")


@pytest.mark.parametrize("name", list(base.LAVA_GROUPS))
def test_cuda_equals_numba_on_the_lava_suite(name):
    group = base.make_group(**base.LAVA_GROUPS[name])
    base.assert_same(group.graph, group.spikes, device=CUDA)


@pytest.mark.parametrize("name", list(base.OWN_GROUPS))
def test_cuda_equals_numba_on_more_random_networks(name):
    group = base.make_group(**base.OWN_GROUPS[name])
    base.assert_same(group.graph, group.spikes, device=CUDA)


@pytest.mark.parametrize("name", ["g03", "long0", "stress1"])
def test_cuda_small_blocks_and_slices(monkeypatch, name):
    """Every split path of the gather on the GPU, where index_add_ is atomic and index_copy_ meets repeated
    positions in any order."""
    monkeypatch.setattr(te, "EVENT_BLOCK_MIN", 1)
    monkeypatch.setattr(te, "EVENT_BLOCK_MAX", 7)
    monkeypatch.setattr(te, "GROUP_BLOCK_MIN", 1)
    monkeypatch.setattr(te, "GROUP_BLOCK_MAX", 5)
    group = base.make_group(**base.LAVA_GROUPS[name])
    base.assert_same(group.graph, group.spikes, device=CUDA)


@pytest.mark.parametrize("weight_exp", [-3, 0, 2])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_cuda_larger_networks_with_delays(weight_exp, reset):
    rng = np.random.default_rng(abs(weight_exp) * 10 + (reset == "zero"))
    g = base.Graph({"in": base.Input(shape=(200,)),
                    "fc": base.Dense(weight=rng.integers(-120, 256, (120, 200)), weight_exp=weight_exp, quant=base.Q),
                    "a": base.CubaLIF(shape=(120,), du=700, dv=300, vth=int(40 * 2.0**weight_exp) + 5, bias=3,
                                      bias_exp=2, reset=reset, quant=base.Q),
                    "rec": base._sparse(rng, 120, 120, 0.04, -150, 120, max_delay=9, weight_exp=-weight_exp // 2),
                    "b": base.CubaLIF(shape=(30,), du=4095, dv=0, vth=60, reset=reset, quant=base.Q),
                    "fc2": base._sparse(rng, 30, 120, 0.15, -40, 200, weight_exp=weight_exp), "out": base.Output()},
                   [("in", "fc"), ("fc", "a"), ("a", "rec"), ("rec", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "out")])
    x = (rng.random((3, 60, 200)) < 0.08).astype(np.uint8)
    base.assert_same(g, x, device=CUDA)


def test_cuda_lif_corner_values_and_wrap_of_a_in():
    g = base.Graph({"in": base.Input(shape=(1,)),
                    "syn": base.Dense(weight=np.array([[255]]), weight_exp=24, quant=base.Q),
                    "n": base.CubaLIF(shape=(1,), du=4095, dv=0, vth=131071, quant=base.Q), "out": base.Output()},
                   [("in", "syn"), ("syn", "n"), ("n", "out")])
    _, got = base.assert_same(g, np.array([[[1], [1], [0], [1], [0]]], np.uint8), device=CUDA)
    assert got.recorded["n/u"][0, 1, 0] == -(2**30) + 2**24


def test_cuda_family_artifacts(digits_artifact):
    from neurodeploy.compiler import compile_graph
    from neurodeploy.families.lsm import connectivity, encoding, model

    spec = connectivity.ReservoirSpec(grid=(5, 5, 5), lam=3.0, weights={"EE": 0.1, "EI": 0.2, "IE": 0.2, "II": 0.2})
    lsm = model.build(spec, model.InputSpec(p=0.2, weight=0.05))
    x = encoding.encode(np.random.default_rng(0).integers(0, 17, (5, 64)), steps=40)
    base.assert_same(compile_graph(lsm.graph(), "loihi2", calibration=x).graph, x, device=CUDA)
    art, _ = digits_artifact
    base.assert_same(art.graph, base._digits_stimulus(64), device=CUDA)


digits_artifact = base.digits_artifact


def test_cuda_cli_run_equals_engine_numba(capsys, tmp_path, digits_artifact):
    _, path = digits_artifact
    stim = tmp_path / "in.npz"
    np.savez(stim, spikes=base._digits_stimulus(16))
    outs = {}
    for engine, extra in (("numba", ()), ("torch", ("--device", CUDA.split(":")[0]))):
        out = tmp_path / f"{engine}.npz"
        code, _, stderr = base.run_cli(capsys, "run", path, "--input", stim, "--output", out, "--record", "u,v,spikes",
                                       "--engine", engine, *extra)
        assert code == 0, stderr
        with np.load(out) as data:
            outs[engine] = {k: data[k] for k in data.files}
    assert outs["torch"].keys() == outs["numba"].keys()
    for key, value in outs["numba"].items():
        np.testing.assert_array_equal(outs["torch"][key], value, err_msg=key)


def test_cuda_memory_plan_reads_the_free_memory_and_chunks(monkeypatch):
    dev = te.resolve_device(CUDA)
    monkeypatch.delenv(te.MEMORY_ENV, raising=False)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        assert 0 < te.usable_memory(dev) <= (free + cached) * te.MEMORY_FRACTION + 1
        with pytest.raises(InputError, match="CUDA device"):
            te.resolve_device(f"cuda:{torch.cuda.device_count()}")
    group = base.make_group(**base.OWN_GROUPS["b2"])
    program = Program(group.graph)
    prep = te.prepare(program, dev)
    rec_width = {f: sum(p.size for p in program.neurons.values()) for f in ("u", "v", "spikes")}
    batch, steps = next(iter(group.spikes.values())).shape[:2]
    need = te.plan(prep, batch, steps, rec_width, usable=10**9)
    monkeypatch.setenv(te.MEMORY_ENV, str((need.work_bytes + 2 * need.per_sample_bytes + 1) / 1e9))
    assert te.plan(prep, batch, steps, rec_width).chunk == 2 < batch
    base.assert_same(program, group.spikes, device=CUDA)


def test_cuda_100k_reservoir_batch_8():
    """The scale benchmark's 100k-neuron / 10M-synapse reservoir (delays 0-17, weight_exp < 0), batch 8."""
    from neurodeploy.families.lsm.scale import large_reservoir, lower_maxabs

    q = lower_maxabs(large_reservoir(100_000, degree=100).graph(), "loihi2")
    x = (np.random.default_rng(3).random((8, 30, 100)) < 0.1).astype(np.uint8)
    program = Program(q)
    ref = program.run(x, engine="numba")
    got = program.run(x, engine="torch", device=CUDA)
    assert ref.spike_counts == got.spike_counts and ref.synaptic_ops == got.synaptic_ops
    for key in ref.outputs:
        np.testing.assert_array_equal(ref.outputs[key], got.outputs[key], err_msg=key)
    assert sum(ref.synaptic_ops.values()) > 10**7
