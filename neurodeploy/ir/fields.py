"""Type and range checks of every IR op field, run by :meth:`neurodeploy.ir.graph.Graph.validate` on each node.

Ops are plain dataclasses: nothing stops a converter, a hand-written script or a tampered ``.ndg`` file from putting
a list in ``dv``, ``10**30`` in ``weight_exp``, ``[-5]`` in a shape or NaN in a weight. This module checks each field
against its declared annotation, so that such values are refused with an :class:`~neurodeploy.errors.IRError`
naming the node and the field before any pass or backend computes with them:

* shapes (``Shape``): a tuple of integers, each in ``[1, MAX_ELEMENTS]``, with at most ``MAX_ELEMENTS`` elements in
  all (an empty tuple is a single value);
* pairs (``tuple[int, int]``: stride, padding, dilation, kernel): two integers, padding ``>= 0``, the others
  ``>= 1``, each at most ``MAX_ELEMENTS``;
* integers: whole numbers (``2`` or ``2.0``, not ``True`` or ``"2"``) inside the field's range in
  :data:`INT_RANGES` (int64 for the others);
* reals (``float``): real numbers (not complex, not a list or array); unless ``finite=False``, finite and at most
  :data:`MAX_MAGNITUDE` in magnitude;
* arrays: real numeric arrays (bool, integer or float dtype; not complex, string, object or structured); unless
  ``finite=False``, finite and at most :data:`MAX_MAGNITUDE` in magnitude;
  :data:`INTEGER_ARRAYS` must hold integers in their range;
* strings, booleans and :class:`~neurodeploy.ir.ops.QuantInfo` values of the right type.

Shape-dependent checks (a bias with one value per neuron, a weight with two dimensions, ...) live in each op's
``output_shape``; graph-level checks (edges, reachability) in :class:`~neurodeploy.ir.graph.Graph`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from numbers import Integral, Real
from typing import Any

import numpy as np

from neurodeploy.errors import IRError
from neurodeploy.ir.ops import Op, QuantInfo

#: The most elements one node (or one array dimension) may have: int32 indexing of the emulator and backends.
MAX_ELEMENTS = 2**31 - 1
#: The longest synaptic or axonal delay the IR represents, in steps (targets have their own, smaller limits).
MAX_DELAY = 2**16 - 1
_INT64 = (-(2**63), 2**63 - 1)
#: Largest magnitude of a real parameter when finite values are required: no trained model comes near it, and
#: beyond it the quantizer's products and sums of parameters overflow float64 (a corrupted file, not a model).
MAX_MAGNITUDE = 2.0**64

#: Ranges of integer fields (inclusive). Target profiles impose narrower ones in the limits pass; these bound
#: what the emulator's integer arithmetic can do without overflow.
INT_RANGES: dict[str, tuple[int, int]] = {
    "weight_exp": (-31, 31),
    "bias_exp": (-31, 31),
    "num_weight_bits": (1, 32),
    "num_message_bits": (0, 32),
    "groups": (1, MAX_ELEMENTS),
    "in_size": (1, MAX_ELEMENTS),
    "start_dim": (-64, 63),
    "end_dim": (-64, 63),
    "delays": (0, MAX_DELAY),
    "delay": (0, MAX_DELAY),
}
#: Array fields that must hold integers (a float dtype with whole values is refused: delays are counts of steps).
#: Sparse indices and Astrocyte tables are checked with their op (:meth:`Graph.validate`, ``output_shape``).
INTEGER_ARRAYS = frozenset({"delays", "delay"})
_PAIR_MIN = {"padding": 0}


def _fail(name: str, op: Op, fld: str, problem: str, fix: str) -> IRError:
    origin = f" (source layer '{op.origin}')" if getattr(op, "origin", "") and op.origin != name else ""
    return IRError(f"{op.op_type}{origin} field '{fld}' {problem}", node=name, fix=fix)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral | np.integer) and not isinstance(value, bool | np.bool_)


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole real number (``2``, ``2.0``, ``np.int8(2)``), else None."""
    if _is_int(value):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, Real | np.floating) and not isinstance(value, bool | np.bool_):
        as_float = float(value)
        if math.isfinite(as_float) and as_float == int(as_float):
            return int(as_float)
    return None


