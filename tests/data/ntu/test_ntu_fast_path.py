"""The fast NTU path (issue 14): exact vectorised numbers, and preparation equal to a loop reference.

* ``_simple_decimals`` / ``_to_float`` against Python's ``float`` on every token, bit for bit
  (random and hand-picked tokens: signs, points, lengths 1-20, exponents, 17-digit ids);
* ``parse_skeleton`` against a line-by-line loop reader (the way the official
  ``read_skeleton_filter`` reads a file: ``float`` on every value);
* ``prepare_ntu`` (in process and with the worker pool, with and without skipped files)
  against the official algorithm written as plain loops (``read_xyz``: 4 body slots, energy
  from ``np.std`` of the non-empty frames, the two highest) followed by ``pre_normalize``,
  bit for bit, on files made to cover the cases that matter (CRLF and LF, Kinect and repr
  floats, exponents and odd decimals, 1-5 bodies, empty frames, a file over 300 frames, an
  energy tie, a single-person sample next to two-person ones).
"""

from __future__ import annotations

import numpy as np
import pytest

from graphfuse.data.ntu import (
    FLOAT_KINECT,
    FLOAT_REPR,
    SkeletonFormatError,
    compute_stream,
    make_sequence,
    parse_skeleton,
    pre_normalize,
    prepare_ntu,
    write_skeleton,
)
from graphfuse.data.ntu.reader import _scan, _simple_decimals, _to_float

U64 = np.uint64


# ---- numbers ------------------------------------------------------------------------------

