"""Valid seed files of every reader, made once per process (cached).

Seeds are small on purpose (a few frames, boxes or tracks): a byte flip or a truncation then
lands in a count, a header or a closing tag often enough to matter, and each example runs in
milliseconds. They come from the real annotation files in ``tests/data/intention/data``
(shrunk: the first tracks, boxes and frames) and from the synthetic generators through the
project's own writers (``write_skeleton`` / ``format_skeleton``, the synthetic PIE pose JSON).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

INTENTION_DATA = Path(__file__).resolve().parents[1] / "data" / "intention" / "data"


# ---------------------------------------------------------------------------------------------
# .skeleton


@functools.cache
def skeleton() -> bytes:
    """A synthetic two-person NTU sample cut to 3 frames with both bodies plus an empty 4th, written by the
    project's writer (CRLF, ``%.7g`` like the dataset)."""
    from graphfuse.data.ntu.reader import FLOAT_KINECT, format_skeleton, make_sequence
    from graphfuse.data.synthetic.ntu import synthesize_sample

    full = synthesize_sample("S001C001P001R001A010", seed=0).to_sequence("seed.skeleton")
    # Three frames with both bodies (the file starts with empty frames), renumbered 0..2.
    counts = full.bodies_per_frame
    frames = np.flatnonzero(counts == counts.max())[:3]
    keep = np.isin(full.body_frame, frames)
    fields = {name: getattr(full, name)[keep] for name in (
        "clipped_edges", "hand_left_confidence", "hand_left_state", "hand_right_confidence",
        "hand_right_state", "is_restricted", "lean", "tracking_state", "depth_xy", "color_xy",
        "orientation", "joint_tracking_state")}
    seq = make_sequence(4, np.searchsorted(frames, full.body_frame[keep]), full.xyz[keep],
                        body_id=full.body_id[keep],
                        path="seed.skeleton", **fields)
    return format_skeleton(seq, float_format=FLOAT_KINECT).encode("ascii")


# ---------------------------------------------------------------------------------------------
# PIE / JAAD XML


def _shrink(path: Path, tracks_per_label: int = 1, boxes: int = 3, frames: int = 4) -> bytes:
    """The real file cut down: the first track of each label with its first boxes, the first
    ``<frame>`` and ``<pedestrian>`` elements; ``meta/task/labels`` dropped (no reader uses it)."""
    root = ET.parse(path).getroot()
    for labels in root.findall("./meta/task/labels"):
        root.find("./meta/task").remove(labels)
    seen: dict[str | None, int] = {}
    for t in root.findall("./track"):
        key = t.get("label")
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > tracks_per_label:
            root.remove(t)
            continue
        for b in t.findall("./box")[boxes:]:
            t.remove(b)
    for tag, keep in (("frame", frames), ("pedestrian", 2)):
        for el in root.findall(f"./{tag}")[keep:]:
            root.remove(el)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


#: reader name -> (real file under tests/data/intention/data, the file name the readers expect)
XML_FILES = {
    "pie_annotations": ("pie/annotations/set05/video_0002_annt.xml", "video_0002_annt.xml"),
    "pie_attributes": ("pie/annotations_attributes/set05/video_0002_attributes.xml",
                       "video_0002_attributes.xml"),
    "pie_obd": ("pie/annotations_vehicle/set05/video_0002_obd.xml", "video_0002_obd.xml"),
    "jaad_annotations": ("jaad/annotations/video_0001.xml", "video_0001.xml"),
    "jaad_attributes": ("jaad/annotations_attributes/video_0001_attributes.xml", "video_0001_attributes.xml"),
    "jaad_appearance": ("jaad/annotations_appearance/video_0001_appearance.xml", "video_0001_appearance.xml"),
    "jaad_traffic": ("jaad/annotations_traffic/video_0001_traffic.xml", "video_0001_traffic.xml"),
    "jaad_vehicle": ("jaad/annotations_vehicle/video_0001_vehicle.xml", "video_0001_vehicle.xml"),
}


@functools.cache
def xml(name: str) -> bytes:
    """The shrunk real file of a reader (see :data:`XML_FILES`)."""
    return _shrink(INTENTION_DATA / XML_FILES[name][0])


# ---------------------------------------------------------------------------------------------
# pose JSON


@functools.cache
def coco() -> bytes:
    """The synthetic PIE generator's COCO keypoint results (AlphaPose style), first 4 entries."""
    from graphfuse.data.synthetic.pie import generate_synthetic_pie

    root = Path(tempfile.mkdtemp(prefix="graphfuse-fuzz-pie-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    generate_synthetic_pie(root, sets=("set01",), videos_per_set=1, peds_per_video=1)
    entries = json.loads((root / "poses" / "set01" / "video_0001.json").read_text())
    return json.dumps(entries[:4], separators=(",", ":")).encode()


@functools.cache
def openpose() -> bytes:
    """An OpenPose BODY_25 frame file with two people, made from the synthetic keypoints
    (OpenPose's own layout: ``version``, ``people[].pose_keypoints_2d`` and its empty siblings)."""
    entries = json.loads(coco())
    people = []
    for e in entries[:2]:
        kp = np.asarray(e["keypoints"], np.float64).reshape(17, 3)
        body25 = np.zeros((25, 3))
        # BODY_25: 0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8 mid-hip, 9-11 right leg,
        # 12-14 left leg, 15/16 eyes, 17/18 ears (COCO order: 0 nose, 1/2 eyes, 3/4 ears,
        # 5/6 shoulders, 7/8 elbows, 9/10 wrists, 11/12 hips, 13/14 knees, 15/16 ankles).
        coco_of = {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 9: 12, 10: 14, 11: 16,
                   12: 11, 13: 13, 14: 15, 15: 2, 16: 1, 17: 4, 18: 3}
        for b, c in coco_of.items():
            body25[b] = kp[c]
        body25[1] = (kp[5] + kp[6]) / 2
        body25[8] = (kp[11] + kp[12]) / 2
        people.append({"person_id": [-1], "pose_keypoints_2d": np.round(body25, 3).reshape(-1).tolist(),
                       "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
                       "hand_right_keypoints_2d": [], "pose_keypoints_3d": [], "face_keypoints_3d": [],
                       "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []})
    return json.dumps({"version": 1.3, "people": people}).encode()
