"""The label-graph convolution of ML-GCN: H' = A_hat (H W), names and shapes of the reference."""

from __future__ import annotations

import math

import pytest
import torch

from graphfuse.layers.graph_conv import GraphConvolution


def test_hand_worked_propagation() -> None:
    gc = GraphConvolution(2, 1)
    with torch.no_grad():
        gc.weight.copy_(torch.tensor([[1.0], [2.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # H W = [1, 2, 3]
    adj = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.25, 0.0, 1.0]])
    out = gc(x, adj)
    assert out.squeeze(1).tolist() == [2.0, 2.0, 3.25]


def test_matches_a_float64_loop_and_batches() -> None:
    g = torch.Generator().manual_seed(0)
    gc = GraphConvolution(5, 3, bias=True).double()
    x = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
    adj = torch.rand(4, 4, generator=g, dtype=torch.float64)
    out = gc(x, adj)
    w, b = gc.weight, gc.bias
    for n in range(2):
        for i in range(4):
            for o in range(3):
                ref = sum(adj[i, j] * sum(x[n, j, f] * w[f, o] for f in range(5)) for j in range(4)) + b[0, 0, o]
                assert out[n, i, o].item() == pytest.approx(ref.item(), rel=1e-12)


def test_reference_names_shapes_and_init() -> None:
    gc = GraphConvolution(300, 1024)
    assert [n for n, _ in gc.named_parameters()] == ["weight"]
    assert gc.weight.shape == (300, 1024)
    assert gc.weight.abs().max() <= 1 / math.sqrt(1024)
    assert GraphConvolution(3, 4, bias=True).bias.shape == (1, 1, 4)
    with pytest.raises(ValueError, match="does not match 3 nodes"):
        gc(torch.zeros(3, 300), torch.eye(4))
