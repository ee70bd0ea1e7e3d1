"""Atomic file output: write to a temporary sibling, fsync, then rename over the target."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from neurodeploy.errors import NeurodeployError, OutputError, SerializationError


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    write_atomic(path, lambda fh: fh.write(data))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, writer: Callable[[BinaryIO], object]) -> None:
    """Call ``writer(fh)`` on a temporary file next to ``path`` and rename it into place on success.

    The file gets the mode an ordinary ``open(path, "w")`` would give it (``0o666`` less the umask), not the
    ``0o600`` of a temporary file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_dir(path: str | os.PathLike, replaceable: Callable[[Path], bool] | None = None,
                     fix: str = "choose a directory that does not exist yet") -> Path:
    """Return ``path`` made absolute if :func:`atomic_directory` may write it, else raise :class:`OutputError`."""
    target = Path(os.path.abspath(path))
    if target.is_symlink():
        raise OutputError(f"output '{path}' is a symbolic link; neurodeploy does not replace links",
                          fix="give the directory the link points to, or a new path")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"output '{path}' exists and is not a directory", fix=fix)
        if replaceable is None or not replaceable(target):
            raise OutputError(f"output directory '{path}' exists and was not made by neurodeploy", fix=fix)
    return target


@contextmanager
def atomic_directory(path: str | os.PathLike, replaceable: Callable[[Path], bool] | None = None,
                     fix: str = "choose a directory that does not exist yet") -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only if the block completes without error.

    An existing ``path`` is replaced only when it is a real directory (not a symbolic link) for which
    ``replaceable(path)`` is true; anything else is refused with :class:`OutputError` (``fix`` says what to do)
    before anything is written. On failure the temporary directory is removed and ``path`` is left exactly as it
    was. The new directory gets the mode ``mkdir`` would give it (``0o777`` less the umask).
    """
    target = check_output_dir(path, replaceable, fix)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# Bounded, pickle-free reading of .npz archives (stimuli, calibration, .ndg members, Lava protocol payloads)
# ---------------------------------------------------------------------------------------------------------------

#: Largest array data one archive may declare, in bytes (the sum over its members); 8 GiB.
MAX_NPZ_BYTES = 8 << 30
#: Largest number of members in one archive.
MAX_NPZ_MEMBERS = 100_000
#: Largest non-array member (e.g. an ``.ndg`` file's graph.json), in bytes.
MAX_OTHER_MEMBER_BYTES = 256 << 20
#: Deflate cannot expand data by more than about 1032:1; a member claiming more is lying about its size.
_MAX_DEFLATE_RATIO = 1100
#: Array kinds accepted: booleans, integers, floats, complex numbers and fixed-width strings (no objects,
#: structured records, void or datetime types).
_ARRAY_KINDS = frozenset("biufcUS")


def _npz_error(what: str, name: str, problem: str) -> SerializationError:
    return SerializationError(f"{what} '{name}' {problem}",
                              fix="write it with numpy.savez or numpy.savez_compressed from numeric arrays")


def _read_member_array(zf, info, what: str, name: str) -> np.ndarray:
    """Read one ``.npy`` member, checking its declared dtype and size against the member before allocating.

    The header's ``prod(shape) * itemsize`` must equal the member's declared uncompressed size less the header, and
    that size must be reachable from the member's compressed bytes (stored: equal; deflate: at most ~1100:1).
    """
    import numpy.lib.format as npf

    with zf.open(info) as fh:
        major, _ = npf.read_magic(fh)
        if major not in (1, 2):  # version 3 only adds UTF-8 field names, i.e. structured dtypes
            raise _npz_error(what, name, f"holds array '{info.filename}' in .npy format version {major}")
        reader = npf.read_array_header_1_0 if major == 1 else npf.read_array_header_2_0
        shape, fortran, dtype = reader(fh, max_header_size=64 * 1024)
        member = info.filename
        if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.names is not None or dtype.subdtype:
            raise _npz_error(what, name, f"holds array '{member}' of unsupported dtype {dtype}")
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            raise _npz_error(what, name, f"declares array '{member}' with an invalid shape {shape}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        header_bytes = fh.tell()
        if nbytes > MAX_NPZ_BYTES or nbytes != info.file_size - header_bytes:
            raise _npz_error(what, name, f"declares array '{member}' of shape {shape} ({nbytes} bytes) but the "
                                        f"member holds {max(info.file_size - header_bytes, 0)} bytes")
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise _npz_error(what, name, f"is truncated inside array '{member}'")
            got += n
    array = np.frombuffer(buf, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def read_zip_members(source, what: str, *, other_members: tuple[str, ...] = ()
                     ) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    """Read a ZIP of ``.npy`` members (an ``.npz``) from a path or bytes, without unpickling and within bounds.

    Returns ``(arrays, others)``: arrays by member name without ``.npy``; ``others`` holds the raw bytes of the
    members named in ``other_members`` (each at most ``MAX_OTHER_MEMBER_BYTES``). Any other member, a member count
    over ``MAX_NPZ_MEMBERS``, declared sizes the archive cannot hold, a total over ``MAX_NPZ_BYTES``, a damaged
    archive, a plain ``.npy`` file, or an unsupported dtype raises :class:`SerializationError` naming ``what`` and
    the file.
    """
    import io
    import tokenize
    import zipfile
    import zlib

    if isinstance(source, bytes | bytearray | memoryview):
        name, data = "<payload>", io.BytesIO(bytes(source))
        head, total_size = data.getvalue()[:6], len(data.getvalue())
    else:
        path = Path(source)
        name = data = str(path)
        if not path.is_file():
            raise SerializationError(f"{what} file '{path}' does not exist or is not a file", fix="check the path")
        with path.open("rb") as fh:
            head = fh.read(6)
        total_size = path.stat().st_size
    try:
        if head == b"\x93NUMPY":
            raise _npz_error(what, name, "is a single .npy array, not an .npz archive")
        arrays, others = {}, {}
        declared = 0
        with zipfile.ZipFile(data) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise _npz_error(what, name, f"has {len(infos)} members (at most {MAX_NPZ_MEMBERS})")
            if sum(i.compress_size for i in infos) > total_size:
                raise _npz_error(what, name, "declares members larger than the file")
            for info in infos:
                member = info.filename
                ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
                if info.file_size > ratio * info.compress_size + 1024:
                    raise _npz_error(what, name, f"member '{member}' declares {info.file_size} bytes from "
                                                 f"{info.compress_size} stored bytes")
                declared += info.file_size
                if declared > MAX_NPZ_BYTES:
                    raise _npz_error(what, name, f"declares more than {MAX_NPZ_BYTES} bytes of data")
                if member in other_members:
                    if info.file_size > MAX_OTHER_MEMBER_BYTES:
                        raise _npz_error(what, name, f"member '{member}' is too large ({info.file_size} bytes)")
                    others[member] = zf.read(info)
                    continue
                if not member.endswith(".npy"):
                    raise _npz_error(what, name, f"holds '{member}', which is not an .npy array")
                key = member[:-4]
                if key in arrays:
                    raise _npz_error(what, name, f"holds array '{key}' twice")
                arrays[key] = _read_member_array(zf, info, what, name)
        return arrays, others
    except NeurodeployError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError, tokenize.TokenError,
            KeyError, TypeError, OverflowError, NotImplementedError, RuntimeError, MemoryError) as err:
        raise _npz_error(what, name, f"is not a readable .npz archive ({type(err).__name__}: {err})") from None


def read_npz(source, what: str) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` (path or bytes) safely; see :func:`read_zip_members` for the checks."""
    return read_zip_members(source, what)[0]
