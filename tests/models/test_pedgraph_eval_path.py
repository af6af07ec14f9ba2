"""PedGraph's eval-mode image stages (``ConvBNSiLU2d``: BatchNorm folded into the convolution,
channels-last activations) against the modules as built (``nn.Sequential.forward``)."""

from __future__ import annotations

import pytest
import torch
from _random_weights import randomise
from torch import nn

from graphfuse.models import PedGraph
from graphfuse.models.pedgraph import ConvBNSiLU2d

pytestmark = pytest.mark.usefixtures("one_thread")


def _stage(dtype=torch.float64, seed=0) -> ConvBNSiLU2d:
    torch.manual_seed(seed)
    s = ConvBNSiLU2d(3, 8, 3).to(dtype)
    randomise(s, seed=seed)  # BN statistics away from (0, 1), gamma/beta away from (1, 0)
    return s


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_eval_stage_equals_the_modules(dtype, tol):
    s = _stage(dtype).eval()
    x = torch.randn(2, 3, 11, 9, dtype=dtype)
    with torch.no_grad():
        got = s(x)
        want = nn.Sequential.forward(s, x)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    # a conv bias (not in PedGraph+, handled by the fold) and BN without affine parameters
    s[0].bias = nn.Parameter(torch.randn(8, dtype=dtype))
    s[1] = nn.BatchNorm2d(8, affine=False).to(dtype).eval()
    s[1].running_mean.uniform_(-1, 1)
    s[1].running_var.uniform_(0.5, 2)
    with torch.no_grad():
        torch.testing.assert_close(s(x), nn.Sequential.forward(s, x), rtol=tol, atol=tol)


def test_training_mode_and_batch_statistics_run_the_modules():
    s = _stage(torch.float32).train()
    ref = _stage(torch.float32).train()
    x = torch.randn(2, 3, 7, 6)
    torch.testing.assert_close(s(x), nn.Sequential.forward(ref, x), rtol=0, atol=0)  # bitwise
    torch.testing.assert_close(s[1].running_mean, ref[1].running_mean, rtol=0, atol=0)
    # eval mode without running statistics normalises by the batch: nothing to fold
    s = ConvBNSiLU2d(3, 8, 3)
    s[1] = nn.BatchNorm2d(8, track_running_stats=False)
    s.eval()
    torch.testing.assert_close(s(x), nn.Sequential.forward(s, x), rtol=0, atol=0)


def test_eval_gradients_equal_the_modules():
    """Eval mode with autograd on (saliency, fine-tuning with frozen statistics): the folded
    path gives the modules' gradients for the input, the conv weight and the BN affine."""
    s = _stage().eval()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    grads = []
    for fwd in (s.forward, lambda t: nn.Sequential.forward(s, t)):
        s.zero_grad(set_to_none=True)
        x.grad = None
        fwd(x).square().sum().backward()
        grads.append([x.grad.clone(), s[0].weight.grad.clone(), s[1].weight.grad.clone(), s[1].bias.grad.clone()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_pedgraph_eval_equals_the_unfolded_image_branch(dtype, tol, monkeypatch):
    torch.manual_seed(0)
    m = PedGraph(num_class=3, in_channels=3, image_channels=3).to(dtype)
    randomise(m, seed=3)
    m.eval()
    x = m.example_inputs(3, 12, image_size=(24, 16))
    with torch.no_grad():
        got = m(*x)
        monkeypatch.setattr(ConvBNSiLU2d, "forward", nn.Sequential.forward)
        want = m(*x)
    assert got.abs().max() > 1e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert set(m.state_dict()) >= {"conv0.0.weight", "conv0.1.running_mean", "conv2.1.num_batches_tracked"}
