"""TV-L1 optical flow, its quantisation to JPEG pairs, and registration of precomputed flow.

**The community format** (Feichtenhofer's ``gpu_flow/compute_flow.cpp``, the ``tvl1_flow``
folders released with ``feichtenhofer/twostreamfusion``; the same bound as Simonyan and
Zisserman's two-stream code): the horizontal (``u``) and vertical (``v``) flow between RGB
frames ``k`` and ``k + 1`` (1-based) are stored as two greyscale JPEGs
``u/<video>/frame%06d.jpg`` and ``v/<video>/frame%06d.jpg`` numbered ``k = 1 .. n - 1`` for a
video of ``n`` frames, each value quantised linearly with the bound ``B = 20`` pixels/frame:

    q = round((f + B) * 255 / (2 B)), clipped to [0, 255]     (``cvRound``: half to even)
    f' = q * 2 B / 255 - B                                     (dequantisation)

so one step is 40/255 = 0.157 px and ``|f - f'| <= 0.0785`` px inside the bound. A horizontal
flip of the image maps ``q_u -> 255 - q_u``, exactly ``-f'`` after dequantisation (the released
code's ``-imt + 255``).

**TV-L1** (Zach, Pock, Bischof, DAGM 2007) via OpenCV's ``cv2.optflow.DualTVL1OpticalFlow``
(package ``opencv-contrib-python-headless``) on greyscale uint8 frames, forward flow from frame
``k`` to ``k + 1`` (``gpu_flow`` calls ``OpticalFlowDual_TVL1_GPU(frame0, frame1)``). Its
parameters default to OpenCV's (:data:`TVL1_DEFAULT`, those of the GPU class ``gpu_flow``
used, except the CPU class's inner/outer iteration split); :data:`TVL1_FAST` (3 scales, 3
warps, epsilon 0.05) is the preset of the synthetic data, about 10x faster and exact enough
for its rigid motions.

The OpenCV call runs once per frame pair (the algorithm is iterative per image; there is
nothing to vectorise across frames); everything around it (colour conversion, quantisation,
checks) works on whole videos.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FLOW_BOUND",
    "FLOW_FORMAT",
    "TVL1_DEFAULT",
    "TVL1_FAST",
    "FlowFormatError",
    "TVL1Params",
    "compute_quantized_flow",
    "count_frames",
    "dequantize_flow",
    "quantization_step",
    "quantize_flow",
    "register_flow_video",
    "require_cv2",
    "to_gray",
    "tvl1_flow",
]

#: The community bound, pixels per frame.
FLOW_BOUND = 20.0
#: What meta.json records about the stored flow.
FLOW_FORMAT = {
    "layout": "{dir}/u/{video}/frame%06d.jpg and {dir}/v/{video}/frame%06d.jpg, k = 1..n-1: flow from RGB frame k to k+1",
    "quantisation": "q = round((f + B) * 255 / (2 B)) clipped to [0, 255] (half to even), uint8 greyscale JPEG",
    "dequantisation": "f = q * 2 B / 255 - B (pixels per frame)",
    "bound": FLOW_BOUND,
}
_FRAME_RE = re.compile(r"^frame(\d{6})\.jpg$")


class FlowFormatError(ValueError):
    """A flow folder does not follow the community layout (message names the folder)."""


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of ``cv2.optflow.DualTVL1OpticalFlow_create`` (OpenCV's names and defaults)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def create(self) -> Any:
        """The OpenCV algorithm object."""
        cv2 = require_cv2()
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=self.tau, lambda_=self.lambda_, theta=self.theta, nscales=self.nscales, warps=self.warps,
            epsilon=self.epsilon, innnerIterations=self.inner_iterations,  # sic: OpenCV's spelling
            outerIterations=self.outer_iterations, scaleStep=self.scale_step, gamma=self.gamma,
            medianFiltering=self.median_filtering, useInitialFlow=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: OpenCV's defaults (graphfuse prepare ucf101 / hmdb51).
TVL1_DEFAULT = TVL1Params()
#: The synthetic data's preset: fewer scales and warps, looser stopping.
TVL1_FAST = TVL1Params(nscales=3, warps=2, epsilon=0.1, inner_iterations=10)


def require_cv2() -> Any:
    """The ``cv2`` module with ``cv2.optflow``, or an ImportError saying how to install it."""
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("optical flow and JPEG frames need OpenCV: pip install 'graphfuse[video]' "
                          "(or: pip install opencv-contrib-python-headless)") from exc
    if not hasattr(cv2, "optflow"):  # pragma: no cover - depends on the environment
        raise ImportError("cv2.optflow is missing: TV-L1 needs the contrib build; replace opencv-python "
                          "by opencv-contrib-python-headless")
    return cv2


# ---------------------------------------------------------------------------------------------
# quantisation
# ---------------------------------------------------------------------------------------------
def quantization_step(bound: float = FLOW_BOUND) -> float:
    """Pixels per quantisation step (40/255 for the default bound)."""
    return 2.0 * bound / 255.0


def quantize_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Flow in pixels/frame (any shape) -> uint8 codes ``round((f + B) * 255 / 2B)`` clipped.

    Raises:
        ValueError: a NaN or infinite value (the flow solver diverged), naming its position.
    """
    f = np.asarray(flow, dtype=np.float64)
    if not np.isfinite(f).all():
        idx = np.unravel_index(int(np.argmin(np.isfinite(f).reshape(-1))), f.shape)
        raise ValueError(f"flow value at index {tuple(int(i) for i in idx)} is {float(f[idx])}, not finite")
    q = np.rint((f + bound) * (255.0 / (2.0 * bound)))
    return np.clip(q, 0, 255).astype(np.uint8)


