"""Synthetic PIE: procedural pedestrians and ego vehicles written in the original PIE layout.

This is the test data and quickstart dataset of the pedestrian-intention pipeline. The files
go through the same readers (:func:`graphfuse.data.intention.read_pie_video`), the same
benchmark windowing and the same pose matching as a real PIE download, so everything but the
numbers is exercised. Layout under ``root`` (PIE: Rasouli et al., "PIE: A Large-Scale Dataset
and Models for Pedestrian Intention Estimation and Trajectory Prediction", ICCV 2019;
files as in aras62/PIE ``annotations*/`` and read by its ``utilities/pie_data.py``)::

    annotations/setXX/video_XXXX_annt.xml                CVAT 1.1 tracks (pedestrians + traffic)
    annotations_attributes/setXX/video_XXXX_attributes.xml   one <pedestrian> per track
    annotations_vehicle/setXX/video_XXXX_obd.xml         one <frame> per video frame
    poses/setXX/video_XXXX.json                          COCO keypoint results (AlphaPose style)
    synthetic_pie.json                                   the generator's summary (provenance)

The XML copies the real files' formatting: the annotation file's ``meta/task`` (``size`` =
number of frames, ``original_size`` 1920x1080, the label list), boxes with ``frame keyframe
occluded outside xbr xtl ybr ytl`` and ``<attribute>`` children (pedestrians: id, cross,
occlusion, gesture, action, look), CVAT-style linear interpolation between keyframes, and a
closing ``outside="1"`` box on some tracks; the attribute and OBD files are single-line
``<ped_attributes>`` / ``<vehicle_info>`` documents with alphabetically ordered attributes.

How a video is made (all distances in metres, 30 frames per second):

* **Camera and road.** A pinhole camera (f = 1200 px, principal point (960, 560)) 1.35 m
  above the road looks along the ego lane (camera x right, y up, z forward). Each scene has a
  curb on the right (2.5-5 m from the lane centre) and on the left (4-7 m).
* **Scenes.** A video is a sequence of scenes; each holds 1-4 pedestrians whose crossing
  decision (the PIE ``crossing`` attribute, 1 / 0 / -1 irrelevant) is drawn first and then
  acted out. The event frame (``crossing_point``) is the frame a crosser steps off the curb
  and, as in PIE, the third-to-last annotated frame of everybody else.
* **Behaviours** (what makes the decision predictable, and what makes it hard):

  - crossers either walk along the sidewalk and turn towards the road 0.5-3.5 s before the
    curb (``approach``), wait at the curb and start walking 0.3-1.2 s before it
    (``wait_go``, hardly distinguishable from a waiting non-crosser in the observed
    window), or walk diagonally towards the road the whole time (``diagonal``);
  - non-crossers walk parallel to the road, sometimes drifting towards it (``parallel``),
    stand near the curb facing the road or along it (``stand``), or approach the curb like
    a crosser and stop there (``hesitant``);
  - irrelevant pedestrians stay 2-9 m behind the curb, walking parallel or away from the
    road, or standing (``far_walk``, ``far_stand``).

  A turn towards the road narrows the shoulders in the image (profile view) and moves the
  body laterally towards the image centre; walking has a gait cycle (leg and arm swing,
  knee flexion, vertical bob) whose amplitude and cadence follow the walking speed.
* **Ego vehicle.** A cruise speed of 18-38 km/h per scene, smoothed between scenes; the
  driver yields to 70 % of crossers (deceleration starting 2.5-4.5 s before the event, to
  0-30 % of the cruise speed), to 50 % of hesitant pedestrians, and brakes for unrelated
  reasons (red light, traffic) in 45 % of scenes. ``OBD_speed`` is a sample-and-hold of the speed (1 km/h
  steps), ``GPS_speed`` a noisier 10 Hz reading; heading, position, attitude, accelerometer
  and gyroscope follow the speed with noise.
* **Annotation noise.** ``label_noise`` (default 5 %) of the relevant pedestrians have their
  ``crossing`` attribute swapped between 0 and 1 (the motion is unchanged), so no model
  reaches 100 %.
* **Poses.** Every annotated pedestrian, plus 1-3 unannotated background people per video,
  is detected in every frame with probability 0.97 (0.85 when its box is under 60 px, never
  when fully occluded): 17 COCO keypoints ``[x, y, score]`` from the projected skeleton with
  Gaussian jitter growing with the box size and falling with the score, lower scores for
  the face seen from behind and for far-side limbs, occasional left/right swaps in profile
  views, and weak lower-body keypoints under partial occlusion. Entries are sorted by frame
  and shuffled within a frame; ``image_id`` is the PIE frame file name (``"00012.png"``) or
  the frame number.

Difficulty (defaults, seed 0; benchmark windows obs 16, tte 30-60): one threshold on the
lateral velocity towards the road reaches a balanced accuracy of about 0.72, one on the ego
deceleration about 0.67; a logistic regression on ten hand-made window features (box and
pose lateral motion, distance from the lane, shoulder width, ego speed and deceleration, box
size) about 87 % test accuracy; a small GRU on pose + ego speed 78-80 % (selected on val).
The label noise caps any model near 95 %.

Determinism: a video depends only on ``(seed, set, video number)`` and the size arguments,
so files are byte-identical for a given seed whatever other sets are requested.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphfuse.io import write_json, write_text

__all__ = [
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "FOCAL_PX",
    "PRINCIPAL_POINT",
    "CAMERA_HEIGHT",
    "FPS",
    "COCO17_NAMES",
    "BEHAVIOURS",
    "DEFAULT_VIDEOS_PER_SET",
    "DEFAULT_SETS",
    "generate_synthetic_pie",
    "prepare_synthetic_pie",
]

#: Bumped whenever the generated data change for a given seed.
GENERATOR_VERSION = 1
IMAGE_SIZE: tuple[int, int] = (1920, 1080)  # PIE's original_size (width, height)
FOCAL_PX = 1200.0
PRINCIPAL_POINT: tuple[float, float] = (960.0, 560.0)
CAMERA_HEIGHT = 1.35
FPS = 30
#: COCO-17 keypoint order of the pose files (COCO keypoint results).
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle")
#: Behaviour names per PIE ``crossing`` value and their probabilities.
BEHAVIOURS: dict[int, tuple[tuple[str, float], ...]] = {
    1: (("approach", 0.5), ("wait_go", 0.3), ("diagonal", 0.2)),
    0: (("parallel", 0.45), ("stand", 0.35), ("hesitant", 0.2)),
    -1: (("far_walk", 0.6), ("far_stand", 0.4)),
}
_CLASS_P = {1: 0.35, 0: 0.40, -1: 0.25}
DEFAULT_SETS: tuple[str, ...] = ("set01", "set02", "set03", "set04", "set05", "set06")
#: Videos per set of the default size: 10 train videos (set01, set02, set04), 3 val (set05,
#: set06), 5 test (set03); with 16 pedestrians per video the benchmark windowing (obs 16,
#: overlap 0.6, tte 30-60: 6 windows per track of >= 76 frames) gives about 900 / 280 / 470
#: samples.
DEFAULT_VIDEOS_PER_SET: dict[str, int] = {
    "set01": 3, "set02": 3, "set03": 5, "set04": 4, "set05": 2, "set06": 1}
_SPLIT_OF_SET = {"set01": "train", "set02": "train", "set04": "train", "set05": "val",
                 "set06": "val", "set03": "test"}  # PIE's default split (_get_image_set_ids)

_Z_MAX = 60.0        # annotation starts once a pedestrian is this close (box >= ~32 px)
_Z_MIN = 2.5         # ... and never comes closer than this
_PRE_RANGE = (80, 190)   # desired frames before the event (visibility may shorten it)
_SCORE_MIN = 0.05
_P_YIELD = 0.7     # share of crossers the driver slows down for

# Body model: fractions of the stature in a body frame with x to the right, y up, z forward.
_HIP_Y, _HIP_HALF = 0.530, 0.055
_SHOULDER_Y, _SHOULDER_HALF = 0.818, 0.115
_UPPER_ARM, _FOREARM, _THIGH, _SHIN, _ANKLE_Y = 0.186, 0.150, 0.245, 0.246, 0.039
# Face points (x, y, z) relative to the neck axis; rotated by the head yaw.
_FACE = np.array([[0.0, 0.925, 0.060], [-0.030, 0.940, 0.048], [0.030, 0.940, 0.048],
                  [-0.066, 0.930, -0.005], [0.066, 0.930, -0.005], [0.0, 1.0, 0.0]])  # + head top
_LEFT = np.array([1, 3, 5, 7, 9, 11, 13, 15])
_RIGHT = _LEFT + 1
_LIMBS_L = np.array([7, 9, 13, 15])
_LIMBS_R = _LIMBS_L + 1
_LOWER = np.arange(11, 17)

_PED_LABELS = """\
        <label>
          <name>transit_station</name>
          <attributes>
            <attribute>@text=id:</attribute>
          </attributes>
        </label>
        <label>
          <name>traffic_light</name>
          <attributes>
            <attribute>~select=state:__undefined__,green,yellow,red</attribute>
            <attribute>@text=id:</attribute>
            <attribute>@select=type:regular,transit,pedestrian</attribute>
          </attributes>
        </label>
        <label>
          <name>sign</name>
          <attributes>
            <attribute>@select=type:ped_blue,ped_yellow,ped_white,ped_text,stop_sign,bus_stop,train_stop,construction,other</attribute>
            <attribute>@text=id:</attribute>
          </attributes>
        </label>
        <label>
          <name>crosswalk</name>
          <attributes>
            <attribute>@text=id:</attribute>
          </attributes>
        </label>
        <label>
          <name>vehicle</name>
          <attributes>
            <attribute>@select=type:car,truck,bus,train,bicycle,bike</attribute>
            <attribute>@text=id:</attribute>
          </attributes>
        </label>
        <label>
          <name>pedestrian</name>
          <attributes>
            <attribute>~select=action:standing,walking</attribute>
            <attribute>@text=id:</attribute>
            <attribute>~select=look:not-looking,looking</attribute>
            <attribute>~select=cross:not-crossing,crossing,crossing-irrelevant</attribute>
            <attribute>~select=occlusion:none,part,full</attribute>
            <attribute>~select=gesture:__undefined__,hand_ack,hand_yield,hand_rightofway,nod,other</attribute>
          </attributes>
        </label>
