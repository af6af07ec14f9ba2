"""JAAD readers on the real video_0001 files (expectations from regex counts of the XML)."""

import re
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.intention import (read_jaad_annotations, read_jaad_split, read_jaad_vehicle,
                                      read_jaad_video)

ROOT = Path(__file__).parent / "data" / "jaad"
ANN = ROOT / "annotations" / "video_0001.xml"


def _regex_track_counts() -> dict[str, int]:
    """Independent count: boxes per id by regex over the raw text."""
    text = ANN.read_text()
    counts: dict[str, int] = {}
    for chunk in text.split("<track ")[1:]:
        ids = re.findall(r'<attribute name="id">([^<]+)</attribute>', chunk)
        counts[ids[0]] = len(re.findall(r"<box ", chunk))
    return counts


def test_tracks_match_raw_counts():
    video = read_jaad_video(ROOT, "video_0001")
    assert (video.num_frames, video.width, video.height) == (600, 1920, 1080)
    assert video.video_attributes == {"time_of_day": "daytime", "weather": "cloudy", "location": "plaza"}
    assert {k: len(t.frames) for k, t in video.tracks.items()} == _regex_track_counts()
    assert {k: len(t.frames) for k, t in video.tracks.items()} == {
        "0_1_3b": 569, "0_1_2": 221, "0_1_2b": 70, "0_1_4": 217}
    assert sorted(video.pedestrians("beh")) == ["0_1_2b", "0_1_3b"]
    assert sorted(video.pedestrians("all")) == ["0_1_2", "0_1_2b", "0_1_3b", "0_1_4"]
    for t in video.tracks.values():
        assert t.boxes.shape == (len(t.frames), 4) and t.boxes.dtype == np.float64
        assert t.occlusion.shape == t.frames.shape


def test_boxes_behaviour_and_attributes():
    v = read_jaad_video(ROOT, "video_0001")
    t = v.tracks["0_1_3b"]
    # Hand-read from the file: frame 0 xtl=465 ytl=730 xbr=533 ybr=848; frame 2 461 730 531 849.
    np.testing.assert_array_equal(t.boxes[t.frames == 0][0], [465.0, 730.0, 533.0, 848.0])
    np.testing.assert_array_equal(t.boxes[t.frames == 2][0], [461.0, 730.0, 531.0, 849.0])
    assert t.old_id == "pedestrian1" and t.label == "pedestrian" and t.is_behavioral
    assert t.behavior["action"][0] == 0 and t.behavior["look"][0] == 0  # standing, not-looking
    assert (t.behavior["cross"] == 0).all()  # the file holds only not-crossing in this video
    # Raw-text totals across the two behavioural tracks (639 boxes): looking 60, walking 275.
    beh = [v.tracks["0_1_3b"], v.tracks["0_1_2b"]]
    assert sum(int(x.behavior["look"].sum()) for x in beh) == 60
    assert sum(int(x.behavior["action"].sum()) for x in beh) == 275
    assert sum(int((x.behavior["hand_gesture"] == 4).sum()) for x in beh) == 93  # other
    occ = np.concatenate([x.occlusion for x in v.tracks.values()])
    assert np.bincount(occ).tolist() == [770, 79, 228]  # none/part/full
    ped = v.tracks["0_1_4"]
    assert ped.behavior == {} and not ped.is_behavioral and ped.attributes == {}
    np.testing.assert_array_equal(ped.boxes[ped.frames == 599][0], [773.0, 727.0, 807.0, 800.0])
    a = t.attributes
    assert a["old_id"] == "pedestrian1" and a["crossing"] == -1 and a["crossing_point"] == -1
    assert a["decision_point"] == 363 and a["age"] == 3 and a["gender"] == 1  # senior, female
    assert a["intersection"] == 0 and a["motion_direction"] == 2 and a["traffic_direction"] == 1
    assert v.tracks["0_1_2b"].attributes["decision_point"] == 26
    app = ped.appearance
    assert app["frames"][0] == 383 and app["pose_right"][0] == 1 and app["clothes_upper_dark"][0] == 1


def test_vehicle_and_traffic():
    v = read_jaad_video(ROOT, "video_0001")
    text = (ROOT / "annotations_vehicle" / "video_0001_vehicle.xml").read_text()
    acts = re.findall(r'<frame action="([a-z_]+)" id="(\d+)"', text)
    assert len(v.vehicle_frames) == len(acts)
    names = ["stopped", "moving_slow", "moving_fast", "decelerating", "accelerating"]
    expect = {int(i): names.index(a) for a, i in acts}
    assert dict(zip(v.vehicle_frames.tolist(), v.vehicle_action.tolist())) == expect
    assert v.vehicle_action[0] == 1  # moving_slow
    assert v.road_type == 1  # parking_lot
    traffic_text = (ROOT / "annotations_traffic" / "video_0001_traffic.xml").read_text()
    assert len(v.traffic["frames"]) == traffic_text.count("<frame ")
    assert v.traffic["ped_crossing"][0] == 0 and v.traffic["traffic_light"][0] == 0


@pytest.mark.parametrize("subset,sizes", [("default", (177, 29, 117)),
                                          ("high_visibility", (182, 30, 121)),
                                          ("all_videos", (188, 32, 126))])
def test_splits(subset, sizes):
    got = tuple(len(read_jaad_split(ROOT, s, subset)) for s in ("train", "val", "test"))
    assert got == sizes
    train = read_jaad_split(ROOT, "train", subset)
    assert "video_0001" in train and "video_0005" in read_jaad_split(ROOT, "test", subset)
    assert len(read_jaad_split(ROOT, "all", subset)) == sum(sizes)
    assert ("video_0002" in read_jaad_split(ROOT, "val", subset)) == (subset == "all_videos")
    with pytest.raises(ValueError, match="unknown JAAD split"):
        read_jaad_split(ROOT, "dev", subset)


def test_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="video_9999"):
        read_jaad_video(ROOT, "video_9999")
    bad = tmp_path / "video_0001.xml"
    bad.write_text(ANN.read_text()[:5000])
    with pytest.raises(ValueError, match="video_0001.xml.*malformed"):
        read_jaad_annotations(bad)
    text = ANN.read_text()
    swapped = text.replace('xbr="533.0" xtl="465.0"', 'xbr="465.0" xtl="533.0"', 1)
    bad.write_text(swapped)
    with pytest.raises(ValueError, match=r"video_0001.xml.*'0_1_3b'.*frame 0"):
        read_jaad_annotations(bad)
    bad.write_text(text.replace('<attribute name="occlusion">none</attribute>', "", 1))
    with pytest.raises(ValueError, match=r"'0_1_3b'.*frame 0 lacks attribute 'occlusion'"):
        read_jaad_annotations(bad)
    veh = tmp_path / "v.xml"
    veh.write_text('<vehicle_info><frame action="flying" id="0" /></vehicle_info>')
    with pytest.raises(ValueError, match=r"v.xml.*flying"):
        read_jaad_vehicle(veh)
