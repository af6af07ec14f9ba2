"""Fusion layers of the DP ablation: cross attention degeneracy, gated fusion formula, encoders."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from graphfuse.layers.fusion import CrossAttention, GatedFusion, NodeExpansion, VelocityEncoder


def _randomise(module: nn.Module, seed: int, scale: float = 1.0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5)


def _quiet_cross(*args: object, **kw: object) -> CrossAttention:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return CrossAttention(*args, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- CrossAttention


@pytest.mark.parametrize("attention", ["entmax15", "softmax"])
def test_single_token_independent_of_heads_and_pose(attention: str) -> None:
    torch.manual_seed(0)
    ref = _quiet_cross(16, num_heads=8, attention=attention).double()
    pose = torch.randn(2, 16, 5, 19, dtype=torch.float64)
    other_pose = torch.randn(2, 16, 5, 19, dtype=torch.float64) * 4
    vel = torch.randn(2, 16, 5, dtype=torch.float64)
    out8 = ref(pose, vel)
    for heads in (2, 4, 1):
        m = _quiet_cross(16, num_heads=heads, attention=attention).double()
        m.load_state_dict(ref.state_dict())  # the same Q/K/V/O weights, split into other heads
        torch.testing.assert_close(m(pose, vel), out8, rtol=1e-12, atol=1e-12)
    # apart from the residual the output ignores the pose ...
    torch.testing.assert_close(ref(other_pose, vel) - other_pose, out8 - pose, rtol=1e-12, atol=1e-12)
    # ... and equals W_o (W_v v + b_v) + b_o for every joint
    a = ref.attention
    v_t = vel.permute(0, 2, 1)  # (N, T, C)
    want = a.output(a.linear_v(v_t))  # (N, T, C)
    want = want.permute(0, 2, 1).unsqueeze(-1).expand_as(pose)
    torch.testing.assert_close(out8 - pose, want, rtol=1e-12, atol=1e-12)


def test_single_token_warns_when_heads_above_one() -> None:
    with pytest.warns(UserWarning, match="does not depend on the pose"):
        m = CrossAttention(16, num_heads=8)
    assert m.degenerate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrossAttention(16, num_heads=1)
        n = CrossAttention(16, num_heads=8, velocity_tokens="nodes")
    assert not n.degenerate


def _nodes_cross(heads: int, attention: str = "entmax15") -> CrossAttention:
    torch.manual_seed(0)
    m = CrossAttention(16, num_heads=heads, attention=attention, velocity_tokens="nodes", num_nodes=19)
    m = m.double()
    _randomise(m, seed=1, scale=0.5)
    with torch.no_grad():
        m.mlp[-2].bias.add_(1.0)  # make sure the last ReLU lets per-joint offsets through
    return m


@pytest.mark.parametrize("attention", ["entmax15", "softmax"])
def test_node_tokens_depend_on_heads_and_pose(attention: str) -> None:
    pose = torch.randn(2, 16, 4, 19, dtype=torch.float64)
    vel = torch.randn(2, 16, 4, dtype=torch.float64)
    m8 = _nodes_cross(8, attention)
    m2 = _nodes_cross(2, attention)
    m2.load_state_dict(m8.state_dict())
    out8 = m8(pose, vel)
    assert (m2(pose, vel) - out8).abs().max() > 1e-3
    other = torch.randn_like(pose)
    assert ((m8(other, vel) - other) - (out8 - pose)).abs().max() > 1e-3


def test_node_tokens_match_loop_reference() -> None:
    """Tokens = velocity repeated over joints + MLP(velocity); attention computed by loops."""
    m = _nodes_cross(4, "softmax")
    pose = torch.randn(1, 16, 2, 19, dtype=torch.float64)
    vel = torch.randn(1, 16, 2, dtype=torch.float64)
    got = m(pose, vel).detach().numpy()
    a = m.attention

    def lin(layer: nn.Linear, x: np.ndarray) -> np.ndarray:
        return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    def node_mlp(s: float) -> np.ndarray:
        h = np.array([s])
        for layer in m.mlp:
            h = lin(layer, h) if isinstance(layer, nn.Linear) else np.maximum(h, 0)
        return h  # (19,)

    p, vv = pose.numpy(), vel.numpy()
    want = np.zeros_like(p)
    for t in range(2):
        tokens = np.zeros((19, 16))
        for c in range(16):
            tokens[:, c] = vv[0, c, t] + node_mlp(vv[0, c, t])
        q = lin(a.linear_q, p[0, :, t, :].T)  # (V, C)
        k, v = lin(a.linear_k, tokens), lin(a.linear_v, tokens)
        heads = np.zeros((19, 16))
        for h in range(4):
            sl = slice(4 * h, 4 * h + 4)
            for j in range(19):
                s = np.array([q[j, sl] @ k[i, sl] for i in range(19)]) / 2.0
                w = np.exp(s - s.max())
                heads[j, sl] = (w / w.sum()) @ v[:, sl]
        want[0, :, t, :] = lin(a.output, heads).T + p[0, :, t, :]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_cross_attention_shape_errors() -> None:
    m = _quiet_cross(16)
    with pytest.raises(ValueError, match="velocity"):
        m(torch.randn(2, 16, 5, 19), torch.randn(2, 16, 4))
    n = CrossAttention(16, velocity_tokens="nodes")
    with pytest.raises(ValueError, match="V=17"):
        n(torch.randn(2, 16, 5, 17), torch.randn(2, 16, 5))
    with pytest.raises(ValueError, match="divisible"):
        CrossAttention(10, num_heads=4)


# ------------------------------------------------------------------------------------ NodeExpansion


@pytest.mark.parametrize(("layers", "hidden"), [(1, None), (2, None), (3, 48)])
def test_node_expansion_structure_and_values(layers: int, hidden: int | None) -> None:
    torch.manual_seed(0)
    m = NodeExpansion(16, num_nodes=19, num_layers=layers, hidden=hidden).double()
    linears = [x for x in m if isinstance(x, nn.Linear)]
    assert len(linears) == layers and len(m) == 2 * layers
    assert all(isinstance(x, nn.ReLU) for x in list(m)[1::2])  # ReLU after every layer, last included
    widths = [1] + [hidden or 16] * (layers - 1) + [19]
    assert [(x.in_features, x.out_features) for x in linears] == list(zip(widths[:-1], widths[1:]))
    x = torch.randn(2, 16, 3, dtype=torch.float64)
    out = m(x)
    assert out.shape == (2, 16, 3, 19) and (out >= 0).all()
    # the same MLP on every scalar
    torch.testing.assert_close(out[1, 7, 2], m(x[1:2, 7:8, 2:3])[0, 0, 0])


# ------------------------------------------------------------------------------------- GatedFusion


def _bn_eval(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    shape = (1, -1, 1, 1)
    mean = bn.running_mean.numpy().reshape(shape)
    var = bn.running_var.numpy().reshape(shape)
    gamma = bn.weight.detach().numpy().reshape(shape)
    beta = bn.bias.detach().numpy().reshape(shape)
    return (x - mean) / np.sqrt(var + bn.eps) * gamma + beta


def _fc_by_hand(fc: nn.Module, x: np.ndarray) -> np.ndarray:
    """DP's FC by hand: transform over the channel axis, then BN (eval) and ReLU."""
    h = np.moveaxis(x, 1, -1)  # (N, T, V, C)
    if hasattr(fc, "conv"):
        w = fc.conv.weight.detach().numpy()[:, :, 0, 0]
        h = h @ w.T + fc.conv.bias.detach().numpy()
    elif hasattr(fc, "linear"):
        h = h @ fc.linear.weight.detach().numpy().T + fc.linear.bias.detach().numpy()
    else:
        for layer in fc.layers:
            if isinstance(layer, nn.Linear):
                h = h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
            else:
                h = np.maximum(h, 0.0)
    h = np.moveaxis(h, -1, 1)
    return np.maximum(_bn_eval(h, fc.bn), 0.0)


