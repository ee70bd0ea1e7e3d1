"""The sweep file (``SWEEP.toml``): models, evaluation data, calibration, axes, energy profiles and Ray options.

Format (every key is checked; an unknown key is an :class:`~neurodeploy.errors.InputError` naming the key and the
file; relative paths are relative to the TOML file)::

    name = "digits"                      # optional: the title of the HTML page
    [[model]]                            # one or more
    name = "nir"                         # unique, used in the results
    path = "../digits/digits_snn.nir"    # any MODEL the CLI accepts: .nir, .onnx, .ndg, file.py:object
    dt = 1e-3                            # NIR/ONNX: the time step (required for NIR); reset = "zero"|"subtract"
    input_shape = [64]                   # file.py:object: the torch module's input shape
    # or a family model:  family = "lsm"  with optional [model.reservoir], [model.inputs], [model.neuron] tables
    # (fields of neurodeploy.families.lsm ReservoirSpec / InputSpec / NeuronSpec; defaults: the LSM example's)

    [data]                               # the evaluation data: a file ...
    file = "../digits/digits_test.npz"   # .npz with the stimulus [B, T, *input_shape] and the labels [B]
    stimulus = "spikes"                  # array names (defaults shown)
    labels = "labels"
    train_file = "train.npz"             # readout = "logistic" only: the readout's training data (same names)
    # ... or a family task:  family = "lsm_digits", steps = 60, max_rate = 0.5, seed = 0 (load_digits, split)
    samples = 360                        # optional: the first N samples only
    shard_size = 90                      # samples per evaluation task (fixed: results never depend on workers)
    decode = "count"                     # "count": the output summed over time; "last": its last step
    readout = "argmax"                   # "argmax" of the decoded output, or "logistic" (a host readout trained
    readout_alpha = 1.0                  # on the decoded outputs of the training data, as the LSM family does)
    engine = "auto"                      # the emulator engine of every evaluation task: auto | numpy | numba

    [calibration]                        # the quantizer's calibration stimuli: the first calibration_size samples
    file = "calib.npz"                   # of this file (array "spikes"), or source = "train" (the training data)
    # or source = "generated" (the quantizer's Bernoulli stimuli, calibration_size of them)

    [axes]                               # each a list; the grid is their product (per model)
    target = ["emulator", "loihi2", "spinnaker"]
    weight_bits = [4, 6, 8]              # the quantizer's num_weight_bits (default: the profile's)
    "quantize.method" = ["calibrated", "maxabs"]
    calibration_size = [32]
    population_size = [256]              # spinnaker points only (other targets take none)
    chips = [1]                          # loihi2 / null points only (other targets take none)

    [energy]                             # target -> hardware profile that prices it and maps its cores
    emulator = "loihi2"                  # (defaults: emulator, loihi2, null -> loihi2; spinnaker -> spinnaker1)

    [ray]
    memory_mb = 2048                     # Ray memory resource per task (the scheduler's bound)
    max_retries = 3                      # retries of a task whose worker died
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodeploy.errors import InputError, SerializationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Axes in grid order, with the value a point takes when the axis is absent.
AXES: dict[str, Any] = {"target": "emulator", "weight_bits": None, "quantize.method": "calibrated",
                        "calibration_size": 32, "population_size": None, "chips": None}
#: Axes that apply to some targets only; other targets take the default once.
TARGET_AXES = {"population_size": ("spinnaker",), "chips": ("loihi2", "null")}
TARGETS = ("emulator", "loihi2", "spinnaker", "null")
DEFAULT_ENERGY = {"emulator": "loihi2", "loihi2": "loihi2", "null": "loihi2", "spinnaker": "spinnaker1"}
FAMILIES = {"lsm": ("reservoir", "inputs", "neuron")}
DATA_FAMILIES = ("lsm_digits",)
_TOP = ("name", "description", "model", "data", "calibration", "axes", "energy", "ray")
_MODEL_FILE = ("name", "path", "dt", "reset", "input_shape")
_MODEL_FAMILY = ("name", "family", "reservoir", "inputs", "neuron")
_DATA = ("file", "stimulus", "labels", "train_file", "family", "steps", "max_rate", "seed", "samples",
         "shard_size", "decode", "readout", "readout_alpha", "engine")
_CALIBRATION = ("file", "source")
_RAY = ("memory_mb", "max_retries")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the sweep: a file MODEL (``path``) or a family model (``family`` and its tables)."""

    name: str
    path: str | None = None
    family: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """The evaluation data and how an output becomes a decision (see the module docstring)."""

    file: Path | None = None
    stimulus: str = "spikes"
    labels: str = "labels"
    train_file: Path | None = None
    family: str | None = None
    family_options: dict[str, Any] = field(default_factory=dict)
    samples: int | None = None
    shard_size: int = 64
    decode: str = "count"
    readout: str = "argmax"
    readout_alpha: float = 1.0
    engine: str = "auto"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep file."""

    path: Path
    name: str
    models: tuple[ModelSpec, ...]
    data: DataSpec
    axes: dict[str, list]
    calibration_file: Path | None = None
    calibration_source: str = "file"  # "file", "train" or "generated"
    energy: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENERGY))
    memory_mb: int = 2048
    max_retries: int = 3


def _err(path: Path, key: str, problem: str, fix: str) -> InputError:
    return InputError(f"sweep file '{path}': {key} {problem}", fix=fix)


def _table(path: Path, where: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(path, f"[{where}]", f"is a {type(value).__name__}, not a table", f"write it as [{where}]")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise _err(path, f"key '{where}.{unknown[0]}'", "is not a sweep key",
                   f"use only {', '.join(allowed)} in [{where}]")
    return value


def _typed(path: Path, key: str, value: Any, kind: type | tuple, what: str) -> Any:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise _err(path, f"'{key}'", f"= {value!r} is not {what}", f"give {key} as {what}")
    return value


def _positive(path: Path, key: str, value: Any) -> int:
    _typed(path, key, value, int, "a positive integer")
    if value < 1:
        raise _err(path, f"'{key}'", f"= {value} is not a positive integer", f"give {key} as a positive integer")
    return int(value)


def _resolve(path: Path, key: str, text: Any) -> Path:
    _typed(path, key, text, str, "a path string")
    resolved = (path.parent / text).resolve()
    if not resolved.is_file():
        raise _err(path, f"'{key}'", f"names '{text}', which is not a file (resolved to {resolved})",
                   "give a path relative to the sweep file")
    return resolved


def _model(path: Path, i: int, entry: Any) -> ModelSpec:
    where = f"model[{i}]"
    if not isinstance(entry, dict):
        raise _err(path, where, "is not a table", "write each model as a [[model]] table")
    allowed = _MODEL_FAMILY if "family" in entry else _MODEL_FILE
    _table(path, where, entry, allowed)
    name = _typed(path, f"{where}.name", entry.get("name"), str, "a name string")
    if "family" in entry:
        family = entry["family"]
        if family not in FAMILIES:
            raise _err(path, f"'{where}.family'", f"= {family!r} is not a model family",
                       f"use one of {sorted(FAMILIES)}")
        options = {k: dict(_table(path, f"{where}.{k}", v, tuple(v) if isinstance(v, dict) else ()))
                   for k, v in entry.items() if k in FAMILIES[family]}
        return ModelSpec(name, family=family, options=options)
    if "path" not in entry:
        raise _err(path, where, "has neither 'path' nor 'family'", "give path = MODEL or family = \"lsm\"")
    spec = _typed(path, f"{where}.path", entry["path"], str, "a MODEL string")
    file_part, sep, obj = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    model_path = str(_resolve(path, f"{where}.path", file_part)) + (sep + obj if sep else "")
    options: dict[str, Any] = {}
    if "dt" in entry:
        options["dt"] = float(_typed(path, f"{where}.dt", entry["dt"], (int, float), "a number of seconds"))
    if "reset" in entry:
        if entry["reset"] not in ("zero", "subtract"):
            raise _err(path, f"'{where}.reset'", f"= {entry['reset']!r} is not a reset mode", "use zero or subtract")
        options["reset"] = entry["reset"]
    if "input_shape" in entry:
        shape = entry["input_shape"]
        if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
            raise _err(path, f"'{where}.input_shape'", f"= {shape!r} is not a list of positive sizes",
                       "write it like [64] or [1, 28, 28]")
        options["input_shape"] = list(shape)
    return ModelSpec(name, path=model_path, options=options)


def _data(path: Path, value: Any) -> DataSpec:
    d = _table(path, "data", value, _DATA)
    if ("file" in d) == ("family" in d):
        raise _err(path, "[data]", "needs exactly one of 'file' and 'family'",
                   "give file = \"test.npz\" or family = \"lsm_digits\"")
    kw: dict[str, Any] = {}
    if "file" in d:
        kw["file"] = _resolve(path, "data.file", d["file"])
        for key in ("stimulus", "labels"):
            if key in d:
                kw[key] = _typed(path, f"data.{key}", d[key], str, "an array name")
        if "train_file" in d:
            kw["train_file"] = _resolve(path, "data.train_file", d["train_file"])
        for key in ("steps", "max_rate", "seed"):
            if key in d:
                raise _err(path, f"'data.{key}'", "applies to a family task only", "leave it out with data.file")
    else:
        if d["family"] not in DATA_FAMILIES:
            raise _err(path, "'data.family'", f"= {d['family']!r} is not a data family", f"use one of {DATA_FAMILIES}")
        kw["family"] = d["family"]
        kw["family_options"] = {k: d[k] for k in ("steps", "max_rate", "seed") if k in d}
    if "samples" in d:
        kw["samples"] = _positive(path, "data.samples", d["samples"])
    if "shard_size" in d:
        kw["shard_size"] = _positive(path, "data.shard_size", d["shard_size"])
    for key, choices in (("decode", ("count", "last")), ("readout", ("argmax", "logistic")),
                         ("engine", ("auto", "numpy", "numba"))):
        if key in d and d[key] not in choices:
            raise _err(path, f"'data.{key}'", f"= {d[key]!r} is not one of {choices}", f"use one of {choices}")
        if key in d:
            kw[key] = d[key]
    if "readout_alpha" in d:
        kw["readout_alpha"] = float(_typed(path, "data.readout_alpha", d["readout_alpha"], (int, float), "a number"))
    spec = DataSpec(**kw)
    if spec.readout == "logistic" and spec.file is not None and spec.train_file is None:
        raise _err(path, "'data.readout'", "= \"logistic\" needs training data", "give data.train_file")
    return spec


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _axes(path: Path, value: Any) -> dict[str, list]:
    if not isinstance(value, dict):
        raise _err(path, "[axes]", "is not a table", "write [axes] with one list per axis")
    flat = _flatten(value)
    axes: dict[str, list] = {}
    for key, values in flat.items():
        if key not in AXES:
            raise _err(path, f"axis 'axes.{key}'", "is not a sweep axis", f"use one of {', '.join(AXES)}")
        if not isinstance(values, list) or not values:
            raise _err(path, f"axis 'axes.{key}'", f"= {values!r} is not a non-empty list", f"write {key} = [...]")
        if len(set(map(repr, values))) != len(values):
            raise _err(path, f"axis 'axes.{key}'", f"repeats a value in {values}", "list each value once")
        for v in values:
            _axis_value(path, key, v)
    for key in AXES:  # grid order
        if key in flat:
            axes[key] = list(flat[key])
    return axes


def _axis_value(path: Path, key: str, v: Any) -> None:
    if key == "target" and v not in TARGETS:
        raise _err(path, "'axes.target'", f"value {v!r} is not a target", f"use some of {TARGETS}")
    if key == "quantize.method" and v not in ("calibrated", "maxabs"):
        raise _err(path, "'axes.quantize.method'", f"value {v!r} is not a method", "use calibrated or maxabs")
    if key in ("weight_bits", "calibration_size", "population_size", "chips"):
        _positive(path, f"axes.{key}", v)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check ``SWEEP.toml`` (see the module docstring); relative paths resolve against its folder."""
    p = Path(path).resolve()
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SerializationError(f"sweep file '{path}' does not exist", fix="check the path") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SerializationError(f"sweep file '{path}' is not readable TOML ({err})",
                                 fix="fix the TOML syntax") from None
    _table(p, "top level", raw, _TOP)
    models = raw.get("model")
    if not isinstance(models, list) or not models:
        raise _err(p, "[[model]]", "is missing", "name at least one model in a [[model]] table")
    specs = tuple(_model(p, i, m) for i, m in enumerate(models))
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise _err(p, "model names", f"{names} repeat a name", "give every [[model]] its own name")
    if "data" not in raw:
        raise _err(p, "[data]", "is missing", "name the evaluation data in [data]")
    data = _data(p, raw["data"])
    cal = _table(p, "calibration", raw.get("calibration", {}), _CALIBRATION)
    source = cal.get("source", "file" if "file" in cal else "generated")
    if source not in ("file", "train", "generated") or (source == "file") != ("file" in cal):
        raise _err(p, "[calibration]", f"source = {source!r} with file {cal.get('file')!r} is inconsistent",
                   "give file = \"calib.npz\", or source = \"train\" or \"generated\" without a file")
    if source == "train" and data.train_file is None and data.family is None:
        raise _err(p, "'calibration.source'", "= \"train\" but [data] has no training data",
                   "give data.train_file or a calibration file")
    energy = dict(DEFAULT_ENERGY)
    for target, profile in _table(p, "energy", raw.get("energy", {}), TARGETS).items():
        energy[target] = _typed(p, f"energy.{target}", profile, str, "a hardware profile name")
    ray_opts = _table(p, "ray", raw.get("ray", {}), _RAY)
    retries = ray_opts.get("max_retries", 3)
    _typed(p, "ray.max_retries", retries, int, "an integer >= 0")
    if retries < 0:
        raise _err(p, "'ray.max_retries'", f"= {retries} is negative", "give 0 or more")
    name = raw.get("name", p.stem)
    return SweepSpec(path=p, name=_typed(p, "name", name, str, "a string"), models=specs, data=data,
                     axes=_axes(p, raw.get("axes", {})),
                     calibration_file=_resolve(p, "calibration.file", cal["file"]) if "file" in cal else None,
                     calibration_source=source, energy=energy,
                     memory_mb=_positive(p, "ray.memory_mb", ray_opts.get("memory_mb", 2048)), max_retries=retries)
