"""Shift variants of the Shift-GCN paper (Cheng et al., CVPR 2020) that the official code
lacks: the local (graph-neighbour) spatial shift and the naive temporal shift, against
hand-worked examples and float64 loop references."""

from __future__ import annotations

import pytest
import torch

from graphfuse.graphs import ntu25
from graphfuse.layers.shift import (
    NaiveShift,
    local_shift_index,
    local_shift_partition,
    naive_shift_offsets,
    naive_temporal_shift,
    spatial_shift,
    spatial_shift_scale,
    validate_neighbours,
)

f64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------
# local spatial shift
# ----------------------------------------------------------------------------------------
# The paper's Fig. 3a: seven joints, edges (1-based) 1-2, 2-3, 2-4, 4-5, 4-6, 4-7.
# 0-based adjacency, each list in ascending order (the order of the figure's partitions).
SEVEN_JOINTS = [[1], [0, 2, 3], [1], [1, 4, 5, 6], [3], [3], [3]]


def _source_joints(neighbours, channels):
    """Apply the local shift to features that encode their own joint: x[v, c] = v."""
    v = len(neighbours)
    x = torch.arange(v, dtype=f64).repeat_interleave(channels).unsqueeze(0)  # (1, V*C)
    out = spatial_shift(x, local_shift_index(neighbours, channels))
    return out.view(v, channels).long().tolist()


def test_seven_joint_example_of_the_paper():
    src = _source_joints(SEVEN_JOINTS, 20)
    # node 1 (one neighbour): keeps half of its channels, takes half from node 2
    assert src[0] == [0] * 10 + [1] * 10
    # node 2 (three neighbours: 1, 3, 4): quarters
    assert src[1] == [1] * 5 + [0] * 5 + [2] * 5 + [3] * 5
    # node 4 (four neighbours: 2, 5, 6, 7): fifths
    assert src[3] == [3] * 4 + [1] * 4 + [4] * 4 + [5] * 4 + [6] * 4
    # leaves 3, 5, 6, 7: half their own, half from their only neighbour
    assert src[2] == [2] * 10 + [1] * 10
    for leaf in (4, 5, 6):
        assert src[leaf] == [leaf] * 10 + [3] * 10


def test_local_shift_moves_channels_not_only_joints():
    # Same example with distinct values per (joint, channel): out[v, c] = x[src, c].
    v, c = 7, 20
    x = torch.randn(3, v * c, dtype=f64)
    out = spatial_shift(x, local_shift_index(SEVEN_JOINTS, c)).view(3, v, c)
    xv = x.view(3, v, c)
    assert torch.equal(out[:, 1, 5:10], xv[:, 0, 5:10])
    assert torch.equal(out[:, 1, 15:20], xv[:, 3, 15:20])
    assert torch.equal(out[:, 0, :10], xv[:, 0, :10])


def test_remainder_goes_to_the_first_partitions():
    # sizes C // (n+1), +1 for the first C % (n+1) partitions (the kept one first)
    assert local_shift_partition(2, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]  # 3, 2, 2
    assert local_shift_partition(3, 10).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]  # 3, 3, 2, 2
    assert local_shift_partition(4, 3).tolist() == [0, 1, 2]  # 1, 1, 1, 0, 0 (C < n+1)
    assert local_shift_partition(0, 5).tolist() == [0] * 5  # isolated joint keeps everything
    assert local_shift_partition(1, 1).tolist() == [0]
    # broadcast over joints
    assert local_shift_partition(torch.tensor([1, 3]), 4).tolist() == [[0, 0, 1, 1], [0, 1, 2, 3]]


def test_neighbour_order_is_the_partition_order():
    # joint 0 lists its neighbours as (2, 1): partition 1 comes from joint 2
    src = _source_joints([[2, 1], [0], [0]], 6)
    assert src[0] == [0, 0, 2, 2, 1, 1]


