"""Benchmark crossing sequences on hand-made tracks (expectations worked out by hand)."""

import numpy as np
import pytest

from graphfuse.data.intention.jaad import JAADTrack, JAADVideo
from graphfuse.data.intention.pie import PIETrack, PIEVideo
from graphfuse.data.intention.sequences import (CrossingTracks, balance_mask, benchmark_stride,
                                                build_samples, default_min_track_size,
                                                jaad_crossing_tracks, pie_crossing_tracks,
                                                window_index)


def _boxes(n, x0=100.0):
    x = x0 + np.arange(n, dtype=np.float64)
    return np.stack([x, np.full(n, 200.0), x + 40, np.full(n, 300.0)], 1)


def _tracks(lengths, first_frames, labels=None):
    lengths = np.asarray(lengths)
    frames = np.concatenate([f + np.arange(n) for f, n in zip(first_frames, lengths)])
    labels = np.zeros(len(lengths), np.int64) if labels is None else np.asarray(labels)
    return CrossingTracks(
        keys=[f"video_0001/p{k}" for k in range(len(lengths))],
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        frames=frames.astype(np.int64), boxes=_boxes(len(frames)),
        ego=frames[:, None].astype(np.float64) * 0.5, label=labels, label3=labels.copy(),
        image_size=np.tile([1920, 1080], (len(lengths), 1)), num_pedestrians=len(lengths))


def test_stride_matches_benchmark_float_expression():
    # int((1 - overlap) * obs) in float arithmetic: (1-0.8)*16 = 3.1999.. -> 3, (1-0.6)*16 = 6.4 -> 6,
    # (1-0.8)*32 = 6.3999.. -> 6; overlap 0 -> obs; tiny strides clamp to 1.
    assert benchmark_stride(16, 0.8) == 3
    assert benchmark_stride(16, 0.6) == 6
    assert benchmark_stride(32, 0.8) == 6
    assert benchmark_stride(32, 0.6) == 12
    assert benchmark_stride(16, 0.0) == 16
    assert benchmark_stride(4, 0.9) == 1
    assert default_min_track_size(16, (30, 60)) == 76
    assert default_min_track_size(32, 30) == 62
    with pytest.raises(ValueError):
        benchmark_stride(16, 1.0)


def test_windows_of_hand_made_tracks_pie_overlap():
    # Track 0: 80 frames from frame 1000; track 1: 100 frames from frame 50.
    # obs 16, tte [30, 60], stride 6.  Track 0: starts 80-76=4 .. 80-46=34 -> 4,10,16,22,28,34.
    # Track 1: starts 24 .. 54 -> 24,30,...,54.  tte = L - (start + 16).
    t = _tracks([80, 100], [1000, 50], labels=[1, 0])
    s = build_samples(t, 16, (30, 60), 0.6)
    assert s.track.tolist() == [0] * 6 + [1] * 6
    assert s.start.tolist() == [4, 10, 16, 22, 28, 34, 24, 30, 36, 42, 48, 54]
    assert s.tte.tolist() == [60, 54, 48, 42, 36, 30] * 2
    assert s.frames.shape == (12, 16)
    assert s.frames[0].tolist() == list(range(1004, 1020))
    assert s.frames[6].tolist() == list(range(74, 90))
    assert s.ids[:2] == ["video_0001/p0/1004", "video_0001/p0/1010"]
    assert s.ids[6] == "video_0001/p1/74"
    np.testing.assert_array_equal(s.boxes[6, :, 0], 100.0 + 80 + np.arange(24, 40))
    np.testing.assert_array_equal(s.ego[0, :, 0], 0.5 * np.arange(1004, 1020))
    assert s.label.tolist() == [1] * 6 + [0] * 6
    assert s.image_size.tolist() == [[1920, 1080]] * 12


def test_windows_jaad_overlap_and_fixed_tte():
    t = _tracks([76], [0])
    s = build_samples(t, 16, (30, 60), 0.8)  # stride 3: 0, 3, ..., 30
    assert s.start.tolist() == list(range(0, 31, 3))
    assert s.tte.tolist() == list(range(60, 29, -3))
    s = build_samples(t, 16, 30, 0.8)  # one window [L-16-30, L-30)
    assert s.start.tolist() == [30] and s.tte.tolist() == [30]
    s = build_samples(_tracks([92], [0]), 32, (30, 60), 0.8)  # PedGraph+ obs 32, stride 6
    assert s.start.tolist() == [0, 6, 12, 18, 24, 30]
    assert s.frames.shape == (6, 32)


