"""The delay buckets of :mod:`neurodeploy.ir.columns` equal an independent scipy construction (one COO matrix
per delay, duplicates summed), for unsorted entries with repeated (row, column, delay) triples, one delay for all,
no delay, empty ops and every index dtype the IR holds; and the float engines agree bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from neurodeploy.emulator import Program
from neurodeploy.ir import LI, CubaLIF, Dense, Graph, Input, Output, Sparse
from neurodeploy.ir.columns import column_buckets


def reference(rows, cols, values, delays, n_out, n_in) -> dict[int, np.ndarray]:
    """delay -> dense W_d, from scipy's duplicate-summing COO -> CSR conversion."""
    d = np.zeros(values.size, np.int64) if delays is None else np.broadcast_to(delays, values.shape)
    out = {}
    for delay in np.unique(d):
        keep = d == delay
        m = sp.coo_matrix((values[keep].astype(np.float64), (rows[keep], cols[keep])), shape=(n_out, n_in))
        out[int(delay)] = m.toarray()
    return out


def as_dense(cb, bucket: int) -> np.ndarray:
    return cb.scipy(bucket).toarray()


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.uint16])
@pytest.mark.parametrize("order", ["random", "row_major", "col_major"])
def test_buckets_equal_scipy(index_dtype, order):
    rng = np.random.default_rng(7)
    n_out, n_in, nnz = 40, 55, 900  # ~40 % density: many repeated (row, col) pairs across and within delays
    rows = rng.integers(0, n_out, nnz).astype(index_dtype)
    cols = rng.integers(0, n_in, nnz).astype(index_dtype)
    values = rng.normal(size=nnz).astype(np.float32)
    delays = rng.choice([0, 2, 3, 9], nnz).astype(np.int8)
    if order != "random":
        key = np.lexsort((cols, rows) if order == "row_major" else (rows, cols))
        rows, cols, values, delays = rows[key], cols[key], values[key], delays[key]
    cb = column_buckets(rows, cols, values, delays, n_out, n_in)
    ref = reference(rows, cols, values, delays, n_out, n_in)
    assert cb.delays.tolist() == sorted(ref) and cb.max_delay == 9
    for b, d in enumerate(cb.delays):
        # float64 sums of float32 values: scipy may add repeated entries in another order (last-bit differences)
        np.testing.assert_allclose(as_dense(cb, b), ref[int(d)], rtol=1e-12, atol=0)
        cp = cb.column_pointers(b)
        for j in range(n_in):
            r = cb.rows[cp[j]:cp[j + 1]]
            assert np.all(np.diff(r.astype(np.int64)) > 0)  # strictly increasing: duplicates summed
    expected_fanout = np.bincount(cols[values != 0].astype(np.int64), minlength=n_in)
    np.testing.assert_array_equal(cb.fanout, expected_fanout)


def test_integer_values_sum_exactly_and_special_delays():
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 6, 50), rng.integers(0, 4, 50)
    values = rng.integers(-9, 9, 50).astype(np.float64)
    for delays in (None, np.array([4]), rng.integers(0, 3, 50)):
        cb = column_buckets(rows, cols, values, delays, 6, 4)
        ref = reference(rows, cols, values, delays, 6, 4)
        for b, d in enumerate(cb.delays):
            np.testing.assert_array_equal(as_dense(cb, b), ref[int(d)])  # integers: exact in any order
    assert column_buckets(rows, cols, values, np.array([4]), 6, 4).delays.tolist() == [4]
    empty = column_buckets(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), None, 3, 5)
    assert empty.delays.tolist() == [0] and empty.rows.size == 0 and as_dense(empty, 0).shape == (3, 5)


def float_graph(rng) -> Graph:
    n_in, n_a, n_b = 60, 90, 12
    mask = rng.random((n_a, n_a)) < 0.1
    r, c = np.nonzero(mask)
    return Graph({"in": Input(shape=(n_in,)),
                  "fc": Dense(weight=rng.normal(0, 0.4, (n_a, n_in))),   # dense: BLAS-sized, run sparse in float
                  "a": CubaLIF(shape=(n_a,), du=0.3, dv=0.1, vth=1.0, bias=rng.normal(0, 0.05, n_a), reset="subtract"),
                  "rec": Sparse(out_shape=(n_a,), in_size=n_a, row=r, col=c, value=rng.normal(0, 0.3, r.size),
                                delays=rng.integers(0, 6, r.size)),
                  "fc2": Dense(weight=rng.normal(0, 0.3, (n_b, n_a))),
                  "b": LI(shape=(n_b,), du=0.2, dv=0.05),
                  "out": Output()},
                 [("in", "fc"), ("fc", "a"), ("a", "rec"), ("rec", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "out")])


