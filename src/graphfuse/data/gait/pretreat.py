"""GaitSet / OpenGait silhouette pretreatment, vectorised over a sequence's frames.

Re-implemented (not copied) from the behaviour of OpenGait's ``datasets/pretreatment.py``
(``imgs2pickle``; itself derived from GaitSet's ``pretreatment.py``, Chao et al., AAAI 2019).
For each grayscale frame, in file-name order:

1. **Empty frames.** A frame whose pixel sum is ``<= 10000`` is dropped (about 40 white pixels).
2. **Row crop.** Rows from the first to the last row holding a non-zero pixel are kept (the
   columns are not cropped: the full image width goes on).
3. **Resize** to height ``S`` with OpenCV's cubic interpolation (``cv2.INTER_CUBIC``), width
   ``int(S * (W / h))`` for the cropped ``h x W`` image: the same float expression as
   OpenGait (``ratio = W / h``; ``int`` truncates), so the widths agree bit for bit.
4. **Centre column.** The column sums of the resized frame are accumulated left to right; the
   centre ``xc`` is the first column whose running sum is *strictly greater* than half the
   frame's total (OpenGait: ``csum > img.sum() / 2``). OpenGait then tests ``if not x_center``,
   which is true for "no such column" (a resized frame that is all zero) **and for a centre in
   column 0**: both frames are dropped (we count them in ``no_centre``).
5. **Width crop.** Columns ``xc - S/2 .. xc + S/2 - 1``. OpenGait pads the frame with ``S/2``
   zero columns on both sides when ``left <= 0`` or ``right >= width`` and crops the shifted
   window; that equals cropping the frame extended by zeros, which is what is done here for
   every frame at once (a gather with a validity mask).
6. uint8 ``(T, S, S)``.

Corner cases (OpenGait's behaviour, and ours):

* cropped height 0: cannot happen: a frame kept by step 1 has a non-zero row.
* a frame so narrow that ``int(S * W / h) == 0`` (``W < h / S``): OpenGait's ``cv2.resize``
  fails on the empty size; we raise ValueError naming the frame (never seen in CASIA-B's
  320 x 240 or OU-MVLP's frames).
* a frame whose cubic resize is all zero, or whose centre is column 0: dropped (step 4).
* every frame dropped: OpenGait writes no pickle (the sequence silently disappears); the
  preparation makes it an error naming the folder, or a listed skip with ``--skip-bad``.
* fewer than 5 frames left: OpenGait logs a warning and keeps the sequence; so do we (listed
  in ``meta.json["short_sequences"]``).

Only the resize is a loop over frames (OpenCV has no batched resize); the rest is numpy over the
whole stack (frames of the same size; a sequence of mixed sizes is processed per size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PIXEL_THRESHOLD", "PretreatResult", "pretreat_frames", "resized_width"]

#: OpenGait / GaitSet: a frame whose pixel sum is at most this is empty.
PIXEL_THRESHOLD = 10000


@dataclass
class PretreatResult:
    """Output of :func:`pretreat_frames`.

    Attributes:
        frames: uint8 ``(T, S, S)``, the kept frames in input order.
        kept: int64 indices (into the input frames) of the kept frames.
        below_threshold: input frames dropped for a pixel sum ``<= PIXEL_THRESHOLD``.
        no_centre: input frames dropped for having no centre column (or column 0, as OpenGait).
    """

    frames: np.ndarray
    kept: np.ndarray
    below_threshold: int
    no_centre: int

    @property
    def dropped(self) -> int:
        return self.below_threshold + self.no_centre


def resized_width(width: int, height: int, size: int) -> int:
    """OpenGait's resized width of a ``height x width`` crop: ``int(size * (width / height))``."""
    return int(size * (width / height))


def _check_size(size: int) -> int:
    size = int(size)
    if size < 2 or size % 2:
        raise ValueError(f"the pretreatment size must be an even number >= 2 (64 or 128), got {size}")
    return size


