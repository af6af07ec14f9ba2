"""prepare_intention on the real PIE set05/video_0002 and JAAD video_0001 annotation files.

Hand-derived expectations (from the XML; obs 16, tte [30, 60], min_track 76):

PIE set05/video_0002 (val split, overlap 0.6 -> stride 6):
  5_2_1750  frames 689..808, crossing -1, crossing_point 806 -> 118 frames -> starts 42..72
            -> 6 windows, first frames 731, 737, ..., 761; label 0, label3 2 (irrelevant)
  5_2_1751  frames 6738..6817, crossing 0, crossing_point 6815 -> 78 frames -> starts 2..32
            -> 6 windows, first frames 6740, ..., 6770; label 0, label3 0
  5_2_1752  frames 1359..1595, crossing 1, crossing_point 1405 -> 47 frames < 76 -> dropped
JAAD video_0001 (default train split, overlap 0.8 -> stride 3):
  0_1_2     'ped' 379..599, end_idx -3 -> 219 frames -> starts 143..173 -> 11, first 522..552
  0_1_2b    0..69, crossing_point -1 -> 68 frames -> dropped
  0_1_3b    0..568, crossing -1, crossing_point -1 -> 567 frames -> starts 491..521 -> 11
  0_1_4     'ped' 383..599 -> 215 frames -> starts 139..169 -> 11, first 522..552
"""

import json
import re

import numpy as np
import pytest

from _intention_files import DATA, obd_by_frame, pie_boxes

from graphfuse.data.intention.prepare import prepare_intention

PIE_VAL = {"pedestrians": 3, "tracks": 2, "samples": 12, "positive": 0, "negative": 12,
           "irrelevant": 6}


def test_pie_real_video(pie_root, tmp_path):
    out = tmp_path / "out"
    meta = prepare_intention("pie", pie_root, out, splits=("val",))
    assert meta["splits"] == {"val": PIE_VAL}
    assert json.loads((out / "meta.json").read_text()) == meta
    assert meta["format"] == "graphfuse-intention" and meta["version"] == 1
    assert meta["ego_channels"] == ["GPS_speed", "OBD_speed"]
    assert meta["pose"] is None and meta["crops"] is None and meta["skipped"] == {}
    assert meta["options"]["overlap"] == 0.6 and meta["options"]["min_track_size"] == 76
    d = out / "val"
    ids = json.loads((d / "ids.json").read_text())
    assert ids == ([f"set05/video_0002/5_2_1750/{f}" for f in range(731, 762, 6)]
                   + [f"set05/video_0002/5_2_1751/{f}" for f in range(6740, 6771, 6)])
    assert np.load(d / "label.npy").tolist() == [0] * 12
    assert np.load(d / "label3.npy").tolist() == [2] * 6 + [0] * 6
    assert np.load(d / "tte.npy").tolist() == [60, 54, 48, 42, 36, 30] * 2
    frames = np.load(d / "frames.npy")
    assert frames.dtype == np.int64 and frames.shape == (12, 16)
    assert frames[0].tolist() == list(range(731, 747))
    boxes = np.load(d / "boxes.npy")
    assert boxes.dtype == np.float32 and boxes.shape == (12, 16, 4)
    ref = pie_boxes("5_2_1751")
    np.testing.assert_allclose(boxes[6], [ref[f] for f in range(6740, 6756)], rtol=1e-6)
    ego = np.load(d / "ego.npy")
    assert ego.dtype == np.float32 and ego.shape == (12, 16, 2)
    obd = obd_by_frame()
    np.testing.assert_allclose(ego[11], [obd[f] for f in range(6770, 6786)], rtol=1e-6)
    assert np.load(d / "image_size.npy").tolist() == [[1920, 1080]] * 12
    assert not (d / "pose.npy").exists()


