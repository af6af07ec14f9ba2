"""Tests of the synthetic PIE generator (graphfuse.data.synthetic.pie).

The generated tree is read back with the real PIE readers (read_pie_video, pie_split_videos)
and, for the raw XML and JSON, with small independent checks written here (regular
expressions over the text, json.loads, an IoU loop). Expectations are recomputed from the
parsed files, never taken from the generator's own arrays.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.intention.pie import PIE_SPLIT_SETS, pie_split_videos, read_pie_video
from graphfuse.data.synthetic import pie as syn

SMALL = dict(sets=("set01", "set05"), videos_per_set=1, peds_per_video=5)


@pytest.fixture(scope="module")
def default_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic_pie") / "raw"
    return root, syn.generate_synthetic_pie(root)


@pytest.fixture(scope="module")
def default_videos(default_tree: tuple[Path, dict]) -> dict:
    root, summary = default_tree
    return {(v["set_id"], v["video_id"]): read_pie_video(root, v["set_id"], v["video_id"])
            for v in summary["videos"]}


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return 0.5 * (pred[y].mean() + (~pred[~y]).mean())


def _best_threshold_bacc(x: np.ndarray, y: np.ndarray) -> float:
    """Best balanced accuracy of 'x >= t' over all thresholds t (a plain loop)."""
    return max(_balanced_accuracy(y, x >= t) for t in np.unique(x))


# -- structure -----------------------------------------------------------------------------------
def test_every_video_parses_and_matches_summary(default_tree, default_videos):
    root, summary = default_tree
    assert len(default_videos) == sum(syn.DEFAULT_VIDEOS_PER_SET.values()) == 18
    for v in summary["videos"]:
        video = default_videos[(v["set_id"], v["video_id"])]
        assert (video.width, video.height, video.num_frames) == (1920, 1080, v["num_frames"])
        # OBD: every frame of the video, in order.
        np.testing.assert_array_equal(video.obd["frames"], np.arange(v["num_frames"]))
        assert {"OBD_speed", "GPS_speed", "heading_angle", "latitude", "longitude", "yaw", "pitch",
                "roll", "accX", "accY", "accZ", "gyroX", "gyroY", "gyroZ"} <= set(video.obd)
        assert (video.obd["OBD_speed"] >= 0).all() and (video.obd["GPS_speed"] >= 0).all()
        peds = {p["ped_id"]: p for p in v["pedestrians"]}
        assert sorted(video.pedestrians) == sorted(peds)
        assert len(video.traffic) == v["traffic_objects"]
        for pid, track in video.pedestrians.items():
            a, p = track.attributes, peds[pid]
            assert a["crossing"] == p["crossing"] and a["crossing_point"] == p["crossing_point"]
            assert track.frames[0] == a["exp_start_point"] <= a["critical_point"] <= a["crossing_point"]
            assert 0.0 <= a["intention_prob"] <= 1.0
            # Contiguous frames; the event frame is annotated.
            np.testing.assert_array_equal(np.diff(track.frames), 1)
            idx = int(np.flatnonzero(track.frames == a["crossing_point"])[0])
            assert idx + 1 == p["event_track_length"]
            if a["crossing"] == 1 and not p["label_flipped"]:
                # The per-frame 'cross' label switches on at the crossing point.
                assert track.behavior["cross"][idx] == 1 and (track.behavior["cross"][:idx] == 0).all()
            if p["intent"] != 1:  # PIE: the event of a non-crosser is its third-to-last frame
                assert idx == len(track.frames) - 3
            # Boxes inside the image, with area.
            b = track.boxes
            assert (b[:, 0] >= 0).all() and (b[:, 2] <= 1920).all() and (b[:, 1] >= 0).all()
            assert (b[:, 3] <= 1080).all()
            assert ((b[:, 2] - b[:, 0]) > 1).all() and ((b[:, 3] - b[:, 1]) > 5).all()


def test_split_counts_match_summary_and_benchmark_size(default_tree, default_videos):
    root, summary = default_tree
    for split in ("train", "val", "test"):
        listed = pie_split_videos(root, split)
        assert set(summary["splits"][split]["sets"]) == set(PIE_SPLIT_SETS[split])
        tracks = [t for key in listed for t in default_videos[key].pedestrians.values()]
        crossing = np.array([t.attributes["crossing"] for t in tracks])
        lengths = np.array([int(np.flatnonzero(t.frames == t.attributes["crossing_point"])[0]) + 1
                            for t in tracks])
        s = summary["splits"][split]
        assert s["pedestrians"] == len(tracks) == 16 * s["videos"]
        assert s["crossing"] == {str(c): int((crossing == c).sum()) for c in (1, 0, -1)}
        assert all(s["crossing"][c] > 0 for c in ("1", "0", "-1"))
        assert s["tracks_min_76"] == int((lengths >= 76).sum())
        # The PCPA windowing (obs 16, tte 30-60, stride 6) gives 6 windows per long track.
        n_windows = len(range(0, 30 + 1, 6))
        assert s["benchmark_samples_obs16"] == n_windows * int((lengths >= 76).sum())
        lo, hi = {"train": (600, 1500), "val": (150, 400), "test": (300, 600)}[split]
        assert lo <= s["benchmark_samples_obs16"] <= hi, (split, s["benchmark_samples_obs16"])
        # Most tracks are long enough for the benchmark, for obs 32 too.
        assert (lengths >= 92).mean() > 0.75


def test_raw_annotation_text(default_tree, default_videos):
    """Independent regex count: boxes with outside="0" per track equal the parsed frames;
    some tracks end with an outside="1" box; traffic objects of several kinds exist."""
    root, summary = default_tree
    labels, n_outside = set(), 0
    for v in summary["videos"][:4]:
        text = (root / "annotations" / v["set_id"] / f"{v['video_id']}_annt.xml").read_text()
        assert f"<size>{v['num_frames']}</size>" in text
        video = default_videos[(v["set_id"], v["video_id"])]
        for chunk in text.split("<track ")[1:]:
            label = re.match(r'label="([^"]+)"', chunk).group(1)
            oid = re.search(r'<attribute name="id">([^<]+)</attribute>', chunk).group(1)
            labels.add(label)
            n_outside += len(re.findall(r'outside="1"', chunk))
            track = video.pedestrians[oid] if label == "pedestrian" else video.traffic[oid]
            assert len(re.findall(r'outside="0"', chunk)) == len(track.frames)
            assert re.search(r'xtl="\d+\.\d\d"', chunk)  # two decimals, like the real files
        attrs = (root / "annotations_attributes" / v["set_id"]
                 / f"{v['video_id']}_attributes.xml").read_text()
        assert attrs.startswith("<ped_attributes><pedestrian age=") and attrs.count("<pedestrian ") == 16
    assert n_outside > 0
    assert {"pedestrian", "vehicle", "crosswalk", "traffic_light"} <= labels


# -- poses ---------------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) with boxes b (K, 4), x1 y1 x2 y2."""
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


