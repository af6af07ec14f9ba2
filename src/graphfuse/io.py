"""Safe file I/O shared by every part of graphfuse.

* Every write of a checkpoint, cache, array or report is atomic: it goes to a temporary
  file in the destination directory and is renamed over the target, so a crash never
  leaves a half-written file under the final name.
* Pickles written by other toolkits (official NTU label ``.pkl``, OpenGait silhouettes)
  are read with :func:`restricted_load`, which admits builtins and numpy arrays only.
* A write that fails for want of space or permission (full disk, quota, read-only file
  system, permission denied) raises :class:`OutputError`, an ``OSError`` whose message is one
  line naming the file, its directory and what is missing; the temporary file is removed.
  Memory maps are checked against the free space and reserved on disk before they are
  filled, so a full disk is an error up front rather than a ``SIGBUS`` halfway through.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

__all__ = [
    "atomic_path",
    "atomic_open",
    "write_json",
    "read_json_dict",
    "read_json",
    "write_text",
    "save_npy",
    "open_npy_memmap",
    "restricted_load",
    "UnsafePickleError",
    "OutputError",
    "output_error",
    "check_free_space",
    "error_line",
]


# -- write failures: one line naming the file, its directory and what is missing --------------------
#: errno values that mean "this location cannot take the write", and what is missing.
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
#: The ones only a write can raise (an ``EACCES`` may come from reading an input instead).
_WRITE_ONLY_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class OutputError(OSError):
    """An output could not be written (full disk, quota, read-only or permission denied).

    ``str()`` is one line naming the file, its directory and what is missing; ``errno`` is the
    original error number (``None`` when the system gave none), ``path`` the file.
    """

    def __init__(self, message: str, err: int | None = None, path: str | os.PathLike | None = None) -> None:
        super().__init__(err, message)
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        return str(self.strerror)


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _existing_dir(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (where a write into ``path`` actually happens)."""
    p = Path(os.path.abspath(path))
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(_existing_dir(directory)).free
    except OSError:
        return None


