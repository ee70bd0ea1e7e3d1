"""Spike-driven attention (issue 6): the lowered attention reproduces the torch modules' spikes exactly.

(a) float64 emulator == torch (float64), for both forms and several head counts: the core alone on random binary
    Q, K, V (including the inputs that put the talking-heads / attention LIF exactly on its threshold), and the
    whole module (random ConvBN weights and BN statistics) at the documented latency;
(b) after ``compile_graph(graph, "emulator")`` (Loihi integers) the core still equals torch exactly; for the whole
    module the Q, K, V LIFs have real-valued (rounded) weights, so the test checks what holds there: the integer
    core output equals torch's core applied to the integer Q, K, V spikes;
(c) the Lava comparison lives in tests/lava/test_lava_sdt_attention.py, on the graphs of
    ``tests/lava/data/sdt_attention.npz``; :func:`test_lava_fixture_is_the_current_lowering` proves that file is
    what the current lowering and quantizer produce;
(d) named errors for what the lowering cannot map.

Regenerate the Lava fixture: ``.venv/bin/python tests/test_sdt_attention.py``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurodeploy.compiler import compile_graph  # noqa: E402
from neurodeploy.emulator import simulate  # noqa: E402
from neurodeploy.errors import ConversionError, IRError  # noqa: E402
from neurodeploy.families.sdt.attention import (  # noqa: E402
    V1_LATENCY,
    V2_BITS_LATENCY,
    V2_LATENCY,
    LinearAttentionV2,
    SDSAv1,
    coincidence,
    cost_table,
    format_cost_table,
    lower_attention,
    lower_core,
    v2_neurons,
    verify_quantized,
)
from neurodeploy.ir.graph import Graph  # noqa: E402
from neurodeploy.ir.ops import Input, Output, Sparse  # noqa: E402
from neurodeploy.passes.align_delays import gate_biases  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "lava" / "data" / "sdt_attention.npz"
FORMS = {"v1": SDSAv1, "v2": LinearAttentionV2}


# ------------------------------------------------------------------------------------------------ helpers
def core_graph(module, shape: tuple[int, int, int], steps: int, v2_method: str = "auto") -> tuple[Graph, object]:
    """Input ``x (3C, H, W)`` -> three relay AND neurons (channels [0, C), [C, 2C), [2C, 3C) = Q, K, V; one input
    of weight 1, threshold 1/2: a copy, one step later) -> the lowered core -> Output. Core spikes of torch step
    ``t`` appear at array step ``t + 1 + low.latency``."""
    c, h, w = shape
    size = c * h * w
    nodes = {"x": Input(shape=(3 * c, h, w))}
    edges = []
    for k, key in enumerate("qkv"):
        nodes[key] = coincidence(shape, 1, key)
        nodes[f"x->{key}"] = Sparse(out_shape=shape, in_size=3 * size, row=np.arange(size),
                                    col=np.arange(size) + k * size, value=np.ones(size))
        edges += [("x", f"x->{key}"), (f"x->{key}", key)]
    graph = Graph(nodes, edges)
    low = lower_core(graph, module, "q", "k", "v", "attn", steps=steps, v2_method=v2_method)
    graph = Graph({**graph.nodes, "out": Output(shape=shape)}, [*graph.edges, (low.spikes, "out")])
    return gate_biases(graph).validate(), low


def module_graph(module, shape: tuple[int, int, int], steps: int, v2_method: str = "auto") -> tuple[Graph, object]:
    """Input ``x (C, H, W)`` -> the whole lowered attention -> Output; biases gated by a clock neuron."""
    graph = Graph({"x": Input(shape=shape)}, [])
    low = lower_attention(graph, module, "x", "attn", steps=steps, v2_method=v2_method)
    graph = Graph({**graph.nodes, "out": Output(shape=shape)}, [*graph.edges, (low.spikes, "out")])
    return gate_biases(graph).validate(), low


def emu_layout(x: torch.Tensor, pad: int) -> np.ndarray:
    """torch ``[T, B, ...]`` -> emulator ``[B, T + pad, ...]`` (zeros after T)."""
    a = x.detach().numpy().swapaxes(0, 1)
    return np.concatenate([a, np.zeros((a.shape[0], pad, *a.shape[2:]), a.dtype)], axis=1)


def torch_layout(a: np.ndarray, start: int, steps: int) -> torch.Tensor:
    """emulator ``[B, run, ...]`` -> torch ``[T, B, ...]`` of array steps ``start .. start + steps - 1``."""
    return torch.as_tensor(np.asarray(a[:, start:start + steps], np.float64)).swapaxes(0, 1)


def random_qkv(shape, steps: int, batch: int, seed: int, rate: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, 3 * shape[0], *shape[1:], generator=g, dtype=torch.float64) < rate).double()


def membrane_ties(x: np.ndarray, tau: float, vth: float) -> int:
    """How many (step, element) of a MultiStepLIF driven by ``x [T, ...]`` have ``H == vth`` exactly."""
    v = np.zeros_like(x[0])
    ties = 0
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        ties += int((h == vth).sum())
        v = np.where(h >= vth, 0.0, h)
    return ties


def core_drive(module, q, k, v) -> np.ndarray:
    """The input of the core's LIF (v1: the token sums of K V; v2: scale Q (K^T V)), ``[T, B, ...]``."""
    if module.form == "v1":
        return (k * v).flatten(3).sum(3).numpy()
    t, b, c, hh, ww = q.shape
    d = c // module.heads

    def split(s):
        return s.reshape(t, b, module.heads, d, hh * ww).transpose(-1, -2)

    return ((split(q) @ (split(k).transpose(-2, -1) @ split(v))) * module.scale).numpy()


