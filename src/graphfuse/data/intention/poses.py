"""Per-frame 2D pedestrian poses for PIE / JAAD: readers, box matching, gap filling (numpy only).

PIE and JAAD ship no poses; users run a pose estimator. This module reads its output and turns
it into the 19-node graph of Pedestrian Graph+ (:mod:`graphfuse.graphs.coco19`) per pedestrian
track: ``(F, 19, 4)`` float32 ``[x_px, y_px, depth, score]`` in pixels of the original frame,
plus an ``(F,)`` bool mask of the frames where a detection was found.

Formats (``PoseSource(fmt=...)``; PIE paths have a set folder, JAAD paths do not):

``coco``
    ``ROOT/<set_id>/<video_id>.json`` (PIE) or ``ROOT/<video_id>.json`` (JAAD): a COCO keypoint
    *results* list as AlphaPose and MMPose write it, ``[{"image_id", "category_id": 1,
    "keypoints": [x, y, s] * K, "score", optional "box" | "bbox": [x, y, w, h]}, ...]``.
    ``image_id`` is the frame number or an image file name whose stem ends with it
    (``"00012.png"`` -> 12). K = 17 (COCO-17) or 26 (AlphaPose Halpe-26, whose neck and pelvis
    are used directly). For COCO-17 the neck and the mid-hip are the midpoints of the shoulders /
    of the hips with score = min of the two.
``openpose``
    ``ROOT/<set_id>/<video_id>/*<frame>_keypoints.json`` (JAAD: ``ROOT/<video_id>/...``), the
    frame being the last run of digits before ``_keypoints``. ``{"people": [{"pose_keypoints_2d":
    [...]}]}`` with BODY_25 (75 values) or COCO-18 (54 values), mapped by joint name; the neck is
    OpenPose's own, the mid-hip BODY_25's own or, for COCO-18, the midpoint of the hips.
    OpenPose writes ``(0, 0, 0)`` for a joint it did not find.
``pab``
    The pose pickles of the PedestrianActionBenchmark (ykotseruba/PedestrianActionBenchmark,
    ``data/features/{pie,jaad}/poses/pose_setXX.pkl``; read by its ``utils.get_pose``):
    ``ROOT/pose_<set_id>.pkl`` (JAAD: all videos in ``ROOT/pose_set01.pkl``), a dict
    ``{video_id: {"<%05d frame>_<ped_id>": 36 floats}}``. What the benchmark does not document
    and was established from its released ``pose_set05.pkl`` against the PIE set05 boxes:

    * the 36 values are 18 (x, y) pairs in **OpenPose COCO-18 order** (the code comment in
      ``get_pose`` lists the eyes and ears as L, R; on set05 the joint at index 14 lies on the
      same side as the right shoulder in 93 % of the frames where both are seen, index 16 in
      99 %, so the order is OpenPose's R, L);
    * they are **normalised by 224 within the 224x224 "pad_resize" crop of the pedestrian box**
      (``utils.img_pad``: the integer box is cut out, resized so its longer side is 224, and
      centred on zero padding). All non-zero values are multiples of 1/224, and 4202 of the
      4204 joints of set05 fall inside the resized box's band of the crop. This reader inverts
      that crop with the track box of the same frame (pixel-centre convention of ``cv2.resize``),
      which is exact up to the 1/224 quantisation, i.e. about ``max(box side) / 224`` pixels;
    * ``(0, 0)`` is a joint not found and an all-zero vector a frame without a pose. There are
      no confidences: score = 1 for a found joint, 0 otherwise.
``pedgraph``
    The per-sample pickles of Pedestrian Graph+ (RodrigoGantier/Pedestrian_graph_plus, its
    ``pie_dataloader23.py`` / ``jaad_dataloader23.py``): ``ROOT/[data/]<name>.pkl`` with name
    ``setXX_video_XXXX_pid_<ped_id>_fr_<frame>`` (PIE) or ``video_XXXX_pid_<ped_id>_fr<frame>``
    (JAAD), a dict holding ``kps`` ``[62, 19, 4]`` = ``[x_px, y_px, z, score]`` (the loaders
    divide x by ``w``, y by ``h``, z by 80 and leave the 4th channel as is), ``w``, ``h``, speeds,
    labels and ``crop_img`` (a ``pathlib`` path, read here as a string). The script that made
    them is not released; **inferred**: ``fr`` is the first frame of the window (DP's
    ``pre_data/pre_data_pie.py`` reads boxes at ``fr + i``) and the 62 frames are consecutive.
    Windows of a pedestrian overlap; a frame takes its pose from the earliest window holding
    it. ``has_depth`` is True for this format only (z in channel 2).

Matching (``coco`` / ``openpose``): in every frame of a track, the detection with the highest
IoU with the track box wins if that IoU >= ``min_iou`` (ties: the first in file order). The
detection box is the file's ``box`` / ``bbox`` when given, otherwise the extent of its found
joints. Matching is per track, so two overlapping pedestrians can take the same detection.
``pab`` / ``pedgraph`` are keyed by pedestrian id: a frame is matched when the file has a pose
for it with at least one found joint.

**Fill rule** for frames without a match (they stay False in the mask): ``fill="interpolate"``
(default) -- each joint, all four channels, is linearly interpolated in frame number between
the nearest matched frames of the track in which that joint was found (score > 0 or non-zero
coordinates), and held constant (nearest such frame) before the first / after the last one;
a joint never found in the track is all zeros. ``"hold"``: the joint of the nearest earlier
such frame (the nearest later one at the start). ``"zero"``: zeros. Matched frames are never
altered, including their not-found joints.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import io as gf_io
from ...graphs import coco19
from .xml import clip

__all__ = [
    "POSE_FORMATS", "FILL_RULES", "MissingPosesError", "VideoDetections", "PoseSource",
    "read_coco_results", "read_openpose_frame", "read_openpose_video", "read_pab_poses",
    "read_pedgraph_sample", "read_pedgraph_video", "pab_to_frame_pixels", "to_coco19",
    "joint_observed", "box_iou", "match_detections", "fill_missing", "keypoint_boxes",
]

POSE_FORMATS: tuple[str, ...] = ("coco", "openpose", "pab", "pedgraph")
FILL_RULES: tuple[str, ...] = ("interpolate", "hold", "zero")
#: Side of the square crop the PedestrianActionBenchmark ran OpenPose on (``utils.img_pad``).
PAB_CROP_SIZE = 224

_OPENPOSE_FRAME = re.compile(r"(\d+)_keypoints\.json$")
_PEDGRAPH_NAME = re.compile(r"^(?:(set\d+)_)?(video_\d+)_pid_(.+)_fr_?(\d+)\.pkl$")


class MissingPosesError(FileNotFoundError):
    """No pose file (or no entry in a pose pickle) for a video; the message names the path."""


@dataclass
class VideoDetections:
    """All pose detections of one video, sorted by frame (stable).

    frames: (D,) int64; keypoints: (D, 19, 4) float32 [x_px, y_px, depth, score];
    boxes: (D, 4) float64 x1 y1 x2 y2 px (detection boxes, or keypoint extents); source: path.
    """

    frames: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    source: str


# ----------------------------------------------------------------------------------------------
# conversion to the 19 nodes


def joint_observed(keypoints: np.ndarray) -> np.ndarray:
    """(..., V, C>=3) -> (..., V) bool: the joint was found (score > 0 or x, y not both 0)."""
    return (keypoints[..., -1] > 0) | (keypoints[..., 0] != 0) | (keypoints[..., 1] != 0)


def to_coco19(raw: np.ndarray, source_names: tuple[str, ...]) -> np.ndarray:
    """Map keypoints of a named source order onto the 19 nodes, by joint name.

    raw: (P, K, 3) [x, y, score] or (P, K, 4) [x, y, depth, score] in the order ``source_names``.
    Returns (P, 19, 4) float32 [x, y, depth (0 if absent), score]. A node the source lacks
    (neck, mid-hip) is the midpoint of the two shoulders / hips with score = min of the two,
    or all zeros when either of them was not found.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 3 or raw.shape[1] != len(source_names) or raw.shape[2] not in (3, 4):
        raise ValueError(f"expected (P, {len(source_names)}, 3|4) keypoints, got {raw.shape}")
    if raw.shape[2] == 3:
        raw = np.concatenate([raw[..., :2], np.zeros_like(raw[..., :1]), raw[..., 2:]], axis=-1)
    idx = coco19.source_indices(source_names)
    out = raw[:, np.maximum(idx, 0)]  # (P, 19, 4); the -1 columns are replaced below
    for node, (a, b) in ((coco19.NECK, coco19.NECK_FROM), (coco19.MID_HIP, coco19.MID_HIP_FROM)):
        if idx[node] >= 0:
            continue
        ja, jb = out[:, a], out[:, b]
        both = joint_observed(ja) & joint_observed(jb)
        mid = np.concatenate([(ja[:, :3] + jb[:, :3]) / 2.0,
                              np.minimum(ja[:, 3:], jb[:, 3:])], axis=-1)
        out[:, node] = np.where(both[:, None], mid, 0.0)
    with np.errstate(over="ignore"):
        out32 = out.astype(np.float32)
    bad = ~np.isfinite(out32)
    if bad.any():  # checked after the cast: a finite float64 can be inf in float32
        idx = tuple(np.argwhere(bad)[0])
        i, v = int(idx[0]), out[idx]
        raise ValueError(f"detection {i}: keypoint value {v:g} is beyond the float32 range of the stored poses")
    return out32


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """(D, V, C) keypoints -> (D, 4) float64 x1 y1 x2 y2 extent of the found joints
    (all zeros for a detection without a found joint)."""
    obs = joint_observed(keypoints)
    x, y = keypoints[..., 0].astype(np.float64), keypoints[..., 1].astype(np.float64)
    boxes = np.stack([np.where(obs, x, np.inf).min(-1), np.where(obs, y, np.inf).min(-1),
                      np.where(obs, x, -np.inf).max(-1), np.where(obs, y, -np.inf).max(-1)], -1)
    return np.where(obs.any(-1)[:, None], boxes, 0.0) if len(boxes) else boxes.reshape(0, 4)


