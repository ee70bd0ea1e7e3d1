"""CLI round trip on a graph exported by snnTorch itself: export_to_nir -> nir.write -> compile -> run."""

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.converters.nir import from_nir
from neurodeploy.emulator import simulate

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")


def test_snntorch_exported_nir_compiles_and_runs(tmp_path, capsys):
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 16, bias=False),
        snn.Leaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16), init_hidden=True, reset_mechanism="zero"),
        torch.nn.Linear(16, 4, bias=False),
        snn.Leaky(beta=torch.full((4,), 0.9), threshold=torch.ones(4), init_hidden=True, reset_mechanism="zero"))
    with torch.no_grad():
        net[0].weight.abs_().mul_(2.0)
        net[2].weight.abs_().mul_(1.5)
    path = tmp_path / "exported.nir"
    nir.write(path, export_to_nir(net, torch.randn(1, 12), ignore_dims=[0]))
    x = (np.random.default_rng(0).random((4, 60, 12)) < 0.4).astype(np.uint8)
    np.savez(tmp_path / "in.npz", spikes=x)
    dt = "1e-4"  # the step snnTorch's exporter assumes (tau = dt / (1 - beta))
    for args in (["compile", str(path), "--dt", dt, "--reset", "zero", "--out", str(tmp_path / "art")],
                 ["run", str(tmp_path / "art"), "--input", str(tmp_path / "in.npz"), "--output",
                  str(tmp_path / "out.npz")]):
        try:
            main(args)
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
    quantized = np.load(tmp_path / "out.npz")["spikes"]
    reference = next(iter(simulate(from_nir(path, dt=1e-4, reset="zero"), x.astype(float)).outputs.values()))
    assert quantized.shape == reference.shape == (4, 60, 4)
    assert reference.sum() > 20
    # 8-bit weights carry ~0.5-1 % relative error: a spike flips only where v lands that close to threshold, and a
    # flip in layer 1 can carry into layer 2, so a few per cent of the spikes may differ, not more.
    assert np.abs(quantized.sum(axis=1).astype(int) - reference.sum(axis=1)).sum() <= 0.05 * reference.sum()
    assert (quantized == reference).mean() >= 0.97
    print("output spikes", int(reference.sum()), "bins equal", float((quantized == reference).mean()))
