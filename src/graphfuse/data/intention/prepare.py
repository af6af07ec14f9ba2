"""``graphfuse prepare pie|jaad``: PIE / JAAD annotations -> benchmark crossing samples on disk.

Reads the original annotation XML through :mod:`.pie` / :mod:`.jaad`, builds the crossing
tracks and observation windows of the Kotseruba et al. (WACV 2021) benchmark
(:mod:`.sequences`), optionally attaches per-frame 2D poses (:class:`.poses.PoseSource`) and
image crops, and writes the prepared format (all writes atomic)::

    OUT/meta.json
    OUT/<split>/ids.json         N ids "setXX/video_XXXX/<ped>/<first frame>" (JAAD: no set)
    OUT/<split>/label.npy        (N,) int64 binary crossing label
    OUT/<split>/label3.npy       (N,) int64 0 no-cross, 1 cross, 2 irrelevant
    OUT/<split>/tte.npy          (N,) int64 frames from the last observed frame to the event
    OUT/<split>/frames.npy       (N, T) int64
    OUT/<split>/boxes.npy        (N, T, 4) float32 x1 y1 x2 y2 pixels
    OUT/<split>/ego.npy          (N, T, E) float32 PIE [GPS_speed, OBD_speed] km/h; JAAD [vehicle_act]
    OUT/<split>/image_size.npy   (N, 2) int64 (width, height)
    OUT/<split>/pose.npy         (N, T, 19, 4) float32 [x px, y px, depth, score]  (with poses)
    OUT/<split>/pose_mask.npy    (N, T) bool, True where a detection matched      (with poses)
    OUT/<split>/crops.npy        (N, 3, H, W) uint8 RGB crop at the last observed frame (with images)

``meta.json["splits"][split]`` holds pedestrians (considered, as the official
``num_pedestrians``), tracks (crossing tracks kept after the length filter and any skip or
balancing), samples, positive / negative (binary label) and irrelevant (label3 == 2, a subset
of the negatives). ``meta.json["pose"]`` counts matched / missing (filled) frames over the written
(N, T) sample frames. ``meta.json["skipped"]`` maps a reason to the ids skipped for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...io import save_npy, write_json
from ..checks import INTENTION_CHECKS, check_intention_arrays, check_obd, check_record, resolve_bounds
from .jaad import read_jaad_split, read_jaad_video
from .pie import pie_split_videos, read_pie_video
from .sequences import (BALANCE_MODES, DEFAULT_OVERLAP, EGO_CHANNELS, CrossingSamples,
                        CrossingTracks, balance_mask, build_samples, default_min_track_size,
                        jaad_crossing_tracks, pie_crossing_tracks, tte_range)

FORMAT = "graphfuse-intention"
VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Files written per split (pose / crop files only when requested).
SPLIT_FILES: tuple[str, ...] = ("ids.json", "label.npy", "label3.npy", "tte.npy", "frames.npy",
                                "boxes.npy", "ego.npy", "image_size.npy", "pose.npy",
                                "pose_mask.npy", "crops.npy")


def _balance_mode(balance: bool | str) -> str:
    if balance is True:
        return "tracks"
    if balance is False or balance is None:
        return "none"
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be a bool or one of {BALANCE_MODES}, got {balance!r}")
    return balance


def load_split_tracks(dataset: str, root: str | Path, split: str, *, sample_type: str = "beh",
                      subset: str = "default", min_track_size: int = 76,
                      jaad_beh_irrelevant: bool = False,
                      bounds: Any = None) -> tuple[CrossingTracks, list[tuple[str, str]]]:
    """Crossing tracks of one default split, read from the annotation root.

    PIE OBD values are checked against their plausibility bounds (``bounds``: overrides of
    :data:`graphfuse.data.checks.DEFAULT_BOUNDS`), errors naming file, frame and field.
    Returns (tracks, videos) with videos the (set_id, video_id) pairs read ('' set for JAAD),
    in the official order."""
    root = Path(root)
    if dataset == "pie":
        bounds = resolve_bounds(bounds)
        vids = pie_split_videos(root, split)  # sets in split order, videos sorted
        videos = [read_pie_video(root, s, v) for s, v in vids]
        for (s, v), video in zip(vids, videos):  # a loop over videos
            check_obd(video.obd, root / "annotations_vehicle" / s / f"{v}_obd.xml", bounds)
        return pie_crossing_tracks(videos, min_track_size), vids
    if dataset == "jaad":
        names = sorted(read_jaad_split(root, split, subset))  # official: sorted(video_ids)
        videos = [read_jaad_video(root, v) for v in names]
        tracks = jaad_crossing_tracks(videos, min_track_size, sample_type, jaad_beh_irrelevant)
        return tracks, [("", v) for v in names]
    raise ValueError(f"dataset must be 'pie' or 'jaad', got {dataset!r}")


def check_boxes_in_frame(tracks: CrossingTracks) -> int:
    """Pedestrian boxes against the frame: a box entirely outside the image is an error naming
    the track and frame (the annotators mark such frames ``outside="1"``, which the readers
    drop; none exists in JAAD); a box reaching over the image border is kept (normalised
    coordinates then leave [0, 1] a little; crops are zero-padded) and counted. Returns the
    number of frames with a box partly outside (``meta.json["boxes_partly_outside_frame"]``;
    1 of 378,643 JAAD pedestrian boxes)."""
    if len(tracks) == 0:
        return 0
    wh = np.repeat(tracks.image_size, np.diff(tracks.offsets), axis=0).astype(np.float64)
    b = tracks.boxes
    fully = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= wh[:, 0]) | (b[:, 1] >= wh[:, 1])
    if fully.any():
        row = int(np.flatnonzero(fully)[0])
        k = int(np.searchsorted(tracks.offsets, row, side="right") - 1)
        raise ValueError(f"{tracks.keys[k]}: box {b[row].tolist()} at frame {int(tracks.frames[row])} "
                         f"lies entirely outside the {int(wh[row, 0])}x{int(wh[row, 1])} frame")
    partly = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > wh[:, 0]) | (b[:, 3] > wh[:, 1])
    return int(partly.sum())


def _split_key(key: str) -> tuple[str, str, str]:
    """Track key -> (set_id, video_id, ped_id); JAAD keys have no set ('')."""
    parts = key.split("/")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return "", parts[0], parts[1]


def _track_poses(source: Any, tracks: CrossingTracks, on_missing_pose: str,
                 skipped: dict[str, list[str]]) -> tuple[CrossingTracks, np.ndarray, np.ndarray, dict]:
    """Poses of every frame of every track (one PoseSource call per track: the pose API is per
    pedestrian). A video whose pose file is missing raises, or with on_missing_pose='skip'
    drops all its tracks (listed under skipped['missing_pose_file'])."""
    keep = np.ones(len(tracks), dtype=bool)
    poses, masks = [], []
    missing_videos: set[str] = set()
    for k, key in enumerate(tracks.keys):
        set_id, video_id, ped_id = _split_key(key)
        vkey = f"{set_id}/{video_id}" if set_id else video_id
        if vkey in missing_videos:
            keep[k] = False
            continue
        a, b = tracks.offsets[k], tracks.offsets[k + 1]
        try:
            pose, mask = source.track_poses(set_id, video_id, ped_id, tracks.frames[a:b],
                                            tracks.boxes[a:b])
        except FileNotFoundError:
            if on_missing_pose != "skip":
                raise
            missing_videos.add(vkey)
            skipped.setdefault("missing_pose_file", []).append(vkey)
            keep[k] = False
            continue
        pose = np.asarray(pose, dtype=np.float32)
        mask = np.asarray(mask, dtype=bool)
        if pose.shape != (b - a, 19, 4) or mask.shape != (b - a,):
            raise ValueError(f"{key}: pose source returned shapes {pose.shape}, {mask.shape}; "
                             f"expected ({b - a}, 19, 4), ({b - a},)")
        poses.append(pose)
        masks.append(mask)
    if not keep.all():
        tracks = tracks.select(keep)
    pose_all = np.concatenate(poses) if poses else np.zeros((0, 19, 4), np.float32)
    mask_all = np.concatenate(masks) if masks else np.zeros(0, bool)
    info = {"matched_frames": int(mask_all.sum()), "missing_frames": int((~mask_all).sum())}
    return tracks, pose_all, mask_all, info


def _split_counts(tracks: CrossingTracks, samples: CrossingSamples) -> dict[str, int]:
    pos = int(samples.label.sum())
    return {"pedestrians": int(tracks.num_pedestrians), "tracks": len(tracks),
            "samples": len(samples), "positive": pos, "negative": len(samples) - pos,
            "irrelevant": int((samples.label3 == 2).sum())}


def prepare_intention(
    dataset: str,
    root: str | Path,
    out: str | Path,
    *,
    poses: str | Path | None = None,
    pose_format: str = "coco",
    pose_min_iou: float = 0.3,
    pose_fill: str = "interpolate",
    images: str | Path | None = None,
    crop_size: tuple[int, int] = (192, 64),
    sample_type: str = "beh",
    subset: str = "default",
    obs_length: int = 16,
    time_to_event: int | tuple[int, int] = (30, 60),
    overlap: float | None = None,
    min_track_size: int | None = None,
    balance: bool | str = False,
    balance_seed: int = 42,
    jaad_beh_irrelevant: bool = False,
    on_missing_pose: str = "raise",
    splits: Sequence[str] = SPLITS,
    overwrite: bool = False,
    bounds: Any = None,
) -> dict[str, Any]:
    """Prepare PIE or JAAD crossing-prediction samples (the benchmark's PCPA defaults).

    Args:
        dataset: 'pie' or 'jaad'.
        root: dataset root holding the official annotation folders (PIE: annotations,
            annotations_attributes, annotations_vehicle; JAAD: the five annotation folders and
            split_ids).
        out: output directory (see the module docstring for the layout).
        poses: pose root (contract: ``<root>/<set>/<video>.json`` for PIE, ``<root>/<video>.json``
            for JAAD in the 'coco' format) read through ``PoseSource``; None = no poses.
        pose_format, pose_min_iou, pose_fill: passed to ``PoseSource``.
        images: frame folder for image crops (``crops.npy``); needs ``.crops``.
        sample_type: JAAD only, 'beh' (JAAD_beh) or 'all' (JAAD_all).
        subset: JAAD split subset 'default' | 'high_visibility' | 'all_videos'.
        obs_length: observed frames per sample (16 benchmark; 32 the PedGraph+ recipe).
        time_to_event: int or [min, max] frames between the last observed frame and the event.
        overlap: window overlap; None = the benchmark's 0.6 (PIE) / 0.8 (JAAD).
        min_track_size: minimum crossing-track length; None = obs_length + tte_max (76).
        balance: False / 'none', 'tracks' (= True; official ``balance_samples_count`` on the
            train split's tracks) or 'samples' (the same rule on the train windows). The
            benchmark balances only training data, so val and test are never balanced.
        balance_seed: seed of the balancing shuffle (official 42).
        jaad_beh_irrelevant: JAAD 'b' pedestrians with crossing == -1 get label3 = 2
            (default: 0, as PedGraph+, whose label follows the official binary label).
        on_missing_pose: 'raise' or 'skip' (skip the videos without a pose file; listed in
            meta['skipped']['missing_pose_file']).
        splits: which of train / val / test to write (a partial PIE download has only some sets;
            a requested split whose sets are missing raises).
        overwrite: replace an existing prepared directory (else FileExistsError).
        bounds: plausibility bounds overriding :data:`graphfuse.data.checks.DEFAULT_BOUNDS`
            (``{"speed_kmh": (0, 350)}`` or ``["speed_kmh=0:350"]``): PIE OBD fields are
            checked when read (errors name file, frame, field and value), the stored float
            arrays after the cast to float32 (boxes and pose x, y within ``pixel_frames`` of the
            frame, ego speeds within ``speed_kmh``; errors name the array, sample and value).
            The check is recorded in ``meta["value_check"]``.

    Returns:
        The meta dict written to ``out/meta.json``.
    """
    if dataset not in ("pie", "jaad"):
        raise ValueError(f"dataset must be 'pie' or 'jaad', got {dataset!r}")
    if on_missing_pose not in ("raise", "skip"):
        raise ValueError(f"on_missing_pose must be 'raise' or 'skip', got {on_missing_pose!r}")
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"unknown split {s!r}; expected some of {SPLITS}")
    mode = _balance_mode(balance)
    bounds = resolve_bounds(bounds)
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset.upper()} root not found: {root}")
    if overlap is None:
        overlap = DEFAULT_OVERLAP[dataset]
    lo, hi = tte_range(time_to_event)
    tte_opt: int | list[int] = lo if isinstance(time_to_event, (int, np.integer)) else [lo, hi]
    if min_track_size is None:
        min_track_size = default_min_track_size(obs_length, time_to_event)
    if (out / "meta.json").exists():
        if not overwrite:
            raise FileExistsError(f"{out / 'meta.json'} exists; pass overwrite=True to replace it")
        (out / "meta.json").unlink()  # the directory is incomplete until the new meta is written
        for s in SPLITS:  # files of an earlier run (other splits, poses or crops) must not linger
            for name in SPLIT_FILES:
                (out / s / name).unlink(missing_ok=True)

    source = None
    if poses is not None:
        from .poses import PoseSource

        if not Path(poses).exists():  # a mistyped folder must not turn into "every video skipped"
            raise FileNotFoundError(f"pose folder not found: {poses}")
        source = PoseSource(poses, fmt=pose_format, dataset=dataset, min_iou=pose_min_iou,
                            fill=pose_fill)
    cropper = None
    if images is not None:
        cropper = _make_cropper(images, dataset, crop_size)

    options = {"seq_type": "crossing", "data_split_type": "default", "fstride": 1,
               "sample_type": sample_type if dataset == "jaad" else "all",
               "subset": subset if dataset == "jaad" else None,
               "obs_length": int(obs_length), "time_to_event": tte_opt, "overlap": float(overlap),
               "min_track_size": int(min_track_size), "balance": mode,
               "balance_seed": int(balance_seed), "jaad_beh_irrelevant": bool(jaad_beh_irrelevant),
               "on_missing_pose": on_missing_pose, "splits": list(splits)}
    skipped: dict[str, list[str]] = {}
    split_meta: dict[str, dict[str, int]] = {}
    pose_info = {"matched_frames": 0, "missing_frames": 0}
    partly_outside = 0
    checked: list[str] = []

    for split in splits:
        tracks, _ = load_split_tracks(dataset, root, split, sample_type=sample_type, subset=subset,
                                      min_track_size=min_track_size,
                                      jaad_beh_irrelevant=jaad_beh_irrelevant, bounds=bounds)
        partly_outside += check_boxes_in_frame(tracks)
        if split == "train" and mode == "tracks":
            tracks = tracks.select(balance_mask(tracks.label, balance_seed))
        pose_all = mask_all = None
        if source is not None:
            tracks, pose_all, mask_all, _ = _track_poses(source, tracks, on_missing_pose, skipped)
        samples = build_samples(tracks, obs_length, time_to_event, overlap)
        if split == "train" and mode == "samples":
            samples = samples.select(balance_mask(samples.label, balance_seed))
        if pose_all is not None:  # counted over the written (N, T) sample frames
            used = mask_all[samples.rows]
            pose_info["matched_frames"] += int(used.sum())
            pose_info["missing_frames"] += int((~used).sum())
        # The stored float arrays, checked after the cast to float32 (finite, plausible) before
        # anything of the split is written.
        with np.errstate(over="ignore"):
            stored = {"boxes": samples.boxes.astype(np.float32), "ego": samples.ego.astype(np.float32)}
            if pose_all is not None:
                stored["pose"] = pose_all[samples.rows].astype(np.float32)
        checked += check_intention_arrays(split, stored, samples.ids, samples.image_size,
                                          EGO_CHANNELS[dataset], bounds)
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "ids.json", samples.ids)
        save_npy(d / "label.npy", samples.label.astype(np.int64))
        save_npy(d / "label3.npy", samples.label3.astype(np.int64))
        save_npy(d / "tte.npy", samples.tte.astype(np.int64))
        save_npy(d / "frames.npy", samples.frames.astype(np.int64))
        save_npy(d / "boxes.npy", stored["boxes"])
        save_npy(d / "ego.npy", stored["ego"])
        save_npy(d / "image_size.npy", samples.image_size.astype(np.int64))
        if pose_all is not None:
            save_npy(d / "pose.npy", stored["pose"])
            save_npy(d / "pose_mask.npy", mask_all[samples.rows])
        if cropper is not None:
            save_npy(d / "crops.npy", cropper(samples))
        split_meta[split] = _split_counts(tracks, samples)

    meta = {
        "format": FORMAT, "version": VERSION, "dataset": dataset, "options": options,
        "ego_channels": list(EGO_CHANNELS[dataset]),
        "pose": None if source is None else {
            "format": pose_format, "has_depth": bool(getattr(source, "has_depth", False)),
            "fill": pose_fill, "min_iou": pose_min_iou, **pose_info},
        "crops": None if cropper is None else {"size": list(crop_size), "frame": "last observed"},
        "splits": split_meta,
        "skipped": skipped,
        "boxes_partly_outside_frame": partly_outside,
        "value_check": check_record("prepare", {k: v for k, v in bounds.items() if k != "joint_m"},
                                    checked, INTENTION_CHECKS),
    }
    write_json(out / "meta.json", meta)  # written last: its presence marks a complete directory
    return meta


def _make_cropper(images: str | Path, dataset: str, crop_size: tuple[int, int]):
    """Crops at the last observed frame through ``.crops`` (helper B's module)."""
    try:
        from . import crops as crops_mod
    except ImportError as exc:
        raise ImportError("image crops requested but graphfuse.data.intention.crops is not "
                          f"available: {exc}") from exc
    fn = getattr(crops_mod, "crop_samples", None)
    if fn is None:
        raise ImportError("graphfuse.data.intention.crops has no crop_samples(); cannot crop")

    def run(samples: CrossingSamples) -> np.ndarray:
        keys = [i.rsplit("/", 1)[0] for i in samples.ids]
        return fn(images, dataset, keys, samples.frames[:, -1], samples.boxes[:, -1], size=crop_size)

    return run

