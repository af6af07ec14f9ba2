"""Synthetic CASIA-B: binary silhouettes of procedurally animated 3D walkers in CASIA-B's layout.

This is the default data of the gait quickstart and the test data of the gait pipeline. The
frames are written exactly as CASIA-B distributes its silhouettes (Yu, Tan and Tan, "A
Framework for Evaluating the Effect of View Angle, Clothing and Carrying Condition on Gait
Recognition", ICPR 2006): one 8-bit grayscale PNG per frame, 0 background and 255 foreground,
``<root>/<id>/<type>/<view>/<id>-<type>-<view>-<frame:03d>.png`` with ids ``001, 002, ...``,
types ``nm-01..06``, ``bg-01..02``, ``cl-01..02`` and the 11 views ``000, 018, ..., 180``.
They are then read back and pretreated by the real preparation
(:func:`graphfuse.data.gait.prepare.prepare_casia_b`), so everything but the numbers is the
path a CASIA-B download takes.

How a frame is made (see ``docs/data_synthetic.md``, "Synthetic CASIA-B"):

* **Body.** 21 keypoints of an articulated 3D body (pelvis, spine top, chest sides, neck,
  head centre and top, shoulders, elbows, wrists, hips, knees, ankles, toes) and 17 capsules
  between them (torso as a spine and two flank capsules plus shoulder and hip bars, neck,
  head, upper/lower arms, thighs, shins, feet). Per identity: segment lengths relative to stature (thigh, shin, torso, upper
  arm, forearm, neck), shoulder and hip width, head size, build (all radii), arm abduction.
* **Gait.** Joint angles are smooth periodic functions of the gait phase (hip flexion a
  cosine, knee flexion a loading bump and a swing bump, ankle push-off, arm swing in
  anti-phase with the same-side leg, elbow bend, pelvis and thorax rotation); the lowest
  foot point stays on the ground, which gives the vertical bob. Per identity: cadence, hip
  and knee amplitudes (stride), arm swing, elbow bend, forward lean, head carriage.
* **Conditions.** ``nm``: plain. ``bg``: a bag per sequence, one of a shoulder bag at the hip
  (with its strap), a backpack or a hand-held bag swinging with the arm, on a random side,
  of random size. ``cl``: a coat: wider and deeper torso, thicker sleeves, and a skirt over
  the thighs down to about the knees (length per sequence) that hides the legs' outline.
* **Views.** As in CASIA-B, 11 cameras record the same walk at once: view ``v`` rotates the
  walker about the vertical axis so that it walks towards the camera at 000, across the
  image at 090 and away at 180, then projects it with a weak-perspective camera (orthographic
  with a per-frame scale from the pelvis depth, 8 m nominal distance).
* **Nuisance** (per sequence: start phase, speed and amplitude jitter, heading jitter; per
  camera: distance (scale), position in the frame, ragged edges and small holes like
  background-subtraction artefacts, a shadow blob at the feet, and in some sequences one or
  two near-empty frames that the pretreatment's pixel-sum threshold drops).

Rendering is vectorised over all frames and capsules of a sequence: each capsule's exact 2D
distance field (the orthographic image of a 3D capsule is a 2D capsule) is evaluated on a
pixel patch around it, and the covered pixels are scattered into the frame stack; PNGs are
encoded per frame with OpenCV.

Randomness: identity parameters depend on ``(seed, id)``, the walk on ``(seed, id, type)``
(shared by the 11 views, as the cameras film one walk), camera effects on
``(seed, id, type, view)``. The files are byte-identical for a seed whatever the number of
worker processes and whatever other ids are generated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphfuse.cpu_defaults import usable_cpus

__all__ = [
    "DEFAULT_NUM_IDS",
    "DEFAULT_NUM_TRAIN_IDS",
    "FPS",
    "GENERATOR_VERSION",
    "TYPES",
    "VIEWS",
    "Identity",
    "Walk",
    "add_arguments",
    "frame_name",
    "generate_synthetic_casia_b",
    "prepare_synthetic_casia_b",
    "render_sequence",
    "run",
    "sample_identity",
    "sample_walk",
    "subject_ids",
    "walker_keypoints",
    "walking_speed",
    "write_synthetic_casia_b",
]

#: Bumped whenever the generated data changes for a given seed.
GENERATOR_VERSION = 1
#: CASIA-B's sequence types: six normal walks, two with a bag, two in a coat.
TYPES: tuple[str, ...] = tuple(f"nm-0{i}" for i in range(1, 7)) + ("bg-01", "bg-02", "cl-01", "cl-02")
#: CASIA-B's 11 views (degrees between the walking direction and the camera's optical axis).
VIEWS: tuple[str, ...] = tuple(f"{a:03d}" for a in range(0, 181, 18))
#: Default size: 30 subjects, the first 20 train (so ``num_class`` is 20).
DEFAULT_NUM_IDS, DEFAULT_NUM_TRAIN_IDS = 30, 20
#: CASIA-B's frame rate.
FPS = 25.0
#: Pixel sum at or below which the pretreatment drops a frame (GaitSet / OpenGait).
_PIXEL_THRESHOLD = 10000

# -- keypoints and capsules ---------------------------------------------------------------------
(PELVIS, SPINE, HEAD, NECK, SH_L, SH_R, EL_L, EL_R, WR_L, WR_R,
 HIP_L, HIP_R, KN_L, KN_R, AN_L, AN_R, TO_L, TO_R, HEAD_TOP, CH_L, CH_R) = range(21)
_NUM_KEYPOINTS = 21
#: Body capsules ``(keypoint a, keypoint b, radius name)``.
_BODY_CAPSULES: tuple[tuple[int, int, str], ...] = (
    (PELVIS, SPINE, "spine"),
    (CH_L, HIP_L, "flank"), (CH_R, HIP_R, "flank"),
    (SH_L, SH_R, "shoulder"), (HIP_L, HIP_R, "hip"),
    (SPINE, NECK, "neck"), (HEAD, HEAD_TOP, "head"),
    (SH_L, EL_L, "upper_arm"), (SH_R, EL_R, "upper_arm"),
    (EL_L, WR_L, "forearm"), (EL_R, WR_R, "forearm"),
    (HIP_L, KN_L, "thigh"), (HIP_R, KN_R, "thigh"),
    (KN_L, AN_L, "shin"), (KN_R, AN_R, "shin"),
    (AN_L, TO_L, "foot"), (AN_R, TO_R, "foot"),
)


@dataclass(frozen=True)
class Identity:
    """One subject: lengths in metres, angles in degrees, ``cadence`` in strides per second."""

    stature: float
    thigh: float
    shin: float
    foot: float
    torso: float
    neck: float
    head: float           # head radius
    shoulder: float       # half the shoulder width
    hip: float            # half the hip width
    upper_arm: float
    forearm: float        # elbow -> fingertips
    build: float          # scales every radius
    arm_abduction: float
    cadence: float
    hip_amp: float        # hip flexion amplitude (half the range)
    hip_mean: float
    knee_swing: float     # peak knee flexion in swing
    knee_stance: float    # knee flexion at loading
    arm_swing: float
    elbow: float          # mean elbow flexion
    lean: float           # forward trunk lean
    head_forward: float   # head carriage (forward offset, fraction of the head radius)
    pelvis_rot: float     # pelvis rotation amplitude about the vertical axis


@dataclass(frozen=True)
class Walk:
    """One walk (shared by the 11 cameras that film it)."""

    condition: str        # "nm", "bg" or "cl"
    phase: float          # gait phase at frame 0, radians
    speed: float          # cadence multiplier
    amp: float            # leg swing amplitude multiplier
    arm: float            # arm swing multiplier
    heading: float        # deviation from the nominal walking direction, degrees
    lean: float           # added lean, degrees
    bag_kind: str         # "", "shoulder", "backpack", "hand"
    bag_side: float       # +1 right, -1 left
    bag_size: float       # metres
    coat_length: float    # skirt hem as a fraction of thigh length below the hip (cl only)
    coat_width: float     # torso widening factor (cl only)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *key]))


_TAG_ID, _TAG_WALK, _TAG_CAM = (zlib.crc32(t.encode()) for t in ("identity", "walk", "camera"))


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


def sample_identity(seed: int, subject: str) -> Identity:
    """The subject ``subject`` (e.g. ``"007"``) of the synthetic dataset with ``seed``.

    Proportions follow anthropometric segment/stature ratios (Winter, *Biomechanics and Motor
    Control of Human Movement*) with a few percent of spread each, so that subjects differ in
    many small ways rather than in one large one.
    """
    r = _rng(seed, _TAG_ID, _key(subject))
    h = float(r.uniform(1.55, 1.90))

    def ratio(mean: float, spread: float) -> float:
        return float(h * mean * np.clip(1.0 + spread * r.standard_normal(), 1 - 2.5 * spread, 1 + 2.5 * spread))

    return Identity(
        stature=h,
        thigh=ratio(0.245, 0.05), shin=ratio(0.246, 0.05), foot=ratio(0.13, 0.06),
        torso=ratio(0.29, 0.05), neck=ratio(0.05, 0.12), head=ratio(0.062, 0.07),
        shoulder=ratio(0.11, 0.08), hip=ratio(0.085, 0.08),
        upper_arm=ratio(0.175, 0.05), forearm=ratio(0.21, 0.05),
        build=float(np.clip(1.0 + 0.10 * r.standard_normal(), 0.75, 1.3)),
        arm_abduction=float(r.uniform(3.0, 11.0)),
        cadence=float(r.uniform(0.85, 1.05)),
        hip_amp=float(r.uniform(17.0, 25.0)), hip_mean=float(r.uniform(5.0, 10.0)),
        knee_swing=float(r.uniform(50.0, 68.0)), knee_stance=float(r.uniform(8.0, 20.0)),
        arm_swing=float(r.uniform(10.0, 32.0)), elbow=float(r.uniform(8.0, 30.0)),
        lean=float(r.uniform(-1.0, 9.0)), head_forward=float(r.uniform(-0.1, 0.5)),
        pelvis_rot=float(r.uniform(3.0, 9.0)),
    )


def sample_walk(seed: int, subject: str, seq_type: str) -> Walk:
    """The walk ``seq_type`` (``nm-01`` ...) of ``subject``: condition, phase and jitter, bag or coat."""
    r = _rng(seed, _TAG_WALK, _key(subject), _key(seq_type))
    condition = seq_type[:2]
    if condition not in ("nm", "bg", "cl"):
        raise ValueError(f"unknown CASIA-B sequence type {seq_type!r} (expected nm-0x, bg-0x or cl-0x)")
    phase, speed, amp = float(r.uniform(0, 2 * np.pi)), float(r.uniform(0.9, 1.1)), float(r.uniform(0.85, 1.15))
    arm = float(r.uniform(0.7, 1.3))
    heading, lean = float(r.uniform(-6.0, 6.0)), float(r.uniform(-3.5, 3.5))
    kind = str(r.choice(["shoulder", "backpack", "hand"])) if condition == "bg" else ""
    side = float(r.choice([-1.0, 1.0]))
    size = float(r.uniform(0.2, 0.32))
    coat_length = float(r.uniform(0.75, 1.1)) if condition == "cl" else 0.0
    coat_width = float(r.uniform(1.15, 1.4)) if condition == "cl" else 1.0
    return Walk(condition, phase, speed, amp, arm, heading, lean, kind, side, size, coat_length, coat_width)


# -- kinematics ---------------------------------------------------------------------------------
def _bump(phase: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A periodic Gaussian bump in the gait cycle (``phase`` in cycles, ``centre``/``width`` too)."""
    d = (phase - centre + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (d / width) ** 2)