def test_jaad_real_video_beh_and_all(jaad_root, tmp_path):
    meta = prepare_intention("jaad", jaad_root, tmp_path / "beh", sample_type="beh")
    assert meta["splits"]["train"] == {"pedestrians": 2, "tracks": 1, "samples": 11, "positive": 0,
                                       "negative": 11, "irrelevant": 0}
    assert meta["splits"]["val"]["samples"] == 0 and meta["splits"]["test"]["samples"] == 0
    assert meta["options"]["overlap"] == 0.8 and meta["ego_channels"] == ["vehicle_act"]
    ids = json.loads((tmp_path / "beh/train/ids.json").read_text())
    assert ids == [f"video_0001/0_1_3b/{f}" for f in range(491, 522, 3)]
    assert np.load(tmp_path / "beh/val/frames.npy").shape == (0, 16)

    meta = prepare_intention("jaad", jaad_root, tmp_path / "all", sample_type="all")
    assert meta["splits"]["train"] == {"pedestrians": 4, "tracks": 3, "samples": 33, "positive": 0,
                                       "negative": 33, "irrelevant": 22}
    d = tmp_path / "all/train"
    ids = json.loads((d / "ids.json").read_text())
    assert ids[:11] == [f"video_0001/0_1_2/{f}" for f in range(522, 553, 3)]
    assert ids[22:] == [f"video_0001/0_1_4/{f}" for f in range(522, 553, 3)]
    assert np.load(d / "label3.npy").tolist() == [2] * 11 + [0] * 11 + [2] * 11
    assert np.load(d / "tte.npy").tolist()[:11] == list(range(60, 29, -3))
    frames = np.load(d / "frames.npy")
    assert frames[10, -1] == 552 + 15 and 597 - frames[10, -1] == 30  # tte to the cut end 597
    # vehicle action per frame, read independently from the XML
    txt = (DATA / "jaad/annotations_vehicle/video_0001_vehicle.xml").read_text()
    codes = {"stopped": 0, "moving_slow": 1, "moving_fast": 2, "decelerating": 3, "accelerating": 4}
    act = {int(i): codes[a] for a, i in re.findall(r'action="(\w+)" id="(\d+)"', txt)}
    ego = np.load(d / "ego.npy")
    assert ego.shape == (33, 16, 1)
    np.testing.assert_array_equal(ego[..., 0], np.vectorize(act.get)(frames))

    meta = prepare_intention("jaad", jaad_root, tmp_path / "irr", sample_type="all",
                             jaad_beh_irrelevant=True)
    assert meta["splits"]["train"]["irrelevant"] == 33


def test_balance_and_obs32(jaad_root, tmp_path):
    meta = prepare_intention("jaad", jaad_root, tmp_path / "o32", sample_type="all",
                             obs_length=32)
    # min_track 92: 0_1_2 (219) starts 127..157 stride 6 -> 6; 0_1_3b 6; 0_1_4 (215) 6
    assert meta["splits"]["train"]["samples"] == 18
    assert np.load(tmp_path / "o32/train/frames.npy").shape == (18, 32)
    # all negatives: official balancing drops all of them (|pos - neg| = #neg)
    meta = prepare_intention("jaad", jaad_root, tmp_path / "bal", sample_type="all",
                             balance="samples")
    assert meta["splits"]["train"]["samples"] == 0 and meta["options"]["balance"] == "samples"


def test_existing_output_and_bad_options(pie_root, tmp_path):
    out = tmp_path / "out"
    prepare_intention("pie", pie_root, out, splits=("val",))
    with pytest.raises(FileExistsError, match="meta.json"):
        prepare_intention("pie", pie_root, out, splits=("val",))
    prepare_intention("pie", pie_root, out, splits=("val",), overwrite=True)
    with pytest.raises(ValueError, match="dataset"):
        prepare_intention("nope", pie_root, out)
    with pytest.raises(ValueError, match="balance"):
        prepare_intention("pie", pie_root, tmp_path / "x", balance="some")
    with pytest.raises(FileNotFoundError, match="set01"):  # partial PIE: train sets absent
        prepare_intention("pie", pie_root, tmp_path / "y")


def test_missing_obd_file_names_it(pie_root, tmp_path):
    root = pie_root
    (root / "annotations_vehicle/set05/video_0002_obd.xml").unlink()
    with pytest.raises(FileNotFoundError, match="video_0002_obd.xml"):
        prepare_intention("pie", root, tmp_path / "out", splits=("val",))
    assert not (tmp_path / "out/meta.json").exists()


def test_event_frame_outside_track_names_pedestrian(pie_root, tmp_path):
    root = pie_root
    p = root / "annotations_attributes/set05/video_0002_attributes.xml"
    p.write_text(p.read_text().replace('crossing_point="6815"', 'crossing_point="9999"'))
    with pytest.raises(ValueError, match=r"set05/video_0002 pedestrian '5_2_1751'.*9999"):
        prepare_intention("pie", root, tmp_path / "out", splits=("val",))


def _coco_poses(path, frames, boxes):
    """A COCO keypoint result per frame: 17 joints spread inside the box, score 0.9."""
    res = []
    for f, (x1, y1, x2, y2) in zip(frames, boxes):
        xs = np.linspace(x1 + 1, x2 - 1, 17)
        ys = np.linspace(y1 + 1, y2 - 1, 17)
        kp = np.stack([xs, ys, np.full(17, 0.9)], 1).ravel().tolist()
        res.append({"image_id": int(f), "category_id": 1, "keypoints": kp, "score": 0.9})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))


