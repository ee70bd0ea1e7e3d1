"""NIR <-> float IR.

NIR describes neurons as continuous-time ODEs and carries neither a time step nor a reset *mode* (its neurons
reset to ``v_reset``). :func:`from_nir` therefore needs ``dt`` (seconds per step) and takes ``reset``
("zero", the default, which is NIR's own ``v -> v_reset`` with ``v_reset = 0``; or "subtract"); a node whose NIR
metadata holds ``reset`` (as :func:`to_nir` writes it) keeps that mode.

Discretisation: forward Euler, updating the current before the voltage (the order of snnTorch, Lava and Loihi),
with ``S[t]`` the summed input of step ``t``::

    I[t] = (1 - dt/tau_syn) I[t-1] + (dt/tau_syn) w_in S[t]
    v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) (v_leak + r I[t])

so, with ``u = (dt r / tau_mem) I``, the IR's ``u = (1 - du) u + a; v = (1 - dv) v + u + bias`` holds with

=========  ===================  ===================  ==========================  =====================================
NIR node   du                   dv                   bias                        input gain g (folded into a Scale)
=========  ===================  ===================  ==========================  =====================================
LIF        1                    dt / tau             dt v_leak / tau             dt r / tau
CubaLIF    dt / tau_syn         dt / tau_mem         dt v_leak / tau_mem         (dt r / tau_mem) (dt w_in / tau_syn)
IF         (IF op)              0                    0                           dt r
LI         1  (LI op)           dt / tau             dt v_leak / tau             dt r / tau
CubaLI     dt / tau_syn (LI)    dt / tau_mem         dt v_leak / tau_mem         as CubaLIF
I          1  (LI op)           0                    0                           dt r
=========  ===================  ===================  ==========================  =====================================

``vth = v_threshold``. Forward Euler rather than the exact exponential ``exp(-dt/tau)`` because it is what the
exporters assume: snnTorch writes ``tau = dt/(1 - beta)`` and ``r = tau/dt`` (and ``w_in = tau_syn/dt``), which
forward Euler maps back to exactly ``dv = 1 - beta`` and ``g = 1``; the exponential would give
``dv = 1 - exp(beta - 1)``. It also makes :func:`to_nir` the exact inverse (``tau = dt/dv``, ``r = 1/dv``,
``w_in = 1/du``, ``v_leak = bias/dv``), so ``from_nir(to_nir(g), dt)`` returns ``g`` up to float rounding.
Gains within 1e-5 of 1 are taken as 1 (float32 rounding in exporters); ``dt > tau`` (an unstable Euler step) and
``v_reset != 0`` are rejected. Per-neuron decays must be uniform per node; per-neuron thresholds are normalised
(inputs and bias divided by ``v_threshold``, ``vth = 1``).

Other nodes: Affine/Linear -> Dense (bias folded into the neuron, see :mod:`neurodeploy.converters._common`),
Conv2d -> Conv2d ('same'/'valid' padding resolved), SumPool2d/AvgPool2d, Flatten (``start_dim``/``end_dim``
counted without the batch axis, as NIR's type inference does), Scale, Delay (``delay / dt`` rounded to whole
steps), Input, Output; nested NIRGraphs are inlined (names joined with "."). Cycles are allowed. NIR edges are
instantaneous: every synapse of the IR adds one step, and a neuron fed by spikes without a synapse in between
gets an identity synapse (one more step); ``meta["latency_steps"]`` gives the result.

Reading (:func:`read_nir`) is tolerant and precise: the HDF5 file is inspected before ``nir`` reads it (a NIR
graph at ``/node``, known node types, numeric or string datasets, declared sizes the file can hold), then read with
``nir.read(..., type_check=False)``; a failure of ``nir``'s strict type check alone is a :class:`NIRTypeCheckWarning`
(Rockpool, for one, writes Output types that it rejects). Errors say which kind of fault it is: "not an HDF5/NIR
file" (:class:`SerializationError`), "graph inconsistent: ..." (:class:`ConversionError`: unknown edge ends,
duplicate edges, nodes without an incoming edge -- which ``nir``'s strict reader would silently feed from an invented
Input -- or an Output declaring a size its source does not have) and "unsupported: ..." (:class:`UnsupportedOpError`).
Parameters must be non-empty arrays of real, finite numbers (an infinite time constant, meaning no leak, excepted);
strings, complex numbers and structured records are refused rather than converted.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.converters._common import (
    ModelWarning,
    Notes,
    compact,
    finish,
    in_source,
    is_one,
    per_neuron,
    scalar,
    uniform,
)
from neurodeploy.errors import ConversionError, NeurodeployError, SerializationError, UnsupportedOpError
from neurodeploy.ir.fields import MAX_DELAY
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import (
    IF,
    LI,
    RESET_MODES,
    AvgPool2d,
    Conv2d,
    CubaLIF,
    Delay,
    Dense,
    Flatten,
    Input,
    Op,
    Output,
    Scale,
    Sparse,
    SumPool2d,
)

SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "LIF", "CubaLIF",
             "IF", "LI", "CubaLI", "I", "Delay", "Scale", "NIRGraph")


# ---------------------------------------------------------------------------------------------------- loading
#: A gzip'ed HDF5 dataset cannot expand more than deflate's 1032:1; declared sizes beyond that (plus a margin for
#: small files) are unwritten chunks that h5py would materialise from the fill value: a decompression bomb.
_MAX_EXPANSION = 1032
_MIN_BUDGET = 64 * 2**20


class NIRTypeCheckWarning(ModelWarning):
    """The NIR file fails ``nir``'s strict type check and was read without it (the mismatch is in the message)."""


