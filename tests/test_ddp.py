"""Lightning DDP on 2 CPU processes (gloo backend): training runs, and the distributed test
gives the same metrics as a single process on the same weights."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from graphfuse.data.ntu.datamodule import SkeletonDataModule
from graphfuse.models import ShiftGCN
from graphfuse.tasks import ActionRecognition

pytestmark = pytest.mark.slow  # spawns two training processes per test


def _task(seed: int = 0) -> ActionRecognition:
    torch.manual_seed(seed)
    return ActionRecognition(ShiftGCN(num_class=10), num_class=10, lr=0.01)


def _dm(data_dir) -> SkeletonDataModule:
    return SkeletonDataModule(str(data_dir), clip_len=8, batch_size=5, eval_batch_size=10, val_fraction=0.2)


def test_ddp_spawn_two_cpu_processes(synthetic_ntu, tmp_path):
    task = _task()
    before = {k: v.clone() for k, v in task.state_dict().items()}
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=2,
        limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=_dm(synthetic_ntu))
    assert trainer.world_size == 2
    assert trainer.strategy.cluster_environment.world_size() == 2
    after = task.state_dict()
    assert not torch.equal(before["model.fc.weight"], after["model.fc.weight"])  # weights came back trained

    ddp_metrics = trainer.test(task, datamodule=_dm(synthetic_ntu), verbose=False)[0]
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       enable_model_summary=False, default_root_dir=tmp_path)
    single_metrics = single.test(task, datamodule=_dm(synthetic_ntu), verbose=False)[0]
    # 40 test samples, 20 per rank: no padding, so the gathered metrics equal the single-process ones
    for k in ("test/top1", "test/top5", "test/loss", "test/mean_class"):
        assert ddp_metrics[k] == pytest.approx(single_metrics[k], rel=1e-5, abs=1e-6), k


def test_ddp_intention_metrics_equal_single_process(synthetic_pie, tmp_path):
    """PedGraph on synthetic PIE: the epoch-level intention metrics (ROC-AUC, AP, balanced
    accuracy, the rounded AUC) gathered over 2 ranks equal one process's."""
    from graphfuse.data.intention.datamodule import IntentionDataModule
    from graphfuse.models import PedGraph
    from graphfuse.tasks import CrossingIntention

    torch.manual_seed(0)
    task = CrossingIntention(PedGraph(num_class=3, in_channels=3, use_image=False), lr=0.005)

    def dm():  # 468 test samples: 234 per rank, no padding
        return IntentionDataModule(str(synthetic_pie), batch_size=16, eval_batch_size=64)

    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=3,
        limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=dm())
    ddp_metrics = trainer.test(task, datamodule=dm(), verbose=False)[0]
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       enable_model_summary=False, default_root_dir=tmp_path)
    single_metrics = single.test(task, datamodule=dm(), verbose=False)[0]
    for k in ("test/acc", "test/balanced_acc", "test/auc", "test/ap", "test/f1", "test/auc_rounded"):
        assert ddp_metrics[k] == pytest.approx(single_metrics[k], rel=1e-5, abs=1e-6), k
