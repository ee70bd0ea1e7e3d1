"""Linear expressions over spike sources: how the ONNX converter holds an ANN's tensors.

Between two ReLUs an ANN only applies linear maps (Gemm, Conv, BatchNorm, pooling, reshapes, Add, Concat), so every
tensor is a sum of *terms*, each a linear map of one *source* (a graph input or a ReLU population), plus a constant::

    x = sum_k c_k M_k a[s_k] + b

``a[s]`` is the source's ANN activation (flattened), ``M_k`` the matrix of a chain of IR linear/synapse ops
(:func:`neurodeploy.ir.linear.op_matrix`), ``c_k`` a scalar and ``b`` the bias, an array of the tensor's shape.
A ReLU turns an expression into a neuron population whose input edges are the terms; residual adds (two terms
into one neuron) and linear maps after an Add (distributed over the terms: ``M (x + y) = M x + M y``) need no
extra IR op. Scalars stay in ``c_k`` so that threshold balancing (scalar per population) can later fold them into
one weight op. Terms from one source are merged into one synapse when emitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from neurodeploy.ir.linear import op_matrix
from neurodeploy.ir.ops import Conv2d, Delay, Dense, Flatten, Op, Scale, Shape, Sparse


def size(shape: Shape) -> int:
    return int(math.prod(shape))


@dataclass(frozen=True, eq=False)
class Term:
    """``coef * M(ops) @ a[source]`` (``ops`` map the source's shape to the expression's shape)."""

    source: str
    ops: tuple[Op, ...] = ()
    coef: float = 1.0


@dataclass(eq=False)
class Expr:
    """``sum(terms) + bias`` with ``bias`` shaped ``shape`` (batch excluded)."""

    shape: Shape
    terms: list[Term] = field(default_factory=list)
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        bias = np.asarray(self.bias, dtype=np.float64)
        self.bias = np.zeros(self.shape) if bias.size == 0 else np.broadcast_to(bias, self.shape).astype(np.float64)


def source(name: str, shape: Shape) -> Expr:
    """The activation of a source itself: one term with no op."""
    return Expr(shape, [Term(name)], np.zeros(shape))


def apply(expr: Expr, op: Op, own_bias: np.ndarray | None = None) -> Expr:
    """``op(expr) + own_bias``: append ``op`` to every term; map the bias through ``op``'s matrix."""
    out_shape = tuple(op.output_shape(expr.shape))
    if isinstance(op, Flatten | Delay):
        bias = expr.bias.reshape(out_shape)
    else:
        bias = (op_matrix(op, expr.shape) @ expr.bias.ravel()).reshape(out_shape)
    if own_bias is not None:
        bias = bias + np.broadcast_to(own_bias, out_shape)
    return Expr(out_shape, [replace(t, ops=t.ops + (op,)) for t in expr.terms], bias)


def add(a: Expr, b: Expr) -> Expr:
    """``a + b`` for expressions of one shape."""
    return Expr(a.shape, a.terms + b.terms, a.bias + b.bias)


def scale(expr: Expr, factor: float | np.ndarray, origin: str = "") -> Expr:
    """``factor * expr``; ``factor`` a scalar or an array broadcastable to the expression's shape.

    A scalar goes into every term's ``coef``. An array is folded into the last op of a term when that op is a
    Dense (rows scaled) or a Conv2d and the factor is constant over (H, W) (output channels scaled) -- this is how a
    BatchNorm after a Conv/Gemm ends up in its weights; otherwise a :class:`Scale` op is appended.
    """
    arr = np.asarray(factor, dtype=np.float64)
    if arr.size == 1:
        f = float(arr.ravel()[0])
        return Expr(expr.shape, [replace(t, coef=t.coef * f) for t in expr.terms], expr.bias * f)
    full = np.broadcast_to(arr, expr.shape).astype(np.float64)
    return Expr(expr.shape, [_scale_term(t, full, origin) for t in expr.terms], expr.bias * full)


def _scale_term(term: Term, full: np.ndarray, origin: str) -> Term:
    last = term.ops[-1] if term.ops else None
    if isinstance(last, Dense) and last.delays is None:
        w = np.asarray(last.weight) * full.reshape(-1, 1)
        return replace(term, ops=term.ops[:-1] + (last.replace(weight=w),))
    if isinstance(last, Conv2d) and full.ndim == 3 and np.all(full == full[:, :1, :1]):
        k = full[:, 0, 0].reshape(-1, 1, 1, 1)
        return replace(term, ops=term.ops[:-1] + (last.replace(weight=np.asarray(last.weight) * k),))
    return replace(term, ops=term.ops + (Scale(scale=full.ravel().copy(), origin=origin),))


def reshape(expr: Expr, shape: Shape, origin: str) -> Expr:
    """Same data, new shape (C order): a Flatten for 1-D targets, else an identity Sparse with ``out_shape``."""
    shape = tuple(int(d) for d in shape)
    if shape == expr.shape:
        return expr
    if len(shape) == 1:
        return apply(expr, Flatten(start_dim=0, end_dim=-1, origin=origin))
    return apply(expr, sparse_op(sp.identity(size(shape), format="csr"), shape, origin))


def sparse_op(matrix: sp.spmatrix, out_shape: Shape, origin: str) -> Sparse:
    """A :class:`Sparse` op holding ``matrix`` (``[prod(out_shape), n_in]``)."""
    coo = sp.coo_matrix(matrix)
    coo.sum_duplicates()
    return Sparse(out_shape=tuple(int(d) for d in out_shape), in_size=int(coo.shape[1]),
                  row=coo.row.astype(np.int64), col=coo.col.astype(np.int64), value=coo.data.astype(np.float64),
                  origin=origin)


def select(expr: Expr, matrix: sp.spmatrix, out_shape: Shape, origin: str) -> Expr:
    """``matrix @ expr`` as an expression of shape ``out_shape`` (a Sparse op appended)."""
    return apply(expr, sparse_op(matrix, out_shape, origin))


class Matrices:
    """Composed chain matrices ``M(ops)`` per term (cached for the lifetime of one conversion)."""

    def __init__(self, shapes: dict[str, Shape]):
        self.shapes = shapes
        self._cache: dict[int, tuple[Term, sp.csr_matrix]] = {}

    def of(self, term: Term) -> sp.csr_matrix:
        hit = self._cache.get(id(term))
        if hit is not None and hit[0] is term:
            return hit[1]
        shape = self.shapes[term.source]
        m = sp.identity(size(shape), format="csr")
        for op in term.ops:
            if not isinstance(op, Flatten | Delay):
                m = (op_matrix(op, shape) @ m).tocsr()
            shape = tuple(op.output_shape(shape))
        self._cache[id(term)] = (term, m)
        return m

    def evaluate(self, expr: Expr, acts: dict[str, np.ndarray]) -> np.ndarray:
        """The expression's value ``[B, prod(shape)]`` given every source's activation ``[B, n_source]``."""
        batch = next(iter(acts.values())).shape[0] if acts else 1
        out = np.broadcast_to(expr.bias.ravel(), (batch, size(expr.shape))).copy()
        for t in expr.terms:
            out += t.coef * np.asarray((self.of(t) @ acts[t.source].T).T)
        return out

    def upper_bound(self, expr: Expr, upper: dict[str, np.ndarray]) -> np.ndarray:
        """Largest value of each element when every source activation ``a[s]`` lies in ``[0, upper[s]]``."""
        out = expr.bias.ravel().copy()
        for t in expr.terms:
            m = (t.coef * self.of(t)).tocsr()
            out += m.maximum(0) @ upper[t.source]
        return out
