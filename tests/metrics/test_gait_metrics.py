"""The gait evaluation (graphfuse.metrics.gait): the part distance against a float64 loop, the
CASIA-B single-view-gallery rank-1 and the cross-view-gallery mAP on hand-worked feature sets,
OU-MVLP's probes without a gallery counterpart, and an independent loop reference of OpenGait's
rules on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphfuse.metrics.gait import (
    PROTOCOLS,
    cross_view_gallery,
    evaluate_gait,
    format_gait_table,
    part_distance,
    plot_rank1_heatmaps,
    single_view_gallery,
)


def _emb(values: list[float]) -> torch.Tensor:
    """1-channel, 1-part embeddings ``(N, 1, 1)`` at the given positions (float64)."""
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


# -- distances ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", ["euc", "cos"])
def test_part_distance_matches_a_loop(distance):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 4, 3, generator=g, dtype=torch.float64), torch.randn(7, 4, 3, generator=g, dtype=torch.float64)
    y[2] = x[1]  # distance 0 (the clamp before the sqrt)
    ref = torch.zeros(5, 7, dtype=torch.float64)
    for i in range(5):
        for j in range(7):
            for p in range(3):
                a, b = x[i, :, p], y[j, :, p]
                if distance == "euc":
                    ref[i, j] += math.sqrt(max(0.0, float(((a - b) ** 2).sum())))
                else:
                    ref[i, j] += float(a @ b / (a.norm() * b.norm()))
    ref = ref / 3 if distance == "euc" else 1 - ref / 3
    got = part_distance(x, y, distance)
    assert torch.allclose(got, ref, atol=1e-7)
    if distance == "euc":
        assert got[1, 2] == 0


def test_part_distance_chunks_give_the_same_matrix(monkeypatch):
    import graphfuse.metrics.gait as mg

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(9, 3, 2, generator=g), torch.randn(4, 3, 2, generator=g)
    full = part_distance(x, y)
    monkeypatch.setattr(mg, "_BLOCK_ELEMENTS", 8)  # one row per block
    assert torch.equal(part_distance(x, y), full)


# -- CASIA-B single-view gallery on a hand-worked set ----------------------------------------------------------
def _casia_hand_set():
    """Two subjects A, B; views 000 and 018. 1-d features: the distances are |x - y|.

    gallery nm-01: A@000 = 0, A@018 = 10, B@000 = 4, B@018 = 20
    NM probes (nm-05):
      A@000 = 1:  vs 000 {A 1, B 3} -> A hit;   vs 018 {A 9, B 19} -> A hit
      A@018 = 14: vs 000 {A 14, B 10} -> miss;  vs 018 {A 4, B 6} -> hit
      B@000 = 3:  vs 000 {A 3, B 1} -> hit;     vs 018 {A 7, B 17} -> miss
      B@018 = 21: vs 000 {A 21, B 17} -> hit;   vs 018 {A 11, B 1} -> hit
      matrix [[100, 50], [50, 100]]: per view (diagonal out) [50, 50], mean 50
    BG probes (bg-01, and a bg-02 of A@000 = 2, so view 000 has three probes):
      A@000 = 1 (as NM): [hit, hit]; A@000 = 2: vs 000 {A 2, B 2} tie -> the first gallery (A) hit,
      vs 018 {A 8, B 18} hit; B@000 = 3: [hit, miss]  -> row 000 = [100, 66.67 (2 of 3, rounded)]
      A@018 = 9: vs 000 {A 9, B 5} miss, vs 018 {A 1, B 11} hit; B@018 = 16: vs 000 {A 16, B 12} hit,
      vs 018 {A 6, B 4} hit -> row 018 = [50, 100];  per view [66.67, 50], mean 58.335
    CL probes (cl-01): every probe at its gallery twin's value + 0.1 -> all hits except
      A@018 = 10.1 vs 000 {A 10.1, B 6.1} miss, B@000 = 4.1 vs 018 {A 5.9, B 15.9} miss -> as NM: mean 50
    """
    rows = []  # (id, type, view, x)
    for sid, v, x in [("A", "000", 0), ("A", "018", 10), ("B", "000", 4), ("B", "018", 20)]:
        rows.append((sid, "nm-01", v, x))
        rows.append((sid, "cl-01", v, x + 0.1))
    rows += [("A", "nm-05", "000", 1), ("A", "nm-05", "018", 14), ("B", "nm-05", "000", 3), ("B", "nm-05", "018", 21)]
    rows += [("A", "bg-01", "000", 1), ("A", "bg-02", "000", 2), ("B", "bg-01", "000", 3),
             ("A", "bg-01", "018", 9), ("B", "bg-01", "018", 16)]
    ids, types, views, xs = zip(*rows)
    return _emb(list(xs)), list(ids), list(types), list(views)


def test_single_view_gallery_hand_worked():
    emb, ids, types, views = _casia_hand_set()
    r = single_view_gallery(emb, ids, types, views, "casia-b")
    assert r["views"] == ["000", "018"]
    nm, bg, cl = (r["conditions"][c] for c in ("NM", "BG", "CL"))
    assert nm["matrix"] == [[100.0, 50.0], [50.0, 100.0]]
    assert nm["per_view"] == [50.0, 50.0] and nm["mean"] == 50.0 and nm["num_probes"] == 4
    assert bg["matrix"] == [[100.0, 66.67], [50.0, 100.0]]
    assert bg["per_view"] == pytest.approx([66.67, 50.0]) and bg["mean"] == pytest.approx(58.335)
    assert cl["matrix"] == [[100.0, 50.0], [50.0, 100.0]] and cl["mean"] == 50.0


def test_single_view_gallery_cosine_and_errors():
    emb, ids, types, views = _casia_hand_set()
    # unit-norm parts: |x - y|^2 = 2 - 2 cos, so both distances rank alike (one part: same matrices)
    unit = torch.nn.functional.normalize(torch.randn(len(ids), 3, 1, generator=torch.Generator().manual_seed(0),
                                                     dtype=torch.float64), dim=1)
    cos = single_view_gallery(unit, ids, types, views, "casia-b", "cos")["conditions"]
    euc = single_view_gallery(unit, ids, types, views, "casia-b", "euc")["conditions"]
    assert cos == euc
    keep = [i for i, t in enumerate(types) if not t.startswith("cl")]
    with pytest.raises(ValueError, match="no CL probe"):
        single_view_gallery(emb[keep], *([a[i] for i in keep] for a in (ids, types, views)))
    with pytest.raises(ValueError, match="labels must have one entry"):
        single_view_gallery(emb, ids[:-1], types, views)
    with pytest.raises(ValueError, match="unknown gait protocol"):
        single_view_gallery(emb, ids, types, views, "grew")


def _reference_single_view(x, ids, types, views, proto):
    """OpenGait's evaluator restated as plain loops over cells and probes (float64)."""
    ids, types, views = (np.asarray(a) for a in (ids, types, views))
    vl = sorted(set(views.tolist()))
    out = {}
    for cond, ptypes in proto.probes.items():
        acc = np.zeros((len(vl), len(vl)))
        for i, v1 in enumerate(vl):
            probes = [n for n in range(len(ids)) if types[n] in ptypes and views[n] == v1]
            for j, v2 in enumerate(vl):
                gal = [n for n in range(len(ids)) if types[n] in proto.gallery and views[n] == v2]
                hits = 0
                for p in probes:
                    d = [float(((x[p] - x[g]) ** 2).sum(0).sqrt().mean()) for g in gal]
                    hits += ids[gal[int(np.argmin(d))]] == ids[p]
                acc[i, j] = np.round(hits * 100 / len(probes), 2)
        out[cond] = float(np.mean((acc.sum(1) - np.diag(acc)) / (len(vl) - 1)))
    return out


