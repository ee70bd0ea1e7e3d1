"""Mutation operators for the fuzz suite: raw bytes, JSON documents, ZIP/.npz archives, .npy headers, NIR HDF5
files and ONNX protobufs. Every operator takes a ``numpy.random.Generator`` and is deterministic given it."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: Values that break parsers and range checks: extremes, NaN/inf (written as JSON 1e999), wrong types.
INTERESTING = [0, -1, 1, 255, 256, -256, 4095, 4096, 2**23, 2**31, -(2**31) - 1, 2**62, 10**30, -(10**30), 1e999,
               -1e999, 1e-300, 0.5, "x", "", None, True, [], {}, [1e12], [-5], [[1, 2], [3]], {"array": "nope"}]


def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """Flip bits, overwrite, truncate, insert, delete or duplicate a random range of ``data``."""
    d = bytearray(data)
    if not d:
        return bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    kind = rng.integers(7)
    i = int(rng.integers(len(d)))
    n = int(rng.integers(1, 17))
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            j = int(rng.integers(len(d)))
            d[j] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        d[i:i + n] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    elif kind == 2:
        d = d[:i]
    elif kind == 3:
        d[i:i] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    elif kind == 4:
        del d[i:i + n * 16]
    elif kind == 5:
        d[i:i] = d[i:i + n * 16]
    else:
        value = [0, 0xFF, 0x7F, 0x80, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000][int(rng.integers(7))]
        d[i:i + 4] = int(value).to_bytes(4, "little")
    return bytes(d)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            out += _paths(v, prefix + (i,))
    return out


def mutate_json_value(obj: Any, rng: np.random.Generator) -> Any:
    """Replace, delete, retype or nest one randomly chosen value of a JSON document (a copy is returned)."""
    obj = json.loads(json.dumps(obj))
    paths = _paths(obj)
    path = paths[int(rng.integers(len(paths)))]
    if not path:
        return INTERESTING[int(rng.integers(len(INTERESTING)))]
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    kind = rng.integers(5)
    if kind == 0 and isinstance(parent, dict):
        del parent[key]
    elif kind == 1 and isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
        parent[key] = parent[key] * [10, -1, 1000, 2**20][int(rng.integers(4))]
    elif kind == 2:
        parent[key] = [parent[key]]
    else:
        parent[key] = INTERESTING[int(rng.integers(len(INTERESTING)))]
    return obj


def mutate_json_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """A JSON document with one value mutated (mostly) or its bytes mutated."""
    if rng.random() < 0.8:
        try:
            return json.dumps(mutate_json_value(json.loads(data), rng)).encode()
        except ValueError:
            pass
    return mutate_bytes(data, rng)


def mutate_npy(data: bytes, rng: np.random.Generator) -> bytes:
    """Edit an ``.npy`` member: its declared shape, dtype or order, its data values, or its raw bytes."""
    kind = rng.integers(4)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        return mutate_bytes(data, rng)
    if kind == 0:  # header lies about the shape / dtype
        shape = list(arr.shape) or [1]
        j = int(rng.integers(len(shape)))
        shape[j] = [0, 10**12, shape[j] + 1, max(shape[j] - 1, 0), 2**40][int(rng.integers(5))]
        descr = [arr.dtype.str, "|O", "<c16", "|V8", "<U3", "<f2", ">i8", "<M8[s]"][int(rng.integers(8))]
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": bool(rng.integers(2)),
                                                      "shape": tuple(shape)})
        raw = arr.tobytes()
        return header.getvalue() + raw[: int(rng.integers(len(raw) + 1))]
    if kind == 1 and arr.dtype.kind in "biuf" and arr.size:  # extreme values
        flat = arr.astype(np.float64).ravel()
        idx = rng.integers(0, flat.size, int(rng.integers(1, 4)))
        flat[idx] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 2**31, 1e-30][int(rng.integers(7))]
        out = io.BytesIO()
        np.save(out, flat.reshape(arr.shape).astype(arr.dtype) if arr.dtype.kind == "f" else flat.reshape(arr.shape))
        return out.getvalue()
    if kind == 2:  # another dtype / shape, honestly written
        out = io.BytesIO()
        variants = [arr.astype(np.complex128) + 1j, arr.reshape(-1), arr.astype(np.float32), arr.ravel()[:0],
                    np.array(arr.astype(str)), arr.reshape(arr.shape + (1,)), np.zeros((), arr.dtype)]
        np.save(out, variants[int(rng.integers(len(variants)))])
        return out.getvalue()
    return mutate_bytes(data, rng)


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def write_zip(members: dict[str, bytes], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def mutate_zip(data: bytes, rng: np.random.Generator) -> bytes:
    """Mutate one member of a ZIP archive (JSON or .npy aware), drop / duplicate / add a member, or its bytes."""
    try:
        members = zip_members(data)
    except Exception:
        return mutate_bytes(data, rng)
    if not members or rng.random() < 0.15:
        return mutate_bytes(data, rng)
    names = list(members)
    name = names[int(rng.integers(len(names)))]
    kind = rng.integers(10)
    if kind == 0:
        del members[name]
    elif kind == 1:
        members["extra.npy" if rng.random() < 0.5 else "extra.bin"] = members[name]
    elif name.endswith(".json"):
        members[name] = mutate_json_bytes(members[name], rng)
    elif name.endswith(".npy"):
        members[name] = mutate_npy(members[name], rng)
    else:
        members[name] = mutate_bytes(members[name], rng)
    return write_zip(members, compressed=bool(rng.integers(2)))


def mutate_hdf5(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Copy a NIR HDF5 file to ``dst`` and edit it: one dataset's values, dtype or shape, a deleted node or edge
    list, a changed node type, string or complex data; or (20 %) mutate the file's bytes."""
    import shutil

    import h5py

    if rng.random() < 0.2:
        dst.write_bytes(mutate_bytes(src.read_bytes(), rng))
        return
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        datasets: list[str] = []
        groups: list[str] = []
        f.visititems(lambda name, obj: (datasets if isinstance(obj, h5py.Dataset) else groups).append(name))
        kind = rng.integers(8)
        if kind == 0 and groups:
            del f[groups[int(rng.integers(len(groups)))]]
            return
        name = datasets[int(rng.integers(len(datasets)))]
        value = f[name][()]
        del f[name]
        arr = np.asarray(value)
        if kind == 1 and arr.dtype.kind in "biuf" and arr.size:
            arr = arr.astype(np.float64)
            arr.ravel()[int(rng.integers(arr.size))] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -1.0][
                int(rng.integers(7))]
            f[name] = arr
        elif kind == 2:
            f[name] = arr.astype(np.complex128) + 0.5j if arr.dtype.kind in "biuf" else arr
        elif kind == 3:
            f[name] = np.bytes_(str(arr.tolist())[:200])
        elif kind == 4:
            f[name] = arr.reshape(-1)[: max(arr.size - 1, 0)] if arr.size else np.zeros(3)
        elif kind == 5:
            f[name] = np.zeros(tuple(arr.shape) + (2,)) if arr.dtype.kind in "biuf" else np.bytes_("LIF")
        elif kind == 6:
            f[name] = arr * [1e6, -1, 1e-9, 0][int(rng.integers(4))] if arr.dtype.kind in "biuf" else arr
        else:
            f[name] = np.bytes_(["Affine", "LIF", "CubaLIF", "Conv2d", "Flatten", "Bogus", ""][int(rng.integers(7))])


