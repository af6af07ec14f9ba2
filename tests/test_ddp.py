"""Lightning DDP on 2 CPU processes (gloo backend): training runs, the distributed test
gives the same metrics as a single process on the same weights, and every spawned rank has
left its process group when it exits."""

from __future__ import annotations

import atexit
from pathlib import Path

import lightning as L
import pytest
import torch

from graphfuse.data.ntu.datamodule import SkeletonDataModule
from graphfuse.models import ShiftGCN
from graphfuse.tasks import ActionRecognition

pytestmark = pytest.mark.slow  # spawns two training processes per test


def _record_exit_state(path: str, at_setup: bool) -> None:
    """Exit handler of a rank: write whether its default process group existed at setup and
    still exists now, at interpreter exit."""
    Path(path).write_text(f"{at_setup} {torch.distributed.is_initialized()}")


class _ExitState(L.Callback):
    """Registers :func:`_record_exit_state` in each rank's ``setup``, before the task's
    ``configure_model`` registers graphfuse's exit handler; exit handlers run last-registered
    first, so the record shows the group as graphfuse leaves it. (A spawned rank exiting with
    its gloo group alive can abort: graphfuse.tasks.base.leave_process_group_at_exit.)"""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        atexit.register(_record_exit_state, f"{self.folder}/{trainer.state.fn.value}-rank{trainer.global_rank}",
                        torch.distributed.is_initialized())


def _task(seed: int = 0) -> ActionRecognition:
    torch.manual_seed(seed)
    return ActionRecognition(ShiftGCN(num_class=10), num_class=10, lr=0.01)


def _dm(data_dir) -> SkeletonDataModule:
    return SkeletonDataModule(str(data_dir), clip_len=8, batch_size=5, eval_batch_size=10, val_fraction=0.2)


def test_ddp_spawn_two_cpu_processes(synthetic_ntu, tmp_path):
    task = _task()
    before = {k: v.clone() for k, v in task.state_dict().items()}
    exits = tmp_path / "exit-states"
    exits.mkdir()
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=2,
        limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=[_ExitState(exits)],
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

    # each spawned rank of both runs had a process group and had destroyed it when it exited
    states = {f.name: f.read_text() for f in exits.iterdir()}
    assert states == {f"{stage}-rank{r}": "True False" for stage in ("fit", "test") for r in (0, 1)}


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


def test_leave_process_group_at_exit_registers_one_handler(tmp_path, monkeypatch):
    """No group: nothing is registered. With one (a 1-rank gloo group in this process), however
    often the hook runs, one exit handler (atexit's documented semantics: ``unregister`` removes
    every registration of a function), which destroys the group."""
    from graphfuse.tasks.base import _destroy_process_group, leave_process_group_at_exit

    handlers: list = []

    def unregister(func) -> None:
        handlers[:] = [h for h in handlers if h != func]

    monkeypatch.setattr(atexit, "register", handlers.append)
    monkeypatch.setattr(atexit, "unregister", unregister)
    assert not torch.distributed.is_initialized()
    assert not leave_process_group_at_exit()
    assert handlers == []
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert leave_process_group_at_exit()
        assert leave_process_group_at_exit()
        assert handlers == [_destroy_process_group]
        handlers[0]()
        assert not torch.distributed.is_initialized()
        handlers[0]()  # a no-op once the group is gone (e.g. destroyed by Lightning for NCCL)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
