"""``layers.common.conv_batchnorm``: the two modules' numbers, less kept for the backward;
``conv2d_backward``: the convolution backward those Functions run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphfuse.layers.common import conv2d_backward, conv_batchnorm

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
    results = {"out": out.detach(), "x.grad": x.grad}
    results |= {f"{m}.{n}.grad": p.grad for m, mod in (("conv", conv), ("bn", bn)) for n, p in mod.named_parameters()}
    results |= {f"bn.{n}": b.clone() for n, b in bn.named_buffers()}
    return out.grad_fn.name(), results, sum(kept)


@pytest.mark.parametrize("stride,momentum,bias", [(1, 0.1, True), (2, None, True), (2, 0.1, False)])
def test_conv_batchnorm_equals_the_modules_and_keeps_less(stride, momentum, bias):
    name, fused, kept_fused = _run(True, stride, momentum, bias)
    plain_name, plain, kept_plain = _run(False, stride, momentum, bias)
    assert name == "_ConvBatchNormBackward" and plain_name != name
    assert fused.keys() == plain.keys()
    for key, a in fused.items():
        if key == "conv.bias.grad":  # a sum (conv2d_backward), in another order than oneDNN's: rounding
            torch.testing.assert_close(a, plain[key], rtol=0, atol=1e-5)
        else:
            assert torch.equal(a, plain[key]), key
    assert kept_plain - kept_fused == 3 * 7 * (8 // stride) * 6  # the convolution's output


def test_conv_batchnorm_runs_the_modules_otherwise():
    conv, bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
    x = torch.randn(2, 4, 5, 3, requires_grad=True)
    assert conv_batchnorm(x, conv, bn.eval()).grad_fn.name() != "_ConvBatchNormBackward"
    assert conv_batchnorm(x, conv, nn.SyncBatchNorm(4)).grad_fn.name() != "_ConvBatchNormBackward"
    with torch.no_grad():
        torch.testing.assert_close(conv_batchnorm(x, conv, bn.eval()), bn(conv(x)), rtol=0, atol=0)


@pytest.mark.parametrize("stride,groups", [((1, 1), 1), ((2, 1), 1), ((1, 1), 6)])
def test_conv2d_backward_equals_the_convolution_backward(stride, groups):
    """Input and weight gradients are ``aten.convolution_backward``'s bit for bit; the bias
    gradient (a sum over batch, T and V on the CPU) equals its value to float rounding; only
    what the mask asks for is returned."""
    torch.manual_seed(2)
    x = torch.randn(4, 6, 10, 5).contiguous(memory_format=torch.channels_last)
    w = torch.randn(12, 6 // groups, 1, 1)
    g = torch.randn(4, 12, 10 // stride[0], 5).contiguous(memory_format=torch.channels_last) + 3.0
    args = (stride, (0, 0), (1, 1), groups)
    ref = torch.ops.aten.convolution_backward(g, x, w, [12], *args[:3], False, (0, 0), groups, (True, True, True))
    g_x, g_w, g_b = conv2d_backward(g, x, w, True, *args)
    assert torch.equal(g_x, ref[0]) and torch.equal(g_w, ref[1])
    torch.testing.assert_close(g_b, ref[2], rtol=1e-6, atol=0)
    torch.testing.assert_close(g_b, g.double().sum((0, 2, 3)).float(), rtol=1e-6, atol=0)
    assert conv2d_backward(g, x, w, False, *args)[2] is None  # no bias, no bias gradient
    only_b = conv2d_backward(g, x, w, True, *args, mask=(False, False, True))
    assert only_b[0] is None and only_b[1] is None and torch.equal(only_b[2], g_b)
    only_x = conv2d_backward(g, x, w, True, *args, mask=(True, False, False))
    assert torch.equal(only_x[0], ref[0]) and only_x[1] is None and only_x[2] is None
