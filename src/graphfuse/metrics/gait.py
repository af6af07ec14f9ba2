"""Gait recognition evaluation: part distances and the CASIA-B / OU-MVLP protocols.

Written from OpenGait's ``opengait/evaluation/{evaluator,metric}.py`` (Fan et al., CVPR 2023,
``github.com/ShiqiYu/OpenGait``; read, not copied) and GaitSet's evaluator (Chao et al., AAAI
2019); docs/protocol_gait.md states every rule with its source.

Embeddings are ``(N, C, P)``: ``C`` channels for each of ``P`` horizontal parts.

* **Distance** (:func:`part_distance`): ``euc`` (OpenGait's ``cuda_dist``): for every part the
  Euclidean distance ``sqrt(relu(|x|^2 + |y|^2 - 2 x.y))``, then the mean over the ``P``
  parts (GaitSet's original code used one Euclidean distance over the concatenated
  vector instead). ``cos``: ``1 - mean_p cos(x_p, y_p)``, every part L2-normalised over its
  channels.
* **Single-view gallery rank-1** (:func:`single_view_gallery`; OpenGait's
  ``single_view_gallery_evaluation``, the number every CASIA-B table reports): for each
  condition (CASIA-B: NM = probes nm-05/06, BG = bg-01/02, CL = cl-01/02; gallery nm-01..04.
  OU-MVLP: NM = probes ``00``, gallery ``01``), each probe view ``v1`` and each gallery view
  ``v2``, the gallery is restricted to view ``v2`` and the cell is the percentage of the
  probes of view ``v1`` whose nearest gallery sequence has the probe's identity, rounded to
  2 decimals. The diagonal (``v1 == v2``) is excluded: each row's other ``V - 1`` cells are
  averaged (``de_diag``), then the ``V`` rows. A probe whose identity has no gallery
  sequence of that view counts as a miss (OU-MVLP: "probes without a gallery counterpart").
  Views are the sorted distinct views of the evaluated data (11 for CASIA-B, 14 for OU-MVLP).
* **Cross-view gallery** (:func:`cross_view_gallery`; OpenGait's ``cross_view_gallery_evaluation``
  after Yu et al., "A Comprehensive Study on the Evaluation of Silhouette-based Gait
  Recognition", IEEE T-BIOM 2022): the gallery is every view of nm-02, bg-02, cl-02 (OU-MVLP:
  ``01``), the probes nm-01 (NM), bg-01 (BG), cl-01 (CL) (OU-MVLP: ``00``); for each probe
  the gallery sequences of its own identity AND its own view are removed, then rank-1 and
  average precision over the ranked gallery. Per probe view the mean rank-1 and the mean AP
  (over probes with at least one relevant gallery sequence) in %, rounded to 2 decimals;
  then the mean over views.

Where OpenGait would divide by zero (a probe view without probes, a gallery view without
sequences, a probe with no gallery left after the exclusion) this module raises a
``ValueError`` naming the condition and view instead of producing NaN. Ties in distance go to
the gallery sequence that comes first in the data's order (OpenGait's unstable ``sort`` leaves
them unspecified).

Distances run in torch on the embeddings' device (the GPU during ``graphfuse test``), in row
chunks of bounded memory; the rest is small bookkeeping in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DISTANCES",
    "PROTOCOLS",
    "GaitProtocol",
    "cross_view_gallery",
    "evaluate_gait",
    "format_gait_table",
    "get_protocol",
    "part_distance",
    "plot_rank1_heatmaps",
    "single_view_gallery",
]

#: Distance names (OpenGait's ``metric`` values).
DISTANCES = ("euc", "cos")
Distance = Literal["euc", "cos"]

#: Elements of one ``(P, rows, n_gallery)`` distance block (256 MiB of float32).
_BLOCK_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class GaitProtocol:
    """Which sequence types are probes and gallery, per condition, in both protocols.

    Attributes:
        name: ``casia-b`` or ``oumvlp`` (``meta.json: protocol``).
        probes: single-view gallery: condition -> probe types.
        gallery: single-view gallery: gallery types.
        cross_view_probes: cross-view gallery: condition -> probe types.
        cross_view_gallery: cross-view gallery: gallery types.
    """

    name: str
    probes: Mapping[str, tuple[str, ...]]
    gallery: tuple[str, ...]
    cross_view_probes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cross_view_gallery: tuple[str, ...] = ()


#: OpenGait's ``probe_seq_dict`` / ``gallery_seq_dict`` of both evaluations.
PROTOCOLS: dict[str, GaitProtocol] = {
    "casia-b": GaitProtocol(
        name="casia-b",
        probes={"NM": ("nm-05", "nm-06"), "BG": ("bg-01", "bg-02"), "CL": ("cl-01", "cl-02")},
        gallery=("nm-01", "nm-02", "nm-03", "nm-04"),
        cross_view_probes={"NM": ("nm-01",), "BG": ("bg-01",), "CL": ("cl-01",)},
        cross_view_gallery=("nm-02", "bg-02", "cl-02"),
    ),
    "oumvlp": GaitProtocol(
        name="oumvlp",
        probes={"NM": ("00",)},
        gallery=("01",),
        cross_view_probes={"NM": ("00",)},
        cross_view_gallery=("01",),
    ),
}


def get_protocol(name: str) -> GaitProtocol:
    """The protocol ``name`` (``meta.json: protocol``); ``ValueError`` listing the known ones."""
    try:
        return PROTOCOLS[str(name)]
    except KeyError:
        raise ValueError(f"unknown gait protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


# ------------------------------------------------------------------------------------------
# distances
# ------------------------------------------------------------------------------------------
def _parts_first(x: Tensor, distance: str) -> Tensor:
    """``(N, C, P) -> (P, N, C)``, each part L2-normalised over C for ``cos``."""
    if x.ndim != 3:
        raise ValueError(f"embeddings must be (N, C, P), got shape {tuple(x.shape)}")
    if distance == "cos":
        x = F.normalize(x, p=2, dim=1)
    return x.permute(2, 0, 1)


def _row_chunks(n_rows: int, n_cols: int, parts: int) -> Iterator[slice]:
    step = max(1, _BLOCK_ELEMENTS // max(1, parts * n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _distance_block(xp: Tensor, yp: Tensor, y2: Tensor | None, distance: str) -> Tensor:
    """``(P, n, C)`` x ``(P, m, C)`` -> ``(n, m)`` mean part distance."""
    dot = torch.bmm(xp, yp.transpose(1, 2))  # (P, n, m)
    if distance == "cos":
        return 1.0 - dot.mean(0)
    assert y2 is not None
    x2 = (xp * xp).sum(-1)  # (P, n)
    d2 = x2[:, :, None] + y2[:, None, :] - 2.0 * dot
    return torch.sqrt(F.relu(d2)).mean(0)


def part_distance(x: Tensor, y: Tensor, distance: Distance = "euc") -> Tensor:
    """Distance matrix ``(n_x, n_y)`` between embeddings ``x (n_x, C, P)`` and ``y (n_y, C, P)``
    (see the module docstring: ``euc`` = mean over parts of the per-part Euclidean distance,
    ``cos`` = 1 - mean part cosine). Computed in row chunks on ``x``'s device and dtype."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"embeddings of shapes {tuple(x.shape)} and {tuple(y.shape)} do not match")
    xp, yp = _parts_first(x, distance), _parts_first(y.to(x), distance)
    y2 = (yp * yp).sum(-1) if distance == "euc" else None
    out = x.new_empty((x.shape[0], y.shape[0]))
    for rows in _row_chunks(x.shape[0], y.shape[0], xp.shape[0]):
        out[rows] = _distance_block(xp[:, rows], yp, y2, distance)
    return out


