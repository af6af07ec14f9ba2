"""CrossingIntention: losses against hand/loop references, the inputs passed to the model,
training / validation / test through a Trainer on a tiny fake model, test results and the
selection metric the engine reads."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from graphfuse.engine import DEFAULT_MONITOR, task_monitor
from graphfuse.metrics.intention import compute_intention_metrics, crossing_score
from graphfuse.tasks import ActionRecognition, CrossingIntention

C, T, V = 4, 6, 19


class _Fake(nn.Module):
    """Tiny model: mean pose channels (+ mean velocity) -> linear logits; records its inputs."""

    def __init__(self, k: int = 3, uses_velocity: bool = True, uses_image: bool = False) -> None:
        super().__init__()
        self.uses_velocity, self.uses_image, self.num_class = uses_velocity, uses_image, k
        self.fc = nn.Linear(C + (2 if uses_velocity else 0), k)
        self.bn = nn.BatchNorm1d(k)
        self.seen: list[set[str]] = []

    def forward(self, pose, velocity=None, image=None):
        self.seen.append({n for n, v in (("velocity", velocity), ("image", image)) if v is not None})
        f = pose.mean(dim=(2, 3))
        if self.uses_velocity:
            f = torch.cat([f, velocity.mean(dim=2)], dim=1)
        return self.bn(self.fc(f))


class _Items(Dataset):
    def __init__(self, n: int, k: int, seed: int = 0, image: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = torch.randint(0, k, (n,), generator=g)
        self.label[:k] = torch.arange(k)
        # a learnable signal: channel 0 of the pose encodes the label
        self.pose = torch.randn(n, C, T, V, generator=g) * 0.1
        self.pose[:, 0] += self.label[:, None, None].float()
        self.vel = torch.randn(n, 2, T, generator=g)
        self.image = image

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        out = {
            "pose": self.pose[i],
            "velocity": self.vel[i],
            "target": self.label[i],
            "id": torch.tensor(i),
        }
        if self.image:
            out["image"] = torch.zeros(3, 4, 4)
        return out


class _DM(L.LightningDataModule):
    def __init__(self, k: int = 3, image: bool = False) -> None:
        super().__init__()
        self.num_class = k
        self.train = _Items(24, k, 0, image)
        self.val = _Items(10, k, 1, image)
        self.test = _Items(9, k, 2, image)

    def train_class_counts(self) -> np.ndarray:
        return np.bincount(self.train.label.numpy(), minlength=self.num_class)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=6, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=4)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=4)


def _trainer(tmp_path, epochs: int = 2) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )


# ---- losses --------------------------------------------------------------------------------------------
def _ref_bce(logits, y, w=None):
    """PedGraph+: mean over N x K of the column-weighted BCE on one-hot targets, float64 loop."""
    n, k = len(logits), len(logits[0])
    total = 0.0
    for i in range(n):
        for j in range(k):
            t = 1.0 if y[i] == j else 0.0
            p = 1 / (1 + math.exp(-logits[i][j]))
            total += (w[j] if w is not None else 1.0) * -(t * math.log(p) + (1 - t) * math.log(1 - p))
    return total / (n * k)


def _ref_ce(logits, y, w):
    num = den = 0.0
    for row, yi in zip(logits, y):
        lse = math.log(sum(math.exp(v) for v in row))
        num += w[yi] * (lse - row[yi])
        den += w[yi]
    return num / den


def test_bce_and_ce_losses_match_loop_references():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    L_, Y = logits.tolist(), y.tolist()
    task = CrossingIntention(_Fake())
    assert task.compute_loss(logits, y).item() == pytest.approx(_ref_bce(L_, Y))
    task = CrossingIntention(_Fake(), class_weights=[0.5, 1.0, 2.0])
    assert task.compute_loss(logits, y).item() == pytest.approx(_ref_bce(L_, Y, [0.5, 1.0, 2.0]))
    task = CrossingIntention(_Fake(), loss="ce", class_weights=[0.5, 1.0, 2.0])
    assert task.compute_loss(logits, y).item() == pytest.approx(_ref_ce(L_, Y, [0.5, 1.0, 2.0]))
    # one crossing logit: BCE on it, weight of each sample's label
    task = CrossingIntention(_Fake(k=1), class_weights=[1.0, 3.0])
    one = logits[:, :1]
    yb = torch.tensor([0, 1, 1, 0, 1])
    ref = (
        sum(
            (3.0 if t else 1.0)
            * -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))
            for z, t in zip(one[:, 0].tolist(), yb.tolist())
        )
        / 5
    )
    assert task.compute_loss(one, yb).item() == pytest.approx(ref)


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="model.init_args.loss"):
        CrossingIntention(_Fake(), loss="focal")
    with pytest.raises(ValueError, match="model.init_args.monitor"):
        CrossingIntention(_Fake(), monitor="val/loss")
    with pytest.raises(ValueError, match="class_weights"):
        CrossingIntention(_Fake(), class_weights="balanced")


# ---- inputs --------------------------------------------------------------------------------------------
def test_passes_exactly_the_inputs_the_model_uses():
    batch = {
        "pose": torch.zeros(2, C, T, V),
        "velocity": torch.zeros(2, 2, T),
        "image": torch.zeros(2, 3, 4, 4),
        "target": torch.tensor([0, 1]),
        "id": torch.tensor([0, 1]),
    }
    for uses_velocity in (True, False):
        model = _Fake(uses_velocity=uses_velocity)
        task = CrossingIntention(model)
        task.eval()
        task(**task.model_inputs(batch))
        assert model.seen[-1] == ({"velocity"} if uses_velocity else set())
    task = CrossingIntention(_Fake(uses_velocity=True))
    with pytest.raises(ValueError, match="use_velocity"):
        task.model_inputs({k: v for k, v in batch.items() if k != "velocity"})


# ---- selection metric ----------------------------------------------------------------------------------------
def test_selection_metric_is_task_defined():
    assert CrossingIntention.monitor == "val/balanced_acc"
    assert task_monitor(CrossingIntention) == "val/balanced_acc"
    assert task_monitor(CrossingIntention(_Fake(), monitor="val/auc")) == "val/auc"
    assert task_monitor(ActionRecognition) == DEFAULT_MONITOR == "val/top1"


# ---- through a Trainer ----------------------------------------------------------------------------------------
def test_fit_validate_test_log_metrics_and_test_results(tmp_path, one_thread):
    torch.manual_seed(0)
    dm = _DM(k=3)
    task = CrossingIntention(_Fake(k=3), lr=0.05, class_weights="auto")
    trainer = _trainer(tmp_path, epochs=3)
    trainer.fit(task, datamodule=dm)
    counts = dm.train_class_counts()
    assert task.class_weight.tolist() == pytest.approx((counts.min() / counts).tolist())
    logged = set(trainer.callback_metrics)
    for m in ("acc", "balanced_acc", "auc", "ap", "f1", "precision", "recall", "auc_rounded", "loss"):
        assert f"val/{m}" in logged
    assert {"train/loss", "train/acc", "train/balanced_acc", "lr"} <= logged

    trainer.test(task, datamodule=dm, verbose=False)
    res = task.test_results
    assert res["index"].tolist() == list(range(9))
    assert res["confusion"].shape == (2, 2) and int(res["confusion"].sum()) == 9
    # recompute from the model: scores are the PedGraph+ mapping of its logits, labels binary
    task.eval()
    with torch.no_grad():
        logits = task(dm.test.pose, velocity=dm.test.vel)
    score, probs = crossing_score(logits)
    assert torch.allclose(res["scores"], score, atol=1e-6)
    assert torch.allclose(res["probs"], probs, atol=1e-6)
    assert res["labels"].tolist() == (dm.test.label == 1).long().tolist()
    assert res["model_labels"].tolist() == dm.test.label.tolist()
    expected = compute_intention_metrics(res["labels"], res["scores"])
    for k, v in expected.items():
        assert trainer.callback_metrics[f"test/{k}"].item() == pytest.approx(v, abs=1e-5), k


def test_binary_ce_learns_the_signal(tmp_path, one_thread):
    torch.manual_seed(0)
    dm = _DM(k=2)
    task = CrossingIntention(_Fake(k=2, uses_velocity=False), loss="ce", lr=0.1, scheduler="none")
    trainer = _trainer(tmp_path, epochs=15)
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    assert trainer.callback_metrics["test/auc"].item() > 0.9


def test_onecycle_is_stepped_per_batch_from_lr_over_10(tmp_path, one_thread):
    dm = _DM(k=3)
    task = CrossingIntention(_Fake(k=3), lr=0.01, optimizer="adam")
    lrs = []

    class _Rec(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = _trainer(tmp_path, epochs=2)
    trainer.callbacks.append(_Rec())
    trainer.fit(task, datamodule=dm)
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["weight_decay"] == 1e-3
    assert len(lrs) == 8  # 2 epochs x 4 batches, one lr per step
    assert lrs[0] == pytest.approx(0.001)  # max_lr / div_factor 10
    assert max(lrs) <= 0.01 + 1e-12 and len(set(lrs)) == 8


def test_run_artifacts_use_the_task_monitor(tmp_path, one_thread):
    """What the engine wires: checkpoint and RunArtifacts on the task's monitor; scores.npz keyed by id."""
    import json

    from lightning.pytorch.callbacks import ModelCheckpoint

    from graphfuse.runs import RunArtifacts, read_metrics_csv

    class _NamedDM(_DM):
        def split_names(self, stage):
            return [f"set03/video_0001/3_1_{i}/{i}" for i in range(len(self.test))]

    torch.manual_seed(0)
    task = CrossingIntention(_Fake(k=3), lr=0.05)
    monitor = task_monitor(task)
    run = tmp_path / "run"
    ckpt = ModelCheckpoint(dirpath=run / "checkpoints", filename="best", monitor=monitor, mode="max")
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[ckpt, RunArtifacts(run, monitor=monitor)],
    )
    dm = _NamedDM(k=3)
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, ckpt_path="best", verbose=False)
    summary = json.loads((run / "summary.json").read_text())
    rows = read_metrics_csv(run / "metrics.csv")
    best = max(rows, key=lambda r: r["val/balanced_acc"])
    assert summary["monitor"] == "val/balanced_acc" and summary["best_epoch"] == best["epoch"]
    assert (run / "curves.png").is_file() and (run / "confusion_test.png").is_file()
    with np.load(run / "scores.npz", allow_pickle=False) as z:
        assert z["names"].tolist() == dm.split_names("test")
        assert z["scores"].shape == (9,) and z["probs"].shape == (9, 3)
        assert z["labels"].tolist() == (dm.test.label == 1).long().tolist()
        assert z["model_labels"].tolist() == dm.test.label.tolist()
        acc = float(((z["scores"] > 0.5) == z["labels"]).mean())
    assert acc == pytest.approx(summary["test"]["metrics"]["test/acc"], abs=1e-6)