def read_nir(path: str | os.PathLike) -> Any:
    """Read a NIR file without ``nir``'s strict type check, with errors that name the file and the fault.

    * not an HDF5 file, or an HDF5 file without a NIR graph: :class:`SerializationError` ("not an HDF5/NIR file");
    * datasets whose declared size the file cannot hold, or of non-numeric, non-string types: SerializationError;
    * a node type ``nir`` does not know: :class:`UnsupportedOpError` ("unsupported: ...");
    * a graph that ``nir`` cannot build: :class:`ConversionError` ("graph inconsistent: ...").

    A file that fails only ``nir``'s strict type check (``nir.read(path)``; e.g. an Output declaring ``[1, 1, 1]``
    for a ``[1]`` input, as Rockpool writes it) is read with ``type_check=False`` and the mismatch is reported as a
    :class:`NIRTypeCheckWarning`; neurodeploy infers and checks every shape itself during conversion.
    """
    import nir

    p = Path(path)
    if not p.is_file():
        raise SerializationError(f"NIR file '{p}' does not exist", fix="check the path")
    _inspect_hdf5(p)
    try:
        graph = nir.read(str(p), type_check=False)
    except Exception as err:  # nir raises AssertionError, KeyError, ValueError, TypeError ... for malformed graphs
        raise ConversionError(f"NIR file '{p}': graph inconsistent: nir cannot build the graph "
                              f"({type(err).__name__}: {str(err)[:300]})",
                              fix="re-export the model with nir.write / snntorch.export_to_nir") from None
    if not isinstance(graph, nir.NIRGraph):
        raise SerializationError(f"'{p}' holds a single {type(graph).__name__} node, not a NIR graph",
                                 fix="export the whole network as a nir.NIRGraph")
    _strict_type_check(graph, str(p))
    return graph


def _not_nir(p: Path, why: str) -> SerializationError:
    return SerializationError(f"'{p}' is not an HDF5/NIR file ({why})",
                              fix="pass a file written by nir.write (snntorch.export_to_nir, norse, sinabs, ...)")


def _inspect_hdf5(p: Path) -> None:
    """Check the HDF5 container before ``nir`` reads every dataset into memory: a NIR graph at ``/node``, node types
    ``nir`` knows, numeric or string datasets only, and declared sizes the file's bytes can hold."""
    import h5py

    try:
        if not h5py.is_hdf5(str(p)):
            raise _not_nir(p, "no HDF5 signature")
        with h5py.File(str(p), "r") as f:
            root = f.get("node")
            if not isinstance(root, h5py.Group) or not isinstance(root.get("type"), h5py.Dataset):
                raise _not_nir(p, "no '/node' group with a 'type': not a NIR graph")
            budget = max(_MIN_BUDGET, _MAX_EXPANSION * p.stat().st_size)
            declared = _walk_datasets(p, root, "node")
    except (SerializationError, UnsupportedOpError):
        raise
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError, ValueError ... on damaged files
        raise _not_nir(p, f"unreadable HDF5: {type(err).__name__}: {str(err)[:200]}") from None
    if declared > budget:
        raise SerializationError(f"'{p}' declares {declared} bytes of datasets in a {p.stat().st_size}-byte file "
                                 "(unwritten or bomb-compressed data)", fix="re-export the model with nir.write")


def _walk_datasets(p: Path, group: Any, where: str) -> int:
    """Total declared bytes of the datasets under ``group``, refusing unknown node types and non-numeric data."""
    import h5py

    total = 0
    if "type" in group:
        kind = _node_type(p, group["type"], where)
        if kind not in _nir_types():
            raise UnsupportedOpError(f"NIR file '{p}': unsupported: node type {kind!r} at '/{where}' is not a NIR "
                                     f"node type (nir {_nir_version()} knows {sorted(_nir_types())})",
                                     node=where.rpartition("/")[2], fix="export the model with NIR's own node types")
    for key, item in group.items():
        path = f"{where}/{key}"
        if isinstance(item, h5py.Group) and key == "metadata":
            total += _metadata_bytes(p, item, path)
        elif isinstance(item, h5py.Group):
            total += _walk_datasets(p, item, path)
        elif isinstance(item, h5py.Dataset):
            _check_dataset(p, item, path)
            total += int(item.size or 0) * int(item.dtype.itemsize)
    return total


def _metadata_bytes(p: Path, group: Any, where: str) -> int:
    """Declared bytes of a metadata group (free-form: a key named 'type' there is not a node type)."""
    import h5py

    total = 0
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            total += _metadata_bytes(p, item, f"{where}/{key}")
        elif isinstance(item, h5py.Dataset):
            total += int(item.size or 0) * int(item.dtype.itemsize)
    return total


def _node_type(p: Path, dataset: Any, where: str) -> str:
    value = dataset[()] if dataset.shape == () and dataset.dtype.kind in "OS" else None
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf8", errors="replace")
    if isinstance(value, str):
        return value
    raise _not_nir(p, f"'/{where}/type' is not a string")


#: NIR node fields that hold numbers only (``padding`` may be a string: 'same' / 'valid').
_NUMERIC_FIELDS = frozenset({"weight", "bias", "tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset",
                             "w_in", "scale", "delay", "shape", "kernel_size", "stride", "dilation", "groups",
                             "start_dim", "end_dim", "input_shape", "threshold"})


