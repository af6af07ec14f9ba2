"""Value checks of crossing-intention data: non-finite OBD values, pose values beyond float32,
plausibility bounds at preparation, and ``graphfuse check`` / the datamodule at load."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from _intention_files import DATA, pie_boxes

from graphfuse.cli import main
from graphfuse.data.intention.datamodule import IntentionDataModule
from graphfuse.data.intention.pie import read_pie_obd
from graphfuse.data.intention.poses import read_coco_results, read_openpose_frame, read_pedgraph_sample
from graphfuse.data.intention.prepare import prepare_intention

OBD = DATA / "pie/annotations_vehicle/set05/video_0002_obd.xml"


def _set_obd(path: Path, frame: int, field: str, text: str) -> None:
    """Replace ``field`` of OBD frame ``frame`` by ``text`` in the XML at ``path``."""
    xml = path.read_text()
    row = re.search(rf'<frame [^>]*\bid="{frame}"[^>]*/>', xml)
    assert row is not None
    new = re.sub(rf'\b{field}="[^"]*"', f'{field}="{text}"', row.group(0))
    assert new != row.group(0)
    path.write_text(xml[: row.start()] + new + xml[row.end():])


# ---- finding 3: non-finite OBD values ----------------------------------------------------------------

@pytest.mark.parametrize("field, text", [("OBD_speed", "nan"), ("GPS_speed", "1e400"), ("accX", "-inf")])
def test_obd_non_finite_value_names_file_frame_and_field(tmp_path, field, text):
    p = tmp_path / "video_0002_obd.xml"
    shutil.copy(OBD, p)
    _set_obd(p, 6775, field, text)
    with pytest.raises(ValueError, match=rf"video_0002_obd\.xml.*frame 6775.*{field}"):
        read_pie_obd(p)


def test_prepare_rejects_nan_speed_so_ego_stays_finite(pie_root, tmp_path):
    _set_obd(pie_root / "annotations_vehicle/set05/video_0002_obd.xml", 6775, "OBD_speed", "nan")
    with pytest.raises(ValueError, match=r"video_0002_obd\.xml.*frame 6775.*OBD_speed"):
        prepare_intention("pie", pie_root, tmp_path / "out", splits=("val",))
    assert not (tmp_path / "out" / "meta.json").exists()


# ---- finding 4: plausibility bounds at preparation -------------------------------------------------

def test_implausible_speed_is_an_error_and_the_bound_overridable(pie_root, tmp_path, capsys):
    obd = pie_root / "annotations_vehicle/set05/video_0002_obd.xml"
    _set_obd(obd, 6775, "GPS_speed", "400")  # finite, but no car goes 400 km/h
    with pytest.raises(ValueError, match=r"video_0002_obd\.xml.*frame 6775.*GPS_speed.*400.*0\.\.300"):
        prepare_intention("pie", pie_root, tmp_path / "o1", splits=("val",))
    meta = prepare_intention("pie", pie_root, tmp_path / "o2", splits=("val",),
                             bounds={"speed_kmh": (0.0, 500.0)})
    assert meta["value_check"]["bounds"]["speed_kmh"] == [0.0, 500.0]
    assert meta["value_check"]["result"] == "passed" and meta["value_check"]["by"] == "prepare"
    assert float(np.load(tmp_path / "o2/val/ego.npy").max()) == 400.0
    # the CLI option
    args = ["prepare", "pie", "--root", str(pie_root), "--splits", "val"]
    assert main(args + ["--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GPS_speed" in err[0] and "400" in err[0]
    assert main(args + ["--out", str(tmp_path / "o4"), "--bound", "speed_kmh=0:500"]) == 0


def test_other_obd_fields_are_bounded(pie_root, tmp_path):
    _set_obd(pie_root / "annotations_vehicle/set05/video_0002_obd.xml", 100, "latitude", "123.5")
    with pytest.raises(ValueError, match=r"frame 100.*latitude.*123\.5"):
        prepare_intention("pie", pie_root, tmp_path / "o1", splits=("val",))


def _coco_poses(path, frames, boxes, bad=None):
    res = []
    for f, (x1, y1, x2, y2) in zip(frames, boxes):
        kp = np.stack([np.linspace(x1 + 1, x2 - 1, 17), np.linspace(y1 + 1, y2 - 1, 17),
                       np.full(17, 0.9)], 1)
        if bad is not None and f == bad[0]:
            kp[3, 0] = bad[1]
        res.append({"image_id": int(f), "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9,
                    "bbox": [x1, y1, x2 - x1, y2 - y1]})  # matched by this box, whatever the joints
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))


def test_pose_pixel_far_outside_the_frame_names_the_sample(pie_root, tmp_path):
    ref = pie_boxes("5_2_1751")
    frames = list(range(6738, 6818))
    _coco_poses(tmp_path / "poses/set05/video_0002.json", frames, [ref[f] for f in frames], bad=(6775, 1e30))
    with pytest.raises(ValueError, match=r"pose\.npy.*set05/video_0002/5_2_1751/.*1e\+30"):
        prepare_intention("pie", pie_root, tmp_path / "out", splits=("val",), poses=tmp_path / "poses")
    # 1920 px frame: x = 4000 is more than one frame width to the right (bound -1..2 frames)
    _coco_poses(tmp_path / "p2/set05/video_0002.json", frames, [ref[f] for f in frames], bad=(6775, 4000.0))
    with pytest.raises(ValueError, match=r"pose\.npy.*5_2_1751.*4000"):
        prepare_intention("pie", pie_root, tmp_path / "o2", splits=("val",), poses=tmp_path / "p2")
    meta = prepare_intention("pie", pie_root, tmp_path / "o3", splits=("val",), poses=tmp_path / "p2",
                             bounds={"pixel_frames": (-1.0, 3.0)})
    assert meta["value_check"]["result"] == "passed"
    assert "val/pose.npy" in meta["value_check"]["arrays"]


# ---- finding 2: pose values beyond float32 --------------------------------------------------------

def _kps(x0=100.0):
    return [v for j in range(17) for v in (x0 + 10 * j, 200 + 5 * j, 0.9)]


def test_coco_keypoint_beyond_float32_names_file_and_entry(tmp_path):
    kp = _kps()
    kp[3] = 1e39  # joint 1 x: finite in float64, inf in float32
    p = tmp_path / "video_0001.json"
    p.write_text(json.dumps([{"image_id": 1, "keypoints": _kps()}, {"image_id": 2, "keypoints": kp}]))
    with pytest.raises(ValueError, match=r"video_0001\.json.*entry 1.*1e\+39"):
        read_coco_results(p)


def test_openpose_and_pedgraph_values_beyond_float32(tmp_path):
    vals = [10.0, 20.0, 0.9] * 25
    vals[4] = -1e39
    p = tmp_path / "x_000001_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.9] * 25},
                                        {"pose_keypoints_2d": vals}]}))
    with pytest.raises(ValueError, match=r"keypoints\.json.*person 1.*1e\+39"):
        read_openpose_frame(p)
    kps = np.ones((62, 19, 4))
    kps[7, 3, 2] = 1e39
    q = tmp_path / "set01_video_0001_pid_1_fr_0.pkl"
    with open(q, "wb") as fh:
        pickle.dump({"kps": kps}, fh)
    with pytest.raises(ValueError, match=r"fr_0\.pkl.*frame 7.*1e\+39"):
        read_pedgraph_sample(q)


# ---- at load ----------------------------------------------------------------------------------------

def test_prepared_folder_is_usable_and_check_finds_tampering(pie_root, tmp_path, capsys):
    out = tmp_path / "out"
    prepare_intention("pie", pie_root, out, splits=("val",))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["value_check"]["result"] == "passed"
    assert sorted(meta["value_check"]["arrays"]) == ["val/boxes.npy", "val/ego.npy"]
    # a folder from before the check: refused until `graphfuse check`
    meta.pop("value_check")
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="graphfuse check " + re.escape(str(out))):
        _ = IntentionDataModule(str(out)).meta
    assert main(["check", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "meta.json").read_text())["value_check"]["by"] == "graphfuse check"
    ids = json.loads((out / "val/ids.json").read_text())
    boxes = np.load(out / "val/boxes.npy")
    boxes[4, 9, 2] = 1e30
    np.save(out / "val/boxes.npy", boxes)
    assert main(["check", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "boxes.npy" in err[0] and ids[4] in err[0] and "1e+30" in err[0]
    boxes[4, 9, 2] = 500.0
    np.save(out / "val/boxes.npy", boxes)
    ego = np.load(out / "val/ego.npy")
    ego[2, 3, 1] = np.inf
    np.save(out / "val/ego.npy", ego)
    assert main(["check", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ego.npy" in err and ids[2] in err and "OBD_speed" in err and "inf" in err
    with pytest.raises(ValueError, match="graphfuse check"):
        _ = IntentionDataModule(str(out)).meta
