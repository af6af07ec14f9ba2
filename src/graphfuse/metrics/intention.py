"""Binary crossing-intention metrics and the 3-class -> binary crossing score of PedGraph+.

Every metric takes ``update(score, target)``: ``score (N,)`` the continuous crossing score
in ``[0, 1]`` (probability that the pedestrian crosses), ``target (N,)`` the binary label
(1 crossing, 0 not crossing; PedGraph+'s "irrelevant" class counts as 0). They are
torchmetrics ``Metric`` objects, so their state is synchronised across DDP ranks.

Thresholded metrics decide "crossing" when ``score > 0.5``. This is exactly what the
reference evaluations do: the benchmark of Kotseruba et al. (WACV 2021,
``ykotseruba/PedestrianActionBenchmark`` ``action_predict.py``) and PedGraph+
(``RodrigoGantier/Pedestrian_graph_plus`` ``final_pie_test.py``) call sklearn on
``np.round(score)``, and ``np.round`` sends 0.5 to 0 (round half to even); torchmetrics'
binary metrics threshold with ``>`` as well.

Names (as logged by :class:`graphfuse.tasks.CrossingIntention` under ``val/`` / ``test/``):

* ``acc``: accuracy; ``balanced_acc``: mean of the recalls of the classes present in the
  targets (sklearn's ``balanced_accuracy_score(y_true, y_pred)``, *not* the swapped
  ``balanced_accuracy_score(pred, y)`` of PedGraph+'s training loop);
* ``f1``, ``precision``, ``recall`` of the crossing class (0 when undefined, as sklearn's
  ``zero_division`` default after its warning);
* ``auc``: ROC-AUC of the continuous score (threshold-free);
* ``ap``: average precision of the continuous score, ``sum_n (R_n - R_{n-1}) P_n`` (sklearn's
  ``average_precision_score``);
* ``auc_rounded``: the benchmark's "AUC", ``roc_auc_score(y, round(score))``. On binary
  predictions the ROC curve has one inner point, so this equals ``(TPR + TNR) / 2``, i.e.
  balanced accuracy; it is kept under its own name so numbers compare with published tables
  (PCPA etc.) without passing for a threshold-free AUC.
"""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)

__all__ = [
    "INTENTION_METRICS",
    "THRESHOLD",
    "BinaryBalancedAccuracy",
    "RoundedBinaryAUROC",
    "CrossingAccuracy",
    "CrossingF1",
    "CrossingPrecision",
    "CrossingRecall",
    "CrossingAUROC",
    "CrossingAveragePrecision",
    "intention_metrics",
    "compute_intention_metrics",
    "crossing_score",
]

#: Metric names, in display order.
INTENTION_METRICS = ("acc", "balanced_acc", "auc", "ap", "f1", "precision", "recall", "auc_rounded")
#: ``score > THRESHOLD`` is a crossing decision (np.round of the references).
THRESHOLD = 0.5