def test_poses_attached_and_missing_pose_file(pie_root, tmp_path):
    pytest.importorskip("graphfuse.data.intention.poses")
    # poses for 5_2_1751 on its frames 6738..6760 only; 5_2_1750 has none
    ref = pie_boxes("5_2_1751")
    frames = list(range(6738, 6761))
    _coco_poses(tmp_path / "poses/set05/video_0002.json", frames, [ref[f] for f in frames])
    meta = prepare_intention("pie", pie_root, tmp_path / "out", splits=("val",),
                             poses=tmp_path / "poses")
    d = tmp_path / "out/val"
    pose, mask = np.load(d / "pose.npy"), np.load(d / "pose_mask.npy")
    assert pose.shape == (12, 16, 19, 4) and pose.dtype == np.float32
    assert mask.shape == (12, 16) and mask.dtype == bool
    fr = np.load(d / "frames.npy")
    np.testing.assert_array_equal(mask[6:], fr[6:] <= 6760)
    assert 0 < mask[6:].sum() < mask[6:].size
    assert not mask[:6].any()
    assert meta["pose"]["matched_frames"] == int(mask.sum())
    assert meta["pose"]["missing_frames"] == int((~mask).sum())
    assert meta["pose"]["has_depth"] is False
    # a matched frame: joint 0 is the first keypoint written above
    i, t = 6, 0
    x1, y1 = ref[int(fr[i, t])][:2]
    np.testing.assert_allclose(pose[i, t, 0, :2], [x1 + 1, y1 + 1], rtol=1e-6)

    with pytest.raises(FileNotFoundError, match="pose folder not found.*no-such"):
        prepare_intention("pie", pie_root, tmp_path / "o1", splits=("val",),
                          poses=tmp_path / "no-such", on_missing_pose="skip")
    (tmp_path / "empty").mkdir(exist_ok=True)
    with pytest.raises(FileNotFoundError, match="video_0002"):
        prepare_intention("pie", pie_root, tmp_path / "o2", splits=("val",),
                          poses=tmp_path / "empty")
    meta = prepare_intention("pie", pie_root, tmp_path / "o3", splits=("val",),
                             poses=tmp_path / "empty", on_missing_pose="skip")
    assert meta["skipped"] == {"missing_pose_file": ["set05/video_0002"]}
    assert meta["splits"]["val"]["samples"] == 0 and meta["splits"]["val"]["tracks"] == 0
    assert np.load(tmp_path / "o3/val/pose.npy").shape == (0, 16, 19, 4)


def test_crops_at_last_observed_frame(pie_root, tmp_path):
    pytest.importorskip("graphfuse.data.intention.crops")
    Image = pytest.importorskip("PIL.Image")
    last = [f + 15 for f in range(731, 762, 6)] + [f + 15 for f in range(6740, 6771, 6)]
    d = tmp_path / "frames/images/set05/video_0002"
    d.mkdir(parents=True)
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[...] = (10, 200, 30)
    for f in last:  # only the frames a crop needs
        Image.fromarray(img).save(d / f"{f:05d}.png")
    meta = prepare_intention("pie", pie_root, tmp_path / "out", splits=("val",),
                             images=tmp_path / "frames")
    crops = np.load(tmp_path / "out/val/crops.npy")
    assert crops.shape == (12, 3, 192, 64) and crops.dtype == np.uint8
    assert meta["crops"]["size"] == [192, 64]
    assert crops[:, :, 96, 32].tolist() == [[10, 200, 30]] * 12  # box centre: the frame colour
    (d / f"{last[3]:05d}.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"{last[3]:05d}"):
        prepare_intention("pie", pie_root, tmp_path / "out2", splits=("val",),
                          images=tmp_path / "frames")


def test_overwrite_removes_files_of_the_earlier_run(pie_root, tmp_path):
    out = tmp_path / "out"
    (out / "test").mkdir(parents=True)
    prepare_intention("pie", pie_root, out, splits=("val",))
    np.save(out / "val/pose.npy", np.zeros(1))  # as if an earlier run had poses
    np.save(out / "test/label.npy", np.zeros(1))
    prepare_intention("pie", pie_root, out, splits=("val",), overwrite=True)
    assert not (out / "val/pose.npy").exists() and not (out / "test/label.npy").exists()
    assert (out / "val/label.npy").exists()


def test_boxes_outside_the_frame():
    from graphfuse.data.intention.prepare import check_boxes_in_frame
    from graphfuse.data.intention.sequences import CrossingTracks

    def tracks(boxes):
        boxes = np.asarray(boxes, dtype=np.float64)
        n = len(boxes)
        return CrossingTracks(keys=["set01/video_0001/1_1_1"], offsets=np.array([0, n]),
                              frames=np.arange(n), boxes=boxes, ego=np.zeros((n, 2)),
                              label=np.array([1]), label3=np.array([1]),
                              image_size=np.array([[100, 50]]))

    inside = [[0, 0, 10, 10], [90, 40, 100, 50]]
    assert check_boxes_in_frame(tracks(inside)) == 0
    assert check_boxes_in_frame(tracks(inside + [[-3, 5, 8, 20], [95, 45, 104, 52]])) == 2
    with pytest.raises(ValueError, match=r"set01/video_0001/1_1_1.*frame 2 .*entirely outside the 100x50"):
        check_boxes_in_frame(tracks(inside + [[101, 5, 120, 20]]))
