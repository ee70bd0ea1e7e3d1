"""A synapse op's weights split by delay and stored column by column, built in one ``O(nnz)`` pass.

For an op with stored entries ``(r_k, c_k, w_k, d_k)`` (row = post-synaptic neuron, column = pre-synaptic source,
weight, delay), the *bucket* of delay ``d`` is the matrix::

    W_d[r, c] = sum of w_k over the entries k with r_k = r, c_k = c, d_k = d      (duplicates summed in float64)

Every delay that occurs gets one bucket, in increasing order. All buckets are held together in compressed-column
form: column ``c`` of bucket ``b`` is ``rows[ptr[b n_in + c] : ptr[b n_in + c + 1]]`` (strictly increasing) with
the weights at the same positions of ``vals``. This is what both emulator engines execute: the compiled kernel adds
the columns of the active pre-synaptic sources (event-driven), the numpy engine turns each bucket into scipy
matrices (:meth:`ColumnBuckets.scipy`).

Construction is a counting sort by ``(bucket, column)`` (stable: entries keep their stored order inside a column),
then, column by column, a check that the rows are strictly increasing -- true for ops stored sorted by (row, column)
or by (column, row), as the quantize pass and the generators leave them -- else a stable sort of that column and
the summing of repeated rows. It runs in numba (imported on first use, compiled once per machine with
``cache=True``) on the op's own index arrays, without int64 copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from neurodeploy.errors import IRError
from neurodeploy.ir.compiled import compiled


@dataclass
class ColumnBuckets:
    """The delay buckets of one synapse op (module docstring). ``fanout[c]``: stored entries of column ``c`` with a
    nonzero weight (duplicates counted separately, as each is a synapse), summed over delays."""

    n_out: int
    n_in: int
    delays: np.ndarray  # int64 [n_buckets], increasing
    ptr: np.ndarray  # int64 [n_buckets * n_in + 1]
    rows: np.ndarray  # uint32 [nnz]
    vals: np.ndarray  # float64 [nnz] (integer mode: replaced by the effective int16 weights)
    fanout: np.ndarray  # int64 [n_in]

    @property
    def max_delay(self) -> int:
        return int(self.delays[-1]) if self.delays.size else 0

    def column_pointers(self, bucket: int) -> np.ndarray:
        """The ``n_in + 1`` column starts of ``bucket``, as offsets into :attr:`rows` / :attr:`vals`."""
        return self.ptr[bucket * self.n_in:(bucket + 1) * self.n_in + 1]

    def scipy(self, bucket: int) -> sp.csc_matrix:
        """Bucket ``bucket`` as a float64 scipy CSC matrix ``[n_out, n_in]`` (indices rebased to 0)."""
        cp = self.column_pointers(bucket)
        lo, hi = int(cp[0]), int(cp[-1])
        m = sp.csc_matrix((self.vals[lo:hi].astype(np.float64), self.rows[lo:hi].astype(np.int32), cp - lo),
                          shape=(self.n_out, self.n_in))
        m.has_sorted_indices = True
        m.has_canonical_format = True
        return m


def nonzero_pattern(cb: ColumnBuckets) -> tuple[np.ndarray, np.ndarray]:
    """``(ptr, rows)`` of the entries of a one-bucket :class:`ColumnBuckets` whose summed weight is not 0 (CSC,
    ``n_in + 1`` column pointers, sorted rows)."""
    ptr = np.empty(cb.n_in + 1, np.int64)
    rows = np.empty(cb.rows.size, np.uint32)
    kept = compiled(_nonzero)(cb.column_pointers(0), cb.rows, cb.vals, ptr, rows)
    return ptr, rows[:kept]


def pattern_union(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The union of two CSC patterns ``(ptr, rows)`` of the same shape (sorted rows, each position once)."""
    ptr = np.empty_like(a[0])
    rows = np.empty(a[1].size + b[1].size, np.uint32)
    kept = compiled(_union)(a[0], a[1], b[0], b[1], ptr, rows)
    return ptr, rows[:kept]


