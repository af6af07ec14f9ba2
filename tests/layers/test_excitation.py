"""ACTION-Net excitation layers (Wang et al., CVPR 2021; V-Sense/ACTION-Net models/action.py)
against float64 references: per-path loop formulas, and an independent functional rendering of
the official ``Action`` forward on the faithful skeleton layout (N*T, C, V, 1)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphfuse.layers.excitation import (
    ActionExcitation,
    ChannelExcitation,
    MotionExcitation,
    SpatioTemporalExcitation,
    TemporalShiftConv,
    action_state_dict_from_official,
)

f64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Random weights and BN statistics (float64), so no path is at its initial value."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    for name, b in module.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype))
        elif name.endswith("running_var"):
            b.copy_(torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5)


# ----------------------------------------------------------------------------------------
# per-path float64 loop references (written from the formulas of the brief, section 4)
# ----------------------------------------------------------------------------------------
def ste_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """X + X * sigmoid(sum_{i,j} w[i,j] S[t+i-1, v+j-1]), S = channel mean, zero outside."""
    n_, c_, t_, v_ = x.shape
    s = x.mean(dim=1)  # (N, T, V)
    out = torch.empty_like(x)
    for n in range(n_):
        for t in range(t_):
            for v in range(v_):
                acc = 0.0
                for i in range(3):
                    for j in range(3):
                        tt, vv = t + i - 1, v + j - 1
                        if 0 <= tt < t_ and 0 <= vv < v_:
                            acc += float(w[i, j]) * float(s[n, tt, vv])
                a = sig(acc)
                out[n, :, t, v] = x[n, :, t, v] * (1.0 + a)
    return out


def ce_reference(x: torch.Tensor, wsq: torch.Tensor, wconv: torch.Tensor, wex: torch.Tensor) -> torch.Tensor:
    """z = mean_V X; s = Wsq z; h_t = relu(sum_k Wc[:, :, k] s_{t+k-1}); g = sigmoid(Wex h)."""
    n_, c_, t_, v_ = x.shape
    z = x.mean(dim=3)  # (N, C, T)
    s = torch.einsum("rc,nct->nrt", wsq, z)
    h = torch.zeros_like(s)
    for t in range(t_):
        for k in range(3):
            tt = t + k - 1
            if 0 <= tt < t_:
                h[:, :, t] += torch.einsum("rq,nq->nr", wconv[:, :, k], s[:, :, tt])
    h = h.clamp_min(0.0)
    g = 1.0 / (1.0 + torch.exp(-torch.einsum("cr,nrt->nct", wex, h)))
    return x + x * g[..., None]


def me_reference(x, wsq, bn_w, bn_b, rmean, rvar, eps, wdw, wex) -> torch.Tensor:
    """Eval-mode ME: F = BN(Wsq X); K_v = sum_j wdw[:, j] F_{v+j-1}; D_t = mean_V(K_{t+1} - F_t),
    D_{T-1} = 0; g = sigmoid(Wex D)."""
    n_, c_, t_, v_ = x.shape
    f = torch.einsum("rc,nctv->nrtv", wsq, x)
    f = (f - rmean[:, None, None]) / torch.sqrt(rvar[:, None, None] + eps)
    f = f * bn_w[:, None, None] + bn_b[:, None, None]
    k = torch.zeros_like(f)
    for v in range(v_):
        for j in range(3):
            vv = v + j - 1
            if 0 <= vv < v_:
                k[:, :, :, v] += wdw[None, :, j, None] * f[:, :, :, vv]
    d = torch.zeros(n_, wsq.shape[0], t_, dtype=x.dtype)
    for t in range(t_ - 1):
        d[:, :, t] = (k[:, :, t + 1, :] - f[:, :, t, :]).mean(dim=-1)
    g = 1.0 / (1.0 + torch.exp(-torch.einsum("cr,nrt->nct", wex, d)))
    return x + x * g[..., None]


def test_ste_against_loop_reference():
    torch.manual_seed(0)
    m = SpatioTemporalExcitation(8).to(f64)
    randomize_(m, 1)
    x = torch.randn(2, 8, 5, 4, dtype=f64)
    ref = ste_reference(x, m.conv.weight.detach()[0, 0])
    torch.testing.assert_close(m(x), ref, atol=1e-12, rtol=0)


def test_ce_against_loop_reference():
    m = ChannelExcitation(32, reduction=16).to(f64)  # Cr = 2
    randomize_(m, 2)
    x = torch.randn(2, 32, 6, 4, dtype=f64, generator=torch.Generator().manual_seed(3))
    ref = ce_reference(x, m.squeeze.weight[:, :, 0, 0], m.conv.weight, m.expand.weight[:, :, 0, 0])
    torch.testing.assert_close(m(x), ref, atol=1e-12, rtol=0)


def test_me_against_loop_reference():
    m = MotionExcitation(48, reduction=16).to(f64).eval()  # Cr = 3
    randomize_(m, 4)
    x = torch.randn(2, 48, 6, 5, dtype=f64, generator=torch.Generator().manual_seed(5))
    ref = me_reference(
        x, m.squeeze.weight[:, :, 0, 0], m.bn.weight, m.bn.bias, m.bn.running_mean, m.bn.running_var,
        m.bn.eps, m.conv.weight[:, 0, 0, :], m.expand.weight[:, :, 0, 0],
    )
    torch.testing.assert_close(m(x), ref, atol=1e-12, rtol=0)


def test_me_last_frame_difference_is_zero():
    """D_{T-1} = 0, so the last frame's gate is sigmoid(Wex 0) = 1/2 whatever the input."""
    m = MotionExcitation(32).to(f64)
    randomize_(m, 6)
    x = torch.randn(3, 32, 7, 5, dtype=f64)
    g = m.gate(x)
    assert g.shape == (3, 32, 7, 1)
    assert torch.equal(g[:, :, -1], torch.full_like(g[:, :, -1], 0.5))
    assert not torch.allclose(g[:, :, :-1], torch.full_like(g[:, :, :-1], 0.5))
    # and it is a *forward* difference: changing only the last frame moves only frame T-2's
    # gate (eval mode: in train mode the BN batch statistics mix all frames)
    x2 = x.clone()
    x2[:, :, -1] += 1.0
    m.eval()
    g, g2 = m.gate(x), m.gate(x2)
    torch.testing.assert_close(g2[:, :, :-2], g[:, :, :-2], atol=0, rtol=0)
    assert not torch.allclose(g2[:, :, -2], g[:, :, -2])


