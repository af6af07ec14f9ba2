"""The official NTU pre-normalisation, vectorised.

Re-implements ``pre_normalization`` of the official Shift-GCN ``data_gen/preprocess.py``
(with ``data_gen/rotation.py``; the same code is in 2s-AGCN), step for step and with its
float32/float64 arithmetic path, so that the prepared arrays equal the official ones:

1. *Pad null frames*, per person. A person whose first frame is empty has its non-empty
   frames moved to the front (middle gaps included). Then the frames after the last
   non-empty frame ``L - 1`` are filled by repeating frames ``[0, L)`` cyclically
   (``frame t <- frame t mod L``). Empty frames in the middle stay empty.
2. *Centre*: subtract joint 1 (spine mid) of person 0, frame by frame, from every person,
   then multiply by the mask of joints whose coordinates sum to a non-zero value (taken
   before centring), so absent joints stay zero.
3. *Align the spine to +z*: the bone from joint 0 to joint 1 of person 0 in frame 0 is
   rotated onto +z (axis ``v x z``, angle ``arccos(clip(v_hat . z))``), Euler-Rodrigues
   matrix; identity when ``sum|axis| < 1e-6`` or ``|angle| < 1e-6`` (or ``sum|v| < 1e-6``).
   The rotation is applied to every non-empty frame of every non-empty person.
4. *Align the shoulders to +x*: the same with ``joint 8 - joint 4`` (right minus left
   shoulder) of person 0 in frame 0, onto +x, after step 3. Nothing re-orthogonalises, so
   the spine may leave +z again.

"Empty" follows the official tests: a frame is empty when the sum of its coordinates is
0, a person when all its frames are. Arithmetic path (as the official code): data float32,
the vector ``v`` float32, its norm ``sqrt(v.v)`` float32 (numpy ``dot``, reproduced with
a batched ``matmul`` that numpy routes to the same BLAS call), ``v / |v|`` float32, the
angle, axis and matrix float64, ``R @ joint`` float64 rounded back to float32.

Every step works on a whole chunk of samples at once; samples are independent, so a
dataset can be normalised chunk by chunk.
"""

from __future__ import annotations

import numpy as np

from graphfuse.graphs import ntu25

__all__ = ["pre_normalize", "rotation_matrix", "angle_between", "pad_null_frames", "center", "align_to_axis"]


