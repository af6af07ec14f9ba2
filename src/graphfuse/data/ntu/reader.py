"""Reader (and writer) for the NTU RGB+D ``.skeleton`` text format.

Format (Shahroudy et al., CVPR 2016; read by ``Matlab/read_skeleton_file.m`` in
shahroudy/NTURGB-D and by ``read_skeleton_filter`` in the official Shift-GCN
``data_gen/ntu_gendata.py``)::

    <numFrames>
    repeat numFrames:
      <numBodies>
      repeat numBodies:
        bodyID clippedEdges handLeftConfidence handLeftState handRightConfidence
               handRightState isRestricted leanX leanY trackingState          (10 values)
        <numJoints = 25>
        repeat 25:
          x y z depthX depthY colorX colorY orientationW orientationX orientationY
                orientationZ trackingState                                     (12 values)

Lines may end in CRLF. ``bodyID`` is a 64-bit Kinect tracking id; it is parsed as an exact
unsigned integer here (the official Python reader goes through ``float`` and loses digits).

Parsing is vectorised: the file is read at once, every byte is mapped to a class code,
tokens and their line numbers are found with numpy on the byte buffer, every line is
classified by its token count and the grammar is checked with index arithmetic. The numbers
are converted in one pass over all tokens (:func:`_simple_decimals`: each token read as two
8-byte words, checked and converted with exact float64 steps, equal to Python's ``float``
bit for bit); the few tokens outside that form (17-digit body ids, exponents) go through
``float``. There is no Python loop over frames, bodies or joints. Preparation reads files
through :func:`_read_joints`: the same checks, only the values it uses converted.

:func:`format_skeleton` / :func:`write_skeleton` are the project's one writer of the format
(tests, benchmarks and the synthetic dataset of :mod:`graphfuse.data.synthetic.ntu` use
it), with floats either exact (``repr``, the default) or as in the dataset's files
(``float_format="%.7g"``, :data:`FLOAT_KINECT`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphfuse.io import atomic_path

__all__ = [
    "FLOAT_KINECT",
    "FLOAT_REPR",
    "NTU_NAME_RE",
    "NUM_JOINTS",
    "SkeletonFormatError",
    "SkeletonSequence",
    "format_skeleton",
    "make_sequence",
    "parse_ntu_name",
    "parse_skeleton",
    "read_skeleton",
    "write_skeleton",
]

NUM_JOINTS = 25
_BODY_FIELDS = 10
_JOINT_FIELDS = 12
_JOINT_TOKENS_USED = np.array([0, 1, 2, 11])  # x y z ... trackingState

#: ``SsssCcccPpppRrrrAaaa``: setup, camera, performer (subject), replication, action.
NTU_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


class SkeletonFormatError(ValueError):
    """A ``.skeleton`` file does not follow the format. ``line`` is 1-based (0: unknown)."""

    def __init__(self, path: str | os.PathLike, line: int, reason: str):
        self.path = str(path)
        self.line = int(line)
        self.reason = reason
        where = f"{self.path}, line {self.line}" if self.line > 0 else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the three-argument constructor picklable (multiprocessing)
        return (type(self), (self.path, self.line, self.reason))


@dataclass(eq=False)
class SkeletonSequence:
    """Every field of one ``.skeleton`` file, one row per body record (B records in all).

    A body record is one body in one frame. ``body_frame[b]`` is its 0-based frame index and
    ``body_slot[b]`` its order of appearance within that frame (the "body index" of the
    official ``read_xyz``, which is *not* a tracking identity: slots can swap between
    frames). Records are in file order, so ``body_frame`` is non-decreasing.

    Shapes: ``B`` body records, ``V = 25`` joints.
    """

    path: str
    num_frames: int                    #: declared frame count (first line)
    bodies_per_frame: np.ndarray       #: (num_frames,) int64
    body_frame: np.ndarray             #: (B,) int64
    body_slot: np.ndarray              #: (B,) int64
    body_id: np.ndarray                #: (B,) uint64, exact
    clipped_edges: np.ndarray          #: (B,) int32 (bit flags)
    hand_left_confidence: np.ndarray   #: (B,) int32
    hand_left_state: np.ndarray        #: (B,) int32
    hand_right_confidence: np.ndarray  #: (B,) int32
    hand_right_state: np.ndarray       #: (B,) int32
    is_restricted: np.ndarray          #: (B,) int32
    lean: np.ndarray                   #: (B, 2) float64, (leanX, leanY)
    tracking_state: np.ndarray         #: (B,) int32, body tracking state
    xyz: np.ndarray                    #: (B, V, 3) float64, camera space in metres
    depth_xy: np.ndarray               #: (B, V, 2) float64, pixel in the 512x424 depth map
    color_xy: np.ndarray               #: (B, V, 2) float64, pixel in the 1920x1080 RGB frame
    orientation: np.ndarray            #: (B, V, 4) float64, quaternion (W, X, Y, Z)
    joint_tracking_state: np.ndarray   #: (B, V) int32, 0 not tracked, 1 inferred, 2 tracked

    @property
    def num_bodies(self) -> int:
        """Number of body records B (bodies summed over frames)."""
        return int(self.body_frame.shape[0])

    @property
    def max_bodies(self) -> int:
        """Largest number of bodies in one frame (0 for a file without bodies)."""
        return int(self.bodies_per_frame.max(initial=0))


def _error(source: str, line0: int | np.integer, reason: str) -> SkeletonFormatError:
    return SkeletonFormatError(source, int(line0) + 1, reason)


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def read_skeleton(path: str | os.PathLike) -> SkeletonSequence:
    """Read one NTU RGB+D ``.skeleton`` file (every field).

    Raises :class:`SkeletonFormatError` (a ``ValueError``) naming the file and the 1-based
    line on any deviation from the format: empty or truncated file, a line with the wrong
    number of values, a non-numeric or non-finite value (``nan``, ``inf``, ``1e400``),
    ``numJoints != 25``, a frame or body count that does not match the data that follows, or
    trailing data. Every float of the result is finite (float64; a value beyond float32's
    range such as ``1e39`` reads, and preparation refuses it after its cast to float32).
    """
    path = Path(path)
    return parse_skeleton(path.read_bytes(), source=str(path))


def parse_skeleton(raw: bytes, source: str = "<bytes>") -> SkeletonSequence:
    """Parse the bytes of a ``.skeleton`` file; ``source`` names it in errors."""
    return _parse(raw, source, full=True)


@dataclass(eq=False)
class _Joints:
    """What preparation needs of a file (see :func:`_parse` with ``full=False``)."""

    path: str
    num_frames: int
    body_frame: np.ndarray  #: (B,) int64
    body_slot: np.ndarray   #: (B,) int64
    xyz: np.ndarray         #: (B, V, 3) float64

    @property
    def num_bodies(self) -> int:
        return int(self.body_frame.shape[0])


def _read_joints(path: str | os.PathLike) -> _Joints:
    """The joints and body layout of a file, after every check of :func:`read_skeleton`.

    For preparation: the same parse and the same errors as :func:`read_skeleton`, without
    building the fields that preparation does not use (pixels, orientations, states).
    """
    path = Path(path)
    return _parse(path.read_bytes(), str(path), full=False)


def _parse(raw: bytes, source: str, full: bool) -> SkeletonSequence | _Joints:
    buf = np.frombuffer(raw, dtype=np.uint8)
    code, tok_pos = _scan(raw)
    n_tok = int(tok_pos.size)
    if n_tok == 0:
        raise _error(source, 0, "empty file")
    newline_pos = np.flatnonzero(buf == 10)
    # Tokens before each newline give the token count of every line (line i ends at newline i).
    before = np.searchsorted(tok_pos, newline_pos)
    ends = np.concatenate((before, [n_tok]))
    line_first_tok = np.concatenate(([0], before))
    counts = ends - line_first_tok
    n_lines = int(np.flatnonzero(counts)[-1]) + 1  # up to the last line holding data
    counts = counts[:n_lines]                       # (trailing blank lines are fine)
    line_first_tok = line_first_tok[:n_lines]

    blank = _first(counts == 0)
    if blank is not None:
        raise _error(source, blank, "blank line inside the data")
    bad = _first((counts != 1) & (counts != _BODY_FIELDS) & (counts != _JOINT_FIELDS))
    if bad is not None:
        raise _error(
            source, bad,
            f"expected 1 value (a count), {_BODY_FIELDS} (a body line) or {_JOINT_FIELDS} "
            f"(a joint line), found {int(counts[bad])}",
        )
    need = None
    if not full:  # preparation: every token is checked, but only counts, body lines, x y z and
        # the joint trackingState are converted (a joint line's other 8 values are not used)
        joint = counts == _JOINT_FIELDS
        need = ~np.repeat(joint, counts)
        need[(line_first_tok[joint][:, None] + _JOINT_TOKENS_USED).reshape(-1)] = True
        need = np.flatnonzero(need)
    values = _to_float(raw, code, tok_pos, lambda i: int(np.searchsorted(newline_pos, tok_pos[i])), source, need)

    # ---- grammar, by index arithmetic -------------------------------------------------
    errors: list[tuple[int, str]] = []  # (0-based line, reason); the earliest line is reported

    if counts[0] != 1:
        errors.append((0, "the first line must hold the frame count"))
    body_lines = np.flatnonzero(counts == _BODY_FIELDS)
    nj_lines = body_lines + 1
    joint_lines = (body_lines[:, None] + 2 + np.arange(NUM_JOINTS)).reshape(-1)

    past_end = nj_lines >= n_lines
    if past_end.any():
        errors.append((n_lines, "unexpected end of file: expected the joint count after a body line"))
    nj_ok = nj_lines[~past_end]
    bad = _first(counts[nj_ok] != 1)
    if bad is not None:
        errors.append((nj_ok[bad], "expected the joint count (1 value) after a body line"))
    else:
        nj_vals = values[line_first_tok[nj_ok]]
        bad = _first(nj_vals != NUM_JOINTS)
        if bad is not None:
            errors.append((nj_ok[bad], f"numJoints must be {NUM_JOINTS}, found {_fmt(nj_vals[bad])}"))

    past_end = joint_lines >= n_lines
    if past_end.any():
        errors.append((n_lines, "unexpected end of file inside the joints of a body"))
    j_ok = joint_lines[~past_end]
    bad = _first(counts[j_ok] != _JOINT_FIELDS)
    if bad is not None:
        errors.append((j_ok[bad], (f"expected a joint line ({_JOINT_FIELDS} values), found a line of "
                                  f"{int(counts[j_ok[bad]])}")))

    role = np.zeros(n_lines, dtype=np.int8)  # 0 free, 1 body, 2 numJoints, 3 joint
    role[body_lines] = 1
    role[nj_ok] = 2
    role[j_ok] = 3
    bad = _first((role == 0) & (counts == _JOINT_FIELDS))
    if bad is not None:
        errors.append((bad, "joint line outside the 25 joint lines of a body"))

    header_lines = np.flatnonzero((role == 0) & (counts == 1))
    if header_lines.size and header_lines[0] == 0:
        header_lines = header_lines[1:]
    num_frames_val = values[0] if counts[0] == 1 else -1.0
    if counts[0] == 1 and not _is_count(num_frames_val):
        errors.append((0, f"frame count must be a non-negative integer, found {_fmt(num_frames_val)}"))
    num_frames = int(num_frames_val) if _is_count(num_frames_val) else -1

    if num_frames >= 0:
        if header_lines.size < num_frames:
            errors.append((n_lines, (f"unexpected end of file: line 1 declares {num_frames} frames, "
                                    f"found {header_lines.size}")))
        elif header_lines.size > num_frames:
            errors.append((header_lines[num_frames],
                           f"data after the {num_frames} frames declared in line 1"))

    nb_vals = values[line_first_tok[header_lines]]
    bad = _first(~_is_count(nb_vals))
    if bad is not None:
        errors.append((header_lines[bad],
                       f"body count must be a non-negative integer, found {_fmt(nb_vals[bad])}"))

    body_frame = np.searchsorted(header_lines, body_lines) - 1
    bad = _first(body_frame < 0)
    if bad is not None:
        errors.append((body_lines[bad], "body line before the first frame's body count"))

    if not errors:
        found = np.bincount(body_frame, minlength=header_lines.size)
        bad = _first(found != nb_vals)
        if bad is not None:
            errors.append((header_lines[bad], (f"frame {bad + 1} declares {_fmt(nb_vals[bad])} bodies, "
                                              f"found {int(found[bad])}")))

    # ---- fields -------------------------------------------------------------------------
    if not errors:
        body_vals = values[line_first_tok[body_lines][:, None] + np.arange(_BODY_FIELDS)]
        joint_first = line_first_tok[joint_lines]
        if full:
            joint_vals = values[joint_first[:, None] + np.arange(_JOINT_FIELDS)]
            joint_vals = joint_vals.reshape(-1, NUM_JOINTS, _JOINT_FIELDS)
            joint_state = joint_vals[:, :, 11]
        else:  # only what preparation uses (and checks)
            joint_state = values[joint_first + 11]
        int_body = body_vals[:, [1, 2, 3, 4, 5, 6, 9]]
        bad = _first(~_is_int32(int_body).all(axis=1))
        if bad is not None:
            errors.append((body_lines[bad], ("clippedEdges, hand confidences/states, isRestricted and "
                                            "trackingState must be integers")))
        bad = _first(~_is_int32(joint_state).reshape(-1))
        if bad is not None:
            errors.append((joint_lines[bad], "joint trackingState must be an integer"))
    # A non-finite token (nan, inf, or 1e400, which overflows float64) is refused here, so no
    # field of the sequence (lean, xyz, depth/color pixels, orientation) is NaN or infinite.
    # Values finite in float64 but beyond float32 (1e39) read; where a field is stored as
    # float32 (the joints, by preparation) it is checked after the cast.
    bad = _first(~np.isfinite(values))
    if bad is not None:
        text = _token_text(raw, int(tok_pos[bad]))
        errors.append((int(np.searchsorted(newline_pos, tok_pos[bad])), f"value {text!r} is not a finite number"))
    if errors:
        line, reason = min(errors, key=lambda e: e[0])
        raise _error(source, line, reason)

    body_id = _parse_body_ids(buf, tok_pos[line_first_tok[body_lines]], body_lines, source)
    nb = nb_vals.astype(np.int64)
    frame_first_body = np.concatenate(([0], np.cumsum(nb)[:-1]))
    body_frame = body_frame.astype(np.int64)
    body_slot = np.arange(body_lines.size, dtype=np.int64) - frame_first_body[body_frame]
    if not full:
        xyz = values[joint_first[:, None] + np.arange(3)].reshape(-1, NUM_JOINTS, 3)
        return _Joints(source, num_frames, body_frame, body_slot, xyz)
    return SkeletonSequence(
        path=source,
        num_frames=num_frames,
        bodies_per_frame=nb,
        body_frame=body_frame,
        body_slot=body_slot,
        body_id=body_id,
        clipped_edges=body_vals[:, 1].astype(np.int32),
        hand_left_confidence=body_vals[:, 2].astype(np.int32),
        hand_left_state=body_vals[:, 3].astype(np.int32),
        hand_right_confidence=body_vals[:, 4].astype(np.int32),
        hand_right_state=body_vals[:, 5].astype(np.int32),
        is_restricted=body_vals[:, 6].astype(np.int32),
        lean=np.ascontiguousarray(body_vals[:, 7:9]),
        tracking_state=body_vals[:, 9].astype(np.int32),
        xyz=np.ascontiguousarray(joint_vals[:, :, 0:3]),
        depth_xy=np.ascontiguousarray(joint_vals[:, :, 3:5]),
        color_xy=np.ascontiguousarray(joint_vals[:, :, 5:7]),
        orientation=np.ascontiguousarray(joint_vals[:, :, 7:11]),
        joint_tracking_state=joint_vals[:, :, 11].astype(np.int32),
    )


def _token_text(raw: bytes, pos: int, limit: int = 40) -> str:
    """The token starting at byte ``pos`` (at most ``limit`` bytes), for an error message."""
    tok = raw[pos:pos + limit + 1].split(maxsplit=1)[0]
    return tok[:limit].decode("ascii", "backslashreplace") + ("..." if len(tok) > limit else "")


def _fmt(v: float) -> str:
    return str(int(v)) if np.isfinite(v) and float(v).is_integer() else repr(float(v))


def _is_count(v: np.ndarray | float) -> np.ndarray | bool:
    v = np.asarray(v)
    out = np.isfinite(v) & (v >= 0) & (v == np.floor(v))
    return out if out.ndim else bool(out)


def _is_int32(v: np.ndarray) -> np.ndarray:
    return np.isfinite(v) & (v == np.floor(v)) & (np.abs(v) < 2**31)


# ----------------------------------------------------------------------------------------
# Numbers: one vectorised pass over the tokens, exact (correctly rounded, as Python float)
# ----------------------------------------------------------------------------------------

# Every byte of a file is first mapped to a class code, so that 8 bytes of a token can be
# tested at once as one uint64 ("SIMD within a register"): a digit maps to its value 0..9,
# '.' to 0x10, '-' to 0x20, whitespace (bytes.split(): \t \n \v \f \r and space) to 0x80,
# and any other byte to 0x40.
_WS, _OTHER, _MINUS, _DOT = 0x80, 0x40, 0x20, 0x10
_BYTE_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_BYTE_CLASS[48:58] = np.arange(10)
_BYTE_CLASS[46] = _DOT
_BYTE_CLASS[45] = _MINUS
_BYTE_CLASS[[9, 10, 11, 12, 13, 32]] = _WS
_CLASS_TABLE = _BYTE_CLASS.tobytes()


def _bytes8(b: int) -> np.uint64:
    return np.uint64(int.from_bytes(bytes([b]) * 8, "little"))


_U1, _U3 = np.uint64(1), np.uint8(3)
_EVERY_WS, _EVERY_DOT, _LOW_NIBBLES = _bytes8(_WS), _bytes8(_DOT), _bytes8(0x0F)
# A '-' is allowed in the first byte of a token only; any other class bit is not allowed.
_NOT_ALLOWED_0 = _bytes8(_OTHER) | (_bytes8(_MINUS) & np.uint64(0xFFFF_FFFF_FFFF_FF00))
_NOT_ALLOWED_1 = _bytes8(_OTHER) | _bytes8(_MINUS)
# Scale factors by token length L (the digits of a token are read as two 8-digit numbers A
# and B, the token left-aligned and padded with zeros): the digit string is
# A / 10^(8-L) (L <= 8) or A * 10^(L-8) + B / 10^(16-L) (L > 8); every step is exact.
_DIV_A = np.array([10.0 ** (8 - n) if n < 8 else 1.0 for n in range(17)])
_MUL_A = np.array([10.0 ** (n - 8) if n > 8 else 1.0 for n in range(17)])
_DIV_B = np.array([10.0 ** (16 - n) if n > 8 else 1.0 for n in range(17)])
_POW10_F = 10.0 ** np.arange(17)
_NO_DOT_SCALE = np.array([10.0, 1.0, 1.0])  # by dot count: a token without '.' reads as "<token>."
_SIGN = np.array([1.0, -1.0])
#: Above this share of tokens outside the fast path (exponents, 16+ characters: e.g. files
#: written with ``repr`` floats), the whole file goes through numpy's C text parser instead.
_SLOW_SHARE = 0.25
_TOKEN_RE = re.compile(rb"[^ \t\n\r\x0b\x0c]+")


def _scan(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(code, tok_pos)``: the class code of every byte and the byte offset of every token.

    ``code`` is padded: ``code[0]`` and the 16 bytes after the data are whitespace, so that
    ``code[1 + i]`` is the class of ``raw[i]`` and a 16-byte window at any token stays inside.
    (``bytes.translate`` maps the bytes in C, about twice as fast as a numpy table lookup.)
    """
    n = len(raw)
    code = np.frombuffer(b"\x80" + raw.translate(_CLASS_TABLE) + b"\x80" * 16, dtype=np.uint8)
    ws = code >= _WS
    # A token starts at a non-whitespace byte that follows whitespace (or the file start).
    return code, np.flatnonzero(ws[:n] & ~ws[1:n + 1])


