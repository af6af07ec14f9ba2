"""``graphfuse show``: a skeleton sequence as an animated GIF or MP4, with the model's prediction over time.

Inputs (read through the datasets' own readers):

* an NTU RGB+D ``.skeleton`` file (:func:`graphfuse.data.ntu.reader.read_skeleton`): the two
  bodies the model sees (the official body selection of preparation,
  :func:`graphfuse.data.ntu.prepare.select_bodies`), 25 joints, bones of
  :mod:`graphfuse.graphs.ntu25`. ``--view`` picks the 2D coordinates drawn: ``color`` (default:
  the joints' pixels in the 1920x1080 RGB frame, as the file records them), ``depth`` (pixels in
  the 512x424 depth map) or ``xyz`` (camera-space x and y in metres, seen from the camera).
  A joint is missing where its camera-space coordinates are all zero or its tracking state is
  0 (not tracked); a frame without bodies shows none.
* a PIE / JAAD annotation XML (``annotations/setXX/video_XXXX_annt.xml`` for PIE,
  ``annotations/video_XXXX.xml`` for JAAD) with the pose folder ``--poses`` (default
  ``<dataset root>/poses``, as for ``graphfuse prepare`` / ``graphfuse infer``) and a
  pedestrian ``--track`` (default: the longest track): the track's poses as the crossing-intention
  family reads them (:class:`graphfuse.data.intention.poses.PoseSource`: detections matched to
  the track's boxes, unmatched frames filled), 19 nodes, bones of :mod:`graphfuse.graphs.coco19`,
  in pixels of the original frame. Frames whose pose was filled (no detection matched) are
  drawn in grey.

The joints are fitted to the canvas once for the whole sequence (the bounding box of every
drawn joint in every frame, uniform scale), so the motion stays visible. Bones and joints are
rasterised with numpy (points sampled along every bone, one fancy-indexed write per frame);
text is drawn with Pillow.

With ``--ckpt`` the predicted class and its probability are written on each frame and a
probability strip runs along the bottom (the probability of ``--strip-class``, default the
class predicted at the end, over the whole sequence; the part up to the current frame in
colour, a cursor at the current frame). The predictions come from
:meth:`graphfuse.infer.Predictor.timeline` with ``--stride``:

* skeleton action: the model on every prefix of ``stride`` frames (``stride``, ``2 stride``,
  ..., up to the checkpoint's ``max_frame``, 300): a frame shows the prediction of the longest
  prefix that ends at or before it;
* crossing intention: the model on every observation window of the track (one every
  ``stride`` frames): a frame shows the prediction of the last window that ends at or before
  it; before the first window ends, "observing".

Output: ``--out FILE.gif`` (Pillow, looping, ``1000 / fps`` ms per frame; every frame differs
at least by its frame counter, so Pillow's merging of identical frames never changes the frame
count) or ``FILE.mp4`` (PyAV, H.264 ``yuv420p``; the size must be even). One output frame per
input frame.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FITS",
    "VIEWS",
    "Rendering",
    "SkeletonClip",
    "Timeline",
    "add_arguments",
    "read_intention_clip",
    "read_ntu_clip",
    "render",
    "run",
    "timeline_from",
    "write_animation",
]

#: The 2D coordinates of an NTU file that ``--view`` can draw.
VIEWS: tuple[str, ...] = ("color", "depth", "xyz")

#: Canvas colours (RGB).
BACKGROUND = (255, 255, 255)
BODY_COLOURS = np.array([[31, 119, 180], [214, 39, 40], [44, 160, 44], [148, 103, 189]], np.uint8)
JOINT_COLOUR = np.array([20, 20, 20], np.uint8)
FILLED_COLOUR = np.array([170, 170, 170], np.uint8)
TEXT_COLOUR = (0, 0, 0)
STRIP_BACKGROUND = np.array([236, 236, 236], np.uint8)
STRIP_PAST = np.array([255, 127, 14], np.uint8)
STRIP_FUTURE = np.array([190, 190, 190], np.uint8)
CURSOR_COLOUR = np.array([60, 60, 60], np.uint8)


@dataclass
class SkeletonClip:
    """A skeleton sequence in 2D image coordinates (x right, y down).

    Attributes:
        name: what the title shows (file name, or ``<video>/<track>``).
        joints: ``(T, M, V, 2)`` float64 coordinates.
        valid: ``(T, M, V)`` bool, the joints to draw.
        edges: ``(E, 2)`` int64 bones (joint index pairs).
        frames: ``(T,)`` int64 frame numbers in the source (NTU: 0..T-1; PIE/JAAD: the video's).
        filled: ``(T,)`` bool, frames whose pose was filled rather than detected (drawn grey).
        track: the crossing-intention timeline key of the track (``setXX/video_XXXX/<ped id>``).
        kind: ``"ntu"`` or ``"intention"``.
    """

    name: str
    joints: np.ndarray
    valid: np.ndarray
    edges: np.ndarray
    frames: np.ndarray
    filled: np.ndarray
    track: str | None = None
    kind: str = "ntu"

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


@dataclass
class Timeline:
    """Predictions over time: row ``i`` of ``probabilities (n, K)`` holds from source frame
    ``available[i]`` on (``available`` increasing); ``class_names`` names the K classes."""

    available: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]

    def at(self, frames: np.ndarray) -> np.ndarray:
        """For each source frame number, the row holding there (-1 before the first)."""
        return np.searchsorted(self.available, np.asarray(frames), side="right") - 1


@dataclass
class Rendering:
    """Rendered frames ``(T, H, W, 3)`` uint8 and the canvas coordinates ``(T, M, V, 2)`` of the joints."""

    frames: np.ndarray
    points: np.ndarray


# -- readers --------------------------------------------------------------------------------------
def read_ntu_clip(path: str | Path, view: str = "color") -> SkeletonClip:
    """An NTU ``.skeleton`` file as a :class:`SkeletonClip` of its two selected bodies.

    The bodies are those of preparation's official selection (:func:`~graphfuse.data.ntu.prepare.select_bodies`:
    the two body slots of highest energy), over every frame of the file. Raises the reader's
    :class:`~graphfuse.data.ntu.reader.SkeletonFormatError` on a malformed file and
    ``ValueError`` for an unknown view or a file whose ``view`` coordinates are all zero.
    """
    from graphfuse.data.ntu.prepare import MAX_BODY_KINECT, select_bodies
    from graphfuse.data.ntu.reader import NUM_JOINTS, read_skeleton
    from graphfuse.graphs import ntu25

    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    path = Path(path)
    seq = read_skeleton(path)
    t = seq.num_frames
    keep = seq.body_slot < MAX_BODY_KINECT
    slot, frame = seq.body_slot[keep], seq.body_frame[keep]
    dense_xyz = np.zeros((MAX_BODY_KINECT, t, NUM_JOINTS, 3))
    dense_xyz[slot, frame] = seq.xyz[keep]
    selected, _ = select_bodies(seq, max_frame=t)  # (3, T, V, 2): the bodies the model sees
    # The slots select_bodies kept: the ones whose joints it returned (an empty slot matches
    # any other empty slot, which draws nothing either way).
    diff = np.abs(dense_xyz[:, None] - selected.transpose(3, 1, 2, 0)[None]).sum(axis=(2, 3, 4))  # (4, 2)
    order = np.argmin(diff, axis=0)
    coords = {"color": seq.color_xy, "depth": seq.depth_xy,
              "xyz": seq.xyz[..., :2] * np.array([1.0, -1.0])}[view]  # camera y points up
    dense = np.zeros((MAX_BODY_KINECT, t, NUM_JOINTS, 2))
    dense[slot, frame] = coords[keep]
    tracked = np.zeros((MAX_BODY_KINECT, t, NUM_JOINTS), bool)
    tracked[slot, frame] = (seq.joint_tracking_state[keep] != 0) & (seq.xyz[keep] != 0).any(-1)
    joints = dense[order].transpose(1, 0, 2, 3)  # (T, 2, V, 2)
    valid = tracked[order].transpose(1, 0, 2)
    if valid.any() and not (joints[valid] != 0).any():
        raise ValueError(f"{path}: the file's {view} coordinates are all zero; draw another view (--view xyz)")
    return SkeletonClip(name=path.name, joints=joints, valid=valid, edges=np.asarray(ntu25.EDGES, np.int64),
                        frames=np.arange(t, dtype=np.int64), filled=np.zeros(t, bool), kind="ntu")


def _intention_dataset(annotation: Path, dataset: str | None) -> str:
    if dataset is not None:
        return "jaad" if dataset == "jaad" else "pie"
    return "pie" if annotation.name.endswith("_annt.xml") else "jaad"


def read_intention_clip(annotation: str | Path, poses: str | Path | None = None, track: str | None = None, *,
                        pose_format: str = "coco", min_iou: float = 0.3, fill: str = "interpolate",
                        dataset: str | None = None) -> SkeletonClip:
    """One pedestrian track of a PIE / JAAD video as a :class:`SkeletonClip` (one body, 19 nodes).

    ``annotation``: the video's annotation XML; ``poses``: the pose root (default
    ``<root>/poses``) in ``pose_format`` (:data:`graphfuse.data.intention.poses.POSE_FORMATS`),
    matched with ``min_iou`` and filled by ``fill`` as in preparation; ``track``: the
    pedestrian id (default the longest track; JAAD groups are not tracks); ``dataset``:
    ``"pie"`` / ``"jaad"`` (default: PIE when the file name ends in ``_annt.xml``).
    """
    from graphfuse.data.intention.poses import PoseSource, joint_observed
    from graphfuse.graphs import coco19

    annotation = Path(annotation)
    if not annotation.is_file():
        raise FileNotFoundError(f"{annotation}: annotation XML not found")
    kind = _intention_dataset(annotation, dataset)
    if kind == "pie":
        from graphfuse.data.intention.pie import read_pie_annotations

        set_id, video_id = annotation.parent.name, annotation.name.removesuffix("_annt.xml")
        video = read_pie_annotations(annotation, set_id, video_id)
        tracks = {pid: (t.frames, t.boxes) for pid, t in video.pedestrians.items()}
        root, prefix = annotation.parents[2], f"{set_id}/{video_id}"
    else:
        from graphfuse.data.intention.jaad import read_jaad_annotations

        set_id, video_id = None, annotation.stem
        video = read_jaad_annotations(annotation)
        tracks = {pid: (t.frames, t.boxes) for pid, t in video.tracks.items() if not t.is_group}
        root, prefix = annotation.parents[1], video_id
    if not tracks:
        raise ValueError(f"{annotation}: no pedestrian track")
    if track is None:
        track = max(sorted(tracks), key=lambda k: len(tracks[k][0]))
    elif track not in tracks:
        shown = ", ".join(sorted(tracks)[:12]) + (" ..." if len(tracks) > 12 else "")
        raise ValueError(f"{annotation}: no pedestrian track {track!r} (tracks: {shown})")
    pose_root = Path(poses) if poses is not None else root / "poses"
    if not pose_root.exists():
        raise FileNotFoundError(f"{pose_root}: pose folder not found; give --poses")
    source = PoseSource(pose_root, fmt=pose_format, dataset=kind, min_iou=min_iou, fill=fill)
    frames, boxes = tracks[track]
    pose, mask = source.track_poses(set_id, video_id, track, frames, boxes)
    return SkeletonClip(name=f"{prefix}/{track}", joints=pose[:, None, :, :2].astype(np.float64),
                        valid=joint_observed(pose)[:, None], edges=np.asarray(coco19.EDGES, np.int64),
                        frames=np.asarray(frames, np.int64), filled=~np.asarray(mask, bool),
                        track=f"{prefix}/{track}", kind="intention")


def timeline_from(result: Any, clip: SkeletonClip, class_names: Sequence[str] | None) -> Timeline | None:
    """A :class:`Timeline` from :meth:`graphfuse.infer.Predictor.timeline`'s result for ``clip``.

    ``(ends, probabilities)`` (skeleton action, the model on prefixes of ``ends`` frames) holds
    from frame ``end - 1`` on; ``{track: (last frames, probabilities)}`` (crossing intention,
    observation windows) from each window's last frame on. None when the clip's track has no
    window (shorter than the observation length)."""
    if isinstance(result, dict):
        if clip.track not in result:
            return None
        frames, probs = result[clip.track]
        available = np.asarray(frames, np.int64)
    else:
        frames, probs = result
        available = np.asarray(frames, np.int64) - 1
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] != available.shape[0]:
        raise ValueError(f"timeline: {available.shape[0]} frames but probabilities of shape {probs.shape}")
    k = probs.shape[1]
    names = list(class_names) if class_names is not None and len(class_names) == k else [f"class {i}" for i in range(k)]
    order = np.argsort(available, kind="stable")
    return Timeline(available[order], probs[order], names)


# -- drawing --------------------------------------------------------------------------------------
#: How the joints are fitted to the canvas (``--fit``).
FITS: tuple[str, ...] = ("clip", "frame")


def _fit(joints: np.ndarray, valid: np.ndarray, box: tuple[float, float, float, float], mode: str = "clip"
         ) -> np.ndarray:
    """Coordinates ``(T, M, V, 2)`` mapped into ``box`` = (x0, y0, x1, y1) by one uniform scale.

    ``mode="clip"``: one shift for the whole sequence (the bounding box of the valid joints of
    every frame, centred): the motion across the image stays visible. ``"frame"``: each frame
    centred on its own joints' bounding box, at the scale that fits the largest frame (a
    pedestrian crossing a wide image stays large; the translation is not shown)."""
    if mode not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {mode!r}")
    x0, y0, x1, y1 = box
    if not valid.any():
        return np.zeros_like(joints)
    mask = valid[..., None]
    lo = np.where(mask, joints, np.inf).min(axis=(1, 2))  # (T, 2) per frame
    hi = np.where(mask, joints, -np.inf).max(axis=(1, 2))
    seen = valid.any(axis=(1, 2))
    if mode == "clip":
        lo_all, hi_all = lo[seen].min(axis=0), hi[seen].max(axis=0)
        extent = hi_all - lo_all
        centre = np.broadcast_to((lo_all + hi_all) / 2.0, lo.shape)
    else:
        extent = (hi[seen] - lo[seen]).max(axis=0)
        centre = np.where(seen[:, None], (lo + hi) / 2.0, 0.0)
    scale = min((x1 - x0) / max(extent[0], 1e-9), (y1 - y0) / max(extent[1], 1e-9))
    if scale > 1e6:  # a single point: centre it at scale 1
        scale = 1.0
    return (joints - centre[:, None, None, :]) * scale + np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])


def _disc(radius: int) -> np.ndarray:
    """``(K, 2)`` integer offsets of a filled disc."""
    r = np.arange(-radius, radius + 1)
    dx, dy = np.meshgrid(r, r)
    inside = dx**2 + dy**2 <= radius**2 + radius
    return np.stack([dx[inside], dy[inside]], axis=-1)


def _segment_points(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points sampled along the segments ``a -> b`` (both ``(N, 2)``), at least one per pixel:
    ``((N, S, 2) points, (N, S) segment index)``."""
    if len(a) == 0:
        return np.zeros((0, 0, 2)), np.zeros((0, 0), np.int64)
    n = int(np.ceil(np.abs(b - a).max(initial=0.0))) + 1
    t = np.linspace(0.0, 1.0, n)[None, :, None]
    pts = a[:, None] + t * (b - a)[:, None]
    return pts, np.broadcast_to(np.arange(len(a))[:, None], pts.shape[:2])


