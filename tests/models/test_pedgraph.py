"""PedGraph: every backbone / fusion combination, the wiring of one fusion stage (brief section
2.5 and DP ``file10.py``), parameter counts of the notes' models against DP's, inputs."""

from __future__ import annotations

import warnings

import pytest
import torch
from _random_weights import randomise

from graphfuse.models import PedGraph

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_TAT = {"tat_layers": 1, "tat_heads": 4}


def _inputs(n=2, c=4, t=6, tv=None, img_c=4, hw=(8, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, c, t, 19, generator=g),
        torch.rand(n, 2, tv or t, generator=g),
        torch.randn(n, img_c, *hw, generator=g),
    )


@pytest.mark.parametrize("backbone", ["gcn", "dcgcn_tat"])
@pytest.mark.parametrize("fusion", ["gate", "cross_gated", "two_stage"])
@pytest.mark.parametrize("use_image", [True, False])
def test_every_combination_runs(backbone, fusion, use_image):
    torch.manual_seed(0)
    m = PedGraph(
        num_class=2,
        in_channels=3,
        use_image=use_image,
        image_channels=3,
        backbone=backbone,
        fusion=fusion,
        cross_velocity_tokens="nodes",
        gate_fc="mlp",
        vel_encoder="conv1d",
        vel_layers=2,
        **SMALL_TAT,
    )
    assert m.uses_velocity and m.uses_image == use_image
    pose, vel, img = _inputs(c=3, img_c=3, tv=9)
    out = m(pose, vel, img if use_image else None)
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    out.sum().backward()
    assert m.data_bn.weight.grad is not None
    m.eval()
    with torch.no_grad():
        assert m(*m.example_inputs(3, 8, image_size=(10, 6))).shape == (3, 2)
    keys = set(m.state_dict())
    assert ("v0.0.weight" in keys) == (fusion != "two_stage")
    assert ("cross1.attention.linear_q.weight" in keys) == (fusion != "gate")
    assert ("gated11.fc1.bn.weight" in keys) == (fusion == "two_stage")
    assert ("conv0.0.weight" in keys) == use_image


def test_without_velocity_and_image():
    m = PedGraph(num_class=3, use_velocity=False, use_image=False).eval()
    assert not m.uses_velocity and not m.uses_image
    pose, vel, img = _inputs()
    with torch.no_grad():
        a = m(pose)
        # inputs the model was not built for are ignored
        torch.testing.assert_close(m(pose, vel, img), a, rtol=0, atol=0)
    assert sum(p.numel() for p in m.parameters()) == 44_337  # official pie-23/best.pth
    with pytest.raises(ValueError, match="use_velocity=True"):
        PedGraph(use_velocity=False, fusion="cross_gated")


def test_missing_and_malformed_inputs():
    m = PedGraph(num_class=3, use_image=True, use_velocity=True, image_channels=4)
    pose, vel, img = _inputs()
    with pytest.raises(ValueError, match="use_velocity=True needs `velocity`"):
        m(pose, image=img)
    with pytest.raises(ValueError, match="use_image=True needs `image`"):
        m(pose, vel)
    with pytest.raises(ValueError, match=r"pose \(N, 4, T, 19\)"):
        m(pose[:, :3], vel, img)
    with pytest.raises(ValueError, match="velocity"):
        m(pose, vel[:, :1], img)
    with pytest.raises(ValueError, match="need >= 6"):
        m(pose, vel[:, :, :5], img)
    with pytest.raises(ValueError, match="image"):
        m(pose, vel, img[:, :3])
    with pytest.raises(ValueError, match="sides"):
        m(pose, vel, img[:, :, :5])
    f = PedGraph(use_image=False, fusion="two_stage", cross_velocity_tokens="nodes")
    with pytest.raises(ValueError, match="last T velocity frames"):
        f(torch.randn(2, 4, 9, 19), torch.rand(2, 2, 8))


def test_constructor_validation():
    with pytest.raises(ValueError, match="backbone"):
        PedGraph(backbone="stgcn")
    with pytest.raises(ValueError, match="fusion"):
        PedGraph(fusion="sum")
    with pytest.raises(ValueError, match="num_class"):
        PedGraph(num_class=0)
    with pytest.raises(ValueError, match="dropout"):
        PedGraph(dropout=1.0)


def _stem(m, pose, vel, img):
    n, c, t, v = pose.shape
    x = m.data_bn(pose.permute(0, 1, 3, 2).reshape(n, c * v, t)).view(n, c, v, t).permute(0, 1, 3, 2)
    return x, m.conv0(img), vel[:, :, -t:]


def _gate(x, b):
    return x * torch.sigmoid(b.flatten(2).mean(-1))[:, :, None, None]


