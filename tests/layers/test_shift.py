"""Shift operations of Shift-GCN against float64 loop references written from the official
CUDA kernel's formulas (kchengiva/Shift-GCN, model/Temporal_shift/cuda)."""

from __future__ import annotations

import math

import pytest
import torch

from graphfuse.layers import shift as shift_module
from graphfuse.layers.shift import (
    Shift,
    inverse_permutation,
    row_shift,
    spatial_shift,
    spatial_shift_index,
    spatial_shift_scale,
    temporal_shift,
)

f64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------
def official_index_loop(num_point: int, channels: int, direction: str) -> list[int]:
    """The official ``Shift_gcn`` loops, literally: (i*C + j +- j*C) mod (C*V)."""
    sign = 1 if direction == "in" else -1
    return [
        (i * channels + j + sign * j * channels) % (channels * num_point)
        for i in range(num_point)
        for j in range(channels)
    ]


def temporal_shift_loop(x: torch.Tensor, xpos, ypos, stride: int) -> torch.Tensor:
    """The official forward kernel as a float64 loop: 4 bilinear taps, zero outside."""
    n, c, t, v = x.shape
    t_out = t // stride
    out = torch.zeros(n, c, t_out, v, dtype=f64)
    for ch in range(c):
        y = float(ypos[ch]) + (0.5 if stride != 1 else 0.0)
        xx = float(xpos[ch])
        y1, x1 = math.floor(y), math.floor(xx)
        dy, dx = y - y1, xx - x1
        for h in range(t_out):
            for w in range(v):
                acc = torch.zeros(n, dtype=f64)
                for ky, wy in ((0, 1 - dy), (1, dy)):
                    for kx, wx in ((0, 1 - dx), (1, dx)):
                        tt, ww = h * stride + y1 + ky, w + x1 + kx
                        if 0 <= tt < t and 0 <= ww < v:
                            acc += wy * wx * x[:, ch, tt, ww].double()
                out[:, ch, h, w] = acc
    return out


def as_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------------------
# spatial shift
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_point,channels", [(25, 3), (25, 64), (19, 7), (5, 12)])
@pytest.mark.parametrize("direction", ["in", "out"])
def test_spatial_index_equals_official_loops(num_point, channels, direction):
    idx = spatial_shift_index(num_point, channels, direction)
    assert idx.dtype == torch.int64
    assert idx.tolist() == official_index_loop(num_point, channels, direction)


@pytest.mark.parametrize("direction,sign", [("in", 1), ("out", -1)])
def test_spatial_shift_closed_form(direction, sign):
    torch.manual_seed(0)
    r, v, c = 3, 5, 7
    x = torch.randn(r, v * c, dtype=f64)
    idx = spatial_shift_index(v, c, direction)
    out = spatial_shift(x, idx, inverse_permutation(idx)).view(r, v, c)
    xv = x.view(r, v, c)
    ref = torch.empty(r, v, c, dtype=f64)
    for vv in range(v):
        for cc in range(c):
            ref[:, vv, cc] = xv[:, (vv + sign * cc) % v, cc]
    assert torch.equal(out, ref)
    assert torch.equal(spatial_shift(x, idx).view(r, v, c), ref)  # plain index_select path


def test_spatial_shift_scale_closed_form_and_gradcheck():
    torch.manual_seed(1)
    r, v, c = 4, 6, 5
    x = torch.randn(r, v * c, dtype=f64, requires_grad=True)
    scale = torch.rand(v * c, dtype=f64, requires_grad=True)
    idx = spatial_shift_index(v, c, "in")
    inv = inverse_permutation(idx)
    out = spatial_shift_scale(x, idx, inv, scale).view(r, v, c)
    xv, sv = x.detach().view(r, v, c), scale.detach().view(v, c)
    for vv in range(v):
        for cc in range(c):
            # mask indexed by the *target* joint, input read from joint (v + c) mod V
            ref = xv[:, (vv + cc) % v, cc] * sv[vv, cc]
            assert torch.equal(out[:, vv, cc].detach(), ref)
    assert torch.autograd.gradcheck(lambda a, s: spatial_shift_scale(a, idx, inv, s), (x, scale))
    assert torch.autograd.gradcheck(lambda a: spatial_shift(a, idx, inv), (x,))


