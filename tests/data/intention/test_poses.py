"""Pose readers, box matching and gap filling on small files in the real formats
(expected values worked out by hand in the comments)."""

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.intention import poses as P
from graphfuse.data.intention import read_pie_annotations
from graphfuse.data.intention.poses import (PoseSource, box_iou, fill_missing,
                                            match_detections, read_coco_results, read_openpose_frame,
                                            read_openpose_video, read_pab_poses)
from graphfuse.io import UnsafePickleError

PIE_ANN = Path(__file__).parent / "data" / "pie" / "annotations" / "set05" / "video_0002_annt.xml"

# COCO-17 names in COCO order, and OpenPose's orders, written out here from the formats' docs
COCO17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle"]
BODY25 = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
          "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
          "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "l_big_toe", "l_small_toe",
          "l_heel", "r_big_toe", "r_small_toe", "r_heel"]
COCO18 = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
          "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
          "right_eye", "left_eye", "right_ear", "left_ear"]


def coco_kps(offset=0.0, score=0.9):
    """Joint j of COCO-17 at (100 + 10 j + offset, 200 + 5 j), score ``score``."""
    return [v for j in range(17) for v in (100 + 10 * j + offset, 200 + 5 * j, score)]


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


# ------------------------------------------------------------------------------------------ coco


def test_coco_results_mapping_and_midpoints(tmp_path):
    kp0 = coco_kps()
    kp1 = coco_kps(offset=1000, score=0.5)
    kp1[3 * 6:3 * 6 + 3] = [0, 0, 0]  # right shoulder not found -> no neck
    kp1[3 * 12 + 2] = 0.2  # right hip score 0.2
    path = write_json(tmp_path / "v.json", [
        {"image_id": 13, "category_id": 1, "keypoints": kp1, "score": 1.0},
        {"image_id": "00012.png", "category_id": 1, "keypoints": kp0, "score": 2.0, "box": [90, 190, 30, 40]},
    ])
    det = read_coco_results(path)
    assert det.frames.tolist() == [12, 13]  # sorted by frame
    k = det.keypoints
    assert k.shape == (2, 19, 4) and k.dtype == np.float32
    # COCO-17 copied: joint 9 (left wrist) at (190, 245), depth 0, score 0.9
    np.testing.assert_allclose(k[0, 9], [190, 245, 0, 0.9], rtol=1e-6)
    # neck = midpoint of shoulders 5 (150, 225) and 6 (160, 230); score min
    np.testing.assert_allclose(k[0, 17], [155, 227.5, 0, 0.9], rtol=1e-6)
    # mid-hip of entry 2: hips 11 (1210, 255, .5) and 12 (1220, 260, .2) -> (1215, 257.5), 0.2
    np.testing.assert_allclose(k[1, 18], [1215, 257.5, 0, 0.2], rtol=1e-6)
    assert (k[1, 17] == 0).all()  # one shoulder missing -> neck missing
    # box [x, y, w, h] -> x1 y1 x2 y2; without a box: extent of the found joints
    np.testing.assert_allclose(det.boxes[0], [90, 190, 120, 230])
    np.testing.assert_allclose(det.boxes[1], [1100, 200, 1260, 280])


def test_coco_halpe26_uses_own_neck_and_hip(tmp_path):
    kp = coco_kps() + [0, 0, 0.1] + [777, 888, 0.7] + [555, 666, 0.6] + [1, 1, 0.1] * 6
    det = read_coco_results(write_json(tmp_path / "h.json", [{"image_id": 3, "keypoints": kp}]))
    np.testing.assert_allclose(det.keypoints[0, 17], [777, 888, 0, 0.7], rtol=1e-6)
    np.testing.assert_allclose(det.keypoints[0, 18], [555, 666, 0, 0.6], rtol=1e-6)