def test_cross_gated_stage_order():
    """Brief 2.5: unit; pose_mul = pose * sigma(GAP(v_i)); pose_att = Cross(pose, vel);
    pose = GF(pose_mul, pose_att); image gate. Velocity stream on the last T frames."""
    torch.manual_seed(1)
    m = PedGraph(
        num_class=3,
        fusion="cross_gated",
        cross_velocity_tokens="nodes",
        cross_heads=4,
        gate_fc="mlp",
        vel_encoder="conv1d",
        vel_layers=2,
        vel_extra_bn_relu=True,
    )
    randomise(m, seed=2)
    m.eval()
    pose, vel, img = _inputs(t=7, tv=11, seed=3)
    with torch.no_grad():
        x, f, vs = _stem(m, pose, vel, img)
        vg = m.v0(vel)
        vs = m.vel1(vs)
        x = m.l1(x)
        vg = m.v1(vg)
        x = m.gated1(_gate(x, vg), m.cross1(x, vs))
        f = m.conv1(f)
        x = _gate(x, f)
        x = m.l2(x)
        vg, vs = m.v2(vg), m.vel2(vs)
        x = m.gated2(_gate(x, vg), m.cross2(x, vs))
        x = _gate(x, m.conv2(f))
        h = x.mean(dim=(2, 3))
        expected = m.linear(h + m.att(h) * h)
        torch.testing.assert_close(m(pose, vel, img), expected, rtol=1e-6, atol=1e-6)


def test_two_stage_order():
    """DP file10: no conv gate chain; pose = GF11(GF1(pose, Cross(pose, vel)), NodeExp(vel))."""
    torch.manual_seed(4)
    m = PedGraph(
        num_class=3,
        fusion="two_stage",
        cross_velocity_tokens="nodes",
        cross_heads=4,
        gate_fc="mlp",
        vel_encoder="conv1d",
        vel_layers=2,
        node_hidden_mult=3,
        vel_activations=["relu", "relu"],
        vel2_activations=["silu", "relu"],
    )
    assert isinstance(m.vel1.layers[2], torch.nn.ReLU) and isinstance(m.vel2.layers[2], torch.nn.SiLU)
    assert not hasattr(m, "v0") and m.vel_node1[0].out_features == 96 and m.vel_node2[-2].out_features == 19
    randomise(m, seed=5)
    m.eval()
    pose, vel, img = _inputs(t=6, seed=6)
    with torch.no_grad():
        x, f, vs = _stem(m, pose, vel, img)
        vs = m.vel1(vs)
        x = m.l1(x)
        x = m.gated11(m.gated1(x, m.cross1(x, vs)), m.vel_node1(vs))
        f = m.conv1(f)
        x = _gate(x, f)
        x = m.l2(x)
        vs = m.vel2(vs)
        x = m.gated22(m.gated2(x, m.cross2(x, vs)), m.vel_node2(vs))
        x = _gate(x, m.conv2(f))
        h = x.mean(dim=(2, 3))
        torch.testing.assert_close(m(pose, vel, img), m.linear(h + m.att(h) * h), rtol=1e-6, atol=1e-6)


def test_single_velocity_token_warns():
    with pytest.warns(UserWarning):
        PedGraph(fusion="cross_gated", cross_velocity_tokens="single", cross_heads=8)


# Parameter counts of DP's models (I + V + S, 3D, 3 classes), counted on DP's own code at
# commit 2a163b6 (brief 2.5: ped_graph 1.995 M, file-v7 2.155 M, file10 2.355 M).
DP_COMMON = {
    "num_class": 3,
    "in_channels": 4,
    "use_image": True,
    "use_velocity": True,
    "image_channels": 4,
    "backbone": "dcgcn_tat",
    "dcgcn_unused_linear": True,
}
DP_MODELS = {
    "ped_graph0807": ({"fusion": "gate"}, 1_955_627),
    "ped_graph (notes 00)": (
        {
            "fusion": "cross_gated",
            "vel_encoder": "linear",
            "cross_velocity_tokens": "single",
            "gate_fc": "conv",
            "gate_trailing_convs": 2,
            "official_image_gate_bug": True,
        },
        1_995_115,
    ),
    "file-v7 (notes 08 v7)": (
        {
            "fusion": "cross_gated",
            "vel_encoder": "conv1d",
            "vel_layers": 2,
            "vel_hidden_mult": 2,
            "vel_extra_bn_relu": True,
            "cross_velocity_tokens": "nodes",
            "gate_fc": "mlp",
        },
        2_154_609,
    ),
    "file10 (notes 09)": (
        {
            "fusion": "two_stage",
            "vel_encoder": "conv1d",
            "vel_layers": 2,
            "vel_extra_bn_relu": True,
            "vel_activations": ["relu", "relu"],
            "vel2_activations": ["silu", "relu"],
            "cross_velocity_tokens": "nodes",
            "gate_fc": "mlp",
            "node_hidden_mult": 3,
        },
        2_354_775,
    ),
}


@pytest.mark.parametrize("name", list(DP_MODELS))
def test_notes_parameter_counts_equal_dp(name):
    kw, expected = DP_MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = PedGraph(**DP_COMMON, **kw)
    assert sum(p.numel() for p in m.parameters()) == expected


def test_dcgcn_tat_options_reach_the_transformer():
    m = PedGraph(
        use_image=False,
        backbone="dcgcn_tat",
        tat_layers=2,
        tat_heads=2,
        tat_attention="softmax",
        tat_positional_encoding=True,
        tat_layout="official",
    )
    t = m.l2.temporal
    assert len(t.tat) == 2 and t.layout == "official" and t.positional_encoding
    assert m.l1.residual is None and m.l2.residual is not None
    pose, vel, _ = _inputs()
    assert m(pose, vel).shape == (2, 3)
