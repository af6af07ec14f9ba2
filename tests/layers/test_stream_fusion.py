"""Tests of graphfuse.layers.stream_fusion: each operator of Feichtenhofer et al. (CVPR 2016)
against its formula on small tensors (references in float64, written as plain loops where the
formula is a sum), the released code's initialisations, and the size-matching rule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from graphfuse.layers.stream_fusion import (
    SpatialFusion,
    TemporalFusion,
    fusion_weight,
    gaussian_kernel3d,
    match_size,
    signed_sqrt,
)

SHAPES = [(2, 3, 4, 5), (2, 3, 2, 4, 5), (2, 3, 6, 25)]  # (N,C,H,W), (N,C,T,H,W), skeleton (N,C,T,V)


def _pair(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)


def _quarters(shape, seed=0):
    """Non-negative multiples of 1/4 below 16: every product with 0.25/0.75/1 and every sum of
    two such products is exact in float32, so weighted sums compare with ``==``."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(0, 64, shape, generator=g).float() / 4 for _ in range(2))


# ------------------------------------------------------------------------------ element-wise kinds
@pytest.mark.parametrize("shape", SHAPES)
def test_sum_max_concat_formulas(shape) -> None:
    a, b = _pair(shape)
    c = shape[1]
    torch.testing.assert_close(SpatialFusion("sum", c).double()(a, b), a + b, rtol=0, atol=0)
    mx = SpatialFusion("max", c).double()(a, b)
    assert torch.equal(mx, torch.where(a >= b, a, b))
    cat = SpatialFusion("concat", c).double()(a, b)
    assert cat.shape == (shape[0], 2 * c, *shape[2:])
    assert torch.equal(cat[:, :c], a) and torch.equal(cat[:, c:], b)  # [a; b], the reference order
    assert [SpatialFusion(k, c).out_channels for k in ("sum", "max", "concat", "conv", "bilinear")] == [
        c, c, 2 * c, c, c * c]


# ------------------------------------------------------------------------------ conv fusion
@pytest.mark.parametrize("shape", SHAPES)
def test_conv_2sumAB_is_exactly_the_weighted_sum_at_init(shape) -> None:
    a, b = _quarters(shape)
    f = SpatialFusion("conv", shape[1])  # init='2sumAB', relu=True, float32
    assert torch.equal(f(a, b), 0.25 * a + 0.75 * b)
    assert f.conv is not None and torch.count_nonzero(f.conv.bias) == 0


def test_conv_inits_are_the_reference_matrices() -> None:
    c = 3
    eye = torch.eye(c)
    want = {"2sumAB": (0.25, 0.75), "sumAB": (1.0, 1.0), "netA": (1.0, 0.0), "netB": (0.0, 1.0)}
    a, b = _quarters((2, c, 4, 5), seed=1)
    for init, (wa, wb) in want.items():
        f = SpatialFusion("conv", c, init=init)
        assert f.conv is not None
        w = f.conv.weight.squeeze(-1)  # (C, 2C): [wa I, wb I] (insert_conv_layers.m)
        assert torch.equal(w, torch.cat([wa * eye, wb * eye], dim=1)), init
        assert torch.equal(f(a, b), wa * a + wb * b), init


def test_conv_fusion_formula_with_trained_weights_and_relu() -> None:
    c = 4
    a, b = _pair((2, c, 3, 5), seed=2)
    for relu in (True, False):
        f = SpatialFusion("conv", c, init="xavier", relu=relu).double()
        assert f.conv is not None
        with torch.no_grad():
            f.conv.bias.normal_()
        w, bias = f.conv.weight.squeeze(-1), f.conv.bias
        want = torch.zeros(2, c, 3, 5, dtype=torch.float64)
        for n, o, i, j in itertools.product(range(2), range(c), range(3), range(5)):
            x = torch.cat([a[n, :, i, j], b[n, :, i, j]])
            want[n, o, i, j] = (w[o] * x).sum() + bias[o]
        if relu:
            want = want.clamp_min(0)
        torch.testing.assert_close(f(a, b), want)


def test_xavier_inits_follow_the_reference_scales() -> None:
    torch.manual_seed(0)
    c = 256
    w = fusion_weight("xavier", 2 * c, c)  # uniform +-sqrt(3 / (h w in)), in = 2C
    bound = math.sqrt(3 / (2 * c))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    w2 = fusion_weight("xavierimproved", 2 * c, c)  # normal, std sqrt(2 / (h w out))
    assert w2.std().item() == pytest.approx(math.sqrt(2 / c), rel=0.02)
    with pytest.raises(ValueError, match="2 \\* out_channels"):
        fusion_weight("2sumAB", 5, 3)
    with pytest.raises(ValueError, match="identity"):
        SpatialFusion("conv", 3, init="identity")