def _check_dataset(p: Path, ds: Any, path: str) -> None:
    """A dataset must hold real numbers, or be a string (node types, metadata, edge names; never a parameter)."""
    import h5py

    dtype = ds.dtype
    node, _, field = path.rpartition("/")
    is_string = dtype.kind == "S" or h5py.check_string_dtype(dtype) is not None
    if dtype.kind in "biuf" or (is_string and field not in _NUMERIC_FIELDS):
        return
    kind = "complex" if dtype.kind == "c" else "structured" if dtype.fields is not None else \
        "strings" if is_string else f"{dtype} ({dtype.kind})"
    raise SerializationError(f"NIR file '{p}': dataset '/{path}' (node '{node.rpartition('/')[2]}', field "
                             f"'{field}') holds {kind} data; NIR parameters are real numbers",
                             fix=f"store {field} as a float array and re-export the model")


def _nir_types() -> frozenset[str]:
    import nir

    return frozenset(n for n in dir(nir) if isinstance(getattr(nir, n), type) and issubclass(getattr(nir, n),
                                                                                           nir.NIRNode))


def _nir_version() -> str:
    import nir

    return str(getattr(nir, "version", "?"))


def _strict_type_check(graph: Any, source: str) -> None:
    """Run ``nir``'s strict type inference and check on a copy; report a failure as a warning, not an error."""
    import copy

    try:
        probe = copy.deepcopy(graph)
        probe.infer_types()
        probe.check_types()
    except Exception as err:  # nir's inference raises ValueError, KeyError, NotImplementedError ...
        warnings.warn(NIRTypeCheckWarning(
            f"{source} fails nir's strict type check ({type(err).__name__}: {str(err)[:300]}); it was read with "
            "nir.read(..., type_check=False) and neurodeploy checks the shapes itself (node shapes are inferred from "
            "the parameters, declared Input/Output types must hold as many values)"), stacklevel=3)


