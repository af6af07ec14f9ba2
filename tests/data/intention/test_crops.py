"""Pedestrian crops on synthetic images, and frame reading from the PIE / JAAD layouts."""

import numpy as np
import pytest
from PIL import Image

from graphfuse.data.intention.crops import crop_pedestrian, frame_path, read_frame


def ramp_image(h=300, w=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_box_of_output_size_is_copied_exactly():
    img = ramp_image()
    out = crop_pedestrian(img, np.array([[10, 20, 74, 212]]))  # 64 x 192: scale 1
    assert out.shape == (1, 3, 192, 64) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0].transpose(1, 2, 0), img[20:212, 10:74])


def test_aspect_preserved_with_zero_padding():
    img = ramp_image()
    # a 64 x 64 box: scale min(64/64, 192/64) = 1, content in rows 64..127, zeros above and below
    out = crop_pedestrian(img, [10, 20, 74, 84])[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(out[64:128], img[20:84, 10:74])
    assert (out[:64] == 0).all() and (out[128:] == 0).all()
    # mode="expand" fills the same rows with the image above and below the box
    exp = crop_pedestrian(img, [10, 20 + 64, 74, 84 + 64], mode="expand")[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(exp, img[20:212, 10:74])


def test_upscale_of_a_flat_region_is_flat_and_context_enlarges():
    img = np.zeros((100, 100, 3), np.uint8)
    img[20:80, 40:60] = (10, 200, 30)
    out = crop_pedestrian(img, [45, 30, 55, 60])  # 10 x 30 inside the flat patch, scale 6.4
    assert (out[0, :, :, :] == np.array([10, 200, 30])[:, None, None]).all()
    # context 2 about the centre == the doubled box
    a = crop_pedestrian(img, [45, 30, 55, 60], context=2.0)
    b = crop_pedestrian(img, [40, 15, 60, 75])
    np.testing.assert_array_equal(a, b)


def test_single_image_many_boxes_equals_stacked_frames():
    img = ramp_image()
    boxes = np.array([[0, 0, 50, 150], [100.5, 30.25, 140.5, 290.0], [20, 40, 200, 100]])
    one = crop_pedestrian(img, boxes)
    many = crop_pedestrian(np.stack([img] * 3), boxes)
    np.testing.assert_array_equal(one, many)
    assert one.shape == (3, 3, 192, 64)


def _reference(img, box, out_h, out_w, context, mode):
    """float64 loop over output pixels: bilinear sample at the pixel centre (no antialiasing)."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    bw, bh = (x2 - x1) * context, (y2 - y1) * context
    s = min(out_w / bw, out_h / bh)
    out = np.zeros((out_h, out_w, 3))
    for i in range(out_h):
        for j in range(out_w):
            X = cx + (j + 0.5 - out_w / 2) / s
            Y = cy + (i + 0.5 - out_h / 2) / s
            if mode == "pad" and (abs(X - cx) > bw / 2 or abs(Y - cy) > bh / 2):
                continue
            px, py = X - 0.5, Y - 0.5
            x0, y0 = int(np.floor(px)), int(np.floor(py))
            for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                    if 0 <= xx < w and 0 <= yy < h:
                        out[i, j] += wx * wy * img[yy, xx]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(2, 0, 1)


@pytest.mark.parametrize("box, context, mode", [
    ((12.3, 40.7, 31.9, 70.2), 1.0, "pad"),     # upscaling, fractional box
    ((-5.0, 250.0, 25.0, 320.0), 1.3, "pad"),   # partly outside the frame: zeros there
    ((60.0, 10.0, 190.0, 60.0), 1.0, "expand"),  # wide box, image content beside it
])
def test_matches_loop_reference(box, context, mode):
    img = ramp_image(seed=1)
    got = crop_pedestrian(img, np.array([box]), out_hw=(24, 8), context=context, mode=mode, antialias=False)
    ref = _reference(img, box, 24, 8, context, mode)
    assert np.abs(got[0].astype(int) - ref.astype(int)).max() <= 1  # rounding at .5 only


def test_antialias_averages_a_downscaled_checkerboard():
    img = np.zeros((384, 128, 3), np.uint8)
    img[(np.arange(384)[:, None] + np.arange(128)[None, :]) % 2 == 1] = 200
    out = crop_pedestrian(img, [0, 0, 128, 384])  # scale 0.5: 2 x 2 samples per pixel
    assert np.abs(out.astype(int) - 100).max() <= 1
    assert out.shape == (1, 3, 192, 64)


def test_crop_errors():
    img = ramp_image()
    with pytest.raises(ValueError, match=r"box 1 .* with area"):
        crop_pedestrian(img, [[0, 0, 10, 10], [5, 5, 5, 9]])
    with pytest.raises(ValueError, match=r"box 0 .* entirely outside its 200x300 image"):
        crop_pedestrian(img, [[250, 0, 260, 10]])
    with pytest.raises(ValueError, match="uint8"):
        crop_pedestrian(img.astype(np.float32), [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match="2 images for 1 boxes"):
        crop_pedestrian(np.stack([img, img]), [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match=r"box 0 .* with area"):
        crop_pedestrian(img, [[0, np.nan, 10, 10]])


def test_read_frame_pie_and_jaad_layouts(tmp_path):
    img = ramp_image(40, 30)
    pie = tmp_path / "PIE" / "images" / "set03" / "video_0002"
    pie.mkdir(parents=True)
    Image.fromarray(img).save(pie / "00123.png")
    np.testing.assert_array_equal(read_frame(tmp_path / "PIE", "set03", "video_0002", 123), img)
    np.testing.assert_array_equal(read_frame(tmp_path / "PIE" / "images", "set03", "video_0002", 123), img)
    jaad = tmp_path / "JAAD" / "images" / "video_0007"
    jaad.mkdir(parents=True)
    Image.fromarray(img).save(jaad / "00000.png")
    np.testing.assert_array_equal(read_frame(tmp_path / "JAAD", None, "video_0007", 0), img)
    assert frame_path(tmp_path / "JAAD", "", "video_0007", 5) == jaad / "00005.png"
    with pytest.raises(FileNotFoundError, match=str(pie / "00124.png")):
        read_frame(tmp_path / "PIE", "set03", "video_0002", 124)
    (pie / "00125.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"00125\.png: not a readable image"):
        read_frame(tmp_path / "PIE", "set03", "video_0002", 125)


def test_crop_samples_reads_each_frame_once(tmp_path, monkeypatch):
    from graphfuse.data.intention import crops

    img5, img6 = ramp_image(seed=5), ramp_image(seed=6)
    d = tmp_path / "images" / "set01" / "video_0001"
    d.mkdir(parents=True)
    Image.fromarray(img5).save(d / "00005.png")
    Image.fromarray(img6).save(d / "00006.png")
    calls = []
    real = crops.read_frame
    monkeypatch.setattr(crops, "read_frame", lambda *a: calls.append(a) or real(*a))
    keys = ["set01/video_0001/1_1_1", "set01/video_0001/1_1_2", "set01/video_0001/1_1_1"]
    boxes = np.array([[10, 20, 74, 212], [0, 0, 32, 96], [20, 30, 84, 222]], float)
    out = crops.crop_samples(tmp_path, "pie", keys, np.array([5, 5, 6]), boxes, size=(192, 64))
    assert out.shape == (3, 3, 192, 64) and len(calls) == 2
    np.testing.assert_array_equal(out[0].transpose(1, 2, 0), img5[20:212, 10:74])
    np.testing.assert_array_equal(out[2].transpose(1, 2, 0), img6[30:222, 20:84])
    np.testing.assert_array_equal(out[1], crop_pedestrian(img5, boxes[1])[0])
    with pytest.raises(ValueError, match="set/video/ped"):
        crops.crop_samples(tmp_path, "pie", ["video_0001/1"], np.array([5]), boxes[:1])
    with pytest.raises(FileNotFoundError, match="00007.png"):
        crops.crop_samples(tmp_path, "pie", keys[:1], np.array([7]), boxes[:1])