def _yaw(angle: np.ndarray) -> np.ndarray:
    """Rotations about the vertical (y) axis: ``(...,)`` radians -> ``(..., 3, 3)``."""
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*np.shape(angle), 3, 3)


def walker_keypoints(ident: Identity, walk: Walk, num_frames: int) -> np.ndarray:
    """3D keypoints ``(T, 19, 3)`` of the walker in its body frame (metres; x right, y up,
    z forwards; the ground is y = 0 and the pelvis stays above the origin: the forward
    progression is added by the camera). Vectorised over frames."""
    t = np.arange(num_frames) / FPS
    cyc = walk.phase / (2 * np.pi) + ident.cadence * walk.speed * t  # gait phase of the left leg, cycles
    legs = np.stack([cyc, cyc + 0.5], 1)  # (T, 2): left, right
    rad = np.radians
    amp = walk.amp
    hip_flex = rad(ident.hip_mean + amp * ident.hip_amp * np.cos(2 * np.pi * legs))
    knee = rad(amp * (ident.knee_stance * _bump(legs, 0.13, 0.07) + ident.knee_swing * _bump(legs, 0.72, 0.11)))
    push = rad(15.0 * _bump(legs, 0.58, 0.06))
    # Arms swing against the same-side leg.
    swing = walk.arm * ident.arm_swing
    arm = rad(-swing * np.cos(2 * np.pi * legs) + 3.0)
    elbow = rad(ident.elbow + 0.5 * swing * (1 - np.cos(2 * np.pi * (legs + 0.5))) / 2)
    lean = rad(ident.lean + walk.lean)
    side = np.array([-1.0, 1.0])  # left, right (x)

    kp = np.zeros((num_frames, _NUM_KEYPOINTS, 3))
    pel_rot = _yaw(rad(ident.pelvis_rot) * np.cos(2 * np.pi * cyc))        # (T, 3, 3)
    tho_rot = _yaw(-0.7 * rad(ident.pelvis_rot) * np.cos(2 * np.pi * cyc))
    hips = np.einsum("tab,sb->tsa", pel_rot, np.stack([side * ident.hip, [0, 0], [0, 0]], 1))
    spine_dir = np.array([0.0, np.cos(lean), np.sin(lean)])
    kp[:, SPINE] = ident.torso * spine_dir
    shoulders = kp[:, SPINE, None] + np.einsum(
        "tab,sb->tsa", tho_rot, np.stack([side * ident.shoulder, [-0.03, -0.03], [0, 0]], 1))
    head_lean = lean + rad(8.0 * ident.head_forward)
    kp[:, NECK] = kp[:, SPINE] + ident.neck * np.array([0.0, np.cos(head_lean), np.sin(head_lean)])
    kp[:, HEAD] = kp[:, NECK] + ident.head * np.array([0.0, 0.9, 0.35 * ident.head_forward + 0.1])
    kp[:, HEAD_TOP] = kp[:, HEAD] + np.array([0.0, 0.35 * ident.head, 0.0])
    # Legs in the sagittal plane of the body.
    thigh_dir = np.stack([np.zeros_like(hip_flex), -np.cos(hip_flex), np.sin(hip_flex)], -1)  # (T, 2, 3)
    shin_ang = hip_flex - knee
    shin_dir = np.stack([np.zeros_like(shin_ang), -np.cos(shin_ang), np.sin(shin_ang)], -1)
    foot_ang = shin_ang - push  # the foot stays perpendicular to the shin, plantarflexed at push-off
    foot_dir = np.stack([np.zeros_like(foot_ang), np.sin(foot_ang), np.cos(foot_ang)], -1)
    knees = hips + ident.thigh * thigh_dir
    ankles = knees + ident.shin * shin_dir
    toes = ankles + ident.foot * foot_dir
    # Arms: swing in the sagittal plane, abducted a little.
    abd = rad(ident.arm_abduction + (6.0 if walk.condition == "cl" else 0.0))  # a coat holds the arms out
    up_dir = np.stack([side * np.sin(abd) * np.ones_like(arm), -np.cos(abd) * np.cos(arm),
                       np.cos(abd) * np.sin(arm)], -1)
    fore = arm + elbow
    fore_dir = np.stack([side * 0.5 * np.sin(abd) * np.ones_like(fore), -np.cos(fore), np.sin(fore)], -1)
    elbows = shoulders + ident.upper_arm * up_dir
    wrists = elbows + ident.forearm * fore_dir
    kp[:, [HIP_L, HIP_R]] = hips
    kp[:, [KN_L, KN_R]] = knees
    kp[:, [AN_L, AN_R]] = ankles
    kp[:, [TO_L, TO_R]] = toes
    kp[:, [SH_L, SH_R]] = shoulders
    # The chest's sides, inside the shoulder joints (the flank capsules run from there to the hips).
    kp[:, [CH_L, CH_R]] = kp[:, SPINE, None] + 0.62 * (shoulders - kp[:, SPINE, None]) + np.array([0, -0.04, 0])
    kp[:, [EL_L, EL_R]] = elbows
    kp[:, [WR_L, WR_R]] = wrists
    # The lowest foot point touches the ground (foot radius above y = 0).
    lowest = np.minimum(ankles[..., 1], toes[..., 1]).min(1)
    kp[..., 1] += (0.045 * ident.build - lowest)[:, None]
    return kp


