"""ML-GCN's MultiScaleCrop (candidate sizes and the 13 fixed offsets, hand-computed), Warp,
flip and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from graphfuse.data.multilabel.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiScaleCrop,
    Warp,
    build_transform,
)


def test_crop_sizes_640x480_hand_computed():
    # shorter side 480; int(480 * s) for s in (1, .875, .75, .66, .5) = 480, 420, 360, 316, 240
    # (480 * .66 = 316.8 -> 316); none is within 2 px of 448, so no snapping.
    # Pairs (w from scale j, h from scale i) with |i - j| <= 2, rows over h as util.py loops:
    expected = [
        (480, 480), (420, 480), (360, 480),
        (480, 420), (420, 420), (360, 420), (316, 420),
        (480, 360), (420, 360), (360, 360), (316, 360), (240, 360),
        (420, 316), (360, 316), (316, 316), (240, 316),
        (360, 240), (316, 240), (240, 240),
    ]
    assert MultiScaleCrop(448).crop_sizes(640, 480) == expected
    # max_distort=1: only neighbouring scales
    assert MultiScaleCrop(448, max_distort=1).crop_sizes(640, 480) == [
        (480, 480), (420, 480), (480, 420), (420, 420), (360, 420), (420, 360), (360, 360), (316, 360),
        (360, 316), (316, 316), (240, 316), (316, 240), (240, 240)]


def test_crop_sizes_snap_to_the_output_size():
    # shorter side 450: int(450 * 1) = 450 is within 2 px of 448 -> 448; 393, 337, 297, 225 stay
    sides = MultiScaleCrop(448, max_distort=0).crop_sizes(500, 450)
    assert sides == [(448, 448), (393, 393), (337, 337), (297, 297), (225, 225)]


def test_thirteen_fixed_offsets_hand_computed():
    # 640 x 480 image, 360 x 240 crop: w_step = (640 - 360) // 4 = 70, h_step = (480 - 240) // 4 = 60
    offsets = MultiScaleCrop.fixed_offsets(True, 640, 480, 360, 240)
    assert offsets == [
        (0, 0), (280, 0), (0, 240), (280, 240), (140, 120),  # corners, centre
        (0, 120), (280, 120), (140, 240), (140, 0),  # centre left / right, lower / upper centre
        (70, 60), (210, 60), (70, 180), (210, 180),  # quarter points
    ]
    assert MultiScaleCrop.fixed_offsets(False, 640, 480, 360, 240) == offsets[:5]
    # a crop snapped larger than the image: negative steps, as the reference computes them
    assert MultiScaleCrop.fixed_offsets(False, 446, 446, 448, 448)[1] == (-4, 0)


def test_sample_draws_from_the_candidates():
    msc = MultiScaleCrop(448)
    rng = np.random.default_rng(0)
    seen_sizes, seen_offsets = set(), set()
    for _ in range(2000):
        cw, ch, x, y = msc.sample(640, 480, rng)
        assert (cw, ch) in msc.crop_sizes(640, 480)
        assert (x, y) in msc.fixed_offsets(True, 640, 480, cw, ch)
        seen_sizes.add((cw, ch))
        if (cw, ch) == (360, 240):
            seen_offsets.add((x, y))
    assert len(seen_sizes) == 19 and len(seen_offsets) == 13
    free = MultiScaleCrop(448, fix_crop=False)
    for _ in range(200):
        cw, ch, x, y = free.sample(640, 480, rng)
        assert 0 <= x <= 640 - cw and 0 <= y <= 480 - ch


def test_call_crops_then_resizes():
    img = torch.arange(3 * 48 * 64, dtype=torch.int64).reshape(3, 48, 64).remainder(251).to(torch.uint8)
    msc = MultiScaleCrop(32)
    cw, ch, x, y = msc.sample(64, 48, np.random.default_rng(5))
    out = msc(img, np.random.default_rng(5))
    ref = F.resize(img[:, y:y + ch, x:x + cw], [32, 32], interpolation=InterpolationMode.BILINEAR, antialias=True)
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 32)
    assert torch.equal(out, ref)


def test_warp_and_normalisation():
    img = torch.zeros(3, 30, 50, dtype=torch.uint8)
    img[0], img[1], img[2] = 255, 128, 0
    assert Warp(16)(img).shape == (3, 16, 16)
    out = build_transform("test", 16)(img, None)
    assert out.dtype == torch.float32 and out.shape == (3, 16, 16)
    for c, v in enumerate((255, 128, 0)):
        expected = (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(out[c], torch.full((16, 16), expected), atol=1e-5, rtol=0)


def test_flip_half_the_time_and_seeded():
    img = torch.zeros(3, 8, 8, dtype=torch.uint8)
    img[:, :, :4] = 255  # left half white
    tf = build_transform("resize", 8)
    flipped = [bool(tf(img, np.random.default_rng(s))[0, 0, 0] < 0) for s in range(200)]
    assert 70 < sum(flipped) < 130
    a = build_transform("mlgcn", 8)(img, np.random.default_rng(7))
    b = build_transform("mlgcn", 8)(img, np.random.default_rng(7))
    assert torch.equal(a, b)


def test_bad_options():
    with pytest.raises(ValueError, match="scales"):
        MultiScaleCrop(448, scales=(1.0, 875))  # the reference's class-default typo
    with pytest.raises(ValueError, match="transform"):
        build_transform("random", 448)  # type: ignore[arg-type]
