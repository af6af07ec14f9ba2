"""TwoStreamNet (Feichtenhofer et al., CVPR 2016): parameter counts against the paper's Tables 1-2,
forward shapes of every fusion x temporal combination, the flow conv1 rules of the reference
code, the fused computation at initialisation, tower weight loading and the loss terms.

Full-size networks are built on the meta device (counts and shapes, no memory); numerical
tests use a small VGG-M (same layers, narrow widths) and resnet18 at 32 px.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphfuse.models.two_stream import (
    TwoStreamNet,
    build_tower,
    flow_conv1_weight,
    fusion_layers,
    symmetric_channel_index,
)

SMALL = {"channels": [8, 16, 16, 16, 16], "fc6": 32, "fc7": 16}
FUSIONS = ("conv", "sum", "max", "concat", "bilinear", "none")
TEMPORALS = ("none", "pool2d", "pool3d", "conv3d_pool3d")


def small(**kw) -> TwoStreamNet:
    opts = {"num_class": 7, "backbone": "vgg_m_2048", "backbone_options": SMALL, "freeze_rgb_below_fusion": False, "seed": 0}
    opts.update(kw)
    return TwoStreamNet(**opts)


def single(**kw) -> dict:
    """A fused net without the temporal tower (Tables 1-2: one tower after the fusion)."""
    return dict(keep_temporal_tower=False, prediction_fusion=False, tower_loss=False, temporal="none", **kw)


def meta_count(**kw) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in TwoStreamNet(num_class=101, backbone="vgg_m_2048", **kw).parameters())


# -- parameter counts ------------------------------------------------------------------------------
#: Layers (fan_in, out) of VGG-M-2048 with 101 classes; conv1 of the flow tower reads 20 channels.
CONV = [(7 * 7 * 3, 96), (5 * 5 * 96, 256), (3 * 3 * 256, 512), (3 * 3 * 512, 512), (3 * 3 * 512, 512)]
FC = [(6 * 6 * 512, 4096), (4096, 2048), (2048, 101)]


def _n(layers) -> int:
    return sum(f * o + o for f, o in layers)


def _fused_count(k: int, fusion_params: int) -> int:
    """Towers up to conv k (both), a fusion, the spatial tower's remaining layers."""
    rgb = _n(CONV[:k])
    flow = rgb + 7 * 7 * 17 * 96
    return rgb + flow + fusion_params + _n(CONV[k:]) + _n(FC)


def conv_fusion(c: int) -> int:
    return 2 * c * c + c  # a 1x1x2CxC filter bank and C biases


#: (kwargs, our count written out, the paper's count in M) - Table 1 (fusion at ReLU5) and
#: Table 2 (conv fusion layer). The paper's counts are not reproducible exactly (see
#: docs/models_two_stream.md): Table 1 rows are ~0.08M above ours (= 7x7x17x96, as if both
#: towers had a 20-channel conv1), its conv fusion adds 0.26M (a CxC bank) where the 1x1x2CxC
#: bank of its Eq. (3) has 0.52M, and Table 2's ReLU2 row is 0.43M above ours.
TABLE = [
    ({"fusion": "none"}, 2 * _n(CONV + FC) + 7 * 7 * 17 * 96, 181.42, 0.001),
    (single(fusion="max"), _fused_count(5, 0), 97.31, 0.001),
    (single(fusion="sum"), _fused_count(5, 0), 97.31, 0.001),
    (single(fusion="concat"), _fused_count(5, 0) + 6 * 6 * 512 * 4096, 172.81, 0.001),
    (single(fusion="conv"), _fused_count(5, conv_fusion(512)), 97.58, 0.002),
    (single(fusion="conv", fusion_layer="relu4"), _fused_count(4, conv_fusion(512)), 95.48, 0.001),
    (single(fusion="conv", fusion_layer="relu3"), _fused_count(3, conv_fusion(512)), 93.08, 0.001),
    (single(fusion="conv", fusion_layer="relu2"), _fused_count(2, conv_fusion(256)), 91.90, 0.005),
    ({"fusion": "conv", "temporal": "none", "prediction_fusion": True},
     _fused_count(5, conv_fusion(512)) + _n(FC), 181.68, 0.002),
]


@pytest.mark.parametrize("kw, expected, paper_m, rel", TABLE, ids=[str(t[0]) for t in TABLE])
def test_parameter_counts_against_table_1_and_2(kw, expected, paper_m, rel) -> None:
    got = meta_count(**kw)
    assert got == expected
    assert abs(got / 1e6 - paper_m) / paper_m < rel, (got / 1e6, paper_m)


