"""Tests of graphfuse.models.two_stream_skeleton.SkeletonTwoStream: built from Shift-GCN
towers, per-tower weights from single-stream state dicts, shapes, parameter counts, the loss
terms the task sums, and one short training run on synthetic NTU (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from graphfuse.models import ShiftGCN
from graphfuse.models.two_stream_skeleton import SkeletonTwoStream
from graphfuse.tasks import ActionRecognition

K = 10  # classes
REPO = Path(__file__).resolve().parents[2]


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _inputs(n: int = 2, t: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, t, 25, 2, generator=g), torch.randn(n, 3, t, 25, 2, generator=g)


@pytest.fixture(scope="module")
def single() -> dict[str, dict[str, torch.Tensor]]:
    """State dicts of two separately built single-stream Shift-GCNs (joint, bone), with
    non-trivial BatchNorm statistics so that loading them is visible in eval mode."""
    out = {}
    for i, name in enumerate(("joint", "bone")):
        torch.manual_seed(100 + i)
        net = ShiftGCN(num_class=K)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        out[name] = net.state_dict()
    return out


def _single_net(state: dict[str, torch.Tensor]) -> ShiftGCN:
    net = ShiftGCN(num_class=K)
    net.load_state_dict(state)
    return net.eval()


# ------------------------------------------------------------------------------ construction
def test_parameter_counts_are_two_towers_plus_fusion() -> None:
    one = _count(ShiftGCN(num_class=K))
    after = {k: sum(_count(getattr(ShiftGCN(num_class=K), f"l{j}")) for j in range(k + 1, 11)) for k in (5, 10)}
    fc = 256 * K + K
    for kind, k in [("sum", 5), ("max", 10), ("conv", 5), ("conv", 10), ("concat", 5), ("concat", 10)]:
        c = ShiftGCN.LAYERS[k - 1][1]
        fusion = (2 * c * c + c) if kind == "conv" else 0
        if kind == "concat" and k == 10:
            widen = 256 * K  # fc takes 512 features
        elif kind == "concat":
            # l6 with 256 inputs instead of 128: Linear_weight and Feature_Mask grow by 128 input
            # channels, and both the GCN's `down` and the unit residual become 1x1 conv (256 -> 128) + BN
            widen = 128 * 128 + 25 * 128 + 2 * (256 * 128 + 128 + 2 * 128)
        else:
            widen = 0
        keep = SkeletonTwoStream(num_class=K, fusion=kind, fusion_unit=f"l{k}")
        assert _count(keep) == 2 * one + fusion + widen, (kind, k)
        drop = SkeletonTwoStream(num_class=K, fusion=kind, fusion_unit=k, keep_towers=False)
        assert _count(drop) == 2 * one + fusion + widen - after[k] - fc, (kind, k)
        assert not hasattr(drop.bone, "fc") and drop.bone.num_units == k


def test_shapes_and_prediction_is_the_tower_mean() -> None:
    j, b = _inputs()
    torch.manual_seed(0)
    net = SkeletonTwoStream(num_class=K, fusion="conv", fusion_unit="l5").eval()
    assert net.input_names == ("joint", "bone") and net.fusion_channels == 128
    pred, terms = net.forward_loss_terms(j, b)
    assert pred.shape == (2, K) and set(terms) == {"fused", "bone"}
    (wf, fused), (wb, tower) = terms["fused"], terms["bone"]
    assert (wf, wb) == (1.0, 1.0)
    torch.testing.assert_close(pred, (fused + tower) / 2)
    torch.testing.assert_close(net(j, b), pred)
    net.average_towers = False
    torch.testing.assert_close(net(j, b), fused)
    drop = SkeletonTwoStream(num_class=K, keep_towers=False).eval()
    p, t = drop.forward_loss_terms(j, b)
    assert list(t) == ["fused"] and torch.equal(p, t["fused"][1])
    assert [x.shape for x in net.example_inputs(3, 16)] == [(3, 3, 16, 25, 2)] * 2


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="bilinear"):
        SkeletonTwoStream(fusion="bilinear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fusion_unit"):
        SkeletonTwoStream(fusion_unit="l11")
    with pytest.raises(ValueError, match="tower_loss_weight"):
        SkeletonTwoStream(tower_loss_weight=-1)
    with pytest.raises(ValueError, match="same shape"):
        SkeletonTwoStream(num_class=K)(*_inputs()[:1], torch.zeros(2, 3, 4, 25, 2))


# ------------------------------------------------------------------------------ tower weights
@pytest.mark.parametrize("unit", ["l5", "l10"])
def test_netA_init_with_loaded_towers_reproduces_the_single_stream_models(single, unit) -> None:
    """With 'netA' the fusion passes the joint features (ReLU outputs, so the fusion ReLU is the
    identity): the fused tower *is* the loaded joint network; the kept bone tower *is* the
    loaded bone network. Checked in eval mode (BatchNorm running statistics from the files)."""
    j, b = _inputs(seed=1)
    net = SkeletonTwoStream(num_class=K, fusion="conv", fusion_unit=unit, fusion_init="netA")
    res_j = net.load_tower("joint", single["joint"])
    res_b = net.load_tower("bone", single["bone"])
    assert len(res_j.loaded) == len(single["joint"]) and not res_j.dropped and not res_j.reinitialised
    assert len(res_b.loaded) == len(single["bone"])
    net.eval()
    _, terms = net.forward_loss_terms(j, b)
    with torch.no_grad():
        # same arithmetic up to float32 summation order (the fused maps are not channels-last)
        torch.testing.assert_close(terms["fused"][1], _single_net(single["joint"])(j), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(terms["bone"][1], _single_net(single["bone"])(b), rtol=1e-5, atol=1e-4)


def test_2sumAB_sum_fusion_at_l10_is_the_weighted_feature_sum(single) -> None:
    j, b = _inputs(seed=2)
    net = SkeletonTwoStream(num_class=K, fusion="conv", fusion_unit="l10")  # 2sumAB
    net.load_tower("joint", single["joint"])
    net.load_tower("bone", single["bone"])
    net.eval()
    fj, fb = _single_net(single["joint"]), _single_net(single["bone"])
    with torch.no_grad():
        a = fj.forward_units(fj.embed(j))
        c = fb.forward_units(fb.embed(b))
        want = fj.fc(fj.pool_features(0.25 * a + 0.75 * c, 2))
        torch.testing.assert_close(net.forward_loss_terms(j, b)[1]["fused"][1], want, rtol=1e-5, atol=1e-4)


def test_removed_and_widened_parts_are_reported(single) -> None:
    net = SkeletonTwoStream(num_class=K, fusion="concat", fusion_unit="l5", keep_towers=False)
    res = net.load_tower("bone", single["bone"])
    assert res.dropped and all(k.startswith(("l6.", "l7.", "l8.", "l9.", "l10.", "fc.")) for k in res.dropped)
    assert len(res.loaded) + len(res.dropped) == len(single["bone"])
    for k in res.loaded:
        torch.testing.assert_close(net.bone.state_dict()[k], single["bone"][k])
    before = {k: v.clone() for k, v in net.joint.state_dict().items() if k.startswith("l6.")}
    res = net.load_tower("joint", {f"model.{k}": v for k, v in single["joint"].items()})  # a run's keys
    assert res.reinitialised and all(k.startswith("l6.") for k in res.reinitialised)
    after = net.joint.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # l6 kept its fresh weights
    torch.testing.assert_close(after["l7.gcn1.Linear_weight"], single["joint"]["l7.gcn1.Linear_weight"])
    widened = SkeletonTwoStream(num_class=K, fusion="concat", fusion_unit="l10")
    assert widened.load_tower("joint", single["joint"]).reinitialised == ["fc.weight", "fc.bias"]


def test_load_tower_refuses_other_state_dicts(single) -> None:
    net = SkeletonTwoStream(num_class=K)
    bad = dict(single["joint"])
    bad.pop("l3.gcn1.Linear_weight")
    bad["head.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \(1\): l3\.gcn1\.Linear_weight.*unexpected keys \(1\): head"):
        net.load_tower("joint", bad)
    wrong = dict(single["joint"])
    wrong["fc.weight"] = torch.zeros(60, 256)
    with pytest.raises(ValueError, match="shape mismatches"):
        net.load_tower("bone", wrong)
    with pytest.raises(ValueError, match="joint' or 'bone"):
        net.load_tower("rgb", single["joint"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ training
def test_every_parameter_learns_and_param_groups() -> None:
    torch.manual_seed(0)
    net = SkeletonTwoStream(num_class=K, fusion="conv", fusion_unit="l5", shift_grad="autograd")
    j, b = _inputs(seed=3)
    _, terms = net.forward_loss_terms(j, b)
    target = torch.tensor([1, 7])
    sum(w * F.cross_entropy(x, target) for w, x in terms.values()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.any(), name
    groups = {g["weight_decay"]: g["names"] for g in net.param_groups(1e-4)}
    assert "fusion.conv.bias" in groups[0.0] and "joint.l1.gcn1.Feature_Mask" in groups[0.0]
    assert "fusion.conv.weight" in groups[1e-4] and "bone.l2.gcn1.Linear_weight" in groups[1e-3]
    assert sum(len(v) for v in groups.values()) == len(list(net.parameters()))


def test_task_sums_the_tower_losses() -> None:
    torch.manual_seed(0)
    net = SkeletonTwoStream(num_class=K, fusion="sum", fusion_unit="l10", tower_loss_weight=0.5)
    task = ActionRecognition(net)
    j, b = _inputs(seed=4)
    target = torch.tensor([3, 4])
    logits = task(joint=j, bone=b)
    _, terms = net.forward_loss_terms(j, b)
    loss = task.compute_loss(logits, target)
    want = F.cross_entropy(terms["fused"][1], target) + 0.5 * F.cross_entropy(terms["bone"][1], target)
    torch.testing.assert_close(loss, want)
    # the terms belong to one step: the next compute_loss without a forward is the plain one
    torch.testing.assert_close(task.compute_loss(logits, target), F.cross_entropy(logits, target))
    single = ActionRecognition(ShiftGCN(num_class=K))
    x = _inputs(seed=5)[0]
    torch.testing.assert_close(single.compute_loss(single(x), target), F.cross_entropy(single(x), target))


def test_init_seed_offset_gives_another_initialisation() -> None:
    torch.manual_seed(5)
    a = ShiftGCN(num_class=K).state_dict()
    torch.manual_seed(5)
    b = ShiftGCN(num_class=K, init_seed_offset=0).state_dict()
    torch.manual_seed(5)
    c = ShiftGCN(num_class=K, init_seed_offset=7).state_dict()
    torch.manual_seed(12)
    d = ShiftGCN(num_class=K).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["l1.gcn1.Linear_weight"], c["l1.gcn1.Linear_weight"])
    assert all(torch.equal(c[k], d[k]) for k in c)


@pytest.mark.slow
def test_short_two_stream_run_beats_chance(synthetic_ntu, tmp_path) -> None:
    """`graphfuse fit` of the shipped two-stream config on the synthetic NTU fixture (joint and
    bone batches from the datamodule, both tower losses): it learns (10 classes, chance 0.1).
    6 epochs of batch 4 (72 steps) on 8-frame clips, about 20 s on one thread (one run: best
    validation top-1 0.5, test 0.4)."""
    from graphfuse.cli import main
    from graphfuse.runs import read_metrics_csv

    rc = main([
        "fit", "-c", str(REPO / "configs/synthetic-ntu/two_stream/conv_l5.yaml"),
        f"--data.init_args.data_dir={synthetic_ntu}", "--data.init_args.synthetic=false",
        "--data.init_args.clip_len=8", "--data.init_args.batch_size=4", "--data.init_args.val_fraction=0.2",
        "--trainer.max_epochs=6", "--model.init_args.milestones=[5]",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--run.root={tmp_path}", "--run.name=two_stream",
    ])
    assert rc in (0, None)
    run = tmp_path / "two_stream" / "version_0"
    rows = read_metrics_csv(run / "metrics.csv")
    assert {"train/loss_fused", "train/loss_bone", "val/loss_fused"} <= set(rows[0])
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    summary = json.loads((run / "summary.json").read_text())
    assert max(r["val/top1"] for r in rows) >= 0.3
    assert summary["test"]["metrics"]["test/top1"] >= 0.25  # 40 test samples: chance 0.1