def test_spatial_shift_linear_equals_the_two_calls_and_keeps_less():
    """``spatial_shift_linear`` (gather-and-scale, then the pointwise linear) on the CPU: the
    same output and gradients (input, mask, weight, bias) as ``joint_linear`` of
    ``spatial_shift_scale``, bit for bit (the bias gradient, a sum taken in another order,
    to rounding), without keeping the gathered product."""
    torch.manual_seed(3)
    n, t, v, c, d = 2, 5, 25, 8, 12
    idx = spatial_shift_index(v, c, "in")
    inv = inverse_permutation(idx)
    x0 = torch.randn(n * t, v * c)
    g = torch.randn(n * t, v * d)

    def run(fused: bool):
        torch.manual_seed(5)
        x = x0.clone().requires_grad_()
        scale = torch.rand(v * c, requires_grad=True)
        w = torch.randn(c, d, requires_grad=True)
        b = torch.randn(1, 1, d, requires_grad=True)
        kept: list[int] = []

        def pack(a: torch.Tensor) -> torch.Tensor:
            kept.append(a.untyped_storage().data_ptr() if a.numel() >= x0.numel() else 0)
            return a

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda a: a):
            if fused:
                y = shift_module.spatial_shift_linear(x, idx, inv, scale, w, b, (n, t, v))
            else:
                y = shift_module.joint_linear(spatial_shift_scale(x, idx, inv, scale), w, b, (n, t, v))
        y.backward(g)
        big = {p for p in kept if p}
        return y.grad_fn.name(), [y.detach(), x.grad, scale.grad, w.grad, b.grad], len(big)

    name, fused, kept_fused = run(True)
    _, plain, kept_plain = run(False)
    assert name == "_PermutationGatherScaleLinearBackward"
    for i, (a, b) in enumerate(zip(fused, plain, strict=True)):
        if i == 4:  # the bias gradient: a sum in another order than oneDNN's (conv2d_backward)
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(a, b), i
    assert (kept_fused, kept_plain) == (1, 2)  # x only, against x and the gathered product
    ref = torch.einsum("rwc,cd->rwd", (x0[:, idx] * torch.ones(v * c)).view(n * t, v, c), torch.eye(c, d))
    out = shift_module.spatial_shift_linear(x0, idx, inv, torch.ones(v * c), torch.eye(c, d), torch.zeros(1, 1, d),
                                            (n, t, v))
    torch.testing.assert_close(out, ref.reshape(n * t, v * d), rtol=0, atol=0)


def test_inverse_permutation_rejects_non_permutation():
    with pytest.raises(ValueError, match="not a permutation"):
        inverse_permutation(torch.tensor([0, 0, 2]))
    idx = spatial_shift_index(4, 3, "out")
    assert torch.equal(idx[inverse_permutation(idx)], torch.arange(12))


