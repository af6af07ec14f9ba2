"""Classification metrics not covered exactly by torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["MeanClassAccuracy"]


class MeanClassAccuracy(Metric):
    """Mean over classes of per-class accuracy (recall), over the classes present in the targets.

    This is the "mean class accuracy" of action-recognition papers (e.g. PYSKL's
    ``mean_class_accuracy``). torchmetrics' ``MulticlassAccuracy(average="macro")`` also
    averages in a class that is predicted but absent from the targets (with score 0), which
    differs on subsets of a test set.

    ``update(preds, target)``: ``preds`` logits or probabilities ``(N, K)`` or labels ``(N,)``;
    ``target`` ``(N,)``.
    """

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("correct", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.ndim == 2:
            preds = preds.argmax(dim=1)
        target = target.long()
        self.count += torch.bincount(target, minlength=self.num_classes)
        self.correct += torch.bincount(target[preds == target], minlength=self.num_classes)

    def compute(self) -> torch.Tensor:
        present = self.count > 0
        if not present.any():
            return torch.tensor(float("nan"))
        return (self.correct[present].float() / self.count[present].float()).mean()