def _inline(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]], set[str]]:
    """Flatten nested NIRGraphs. Returns nodes, edges and the names of pass-through (inner Input/Output) nodes."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    passthrough: set[str] = set()
    ports: dict[str, tuple[list[str], list[str]]] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_pass = _inline(node, f"{full}.")
            nodes.update(sub_nodes)
            edges += sub_edges
            passthrough |= sub_pass
            ins = [f"{full}.{n}" for n, m in node.nodes.items() if isinstance(m, nir.Input)]
            outs = [f"{full}.{n}" for n, m in node.nodes.items() if isinstance(m, nir.Output)]
            passthrough |= set(ins) | set(outs)
            ports[full] = (ins, outs)
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        src, dst = f"{prefix}{src}", f"{prefix}{dst}"
        for s in _port(ports, src, 1, src):
            for d in _port(ports, dst, 0, dst):
                edges.append((s, d))
    return nodes, edges, passthrough


def _port(ports: dict[str, tuple[list[str], list[str]]], name: str, side: int, edge_end: str) -> list[str]:
    if name not in ports:
        return [name]
    found = ports[name][side]
    if len(found) != 1:
        kind = "Output" if side else "Input"
        raise ConversionError(f"an edge refers to subgraph '{name}', which has {len(found)} {kind} nodes",
                              node=name, fix=f"name the subgraph's {kind} node in the edge ('{name}.<node>')")
    return found


def _drop_passthrough(nodes: dict[str, Any], edges: list[tuple[str, str]], passthrough: set[str]):
    for p in passthrough:
        preds = [a for a, b in edges if b == p]
        succs = [b for a, b in edges if a == p]
        edges = [e for e in edges if p not in e] + [(a, b) for a in preds for b in succs]
        nodes.pop(p, None)
    return nodes, edges


# ------------------------------------------------------------------------------------------------- node maps
#: Fields whose infinite values mean something (an infinite time constant: no leak); elsewhere inf is refused.
_INF_ALLOWED = frozenset({"tau", "tau_mem", "tau_syn"})


def _arr(node: Any, field: str, name: str) -> np.ndarray:
    """A NIR parameter as a non-empty float64 array of real numbers (strings, complex, structured, NaN and -- except
    for time constants -- infinite values are refused naming the node and field)."""
    fix = f"store {field} as real, finite numbers and re-export the model"
    try:
        arr = np.asarray(getattr(node, field))
    except Exception as err:  # a missing attribute or an object numpy cannot hold
        raise ConversionError(f"field '{field}' cannot be read ({type(err).__name__}: {err})", node=name,
                              fix=fix) from None
    if arr.dtype.kind not in "biuf":
        what = {"c": "complex numbers (the imaginary part would be lost)", "S": "strings", "U": "strings",
                "O": "Python objects", "V": "structured records"}.get(arr.dtype.kind, f"dtype {arr.dtype}")
        raise ConversionError(f"field '{field}' holds {what}, not real numbers", node=name, fix=fix)
    if arr.size == 0:
        raise ConversionError(f"field '{field}' is empty (shape {list(arr.shape)})", node=name, fix=fix)
    arr = arr.astype(np.float64)
    if np.isnan(arr).any() or (field not in _INF_ALLOWED and np.isinf(arr).any()):
        bad = arr.ravel()[np.flatnonzero(~np.isfinite(arr.ravel()))[0]]
        raise ConversionError(f"field '{field}' holds {bad} ({int((~np.isfinite(arr)).sum())} non-finite value(s))",
                              node=name, fix=fix)
    return arr


def _ints(value: Any, field: str, name: str, count: int | None = None, lo: int = 0) -> tuple[int, ...]:
    """Whole numbers ``>= lo`` from a NIR field (a scalar is repeated ``count`` times); ConversionError otherwise."""
    if isinstance(value, bytes | np.bytes_ | str):
        value = None
    arr = np.asarray(value) if value is not None else np.asarray([], dtype=object)
    flat = arr.ravel()
    if count is not None and flat.size == 1:
        flat = np.repeat(flat, count)
    ok = arr.dtype.kind in "iuf" and flat.size > 0 and (count is None or flat.size == count)
    if ok:
        as_float = flat.astype(np.float64)
        ok = bool(np.all(np.isfinite(as_float)) and np.all(as_float == np.rint(as_float)) and np.all(as_float >= lo)
                  and np.all(as_float < 2.0**31))
    if not ok:
        want = f"{count} whole number(s)" if count else "whole numbers"
        raise ConversionError(f"field '{field}' = {str(value)[:60]} is not {want} in [{lo}, 2**31)", node=name,
                              fix=f"store {field} as integers and re-export the model")
    return tuple(int(v) for v in flat)


def _meta_reset(node: Any, default: str, name: str) -> str:
    meta = getattr(node, "metadata", None) or {}
    value = meta.get("reset", default) if isinstance(meta, dict) else default
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("utf8")
    value = str(value)
    if value not in RESET_MODES:
        raise ConversionError(f"metadata reset mode {value!r} is not one of {RESET_MODES}", node=name,
                              fix="set the node's metadata 'reset' to 'zero' or 'subtract'")
    return value


def _ratio(dt: float, tau: np.ndarray, name: str, field: str) -> np.ndarray:
    if np.any(tau <= 0) or np.any(np.isnan(tau)):
        raise ConversionError(f"{field} must be positive, got min {np.nanmin(tau):.6g}", node=name,
                              fix=f"fix the node's {field}")
    ratio = dt / tau  # tau = inf (no leak) -> 0
    if np.any(ratio > 1.0 + 1e-12):
        raise ConversionError(f"{field} = {np.min(tau):.6g} s is shorter than the step dt = {dt:.6g} s: a forward "
                              "Euler step would overshoot (decay factor 1 - dt/tau < 0)", node=name,
                              fix="pass a smaller dt (NIR exported by snnTorch uses dt = 1e-4)")
    return np.minimum(ratio, 1.0)


def _checked_gain(gain: np.ndarray, kind: str, name: str) -> np.ndarray:
    """The input gain must be finite (``r`` and ``tau`` both infinite leave it undefined); an all-zero gain (``r = 0``,
    or an infinite ``tau`` with a finite ``r``) silences the layer and is reported as a :class:`ModelWarning`."""
    fields = "dt * r" if kind in ("IF", "I") else "dt * r / tau" if kind in ("LIF", "LI") else \
        "(dt * r / tau_mem) * (dt * w_in / tau_syn)"
    if not np.all(np.isfinite(gain)):
        raise ConversionError(f"the input gain {fields} is {gain.ravel()[np.flatnonzero(~np.isfinite(gain))[0]]} "
                              "(r and the time constant infinite together leave it undefined)", node=name,
                              fix="give finite r (a neuron without leak is a NIR IF, or LIF with r = tau / dt)")
    if gain.size and not np.any(gain):
        warnings.warn(ModelWarning(f"NIR node '{name}' ({kind}) has the input gain {fields} = 0 everywhere: it "
                                   "ignores its inputs (check r and the time constants)"), stacklevel=5)
    return gain


def _no_reset_potential(node: Any, name: str) -> None:
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(_arr(node, "v_reset", name) != 0):
        raise ConversionError("v_reset is not 0: IR neurons reset to 0 (or by subtraction)", node=name,
                              fix="shift v_leak, v_threshold and v_reset so that v_reset = 0")


def _neuron(kind: str, node: Any, name: str, dt: float, reset: str, notes: Notes) -> tuple[Op, np.ndarray]:
    """The IR neuron of a NIR neuron node, and its input gain per neuron (see the module docstring)."""
    origin = name
    if kind in ("LIF", "LI"):
        shape = _arr(node, "tau", name).shape
        k = _ratio(dt, _arr(node, "tau", name), name, "tau")
        du, dv = 1.0, scalar(k, shape, "tau", name)
        gain = dt * _arr(node, "r", name) / _arr(node, "tau", name)
        bias = k * _arr(node, "v_leak", name)
    elif kind in ("CubaLIF", "CubaLI"):
        shape = _arr(node, "tau_mem", name).shape
        ks = _ratio(dt, _arr(node, "tau_syn", name), name, "tau_syn")
        km = _ratio(dt, _arr(node, "tau_mem", name), name, "tau_mem")
        du, dv = scalar(ks, shape, "tau_syn", name), scalar(km, shape, "tau_mem", name)
        gain = (dt * _arr(node, "r", name) / _arr(node, "tau_mem", name)) * \
            (dt * _arr(node, "w_in", name) / _arr(node, "tau_syn", name))
        bias = km * _arr(node, "v_leak", name)
    elif kind in ("IF", "I"):
        shape = _arr(node, "r", name).shape
        du, dv = 1.0, 0.0
        gain = dt * _arr(node, "r", name)
        bias = np.zeros(shape)
    else:  # pragma: no cover - guarded by SUPPORTED
        raise UnsupportedOpError(f"NIR node type {kind}", node=name)
    shape = tuple(int(d) for d in shape)
    gain = _checked_gain(np.asarray(gain, dtype=np.float64) * np.ones(shape), kind, name)
    bias = np.asarray(bias, dtype=np.float64) * np.ones(shape)
    if kind in ("LI", "CubaLI", "I"):
        return LI(shape=shape, du=du, dv=dv, bias=compact(bias), origin=origin), gain
    _no_reset_potential(node, name)
    vth = per_neuron(_arr(node, "v_threshold", name), shape, "v_threshold", name)
    if not uniform(vth):
        if np.any(vth <= 0):
            raise ConversionError("per-neuron thresholds must be positive to be normalised", node=name,
                                  fix="use positive thresholds or one threshold per node")
        gain, bias = gain / vth, bias / vth
        notes.add(name, "per-neuron thresholds normalised: inputs and bias of neuron i divided by v_threshold_i, "
                        "vth = 1 (spikes identical, v scaled by 1/v_threshold_i)")
        vth = np.ones(shape)
    mode = _meta_reset(node, reset, name)
    vth_value = float(vth.flat[0]) if vth.size else 1.0
    if kind == "IF":
        return IF(shape=shape, vth=vth_value, bias=compact(bias), reset=mode, origin=origin), gain
    return CubaLIF(shape=shape, du=du, dv=dv, vth=vth_value, bias=compact(bias), reset=mode, origin=origin), gain


def _padding(node: Any, name: str, kernel: tuple[int, ...]) -> tuple[int, int]:
    pad = node.padding
    if isinstance(pad, np.ndarray) and pad.shape == () and pad.dtype.kind in "SUO":
        pad = pad.item()
    if isinstance(pad, bytes | np.bytes_):
        pad = pad.decode("utf8", errors="replace")
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0)
        if pad != "same":
            raise UnsupportedOpError(f"unsupported: Conv2d padding {pad!r}", node=name,
                                     fix="use 'valid', 'same' or integer padding")
        dilation = _pair(node.dilation, "dilation", name, lo=1)
        span = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(s % 2 for s in span) or _pair(node.stride, "stride", name, lo=1) != (1, 1):
            raise UnsupportedOpError("Conv2d padding 'same' needs stride 1 and an odd kernel span", node=name,
                                     fix="use explicit integer padding")
        return (span[0] // 2, span[1] // 2)
    return _pair(pad, "padding", name)


def _pair(v: Any, field: str, name: str, lo: int = 0) -> tuple[int, int]:
    p = _ints(v, field, name, count=2, lo=lo)
    return (p[0], p[1])


def _dim(value: Any, field: str, name: str) -> int:
    """A (possibly negative) axis index of a NIR Flatten."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise ConversionError(f"field '{field}' = {str(value)[:60]} is not one integer", node=name,
                              fix=f"store {field} as an integer axis")
    return int(arr.ravel()[0])


