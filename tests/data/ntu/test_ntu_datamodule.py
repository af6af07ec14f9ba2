"""Tests of graphfuse.data.ntu.datamodule: hold-out split, loaders, protocol, resume replay."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from _prepared import write_prepared as _write_prepared

from graphfuse.data.ntu.datamodule import SkeletonDataModule, stratified_holdout
from graphfuse.data.ntu.streams import compute_stream
from graphfuse.data.samplers import EpochSeededSampler

C, T, V, M = 3, 300, 25, 2


def write_prepared(root: Path, n_train: int = 20, n_test: int = 6, num_class: int = 4) -> dict[str, np.ndarray]:
    """A tiny prepared directory (N ~ 20, T = 300)."""
    return _write_prepared(root, n_train=n_train, n_test=n_test, num_class=num_class,
                           name=lambda split, i: f"{split}{i:03d}", num_frames=lambda i: 30 + 13 * i)


def _xyi(item):
    """A dict item or batch as ``(x, target, id)``."""
    return item["x"], item["target"], item["id"]


# ------------------------------------------------------------------------ stratified hold-out
def test_stratified_holdout_proportions() -> None:
    # class sizes 20, 3, 1, 2 with fraction 0.1: k = round(2.0)=2, round(0.3)=0 -> at least 1,
    # single sample -> 0, round(0.2)=0 -> 1 (and at most n_c - 1 = 1)
    labels = np.repeat([0, 1, 2, 3], [20, 3, 1, 2])
    labels = labels[np.random.default_rng(9).permutation(labels.size)]
    train, val = stratified_holdout(labels, 0.1, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[val], minlength=4), [2, 1, 0, 1])
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(labels.size))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    # large fractions still leave one training sample per class
    _, val9 = stratified_holdout(labels, 0.99, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[val9], minlength=4), [19, 2, 0, 1])


def test_stratified_holdout_is_deterministic_and_seeded() -> None:
    labels = np.arange(400) % 7
    a = stratified_holdout(labels, 0.05, seed=3)
    b = stratified_holdout(labels.copy(), 0.05, seed=3)
    np.testing.assert_array_equal(a[1], b[1])
    c = stratified_holdout(labels, 0.05, seed=4)
    assert not np.array_equal(a[1], c[1])
    # per class round(0.05 * 57 or 58) = 3
    np.testing.assert_array_equal(np.bincount(labels[a[1]]), [3] * 7)
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_holdout(labels, 0.0, seed=0)


# ------------------------------------------------------------------------ loaders
def test_loaders_shapes_and_index_mapping(tmp_path: Path) -> None:
    arrays = write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), batch_size=4, eval_batch_size=5, val_fraction=0.2)
    assert (dm.num_class, dm.num_point, dm.num_person, dm.in_channels) == (4, 25, 2, 3)
    assert dm.val_source == "holdout"
    dm.setup("fit")
    train_names, val_names = dm.split_names("fit"), dm.split_names("validate")
    assert len(val_names) == 4 and len(train_names) == 16  # one of 5 per class
    assert set(train_names).isdisjoint(val_names)
    assert set(train_names) | set(val_names) == {f"train{i:03d}" for i in range(20)}

    batches = list(dm.train_dataloader())
    assert len(batches) == 4  # 16 // 4, drop_last
    x, y, idx = _xyi(batches[0])
    assert x.shape == (4, C, T, V, M) and x.dtype == torch.float32
    assert y.shape == (4,) and y.dtype == torch.int64 and idx.dtype == torch.int64
    # index -> name -> row of the stored array
    for b_x, b_y, b_i in map(_xyi, batches):
        for k in range(len(b_i)):
            name = train_names[int(b_i[k])]
            row = int(name[5:])
            np.testing.assert_array_equal(b_x[k].numpy(), arrays["train"][row])
            assert int(b_y[k]) == row % 4

    vx, vy, vi = _xyi(next(iter(dm.val_dataloader())))
    assert vx.shape == (4, C, T, V, M) and vi.tolist() == [0, 1, 2, 3]
    tx, _, ti = _xyi(next(iter(dm.test_dataloader())))
    assert tx.shape == (5, C, T, V, M) and ti.tolist() == [0, 1, 2, 3, 4]
    assert dm.split_names("test") == dm.split_names("predict") == [f"test{i:03d}" for i in range(6)]
    assert sum(len(b["x"]) for b in dm.predict_dataloader()) == 6


def test_clip_len_and_stream(tmp_path: Path) -> None:
    arrays = write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), stream="bone_motion", batch_size=4, clip_len=8)
    x, _, _ = _xyi(next(iter(dm.train_dataloader())))
    assert x.shape == (4, C, 8, V, M)
    tx, _, ti = _xyi(next(iter(dm.test_dataloader())))
    assert tx.shape == (4, C, 8, V, M)
    # eval clips: deterministic PYSKL test-mode frames of the stream computed on all 300 frames
    from graphfuse.data.ntu.transforms import UniformSample

    num_frames = 30 + 13 * int(ti[1])
    frames = UniformSample(8, test_mode=True).frame_indices(num_frames)
    want = compute_stream(arrays["test"][int(ti[1])], "bone_motion")[:, frames]
    np.testing.assert_allclose(tx[1].numpy(), want, rtol=0, atol=1e-6)


def test_val_source_test_is_official_protocol(tmp_path: Path) -> None:
    write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), batch_size=4, val_source="test")
    assert dm.split_names("validate") == dm.split_names("test")
    assert len(dm.split_names("fit")) == 20


def test_train_order_follows_epoch_seeded_sampler(tmp_path: Path) -> None:
    write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), batch_size=4, seed=11, val_fraction=0.2)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    got = torch.cat([b["id"] for b in loader]).tolist()
    ref = EpochSeededSampler(16, seed=11)
    ref.set_epoch(3)
    assert got == ref.order().tolist()


def test_lightning_ddp_sampler_replacement_keeps_tuples(tmp_path: Path) -> None:
    # What the Trainer does under DDP: wrap our sampler in DistributedSamplerWrapper and
    # re-instantiate the DataLoader. Both ranks together must see every training sample.
    from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader

    write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), batch_size=2, clip_len=8, val_fraction=0.2)
    seen = []
    for rank in (0, 1):
        dl = dm.train_dataloader()
        sampler = _get_distributed_sampler(
            dl, shuffle=False, overfit_batches=0, mode=RunningStage.TRAINING, num_replicas=2, rank=rank
        )
        dl2 = _update_dataloader(dl, sampler, mode=RunningStage.TRAINING)
        dl2.sampler.set_epoch(1)
        batches = list(dl2)
        assert len(batches) == 4 and batches[0]["x"].shape == (2, C, 8, V, M)
        seen += torch.cat([b["id"] for b in batches]).tolist()
    assert sorted(seen) == list(range(16))


# ------------------------------------------------------------------------ missing data, synthetic
def test_missing_data_dir_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dir"
    dm = SkeletonDataModule(str(missing))
    with pytest.raises(FileNotFoundError, match=r"no_such_dir.*graphfuse prepare"):
        dm.prepare_data()
    with pytest.raises(FileNotFoundError, match="graphfuse prepare"):
        dm.num_class
    with pytest.raises(FileNotFoundError, match="graphfuse prepare"):
        dm.setup("fit")


def test_synthetic_prepares_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_prepare(data_dir: str) -> None:
        calls.append(data_dir)
        write_prepared(Path(data_dir))

    fake = types.ModuleType("graphfuse.data.synthetic.ntu")
    fake.prepare_synthetic_ntu = fake_prepare
    monkeypatch.setitem(sys.modules, "graphfuse.data.synthetic.ntu", fake)
    dm = SkeletonDataModule(str(tmp_path / "syn"), synthetic=True, batch_size=4)
    dm.prepare_data()
    dm.prepare_data()  # existing data is not regenerated
    assert calls == [str(tmp_path / "syn")] and dm.num_class == 4


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        SkeletonDataModule(str(tmp_path), val_fraction=0.0)
    SkeletonDataModule(str(tmp_path), val_fraction=0.0, val_source="test")
    with pytest.raises(ValueError, match="stream"):
        SkeletonDataModule(str(tmp_path), stream="velocity")  # type: ignore[arg-type]
    write_prepared(tmp_path / "d")
    with pytest.raises(ValueError, match="no training batch"):
        SkeletonDataModule(str(tmp_path / "d"), batch_size=64).train_dataloader()


# ------------------------------------------------------------------------ resume replays the data
class _Recorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(C, 4)
        self.seen: list[tuple[int, list[int], float]] = []

    def training_step(self, batch, batch_idx):
        x, y, idx = _xyi(batch)
        self.seen.append((self.current_epoch, idx.tolist(), float(x.double().sum())))
        return torch.nn.functional.cross_entropy(self.fc(x.mean(dim=(2, 3, 4))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(root: Path, max_epochs: int, ckpt_dir: Path | None) -> L.Trainer:
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True)] if ckpt_dir else []
    return L.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=bool(ckpt_dir), callbacks=callbacks,
        limit_val_batches=0, default_root_dir=root, deterministic=True,
    )


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
@pytest.mark.filterwarnings("ignore:Checkpoint directory")
def test_resume_replays_same_batches(tmp_path: Path) -> None:
    write_prepared(tmp_path / "d")

    def make_dm() -> SkeletonDataModule:
        return SkeletonDataModule(str(tmp_path / "d"), batch_size=4, clip_len=8, val_fraction=0.2, seed=2)

    L.seed_everything(0)
    full = _Recorder()
    _trainer(tmp_path / "a", 3, None).fit(full, make_dm())

    L.seed_everything(0)
    first = _Recorder()
    _trainer(tmp_path / "b", 2, tmp_path / "ckpt").fit(first, make_dm())
    L.seed_everything(123)  # a different global RNG state must not matter
    resumed = _Recorder()
    _trainer(tmp_path / "b", 3, tmp_path / "ckpt").fit(resumed, make_dm(), ckpt_path="last")

    by_epoch = [[s for s in full.seen if s[0] == e] for e in range(3)]
    assert [s[1] for s in by_epoch[0]] != [s[1] for s in by_epoch[1]]  # reshuffled each epoch
    assert first.seen == by_epoch[0] + by_epoch[1]
    assert resumed.seen == by_epoch[2]  # same order and same random clips
    for p, q in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


# ------------------------------------------------------------------------ frame_stride
def test_frame_stride_on_whole_sequences_and_clips(tmp_path: Path) -> None:
    arrays = write_prepared(tmp_path / "d")
    # whole sequences: every 3rd of the 300 stored frames, train and eval alike
    dm = SkeletonDataModule(str(tmp_path / "d"), batch_size=4, frame_stride=3, val_fraction=0.2)
    x, _, idx = _xyi(next(iter(dm.train_dataloader())))
    assert x.shape == (4, C, 100, V, M)
    row = int(dm.split_names("fit")[int(idx[0])][5:])
    np.testing.assert_array_equal(x[0].numpy(), arrays["train"][row][:, ::3])
    tx, _, ti = _xyi(next(iter(dm.test_dataloader())))
    np.testing.assert_array_equal(tx[2].numpy(), arrays["test"][int(ti[2])][:, ::3])

    # with clips: subsample the stream first, then sample the clip from the ceil(n / 2) kept frames
    dm = SkeletonDataModule(str(tmp_path / "d"), stream="joint_motion", batch_size=4, clip_len=8, frame_stride=2)
    x, _, _ = _xyi(next(iter(dm.train_dataloader())))
    assert x.shape == (4, C, 8, V, M)
    tx, _, ti = _xyi(next(iter(dm.test_dataloader())))
    from graphfuse.data.ntu.transforms import UniformSample

    i = int(ti[1])
    num_frames = 30 + 13 * i  # write_prepared's valid frame counts
    frames = UniformSample(8, test_mode=True).frame_indices(-(-num_frames // 2))
    want = compute_stream(arrays["test"][i], "joint_motion")[:, ::2][:, frames]
    np.testing.assert_allclose(tx[1].numpy(), want, rtol=0, atol=1e-6)
    # training clips come from kept, valid frames only: each is one original frame 2 * j
    ds = dm.dataset("train")
    motion = compute_stream(arrays["train"][int(ds.rows[0])], "joint_motion")
    xt = ds[(0, 5)]["x"].numpy()
    for t in range(8):
        hits = [j for j in range(0, int(ds.num_frames[0]), 2) if np.array_equal(motion[:, j], xt[:, t])]
        assert hits, f"clip frame {t} is not a kept valid frame"


def test_frame_stride_invalid(tmp_path: Path) -> None:
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="frame_stride"):
            SkeletonDataModule(str(tmp_path), frame_stride=bad)
