"""NTU .skeleton reader and writer: every field, CRLF, exact body ids, float formats, malformed files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from graphfuse.data.ntu.reader import (
    FLOAT_KINECT,
    FLOAT_REPR,
    SkeletonFormatError,
    format_skeleton,
    make_sequence,
    parse_ntu_name,
    read_skeleton,
    write_skeleton,
)

BIG_ID = 72057594037931649  # not representable as float64 (float gives ...648)
MAX_ID = 18446744073709551615


def body_line(b: int) -> str:
    ids = [BIG_ID, MAX_ID, 72057594037927936][b]
    # bodyID clippedEdges handLeftConfidence handLeftState handRightConfidence handRightState
    # isRestricted leanX leanY trackingState
    return f"{ids} {b + 1} {b % 2} {b + 2} {1 - b % 2} {b + 3} {b % 2} {0.25 + b} {-0.5 - b} 2"


def joint_line(b: int, j: int) -> str:
    v = [b * 100 + j + k / 16 for k in range(11)]
    return " ".join(repr(x) for x in v) + f" {(b + j) % 3}"


def hand_file(nl: str = "\r\n") -> str:
    """2 frames: frame 1 has body 0; frame 2 has bodies 1 and 2 (in that order)."""
    lines = ["2", "1", body_line(0), "25", *[joint_line(0, j) for j in range(25)],
             "2", body_line(1), "25", *[joint_line(1, j) for j in range(25)],
             body_line(2), "25", *[joint_line(2, j) for j in range(25)]]
    return nl.join(lines) + nl


def write(tmp_path, text: str, name: str = "S001C001P001R001A001.skeleton"):
    p = tmp_path / name
    p.write_bytes(text.encode("ascii"))
    return p


@pytest.mark.parametrize("nl", ["\r\n", "\n"])
def test_every_field(tmp_path, nl):
    seq = read_skeleton(write(tmp_path, hand_file(nl)))
    assert seq.num_frames == 2
    assert seq.bodies_per_frame.tolist() == [1, 2]
    assert seq.body_frame.tolist() == [0, 1, 1]
    assert seq.body_slot.tolist() == [0, 0, 1]
    assert seq.body_id.dtype == np.uint64
    assert [int(v) for v in seq.body_id] == [BIG_ID, MAX_ID, 72057594037927936]
    assert seq.clipped_edges.tolist() == [1, 2, 3]
    assert seq.hand_left_confidence.tolist() == [0, 1, 0]
    assert seq.hand_left_state.tolist() == [2, 3, 4]
    assert seq.hand_right_confidence.tolist() == [1, 0, 1]
    assert seq.hand_right_state.tolist() == [3, 4, 5]
    assert seq.is_restricted.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(seq.lean, [[0.25, -0.5], [1.25, -1.5], [2.25, -2.5]])
    assert seq.tracking_state.tolist() == [2, 2, 2]
    for b in range(3):
        for j in (0, 7, 24):
            v = [b * 100 + j + k / 16 for k in range(11)]
            np.testing.assert_array_equal(seq.xyz[b, j], v[0:3])
            np.testing.assert_array_equal(seq.depth_xy[b, j], v[3:5])
            np.testing.assert_array_equal(seq.color_xy[b, j], v[5:7])
            np.testing.assert_array_equal(seq.orientation[b, j], v[7:11])
            assert seq.joint_tracking_state[b, j] == (b + j) % 3
    assert seq.xyz.shape == (3, 25, 3) and seq.xyz.dtype == np.float64
    assert seq.max_bodies == 2 and seq.num_bodies == 3


def test_trailing_blank_lines_and_no_final_newline(tmp_path):
    ref = read_skeleton(write(tmp_path, hand_file()))
    a = read_skeleton(write(tmp_path, hand_file() + "\r\n\r\n  \r\n", "a.skeleton"))
    b = read_skeleton(write(tmp_path, hand_file().rstrip(), "b.skeleton"))
    for s in (a, b):
        np.testing.assert_array_equal(s.xyz, ref.xyz)
        np.testing.assert_array_equal(s.body_id, ref.body_id)


def test_zero_frames_and_empty_frames(tmp_path):
    s = read_skeleton(write(tmp_path, "0\r\n"))
    assert s.num_frames == 0 and s.num_bodies == 0 and s.xyz.shape == (0, 25, 3)
    s = read_skeleton(write(tmp_path, "3\r\n0\r\n0\r\n0\r\n"))
    assert s.num_frames == 3 and s.bodies_per_frame.tolist() == [0, 0, 0] and s.num_bodies == 0


def test_round_trip_writer(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.array([0, 0, 2, 3, 3, 3])
    seq = make_sequence(5, frames, rng.normal(size=(6, 25, 3)), body_id=np.arange(6, dtype=np.uint64) + np.uint64(MAX_ID - 10),
                        lean=rng.normal(size=(6, 2)), color_xy=rng.uniform(0, 1900, (6, 25, 2)))
    p = tmp_path / "x.skeleton"
    write_skeleton(p, seq)
    raw = p.read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n") == 1 + 5 + 6 * 27
    back = read_skeleton(p)
    assert back.bodies_per_frame.tolist() == [2, 0, 1, 3, 0]
    assert back.body_slot.tolist() == [0, 1, 0, 0, 1, 2]
    for f in ("body_id", "xyz", "lean", "color_xy", "orientation", "joint_tracking_state", "tracking_state"):
        np.testing.assert_array_equal(getattr(back, f), getattr(seq, f))
    assert format_skeleton(back) == format_skeleton(seq)


# ---- the writer ----------------------------------------------------------------------------

def reference_format(seq, nl: str, conv: str) -> str:
    """The .skeleton text written with plain loops over frames, records and joints."""
    out = [str(seq.num_frames)]
    b = 0
    for f in range(seq.num_frames):
        out.append(str(int(seq.bodies_per_frame[f])))
        for _ in range(int(seq.bodies_per_frame[f])):
            ints = [seq.clipped_edges[b], seq.hand_left_confidence[b], seq.hand_left_state[b],
                    seq.hand_right_confidence[b], seq.hand_right_state[b], seq.is_restricted[b]]
            out.append(" ".join([str(int(seq.body_id[b]))] + [str(int(v)) for v in ints]
                                + [conv % float(v) for v in seq.lean[b]] + [str(int(seq.tracking_state[b]))]))
            out.append("25")
            for j in range(25):
                floats = [*seq.xyz[b, j], *seq.depth_xy[b, j], *seq.color_xy[b, j], *seq.orientation[b, j]]
                state = str(int(seq.joint_tracking_state[b, j]))
                out.append(" ".join([conv % float(v) for v in floats] + [state]))
            b += 1
    return nl.join(out) + nl


def random_sequence(seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = np.array([1, 1, 2, 4, 4, 4])  # frames 0 and 3 are empty
    B = frames.size
    return make_sequence(
        5, frames, rng.normal(size=(B, 25, 3)) * 10.0 ** rng.integers(-6, 4, (B, 25, 1)),
        body_id=np.array([0, 1, 2**63, MAX_ID, BIG_ID, 7], dtype=np.uint64),
        lean=rng.normal(size=(B, 2)), depth_xy=rng.uniform(0, 512, (B, 25, 2)),
        color_xy=np.round(rng.uniform(0, 1920, (B, 25, 2)), 1), orientation=rng.normal(size=(B, 25, 4)),
        clipped_edges=rng.integers(0, 16, B).astype(np.int32),
        hand_left_state=rng.integers(0, 4, B).astype(np.int32),
        hand_right_confidence=np.ones(B, np.int32), is_restricted=np.zeros(B, np.int32),
        tracking_state=np.full(B, 2, np.int32),
        joint_tracking_state=rng.integers(0, 3, (B, 25)).astype(np.int32),
    )


@pytest.mark.parametrize("nl", ["\r\n", "\n"])
@pytest.mark.parametrize("float_format, conv", [(FLOAT_REPR, "%r"), (FLOAT_KINECT, "%.7g"), ("%.3e", "%.3e")])
def test_writer_matches_loop_reference(nl, float_format, conv):
    seq = random_sequence()
    assert format_skeleton(seq, nl, float_format=float_format) == reference_format(seq, nl, conv)


def test_writer_hand_worked_lines():
    xyz = np.zeros((1, 25, 3))
    xyz[0, 0] = (0.1234567891, -2.0, 1e-5)
    seq = make_sequence(3, [1], xyz, body_id=np.array([BIG_ID], np.uint64), lean=[[0.1, -0.25]],
                        hand_left_state=np.array([3], np.int32))
    tail = "0 0 0 0 1 0 0 0 2"  # depth, colour 0; identity orientation; tracked
    assert format_skeleton(seq, "\n", float_format=FLOAT_KINECT).split("\n") == [
        "3", "0", "1", f"{BIG_ID} 0 0 3 0 0 0 0.1 -0.25 2", "25",
        "0.1234568 -2 1e-05 " + tail, *["0 0 0 " + tail] * 24, "0", ""]
    lines = format_skeleton(seq).split("\r\n")  # repr: exact, with a decimal point
    assert lines[3] == f"{BIG_ID} 0 0 3 0 0 0 0.1 -0.25 2"
    assert lines[5] == "0.1234567891 -2.0 1e-05 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 2"
    assert format_skeleton(make_sequence(0, [], np.zeros((0, 25, 3)))) == "0\r\n"


def test_writer_kinect_format_reads_back_rounded(tmp_path):
    seq = random_sequence(1)
    back = read_skeleton(write_skeleton(tmp_path / "k.skeleton", seq, float_format=FLOAT_KINECT))
    round7 = np.vectorize(lambda v: float("%.7g" % v))
    for f in ("xyz", "depth_xy", "color_xy", "orientation", "lean"):
        np.testing.assert_array_equal(getattr(back, f), round7(getattr(seq, f)))
    for f in ("body_id", "body_frame", "body_slot", "clipped_edges", "hand_left_state",
              "joint_tracking_state"):
        np.testing.assert_array_equal(getattr(back, f), getattr(seq, f))


def test_writer_rejects_what_it_cannot_write_faithfully(tmp_path):
    seq = random_sequence()
    p = tmp_path / "bad.skeleton"

    def fails(match, **changes):
        with pytest.raises(ValueError, match=match):
            write_skeleton(p, dataclasses.replace(seq, **changes))
        assert not p.exists()

    xyz = seq.xyz.copy()
    xyz[3, 7, 1] = np.inf
    fails(r"bad\.skeleton: xyz of body record 3 \(frame 4\) must be finite, found inf", xyz=xyz)
    lean = seq.lean.copy()
    lean[5, 0] = np.nan
    fails(r"lean of body record 5 \(frame 4\) must be finite", lean=lean)
    jts = seq.joint_tracking_state.astype(float)
    jts[2, 3] = 1.5
    fails(r"joint_tracking_state of body record 2 \(frame 2\) must be an int32 integer, found 1\.5",
          joint_tracking_state=jts)
    fails(r"clipped_edges of body record 0 \(frame 1\) must be an int32 integer, found 4294967296",
          clipped_edges=np.full(6, 2**32))
    fails(r"color_xy must have shape \(6, 25, 2\)", color_xy=seq.color_xy[:, :24])
    fails("body_frame does not match bodies_per_frame", body_frame=seq.body_frame[::-1].copy())
    fails("body_slot does not match", body_slot=np.zeros(6, np.int64))
    fails("bodies_per_frame must hold 5", bodies_per_frame=seq.bodies_per_frame[:4])
    fails(r"body_id of body record 1 \(frame 1\) is negative", body_id=np.array([0, -1, 0, 0, 0, 0]))
    fails("body_id must be 6 integers", body_id=np.zeros(6))
    with pytest.raises(ValueError, match="float_format"):
        format_skeleton(seq, float_format="%10.3f")
    with pytest.raises(ValueError, match="float_format"):
        format_skeleton(seq, float_format="%d")
    with pytest.raises(ValueError, match="newline"):
        format_skeleton(seq, "\r")
    assert list(tmp_path.iterdir()) == []


# ---- malformed files: the error names the file and the 1-based line ---------------------

def _lines() -> list[str]:
    return hand_file("\n").split("\n")[:-1]  # 1 + (1 + 27) + (1 + 2 * 27) = 84 lines


def _edit(lines: list[str], i: int, new: str | None) -> str:
    out = list(lines)
    if new is None:
        del out[i]
    else:
        out[i] = new
    return "\r\n".join(out) + "\r\n"


@pytest.mark.parametrize(
    "make, line, words",
    [
        (lambda L: "", 1, "empty"),
        (lambda L: " \r\n\r\n", 1, "empty"),
        (lambda L: "\r\n".join(L[:50]) + "\r\n", 51, "end of file"),            # cut inside body 1's joints
        (lambda L: "\r\n".join(L[:29]) + "\r\n", 30, "declares 2 frames, found 1"),  # cut after frame 1
        (lambda L: _edit(L, 10, " ".join(L[10].split()[:11])), 11, "found 11"),  # joint line, 11 values
        (lambda L: _edit(L, 10, L[10] + " 7"), 11, "found 13"),
        (lambda L: _edit(L, 10, L[10].replace(" ", " abc ", 1)), 11, "found 13"),
        (lambda L: _edit(L, 12, "0.1 0.2 x3 4 5 6 7 8 9 10 11 2"), 13, "non-numeric value 'x3'"),
        (lambda L: _edit(L, 3, "24"), 4, "numJoints must be 25, found 24"),
        (lambda L: _edit(L, 0, "3"), 85, "declares 3 frames, found 2"),
        (lambda L: _edit(L, 0, "1"), 30, "after the 1 frames declared"),
        (lambda L: _edit(L, 0, "-2"), 1, "non-negative integer"),
        (lambda L: _edit(L, 0, "2.5"), 1, "non-negative integer"),
        (lambda L: _edit(L, 29, "3"), 30, "declares 3 bodies, found 2"),
        (lambda L: _edit(L, 1, "0"), 2, None),   # frame 1 says 0 bodies: its body lines are orphaned
        (lambda L: _edit(L, 20, ""), 21, "blank line"),
        (lambda L: _edit(L, 20, None), 29, "expected a joint line"),  # 24 joints: line 29 is the next frame header
        (lambda L: _edit(L, 2, L[2].replace(str(BIG_ID), "7.2e16")), 3, "bodyID"),
        (lambda L: _edit(L, 2, L[2].replace(str(BIG_ID), "-1")), 3, "bodyID"),
        (lambda L: _edit(L, 2, L[2].replace(str(BIG_ID), str(2**64))), 3, "bodyID"),
        (lambda L: _edit(L, 5, L[5][: L[5].rfind(" ")] + " 1.5"), 6, "trackingState must be an integer"),
        (lambda L: _edit(L, 2, L[2].replace(" 2", " 0.5", 1)), 3, "must be integers"),
    ],
)
def test_malformed(tmp_path, make, line, words):
    path = write(tmp_path, make(_lines()), "S001C001P001R001A001.skeleton")
    with pytest.raises(SkeletonFormatError) as info:
        read_skeleton(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(path) in str(err) and err.path == str(path)
    assert err.line == line, str(err)
    assert f"line {line}" in str(err)
    if words:
        assert words in str(err)


@pytest.mark.parametrize("token", ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("line0, field", [(2, 7), (2, 8), (4, 0), (4, 2), (40, 4), (4, 5), (4, 7), (83, 10)])
def test_non_finite_value_is_refused(tmp_path, token, line0, field):
    # leanX/Y of a body line (line 3), x/z, depthY, colorX, orientationW/Z of joint lines: the
    # reader refuses the token itself (not only preparation), naming the file and the line.
    lines = _lines()
    values = lines[line0].split()
    assert len(values) in (10, 12)
    values[field] = token
    path = write(tmp_path, _edit(lines, line0, " ".join(values)), "S001C001P001R001A001.skeleton")
    with pytest.raises(SkeletonFormatError) as info:
        read_skeleton(path)
    err = info.value
    assert err.path == str(path) and err.line == line0 + 1, str(err)
    assert f"{path}, line {line0 + 1}: value {token!r} is not a finite number" in str(err)


def test_value_beyond_float32_reads_as_finite_float64(tmp_path):
    # The contract: finite float64 out of the reader; the float32 range is checked where a field
    # is stored as float32 (preparation, after its cast: tests/data/test_ntu_value_checks.py).
    lines = _lines()
    values = lines[2].split()
    values[7] = "1e39"
    seq = read_skeleton(write(tmp_path, _edit(lines, 2, " ".join(values)), "S001C001P001R001A001.skeleton"))
    assert seq.lean[0, 0] == 1e39 and np.isfinite(seq.lean).all()


def test_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(SkeletonFormatError("a.skeleton", 3, "bad")))
    assert (e.path, e.line, e.reason) == ("a.skeleton", 3, "bad") and str(e) == "a.skeleton, line 3: bad"


def test_parse_ntu_name():
    assert parse_ntu_name("S001C002P003R002A013") == (1, 2, 3, 2, 13)
    assert parse_ntu_name("/x/y/S032C003P106R002A120.skeleton") == (32, 3, 106, 2, 120)
    for bad in ("S01C002P003R002A013", "S001C002P003R002A013.txt", "foo", "S000C001P001R001A001",
                "s001c002p003r002a013", "S001C002P003R002A0133"):
        with pytest.raises(ValueError, match="bad NTU sample name"):
            parse_ntu_name(bad)
