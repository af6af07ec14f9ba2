"""Shared pieces of the reader fuzz suite: the hypothesis settings, the byte mutations and
the one property every reader must satisfy.

Property (DESIGN.md, "Reliability"): reading a file either returns output whose floats are
all finite and within the documented ranges, or raises one typed error (``ValueError`` and
its subclasses, ``FileNotFoundError``; ``pickle.UnpicklingError`` for pickles; a
jsonargparse / YAML error for configs) whose message names the file. Anything else
(``RecursionError``, ``UnicodeDecodeError``, ``OverflowError``, ``MemoryError``, a bare
``KeyError`` / ``IndexError`` / ``TypeError``) is a failure.

A mutation is a small list of operations (:data:`Op`) applied to the bytes of a valid seed
file, so a failing example prints as a readable recipe, and the named mutations of the issue
are given to the tests as explicit ``@example`` recipes (:func:`sub`, :func:`whole`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------------
# settings

PROFILE = "graphfuse-fuzz"
settings.register_profile(
    PROFILE,
    derandomize=True,  # the same examples on every run and machine: a CI failure reproduces
    deadline=None,  # a shared 2-core machine has no stable per-example time
    database=None,  # nothing written under .hypothesis/
    max_examples=50,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


def fuzz_settings(max_examples: int) -> settings:
    """The suite's profile with its own example count (the whole suite: about 60 s on 2 cores)."""
    return settings(settings.get_profile(PROFILE), max_examples=max_examples)


# ---------------------------------------------------------------------------------------------
# mutations

#: Tokens that broke readers before: non-finite and huge numbers (``1e39`` is finite in float64
#: and infinite in float32), negative counts, integers past int64, non-integers where integers
#: go, bytes that are not UTF-8, XML / JSON metacharacters.
HOSTILE: tuple[bytes, ...] = (
    b"nan", b"NaN", b"-nan", b"inf", b"-inf", b"Infinity", b"-Infinity",
    b"1e39", b"-1e39", b"3.5e38", b"1e400", b"-1e400", b"1e30", b"-1e30", b"1e308",
    b"-1", b"-99", b"0", b"99999999999999999999", b"-99999999999999999999", b"18446744073709551616",
    b"2.5", b"0x1F", b"1_000", b"+5", b"1e5", b"",
    b"\x00", b"\xff\xfe", b"\xe9", b"\xc3\x28", b"\xed\xa0\x80",
    b"&amp;", b"&bogus;", b"&#0;", b"&#x110000;", b"<", b">", b'"', b"'", b"]]>", b"<!--",
    b"[", b"]", b"{", b"}", b",", b":", b"\\u0000", b"\\ud800", b"null", b"true", b"[]", b"{}",
    b"\r\n", b"\n", b"\t", b" ",
)
#: What a number is replaced with (most crashes so far were numbers in the wrong range).
NUMERIC: tuple[bytes, ...] = (
    b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e39", b"-1e39", b"3.5e38", b"1e400", b"-1e400",
    b"1e30", b"-1e30", b"1e308", b"-1", b"-99", b"0", b"99999999999999999999", b"-99999999999999999999",
    b"2.5", b"0x1F", b"", b"1_000", b"1e5",
)
#: Sizes of inserted runs (bounded: a mutation never makes a file larger than about 1 MB).
BIG_SIZES = (1 << 10, 200 << 10, 1 << 20)
BIG_FILL = (b"A", b"9", b" ", b"-", b"<", b'"', b"[", b"\n")

_NUMBER = re.compile(rb"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")

#: One mutation step, e.g. ``("number", 3, b"1e39")``: replace the 4th number of the file.
Op = tuple


_KINDS = ("number",) * 5 + ("truncate", "flip", "flip", "insert", "insert", "delete", "duplicate", "big",
                            "encode", "empty")