# ----------------------------------------------------------------------------------------
# the official Action forward on the faithful layout, written independently
# ----------------------------------------------------------------------------------------
def official_action_sum(x_nctv: torch.Tensor, sd: dict[str, torch.Tensor], bn_stats: dict, training: bool):
    """What official ``Action`` feeds its ``net`` (x_p1 + x_p2 + x_p3), on the skeleton
    reshaped to (N*T, C, H=V, W=1) with n_segment = T, using the official kernel shapes:
    Conv1d shift, Conv3d 3x3x3 STE, 3x3 depthwise ME, adaptive average pools over (H, W).
    Returns the result in (N, C, T, V)."""
    n, c, t, v = x_nctv.shape
    x = x_nctv.permute(0, 2, 1, 3).reshape(n * t, c, v, 1)  # (NT, C, H, W)
    nt, _, h, w = x.shape

    # learnable shift: Conv1d over the segment axis, one row per (n, h, w)
    rows = x.reshape(n, t, c, h, w).permute(0, 3, 4, 2, 1).reshape(n * h * w, c, t)
    rows = F.conv1d(rows, sd["action_shift.weight"], padding=1, groups=c)
    xs = rows.reshape(n, h, w, c, t).permute(0, 4, 3, 1, 2).reshape(nt, c, h, w)

    # STE: channel mean of (n, c, t, h, w), Conv3d 3x3x3, sigmoid
    vol = xs.reshape(n, t, c, h, w).transpose(1, 2).mean(dim=1, keepdim=True)  # (n, 1, t, h, w)
    a = F.conv3d(vol, sd["action_p1_conv1.weight"], padding=1)
    a = torch.sigmoid(a.transpose(1, 2).reshape(nt, 1, h, w))
    p1 = xs + xs * a

    # CE: pool, squeeze, Conv1d over t, relu, expand, sigmoid
    z = F.conv2d(F.adaptive_avg_pool2d(xs, 1), sd["action_p2_squeeze.weight"])  # (nt, cr, 1, 1)
    cr = z.shape[1]
    z = z.reshape(n, t, cr).transpose(1, 2)
    z = F.relu(F.conv1d(z, sd["action_p2_conv1.weight"], padding=1))
    z = z.transpose(1, 2).reshape(nt, cr, 1, 1)
    p2 = xs + xs * torch.sigmoid(F.conv2d(z, sd["action_p2_expand.weight"]))

    # ME: squeeze + BN, 3x3 depthwise per frame, forward difference zero-padded at the end
    f = F.conv2d(xs, sd["action_p3_squeeze.weight"])
    f = F.batch_norm(
        f, bn_stats["running_mean"], bn_stats["running_var"], sd["action_p3_bn1.weight"],
        sd["action_p3_bn1.bias"], training=training, momentum=0.1, eps=1e-5,
    )
    k = F.conv2d(f, sd["action_p3_conv1.weight"], padding=1, groups=cr)
    diff = k.reshape(n, t, cr, h, w)[:, 1:] - f.reshape(n, t, cr, h, w)[:, :-1]
    diff = torch.cat([diff, diff.new_zeros(n, 1, cr, h, w)], dim=1).reshape(nt, cr, h, w)
    g = torch.sigmoid(F.conv2d(F.adaptive_avg_pool2d(diff, 1), sd["action_p3_expand.weight"]))
    p3 = xs + xs * g

    out = p1 + p2 + p3  # (NT, C, V, 1)
    return out.reshape(n, t, c, v).permute(0, 2, 1, 3)