"""


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *key]))


_TAG_VIDEO = zlib.crc32(b"synthetic-pie-video")


def _smooth(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """Smoothstep from 0 at ``t <= a`` to 1 at ``t >= b`` (any shape)."""
    x = np.clip((t - a) / max(b - a, 1e-6), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _keyed(t: np.ndarray, v0: float, changes: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """A value starting at ``v0`` that moves to each ``(start, duration, new)`` in turn."""
    out = np.full(t.shape, float(v0))
    prev = float(v0)
    for start, dur, new in changes:  # a few behaviour phases, not frames
        out = out + (new - prev) * _smooth(t, start, start + dur)
        prev = new
    return out


def _runs(rng: np.random.Generator, n: int, p_start: float, lo: int, hi: int) -> np.ndarray:
    """(n,) bool: random on-segments starting with probability ``p_start`` per frame, lasting
    ``lo..hi`` frames (built from segment starts with a cumulative sum, no frame loop)."""
    starts = np.flatnonzero(rng.random(n) < p_start)
    lengths = rng.integers(lo, hi + 1, starts.size)
    delta = np.zeros(n + 1, np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, np.minimum(starts + lengths, n), -1)
    return np.cumsum(delta[:n]) > 0


# -- plan ----------------------------------------------------------------------------------------
@dataclass
class _Ped:
    """One pedestrian's plan. Times are video frames; ``e`` is the event frame."""

    pid: str
    intent: int              # behaviour class: 1 cross, 0 no cross, -1 irrelevant
    behaviour: str
    e: int
    pre: int
    post: int
    side: float              # +1 right of the ego lane, -1 left
    stature: float
    w0: float                # walking speed m/s
    dz: float                # +1 walking away from the camera along the road, -1 towards it
    params: dict[str, float] = field(default_factory=dict)
    yield_ego: bool = False
    age: str = "adult"
    gender: str = "male"


@dataclass
class _Scene:
    start: int
    end: int
    peds: list[_Ped]
    curb: tuple[float, float]        # right, left curb offset
    cruise: float                    # km/h
    brakes: list[tuple[float, float, float, float, float]]  # (t0, t_full, t_release, t_end, depth)
    attrs: dict[str, str]


def _draw_ped(rng: np.random.Generator, pid: str, intent: int) -> _Ped:
    names, probs = zip(*BEHAVIOURS[intent])
    behaviour = str(rng.choice(names, p=np.array(probs)))
    age = str(rng.choice(["child", "young", "adult", "senior"], p=[0.05, 0.17, 0.63, 0.15]))
    gender = str(rng.choice(["female", "male"]))
    stature = float(rng.uniform(1.15, 1.45) if age == "child" else rng.uniform(1.52, 1.92))
    w0 = float(rng.uniform(1.0, 1.7) * (0.8 if age == "senior" else 1.0))
    side = 1.0 if rng.random() < 0.7 else -1.0
    pre = int(rng.integers(_PRE_RANGE[0], _PRE_RANGE[1] + 1))
    post = int(rng.integers(15, 61)) if intent == 1 else 2
    p: dict[str, float] = {"phase0": float(rng.uniform(0, 2 * np.pi)),
                           "wander_f": float(rng.uniform(0.05, 0.25)),
                           "wander_a": float(np.radians(rng.uniform(1.0, 6.0))),
                           "cross_theta": float(np.radians(rng.uniform(75.0, 95.0))),
                           "cross_speedup": float(rng.uniform(1.0, 1.25)),
                           "crit_lead": float(rng.integers(2, 26)),
                           # PIE's intention_prob: the share of human raters who thought the
                           # pedestrian would cross; high for crossers, ~0 for the irrelevant.
                           "intention_prob": float(rng.beta(*{1: (6, 2), 0: (2, 3), -1: (1, 12)}[intent]))}
    if behaviour == "approach":
        p.update(onset=rng.uniform(-3.5, -0.5), turn=rng.uniform(0.5, 1.2),
                 theta=np.radians(rng.uniform(40.0, 80.0)), slow=rng.uniform(0.75, 1.0))
    elif behaviour == "wait_go":
        p.update(go=rng.uniform(-1.2, -0.3), ramp=rng.uniform(0.4, 0.8),
                 face=np.radians(rng.normal(90.0, 20.0) if rng.random() < 0.7 else rng.normal(10.0, 15.0)),
                 arrive=rng.uniform(-6.0, -2.5) if rng.random() < 0.5 else -99.0)
    elif behaviour == "diagonal":
        p.update(theta=np.radians(rng.uniform(18.0, 45.0)))
    elif behaviour == "parallel":
        p.update(off=rng.uniform(0.4, 3.0),
                 drift_t=rng.uniform(-5.0, -0.5) if rng.random() < 0.25 else -99.0,
                 drift_theta=np.radians(rng.uniform(8.0, 25.0)), drift_len=rng.uniform(0.8, 2.0))
    elif behaviour == "stand":
        u = rng.random()
        # Facing the road (50 %), along it (35 %) or away from it (15 %).
        face = rng.normal(*((90.0, 20.0) if u < 0.5 else (0.0, 20.0) if u < 0.85 else (-90.0, 30.0)))
        p.update(off=rng.uniform(0.2, 2.5), face=np.radians(face),
                 arrive=rng.uniform(-6.0, -2.0) if rng.random() < 0.3 else -99.0)
    elif behaviour == "hesitant":
        onset = rng.uniform(-4.5, -1.5)
        p.update(onset=onset, turn=rng.uniform(0.5, 1.2), theta=np.radians(rng.uniform(40.0, 80.0)),
                 stop=min(onset + rng.uniform(1.0, 2.5), -0.1), gap=rng.uniform(0.2, 0.6))
    elif behaviour == "far_walk":
        away = rng.random() < 0.4
        p.update(off=rng.uniform(2.0, 9.0),
                 theta=-np.radians(rng.uniform(25.0, 70.0)) if away else rng.normal(0.0, 0.08))
    else:  # far_stand
        p.update(off=rng.uniform(2.0, 9.0), face=rng.uniform(-np.pi, np.pi))
    return _Ped(pid, intent, behaviour, 0, pre, post, side, stature, w0,
                1.0 if rng.random() < 0.5 else -1.0, {k: float(v) for k, v in p.items()},
                age=age, gender=gender)


