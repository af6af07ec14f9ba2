"""The multi-label task: ML-GCN's loss (difficult = positive), DeepMAR, the optimiser groups with
the backbone multiplier, the data-derived network options, and a tiny fit with the eval-mode pass
over a fixed training subset."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from graphfuse.models.mlgcn import HGATFC, MLGCN, ResNetBaseline
from graphfuse.tasks.base import resolve_output_size
from graphfuse.tasks.multilabel import MultiLabelRecognition, deepmar_weights


def _task(**kw) -> MultiLabelRecognition:
    return MultiLabelRecognition(ResNetBaseline(num_class=3, backbone="resnet18"), **kw)


def test_soft_margin_loss_counts_difficult_as_positive() -> None:
    task = _task()
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    target = torch.tensor([[1, 0, -1], [0, 1, 0]])
    y = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    ref = -(y * torch.log(torch.sigmoid(logits)) + (1 - y) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert task.compute_loss(logits, target).item() == pytest.approx(ref.item(), rel=1e-6)


def test_deepmar_weights_and_loss() -> None:
    w_pos, w_neg = deepmar_weights([1, 3, 0], num_images=4, alpha=1.0)
    torch.testing.assert_close(w_pos, torch.tensor([np.exp(0.75), np.exp(0.25), np.e], dtype=torch.float32))
    torch.testing.assert_close(w_neg, torch.tensor([np.exp(0.25), np.exp(0.75), 1.0], dtype=torch.float32))
    task = _task(loss="deepmar")
    task.w_pos.copy_(w_pos)
    task.w_neg.copy_(w_neg)
    logits = torch.tensor([[0.3, -0.2, 1.0]])
    target = torch.tensor([[1, 0, 0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    w = torch.tensor([[w_pos[0], w_neg[1], w_neg[2]]])
    assert task.compute_loss(logits, target).item() == pytest.approx((w * bce).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="within"):
        deepmar_weights([5], num_images=4)


def test_sgd_groups_carry_the_backbone_multiplier_and_decay_at_milestones() -> None:
    task = _task(lr=0.1, milestones=[2])
    cfg = task.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.1])
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-4 and "lr_mult" not in g for g in opt.param_groups)
    n = sum(len(g["params"]) for g in opt.param_groups)
    assert n == len(list(task.model.parameters()))
    for _ in range(2):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.01])


def test_output_size_and_network_options_from_meta() -> None:
    sups = ["a"] * 2 + ["b"] * 3
    meta = {"num_class": 5, "class_names": list("vwxyz"), "supercategories": sups}
    cfg = {"model": {"class_path": "graphfuse.tasks.multilabel.MultiLabelRecognition",
                     "init_args": {"model": {"class_path": "graphfuse.models.mlgcn.HGATFC",
                                             "init_args": {"num_class": 80, "class_names": None,
                                                           "supercategories": None}}}},
           "data": {"init_args": {"data_dir": "x"}}}
    assert resolve_output_size(cfg, meta) == 5
    net = cfg["model"]["init_args"]["model"]["init_args"]
    assert net["class_names"] == list("vwxyz") and net["supercategories"] == sups
    # an explicit value in the config is kept
    cfg2 = {"model": {"class_path": "graphfuse.tasks.multilabel.MultiLabelRecognition",
                      "init_args": {"model": {"class_path": "graphfuse.models.mlgcn.MLGCN",
                                              "init_args": {"num_class": 80}}}}}
    assert resolve_output_size(cfg2, meta) == 5
    assert "class_names" not in cfg2["model"]["init_args"]["model"]["init_args"]  # MLGCN has no such argument
    assert MultiLabelRecognition.output_size(None) is None


# -- a tiny fit --------------------------------------------------------------------------------------
class _Images(Dataset):
    """Class 0 = a bright top half, class 1 = a bright left half, class 2 = never present."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.target = torch.zeros(n, 3, dtype=torch.long)
        self.target[:, :2] = (torch.rand(n, 2, generator=g) < 0.5).long()
        self.image = torch.randn(n, 3, 32, 32, generator=g) * 0.1
        self.image[self.target[:, 0] == 1, :, :16, :] += 2.0
        self.image[self.target[:, 1] == 1, :, :, :16] += 2.0

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.image[i], "target": self.target[i], "id": torch.tensor(i)}


class _DM(L.LightningDataModule):
    num_class = 3

    def __init__(self) -> None:
        super().__init__()
        self.train, self.val = _Images(32, 0), _Images(16, 1)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=8, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=8)

    test_dataloader = val_dataloader

    def train_eval_dataloader(self):
        return DataLoader(torch.utils.data.Subset(self.train, range(16)), batch_size=8)

    def label_graph(self) -> dict:
        t = (self.train.target == 1).long()
        co = (t.t() @ t).numpy()
        np.fill_diagonal(co, 0)
        return {"counts": t.sum(0).numpy(), "cooccurrence": co, "embeddings": None, "num_images": len(t)}


def test_tiny_fit_sets_the_label_graph_and_logs_train_eval(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = MLGCN(num_class=3, backbone="resnet18", in_channel=8, hidden=16)
    task = MultiLabelRecognition(net, lr=0.05, loss="deepmar")
    dm = _DM()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        gradient_clip_val=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, datamodule=dm)
    metrics = trainer.callback_metrics
    for key in ("train/mAP", "val/mAP", "val/OF1_top3", "train_eval/mAP", "val/classes_without_positives"):
        assert key in metrics, key
    assert metrics["val/classes_without_positives"] == 1
    assert 0 < float(metrics["train_eval/mAP"]) <= 1 and math.isfinite(float(metrics["val/mAP"]))
    assert net.has_label_graph and not torch.equal(net.A, torch.eye(3))
    assert task.w_pos[2] == pytest.approx(math.e)  # class 2 never present: r = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.test(task, datamodule=dm, verbose=False)
    res = task.test_results
    assert res["scores"].shape == (16, 3) and res["labels"].shape == (16, 3)
    assert torch.equal(res["index"], torch.arange(16)) and res["confusion"].shape == (3, 3)


def test_hgat_in_the_task_checks_logit_shapes() -> None:
    task = MultiLabelRecognition(HGATFC(num_class=4, backbone="resnet18", supercategories=list("aabb")))
    with pytest.raises(ValueError, match=r"expected \(2, 4\)"):
        task.check_logits(torch.zeros(2, 3), 2)
