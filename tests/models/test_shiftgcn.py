"""Shift-GCN model: official structure, names, counts, checkpoint loading, and the forward
pass against an independent float64 reference written from the official formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphfuse.models.shiftgcn import (
    ShiftGCN,
    load_official_state_dict,
    official_param_groups,
    official_state_dict_keys,
    official_weight_decay,
)

pytestmark = pytest.mark.usefixtures("one_thread")


BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
# (in, out, stride) of l1..l10 in the official Model.__init__
LAYERS = [(3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2),
          (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1)]


def expected_official_keys() -> set[str]:
    """The 302 keys of the released checkpoints, from the naming in the research brief."""
    keys = {f"data_bn.{b}" for b in BN} | {"fc.weight", "fc.bias"}
    for k, (cin, cout, stride) in enumerate(LAYERS, start=1):
        g, t = f"l{k}.gcn1", f"l{k}.tcn1"
        keys |= {f"{g}.{n}" for n in ("Linear_weight", "Linear_bias", "Feature_Mask", "shift_in", "shift_out")}
        keys |= {f"{g}.bn.{b}" for b in BN}
        if cin != cout:
            keys |= {f"{g}.down.0.weight", f"{g}.down.0.bias"} | {f"{g}.down.1.{b}" for b in BN}
        keys |= {f"{t}.bn.{b}" for b in BN} | {f"{t}.bn2.{b}" for b in BN}
        keys |= {f"{t}.{s}.{p}" for s in ("shift_in", "shift_out") for p in ("xpos", "ypos")}
        keys |= {f"{t}.temporal_linear.weight", f"{t}.temporal_linear.bias"}
        if k in (5, 8):
            keys |= {f"l{k}.residual.conv.weight", f"l{k}.residual.conv.bias"}
            keys |= {f"l{k}.residual.bn.{b}" for b in BN}
    return keys


# ----------------------------------------------------------------------------------------
# independent float64 reference of the official forward (eval mode)
# ----------------------------------------------------------------------------------------
def _bn(x, sd, p):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return ((x - sd[p + ".running_mean"].view(shape)) / torch.sqrt(sd[p + ".running_var"].view(shape) + 1e-5)
            * sd[p + ".weight"].view(shape) + sd[p + ".bias"].view(shape))


def _tshift(x, xpos, ypos, s):
    # four bilinear taps by advanced indexing (a different method from the implementation)
    n, c, t, v = x.shape
    to = t // s
    y = ypos + (0.5 if s != 1 else 0.0)
    y1, x1 = torch.floor(y), torch.floor(xpos)
    dy, dx = y - y1, xpos - x1
    h, w, ch = torch.arange(to, dtype=x.dtype), torch.arange(v, dtype=x.dtype), torch.arange(c)
    out = torch.zeros(n, c, to, v, dtype=x.dtype)
    for ky in (0, 1):
        for kx in (0, 1):
            tt = h[None, :] * s + y1[:, None] + ky  # (C, To)
            ww = w[None, :] + x1[:, None] + kx  # (C, V)
            ok = ((tt >= 0) & (tt < t))[:, :, None] & ((ww >= 0) & (ww < v))[:, None, :]
            g = x[:, ch[:, None, None], tt.clamp(0, t - 1).long()[:, :, None], ww.clamp(0, v - 1).long()[:, None, :]]
            wt = (dy if ky else 1 - dy)[:, None, None] * (dx if kx else 1 - dx)[:, None, None]
            out = out + g * wt * ok
    return out


def reference_forward(x, sd, num_point):
    n, c, t, v, m = x.shape
    x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
    x = _bn(x, sd, "data_bn").view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for k, (cin, cout, s) in enumerate(LAYERS, start=1):
        cin = c if k == 1 else cin
        g, tc = f"l{k}.gcn1", f"l{k}.tcn1"
        # Shift_gcn
        nn_, _, tt, _ = x.shape
        z = x.permute(0, 2, 3, 1).reshape(nn_ * tt, v * cin)
        z = z[:, sd[g + ".shift_in"]].view(nn_ * tt, v, cin) * (torch.tanh(sd[g + ".Feature_Mask"]) + 1)
        z = torch.einsum("nwc,cd->nwd", z, sd[g + ".Linear_weight"]) + sd[g + ".Linear_bias"]
        z = z.reshape(nn_ * tt, v * cout)[:, sd[g + ".shift_out"]]
        z = _bn(z, sd, g + ".bn").view(nn_, tt, v, cout).permute(0, 3, 1, 2)
        if cin != cout:
            d = _bn(F.conv2d(x, sd[g + ".down.0.weight"], sd[g + ".down.0.bias"]), sd, g + ".down.1")
        else:
            d = x
        z = F.relu(z + d)
        # Shift_tcn
        z = _bn(z, sd, tc + ".bn")
        z = _tshift(z, sd[tc + ".shift_in.xpos"], sd[tc + ".shift_in.ypos"], 1)
        z = F.relu(F.conv2d(z, sd[tc + ".temporal_linear.weight"], sd[tc + ".temporal_linear.bias"]))
        z = _tshift(z, sd[tc + ".shift_out.xpos"], sd[tc + ".shift_out.ypos"], s)
        z = _bn(z, sd, tc + ".bn2")
        # unit residual
        if k == 1:
            r = 0
        elif cin == cout and s == 1:
            r = x
        else:
            r = _bn(F.conv2d(x, sd[f"l{k}.residual.conv.weight"], sd[f"l{k}.residual.conv.bias"], stride=(s, 1)),
                    sd, f"l{k}.residual.bn")
        x = F.relu(z + r)
    x = x.view(n, m, x.shape[1], -1).mean(3).mean(1)
    return F.linear(x, sd["fc.weight"], sd["fc.bias"])


def randomise(model: ShiftGCN, seed: int = 0) -> None:
    """Non-trivial BN statistics, masks, biases and shifts (incl. large and negative)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ypos"):
                p.copy_(torch.rand(p.shape, generator=g) * 8 - 4)
            elif name.endswith("xpos"):
                p.copy_(torch.rand(p.shape, generator=g) * 2e-8 - 1e-8)
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