@pytest.mark.parametrize("content, match", [
    ('[{"image_id": 1, "keypoints": [1, 2]}]', r"e\.json: entry 0 has 2 keypoint values; expected 51 or 78"),
    ('[{"image_id": 1, "keypoints": %s}, {"image_id": 2, "keypoints": [1, 2, 3]}]' % coco_kps(),
     r"entry 1 has 3 keypoint values"),
    ('[{"image_id": 1, "keypoints": %s' % coco_kps(), r"e\.json: malformed JSON"),
    ('[{"image_id": 1, "keypoints": [%s]}]' % ", ".join(["NaN"] + ["1"] * 50), r"e\.json: entry 0 has NaN"),
    ('{"image_id": 1}', r"expected a COCO keypoint results list"),
    ('[{"image_id": "x.png", "keypoints": %s}]' % coco_kps(), r"entry 0 has image_id 'x\.png'"),
    ('[{"image_id": 1, "keypoints": %s, "category_id": 2}]' % coco_kps(), r"entry 0 has category_id 2"),
    ('[{"image_id": 1, "keypoints": %s, "bbox": [1, 2, 3]}]' % coco_kps(), r"entry 0 has box"),
])
def test_coco_errors(tmp_path, content, match):
    path = tmp_path / "e.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_coco_results(path)


@pytest.mark.parametrize("image_id, match", [
    ("99999999999999999999", r"image_id 99999999999999999999; a frame number has at most 9 digits"),
    ("-99999999999999999999", r"image_id -99999999999999999999; a frame number is never negative"),
    ("-1", r"image_id -1; a frame number is never negative"),
    ("1000000000", r"image_id 1000000000; a frame number has at most 9 digits"),
    ('"%s.png"' % ("9" * 5000), r"image_id '9{24}'\.\.\. \(5004 characters\); its frame number has more "
                                r"than 9 digits"),
    ('"frame_1234567890.jpg"', r"image_id 'frame_1234567890\.jpg'; its frame number has more than 9 digits"),
])
def test_coco_frame_number_out_of_range(tmp_path, image_id, match):
    # Was OverflowError (int64) / Python's int digit-limit ValueError without the file name.
    path = tmp_path / "f.json"
    path.write_text('[{"image_id": %s, "keypoints": %s}]' % (image_id, coco_kps()))
    with pytest.raises(ValueError, match=rf"{path}: entry 0 has {match}"):
        read_coco_results(path)


def test_coco_frame_number_bounds_still_read(tmp_path):
    det = read_coco_results(write_json(tmp_path / "v.json", [
        {"image_id": 999_999_999, "keypoints": coco_kps()},
        {"image_id": "video_0001/" + "0" * 30 + "7.png", "keypoints": coco_kps()},
        {"image_id": "x1y2z" + "a" * 200_000 + "3.png", "keypoints": coco_kps()},
        {"image_id": 0, "keypoints": coco_kps()},
    ]))
    assert det.frames.tolist() == [0, 3, 7, 999_999_999]


@pytest.mark.parametrize("box, match", [
    ([1e308, 0, 1e308, 10], r"entry 1 has box \[1e\+308, 0, 1e\+308, 10\], whose corners .* not finite in float32"),
    ([0, 1e39, 10, 10], r"entry 1 has box .* not finite in float32"),
    ([3.4e38, 0, 3.4e38, 1], r"entry 1 has box .* not finite in float32"),  # x + w: finite in float64 only
])
def test_coco_box_overflow(tmp_path, box, match):
    path = write_json(tmp_path / "b.json", [{"image_id": 1, "keypoints": coco_kps(), "bbox": [0, 0, 1, 1]},
                                            {"image_id": 2, "keypoints": coco_kps(), "bbox": box}])
    with pytest.raises(ValueError, match=rf"{path}: {match}"):
        read_coco_results(path)


def test_openpose_frame_number_out_of_range(tmp_path):
    d = tmp_path / "video_0001"
    write_json(d / ("9" * 20 + "_keypoints.json"), {"people": []})
    with pytest.raises(ValueError, match=r"9{20}_keypoints\.json: its frame number has more than 9 digits"):
        read_openpose_video(d)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "set01" / "video_0001.json")):
        PoseSource(tmp_path).track_poses("set01", "video_0001", "1_1_1", [1], np.array([[0, 0, 1, 1.0]]))
    with pytest.raises(FileNotFoundError, match="video_0009"):
        PoseSource(tmp_path, fmt="openpose", dataset="jaad").video_detections(None, "video_0009")


