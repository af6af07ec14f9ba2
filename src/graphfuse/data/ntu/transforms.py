"""Per-sample transforms of skeleton sequences.

A transform is a callable ``(x, num_frames, rng) -> x'`` with ``x: (C, T, V, M)`` a numpy
array, ``num_frames`` the number of valid (unpadded) frames of the sample and ``rng`` a
``numpy.random.Generator`` seeded per item by :class:`graphfuse.data.samplers.EpochSeededSampler`
(or None for deterministic transforms). A transform that changes the number of valid frames
says so with a method ``valid_frames(num_frames) -> int``, which :class:`Compose` uses to
pass the right count to the next transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["UniformSample", "FrameSubsample", "Compose"]


class UniformSample:
    """Uniform temporal sampling of one clip, after PYSKL's ``UniformSampleFrames``.

    Follows ``pyskl/datasets/pipelines/sampling.py`` (kennymckormick/pyskl) with
    ``num_clips=1`` and ``p_interval=1``. Only the valid part ``[0, num_frames)`` of the
    sequence is sampled (not the zero or repeat padding up to 300 frames). With
    ``n = num_frames`` and ``L = clip_len``:

    * ``n < L``: the sequence is looped: ``(start + arange(L)) % n`` with ``start`` uniform
      in ``[0, n)`` for training and ``start = 0`` in test mode.
    * ``L <= n < 2L``: ``n - L`` of the ``L + 1`` gaps are chosen without replacement and
      each chosen gap skips one frame: ``arange(L) + cumsum(skip)[:-1]``; every step is 1
      or 2 frames, i.e. one frame from each of ``L`` segments of size 1 or 2.
    * ``n >= 2L``: segment boundaries ``b_i = i * n // L`` (``i = 0..L``), one frame
      uniformly inside each ``[b_i, b_{i+1})``.

    In training the random draws come from the per-item generator. In test mode they come
    from a fresh ``numpy.random.RandomState(seed)`` making the same calls in the same order
    as PYSKL (which re-seeds the global legacy RNG with 255 and draws the unused
    ``p_interval`` ratio and offset first), so the test indices equal PYSKL's.

    Args:
        clip_len: number of output frames ``L`` (PYSKL NTU configs: 100).
        test_mode: deterministic sampling for validation/test.
        seed: seed of the test-mode sampling (PYSKL: 255).

    Call: ``x: (C, T, V, M)`` -> ``(C, clip_len, V, M)``.
    """

    def __init__(self, clip_len: int, test_mode: bool = False, seed: int = 255) -> None:
        if int(clip_len) < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        self.clip_len = int(clip_len)
        self.test_mode = bool(test_mode)
        self.seed = int(seed)

    def frame_indices(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(clip_len,)`` int64 indices into ``[0, num_frames)``.

        ``rng`` is required in training mode and ignored in test mode.
        """
        n, L = int(num_frames), self.clip_len
        if n < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if self.test_mode:
            rs = np.random.RandomState(self.seed)
            # PYSKL draws the p_interval ratio and the crop offset even when p_interval=1;
            # replay them so that the following draws match its indices exactly.
            rs.rand()
            rs.randint(1)
            if n < L:
                start = 0
            elif n < 2 * L:
                skips = rs.choice(L + 1, n - L, replace=False)
            else:
                bounds = np.arange(L + 1, dtype=np.int64) * n // L
                offsets = rs.randint(np.diff(bounds))
        else:
            if rng is None:
                raise ValueError("UniformSample in training mode needs a numpy Generator (rng)")
            if n < L:
                start = int(rng.integers(n))
            elif n < 2 * L:
                skips = rng.choice(L + 1, n - L, replace=False)
            else:
                bounds = np.arange(L + 1, dtype=np.int64) * n // L
                offsets = rng.integers(np.diff(bounds))

        if n < L:
            return (start + np.arange(L, dtype=np.int64)) % n
        if n < 2 * L:
            step = np.zeros(L + 1, dtype=np.int64)
            step[np.asarray(skips, dtype=np.int64)] = 1
            return np.arange(L, dtype=np.int64) + np.cumsum(step)[:-1]
        return bounds[:-1] + np.asarray(offsets, dtype=np.int64)

    def valid_frames(self, num_frames: int) -> int:
        """Every output frame is a valid frame: ``clip_len``."""
        return self.clip_len

    def __call__(self, x: np.ndarray, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.ndim != 4:
            raise ValueError(f"UniformSample expects x shaped (C, T, V, M), got {x.shape}")
        if not 1 <= num_frames <= x.shape[1]:
            raise ValueError(f"num_frames {num_frames} outside [1, {x.shape[1]}] (T of the input)")
        return x[:, self.frame_indices(num_frames, rng)]

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(clip_len={self.clip_len}, test_mode={self.test_mode}, seed={self.seed})"


class FrameSubsample:
    """Keep every ``stride``-th frame: ``x[:, ::stride]`` (the research notes' ``reduce_frame``).

    Applied to the whole stored sequence (valid frames and padding alike), so frame ``0``
    is always kept and the output has ``ceil(T / stride)`` frames, of which
    ``ceil(num_frames / stride)`` are valid (:meth:`valid_frames`). Deterministic: the same
    frames in training and evaluation.

    Args:
        stride: keep one frame in ``stride`` (1 = identity).

    Call: ``x: (C, T, V, M)`` -> ``(C, ceil(T / stride), V, M)``.
    """

    def __init__(self, stride: int) -> None:
        if isinstance(stride, bool) or int(stride) != stride or int(stride) < 1:
            raise ValueError(f"frame stride must be an integer >= 1, got {stride!r}")
        self.stride = int(stride)

    def valid_frames(self, num_frames: int) -> int:
        """Valid frames after subsampling ``num_frames`` valid frames: ``ceil(num_frames / stride)``."""
        return -(-int(num_frames) // self.stride)

    def __call__(self, x: np.ndarray, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.ndim != 4:
            raise ValueError(f"FrameSubsample expects x shaped (C, T, V, M), got {x.shape}")
        if not 1 <= num_frames <= x.shape[1]:
            raise ValueError(f"num_frames {num_frames} outside [1, {x.shape[1]}] (T of the input)")
        return x[:, :: self.stride]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stride={self.stride})"


class Compose:
    """Apply transforms in order, updating the number of valid frames between them.

    After a transform with a ``valid_frames(n)`` method the next one receives
    ``valid_frames(n)`` valid frames; other transforms leave the count unchanged for the next
    (a temporal sampler such as :class:`UniformSample` is therefore the last temporal step).
    """

    def __init__(self, transforms: Sequence[Callable[..., np.ndarray]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        n = int(num_frames)
        for t in self.transforms:
            x = t(x, n, rng)
            valid = getattr(t, "valid_frames", None)
            if valid is not None:
                n = int(valid(n))
        return x

    def valid_frames(self, num_frames: int) -> int:
        n = int(num_frames)
        for t in self.transforms:
            valid = getattr(t, "valid_frames", None)
            if valid is not None:
                n = int(valid(n))
        return n

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transforms!r})"
