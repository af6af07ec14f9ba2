"""LightningDataModule over a prepared multi-label folder (COCO, VOC 2007, synthetic COCO).

Splits (graphfuse's fair protocol): ``train`` = the prepared train split less a seeded hold-out
of ``val_fraction`` of it (:func:`multilabel_holdout`), used for model selection (``val``);
``test`` = COCO val / VOC test, touched only by ``test`` / ``predict``. ML-GCN selected its
best epoch on val2014 itself (brief A.4); with ``val_fraction=0`` there is no validation split
and model selection must use the last epoch.

``train_eval_dataloader()`` serves a FIXED subset of the training rows with the *test*
transform, for the train-mAP-in-eval-mode curve (brief A.7: the running train mAP of an
epoch is computed with moving, augmented, train-mode outputs and is not comparable with val).

Batches::

    {"image": (N, 3, S, S) float32 (ImageNet mean / std), "target": (N, C) int64 (1 / 0 / -1),
     "id": (N,) int64 (positions in the stage's dataset; split_names gives the files)}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import DataLoader

from graphfuse.data.base import PreparedDataModule, prepare_command_for
from graphfuse.data.multilabel.dataset import MultiLabelImageDataset
from graphfuse.data.multilabel.prepare import load_multilabel_meta
from graphfuse.data.multilabel.transforms import MLGCN_SCALES, ImageTransform, build_transform
from graphfuse.data.samplers import stratified_holdout

__all__ = ["SYNTHETIC_OPTIONS", "MultiLabelDataModule", "multilabel_holdout", "multilabel_prepare_command"]

#: The keys ``synthetic_options`` may set (keyword arguments of ``prepare_synthetic_coco``).
SYNTHETIC_OPTIONS = ("num_train", "num_val", "size", "seed", "min_positives")


def multilabel_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the rows of a ``(n, C)`` label matrix into ``(train, val)``, reproducibly and
    stratified by each image's rarest positive class.

    Each image is keyed by the class it holds (label 1) that is rarest in the whole matrix
    (images with no 1: key ``C``); every key group gives ``round(fraction * n_k)`` images
    (half to even) to val, at least 1 when ``n_k >= 2`` and at most ``n_k - 1``, so rare
    classes appear on both sides. Which images go is decided by one
    ``numpy.random.default_rng(seed)`` draw per image, so the split depends only on
    ``(labels, fraction, seed)``.

    Returns sorted, disjoint int64 arrays covering ``range(n)``; ``fraction == 0`` gives an
    empty val.
    """
    labels = np.asarray(labels)
    n, c = labels.shape
    if fraction == 0 or n == 0:
        return np.arange(n, dtype=np.int64), np.zeros(0, np.int64)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    pos = labels == 1
    counts = pos.sum(axis=0)
    rank = np.argsort(np.argsort(counts, kind="stable"), kind="stable")  # 0 = rarest class
    key = np.where(pos, rank[None, :], c).min(axis=1)  # rarest held class per image, c if none
    # the same rule and draw as the single-label hold-out, on the rarest-class key
    return stratified_holdout(key, fraction, seed)


def multilabel_prepare_command(data_dir: str) -> str:
    """The command that prepares ``data_dir`` (a ``{data_dir}`` template), from the words of its
    path: ``synthetic`` -> ``graphfuse prepare synthetic-coco``, ``voc`` -> ``voc2007``,
    otherwise ``coco``."""
    return prepare_command_for(data_dir, [
        (["synthetic"], "graphfuse prepare synthetic-coco --out {data_dir}"),
        (["voc", "voc2007", "pascal"], "graphfuse prepare voc2007 --root <dir holding VOCdevkit/VOC2007> --out {data_dir}"),
    ], "graphfuse prepare coco --root <COCO dir with annotations/ and train2014/> --out {data_dir}")


