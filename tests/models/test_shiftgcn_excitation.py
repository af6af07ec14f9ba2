"""ACTION-Net excitations inside Shift-GCN units (the research notes' experiments).

The default model stays the official one; every excitation kind x placement runs forward and
backward with the stated parameter count; each placement computes the composition stated in
``ShiftGCNUnit``'s docstring, checked in float64 against a composition written here from the
submodules (stride pooling written by hand); arguments are validated; the notes' configs
differ from the official recipe in their knob only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from _random_weights import randomise as _randomise
from graphfuse.config_files import names_base, resolve_config
from graphfuse.layers.excitation import ActionExcitation, MotionExcitation
from graphfuse.models.shiftgcn import (
    ExcitationPaths,
    ShiftGCN,
    ShiftGCNUnit,
    official_state_dict_keys,
)

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
f64 = torch.float64
BASE_PARAMS = 693_107
#: Cout of l1..l10 (the excitation acts on the unit's GCN output)
COUT = [64, 64, 64, 64, 128, 128, 128, 256, 256, 256]
KINDS = ["me", "ce", "ste", "action", ["me", "ce"], ["ste", "ce", "me"]]
PLACEMENTS = ["serial", "parallel", "after_shift"]


# ----------------------------------------------------------------------------------------
# independent parameter counts (brief section 4.4, native kernels)
# ----------------------------------------------------------------------------------------
def _path_params(kind: str, c: int, r: int = 16) -> int:
    cr = c // r
    me = 2 * c * cr + 3 * cr + 2 * cr  # squeeze + expand, (1,3) depthwise, BN affine
    ce = 2 * c * cr + 3 * cr * cr  # squeeze + expand, dense Conv1d k=3
    ste = 9  # 3x3 conv on the channel mean
    return {"me": me, "ce": ce, "ste": ste, "action": 3 * c + ste + ce + me}[kind]


def _exc_params(kinds, units, r: int = 16) -> int:
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return sum(_path_params(k, COUT[u - 1], r) for u in units for k in kinds)


def _tcn_params(c: int) -> int:
    # bn, bn2 (2C each), shift_in/out xpos+ypos (2C each), temporal_linear C*C + C
    return c * c + 9 * c


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------------------------------
# default = official
# ----------------------------------------------------------------------------------------
def test_default_model_is_unchanged():
    torch.manual_seed(5)
    plain = ShiftGCN()
    torch.manual_seed(5)
    explicit = ShiftGCN(excitation=None, excitation_placement="serial", excitation_units=None,
                        excitation_reduction=16, excitation_replace_tcn=False)
    torch.manual_seed(5)
    # placement / units / reduction are validated but unused without an excitation
    unused = ShiftGCN(excitation=None, excitation_placement="parallel", excitation_units=[1, 3])
    keys = list(plain.state_dict())
    assert keys == official_state_dict_keys() and len(keys) == 302
    assert _n_params(plain) == BASE_PARAMS
    assert not any(".exc" in k for k in keys)
    assert all(u.exc is None and u.tcn1 is not None for u in plain.units())
    for other in (explicit, unused):
        assert list(other.state_dict()) == keys
        for k, v in plain.state_dict().items():
            assert torch.equal(v, other.state_dict()[k]), k
    x = torch.randn(2, 3, 8, 25, 2)
    out = plain(x)  # training mode: batch statistics
    for other in (explicit, unused):
        assert torch.equal(other(x), out)


# ----------------------------------------------------------------------------------------
# every kind x placement: shape, parameters, keys, backward
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("kinds", KINDS, ids=lambda k: "+".join(k) if isinstance(k, list) else k)
def test_kind_and_placement_forward_backward_and_count(kinds, placement):
    torch.manual_seed(0)
    m = ShiftGCN(excitation=kinds, excitation_placement=placement)
    units = range(2, 11)  # default l2-l10
    assert _n_params(m) == BASE_PARAMS + _exc_params(kinds, units)
    names = [kinds] if isinstance(kinds, str) else kinds
    extra = [k for k in m.state_dict() if k not in set(official_state_dict_keys())]
    assert set(official_state_dict_keys()) <= set(m.state_dict())
    assert {k.split(".exc.")[0] for k in extra} == {f"l{u}" for u in units}
    assert {k.split(".")[2] for k in extra} == set(names)  # lK.exc.<kind>.*
    assert m.l1.exc is None
    _forward_backward(m)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_every_shift_variant_takes_an_excitation(placement):
    torch.manual_seed(1)
    m = ShiftGCN(spatial_shift="local", temporal_shift="naive", temporal_pointwise="depthwise_separable",
                 excitation=["me", "ce"], excitation_placement=placement, excitation_units=[1, 5, 8, 10])
    # the variants' own count (test_shiftgcn_variants) + the excitations
    assert _n_params(m) == 691_699 + _exc_params(["me", "ce"], [1, 5, 8, 10])
    _forward_backward(m)


@pytest.mark.parametrize("kinds", ["ce", "me", "action"])
def test_parallel_without_tcn_count_and_backward(kinds):
    torch.manual_seed(2)
    units = [3, 5, 8, 9]
    m = ShiftGCN(excitation=kinds, excitation_placement="parallel", excitation_units=units,
                 excitation_replace_tcn=True)
    expected = BASE_PARAMS - sum(_tcn_params(COUT[u - 1]) for u in units) + _exc_params(kinds, units)
    assert _n_params(m) == expected
    for k, unit in enumerate(m.units(), start=1):
        assert (unit.tcn1 is None) == (k in units)
        assert any(key.startswith("tcn1.") for key in unit.state_dict()) == (k not in units)
    _forward_backward(m)


def test_notes_ce_no_tcn_count():
    m = ShiftGCN(excitation="ce", excitation_placement="parallel", excitation_replace_tcn=True)
    units = range(2, 11)
    assert _n_params(m) == BASE_PARAMS - sum(_tcn_params(COUT[u - 1]) for u in units) + _exc_params("ce", units)
    assert _n_params(m) == 458_243
    # ME in l2-l10: 3 x (532 + 2,088 + 8,272)
    assert _n_params(ShiftGCN(excitation="me")) == BASE_PARAMS + 32_676 == 725_783


def _forward_backward(m: ShiftGCN, t: int = 8) -> None:
    _randomise(m, seed=3)
    m.train()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, t, 25, 2, generator=g)
    out = m(x)
    assert out.shape == (2, 60) and torch.isfinite(out).all()
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if ".exc." in name:
            assert p.grad.abs().sum() > 0, name
    # the excitation reaches the output: scaling its parameters changes the logits
    with torch.no_grad():
        m.eval()
        before = m(x)
        for unit in m.units():
            if unit.exc is not None:
                for p in unit.exc.parameters():
                    p.mul_(3.0)
        assert not torch.allclose(before, m(x))


# ----------------------------------------------------------------------------------------
# what each placement computes, float64, against a composition written here
# ----------------------------------------------------------------------------------------
def _manual_exc(exc: ExcitationPaths, z):
    # sum of the paths' own forwards, X + X * gate each (ACTION-Net sums its paths)
    return sum(getattr(exc, k)(z) for k in exc.kinds)


def _pool(b, s):
    if s == 1:
        return b
    assert s == 2
    return 0.5 * (b[:, :, 0::2] + b[:, :, 1::2])


def _manual_unit(unit: ShiftGCNUnit, x):
    g = unit.gcn1(x)
    tcn, exc = unit.tcn1, unit.exc
    if unit.excitation_placement == "serial":
        y = tcn(_manual_exc(exc, g))
    elif unit.excitation_placement == "after_shift":
        h = tcn.shift_in(tcn.bn(g))
        h = torch.relu(tcn.temporal_linear(_manual_exc(exc, h)))
        y = tcn.bn2(tcn.shift_out(h))
    else:
        y = _pool(_manual_exc(exc, g), unit.stride)
        if tcn is not None:
            y = tcn(g) + y
    if unit.residual_kind == "identity":
        y = y + x
    elif unit.residual_kind == "projection":
        y = y + unit.residual(x)
    return torch.relu(y)


@pytest.mark.parametrize(
    "placement,replace", [("serial", False), ("after_shift", False), ("parallel", False), ("parallel", True)]
)
@pytest.mark.parametrize("kinds", ["me", ["me", "ce", "ste"], "action"], ids=["me", "me+ce+ste", "action"])
def test_placement_composition_float64(kinds, placement, replace):
    torch.manual_seed(6)
    m = ShiftGCN(excitation=kinds, excitation_placement=placement, excitation_units=[3, 5],
                 excitation_replace_tcn=replace).to(f64)
    _randomise(m, seed=7)
    m.eval()
    assert [u.exc is not None for u in m.units()] == [k in (3, 5) for k in range(1, 11)]
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for unit in (m.l3, m.l5):  # stride 1 + identity residual; stride 2 + projection
            x = torch.randn(2, 64, 8, 25, generator=g, dtype=f64)
            got = unit(x)
            assert got.shape == (2, unit.gcn1.out_channels, 8 // unit.stride, 25)
            torch.testing.assert_close(got, _manual_unit(unit, x), rtol=0, atol=1e-12)


def test_combined_paths_are_summed_like_action():
    # ExcitationPaths(['me','ce']) = ME(x) + CE(x) = x * (2 + g_me + g_ce); 'action' = the layer
    torch.manual_seed(9)
    exc = ExcitationPaths(["me", "ce"], 32, reduction=8).to(f64).eval()
    x = torch.randn(2, 32, 6, 5, dtype=f64)
    ref = x * (2 + exc.me.gate(x) + exc.ce.gate(x))
    torch.testing.assert_close(exc(x), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(exc(x), exc.me(x) + exc.ce(x), rtol=0, atol=1e-12)
    one = ExcitationPaths("action", 32)
    assert isinstance(one.action, ActionExcitation) and list(one.state_dict())[0] == "action.shift.weight"
    single = ExcitationPaths("me", 32)
    assert isinstance(single.me, MotionExcitation)
    torch.testing.assert_close(single(x.float()), single.me(x.float()), rtol=0, atol=0)


def test_full_model_float64_equals_manual_unit_chain():
    torch.manual_seed(10)
    m = ShiftGCN(excitation="me", excitation_placement="parallel", excitation_units=[2, 5, 8]).to(f64)
    _randomise(m, seed=11)
    m.eval()
    x = torch.randn(1, 3, 8, 25, 2, dtype=f64)
    with torch.no_grad():
        n, c, t, v, mm = x.shape
        h = m.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n, mm * v * c, t))
        h = h.view(n, mm, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * mm, c, t, v)
        for k, unit in enumerate(m.units(), start=1):
            h = _manual_unit(unit, h) if unit.exc is not None else unit(h)
        ref = m.fc(h.mean(dim=(2, 3)).view(n, mm, -1).mean(dim=1))
        torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)  # summation order only


# ----------------------------------------------------------------------------------------
# argument errors name the argument
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"excitation": "me", "excitation_units": [0]}, "excitation_units"),
        ({"excitation": "me", "excitation_units": [11]}, "excitation_units"),
        ({"excitation": "me", "excitation_units": []}, "excitation_units"),
        ({"excitation": "me", "excitation_units": [2, 2]}, "excitation_units"),
        ({"excitation": "me", "excitation_units": [True]}, "excitation_units"),
        ({"excitation": None, "excitation_units": [12]}, "excitation_units"),
        ({"excitation": "xe"}, "excitation"),
        ({"excitation": []}, "excitation"),
        ({"excitation": ["me", "me"]}, "excitation"),
        ({"excitation": ["action", "me"]}, "excitation"),
        ({"excitation": "me", "excitation_placement": "inside"}, "excitation_placement"),
        ({"excitation": "me", "excitation_reduction": 0}, "excitation_reduction"),
        ({"excitation": "ce", "excitation_replace_tcn": True}, "excitation_replace_tcn"),
        ({"excitation": None, "excitation_placement": "parallel", "excitation_replace_tcn": True},
         "excitation_replace_tcn"),
        # l1's GCN output has 64 channels: 64 // 128 = 0 leaves no bottleneck
        ({"excitation": "me", "excitation_units": [1], "excitation_reduction": 128}, "excitation_reduction"),
        # l2-l4 have 64 channels; reduction 100 is fine for l8-l10 only
        ({"excitation": "ce", "excitation_reduction": 100}, "unit l2"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShiftGCN(**kwargs)


def test_unit_1_and_large_reductions_where_valid():
    # the excitation acts on the GCN output, so l1 (3 -> 64 channels) can take one
    m = ShiftGCN(excitation="me", excitation_units=[1])
    assert m.l1.exc.me.reduced_channels == 4
    # STE has no bottleneck: any reduction; ME/CE fine when every chosen unit has C >= r
    ShiftGCN(excitation="ste", excitation_reduction=1000)
    assert ShiftGCN(excitation="ce", excitation_reduction=256, excitation_units=[8, 9]).l8.exc.ce.reduced_channels == 1
    with pytest.raises(ValueError, match="reduction=16 leaves"):
        ExcitationPaths("me", 3)  # the layer refuses C // 16 = 0 (a 3-channel input)
    with pytest.raises(ValueError, match="divisible"):
        ShiftGCN(excitation="me", excitation_placement="parallel")(torch.randn(1, 3, 6, 25, 2))


# ----------------------------------------------------------------------------------------
# the notes' configs: the official recipe plus one knob
# ----------------------------------------------------------------------------------------
NOTES = REPO / "configs" / "ntu60-xsub" / "shiftgcn" / "notes"
KNOBS = {
    "me_units_l2_l10": {"excitation": "me", "excitation_placement": "serial"},
    "me_parallel_tcn": {"excitation": "me", "excitation_placement": "parallel"},
    "ce_parallel_no_tcn": {"excitation": "ce", "excitation_placement": "parallel", "excitation_replace_tcn": True},
    "me_serial_shift": {"excitation": "me", "excitation_placement": "after_shift"},
    "me_ce_serial_actionnet": {"excitation": ["me", "ce"], "excitation_placement": "after_shift"},
    "depthwise_separable": {"temporal_pointwise": "depthwise_separable", "depthwise_kernel_size": 3},
    "local_shift": {"spatial_shift": "local"},
    "naive_shift": {"temporal_shift": "naive", "naive_shift_max": 4},
}


def test_notes_configs_are_the_recipe_plus_one_knob():
    base = yaml.safe_load((REPO / "configs" / "ntu60-xsub" / "shiftgcn" / "joint.yaml").read_text())
    shipped = {p.stem for p in NOTES.glob("*.yaml")}
    assert shipped == set(KNOBS) | {"reduce_frame_k3"}
    for name in shipped:
        text = (NOTES / f"{name}.yaml").read_text()
        assert "single run" in text.lower(), name
        assert names_base(NOTES / f"{name}.yaml"), name  # a delta over joint.yaml
        cfg = resolve_config(NOTES / f"{name}.yaml")
        model = cfg["model"]["init_args"]["model"]["init_args"]
        data = cfg["data"]["init_args"]
        if name == "reduce_frame_k3":
            assert data.pop("frame_stride") == 3
        else:
            knob = KNOBS[name]
            for key, value in knob.items():
                assert model[key] == value, (name, key)
            if "excitation" in knob:
                assert model["excitation_units"] == list(range(2, 11)) and model["excitation_reduction"] == 16
            ShiftGCN(**model)  # builds
            for key in [k for k in model if k.startswith("excitation") or k in knob]:
                model.pop(key)
        assert cfg == base, name
