"""The Lava wire protocol from the client's side (main environment, no Lava needed): framing errors are
ProtocolErrors (BackendErrors) with ``fatal`` set as documented, and a worker that answers garbage, nothing, or a
wrong set of arrays makes ``run --backend lava`` raise a named error, never a traceback or a silent result."""

from __future__ import annotations

import io
import json
import os
import stat

import numpy as np
import pytest

from neurodeploy.backends.lava import backend, protocol
from neurodeploy.errors import BackendError, InputError, NeurodeployError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=1.0)


class _Artifact:  # in memory: never written, so its description is describe(graph)
    def __init__(self, graph):
        self.graph, self.path, self.manifest = graph, None, {}


def _graph() -> Graph:
    nodes = {"in": Input(shape=(2,)), "fc": Dense(weight=np.array([[100, -20], [50, 60]]), quant=Q),
             "lif": CubaLIF(shape=(2,), du=400, dv=300, vth=100, quant=Q), "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])


def _read(data: bytes, **limits):
    return protocol.read_message(io.BytesIO(data), **limits)


# ----------------------------------------------------------------------------------------------------- framing
def test_round_trip_and_clean_end():
    data = protocol.encode({"op": "x"}, {"a": np.arange(3, dtype=np.int32)}) + protocol.encode({"op": "y"})
    stream = io.BytesIO(data)
    header, arrays = protocol.read_message(stream)
    assert header["op"] == "x" and arrays["a"].dtype == np.int32 and list(arrays["a"]) == [0, 1, 2]
    assert protocol.read_message(stream) == ({"op": "y", "payload_bytes": 0}, {})
    assert protocol.read_message(stream) is None


@pytest.mark.parametrize("line", [b'{"payload_bytes": 1e999}\n', b'{"payload_bytes": -1}\n',
                                  b'{"payload_bytes": "3"}\n', b'{"payload_bytes": true}\n',
                                  b"{}\n", b"nope\n", b"[]\n", b"[" * 50_000 + b"\n", b"\xff\n"])
def test_bad_header_is_recoverable_and_consumes_only_its_line(line):
    stream = io.BytesIO(line + protocol.encode({"op": "next"}))
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.read_message(stream)
    assert err.value.fatal is False and isinstance(err.value, BackendError)
    assert protocol.read_message(stream)[0]["op"] == "next"


def test_bad_payload_is_recoverable_after_its_declared_length():
    junk = b"PK\x03\x04" + bytes(100)
    stream = io.BytesIO(json.dumps({"payload_bytes": len(junk)}).encode() + b"\n" + junk + protocol.encode({"op": "n"}))
    with pytest.raises(protocol.ProtocolError, match="Lava protocol payload") as err:
        protocol.read_message(stream)
    assert err.value.fatal is False
    assert protocol.read_message(stream)[0]["op"] == "n"


@pytest.mark.parametrize("data,limits,match", [
    (b'{"payload_bytes": 4611686018427387904}\n', {}, "over the 2147483648-byte limit"),
    (b'{"payload_bytes": 10}\n' + bytes(10), {"max_payload": 9}, "over the 9-byte limit"),
    (b'{"payload_bytes": 10}\n' + bytes(3), {}, "ended 7 bytes before"),
    (b'{"pad": "' + b"x" * 100 + b'"}\n', {"max_header": 50}, "longer than 50 bytes"),
    (b'{"payload_b', {}, "ended inside a header"),
])
def test_unsynchronisable_frames_are_fatal(data, limits, match):
    with pytest.raises(protocol.ProtocolError, match=match) as err:
        _read(data, **limits)
    assert err.value.fatal is True


def test_payload_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES", "5")
    with pytest.raises(protocol.ProtocolError, match="over the 5-byte limit"):
        _read(protocol.encode({}, {"a": np.zeros(1)}))
    monkeypatch.setenv("NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES", "many")
    with pytest.raises(BackendError, match="NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES"):
        _read(protocol.encode({}))


# ------------------------------------------------------------------------------------------ malformed answers
EXPECTED = {"out": (1, 4, 2)}
GOOD = np.zeros((1, 4, 2), np.uint8)


@pytest.mark.parametrize("response,arrays,match", [
    ({}, {}, "no 'ok' boolean"),
    ({"ok": "yes"}, {"out": GOOD}, "no 'ok' boolean"),
    ({"ok": False}, {}, "without an error type"),
    ({"ok": False, "error": "boom"}, {}, "without an error type"),
    ({"ok": True}, {}, r"answered arrays \[\], expected \['out'\]"),
    ({"ok": True}, {"out": GOOD, "extra": GOOD}, "answered arrays"),
    ({"ok": True}, {"out": GOOD[:, :3]}, "expected integers shaped"),
    ({"ok": True}, {"out": GOOD.astype(np.float64)}, "float64"),
])
def test_malformed_answer_is_a_protocol_error(response, arrays, match):
    with pytest.raises(protocol.ProtocolError, match=match):
        backend.check_response((response, arrays), EXPECTED)


def test_worker_errors_are_reraised_by_class():
    with pytest.raises(InputError, match=r"\(in the Lava worker\) bad stimulus"):
        backend.check_response(({"ok": False, "error": {"type": "InputError", "message": "bad stimulus"}}, {}),
                               EXPECTED)
    with pytest.raises(BackendError, match="the Lava worker failed: KeyError: 'x'"):
        backend.check_response(({"ok": False, "error": {"type": "KeyError", "message": "'x'"}}, {}), EXPECTED)
    np.testing.assert_array_equal(backend.check_response(({"ok": True}, {"out": GOOD}), EXPECTED)["out"], GOOD)


def _fake_python(tmp_path, body: bytes) -> str:
    """An executable that ignores its arguments and writes ``body`` to stdout: a worker gone wrong."""
    (tmp_path / "answer.bin").write_bytes(body)
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\ncat '{tmp_path / 'answer.bin'}'\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize("body,error,match", [
    (b"Segmentation fault\n", protocol.ProtocolError, "answered a malformed frame: a header line is not JSON"),
    (b'{"ok": true, "payload_bytes": 99}\nPK', protocol.ProtocolError, "ended 97 bytes before"),
    (b"", BackendError, r"returned no answer \(exit 3\)"),
    (protocol.encode({"ok": True}, {"out": np.zeros((1, 4, 2), np.float32)}), protocol.ProtocolError, "float32"),
    (protocol.encode({"ok": True}, {"out": GOOD}), None, None),
])
def test_run_through_a_misbehaving_worker(tmp_path, monkeypatch, body, error, match):
    monkeypatch.setattr(backend, "_lava_importable", lambda: False)
    python = _fake_python(tmp_path, body)
    x = np.zeros((1, 4, 2), np.uint8)
    if error is None:
        arrays, _ = backend.run(_Artifact(_graph()), x, lava_python=python)
        np.testing.assert_array_equal(arrays["spikes"], GOOD)
        return
    with pytest.raises(error, match=match) as err:
        backend.run(_Artifact(_graph()), x, lava_python=python)
    assert isinstance(err.value, NeurodeployError) and "Traceback" not in str(err.value)
    assert os.fspath(python) in str(err.value)


# ------------------------------------------------------------------------------------------ mutation corpus
def _run_frame() -> bytes:
    from neurodeploy.backends.lava import describe
    from neurodeploy.backends.lava.rebuild import encode
    from neurodeploy.backends.lava.worker import rebuild_sha256

    arrays: dict = {}
    header = {"op": "run", "version": protocol.PROTOCOL_VERSION, "description": encode(describe(_graph()), "desc",
                                                                                       arrays),
              "record": ["u"], "nodes": None, "rebuild_sha256": rebuild_sha256()}
    arrays["input/in"] = np.ones((1, 4, 2), np.uint8)
    return protocol.encode(header, arrays)


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # flip bytes
        for i in rng.integers(0, len(buf), rng.integers(1, 8)):
            buf[i] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncate
        del buf[rng.integers(0, len(buf)):]
    elif kind == 2:  # insert junk
        at = int(rng.integers(0, len(buf)))
        buf[at:at] = bytes(rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8))
    else:  # delete a span
        at = int(rng.integers(0, len(buf)))
        del buf[at:at + int(rng.integers(1, 64))]
    return bytes(buf)


