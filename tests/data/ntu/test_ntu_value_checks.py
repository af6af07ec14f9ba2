"""Value checks of NTU data: float32 range and plausibility bounds at preparation, and
``graphfuse check`` / the datamodule's refusal of unchecked folders at load."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from _prepared import write_prepared
from graphfuse.cli import main
from graphfuse.data.ntu.datamodule import SkeletonDataModule
from graphfuse.data.ntu import import_official_dir, make_sequence, prepare_ntu, write_skeleton

NAMES = ["S001C001P001R001A001", "S001C001P001R001A002", "S001C002P002R001A001",  # train (P1, P2)
         "S001C001P003R001A001", "S001C003P003R001A002"]                           # test (P3)
BAD = NAMES[1]


def _raw(tmp_path: Path, bad_value: float | None = None, axis: int = 0) -> Path:
    """Five plausible files (bodies about 3 m in front of the sensor); with ``bad_value``,
    joint 5 of the body in frame 2 of ``BAD`` gets that coordinate on ``axis``."""
    rng = np.random.default_rng(3)
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    for name in NAMES:
        T = 6
        xyz = rng.normal(size=(T, 25, 3)) * 0.2 + [0.0, 0.0, 3.0]
        if bad_value is not None and name == BAD:
            xyz[2, 5, axis] = bad_value
        write_skeleton(raw / f"{name}.skeleton", make_sequence(T, np.arange(T), xyz))
    return raw


def _all_finite(out: Path) -> bool:
    return all(np.isfinite(np.load(p)).all() for p in out.glob("*_joint.npy"))


@pytest.mark.parametrize("value", [1e39, -1e39])  # finite in float64, +-inf in float32
def test_coordinate_beyond_float32_is_a_bad_file_not_nan(tmp_path, value):
    raw = _raw(tmp_path, value)
    meta = prepare_ntu(raw, tmp_path / "out", "synthetic-xsub", workers=1, progress=False, on_error="skip")
    assert [s["file"] for s in meta["skipped"]] == [f"{BAD}.skeleton"]
    assert f"{value:g}" in meta["skipped"][0]["reason"]
    assert meta["counts"]["train"]["samples"] == 2 and _all_finite(tmp_path / "out")
    with pytest.raises(ValueError, match=rf"{BAD}\.skeleton.*line .*1e\+39"):
        prepare_ntu(raw, tmp_path / "o2", "synthetic-xsub", workers=1, progress=False)
    # With a bound wider than float32, the check after the cast still catches it.
    meta = prepare_ntu(raw, tmp_path / "o3", "synthetic-xsub", workers=1, progress=False, on_error="skip",
                       bounds={"joint_m": (-1e40, 1e40)})
    assert [s["file"] for s in meta["skipped"]] == [f"{BAD}.skeleton"]
    assert "not finite after the cast to float32" in meta["skipped"][0]["reason"]
    assert _all_finite(tmp_path / "o3")


def test_implausible_finite_coordinate_is_a_bad_file(tmp_path):
    raw = _raw(tmp_path, 1e30, axis=2)
    meta = prepare_ntu(raw, tmp_path / "out", "synthetic-xsub", workers=1, progress=False, on_error="skip")
    assert [s["file"] for s in meta["skipped"]] == [f"{BAD}.skeleton"]
    reason = meta["skipped"][0]["reason"]
    assert "1e+30" in reason and "z" in reason and "20" in reason
    joint = np.load(tmp_path / "out" / "train_joint.npy")
    assert np.abs(joint).max() < 10  # nothing absurd reached the arrays
    # The line named is joint 5's: one body per frame, so frame f takes 28 lines (its body
    # count, the body line, numJoints, 25 joints) after line 1; joint j of frame f is on
    # line 1 + 28 f + 3 + j + 1.
    line = 1 + 28 * 2 + 3 + 5 + 1
    assert f"line {line}" in reason


def test_bound_is_overridable_and_recorded(tmp_path):
    raw = _raw(tmp_path, 25.0)  # 25 m: outside the default +-20 m
    meta = prepare_ntu(raw, tmp_path / "out", "synthetic-xsub", workers=1, progress=False, on_error="skip")
    assert [s["file"] for s in meta["skipped"]] == [f"{BAD}.skeleton"]
    assert meta["value_check"]["bounds"]["joint_m"] == [-20.0, 20.0]
    meta = prepare_ntu(raw, tmp_path / "o2", "synthetic-xsub", workers=1, progress=False,
                       bounds={"joint_m": (-30.0, 30.0)})
    assert meta["skipped"] == [] and meta["counts"]["train"]["samples"] == 3
    check = json.loads((tmp_path / "o2" / "meta.json").read_text())["value_check"]
    assert check["result"] == "passed" and check["bounds"]["joint_m"] == [-30.0, 30.0]
    assert check["by"] == "prepare" and check["graphfuse_version"]
    assert sorted(check["arrays"]) == ["test_joint.npy", "train_joint.npy"]


def test_prepare_cli_skip_bad_lists_the_file_and_bound_option(tmp_path, capsys):
    raw = _raw(tmp_path, 1e39)
    args = ["prepare", "ntu", "--root", str(raw), "--benchmark", "synthetic-xsub", "--workers", "1"]
    assert main(args + ["--out", str(tmp_path / "a"), "--skip-bad"]) == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert [s["file"] for s in meta["skipped"]] == [f"{BAD}.skeleton"] and _all_finite(tmp_path / "a")
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "b")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # not the progress bar
    assert len(err) == 1 and f"{BAD}.skeleton" in err[0] and "1e+39" in err[0]

    raw2 = _raw(tmp_path / "x", 25.0)
    assert main(["prepare", "ntu", "--root", str(raw2), "--benchmark", "synthetic-xsub", "--workers", "1",
                 "--out", str(tmp_path / "c"), "--bound", "joint_m=-30:30"]) == 0
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert meta["skipped"] == [] and meta["value_check"]["bounds"]["joint_m"] == [-30.0, 30.0]
    assert main(["prepare", "ntu", "--root", str(raw2), "--benchmark", "synthetic-xsub",
                 "--out", str(tmp_path / "d"), "--bound", "joint_m=30"]) == 2
    assert "joint_m" in capsys.readouterr().err


# ---- at load: graphfuse check and the datamodule -------------------------------------------------------

def _name(split: str, i: int) -> str:
    return f"S001C001P{1 if split == 'train' else 3:03d}R{i + 1:03d}A001"


def _unchecked(root: Path) -> dict:
    arrays = write_prepared(root, n_train=6, n_test=3, num_class=2, name=_name, num_frames=lambda i: 300)
    meta = json.loads((root / "meta.json").read_text())
    meta.pop("value_check", None)  # a folder prepared before value checks existed
    (root / "meta.json").write_text(json.dumps(meta))
    return arrays


def test_datamodule_refuses_an_unchecked_folder_until_graphfuse_check(tmp_path, capsys):
    root = tmp_path / "d"
    _unchecked(root)
    with pytest.raises(ValueError, match="graphfuse check " + re.escape(str(root))):
        SkeletonDataModule(str(root), batch_size=2).setup("fit")
    assert main(["check", str(root)]) == 0
    assert str(root) in capsys.readouterr().out
    check = json.loads((root / "meta.json").read_text())["value_check"]
    assert check["result"] == "passed" and check["by"] == "graphfuse check"
    assert check["bounds"]["joint_m"] == [-20.0, 20.0]
    assert sorted(check["arrays"]) == ["test_joint.npy", "train_joint.npy"]
    SkeletonDataModule(str(root), batch_size=2).setup("fit")  # now accepted


@pytest.mark.parametrize("value, shown", [(1e30, "1e+30"), (np.nan, "nan"), (np.inf, "inf")])
def test_check_names_array_sample_and_value(tmp_path, capsys, value, shown):
    root = tmp_path / "d"
    arrays = _unchecked(root)
    x = arrays["test"].copy()
    x[2, 1, 40, 7, 0] = value
    np.save(root / "test_joint.npy", x)
    assert main(["check", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "test_joint.npy" in err[0] and _name("test", 2) in err[0] and shown in err[0]
    check = json.loads((root / "meta.json").read_text())["value_check"]
    assert check["result"] == "failed" and _name("test", 2) in check["error"]
    with pytest.raises(ValueError, match="graphfuse check"):
        SkeletonDataModule(str(root), batch_size=2).setup("fit")


def test_check_bound_of_stored_joints_follows_the_camera_bound(tmp_path, capsys):
    # Stored joints are centred and rotated: |v| <= 2 sqrt(3) * 20 m = 69.3 m by default.
    root = tmp_path / "d"
    arrays = _unchecked(root)
    x = arrays["train"].copy()
    x[4, 2, 0, 0, 1] = 60.0
    np.save(root / "train_joint.npy", x)
    assert main(["check", str(root)]) == 0
    x[4, 2, 0, 0, 1] = 75.0
    np.save(root / "train_joint.npy", x)
    assert main(["check", str(root)]) == 2
    assert _name("train", 4) in capsys.readouterr().err
    assert main(["check", str(root), "--bound", "joint_m=-25:25"]) == 0  # 2 sqrt(3) 25 = 86.6
    check = json.loads((root / "meta.json").read_text())["value_check"]
    assert check["result"] == "passed" and check["bounds"]["joint_m"] == [-25.0, 25.0]


def test_official_arrays_need_graphfuse_check(tmp_path):
    src = tmp_path / "official"
    src.mkdir()
    rng = np.random.default_rng(0)
    for part, names in (("train", NAMES[:3]), ("val", NAMES[3:])):
        np.save(src / f"{part}_data_joint.npy", rng.normal(size=(len(names), 3, 300, 25, 2)).astype(np.float32))
        with open(src / f"{part}_label.pkl", "wb") as fh:
            pickle.dump(([n + ".skeleton" for n in names], [int(n[-3:]) - 1 for n in names]), fh)
    out = tmp_path / "out"
    import_official_dir(src, out, "synthetic-xsub")
    with pytest.raises(ValueError, match="graphfuse check"):
        SkeletonDataModule(str(out), batch_size=2).setup("fit")
    assert main(["check", str(out)]) == 0
    SkeletonDataModule(str(out), batch_size=2).setup("fit")
    # Registering again replaces arrays: the earlier check no longer describes them.
    import_official_dir(src, out, "synthetic-xsub")
    assert "value_check" not in json.loads((out / "meta.json").read_text())
