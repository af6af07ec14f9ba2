"""Tests of graphfuse.data.ntu.dataset and .streams (SkeletonDataset, derived streams) and of
graphfuse.data.samplers.EpochSeededSampler."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from _prepared import write_prepared as _write_prepared

from graphfuse.data.ntu.dataset import SkeletonDataset
from graphfuse.data.ntu.streams import compute_stream
from graphfuse.data.samplers import EpochSeededSampler, _splitmix64, item_seeds
from graphfuse.graphs.ntu25 import BONE_PAIRS_1BASED

C, T, V, M = 3, 300, 25, 2


def write_prepared(
    root: Path, n_train: int = 6, n_test: int = 4, num_class: int = 3, seed: int = 0,
    extra_files: dict | None = None,
) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny prepared directory; returns (dir, arrays)."""
    arrays = _write_prepared(
        root, n_train=n_train, n_test=n_test, num_class=num_class, seed=seed, extra_files=extra_files,
        name=lambda split, i: f"S001C001P{split[:2]}{i:03d}A001", num_frames=lambda i: T - 7 * i,
        counts={"train": n_train, "test": n_test},
    )
    return root, arrays


def edit_meta(root: Path, fn) -> None:
    meta = json.loads((root / "meta.json").read_text())
    fn(meta)
    (root / "meta.json").write_text(json.dumps(meta))


def _xyi(item):
    """A dict item or batch as ``(x, target, id)``."""
    return item["x"], item["target"], item["id"]


# ------------------------------------------------------------------------------------- streams
def bone_loop(joint: np.ndarray) -> np.ndarray:
    """float64 reference written as the official gen_bone_data loop over the 1-based pairs."""
    out = np.zeros(joint.shape, dtype=np.float64)
    j = joint.astype(np.float64)
    for v1, v2 in BONE_PAIRS_1BASED:
        out[..., v1 - 1, :] = j[..., v1 - 1, :] - j[..., v2 - 1, :]
    return out


def motion_loop(x: np.ndarray) -> np.ndarray:
    """float64 reference of gen_motion_data: m[:, t] = x[:, t+1] - x[:, t], last frame 0."""
    x = x.astype(np.float64)
    out = np.zeros(x.shape, dtype=np.float64)
    t_len = x.shape[-3]
    for t in range(t_len - 1):
        out[..., t, :, :] = x[..., t + 1, :, :] - x[..., t, :, :]
    return out


@pytest.fixture
def joint() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((C, 20, V, M)).astype(np.float32)


def test_bone_matches_loop_reference(joint: np.ndarray) -> None:
    got = compute_stream(joint, "bone")
    assert got.dtype == np.float32 and got.shape == joint.shape
    np.testing.assert_allclose(got, bone_loop(joint), rtol=0, atol=1e-6)


def test_bone_of_joint_21_is_zero(joint: np.ndarray) -> None:
    b = compute_stream(joint, "bone")
    assert np.all(b[:, :, 20, :] == 0)  # joint 21 (1-based) is its own parent
    assert np.count_nonzero(np.all(b == 0, axis=(0, 1, 3))) == 1


def test_motion_matches_loop_reference(joint: np.ndarray) -> None:
    jm = compute_stream(joint, "joint_motion")
    np.testing.assert_allclose(jm, motion_loop(joint), rtol=0, atol=1e-6)
    assert np.all(jm[:, -1] == 0)
    bm = compute_stream(joint, "bone_motion")
    np.testing.assert_allclose(bm, motion_loop(bone_loop(joint)), rtol=0, atol=1e-5)


def test_streams_batched(joint: np.ndarray) -> None:
    batch = np.stack([joint, 2 * joint, joint[:, ::-1].copy()])  # (N, C, T, V, M)
    for stream in ("joint", "bone", "joint_motion", "bone_motion"):
        got = compute_stream(batch, stream)
        for i in range(batch.shape[0]):
            np.testing.assert_array_equal(got[i], compute_stream(batch[i], stream))
    with pytest.raises(ValueError, match="unknown stream"):
        compute_stream(joint, "velocity")


# ------------------------------------------------------------------------------------- dataset
def test_dataset_items_and_properties(tmp_path: Path) -> None:
    root, arrays = write_prepared(tmp_path / "d")
    for stream in ("joint", "bone", "joint_motion", "bone_motion"):
        ds = SkeletonDataset(root, "train", stream)
        assert len(ds) == 6 and ds.num_class == 3 and ds.in_channels == 3
        x, y, i = _xyi(ds[4])
        assert x.dtype == torch.float32 and x.shape == (C, T, V, M)
        assert y.dtype == torch.int64 and y.ndim == 0 and int(y) == 4 % 3 and i == 4
        expected = compute_stream(arrays["train"][4], stream)
        np.testing.assert_array_equal(x.numpy(), expected)
    # items are private writable copies, never views of the memory map
    x += 1
    np.testing.assert_array_equal(ds[4]["x"].numpy(), compute_stream(arrays["train"][4], stream))
    assert ds.names[2] == "S001C001Ptr002A001"
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(ds.num_frames, [300, 293, 286, 279, 272, 265])


