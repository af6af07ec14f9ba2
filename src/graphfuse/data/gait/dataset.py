"""Datasets over a prepared gait folder: frame sampling, the side cut, the test collation.

A prepared folder (:mod:`graphfuse.data.gait.prepare`, read through
:class:`graphfuse.data.gait.sequences.GaitSequences`) stores every pretreated frame as uint8
``S x S`` (``S`` = 64 or 128). At load time, as OpenGait's ``BaseSilCuttingTransform``, the
frames are divided by 255 and ``S // 64 * 10`` columns are cut from each side: 64 x 44 (or
128 x 88) float32 in ``[0, 1]``. No augmentation (GaitSet and GLN use none).

Frame sampling (OpenGait's ``CollateFn``, ``opengait/data/collate_fn.py``; rules restated, not
copied), per training item, from a sequence of ``L`` frames:

* ``fixed_unordered`` (GaitSet): ``frames`` indices drawn uniformly, without replacement, or
  with replacement when ``L < frames``; in the order drawn (``np.random.choice``).
* ``fixed_ordered`` (GLN, ``frames_skip_num = 0``): ``frames`` consecutive frames from a
  uniform random start; a sequence shorter than ``frames`` is tiled first (repeated
  ``ceil(frames / L)`` times), so the indices are ``(start + j) mod L``, ``j < frames``, with
  ``start`` uniform in ``[0, L * ceil(frames / L) - frames]`` (``[0, L - frames]`` when
  ``L >= frames``).
* ``all_ordered`` (evaluation): every frame in order.

Items (the batch contract of :mod:`graphfuse.tasks.base`)::

    train: {"silhouettes": (frames, H, W) float32, "target": int64 training class, "id": int64}
    test:  {"silhouettes": (L, H, W) float32 (all frames), "lengths": int64 L, "target": -1 for
            ids outside the training partition, "id": int64}

``id`` is the item's position in its split (:attr:`GaitDataset.names` gives
``<id>-<type>-<view>``). The test batches concatenate their sequences along the frame axis
(:func:`collate_sequences`): ``silhouettes (1, sum L, H, W)`` with ``lengths (N,)``, so
sequences of any lengths share a batch and the network pools each one separately; any test
batch size gives the same embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from graphfuse.data.gait.sequences import GaitSequences
from graphfuse.data.samplers import unpack_item

__all__ = [
    "FRAME_SAMPLING",
    "GaitDataset",
    "collate_sequences",
    "sample_frame_indices",
    "side_cut",
]

#: Frame-sampling rules (OpenGait's ``sample_type`` names).
FRAME_SAMPLING = ("fixed_unordered", "fixed_ordered", "all_ordered")
FrameSampling = Literal["fixed_unordered", "fixed_ordered", "all_ordered"]


def side_cut(size: int) -> int:
    """Columns cut from each side of an ``S``-wide frame at load time: ``S // 64 * 10``
    (OpenGait's ``BaseSilCuttingTransform``: 64 -> 44, 128 -> 88)."""
    return int(size) // 64 * 10


def sample_frame_indices(length: int, frames: int, mode: str, rng: np.random.Generator | None) -> np.ndarray:
    """Indices into a sequence of ``length`` frames by the rule ``mode`` (module docstring).

    Args:
        length: frames in the sequence (>= 1).
        frames: frames to draw (``fixed_*``; ignored by ``all_ordered``).
        mode: one of :data:`FRAME_SAMPLING`.
        rng: the item's generator (None: fresh OS entropy, not reproducible).

    Returns:
        int64 ``(frames,)`` (``(length,)`` for ``all_ordered``).
    """
    if length < 1:
        raise ValueError(f"cannot sample frames from an empty sequence (length {length})")
    if mode == "all_ordered":
        return np.arange(length, dtype=np.int64)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    rng = rng if rng is not None else np.random.default_rng()
    if mode == "fixed_unordered":
        return rng.choice(length, size=frames, replace=length < frames).astype(np.int64)
    if mode == "fixed_ordered":
        tiled = length * -(-frames // length) if length < frames else length
        start = int(rng.integers(0, tiled - frames + 1))
        return (start + np.arange(frames, dtype=np.int64)) % length
    raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLING}, got {mode!r}")


class GaitDataset(Dataset):
    """Sequences of one split of a prepared gait folder.

    Args:
        sequences: the folder's :class:`GaitSequences`.
        indices: the sequences of this split (rows of ``sequences``), in order.
        frame_sampling: one of :data:`FRAME_SAMPLING` (``all_ordered`` for evaluation).
        frames: frames per training item (``fixed_*``).
        with_lengths: add ``lengths`` to each item (evaluation items, for
            :func:`collate_sequences`).
    """

    def __init__(self, sequences: GaitSequences, indices: Sequence[int] | np.ndarray,
                 frame_sampling: FrameSampling = "fixed_unordered", frames: int = 30,
                 with_lengths: bool = False) -> None:
        if frame_sampling not in FRAME_SAMPLING:
            raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLING}, got {frame_sampling!r}")
        self.sequences = sequences
        self.rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= len(sequences)):
            raise ValueError(f"{sequences.path}: sequence indices out of range for {len(sequences)} sequences")
        self.frame_sampling = frame_sampling
        self.frames = int(frames)
        self.with_lengths = bool(with_lengths)
        self.cut = side_cut(sequences.size)
        self._targets = sequences.targets()[self.rows]
        self._starts = sequences.offsets[self.rows]
        self._lengths = sequences.lengths[self.rows]
        empty = np.flatnonzero(self._lengths == 0)
        if empty.size:
            raise ValueError(f"{sequences.path}: sequence {self._name(int(empty[0]))} has no frames")

    def _name(self, i: int) -> str:
        r = int(self.rows[i])
        s = self.sequences
        return f"{s.ids[r]}-{s.types[r]}-{s.views[r]}"

    # -- what datamodules, samplers and the evaluation read ---------------------------------------
    @property
    def names(self) -> list[str]:
        """``<id>-<type>-<view>`` of every item, in item order."""
        s, r = self.sequences, self.rows
        return [f"{i}-{t}-{v}" for i, t, v in zip(s.ids[r].tolist(), s.types[r].tolist(), s.views[r].tolist())]

    @property
    def targets(self) -> np.ndarray:
        """int64 ``(n,)`` training class of each item (-1 outside the training partition)."""
        return self._targets

    @property
    def lengths(self) -> np.ndarray:
        """int64 ``(n,)`` stored frames of each item."""
        return self._lengths

    @property
    def ids(self) -> np.ndarray:
        """Subject id of each item (str)."""
        return self.sequences.ids[self.rows]

    @property
    def types(self) -> np.ndarray:
        """Sequence type of each item (``nm-01``, ``00``, ...)."""
        return self.sequences.types[self.rows]

    @property
    def views(self) -> np.ndarray:
        """View of each item (``000`` .. ``180``)."""
        return self.sequences.views[self.rows]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the loaded frames (after the side cut)."""
        s = self.sequences.size
        return s, s - 2 * self.cut

    # -- items ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        i, rng = unpack_item(item)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} sequences")
        length = int(self._lengths[i])
        idx = sample_frame_indices(length, self.frames, self.frame_sampling, rng)
        frames = self.sequences.frame_array
        start = int(self._starts[i])
        cut = self.cut
        if self.frame_sampling == "all_ordered":
            raw = frames[start:start + length]
        else:
            raw = frames[start + idx]  # memmap fancy indexing: only these frames are read
        if cut:
            raw = raw[:, :, cut:raw.shape[2] - cut]
        sil = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32) / np.float32(255.0))
        out = {"silhouettes": sil, "target": torch.tensor(int(self._targets[i]), dtype=torch.long),
               "id": torch.tensor(i, dtype=torch.long)}
        if self.with_lengths:
            out["lengths"] = torch.tensor(sil.shape[0], dtype=torch.long)
        return out


def collate_sequences(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Evaluation batches: the items' frames concatenated along the frame axis (OpenGait's
    convention for variable lengths), ``silhouettes (1, sum L, H, W)``, with ``lengths (N,)``,
    ``target (N,)`` and ``id (N,)``."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    return {
        "silhouettes": torch.cat([it["silhouettes"] for it in items], dim=0).unsqueeze(0),
        "lengths": torch.stack([it["lengths"] if "lengths" in it else torch.tensor(it["silhouettes"].shape[0])
                                for it in items]).long(),
        "target": torch.stack([it["target"] for it in items]),
        "id": torch.stack([it["id"] for it in items]),
    }

