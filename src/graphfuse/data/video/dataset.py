"""Two-stream clips read from a prepared video folder (JPEG frames + quantised flow JPEGs).

One item is one video. What it holds depends on ``protocol`` (frame choice:
:mod:`graphfuse.data.video.sampling`):

* ``train``: one clip, ``T`` samples at a random stride, the ``'noCtr'`` crop (or ``'crop'``:
  a plain random square) resized to ``crop_size``, flipped with probability 1/2;
* ``center``: one clip, ``T`` samples at stride 10 centred in the video, centre crop (validation);
* ``released``: the released test protocol: 10 clips of ``T = 5`` from 50 samples, each on the
  whole frame and its flip: ``K = 20`` views;
* ``25x10``: 25 uniform samples as ``25 / T`` clips, each in 10 crops: ``K = 10 * 25 / T`` views.

Batch entries (graphfuse's contract, :mod:`graphfuse.tasks.base`):

* ``rgb``: float32 ``(3, T, H, W)``, or ``(K, 3, T, H, W)`` for the multi-view protocols;
* ``flow``: float32 ``(2L, T, H, W)`` (or ``(K, 2L, T, H, W)``): channel ``2k`` is ``u`` and
  ``2k + 1`` is ``v`` of the ``k``-th flow frame of the sample's stack (the released
  interleaving ``u, v, u, v, ...``);
* ``target``: int64 label; ``id``: int64 position of the video in this dataset.

A network given a ``(N, K, ...)`` batch evaluates the ``N K`` views and averages its scores
over ``K`` per video (the released code averages the prediction layers' outputs).

Normalisation (``normalization``):

* ``imagenet`` (default): RGB ``(x / 255 - mean) / std`` with the ImageNet mean and std of
  torchvision's weights; flow ``(q - 128) / (255 * 0.226)``: the released code feeds
  ``q - 128`` next to RGB on the 0..255 scale (``averageImage = 128``), and this keeps that
  ratio to the RGB input (0.226 = the mean ImageNet std);
* ``matconvnet``: the released values: RGB ``x - 255 mean``, flow ``q - 128``;
* ``pixels``: RGB as ``imagenet``, flow dequantised to pixels/frame (``q * 40 / 255 - 20``).

A horizontal flip maps ``q_u -> 255 - q_u`` before normalisation (the released ``-imt + 255``),
which negates the dequantised ``u`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from graphfuse.data.samplers import unpack_item
from graphfuse.data.video import sampling as S
from graphfuse.data.video.flow import FLOW_BOUND, require_cv2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "NORMALIZATIONS", "PROTOCOLS", "VideoClipDataset", "num_views"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
PROTOCOLS = ("train", "center", "released", "25x10")
NORMALIZATIONS = ("imagenet", "matconvnet", "pixels")
Protocol = Literal["train", "center", "released", "25x10"]

#: Released test protocol: samples, stride, and frames per clip come from ``cnn_ucf101_fusion.m``.
RELEASED_SAMPLES, RELEASED_STRIDE = 50, 15
UNIFORM_SAMPLES = 25
CENTER_STRIDE = 10  # the median of the training strides 5..15
_CV_MAX_CHANNELS = 512


def num_views(protocol: str, num_frames: int) -> int:
    """Views per video ``K`` of an evaluation protocol (1 for ``train`` / ``center``)."""
    if protocol in ("train", "center"):
        return 1
    if protocol == "released":
        return 2 * (RELEASED_SAMPLES // num_frames)
    if protocol == "25x10":
        return 10 * (UNIFORM_SAMPLES // num_frames)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def _resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(h, w, C)`` uint8 -> ``(height, width, C)`` bicubic, C in chunks OpenCV accepts."""
    if arr.shape[:2] == (height, width):
        return arr
    cv2 = require_cv2()
    parts = [cv2.resize(np.ascontiguousarray(arr[..., i:i + _CV_MAX_CHANNELS]), (width, height),
                        interpolation=cv2.INTER_CUBIC).reshape(height, width, -1)
             for i in range(0, arr.shape[-1], _CV_MAX_CHANNELS)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


class VideoClipDataset(Dataset):
    """One split of a prepared video folder (see the module docstring).

    Args:
        data_dir: the prepared folder.
        meta: its ``meta.json`` (read and checked by the datamodule).
        split: ``train`` or ``test`` (a key of ``meta["splits"]``).
        rows: positions of the split's videos to expose (a hold-out part); default all.
        streams: which of ``rgb``, ``flow`` to read.
        num_frames: samples per clip ``T``.
        flow_stack: flow frames per sample ``L``.
        stride: training stride range ``(low, high)``.
        crop_size: side of the network input (train / center / 25x10).
        protocol: ``train``, ``center``, ``released`` or ``25x10``.
        augment: training crop: ``noCtr`` (the fusion code's) or ``crop`` (a random square).
        normalization: ``imagenet``, ``matconvnet`` or ``pixels`` (module docstring).
        dense_size: ``(H, W)`` window of the ``released`` protocol: the centre window of this
            size of every frame (default: the smallest frame of the split, so views stack).
        seed: seeds the ``released`` protocol's window draw per video (deterministic tests).

    Raises (construction): ValueError naming meta.json for inconsistent lists.
    Raises (items): FileNotFoundError / ValueError naming the JPEG that is missing or unreadable.
    """

    def __init__(
        self,
        data_dir: str | Path,
        meta: dict[str, Any],
        split: str,
        rows: Sequence[int] | np.ndarray | None = None,
        streams: Sequence[str] = ("rgb", "flow"),
        num_frames: int = 5,
        flow_stack: int = 10,
        stride: tuple[int, int] = (5, 15),
        crop_size: int = 224,
        protocol: Protocol = "train",
        augment: Literal["noCtr", "crop"] = "noCtr",
        normalization: Literal["imagenet", "matconvnet", "pixels"] = "imagenet",
        dense_size: tuple[int, int] | None = None,
        seed: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        where = self.data_dir / "meta.json"
        if split not in meta["splits"]:
            raise ValueError(f"{where}: no split {split!r}; available: {sorted(meta['splits'])}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if augment not in ("noCtr", "crop"):
            raise ValueError(f"augment must be 'noCtr' or 'crop', got {augment!r}")
        streams = tuple(streams)
        if not streams or any(s not in ("rgb", "flow") for s in streams) or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be a non-empty subset of ('rgb', 'flow'), got {streams!r}")
        if "flow" in streams and meta["flow"]["source"] == "none":
            raise ValueError(f"{where}: prepared without flow (--flow none); streams {streams!r} need it")
        if protocol in ("released", "25x10"):
            total = RELEASED_SAMPLES if protocol == "released" else UNIFORM_SAMPLES
            if total % num_frames:
                raise ValueError(f"protocol {protocol!r} takes {total} samples, not a multiple of num_frames={num_frames}")
        info = meta["splits"][split]
        n = len(info["videos"])
        for key in ("labels", "num_frames", "length", "width", "height"):
            if len(info[key]) != n:
                raise ValueError(f"{where}: splits.{split}.{key} has {len(info[key])} entries for {n} videos")
        self.split = split
        self.streams = streams
        self.num_frames = int(num_frames)
        self.flow_stack = int(flow_stack)
        self.stride = (int(stride[0]), int(stride[1]))
        self.crop_size = int(crop_size)
        self.protocol = protocol
        self.augment = augment
        self.normalization = normalization
        self.seed = int(seed)
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= n):
            raise ValueError(f"rows must lie in [0, {n}) for split {split!r}")
        self._videos = [info["videos"][i] for i in self.rows.tolist()]
        self._labels = np.asarray(info["labels"], dtype=np.int64)[self.rows]
        self._n_rgb = np.asarray(info["num_frames"], dtype=np.int64)[self.rows]
        self._length = np.asarray(info["length"], dtype=np.int64)[self.rows]
        self._size = np.stack([np.asarray(info["height"], np.int64), np.asarray(info["width"], np.int64)], 1)[self.rows]
        frames = meta.get("frames", {})
        self.frames_dir = self.data_dir / frames.get("dir", "frames")
        flow_dir = meta["flow"].get("dir")
        self.flow_dir = (self.data_dir / flow_dir) if flow_dir and not Path(flow_dir).is_absolute() else \
            (Path(flow_dir) if flow_dir else None)
        if dense_size is None and self.rows.size:
            dense_size = (int(self._size[:, 0].min()), int(self._size[:, 1].min()))
        self.dense_size = dense_size

    # -- metadata ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Video names in dataset order."""
        return self._videos

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def views(self) -> int:
        """Views per item ``K`` (1: no view dimension)."""
        return num_views(self.protocol, self.num_frames)

    def __len__(self) -> int:
        return int(self.rows.size)

    # -- reading ------------------------------------------------------------------------------------
    def _read(self, folder: Path, numbers: np.ndarray, color: bool) -> np.ndarray:
        """``frame%06d.jpg`` of ``numbers`` (1-based) -> ``(U, H, W[, 3])`` uint8 (RGB)."""
        cv2 = require_cv2()
        flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
        imgs = []
        for k in numbers.tolist():  # one file per frame
            path = folder / f"frame{k:06d}.jpg"
            img = cv2.imread(str(path), flag)
            if img is None:
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: frame missing (prepared data incomplete; run the prepare "
                                            "command again: it resumes)")
                raise ValueError(f"{path}: not a readable JPEG")
            if imgs and img.shape != imgs[0].shape:
                raise ValueError(f"{path}: {img.shape[1]}x{img.shape[0]}, other frames of the video "
                                 f"{imgs[0].shape[1]}x{imgs[0].shape[0]}")
            imgs.append(img)
        arr = np.stack(imgs)
        return arr[..., ::-1] if color else arr  # OpenCV reads BGR

    def _plan(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, list[tuple[int, int, int, int, bool]]]:
        """``(clips (C, T), views)``: the samples of each clip and the (y0, x0, h, w, flip) views
        applied to every clip (all views for every clip; train/center: one clip, one view)."""
        n = int(self._length[index])
        h, w = (int(v) for v in self._size[index])
        t, L, crop = self.num_frames, self.flow_stack, self.crop_size
        if self.protocol == "train":
            rng = rng if rng is not None else np.random.default_rng()
            clips = S.train_samples(n, rng, t, self.stride, L)[None]
            box = S.nocenter_crop(h, w, rng, crop) if self.augment == "noCtr" else S.random_crop(h, w, rng, crop)
            return clips, [box]
        if self.protocol == "center":
            y0, x0, ch, cw = S.center_crop_box(h, w, crop)
            return S.center_samples(n, t, CENTER_STRIDE, L)[None], [(y0, x0, ch, cw, False)]
        if self.protocol == "released":
            vrng = np.random.default_rng([self.seed, int(self.rows[index])])
            samples = S.released_test_samples(n, vrng, RELEASED_SAMPLES, t, RELEASED_STRIDE, L)
            dh, dw = self.dense_size if self.dense_size is not None else (h, w)
            dh, dw = min(dh, h), min(dw, w)
            y0, x0 = (h - dh) // 2, (w - dw) // 2
            return S.released_clips(samples, t), [(y0, x0, dh, dw, False), (y0, x0, dh, dw, True)]
        samples = S.uniform_samples(n, UNIFORM_SAMPLES, L)
        boxes = [tuple(int(v) for v in row[:4]) + (bool(row[4]),) for row in S.ten_crop_boxes(h, w, crop)]
        return S.uniform_clips(samples, t), boxes  # type: ignore[return-value]

    def _out_size(self, box: tuple[int, int, int, int, bool]) -> tuple[int, int]:
        if self.protocol == "released":
            return box[2], box[3]
        return self.crop_size, self.crop_size

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, rng = unpack_item(item)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        index %= len(self)
        video = self._videos[index]
        clips, boxes = self._plan(index, rng)
        c, t = clips.shape
        L = self.flow_stack
        n = int(self._length[index])
        out: dict[str, torch.Tensor] = {}
        parts: dict[str, np.ndarray] = {}
        if "rgb" in self.streams:
            ids = S.clamp_frames(clips, int(self._n_rgb[index]))
            uniq, inv = np.unique(ids, return_inverse=True)
            frames = self._read(self.frames_dir / video, uniq, color=True)  # (U, H, W, 3)
            parts["rgb"] = frames[inv.reshape(c, t)]  # (C, T, H, W, 3)
        if "flow" in self.streams:
            assert self.flow_dir is not None
            ids = S.flow_indices(clips, n, L)  # (C, T, L)
            uniq, inv = np.unique(ids, return_inverse=True)
            u = self._read(self.flow_dir / "u" / video, uniq, color=False)[inv.reshape(c, t, L)]
            v = self._read(self.flow_dir / "v" / video, uniq, color=False)[inv.reshape(c, t, L)]
            flow = np.stack([u, v], axis=3)  # (C, T, L, 2, H, W): u, v interleaved per flow frame
            parts["flow"] = flow.reshape(c, t, 2 * L, *flow.shape[-2:]).transpose(0, 1, 3, 4, 2)  # (C, T, H, W, 2L)
        for name, arr in parts.items():
            views = [self._view(arr, box, name) for box in boxes]  # a loop over the (<= 10) view boxes
            # (V, C, T, h, w, ch) -> (C * V, ...) ordered clip-major: clip 0 view 0, clip 0 view 1, ...
            stacked = np.stack(views, axis=1).reshape(c * len(views), t, *views[0].shape[2:])
            x = self._normalize(stacked, name)  # (K, T, h, w, ch) float32
            x = x.transpose(0, 4, 1, 2, 3)  # (K, ch, T, h, w)
            if self.views == 1:
                x = x[0]
            out[name] = torch.from_numpy(np.ascontiguousarray(x))
        out["target"] = torch.tensor(int(self._labels[index]), dtype=torch.int64)
        out["id"] = torch.tensor(index, dtype=torch.int64)
        return out

    def _view(self, arr: np.ndarray, box: tuple[int, int, int, int, bool], name: str) -> np.ndarray:
        """One view of every clip: ``arr (C, T, H, W, ch)`` -> ``(C, T, h, w, ch)`` uint8."""
        y0, x0, bh, bw, flip = box
        crop = arr[:, :, y0:y0 + bh, x0:x0 + bw]
        oh, ow = self._out_size(box)
        if (bh, bw) != (oh, ow):  # resize all clips, frames and channels in one OpenCV call (or a few)
            cc, tt, _, _, ch = crop.shape
            flat = crop.transpose(2, 3, 0, 1, 4).reshape(bh, bw, cc * tt * ch)
            crop = _resize(flat, oh, ow).reshape(oh, ow, cc, tt, ch).transpose(2, 3, 0, 1, 4)
        if flip:
            crop = crop[:, :, :, ::-1]
            if name == "flow":  # u channels (even) -> 255 - u: the flow points the other way
                crop = crop.copy()
                crop[..., 0::2] = 255 - crop[..., 0::2]
        return np.ascontiguousarray(crop)

    def _normalize(self, x: np.ndarray, name: str) -> np.ndarray:
        if name == "rgb":
            if self.normalization == "matconvnet":
                return x.astype(np.float32) - 255.0 * IMAGENET_MEAN
            return (x.astype(np.float32) * np.float32(1 / 255.0) - IMAGENET_MEAN) / IMAGENET_STD
        if self.normalization == "pixels":
            return x.astype(np.float32) * np.float32(2 * FLOW_BOUND / 255.0) - np.float32(FLOW_BOUND)
        centred = x.astype(np.float32) - 128.0
        if self.normalization == "matconvnet":
            return centred
        return centred * np.float32(1.0 / (255.0 * float(IMAGENET_STD.mean())))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, split={self.split!r}, "
                f"protocol={self.protocol!r}, streams={self.streams}, len={len(self)})")
