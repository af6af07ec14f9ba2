"""ML-GCN's multi-label metrics: hand-worked values, a float64 loop reference, scikit-learn, and
no mutation of the inputs (the meter's trap)."""

from __future__ import annotations

import pytest
import torch

from graphfuse.metrics.multilabel import (
    MULTILABEL_METRICS,
    LabelPredictionCooccurrence,
    average_precision_per_class,
    compute_multilabel_metrics,
    multilabel_metrics,
    threshold_counts,
    thresholded_metrics,
)

# 4 images, 3 classes; class 0 has a difficult item (-1), class 2 has no positive.
SCORES = torch.tensor([[2.0, -0.5, 0.1], [1.0, 3.0, -0.1], [0.5, -2.0, 0.2], [-3.0, 0.0, -0.2]])
TARGET = torch.tensor([[1, 1, 0], [-1, 0, 0], [0, 0, 0], [1, 1, 0]])


def test_hand_worked_values() -> None:
    # AP_0: ranks 2.0(+) 1.0(difficult, skipped) 0.5(-) -3.0(+): (1 + 2/3) / 2 = 5/6
    # AP_1: ranks 3.0(-) 0.0(+) -0.5(+) -2.0(-): (1/2 + 2/3) / 2 = 7/12; class 2 excluded
    m = compute_multilabel_metrics(SCORES, TARGET)
    assert m["mAP"] == pytest.approx((5 / 6 + 7 / 12) / 2)
    assert m["classes_without_positives"] == 1
    # score >= 0: Nc = (1, 1, 0), Np = (3, 2, 2), Ng = (2, 2, 0) (difficult is not a positive)
    assert threshold_counts(SCORES, TARGET).tolist() == [[1, 1, 0], [3, 2, 2], [2, 2, 0]]
    assert m["OP"] == pytest.approx(2 / 7) and m["OR"] == pytest.approx(1 / 2) and m["OF1"] == pytest.approx(4 / 11)
    assert m["CP"] == pytest.approx(5 / 18) and m["CR"] == pytest.approx(1 / 2) and m["CF1"] == pytest.approx(5 / 14)
    # 3 classes: top-3 keeps every label, so it equals the plain version
    assert all(m[f"{k}_top3"] == pytest.approx(m[k]) for k in ("CP", "CR", "CF1", "OP", "OR", "OF1"))
    # top-1: row argmaxes 0, 1, 0, 1 (all >= 0): Nc = (1, 1, 0), Np = (2, 2, 0 -> 1), Ng = (2, 2, 0)
    top1 = thresholded_metrics(threshold_counts(SCORES, TARGET, top_k=1))
    assert top1["OP"] == pytest.approx(2 / 5) and top1["OR"] == pytest.approx(1 / 2)
    assert top1["OF1"] == pytest.approx(4 / 9)
    assert top1["CP"] == pytest.approx(1 / 3) and top1["CR"] == pytest.approx(1 / 2) and top1["CF1"] == pytest.approx(2 / 5)


def test_top_k_needs_a_non_negative_score_too() -> None:
    s = torch.tensor([[-1.0, -2.0, -3.0, -4.0]])
    t = torch.tensor([[1, 0, 0, 0]])
    assert threshold_counts(s, t, top_k=3)[1].sum() == 0  # top-3 but all logits < 0: nothing predicted
    s = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert threshold_counts(s, t, top_k=3)[1].tolist() == [1, 1, 1, 0]


def _mlgcn_ap_loop(scores: torch.Tensor, target: torch.Tensor) -> list[float]:
    """ML-GCN's average_precision as a float64 loop (difficult -1 skipped), stable tie order."""
    out = []
    for k in range(scores.shape[1]):
        order = sorted(range(scores.shape[0]), key=lambda i: -float(scores[i, k]))
        pos = total = 0
        acc = 0.0
        for i in order:
            label = int(target[i, k])
            if label == -1:
                continue
            total += 1
            if label == 1:
                pos += 1
                acc += pos / total
        out.append(acc / pos if pos else float("nan"))
    return out


def test_ap_matches_the_loop_reference_with_difficult_items() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(200, 7, generator=g)
    target = torch.randint(-1, 2, (200, 7), generator=g)
    ap = average_precision_per_class(scores, target)
    assert ap.dtype == torch.float64
    for got, ref in zip(ap.tolist(), _mlgcn_ap_loop(scores, target)):
        assert got == pytest.approx(ref, rel=1e-12)


def test_ap_matches_sklearn_on_tie_free_scores() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(300, 5, generator=g, dtype=torch.float64)
    target = (torch.rand(300, 5, generator=g) < 0.3).long()
    ap = average_precision_per_class(scores, target)
    for k in range(5):
        ref = sklearn.average_precision_score(target[:, k].numpy(), scores[:, k].numpy())
        assert ap[k].item() == pytest.approx(ref, rel=1e-12)


def test_metric_collection_equals_the_functional_form_and_leaves_inputs_alone() -> None:
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(50, 6, generator=g)
    target = torch.randint(-1, 2, (50, 6), generator=g)
    s0, t0 = scores.clone(), target.clone()
    metrics = multilabel_metrics(6, "val/")
    # thresholded metrics computed first, then mAP: the meter's order trap must not exist
    for a, b in ((0, 20), (20, 50)):
        metrics.update(scores[a:b], target[a:b])
    first = {k: float(v) for k, v in metrics.compute().items()}
    again = {k: float(v) for k, v in metrics.compute().items()}
    assert first == again
    ref = compute_multilabel_metrics(scores, target)
    assert set(first) == {f"val/{k}" for k in MULTILABEL_METRICS}
    for k, v in ref.items():
        assert first[f"val/{k}"] == pytest.approx(v, rel=1e-6), k
    assert torch.equal(scores, s0) and torch.equal(target, t0)
    assert 0 < first["val/mAP"] < 1


def test_cooccurrence_matrix_and_input_checks() -> None:
    m = LabelPredictionCooccurrence(3)
    m.update(SCORES, TARGET)
    # rows: present labels (0 in images 0, 3; 1 in 0, 3); columns: predicted (score >= 0)
    assert m.compute().tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="1 \\(present\\), 0 \\(absent\\) or -1"):
        compute_multilabel_metrics(SCORES, TARGET + 1)
    with pytest.raises(ValueError, match="non-finite"):
        compute_multilabel_metrics(SCORES * float("nan"), TARGET)
    with pytest.raises(ValueError, match="expected 4 classes"):
        multilabel_metrics(4)["mAP"].update(SCORES, TARGET)