def test_table_1_values_we_document() -> None:
    assert meta_count(fusion="none") == 181_335_594
    assert meta_count(**single(fusion="conv")) == 97_761_221
    assert meta_count(**single(fusion="max")) == 97_236_421


def test_fusion_points_and_default_layer() -> None:
    assert list(fusion_layers("vgg_m_2048")) == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    vgg = fusion_layers("vgg16")
    assert vgg["relu5_3"] == 512 and vgg["relu2_2"] == 128 and len(vgg) == 13
    assert fusion_layers("resnet50") == {"relu": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    with torch.device("meta"):
        assert TwoStreamNet(backbone="vgg16").fusion_layer == "relu5_3"
        assert TwoStreamNet(backbone="resnet50", temporal="pool3d").fusion_layer == "layer4"
    with pytest.raises(ValueError, match="not a fusion point"):
        small(fusion_layer="conv5")


# -- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("temporal", TEMPORALS)
def test_forward_shapes_for_every_combination(fusion: str, temporal: str) -> None:
    bad = (temporal == "conv3d_pool3d" and fusion not in ("conv", "none")) or (
        fusion == "bilinear" and temporal in ("pool3d", "conv3d_pool3d"))
    if bad:
        with pytest.raises(ValueError, match="temporal"):
            small(fusion=fusion, temporal=temporal)
        return
    net = small(fusion=fusion, temporal=temporal)
    out = net(*net.example_inputs(2, 5))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_full_size_shapes_on_meta() -> None:
    with torch.device("meta"):
        for backbone in ("vgg16", "resnet50"):
            net = TwoStreamNet(101, backbone, temporal="conv3d_pool3d")
            rgb, flow = (t.to("meta") for t in net.example_inputs(2, 5, size=224))
            assert net(rgb, flow).shape == (2, 101)
            assert net.temporal_fusion.conv.weight.shape[:2] == (fusion_layers(backbone)[net.fusion_layer],
                                                                 2 * fusion_layers(backbone)[net.fusion_layer])


def test_resnet_and_single_streams_run() -> None:
    net = TwoStreamNet(5, "resnet18", fusion="conv", temporal="pool3d", freeze_rgb_below_fusion=False)
    assert net(*net.example_inputs(2, 5)).shape == (2, 5)
    rgb = small(streams="rgb", fusion="none")
    assert rgb.input_names == ("rgb",) and rgb.flow is None
    assert rgb(*rgb.example_inputs(2, 3)).shape == (2, 7)
    flow = small(streams="flow", fusion="none")
    assert flow.input_names == ("flow",) and flow(*flow.example_inputs(1, 3)).shape == (1, 7)
    with pytest.raises(ValueError, match="flow must be"):
        small()(torch.zeros(1, 3, 5, 64, 64), torch.zeros(1, 3, 5, 64, 64))


# -- flow conv1 ------------------------------------------------------------------------------------
def test_symmetric_padding_is_matlabs_padarray() -> None:
    # padarray([1 2 3], [0 17], 'symmetric', 'post') = 1 2 3 3 2 1 1 2 3 3 2 1 1 2 3 3 2 1 1 2
    assert [i + 1 for i in symmetric_channel_index(3, 20)] == [1, 2, 3, 3, 2, 1, 1, 2, 3, 3, 2, 1, 1, 2, 3, 3, 2,
                                                                1, 1, 2]
    assert symmetric_channel_index(3, 20) == np.pad(np.arange(3), (0, 17), mode="symmetric").tolist()


def test_flow_conv1_rules() -> None:
    w = torch.randn(4, 3, 7, 7, dtype=torch.float64)
    avg = flow_conv1_weight(w, 20, "average")
    assert avg.shape == (4, 20, 7, 7)
    for c in range(20):  # repmat(mean(W, 3), [1 1 20 1]): no rescaling
        torch.testing.assert_close(avg[:, c], (w[:, 0] + w[:, 1] + w[:, 2]) / 3)
    sym = flow_conv1_weight(w, 20, "symmetric")
    for c, src in enumerate([0, 1, 2, 2, 1, 0] * 3 + [0, 1]):
        torch.testing.assert_close(sym[:, c], w[:, src])


def test_towers_use_the_reference_rule_per_backbone(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(ref.state_dict(), path)
    flow = build_tower("resnet18", 5, in_channels=20, weights=path)
    torch.testing.assert_close(flow.conv1.weight, ref.conv1.weight[:, symmetric_channel_index(3, 20)])
    rgb = build_tower("resnet18", 5, weights=path)
    torch.testing.assert_close(rgb.layer3[0].conv1.weight, ref.layer3[0].conv1.weight)
    assert rgb.fc.weight.shape == (5, 512) and not rgb.fc.bias.any() and rgb.fc.weight.std() < 0.02
    vggm = build_tower("vgg_m_2048", 5, in_channels=20, options=SMALL, temporal=True)
    assert vggm.conv1.weight.shape[1] == 20 and isinstance(vggm.norm2, torch.nn.Identity)
    torch.testing.assert_close(vggm.conv1.weight[:, 0], vggm.conv1.weight[:, 19])


def test_missing_imagenet_weights_name_torchvisions_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"resnet18-f37072fd\.pth"):
        build_tower("resnet18", 5, weights=tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match=r"imagenet-vgg-m-2048\.mat"):
        build_tower("vgg_m_2048", 5, weights=tmp_path / "missing.mat", options=SMALL)


# -- the fused computation --------------------------------------------------------------------------
def test_conv_fusion_starts_as_weighted_sum_of_the_towers() -> None:
    """fusion='conv' with '2sumAB' at relu5: the fused tower's scores at initialisation are the
    spatial tower's head on 0.25 a + 0.75 b (a, b >= 0 after ReLU, so the fusion ReLU is inert)."""
    torch.manual_seed(0)
    net = small(**single(fusion="conv")).eval()
    rgb, flow = net.example_inputs(2, 3)
    fa = net.rgb.run(rgb.transpose(1, 2).flatten(0, 1), None, "relu5")
    fb = net.flow.run(flow.transpose(1, 2).flatten(0, 1), None, "relu5")
    ref = net.rgb.run(0.25 * fa + 0.75 * fb, "relu5", None).reshape(2, 3, 7).mean(1)
    torch.testing.assert_close(net(rgb, flow), ref)


def test_pool3d_takes_the_max_over_frames_and_space() -> None:
    torch.manual_seed(0)
    net = small(**{**single(fusion="sum"), "temporal": "pool3d"}, num_frames=5).eval()
    rgb, flow = net.example_inputs(1, 5)
    s = net.rgb.run(rgb.transpose(1, 2).flatten(0, 1), None, "relu5") + \
        net.flow.run(flow.transpose(1, 2).flatten(0, 1), None, "relu5")
    # frame-wise pool5 (3x3/2) then the max over the 5 frames (temporal extent 5): one step out
    pooled = F.max_pool2d(s, 3, 2).amax(dim=0, keepdim=True)
    torch.testing.assert_close(net(rgb, flow), net.rgb.run(pooled, "pool5", None))


def test_prediction_fusion_and_tower_losses() -> None:
    torch.manual_seed(0)
    net = small(fusion="conv", temporal="none", prediction_fusion=True, tower_loss=True).eval()
    x = net.example_inputs(2, 3)
    pred, terms = net.forward_loss_terms(*x)
    assert set(terms) == {"fused", "temporal"} and all(w == 1.0 for w, _ in terms.values())
    torch.testing.assert_close(pred, 0.5 * (terms["fused"][1] + terms["temporal"][1]))
    fb = net.flow.run(x[1].transpose(1, 2).flatten(0, 1), None, "relu5")
    torch.testing.assert_close(terms["temporal"][1], net.flow.run(fb, "relu5", None).reshape(2, 3, 7).mean(1))
    plain = small(fusion="conv", temporal="none", prediction_fusion=True, tower_loss=False)
    assert plain.forward_loss_terms(*x)[1] == {}
    with pytest.raises(ValueError, match="keep_temporal_tower"):
        small(prediction_fusion=True, keep_temporal_tower=False)
    with pytest.raises(ValueError, match="neither prediction_fusion nor tower_loss"):
        small(prediction_fusion=False, tower_loss=False, keep_temporal_tower=True)


def test_late_fusion_averages_softmax_scores() -> None:
    torch.manual_seed(0)
    net = small(fusion="none").eval()
    x = net.example_inputs(2, 3)
    out, terms = net.forward_loss_terms(*x)
    pa, pb = (F.softmax(terms[k][1].double(), -1) for k in ("rgb", "flow"))
    torch.testing.assert_close(out.double().exp(), (pa + pb) / 2, rtol=1e-5, atol=1e-6)


def test_concat_widens_the_next_layer_as_the_mean_of_both_towers() -> None:
    torch.manual_seed(0)
    ref = small(fusion="none")
    torch.manual_seed(0)
    net = small(**single(fusion="concat"))
    assert net.rgb.fc6.in_features == 2 * ref.rgb.fc6.in_features
    torch.testing.assert_close(net.rgb.fc6.weight, 0.5 * torch.cat([ref.rgb.fc6.weight, ref.flow.fc6.weight], 1))


def test_frozen_spatial_trunk_and_param_groups() -> None:
    net = small(fusion="conv", freeze_rgb_below_fusion=True)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {f"rgb.conv{i}.{t}" for i in range(1, 6) for t in ("weight", "bias")}
    groups = net.param_groups(5e-4)
    assert groups[1]["weight_decay"] == 0.0 and all(n.endswith("bias") for n in groups[1]["names"])
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in net.parameters())


