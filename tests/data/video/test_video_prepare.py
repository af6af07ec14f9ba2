"""graphfuse prepare ucf101 on synthetic UCF101-format videos: layout, meta.json, flow JPEGs,
resuming, registered flow folders, and bad input (missing / unreadable videos) named in errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from graphfuse.data.video.decode import decode_video
from graphfuse.data.video.flow import TVL1_FAST, compute_quantized_flow
from graphfuse.data.video.prepare import prepare_video_dataset
from graphfuse.io import read_json


def _small_raw(src: Path, dest: Path, keep: int = 1) -> Path:
    """A copy of the download whose lists keep the first ``keep`` train and test videos."""
    shutil.copytree(src, dest)
    lists = dest / "ucfTrainTestlist"
    for name in ("trainlist01.txt", "testlist01.txt"):
        lines = (lists / name).read_bytes().split(b"\r\n")
        (lists / name).write_bytes(b"\r\n".join(lines[:keep]) + b"\r\n")
    return dest


def test_layout_and_meta(prepared_video, video_raw):
    meta = read_json(prepared_video / "meta.json")
    assert meta["format"] == "graphfuse-video" and meta["dataset"] == "synthetic-ucf101" and meta["split"] == 1
    assert meta["class_names"] == ["SlideRightStripes", "SlideRightDots", "SpinClockwiseStripes"]
    assert meta["counts"]["train"] == {"total": 12, "per_class": [4, 4, 4]}  # groups 2-3 of 3
    assert meta["counts"]["test"] == {"total": 6, "per_class": [2, 2, 2]}  # group 1
    assert meta["value_check"]["result"] == "passed" and meta["skipped"] == []
    assert meta["flow"]["source"] == "tvl1" and meta["flow"]["bound"] == 20.0 and meta["flow"]["dir"] == "flow"
    tr = meta["splits"]["train"]
    assert tr["groups"][:2] == ["g02", "g02"] and set(tr["labels"]) == {0, 1, 2}
    for i, video in enumerate(tr["videos"][:3]):
        n = tr["num_frames"][i]
        assert 16 <= n <= 18 and tr["num_flow"][i] == n - 1 and tr["length"][i] == n - 1
        assert (tr["width"][i], tr["height"][i]) == (40, 40)
        assert len(list((prepared_video / "frames" / video).glob("*.jpg"))) == n
        assert len(list((prepared_video / "flow" / "u" / video).glob("*.jpg"))) == n - 1
        assert (prepared_video / "flow" / "v" / video / f"frame{n - 1:06d}.jpg").is_file()
        assert (prepared_video / "done" / f"{video}.json").is_file()


def test_stored_frames_and_flow_match_the_decoder(prepared_video, video_raw):
    meta = read_json(prepared_video / "meta.json")
    video = meta["splits"]["test"]["videos"][0]
    cls = video.split("_")[1]
    frames = decode_video(video_raw / "UCF-101" / cls / f"{video}.avi", size=None)
    stored = cv2.imread(str(prepared_video / "frames" / video / "frame000003.jpg"))[..., ::-1]
    assert np.abs(stored.astype(int) - frames[2].astype(int)).mean() < 4  # JPEG quality 95
    u, v, _ = compute_quantized_flow(frames, TVL1_FAST)
    for name, q in (("u", u), ("v", v)):
        img = cv2.imread(str(prepared_video / "flow" / name / video / "frame000002.jpg"), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (40, 40)
        assert np.abs(img.astype(int) - q[1].astype(int)).mean() < 2  # flow k=2: frames 2 -> 3


def test_resume_skips_done_videos_and_redoes_interrupted_ones(prepared_video, video_raw, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared_video, out)
    meta = read_json(out / "meta.json")
    victim = meta["splits"]["train"]["videos"][0]
    (out / "done" / f"{victim}.json").unlink()  # killed before its marker: partial output stays
    (out / "flow" / "u" / victim / "frame000001.jpg").unlink()
    marker = out / "done" / f"{meta['splits']['train']['videos'][1]}.json"
    before = marker.stat().st_mtime_ns
    again = prepare_video_dataset("ucf101", video_raw, out, size=None, tvl1=TVL1_FAST, jobs=1, progress=False,
                                  label="synthetic-ucf101")
    assert marker.stat().st_mtime_ns == before  # not redone
    assert (out / "done" / f"{victim}.json").is_file() and (out / "flow" / "u" / victim / "frame000001.jpg").is_file()
    assert again["splits"] == meta["splits"]
    with pytest.raises(ValueError, match="settings.json.*other settings"):
        prepare_video_dataset("ucf101", video_raw, out, size=32, tvl1=TVL1_FAST, jobs=1, progress=False)


def test_register_precomputed_flow(prepared_video, video_raw, tmp_path):
    raw = _small_raw(video_raw, tmp_path / "raw")
    meta = prepare_video_dataset("ucf101", raw, tmp_path / "out", size=None, flow=str(prepared_video / "flow"),
                                 jobs=1, progress=False)
    assert meta["flow"]["source"] == "registered" and Path(meta["flow"]["dir"]) == (prepared_video / "flow").resolve()
    assert not (tmp_path / "out" / "flow").exists()
    tr = meta["splits"]["train"]
    assert tr["num_flow"][0] == tr["num_frames"][0] - 1
    with pytest.raises(ValueError, match="flow image is 40x40, the RGB frames are 56x56"):
        prepare_video_dataset("ucf101", raw, tmp_path / "out56", size=56, flow=str(prepared_video / "flow"),
                              jobs=1, progress=False)


def test_missing_and_unreadable_videos(video_raw, tmp_path):
    raw = _small_raw(video_raw, tmp_path / "raw", keep=2)
    lists = (raw / "ucfTrainTestlist" / "trainlist01.txt").read_text().split()
    missing = raw / "UCF-101" / lists[0]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"{missing.name}: video listed in the split files"):
        prepare_video_dataset("ucf101", raw, tmp_path / "a", size=None, flow="none", jobs=1, progress=False)
    meta = prepare_video_dataset("ucf101", raw, tmp_path / "b", size=None, flow="none", jobs=1, progress=False,
                                 skip_bad=True)
    assert [s["video"] for s in meta["skipped"]] == [missing.stem] and meta["counts"]["train"]["total"] == 1
    assert meta["flow"]["source"] == "none" and meta["splits"]["train"]["length"][0] == \
        meta["splits"]["train"]["num_frames"][0] - 1
    shutil.copy(video_raw / "UCF-101" / lists[0], missing)
    broken = raw / "UCF-101" / lists[2]
    broken.write_bytes(b"RIFF" + b"\x01" * 300)
    with pytest.raises(ValueError, match=broken.name):
        prepare_video_dataset("ucf101", raw, tmp_path / "c", size=None, flow="none", jobs=1, progress=False,
                              splits=raw / "ucfTrainTestlist")
    meta = prepare_video_dataset("ucf101", raw, tmp_path / "d", size=None, flow="none", jobs=1, progress=False,
                                 skip_bad=True)
    assert [s["video"] for s in meta["skipped"]] == [broken.stem] and meta["counts"]["train"]["total"] == 1


def test_case_insensitive_lookup_and_missing_split_files(video_raw, tmp_path):
    raw = _small_raw(video_raw, tmp_path / "raw")
    rel = (raw / "ucfTrainTestlist" / "trainlist01.txt").read_text().split()[0]
    src = raw / "UCF-101" / rel
    src.rename(src.with_name(src.name.replace("SlideRight", "Slideright")))  # as v_HandStandPushups_*
    meta = prepare_video_dataset("ucf101", raw, tmp_path / "out", size=None, flow="none", jobs=1, progress=False)
    assert meta["counts"]["train"]["total"] == 1
    shutil.rmtree(raw / "ucfTrainTestlist")
    with pytest.raises(FileNotFoundError, match="classInd.txt: split files not found"):
        prepare_video_dataset("ucf101", raw, tmp_path / "x", flow="none", progress=False)