def _convert_node(kind: str, node: Any, name: str, dt: float, reset: str, notes: Notes):
    """Returns (op, gain or None)."""
    if kind == "Input":
        shape = (getattr(node, "input_type", None) or {}).get("input") if isinstance(getattr(node, "input_type", None),
                                                                                      dict) else None
        return Input(shape=_ints(shape, "shape", name, lo=1), origin=name), None
    if kind == "Output":
        return Output(origin=name), None
    if kind in ("Affine", "Linear"):
        weight = _arr(node, "weight", name)
        if weight.ndim != 2:
            raise UnsupportedOpError(f"{kind} weight has {weight.ndim} dimensions; only 2-D [out, in] weights are "
                                     "supported", node=name, fix="reshape the weight to [out, in]")
        bias = _arr(node, "bias", name).ravel() if kind == "Affine" else None
        if bias is not None and not np.any(bias):
            bias = None
        return Dense(weight=weight, bias=bias, origin=name), None
    if kind == "Conv2d":
        weight = _arr(node, "weight", name)
        if weight.ndim != 4:
            raise UnsupportedOpError(f"Conv2d weight has shape {list(weight.shape)}; only 2-D convolutions "
                                     "[C_out, C_in / groups, kh, kw] are supported", node=name,
                                     fix="store the kernel as [C_out, C_in / groups, kh, kw]")
        bias = _arr(node, "bias", name).ravel() if getattr(node, "bias", None) is not None else None
        if bias is not None and (bias.size == 1 and weight.shape[0] != 1):
            bias = np.full(weight.shape[0], float(bias[0]))
        if bias is not None and not np.any(bias):
            bias = None
        return Conv2d(weight=weight, bias=bias, stride=_pair(node.stride, "stride", name, lo=1),
                      padding=_padding(node, name, weight.shape[2:]),
                      dilation=_pair(node.dilation, "dilation", name, lo=1),
                      groups=_ints(node.groups, "groups", name, count=1, lo=1)[0], origin=name), None
    if kind in ("SumPool2d", "AvgPool2d"):
        cls = SumPool2d if kind == "SumPool2d" else AvgPool2d
        return cls(kernel=_pair(node.kernel_size, "kernel_size", name, lo=1),
                   stride=_pair(node.stride, "stride", name, lo=1), padding=_pair(node.padding, "padding", name),
                   origin=name), None
    if kind == "Flatten":
        return Flatten(start_dim=_dim(node.start_dim, "start_dim", name), end_dim=_dim(node.end_dim, "end_dim", name),
                       origin=name), None
    if kind == "Scale":
        return Scale(scale=_arr(node, "scale", name), origin=name), None
    if kind == "Delay":
        steps = _arr(node, "delay", name) / dt
        rounded = np.rint(steps)
        if np.any(rounded < 0):
            raise ConversionError("negative delay", node=name, fix="use delays >= 0")
        if np.any(rounded > MAX_DELAY):
            raise ConversionError(f"field 'delay' = {np.max(steps):.6g} steps of dt = {dt:g} s, more than the IR's "
                                  f"{MAX_DELAY}", node=name, fix="check the delay's unit (seconds) and dt")
        if not np.allclose(steps, rounded, rtol=0, atol=1e-6):
            notes.add(name, f"delays rounded to whole steps of dt = {dt:g} s (max error "
                            f"{np.max(np.abs(steps - rounded)) * dt:.3g} s)")
        return Delay(delay=rounded.astype(np.int64), origin=name), None
    return _neuron(kind, node, name, dt, reset, notes)


