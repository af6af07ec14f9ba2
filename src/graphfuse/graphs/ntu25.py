"""The 25-joint Kinect v2 skeleton of NTU RGB+D.

Joint indices here are 0-based; the dataset documentation and the official bone list are
1-based. Source: the NTU RGB+D readme (Shahroudy et al., CVPR 2016) and the bone pairs of
the official Shift-GCN ``data_gen/gen_bone_data.py`` (2s-AGCN lineage).
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 25

JOINT_NAMES: tuple[str, ...] = (
    "spine_base", "spine_mid", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
    "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
)

#: Joint used to centre a skeleton in the official pre-normalisation ("spine mid").
CENTER_JOINT = 1
#: Bone aligned with +z in the official pre-normalisation: spine base -> spine mid.
Z_ALIGN_JOINTS = (0, 1)
#: Vector aligned with +x: left shoulder -> right shoulder.
X_ALIGN_JOINTS = (4, 8)

#: (child, parent) pairs, 1-based, in the official order. Every joint is a child exactly
#: once; joint 21 (spine shoulder) is its own parent, so its bone is zero.
BONE_PAIRS_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (21, 21), (23, 8), (24, 25), (25, 12),
)


def bone_parents() -> np.ndarray:
    """``parent[v]`` (0-based) such that ``bone[..., v] = joint[..., v] - joint[..., parent[v]]``."""
    parent = np.empty(NUM_JOINTS, dtype=np.int64)
    for child, par in BONE_PAIRS_1BASED:
        parent[child - 1] = par - 1
    return parent


#: Undirected skeleton edges (0-based), i.e. the bone pairs without the self pair.
EDGES: tuple[tuple[int, int], ...] = tuple((c - 1, p - 1) for c, p in BONE_PAIRS_1BASED if c != p)


def neighbours() -> list[list[int]]:
    """Adjacency lists (0-based, sorted) of the NTU skeleton graph."""
    adj: list[set[int]] = [set() for _ in range(NUM_JOINTS)]
    for a, b in EDGES:
        adj[a].add(b)
        adj[b].add(a)
    return [sorted(s) for s in adj]