def test_pose_json(default_tree, default_videos):
    root, summary = default_tree
    matched = total = 0
    multi = 0
    for v in summary["videos"][:3]:
        entries = json.loads((root / "poses" / v["set_id"] / f"{v['video_id']}.json").read_text())
        assert isinstance(entries, list) and len(entries) == v["detections"]
        frames = np.array([int(Path(e["image_id"]).stem) for e in entries])
        assert all(re.fullmatch(r"\d{5}\.png", e["image_id"]) for e in entries)
        assert all(e["category_id"] == 1 and len(e["keypoints"]) == 17 * 3 and len(e["box"]) == 4
                   for e in entries)
        assert ((frames >= 0) & (frames < v["num_frames"])).all() and (np.diff(frames) >= 0).all()
        kp = np.array([e["keypoints"] for e in entries]).reshape(-1, 17, 3)
        assert ((kp[..., 2] > 0) & (kp[..., 2] <= 1)).all()
        assert (kp[..., 0] >= 0).all() and (kp[..., 0] < 1920).all() and (kp[..., 1] < 1080).all()
        kbox = np.concatenate([kp[..., :2].min(1), kp[..., :2].max(1)], -1)
        multi += int((np.bincount(frames) > 1).sum())
        video = default_videos[(v["set_id"], v["video_id"])]
        for track in video.pedestrians.values():
            for f, box in zip(track.frames, track.boxes):  # a plain loop reference
                sel = np.flatnonzero(frames == f)
                total += 1
                matched += bool(sel.size) and _iou(box, kbox[sel]).max() >= 0.3
    # Detections exist for most annotated frames, but some are missed.
    assert 0.8 < matched / total < 0.995
    assert multi > 100  # several people are detected in one frame


