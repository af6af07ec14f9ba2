"""PIE readers on the real set05/video_0002 files (expectations from regex counts)."""

import re
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.intention import (PIE_SPLIT_SETS, pie_split_videos, read_pie_annotations,
                                      read_pie_attributes, read_pie_obd, read_pie_video)

ROOT = Path(__file__).parent / "data" / "pie"
ANN = ROOT / "annotations" / "set05" / "video_0002_annt.xml"


def _regex_inside_counts() -> dict[str, tuple[str, int]]:
    """Independent count: label and boxes with outside="0" per track id."""
    out = {}
    for chunk in ANN.read_text().split("<track ")[1:]:
        label = re.match(r'label="([^"]+)"', chunk).group(1)
        oid = re.search(r'<attribute name="id">([^<]+)</attribute>', chunk).group(1)
        out[oid] = (label, len(re.findall(r'outside="0"', chunk)))
    return out


def test_tracks_match_raw_counts():
    v = read_pie_video(ROOT, "set05", "video_0002")
    assert (v.num_frames, v.width, v.height) == (9000, 1920, 1080)
    got = {k: (t.obj_class, len(t.frames)) for k, t in {**v.pedestrians, **v.traffic}.items()}
    assert got == _regex_inside_counts()
    assert sorted(v.pedestrians) == ["5_2_1750", "5_2_1751", "5_2_1752"]
    assert len(v.pedestrians["5_2_1752"].frames) == 237  # 238 boxes, one outside
    assert 1596 not in v.pedestrians["5_2_1752"].frames  # the outside box (hand-read)
    assert {t.obj_class for t in v.traffic.values()} == {
        "vehicle", "sign", "traffic_light", "crosswalk", "transit_station"}


def test_boxes_behaviour_attributes():
    v = read_pie_video(ROOT, "set05", "video_0002")
    t = v.pedestrians["5_2_1752"]
    # Hand-read first box: frame 1359 xtl 1353.01 ytl 710.22 xbr 1390.90 ybr 831.80.
    assert t.frames[0] == 1359
    np.testing.assert_allclose(t.boxes[0], [1353.01, 710.22, 1390.90, 831.80])
    allp = list(v.pedestrians.values())
    # Independent regex totals over pedestrian boxes with outside="0" (437 of 440; the 3
    # outside boxes are standing, not-looking, not-crossing, occlusion part).
    peds = [c for c in ANN.read_text().split("<track ")[1:] if c.startswith('label="pedestrian"')]
    inside = [b for c in peds for b in re.findall(r'<box [^>]*outside="0".*?</box>', c, re.S)]
    assert len(inside) == 437
    def n(pat):
        return sum(pat in b for b in inside)
    assert sum(int(p.behavior["action"].sum()) for p in allp) == n(">walking<") == 294
    assert sum(int(p.behavior["look"].sum()) for p in allp) == n(">looking<") == 59
    assert sum(int((p.behavior["cross"] == 1).sum()) for p in allp) == n(">crossing<") == 191
    occ = np.bincount(np.concatenate([p.occlusion for p in allp])).tolist()
    assert occ == [n('"occlusion">none<'), n('"occlusion">part<'), n('"occlusion">full<')]
    assert occ == [353, 66, 18]
    assert all((p.behavior["gesture"] == 0).all() for p in allp)
    a = t.attributes
    assert a == {"age": 3, "critical_point": 1402, "crossing": 1, "crossing_point": 1405,
                 "exp_start_point": 1359, "gender": 1, "intention_prob": 1.0,
                 "intersection": 4, "num_lanes": 2, "signalized": 3, "traffic_direction": 1}
    assert v.pedestrians["5_2_1750"].attributes["crossing"] == -1
    assert v.pedestrians["5_2_1751"].attributes["intention_prob"] == pytest.approx(0.8833333333)
    tl = v.traffic["5_2_488tl"]
    assert tl.obj_type == 2 and (tl.state == 1).all()  # pedestrian light, red
    assert v.traffic["5_2_100s"].obj_type == 4 and v.traffic["5_2_301c"].obj_type is None