# ------------------------------------------------------------------------------ bilinear
@pytest.mark.parametrize("shape", SHAPES)
def test_bilinear_is_the_sum_of_outer_products(shape) -> None:
    a, b = _pair(shape, seed=3)
    n, c = shape[:2]
    raw = SpatialFusion("bilinear", c, signed_sqrt=False, l2_normalize=False).double()(a, b)
    want = torch.zeros(n, c * c, dtype=torch.float64)
    af, bf = a.reshape(n, c, -1), b.reshape(n, c, -1)
    for k, i, j, s in itertools.product(range(n), range(c), range(c), range(af.shape[2])):
        want[k, i * c + j] += af[k, i, s] * bf[k, j, s]
    torch.testing.assert_close(raw, want)
    full = SpatialFusion("bilinear", c).double()(a, b)
    z = torch.sign(want) * torch.sqrt(want.abs())
    torch.testing.assert_close(full, z / z.norm(dim=1, keepdim=True))
    assert torch.allclose(full.norm(dim=1), torch.ones(n, dtype=torch.float64))


def test_signed_sqrt_gradient_is_finite_at_zero() -> None:
    y = torch.tensor([-4.0, 0.0, 9.0], dtype=torch.float64, requires_grad=True)
    out = signed_sqrt(y)
    torch.testing.assert_close(out.detach(), torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64))
    out.sum().backward()
    assert torch.isfinite(y.grad).all()
    torch.testing.assert_close(y.grad[[0, 2]], torch.tensor([0.25, 1 / 6], dtype=torch.float64), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ size matching
def test_match_size_upsample_pad_error() -> None:
    a = torch.arange(2 * 3 * 2 * 3, dtype=torch.float32).view(2, 3, 2, 3)
    b = torch.ones(2, 3, 4, 5)
    ua, ub = match_size(a, b, "upsample")
    assert ub is b and ua.shape == (2, 3, 4, 5)
    torch.testing.assert_close(ua, F.interpolate(a, size=(4, 5), mode="bilinear", align_corners=False))
    pa, pb = match_size(a, b, "pad")
    assert pb is b and pa.shape == (2, 3, 4, 5)
    # 2 -> 4 rows: one zero row each side; 3 -> 5 columns: one each side
    assert torch.equal(pa[:, :, 1:3, 1:4], a) and pa.sum() == a.sum()
    # odd difference: the extra element goes at the end
    p1, _ = match_size(torch.ones(1, 1, 2), torch.ones(1, 1, 5), "pad")
    assert p1.flatten().tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="differ in size"):
        match_size(a, b, "error")
    # mixed: larger in one dim, smaller in the other -> both to the maximum
    x, y = match_size(torch.ones(1, 2, 6, 2), torch.ones(1, 2, 3, 4), "pad")
    assert x.shape == y.shape == (1, 2, 6, 4)
    # trilinear for 3 spatial dims
    t, _ = match_size(torch.rand(1, 2, 2, 3, 3), torch.rand(1, 2, 4, 6, 6), "upsample")
    assert t.shape == (1, 2, 4, 6, 6)
    with pytest.raises(ValueError, match="batch"):
        match_size(torch.ones(1, 2, 3), torch.ones(2, 2, 3))


