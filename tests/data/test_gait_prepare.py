"""Gait preparation: the prepared folder (the gait contract), PNG and pickle routes bit for bit,
partitions and --exclude, bad input, OU-MVLP's two layouts, the CLI, GaitSequences' checks."""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.gait.prepare import (
    add_casia_b_arguments,
    add_oumvlp_arguments,
    oumvlp_partition,
    prepare_casia_b,
    prepare_oumvlp,
    run_casia_b,
    run_oumvlp,
    write_prepared,
)
from graphfuse.data.gait.pretreat import pretreat_frames
from graphfuse.data.gait.readers import GaitDataError, list_casia_b, read_png_sequence
from graphfuse.data.gait.sequences import GaitSequences

FIXTURE = Path(__file__).parent / "gait" / "casia-b"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gait") / "prepared"
    return out, prepare_casia_b(FIXTURE, out, workers=1)


def _copy(tmp_path: Path, name: str = "casia") -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURE, root)
    return root


def test_prepared_folder_follows_the_contract(prepared):
    out, meta = prepared
    assert sorted(p.name for p in out.iterdir()) == ["frames.npy", "meta.json", "offsets.npy"]
    assert json.loads((out / "meta.json").read_text()) == meta
    assert meta["format"] == "graphfuse-gait" and meta["version"] == 1
    assert meta["dataset"] == "casia-b" and meta["protocol"] == "casia-b" and meta["size"] == 64
    assert meta["sequences"] == {"id": ["001", "001", "075", "075"], "type": ["nm-01"] * 4,
                                 "view": ["000", "090", "000", "090"], "frames": [4, 3, 4, 4]}
    assert meta["num_sequences"] == 4 and meta["num_frames"] == 15
    assert meta["partition"] == {"train": ["001"], "test": ["075"]} and meta["num_class"] == 1
    assert meta["excluded"] == [] and meta["skipped"] == [] and meta["empty_sequences"] == []
    assert [s["frames"] for s in meta["short_sequences"]] == [4, 3, 4, 4]  # < 5 frames: kept, listed
    pre = meta["pretreatment"]
    assert pre["source"] == "png" and pre["pixel_threshold"] == 10000 and pre["side_cut"] == 10
    assert pre["interpolation"] == "cv2.INTER_CUBIC" and pre["dropped_frames"] == 1
    assert meta["value_check"]["result"] == "passed"
    frames = np.load(out / "frames.npy", mmap_mode="r")
    assert frames.dtype == np.uint8 and frames.shape == (15, 64, 64)
    assert np.load(out / "offsets.npy").tolist() == [0, 4, 7, 11, 15]


def test_prepared_frames_are_the_pretreated_pngs(prepared):
    out, _ = prepared
    seqs = GaitSequences(out)
    for i, src in enumerate(list_casia_b(FIXTURE)[0]):
        frames, names, _ = read_png_sequence(src)
        np.testing.assert_array_equal(seqs.frames(i), pretreat_frames(frames, 64, names).frames)


def test_gait_sequences_accessor(prepared):
    out, _meta = prepared
    seqs = GaitSequences(out)
    assert len(seqs) == 4 and seqs.size == 64 and seqs.num_class == 1
    assert seqs.ids.tolist() == ["001", "001", "075", "075"] and seqs.views.tolist()[1] == "090"
    assert seqs.lengths.tolist() == [4, 3, 4, 4] and seqs.lengths.dtype == np.int64
    assert seqs.split_indices("train").tolist() == [0, 1] and seqs.split_indices("test").tolist() == [2, 3]
    assert seqs.targets().tolist() == [0, 0, -1, -1]
    assert seqs.where(view="090").tolist() == [1, 3]
    assert seqs.frames(-1).shape == (4, 64, 64) and not seqs.frames(0).flags.writeable
    with pytest.raises(IndexError):
        seqs.frames(4)
    with pytest.raises(ValueError, match="split"):
        seqs.split_indices("val")