# -------------------------------------------------------------------------------------- openpose


def openpose_person(names, joints):
    """Flat [x, y, c] list in the order ``names`` from {name: (x, y, c)}; absent -> (0, 0, 0)."""
    return [v for n in names for v in joints.get(n, (0.0, 0.0, 0.0))]


def test_openpose_body25_and_coco18_agree_by_name(tmp_path):
    joints = {n: (300.0 + 7 * i, 400.0 - 3 * i, 0.1 + 0.04 * i) for i, n in enumerate(COCO17)}
    joints["neck"] = (333.0, 444.0, 0.55)
    joints["mid_hip"] = (350.0, 480.0, 0.66)  # OpenPose's own, not the hips' midpoint
    del joints["left_ear"]  # not found: (0, 0, 0)
    b25 = read_openpose_frame(write_json(tmp_path / "a_keypoints.json",
                                         {"version": 1.3, "people": [{"person_id": [-1],
                                          "pose_keypoints_2d": openpose_person(BODY25, joints)}]}))
    c18 = read_openpose_frame(write_json(
        tmp_path / "b_keypoints.json", {"people": [{"pose_keypoints_2d": openpose_person(COCO18, joints)}]}))
    expect = np.zeros((19, 4))
    for i, n in enumerate(COCO17):
        if n in joints:
            expect[i] = [joints[n][0], joints[n][1], 0, joints[n][2]]
    expect[17] = [333, 444, 0, 0.55]
    np.testing.assert_allclose(b25[0, :18], expect[:18], rtol=1e-6)
    np.testing.assert_allclose(c18[0, :18], expect[:18], rtol=1e-6)
    np.testing.assert_allclose(b25[0, 18], [350, 480, 0, 0.66], rtol=1e-6)
    # COCO-18 has no mid-hip: midpoint of left hip (i=11) and right hip (i=12)
    lh, rh = joints["left_hip"], joints["right_hip"]
    np.testing.assert_allclose(c18[0, 18], [(lh[0] + rh[0]) / 2, (lh[1] + rh[1]) / 2, 0, min(lh[2], rh[2])],
                               rtol=1e-6)


def test_openpose_video_frames_and_errors(tmp_path):
    d = tmp_path / "set01" / "video_0001"
    p = {"pose_keypoints_2d": openpose_person(BODY25, {"nose": (10.0, 20.0, 0.9), "neck": (12.0, 30.0, 0.8)})}
    write_json(d / "video_0001_000000000012_keypoints.json", {"people": [p, p]})
    write_json(d / "00007_keypoints.json", {"people": []})
    write_json(d / "00009_keypoints.json", {"people": [p]})
    det = read_openpose_video(d)
    assert det.frames.tolist() == [9, 12, 12]
    np.testing.assert_allclose(det.boxes[0], [10, 20, 12, 30])
    write_json(d / "00010_keypoints.json", {"people": [{"pose_keypoints_2d": [1.0] * 30}]})
    with pytest.raises(ValueError, match=r"00010_keypoints\.json: person 0 has 30 keypoint values"):
        read_openpose_video(d)
    (d / "00010_keypoints.json").write_text('{"people": [')
    with pytest.raises(ValueError, match=r"00010_keypoints\.json: malformed JSON"):
        read_openpose_video(d)
    (d / "00010_keypoints.json").write_text('{"persons": []}')
    with pytest.raises(ValueError, match="no 'people' list"):
        read_openpose_video(d)


# ------------------------------------------------------------------------------ matching, filling


def test_box_iou_hand():
    a = np.array([[0, 0, 10, 20]] * 3, float)
    b = np.array([[5, 0, 15, 20], [0, 0, 10, 10], [20, 20, 20, 20]], float)
    np.testing.assert_allclose(box_iou(a, b), [100 / 300, 100 / 200, 0])


