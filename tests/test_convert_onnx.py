"""ONNX -> SNN: every op on hand-built graphs (the converted ANN is checked against onnx's reference evaluator),
threshold balancing, delay alignment, rates vs ReLU activations, bad files and unsupported ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from neurodeploy.converters.onnx import from_onnx, load_onnx, rate_encode  # noqa: E402
from neurodeploy.emulator import simulate  # noqa: E402
from neurodeploy.errors import ConversionError, SerializationError, UnsupportedOpError  # noqa: E402
from neurodeploy.ir.ops import IF, LI, AvgPool2d, Conv2d, Delay, Dense, Scale, Sparse  # noqa: E402
from neurodeploy.model_loading import load_model  # noqa: E402
from neurodeploy.passes.fold import fold_linear  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_digits"


def _model(nodes, inputs, outputs, inits=None, opset=13):
    """A ModelProto: ``inputs``/``outputs`` map names to feature shapes (batch "N" prepended)."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *s]) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    try:  # give the outputs their inferred types and shapes (the checker wants a shape)
        inferred = onnx.shape_inference.infer_shapes(model)
        model.graph.ClearField("output")
        model.graph.output.extend(inferred.graph.output)
    except Exception:  # custom domains: no inference
        pass
    for out in model.graph.output:
        if not out.type.tensor_type.HasField("shape"):
            out.type.tensor_type.shape.SetInParent()
    return model


def _w(rng, *shape, scale=0.5):
    return rng.normal(0, scale, shape).astype(np.float32)


def _x(rng, n, *shape):
    return rng.random((n, *shape)).astype(np.float32)


def _convert(model, x, **kw):
    """Convert with calibration ``x``; the converter's own check compares its ANN with onnx's evaluator."""
    g = from_onnx(model, calibration=x, **kw)
    assert g.meta["ann_check_error"] < 1e-5
    return g


def _ops(g, kind):
    return {n: op for n, op in g.nodes.items() if isinstance(op, kind)}


def _mlp(rng, n_in=6, n_hidden=8, n_out=3, softmax=True):
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["a"], name="relu1"),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["z"], name="fc2", alpha=0.5, beta=2.0)]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["y"], name="soft", axis=-1))
    inits = {"w1": _w(rng, n_hidden, n_in), "b1": _w(rng, n_hidden, scale=0.1), "w2": _w(rng, n_hidden, n_out),
             "b2": _w(rng, n_out, scale=0.1)}
    return _model(nodes, {"x": (n_in,)}, ["y" if softmax else "z"], inits)


# ------------------------------------------------------------------------------------------------ structure
def test_gemm_relu_readout_and_threshold_balancing():
    rng = np.random.default_rng(0)
    model, x = _mlp(rng), _x(rng, 40, 6)
    g = _convert(model, x, percentile=99.0)
    assert isinstance(g.nodes["fc1"], Dense) and isinstance(g.nodes["fc2"], Dense)
    relu = g.nodes["relu1"]
    assert isinstance(relu, IF) and relu.vth == 1.0 and relu.reset == "subtract"
    out = g.nodes["y.readout"]
    assert isinstance(out, LI) and out.du == 1.0 and out.dv == 0.0
    # lambda = 99th percentile of the positive hidden activations; input scale = max of the calibration data
    w1 = numpy_helper.to_array(model.graph.initializer[0]).astype(float)
    b1 = numpy_helper.to_array(model.graph.initializer[1]).astype(float)
    act = x @ w1.T + b1
    lam = np.percentile(act[act > 0], 99.0)
    lam_in = float(x.max())
    assert g.meta["thresholds"]["relu1"] == pytest.approx(lam)
    assert g.meta["input_scale"]["x"] == pytest.approx(lam_in)
    assert np.allclose(g.nodes["fc1"].weight, w1 * lam_in / lam)
    assert np.allclose(relu.bias, b1 / lam)
    w2 = 0.5 * numpy_helper.to_array(model.graph.initializer[2]).astype(float).T
    lam_out = g.meta["output_scale"]["y"]
    assert np.allclose(g.nodes["fc2"].weight, w2 * lam / lam_out)
    assert g.meta["output_kind"] == {"y": "integrator"} and g.meta["latency_steps"] == 2
    notes = " ".join(n["note"] for n in g.meta["conversion_notes"])
    assert "Softmax at the output dropped" in notes