@st.composite
def _op_strategy(draw) -> Op:
    kind = draw(st.sampled_from(_KINDS))  # weighted: a third of the steps replace a number
    pos = draw(st.integers(0, 1 << 24))  # taken modulo the length (or count) when applied
    if kind == "number":
        return (kind, pos, draw(st.sampled_from(NUMERIC)))
    if kind == "truncate":
        return (kind, pos)
    if kind == "flip":
        return (kind, pos, draw(st.integers(0, 255)))
    if kind == "insert":
        return (kind, pos, draw(st.sampled_from(HOSTILE)))
    if kind == "delete":
        return (kind, pos, draw(st.integers(1, 256)))
    if kind == "duplicate":
        return (kind, pos, draw(st.integers(1, 4096)))
    if kind == "big":
        return (kind, pos, draw(st.sampled_from(BIG_SIZES)), draw(st.sampled_from(BIG_FILL)))
    if kind == "encode":
        return (kind, draw(st.sampled_from(("utf-16", "utf-32", "utf-8-sig", "latin-1"))))
    return (kind,)


def mutations(max_ops: int = 3) -> st.SearchStrategy[list[Op]]:
    """A list of 1..``max_ops`` mutation steps (apply them with :func:`mutate`)."""
    return st.lists(_op_strategy(), min_size=1, max_size=max_ops)


def sub(pattern: bytes, repl: bytes, count: int = 1) -> Op:
    """An explicit step for ``@example``: replace ``count`` matches of a regex (0: all)."""
    return ("sub", pattern, repl, count)


def whole(data: bytes) -> Op:
    """An explicit step for ``@example``: replace the whole file."""
    return ("whole", data)


def mutate(seed: bytes, ops: Iterable[Op]) -> bytes:
    """Apply the mutation steps to ``seed``."""
    data = seed
    for op in ops:
        kind = op[0]
        n = len(data)
        if kind == "number":
            spans = [m.span() for m in _NUMBER.finditer(data)]
            if spans:
                a, b = spans[op[1] % len(spans)]
                data = data[:a] + op[2] + data[b:]
        elif kind == "truncate":
            data = data[: op[1] % (n + 1)]
        elif kind == "flip":
            if n:
                i = op[1] % n
                data = data[:i] + bytes([op[2]]) + data[i + 1:]
        elif kind == "insert":
            i = op[1] % (n + 1)
            data = data[:i] + op[2] + data[i:]
        elif kind == "delete":
            i = op[1] % (n + 1)
            data = data[:i] + data[i + op[2]:]
        elif kind == "duplicate":
            i = op[1] % (n + 1)
            data = data[:i] + data[i:i + op[2]] + data[i:]
        elif kind == "big":
            i = op[1] % (n + 1)
            data = data[:i] + op[3] * op[2] + data[i:]
        elif kind == "encode":
            text = data.decode("utf-8", "replace")
            data = text.encode(op[1], "replace") if op[1] != "latin-1" else \
                ("\u00e9" + text).encode("latin-1", "replace")  # one non-UTF-8 byte, then the text
        elif kind == "empty":
            data = b""
        elif kind == "sub":
            data = re.sub(op[1], op[2].replace(b"\\", b"\\\\"), data, count=op[3])
        elif kind == "whole":
            data = op[1]
        else:  # pragma: no cover - a typo in a recipe
            raise AssertionError(f"unknown mutation {op!r}")
    return data


# ---------------------------------------------------------------------------------------------
# files

_counter = itertools.count()


def fresh_path(directory: Path, name: str) -> Path:
    """A path that no earlier example used: ``directory/fz<n>_<name>`` (the readers' errors
    must name it, so a message about another file cannot pass)."""
    return Path(directory) / f"fz{next(_counter):06d}_{name}"


# ---------------------------------------------------------------------------------------------
# the property

