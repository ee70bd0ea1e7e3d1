"""Lava worker: runs descriptions for a client that cannot import lava (lava-nc needs Python <= 3.10).

Started as ``<lava python> -m neurodeploy.backends.lava.worker``; reads requests from stdin and writes one response
per request to stdout using :mod:`neurodeploy.backends.lava.protocol` (JSON header + ``.npz`` payload, no pickle).

Request ``{"op": "run", "version": 1, "description": {...}, "record": [...], "nodes": [...] | null}`` with payload
``desc/<key>`` (the description's arrays, see :func:`~neurodeploy.backends.lava.rebuild.encode`) and
``input/<name>`` (``[B, T, *shape]``). Response ``{"ok": true, "seconds": s}`` with the result arrays of
:func:`~neurodeploy.backends.lava.run.run_description`, or ``{"ok": false, "error": {"type", "message"}}``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from neurodeploy.backends.lava.protocol import PROTOCOL_VERSION, read_message, write_message
from neurodeploy.backends.lava.rebuild import decode


def handle(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Answer one request (never raises: errors become ``{"ok": false}`` responses)."""
    from neurodeploy.backends.lava.run import run_description

    try:
        if header.get("op") != "run" or header.get("version") != PROTOCOL_VERSION:
            raise ValueError(f"unsupported request op={header.get('op')!r} version={header.get('version')!r}")
        description = decode(header["description"], arrays)
        inputs = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("input/")}
        start = time.perf_counter()
        result = run_description(description, inputs, record=header.get("record", ()), nodes=header.get("nodes"))
        return {"ok": True, "seconds": time.perf_counter() - start}, result
    except Exception as err:  # reported to the client, which re-raises it
        return {"ok": False, "error": {"type": type(err).__name__, "message": str(err)}}, {}


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        message = read_message(stdin)
        if message is None:
            return
        header, arrays = handle(*message)
        write_message(stdout, header, arrays)


if __name__ == "__main__":
    main()
