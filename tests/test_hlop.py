"""HLOP reference learner (issue 7, item 1): Oja subspace rule, orthogonal projection, CL metrics, a short run."""

from __future__ import annotations

import numpy as np
import pytest
from lava_env import lava_python_or_skip

from neurodeploy.families.hlop.learner import (
    HLOPConfig,
    Subspace,
    average_accuracy,
    backward_transfer,
    run_sequence,
    split_digits,
)

torch = pytest.importorskip("torch")
pytest.importorskip("snntorch")


def test_metrics_follow_gem_definitions():
    r = np.array([[1.0, 0.0, 0.0], [0.5, 0.9, 0.0], [0.4, 0.7, 0.8]])
    assert average_accuracy(r) == pytest.approx((0.4 + 0.7 + 0.8) / 3)
    assert backward_transfer(r) == pytest.approx(((0.4 - 1.0) + (0.7 - 0.9)) / 2)


def test_oja_subspace_learns_orthonormal_principal_subspace_and_projection_removes_it():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(20, 3, generator=g))[0].T          # 3 orthonormal directions in R^20
    x = torch.randn(400, 3, generator=g) * torch.tensor([3.0, 2.0, 1.5]) @ basis + 0.05 * torch.randn(400, 20,
                                                                                                    generator=g)
    sub = Subspace(20, seed=1)
    sub.add(3)
    sub.hebbian(x, eta=0.02, epochs=300, batch=400, seed=2)
    sub.consolidate()
    assert sub.orthonormality_error() < 0.05
    m = sub.m
    assert torch.linalg.matrix_norm(basis - basis @ m.T @ m) < 0.1      # span(M) = principal subspace
    grad = torch.randn(5, 20, generator=g)
    proj = sub.project(grad)
    assert torch.allclose(proj @ m.T, torch.zeros(5, 3), atol=1e-2)    # g' M^T ~ 0: old inputs see no change
    # an incremental neuron with old rows frozen learns the residual direction, orthogonal to the old ones
    sub.add(1)
    y = torch.randn(400, 1, generator=g) * 2.5 @ torch.linalg.qr(torch.randn(20, 1, generator=g))[0].T
    sub.hebbian(torch.cat([x, y]), eta=0.02, epochs=300, batch=800, seed=3)
    assert torch.allclose(sub.m[:3], m)
    assert float((sub.m[3:] @ m.T).abs().max()) < 0.1


# ----------------------------------------------------------------------- the README's run (seed 0, T = 10, 450 digits)
# examples/hlop_digits/run.py's defaults: HLOPConfig() for HLOP and HLOPConfig(method="finetune"), both on
# split_digits(0). The README prints accuracies in % and BWT / forgetting in points with one decimal; the pipeline is
# seeded and deterministic (torch on one thread), so the printed figures are asserted exactly at that precision.
def pct(x: float) -> float:
    return round(100 * float(x), 1)


@pytest.fixture(scope="module")
def data():
    return split_digits(0)


@pytest.fixture(scope="module")
def hlop_run(data):
    cfg = HLOPConfig()
    return cfg, run_sequence(cfg, data)


def test_readme_sequence_hlop_forgets_less_than_finetuning(data, hlop_run):
    base = run_sequence(HLOPConfig(method="finetune"), data)
    cfg, hlop = hlop_run
    assert cfg.epochs == 30 and cfg.hebb_epochs == 3000 and cfg.steps == 10 and len(data["y_test"]) == 450
    assert np.asarray(base["R"]).shape == (5, 5)
    assert (pct(base["ACC"]), pct(base["BWT"])) == (20.0, -99.7)        # README: fine-tuning (torch)
    assert (pct(hlop["ACC"]), pct(hlop["BWT"])) == (85.9, -8.3)         # README: HLOP (torch)
    assert hlop["BWT"] - base["BWT"] > 0.9                              # it forgets 91 points less
    assert hlop["subspace_sizes"] == [24, 64]                           # 4 consolidations, below 64 / 128


# ------------------------------------------------------------------ items 2-4: targets, on-chip learning, forgetting


def test_projection_helpers_and_stream():
    from neurodeploy.families.hlop.onchip import (
        captured_energy,
        orthonormal_complement_basis,
        stacked_basis,
        stream,
    )

    old = np.eye(6)[:2]                                                  # e0, e1
    new = np.array([[1.0, 0, 1, 0, 0, 0], [0, 0, 2, 0, 0, 0]])           # spans e0 + e2 and e2 -> adds e2 only
    b = orthonormal_complement_basis(new, old)
    assert b.shape == (1, 6) and np.allclose(np.abs(b), np.eye(6)[2])
    full = stacked_basis(old, b)
    assert np.allclose(full @ full.T, np.eye(3))
    assert captured_energy(full, np.array([[1.0, 1, 1, 0, 0, 0]])) == pytest.approx(1.0)
    assert captured_energy(full, np.array([[0.0, 0, 0, 1, 0, 0]])) == 0.0
    s = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) % 2
    x = stream(s, gap=2, passes=2, seed=0)
    assert x.shape == (1, 2 * 2 * 5, 4) and not x[0, 3:5].any()        # each digit: 3 steps, then 2 empty ones


