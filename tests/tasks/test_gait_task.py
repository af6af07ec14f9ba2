"""The gait task: a training step (triplet, + CE on logits), the per-iteration schedule, the
non-strict initialisation from another checkpoint (GLN phase 2 from phase 1), and the test
epoch: the same embeddings and protocol numbers whatever the test batch size, the table, the
heat map and the report."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from graphfuse.tasks.gait import GaitRecognition, load_initial_weights

pytest.importorskip("graphfuse.models.gait")

TYPES = ["nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02"]


def _gaitset():
    from graphfuse.models.gait import GaitSet

    torch.manual_seed(0)
    return GaitSet(channels=(1, 4, 4, 8), hidden_dim=8)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """5 subjects (001, 002 train) x 10 types x 2 views of 2-8 random 64 x 64 frames."""
    from graphfuse.data.gait.prepare import write_prepared

    rng = np.random.default_rng(0)
    keys = [(f"{i:03d}", t, v) for i in range(1, 6) for t in TYPES for v in ("000", "090")]
    frames = [(rng.random((int(rng.integers(2, 9)), 64, 64)) < 0.3).astype(np.uint8) * 255 for _ in keys]
    out = tmp_path_factory.mktemp("gait-task") / "synthetic-casia-b"
    ids, types, views = (list(a) for a in zip(*keys))
    write_prepared(out, frames, ids, types, views, {"train": ["001", "002"], "test": ["003", "004", "005"]},
                   dataset="synthetic-casia-b")
    return out


def test_training_step_losses_and_schedule():
    from graphfuse.models.gait import GLN

    torch.manual_seed(0)
    net = GLN(channels=(1, 4, 4, 8), lateral_dim=8, hidden_dim=8, compact=True, num_class=3)
    task = GaitRecognition(net, lr=0.1, milestones=[2, 4])
    logged = {}
    task.log = lambda name, value, **kw: logged.__setitem__(name, value)  # no trainer here
    batch = {"silhouettes": torch.rand(6, 3, 64, 44), "target": torch.tensor([0, 0, 1, 1, 2, 2]),
             "id": torch.arange(6)}
    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.requires_grad
    assert {"train/triplet", "train/ce", "train/loss_step", "train/nonzero_fraction", "train/mean_dist"} <= set(logged)
    ce = float(logged["train/ce"])
    assert float(loss.detach()) == pytest.approx(float(logged["train/triplet"]) + 0.1 * ce, rel=1e-5)
    opt_cfg = task.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]
    assert isinstance(opt, torch.optim.SGD) and sched["interval"] == "step"
    assert opt.defaults["momentum"] == 0.9 and opt.param_groups[0]["weight_decay"] == 5e-4
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    with pytest.raises(ValueError, match="sgd' or 'adam"):
        GaitRecognition(_gaitset(), optimizer="rmsprop")


def test_init_weights_non_strict_lists_the_new_block(tmp_path):
    from graphfuse.checkpoints import save_checkpoint
    from graphfuse.models.gait import GLN

    torch.manual_seed(0)
    p1 = GLN(channels=(1, 4, 4, 8), lateral_dim=8, hidden_dim=8, compact=False)
    ckpt = tmp_path / "p1.ckpt"
    save_checkpoint({"state_dict": {f"model.{k}": v for k, v in p1.state_dict().items()}}, ckpt)
    torch.manual_seed(1)
    p2 = GLN(channels=(1, 4, 4, 8), lateral_dim=8, hidden_dim=8, compact=True, num_class=3)
    report = load_initial_weights(p2, ckpt)
    assert report["missing"] and all(k not in p1.state_dict() for k in report["missing"])
    assert set(report["loaded"]) == set(p1.state_dict())
    for k, v in p1.state_dict().items():
        assert torch.equal(p2.state_dict()[k], v)
    with pytest.raises(ValueError, match="unexpected keys"):
        load_initial_weights(GLN(channels=(1, 4, 4, 8), lateral_dim=8, hidden_dim=8, compact=False),
                             _save(tmp_path / "p2.ckpt", p2))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_initial_weights(GLN(channels=(1, 4, 4, 16), lateral_dim=8, hidden_dim=8, compact=False), ckpt)


def _save(path, net):
    from graphfuse.checkpoints import save_checkpoint

    save_checkpoint({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def _test(prepared, batch_size, tmp_path):
    from graphfuse.data.gait.datamodule import GaitDataModule

    task = GaitRecognition(_gaitset())
    dm = GaitDataModule(str(prepared), p=2, k=2, test_batch_size=batch_size)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.test(task, datamodule=dm, verbose=False)
    return task, trainer


def test_any_test_batch_size_gives_the_same_embeddings_and_numbers(prepared, tmp_path, capsys):
    one, trainer = _test(prepared, 1, tmp_path)
    many, _ = _test(prepared, 7, tmp_path)
    e1, e7 = one.test_results["embeddings"], many.test_results["embeddings"]
    assert e1.shape == (3 * 10 * 2, 8, 62)
    assert torch.allclose(e1, e7, atol=1e-5)
    r1, r7 = one.gait_results, many.gait_results
    assert r1["single_view"] == r7["single_view"] and r1["cross_view"] == r7["cross_view"]
    for key in ("test/NM", "test/BG", "test/CL", "test/mAP_NM", "test/mAP_BG", "test/mAP_CL"):
        assert key in trainer.callback_metrics
    assert float(trainer.callback_metrics["test/NM"]) == pytest.approx(r1["single_view"]["NM"]["mean"])
    report = one.test_report(tmp_path)
    out = capsys.readouterr().out
    assert "selection:" in out and "NM" in out and "090" in out
    assert Path(report["heatmaps"]).read_bytes()[:4] == b"\x89PNG"
    json.dumps(report)  # goes into summary.json as is
    assert report["gait"]["views"] == ["000", "090"] and report["gait"]["num_sequences"] == 60


def test_output_size_from_meta():
    assert GaitRecognition.output_size({"num_class": 74}) == 74 and GaitRecognition.output_size(None) is None
    np.testing.assert_equal(GaitRecognition(_gaitset()).default_input_names(), ("silhouettes", "lengths"))


def test_selecting_on_a_validation_metric_is_refused():
    from types import SimpleNamespace

    task = GaitRecognition(_gaitset())
    task._trainer = SimpleNamespace(checkpoint_callbacks=[SimpleNamespace(monitor="val/NM")])
    with pytest.raises(ValueError, match="--run.select last"):
        task.on_fit_start()
    task._trainer = SimpleNamespace(checkpoint_callbacks=[SimpleNamespace(monitor=None)])
    task.on_fit_start()



def test_lightning_keeps_the_pk_sampler_under_ddp(prepared, tmp_path):
    """Under DDP Lightning replaces a loader's sampler unless it is a DistributedSampler: the
    P x K sampler is one (it shards itself), an ordinary sampler is not."""
    from torch.utils.data import DataLoader

    from graphfuse.data.gait.datamodule import GaitDataModule

    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                        default_root_dir=str(tmp_path))
    dm = GaitDataModule(str(prepared), p=2, k=2, frames=3, iterations_per_epoch=2)
    dm.setup("fit")
    ours = DataLoader(dm.dataset("train"), batch_size=2, sampler=dm.train_sampler(rank=1, world_size=2))
    plain = DataLoader(dm.dataset("train"), batch_size=2)
    assert not trainer._data_connector._requires_distributed_sampler(ours)
    assert trainer._data_connector._requires_distributed_sampler(plain)


@pytest.mark.slow
def test_ddp_test_gives_the_single_process_numbers(prepared, tmp_path):
    """Lightning DDP (gloo, 2 processes): the embeddings of the two ranks' shards (Lightning's
    DistributedSampler), gathered and de-duplicated by id, give the protocol numbers of one process."""
    from graphfuse.data.gait.datamodule import GaitDataModule

    def dm():
        return GaitDataModule(str(prepared), p=2, k=2, test_batch_size=7)

    task = GaitRecognition(_gaitset())
    kw = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False,
          "default_root_dir": str(tmp_path)}
    one = L.Trainer(accelerator="cpu", devices=1, **kw).test(task, datamodule=dm(), verbose=False)[0]
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", **kw).test(task, datamodule=dm(),
                                                                                   verbose=False)[0]
    for key in ("test/NM", "test/BG", "test/CL", "test/mAP_NM", "test/mAP_BG", "test/mAP_CL"):
        assert ddp[key] == pytest.approx(one[key], abs=1e-4), key
