"""build_netlist's memory-frugal lowering (one packed-key argsort, int32 indices, weights prepared in blocks) gives
exactly the projections of the previous code path (per-delay CSR matrices, stable argsort, lexsort), kept here as
the reference."""

import numpy as np
import pytest
import scipy.sparse as sp

from neurodeploy.backends.pynn import netlist as nl
from neurodeploy.ir import Conv2d, CubaLIF, Dense, Graph, Input, Output, QuantInfo, Sparse, linear
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.ops import SynapseOp

Q = QuantInfo(scale=100.0)


def _reference_entries(op, in_shape):
    """The previous ``synapse_entries``: one CSR matrix per delay (duplicates summed), Lava's effective weights."""
    rows, cols, values, delays, shape = linear.synapse_entries(op, in_shape)
    sign_mode = op.sign_mode or linear.inferred_sign_mode(rows, cols, values, shape)
    out_r, out_c, out_w, out_d = [], [], [], []
    for d in np.unique(delays) if delays.size else []:
        keep = delays == d
        m = sp.csr_matrix((values[keep].astype(np.float64), (rows[keep], cols[keep])), shape=shape)
        m.sum_duplicates()
        m.data = ar.effective_weights(np.rint(m.data).astype(np.int64), sign_mode, op.num_weight_bits).astype(float)
        m.eliminate_zeros()
        coo = m.tocoo()
        out_r.append(coo.row.astype(np.int64))
        out_c.append(coo.col.astype(np.int64))
        out_w.append(coo.data * 2.0 ** int(op.weight_exp))
        out_d.append(np.full(coo.nnz, int(d), np.int64))
    if not out_r:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), empty
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_w), np.concatenate(out_d)


def _reference_layers(pre, post):
    if pre.size == 0:
        return np.zeros(0, np.int64)
    key = pre * (int(post.max()) + 1) + post
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, sorted_key.size]))
    layer = np.empty(pre.size, np.int64)
    layer[order] = np.arange(pre.size) - run_start
    return layer


def _reference_projections(graph):
    """(label, pre, post, receptor, layer, pre_idx, post_idx, units, delay) of the previous build_netlist."""
    graph = nl._prepare(graph)
    shapes = graph.shapes()
    out = []
    for name, op in graph.nodes.items():
        if not isinstance(op, SynapseOp):
            continue
        (src,) = graph.predecessors(name)
        (post,) = [t for t in graph.successors(name) if graph.nodes[t].role == "neuron"]
        rows, cols, units, delays = _reference_entries(op, shapes[src])
        for receptor in nl.RECEPTORS:
            keep = units > 0 if receptor == "excitatory" else units < 0
            if not keep.any():
                continue
            pre_idx, post_idx, w, d = cols[keep], rows[keep], units[keep], delays[keep] + 1
            layer = _reference_layers(pre_idx, post_idx)
            order = np.lexsort((post_idx, pre_idx))
            pre_idx, post_idx, w, d, layer = pre_idx[order], post_idx[order], w[order], d[order], layer[order]
            for k in range(int(layer.max()) + 1):
                sel = layer == k
                out.append((f"{name}.{receptor[:3]}" + (f".{k}" if k else ""), src, post, receptor, k,
                            pre_idx[sel], post_idx[sel], w[sel], d[sel]))
    return out


def lif(n, **kw):
    return CubaLIF(shape=(n,), du=1000, dv=410, vth=200, quant=Q, **kw)


