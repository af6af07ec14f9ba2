"""IntentionDataset / IntentionDataModule on a tiny prepared directory written here in the
contract's format (no dependence on the preparation code): normalisation on a copy and
identical in every epoch, no augmentation at validation or test, every sample once per
epoch, velocity/label conventions, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from graphfuse.data.checks import check_prepared
from graphfuse.data.intention.datamodule import (
    BalancedEpochSampler,
    IntentionDataModule,
    NoSingletonBatchSampler,
)
from graphfuse.data.intention.dataset import IMAGENET_MEAN, IMAGENET_STD, IntentionDataset

T = 8
SIZES = {"train": 11, "val": 5, "test": 7}


def write_intention_dir(
    root: Path,
    dataset: str = "pie",
    has_depth: bool = True,
    crops: bool = False,
    poses: bool = True,
    sizes: dict[str, int] = SIZES,
    seed: int = 0,
) -> Path:
    """A prepared directory in the contract §3 format, with known random contents."""
    rng = np.random.default_rng(seed)
    ego_channels = ["GPS_speed", "OBD_speed"] if dataset == "pie" else ["vehicle_act"]
    splits = {}
    for split, n in sizes.items():
        d = root / split
        d.mkdir(parents=True)
        ids = [f"set0{1 + i % 3}/video_000{i % 4}/{split}_{i}/{100 + i}" for i in range(n)]
        label3 = rng.integers(0, 3, n)
        label3[:3] = [0, 1, 2]
        label = (label3 == 1).astype(np.int64)
        width = rng.integers(1000, 2000, n)
        height = rng.integers(500, 1100, n)
        pose = np.zeros((n, T, 19, 4), np.float32)
        pose[..., 0] = rng.uniform(0, 1, (n, T, 19)) * width[:, None, None]
        pose[..., 1] = rng.uniform(0, 1, (n, T, 19)) * height[:, None, None]
        pose[..., 2] = rng.uniform(0, 60, (n, T, 19)) if has_depth else 0.0
        pose[..., 3] = rng.uniform(0, 1, (n, T, 19))
        ego = rng.uniform(0, 50, (n, T, len(ego_channels))).astype(np.float32)
        if dataset != "pie":
            ego = rng.integers(0, 5, (n, T, 1)).astype(np.float32)
        (d / "ids.json").write_text(json.dumps(ids))
        np.save(d / "label.npy", label)
        np.save(d / "label3.npy", label3.astype(np.int64))
        np.save(d / "tte.npy", rng.integers(30, 61, n))
        np.save(d / "frames.npy", np.arange(n * T).reshape(n, T))
        np.save(d / "boxes.npy", rng.uniform(0, 500, (n, T, 4)).astype(np.float32))
        np.save(d / "ego.npy", ego)
        np.save(d / "image_size.npy", np.stack([width, height], 1).astype(np.int64))
        if poses:
            np.save(d / "pose.npy", pose)
            np.save(d / "pose_mask.npy", np.ones((n, T), bool))
        if crops:
            np.save(d / "crops.npy", rng.integers(0, 256, (n, 3, 12, 4)).astype(np.uint8))
        splits[split] = {
            "pedestrians": n,
            "tracks": n,
            "samples": n,
            "positive": int(label.sum()),
            "negative": int(n - label.sum()),
            "irrelevant": int((label3 == 2).sum()),
        }
    meta = {
        "format": "graphfuse-intention",
        "version": 1,
        "dataset": dataset,
        "options": {},
        "ego_channels": ego_channels,
        "pose": {
            "format": "coco",
            "has_depth": has_depth,
            "fill": "interpolate",
            "matched_frames": 1,
            "missing_frames": 0,
        }
        if poses
        else None,
        "crops": {"size": [12, 4]} if crops else None,
        "splits": splits,
        "skipped": {},
    }
    (root / "meta.json").write_text(json.dumps(meta))
    check_prepared(root)  # as `graphfuse check` (the datamodule refuses an unchecked folder)
    return root


def _raw(root: Path, split: str, name: str) -> np.ndarray:
    return np.load(root / split / name)


def _epoch(loader, epoch: int) -> list[dict[str, torch.Tensor]]:
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None) or loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    return list(loader)


def _cat(batches, key):
    return torch.cat([b[key] for b in batches])


# ---- item contents ------------------------------------------------------------------------------------
def test_item_is_normalised_pose_velocity_and_labels(tmp_path):
    root = write_intention_dir(tmp_path)
    ds = IntentionDataset(root, "test")
    pose = _raw(root, "test", "pose.npy")
    size = _raw(root, "test", "image_size.npy")
    ego = _raw(root, "test", "ego.npy")
    label3 = _raw(root, "test", "label3.npy")
    for i in (0, 4):
        item = ds[i]
        w, h = float(size[i, 0]), float(size[i, 1])
        expected = np.stack([pose[i, ..., 0] / w, pose[i, ..., 1] / h, pose[i, ..., 2] / 80, pose[i, ..., 3]])
        assert item["pose"].shape == (4, T, 19)
        np.testing.assert_allclose(item["pose"].numpy(), expected, rtol=1e-6)
        # PIE: rows [GPS, OBD] / 120
        np.testing.assert_allclose(item["velocity"].numpy(), ego[i].T / 120, rtol=1e-6)
        assert item["target"].item() == label3[i] and item["id"].item() == i
    assert ds.in_channels == 4 and ds.num_class == 3


def test_binary_labels_2d_mode_jaad_velocity_and_image(tmp_path):
    root = write_intention_dir(tmp_path, dataset="jaad", has_depth=False, crops=True)
    ds = IntentionDataset(root, "val", labels="binary", use_image=True)
    item = ds[2]
    assert item["pose"].shape == (3, T, 19)  # x, y, score (no depth)
    pose = _raw(root, "val", "pose.npy")
    np.testing.assert_allclose(item["pose"][2].numpy(), pose[2, ..., 3], rtol=1e-6)  # score untouched
    ego = _raw(root, "val", "ego.npy")
    np.testing.assert_array_equal(item["velocity"].numpy(), np.repeat(ego[2].T, 2, axis=0))  # tiled, raw
    assert item["target"].item() == _raw(root, "val", "label.npy")[2]
    crop = _raw(root, "val", "crops.npy")[2].astype(np.float64) / 255
    ref = (crop - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[:, None, None]
    np.testing.assert_allclose(item["image"].numpy(), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no depth"):
        IntentionDataset(root, "val", use_depth=True)


# ---- the reference loaders' bugs, fixed ------------------------------------------------------------------
def test_normalisation_on_a_copy_identical_every_epoch(tmp_path):
    root = write_intention_dir(tmp_path)
    before = {s: _raw(root, s, "pose.npy").copy() for s in SIZES}
    dm = IntentionDataModule(str(root), batch_size=4, jitter=True, time_crop=False)
    dm.setup("fit")
    dm.setup("test")
    train = dm.train_dataloader()
    # training: same seed and epoch -> identical batches; two passes over the same epoch
    a = _epoch(train, 0)
    b = _epoch(train, 0)
    assert all(torch.equal(x["pose"], y["pose"]) for x, y in zip(a, b))
    _epoch(train, 1)
    c = _epoch(train, 0)
    assert all(torch.equal(x["pose"], y["pose"]) for x, y in zip(a, c))
    # evaluation: identical across epochs, equal to the un-augmented normalised arrays
    for loader, split in ((dm.val_dataloader(), "val"), (dm.test_dataloader(), "test")):
        e1, e2 = list(loader), list(loader)
        p1, p2 = _cat(e1, "pose"), _cat(e2, "pose")
        assert torch.equal(p1, p2)
        raw = _raw(root, split, "pose.npy")
        size = _raw(root, split, "image_size.npy").astype(np.float32)
        idx = _cat(e1, "id").numpy()
        np.testing.assert_allclose(p1[:, 0].numpy(), raw[idx, ..., 0] / size[idx, 0, None, None], rtol=1e-6)
    # nothing written back to disk
    for s in SIZES:
        np.testing.assert_array_equal(_raw(root, s, "pose.npy"), before[s])


def test_jitter_only_in_training_and_as_pedgraph(tmp_path):
    root = write_intention_dir(tmp_path)
    dm = IntentionDataModule(str(root), batch_size=4, jitter=True, time_crop=True, balance=True)
    assert dm.dataset("train").jitter and dm.dataset("train").time_crop
    for stage in ("val", "test", "predict"):
        ds = dm.dataset(stage)
        assert not ds.jitter and not ds.time_crop
        assert "crop" not in ds[(0, 123)]
        assert torch.equal(ds[(1, 5)]["pose"], ds[(1, 99)]["pose"])  # the seed changes nothing
    train = dm.dataset("train")
    raw = _raw(root, "train", "pose.npy")
    size = _raw(root, "train", "image_size.npy").astype(np.float64)
    x = train[(0, 7)]["pose"].numpy().astype(np.float64)
    dx = x[0] * size[0, 0] - raw[0, ..., 0]
    dy = x[1] * size[0, 1] - raw[0, ..., 1]
    dz = x[2] * 80 - raw[0, ..., 2]
    # integer offsets: x + U{0..8}, y + U{0..5}, depth + U{0..1} (clipping aside), score untouched
    for d, hi in ((dx, 8), (dy, 5), (dz, 1)):
        free = d[np.abs(d - np.round(d)) < 1e-2]
        assert free.size > 0.9 * d.size and free.min() > -1e-2 and free.max() < hi + 1e-2
        assert len(np.unique(np.round(free))) > 1
    np.testing.assert_allclose(x[3], raw[0, ..., 3], rtol=1e-6)
    assert torch.equal(train[(0, 7)]["pose"], train[(0, 7)]["pose"])  # reproducible from the seed
    # val/test loaders never use the training sampler or the crop
    assert not isinstance(dm.val_dataloader().sampler, BalancedEpochSampler)


def test_every_sample_exactly_once_per_epoch(tmp_path):
    root = write_intention_dir(tmp_path, sizes={"train": 21, "val": 6, "test": 7})
    dm = IntentionDataModule(str(root), batch_size=4)  # 21 = 5 * 4 + 1: the 1 joins the last batch
    for epoch in (0, 1):
        batches = _epoch(dm.train_dataloader(), epoch)
        idx = _cat(batches, "id").tolist()
        assert sorted(idx) == list(range(21))
        assert min(len(b["id"]) for b in batches) > 1  # no batch of one (BatchNorm)
    assert len(dm.train_dataloader()) == 5
    for stage, n in (("val", 6), ("test", 7)):
        loader = dm.val_dataloader() if stage == "val" else dm.test_dataloader()
        assert sorted(_cat(list(loader), "id").tolist()) == list(range(n))
        assert len(dm.split_names(stage)) == n
    names = dm.split_names("test")
    assert names[0] == json.loads((root / "test" / "ids.json").read_text())[0]


def test_time_crop_is_per_batch_on_the_pose_only(tmp_path):
    root = write_intention_dir(tmp_path, sizes={"train": 40, "val": 3, "test": 3})
    dm = IntentionDataModule(str(root), batch_size=4, time_crop=True)
    lengths = set()
    for epoch in range(3):
        for b in _epoch(dm.train_dataloader(), epoch):
            t = b["pose"].shape[2]
            lengths.add(t)
            assert 2 <= t <= T and b["velocity"].shape[2] == T
    assert T in lengths and len(lengths) > 1  # some batches cropped, some not


def test_balanced_sampler_oversamples_without_dropping():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 3)
    s = BalancedEpochSampler(labels, seed=0)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        items = list(s)
        order = np.array([i for i, _ in items])
        assert len(items) == len(s) == 18
        assert np.bincount(labels[order]).tolist() == [6, 6, 6]
        assert set(order.tolist()) == set(range(11))  # every sample at least once
        assert len({seed for _, seed in items}) == 18  # repeated copies get their own seeds


def test_no_singleton_batch_sampler():
    assert [len(b) for b in NoSingletonBatchSampler(range(9), 4, False)] == [4, 5]
    assert [len(b) for b in NoSingletonBatchSampler(range(10), 4, False)] == [4, 4, 2]
    assert [len(b) for b in NoSingletonBatchSampler(range(1), 4, False)] == [1]
    assert len(NoSingletonBatchSampler(range(9), 4, False)) == 2
    assert len(NoSingletonBatchSampler(range(10), 4, False)) == 3


def test_official_protocol_validates_on_test_and_properties(tmp_path):
    root = write_intention_dir(tmp_path)
    dm = IntentionDataModule(str(root), val_source="test", labels="binary")
    assert dm.split_names("val") == dm.split_names("test")
    assert dm.num_class == 2 and dm.in_channels == 4 and dm.num_frames == T
    label = _raw(root, "train", "label.npy")
    assert dm.train_class_counts().tolist() == np.bincount(label, minlength=2).tolist()
    assert IntentionDataModule(str(root), use_depth=False).in_channels == 3


# ---- errors ---------------------------------------------------------------------------------------------
def test_missing_pose_names_the_directory_and_the_option(tmp_path):
    root = write_intention_dir(tmp_path, poses=False)
    with pytest.raises(FileNotFoundError, match=r"(?s)train.*pose\.npy.*--poses"):
        IntentionDataModule(str(root)).setup("fit")


def test_missing_directory_and_bad_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthetic: true"):
        IntentionDataModule(str(tmp_path / "nothing")).setup("fit")
    root = write_intention_dir(tmp_path / "a")
    label = _raw(root, "test", "label.npy")
    label[0] = 1 - label[0]
    np.save(root / "test" / "label.npy", label)
    with pytest.raises(ValueError, match="label3"):
        IntentionDataset(root, "test")
    with pytest.raises(FileNotFoundError, match="crops.npy"):
        IntentionDataset(root, "train", use_image=True)
    pose = _raw(root, "val", "pose.npy")
    pose[1, 0, 0, 0] = np.nan
    np.save(root / "val" / "pose.npy", pose)
    ds = IntentionDataset(root, "val")
    ids = json.loads((root / "val" / "ids.json").read_text())
    with pytest.raises(ValueError, match=ids[1].replace("/", ".")):
        ds[1]
    # no future ego frames: the ego series must cover exactly the observed pose frames
    ego = _raw(root, "train", "ego.npy")
    np.save(root / "train" / "ego.npy", np.concatenate([ego, ego[:, :3]], axis=1))
    with pytest.raises(ValueError, match=r"ego\.npy: shape"):
        IntentionDataset(root, "train")
    assert "velocity" not in IntentionDataset(root, "train", use_velocity=False)[0]
    meta = json.loads((root / "meta.json").read_text())
    meta["format"] = "graphfuse-skeleton"
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format"):
        IntentionDataset(root, "train")