def _stamp(img: np.ndarray, points: np.ndarray, colours: np.ndarray, radius: int) -> None:
    """Paint ``points (P, 2)`` (x, y) as discs of ``radius`` in ``colours (P, 3)`` (in place; clipped)."""
    if points.size == 0:
        return
    offsets = _disc(radius)
    xy = np.rint(points).astype(np.int64)[:, None, :] + offsets[None]  # (P, K, 2)
    col = np.broadcast_to(colours[:, None, :], (*xy.shape[:2], 3)).reshape(-1, 3)
    xy = xy.reshape(-1, 2)
    h, w = img.shape[:2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    img[xy[inside, 1], xy[inside, 0]] = col[inside]


def _font(px: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _strip_templates(values: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probability strip: ``(future, past)`` images ``(height, width, 3)`` of the curve
    ``values (T,)`` in [0, 1] (NaN: no prediction yet) over the strip's width, and the cursor's
    x for each frame ``(T,)``."""
    t = len(values)
    xs = np.linspace(2.0, width - 3.0, t) if t > 1 else np.full(1, width / 2.0)
    ys = 2.0 + (1.0 - np.nan_to_num(values, nan=0.0)) * (height - 5.0)
    future = np.empty((height, width, 3), np.uint8)
    future[:] = STRIP_BACKGROUND
    future[height // 2, :] = (STRIP_BACKGROUND.astype(np.int64) * 9 // 10).astype(np.uint8)  # the 0.5 line
    past = future.copy()
    known = ~np.isnan(values)
    pts = np.stack([xs, ys], axis=-1)
    if t == 1:
        a, b = pts[known], pts[known]
    else:
        seg = known[:-1] & known[1:]
        a, b = pts[:-1][seg], pts[1:][seg]
    line, _ = _segment_points(a, b)
    flat = line.reshape(-1, 2)
    _stamp(future, flat, np.broadcast_to(STRIP_FUTURE, flat.shape[:1] + (3,)), 1)
    _stamp(past, flat, np.broadcast_to(STRIP_PAST, flat.shape[:1] + (3,)), 1)
    return future, past, np.rint(xs).astype(np.int64)


def render(clip: SkeletonClip, size: int = 320, timeline: Timeline | None = None,
           strip_class: str | None = None, fit: str | None = None) -> Rendering:
    """Draw every frame of ``clip`` on a ``size x size`` canvas.

    Layout: a header (the clip's name and frame counter; with ``timeline`` a second line with
    the predicted class and its probability), the skeleton fitted below it, and with
    ``timeline`` a probability strip at the bottom (``strip_class``'s probability; default the
    class predicted at the last frame). ``fit``: :data:`FITS` (default ``"clip"`` for NTU,
    ``"frame"`` for a pedestrian track; see :func:`_fit`).

    Raises:
        ValueError: ``size`` below 64, or a ``strip_class`` the timeline does not have.
    """
    from PIL import Image, ImageDraw

    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    t = clip.num_frames
    line = max(10, size // 22)
    header = (2 if timeline is not None else 1) * (line + 4) + 4
    strip_h = max(16, size // 7) if timeline is not None else 0
    margin = max(4, size // 40)
    box = (margin, header + margin, size - margin, size - strip_h - margin - (4 if strip_h else 0))
    points = _fit(clip.joints, clip.valid, box, fit or ("frame" if clip.kind == "intention" else "clip"))
    radius = max(1, size // 200)
    font = _font(line)
    rows = timeline.at(clip.frames) if timeline is not None else np.full(t, -1)
    if timeline is not None:
        names = timeline.class_names
        last = rows[-1]
        if strip_class is None:
            k = int(np.argmax(timeline.probabilities[last])) if last >= 0 else 0
        elif strip_class in names:
            k = names.index(strip_class)
        else:
            raise ValueError(f"--strip-class {strip_class!r} is not one of the model's classes {names}")
        values = np.where(rows >= 0, timeline.probabilities[np.maximum(rows, 0), k], np.nan)
        future, past, cursor = _strip_templates(values, size, strip_h)
        strip_label = f"p({names[k]})"
        top = np.argmax(timeline.probabilities, axis=1)
    edges = clip.edges
    m = clip.joints.shape[1]
    body_colour = BODY_COLOURS[np.arange(m) % len(BODY_COLOURS)]
    out = np.empty((t, size, size, 3), np.uint8)
    for i in range(t):  # a loop over output frames (each is drawn and captioned)
        img = np.empty((size, size, 3), np.uint8)
        img[:] = BACKGROUND
        ok = clip.valid[i][:, edges[:, 0]] & clip.valid[i][:, edges[:, 1]]  # (M, E)
        body, edge = np.nonzero(ok)
        a, b = points[i, body, edges[edge, 0]], points[i, body, edges[edge, 1]]
        seg, which = _segment_points(a, b)
        colours = FILLED_COLOUR[None].repeat(len(body), 0) if clip.filled[i] else body_colour[body]
        _stamp(img, seg.reshape(-1, 2), colours[which.reshape(-1)] if len(body) else np.zeros((0, 3), np.uint8),
               radius)
        joints = points[i][clip.valid[i]]
        _stamp(img, joints, np.broadcast_to(FILLED_COLOUR if clip.filled[i] else JOINT_COLOUR,
                                            (len(joints), 3)), radius + 1)
        if timeline is not None:
            img[size - strip_h:] = future
            x = int(cursor[i])
            img[size - strip_h:, : x + 1] = past[:, : x + 1]
            img[size - strip_h:, x] = CURSOR_COLOUR
        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        counter = f"frame {int(clip.frames[i])}" + (f" ({i + 1}/{t})" if clip.kind == "intention" else f"/{t}")
        draw.text((margin, 3), f"{clip.name}  {counter}" + ("  [pose filled]" if clip.filled[i] else ""),
                  fill=TEXT_COLOUR, font=font)
        if timeline is not None:
            r = int(rows[i])
            caption = (f"{timeline.class_names[top[r]]}: {timeline.probabilities[r, top[r]]:.2f}" if r >= 0
                       else "observing ...")
            draw.text((margin, 3 + line + 4), caption, fill=TEXT_COLOUR, font=font)
            draw.text((4, size - strip_h + 1), strip_label, fill=TEXT_COLOUR, font=_font(max(8, strip_h // 3)))
        out[i] = np.asarray(pil)
    return Rendering(out, points)


def write_animation(frames: np.ndarray, out: str | Path, fps: float = 15.0) -> Path:
    """Write ``frames (T, H, W, 3)`` uint8 as ``out``: ``.gif`` (Pillow) or ``.mp4`` (PyAV, H.264).

    The file is written atomically (a temporary file renamed onto ``out``).

    Raises:
        ValueError: another suffix, no frames, a non-positive fps, or an odd size for MP4.
    """
    from graphfuse.io import atomic_path

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{out}: the output must end in .gif or .mp4")
    if len(frames) == 0:
        raise ValueError(f"{out}: no frames to write")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    _, h, w, _ = frames.shape
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        with atomic_path(out, suffix=".gif") as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(1, round(1000.0 / fps)), loop=0)
        return out
    if h % 2 or w % 2:
        raise ValueError(f"{out}: MP4 (yuv420p) needs an even width and height, got {w}x{h}")
    from fractions import Fraction

    import av

    rate = Fraction(fps).limit_denominator(1000)
    with atomic_path(out, suffix=".mp4") as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:  # a loop over frames: the encoder takes one at a time
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


# -- the command ------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``graphfuse show`` (see the module docstring)."""
    parser.add_argument("input", metavar="INPUT",
                        help="an NTU .skeleton file, or a PIE/JAAD annotation XML (with --poses and --track)")
    parser.add_argument("--ckpt", default=None, help="checkpoint: draw its predicted class and probability over time")
    parser.add_argument("--out", default=None, metavar="FILE.gif|FILE.mp4",
                        help="output animation (default: INPUT's name with .gif, in the current folder)")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second of the animation (default 15)")
    parser.add_argument("--stride", type=int, default=10,
                        help="with --ckpt: a prediction every N frames (prefixes / observation windows; default 10)")
    parser.add_argument("--size", type=int, default=320, help="canvas width and height in pixels (default 320)")
    parser.add_argument("--view", choices=VIEWS, default="color",
                        help="NTU: the coordinates drawn: colour-image pixels (default), depth-map pixels, or "
                             "camera-space x/y")
    parser.add_argument("--fit", choices=FITS, default=None,
                        help="clip: one framing for the whole sequence (motion visible; default for NTU); frame: "
                             "each frame centred on the skeleton at one scale (default for PIE/JAAD tracks)")
    parser.add_argument("--strip-class", default=None, metavar="NAME",
                        help="with --ckpt: the class whose probability the strip shows (default: the class "
                             "predicted at the last frame)")
    parser.add_argument("--poses", default=None, metavar="DIR",
                        help="PIE/JAAD: the pose folder (default <dataset root>/poses)")
    from graphfuse.data.intention.poses import POSE_FORMATS

    parser.add_argument("--pose-format", default=None, choices=POSE_FORMATS,
                        help="PIE/JAAD: the pose format (default: the checkpoint's, else coco)")
    parser.add_argument("--track", default=None, help="PIE/JAAD: the pedestrian id (default: the longest track)")
    parser.add_argument("--vehicle", default=None, metavar="XML",
                        help="PIE/JAAD with --ckpt: the video's vehicle XML (default: beside the annotations)")
    parser.add_argument("--frames-dir", default=None, metavar="DIR",
                        help="PIE/JAAD with --ckpt: the extracted frames, for a model with an image branch")


def _is_ntu(path: Path) -> bool:
    return path.suffix.lower() == ".skeleton"


def run(args: argparse.Namespace) -> int:
    """``graphfuse show``: read, predict (with ``--ckpt``), render, write; prints the output path."""
    path = Path(args.input)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input not found")
    if int(args.stride) < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
    if int(args.size) % 2:
        raise ValueError(f"--size must be even (MP4 and a centred layout), got {args.size}")
    out = Path(args.out) if args.out else Path(path.stem + ".gif")
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"--out {out}: the output must end in .gif or .mp4")
    predictor = None
    if args.ckpt:
        from graphfuse.infer import load_predictor

        predictor = load_predictor(args.ckpt)
    if _is_ntu(path):
        if predictor is not None and predictor.family != "skeleton_action":
            raise ValueError(f"{path} is an NTU skeleton file but {args.ckpt} is a {predictor.family} model")
        clip = read_ntu_clip(path, view=args.view)
        options: dict[str, Any] = {}
    elif path.suffix.lower() == ".xml":
        if predictor is not None and predictor.family != "crossing_intention":
            raise ValueError(f"{path} is a PIE/JAAD annotation XML but {args.ckpt} is a {predictor.family} model")
        pose = dict((predictor.data_options.get("pose") or {}) if predictor is not None else {})
        dataset = (predictor.data_options.get("dataset") if predictor is not None else None) or None
        clip = read_intention_clip(path, args.poses, args.track,
                                   pose_format=args.pose_format or pose.get("format") or "coco",
                                   min_iou=float(pose.get("min_iou", 0.3)), fill=str(pose.get("fill") or "interpolate"),
                                   dataset="jaad" if dataset == "jaad" else ("pie" if dataset else None))
        options = {"poses": args.poses, "vehicle": args.vehicle, "frames_dir": args.frames_dir}
    else:
        raise ValueError(f"{path}: expected an NTU .skeleton file or a PIE/JAAD annotation .xml")
    timeline = None
    if predictor is not None:
        result = predictor.timeline(path, int(args.stride), **options)
        timeline = timeline_from(result, clip, predictor.class_names)
        if timeline is None:
            print(f"graphfuse show: note: track {clip.track} is shorter than the model's observation window; "
                  "drawn without predictions")
    rendering = render(clip, size=int(args.size), timeline=timeline, strip_class=args.strip_class, fit=args.fit)
    write_animation(rendering.frames, out, fps=float(args.fps))
    print(f"{out}: {clip.num_frames} frames, {args.size}x{args.size}" + (", with predictions" if timeline else ""))
    return 0