def randomized(cls, channels: int, heads: int, seed: int):
    """A float64 eval-mode module with random conv weights and BN statistics (Q/K/V fire at useful rates)."""
    torch.manual_seed(seed)
    m = cls(channels, heads).double().eval()
    with torch.no_grad():
        for conv in (m.q_conv, m.k_conv, m.v_conv, m.proj):
            conv.conv.weight.normal_(0.0, 1.0)
            conv.bn.running_mean.uniform_(-0.5, 0.5)
            conv.bn.running_var.uniform_(0.5, 1.5)
            conv.bn.weight.uniform_(0.8, 1.6)
            conv.bn.bias.uniform_(0.4, 1.2)
    return m


CORE_CASES = [("v1", 8, 1, (2, 3), "auto"), ("v1", 8, 4, (2, 2), "auto"), ("v2", 8, 1, (2, 2), "triple"),
              ("v2", 8, 2, (2, 3), "triple"), ("v2", 8, 4, (3, 2), "triple"), ("v2", 8, 1, (2, 2), "bits"),
              ("v2", 8, 2, (3, 3), "bits"), ("v2", 8, 2, (4, 4), "bits")]
LATENCY = {("v1", "auto"): V1_LATENCY, ("v2", "triple"): V2_LATENCY, ("v2", "bits"): V2_BITS_LATENCY}
STEPS, BATCH = 6, 8


# ----------------------------------------------------------------------------------------- (a) + (b): core
@pytest.mark.parametrize("form,channels,heads,hw,method", CORE_CASES)
def test_core_float_and_quantized_equal_torch(form, channels, heads, hw, method):
    shape = (channels, *hw)
    module = FORMS[form](channels, heads).double().eval()
    graph, low = core_graph(module, shape, STEPS, method)
    assert low.latency == LATENCY[form, method] - 1
    start = 1 + low.latency  # relay + core
    x = random_qkv(shape, STEPS, BATCH, seed=heads + 10 * len(form), rate=0.6 if form == "v2" else 0.35)
    q, k, v = x.split(channels, dim=2)
    with torch.no_grad():
        ref = module.core(q, k, v)
    lif = module.talking_heads_lif if form == "v1" else module.attn_lif
    ties = membrane_ties(core_drive(module, q, k, v), lif.tau, lif.vth)
    assert ties > 0, "the inputs must put the attention LIF exactly on its threshold somewhere"
    assert 0 < float(ref.mean()) < 1
    stim = emu_layout(x, start)
    res = simulate(graph, stim, arithmetic="float")
    out = res.outputs["out"]
    assert not out[:, :start].any()
    np.testing.assert_array_equal(torch_layout(out, start, STEPS).numpy(), ref.numpy())

    art = compile_graph(graph, "emulator", calibration=stim)
    assert art.graph.quantized
    res_int = simulate(art.graph, stim.astype(np.uint8))
    assert res_int.arithmetic == "int"
    np.testing.assert_array_equal(torch_layout(res_int.outputs["out"], start, STEPS).numpy(), ref.numpy())


