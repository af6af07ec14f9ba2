"""PedGraph+ adaptive GCN blocks against float64 loop references written from the official
``unit_gcn`` / ``unit_tcn`` / ``TCN_GCN_unit`` formulas (RodrigoGantier/Pedestrian_graph_plus,
``models/ped_graph23.py``)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from _random_weights import randomise  # noqa: E402  (the model tests' shared helper)

from graphfuse.layers.adaptive_gcn import (
    AdaptiveGCNUnit,
    AdaptiveGraphConv,
    TemporalConv,
    column_l2_normalise,
)

pytestmark = pytest.mark.usefixtures("one_thread")




def _bn(x, sd, p):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - sd[p + ".running_mean"].view(shape)) / torch.sqrt(
        sd[p + ".running_var"].view(shape) + 1e-5
    ) * sd[p + ".weight"].view(shape) + sd[p + ".bias"].view(shape)


def reference_gcn(x, sd, p=""):
    """unit_gcn: loops over subsets, output joints w and input joints v (float64)."""
    _n, _c, _t, v = x.shape
    pa = sd[p + "PA"]
    k_sub = pa.shape[0]
    y = 0
    for k in range(k_sub):
        a = pa[k].clone()
        for w in range(v):  # column norm, plain loop
            a[:, w] = a[:, w] / (math.sqrt(float((pa[k][:, w] ** 2).sum())) + 1e-4)
        xa = torch.zeros_like(x)
        for w in range(v):
            for u in range(v):
                xa[..., w] += x[..., u] * a[u, w]
        y = y + F.conv2d(xa, sd[f"{p}conv_d.{k}.weight"], sd[f"{p}conv_d.{k}.bias"])
    y = _bn(y, sd, p + "bn")
    if p + "down.0.weight" in sd:
        d = _bn(F.conv2d(x, sd[p + "down.0.weight"], sd[p + "down.0.bias"]), sd, p + "down.1")
    else:
        d = x
    return torch.relu(y + d)


def test_column_l2_normalise_hand_example():
    a = torch.tensor([[3.0, 0.0], [4.0, 2.0]], dtype=torch.float64)
    out = column_l2_normalise(a)
    expected = torch.tensor([[3 / 5.0001, 0.0], [4 / 5.0001, 2 / 2.0001]], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # batched over subsets, each normalised on its own
    b = torch.stack([a, 2 * a])
    torch.testing.assert_close(column_l2_normalise(b)[1], column_l2_normalise(2 * a))


@pytest.mark.parametrize("cin,cout", [(3, 5), (4, 4)])
def test_graph_conv_matches_loop_reference(cin, cout):
    torch.manual_seed(0)
    m = AdaptiveGraphConv(cin, cout, num_nodes=5).double()
    randomise(m, seed=1)
    m.eval()
    x = torch.randn(2, cin, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), reference_gcn(x, m.state_dict()), rtol=1e-10, atol=1e-10)
    keys = set(m.state_dict())
    bn = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    expected = (
        {"PA"} | {f"conv_d.{k}.{w}" for k in range(3) for w in ("weight", "bias")} | {f"bn.{b}" for b in bn}
    )
    if cin != cout:
        expected |= {"down.0.weight", "down.0.bias"} | {f"down.1.{b}" for b in bn}
    assert keys == expected


def test_graph_conv_initialisation():
    torch.manual_seed(0)
    m = AdaptiveGraphConv(32, 64, num_nodes=19)
    assert torch.equal(m.PA.detach(), torch.eye(19).repeat(3, 1, 1))
    assert torch.all(m.bn.weight == 1e-6) and torch.all(m.bn.bias == 0)
    assert torch.all(m.down[1].weight == 1)
    w = torch.cat([c.weight.flatten() for c in m.conv_d])
    expected_std = math.sqrt(2.0 / (64 * 32 * 3))
    assert abs(w.std().item() - expected_std) < 0.1 * expected_std
    assert all(torch.all(c.bias == 0) for c in m.conv_d)
    # at initialisation the adjacency is I / (1 + 1e-4)
    torch.testing.assert_close(m.adjacency(), torch.eye(19).repeat(3, 1, 1) / (1 + 1e-4))


def test_graph_conv_rejects_wrong_shape():
    m = AdaptiveGraphConv(4, 8, num_nodes=19)
    with pytest.raises(ValueError, match="expects"):
        m(torch.randn(1, 3, 5, 19))
    with pytest.raises(ValueError, match="expects"):
        m(torch.randn(1, 4, 5, 18))


@pytest.mark.parametrize("cin,cout,residual", [(3, 6, False), (3, 6, True), (6, 6, True)])
def test_unit_matches_reference(cin, cout, residual):
    torch.manual_seed(1)
    m = AdaptiveGCNUnit(cin, cout, num_nodes=4, residual=residual).double()
    randomise(m, seed=2)
    m.eval()
    sd = m.state_dict()
    x = torch.randn(2, cin, 7, 4, dtype=torch.float64)
    g = reference_gcn(x, sd, "gcn1.")
    y = _bn(F.conv2d(g, sd["tcn1.conv.weight"], sd["tcn1.conv.bias"], padding=(2, 0)), sd, "tcn1.bn")
    if residual and cin != cout:
        y = y + _bn(F.conv2d(x, sd["residual.conv.weight"], sd["residual.conv.bias"]), sd, "residual.bn")
        assert isinstance(m.residual, TemporalConv)
    elif residual:
        y = y + x
        assert "residual.conv.weight" not in sd
    else:
        assert m.residual is None and not any(k.startswith("residual") for k in sd)
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.relu(y), rtol=1e-10, atol=1e-10)


def test_temporal_conv_shape_and_init():
    torch.manual_seed(0)
    t = TemporalConv(8, 8, kernel_size=5)
    assert t.conv.weight.shape == (8, 8, 5, 1) and t.conv.padding == (2, 0)
    assert torch.all(t.conv.bias == 0) and torch.all(t.bn.weight == 1)
    assert t(torch.randn(2, 8, 9, 3)).shape == (2, 8, 9, 3)
    s = TemporalConv(8, 16, kernel_size=1, stride=2)
    assert s(torch.randn(2, 8, 9, 3)).shape == (2, 16, 5, 3)


def test_unit_gradients_reach_adjacency():
    torch.manual_seed(3)
    m = AdaptiveGCNUnit(3, 8, num_nodes=5)
    m(torch.randn(4, 3, 6, 5)).square().mean().backward()
    assert m.gcn1.PA.grad is not None and m.gcn1.PA.grad.abs().sum() > 0