# ----------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------
def test_parameter_counts_and_buffers():
    m60, m120 = ShiftGCN(60), ShiftGCN(120)
    assert sum(p.numel() for p in m60.parameters()) == 693_107
    assert sum(p.numel() for p in m120.parameters()) == 708_527
    assert all(p.requires_grad for p in m60.parameters())
    params = dict(m60.named_parameters())
    buffers = dict(m60.named_buffers())
    for k in range(1, 11):
        for name in (f"l{k}.gcn1.shift_in", f"l{k}.gcn1.shift_out"):
            assert name not in params
            assert buffers[name].dtype == torch.int64
    assert buffers["l1.gcn1.shift_in"].numel() == 25 * 3
    assert buffers["l8.gcn1.shift_out"].numel() == 25 * 256


def test_state_dict_keys_are_the_official_302():
    keys = list(ShiftGCN().state_dict().keys())
    assert len(keys) == 302
    assert set(keys) == expected_official_keys()
    assert official_state_dict_keys() == keys


def test_initialisation():
    torch.manual_seed(0)
    m = ShiftGCN()
    for name, mod in m.named_modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0), name
    for k in range(1, 11):
        gcn, tcn = m.get_submodule(f"l{k}.gcn1"), m.get_submodule(f"l{k}.tcn1")
        assert torch.all(gcn.Feature_Mask == 0) and torch.all(gcn.Linear_bias == 0)
        assert gcn.Feature_Mask.shape == (1, 25, gcn.in_channels)
        for s in (tcn.shift_in, tcn.shift_out):
            assert s.xpos.abs().max() <= 1e-8 and s.ypos.abs().max() <= 1
        bound = 1 / math.sqrt(tcn.channels)  # default Conv2d bias init, kept by the official code
        assert tcn.temporal_linear.bias.abs().max() <= bound and tcn.temporal_linear.bias.abs().max() > 0
    w = m.l9.gcn1.Linear_weight
    assert abs(w.std().item() - math.sqrt(1 / 256)) < 0.1 * math.sqrt(1 / 256)
    tl = m.l9.tcn1.temporal_linear.weight
    assert abs(tl.std().item() - math.sqrt(2 / 256)) < 0.1 * math.sqrt(2 / 256)


def test_forward_matches_float64_reference():
    torch.manual_seed(1)
    model = ShiftGCN(num_class=7, num_point=6, num_person=2, in_channels=3).double()
    randomise(model)
    model.eval()
    x = torch.randn(2, 3, 16, 6, 2, dtype=torch.float64)
    x[1, :, :, :, 1] = 0  # an absent second person, as in NTU
    sd = model.state_dict()
    with torch.no_grad():
        out = model(x)
        ref = reference_forward(x, sd, 6)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), out, rtol=0, atol=0)


