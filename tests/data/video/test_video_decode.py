"""Decoding (PyAV) of a synthetic .avi; the frame-size rule of the community format; errors name files."""

from __future__ import annotations

import numpy as np
import pytest

from graphfuse.data.video.decode import VideoDecodeError, decode_video, output_size, probe_video, write_video


@pytest.mark.parametrize("w, h, size, expected", [
    (320, 240, 256, (340, 256)),  # UCF101: floor(341.33) = 341 -> even 340 (the jpegs_256 size)
    (352, 240, 256, (374, 256)),  # floor(375.47) = 375 -> 374
    (240, 320, 256, (256, 340)),  # portrait: the short side is the width
    (176, 144, 256, (312, 256)),  # upscaled: floor(312.89)
    (64, 48, None, (64, 48)),
])
def test_output_size(w, h, size, expected):
    assert output_size(w, h, size) == expected


@pytest.mark.parametrize("codec", ["mpeg4", "mjpeg"])
def test_decode_synthetic_avi(tmp_path, codec):
    t, h, w = 9, 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(xx * 3 + 20 * k) % 256, (yy * 4) % 256, np.full_like(xx, 100)], -1)
                       for k in range(t)]).astype(np.uint8)
    path = write_video(tmp_path / "v_A_g01_c01.avi", frames, codec=codec)
    info = probe_video(path)
    assert (info["width"], info["height"], info["codec"]) == (w, h, codec)
    got = decode_video(path, size=None)
    assert got.shape == (t, h, w, 3) and got.dtype == np.uint8
    # lossy codec on a smooth image: close to the original, frame order kept
    err = np.abs(got.astype(int) - frames.astype(int)).mean(axis=(1, 2, 3))
    assert err.max() < 8
    assert decode_video(path, size=32).shape == (t, 32, 42, 3)  # 64x48 -> short side 32: 42.67 -> 42
    assert decode_video(path, size=None, max_frames=4).shape[0] == 4


def test_decode_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF" + b"\x00garbage" * 50)
    with pytest.raises(VideoDecodeError, match="broken.avi"):
        decode_video(bad)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.avi"):
        decode_video(empty)
    with pytest.raises(FileNotFoundError, match="missing.avi"):
        decode_video(tmp_path / "missing.avi")
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "odd.avi", np.zeros((2, 5, 4, 3), np.uint8))
