"""Dataset over a prepared multi-label folder: JPEG files decoded with ``torchvision.io.decode_jpeg``.

An item is a dict (the batch contract of :mod:`graphfuse.tasks.base`)::

    {"image": (3, S, S) float32 (ImageNet-normalised), "target": (C,) int64 (1 / 0 / -1),
     "id": int (position in this dataset; :attr:`MultiLabelImageDataset.names` gives the file)}

Items are addressed by ``i`` or ``(i, seed)`` (:class:`graphfuse.data.samplers.EpochSeededSampler`);
the seed drives the random crop and flip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from graphfuse.data.multilabel.prepare import SPLITS, load_multilabel_meta
from graphfuse.data.multilabel.transforms import decode_image_file
from graphfuse.data.samplers import unpack_item
from graphfuse.io import read_json

__all__ = ["MultiLabelImageDataset", "decode_image_file"]  # decode_image_file: re-exported

#: ``transform(image (3, H, W) uint8, rng) -> (3, S, S) float32``.
Transform = Callable[[torch.Tensor, "np.random.Generator | None"], torch.Tensor]


class MultiLabelImageDataset(Dataset):
    """One split of a prepared multi-label folder (or a subset of its rows).

    Args:
        data_dir: the prepared folder.
        split: ``'train'`` or ``'test'``.
        indices: rows of the split to expose (a hold-out subset); None = all, in order.
        transform: ``(uint8 image, rng) -> float image`` (:mod:`graphfuse.data.multilabel.transforms`).
        meta: ``meta.json`` already read (else read and checked here).
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, indices: Sequence[int] | np.ndarray | None = None,
                 transform: Transform | None = None, meta: dict[str, Any] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.data_dir = Path(data_dir)
        self.split = split
        self.meta = meta if meta is not None else load_multilabel_meta(self.data_dir)
        labels_path = self.data_dir / f"{split}_labels.npy"
        labels = np.load(labels_path, mmap_mode="r", allow_pickle=False)
        files = read_json(self.data_dir / f"{split}_files.json")
        c = int(self.meta["num_class"])
        if labels.dtype != np.int8 or labels.ndim != 2 or labels.shape[1] != c:
            raise ValueError(f"{labels_path}: expected int8 (n, {c}), got {labels.dtype} {labels.shape}")
        if not isinstance(files, list) or len(files) != labels.shape[0] or not all(isinstance(f, str) for f in files):
            raise ValueError(f"{self.data_dir / f'{split}_files.json'}: expected a list of {labels.shape[0]} file names")
        rows = np.arange(labels.shape[0], dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= labels.shape[0]):
            raise ValueError(f"indices must lie in [0, {labels.shape[0]}) for the {split} split")
        self.rows = rows
        self._labels = np.asarray(labels[rows], dtype=np.int64)  # (n, C): small (COCO: 82k x 80)
        self._files = [files[i] for i in rows.tolist()]
        self.image_root = Path(str(self.meta["image_roots"][split]))
        self.transform = transform

    @property
    def names(self) -> list[str]:
        """File names of the items (relative to :attr:`image_root`), in item order."""
        return self._files

    @property
    def labels(self) -> np.ndarray:
        """``(n, C)`` int64 labels of the items (1 / 0 / -1)."""
        return self._labels

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        i, rng = unpack_item(item)
        img = decode_image_file(self.image_root / self._files[i])
        image = self.transform(img, rng) if self.transform is not None else img
        return {"image": image, "target": torch.from_numpy(self._labels[i].copy()), "id": i}