def dequantize_flow(codes: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """uint8 codes -> float32 pixels/frame ``q * 2B / 255 - B``."""
    q = np.asarray(codes)
    if q.dtype != np.uint8:
        raise ValueError(f"flow codes must be uint8, got {q.dtype}")
    return (q.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# TV-L1
# ---------------------------------------------------------------------------------------------
def to_gray(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB -> ``(T, H, W)`` uint8 grey (OpenCV's BT.601 weights), in one
    OpenCV call over the frames stacked as one tall image."""
    cv2 = require_cv2()
    f = np.ascontiguousarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {f.shape} {f.dtype}")
    t, h, w, _ = f.shape
    return cv2.cvtColor(f.reshape(t * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(t, h, w)


def tvl1_flow(gray: np.ndarray, params: TVL1Params = TVL1_DEFAULT) -> np.ndarray:
    """Forward TV-L1 flow between consecutive frames: ``(T, H, W)`` uint8 -> ``(T-1, H, W, 2)``
    float32 ``(u, v)`` pixels/frame (``u`` to the right, ``v`` down)."""
    g = np.asarray(gray)
    if g.ndim != 3 or g.dtype != np.uint8:
        raise ValueError(f"grey frames must be (T, H, W) uint8, got {g.shape} {g.dtype}")
    t, h, w = g.shape
    out = np.empty((max(t - 1, 0), h, w, 2), np.float32)
    algo = params.create()
    for k in range(t - 1):  # one solver call per frame pair (see the module docstring)
        out[k] = algo.calc(g[k], g[k + 1], None)
    return out


def compute_quantized_flow(frames: np.ndarray, params: TVL1Params = TVL1_DEFAULT,
                           bound: float = FLOW_BOUND) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """TV-L1 flow of RGB ``frames`` ``(T, H, W, 3)`` quantised: ``(u, v, stats)`` with ``u``, ``v``
    ``(T-1, H, W)`` uint8 and ``stats`` the fraction of values clipped at the bound and the
    largest magnitude seen (recorded per video in meta.json).

    Raises:
        ValueError: a non-finite flow value (naming the frame pair).
    """
    flow = tvl1_flow(to_gray(frames), params)
    finite = np.isfinite(flow)
    if not finite.all():
        k = int(np.argmin(finite.reshape(flow.shape[0], -1).all(axis=1)))
        raise ValueError(f"TV-L1 returned a non-finite flow between frames {k + 1} and {k + 2}")
    q = quantize_flow(flow, bound)
    absf = np.abs(flow)
    stats = {"clipped_fraction": float(np.mean(absf > bound)) if flow.size else 0.0,
             "max_abs": float(absf.max()) if flow.size else 0.0}
    return np.ascontiguousarray(q[..., 0]), np.ascontiguousarray(q[..., 1]), stats


# ---------------------------------------------------------------------------------------------
# folders of frames (ours and precomputed)
# ---------------------------------------------------------------------------------------------
def count_frames(folder: str | os.PathLike, what: str = "frame") -> int:
    """Number of ``frame%06d.jpg`` files in ``folder``, which must be numbered 1..n without gaps.

    Raises:
        FileNotFoundError: no such folder.
        FlowFormatError: no frame, a gap in the numbering, or a file not named ``frame%06d.jpg``.
    """
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: {what} folder not found")
    numbers = []
    for name in os.listdir(d):  # a loop over files
        m = _FRAME_RE.match(name)
        if m is None:
            if name.startswith("."):
                continue
            raise FlowFormatError(f"{d}: {name!r} is not named frame%06d.jpg")
        numbers.append(int(m.group(1)))
    if not numbers:
        raise FlowFormatError(f"{d}: no {what} images (frame%06d.jpg)")
    nums = np.sort(np.asarray(numbers))
    expected = np.arange(1, nums.size + 1)
    if not np.array_equal(nums, expected):
        k = int(np.argmax(nums != expected))
        raise FlowFormatError(f"{d}: {what} images are not numbered 1..{nums.size} without gaps "
                              f"(frame{int(expected[k]):06d}.jpg missing)")
    return int(nums.size)


def register_flow_video(flow_dir: str | os.PathLike, video: str, frame_size: tuple[int, int] | None = None) -> int:
    """Check a precomputed flow folder for one video and return its number of flow frames.

    Looks for ``flow_dir/u/<video>/`` and ``flow_dir/v/<video>/`` (the community layout), each
    numbered ``frame000001.jpg`` .. without gaps, with equal counts; when ``frame_size``
    ``(width, height)`` is given, the first ``u`` image must have that size (the RGB frames').

    Raises:
        FileNotFoundError / FlowFormatError naming the folder.
    """
    root = Path(flow_dir)
    nu = count_frames(root / "u" / video, "flow u")
    nv = count_frames(root / "v" / video, "flow v")
    if nu != nv:
        raise FlowFormatError(f"{root}: video {video!r} has {nu} u and {nv} v flow images")
    if frame_size is not None:
        cv2 = require_cv2()
        first = root / "u" / video / "frame000001.jpg"
        img = cv2.imread(str(first), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FlowFormatError(f"{first}: not a readable JPEG")
        if (img.shape[1], img.shape[0]) != tuple(frame_size):
            raise FlowFormatError(
                f"{first}: flow image is {img.shape[1]}x{img.shape[0]}, the RGB frames are "
                f"{frame_size[0]}x{frame_size[1]}; prepare with the --size the flow was computed at")
    return nu
