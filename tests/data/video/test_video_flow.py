"""Flow quantisation (the community +-20 format), TV-L1 on a moving square, flow-folder registration."""

from __future__ import annotations

import numpy as np
import pytest

from graphfuse.data.video.flow import (
    FLOW_BOUND,
    TVL1_FAST,
    FlowFormatError,
    compute_quantized_flow,
    count_frames,
    dequantize_flow,
    quantization_step,
    quantize_flow,
    register_flow_video,
    to_gray,
    tvl1_flow,
)


def test_quantisation_hand_values():
    f = np.array([-25.0, -20.0, -20 + 40 / 255, 0.0, 0.07, 20.0, 31.0])
    # (f + 20) * 255 / 40: -31.9 -> 0 (clipped), 0, 1, 127.5 -> 128 (half to even, cvRound), 127.95 -> 128,
    # 255, 325 -> 255 (clipped)
    assert quantize_flow(f).tolist() == [0, 0, 1, 128, 128, 255, 255]
    assert dequantize_flow(np.array([0, 128, 255], np.uint8)).tolist() == pytest.approx([-20.0, 20 / 255, 20.0], abs=1e-5)
    assert quantization_step() == pytest.approx(40 / 255)


def test_quantisation_round_trip_within_one_step():
    f = np.random.default_rng(0).uniform(-FLOW_BOUND, FLOW_BOUND, 100_000)
    back = dequantize_flow(quantize_flow(f)).astype(np.float64)
    err = np.abs(back - f)
    assert err.max() <= quantization_step() / 2 + 1e-5  # rounding: half a step at most
    # outside the bound: clipped to it
    assert dequantize_flow(quantize_flow(np.array([-100.0, 100.0]))).tolist() == [-20.0, 20.0]


def test_flip_negates_dequantised_u_exactly():
    q = np.arange(256, dtype=np.uint8)
    assert np.allclose(dequantize_flow(255 - q), -dequantize_flow(q), atol=1e-5)


def test_non_finite_flow_is_an_error():
    with pytest.raises(ValueError, match=r"index \(1,\) is nan"):
        quantize_flow(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="uint8"):
        dequantize_flow(np.zeros(3, np.int16))


def _moving_square(dx: int, dy: int, frames: int = 4, size: int = 48) -> np.ndarray:
    """A textured square moving (dx, dy) px/frame over a smooth static background, RGB uint8."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:size, 0:size]
    bg = 90 + 30 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    tex = rng.integers(0, 2, (8, 8)).repeat(2, 0).repeat(2, 1) * 120 + 80  # 16x16 texture of 2-px blocks
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):  # building the test input
        img = bg.copy()
        y0, x0 = 16 + dy * t, 14 + dx * t
        img[y0:y0 + 16, x0:x0 + 16] = tex
        out[t] = np.clip(img, 0, 255)[..., None]
    return out


@pytest.mark.parametrize("dx, dy", [(2, 0), (-2, 0), (0, 2), (0, -2)])
def test_tvl1_recovers_the_direction_of_a_translating_square(dx, dy):
    frames = _moving_square(dx, dy)
    flow = tvl1_flow(to_gray(frames), TVL1_FAST)
    assert flow.shape == (3, 48, 48, 2) and flow.dtype == np.float32
    # inside the square at its first position's interior (it stays covered by the square next frame)
    y0, x0 = 16 + 4, 14 + 4
    u = np.median(flow[0, y0:y0 + 8, x0:x0 + 8, 0])
    v = np.median(flow[0, y0:y0 + 8, x0:x0 + 8, 1])
    assert u == pytest.approx(dx, abs=0.6) and v == pytest.approx(dy, abs=0.6)  # the direction, ~the speed
    corner = flow[:, :6, :6]  # static background far from the square
    assert np.abs(corner).max() < 0.5
    qu, qv, stats = compute_quantized_flow(frames, TVL1_FAST)
    assert qu.shape == qv.shape == (3, 48, 48) and qu.dtype == np.uint8
    deq = dequantize_flow(qu[0, y0:y0 + 8, x0:x0 + 8]).astype(np.float64)
    assert np.abs(deq - flow[0, y0:y0 + 8, x0:x0 + 8, 0]).max() <= quantization_step() / 2 + 1e-5
    assert stats["clipped_fraction"] == 0.0 and 1.5 < stats["max_abs"] < 20


def _jpegs(folder, n, size=(8, 6)):
    import cv2

    folder.mkdir(parents=True)
    for k in range(1, n + 1):
        cv2.imwrite(str(folder / f"frame{k:06d}.jpg"), np.full((size[1], size[0]), 128, np.uint8))


def test_register_flow_folder(tmp_path):
    _jpegs(tmp_path / "u" / "vid", 3)
    _jpegs(tmp_path / "v" / "vid", 3)
    assert register_flow_video(tmp_path, "vid", (8, 6)) == 3
    with pytest.raises(FlowFormatError, match="flow image is 8x6, the RGB frames are 10x6"):
        register_flow_video(tmp_path, "vid", (10, 6))
    (tmp_path / "v" / "vid" / "frame000003.jpg").unlink()
    with pytest.raises(FlowFormatError, match="3 u and 2 v"):
        register_flow_video(tmp_path, "vid")
    with pytest.raises(FileNotFoundError, match="other"):
        register_flow_video(tmp_path, "other")


def test_count_frames_refuses_gaps_and_strangers(tmp_path):
    d = tmp_path / "f"
    _jpegs(d, 3)
    assert count_frames(d) == 3
    (d / "frame000002.jpg").unlink()
    with pytest.raises(FlowFormatError, match="frame000002.jpg missing"):
        count_frames(d)
    (d / "notes.txt").write_text("x")
    with pytest.raises(FlowFormatError, match="'notes.txt' is not named"):
        count_frames(d)
    e = tmp_path / "empty"
    e.mkdir()
    with pytest.raises(FlowFormatError, match="no frame images"):
        count_frames(e)