class MultiLabelDataModule(PreparedDataModule):
    """Loaders over a folder written by ``graphfuse prepare coco | voc2007 | synthetic-coco``.

    Args:
        data_dir: the prepared folder (holds ``meta.json``).
        image_size: side S of the square network input (ML-GCN: 448).
        batch_size: training batch size (ML-GCN's README: 32).
        eval_batch_size: val / test / train-eval batch size; None = ``batch_size``.
        num_workers: DataLoader worker processes (JPEG decoding is the bottleneck on a GPU);
            ``"auto"`` (default): up to 8 per CUDA device, 0 on the CPU
            (:func:`graphfuse.data.base.auto_loader_settings`).
        val_fraction: fraction of the train split held out for model selection (0: none;
            then select the last epoch).
        val_seed: seed of the hold-out (fixed across runs, so every seed and variant of a
            study selects on the same images) and of the train-eval subset.
        train_eval_subset: size of the fixed training subset evaluated with the test
            transform (:meth:`train_eval_dataloader`); 0 disables it.
        train_transform: ``'mlgcn'`` (ML-GCN's multi-scale crop + flip) or ``'resize'``
            (resize + flip).
        scales, max_distort, fix_crop, more_fix_crop: :class:`~graphfuse.data.multilabel.transforms.MultiScaleCrop`
            (released-code values by default).
        flip: random horizontal flip in training.
        seed: data-order and augmentation seed (a function of ``(seed, epoch)``).
        drop_last: drop the last incomplete training batch.
        pin_memory: DataLoader ``pin_memory``; ``"auto"`` (default): on CUDA only.
        synthetic: when ``meta.json`` is missing, generate the synthetic COCO-format data there
            (:func:`graphfuse.data.synthetic.coco.prepare_synthetic_coco`).
        synthetic_options: integer options of that generation (``num_train``, ``num_val``,
            ``size``, ``seed``, ``min_positives``); None = the generator's defaults (800 / 400
            images of 96 px, seed 0, every class with >= 8 positives per split).
    """

    data_kind = "prepared multi-label data"
    prepare_command = multilabel_prepare_command("")
    synthetic_kind = "synthetic COCO-format data"
    predict_key = "test"
    avoid_singleton_batches = True  # BatchNorm (ResNet, HGAT heads) cannot train on a batch of one

    def __init__(
        self,
        data_dir: str,
        image_size: int = 448,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int | Literal["auto"] = "auto",
        val_fraction: float = 0.1,
        val_seed: int = 0,
        train_eval_subset: int = 500,
        train_transform: Literal["mlgcn", "resize"] = "mlgcn",
        scales: Sequence[float] = MLGCN_SCALES,
        max_distort: int = 2,
        fix_crop: bool = True,
        more_fix_crop: bool = True,
        flip: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool | Literal["auto"] = "auto",
        synthetic: bool = False,
        synthetic_options: dict[str, int] | None = None,
    ) -> None:
        super().__init__(data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
                         seed=seed, drop_last=drop_last, pin_memory=pin_memory, synthetic=synthetic)
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if val_seed < 0 or train_eval_subset < 0:
            raise ValueError("val_seed and train_eval_subset must be >= 0")
        unknown = sorted(set(synthetic_options or {}) - set(SYNTHETIC_OPTIONS))
        if unknown:
            raise ValueError(f"synthetic_options: unknown key(s) {unknown}; valid: {list(SYNTHETIC_OPTIONS)}")
        if train_transform not in ("mlgcn", "resize"):
            raise ValueError(f"train_transform must be 'mlgcn' or 'resize', got {train_transform!r}")
        self.save_hyperparameters()
        self.image_size = int(image_size)
        self.val_fraction = float(val_fraction)
        self.val_seed = int(val_seed)
        self.train_eval_subset = int(train_eval_subset)
        self.train_transform_kind = train_transform
        self.crop_options = {"scales": tuple(float(s) for s in scales), "max_distort": int(max_distort),
                             "fix_crop": bool(fix_crop), "more_fix_crop": bool(more_fix_crop)}
        # Building the transforms here checks their options before any data is read.
        self.train_transform = build_transform(train_transform, self.image_size, flip=flip, **self.crop_options)
        self.test_transform = build_transform("test", self.image_size)
        self.prepare_command = multilabel_prepare_command(str(data_dir))
        self.synthetic_options = {k: int(v) for k, v in (synthetic_options or {}).items()}
        self._holdout: tuple[np.ndarray, np.ndarray] | None = None
        self._train_eval: MultiLabelImageDataset | None = None

    # -- the family's part of PreparedDataModule ----------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """``meta.json`` checked by :func:`graphfuse.data.multilabel.prepare.load_multilabel_meta`."""
        return load_multilabel_meta(self.data_dir)

    def generate_synthetic(self) -> None:
        """The synthetic COCO-format dataset (:func:`graphfuse.data.synthetic.coco.prepare_synthetic_coco`)
        with ``synthetic_options`` (the generator's defaults where not given)."""
        from graphfuse.data.synthetic.coco import prepare_synthetic_coco  # lazy: only when asked

        prepare_synthetic_coco(self.data_dir, **self.synthetic_options)

    def synthetic_meta(self) -> dict[str, Any]:
        """What ``meta.json`` of the data ``synthetic: true`` would generate says about classes,
        without generating it (for ``graphfuse info`` on a clean clone)."""
        from graphfuse.data.synthetic.coco import CLASSES  # lazy

        names = sorted(name for name, _, _ in CLASSES)
        return {"num_class": len(names), "class_names": names, "synthetic": True}

    def holdout_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_rows, val_rows)`` of the prepared train split (:func:`multilabel_holdout`)."""
        if self._holdout is None:
            labels = np.load(Path(self.data_dir) / "train_labels.npy", mmap_mode="r", allow_pickle=False)
            self._holdout = multilabel_holdout(np.asarray(labels), self.val_fraction, self.val_seed)
        return self._holdout

    def train_eval_rows(self) -> np.ndarray:
        """Rows of the prepared train split evaluated by :meth:`train_eval_dataloader`: a fixed
        draw (``val_seed``) of ``min(train_eval_subset, training rows)`` training rows, sorted."""
        train_rows, _ = self.holdout_indices()
        k = min(self.train_eval_subset, train_rows.size)
        rng = np.random.default_rng([self.val_seed, 1])
        return np.sort(rng.choice(train_rows, size=k, replace=False)).astype(np.int64)

    def build_dataset(self, key: str) -> MultiLabelImageDataset:
        """``train`` / ``val`` (rows of the train split), ``test`` (the test split)."""
        meta = self.meta
        if key in ("train", "val"):
            train_rows, val_rows = self.holdout_indices()
            if key == "train":
                return MultiLabelImageDataset(self.data_dir, "train", train_rows, self.train_transform, meta)
            return MultiLabelImageDataset(self.data_dir, "train", val_rows, self.test_transform, meta)
        return MultiLabelImageDataset(self.data_dir, "test", None, self.test_transform, meta)

    def dataset(self, stage: str) -> MultiLabelImageDataset:
        """The dataset behind ``stage``'s loader (``fit``/``train``, ``validate``/``val``, ``test``, ``predict``)."""
        return super().dataset(stage)  # type: ignore[return-value]

    def train_eval_dataset(self) -> MultiLabelImageDataset:
        """The fixed training subset with the test transform (:meth:`train_eval_rows`)."""
        if self._train_eval is None:
            _ = self.meta
            self._train_eval = MultiLabelImageDataset(self.data_dir, "train", self.train_eval_rows(),
                                                      self.test_transform, self.meta)
        return self._train_eval

    def train_eval_names(self) -> list[str]:
        """File names of :meth:`train_eval_dataset`; the ``id`` of its batches point into this list."""
        return self.train_eval_dataset().names

    # -- loaders -------------------------------------------------------------------------------------
    def val_dataloader(self) -> DataLoader | list:
        """Validation loader; an empty list (Lightning then skips validation) with ``val_fraction=0``."""
        if len(self.dataset("val")) == 0:
            return []
        return super().val_dataloader()

    def train_eval_dataloader(self) -> DataLoader | None:
        """The fixed training subset, test transform, in order (None when ``train_eval_subset=0``)."""
        ds = self.train_eval_dataset()
        if len(ds) == 0:
            return None
        return DataLoader(ds, batch_size=self.eval_batch_size, shuffle=False, drop_last=False,
                          **self._loader_options())

    # -- what models and tasks read ------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names in label-column order (``meta.json: class_names``)."""
        return list(self.meta["class_names"])

    @property
    def supercategories(self) -> list[str | None]:
        """Supercategory of each class (None for VOC)."""
        return list(self.meta["supercategories"])

    @property
    def class_order(self) -> str:
        """``'mlgcn'``, ``'coco'`` or ``'voc'``."""
        return str(self.meta["class_order"])

    def label_graph(self) -> dict[str, Any]:
        """The label-graph inputs stored in the folder: ``counts (C,)`` and ``cooccurrence (C, C)``
        int64 (training images; ML-GCN's ``nums`` / ``adj``), ``embeddings (C, D)`` float32 or
        None, and ``num_images`` (int: images of the prepared train split, the base of the
        counts; DeepMAR's positive rates are ``counts / num_images``)."""
        d = Path(self.data_dir)
        meta = self.meta
        counts = np.load(d / "label_counts.npy", allow_pickle=False)
        cooc = np.load(d / "label_cooccurrence.npy", allow_pickle=False)
        emb_name = meta.get("word_embeddings")
        emb = np.load(d / str(emb_name), allow_pickle=False) if emb_name else None
        c = self.num_class
        if counts.shape != (c,) or cooc.shape != (c, c) or (emb is not None and emb.shape[0] != c):
            raise ValueError(f"{d}: label graph arrays do not match num_class {c}")
        return {"counts": counts, "cooccurrence": cooc, "embeddings": emb,
                "num_images": int(meta["splits"]["train"])}

    def inference_options(self) -> dict[str, Any]:
        """What a model trained on this data needs at inference (recorded in checkpoints): the
        test transform, the input and its shape, the classes in column order."""
        meta = self.meta
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "dataset": meta.get("dataset"),
            "image_size": self.image_size,
            "transform": "resize to (S, S) ignoring aspect ratio (ML-GCN Warp), ImageNet mean/std",
            "input_names": ["image"],
            "input_shapes": {"image": [3, self.image_size, self.image_size]},
            "class_order": meta.get("class_order"),
            "class_names": list(meta["class_names"]),
        }

    def describe_transforms(self) -> dict[str, ImageTransform]:
        """The training and test transforms (for logging)."""
        return {"train": self.train_transform, "test": self.test_transform}