def test_matmul_add_sub_mul_div_identity_dropout():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["p"], name="add_bias"),
             helper.make_node("Sub", ["p", "c"], ["q"], name="sub"),
             helper.make_node("Mul", ["q", "k"], ["r"], name="mul"),
             helper.make_node("Div", ["r", "two"], ["s"], name="div"),
             helper.make_node("Identity", ["s"], ["t"], name="ident"),
             helper.make_node("Dropout", ["t"], ["u"], name="drop"),
             helper.make_node("Relu", ["u"], ["y"], name="relu")]
    inits = {"w": _w(rng, 5, 4), "b": _w(rng, 4), "c": _w(rng, 1, 4), "k": np.abs(_w(rng, 4)) + 0.1, "two": [2.0]}
    g = _convert(_model(nodes, {"x": (5,)}, ["y"], inits), _x(rng, 30, 5))
    assert isinstance(g.nodes["mm"], Dense) and isinstance(g.nodes["relu"], IF)
    assert not _ops(g, Scale)  # the per-feature Mul went into the Dense rows
    assert g.meta["output_kind"] == {"y": "spikes"}  # a ReLU at the output: its spikes are read


def test_conv_padding_stride_groups_dilation_and_auto_pad():
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[1, 1]),
             helper.make_node("Relu", ["c1"], ["a1"], name="relu1"),
             helper.make_node("Conv", ["a1", "w2"], ["c2"], name="conv2", group=2, strides=[2, 2],
                              dilations=[1, 1], auto_pad="SAME_UPPER"),
             helper.make_node("Relu", ["c2"], ["a2"], name="relu2"),
             helper.make_node("Conv", ["a2", "w3"], ["y"], name="conv3", dilations=[2, 2], pads=[2, 2, 2, 2])]
    inits = {"w1": _w(rng, 4, 2, 3, 3), "b1": _w(rng, 4, scale=0.1), "w2": _w(rng, 4, 2, 3, 3),
             "w3": _w(rng, 2, 4, 3, 3)}
    g = _convert(_model(nodes, {"x": (2, 7, 7)}, ["y"], inits), _x(rng, 10, 2, 7, 7))
    c1, c2 = g.nodes["conv1"], g.nodes["conv2"]
    assert isinstance(c1, Conv2d) and c1.padding == (1, 1)
    assert c2.groups == 2 and c2.stride == (2, 2) and c2.padding == (1, 1)
    assert g.nodes["conv3"].dilation == (2, 2) and g.shapes()["y.readout"] == (2, 4, 4)


def test_conv_asymmetric_padding_and_1d_rejected():
    rng = np.random.default_rng(3)
    bad = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="cv", pads=[0, 0, 1, 1])],
                 {"x": (1, 4, 4)}, ["y"], {"w": _w(rng, 1, 1, 2, 2)})
    with pytest.raises(UnsupportedOpError, match=r"cv \(Conv\).*asymmetric padding"):
        from_onnx(bad)
    even = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="cv", auto_pad="SAME_UPPER")],
                  {"x": (1, 4, 4)}, ["y"], {"w": _w(rng, 1, 1, 2, 2)})
    with pytest.raises(UnsupportedOpError, match="SAME_UPPER needs asymmetric padding"):
        from_onnx(even)
    one_d = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="c1d")], {"x": (1, 5)}, ["y"],
                   {"w": _w(rng, 1, 1, 3)})
    with pytest.raises(UnsupportedOpError, match="only 2-D convolution"):
        from_onnx(one_d)


