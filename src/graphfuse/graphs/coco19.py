"""The 19-node pedestrian skeleton of Pedestrian Graph+: COCO-17 plus neck and mid-hip.

Nodes 0-16 are the COCO-17 keypoints in COCO order; node 17 is the neck and node 18 the
mid-hip (pelvis). The edge list is the ``inward_ori_index`` list of the ``Graph`` class in
``models/utils.py`` of the official Pedestrian Graph+ code (RodrigoGantier/Pedestrian_graph_plus,
MIT; Cadena et al., IEEE T-ITS 2022): the neck links the nose and both shoulders, the mid-hip
links both hips and the neck. (The released model itself learns its adjacency from the
identity; the edges matter for graph layers that use the skeleton.)

This module also names the keypoint orders of the pose estimators whose output graphfuse
reads, so that conversion to the 19 nodes goes *by joint name*:

* OpenPose BODY_25 and OpenPose COCO-18 (``doc/02_output.md`` of CMU-Perceptual-Computing-Lab/openpose);
  the 36-D poses of the PedestrianActionBenchmark (Kotseruba et al., WACV 2021) are OpenPose COCO-18
  (see :mod:`graphfuse.data.intention.poses`);
* AlphaPose Halpe-26 (Fang-Haoshu/Halpe-FullBody ``README.md``), whose first 17 joints are COCO-17.
"""

from __future__ import annotations

import numpy as np

NUM_NODES = 19

#: Node names, in node order (COCO-17 order, then neck, mid_hip).
NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
    "neck", "mid_hip",
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
NECK = 17
MID_HIP = 18
#: The nodes whose midpoint gives the neck / the mid-hip when a source does not have them.
NECK_FROM: tuple[int, int] = (INDEX["left_shoulder"], INDEX["right_shoulder"])
MID_HIP_FROM: tuple[int, int] = (INDEX["left_hip"], INDEX["right_hip"])

#: Undirected skeleton edges (0-based), in the order and orientation of PedGraph+'s
#: ``Graph.inward_ori_index`` (pairs are (i, j) there; ``A[j, i] = 1`` for the inward graph).
EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4),
    (17, 5), (17, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (18, 11), (18, 12),
    (11, 13), (12, 14), (13, 15), (14, 16),
    (0, 17), (17, 18),
)

#: OpenPose BODY_25 keypoint order, with our names (``MidHip`` -> "mid_hip").
BODY25_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "mid_hip",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
#: OpenPose COCO-18 keypoint order (no mid-hip).
COCO18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
#: AlphaPose Halpe-26 body keypoint order ("Hip" is the pelvis -> "mid_hip").
HALPE26_NAMES: tuple[str, ...] = NAMES[:17] + (
    "head", "neck", "mid_hip",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)

#: name -> index in each source order.
BODY25_INDEX: dict[str, int] = {name: i for i, name in enumerate(BODY25_NAMES)}
COCO18_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO18_NAMES)}
HALPE26_INDEX: dict[str, int] = {name: i for i, name in enumerate(HALPE26_NAMES)}


def source_indices(source_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """For each of the 19 nodes, its index in ``source_names``, or -1 where the source lacks it.

    Returns (19,) int64. E.g. ``source_indices(COCO18_NAMES)[MID_HIP] == -1`` (to be computed as
    the midpoint of the hips).
    """
    lookup = {name: i for i, name in enumerate(source_names)}
    return np.array([lookup.get(name, -1) for name in NAMES], dtype=np.int64)


def neighbours() -> list[list[int]]:
    """Adjacency lists (0-based, sorted) of the 19-node skeleton."""
    adj: list[set[int]] = [set() for _ in range(NUM_NODES)]
    for a, b in EDGES:
        adj[a].add(b)
        adj[b].add(a)
    return [sorted(s) for s in adj]


def flip_permutation() -> np.ndarray:
    """(19,) int64 ``perm`` such that ``pose[..., perm, :]`` swaps left and right joints
    (for a horizontal flip, together with ``x -> width - x``)."""
    swapped = [n.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_") for n in NAMES]
    return np.array([INDEX[n] for n in swapped], dtype=np.int64)
