"""Synthetic NTU RGB+D: procedurally animated 25-joint Kinect v2 skeletons in real ``.skeleton`` files.

This is graphfuse's built-in default skeleton dataset and the test data of the NTU pipeline.
The files go through the same reader and preparation as the real dataset, so they follow
the official text format exactly (Shahroudy et al., "NTU RGB+D: A Large Scale Dataset for
3D Human Activity Analysis", CVPR 2016; the layout is spelled out in
:mod:`graphfuse.data.ntu.reader`), with CRLF line ends, floats printed with 7 significant
digits and ``bodyID`` as a 64-bit integer, like the files the Kinect v2 recorder wrote. A sample becomes a
:class:`~graphfuse.data.ntu.reader.SkeletonSequence` (:meth:`SyntheticSample.to_sequence`)
and is written by the project's one writer of the format,
:func:`graphfuse.data.ntu.reader.write_skeleton` with ``float_format="%.7g"``.

How a sample is made (see ``docs/data_synthetic.md``):

* **Body model.** A kinematic tree over the 25 Kinect joints with bone lengths from a
  body-proportion model: stature 1.55-1.92 m and segment/stature ratios near the
  anthropometric tables (Winter, *Biomechanics and Motor Control of Human Movement*),
  each varied per subject. A subject keeps its proportions in all its files.
* **Motion.** Joint angles are functions of time, one motion function per action (period,
  amplitude, phase and the moving side vary per performance), on top of an idle posture
  with slow random sway. Forward kinematics gives joint positions; the lower foot is kept
  on the floor (except in the flight phase of a jump).
* **Views.** As in NTU, three cameras at the same height record each performance
  simultaneously from -45, 0 and +45 degrees; in replication 1 the subject faces the
  -45 degree camera, in replication 2 the +45 degree one. Camera ``C001`` is the 0 degree
  camera, ``C002`` the -45 degree and ``C003`` the +45 degree one. The subject stands about
  2.5-3.5 m from each camera. Joint positions are in Kinect camera space (metres, x to the
  right of a subject facing the camera, y up, z away from the camera); ``depthX/Y`` and
  ``colorX/Y`` are pinhole projections into the 512x424 depth and 1920x1080 colour images.
* **Sensor effects.** Gaussian joint jitter, occasional outliers on hands and feet and
  noisy far-side limbs in side views (trackingState 1, "inferred"), a few empty frames
  before and after the performance in some files, and in some files a short-lived
  spurious extra "body" (a compact blob, as Kinect produces from furniture) listed after
  the real bodies, whose motion energy ranks below theirs: the official top-2 selection
  drops it from two-person samples and keeps it as a near-static person 2 otherwise.

Randomness: the motion of a performance depends only on ``(seed, S, P, R, A)`` so its
three camera files show the same movement; everything camera-specific (sensor noise,
empty frames, the noise body, body ids) depends on the whole file name. Files are
therefore byte-identical for a given seed whatever the number of worker processes.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphfuse.cpu_defaults import usable_cpus
from graphfuse.data.ntu.reader import FLOAT_KINECT, SkeletonSequence, make_sequence, write_skeleton
from graphfuse.graphs import ntu25

__all__ = [
    "ACTIONS",
    "SYNTHETIC_TRAIN_SUBJECTS",
    "GENERATOR_VERSION",
    "CAMERA_AZIMUTH_DEG",
    "DEPTH_INTRINSICS",
    "COLOR_INTRINSICS",
    "KINEMATIC_PARENTS",
    "LEAF_JOINTS",
    "SyntheticSample",
    "BodyShape",
    "sample_body_shape",
    "euler_to_matrix",
    "forward_kinematics",
    "project_depth",
    "project_color",
    "synthesize_sample",
    "sample_name",
    "synthetic_sample_names",
    "generate_synthetic_ntu",
    "prepare_synthetic_ntu",
]

#: Bumped whenever the generated data changes for a given seed.
GENERATOR_VERSION = 1

#: Action names; the label is the index, the file action id ``A00k`` is ``index + 1``.
ACTIONS: tuple[str, ...] = (
    "waving",
    "jumping",
    "squatting",
    "kicking",
    "arm_circles",
    "bowing",
    "clapping",
    "stepping_in_place",
    "reaching",
    "handshake",
)
#: Actions performed by two people (the second body is the partner).
TWO_PERSON_ACTIONS: frozenset[int] = frozenset({ACTIONS.index("handshake")})

#: Training performers of the ``synthetic-xsub`` benchmark (performers are 1..10 by default;
#: the test split is performers 3, 6, 8, 10).
SYNTHETIC_TRAIN_SUBJECTS: tuple[int, ...] = (1, 2, 4, 5, 7, 9)

#: Horizontal angle of each camera around the subject (degrees). NTU: "three cameras at the
#: same height but from three different horizontal angles: -45, 0, +45" (Shahroudy et al. 2016).
CAMERA_AZIMUTH_DEG: dict[int, float] = {1: 0.0, 2: -45.0, 3: 45.0}

#: Kinect v2 depth camera pinhole model ``(fx, fy, cx, cy)`` for the 512x424 depth image.
DEPTH_INTRINSICS: tuple[float, float, float, float] = (365.5, 365.5, 256.0, 208.5)
#: Kinect v2 colour camera ``(fx, fy, cx, cy)`` for the 1920x1080 image ...
COLOR_INTRINSICS: tuple[float, float, float, float] = (1060.7, 1060.7, 959.5, 539.5)
#: ... which sits this far (metres, camera x) beside the depth camera.
COLOR_OFFSET_X = 0.052

#: Kinect tracking ids are 64-bit numbers just above 2**56 (e.g. 72057594037931101).
_BODY_ID_BASE = 72057594037927936

# -- skeleton ------------------------------------------------------------------------------------
# 0-based joint indices (graphfuse.graphs.ntu25.JOINT_NAMES order).
SB, SM, NECK, HEAD = 0, 1, 2, 3
L_SH, L_EL, L_WR, L_HA = 4, 5, 6, 7
R_SH, R_EL, R_WR, R_HA = 8, 9, 10, 11
L_HIP, L_KN, L_AN, L_FT = 12, 13, 14, 15
R_HIP, R_KN, R_AN, R_FT = 16, 17, 18, 19
SSH, L_TIP, L_TH, R_TIP, R_TH = 20, 21, 22, 23, 24

_ARM = {"R": (R_SH, R_EL, R_WR, R_HA), "L": (L_SH, L_EL, L_WR, L_HA)}
_LEG = {"R": (R_HIP, R_KN, R_AN, R_FT), "L": (L_HIP, L_KN, L_AN, L_FT)}
_HIPS, _KNEES, _ANKLES, _FEET = [L_HIP, R_HIP], [L_KN, R_KN], [L_AN, R_AN], [L_FT, R_FT]
_SHOULDERS, _ELBOWS = [L_SH, R_SH], [L_EL, R_EL]
#: Joints whose yaw and roll are mirrored: motion functions use one convention for both
#: sides (positive roll = away from the body, positive yaw = towards the midline).
_LEFT_JOINTS = np.array([L_SH, L_EL, L_WR, L_HA, L_HIP, L_KN, L_AN, L_FT, L_TIP, L_TH])

#: Parent of every joint in the kinematic tree used for forward kinematics (-1: root). It
#: differs from the official bone list only at the hand tips and thumbs, which hang off
#: the hand here (the official list chains hand tip -> thumb -> hand).
KINEMATIC_PARENTS = np.array(
    [-1, SB, SSH, NECK, SSH, L_SH, L_EL, L_WR, SSH, R_SH, R_EL, R_WR,
     SB, L_HIP, L_KN, L_AN, SB, R_HIP, R_KN, R_AN, SM, L_HA, L_HA, R_HA, R_HA],
    dtype=np.int64,
)
#: Joints grouped by depth in the tree; forward kinematics processes one depth at a time.
_FK_LEVELS: tuple[np.ndarray, ...] = tuple(
    np.array(level, dtype=np.int64)
    for level in (
        [SB],
        [SM, L_HIP, R_HIP],
        [SSH, L_KN, R_KN],
        [NECK, L_SH, R_SH, L_AN, R_AN],
        [HEAD, L_EL, R_EL, L_FT, R_FT],
        [L_WR, R_WR],
        [L_HA, R_HA],
        [L_TIP, L_TH, R_TIP, R_TH],
    )
)
#: End joints: the Kinect v2 SDK reports an all-zero orientation quaternion for them.
LEAF_JOINTS: tuple[int, ...] = (HEAD, L_FT, R_FT, L_TIP, L_TH, R_TIP, R_TH)
#: Hands and feet: noisier, and where Kinect outliers happen.
_EXTREMITIES = np.array([L_HA, R_HA, L_TIP, L_TH, R_TIP, R_TH, L_FT, R_FT])
_OUTLIER_JOINTS = np.array([L_WR, L_HA, R_WR, R_HA, L_AN, L_FT, R_AN, R_FT, L_TIP, L_TH, R_TIP, R_TH])
_FAR_ARM = {"L": np.array([L_EL, L_WR, L_HA, L_TIP, L_TH]), "R": np.array([R_EL, R_WR, R_HA, R_TIP, R_TH])}

#: Segment lengths as fractions of stature (rest pose: standing, arms hanging).
_RATIOS: dict[str, float] = {
    "spine_low": 0.140,     # spine base -> spine mid
    "spine_up": 0.128,      # spine mid -> spine shoulder
    "neck": 0.045,          # spine shoulder -> neck
    "head": 0.066,          # neck -> head centre
    "shoulder": 0.100,      # half the shoulder width
    "upper_arm": 0.172,
    "forearm": 0.150,
    "hand": 0.045,          # wrist -> hand (palm centre)
    "hand_tip": 0.050,
    "thumb": 0.032,
    "hip": 0.050,           # half the hip-joint width
    "thigh": 0.245,
    "shin": 0.240,
    "foot": 0.068,          # ankle -> foot joint, forwards
}


@dataclass(frozen=True)
class BodyShape:
    """One person's skeleton: ``offsets[j]`` is joint ``j``'s rest position relative to its
    kinematic parent, in a body frame with x to the person's right, y up and z backwards
    (the person faces -z). Shape ``(25, 3)``, metres."""

    height: float
    offsets: np.ndarray


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    """Draw a body: stature ~ U(1.55, 1.92) m and each segment ratio varied by ~4 %."""
    height = float(rng.uniform(1.55, 1.92))
    keys = list(_RATIOS)
    jitter = np.clip(1.0 + 0.04 * rng.standard_normal(len(keys)), 0.88, 1.12)
    r = {k: _RATIOS[k] * height * j for k, j in zip(keys, jitter)}
    off = np.zeros((ntu25.NUM_JOINTS, 3))
    off[SM] = (0.0, r["spine_low"], 0.0)
    off[SSH] = (0.0, r["spine_up"], 0.01)
    off[NECK] = (0.0, r["neck"], 0.0)
    off[HEAD] = (0.0, r["head"], -0.01)
    for side, sign in (("L", -1.0), ("R", 1.0)):
        sh, el, wr, ha = _ARM[side]
        hip, kn, an, ft = _LEG[side]
        off[sh] = (sign * r["shoulder"], -0.015 * height, 0.0)
        off[el] = (0.0, -r["upper_arm"], 0.0)
        off[wr] = (0.0, -r["forearm"], 0.0)
        off[ha] = (0.0, -r["hand"], 0.0)
        off[hip] = (sign * r["hip"], -0.03 * height, 0.0)
        off[kn] = (0.0, -r["thigh"], 0.0)
        off[an] = (0.0, -r["shin"], 0.0)
        off[ft] = (0.0, -0.025 * height, -r["foot"])
    # Palms face the thighs; the thumb points forwards and a little inwards.
    off[L_TIP] = (0.0, -r["hand_tip"], 0.0)
    off[R_TIP] = (0.0, -r["hand_tip"], 0.0)
    off[L_TH] = (0.3 * r["thumb"], -0.4 * r["thumb"], -0.85 * r["thumb"])
    off[R_TH] = (-0.3 * r["thumb"], -0.4 * r["thumb"], -0.85 * r["thumb"])
    return BodyShape(height=height, offsets=off)


# -- rotations and forward kinematics ------------------------------------------------------------
def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Local joint rotations ``Ry(yaw) @ Rz(roll) @ Rx(pitch)``.

    ``angles: (..., 3)`` radians ``(pitch, yaw, roll)`` about the body axes x (right),
    y (up), z (back) -> ``(..., 3, 3)``. Pitch acts first, so a positive pitch swings a
    hanging limb forwards, roll then tilts it sideways (positive: towards +x) and yaw turns
    it about the vertical.
    """
    p, y, r = angles[..., 0], angles[..., 1], angles[..., 2]
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*p.shape, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*p.shape, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*p.shape, 3, 3)
    return ry @ rz @ rx


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def forward_kinematics(offsets: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions and global segment rotations of a posed skeleton.

    ``offsets: (25, 3)`` rest offsets from the kinematic parent (the root's is its position),
    ``angles: (T, 25, 3)`` local Euler angles in radians (see :func:`euler_to_matrix`; the
    root's rotation is the body orientation). Returns ``positions (T, 25, 3)`` and
    ``rotations (T, 25, 3, 3)`` with ``pos[j] = pos[parent] + R[parent] @ offsets[j]`` and
    ``R[j] = R[parent] @ local[j]``. Vectorised over frames, one step per tree depth.
    """
    local = euler_to_matrix(angles)
    rot = np.empty_like(local)
    pos = np.empty(angles.shape, dtype=np.float64)
    rot[:, SB] = local[:, SB]
    pos[:, SB] = offsets[SB]
    for level in _FK_LEVELS[1:]:
        par = KINEMATIC_PARENTS[level]
        pos[:, level] = pos[:, par] + np.einsum("tjab,jb->tja", rot[:, par], offsets[level])
        rot[:, level] = rot[:, par] @ local[:, level]
    return pos, rot


# -- projections ---------------------------------------------------------------------------------
def project_depth(xyz: np.ndarray) -> np.ndarray:
    """Kinect camera space ``(..., 3)`` -> pixel ``(..., 2)`` in the 512x424 depth image."""
    fx, fy, cx, cy = DEPTH_INTRINSICS
    z = xyz[..., 2]
    return np.stack([cx + fx * xyz[..., 0] / z, cy - fy * xyz[..., 1] / z], -1)


def project_color(xyz: np.ndarray) -> np.ndarray:
    """Kinect camera space ``(..., 3)`` -> pixel ``(..., 2)`` in the 1920x1080 colour image."""
    fx, fy, cx, cy = COLOR_INTRINSICS
    z = xyz[..., 2]
    return np.stack([cx + fx * (xyz[..., 0] + COLOR_OFFSET_X) / z, cy - fy * xyz[..., 1] / z], -1)


def _matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> unit quaternions ``(..., 4)`` as (W, X, Y, Z)."""
    tr = np.stack(
        [1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
         1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]],
        -1,
    )
    q = 0.5 * np.sqrt(np.maximum(tr, 0.0))
    signs = np.stack(
        [np.ones_like(m[..., 0, 0]), m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
         m[..., 1, 0] - m[..., 0, 1]],
        -1,
    )
    q = q * np.where(signs < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _bone_orientations(pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Kinect-style joint orientations: the absolute orientation of the bone ending at each
    joint, with its y axis along the bone (Kinect v2 SDK ``JointOrientation``); all zeros for
    end joints, as the SDK reports. ``pos (..., 25, 3)``, ``rot (..., 25, 3, 3)`` -> ``(..., 25, 4)``."""
    parent = np.where(KINEMATIC_PARENTS < 0, SM, KINEMATIC_PARENTS)
    y = pos - pos[..., parent, :]
    y[..., SB, :] = pos[..., SM, :] - pos[..., SB, :]  # root: the bone towards spine mid
    y /= np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-9)
    seg = np.where(KINEMATIC_PARENTS < 0, SB, KINEMATIC_PARENTS)
    z = rot[..., seg, :, :][..., 2]  # z column of the segment rotation
    z = z - np.sum(z * y, -1, keepdims=True) * y
    z /= np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-9)
    x = np.cross(y, z)
    q = _matrix_to_quaternion(np.stack([x, y, z], -1))
    q[..., list(LEAF_JOINTS), :] = 0.0
    return q


# -- names ---------------------------------------------------------------------------------------
_NAME_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})(?:\.skeleton)?$")


def sample_name(setup: int, camera: int, performer: int, replication: int, action: int) -> str:
    """``SsssCcccPpppRrrrAaaa`` (all ids 1-based, as in NTU file names)."""
    ids = (setup, camera, performer, replication, action)
    if not all(1 <= int(i) <= 999 for i in ids):
        raise ValueError(f"NTU ids must be in 1..999, got {ids}")
    return "S%03dC%03dP%03dR%03dA%03d" % ids


def _parse_name(name: str) -> tuple[int, int, int, int, int]:
    m = _NAME_RE.match(Path(name).name)
    if m is None:
        raise ValueError(f"{name!r} is not an NTU sample name SsssCcccPpppRrrrAaaa[.skeleton]")
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def _action_ids(actions: Iterable[int | str] | None) -> list[int]:
    """1-based action ids from ids (1..10) or names; None means all."""
    if actions is None:
        return list(range(1, len(ACTIONS) + 1))
    out = []
    for a in actions:
        if isinstance(a, str):
            if a not in ACTIONS:
                raise ValueError(f"unknown synthetic action {a!r}; known: {', '.join(ACTIONS)}")
            out.append(ACTIONS.index(a) + 1)
        elif 1 <= int(a) <= len(ACTIONS):
            out.append(int(a))
        else:
            raise ValueError(f"synthetic action ids are 1..{len(ACTIONS)} (as in A001..A010), got {a}")
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate actions in {list(actions)}")
    return sorted(out)


def synthetic_sample_names(
    *,
    num_subjects: int = 10,
    cameras: Sequence[int] = (1, 2, 3),
    replications: Sequence[int] = (1, 2),
    setups: Sequence[int] = (1,),
    actions: Iterable[int | str] | None = None,
) -> list[str]:
    """Sorted sample names (without ``.skeleton``) of a synthetic dataset: every combination
    of setup, camera, performer ``1..num_subjects``, replication and action."""
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
    bad = [c for c in cameras if int(c) not in CAMERA_AZIMUTH_DEG]
    if bad or not cameras:
        raise ValueError(
            f"cameras must be a non-empty subset of {sorted(CAMERA_AZIMUTH_DEG)}, got {list(cameras)}")
    for label, ids in (("replications", replications), ("setups", setups)):
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"{label} must be non-empty and distinct, got {list(ids)}")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"duplicate cameras in {list(cameras)}")
    acts = _action_ids(actions)
    grid = np.array(np.meshgrid(list(setups), list(cameras), np.arange(1, num_subjects + 1),
                                list(replications), acts, indexing="ij")).reshape(5, -1).T
    return sorted(sample_name(*map(int, row)) for row in grid)


# -- motion --------------------------------------------------------------------------------------
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ramp(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """0 before ``start``, smoothly 1 after ``start + duration``."""
    return _smoothstep((t - start) / max(duration, 1e-6))


def _keyframes(u: np.ndarray, knots: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Cosine-eased interpolation of ``values`` at ``knots`` (increasing, 0..1) at phases ``u``."""
    k, v = np.asarray(knots, dtype=np.float64), np.asarray(values, dtype=np.float64)
    i = np.clip(np.searchsorted(k, u, side="right") - 1, 0, len(k) - 2)
    w = np.clip((u - k[i]) / (k[i + 1] - k[i]), 0.0, 1.0)
    w = 0.5 - 0.5 * np.cos(np.pi * w)
    return v[i] + (v[i + 1] - v[i]) * w


@dataclass
class _Performance:
    """Random parameters shared by the three camera files of one performance."""

    t: np.ndarray        # (T,) seconds
    speed: float
    amp: float
    phase: float         # cycles, in [0, 1)
    side: str            # "R" or "L": the moving arm or leg of one-sided actions


def _idle_angles(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Standing posture with slow random sway, degrees ``(T, 25, 3)`` (pitch, yaw, roll),
    and the per-leg foot-levelling weights ``(2,)``."""
    n = t.shape[0]
    ang = np.zeros((n, ntu25.NUM_JOINTS, 3))
    ang[:, _SHOULDERS, 2] = rng.uniform(5.0, 12.0, 2)
    ang[:, _ELBOWS, 0] = rng.uniform(5.0, 20.0, 2)
    ang[:, _HIPS, 2] = rng.uniform(2.0, 6.0, 2)
    ang[:, _KNEES, 0] = -rng.uniform(0.0, 5.0, 2)
    ang[:, SM, 0] = rng.uniform(-4.0, 2.0)
    ang[:, NECK, 0] = rng.uniform(-5.0, 8.0)
    # Two slow sinusoids per degree of freedom (0.1-0.6 Hz, up to 2 degrees; 1 at the root).
    freq = rng.uniform(0.1, 0.6, (ntu25.NUM_JOINTS, 3, 2))
    phase = rng.uniform(0.0, 2 * np.pi, (ntu25.NUM_JOINTS, 3, 2))
    amp = rng.uniform(0.0, 2.0, (ntu25.NUM_JOINTS, 3, 2))
    amp[SB] *= 0.5
    ang += (amp * np.sin(2 * np.pi * freq * t[:, None, None, None] + phase)).sum(-1)
    return ang, np.ones(2)


def _waving(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t, (sh, el, wr, _) = perf.t, _ARM[perf.side]
    freq = rng.uniform(1.6, 2.6) * perf.speed
    env = _ramp(t, rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.5))
    if rng.random() < 0.5:  # lower the arm at the end
        env = env * (1.0 - _ramp(t, t[-1] - rng.uniform(0.5, 0.9), 0.4))
    wave = np.sin(2 * np.pi * (freq * t + perf.phase))
    # Upper arm out to the side and a little up, forearm about vertical, swinging sideways.
    ang[:, sh, 2] += env * rng.uniform(75.0, 100.0)
    ang[:, sh, 0] += env * rng.uniform(0.0, 25.0)
    ang[:, el, 2] += env * (rng.uniform(55.0, 80.0) + perf.amp * rng.uniform(15.0, 25.0) * wave)
    ang[:, el, 0] += env * (rng.uniform(0.0, 10.0) - ang[:, el, 0])
    ang[:, wr, 2] += env * 10.0 * np.sin(2 * np.pi * (freq * t + perf.phase) - 0.5)
    return np.zeros_like(t)


def _jumping(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t = perf.t
    period = rng.uniform(0.85, 1.1) / perf.speed
    u = (t / period + perf.phase) % 1.0
    # crouch -> take off -> flight -> landing -> recover
    crouch = _keyframes(u, [0, 0.12, 0.28, 0.38, 0.72, 0.82, 0.92, 1.0], [0, 0.3, 1.0, 0, 0, 0.7, 0.2, 0])
    flight_u = np.clip((u - 0.38) / 0.34, 0.0, 1.0)
    flight = rng.uniform(0.10, 0.25) * perf.amp * np.sin(np.pi * flight_u)
    ang[:, _KNEES, 0] += -crouch[:, None] * rng.uniform(60.0, 85.0)
    ang[:, _HIPS, 0] += crouch[:, None] * rng.uniform(45.0, 65.0)
    ang[:, SB, 0] += -crouch * rng.uniform(15.0, 25.0)
    swing = _keyframes(u, [0, 0.25, 0.45, 0.6, 0.85, 1.0], [0, -40.0, 120.0, 60.0, 0, 0])
    ang[:, _SHOULDERS, 0] += swing[:, None] * rng.uniform(0.6, 1.0) * perf.amp
    ang[:, _SHOULDERS, 2] += 10.0
    ang[:, _ANKLES, 0] += -25.0 * np.sin(np.pi * flight_u)[:, None]  # toes point in flight
    return flight


def _squatting(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t = perf.t
    period = rng.uniform(2.2, 3.0) / perf.speed
    u = (t / period + perf.phase) % 1.0
    c = _keyframes(u, [0, 0.1, 0.45, 0.6, 0.95, 1.0], [0, 0, 1, 1, 0, 0])
    depth = np.clip(rng.uniform(0.7, 0.95) * perf.amp, 0.6, 1.0)
    ang[:, _HIPS, 0] += (95.0 * depth * c)[:, None]
    ang[:, _KNEES, 0] += (-115.0 * depth * c)[:, None]
    ang[:, SB, 0] += -rng.uniform(20.0, 35.0) * depth * c
    ang[:, _SHOULDERS, 0] += (rng.uniform(60.0, 90.0) * c)[:, None]
    return np.zeros_like(t)


def _kicking(
    ang: np.ndarray, perf: _Performance, rng: np.random.Generator, weights: np.ndarray
) -> np.ndarray:
    t = perf.t
    hip, kn = _LEG[perf.side][:2]
    stand_kn = _LEG["L" if perf.side == "R" else "R"][1]
    period = rng.uniform(1.3, 1.7) / perf.speed
    u = (t / period + perf.phase) % 1.0
    knots = [0, 0.15, 0.3, 0.42, 0.55, 0.7, 1.0]
    height = rng.uniform(65.0, 90.0) * perf.amp
    hip_a = _keyframes(u, knots, [0, 0, 45.0, height, 40.0, 0, 0])
    ang[:, hip, 0] += hip_a
    ang[:, kn, 0] += _keyframes(u, knots, [0, 0, -90.0, -10.0, -60.0, -5.0, 0])
    ang[:, stand_kn, 0] += -10.0 * hip_a / height
    ang[:, SB, 0] += 8.0 * hip_a / height  # lean back
    ang[:, _SHOULDERS, 2] += 25.0
    weights[0 if perf.side == "L" else 1] = 0.3  # the kicking foot points
    return np.zeros_like(t)


def _arm_circles(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t = perf.t
    freq = rng.uniform(1.0, 1.5) * perf.speed * (1.0 if rng.random() < 0.5 else -1.0)
    env = _ramp(t, rng.uniform(0.0, 0.3), 0.4)
    radius = rng.uniform(20.0, 35.0) * perf.amp
    angle = 2 * np.pi * (freq * t + perf.phase)
    ang[:, _SHOULDERS, 2] += (env * (rng.uniform(80.0, 92.0) + radius * np.cos(angle)))[:, None]
    ang[:, _SHOULDERS, 0] += (env * radius * np.sin(angle))[:, None]
    ang[:, _ELBOWS, 0] *= (1.0 - 0.8 * env)[:, None]  # straight arms
    return np.zeros_like(t)


def _bowing(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t = perf.t
    period = rng.uniform(2.5, 3.5) / perf.speed
    u = (t / period + perf.phase) % 1.0
    c = _keyframes(u, [0, 0.1, 0.4, 0.55, 0.9, 1.0], [0, 0, 1, 1, 0, 0])
    depth = rng.uniform(35.0, 60.0) * perf.amp
    ang[:, SB, 0] += -depth * c
    ang[:, NECK, 0] += -10.0 * c
    ang[:, _SHOULDERS, 0] += (0.8 * depth * c)[:, None]  # arms keep hanging
    ang[:, _KNEES, 0] += (-5.0 * c)[:, None]
    return np.zeros_like(t)


def _arm_reach(offsets: np.ndarray, shoulder_pitch: float, elbow_pitch: float) -> float:
    """Horizontal distance from shoulder to hand of an arm in the sagittal plane (metres)."""
    ua = np.linalg.norm(offsets[R_EL])
    fa = np.linalg.norm(offsets[R_WR]) + np.linalg.norm(offsets[R_HA])
    p, e = np.radians(shoulder_pitch), np.radians(elbow_pitch)
    return float(ua * np.sin(p) + fa * np.sin(p + e))


def _clapping(
    ang: np.ndarray, perf: _Performance, rng: np.random.Generator, offsets: np.ndarray
) -> np.ndarray:
    t = perf.t
    freq = rng.uniform(1.8, 2.8) * perf.speed
    env = _ramp(t, rng.uniform(0.0, 0.3), 0.4)
    pitch, elbow = rng.uniform(50.0, 70.0), rng.uniform(40.0, 65.0)
    # Yaw (towards the midline) at which the two palms meet.
    reach = _arm_reach(offsets, pitch, elbow)
    meet = np.degrees(np.arcsin(np.clip((abs(offsets[R_SH, 0]) - 0.02) / reach, 0.0, 1.0)))
    closed = 0.5 + 0.5 * np.cos(2 * np.pi * (freq * t + perf.phase))
    yaw = meet - rng.uniform(20.0, 35.0) * perf.amp * (1.0 - closed)
    ang[:, _SHOULDERS, 0] += (env * pitch)[:, None]
    ang[:, _SHOULDERS, 2] *= (1.0 - env)[:, None]
    ang[:, _SHOULDERS, 1] += (env * yaw)[:, None]
    ang[:, _ELBOWS, 0] += env[:, None] * (elbow - ang[:, _ELBOWS, 0])
    return np.zeros_like(t)


def _stepping(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t = perf.t
    freq = rng.uniform(0.75, 1.1) * perf.speed
    lift = rng.uniform(50.0, 75.0) * perf.amp
    s = np.sin(2 * np.pi * (freq * t + perf.phase))
    g = np.stack([np.maximum(s, 0.0), np.maximum(-s, 0.0)], 1) ** 1.5  # (T, 2): left, right
    ang[:, _HIPS, 0] += lift * g
    ang[:, _KNEES, 0] += -1.4 * lift * g
    swing = rng.uniform(15.0, 30.0)
    ang[:, _SHOULDERS, 0] += swing * (g[:, ::-1] - g)  # each arm swings with the opposite leg
    ang[:, _ELBOWS, 0] += 15.0
    return np.zeros_like(t)


def _reaching(ang: np.ndarray, perf: _Performance, rng: np.random.Generator) -> np.ndarray:
    t = perf.t
    sh, el, _, _ = _ARM[perf.side]
    period = rng.uniform(2.4, 3.2) / perf.speed
    u = (t / period + perf.phase) % 1.0
    c = _keyframes(u, [0, 0.1, 0.45, 0.6, 0.9, 1.0], [0, 0, 1, 1, 0, 0])
    elevation = rng.uniform(80.0, 135.0) * np.clip(perf.amp, 0.9, 1.1)
    ang[:, sh, 0] += elevation * c
    ang[:, sh, 1] += 10.0 * c
    ang[:, el, 0] += -ang[:, el, 0] * c + 50.0 * c * (1.0 - c)
    ang[:, SB, 0] += -rng.uniform(5.0, 15.0) * c
    ang[:, SM, 1] += (-12.0 if perf.side == "R" else 12.0) * c  # turn the chest into the reach
    return np.zeros_like(t)


def _finalise_angles(ang: np.ndarray, foot_weights: np.ndarray) -> np.ndarray:
    """Anatomical degrees -> radians of :func:`forward_kinematics`.

    Motion functions give hip pitch relative to the vertical; here it becomes relative to the
    (pitched) pelvis. Feet are kept level with the floor (weight 1) by the ankle, and the
    left side's yaw and roll are mirrored.
    """
    ang = ang.copy()
    root_pitch = ang[:, SB, 0].copy()
    thigh = ang[:, _HIPS, 0].copy()
    ang[:, _HIPS, 0] = thigh - root_pitch[:, None]
    ang[:, _ANKLES, 0] += -(thigh + ang[:, _KNEES, 0]) * foot_weights
    ang[:, _LEFT_JOINTS, 1:] *= -1.0
    return np.radians(ang)


_FOOT_CLEARANCE = 0.04  # height of the Kinect foot joint above the floor, metres


def _pose_body(shape: BodyShape, ang_deg: np.ndarray, foot_weights: np.ndarray, flight: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics in the body frame with the lower foot on the floor (y = 0).

    Returns ``positions (T, 25, 3)`` and ``rotations (T, 25, 3, 3)``.
    """
    pos, rot = forward_kinematics(shape.offsets, _finalise_angles(ang_deg, foot_weights))
    pos[..., 1] += (_FOOT_CLEARANCE - pos[:, _FEET, 1].min(1) + flight)[:, None]
    return pos, rot


def _single_body(action: int, perf: _Performance, rng: np.random.Generator, shape: BodyShape
                 ) -> tuple[np.ndarray, np.ndarray]:
    ang, weights = _idle_angles(perf.t, rng)
    name = ACTIONS[action]
    if name == "kicking":
        flight = _kicking(ang, perf, rng, weights)
    elif name == "clapping":
        flight = _clapping(ang, perf, rng, shape.offsets)
    else:
        flight = {
            "waving": _waving, "jumping": _jumping, "squatting": _squatting, "arm_circles": _arm_circles,
            "bowing": _bowing, "stepping_in_place": _stepping, "reaching": _reaching,
        }[name](ang, perf, rng)
    return _pose_body(shape, ang, weights, flight)


def _handshake(perf: _Performance, rng: np.random.Generator, shapes: tuple[BodyShape, BodyShape]
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[float]]:
    """Two people walk towards each other and shake right hands.

    Returns, per body, positions ``(T, 25, 3)`` and rotations in the body frame, the
    horizontal position of the pelvis in the pair frame ``(T, 3)`` and the yaw relative to
    the pair frame (body A faces +x, body B faces -x).
    """
    t = perf.t
    t0 = rng.uniform(0.0, 0.3)
    t_app = rng.uniform(0.9, 1.4) / perf.speed
    gait_f = rng.uniform(1.6, 2.0)
    t_shake = t0 + t_app - 0.1
    shake_dur = rng.uniform(1.5, 2.5)
    shake_f = rng.uniform(2.0, 3.0)
    env = _ramp(t, t_shake - 0.3, 0.5) * (1.0 - _ramp(t, t_shake + shake_dur, 0.5))
    walk = _ramp(t, t0 - 0.1, 0.2) * (1.0 - _ramp(t, t0 + t_app - 0.3, 0.3))
    pump = np.sin(2 * np.pi * shake_f * np.maximum(t - t_shake, 0.0))
    sh_pitch, el_pitch, sh_yaw = rng.uniform(40.0, 55.0), rng.uniform(35.0, 50.0), rng.uniform(8.0, 15.0)
    poses, reach = [], []
    for shape in shapes:  # two bodies
        ang, weights = _idle_angles(t, rng)
        s = np.sin(2 * np.pi * gait_f * (t - t0))
        ang[:, L_HIP, 0] += 22.0 * walk * s
        ang[:, R_HIP, 0] += -22.0 * walk * s
        ang[:, _KNEES, 0] += (-35.0 * walk)[:, None] * np.maximum(np.stack([-s, s], 1), 0.0)
        ang[:, _SHOULDERS, 0] += (15.0 * walk)[:, None] * np.stack([-s, s], 1)
        amp = rng.uniform(6.0, 10.0) * perf.amp
        ang[:, R_SH, 0] += env * (sh_pitch + amp * pump)
        ang[:, R_SH, 1] += env * sh_yaw
        ang[:, R_SH, 2] *= 1.0 - env
        ang[:, R_EL, 0] += env * (el_pitch - ang[:, R_EL, 0])
        pos, rot = _pose_body(shape, ang, weights, np.zeros_like(t))
        poses.append((pos, rot))
        k = int(np.argmax(env))  # forward and lateral offset of the right hand at the shake
        reach.append((-(pos[k, R_HA, 2] - pos[k, SB, 2]), pos[k, R_HA, 0] - pos[k, SB, 0]))
    (f_a, r_a), (f_b, r_b) = reach
    sep_end = f_a + f_b
    sep = sep_end + (rng.uniform(1.6, 2.1) - sep_end) * (1.0 - _smoothstep((t - t0) / t_app))
    lateral = r_a + r_b
    pelvis_a = np.stack([-sep / 2, np.zeros_like(t), np.full_like(t, -lateral / 2)], 1)
    pelvis_b = np.stack([sep / 2, np.zeros_like(t), np.full_like(t, lateral / 2)], 1)
    return ([p for p, _ in poses], [r for _, r in poses], [pelvis_a, pelvis_b],
            [-np.pi / 2, np.pi / 2])


# -- one sample ----------------------------------------------------------------------------------
@dataclass(eq=False)
class SyntheticSample:
    """One synthetic ``.skeleton`` file before formatting.

    ``F`` frames (empty frames included), ``B`` bodies (1 or 2 real bodies, plus a noise body
    in some files, always last).
    """

    name: str                  #: ``SsssCcccPpppRrrrAaaa``
    label: int                 #: 0-based action label
    joints: np.ndarray         #: (F, B, 25, 3) camera space, metres, with sensor noise (as written)
    clean_joints: np.ndarray   #: (F, B, 25, 3) the same without sensor noise
    present: np.ndarray        #: (F, B) bool
    body_ids: tuple[int, ...]  #: (B,) 64-bit tracking ids
    tracking: np.ndarray       #: (F, B, 25) int8 joint trackingState
    orientations: np.ndarray   #: (F, B, 25, 4) quaternions (W, X, Y, Z); zeros at end joints
    #: (F, B, 9) body record values: clippedEdges, handLeftConfidence, handLeftState,
    #: handRightConfidence, handRightState, isRestricted, leanX, leanY, trackingState
    #: (all integers but leanX/leanY)
    body_info: np.ndarray
    noise_body: np.ndarray     #: (B,) bool, True for the spurious body
    height: np.ndarray         #: (B,) stature of each body in metres (0 for a noise body)

    def to_sequence(self, path: str | None = None) -> SkeletonSequence:
        """The file's body records as a :class:`~graphfuse.data.ntu.reader.SkeletonSequence`.

        Records are the present ``(frame, body)`` pairs, frame by frame and in body index
        order within a frame (so slot ``k`` of a frame is its ``k``-th present body); the
        entries of absent bodies are ignored. ``depthX/Y`` and ``colorX/Y`` are the
        projections :func:`project_depth` / :func:`project_color` of the written joints.
        ``path`` (default: the sample name) names the sequence in errors.
        """
        source = path if path is not None else f"{self.name}.skeleton"
        n_frames, n_bodies = self.present.shape
        fr, bd = np.nonzero(self.present)  # frame-major, then body index: the record order
        xyz = self.joints[fr, bd]
        behind = (xyz[..., 2] <= 0).any(-1)  # NaN passes here and is refused by the writer
        if behind.any():
            raise ValueError(f"{source}: frame {int(fr[np.argmax(behind)])}: joint with z <= 0 "
                             "(behind the camera)")
        info = self.body_info[fr, bd]
        ints = _as_int32(info[:, [0, 1, 2, 3, 4, 5, 8]], "body_info fields other than leanX/leanY", source)
        return make_sequence(
            n_frames, fr, xyz, path=source,
            body_id=np.array(self.body_ids, dtype=np.uint64).reshape(n_bodies)[bd],
            clipped_edges=ints[:, 0], hand_left_confidence=ints[:, 1], hand_left_state=ints[:, 2],
            hand_right_confidence=ints[:, 3], hand_right_state=ints[:, 4], is_restricted=ints[:, 5],
            lean=info[:, 6:8], tracking_state=ints[:, 6],
            depth_xy=project_depth(xyz), color_xy=project_color(xyz),
            orientation=self.orientations[fr, bd],
            joint_tracking_state=_as_int32(self.tracking[fr, bd], "tracking", source),
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write this sample as a ``.skeleton`` file (7 significant digits, CRLF), atomically."""
        return write_skeleton(path, self.to_sequence(str(path)), float_format=FLOAT_KINECT)


def _as_int32(values: np.ndarray, what: str, source: str) -> np.ndarray:
    """``values`` as int32, refusing (rather than truncating) anything but int32 integers."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) & (v == np.rint(v)) & (np.abs(v) < 2**31)
    if not ok.all():
        raise ValueError(f"{source}: {what} must be int32 integers, found {float(v[~ok][0])!r}")
    return v.astype(np.int32)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *key]))


# Stream tags keep the random streams of subjects, partners, setups, cameras, performances
# and files independent.
_TAG_SUBJECT, _TAG_PARTNER, _TAG_SETUP, _TAG_CAMERA, _TAG_PERF, _TAG_FILE = (
    zlib.crc32(tag.encode()) for tag in ("subject", "partner", "setup", "camera", "performance", "file")
)


def _camera_pose(seed: int, setup: int, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera ``(R (3, 3), centre (3,))`` of one camera of one setup.

    World frame: floor y = 0, the subject's spot at the origin, facing -z when its yaw is 0.
    Each camera sits on a circle around the spot at its azimuth, tilted slightly down.
    """
    rs, rc = _rng(seed, _TAG_SETUP, setup), _rng(seed, _TAG_CAMERA, setup, camera)
    height, tilt, dist = rs.uniform(0.75, 1.05), np.radians(rs.uniform(0.0, 5.0)), rs.uniform(2.75, 3.15)
    height += rc.uniform(-0.03, 0.03)
    dist += rc.uniform(-0.12, 0.12)
    az = np.radians(CAMERA_AZIMUTH_DEG[camera] + rc.uniform(-2.0, 2.0))
    centre = np.array([dist * np.sin(az), height, -dist * np.cos(az)])
    x_axis = np.array([np.cos(az), 0.0, np.sin(az)])
    forward = np.array([-np.sin(az), 0.0, np.cos(az)])
    up = np.array([0.0, 1.0, 0.0])
    y_axis = np.cos(tilt) * up + np.sin(tilt) * forward
    z_axis = np.cos(tilt) * forward - np.sin(tilt) * up
    return np.stack([x_axis, y_axis, z_axis]), centre


def synthesize_sample(name: str, seed: int = 0) -> SyntheticSample:
    """Generate the sample called ``name`` (``SsssCcccPpppRrrrAaaa``, action ids 1..10).

    Deterministic in ``(seed, name)``; the motion depends on ``(seed, S, P, R, A)`` only, so the
    three cameras of a performance see the same movement.
    """
    setup, camera, performer, replication, action_id = _parse_name(name)
    name = sample_name(setup, camera, performer, replication, action_id)
    if not 1 <= action_id <= len(ACTIONS):
        raise ValueError(f"{name}: synthetic action ids are 1..{len(ACTIONS)}, got A{action_id:03d}")
    if camera not in CAMERA_AZIMUTH_DEG:
        raise ValueError(f"{name}: synthetic cameras are {sorted(CAMERA_AZIMUTH_DEG)}, got C{camera:03d}")
    label = action_id - 1
    two_person = label in TWO_PERSON_ACTIONS

    # -- the performance (shared by the cameras) --
    rp = _rng(seed, _TAG_PERF, setup, performer, replication, action_id)
    n_active = int(rp.integers(90, 161) if two_person else rp.integers(60, 161))
    perf = _Performance(
        t=np.arange(n_active) / 30.0,  # Kinect v2 records at 30 frames per second
        speed=float(rp.uniform(0.8, 1.25) * (1.0 if replication % 2 else rp.uniform(0.9, 1.1))),
        amp=float(rp.uniform(0.8, 1.2)),
        phase=float(rp.uniform(0.0, 1.0)),
        side="R" if rp.random() < 0.75 else "L",
    )
    # Replication 1 faces the -45 degree camera (C002), replication 2 the +45 degree one (C003).
    facing = -np.radians(CAMERA_AZIMUTH_DEG[2 if replication % 2 else 3]) + np.radians(rp.uniform(-8.0, 8.0))
    spot = np.array([rp.uniform(-0.2, 0.2), 0.0, rp.uniform(-0.2, 0.2)])
    shape = sample_body_shape(_rng(seed, _TAG_SUBJECT, performer))
    if two_person:
        partner = sample_body_shape(_rng(seed, _TAG_PARTNER, performer))
        pos_l, rot_l, pelvis, rel_yaw = _handshake(perf, rp, (shape, partner))
        heights = [shape.height, partner.height]
    else:
        pos, rot = _single_body(label, perf, rp, shape)
        pos_l, rot_l, pelvis, rel_yaw = [pos], [rot], [np.zeros((n_active, 3))], [0.0]
        heights = [shape.height]
    pair_rot = _yaw_matrix(facing)
    world_pos, world_rot = [], []
    for p, r, pel, yaw in zip(pos_l, rot_l, pelvis, rel_yaw):  # one or two bodies
        body_rot = pair_rot @ _yaw_matrix(yaw)
        world_pos.append(p @ body_rot.T + (pel @ pair_rot.T + spot)[:, None, :])
        world_rot.append(body_rot @ r)
    world_pos_a, world_rot_a = np.stack(world_pos, 1), np.stack(world_rot, 1)  # (T, Bp, 25, ...)

    # -- this camera's recording --
    cam_rot, cam_centre = _camera_pose(seed, setup, camera)
    cam_pos = (world_pos_a - cam_centre) @ cam_rot.T
    cam_rots = cam_rot @ world_rot_a
    rf = _rng(seed, _TAG_FILE, setup, camera, performer, replication, action_id)
    n_people = cam_pos.shape[1]
    lead = int(rf.integers(1, 6)) if rf.random() < 0.2 else 0
    trail = int(rf.integers(1, 6)) if rf.random() < 0.15 else 0
    has_noise_body = rf.random() < (0.1 if two_person else 0.15)
    n_bodies = n_people + int(has_noise_body)
    n_frames = lead + n_active + trail
    active = slice(lead, lead + n_active)

    clean = np.zeros((n_frames, n_bodies, ntu25.NUM_JOINTS, 3))
    clean[active, :n_people] = cam_pos
    present = np.zeros((n_frames, n_bodies), dtype=bool)
    present[active, :n_people] = True
    orient = np.zeros((n_frames, n_bodies, ntu25.NUM_JOINTS, 4))
    q = _bone_orientations(cam_pos, cam_rots)
    q += 0.01 * rf.standard_normal(q.shape) * (np.abs(q).sum(-1, keepdims=True) > 0)
    q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    orient[active, :n_people] = q

    # Sensor noise: jitter everywhere, stronger on hands and feet.
    sigma = rf.uniform(0.002, 0.005)
    scale = np.ones(ntu25.NUM_JOINTS)
    scale[_EXTREMITIES] = 2.0
    noise = sigma * scale[:, None] * rf.standard_normal(cam_pos.shape)
    tracking = np.full((n_active, n_people, ntu25.NUM_JOINTS), 2, dtype=np.int8)
    # Outliers on hands and feet: 1-3 frame bursts, displaced by several centimetres.
    starts = rf.random((n_active, n_people, _OUTLIER_JOINTS.size)) < 0.006
    burst = starts.copy()
    for lag in range(1, int(rf.integers(1, 4))):  # at most 2 shifts, not a loop over frames
        burst[lag:] |= starts[:-lag]
    noise[:, :, _OUTLIER_JOINTS] += burst[..., None] * rf.normal(0.0, 0.04, burst.shape + (3,))
    tracking[:, :, _OUTLIER_JOINTS] = np.where(burst, 1, tracking[:, :, _OUTLIER_JOINTS])
    # Side views: the arm on the far side of the body is often only inferred, and noisier.
    depth_gap = cam_pos[:, :, L_SH, 2] - cam_pos[:, :, R_SH, 2]  # > 0: left shoulder farther
    for side, sign in (("L", 1.0), ("R", -1.0)):  # two sides
        occluded = (sign * depth_gap > 0.15) & (rf.random(depth_gap.shape) < 0.3)
        joints_far = _FAR_ARM[side]
        extra = rf.normal(0.0, 0.01, (n_active, n_people, joints_far.size, 3))
        noise[:, :, joints_far] += occluded[..., None, None] * extra
        tracking[:, :, joints_far] = np.where(occluded[..., None], 1, tracking[:, :, joints_far])
    noisy = clean.copy()
    noisy[active, :n_people] += noise
    track_all = np.full((n_frames, n_bodies, ntu25.NUM_JOINTS), 2, dtype=np.int8)
    track_all[active, :n_people] = tracking

    # Body records: hand states change in blocks of 15 frames; lean from the trunk direction.
    info = np.zeros((n_frames, n_bodies, 9))
    n_blocks = -(-n_frames // 15)
    hand_state = rf.choice([0, 1, 2, 3], p=[0.1, 0.5, 0.25, 0.15], size=(n_blocks, n_bodies, 2))
    hand_conf = ((hand_state >= 2) & (rf.random(hand_state.shape) < 0.8)).astype(np.float64)
    hand_state = np.repeat(hand_state, 15, axis=0)[:n_frames]
    hand_conf = np.repeat(hand_conf, 15, axis=0)[:n_frames]
    info[..., 1], info[..., 2], info[..., 3], info[..., 4] = (
        hand_conf[..., 0], hand_state[..., 0], hand_conf[..., 1], hand_state[..., 1])
    trunk = np.stack([p[:, SSH] - p[:, SB] for p in pos_l], 1)  # body frame, (T, Bp, 3)
    trunk /= np.linalg.norm(trunk, axis=-1, keepdims=True)
    lean = np.stack([trunk[..., 0], -trunk[..., 2]], -1) + 0.02 * rf.standard_normal(trunk.shape[:2] + (2,))
    info[active, :n_people, 6:8] = np.clip(lean, -1.0, 1.0)
    info[..., 8] = 2
    # clippedEdges bit flags (Kinect FrameEdges: right 1, left 2, top 4, bottom 8) for bodies
    # reaching out of the depth image, e.g. raised hands of a tall subject near the camera.
    pix = project_depth(noisy[active, :n_people])
    info[active, :n_people, 0] = (
        1 * (pix[..., 0] >= 512).any(-1) + 2 * (pix[..., 0] < 0).any(-1)
        + 4 * (pix[..., 1] < 0).any(-1) + 8 * (pix[..., 1] >= 424).any(-1)
    )

    if has_noise_body:
        # A compact blob beside and behind the subject for a fraction of a second.
        length = int(rf.integers(5, min(21, n_active + 1)))
        start = lead + int(rf.integers(0, n_active - length + 1))
        centre = cam_pos[:, 0, SB].mean(0) + np.array(
            [rf.choice([-1.0, 1.0]) * rf.uniform(0.7, 1.5), rf.uniform(-0.5, 0.3), rf.uniform(0.2, 1.2)])
        blob = centre + rf.normal(0.0, 0.06, (ntu25.NUM_JOINTS, 3))
        drift = np.cumsum(rf.normal(0.0, 0.004, (length, 1, 3)), 0)
        frames = slice(start, start + length)
        clean[frames, -1] = blob + drift
        noisy[frames, -1] = clean[frames, -1] + rf.normal(0.0, 0.005, (length, ntu25.NUM_JOINTS, 3))
        present[frames, -1] = True
        orient[frames, -1, :, 0] = 1.0
        track_all[frames, -1] = np.where(rf.random((length, ntu25.NUM_JOINTS)) < 0.7, 1, 2)
        info[frames, -1, 6:8] = rf.uniform(-0.3, 0.3, 2)

    id_offsets = int(rf.integers(1000, 60000)) + np.cumsum(rf.integers(1, 40, n_bodies))
    return SyntheticSample(
        name=name,
        label=label,
        joints=noisy,
        clean_joints=clean,
        present=present,
        body_ids=tuple(_BODY_ID_BASE + int(o) for o in id_offsets),
        tracking=track_all,
        orientations=orient,
        body_info=info,
        noise_body=np.arange(n_bodies) >= n_people,
        height=np.array(heights + [0.0] * (n_bodies - n_people)),
    )


# -- the dataset ---------------------------------------------------------------------------------
def _write_one(job: tuple[str, str, int]) -> str:
    out_dir, name, seed = job
    path = Path(out_dir) / f"{name}.skeleton"
    synthesize_sample(name, seed).write(path)
    return str(path)


def _default_workers(n_jobs: int) -> int:
    return max(1, min(usable_cpus(), n_jobs // 50))  # a process pool pays off from ~100 files on


def generate_synthetic_ntu(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    num_subjects: int = 10,
    cameras: Sequence[int] = (1, 2, 3),
    replications: Sequence[int] = (1, 2),
    setups: Sequence[int] = (1,),
    actions: Iterable[int | str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write the synthetic NTU RGB+D dataset as ``SsssCcccPpppRrrrAaaa.skeleton`` files.

    One file per combination of setup, camera (1: 0 deg, 2: -45 deg, 3: +45 deg), performer
    ``1..num_subjects``, replication and action; the default is 1 x 3 x 10 x 2 x 10 = 600
    files. ``actions``: action ids 1..10 or names from :data:`ACTIONS` (None: all).
    Files are byte-identical for a given ``seed`` whatever ``workers`` (processes; default:
    one per ~50 files, at most the available cores). Returns the sorted paths.

    The ``synthetic-xsub`` benchmark trains on performers :data:`SYNTHETIC_TRAIN_SUBJECTS`.
    When ``workers > 1`` the pool uses the platform's default start method, so scripts that
    call this on macOS or Windows need the usual ``if __name__ == "__main__":`` guard.
    """
    names = synthetic_sample_names(num_subjects=num_subjects, cameras=cameras, replications=replications,
                                   setups=setups, actions=actions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), n, int(seed)) for n in names]
    n_workers = _default_workers(len(jobs)) if workers is None else int(workers)
    if n_workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    def _track(it: Iterable[str]) -> Iterable[str]:
        if not progress:
            return it
        from rich.progress import track

        return track(it, total=len(jobs), description=f"synthetic NTU -> {out}", transient=True)

    if n_workers == 1:
        paths = list(_track(map(_write_one, jobs)))
    else:
        import multiprocessing as mp

        # forkserver, not fork: forking a process that runs threads can deadlock a worker.
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context(method)) as pool:
            paths = list(_track(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (8 * n_workers)))))
    return sorted(Path(p) for p in paths)


def prepare_synthetic_ntu(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    **generate_kwargs: Any,
) -> Any:
    """Generate the synthetic dataset into ``out_dir/raw`` and prepare it into ``out_dir``
    with :func:`graphfuse.data.ntu.prepare_ntu` (benchmark ``synthetic-xsub``), exactly as a
    real NTU download would be. Returns what ``prepare_ntu`` returns.

    ``out_dir/raw`` must not hold ``.skeleton`` files other than those generated here.
    """
    raw = Path(out_dir) / "raw"
    paths = generate_synthetic_ntu(raw, seed=seed, workers=workers, progress=progress, **generate_kwargs)
    expected = {p.name for p in paths}
    foreign = sorted(p.name for p in raw.glob("*.skeleton") if p.name not in expected)
    if foreign:
        raise ValueError(
            f"{raw} holds {len(foreign)} .skeleton files that this generation did not write "
            f"(e.g. {foreign[0]}); use an empty directory")
    from graphfuse.data.ntu import prepare_ntu  # the real preparation path

    return prepare_ntu(raw, out_dir, "synthetic-xsub", workers=workers, progress=progress)
