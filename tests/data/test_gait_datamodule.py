"""The gait dataset, datamodule and P x K sampler: the P x K rule (distinct identities, K each,
replacement only for short identities), disjoint DDP shards that cover the global batch, the
frame-sampling rules of OpenGait, the side cut, the test collation, the missing-data error."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from graphfuse.data.gait.dataset import GaitDataset, collate_sequences, sample_frame_indices, side_cut
from graphfuse.data.samplers import PKSampler, pk_batch

TYPES = ["nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02"]


def _write(out, num_ids=6, train=("001", "002", "003"), views=("000", "090"), size=64, seed=0):
    """A prepared folder (G1's writer): every frame's pixels encode (sequence, frame) for the checks."""
    from graphfuse.data.gait.prepare import write_prepared

    rng = np.random.default_rng(seed)
    ids, types, vs, frames = [], [], [], []
    for i in range(1, num_ids + 1):
        for t in TYPES:
            for v in views:
                n = int(rng.integers(2, 9))
                seq = len(ids)
                arr = np.zeros((n, size, size), np.uint8)
                arr[:, 0, :] = seq  # row 0: the sequence
                arr[:, 1, :] = np.arange(n, dtype=np.uint8)[:, None]  # row 1: the frame
                arr[:, 2, :] = np.arange(size, dtype=np.uint8)[None, :]  # row 2: the column
                ids.append(f"{i:03d}"), types.append(t), vs.append(v), frames.append(arr)
    test = [f"{i:03d}" for i in range(1, num_ids + 1) if f"{i:03d}" not in train]
    write_prepared(out, frames, ids, types, vs, {"train": list(train), "test": test}, dataset="synthetic-casia-b")
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("gait") / "synthetic-casia-b")


# -- P x K ------------------------------------------------------------------------------------------------------
def _labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


def test_pk_batch_distinct_ids_k_each_and_the_replacement_rule():
    labels = _labels([5, 2, 7, 4, 1])  # ids 1 and 4 have fewer than k = 4 sequences
    sampler = PKSampler(labels, p=3, k=4, batches_per_epoch=200, seed=1)
    seen_short = set()
    for b in range(200):
        idx = sampler.global_batch(0, b)
        assert idx.shape == (12,)
        ids = labels[idx].reshape(3, 4)
        assert (ids == ids[:, :1]).all()  # identity-major, k of each
        assert len(set(ids[:, 0].tolist())) == 3  # p distinct identities
        for row, who in zip(idx.reshape(3, 4), ids[:, 0]):
            if np.sum(labels == who) >= 4:
                assert len(set(row.tolist())) == 4  # without replacement
            else:
                seen_short.add(int(who))
                assert set(row.tolist()) <= set(np.flatnonzero(labels == who).tolist())
    assert seen_short == {1, 4}
    with pytest.raises(ValueError, match="at least p=6 identities"):
        PKSampler(labels, p=6, k=2, batches_per_epoch=1)


def test_pk_batch_draws_uniformly_enough():
    members = np.array([[0, 1, 2, 3, 4, -1], [5, 6, -1, -1, -1, -1]])
    rng = np.random.default_rng(0)
    counts = Counter()
    for _ in range(2000):
        idx, _ids = pk_batch(members, np.array([5, 2]), 1, 3, rng)
        counts.update(idx.tolist())
    assert -1 not in counts  # padding is never drawn
    short, long = [counts[i] for i in (5, 6)], [counts[i] for i in range(5)]
    assert abs(short[0] - short[1]) < 0.15 * sum(short)
    assert max(long) - min(long) < 0.15 * max(long)


@pytest.mark.parametrize("world", [2, 4])
def test_pk_shards_are_disjoint_and_cover_the_global_batch(world):
    labels = _labels([6, 6, 5, 8, 3, 7])
    full = PKSampler(labels, p=4, k=4, batches_per_epoch=3, seed=5)
    shards = [PKSampler(labels, p=4, k=4, batches_per_epoch=3, seed=5, num_replicas=world, rank=r)
              for r in range(world)]
    for s in shards:
        s.set_epoch(2)
    full.set_epoch(2)
    items = [list(s) for s in shards]
    assert all(len(it) == len(s) == 3 * 16 // world for it, s in zip(items, shards))
    for b in range(3):
        g = full.global_batch(2, b)
        per_rank = [np.asarray([i for i, _ in it[b * 16 // world:(b + 1) * 16 // world]]) for it in items]
        # positions r, r + world, ...: disjoint slices whose union is the whole global batch
        rebuilt = np.empty(16, np.int64)
        for r, part in enumerate(per_rank):
            rebuilt[r::world] = part
        assert np.array_equal(rebuilt, g)
    seeds = [s for it in items for _, s in it]
    assert len(set(seeds)) == len(seeds)  # every drawn position gets its own frame-draw seed
    with pytest.raises(ValueError, match="divisible by the world size 3"):
        PKSampler(labels, p=4, k=4, batches_per_epoch=1, num_replicas=3, rank=0)


def test_pk_sampler_is_seeded_by_epoch_and_skips():
    labels = _labels([4, 4, 4, 4])
    a = PKSampler(labels, p=2, k=2, batches_per_epoch=5, seed=0)
    b = PKSampler(labels, p=2, k=2, batches_per_epoch=5, seed=0)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    a.skip_next(6)  # resumed after one batch and a half
    assert list(a) == first[6:]
    assert list(a) == first  # the skip applies once


# -- frame sampling -------------------------------------------------------------------------------------------
def test_fixed_unordered_rule():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = sample_frame_indices(40, 30, "fixed_unordered", rng)
        assert idx.shape == (30,) and len(set(idx.tolist())) == 30 and idx.max() < 40  # no replacement
    short = np.concatenate([sample_frame_indices(7, 30, "fixed_unordered", rng) for _ in range(20)])
    assert short.max() < 7 and set(short.tolist()) == set(range(7))  # with replacement when shorter
    draws = [sample_frame_indices(40, 30, "fixed_unordered", rng) for _ in range(5)]
    assert any(not np.array_equal(np.sort(d), d) for d in draws)  # kept in the order drawn


def test_fixed_ordered_rule():
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(200):
        idx = sample_frame_indices(40, 30, "fixed_ordered", rng)
        assert np.array_equal(np.diff(idx), np.ones(29))  # 30 consecutive frames, no wrap
        starts.add(int(idx[0]))
    assert starts == set(range(11))  # start uniform in [0, 40 - 30]
    short = [sample_frame_indices(4, 10, "fixed_ordered", rng) for _ in range(100)]  # tiled 3x: 12 frames
    for idx in short:
        assert np.array_equal(idx, (idx[0] + np.arange(10)) % 4)
    assert {int(i[0]) for i in short} == {0, 1, 2}  # start uniform in [0, 12 - 10]
    assert np.array_equal(sample_frame_indices(5, 30, "all_ordered", None), np.arange(5))
    with pytest.raises(ValueError, match="frame_sampling"):
        sample_frame_indices(5, 3, "unfixed_ordered", rng)
    with pytest.raises(ValueError, match="empty"):
        sample_frame_indices(0, 3, "fixed_ordered", rng)


# -- dataset ---------------------------------------------------------------------------------------------------
def test_items_side_cut_and_frames(prepared):
    from graphfuse.data.gait.sequences import GaitSequences

    seqs = GaitSequences(prepared)
    assert side_cut(64) == 10 and side_cut(128) == 20
    train = GaitDataset(seqs, seqs.split_indices("train"), "fixed_ordered", frames=5)
    item = train[(3, 123)]
    sil = item["silhouettes"]
    assert sil.shape == (5, 64, 44) and sil.dtype == torch.float32
    row = int(train.rows[3])
    frames = (sil[:, 1, 0] * 255).round().long()  # row 1 of every stored frame holds its frame number
    n = int(seqs.lengths[row])
    assert torch.equal(frames, (frames[0] + torch.arange(5)) % n)  # the fixed_ordered rule on real frames
    raw = seqs.frames(row)[frames.numpy()][:, :, 10:54]  # the side cut: 10 columns each side
    assert torch.equal((sil * 255).round().to(torch.uint8), torch.from_numpy(np.ascontiguousarray(raw)))
    assert torch.equal((sil[0, 2] * 255).round(), torch.arange(10, 54).float())
    assert item["target"] == seqs.targets()[row] and item["id"] == 3
    assert torch.equal(train[(3, 123)]["silhouettes"], sil)  # the item seed fixes the draw
    test = GaitDataset(seqs, seqs.split_indices("test"), "all_ordered", with_lengths=True)
    assert test.names[0] == "004-bg-01-000" and int(test[0]["target"]) == -1
    batch = collate_sequences([test[0], test[1], test[2]])
    lengths = [int(seqs.lengths[r]) for r in test.rows[:3]]
    assert batch["silhouettes"].shape == (1, sum(lengths), 64, 44)
    assert batch["lengths"].tolist() == lengths and batch["id"].tolist() == [0, 1, 2]


# -- datamodule -------------------------------------------------------------------------------------------------
def test_datamodule_loaders(prepared):
    from graphfuse.data.gait.datamodule import GaitDataModule

    dm = GaitDataModule(str(prepared), p=2, k=4, frames=6, test_batch_size=5, iterations_per_epoch=3)
    dm.setup("fit")
    assert dm.num_class == 3 and dm.val_dataloader() == [] and len(dm.dataset("val")) == 0
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    b = batches[0]
    assert b["silhouettes"].shape == (8, 6, 64, 44) and b["target"].tolist()[:4] == [b["target"][0].item()] * 4
    dm.setup("test")
    tb = list(dm.test_dataloader())
    assert sum(int(x["lengths"].numel()) for x in tb) == len(dm.dataset("test")) == 3 * 10 * 2
    assert torch.cat([x["id"] for x in tb]).tolist() == list(range(60))
    info = dm.evaluation_info()
    assert info["protocol"] == "casia-b" and list(info["labels"][:2]) == ["004", "004"]
    assert dm.split_names("test")[1] == "004-bg-01-090"
    opts = dm.inference_options()
    assert opts["input_shapes"]["silhouettes"] == [None, 64, 44] and opts["class_names"] == ["001", "002", "003"]


def test_datamodule_shards_under_ddp(prepared):
    from graphfuse.data.gait.datamodule import GaitDataModule

    dm = GaitDataModule(str(prepared), p=2, k=4, iterations_per_epoch=2)
    shards = [[i for i, _ in dm.train_sampler(rank=r, world_size=2)] for r in range(2)]
    whole = [i for i, _ in dm.train_sampler(rank=0, world_size=1)]
    assert len(shards[0]) == len(shards[1]) == 8
    for b in range(2):
        rebuilt = np.empty(8, np.int64)
        rebuilt[0::2], rebuilt[1::2] = shards[0][b * 4:(b + 1) * 4], shards[1][b * 4:(b + 1) * 4]
        assert rebuilt.tolist() == whole[b * 8:(b + 1) * 8]


def test_missing_data_names_the_prepare_command(tmp_path):
    from graphfuse.data.gait.datamodule import GaitDataModule

    with pytest.raises(FileNotFoundError, match="graphfuse prepare casia-b --root"):
        _ = GaitDataModule(str(tmp_path / "casia-b-64")).meta
    with pytest.raises(FileNotFoundError, match="graphfuse prepare synthetic-casia-b --out"):
        GaitDataModule(str(tmp_path / "synthetic-casia-b")).setup("fit")
    with pytest.raises(FileNotFoundError, match="graphfuse prepare oumvlp"):
        _ = GaitDataModule(str(tmp_path / "oumvlp")).meta
    with pytest.raises(ValueError, match="frame_sampling"):
        GaitDataModule(str(tmp_path), frame_sampling="all_ordered")
