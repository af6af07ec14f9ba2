"""Frame and crop arithmetic of graphfuse.data.video.sampling against hand-worked cases of the
released code (cnn_ucf101_get_im_flow_batch.m, cnn_train_dag.m) and graphfuse's documented rules."""

from __future__ import annotations

import numpy as np
import pytest

from graphfuse.data.video import sampling as S


def test_offsets_range_and_clamping():
    assert S.flow_offsets(10).tolist() == [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4]  # frameOffsets = -5:4
    assert S.valid_range(23) == (6, 18)  # nStack/4+1 : nFrames-nStack/4
    assert S.flow_indices(np.array([6]), 20).tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    assert S.flow_indices(np.array([2]), 6, 4).tolist() == [[1, 1, 2, 3]]  # clamped at the border
    assert S.clamp_frames(np.array([0, 5, 9]), 7).tolist() == [1, 5, 7]
    # shorter than L + 1 flow frames: everything at the middle frame ceil(n / 2)
    rng = np.random.default_rng(0)
    assert S.train_samples(5, rng).tolist() == [3] * 5
    assert S.released_test_samples(9, rng).tolist() == [5] * 50


def test_matlab_helpers():
    assert S.matlab_round(np.array([0.5, 1.5, 2.5, -0.5, 14.5])).tolist() == [1, 2, 3, -1, 15]
    assert S.matlab_colon(6, 15, 23).tolist() == [6, 21]
    assert S.matlab_colon(23, -4, 6).tolist() == [23, 19, 15, 11, 7]
    assert S.matlab_colon(6, 0, 9).size == 0 and S.matlab_colon(9, 1, 6).size == 0


def test_train_samples_short_video_shrinks_the_stride():
    # n = 23: valid 6..18 (room 12); any tau in 5..15 shrinks to floor(12 / 4) = 3, start 6.
    for seed in range(20):
        assert S.train_samples(23, np.random.default_rng(seed)).tolist() == [6, 9, 12, 15, 18]


def test_train_samples_long_video():
    n = 200
    starts, strides = set(), set()
    for seed in range(400):
        s = S.train_samples(n, np.random.default_rng(seed))
        d = np.diff(s)
        assert (d == d[0]).all() and 5 <= d[0] <= 15
        assert s.min() >= 6 and s.max() <= n - 5
        starts.add(int(s[0]))
        strides.add(int(d[0]))
    assert strides == set(range(5, 16))
    assert 6 in starts and max(starts) >= n - 5 - 4 * 15 - 5  # both ends reachable


def test_center_samples():
    assert S.center_samples(100).tolist() == [30, 40, 50, 60, 70]  # room 89, span 40, start 6 + 24
    assert S.center_samples(23).tolist() == [6, 9, 12, 15, 18]


def test_released_exact_50_samples():
    n = 746  # 6:15:741 has exactly 50 samples: no padding, no window
    s = S.released_test_samples(n, np.random.default_rng(0))
    assert s.tolist() == (6 + 15 * np.arange(50)).tolist()
    clips = S.released_clips(s)
    assert clips.shape == (10, 5)
    assert clips[0].tolist() == [6, 156, 306, 456, 606]  # samples 0, 10, 20, 30, 40 (the reshape)
    assert clips[9].tolist() == [141, 291, 441, 591, 741]


def test_released_padding_loop_hand_worked_n28():
    # lo:15:hi = [6, 21] (< 5) -> round(linspace(6, 23, 5)) = [6, 10, 15, 19, 23], stride 4; then the
    # back/front loop with strides 4, 3, 2, 1, 1 (see the test's derivation in docs/data_video.md).
    expected = ([6, 10, 15, 19, 23] + [7, 11, 15, 19, 23] + [6, 9, 12, 15, 18] + [15, 17, 19, 21, 23]
                + list(range(6, 21)) + list(range(9, 24)))
    assert S.released_test_samples(28, np.random.default_rng(0)).tolist() == expected


def test_released_padding_loop_hand_worked_n175():
    # 6:15:170 -> 11 samples, trimmed to 10; back 35:15:170 (stride 15), front 6:14:132 (14),
    # back 53:13:170 (13), front 6:12:114 (12): 50 samples.
    expected = (list(range(6, 142, 15)) + list(range(35, 171, 15)) + list(range(6, 133, 14))
                + list(range(53, 171, 13)) + list(range(6, 115, 12)))
    assert len(expected) == 50
    assert S.released_test_samples(175, np.random.default_rng(0)).tolist() == expected


def test_released_window_never_starts_at_the_first_sample():
    n = 1000  # 6:15:995 = 66 samples > 50: a window s+1..s+50, s = randi(16) >= 1
    firsts = {int(S.released_test_samples(n, np.random.default_rng(k))[0]) for k in range(200)}
    assert firsts == {6 + 15 * s for s in range(1, 17)}


def test_uniform_samples_and_clips():
    s = S.uniform_samples(100)
    assert s[:5].tolist() == [6, 10, 13, 17, 21] and s[-1] == 95 and s.size == 25  # round(linspace(6, 95, 25))
    assert S.uniform_clips(s)[1].tolist() == s[5:10].tolist()
    with pytest.raises(ValueError, match="clips of 4"):
        S.uniform_clips(s, 4)


def test_ten_crops():
    boxes = S.ten_crop_boxes(256, 340)
    assert boxes.tolist() == [[0, 0, 224, 224, 0], [0, 0, 224, 224, 1], [0, 116, 224, 224, 0],
                              [0, 116, 224, 224, 1], [32, 0, 224, 224, 0], [32, 0, 224, 224, 1],
                              [32, 116, 224, 224, 0], [32, 116, 224, 224, 1], [16, 58, 224, 224, 0],
                              [16, 58, 224, 224, 1]]
    assert S.center_crop_box(256, 340) == (16, 58, 224, 224)


def test_nocenter_crop_positions_and_sizes():
    h, w = 256, 340
    for seed in range(300):
        y0, x0, ch, cw, _flip = S.nocenter_crop(h, w, np.random.default_rng(seed))
        assert 168 <= ch <= min(280, h) and 168 <= cw <= min(280, w)
        high_y, high_x = y0 >= np.floor(0.75 * (h - ch)), x0 >= np.floor(0.75 * (w - cw))
        low_y, low_x = y0 <= np.floor(0.25 * (h - ch)), x0 <= np.floor(0.25 * (w - cw))
        assert (high_y and high_x) or (low_y and low_x)  # both from one group: never the centre
        if w - cw > 8:
            assert high_x != low_x
    y0, x0, ch, cw, _ = S.random_crop(100, 120, np.random.default_rng(0), 224)
    assert (y0, x0, ch, cw) == (0, 0, 100, 120)
