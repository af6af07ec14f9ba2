"""Image transforms of ML-GCN (torchvision.transforms.v2 functionals on uint8 tensors).

Released code (megvii-research/ML-GCN, ``engine.py: init_learning`` and ``util.py``):

* training: ``MultiScaleCrop(448, scales=(1.0, 0.875, 0.75, 0.66, 0.5), max_distort=2)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ImageNet ``Normalize``;
* evaluation: ``Warp(448)``, a plain resize to 448 x 448 that ignores the aspect ratio.

:class:`MultiScaleCrop` follows ``util.MultiScaleCrop`` exactly:

1. crop sides ``int(min(W, H) * s)`` for every scale ``s``; a side within 2 px of the output
   size is snapped to it (``abs(x - input_size) < 3``);
2. candidate ``(w, h)`` pairs: ``w`` from scale index ``j``, ``h`` from scale index ``i``,
   for all ``|i - j| <= max_distort`` (rows over ``h``, then ``w``, as the reference loops),
   one drawn uniformly: with the released ``max_distort=2`` the aspect ratio of a crop can
   reach 1 : 0.5 / 0.75 = 1.5 ("distortion up to 2" in the scale index);
3. offset: with ``fix_crop`` (default) one of the fixed positions of ``fill_fix_offset``
   drawn uniformly, with ``w_step = (W - w) // 4``, ``h_step = (H - h) // 4``: the 4
   corners and the centre, and with ``more_fix_crop`` (default) also the 4 edge centres and
   the 4 quarter points, 13 in all (duplicates kept, as the reference keeps them);
   without ``fix_crop`` a uniform integer offset;
4. the crop (zero-padded where a snapped side exceeds the image, as PIL's ``crop`` pads)
   is resized to ``size x size`` (bilinear; PIL's bilinear reduction is antialiased, so
   ``antialias=True`` here).

The class default of the reference, ``scales=[1, 875, .75, .66]``, is a typo the engine
always overrides; graphfuse defaults to the engine's values. Randomness comes from the
``numpy.random.Generator`` the dataset passes (seeded per item by the epoch sampler), not
from Python's ``random``, so augmentation is reproducible and resumable.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MLGCN_SCALES",
    "ImageTransform",
    "MultiScaleCrop",
    "Warp",
    "build_transform",
    "decode_image_file",
]

#: ImageNet mean / std (torchvision's, and ML-GCN's ``image_normalization_mean/std``).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Crop scales of ML-GCN's training transform (``engine.py``).
MLGCN_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66, 0.5)


#: torchvision's deprecation warning of its image decoders (see :func:`decode_image_file`).
_DECODE_DEPRECATION = {"action": "ignore", "category": DeprecationWarning, "module": r"torchvision\.io"}


def decode_image_file(path: str | os.PathLike, silence_deprecation: bool = True) -> torch.Tensor:
    """``(3, H, W)`` uint8 RGB of a JPEG file, decoded with ``torchvision.io.decode_jpeg``
    (grey and CMYK JPEGs are converted to RGB).

    torchvision 0.29 marks its image decoders deprecated in favour of TorchCodec; the warning
    is silenced here (once per call, it would flood every epoch's log) until graphfuse moves;
    ``silence_deprecation=False`` leaves that to the caller (``warnings.catch_warnings`` is not
    thread-safe: threaded callers silence it once around their pool).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file (missing, not a JPEG, corrupt).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    try:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if silence_deprecation:
            with warnings.catch_warnings():
                warnings.filterwarnings(**_DECODE_DEPRECATION)
                img = decode_jpeg(buf, mode=ImageReadMode.RGB)
        else:
            img = decode_jpeg(buf, mode=ImageReadMode.RGB)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0].rsplit(",", 1)[-1].strip() if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: corrupt JPEG ({reason})") from None
    if img.ndim != 3 or img.shape[0] != 3 or min(img.shape[1:]) < 1:
        raise ValueError(f"{path}: decoded to an image of shape {tuple(img.shape)}")
    return img


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    return F.resize(img, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)