def test_v1_talking_heads_fires_on_a_single_coincidence():
    """The threshold tie of the talking-heads LIF: one K V coincidence (count 1, H = 1/2 = vth) must fire."""
    module = SDSAv1(4, 2).double().eval()
    shape = (4, 1, 2)
    graph, low = core_graph(module, shape, 3)
    x = torch.zeros(3, 1, 12, 1, 2, dtype=torch.float64)
    x[0, 0, 0:4, 0, 0] = 1  # Q all on at token 0
    x[0, 0, 4 + 1, 0, 1] = 1  # K[c=1, token 1]
    x[0, 0, 8 + 1, 0, 1] = 1  # V[c=1, token 1] -> count 1 in channel 1
    x[1, 0, 0:4, 0, 0] = 1  # step 1: Q again, no coincidence -> nothing (the membrane was reset)
    with torch.no_grad():
        ref = module.core(*x.split(4, dim=2))
    assert ref[0, 0, 1, 0, 0] == 1 and ref.sum() == 1
    start = 1 + low.latency
    stim = emu_layout(x, start)
    for g in (graph, compile_graph(graph, "emulator", calibration=stim).graph):
        out = simulate(g, stim if not g.quantized else stim.astype(np.uint8)).outputs["out"]
        np.testing.assert_array_equal(torch_layout(out, start, 3).numpy(), ref.numpy())


def test_v2_tie_needs_the_steps_grid_after_quantization():
    """count 8 at scale 1/8 gives H = 1/2 = vth exactly: torch fires. With ``steps`` the grid threshold fires in
    float and integers; without it the float IR (nextafter rule) still fires but the note says ties are lost."""
    module = LinearAttentionV2(8, 1).double().eval()  # d = 8
    shape = (8, 1, 1)  # one token: X = scale * sum_i Q_i K_i V_j
    x = torch.zeros(2, 1, 24, 1, 1, dtype=torch.float64)
    x[0, 0, :] = 1  # Q, K, V all on: count 8 -> X = 1 -> H = 0.5
    with torch.no_grad():
        ref = module.core(*x.split(8, dim=2))
    assert ref[0].all() and not ref[1].any()
    graph, low = core_graph(module, shape, 2)
    start = 1 + low.latency
    stim = emu_layout(x, start)
    art = compile_graph(graph, "emulator", calibration=stim)
    out = simulate(art.graph, stim.astype(np.uint8)).outputs["out"]
    np.testing.assert_array_equal(torch_layout(out, start, 2).numpy(), ref.numpy())
    graph_none = Graph({"x": Input(shape=shape)}, [])
    low_none = lower_attention(graph_none, module, "x", "a")  # no steps anywhere
    assert any("T unknown" in n for n in low_none.notes)


# ----------------------------------------------------------------------------------- (a) + (b): whole module
@pytest.mark.parametrize("form,heads,shape,method", [("v1", 2, (8, 2, 2), "auto"), ("v2", 2, (8, 2, 2), "triple"),
                                                     ("v2", 4, (16, 3, 2), "triple"), ("v2", 2, (8, 3, 3), "bits")])
