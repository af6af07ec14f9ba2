"""Readers of the original JAAD 2.0 annotation XML (numpy only, no torch).

Semantics follow the official interface ``jaad_data.py`` (ykotseruba/JAAD, MIT):
``_get_annotations``, ``_get_ped_attributes``, ``_get_ped_appearance``,
``_get_traffic_attributes``, ``_get_vehicle_attributes`` and ``_get_video_ids_split``.
In particular: every box is kept (JAAD's reader does not filter ``outside``); behaviour
labels exist only for tracks whose ``old_id`` contains ``pedestrian``; attribute values that
parse as int are ints, others are mapped through :data:`JAAD_LABEL_MAP`; pedestrian ids with
``b`` are behaviour-annotated, ids with ``p`` are groups of people (``get_data_stats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .xml import (bounded, check_boxes, child_attribute_texts, child_texts, describe, map_labels,
                  parse_xml, required_attrs, required_int, required_text, scalar_attr, to_float,
                  to_int)

#: Text -> scalar maps of ``jaad_data.py::_map_text_to_scalar``.
JAAD_LABEL_MAP: dict[str, dict[str, int]] = {
    "occlusion": {"none": 0, "part": 1, "full": 2},
    "action": {"standing": 0, "walking": 1},
    "nod": {"__undefined__": 0, "nodding": 1},
    "look": {"not-looking": 0, "looking": 1},
    "hand_gesture": {"__undefined__": 0, "greet": 1, "yield": 2, "rightofway": 3, "other": 4},
    "reaction": {"__undefined__": 0, "clear_path": 1, "speed_up": 2, "slow_down": 3},
    "cross": {"not-crossing": 0, "crossing": 1, "irrelevant": -1},
    "age": {"child": 0, "young": 1, "adult": 2, "senior": 3},
    "designated": {"ND": 0, "D": 1},
    "gender": {"n/a": 0, "female": 1, "male": 2},
    "intersection": {"no": 0, "yes": 1},
    "motion_direction": {"n/a": 0, "LAT": 1, "LONG": 2},
    "traffic_direction": {"OW": 0, "TW": 1},
    "signalized": {"n/a": 0, "NS": 1, "S": 2},
    "vehicle": {"stopped": 0, "moving_slow": 1, "moving_fast": 2, "decelerating": 3,
                "accelerating": 4},
    "road_type": {"street": 0, "parking_lot": 1, "garage": 2},
    "traffic_light": {"n/a": 0, "red": 1, "green": 2},
}
#: Per-frame behaviour labels of behaviour-annotated ('pedestrian') tracks.
JAAD_BEHAVIOR_KEYS: tuple[str, ...] = ("cross", "reaction", "hand_gesture", "look", "action", "nod")
#: Appearance labels of ``_get_ped_appearance``.
JAAD_APPEARANCE_KEYS: tuple[str, ...] = (
    "pose_front", "pose_back", "pose_left", "pose_right", "clothes_below_knee",
    "clothes_upper_light", "clothes_upper_dark", "clothes_lower_light", "clothes_lower_dark",
    "backpack", "bag_hand", "bag_elbow", "bag_shoulder", "bag_left_side", "bag_right_side",
    "cap", "hood", "sunglasses", "umbrella", "phone", "baby", "object", "stroller_cart",
    "bicycle_motorcycle",
)
JAAD_SUBSETS: tuple[str, ...] = ("default", "all_videos", "high_visibility")
JAAD_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class JAADTrack:
    """One pedestrian track of a JAAD video.

    frames: (F,) int64; boxes: (F, 4) float64 x1 y1 x2 y2 in pixels; occlusion: (F,) int64
    (none/part/full -> 0/1/2); behavior: name -> (F,) int64 (empty unless ``old_id`` contains
    'pedestrian'); attributes: the ``annotations_attributes`` entry ({} when absent, as the
    official reader); appearance: name -> (A,) int64 plus 'frames' ({} when absent).
    """

    ped_id: str
    old_id: str
    label: str
    frames: np.ndarray
    boxes: np.ndarray
    occlusion: np.ndarray
    behavior: dict[str, np.ndarray] = field(default_factory=dict)
    attributes: dict[str, int | str] = field(default_factory=dict)
    appearance: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def is_behavioral(self) -> bool:
        """Behaviour-annotated pedestrian: official test ``'b' in pid``."""
        return "b" in self.ped_id

    @property
    def is_group(self) -> bool:
        """Group of people ('people' label): official test ``'p' in pid``."""
        return "p" in self.ped_id


@dataclass
class JAADVideo:
    """All annotations of one JAAD video.

    vehicle_frames / vehicle_action: (Fv,) int64, the ego action per frame
    (stopped/moving_slow/moving_fast/decelerating/accelerating -> 0..4; JAAD has no speed).
    traffic: 'frames', 'ped_crossing', 'ped_sign', 'stop_sign', 'traffic_light' -> (Ft,) int64.
    """

    video_id: str
    num_frames: int
    width: int
    height: int
    video_attributes: dict[str, str]
    tracks: dict[str, JAADTrack]
    vehicle_frames: np.ndarray | None = None
    vehicle_action: np.ndarray | None = None
    road_type: int | None = None
    traffic: dict[str, np.ndarray] = field(default_factory=dict)

    def pedestrians(self, sample_type: str = "all") -> dict[str, JAADTrack]:
        """Tracks used for sequences: 'beh' keeps ids with 'b' (JAAD_beh); 'all' keeps every
        track except groups ('p'), as the benchmark's JAAD_all."""
        if sample_type not in ("beh", "all"):
            raise ValueError(f"sample_type must be 'beh' or 'all', got {sample_type!r}")
        if sample_type == "beh":
            return {k: t for k, t in self.tracks.items() if t.is_behavioral}
        return {k: t for k, t in self.tracks.items() if not t.is_group}


