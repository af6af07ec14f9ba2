"""Which frames and which crops a two-stream clip reads (numpy index arithmetic only).

Frame numbers are **1-based**, as the file names (``frame000001.jpg``) and the reference code
(``feichtenhofer/twostreamfusion``, ``cnn_ucf101_get_im_flow_batch.m``). ``n`` is a video's
number of flow frames (the reference's ``nFrames``, counted from the ``u`` folder); flow frame
``k`` is the motion from RGB frame ``k`` to ``k + 1``.

**A sample** is an RGB frame number ``t``. Its flow stack is the ``L`` flow frames
``t - L/2 .. t + L/2 - 1`` (``L = 10``: ``t-5 .. t+4``, the released ``frameOffsets =
-5:4``), u and v interleaved into ``2L = 20`` channels. Valid samples, those whose whole stack
lies inside the video, are ``L/2 + 1 .. n - L/2`` (``nStack/4+1 : nFrames-nStack/4``).

**Border rule (all protocols).** A sample is never outside ``[L/2 + 1, n - L/2]`` when that
range is not empty. A video shorter than ``L + 1`` flow frames has no valid sample: every
sample is then the middle frame ``ceil(n / 2)`` and flow-frame numbers are clamped to
``[1, n]`` (the border flow frame repeats), RGB frame numbers to ``[1, n_rgb]``. The
reference code would read files that do not exist there; UCF101 and HMDB51 have no such
video.

**Training** (:func:`train_samples`): ``T = 5`` samples at a stride ``tau`` drawn uniformly
from ``5..15`` per clip (the released fusion code draws one ``tau`` per batch), at a start
drawn uniformly among the positions where all ``T`` samples are valid. When the video is too
short for ``tau``, the stride shrinks to the largest that fits (``floor((hi - lo) / (T - 1))``,
at least 0: repeated frames). The reference instead takes a random window of ``T`` consecutive
samples of ``lo:tau:hi`` that never starts at the first one (``s = randi(len - T)``) and pads
short lists with its front/back loop (below); graphfuse's rule keeps every start equally likely.

**Test, released protocol** (:func:`released_test_samples`, ``cnn_train_dag.m`` with
``valmode = 'temporalStrideRandom'``): 50 samples ``lo:15:hi`` (stride ``max(5:15)``), padded
by the released front/back loop when fewer (faithfully reproduced, including its stride
decrease and its ``linspace`` fallback), a window of 50 when more (the reference draws its
start at random: here from a generator seeded by the video's index, so a test run is
deterministic). The 50 samples form 10 clips of ``T = 5`` the way the released ``reshape``
does it: clip ``j`` holds samples ``j, j+10, ..., j+40`` (:func:`released_clips`). Each clip is
evaluated densely on the whole frame and its horizontal flip (20 inputs per video) and the
scores are averaged.

**Test, 25 x 10** (:func:`uniform_samples`, :func:`ten_crop_boxes`): 25 samples spread uniformly
over the valid range (``vl_colsubset(..., 'uniform')``; a short video repeats samples instead
of giving fewer), grouped into ``25 / T`` clips of consecutive samples, each with the 4 corner
and the centre crops and their flips (the reference's ``'uniform'`` 10-crop order).

**Training crops** (:func:`nocenter_crop`): the fusion code's ``'noCtr'`` augmentation: a crop
of random height and width ``round(min(224 (0.75 + 0.5 u), side))`` (each side on its own,
so the aspect ratio changes), at relative position ``(fy, fx)`` both from ``linspace(0.75, 1,
20)`` or both from ``linspace(0, 0.25, 20)`` (never the centre), flipped with probability 1/2,
then resized to ``224 x 224``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NOCTR_POSITIONS",
    "center_crop_box",
    "center_samples",
    "clamp_frames",
    "flow_indices",
    "flow_offsets",
    "matlab_colon",
    "matlab_round",
    "nocenter_crop",
    "random_crop",
    "released_clips",
    "released_test_samples",
    "ten_crop_boxes",
    "train_samples",
    "uniform_clips",
    "uniform_samples",
    "valid_range",
]

#: Relative crop positions of ``'noCtr'``: the high and the low group.
NOCTR_POSITIONS = (np.linspace(0.75, 1.0, 20), np.linspace(0.0, 0.25, 20))


def matlab_round(x: np.ndarray | float) -> np.ndarray:
    """MATLAB's ``round``: halves away from zero (numpy rounds them to even)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def matlab_colon(start: int, step: int, stop: int) -> np.ndarray:
    """MATLAB's ``start:step:stop`` on integers (empty for ``step == 0`` or an empty range)."""
    if step == 0:
        return np.zeros(0, np.int64)
    end = stop + (1 if step > 0 else -1)
    return np.arange(start, end, step, dtype=np.int64)


