"""Dataset over prepared crossing-intention data (PIE, JAAD, synthetic PIE).

Prepared layout (written by ``graphfuse prepare pie|jaad|synthetic-pie``)::

    OUT/meta.json                        {"format": "graphfuse-intention", "version": 1, "dataset", ...,
                                          "ego_channels", "pose": null | {"has_depth", ...}, "splits", ...}
    OUT/<split>/ids.json                 sample ids "setXX/video_XXXX/<ped_id>/<first_frame>"
    OUT/<split>/label.npy     (N,)       int64 binary crossing label (1 crossing)
    OUT/<split>/label3.npy    (N,)       int64 0 no-cross, 1 cross, 2 irrelevant (PedGraph+)
    OUT/<split>/image_size.npy (N, 2)    int64 (width, height) in pixels
    OUT/<split>/ego.npy       (N, T, E)  float32 ego channels (PIE GPS/OBD speed km/h; JAAD vehicle_act)
    OUT/<split>/pose.npy      (N, T, 19, 4) float32 [x_px, y_px, depth, score]   (with --poses)
    OUT/<split>/crops.npy     (N, 3, H, W) uint8 RGB crop at the last observed frame (with crops)

Every array is read through a read-only memory map, and every item is built from a *copy*
of its rows. The reference loaders of PedGraph+ and doing_project normalised (and jittered)
the cached keypoints in place, so the inputs changed from epoch to epoch (brief §3.6); here
the stored data cannot change (the maps are opened read-only) and an item depends only on
``(sample, seed)``.

Model inputs (one item; the datamodule collates them into the batch of
:class:`graphfuse.tasks.CrossingIntention`):

* ``pose (C, T, 19)`` float32, channels ``x / w``, ``y / h``, [``depth / 80``], ``score``
  (PedGraph+ ``pie_dataloader23.py``: ``kp[..., 0] /= w``, ``/= h``, ``/= 80``; the score is
  not normalised). ``w, h`` are the sample's image width and height.
* ``velocity (2, T)`` float32: PIE ``[GPS_speed, OBD_speed] / 120`` (km/h); JAAD's
  ``vehicle_act`` code tiled to two rows, unnormalised (PedGraph+ ``jaad_dataloader23.py``).
  Exactly the ``T`` observed frames of the pose: ``ego.npy`` with any other length is an
  error (PedGraph+'s "F" mode fed 30 *future* frames of the true speed, brief §0.4 h).
* ``image (3, H, W)`` float32, ImageNet mean/std normalised (optional).
* ``target`` int64 scalar (the label the model is trained on: 3-class or binary), ``id``
  int64 scalar (position in the split, :attr:`IntentionDataset.names` maps it to the sample
  id): the batch contract of :mod:`graphfuse.tasks.base`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ...io import read_json
from ..samplers import unpack_item

__all__ = [
    "FORMAT",
    "SUPPORTED_VERSIONS",
    "DEPTH_SCALE",
    "SPEED_SCALE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "JITTER_PX",
    "load_intention_meta",
    "IntentionDataset",
    "collate_intention",
]

FORMAT = "graphfuse-intention"
SUPPORTED_VERSIONS = frozenset({1})
#: PedGraph+ divides the depth channel by 80 (``kp[..., 2] /= 80``).
DEPTH_SCALE = 80.0
#: PedGraph+ divides PIE's GPS and OBD speeds (km/h) by 120.
SPEED_SCALE = 120.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Exclusive upper bounds of PedGraph+'s integer keypoint jitter (``np.random.randint(9)``,
#: ``randint(6)``, ``randint(2)``): +U{0..8} px on x, +U{0..5} px on y, +U{0..1} on depth.
JITTER_PX = (9, 6, 2)
#: PedGraph+'s time crop ("T" flag, training only): in half of the batches the pose keeps
#: only its last k frames, k uniform in [2, 20] (``np.random.randint(2, 21)``).
TIME_CROP_RANGE = (2, 21)
TIME_CROP_PROB = 0.5

_PIE_SPEEDS = ("GPS_speed", "OBD_speed")
_JAAD_ACTION = "vehicle_act"


def load_intention_meta(data_dir: str | Path) -> dict[str, Any]:
    """Read and check the top level of ``data_dir/meta.json`` (format and version)."""
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no prepared intention data here")
    meta = read_json(path)  # ValueError naming the file: not UTF-8, malformed, nested too deep
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: format {meta.get('format')!r} is not {FORMAT!r} (is this a crossing-intention "
            "directory written by `graphfuse prepare pie|jaad|synthetic-pie`?)"
        )
    if meta.get("version") not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"{path}: format version {meta.get('version')!r} not supported (supported: {sorted(SUPPORTED_VERSIONS)})"
        )
    if not isinstance(meta.get("splits"), dict) or not meta["splits"]:
        raise ValueError(f"{path}: 'splits' must be a non-empty object")
    ego = meta.get("ego_channels")
    if not isinstance(ego, list) or not all(isinstance(c, str) for c in ego):
        raise ValueError(f"{path}: 'ego_channels' must be a list of channel names")
    return meta


def _open(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


class IntentionDataset(Dataset):
    """One split of a prepared crossing-intention directory.

    Args:
        data_dir: prepared directory (holds ``meta.json``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        labels: ``"three"`` (0 no-cross, 1 cross, 2 irrelevant: PedGraph+) or ``"binary"``.
        use_velocity: return the ego ``velocity`` input.
        use_image: return the ``image`` crop (needs ``crops.npy``).
        use_depth: keep the depth channel; None = when ``meta.json`` says the poses have depth.
        jitter: PedGraph+'s integer keypoint jitter before normalisation, drawn from the
            item's generator (training only: the datamodule never sets it for val/test).
            Unlike the reference, y is clipped to ``[0, h]`` (it clips y and depth to ``[0, w]``)
            and depth to ``>= 0``.
        time_crop: attach a per-item draw of PedGraph+'s time crop (key ``"crop"``: 0 = keep
            all frames, else the number of last frames to keep); the training collate applies
            the draw of a batch's first item to the whole batch, as the reference crops per batch.

    ``dataset[i]`` or ``dataset[(i, seed)]`` (from :class:`graphfuse.data.samplers.EpochSeededSampler`)
    returns a dict of tensors (see the module docstring); ``seed`` seeds the augmentation.

    Raises at construction: a missing ``pose.npy`` (FileNotFoundError naming the directory and
    the ``--poses`` option), missing crops when ``use_image``, arrays of inconsistent lengths
    or shapes, labels outside their range or ``label != (label3 == 1)`` (naming the sample),
    duplicate ids, non-positive image sizes, unknown ego channels.
    Raises per item: ValueError naming the sample when its pose or ego data is not finite.
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        labels: Literal["three", "binary"] = "three",
        use_velocity: bool = True,
        use_image: bool = False,
        use_depth: bool | None = None,
        jitter: bool = False,
        time_crop: bool = False,
    ) -> None:
        if labels not in ("three", "binary"):
            raise ValueError(f"labels: expected 'three' or 'binary', got {labels!r}")
        self.data_dir = Path(data_dir)
        self.split = split
        self.labels_kind = labels
        self.use_velocity = bool(use_velocity)
        self.use_image = bool(use_image)
        self.jitter = bool(jitter)
        self.time_crop = bool(time_crop)
        meta = load_intention_meta(self.data_dir)
        self.meta = meta
        where = self.data_dir / "meta.json"
        if split not in meta["splits"]:
            raise ValueError(f"{where}: no split {split!r}; available: {sorted(meta['splits'])}")
        self.dir = self.data_dir / split

        ids_path = self.dir / "ids.json"
        if not ids_path.is_file():
            raise FileNotFoundError(f"{ids_path}: sample ids of split {split!r} missing")
        ids = read_json(ids_path)
        if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
            raise ValueError(f"{ids_path}: expected a list of sample id strings")
        n = len(ids)
        if n:
            uniq, counts = np.unique(np.asarray(ids, dtype=str), return_counts=True)
            if (counts > 1).any():
                raise ValueError(f"{ids_path}: duplicate sample id {uniq[np.argmax(counts > 1)]!r}")
        self._names = ids

        # -- poses --------------------------------------------------------------------------
        pose_info = meta.get("pose")
        self.pose_file = self.dir / "pose.npy"
        if not self.pose_file.is_file():
            dataset = str(meta.get("dataset", "pie")).replace("synthetic-pie", "pie")
            raise FileNotFoundError(
                f"{self.dir}: no pose.npy. The models read poses, and this directory was prepared "
                f"without them; prepare it again with poses: `graphfuse prepare {dataset} --root <dataset root> "
                f"--out {self.data_dir} --poses <pose dir>` (pose formats: docs/data_intention.md)"
            )
        has_depth = bool(pose_info.get("has_depth", False)) if isinstance(pose_info, dict) else False
        if use_depth is None:
            use_depth = has_depth
        elif use_depth and not has_depth:
            raise ValueError(
                f"{where}: use_depth=True but the poses have no depth (pose.has_depth is false); "
                "set use_depth: null or false"
            )
        self.use_depth = bool(use_depth)
        #: Pose channels read from pose.npy's last axis: x, y, [depth], score.
        self.channels = [0, 1, 2, 3] if self.use_depth else [0, 1, 3]

        # -- arrays: shapes and lengths checked once -------------------------------------------
        pose = _open(self.pose_file)
        if pose.ndim != 4 or pose.shape[0] != n or pose.shape[2:] != (19, 4):
            raise ValueError(f"{self.pose_file}: shape {pose.shape}, expected ({n}, T, 19, 4) ({n} ids)")
        self.num_frames = int(pose.shape[1])

        def load_small(name: str, dtype: Any, shape: tuple) -> np.ndarray:
            path = self.dir / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing from the prepared split {split!r}")
            arr = np.load(path, allow_pickle=False)
            if arr.shape != shape:
                raise ValueError(f"{path}: shape {arr.shape}, expected {shape}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{path}: dtype {arr.dtype}, expected integers")
            return arr.astype(dtype)

        label = load_small("label.npy", np.int64, (n,))
        label3 = load_small("label3.npy", np.int64, (n,))
        bad = np.flatnonzero((label < 0) | (label > 1))
        if bad.size:
            raise ValueError(
                f"{self.dir / 'label.npy'}: sample {ids[bad[0]]!r} has label {label[bad[0]]}, expected 0/1"
            )
        bad = np.flatnonzero((label3 < 0) | (label3 > 2))
        if bad.size:
            raise ValueError(
                f"{self.dir / 'label3.npy'}: sample {ids[bad[0]]!r} has label {label3[bad[0]]}, expected 0, 1 or 2"
            )
        bad = np.flatnonzero(label != (label3 == 1))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{self.dir}: sample {ids[i]!r} has label {label[i]} but label3 {label3[i]} "
                f"(crossing must be label3 == 1; {bad.size} such sample(s))"
            )
        #: Binary crossing labels (what the metrics score), and the labels the model is trained on.
        self.binary_labels = label
        self.labels = label3 if labels == "three" else label
        self.num_class = 3 if labels == "three" else 2

        size = load_small("image_size.npy", np.float32, (n, 2))
        bad = np.flatnonzero((size <= 0).any(axis=1))
        if bad.size:
            raise ValueError(
                f"{self.dir / 'image_size.npy'}: sample {ids[bad[0]]!r} has image size {size[bad[0]]}"
            )
        self.image_size = size  # (N, 2) width, height

        ego_path = self.dir / "ego.npy"
        self.ego_file = ego_path
        self._ego_rows: list[int] = []
        self._ego_scale = 1.0
        if self.use_velocity:
            if not ego_path.is_file():
                raise FileNotFoundError(f"{ego_path}: ego data missing (needed for use_velocity=True)")
            ego = _open(ego_path)
            names = list(meta["ego_channels"])
            if ego.ndim != 3 or ego.shape[:2] != (n, self.num_frames) or ego.shape[2] != len(names):
                raise ValueError(
                    f"{ego_path}: shape {ego.shape}, expected ({n}, {self.num_frames}, {len(names)}) "
                    f"(ego_channels {names})"
                )
            if all(c in names for c in _PIE_SPEEDS):
                self._ego_rows = [names.index(c) for c in _PIE_SPEEDS]  # [GPS, OBD] as PedGraph+
                self._ego_scale = 1.0 / SPEED_SCALE
            elif _JAAD_ACTION in names:
                self._ego_rows = [names.index(_JAAD_ACTION)] * 2  # tiled to 2 rows, unnormalised
            else:
                raise ValueError(
                    f"{where}: ego_channels {names} has neither {list(_PIE_SPEEDS)} (PIE) nor "
                    f"{_JAAD_ACTION!r} (JAAD); cannot build the velocity input"
                )

        self.crops_file = self.dir / "crops.npy"
        if self.use_image:
            if not self.crops_file.is_file():
                raise FileNotFoundError(
                    f"{self.dir}: no crops.npy, needed for use_image=True; prepare the data again with "
                    "image crops (`graphfuse prepare ... --images <frame folders>`), or set use_image: false"
                )
            crops = _open(self.crops_file)
            if crops.ndim != 4 or crops.shape[0] != n or crops.shape[1] != 3 or crops.dtype != np.uint8:
                raise ValueError(
                    f"{self.crops_file}: shape {crops.shape} dtype {crops.dtype}, expected ({n}, 3, H, W) uint8"
                )

        self._pose: np.ndarray | None = None
        self._ego: np.ndarray | None = None
        self._crops: np.ndarray | None = None

    # -- metadata -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Sample ids in dataset order (``id`` of an item points into this list)."""
        return self._names

    @property
    def in_channels(self) -> int:
        """Pose channels C (3, or 4 with depth)."""
        return len(self.channels)

    def class_counts(self) -> np.ndarray:
        """``(num_class,)`` int64 number of samples per training label."""
        return np.bincount(self.labels, minlength=self.num_class).astype(np.int64)

    def __len__(self) -> int:
        return len(self._names)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pose"] = state["_ego"] = state["_crops"] = None  # re-opened in each worker
        return state

    # -- items --------------------------------------------------------------------------------
    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, rng = unpack_item(item)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples of split {self.split!r}")
        if self._pose is None:
            self._pose = _open(self.pose_file)
        # A copy: normalisation and jitter below must never reach the stored data.
        kp = np.array(self._pose[index], dtype=np.float32, copy=True)  # (T, 19, 4)
        if not np.isfinite(kp).all():
            raise ValueError(
                f"sample {self._names[index]!r} (row {index} of {self.pose_file}) has NaN/Inf keypoints"
            )
        w, h = float(self.image_size[index, 0]), float(self.image_size[index, 1])
        if self.jitter:
            if rng is None:
                rng = np.random.default_rng()
            shape = kp.shape[:2]
            kp[..., 0] = np.clip(kp[..., 0] + rng.integers(0, JITTER_PX[0], size=shape), 0.0, w)
            kp[..., 1] = np.clip(kp[..., 1] + rng.integers(0, JITTER_PX[1], size=shape), 0.0, h)
            if self.use_depth:
                kp[..., 2] = np.maximum(kp[..., 2] + rng.integers(0, JITTER_PX[2], size=shape), 0.0)
        kp[..., 0] /= w
        kp[..., 1] /= h
        kp[..., 2] /= DEPTH_SCALE
        pose = np.ascontiguousarray(kp[..., self.channels].transpose(2, 0, 1))  # (C, T, 19)
        out: dict[str, torch.Tensor] = {"pose": torch.from_numpy(pose)}
        if self.use_velocity:
            if self._ego is None:
                self._ego = _open(self.ego_file)
            ego = np.array(self._ego[index], dtype=np.float32, copy=True)  # (T, E)
            if not np.isfinite(ego).all():
                raise ValueError(
                    f"sample {self._names[index]!r} (row {index} of {self.ego_file}) has NaN/Inf ego data"
                )
            vel = ego[:, self._ego_rows].T * np.float32(self._ego_scale)  # (2, T)
            out["velocity"] = torch.from_numpy(np.ascontiguousarray(vel, dtype=np.float32))
        if self.use_image:
            if self._crops is None:
                self._crops = _open(self.crops_file)
            img = torch.from_numpy(np.array(self._crops[index], dtype=np.float32, copy=True)) / 255.0
            mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
            out["image"] = (img - mean) / std
        out["target"] = torch.tensor(int(self.labels[index]), dtype=torch.int64)
        out["id"] = torch.tensor(index, dtype=torch.int64)
        if self.time_crop:
            if rng is None:
                rng = np.random.default_rng()
            crop = int(rng.integers(*TIME_CROP_RANGE)) if rng.random() < TIME_CROP_PROB else 0
            out["crop"] = torch.tensor(crop, dtype=torch.int64)
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, split={self.split!r}, len={len(self)}, "
            f"labels={self.labels_kind!r}, channels={self.in_channels}, T={self.num_frames})"
        )


def collate_intention(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items into a batch; apply the time crop drawn by the first item (training).

    ``crop = k > 0`` keeps the last ``k`` pose frames of the whole batch (PedGraph+ crops the
    pose only, per batch; the velocity keeps its ``T`` frames, as the reference).
    """
    keys = [k for k in items[0] if k != "crop"]
    batch = {k: torch.stack([it[k] for it in items]) for k in keys}
    if "crop" in items[0]:
        k = int(items[0]["crop"])
        if k > 0:
            batch["pose"] = batch["pose"][:, :, -k:].contiguous()
    return batch
