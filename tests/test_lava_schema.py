"""docs/lava_description.schema.json documents lava/description.json field by field: every description neurodeploy
emits (all process classes, an artifact compiled by the CLI) validates against it, and descriptions that break
the format (a bare-integer sign_mode, another version, unknown classes or fields) do not.

The validator below implements the subset of JSON Schema 2020-12 the schema uses (no new dependency) and refuses
any other keyword, so a schema using something it does not check cannot pass silently.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli as cli

from neurodeploy.backends.lava import describe
from neurodeploy.backends.lava.rebuild import VERSION, encode
from neurodeploy.ir import Conv2d, CubaLIF, Dense, Graph, Input, Output, PlasticDense, QuantInfo, Sparse

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "lava_description.schema.json").read_text())
Q = QuantInfo(scale=1.0)

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
_ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
_CHECKED = {"type", "const", "enum", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
            "minimum", "maximum", "oneOf", "anyOf", "$ref"}


def _is_type(value, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def errors(value, schema: dict, path: str = "$", root: dict = SCHEMA) -> list[str]:
    """Violations of ``schema`` by ``value`` (empty list: valid)."""
    unknown = set(schema) - _CHECKED - _ANNOTATIONS
    if unknown:
        raise AssertionError(f"the test validator does not implement {sorted(unknown)} (at {path})")
    out: list[str] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        out += errors(value, root["$defs"][ref[len("#/$defs/"):]], path, root)
    if "type" in schema and not _is_type(value, schema["type"]):
        return out + [f"{path}: expected {schema['type']}, got {type(value).__name__}"]
    if "const" in schema and (value != schema["const"] or type(value) is not type(schema["const"])):
        out.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        out.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        out += _object_errors(value, schema, path, root)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                out += errors(item, schema["items"], f"{path}[{i}]", root)
    if "oneOf" in schema:
        passing = [i for i, sub in enumerate(schema["oneOf"]) if not errors(value, sub, path, root)]
        if len(passing) != 1:
            out.append(f"{path}: matches {len(passing)} of the oneOf alternatives, not exactly one")
    if "anyOf" in schema and all(errors(value, sub, path, root) for sub in schema["anyOf"]):
        out.append(f"{path}: matches none of the anyOf alternatives")
    return out


def _object_errors(value: dict, schema: dict, path: str, root: dict) -> list[str]:
    out = [f"{path}: missing '{k}'" for k in schema.get("required", ()) if k not in value]
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            out += errors(item, props[key], f"{path}.{key}", root)
        elif extra is False:
            out.append(f"{path}: unexpected field '{key}'")
        elif isinstance(extra, dict):
            out += errors(item, extra, f"{path}.{key}", root)
    return out


def _doc(description: dict) -> dict:
    """The JSON document save_description writes (arrays replaced by {"npz": key})."""
    return json.loads(json.dumps(encode(description, "d", {})))


def _lif(n, **kw):
    return CubaLIF(shape=(n,), **{**dict(du=400, dv=300, vth=100, quant=Q), **kw})


def _all_classes_graph() -> Graph:
    rng = np.random.default_rng(0)
    nodes = {
        "in": Input(shape=(1, 4, 4)), "aux": Input(shape=(3,)),
        "conv": Conv2d(weight=rng.integers(-50, 50, (2, 1, 3, 3)), quant=Q), "c": _lif(8, bias=np.arange(8)),
        "dense": Dense(weight=rng.integers(-50, 50, (4, 8)), sign_mode="mixed", num_weight_bits=6, quant=Q),
        "ddense": Dense(weight=rng.integers(0, 50, (4, 3)), delays=rng.integers(0, 62, (4, 3)),
                        sign_mode="excitatory", quant=Q),
        "h": _lif(4, bias_exp=np.array([0, 1, 2, 3])),
        "sparse": Sparse(out_shape=(2,), in_size=4, row=np.array([0, 1]), col=np.array([3, 0]),
                         value=np.array([-9, -4]), sign_mode="inhibitory", quant=Q),
        "dsparse": Sparse(out_shape=(2,), in_size=4, row=np.array([1, 0]), col=np.array([2, 2]),
                          value=np.array([30, 20]), delays=np.array([3, 0]), quant=Q),
        "ro": _lif(2, vth=2**17 - 1, readout=True),
        "plastic": PlasticDense(weight=rng.integers(-20, 20, (3, 3)), dw="2^-2*x1*y0 - 2^-3*y1*x0", x1_impulse=16,
                                x1_tau=8, y1_impulse=16, y1_tau=8, t_epoch=2, quant=Q),
        "p": _lif(3), "o_ro": Output(), "o_p": Output(), "o_in": Output(),
    }
    edges = [("in", "conv"), ("conv", "c"), ("c", "dense"), ("dense", "h"), ("aux", "ddense"), ("ddense", "h"),
             ("h", "sparse"), ("sparse", "ro"), ("h", "dsparse"), ("dsparse", "ro"), ("ro", "o_ro"),
             ("aux", "plastic"), ("plastic", "p"), ("p", "o_p"), ("aux", "o_in")]
    return Graph(nodes, edges)


def test_schema_names_the_current_version():
    assert SCHEMA["properties"]["version"]["const"] == VERSION
    assert errors({"x": 1}, {"type": "object", "additionalProperties": False}) == ["$: unexpected field 'x'"]
    with pytest.raises(AssertionError, match="does not implement"):
        errors(1, {"pattern": "x"})


def test_every_process_class_validates():
    doc = _doc(describe(_all_classes_graph()))
    classes = {p["class"].rsplit(".", 1)[1] for p in doc["processes"]}
    assert classes == {"RingBuffer", "LIF", "Dense", "DelayDense", "Sparse", "DelaySparse", "LearningDense"}
    assert {p["kwargs"].get("sign_mode") for p in doc["processes"]} == {None, "MIXED", "EXCITATORY", "INHIBITORY"}
    assert errors(doc, SCHEMA) == []


def test_compiled_artifact_description_validates(capsys, tmp_path):
    art = tmp_path / "art"
    code, _, err = cli(capsys, "compile", str(ROOT / "examples/digits/digits_snn.nir"), "--dt", "1e-3",
                       "--target", "loihi2", "--out", str(art))
    assert code == 0, err
    doc = json.loads((art / "lava" / "description.json").read_text())
    assert doc["version"] == VERSION and errors(doc, SCHEMA) == []


def _break(doc: dict, how: str) -> dict:
    doc = copy.deepcopy(doc)
    dense = next(p for p in doc["processes"] if p["class"].endswith(".Dense"))
    lif = next(p for p in doc["processes"] if p["class"].endswith(".LIF"))
    if how == "sign_mode as an integer":
        dense["kwargs"]["sign_mode"] = 1
    elif how == "version 1":
        doc["version"] = 1
    elif how == "other format":
        doc["format"] = "lava"
    elif how == "unknown class":
        dense["class"] = "os.system"
    elif how == "unknown kwarg":
        dense["kwargs"]["weight_scale"] = 2
    elif how == "missing vth":
        del lif["kwargs"]["vth"]
    elif how == "du out of range":
        lif["kwargs"]["du"] = 4096
    elif how == "array inline instead of in arrays.npz":
        dense["kwargs"]["weights"] = [[1, 2]]
    elif how == "unknown output kind":
        next(iter(doc["outputs"].values()))["kind"] = "u"
    elif how == "boolean as integer":
        lif["kwargs"]["dv"] = True
    return doc


@pytest.mark.parametrize("how", ["sign_mode as an integer", "version 1", "other format", "unknown class",
                                 "unknown kwarg", "missing vth", "du out of range",
                                 "array inline instead of in arrays.npz", "unknown output kind", "boolean as integer"])
def test_broken_descriptions_do_not_validate(how):
    doc = _doc(describe(_all_classes_graph()))
    assert errors(doc, SCHEMA) == []
    assert errors(_break(doc, how), SCHEMA), how
