"""Fuzz :func:`graphfuse.io.restricted_load`, the reader of other toolkits' data pickles.

Property: a pickle that asks for anything but builtins and numpy arrays raises
``UnsafePickleError`` naming the file and never runs code (a canary file stays absent);
corrupt bytes raise ``pickle.UnpicklingError`` naming the file; a pickle of plain data loads.
"""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest
from _fuzz import fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, whole
from hypothesis import example, given
from hypothesis import strategies as st

from graphfuse.io import UnsafePickleError, restricted_load


def _s(text: str) -> bytes:
    """SHORT_BINUNICODE of ``text`` (protocol 4)."""
    b = text.encode()
    return b"\x8c" + bytes([len(b)]) + b


def _stack_global(module: str, name: str, *args: str) -> bytes:
    """Protocol 4: ``module.name(*args)`` through STACK_GLOBAL and REDUCE."""
    tuple_op = {0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(args)]  # EMPTY_TUPLE, TUPLE1..3
    return b"\x80\x04" + _s(module) + _s(name) + b"\x93" + b"".join(_s(a) for a in args) + tuple_op + b"R."


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


class _Stateful:
    """Pickles as an allowed class whose BUILD state holds a hostile object (__setstate__ trick)."""

    def __init__(self, evil):
        self.evil = evil

    def __reduce__(self):
        return (collections.OrderedDict, (), {"__setstate__": self.evil}, None, iter([("k", self.evil)]))


def hostile_pickles(canary: str) -> dict[str, bytes]:
    """name -> pickle that would create ``canary`` if it ran code."""
    touch = f"touch {canary}"
    code = f"open({canary!r}, 'w').write('pwned')"
    evil = _Reduce(os.system, touch)
    out = {
        "GLOBAL os.system (protocol 0)": f"cos\nsystem\n(S'{touch}'\ntR.".encode(),
        "GLOBAL posix.system": f"cposix\nsystem\n(S'{touch}'\ntR.".encode(),
        "GLOBAL builtins.eval": f"cbuiltins\neval\n(S\"{code}\"\ntR.".encode(),
        "GLOBAL __builtin__.eval (Python 2 name)": f"c__builtin__\neval\n(S\"{code}\"\ntR.".encode(),
        "GLOBAL builtins.exec": f"cbuiltins\nexec\n(S\"{code}\"\ntR.".encode(),
        "GLOBAL builtins.open": f"cbuiltins\nopen\n(S'{canary}'\nS'w'\ntR.".encode(),
        "GLOBAL builtins.getattr": b"cbuiltins\ngetattr\n(cbuiltins\nlist\nS'__class__'\ntR.",
        "GLOBAL builtins.__import__": b"cbuiltins\n__import__\n(S'os'\ntR.",
        "INST os.system": f"(S'{touch}'\nios\nsystem\n.".encode(),
        "OBJ os.system": f"(cos\nsystem\nS'{touch}'\no.".encode(),
        "STACK_GLOBAL subprocess.getoutput": _stack_global("subprocess", "getoutput", touch),
        "STACK_GLOBAL dotted numpy.dtypes.__builtins__.get -> eval": (
            _stack_global("numpy.dtypes", "__builtins__.get", "eval")[:-1]
            + _s(f"__import__('os').system({touch!r})") + b"\x85R."),
        "STACK_GLOBAL dotted builtins.list.__class__": _stack_global("builtins", "list.__class__", "x"),
        "STACK_GLOBAL numpy non-dtype callable": _stack_global("numpy", "load", canary),
        "STACK_GLOBAL numpy.testing.os.system": _stack_global("numpy", "testing.os.system", touch),
        "STACK_GLOBAL numpy.dtypes helper": _stack_global("numpy.dtypes", "_add_dtype_helper", "x"),
        "copyreg._reconstructor": b"ccopyreg\n_reconstructor\n(cos\n_wrap_close\ncbuiltins\nobject\nNtR.",
        "torch rebuild": _stack_global("torch._utils", "_rebuild_tensor_v2", "x"),
        "torch storage load": _stack_global("torch.storage", "_load_from_bytes", "x"),
        "pathlib without paths_as_str": _stack_global("pathlib", "PosixPath", canary),
    }
    for proto in (2, 4, 5):
        out[f"reduce os.system (protocol {proto})"] = pickle.dumps(evil, protocol=proto)
        out[f"nested reduce in a dict (protocol {proto})"] = pickle.dumps(
            {"labels": [1, 2], "x": [evil]}, protocol=proto)
        out[f"numpy object array holding a reduce (protocol {proto})"] = pickle.dumps(
            np.array([1, evil], dtype=object), protocol=proto)
        out[f"BUILD state holding a reduce (protocol {proto})"] = pickle.dumps(
            _Stateful(evil), protocol=proto)
        out[f"reduce of an allowed callable over a hostile one (protocol {proto})"] = pickle.dumps(
            _Reduce(list, [evil]), protocol=proto)
    return out