def _check_finite(values: np.ndarray, path: str | Path, what: str) -> None:
    """values: (D, ...) -> ValueError naming the first entry holding NaN/inf."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(-1)
    if bad.any():
        raise ValueError(f"{path}: {what} {int(np.flatnonzero(bad)[0])} has NaN or infinite coordinates")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32(values: np.ndarray, path: str | Path, what: str) -> None:
    """values: (D, ...) finite float64 -> ValueError naming the first entry holding a value that
    float32 (the dtype poses are stored in) cannot hold."""
    big = np.abs(values) > _FLOAT32_MAX
    if big.any():
        idx = tuple(np.argwhere(big)[0])
        raise ValueError(f"{path}: {what} {int(idx[0])} has the value {values[idx]:g}, "
                         "beyond the float32 range poses are stored in")


def _load_json(path: Path) -> Any:
    """Parsed JSON of ``path``; one-line ValueError naming it for non-UTF-8, malformed or too
    deeply nested content (:func:`graphfuse.io.read_json`)."""
    try:
        return gf_io.read_json(path)
    except FileNotFoundError as exc:
        raise MissingPosesError(f"pose file not found: {path}") from exc


def _numeric_rows(rows: list, path: str | Path, what: str, allowed: tuple[int, ...]) -> np.ndarray:
    """A list of equal-length number lists -> (D, L) float64, with errors naming the entry."""
    lengths = np.fromiter((len(r) if isinstance(r, (list, tuple, np.ndarray)) else -1 for r in rows),
                          np.int64, len(rows))
    bad = ~np.isin(lengths, allowed)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        got = f"{lengths[i]} keypoint values" if lengths[i] >= 0 else "no list of keypoint values"
        raise ValueError(f"{path}: {what} {i} has {got}; expected {' or '.join(map(str, allowed))}")
    if len(rows) and (lengths != lengths[0]).any():
        i = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(f"{path}: {what} {i} has {lengths[i]} keypoint values but {what} 0 has "
                         f"{lengths[0]}; all entries of a file must use the same keypoint set")
    if not len(rows):
        return np.zeros((0, allowed[0]), np.float64)
    try:
        arr = np.asarray([np.asarray(r, dtype=np.float64) for r in rows]) if isinstance(rows[0], np.ndarray) \
            else np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {what} keypoints are not all numbers ({exc})") from exc
    _check_finite(arr, path, what)
    _check_float32(arr, path, what)
    return arr


# ----------------------------------------------------------------------------------------------
# COCO keypoint results (AlphaPose / MMPose)


#: A frame number has at most this many digits (leading zeros aside): 10^9 frames are over
#: a year of 30 fps video, and the bound keeps ``int`` far from its digit limit and int64.
MAX_FRAME_DIGITS = 9
_MAX_FRAME = 10**MAX_FRAME_DIGITS - 1
_LAST_DIGITS_REVERSED = re.compile(r"\D*(\d+)")  # on the reversed stem: linear time, no backtracking blow-up


def _frame_number(image_id: Any) -> int | str:
    """Frame number of a COCO ``image_id`` (an int, or a file name whose stem's last run of
    digits is the frame), or the reason it is none: a negative number, more than
    :data:`MAX_FRAME_DIGITS` digits, no digits, another type."""
    if isinstance(image_id, (int, np.integer)) and not isinstance(image_id, bool):
        if image_id < 0:
            return "a frame number is never negative"
        if image_id > _MAX_FRAME:
            return f"a frame number has at most {MAX_FRAME_DIGITS} digits"
        return int(image_id)
    if isinstance(image_id, str):
        m = _LAST_DIGITS_REVERSED.match(Path(image_id).stem[::-1])
        if m:
            digits = m.group(1)[::-1].lstrip("0") or "0"
            if len(digits) > MAX_FRAME_DIGITS:
                return f"its frame number has more than {MAX_FRAME_DIGITS} digits"
            return int(digits)
    return "expected a frame number or an image file name ending in the frame number"


def _frame_numbers(ids: list, path: Path) -> np.ndarray:
    """(D,) int64 frame numbers of the entries' image ids (each distinct id parsed once)."""
    try:
        distinct = dict.fromkeys(ids)
    except TypeError:  # an unhashable id (a list, a dict) cannot be a frame
        distinct = dict.fromkeys(repr(v) if isinstance(v, (list, dict)) else v for v in ids)
        ids = [repr(v) if isinstance(v, (list, dict)) else v for v in ids]
    frame_of = {v: _frame_number(v) for v in distinct}
    bad = [v for v, f in frame_of.items() if isinstance(f, str)]
    if bad:
        raise ValueError(f"{path}: entry {ids.index(bad[0])} has image_id {clip(bad[0])}; {frame_of[bad[0]]}")
    return np.fromiter((frame_of[v] for v in ids), np.int64, len(ids))


