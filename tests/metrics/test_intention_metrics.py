"""Crossing-intention metrics against hand-worked values and plain-loop float64 references
(no sklearn), and PedGraph+'s 3 -> binary score mapping on hand-made probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from graphfuse.metrics.intention import (
    INTENTION_METRICS,
    BinaryBalancedAccuracy,
    compute_intention_metrics,
    crossing_score,
    intention_metrics,
)


# ---- independent references: plain loops, float64 ---------------------------------------------
def _ref_auc(y, s):
    """Mann-Whitney: P(score_pos > score_neg) + 0.5 P(tie)."""
    pos = [si for yi, si in zip(y, s) if yi == 1]
    neg = [si for yi, si in zip(y, s) if yi == 0]
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else (0.5 if p == n else 0.0)
    return total / (len(pos) * len(neg))


def _ref_ap(y, s):
    """sum_n (R_n - R_{n-1}) P_n over the distinct thresholds, highest first (sklearn's definition)."""
    n_pos = sum(y)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s), reverse=True):
        tp = sum(1 for yi, si in zip(y, s) if si >= t and yi == 1)
        fp = sum(1 for yi, si in zip(y, s) if si >= t and yi == 0)
        recall, precision = tp / n_pos, tp / (tp + fp)
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def _ref_thresholded(y, s):
    pred = [1 if si > 0.5 else 0 for si in s]  # np.round: 0.5 -> 0
    tp = sum(1 for a, b in zip(y, pred) if a == 1 and b == 1)
    tn = sum(1 for a, b in zip(y, pred) if a == 0 and b == 0)
    fp = sum(1 for a, b in zip(y, pred) if a == 0 and b == 1)
    fn = sum(1 for a, b in zip(y, pred) if a == 1 and b == 0)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    recalls = [r for r, n in ((rec, tp + fn), (tn / (tn + fp) if tn + fp else 0.0, tn + fp)) if n]
    return {
        "acc": (tp + tn) / len(y),
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "balanced_acc": sum(recalls) / len(recalls),
        "auc_rounded": _ref_auc(y, [float(p) for p in pred]),
    }


# ---- hand-worked example -----------------------------------------------------------------------------
def test_hand_worked_values():
    # targets 0 0 1 1 1, scores .1 .6 .5 .8 .9 -> decisions (> .5) 0 1 0 1 1
    y = torch.tensor([0, 0, 1, 1, 1])
    s = torch.tensor([0.1, 0.6, 0.5, 0.8, 0.9])
    m = compute_intention_metrics(y, s)
    assert set(m) == set(INTENTION_METRICS)
    assert m["acc"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)  # TP 2 (.8, .9), FP 1 (.6)
    assert m["recall"] == pytest.approx(2 / 3)  # FN 1 (.5 rounds to 0)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["balanced_acc"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # TNR 1/2, TPR 2/3
    # pairs pos > neg: .5>.1; .8>.1,.6; .9>.1,.6 = 5 of 6
    assert m["auc"] == pytest.approx(5 / 6)
    # ranked .9 P, .8 P, .6 N, .5 P, .1 N: precisions at the positives 1, 1, 3/4
    assert m["ap"] == pytest.approx((1 + 1 + 0.75) / 3)
    # the benchmark's AUC on rounded predictions equals balanced accuracy
    assert m["auc_rounded"] == pytest.approx(m["balanced_acc"])