def read_jaad_annotations(path: str | Path) -> JAADVideo:
    """Parse ``annotations/video_XXXX.xml`` (tracks only; other folders left empty)."""
    path = Path(path)
    root = parse_xml(path)
    num_frames = required_int(root, "./meta/task/size", path)
    width = required_int(root, "./meta/task/original_size/width", path, minimum=1)
    height = required_int(root, "./meta/task/original_size/height", path, minimum=1)
    va = root.find("./meta/task/video_attributes")
    video_attributes = child_texts(va, path, "<video_attributes>") if va is not None else {}
    tracks: dict[str, JAADTrack] = {}
    for ti, t in enumerate(root.findall("./track")):
        label = bounded(t.get("label", ""), path, f"track #{ti}", "label")
        boxes = t.findall("./box")
        if not boxes:
            raise ValueError(f"{path}: track #{ti} (label {label!r}) has no boxes")
        ids = child_attribute_texts(boxes[:1], ("id", "old_id"), path, f"track #{ti}")
        ped_id, old_id = ids["id"][0], ids["old_id"][0]
        what = f"track {ped_id!r}"
        if ped_id in tracks:
            raise ValueError(f"{path}: duplicate track id {ped_id!r}")
        rows = required_attrs(boxes, ("frame", "xtl", "ytl", "xbr", "ybr"), path, what)
        arr = np.asarray(rows, dtype=str)
        frames = to_int(arr[:, 0], path, what)
        xyxy = to_float(arr[:, 1:], path, what)
        check_boxes(xyxy, frames, path, what)
        beh_keys = JAAD_BEHAVIOR_KEYS if "pedestrian" in old_id else ()
        texts = child_attribute_texts(boxes, ("occlusion",) + beh_keys, path, what)
        occ = map_labels(texts["occlusion"], JAAD_LABEL_MAP["occlusion"], path, what + " occlusion")
        behavior = {k: map_labels(texts[k], JAAD_LABEL_MAP[k], path, f"{what} {k}") for k in beh_keys}
        tracks[ped_id] = JAADTrack(ped_id, old_id, label, frames, xyxy, occ, behavior)
    return JAADVideo(path.stem, num_frames, width, height, video_attributes, tracks)


def read_jaad_attributes(path: str | Path) -> dict[str, dict[str, int | str]]:
    """Parse ``annotations_attributes/video_XXXX_attributes.xml``: ped id -> attributes.

    Values as the official reader: 'old_id' kept as str, ints where they parse (crossing,
    crossing_point, decision_point, num_lanes, group_size), text labels mapped."""
    path = Path(path)
    root = parse_xml(path)
    out: dict[str, dict[str, int | str]] = {}
    for p in root.findall("./pedestrian"):
        pid = bounded(p.get("id"), path, "<pedestrian>", "id")
        if pid is None:
            raise ValueError(f"{path}: {describe(p)} without id")
        d: dict[str, int | str] = {
            "old_id": bounded(p.get("old_id", ""), path, f"pedestrian {pid!r}", "old_id")}
        for k, v in p.items():
            if "id" in k:
                continue
            d[k] = scalar_attr(v, k, JAAD_LABEL_MAP, path, f"pedestrian {pid!r}")
        out[pid] = d
    return out


