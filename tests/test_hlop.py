"""HLOP reference learner (issue 7, item 1): Oja subspace rule, orthogonal projection, CL metrics, a short run."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_short_sequence_hlop_forgets_less_than_finetuning():
    data = split_digits(0)
    kw = dict(setting="class", epochs=3, hebb_epochs=300)
    base = run_sequence(HLOPConfig(method="finetune", **kw), data)
    hlop = run_sequence(HLOPConfig(method="hlop", **kw), data)
    assert np.asarray(base["R"]).shape == (5, 5)
    assert base["BWT"] < -0.8                                           # class-incremental fine-tuning forgets
    assert hlop["BWT"] > base["BWT"] + 0.4
    assert hlop["subspace_sizes"] == [24, 64]                           # 4 consolidations, below 64 / 128
