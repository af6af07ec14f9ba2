"""LightningDataModule over prepared crossing-intention data (PIE, JAAD, synthetic PIE).

Batches are dicts (see :mod:`graphfuse.data.intention.dataset`)::

    {"pose": (N, C, T, 19) float32, "velocity": (N, 2, T) float32 (use_velocity),
     "image": (N, 3, H, W) float32 (use_image), "target": (N,) int64, "id": (N,) int64}

(the contract of :mod:`graphfuse.tasks.base`: named model inputs, ``target``, ``id``).
``id`` points into :meth:`IntentionDataModule.split_names` of the stage (sample ids,
written to a run's ``scores.npz``).

Where the reference loaders (PedGraph+ ``pie_dataloader23.py``, doing_project's copy) went
wrong, this module is deliberately different (brief §0.4 d-f, §3.6):

* every sample of a split is used, every epoch exactly once (they kept ``ped_ids[:1000]``);
* normalisation happens on a copy of read-only memory maps, so epochs see identical data
  (they divided the cached arrays in place, every epoch again);
* validation and test batches are never augmented (they ran the training image
  augmentations on val/test); ``jitter``, ``time_crop`` and ``balance`` act on training only.

Splits: the official ones written by ``prepare`` (PIE: train set01/02/04, val set05/06,
test set03; JAAD: ``split_ids/default``). ``val_source="test"`` validates on the test
split (selection on test; set by ``graphfuse fit --protocol official`` and labelled so).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
from torch.utils.data import BatchSampler, DataLoader

from graphfuse.data.checks import require_checked
from graphfuse.data.intention.dataset import IntentionDataset, collate_intention, load_intention_meta
from graphfuse.data.skeleton import EpochSeededSampler, item_seeds

__all__ = ["IntentionDataModule", "BalancedEpochSampler", "NoSingletonBatchSampler"]

_STAGE_ALIASES = {
    "fit": "train",
    "train": "train",
    "validate": "val",
    "val": "val",
    "validation": "val",
    "test": "test",
    "predict": "test",
}


class BalancedEpochSampler(EpochSeededSampler):
    """Class-balanced oversampling per epoch, seeded by ``(seed, epoch)``.

    Every class ``c`` with ``n_c`` samples is brought to ``max_c n_c`` draws: each of its
    samples ``floor(r_c)`` times (``r_c = max n / n_c``) plus ``round((r_c - floor r_c) n_c)``
    distinct samples drawn without replacement; then the whole list is permuted. Every sample
    appears at least once per epoch (nothing dropped), as PedGraph+'s ``balance`` option
    repeats minority samples ``max(n) / n_c`` times. Yields ``(index, item_seed)``; repeated
    copies of a sample get different seeds (seeds hash the position in the epoch).
    """

    def __init__(self, labels: np.ndarray, seed: int = 0) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        super().__init__(labels.size, seed=seed, shuffle=True)
        self.labels = labels
        classes, counts = np.unique(labels, return_counts=True)
        self._classes, self._counts = classes, counts
        top = int(counts.max()) if counts.size else 0
        self._length = int(len(classes) * top) if counts.size else 0

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        top = int(self._counts.max()) if self._counts.size else 0
        parts = []
        for c, n_c in zip(self._classes.tolist(), self._counts.tolist()):  # loop over classes (<= 3)
            members = np.flatnonzero(self.labels == c)
            reps, extra = divmod(top, n_c)
            parts.append(np.tile(members, reps))
            parts.append(rng.choice(members, size=extra, replace=False))
        order = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return rng.permutation(order).astype(np.int64)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        positions = np.arange(order.size, dtype=np.int64)
        seeds = item_seeds(self.seed, self.epoch, positions + self.n)  # distinct per copy
        return iter(list(zip(order.tolist(), seeds.tolist())))

    def __len__(self) -> int:
        return self._length


class NoSingletonBatchSampler(BatchSampler):
    """``BatchSampler`` that never yields a batch of one sample (``drop_last=False``).

    BatchNorm cannot train on a batch of one; when ``len(sampler) % batch_size == 1`` the
    last sample joins the previous batch instead of being dropped, so every sample of the
    epoch is still used exactly once. Used in single-process training only: under DDP
    Lightning would swap its inner sampler for a plain ``DistributedSampler`` (losing the
    seeded order), so the datamodule then passes the sampler directly (a rank may then get a
    last batch of one: use ``drop_last`` or another batch size if the model has BatchNorm1d).
    """

    def __iter__(self) -> Iterator[list[Any]]:
        batch: list[Any] = []
        pending: list[Any] | None = None
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                if pending is not None:
                    yield pending
                pending, batch = batch, []
        if self.drop_last:
            if pending is not None:
                yield pending
            return
        if len(batch) == 1 and pending is not None:
            yield pending + batch
        else:
            if pending is not None:
                yield pending
            if batch:
                yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


class IntentionDataModule(L.LightningDataModule):
    """Loaders for a prepared crossing-intention directory.

    Args:
        data_dir: directory written by ``graphfuse prepare pie|jaad|synthetic-pie`` (holds
            ``meta.json``; must have been prepared with ``--poses``).
        batch_size: training batch size (doing_project: 16; PedGraph+'s script default 2).
        eval_batch_size: val/test/predict batch size; None = ``batch_size``.
        num_workers: DataLoader worker processes.
        labels: ``"three"`` (no-cross / cross / irrelevant, PedGraph+) or ``"binary"``.
        use_velocity: provide the ego ``velocity`` input.
        use_image: provide the ``image`` crop (needs crops in the prepared data).
        use_depth: keep the depth channel (C = 4); None = automatic from ``meta.json``
            (``pose.has_depth``), False = 2D (C = 3: x, y, score; PedGraph+'s ``-h2d``).
        val_source: ``"val"`` (the official validation split) or ``"test"`` (validate on
            the test split: selection on test, only with ``--protocol official``).
        jitter: PedGraph+'s integer keypoint jitter on training items (x + U{0..8} px,
            y + U{0..5} px, depth + U{0..1}).
        time_crop: PedGraph+'s "T" flag on training batches: with probability 0.5 keep only
            the last k in [2, 20] pose frames of the batch.
        balance: class-balanced oversampling of the training split (:class:`BalancedEpochSampler`).
        seed: data-order and augmentation seed (order and draws are a function of
            ``(seed, epoch)``; resumed runs replay the same batches).
        drop_last: drop the last incomplete training batch (default False: every training
            sample is used each epoch; a trailing batch of one joins the previous batch).
        pin_memory: DataLoader ``pin_memory``.
        synthetic: when ``data_dir/meta.json`` is missing, generate synthetic PIE-format data
            there (``graphfuse.data.synthetic.pie.prepare_synthetic_pie``) instead of raising.
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: Literal["three", "binary"] = "three",
        use_velocity: bool = True,
        use_image: bool = False,
        use_depth: bool | None = None,
        val_source: Literal["val", "test"] = "val",
        jitter: bool = False,
        time_crop: bool = False,
        balance: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
        synthetic: bool = False,
    ) -> None:
        super().__init__()
        if labels not in ("three", "binary"):
            raise ValueError(f"labels: expected 'three' or 'binary', got {labels!r}")
        if val_source not in ("val", "test"):
            raise ValueError(f"val_source: expected 'val' or 'test', got {val_source!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.save_hyperparameters()
        self.data_dir = str(data_dir)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else int(batch_size)
        self.num_workers = int(num_workers)
        self.labels = labels
        self.use_velocity = bool(use_velocity)
        self.use_image = bool(use_image)
        self.use_depth = use_depth
        self.val_source = val_source
        self.jitter = bool(jitter)
        self.time_crop = bool(time_crop)
        self.balance = bool(balance)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.pin_memory = bool(pin_memory)
        self.synthetic = bool(synthetic)
        self._meta: dict[str, Any] | None = None
        self._datasets: dict[str, IntentionDataset] = {}

    # -- metadata ---------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return Path(self.data_dir) / "meta.json"

    def _missing_error(self) -> FileNotFoundError:
        return FileNotFoundError(
            f"no prepared intention data in {self.data_dir!r} ({self.meta_path} is missing). Prepare it with "
            f"`graphfuse prepare pie --root <PIE dir> --out {self.data_dir} --poses <pose dir>` (or jaad), "
            "or set `synthetic: true` to generate synthetic PIE data there."
        )

    @property
    def meta(self) -> dict[str, Any]:
        """``meta.json`` of ``data_dir`` (generated first when ``synthetic``)."""
        if self._meta is None:
            if not self.meta_path.is_file():
                if not self.synthetic:
                    raise self._missing_error()
                self.prepare_data()  # properties may be read (argument links) before prepare_data
            meta = load_intention_meta(self.data_dir)
            require_checked(meta, self.data_dir)  # values finite and plausible (graphfuse check)
            self._meta = meta
        return self._meta

    @property
    def num_class(self) -> int:
        """Classes of the training labels: 3 (``labels="three"``) or 2."""
        return 3 if self.labels == "three" else 2

    @property
    def has_depth(self) -> bool:
        """Whether the prepared poses carry depth (``meta.json: pose.has_depth``)."""
        pose = self.meta.get("pose")
        return bool(pose.get("has_depth", False)) if isinstance(pose, dict) else False

    @property
    def in_channels(self) -> int:
        """Pose channels C of the batches: 4 with depth, else 3."""
        use_depth = self.has_depth if self.use_depth is None else bool(self.use_depth)
        return 4 if use_depth else 3

    @property
    def num_frames(self) -> int:
        """Observed frames T of the prepared samples."""
        return self.dataset("train").num_frames

    def train_class_counts(self) -> np.ndarray:
        """``(num_class,)`` training samples per label (for ``class_weights="auto"``)."""
        return self.dataset("train").class_counts()

    # -- Lightning hooks -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Check that the prepared data exists; generate synthetic PIE data when asked to."""
        if self.meta_path.is_file():
            return
        if not self.synthetic:
            raise self._missing_error()
        from graphfuse.data.synthetic.pie import prepare_synthetic_pie  # lazy: only when asked

        prepare_synthetic_pie(self.data_dir)
        if not self.meta_path.is_file():
            raise FileNotFoundError(f"prepare_synthetic_pie({self.data_dir!r}) wrote no {self.meta_path}")

    def _build(self, key: str) -> IntentionDataset:
        if key in self._datasets:
            return self._datasets[key]
        _ = self.meta  # generates synthetic data when asked, else a clear error
        split = {"train": "train", "val": self.val_source, "test": "test"}[key]
        train = key == "train"
        ds = IntentionDataset(
            self.data_dir,
            split,
            labels=self.labels,
            use_velocity=self.use_velocity,
            use_image=self.use_image,
            use_depth=self.use_depth,
            jitter=self.jitter and train,  # no augmentation at validation or test
            time_crop=self.time_crop and train,
        )
        self._datasets[key] = ds
        return ds

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (``fit``, ``validate``, ``test``, ``predict``; None = all)."""
        keys = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
            None: ("train", "val", "test"),
        }
        if stage not in keys:
            raise ValueError(f"unknown stage {stage!r}")
        for key in keys[stage]:
            self._build(key)

    def dataset(self, stage: str) -> IntentionDataset:
        """The dataset behind ``stage``'s loader (``fit``/``train``, ``validate``/``val``, ``test``, ``predict``)."""
        if stage not in _STAGE_ALIASES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_STAGE_ALIASES)}")
        return self._build(_STAGE_ALIASES[stage])

    def split_names(self, stage: str) -> list[str]:
        """Sample ids of ``stage``'s dataset; the ``id`` entries of its batches point into this list."""
        return self.dataset(stage).names

    # -- loaders ---------------------------------------------------------------------------------------
    def train_sampler(self) -> EpochSeededSampler:
        """The training sampler (seeded; class-balanced when ``balance``)."""
        ds = self.dataset("train")
        if self.balance:
            return BalancedEpochSampler(ds.labels, seed=self.seed)
        return EpochSeededSampler(len(ds), seed=self.seed, shuffle=True)

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        if len(ds) == 0:
            raise ValueError(f"{self.data_dir}: the training split is empty")
        if self.drop_last and len(ds) < self.batch_size:
            raise ValueError(
                f"{self.data_dir}: {len(ds)} training samples < batch_size {self.batch_size} with drop_last=True"
            )
        common: dict[str, Any] = {
            "collate_fn": collate_intention,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
        }
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            # Under DDP Lightning wraps a plain sampler (DistributedSamplerWrapper keeps our
            # order and seeds) but would replace a custom batch sampler's; so the standard path.
            return DataLoader(
                ds,
                batch_size=self.batch_size,
                sampler=self.train_sampler(),
                drop_last=self.drop_last,
                **common,
            )
        batches = NoSingletonBatchSampler(self.train_sampler(), self.batch_size, self.drop_last)
        return DataLoader(ds, batch_sampler=batches, **common)

    def _eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(
            self.dataset(stage),
            batch_size=self.eval_batch_size,
            shuffle=False,
            drop_last=False,
            collate_fn=collate_intention,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")