def test_forward_shapes_other_skeletons():
    m = ShiftGCN(num_class=10, num_point=19, num_person=1, in_channels=2)
    x = torch.randn(3, 2, 8, 19, 1)
    assert m(x).shape == (3, 10)
    assert m.forward_features(x).shape == (3, 256)
    assert m.l1.gcn1.shift_in.numel() == 19 * 2
    assert m.l1.gcn1.Feature_Mask.shape == (1, 19, 2)
    with pytest.raises(ValueError, match="built for"):
        m(torch.randn(3, 3, 8, 19, 1))
    with pytest.raises(ValueError, match="divisible"):
        m(torch.randn(1, 2, 10, 19, 1))


def test_legacy_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    src = ShiftGCN(num_class=60)
    randomise(src)
    sd = src.state_dict()
    path = tmp_path / "legacy.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)  # pre-1.6 format, like save_models/*.pt
    with open(path, "rb") as fh:
        assert fh.read(2) != b"PK"  # not a zip archive
    loaded = load_official_state_dict(path)
    dst = ShiftGCN(num_class=60)
    dst.load_state_dict(loaded, strict=True)
    for k, v in sd.items():
        assert torch.equal(dst.state_dict()[k], v), k
    # DataParallel prefix
    torch.save({f"module.{k}": v for k, v in sd.items()}, path, _use_new_zipfile_serialization=False)
    dst.load_state_dict(load_official_state_dict(path, dst), strict=True)
    src.eval()
    dst.eval()
    x = torch.randn(1, 3, 8, 25, 2)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_checkpoint_validation_errors(tmp_path):
    sd = ShiftGCN().state_dict()
    sd.pop("l3.tcn1.shift_in.ypos")
    sd["l3.tcn1.extra"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError) as err:
        load_official_state_dict(path)
    assert "l3.tcn1.shift_in.ypos" in str(err.value) and "l3.tcn1.extra" in str(err.value)
    assert "bad.pt" in str(err.value)
    good = ShiftGCN(num_class=120).state_dict()
    torch.save(good, path)
    with pytest.raises(ValueError, match="fc.weight"):
        load_official_state_dict(path, ShiftGCN(num_class=60))
    # a shift index that is not a permutation is refused when loaded
    good["l2.gcn1.shift_in"] = torch.zeros_like(good["l2.gcn1.shift_in"])
    with pytest.raises(ValueError, match="shift_in"):
        ShiftGCN(num_class=120).load_state_dict(good)


def test_bfloat16_forward():
    torch.manual_seed(3)
    m = ShiftGCN(num_class=5)
    x = torch.randn(2, 3, 8, 25, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.float().sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    mb = ShiftGCN(num_class=5).to(torch.bfloat16)
    out_b = mb(x.bfloat16())
    assert out_b.dtype == torch.bfloat16 and torch.isfinite(out_b).all()


@pytest.mark.parametrize("shift_grad", ["official", "autograd"])
def test_loss_decreases_on_a_fixed_batch(shift_grad):
    torch.manual_seed(4)
    m = ShiftGCN(num_class=4, num_point=7, shift_grad=shift_grad)
    x = torch.randn(8, 3, 8, 7, 2)
    y = torch.arange(8) % 4
    opt = torch.optim.SGD(official_param_groups(m, lr=0.01, momentum=0.9, nesterov=True))
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # (the first loss is large: fc starts with std sqrt(2 / num_class), as the official code)
    assert losses[-1] < 0.5 * losses[0] and min(losses[3:]) < 0.3 * losses[0], losses
    if shift_grad == "official":
        g = m.l4.tcn1.shift_in.ypos.grad.abs()
        allowed = torch.tensor([0.01, 1e-4], dtype=g.dtype)
        assert torch.isin(g, allowed).all(), g
        assert torch.equal(m.l4.tcn1.shift_in.xpos.grad, torch.zeros(64))


def test_official_weight_decay_groups():
    assert official_weight_decay("l3.gcn1.Linear_weight") == 1e-3
    assert official_weight_decay("module.l3.gcn1.Feature_Mask") == 0.0
    for name in ("l3.gcn1.Linear_bias", "l3.tcn1.shift_in.ypos", "fc.bias", "data_bn.weight"):
        assert official_weight_decay(name) == 1e-4
    m = ShiftGCN()
    groups = {g["weight_decay"]: g for g in official_param_groups(m, lr=0.1)}
    assert set(groups) == {0.0, 1e-4, 1e-3}
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == 693_107
    assert len(groups[1e-3]["params"]) == 10 and len(groups[0.0]["params"]) == 10
    assert groups[1e-4]["lr"] == 0.1


def test_set_shift_grad():
    m = ShiftGCN(num_class=3)
    m.set_shift_grad("autograd")
    assert m.l7.tcn1.shift_out.grad_mode == "autograd"
    with pytest.raises(ValueError):
        m.set_shift_grad("true")  # type: ignore[arg-type]
