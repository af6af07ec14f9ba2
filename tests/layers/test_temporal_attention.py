"""TemporalTransformer (DP's "TAT"): invariants, layouts, and attention against loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from entmax import entmax15

from graphfuse.layers.temporal_attention import (
    MultiHeadAttention,
    TemporalTransformer,
    attention_weights,
    sinusoidal_positional_encoding,
)


def _tt(**kw: object) -> TemporalTransformer:
    torch.manual_seed(0)
    return TemporalTransformer(8, num_layers=2, num_heads=4, **kw).double().eval()


@pytest.mark.parametrize("attention", ["entmax15", "softmax"])
def test_without_positional_encoding_permutation_equivariant_over_time(attention: str) -> None:
    m = _tt(attention=attention)
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(m(x[:, :, perm]), m(x)[:, :, perm], rtol=1e-10, atol=1e-10)


def test_with_positional_encoding_not_equivariant() -> None:
    m = _tt(positional_encoding=True, attention="softmax")
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    assert (m(x[:, :, perm]) - m(x)[:, :, perm]).abs().max() > 1e-3


def test_official_layout_is_view_without_permute_of_correct_layout() -> None:
    correct = _tt(layout="correct")
    official = _tt(layout="official")
    official.load_state_dict(correct.state_dict())
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    a, b = correct(x), official(x)
    n, c, t, v = x.shape
    # official re-reads the (N, V, T, C)-ordered memory as (N, C, T, V)
    torch.testing.assert_close(b, a.permute(0, 3, 2, 1).contiguous().view(n, c, t, v), rtol=0, atol=0)
    assert (a - b).abs().max() > 1e-3


def test_joints_are_processed_independently() -> None:
    m = _tt()
    x = torch.randn(1, 8, 5, 4, dtype=torch.float64)
    full = m(x)
    for v in range(4):  # loop in the test only: the layer itself is vectorised
        torch.testing.assert_close(full[..., v : v + 1], m(x[..., v : v + 1]), rtol=1e-10, atol=1e-10)


def test_final_relu_option_and_parameter_count() -> None:
    torch.manual_seed(0)
    with_relu = TemporalTransformer(32)
    torch.manual_seed(0)
    without = TemporalTransformer(32, final_relu=False)
    x = torch.randn(2, 32, 4, 19)
    torch.testing.assert_close(with_relu(x), torch.relu(without(x)))
    d = 96
    per_block = 4 * (d * d + d) + 3 * 2 * d + (d * 2 * d + 2 * d) + (2 * d * d + d)
    want = 32 * d + 5 * per_block + (d * 32 + 32)
    assert sum(p.numel() for p in with_relu.parameters()) == want == 381056


def _loop_attention(m: MultiHeadAttention, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per sample, per head, per query loop; float64."""
    def lin(layer: torch.nn.Linear, x: np.ndarray) -> np.ndarray:
        return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    qp, kp, vp = lin(m.linear_q, q), lin(m.linear_k, k), lin(m.linear_v, v)
    b, lq, d = q.shape
    hd = d // m.num_heads
    out = np.zeros((b, lq, d))
    for i in range(b):
        for h in range(m.num_heads):
            sl = slice(h * hd, (h + 1) * hd)
            for j in range(lq):
                scores = np.array([qp[i, j, sl] @ kp[i, s, sl] for s in range(k.shape[1])]) / math.sqrt(hd)
                if m.attention == "softmax":
                    w = np.exp(scores - scores.max())
                    w /= w.sum()
                else:
                    w = entmax15(torch.from_numpy(scores), dim=-1).numpy()
                out[i, j, sl] = sum(w[s] * vp[i, s, sl] for s in range(k.shape[1]))
    return lin(m.output, out)


@pytest.mark.parametrize("attention", ["entmax15", "softmax"])
def test_multihead_attention_matches_loop_reference(attention: str) -> None:
    torch.manual_seed(3)
    m = MultiHeadAttention(12, num_heads=3, attention=attention).double()
    q = torch.randn(2, 4, 12, dtype=torch.float64)
    kv = torch.randn(2, 6, 12, dtype=torch.float64) * 3  # sharper scores: entmax gives exact zeros
    want = _loop_attention(m, q.numpy(), kv.numpy(), kv.numpy())
    np.testing.assert_allclose(m(q, kv, kv).detach().numpy(), want, rtol=1e-9, atol=1e-9)


def test_entmax_is_sparse_softmax_is_not() -> None:
    scores = torch.tensor([[3.0, 0.0, -2.0, 1.0]])
    assert (attention_weights(scores, "entmax15") == 0).any()
    assert (attention_weights(scores, "softmax") > 0).all()
    torch.testing.assert_close(attention_weights(scores, "entmax15").sum(-1), torch.ones(1))


def test_sinusoidal_encoding_hand_values() -> None:
    pe = sinusoidal_positional_encoding(3, 5, dtype=torch.float64)
    assert pe.shape == (3, 5)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    w1 = 1.0 / 10000 ** (2 / 5)
    want = [math.sin(2), math.cos(2), math.sin(2 * w1), math.cos(2 * w1), math.sin(2 / 10000 ** (4 / 5))]
    torch.testing.assert_close(pe[2], torch.tensor(want, dtype=torch.float64))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TemporalTransformer(10, num_heads=8)  # 30 channels, 8 heads
    with pytest.raises(ValueError, match="layout"):
        TemporalTransformer(8, layout="permuted")
    with pytest.raises(ValueError, match="attention"):
        TemporalTransformer(8, attention="sparsemax")
    with pytest.raises(ValueError, match=r"expected \(N, 8, T, V\)"):
        TemporalTransformer(8)(torch.randn(1, 4, 3, 19))