def from_nir(nir_graph_or_path: Any, dt: float | None = None, *, reset: str = "zero") -> Graph:
    """Convert a NIR graph (object or ``.nir`` file) into a float IR graph; see the module docstring.

    ``dt`` (seconds per step) is required: NIR is continuous-time. ``reset`` is the reset mode of every spiking
    neuron whose NIR metadata does not set one ("zero" is NIR's ``v -> v_reset = 0``). Errors about a file name it.
    """
    try:
        return _from_nir(nir_graph_or_path, dt, reset)
    except NeurodeployError as err:
        if not isinstance(nir_graph_or_path, str | os.PathLike):
            raise
        raise in_source(err, "NIR", nir_graph_or_path) from None


def _from_nir(nir_graph_or_path: Any, dt: float | None, reset: str) -> Graph:
    import nir

    if dt is None:
        raise ConversionError("NIR graphs are continuous-time: the step dt (seconds) is required",
                              fix="pass dt, e.g. from_nir(path, dt=1e-3) or --dt 1e-3 (snnTorch's NIR export "
                                  "assumes dt = 1e-4)")
    if not (isinstance(dt, int | float | np.floating) and np.isfinite(dt) and dt > 0):
        raise ConversionError(f"dt must be a positive number of seconds, got {dt!r}", fix="pass e.g. dt=1e-3")
    if reset not in RESET_MODES:
        raise ConversionError(f"reset must be one of {RESET_MODES}, got {reset!r}", fix="pass reset='zero' or "
                                                                                          "'subtract'")
    dt = float(dt)
    source = "NIR graph"
    if isinstance(nir_graph_or_path, str | os.PathLike):
        source = f"NIR file '{nir_graph_or_path}'"
        graph = read_nir(nir_graph_or_path)
    else:
        graph = nir_graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise ConversionError(f"expected a nir.NIRGraph, got {type(graph).__name__}",
                              fix="pass a NIRGraph or the path of a .nir file")
    raw_nodes, raw_edges, passthrough = _inline(graph)
    raw_nodes, raw_edges = _drop_passthrough(raw_nodes, raw_edges, passthrough)
    notes = Notes()
    nodes: dict[str, Op] = {}
    gains: dict[str, np.ndarray] = {}
    for name, node in raw_nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            raise UnsupportedOpError(f"unsupported: NIR node '{name}' has type {kind}, which neurodeploy cannot "
                                     "convert", node=name, fix=f"use only {', '.join(SUPPORTED[:-1])}")
        op, gain = _convert_node(kind, node, name, dt, reset, notes)
        nodes[name] = op
        if gain is not None and not is_one(gain):
            gains[name] = gain
    _check_edges(raw_nodes, raw_edges, source)
    _broadcast_scalar_neurons(nodes, raw_edges, gains, notes)
    _note_identity_synapses(nodes, raw_edges, notes)
    meta = {"dt": dt, "source": "nir", "reset_default": reset}
    result = finish(nodes, raw_edges, meta, notes, gains=gains, source=source)
    _check_declared_outputs(raw_nodes, result, source)
    return result


def _broadcast_scalar_neurons(nodes: dict[str, Op], edges: list[tuple[str, str]], gains: dict[str, np.ndarray],
                              notes: Notes) -> None:
    """Neurons whose parameters are all scalars (Norse's ``to_nir`` writes them so) take the shape of their input,
    as NIR's broadcasting reads them; noted per node."""
    scalar = {n for n, op in nodes.items() if isinstance(op, IF | LI | CubaLIF) and tuple(op.shape) == ()}
    if not scalar:
        return
    preds: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    shapes: dict[str, tuple[int, ...] | None] = {}

    def shape_of(name: str, seen: frozenset) -> tuple[int, ...] | None:
        if name in shapes:
            return shapes[name]
        op = nodes[name]
        if isinstance(op, IF | LI | CubaLIF) and name not in scalar:
            result = tuple(op.shape)
        elif isinstance(op, Input):
            result = tuple(op.shape)
        else:
            ins = [shape_of(p, seen | {name}) for p in preds.get(name, []) if p not in seen]
            ins = [s for s in ins if s is not None]
            if not ins:
                return None
            result = ins[0] if name in scalar else tuple(op.output_shape(ins[0]))
        shapes[name] = result
        return result

    for name in sorted(scalar):
        shape = shape_of(name, frozenset())
        if shape is None or shape == ():
            continue
        op = nodes[name]
        nodes[name] = dataclasses.replace(op, shape=shape, bias=compact(np.asarray(op.bias, dtype=np.float64)
                                                                          * np.ones(shape)))
        if name in gains:
            gains[name] = np.asarray(gains[name], dtype=np.float64) * np.ones(shape)
        notes.add(name, f"scalar neuron parameters broadcast to the input's shape {list(shape)}")


