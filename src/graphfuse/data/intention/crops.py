"""Pedestrian image crops for the image branch of Pedestrian Graph+ (numpy + PIL, no torch).

Pedestrian Graph+ (RodrigoGantier/Pedestrian_graph_plus) feeds a ``[4, 192, 64]`` crop per sample
(channel 0 a segmentation map, channels 1-3 RGB; ``pie_dataloader23.py`` reads it from
``imgs/<stem>.pkl``). The script that cut those crops is not released, so only the output size
is known. graphfuse produces RGB crops of the same size (no segmentation channel) by the rule
below, which follows the benchmark's ``pad_resize`` (PedestrianActionBenchmark ``utils.img_pad``):
the pedestrian box, optionally enlarged about its centre by ``context``, is scaled by
``s = min(out_w / w, out_h / h)`` (aspect preserved) and centred in the output; with
``mode="pad"`` the rest is zeros, with ``mode="expand"`` the region is widened (or heightened)
to the output aspect with real image content instead. Image parts outside the frame are zeros.

Sampling is bilinear at pixel centres; with ``antialias`` each output pixel averages a k x k grid
of samples, k = ceil(1 / s) (at most 4), so downscaling does not alias.

Frames are read from the extracted-frame layouts of the official toolkits:
PIE ``images/setXX/video_XXXX/%05d.png`` (``pie_data.py::_get_image_path``) and JAAD
``images/video_XXXX/%05d.png`` (``jaad_data.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["crop_pedestrian", "crop_samples", "read_frame", "frame_path"]

_MAX_SUPERSAMPLE = 4


def crop_pedestrian(images: np.ndarray, boxes: np.ndarray, out_hw: tuple[int, int] = (192, 64),
                    context: float = 1.0, mode: str = "pad", antialias: bool = True) -> np.ndarray:
    """Crop pedestrians to fixed-size RGB images.

    images: (N, H, W, 3) uint8 (one frame per box) or (H, W, 3) uint8 (all boxes in one frame);
    boxes: (N, 4) or (4,) x1 y1 x2 y2 px (continuous coordinates: pixel i covers [i, i + 1));
    out_hw: output (height, width); context: box enlargement about its centre (1.0 = the box);
    mode: "pad" (zeros beside the scaled box) or "expand" (image content there).
    Returns (N, 3, out_h, out_w) uint8. Raises ValueError naming the box for a box without area,
    with non-finite coordinates, or entirely outside its image.
    """
    images = np.asarray(images)
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3) or (H, W, 3) uint8, got {images.shape} {images.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) x1 y1 x2 y2, got {boxes.shape}")
    single = images.ndim == 3
    if not single and len(images) != len(boxes):
        raise ValueError(f"{len(images)} images for {len(boxes)} boxes")
    if mode not in ("pad", "expand"):
        raise ValueError(f"mode must be 'pad' or 'expand', got {mode!r}")
    if not (np.isfinite(context) and context > 0):
        raise ValueError(f"context must be a positive number, got {context}")
    out_h, out_w = (int(v) for v in out_hw)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"out_hw must be positive, got {out_hw}")
    n = len(boxes)
    img_h, img_w = images.shape[-3:-1]
    bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"box {i} {boxes[i].tolist()} is not a finite x1 y1 x2 y2 box with area")
    outside = (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= img_w) | (boxes[:, 1] >= img_h)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"box {i} {boxes[i].tolist()} lies entirely outside its {img_w}x{img_h} image")
    if n == 0:
        return np.zeros((0, 3, out_h, out_w), np.uint8)

    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    bw, bh = (boxes[:, 2] - boxes[:, 0]) * context, (boxes[:, 3] - boxes[:, 1]) * context
    scale = np.minimum(out_w / bw, out_h / bh)  # (N,) output pixels per source pixel
    k = int(min(_MAX_SUPERSAMPLE, max(1, np.ceil(1.0 / scale.min() - 1e-9)))) if antialias else 1

    frame_of = np.zeros(n, np.int64) if single else np.arange(n)
    flat = images.reshape(-1, 3)  # rows of (frame, y, x); stays uint8 (frames can be large)
    col = np.arange(out_w, dtype=np.float64)[None, None, :]
    row = np.arange(out_h, dtype=np.float64)[None, :, None]
    s = scale[:, None, None]
    acc = np.zeros((n, out_h, out_w, 3), np.float64)
    for sub in range(k * k):  # the k x k supersampling offsets, not samples or pixels
        ox, oy = (sub % k + 0.5) / k, (sub // k + 0.5) / k
        # source continuous coordinates of this sub-sample of every output pixel, (N, H, W)
        sx = cx[:, None, None] + (col + ox - out_w / 2) / s
        sy = cy[:, None, None] + (row + oy - out_h / 2) / s
        sx, sy = np.broadcast_to(sx, (n, out_h, out_w)), np.broadcast_to(sy, (n, out_h, out_w))
        inside = np.ones((n, out_h, out_w), bool)
        if mode == "pad":
            inside = (np.abs(sx - cx[:, None, None]) <= bw[:, None, None] / 2) & \
                     (np.abs(sy - cy[:, None, None]) <= bh[:, None, None] / 2)
        px, py = sx - 0.5, sy - 0.5  # pixel-index coordinates (pixel centres at integers)
        x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
        fx, fy = px - x0, py - y0
        value = np.zeros((n, out_h, out_w, 3), np.float64)
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):  # the four bilinear neighbours
            xi, yi = x0 + dx, y0 + dy
            weight = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
            valid = (xi >= 0) & (xi < img_w) & (yi >= 0) & (yi < img_h)  # zeros outside the frame
            yc, xc = np.clip(yi, 0, img_h - 1), np.clip(xi, 0, img_w - 1)
            lin = (frame_of[:, None, None] * img_h + yc) * img_w + xc
            value += (weight * valid)[..., None] * flat[lin].astype(np.float64)
        acc += value * inside[..., None]
    out = np.clip(np.rint(acc / (k * k)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def frame_path(frames_root: str | Path, set_id: str | None, video_id: str, frame: int,
               ext: str = "png") -> Path:
    """Path of an extracted frame: ``<root>/images/setXX/video_XXXX/%05d.<ext>`` (PIE) or, with an
    empty ``set_id``, ``<root>/images/video_XXXX/%05d.<ext>`` (JAAD). ``frames_root`` may be the
    dataset root (holding ``images/``) or the ``images`` folder itself."""
    root = Path(frames_root)
    images = root / "images" if (root / "images").is_dir() else root
    sub = Path(set_id, video_id) if set_id else Path(video_id)
    return images / sub / f"{int(frame):05d}.{ext}"


def read_frame(frames_root: str | Path, set_id: str | None, video_id: str, frame: int) -> np.ndarray:
    """Read one extracted frame (PNG, or JPEG when no PNG exists) -> (H, W, 3) uint8 RGB.

    Raises FileNotFoundError naming the missing file.
    """
    from PIL import Image  # pillow comes with torchvision; imported lazily for torch-free users

    path = frame_path(frames_root, set_id, video_id, frame)
    if not path.is_file():
        alt = path.with_suffix(".jpg")
        if not alt.is_file():
            raise FileNotFoundError(f"frame not found: {path} (nor {alt.name})")
        path = alt
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except OSError as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


def crop_samples(frames_root: str | Path, dataset: str, keys: list[str], frames: np.ndarray,
                 boxes: np.ndarray, size: tuple[int, int] = (192, 64), context: float = 1.0,
                 mode: str = "pad") -> np.ndarray:
    """Crops of many samples, each frame file read once.

    keys: (N,) track keys ``"setXX/video_XXXX/<ped_id>"`` (PIE) or ``"video_XXXX/<ped_id>"``
    (dataset "jaad"); frames: (N,) frame numbers; boxes: (N, 4) x1 y1 x2 y2 px; size: (H, W).
    Returns (N, 3, H, W) uint8. Errors name the missing frame file or the sample key.
    """
    frames = np.asarray(frames, np.int64)
    boxes = np.asarray(boxes, np.float64)
    if len(keys) != len(frames) or boxes.shape != (len(frames), 4):
        raise ValueError(f"{len(keys)} keys, {len(frames)} frames and boxes {boxes.shape} do not match")
    parts = [k.split("/") for k in keys]
    want = 2 if dataset == "jaad" else 3
    bad = [k for k, p in zip(keys, parts) if len(p) != want]
    if bad:
        raise ValueError(f"sample key {bad[0]!r} is not '{'video/ped' if want == 2 else 'set/video/ped'}'")
    videos = ["/".join(p[:-1]) for p in parts]
    out = np.zeros((len(keys), 3, int(size[0]), int(size[1])), np.uint8)
    frame_keys = np.array([f"{v}/{f}" for v, f in zip(videos, frames.tolist())])
    uniq, first, inverse = np.unique(frame_keys, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    for u in range(len(uniq)):  # a loop over frame files
        rows = order[bounds[u]:bounds[u + 1]]
        p = parts[first[u]]
        set_id, video_id = (None, p[0]) if want == 2 else (p[0], p[1])
        image = read_frame(frames_root, set_id, video_id, int(frames[first[u]]))
        try:
            out[rows] = crop_pedestrian(image, boxes[rows], out_hw=size, context=context, mode=mode)
        except ValueError as exc:
            raise ValueError(f"frame {uniq[u]} (samples {[keys[r] for r in rows]}): {exc}") from exc
    return out
