"""Wire protocol between neurodeploy and a Lava worker (a local Python 3.10 process today, a Loihi host later).

A message is one UTF-8 JSON header line, ``\\n``-terminated, whose ``payload_bytes`` field gives the length of the
binary payload that follows: an ``.npz`` archive read with ``allow_pickle=False``. Nothing is ever unpickled, so a
worker cannot make the client run code and vice versa. The framing works on any byte stream (pipes, sockets).

Request ``{"op": "run", "version": 1, "description": {...}, "record": [...], "run_config": {...}}`` with payload
arrays ``desc/<key>`` (the description's arrays) and ``input/<name>`` (stimulus ``[B, T, *shape]``).
Response ``{"ok": true, "seconds": s}`` with the result arrays, or ``{"ok": false, "error": {"type", "message"}}``.
"""

from __future__ import annotations

import io
import json
from typing import Any, BinaryIO

import numpy as np

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed message."""


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **(arrays or {}))
    payload = buf.getvalue()
    head = dict(header, payload_bytes=len(payload))
    return json.dumps(head, sort_keys=True).encode() + b"\n" + payload


def write_message(stream: BinaryIO, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    stream.write(encode(header, arrays))
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise ProtocolError(f"stream ended {remaining} bytes before the end of the payload")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Read one message; None at a clean end of stream."""
    line = stream.readline(MAX_HEADER_BYTES)
    if not line:
        return None
    try:
        header = json.loads(line)
        size = int(header["payload_bytes"])
    except (ValueError, KeyError, TypeError) as err:
        raise ProtocolError(f"malformed header ({err}): {line[:200]!r}") from None
    payload = _read_exact(stream, size)
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as err:
        raise ProtocolError(f"malformed payload ({err})") from None
    return header, arrays