def test_projected_update_leaves_old_subspace_outputs_unchanged(hlop_run):
    from neurodeploy.families.hlop.learner import build_net
    from neurodeploy.families.hlop.onchip import permuted_task, stacked_basis, train_projected

    cfg, out = hlop_run
    net = build_net(cfg)
    net.load_state_dict(out["net"].state_dict())
    bases = [stacked_basis(np.asarray(s, np.float64), None) for s in out["subspaces"]]
    w0 = [net[0].weight.detach().numpy().copy(), net[2].weight.detach().numpy().copy()]
    perm = permuted_task(out["data"], 1)
    train_projected(net, perm["x_train"][:64], perm["y_train"][:64], bases, HLOPConfig(epochs=1), 3)
    for lin, w, b in zip((net[0], net[2]), w0, bases):
        dw = lin.weight.detach().numpy() - w
        assert np.abs(dw).max() > 1e-3                                   # it learned
        assert np.abs(dw @ b.T).max() < 1e-4 * max(1.0, np.abs(dw).max())  # but not along the old subspaces


def test_deploy_to_three_targets(hlop_run):
    """README, "HLOP deployed": the integer emulator rows on every test digit; Lava and PyNN on the first digit of
    each task here (the README's run: every digit)."""
    from neurodeploy.families.hlop.deploy import deploy_targets

    lava_python_or_skip()
    cfg, out = hlop_run
    rep = deploy_targets(out["net"], out["data"], cfg, lava_per_task=1, pynn_per_task=1)
    assert set(rep["per_task"]) == {"loihi2_emulator", "spinnaker_emulator", "lava", "pynn_brian2"}
    assert rep["samples_per_task"]["loihi2_emulator"] == [91, 90, 91, 90, 88]
    per_task = rep["per_task"]["loihi2_emulator"]
    assert [pct(a) for a in per_task] == [89.0, 85.6, 91.2, 88.9, 72.7]  # README: loihi2 artifact, integer emulator
    assert pct(rep["ACC"]["loihi2_emulator"]) == 85.5
    assert rep["per_task"]["spinnaker_emulator"] == per_task             # README: the spinnaker artifact's row
    assert rep["lava"]["identical_to_emulator"] is True                 # loihi2 artifact: Lava == emulator
    assert rep["samples_per_task"]["lava"] == rep["samples_per_task"]["pynn_brian2"] == [1] * 5
    assert rep["pynn"]["argmax_agreement_with_emulator"] == 1.0          # README: argmax = emulator's for 100 %
    # README: hidden spike-count correlation 0.9999 over all 450 digits (57,600 (digit, neuron) counts: ~60 spikes
    # of difference in all, ~0.13 per digit). Here each task's figure is over one digit's 128 counts (variance 3.4 to
    # 11 for these digits), where Brian2's continuous integration (DESIGN.md section 5: statistical, not bit-exact
    # agreement) moving a single spike lowers r by 0.3e-3 to 1.0e-3 (measured: 0.9991 on task 1, 1.0 on the others);
    # 0.997 allows two spikes of difference per digit.
    assert min(rep["pynn"]["hidden_sample_count_correlation"]) >= 0.997, rep["pynn"]


# ------------------------------------------- issue 20: Oja's subspace rule on chip (families/hlop/oja.py), three seeds
# CI-sized run of examples/hlop_digits/run.py's table: the full on-chip stream (3 passes of task 5's training digits),
# 3 epochs of the further task instead of 30, seeds 0, 1, 2; Lava on the first 4 digits of seed 0's stream. Seeded
# and deterministic (integer emulator; torch on one thread), so the README's figures are asserted exactly at the
# printed precision.
@pytest.fixture(scope="module")
def onchip_seeds():
    from neurodeploy.families.hlop.onchip import three_seeds

    lava_python_or_skip()
    return three_seeds((0, 1, 2), passes=3, further_epochs=3, lava_digits=4)