def _plan_video(rng: np.random.Generator, set_num: int, vid_num: int,
                n_peds: int) -> tuple[list[_Scene], int]:
    """Scenes of a video (with their pedestrians' event frames) and the number of frames."""
    sizes: list[int] = []
    while sum(sizes) < n_peds:
        sizes.append(int(min(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]), n_peds - sum(sizes))))
    classes = rng.choice([1, 0, -1], size=n_peds, p=[_CLASS_P[1], _CLASS_P[0], _CLASS_P[-1]])
    scenes: list[_Scene] = []
    cursor, k = int(rng.integers(5, 40)), 0
    for size in sizes:  # one iteration per scene
        peds = [_draw_ped(rng, f"{set_num}_{vid_num}_{k + i + 1}", int(classes[k + i])) for i in range(size)]
        k += size
        rel = rng.integers(-45, 46, size)
        for ped, r in zip(peds, rel):
            ped.e = int(r)
        lo = min(p.e - p.pre for p in peds) - 10
        hi = max(p.e + p.post for p in peds) + 12
        for ped in peds:
            ped.e += cursor - lo
        start, end = cursor, cursor + (hi - lo)
        cruise = float(rng.uniform(18.0, 38.0))
        brakes: list[tuple[float, float, float, float, float]] = []
        for ped in peds:
            yields = ((ped.intent == 1 and rng.random() < _P_YIELD)
                      or (ped.behaviour == "hesitant" and rng.random() < 0.5))
            ped.yield_ego = bool(yields)
            if yields:
                lead = rng.uniform(2.5, 4.5) * FPS
                full = ped.e - rng.uniform(0.0, 0.5) * FPS
                hold = ped.e + rng.uniform(0.5, 2.0) * FPS
                brakes.append((ped.e - lead, full, hold, hold + 2.0 * FPS, rng.uniform(0.7, 1.0)))
        if rng.random() < 0.45:  # red light, traffic ahead: braking unrelated to pedestrians
            t0 = rng.uniform(start, end)
            dur = rng.uniform(1.5, 3.5) * FPS
            hold = rng.uniform(0.5, 3.0) * FPS
            brakes.append((t0, t0 + dur, t0 + dur + hold, t0 + dur + hold + 2.0 * FPS, rng.uniform(0.3, 1.0)))
        attrs = {"intersection": str(rng.choice(["midblock", "T", "T-left", "T-right", "four-way"])),
                 "num_lanes": str(int(rng.integers(1, 5))),
                 "signalized": str(rng.choice(["n/a", "C", "S", "CS"])),
                 "traffic_direction": str(rng.choice(["OW", "TW"]))}
        scenes.append(_Scene(start, end, peds, (float(rng.uniform(2.5, 5.0)), float(rng.uniform(4.0, 7.0))),
                             cruise, brakes, attrs))
        cursor = end + int(rng.integers(20, 91))
    return scenes, cursor + int(rng.integers(10, 60))


