"""Turn a MODEL argument into a float IR graph.

Accepted forms: a NIR file (``.nir``, ``.h5``), an ONNX ANN (``.onnx``, converted to a rate-coded SNN; thresholds
are balanced on ``ann_calibration`` -- the ANN's own inputs ``[B, *shape]`` -- or, without it, from the weights), a
neurodeploy graph (``.ndg``), or ``path/to/file.py:object``
naming a torch module (converted from snnTorch; needs ``input_shape``), a :class:`~neurodeploy.ir.Graph` or a NIR
graph object. Python files are executed: only load code you trust (the same holds for any ``.py`` model).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from neurodeploy.errors import ConversionError, SerializationError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import load_graph

NIR_SUFFIXES = (".nir", ".h5", ".hdf5")


def _load_object(spec: str) -> Any:
    file_part, _, attr = spec.rpartition(":")
    path = Path(file_part)
    if not path.is_file():
        raise SerializationError(f"model file '{path}' does not exist", fix="check the path before ':object'")
    module_name = f"_neurodeploy_model_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise SerializationError(f"'{path}' is not a Python module", fix="pass a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's own code failed: report it as such
        raise ConversionError(f"importing '{path}' failed: {type(err).__name__}: {err}",
                              fix="run the file with python to debug it") from None
    if not hasattr(module, attr):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise ConversionError(f"'{path}' has no object named '{attr}' (it defines {names[:12]})",
                              fix="name the module object after ':'")
    return getattr(module, attr)


def load_model(spec: str, input_shape: tuple[int, ...] | None = None, dt: float | None = None,
               reset: str | None = None, ann_calibration: Any = None) -> Graph:
    """Load MODEL (see the module docstring) as a float or quantized IR graph.

    Every defect of the file raises a :class:`~neurodeploy.errors.NeurodeployError` naming the file (and the node
    and field where there is one); a graph read or converted from a file has passed
    ``Graph.validate(finite=True)``.
    """
    path = Path(spec)
    if path.suffix.lower() in (".ndg", ".onnx", *NIR_SUFFIXES) and path.exists() and not path.is_file():
        raise SerializationError(f"model '{path}' is a directory, not a file", fix="pass the model file itself")
    if path.suffix.lower() == ".ndg":
        return load_graph(path)
    if path.suffix.lower() in NIR_SUFFIXES:
        if not path.is_file():
            raise SerializationError(f"model file '{path}' does not exist", fix="check the path")
        from neurodeploy.converters.nir import from_nir

        return from_nir(path, **_nir_options(dt, reset))
    if path.suffix.lower() == ".onnx":
        from neurodeploy.converters.onnx import from_onnx

        return from_onnx(path, calibration=ann_calibration, input_shape=input_shape, **_nir_options(dt, reset))
    if ":" in spec and spec.rpartition(":")[0].endswith(".py"):
        obj = _load_object(spec)
        return graph_from_object(obj, spec, input_shape, dt)
    if not path.exists():
        raise SerializationError(f"model '{spec}' does not exist", fix="pass a .nir, .onnx, .ndg or file.py:object")
    raise ConversionError(f"cannot tell what kind of model '{spec}' is",
                          fix="pass a NIR file (.nir), a neurodeploy graph (.ndg) or path/to/file.py:object")


def _nir_options(dt: float | None, reset: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if dt is not None:
        options["dt"] = dt
    if reset is not None:
        options["reset"] = reset
    return options


def graph_from_object(obj: Any, name: str, input_shape: tuple[int, ...] | None, dt: float | None) -> Graph:
    """Convert an in-memory model object (Graph, NIR graph or torch module) into an IR graph."""
    if isinstance(obj, Graph):
        return obj
    module_name = type(obj).__module__
    if module_name.startswith("nir"):
        from neurodeploy.converters.nir import from_nir

        return from_nir(obj, **_nir_options(dt, None))
    if hasattr(obj, "named_modules") and hasattr(obj, "forward"):
        if input_shape is None:
            raise ConversionError(f"'{name}' is a torch module: its input shape is needed",
                                  fix="pass --input-shape, e.g. --input-shape 64 or 1,28,28")
        from neurodeploy.converters.snntorch import from_snntorch

        return from_snntorch(obj, input_shape, **({} if dt is None else {"dt": dt}))
    raise ConversionError(f"'{name}' is a {type(obj).__name__}, not a model neurodeploy can convert",
                          fix="point at a torch.nn.Module, a nir.NIRGraph or a neurodeploy Graph")
