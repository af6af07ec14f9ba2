"""Synthetic UCF101: short ``.avi`` clips in UCF101's layout, prepared through the real path.

``generate_synthetic_ucf101(root)`` writes what the UCF101 download holds:

* ``root/UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi`` (MPEG-4 part 2 in AVI, as UCF101's XviD
  files; 64x64 pixels, 24-30 frames at 25 fps);
* ``root/ucfTrainTestlist/{classInd.txt, trainlist01.txt, testlist01.txt}`` in the official
  format (CRLF line ends, 1-based labels, test groups first as UCF101's split 1 holds out
  groups 1-7 of 25: here the first third of the groups).

``prepare_synthetic_ucf101(out)`` generates into ``out/raw`` and runs
:func:`graphfuse.data.video.prepare.prepare_video_dataset` on it exactly as on the real
download (PyAV decoding, TV-L1 flow with the :data:`~graphfuse.data.video.flow.TVL1_FAST`
preset, quantised JPEG pairs, meta.json), keeping the 64x64 size (``size=None``).

**Design: which stream can tell which class.** A clip shows one textured shape (a square or
a disc, at random, with a random colour pair, size, position and orientation) over a textured
background (one per group, as UCF101's groups share a scene) with sensor noise. Its class is
a (motion, texture) pair:

* motions: ``SlideRight``, ``SpinClockwise`` (as seen on screen), ``Oscillate`` (horizontal,
  sinusoidal), then ``SlideLeft``, ``SpinCounterClockwise``;
* textures: ``Stripes`` (parallel bars) and ``Dots`` (a checkerboard), drawn in the shape's own
  coordinates (they turn with it).

Classes interleave the textures (``SlideRightStripes``, ``SlideRightDots``,
``SpinClockwiseStripes``, ...), so the default 6 classes are 3 motions x 2 textures. One frame
shows the texture but not the motion (position, orientation and colour are random in every
class): an appearance-only stream can at best tell the texture, about 1/3 accuracy with 6
classes. Flow shows the motion but hardly the texture: a motion-only stream can at best tell
the motion, about 1/2. Only both together name the class, so fusion should approach 100 %
and beat both, and the flow stream should beat the RGB stream. (A network that sees several
RGB frames can in principle read motion from the shape's displacement; the stride and the
random start make that harder, and the ablation in ``docs/data_video.md`` measures it.)

Everything is vectorised over frames and pixels (one video's frames are rendered at once from
per-frame centres and angles). Generation is seeded: the same ``seed`` writes the same pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GENERATOR_VERSION",
    "MOTIONS",
    "TEXTURES",
    "class_names",
    "generate_synthetic_ucf101",
    "prepare_synthetic_ucf101",
    "render_clip",
]

GENERATOR_VERSION = 1
MOTIONS = ("SlideRight", "SpinClockwise", "Oscillate", "SlideLeft", "SpinCounterClockwise")
TEXTURES = ("Stripes", "Dots")
SIZE = 64
FPS = 25


def class_names(num_classes: int = 6) -> list[str]:
    """The first ``num_classes`` of ``[motion + texture for motion in MOTIONS for texture in TEXTURES]``."""
    names = [m + t for m in MOTIONS for t in TEXTURES]
    if not 2 <= num_classes <= len(names):
        raise ValueError(f"classes must be in 2..{len(names)}, got {num_classes}")
    return names[:num_classes]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured texture ``(size, size, 3)`` float in [0, 1] (bilinear upsampled noise)."""
    coarse = rng.random((size // 8 + 2, size // 8 + 2, 3))
    pos = np.linspace(0.5, coarse.shape[0] - 1.5, size)
    i0 = np.floor(pos).astype(int)
    f = pos - i0
    rows = coarse[i0] * (1 - f)[:, None, None] + coarse[i0 + 1] * f[:, None, None]
    img = rows[:, i0] * (1 - f)[None, :, None] + rows[:, i0 + 1] * f[None, :, None]
    fine = rng.random((size, size, 3)) * 0.25
    return np.clip(0.35 + 0.45 * img + fine - 0.125, 0.0, 1.0)


def render_clip(motion: str, texture: str, rng: np.random.Generator, background: np.ndarray,
                num_frames: int, size: int = SIZE) -> np.ndarray:
    """One clip ``(T, size, size, 3)`` uint8 RGB of a ``texture`` shape doing ``motion``."""
    if motion not in MOTIONS or texture not in TEXTURES:
        raise ValueError(f"unknown motion/texture {motion!r}/{texture!r}")
    t = np.arange(num_frames, dtype=np.float64)
    radius = rng.uniform(0.14, 0.19) * size  # 9..12 px at 64 px
    margin = radius * 1.45  # a square's corner stays inside at any angle
    lo, hi = margin, size - 1 - margin
    theta0 = rng.uniform(0, 2 * np.pi)
    cy = np.full_like(t, rng.uniform(lo, hi))
    if motion in ("SlideRight", "SlideLeft"):
        speed = min(rng.uniform(0.9, 1.6), (hi - lo) / max(num_frames - 1, 1))
        sign = 1.0 if motion == "SlideRight" else -1.0
        start = rng.uniform(lo, max(lo, hi - speed * (num_frames - 1)))
        cx = start + speed * t if sign > 0 else (hi - (start - lo)) - speed * t
        theta = np.full_like(t, theta0)
    elif motion in ("SpinClockwise", "SpinCounterClockwise"):
        cx = np.full_like(t, rng.uniform(lo, hi))
        omega = rng.uniform(0.09, 0.16)  # rad/frame; image y points down, so +omega turns clockwise on screen
        theta = theta0 + (omega if motion == "SpinClockwise" else -omega) * t
    else:  # Oscillate
        amp = rng.uniform(6.0, 9.0)
        centre = rng.uniform(lo + amp, hi - amp)
        cx = centre + amp * np.sin(2 * np.pi * t / rng.uniform(10.0, 16.0) + rng.uniform(0, 2 * np.pi))
        theta = np.full_like(t, theta0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx = xx[None] - cx[:, None, None]  # (T, H, W)
    dy = yy[None] - cy[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    px, py = c * dx + s * dy, -s * dx + c * dy  # object coordinates (turn with theta)
    if rng.random() < 0.5:
        dist = np.maximum(np.abs(px), np.abs(py))  # square
    else:
        dist = np.hypot(px, py)  # disc
    mask = np.clip(radius - dist + 0.5, 0.0, 1.0)[..., None]
    period = rng.uniform(5.5, 7.5)
    if texture == "Stripes":
        tex = np.sin(2 * np.pi * px / period)
    else:
        tex = np.sin(2 * np.pi * px / period) * np.sin(2 * np.pi * py / period)
    tex = (0.5 + 0.5 * np.tanh(3.0 * tex))[..., None]
    col_a, col_b = rng.uniform(0.55, 1.0, 3), rng.uniform(0.0, 0.35, 3)
    fg = tex * col_a + (1 - tex) * col_b
    frames = background[None] * (1 - mask) + fg * mask
    frames = frames + rng.normal(0.0, 0.02, frames.shape)
    return np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)


def _write_lines(path: Path, lines: list[str]) -> None:
    from graphfuse.io import atomic_open

    with atomic_open(path, "w", encoding="ascii", newline="") as fh:
        fh.write("".join(line + "\r\n" for line in lines))  # the official files' CRLF


def generate_synthetic_ucf101(root: str | os.PathLike, *, classes: int = 6, per_class: int = 12,
                              clips_per_group: int = 2, frames: tuple[int, int] = (24, 30), seed: int = 0,
                              size: int = SIZE) -> list[Path]:
    """Write the synthetic download to ``root`` (see the module docstring); returns the ``.avi`` paths.

    Args:
        root: output folder (``UCF-101/`` and ``ucfTrainTestlist/`` go there).
        classes: number of classes (2..10; the first of :func:`class_names`).
        per_class: clips per class (a multiple of ``clips_per_group``, at least 3 groups).
        clips_per_group: clips per group (one background per group).
        frames: inclusive range of frames per clip.
        seed: generation seed.
        size: frame side (even).
    """
    from graphfuse.data.video.decode import write_video

    names = class_names(classes)
    if per_class % clips_per_group or per_class // clips_per_group < 3:
        raise ValueError(f"per_class ({per_class}) must be a multiple of clips_per_group ({clips_per_group}) "
                         "giving at least 3 groups")
    if size % 2 or size < 32:
        raise ValueError(f"size must be even and >= 32, got {size}")
    if not 12 <= frames[0] <= frames[1]:
        raise ValueError(f"frames must be (low, high) with 12 <= low <= high, got {frames}")
    groups = per_class // clips_per_group
    test_groups = max(1, groups // 3)
    root = Path(root)
    rng_root = np.random.default_rng([seed, GENERATOR_VERSION])
    backgrounds = [_background(np.random.default_rng([seed, 7, g]), size) for g in range(groups)]
    paths: list[Path] = []
    train_lines: list[str] = []
    test_lines: list[str] = []
    seeds = rng_root.integers(0, 2**63 - 1, size=(len(names), groups, clips_per_group))
    for label, name in enumerate(names):  # a loop over files
        motion = next(m for m in MOTIONS if name.startswith(m) and name[len(m):] in TEXTURES)
        texture = name[len(motion):]
        for g in range(groups):
            for c in range(clips_per_group):
                rng = np.random.default_rng(int(seeds[label, g, c]))
                n = int(rng.integers(frames[0], frames[1] + 1))
                clip = render_clip(motion, texture, rng, backgrounds[g], n, size)
                fname = f"v_{name}_g{g + 1:02d}_c{c + 1:02d}.avi"
                paths.append(write_video(root / "UCF-101" / name / fname, clip, fps=FPS, codec="mpeg4", quality=2))
                rel = f"{name}/{fname}"
                if g < test_groups:
                    test_lines.append(rel)
                else:
                    train_lines.append(f"{rel} {label + 1}")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    _write_lines(lists / "classInd.txt", [f"{k + 1} {n}" for k, n in enumerate(names)])
    _write_lines(lists / "trainlist01.txt", train_lines)
    _write_lines(lists / "testlist01.txt", test_lines)
    return paths


def prepare_synthetic_ucf101(out: str | os.PathLike, *, classes: int = 6, per_class: int = 12, seed: int = 0,
                             jobs: int | None = None, progress: bool = True, **generate_kwargs: Any) -> dict[str, Any]:
    """Generate into ``out/raw`` and prepare into ``out`` through the real UCF101 path (TV-L1 with
    :data:`~graphfuse.data.video.flow.TVL1_FAST`, frames kept at 64x64); returns meta.json's content.

    ``out/raw/UCF-101`` must not hold videos this generation did not write.
    """
    from graphfuse.data.video.flow import TVL1_FAST
    from graphfuse.data.video.prepare import prepare_video_dataset

    raw = Path(out) / "raw"
    paths = generate_synthetic_ucf101(raw, classes=classes, per_class=per_class, seed=seed, **generate_kwargs)
    expected = {p.resolve() for p in paths}
    foreign = sorted(str(p) for p in (raw / "UCF-101").rglob("*.avi") if p.resolve() not in expected)
    if foreign:
        raise ValueError(f"{raw / 'UCF-101'} holds {len(foreign)} videos this generation did not write "
                         f"(e.g. {foreign[0]}); use an empty folder")
    return prepare_video_dataset("ucf101", raw, out, split=1, flow="tvl1", jobs=jobs, size=None,
                                 tvl1=TVL1_FAST, progress=progress, label="synthetic-ucf101")