#: Errors a data reader may raise (messages must name the file). ``UnicodeError`` is a
#: ``ValueError`` but is refused below: it is a decoding crash, not a typed error.
READER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def reads_or_refuses(read: Callable[[], Any], path: Path,
                     errors: tuple[type[BaseException], ...] = READER_ERRORS) -> Any:
    """Run ``read()``; return its output, or None when it raised one of ``errors`` naming
    ``path``. Any other exception propagates (hypothesis reports it with the recipe)."""
    try:
        return read()
    except errors as exc:
        if isinstance(exc, UnicodeError):
            raise AssertionError(f"{path.name}: a decoding crash instead of a typed error: "
                                 f"{type(exc).__name__}: {exc}") from exc
        msg = str(exc)
        assert path.name in msg, (
            f"{type(exc).__name__} does not name the file {path.name}: {msg[:500]}")
        return None


def walk(obj: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of an output (dataclasses, dicts, lists, tuples) with its dotted location."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from walk(getattr(obj, f.name), f"{where}.{f.name}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from walk(v, f"{where}[{i}]")
    else:
        yield where, obj


def check_numbers(out: Any, bounds: dict[str, float] | None = None, default: float = math.inf,
                  ints: dict[str, tuple[int, int]] | None = None) -> None:
    """Assert every float (array or scalar) in ``out`` is finite (in its own dtype) with
    ``|x| <= bound``.

    ``bounds`` maps a leaf name (the last component of its location, e.g. ``xyz``) to its
    bound; other floats get ``default`` (finite only). Integer scalars must fit in int64, and those named in
    ``ints`` must lie in the given closed range (counts: never negative).
    """
    bounds = bounds or {}
    ints = ints or {}
    for where, leaf in walk(out):
        name = re.split(r"[.\[]", where.rstrip("]'\""))[-1].strip("'\"")
        if isinstance(leaf, np.ndarray) and np.issubdtype(leaf.dtype, np.floating) or (
                isinstance(leaf, (float, np.floating))):
            arr = np.asarray(leaf, dtype=np.float64)
            assert np.isfinite(arr).all(), f"non-finite value in output{where}: {arr[~np.isfinite(arr)][:3]}"
            bound = bounds.get(name, default)
            big = np.abs(arr) > bound
            assert not big.any(), f"output{where} holds {arr[big][:3]}, beyond the plausible |x| <= {bound:g}"
        elif isinstance(leaf, (int, np.integer)) and not isinstance(leaf, bool):
            assert -(2**63) <= int(leaf) < 2**63, f"output{where} = {leaf} does not fit in int64"
            if name in ints:
                lo, hi = ints[name]
                assert lo <= int(leaf) <= hi, f"output{where} = {leaf} outside [{lo}, {hi}]"
        elif isinstance(leaf, np.ndarray) and np.issubdtype(leaf.dtype, np.integer) and name in ints:
            lo, hi = ints[name]
            bad = (leaf < lo) | (leaf > hi)
            assert not bad.any(), f"output{where} holds {leaf[bad][:3]} outside [{lo}, {hi}]"


def finite_float32(arr: np.ndarray, what: str, lo: float = -FLOAT32_MAX, hi: float = FLOAT32_MAX) -> None:
    """``arr`` stays finite (and within ``[lo, hi]``) once cast to float32, as the pipelines store it."""
    with np.errstate(over="ignore"):
        a32 = np.asarray(arr).astype(np.float32)
    assert np.isfinite(a32).all(), f"{what}: non-finite after the float32 cast: {a32[~np.isfinite(a32)][:3]}"
    bad = (a32 < lo) | (a32 > hi)
    assert not bad.any(), f"{what}: {a32[bad][:3]} outside the plausible range {lo:g}..{hi:g}"


def documented_bounds() -> dict[str, tuple[float, float]]:
    """The plausibility bounds preparation applies (:data:`graphfuse.data.checks.DEFAULT_BOUNDS`)."""
    from graphfuse.data.checks import DEFAULT_BOUNDS

    return dict(DEFAULT_BOUNDS)
