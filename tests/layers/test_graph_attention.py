"""The batched graph attention (HGAT's BGATLayer) against the reference's pair-tensor formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphfuse.layers.graph_attention import GraphAttention


def _bgat_reference(layer: GraphAttention, x: torch.Tensor, adj: torch.Tensor | None = None) -> torch.Tensor:
    """BGATLayer's forward as published (explicit [h_i || h_j] pairs), pyGAT's -9e15 mask, float64 loops."""
    x, w, a = x.double(), layer.W.double(), layer.a.double()
    b, n, _ = x.shape
    h = x @ w
    out = torch.zeros(b, n, w.shape[1], dtype=torch.float64)
    for s in range(b):
        e = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            for j in range(n):
                e[i, j] = F.leaky_relu(torch.cat([h[s, i], h[s, j]]) @ a[:, 0], layer.alpha)
        if adj is not None:
            e = torch.where(adj > 0, e, torch.full_like(e, -9e15))
        att = torch.softmax(e, dim=1)
        hp = att @ h[s]
        if layer.beta is not None:
            hp = hp + layer.beta.double() * h[s]
        out[s] = F.elu(hp)
    return out


def test_matches_the_pair_tensor_formula() -> None:
    torch.manual_seed(0)
    layer = GraphAttention(6, 4)
    with torch.no_grad():
        layer.beta.fill_(0.7)
    x = torch.randn(3, 5, 6)
    torch.testing.assert_close(layer(x).double(), _bgat_reference(layer, x), rtol=1e-5, atol=1e-6)


def test_adjacency_mask_excludes_non_edges_and_residual_switch() -> None:
    torch.manual_seed(1)
    layer = GraphAttention(4, 4, residual=False)
    x = torch.randn(2, 4, 4)
    adj = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(layer(x, adj=adj).double(), _bgat_reference(layer, x, adj), rtol=1e-5, atol=1e-6)
    att = layer.attention(x, adj=adj)
    assert (att[:, adj == 0] == 0).all()
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 4))
    assert [n for n, _ in layer.named_parameters()] == ["W", "a"]


def test_padded_nodes_do_not_change_the_real_ones() -> None:
    torch.manual_seed(2)
    layer = GraphAttention(3, 3)
    x = torch.randn(2, 3, 3)
    padded = torch.cat([x, torch.randn(2, 2, 3) * 100], dim=1)
    mask = torch.tensor([True, True, True, False, False])
    torch.testing.assert_close(layer(padded, node_mask=mask)[:, :3], layer(x))
    per_sample = mask.expand(2, 5)
    torch.testing.assert_close(layer(padded, node_mask=per_sample)[:, :3], layer(x))


def test_names_shapes_init_and_errors() -> None:
    layer = GraphAttention(512, 512)
    assert {n: tuple(p.shape) for n, p in layer.named_parameters()} == {"W": (512, 512), "a": (1024, 1), "beta": (1,)}
    assert layer.beta.item() == 1.0
    assert sum(p.numel() for p in layer.parameters()) == 512 * 512 + 1024 + 1  # 263,169 (gat1 of HGAT)
    with pytest.raises(ValueError, match=r"\(B, N, 512\)"):
        layer(torch.zeros(2, 512))
    with pytest.raises(ValueError, match="dropout"):
        GraphAttention(2, 2, dropout=1.0)


def test_groups_are_independent_layers_run_at_once() -> None:
    torch.manual_seed(3)
    grouped = GraphAttention(3, 2, groups=3)
    singles = [GraphAttention(3, 2) for _ in range(3)]
    with torch.no_grad():
        grouped.beta.copy_(torch.tensor([1.0, 0.5, -0.2]))
        for g, layer in enumerate(singles):
            layer.W.copy_(grouped.W[g])
            layer.a.copy_(grouped.a[g])
            layer.beta.copy_(grouped.beta[g : g + 1])
    x = torch.randn(2, 3, 4, 3)  # (B, G, N, F)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, False, False]])
    out = grouped(x, node_mask=mask)
    for g, layer in enumerate(singles):
        n = int(mask[g].sum())
        torch.testing.assert_close(out[:, g, :n], layer(x[:, g, :n]))
    assert {n: tuple(p.shape) for n, p in grouped.named_parameters()} == {"W": (3, 3, 2), "a": (3, 4, 1), "beta": (3,)}
    # a one-node graph: the softmax over one key is 1, so its attention vector gets no gradient
    out[:, 2, 0].sum().backward()
    assert not grouped.a.grad[2].any() and grouped.W.grad[2].any()
