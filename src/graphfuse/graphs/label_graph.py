"""Label graphs of multi-label recognition: ML-GCN's correlation matrix from label co-occurrence.

ML-GCN (Chen, Wei, Wang, Guo, "Multi-Label Image Recognition with Graph Convolutional
Networks", CVPR 2019; code ``megvii-research/ML-GCN``, ``util.py``) builds its label graph
from two statistics of the *training* split: ``counts[i]``, the number of images holding
label ``i``, and ``cooccurrence[i, j]``, the number holding both ``i`` and ``j`` (zero
diagonal). The conditional probability ``P[i, j] = cooccurrence[i, j] / counts[i]`` =
P(L_j | L_i) is binarised at the threshold ``t`` (0.4): ``B[i, j] = P[i, j] >= t``.

Two forms of the re-weighted matrix exist, both provided here:

* **released** (:func:`released_adjacency`, default; ``gen_A`` of the released code, the
  form behind every published number)::

      A = 0.25 * B / (column sums of B + 1e-6) + I

  with 0.25 written as ``p / (1 - p)`` so that ``p = 0.2`` gives 0.25 exactly (a neighbour
  share of 0.25 against the self weight 1 is the 0.2 : 0.8 split of the paper). The
  normalisation runs over **columns** (``sum(0)``), not rows. The network then propagates with
  :func:`normalize_released` (``gen_adj``): ``D^-1/2 A^T D^-1/2`` with ``D`` the row sums of
  ``A``, a transpose relative to the paper.
* **paper** (:func:`paper_adjacency`, Eq. 8 as corrected in the README's ``data/svg.svg``)::

      A'[i, j] = p * B[i, j] / sum_{k != i} B[i, k]   (i != j),      A'[i, i] = 1 - p

  row-normalised; the network propagates with ``A'`` itself. A class without any neighbour
  keeps ``A'[i, i] = 1 - p`` (Eq. 8 literally; its row sums to ``1 - p``).

Classes with ``counts[i] == 0`` have no defined ``P[i, :]``; their row of ``B`` is zero (the
released code would divide by zero). Everything is float64 numpy, no torch: the arrays go
into a model's buffers.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "ADJACENCY_FORMS",
    "COCO_CATEGORIES",
    "COCO_SUPERCATEGORIES",
    "AdjacencyForm",
    "binary_correlation",
    "check_label_statistics",
    "coco_class_names",
    "coco_supercategories",
    "conditional_probability",
    "group_permutation",
    "label_adjacency",
    "normalize_released",
    "paper_adjacency",
    "propagation_matrix",
    "released_adjacency",
]

AdjacencyForm = Literal["released", "paper"]
ADJACENCY_FORMS: tuple[str, ...] = ("released", "paper")


def check_label_statistics(counts: np.ndarray, cooccurrence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts (C,), cooccurrence (C, C))`` as float64, checked: non-negative, finite,
    square, ``cooccurrence[i, j] <= min(counts[i], counts[j])`` (an image pair cannot be
    more frequent than either label). The diagonal of ``cooccurrence`` is ignored.

    Raises:
        ValueError: naming what is wrong.
    """
    n = np.asarray(counts, dtype=np.float64)
    co = np.asarray(cooccurrence, dtype=np.float64)
    if n.ndim != 1:
        raise ValueError(f"label counts must be a vector (C,), got shape {n.shape}")
    c = n.shape[0]
    if co.shape != (c, c):
        raise ValueError(f"label co-occurrence must be ({c}, {c}) for {c} label counts, got {co.shape}")
    if not (np.isfinite(n).all() and np.isfinite(co).all()):
        raise ValueError("label counts / co-occurrence hold non-finite values")
    if (n < 0).any() or (co < 0).any():
        raise ValueError("label counts / co-occurrence must be non-negative")
    off = co - np.diag(np.diag(co))
    bound = np.minimum(n[:, None], n[None, :])
    bad = np.argwhere(off > bound)
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise ValueError(
            f"label co-occurrence[{i}, {j}] = {off[i, j]:g} exceeds the images of a label "
            f"(counts {n[i]:g}, {n[j]:g}); {len(bad)} such entries"
        )
    return n, off


