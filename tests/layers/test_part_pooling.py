"""Horizontal pooling pyramid on a hand-worked map and SeparateFCs' shapes and initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from graphfuse.layers.part_pooling import HorizontalPoolingPyramid, SeparateFCs

pytestmark = pytest.mark.usefixtures("one_thread")


def test_hpp_on_a_hand_worked_map():
    # one channel, 4 x 2 map; rows: [1, 3], [0, 2], [5, 5], [-1, 7]
    x = torch.tensor([[1.0, 3.0], [0.0, 2.0], [5.0, 5.0], [-1.0, 7.0]]).view(1, 1, 4, 2)
    hpp = HorizontalPoolingPyramid(bins=(4, 2, 1))
    got = hpp(x)
    # 4 strips (one row each): mean + max = 2+3, 1+2, 5+5, 3+7
    # 2 strips: rows 0-1 {1,3,0,2}: 1.5+3; rows 2-3 {5,5,-1,7}: 4+7
    # 1 strip: all 8 values, mean 22/8 = 2.75, max 7
    want = torch.tensor([5.0, 3.0, 10.0, 10.0, 4.5, 11.0, 9.75]).view(1, 1, 7)
    assert got.shape == (1, 1, 7) and hpp.num_parts == 7
    assert torch.allclose(got, want)


def test_hpp_default_bins_shape_and_channels_independent():
    x = torch.randn(2, 3, 16, 11)
    out = HorizontalPoolingPyramid()(x)
    assert out.shape == (2, 3, 31)
    # the 16-bin parts are single rows: mean + max over the row
    assert torch.allclose(out[:, :, :16], x.mean(-1) + x.amax(-1))
    assert torch.allclose(out[:, :, 30], x.flatten(2).mean(-1) + x.flatten(2).amax(-1))


def test_hpp_rejects_a_height_that_does_not_split():
    with pytest.raises(ValueError, match="height 12 is not a multiple of the bin count 8"):
        HorizontalPoolingPyramid((4, 8))(torch.zeros(1, 1, 12, 4))
    with pytest.raises(ValueError, match="positive integers"):
        HorizontalPoolingPyramid(bins=(4, 0))


def test_separate_fcs_shape_per_part_map_and_init():
    torch.manual_seed(0)
    fc = SeparateFCs(5, 8, 3)
    assert [n for n, _ in fc.named_parameters()] == ["fc_bin"] and fc.fc_bin.shape == (5, 8, 3)
    x = torch.randn(4, 8, 5, dtype=torch.float64)
    w = fc.fc_bin.detach().double()
    out = SeparateFCs.forward(fc.double(), x)
    assert out.shape == (4, 3, 5)
    for p in range(5):  # reference: part p is x[:, :, p] @ fc_bin[p]
        assert torch.allclose(out[:, :, p], x[:, :, p] @ w[p])
    # Xavier-uniform with torch's fans of a 3-D tensor: fan_in = c_in * c_out, fan_out = P * c_out
    big = SeparateFCs(62, 128, 256)
    bound = math.sqrt(6.0 / (128 * 256 + 62 * 256))
    assert big.fc_bin.abs().max() <= bound and big.fc_bin.abs().max() > 0.99 * bound
    assert abs(big.fc_bin.std().item() - bound / math.sqrt(3)) < 0.01 * bound
    normed = SeparateFCs(5, 8, 3, norm=True)
    wn = torch.nn.functional.normalize(normed.fc_bin.detach(), dim=1)
    assert torch.allclose(normed(x.float()), torch.einsum("ncp,pco->nop", x.float(), wn), atol=1e-6)
    with pytest.raises(ValueError, match=r"expects \(N, 8, 5\)"):
        fc(torch.zeros(2, 8, 4, dtype=torch.float64))