def shape_problem(shape: Any) -> str | None:
    """What is wrong with ``shape`` as an IR shape (see the module docstring), or None; converters use it to bound
    a source model's declared sizes before they allocate anything."""
    if not isinstance(shape, tuple | list):
        return f"must be a tuple of integers, got {_describe(shape)}"
    total = 1
    for dim in shape:
        if not _is_int(dim):
            return f"must hold integers, got {_describe(dim)} in {_describe(shape)}"
        if not 1 <= int(dim) <= MAX_ELEMENTS:
            return f"has the dimension {int(dim)}, outside [1, {MAX_ELEMENTS}]"
        total *= int(dim)
    if total > MAX_ELEMENTS:
        return f"{_describe(shape)} has {total} elements, more than {MAX_ELEMENTS} (no target holds that many)"
    return None


def _check_shape(name: str, op: Op, fld: str, value: Any) -> None:
    problem = shape_problem(value)
    if problem:
        raise _fail(name, op, fld, problem, "give the shape as positive whole numbers, e.g. [64] or [2, 28, 28]")


def _check_pair(name: str, op: Op, fld: str, value: Any) -> None:
    lo = _PAIR_MIN.get(fld, 1)
    fix = f"give two whole numbers >= {lo}, e.g. [1, 1]"
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise _fail(name, op, fld, f"must be a pair of integers, got {_describe(value)}", fix)
    for v in value:
        if not _is_int(v) or not lo <= int(v) <= MAX_ELEMENTS:
            raise _fail(name, op, fld, f"must hold integers in [{lo}, {MAX_ELEMENTS}], got {_describe(value)}", fix)


def _check_int(name: str, op: Op, fld: str, value: Any) -> None:
    lo, hi = INT_RANGES.get(fld, _INT64)
    whole = _whole(value)
    if whole is None:
        raise _fail(name, op, fld, f"must be an integer, got {_describe(value)}", f"set {fld} to a whole number")
    if not lo <= whole <= hi:
        raise _fail(name, op, fld, f"= {whole} is outside [{lo}, {hi}]", f"set {fld} inside [{lo}, {hi}]")


def _check_real(name: str, op: Op, fld: str, value: Any, finite: bool = True) -> None:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real | np.integer | np.floating):
        raise _fail(name, op, fld, f"must be a real number, got {_describe(value)} ({type(value).__name__})",
                    f"set {fld} to one number (per-neuron values are not supported for this field)")
    if finite and not math.isfinite(float(value)):
        raise _fail(name, op, fld, f"= {float(value)} is not finite", f"set {fld} to a finite number; check the "
                    "source model's parameters (an infinite threshold or gain silences the layer)")
    if finite and abs(float(value)) > MAX_MAGNITUDE:
        raise _fail(name, op, fld, f"= {float(value):.6g} exceeds {MAX_MAGNITUDE:.6g} in magnitude",
                    "check the source model's parameters (the file may be corrupt)")


