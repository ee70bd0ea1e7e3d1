"""The one exception hierarchy of neurodeploy.

Every error a user can trigger derives from :class:`NeurodeployError`. Messages are one paragraph that names the
file, node or field at fault and says what to do about it; the CLI prints the message without a traceback and
exits with a non-zero status.
"""

from __future__ import annotations


class NeurodeployError(Exception):
    """Base class: a user-facing error with a named subject and a fix."""

    exit_code = 2

    def __init__(self, message: str, *, node: str | None = None, fix: str | None = None):
        self.node = node
        self.fix = fix
        parts = []
        if node:
            parts.append(f"node '{node}': ")
        parts.append(message.rstrip("."))
        parts.append(".")
        if fix:
            parts.append(f" Fix: {fix.rstrip('.')}.")
        super().__init__("".join(parts))


class IRError(NeurodeployError):
    """The graph is malformed: unknown node, bad edge, shape mismatch, invalid parameter."""


class SerializationError(NeurodeployError):
    """A model or artifact file is missing, corrupt, truncated or of an unsupported version."""


class UnsupportedOpError(NeurodeployError):
    """A source layer or IR op that the requested converter, pass or backend cannot handle."""


class QuantizationError(NeurodeployError):
    """A parameter cannot be represented in the target's integer fields."""


class CapacityError(NeurodeployError):
    """The network exceeds a hardware limit (neurons, synapses, fan-in, delay range, ...)."""


class ConversionError(NeurodeployError):
    """A source model (torch module, NIR graph, ONNX file) cannot be converted."""


class InputError(NeurodeployError):
    """Run-time input (stimulus arrays, CLI options) does not match what the compiled model expects."""


class OutputError(NeurodeployError):
    """An output path cannot be written without replacing something neurodeploy did not make (a user's
    directory, a file, a symbolic link)."""


class BackendError(NeurodeployError):
    """A backend is unavailable or failed while running a compiled model."""


class PassError(NeurodeployError):
    """Wraps an error raised inside a pass with the pass's name."""


class QuantizationWarning(UserWarning):
    """A compiled layer is degenerate on the calibration stimulus (silent, saturated, threshold at its field
    maximum, weights rounded to zero); the message names the node and the probable cause."""
