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

from typing import Any, Literal

import numpy as np

from graphfuse.data.base import PreparedDataModule
from graphfuse.data.samplers import stratified_holdout
from graphfuse.data.ntu.dataset import SkeletonDataset, load_meta, resolve_file
from graphfuse.data.ntu.transforms import Compose, FrameSubsample, UniformSample

__all__ = ["SkeletonDataModule", "stratified_holdout"]


class SkeletonDataModule(PreparedDataModule):
    """Loaders for a prepared skeleton dataset: dict batches ``{"x", "target", "id"}`` (or one
    entry per stream name with ``streams``).

    ``x: (B, C, T, V, M)`` float32 (the model input), ``target: (B,)`` int64 labels,
    ``id: (B,)`` int64 positions in :meth:`dataset` of the stage (map them to sample ids
    with :meth:`split_names`); the contract of :mod:`graphfuse.tasks.base`.

    Args:
        data_dir: directory prepared by ``graphfuse prepare`` (holds ``meta.json``).
        stream: input stream; bones and motion are derived on the fly with the formulas of
            the official Shift-GCN ``gen_bone_data.py`` / ``gen_motion_data.py``.
        batch_size: training batch size (Shift-GCN: 64).
        eval_batch_size: batch size of val/test/predict loaders; None = ``batch_size``.
        num_workers: DataLoader worker processes; ``"auto"`` (default): up to 8 per CUDA device,
            0 on the CPU (:func:`graphfuse.data.base.auto_loader_settings`).
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
        pin_memory: DataLoader ``pin_memory``; ``"auto"`` (default): on CUDA only.
        synthetic: when ``data_dir/meta.json`` is missing, generate a synthetic NTU-format
            dataset there (``graphfuse.data.synthetic.ntu.prepare_synthetic_ntu``) instead of
            raising.
        streams: several streams per batch, e.g. ``[joint, bone]`` for a two-stream network
            (:class:`graphfuse.models.two_stream_skeleton.SkeletonTwoStream`, whose
            ``input_names`` are the stream names): batches are ``{"joint": (B, C, T, V, M),
            "bone": ..., "target", "id"}``, each stream derived on the fly as ``stream`` would
            be, all sampled at the same frames (:class:`SkeletonDataset`). ``stream`` is then
            unused. None (default): one stream under ``"x"``.
    """

    prepare_command = "graphfuse prepare ntu --root <dir of .skeleton files> --out {data_dir}"

    def __init__(
        self,
        data_dir: str,
        stream: Literal["joint", "bone", "joint_motion", "bone_motion"] = "joint",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | Literal["auto"] = "auto",
        clip_len: int | None = None,
        frame_stride: int = 1,
        val_fraction: float = 0.05,
        val_seed: int = 0,
        val_source: Literal["holdout", "test"] = "holdout",
        seed: int = 0,
        drop_last: bool = True,
        pin_memory: bool | Literal["auto"] = "auto",
        synthetic: bool = False,
        streams: list[str] | None = None,
    ) -> None:
        if stream not in ("joint", "bone", "joint_motion", "bone_motion"):
            raise ValueError(f"stream: unknown value {stream!r}")
        if streams is not None:
            bad = [x for x in streams if x not in ("joint", "bone", "joint_motion", "bone_motion")]
            if bad or not streams or len(set(streams)) != len(streams):
                raise ValueError(
                    "streams: a non-empty list of distinct streams among joint, bone, joint_motion, "
                    f"bone_motion (or null for the single `stream`), got {streams!r}"
                )
        if val_source not in ("holdout", "test"):
            raise ValueError(f"val_source: expected 'holdout' or 'test', got {val_source!r}")
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
        if clip_len is not None and clip_len < 1:
            raise ValueError(f"clip_len must be >= 1 or None, got {clip_len}")
        if isinstance(frame_stride, bool) or not isinstance(frame_stride, int) or frame_stride < 1:
            raise ValueError(f"frame_stride must be an integer >= 1, got {frame_stride!r}")
        if val_source == "holdout" and not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) with val_source='holdout', got {val_fraction}")
        if val_seed < 0:
            raise ValueError(f"val_seed must be >= 0, got {val_seed}")
        self.save_hyperparameters()
        self.stream = stream
        self.streams: list[str] | None = list(streams) if streams is not None else None
        self.clip_len = clip_len
        self.frame_stride = int(frame_stride)
        self.val_fraction = float(val_fraction)
        self.val_seed = int(val_seed)
        self.val_source = val_source

    # -- the family's part of PreparedDataModule ------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """``meta.json`` checked by :func:`graphfuse.data.ntu.dataset.load_meta`."""
        return load_meta(self.data_dir)

    def generate_synthetic(self) -> None:
        """A synthetic NTU-format dataset (:func:`graphfuse.data.synthetic.ntu.prepare_synthetic_ntu`)."""
        from graphfuse.data.synthetic.ntu import prepare_synthetic_ntu  # lazy: only when asked

        prepare_synthetic_ntu(self.data_dir)

    def synthetic_meta(self) -> dict[str, Any]:
        """What ``meta.json`` says about the synthetic data ``synthetic: true`` would generate
        (its class count), without generating it: for ``graphfuse info`` on a clean clone."""
        from graphfuse.data.synthetic.ntu import ACTIONS  # lazy: only when asked

        return {"num_class": len(ACTIONS), "synthetic": True}

    def inference_options(self) -> dict[str, Any]:
        """What a model trained on this data needs at inference (recorded in every checkpoint's
        ``graphfuse`` block, :mod:`graphfuse.checkpoints`): the stream, the frame sampling, the
        joint layout, the normalisation applied at preparation, the input ``x`` and its shape
        ``(C, T, V, M)`` (``T`` None: the clip length varies), and the NTU action names of the
        labels (``class_names``; None for synthetic data). With ``streams``: ``stream`` is None,
        ``streams`` lists them and they are the input names."""
        meta = self.meta
        num_class = int(meta["num_class"])
        benchmark = str(meta.get("benchmark", ""))
        class_names = None
        if meta.get("dataset") == "ntu" and not benchmark.startswith("synthetic") and num_class <= 120:
            from importlib import resources

            text = resources.files("graphfuse.data").joinpath("resources", "ntu120_classes.txt").read_text("utf-8")
            names = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
            class_names = names[:num_class]  # label k = action A<k+1>
        frames = self.clip_len if self.clip_len else -(-int(meta.get("max_frame", 300)) // self.frame_stride)
        names = self.streams if self.streams is not None else ["x"]
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "dataset": meta.get("dataset"),
            "benchmark": benchmark or None,
            "stream": self.stream if self.streams is None else None,
            "streams": list(self.streams) if self.streams is not None else None,
            "clip_len": self.clip_len,
            "frame_stride": self.frame_stride,
            "sampling": "uniform (test mode)" if self.clip_len else "full padded sequence",
            "normalisation": "Shift-GCN pre_normalization at preparation (graphfuse.data.ntu.normalize)",
            "joint_layout": "ntu25",
            "layout": meta.get("layout", "N C T V M"),
            "input_names": list(names),
            "input_shapes": {k: [3, frames, int(meta["num_joint"]), int(meta["num_person"])] for k in names},
            "class_names": class_names,
        }

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

    def build_dataset(self, key: str) -> SkeletonDataset:
        """``train`` / ``val`` (the hold-out rows of the train split, or the test split with
        ``val_source='test'``), ``test`` and ``predict`` (the test split, unaugmented)."""
        if key == "train" or (key == "val" and self.val_source == "holdout"):
            train_rows, val_rows = self.holdout_indices()
            if key == "train":
                tf = self._transform(test_mode=False)
                ds = SkeletonDataset(
                    self.data_dir, "train", self.stream, indices=train_rows, transform=tf, streams=self.streams
                )
            else:
                ds = SkeletonDataset(
                    self.data_dir, "train", self.stream, indices=val_rows, transform=self._eval_transform(),
                    streams=self.streams,
                )
        else:  # val on test (official protocol), test, predict
            ds = SkeletonDataset(
                self.data_dir, "test", self.stream, transform=self._eval_transform(), streams=self.streams
            )
        return ds

    def dataset(self, stage: str) -> SkeletonDataset:
        """The dataset behind ``stage``'s loader.

        ``stage``: ``fit``/``train``, ``validate``/``val``, ``test`` or ``predict``.
        """
        return super().dataset(stage)  # type: ignore[return-value]