#: Plain data as the toolkits write it: NTU label pickles (names, labels), PAB pose dicts.
VALID = {
    "label (protocol 2)": pickle.dumps((["S001C001P001R001A001.skeleton"], [0]), protocol=2),
    "arrays (protocol 2)": pickle.dumps({"video_0001": {"00012_1_2": np.arange(36, dtype=np.float64) / 100}},
                                        protocol=2),
    "arrays (protocol 4)": pickle.dumps([np.zeros((2, 3), np.float32), np.int64(4), np.dtype("f8")],
                                        protocol=4),
    "arrays (protocol 5)": pickle.dumps(collections.OrderedDict(a=np.arange(4), b=(1.5, "x", None)),
                                        protocol=5),
    "python 2 str (latin-1 fallback)": b"(lp0\nS'caf\xe9'\np1\naI3\na.",
}


def test_valid_pickles_load(fuzz_dir):
    for name, data in VALID.items():
        p = fresh_path(fuzz_dir, "data.pkl")
        p.write_bytes(data)
        got = restricted_load(p)
        assert got is not None, name
    p = fresh_path(fuzz_dir, "py2.pkl")
    p.write_bytes(VALID["python 2 str (latin-1 fallback)"])
    assert restricted_load(p) == ["caf\u00e9", 3]


@pytest.mark.parametrize("name", sorted(hostile_pickles("CANARY")))
def test_hostile_pickle_is_refused_and_runs_nothing(name, fuzz_dir):
    canary = fuzz_dir / f"canary-{abs(hash(name))}"
    data = hostile_pickles(str(canary))[name]
    path = fresh_path(fuzz_dir, "hostile.pkl")
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as err:
        restricted_load(path)
    assert path.name in str(err.value)
    assert not canary.exists(), f"{name}: code ran"


class _ReduceBuild:
    """Pickles as ``func(*args)`` followed by BUILD ``state``."""

    def __init__(self, func, args, state):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args, self.state)


def _shared_nest(depth: int) -> list:
    x: list = []
    for _ in range(depth):
        x = [x, x]
    return x