def test_batchnorm_folded_into_conv_and_gemm_else_scale():
    rng = np.random.default_rng(4)
    bn = {f"{p}{i}": v for i, c in ((1, 3), (2, 5)) for p, v in
          (("g", np.abs(_w(rng, c)) + 0.5), ("be", _w(rng, c)), ("mu", _w(rng, c)), ("var", np.abs(_w(rng, c)) + .5))}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g1", "be1", "mu1", "var1"], ["n1"], name="bn1",
                              epsilon=1e-3),
             helper.make_node("Relu", ["n1"], ["a"], name="relu1"),
             helper.make_node("Flatten", ["a"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "w2"], ["h"], name="fc", transB=1),
             helper.make_node("BatchNormalization", ["h", "g2", "be2", "mu2", "var2"], ["n2"], name="bn2"),
             helper.make_node("Relu", ["n2"], ["a2"], name="relu2"),
             helper.make_node("BatchNormalization", ["a2", "g2", "be2", "mu2", "var2"], ["y"], name="bn3")]
    inits = {"w1": _w(rng, 3, 1, 3, 3), "w2": _w(rng, 5, 48, scale=0.2), **bn}
    g = _convert(_model(nodes, {"x": (1, 4, 4)}, ["y"], inits), _x(rng, 20, 1, 4, 4))
    assert isinstance(g.nodes["conv"], Conv2d) and isinstance(g.nodes["fc"], Dense)
    scales = _ops(g, Scale)  # bn3 follows a ReLU (no weights to fold into): a Scale before the readout
    assert len(scales) == 1 and next(iter(scales.values())).origin == "bn3"
    assert g.meta["ann_check_error"] < 1e-5


def test_average_pools_and_exact_divisors():
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu0"),
             helper.make_node("AveragePool", ["a"], ["p1"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p1"], ["b"], name="relu1"),
             helper.make_node("AveragePool", ["b"], ["p2"], name="avgpad", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["p2"], ["c"], name="relu2"),
             helper.make_node("AveragePool", ["c"], ["p3"], name="avgcnt", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=1),
             helper.make_node("GlobalAveragePool", ["p3"], ["y"], name="gap")]
    g = _convert(_model(nodes, {"x": (2, 6, 6)}, ["y"]), _x(rng, 10, 2, 6, 6))
    assert isinstance(g.nodes["avg"], AvgPool2d) and isinstance(g.nodes["avgpad"], Sparse)
    assert isinstance(g.nodes["avgcnt"], AvgPool2d) and g.nodes["avgcnt"].padding == (1, 1)
    assert g.shapes()["y.readout"] == (2, 1, 1)


@pytest.mark.parametrize("kernel,stride,pads,levels", [((2, 2), (2, 2), (0, 0), 2), ((3, 3), (2, 2), (1, 1), 4),
                                                       ((1, 1), (1, 1), (0, 0), 0)])
def test_maxpool_exact_relu_tournament(kernel, stride, pads, levels):
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["a"], name="relu"),
             helper.make_node("MaxPool", ["a"], ["y"], name="pool", kernel_shape=list(kernel),
                              strides=list(stride), pads=[*pads, *pads])]
    model = _model(nodes, {"x": (1, 6, 6)}, ["y"], {"w": _w(rng, 2, 1, 1, 1)})
    x = _x(rng, 20, 1, 6, 6) - 0.3  # negative inputs are refused by the calibration, so shift via the conv instead
    with pytest.raises(ConversionError, match="negative values"):
        from_onnx(model, calibration=x)
    g = _convert(model, np.clip(x, 0, None) + 0.01)
    tournament = [n for n in g.nodes if n.startswith("pool.max")]
    assert len([n for n in tournament if isinstance(g.nodes[n], IF)]) == levels
    if levels:  # the window's earlier candidates reach later levels through delays
        assert _ops(g, Delay) and g.meta["node_latency_steps"]["y.readout"] == 2 + levels