def _nearest_blocks(x: Tensor, y: Tensor, distance: str) -> Iterator[tuple[slice, Tensor]]:
    """``(rows, dist (len(rows), n_y))`` blocks of :func:`part_distance` (bounded memory)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    xp, yp = _parts_first(x, distance), _parts_first(y.to(x), distance)
    y2 = (yp * yp).sum(-1) if distance == "euc" else None
    for rows in _row_chunks(x.shape[0], y.shape[0], xp.shape[0]):
        yield rows, _distance_block(xp[:, rows], yp, y2, distance)


# ------------------------------------------------------------------------------------------
# protocols
# ------------------------------------------------------------------------------------------
def _as_str_array(values: Sequence[Any] | np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.asarray([str(v) for v in values]) if not isinstance(values, np.ndarray) else values.astype(str)
    if arr.shape != (n,):
        raise ValueError(f"{what} must have one entry per embedding ({n}), got shape {arr.shape}")
    return arr


def _codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _round2(percent: np.ndarray | float) -> np.ndarray:
    """OpenGait's ``np.round(x, 2)`` of a percentage."""
    return np.round(np.asarray(percent, dtype=np.float64), 2)


def _protocol_inputs(
    embeddings: Any, labels: Any, types: Any, views: Any, protocol: str | GaitProtocol
) -> tuple[GaitProtocol, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The protocol, integer identity codes, type and view arrays (checked against the
    ``N`` embeddings) and the sorted views: what every protocol function starts from."""
    proto = protocol if isinstance(protocol, GaitProtocol) else get_protocol(protocol)
    n = int(embeddings.shape[0])
    ids = _codes(_as_str_array(labels, n, "labels"))
    types = _as_str_array(types, n, "types")
    views = _as_str_array(views, n, "views")
    return proto, ids, types, views, sorted(np.unique(views).tolist())


def single_view_gallery(
    embeddings: Tensor, labels: Sequence[Any] | np.ndarray, types: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray, protocol: str | GaitProtocol = "casia-b", distance: Distance = "euc",
) -> dict[str, Any]:
    """OpenGait's single-view-gallery rank-1 (module docstring).

    Args:
        embeddings: ``(N, C, P)`` of every evaluated sequence.
        labels, types, views: ``(N,)`` identity, sequence type (``nm-01``) and view (``090``).
        protocol: ``casia-b`` / ``oumvlp`` or a :class:`GaitProtocol`.
        distance: ``euc`` or ``cos``.

    Returns:
        ``{"views": [V], "conditions": {cond: {"matrix": (V, V) list (%; rows probe view,
        columns gallery view), "per_view": [V] (%, the diagonal excluded), "mean": float,
        "num_probes": int}}}``.
    """
    proto, ids, types, views, view_list = _protocol_inputs(embeddings, labels, types, views, protocol)
    nv = len(view_list)
    if nv < 2:
        raise ValueError(f"the single-view-gallery protocol needs at least 2 views, got {view_list}")
    probe_types = sorted({t for ts in proto.probes.values() for t in ts})
    p_idx = np.flatnonzero(np.isin(types, probe_types))
    g_idx = np.flatnonzero(np.isin(types, proto.gallery))
    g_views = views[g_idx]
    g_ids = torch.as_tensor(ids[g_idx], device=embeddings.device)
    cols = []
    for v in view_list:  # loop over the (11 or 14) gallery views
        c = np.flatnonzero(g_views == v)
        if c.size == 0:
            raise ValueError(f"{proto.name}: no gallery sequence ({', '.join(proto.gallery)}) of view {v}")
        cols.append(torch.as_tensor(c, device=embeddings.device))
    hits = np.zeros((p_idx.size, nv), dtype=bool)  # probe i's nearest gallery of view j is its identity
    probe_ids = torch.as_tensor(ids[p_idx], device=embeddings.device)
    gallery = embeddings[torch.as_tensor(g_idx, device=embeddings.device)]
    probes = embeddings[torch.as_tensor(p_idx, device=embeddings.device)]
    for rows, dist in _nearest_blocks(probes, gallery, distance):
        for j, c in enumerate(cols):
            nearest = c[dist[:, c].argmin(dim=1)]
            hits[rows, j] = (g_ids[nearest] == probe_ids[rows]).cpu().numpy()
    p_types, p_views = types[p_idx], views[p_idx]
    out: dict[str, Any] = {"views": view_list, "conditions": {}}
    for cond, cond_types in proto.probes.items():
        matrix = np.zeros((nv, nv))
        in_cond = np.isin(p_types, cond_types)
        for i, v in enumerate(view_list):
            rows = np.flatnonzero(in_cond & (p_views == v))
            if rows.size == 0:
                raise ValueError(f"{proto.name}: no {cond} probe ({', '.join(cond_types)}) of view {v}")
            matrix[i] = _round2(hits[rows].mean(axis=0) * 100.0)
        per_view = (matrix.sum(axis=1) - np.diag(matrix)) / (nv - 1)
        out["conditions"][cond] = {
            "matrix": matrix.tolist(), "per_view": per_view.tolist(), "mean": float(per_view.mean()),
            "num_probes": int(in_cond.sum()),
        }
    return out


def cross_view_gallery(
    embeddings: Tensor, labels: Sequence[Any] | np.ndarray, types: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray, protocol: str | GaitProtocol = "casia-b", distance: Distance = "euc",
) -> dict[str, Any]:
    """The cross-view-gallery rank-1 and mAP (module docstring; Yu et al. 2022 via OpenGait).

    Returns:
        ``{"views": [V], "conditions": {cond: {"rank1_per_view": [V], "rank1": float,
        "mAP_per_view": [V], "mAP": float, "num_probes": int}}}`` (all in %).
    """
    proto, ids, types, views, view_list = _protocol_inputs(embeddings, labels, types, views, protocol)
    view_code = {v: i for i, v in enumerate(view_list)}
    vcodes = np.asarray([view_code[v] for v in views.tolist()], dtype=np.int64)
    dev = embeddings.device
    g_idx = np.flatnonzero(np.isin(types, proto.cross_view_gallery))
    if g_idx.size == 0:
        raise ValueError(f"{proto.name}: no cross-view gallery sequence ({', '.join(proto.cross_view_gallery)})")
    gallery = embeddings[torch.as_tensor(g_idx, device=dev)]
    g_ids = torch.as_tensor(ids[g_idx], device=dev)
    g_views = torch.as_tensor(vcodes[g_idx], device=dev)
    out: dict[str, Any] = {"views": view_list, "conditions": {}}
    for cond, cond_types in proto.cross_view_probes.items():
        p_idx = np.flatnonzero(np.isin(types, cond_types))
        rank1 = np.zeros(p_idx.size)
        ap = np.full(p_idx.size, np.nan)
        probes = embeddings[torch.as_tensor(p_idx, device=dev)]
        p_ids = torch.as_tensor(ids[p_idx], device=dev)
        p_views = torch.as_tensor(vcodes[p_idx], device=dev)
        for rows, dist in _nearest_blocks(probes, gallery, distance):
            same = p_ids[rows, None] == g_ids[None, :]
            excluded = same & (p_views[rows, None] == g_views[None, :])
            left = (~excluded).sum(dim=1)
            if bool((left == 0).any()):
                bad = int(p_idx[rows][int(torch.nonzero(left == 0)[0, 0])])
                raise ValueError(f"{proto.name} cross-view gallery: no gallery left for probe {bad} ({cond}) after "
                                 "excluding its identity's sequences of its own view")
            # Excluded gallery items go last and never match: the ranks of the others are theirs.
            order = torch.sort(dist.masked_fill(excluded, math.inf), dim=1, stable=True).indices
            match = (same & ~excluded).gather(1, order).to(torch.float64)
            rank1[rows] = match[:, 0].cpu().numpy()
            relevant = match.sum(dim=1)
            positions = torch.arange(1, match.shape[1] + 1, device=dev, dtype=torch.float64)
            precision = match.cumsum(dim=1) / positions
            ap_rows = (precision * match).sum(dim=1) / relevant.clamp(min=1)
            ap[rows] = torch.where(relevant > 0, ap_rows, torch.full_like(ap_rows, math.nan)).cpu().numpy()
        pv = vcodes[p_idx]
        r1_view, map_view = np.zeros(len(view_list)), np.zeros(len(view_list))
        for i, v in enumerate(view_list):
            rows = pv == i
            valid = rows & ~np.isnan(ap)
            if not rows.any() or not valid.any():
                raise ValueError(f"{proto.name} cross-view gallery: no {cond} probe ({', '.join(cond_types)}) "
                                 f"of view {v}{' with a relevant gallery sequence' if rows.any() else ''}")
            r1_view[i] = _round2(rank1[rows].mean() * 100.0)
            map_view[i] = _round2(ap[valid].mean() * 100.0)
        out["conditions"][cond] = {
            "rank1_per_view": r1_view.tolist(), "rank1": float(r1_view.mean()),
            "mAP_per_view": map_view.tolist(), "mAP": float(map_view.mean()), "num_probes": int(p_idx.size),
        }
    return out


def evaluate_gait(
    embeddings: Tensor, labels: Sequence[Any] | np.ndarray, types: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray, protocol: str = "casia-b", distance: Distance = "euc",
    cross_view: bool = True,
) -> dict[str, Any]:
    """Both protocols on one set of test embeddings.

    Returns:
        ``{"protocol", "distance", "views", "single_view": <single_view_gallery>["conditions"],
        "cross_view": <cross_view_gallery>["conditions"] (when ``cross_view``)}``.
    """
    sv = single_view_gallery(embeddings, labels, types, views, protocol, distance)
    result: dict[str, Any] = {"protocol": get_protocol(protocol).name, "distance": distance,
                              "views": sv["views"], "single_view": sv["conditions"]}
    if cross_view:
        result["cross_view"] = cross_view_gallery(embeddings, labels, types, views, protocol, distance)["conditions"]
    return result


# ------------------------------------------------------------------------------------------
# presentation
# ------------------------------------------------------------------------------------------
def format_gait_table(result: Mapping[str, Any], title: str | None = None) -> str:
    """The usual rank-1 table: one row per condition, one column per probe view (the mean over
    the gallery views other than the probe's), then the mean; the cross-view mAP below it."""
    views = list(result["views"])
    width = max(7, *(len(v) + 1 for v in views))
    lines = [title] if title else []
    head = f"{'rank-1 %':10s}" + "".join(f"{v:>{width}s}" for v in views) + f"{'mean':>8s}"
    lines += ["single-view gallery (identical view excluded), probe view x mean over gallery views:", head]
    for cond, r in result["single_view"].items():
        lines.append(f"{cond:10s}" + "".join(f"{x:{width}.2f}" for x in r["per_view"]) + f"{r['mean']:8.2f}")
    cv = result.get("cross_view")
    if cv:
        lines += ["cross-view gallery (identical-view same-id gallery excluded):",
                  f"{'':10s}" + "".join(f"{v:>{width}s}" for v in views) + f"{'mean':>8s}"]
        for cond, r in cv.items():
            lines.append(f"{cond + ' mAP':10s}" + "".join(f"{x:{width}.2f}" for x in r["mAP_per_view"])
                         + f"{r['mAP']:8.2f}")
            lines.append(f"{cond + ' R1':10s}" + "".join(f"{x:{width}.2f}" for x in r["rank1_per_view"])
                         + f"{r['rank1']:8.2f}")
    return "\n".join(lines)


def plot_rank1_heatmaps(result: Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """Draw each condition's ``V x V`` single-view-gallery rank-1 matrix (probe view x gallery
    view, %, diagonal hatched: excluded) side by side into the PNG ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graphfuse.io import atomic_path

    views = list(result["views"])
    conds = list(result["single_view"])
    fig, axes = plt.subplots(1, len(conds), figsize=(4.6 * len(conds), 4.4), squeeze=False)
    im = None
    for ax, cond in zip(axes[0], conds):
        r = result["single_view"][cond]
        m = np.asarray(r["matrix"], dtype=np.float64)
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=100)
        n = len(views)
        ax.scatter(np.arange(n), np.arange(n), marker="x", color="white", s=12, linewidths=0.8)
        ax.set_xticks(range(n), views, rotation=90, fontsize=7)
        ax.set_yticks(range(n), views, fontsize=7)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
        ax.set_title(f"{cond}: mean {r['mean']:.2f} % (x: excluded)", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, label="rank-1 %")
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