def conditional_probability(counts: np.ndarray, cooccurrence: np.ndarray) -> np.ndarray:
    """``P[i, j] = cooccurrence[i, j] / counts[i]`` = P(label j | label i), ``(C, C)`` float64,
    zero diagonal; a row of a label without images is zero."""
    n, co = check_label_statistics(counts, cooccurrence)
    return np.divide(co, n[:, None], out=np.zeros_like(co), where=n[:, None] > 0)


def binary_correlation(counts: np.ndarray, cooccurrence: np.ndarray, t: float = 0.4) -> np.ndarray:
    """``B[i, j] = 1`` where P(L_j | L_i) ``>= t`` (ML-GCN: ``_adj[_adj >= t] = 1``), else 0;
    ``(C, C)`` float64 with a zero diagonal (P has one, and ``t > 0``)."""
    if not 0.0 < float(t) <= 1.0:
        # t = 0 would make every pair (and, in the released code, the diagonal) an edge.
        raise ValueError(f"threshold t must lie in (0, 1], got {t}")
    p = conditional_probability(counts, cooccurrence)
    b = (p >= float(t)).astype(np.float64)
    return b


def _check_p(p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"re-weighting p must lie in [0, 1), got {p}")
    return float(p)


def released_adjacency(counts: np.ndarray, cooccurrence: np.ndarray, t: float = 0.4, p: float = 0.2) -> np.ndarray:
    """ML-GCN's released ``gen_A``: ``B * (p / (1 - p)) / (B.sum(0) + 1e-6) + I``, ``(C, C)``.

    The released code hard-codes 0.25, which is ``p / (1 - p)`` at ``p = 0.2``; a column
    without edges stays zero (the ``1e-6`` guards the division, as in the code).
    """
    b = binary_correlation(counts, cooccurrence, t)
    share = _check_p(p) / (1.0 - _check_p(p))
    a = b * share / (b.sum(axis=0, keepdims=True) + 1e-6)
    return a + np.eye(b.shape[0])


def paper_adjacency(counts: np.ndarray, cooccurrence: np.ndarray, t: float = 0.4, p: float = 0.2) -> np.ndarray:
    """The paper's re-weighted matrix (Eq. 8 as corrected in the README): off-diagonal
    ``p * B[i, j] / sum_{k != i} B[i, k]``, diagonal ``1 - p``, ``(C, C)``."""
    b = binary_correlation(counts, cooccurrence, t)
    p = _check_p(p)
    rows = b.sum(axis=1, keepdims=True)
    a = np.divide(p * b, rows, out=np.zeros_like(b), where=rows > 0)
    np.fill_diagonal(a, 1.0 - p)
    return a


def label_adjacency(
    counts: np.ndarray, cooccurrence: np.ndarray, t: float = 0.4, p: float = 0.2, form: AdjacencyForm = "released"
) -> np.ndarray:
    """The stored adjacency of ``form``: :func:`released_adjacency` (ML-GCN's ``A`` parameter)
    or :func:`paper_adjacency`."""
    if form == "released":
        return released_adjacency(counts, cooccurrence, t, p)
    if form == "paper":
        return paper_adjacency(counts, cooccurrence, t, p)
    raise ValueError(f"adjacency form must be one of {ADJACENCY_FORMS}, got {form!r}")


def normalize_released(a: np.ndarray) -> np.ndarray:
    """ML-GCN's ``gen_adj``: ``D^-1/2 A^T D^-1/2`` with ``D = diag(A.sum(1))`` (row sums),
    written as the code computes it, ``((A D)^T) D``. float64 numpy; the model applies the
    same formula to its buffer in torch."""
    a = np.asarray(a, dtype=np.float64)
    d = np.power(a.sum(axis=1), -0.5)
    return ((a * d[None, :]).T) * d[None, :]


def propagation_matrix(a: np.ndarray, form: AdjacencyForm = "released") -> np.ndarray:
    """The matrix the GCN multiplies with: :func:`normalize_released` of ``a`` for the
    released form, ``a`` itself for the paper's."""
    if form == "released":
        return normalize_released(a)
    if form == "paper":
        return np.asarray(a, dtype=np.float64)
    raise ValueError(f"adjacency form must be one of {ADJACENCY_FORMS}, got {form!r}")


