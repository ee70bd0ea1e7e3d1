"""Numba-compiled helpers, compiled on first use: the one place that imports numba for the IR and the passes.

:func:`compiled` returns ``fn`` compiled with ``numba.njit(cache=True, nogil=True)`` (numba is imported on the
first call; ``cache=True`` keeps the machine code on disk, so a function is compiled once per machine), memoised per
function so every caller shares one dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable

_COMPILED: dict[Callable, Callable] = {}


def compiled(fn: Callable) -> Callable:
    """``fn`` compiled by numba (see the module docstring)."""
    if fn not in _COMPILED:
        import numba

        _COMPILED[fn] = numba.njit(cache=True, nogil=True)(fn)
    return _COMPILED[fn]
