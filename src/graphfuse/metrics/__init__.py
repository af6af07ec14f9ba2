"""Metrics not covered exactly by torchmetrics: mean class accuracy, crossing intention."""

from .classification import MeanClassAccuracy
from .intention import (
    INTENTION_METRICS,
    BinaryBalancedAccuracy,
    RoundedBinaryAUROC,
    compute_intention_metrics,
    crossing_score,
    intention_metrics,
)

__all__ = [
    "MeanClassAccuracy",
    "INTENTION_METRICS",
    "BinaryBalancedAccuracy",
    "RoundedBinaryAUROC",
    "compute_intention_metrics",
    "crossing_score",
    "intention_metrics",
]
