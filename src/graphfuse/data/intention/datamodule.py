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

from typing import Any, Literal

import numpy as np

from graphfuse.data.base import PreparedDataModule, path_words
from graphfuse.data.intention.dataset import IntentionDataset, collate_intention, load_intention_meta
from graphfuse.data.samplers import BalancedEpochSampler, EpochSeededSampler, NoSingletonBatchSampler

# The samplers live in graphfuse.data.samplers; re-exported here where they were first defined.
__all__ = ["IntentionDataModule", "BalancedEpochSampler", "NoSingletonBatchSampler"]


def intention_prepare_command(data_dir: str, *, use_image: bool = False) -> str:
    """The ``graphfuse prepare`` command (a ``{data_dir}`` template) that writes what a config
    reading ``data_dir`` needs: the dataset named by the folder's path (a path component holding
    the word ``pie`` or ``jaad``, e.g. ``data/jaad-all-obs32``; ``synthetic-pie`` for
    ``synthetic`` + ``pie``; ``pie|jaad`` when neither or both), and ``--images`` when the
    model uses the image crops."""
    words = path_words(data_dir)
    found = [name for name in ("pie", "jaad") if name in words]
    if found == ["pie"] and "synthetic" in words:
        return "graphfuse prepare synthetic-pie --out {data_dir}"
    if len(found) == 1:
        dataset = found[0]
        root = f"<{dataset.upper()} dir>"
    else:
        dataset, root = "pie|jaad", "<PIE or JAAD dir>"
    images = " --images <extracted frames>" if use_image else ""
    return f"graphfuse prepare {dataset} --root {root} --out {{data_dir}} --poses <pose dir>{images}"


class IntentionDataModule(PreparedDataModule):
    """Loaders for a prepared crossing-intention directory.

    Args:
        data_dir: directory written by ``graphfuse prepare pie|jaad|synthetic-pie`` (holds
            ``meta.json``; must have been prepared with ``--poses``).
        batch_size: training batch size (doing_project: 16; PedGraph+'s script default 2).
        eval_batch_size: val/test/predict batch size; None = ``batch_size``.
        num_workers: DataLoader worker processes; ``"auto"`` (default): up to 8 per CUDA device,
            0 on the CPU (:func:`graphfuse.data.base.auto_loader_settings`).
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
        pin_memory: DataLoader ``pin_memory``; ``"auto"`` (default): on CUDA only.
        synthetic: when ``data_dir/meta.json`` is missing, generate synthetic PIE-format data
            there (``graphfuse.data.synthetic.pie.prepare_synthetic_pie``) instead of raising.
    """

    data_kind = "prepared intention data"
    prepare_command = "graphfuse prepare pie|jaad --root <PIE or JAAD dir> --out {data_dir} --poses <pose dir>"
    synthetic_kind = "synthetic PIE data"
    predict_key = "test"  # predict runs over the test split
    avoid_singleton_batches = True  # PedGraph's BatchNorm1d cannot train on a batch of one
    collate_fn = staticmethod(collate_intention)

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int | Literal["auto"] = "auto",
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
        pin_memory: bool | Literal["auto"] = "auto",
        synthetic: bool = False,
    ) -> None:
        if labels not in ("three", "binary"):
            raise ValueError(f"labels: expected 'three' or 'binary', got {labels!r}")
        if val_source not in ("val", "test"):
            raise ValueError(f"val_source: expected 'val' or 'test', got {val_source!r}")
        super().__init__(
            data_dir,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            drop_last=drop_last,
            pin_memory=pin_memory,
            synthetic=synthetic,
        )
        self.save_hyperparameters()
        self.labels = labels
        self.use_velocity = bool(use_velocity)
        self.use_image = bool(use_image)
        self.use_depth = use_depth
        self.val_source = val_source
        self.jitter = bool(jitter)
        self.time_crop = bool(time_crop)
        self.balance = bool(balance)
        # The missing-data error names the prepare command of this dataset (data/base.py).
        self.prepare_command = intention_prepare_command(data_dir, use_image=self.use_image)

    # -- the family's part of PreparedDataModule -----------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """``meta.json`` checked by :func:`graphfuse.data.intention.dataset.load_intention_meta`."""
        return load_intention_meta(self.data_dir)

    def generate_synthetic(self) -> None:
        """Synthetic PIE-format data (:func:`graphfuse.data.synthetic.pie.prepare_synthetic_pie`)."""
        from graphfuse.data.synthetic.pie import prepare_synthetic_pie  # lazy: only when asked

        prepare_synthetic_pie(self.data_dir)

    @property
    def num_class(self) -> int:
        """Classes of the training labels: 3 (``labels="three"``) or 2."""
        return 3 if self.labels == "three" else 2

    def inference_options(self) -> dict[str, Any]:
        """What a model trained on this data needs at inference (recorded in every checkpoint's
        ``graphfuse`` block, :mod:`graphfuse.checkpoints`): the observation length, the pose
        channels and joint layout (COCO-19 graph), the inputs with their per-sample shapes,
        the label set and its ``class_names`` (index = label), and ``meta.json``'s pose and
        sequence settings as prepared."""
        meta = self.meta
        frames = self.num_frames
        shapes: dict[str, Any] = {"pose": [self.in_channels, frames, 19]}
        names = ["pose"]
        if self.use_velocity:
            names.append("velocity")
        if self.use_image:
            names.append("image")
        class_names = (["not crossing", "crossing", "irrelevant"] if self.labels == "three"
                       else ["not crossing", "crossing"])
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "dataset": meta.get("dataset"),
            "labels": self.labels,
            "obs_length": frames,
            "joint_layout": "coco19",
            "in_channels": self.in_channels,
            "use_velocity": self.use_velocity,
            "use_image": self.use_image,
            "input_names": names,
            "input_shapes": shapes,
            "pose": meta.get("pose") if isinstance(meta.get("pose"), dict) else None,
            "class_names": class_names,
        }

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

    def build_dataset(self, key: str) -> IntentionDataset:
        """``train``, ``val`` (the official validation split, or test with ``val_source="test"``)
        or ``test`` (also behind ``predict``); augmentation on ``train`` only."""
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
        return ds

    def dataset(self, stage: str) -> IntentionDataset:
        """The dataset behind ``stage``'s loader (``fit``/``train``, ``validate``/``val``, ``test``, ``predict``)."""
        return super().dataset(stage)  # type: ignore[return-value]

    # -- loaders ---------------------------------------------------------------------------------------
    def train_sampler(self) -> EpochSeededSampler:
        """The training sampler (seeded; class-balanced when ``balance``)."""
        ds = self.dataset("train")
        if self.balance:
            return BalancedEpochSampler(ds.labels, seed=self.seed)
        return EpochSeededSampler(len(ds), seed=self.seed, shuffle=True)