def read_jaad_appearance(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Parse ``annotations_appearance/video_XXXX_appearance.xml``: ped id -> 'frames' and the
    24 :data:`JAAD_APPEARANCE_KEYS`, each (A,) int64 (the official reader keeps strings)."""
    path = Path(path)
    root = parse_xml(path)
    names = ("frame",) + JAAD_APPEARANCE_KEYS
    out: dict[str, dict[str, np.ndarray]] = {}
    for ti, t in enumerate(root.findall("./track")):
        pid = bounded(t.get("id"), path, f"appearance track #{ti}", "id")
        if pid is None:
            raise ValueError(f"{path}: appearance track #{ti} without id")
        what = f"appearance track {pid!r}"
        boxes = t.findall("./box")
        arr = np.asarray(required_attrs(boxes, names, path, what), dtype=str).reshape(-1, len(names))
        vals = to_int(arr, path, what)
        d = {"frames": vals[:, 0]}
        d.update({k: vals[:, i + 1] for i, k in enumerate(JAAD_APPEARANCE_KEYS)})
        out[pid] = d
    return out


def read_jaad_traffic(path: str | Path) -> tuple[int, dict[str, np.ndarray]]:
    """Parse ``annotations_traffic/video_XXXX_traffic.xml``.

    Returns (road_type, arrays): 'frames', 'ped_crossing', 'ped_sign', 'stop_sign',
    'traffic_light' (n/a/red/green -> 0/1/2), each (Ft,) int64."""
    path = Path(path)
    root = parse_xml(path)
    road = required_text(root, "./road_type", path)
    road_type = int(map_labels([road], JAAD_LABEL_MAP["road_type"], path, "road_type")[0])
    names = ("id", "ped_crossing", "ped_sign", "stop_sign", "traffic_light")
    arr = np.asarray(required_attrs(root.findall("./frame"), names, path, "traffic"),
                     dtype=str).reshape(-1, len(names))
    ints = to_int(arr[:, :4], path, "traffic")
    tl = map_labels(arr[:, 4].tolist(), JAAD_LABEL_MAP["traffic_light"], path, "traffic_light")
    return road_type, {"frames": ints[:, 0], "ped_crossing": ints[:, 1], "ped_sign": ints[:, 2],
                       "stop_sign": ints[:, 3], "traffic_light": tl}


def read_jaad_vehicle(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``annotations_vehicle/video_XXXX_vehicle.xml`` -> (frames (Fv,), action (Fv,))."""
    path = Path(path)
    root = parse_xml(path)
    arr = np.asarray(required_attrs(root.findall("./frame"), ("id", "action"), path, "vehicle"),
                     dtype=str).reshape(-1, 2)
    return to_int(arr[:, 0], path, "vehicle"), map_labels(
        arr[:, 1].tolist(), JAAD_LABEL_MAP["vehicle"], path, "vehicle action")


def read_jaad_video(root: str | Path, video_id: str) -> JAADVideo:
    """Read all five annotation folders of one video under the JAAD root (all required),
    merging attributes and appearance into the tracks as ``generate_database`` does."""
    root = Path(root)
    video = read_jaad_annotations(root / "annotations" / f"{video_id}.xml")
    attrs = read_jaad_attributes(root / "annotations_attributes" / f"{video_id}_attributes.xml")
    app = read_jaad_appearance(root / "annotations_appearance" / f"{video_id}_appearance.xml")
    video.road_type, video.traffic = read_jaad_traffic(
        root / "annotations_traffic" / f"{video_id}_traffic.xml")
    video.vehicle_frames, video.vehicle_action = read_jaad_vehicle(
        root / "annotations_vehicle" / f"{video_id}_vehicle.xml")
    for pid, track in video.tracks.items():
        track.attributes = attrs.get(pid, {})
        track.appearance = app.get(pid, {})
    return video


def read_jaad_split(root: str | Path, split: str, subset: str = "default") -> list[str]:
    """Video ids of ``split_ids/<subset>/<split>.txt``; split 'all' concatenates
    train, val and test as ``_get_video_ids_split`` does."""
    if subset not in JAAD_SUBSETS:
        raise ValueError(f"unknown JAAD subset {subset!r}; expected one of {JAAD_SUBSETS}")
    if split == "all":
        return [v for s in JAAD_SPLITS for v in read_jaad_split(root, s, subset)]
    if split not in JAAD_SPLITS:
        raise ValueError(f"unknown JAAD split {split!r}; expected one of {JAAD_SPLITS} or 'all'")
    path = Path(root) / "split_ids" / subset / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"JAAD split file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
