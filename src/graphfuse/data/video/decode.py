"""Decode (and, for synthetic data, encode) ``.avi`` videos with PyAV.

PyAV's wheels ship FFmpeg, so no system FFmpeg is needed (torchcodec needs one). PyAV is an
optional dependency (``pip install 'graphfuse[video]'``); it is imported when a video is
decoded, with one clear error when it is missing.

Frame size (:func:`output_size`) follows the community format of the two-stream papers, the
``jpegs_256`` frames written by Feichtenhofer's ``gpu_flow/compute_flow.cpp``: the frame is
scaled so that its **short side is** ``size`` (256), each side is floored and then made even
(``w = floor(W s); w -= w % 2``). A 320x240 UCF101 video gives 340x256 frames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VideoDecodeError", "decode_video", "output_size", "probe_video", "require_av", "write_video"]


class VideoDecodeError(ValueError):
    """A video file cannot be decoded (message names the file)."""


def require_av() -> Any:
    """The ``av`` module, or an ImportError saying how to install it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "decoding videos needs PyAV: pip install 'graphfuse[video]' (or: pip install av)"
        ) from exc
    return av


def output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """``(width, height)`` of a stored frame: short side ``size`` with both sides floored and made
    even (``gpu_flow``'s rule), or the input size when ``size`` is None.

    >>> output_size(320, 240, 256)
    (340, 256)
    """
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if size is None:
        return int(width), int(height)
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    factor = max(size / width, size / height)
    w = math.floor(width * factor + 1e-9)
    h = math.floor(height * factor + 1e-9)
    return w - w % 2, h - h % 2


def probe_video(path: str | os.PathLike) -> dict[str, Any]:
    """Width, height, frame rate and codec of the first video stream of ``path``."""
    av = require_av()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: video not found")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{p}: no video stream")
            s = container.streams.video[0]
            rate = float(s.average_rate) if s.average_rate else None
            return {"width": s.codec_context.width, "height": s.codec_context.height, "fps": rate,
                    "codec": s.codec_context.name, "frames": int(s.frames or 0)}
    except VideoDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - av.error.* and anything else FFmpeg raises
        raise VideoDecodeError(f"{p}: cannot read the video ({type(exc).__name__}: {exc})") from None


def decode_video(path: str | os.PathLike, size: int | None = 256, max_frames: int | None = None) -> np.ndarray:
    """All frames of ``path``'s first video stream as ``(T, H, W, 3)`` uint8 RGB.

    Args:
        path: the video file (``.avi`` in UCF101 and HMDB51).
        size: short side of the returned frames (:func:`output_size`; bicubic scaling by FFmpeg's
            swscale, as ``gpu_flow`` scaled with bicubic ``cv::resize``); None keeps the size.
        max_frames: stop after this many frames (None: all).

    Raises:
        FileNotFoundError: no such file.
        VideoDecodeError: not a video, no video stream, a decoding error, no frame decoded, or
            frames changing size mid-stream.
    """
    av = require_av()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: video not found")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{p}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            target: tuple[int, int] | None = None
            src: tuple[int, int] | None = None
            # One FFmpeg call per frame (decode + scale + convert); frames are then stacked.
            for frame in container.decode(stream):
                if src is None:
                    src = (frame.width, frame.height)
                    target = output_size(frame.width, frame.height, size)
                elif (frame.width, frame.height) != src:
                    raise VideoDecodeError(f"{p}: frame {len(frames) + 1} is {frame.width}x{frame.height}, "
                                           f"the first frame {src[0]}x{src[1]}")
                assert target is not None
                frames.append(frame.to_ndarray(format="rgb24", width=target[0], height=target[1],
                                               interpolation="BICUBIC"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except VideoDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - av.error.* (InvalidDataError, ...) and the like
        raise VideoDecodeError(f"{p}: cannot decode the video ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise VideoDecodeError(f"{p}: no frame could be decoded")
    return np.stack(frames)


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: int = 25,
                codec: str = "mpeg4", quality: int = 2) -> Path:
    """Encode ``frames`` ``(T, H, W, 3)`` uint8 RGB into ``path`` (an ``.avi``), atomically.

    ``codec``: ``mpeg4`` (MPEG-4 part 2, the XviD family UCF101 is encoded with) or ``mjpeg``;
    ``quality``: the encoder's ``qscale`` (2 = near lossless, 31 = worst). Width and height
    must be even (yuv420p).
    """
    from graphfuse.io import atomic_path

    av = require_av()
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    t, h, w, _ = arr.shape
    if t < 1 or h % 2 or w % 2:
        raise ValueError(f"need >= 1 frame of even width and height, got {t} frames of {w}x{h}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    with atomic_path(p, suffix=".avi") as tmp, av.open(str(tmp), mode="w", format="avi") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix
        stream.codec_context.qscale = quality
        stream.codec_context.options = {"qmin": str(quality), "qmax": str(quality)}
        for img in arr:  # one encoder call per frame
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return p