def _inconsistent(source: str, what: str, node: str, fix: str) -> ConversionError:
    return ConversionError(f"{source}: graph inconsistent: {what}", node=node, fix=fix)


def _check_edges(nodes: dict[str, Any], edges: list[tuple[str, str]], source: str) -> None:
    """Edges name known nodes, appear once, and leave no node undriven: every node but an Input has an incoming
    edge (``nir``'s strict reader would silently invent an Input for it). A node that feeds nothing (not an
    Output) is reported as a :class:`ModelWarning`."""
    import nir

    fix = "repair the NIR graph's edge list (re-export the model)"
    seen: set[tuple[str, str]] = set()
    for src, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                raise _inconsistent(source, f"an edge ({src} -> {dst}) refers to unknown node '{end}'", end, fix)
        if (src, dst) in seen:
            raise _inconsistent(source, f"the edge ({src} -> {dst}) appears twice (its input would count twice)",
                                dst, fix)
        seen.add((src, dst))
    targets, sources = {d for _, d in edges}, {a for a, _ in edges}
    undriven = [n for n, node in nodes.items() if n not in targets and not isinstance(node, nir.Input)]
    if undriven:
        raise _inconsistent(source, f"{len(undriven)} node(s) have no incoming edge, so nothing drives them: "
                            f"{undriven[:5]}", undriven[0], fix)
    unread = [n for n, node in nodes.items() if n not in sources and not isinstance(node, nir.Output)]
    if unread:
        warnings.warn(ModelWarning(f"{source}: node(s) {unread[:5]} feed nothing (no outgoing edge, not an Output): "
                                   "they are converted but no output reads them"), stacklevel=3)


def _check_declared_outputs(nodes: dict[str, Any], graph: Graph, source: str) -> None:
    """A NIR Output's declared type must hold as many values as the layer it reads (its exact shape may differ:
    Rockpool declares ``[1, 1, 1]`` for ``[1]``; that case is the strict type check's warning)."""
    shapes = graph.shapes()
    for name in graph.outputs:
        declared = getattr(nodes.get(name), "output_type", None)
        declared = declared.get("output") if isinstance(declared, dict) else None
        if declared is None or name not in shapes:
            continue
        dims = np.asarray(declared).ravel()
        if dims.dtype.kind not in "iuf" or not dims.size:
            continue
        dims = dims.astype(np.float64)
        if not np.all(np.isfinite(dims)) or np.prod(dims) != float(np.prod(shapes[name])):
            raise _inconsistent(source, f"Output '{name}' declares the shape {dims.tolist()} but reads "
                                f"{list(shapes[name])} ({int(np.prod(shapes[name]))} values)", name,
                                "declare the Output's shape as the layer it reads (re-export the model)")


def _note_identity_synapses(nodes: dict[str, Op], edges: list[tuple[str, str]], notes: Notes) -> None:
    preds: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    for name, op in nodes.items():
        if op.role != "neuron":
            continue
        for p in preds.get(name, []):
            node = p
            while nodes[node].role == "linear" and len(preds.get(node, [])) == 1:
                node = preds[node][0]
            if nodes[node].role != "synapse":
                notes.add(name, f"fed by '{p}' without a synapse (a NIR identity edge is instantaneous): the IR "
                                "inserts an identity synapse, which adds one step")


# ------------------------------------------------------------------------------------------------- exporting
def _full(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == int(np.prod(shape)):
        return arr.reshape(shape).copy()
    return np.broadcast_to(arr, shape).copy()


def _neuron_to_nir(name: str, op: Op, dt: float) -> Any:
    import nir

    shape = tuple(op.shape)
    meta = {"origin": op.origin} if op.origin else {}
    bias = _full(op.bias, shape)
    if isinstance(op, IF):
        if np.any(bias):
            raise ConversionError("an IF neuron with a bias has no NIR equivalent (NIR IF has no leak voltage)",
                                  node=name, fix="remove the bias")
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=np.full(shape, float(op.vth)),
                      v_reset=np.zeros(shape), metadata={**meta, "reset": op.reset})
    du, dv = float(op.du), float(op.dv)
    if du <= 0 or dv < 0 or du > 1 or dv > 1:
        raise ConversionError(f"du = {du}, dv = {dv} have no NIR time constants (need 0 < du <= 1, 0 <= dv <= 1)",
                              node=name, fix="use decays in that range")
    if dv == 0:
        if du != 1 or np.any(bias):
            raise ConversionError("a neuron without voltage leak (dv = 0) and with a current decay or a bias has no "
                                  "NIR equivalent", node=name, fix="use dv > 0")
        if isinstance(op, LI):
            return nir.I(r=np.full(shape, 1.0 / dt), metadata=meta)
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=np.full(shape, float(op.vth)), v_reset=np.zeros(shape),
                      metadata={**meta, "reset": op.reset})
    tau_mem = np.full(shape, dt / dv)
    common = {"r": np.full(shape, 1.0 / dv), "v_leak": bias / dv}
    if du == 1:
        if isinstance(op, LI):
            return nir.LI(tau=tau_mem, metadata=meta, **common)
        return nir.LIF(tau=tau_mem, v_threshold=np.full(shape, float(op.vth)), v_reset=np.zeros(shape),
                       metadata={**meta, "reset": op.reset}, **common)
    syn = {"tau_syn": np.full(shape, dt / du), "tau_mem": tau_mem, "w_in": np.full(shape, 1.0 / du)}
    if isinstance(op, LI):
        return nir.CubaLI(metadata=meta, **syn, **common)
    return nir.CubaLIF(v_threshold=np.full(shape, float(op.vth)), v_reset=np.zeros(shape),
                       metadata={**meta, "reset": op.reset}, **syn, **common)


