"""NTU preparation: body selection by hand, end-to-end prepare, skip/raise, official import."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from graphfuse.data.ntu import (
    BENCHMARKS,
    EmptySkeletonError,
    SkeletonFormatError,
    import_official,
    import_official_dir,
    load_missing_list,
    make_sequence,
    missing_skeletons,
    pre_normalize,
    prepare_ntu,
    process_file,
    write_skeleton,
)
from graphfuse.graphs import ntu25
from graphfuse.io import UnsafePickleError

OFFSETS = np.stack([np.zeros(25), 0.01 * np.arange(25), np.zeros(25)], axis=1)  # (25, 3): joint spread in y


def _body(point) -> np.ndarray:
    return np.asarray(point, dtype=np.float64) + OFFSETS


def _write(path, num_frames, body_frame, xyz):
    write_skeleton(path, make_sequence(num_frames, np.asarray(body_frame), np.asarray(xyz)))
    return path


# ---- body selection, worked by hand -------------------------------------------------------

def test_process_file_hand_worked(tmp_path):
    """3 frames. Frame 0: A, B; frame 1: B alone (so B is in slot 0); frame 2: A, B.

    Joint v of a body at point p is p + (0, 0.01 v, 0). A = (0,0,3) always; B = (1,0,3),
    (2,0,3), (3,0,3). Slot 0 holds A, B, A: x values {0, 2, 0} -> std sqrt(8/9) = 0.943.
    Slot 1 holds B, -, B: x values {1, 3} -> std 1. Both have the same y std (joint spread)
    and z std 0, so slot 1 has the higher energy and comes first.
    """
    A, B = (0, 0, 3), (1, 0, 3)
    xyz = [_body(A), _body(B), _body((2, 0, 3)), _body(A), _body((3, 0, 3))]
    p = _write(tmp_path / "S001C001P001R001A001.skeleton", 3, [0, 0, 1, 2, 2], xyz)
    data, num_frames = process_file(p)
    assert data.shape == (3, 3, 25, 2) and data.dtype == np.float64 and num_frames == 3
    person0 = data[..., 0].transpose(1, 2, 0)  # (T, V, 3)
    person1 = data[..., 1].transpose(1, 2, 0)
    np.testing.assert_array_equal(person0[0], _body(B))
    np.testing.assert_array_equal(person0[1], 0)
    np.testing.assert_array_equal(person0[2], _body((3, 0, 3)))
    np.testing.assert_array_equal(person1[0], _body(A))
    np.testing.assert_array_equal(person1[1], _body((2, 0, 3)))
    np.testing.assert_array_equal(person1[2], _body(A))

    # Normalised: person 0 keeps its middle gap and frames 3.. repeat frames 0, 1, 2.
    batch = np.zeros((1, 3, 300, 25, 2), np.float32)
    batch[0, :, :3] = data
    out = pre_normalize(batch)[0]
    assert not out[:, 1, :, 0].any() and not out[:, 4, :, 0].any()
    np.testing.assert_array_equal(out[:, 3:6], out[:, 0:3])


def test_tie_goes_to_higher_slot_and_fifth_body_ignored(tmp_path):
    # Body 2 is body 1 mirrored in x: exactly the same energy. The official argsort()[::-1]
    # (numpy's introsort, stable for 4 values) puts the higher slot first.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 25, 3)) + [0.5, 0, 3]
    b = a.copy()
    b[..., 0] *= -1
    big = rng.normal(size=(4, 25, 3)) * 10  # slot 4: ignored although it moves most
    small = [rng.normal(size=(25, 3)) * 1e-3 + [0, 0, 3] for _ in range(2)]
    frames, xyz = [], []
    for t in range(4):
        frames += [t] * 5
        xyz += [a[t], b[t], small[0], small[1], big[t]]
    p = _write(tmp_path / "S001C001P001R001A001.skeleton", 4, frames, xyz)
    data, _ = process_file(p)
    np.testing.assert_array_equal(data[..., 0].transpose(1, 2, 0), b)
    np.testing.assert_array_equal(data[..., 1].transpose(1, 2, 0), a)


def test_long_file_cut_after_selection(tmp_path):
    # 305 frames. Slot 0 is still for 300 frames and moves a lot in the last 5; slot 1 moves a
    # little throughout. Energy over all 305 frames (as the official read_xyz) ranks slot 0 first.
    T = 305
    s0 = np.tile(_body((0, 0, 3)), (T, 1, 1))
    s0[300:, :, 0] += np.arange(5)[:, None] * 3.0
    s1 = _body((1, 0, 3)) + np.linspace(0, 0.2, T)[:, None, None] * [1, 0, 0]
    frames = np.repeat(np.arange(T), 2)
    xyz = np.stack([s0, s1], 1).reshape(-1, 25, 3)
    p = _write(tmp_path / "S001C001P001R001A001.skeleton", T, frames, xyz)
    data, num_frames = process_file(p, max_frame=300)
    assert data.shape == (3, 300, 25, 2) and num_frames == 300
    np.testing.assert_array_equal(data[..., 0].transpose(1, 2, 0), s0[:300])


def test_empty_files(tmp_path):
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_text("2\r\n0\r\n0\r\n")
    with pytest.raises(EmptySkeletonError, match="S001C001P001R001A001.skeleton.*no body in any of its 2 frames"):
        process_file(p)
    _write(p, 2, [0, 1], np.zeros((2, 25, 3)))
    with pytest.raises(EmptySkeletonError, match="all joint coordinates are zero"):
        process_file(p)


# ---- end to end ---------------------------------------------------------------------------

def _raw_dir(tmp_path, performers=(1, 3, 4, 6), actions=(1, 2, 3)):
    rng = np.random.default_rng(7)
    raw = tmp_path / "raw"
    raw.mkdir()
    names = []
    for pf in performers:
        for a in actions:
            T = int(rng.integers(5, 12))
            nb = int(rng.integers(1, 3))
            frames = np.repeat(np.arange(T), nb)
            xyz = rng.normal(size=(T * nb, 25, 3)) * 0.2 + [0, 0, 3]
            name = f"S001C00{1 + a % 3}P{pf:03d}R001A{a:03d}"
            _write(raw / f"{name}.skeleton", T, frames, xyz)
            names.append(name)
    return raw, sorted(names)


def test_prepare_end_to_end(tmp_path):
    raw, names = _raw_dir(tmp_path)
    out = tmp_path / "out"
    meta = prepare_ntu(raw, out, "synthetic-xsub", workers=1, progress=False,
                       write_streams=("bone", "joint_motion", "bone_motion"))
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == meta
    assert set(meta) == {"format_version", "dataset", "benchmark", "num_class", "layout", "max_frame",
                         "num_joint", "num_person", "streams", "splits", "counts", "skipped",
                         "excluded_missing_skeletons", "source", "value_check"}
    assert meta["value_check"]["result"] == "passed" and meta["value_check"]["bounds"] == {"joint_m": [-20.0, 20.0]}
    assert sorted(meta["value_check"]["arrays"]) == sorted(f"{sp}_{s}.npy" for sp in ("train", "test")
                                                           for s in meta["streams"])
    assert meta["format_version"] == 1 and meta["dataset"] == "ntu" and meta["benchmark"] == "synthetic-xsub"
    assert meta["num_class"] == 10 and meta["layout"] == "N C T V M"
    assert (meta["max_frame"], meta["num_joint"], meta["num_person"]) == (300, 25, 2)
    assert meta["streams"] == ["joint", "bone", "joint_motion", "bone_motion"]
    train = [n for n in names if n[9:12] in ("001", "004")]  # performers 1, 4 train; 3, 6 test
    test = [n for n in names if n not in train]
    assert meta["splits"]["train"]["samples"] == train and meta["splits"]["test"]["samples"] == test
    assert meta["splits"]["train"]["labels"] == [int(n[-3:]) - 1 for n in train]
    assert meta["counts"]["train"] == {"samples": 6, "per_class": [2, 2, 2] + [0] * 7}
    assert meta["counts"]["test"]["samples"] == 6
    assert meta["skipped"] == [] and meta["excluded_missing_skeletons"] == 0
    assert meta["splits"]["test"]["files"] == {s: f"test_{s}.npy" for s in meta["streams"]}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["meta.json"] + [f"{sp}_{s}.npy" for sp in ("train", "test") for s in meta["streams"]])

    joint = np.load(out / "train_joint.npy")
    assert joint.shape == (6, 3, 300, 25, 2) and joint.dtype == np.float32
    for i, name in enumerate(train):
        data, nf = process_file(raw / f"{name}.skeleton")
        assert meta["splits"]["train"]["num_frames"][i] == nf == data.shape[1]
        batch = np.zeros((1, 3, 300, 25, 2), np.float32)
        batch[0, :, : data.shape[1]] = data
        np.testing.assert_array_equal(joint[i], pre_normalize(batch)[0])

    bone = np.load(out / "train_bone.npy")
    for child, parent in ntu25.BONE_PAIRS_1BASED:
        np.testing.assert_array_equal(bone[:, :, :, child - 1], joint[:, :, :, child - 1] - joint[:, :, :, parent - 1])
    for stream, src in (("joint_motion", joint), ("bone_motion", bone)):
        m = np.load(out / f"train_{stream}.npy")
        np.testing.assert_array_equal(m[:, :, :299], src[:, :, 1:] - src[:, :, :-1])
        assert not m[:, :, 299].any()

    # The process pool gives the same arrays.
    out2 = tmp_path / "out2"
    meta2 = prepare_ntu(raw, out2, "synthetic-xsub", workers=2, progress=False)
    assert meta2["splits"] == {sp: {**v, "files": {"joint": f"{sp}_joint.npy"}} for sp, v in meta["splits"].items()}
    np.testing.assert_array_equal(np.load(out2 / "test_joint.npy"), np.load(out / "test_joint.npy"))


def test_prepare_skip_and_raise(tmp_path):
    raw, names = _raw_dir(tmp_path)
    good = (raw / f"{names[0]}.skeleton").read_text()
    (raw / "S001C001P003R001A009.skeleton").write_text(good[: len(good) // 2])  # truncated
    (raw / "S001C001P001R001A008.skeleton").write_text("1\r\n0\r\n")             # no body
    (raw / "notes.skeleton").write_text(good)                                   # bad name
    (raw / "readme.txt").write_text("not a skeleton")                           # ignored
    meta = prepare_ntu(raw, tmp_path / "out", "synthetic-xsub", workers=1, progress=False, on_error="skip")
    skipped = {s["file"]: s["reason"] for s in meta["skipped"]}
    assert set(skipped) == {"S001C001P003R001A009.skeleton", "S001C001P001R001A008.skeleton", "notes.skeleton"}
    assert "line" in skipped["S001C001P003R001A009.skeleton"]
    assert "no body" in skipped["S001C001P001R001A008.skeleton"]
    assert "bad NTU sample name" in skipped["notes.skeleton"]
    assert meta["counts"]["train"]["samples"] == 6 and meta["counts"]["test"]["samples"] == 6
    assert np.load(tmp_path / "out" / "train_joint.npy").shape[0] == 6
    assert np.load(tmp_path / "out" / "test_joint.npy").shape[0] == 6

    with pytest.raises(ValueError, match="notes.skeleton"):
        prepare_ntu(raw, tmp_path / "out3", "synthetic-xsub", workers=1, progress=False)
    (raw / "notes.skeleton").unlink()
    # Training files come first: the empty P001 file stops preparation before the truncated P003 one.
    with pytest.raises(EmptySkeletonError, match="S001C001P001R001A008"):
        prepare_ntu(raw, tmp_path / "out3", "synthetic-xsub", workers=1, progress=False)
    assert not list((tmp_path / "out3").glob("*.npy*")) and not (tmp_path / "out3" / "meta.json").exists()
    (raw / "S001C001P001R001A008.skeleton").unlink()
    with pytest.raises(SkeletonFormatError, match="S001C001P003R001A009.skeleton, line"):
        prepare_ntu(raw, tmp_path / "out3", "synthetic-xsub", workers=2, progress=False)
    assert not list((tmp_path / "out3").iterdir())


def test_prepare_scope_missing_list_and_errors(tmp_path):
    raw, names = _raw_dir(tmp_path, performers=(1, 2), actions=(1, 2))
    good = raw / f"{names[0]}.skeleton"
    (raw / "S018C001P001R001A001.skeleton").write_bytes(good.read_bytes())  # NTU120 setup
    (raw / "S001C001P001R001A061.skeleton").write_bytes(good.read_bytes())  # NTU120 action
    meta = prepare_ntu(raw, tmp_path / "o", "ntu60-xsub", workers=1, progress=False, missing_list=[names[1]])
    assert meta["splits"]["train"]["samples"] == [n for n in names if n != names[1]]
    assert meta["excluded_missing_skeletons"] == 1 and meta["num_class"] == 60
    assert len(meta["counts"]["train"]["per_class"]) == 60

    with pytest.raises(FileNotFoundError, match="not found"):
        prepare_ntu(tmp_path / "nope", tmp_path / "o2", "ntu60-xsub", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .skeleton files"):
        prepare_ntu(tmp_path / "empty", tmp_path / "o2", "ntu60-xsub", progress=False)
    with pytest.raises(ValueError, match="unknown NTU benchmark"):
        prepare_ntu(raw, tmp_path / "o2", "ntu61-xsub", progress=False)
    with pytest.raises(ValueError, match="unknown streams"):
        prepare_ntu(raw, tmp_path / "o2", "ntu60-xsub", write_streams=("flow",), progress=False)


def test_missing_lists(tmp_path):
    assert len(missing_skeletons("ntu60-xview")) == 302
    assert len(missing_skeletons("ntu120-xset")) == 535
    assert missing_skeletons("ntu60-xsub") < missing_skeletons("ntu120-xsub")
    assert missing_skeletons("synthetic-xsub") == frozenset()
    p = tmp_path / "list.txt"
    p.write_text("2 of the samples have missing skeletons.\r\nPlease ignore them.\r\n\r\n"
                 "S001C002P005R002A008\r\nS001C002P006R001A008.skeleton\r\n")
    assert load_missing_list(p) == {"S001C002P005R002A008", "S001C002P006R001A008"}
    with pytest.raises(ValueError, match="expected 3"):
        load_missing_list(p, expected=3)
    p.write_text("nothing here\n")
    with pytest.raises(ValueError, match="no NTU sample ids"):
        load_missing_list(p)
    with pytest.raises(ValueError, match="not NTU sample ids"):
        load_missing_list(["S001C002P005R002A008", "junk"])


def test_benchmarks_official_ids():
    b = BENCHMARKS["ntu60-xsub"]
    assert sorted(b.training_ids) == [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38]
    assert len(BENCHMARKS["ntu120-xsub"].training_ids) == 53
    assert BENCHMARKS["ntu120-xsub"].training_ids > b.training_ids
    assert sorted(BENCHMARKS["ntu120-xset"].training_ids) == list(range(2, 33, 2))
    assert BENCHMARKS["ntu60-xview"].split_of("S005C001P020R002A010") == "test"
    assert BENCHMARKS["ntu60-xview"].split_of("S005C003P020R002A010") == "train"
    assert not BENCHMARKS["ntu60-xsub"].in_scope("S018C001P001R001A001")
    assert sorted(BENCHMARKS["synthetic-xsub"].training_ids) == [1, 2, 4, 5, 7, 9]


# ---- official arrays -----------------------------------------------------------------------

def _official(tmp_path, part, names, T=4, labels=None):
    rng = np.random.default_rng(0)
    np.save(tmp_path / f"{part}_data_joint.npy", rng.normal(size=(len(names), 3, T, 25, 2)).astype(np.float32))
    labels = [int(n[-3:]) - 1 for n in names] if labels is None else labels
    with open(tmp_path / f"{part}_label.pkl", "wb") as fh:
        pickle.dump(([n + ".skeleton" for n in names], list(labels)), fh)


def test_import_official(tmp_path):
    train = ["S001C001P001R001A001", "S001C002P002R001A003"]
    test = ["S001C001P003R001A002"]
    _official(tmp_path, "train", train)
    _official(tmp_path, "val", test)
    out = tmp_path / "out"
    meta = import_official(tmp_path / "train_data_joint.npy", tmp_path / "train_label.pkl", out, "train", "synthetic-xsub")
    assert meta["splits"]["train"]["samples"] == train and meta["splits"]["train"]["labels"] == [0, 2]
    assert meta["splits"]["train"]["files"] == {"joint": str((tmp_path / "train_data_joint.npy").resolve())}
    assert meta["splits"]["train"]["num_frames"] == [4, 4] and meta["max_frame"] == 4
    assert meta["splits"]["test"]["samples"] == []
    meta = import_official_dir(tmp_path, out, "synthetic-xsub")
    assert meta["splits"]["test"]["samples"] == test and meta["counts"]["test"]["per_class"][1] == 1
    assert json.loads((out / "meta.json").read_text()) == meta

    _official(tmp_path, "val", test, labels=[5])
    with pytest.raises(ValueError, match="label 5 but its name says action 2"):
        import_official(tmp_path / "val_data_joint.npy", tmp_path / "val_label.pkl", tmp_path / "o2", "val", "synthetic-xsub")
    with pytest.raises(ValueError, match="not in the test split"):
        import_official(tmp_path / "train_data_joint.npy", tmp_path / "train_label.pkl", tmp_path / "o2", "test",
                        "synthetic-xsub")
    _official(tmp_path, "val", test)
    np.save(tmp_path / "val_data_joint.npy", np.zeros((2, 3, 4, 25, 2), np.float32))
    with pytest.raises(ValueError, match="2 samples but the label file lists 1"):
        import_official(tmp_path / "val_data_joint.npy", tmp_path / "val_label.pkl", tmp_path / "o2", "val", "synthetic-xsub")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_import_official_refuses_malicious_pickle(tmp_path):
    np.save(tmp_path / "train_data_joint.npy", np.zeros((1, 3, 4, 25, 2), np.float32))
    with open(tmp_path / "train_label.pkl", "wb") as fh:
        pickle.dump((["S001C001P001R001A001.skeleton"], [0], _Evil()), fh)
    with pytest.raises(UnsafePickleError, match="refusing"):
        import_official(tmp_path / "train_data_joint.npy", tmp_path / "train_label.pkl", tmp_path / "o", "train",
                        "synthetic-xsub")
    assert not (tmp_path / "o" / "meta.json").exists()
