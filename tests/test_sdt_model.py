"""Spike-driven transformer family (issue 6): the LIF lowering at the exact threshold, BN folding, and the whole
lowered model reproducing the torch model's spikes exactly (float64) for both attention forms."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurodeploy.emulator import simulate  # noqa: E402
from neurodeploy.errors import ConversionError  # noqa: E402
from neurodeploy.families.sdt.layers import ConvBN, MultiStepLIF, input_gain, ir_threshold, lif_to_ir  # noqa: E402
from neurodeploy.ir.graph import Graph  # noqa: E402
from neurodeploy.ir.ops import Dense, Input, Output  # noqa: E402
from neurodeploy.passes.quantize import quantize  # noqa: E402


# ------------------------------------------------------------------------------------------- LIF at threshold
def _tie_case(T=6, B=512, seed=0):
    """Three inputs with dyadic weights (-2, 1, 0.5) into one LIF(tau 2, vth 1): membranes on the grid 1/128 over
    6 steps, so exact ties H == vth occur. Returns the stimulus [B, T, 3], torch spikes [B, T, 1], #ties."""
    rng = np.random.default_rng(seed)
    wx = np.array([[-2.0, 1.0, 0.5]])
    s = (rng.random((B, T, 3)) < 0.5).astype(np.float64)
    x = torch.tensor(s.transpose(1, 0, 2) @ wx.T)
    lif = MultiStepLIF(2.0, 1.0)
    ref = lif(x).numpy().transpose(1, 0, 2)
    v, ties = torch.zeros(B, 1, dtype=torch.float64), 0
    for t in range(T):
        h = v + (x[t] - v) / 2
        ties += int((h == 1.0).sum())
        v = h * (h < 1.0)
    return wx, s, ref, ties


def _one_lif_graph(wx, neuron):
    return Graph({"in": Input(shape=(3,)), "syn": Dense(weight=wx * input_gain(2.0)), "lif": neuron,
                  "out": Output()}, [("in", "syn"), ("syn", "lif"), ("lif", "out")])


def test_lif_ge_threshold_exact_in_float_and_on_grid_after_quantization():
    wx, s, ref, ties = _tie_case()
    assert ties >= 5  # the stimulus really exercises H == vth
    latency = 1  # one synapse: torch step t appears at array step t + 1
    for grid in (None, 1 / 128):
        g = _one_lif_graph(wx, lif_to_ir((1,), 2.0, 1.0, "lif", grid=grid))
        out = simulate(g, s, arithmetic="float").outputs["out"]
        np.testing.assert_array_equal(out[:, latency:], ref[:, :-latency])
        assert not out[:, :latency].any()
    # quantized with the value grid: scale 256 maps the weights to integers, lam * grid = 2 >= 1 -> ties fire
    q, _ = quantize(_one_lif_graph(wx, lif_to_ir((1,), 2.0, 1.0, "lif", grid=1 / 128)), "loihi2", s,
                    method="maxabs")
    assert q.nodes["lif"].quant.scale == 256.0 and q.nodes["lif"].vth == 255
    out = simulate(q, s, arithmetic="int").outputs["out"]
    np.testing.assert_array_equal(out[:, latency:], ref[:, :-latency])


def test_lif_threshold_without_grid_misses_only_the_quantized_ties():
    """Documented limit: without a grid the quantized neuron does not fire on an exact integer tie; a plain
    ``vth`` (strict ">") already differs from torch in float at the ties."""
    wx, s, ref, ties = _tie_case()
    naive = _one_lif_graph(wx, lif_to_ir((1,), 2.0, 1.0, "lif").replace(vth=1.0))
    out = simulate(naive, s, arithmetic="float").outputs["out"]
    assert (out[:, 1:] != ref[:, :-1]).any()
    q, _ = quantize(_one_lif_graph(wx, lif_to_ir((1,), 2.0, 1.0, "lif")), "loihi2", s, method="maxabs")
    assert q.nodes["lif"].vth == 256  # rint(256 * nextafter(1, 0))
    out = simulate(q, s, arithmetic="int").outputs["out"]
    assert (out[:, 1:] != ref[:, :-1]).any()


def test_ir_threshold_rules():
    assert ir_threshold(1.0) == np.nextafter(1.0, -np.inf)
    assert ir_threshold(0.5, grid=0.125) == 0.5 - 0.0625
    with pytest.raises(ConversionError, match="not a multiple"):
        ir_threshold(0.5, grid=0.3)
    with pytest.raises(ConversionError, match="tau"):
        lif_to_ir((2,), 0.5, 1.0, "blocks.0.lif")
    n = lif_to_ir((2, 3), 4.0, 1.0, "x")
    assert (n.du, n.dv, n.reset, n.shape) == (1.0, 0.25, "zero", (2, 3))


def test_convbn_folding_equals_eval_forward():
    torch.manual_seed(0)
    m = ConvBN(3, 5, 3, stride=2, padding=1).double()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-1, 1)
    m.eval()
    x = torch.rand(2, 4, 3, 8, 8, dtype=torch.float64)
    w, b = m.folded()
    ref = torch.nn.functional.conv2d(x.flatten(0, 1), torch.tensor(w), torch.tensor(b), stride=2, padding=1)
    # float64 rounding of the two orders of operations differs in the last bits only
    np.testing.assert_allclose(m(x).flatten(0, 1).detach().numpy(), ref.numpy(), rtol=0, atol=1e-12)