class MultiScaleCrop:
    """ML-GCN's multi-scale crop (module docstring), on a ``(3, H, W)`` uint8 tensor.

    Args:
        size: output side (448).
        scales: crop sides as fractions of the shorter image side.
        max_distort: largest difference of the width and height scale indices.
        fix_crop: offsets from the fixed grid (else uniform).
        more_fix_crop: 13 fixed offsets instead of 5.
    """

    def __init__(self, size: int, scales: Sequence[float] = MLGCN_SCALES, max_distort: int = 2,
                 fix_crop: bool = True, more_fix_crop: bool = True) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be fractions in (0, 1], got {tuple(scales)}")
        if max_distort < 0:
            raise ValueError(f"max_distort must be >= 0, got {max_distort}")
        self.size = int(size)
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self.fix_crop = bool(fix_crop)
        self.more_fix_crop = bool(more_fix_crop)

    def crop_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """Candidate ``(crop_w, crop_h)`` pairs for a ``width x height`` image, in the reference's order."""
        base = min(width, height)
        sides = [int(base * s) for s in self.scales]
        sides = [self.size if abs(x - self.size) < 3 else x for x in sides]
        return [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= self.max_distort]

    @staticmethod
    def fixed_offsets(more_fix_crop: bool, width: int, height: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
        """The ``(x, y)`` offsets of ``fill_fix_offset``: 5, or 13 with ``more_fix_crop``."""
        ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
        out = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
        if more_fix_crop:
            out += [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0),
                    (ws, hs), (3 * ws, hs), (ws, 3 * hs), (3 * ws, 3 * hs)]
        return out

    def sample(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``(crop_w, crop_h, x, y)`` drawn as the reference draws them."""
        pairs = self.crop_sizes(width, height)
        cw, ch = pairs[int(rng.integers(len(pairs)))]
        if self.fix_crop:
            offsets = self.fixed_offsets(self.more_fix_crop, width, height, cw, ch)
            x, y = offsets[int(rng.integers(len(offsets)))]
        else:
            x = int(rng.integers(0, max(width - cw, 0) + 1))
            y = int(rng.integers(0, max(height - ch, 0) + 1))
        return cw, ch, x, y

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``img: (3, H, W)`` uint8 -> ``(3, size, size)`` uint8."""
        height, width = int(img.shape[-2]), int(img.shape[-1])
        cw, ch, x, y = self.sample(width, height, rng)
        return _resize(F.crop(img, y, x, ch, cw), self.size)

    def __repr__(self) -> str:
        return (f"MultiScaleCrop(size={self.size}, scales={self.scales}, max_distort={self.max_distort}, "
                f"fix_crop={self.fix_crop}, more_fix_crop={self.more_fix_crop})")


class Warp:
    """ML-GCN's ``Warp``: resize to ``size x size`` ignoring the aspect ratio (uint8 in and out)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)

    def __call__(self, img: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return _resize(img, self.size)

    def __repr__(self) -> str:
        return f"Warp(size={self.size})"


class ImageTransform:
    """A geometric step (:class:`MultiScaleCrop` or :class:`Warp`), an optional random
    horizontal flip (p = 0.5), then float conversion and ImageNet normalisation.

    ``__call__(img (3, H, W) uint8, rng) -> (3, S, S) float32``; ``rng`` may be None only when
    nothing is random (a :class:`Warp` without flip).
    """

    def __init__(self, geometric: MultiScaleCrop | Warp, flip: bool,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.geometric = geometric
        self.flip = bool(flip)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    @property
    def random(self) -> bool:
        """Whether the transform draws from ``rng``."""
        return self.flip or isinstance(self.geometric, MultiScaleCrop)

    def __call__(self, img: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        if self.random and rng is None:
            rng = np.random.default_rng()  # unseeded item access (no epoch sampler): not reproducible
        out = self.geometric(img, rng)  # type: ignore[arg-type]
        if self.flip and rng.random() < 0.5:  # type: ignore[union-attr]
            out = F.horizontal_flip(out)
        out = F.to_dtype(out, torch.float32, scale=True)
        return F.normalize(out, self.mean, self.std)

    def __repr__(self) -> str:
        return f"ImageTransform({self.geometric!r}, flip={self.flip})"


def build_transform(
    kind: Literal["mlgcn", "resize", "test"],
    size: int,
    scales: Sequence[float] = MLGCN_SCALES,
    max_distort: int = 2,
    fix_crop: bool = True,
    more_fix_crop: bool = True,
    flip: bool = True,
) -> ImageTransform:
    """``'mlgcn'``: ML-GCN's training transform (multi-scale crop, flip); ``'resize'``: a
    plain resize plus flip (a weaker augmentation); ``'test'``: ML-GCN's evaluation
    transform (:class:`Warp`, no flip)."""
    if kind == "mlgcn":
        return ImageTransform(MultiScaleCrop(size, scales, max_distort, fix_crop, more_fix_crop), flip)
    if kind == "resize":
        return ImageTransform(Warp(size), flip)
    if kind == "test":
        return ImageTransform(Warp(size), False)
    raise ValueError(f"transform must be 'mlgcn', 'resize' or 'test', got {kind!r}")