def test_negative_grid_points_are_not_formed():
    # L = 50 (allowed by a small min_track_size): grid -26, -20, -14, -8, -2, 4 -> only 4.
    track, start, tte = window_index(np.array([50, 40]), 16, (30, 60), 0.6)
    # L = 40: grid -36 .. -6 (last = 40-46 = -6): none.
    assert track.tolist() == [0] and start.tolist() == [4] and tte.tolist() == [30]


def test_window_index_against_loop_reference():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 200, size=40)
    for obs, tte, ov in [(16, (30, 60), 0.6), (16, (30, 60), 0.8), (32, (30, 60), 0.8),
                         (16, 45, 0.6), (8, (0, 10), 0.0), (16, (5, 7), 0.9)]:
        lo, hi = (tte, tte) if isinstance(tte, int) else tte
        stride = max(obs if ov == 0 else int((1 - ov) * obs), 1)
        ref = []
        for k, n in enumerate(lengths.tolist()):  # the benchmark's loop, start >= 0 only
            for i in range(n - obs - hi, n - obs - lo + 1, stride):
                if i >= 0:
                    ref.append((k, i, n - (i + obs)))
        track, start, got_tte = window_index(lengths, obs, tte, ov)
        assert list(zip(track.tolist(), start.tolist(), got_tte.tolist())) == ref


def test_empty_tracks_give_no_samples():
    s = build_samples(_tracks([10], [0]), 16, (30, 60), 0.6)
    assert len(s) == 0 and s.frames.shape == (0, 16) and s.boxes.shape == (0, 16, 4)


def _pie_video(peds):
    """peds: list of (pid, first frame, n frames, crossing, crossing_point)."""
    tracks = {}
    for pid, f0, n, crossing, cp in peds:
        tracks[pid] = PIETrack(pid, "pedestrian", f0 + np.arange(n, dtype=np.int64), _boxes(n),
                               np.zeros(n, np.int64),
                               attributes={"crossing": crossing, "crossing_point": cp})
    ofr = np.arange(0, 2000, dtype=np.int64)
    obd = {"frames": ofr, "GPS_speed": ofr * 0.1, "OBD_speed": ofr * 0.2}
    return PIEVideo("set01", "video_0001", 2000, 1920, 1080, tracks, {}, obd)


def test_pie_crossing_cut_labels_and_min_track():
    v = _pie_video([
        ("1_1_3", 100, 200, 1, 199),    # cut after frame 199 -> 100 frames, crossing
        ("1_1_1", 500, 90, 0, 580),     # 81 frames, not crossing
        ("1_1_2", 800, 120, -1, 874),   # 75 frames < 76 -> dropped
        ("1_1_4", 1000, 80, -1, 1079),  # 80 frames, irrelevant
    ])
    t = pie_crossing_tracks([v], min_track_size=76)
    assert t.num_pedestrians == 4
    assert t.keys == ["set01/video_0001/1_1_1", "set01/video_0001/1_1_3", "set01/video_0001/1_1_4"]
    assert t.lengths.tolist() == [81, 100, 80]
    assert t.label.tolist() == [0, 1, 0]
    assert t.label3.tolist() == [0, 1, 2]
    assert t.frames[t.offsets[1] - 1] == 580  # the event frame closes the track
    np.testing.assert_allclose(t.ego[:3], np.stack([np.arange(500, 503) * 0.1,
                                                    np.arange(500, 503) * 0.2], 1))
    assert pie_crossing_tracks([v], min_track_size=75).lengths.tolist() == [81, 75, 100, 80]


def test_pie_event_frame_missing_is_an_error():
    v = _pie_video([("1_1_1", 500, 90, 0, 700)])
    with pytest.raises(ValueError, match=r"set01/video_0001 pedestrian '1_1_1'.*700"):
        pie_crossing_tracks([v], 76)


