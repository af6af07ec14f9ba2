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


# ---- restricted_load: memory bombs, crashes and the pickles it must still read -------------------

class _Reduce:
    """Pickles as ``func(*args)``, then BUILD ``state`` when given."""

    def __init__(self, func, *args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _shared_nest(depth: int) -> list:
    """A list holding the same list twice, ``depth`` deep: a small pickle, a 2**depth repr."""
    x: list = []
    for _ in range(depth):
        x = [x, x]
    return x


# Sizes of 2**62: were a guard to regress, the allocation fails at once (MemoryError) instead of
# taking gigabytes, and the test fails on the error type; the others are small (a megabyte, a
# repr of tens of megabytes) but still far beyond the pickle's own size, the bound enforced.
_BOMBS = {
    "bytes(n) protocol 0": b"cbuiltins\nbytes\n(L4611686018427387904L\ntR.",
    "bytearray(n), Python 2 name": b"c__builtin__\nbytearray\n(L4611686018427387904L\ntR.",
    "list(range(n))": b"cbuiltins\nlist\n(cbuiltins\nrange\n(L4611686018427387904L\ntRtR.",
    "tuple(xrange(n)), Python 2 name": b"c__builtin__\ntuple\n(c__builtin__\nxrange\n(I0\nI9\ntRtR.",
    "bytes.__new__(bytes, n) through NEWOBJ": b"\x80\x02cbuiltins\nbytes\n\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x85\x81.",
    "bytes(numpy int64)": pickle.dumps(_Reduce(bytes, np.int64(2**62)), protocol=2),
    "bytearray(n) protocol 4": pickle.dumps(_Reduce(bytearray, 2**62), protocol=4),
    "numpy _reconstruct by shape": pickle.dumps(_Reduce(np.ndarray.__reduce__(np.zeros(0))[0], np.ndarray,
                                                        (2**62,), b"b"), protocol=2),
    "numpy.ndarray(shape)": pickle.dumps(_Reduce(np.ndarray, (2**62,), "u1"), protocol=4),
    "numpy scalar of a huge void dtype": pickle.dumps(
        _Reduce(np.float64(1).__reduce__()[0], np.dtype("V1000000")), protocol=4),
    "str() of a shared nest": pickle.dumps(_Reduce(str, _shared_nest(20)), protocol=4),
    "numpy.dtype() of a shared nest (its error message is the repr)": pickle.dumps(
        _Reduce(np.dtype, _shared_nest(20)), protocol=4),
}
# numpy 2 crashes (SIGSEGV) on these states: refused before numpy sees them (run in a child).
_CRASHES = {
    "object array state shorter than its shape": pickle.dumps(_Reduce(
        np.ndarray.__reduce__(np.zeros(0))[0], np.ndarray, (0,), b"b",
        state=(1, (10,), np.dtype("O"), False, [1])), protocol=2),
    "dtype state with a list as a field": pickle.dumps(_Reduce(
        np.dtype, "V8", False, True, state=(3, "|", None, ("a",), {"a": [1]}, 8, 1, 0)), protocol=2),
}


@pytest.mark.parametrize("name", sorted(_BOMBS))
def test_restricted_load_refuses_allocation_by_size(tmp_path, name):
    p = tmp_path / "bomb.pkl"
    p.write_bytes(_BOMBS[name])
    with pytest.raises(UnsafePickleError, match=rf"{p}: refusing"):
        restricted_load(p)


@pytest.mark.parametrize("name", sorted(_CRASHES))
def test_restricted_load_refuses_states_that_crash_numpy(tmp_path, name):
    import subprocess
    import sys

    p = tmp_path / "crash.pkl"
    p.write_bytes(_CRASHES[name])
    code = ("import sys\nfrom graphfuse.io import UnsafePickleError, restricted_load\n"
            "try:\n    restricted_load(sys.argv[1])\nexcept UnsafePickleError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"child died ({run.returncode}): {run.stderr[-500:]}"
    assert f"{p}: refusing" in run.stdout


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_load_reads_every_protocol(tmp_path, protocol):
    import collections

    data = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3), "fortran": np.asfortranarray(np.ones((2, 3))),
        "obj": np.array([1, "a", None, 2.5], dtype=object), "str": np.array(["ab", "c"]),
        "int": np.arange(3), "scalar": np.float64(2.5), "i64": np.int64(4), "dtype": np.dtype(">i2"),
        "struct": np.zeros(2, dtype=[("a", "<i4"), ("b", "O"), ("c", "<f4", (2,))]),
        "datetime": np.array(["2020-01-01"], dtype="M8[D]"), "empty": np.zeros((0, 3)),
        # builtins: Python 3 writes protocols 0-2 with Python 2 names (__builtin__.set)
        "set": {1, 2}, "frozenset": frozenset("ab"), "bytes": b"xy", "no bytes": b"", "bytearray": bytearray(b"ab"),
        "complex": 1 + 2j, "slice": slice(1, 2), "od": collections.OrderedDict(a=1), "tuple": (1, "x", None),
    }
    p = tmp_path / "data.pkl"
    p.write_bytes(pickle.dumps(data, protocol=protocol))
    got = restricted_load(p)
    assert got.keys() == data.keys()
    for k, v in data.items():
        assert type(got[k]) is type(v), k
        if isinstance(v, np.ndarray):
            assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
            if v.dtype.names is None:
                assert np.array_equal(got[k], v), k
        elif not isinstance(v, np.dtype):
            assert got[k] == v, k


def test_restricted_load_reads_python2_numpy_pickle(tmp_path):
    # numpy array written by Python 2 (protocol 2, the data as a latin-1 str): the latin-1 retry.
    raw = np.arange(3, dtype="<f8").tobytes()
    py2 = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87R"
           b"(K\x01K\x03\x85cnumpy\ndtype\nq\x03U\x02f8K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff"
           b"\xff\xffK\x00tb\x89U\x18" + raw + b"tb.")
    p = tmp_path / "py2.pkl"
    p.write_bytes(py2)
    np.testing.assert_array_equal(restricted_load(p), [0.0, 1.0, 2.0])


def test_atomic_writes_get_the_mode_a_plain_write_would(tmp_path):
    """mkstemp creates 0o600; a prepared folder or run directory must be readable as a plain
    write would leave it (0o666 less the umask), e.g. by the group on a shared cluster."""
    import os
    import stat

    import numpy as np

    from graphfuse.io import open_npy_memmap, save_npy, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "meta.json", {"a": 1})
        save_npy(tmp_path / "x.npy", np.zeros(3, np.float32))
        mm = open_npy_memmap(tmp_path / "y.npy", (2, 2))
        (tmp_path / "plain.txt").write_text("x")
        os.umask(0o027)
        write_json(tmp_path / "group.json", {"a": 1})
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "plain.txt") == 0o644
    assert mode(tmp_path / "meta.json") == 0o644
    assert mode(tmp_path / "x.npy") == 0o644
    assert mode(mm.filename) == 0o644
    assert mode(tmp_path / "group.json") == 0o640
