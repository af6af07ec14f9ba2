"""LightningDataModule over a prepared UCF101 / HMDB51 / synthetic-UCF101 folder (two streams).

Batches (``graphfuse.tasks.base`` contract): ``{"rgb": (N, 3, T, H, W), "flow": (N, 2L, T, H, W),
"target": (N,), "id": (N,)}`` float32 / int64, with a view dimension ``(N, K, ...)`` for the
multi-view test protocols (``released``: K = 20, ``25x10``: K = 50 for T = 5); see
:mod:`graphfuse.data.video.dataset` for the layout and the normalisation.

Validation (``val_source='holdout'``, the default): whole **groups** of the training split are
held out (UCF101's ``gGG``: same actors and scene; HMDB51's source video), so no near-duplicate
of a validation clip is trained on. ``val_source='test'`` validates on the test split, as the
released code does (``opts.train.val`` = the test set); outputs then select on test.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import numpy as np

from graphfuse.data.base import PreparedDataModule
from graphfuse.data.video.dataset import NORMALIZATIONS, PROTOCOLS, VideoClipDataset, num_views
from graphfuse.data.video.flow import require_cv2
from graphfuse.io import read_json

__all__ = ["VideoDataModule", "group_holdout", "limit_worker_threads", "load_video_meta",
           "single_thread_opencv_before_fork"]

SUPPORTED_FORMAT_VERSIONS = frozenset({1})


def load_video_meta(data_dir: str) -> dict[str, Any]:
    """``data_dir/meta.json`` of a prepared video folder, checked at the top level.

    Raises:
        FileNotFoundError: no meta.json.
        ValueError (naming the file): not a video folder, an unsupported version, missing keys.
    """
    from pathlib import Path

    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prepared-data metadata not found")
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != "graphfuse-video":
        raise ValueError(f"{path}: not a prepared video folder (format {meta.get('format')!r} "
                         f"if a JSON object; expected 'graphfuse-video')" if isinstance(meta, dict) else
                         f"{path}: expected a JSON object")
    if meta.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ValueError(f"{path}: format_version {meta.get('format_version')!r} is not supported "
                         f"(this graphfuse reads {sorted(SUPPORTED_FORMAT_VERSIONS)}); prepare the data again")
    for key in ("num_class", "class_names", "splits", "flow", "split"):
        if key not in meta:
            raise ValueError(f"{path}: missing key {key!r}")
    if len(meta["class_names"]) != meta["num_class"]:
        raise ValueError(f"{path}: {len(meta['class_names'])} class names for num_class {meta['num_class']}")
    for part, info in meta["splits"].items():
        labels = np.asarray(info.get("labels", []), dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= meta["num_class"]):
            raise ValueError(f"{path}: split {part!r} has labels outside [0, {meta['num_class']})")
    return meta


def group_holdout(labels: np.ndarray, groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_rows, val_rows)``: a seeded ``fraction`` of the distinct groups goes to validation
    (at least one, at most all but one), every video of a held-out group with it.

    Depends only on ``(groups, fraction, seed)``; sorted, disjoint int64 arrays covering the split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    uniq, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    g = uniq.size
    if g < 2:
        raise ValueError("a hold-out split needs at least two groups of videos")
    k = int(np.clip(np.rint(fraction * g), 1, g - 1))
    held = np.random.default_rng(seed).permutation(g)[:k]
    is_val = np.isin(inv, held)
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def limit_worker_threads(worker_id: int) -> None:
    """``worker_init_fn`` of the video loaders: OpenCV decodes and resizes single-threaded in
    each worker process (``cv2.setNumThreads(1)``), so ``N`` workers do not each start a pool of
    one thread per core (``N x cores`` threads on ``cores`` cores). The parallelism is the
    workers'; PyTorch already sets ``torch.set_num_threads(1)`` in its workers. ``cv2`` is
    imported here, in the worker, not when this module is imported.

    Only safe in a forked worker when the parent's OpenCV thread pool is not running:
    ``cv2.setNumThreads`` in a child forked after the parent ran a parallel OpenCV call hangs
    for ever (OpenCV 5.1's pthreads pool: the child waits on the parent's threads' condition
    variable). :meth:`VideoDataModule._loader_options` therefore stops the parent's pool first
    (:func:`single_thread_opencv_before_fork`)."""
    require_cv2().setNumThreads(1)


def single_thread_opencv_before_fork() -> None:
    """In the training process, before its loader workers start: when ``cv2`` is already
    imported (synthetic data generated, a loader without workers used, TV-L1 run in process),
    set OpenCV to one thread, which stops its thread pool, so that :func:`limit_worker_threads`
    in the forked workers does not hang. With workers the training process decodes nothing
    itself, so nothing there gets slower. Not imported: nothing to do (and nothing imported)."""
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "setNumThreads"):
        cv2.setNumThreads(1)


class VideoDataModule(PreparedDataModule):
    """Two-stream clips of a folder made by ``graphfuse prepare ucf101|hmdb51|synthetic-ucf101``.

    Args:
        data_dir: the prepared folder.
        split: the official split the folder must hold (meta.json ``split``; checked).
        streams: inputs to read: ``("rgb", "flow")``, ``("rgb",)`` or ``("flow",)``.
        num_frames: samples per clip ``T`` (Feichtenhofer et al. 2016: 5).
        flow_stack: flow frames per sample ``L`` (10: 20 flow channels).
        stride: training stride range (5..15, ``temporalStrideRandom``).
        crop_size: network input side (224).
        augment: training crop, ``noCtr`` (the fusion code's) or ``crop``.
        test_protocol: ``released`` (50 samples as 10 clips x whole frame and flip, the
            released code's) or ``25x10`` (25 samples x 10 crops) or ``center`` (one clip).
        val_protocol: the validation loader's protocol (default ``center``: one clip per video).
        normalization: ``imagenet``, ``matconvnet`` or ``pixels`` (:mod:`graphfuse.data.video.dataset`).
        batch_size: training batch (the released fusion code: 96).
        eval_batch_size: videos per evaluation batch (default 1: a ``released`` item holds 20 views).
        num_workers, pin_memory, drop_last, seed: loader options (:class:`PreparedDataModule`);
            ``num_workers`` and ``pin_memory`` default to ``"auto"``: up to 8 workers per CUDA
            device and pinned memory on CUDA, 0 workers on the CPU
            (:func:`graphfuse.data.base.auto_loader_settings`). Each worker runs OpenCV
            single-threaded (:func:`limit_worker_threads`).
        val_fraction: fraction of the training groups held out for validation.
        val_seed: seed of the hold-out (fixed across runs so all seeds select on the same videos).
        val_source: ``holdout`` or ``test`` (the released protocol's validation on test).
        synthetic: when the folder is empty, generate and prepare synthetic UCF101 there.
    """

    data_kind = "prepared video data"
    prepare_command = ("graphfuse prepare ucf101 --root <dir with UCF-101/ and ucfTrainTestlist/> "
                       "--out {data_dir} (or hmdb51; or `graphfuse prepare synthetic-ucf101 --out {data_dir}`)")
    synthetic_kind = "synthetic UCF101-format videos"
    predict_key = "test"
    worker_init_fn = staticmethod(limit_worker_threads)

    def __init__(
        self,
        data_dir: str,
        split: int = 1,
        streams: tuple[str, ...] | list[str] = ("rgb", "flow"),
        num_frames: int = 5,
        flow_stack: int = 10,
        stride: tuple[int, int] | list[int] = (5, 15),
        crop_size: int = 224,
        augment: Literal["noCtr", "crop"] = "noCtr",
        test_protocol: Literal["released", "25x10", "center"] = "released",
        val_protocol: Literal["center", "released", "25x10"] = "center",
        normalization: Literal["imagenet", "matconvnet", "pixels"] = "imagenet",
        batch_size: int = 96,
        eval_batch_size: int | None = 1,
        num_workers: int | Literal["auto"] = "auto",
        val_fraction: float = 0.1,
        val_seed: int = 0,
        val_source: Literal["holdout", "test"] = "holdout",
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool | Literal["auto"] = "auto",
        synthetic: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
                         seed=seed, drop_last=drop_last, pin_memory=pin_memory, synthetic=synthetic)
        streams = tuple(streams)
        if not streams or any(s not in ("rgb", "flow") for s in streams) or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be a non-empty subset of ('rgb', 'flow'), got {streams!r}")
        for name, value in (("test_protocol", test_protocol), ("val_protocol", val_protocol)):
            if value not in PROTOCOLS or value == "train":
                raise ValueError(f"{name} must be 'released', '25x10' or 'center', got {value!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if augment not in ("noCtr", "crop"):
            raise ValueError(f"augment must be 'noCtr' or 'crop', got {augment!r}")
        if num_frames < 1 or flow_stack < 2 or flow_stack % 2 or crop_size < 8:
            raise ValueError(f"need num_frames >= 1, an even flow_stack >= 2 and crop_size >= 8; got "
                             f"{num_frames}, {flow_stack}, {crop_size}")
        stride = (int(stride[0]), int(stride[1]))
        if not 1 <= stride[0] <= stride[1]:
            raise ValueError(f"stride must be (low, high) with 1 <= low <= high, got {stride}")
        if val_source not in ("holdout", "test"):
            raise ValueError(f"val_source must be 'holdout' or 'test', got {val_source!r}")
        if val_source == "holdout" and not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.split = int(split)
        self.streams = streams
        self.num_frames = int(num_frames)
        self.flow_stack = int(flow_stack)
        self.stride = stride
        self.crop_size = int(crop_size)
        self.augment = augment
        self.test_protocol = test_protocol
        self.val_protocol = val_protocol
        self.normalization = normalization
        self.val_fraction = float(val_fraction)
        self.val_seed = int(val_seed)
        self.val_source = val_source

    # -- the family's part ------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        meta = load_video_meta(self.data_dir)
        if int(meta["split"]) != self.split:
            raise ValueError(f"{self.meta_path}: holds split {meta['split']}, the config asks for split {self.split}; "
                             f"prepare split {self.split} (`graphfuse prepare ... --split {self.split}`) or set "
                             f"data.split")
        return meta

    def generate_synthetic(self) -> None:
        from graphfuse.data.synthetic.ucf101 import prepare_synthetic_ucf101  # lazy: only when asked

        prepare_synthetic_ucf101(self.data_dir, progress=False)

    def synthetic_meta(self) -> dict[str, Any]:
        """What synthetic data would hold (its class count), without generating it."""
        from graphfuse.data.synthetic.ucf101 import class_names

        return {"num_class": len(class_names()), "synthetic": True}

    def holdout_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_rows, val_rows)`` of the training split (val empty with ``val_source='test'``)."""
        info = self.meta["splits"]["train"]
        n = len(info["videos"])
        if self.val_source == "test":
            return np.arange(n, dtype=np.int64), np.zeros(0, np.int64)
        return group_holdout(np.asarray(info["labels"]), list(info["groups"]), self.val_fraction, self.val_seed)

    def _dataset(self, split: str, protocol: str, rows: np.ndarray | None = None) -> VideoClipDataset:
        return VideoClipDataset(
            self.data_dir, self.meta, split, rows=rows, streams=self.streams, num_frames=self.num_frames,
            flow_stack=self.flow_stack, stride=self.stride, crop_size=self.crop_size, protocol=protocol,  # type: ignore[arg-type]
            augment=self.augment, normalization=self.normalization,  # type: ignore[arg-type]
            seed=self.seed)

    def build_dataset(self, key: str) -> VideoClipDataset:
        """``train`` (augmented clips of the kept training videos), ``val`` (held-out groups, or
        the test split with ``val_source='test'``), ``test`` / ``predict`` (the test split)."""
        if key == "train":
            return self._dataset("train", "train", self.holdout_indices()[0])
        if key == "val":
            if self.val_source == "holdout":
                return self._dataset("train", self.val_protocol, self.holdout_indices()[1])
            return self._dataset("test", self.val_protocol)
        return self._dataset("test", self.test_protocol)

    def dataset(self, stage: str) -> VideoClipDataset:
        return super().dataset(stage)  # type: ignore[return-value]

    def _loader_options(self) -> dict[str, Any]:
        """The shared options; with workers, OpenCV's pool in this process is stopped first
        (:func:`single_thread_opencv_before_fork`; the workers run it single-threaded)."""
        options = super()._loader_options()
        if options["num_workers"] > 0:
            single_thread_opencv_before_fork()
        return options

    # -- what the model and info need ---------------------------------------------------------------
    @property
    def input_shapes(self) -> dict[str, list[int]]:
        """Per-sample input shapes of a training batch: ``rgb (3, T, S, S)``, ``flow (2L, T, S, S)``."""
        shapes = {"rgb": [3, self.num_frames, self.crop_size, self.crop_size],
                  "flow": [2 * self.flow_stack, self.num_frames, self.crop_size, self.crop_size]}
        return {k: v for k, v in shapes.items() if k in self.streams}

    def inference_options(self) -> dict[str, Any]:
        """Recorded in checkpoints: streams, sampling, crop, normalisation, input shapes, class names."""
        meta = self.meta
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "dataset": meta.get("dataset"),
            "split": meta.get("split"),
            "streams": list(self.streams),
            "num_frames": self.num_frames,
            "flow_stack": self.flow_stack,
            "stride": list(self.stride),
            "crop_size": self.crop_size,
            "test_protocol": self.test_protocol,
            "test_views": num_views(self.test_protocol, self.num_frames),
            "normalization": self.normalization,
            "flow_format": {k: meta["flow"].get(k) for k in ("source", "bound", "quantisation", "params")},
            "jpeg_quality": meta.get("frames", {}).get("jpeg_quality"),
            "frame_size": meta.get("frames", {}).get("size"),
            "input_names": list(self.streams),
            "input_shapes": self.input_shapes,
            "class_names": list(meta["class_names"]),
        }