def test_module_float_exact_and_quantized_core_exact(form, heads, shape, method):
    channels = shape[0]
    module = randomized(FORMS[form], channels, heads, seed=7 + heads)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(STEPS, BATCH, *shape, generator=g, dtype=torch.float64) < 0.5).double()
    with torch.no_grad():
        q, k, v = module.qkv(x)
        ref = module.core(q, k, v)
        y = module(x)
    assert 0 < float(ref.mean()) < 1 and all(0 < float(s.mean()) < 1 for s in (q, k, v))
    graph, low = module_graph(module, shape, STEPS, method)
    assert low.latency == LATENCY[form, method]
    stim = emu_layout(x, low.latency)
    watch = [*low.qkv.values(), low.spikes]
    res = simulate(graph, stim, record=("spikes",), nodes=watch, arithmetic="float")
    for key, t_ref in zip("qkv", (q, k, v), strict=True):
        got = res.recorded[f"{low.qkv[key]}/spikes"]
        assert not got[:, :1].any()
        np.testing.assert_array_equal(torch_layout(got, 1, STEPS).numpy(), t_ref.numpy(), err_msg=key)
    out = res.outputs["out"]
    assert not out[:, :low.latency].any()
    np.testing.assert_array_equal(torch_layout(out, low.latency, STEPS).numpy(), ref.numpy())
    # the projection handed to the caller reproduces torch's output from the attention spikes
    proj = np.einsum("oc,tbchw->tbohw", low.projection_weight, ref.numpy()) + low.projection_bias[:, None, None]
    np.testing.assert_allclose(proj, y.numpy(), rtol=0, atol=1e-12)  # float64, another summation order

    art = compile_graph(graph, "emulator", calibration=stim)
    proof = verify_quantized(graph, art.graph, low, steps=STEPS)
    core = {n: r for n, r in proof.items() if low.parts[n] != "qkv"}
    assert core and all(r["exact"] for r in core.values()), core
    assert all(not proof[n]["exact"] and "approximate" in proof[n]["why"] for n in low.qkv.values())
    res_int = simulate(art.graph, stim.astype(np.uint8), record=("spikes",), nodes=watch)
    qi, ki, vi = (torch_layout(res_int.recorded[f"{low.qkv[key]}/spikes"], 1, STEPS) for key in "qkv")
    with torch.no_grad():
        ref_int = module.core(qi, ki, vi)
    assert float(ref_int.mean()) > 0
    np.testing.assert_array_equal(torch_layout(res_int.outputs["out"], low.latency, STEPS).numpy(),
                                  ref_int.numpy())


def test_verify_quantized_rejects_broken_integers():
    """The static proof fails, naming the reason, when a threshold or a weight leaves the exact range."""
    module = LinearAttentionV2(8, 2).double().eval()
    graph, low = core_graph(module, (8, 3, 3), STEPS, "bits")
    stim = emu_layout(random_qkv((8, 3, 3), STEPS, 2, seed=1, rate=0.6), 1 + low.latency)
    art = compile_graph(graph, "emulator", calibration=stim)
    assert all(r["exact"] for r in verify_quantized(graph, art.graph, low, steps=STEPS).values())
    gate = art.graph.nodes["attn.gate0"]
    nodes = dict(art.graph.nodes)
    nodes["attn.gate0"] = gate.replace(vth=int(2 * gate.quant.scale) + 1)  # above 2 inputs: an AND never fires
    syn = nodes["attn.gate1->attn.attn_lif"]
    value = np.asarray(syn.value).copy()
    value[0] += 1
    nodes["attn.gate1->attn.attn_lif"] = syn.replace(value=value)
    proof = verify_quantized(graph, Graph(nodes, art.graph.edges), low, steps=STEPS)
    assert not proof["attn.gate0"]["exact"] and "vth_int" in proof["attn.gate0"]["why"]
    assert not proof["attn.attn_lif"]["exact"] and "ratios differ" in proof["attn.attn_lif"]["why"]
    assert not verify_quantized(graph, art.graph, low, steps=None)["attn.attn_lif"]["exact"]


