"""Derived skeleton streams (bones, motion), numpy only.

Formulas of the official Shift-GCN ``data_gen/gen_bone_data.py`` and
``data_gen/gen_motion_data.py``. Used on the fly by :class:`graphfuse.data.ntu.dataset.SkeletonDataset`
and by the NTU preparation when streams are stored (which must not import torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphfuse.graphs import ntu25

__all__ = ["STREAMS", "bone", "motion", "compute_stream"]

STREAMS: tuple[str, ...] = ("joint", "bone", "joint_motion", "bone_motion")


def bone(joint: np.ndarray, parents: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
    """Bone vectors ``bone[..., v, :] = joint[..., v, :] - joint[..., parent[v], :]``.

    Args:
        joint: ``(..., C, T, V, M)`` joint coordinates (leading batch dims allowed).
        parents: ``(V,)`` 0-based parent of every joint; default the NTU bone list of the
            official ``gen_bone_data.py`` (:func:`graphfuse.graphs.ntu25.bone_parents`), in
            which joint 21 (spine shoulder) is its own parent, so its bone is zero.

    Returns:
        ``(..., C, T, V, M)`` array of the input dtype.
    """
    parents = ntu25.bone_parents() if parents is None else np.asarray(parents, dtype=np.int64)
    if joint.ndim < 4:
        raise ValueError(f"expected joints shaped (..., C, T, V, M), got shape {joint.shape}")
    if parents.shape != (joint.shape[-2],):
        raise ValueError(f"parents has shape {parents.shape}, expected ({joint.shape[-2]},)")
    return joint - np.take(joint, parents, axis=-2)


def motion(x: np.ndarray) -> np.ndarray:
    """Temporal difference ``m[..., t, :, :] = x[..., t+1, :, :] - x[..., t, :, :]``, last frame 0.

    This is the official ``gen_motion_data.py`` formula. It is applied to the whole padded
    sequence (all ``T`` frames, before any temporal sampling), as the official arrays are.

    Args:
        x: ``(..., C, T, V, M)``.

    Returns:
        ``(..., C, T, V, M)`` array of the input dtype.
    """
    if x.ndim < 4:
        raise ValueError(f"expected (..., C, T, V, M), got shape {x.shape}")
    out = np.zeros_like(x)
    out[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    return out


def compute_stream(
    joint: np.ndarray, stream: str, parents: np.ndarray | Sequence[int] | None = None
) -> np.ndarray:
    """Derive ``stream`` from joint coordinates.

    Args:
        joint: ``(..., C, T, V, M)`` joints (one sample or a batch).
        stream: one of ``'joint'``, ``'bone'``, ``'joint_motion'``, ``'bone_motion'``.
        parents: bone parents, see :func:`bone`.

    Returns:
        ``(..., C, T, V, M)``. ``'joint'`` returns the input itself (no copy).
    """
    if stream == "joint":
        return joint
    if stream == "bone":
        return bone(joint, parents)
    if stream == "joint_motion":
        return motion(joint)
    if stream == "bone_motion":
        return motion(bone(joint, parents))
    raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
