"""PedGraph+ against the official model (RodrigoGantier/Pedestrian_graph_plus,
``models/ped_graph23.py``, ``pedMondel``): checkpoint key layout, parameter count, the forward
pass against an independent float64 functional reference of the official forward, official
flags, and ``convert_pedgraph``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _random_weights import randomise

from graphfuse.convert import convert_pedgraph
from graphfuse.models import PedGraph
from graphfuse.models.pedgraph import load_official_state_dict, official_config, parse_official_flags

pytestmark = pytest.mark.usefixtures("one_thread")

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def official_keys(image: bool, velocity: bool) -> set[str]:
    """Keys of a released ``best.pth`` (read off the official module tree)."""
    keys = {f"data_bn.{b}" for b in BN} | {"att.1.weight", "linear.weight", "linear.bias"}
    keys |= {f"att.2.{b}" for b in BN}
    for unit in ("l1", "l2"):
        g = f"{unit}.gcn1"
        keys |= {f"{g}.PA"} | {f"{g}.conv_d.{k}.{w}" for k in range(3) for w in ("weight", "bias")}
        keys |= {f"{g}.down.0.weight", f"{g}.down.0.bias"} | {f"{g}.down.1.{b}" for b in BN}
        keys |= {f"{g}.bn.{b}" for b in BN}
        keys |= {f"{unit}.tcn1.conv.weight", f"{unit}.tcn1.conv.bias"} | {f"{unit}.tcn1.bn.{b}" for b in BN}
    keys |= {"l2.residual.conv.weight", "l2.residual.conv.bias"} | {f"l2.residual.bn.{b}" for b in BN}
    for prefix, used in (("conv", image), ("v", velocity)):
        if used:
            for i in range(3):
                keys |= {f"{prefix}{i}.0.weight"} | {f"{prefix}{i}.1.{b}" for b in BN}
    return keys


# ----------------------------------------------------------------------------------------
# independent float64 reference of the official pedMondel.forward (eval mode)
# ----------------------------------------------------------------------------------------
def _bn(x, sd, p):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - sd[p + ".running_mean"].view(shape)) / torch.sqrt(
        sd[p + ".running_var"].view(shape) + 1e-5
    ) * sd[p + ".weight"].view(shape) + sd[p + ".bias"].view(shape)


def _unit_gcn(x, sd, p):
    n, c, t, v = x.shape
    pa = sd[p + ".PA"]
    a = pa / (torch.sqrt((pa**2).sum(dim=1, keepdim=True)) + 1e-4)  # L2_norm over dim 1
    y = 0
    for k in range(3):
        xa = torch.matmul(x.reshape(n, c * t, v), a[k]).reshape(n, c, t, v)
        y = y + F.conv2d(xa, sd[f"{p}.conv_d.{k}.weight"], sd[f"{p}.conv_d.{k}.bias"])
    y = _bn(y, sd, p + ".bn")
    y = y + _bn(F.conv2d(x, sd[p + ".down.0.weight"], sd[p + ".down.0.bias"]), sd, p + ".down.1")
    return torch.relu(y)


def _unit_tcn(x, sd, p, k):
    return _bn(
        F.conv2d(x, sd[p + ".conv.weight"], sd[p + ".conv.bias"], padding=((k - 1) // 2, 0)), sd, p + ".bn"
    )


def _tcn_gcn_unit(x, sd, p, residual):
    y = _unit_tcn(_unit_gcn(x, sd, p + ".gcn1"), sd, p + ".tcn1", 5)
    if residual:
        y = y + _unit_tcn(x, sd, p + ".residual", 1)
    return torch.relu(y)


def reference_forward(sd, kp, frame=None, vel=None, image_gate_after_l1=False):
    """The official forward; ``image_gate_after_l1=False`` is the official no-op after l1."""
    n, c, t, v = kp.shape
    x = _bn(kp.permute(0, 1, 3, 2).reshape(n, c * v, t), sd, "data_bn")
    x = x.reshape(n, c, v, t).permute(0, 1, 3, 2)
    img = "conv0.0.weight" in sd
    spd = "v0.0.weight" in sd
    if img:
        f = F.silu(_bn(F.conv2d(frame, sd["conv0.0.weight"]), sd, "conv0.1"))
    if spd:
        s = F.silu(_bn(F.conv1d(vel, sd["v0.0.weight"]), sd, "v0.1"))
    x = _tcn_gcn_unit(x, sd, "l1", residual=False)
    if img:
        f = F.silu(_bn(F.conv2d(f, sd["conv1.0.weight"]), sd, "conv1.1"))
        if image_gate_after_l1:
            x = x * torch.sigmoid(f.mean(dim=(2, 3)))[:, :, None, None]
    if spd:
        s = F.silu(_bn(F.conv1d(s, sd["v1.0.weight"]), sd, "v1.1"))
        x = x * torch.sigmoid(s.mean(dim=2))[:, :, None, None]
    x = _tcn_gcn_unit(x, sd, "l2", residual=True)
    if img:
        f = F.silu(_bn(F.conv2d(f, sd["conv2.0.weight"]), sd, "conv2.1"))
        x = x * torch.sigmoid(f.mean(dim=(2, 3)))[:, :, None, None]
    if spd:
        s = F.silu(_bn(F.conv1d(s, sd["v2.0.weight"]), sd, "v2.1"))
        x = x * torch.sigmoid(s.mean(dim=2))[:, :, None, None]
    h = x.mean(dim=(2, 3))
    a = torch.sigmoid(_bn(F.linear(F.silu(h), sd["att.1.weight"]), sd, "att.2"))
    h = a * h + h
    return F.linear(h, sd["linear.weight"], sd["linear.bias"])


def _inputs(kw, n=3, t=8, hw=(12, 9), seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(n, kw["in_channels"], t, 19, generator=g, dtype=torch.float64)
    vel = torch.rand(n, 2, t, generator=g, dtype=torch.float64) if kw["use_velocity"] else None
    img = (
        torch.randn(n, kw["image_channels"], *hw, generator=g, dtype=torch.float64)
        if kw["use_image"]
        else None
    )
    return pose, vel, img


CONFIGS = {
    "IVS": {"in_channels": 4, "use_image": True, "use_velocity": True, "image_channels": 4},
    "IV-h2d": {"in_channels": 3, "use_image": True, "use_velocity": True, "image_channels": 3},
    "IS": {"in_channels": 4, "use_image": True, "use_velocity": False, "image_channels": 4},
    "V-h2d": {"in_channels": 3, "use_image": False, "use_velocity": True, "image_channels": 3},
    "none": {"in_channels": 4, "use_image": False, "use_velocity": False, "image_channels": 3},
}


# ----------------------------------------------------------------------------------------
def test_parameter_count_ivs_3d_three_classes():
    m = PedGraph(num_class=3, in_channels=4, use_image=True, use_velocity=True, image_channels=4)
    assert sum(p.numel() for p in m.parameters()) == 70_769  # brief section 1.2; = official best.pth
    assert set(m.state_dict()) == official_keys(image=True, velocity=True)
    assert len(m.state_dict()) == 108


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_matches_official_reference(name):
    kw = dict(CONFIGS[name], num_class=3, official_image_gate_bug=True)
    torch.manual_seed(0)
    m = PedGraph(**kw).double()
    randomise(m, seed=5)
    m.eval()
    sd = m.state_dict()
    assert set(sd) == official_keys(kw["use_image"], kw["use_velocity"])
    pose, vel, img = _inputs(kw)
    with torch.no_grad():
        out = m(pose, velocity=vel, image=img)
        ref = reference_forward(sd, pose, img, vel)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    assert out.abs().max() > 1e-3  # a non-trivial comparison


def test_image_gate_after_l1_default_and_official_option():
    kw = dict(CONFIGS["IVS"], num_class=3)
    torch.manual_seed(1)
    official = PedGraph(**kw, official_image_gate_bug=True).double()
    randomise(official, seed=6)
    official.eval()
    fixed = PedGraph(**kw).double().eval()
    fixed.load_state_dict(official.state_dict())
    sd = official.state_dict()
    pose, vel, img = _inputs(kw, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(
            fixed(pose, vel, img), reference_forward(sd, pose, img, vel, True), rtol=1e-10, atol=1e-10
        )
        diff = (fixed(pose, vel, img) - official(pose, vel, img)).abs().max()
    assert diff > 1e-6  # the two behaviours are distinguishable


def test_load_official_state_dict_from_file_and_prefixes(tmp_path):
    kw = dict(CONFIGS["IVS"], num_class=3, official_image_gate_bug=True)
    torch.manual_seed(2)
    src = PedGraph(**kw)
    randomise(src, seed=7)
    sd = src.state_dict()
    path = tmp_path / "best.pth"
    torch.save(sd, path)
    dst = load_official_state_dict(PedGraph(**kw), path)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    for prefix in ("module.", "model."):
        again = load_official_state_dict(PedGraph(**kw), {prefix + k: v for k, v in sd.items()})
        assert torch.equal(again.linear.weight, src.linear.weight)


def test_load_official_state_dict_errors(tmp_path):
    kw = dict(CONFIGS["IVS"], num_class=3)
    sd = PedGraph(**kw).state_dict()
    sd.pop("l2.gcn1.PA")
    sd["l3.extra"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        load_official_state_dict(PedGraph(**kw), sd)
    assert "l2.gcn1.PA" in str(err.value) and "l3.extra" in str(err.value)
    # 2D weights into a 3D model: shape mismatch named
    sd2 = PedGraph(**CONFIGS["IV-h2d"]).state_dict()
    with pytest.raises(ValueError, match="data_bn.weight"):
        load_official_state_dict(PedGraph(**dict(CONFIGS["IVS"], image_channels=3)), sd2)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth"):
        load_official_state_dict(PedGraph(**kw), bad)


def test_parse_official_flags():
    f = parse_official_flags("pie-23-IVSFT")
    assert f == {
        "dataset": "pie",
        "h3d": True,
        "flags": "IVSFT",
        "image": True,
        "velocity": True,
        "seg": True,
        "forecast": True,
        "time_crop": True,
    }
    f = parse_official_flags("jaad-23-IVFT-h2d")
    assert (f["dataset"], f["h3d"], f["seg"], f["image"], f["flags"]) == (
        "jaad",
        False,
        False,
        True,
        "IVFT-h2d",
    )
    f = parse_official_flags("pie-23")
    assert not any(f[k] for k in ("image", "velocity", "seg", "forecast", "time_crop")) and f["h3d"]
    assert parse_official_flags("pie-23-h2d")["h3d"] is False
    assert parse_official_flags("VS")["velocity"] and parse_official_flags("VS")["dataset"] is None
    with pytest.raises(ValueError, match="letters"):
        parse_official_flags("pie-23-IVX")
    with pytest.raises(ValueError, match="letters"):
        parse_official_flags("IIV")


def test_official_config_from_weights_and_flags():
    sd = PedGraph(**dict(CONFIGS["IV-h2d"], num_class=3)).state_dict()
    kw = official_config(sd)
    assert kw == {
        "num_class": 3,
        "in_channels": 3,
        "num_nodes": 19,
        "use_velocity": True,
        "use_image": True,
        "image_channels": 3,
        "official_image_gate_bug": True,
        "backbone": "gcn",
        "fusion": "gate",
    }
    assert official_config(sd, flags="pie-23-IVFT-h2d") == kw
    with pytest.raises(ValueError, match="image_channels"):
        official_config(sd, flags="pie-23-IVS-h2d")
    with pytest.raises(ValueError, match="in_channels"):
        official_config(sd, flags="pie-23-IV")
    with pytest.raises(ValueError, match="use_image"):
        official_config(sd, flags="pie-23-V-h2d")
    with pytest.raises(ValueError, match="pedMondel"):
        official_config({"foo": torch.zeros(1)})
    # S without I: no image branch; the flag is recorded but changes nothing in the model
    sd_v = PedGraph(**dict(CONFIGS["V-h2d"], num_class=3)).state_dict()
    assert official_config(sd_v, flags="jaad-23-VS-h2d")["use_image"] is False


def test_convert_pedgraph(tmp_path):
    kw = dict(CONFIGS["IVS"], num_class=3, official_image_gate_bug=True)
    torch.manual_seed(3)
    src = PedGraph(**kw)
    randomise(src, seed=8)
    logdir = tmp_path / "pie-23-IVSFT"
    logdir.mkdir()
    torch.save(src.state_dict(), logdir / "best.pth")
    out = convert_pedgraph(logdir / "best.pth", tmp_path / "converted.ckpt")
    ckpt = torch.load(out, weights_only=True)
    info = ckpt["graphfuse"]
    assert info["model"] == "graphfuse.models.PedGraph" and info["official_flags"] == "IVSFT"
    assert info["dataset"] == "pie" and info["forecast"] is True and info["time_crop"] is True
    assert info["model_init"] == official_config(src.state_dict())
    assert all(k.startswith("model.") for k in ckpt["state_dict"])
    model = PedGraph(**info["model_init"])
    model.load_state_dict({k[len("model.") :]: v for k, v in ckpt["state_dict"].items()}, strict=True)
    model.double().eval()
    pose, vel, img = _inputs(info["model_init"], seed=3)
    sd64 = {k: v.double() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    with torch.no_grad():
        torch.testing.assert_close(
            model(pose, vel, img), reference_forward(sd64, pose, img, vel), rtol=1e-10, atol=1e-10
        )
    # explicit flags that contradict the weights
    with pytest.raises(ValueError, match="disagree"):
        convert_pedgraph(logdir / "best.pth", tmp_path / "x.ckpt", flags="pie-23-V")
    assert not (tmp_path / "x.ckpt").exists()
    # a directory name that is not an official logdir: keys and shapes only
    other = tmp_path / "weights"
    other.mkdir()
    torch.save(src.state_dict(), other / "w.pth")
    info2 = torch.load(convert_pedgraph(other / "w.pth", tmp_path / "y.ckpt"), weights_only=True)["graphfuse"]
    assert "official_flags" not in info2 and info2["model_init"] == info["model_init"]