def test_fusion_applies_the_rule_and_checks_channels() -> None:
    f = SpatialFusion("sum", 3, match="pad")
    out = f(torch.ones(1, 3, 2, 2), torch.ones(1, 3, 4, 4))
    assert out.shape == (1, 3, 4, 4) and out.sum() == 4 * 3 + 16 * 3
    with pytest.raises(ValueError, match="differ in size"):
        SpatialFusion("sum", 3, match="error")(torch.ones(1, 3, 2, 2), torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match="\\(N, 3, \\*spatial\\)"):
        f(torch.ones(1, 4, 2, 2), torch.ones(1, 4, 2, 2))
    with pytest.raises(ValueError, match="kind"):
        SpatialFusion("mean", 3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ temporal fusion
def test_gaussian_kernel_is_the_reference_one() -> None:
    g = gaussian_kernel3d(3, 1.0, dtype=torch.float64)
    want = torch.zeros(3, 3, 3, dtype=torch.float64)
    for i, j, k in itertools.product(range(3), repeat=3):
        x, y, z = i - 1, j - 1, k - 1
        want[i, j, k] = math.exp(-(x * x + y * y + z * z) / 2)
    torch.testing.assert_close(g, want / want.sum())
    assert g.sum().item() == pytest.approx(1.0)


def _smooth(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-channel 3-D correlation with ``g`` (zero padding 1), as a plain loop over taps."""
    xp = F.pad(x, (1, 1, 1, 1, 1, 1))
    t, h, w = x.shape[2:]
    out = torch.zeros_like(x)
    for i, j, k in itertools.product(range(3), repeat=3):
        out += g[i, j, k] * xp[:, :, i:i + t, j:j + h, k:k + w]
    return out


def test_conv3d_initial_output_is_the_gaussian_smoothed_weighted_sum() -> None:
    a, b = _pair((2, 3, 5, 4, 4), seed=4)
    a, b = a.abs(), b.abs()  # after ReLU5 in the reference: the fusion conv's ReLU is then inactive
    g = gaussian_kernel3d(3, 1.0, dtype=torch.float64)
    tf = TemporalFusion("conv3d_pool3d", 6).double()  # [a; b] 6 -> 3 channels, 2sumAB
    assert tf.out_channels == 3 and tf.conv is not None and torch.count_nonzero(tf.conv.bias) == 0
    conv_out = F.relu(tf.conv(torch.cat([a, b], dim=1)))
    torch.testing.assert_close(conv_out, _smooth(0.25 * a + 0.75 * b, g))
    # identity init: the Gaussian-smoothed input, channel by channel
    ti = TemporalFusion("conv3d_pool3d", 3, init="identity", relu=False).double()
    assert ti.conv is not None
    torch.testing.assert_close(ti.conv(a - b), _smooth(a - b, g))
    # the whole layer: conv, ReLU, then max over (T', H', W') = (5, 2, 2) cuboids, stride 2
    out = tf(torch.cat([a, b], dim=1))
    assert out.shape == (2, 3, 1, 2, 2)
    sm = _smooth(0.25 * a + 0.75 * b, g)
    for i, j in itertools.product(range(2), range(2)):
        torch.testing.assert_close(out[:, :, 0, i, j], sm[:, :, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].amax(dim=(2, 3, 4)))


def test_pooling_kinds() -> None:
    x, _ = _pair((2, 3, 6, 4, 6), seed=5)
    assert torch.equal(TemporalFusion("none", 3)(x), x)
    p2 = TemporalFusion("pool2d", 3, pool_size=(1, 2, 3), pool_stride=(1, 2, 3))(x)
    assert p2.shape == (2, 3, 6, 2, 2)  # T kept: every frame pooled on its own
    torch.testing.assert_close(p2[:, :, 4, 1, 0], x[:, :, 4, 2:4, 0:3].amax(dim=(2, 3)))
    p3 = TemporalFusion("pool3d", 3, pool_size=(3, 2, 2), pool_stride=(2, 2, 2))(x)
    # floor((6 - 3) / 2) + 1 = 2 frames, as MatConvNet's pooling without padding
    assert p3.shape == (2, 3, 2, 2, 3)
    torch.testing.assert_close(p3[:, :, 1, 0, 2], x[:, :, 2:5, 0:2, 4:6].amax(dim=(2, 3, 4)))
    default = TemporalFusion("pool3d", 3)  # the reference: poolSize [2 2 nFrames=5], stride [2 2 2]
    assert default.pool_size == (5, 2, 2) and default.pool_stride == (2, 2, 2)
    assert default(torch.rand(1, 3, 5, 14, 14)).shape == (1, 3, 1, 7, 7)
    with pytest.raises(ValueError, match="larger than"):
        default(torch.rand(1, 3, 3, 14, 14))
    with pytest.raises(ValueError, match="keeps the channels"):
        TemporalFusion("pool3d", 3, out_channels=2)


def test_every_fusion_parameter_learns() -> None:
    a, b = _pair((2, 4, 5, 4, 4), seed=6)
    a, b = a.float().abs(), b.float().abs()
    layers = [SpatialFusion("conv", 4), TemporalFusion("conv3d_pool3d", 8)]
    out = layers[1](torch.cat([a, b], 1)).sum() + layers[0](a, b).sum()
    out.backward()
    for layer in layers:
        for name, p in layer.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.any(), name
