"""The fuzz suite in CI (about a minute): mutants of every input kind through every CLI entry point give only
clean errors or correct results (no crash, hang, partial output or destroyed file), and property-based tests of
the loaders. `make fuzz` runs thousands of fresh mutants per kind (figures in benchmarks/RESULTS.md)."""

import io
import json

import numpy as np
import pytest
from fuzz.harness import Fuzzer, Tally
from fuzz.protocol import check_worker, fuzz_protocol, lava_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodeploy.artifact import ARTIFACT_FORMAT, ARTIFACT_VERSION, check_manifest
from neurodeploy.errors import SerializationError
from neurodeploy.fileio import read_npz
from neurodeploy.ir.serialize import graph_from_bytes

CASES = 30  # per kind: ~1 minute for the six kinds on a 2-core machine


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    return Fuzzer(tmp_path_factory.mktemp("seeds"), timeout=120)


@pytest.mark.parametrize("kind", ["nir", "onnx", "ndg", "stimulus", "calibration", "artifact"])
def test_mutants_give_clean_errors_or_results(fuzzer, tmp_path, kind):
    tally = fuzzer.run([kind], CASES, seed=2026, work=tmp_path)
    counts = tally.counts[kind]
    assert tally.failures() == 0, tally.table() + "\n" + "\n".join(tally.examples)
    assert counts["error"] > 0, f"no mutant of kind {kind} was refused: the mutators do not reach the checks"


def test_worker_answers_malformed_frames():
    assert lava_python().exists(), "the Lava environment (.venv-lava) is required: run `make envs`"
    tally = fuzz_protocol(15, seed=2026, tally=Tally(), timeout=60)
    assert tally.failures() == 0, tally.table() + "\n" + "\n".join(tally.examples)
    frames = (b'{"payload_bytes": 1e999}\n', b'{"payload_bytes": -1}\n', b'{"payload_bytes": 4611686018427387904}\n',
              b"PK\x03\x04junk\n", b"[1, 2]\n")
    for frame in frames:
        outcome, detail = check_worker(frame, timeout=60)
        assert outcome == "error", detail


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _overwrite(data, good: bytes, least: int, most: int) -> bytearray:
    """``good`` with between ``least`` and ``most`` bytes overwritten at positions and values hypothesis draws."""
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(least, most))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    return blob


GOOD_NPZ = _npz(spikes=np.ones((2, 3, 4), np.uint8), w=np.arange(6.0).reshape(2, 3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_read_npz_returns_arrays_or_a_serialization_error(data):
    blob = _overwrite(data, GOOD_NPZ, 0, 6)
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        arrays = read_npz(bytes(blob), "stimulus")
    except SerializationError:
        return
    for array in arrays.values():  # whatever loads is a plain numeric array of consistent size
        assert array.dtype.kind in "biufcUS" and array.size * array.itemsize == array.nbytes


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["target", "profile", "backend", "inputs", "outputs", "latency_steps",
                                        "files", "mapping", "backend_options", "passes", "source"]), json_values))
def test_check_manifest_accepts_or_names_the_field(fields):
    manifest = dict({"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION}, **fields)
    try:
        check_manifest(json.loads(json.dumps(manifest)))
    except SerializationError as err:
        assert "manifest" in str(err)


def _ndg_bytes():
    from graphs import random_net

    from neurodeploy.ir.serialize import graph_to_bytes

    return graph_to_bytes(random_net(6, 5, 3))


GOOD_NDG = _ndg_bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_ndg_loads_or_raises_a_named_error(data):
    from neurodeploy.errors import NeurodeployError

    blob = _overwrite(data, GOOD_NDG, 1, 4)
    try:
        graph = graph_from_bytes(bytes(blob), "fuzz.ndg")
    except NeurodeployError:
        return
    graph.validate()