def test_flatten_reshape_concat():
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["b"], name="relu_b"),
             helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
             helper.make_node("Reshape", ["cat", "shape1"], ["r1"], name="reshape1"),
             helper.make_node("Reshape", ["r1", "shape2"], ["r2"], name="reshape2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], name="fc", transB=1)]
    inits = {"w": _w(rng, 2, 1, 1, 1), "shape1": np.array([0, -1, 4]), "shape2": np.array([-1, 3, 4, 4]),
             "w2": _w(rng, 2, 48, scale=0.2)}
    model = _model(nodes, {"x": (1, 4, 4)}, ["y"], inits)
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.array([0, -1, 4], np.int64), "shape1"))
    model.graph.initializer[2].CopyFrom(numpy_helper.from_array(np.array([-1, 3, 4, 4], np.int64), "shape2"))
    g = _convert(model, _x(rng, 10, 1, 4, 4))
    assert g.shapes()["y.readout"] == (2,)
    bad = _model([helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=2)], {"x": (2, 3)}, ["y"])
    with pytest.raises(UnsupportedOpError, match="mixes the batch"):
        from_onnx(bad)
    cat0 = _model([helper.make_node("Concat", ["x", "x"], ["y"], name="c0", axis=0)], {"x": (3,)}, ["y"])
    with pytest.raises(UnsupportedOpError, match="mixes samples"):
        from_onnx(cat0)


def test_dynamic_batch_reshape_pattern():
    """torch's x.view(x.size(0), -1) with a dynamic batch: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    rng = np.random.default_rng(18)
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Shape", ["a"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], name="cat", axis=0),
             helper.make_node("Reshape", ["a", "target"], ["f"], name="reshape"),
             helper.make_node("Cast", ["f"], ["fc"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Gemm", ["fc", "w"], ["y"], name="fc", transB=1)]
    model = _model(nodes, {"x": (2, 3, 3)}, ["y"], {"w": _w(rng, 4, 18)})
    for name, value in (("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
                        ("minus1", np.array([-1], np.int64))):
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    g = _convert(model, _x(rng, 6, 2, 3, 3))
    assert isinstance(g.nodes["fc"], Dense) and g.shapes()["y.readout"] == (4,)
    cast = _model([helper.make_node("Cast", ["x"], ["y"], name="toint", to=TensorProto.INT32)], {"x": (3,)}, ["y"])
    with pytest.raises(UnsupportedOpError, match="casts an activation"):
        from_onnx(cast)


def test_residual_add_is_aligned_with_delays():
    """x -> fc1 -> relu1 -> fc2 -> relu2 -> fc3 ; relu1 + fc3 -> relu3: the skip path gets a 1-step Delay."""
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
             helper.make_node("Gemm", ["a1", "w2"], ["h2"], name="fc2"),
             helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
             helper.make_node("Gemm", ["a2", "w3"], ["h3"], name="fc3"),
             helper.make_node("Add", ["a1", "h3"], ["s"], name="res"),
             helper.make_node("Relu", ["s"], ["y"], name="relu3")]
    inits = {"w1": _w(rng, 4, 6), "w2": _w(rng, 6, 6), "w3": _w(rng, 6, 6)}
    g = _convert(_model(nodes, {"x": (4,)}, ["y"], inits), _x(rng, 30, 4))
    delays = _ops(g, Delay)
    assert len(delays) == 1 and np.all(next(iter(delays.values())).delay == 1)
    assert set(g.predecessors("relu3")) == {"fc3", next(iter(g.successors(next(iter(delays)))))}
    lat = g.meta["node_latency_steps"]
    assert (lat["relu1"], lat["relu2"], lat["relu3"]) == (1, 2, 3)
    from neurodeploy.passes.fold import fold_linear

    folded, _ = fold_linear(g)
    skip = [n for n in folded.predecessors("relu3") if folded.nodes[n].delays is not None]
    assert len(skip) == 1 and np.all(np.asarray(folded.nodes[skip[0]].delays) == 1)


def test_spiking_readout_and_zero_reset_options():
    rng = np.random.default_rng(9)
    g = _convert(_mlp(rng, softmax=False), _x(rng, 30, 6), readout="spikes", reset="zero")
    out = g.nodes["z.readout"]
    assert isinstance(out, IF) and out.reset == "zero" and g.meta["output_kind"] == {"z": "spikes"}
    assert any("reset to zero" in n["note"] for n in g.meta["conversion_notes"])


def test_model_based_normalisation_without_calibration():
    rng = np.random.default_rng(10)
    model = _mlp(rng)
    g = from_onnx(model)
    w1 = numpy_helper.to_array(model.graph.initializer[0]).astype(float)
    b1 = numpy_helper.to_array(model.graph.initializer[1]).astype(float)
    bound = np.maximum(w1, 0).sum(axis=1) + b1  # the largest activation for inputs in [0, 1]
    assert g.meta["normalisation"] == "model" and g.meta["input_scale"]["x"] == 1.0
    assert g.meta["thresholds"]["relu1"] == pytest.approx(bound.max())
    x = _x(rng, 30, 6)
    data = from_onnx(model, calibration=x)
    assert data.meta["thresholds"]["relu1"] < g.meta["thresholds"]["relu1"]


# ------------------------------------------------------------------------------------------ rates vs ReLU
def _rates(g, x, steps):
    """Per population: spike rate over the ``steps`` steps in which its input arrives (latency-shifted)."""
    spikes = rate_encode(x, steps, g.meta["input_scale"]["x"])
    pad = np.zeros((len(x), g.meta["latency_steps"]) + spikes.shape[2:], np.uint8)
    pops = [n for n, op in g.nodes.items() if isinstance(op, IF)]
    res = simulate(fold_linear(g)[0], np.concatenate([spikes, pad], axis=1), record=("spikes",), nodes=pops)
    lat = g.meta["node_latency_steps"]
    return {n: res.recorded[f"{n}/spikes"][:, lat[n]:lat[n] + steps].reshape(len(x), steps, -1).mean(axis=1)
            for n in pops}


def _activations(model, x, names):
    """ReLU outputs of the ONNX model (intermediate tensors exposed as graph outputs)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in names:
        m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    ref = ReferenceEvaluator(m)
    outs = [ref.run(names, {"x": x[i:i + 1]}) for i in range(len(x))]
    return {name: np.concatenate([o[k] for o in outs]).reshape(len(x), -1) for k, name in enumerate(names)}


