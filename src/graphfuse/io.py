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

import _compat_pickle
import contextlib
import errno
import io
import json
import math
import operator
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.multiarray import scalar as _np_scalar

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


def _file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the process umask
    (``mkstemp`` creates 0o600, which would hide prepared data and runs from the group)."""
    try:  # Linux: read the umask without changing it (os.umask is a set, racy with threads)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _mkstemp_next_to(path: Path, suffix: str) -> Path:
    _make_dirs(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise output_error(exc, path) from None
    try:
        os.fchmod(fd, _file_mode())
    finally:
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
    """A pickle asked for a global outside the allow-list, or asked an allowed callable for an
    allocation by size (a memory bomb such as ``bytes(10**10)``)."""


# Globals handed out as they are: classes whose construction copies data the pickle already
# holds (never an allocation by size).
_ALLOWED_GLOBALS = {
    ("builtins", name)
    for name in (
        "list", "tuple", "dict", "set", "frozenset", "int", "float", "complex", "bool", "slice", "object",
    )
} | {
    ("collections", "OrderedDict"),
    ("numpy.core.numeric", "_frombuffer"),  # a view of a buffer the pickle holds
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}
# Globals handed out only as checking wrappers (functions, so that NEWOBJ cannot reach the
# class's own ``__new__`` either): each can allocate memory by a size it is given. ``range``
# is refused (``list(range(10**10))``; no data pickle needs it).
_GUARDED_GLOBALS = {
    ("builtins", "bytes"): "bytes",
    ("builtins", "bytearray"): "bytearray",
    ("builtins", "str"): "str",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
}


_PATH_CLASSES = ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")


def _path_as_str(*parts: str) -> str:
    return os.path.join(*parts) if parts else ""


def _is_index(value: Any) -> bool:
    """Whether ``value`` is an integer (anything with ``__index__``: an int, a numpy integer)."""
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _element_count(shape: Any) -> int:
    """Elements of a numpy shape (an int or a tuple of ints), exactly (Python ints)."""
    dims = shape if isinstance(shape, (tuple, list)) else (shape,)
    count = 1
    for d in dims:
        count *= max(operator.index(d), 0)
    return count


#: Scalar arguments ``str(...)`` and dtype constructors may take: a container's ``str`` (or
#: the ``repr`` in numpy's error message about it) recurses through shared references and can
#: be exponentially long (a list holding the same list twice, 60 deep).
_STR_ARGS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)
_SCALARS = (str, bytes, int, float, bool, type(None))


class _RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler (its BUILD opcode can be checked, the C one's cannot) with an
    allow-list of globals and size checks on every allowed callable that allocates by size."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: IO[bytes], source: str, paths_as_str: bool = False, max_bytes: int = 0,
                 **kwargs: Any):
        super().__init__(file, **kwargs)
        self._source = source
        self._paths_as_str = paths_as_str
        # No allocation a data pickle asks for by size is larger than the pickle itself (its
        # arrays' data is in the file); numpy's own pickles ask for none (shape (0,)).
        self._max_bytes = max_bytes
        self._guards = {
            "bytes": self._sized(bytes), "bytearray": self._sized(bytearray), "str": self._str,
            "ndarray": self._ndarray, "_reconstruct": self._reconstruct, "scalar": self._scalar,
            "dtype": self._dtype(np.dtype),
        }

    def _unsafe(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self._source}: refusing {what}; data pickles hold builtins and numpy "
                                 "arrays, never an allocation by size")

    def _sized(self, cls: type) -> Any:
        def guarded(*args: Any) -> Any:
            if args and _is_index(args[0]):  # bytes(10**10): a length, not data
                raise self._unsafe(f"{cls.__name__}({clip_repr(args[0])}) (a length)")
            return cls(*args)
        return guarded

    def _str(self, *args: Any) -> str:
        if args and not isinstance(args[0], _STR_ARGS):
            raise self._unsafe(f"str() of a {type(args[0]).__name__}")
        return str(*args)

    def _dtype(self, cls: type) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:  # numpy writes dtype('f8', False, True)
            if not all(isinstance(a, _SCALARS) for a in (*args, *kwargs.values())):
                raise self._unsafe(f"numpy.{cls.__name__}() of anything but a type string and flags")
            return cls(*args, **kwargs)
        return guarded

    def _ndarray(self, *args: Any, **kwargs: Any) -> Any:
        raise self._unsafe("a call of numpy.ndarray (an array by shape)")

    def _check_nbytes(self, what: str, nbytes: int) -> None:
        if nbytes > self._max_bytes:
            raise self._unsafe(f"{what} of {nbytes} bytes (the pickle has {self._max_bytes})")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> Any:
        if subtype is self._guards["ndarray"]:  # what find_class handed out for numpy.ndarray
            subtype = np.ndarray
        if subtype is not np.ndarray:
            raise self._unsafe(f"numpy _reconstruct of {clip_repr(subtype)}")
        if not isinstance(dtype, (np.dtype, str, bytes)):
            raise self._unsafe(f"numpy _reconstruct with dtype {clip_repr(dtype)}")
        itemsize = np.dtype(dtype).itemsize
        if itemsize < 0:
            raise self._unsafe(f"a numpy array of a corrupt dtype (itemsize {itemsize})")
        self._check_nbytes("a numpy array", _element_count(shape) * itemsize)
        return _np_reconstruct(np.ndarray, shape, dtype)

    def _scalar(self, dtype: Any, *args: Any) -> Any:
        if not isinstance(dtype, np.dtype) or dtype.itemsize < 0:
            raise self._unsafe(f"a numpy scalar of {clip_repr(dtype)}")
        self._check_nbytes("a numpy scalar", dtype.itemsize)
        return _np_scalar(dtype, *args)

    def _load_build(self) -> None:
        # numpy 2 crashes (SIGSEGV) on an object array's state whose list is shorter than its
        # shape: check the state of an array before numpy sees it.
        state = self.stack[-1]
        inst = self.stack[-2]
        if isinstance(inst, np.ndarray):
            self._check_array_state(state)
        elif isinstance(inst, np.dtype):
            self._check_dtype_state(state)
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        if isinstance(inst, np.dtype) and inst.itemsize < 0:
            raise self._unsafe(f"a corrupt numpy dtype state (itemsize {inst.itemsize})")

    dispatch[pickle.BUILD[0]] = _load_build

    def _check_newobj(self, cls: Any) -> None:
        # NEWOBJ calls cls.__new__: the guarded callables are functions, refused here by name.
        for name, guard in self._guards.items():
            if cls is guard:
                raise self._unsafe(f"{name}.__new__ through NEWOBJ")

    def _load_newobj(self) -> None:
        self._check_newobj(self.stack[-2])
        pickle._Unpickler.load_newobj(self)  # type: ignore[attr-defined]

    def _load_newobj_ex(self) -> None:
        self._check_newobj(self.stack[-3])
        pickle._Unpickler.load_newobj_ex(self)  # type: ignore[attr-defined]

    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex

    def _check_array_state(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, data), or the 4 items without the version.
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise self._unsafe(f"a numpy array state that is not a 4- or 5-tuple ({type(state).__name__})")
        shape, dtype, data = state[-4], state[-3], state[-1]
        if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) or not all(map(_is_index, shape)):
            raise self._unsafe("a numpy array state without a shape tuple and a dtype")
        count = _element_count(shape)
        if dtype.hasobject and not (isinstance(data, list) and len(data) == count):
            size = len(data) if isinstance(data, list) else type(data).__name__
            raise self._unsafe(f"an object array state of {count} elements with data of {size}")
        if not dtype.hasobject and not isinstance(data, (bytes, bytearray, str)):
            raise self._unsafe(f"a numpy array state with data of {type(data).__name__}")

    def _check_dtype_state(self, state: Any) -> None:
        # (version, endian, subarray, names, fields, elsize, alignment, flags[, metadata]), the
        # layout numpy writes; its __setstate__ can crash or build a corrupt dtype on others.
        ok = isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
        if ok:
            _, endian, sub, names, fields, *ints = state[:8]
            ok = (isinstance(endian, str) and all(_is_index(i) for i in ints)
                  and (sub is None or (isinstance(sub, tuple) and len(sub) == 2
                                       and isinstance(sub[0], np.dtype) and isinstance(sub[1], tuple)
                                       and all(map(_is_index, sub[1]))))
                  and (names is None or (isinstance(names, tuple) and all(isinstance(n, str) for n in names)))
                  and (fields is None or (isinstance(fields, dict) and all(
                      isinstance(f, tuple) and len(f) in (2, 3) and isinstance(f[0], np.dtype) and _is_index(f[1])
                      and (len(f) == 2 or isinstance(f[2], _SCALARS)) for f in fields.values())))
                  and (len(state) == 8 or _is_dtype_metadata(state[8])))
        if not ok:
            raise self._unsafe("a numpy dtype state not in numpy's layout")

    def find_class(self, module: str, name: str) -> Any:
        # A dotted name (protocol 4) walks attributes from the module: "numpy.dtypes" +
        # "__builtins__.get" would reach eval. Names are plain identifiers, modules exact.
        asked = f"{module}.{name}"
        if "." not in name and not name.startswith("__"):
            if self.proto < 3 and self.fix_imports:  # Python 2 names: __builtin__.set -> builtins.set
                if (module, name) in _compat_pickle.NAME_MAPPING:
                    module, name = _compat_pickle.NAME_MAPPING[(module, name)]
                elif module in _compat_pickle.IMPORT_MAPPING:
                    module = _compat_pickle.IMPORT_MAPPING[module]
            if self._paths_as_str and module in ("pathlib", "pathlib._local") and name in _PATH_CLASSES:
                return _path_as_str  # a path object runs no code: read it as the string it holds
            if (module, name) in _ALLOWED_GLOBALS:
                return super().find_class(module, name)
            if (module, name) in _GUARDED_GLOBALS:
                return self._guards[_GUARDED_GLOBALS[(module, name)]]
            if module in ("numpy", "numpy.dtypes"):  # np.dtype's DType classes (checked calls)
                obj = getattr(np if module == "numpy" else np.dtypes, name, None)
                if isinstance(obj, type) and issubclass(obj, np.dtype):
                    return self._dtype(obj)
        raise UnsafePickleError(
            f"{self._source}: refusing to unpickle global '{asked}'; only builtins and numpy "
            "arrays are allowed in data pickles"
        )


def _is_dtype_metadata(meta: Any) -> bool:
    """None, a metadata dict, or a datetime dtype's ``(dict | None, (unit, num, den, events))``."""
    if meta is None or isinstance(meta, dict):
        return True
    return (isinstance(meta, tuple) and len(meta) == 2 and (meta[0] is None or isinstance(meta[0], dict))
            and isinstance(meta[1], tuple) and all(isinstance(v, _SCALARS) for v in meta[1]))