def valid_range(n: int, flow_stack: int = 10) -> tuple[int, int]:
    """``(lo, hi)``: the first and last sample whose flow stack lies inside ``1..n``
    (``lo > hi`` when the video is shorter than ``flow_stack + 1`` flow frames)."""
    if n < 1:
        raise ValueError(f"a video needs at least one flow frame, got n={n}")
    if flow_stack < 1:
        raise ValueError(f"flow_stack must be >= 1, got {flow_stack}")
    half = flow_stack // 2
    return half + 1, n - half


def _checked_range(n: int, flow_stack: int) -> tuple[int, int]:
    lo, hi = valid_range(n, flow_stack)
    if lo > hi:  # too short: everything at the middle frame (the module's border rule)
        mid = (n + 1) // 2
        return mid, mid
    return lo, hi


def flow_offsets(flow_stack: int = 10) -> np.ndarray:
    """``(L,)`` offsets of a sample's flow frames: ``-L/2 .. L/2 - 1`` (``-5..4`` for L = 10)."""
    half = flow_stack // 2
    return np.arange(-half, flow_stack - half, dtype=np.int64)


def flow_indices(samples: np.ndarray, n: int, flow_stack: int = 10) -> np.ndarray:
    """Flow-frame numbers of every sample: ``samples (...)`` -> ``(..., L)``, clamped to ``[1, n]``."""
    s = np.asarray(samples, dtype=np.int64)
    return np.clip(s[..., None] + flow_offsets(flow_stack), 1, n)


def clamp_frames(samples: np.ndarray, n_rgb: int) -> np.ndarray:
    """RGB frame numbers clamped to ``[1, n_rgb]``."""
    return np.clip(np.asarray(samples, dtype=np.int64), 1, n_rgb)


