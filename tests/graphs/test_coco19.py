"""The 19-node PedGraph+ skeleton and the source keypoint orders."""

import numpy as np

from graphfuse.graphs import coco19


def test_nodes_and_edges():
    assert coco19.NUM_NODES == len(coco19.NAMES) == 19
    assert coco19.NAMES[:5] == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert (coco19.NAMES[coco19.NECK], coco19.NAMES[coco19.MID_HIP]) == ("neck", "mid_hip")
    # PedGraph+ models/utils.py Graph: 18 edges, a tree over the 19 nodes
    assert len(coco19.EDGES) == 18 and len(set(coco19.EDGES)) == 18
    nb = coco19.neighbours()
    assert nb[17] == [0, 5, 6, 18]  # neck: nose, shoulders, mid-hip
    assert nb[18] == [11, 12, 17]  # mid-hip: hips, neck
    assert nb[0] == [1, 2, 17]
    # connected: a walk from node 0 reaches all nodes
    seen, todo = {0}, [0]
    while todo:
        for m in nb[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    assert seen == set(range(19))


def test_source_orders_by_name():
    # OpenPose doc/02_output.md orders, written out independently here
    body25 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
              "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
              "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]
    assert len(coco19.BODY25_NAMES) == 25 and len(coco19.COCO18_NAMES) == 18
    idx = coco19.source_indices(coco19.BODY25_NAMES)
    assert body25[idx[coco19.INDEX["left_wrist"]]] == "LWrist"
    assert body25[idx[coco19.INDEX["right_ankle"]]] == "RAnkle"
    assert body25[idx[coco19.MID_HIP]] == "MidHip" and body25[idx[coco19.NECK]] == "Neck"
    assert coco19.BODY25_INDEX["right_eye"] == 15 and coco19.COCO18_INDEX["right_eye"] == 14
    c18 = coco19.source_indices(coco19.COCO18_NAMES)
    assert c18[coco19.MID_HIP] == -1 and c18[coco19.NECK] == 1
    assert (c18[:17] >= 0).all()
    assert coco19.HALPE26_INDEX["neck"] == 18 and coco19.HALPE26_INDEX["mid_hip"] == 19
    assert list(coco19.source_indices(coco19.HALPE26_NAMES)) == list(range(17)) + [18, 19]


def test_flip_permutation():
    perm = coco19.flip_permutation()
    assert perm[1] == 2 and perm[5] == 6 and perm[16] == 15 and perm[0] == 0 and perm[17] == 17
    assert np.array_equal(perm[perm], np.arange(19))
