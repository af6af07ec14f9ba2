"""ML-GCN's label graph on a hand-worked 4-class example (both forms), and COCO's groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphfuse.graphs.label_graph import (
    COCO_SUPERCATEGORIES,
    binary_correlation,
    coco_class_names,
    coco_supercategories,
    conditional_probability,
    group_permutation,
    label_adjacency,
    normalize_released,
    paper_adjacency,
    propagation_matrix,
    released_adjacency,
)

# Training images per class and pairs (symmetric, zero diagonal).
COUNTS = np.array([10, 5, 4, 2])
CO = np.array([[0, 4, 1, 2], [4, 0, 2, 0], [1, 2, 0, 0], [2, 0, 0, 0]])


def test_conditional_probability_and_threshold_by_hand() -> None:
    p = conditional_probability(COUNTS, CO)
    # P[i, j] = co[i, j] / counts[i]
    expected = np.array([[0, .4, .1, .2], [.8, 0, .4, 0], [.25, .5, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(p, expected)
    # t = 0.4 keeps P >= 0.4 (0.4 itself included, as `_adj[_adj >= t] = 1`)
    b = binary_correlation(COUNTS, CO, 0.4)
    np.testing.assert_array_equal(b, [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(binary_correlation(COUNTS, CO, 0.5),
                                  [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])


def test_released_gen_a_by_hand() -> None:
    # Column sums of B: 2, 2, 1, 0; neighbour share 0.25 = p / (1 - p) at p = 0.2.
    a = released_adjacency(COUNTS, CO, t=0.4, p=0.2)
    q = 0.25 / (2 + 1e-6)
    expected = np.array([[1, q, 0, 0], [q, 1, 0.25 / (1 + 1e-6), 0], [0, q, 1, 0], [q, 0, 0, 1]])
    np.testing.assert_allclose(a, expected, rtol=1e-12)
    assert label_adjacency(COUNTS, CO, form="released") == pytest.approx(a)


def test_released_gen_adj_is_the_transposed_symmetric_normalisation() -> None:
    a = released_adjacency(COUNTS, CO)
    adj = normalize_released(a)
    r = a.sum(1)
    for i in range(4):  # float64 loop: adj[i, j] = A[j, i] / sqrt(r_i r_j)
        for j in range(4):
            assert adj[i, j] == pytest.approx(a[j, i] / math.sqrt(r[i] * r[j]), rel=1e-12)
    # the transpose shows: class 3 -> 0 is an edge (P(0|3) = 1), 0 -> 3 is not
    assert adj[0, 3] > 0 and adj[3, 0] == 0
    np.testing.assert_allclose(propagation_matrix(a, "released"), adj)


def test_paper_eq8_by_hand() -> None:
    a = paper_adjacency(COUNTS, CO, t=0.4, p=0.2)
    expected = np.array([[.8, .2, 0, 0], [.1, .8, .1, 0], [0, .2, .8, 0], [.2, 0, 0, .8]])
    np.testing.assert_allclose(a, expected)
    np.testing.assert_allclose(a.sum(1), 1.0)
    # a class without neighbours keeps 1 - p on its diagonal (Eq. 8 literally)
    lonely = paper_adjacency(COUNTS, CO, t=0.5, p=0.2)
    np.testing.assert_allclose(lonely[0], [.8, 0, 0, 0])
    np.testing.assert_allclose(propagation_matrix(a, "paper"), a)


def test_bad_statistics_are_named() -> None:
    with pytest.raises(ValueError, match=r"co-occurrence\[0, 3\] = 3 exceeds"):
        conditional_probability(COUNTS, CO + np.array([[0, 0, 0, 1], [0] * 4, [0] * 4, [1, 0, 0, 0]]))
    with pytest.raises(ValueError, match="must be \\(4, 4\\)"):
        conditional_probability(COUNTS, CO[:3])
    with pytest.raises(ValueError, match="threshold"):
        binary_correlation(COUNTS, CO, 0.0)
    with pytest.raises(ValueError, match="adjacency form"):
        label_adjacency(COUNTS, CO, form="sym")
    # a class without images has no out-edges (the released code would divide by zero)
    zero = released_adjacency(np.array([10, 0, 4, 2]), CO * np.array([1, 0, 1, 1])[:, None] * np.array([1, 0, 1, 1]))
    np.testing.assert_allclose(zero[1], [0, 1, 0, 0])


def test_coco_groups_follow_the_supercategories_in_mlgcn_order() -> None:
    names = coco_class_names("mlgcn")
    assert names == sorted(names) and names.index("person") == 49 and len(names) == 80
    perm, sizes, groups = group_permutation(coco_supercategories(names), names)
    # brief A.1 (supercategory-order position -> ML-GCN's alphabetical index)
    assert perm == [49, 9, 18, 44, 0, 16, 73, 74, 11, 72, 31, 63, 48, 8, 10, 20, 28, 37, 56, 25, 30, 6, 79, 34,
                    2, 76, 36, 68, 64, 33, 59, 60, 62, 40, 4, 5, 58, 65, 67, 13, 78, 26, 32, 41, 61, 14, 3, 1,
                    54, 46, 15, 19, 38, 50, 29, 17, 22, 24, 51, 7, 27, 70, 75, 42, 45, 53, 39, 21, 43, 47, 69,
                    57, 52, 12, 23, 77, 55, 66, 35, 71]
    assert sizes == [1, 8, 5, 10, 5, 10, 7, 10, 6, 6, 5, 7]
    assert tuple(groups) == COCO_SUPERCATEGORIES
    # in COCO's id order the same groups are contiguous
    ids = coco_class_names("coco")
    perm2, sizes2, _ = group_permutation(coco_supercategories(ids), ids)
    assert perm2 == list(range(80)) and sizes2 == sizes
    # the round trip: class perm[k] sits at position k
    assert sorted(perm) == list(range(80))
    assert [names[i] for i in perm[:3]] == ["person", "bicycle", "car"]


def test_groups_of_other_data_in_order_of_appearance() -> None:
    sups = ["b", "a", "b", "c", "a"]
    perm, sizes, groups = group_permutation(sups)
    assert groups == ["b", "a", "c"] and sizes == [2, 2, 1] and perm == [0, 2, 1, 4, 3]
    with pytest.raises(ValueError, match="not COCO class names"):
        coco_supercategories(["person", "unicorn"])