def _check(score: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if score.ndim != 1 or target.shape != score.shape:
        raise ValueError(
            f"intention metrics take score (N,) and target (N,), got {tuple(score.shape)} and {tuple(target.shape)}"
        )
    if score.is_floating_point() and score.numel() and (score.min() < 0 or score.max() > 1):
        raise ValueError("the crossing score must lie in [0, 1] (a probability, not a logit)")
    t = target.long()
    if t.numel() and ((t < 0) | (t > 1)).any():
        raise ValueError("intention metrics need binary targets 0/1 (map 'irrelevant' to 0 first)")
    return score, t


class BinaryBalancedAccuracy(Metric):
    """Balanced accuracy of ``score > 0.5``: mean recall over the classes present in the targets.

    Matches sklearn's ``balanced_accuracy_score(y_true, y_pred)`` (which also averages only
    over the classes that occur in ``y_true``). ``update(score (N,), target (N,))``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, threshold: float = THRESHOLD, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        # confusion counts, rows = true class, cols = predicted class
        self.add_state("confusion", default=torch.zeros(2, 2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:
        score, target = _check(score, target)
        pred = (score > self.threshold).long()
        self.confusion += torch.bincount(target * 2 + pred, minlength=4).reshape(2, 2)

    def compute(self) -> torch.Tensor:
        support = self.confusion.sum(dim=1)
        present = support > 0
        if not present.any():
            return torch.tensor(float("nan"))
        recall = self.confusion.diagonal().float() / support.clamp(min=1).float()
        return recall[present].mean()


class RoundedBinaryAUROC(BinaryAUROC):
    """The benchmark's "AUC": ROC-AUC of the *rounded* score, ``roc_auc_score(y, np.round(score))``
    as in ``PedestrianActionBenchmark/action_predict.py``. Equals balanced accuracy; named
    separately (``auc_rounded``) so it is never mistaken for the threshold-free ``auc``."""

    def __init__(self, threshold: float = THRESHOLD, **kwargs) -> None:
        super().__init__(thresholds=None, **kwargs)
        self.threshold = threshold

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        score, target = _check(score, target)
        super().update((score > self.threshold).float(), target)


class CrossingAccuracy(BinaryAccuracy):
    """``BinaryAccuracy`` of ``score > 0.5``, with input checks (score in [0, 1], binary target)."""

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(*_check(score, target))


class CrossingF1(BinaryF1Score):
    """``BinaryF1Score`` of ``score > 0.5`` for the crossing class, with input checks."""

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(*_check(score, target))


class CrossingPrecision(BinaryPrecision):
    """``BinaryPrecision`` of ``score > 0.5`` for the crossing class, with input checks."""

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(*_check(score, target))


class CrossingRecall(BinaryRecall):
    """``BinaryRecall`` of ``score > 0.5`` for the crossing class, with input checks."""

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(*_check(score, target))


class CrossingAUROC(BinaryAUROC):
    """Exact ROC-AUC of the continuous score (``thresholds=None``), with input checks."""

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(*_check(score, target))


class CrossingAveragePrecision(BinaryAveragePrecision):
    """Exact average precision of the continuous score (``thresholds=None``), with input checks."""

    def update(self, score: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(*_check(score, target))


def intention_metrics(
    prefix: str = "", names: tuple[str, ...] | list[str] = INTENTION_METRICS
) -> MetricCollection:
    """A ``MetricCollection`` of the crossing metrics ``names`` (keys ``prefix + name``).

    ``update(score (N,), target (N,))`` with the score in [0, 1] and binary targets. ``auc``,
    ``ap`` and ``auc_rounded`` keep every score (exact values, ``thresholds=None``), the
    others only counts.
    """
    factories = {
        "acc": lambda: CrossingAccuracy(threshold=THRESHOLD),
        "balanced_acc": lambda: BinaryBalancedAccuracy(THRESHOLD),
        "auc": lambda: CrossingAUROC(thresholds=None),
        "ap": lambda: CrossingAveragePrecision(thresholds=None),
        "f1": lambda: CrossingF1(threshold=THRESHOLD),
        "precision": lambda: CrossingPrecision(threshold=THRESHOLD),
        "recall": lambda: CrossingRecall(threshold=THRESHOLD),
        "auc_rounded": lambda: RoundedBinaryAUROC(THRESHOLD),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown intention metric(s) {unknown}; available: {list(INTENTION_METRICS)}")
    # compute_groups=False: metrics of different kinds must not share state.
    return MetricCollection({n: factories[n]() for n in names}, prefix=prefix, compute_groups=False)


def compute_intention_metrics(target: torch.Tensor, score: torch.Tensor) -> dict[str, float]:
    """All crossing metrics of one set of predictions, as floats (e.g. from ``scores.npz``).

    Args:
        target: ``(N,)`` binary labels (1 crossing).
        score: ``(N,)`` continuous crossing score in [0, 1].
    """
    target = torch.as_tensor(target).long().reshape(-1)
    score = torch.as_tensor(score).double().reshape(-1)
    metrics = intention_metrics()
    metrics.update(score, target)
    return {k: float(v) for k, v in metrics.compute().items()}


def crossing_score(
    logits: torch.Tensor, mode: Literal["pedgraph", "argmax"] = "pedgraph"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The binary crossing score of a classifier's logits, and its class probabilities.

    Classes: 0 not crossing, 1 crossing, 2 irrelevant (PedGraph+'s third class: PIE
    ``crossing == -1`` or JAAD pedestrians without behaviour tags). With ``p = softmax(logits)``
    (as ``final_pie_test.py``, although the network was trained with sigmoids):

    * 1 logit: ``score = sigmoid(logit)``;
    * 2 classes: ``score = p1``;
    * 3 classes, ``mode="pedgraph"`` (PedGraph+'s mapping, ``final_pie_test.py``): the
      irrelevant mass moves to "not crossing", ``p0' = min(1, p0 + p2)``, ``p1' = max(0, p1 - p2)``;
      then ``score = p1'`` if ``argmax(p0', p1', p2) == 1`` else ``1 - p0'``, clipped to [0, 1].
      The reference edits ``p`` in place before taking the argmax, so the argmax is over the
      *mapped* vector (not over ``p``); we reproduce that. Ties go to the lower index
      (``torch.argmax``). Note ``1 - p0' = p1`` for a softmax, so the score is ``p1 - p2``
      when the mapped crossing entry wins and ``p1`` otherwise;
    * 3 classes, ``mode="argmax"`` (its ``--argmax`` option): ``k = argmax p``;
      ``score = p_k`` if ``k == 1`` else ``1 - p_k``.

    Args:
        logits: ``(N, K)``, K in {1, 2, 3}.
        mode: 3-class mapping.

    Returns:
        ``(score (N,), probs (N, K))`` in float32 (``probs`` = sigmoid for K = 1).
    """
    if logits.ndim != 2 or logits.shape[1] not in (1, 2, 3):
        raise ValueError(f"crossing_score needs logits (N, K) with K in 1, 2, 3; got {tuple(logits.shape)}")
    if mode not in ("pedgraph", "argmax"):
        raise ValueError(f"three_to_binary: expected 'pedgraph' or 'argmax', got {mode!r}")
    logits = logits.float()
    k = logits.shape[1]
    if k == 1:
        p = logits.sigmoid()
        return p[:, 0], p
    p = logits.softmax(dim=1)
    if k == 2:
        return p[:, 1], p
    if mode == "argmax":
        arg = p.argmax(dim=1)  # first maximum on ties
        top = p.gather(1, arg[:, None])[:, 0]
        score = torch.where(arg == 1, top, 1.0 - top)
    else:
        p0 = (p[:, 0] + p[:, 2]).clamp(max=1.0)
        p1 = (p[:, 1] - p[:, 2]).clamp(min=0.0)
        mapped = torch.stack([p0, p1, p[:, 2]], dim=1)
        score = torch.where(mapped.argmax(dim=1) == 1, p1, 1.0 - p0)
    return score.clamp(0.0, 1.0), p