def _eight_digits(g: np.ndarray) -> np.ndarray:
    """The 8-digit numbers whose digits (0..9, first digit in the lowest byte) fill ``g``."""
    g = ((g * np.uint64(10 * 256 + 1)) >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF)
    g = ((g * np.uint64(100 * 65536 + 1)) >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)
    return (g * np.uint64(10000 * 2**32 + 1)) >> np.uint64(32)


def _below_lowest_flag(flags: np.ndarray) -> np.ndarray:
    """The bits below the lowest set bit of each word (the low 63 bits where none is set)."""
    return (flags ^ (flags - _U1)) >> _U1


def _simple_decimals(code: np.ndarray, tok_pos: np.ndarray,
                     need: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values, ok)``: every token of the form ``-?digits[.digits]`` with at most 15 characters.

    ``values[i]`` equals ``float(token)`` bit for bit where ``ok[i]``; other tokens (an
    exponent, a sign elsewhere, 16+ characters, no digit, any other byte) have ``ok`` False.
    Exactness: the mantissa ``m`` (at most 15 digits, so below 2^53) is assembled with
    exact float64 operations on integers and divided once by ``10^q`` (q <= 15 digits after
    the point, exact in float64); one IEEE division of exact operands is correctly rounded,
    which is the conversion Python's ``float`` performs (Clinger's fast path). With ``need``
    (token indices), every token is checked but only those values are computed (others: 0.0).
    """
    # Two unaligned 8-byte words per token, at the token and 8 bytes after it.
    words = np.ndarray(shape=(code.size - 7,), dtype=np.uint64, buffer=code, strides=(1,))
    w0 = words[tok_pos + 1]
    w1 = words[tok_pos + 9]
    ws0 = w0 & _EVERY_WS
    inside0 = _below_lowest_flag(ws0)  # the bytes before the first whitespace (the token)
    ws1 = w1 & _EVERY_WS
    inside1 = _below_lowest_flag(ws1) * (ws0 == 0)
    ok = (ws0 | ws1) != 0  # the token ends within 16 bytes
    w0 &= inside0
    w1 &= inside1
    # inside0 has 8b + 7 bits for whitespace at byte b, 63 for none (then inside1: 8b' + 7).
    length = (np.bitwise_count(inside0) + np.bitwise_count(inside1)) >> _U3
    ok &= ((w0 & _NOT_ALLOWED_0) | (w1 & _NOT_ALLOWED_1)) == 0
    negative = (w0 & np.uint64(_MINUS)) != 0
    dot0 = w0 & _EVERY_DOT
    dot1 = w1 & _EVERY_DOT
    dots = np.bitwise_count(dot0) + np.bitwise_count(dot1)
    ok &= (dots <= 1) & (length - dots - negative >= 1) & (length <= 15)  # one digit at least
    # Bytes before the '.': dot ^ (dot - 1) has 8b + 5 bits for a '.' at byte b (64: none).
    before0 = np.bitwise_count(dot0 ^ (dot0 - _U1)) >> _U3
    before1 = np.bitwise_count(dot1 ^ (dot1 - _U1)) >> _U3
    dot_pos = before0 + before1 * (before0 == 8)
    if need is not None:  # the values of these tokens only (the others stay 0.0)
        w0, w1, length, dots, dot_pos, negative = (x[need] for x in (w0, w1, length, dots, dot_pos, negative))
    n = length.astype(np.intp)
    # The digit string with '.' and '-' read as the digit 0 (exact: below 10^16 and split in two).
    a = _eight_digits(w0 & _LOW_NIBBLES).astype(np.float64)
    b = _eight_digits(w1 & _LOW_NIBBLES).astype(np.float64)
    raw = (a / _DIV_A.take(n)) * _MUL_A.take(n) + b / _DIV_B.take(n)
    raw *= _NO_DOT_SCALE.take(dots)
    # With q digits after the point: raw = high * 10^(q+1) + 0 * 10^q + low; m = high * 10^q + low.
    q = np.maximum(n - 1 - dot_pos.astype(np.intp), 0)
    scale = _POW10_F.take(np.minimum(q, 15))
    high = np.floor(raw / (scale * 10.0))  # exact: see below
    values = (high * scale + (raw - high * (scale * 10.0))) / scale
    values *= _SIGN.take(negative.view(np.uint8))
    if need is not None:
        full = np.zeros(tok_pos.size)
        full[need] = values
        values = full
    return values, ok
    # floor(raw / 10^(q+1)) is exact although the division rounds: raw < 10^15, so the
    # quotient's fraction is at most 1 - 10^-q and its rounding error below 10^-q / 2.


def _to_float(raw: bytes, code: np.ndarray, tok_pos: np.ndarray, line_of_token: Callable[[int], int],
              source: str, need: np.ndarray | None = None) -> np.ndarray:
    """All tokens as float64, with the semantics of Python ``float`` (as the official reader).

    Plain decimals (nearly every token of a dataset file) are converted by
    :func:`_simple_decimals`; the few other tokens (the 17-digit body ids, an exponent) go
    through ``float`` one by one, and the first token that ``float`` rejects is reported
    with its line. A file with many other tokens is converted by numpy's C text parser.
    """
    n_tok = tok_pos.size
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        values, ok = _simple_decimals(code, tok_pos, need)
        slow = np.flatnonzero(~ok)
    else:
        values, slow = np.empty(n_tok), np.arange(n_tok)
    if slow.size > _SLOW_SHARE * n_tok:
        try:
            parsed = np.fromstring(raw, dtype=np.float64, sep=" ")
            if parsed.size == n_tok:
                return parsed
        except ValueError:
            pass
    for i in slow.tolist():  # a loop over the tokens outside the fast path only
        tok = _TOKEN_RE.match(raw, int(tok_pos[i])).group()
        try:
            values[i] = float(tok)
        except ValueError:
            text = tok.decode("ascii", "backslashreplace")
            raise _error(source, line_of_token(i), f"non-numeric value {text!r}") from None
    return values


_POW10 = 10 ** np.arange(9, -1, -1, dtype=np.uint64)  # 10^9 .. 10^0


def _parse_body_ids(buf: np.ndarray, starts: np.ndarray, lines: np.ndarray, source: str) -> np.ndarray:
    """Exact unsigned 64-bit values of the decimal tokens starting at byte offsets ``starts``.

    Vectorised: up to 20 digits are right-aligned into a (B, 20) table and combined as
    ``high * 10^10 + low`` from two 10-digit halves, with an explicit overflow check.
    """
    B = starts.size
    if B == 0:
        return np.zeros(0, dtype=np.uint64)
    width = 21  # 20 digits (2^64 - 1 has 20) and the whitespace after them
    idx = starts[:, None] + np.arange(width)
    window = np.where(idx < buf.size, buf[np.minimum(idx, buf.size - 1)], np.uint8(32))
    is_ws = (window == 32) | ((window - np.uint8(9)) <= 4)
    length = np.argmax(is_ws, axis=1)  # first whitespace = token length (0 if none: too long)
    col = np.arange(width)[None, :]
    inside = col < length[:, None]
    digit = window - np.uint8(48)
    ok = (length > 0) & np.all(~inside | (digit <= 9), axis=1)
    aligned = np.zeros((B, 20), dtype=np.uint64)
    rows, cols = np.nonzero(inside[:, :20] & ok[:, None])
    aligned[rows, 20 - length[rows] + cols] = digit[rows, cols]
    high = aligned[:, :10] @ _POW10
    low = aligned[:, 10:] @ _POW10
    limit_hi, limit_lo = divmod(2**64 - 1, 10**10)
    ok &= (high < limit_hi) | ((high == limit_hi) & (low <= limit_lo))
    bad = _first(~ok)
    if bad is not None:
        n = int(length[bad]) or width
        text = bytes(window[bad, :n]).decode("ascii", "backslashreplace")
        raise _error(source, lines[bad], f"bodyID must be an unsigned 64-bit integer, found {text!r}")
    return high * np.uint64(10**10) + low


# ----------------------------------------------------------------------------------------
# Writing (the one writer of the format: tests, benchmarks and the synthetic generator)
# ----------------------------------------------------------------------------------------

#: ``float_format`` that writes every float with ``repr``, the shortest text that reads back
#: as the same float64: an exact round trip (the default).
FLOAT_REPR = "repr"
#: ``float_format`` like the dataset's files: 7 significant digits, as the Kinect v2
#: recorder printed them (C's ``%.7g``: ``3.785547``, ``277.419``, ``-2``, ``1e-05``).
FLOAT_KINECT = "%.7g"
# A printf float conversion with a precision only: a width or flag could put two spaces
# between values, which the dataset never has.
_FLOAT_SPEC_RE = re.compile(r"%\.\d{1,2}[eEfFgG]")
_NEWLINES = ("\r\n", "\n")

# Per-record fields as written, in file order, with their shape after the record axis.
_INT_BODY_FIELDS = ("clipped_edges", "hand_left_confidence", "hand_left_state",
                    "hand_right_confidence", "hand_right_state", "is_restricted")
_FLOAT_FIELDS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("lean", (2,)), ("xyz", (NUM_JOINTS, 3)), ("depth_xy", (NUM_JOINTS, 2)),
    ("color_xy", (NUM_JOINTS, 2)), ("orientation", (NUM_JOINTS, 4)),
)
_INT_FIELDS: tuple[tuple[str, tuple[int, ...]], ...] = (
    *((name, ()) for name in _INT_BODY_FIELDS), ("tracking_state", ()),
    ("joint_tracking_state", (NUM_JOINTS,)),
)


def make_sequence(
    num_frames: int,
    body_frame: np.ndarray,
    xyz: np.ndarray,
    *,
    body_id: np.ndarray | None = None,
    path: str = "<memory>",
    **fields: np.ndarray,
) -> SkeletonSequence:
    """Build a :class:`SkeletonSequence` from joint positions, filling the other fields.

    ``body_frame``: (B,) frame index of each body record, non-decreasing; ``xyz``: (B, 25, 3).
    Missing fields get plausible Kinect values (tracked joints, identity orientation, body
    ids 72057594037927936 + slot). Any field of the dataclass can be given by keyword.
    """
    body_frame = np.asarray(body_frame, dtype=np.int64).reshape(-1)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    B = body_frame.size
    if xyz.shape[0] != B:
        raise ValueError(f"xyz has {xyz.shape[0]} bodies, body_frame {B}")
    if B and (np.any(np.diff(body_frame) < 0) or body_frame[0] < 0 or body_frame[-1] >= num_frames):
        raise ValueError("body_frame must be non-decreasing and within [0, num_frames)")
    per_frame = np.bincount(body_frame, minlength=num_frames).astype(np.int64)
    first = np.concatenate(([0], np.cumsum(per_frame)[:-1])).astype(np.int64)
    slot = np.arange(B, dtype=np.int64) - first[body_frame] if B else np.zeros(0, np.int64)
    if body_id is None:
        body_id = np.uint64(72057594037927936) + slot.astype(np.uint64)
    def identity_orientation() -> np.ndarray:
        orient = np.zeros((B, NUM_JOINTS, 4))
        orient[..., 0] = 1.0
        return orient

    # Built only for the fields not given (the synthetic generator gives them all).
    defaults: dict[str, Callable[[], np.ndarray]] = dict(
        **{name: (lambda: np.zeros(B, dtype=np.int32)) for name in _INT_BODY_FIELDS},
        lean=lambda: np.zeros((B, 2)), tracking_state=lambda: np.full(B, 2, np.int32),
        depth_xy=lambda: np.zeros((B, NUM_JOINTS, 2)), color_xy=lambda: np.zeros((B, NUM_JOINTS, 2)),
        orientation=identity_orientation, joint_tracking_state=lambda: np.full((B, NUM_JOINTS), 2, np.int32),
    )
    unknown = set(fields) - set(defaults)
    if unknown:
        raise TypeError(f"unknown SkeletonSequence fields: {sorted(unknown)}")
    values = {k: np.asarray(fields[k]) if k in fields else make() for k, make in defaults.items()}
    return SkeletonSequence(
        path=path, num_frames=int(num_frames), bodies_per_frame=per_frame, body_frame=body_frame,
        body_slot=slot, body_id=np.asarray(body_id, dtype=np.uint64).reshape(B), xyz=xyz, **values,
    )


def _float_conversion(float_format: str) -> str:
    if float_format == FLOAT_REPR:
        return "%r"  # %r of a Python float is its repr
    if isinstance(float_format, str) and _FLOAT_SPEC_RE.fullmatch(float_format):
        return float_format
    raise ValueError(
        f"float_format must be {FLOAT_REPR!r} (exact round trip) or a printf float conversion with a "
        f"precision such as {FLOAT_KINECT!r} (the dataset's files), got {float_format!r}")


def _writable_values(seq: SkeletonSequence, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Check ``seq`` and return ``(body_id (B,) uint64, values (B, 309) float64)``.

    ``values`` holds every field of a body record after its bodyID, in file order: the 9
    other body values, then 25 x 12 joint values. Integer fields are exact in float64
    (they are checked to be int32), so one float array carries them all.
    """
    T = seq.num_frames
    if not isinstance(T, (int, np.integer)) or T < 0:
        raise ValueError(f"{source}: num_frames must be a non-negative integer, got {T!r}")
    T = int(T)
    counts = np.asarray(seq.bodies_per_frame)
    if counts.shape != (T,) or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise ValueError(f"{source}: bodies_per_frame must hold {T} non-negative integers, "
                         f"got {counts.dtype} {counts.shape}")
    B = int(counts.sum())
    # Records are written in array order, so they must already be in file order.
    frame = np.repeat(np.arange(T, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    for name, expected in (("body_frame", frame), ("body_slot", np.arange(B) - first[frame])):
        got = np.asarray(getattr(seq, name))
        if got.shape != (B,) or not np.array_equal(got, expected):
            raise ValueError(f"{source}: {name} does not match bodies_per_frame (records must be in "
                             f"file order, {B} in all)")
    body_id = np.asarray(seq.body_id)
    if body_id.shape != (B,) or not np.issubdtype(body_id.dtype, np.integer):
        raise ValueError(f"{source}: body_id must be {B} integers, got {body_id.dtype} {body_id.shape}")
    if np.issubdtype(body_id.dtype, np.signedinteger):
        bad = _first(body_id < 0)
        if bad is not None:
            raise ValueError(f"{source}: body_id of body record {bad} (frame {frame[bad]}) is negative")
    arrays = {}
    for name, shape in _FLOAT_FIELDS + _INT_FIELDS:  # a loop over the 13 fields
        arr = np.asarray(getattr(seq, name))
        if arr.shape != (B, *shape):
            raise ValueError(f"{source}: {name} must have shape {(B, *shape)}, got {arr.shape}")
        try:
            arrays[name] = arr.astype(np.float64, copy=False)
        except (TypeError, ValueError):
            raise ValueError(f"{source}: {name} is not numeric ({arr.dtype})") from None
    # What the reader accepts back: finite floats, integer fields that are int32 integers.
    checks = [(name, shape, np.isfinite, "must be finite") for name, shape in _FLOAT_FIELDS]
    checks += [(name, shape, _is_int32, "must be an int32 integer") for name, shape in _INT_FIELDS]
    for name, shape, valid, rule in checks:
        flat = arrays[name].reshape(-1)
        bad = _first(~valid(flat))
        if bad is not None:
            rec = bad // int(np.prod(shape, dtype=np.int64))  # the body record holding it
            raise ValueError(f"{source}: {name} of body record {rec} (frame {frame[rec]}) {rule}, "
                             f"found {_fmt(flat[bad])}")

    values = np.empty((B, 9 + NUM_JOINTS * _JOINT_FIELDS), dtype=np.float64)
    for k, name in enumerate(_INT_BODY_FIELDS):
        values[:, k] = arrays[name]
    values[:, 6:8] = arrays["lean"]
    values[:, 8] = arrays["tracking_state"]
    joints = values[:, 9:].reshape(B, NUM_JOINTS, _JOINT_FIELDS)  # a view (splits the last axis)
    joints[..., 0:3] = arrays["xyz"]
    joints[..., 3:5] = arrays["depth_xy"]
    joints[..., 5:7] = arrays["color_xy"]
    joints[..., 7:11] = arrays["orientation"]
    joints[..., 11] = arrays["joint_tracking_state"]
    return body_id.astype(np.uint64), values


def format_skeleton(seq: SkeletonSequence, newline: str = "\r\n", *, float_format: str = FLOAT_REPR) -> str:
    """The ``.skeleton`` text of ``seq``: every field of every body record, in array order.

    Args:
        seq: the sequence; its records must be in file order (``body_frame`` and
            ``body_slot`` as :func:`make_sequence` and :func:`read_skeleton` give them).
        newline: ``"\\r\\n"`` (the dataset's line end) or ``"\\n"``.
        float_format: :data:`FLOAT_REPR` (default): floats with ``repr``, so reading the text
            back gives the same float64 values. :data:`FLOAT_KINECT` (``"%.7g"``): 7
            significant digits like the dataset's files (integral values without a decimal
            point, e.g. ``0 0 0 0`` for an end joint's orientation). Any ``%.<p>[eEfFgG]``
            conversion is accepted.

    ``bodyID`` is written as an exact unsigned 64-bit integer and the other integer fields as
    integers. Raises ``ValueError`` naming ``seq.path`` (and the body record and frame) for
    a sequence that cannot be written faithfully: inconsistent counts or shapes, a
    non-finite float, an integer field that is not an int32 integer.

    Vectorised (the technique of the synthetic generator): the whole file is one ``%``
    template, joined in C from a per-frame header, each record's bodyID text and a fixed
    record template, and filled from one flat tuple of all values in a single ``%``
    operation. There is no Python loop over frames, bodies or joints.
    """
    return _format(seq, newline, float_format, seq.path)


def _format(seq: SkeletonSequence, newline: str, float_format: str, source: str) -> str:
    if newline not in _NEWLINES:
        raise ValueError(f"{source}: newline must be one of {_NEWLINES!r}, got {newline!r}")
    conv = _float_conversion(float_format)
    body_id, values = _writable_values(seq, source)
    nl = newline
    T, B = int(seq.num_frames), body_id.size
    counts = np.asarray(seq.bodies_per_frame, dtype=np.int64)
    joint_tpl = " ".join([conv] * 11 + ["%d"]) + nl
    # Everything of a record after its bodyID (which goes in as text: no float64 holds it).
    record_tpl = (" %d %d %d %d %d %d " + conv + " " + conv + " %d" + nl
                  + str(NUM_JOINTS) + nl + joint_tpl * NUM_JOINTS)
    # Pieces: [T] then per frame [count, (id, record) * count].
    pieces = np.empty(1 + T + 2 * B, dtype=object)
    pieces[0] = f"{T}{nl}"
    first = np.cumsum(counts) - counts
    if T:
        distinct, which = np.unique(counts, return_inverse=True)  # a handful of body counts
        headers = np.array([f"{c}{nl}" for c in distinct.tolist()], dtype=object)
        pieces[1 + np.arange(T) + 2 * first] = headers[which.reshape(-1)]
    if B:
        id_pos = 2 + np.asarray(seq.body_frame, dtype=np.int64) + 2 * np.arange(B)
        pieces[id_pos] = body_id.astype(str).astype(object)  # exact decimal digits
        pieces[id_pos + 1] = record_tpl
    # Iterating a memoryview of the float64 buffer yields Python floats without the
    # intermediate list of .tolist() (a few per cent of the writing time).
    return "".join(pieces.tolist()) % tuple(memoryview(values.reshape(-1)))


def write_skeleton(
    path: str | os.PathLike,
    seq: SkeletonSequence,
    newline: str = "\r\n",
    *,
    float_format: str = FLOAT_REPR,
) -> Path:
    """Write ``seq`` as a ``.skeleton`` file (see :func:`format_skeleton`); returns the path.

    The write is atomic (a temporary file renamed onto ``path``), so a reader never sees
    a partial file. Errors name ``path``.
    """
    path = Path(path)
    data = _format(seq, newline, float_format, source=str(path)).encode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def parse_ntu_name(name: str | os.PathLike) -> tuple[int, int, int, int, int]:
    """``(setup, camera, performer, replication, action)`` of an NTU sample name.

    Accepts ``SsssCcccPpppRrrrAaaa`` with or without a directory and the ``.skeleton``
    suffix. All five ids are 1-based; the class label is ``action - 1``.
    """
    base = os.path.basename(os.fspath(name)).removesuffix(".skeleton")
    m = NTU_NAME_RE.fullmatch(base)
    if m is None:
        raise ValueError(
            f"bad NTU sample name {os.fspath(name)!r}: expected SsssCcccPpppRrrrAaaa[.skeleton] "
            "with 3-digit ids, e.g. S001C002P003R002A013"
        )
    ids = tuple(int(g) for g in m.groups())
    if min(ids) < 1:
        raise ValueError(f"bad NTU sample name {os.fspath(name)!r}: ids are 1-based, found a 000 field")
    return ids  # type: ignore[return-value]
