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
* **Every checkpoint graphfuse writes carries a versioned ``graphfuse`` block**
  (:func:`graphfuse_block`; written by :meth:`graphfuse.tasks.base.GraphfuseTask.on_save_checkpoint`
  and by ``graphfuse convert``): what a model needs to be used without its run directory.
  :func:`read_graphfuse_block` validates it and migrates a checkpoint written before the
  block existed (reconstructing what the checkpoint still holds, flagged ``migrated``).

The block (format version 1), plain values only so that ``weights_only=True`` loads it::

    format_version     1
    graphfuse_version  "0.1.0" (the package that wrote it)
    config             the run's resolved config as YAML text (None for a converted checkpoint
                       without a matching shipped config)
    data               the data options the model needs at inference, from the datamodule's
                       ``inference_options()``: normalisation, clip length / sampling, joint
                       layout, observation length, input names and shapes, ...
    class_names        list of names, index = class id (None where unknown)
    num_class          the network's number of outputs (None where unknown)
    task, model        class paths (None where unknown)
    migrated           True only for a block :func:`read_graphfuse_block` reconstructed
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
    "FORMAT_VERSION",
    "BLOCK_KEY",
    "graphfuse_block",
    "read_graphfuse_block",
]

#: Version of the ``graphfuse`` block this graphfuse writes, and the newest it reads.
FORMAT_VERSION = 1
#: Key of the block in a checkpoint dict.
BLOCK_KEY = "graphfuse"
#: Every key of a block, with its value when absent (a block written by an older graphfuse
#: of the same format may miss some: ``graphfuse convert`` before the block held a config).
_BLOCK_DEFAULTS: dict[str, Any] = {
    "format_version": FORMAT_VERSION,
    "graphfuse_version": None,
    "config": None,
    "data": {},
    "class_names": None,
    "num_class": None,
    "task": None,
    "model": None,
    "migrated": False,
}

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


# -- the graphfuse block ----------------------------------------------------------------------------
def _plain(value: Any, where: str) -> Any:
    """``value`` as plain values (dict / list / str / int / float / bool / None); tuples become
    lists, numpy scalars and 0-d tensors numbers. Anything else is a ``TypeError`` naming
    ``where``: the block must load with ``weights_only=True``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    raise TypeError(f"graphfuse checkpoint block: {where} is a {type(value).__name__}, not a plain value")


def graphfuse_block(
    *,
    config: str | None = None,
    data: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
    num_class: int | None = None,
    task: str | None = None,
    model: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``graphfuse`` block of a checkpoint (see the module docstring), plain values only.

    Args:
        config: the resolved config as YAML text.
        data: the datamodule's ``inference_options()``.
        class_names: ``class_names[k]`` names class ``k``.
        num_class: the network's number of outputs.
        task, model: class paths of the task and the network.
        extra: further plain entries (``graphfuse convert``: ``converted_from``, ``release``, ...).
    """
    from . import __version__

    if class_names is not None and num_class is not None and len(class_names) != num_class:
        class_names = None  # names of another label set (e.g. 3 outputs on binary labels): not these outputs
    block = {
        "format_version": FORMAT_VERSION,
        "graphfuse_version": __version__,
        "config": config,
        "data": dict(data or {}),
        "class_names": list(class_names) if class_names is not None else None,
        "num_class": int(num_class) if num_class is not None else None,
        "task": task,
        "model": model,
        "migrated": False,
        **extra,
    }
    return _plain(block, "graphfuse")


def read_graphfuse_block(checkpoint: dict[str, Any], source: str | os.PathLike | None = None) -> dict[str, Any]:
    """The checkpoint's ``graphfuse`` block, validated, with every key present.

    A checkpoint written before the block existed (a Lightning checkpoint of an older
    graphfuse) gets a block reconstructed from what it holds: the task's class path and
    hyper-parameters, the datamodule's hyper-parameters as ``data``, ``num_class`` from the
    network's last layer when it is a ``fc``/``classifier`` linear, ``config`` None, and
    ``migrated: True``.

    Raises:
        CheckpointError: not a checkpoint dict, a block that is not a dict, a format version
            that is not an integer, or one newer than this graphfuse reads (naming ``source``).
    """
    where = f"{os.fspath(source)}: " if source is not None else ""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{where}not a checkpoint (a {type(checkpoint).__name__}, not a dict)")
    block = checkpoint.get(BLOCK_KEY)
    if block is None:
        return _migrated_block(checkpoint)
    if not isinstance(block, dict):
        raise CheckpointError(f"{where}the checkpoint's 'graphfuse' entry is a {type(block).__name__}, not a dict")
    version = block.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}the checkpoint's graphfuse block has format_version {version!r}; expected an "
                              f"integer from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}written by a newer graphfuse (checkpoint format {version}, version "
            f"{block.get('graphfuse_version', '?')}); this graphfuse reads formats up to {FORMAT_VERSION}: upgrade graphfuse"
        )
    out = {**_BLOCK_DEFAULTS, **block}
    if out["data"] is None:
        out["data"] = {}
    return out


def _migrated_block(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A block for a checkpoint written before the block existed (see :func:`read_graphfuse_block`)."""
    hparams = checkpoint.get("hyper_parameters")
    hparams = hparams if isinstance(hparams, dict) else {}
    data_hparams = checkpoint.get("datamodule_hyper_parameters")
    data_hparams = data_hparams if isinstance(data_hparams, dict) else {}
    state = checkpoint.get("state_dict")
    num_class = hparams.get("num_class") if isinstance(hparams.get("num_class"), int) else None
    if num_class is None and isinstance(state, dict):
        for key in ("model.fc.weight", "model.classifier.weight", "model.head.weight"):
            w = state.get(key)
            if isinstance(w, torch.Tensor) and w.ndim == 2:
                num_class = int(w.shape[0])
                break
    data = {k: v for k, v in data_hparams.items() if not k.startswith("_")}
    try:
        data = _plain(data, "data")
    except TypeError:
        data = {}
    task = hparams.get("_class_path") if isinstance(hparams.get("_class_path"), str) else None
    return {
        **_BLOCK_DEFAULTS,
        "data": data,
        "num_class": num_class,
        "task": task,
        "lightning_version": checkpoint.get("pytorch-lightning_version"),
        "migrated": True,
    }