def test_on_chip_oja_network_equals_lava_and_keeps_its_tie(onchip_seeds):
    """The whole chip graph (deployed network + both layers' residual networks, 6 populations, 8 learning
    synapses) on Lava fixed_pt for 64 steps: every learned weight and every spike equal the emulator's (exact bound:
    tests/lava/test_lava_oja.py), and F = -H^T holds integer for integer on Lava and, after the whole stream, on the
    emulator, in every seed."""
    cfg_steps = 10
    run0 = onchip_seeds["runs"][0]
    agreement = run0["lava_agreement"]
    assert agreement["steps"] == 4 * (cfg_steps + 6) == 64
    learning = {n: e for n, e in agreement.items() if n.endswith(("_Hp", "_Hn", "_Fp", "_Fn"))}
    assert len(learning) == 8
    assert all(e["weights_equal"] == 1.0 and e["weights_max_abs_diff"] == 0 for e in learning.values())
    assert max(e["weights_changed"] for e in learning.values()) > 0.1       # within the compared steps it learned
    pops = {n: e for n, e in agreement.items() if n.endswith(("_y", "_ep", "_en"))}
    assert len(pops) == 6 and all(e["spikes_equal"] == 1.0 for e in pops.values())
    assert all(e["spikes"] > 0 for n, e in pops.items() if n.endswith("_y"))
    assert agreement["tie_on_lava"] is True and agreement["tie_on_emulator"] is True
    for run in onchip_seeds["runs"]:
        for layer in run["layers"]:
            assert layer["tie_F_equals_minus_H_transposed"] is True
            assert layer["chip_rank"] == layer["subspace_neurons"] and layer["subspace_spikes"] > 0


def test_on_chip_oja_subspace_captures_the_float_oja_energy_within_two_points(onchip_seeds):
    """README, captured energy of task 5's activity (old subspaces, + on-chip Oja, + float Oja), per layer and seed.
    The issue's goal, on chip within 2 points of the float rule on both layers, holds for the three-seed mean on both
    layers and for every seed on the input layer; on the hidden layer seed 1 misses it (2.2 points)."""
    energy = onchip_seeds["energy"]
    table = {layer: {key: [pct(v) for v in energy[layer][key]["per_seed"]]
                     for key in ("energy_captured_by_old", "total_captured_chip", "total_captured_float_oja")}
             for layer in ("input", "hidden")}
    assert table == EXPECTED_ENERGY, table
    for layer, worst in (("input", 0.02), ("hidden", 0.023)):
        e = energy[layer]
        gaps = np.subtract(e["total_captured_float_oja"]["per_seed"], e["total_captured_chip"]["per_seed"])
        assert gaps.mean() < 0.02, (layer, gaps)                             # the goal, three-seed mean
        assert gaps.max() < worst, (layer, gaps)                             # measured worst seed: 1.5 / 2.2 points
        assert min(np.subtract(e["total_captured_chip"]["per_seed"], e["energy_captured_by_old"]["per_seed"])) > 0.01


def test_three_seed_forgetting_on_the_deployed_integer_network(onchip_seeds):
    """README, the three-seed forgetting table (CI-sized: 3 epochs of the further task): mean forgetting of tasks
    1-5 per variant, per seed, mean and spread."""
    f = onchip_seeds["forgetting"]
    table = {name: [pct(v) for v in f[name]["forgetting_mean"]["per_seed"]] for name in f}
    assert table == EXPECTED_FORGETTING, table
    acc = {name: [pct(v) for v in f[name]["permuted_task_accuracy"]["per_seed"]] for name in f}
    assert acc == EXPECTED_PERMUTED, acc
    gap = onchip_seeds["on_chip_minus_float_forgetting"]
    assert abs(gap["mean"]) < 0.01                                          # the goal: within 1 point
    assert max(abs(v) for v in gap["per_seed"]) < 0.01                      # and in each seed (worst: 0.9 points)
    # every projected update forgets at least 20 points less than fine-tuning, in every seed (measured: 20.3 or more)
    for name in ("hlop_old_subspaces", "hlop_on_chip_subspace", "hlop_float_oja_subspace"):
        assert min(np.subtract(f[name]["forgetting_mean"]["per_seed"], f["finetune"]["forgetting_mean"]["per_seed"])
                   ) > 0.2


# README tables (percent / points, one decimal), per seed 0, 1, 2
EXPECTED_ENERGY = {
    "input": {"energy_captured_by_old": [93.2, 93.1, 93.3], "total_captured_chip": [96.3, 96.3, 96.0],
              "total_captured_float_oja": [97.4, 97.4, 97.4]},
    "hidden": {"energy_captured_by_old": [84.2, 82.0, 83.3], "total_captured_chip": [97.9, 97.0, 97.8],
               "total_captured_float_oja": [99.2, 99.2, 99.4]},
}
EXPECTED_FORGETTING = {"finetune": [-28.0, -21.5, -24.5], "hlop_old_subspaces": [0.6, -1.2, 0.8],
                       "hlop_on_chip_subspace": [0.2, -1.1, 1.3], "hlop_float_oja_subspace": [-0.0, -0.2, 0.7]}
EXPECTED_PERMUTED = {"finetune": [91.1, 89.8, 84.9], "hlop_old_subspaces": [80.7, 82.7, 79.8],
                     "hlop_on_chip_subspace": [73.8, 77.6, 74.2], "hlop_float_oja_subspace": [76.4, 79.8, 75.6]}