def output_error(exc: OSError, path: str | os.PathLike, needed: int | None = None) -> OutputError:
    """:class:`OutputError` for ``exc`` raised while writing ``path``: the file, its directory and
    what is missing (space, write permission, a writable file system) in one line."""
    if isinstance(exc, OutputError):
        return exc
    path = Path(path)
    directory = _existing_dir(path.parent)
    what = _WRITE_ERRNOS.get(exc.errno) if exc.errno is not None else None
    free = _free_bytes(directory)
    if what is None and free is not None and free < (1 << 20):
        what = "no space left on the device"  # e.g. numpy's "N requested and M written"
    if what is None:
        detail = exc.strerror or str(exc)
        return OutputError(f"cannot write {path}: {detail} (in {directory})", exc.errno, path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or what.startswith("no space"):
        amount = f"{_size(needed)} needed, " if needed is not None else ""
        amount += f"{_size(free)} free" if free is not None else "free space unknown"
        return OutputError(f"cannot write {path}: {what} of {directory} ({amount})", exc.errno, path)
    if exc.errno == errno.EROFS:
        return OutputError(f"cannot write {path}: {directory} is on a {what}", exc.errno, path)
    return OutputError(f"cannot write {path}: {what} in {directory}", exc.errno, path)


def error_line(exc: BaseException) -> str:
    """One line for a command-line error: an ``OSError`` about a full, read-only or forbidden
    location is reworded by :func:`output_error`; anything else is ``str(exc)``."""
    if isinstance(exc, OSError) and not isinstance(exc, OutputError) and exc.errno in _WRITE_ERRNOS and (
        exc.filename
    ):
        return str(output_error(exc, exc.filename))
    return str(exc)


def check_free_space(
    directory: str | os.PathLike, needed: int, what: str | os.PathLike | None = None, *, margin: bool = True
) -> None:
    """Raise :class:`OutputError` unless ``directory`` (or its nearest existing ancestor) has
    ``needed`` bytes free, plus (``margin``) 1 MiB or 1 %, whichever is larger, for the small
    files written next to it. ``what`` names the output in the message (default: ``directory``)."""
    directory = Path(directory)
    free = _free_bytes(directory)
    if free is None:
        return
    margin = max(1 << 20, needed // 100) if margin else 0
    if free < needed + margin:
        target = what if what is not None else directory
        raise OutputError(
            f"cannot write {target}: no space left on the device of {_existing_dir(directory)} "
            f"({_size(needed)} needed, {_size(free)} free)",
            errno.ENOSPC,
            target,
        )


def _make_dirs(directory: Path, path: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise
    except OSError as exc:
        raise output_error(exc, path) from None


def _mkstemp_next_to(path: Path, suffix: str) -> Path:
    _make_dirs(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise output_error(exc, path) from None
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` goes into the temporary name before ``.tmp`` (informative only; writers
    that append an extension to a path, like ``np.save``, must be given a file object).

    A full disk, exceeded quota, read-only file system or missing permission, when creating
    the directory or the temporary, while writing it or when renaming it, raises
    :class:`OutputError` naming ``path`` and its directory.
    """
    path = Path(path)
    tmp_path = _mkstemp_next_to(path, suffix + ".tmp")
    try:
        try:
            yield tmp_path
        except OSError as exc:
            # Failures of the write itself: ENOSPC/EDQUOT/EROFS, or no errno at all (numpy's
            # "N requested and M written"); an OSError naming another file is not about `path`.
            if not isinstance(exc, OutputError) and (
                exc.errno in _WRITE_ONLY_ERRNOS or (exc.errno is None and not exc.filename)
            ):
                target = exc.filename if exc.filename and Path(exc.filename) != tmp_path else path
                raise output_error(exc, target) from exc
            raise
        try:
            os.replace(tmp_path, path)
        except OSError as exc:
            raise output_error(exc, path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open`` for writing, atomically (see :func:`atomic_path`)."""
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: str | os.PathLike) -> Any:
    """Parse the JSON file ``path`` (strict UTF-8) and return its value.

    Raises FileNotFoundError (or another OSError) when it cannot be read, and ValueError with
    one line naming the file for: bytes that are not UTF-8 (with the byte offset), malformed
    JSON (with line and column), and nesting deeper than the parser's recursion limit (about
    900 levels; real files nest a handful), which Python reports as RecursionError.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at byte "
                         f"offset {exc.start}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{path}: JSON nesting too deep (arrays/objects nested beyond the "
                         "parser's recursion limit)") from None
    except ValueError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc})") from None


def read_json_dict(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, unreadable or not an object
    (for files another process may be writing or may never have written, e.g. a run's summary)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON atomically (numpy scalars and arrays are converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot serialise {type(o).__name__} to JSON")

    write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` atomically (the free space is checked first: see :class:`OutputError`)."""
    check_free_space(Path(path).parent, int(np.asarray(array).nbytes), path, margin=False)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)  # a file object: np.save would append ".npy" to a path


def open_npy_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any = np.float32) -> np.memmap:
    """Create a zero-filled ``.npy`` memory map at a temporary name for incremental writing.

    The caller fills it, calls ``flush()``, and renames ``result.filename`` onto ``path``
    (see :func:`graphfuse.data.ntu` preparation), removing the temporary on failure. The
    array is never held whole in RAM.

    A write into a memory map that the disk cannot take kills the process with ``SIGBUS``, so
    the free space is checked first (:func:`check_free_space`) and the file's blocks are then
    reserved (``posix_fallocate``): a full disk raises :class:`OutputError` naming the
    directory, the bytes needed and the bytes free, and leaves no temporary behind.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    nbytes = math.prod(int(n) for n in shape) * dtype.itemsize
    _make_dirs(path.parent, path)
    check_free_space(path.parent, nbytes, path)
    tmp = _mkstemp_next_to(path, ".npy.tmp")
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        _reserve_blocks(tmp)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise output_error(exc, path, needed=nbytes) from exc
        raise
    return arr


def _reserve_blocks(file: Path) -> None:
    """Allocate every block of ``file`` (a sparse memory-map file) so that writing through the
    map cannot fail; a file system without the call keeps the up-front free-space check only."""
    size = file.stat().st_size
    if size == 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(file, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


_ALLOWED_GLOBALS = {
    ("builtins", name)
    for name in (
        "list", "tuple", "dict", "set", "frozenset", "str", "bytes", "bytearray",
        "int", "float", "complex", "bool", "slice", "range", "object",
    )
} | {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


_PATH_CLASSES = ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")


def _path_as_str(*parts: str) -> str:
    return os.path.join(*parts) if parts else ""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str, paths_as_str: bool = False, **kwargs: Any):
        super().__init__(file, **kwargs)
        self._source = source
        self._paths_as_str = paths_as_str

    def find_class(self, module: str, name: str) -> Any:
        # A dotted name (protocol 4) walks attributes from the module: "numpy.dtypes" +
        # "__builtins__.get" would reach eval. Names are plain identifiers, modules exact.
        if "." not in name and not name.startswith("__"):
            if self._paths_as_str and module in ("pathlib", "pathlib._local") and name in _PATH_CLASSES:
                return _path_as_str  # a path object runs no code: read it as the string it holds
            if (module, name) in _ALLOWED_GLOBALS:
                return super().find_class(module, name)
            if module in ("numpy", "numpy.dtypes"):  # np.dtype and its DType classes only
                obj = getattr(np if module == "numpy" else np.dtypes, name, None)
                if isinstance(obj, type) and issubclass(obj, np.dtype):
                    return obj
        raise UnsafePickleError(
            f"{self._source}: refusing to unpickle global '{module}.{name}'; only builtins and numpy "
            "arrays are allowed in data pickles"
        )


def restricted_load(path: str | os.PathLike, encoding: str = "ASCII", paths_as_str: bool = False) -> Any:
    """Unpickle ``path`` admitting only builtins and numpy arrays.

    Falls back to ``encoding='latin1'`` for Python-2 pickles, as the official Shift-GCN
    feeder does. ``paths_as_str`` also admits ``pathlib`` paths, returned as plain strings
    (PedGraph+'s sample pickles store one).
    """
    data = Path(path).read_bytes()
    try:
        try:
            return _RestrictedUnpickler(io.BytesIO(data), str(path), paths_as_str, encoding=encoding).load()
        except UnicodeDecodeError:
            return _RestrictedUnpickler(io.BytesIO(data), str(path), paths_as_str, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or corrupt file (also on the latin-1 retry), too deep, too big
        reason = f"{type(exc).__name__}: {exc}"
        reason = reason if len(reason) <= 300 else reason[:300] + " ..."
        raise pickle.UnpicklingError(f"{path}: not a readable pickle ({reason})") from exc
