"""Official NTU pre-normalisation: hand-worked example, rotations, loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphfuse.data.ntu.normalize import angle_between, pre_normalize, rotation_matrix

# ---- rotation helpers ---------------------------------------------------------------------

def test_rotation_matrix_quarter_turns():
    # Counter-clockwise about +z by 90 degrees: x -> y, y -> -x.
    R = rotation_matrix([[0, 0, 1]], [math.pi / 2])[0]
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(R @ [0, 1, 0], [-1, 0, 0], atol=1e-15)
    # About +x by 90 degrees: y -> z. The axis length does not matter.
    R = rotation_matrix([[5, 0, 0]], [math.pi / 2])[0]
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    # Half turn about the diagonal of the xy plane swaps x and y and flips z.
    R = rotation_matrix([[1, 1, 0]], [math.pi])[0]
    np.testing.assert_allclose(R, [[0, 1, 0], [1, 0, 0], [0, 0, -1]], atol=1e-15)


def test_rotation_matrix_identity_rules():
    R = rotation_matrix([[1e-7, 2e-7, 3e-7], [0, 0, 1], [0, 1, 0]], [1.0, 5e-7, 0.3])
    np.testing.assert_array_equal(R[0], np.eye(3))  # sum |axis| < 1e-6
    np.testing.assert_array_equal(R[1], np.eye(3))  # |theta| < 1e-6
    assert not np.allclose(R[2], np.eye(3))


def test_alignment_invariant():
    # rotation_matrix(v x e_k, angle(v, e_k)) maps v onto the positive e_k axis.
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 3)).astype(np.float32)
    for k in (0, 2):
        e = np.eye(3)[k]
        R = rotation_matrix(np.cross(v, e), angle_between(v, k))
        w = np.einsum("nij,nj->ni", R, v.astype(np.float64))
        np.testing.assert_allclose(w / np.linalg.norm(w, axis=1, keepdims=True), np.tile(e, (200, 1)), atol=1e-6)
    assert angle_between(np.array([[1e-7, 0, 0]], np.float32), 2)[0] == 0.0  # official: tiny vector -> 0
    np.testing.assert_allclose(angle_between(np.array([[0, 0, -2.0]], np.float32), 2), [math.pi])


# ---- hand-worked example ------------------------------------------------------------------

def test_hand_worked_example():
    """N=1, T=4, V=25, M=2, with every step worked out by hand.

    Person 0: frame 0 empty, frames 1 and 2 present, frame 3 empty. Its first frame is
    empty, so frames 1, 2 move to 0, 1, and frames 2, 3 repeat frames 0, 1.
    Person 1: frames 0 and 2 present, frames 1 and 3 empty. Its first frame is present:
    no compaction; the last present frame is 2, so frame 3 repeats frame 0 (3 mod 3) and
    the middle gap (frame 1) stays empty.
    Centre: person 0's joint 1 of each (padded) frame. In person 0's first frame the spine
    (joint 1 - joint 0) points along +y: rotation about +x by 90 degrees, (x,y,z) -> (x,-z,y).
    The shoulders (joint 8 - joint 4) point along -z, i.e. along +y after that; the second
    rotation is about -z by 90 degrees, (a,b,c) -> (b,-a,c). In all: (x,y,z) -> (-z,-x,y).
    """
    rng = np.random.default_rng(3)
    T, V = 4, 25
    p0 = np.zeros((T, V, 3))
    for f in (1, 2):
        c = np.array([0.5, 0.2, 3.0]) + 0.1 * f
        p0[f] = c + rng.uniform(-0.4, 0.4, size=(V, 3))
        p0[f, 1] = c
        if f == 1:  # the frame that decides both rotations
            p0[f, 0] = c + [0, -0.3, 0]          # spine along +y
            p0[f, 4] = c + [0.05, 0.3, 0.2]      # left shoulder
            p0[f, 8] = c + [0.05, 0.3, -0.2]     # right shoulder: R - L = (0, 0, -0.4)
    p1 = np.zeros((T, V, 3))
    p1[0] = rng.uniform(-1, 1, size=(V, 3)) + [0, 0, 3]
    p1[2] = rng.uniform(-1, 1, size=(V, 3)) + [0, 0, 3]
    p1[2, 7] = 0.0  # an absent joint stays zero
    data = np.stack([p0, p1], axis=-1).transpose(2, 0, 1, 3)[None].astype(np.float32)  # (1, 3, T, V, 2)
    p0, p1 = data[0, ..., 0].transpose(1, 2, 0).astype(np.float64), data[0, ..., 1].transpose(1, 2, 0).astype(np.float64)

    padded0 = p0[[1, 2, 1, 2]]
    padded1 = p1[[0, 1, 2, 0]]
    centre = padded0[:, 1:2, :]
    c0 = padded0 - centre
    c1 = (padded1 - centre) * (padded1.sum(-1, keepdims=True) != 0)

    def rot(x):
        return np.stack([-x[..., 2], -x[..., 0], x[..., 1]], axis=-1)

    expected = np.stack([rot(c0), rot(c1)], axis=-1).transpose(2, 0, 1, 3)[None]
    out = pre_normalize(data)
    assert out.dtype == np.float32 and out.shape == data.shape
    np.testing.assert_allclose(out, expected, atol=2e-6)
    assert np.all(out[0, :, 1, :, 1] == 0)  # person 1's middle gap
    assert np.all(out[0, :, 2, 7, 1] == 0)  # absent joint
    assert np.all(out[0, :, :, 1, 0] == 0)  # person 0's centre joint


# ---- float64 plain-loop reference of the official algorithm ---------------------------------

def _ref_rotation(v: np.ndarray, e: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64)
    axis = np.cross(v, e)
    angle = 0.0 if np.abs(v).sum() < 1e-6 else math.acos(max(-1.0, min(1.0, float(v @ e / np.linalg.norm(v)))))
    if np.abs(axis).sum() < 1e-6 or abs(angle) < 1e-6:
        return np.eye(3)
    u = axis / np.linalg.norm(axis)
    # Rodrigues' formula for a counter-clockwise rotation by `angle` about u.
    K = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def _reference(data: np.ndarray) -> np.ndarray:
    s = data.transpose(0, 4, 2, 3, 1).astype(np.float64)  # N, M, T, V, C
    N, M, T, V, C = s.shape
    for n in range(N):
        for m in range(M):
            person = s[n, m]
            present = [t for t in range(T) if np.any(person[t] != 0)]
            if not present:
                continue
            if present[0] != 0:
                person[:] = np.concatenate([person[present], np.zeros((T - len(present), V, C))])
                present = list(range(len(present)))
            L = present[-1] + 1
            for t in range(L, T):
                person[t] = person[t % L]
        centre = s[n, 0, :, 1, :].copy()
        for m in range(M):
            if not np.any(s[n, m] != 0):
                continue
            for t in range(T):
                for v in range(V):
                    if np.any(s[n, m, t, v] != 0):
                        s[n, m, t, v] -= centre[t]
        for (a, b), e in (((0, 1), np.array([0.0, 0, 1])), ((4, 8), np.array([1.0, 0, 0]))):
            R = _ref_rotation(s[n, 0, 0, b] - s[n, 0, 0, a], e)
            for m in range(M):
                for t in range(T):
                    if np.any(s[n, m, t] != 0):
                        for v in range(V):
                            s[n, m, t, v] = R @ s[n, m, t, v]
    return s.transpose(0, 4, 2, 3, 1)


def _random_batch(rng, N=5, T=12, V=25):
    x = rng.normal(size=(N, 2, T, V, 3)) * 0.3 + [0.2, 0.1, 3.0]
    present = rng.random((N, 2, T)) < 0.75
    present[:, 0, rng.integers(0, T)] = True
    present[0, 0, :3] = False      # leading empty frames
    present[1, 0, -4:] = False     # trailing empty frames
    present[2, 1] = False          # a single-person sample
    x = x * present[..., None, None]
    x[3, 1, 5, 2] = 0.0            # one absent joint
    return x.transpose(0, 4, 2, 3, 1).astype(np.float32)


def test_matches_loop_reference():
    data = _random_batch(np.random.default_rng(1))
    before = data.copy()
    out = pre_normalize(data)
    np.testing.assert_array_equal(data, before)  # the input is not modified
    np.testing.assert_allclose(out, _reference(data), atol=1e-5)


def test_chunk_invariance_and_zero_sample():
    data = _random_batch(np.random.default_rng(2), N=6)
    data[4] = 0.0
    whole = pre_normalize(data)
    parts = np.concatenate([pre_normalize(data[:1]), pre_normalize(data[1:4]), pre_normalize(data[4:])])
    np.testing.assert_array_equal(whole, parts)
    assert not whole[4].any()


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, 3, T, V, M\)"):
        pre_normalize(np.zeros((2, 2, 4, 25, 2), np.float32))