def walking_speed(kp: np.ndarray) -> float:
    """The forward speed (m/s) at which the stance foot stays planted: minus the median forward
    velocity, in the body frame, of whichever ankle is lower in each frame (``kp (T, 21, 3)``)."""
    if kp.shape[0] < 2:
        return 1.2
    ankles = kp[:, [AN_L, AN_R]]
    stance = np.argmin(ankles[..., 1], 1)
    vz = np.gradient(ankles[..., 2], 1.0 / FPS, axis=0)[np.arange(kp.shape[0]), stance]
    return float(max(-np.median(vz), 0.3))


def _capsules(ident: Identity, walk: Walk, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capsules of the body and its bag or coat: ``(A (T, P, 3), B (T, P, 3), radius (P,))``."""
    b = ident.build
    coat = walk.condition == "cl"
    w = walk.coat_width if coat else 1.0
    radii = {
        "spine": 0.1 * b * w, "flank": 0.085 * b * w, "shoulder": 0.055 * b * w, "hip": 0.08 * b * w,
        "neck": 0.05 * b, "head": ident.head, "upper_arm": 0.048 * b * (1.45 if coat else 1.0),
        "forearm": 0.04 * b * (1.4 if coat else 1.0), "thigh": 0.076 * b, "shin": 0.056 * b, "foot": 0.038 * b,
    }
    ia = [a for a, _, _ in _BODY_CAPSULES]
    ib = [c for _, c, _ in _BODY_CAPSULES]
    A, B = [kp[:, ia]], [kp[:, ib]]
    R = [np.array([radii[n] for _, _, n in _BODY_CAPSULES])]
    T = kp.shape[0]
    if coat:
        # A skirt from the hips down to about the knees: both sides, the diagonals and the hem,
        # so that the region between the thighs is filled and the leg outline is hidden.
        f = walk.coat_length
        hem = kp[:, [HIP_L, HIP_R]] + f * (kp[:, [KN_L, KN_R]] - kp[:, [HIP_L, HIP_R]])
        hem[..., 0] += np.array([-1.0, 1.0]) * 0.03 * w
        top = kp[:, [HIP_L, HIP_R]]
        sh = kp[:, [SH_L, SH_R]] + np.array([0.0, -0.05, 0.0])
        # ... and the coat's front panels falling from the shoulders to the hem.
        pairs_a = np.stack([top[:, 0], top[:, 1], top[:, 0], top[:, 1], hem[:, 0], sh[:, 0], sh[:, 1]], 1)
        pairs_b = np.stack([hem[:, 0], hem[:, 1], hem[:, 1], hem[:, 0], hem[:, 1], hem[:, 0], hem[:, 1]], 1)
        A.append(pairs_a)
        B.append(pairs_b)
        R.append(np.array([0.09, 0.09, 0.08, 0.08, 0.05, 0.06, 0.06]) * b * w)
    if walk.condition == "bg":
        s = walk.bag_size
        sd = 0 if walk.bag_side < 0 else 1
        if walk.bag_kind == "backpack":
            top = kp[:, SPINE] + np.array([0.0, -0.06, -(0.09 * b + 0.35 * s)])
            bottom = top + np.array([0.0, -1.5 * s, 0.02])
            A.append(top[:, None])
            B.append(bottom[:, None])
            R.append(np.array([0.42 * s]))
        elif walk.bag_kind == "shoulder":
            hip = kp[:, [HIP_L, HIP_R][sd]]
            # at the hip, on the side and a little behind (the strap crosses the chest)
            centre = hip + np.array([walk.bag_side * (0.09 * b + 0.3 * s), 0.0, -0.05 - 0.25 * s])
            other_sh = kp[:, [SH_R, SH_L][sd]]
            A.append(np.stack([centre - np.array([0, 0, 0.5 * s]), other_sh], 1))
            B.append(np.stack([centre + np.array([0, 0, 0.5 * s]), centre], 1))
            R.append(np.array([0.38 * s, 0.012]))
        else:  # a bag held in the hand, swinging with the arm
            wrist = kp[:, [WR_L, WR_R][sd]]
            top = wrist + np.array([walk.bag_side * 0.03, -0.05, 0.0])
            bottom = top + np.array([0.0, -0.9 * s, 0.0])
            A.append(np.stack([wrist, top], 1))
            B.append(np.stack([top, bottom + np.array([0, 0, 0.3 * s])], 1))
            R.append(np.array([0.015, 0.4 * s]))
    A_, B_ = np.concatenate(A, 1), np.concatenate(B, 1)
    assert A_.shape[:2] == (T, sum(len(r) for r in R))
    return A_, B_, np.concatenate(R)


# -- rasterisation ------------------------------------------------------------------------------
def _rasterise(a: np.ndarray, b: np.ndarray, radius: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Binary masks ``(T, H, W)`` of the union of 2D capsules (segments ``a``-``b`` in pixel
    coordinates ``(T, P, 2)`` as (x, y), radii ``(T, P)`` in pixels).

    Each capsule's exact distance field is evaluated on a patch of pixel centres around it and
    the pixels within the radius are scattered into the frames. One array op covers all frames
    and all capsules of a group; capsules are grouped by patch size (at most three groups) so
    that small capsules do not pay for the patch of the largest.
    """
    masks = np.zeros(shape, dtype=bool)
    lo = np.floor(np.minimum(a, b) - radius[..., None]).astype(np.int64)          # (T, P, 2)
    hi = np.ceil(np.maximum(a, b) + radius[..., None]).astype(np.int64)
    extent = (hi - lo).max(0) + 1                                                 # (P, 2): (w, h)
    order = np.argsort(extent[:, 0] * extent[:, 1], kind="stable")
    for group in np.array_split(order, min(3, order.size)):  # <= 3 groups of capsules
        _rasterise_group(a[:, group], b[:, group], radius[:, group], lo[:, group],
                         extent[group].max(0), masks)
    return masks


def _rasterise_group(a: np.ndarray, b: np.ndarray, radius: np.ndarray, lo: np.ndarray, extent: np.ndarray,
                     masks: np.ndarray) -> None:
    """Scatter the capsules ``(T, P)`` into ``masks`` using patches of ``extent = (w, h)`` pixels
    with top-left corners ``lo (T, P, 2)``. With ``p - a = (px, py)``, ``d = b - a``,
    ``w = (p - a) . d`` and ``wc = clip(w, 0, |d|^2)``, the squared distance to the segment is
    ``|p - a|^2 - wc (2 w - wc) / |d|^2``; it is compared with ``r^2`` without the division."""
    f32 = np.float32
    _, H, W = masks.shape
    pw, ph = int(extent[0]), int(extent[1])
    px = ((lo[..., 0, None] + np.arange(pw)).astype(f32) + f32(0.5) - a[..., 0, None].astype(f32))[..., None, :]
    py = ((lo[..., 1, None] + np.arange(ph)).astype(f32) + f32(0.5) - a[..., 1, None].astype(f32))[..., :, None]
    d = (b - a).astype(f32)
    dx, dy = d[..., 0, None, None], d[..., 1, None, None]
    dd = np.maximum(dx * dx + dy * dy, f32(1e-6))
    w = px * dx + py * dy                                                         # (T, P, ph, pw)
    wc = np.clip(w, f32(0.0), dd)
    w *= 2
    w -= wc
    w *= wc                                                                       # wc (2 w - wc)
    dist = px * px + py * py
    dist *= dd
    dist -= w                                                                     # dist^2 * |d|^2
    inside = dist <= (radius.astype(f32) ** 2)[..., None, None] * dd
    t_i, p_i, y_i, x_i = np.nonzero(inside)
    y = lo[t_i, p_i, 1] + y_i
    x = lo[t_i, p_i, 0] + x_i
    ok = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    masks[t_i[ok], y[ok], x[ok]] = True


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``m (T, H, W)`` shifted by ``(dy, dx)`` pixels, zero-filled."""
    out = np.zeros_like(m)
    H, W = m.shape[1:]
    out[:, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        m[:, max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def render_sequence(seed: int, subject: str, seq_type: str, view: str, *, num_frames: int = 30,
                    raw_height: int = 120, walk: Walk | None = None) -> np.ndarray:
    """The silhouette frames ``uint8 (T, raw_height, round(raw_height * 4 / 3))`` (values 0
    and 255) of ``subject``'s walk ``seq_type`` seen from ``view`` (``"000"`` ... ``"180"``).

    ``walk`` replaces the walk :func:`sample_walk` draws (the camera effects stay those of
    ``seq_type``): e.g. the same walk without its bag, to see what the bag changes.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown CASIA-B view {view!r} (expected one of {', '.join(VIEWS)})")
    ident = sample_identity(seed, subject)
    walk = sample_walk(seed, subject, seq_type) if walk is None else walk
    # Independent streams for the camera geometry and the shadow and holes, the radius flicker,
    # the edge noise and the bad frames, so that adding a capsule (a bag) or a boundary pixel
    # changes nothing else.
    rc, r_flicker, r_edge, r_bad = (np.random.default_rng(s) for s in np.random.SeedSequence(
        [int(seed) & 0xFFFFFFFFFFFFFFFF, _TAG_CAM, _key(subject), _key(seq_type), _key(view)]).spawn(4))
    T, H = int(num_frames), int(raw_height)
    W = round(H * 4 / 3)
    kp = walker_keypoints(ident, walk, T)
    a, b, radius = _capsules(ident, walk, kp)
    # Camera: x right, y up, z towards the camera. View 0: walking towards the camera; 90: across.
    alpha = np.radians(int(view) + walk.heading)
    fwd = np.array([np.sin(alpha), 0.0, np.cos(alpha)])
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up)
    rot = np.stack([right, up, fwd], 1)  # body -> camera
    speed = walking_speed(kp)
    t = np.arange(T) / FPS
    travel = (t - t.mean())[:, None] * speed * fwd                                  # (T, 3)
    dist = 8.0
    scale0 = rc.uniform(0.62, 0.78) * H / ident.stature                            # px per metre
    depth = travel[:, 2]
    # Weak perspective; the scale change is capped so that long sequences stay in the frame.
    scale = scale0 * np.clip(dist / (dist - depth), 0.87, 1.13)
    cx = W / 2 + rc.uniform(-0.07, 0.07) * W
    ground = H * rc.uniform(0.86, 0.92)
    top = float((kp[:, HEAD_TOP, 1] + ident.head).max())  # the head must stay 2 px below the top edge
    scale *= min(1.0, (ground - 2.0) / (float(scale.max()) * top))
    # The camera pans when the walk would carry the walker further than half the frame width.
    path = scale * travel[:, 0]
    span = float(path.max() - path.min())
    pan = (path - path.mean()) * max(0.0, 1.0 - 0.5 * W / span) if span > 0 else np.zeros(T)

    def project(p: np.ndarray) -> np.ndarray:
        cam = p @ rot.T + travel[:, None, :]
        x = cx - pan[:, None] + scale[:, None] * cam[..., 0]
        return np.stack([x, ground - scale[:, None] * cam[..., 1]], -1)

    ra, rb = project(a), project(b)
    # Segmentation flicker: radii vary a little from frame to frame (at least ~0.7 px).
    rad_px = np.maximum(radius[None] * scale[:, None] * (1 + 0.06 * r_flicker.standard_normal((radius.size, T)).T), 0.7)
    masks = _rasterise(ra, rb, rad_px, (T, H, W))
    # A shadow at the feet in some sequences.
    if rc.random() < 0.35:
        feet = project(kp[:, [AN_L, AN_R, TO_L, TO_R]])
        x0, x1 = feet[..., 0].min(1), feet[..., 0].max(1)
        y = np.full(T, ground) + 0.5
        reach = rc.uniform(1.0, 6.0, 2)
        sa = np.stack([x0 - reach[0], y], -1)[:, None]
        sb = np.stack([x1 + reach[1], y], -1)[:, None]
        masks |= _rasterise(sa, sb, np.full((T, 1), rc.uniform(0.8, 2.0)), (T, H, W))
    # Holes where the clothes match the background: small blobs on the torso and thighs,
    # persistent over a run of frames.
    n_holes = int(rc.integers(0, 4))
    if n_holes:
        anchor_a = rc.choice([PELVIS, SPINE, HIP_L, HIP_R, KN_L, KN_R, SH_L, SH_R], n_holes)
        anchor_b = rc.choice([SPINE, PELVIS, KN_L, KN_R, HIP_L, HIP_R], n_holes)
        frac = rc.uniform(0.2, 0.8, n_holes)
        centre = project(kp[:, anchor_a] + frac[:, None] * (kp[:, anchor_b] - kp[:, anchor_a]))
        jitter = rc.normal(0.0, 1.5, (1, n_holes, 2))
        start = rc.integers(0, T, n_holes)
        length = rc.integers(T // 6 + 1, T + 1, n_holes)
        fr = np.arange(T)[:, None]
        active = (fr >= start) & (fr < start + length)
        hole_r = np.broadcast_to(rc.uniform(0.8, 2.2, n_holes), (T, n_holes))
        ha = np.where(active[..., None], centre + jitter, -1e4)  # inactive holes: off the frame
        holes = _rasterise(ha, ha + rc.normal(0, 1.0, (1, n_holes, 2)), hole_r, (T, H, W))
        masks &= ~holes
    # Ragged edges: flip pixels on both sides of the boundary at random.
    neigh_all = masks & _shift(masks, 1, 0) & _shift(masks, -1, 0) & _shift(masks, 0, 1) & _shift(masks, 0, -1)
    neigh_any = masks | _shift(masks, 1, 0) | _shift(masks, -1, 0) | _shift(masks, 0, 1) | _shift(masks, 0, -1)
    edge_p = r_edge.uniform(0.1, 0.35)
    boundary = np.flatnonzero(neigh_any & ~neigh_all)  # inner and outer boundary pixels
    flip = boundary[r_edge.random(boundary.size) < edge_p]
    masks.flat[flip] = ~masks.flat[flip]
    # A few near-empty frames (the detector lost the walker): dropped by the pixel-sum threshold.
    n_bad = min(int(r_bad.integers(1, 3)), T // 8) if r_bad.random() < 0.25 else 0  # none in very short sequences
    if n_bad:
        bad = r_bad.choice(T, n_bad, replace=False)
        masks[bad] = False
        n_px = r_bad.integers(0, _PIXEL_THRESHOLD // 255, bad.size)
        specks = r_bad.random((bad.size, H, W)) < (n_px / (H * W))[:, None, None]
        masks[bad] = specks
    return masks.astype(np.uint8) * np.uint8(255)


def frame_name(subject: str, seq_type: str, view: str, frame: int) -> str:
    """CASIA-B's frame file name, ``001-nm-01-090-007.png`` (frames numbered from 1)."""
    return f"{subject}-{seq_type}-{view}-{frame:03d}.png"


def _write_sequence(job: tuple[str, int, str, str, tuple[str, ...], int, int]) -> int:
    root, seed, subject, seq_type, views, num_frames, raw_height = job
    import cv2  # lazy: the worker processes only

    n = 0
    for view in views:
        frames = render_sequence(seed, subject, seq_type, view, num_frames=num_frames, raw_height=raw_height)
        folder = Path(root) / subject / seq_type / view
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames, 1):  # a loop over files: one PNG each
            path = folder / frame_name(subject, seq_type, view, i)
            if not cv2.imwrite(str(path), frame):
                raise OSError(f"could not write {path}")
        n += len(frames)
    return n


def _default_workers() -> int:
    return usable_cpus()


def subject_ids(num_ids: int) -> list[str]:
    """``["001", ..., f"{num_ids:03d}"]``."""
    if not 1 <= int(num_ids) <= 999:
        raise ValueError(f"num_ids must be 1..999, got {num_ids}")
    return [f"{i:03d}" for i in range(1, int(num_ids) + 1)]


def write_synthetic_casia_b(
    root: str | os.PathLike,
    *,
    num_ids: int = 30,
    num_frames: int = 30,
    raw_height: int = 120,
    seed: int = 0,
    types: Sequence[str] = TYPES,
    views: Sequence[str] = VIEWS,
    workers: int | None = None,
) -> int:
    """Write the PNG silhouettes in CASIA-B's layout under ``root``; returns the frame count.

    ``types``/``views`` restrict the sequences (default: all 10 x 11). One job per (id, type)
    covers its views; ``workers`` processes (default: the available cores; forkserver) share
    the jobs. The files do not depend on ``workers``.
    """
    if int(num_frames) < 1 or int(raw_height) < 48:
        raise ValueError(f"need num_frames >= 1 and raw_height >= 48, got {num_frames} and {raw_height}")
    for v in views:
        if v not in VIEWS:
            raise ValueError(f"unknown CASIA-B view {v!r} (expected one of {', '.join(VIEWS)})")
    for ty in types:
        if ty not in TYPES:
            raise ValueError(f"unknown CASIA-B type {ty!r} (expected one of {', '.join(TYPES)})")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), int(seed), s, ty, tuple(views), int(num_frames), int(raw_height))
            for s in subject_ids(num_ids) for ty in types]
    n_workers = min(_default_workers() if workers is None else int(workers), len(jobs))
    if n_workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if n_workers == 1:
        return sum(map(_write_sequence, jobs))
    import multiprocessing as mp

    # forkserver, not fork: forking a process that runs threads can deadlock a worker.
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context(method)) as pool:
        return sum(pool.map(_write_sequence, jobs, chunksize=max(1, len(jobs) // (4 * n_workers))))


def _foreign_entries(raw: Path, ids: Sequence[str], types: Sequence[str], views: Sequence[str],
                     num_frames: int) -> list[str]:
    """Paths under ``raw`` (relative, ``/``-separated) that this generation would not write: a
    stale frame of a longer earlier run would otherwise be read as part of a sequence."""
    if not raw.is_dir():
        return []
    folders = {f"{s}/{t}/{v}": (s, t, v) for s in ids for t in types for v in views}
    allowed = set(ids) | {f"{s}/{t}" for s in ids for t in types} | set(folders)
    foreign = []
    for dirpath, dirnames, filenames in os.walk(raw):  # a loop over folders
        rel = Path(dirpath).relative_to(raw).as_posix()
        rel = "" if rel == "." else rel
        for d in dirnames:
            name = f"{rel}/{d}" if rel else d
            if name not in allowed:
                foreign.append(name)
        dirnames[:] = [d for d in dirnames if (f"{rel}/{d}" if rel else d) in allowed]
        if filenames:
            key = folders.get(rel)
            expected = {frame_name(*key, k) for k in range(1, num_frames + 1)} if key else set()
            foreign += [f"{rel}/{f}" if rel else f for f in filenames if f not in expected]
    return sorted(foreign)


def generate_synthetic_casia_b(
    out: str | os.PathLike,
    *,
    num_ids: int = 30,
    num_train_ids: int = 20,
    num_frames: int = 30,
    size: int = 64,
    raw_height: int = 120,
    seed: int = 0,
    workers: int | None = None,
    keep_raw: bool = True,
    types: Sequence[str] = TYPES,
    views: Sequence[str] = VIEWS,
) -> dict[str, Any]:
    """Write the synthetic CASIA-B PNGs into ``out/raw`` and prepare them into ``out``.

    The preparation is the real one, :func:`graphfuse.data.gait.prepare.prepare_casia_b`
    (``size`` 64 or 128, partition: the first ``num_train_ids`` ids train, the rest test,
    ``dataset="synthetic-casia-b"``). ``out/raw`` is kept unless ``keep_raw=False`` (it is
    the real-format data); a file or folder there that this generation would not write stops
    it with ``ValueError``. ``types``/``views`` restrict the sequences (tests). The generation
    settings are recorded in ``out/synthetic_casia_b.json``. Returns the ``meta.json`` written.
    """
    if not 1 <= int(num_train_ids) < int(num_ids):
        raise ValueError(f"num_train_ids must be 1..num_ids-1 ({int(num_ids) - 1}), got {num_train_ids}")
    out = Path(out)
    raw = out / "raw"
    ids = subject_ids(num_ids)
    foreign = _foreign_entries(raw, ids, types, views, int(num_frames))
    if foreign:
        raise ValueError(f"{raw} holds {len(foreign)} entries this generation does not write "
                         f"(e.g. {foreign[0]!r}); use an empty directory")
    settings = {"generator": "graphfuse.data.synthetic.gait", "version": GENERATOR_VERSION, "seed": int(seed),
                "num_ids": int(num_ids), "num_train_ids": int(num_train_ids), "num_frames": int(num_frames),
                "raw_height": int(raw_height), "size": int(size), "types": list(types), "views": list(views)}
    n = write_synthetic_casia_b(raw, num_ids=num_ids, num_frames=num_frames, raw_height=raw_height, seed=seed,
                                types=types, views=views, workers=workers)
    from graphfuse.data.gait.prepare import prepare_casia_b  # the real preparation path
    from graphfuse.io import write_json

    partition = {"train": ids[:num_train_ids], "test": ids[num_train_ids:]}
    meta = prepare_casia_b(raw, out, size=size, partition=partition, workers=workers, dataset="synthetic-casia-b")
    write_json(out / "synthetic_casia_b.json", {**settings, "raw_frames": int(n), "raw_kept": bool(keep_raw)})
    if not keep_raw:
        shutil.rmtree(raw)
    return meta


#: The name the other synthetic modules use for "generate and prepare".
prepare_synthetic_casia_b = generate_synthetic_casia_b


# -- command line -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``graphfuse prepare synthetic-casia-b``."""
    parser.add_argument("--out", required=True, help="output folder (PNGs in OUT/raw, prepared arrays in OUT)")
    parser.add_argument("--ids", type=int, default=30, help="number of subjects (default 30)")
    parser.add_argument("--train-ids", type=int, default=20, help="the first N subjects train (default 20)")
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30)")
    parser.add_argument("--size", type=int, default=64, choices=[64, 128], help="pretreated frame size")
    parser.add_argument("--raw-height", type=int, default=120, help="height of the PNG frames (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: available cores)")
    parser.add_argument("--no-keep-raw", dest="keep_raw", action="store_false",
                        help="delete OUT/raw after the preparation")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """``graphfuse prepare synthetic-casia-b``: generate, prepare, print a one-line summary."""
    meta = generate_synthetic_casia_b(
        args.out, num_ids=args.ids, num_train_ids=args.train_ids, num_frames=args.frames, size=args.size,
        raw_height=args.raw_height, seed=args.seed, workers=args.workers, keep_raw=args.keep_raw)
    pre = meta.get("pretreatment", {})
    print(f"synthetic CASIA-B -> {args.out}: {meta['num_sequences']} sequences, {meta['num_frames']} frames "
          f"({pre.get('dropped_frames', 0)} dropped by the pixel threshold), "
          f"{len(meta['partition']['train'])} train / {len(meta['partition']['test'])} test ids")
    return meta

