"""DecouplingGCN against a float64 loop reference of DP's computation, and its documented details."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphfuse.layers.decoupling_gcn import DecouplingGCN


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Random parameters and BatchNorm statistics so that no term is trivially zero or one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5)


def _bn(value: float, bn: torch.nn.BatchNorm2d, ch: int) -> float:
    mean = bn.running_mean[ch].item()
    var = bn.running_var[ch].item()
    return (value - mean) / math.sqrt(var + bn.eps) * bn.weight[ch].item() + bn.bias[ch].item()


def _loop_reference(m: DecouplingGCN, x: np.ndarray) -> np.ndarray:
    """DP's decoupling_gcn written as plain loops (eval-mode BatchNorm), float64."""
    n_, cin, t_, v_ = x.shape
    k_, cout, g_ = m.subsets, m.out_channels, m.groups
    w = m.Linear_weight.detach().double().numpy()
    b = m.Linear_bias.detach().double().numpy().reshape(-1)
    a = m.DecoupleA.detach().double().numpy()
    # DP: tile the G groups Cout/G times (repeat), then L2-normalise over the channel axis
    tiled = np.zeros((k_, cout, v_, v_))
    for k in range(k_):
        for c in range(cout):
            tiled[k, c] = a[k, c % g_]
    normed = np.zeros_like(tiled)
    for k in range(k_):
        for i in range(v_):
            for j in range(v_):
                norm = math.sqrt(sum(tiled[k, c, i, j] ** 2 for c in range(cout))) + 1e-4
                for c in range(cout):
                    normed[k, c, i, j] = tiled[k, c, i, j] / norm
    # channel mixing + bias + bn0
    y = np.zeros((n_, k_ * cout, t_, v_))
    for n in range(n_):
        for d in range(k_ * cout):
            for t in range(t_):
                for v in range(v_):
                    s = b[d]
                    for c in range(cin):
                        s += x[n, c, t, v] * w[c, d]
                    y[n, d, t, v] = _bn(s, m.bn0, d)
    out = np.zeros((n_, cout, t_, v_))
    for n in range(n_):
        for c in range(cout):
            for t in range(t_):
                for wj in range(v_):
                    s = 0.0
                    for k in range(k_):
                        for vi in range(v_):
                            s += y[n, k * cout + c, t, vi] * normed[k, c, vi, wj]
                    s = _bn(s, m.bn, c)
                    if m.residual:
                        if m.down is None:
                            s += x[n, c, t, wj]
                        else:
                            conv, bn = m.down[0], m.down[1]
                            r = conv.bias[c].item()
                            for ci in range(cin):
                                r += conv.weight[c, ci, 0, 0].item() * x[n, ci, t, wj]
                            s += _bn(r, bn, c)
                    out[n, c, t, wj] = max(s, 0.0)
    return out


@pytest.mark.parametrize(
    ("cin", "cout", "groups", "residual"),
    [(3, 16, 8, True), (8, 8, 4, True), (3, 8, 8, False)],
)
def test_matches_float64_loop_reference(cin: int, cout: int, groups: int, residual: bool) -> None:
    torch.manual_seed(0)
    m = DecouplingGCN(cin, cout, num_nodes=5, subsets=3, groups=groups, residual=residual).double().eval()
    _randomise(m, seed=cin * 100 + cout)
    x = torch.randn(2, cin, 3, 5, dtype=torch.float64)
    got = m(x).detach().numpy()
    want = _loop_reference(m, x.numpy())
    assert (want > 0).any() and (want == 0).any()  # the ReLU is exercised on both sides
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_identity_initialisation_and_channel_axis_normalisation() -> None:
    m = DecouplingGCN(4, 32, num_nodes=19)
    assert m.DecoupleA.shape == (3, 8, 19, 19)
    a = m.normalized_adjacency().detach()
    # DP normalises over the 32 tiled channel copies: the identity diagonal becomes 1/(sqrt(32)+1e-4)
    diag = torch.diagonal(a, dim1=-2, dim2=-1)
    torch.testing.assert_close(diag, torch.full_like(diag, 1.0 / (math.sqrt(32) + 1e-4)))
    assert (a - torch.diag_embed(diag)).abs().max() == 0
    assert m.bn.weight.detach().eq(1e-6).all()
    torch.testing.assert_close(m.Linear_bias.detach(), torch.full((1, 96, 1, 1), 1e-6))


def test_residual_paths() -> None:
    x = torch.randn(2, 8, 4, 19)
    same = DecouplingGCN(8, 8).eval()
    assert same.down is None
    with torch.no_grad():
        same.bn.weight.zero_()  # graph branch off: only the identity residual remains
    torch.testing.assert_close(same(x), torch.relu(x))
    off = DecouplingGCN(8, 8, residual=False).eval()
    with torch.no_grad():
        off.bn.weight.zero_()
    assert off(x).abs().max() == 0
    wider = DecouplingGCN(8, 16)
    assert isinstance(wider.down, torch.nn.Sequential)


def test_unused_linear_only_adds_parameters() -> None:
    torch.manual_seed(1)
    base = DecouplingGCN(4, 32)
    torch.manual_seed(1)
    with_dead = DecouplingGCN(4, 32, unused_linear=True)
    n_base = sum(p.numel() for p in base.parameters())
    n_dead = sum(p.numel() for p in with_dead.parameters())
    assert n_dead - n_base == 4 * 32 + 32
    # hand count: W (4, 96) + b 96 + A 3*8*19*19 + bn0 2*96 + bn 2*32 + down conv 4*32+32 + down bn 2*32
    assert n_base == 4 * 96 + 96 + 3 * 8 * 19 * 19 + 2 * 96 + 2 * 32 + 4 * 32 + 32 + 2 * 32
    with_dead(torch.randn(2, 4, 3, 19)).sum().backward()
    assert with_dead.linear.weight.grad is None
    assert with_dead.DecoupleA.grad is not None


def test_custom_adjacency_and_errors() -> None:
    adj = np.stack([np.eye(5), np.ones((5, 5)), np.zeros((5, 5))])
    m = DecouplingGCN(2, 8, num_nodes=5, adjacency=adj)
    torch.testing.assert_close(m.DecoupleA.detach()[1, 3], torch.ones(5, 5))
    with pytest.raises(ValueError, match="adjacency must have shape"):
        DecouplingGCN(2, 8, num_nodes=5, adjacency=np.eye(5))
    with pytest.raises(ValueError, match="not divisible by groups"):
        DecouplingGCN(2, 12)
    with pytest.raises(ValueError, match=r"expected \(N, 2, T, 5\)"):
        m(torch.randn(1, 2, 3, 19))


def test_gradients_are_finite_at_the_identity_start():
    # Off-diagonal adjacency entries start at exactly 0: the normalisation's gradient there
    # must be 0, not NaN (a sqrt of a zero sum of squares has an infinite derivative).
    torch.manual_seed(0)
    layer = DecouplingGCN(4, 16, num_nodes=5, groups=4)
    layer(torch.randn(2, 4, 3, 5)).square().mean().backward()
    for name, p in layer.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    assert layer.DecoupleA.grad.abs().sum() > 0