def test_single_view_gallery_equals_loop_reference_on_random_features():
    rng = np.random.default_rng(3)
    types_all = ["nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02"]
    rows = [(f"{s:03d}", t, v) for s in range(5) for t in types_all for v in ("000", "036", "090")]
    ids, types, views = (list(a) for a in zip(*rows))
    centres = rng.normal(size=(5, 4, 3))
    x = torch.tensor(centres[[int(i) for i in ids]] + rng.normal(scale=1.2, size=(len(rows), 4, 3)))
    got = single_view_gallery(x, ids, types, views)
    ref = _reference_single_view(x, ids, types, views, PROTOCOLS["casia-b"])
    for cond in ("NM", "BG", "CL"):
        assert got["conditions"][cond]["mean"] == pytest.approx(ref[cond], abs=1e-9)
    assert 0 < got["conditions"]["NM"]["mean"] < 100  # neither trivial nor hopeless


# -- cross-view gallery mAP ---------------------------------------------------------------------------------------
def test_cross_view_gallery_hand_worked():
    """gallery (nm-02 / bg-02 / cl-02, all views): A@000 nm-02 = 0, A@018 nm-02 = 10, B@000 nm-02 = 4,
    B@018 nm-02 = 6, A@000 bg-02 = 7. Same-id same-view gallery items are removed per probe.

    NM probes (nm-01):
      A@000 = 5: A@000 items removed; B@000 1, B@018 1 (tie: data order), A@018 5 -> first relevant
                 at rank 3: rank-1 0, AP 1/3
      B@000 = 5: B@000 removed; B@018 1 first -> rank-1 1, AP 1 (one relevant)
      A@018 = 9: A@018 removed; A@000 bg 2, B@018 3, B@000 5, A@000 nm 9 -> rank-1 1, AP (1/1 + 2/4) / 2 = 0.75
      B@018 = 3: B@018 removed; B@000 1 first -> rank-1 1, AP 1
    view 000: rank-1 50, mAP (1/3 + 1) / 2 = 66.67; view 018: rank-1 100, mAP 87.5
    -> rank-1 75, mAP (66.67 + 87.5) / 2 = 77.085. BG / CL probes are copies: the same numbers.
    """
    rows = [("A", "nm-02", "000", 0), ("A", "nm-02", "018", 10), ("B", "nm-02", "000", 4), ("B", "nm-02", "018", 6),
            ("A", "bg-02", "000", 7)]
    for t in ("nm-01", "bg-01", "cl-01"):
        rows += [("A", t, "000", 5), ("B", t, "000", 5), ("A", t, "018", 9), ("B", t, "018", 3)]
    ids, types, views, xs = zip(*rows)
    r = cross_view_gallery(_emb(list(xs)), ids, types, views, "casia-b")
    for cond in ("NM", "BG", "CL"):
        c = r["conditions"][cond]
        assert c["rank1_per_view"] == [50.0, 100.0] and c["rank1"] == 75.0
        assert c["mAP_per_view"] == [66.67, 87.5] and c["mAP"] == pytest.approx(77.085)
        assert c["num_probes"] == 4