def messy_graph(seed=0):
    """Duplicates at equal and different delays, mixed signs that cancel, truncation (6 weight bits), weight
    exponents of both signs, float-stored mantissas, a Dense with delays, a Conv2d and a recurrent Sparse."""
    rng = np.random.default_rng(seed)
    k = 3000
    row, col = rng.integers(0, 40, k), rng.integers(0, 30, k)
    row[:200], col[:200] = row[200:400], col[200:400]  # exact duplicates ...
    delays = rng.integers(0, 6, k)
    delays[:100] = delays[200:300]  # ... half of them at the same delay
    syn = Sparse(out_shape=(40,), in_size=30, row=row, col=col, value=rng.integers(-140, 140, k), delays=delays,
                 num_weight_bits=6, weight_exp=-1, quant=Q)
    rec = Sparse(out_shape=(40,), in_size=40, row=rng.integers(0, 40, 500), col=rng.integers(0, 40, 500),
                 value=rng.integers(-30, 30, 500).astype(np.float64), delays=rng.integers(0, 3, 500),
                 sign_mode="mixed", weight_exp=2, quant=Q)
    fc = Dense(weight=np.where(rng.random((12, 40)) < 0.5, rng.integers(1, 200, (12, 40)), 0),
               delays=rng.integers(0, 4, (12, 40)), quant=Q)
    conv = Conv2d(weight=rng.integers(-20, 20, (2, 1, 3, 3)), quant=Q)
    return Graph({"in": Input(shape=(30,)), "syn": syn, "h": lif(40), "rec": rec, "fc": fc, "o": lif(12),
                  "img": Input(shape=(1, 6, 6)), "conv": conv, "c": CubaLIF(shape=(2, 4, 4), du=1000, dv=410,
                                                                                vth=200, quant=Q),
                  "out": Output(), "out2": Output()},
                 [("in", "syn"), ("syn", "h"), ("h", "rec"), ("rec", "h"), ("h", "fc"), ("fc", "o"), ("o", "out"),
                  ("img", "conv"), ("conv", "c"), ("c", "out2")]).validate()


def lsm_graph():
    from neurodeploy.families.lsm.scale import large_reservoir, lower_maxabs

    return lower_maxabs(large_reservoir(600, degree=30.0).graph(), "loihi2")


@pytest.mark.parametrize("make", [messy_graph, lsm_graph], ids=["messy", "lsm"])
def test_netlist_equals_the_previous_code_path(make):
    graph = make()
    ref = _reference_projections(graph)
    net = nl.build_netlist(graph)
    assert len(net.projections) == len(ref) and any(r[4] > 0 for r in ref) == (make is messy_graph)
    for p, (label, pre, post, receptor, layer, pre_idx, post_idx, units, delay) in zip(net.projections, ref):
        assert (p.label, p.pre, p.post, p.receptor, p.layer) == (label, pre, post, receptor, layer)
        for got, want in ((p.pre_idx, pre_idx), (p.post_idx, post_idx), (p.units, units), (p.delay, delay)):
            np.testing.assert_array_equal(got, want, err_msg=label)  # values, in the same order
        assert p.pre_idx.dtype == p.post_idx.dtype == p.delay.dtype == np.int32  # the memory saving
    assert sum(p.size for p in net.projections) > 3000


def test_a_packed_key_that_would_overflow_uses_the_lexsort():
    """in_size * out_size * delays >= 2**63: the same entries from np.lexsort, the same order."""
    n = 2 ** 31 + 5  # an input this large is never built: only its size enters the key
    rng = np.random.default_rng(3)
    row, col = rng.integers(0, 50, 400), rng.integers(0, n, 400)
    row[:50], col[:50] = row[50:100], col[50:100]
    syn = Sparse(out_shape=(50,), in_size=n, row=row, col=col, value=rng.integers(-100, 100, 400),
                 delays=rng.integers(0, 2 ** 31 - 1, 400), sign_mode="mixed", quant=Q)
    rows, cols, units, delays = nl.synapse_entries(syn, (n,))
    assert cols.dtype == np.int64  # an index beyond int32
    ref_r, ref_c, ref_w, ref_d = (np.asarray(a) for a in _reference_entries(syn, (n,)))
    order = np.lexsort((ref_d, ref_r, ref_c))
    for got, want in ((rows, ref_r), (cols, ref_c), (units, ref_w), (delays, ref_d)):
        np.testing.assert_array_equal(got, want[order])