def test_tower_weights_load_from_a_single_stream_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    rgb_net = small(streams="rgb", fusion="none")
    ckpt = tmp_path / "best.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in rgb_net.state_dict().items()}}, ckpt)
    torch.manual_seed(2)
    fused = small(fusion="conv", rgb_weights=str(ckpt))
    torch.testing.assert_close(fused.rgb.conv3.weight, rgb_net.rgb.conv3.weight)
    with pytest.raises(FileNotFoundError, match="flow_weights not found"):
        small(flow_weights=str(tmp_path / "none.ckpt"))
    with pytest.raises(ValueError, match="does not match the flow tower"):
        small(flow_weights=str(ckpt))


def test_task_trains_through_the_loss_terms() -> None:
    """ActionRecognition's multi-head hook: the loss is CE(fused) + CE(temporal)."""
    from graphfuse.tasks import ActionRecognition

    torch.manual_seed(0)
    net = small(fusion="conv", temporal="none")
    task = ActionRecognition(net).eval()  # no dropout: both forwards see the same network
    rgb, flow = net.example_inputs(2, 3)
    target = torch.tensor([1, 4])
    logits = task(rgb=rgb, flow=flow)
    loss = task.compute_loss(logits, target)
    _, terms = net.forward_loss_terms(rgb, flow)
    expected = sum(F.cross_entropy(t, target) for _, t in terms.values())
    torch.testing.assert_close(loss, expected)
    assert math.isfinite(loss.item())