def test_image_ids_int(tmp_path):
    summary = syn.generate_synthetic_pie(tmp_path, seed=1, image_ids="int", **SMALL)
    v = summary["videos"][0]
    entries = json.loads((tmp_path / "poses" / v["set_id"] / f"{v['video_id']}.json").read_text())
    assert all(isinstance(e["image_id"], int) for e in entries)


# -- determinism and options ---------------------------------------------------------------------
def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_by_seed(tmp_path):
    a = syn.generate_synthetic_pie(tmp_path / "a", seed=3, **SMALL)
    b = syn.generate_synthetic_pie(tmp_path / "b", seed=3, **SMALL)
    c = syn.generate_synthetic_pie(tmp_path / "c", seed=4, **SMALL)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b and fa == fb and len(fa) == 2 * 4 + 1
    assert fa.keys() == fc.keys() and all(fa[k] != fc[k] for k in fa)
    # A video does not depend on which other sets are generated.
    syn.generate_synthetic_pie(tmp_path / "d", seed=3, sets=("set05",), videos_per_set=1, peds_per_video=5)
    fd = _files(tmp_path / "d")
    assert all(fd[k] == fa[k] for k in fd if "set05" in k) and sum("set05" in k for k in fd) == 4


def test_label_noise(tmp_path):
    clean = syn.generate_synthetic_pie(tmp_path / "a", seed=5, label_noise=0.0, **SMALL)
    noisy = syn.generate_synthetic_pie(tmp_path / "b", seed=5, label_noise=1.0, **SMALL)
    for s, flip in ((clean, False), (noisy, True)):
        for v in s["videos"]:
            video = read_pie_video(tmp_path / ("b" if flip else "a"), v["set_id"], v["video_id"])
            for p in v["pedestrians"]:
                annotated = video.pedestrians[p["ped_id"]].attributes["crossing"]
                # Irrelevant pedestrians are never flipped; the others swap 0 <-> 1.
                expect = 1 - p["intent"] if flip and p["intent"] != -1 else p["intent"]
                assert annotated == expect and p["label_flipped"] == (annotated != p["intent"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(sets=("set1",)), "set01"),
    (dict(sets=("set01", "set01")), "distinct"),
    (dict(sets=("set01",), peds_per_video=0), ">= 1"),
    (dict(sets=("set01",), videos_per_set={"set02": 1}), "not generated"),
    (dict(sets=("set01",), label_noise=1.5), "label_noise"),
    (dict(sets=("set01",), image_ids="path"), "image_ids"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        syn.generate_synthetic_pie(tmp_path, **kwargs)


# -- learnability --------------------------------------------------------------------------------
def _lateral_toward_road(track, end: int, k: int) -> float:
    """Lateral displacement towards the image centre (the ego lane) over frames end-k..end,
    in statures: box centre offset from the principal column divided by the box height is
    X / H in the ground plane, so the ego vehicle's own motion cancels out."""
    b = track.boxes
    xr = ((b[:, 0] + b[:, 2]) / 2 - 960.0) / (b[:, 3] - b[:, 1])
    return float(-np.sign(xr[end]) * (xr[end] - xr[end - k]))


def test_crossing_is_predictable_but_not_trivially(default_tree, default_videos):
    """One hand-computed feature, one threshold: informative, far from perfect."""
    root, summary = default_tree
    rows = []
    for video in default_videos.values():
        for t in video.pedestrians.values():
            idx = int(np.flatnonzero(t.frames == t.attributes["crossing_point"])[0])
            if idx + 1 < 76:  # the benchmark's minimum track length
                continue
            end30 = idx - 30  # last observed frame of the window nearest to the event (tte 30)
            speed = video.ego_at("GPS_speed", t.frames[end30 - 15:end30 + 1])
            rows.append((t.attributes["crossing"] == 1, _lateral_toward_road(t, idx, 15),
                         _lateral_toward_road(t, end30, 15), speed[0] - speed[-1]))
    y, near_event, observed, decel = (np.array(c) for c in zip(*rows))
    assert 0.3 < y.mean() < 0.5
    # Crossers move towards the road, most clearly just before they step off the curb ...
    assert near_event[y].mean() > 0.05 > abs(near_event[~y].mean())
    assert 0.8 < _best_threshold_bacc(near_event, y) < 0.98
    # ... and still visibly 1-2 s earlier, at the end of a benchmark observation window,
    # where the ego vehicle also slows down for them more often.
    assert 0.65 < _best_threshold_bacc(observed, y) < 0.9
    assert decel[y].mean() > decel[~y].mean() + 1.0
    assert 0.6 < _best_threshold_bacc(decel, y) < 0.9


# -- preparation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("obs_length", [16, 32])
def test_prepare_synthetic_pie(tmp_path, obs_length):
    pytest.importorskip("graphfuse.data.intention.prepare")
    pytest.importorskip("graphfuse.data.intention.poses")
    gen = dict(videos_per_set=1, peds_per_video=6)
    meta = syn.prepare_synthetic_pie(tmp_path, seed=2, obs_length=obs_length, generate_kwargs=gen)
    summary = json.loads((tmp_path / "raw" / "synthetic_pie.json").read_text())
    assert meta == json.loads((tmp_path / "meta.json").read_text())
    assert meta["dataset"] == "synthetic-pie" and meta["pose"]["format"] == "coco"
    assert meta["options"]["obs_length"] == obs_length
    assert meta["pose"]["matched_frames"] > 5 * meta["pose"]["missing_frames"]
    min_len = obs_length + 60
    for split in ("train", "val", "test"):
        s, m = summary["splits"][split], meta["splits"][split]
        assert m["pedestrians"] == s["pedestrians"]
        assert m["tracks"] == s[f"tracks_min_{min_len}"]
        assert m["samples"] == s[f"benchmark_samples_obs{obs_length}"]
        if obs_length == 16:
            assert m["positive"] == s["positive_samples_obs16"]
        assert np.load(tmp_path / split / "pose.npy").shape == (m["samples"], obs_length, 19, 4)
    with pytest.raises(FileExistsError):
        syn.prepare_synthetic_pie(tmp_path, seed=2, obs_length=obs_length, generate_kwargs=gen)


def test_prepare_refuses_foreign_videos(tmp_path):
    pytest.importorskip("graphfuse.data.intention.prepare")
    syn.generate_synthetic_pie(tmp_path / "raw", seed=0, sets=("set01",), videos_per_set=2, peds_per_video=2)
    with pytest.raises(ValueError, match="did not write"):
        syn.prepare_synthetic_pie(tmp_path, generate_kwargs=dict(sets=("set01",), videos_per_set=1,
                                                                 peds_per_video=2), splits=("train",))