def test_cross_view_gallery_without_gallery_left_is_an_error():
    rows = [("A", "nm-02", "000", 0), ("A", "nm-01", "000", 1), ("A", "bg-01", "000", 1), ("A", "cl-01", "000", 1)]
    ids, types, views, xs = zip(*rows)
    with pytest.raises(ValueError, match="no gallery left"):
        cross_view_gallery(_emb(list(xs)), ids, types, views)


# -- OU-MVLP -------------------------------------------------------------------------------------------------------
def test_oumvlp_probe_without_gallery_counterpart_is_a_miss():
    """Subjects A, B with gallery (01) and probes (00) in views 000 / 015; C has probes only.
    A and B's probes sit on their gallery twins (hits); C's can never hit: per probe view 2 of 3
    probes hit in the other view -> 66.67 for both views."""
    rows = []
    for sid, base in (("A", 0.0), ("B", 100.0)):
        for v, off in (("000", 0.0), ("015", 1.0)):
            rows += [(sid, "01", v, base + off), (sid, "00", v, base + off)]
    rows += [("C", "00", "000", 0.5), ("C", "00", "015", 50.0)]
    ids, types, views, xs = zip(*rows)
    r = evaluate_gait(_emb(list(xs)), ids, types, views, protocol="oumvlp")
    nm = r["single_view"]["NM"]
    assert list(r["single_view"]) == ["NM"] and r["views"] == ["000", "015"]
    assert nm["matrix"] == [[66.67, 66.67], [66.67, 66.67]] and nm["mean"] == pytest.approx(66.67)
    assert r["cross_view"]["NM"]["rank1"] == pytest.approx(66.67)


# -- presentation ---------------------------------------------------------------------------------------------------
def test_table_and_heatmaps(tmp_path):
    emb, ids, types, views = _casia_hand_set()
    r = single_view_gallery(emb, ids, types, views)
    result = {"protocol": "casia-b", "distance": "euc", "views": r["views"], "single_view": r["conditions"]}
    text = format_gait_table(result, title="t")
    assert text.splitlines()[0] == "t"
    bg = next(line for line in text.splitlines() if line.startswith("BG"))
    assert bg.split()[1:3] == ["66.67", "50.00"] and float(bg.split()[3]) == pytest.approx(58.335, abs=0.006)
    png = plot_rank1_heatmaps(result, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
