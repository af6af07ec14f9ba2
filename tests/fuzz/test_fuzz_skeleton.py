"""Fuzz the NTU RGB+D ``.skeleton`` reader and the per-file step of ``graphfuse prepare ntu``.

Property: :func:`read_skeleton` returns only finite floats and non-negative counts, or raises
a ``ValueError`` (``SkeletonFormatError``) naming the file; :func:`process_file` (the array
that preparation casts to float32) stays finite after that cast and within the ``joint_m``
plausibility bound of :mod:`graphfuse.data.checks`, or raises the same way.
"""

from __future__ import annotations

from _fuzz import (check_numbers, documented_bounds, finite_float32, fresh_path, fuzz_settings, mutate,
                   mutations, reads_or_refuses, sub)
from _seeds import skeleton
from hypothesis import example, given

from graphfuse.data.ntu.prepare import process_file
from graphfuse.data.ntu.reader import read_skeleton

# Number indices in the seed: 0 frame count, 1 body count of frame 1, 2..11 the first body
# line (2 bodyID, 9 leanX, 10 leanY, 11 trackingState), 12 numJoints, 13.. the first joint
# line (13 x, 14 y, 15 z, 16/17 depthX/Y, 18/19 colorX/Y, 20..23 orientation, 24 trackingState).
NAMED = [
    [("number", 13, b"1e39")],  # finite in float64, inf in float32
    [("number", 15, b"-1e39")],
    [("number", 13, b"1e30")],  # float32-finite but no joint is 1e30 m away
    [("number", 14, b"nan")],
    [("number", 14, b"1e400")],
    [("number", 13, b"inf")],
    [("number", 9, b"nan")],  # leanX
    [("number", 9, b"1e39")],
    [("number", 18, b"1e39")],  # colorX
    [("number", 20, b"nan")],  # orientationW
    [("number", 0, b"-1")],  # negative counts
    [("number", 1, b"-1")],
    [("number", 12, b"-25")],
    [("number", 0, b"99999999999999999999")],  # 20-digit integers
    [("number", 2, b"99999999999999999999")],
    [("number", 2, b"-1")],
    [("number", 0, b"2.5")],
    [("number", 24, b"99999999999999999999")],
    [("empty",)],
    [("truncate", 500)],
    [("truncate", 3)],
    [("flip", 0, 0xFF)],
    [("encode", "utf-16")],
    [("encode", "latin-1")],
    [("big", 40, 1 << 20, b"9")],
    [("insert", 0, b"\x00")],
    [sub(rb"\r\n", b"\n", 0)],  # LF line ends are fine and must still read
]


def _named(test):
    for ops in NAMED:
        test = example(ops=ops)(test)
    return test


def _check_sequence(seq) -> None:
    check_numbers(seq, ints={"num_frames": (0, 2**31 - 1), "bodies_per_frame": (0, 2**31 - 1)})


def test_seed_is_valid(fuzz_dir):
    path = fresh_path(fuzz_dir, "S001C001P001R001A010.skeleton")
    path.write_bytes(skeleton())
    seq = read_skeleton(path)
    assert seq.num_frames == 4 and seq.max_bodies == 2
    _check_sequence(seq)
    data, n = process_file(path)
    assert data.shape == (3, 4, 25, 2) and n == 3
    finite_float32(data, path.name, *documented_bounds()["joint_m"])


@fuzz_settings(max_examples=1000)
@given(ops=mutations())
@_named
def test_read_skeleton(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "S001C001P001R001A010.skeleton")
    path.write_bytes(mutate(skeleton(), ops))
    try:
        seq = reads_or_refuses(lambda: read_skeleton(path), path)
        if seq is not None:
            _check_sequence(seq)
        out = reads_or_refuses(lambda: process_file(path), path)
        if out is not None:
            finite_float32(out[0], f"process_file({path.name})", *documented_bounds()["joint_m"])
    finally:
        path.unlink()
