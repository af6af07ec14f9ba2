"""Safe file I/O shared by every part of graphfuse.

* Every write of a checkpoint, cache, array or report is atomic: it goes to a temporary
  file in the destination directory and is renamed over the target, so a crash never
  leaves a half-written file under the final name.
* Pickles written by other toolkits (official NTU label ``.pkl``, OpenGait silhouettes)
  are read with :func:`restricted_load`, which admits builtins and numpy arrays only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

__all__ = [
    "atomic_path",
    "atomic_open",
    "write_json",
    "read_json_dict",
    "write_text",
    "save_npy",
    "open_npy_memmap",
    "restricted_load",
    "UnsafePickleError",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` goes into the temporary name before ``.tmp`` (informative only; writers
    that append an extension to a path, like ``np.save``, must be given a file object).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
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


def read_json_dict(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, unreadable or not an object
    (for files another process may be writing or may never have written, e.g. a run's summary)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
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
    """``np.save`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)  # a file object: np.save would append ".npy" to a path


def open_npy_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any = np.float32) -> np.memmap:
    """Create a zero-filled ``.npy`` memory map at a temporary name for incremental writing.

    The caller fills it, calls ``flush()``, and renames ``result.filename`` onto ``path``
    (see :func:`graphfuse.data.ntu` preparation). The array is never held whole in RAM.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npy.tmp", dir=path.parent)
    os.close(fd)
    return np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)


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
        if self._paths_as_str and module in ("pathlib", "pathlib._local") and name in _PATH_CLASSES:
            return _path_as_str  # a path object runs no code: read it as the string it holds
        if (module, name) in _ALLOWED_GLOBALS or (module == "numpy" and name.endswith("dtype")) or (
            module.startswith("numpy.dtypes")
        ):
            return super().find_class(module, name)
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
        return _RestrictedUnpickler(io.BytesIO(data), str(path), paths_as_str, encoding=encoding).load()
    except UnicodeDecodeError:
        return _RestrictedUnpickler(io.BytesIO(data), str(path), paths_as_str, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or corrupt file
        raise pickle.UnpicklingError(f"{path}: not a readable pickle ({exc})") from exc