def test_match_two_detections_per_frame_and_a_missing_frame():
    track_frames = np.array([10, 11, 12, 13])
    track_boxes = np.array([[0, 0, 10, 20]] * 4, float)
    det_frames = np.array([10, 10, 11, 11, 13, 13])
    det_boxes = np.array([
        [0, 0, 10, 20],      # 0: frame 10, IoU 1
        [5, 0, 15, 20],      # 1: frame 10, IoU 100/300
        [0, 10, 10, 30],     # 2: frame 11, IoU 100/300
        [100, 100, 110, 120],  # 3: frame 11, IoU 0
        [8, 0, 18, 20],      # 4: frame 13, IoU 40/360
        [0, 0, 10, 10],      # 5: frame 13, IoU 100/200
    ], float)                # frame 12: no detection
    best, iou = match_detections(det_frames, det_boxes, track_frames, track_boxes, 0.3)
    assert best.tolist() == [0, 2, -1, 5]
    np.testing.assert_allclose(iou, [1, 1 / 3, 0, 0.5])
    best, _ = match_detections(det_frames, det_boxes, track_frames, track_boxes, 0.4)
    assert best.tolist() == [0, -1, -1, 5]
    # a tie goes to the first detection
    best, _ = match_detections(np.array([5, 5]), np.array([[0, 0, 1, 1], [0, 0, 1, 1]], float),
                               np.array([5]), np.array([[0, 0, 1, 1]], float), 0.3)
    assert best.tolist() == [0]


def test_fill_rules_hand():
    frames = np.array([10, 11, 12, 14])
    poses = np.zeros((4, 2, 4), np.float32)
    poses[0, 0] = [2, 4, 0, 1]
    poses[3, 0] = [6, 8, 0, 0.5]
    poses[3, 1] = [1, 1, 0, 1]  # joint 1 found only at frame 14 (at frame 10 it is (0, 0, 0))
    mask = np.array([True, False, False, True])
    out = fill_missing(frames, poses, mask, "interpolate")
    # joint 0: frame 11 is 1/4 of the way from 10 to 14, frame 12 half-way
    np.testing.assert_allclose(out[1, 0], [3, 5, 0, 0.875])
    np.testing.assert_allclose(out[2, 0], [4, 6, 0, 0.75])
    # joint 1: no earlier finding -> held from frame 14; matched frame 10 unchanged (zeros)
    np.testing.assert_allclose(out[1:3, 1], [[1, 1, 0, 1]] * 2)
    assert (out[0, 1] == 0).all()
    np.testing.assert_array_equal(out[mask], poses[mask])
    hold = fill_missing(frames, poses, mask, "hold")
    np.testing.assert_allclose(hold[1:3, 0], [[2, 4, 0, 1]] * 2)
    np.testing.assert_allclose(hold[1:3, 1], [[1, 1, 0, 1]] * 2)
    zero = fill_missing(frames, poses, mask, "zero")
    assert (zero[1:3] == 0).all()
    # ends are held; no match at all -> zeros
    end = fill_missing(np.array([1, 2, 3]), poses[[1, 3, 1]], np.array([False, True, False]))
    np.testing.assert_allclose(end[[0, 2], 0], [[6, 8, 0, 0.5]] * 2)
    assert (fill_missing(frames, poses, np.zeros(4, bool)) == 0).all()
    with pytest.raises(ValueError, match="fill rule"):
        fill_missing(frames, poses, mask, "linear")


def _fill_reference(frames, poses, mask, rule):
    """float64 loop reference of the documented rule."""
    out = poses.astype(np.float64).copy()
    n, v, _ = poses.shape
    for j in range(v):
        valid = [f for f in range(n)
                 if mask[f] and (poses[f, j, 3] > 0 or poses[f, j, 0] != 0 or poses[f, j, 1] != 0)]
        for f in range(n):
            if mask[f]:
                continue
            before = [g for g in valid if g < f]
            after = [g for g in valid if g > f]
            if rule == "zero" or (not before and not after):
                out[f, j] = 0
            elif not before:
                out[f, j] = poses[after[0], j]
            elif not after or rule == "hold":
                out[f, j] = poses[before[-1], j]
            else:
                a, b = before[-1], after[0]
                w = (frames[f] - frames[a]) / (frames[b] - frames[a])
                out[f, j] = (1 - w) * poses[a, j].astype(np.float64) + w * poses[b, j]
    return out