def _random_tokens(rng: np.random.Generator, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        nd = int(rng.integers(1, 19))
        digits = "".join(rng.choice(list("0123456789"), nd))
        if rng.random() < 0.3:
            digits = "0" * int(rng.integers(1, 4)) + digits  # leading zeros
        point = int(rng.integers(-1, len(digits) + 1))  # -1: no point
        tok = digits if point < 0 else digits[:point] + "." + digits[point:]
        if rng.random() < 0.5:
            tok = "-" + tok
        if rng.random() < 0.05:
            tok += "e" + str(int(rng.integers(-30, 30)))
        out.append(tok.encode())
    return out


HAND = [b"0", b"-0", b"0.0", b"-0.0", b"1.", b".5", b"-.5", b"5.", b"-5.", b"007", b"1e-05", b"-2.5e-05",
        b"1E5", b"+1", b"+.5", b"1e400", b"123456789012345", b"1234567890123456", b"9007199254740993",
        b"0.30000000000000004", b".123456789012345", b"99999999999999.9", b"72057594037931101",
        b"3.785547", b"277.419", b"-0.2319935", b"0.04830311", b"1036.233", b"2", b"25",
        b"0.000000000000001", b"12345678", b"1234567.8", b"-1234567.8", b"123456789", b"-12345678.9"]


def _values(raw: bytes):
    code, tok = _scan(raw)
    return tok, *_simple_decimals(code, tok)


def test_simple_decimals_equal_python_float_bit_for_bit():
    tokens = HAND + _random_tokens(np.random.default_rng(0), 30000)
    raw = b"\r\n".join(b" ".join(tokens[i:i + 7]) for i in range(0, len(tokens), 7))
    tok, values, ok = _values(raw)
    assert tok.size == len(tokens)
    expected = np.array([float(t) for t in tokens])
    np.testing.assert_array_equal(values[ok].view(U64), expected[ok].view(U64))  # -0.0 kept too
    # Every plain decimal of at most 15 characters takes the fast path; nothing else does.
    plain = np.array([len(t) <= 15 and t.lstrip(b"-").replace(b".", b"", 1).isdigit() for t in tokens])
    np.testing.assert_array_equal(ok, plain)
    assert ok.mean() > 0.5


@pytest.mark.parametrize("bad", [b"-", b".", b"-.", b"1.2.3", b"--1", b"1-", b"1,5", b"\xff1", b"0x10", b"nan"])
def test_simple_decimals_refuse_what_is_not_a_plain_decimal(bad):
    _, _, ok = _values(b"1 " + bad + b" 2.5\n")
    assert ok.tolist() == [True, False, True]


def test_to_float_semantics_of_float_and_first_bad_token():
    tokens = HAND + [b"inf", b"-Infinity", b"nan", b"1_000"]
    raw = b" ".join(tokens)
    code, tok = _scan(raw)
    values = _to_float(raw, code, tok, lambda i: 0, "x")
    np.testing.assert_array_equal(values.view(U64), np.array([float(t) for t in tokens]).view(U64))
    # Mostly slow tokens (repr floats): numpy's text parser, same values.
    reprs = [repr(v).encode() for v in np.random.default_rng(1).normal(size=200).tolist()]
    raw = b" ".join(reprs)
    code, tok = _scan(raw)
    np.testing.assert_array_equal(_to_float(raw, code, tok, lambda i: 0, "x"), [float(t) for t in reprs])
    raw = b"1 2\n3 4.5.6 abc\n"
    code, tok = _scan(raw)
    with pytest.raises(SkeletonFormatError, match=r"f.skeleton, line 2: non-numeric value '4.5.6'"):
        _to_float(raw, code, tok, lambda i: int(np.searchsorted(np.flatnonzero(np.frombuffer(raw, np.uint8) == 10),
                                                                tok[i])), "f.skeleton")


# ---- files ----------------------------------------------------------------------------------

OFFSETS = np.stack([0.02 * np.sin(np.arange(25)), 0.03 * np.arange(25) - 0.4, 0.01 * np.cos(np.arange(25))], 1)


def _motion(rng, T, at):
    """(T, 25, 3) joints: a pose at ``at`` that drifts (plausible values, no symmetry)."""
    return np.asarray(at) + OFFSETS + np.cumsum(rng.normal(0, 0.01, (T, 25, 3)), axis=0)


def _bodies(rng, T, slots):
    """Body records for ``slots`` (list of per-slot frame masks), in file order, and their xyz."""
    tracks = [_motion(rng, T, [0.5 * k - 0.5, 0.05 * k, 2.5 + 0.3 * k]) for k in range(len(slots))]
    frames, xyz = [], []
    for t in range(T):  # a loop over frames of a test-data generator
        for k, mask in enumerate(slots):
            if mask[t]:
                frames.append(t)
                xyz.append(tracks[k][t])
    return np.asarray(frames, dtype=np.int64), np.asarray(xyz).reshape(-1, 25, 3)


def _write(path, T, frames, xyz, *, float_format=FLOAT_KINECT, newline="\r\n", **fields):
    seq = make_sequence(T, frames, xyz, body_id=np.uint64(72057594037931101) + np.arange(len(frames), dtype=U64),
                        **fields)
    write_skeleton(path, seq, newline, float_format=float_format)
    return path


def _make_files(raw):
    """Files of ``synthetic-xsub`` covering the cases of the module docstring; returns their names."""
    rng = np.random.default_rng(14)
    raw.mkdir()
    on = np.ones
    cases = {}
    cases["S001C001P001R001A001"] = {"T": 40, "slots": [on(40, bool), on(40, bool)]}                   # 2 bodies
    cases["S001C002P001R001A002"] = {"T": 25, "slots": [on(25, bool)], "newline": "\n"}                   # 1 body, LF
    gaps = on(30, bool)
    gaps[:3] = gaps[-4:] = gaps[12:15] = False
    cases["S001C001P002R001A003"] = {"T": 30, "slots": [gaps, np.roll(gaps, 5)]}                       # empty frames
    cases["S001C001P002R001A004"] = {"T": 310, "slots": [on(310, bool)]}                               # > 300 frames
    cases["S001C001P003R001A005"] = {"T": 15, "slots": [on(15, bool), on(15, bool)], "float_format": FLOAT_REPR}
    noisy = [np.arange(20) % 3 == 0, on(20, bool), on(20, bool), np.arange(20) < 10, np.arange(20) > 15]
    cases["S001C001P003R001A006"] = {"T": 20, "slots": noisy}                                          # 1-5 bodies
    cases["S001C003P004R001A007"] = {"T": 12, "slots": [on(12, bool)]}                                 # odd tokens
    cases["S001C001P005R001A008"] = {"T": 10, "slots": [on(10, bool), on(10, bool)]}                   # energy tie
    cases["S001C001P006R001A009"] = {"T": 18, "slots": [on(18, bool), np.arange(18) >= 9]}             # late body
    cases["S001C001P007R001A010"] = {"T": 9, "slots": [on(9, bool)]}                                   # identity axes
    cases["S001C002P008R001A001"] = {"T": 33, "slots": [on(33, bool), on(33, bool), on(33, bool)]}
    for name, c in cases.items():
        frames, xyz = _bodies(rng, c["T"], c["slots"])
        if name.endswith("A008"):  # second body = first mirrored in x: exactly equal energies
            xyz[1::2] = xyz[0::2] * [-1, 1, 1]
        if name.endswith("A010"):  # frame 0: spine (0 -> 1) along z, shoulders (4 -> 8) along x
            xyz[0, 1] = xyz[0, 0] + [0, 0, 0.3]
            xyz[0, 8] = xyz[0, 4] + [0.35, 0, 0]
        if name.endswith("A009"):  # a body with all-zero joints in some frames
            xyz[(frames % 4 == 1)] = 0.0
        path = _write(raw / f"{name}.skeleton", c["T"], frames, xyz,
                      float_format=c.get("float_format", FLOAT_KINECT), newline=c.get("newline", "\r\n"))
        if name.endswith("A007"):  # exponents, -0, "5.", ".5", "+" in joint values
            lines = path.read_bytes().split(b"\r\n")
            for k, tok in zip([4, 7, 10, 13, 16, 19, 22, 25, 28, 32, 35, 38], [b"1e-05", b"-0", b"-2.5e-05", b"3.", b".5", b"-.25", b"+0.5",
                                                b"1.5E+00", b"0.1000000", b"-000.3", b"2.000001", b"1e+00"]):
                vals = lines[k].split(b" ")
                vals[k % 3] = tok
                lines[k] = b" ".join(vals)
            path.write_bytes(b"\r\n".join(lines))
    return sorted(cases)


def _loop_read(path):
    """The official ``read_skeleton_filter`` way: line by line, ``float`` on every value."""
    lines = iter(path.read_text().splitlines())
    T = int(next(lines))
    bodies = []
    for t in range(T):
        for m in range(int(next(lines))):
            body = [float(v) for v in next(lines).split()]
            joints = [[float(v) for v in next(lines).split()] for _ in range(int(next(lines)))]
            bodies.append((t, m, body, np.array(joints)))
    return T, bodies


def _loop_read_xyz(path, max_frame=300):
    """The official ``read_xyz`` body selection, as plain loops (ties: the higher slot, as documented)."""
    T, bodies = _loop_read(path)
    data = np.zeros((4, T, 25, 3))
    for t, m, _, joints in bodies:
        if m < 4:
            data[m, t] = joints[:, :3]
    energy = []
    for s in data:
        s = s[s.sum(-1).sum(-1) != 0]
        energy.append(s[:, :, 0].std() + s[:, :, 1].std() + s[:, :, 2].std() if len(s) else 0)
    order = np.argsort(np.array(energy), kind="stable")[::-1][:2]
    data = data[order].transpose(3, 1, 2, 0)[:, :max_frame]
    return data, int((data.sum(0).sum(1) != 0).any(-1).sum())


def test_parse_equals_loop_reader(tmp_path):
    names = _make_files(tmp_path / "raw")
    for name in names:
        path = tmp_path / "raw" / f"{name}.skeleton"
        seq = parse_skeleton(path.read_bytes(), str(path))
        T, bodies = _loop_read(path)
        assert seq.num_frames == T and seq.num_bodies == len(bodies)
        body = np.array([b for _, _, b, _ in bodies])
        joints = np.stack([j for _, _, _, j in bodies])
        np.testing.assert_array_equal(seq.body_frame, [t for t, _, _, _ in bodies])
        np.testing.assert_array_equal(seq.body_slot, [m for _, m, _, _ in bodies])
        for got, want in ((seq.lean, body[:, 7:9]), (seq.xyz, joints[..., :3]), (seq.depth_xy, joints[..., 3:5]),
                          (seq.color_xy, joints[..., 5:7]), (seq.orientation, joints[..., 7:11])):
            np.testing.assert_array_equal(got.view(U64), np.ascontiguousarray(want).view(U64))
        np.testing.assert_array_equal(seq.joint_tracking_state, joints[..., 11])
        np.testing.assert_array_equal(seq.body_id, U64(72057594037931101) + np.arange(len(bodies), dtype=U64))


def _reference(raw, names):
    batch = np.zeros((len(names), 3, 300, 25, 2), np.float32)
    frames = []
    for i, name in enumerate(names):
        data, n = _loop_read_xyz(raw / f"{name}.skeleton")
        batch[i, :, : data.shape[1]] = data
        frames.append(n)
    return pre_normalize(batch), frames


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_equals_loop_reference_bit_for_bit(tmp_path, workers):
    raw = tmp_path / "raw"
    names = _make_files(raw)
    streams = ("bone", "joint_motion", "bone_motion")
    meta = prepare_ntu(raw, tmp_path / "out", "synthetic-xsub", workers=workers, progress=False,
                       write_streams=streams)
    assert meta["skipped"] == []
    for split in ("train", "test"):
        kept = meta["splits"][split]["samples"]
        assert kept == [n for n in names if (n[9:12] in ("001", "002", "004", "005", "007")) == (split == "train")]
        ref, frames = _reference(raw, kept)
        got = np.load(tmp_path / "out" / f"{split}_joint.npy")
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
        assert meta["splits"][split]["num_frames"] == frames
        for s in streams:
            np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{split}_{s}.npy"), compute_stream(ref, s))


def test_prepare_skipped_files_leave_no_rows(tmp_path):
    """Bad files between good ones, in the pool: the kept rows are the good files, in order."""
    raw = tmp_path / "raw"
    names = _make_files(raw)
    bad = ["S001C001P001R002A005", "S001C001P003R002A002", "S001C001P009R001A001"]
    (raw / f"{bad[0]}.skeleton").write_text("2\r\n1\r\n")  # truncated
    (raw / f"{bad[1]}.skeleton").write_text("1\r\n0\r\n")  # no body
    text = (raw / f"{names[0]}.skeleton").read_text().replace("0.", "x.", 1)
    (raw / f"{bad[2]}.skeleton").write_text(text)            # a non-numeric value
    meta = prepare_ntu(raw, tmp_path / "out", "synthetic-xsub", workers=2, progress=False, on_error="skip")
    assert sorted(s["file"] for s in meta["skipped"]) == sorted(f"{b}.skeleton" for b in bad)
    for split in ("train", "test"):
        kept = meta["splits"][split]["samples"]
        assert not set(kept) & set(bad)
        ref, _ = _reference(raw, kept)
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{split}_joint.npy"), ref)
    with pytest.raises(SkeletonFormatError, match=f"{bad[0]}.skeleton, line 3"):
        prepare_ntu(raw, tmp_path / "out2", "synthetic-xsub", workers=2, progress=False)
    assert not list((tmp_path / "out2").glob("*.npy*"))