def rotation_matrix(axis: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Euler-Rodrigues matrices of counter-clockwise rotations (official ``rotation.py``).

    ``axis``: (n, 3), any length; ``theta``: (n,) radians. Returns (n, 3, 3) float64; the
    identity where ``sum|axis| < 1e-6`` or ``|theta| < 1e-6``.
    """
    axis = np.asarray(axis, dtype=np.float64).reshape(-1, 3)
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    identity = (np.abs(axis).sum(-1) < 1e-6) | (np.abs(theta) < 1e-6)
    # |axis| through matmul: the same BLAS dot as the official np.dot(axis, axis).
    sq = np.matmul(axis[:, None, :], axis[:, :, None])[:, 0, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = axis / np.sqrt(np.where(identity, 1.0, sq))[:, None]
    a = np.cos(theta / 2.0)
    b, c, d = (-unit * np.sin(theta / 2.0)[:, None]).T
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    R = np.stack([
        np.stack([aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)], -1),
        np.stack([2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)], -1),
        np.stack([2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc], -1),
    ], -2)
    return np.where(identity[:, None, None], np.eye(3), R)


def angle_between(v: np.ndarray, k: int) -> np.ndarray:
    """Angle (float64 radians) between each row of ``v`` (n, 3) and the unit axis ``e_k``.

    As the official ``angle_between``: 0 when ``sum|v| < 1e-6``; else
    ``arccos(clip(v_hat[k], -1, 1))`` with ``v_hat = v / |v|`` in ``v``'s dtype.
    """
    v = np.asarray(v)
    small = np.abs(v).sum(-1) < 1e-6
    norm = np.sqrt(np.matmul(v[:, None, :], v[:, :, None])[:, 0, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (v[:, k] / norm).astype(np.float64)
    return np.where(small, 0.0, np.arccos(np.clip(np.where(small, 1.0, cos), -1.0, 1.0)))


def _frame_nonempty(x: np.ndarray) -> np.ndarray:
    """(N, M, T) bool: frames whose coordinates do not sum to 0 (``x``: (N, M, T, V, C))."""
    return x.sum(-1).sum(-1) != 0


def pad_null_frames(x: np.ndarray) -> np.ndarray:
    """Step 1 on ``x``: (N, M, T, V, C) float32; returns a new array."""
    T = x.shape[2]
    t = np.arange(T)
    nonempty = _frame_nonempty(x)
    person = nonempty.any(-1)
    # Persons whose first frame is empty: stable-move the non-empty frames to the front.
    compact = person & ~nonempty[..., 0]
    order = np.argsort(~nonempty, axis=-1, kind="stable")
    src = np.where(compact[..., None], order, t)
    keep = np.where(compact[..., None], t < nonempty.sum(-1, keepdims=True), True)
    x = np.take_along_axis(x, src[..., None, None], axis=2)
    x = np.where(keep[..., None, None], x, np.float32(0))
    nonempty = np.take_along_axis(nonempty, src, axis=-1) & keep
    # Fill the frames after the last non-empty one with frames [0, L) repeated.
    last = T - np.argmax(nonempty[..., ::-1], axis=-1)  # L; T when nothing is empty at the end
    L = np.where(person, last, T)
    src = np.where(t < L[..., None], t, t % np.maximum(L, 1)[..., None])
    return np.take_along_axis(x, src[..., None, None], axis=2)


def center(x: np.ndarray, center_joint: int = ntu25.CENTER_JOINT) -> np.ndarray:
    """Step 2 on ``x``: (N, M, T, V, C) float32; returns a new array."""
    main = x[:, 0:1, :, center_joint:center_joint + 1, :]  # person 0's joint, every frame
    mask = (x.sum(-1) != 0)[..., None]
    person = _frame_nonempty(x).any(-1)
    return np.where(person[..., None, None, None], (x - main) * mask, x)


def align_to_axis(x: np.ndarray, joints: tuple[int, int], k: int) -> np.ndarray:
    """Steps 3/4 on ``x``: (N, M, T, V, C) float32; returns a new array.

    Rotates ``x[:, 0, 0, joints[1]] - x[:, 0, 0, joints[0]]`` onto the unit axis ``e_k``.
    """
    target = [0, 0, 0]
    target[k] = 1
    v = x[:, 0, 0, joints[1]] - x[:, 0, 0, joints[0]]  # (N, 3) float32
    axis = np.cross(v, target)  # float64, as np.cross(float32, int list) in the official code
    R = rotation_matrix(axis, angle_between(v, k))  # (N, 3, 3) float64
    frames = _frame_nonempty(x)
    apply = frames & frames.any(-1, keepdims=True)
    # Batched matmul: numpy calls the same BLAS matrix-vector product per joint as the
    # official np.dot(matrix, joint); float64 result rounded to float32 on assignment.
    rotated = np.matmul(R[:, None, None, None], x[..., None])[..., 0].astype(np.float32)
    return np.where(apply[..., None, None], rotated, x)


def pre_normalize(
    data: np.ndarray,
    zaxis: tuple[int, int] = ntu25.Z_ALIGN_JOINTS,
    xaxis: tuple[int, int] = ntu25.X_ALIGN_JOINTS,
    center_joint: int = ntu25.CENTER_JOINT,
) -> np.ndarray:
    """Official NTU pre-normalisation of ``data``: (N, C=3, T, V, M) -> same shape, float32.

    The four steps of the module docstring, each applied to all samples, persons, frames
    and joints at once. ``data`` is not modified (the official function works in place);
    a non-float32 input is converted to float32 first, since the official pipeline stores
    float32 before normalising. ``zaxis = (bottom, top)`` and ``xaxis = (left, right)``
    joint indices; the official call passes ``xaxis=[8, 4]`` and uses ``[8] - [4]``.
    """
    data = np.asarray(data)
    if data.ndim != 5 or data.shape[1] != 3:
        raise ValueError(f"pre_normalize expects (N, 3, T, V, M), got shape {data.shape}")
    x = np.ascontiguousarray(data.transpose(0, 4, 2, 3, 1), dtype=np.float32)  # N, M, T, V, C
    if x.shape[0] == 0:
        return np.zeros(data.shape, dtype=np.float32)
    x = pad_null_frames(x)
    x = center(x, center_joint)
    x = align_to_axis(x, zaxis, 2)
    x = align_to_axis(x, xaxis, 0)
    return np.ascontiguousarray(x.transpose(0, 4, 2, 3, 1))
