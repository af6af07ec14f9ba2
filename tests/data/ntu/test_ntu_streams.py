"""Several streams per batch (``SkeletonDataModule(streams=[...])``, the skeleton two-stream
network's input): keys, values derived as the single-stream path derives them, the same
frames for every stream, the single-stream path unchanged, and the checkpoint data options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _prepared import write_prepared as _write_prepared

from graphfuse.data.ntu.datamodule import SkeletonDataModule
from graphfuse.data.ntu.dataset import SkeletonDataset
from graphfuse.data.ntu.streams import bone, compute_stream
from graphfuse.data.ntu.transforms import UniformSample

C, T, V, M = 3, 300, 25, 2


def write_prepared(root: Path, **kw) -> dict[str, np.ndarray]:
    return _write_prepared(root, n_train=20, n_test=6, num_class=4, name=lambda split, i: f"{split}{i:03d}",
                           num_frames=lambda i: 30 + 13 * i, **kw)


def test_joint_and_bone_batches(tmp_path: Path) -> None:
    arrays = write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), streams=["joint", "bone"], batch_size=4, clip_len=8,
                            val_fraction=0.2)
    dm.setup("fit")
    names = dm.split_names("fit")
    for batch in dm.train_dataloader():
        assert set(batch) == {"joint", "bone", "target", "id"}
        assert batch["joint"].shape == batch["bone"].shape == (4, C, 8, V, M)
        # random training frames, the same for both streams: a bone is joint minus parent in
        # one frame, so it commutes with frame sampling and bone(batch joint) is batch bone
        torch.testing.assert_close(batch["bone"], torch.from_numpy(bone(batch["joint"].numpy())), rtol=0, atol=0)
        for k, i in enumerate(batch["id"].tolist()):
            row = int(names[i][5:])
            assert int(batch["target"][k]) == row % 4
            stored = arrays["train"][row]  # every sampled frame is one of the stored ones
            frames = [int(np.flatnonzero((stored == f[:, None]).all(axis=(0, 2, 3)))[0])
                      for f in batch["joint"][k].numpy().transpose(1, 0, 2, 3)]
            np.testing.assert_array_equal(batch["joint"][k].numpy(), stored[:, frames])
    # evaluation: PYSKL test-mode frames of the whole-sequence streams
    test = next(iter(dm.test_dataloader()))
    i = int(test["id"][1])
    frames = UniformSample(8, test_mode=True).frame_indices(30 + 13 * i)
    for stream in ("joint", "bone"):
        want = compute_stream(arrays["test"][i], stream)[:, frames]
        np.testing.assert_allclose(test[stream][1].numpy(), want, rtol=0, atol=1e-6)


def test_single_stream_path_is_unchanged(tmp_path: Path) -> None:
    write_prepared(tmp_path / "d")
    one = SkeletonDataset(tmp_path / "d", "test", "bone")
    two = SkeletonDataset(tmp_path / "d", "test", streams=["bone", "joint_motion"])
    a, b = one[3], two[3]
    assert set(a) == {"x", "target", "id"} and set(b) == {"bone", "joint_motion", "target", "id"}
    assert torch.equal(a["x"], b["bone"]) and torch.equal(a["target"], b["target"]) and torch.equal(a["id"], b["id"])
    assert torch.equal(SkeletonDataset(tmp_path / "d", "test", "joint_motion")[3]["x"], b["joint_motion"])
    assert "streams=['bone', 'joint_motion']" in repr(two)


def test_streams_from_several_stored_files(tmp_path: Path) -> None:
    """A stored bone array (official arrays registered with ``ntu-official``) is read, not derived."""
    root = tmp_path / "d"
    root.mkdir()
    stored = np.random.default_rng(1).standard_normal((6, C, T, V, M)).astype(np.float32)
    np.save(root / "test_bone.npy", stored)
    write_prepared(root, extra_files={("test", "bone"): "test_bone.npy"})
    ds = SkeletonDataset(root, "test", streams=["joint", "bone", "bone_motion"])
    item = ds[2]
    np.testing.assert_array_equal(item["bone"].numpy(), stored[2])
    np.testing.assert_array_equal(item["bone_motion"].numpy(), compute_stream(stored[2], "joint_motion"))


def test_nan_in_one_stream_names_the_sample_and_file(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    stored = np.zeros((6, C, T, V, M), np.float32)
    np.save(root / "test_bone.npy", stored)
    write_prepared(root, extra_files={("test", "bone"): "test_bone.npy"})
    stored[4, 0, 7, 3, 0] = np.nan  # damaged after `graphfuse check`
    np.save(root / "test_bone.npy", stored)
    ds = SkeletonDataset(root, "test", streams=["joint", "bone"])
    ds[3]
    with pytest.raises(ValueError, match=r"sample 'test004' \(row 4 of .*test_bone\.npy\) holds 1 NaN"):
        ds[4]


def test_inference_options_and_invalid_streams(tmp_path: Path) -> None:
    write_prepared(tmp_path / "d")
    dm = SkeletonDataModule(str(tmp_path / "d"), streams=["joint", "bone"], clip_len=16)
    dm.setup("test")
    opts = dm.inference_options()
    assert opts["stream"] is None and opts["streams"] == ["joint", "bone"]
    assert opts["input_names"] == ["joint", "bone"]
    assert opts["input_shapes"] == {"joint": [3, 16, 25, 2], "bone": [3, 16, 25, 2]}
    single = SkeletonDataModule(str(tmp_path / "d"), stream="bone")
    single.setup("test")
    assert single.inference_options()["input_names"] == ["x"] and single.inference_options()["streams"] is None
    for bad in (["joint", "joint"], [], ["rgb"]):
        with pytest.raises(ValueError, match="streams"):
            SkeletonDataModule(str(tmp_path / "d"), streams=bad)
        with pytest.raises(ValueError, match="streams"):
            SkeletonDataset(tmp_path / "d", "test", streams=bad)