def memory_bombs() -> dict[str, bytes]:
    """name -> a small pickle that asks an allowed global for gigabytes (or crashes numpy)."""
    n = 10**10
    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]
    scalar = np.float64(1).__reduce__()[0]
    out = {
        "bytes(10**10) (protocol 0)": f"cbuiltins\nbytes\n(I{n}\ntR.".encode(),
        "bytearray(10**10) (Python 2 name)": f"c__builtin__\nbytearray\n(I{n}\ntR.".encode(),
        "list(range(10**10))": f"cbuiltins\nlist\n(cbuiltins\nrange\n(I{n}\ntRtR.".encode(),
        "tuple(xrange(10**10)) (Python 2 name)": f"c__builtin__\ntuple\n(c__builtin__\nxrange\n(I{n}\ntRtR.".encode(),
        "set(range(10**10))": _stack_global("builtins", "set")[:-3] + _stack_global("builtins", "range")[2:-3]
        + b"\x8a\x05" + n.to_bytes(5, "little") + b"\x85R\x85R.",
        "bytes.__new__ through NEWOBJ": b"\x80\x02cbuiltins\nbytes\n\x8a\x05" + n.to_bytes(5, "little") + b"\x85\x81.",
        "bytes(numpy.int64(10**10))": pickle.dumps(_Reduce(bytes, np.int64(n)), protocol=4),
        "numpy _reconstruct(ndarray, (10**10,))": pickle.dumps(_Reduce(reconstruct, np.ndarray, (n,), b"b"), protocol=4),
        "numpy.ndarray((10**10,))": pickle.dumps(_Reduce(np.ndarray, (n,), "u1"), protocol=2),
        "numpy scalar of a 2 GB void": pickle.dumps(_Reduce(scalar, np.dtype("V2000000000")), protocol=4),
        "str() of a shared nest 2**60 long": pickle.dumps(_Reduce(str, _shared_nest(60)), protocol=4),
        "numpy.dtype() of a shared nest (repr in its error)": pickle.dumps(_Reduce(np.dtype, _shared_nest(60)),
                                                                           protocol=4),
        "object array state of 10**9 elements, list of 1": pickle.dumps(_ReduceBuild(
            reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("O"), False, [1])), protocol=2),
        "object array state of 10 elements, list of 1 (numpy segfaults)": pickle.dumps(_ReduceBuild(
            reconstruct, (np.ndarray, (0,), b"b"), (1, (10,), np.dtype("O"), False, [1])), protocol=2),
        "dtype state with a list as a field (numpy crashes)": pickle.dumps(_ReduceBuild(
            np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": [1]}, 8, 1, 0)), protocol=2),
    }
    for proto in (2, 4, 5):
        out[f"bytearray(10**10) (protocol {proto})"] = pickle.dumps(_Reduce(bytearray, n), protocol=proto)
    return out


_CHILD = """
import json, resource, sys
# A regression fails (MemoryError, SIGXCPU), never takes the machine: at most 2 GiB, 30 s.
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
resource.setrlimit(resource.RLIMIT_CPU, (30, 30))
from graphfuse.io import UnsafePickleError, restricted_load
out = {}
for path in sys.argv[1:]:
    try:
        restricted_load(path)
        out[path] = "loaded"
    except UnsafePickleError as exc:
        out[path] = "refused" if path in str(exc) else "refused without the file name: " + str(exc)[:200]
    except BaseException as exc:
        out[path] = type(exc).__name__ + ": " + str(exc)[:200]
print(json.dumps(out))
"""


def test_memory_bombs_are_refused_before_allocating(fuzz_dir):
    """Each bomb raises UnsafePickleError naming the file, in a child limited to 2 GiB of address
    space and 30 s of CPU (and that survives: numpy's crashes on hostile array states are refused
    before numpy sees them)."""
    import json
    import subprocess
    import sys

    paths = {}
    for name, data in memory_bombs().items():
        path = fresh_path(fuzz_dir, "bomb.pkl")
        path.write_bytes(data)
        paths[str(path)] = name
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", _CHILD, *paths], capture_output=True, text=True, timeout=120,
                         env=env)
    assert run.returncode == 0, f"the child died ({run.returncode}): {run.stderr[-1000:]}"
    results = json.loads(run.stdout.strip().splitlines()[-1])
    wrong = {paths[p]: r for p, r in results.items() if r != "refused"}
    assert not wrong, wrong


_SEEDS = sorted(VALID)


@fuzz_settings(max_examples=1000)
@given(ops=mutations(), seed=st.sampled_from(_SEEDS))
@example(ops=[("truncate", 10)], seed="arrays (protocol 4)")
@example(ops=[("empty",)], seed="label (protocol 2)")
@example(ops=[whole(b"\x80\x05" + b"(" * 100_000 + b".")], seed="label (protocol 2)")  # deep MARK stack
@example(ops=[whole(b"\x80\x04" + b"]" * 200_000 + b"a" * 199_999 + b".")], seed="label (protocol 2)")
@example(ops=[whole(b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"x.")], seed="label (protocol 2)")
@example(ops=[whole(b"\x80\x02K\x01K\x02\x86q\x00h\x00h\x00.")], seed="label (protocol 2)")
@example(ops=[whole(b"\x80\x02\x8a\x08" + b"\xff" * 8 + b".")], seed="label (protocol 2)")  # LONG1
@example(ops=[whole(b"cnumpy\ndtype\n(S'V99999999999999999999'\ntR.")], seed="label (protocol 2)")
# truncated: fails again in the latin-1 retry
@example(ops=[whole(b"(lp0\nS'\xff\xfe'\n")], seed="python 2 str (latin-1 fallback)")
@example(ops=[("flip", 20, 0xFF)], seed="arrays (protocol 2)")
@example(ops=[("encode", "utf-16")], seed="label (protocol 2)")
def test_mutated_pickles(fuzz_dir, ops, seed):
    """Corrupt pickles: ``UnpicklingError`` (``UnsafePickleError`` included) naming the file."""
    canary = fuzz_dir / "canary-mutated"
    path = fresh_path(fuzz_dir, "data.pkl")
    path.write_bytes(mutate(VALID[seed], ops))
    try:
        reads_or_refuses(lambda: restricted_load(path), path, errors=(pickle.UnpicklingError,))
        assert not canary.exists()
    finally:
        path.unlink()