def column_buckets(rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None, delays: np.ndarray | None,
                   n_out: int, n_in: int, node: str | None = None) -> ColumnBuckets:
    """Build the :class:`ColumnBuckets` of entries ``(rows, cols, values, delays)`` (1-D, equal length; ``delays``
    ``None`` means all zero, a length-1 array one delay for all). Indices must lie in ``[0, n_out)`` / ``[0, n_in)``
    and delays be integers >= 0; anything else raises :class:`~neurodeploy.errors.IRError` naming ``node`` and the
    first offending entry (checked inside the compiled passes, before any entry is placed). ``values=None`` builds
    the pattern only: ``vals`` is empty, repeated positions are kept once and ``fanout`` counts every stored
    entry."""
    rows, cols = np.ravel(rows), np.ravel(cols)
    has_values = values is not None
    values = np.ravel(values) if has_values else np.zeros(0)
    nnz = rows.size
    if delays is None or np.size(delays) == 0:
        delays = np.zeros(1, np.int64)
    delays = np.ravel(delays)
    uniform = delays.size == 1 and nnz != 1
    _check_entries(rows, cols, values if has_values else None, delays, uniform, node)
    if nnz == 0:
        present = np.zeros(1, np.int64)
    elif uniform:
        present = np.array([int(delays[0])], np.int64)
    else:
        hist = compiled(_delay_histogram)(delays, int(delays.max()))
        present = np.flatnonzero(hist).astype(np.int64)
    lut = np.full(int(present[-1]) + 1, -1, np.int64)
    lut[present] = np.arange(present.size)
    n_groups = present.size * n_in
    starts = np.zeros(n_groups + 1, np.int64)
    fanout = np.zeros(n_in, np.int64)
    bad = compiled(_count)(rows, cols, delays, uniform, values, has_values, lut, n_out, n_in, starts, fanout)
    if bad >= 0:
        raise IRError(f"synapse entry {bad} connects neuron {int(rows[bad])} to source {int(cols[bad])}, outside "
                      f"the op's {n_out} targets x {n_in} sources", node=node,
                      fix="keep every row index in [0, n_out) and every column index in [0, n_in)")
    np.cumsum(starts, out=starts)
    out_rows = np.empty(nnz, np.uint32)
    out_vals = np.empty(nnz if has_values else 0, np.float64)
    compiled(_scatter)(rows, cols, values, has_values, delays, uniform, lut, n_in, starts[:-1].copy(), out_rows,
                       out_vals)
    ptr = np.empty_like(starts)
    kept = compiled(_canonical)(starts, out_rows, out_vals, has_values, ptr)
    if kept < nnz:  # repeated (row, column, delay) entries were summed
        out_rows, out_vals = out_rows[:kept].copy(), out_vals[:kept].copy()
    return ColumnBuckets(int(n_out), int(n_in), present, ptr, out_rows, out_vals, fanout)


def entry_arrays(op, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None,
                                                         tuple[int, int]]:
    """``(rows, cols, values, delays, shape)`` of a synapse op for :func:`column_buckets`: a Sparse op's own arrays
    (no copies; ``delays`` ``None`` or length 1 when not per entry), other ops through
    :func:`neurodeploy.ir.linear.synapse_entries`."""
    from neurodeploy.ir.linear import synapse_entries
    from neurodeploy.ir.ops import Sparse

    if isinstance(op, Sparse):
        delays = None if op.delays is None else np.asarray(op.delays)
        return (np.asarray(op.row), np.asarray(op.col), np.asarray(op.value), delays,
                (int(math.prod(op.out_shape)), int(op.in_size)))
    rows, cols, values, delays, shape = synapse_entries(op, in_shape)
    return rows, cols, values, delays, shape


