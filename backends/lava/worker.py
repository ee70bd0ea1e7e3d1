"""Lava worker: runs descriptions for a client that cannot import lava (lava-nc needs Python <= 3.10).

Started as ``<lava python> -m neurodeploy.backends.lava.worker [--max-payload-bytes N] [--max-header-bytes N]``;
reads frames from stdin and writes exactly one response frame per request frame to stdout, using
:mod:`neurodeploy.backends.lava.protocol` (JSON header + ``.npz`` payload, no pickle).

Request ``{"op": "run", "version": 2, "description": {...}, "record": [...], "nodes": [...] | null,
"rebuild_sha256": "<hex>"}`` with payload ``desc/<key>`` (the description's arrays, see
:func:`~neurodeploy.backends.lava.rebuild.encode`) and ``input/<name>`` (``[B, T, *shape]``). The description is
executed by :func:`neurodeploy.backends.lava.rebuild.run`; ``rebuild_sha256`` must equal the sha256 of this
worker's ``rebuild.py`` (the client sends the one of the artifact's ``lava/rebuild.py``), so the code that runs is
byte for byte the code the artifact ships. Response ``{"ok": true, "seconds": s}`` with the result arrays of
:func:`~neurodeploy.backends.lava.run.run_description`, or ``{"ok": false, "error": {"type", "message", "fatal"}}``.

Request ``{"op": "hello"}`` (no payload) answers ``{"ok": true, "protocol_version", "rebuild_sha256",
"max_payload_bytes"}``: a client can check a (remote) worker before sending a large request.

Robustness: every malformed frame gets an error frame and the worker reads the next one; only a frame after
which the stream cannot be resynchronised (see :mod:`.protocol`: a header or payload over its limit, a stream
ending mid-frame) ends it, after an error frame with ``"fatal": true``, with exit status 2 and one line on stderr.
A clean end of stdin ends it with status 0. No input makes it print a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from neurodeploy.backends.lava import protocol
from neurodeploy.errors import SerializationError

REBUILD_PATH = Path(__file__).with_name("rebuild.py")


def rebuild_sha256() -> str:
    """sha256 (hex) of the ``rebuild.py`` this worker executes."""
    return hashlib.sha256(REBUILD_PATH.read_bytes()).hexdigest()


def _check_request(header: dict[str, Any]) -> None:
    """Refuse requests of another op / version, malformed fields, or a different rebuild.py (ValueError)."""
    if header.get("op") != "run" or header.get("version") != protocol.PROTOCOL_VERSION:
        raise ValueError(f"unsupported request op={header.get('op')!r} version={header.get('version')!r}; this "
                         f"worker serves ops 'hello' and 'run' of protocol version {protocol.PROTOCOL_VERSION}")
    if not isinstance(header.get("description"), dict):
        raise ValueError("the request's 'description' must be a JSON object")
    record, nodes = header.get("record", []), header.get("nodes")
    if not isinstance(record, list) or not all(isinstance(f, str) for f in record):
        raise ValueError(f"the request's 'record' must be a list of field names, got {record!r}")
    if nodes is not None and (not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes)):
        raise ValueError(f"the request's 'nodes' must be null or a list of node names, got {nodes!r}")
    if header.get("rebuild_sha256") != rebuild_sha256():
        raise ValueError(f"the artifact's lava/rebuild.py (sha256 {header.get('rebuild_sha256')!r}) is not the "
                         f"rebuild.py this worker runs ({rebuild_sha256()}); recompile the artifact with this "
                         "neurodeploy version, or run its rebuild.py by hand in plain Lava")


def handle(header: dict[str, Any], arrays: dict[str, np.ndarray], max_payload: int | None = None
           ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Answer one well-framed request (never raises: errors become ``{"ok": false}`` responses)."""
    try:
        if header.get("op") == "hello":
            return {"ok": True, "protocol_version": protocol.PROTOCOL_VERSION, "rebuild_sha256": rebuild_sha256(),
                    "max_payload_bytes": protocol.max_payload_bytes(max_payload)}, {}
        _check_request(header)
        from neurodeploy.backends.lava import rebuild
        from neurodeploy.backends.lava.run import run_description

        try:
            description = rebuild.decode(header["description"],
                                         {k: v for k, v in arrays.items() if k.startswith("desc/")})
        except rebuild.DescriptionError as err:
            raise SerializationError(f"the request's description: {err}",
                                     fix="send the description's arrays as desc/<key> payload members") from None
        inputs = {k[6:]: v for k, v in arrays.items() if k.startswith("input/")}
        start = time.perf_counter()
        result = run_description(description, inputs, record=header.get("record", []), nodes=header.get("nodes"))
        return {"ok": True, "seconds": time.perf_counter() - start}, result
    except Exception as err:  # reported to the client, which raises it as a neurodeploy error
        return protocol.error_header(err), {}


def serve(stdin: BinaryIO, stdout: BinaryIO, max_payload: int | None = None,
          max_header: int = protocol.MAX_HEADER_BYTES) -> int:
    """Answer frames until stdin ends (0) or a frame leaves the stream unsynchronisable (2)."""
    while True:
        try:
            message = protocol.read_message(stdin, max_payload=max_payload, max_header=max_header)
        except protocol.ProtocolError as err:
            protocol.write_message(stdout, protocol.error_header(err, fatal=err.fatal))
            if err.fatal:
                print(f"neurodeploy Lava worker: closing, the stream cannot be resynchronised: {err}",
                      file=sys.stderr)
                return 2
            continue
        if message is None:
            return 0
        protocol.write_message(stdout, *handle(*message, max_payload=max_payload))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurodeploy.backends.lava.worker",
                                     description="neurodeploy Lava worker (framed JSON + .npz on stdin/stdout)")
    parser.add_argument("--max-payload-bytes", type=int, default=None,
                        help=f"largest payload accepted (default $NEURODEPLOY_LAVA_MAX_PAYLOAD_BYTES, else "
                             f"{protocol.MAX_PAYLOAD_BYTES})")
    parser.add_argument("--max-header-bytes", type=int, default=protocol.MAX_HEADER_BYTES,
                        help="longest header line accepted")
    args = parser.parse_args(argv)
    try:
        limit = protocol.max_payload_bytes(args.max_payload_bytes)
        return serve(sys.stdin.buffer, sys.stdout.buffer, limit, args.max_header_bytes)
    except protocol.BackendError as err:
        print(f"neurodeploy Lava worker: {err}", file=sys.stderr)
        return 2
    except (BrokenPipeError, KeyboardInterrupt):  # the client went away: nothing left to answer
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at interpreter exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