# ----------------------------------------------------------------------------------------------- costs
def test_costs_count_the_graph_and_follow_the_formulas():
    c, heads, shape = 8, 2, (8, 2, 2)
    n, d = 4, 4
    for form, cls in FORMS.items():
        graph, low = module_graph(cls(c, heads).double().eval(), shape, STEPS)
        by = low.cost["by_part"]
        assert by["qkv"] == {"neurons": 3 * c * n, "synapses": 3 * c * c * n}
        if form == "v1":
            assert by["kv_and"] == {"neurons": c * n, "synapses": 2 * c * n}
            assert by["talking_heads"] == {"neurons": c, "synapses": c * n}
            assert by["mask_and"] == {"neurons": c * n, "synapses": 2 * c * n}
            assert low.cost["dense_macs"] == 2 * c * n
        else:  # N = 4: auto picks the triple-AND array (fewer neurons than the bit planes)
            tri = heads * n * n * d * d
            assert tri == v2_neurons("triple", heads, n, d) < v2_neurons("bits", heads, n, d)
            assert by["qkv_and"] == {"neurons": tri, "synapses": 3 * tri}
            assert by["attn_lif"] == {"neurons": c * n, "synapses": tri}
            assert low.cost["dense_macs"] == 2 * heads * n * d * d
        own = [name for name in low.nodes]
        assert sum(graph.nodes[x].size for x in own if graph.nodes[x].role == "neuron") == low.cost["neurons"]
        art = compile_graph(graph, "loihi2", calibration=emu_layout(random_qkv(shape, 4, 2, 0)[:, :, :c], 4))
        rows = cost_table({"blocks.0": low}, art.graph.meta["mapping"])
        total = [r for r in rows if r["part"] == "total"][0]
        mapped = [x["node"] for x in art.graph.meta["mapping"]["per_core"] if x["node"] in low.nodes]
        assert total["cores"] == len(mapped) > 0
        assert total["neurons"] == low.cost["neurons"] and total["synapses"] == low.cost["synapses"]
        assert "qkv" in format_cost_table(rows)


def test_v2_bits_cost_and_auto_choice():
    """Bit planes: heads d^2 (2N + B + N B) neurons with B = bits of N; chosen by ``auto`` once cheaper (N = 16)."""
    c, heads, shape = 8, 2, (8, 4, 4)
    n, d, nb = 16, 4, 5
    graph, low = module_graph(LinearAttentionV2(c, heads).double().eval(), shape, STEPS)
    assert low.latency == V2_BITS_LATENCY and "bit-plane" in low.notes[-1]
    by = low.cost["by_part"]
    pairs = heads * d * d
    assert by["kv_and"] == {"neurons": n * pairs, "synapses": 2 * n * pairs}
    assert by["kv_count"] == {"neurons": n * pairs, "synapses": n * n * pairs}
    # bit k of A reads the thermometer levels r where bit k of r differs from bit k of r - 1
    flips = sum(int(((r >> k) & 1) != (((r - 1) >> k) & 1)) for k in range(nb) for r in range(1, n + 1))
    assert by["kv_bits"] == {"neurons": nb * pairs, "synapses": flips * pairs}
    assert by["gates"] == {"neurons": nb * n * pairs, "synapses": 2 * nb * n * pairs}
    assert by["attn_lif"] == {"neurons": c * n, "synapses": nb * n * pairs}
    assert low.cost["neurons"] - by["qkv"]["neurons"] - c * n == v2_neurons("bits", heads, n, d) \
        < v2_neurons("triple", heads, n, d)


