"""LightningDataModule over prepared skeleton arrays (NTU RGB+D format).

Protocols:

* ``val_source='holdout'`` (default, graphfuse's fair protocol): a fixed, seeded,
  class-stratified fraction of the *training* split is held out for model selection; the
  test split is touched only by ``test``/``predict``.
* ``val_source='test'``: the official Shift-GCN protocol, which evaluates on the test split
  every epoch and reports the best epoch (``main.py: eval()``); nothing is held out. The CLI
  sets this only behind an explicit option and labels its outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from graphfuse.data.checks import require_checked
from graphfuse.data.skeleton import EpochSeededSampler, SkeletonDataset, load_meta, resolve_file
from graphfuse.data.transforms import Compose, FrameSubsample, UniformSample

__all__ = ["SkeletonDataModule", "stratified_holdout"]

_STAGE_ALIASES = {
    "fit": "train",
    "train": "train",
    "validate": "val",
    "val": "val",
    "validation": "val",
    "test": "test",
    "predict": "predict",
}


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample positions into (train, val), stratified by class, reproducibly.

    Class ``c`` with ``n_c`` samples gives ``k_c = round(fraction * n_c)`` samples to val
    (round half to even), at least 1 when ``n_c >= 2`` and at most ``n_c - 1``, so every
    class keeps a training sample; a single-sample class stays in train. Which samples go is
    decided by one ``numpy.random.default_rng(seed)`` draw per sample (PCG64, identical on
    every platform), so the split depends only on ``(labels, fraction, seed)``.

    Args:
        labels: ``(N,)`` integer labels, in the prepared split's order.
        fraction: in ``(0, 1)``.
        seed: non-negative seed.

    Returns:
        ``(train_idx, val_idx)``: sorted, disjoint int64 arrays covering ``range(N)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n = labels.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, labels))  # by class, then by random key
    sorted_labels = labels[order]
    classes, start, size = np.unique(sorted_labels, return_index=True, return_counts=True)
    k = np.rint(fraction * size).astype(np.int64)
    k = np.where(size >= 2, np.clip(k, 1, size - 1), 0)
    rank = np.arange(n) - np.repeat(start, size)  # position within its class block
    take = rank < np.repeat(k, size)
    val = np.sort(order[take])
    train = np.sort(order[~take])
    return train, val


class SkeletonDataModule(L.LightningDataModule):
    """Loaders for a prepared skeleton dataset: dict batches ``{"x", "target", "id"}``.

    ``x: (B, C, T, V, M)`` float32 (the model input), ``target: (B,)`` int64 labels,
    ``id: (B,)`` int64 positions in :meth:`dataset` of the stage (map them to sample ids
    with :meth:`split_names`); the contract of :mod:`graphfuse.tasks.base`.

    Args:
        data_dir: directory prepared by ``graphfuse prepare`` (holds ``meta.json``).
        stream: input stream; bones and motion are derived on the fly with the formulas of
            the official Shift-GCN ``gen_bone_data.py`` / ``gen_motion_data.py``.
        batch_size: training batch size (Shift-GCN: 64).
        eval_batch_size: batch size of val/test/predict loaders; None = ``batch_size``.
        num_workers: DataLoader worker processes.
        clip_len: frames per clip sampled with :class:`UniformSample` (PYSKL: 100); None keeps
            the full 300-frame padded sequence, the official Shift-GCN protocol
            (``window_size: -1``, no augmentation).
        frame_stride: keep every ``frame_stride``-th frame (:class:`FrameSubsample`, the
            research notes' ``reduce_frame``) before ``clip_len`` sampling, in training and
            evaluation alike; the valid frame count becomes ``ceil(num_frames / k)``. Streams
            are derived first, at the recorded frame rate. With ``clip_len=None`` the model
            sees ``ceil(300 / k)`` frames (Shift-GCN needs a multiple of 4: k = 3 or 5, not 2).
        val_fraction: fraction of each training class held out for validation when
            ``val_source='holdout'``.
        val_seed: seed of the hold-out split (fixed across runs, so all seeds and variants of
            a study select on the same samples).
        val_source: ``'holdout'`` validates on the held-out training samples; ``'test'``
            validates on the test split (the official protocol, which selects on test).
        seed: data-order seed of :class:`EpochSeededSampler` (order and augmentation are a
            function of ``(seed, epoch)``, so resumed runs replay the same batches).
        drop_last: drop the last incomplete training batch (the official train loader does).
        pin_memory: DataLoader ``pin_memory``.
        synthetic: when ``data_dir/meta.json`` is missing, generate a synthetic NTU-format
            dataset there (``graphfuse.data.synthetic.ntu.prepare_synthetic_ntu``) instead of
            raising.
    """

    def __init__(
        self,
        data_dir: str,
        stream: Literal["joint", "bone", "joint_motion", "bone_motion"] = "joint",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        clip_len: int | None = None,
        frame_stride: int = 1,
        val_fraction: float = 0.05,
        val_seed: int = 0,
        val_source: Literal["holdout", "test"] = "holdout",
        seed: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
        synthetic: bool = False,
    ) -> None:
        super().__init__()
        if stream not in ("joint", "bone", "joint_motion", "bone_motion"):
            raise ValueError(f"stream: unknown value {stream!r}")
        if val_source not in ("holdout", "test"):
            raise ValueError(f"val_source: expected 'holdout' or 'test', got {val_source!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        if clip_len is not None and clip_len < 1:
            raise ValueError(f"clip_len must be >= 1 or None, got {clip_len}")
        if isinstance(frame_stride, bool) or not isinstance(frame_stride, int) or frame_stride < 1:
            raise ValueError(f"frame_stride must be an integer >= 1, got {frame_stride!r}")
        if val_source == "holdout" and not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) with val_source='holdout', got {val_fraction}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if seed < 0 or val_seed < 0:
            raise ValueError("seed and val_seed must be >= 0")
        self.save_hyperparameters()
        self.data_dir = str(data_dir)
        self.stream = stream
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else int(batch_size)
        self.num_workers = int(num_workers)
        self.clip_len = clip_len
        self.frame_stride = int(frame_stride)
        self.val_fraction = float(val_fraction)
        self.val_seed = int(val_seed)
        self.val_source = val_source
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.pin_memory = bool(pin_memory)
        self.synthetic = bool(synthetic)
        self._meta: dict[str, Any] | None = None
        self._datasets: dict[str, SkeletonDataset] = {}

    # -- metadata ----------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return Path(self.data_dir) / "meta.json"

    def _missing_error(self) -> FileNotFoundError:
        return FileNotFoundError(
            f"no prepared data in {self.data_dir!r} ({self.meta_path} is missing). Prepare it with "
            f"`graphfuse prepare ntu --root <dir of .skeleton files> --out {self.data_dir}`, "
            "or set `synthetic: true` to generate synthetic data there."
        )

    @property
    def meta(self) -> dict[str, Any]:
        """``meta.json`` of ``data_dir``, read once (generated first when ``synthetic``)."""
        if self._meta is None:
            if not self.meta_path.is_file():
                if not self.synthetic:
                    raise self._missing_error()
                # Properties are read by the CLI (argument linking) before prepare_data runs.
                self.prepare_data()
            meta = load_meta(self.data_dir)
            require_checked(meta, self.data_dir)  # values finite and plausible (graphfuse check)
            self._meta = meta
        return self._meta

    @property
    def num_class(self) -> int:
        """Number of classes (``meta.json: num_class``)."""
        return int(self.meta["num_class"])

    def synthetic_meta(self) -> dict[str, Any]:
        """What ``meta.json`` says about the synthetic data ``synthetic: true`` would generate
        (its class count), without generating it: for ``graphfuse info`` on a clean clone."""
        from graphfuse.data.synthetic.ntu import ACTIONS  # lazy: only when asked

        return {"num_class": len(ACTIONS), "synthetic": True}

    @property
    def num_point(self) -> int:
        """Joints per skeleton V (25 for NTU)."""
        return int(self.meta["num_joint"])

    @property
    def num_person(self) -> int:
        """Bodies per sample M (2 for NTU)."""
        return int(self.meta["num_person"])

    @property
    def in_channels(self) -> int:
        """Input channels C (3: x, y, z for every stream)."""
        info = self.meta["splits"]["train"]
        files = info["files"]
        key = "joint" if "joint" in files else next(iter(files))
        arr = np.load(resolve_file(self.data_dir, files[key]), mmap_mode="r", allow_pickle=False)
        return int(arr.shape[1])

    # -- Lightning hooks ---------------------------------------------------------------
    def prepare_data(self) -> None:
        """Check that the prepared data exists; generate synthetic data when asked to."""
        if self.meta_path.is_file():
            return
        if not self.synthetic:
            raise self._missing_error()
        from graphfuse.data.synthetic.ntu import prepare_synthetic_ntu  # lazy: only when asked

        prepare_synthetic_ntu(self.data_dir)
        if not self.meta_path.is_file():
            raise FileNotFoundError(f"prepare_synthetic_ntu({self.data_dir!r}) wrote no {self.meta_path}")

    def _transform(self, test_mode: bool) -> FrameSubsample | UniformSample | Compose | None:
        # Subsample first (whole sequence), then sample the clip from the kept frames.
        steps: list[FrameSubsample | UniformSample] = []
        if self.frame_stride > 1:
            steps.append(FrameSubsample(self.frame_stride))
        if self.clip_len:
            steps.append(UniformSample(self.clip_len, test_mode=test_mode))
        if not steps:
            return None
        return steps[0] if len(steps) == 1 else Compose(steps)

    def _eval_transform(self) -> FrameSubsample | UniformSample | Compose | None:
        return self._transform(test_mode=True)

    def holdout_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_rows, val_rows)`` of the prepared train split (val empty for ``val_source='test'``)."""
        labels = SkeletonDataset(self.data_dir, "train", self.stream).labels  # validated labels
        if self.val_source == "test":
            return np.arange(labels.size, dtype=np.int64), np.zeros(0, np.int64)
        return stratified_holdout(labels, self.val_fraction, self.val_seed)

    def _build(self, key: str) -> SkeletonDataset:
        if key in self._datasets:
            return self._datasets[key]
        if not self.meta_path.is_file():
            raise self._missing_error()
        _ = self.meta  # refuses a folder whose values were never checked
        if key == "train" or (key == "val" and self.val_source == "holdout"):
            train_rows, val_rows = self.holdout_indices()
            if key == "train":
                tf = self._transform(test_mode=False)
                ds = SkeletonDataset(self.data_dir, "train", self.stream, indices=train_rows, transform=tf)
            else:
                ds = SkeletonDataset(
                    self.data_dir, "train", self.stream, indices=val_rows, transform=self._eval_transform()
                )
        else:  # val on test (official protocol), test, predict
            ds = SkeletonDataset(self.data_dir, "test", self.stream, transform=self._eval_transform())
        self._datasets[key] = ds
        return ds

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (``fit``, ``validate``, ``test``, ``predict``; None = all)."""
        keys = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
            None: ("train", "val", "test", "predict"),
        }
        if stage not in keys:
            raise ValueError(f"unknown stage {stage!r}")
        for key in keys[stage]:
            self._build(key)

    def dataset(self, stage: str) -> SkeletonDataset:
        """The dataset behind ``stage``'s loader.

        ``stage``: ``fit``/``train``, ``validate``/``val``, ``test`` or ``predict``.
        """
        if stage not in _STAGE_ALIASES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_STAGE_ALIASES)}")
        return self._build(_STAGE_ALIASES[stage])

    def split_names(self, stage: str) -> list[str]:
        """Sample ids of ``stage``'s dataset; the ``id`` entries of its batches point into this list."""
        return self.dataset(stage).names

    # -- loaders -----------------------------------------------------------------------
    def _loader(self, ds: SkeletonDataset, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        if len(ds) == 0:
            raise ValueError(f"{self.data_dir}: the training set is empty")
        if self.drop_last and len(ds) < self.batch_size:
            raise ValueError(
                f"{self.data_dir}: {len(ds)} training samples < batch_size {self.batch_size} with "
                "drop_last=True would give no training batch"
            )
        sampler = EpochSeededSampler(len(ds), seed=self.seed, shuffle=True)
        return self._loader(ds, self.batch_size, sampler=sampler, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), self.eval_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self.eval_batch_size, shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("predict"), self.eval_batch_size, shuffle=False, drop_last=False)
