import os
import pickle

import numpy as np
import pytest

from graphfuse.io import UnsafePickleError, atomic_open, restricted_load, save_npy, write_json


def test_atomic_open_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["report.txt"]  # no temporary left behind


def test_write_json_and_save_npy(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.int64(3), "y": np.arange(2)})
    assert (tmp_path / "a.json").read_text().replace(" ", "").replace("\n", "") == '{"x":3,"y":[0,1]}'
    save_npy(tmp_path / "b.npy", np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.arange(4, dtype=np.float32))


def test_restricted_load_accepts_data_and_refuses_code(tmp_path):
    ok = tmp_path / "label.pkl"
    with open(ok, "wb") as fh:
        pickle.dump((["S001C001P001R001A001.skeleton"], [0], np.zeros(3)), fh)
    names, labels, arr = restricted_load(ok)
    assert names == ["S001C001P001R001A001.skeleton"] and labels == [0]
    np.testing.assert_array_equal(arr, np.zeros(3))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pkl"
    with open(bad, "wb") as fh:
        pickle.dump(Evil(), fh)
    with pytest.raises(UnsafePickleError, match="evil.pkl.*system"):
        restricted_load(bad)


def test_restricted_load_names_truncated_file(tmp_path):
    p = tmp_path / "cut.pkl"
    p.write_bytes(pickle.dumps(([1, 2, 3], [4]))[:-5])
    with pytest.raises(pickle.UnpicklingError, match="cut.pkl"):
        restricted_load(p)


def test_restricted_load_reads_paths_as_strings_only_when_asked(tmp_path):
    import pathlib

    f = tmp_path / "sample.pkl"
    f.write_bytes(pickle.dumps({"crop_img": pathlib.PurePosixPath("data/PIE/imgs/x.pkl"), "w": 1920}))
    with pytest.raises(UnsafePickleError, match="sample.pkl.*pathlib"):
        restricted_load(f)
    assert restricted_load(f, paths_as_str=True) == {"crop_img": "data/PIE/imgs/x.pkl", "w": 1920}
