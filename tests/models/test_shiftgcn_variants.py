"""Shift-GCN variants as constructor arguments: the default stays the official model; each
variant runs forward and backward, has the stated parameter count, and its layers match
float64 references written independently from the definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _random_weights import randomise as _randomise
from graphfuse.graphs import ntu25
from graphfuse.layers.shift import NaiveShift, Shift
from graphfuse.models.shiftgcn import (
    ShiftGCN,
    ShiftGraphConv,
    ShiftTemporalConv,
    TemporalSeparableConv,
    official_state_dict_keys,
)

f64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")

# channels of the ten units' temporal parts: 4 x 64, 3 x 128, 3 x 256 (sum 1408)
UNIT_CHANNELS = [64] * 4 + [128] * 3 + [256] * 3

# (kwargs, trainable parameters, state-dict keys), 60 classes
VARIANTS = [
    ({}, 693_107, 302),
    # same tensors, other index values
    ({"spatial_shift": "local"}, 693_107, 302),
    # no xpos/ypos: 693,107 - 4 * 1408; 40 keys fewer
    ({"temporal_shift": "naive"}, 687_475, 262),
    # + 3 * 1408 depthwise taps; temporal_linear.{weight,bias} -> depthwise.weight,
    # pointwise.{weight,bias}: one key more per unit
    ({"temporal_pointwise": "depthwise_separable"}, 697_331, 312),
    ({"spatial_shift": "local", "temporal_shift": "naive", "temporal_pointwise": "depthwise_separable"},
     691_699, 272),
]


def _bn(x, bn: nn.modules.batchnorm._BatchNorm):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


# ----------------------------------------------------------------------------------------
# default = official
# ----------------------------------------------------------------------------------------
def test_explicit_defaults_build_the_official_model():
    torch.manual_seed(3)
    plain = ShiftGCN()
    torch.manual_seed(3)
    explicit = ShiftGCN(spatial_shift="nonlocal", temporal_shift="adaptive", naive_shift_max=4,
                        temporal_pointwise="conv", neighbours=None, depthwise_kernel_size=3)
    keys = list(plain.state_dict())
    assert keys == list(explicit.state_dict()) == official_state_dict_keys()
    assert len(keys) == 302
    assert sum(p.numel() for p in plain.parameters()) == 693_107
    for k, v in plain.state_dict().items():
        assert torch.equal(v, explicit.state_dict()[k]), k
    assert type(plain.l1.tcn1.temporal_linear) is nn.Conv2d
    assert isinstance(plain.l5.tcn1.shift_out, Shift)
    x = torch.randn(2, 3, 8, 25, 2)
    assert torch.equal(plain(x), explicit(x))


# ----------------------------------------------------------------------------------------
# every variant: counts, forward, backward
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,n_params,n_keys", VARIANTS)
def test_variant_counts_forward_backward(kwargs, n_params, n_keys):
    torch.manual_seed(0)
    model = ShiftGCN(num_class=60, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert len(model.state_dict()) == n_keys
    x = torch.randn(2, 3, 8, 25, 2)
    out = model(x)
    assert out.shape == (2, 60)
    F.cross_entropy(out, torch.tensor([1, 7])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_variant_parameter_arithmetic():
    c = sum(UNIT_CHANNELS)
    assert 693_107 - 4 * c == 687_475
    assert 693_107 + 3 * c == 697_331
    assert 693_107 - 4 * c + 3 * c == 691_699


def test_variant_modules():
    m = ShiftGCN(spatial_shift="local", temporal_shift="naive", naive_shift_max=2,
                 temporal_pointwise="depthwise_separable", depthwise_kernel_size=5)
    for unit in m.units():
        assert isinstance(unit.tcn1.shift_in, NaiveShift) and unit.tcn1.shift_in.max_shift == 2
        assert isinstance(unit.tcn1.shift_out, NaiveShift)
        assert isinstance(unit.tcn1.temporal_linear, TemporalSeparableConv)
        assert unit.tcn1.temporal_linear.depthwise.kernel_size == (5, 1)
        assert unit.gcn1.spatial_shift == "local"
    assert m.l5.tcn1.shift_out.stride == 2 and m.l5.tcn1.shift_in.stride == 1
    # naive shift keeps the temporal reduction: T 8 -> 4 -> 2
    feats = []
    m.l8.register_forward_hook(lambda mod, i, o: feats.append(o.shape))
    m(torch.randn(1, 3, 8, 25, 2))
    assert feats[0] == (2, 256, 2, 25)


# ----------------------------------------------------------------------------------------
# layers against float64 references
# ----------------------------------------------------------------------------------------
def _local_index_loop(neighbours, channels):
    idx = []
    for v, nbrs in enumerate(neighbours):
        n = len(nbrs)
        sources = [v] + list(nbrs)
        for ch in range(channels):
            # partition of channel ch: sizes C//(n+1) (+1 for the first C%(n+1))
            bounds, start = [], 0
            for p in range(n + 1):
                size = channels // (n + 1) + (1 if p < channels % (n + 1) else 0)
                bounds.append((start, start + size))
                start += size
            p = next(i for i, (a, b) in enumerate(bounds) if a <= ch < b)
            idx.append(sources[p] * channels + ch)
    return torch.tensor(idx)


@pytest.mark.parametrize("cin,cout", [(3, 8), (8, 8)])
def test_local_graph_conv_matches_reference(cin, cout):
    nbrs = ntu25.neighbours()
    layer = ShiftGraphConv(cin, cout, 25, spatial_shift="local", neighbours=nbrs).double().eval()
    _randomise(layer)
    idx_in, idx_out = _local_index_loop(nbrs, cin), _local_index_loop(nbrs, cout)
    assert torch.equal(layer.shift_in, idx_in) and torch.equal(layer.shift_out, idx_out)
    x = torch.randn(2, cin, 4, 25, dtype=f64)
    sd = layer.state_dict()
    n, _, t, v = x.shape
    z = x.permute(0, 2, 3, 1).reshape(n * t, v * cin)[:, idx_in].view(n * t, v, cin)
    z = z * (torch.tanh(sd["Feature_Mask"]) + 1)
    z = torch.einsum("nwc,cd->nwd", z, sd["Linear_weight"]) + sd["Linear_bias"]
    z = z.reshape(n * t, v * cout)[:, idx_out]
    z = _bn(z, layer.bn).view(n, t, v, cout).permute(0, 3, 1, 2)
    res = _bn(F.conv2d(x, sd["down.0.weight"], sd["down.0.bias"]), layer.down[1]) if cin != cout else x
    ref = F.relu(z + res)
    assert torch.allclose(layer(x), ref, rtol=0, atol=1e-12)


def _naive_loop(x, max_shift, stride):
    n, c, t, v = x.shape
    fold = c // (2 * max_shift + 1)
    out = torch.zeros_like(x)
    for ch in range(c):
        g = ch // fold if fold else 2 * max_shift
        d = g + 1 if g < max_shift else (-(g - max_shift + 1) if g < 2 * max_shift else 0)
        for tt in range(t):
            if 0 <= tt + d < t:
                out[:, ch, tt] = x[:, ch, tt + d]
    return out[:, :, ::stride][:, :, : t // stride]


def _separable_loop(x, dw, pw_w, pw_b):
    n, c, t, v = x.shape
    k = dw.shape[2]
    y = torch.zeros_like(x)
    for ch in range(c):
        for tt in range(t):
            for j in range(k):
                src = tt + j - k // 2
                if 0 <= src < t:
                    y[:, ch, tt] += dw[ch, 0, j, 0] * x[:, ch, src]
    return torch.einsum("nctv,dc->ndtv", y, pw_w[:, :, 0, 0]) + pw_b.view(1, -1, 1, 1)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pointwise", ["conv", "depthwise_separable"])
def test_temporal_conv_variants_match_reference(stride, pointwise):
    c = 18
    layer = ShiftTemporalConv(c, stride=stride, temporal_shift="naive", naive_shift_max=4,
                              temporal_pointwise=pointwise).double().eval()
    _randomise(layer, seed=1)
    x = torch.randn(2, c, 8, 3, dtype=f64)
    z = _naive_loop(_bn(x, layer.bn), 4, 1)
    if pointwise == "conv":
        z = F.conv2d(z, layer.temporal_linear.weight, layer.temporal_linear.bias)
    else:
        tl = layer.temporal_linear
        z = _separable_loop(z, tl.depthwise.weight, tl.pointwise.weight, tl.pointwise.bias)
    ref = _bn(_naive_loop(F.relu(z), 4, stride), layer.bn2)
    out = layer(x)
    assert out.shape == (2, c, 8 // stride, 3)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)


def test_separable_conv_parameters_and_errors():
    sep = TemporalSeparableConv(16, kernel_size=3)
    assert sum(p.numel() for p in sep.parameters()) == 3 * 16 + 16 * 16 + 16
    assert sep.depthwise.bias is None
    with pytest.raises(ValueError, match="odd"):
        TemporalSeparableConv(16, kernel_size=2)


# ----------------------------------------------------------------------------------------
# other layouts, errors, checkpoints
# ----------------------------------------------------------------------------------------
def test_local_shift_other_skeleton_needs_neighbours():
    with pytest.raises(ValueError, match="neighbours"):
        ShiftGCN(num_point=20, spatial_shift="local")
    chain = [[j for j in (v - 1, v + 1) if 0 <= j < 20] for v in range(20)]
    m = ShiftGCN(num_class=10, num_point=20, num_person=1, in_channels=2, spatial_shift="local",
                 neighbours=chain)
    assert m(torch.randn(1, 2, 8, 20, 1)).shape == (1, 10)
    with pytest.raises(ValueError, match="one list per joint"):
        ShiftGCN(num_point=20, spatial_shift="local", neighbours=chain[:-1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"spatial_shift": "global"}, "spatial_shift"),
        ({"temporal_shift": "learned"}, "temporal_shift"),
        ({"temporal_pointwise": "dw"}, "temporal_pointwise"),
        ({"temporal_shift": "naive", "naive_shift_max": 0}, "naive_shift_max"),
        ({"temporal_pointwise": "depthwise_separable", "depthwise_kernel_size": 4}, "odd"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShiftGCN(**kwargs)


def test_local_checkpoint_round_trip_and_mismatch():
    local = ShiftGCN(spatial_shift="local").eval()
    _randomise(local)
    other = ShiftGCN(spatial_shift="local").eval()
    other.load_state_dict(local.state_dict(), strict=True)
    x = torch.randn(1, 3, 8, 25, 2)
    assert torch.equal(other(x), local(x))
    # the index arrays differ between the two spatial shifts: refused both ways
    with pytest.raises(ValueError, match="local shift index"):
        ShiftGCN(spatial_shift="local").load_state_dict(ShiftGCN().state_dict())
    with pytest.raises(ValueError, match="not a permutation"):
        ShiftGCN().load_state_dict(local.state_dict())