def test_local_index_on_ntu_against_loop():
    nbrs = ntu25.neighbours()
    c = 64
    idx = local_shift_index(nbrs, c).tolist()
    expected = []
    for v in range(25):
        n = len(nbrs[v])
        sizes = [c // (n + 1) + (1 if p < c % (n + 1) else 0) for p in range(n + 1)]
        sources = [v] + nbrs[v]
        for p, size in enumerate(sizes):
            start = sum(sizes[:p])
            expected += [sources[p] * c + ch for ch in range(start, start + size)]
    assert idx == expected
    # e.g. spine shoulder (joint 21, index 20) has 4 neighbours: 13 channels kept, 13, 13, 13, 12
    assert len(nbrs[20]) == 4


def test_local_shift_gradients():
    idx = local_shift_index(SEVEN_JOINTS, 4)
    x = torch.randn(3, 28, dtype=f64, requires_grad=True)
    scale = torch.rand(28, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: spatial_shift(a, idx), (x,))
    assert torch.autograd.gradcheck(lambda a, s: spatial_shift_scale(a, idx, None, s), (x, scale))
    # adjoint: a channel read by several joints accumulates their gradients
    (grad,) = torch.autograd.grad(spatial_shift(x, idx).sum(), x)
    counts = torch.bincount(idx, minlength=28).to(f64)
    assert torch.equal(grad, counts.expand(3, 28))
    assert counts.min() == 0 and counts.max() > 1  # not a permutation


@pytest.mark.parametrize(
    "neighbours,match",
    [
        ([[1], [0]], "one list per joint"),
        ([[1], [0], [0, 3]], "outside"),
        ([[1], [0, 1], [0]], "itself"),
        ([[1, 1], [0], [0]], "repeated"),
    ],
)
def test_validate_neighbours_errors(neighbours, match):
    with pytest.raises(ValueError, match=match):
        validate_neighbours(neighbours, 3)


# ----------------------------------------------------------------------------------------
# naive temporal shift
# ----------------------------------------------------------------------------------------
def naive_shift_loop(x: torch.Tensor, max_shift: int, stride: int) -> torch.Tensor:
    """float64 loop reference: groups of fold = C // (2u+1) channels; group k-1 (k = 1..u)
    reads frame t + k, group u+k-1 reads t - k, zero outside; the rest unshifted; then every
    stride-th frame."""
    n, c, t, v = x.shape
    fold = c // (2 * max_shift + 1)
    shifted = torch.zeros(n, c, t, v, dtype=f64)
    for ch in range(c):
        g = ch // fold if fold else 2 * max_shift
        if g < max_shift:
            d = g + 1
        elif g < 2 * max_shift:
            d = -(g - max_shift + 1)
        else:
            d = 0
        for tt in range(t):
            if 0 <= tt + d < t:
                shifted[:, ch, tt] = x[:, ch, tt + d].double()
    return shifted[:, :, : (t // stride) * stride : stride]


def test_naive_offsets_layout():
    # u = 4, C = 20: fold = 2; groups +1..+4, -1..-4, then 4 unshifted channels
    assert naive_shift_offsets(20, 4).tolist() == [
        1, 1, 2, 2, 3, 3, 4, 4, -1, -1, -2, -2, -3, -3, -4, -4, 0, 0, 0, 0,
    ]
    # u = 1, C = 7: fold = 2
    assert naive_shift_offsets(7, 1).tolist() == [1, 1, -1, -1, 0, 0, 0]
    # fewer channels than groups: nothing shifted
    assert naive_shift_offsets(8, 4).tolist() == [0] * 8
    off64 = naive_shift_offsets(64, 4)
    assert [int((off64 == d).sum()) for d in (1, 2, 3, 4, -1, -2, -3, -4, 0)] == [7] * 8 + [8]
    with pytest.raises(ValueError, match="max_shift"):
        naive_shift_offsets(8, 0)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("channels,max_shift,t", [(64, 4, 10), (20, 2, 9), (10, 4, 6), (5, 4, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_naive_shift_matches_loop(stride, channels, max_shift, t, channels_last):
    if t < stride:
        pytest.skip("T < stride")
    x = torch.randn(2, channels, t, 3)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = naive_temporal_shift(x, naive_shift_offsets(channels, max_shift), stride)
    ref = naive_shift_loop(x, max_shift, stride)
    assert out.shape == (2, channels, t // stride, 3)
    assert torch.equal(out.double(), ref)  # a gather: exact


@pytest.mark.parametrize("stride", [1, 2])
def test_naive_shift_gradcheck(stride):
    x = torch.randn(2, 9, 8, 3, dtype=f64, requires_grad=True)
    off = naive_shift_offsets(9, 4)
    assert torch.autograd.gradcheck(lambda a: naive_temporal_shift(a, off, stride), (x,))


def test_naive_shift_module():
    m = NaiveShift(18, stride=2, max_shift=4)
    assert list(m.parameters()) == [] and m.state_dict() == {}
    x = torch.randn(2, 18, 8, 5, dtype=f64)
    assert torch.equal(m(x), naive_shift_loop(x, 4, 2))
    assert m.to(f64).offset.dtype == torch.long
    with pytest.raises(ValueError, match="T >= stride"):
        NaiveShift(18, stride=2)(torch.randn(1, 18, 1, 5))
