"""Numpy-only access to a prepared gait folder (no torch).

A folder written by :mod:`graphfuse.data.gait.prepare` holds (``docs/data_gait.md``):

``frames.npy``
    uint8 ``(F, S, S)``: every kept frame of every sequence, pretreated to ``S x S``
    (``S`` = 64 or 128, full width; the side cut of ``S // 64 * 10`` px per side happens at
    load time, as OpenGait's ``BaseSilCuttingTransform``).
``offsets.npy``
    int64 ``(N + 1,)``: sequence ``i`` is ``frames[offsets[i]:offsets[i + 1]]``.
``meta.json``
    ids, types, views and frame counts of the ``N`` sequences (sorted by id, type, view), the
    partition, the pretreatment settings (format ``graphfuse-gait``, version 1).

:class:`GaitSequences` opens the frames as a memory map and checks that the three files agree
before anything reads a frame; every error names the folder and the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "GaitSequences", "check_meta"]

FORMAT = "graphfuse-gait"
VERSION = 1
_SEQ_KEYS = ("id", "type", "view", "frames")


def _fail(folder: Path, what: str) -> ValueError:
    return ValueError(f"{folder}: {what}")


def check_meta(meta: Any, folder: str | os.PathLike) -> dict[str, Any]:
    """Check the structure of a gait ``meta.json`` (format, version, the per-sequence lists and
    the partition); returns it. Raises ValueError naming ``folder/meta.json``."""
    where = Path(folder) / "meta.json"
    if not isinstance(meta, dict):
        raise _fail(where, "expected a JSON object")
    if meta.get("format") != FORMAT:
        raise _fail(where, f"format is {meta.get('format')!r}, expected {FORMAT!r} "
                           "(prepare the folder with `graphfuse prepare casia-b`)")
    if meta.get("version") != VERSION:
        raise _fail(where, f"version {meta.get('version')!r} is not supported (expected {VERSION}); "
                           "prepare the data again")
    for key in ("size", "num_sequences", "num_frames"):
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _fail(where, f"{key!r} must be a non-negative integer, got {v!r}")
    n = meta["num_sequences"]
    seqs = meta.get("sequences")
    if not isinstance(seqs, dict):
        raise _fail(where, "'sequences' must be an object with lists id, type, view, frames")
    for key in _SEQ_KEYS:
        lst = seqs.get(key)
        if not isinstance(lst, list) or len(lst) != n:
            got = len(lst) if isinstance(lst, list) else type(lst).__name__
            raise _fail(where, f"sequences.{key} must be a list of num_sequences={n} entries, got {got}")
        kind = int if key == "frames" else str
        if not all(isinstance(v, kind) and not isinstance(v, bool) for v in lst):
            raise _fail(where, f"sequences.{key} must hold {kind.__name__} values")
    part = meta.get("partition")
    if not isinstance(part, dict) or not all(
            isinstance(part.get(k), list) and all(isinstance(v, str) for v in part[k]) for k in ("train", "test")):
        raise _fail(where, "'partition' must be an object with lists of id strings 'train' and 'test'")
    both = set(part["train"]) & set(part["test"])
    if both:
        raise _fail(where, f"ids in both partition.train and partition.test: {sorted(both)[:5]}")
    return meta


class GaitSequences:
    """The sequences of a prepared gait folder, frames memory-mapped (numpy only).

    Attributes:
        path: the folder.
        meta: its ``meta.json``.
        ids, types, views: ``np.ndarray`` of str, one entry per sequence.
        lengths: int64 ``(N,)`` frames per sequence.
        offsets: int64 ``(N + 1,)``.
        size: ``S``, the stored frame side.

    Raises FileNotFoundError for a missing file and ValueError for a corrupt one or files that
    disagree (offsets vs the frame count, dtype, ndim, frame size, the meta lists); each names
    the folder and the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from graphfuse.io import read_json

        self.path = folder = Path(path)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder}: no meta.json here (not a prepared gait folder; "
                                    "run `graphfuse prepare casia-b --root DIR --out DIR`)")
        self.meta: dict[str, Any] = check_meta(read_json(meta_path), folder)
        n, f, s = self.meta["num_sequences"], self.meta["num_frames"], self.meta["size"]
        self._frames = self._load(folder / "frames.npy", mmap=True)
        self.offsets = self._load(folder / "offsets.npy", mmap=False)
        fr = self._frames
        if fr.dtype != np.uint8 or fr.ndim != 3:
            raise _fail(folder / "frames.npy", f"expected uint8 (F, S, S), got {fr.dtype} with shape {fr.shape}")
        if fr.shape[1:] != (s, s):
            raise _fail(folder / "frames.npy", f"frames are {fr.shape[1]}x{fr.shape[2]}, meta.json says size {s}")
        if fr.shape[0] != f:
            raise _fail(folder / "frames.npy", f"{fr.shape[0]} frames, meta.json says num_frames={f}")
        off = self.offsets
        if off.dtype != np.int64 or off.ndim != 1 or off.shape[0] != n + 1:
            raise _fail(folder / "offsets.npy", f"expected int64 ({n + 1},) for {n} sequences, "
                                                f"got {off.dtype} with shape {off.shape}")
        if off[0] != 0 or off[-1] != f or np.any(np.diff(off) < 0):
            raise _fail(folder / "offsets.npy", f"offsets must rise from 0 to num_frames={f} "
                                                f"(first {int(off[0])}, last {int(off[-1])})")
        seqs = self.meta["sequences"]
        self.lengths = np.diff(off)
        listed = np.asarray(seqs["frames"], dtype=np.int64)
        bad = np.flatnonzero(listed != self.lengths)
        if bad.size:
            i = int(bad[0])
            raise _fail(folder / "offsets.npy", f"sequence {i} ({seqs['id'][i]}/{seqs['type'][i]}/{seqs['view'][i]}) "
                                                f"has {int(self.lengths[i])} frames, meta.json lists {int(listed[i])}")
        self.size = s
        self.ids = np.asarray(seqs["id"], dtype=str)
        self.types = np.asarray(seqs["type"], dtype=str)
        self.views = np.asarray(seqs["view"], dtype=str)
        self._train_ids = list(self.meta["partition"]["train"])

    @staticmethod
    def _load(path: Path, mmap: bool) -> np.ndarray:
        if not path.is_file():
            raise FileNotFoundError(f"{path.parent}: {path.name} is missing (prepare the folder again)")
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path.parent}: {path.name} is not a readable .npy file ({exc})") from None

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def __repr__(self) -> str:
        return (f"GaitSequences({str(self.path)!r}: {len(self)} sequences, {self.meta['num_frames']} frames "
                f"of {self.size}x{self.size})")

    @property
    def num_class(self) -> int:
        """Training classes: the ids of ``partition.train``."""
        return len(self._train_ids)

    @property
    def frame_array(self) -> np.ndarray:
        """The whole uint8 ``(F, S, S)`` memory map."""
        return self._frames

    def frames(self, i: int) -> np.ndarray:
        """uint8 ``(T, S, S)`` view of sequence ``i``'s frames (memory-mapped, read-only)."""
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"{self.path}: sequence index {i} out of range for {n} sequences")
        i = int(i) % n
        return self._frames[self.offsets[i]:self.offsets[i + 1]]

    def split_indices(self, split: str) -> np.ndarray:
        """int64 indices of the sequences whose id is in ``partition[split]`` (``train``/``test``)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        ids = np.asarray(self.meta["partition"][split], dtype=str)
        return np.flatnonzero(np.isin(self.ids, ids)).astype(np.int64)

    def targets(self) -> np.ndarray:
        """int64 ``(N,)``: each sequence's training class (the position of its id in
        ``partition.train``), -1 for ids outside it."""
        train = np.asarray(self._train_ids, dtype=str)
        if train.size == 0:
            return np.full(len(self), -1, dtype=np.int64)
        order = np.argsort(train)
        pos = np.searchsorted(train, self.ids, sorter=order)
        pos = np.minimum(pos, train.size - 1)
        found = train[order[pos]] == self.ids
        return np.where(found, order[pos], -1).astype(np.int64)

    def where(self, mapping: Mapping[str, str] | None = None, **fields: str) -> np.ndarray:
        """int64 indices of the sequences matching every given field, e.g. ``where(type="nm-05")``."""
        sel = np.ones(len(self), dtype=bool)
        for key, value in {**(mapping or {}), **fields}.items():
            column = {"id": self.ids, "type": self.types, "view": self.views}.get(key)
            if column is None:
                raise ValueError(f"unknown field {key!r}; choose from id, type, view")
            sel &= column == value
        return np.flatnonzero(sel).astype(np.int64)