def clip_repr(value: Any, limit: int = 40) -> str:
    """``repr`` of a scalar ``value`` cut to ``limit`` characters, else its type (for messages
    about untrusted values: a container's repr can be exponentially long)."""
    text = f"<{type(value).__name__}>"
    if isinstance(value, (*_STR_ARGS, np.dtype)) and not isinstance(value, np.void):
        try:
            text = repr(value)
        except Exception:  # e.g. an int beyond the digit limit of str()
            pass
    return text if len(text) <= limit else text[:limit] + "..."


def restricted_load(path: str | os.PathLike, encoding: str = "ASCII", paths_as_str: bool = False) -> Any:
    """Unpickle ``path`` admitting only builtins and numpy arrays.

    Falls back to ``encoding='latin1'`` for Python-2 pickles, as the official Shift-GCN
    feeder does (Python 2 names such as ``__builtin__.set`` map to their Python 3 builtins).
    Allowed callables that allocate by size are checked: ``bytes(n)`` / ``bytearray(n)`` with
    an integer, ``range``, ``str()`` of a container, ``numpy.ndarray(shape)``, and numpy
    arrays, scalars or dtypes asking for more bytes than the pickle holds, or with array or
    dtype states numpy would crash on, raise :class:`UnsafePickleError` naming the file. ``paths_as_str`` also admits ``pathlib`` paths, returned as plain strings
    (PedGraph+'s sample pickles store one).
    """
    data = Path(path).read_bytes()
    try:
        try:
            return _RestrictedUnpickler(io.BytesIO(data), str(path), paths_as_str, len(data),
                                        encoding=encoding).load()
        except UnicodeDecodeError:
            return _RestrictedUnpickler(io.BytesIO(data), str(path), paths_as_str, len(data),
                                        encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or corrupt file (also on the latin-1 retry), too deep, too big
        reason = f"{type(exc).__name__}: {exc}"
        reason = reason if len(reason) <= 300 else reason[:300] + " ..."
        raise pickle.UnpicklingError(f"{path}: not a readable pickle ({reason})") from exc