def read_coco_results(path: str | Path) -> VideoDetections:
    """Read one video's COCO keypoint results JSON (see the module docstring).

    Returns the detections sorted by frame: keypoints (D, 19, 4) float32 with depth 0.
    Raises MissingPosesError (a FileNotFoundError) for a missing file and ValueError naming the
    file and entry for malformed JSON, a wrong keypoint count, NaN coordinates, a bad box.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a COCO keypoint results list, got {type(data).__name__}")
    if not all(isinstance(e, dict) and "keypoints" in e and "image_id" in e for e in data):
        i = next(i for i, e in enumerate(data)
                 if not (isinstance(e, dict) and "keypoints" in e and "image_id" in e))
        raise ValueError(f"{path}: entry {i} is not a keypoint result with 'image_id' and 'keypoints'")
    not_person = [i for i, e in enumerate(data) if e.get("category_id", 1) != 1]
    if not_person:
        raise ValueError(f"{path}: entry {not_person[0]} has category_id "
                         f"{data[not_person[0]]['category_id']!r}; only persons (1) are pose results")
    kp = _numeric_rows([e["keypoints"] for e in data], path, "entry", (51, 78))
    n = len(data)
    names = coco19.HALPE26_NAMES if kp.shape[1] == 78 else coco19.NAMES[:17]
    keypoints = to_coco19(kp.reshape(n, len(names), 3), names)
    frames = _frame_numbers([e["image_id"] for e in data], path)

    # The detector's box when the file has one ("box" in AlphaPose, "bbox" elsewhere).
    given = [e.get("box", e.get("bbox")) for e in data]
    has_box = np.array([b is not None for b in given], dtype=bool)
    boxes = keypoint_boxes(keypoints)
    if has_box.any():
        rows = [b for b in given if b is not None]
        lengths = np.fromiter((len(b) if isinstance(b, list) else -1 for b in rows), np.int64, len(rows))
        if (lengths != 4).any():
            i = int(np.flatnonzero(has_box)[np.flatnonzero(lengths != 4)[0]])
            raise ValueError(f"{path}: entry {i} has box {clip(given[i])}; expected [x, y, w, h]")
        try:
            xywh = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: a box is not four numbers ({exc})") from exc
        bad = ~np.isfinite(xywh).all(1)
        if bad.any():
            i = int(np.flatnonzero(has_box)[np.flatnonzero(bad)[0]])
            raise ValueError(f"{path}: entry {i} has a NaN or infinite box")
        with np.errstate(over="ignore"):
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        # Checked after the arithmetic: x + w of two finite values can overflow ([1e308, 0,
        # 1e308, 10]), and a corner beyond float32's range would be inf once stored as float32.
        bad = ~(np.abs(xyxy) <= _FLOAT32_MAX).all(1)
        if bad.any():
            i = int(np.flatnonzero(has_box)[np.flatnonzero(bad)[0]])
            raise ValueError(f"{path}: entry {i} has box {clip(given[i])}, whose corners (x1 y1 x2 y2 "
                             f"{xyxy[np.flatnonzero(bad)[0]].tolist()}) are not finite in float32")
        boxes[has_box] = xyxy
    order = np.argsort(frames, kind="stable")
    return VideoDetections(frames[order], keypoints[order], boxes[order], str(path))


# ----------------------------------------------------------------------------------------------
# OpenPose per-frame JSON


def read_openpose_frame(path: str | Path) -> np.ndarray:
    """One OpenPose ``*_keypoints.json`` -> (P, 19, 4) float32 (BODY_25 or COCO-18, by count)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ValueError(f"{path}: not an OpenPose keypoint file (no 'people' list)")
    people = data["people"]
    if not people:
        return np.zeros((0, coco19.NUM_NODES, 4), np.float32)
    if not all(isinstance(p, dict) and "pose_keypoints_2d" in p for p in people):
        i = next(i for i, p in enumerate(people) if not (isinstance(p, dict) and "pose_keypoints_2d" in p))
        raise ValueError(f"{path}: person {i} has no 'pose_keypoints_2d'")
    kp = _numeric_rows([p["pose_keypoints_2d"] for p in people], path, "person", (75, 54))
    names = coco19.BODY25_NAMES if kp.shape[1] == 75 else coco19.COCO18_NAMES
    return to_coco19(kp.reshape(len(people), -1, 3), names)