def _jaad_video(peds):
    """peds: list of (pid, first frame, n frames, crossing, crossing_point) (attrs for 'b')."""
    tracks = {}
    for pid, f0, n, crossing, cp in peds:
        attrs = {"crossing": crossing, "crossing_point": cp} if "b" in pid else {}
        tracks[pid] = JAADTrack(pid, "x", "pedestrian", f0 + np.arange(n, dtype=np.int64),
                                _boxes(n), np.zeros(n, np.int64), attributes=attrs)
    vf = np.arange(0, 1000, dtype=np.int64)
    return JAADVideo("video_0007", 1000, 1920, 1080, {}, tracks, vf, vf % 5)


def test_jaad_all_end_idx_rule_and_labels():
    v = _jaad_video([
        ("0_7_1", 0, 78, 0, 0),         # non-b: end_idx -3 keeps 76 -> kept
        ("0_7_2", 100, 77, 0, 0),       # non-b: keeps 75 -> dropped
        ("0_7_3b", 200, 150, 1, 289),   # b crossing: cut at 289 -> 90 frames
        ("0_7_4b", 400, 80, -1, -1),    # b without crossing point: end_idx -3 -> 78
        ("0_7_5b", 500, 100, 0, 560),   # b not crossing: 61 frames -> dropped
        ("0_7_6p", 600, 300, 0, 0),     # group -> never used
    ])
    beh = jaad_crossing_tracks([v], 76, "beh")
    assert beh.num_pedestrians == 3
    assert beh.keys == ["video_0007/0_7_3b", "video_0007/0_7_4b"]
    assert beh.lengths.tolist() == [90, 78]
    assert beh.label.tolist() == [1, 0] and beh.label3.tolist() == [1, 0]
    assert beh.frames[beh.offsets[1] - 1] == 289 and beh.frames[-1] == 477
    np.testing.assert_array_equal(beh.ego[:5, 0], np.arange(200, 205) % 5)

    alls = jaad_crossing_tracks([v], 76, "all")
    assert alls.num_pedestrians == 5
    assert alls.keys == ["video_0007/0_7_1", "video_0007/0_7_3b", "video_0007/0_7_4b"]
    assert alls.lengths.tolist() == [76, 90, 78]
    assert alls.frames[alls.offsets[1] - 1] == 75  # frames 0..77 minus the last two
    assert alls.label.tolist() == [0, 1, 0]
    assert alls.label3.tolist() == [2, 1, 0]
    flag = jaad_crossing_tracks([v], 76, "all", jaad_beh_irrelevant=True)
    assert flag.label3.tolist() == [2, 1, 2] and flag.label.tolist() == [0, 1, 0]


def test_jaad_missing_vehicle_frame_is_an_error():
    v = _jaad_video([("0_7_3b", 990, 100, 1, 1080)])  # vehicle frames stop at 999
    with pytest.raises(ValueError, match="video_0007 pedestrian '0_7_3b'.*1000"):
        jaad_crossing_tracks([v], 76, "beh")


def test_balance_mask_official_rule():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 1, 0, 0])  # 3 pos, 7 neg -> drop 4 negatives
    keep = balance_mask(labels)
    assert keep[labels == 1].all()
    assert (labels[keep] == 0).sum() == 3 and keep.sum() == 6
    # the official code: np.random.seed(42); np.random.shuffle(neg_idx); drop the first 4
    neg = np.flatnonzero(labels == 0)
    state = np.random.get_state()
    try:
        np.random.seed(42)
        np.random.shuffle(neg)
    finally:
        np.random.set_state(state)
    assert sorted(np.flatnonzero(~keep).tolist()) == sorted(neg[:4].tolist())
    assert balance_mask(np.array([0, 1])).all()
    with pytest.raises(ValueError):
        balance_mask(np.array([0, 2]))


def test_select_keeps_rows_consistent():
    t = _tracks([80, 90, 100], [0, 1000, 2000], labels=[0, 1, 0])
    sub = t.select(np.array([True, False, True]))
    assert sub.keys == ["video_0001/p0", "video_0001/p2"]
    assert sub.lengths.tolist() == [80, 100]
    assert sub.frames[80] == 2000 and sub.label.tolist() == [0, 0]
    s = build_samples(sub, 16, (30, 60), 0.6)
    assert s.frames[6, 0] == 2000 + 24