def test_png_and_opengait_pickle_routes_are_identical(tmp_path, prepared):
    # the pickles OpenGait's pretreatment would write for the same sequences
    pkl_root = tmp_path / "pkl"
    for src in list_casia_b(FIXTURE)[0]:
        frames, names, _ = read_png_sequence(src)
        d = pkl_root.joinpath(*src.key)
        d.mkdir(parents=True)
        with open(d / f"{src.view}.pkl", "wb") as fh:
            pickle.dump(pretreat_frames(frames, 64, names).frames, fh)  # OpenGait: pickle.dump(uint8 array)
    meta = prepare_casia_b(pkl_root, tmp_path / "from-pkl", workers=1)
    out, png_meta = prepared
    assert meta["pretreatment"]["source"] == "opengait-pkl"
    for name in ("frames.npy", "offsets.npy"):
        a, b = np.load(out / name), np.load(tmp_path / "from-pkl" / name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert meta["sequences"] == png_meta["sequences"] and meta["partition"] == png_meta["partition"]
    with pytest.raises(GaitDataError, match="--size 64"):
        prepare_casia_b(pkl_root, tmp_path / "x", size=128, workers=1)


def test_exclude_005_and_partitions(tmp_path):
    root = _copy(tmp_path)
    shutil.copytree(root / "001", root / "005")
    meta = prepare_casia_b(root, tmp_path / "out", exclude=["5"], workers=1)
    assert meta["excluded"] == ["005"] and "005" not in meta["sequences"]["id"]
    assert meta["partition"]["train"] == ["001"]
    meta = prepare_casia_b(root, tmp_path / "out", workers=1)  # OpenGait: 005 trains
    assert meta["partition"]["train"] == ["001", "005"] and meta["num_class"] == 2
    meta = prepare_casia_b(root, tmp_path / "out", partition={"train": ["075"], "test": ["001"]}, workers=1)
    assert meta["partition"] == {"train": ["075"], "test": ["001"]} and meta["not_in_partition"] == ["005"]
    assert set(meta["sequences"]["id"]) == {"001", "075"}
    with pytest.raises(ValueError, match="both"):
        prepare_casia_b(root, tmp_path / "out", partition={"train": ["001"], "test": ["001"]}, workers=1)


def test_empty_sequence_after_threshold_is_an_error_or_a_listed_skip(tmp_path):
    root = _copy(tmp_path)
    seq = root / "075" / "nm-01" / "090"
    for f in seq.glob("*.png"):
        shutil.copy(FIXTURE / "001" / "nm-01" / "090" / "001-nm-01-090-001.png", f)  # all under threshold
    with pytest.raises(GaitDataError, match=f"{seq}: empty sequence: all 4 frames dropped"):
        prepare_casia_b(root, tmp_path / "out", workers=1)
    assert not (tmp_path / "out" / "meta.json").exists()
    assert not list((tmp_path / "out").glob(".frames.npy.*"))  # the temporary was removed
    meta = prepare_casia_b(root, tmp_path / "out", skip_bad=True, workers=1)
    assert meta["num_sequences"] == 3
    assert meta["empty_sequences"] == [{"id": "075", "type": "nm-01", "view": "090", "path": str(seq),
                                        "frames_read": 4}]
    assert meta["skipped"][0]["path"] == str(seq) and meta["pretreatment"]["dropped_frames"] == 5
    GaitSequences(tmp_path / "out")


def test_bad_png_and_bad_folder_with_skip_bad(tmp_path):
    root = _copy(tmp_path)
    bad = root / "075" / "nm-01" / "000" / "075-nm-01-000-003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "001" / "walk").mkdir()
    with pytest.raises(GaitDataError, match="walk"):
        prepare_casia_b(root, tmp_path / "out", workers=1)
    meta = prepare_casia_b(root, tmp_path / "out", skip_bad=True, workers=1)
    assert sorted(s["path"] for s in meta["skipped"]) == sorted([str(root / "001" / "walk"), str(bad)])
    assert meta["sequences"]["frames"] == [4, 3, 3, 4]
    (root / "001" / "walk").rmdir()
    with pytest.raises(GaitDataError, match=str(bad)):
        prepare_casia_b(root, tmp_path / "out", workers=1)


def test_worker_pool_gives_the_same_folder(tmp_path, prepared):
    out, meta = prepared
    meta2 = prepare_casia_b(FIXTURE, tmp_path / "pool", workers=2)
    assert meta2["sequences"] == meta["sequences"]
    assert np.load(tmp_path / "pool" / "frames.npy").tobytes() == np.load(out / "frames.npy").tobytes()


def test_oumvlp_both_layouts_prepare_identically(tmp_path):
    frames = sorted((FIXTURE / "075" / "nm-01" / "090").glob("*.png"))
    dist, rear = tmp_path / "dist", tmp_path / "rear"
    for sid in ("00001", "00002", "10307"):
        for seq in ("00", "01"):
            for view in ("015", "180"):
                for d in (dist / f"Silhouette_{view}-{seq}" / sid, rear / sid / seq / view):
                    d.mkdir(parents=True)
                    for k, f in enumerate(frames[: 1 + int(seq) + int(sid[-1])]):
                        shutil.copy(f, d / f"{k + 1:04d}.png")
    a = prepare_oumvlp(dist, tmp_path / "a", workers=1)
    b = prepare_oumvlp(rear, tmp_path / "b", layout="opengait", workers=1)
    assert a["sequences"] == b["sequences"] and a["num_sequences"] == 12
    assert a["sequences"]["type"][:4] == ["00", "00", "01", "01"]
    assert a["partition"] == {"train": ["00001"], "test": ["00002", "10307"]}
    assert a["protocol"] == "oumvlp" and a["dataset"] == "oumvlp"
    assert np.load(tmp_path / "a" / "frames.npy").tobytes() == np.load(tmp_path / "b" / "frames.npy").tobytes()


def test_oumvlp_partition_as_opengait_json():
    ids = [f"{i:05d}" for i in range(1, 10308)]
    part = oumvlp_partition(ids)
    assert len(part["train"]) == 5153 and len(part["test"]) == 5154  # OpenGait's OUMVLP.json
    assert part["train"][-1] == "10305" and part["test"][-1] == "10307" and part["test"][0] == "00002"


def test_cli_functions(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_casia_b_arguments(parser)
    args = parser.parse_args(["--root", str(FIXTURE), "--out", str(tmp_path / "c"), "--exclude", "075",
                              "--workers", "1"])
    run_casia_b(args)
    out = capsys.readouterr().out
    assert "casia-b: 2 sequences, 7 frames of 64x64" in out
    assert "dropped frames: 1" in out and "short sequences (< 5 frames, kept): 2" in out and "skipped: 0" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["--root", "r", "--out", "o", "--size", "96"])
    parser = argparse.ArgumentParser()
    add_oumvlp_arguments(parser)
    args = parser.parse_args(["--root", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--layout", "opengait"])
    with pytest.raises(FileNotFoundError, match="none"):
        run_oumvlp(args)


def test_write_prepared_sorts_and_checks(tmp_path):
    a = np.full((2, 64, 64), 1, np.uint8)
    b = np.full((1, 64, 64), 2, np.uint8)
    meta = write_prepared(tmp_path / "w", [a, b], ["080", "002"], ["nm-01", "cl-01"], ["000", "018"],
                          dataset="synthetic-casia-b")
    seqs = GaitSequences(tmp_path / "w")
    assert seqs.ids.tolist() == ["002", "080"] and seqs.frames(0).max() == 2 and seqs.lengths.tolist() == [1, 2]
    assert meta["partition"] == {"train": ["002"], "test": ["080"]} and meta["dataset"] == "synthetic-casia-b"
    with pytest.raises(ValueError, match="uint8"):
        write_prepared(tmp_path / "x", [a.astype(np.float32)], ["001"], ["nm-01"], ["000"])
    with pytest.raises(ValueError, match="twice"):
        write_prepared(tmp_path / "x", [a, b], ["001", "001"], ["nm-01"] * 2, ["000"] * 2)


def test_gait_sequences_refuses_inconsistent_folders(tmp_path, prepared):
    src, _ = prepared

    def broken(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(src, d)
        return d

    d = broken("no-frames")
    (d / "frames.npy").unlink()
    with pytest.raises(FileNotFoundError, match="frames.npy is missing"):
        GaitSequences(d)
    d = broken("offsets")
    np.save(d / "offsets.npy", np.array([0, 4, 8, 11, 15], np.int64))
    with pytest.raises(ValueError, match="offsets.npy.*090.*3"):
        GaitSequences(d)
    d = broken("dtype")
    np.save(d / "frames.npy", np.load(d / "frames.npy").astype(np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        GaitSequences(d)
    d = broken("count")
    meta = json.loads((d / "meta.json").read_text())
    meta["num_frames"] = 14
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="15 frames, meta.json says num_frames=14"):
        GaitSequences(d)
    meta["format"] = "graphfuse-ntu"
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format"):
        GaitSequences(d)
    d = broken("corrupt")
    (d / "frames.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="frames.npy is not a readable"):
        GaitSequences(d)
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        GaitSequences(tmp_path)


@pytest.mark.parametrize("bound,written", [(100, 7), (100000, 3), (5, 5)])
def test_frame_writer_cuts_the_unused_tail_in_place(tmp_path, bound, written):
    from graphfuse.data.gait.prepare import _FrameWriter

    data = np.random.default_rng(0).integers(0, 256, (written, 8, 8), dtype=np.uint8)
    with _FrameWriter(tmp_path, bound, 8) as w:
        w.append(data[:2], "a")
        w.append(data[2:], "b")
        offsets = w.finish()
    arr = np.load(tmp_path / "frames.npy", mmap_mode="r")
    assert arr.shape == (written, 8, 8) and np.array_equal(arr, data) and offsets.tolist() == [0, 2, written]
    assert (tmp_path / "frames.npy").stat().st_size == arr.offset + data.nbytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.npy", "offsets.npy"]
    with pytest.raises(ValueError, match="bound"), _FrameWriter(tmp_path / "x", 1, 8) as w:
        w.append(data[:2], "seq")
    assert not list((tmp_path / "x").iterdir())  # the temporary is gone