def test_worker_serves_mutated_frames_without_raising(monkeypatch):
    """400 seeded mutants of a run request, each followed by a hello, served in-process (a mutant that is still a
    valid request gets a BackendError frame instead of a Lava run): serve() never raises, every answer is a
    well-formed frame, a non-fatal stream ends with the hello's answer, a fatal one ends after one fatal frame."""
    import importlib

    from neurodeploy.backends.lava import worker

    lava_run = importlib.import_module("neurodeploy.backends.lava.run")  # the package's `run` is the registry function

    def no_lava():
        raise BackendError("no lava in this test")

    monkeypatch.setattr(lava_run, "require_lava", no_lava)  # a still-valid mutant must not start Lava
    frame, hello = _run_frame(), protocol.encode({"op": "hello"})
    body_start = frame.index(b"\n") + 1
    rng = np.random.default_rng(14)
    fatal = answered = 0
    for i in range(400):
        payload_only = i % 4 == 0  # byte flips inside the payload keep the frame's extent: the hello must follow
        if payload_only:
            data = bytearray(frame)
            for at in rng.integers(body_start, len(data), rng.integers(1, 8)):
                data[at] ^= int(rng.integers(1, 256))
            data = bytes(data)
        else:
            data = _mutate(frame, rng)
        out = io.BytesIO()
        code = worker.serve(io.BytesIO(data + hello), out, max_payload=1 << 20)
        answers = []
        stream = io.BytesIO(out.getvalue())
        while (message := protocol.read_message(stream)) is not None:
            answers.append(message[0])
        assert answers and all(isinstance(a.get("ok"), bool) for a in answers)
        assert all(a["ok"] is False for a in answers[:-1])
        hello_answered = answers[-1].get("protocol_version") == protocol.PROTOCOL_VERSION
        answered += hello_answered
        if code == 2:
            fatal += 1
            assert answers[-1]["error"]["fatal"] is True and not payload_only
        else:
            assert code == 0 and (hello_answered or not payload_only), answers
    assert 0 < fatal < 200 and answered >= 100, (fatal, answered)  # resynchronised after every payload-only flip


def test_request_over_the_payload_limit_is_refused_before_starting_a_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "_lava_importable", lambda: False)
    monkeypatch.setenv("NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES", "1000")
    python = _fake_python(tmp_path, b"")
    (tmp_path / "answer.bin").unlink()  # the fake worker would fail loudly if it were started
    with pytest.raises(BackendError, match="over the worker's 1000-byte payload limit.*run fewer samples"):
        backend.run(_Artifact(_graph()), np.zeros((1, 4, 2), np.uint8), lava_python=python)