def test_dataset_subset_indices(tmp_path: Path) -> None:
    root, arrays = write_prepared(tmp_path / "d")
    ds = SkeletonDataset(root, "train", indices=[5, 1])
    assert len(ds) == 2 and ds.names == ["S001C001Ptr005A001", "S001C001Ptr001A001"]
    x, y, i = _xyi(ds[1])
    assert i == 1 and int(y) == 1
    np.testing.assert_array_equal(x.numpy(), arrays["train"][1])
    with pytest.raises(ValueError, match="indices"):
        SkeletonDataset(root, "train", indices=[6])


def test_dataset_prefers_stored_stream_and_absolute_path(tmp_path: Path) -> None:
    root, arrays = write_prepared(tmp_path / "d")
    stored_bone = np.full((6, C, T, V, M), 7.0, dtype=np.float32)
    stored_bone[:, :, 5] = 9.0
    abs_file = tmp_path / "elsewhere" / "official_train_bone.npy"
    abs_file.parent.mkdir()
    np.save(abs_file, stored_bone)
    edit_meta(root, lambda m: m["splits"]["train"]["files"].__setitem__("bone", str(abs_file)))
    x, _, _ = _xyi(SkeletonDataset(root, "train", "bone")[0])
    assert np.all(x.numpy() == stored_bone[0])
    # bone_motion derives the motion of the stored bone array
    bm, _, _ = _xyi(SkeletonDataset(root, "train", "bone_motion")[0])
    np.testing.assert_array_equal(bm.numpy(), compute_stream(stored_bone[0], "joint_motion"))
    # joint_motion still comes from the joints
    jm, _, _ = _xyi(SkeletonDataset(root, "train", "joint_motion")[0])
    np.testing.assert_array_equal(jm.numpy(), compute_stream(arrays["train"][0], "joint_motion"))


def test_label_out_of_range_names_sample(tmp_path: Path) -> None:
    root, _ = write_prepared(tmp_path / "d")
    edit_meta(root, lambda m: m["splits"]["train"]["labels"].__setitem__(3, 3))
    with pytest.raises(ValueError, match=r"S001C001Ptr003A001.*label 3"):
        SkeletonDataset(root, "train")
    edit_meta(root, lambda m: m["splits"]["train"]["labels"].__setitem__(3, 1.5))
    with pytest.raises(ValueError, match=r"S001C001Ptr003A001.*1\.5"):
        SkeletonDataset(root, "train")


def test_nan_names_sample_and_file(tmp_path: Path) -> None:
    root, arrays = write_prepared(tmp_path / "d")
    bad = arrays["train"].copy()
    bad[2, 1, 10, 3, 0] = np.nan
    bad[4, 0, 0, 0, 1] = np.inf
    np.save(root / "train_joint.npy", bad)
    ds = SkeletonDataset(root, "train")
    ds[1]  # clean samples still load
    with pytest.raises(ValueError, match=r"S001C001Ptr002A001.*train_joint\.npy"):
        ds[2]
    with pytest.raises(ValueError, match=r"S001C001Ptr004A001"):
        ds[4]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.__setitem__("format_version", 2), "format_version"),
        (lambda m: m["splits"]["train"]["samples"].__setitem__(1, "S001C001Ptr000A001"), "duplicate"),
        (lambda m: m["splits"]["train"]["labels"].pop(), "labels"),
        (lambda m: m["splits"]["train"]["num_frames"].__setitem__(0, 301), "num_frames"),
        (lambda m: m.__setitem__("num_joint", 20), "shape"),
        (lambda m: m["counts"].__setitem__("train", 7), "counts"),
    ],
)
def test_meta_validation(tmp_path: Path, edit, match: str) -> None:
    root, _ = write_prepared(tmp_path / "d")
    edit_meta(root, edit)
    with pytest.raises(ValueError, match=match):
        SkeletonDataset(root, "train")


def test_unknown_split_and_missing_meta(tmp_path: Path) -> None:
    root, _ = write_prepared(tmp_path / "d")
    with pytest.raises(ValueError, match="no split 'val'"):
        SkeletonDataset(root, "val")
    with pytest.raises(FileNotFoundError, match="meta.json"):
        SkeletonDataset(tmp_path / "nothing", "train")