def test_float_rates_approximate_relu_activations():
    """Rate x lambda approximates every ReLU activation, error shrinking like 1/T.

    Tolerance: a layer-1 IF neuron with reset by subtraction counts ``T z`` spikes up to 1 (the residual v in
    (-, 1]) plus half a spike per input from the regular code's rounding, weighted by its input weights; each
    deeper layer adds its sources' count errors through its weights and L steps of bias-only drive at onset. For
    this net (normalised row sums |W'| <= ~4, L <= 3) that is about 10 spikes, i.e. 0.005 in rate at T = 2000;
    the test allows 0.02 (rate units, = 0.02 lambda in activation units) and checks that the error at T = 2000 is
    at least 3x smaller than at T = 200 (1/T convergence). The 100th percentile is used so that no calibration
    activation saturates (rate <= 1).
    """
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
             helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2"),
             helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
             helper.make_node("Gemm", ["a2", "w3"], ["h3"], name="fc3"),
             helper.make_node("Add", ["a1", "h3"], ["s"], name="res"),
             helper.make_node("Relu", ["s"], ["y"], name="relu3")]
    inits = {"w1": _w(rng, 5, 8), "b1": _w(rng, 8, scale=0.1), "w2": _w(rng, 8, 8), "b2": _w(rng, 8, scale=0.1),
             "w3": _w(rng, 8, 8)}
    model = _model(nodes, {"x": (5,)}, ["y"], inits)
    x = _x(rng, 12, 5)
    g = _convert(model, x, percentile=100.0)
    acts = _activations(model, x, ["a1", "a2", "y"])
    errors = {}
    for steps in (200, 2000):
        rates = _rates(g, x, steps)
        errors[steps] = max(float(np.abs(rates[pop] - acts[t] / g.meta["thresholds"][pop]).max())
                            for pop, t in (("relu1", "a1"), ("relu2", "a2"), ("relu3", "y")))
    assert errors[2000] < 0.02
    assert errors[2000] < errors[200] / 3