def test_argument_order_matters_and_is_target_first():
    # (target, score) swapped would give different numbers: the API takes target first in
    # compute_intention_metrics and (score, target) in Metric.update, as torchmetrics.
    y = torch.tensor([1, 1, 1, 0])
    s = torch.tensor([0.9, 0.8, 0.2, 0.7])
    m = compute_intention_metrics(y, s)
    assert m["recall"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(2 / 3)
    # balanced accuracy: TPR 2/3, TNR 0 -> 1/3. With swapped arguments (pred as truth, as
    # PedGraph+'s training loop) it would be (2/3 + 0/1) / 2 = 1/3 here too, so check the
    # asymmetric case: all predicted positive, one negative.
    y2 = torch.tensor([1, 1, 1, 0])
    s2 = torch.tensor([0.9, 0.9, 0.9, 0.9])
    m2 = compute_intention_metrics(y2, s2)
    assert m2["balanced_acc"] == pytest.approx(0.5)  # TPR 1, TNR 0
    # swapped (truth = predictions, all 1): only class 1 present, recall 3/4
    bal = BinaryBalancedAccuracy()
    bal.update(y2.float(), (s2 > 0.5).long())
    assert bal.compute().item() == pytest.approx(0.75)


def test_threshold_is_round_half_to_even():
    # np.round(0.5) == 0, as the references' round(score): 0.5 is "not crossing"
    m = compute_intention_metrics(torch.tensor([1, 0]), torch.tensor([0.5, 0.5]))
    assert m["acc"] == pytest.approx(0.5) and m["recall"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_loop_references_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    n = 40
    y = torch.randint(0, 2, (n,), generator=g)
    y[0], y[1] = 0, 1
    s = torch.randint(0, 11, (n,), generator=g).double() / 10  # many ties, includes 0.5
    m = compute_intention_metrics(y, s)
    yl, sl = y.tolist(), s.tolist()
    ref = _ref_thresholded(yl, sl)
    ref["auc"] = _ref_auc(yl, sl)
    ref["ap"] = _ref_ap(yl, sl)
    for k in INTENTION_METRICS:
        assert m[k] == pytest.approx(ref[k], abs=1e-6), k


def test_epoch_accumulation_equals_one_shot():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (30,), generator=g)
    s = torch.rand(30, generator=g)
    coll = intention_metrics("val/")
    for a in range(0, 30, 7):  # uneven batches
        coll.update(s[a : a + 7], y[a : a + 7])
    got = {k.removeprefix("val/"): float(v) for k, v in coll.compute().items()}
    one = compute_intention_metrics(y, s)
    assert got == pytest.approx(one)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="binary targets"):
        compute_intention_metrics(torch.tensor([0, 2]), torch.tensor([0.1, 0.9]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_intention_metrics(torch.tensor([0, 1]), torch.tensor([-2.0, 3.0]))  # logits
    with pytest.raises(ValueError, match="unknown intention metric"):
        intention_metrics(names=["top1"])


def test_balanced_accuracy_single_class_targets():
    bal = BinaryBalancedAccuracy()
    bal.update(torch.tensor([0.9, 0.2, 0.7]), torch.tensor([1, 1, 1]))
    assert bal.compute().item() == pytest.approx(2 / 3)  # only the present class counts


# ---- 3 -> binary mapping ------------------------------------------------------------------------------
def _logits(p):
    return torch.log(torch.tensor(p, dtype=torch.float64))


def test_pedgraph_mapping_on_hand_made_probabilities():
    # p -> p0' = min(1, p0 + p2), p1' = max(0, p1 - p2); argmax over (p0', p1', p2)
    probs = [
        [0.1, 0.6, 0.3],  # mapped (.4, .3, .3): argmax 0 -> 1 - .4 = .6
        [0.0001, 0.7, 0.2999],  # mapped (.3, .4001, .2999): argmax 1 -> p1' = .4001
        [0.3, 0.4, 0.3],  # mapped (.6, .1, .3): argmax 0 -> .4 (argmax of p would be 1)
        [0.1, 0.85, 0.05],  # mapped (.15, .8, .05): argmax 1 -> .8
        [0.7, 0.2, 0.1],  # mapped (.8, .1, .1): argmax 0 -> .2
        [0.2, 0.1, 0.7],  # mapped (.9, 0, .7): argmax 0 -> .1
    ]
    expected = [0.6, 0.4001, 0.4, 0.8, 0.2, 0.1]
    score, p = crossing_score(_logits(probs), "pedgraph")
    assert torch.allclose(p.double(), torch.tensor(probs, dtype=torch.float64), atol=1e-6)
    assert score.tolist() == pytest.approx(expected, abs=1e-5)


def test_argmax_mapping_and_two_and_one_class_heads():
    probs = [[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.1, 0.7]]
    score, _ = crossing_score(_logits(probs), "argmax")
    assert score.tolist() == pytest.approx([0.6, 0.5, 0.3], abs=1e-6)  # p1; 1 - p0; 1 - p2
    two = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> (.25, .75)
    assert crossing_score(two)[0].tolist() == pytest.approx([0.75])
    one = torch.tensor([[0.0], [math.log(4.0)]])  # sigmoid -> .5, .8
    assert crossing_score(one)[0].tolist() == pytest.approx([0.5, 0.8])
    with pytest.raises(ValueError, match="K in 1, 2, 3"):
        crossing_score(torch.zeros(2, 4))


def test_mapping_score_is_within_unit_interval():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 3, generator=g) * 5
    for mode in ("pedgraph", "argmax"):
        s, _ = crossing_score(logits, mode)
        assert s.min() >= 0 and s.max() <= 1