# ----------------------------------------------------------------------------------------------- (d) errors
def test_named_errors():
    graph = Graph({"x": Input(shape=(8, 2, 2))}, [])
    with pytest.raises(ConversionError, match="not an SDSAv1"):
        lower_attention(graph, torch.nn.Linear(2, 2), "x", "a")
    with pytest.raises(ConversionError, match="channels"):
        lower_attention(graph, SDSAv1(4, 2), "x", "a")
    with pytest.raises(IRError, match="not in the graph"):
        lower_attention(graph, SDSAv1(8, 2), "nope", "a")
    bad = SDSAv1(8, 2)
    bad.talking_heads_lif.tau = 3.0
    with pytest.raises(ConversionError, match="tau = 2"):
        lower_attention(graph, bad, "x", "a")
    with pytest.raises(ConversionError, match="divisible"):
        LinearAttentionV2(6, 4)
    with pytest.raises(ConversionError, match="unknown v2 lowering"):
        lower_attention(graph, LinearAttentionV2(8, 2), "x", "c", v2_method="graded")
    with pytest.raises(ConversionError, match="steps"):
        lower_attention(graph, LinearAttentionV2(8, 2), "x", "b", steps=0)
    flat = Graph({"y": Input(shape=(32,))}, [])
    with pytest.raises(ConversionError, match=r"\(C, H, W\)"):
        lower_attention(flat, SDSAv1(8, 2), "y", "a")
    lower_attention(graph, SDSAv1(8, 2), "x", "a")
    with pytest.raises(IRError, match="already exists"):
        lower_attention(graph, SDSAv1(8, 2), "x", "a")


# --------------------------------------------------------------------------------------- (c) Lava fixture
def fixture_graphs() -> dict[str, np.ndarray]:
    """The quantized graphs and stimuli the Lava test runs: the v1 and v2 cores (with ties) and a whole v2 module."""
    from neurodeploy.ir.serialize import graph_to_bytes

    arrays: dict[str, np.ndarray] = {}
    cases = {"v1_core": ("v1", 2, (2, 2), "auto"), "v2_core": ("v2", 2, (2, 2), "triple"),
             "v2_bits_core": ("v2", 2, (3, 3), "bits")}
    for name, (form, heads, hw, method) in cases.items():
        shape = (8, *hw)
        module = FORMS[form](8, heads).double().eval()
        graph, low = core_graph(module, shape, STEPS, method)
        stim = emu_layout(random_qkv(shape, STEPS, 2, seed=5, rate=0.6 if form == "v2" else 0.35),
                          1 + low.latency).astype(np.uint8)
        art = compile_graph(graph, "emulator", calibration=stim)
        arrays[f"{name}/graph"] = np.frombuffer(graph_to_bytes(art.graph), np.uint8)
        arrays[f"{name}/spikes"] = stim
    module = randomized(LinearAttentionV2, 8, 2, seed=9)
    graph, low = module_graph(module, (8, 2, 2), STEPS)
    x = (torch.rand(STEPS, 2, 8, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) < 0.5)
    stim = emu_layout(x.double(), low.latency).astype(np.uint8)
    art = compile_graph(graph, "emulator", calibration=stim)
    arrays["v2_module/graph"] = np.frombuffer(graph_to_bytes(art.graph), np.uint8)
    arrays["v2_module/spikes"] = stim
    return arrays


def test_lava_fixture_is_the_current_lowering():
    assert FIXTURE.is_file(), f"missing {FIXTURE}: run .venv/bin/python tests/test_sdt_attention.py"
    stored = np.load(FIXTURE)
    fresh = fixture_graphs()
    assert set(stored.files) == set(fresh)
    for key, value in fresh.items():
        np.testing.assert_array_equal(stored[key], value, err_msg=f"{key}: regenerate the fixture")
    from neurodeploy.ir.serialize import graph_from_bytes

    # the Lava test needs activity in every coincidence array
    for case in ("v1_core", "v2_core", "v2_bits_core", "v2_module"):
        res = simulate(graph_from_bytes(fresh[f"{case}/graph"].tobytes()), fresh[f"{case}/spikes"],
                       record=("spikes",))
        assert res.outputs["out"].any(), case
        assert all(res.recorded[k].any() for k in res.recorded if k.endswith("_and/spikes")), case


if __name__ == "__main__":
    from neurodeploy.fileio import write_bytes_atomic

    buf = io.BytesIO()
    np.savez_compressed(buf, **fixture_graphs())
    write_bytes_atomic(FIXTURE, buf.getvalue())
    print(f"wrote {FIXTURE}")
