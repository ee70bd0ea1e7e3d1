"""Wire protocol between neurodeploy and a Lava worker (a local Python 3.10 process today, a Loihi host later).

Framing
-------
A frame is one UTF-8 JSON header line, ``\\n``-terminated, at most ``max_header_bytes`` long (newline included),
whose ``payload_bytes`` field (a JSON integer, ``0 <= payload_bytes <= max_payload_bytes``) gives the length of
the binary payload that follows: an ``.npz`` archive of plain numeric arrays (``0`` bytes: no arrays). The payload
is read with :func:`neurodeploy.fileio.read_npz`: nothing is ever unpickled, object / structured dtypes are
refused, and every array's declared size is checked against its member's bytes before anything is allocated. The
framing works on any byte stream (pipes, sockets).

Sizes are bounded before allocation: the header by ``max_header_bytes`` (:data:`MAX_HEADER_BYTES`, 64 MiB), the
payload by ``max_payload_bytes`` (:data:`MAX_PAYLOAD_BYTES`, 2 GiB; ``$NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES`` or the
worker's ``--max-payload-bytes`` change it).

Malformed frames and resynchronisation
--------------------------------------
:func:`read_message` raises :class:`ProtocolError` with ``fatal`` telling whether the stream can go on:

* recoverable (``fatal=False``) -- the frame's extent is known and it has been consumed whole:
  a header line that is not JSON, not a JSON object, or has no valid ``payload_bytes`` (missing, negative,
  non-integer, ``1e999``, a string, a boolean) is taken to be a frame without payload (nothing after the line is
  consumed); a payload that is not a well-formed ``.npz`` of plain arrays (junk starting with ``PK``, a truncated
  zip, an ``.npy`` header declaring more data than it holds, object or structured dtypes) has been read to its
  declared length. The peer answers an error frame and reads the next line as the next header.
* fatal (``fatal=True``) -- the stream cannot be resynchronised: a header line longer than the limit (where it
  ends is unknown), a payload longer than the limit (draining an attacker-chosen length, up to ``2**62``, would
  hang), or a stream that ends inside a header or payload. The worker answers one error frame saying so and
  closes cleanly (exit status 2, one line on stderr, no traceback).

Messages
--------
Request ``{"op": "run", "version": 2, "description": {...}, "record": [...], "nodes": [...] | null,
"rebuild_sha256": "<hex>"}`` with payload arrays ``desc/<key>`` (the description's arrays) and ``input/<name>``
(stimulus ``[B, T, *shape]`` of 0/1). Response ``{"ok": true, "seconds": s}`` with the result arrays, or
``{"ok": false, "error": {"type", "message", "fatal"}}``. Request ``{"op": "hello"}`` answers
``{"ok": true, "protocol_version", "rebuild_sha256", "max_payload_bytes"}``.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, BinaryIO

import numpy as np

from neurodeploy.errors import BackendError, SerializationError

PROTOCOL_VERSION = 2
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_PAYLOAD_BYTES = 2 << 30
_CHUNK = 1 << 20


class ProtocolError(BackendError):
    """The peer sent something that is not a well-formed message; ``fatal``: the stream cannot go on."""

    def __init__(self, message: str, *, fatal: bool = False, fix: str | None = None):
        super().__init__(message, fix=fix or "send frames as protocol.encode writes them: one JSON header line "
                                              "with payload_bytes, then an .npz payload of that many bytes")
        self.problem = message
        self.fatal = fatal


def max_payload_bytes(value: int | None = None) -> int:
    """The payload limit: ``value``, else ``$NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES``, else :data:`MAX_PAYLOAD_BYTES`."""
    if value is None:
        env = os.environ.get("NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES")
        if env is None:
            return MAX_PAYLOAD_BYTES
        try:
            value = int(env)
        except ValueError:
            raise BackendError(f"NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES={env!r} is not an integer",
                               fix="set it to a byte count, e.g. 2147483648") from None
    if value < 0:
        raise BackendError(f"the payload limit must be a non-negative byte count, got {value}")
    return value


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One frame: the JSON header (with ``payload_bytes``) and the ``.npz`` of ``arrays`` (``np.savez``; no arrays:
    no payload)."""
    payload = b""
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        payload = buf.getvalue()
    head = dict(header, payload_bytes=len(payload))
    return json.dumps(head, sort_keys=True).encode() + b"\n" + payload


def write_message(stream: BinaryIO, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    stream.write(encode(header, arrays))
    stream.flush()


def error_header(err: BaseException, fatal: bool = False) -> dict[str, Any]:
    """The response header of a failed request: ``{"ok": false, "error": {"type", "message", "fatal"}}``."""
    return {"ok": False, "error": {"type": type(err).__name__, "message": str(err), "fatal": bool(fatal)}}


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read exactly ``n`` bytes (``n`` is already bounded by the limit), in chunks; a short stream is fatal."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            raise ProtocolError(f"the stream ended {n - len(buf)} bytes before the end of a {n}-byte payload",
                                fatal=True)
        buf += chunk
    return bytes(buf)


def _read_header_line(stream: BinaryIO, max_header: int) -> bytes | None:
    line = stream.readline(max_header + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) > max_header:
            raise ProtocolError(f"a header line is longer than {max_header} bytes; where it ends is unknown, so the "
                                "stream cannot be resynchronised", fatal=True)
        raise ProtocolError(f"the stream ended inside a header line ({len(line)} bytes without a newline)",
                            fatal=True)
    return line


def parse_header(line: bytes, max_payload: int) -> tuple[dict[str, Any], int]:
    """Header dict and payload length; :class:`ProtocolError` (recoverable unless the length is over the limit)."""
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProtocolError(f"a header line is not JSON ({type(err).__name__}: {err}): {line[:120]!r}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"a header line is JSON but not an object (got {type(header).__name__})")
    size = header.get("payload_bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ProtocolError(f"a header's payload_bytes must be a non-negative JSON integer, got {size!r}")
    if size > max_payload:
        raise ProtocolError(f"a header declares a {size}-byte payload, over the {max_payload}-byte limit; draining "
                            "it could hang, so the stream cannot be resynchronised", fatal=True,
                            fix="send smaller requests (fewer samples per request) or raise the limit "
                                "(NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES / the worker's --max-payload-bytes)")
    return header, size


def parse_payload(payload: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` payload (empty payload: none); a malformed one is a recoverable ProtocolError."""
    if not payload:
        return {}
    from neurodeploy.fileio import read_npz

    try:
        return read_npz(payload, "Lava protocol payload")
    except SerializationError as err:
        raise ProtocolError(str(err)) from None


def read_message(stream: BinaryIO, *, max_payload: int | None = None, max_header: int = MAX_HEADER_BYTES
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Read one frame: ``(header, arrays)``, or None at a clean end of stream (see the module doc for errors)."""
    limit = max_payload_bytes(max_payload)
    line = _read_header_line(stream, max_header)
    if line is None:
        return None
    header, size = parse_header(line, limit)
    payload = _read_exact(stream, size)
    return header, parse_payload(payload)
