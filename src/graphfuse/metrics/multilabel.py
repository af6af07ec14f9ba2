"""Multi-label metrics exactly as ML-GCN's ``AveragePrecisionMeter``, without its mutation trap.

ML-GCN (Chen et al., CVPR 2019; ``megvii-research/ML-GCN`` ``util.py``) reports on the whole
evaluation split (brief ``shared/research/mlgcn_twostream.md`` A.5):

* **mAP**: per class ``k``, the scores (logits) sorted in descending order; walking down the
  list, a *difficult* item is skipped (not counted in the ranks), and at each positive the
  precision so far is added; ``AP_k`` = that sum / #positives (non-interpolated AP; equals
  scikit-learn's ``average_precision_score`` when there are no ties). ``mAP`` = mean of
  ``AP_k``. A class without positives has no AP (ML-GCN divides by zero): it is **excluded**
  from the mean and **counted** (``classes_without_positives``).
* thresholded at ``logit >= 0`` (sigmoid >= 0.5), per class ``N_g`` (#ground-truth
  positives), ``N_p`` (#predicted, set to 1 where 0, as the meter does), ``N_c`` (#correct):
  ``CP = mean_k N_c/N_p``, ``CR = mean_k N_c/N_g``, ``CF1 = 2 CP CR / (CP + CR)`` (harmonic
  mean of the averages, not the mean of per-class F1), ``OP = sum N_c / sum N_p``,
  ``OR = sum N_c / sum N_g``, ``OF1 = 2 OP OR / (OP + OR)``;
* **top-3** (``*_top3``): per image only the 3 highest-scoring labels may be positive, and
  only if their logit is also >= 0 (the code's condition, beyond the paper's "top-3 labels").

Targets here are coded ``1`` present, ``0`` absent, ``-1`` difficult (VOC): difficult items
are skipped in AP (ML-GCN's ``difficult_examples=True``) and are *not* ground-truth
positives in the thresholded metrics (ML-GCN maps its difficult 0 to negative there). The
tie order of equal scores is the stable one (lower sample index first); ML-GCN's
``torch.sort`` leaves it unspecified.

Differences from the meter, all where it is undefined or wrong:

* ``overall()`` / ``overall_topk()`` set ``-1 -> 0`` on a numpy *view* of the stored targets,
  so calling them before ``value()`` turns every negative into a skipped difficult and every
  AP into 1. Nothing here writes to its inputs or states.
* ``CR`` averages over the classes that have positives (the meter gives NaN otherwise);
  ``OR`` / the F1s are 0 where their denominator is 0 (never NaN).
* Values are fractions in [0, 1] (ML-GCN prints mAP x 100: 0.830 here is its 83.0).

The metrics are torchmetrics ``Metric`` objects: mAP keeps the epoch's scores and targets
(``dist_reduce_fx="cat"``, so DDP ranks are gathered), the thresholded metrics keep per-class
counts (``sum``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities.data import dim_zero_cat

__all__ = [
    "MULTILABEL_METRICS",
    "THRESHOLDED",
    "ClassesWithoutPositives",
    "LabelPredictionCooccurrence",
    "MultiLabelAveragePrecision",
    "MultiLabelThresholded",
    "average_precision_per_class",
    "check_multilabel",
    "compute_multilabel_metrics",
    "mean_average_precision",
    "multilabel_metrics",
    "threshold_counts",
    "thresholded_metrics",
]

#: Names of the thresholded metrics, in ML-GCN's table order.
THRESHOLDED = ("CP", "CR", "CF1", "OP", "OR", "OF1")
#: Every metric name of :func:`multilabel_metrics`.
MULTILABEL_METRICS = ("mAP",) + THRESHOLDED + tuple(f"{m}_top3" for m in THRESHOLDED) + ("classes_without_positives",)


def check_multilabel(scores: Tensor, target: Tensor, num_classes: int | None = None) -> None:
    """Raise ``ValueError`` unless ``scores (N, C)`` is floating and finite and ``target (N, C)``
    holds only 1 / 0 / -1."""
    if scores.ndim != 2 or target.shape != scores.shape:
        raise ValueError(f"multi-label metrics take scores (N, C) and target (N, C), got {tuple(scores.shape)} "
                         f"and {tuple(target.shape)}")
    if num_classes is not None and scores.shape[1] != num_classes:
        raise ValueError(f"expected {num_classes} classes, got scores of shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point (logits), got {scores.dtype}")
    if scores.numel() and not torch.isfinite(scores).all():
        raise ValueError("non-finite scores")
    if target.numel() and ((target != 1) & (target != 0) & (target != -1)).any():
        raise ValueError("targets must be 1 (present), 0 (absent) or -1 (difficult)")


# ------------------------------------------------------------------------------------------
# functional forms (float64)
# ------------------------------------------------------------------------------------------
def average_precision_per_class(scores: Tensor, target: Tensor) -> Tensor:
    """``AP_k`` of every class as ML-GCN's ``average_precision`` with difficult (-1) skipped:
    ``(C,)`` float64, NaN for a class without positives. Vectorised over classes."""
    check_multilabel(scores, target)
    n, c = scores.shape
    if n == 0:
        return torch.full((c,), float("nan"), dtype=torch.float64)
    order = torch.sort(scores.to(torch.float64), dim=0, descending=True, stable=True).indices
    t = torch.gather(target.to(torch.int64), 0, order)  # (N, C) targets in score order
    counted = (t != -1).to(torch.float64)
    pos = (t == 1).to(torch.float64)
    ranks = torch.cumsum(counted, 0)
    hits = torch.cumsum(pos, 0)
    precision = torch.where(pos > 0, hits / ranks.clamp(min=1.0), torch.zeros_like(hits))
    npos = pos.sum(0)
    ap = precision.sum(0) / npos
    return torch.where(npos > 0, ap, torch.full_like(ap, float("nan")))


def mean_average_precision(scores: Tensor, target: Tensor) -> tuple[float, int]:
    """``(mAP, classes without positives)``: the mean of :func:`average_precision_per_class`
    over the classes that have positives (NaN when none has), and how many were left out."""
    ap = average_precision_per_class(scores, target)
    valid = ~torch.isnan(ap)
    return (float(ap[valid].mean()) if valid.any() else float("nan")), int((~valid).sum())


def threshold_counts(scores: Tensor, target: Tensor, top_k: int | None = None) -> Tensor:
    """Per-class counts ``(3, C)`` int64: ``N_c`` (correct), ``N_p`` (predicted, before the
    meter's ``0 -> 1``), ``N_g`` (ground-truth positives; difficult is not one). Predicted
    positive: ``score >= 0`` and, with ``top_k``, among the image's ``top_k`` highest scores."""
    check_multilabel(scores, target)
    pred = scores >= 0
    if top_k is not None and scores.shape[0]:
        k = min(int(top_k), scores.shape[1])
        top = torch.zeros_like(pred)
        top.scatter_(1, torch.topk(scores, k, dim=1).indices, True)
        pred = pred & top
    gt = target == 1
    return torch.stack([(pred & gt).sum(0), pred.sum(0), gt.sum(0)]).to(torch.int64)


def thresholded_metrics(counts: Tensor) -> dict[str, float]:
    """``CP, CR, CF1, OP, OR, OF1`` from :func:`threshold_counts` (see the module docstring)."""
    nc, np_, ng = (counts[i].to(torch.float64) for i in range(3))
    np_ = torch.where(np_ == 0, torch.ones_like(np_), np_)  # the meter's Np[Np == 0] = 1

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    op = float(nc.sum() / np_.sum()) if np_.numel() else 0.0
    orr = float(nc.sum() / ng.sum()) if float(ng.sum()) > 0 else 0.0
    cp = float((nc / np_).mean()) if nc.numel() else 0.0
    has = ng > 0
    cr = float((nc[has] / ng[has]).mean()) if has.any() else 0.0
    return {"CP": cp, "CR": cr, "CF1": f1(cp, cr), "OP": op, "OR": orr, "OF1": f1(op, orr)}


def compute_multilabel_metrics(scores: Tensor, target: Tensor, top_k: int = 3) -> dict[str, float]:
    """Every metric of :data:`MULTILABEL_METRICS` for a whole split (the inputs are not modified)."""
    m, missing = mean_average_precision(scores, target)
    out: dict[str, float] = {"mAP": m}
    out.update(thresholded_metrics(threshold_counts(scores, target)))
    out.update({f"{k}_top{top_k}": v for k, v in thresholded_metrics(threshold_counts(scores, target, top_k)).items()})
    out["classes_without_positives"] = float(missing)
    return out


# ------------------------------------------------------------------------------------------
# torchmetrics
# ------------------------------------------------------------------------------------------
class MultiLabelAveragePrecision(Metric):
    """mAP of the epoch (:func:`mean_average_precision`); ``update(scores (N, C), target (N, C))``.

    States: the concatenated scores (float32) and targets (int8), gathered over DDP ranks.
    :meth:`per_class` gives the last computed ``AP_k`` (NaN for classes without positives).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self._ap: Tensor | None = None

    def update(self, scores: Tensor, target: Tensor) -> None:
        check_multilabel(scores, target, self.num_classes)
        self.scores.append(scores.detach().to(torch.float32))
        self.target.append(target.detach().to(torch.int8))

    def compute(self) -> Tensor:
        scores, target = dim_zero_cat(self.scores), dim_zero_cat(self.target)
        if scores.numel() == 0:
            return torch.tensor(float("nan"))
        self._ap = average_precision_per_class(scores.reshape(-1, self.num_classes),
                                               target.reshape(-1, self.num_classes))
        valid = ~torch.isnan(self._ap)
        return self._ap[valid].mean().float() if valid.any() else torch.tensor(float("nan"))

    def per_class(self) -> Tensor | None:
        """``AP_k (C,)`` float64 of the last :meth:`compute`, or None."""
        return self._ap


class ClassesWithoutPositives(Metric):
    """How many classes have no positive in the epoch (excluded from mAP)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.add_state("positives", default=torch.zeros(self.num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: Tensor, target: Tensor) -> None:
        check_multilabel(scores, target, self.num_classes)
        self.positives += (target == 1).sum(0)

    def compute(self) -> Tensor:
        return (self.positives == 0).sum().float()


class MultiLabelThresholded(Metric):
    """One of ``CP, CR, CF1, OP, OR, OF1`` (``name``), on all labels or the ``top_k`` per image;
    states: per-class ``N_c, N_p, N_g`` counts (summed over DDP ranks)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, num_classes: int, name: str, top_k: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if name not in THRESHOLDED:
            raise ValueError(f"name must be one of {THRESHOLDED}, got {name!r}")
        self.num_classes, self.name, self.top_k = int(num_classes), name, top_k
        self.add_state("counts", default=torch.zeros(3, self.num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: Tensor, target: Tensor) -> None:
        check_multilabel(scores, target, self.num_classes)
        self.counts += threshold_counts(scores, target, self.top_k)

    def compute(self) -> Tensor:
        return torch.tensor(thresholded_metrics(self.counts)[self.name], dtype=torch.float32)


class LabelPredictionCooccurrence(Metric):
    """``M[i, j]`` = images with label ``i`` present and class ``j`` predicted (logit >= 0),
    ``(C, C)``: the multi-label analogue of a confusion matrix (the diagonal holds the true
    positives; row ``i`` shows what else is predicted on images of ``i``). A task's
    ``test_confusion``, drawn as ``confusion.png`` (row-normalised)."""

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.add_state("matrix", default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, scores: Tensor, target: Tensor) -> None:
        check_multilabel(scores, target, self.num_classes)
        gt = (target == 1).to(torch.float64)
        pred = (scores >= 0).to(torch.float64)
        self.matrix += (gt.t() @ pred).round().to(torch.long)

    def compute(self) -> Tensor:
        return self.matrix.clone()


def multilabel_metrics(num_classes: int, prefix: str = "", names: Sequence[str] = MULTILABEL_METRICS,
                       top_k: int = 3) -> MetricCollection:
    """A collection of the metrics ``names`` (default all of :data:`MULTILABEL_METRICS`,
    ``*_top3`` with ``top_k``), keys ``<prefix><name>``."""
    metrics: dict[str, Metric] = {}
    for name in names:
        if name == "mAP":
            metrics[name] = MultiLabelAveragePrecision(num_classes)
        elif name == "classes_without_positives":
            metrics[name] = ClassesWithoutPositives(num_classes)
        elif name in THRESHOLDED:
            metrics[name] = MultiLabelThresholded(num_classes, name)
        elif name.endswith("_top3") and name[: -len("_top3")] in THRESHOLDED:
            metrics[name] = MultiLabelThresholded(num_classes, name[: -len("_top3")], top_k=top_k)
        else:
            raise ValueError(f"unknown multi-label metric {name!r}; known: {MULTILABEL_METRICS}")
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)
