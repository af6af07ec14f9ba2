"""``layers.common.conv_batchnorm``: the two modules' numbers, less kept for the backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphfuse.layers.common import conv_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(fused: bool, stride: int, momentum: float | None, bias: bool):
    torch.manual_seed(11)
    conv = nn.Conv2d(5, 7, 1, stride=(stride, 1), bias=bias)
    bn = nn.BatchNorm2d(7, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 5, 8, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(3, 7, 8 // stride, 6)
    kept: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.append(t.numel() if t.numel() >= 3 * 8 * 6 else 0)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = conv_batchnorm(x, conv, bn) if fused else bn(conv(x))
    out.backward(g)
    results = [out.detach(), x.grad] + [p.grad for m in (conv, bn) for p in m.parameters()]
    results += [b.clone() for b in bn.buffers()]
    return out.grad_fn.name(), results, sum(kept)


@pytest.mark.parametrize("stride,momentum,bias", [(1, 0.1, True), (2, None, True), (2, 0.1, False)])
def test_conv_batchnorm_equals_the_modules_and_keeps_less(stride, momentum, bias):
    name, fused, kept_fused = _run(True, stride, momentum, bias)
    plain_name, plain, kept_plain = _run(False, stride, momentum, bias)
    assert name == "_ConvBatchNormBackward" and plain_name != name
    for i, (a, b) in enumerate(zip(fused, plain, strict=True)):
        assert (a is None and b is None) or torch.equal(a, b), i
    assert kept_plain - kept_fused == 3 * 7 * (8 // stride) * 6  # the convolution's output


def test_conv_batchnorm_runs_the_modules_otherwise():
    conv, bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
    x = torch.randn(2, 4, 5, 3, requires_grad=True)
    assert conv_batchnorm(x, conv, bn.eval()).grad_fn.name() != "_ConvBatchNormBackward"
    assert conv_batchnorm(x, conv, nn.SyncBatchNorm(4)).grad_fn.name() != "_ConvBatchNormBackward"
    with torch.no_grad():
        torch.testing.assert_close(conv_batchnorm(x, conv, bn.eval()), bn(conv(x)), rtol=0, atol=0)