def pretreat_frames(frames: np.ndarray | Sequence[np.ndarray], size: int = 64,
                    names: Sequence[str] | None = None) -> PretreatResult:
    """Pretreat one sequence of grayscale uint8 frames (``(T, H, W)`` or a list of 2D arrays).

    ``names`` (one per frame, e.g. the PNG paths) only serve error messages. Raises ValueError
    for a frame that is not a 2D uint8 array, or that is too narrow to resize (see the module
    docstring).
    """
    size = _check_size(size)
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        if frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 grayscale frames, got {frames.dtype}")
        groups = {frames.shape[1:]: np.arange(frames.shape[0])}
        stacks = {frames.shape[1:]: frames}
    else:
        frames = list(frames)
        for k, f in enumerate(frames):
            if not isinstance(f, np.ndarray) or f.ndim != 2 or f.dtype != np.uint8:
                what = names[k] if names is not None else f"frame {k}"
                raise ValueError(f"{what}: expected a 2D uint8 grayscale frame, got "
                                 f"{getattr(f, 'dtype', type(f).__name__)} {getattr(f, 'shape', '')}")
        shapes = [f.shape for f in frames]
        groups = {s: np.asarray([k for k, t in enumerate(shapes) if t == s], dtype=np.int64)
                  for s in dict.fromkeys(shapes)}
        stacks = {s: np.stack([frames[k] for k in idx]) for s, idx in groups.items()}
    total = sum(len(idx) for idx in groups.values())
    out = np.zeros((total, size, size), dtype=np.uint8)
    keep = np.zeros(total, dtype=bool)
    below = no_centre = 0
    for shape, idx in groups.items():  # one group unless a sequence mixes frame sizes
        res, ok, b, nc = _pretreat_stack(stacks[shape], size, idx, names)
        out[idx] = res
        keep[idx] = ok
        below += b
        no_centre += nc
    kept = np.flatnonzero(keep).astype(np.int64)
    return PretreatResult(out[kept], kept, below, no_centre)


def _pretreat_stack(stack: np.ndarray, size: int, index: np.ndarray,
                    names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Steps 1-5 on a ``(T, H, W)`` stack of one frame size. Returns (frames ``(T, S, S)`` with
    zeros for dropped frames, keep mask, dropped below threshold, dropped without centre)."""
    from graphfuse.data.gait.readers import cv2_module

    cv2 = cv2_module()
    t, _h, w = stack.shape
    result = np.zeros((t, size, size), dtype=np.uint8)
    if t == 0:
        return result, np.zeros(0, dtype=bool), 0, 0
    sums = stack.sum(axis=(1, 2), dtype=np.int64)
    valid = sums > PIXEL_THRESHOLD
    live = np.flatnonzero(valid)
    below = int(t - live.size)
    if live.size == 0:
        return result, valid, below, 0
    rows = stack[live].any(axis=2)  # (L, H): rows holding a non-zero pixel
    top = rows.argmax(axis=1)
    bottom = rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1)
    heights = bottom - top + 1
    widths = np.asarray([resized_width(w, int(hh), size) for hh in heights], dtype=np.int64)
    if (widths < 1).any():
        k = int(live[np.argmax(widths < 1)])
        what = names[int(index[k])] if names is not None else f"frame {int(index[k])}"
        raise ValueError(f"{what}: a {int(heights[np.argmax(widths < 1)])} x {w} silhouette crop is too narrow "
                         f"to resize to height {size} (OpenGait's cv2.resize fails on it too)")
    # The one loop over frames: OpenCV resizes one image at a time.
    resized = [cv2.resize(stack[f, a:b + 1], (int(nw), size), interpolation=cv2.INTER_CUBIC)
               for f, a, b, nw in zip(live, top, bottom, widths)]
    cat = np.concatenate(resized, axis=1)  # (S, sum of widths): the frames side by side
    starts = np.zeros(live.size, dtype=np.int64)
    np.cumsum(widths[:-1], out=starts[1:])
    col = cat.sum(axis=0, dtype=np.int64)
    csum = np.cumsum(col)
    before = np.concatenate([[0], csum])[starts]  # running sum before each frame's first column
    local = csum - np.repeat(before, widths)  # per-frame running column sums
    totals = np.add.reduceat(col, starts)
    passed = 2 * local > np.repeat(totals, widths)  # csum > total / 2, exactly in integers
    cols = np.arange(cat.shape[1], dtype=np.int64)
    first = np.minimum.reduceat(np.where(passed, cols, cat.shape[1]), starts)
    centre = first - starts
    has_centre = (first < cat.shape[1]) & (centre > 0)  # OpenGait: `if not x_center` drops column 0 too
    no_centre = int((~has_centre).sum())
    # Crop columns centre - S/2 .. centre + S/2 - 1 of each frame, zeros outside it.
    local_cols = (centre - size // 2)[:, None] + np.arange(size)[None, :]  # (L, S)
    inside = (local_cols >= 0) & (local_cols < widths[:, None])
    gather = np.where(inside, local_cols + starts[:, None], 0)
    crops = cat[:, gather]  # (S, L, S)
    crops = np.where(inside[None], crops, 0).transpose(1, 0, 2)
    result[live] = crops
    keep = np.zeros(t, dtype=bool)
    keep[live[has_centre]] = True
    return result, keep, below, no_centre
