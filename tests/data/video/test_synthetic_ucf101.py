"""The synthetic UCF101 generator: UCF101's layout and split format read by the real readers,
seeded output, and motions that go the way the class names say."""

from __future__ import annotations

import numpy as np
import pytest

from graphfuse.data.synthetic.ucf101 import MOTIONS, class_names, generate_synthetic_ucf101, render_clip
from graphfuse.data.video.decode import decode_video
from graphfuse.data.video.splits import read_ucf101_split


def test_class_names():
    assert class_names(6) == ["SlideRightStripes", "SlideRightDots", "SpinClockwiseStripes", "SpinClockwiseDots",
                              "OscillateStripes", "OscillateDots"]
    assert len(class_names(10)) == 10 and class_names(10)[-1] == "SpinCounterClockwiseDots"
    with pytest.raises(ValueError, match="2..10"):
        class_names(11)


def test_layout_is_ucf101s(video_raw):
    lists = video_raw / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes() == b"1 SlideRightStripes\r\n2 SlideRightDots\r\n3 SpinClockwiseStripes\r\n"
    s = read_ucf101_split(lists, 1)  # the real reader
    assert len(s.train) == 12 and len(s.test) == 6
    e = s.test[0]
    assert e.path == "SlideRightStripes/v_SlideRightStripes_g01_c01.avi"
    frames = decode_video(video_raw / "UCF-101" / e.path, size=None)
    assert frames.shape[1:] == (40, 40, 3) and 16 <= frames.shape[0] <= 18


def test_seeded(tmp_path):
    a = generate_synthetic_ucf101(tmp_path / "a", classes=2, per_class=6, frames=(12, 12), size=32, seed=5)
    b = generate_synthetic_ucf101(tmp_path / "b", classes=2, per_class=6, frames=(12, 12), size=32, seed=5)
    c = generate_synthetic_ucf101(tmp_path / "c", classes=2, per_class=6, frames=(12, 12), size=32, seed=6)
    assert np.array_equal(decode_video(a[3], size=None), decode_video(b[3], size=None))
    assert not np.array_equal(decode_video(a[3], size=None), decode_video(c[3], size=None))
    with pytest.raises(ValueError, match="multiple of clips_per_group"):
        generate_synthetic_ucf101(tmp_path / "d", per_class=5)


def _centroid_x(clip: np.ndarray, background: np.ndarray) -> np.ndarray:
    diff = np.abs(clip.astype(float) - np.rint(background * 255)[None]).sum(-1) > 60  # the shape's pixels
    xs = np.arange(clip.shape[2])
    return (diff * xs).sum((1, 2)) / np.maximum(diff.sum((1, 2)), 1)


@pytest.mark.parametrize("motion", MOTIONS)
def test_motions_go_the_named_way(motion):
    bg = np.full((64, 64, 3), 0.5)
    clip = render_clip(motion, "Dots", np.random.default_rng(3), bg, 24)
    x = _centroid_x(clip, bg)
    dx = np.diff(x)
    if motion == "SlideRight":
        assert x[-1] - x[0] > 10 and (dx > -0.5).all()
    elif motion == "SlideLeft":
        assert x[0] - x[-1] > 10 and (dx < 0.5).all()
    elif motion == "Oscillate":
        assert (dx > 1).any() and (dx < -1).any()  # goes both ways
    else:  # spinning in place
        assert np.ptp(x) < 2.5
        ang = _orientation(clip, bg)
        turn = np.angle(np.exp(1j * np.diff(ang))).mean()  # mean signed angle step (image y down)
        assert (turn > 0) == (motion == "SpinClockwise") and abs(turn) > 0.05


def _orientation(clip: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Per-frame angle of the dominant texture gradient direction (doubled-angle mean, 4-fold for dots)."""
    g = clip.astype(float).mean(-1)
    gy, gx = np.gradient(g, axis=(1, 2))
    mask = np.abs(clip.astype(float) - np.rint(bg * 255)[None]).sum(-1) > 60
    z = ((gx + 1j * gy) ** 4 * mask).sum((1, 2))
    return np.unwrap(np.angle(z)) / 4