@pytest.mark.parametrize(
    "kw",
    [
        {"fc": "conv"},
        {"fc": "linear"},
        {"fc": "mlp", "mlp_layers": 2, "mlp_hidden_mult": 2},
        {"fc": "mlp", "mlp_layers": 3, "mlp_hidden_mult": 3},
        {"fc": "conv", "trailing_convs": 2},
        {"fc": "conv", "trailing_convs": 2, "share_trailing": False},
    ],
)
def test_gated_fusion_equals_formula(kw: dict) -> None:
    torch.manual_seed(0)
    m = GatedFusion(6, **kw).double().eval()
    _randomise(m, seed=5, scale=0.7)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    y = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    got = m(x, y).detach().numpy()
    z1 = _fc_by_hand(m.fc1, x.numpy())
    z2 = _fc_by_hand(m.fc2, y.numpy())
    z = 1.0 / (1.0 + np.exp(-(z1 + z2)))
    want = z * z1 + (1.0 - z) * z2
    for block in m.layer:
        conv, bn = block[0], block[1]
        h = np.einsum("nctv,dc->ndtv", want, conv.weight.detach().numpy()[:, :, 0, 0])
        h = h + conv.bias.detach().numpy().reshape(1, -1, 1, 1)
        want = np.maximum(_bn_eval(h, bn), 0.0)
    assert len(m.layer) == kw.get("trailing_convs", 0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_gate_leans_towards_x() -> None:
    """z1, z2 >= 0 after their ReLU, so z = sigmoid(z1 + z2) >= 0.5 everywhere."""
    m = GatedFusion(8).eval()
    z, z1, z2 = m.gate(torch.randn(2, 8, 3, 19), torch.randn(2, 8, 3, 19))
    assert (z1 >= 0).all() and (z2 >= 0).all() and (z >= 0.5).all()


def test_shared_trailing_convs_share_weights() -> None:
    shared = GatedFusion(8, trailing_convs=2)
    assert shared.layer[0] is shared.layer[1] is shared.conv
    block_params = 8 * 8 + 8 + 2 * 8
    fc_params = 2 * (8 * 8 + 8 + 2 * 8)
    assert sum(p.numel() for p in shared.parameters()) == fc_params + block_params
    with torch.no_grad():
        shared.layer[0][0].weight.add_(1.0)
    torch.testing.assert_close(shared.layer[1][0].weight, shared.layer[0][0].weight, rtol=0, atol=0)
    # gradients from both applications land on one tensor
    shared(torch.randn(2, 8, 3, 19), torch.randn(2, 8, 3, 19)).sum().backward()
    assert shared.conv[0].weight.grad is not None
    separate = GatedFusion(8, trailing_convs=2, share_trailing=False)
    assert separate.layer[0] is not separate.layer[1]
    assert sum(p.numel() for p in separate.parameters()) == fc_params + 2 * block_params
    assert not hasattr(separate, "conv")


def test_gated_fusion_parameter_counts() -> None:
    def count(**kw: object) -> int:
        return sum(p.numel() for p in GatedFusion(32, **kw).parameters())  # type: ignore[arg-type]

    assert count() == 2 * (32 * 32 + 32 + 64)
    assert count(fc="linear") == count()
    h = 96
    assert count(fc="mlp") == 2 * ((32 * h + h) + (h * h + h) + (h * 32 + 32) + 64)


def test_gated_fusion_errors() -> None:
    with pytest.raises(ValueError, match="fc must be one of"):
        GatedFusion(8, fc="attention")
    with pytest.raises(ValueError, match="differ"):
        GatedFusion(8)(torch.randn(2, 8, 3, 19), torch.randn(2, 8, 4, 19))


# --------------------------------------------------------------------------------- VelocityEncoder


def _types(seq: nn.Sequential) -> list[str]:
    return [type(x).__name__ for x in seq]


@pytest.mark.parametrize(
    ("kw", "types", "n_params"),
    [
        ({"kind": "linear"}, ["Linear"], 2 * 32 + 32 + 64),
        (
            {"kind": "mlp", "num_layers": 3, "hidden_mult": 3},
            ["Linear", "ReLU"] * 3,
            (2 * 96 + 96) + (96 * 96 + 96) + (96 * 32 + 32),
        ),
        (
            {"kind": "mlp", "num_layers": 2, "hidden_mult": 3},
            ["Linear", "ReLU"] * 2,
            (2 * 96 + 96) + (96 * 32 + 32),
        ),
        ({"kind": "conv1d"}, ["Conv1d", "BatchNorm1d", "SiLU"], 2 * 32 + 32 + 64),
        (
            {"kind": "conv1d", "num_layers": 2, "extra_bn_relu": True},
            ["Conv1d", "BatchNorm1d", "SiLU", "Conv1d", "BatchNorm1d", "ReLU"],
            (2 * 64 + 64 + 128) + (64 * 32 + 32 + 64) + 64,
        ),
        (
            {"kind": "conv1d", "hidden_mults": [2, 3]},
            ["Conv1d", "BatchNorm1d", "SiLU"] + ["Conv1d", "BatchNorm1d", "ReLU"] * 2,
            (2 * 64 + 64 + 128) + (64 * 96 + 96 + 192) + (96 * 32 + 32 + 64),
        ),
        (
            {"kind": "conv1d", "num_layers": 2, "activations": ["relu", "relu"]},
            ["Conv1d", "BatchNorm1d", "ReLU", "Conv1d", "BatchNorm1d", "ReLU"],
            (2 * 64 + 64 + 128) + (64 * 32 + 32 + 64),
        ),
    ],
)
def test_velocity_encoder_kinds(kw: dict, types: list[str], n_params: int) -> None:
    m = VelocityEncoder(2, 32, **kw)
    assert _types(m.layers) == types
    assert sum(p.numel() for p in m.parameters()) == n_params
    assert (m.extra is not None) == kw.get("extra_bn_relu", False)
    out = m(torch.randn(3, 2, 7))
    assert out.shape == (3, 32, 7)
    if kw["kind"] != "conv1d" or types[-1] == "ReLU":
        assert (out >= 0).all()


def test_velocity_encoder_stage_two_and_linear_formula() -> None:
    m = VelocityEncoder(32, 64, kind="conv1d", num_layers=2)
    assert m.layers[0].out_channels == 128  # hidden = 2 x out_channels, as DP's ch2 * 2
    assert m(torch.randn(2, 32, 5)).shape == (2, 64, 5)
    lin = VelocityEncoder(2, 4, kind="linear").double().eval()
    _randomise(lin, seed=2)
    x = torch.randn(2, 2, 5, dtype=torch.float64)
    h = torch.einsum("nct,dc->ndt", x, lin.layers[0].weight) + lin.layers[0].bias.view(1, -1, 1)
    bn = lin.bn
    h = (h - bn.running_mean.view(1, -1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1) + bn.eps)
    h = torch.relu(h * bn.weight.view(1, -1, 1) + bn.bias.view(1, -1, 1))
    torch.testing.assert_close(lin(x), h)


def test_velocity_encoder_errors() -> None:
    with pytest.raises(ValueError, match="kind='linear' is one Linear"):
        VelocityEncoder(2, 32, kind="linear", num_layers=2)
    with pytest.raises(ValueError, match="hidden_mults has 1 entries"):
        VelocityEncoder(2, 32, kind="conv1d", num_layers=3, hidden_mults=[2])
    with pytest.raises(ValueError, match="activations"):
        VelocityEncoder(2, 32, kind="conv1d", activations=["gelu"])
    with pytest.raises(ValueError, match="kind must be"):
        VelocityEncoder(2, 32, kind="gru")
    with pytest.raises(ValueError, match=r"expected shape \(N, 2, T\)"):
        VelocityEncoder(2, 32)(torch.randn(2, 3, 5))