def test_maxpool_rates_approximate_the_max():
    rng = np.random.default_rng(12)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["a"], name="relu"),
             helper.make_node("MaxPool", ["a"], ["m"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["m"], ["y"], name="relu_out")]
    model = _model(nodes, {"x": (1, 4, 4)}, ["y"], {"w": np.abs(_w(rng, 2, 1, 1, 1)) + 0.2})
    x = _x(rng, 8, 1, 4, 4)
    g = _convert(model, x, percentile=100.0)
    acts = _activations(model, x, ["y"])
    rates = _rates(g, x, 2000)
    assert np.abs(rates["relu_out"] - acts["y"] / g.meta["thresholds"]["relu_out"]).max() < 0.02


def test_zero_reset_rates_fall_below_activations():
    rng = np.random.default_rng(13)
    model = _model([helper.make_node("Gemm", ["x", "w"], ["h"], name="fc"),
                    helper.make_node("Relu", ["h"], ["y"], name="relu")], {"x": (4,)}, ["y"], {"w": _w(rng, 4, 16)})
    x = _x(rng, 10, 4)
    acts = _activations(model, x, ["y"])["y"]
    err = {}
    for reset in ("subtract", "zero"):
        g = _convert(model, x, percentile=100.0, reset=reset)
        err[reset] = _rates(g, x, 500)["relu"] - acts / g.meta["thresholds"]["relu"]
    assert np.abs(err["subtract"]).max() < 0.02
    assert err["zero"].mean() < -0.02 and np.all(err["zero"] < 0.01)


def test_constant_drive_counts_match_the_documented_closed_forms():
    """Constant drive z (a bias, no input weights): subtract fires floor(T z) or one less, zero fires
    floor(T / (floor(1/z) + 1)) times (k = floor(1/z) + 1 steps per spike with the strict v > 1)."""
    b = np.array([0.1, 0.25, 0.3, 0.5, 0.7, 1.0])
    model = _model([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
                    helper.make_node("Relu", ["h"], ["y"], name="relu")], {"x": (1,)}, ["y"],
                   {"w": np.zeros((6, 1)), "b": b})
    steps = 50
    z = b.astype(np.float32).astype(float) / b.max()
    for reset in ("subtract", "zero"):
        g = _convert(model, np.ones((4, 1), np.float32), percentile=100.0, reset=reset)
        count = simulate(g, np.zeros((1, steps, 1))).outputs["y"][0].sum(axis=0)
        if reset == "subtract":
            assert np.all((count == np.floor(steps * z + 1e-9)) | (count == np.floor(steps * z + 1e-9) - 1))
        else:
            assert np.array_equal(count, np.floor(steps / (np.floor(1 / z + 1e-9) + 1)))


def test_rate_encode():
    x = np.array([[0.0, 0.25, 0.5, 1.0, 2.0]])
    s = rate_encode(x, 8)
    assert s.shape == (1, 8, 5) and s.dtype == np.uint8
    assert list(s.sum(axis=1)[0]) == [0, 2, 4, 8, 8]
    assert list(rate_encode(x, 8, scale=2.0).sum(axis=1)[0]) == [0, 1, 2, 4, 8]
    p = rate_encode(np.full((200, 3), 0.3), 50, method="poisson", rng=np.random.default_rng(0)).mean()
    assert abs(p - 0.3) < 0.02
    with pytest.raises(ConversionError, match="unknown encoding"):
        rate_encode(x, 8, method="latency")


# -------------------------------------------------------------------------------------- errors and files
def test_unsupported_ops_name_type_and_node():
    sig = _model([helper.make_node("Sigmoid", ["x"], ["y"], name="squash")], {"x": (3,)}, ["y"])
    with pytest.raises(UnsupportedOpError, match=r"node 'squash'.*op type 'Sigmoid'.*Fix: use only"):
        from_onnx(sig)
    mul = _model([helper.make_node("Mul", ["x", "x"], ["y"], name="gate")], {"x": (3,)}, ["y"])
    with pytest.raises(UnsupportedOpError, match="gate.*multiplies two activations"):
        from_onnx(mul)
    rng = np.random.default_rng(14)
    left = _model([helper.make_node("MatMul", ["w", "x"], ["y"], name="wx")], {"x": (3,)}, ["y"],
                  {"w": _w(rng, 3, 3)})
    with pytest.raises(UnsupportedOpError, match=r"wx \(MatMul\) multiplies a constant by the activation"):
        from_onnx(left)
    soft = _model([helper.make_node("Softmax", ["x"], ["s"], name="inner"),
                   helper.make_node("Relu", ["s"], ["y"], name="r")], {"x": (3,)}, ["y"])
    with pytest.raises(UnsupportedOpError, match=r"inner \(Softmax\) is inside the network"):
        from_onnx(soft)
    custom = _model([helper.make_node("Relu", ["x"], ["y"], name="cr", domain="com.example")], {"x": (3,)}, ["y"])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError, match="custom domain 'com.example'"):
        from_onnx(custom)