def train_samples(n: int, rng: np.random.Generator, num_frames: int = 5, stride: tuple[int, int] = (5, 15),
                  flow_stack: int = 10) -> np.ndarray:
    """``(T,)`` training samples: stride ``tau ~ U{stride}``, start uniform among the fitting ones."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    lo_s, hi_s = int(stride[0]), int(stride[1])
    if not 1 <= lo_s <= hi_s:
        raise ValueError(f"stride must be (low, high) with 1 <= low <= high, got {stride}")
    lo, hi = _checked_range(n, flow_stack)
    tau = int(rng.integers(lo_s, hi_s + 1))
    room = hi - lo
    if num_frames > 1:
        tau = min(tau, room // (num_frames - 1))
    span = tau * (num_frames - 1)
    start = lo + int(rng.integers(0, room - span + 1))
    return start + tau * np.arange(num_frames, dtype=np.int64)


def center_samples(n: int, num_frames: int = 5, stride: int = 10, flow_stack: int = 10) -> np.ndarray:
    """``(T,)`` samples at ``stride`` (shrunk to fit, as in training) centred in the valid range:
    the deterministic single clip of validation."""
    lo, hi = _checked_range(n, flow_stack)
    room = hi - lo
    tau = min(int(stride), room // (num_frames - 1)) if num_frames > 1 else int(stride)
    start = lo + (room - tau * (num_frames - 1)) // 2
    return start + tau * np.arange(num_frames, dtype=np.int64)


def released_test_samples(n: int, rng: np.random.Generator, num_samples: int = 50, num_frames: int = 5,
                          stride: int = 15, flow_stack: int = 10) -> np.ndarray:
    """``(num_samples,)`` samples of the released test protocol (``frameSample = 'temporalStride'``
    with ``nFrameStack = T``; see the module docstring). ``rng`` draws the window start when
    more than ``num_samples`` samples are available."""
    lo, hi = _checked_range(n, flow_stack)
    t = num_frames
    step = int(stride)
    fs = matlab_colon(lo, step, hi)
    if fs.size < t:
        fs = matlab_round(np.linspace(lo, hi, t))
        step = int(fs[1] - fs[0]) if t > 1 else step
    if fs.size < num_samples:
        if fs.size > t:
            fs = fs[: fs.size - fs.size % t]
        diff = num_samples - fs.size
        rounds = 0
        parts = [fs]
        while diff > 0:  # the released loop: at most ~25 rounds, each adding a block of samples
            if rounds % 2:  # add to the front (appended, as in the reference)
                add = matlab_colon(lo, step, hi)
                add = add[: add.size - add.size % t]
                add = add[:diff]
            else:  # add to the back
                add = matlab_colon(hi, -step, lo)[::-1]
                add = add[add.size % t:]
                if add.size > diff:
                    add = add[add.size - diff:]
            if rounds > 20:
                add = matlab_round(np.linspace(lo, hi, t))
            parts.append(add)
            diff -= add.size
            step = max(step - 1, 1)
            rounds += 1
        fs = np.concatenate(parts)
    if fs.size > num_samples:
        s = int(rng.integers(1, fs.size - num_samples + 1))  # randi(len - S): never 0
        fs = fs[s:s + num_samples]
    return fs.astype(np.int64)


def released_clips(samples: np.ndarray, num_frames: int = 5) -> np.ndarray:
    """``(S,)`` samples -> ``(S / T, T)`` clips as the released ``reshape``: clip ``j`` holds
    samples ``j, j + S/T, j + 2 S/T, ...``."""
    s = np.asarray(samples)
    if s.size % num_frames:
        raise ValueError(f"{s.size} samples do not form clips of {num_frames}")
    return s.reshape(num_frames, s.size // num_frames).T.copy()


def uniform_samples(n: int, num_samples: int = 25, flow_stack: int = 10) -> np.ndarray:
    """``(num_samples,)`` samples spread uniformly over the valid range (rounded ``linspace``)."""
    lo, hi = _checked_range(n, flow_stack)
    return matlab_round(np.linspace(lo, hi, num_samples))


def uniform_clips(samples: np.ndarray, num_frames: int = 5) -> np.ndarray:
    """``(S,)`` -> ``(S / T, T)`` clips of consecutive samples."""
    s = np.asarray(samples)
    if s.size % num_frames:
        raise ValueError(f"{s.size} samples do not form clips of {num_frames}")
    return s.reshape(s.size // num_frames, num_frames).copy()


# ---------------------------------------------------------------------------------------------
# crops: boxes (y0, x0, height, width) in 0-based pixels, plus a flip flag
# ---------------------------------------------------------------------------------------------
def nocenter_crop(height: int, width: int, rng: np.random.Generator, crop: int = 224) -> tuple[int, int, int, int, bool]:
    """``(y0, x0, h, w, flip)`` of the ``'noCtr'`` training crop (resize it to ``crop`` after)."""
    scale = 0.75 + 0.5 * rng.random(2)
    ch = int(matlab_round(min(crop * scale[0], height)))
    cw = int(matlab_round(min(crop * scale[1], width)))
    ch, cw = max(ch, 1), max(cw, 1)
    group = NOCTR_POSITIONS[int(rng.integers(0, 2))]
    fy, fx = group[rng.integers(0, 20, size=2)]
    y0 = int(np.floor((height - ch) * fy))
    x0 = int(np.floor((width - cw) * fx))
    return y0, x0, ch, cw, bool(rng.integers(0, 2))


def random_crop(height: int, width: int, rng: np.random.Generator, crop: int = 224) -> tuple[int, int, int, int, bool]:
    """``(y0, x0, crop, crop, flip)``: a uniformly placed ``crop`` square (``'randCropFlip'``);
    a frame smaller than ``crop`` is cropped whole on that side (resize after)."""
    ch, cw = min(crop, height), min(crop, width)
    y0 = int(rng.integers(0, height - ch + 1))
    x0 = int(rng.integers(0, width - cw + 1))
    return y0, x0, ch, cw, bool(rng.integers(0, 2))


def center_crop_box(height: int, width: int, crop: int = 224) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` of the centre ``crop`` square (the whole side when smaller)."""
    ch, cw = min(crop, height), min(crop, width)
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def ten_crop_boxes(height: int, width: int, crop: int = 224) -> np.ndarray:
    """``(10, 5)`` rows ``(y0, x0, h, w, flip)``: top-left, top-right, bottom-left, bottom-right
    and centre, each followed by its flip (the reference's ``'uniform'`` order; centre at
    ``floor((side - crop + 1) / 2)``)."""
    ch, cw = min(crop, height), min(crop, width)
    ys, xs = (0, height - ch), (0, width - cw)
    cy, cx = (height - ch + 1) // 2, (width - cw + 1) // 2
    corners = [(y, x) for y in ys for x in xs] + [(cy, cx)]
    rows = [(y, x, ch, cw, f) for (y, x) in corners for f in (0, 1)]
    return np.asarray(rows, dtype=np.int64)