# ----------------------------------------------------------------------------------------
# temporal shift: forward
# ----------------------------------------------------------------------------------------
# integer, fractional, negative, exactly-integer and larger-than-T shifts
YPOS = [0.0, 0.3, -0.7, 2.0, -3.0, 1.5, 11.25, -12.5]
# tiny (official init range), zero, fractional and |xpos| > 1 shifts along joints
XPOS = [1e-8, -3e-9, 0.0, 0.4, -0.6, 1.3, -2.2, 7.5]


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("t", [8, 9])
@pytest.mark.parametrize("fill_by_index", [True, False])
def test_temporal_shift_matches_loop_reference(stride, channels_last, t, fill_by_index, monkeypatch):
    if not fill_by_index:
        monkeypatch.setattr(shift_module, "_FILL_BY_INDEX", set())
    torch.manual_seed(2)
    x = torch.randn(2, len(YPOS), t, 4, dtype=f64)
    if channels_last:
        x = as_channels_last(x)
    ypos = torch.tensor(YPOS, dtype=f64)
    xpos = torch.tensor(XPOS, dtype=f64)
    out = temporal_shift(x, xpos, ypos, stride, "autograd")
    assert out.shape == (2, len(YPOS), t // stride, 4)
    torch.testing.assert_close(out, temporal_shift_loop(x, xpos, ypos, stride), rtol=0, atol=1e-13)


@pytest.mark.parametrize("channels_last", [False, True])
def test_multithreaded_gathers_equal_single_threaded(channels_last):
    """With 2+ CPU threads the column gathers run as ``torch.gather`` (ATen's dim-1
    ``index_select`` is serial): the shifts' outputs and gradients are bit-identical to the
    one-thread ``index_select`` path (the parameter gradients are sums, equal to rounding)."""
    torch.manual_seed(4)
    x = torch.randn(3, len(YPOS), 9, 25, dtype=f64)
    x = as_channels_last(x) if channels_last else x
    ypos = torch.tensor(YPOS, dtype=f64) * 0.9
    xpos = torch.tensor(XPOS, dtype=f64)
    rows = torch.randn(12, 25 * 8, dtype=f64)
    scale = torch.rand(25 * 8, dtype=f64)
    idx = spatial_shift_index(25, 8, "in")
    inv = inverse_permutation(idx)
    g_t = torch.randn(3, len(YPOS), 4, 25, dtype=f64)

    def run() -> list[torch.Tensor]:
        a = x.clone().requires_grad_()
        k = [p.clone().requires_grad_() for p in (xpos, ypos)]
        out = temporal_shift(a, k[0], k[1], 2, "autograd", recompute=True)
        out.backward(g_t)
        r = rows.clone().requires_grad_()
        s = scale.clone().requires_grad_()
        sp = spatial_shift_scale(r, idx, inv, s)
        sp.backward(torch.ones_like(sp))
        sp2 = spatial_shift(r.detach(), idx, inv)
        b = x.clone().requires_grad_()  # row_shift: rows of V (3-D gather) unless channels-last
        rs = row_shift(b, torch.tensor([2, -1, 0, 5, -9, 1, 3, -2]), 7)
        rs.backward(torch.ones_like(rs))
        return [out.detach(), a.grad, k[0].grad, k[1].grad, sp.detach(), r.grad, s.grad, sp2, rs.detach(), b.grad]

    one = run()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = run()
    finally:
        torch.set_num_threads(before)
    for i, (a, b) in enumerate(zip(one, two, strict=True)):
        if i in (2, 3, 6):  # parameter gradients: sums, whose order depends on the thread count
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        else:
            assert torch.equal(a, b), i


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("threads", [1, 2])
def test_half_float_gathers_move_the_bits(dtype, threads):
    """16-bit floats are gathered as ``int16`` (faster on the CPU): every value, including
    infinities, NaNs with payloads and negative zero, comes out bit for bit as
    ``index_select`` gives it, for 2-D and 3-D inputs and any thread count."""
    torch.manual_seed(5)
    bits = torch.randint(-(2**15), 2**15, (6, 25 * 8, 3), dtype=torch.int16)
    bits[0, :4, 0] = torch.tensor([0x7F80, -0x0080, 0x7FC1, -0x8000], dtype=torch.int16)  # inf, -inf, NaN, -0
    x = bits.view(dtype)
    idx = spatial_shift_index(25, 8, "out")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got3 = shift_module._take_columns(x, idx)
        got2 = shift_module._take_columns(x[:, :, 1], idx)
    finally:
        torch.set_num_threads(before)
    assert got3.dtype == dtype and got2.dtype == dtype
    assert torch.equal(got3.view(torch.int16), x.index_select(1, idx).view(torch.int16))
    assert torch.equal(got2.view(torch.int16), x[:, :, 1].index_select(1, idx).view(torch.int16))


@pytest.mark.parametrize("stride", [2, 3])
def test_strided_half_float_shift_input_gradient_is_onednns(stride):
    """The input gradient of a strided 16-bit shift is computed in float32 and rounded once
    (oneDNN's own 16-bit path is slow there): for bfloat16 bit for bit what oneDNN returns, for
    float16 equal to rounding, and the kernel gradient unchanged."""
    torch.manual_seed(6)
    c, t, v = 8, 13, 5
    y1 = torch.tensor([-3, 0, 1, 2, -1, 4, 0, 12])
    x1 = torch.tensor([0, -1, 1, 0, 2, 0, -6, 0])
    t_out = t // stride
    n_rows = (t_out - 1) * stride + 2
    for dtype in (torch.bfloat16, torch.float16):
        rows = as_channels_last(torch.randn(3, c, n_rows, v + 1)).to(dtype)
        k = torch.randn(c, 1, 2, 2).to(dtype)
        grad = as_channels_last(torch.randn(3, c, t_out, v)).to(dtype)
        g_x, g_k = shift_module._shift_conv_backward(grad, rows, k, y1, x1, stride, t, v, True, True)
        ref_rows, ref_k, _ = torch.ops.aten.convolution_backward(
            grad, rows, k, None, (stride, 1), (0, 0), (1, 1), False, (0, 0), c, (True, True, False))
        ref_x = shift_module._shift_gather(ref_rows, -y1, -x1, t, v)
        assert g_x.dtype == dtype and g_x.shape == (3, c, t, v)
        assert torch.equal(g_k, ref_k)
        exact = torch.ops.aten.convolution_backward(
            grad.double(), rows.double(), k.double(), None, (stride, 1), (0, 0), (1, 1), False, (0, 0), c,
            (True, False, False))[0]
        exact_x = shift_module._shift_gather(exact, -y1, -x1, t, v).to(dtype)
        assert torch.equal(g_x, exact_x)  # each value rounded once from the exact sum
        if dtype == torch.bfloat16:
            assert torch.equal(g_x, ref_x)
        else:
            torch.testing.assert_close(g_x, ref_x, rtol=2 ** -9, atol=2 ** -9)  # oneDNN: one rounding more


def test_temporal_shift_zero_padding_both_ends():
    # all-ones input: output = sum of the weights of the in-range taps.
    t = 6
    x = torch.ones(1, 2, t, 1, dtype=f64)
    ypos = torch.tensor([-0.25, 0.25], dtype=f64)
    out = temporal_shift(x, torch.zeros(2, dtype=f64), ypos, 1, "autograd")[0, :, :, 0]
    # channel 0 reads frames h-1 (w .25) and h (w .75): frame -1 is zero padding
    assert torch.allclose(out[0], torch.tensor([0.75] + [1.0] * (t - 1), dtype=f64))
    # channel 1 reads h (w .75) and h+1 (w .25): frame T is zero padding
    assert torch.allclose(out[1], torch.tensor([1.0] * (t - 1) + [0.75], dtype=f64))
    # stride 2 with ypos = 0 samples at 2h + 0.5: the mean of frames 2h and 2h+1
    z = torch.arange(8, dtype=f64).view(1, 1, 8, 1)
    pooled = temporal_shift(z, torch.zeros(1, dtype=f64), torch.zeros(1, dtype=f64), 2, "autograd")
    assert torch.equal(pooled.flatten(), torch.tensor([0.5, 2.5, 4.5, 6.5], dtype=f64))


@pytest.mark.parametrize("fill_by_index", [True, False])
def test_row_shift_reference_and_gradcheck(fill_by_index, monkeypatch):
    # False exercises the masked_fill_ path used on accelerators
    if not fill_by_index:
        monkeypatch.setattr(shift_module, "_FILL_BY_INDEX", set())
    torch.manual_seed(3)
    x = torch.randn(2, 4, 5, 3, dtype=f64, requires_grad=True)
    off = torch.tensor([0, 2, -3, 7])
    for xx in (x, as_channels_last(x.detach()).requires_grad_()):
        out = row_shift(xx, off, 6)
        for c in range(4):
            for j in range(6):
                src = j + int(off[c])
                ref = xx[:, c, src] if 0 <= src < 5 else torch.zeros(2, 3, dtype=f64)
                assert torch.equal(out[:, c, j].detach(), ref.detach())
        assert torch.autograd.gradcheck(lambda a: row_shift(a, off, 6), (xx,))


# ----------------------------------------------------------------------------------------
# temporal shift: gradients
# ----------------------------------------------------------------------------------------
GRAD_YPOS = [0.3, -0.7, 1.6, -2.4, 9.1]  # away from integers (floor is not differentiable there)
GRAD_XPOS = [0.25, -0.3, 0.45, 1.2, -1.7]  # away from integers too (kink of the V taps)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("recompute", [False, True])
def test_temporal_shift_gradcheck_autograd_mode(stride, recompute):
    torch.manual_seed(4)
    x = as_channels_last(torch.randn(2, 5, 8, 4, dtype=f64)).requires_grad_()
    ypos = torch.tensor(GRAD_YPOS, dtype=f64, requires_grad=True)
    xpos = torch.tensor(GRAD_XPOS, dtype=f64, requires_grad=True)

    def f(a, xp, yp):
        return temporal_shift(a, xp, yp, stride, "autograd", recompute)

    assert torch.autograd.gradcheck(f, (x, xpos, ypos))
    x2 = x.detach().contiguous().requires_grad_()  # NCHW path
    assert torch.autograd.gradcheck(f, (x2, xpos, ypos))


@pytest.mark.parametrize("stride", [1, 2])
def test_official_mode_gradients(stride):
    torch.manual_seed(5)
    n, c = 3, 5
    x = as_channels_last(torch.randn(n, c, 8, 4, dtype=f64))
    x[:, 4] = 0.0  # a channel whose true ypos gradient is exactly zero
    g_out = torch.randn(n, c, 8 // stride, 4, dtype=f64)
    ypos = torch.tensor(GRAD_YPOS, dtype=f64)
    xpos = torch.tensor(GRAD_XPOS, dtype=f64)

    def grads(mode):
        a = x.clone().requires_grad_()
        xp = xpos.clone().requires_grad_()
        yp = ypos.clone().requires_grad_()
        temporal_shift(a, xp, yp, stride, mode).backward(g_out)
        return a.grad, xp.grad, yp.grad

    gx_true, _, gy_true = grads("autograd")
    gx, gxp, gyp = grads("official")
    # input gradient: exact adjoint in both modes
    torch.testing.assert_close(gx, gx_true, rtol=0, atol=1e-14)
    # ypos: 0.01 * sign of the batch-mean gradient, 1e-4 where it is zero; xpos: 0
    g_mean = gy_true / n
    expected = torch.where(g_mean != 0, 0.01 * torch.sign(g_mean), torch.full_like(g_mean, 1e-4))
    assert gy_true[4] == 0
    assert torch.equal(gyp, expected)
    assert gyp[4] == 1e-4
    assert torch.equal(gxp, torch.zeros(c, dtype=f64))


# ----------------------------------------------------------------------------------------
# BatchNorm + shift + pointwise conv / shift + BatchNorm chains (Shift_tcn), fused for memory
# ----------------------------------------------------------------------------------------
def _pair_run(fused: bool, kind: str, stride: int, grad_mode: str, momentum: float | None, seed: int = 7):
    """One forward/backward of the chain, fused or as the modules: output, every gradient
    and the running statistics; plus the bytes kept for the backward."""
    torch.manual_seed(seed)
    c = 6
    shift = Shift(c, stride=stride, grad_mode=grad_mode)
    with torch.no_grad():
        shift.ypos.copy_(torch.tensor([0.3, -1.7, 2.4, -0.2, 5.6, 0.0]))
        shift.xpos.copy_(torch.tensor([1e-8, -3e-9, 0.4, -0.6, 0.0, 1.3]))

    def batchnorm() -> torch.nn.BatchNorm2d:
        bn = torch.nn.BatchNorm2d(c, momentum=momentum)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        return bn

    post = batchnorm() if kind == "batchnorm" else torch.nn.Conv2d(c, c, 1)
    pre = batchnorm() if kind == "pointwise" else None
    x = as_channels_last(torch.randn(3, c, 10, 5)).requires_grad_()
    g = torch.randn(3, c, 10 // stride, 5)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() if t.numel() >= x.numel() // 2 else 0)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if not fused:
            out = post(shift(x if pre is None else pre(x)))
        elif kind == "batchnorm":
            out = shift_module.shift_batchnorm(x, shift, post)
        else:
            out = shift_module.shift_pointwise(x, pre, shift, post)
    out.backward(g)
    modules = {"shift": shift, "post": post} if pre is None else {"shift": shift, "post": post, "pre": pre}
    results = {"out": out.detach(), "x.grad": x.grad}
    results |= {f"{m}.{n}.grad": p.grad for m, mod in modules.items() for n, p in mod.named_parameters()}
    results |= {f"{m}.{n}": b.clone() for m, mod in modules.items() for n, b in mod.named_buffers()}
    return out.grad_fn.name(), results, sum(saved)


@pytest.mark.parametrize(
    "kind,stride,grad_mode,momentum",
    [("pointwise", 1, "official", 0.1), ("pointwise", 1, "autograd", None),
     ("batchnorm", 2, "official", 0.1), ("batchnorm", 1, "autograd", None)],
)
def test_shift_pairs_equal_the_two_modules_and_keep_less(kind, stride, grad_mode, momentum):
    """``shift_pointwise`` / ``shift_batchnorm``: the same output, gradients (input, shift
    positions, conv and BatchNorm parameters) and running statistics as the modules, bit for
    bit except the conv's bias gradient (equal to rounding: ``conv2d_backward``), with one (``shift_batchnorm``) or two (``shift_pointwise``) activation-sized tensors
    less kept for the backward."""
    name, fused, kept_fused = _pair_run(True, kind, stride, grad_mode, momentum)
    plain_name, plain, kept_plain = _pair_run(False, kind, stride, grad_mode, momentum)
    assert name == ("_ShiftBatchNormBackward" if kind == "batchnorm" else "_ShiftPointwiseBackward")
    assert plain_name != name
    assert fused.keys() == plain.keys()
    for key, a in fused.items():
        if kind == "pointwise" and key == "post.bias.grad":  # a sum in another order (conv2d_backward)
            torch.testing.assert_close(a, plain[key], rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(a, plain[key]), key
    x_numel = 3 * 6 * 10 * 5
    # shift_batchnorm: the BatchNorm's input; shift_pointwise: the shifted rows and the shift
    # output (x, which the BatchNorm keeps, is kept either way)
    assert kept_plain - kept_fused >= (2 if kind == "pointwise" else 1) * x_numel // stride


def test_shift_pairs_fall_back_to_the_modules():
    """Evaluation, no grad, autocast and other modules take the modules literally."""
    torch.manual_seed(8)
    shift = Shift(4)
    bn = torch.nn.BatchNorm2d(4)
    conv3 = torch.nn.Conv2d(4, 4, (3, 1), padding=(1, 0))
    x = torch.randn(2, 4, 6, 5, requires_grad=True)
    assert shift_module.shift_batchnorm(x, shift, bn.eval()).grad_fn.name() != "_ShiftBatchNormBackward"
    assert shift_module.shift_pointwise(x, bn.train(), shift, conv3).grad_fn.name() == "ConvolutionBackward0"
    with torch.no_grad():
        torch.testing.assert_close(shift_module.shift_pointwise(x, bn.eval(), shift, conv3), conv3(shift(bn(x))),
                                   rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = shift_module.shift_pointwise(x, bn.train(), shift, torch.nn.Conv2d(4, 4, 1))
    assert out.dtype == torch.bfloat16 and out.grad_fn.name() == "ConvolutionBackward0"


def test_official_ypos_gradient_is_the_batch_mean_of_the_loop_derivative():
    # g_c = mean over the batch of sum_{h,w} grad_out * d out / d y, the official kernel's
    # val_y = (1-dx)(q12-q11) + dx(q22-q21); checked against a finite difference of the loop.
    torch.manual_seed(6)
    x = torch.randn(4, 3, 7, 3, dtype=f64)
    ypos = torch.tensor([0.2, -1.3, 2.6], dtype=f64)
    xpos = torch.tensor([1e-8, 0.3, -0.4], dtype=f64)
    g_out = torch.randn(4, 3, 7, 3, dtype=f64)
    eps = 1e-6
    fd = torch.stack([
        ((temporal_shift_loop(x, xpos, ypos + eps * e, 1) - temporal_shift_loop(x, xpos, ypos - eps * e, 1))
         * g_out).sum() / (2 * eps)
        for e in torch.eye(3, dtype=f64)
    ])
    yp = ypos.clone().requires_grad_()
    temporal_shift(x, xpos, yp, 1, "autograd").backward(g_out)
    torch.testing.assert_close(yp.grad, fd, rtol=1e-6, atol=1e-6)
    yp2 = ypos.clone().requires_grad_()
    temporal_shift(x, xpos, yp2, 1, "official").backward(g_out)
    assert torch.equal(yp2.grad, 0.01 * torch.sign(fd / 4))


# ----------------------------------------------------------------------------------------
# module, dtypes, errors
# ----------------------------------------------------------------------------------------
def test_shift_module_parameters_and_init():
    torch.manual_seed(7)
    s = Shift(64, stride=2)
    assert [n for n, _ in s.named_parameters()] == ["xpos", "ypos"]
    assert s.xpos.shape == s.ypos.shape == (64,)
    assert s.xpos.abs().max() <= 1e-8 and s.xpos.abs().max() > 0
    assert s.ypos.abs().max() <= 1.0 and s.ypos.abs().max() > 0.5
    out = s(torch.randn(2, 64, 10, 25))
    assert out.shape == (2, 64, 5, 25)


def test_bfloat16_and_autocast():
    torch.manual_seed(8)
    x = as_channels_last(torch.randn(2, 8, 12, 5))
    ypos, xpos = torch.rand(8) * 4 - 2, torch.rand(8) * 2e-8 - 1e-8
    ref = temporal_shift(x.double(), xpos.double(), ypos.double(), 2, "autograd")
    out_bf = temporal_shift(x.bfloat16(), xpos.bfloat16(), ypos.bfloat16(), 2)
    assert out_bf.dtype == torch.bfloat16
    # bf16 parameters round ypos itself, so compare against the rounded shifts
    ref_bf = temporal_shift(x.bfloat16().double(), xpos.bfloat16().double(), ypos.bfloat16().double(), 2)
    torch.testing.assert_close(out_bf.double(), ref_bf, rtol=0.05, atol=0.05)
    s = Shift(8, stride=2)
    with torch.no_grad():
        s.ypos.copy_(ypos)
        s.xpos.copy_(xpos)
    xr = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = s(xr)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.05)
    out.float().sum().backward()
    assert xr.grad is not None and xr.grad.dtype == torch.float32
    assert s.ypos.grad is not None and s.ypos.grad.dtype == torch.float32


def test_temporal_shift_errors():
    x = torch.randn(1, 3, 4, 2)
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        temporal_shift(x, torch.zeros(2), z)
    with pytest.raises(ValueError, match="T >= stride"):
        temporal_shift(x, z, z, stride=5)
    with pytest.raises(ValueError, match="grad_mode"):
        temporal_shift(x, z, z, grad_mode="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        spatial_shift_index(5, 3, "up")  # type: ignore[arg-type]
