"""GaitSet and GLN (graphfuse.models.gait): parameter counts, OpenGait's state-dict names, the
OpenGait checkpoint converter, the test layout (lengths) against one sequence at a time, the
options (lateral, compact order, inference embedding) and that every parameter learns."""

from __future__ import annotations

import math

import pytest
import torch

from graphfuse.checkpoints import load_checkpoint
from graphfuse.losses.cross_entropy import ScaledCrossEntropy
from graphfuse.losses.triplet import BatchAllTripletLoss
from graphfuse.models.gait import (
    GLN,
    WEIGHTS,
    GaitSet,
    compact_layout_permutation,
    convert_opengait,
    init_opengait_parameters,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_BINS = (4, 2, 1)  # 16-row inputs in the fast tests (default bins need 64-row silhouettes)


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts():
    assert _count(GaitSet()) == 2_594_592  # CASIA-B, OpenGait configs/gaitset/gaitset.yaml
    assert _count(GaitSet(channels=(1, 64, 128, 256))) == 6_313_536  # OU-MVLP: the model zoo's 6.31M
    assert _count(GLN()) == 8_541_984  # phase 1
    assert _count(GLN(compact=True)) == 14_703_904  # phase 2 (+ compact block 6,161,920)


# Written from OpenGait's gaitset.py / gln.py / modules.py (SetBlockWrapper.forward_block,
# BasicConv2d.conv, nn.Sequential indices 0 and 2, SeparateFCs.fc_bin).
GAITSET_KEYS = (
    [f"set_block{k}.forward_block.{i}.conv.weight" for k in (1, 2, 3) for i in (0, 2)]
    + [f"gl_block{k}.{i}.conv.weight" for k in (2, 3) for i in (0, 2)]
    + ["Head.fc_bin"]
)
GLN_P1_KEYS = (
    [f"sil_stage_{k}.forward_block.{i}.conv.weight" for k in (0, 1, 2) for i in (0, 2)]
    + [f"set_stage_{k}.{i}.conv.weight" for k in (1, 2) for i in (0, 2)]
    + [f"lateral_layer{k}.weight" for k in (1, 2, 3)]
    + [f"smooth_layer{k}.weight" for k in (1, 2, 3)]
    + ["Head.fc_bin"]
)
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
GLN_P2_KEYS = (GLN_P1_KEYS + [f"encoder_bn.{k}" for k in _BN] + ["reduce_fc.weight"]
               + [f"reduce_bn.{k}" for k in _BN] + ["reduce_cls.weight"])


def test_state_dict_keys_and_shapes_follow_opengait():
    gs = GaitSet().state_dict()
    assert list(gs) == GAITSET_KEYS
    assert gs["set_block1.forward_block.0.conv.weight"].shape == (32, 1, 5, 5)
    assert gs["gl_block3.2.conv.weight"].shape == (128, 128, 3, 3)
    assert gs["Head.fc_bin"].shape == (62, 128, 256)
    p1 = GLN().state_dict()
    assert list(p1) == GLN_P1_KEYS
    assert p1["lateral_layer1.weight"].shape == (256, 64, 1, 1)
    assert p1["lateral_layer3.weight"].shape == (256, 256, 1, 1)
    assert p1["Head.fc_bin"].shape == (93, 256, 256)
    p2 = GLN(compact=True).state_dict()
    assert sorted(p2) == sorted(GLN_P2_KEYS)
    assert p2["encoder_bn.weight"].shape == (23808,)
    assert p2["reduce_fc.weight"].shape == (256, 23808)
    assert p2["reduce_cls.weight"].shape == (74, 256)


def test_opengait_initialisation_and_frozen_bn_biases():
    torch.manual_seed(0)
    m = GLN(compact=True)
    assert not m.encoder_bn.bias.requires_grad and not m.reduce_bn.bias.requires_grad
    assert torch.count_nonzero(m.encoder_bn.bias) == 0
    w = m.encoder_bn.weight.detach()
    assert abs(w.mean().item() - 1.0) < 0.002 and abs(w.std().item() - 0.02) < 0.002
    conv = m.smooth_layer1.weight  # xavier uniform: bound sqrt(6 / (fan_in + fan_out))
    bound = math.sqrt(6.0 / (256 * 9 * 2))
    assert conv.abs().max() <= bound and conv.abs().max() > 0.99 * bound
    lin = torch.nn.Linear(3, 4)
    init_opengait_parameters(lin)
    assert torch.count_nonzero(lin.bias) == 0


def test_default_sizes_forward_shapes():
    gs, gln = GaitSet().eval(), GLN(compact=True).eval()
    sil, lengths = gs.example_inputs(batch=2, frames=3)
    assert sil.shape == (2, 3, 64, 44) and lengths is None and GaitSet.input_names == ("silhouettes", "lengths")
    with torch.no_grad():
        assert gs(sil)["embeddings"].shape == (2, 256, 62)
        out = gln(sil)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "embeddings": (2, 256, 93), "logits": (2, 74), "compact": (2, 256)}