def mutate_onnx(data: bytes, rng: np.random.Generator) -> bytes:
    """Edit an ONNX model: an initializer's dims / data type / raw data, an input dimension, a node's op type or
    attribute, a removed node or input; or (20 %) the protobuf's bytes."""
    import onnx

    if rng.random() < 0.2:
        return mutate_bytes(data, rng)
    model = onnx.load_from_string(data)
    g = model.graph
    kind = rng.integers(7)
    if kind == 0 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if t.dims:
            j = int(rng.integers(len(t.dims)))
            t.dims[j] = [0, 10**12, t.dims[j] + 1, 1][int(rng.integers(4))]
    elif kind == 1 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        t.data_type = int(rng.choice([2, 3, 6, 7, 8, 9, 10, 11, 14, 16, 99]))
    elif kind == 2 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if t.raw_data:
            t.raw_data = mutate_bytes(t.raw_data, rng)
        elif t.float_data:
            t.float_data[int(rng.integers(len(t.float_data)))] = [float("nan"), float("inf"), 1e30][
                int(rng.integers(3))]
    elif kind == 3 and g.input:
        dims = g.input[0].type.tensor_type.shape.dim
        if dims:
            dims[int(rng.integers(len(dims)))].dim_value = [10**12, 0, 2**31, 7][int(rng.integers(4))]
    elif kind == 4 and g.node:
        g.node[int(rng.integers(len(g.node)))].op_type = ["Relu", "Gemm", "Conv", "Softmax", "Bogus", "LSTM",
                                                          "Add"][int(rng.integers(7))]
    elif kind == 5 and g.node:
        node = g.node[int(rng.integers(len(g.node)))]
        if node.attribute:
            a = node.attribute[int(rng.integers(len(node.attribute)))]
            if a.ints:
                a.ints[int(rng.integers(len(a.ints)))] = [0, -1, 10**9, 7][int(rng.integers(4))]
            else:
                a.i = [0, -1, 10**9][int(rng.integers(3))]
                a.f = float([np.nan, -1.0, 1e30][int(rng.integers(3))])
        elif node.input:
            node.input[int(rng.integers(len(node.input)))] = "missing_tensor"
    elif g.node:
        del g.node[int(rng.integers(len(g.node)))]
    return model.SerializeToString()