def read_openpose_video(directory: str | Path) -> VideoDetections:
    """All ``*_keypoints.json`` files of one video folder -> detections sorted by frame."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingPosesError(f"OpenPose folder not found: {directory}")
    names = sorted(n for n in os.listdir(directory) if n.endswith("_keypoints.json"))
    if not names:
        raise MissingPosesError(f"no *_keypoints.json files in {directory}")
    file_frames = []
    for name in names:
        m = _OPENPOSE_FRAME.search(name)
        if m is None:
            raise ValueError(f"{directory / name}: no frame number before '_keypoints.json'")
        frame = _frame_number(m.group(1))
        if isinstance(frame, str):
            raise ValueError(f"{directory / name}: {frame}")
        file_frames.append(frame)
    file_frames = np.asarray(file_frames, np.int64)
    uniq, counts = np.unique(file_frames, return_counts=True)
    if (counts > 1).any():
        dup = [n for n, f in zip(names, file_frames) if f == uniq[counts > 1][0]]
        raise ValueError(f"{directory}: several files for frame {uniq[counts > 1][0]}: {dup}")
    per_file = [read_openpose_frame(directory / name) for name in names]  # a loop over files
    keypoints = np.concatenate(per_file, axis=0)
    frames = np.repeat(file_frames, [len(k) for k in per_file])
    order = np.argsort(frames, kind="stable")
    return VideoDetections(frames[order], keypoints[order], keypoint_boxes(keypoints)[order],
                           str(directory))


# ----------------------------------------------------------------------------------------------
# PedestrianActionBenchmark pickles


def read_pab_poses(path: str | Path) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Read one PAB ``pose_setXX.pkl`` (restricted unpickler).

    Returns ``{video_id: {ped_id: (frames (K,) int64 sorted, raw (K, 18, 2) float64)}}`` with
    the raw values as stored (OpenPose COCO-18 order, normalised in the 224 crop; see the module
    docstring and :func:`pab_to_frame_pixels`).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPosesError(f"pose file not found: {path}")
    data = gf_io.restricted_load(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected {{video_id: {{'<frame>_<ped_id>': 36 values}}}}")
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for video_id, entries in data.items():  # a loop over the videos of a set file
        if not entries:
            out[str(video_id)] = {}
            continue
        keys = np.array([str(k) for k in entries.keys()], dtype=str)
        where = f"{path} [{video_id}]"
        values = _numeric_rows(list(entries.values()), where, "entry", (36,))
        parts = np.char.partition(keys, "_")
        stems, pids = parts[:, 0], parts[:, 2]
        ok = np.char.isdigit(stems) & (parts[:, 1] == "_") & (np.char.str_len(pids) > 0)
        if not ok.all():
            raise ValueError(f"{where}: key {keys[~ok][0]!r} is not '<frame>_<ped_id>'")
        frames = stems.astype(np.int64)
        uniq, inverse = np.unique(pids, return_inverse=True)
        order = np.lexsort((frames, inverse))
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        raw = values.reshape(-1, 18, 2)
        out[str(video_id)] = {str(pid): (frames[order[a:b]], raw[order[a:b]])
                              for pid, a, b in zip(uniq, bounds[:-1], bounds[1:])}
    return out


def pab_to_frame_pixels(raw: np.ndarray, boxes: np.ndarray, size: int = PAB_CROP_SIZE) -> np.ndarray:
    """Invert the PAB ``pad_resize`` crop: raw (F, 18, 2) in [0, 1] of the size x size crop of
    ``boxes`` (F, 4) x1 y1 x2 y2 px -> (F, 19, 4) float32 [x_px, y_px, 0, score in {0, 1}].

    Follows ``utils.img_pad(mode='pad_resize')``: the box is truncated to int, resized by
    ``size / max(w, h)`` to ``(int(w * r), int(h * r))`` and centred with offsets
    ``(size - rw) // 2``, ``(size - rh) // 2``; a crop pixel u maps back to
    ``x1 + (u - offset + 0.5) * w / rw - 0.5`` (cv2's pixel-centre convention).
    """
    raw = np.asarray(raw, np.float64)
    b = np.trunc(np.asarray(boxes, np.float64))
    cw, ch = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if (np.minimum(cw, ch) <= 0).any():
        raise ValueError(f"box {int(np.flatnonzero(np.minimum(cw, ch) <= 0)[0])} has no area: cannot "
                         "place PAB crop-normalised poses")
    ratio = size / np.maximum(cw, ch)
    rw, rh = np.floor(cw * ratio), np.floor(ch * ratio)
    off_x, off_y = (size - rw) // 2, (size - rh) // 2
    found = (raw != 0).any(-1)  # (F, 18)
    u, v = raw[..., 0] * size, raw[..., 1] * size
    x = b[:, :1] + (u - off_x[:, None] + 0.5) * (cw / rw)[:, None] - 0.5
    y = b[:, 1:2] + (v - off_y[:, None] + 0.5) * (ch / rh)[:, None] - 0.5
    pts = np.stack([np.where(found, x, 0.0), np.where(found, y, 0.0), found.astype(np.float64)], -1)
    return to_coco19(pts, coco19.COCO18_NAMES)


# ----------------------------------------------------------------------------------------------
# Pedestrian Graph+ per-sample pickles


def read_pedgraph_sample(path: str | Path) -> dict[str, Any]:
    """Read one PedGraph+ per-sample pickle (restricted: builtins, numpy, pathlib paths as str).

    Checks that ``kps`` is a finite (T, 19, 4) array; returns the dict with ``kps`` as float64.
    """
    path = Path(path)
    try:
        data = gf_io.restricted_load(path, paths_as_str=True)
    except FileNotFoundError as exc:
        raise MissingPosesError(f"pose file not found: {path}") from exc
    if not isinstance(data, dict) or "kps" not in data:
        raise ValueError(f"{path}: expected a PedGraph+ sample dict with 'kps'")
    kps = np.asarray(data["kps"])
    if kps.ndim != 3 or kps.shape[1:] != (coco19.NUM_NODES, 4) or not np.issubdtype(kps.dtype, np.number):
        raise ValueError(f"{path}: 'kps' has shape {kps.shape} ({kps.dtype}); expected (T, 19, 4) numbers")
    kps = kps.astype(np.float64)
    _check_finite(kps, path, "frame")
    _check_float32(kps, path, "frame")
    return {**data, "kps": kps}


def read_pedgraph_video(files: list[tuple[str, int, Path]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Merge the windows of one video: files = [(ped_id, first_frame, path)].

    Returns ``{ped_id: (frames (K,) int64 sorted unique, keypoints (K, 19, 4) float32)}``; a frame
    held by several windows takes the pose of the earliest window.
    """
    by_ped: dict[str, list[tuple[int, np.ndarray]]] = {}
    for ped_id, first, path in sorted(files, key=lambda f: (f[0], f[1])):  # a loop over files
        by_ped.setdefault(ped_id, []).append((first, read_pedgraph_sample(path)["kps"]))
    out = {}
    for ped_id, windows in by_ped.items():
        frames = np.concatenate([first + np.arange(len(k)) for first, k in windows])
        kps = np.concatenate([k for _, k in windows], axis=0)
        uniq, first_idx = np.unique(frames, return_index=True)  # first = earliest window
        out[ped_id] = (uniq.astype(np.int64), kps[first_idx].astype(np.float32))
    return out


# ----------------------------------------------------------------------------------------------
# matching and filling


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of (N, 4) and (N, 4) x1 y1 x2 y2 boxes -> (N,) float64 (0 when the union
    is empty). Continuous coordinates: area = (x2 - x1) * (y2 - y1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_detections(det_frames: np.ndarray, det_boxes: np.ndarray, frames: np.ndarray,
                     boxes: np.ndarray, min_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Best-IoU detection per track frame.

    det_frames: (D,) int64 sorted ascending; det_boxes: (D, 4); frames: (F,) int64; boxes: (F, 4)
    track boxes. Returns (index (F,) int64 into the detections, -1 where no detection of that
    frame reaches ``min_iou``; iou (F,) float64 of the best candidate, 0 without candidates).
    Ties go to the lower detection index.
    """
    det_frames = np.asarray(det_frames, np.int64)
    frames = np.asarray(frames, np.int64)
    lo = np.searchsorted(det_frames, frames, "left")
    hi = np.searchsorted(det_frames, frames, "right")
    counts = hi - lo
    owner = np.repeat(np.arange(len(frames)), counts)  # track frame of each candidate pair
    starts = np.cumsum(counts) - counts
    cand = lo[owner] + (np.arange(len(owner)) - starts[owner])
    iou = box_iou(np.asarray(boxes)[owner], np.asarray(det_boxes)[cand])
    order = np.lexsort((cand, -iou, owner))  # per owner: highest IoU first, then lowest index
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]] if len(order) else order
    best_iou = np.zeros(len(frames))
    best = np.full(len(frames), -1, np.int64)
    best_iou[owner[first]] = iou[first]
    best[owner[first]] = cand[first]
    best[best_iou < min_iou] = -1
    return best, best_iou


def fill_missing(frames: np.ndarray, poses: np.ndarray, mask: np.ndarray,
                 rule: str = "interpolate") -> np.ndarray:
    """Fill the unmatched frames of one track (see the module docstring for the rule).

    frames: (F,) int64 increasing; poses: (F, V, C) with score last; mask: (F,) bool matched.
    Returns a new (F, V, C) float32 array; rows with ``mask`` True are copied unchanged.
    """
    if rule not in FILL_RULES:
        raise ValueError(f"fill rule {rule!r} is not one of {FILL_RULES}")
    poses = np.asarray(poses, np.float32)
    mask = np.asarray(mask, bool)
    n, v = poses.shape[:2]
    if rule == "zero" or n == 0:
        return np.where(mask[:, None, None], poses, np.float32(0))
    valid = mask[:, None] & joint_observed(poses)  # (F, V) frames a joint may be filled from
    idx = np.arange(n)[:, None]
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, idx, n)[::-1], axis=0)[::-1]
    has_prev, has_next = prev >= 0, nxt < n
    p, q = np.clip(prev, 0, n - 1), np.clip(nxt, 0, n - 1)
    joints = np.arange(v)[None, :]
    before, after = poses[p, joints].astype(np.float64), poses[q, joints].astype(np.float64)
    if rule == "hold":
        filled = np.where(has_prev[..., None], before, after)
    else:
        t = np.asarray(frames, np.float64)
        span = t[q] - t[p]
        w = np.divide(t[:, None] - t[p], span, out=np.zeros_like(span), where=span > 0)
        w = np.where(has_prev & has_next, w, np.where(has_prev, 0.0, 1.0))
        filled = before + w[..., None] * (after - before)
    filled = np.where((has_prev | has_next)[..., None], filled, 0.0)
    return np.where(mask[:, None, None], poses, filled.astype(np.float32))


# ----------------------------------------------------------------------------------------------
# the source


class PoseSource:
    """Poses of pedestrian tracks from a pose root in one of :data:`POSE_FORMATS`.

    root: pose root (layouts in the module docstring); fmt: format; dataset: "pie" (set folders)
    or "jaad" (no set folders; "synthetic-pie" is laid out as PIE); min_iou: IoU threshold of a
    match (coco/openpose); fill: rule for unmatched frames (:data:`FILL_RULES`); cache_files:
    how many parsed pose files (videos, or PAB set files) are kept, so the many tracks of a
    video parse its file once.
    """

    def __init__(self, root: str | Path, fmt: str = "coco", dataset: str = "pie", min_iou: float = 0.3,
                 fill: str = "interpolate", cache_files: int = 2):
        if fmt not in POSE_FORMATS:
            raise ValueError(f"pose format {fmt!r} is not one of {POSE_FORMATS}")
        if dataset not in ("pie", "jaad", "synthetic-pie"):
            raise ValueError(f"dataset {dataset!r} is not 'pie', 'jaad' or 'synthetic-pie'")
        if fill not in FILL_RULES:
            raise ValueError(f"fill rule {fill!r} is not one of {FILL_RULES}")
        if not 0.0 <= min_iou <= 1.0:
            raise ValueError(f"min_iou must be in [0, 1], got {min_iou}")
        self.root = Path(root)
        self.fmt = fmt
        self.dataset = dataset
        self.min_iou = float(min_iou)
        self.fill = fill
        self.has_depth = fmt == "pedgraph"
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._cache_size = max(1, int(cache_files))
        self._pedgraph_index: dict[tuple[str, str], list[tuple[str, int, Path]]] | None = None

    @property
    def _with_sets(self) -> bool:
        return self.dataset != "jaad"

    def video_path(self, set_id: str | None, video_id: str) -> Path:
        """The pose file or folder of a video (for PAB: the set file; pedgraph: the sample folder)."""
        if self._with_sets and not set_id:
            raise ValueError(f"a set id is needed for {self.dataset} poses (video {video_id})")
        base = self.root / set_id if self._with_sets and self.fmt in ("coco", "openpose") else self.root
        if self.fmt == "coco":
            return base / f"{video_id}.json"
        if self.fmt == "openpose":
            return base / video_id
        if self.fmt == "pab":
            return self.root / f"pose_{set_id if self._with_sets else 'set01'}.pkl"
        return self._pedgraph_dir()

    def _cached(self, key: Any, load) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = load()
        self._cache[key] = value
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def video_detections(self, set_id: str | None, video_id: str) -> VideoDetections:
        """All detections of a video (coco / openpose formats), parsed once and cached."""
        if self.fmt not in ("coco", "openpose"):
            raise ValueError(f"video_detections is for the coco/openpose formats, not {self.fmt!r}")
        path = self.video_path(set_id, video_id)
        reader = read_coco_results if self.fmt == "coco" else read_openpose_video
        return self._cached(path, lambda: reader(path))

    def _pedgraph_dir(self) -> Path:
        return self.root / "data" if (self.root / "data").is_dir() else self.root

    def _pedgraph_files(self, set_id: str | None, video_id: str) -> list[tuple[str, int, Path]]:
        if self._pedgraph_index is None:
            directory = self._pedgraph_dir()
            if not directory.is_dir():
                raise MissingPosesError(f"PedGraph+ sample folder not found: {directory}")
            index: dict[tuple[str, str], list[tuple[str, int, Path]]] = {}
            for name in os.listdir(directory):  # a loop over files
                m = _PEDGRAPH_NAME.match(name)
                if m:
                    key = (m.group(1) or "", m.group(2))
                    index.setdefault(key, []).append((m.group(3), int(m.group(4)), directory / name))
            self._pedgraph_index = index
        key = ((set_id or "") if self._with_sets else "", video_id)
        files = self._pedgraph_index.get(key)
        if not files:
            where = f"{set_id}_{video_id}" if self._with_sets else video_id
            raise MissingPosesError(f"no PedGraph+ samples '{where}_pid_*.pkl' in {self._pedgraph_dir()}")
        return files

    def _keyed_track(self, set_id: str | None, video_id: str,
                     ped_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(frames, raw poses) of a pedestrian in the pab / pedgraph formats, None if absent."""
        if self.fmt == "pab":
            path = self.video_path(set_id, video_id)
            videos = self._cached(path, lambda: read_pab_poses(path))
            if video_id not in videos:
                raise MissingPosesError(f"{path}: no poses for video {video_id}")
            return videos[video_id].get(ped_id)
        files = self._pedgraph_files(set_id, video_id)
        peds = self._cached(("pedgraph", set_id, video_id), lambda: read_pedgraph_video(files))
        return peds.get(ped_id)

    def track_poses(self, set_id: str | None, video_id: str, ped_id: str, frames: np.ndarray,
                    boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses of one pedestrian track.

        frames: (F,) int64 increasing; boxes: (F, 4) x1 y1 x2 y2 px (the track's boxes).
        Returns (poses (F, 19, 4) float32 [x_px, y_px, depth (0 unless ``has_depth``), score],
        mask (F,) bool True where a detection matched). Unmatched frames are filled by
        ``self.fill``. Raises MissingPosesError (FileNotFoundError) when the video has no pose
        file, ValueError for bad input.
        """
        frames = np.asarray(frames)
        boxes = np.asarray(boxes, np.float64)
        where = f"{set_id}/{video_id}/{ped_id}" if self._with_sets else f"{video_id}/{ped_id}"
        if frames.ndim != 1 or not np.issubdtype(frames.dtype, np.integer):
            raise ValueError(f"{where}: frames must be (F,) integers, got {frames.shape} {frames.dtype}")
        if boxes.shape != (len(frames), 4) or not np.isfinite(boxes).all():
            raise ValueError(f"{where}: boxes must be finite (F, 4) = ({len(frames)}, 4), got {boxes.shape}")
        if len(frames) > 1 and (np.diff(frames) <= 0).any():
            raise ValueError(f"{where}: frames must be strictly increasing")
        frames = frames.astype(np.int64)
        poses = np.zeros((len(frames), coco19.NUM_NODES, 4), np.float32)
        mask = np.zeros(len(frames), bool)
        if self.fmt in ("coco", "openpose"):
            det = self.video_detections(set_id, video_id)
            best, _ = match_detections(det.frames, det.boxes, frames, boxes, self.min_iou)
            mask = best >= 0
            poses[mask] = det.keypoints[best[mask]]
        else:
            track = self._keyed_track(set_id, video_id, ped_id)
            if track is not None:
                src_frames, src = track
                pos = np.clip(np.searchsorted(src_frames, frames), 0, max(len(src_frames) - 1, 0))
                present = (src_frames[pos] == frames) if len(src_frames) else np.zeros(len(frames), bool)
                if present.any():
                    if self.fmt == "pab":
                        try:
                            got = pab_to_frame_pixels(src[pos[present]], boxes[present])
                        except ValueError as exc:
                            raise ValueError(f"{self.video_path(set_id, video_id)}: {where}: {exc}") from None
                    else:
                        got = src[pos[present]]
                    poses[present] = got
                    mask = present.copy()
                    mask[present] = joint_observed(got).any(-1)
                    poses[~mask] = 0.0
        return fill_missing(frames, poses, mask, self.fill), mask
