"""Set pooling with sequence lengths (graphfuse.layers.set_pooling) against a loop over the
sequences (OpenGait's PackSequenceWrapper(torch.max) narrows each sequence and takes its max)."""

from __future__ import annotations

import pytest
import torch

from graphfuse.layers.set_pooling import FrameBlock, SetPooling, check_lengths, set_max

pytestmark = pytest.mark.usefixtures("one_thread")


def _loop_max(x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    out, start = [], 0
    for n in lengths:
        out.append(x[start:start + n].max(dim=0).values)
        start += n
    return torch.stack(out)


@pytest.mark.parametrize("lengths", [[3, 1, 5, 2], [4, 4, 4], [1], [7, 1]])
def test_set_max_with_lengths_equals_per_sequence_max(lengths):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(lengths), 3, 4, 2, generator=g, dtype=torch.float64)
    got = set_max(x, torch.tensor(lengths))
    assert got.shape == (len(lengths), 3, 4, 2)
    assert torch.equal(got, _loop_max(x, lengths))
    assert torch.equal(SetPooling()(x, torch.tensor(lengths)), got)


def test_set_size_path_and_gradient():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 2, 3, generator=g, requires_grad=True)
    y = set_max(x, set_size=3)
    assert torch.equal(y, _loop_max(x.detach(), [3, 3]))
    y.sum().backward()
    # the whole gradient goes to the argmax frame (torch.max), one frame per element and set
    assert torch.equal(x.grad.view(2, 3, 2, 3).sum(1), torch.ones(2, 2, 3))
    # the segment path: gradient sums to one per output element too (split over ties)
    x2 = torch.zeros(5, 2, requires_grad=True)
    set_max(x2, torch.tensor([2, 3])).sum().backward()
    assert torch.allclose(x2.grad[:2].sum(0), torch.ones(2)) and torch.allclose(x2.grad[2:].sum(0), torch.ones(2))


def test_bad_lengths_raise_one_clear_error():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="sum to 4 frames but the input holds 5"):
        set_max(x, torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="sequence 1 has 0 frames"):
        check_lengths(torch.tensor([5, 0]), 5)
    with pytest.raises(ValueError, match="integers"):
        check_lengths(torch.tensor([2.0, 3.0]), 5)
    with pytest.raises(ValueError, match="exactly one"):
        set_max(x)
    with pytest.raises(ValueError, match="do not split"):
        set_max(x, set_size=2)


def test_frame_block_keeps_the_forward_block_name():
    block = FrameBlock(torch.nn.Conv2d(1, 2, 3, bias=False))
    assert list(block.state_dict()) == ["forward_block.weight"]
    x = torch.randn(4, 1, 5, 5)
    assert torch.equal(block(x), block.forward_block(x))