@pytest.mark.parametrize("rule", ["interpolate", "hold", "zero"])
def test_fill_matches_loop_reference(rule):
    rng = np.random.default_rng(0)
    frames = np.cumsum(rng.integers(1, 4, 30))
    poses = rng.uniform(1, 100, (30, 19, 4)).astype(np.float32)
    poses[rng.random((30, 19)) < 0.3] = 0  # joints not found
    mask = rng.random(30) < 0.5
    np.testing.assert_allclose(fill_missing(frames, poses, mask, rule),
                               _fill_reference(frames, poses, mask, rule), rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------- PoseSource


def test_pose_source_coco_track_and_cache(tmp_path, monkeypatch):
    write_json(tmp_path / "set01" / "video_0001.json", [
        {"image_id": 1, "keypoints": coco_kps(0.0, 0.8), "box": [0, 0, 10, 20]},     # ped A
        {"image_id": 1, "keypoints": coco_kps(500.0, 0.8), "box": [500, 0, 10, 20]},  # ped B
        {"image_id": 3, "keypoints": coco_kps(4.0, 0.4), "box": [0, 0, 10, 20]},
    ])
    calls = []
    real = P.read_coco_results
    monkeypatch.setattr(P, "read_coco_results", lambda p: calls.append(p) or real(p))
    src = PoseSource(tmp_path, fmt="coco", dataset="pie")
    assert src.has_depth is False
    pose, mask = src.track_poses("set01", "video_0001", "1_1_1", np.array([1, 2, 3, 4]),
                                 np.array([[0, 0, 10, 20]] * 4, float))
    assert mask.tolist() == [True, False, True, False]
    assert pose.shape == (4, 19, 4) and pose.dtype == np.float32
    # frame 2 half-way between the x offsets 0 and 4 and the scores 0.8 and 0.4; frame 4 held
    np.testing.assert_allclose(pose[1, 0], [102, 200, 0, 0.6], rtol=1e-6)
    np.testing.assert_allclose(pose[3, 0], [104, 200, 0, 0.4], rtol=1e-6)
    pose_b, mask_b = src.track_poses("set01", "video_0001", "1_1_2", [1], np.array([[500, 0, 510, 20.0]]))
    assert mask_b.tolist() == [True] and pose_b[0, 0, 0] == 600
    pose_c, mask_c = src.track_poses("set01", "video_0001", "1_1_3", [1], np.array([[900, 0, 910, 20.0]]))
    assert mask_c.tolist() == [False] and (pose_c == 0).all()
    assert len(calls) == 1  # the video's file was parsed once for three tracks
    with pytest.raises(ValueError, match="strictly increasing"):
        src.track_poses("set01", "video_0001", "x", np.array([2, 1]), np.zeros((2, 4)))


def test_pose_source_openpose_jaad_layout(tmp_path):
    joints = {"nose": (10.0, 20.0, 0.9), "mid_hip": (14.0, 60.0, 0.8)}
    p = {"pose_keypoints_2d": openpose_person(BODY25, joints)}
    write_json(tmp_path / "video_0003" / "00005_keypoints.json", {"people": [p]})
    src = PoseSource(tmp_path, fmt="openpose", dataset="jaad", fill="zero")
    pose, mask = src.track_poses(None, "video_0003", "0_1_3b", [5, 6], np.array([[9, 19, 15, 61.0]] * 2))
    assert mask.tolist() == [True, False]
    np.testing.assert_allclose(pose[0, 18], [14, 60, 0, 0.8], rtol=1e-6)
    assert (pose[1] == 0).all()


# ------------------------------------------------------------------------ PAB and PedGraph+ pickles

# A real entry of the benchmark's pose_set05.pkl (video_0002, key '01415_5_2_1752'), as pixels of
# its 224 x 224 crop in OpenPose COCO-18 order; stored in the pickle divided by 224.
PAB_PIX = [89, 29, 97, 48, 85, 51, 85, 85, 79, 113, 110, 44, 119, 79, 126, 111, 98, 113, 92, 156, 91,
           206, 110, 112, 117, 152, 151, 181, 85, 25, 93, 25, 82, 28, 101, 25]


def test_pab_pickle_real_entry_back_to_frame_pixels(tmp_path):
    entry = [v / 224 for v in PAB_PIX]
    data = {"video_0002": {"01415_5_2_1752": entry, "01416_5_2_1752": [0] * 36,
                           "01417_5_2_1752": entry, "01415_5_2_1750": entry}}
    with open(tmp_path / "pose_set05.pkl", "wb") as fh:
        pickle.dump(data, fh)
    got = read_pab_poses(tmp_path / "pose_set05.pkl")["video_0002"]
    assert sorted(got) == ["5_2_1750", "5_2_1752"]
    assert got["5_2_1752"][0].tolist() == [1415, 1416, 1417]

    track = read_pie_annotations(PIE_ANN, "set05", "video_0002").pedestrians["5_2_1752"]
    i = int(np.searchsorted(track.frames, 1415))
    frames, boxes = track.frames[i:i + 4], track.boxes[i:i + 4]
    assert frames.tolist() == [1415, 1416, 1417, 1418]
    np.testing.assert_allclose(boxes[0], [1350.32, 709.18, 1437.8, 877.7])  # read from the XML
    src = PoseSource(tmp_path, fmt="pab", dataset="pie")
    pose, mask = src.track_poses("set05", "video_0002", "5_2_1752", frames, boxes)
    assert mask.tolist() == [True, False, True, False]  # all-zero entry and absent key unmatched
    # Box 1350 709 1437 877 (int): 87 x 168 -> ratio 224/168, resized 116 x 224, x offset 54.
    # nose (89, 29): x = 1350 + (89 - 54 + .5) * 87/116 - .5 = 1376.125, y = 709 + 29.5 * .75 - .5
    np.testing.assert_allclose(pose[0, 0], [1376.125, 730.625, 0, 1], rtol=1e-6)
    # right eye is OpenPose index 14 (85, 25) -> COCO node 2
    np.testing.assert_allclose(pose[0, 2], [1350 + 31.5 * .75 - .5, 709 + 25.5 * .75 - .5, 0, 1], rtol=1e-6)
    # neck: OpenPose's own (97, 48); mid-hip: midpoint of hips (98, 113) and (110, 112)
    np.testing.assert_allclose(pose[0, 17], [1382.125, 744.875, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(pose[0, 18], [1387.375, 793.25, 0, 1], rtol=1e-6)
    # every joint inside the pedestrian's box
    assert ((pose[0, :, 0] > boxes[0, 0]) & (pose[0, :, 0] < boxes[0, 2])).all()
    with pytest.raises(FileNotFoundError, match=r"pose_set05\.pkl: no poses for video video_0009"):
        src.track_poses("set05", "video_0009", "5_2_1752", frames, boxes)
    with pytest.raises(FileNotFoundError, match=r"pose_set03\.pkl"):
        src.track_poses("set03", "video_0001", "3_1_1", frames, boxes)


def test_pab_wrong_length_and_jaad_file(tmp_path):
    with open(tmp_path / "pose_set01.pkl", "wb") as fh:
        pickle.dump({"video_0001": {"00001_0_1_3b": [0.5] * 34}}, fh)
    with pytest.raises(ValueError, match=r"pose_set01\.pkl \[video_0001\]: entry 0 has 34 keypoint values"):
        PoseSource(tmp_path, fmt="pab", dataset="jaad").track_poses(
            None, "video_0001", "0_1_3b", np.array([1]), np.array([[0, 0, 10, 20.0]]))


def _pedgraph_sample(path, kps, extra=None):
    data = {"kps": kps, "kps_forcast": kps[-30:], "w": 1920, "h": 1080, "crossing": np.array([1]),
            "irr": 0, "obd_speed": [10.0] * len(kps), "gps_speed": [11.0] * len(kps),
            "crop_img": Path("/data/PIE/imgs") / (path.stem + ".png"), **(extra or {})}
    with open(path, "wb") as fh:
        pickle.dump(data, fh)


def test_pedgraph_windows(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    a = np.zeros((62, 19, 4))
    a[..., 0], a[..., 1], a[..., 2], a[..., 3] = 100.0, 200.0, 12.0, 0.7
    a[:, :, 0] += np.arange(62)[:, None]  # x = 100 + t at frame 500 + t
    b = a.copy()
    b[..., 0] += 1000  # a later window that overlaps; the earlier one must win
    _pedgraph_sample(d / "set01_video_0001_pid_1_1_1_fr_500.pkl", a)
    _pedgraph_sample(d / "set01_video_0001_pid_1_1_1_fr_510.pkl", b)
    _pedgraph_sample(d / "set01_video_0001_pid_1_1_2_fr_500.pkl", b)
    src = PoseSource(tmp_path, fmt="pedgraph")
    assert src.has_depth is True
    frames = np.array([499, 505, 561, 562, 571, 572])
    pose, mask = src.track_poses("set01", "video_0001", "1_1_1", frames, np.zeros((6, 4)))
    assert mask.tolist() == [False, True, True, True, True, False]
    np.testing.assert_allclose(pose[1:5, 3], [[105, 200, 12, .7], [161, 200, 12, .7],
                                              [1152, 200, 12, .7], [1161, 200, 12, .7]], rtol=1e-6)
    np.testing.assert_allclose(pose[0, 3], pose[1, 3])  # held at the start
    # JAAD names: video_XXXX_pid_<id>_fr<frame>
    j = tmp_path / "jaad"
    j.mkdir()
    _pedgraph_sample(j / "video_0002_pid_0_2_1b_fr40.pkl", a)
    pose, mask = PoseSource(j, fmt="pedgraph", dataset="jaad").track_poses(
        None, "video_0002", "0_2_1b", np.array([40, 41]), np.zeros((2, 4)))
    assert mask.all() and pose[1, 0, 0] == 101
    jaad_src = PoseSource(j, fmt="pedgraph", dataset="jaad")
    with pytest.raises(FileNotFoundError, match="video_0003"):
        jaad_src.track_poses(None, "video_0003", "x", [1], [[0, 0, 1, 2]])


def test_pedgraph_bad_pickles(tmp_path):
    _pedgraph_sample(tmp_path / "set01_video_0001_pid_1_1_1_fr_5.pkl", np.zeros((62, 17, 4)))
    src = PoseSource(tmp_path, fmt="pedgraph")
    with pytest.raises(ValueError, match=r"fr_5\.pkl: 'kps' has shape \(62, 17, 4\)"):
        src.track_poses("set01", "video_0001", "1_1_1", np.array([5]), np.zeros((1, 4)))
    kps = np.zeros((62, 19, 4))
    kps[3, 4, 0] = math.nan
    _pedgraph_sample(tmp_path / "set01_video_0001_pid_1_1_1_fr_5.pkl", kps)
    with pytest.raises(ValueError, match=r"fr_5\.pkl: frame 3 has NaN"):
        PoseSource(tmp_path, fmt="pedgraph").track_poses("set01", "video_0001", "1_1_1", [5], [[0, 0, 1, 1]])
    _pedgraph_sample(tmp_path / "set01_video_0001_pid_1_1_1_fr_5.pkl", np.zeros((62, 19, 4)),
                     {"evil": os.getcwd})
    with pytest.raises(UnsafePickleError, match="posix.getcwd|os.getcwd"):
        PoseSource(tmp_path, fmt="pedgraph").track_poses("set01", "video_0001", "1_1_1", [5], [[0, 0, 1, 1]])


def test_source_options_checked(tmp_path):
    with pytest.raises(ValueError, match="pose format"):
        PoseSource(tmp_path, fmt="alphapose")
    with pytest.raises(ValueError, match="fill rule"):
        PoseSource(tmp_path, fill="nearest")
    with pytest.raises(ValueError, match="dataset"):
        PoseSource(tmp_path, dataset="titan")
    with pytest.raises(ValueError, match="set id"):
        PoseSource(tmp_path).video_path(None, "video_0001")


def test_empty_results_file_gives_no_match(tmp_path):
    write_json(tmp_path / "video_0001.json", [])
    pose, mask = PoseSource(tmp_path, dataset="jaad").track_poses(None, "video_0001", "0_1_1b", [1, 2],
                                                                  [[0, 0, 1, 2], [0, 0, 1, 2]])
    assert not mask.any() and (pose == 0).all() and pose.shape == (2, 19, 4)