def test_bad_options_and_calibration():
    rng = np.random.default_rng(15)
    model = _mlp(rng)
    for kw, msg in (({"neuron": "lif"}, "neuron 'lif'"), ({"reset": "none"}, "reset 'none'"),
                    ({"readout": "max"}, "readout 'max'"), ({"percentile": 0}, "percentile"),
                    ({"dt": -1.0}, "dt must be"), ({"timesteps": 0}, "timesteps must be"),
                    ({"timesteps": 2}, "does not exceed the network's latency"),
                    ({"calibration": np.zeros((4, 5))}, r"shaped \[B, 6\]"),
                    ({"calibration": -_x(rng, 4, 6)}, "negative values"),
                    ({"calibration": np.full((4, 6), np.nan)}, "NaN")):
        with pytest.raises(ConversionError, match=msg):
            from_onnx(model, **kw)
    assert from_onnx(model, timesteps=16).meta["timesteps"] == 16
    ids = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": (3,)}, ["y"])
    ids.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(ConversionError, match="not a floating-point tensor"):
        from_onnx(ids, verify=False)


def test_opset_and_dynamic_shapes():
    old = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": (3,)}, ["y"], opset=11)
    with pytest.raises(ConversionError, match="opset 11.*Fix: re-export with opset_version=13"):
        from_onnx(old)
    dyn = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": ("F",)}, ["y"])
    with pytest.raises(ConversionError, match="not fixed.*input_shape"):
        from_onnx(dyn)
    assert from_onnx(dyn, input_shape=(3,)).shapes()["r"] == (3,)