def _op_to_nir(name: str, op: Op, in_shape: tuple[int, ...] | None, shape: tuple[int, ...], dt: float) -> Any:
    import nir

    meta = {"origin": op.origin} if op.origin else {}
    if isinstance(op, Input):
        return nir.Input(input_type={"input": np.array(shape)}, metadata=meta)
    if isinstance(op, Output):
        return nir.Output(output_type={"output": np.array(shape)}, metadata=meta)
    if getattr(op, "quant", None) is not None:
        raise ConversionError("the node is quantized; NIR holds float models", node=name,
                              fix="export the float graph (before compile), e.g. from_snntorch(...) or from_nir(...)")
    if op.role == "synapse" and getattr(op, "delays", None) is not None:
        raise ConversionError("per-synapse delays have no NIR node", node=name,
                              fix="express delays as Delay ops before or after the synapse")
    if isinstance(op, Dense):
        weight = np.asarray(op.weight, dtype=np.float64)
        if op.bias is not None and np.any(op.bias):
            return nir.Affine(weight=weight, bias=np.asarray(op.bias, dtype=np.float64), metadata=meta)
        return nir.Linear(weight=weight, metadata=meta)
    if isinstance(op, Sparse):
        return nir.Linear(weight=np.asarray(op.to_dense(), dtype=np.float64).reshape(-1, op.in_size), metadata=meta)
    if isinstance(op, Conv2d):
        weight = np.asarray(op.weight, dtype=np.float64)
        bias = np.zeros(weight.shape[0]) if op.bias is None else np.asarray(op.bias, dtype=np.float64)
        return nir.Conv2d(input_shape=None if in_shape is None else tuple(int(d) for d in in_shape[1:]),
                          weight=weight, stride=op.stride, padding=op.padding, dilation=op.dilation,
                          groups=op.groups, bias=bias, metadata=meta)
    if isinstance(op, SumPool2d | AvgPool2d):
        cls = nir.SumPool2d if isinstance(op, SumPool2d) else nir.AvgPool2d
        return cls(kernel_size=np.array(op.kernel), stride=np.array(op.stride), padding=np.array(op.padding),
                   metadata=meta)
    if isinstance(op, Flatten):
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=op.start_dim, end_dim=op.end_dim,
                           metadata=meta)
    if isinstance(op, Scale):
        return nir.Scale(scale=_full(op.scale, shape), metadata=meta)
    if isinstance(op, Delay):
        return nir.Delay(delay=_full(op.delay, shape) * dt, metadata=meta)
    if op.role == "neuron":
        return _neuron_to_nir(name, op, dt)
    raise UnsupportedOpError(f"{op.op_type} has no NIR equivalent", node=name,
                             fix="export a graph of synapse, linear and neuron ops only")


def to_nir(graph: Graph, dt: float | None = None) -> Any:
    """Export a float IR graph as a ``nir.NIRGraph`` (the inverse of :func:`from_nir`; see the module docstring).

    ``dt`` defaults to ``graph.meta["dt"]``. The reset mode of every spiking neuron is kept in its NIR metadata
    (``reset``), which :func:`from_nir` reads back; other NIR tools see NIR's plain reset to ``v_reset = 0``.
    """
    import nir

    dt = graph.meta.get("dt") if dt is None else dt
    if dt is None or not (np.isfinite(dt) and dt > 0):
        raise ConversionError(f"exporting to NIR needs the step dt in seconds (got {dt!r})",
                              fix="pass dt or set graph.meta['dt']")
    dt = float(dt)
    graph.validate()
    shapes = graph.shapes()
    nodes = {}
    for name, op in graph.nodes.items():
        preds = graph.predecessors(name)
        in_shape = shapes[preds[0]] if preds else None
        nodes[name] = _op_to_nir(name, op, in_shape, tuple(shapes[name]), dt)
    out = nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False,
                       metadata={"source": "neurodeploy", "dt": dt})
    try:
        out.infer_types()
    except Exception:  # NIR's type inference is incomplete for some ops; the graph itself is still valid
        pass
    return out


def write_nir(graph: Graph, path: str | os.PathLike, dt: float | None = None) -> None:
    """Export ``graph`` with :func:`to_nir` and write it atomically with ``nir.write``."""
    import nir

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    nir_graph = to_nir(graph, dt)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        nir.write(tmp, nir_graph)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["from_nir", "to_nir", "write_nir", "read_nir", "SUPPORTED", "NIRTypeCheckWarning"]