# ------------------------------------------------------------------------------------------
# COCO's 80 classes and their supercategories: the groups of HGAT
# ------------------------------------------------------------------------------------------
#: COCO's 80 object categories as ``(category id, name, supercategory)`` in id order, names as
#: in the 2014/2017 instances JSON ('motorcycle', 'airplane', 'couch', 'tv', ...).
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"),
    (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"),
    (8, "truck", "vehicle"), (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"), (13, "stop sign", "outdoor"),
    (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"),
    (27, "backpack", "accessory"), (28, "umbrella", "accessory"), (31, "handbag", "accessory"),
    (32, "tie", "accessory"), (33, "suitcase", "accessory"),
    (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"),
    (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"),
    (49, "knife", "kitchen"), (50, "spoon", "kitchen"), (51, "bowl", "kitchen"),
    (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"), (55, "orange", "food"),
    (56, "broccoli", "food"), (57, "carrot", "food"), (58, "hot dog", "food"), (59, "pizza", "food"),
    (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"),
    (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)
#: COCO's supercategories in category-id order: HGAT's 12 groups of [1, 8, 5, 10, 5, 10, 7, 10, 6, 6, 5, 7].
COCO_SUPERCATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(s for _, _, s in COCO_CATEGORIES))
_COCO_BY_NAME = {name: (cid, sup) for cid, name, sup in COCO_CATEGORIES}


def coco_class_names(order: Literal["mlgcn", "coco"] = "mlgcn") -> list[str]:
    """COCO's 80 class names in ML-GCN's label order (``mlgcn``: alphabetical, Python's
    ``sorted``, as its ``coco.py``; person is index 49) or in category-id order (``coco``)."""
    names = [name for _, name, _ in COCO_CATEGORIES]
    if order == "mlgcn":
        return sorted(names)
    if order == "coco":
        return names
    raise ValueError(f"class order must be 'mlgcn' or 'coco', got {order!r}")


def coco_supercategories(class_names: list[str] | tuple[str, ...]) -> list[str]:
    """The COCO supercategory of each name; ``ValueError`` naming a name COCO does not have."""
    unknown = [n for n in class_names if n not in _COCO_BY_NAME]
    if unknown:
        raise ValueError(f"not COCO class names (give the supercategories explicitly): {unknown[:5]}")
    return [_COCO_BY_NAME[n][1] for n in class_names]


def group_permutation(
    supercategories: list[str] | tuple[str, ...], class_names: list[str] | tuple[str, ...] | None = None
) -> tuple[list[int], list[int], list[str]]:
    """Gather the classes by supercategory: ``(perm, group_sizes, group_names)``.

    ``perm[k]`` is the class index at group-order position ``k``: the classes of the first
    group, then of the second, ... Groups come in COCO's supercategory order (person,
    vehicle, ..., indoor) where they are COCO's, others after them in order of first
    appearance; inside a group, classes with a COCO name come in category-id order, the rest
    in index order. For COCO in ML-GCN's alphabetical order this gives the permutation of
    the brief (A.1): ``perm[0] = 49`` (person), then bicycle 9, car 18, motorcycle 44, ...
    and group sizes ``[1, 8, 5, 10, 5, 10, 7, 10, 6, 6, 5, 7]``.
    """
    sups = [str(s) for s in supercategories]
    if class_names is not None and len(class_names) != len(sups):
        raise ValueError(f"{len(class_names)} class names but {len(sups)} supercategories")
    known = [s for s in COCO_SUPERCATEGORIES if s in sups]
    groups = known + [s for s in dict.fromkeys(sups) if s not in known]

    def key(i: int) -> tuple[int, int]:
        name = class_names[i] if class_names is not None else None
        cid = _COCO_BY_NAME[name][0] if name in _COCO_BY_NAME else 10**6
        return (cid, i)

    perm: list[int] = []
    sizes: list[int] = []
    for g in groups:  # a loop over groups (at most a few dozen), not over data
        members = sorted((i for i, s in enumerate(sups) if s == g), key=key)
        perm += members
        sizes.append(len(members))
    return perm, sizes, groups
