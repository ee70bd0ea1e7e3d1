"""Every linear op as an explicit sparse matrix ``M`` with ``y_flat = M @ x_flat`` (C-order flattening).

Used by the fold pass (to compose chains such as Conv2d -> AvgPool2d into one synapse) and by the emulator (to
execute convolutions). Integer matrices stay integer: the entries of a Conv2d matrix are the kernel's values.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from neurodeploy.errors import CapacityError, UnsupportedOpError
from neurodeploy.ir.ops import AvgPool2d, Conv2d, Dense, Flatten, Op, Scale, Shape, Sparse, SumPool2d

#: The most (kernel entry, output position) pairs a convolution or pooling matrix is built from: the index arrays
#: take 48 bytes per pair (2**28 pairs: 12 GiB), so larger windows are refused before anything is allocated.
MAX_WINDOW_ENTRIES = 2**28


def _window_matrix(in_shape: Shape, out_shape: Shape, kernel: np.ndarray, stride: tuple[int, int],
                   padding: tuple[int, int], dilation: tuple[int, int], groups: int) -> sp.csr_matrix:
    """Matrix of a grouped 2-D convolution with ``kernel[C_out, C_in/groups, kh, kw]`` (zero padding)."""
    c_in, h, w = in_shape
    c_out, h_out, w_out = out_shape
    _, cpg, kh, kw = kernel.shape
    entries = c_out * cpg * kh * kw * h_out * w_out
    if entries > MAX_WINDOW_ENTRIES:
        raise CapacityError(f"a window op of kernel {list(kernel.shape)} on input {list(in_shape)} spans {entries} "
                            f"synapses, more than {MAX_WINDOW_ENTRIES} (its index arrays alone would need "
                            f"{entries * 48 / 2**30:.0f} GiB)", fix="use a smaller input, kernel or channel count")
    out_per_group = c_out // groups
    o, c, i, j, y, x = np.meshgrid(np.arange(c_out), np.arange(cpg), np.arange(kh), np.arange(kw),
                                   np.arange(h_out), np.arange(w_out), indexing="ij")
    src_c = (o // out_per_group) * cpg + c
    src_y = y * stride[0] + i * dilation[0] - padding[0]
    src_x = x * stride[1] + j * dilation[1] - padding[1]
    values = kernel[o, c, i, j]
    keep = (src_y >= 0) & (src_y < h) & (src_x >= 0) & (src_x < w) & (values != 0)
    rows = np.ravel_multi_index((o[keep], y[keep], x[keep]), (c_out, h_out, w_out))
    cols = np.ravel_multi_index((src_c[keep], src_y[keep], src_x[keep]), (c_in, h, w))
    return sp.csr_matrix((values[keep], (rows, cols)), shape=(c_out * h_out * w_out, c_in * h * w))


def op_matrix(op: Op, in_shape: Shape) -> sp.csr_matrix:
    """The sparse matrix of linear or synapse op ``op`` applied to an input of shape ``in_shape``."""
    n_in = int(math.prod(in_shape))
    out_shape = op.output_shape(in_shape)
    if isinstance(op, Dense):
        return sp.csr_matrix(op.weight)
    if isinstance(op, Sparse):
        return sp.csr_matrix((op.value, (op.row, op.col)), shape=(int(math.prod(op.out_shape)), op.in_size))
    if isinstance(op, Conv2d):
        return _window_matrix(in_shape, out_shape, np.asarray(op.weight), op.stride, op.padding, op.dilation,
                              op.groups)
    if isinstance(op, SumPool2d | AvgPool2d):
        c = in_shape[0]
        kh, kw = op.kernel
        value = 1.0 if isinstance(op, SumPool2d) else 1.0 / (kh * kw)
        kernel = np.zeros((c, 1, kh, kw))
        kernel[:] = value
        return _window_matrix(in_shape, out_shape, kernel, op.stride, op.padding, (1, 1), c)
    if isinstance(op, Flatten):
        return sp.identity(n_in, format="csr")
    if isinstance(op, Scale):
        return sp.diags(np.broadcast_to(np.asarray(op.scale, float).ravel(), (n_in,))).tocsr()
    raise UnsupportedOpError(f"{op.op_type} is not a linear op", node=op.origin or None,
                             fix="only synapse and linear ops can be expressed as matrices")


def synapse_entries(op: Op, in_shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                      tuple[int, int]]:
    """``(rows, cols, values, delays, shape)`` of synapse op ``op``: one entry per stored synapse, ``shape =
    (n_out, n_in)``. Sparse keeps every stored entry (duplicates included, each with its own delay); Dense and
    Conv2d give the non-zero entries of :func:`op_matrix`. ``delays`` is per entry (zeros without delays)."""
    if isinstance(op, Sparse):
        rows, cols = np.asarray(op.row, np.int64), np.asarray(op.col, np.int64)
        values, shape = np.asarray(op.value), (int(math.prod(op.out_shape)), int(op.in_size))
    else:
        coo = op_matrix(op, in_shape).tocoo()
        rows, cols, values, shape = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data, coo.shape
    delays = getattr(op, "delays", None)
    if delays is None:
        delays = np.zeros(values.size, dtype=np.int64)
    elif isinstance(op, Dense):
        delays = np.asarray(delays, dtype=np.int64)[rows, cols]
    else:
        delays = np.broadcast_to(np.asarray(delays, dtype=np.int64).ravel(), values.shape)
    return rows, cols, values, delays, (int(shape[0]), int(shape[1]))


def inferred_sign_mode(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> str:
    """Lava's sign mode of a weight matrix given without one, decided once from the whole summed matrix:
    ``excitatory`` if every summed weight is >= 0 (or there is none), ``inhibitory`` if every one is <= 0, else
    ``mixed``."""
    merged = sp.csr_matrix((values, (rows, cols)), shape=shape).data
    if merged.size == 0 or merged.min() >= 0:
        return "excitatory"
    return "inhibitory" if merged.max() <= 0 else "mixed"