# -- ego vehicle ---------------------------------------------------------------------------------
def _ego(rng: np.random.Generator, scenes: list[_Scene], n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Speed (n,) km/h and the OBD fields (each (n,) float64)."""
    t = np.arange(n, dtype=np.float64)
    cruise = np.full(n, scenes[0].cruise)
    for sc in scenes:  # per scene, piecewise constant
        cruise[sc.start:] = sc.cruise
    kernel = np.hanning(91)
    cruise = np.convolve(np.pad(cruise, 45, mode="edge"), kernel / kernel.sum(), mode="valid")
    wobble = sum(rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * t / rng.uniform(90, 400) + rng.uniform(0, 6.3))
                 for _ in range(2))
    factor = np.ones(n)
    for sc in scenes:
        for t0, t_full, t_rel, t_end, depth in sc.brakes:  # a few braking events
            bump = _smooth(t, t0, t_full) * (1.0 - _smooth(t, t_rel, t_end))
            factor *= 1.0 - depth * bump
    speed = np.maximum((cruise + wobble) * factor, 0.0)
    speed[speed < 0.4] = 0.0
    # OBD: sample-and-hold every 10-13 frames in whole km/h; GPS: 10 Hz, noisy.
    updates = np.concatenate([[0], np.cumsum(rng.integers(10, 14, n // 10 + 2))])
    knots = updates[np.searchsorted(updates, t, side="right") - 1].clip(0, n - 1)
    obd = np.round(speed[knots])
    gps_knots = (t // 3 * 3).astype(np.int64)
    gps = np.maximum(speed[gps_knots] + rng.normal(0, 0.35, n)[gps_knots], 0.0)
    accel = np.gradient(speed / 3.6) * FPS  # m/s^2
    yaw_rate = np.convolve(rng.normal(0, 0.8, n + 60), np.ones(61) / 61, mode="valid")[:n]  # deg/s
    heading = (rng.uniform(0, 360) + np.cumsum(yaw_rate) / FPS) % 360.0
    step = speed / 3.6 / FPS
    lat0, lon0 = 43.7 + rng.uniform(-0.05, 0.05), -79.4 + rng.uniform(-0.05, 0.05)
    north = np.cumsum(step * np.cos(np.radians(heading)))
    east = np.cumsum(step * np.sin(np.radians(heading)))
    obd_fields = {
        "GPS_speed": gps,
        "OBD_speed": obd,
        "accX": rng.normal(0.0, 0.03, n),
        "accY": -1.03 + rng.normal(0.0, 0.03, n),
        "accZ": 0.15 + accel / 9.81 + rng.normal(0.0, 0.03, n),
        "gyroX": rng.normal(0.0, 0.6, n),
        "gyroY": rng.normal(0.0, 0.6, n),
        "gyroZ": yaw_rate + rng.normal(0.0, 0.3, n),
        "heading_angle": np.round(heading, 2),
        "latitude": lat0 + north / 111320.0,
        "longitude": lon0 + east / (111320.0 * np.cos(np.radians(lat0))),
        "pitch": 2.96 + np.cumsum(rng.normal(0, 0.0005, n)),
        "roll": 3.19 + np.cumsum(rng.normal(0, 0.0005, n)),
        "yaw": np.round(6.2 + np.cumsum(rng.normal(0, 0.0008, n)), 2),
    }
    return speed, obd_fields


# -- pedestrian motion ---------------------------------------------------------------------------
def _motion(ped: _Ped, tau: np.ndarray) -> dict[str, np.ndarray]:
    """A behaviour acted out over ``tau`` (T,) seconds from the event frame.

    Returns (T,) arrays: walking speed ``w`` (m/s), heading (walking) or facing (standing)
    ``theta`` in rad (0 = along the road, +pi/2 = towards it, < 0 = away from it),
    ``toward`` (metres walked towards the road since the event), ``along`` (metres walked
    along the road, cumulative), ``look_bias`` (propensity to look at the traffic), and the
    scalar ``event_off``: distance from the curb at the event frame."""
    p = ped.params
    w = np.full(tau.shape, ped.w0)
    wander = p["wander_a"] * np.sin(2 * np.pi * p["wander_f"] * tau + p["phase0"])
    look_bias = np.zeros(tau.shape)
    b = ped.behaviour
    if b == "approach":
        theta = _keyed(tau, 0.0, [(p["onset"], p["turn"], p["theta"]), (0.0, 0.5, p["cross_theta"])]) + wander
        w = w * _keyed(tau, 1.0, [(-0.8, 0.4, p["slow"]), (0.0, 0.5, p["cross_speedup"])])
        look_bias += 0.6 * _smooth(tau, p["onset"], p["onset"] + 0.5)
        event_off = 0.0
    elif b == "wait_go":
        arrive = p["arrive"]
        theta = _keyed(tau, 0.0 if arrive > -90 else p["face"],
                       [(arrive, 0.8, p["face"]), (p["go"], p["ramp"], p["cross_theta"])]) + 0.3 * wander
        go = _smooth(tau, p["go"], p["go"] + p["ramp"])
        w = w * np.maximum(1.0 - _smooth(tau, arrive, arrive + 0.8), go)
        if arrive < -90:
            w = ped.w0 * go
        w = w * np.where(tau >= 0, p["cross_speedup"], 1.0)
        look_bias += 0.7 * (tau > -3.0)
        event_off = 0.0
    elif b == "diagonal":
        theta = _keyed(tau, p["theta"], [(0.0, 0.5, p["cross_theta"])]) + wander
        look_bias += 0.4
        event_off = 0.0
    elif b == "parallel":
        theta = wander + p["drift_theta"] * _smooth(tau, p["drift_t"], p["drift_t"] + 0.5) * (
            1.0 - _smooth(tau, p["drift_t"] + p["drift_len"], p["drift_t"] + p["drift_len"] + 0.5))
        event_off = p["off"]
    elif b == "stand":
        arrive = p["arrive"]
        theta = _keyed(tau, 0.0 if arrive > -90 else p["face"], [(arrive, 0.8, p["face"])]) + 0.3 * wander
        w = ped.w0 * (1.0 - _smooth(tau, arrive, arrive + 0.8)) if arrive > -90 else np.zeros(tau.shape)
        look_bias += 0.3
        event_off = p["off"]
    elif b == "hesitant":
        theta = _keyed(tau, 0.0, [(p["onset"], p["turn"], p["theta"]), (p["stop"], 0.6, np.pi / 2)])
        theta = theta + 0.5 * wander
        w = w * (1.0 - _smooth(tau, p["stop"] - 0.6, p["stop"]))
        look_bias += 0.6 * _smooth(tau, p["onset"], p["onset"] + 0.5)
        event_off = p["gap"]
    elif b == "far_walk":
        theta = p["theta"] + wander
        event_off = p["off"]
    else:  # far_stand
        theta = p["face"] + 0.5 * wander
        w = np.zeros(tau.shape)
        event_off = p["off"]
    w = np.maximum(w, 0.0)
    # Lateral velocity towards the road, integrated from the event frame in both directions.
    v_road = w * np.sin(theta) / FPS
    i0 = int(np.argmin(np.abs(tau)))
    cum = np.cumsum(v_road)
    toward = cum - cum[i0]  # distance moved towards the road since the event
    return {"w": w, "theta": theta, "toward": toward, "look_bias": look_bias,
            "event_off": np.float64(event_off), "along": np.cumsum(w * np.cos(theta) / FPS)}


def _skeleton(ped: _Ped, w: np.ndarray, head_yaw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Body-frame COCO-17 joints + head top: (T, 18, 3), metres, feet on y = 0."""
    n = w.shape[0]
    h = ped.stature
    f_stride = (0.45 + 0.35 * w) / FPS
    phase = ped.params["phase0"] + 2 * np.pi * np.cumsum(f_stride)
    amp = np.clip(w / 1.4, 0.0, 1.3)
    leg = 0.35 * amp * np.sin(phase)                       # right hip flexion (forward +)
    arm = 0.30 * amp * np.sin(phase) + rng.normal(0, 0.02, n)
    knee_r = 0.55 * amp * np.maximum(0.0, np.sin(phase + 0.8))
    knee_l = 0.55 * amp * np.maximum(0.0, np.sin(phase + 0.8 + np.pi))
    sway = 0.01 * np.sin(2 * np.pi * 0.3 * np.arange(n) / FPS + ped.params["phase0"])
    pts = np.zeros((n, 18, 3))
    pts[:, 5] = (-_SHOULDER_HALF * h, _SHOULDER_Y * h, 0.0)
    pts[:, 6] = (_SHOULDER_HALF * h, _SHOULDER_Y * h, 0.0)
    pts[:, 11] = (-_HIP_HALF * h, _HIP_Y * h, 0.0)
    pts[:, 12] = (_HIP_HALF * h, _HIP_Y * h, 0.0)
    for joint, sign, a, extra in ((7, -1.0, arm, 0.15), (8, 1.0, -arm, 0.15)):  # two arms
        sh = pts[:, joint - 2]
        el = sh + np.stack([sign * 0.02 * h + 0 * a, -_UPPER_ARM * h * np.cos(a),
                            _UPPER_ARM * h * np.sin(a)], -1)
        fa = a + extra + 0.4 * np.abs(a)
        pts[:, joint] = el
        pts[:, joint + 2] = el + np.stack([sign * 0.01 * h + 0 * a, -_FOREARM * h * np.cos(fa),
                                           _FOREARM * h * np.sin(fa)], -1)
    for joint, bl, kn in ((13, -leg, knee_l), (14, leg, knee_r)):  # two legs
        hip = pts[:, joint - 2]
        knee = hip + np.stack([0 * bl, -_THIGH * h * np.cos(bl), _THIGH * h * np.sin(bl)], -1)
        sa = bl - kn
        pts[:, joint] = knee
        pts[:, joint + 2] = knee + np.stack([0 * sa, -_SHIN * h * np.cos(sa), _SHIN * h * np.sin(sa)], -1)
    c, s = np.cos(head_yaw)[:, None], np.sin(head_yaw)[:, None]
    face = _FACE * h
    pts[:, [0, 1, 2, 3, 4, 17], 0] = face[:, 0] * c + face[:, 2] * s
    pts[:, [0, 1, 2, 3, 4, 17], 1] = face[:, 1]
    pts[:, [0, 1, 2, 3, 4, 17], 2] = -face[:, 0] * s + face[:, 2] * c
    pts[:, :, 0] += sway[:, None] * h
    # The lower ankle rests on the floor (vertical bob of the gait).
    lift = _ANKLE_Y * h - np.minimum(pts[:, 15, 1], pts[:, 16, 1])
    pts[:, :, 1] += lift[:, None]
    return pts


def _project(xyz: np.ndarray) -> np.ndarray:
    """Camera coordinates (x right, y up relative to the road, z forward) -> pixels (..., 2)."""
    cx, cy = PRINCIPAL_POINT
    z = np.maximum(xyz[..., 2], 0.1)
    return np.stack([cx + FOCAL_PX * xyz[..., 0] / z, cy - FOCAL_PX * (xyz[..., 1] - CAMERA_HEIGHT) / z], -1)


@dataclass
class _Track:
    """A pedestrian's generated track (annotated frames only)."""

    ped: _Ped
    frames: np.ndarray       # (F,) int64
    boxes: np.ndarray        # (F, 4) annotated x1 y1 x2 y2 (interpolated between keyframes)
    keyframe: np.ndarray     # (F,) bool
    kps: np.ndarray          # (F, 17, 2) clean pixels
    facing: np.ndarray       # (F,) cos(angle between body forward and the direction to the camera)
    side: np.ndarray         # (F,) > 0: right side turned to the camera
    height_px: np.ndarray    # (F,)
    walking: np.ndarray      # (F,) bool
    looking: np.ndarray      # (F,) bool
    occlusion: np.ndarray    # (F,) int 0/1/2
    cross: np.ndarray        # (F,) str
    gesture: np.ndarray      # (F,) str
    event: int
    crossing: int            # annotated attribute (after label noise)
    flipped: bool


def _ped_track(ped: _Ped, curb: float, ego_s: np.ndarray, n_frames: int, rng: np.random.Generator,
               label_flip: bool) -> _Track | None:
    """Simulate one pedestrian over its desired span and keep the visible part."""
    lo, hi = max(ped.e - ped.pre, 0), min(ped.e + ped.post, n_frames - 2)
    if not lo <= ped.e <= hi:
        return None
    frames = np.arange(lo, hi + 1)
    tau = (frames - ped.e) / FPS
    m = _motion(ped, tau)
    s = ped.side
    i0 = int(ped.e - lo)
    # Lateral position |X| = curb + offset at the event, minus the way walked towards the road.
    absx = curb + float(m["event_off"]) - m["toward"]
    if ped.intent != 1:  # keep non-crossers on the sidewalk whatever their drift
        absx = np.maximum(absx, curb + 0.15)
    x = s * absx
    heading = np.arctan2(-s * np.sin(m["theta"]), ped.dz * np.cos(m["theta"]))
    # Distance ahead at the event: crossers in front of the (usually stopping) car; others at
    # the edge of the image when their track ends.
    edge = abs(x[min(len(x) - 1, i0 + 2)]) * FOCAL_PX / 880.0
    if ped.intent == 1:
        d_e = max(edge, 9.0) + (rng.uniform(0, 12) if ped.yield_ego else rng.uniform(12, 22))
    else:
        d_e = max(edge, 6.0) * rng.uniform(1.0, 1.5)
    along = ped.dz * (m["along"] - m["along"][i0])
    z = d_e + along - (ego_s[frames] - ego_s[ped.e])
    # Head: turns towards the camera while 'looking'.
    to_cam = np.arctan2(-x, -z)
    rel = np.angle(np.exp(1j * (to_cam - heading)))
    look_on = _runs(rng, len(frames), 0.02 + 0.03 * float(m["look_bias"].mean()), 10, 45)
    look_on |= (rng.random(len(frames)) < 0.02 * m["look_bias"])
    head_yaw = np.where(look_on, np.clip(rel, -1.4, 1.4), 0.0)
    head_yaw = np.convolve(np.pad(head_yaw, 4, mode="edge"), np.ones(9) / 9, mode="valid")
    body = _skeleton(ped, m["w"], head_yaw, rng)
    ch, sh = np.cos(heading)[:, None], np.sin(heading)[:, None]
    world = np.empty_like(body)
    world[..., 0] = x[:, None] + body[..., 0] * ch + body[..., 2] * sh
    world[..., 1] = body[..., 1]
    world[..., 2] = z[:, None] - body[..., 0] * sh + body[..., 2] * ch
    pix = _project(world)
    top, bottom = pix[:, 17, 1], pix[:, [15, 16], 1].max(1)
    hpx = bottom - top
    margin = 0.06 * hpx
    box = np.stack([pix[:, :17, 0].min(1) - margin, top - 0.5 * margin,
                    pix[:, :17, 0].max(1) + margin, bottom + 0.7 * margin], -1)
    w_img, h_img = IMAGE_SIZE
    cxb = 0.5 * (box[:, 0] + box[:, 2])
    ok = (z > _Z_MIN) & (z < _Z_MAX) & (cxb > 5) & (cxb < w_img - 5) & (box[:, 3] > 0) & (box[:, 1] < h_img)
    # The longest visible run that contains the event frame.
    if not ok[i0]:
        return None
    bad = np.flatnonzero(~ok)
    first = int(bad[bad < i0].max() + 1) if (bad < i0).any() else 0
    last = int(bad[bad > i0].min() - 1) if (bad > i0).any() else len(frames) - 1
    if ped.intent != 1:
        last = min(last, i0 + 2)
        if last != i0 + 2:
            return None
    if i0 - first < 10:
        return None
    sl = slice(first, last + 1)
    frames, box, pix, hpx = frames[sl], box[sl], pix[sl, :17], hpx[sl]
    # CVAT keyframes every 5-15 frames; boxes are interpolated linearly in between.
    nk = len(frames)
    kf_idx = np.unique(np.concatenate([[0, nk - 1], np.cumsum(rng.integers(5, 16, nk // 5 + 1))]))
    kf_idx = kf_idx[kf_idx < nk]
    kf_box = box[kf_idx] + rng.normal(0, 0.6, (len(kf_idx), 4))
    ann = np.stack([np.interp(np.arange(nk), kf_idx, kf_box[:, j]) for j in range(4)], -1)
    ann[:, [0, 2]] = np.clip(ann[:, [0, 2]], 0.0, w_img)
    ann[:, [1, 3]] = np.clip(ann[:, [1, 3]], 0.0, h_img)
    ann = np.round(ann, 2)
    keyframe = np.zeros(nk, bool)
    keyframe[kf_idx] = True
    # Behaviour flags.
    fwd = np.stack([np.sin(heading[sl]), np.cos(heading[sl])], -1)
    right = np.stack([np.cos(heading[sl]), -np.sin(heading[sl])], -1)
    cam = -np.stack([x[sl], z[sl]], -1)
    cam /= np.linalg.norm(cam, axis=-1, keepdims=True)
    facing = (fwd * cam).sum(-1)
    side = (right * cam).sum(-1)
    walking = m["w"][sl] > 0.3
    looking = look_on[sl] & (np.abs(rel[sl]) < 1.45)
    occl = np.zeros(nk, np.int64)
    if rng.random() < 0.3:
        a = int(rng.integers(0, nk))
        occl[a:a + int(rng.integers(10, 51))] = 1
    if rng.random() < 0.06:
        a = int(rng.integers(0, nk))
        occl[a:a + int(rng.integers(5, 21))] = 2
    event = int(ped.e)
    tau_k = (frames - event)
    if ped.intent == 1:
        cross = np.where(tau_k >= 0, "crossing", "not-crossing")
    elif ped.intent == -1 and ped.behaviour == "far_walk" and ped.params["theta"] < -0.3:
        cross = np.full(nk, "crossing-irrelevant")
    else:
        cross = np.full(nk, "not-crossing")
    gesture = np.full(nk, "__undefined__", dtype=object)
    if ped.intent == 1 and ped.yield_ego and rng.random() < 0.15:
        gesture[(tau_k > -30) & (tau_k < 10)] = str(rng.choice(["hand_ack", "nod", "hand_yield"]))
    crossing = ped.intent
    if label_flip:
        crossing = 1 - ped.intent
    return _Track(ped, frames, ann, keyframe, pix, facing, side, hpx, walking, looking, occl,
                  cross.astype(str), gesture.astype(str), event, int(crossing), bool(label_flip))


_Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # frames (D,), keypoints (D, 17, 3), scores (D,)


def _detections(tr: _Track, rng: np.random.Generator) -> _Detections:
    """Detected poses of a track: frames (D,), keypoints (D, 17, 3) [x, y, score], scores (D,)."""
    nk = len(tr.frames)
    h = np.maximum(tr.height_px, 1.0)
    size_q = 0.55 + 0.45 * _smooth(h, 25.0, 110.0)
    base = rng.uniform(0.78, 0.95) * size_q
    score = np.repeat(base[:, None], 17, 1) + rng.normal(0, 0.05, (nk, 17))
    face_vis = 0.25 + 0.75 * np.clip((tr.facing + 0.2) / 0.8, 0.0, 1.0)
    score[:, :3] *= face_vis[:, None]
    score[:, 3] *= np.clip(0.55 - 0.9 * tr.side, 0.12, 1.0)   # left ear: hidden when the right side faces us
    score[:, 4] *= np.clip(0.55 + 0.9 * tr.side, 0.12, 1.0)
    score[:, _LIMBS_L] *= np.clip(0.7 - 0.7 * tr.side, 0.3, 1.0)[:, None]
    score[:, _LIMBS_R] *= np.clip(0.7 + 0.7 * tr.side, 0.3, 1.0)[:, None]
    part = tr.occlusion == 1
    score[part[:, None] & np.isin(np.arange(17), _LOWER)[None]] *= 0.3
    score = np.clip(score, _SCORE_MIN, 0.99)
    sigma = (0.008 + 0.03 * (1.0 - score)) * h[:, None] + 0.6
    xy = tr.kps + rng.normal(0, 1, (nk, 17, 2)) * sigma[..., None]
    # Left/right confusions of the estimator, mostly in profile views.
    sw = np.flatnonzero((np.abs(tr.facing) < 0.35) & (rng.random(nk) < 0.05))
    left = xy[np.ix_(sw, _LEFT)].copy()
    xy[np.ix_(sw, _LEFT)] = xy[np.ix_(sw, _RIGHT)]
    xy[np.ix_(sw, _RIGHT)] = left
    w_img, h_img = IMAGE_SIZE
    xy[..., 0] = np.clip(xy[..., 0], 0.0, w_img - 1.0)
    xy[..., 1] = np.clip(xy[..., 1], 0.0, h_img - 1.0)
    p_miss = np.where(h < 60.0, 0.15, 0.03)
    keep = (rng.random(nk) >= p_miss) & (tr.occlusion < 2) & ~_runs(rng, nk, 0.004, 3, 12)
    kp = np.concatenate([xy, score[..., None]], -1)[keep]
    det_score = np.clip(score[keep].mean(1) * rng.uniform(0.95, 1.35, int(keep.sum())), 0.05, 0.999)
    return tr.frames[keep], kp, det_score


def _background_people(rng: np.random.Generator, ego_s: np.ndarray, n_frames: int) -> list[_Detections]:
    """Unannotated standing people far from the road: the pose estimator finds them too."""
    out = []
    for i in range(int(rng.integers(1, 4))):  # 1-3 people
        ped = _draw_ped(rng, f"bg{i}", -1)
        ped.behaviour = "far_stand"
        ped.params.update(face=float(rng.uniform(-np.pi, np.pi)))
        span = min(int(rng.integers(100, 400)), n_frames - 5)
        start = int(rng.integers(0, n_frames - span + 1))
        ped.e, ped.pre, ped.post = start + span - 3, span - 3, 2
        tr = _ped_track(ped, float(rng.uniform(9.0, 14.0)) - ped.params["off"], ego_s, n_frames, rng, False)
        if tr is not None:
            out.append(_detections(tr, rng))
    return out


# -- traffic objects -----------------------------------------------------------------------------
def _object_track(corners: np.ndarray, z_world: float, ego_s: np.ndarray, start: int, end: int
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """A static 3D box (corners (K, 3) with z relative to ``z_world``) seen from the moving
    ego vehicle between ``start`` and ``end``: the first visible run of frames and boxes."""
    frames = np.arange(start, end)
    if len(frames) == 0:
        return None
    pts = corners[None].repeat(len(frames), 0)
    pts[..., 2] += (z_world - ego_s[frames])[:, None]
    near = pts[..., 2].min(1)
    pix = _project(pts)
    w_img, h_img = IMAGE_SIZE
    box = np.stack([pix[..., 0].min(1), pix[..., 1].min(1), pix[..., 0].max(1), pix[..., 1].max(1)], -1)
    box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0.0, w_img)
    box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0.0, h_img)
    ok = (near > 3.0) & (near < 70.0) & (box[:, 2] - box[:, 0] > 3) & (box[:, 3] - box[:, 1] > 3)
    if not ok.any():
        return None
    a = int(np.flatnonzero(ok)[0])
    b = int(np.flatnonzero(~ok[a:])[0]) + a if (~ok[a:]).any() else len(frames)
    if b - a < 5:
        return None
    return frames[a:b], np.round(box[a:b], 2)


_TrafficTrack = tuple[str, str, np.ndarray, np.ndarray, dict[str, Any]]  # label, id, frames, boxes, attrs


def _corners(xs: Sequence[float], ys: Sequence[float], zs: Sequence[float]) -> np.ndarray:
    """(K, 3) corners of an axis-aligned box (or rectangle) from its coordinate values."""
    return np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), -1).reshape(-1, 3)


def _traffic(rng: np.random.Generator, sc: _Scene, tracks: list[_Track], ego_s: np.ndarray, prefix: str,
             counter: list[int]) -> list[_TrafficTrack]:
    """A few traffic objects of a scene: (label, id, frames, boxes, attributes)."""
    out = []
    right, left = sc.curb
    z_ev = [float(ego_s[t.event]) + 12.0 for t in tracks if t.ped.intent == 1]
    base_z = float(ego_s[sc.start]) + rng.uniform(25.0, 55.0)
    specs = []
    if z_ev and rng.random() < 0.7 or rng.random() < 0.2:
        zc = z_ev[0] if z_ev else base_z
        specs.append(("crosswalk", "c", _corners((-left, right), (0.0,), (-1.5, 1.5)), zc))
    if rng.random() < 0.5:
        x0 = right + 0.8
        specs.append(("traffic_light", "tl", _corners((x0, x0 + 0.35), (3.2, 4.2), (0.0,)), base_z))
    if rng.random() < 0.4:
        x0 = right + 0.5
        specs.append(("sign", "s", _corners((x0, x0 + 0.6), (2.0, 2.6), (0.0,)), base_z - 5))
    if rng.random() < 0.5:
        x0 = right - 2.0
        specs.append(("vehicle", "v", _corners((x0, x0 + 1.8), (0.0, 1.5), (0.0, 4.5)),
                      base_z - rng.uniform(0, 15)))
    if rng.random() < 0.1:
        x0 = right + 0.5
        specs.append(("transit_station", "ts", _corners((x0, x0 + 2.5), (0.0, 2.5), (0.0, 3.0)),
                      base_z + 5))
    for label, suffix, corners, zw in specs:  # a few objects
        got = _object_track(corners, zw, ego_s, sc.start, sc.end)
        if got is None:
            continue
        frames, boxes = got
        counter[0] += 1
        oid = f"{prefix}_{counter[0]}{suffix}"
        attrs: dict[str, np.ndarray | str] = {}
        if label == "vehicle":
            attrs["type"] = str(rng.choice(["car", "car", "car", "truck", "bus"]))
        elif label == "sign":
            attrs["type"] = str(rng.choice(["ped_blue", "ped_yellow", "ped_white", "ped_text", "stop_sign",
                                            "bus_stop", "train_stop", "construction", "other"]))
        elif label == "traffic_light":
            attrs["type"] = str(rng.choice(["regular", "regular", "pedestrian"]))
            change = int(rng.integers(0, len(frames)))
            first, second = ("green", "red") if rng.random() < 0.5 else ("red", "green")
            state = np.where(np.arange(len(frames)) < change, first, second).astype(object)
            if first == "green":
                state[max(change - 90, 0):change] = "yellow"
            attrs["state"] = state.astype(str)
        out.append((label, oid, frames, boxes, attrs))
    return out


# -- writers -------------------------------------------------------------------------------------
def _join_rows(n: int, parts: Sequence[Any]) -> str:
    """Concatenate, row by row, ``parts`` (str constants, (n,) or (n, k) arrays of str) and
    join the ``n`` rows: one object grid and one ``str.join`` instead of a loop over rows."""
    cols: list[Any] = []
    for p in parts:
        a = np.asarray(p, dtype=object)
        cols.extend(a.T if a.ndim == 2 else [np.broadcast_to(a, (n,))])
    grid = np.empty((n, len(cols)), dtype=object)
    for j, c in enumerate(cols):  # columns, not rows
        grid[:, j] = c
    return "".join(grid.ravel().tolist())


def _fmt(x: np.ndarray, spec: str = "%.2f") -> np.ndarray:
    """Format every number of ``x`` with ``spec`` in one C-level ``%`` (object array, x's shape)."""
    x = np.asarray(x, dtype=np.float64)
    flat = ((spec + "\n") * x.size % tuple(x.ravel().tolist())).split("\n")[:-1]
    return np.array(flat, dtype=object).reshape(x.shape)


def _repr(x: np.ndarray, decimals: int) -> np.ndarray:
    """Shortest round-trip text of ``x`` rounded to ``decimals`` (as the real OBD files print
    Python floats), via one C-level JSON encoding: object array of x's shape."""
    x = np.round(np.asarray(x, dtype=np.float64), decimals) + 0.0  # + 0.0: no '-0.0'
    return np.array(json.dumps(x.ravel().tolist())[1:-1].split(", "), dtype=object).reshape(x.shape)


def _box_lines(frames: np.ndarray, boxes: np.ndarray, keyframe: np.ndarray, occluded: np.ndarray,
               outside: np.ndarray, attrs: list[tuple[str, np.ndarray | str]]) -> str:
    """``<box>`` elements of one track (vectorised over the boxes)."""
    num = _fmt(boxes[:, [2, 0, 3, 1]])  # xbr xtl ybr ytl, the real files' attribute order
    parts: list[Any] = [
        '    <box frame="', frames.astype(str), '" keyframe="', keyframe.astype(np.int64).astype(str),
        '" occluded="', occluded.astype(np.int64).astype(str), '" outside="',
        outside.astype(np.int64).astype(str), '" xbr="', num[:, 0], '" xtl="', num[:, 1],
        '" ybr="', num[:, 2], '" ytl="', num[:, 3], '">\n']
    for name, value in attrs:  # a few attributes per box
        parts += [f'      <attribute name="{name}">', value, "</attribute>\n"]
    parts.append("    </box>\n")
    return _join_rows(len(frames), parts)


def _with_outside(frames: np.ndarray, boxes: np.ndarray, n_frames: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append CVAT's closing ``outside="1"`` keyframe after the last box (60 % of tracks)."""
    outside = np.zeros(len(frames), bool)
    if rng.random() < 0.6 and frames[-1] + 1 < n_frames:
        frames = np.append(frames, frames[-1] + 1)
        boxes = np.vstack([boxes, boxes[-1:]])
        outside = np.append(outside, True)
    return frames, boxes, outside


def _annotation_xml(name: str, n_frames: int, ped_tracks: list[_Track], traffic: list[_TrafficTrack],
                    rng: np.random.Generator) -> str:
    """The CVAT 1.1 annotation document: meta/task, then one <track> per object."""
    w_img, h_img = IMAGE_SIZE
    parts = [f"<annotations>\n  <version>1.1</version>\n  <meta>\n    <task>\n      <name>{name}</name>\n"
             f"      <size>{n_frames}</size>\n      <labels>\n{_PED_LABELS}      </labels>\n      <owner>\n"
             "        <username>graphfuse synthetic-pie</username>\n        <email>none</email>\n"
             "      </owner>\n"
             f"      <original_size>\n        <width>{w_img}</width>\n        <height>{h_img}</height>\n"
             "      </original_size>\n    </task>\n    </meta>\n"]
    for tr in ped_tracks:  # one track per pedestrian
        frames, boxes, outside = _with_outside(tr.frames, tr.boxes, n_frames, rng)
        k = len(tr.frames)

        def ext(a: np.ndarray) -> np.ndarray:
            return np.append(a, a[-1:]) if len(frames) > k else a

        occ = ext(tr.occlusion)
        attrs = [("id", tr.ped.pid), ("cross", ext(tr.cross)),
                 ("occlusion", np.array(["none", "part", "full"])[occ]),
                 ("gesture", ext(tr.gesture)),
                 ("action", np.where(ext(tr.walking), "walking", "standing")),
                 ("look", np.where(ext(tr.looking), "looking", "not-looking"))]
        kf = ext(tr.keyframe) | outside
        parts.append('  <track label="pedestrian">\n')
        parts.append(_box_lines(frames, boxes, kf, occ > 0, outside, attrs))
        parts.append("  </track>\n")
    for label, oid, frames0, boxes0, extra in traffic:  # a few objects
        frames, boxes, outside = _with_outside(frames0, boxes0, n_frames, rng)
        k = len(frames0)
        kf = np.zeros(len(frames), bool)
        kf[::10] = True
        kf |= outside
        attrs: list[tuple[str, np.ndarray | str]] = []
        if "type" in extra:
            attrs.append(("type", extra["type"]))
        attrs.append(("id", oid))
        if "state" in extra:
            st = extra["state"]
            attrs.append(("state", np.append(st, st[-1:]) if len(frames) > k else st))
        if label == "vehicle":
            attrs = attrs[::-1]  # the real files list id before type for vehicles
        occluded = rng.random(len(frames)) < 0.05
        parts.append(f'  <track label="{label}">\n')
        parts.append(_box_lines(frames, boxes, kf, occluded, outside, attrs))
        parts.append("  </track>\n")
    parts.append("</annotations>")
    return "".join(parts)


def _attributes_xml(tracks: list[_Track], scene_attrs: list[dict[str, str]]) -> str:
    """``<ped_attributes>`` with one ``<pedestrian>`` per track (attributes sorted as in PIE)."""
    items = []
    for tr, sa in zip(tracks, scene_attrs):  # one element per pedestrian
        p = tr.ped
        crit = max(tr.event - int(p.params["crit_lead"]), int(tr.frames[0]))
        a = {"age": p.age, "critical_point": str(crit), "crossing": str(tr.crossing),
             "crossing_point": str(tr.event), "exp_start_point": str(int(tr.frames[0])),
             "gender": p.gender, "id": p.pid, "intention_prob": f"{p.params['intention_prob']:.10g}", **sa}
        items.append("<pedestrian " + " ".join(f'{k}="{v}"' for k, v in sorted(a.items())) + " />")
    return "<ped_attributes>" + "".join(items) + "</ped_attributes>"


#: Decimals of each OBD field as printed (the real files print full Python floats).
_OBD_DECIMALS = {"GPS_speed": 6, "OBD_speed": 6, "heading_angle": 2, "latitude": 9, "longitude": 9,
                 "pitch": 4, "roll": 4, "yaw": 2}


def _obd_xml(fields: Mapping[str, np.ndarray], n: int) -> str:
    """Single-line ``<vehicle_info>`` with one ``<frame>`` per video frame, attributes sorted."""
    cols = {k: _repr(v, _OBD_DECIMALS.get(k, 3)) for k, v in fields.items()}
    cols["id"] = np.arange(n).astype(str)
    parts: list[Any] = ["<frame"]
    for key in sorted(cols):  # 15 fields, each vectorised over the frames
        parts += [f' {key}="', cols[key], '"']
    parts.append(" />")
    return "<vehicle_info>" + _join_rows(n, parts) + "</vehicle_info>"


def _pose_json(dets: list[_Detections], rng: np.random.Generator, image_ids: str) -> str:
    """COCO keypoint results (a JSON list, AlphaPose style) of all detections of a video."""
    frames = np.concatenate([d[0] for d in dets]) if dets else np.zeros(0, np.int64)
    kps = np.concatenate([d[1] for d in dets]) if dets else np.zeros((0, 17, 3))
    scores = np.concatenate([d[2] for d in dets]) if dets else np.zeros(0)
    order = np.lexsort((rng.random(len(frames)), frames))  # by frame, shuffled within a frame
    frames, kps, scores = frames[order], kps[order], scores[order]
    valid = kps[..., 2] > 0.2
    lo = np.where(valid[..., None], kps[..., :2], np.inf).min(1)
    hi = np.where(valid[..., None], kps[..., :2], -np.inf).max(1)
    lo = np.where(np.isfinite(lo), lo, kps[..., :2].min(1))
    hi = np.where(np.isfinite(hi), hi, kps[..., :2].max(1))
    pad = 0.1 * (hi - lo)
    w_img, h_img = IMAGE_SIZE
    x1 = np.clip(lo - pad, 0.0, w_img - 1.0)
    x2 = np.clip(hi + pad, 0.0, w_img - 1.0)
    box = np.round(np.concatenate([x1, x2 - x1], -1), 2)
    kp = kps.copy()
    kp[..., :2] = np.round(kp[..., :2], 2)
    kp[..., 2] = np.round(kp[..., 2], 4)
    ids: list[Any] = [f"{f:05d}.png" for f in frames.tolist()] if image_ids == "name" else frames.tolist()
    flat = kp.reshape(len(kp), -1).tolist()
    entries = [{"image_id": i, "category_id": 1, "keypoints": k, "score": s, "box": b}
               for i, k, s, b in zip(ids, flat, np.round(scores, 4).tolist(), box.tolist())]
    return json.dumps(entries, separators=(",", ":"))


# -- the dataset ---------------------------------------------------------------------------------
def _video(root: Path, set_id: str, vid_num: int, seed: int, n_peds: int, label_noise: float,
           write_poses: bool, image_ids: str) -> dict[str, Any]:
    set_num = int(set_id[3:])
    video_id = f"video_{vid_num:04d}"
    rng = _rng(seed, _TAG_VIDEO, set_num, vid_num, n_peds)
    scenes, n_frames = _plan_video(rng, set_num, vid_num, n_peds)
    speed, obd = _ego(rng, scenes, n_frames)
    ego_s = np.cumsum(speed / 3.6 / FPS)
    tracks: list[_Track] = []
    scene_of: list[dict[str, str]] = []
    traffic = []
    counter = [0]
    flips = rng.random(n_peds) < label_noise
    k = 0
    for sc in scenes:  # scenes, then their pedestrians
        sc_tracks = []
        for ped in sc.peds:
            curb = sc.curb[0] if ped.side > 0 else sc.curb[1]
            tr = None
            for _attempt in range(20):  # redraw the distance/placement until the track is visible
                tr = _ped_track(ped, curb, ego_s, n_frames, rng, bool(flips[k]) and ped.intent != -1)
                if tr is not None:
                    break
                ped.pre = max(ped.pre - 10, 40)
            if tr is None:
                raise RuntimeError(f"synthetic PIE: could not place pedestrian {ped.pid} "
                                   f"({set_id}/{video_id})")
            k += 1
            sc_tracks.append(tr)
            scene_of.append(sc.attrs)
        tracks.extend(sc_tracks)
        traffic.extend(_traffic(rng, sc, sc_tracks, ego_s, f"{set_num}_{vid_num}", counter))
    name = f"{set_id}_{video_id}"
    write_text(root / "annotations" / set_id / f"{video_id}_annt.xml",
               _annotation_xml(name, n_frames, tracks, traffic, rng))
    write_text(root / "annotations_attributes" / set_id / f"{video_id}_attributes.xml",
               _attributes_xml(tracks, scene_of))
    write_text(root / "annotations_vehicle" / set_id / f"{video_id}_obd.xml", _obd_xml(obd, n_frames))
    dets = [_detections(tr, rng) for tr in tracks] + _background_people(rng, ego_s, n_frames)
    n_det = int(sum(len(d[0]) for d in dets))
    if write_poses:
        write_text(root / "poses" / set_id / f"{video_id}.json", _pose_json(dets, rng, image_ids))
    peds = []
    for tr in tracks:
        ev_idx = int(np.searchsorted(tr.frames, tr.event))
        peds.append({"ped_id": tr.ped.pid, "crossing": tr.crossing, "intent": tr.ped.intent,
                     "behaviour": tr.ped.behaviour, "label_flipped": tr.flipped,
                     "ego_yields": tr.ped.yield_ego, "first_frame": int(tr.frames[0]),
                     "last_frame": int(tr.frames[-1]), "crossing_point": tr.event,
                     "event_track_length": ev_idx + 1})
    return {"set_id": set_id, "video_id": video_id, "num_frames": n_frames, "pedestrians": peds,
            "traffic_objects": len(traffic), "detections": n_det}


def _counts(peds: list[dict[str, Any]]) -> dict[str, Any]:
    lengths = np.array([p["event_track_length"] for p in peds], np.int64)
    cross = np.array([p["crossing"] for p in peds], np.int64)
    return {"pedestrians": len(peds),
            "crossing": {str(c): int((cross == c).sum()) for c in (1, 0, -1)},
            "label_flipped": int(sum(p["label_flipped"] for p in peds)),
            "tracks_min_76": int((lengths >= 76).sum()), "tracks_min_92": int((lengths >= 92).sum()),
            # PCPA protocol (obs 16, tte 30-60, overlap 0.6 -> stride 6): 6 windows per track of
            # >= 76 frames up to the event; obs 32 -> stride 12: 3 windows per track of >= 92.
            "benchmark_samples_obs16": int(6 * (lengths >= 76).sum()),
            "benchmark_samples_obs32": int(3 * (lengths >= 92).sum()),
            "positive_samples_obs16": int(6 * ((lengths >= 76) & (cross == 1)).sum())}


def generate_synthetic_pie(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    sets: Sequence[str] = DEFAULT_SETS,
    videos_per_set: int | Mapping[str, int] | None = None,
    peds_per_video: int = 16,
    label_noise: float = 0.05,
    poses: bool = True,
    image_ids: str = "name",
) -> dict[str, Any]:
    """Write a synthetic PIE tree under ``root`` and return its summary.

    Args:
        root: output root; gets ``annotations/``, ``annotations_attributes/``,
            ``annotations_vehicle/``, ``poses/`` (when ``poses``) and ``synthetic_pie.json``.
        seed: random seed; the same seed gives byte-identical files.
        sets: PIE set ids to write (``set01`` .. ``set06`` or beyond; the default split puts
            set01/02/04 in train, set05/06 in val and set03 in test).
        videos_per_set: videos per set, an int for every set or a mapping set -> count
            (None: :data:`DEFAULT_VIDEOS_PER_SET`, 1 for sets not in it).
        peds_per_video: annotated pedestrians per video (each has a track and an attributes entry).
        label_noise: fraction of relevant pedestrians whose ``crossing`` attribute is swapped
            between 0 and 1 (the motion keeps the true decision).
        poses: write the COCO keypoint results under ``root/poses``.
        image_ids: ``"name"`` (``"00012.png"``, as AlphaPose on PIE frame folders) or ``"int"``.

    Returns:
        A JSON-able summary: ``generator_version``, ``seed``, ``image_size``, ``splits`` and
        ``sets`` (per group: pedestrians, crossing counts {"1", "0", "-1"}, label flips,
        tracks at least 76 / 92 frames long up to the event, and the benchmark sample counts
        they imply), and ``videos`` (per video: frames, traffic objects, detections and each
        pedestrian's id, annotated ``crossing``, true ``intent``, ``behaviour``, frames,
        ``crossing_point`` and ``event_track_length``). Also written to ``root/synthetic_pie.json``.
    """
    root = Path(root)
    sets = tuple(sets)
    for s in sets:
        if not (len(s) == 5 and s.startswith("set") and s[3:].isdigit() and int(s[3:]) > 0):
            raise ValueError(f"set ids look like 'set01', got {s!r}")
    if len(set(sets)) != len(sets) or not sets:
        raise ValueError(f"sets must be distinct and non-empty, got {sets!r}")
    if isinstance(videos_per_set, Mapping):
        unknown = sorted(set(videos_per_set) - set(sets))
        if unknown:
            raise ValueError(f"videos_per_set names sets that are not generated: {unknown}")
        per_set = {s: int(videos_per_set.get(s, 1)) for s in sets}
    elif videos_per_set is None:
        per_set = {s: DEFAULT_VIDEOS_PER_SET.get(s, 1) for s in sets}
    else:
        per_set = {s: int(videos_per_set) for s in sets}
    if min(per_set.values()) < 1 or peds_per_video < 1:
        raise ValueError("need >= 1 video per set and >= 1 pedestrian per video, got "
                         f"{per_set}, {peds_per_video}")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    if image_ids not in ("name", "int"):
        raise ValueError(f"image_ids must be 'name' or 'int', got {image_ids!r}")
    videos = [_video(root, s, v, int(seed), int(peds_per_video), float(label_noise), poses, image_ids)
              for s in sets for v in range(1, per_set[s] + 1)]
    by_set = {s: [p for v in videos if v["set_id"] == s for p in v["pedestrians"]] for s in sets}
    splits = {}
    for split in ("train", "val", "test"):
        members = [s for s in sets if _SPLIT_OF_SET.get(s) == split]
        if members:
            splits[split] = {"sets": members, "videos": sum(per_set[s] for s in members),
                             **_counts([p for s in members for p in by_set[s]])}
    summary = {"format": "graphfuse-synthetic-pie", "generator_version": GENERATOR_VERSION,
               "seed": int(seed), "image_size": list(IMAGE_SIZE), "fps": FPS,
               "peds_per_video": int(peds_per_video), "label_noise": float(label_noise),
               "image_ids": image_ids, "poses": "poses" if poses else None,
               "splits": splits,
               "sets": {s: {"videos": per_set[s], **_counts(by_set[s])} for s in sets},
               "videos": videos}
    write_json(root / "synthetic_pie.json", summary)
    return summary


def prepare_synthetic_pie(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    obs_length: int = 16,
    generate_kwargs: Mapping[str, Any] | None = None,
    **prepare_kwargs: Any,
) -> dict[str, Any]:
    """Generate synthetic PIE into ``out/raw`` and prepare it into ``out`` exactly as a real
    PIE download (:func:`graphfuse.data.intention.prepare.prepare_intention` with the COCO
    poses of ``out/raw/poses``). ``generate_kwargs`` go to :func:`generate_synthetic_pie`,
    the remaining keywords to ``prepare_intention``. The returned (and written) meta has
    ``dataset = "synthetic-pie"`` and the generator's per-split counts under ``"synthetic"``.
    """
    from graphfuse.data.intention.prepare import prepare_intention  # the real preparation path

    out = Path(out)
    raw = out / "raw"
    if (out / "meta.json").exists() and not prepare_kwargs.get("overwrite", False):
        raise FileExistsError(f"{out / 'meta.json'} exists; pass overwrite=True to replace it")
    gen = dict(generate_kwargs or {})
    summary = generate_synthetic_pie(raw, seed=seed, **gen)
    # Every annotation file under raw/ must be one of ours: the preparation reads whole sets.
    expected = {f"{v['set_id']}/{v['video_id']}_annt.xml" for v in summary["videos"]}
    foreign = sorted(f"{p.parent.name}/{p.name}" for p in (raw / "annotations").glob("*/*_annt.xml")
                     if f"{p.parent.name}/{p.name}" not in expected)
    if foreign:
        raise ValueError(f"{raw / 'annotations'} holds {len(foreign)} annotation files that this "
                         f"generation did not write (e.g. {foreign[0]}); use an empty directory")
    prepare_kwargs.setdefault("poses", raw / "poses" if summary["poses"] else None)
    prepare_kwargs.setdefault("pose_format", "coco")
    prepare_kwargs.setdefault("splits", tuple(summary["splits"]))
    meta = prepare_intention("pie", raw, out, obs_length=obs_length, **prepare_kwargs)
    # prepare_intention names the reader ("pie"); the data are synthetic (contract value).
    meta["dataset"] = "synthetic-pie"
    meta["synthetic"] = {"generator_version": GENERATOR_VERSION, "seed": int(seed),
                         "generate_kwargs": json.loads(json.dumps(gen, default=list)),
                         "splits": summary["splits"]}
    write_json(out / "meta.json", meta)
    return meta