def test_obd():
    obd = read_pie_obd(ROOT / "annotations_vehicle" / "set05" / "video_0002_obd.xml")
    text = (ROOT / "annotations_vehicle" / "set05" / "video_0002_obd.xml").read_text()
    assert len(obd["frames"]) == text.count("<frame ") == 9000
    # Hand-read frame 0: GPS 6.17988096, OBD 6.00285312, heading 342.17, accY -1.03, yaw 6.24.
    i = int(np.flatnonzero(obd["frames"] == 0)[0])
    assert obd["GPS_speed"][i] == 6.17988096 and obd["OBD_speed"][i] == 6.00285312
    assert obd["heading_angle"][i] == 342.17 and obd["accY"][i] == -1.03 and obd["yaw"][i] == 6.24
    m = re.search(r'<frame GPS_speed="([^"]+)" OBD_speed="([^"]+)"[^>]* id="4321"', text)
    v = read_pie_video(ROOT, "set05", "video_0002")
    assert v.ego_at("OBD_speed", np.array([4321]))[0] == float(m.group(2))
    assert v.ego_at("GPS_speed", np.array([4321]))[0] == float(m.group(1))
    with pytest.raises(ValueError, match="OBD lacks frame"):
        v.ego_at("OBD_speed", np.array([9000]))


def test_splits(tmp_path):
    assert PIE_SPLIT_SETS["train"] == ("set01", "set02", "set04")
    assert PIE_SPLIT_SETS["val"] == ("set05", "set06") and PIE_SPLIT_SETS["test"] == ("set03",)
    (tmp_path / "annotations" / "set06").mkdir(parents=True)
    (tmp_path / "annotations" / "set05").mkdir()
    (tmp_path / "annotations" / "set05" / "video_0002_annt.xml").write_text("<annotations/>")
    assert pie_split_videos(tmp_path, "val") == [("set05", "video_0002")]
    with pytest.raises(FileNotFoundError, match="set03"):
        pie_split_videos(tmp_path, "test")


def test_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="video_0003_annt.xml"):
        read_pie_video(ROOT, "set05", "video_0003")
    bad = tmp_path / "video_0002_annt.xml"
    text = ANN.read_text()
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="video_0002_annt.xml.*malformed"):
        read_pie_annotations(bad)
    bad.write_text(text.replace('xbr="1390.90"', 'xbr="1000.00"', 1))
    with pytest.raises(ValueError, match=r"'5_2_1752'.*frame 1359"):
        read_pie_annotations(bad)
    bad.write_text(re.sub(r' ybr="[^"]+"', "", text, count=1))
    with pytest.raises(ValueError, match=r"video_0002_annt.xml.*lacks required attribute 'ybr'"):
        read_pie_annotations(bad)
    att = tmp_path / "a.xml"
    att.write_text('<ped_attributes><pedestrian id="x" age="ancient" /></ped_attributes>')
    with pytest.raises(ValueError, match=r"a.xml.*'x'.*age='ancient'"):
        read_pie_attributes(att)


ATTRS = ROOT / "annotations_attributes" / "set05" / "video_0002_attributes.xml"


@pytest.mark.parametrize("value, problem", [
    ("nan", "not a finite number"), ("NaN", "not a finite number"), ("inf", "not a finite number"),
    ("-inf", "not a finite number"), ("1e400", "not a finite number"),
    ("5", "outside the valid range 0..1"), ("-1e39", "outside the valid range 0..1"),
    ("1.0000001", "outside the valid range 0..1"), ("-0.5", "outside the valid range 0..1"),
])
def test_intention_prob_must_be_a_probability(tmp_path, value, problem):
    text = ATTRS.read_text()
    att = tmp_path / "video_0002_attributes.xml"
    att.write_text(text.replace('intention_prob="0.8833333333"', f'intention_prob="{value}"', 1))
    with pytest.raises(ValueError, match=rf"{re.escape(str(att))}: pedestrian '5_2_1751': attribute "
                                         rf"intention_prob='{re.escape(value)}' is {problem}"):
        read_pie_attributes(att)


@pytest.mark.parametrize("value, expected", [("0", 0.0), ("1", 1.0), ("0.0", 0.0), ("1e-3", 0.001)])
def test_intention_prob_bounds_still_read(tmp_path, value, expected):
    att = tmp_path / "a.xml"
    att.write_text(ATTRS.read_text().replace('intention_prob="0.8833333333"', f'intention_prob="{value}"', 1))
    assert read_pie_attributes(att)["5_2_1751"]["intention_prob"] == expected
