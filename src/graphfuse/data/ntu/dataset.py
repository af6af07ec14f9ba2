"""Skeleton datasets over prepared NTU-format arrays (and the derived streams they read).

Prepared data (written by :func:`graphfuse.data.ntu.prepare_ntu`) is a directory holding
``meta.json`` and float32 ``.npy`` arrays of shape ``(N, C, T, V, M) = (N, 3, 300, 25, 2)``,
the layout of the official Shift-GCN / 2s-AGCN ``*_data_joint.npy`` files.

* :func:`compute_stream` derives the bone and motion streams on the fly with exactly the
  formulas of the official ``data_gen/gen_bone_data.py`` and ``gen_motion_data.py``
  (Shift-GCN, Cheng et al. CVPR 2020), so they need not be stored.
* :class:`SkeletonDataset` reads one split through a read-only memory map and validates the
  metadata when it is built and every item when it is read.
* Items are addressed by ``i`` or ``(i, seed)``; :class:`graphfuse.data.samplers.EpochSeededSampler`
  (re-exported here) yields the seeded pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from graphfuse.data.ntu.streams import STREAMS, bone, compute_stream, motion
from graphfuse.data.samplers import EpochSeededSampler, item_seeds, unpack_item
from graphfuse.io import read_json

__all__ = [
    "STREAMS",
    "FORMAT_VERSION",
    "Stream",
    "Transform",
    "compute_stream",
    "bone",
    "motion",
    "load_meta",
    "resolve_file",
    "SkeletonDataset",
    "EpochSeededSampler",
    "item_seeds",
]

Stream = Literal["joint", "bone", "joint_motion", "bone_motion"]
#: Versions of the prepared-data format this module reads.
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = frozenset({1})

#: A transform maps one sample ``x: (C, T, V, M)`` with its number of valid frames and a
#: per-item random generator (None when the transform is deterministic) to a new array.
Transform = Callable[[np.ndarray, int, "np.random.Generator | None"], np.ndarray]


# --------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------
def load_meta(data_dir: str | Path) -> dict[str, Any]:
    """Read and check the top level of ``data_dir/meta.json``.

    Raises:
        FileNotFoundError: no ``meta.json`` in ``data_dir``.
        ValueError: unreadable JSON, unsupported ``format_version`` or layout, missing keys.
    """
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prepared-data metadata not found")
    meta = read_json(path)  # ValueError naming the file: not UTF-8, malformed, nested too deep
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    version = meta.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ValueError(
            f"{path}: format_version {version!r} is not supported (this graphfuse reads "
            f"{sorted(SUPPORTED_FORMAT_VERSIONS)}); prepare the data again with this version"
        )
    for key in ("num_class", "max_frame", "num_joint", "num_person", "splits"):
        if key not in meta:
            raise ValueError(f"{path}: missing key {key!r}")
    if meta.get("layout", "N C T V M") != "N C T V M":
        raise ValueError(f"{path}: layout {meta['layout']!r} is not supported, expected 'N C T V M'")
    for key in ("num_class", "max_frame", "num_joint", "num_person"):
        if not _is_int(meta[key]) or meta[key] < 1:
            raise ValueError(f"{path}: {key} must be a positive integer, got {meta[key]!r}")
    if not isinstance(meta["splits"], dict) or not meta["splits"]:
        raise ValueError(f"{path}: 'splits' must be a non-empty object")
    return meta


def resolve_file(data_dir: str | Path, name: str) -> Path:
    """A ``files`` entry of meta.json: absolute, or relative to ``data_dir``."""
    p = Path(name)
    return p if p.is_absolute() else Path(data_dir) / p


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_array(values: Any, what: str, names: Sequence[str] | None, where: Path) -> np.ndarray:
    """``values`` (a JSON list) as int64, or a ValueError naming the first offending sample."""
    if not isinstance(values, list):
        raise ValueError(f"{where}: {what} must be a list")
    if not values:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):  # ragged nesting
        arr = np.asarray(values, dtype=object)
    if arr.ndim == 1 and arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    # Error path only: find the first offending entry to name it.
    i = next((k for k, v in enumerate(values) if not _is_int(v)), None)
    if i is None:
        raise ValueError(f"{where}: {what} must be a flat list of 64-bit integers")
    who = f"sample {names[i]!r}" if names is not None and i < len(names) else f"entry {i}"
    raise ValueError(f"{where}: {what} of {who} is {values[i]!r}, expected an integer")


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------
class SkeletonDataset(Dataset):
    """One split of a prepared skeleton dataset, one stream.

    Items are read from a read-only memory map of the stored array (opened lazily in each
    process, so the dataset pickles cheaply into DataLoader workers and DDP spawns). The
    requested stream is read directly when meta.json lists it for this split (e.g. arrays
    imported from the official scripts), else derived on the fly from the stored motion
    base (``bone`` for ``bone_motion``) or from the joints with :func:`compute_stream`,
    always on the full padded sequence before ``transform`` (temporal sampling).

    Args:
        data_dir: prepared directory holding ``meta.json``.
        split: split name in ``meta['splits']`` (``'train'``, ``'test'``).
        stream: ``'joint'``, ``'bone'``, ``'joint_motion'`` or ``'bone_motion'``.
        indices: optional rows of the split to expose (a subset, e.g. the train part of a
            hold-out split); item ``i`` of this dataset is row ``indices[i]``. Default all.
        transform: callable ``(x (C, T, V, M), num_frames, rng) -> x'`` applied last.
        streams: several streams at once (e.g. ``['joint', 'bone']`` for
            :class:`graphfuse.models.two_stream_skeleton.SkeletonTwoStream`): each is derived
            as ``stream`` would be, the streams are stacked along ``C`` for one ``transform``
            call (so every stream gets the same frames and the same random draws) and the
            item holds one entry per stream name instead of ``"x"``. ``stream`` is then
            unused. None (default): the single ``stream`` under ``"x"``.

    ``dataset[i]`` or ``dataset[(i, seed)]`` returns a dict (graphfuse's batch contract,
    :mod:`graphfuse.tasks.base`): ``"x"`` a float32 tensor ``(C, T', V, M)`` (the model
    input), ``"target"`` the int64 scalar label, ``"id"`` the int64 scalar index ``i`` into
    this dataset (use :attr:`names` to map it to a sample id). ``seed`` (from
    :class:`EpochSeededSampler`) seeds the transform's generator; with a plain int index the
    generator is seeded from fresh OS entropy, i.e. random augmentation is then not
    reproducible.

    Raises at construction (ValueError naming meta.json / the sample): unsupported format
    version, unknown split or stream, array shape not matching the metadata, labels outside
    ``[0, num_class)``, non-integer labels or frame counts, duplicate sample names.
    Raises per item: ValueError naming the sample and the file if its data holds NaN or Inf.
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        stream: str = "joint",
        indices: Sequence[int] | np.ndarray | None = None,
        transform: Transform | None = None,
        streams: Sequence[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.split = split
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
        self.stream = stream
        if streams is not None:
            streams = tuple(streams)
            bad = [s for s in streams if s not in STREAMS]
            if bad or not streams or len(set(streams)) != len(streams):
                raise ValueError(
                    f"streams must be a non-empty list of distinct streams among {STREAMS}, got {list(streams)}"
                )
        #: The batch keys of several streams (None: one stream under ``"x"``).
        self.streams: tuple[str, ...] | None = streams
        self.transform = transform
        meta = load_meta(self.data_dir)
        self.meta = meta
        where = self.data_dir / "meta.json"
        if split not in meta["splits"]:
            raise ValueError(f"{where}: no split {split!r}; available: {sorted(meta['splits'])}")
        info = meta["splits"][split]
        for key in ("files", "samples", "labels", "num_frames"):
            if key not in info:
                raise ValueError(f"{where}: split {split!r} lacks {key!r}")

        names = info["samples"]
        if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
            raise ValueError(f"{where}: splits.{split}.samples must be a list of strings")
        n = len(names)
        uniq, counts = np.unique(np.asarray(names, dtype=str), return_counts=True) if n else ([], [])
        dup = np.flatnonzero(np.asarray(counts) > 1)
        if dup.size:
            raise ValueError(
                f"{where}: split {split!r} has {dup.size} duplicate sample name(s), e.g. {uniq[dup[0]]!r}"
            )
        labels = _int_array(info["labels"], "label", names, where)
        num_frames = _int_array(info["num_frames"], "num_frames", names, where)
        if len(labels) != n or len(num_frames) != n:
            raise ValueError(
                f"{where}: split {split!r} lists {n} samples, {len(labels)} labels and "
                f"{len(num_frames)} num_frames; they must be equal"
            )
        self._num_class = int(meta["num_class"])
        bad = np.flatnonzero((labels < 0) | (labels >= self._num_class))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{where}: sample {names[i]!r} (split {split!r}) has label {int(labels[i])}, outside "
                f"[0, {self._num_class}) ({bad.size} such sample(s))"
            )
        max_frame = int(meta["max_frame"])
        bad = np.flatnonzero((num_frames < 1) | (num_frames > max_frame))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{where}: sample {names[i]!r} (split {split!r}) has num_frames {int(num_frames[i])}, "
                f"outside [1, {max_frame}]"
            )
        self._check_counts(meta, split, n, labels, where)

        # Which stored array to read, and what remains to derive from it (per stream).
        files = info["files"]
        if not isinstance(files, dict):
            raise ValueError(f"{where}: splits.{split}.files must be an object stream -> file")
        plan = [self._source_of(s, files, split, where) for s in (streams or (stream,))]
        self.source_stream, self._derive = plan[0]
        #: (stored source stream, derivation) per requested stream, in order.
        self._plan: list[tuple[str, str]] = plan
        #: The stored arrays read, by source stream (one file unless streams come from several).
        self._files: dict[str, Path] = {}
        for source, _ in plan:
            if source in self._files:
                continue
            path = resolve_file(self.data_dir, files[source])
            if not path.is_file():
                raise FileNotFoundError(f"{path}: array of stream {source!r}, split {split!r} not found ({where})")
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.ndim != 5 or (arr.shape[0], *arr.shape[2:]) != (
                n, max_frame, int(meta["num_joint"]), int(meta["num_person"])
            ):
                raise ValueError(
                    f"{path}: shape {arr.shape} does not match meta.json (N, C, T, V, M) = "
                    f"({n}, C, {max_frame}, {meta['num_joint']}, {meta['num_person']})"
                )
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"{path}: dtype {arr.dtype} is not floating point")
            if self._files and int(arr.shape[1]) != self.in_channels:
                raise ValueError(
                    f"{path}: {arr.shape[1]} channels, but {next(iter(self._files.values()))} has "
                    f"{self.in_channels}; the streams of one batch need the same C"
                )
            self.in_channels = int(arr.shape[1])
            self._files[source] = path
        self.file = self._files[self.source_stream]
        self._array: np.ndarray | None = None  # re-opened lazily in each process
        self._arrays: dict[str, np.ndarray] | None = None

        if indices is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            rows = np.asarray(indices)
            if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
                raise ValueError(f"indices must be a 1-D integer sequence, got {rows.dtype} {rows.shape}")
            rows = rows.astype(np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"indices must lie in [0, {n}) for split {split!r}")
            if np.unique(rows).size != rows.size:
                raise ValueError("indices contain duplicates")
        self.rows = rows
        self._all_names = names
        self._names: list[str] = np.asarray(names, dtype=object)[rows].tolist()
        self._labels = labels[rows]
        self._num_frames = num_frames[rows]

    # -- metadata ----------------------------------------------------------------------
    @staticmethod
    def _source_of(stream: str, files: dict, split: str, where: Path) -> tuple[str, str]:
        """(stored stream to read, derivation for :func:`compute_stream`) of ``stream``."""
        if stream in files:
            return stream, "joint"  # "joint" = identity in compute_stream
        if stream == "bone_motion" and "bone" in files:
            return "bone", "joint_motion"
        if "joint" in files:
            return "joint", stream
        raise ValueError(f"{where}: split {split!r} stores no 'joint' array (files: {sorted(files)})")

    @staticmethod
    def _check_counts(meta: dict, split: str, n: int, labels: np.ndarray, where: Path) -> None:
        """Compare with ``meta['counts'][split]`` where it gives a total or per-class counts."""
        counts = meta.get("counts")
        if not isinstance(counts, dict) or split not in counts:
            return
        c = counts[split]
        total = c if _is_int(c) else (c.get("total") if isinstance(c, dict) else None)
        if _is_int(total) and total != n:
            raise ValueError(f"{where}: counts.{split} says {total} samples, the split lists {n}")
        per_class = c.get("per_class") if isinstance(c, dict) else None
        if isinstance(per_class, list) and len(per_class) == int(meta["num_class"]):
            got = np.bincount(labels, minlength=len(per_class))
            if not np.array_equal(got, np.asarray(per_class)):
                k = int(np.flatnonzero(got != np.asarray(per_class))[0])
                raise ValueError(
                    f"{where}: counts.{split}.per_class[{k}] = {per_class[k]}, labels give {int(got[k])}"
                )

    @property
    def names(self) -> list[str]:
        """Sample ids, in dataset order (a shared list: do not modify)."""
        return self._names

    @property
    def labels(self) -> np.ndarray:
        """``(len,)`` int64 0-based labels."""
        return self._labels

    @property
    def num_frames(self) -> np.ndarray:
        """``(len,)`` int64 number of valid (unpadded) frames per sample."""
        return self._num_frames

    @property
    def num_class(self) -> int:
        return self._num_class

    def __len__(self) -> int:
        return int(self.rows.size)

    # -- item access -------------------------------------------------------------------
    def _open(self) -> np.ndarray:
        return np.load(self.file, mmap_mode="r", allow_pickle=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None  # never pickle a memory map's contents
        state["_arrays"] = None
        return state

    def _read_row(self, source: str, row: int) -> np.ndarray:
        """Row ``row`` of the stored ``source`` array as a float32 copy, checked finite."""
        if self._arrays is None:
            self._arrays = {s: np.load(p, mmap_mode="r", allow_pickle=False) for s, p in self._files.items()}
        x = np.array(self._arrays[source][row], dtype=np.float32, copy=True)
        if not np.isfinite(x).all():
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise ValueError(
                f"sample {self._all_names[row]!r} (row {row} of {self._files[source]}) holds {bad} NaN/Inf value(s)"
            )
        return x

    def _multi_item(self, index: int, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        """Several streams of one sample: derived from their stored arrays, stacked along C so
        that one transform call samples the same frames for all of them, then split."""
        assert self.streams is not None
        row = int(self.rows[index])
        rows = {source: self._read_row(source, row) for source in self._files}
        x = np.concatenate([compute_stream(rows[source], derive) for source, derive in self._plan], axis=0)
        if self.transform is not None:
            if rng is None:
                rng = np.random.default_rng()
            x = self.transform(x, int(self._num_frames[index]), rng)
        parts = np.split(np.ascontiguousarray(x, dtype=np.float32), len(self.streams), axis=0)
        item: dict[str, torch.Tensor] = {
            name: torch.from_numpy(np.ascontiguousarray(part)) for name, part in zip(self.streams, parts)
        }
        item["target"] = torch.tensor(int(self._labels[index]), dtype=torch.int64)
        item["id"] = torch.tensor(index, dtype=torch.int64)
        return item

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """``{"x": (C, T', V, M) float32, "target": () int64, "id": () int64}`` of item ``i``;
        with ``streams``, one ``(C, T', V, M)`` entry per stream name instead of ``"x"``."""
        index, rng = unpack_item(item)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        if self.streams is not None:
            return self._multi_item(index, rng)
        row = int(self.rows[index])
        if self._array is None:
            self._array = self._open()
        # An explicit copy: np.asarray would return a read-only view of the memory map.
        x = np.array(self._array[row], dtype=np.float32, copy=True)
        if not np.isfinite(x).all():
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise ValueError(
                f"sample {self._all_names[row]!r} (row {row} of {self.file}) holds {bad} NaN/Inf value(s)"
            )
        x = compute_stream(x, self._derive)
        if self.transform is not None:
            if rng is None:
                rng = np.random.default_rng()
            x = self.transform(x, int(self._num_frames[index]), rng)
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "target": torch.tensor(int(self._labels[index]), dtype=torch.int64),
            "id": torch.tensor(index, dtype=torch.int64),
        }

    def __repr__(self) -> str:
        which = f"streams={list(self.streams)!r}" if self.streams is not None else f"stream={self.stream!r}"
        return f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, split={self.split!r}, {which}, len={len(self)})"
