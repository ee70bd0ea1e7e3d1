"""The Lava worker (backends/lava/worker.py) as a subprocess fed malformed frames (issue 14).

Every recoverable malformed frame is followed by a well-formed ``hello``: the worker must answer an error frame
(``"fatal": false``) and then the hello, and after all of them a real ``run`` request whose answer equals the
emulator integer for integer. Frames after which the stream cannot be resynchronised (a header or payload over its
limit, a stream ending mid-frame) get one error frame with ``"fatal": true`` and a clean exit 2 -- never a
traceback, never a hang (every call has a timeout).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import numpy.lib.format as npf
import pytest

from neurodeploy.backends.lava import describe, protocol
from neurodeploy.backends.lava.rebuild import encode
from neurodeploy.backends.lava.worker import rebuild_sha256
from neurodeploy.emulator import simulate
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=1.0)
WORKER = [sys.executable, "-m", "neurodeploy.backends.lava.worker"]
HELLO = protocol.encode({"op": "hello"})


def _graph() -> Graph:
    nodes = {"in": Input(shape=(2,)),
             "fc": Dense(weight=np.array([[100, -20], [50, 60], [-90, 255]]), weight_exp=1, sign_mode="mixed",
                         quant=Q),
             "lif": CubaLIF(shape=(3,), du=400, dv=300, vth=100, quant=Q), "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])


def _run_request(graph: Graph, x: np.ndarray, **changes) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    header = {"op": "run", "version": protocol.PROTOCOL_VERSION, "description": encode(describe(graph), "desc", arrays),
              "record": ["u", "v", "spikes"], "nodes": None, "rebuild_sha256": rebuild_sha256()}
    arrays["input/in"] = x
    header.update(changes)
    return protocol.encode(header, arrays)


def _frame(header: dict, payload: bytes) -> bytes:
    return json.dumps(dict(header, payload_bytes=len(payload))).encode() + b"\n" + payload


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy_bomb() -> bytes:
    """An .npy member declaring 10**5 x 10**5 int64 (80 GB) over 16 bytes of data."""
    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": "<i8", "fortran_order": False, "shape": (10**5, 10**5)})
    return _zip({"input/in.npy": buf.getvalue() + bytes(16)})


def _savez(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


GOOD_NPZ = _savez(a=np.arange(1000))
JUNK = b"PK\x03\x04" + bytes(range(256)) * 4
X = (np.random.default_rng(7).random((2, 9, 2)) < 0.6).astype(np.uint8)

PROTOCOL_ERRORS = {
    "length 1e999": b'{"op": "run", "payload_bytes": 1e999}\n',
    "length -1": b'{"op": "run", "payload_bytes": -1}\n',
    "length not an integer": b'{"op": "run", "payload_bytes": "22"}\n',
    "length a float": b'{"op": "run", "payload_bytes": 22.0}\n',
    "length a boolean": b'{"op": "run", "payload_bytes": true}\n',
    "length missing": b'{"op": "run"}\n',
    "header not JSON": b"GET / HTTP/1.1\n",
    "header not UTF-8": b"\xff\xfe\xfa\n",
    "header a JSON list": b"[1, 2, 3]\n",
    "header JSON null": b"null\n",
    "header nested 100k deep": b"[" * 100_000 + b"\n",
    "junk payload starting with PK": _frame({"op": "run"}, JUNK),
    "truncated zip": _frame({"op": "run"}, GOOD_NPZ[: len(GOOD_NPZ) // 2]),
    "npy header bomb": _frame({"op": "run"}, _npy_bomb()),
    "object dtype": _frame({"op": "run"}, _savez(a=np.array([{"x": 1}, None], dtype=object))),
    "structured dtype": _frame({"op": "run"}, _savez(a=np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]))),
    "bare .npy payload": _frame({"op": "run"}, _npy(np.arange(5))),
    "zip of a non-array member": _frame({"op": "run"}, _zip({"evil.py": b"print(1)"})),
}

REQUEST_ERRORS = {
    "unknown op": (protocol.encode({"op": "explode"}), "ValueError"),
    "old protocol version": (_run_request(_graph(), X, version=1), "ValueError"),
    "description not an object": (_run_request(_graph(), X, description=[1, 2]), "ValueError"),
    "description of version 1": (_run_request(_graph(), X, description={**describe(_graph()), "version": 1,
                                                                          "processes": []}), "SerializationError"),
    "description refers to a missing array": (_frame({"op": "run", "version": protocol.PROTOCOL_VERSION,
                                                      "description": {"format": "neurodeploy-lava", "version": 2,
                                                                      "processes": {"npz": "nope"}},
                                                      "record": [], "nodes": None,
                                                      "rebuild_sha256": rebuild_sha256()}, b""),
                                              "SerializationError"),
    "another rebuild.py": (_run_request(_graph(), X, rebuild_sha256="0" * 64), "ValueError"),
    "record of an unknown field": (_run_request(_graph(), X, record=["w"]), "InputError"),
    "stimulus of the wrong shape": (_run_request(_graph(), X[:, :, :1]), "InputError"),
}


def _responses(stdout: bytes) -> list[tuple[dict, dict]]:
    stream, out = io.BytesIO(stdout), []
    while (message := protocol.read_message(stream)) is not None:
        out.append(message)
    return out


def _serve(data: bytes, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(WORKER + list(args), input=data, capture_output=True, timeout=600, check=False,
                          env={**os.environ, **(env or {})})


def test_worker_answers_every_malformed_frame_and_then_runs_a_good_request(lava):
    bad = {**PROTOCOL_ERRORS, **{k: v[0] for k, v in REQUEST_ERRORS.items()}}
    stream = b"".join(frame + HELLO for frame in bad.values()) + _run_request(_graph(), X)
    proc = _serve(stream)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()[-3000:]
    responses = _responses(proc.stdout)
    assert len(responses) == 2 * len(bad) + 1
    for i, name in enumerate(bad):
        (error, arrays), (hello, _) = responses[2 * i], responses[2 * i + 1]
        assert error["ok"] is False and error["error"]["fatal"] is False and not arrays, name
        expected = "ProtocolError" if name in PROTOCOL_ERRORS else REQUEST_ERRORS[name][1]
        assert error["error"]["type"] == expected, (name, error)
        assert "Traceback" not in error["error"]["message"]
        assert hello == {"ok": True, "protocol_version": protocol.PROTOCOL_VERSION, "rebuild_sha256": rebuild_sha256(),
                         "max_payload_bytes": protocol.MAX_PAYLOAD_BYTES, "payload_bytes": 0}, name
    answer, result = responses[-1]
    assert answer["ok"] is True, answer
    emu = simulate(_graph(), X, record=("u", "v", "spikes"))
    expected = {**emu.outputs, **emu.recorded}
    assert set(result) == set(expected)
    for key, ref in expected.items():
        np.testing.assert_array_equal(result[key], ref, err_msg=key)
    assert expected["out"].any() and expected["lif/u"].min() < 0


@pytest.mark.parametrize("name,data,args,env", [
    ("header over the limit", b'{"op": "hello", "pad": "' + b"x" * 5000 + b'"}\n', ("--max-header-bytes", "4096"),
     None),
    ("length 2**62", b'{"op": "run", "payload_bytes": 4611686018427387904}\n' + JUNK, (), None),
    ("payload over --max-payload-bytes", _frame({"op": "run"}, GOOD_NPZ), ("--max-payload-bytes", "1000"), None),
    ("payload over $NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES", _frame({"op": "run"}, GOOD_NPZ), (),
     {"NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES": "1000"}),
    ("stream ends inside the payload", b'{"op": "run", "payload_bytes": 100}\n' + bytes(10), (), None),
    ("stream ends inside a header", b'{"op": "hel', (), None),
])
def test_unsynchronisable_stream_gets_one_fatal_error_frame_and_a_clean_exit(name, data, args, env):
    proc = _serve(data + (HELLO if not name.startswith("stream ends") else b""), *args, env=env)
    responses = _responses(proc.stdout)
    assert len(responses) == 1, (name, responses)
    error = responses[0][0]
    assert error["ok"] is False and error["error"]["fatal"] is True and error["error"]["type"] == "ProtocolError"
    assert "resynchronised" in error["error"]["message"] or "ended" in error["error"]["message"]
    stderr = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert "cannot be resynchronised" in stderr


def test_empty_stdin_is_a_clean_end():
    proc = _serve(b"")
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""


def test_bad_limit_is_a_one_line_error():
    proc = _serve(HELLO, env={"NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES": "lots"})
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert b"NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES" in proc.stderr