def test_bad_files_raise_serialization_errors(tmp_path):
    rng = np.random.default_rng(16)
    good = _mlp(rng).SerializeToString()
    with pytest.raises(SerializationError, match="does not exist"):
        from_onnx(tmp_path / "missing.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(SerializationError, match="empty"):
        from_onnx(tmp_path / "empty.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 10)
    with pytest.raises(SerializationError, match="junk.onnx"):
        from_onnx(tmp_path / "junk.onnx")
    # truncated at every 7th byte: always a SerializationError or ConversionError naming the file, never protobuf's
    for cut in range(0, len(good) - 1, 7):
        path = tmp_path / "cut.onnx"
        path.write_bytes(good[:cut])
        with pytest.raises((SerializationError, ConversionError)):
            from_onnx(path)
    broken = _mlp(rng)
    broken.graph.node[1].input[0] = "nowhere"
    with pytest.raises(SerializationError, match="not a valid ONNX model"):
        from_onnx(broken)
    with pytest.raises(ConversionError, match="expected a path"):
        from_onnx(12)


def test_load_model_dispatches_onnx(tmp_path):
    rng = np.random.default_rng(17)
    path = tmp_path / "m.onnx"
    path.write_bytes(_mlp(rng).SerializeToString())
    g = load_model(str(path), dt=2e-3, reset="zero")
    assert g.meta["source"] == "onnx" and g.meta["dt"] == 2e-3 and g.nodes["relu1"].reset == "zero"
    assert load_onnx(path).graph.node[0].name == "fc1"
    with pytest.raises(SerializationError, match="does not exist"):
        load_model(str(tmp_path / "nope.onnx"))


def _cli(capsys, *args):
    from neurodeploy.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out + err


def test_cli_compiles_an_onnx_model(capsys, tmp_path):
    code, text = _cli(capsys, "compile", str(EXAMPLE / "digits_mlp.onnx"), "--target", "null", "--reset", "zero",
                      "--out", str(tmp_path / "art"))
    assert code == 0 and "compiled" in text, text
    code, text = _cli(capsys, "compile", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "x"))
    assert code == 2 and "does not exist" in text and "Traceback" not in text


def test_calibrated_graph_saved_as_ndg_compiles_from_the_cli(capsys, tmp_path):
    from neurodeploy.ir import load_graph, save_graph

    data = np.load(EXAMPLE / "digits_data.npz")
    g = from_onnx(EXAMPLE / "digits_mlp.onnx", calibration=data["calibration"], reset="zero")
    save_graph(g, tmp_path / "mlp.ndg")
    back = load_graph(tmp_path / "mlp.ndg")
    assert back.meta["thresholds"] == g.meta["thresholds"] and back.meta["normalisation"] == "data"
    code, text = _cli(capsys, "compile", str(tmp_path / "mlp.ndg"), "--target", "null", "--out", str(tmp_path / "a"))
    assert code == 0, text


# --------------------------------------------------------------------------------------- bundled example
def test_bundled_example_within_one_point_of_the_ann():
    """The committed digits models convert within 1 percentage point of the ANN at T = 32 (float IR)."""
    data = np.load(EXAMPLE / "digits_data.npz")
    assert data["calibration"].shape == (256, 64) and data["test"].shape == (360, 64)
    for model, shape in (("mlp", (64,)), ("cnn", (1, 8, 8))):
        path = EXAMPLE / f"digits_{model}.onnx"
        x = data["test"].reshape(-1, *shape)
        ref = ReferenceEvaluator(str(path))
        ann = np.concatenate([ref.run(None, {"image": x[i:i + 1]})[0] for i in range(len(x))]).argmax(1)
        g = from_onnx(path, calibration=data["calibration"], timesteps=32)  # flat [B, 64] is reshaped
        spikes = rate_encode(x, 32, g.meta["input_scale"]["image"])
        pad = np.zeros((len(x), g.meta["latency_steps"]) + shape, np.uint8)
        v = simulate(fold_linear(g)[0], np.concatenate([spikes, pad], axis=1)).outputs["scores"][:, -1]
        snn_acc, ann_acc = (v.argmax(1) == data["labels"]).mean(), (ann == data["labels"]).mean()
        assert snn_acc >= ann_acc - 0.01, (model, snn_acc, ann_acc)


def test_cli_compile_with_ann_calibration_balances_thresholds_on_data(tmp_path, capsys):
    """`compile model.onnx --ann-calibration x.npz` passes the ANN inputs to threshold balancing."""
    from cli_runner import run_cli

    from neurodeploy.converters.onnx import rate_encode

    example = Path(__file__).resolve().parents[1] / "examples" / "onnx_digits"
    data = np.load(example / "digits_data.npz")
    np.savez(tmp_path / "x.npz", x=data["calibration"])
    art = tmp_path / "art"
    code, _, err = run_cli(capsys, "compile", example / "digits_mlp.onnx", "--ann-calibration", tmp_path / "x.npz",
                           "--out", art)
    assert code == 0, err
    x, labels = data["test"][:60], data["labels"][:60]
    np.savez(tmp_path / "in.npz", spikes=rate_encode(x, 64).astype(np.uint8))
    code, _, err = run_cli(capsys, "run", art, "--input", tmp_path / "in.npz", "--output", tmp_path / "o.npz")
    assert code == 0, err
    scores = np.load(tmp_path / "o.npz")["spikes"][:, -1]  # integrator readout: v at the last step
    assert (scores.argmax(axis=1) == labels).mean() >= 0.9  # the ANN reaches 0.97; chance is 0.1
    code, _, err = run_cli(capsys, "compile", example / "digits_mlp.onnx", "--ann-calibration", tmp_path / "in.npz",
                           "--out", tmp_path / "bad")
    assert code == 2 and "no array named 'x'" in err
