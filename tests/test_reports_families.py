"""The energy report on the model families and the bundled ONNX example: it runs, and its counts equal a direct
count made here from the emulator's recorded spikes and the quantized synapse arrays (independently of
``neurodeploy.reports.counts``).

Direct count, per synapse node with source ``src``: ``synaptic_ops = sum_{b,t,i} s_i(b,t) * fanout_i`` where
``fanout_i`` counts the (post, pre=i, delay) entries whose weight is non-zero as Lava executes it (clipped by sign
mode, then truncated to ``num_weight_bits``: ``W = (W >> k) << k``, magnitude for inhibitory weights,
``k = 8 - bits + (1 if mixed)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodeploy.compiler import compile_graph
from neurodeploy.emulator import simulate
from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import Conv2d, Dense, Input, Sparse
from neurodeploy.reports import energy_report

ROOT = Path(__file__).resolve().parent.parent


def _lava_weights(op, w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, np.int64)
    mode = op.sign_mode or "mixed"
    lo, hi = {"excitatory": (0, 255), "inhibitory": (-255, 0), "mixed": (-256, 255)}[mode]
    w = np.clip(w, lo, hi)
    bits = op.num_weight_bits if op.num_weight_bits is not None else 8
    k = 8 - bits + (1 if mode == "mixed" else 0)
    mag = (np.abs(w) >> k) << k
    return np.where(w < 0, -mag, mag) if mode != "inhibitory" else -mag


def _fanout(op, n_in: int, in_shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(op, Conv2d):  # the kernel taps inside the padded input, as a matrix (tested against a direct conv)
        w = op_matrix(op, in_shape).tocoo()
        return np.bincount(w.col[_lava_weights(op, w.data) != 0], minlength=n_in)
    if isinstance(op, Dense):
        w = _lava_weights(op, op.weight)
        return (w != 0).sum(axis=0)
    if isinstance(op, Sparse):
        delays = np.zeros_like(op.row) if op.delays is None else np.asarray(op.delays)
        key = (np.asarray(op.row, np.int64) * n_in + op.col) * 64 + delays
        uniq, inv = np.unique(key, return_inverse=True)
        summed = np.zeros(uniq.size, np.int64)
        np.add.at(summed, inv, np.asarray(op.value, np.int64))
        keep = _lava_weights(op, summed) != 0
        pre = (uniq[keep] // 64) % n_in
        return np.bincount(pre, minlength=n_in)
    raise AssertionError(f"no direct count for {type(op).__name__}")


def _check_counts(artifact, stim, min_ops: int = 1) -> dict:
    """Run the report on ``stim`` (an array for the single input, or a dict per input) and check its counts."""
    graph = artifact.graph
    rep = energy_report(artifact, stim, batch_size=8)
    rec = simulate(graph, stim, record=("spikes",))
    stim = stim if isinstance(stim, dict) else {graph.inputs[0]: stim}
    batch = next(iter(stim.values())).shape[0]
    shapes = graph.shapes()
    nodes = rep["counts"]["nodes"]
    total = 0
    for name, op in graph.nodes.items():
        if op.role != "synapse":
            continue
        (src,) = graph.predecessors(name)
        pre = np.asarray(stim[src] if isinstance(graph.nodes[src], Input) else rec.recorded[f"{src}/spikes"])
        pre = (pre.reshape(pre.shape[0], pre.shape[1], -1) != 0).sum(axis=(0, 1))
        direct = int((pre * _fanout(op, pre.size, tuple(shapes[src]))).sum())
        assert nodes[name]["synaptic_ops"] == direct, name
        total += direct
    spikes = sum(int(rec.recorded[f"{n}/spikes"].sum()) for n, op in graph.nodes.items() if op.role == "neuron")
    assert rep["counts"]["totals_per_inference"]["spikes"] == pytest.approx(spikes / batch)
    assert total >= min_ops
    for prof in rep["profiles"]:
        for line in prof["lines"]:
            assert line["figure"]["source"], (prof["profile"], line)
    lit = rep["reference"]["literature"]
    assert lit["per_inference_J"] > 0 and lit["source"].startswith("Yao et al.")
    return rep


def test_report_on_an_lsm_reservoir():
    from neurodeploy.families.lsm import connectivity, model

    spec = connectivity.ReservoirSpec(grid=(4, 4, 4), lam=3.0, weights={"EE": 0.1, "EI": 0.2, "IE": 0.2, "II": 0.2})
    lsm = model.build(spec, model.InputSpec(p=0.2, weight=0.05, seed=0))
    rng = np.random.default_rng(0)
    stim = (rng.random((4, 30, lsm.n_in)) < 0.2).astype(np.uint8)
    artifact = compile_graph(lsm.graph(), "loihi2", calibration=stim)
    rep = _check_counts(artifact, stim, min_ops=100)
    assert rep["counts"]["totals_per_inference"]["spikes"] > 0


def test_report_on_the_onnx_digits_example():
    pytest.importorskip("onnx")
    from neurodeploy.converters.onnx import from_onnx, rate_encode

    data = np.load(ROOT / "examples/onnx_digits/digits_data.npz")
    graph = from_onnx(ROOT / "examples/onnx_digits/digits_mlp.onnx", calibration=data["calibration"], reset="zero")
    stim = rate_encode(data["test"][:4], 16, graph.meta["input_scale"]["image"])
    artifact = compile_graph(graph, "loihi2", calibration=stim)
    _check_counts(artifact, stim, min_ops=100)


def test_report_on_an_hlop_network():
    torch = pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    from neurodeploy.converters.snntorch import from_snntorch
    from neurodeploy.families.hlop.learner import HLOPConfig, build_net

    torch.manual_seed(0)
    net = build_net(HLOPConfig())
    graph = from_snntorch(net, (64,), dt=1e-3, name="hlop_report")
    rng = np.random.default_rng(1)
    stim = (rng.random((4, 20, 64)) < 0.3).astype(np.uint8)
    artifact = compile_graph(graph, "loihi2", calibration=stim)
    _check_counts(artifact, stim, min_ops=100)