def random_official_state(c: int, seed: int) -> dict[str, torch.Tensor]:
    """Random official-shaped weights (every entry random, off-middle W slices included)."""
    gen = torch.Generator().manual_seed(seed)
    cr = c // 16

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=f64) * 0.5

    return {
        "action_shift.weight": r(c, 1, 3),
        "action_p1_conv1.weight": r(1, 1, 3, 3, 3),
        "action_p2_squeeze.weight": r(cr, c, 1, 1),
        "action_p2_conv1.weight": r(cr, cr, 3),
        "action_p2_expand.weight": r(c, cr, 1, 1),
        "action_p3_squeeze.weight": r(cr, c, 1, 1),
        "action_p3_bn1.weight": r(cr) + 1.0,
        "action_p3_bn1.bias": r(cr),
        "action_p3_bn1.running_mean": r(cr),
        "action_p3_bn1.running_var": torch.rand(cr, generator=gen, dtype=f64) + 0.5,
        "action_p3_bn1.num_batches_tracked": torch.tensor(7),
        "action_p3_conv1.weight": r(cr, 1, 3, 3),
        "action_p3_expand.weight": r(c, cr, 1, 1),
    }


def native_from_official_by_hand(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Section 4.5 of the brief: the middle W-slice of the STE and ME kernels."""
    return {
        "shift.weight": sd["action_shift.weight"][..., None],  # (C, 1, 3, 1) over (T, V)
        "ste.conv.weight": sd["action_p1_conv1.weight"][:, :, :, :, 1],  # (1, 1, kT, kV)
        "ce.squeeze.weight": sd["action_p2_squeeze.weight"],
        "ce.conv.weight": sd["action_p2_conv1.weight"],
        "ce.expand.weight": sd["action_p2_expand.weight"],
        "me.squeeze.weight": sd["action_p3_squeeze.weight"],
        "me.bn.weight": sd["action_p3_bn1.weight"],
        "me.bn.bias": sd["action_p3_bn1.bias"],
        "me.bn.running_mean": sd["action_p3_bn1.running_mean"],
        "me.bn.running_var": sd["action_p3_bn1.running_var"],
        "me.bn.num_batches_tracked": sd["action_p3_bn1.num_batches_tracked"],
        "me.conv.weight": sd["action_p3_conv1.weight"][:, :, :, 1][:, :, None, :],  # (Cr, 1, 1, kV)
        "me.expand.weight": sd["action_p3_expand.weight"],
    }


@pytest.mark.parametrize(
    ("c", "t", "v", "training"), [(32, 7, 5, False), (48, 6, 4, True), (16, 9, 25, True), (16, 1, 3, False)]
)
def test_action_equals_official_forward_on_faithful_layout(c, t, v, training):
    sd = random_official_state(c, seed=c + t)
    m = ActionExcitation(c).to(f64)
    m.load_state_dict(native_from_official_by_hand(sd), strict=True)
    m.train(training)
    x = torch.randn(3, c, t, v, dtype=f64, generator=torch.Generator().manual_seed(11))
    stats = {"running_mean": sd["action_p3_bn1.running_mean"].clone(),
             "running_var": sd["action_p3_bn1.running_var"].clone()}
    ref = official_action_sum(x, sd, stats, training)
    out = m(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    # in training mode the BN statistics run over the same elements, so the running
    # statistics move identically too
    torch.testing.assert_close(m.me.bn.running_mean, stats["running_mean"], atol=1e-12, rtol=0)
    torch.testing.assert_close(m.me.bn.running_var, stats["running_var"], atol=1e-12, rtol=0)


def test_state_dict_conversion_matches_hand_slicing():
    sd = random_official_state(32, seed=3)
    sd_with_net = {**sd, "net.weight": torch.zeros(8, 32, 1, 1)}
    converted = action_state_dict_from_official(sd_with_net)
    by_hand = native_from_official_by_hand(sd)
    assert converted.keys() == by_hand.keys()
    for k in by_hand:
        assert torch.equal(converted[k], by_hand[k]), k
    ActionExcitation(32).to(f64).load_state_dict(converted, strict=True)
    with pytest.raises(KeyError, match="action_p2_conv1.weight"):
        action_state_dict_from_official({k: val for k, val in sd.items() if k != "action_p2_conv1.weight"})
    with pytest.raises(KeyError, match="bogus"):
        action_state_dict_from_official({**sd, "bogus": torch.zeros(1)})


# ----------------------------------------------------------------------------------------
# shift conv, initialisation, parameter counts, gradients, shapes, errors
# ----------------------------------------------------------------------------------------
def test_shift_conv_initial_behaviour():
    m = TemporalShiftConv(20, shift_div=8).to(f64)  # fold = 2
    assert m.fold == 2
    x = torch.randn(2, 20, 6, 3, dtype=f64)
    out = m(x)
    future, past, ident = slice(0, 2), slice(2, 4), slice(4, 20)
    torch.testing.assert_close(out[:, future, :-1], x[:, future, 1:], atol=0, rtol=0)
    assert torch.all(out[:, future, -1] == 0)
    torch.testing.assert_close(out[:, past, 1:], x[:, past, :-1], atol=0, rtol=0)
    assert torch.all(out[:, past, 0] == 0)
    torch.testing.assert_close(out[:, ident], x[:, ident], atol=0, rtol=0)
    assert m.weight.requires_grad
    # fewer channels than shift_div: fold 0, all identity (as the official code)
    small = TemporalShiftConv(4).to(f64)
    y = torch.randn(1, 4, 5, 2, dtype=f64)
    torch.testing.assert_close(small(y), y, atol=0, rtol=0)


def test_initialisation_follows_official_fan_in():
    torch.manual_seed(0)
    m = ActionExcitation(256)
    ste_bound, me_bound = 1 / math.sqrt(27), 1 / 3  # Conv3d 3x3x3 and depthwise 3x3 fan-in
    assert m.ste.conv.weight.abs().max() <= ste_bound
    assert m.me.conv.weight.abs().max() <= me_bound
    assert m.me.conv.weight.abs().max() > 0.7 * me_bound  # 48 draws: spread over the range
    assert torch.all(m.me.bn.weight == 1) and torch.all(m.me.bn.bias == 0)
    for conv in (m.ce.squeeze, m.me.squeeze, m.ce.conv, m.ce.expand, m.me.expand):
        fan_in = conv.weight[0].numel()
        assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in)  # PyTorch default
    for mod in m.modules():
        assert getattr(mod, "bias", None) is None or isinstance(mod, torch.nn.BatchNorm2d)


@pytest.mark.parametrize("c", [64, 256])
def test_parameter_counts(c):
    cr = c // 16
    m = ActionExcitation(c)

    def count(mod):
        return sum(p.numel() for p in mod.parameters())

    assert count(m.shift) == 3 * c
    assert count(m.ste) == 9  # official 27: 18 of them only ever see zero padding on (N*T, C, V, 1)
    assert count(m.ce) == 2 * c * cr + 3 * cr**2
    assert count(m.me) == 2 * c * cr + 3 * cr + 2 * cr  # official 9*Cr depthwise -> 3*Cr
    assert count(m) == {64: 1293, 256: 18009}[c]
    assert count(SpatioTemporalExcitation(c)) == 9
    assert count(ChannelExcitation(c)) == count(m.ce)
    assert count(MotionExcitation(c)) == count(m.me)


def test_gradient_reaches_every_parameter():
    m = ActionExcitation(32).to(f64)
    x = torch.randn(2, 32, 8, 5, dtype=f64, requires_grad=True)
    (m(x) * torch.randn(2, 32, 8, 5, dtype=f64)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gradcheck_input():
    m = ActionExcitation(16).to(f64).eval()
    randomize_(m, 9)
    x = torch.randn(1, 16, 4, 3, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


@pytest.mark.parametrize("v", [25, 19])
def test_any_temporal_length_and_joint_count(v):
    m = ActionExcitation(64)
    for t in (300, 150, 75):
        x = torch.randn(2, 64, t, v)
        out = m(x)
        assert out.shape == (2, 64, t, v)
        assert torch.isfinite(out).all()
    # each path standalone, and T = 1 (ME sees no difference at all)
    x = torch.randn(2, 64, 1, v)
    for path in (SpatioTemporalExcitation(64), ChannelExcitation(64), MotionExcitation(64).eval()):
        assert path(x).shape == x.shape


def test_sum_scale_is_three_x_plus_gates():
    """ActionExcitation = X (3 + A_STE + g_CE + g_ME) = STE(X) + CE(X) + ME(X)."""
    m = ActionExcitation(32).to(f64)
    randomize_(m, 12)
    x = torch.randn(2, 32, 6, 5, dtype=f64)
    xs = m.shift(x)
    torch.testing.assert_close(m(x), m.ste(xs) + m.ce(xs) + m.me(xs), atol=1e-12, rtol=0)
    ratio = m(x) / xs
    assert torch.all(ratio > 3) and torch.all(ratio < 6)


def test_constructor_and_input_errors():
    for cls in (ChannelExcitation, MotionExcitation, ActionExcitation):
        with pytest.raises(ValueError, match="reduction"):
            cls(15)
        with pytest.raises(ValueError, match="reduction"):
            cls(3)
        with pytest.raises(ValueError, match="reduction"):
            cls(32, reduction=0)
    assert ChannelExcitation(8, reduction=8).reduced_channels == 1
    with pytest.raises(ValueError, match="shift_div"):
        TemporalShiftConv(16, shift_div=0)
    with pytest.raises(ValueError, match="channels"):
        SpatioTemporalExcitation(0)
    with pytest.raises(ValueError, match=r"\(N, C=32, T, V\)"):
        ActionExcitation(32)(torch.randn(2, 16, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, C=32, T, V\)"):
        MotionExcitation(32)(torch.randn(2, 32, 5))


def test_gradients_equal_official_forward_gradients():
    """Training-mode backward: the native parameters' gradients are the official kernels'
    gradients sliced the same way; the off-middle W slices of the official kernels get 0."""
    c, t, v = 32, 6, 5
    sd = {k: val.clone().requires_grad_(val.is_floating_point() and "running" not in k)
          for k, val in random_official_state(c, seed=21).items()}
    m = ActionExcitation(c).to(f64)
    m.load_state_dict(native_from_official_by_hand({k: val.detach() for k, val in sd.items()}), strict=True)
    gen = torch.Generator().manual_seed(22)
    x = torch.randn(2, c, t, v, dtype=f64, generator=gen)
    w = torch.randn(2, c, t, v, dtype=f64, generator=gen)
    stats = {"running_mean": sd["action_p3_bn1.running_mean"].detach().clone(),
             "running_var": sd["action_p3_bn1.running_var"].detach().clone()}
    (official_action_sum(x, sd, stats, training=True) * w).sum().backward()
    (m(x) * w).sum().backward()
    grads = {k: val.grad for k, val in sd.items() if val.grad is not None}
    expected = native_from_official_by_hand({**{k: val.detach() for k, val in sd.items()}, **grads})
    for name, p in m.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], atol=1e-12, rtol=0, msg=name)
    assert torch.all(grads["action_p1_conv1.weight"][..., [0, 2]] == 0)
    assert torch.all(grads["action_p3_conv1.weight"][..., [0, 2]] == 0)
