"""Readers of the original PIE annotation XML (numpy only, no torch).

Semantics follow the official interface ``utilities/pie_data.py`` (aras62/PIE, MIT):
``_get_annotations`` drops boxes with ``outside="1"``; pedestrian occlusion comes from the
``occlusion`` attribute (none/part/full -> 0/1/2), other objects' from ``occluded``;
attributes parse as int (``intention_prob`` as float) or are mapped through
:data:`PIE_LABEL_MAP`; OBD frames hold floats. Default splits by set follow
``_get_image_set_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .xml import (bounded, check_boxes, child_attribute_texts, describe, map_labels, parse_xml,
                  required_attrs, required_int, scalar_attr, to_float, to_int)

#: Text -> scalar maps of ``pie_data.py::_map_text_to_scalar``.
PIE_LABEL_MAP: dict[str, dict[str, int]] = {
    "occlusion": {"none": 0, "part": 1, "full": 2},
    "action": {"standing": 0, "walking": 1},
    "look": {"not-looking": 0, "looking": 1},
    "gesture": {"__undefined__": 0, "hand_ack": 1, "hand_yield": 2, "hand_rightofway": 3,
                "nod": 4, "other": 5},
    "cross": {"not-crossing": 0, "crossing": 1, "crossing-irrelevant": -1},
    "crossing": {"not-crossing": 0, "crossing": 1, "irrelevant": -1},
    "age": {"child": 0, "young": 1, "adult": 2, "senior": 3},
    "designated": {"ND": 0, "D": 1},
    "motion_direction": {"n/a": 0, "LAT": 1, "LONG": 2},
    "gender": {"n/a": 0, "female": 1, "male": 2},
    "signalized": {"n/a": 0, "C": 1, "S": 2, "CS": 3},
    "traffic_direction": {"OW": 0, "TW": 1},
    "intersection": {"midblock": 0, "T": 1, "T-left": 2, "T-right": 3, "four-way": 4},
    "vehicle_type": {"car": 0, "truck": 1, "bus": 2, "train": 3, "bicycle": 4, "bike": 5},
    "sign_type": {"ped_blue": 0, "ped_yellow": 1, "ped_white": 2, "ped_text": 3,
                  "stop_sign": 4, "bus_stop": 5, "train_stop": 6, "construction": 7, "other": 8},
    "traffic_light_type": {"regular": 0, "transit": 1, "pedestrian": 2},
    "traffic_light_state": {"__undefined__": 0, "red": 1, "yellow": 2, "green": 3},
}
PIE_BEHAVIOR_KEYS: tuple[str, ...] = ("gesture", "look", "action", "cross")
#: Default split by set (``_get_image_set_ids``).
PIE_SPLIT_SETS: dict[str, tuple[str, ...]] = {
    "train": ("set01", "set02", "set04"),
    "val": ("set05", "set06"),
    "test": ("set03",),
    "all": ("set01", "set02", "set03", "set04", "set05", "set06"),
}


@dataclass
class PIETrack:
    """One annotated object track (boxes with outside=1 removed).

    frames: (F,) int64; boxes: (F, 4) float64 x1 y1 x2 y2; occlusion: (F,) int64 (pedestrians:
    0/1/2 from 'occlusion'; others: 0/1 from 'occluded'); behavior (pedestrians):
    gesture/look/action/cross -> (F,) int64 (cross: 0/1/-1); state (traffic lights): (F,)
    int64; obj_type: mapped 'type' or None; attributes: pedestrian attributes ({} if absent).
    """

    obj_id: str
    obj_class: str
    frames: np.ndarray
    boxes: np.ndarray
    occlusion: np.ndarray
    behavior: dict[str, np.ndarray] = field(default_factory=dict)
    obj_type: int | None = None
    state: np.ndarray | None = None
    attributes: dict[str, int | float] = field(default_factory=dict)


@dataclass
class PIEVideo:
    """One PIE video: pedestrian tracks, traffic-object tracks and ego-vehicle OBD.

    obd: 'frames' -> (Fo,) int64 and every OBD field (OBD_speed, GPS_speed in km/h,
    heading_angle, latitude, longitude, yaw, pitch, roll, accX.., gyroX..) -> (Fo,) float64.
    """

    set_id: str
    video_id: str
    num_frames: int
    width: int
    height: int
    pedestrians: dict[str, PIETrack]
    traffic: dict[str, PIETrack]
    obd: dict[str, np.ndarray] = field(default_factory=dict)

    def ego_at(self, key: str, frames: np.ndarray) -> np.ndarray:
        """OBD field ``key`` at ``frames`` (any shape); missing frames raise ValueError."""
        if key not in self.obd or key == "frames":
            raise KeyError(f"{self.set_id}/{self.video_id}: no OBD field {key!r}")
        ofr = self.obd["frames"]
        order = np.argsort(ofr, kind="stable")
        frames = np.asarray(frames)
        pos = np.clip(np.searchsorted(ofr, frames, sorter=order), 0, len(ofr) - 1)
        idx = order[pos]
        if not np.array_equal(ofr[idx], frames):
            missing = frames[ofr[idx] != frames]
            raise ValueError(f"{self.set_id}/{self.video_id}: OBD lacks frame(s) {missing[:5].tolist()}")
        return self.obd[key][idx]


def read_pie_annotations(path: str | Path, set_id: str = "", video_id: str = "") -> PIEVideo:
    """Parse ``annotations/setXX/video_XXXX_annt.xml`` (tracks only)."""
    path = Path(path)
    root = parse_xml(path)
    num_frames = required_int(root, "./meta/task/size", path)
    width = required_int(root, "./meta/task/original_size/width", path, minimum=1)
    height = required_int(root, "./meta/task/original_size/height", path, minimum=1)
    peds: dict[str, PIETrack] = {}
    traffic: dict[str, PIETrack] = {}
    for ti, t in enumerate(root.findall("./track")):
        label = bounded(t.get("label"), path, f"track #{ti}", "label")
        boxes = t.findall("./box")
        if label is None or not boxes:
            raise ValueError(f"{path}: track #{ti} lacks a label or boxes")
        obj_id = child_attribute_texts(boxes[:1], ("id",), path, f"track #{ti}")["id"][0]
        what = f"{label} track {obj_id!r}"
        if obj_id in peds or obj_id in traffic:
            raise ValueError(f"{path}: duplicate track id {obj_id!r}")
        names = ("frame", "outside", "occluded", "xtl", "ytl", "xbr", "ybr")
        arr = np.asarray(required_attrs(boxes, names, path, what), dtype=str)
        inside = to_int(arr[:, 1], path, what) != 1  # official: skip outside == 1
        arr = arr[inside]
        kept = [b for b, k in zip(boxes, inside.tolist()) if k]
        frames = to_int(arr[:, 0], path, what)
        xyxy = to_float(arr[:, 3:], path, what).reshape(-1, 4)
        check_boxes(xyxy, frames, path, what)
        if label == "pedestrian":
            texts = child_attribute_texts(kept, ("occlusion",) + PIE_BEHAVIOR_KEYS, path, what)
            occ = map_labels(texts["occlusion"], PIE_LABEL_MAP["occlusion"], path, what + " occlusion")
            beh = {k: map_labels(texts[k], PIE_LABEL_MAP[k], path, f"{what} {k}")
                   for k in PIE_BEHAVIOR_KEYS}
            peds[obj_id] = PIETrack(obj_id, label, frames, xyxy, occ, beh)
        else:
            type_el = boxes[0].find("./attribute[@name='type']")
            obj_type = None
            if type_el is not None:
                table = PIE_LABEL_MAP.get(label + "_type")
                if table is None:
                    raise ValueError(f"{path}: {what}: no type map for label {label!r}")
                obj_type = int(map_labels([type_el.text or ""], table, path, what + " type")[0])
            state = None
            if label == "traffic_light":
                st = child_attribute_texts(kept, ("state",), path, what)["state"]
                state = map_labels(st, PIE_LABEL_MAP["traffic_light_state"], path, what + " state")
            occ = to_int(arr[:, 2], path, what)
            traffic[obj_id] = PIETrack(obj_id, label, frames, xyxy, occ, {}, obj_type, state)
    return PIEVideo(set_id, video_id or path.stem.removesuffix("_annt"), num_frames, width,
                    height, peds, traffic)


def read_pie_attributes(path: str | Path) -> dict[str, dict[str, int | float]]:
    """Parse ``annotations_attributes/setXX/video_XXXX_attributes.xml``: ped id -> attributes
    (crossing 1/0/-1, crossing_point, critical_point, exp_start_point, intention_prob float,
    age, gender, intersection, num_lanes, signalized, traffic_direction, ...)."""
    path = Path(path)
    root = parse_xml(path)
    out: dict[str, dict[str, int | float]] = {}
    for p in root.findall("./pedestrian"):
        pid = bounded(p.get("id"), path, "<pedestrian>", "id")
        if pid is None:
            raise ValueError(f"{path}: {describe(p)} without id")
        out[pid] = {k: scalar_attr(v, k, PIE_LABEL_MAP, path, f"pedestrian {pid!r}",
                                   float_keys=("intention_prob",),
                                   float_ranges={"intention_prob": (0.0, 1.0)})
                    for k, v in p.items() if "id" not in k}
    return out


def read_pie_obd(path: str | Path) -> dict[str, np.ndarray]:
    """Parse ``annotations_vehicle/setXX/video_XXXX_obd.xml``: 'frames' (Fo,) int64 and each
    field (Fo,) float64. Every frame must carry the same fields as the first, and every value
    must be finite (a ValueError names the file, frame and field otherwise)."""
    path = Path(path)
    root = parse_xml(path)
    frames = root.findall("./frame")
    if not frames:
        raise ValueError(f"{path}: no <frame> elements")
    keys = [k for k in frames[0].attrib if k != "id"]
    arr = np.asarray(required_attrs(frames, ["id"] + keys, path, "obd"), dtype=str)
    out = {"frames": to_int(arr[:, 0], path, "obd frame id")}
    vals = to_float(arr[:, 1:], path, "obd")
    finite = np.isfinite(vals)
    if not finite.all():  # 'nan', 'inf', '1e400': sensor values must be numbers
        r, c = np.argwhere(~finite)[0]
        raise ValueError(f"{path}: frame {int(out['frames'][r])}: {keys[c]} is {arr[r, 1 + c]!r}, "
                         "not a finite number")
    out.update({k: vals[:, i] for i, k in enumerate(keys)})
    return out


def read_pie_video(root: str | Path, set_id: str, video_id: str) -> PIEVideo:
    """Read annotations, attributes and OBD (all required) of ``set_id/video_id`` under the
    PIE root, attaching attributes to pedestrians as ``generate_database`` does."""
    root = Path(root)
    video = read_pie_annotations(root / "annotations" / set_id / f"{video_id}_annt.xml",
                                 set_id, video_id)
    attrs = read_pie_attributes(
        root / "annotations_attributes" / set_id / f"{video_id}_attributes.xml")
    video.obd = read_pie_obd(root / "annotations_vehicle" / set_id / f"{video_id}_obd.xml")
    missing = sorted(set(video.pedestrians) - set(attrs))
    if missing:  # the official generate_database fails on these too (KeyError)
        raise ValueError(f"{root / 'annotations_attributes' / set_id / (video_id + '_attributes.xml')}: "
                         f"no <pedestrian> entry for annotated pedestrian(s) {missing[:5]}")
    for pid, track in video.pedestrians.items():
        track.attributes = attrs[pid]
    return video


def pie_split_videos(root: str | Path, split: str) -> list[tuple[str, str]]:
    """(set_id, video_id) pairs of the default split found under ``root/annotations``.

    Sets absent on disk raise FileNotFoundError, so a partial download is never silently
    treated as the full split."""
    if split not in PIE_SPLIT_SETS:
        raise ValueError(f"unknown PIE split {split!r}; expected one of {sorted(PIE_SPLIT_SETS)}")
    out: list[tuple[str, str]] = []
    for s in PIE_SPLIT_SETS[split]:
        d = Path(root) / "annotations" / s
        if not d.is_dir():
            raise FileNotFoundError(f"PIE set folder not found: {d}")
        out += [(s, f.name.removesuffix("_annt.xml")) for f in sorted(d.glob("video_*_annt.xml"))]
    return out