_BASE_CONFIG = """\
trainer: {max_epochs: 1}
model:
  class_path: graphfuse.tasks.CrossingIntention
  init_args:
    model:
      class_path: graphfuse.models.PedGraph
      init_args: {num_class: 3, in_channels: 3, use_image: false}
data:
  class_path: graphfuse.data.intention.datamodule.IntentionDataModule
  init_args: {data_dir: DATA}
"""


def test_ablation_spec_and_report_use_the_task_monitor(tmp_path):
    import json

    from graphfuse.ablation.report import collect_study
    from graphfuse.ablation.spec import SpecError, check_config, spec_from_dict

    base = tmp_path / "base.yaml"
    base.write_text(_BASE_CONFIG.replace("DATA", str(tmp_path / "data")))
    raw = {
        "name": "s",
        "base": str(base),
        "baseline": "b",
        "metrics": ["test/acc"],
        "variants": {"b": {}, "auc": {"model.init_args.monitor": "val/auc"}},
    }
    spec = spec_from_dict(raw)
    assert spec.select == {"monitor": "val/balanced_acc", "mode": "max"}  # what the runs record
    assert spec_from_dict({**raw, "select": {"monitor": "val/balanced_acc"}}).select == spec.select
    with pytest.raises(SpecError, match="not supported.*val/balanced_acc"):
        spec_from_dict({**raw, "select": {"monitor": "val/top1", "mode": "max"}})
    assert check_config(spec, ["b"])["b"].monitor == "val/balanced_acc"
    with pytest.raises(SpecError, match="variant 'auc'.*val/auc"):
        check_config(spec, ["auc"])

    # report without study.yaml: the monitor the runs recorded
    run = tmp_path / "study" / "baseline" / "seed0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(
        json.dumps(
            {
                "monitor": "val/balanced_acc",
                "protocol": {"name": "holdout"},
                "best": {"val/balanced_acc": 0.8},
                "test": {"metrics": {"test/acc": 0.9}},
            }
        )
    )
    rep = collect_study(tmp_path / "study", metrics=["test/acc"])
    assert rep.monitor == "val/balanced_acc"
    assert rep.variant("baseline").values("test/acc") == {0: 0.9}