def _check_entries(rows, cols, values, delays, uniform: bool, node: str | None) -> None:
    """Shapes and dtypes the compiled passes rely on (they do no bounds checks of their own)."""
    fix = "give row, col (and value, delays) one entry per synapse, as integers (delays >= 0)"
    n = rows.size
    if cols.size != n or (values is not None and values.size != n) or not (uniform or delays.size == n):
        sizes = f"row {n}, col {cols.size}" + ("" if values is None else f", value {values.size}") + \
            f", delays {delays.size}"
        raise IRError(f"synapse entry arrays differ in length ({sizes})", node=node, fix=fix)
    for label, arr in (("row", rows), ("col", cols), ("delays", delays)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise IRError(f"synapse {label} indices must be integers, got {arr.dtype}", node=node, fix=fix)
    if delays.size and int(delays.min()) < 0:
        raise IRError(f"synaptic delay {int(delays.min())} is negative", node=node, fix=fix)


# --- numba kernels (compiled by ir.compiled) -----------------------------------------------------------------------

def _delay_histogram(delays, max_delay):  # pragma: no cover - compiled by numba
    hist = np.zeros(max_delay + 1, np.int64)
    for x in range(delays.shape[0]):
        hist[delays[x]] += 1
    return hist


def _count(rows, cols, delays, uniform, values, has_values, lut, n_out, n_in, starts,
           fanout):  # pragma: no cover - compiled by numba
    """``starts[g + 1]`` = entries of group ``g = bucket * n_in + column``; ``fanout`` per column. Returns the
    first entry whose row or column is out of range (nothing placed beyond it), or -1."""
    for x in range(cols.shape[0]):
        b = lut[delays[0]] if uniform else lut[delays[x]]
        c = cols[x]
        r = rows[x]
        if c < 0 or c >= n_in or r < 0 or r >= n_out:
            return x
        starts[b * n_in + c + 1] += 1
        if not has_values or values[x] != 0:
            fanout[c] += 1
    return -1


def _scatter(rows, cols, values, has_values, delays, uniform, lut, n_in, pos, out_rows,
             out_vals):  # pragma: no cover - compiled by numba
    """Stable counting-sort placement of every entry at its group's next free position."""
    for x in range(cols.shape[0]):
        b = lut[delays[0]] if uniform else lut[delays[x]]
        g = b * n_in + cols[x]
        p = pos[g]
        out_rows[p] = rows[x]
        if has_values:
            out_vals[p] = values[x]
        pos[g] = p + 1


def _canonical(starts, out_rows, out_vals, has_values, ptr):  # pragma: no cover - compiled by numba
    """Per group: sort the rows (stable) unless already strictly increasing, sum repeated rows (pattern only:
    keep one), compact in place into ``ptr``; returns the number of entries kept."""
    w = 0
    n_groups = starts.shape[0] - 1
    for g in range(n_groups):
        a = starts[g]
        b = starts[g + 1]
        ordered = True
        for x in range(a + 1, b):
            if out_rows[x] <= out_rows[x - 1]:
                ordered = False
                break
        if not ordered:
            order = np.argsort(out_rows[a:b], kind="mergesort")
            r = out_rows[a:b][order]
            out_rows[a:b] = r
            if has_values:
                v = out_vals[a:b][order]
                out_vals[a:b] = v
        ptr[g] = w
        x = a
        while x < b:
            r0 = out_rows[x]
            acc = out_vals[x] if has_values else 0.0
            x += 1
            while x < b and out_rows[x] == r0:
                if has_values:
                    acc += out_vals[x]
                x += 1
            out_rows[w] = r0
            if has_values:
                out_vals[w] = acc
            w += 1
    ptr[n_groups] = w
    return w


def _nonzero(ptr, rows, vals, out_ptr, out_rows):  # pragma: no cover - compiled by numba
    w = 0
    for j in range(ptr.shape[0] - 1):
        out_ptr[j] = w
        for x in range(ptr[j], ptr[j + 1]):
            if vals[x] != 0:
                out_rows[w] = rows[x]
                w += 1
    out_ptr[ptr.shape[0] - 1] = w
    return w


def _union(ptr_a, rows_a, ptr_b, rows_b, out_ptr, out_rows):  # pragma: no cover - compiled by numba
    """Per column, merge two strictly increasing row lists, each row once."""
    w = 0
    for j in range(ptr_a.shape[0] - 1):
        out_ptr[j] = w
        x, x1 = ptr_a[j], ptr_a[j + 1]
        y, y1 = ptr_b[j], ptr_b[j + 1]
        while x < x1 or y < y1:
            if y >= y1 or (x < x1 and rows_a[x] < rows_b[y]):
                out_rows[w] = rows_a[x]
                x += 1
            elif x >= x1 or rows_b[y] < rows_a[x]:
                out_rows[w] = rows_b[y]
                y += 1
            else:
                out_rows[w] = rows_a[x]
                x += 1
                y += 1
            w += 1
    out_ptr[ptr_a.shape[0] - 1] = w
    return w