def _sequences(lengths, h=16, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(1, n, h, w, generator=g) > 0.5).float() for n in lengths]


@pytest.mark.parametrize("make", [
    lambda: GaitSet(bins=SMALL_BINS),
    lambda: GLN(bins=SMALL_BINS, channels=(1, 8, 16, 16), lateral_dim=16, hidden_dim=16, compact=True,
                embedding="compact", num_class=5),
])
def test_test_layout_equals_one_sequence_at_a_time(make):
    torch.manual_seed(0)
    model = make().eval()
    lengths = [3, 1, 5, 2]
    seqs = _sequences(lengths)
    with torch.no_grad():
        alone = torch.cat([model(s)["embeddings"] for s in seqs])
        together = model(torch.cat(seqs, dim=1), torch.tensor(lengths))["embeddings"]
    assert together.shape[0] == 4
    assert torch.allclose(together, alone, rtol=1e-4, atol=1e-5)


def test_input_errors_are_clear():
    m = GaitSet(bins=SMALL_BINS)
    with pytest.raises(ValueError, match="floating-point"):
        m(torch.zeros(1, 2, 16, 12, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, S, H, W\)"):
        m(torch.zeros(1, 1, 2, 16, 12))
    with pytest.raises(ValueError, match=r"\(1, sum\(lengths\), H, W\)"):
        m(torch.zeros(2, 3, 16, 12), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="sum to 4 frames but the input holds 3"):
        m(torch.zeros(1, 3, 16, 12), torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="compact block"):
        GLN(embedding="compact")
    with pytest.raises(ValueError, match="compact_order"):
        GLN(compact_order="paper")


def _small_gln(**kw) -> GLN:
    return GLN(bins=SMALL_BINS, channels=(1, 4, 8, 8), lateral_dim=8, hidden_dim=8, num_class=3, **kw)


def test_lateral_off_drops_only_the_top_down_path():
    torch.manual_seed(0)
    on, off = _small_gln(), _small_gln(lateral=False)
    off.load_state_dict(on.state_dict(), strict=True)  # same parameters and names
    sil = _sequences([4])[0].expand(2, 4, 16, 12).contiguous()
    f_on, f_off = on(sil)["embeddings"], off(sil)["embeddings"]
    # the top level (L3, the last 7 parts) has nothing above it: equal; the lower levels differ
    assert torch.allclose(f_on[..., 14:], f_off[..., 14:])
    assert not torch.allclose(f_on[..., :14], f_off[..., :14])


def test_compact_orders_compute_the_same_block_and_embedding_options():
    torch.manual_seed(0)
    a, b = _small_gln(compact=True), _small_gln(compact=True, compact_order="notes")
    b.load_state_dict(a.state_dict())
    sil = _sequences([3, 3, 3])
    x = torch.cat(sil)
    torch.manual_seed(5)
    out_a = a.train()(x)
    torch.manual_seed(5)
    out_b = b.train()(x)
    assert torch.allclose(out_a["logits"], out_b["logits"]) and torch.allclose(out_a["compact"], out_b["compact"])
    assert (out_a["embeddings"].shape, out_a["logits"].shape) == ((3, 8, 21), (3, 3))
    for kind, n_parts in (("parts", 21), ("compact", 1), ("compact_bn", 1)):
        m = _small_gln(compact=True, embedding=kind)
        m.load_state_dict(a.state_dict())
        m.eval()
        with torch.no_grad():
            out = m(x)
        assert out["embeddings"].shape == (3, 8, n_parts)
        if kind == "compact":
            assert torch.equal(out["embeddings"][..., 0], out["compact"])
        m.train()
        assert m(x)["embeddings"].shape == (3, 8, 21)  # training: always the part feature (triplet)


@pytest.mark.parametrize("make", [
    lambda: GaitSet(bins=SMALL_BINS),
    lambda: GLN(bins=SMALL_BINS),
    lambda: GLN(bins=SMALL_BINS, compact=True, num_class=2),
])
def test_every_parameter_learns(make):
    torch.manual_seed(0)
    model = make().train()
    labels = torch.tensor([0, 0, 1, 1])
    sil = torch.cat(_sequences([3, 3, 3, 3], seed=1))
    out = model(sil)
    # a margin no pair exceeds: every triple is active, so every parameter gets a gradient
    loss, _ = BatchAllTripletLoss(margin=1e4)(out["embeddings"], labels)
    if "logits" in out:
        loss = loss + 0.1 * ScaledCrossEntropy()(out["logits"], labels)
    loss.backward()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == ({"encoder_bn.bias", "reduce_bn.bias"} if "logits" in out else set())
    silent = [n for n, p in model.named_parameters()
              if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not silent


# -- the converter ----------------------------------------------------------------------------------
def _opengait_file(path, state, iteration=40000):
    """A checkpoint as OpenGait's BaseModel.save_ckpt writes it."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10000, 20000, 30000], gamma=0.1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "iteration": iteration}, path)
    return path


def _converted_state(path):
    ckpt = load_checkpoint(path)
    return {k[len("model."):]: v for k, v in ckpt["state_dict"].items()}, ckpt


def test_convert_opengait_gaitset_released_path_loads_strictly(tmp_path):
    from graphfuse.convert import convert_with
    from graphfuse.families import Converter

    torch.manual_seed(0)
    src = GaitSet()
    release = tmp_path / "output/CASIA-B/GaitSet/GaitSet/checkpoints/GaitSet-40000.pt"
    _opengait_file(release, src.state_dict())
    conv = Converter(name="opengait", help="", input_help="", convert=convert_opengait, weights=WEIGHTS)
    lines = convert_with(conv, release, tmp_path / "gaitset.ckpt", model="gaitset")
    assert lines[0] == f"wrote {tmp_path / 'gaitset.ckpt'}"
    assert "reported 95.8 rank-1 NM (%)" in lines[1]
    state, ckpt = _converted_state(tmp_path / "gaitset.ckpt")
    block = ckpt["graphfuse"]
    assert block["model"] == "graphfuse.models.gait.GaitSet" and block["release"] == "opengait_gaitset_casiab"
    assert block["release_sha256_ok"] is None and block["released_iteration"] == 40000
    fresh = GaitSet()
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in src.state_dict().items())


def test_convert_opengait_gln_phases_and_v10_layout(tmp_path):
    torch.manual_seed(0)
    # phase 1, OU-MVLP-like channels read from the shapes; a DDP 'module.' prefix is removed
    p1 = GLN(channels=(1, 8, 16, 16), lateral_dim=16, hidden_dim=8)
    f1 = _opengait_file(tmp_path / "GLN_P1-00100.pt", {"module." + k: v for k, v in p1.state_dict().items()})
    convert_opengait(f1, tmp_path / "p1.ckpt", model="gln", phase=1)
    state, ckpt = _converted_state(tmp_path / "p1.ckpt")
    assert ckpt["graphfuse"]["model_init"]["channels"] == [1, 8, 16, 16]
    GLN(channels=(1, 8, 16, 16), lateral_dim=16, hidden_dim=8).load_state_dict(state, strict=True)

    # phase 2 written by OpenGait v1.0: the compact block's flattened axis is part-major
    p2 = GLN(channels=(1, 4, 8, 8), lateral_dim=8, hidden_dim=8, compact=True, num_class=3).eval()
    with torch.no_grad():
        p2.encoder_bn.running_mean.normal_()
        p2.encoder_bn.bias.normal_()
    ours = p2.state_dict()
    perm = compact_layout_permutation(93, 8)
    inv = torch.argsort(perm)
    v10 = dict(ours)
    for key in ("weight", "bias", "running_mean", "running_var"):
        v10[f"encoder_bn.{key}"] = ours[f"encoder_bn.{key}"][inv]
    v10["reduce_fc.weight"] = ours["reduce_fc.weight"][:, inv]
    f2 = _opengait_file(tmp_path / "GLN_P2-40000.pt", v10)
    convert_opengait(f2, tmp_path / "p2.ckpt")  # model and phase read from the keys
    state, ckpt = _converted_state(tmp_path / "p2.ckpt")
    assert ckpt["graphfuse"]["model_init"]["compact"] is True and ckpt["graphfuse"]["compact_layout"] == "v1.0"
    assert all(torch.equal(state[k], v) for k, v in ours.items())
    # the permutation maps part-major j = p * C + c to channel-major i = c * P + p
    assert perm[1 * 93 + 5] == 5 * 8 + 1
    convert_opengait(f2, tmp_path / "p2_head.ckpt", compact_layout="head")
    state_head, _ = _converted_state(tmp_path / "p2_head.ckpt")
    assert torch.equal(state_head["reduce_fc.weight"], v10["reduce_fc.weight"])


def test_convert_opengait_refuses_mismatches(tmp_path):
    torch.manual_seed(0)
    f = _opengait_file(tmp_path / "x.pt", GLN(channels=(1, 4, 8, 8), lateral_dim=8, hidden_dim=8).state_dict())
    with pytest.raises(ValueError, match="--model gaitset given, but the file holds gln"):
        convert_opengait(f, tmp_path / "o.ckpt", model="gaitset")
    with pytest.raises(ValueError, match="--phase 2 given, but the file holds GLN phase 1"):
        convert_opengait(f, tmp_path / "o.ckpt", phase=2)
    state = GaitSet().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["gl_block2.0.conv.weight"]
    g = _opengait_file(tmp_path / "y.pt", state)
    with pytest.raises(ValueError, match=r"missing keys \(1\): gl_block2.0.conv.weight; unexpected keys \(1\)"):
        convert_opengait(g, tmp_path / "o.ckpt")
    h = _opengait_file(tmp_path / "z.pt", {"fc.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="not an OpenGait GaitSet/GLN checkpoint"):
        convert_opengait(h, tmp_path / "o.ckpt")
    assert not (tmp_path / "o.ckpt").exists()


def test_weights_table():
    assert {w.name for w in WEIGHTS} == {"opengait_gaitset_casiab", "opengait_gln_p1_casiab",
                                         "opengait_gln_p2_casiab", "opengait_gaitset_oumvlp"}
    assert all(w.converter == "opengait" and w.sha256 is None for w in WEIGHTS)
    reported = {w.name: w.reported for w in WEIGHTS}
    assert reported["opengait_gaitset_casiab"] == 95.8 and reported["opengait_gln_p1_casiab"] == 96.4
    assert reported["opengait_gln_p2_casiab"] is None
