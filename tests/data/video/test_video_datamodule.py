"""VideoDataModule / VideoClipDataset on the prepared synthetic videos: the batch contract
(shapes, u/v interleaving, flips, normalisation), the protocols, hold-out groups, errors."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from graphfuse.data.video import sampling as S
from graphfuse.data.video.datamodule import VideoDataModule, group_holdout
from graphfuse.data.video.dataset import VideoClipDataset
from graphfuse.data.video.flow import dequantize_flow
from graphfuse.io import read_json


def _dm(path, **kw):
    kw.setdefault("crop_size", 32)
    kw.setdefault("batch_size", 3)
    return VideoDataModule(str(path), **kw)


def test_batches_follow_the_contract(prepared_video):
    dm = _dm(prepared_video, eval_batch_size=2)
    dm.setup("fit")
    dm.setup("test")
    b = next(iter(dm.train_dataloader()))
    assert set(b) == {"rgb", "flow", "target", "id"}
    assert b["rgb"].shape == (3, 3, 5, 32, 32) and b["flow"].shape == (3, 20, 5, 32, 32)
    assert b["rgb"].dtype == b["flow"].dtype == torch.float32 and b["target"].dtype == b["id"].dtype == torch.int64
    v = next(iter(dm.val_dataloader()))
    assert v["rgb"].shape == (2, 3, 5, 32, 32) and v["flow"].shape == (2, 20, 5, 32, 32)
    t = next(iter(dm.test_dataloader()))  # released: 10 clips x (frame, flip) on the whole 40x40 frame
    assert t["rgb"].shape == (2, 20, 3, 5, 40, 40) and t["flow"].shape == (2, 20, 20, 5, 40, 40)
    assert t["target"].shape == (2,) and t["id"].tolist() == [0, 1]
    assert dm.split_names("test")[:2] == read_json(prepared_video / "meta.json")["splits"]["test"]["videos"][:2]
    dm2 = _dm(prepared_video, test_protocol="25x10", streams=("flow",), num_frames=5)
    dm2.setup("test")
    t2 = dm2.dataset("test")[0]
    assert set(t2) == {"flow", "target", "id"} and t2["flow"].shape == (50, 20, 5, 32, 32)
    assert dm.inference_options()["input_shapes"] == {"rgb": [3, 5, 32, 32], "flow": [20, 5, 32, 32]}
    assert dm.num_class == 3


def test_flow_channels_interleave_u_and_v(prepared_video):
    meta = read_json(prepared_video / "meta.json")
    ds = VideoClipDataset(prepared_video, meta, "test", protocol="center", crop_size=40, normalization="pixels")
    item = ds[0]
    video, n = ds.names[0], int(meta["splits"]["test"]["length"][0])
    clip = S.center_samples(n, 5, 10, 10)
    ids = S.flow_indices(clip, n, 10)  # (T, L)
    for t in (0, 4):
        for k in (0, 9):
            for c, name in ((2 * k, "u"), (2 * k + 1, "v")):
                img = cv2.imread(str(prepared_video / "flow" / name / video / f"frame{ids[t, k]:06d}.jpg"), 0)
                assert torch.allclose(item["flow"][c, t], torch.from_numpy(dequantize_flow(img)), atol=1e-5)
    rgb = cv2.imread(str(prepared_video / "frames" / video / f"frame{clip[2]:06d}.jpg"))[..., ::-1]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expect = ((rgb / 255.0 - mean) / std).transpose(2, 0, 1)
    assert np.allclose(item["rgb"][:, 2].numpy(), expect, atol=1e-5)


def test_released_flip_views_negate_u(prepared_video):
    meta = read_json(prepared_video / "meta.json")
    ds = VideoClipDataset(prepared_video, meta, "test", protocol="released", normalization="pixels")
    x = ds[1]
    rgb, flow = x["rgb"], x["flow"]  # (20, C, T, H, W): clip j at views 2j (frame) and 2j+1 (flip)
    assert torch.equal(rgb[1], rgb[0].flip(-1))
    assert torch.allclose(flow[3, 0::2], -flow[2, 0::2].flip(-1), atol=1e-5)  # u: 255 - q = -f exactly
    assert torch.equal(flow[3, 1::2], flow[2, 1::2].flip(-1))
    assert not torch.equal(flow[0], flow[2])  # different clips
    m = VideoClipDataset(prepared_video, meta, "test", protocol="center", crop_size=40, normalization="matconvnet")[1]
    p = VideoClipDataset(prepared_video, meta, "test", protocol="center", crop_size=40, normalization="pixels")[1]
    assert torch.allclose(p["flow"], (m["flow"] + 128) * 40 / 255 - 20, atol=1e-4)  # q - 128 vs dequantised
    i = VideoClipDataset(prepared_video, meta, "test", protocol="center", crop_size=40)[1]
    assert torch.allclose(i["flow"], m["flow"] / (255 * 0.226), atol=1e-5)


def test_training_items_are_seeded(prepared_video):
    meta = read_json(prepared_video / "meta.json")
    ds = VideoClipDataset(prepared_video, meta, "train", crop_size=24)
    a, b, c = ds[(2, 7)], ds[(2, 7)], ds[(2, 8)]
    assert torch.equal(a["flow"], b["flow"]) and torch.equal(a["rgb"], b["rgb"])
    assert not torch.equal(a["rgb"], c["rgb"])
    assert a["rgb"].shape == (3, 5, 24, 24) and torch.isfinite(a["flow"]).all()


def test_group_holdout():
    groups = ["g08"] * 3 + ["g09"] * 2 + ["g10"] * 4 + ["g11"]
    tr, va = group_holdout(np.zeros(10), groups, 0.5, seed=0)
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).tolist() == list(range(10))
    held = {groups[i] for i in va}
    assert len(held) == 2 and held.isdisjoint({groups[i] for i in tr})
    assert np.array_equal(group_holdout(np.zeros(10), groups, 0.5, seed=0)[1], va)
    with pytest.raises(ValueError, match="two groups"):
        group_holdout(np.zeros(2), ["g1", "g1"], 0.5, 0)


def test_holdout_of_the_datamodule(prepared_video):
    dm = _dm(prepared_video)
    dm.setup("fit")
    tr, va = dm.dataset("train"), dm.dataset("val")
    assert len(tr) + len(va) == 12 and set(tr.names).isdisjoint(va.names)
    dm_t = _dm(prepared_video, val_source="test")
    dm_t.setup("fit")
    assert len(dm_t.dataset("train")) == 12 and len(dm_t.dataset("val")) == 6


def test_missing_data_and_wrong_split(tmp_path, prepared_video):
    dm = _dm(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="graphfuse prepare ucf101") as ei:
        dm.setup("fit")
    assert "synthetic-ucf101" in str(ei.value)
    with pytest.raises(ValueError, match="holds split 1, the config asks for split 2"):
        _dm(prepared_video, split=2).setup("fit")
    with pytest.raises(ValueError, match="streams"):
        _dm(prepared_video, streams=("depth",))


def test_missing_frame_names_the_file(prepared_video, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(prepared_video, out)
    meta = read_json(out / "meta.json")
    video = meta["splits"]["test"]["videos"][0]
    for f in (out / "frames" / video).glob("*.jpg"):
        f.unlink()
    ds = VideoClipDataset(out, meta, "test", protocol="center", crop_size=32)
    with pytest.raises(FileNotFoundError, match=f"{video}/frame0000"):
        ds[0]
    ds_flow = VideoClipDataset(out, meta, "test", streams=("flow",), protocol="center", crop_size=32)
    assert ds_flow[0]["flow"].shape == (20, 5, 32, 32)