def test_vgg_m_flow_conv1_from_matconvnets_own_filters(tmp_path: Path) -> None:
    """A .mat VGG-M: the flow conv1 is the colour mean of MatConvNet's unnormalised filters (the
    reference feeds q - 128), rescaled for the datamodule's (q - 128) / (255 * 0.226)."""
    scipy_io = pytest.importorskip("scipy.io")
    from graphfuse.models.two_stream import FLOW_INPUT_SCALE

    rng = np.random.default_rng(0)
    shapes = {"conv1": (7, 7, 3, 8), "conv2": (5, 5, 8, 16), "conv3": (3, 3, 16, 16), "conv4": (3, 3, 16, 16),
              "conv5": (3, 3, 16, 16), "fc6": (6, 6, 16, 32), "fc7": (1, 1, 32, 16), "fc8": (1, 1, 16, 1000)}
    params = np.empty((1, 16), dtype=object)
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    for i, (k, w) in enumerate(arrays.items()):
        params[0, 2 * i] = {"name": f"{k}f", "value": w}
        params[0, 2 * i + 1] = {"name": f"{k}b", "value": np.zeros((shapes[k][-1], 1), np.float32)}
    path = tmp_path / "imagenet-vgg-m-2048.mat"
    meta = {"normalization": {"averageImage": np.array([[[122.7, 116.7, 104.0]]])}}
    scipy_io.savemat(str(path), {"params": params, "meta": meta})
    flow = build_tower("vgg_m_2048", 5, in_channels=20, weights=path, options=SMALL, temporal=True)
    expected = torch.from_numpy(arrays["conv1"].mean(axis=2).transpose(2, 0, 1)) * FLOW_INPUT_SCALE
    for c in (0, 7, 19):
        torch.testing.assert_close(flow.conv1.weight[:, c], expected)
    rgb = build_tower("vgg_m_2048", 5, weights=path, options=SMALL)  # folded for ImageNet-normalised RGB
    torch.testing.assert_close(rgb.conv1.weight[:, 0], torch.from_numpy(arrays["conv1"][:, :, 0].transpose(2, 0, 1))
                               * 255 * 0.229)


def test_multi_view_batches_average_over_views() -> None:
    torch.manual_seed(0)
    net = small(fusion="conv", temporal="none").eval()
    rgb, flow = net.example_inputs(6, 3)
    views = net(rgb.reshape(2, 3, *rgb.shape[1:]), flow.reshape(2, 3, *flow.shape[1:]))
    torch.testing.assert_close(views, net(rgb, flow).reshape(2, 3, 7).mean(1))
