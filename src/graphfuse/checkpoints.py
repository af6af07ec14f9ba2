"""Checkpoint files: the one place graphfuse reads and writes them.

* **Reading never unpickles code.** Every checkpoint a user can name (``--ckpt_path`` of
  ``fit|validate|test|predict``, the ablation runner's resume, ``convert``, ...) is read with
  :func:`load_checkpoint`: a local file only (a URL or any other ``scheme://`` is refused
  before anything is fetched) through ``torch.load(weights_only=True)``. Lightning's own
  loader is bypassed: it downloads URLs and loads them with ``weights_only=False``, which
  executes the pickle inside the file. :class:`SafeCheckpointIO` is the Lightning plugin
  that routes every trainer load and save through this module; the engine installs it on
  every trainer and pins ``weights_only`` to true.
* **Writing is atomic on the checkpoint's own file system**: a temporary file in the
  destination directory, flushed and fsynced, then renamed over the target (Lightning
  stages in the system temp dir and moves across file systems, which leaves a truncated
  file under the final name on a full disk).
* **A file that does not load** (empty, truncated, not a checkpoint, or holding objects
  other than tensors and plain values) raises :class:`CheckpointError`, one line naming the
  file and its size; for a run's ``last.ckpt`` the message offers the run's ``best.ckpt``
  when that one loads, and never uses it silently.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from .io import atomic_open

__all__ = [
    "CheckpointError",
    "SafeCheckpointIO",
    "is_remote",
    "local_checkpoint_path",
    "load_checkpoint",
    "save_checkpoint",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class CheckpointError(ValueError):
    """A checkpoint that graphfuse refuses or cannot read; the message names the file."""


def is_remote(path: str | os.PathLike) -> bool:
    """True for a URL or any ``scheme://`` location (http, https, s3, gs, memory, ...), and for
    strings Lightning itself would treat as remote (``http...``) or as a model registry."""
    s = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return bool(_SCHEME.match(s)) or s.startswith(("http:", "https:", "registry:")) or s == "registry"


def local_checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` as a local file that exists; a URL or a missing file raises :class:`CheckpointError`."""
    if is_remote(path):
        raise CheckpointError(
            f"{path}: graphfuse loads checkpoints from local files only; a URL is never fetched, since "
            "a downloaded checkpoint would be unpickled. Download it yourself, check where it comes "
            "from, and pass the local file"
        )
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found" + (" (a directory)" if p.is_dir() else ""))
    return p


def _size(p: Path) -> str:
    try:
        n = p.stat().st_size
    except OSError:
        return "unreadable"
    return f"{n:,} bytes"


def _best_hint(p: Path) -> str:
    """For a run's ``last.ckpt``: point at ``best.ckpt`` beside it when that one loads."""
    if p.name != "last.ckpt":
        return ""
    best = p.with_name("best.ckpt")
    if not best.is_file():
        return ""
    try:
        _torch_load(best, "cpu")
    except Exception:
        return f"; {best} does not load either"
    return (
        f"; the run's best checkpoint loads: to resume from it (epochs after it are trained again) "
        f"pass --ckpt_path {best}"
    )


def _torch_load(p: Path, map_location: Any) -> Any:
    with open(p, "rb") as fh:
        return torch.load(fh, map_location=map_location, weights_only=True)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Read a local checkpoint with ``torch.load(weights_only=True)``.

    Raises :class:`CheckpointError` (naming the file and its size) for a URL, a missing,
    empty, truncated or corrupt file, and for a file holding anything but tensors and plain
    values (such a file is refused, its code never run).
    """
    p = local_checkpoint_path(path)
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} (0 bytes): empty file, not a checkpoint{_best_hint(p)}")
    try:
        return _torch_load(p, map_location)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in str(exc).lower() or "unsupported global" in str(exc).lower():
            found = re.search(r"(?:GLOBAL|global) ([\w.]+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{p} ({_size(p)}): refusing to load: the file holds Python objects other than tensors and "
                f"plain values{what}; graphfuse never unpickles code from a checkpoint"
            ) from None
        raise CheckpointError(f"{p} ({_size(p)}): not a readable checkpoint ({first}){_best_hint(p)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError,
            TypeError, AttributeError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{p} ({_size(p)}): not a readable checkpoint (truncated or corrupt: {msg}){_best_hint(p)}"
        ) from None


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the destination directory, fsync, rename."""
    if is_remote(path):
        raise CheckpointError(f"{path}: graphfuse writes checkpoints to local files only")
    with atomic_open(path, "wb") as fh:
        torch.save(checkpoint, fh)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint plugin: :func:`load_checkpoint` / :func:`save_checkpoint`.

    ``weights_only`` is ignored on load: it is always true.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")

    def remove_checkpoint(self, path: Any) -> None:
        if is_remote(path):
            raise CheckpointError(f"{path}: graphfuse removes local checkpoints only")
        Path(path).unlink(missing_ok=True)
