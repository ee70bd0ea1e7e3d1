"""Fuzz the Lava worker protocol: each case starts a worker, sends one mutated frame, then a ``hello`` probe, and
closes its input. The worker must answer with well-formed frames only, never print a traceback, and end with
status 0 (having answered every frame it could delimit) or 2 (it said the stream could not go on, in an error frame
marked fatal). A worker that does not answer within the time limit is a hang."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np

from . import mutate
from .harness import ROOT, Tally

HELLO = b'{"op": "hello", "payload_bytes": 0}\n'


def lava_python() -> Path:
    return ROOT / ".venv-lava" / "bin" / "python"


def _frame(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue() if arrays else b""
    return json.dumps(dict(header, payload_bytes=len(payload))).encode() + b"\n" + payload


def seed_frames() -> list[bytes]:
    """A hello, a run request refused for its rebuild digest, and a run request with a stimulus payload."""
    x = np.zeros((1, 4, 3), np.uint8)
    run = {"op": "run", "version": 2, "description": {"format": "neurodeploy-lava", "version": 2, "processes": [],
                                                      "connections": []},
           "record": ["spikes"], "nodes": None, "rebuild_sha256": "0" * 64}
    return [HELLO, _frame(run, {"input/in": x}), _frame(dict(run, record=[]), {"input/in": x, "desc/w": x[0]})]


def mutate_frame(frame: bytes, rng: np.random.Generator) -> bytes:
    """Mutate a frame's header (JSON-aware, or its length field), its payload (ZIP/.npy-aware), or its bytes."""
    head, _, payload = frame.partition(b"\n")
    kind = rng.integers(5)
    if kind == 0:
        return mutate.mutate_json_bytes(head, rng).replace(b"\n", b" ") + b"\n" + payload
    if kind == 1:
        header = json.loads(head)
        header["payload_bytes"] = [10**999, -1, 2**62, "12", 1.5, None, True, len(payload) + 7,
                                   max(len(payload) - 7, 0)][int(rng.integers(9))] if rng.random() < 0.9 else 0
        text = json.dumps(header).replace("Infinity", "1e999")
        return text.encode() + b"\n" + payload
    if kind == 2 and payload:
        new = mutate.mutate_zip(payload, rng)
        header = json.loads(head)
        header["payload_bytes"] = len(new)
        return json.dumps(header).encode() + b"\n" + new
    if kind == 3:
        return b"PK\x03\x04" + bytes(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8)) + b"\n"
    return mutate.mutate_bytes(frame, rng)


def _responses(out: bytes) -> list[dict] | None:
    """Parse the worker's response frames; None when they are not well-formed."""
    stream, frames = io.BytesIO(out), []
    while True:
        line = stream.readline()
        if not line:
            return frames
        try:
            header = json.loads(line)
            size = int(header["payload_bytes"])
        except (ValueError, KeyError, TypeError):
            return None
        if len(stream.read(size)) != size:
            return None
        frames.append(header)


def check_worker(data: bytes, timeout: float, python: Path | None = None) -> tuple[str, str]:
    """Send ``data`` then a hello probe to a fresh worker; classify the outcome (ok / error / crash / hang)."""
    cmd = [str(python or lava_python()), "-m", "neurodeploy.backends.lava.worker"]
    try:
        proc = subprocess.run(cmd, input=data + HELLO, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", f"no answer within {timeout} s to {data[:120]!r}"
    err = proc.stderr.decode(errors="replace")
    frames = _responses(proc.stdout)
    detail = f"status {proc.returncode}, stderr {err[-300:]!r}, frame {data[:120]!r}"
    if "Traceback" in err or frames is None or not frames:
        return "crash", detail
    if proc.returncode == 0:  # a frame lying about its length desynchronises the stream: error frames, not a hello
        return ("ok" if all(f.get("ok") is True for f in frames) else "error"), detail
    if proc.returncode == 2 and frames[-1].get("ok") is False and frames[-1]["error"].get("fatal") is True:
        return "error", detail
    return "crash", detail


def fuzz_protocol(cases: int, seed: int, tally: Tally, timeout: float = 60.0) -> Tally:
    frames = seed_frames()
    for i in range(cases):
        rng = np.random.default_rng([seed, i, 7])
        data = mutate_frame(frames[int(rng.integers(len(frames)))], rng)
        outcome, detail = check_worker(data, timeout)
        tally.add("protocol", outcome, f"case {i} (seed {seed}): {detail}")
    return tally