class _NoisyCrop:
    """Module-level (picklable) transform recording the num_frames it receives."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, x: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        self.seen.append(num_frames)
        return x[:, :4] + rng.standard_normal()


def test_seeded_item_transform_and_pickling(tmp_path: Path) -> None:
    root, _ = write_prepared(tmp_path / "d")
    tf = _NoisyCrop()
    seen = tf.seen
    ds = SkeletonDataset(root, "train", transform=tf)
    a, _, ia = _xyi(ds[(3, 12345)])
    b, _, ib = _xyi(ds[(3, 12345)])
    c, _, _ = _xyi(ds[(3, 999)])
    assert ia == ib == 3 and a.shape == (C, 4, V, M)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert seen == [279, 279, 279]
    # the memory map is not pickled into workers: the pickle stays far below the array size
    assert len(pickle.dumps(ds)) < 100_000
    d2 = pickle.loads(pickle.dumps(ds))
    assert torch.equal(d2[(3, 12345)]["x"], a)


# ------------------------------------------------------------------------------------- sampler
def test_splitmix64_known_answer() -> None:
    # First output of the SplitMix64 generator seeded with 0 (Steele, Lea, Flood 2014).
    assert int(_splitmix64(np.uint64(0))) == 0xE220A8397B1DCDAF
    s = item_seeds(3, 1, np.arange(5))
    assert s.dtype == np.uint64 and np.unique(s).size == 5
    np.testing.assert_array_equal(s, item_seeds(3, 1, np.arange(5)))
    assert not np.array_equal(s, item_seeds(3, 2, np.arange(5)))


def test_sampler_is_function_of_seed_and_epoch() -> None:
    s = EpochSeededSampler(50, seed=7, shuffle=True)
    e0 = list(s)
    assert len(e0) == len(s) == 50 and all(isinstance(t, tuple) and len(t) == 2 for t in e0)
    assert sorted(i for i, _ in e0) == list(range(50))
    assert list(s) == e0  # same epoch -> same order and seeds
    s.set_epoch(1)
    e1 = list(s)
    assert [i for i, _ in e1] != [i for i, _ in e0]
    # a fresh sampler (e.g. after resume from a checkpoint) replays epoch 1 exactly,
    # whatever the global RNG state
    np.random.seed(123)
    torch.manual_seed(123)
    fresh = EpochSeededSampler(50, seed=7, shuffle=True)
    fresh.set_epoch(1)
    assert list(fresh) == e1
    # item seeds depend on (seed, epoch, index) only, not on position
    d0, d1 = dict(e0), dict(e1)
    assert all(d0[i] != d1[i] for i in range(50))
    other = EpochSeededSampler(50, seed=8, shuffle=True)
    assert list(other) != e0


def test_sampler_no_shuffle_and_subset() -> None:
    s = EpochSeededSampler(10, seed=0, shuffle=False)
    assert [i for i, _ in s] == list(range(10))
    sub = EpochSeededSampler(10, seed=0, shuffle=True, indices=[2, 4, 6])
    assert sorted(i for i, _ in sub) == [2, 4, 6] and len(sub) == 3
    with pytest.raises(ValueError):
        EpochSeededSampler(10, indices=[10])


def test_sampler_through_dataloader(tmp_path: Path) -> None:
    root, _ = write_prepared(tmp_path / "d")

    def tf(x: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        return x[:, :2] * 0 + rng.integers(1 << 30)

    ds = SkeletonDataset(root, "train", transform=tf)
    sampler = EpochSeededSampler(len(ds), seed=5)
    sampler.set_epoch(2)
    loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=0)
    batches = list(loader)
    expected = list(sampler)
    idx = torch.cat([b["id"] for b in batches])
    assert idx.dtype == torch.int64 and idx.tolist() == [i for i, _ in expected]
    draws = torch.cat([b["x"][:, 0, 0, 0, 0] for b in batches])
    want = [np.random.default_rng(sd).integers(1 << 30) for _, sd in expected]
    assert draws.tolist() == [float(np.float32(w)) for w in want]


def test_workers_do_not_change_the_data(tmp_path: Path) -> None:
    from graphfuse.data.ntu.transforms import UniformSample

    root, _ = write_prepared(tmp_path / "d")
    ds = SkeletonDataset(root, "train", "bone", transform=UniformSample(16))
    runs = []
    for workers in (0, 2):
        sampler = EpochSeededSampler(len(ds), seed=1)
        sampler.set_epoch(3)
        runs.append(list(DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers)))
    for (xa, ya, ia), (xb, yb, ib) in zip(map(_xyi, runs[0]), map(_xyi, runs[1])):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)


@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_under_lightning_distributed_wrapper(shuffle: bool) -> None:
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    inner = [EpochSeededSampler(11, seed=3, shuffle=shuffle) for _ in range(2)]
    wrappers = [
        DistributedSamplerWrapper(inner[r], num_replicas=2, rank=r, shuffle=False) for r in range(2)
    ]
    for epoch in (0, 4):
        for w in wrappers:
            w.set_epoch(epoch)  # Lightning forwards this to the inner sampler
        assert inner[0].epoch == epoch
        parts = [list(w) for w in wrappers]
        ref = EpochSeededSampler(11, seed=3, shuffle=shuffle)
        ref.set_epoch(epoch)
        full = list(ref)
        assert all(isinstance(t, tuple) and len(t) == 2 for p in parts for t in p)
        # DistributedSampler pads 11 -> 12 by repeating the first item and strides by rank
        padded = full + full[:1]
        assert parts[0] == padded[0::2] and parts[1] == padded[1::2]