def _all_finite(arr: np.ndarray) -> bool:
    """True when every entry is finite; one pass without a temporary for the usual (finite) case."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return True
    with np.errstate(all="ignore"):
        if math.isfinite(float(np.add.reduce(arr, axis=None, dtype=np.float64))):
            return True
    return bool(np.isfinite(arr).all())


def _check_array(name: str, op: Op, fld: str, value: Any, finite: bool = True) -> None:
    fix = f"store {fld} as a real numeric array (bool, integer or float)"
    try:
        arr = np.asarray(value)
    except Exception as err:  # ragged nested lists and the like
        raise _fail(name, op, fld, f"is not an array ({type(err).__name__}: {err})", fix) from None
    if arr.dtype.kind not in "biuf":
        raise _fail(name, op, fld, f"has dtype {arr.dtype} ({_dtype_kind(arr.dtype)}), not a real number type", fix)
    if finite and not _all_finite(arr):
        bad = np.flatnonzero(~np.isfinite(arr.ravel()))
        index = tuple(int(i) for i in np.unravel_index(int(bad[0]), arr.shape))
        raise _fail(name, op, fld, f"holds {bad.size} NaN or infinite value(s) (first at index {index}: "
                    f"{arr.ravel()[bad[0]]})", "check the source model's parameters; every value must be finite")
    if finite and arr.dtype.kind == "f" and arr.size and max(-float(arr.min()), float(arr.max())) > MAX_MAGNITUDE:
        worst = float(arr.max()) if float(arr.max()) > -float(arr.min()) else float(arr.min())
        raise _fail(name, op, fld, f"holds {worst:.6g}, beyond {MAX_MAGNITUDE:.6g} in magnitude",
                    "check the source model's parameters (the file may be corrupt)")
    if fld in INTEGER_ARRAYS and arr.size and arr.dtype.kind not in "iu":
        raise _fail(name, op, fld, f"must hold integers, got dtype {arr.dtype}", f"store {fld} as whole numbers")
    if fld in INT_RANGES and arr.size:
        lo, hi = INT_RANGES[fld]
        a_min, a_max = arr.min(), arr.max()
        if a_min < lo or a_max > hi:
            raise _fail(name, op, fld, f"holds {a_min if a_min < lo else a_max}, outside [{lo}, {hi}]",
                        f"keep {fld} inside [{lo}, {hi}]")
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.rint(arr)):
            raise _fail(name, op, fld, "holds non-integer values", f"store {fld} as whole numbers")


def _dtype_kind(dtype: np.dtype) -> str:
    if dtype.fields is not None:
        return "structured"
    return {"c": "complex", "O": "object", "S": "bytes", "U": "string", "V": "raw bytes", "M": "datetime",
            "m": "timedelta"}.get(dtype.kind, dtype.kind)


def _check_array_or_real(name: str, op: Op, fld: str, value: Any, finite: bool = True) -> None:
    if isinstance(value, np.ndarray | list | tuple):
        _check_array(name, op, fld, value, finite)
    elif fld in INT_RANGES:
        _check_int(name, op, fld, value)
    else:
        _check_real(name, op, fld, value, finite)


def _check_str(name: str, op: Op, fld: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _fail(name, op, fld, f"must be a string, got {_describe(value)}", f"set {fld} to a string")


def _check_bool(name: str, op: Op, fld: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        raise _fail(name, op, fld, f"must be true or false, got {_describe(value)}", f"set {fld} to a boolean")


def _check_quant(name: str, op: Op, fld: str, value: Any) -> None:
    fix = "re-run the quantize pass to rebuild the quantization record"
    if not isinstance(value, QuantInfo):
        raise _fail(name, op, fld, f"must be a QuantInfo record, got {_describe(value)}", fix)
    scale = value.scale
    if isinstance(scale, bool) or not isinstance(scale, Real | np.floating | np.integer) or \
            not (math.isfinite(float(scale)) and float(scale) > 0):
        raise _fail(name, op, fld, f"scale = {_describe(scale)} is not a positive finite number", fix)
    for key, table, ok in (("bits", value.bits, _is_int), ("error", value.error,
                                                           lambda v: isinstance(v, Real) and not isinstance(v, bool))):
        if not isinstance(table, dict) or not all(isinstance(k, str) and ok(v) for k, v in table.items()):
            raise _fail(name, op, fld, f"{key} must map field names to numbers, got {_describe(table)}", fix)


def _optional(check: Callable[..., None]) -> Callable[..., None]:
    def run(name: str, op: Op, fld: str, value: Any, *finite: bool) -> None:
        if value is not None:
            check(name, op, fld, value, *finite)
    return run


#: The checker of each field annotation used by the ops (a test asserts that every op field has one).
CHECKS: dict[str, Callable[..., None]] = {
    "Shape": _check_shape,
    "tuple[int, int]": _check_pair,
    "int": _check_int,
    "int | None": _optional(_check_int),
    "float": _check_real,
    "bool": _check_bool,
    "str": _check_str,
    "str | None": _optional(_check_str),
    "np.ndarray": _check_array,
    "np.ndarray | None": _optional(_check_array),
    "np.ndarray | float": _check_array_or_real,
    "np.ndarray | int": _check_array_or_real,
    "QuantInfo | None": _optional(_check_quant),
}


#: Checkers that take the ``finite`` flag (real numbers and arrays).
_NUMERIC = frozenset({"float", "np.ndarray", "np.ndarray | None", "np.ndarray | float", "np.ndarray | int"})


def check_fields(name: str, op: Op, finite: bool = True) -> None:
    """Check every field of ``op`` (node ``name``) against its annotation; :class:`IRError` naming both.

    ``finite=False`` lets NaN and infinities through (the quantize pass names them itself, with the field's index).
    """
    if not isinstance(op, Op):
        raise IRError(f"is a {type(op).__name__}, not an IR op", node=name, fix="build nodes from neurodeploy.ir.ops")
    for f in fields(op):
        check = CHECKS.get(str(f.type))
        if check is None:
            raise IRError(f"{op.op_type} field '{f.name}' has the annotation {f.type!r}, which the IR validation does "
                          "not know", node=name, fix="add a checker to neurodeploy.ir.fields.CHECKS")
        if str(f.type) in _NUMERIC:
            check(name, op, f.name, getattr(op, f.name), finite)
        else:
            check(name, op, f.name, getattr(op, f.name))


__all__ = ["check_fields", "shape_problem", "CHECKS", "INT_RANGES", "INTEGER_ARRAYS", "MAX_ELEMENTS", "MAX_DELAY",
           "MAX_MAGNITUDE"]
