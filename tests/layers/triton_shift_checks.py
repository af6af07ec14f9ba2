"""The fused Triton shift kernels (``graphfuse.layers.shift_triton``) against the PyTorch path.

Not collected by the suite directly: ``test_shift_triton.py`` runs this file in a fresh Python
process, because Triton's CPU interpreter cannot run kernels in a process where inductor has
already compiled code (its standard-library functions then raise "Cannot call @triton.jit'd
outside of the scope of a kernel"), and other tests compile.  ``benchmarks/gpu.sh`` runs it on a
GPU, where each check runs for CUDA tensors (compiled kernels) too.

Without a GPU the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``), which
executes the same kernel code (index arithmetic, masks, tiles, dtype conversions) with numpy.
The kernels accumulate in float32, so the comparison is to tolerance: an index or mask error
shows as an O(1) difference.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from _tiny_models import TinyShiftGCN

from graphfuse.layers import shift as S
from graphfuse.layers import shift_triton

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    dev = request.param
    # CPU tensors: Triton's interpreter; CUDA tensors: the compiled kernels.
    monkeypatch.setenv("TRITON_INTERPRET", "1" if dev == "cpu" else "0")
    return dev


def _shift_run(kernels: str, x: torch.Tensor, xpos: torch.Tensor, ypos: torch.Tensor, stride: int,
               grad_mode: str, grad: torch.Tensor | None, autocast: bool = False):
    xx = x.detach().clone().requires_grad_()
    xp = xpos.detach().clone().requires_grad_()
    yp = ypos.detach().clone().requires_grad_()
    with S.set_shift_kernels(kernels), torch.autocast(x.device.type, torch.bfloat16, enabled=autocast):
        out = S.temporal_shift(xx, xp, yp, stride, grad_mode=grad_mode)
    if grad is None:
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    out.backward(grad)
    return out, xx.grad, xp.grad, yp.grad, grad


@pytest.mark.parametrize("device", DEVICES, indirect=True)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("grad_mode", ["autograd", "official"])
def test_temporal_shift_matches_torch_path(device: str, stride: int, channels_last: bool, grad_mode: str) -> None:
    g = torch.Generator().manual_seed(stride * 10 + channels_last)
    n, c, t, v = 3, 37, 13, 7  # channels not a multiple of the tile; T not a multiple of stride
    x = torch.randn(n, c, t, v, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # Shifts from sub-frame to far outside the clip (every tap out of range), both signs,
    # non-integer along V (two joint taps) for some channels, zero for others.
    ypos = (torch.randn(c, generator=g) * 4).to(device)
    ypos[:3] = torch.tensor([40.0, -40.0, 0.0])
    xpos = (torch.randn(c, generator=g) * 2).to(device)
    xpos[3:6] = torch.tensor([0.0, 9.5, -8.25])
    ref = _shift_run("torch", x, xpos, ypos, stride, grad_mode, None)
    got = _shift_run("triton", x, xpos, ypos, stride, grad_mode, ref[4])
    assert got[0].shape == (n, c, t // stride, v)
    assert got[0].is_contiguous(memory_format=torch.channels_last) == channels_last
    assert got[1].is_contiguous(memory_format=torch.channels_last) == channels_last
    for name, a, b in zip(("output", "grad x", "grad xpos", "grad ypos"), ref[:4], got[:4]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)
    # The official rule gives +-0.01 / 1e-4 per channel: signs must agree exactly.
    if grad_mode == "official":
        assert torch.equal(got[3], ref[3])


@pytest.mark.parametrize("device", DEVICES, indirect=True)
def test_temporal_shift_bf16_autocast_close_to_torch_path(device: str) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 40, 16, 25, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    ypos, xpos = (torch.randn(40, generator=g) * 2).to(device), (torch.rand(40, generator=g) - 0.5).to(device)
    ref = _shift_run("torch", x, xpos, ypos, 1, "autograd", None, autocast=True)
    got = _shift_run("triton", x, xpos, ypos, 1, "autograd", ref[4], autocast=True)
    assert got[0].dtype == ref[0].dtype == torch.bfloat16
    assert got[1].dtype == torch.float32
    # The kernels add the four taps in float32 and round once; the PyTorch path rounds the
    # shifted rows and the kernel weights to bf16 first: both within bf16 resolution (2**-8
    # relative per rounding) of the float32 computation.
    exact = _shift_run("torch", x, xpos, ypos, 1, "autograd", ref[4].float())
    for a, b, e in zip(ref[:2], got[:2], exact[:2]):
        bound = 2**-7 * e.abs().max()
        assert (a.float() - e).abs().max() <= bound
        assert (b.float() - e).abs().max() <= bound
    torch.testing.assert_close(got[2], exact[2], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("device", DEVICES, indirect=True)
@pytest.mark.parametrize("scaled", [True, False])
def test_spatial_shift_matches_torch_path(device: str, scaled: bool) -> None:
    g = torch.Generator().manual_seed(5)
    v, c, rows = 25, 13, 70
    index = S.spatial_shift_index(v, c, "in").to(device)
    inverse = S.inverse_permutation(index)
    x0 = torch.randn(rows, v * c, generator=g).to(device)
    scale0 = (torch.rand(v * c, generator=g) + 0.5).to(device)
    grad = torch.randn(rows, v * c, generator=g).to(device)
    results = {}
    for kernels in ("torch", "triton"):
        x, scale = x0.clone().requires_grad_(), scale0.clone().requires_grad_()
        with S.set_shift_kernels(kernels):
            out = S.spatial_shift_scale(x, index, inverse, scale) if scaled else S.spatial_shift(x, index, inverse)
        out.backward(grad)
        results[kernels] = (out, x.grad, scale.grad)
    torch.testing.assert_close(results["triton"][0], results["torch"][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(results["triton"][1], results["torch"][1], rtol=1e-6, atol=1e-6)
    if scaled:
        torch.testing.assert_close(results["triton"][2], results["torch"][2], rtol=1e-5, atol=1e-5)
    else:
        assert results["triton"][2] is None


@pytest.mark.parametrize("device", DEVICES, indirect=True)
def test_shiftgcn_training_step_matches_torch_path(device: str) -> None:
    """The whole (two-unit) Shift-GCN: logits and every parameter's gradient."""
    torch.manual_seed(0)
    model = TinyShiftGCN(num_class=5, num_point=25, num_person=2, in_channels=3).to(device)
    x = torch.randn(2, 3, 8, 25, 2, generator=torch.Generator().manual_seed(1)).to(device)
    y = torch.tensor([1, 3], device=device)
    grads = {}
    for kernels in ("torch", "triton"):
        model.zero_grad()
        with S.set_shift_kernels(kernels):
            logits = model(x)
            torch.nn.functional.cross_entropy(logits, y).backward()
        grads[kernels] = (logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    torch.testing.assert_close(grads["triton"][0], grads["torch"][0], rtol=1e-5, atol=1e-5)
    for name, ref in grads["torch"][1].items():
        torch.testing.assert_close(grads["triton"][1][name], ref, rtol=1e-4, atol=1e-5, msg=name)


def test_auto_uses_the_torch_path_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("Triton path taken")

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # even where the interpreter could run them
    monkeypatch.setattr(shift_triton, "temporal_shift_forward", boom)
    monkeypatch.setattr(shift_triton, "gather_scale_forward", boom)
    with S.set_shift_kernels("auto"):
        S.Shift(8)(torch.randn(1, 8, 6, 5))
        index = S.spatial_shift_index(5, 8, "in")
        S.spatial_shift(torch.randn(3, 40), index, S.inverse_permutation(index))


def test_triton_on_a_cpu_tensor_without_the_interpreter_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with S.set_shift_kernels("triton"), pytest.raises(RuntimeError, match="need CUDA"):
        S.Shift(8)(torch.randn(1, 8, 6, 5))


def test_kernel_choice_from_the_environment_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHFUSE_SHIFT_KERNELS", "torch")
    assert S.shift_kernels() == "torch"
    with S.set_shift_kernels("triton"):
        assert S.shift_kernels() == "triton"
    assert S.shift_kernels() == "torch"
    monkeypatch.setenv("GRAPHFUSE_SHIFT_KERNELS", "cuda")
    with pytest.raises(ValueError, match="GRAPHFUSE_SHIFT_KERNELS"):
        S.shift_kernels()
    with pytest.raises(ValueError, match="must be one of"):
        S.set_shift_kernels("fast")  # type: ignore[arg-type]