def test_float_engines_agree_bit_for_bit():
    rng = np.random.default_rng(11)
    g = float_graph(rng)
    x = (rng.random((3, 50, 60)) < 0.15).astype(np.float64)
    program = Program(g, "float")
    ref = program.run(x, record=("spikes", "u", "v"), engine="numpy")
    got = program.run(x, record=("spikes", "u", "v"), engine="numba")
    assert (ref.engine, got.engine) == ("numpy", "numba")
    for key in ref.recorded:
        np.testing.assert_array_equal(ref.recorded[key], got.recorded[key], err_msg=key)
    np.testing.assert_array_equal(ref.outputs["out"], got.outputs["out"])
    assert ref.spike_counts == got.spike_counts and ref.spike_counts["a"] > 0
    assert ref.synaptic_ops == got.synaptic_ops
    assert program.run(x, engine="auto").engine == "numba"


def test_float_graded_stimulus_runs_numpy_and_says_why():
    from neurodeploy.errors import UnsupportedOpError

    rng = np.random.default_rng(2)
    program = Program(float_graph(rng), "float")
    x = rng.random((1, 10, 60))
    res = program.run(x)
    assert res.engine == "numpy" and "values other than 0 and 1" in res.engine_note
    with pytest.raises(UnsupportedOpError, match="values other than 0 and 1"):
        program.run(x, engine="numba")


def test_pattern_mode_keeps_each_position_once():
    rng = np.random.default_rng(5)
    rows, cols = rng.integers(0, 30, 400).astype(np.int32), rng.integers(0, 20, 400).astype(np.int32)
    cb = column_buckets(rows, cols, None, None, 30, 20)
    assert cb.vals.size == 0 and cb.delays.tolist() == [0]
    expected = sp.coo_matrix((np.ones(400), (rows, cols)), shape=(30, 20)).tocsc()
    expected.sum_duplicates()
    np.testing.assert_array_equal(cb.ptr, expected.indptr)
    np.testing.assert_array_equal(cb.rows, expected.indices)
    np.testing.assert_array_equal(cb.fanout, np.bincount(cols, minlength=20))  # every stored entry is a synapse


def test_runners_share_the_kernel_arrays_and_numpy_still_reads_them():
    """After a numba run the runners' columns are views into the lowered arrays (one copy in memory); a numpy
    run afterwards, which builds its matrices from them, gives the same result."""
    rng = np.random.default_rng(12)
    program = Program(float_graph(rng), "float")
    x = (rng.random((2, 30, 60)) < 0.2).astype(np.float64)
    first = program.run(x, record=("v",), engine="numba")
    low = program._lowered
    rec = program.synapses["rec"].columns
    assert np.shares_memory(rec.rows, low.rows) and np.shares_memory(rec.vals, low.vals)
    again = program.run(x, record=("v",), engine="numpy")
    for key in first.recorded:
        np.testing.assert_array_equal(first.recorded[key], again.recorded[key])


@pytest.mark.parametrize("edit, fragment", [
    ({"row": np.array([0, 7, 1])}, "Sparse row index 7 is outside [0, 3)"),
    ({"col": np.array([0, 2, -1])}, "Sparse col index -1 is outside [0, 4)"),
    ({"col": np.array([0, 2])}, "Sparse arrays differ in length: row 3, col 2, value 3"),
    ({"row": np.array([0.0, 1.0, 1.0])}, "row indices must be integers"),
    ({"delays": np.array([0, 1])}, "differ in length"),
])
def test_bad_entries_are_refused_before_the_compiled_passes_touch_memory(edit, fragment):
    """The compiled passes do no bounds checks: graph validation refuses malformed Sparse ops with an IRError naming
    the node (and column_buckets re-checks what it is given directly, below)."""
    from neurodeploy.errors import IRError

    fields = {"out_shape": (3,), "in_size": 4, "row": np.array([0, 2, 1]), "col": np.array([0, 2, 1]),
              "value": np.array([1.0, -2.0, 0.5])}
    fields.update(edit)
    g = Graph({"in": Input(shape=(4,)), "syn": Sparse(**fields), "n": LI(shape=(3,)), "out": Output()},
              [("in", "syn"), ("syn", "n"), ("n", "out")])
    with pytest.raises(IRError) as info:
        Program(g, "float")
    assert fragment in str(info.value) and "'syn'" in str(info.value)


def test_column_buckets_checks_what_it_is_given():
    from neurodeploy.errors import IRError

    with pytest.raises(IRError, match="entry 1 connects neuron 9 to source 0, outside the op's 3 targets x 2"):
        column_buckets(np.array([0, 9]), np.array([1, 0]), np.ones(2), None, 3, 2, node="s")
    with pytest.raises(IRError, match="differ in length"):
        column_buckets(np.array([0, 1]), np.array([1]), None, None, 3, 2)
    with pytest.raises(IRError, match="delay -1 is negative"):
        column_buckets(np.array([0, 1]), np.array([1, 0]), None, np.array([0, -1]), 3, 2)
